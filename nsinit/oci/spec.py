"""An OCI bundle's config.json -> the same Config the container.json loader makes.

One model, two front doors: the part parsers and validators of nsinit/config/
(parse.py's error-collecting context; namespaces.py, mounts.py, cgroups.py,
process.py: mounts, capabilities, rlimits, sysctl, umask, paths, cgroup
limits) read the OCI spelling here too,
so a mount, a capability or a limit means the same thing through either door.
What differs is the OCI meaning of absence: no ``linux.namespaces`` is no new
namespace, no ``mounts`` is no mount, no ``env`` is an empty environment, no
capabilities is none at all (container.json has defaults for each).

Covered: runtime-spec 1.0.2 and 1.1, every field podman 4.3 and containerd 1.6
write (tests/unit/data/oci holds configs they wrote on this machine).  A
field nsinit cannot honour is an error naming its JSON path (``config.json:
linux.intelRdt: not supported``), never dropped.  Unknown keys are warnings:
the spec says a runtime MUST ignore unknown properties.  Ignored on purpose
(README "OCI front door"): the other platforms' sections (windows, solaris,
vm, zos) and their fields (process.user.username, process.commandLine).
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.config.mounts import (
    _effective_devices,
    _parse_device,
    _parse_mount,
    _parse_path_list,
    _parse_rootfs,
)
from nsinit.config import namespaces as config_namespaces
from nsinit.config.namespaces import _parse_hostname, _parse_sysctl, _sysctl_namespace
from nsinit.config.parse import (
    _Context,
    _bool,
    _check_every_string,
    _child,
    _clean_abs_path,
    _int,
    _is_set,
    _item,
    _obj,
    _opt_bool,
    _opt_int,
    _opt_list,
    _opt_str,
    _read_json,
    _str,
)
from nsinit.config.process import (
    _cap_sets,
    _check_security_modules,
    _parse_environment,
    _parse_oom_score_adj,
    _parse_rlimits,
    _parse_umask,
)
from nsinit.config.model import (
    CapabilitySets,
    CgroupConfig,
    CgroupResources,
    Config,
    DeviceConfig,
    IdMap,
    MountConfig,
    NamespaceConfig,
    NetworkConfig,
)
from nsinit.errors import ConfigError
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.oci.hooks import Hook, Hooks

CONFIG_FILE = "config.json"
_VERSION_MAJOR = 1
_VERSION_MINORS = (0, 1)        # 1.0.x and 1.1.x (with -dev, -rc suffixes)

# OCI namespace type -> nsinit's name (keys of names.NAMESPACE_CLONE_FLAGS).
NAMESPACES = {
    "pid": "NEWPID", "network": "NEWNET", "mount": "NEWNS", "ipc": "NEWIPC",
    "uts": "NEWUTS", "user": "NEWUSER", "cgroup": "NEWCGROUP", "time": "NEWTIME",
}
_OCI_NAMESPACE_NAMES = {value: key for key, value in NAMESPACES.items()}

_TOP_KEYS = frozenset({"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
                       "annotations", "linux", "solaris", "windows", "vm", "zos"})
_PROCESS_KEYS = frozenset({"terminal", "consoleSize", "cwd", "env", "args", "commandLine", "rlimits",
                           "apparmorProfile", "capabilities", "noNewPrivileges", "oomScoreAdj",
                           "selinuxLabel", "user", "ioPriority", "scheduler", "execCPUAffinity"})
_USER_KEYS = frozenset({"uid", "gid", "umask", "additionalGids", "username"})
_ROOT_KEYS = frozenset({"path", "readonly"})
_MOUNT_KEYS = frozenset({"destination", "source", "type", "options", "uidMappings", "gidMappings"})
_LINUX_KEYS = frozenset({"namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices",
                         "netDevices", "cgroupsPath", "rootfsPropagation", "resources",
                         "sysctl", "seccomp", "maskedPaths", "readonlyPaths", "mountLabel", "intelRdt",
                         "personality", "memoryPolicy"})
_RESOURCE_KEYS = frozenset({"devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network",
                            "rdma", "unified"})
_MEMORY_KEYS = frozenset({"limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
                          "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"})
_CPU_KEYS = frozenset({"shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod",
                       "cpus", "mems", "idle"})
_BLOCK_IO_KEYS = frozenset({"weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                            "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"})
_THROTTLES = (
    ("throttleReadBpsDevice", "blkio_throttle_read_bps_device"),
    ("throttleWriteBpsDevice", "blkio_throttle_write_bps_device"),
    ("throttleReadIOPSDevice", "blkio_throttle_read_iops_device"),
    ("throttleWriteIOPSDevice", "blkio_throttle_write_iops_device"),
)
_DEVICE_KEYS = frozenset({"type", "path", "major", "minor", "fileMode", "uid", "gid"})
_DEVICE_RULE_KEYS = frozenset({"allow", "type", "major", "minor", "access"})
_HOOK_KEYS = frozenset({"path", "args", "env", "timeout"})

# Fields nsinit has no implementation for: set, they are refused by name.
_UNSUPPORTED = {
    "": ("domainname",),
    "process": ("ioPriority", "scheduler", "execCPUAffinity"),
    "linux": ("timeOffsets", "netDevices", "intelRdt", "personality", "memoryPolicy"),
    "linux.resources": ("network", "rdma", "unified"),
    "linux.resources.memory": ("kernel", "kernelTCP"),
    "linux.resources.cpu": ("burst", "realtimeRuntime", "realtimePeriod", "idle"),
    "linux.resources.blockIO": ("leafWeight", "weightDevice"),
}
# Mount options of runc that are not mount(2) flags nor filesystem data:
# passed on as data they would fail the mount with EINVAL, so they are refused
# by name.  (``tmpcopyup``, which podman writes for /tmp, /run and /var/tmp
# under --read-only, is honoured: the shared mount parser takes it.)
_UNSUPPORTED_MOUNT_OPTIONS = frozenset({
    "idmap", "ridmap", "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec",
    "rexec", "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime", "ratime",
    "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow",
})
# runc's no-op spelling of "no copy-up" (the default here).
_NOOP_MOUNT_OPTIONS = frozenset({"notmpcopyup"})
# What nsinit does to the container's / (nsinit.mount.rootfs.prepare_root).
_ROOTFS_PROPAGATIONS = ("private", "rprivate")


@record(frozen=True, kw_only=True)
class OciSpec:
    """A bundle's config.json: the container's Config and what only OCI has."""
    bundle: str                            # absolute path of the bundle directory
    config: Config                         # what the create flow runs, as from container.json
    args: tuple[str, ...]                  # process.args: the command
    oci_version: str
    annotations: tuple[tuple[str, str], ...] = ()
    hooks: Hooks | None = None             # None: config.json names no hook
    console_size: tuple[int, int] | None = None   # (height, width) of the pty; None: leave it


def load_bundle(bundle: str, container_id: str = "") -> tuple[OciSpec, list[str]]:
    """Read <bundle>/config.json; return (spec, warnings).

    ``container_id`` names the cgroup when config.json gives no cgroupsPath
    (runc does the same).  Errors are ConfigError(s) naming config.json and
    the JSON path of the field.
    """
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, CONFIG_FILE)
    if not os.path.isdir(bundle):
        raise ConfigError(bundle, "", "the bundle directory does not exist")
    if not os.path.lexists(path):  # the loader's own message points at `nsinit spec`
        raise ConfigError(path, "", "No such file or directory")
    data = _read_json(path, path)
    return parse_spec(data, CONFIG_FILE, bundle, container_id)


def parse_spec(data: Any, source: str, bundle: str, container_id: str = "") -> tuple[OciSpec, list[str]]:
    """Normalise and validate a decoded config.json; relative paths are the bundle's."""
    ctx = _Context(source, bundle)
    if not isinstance(data, dict):
        ctx.fail("", "must be a JSON object")
    _check_every_string(ctx, data)  # NULs and lone surrogates, once for the whole file
    ctx.check_keys(data, _TOP_KEYS, "")
    oci_version = ctx.collect(_parse_version, data.get("ociVersion"), "ociVersion") or ""
    process = ctx.collect(_section, data, "process", "process", _PROCESS_KEYS, required=True) or {}
    linux = ctx.collect(_section, data, "linux", "linux", _LINUX_KEYS) or {}
    root = ctx.collect(_section, data, "root", "root", _ROOT_KEYS, required=True) or {}
    user = ctx.collect(_section, process, "user", "process.user", _USER_KEYS) or {}
    # A missing section is one error, not one more for each field it lacks.
    has_process, has_root = data.get("process") is not None, data.get("root") is not None
    for base, obj in (("", data), ("process", process), ("linux", linux)):
        for key in _UNSUPPORTED[base]:
            _refuse_if_set(ctx, obj, key, base)

    namespaces = ctx.collect(_parse_namespaces, linux.get("namespaces"), "linux.namespaces") or ()
    new_netns = any(ns.type == "NEWNET" and not ns.path for ns in namespaces)
    configured_devices = ctx.collect(_parse_devices, linux.get("devices"), "linux.devices") or ()
    mounts = ctx.collect(_parse_mounts, data.get("mounts"), "mounts")
    config = Config(
        source=source,
        rootfs=ctx.collect(_parse_rootfs, _required(ctx, root, "path", "root") if has_root else "", "root.path"),
        readonlyfs=ctx.collect(_opt_bool, root.get("readonly"), "root.readonly"),
        hostname=ctx.collect(_parse_hostname, data.get("hostname"), "hostname"),
        namespaces=namespaces,
        uid_mappings=ctx.collect(_parse_id_mappings, linux.get("uidMappings"), "linux.uidMappings"),
        gid_mappings=ctx.collect(_parse_id_mappings, linux.get("gidMappings"), "linux.gidMappings"),
        capabilities=ctx.collect(_parse_capabilities, process.get("capabilities"), "process.capabilities"),
        # Without a mount namespace they are checked, then ignored (see
        # _check_namespace_requirements).
        mounts=mounts if any(ns.type == "NEWNS" for ns in namespaces) else (),
        devices=_effective_devices(configured_devices),
        environment=ctx.collect(_parse_env, process.get("env"), "process.env"),
        user=ctx.collect(_parse_user, user, "process.user"),
        additional_groups=ctx.collect(_parse_gids, user.get("additionalGids"), "process.user.additionalGids"),
        working_dir=ctx.collect(_parse_cwd, process.get("cwd"), "process.cwd") if has_process else "/",
        umask=ctx.collect(_parse_umask, user.get("umask"), "process.user.umask"),
        tty=ctx.collect(_opt_bool, process.get("terminal"), "process.terminal"),
        mask_paths=ctx.collect(_parse_path_list, linux.get("maskedPaths"), "linux.maskedPaths", ()),
        readonly_paths=ctx.collect(_parse_path_list, linux.get("readonlyPaths"), "linux.readonlyPaths", ()),
        rlimits=ctx.collect(_parse_rlimits, process.get("rlimits"), "process.rlimits"),
        no_new_privileges=ctx.collect(_opt_bool, process.get("noNewPrivileges"), "process.noNewPrivileges"),
        oom_score_adj=ctx.collect(_parse_oom_score_adj, process.get("oomScoreAdj"), "process.oomScoreAdj"),
        sysctl=ctx.collect(_parse_sysctl, linux.get("sysctl"), "linux.sysctl"),
        # A new network namespace gets its loopback up, as runc gives it;
        # every other interface is the engine's business (podman's netns path).
        networks=(NetworkConfig(type="loopback"),) if new_netns else (),
        cgroups=ctx.collect(_parse_cgroups, linux, container_id),
        apparmor_profile=ctx.collect(_opt_str, process.get("apparmorProfile"), "process.apparmorProfile"),
        process_label=ctx.collect(_opt_str, process.get("selinuxLabel"), "process.selinuxLabel"),
        mount_label=ctx.collect(_opt_str, linux.get("mountLabel"), "linux.mountLabel"),
        # Nobody supervises an OCI container: the runtime process that made
        # it exits at once, and its death must not kill the container.
        parent_death_signal=0,
        seccomp=ctx.collect(_parse_seccomp, linux.get("seccomp"), "linux.seccomp"),
        rootfs_propagation=ctx.collect(_parse_rootfs_propagation, linux.get("rootfsPropagation"),
                                       "linux.rootfsPropagation") or 0,
    )
    spec = OciSpec(
        bundle=bundle,
        config=config,
        args=(ctx.collect(_parse_args, process.get("args"), "process.args") if has_process else None) or (),
        oci_version=oci_version,
        annotations=ctx.collect(_parse_annotations, data.get("annotations"), "annotations") or (),
        hooks=ctx.collect(_parse_hooks, data.get("hooks"), "hooks"),
        console_size=ctx.collect(_parse_console_size, process.get("consoleSize"), "process.consoleSize"),
    )
    # Rules across fields, once every field is valid (as in the container.json loader).
    ctx.raise_errors()
    _check_namespace_requirements(ctx, config, linux, data.get("mounts"))
    _check_security_modules(ctx, config, {
        "apparmor_profile": "process.apparmorProfile",
        "process_label": "process.selinuxLabel",
        "mount_label": "linux.mountLabel",
    })
    ctx.raise_errors()
    return spec, ctx.warnings


# --- sections, versions, refusals --------------------------------------------

def _parse_version(ctx: _Context, value: Any, path: str) -> str:
    if value is None:
        ctx.fail(path, "is required")
    text = _str(ctx, value, path)
    parts = text.split("-", 1)[0].split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts):
        ctx.fail(path, f'"{text}" is not a version such as "1.0.2"')
    if int(parts[0]) != _VERSION_MAJOR or int(parts[1]) not in _VERSION_MINORS:
        ctx.fail(path, f'"{text}" is not supported (this runtime reads 1.0.x and 1.1.x)')
    return text


def _section(ctx: _Context, obj: dict[str, Any], key: str, path: str, known: frozenset[str], *,
             required: bool = False) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        if required:
            ctx.fail(path, "is required")
        return {}
    section = _obj(ctx, value, path)
    ctx.check_keys(section, known, path)
    return section


def _required(ctx: _Context, obj: dict[str, Any], key: str, path: str) -> Any:
    if obj.get(key) is None:
        ctx.report(_child(path, key), "is required")
    return obj.get(key) or ""


def _refuse_if_set(ctx: _Context, obj: dict[str, Any], key: str, path: str) -> None:
    if _is_set(obj.get(key)):
        ctx.report(_child(path, key), "not supported")


def _parse_seccomp(ctx: _Context, value: Any, path: str) -> Any:
    """linux.seccomp through the seccomp filter's own OCI-form parser
    (nsinit.config.seccomp, imported only when a config has a filter)."""
    if value is None:
        return None
    from nsinit.config import seccomp

    config, warnings = seccomp.parse_oci(value, ctx.source, path)
    ctx.warnings.extend(warnings)
    return config


def _parse_rootfs_propagation(ctx: _Context, value: Any, path: str) -> int:
    """The propagation of the container's "/" after pivot_root, as runc sets
    it (a new peer group inside the container's own mount namespace: the
    host's mounts were made private or slave before, so nothing flows back).
    Private, nsinit's own choice, is 0."""
    text = _opt_str(ctx, value, path)
    if not text or text in _ROOTFS_PROPAGATIONS:
        return 0
    if text not in names.MOUNT_PROPAGATION:
        ctx.fail(path, f'"{text}" is not one of {", ".join(names.MOUNT_PROPAGATION)}')
    return names.MOUNT_PROPAGATION[text]


# --- process -----------------------------------------------------------------

def _parse_args(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    args = tuple(_str(ctx, item, _item(path, i)) for i, item in enumerate(_opt_list(ctx, value, path)))
    if not args:
        ctx.fail(path, "must name the command to run")
    if not args[0]:
        ctx.fail(_item(path, 0), "must not be empty")
    return args


def _parse_env(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    # Absent is empty: the container.json default (PATH) is not OCI's.
    return _parse_environment(ctx, _opt_list(ctx, value, path), path)


def _parse_cwd(ctx: _Context, value: Any, path: str) -> str:
    if value is None or value == "":
        ctx.fail(path, "is required")
    # ".." is harmless here: chdir happens after pivot_root, inside the container.
    return _clean_abs_path(ctx, value, path, allow_dotdot=True)


def _parse_user(ctx: _Context, user: dict[str, Any], path: str) -> str:
    """uid:gid, numeric, as the identity step takes it (no passwd lookup of
    the group: OCI gives exactly the ids and additionalGids)."""
    uid = _opt_int(ctx, user.get("uid"), _child(path, "uid"), lo=0, hi=2**32 - 2)
    gid = _opt_int(ctx, user.get("gid"), _child(path, "gid"), lo=0, hi=2**32 - 2)
    return f"{uid}:{gid}"


def _parse_gids(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    gids = [str(_int(ctx, item, _item(path, i), lo=0, hi=2**32 - 2))
            for i, item in enumerate(_opt_list(ctx, value, path))]
    return tuple(dict.fromkeys(gids))


def _parse_capabilities(ctx: _Context, value: Any, path: str) -> CapabilitySets:
    # Absent is none: the spec lists what the process keeps.
    if value is None:
        return CapabilitySets()
    return _cap_sets(ctx, _obj(ctx, value, path), path)


def _parse_console_size(ctx: _Context, value: Any, path: str) -> tuple[int, int] | None:
    if value is None:
        return None
    obj = _obj(ctx, value, path)
    ctx.check_keys(obj, frozenset({"height", "width"}), path)
    return (_opt_int(ctx, obj.get("height"), _child(path, "height"), lo=0, hi=65535),
            _opt_int(ctx, obj.get("width"), _child(path, "width"), lo=0, hi=65535))


def _parse_annotations(ctx: _Context, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    return tuple((key, _str(ctx, text, _child(path, key))) for key, text in _obj(ctx, value, path).items())


# --- mounts ------------------------------------------------------------------

def _parse_mounts(ctx: _Context, value: Any, path: str) -> tuple[MountConfig, ...]:
    """The mounts in config.json order; no default is added (OCI lists them all)."""
    mounts = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        mount = ctx.collect(_parse_oci_mount, item, _item(path, i))  # each entry's error is kept
        if mount is not None:
            mounts.append(mount)
    return tuple(mounts)


def _parse_oci_mount(ctx: _Context, item: Any, path: str) -> MountConfig:
    obj = _obj(ctx, item, path)
    ctx.check_keys(obj, _MOUNT_KEYS, path)
    for key in ("uidMappings", "gidMappings"):  # idmapped mounts (1.1)
        _refuse_if_set(ctx, obj, key, path)
    options = _opt_list(ctx, obj.get("options"), _child(path, "options"))
    kept = []
    for j, option in enumerate(options):
        text = _str(ctx, option, _item(_child(path, "options"), j))
        if text in _UNSUPPORTED_MOUNT_OPTIONS:
            ctx.fail(_item(_child(path, "options"), j), f'"{text}" is not supported')
        if text not in _NOOP_MOUNT_OPTIONS:
            kept.append(text)
    if obj.get("type") == "devtmpfs":
        # The container.json loader reads it as a 2014 marker and drops the mount.
        ctx.fail(_child(path, "type"), '"devtmpfs" is not supported (it would expose the host\'s devices)')
    bind = any(text in ("bind", "rbind") for text in kept)
    if obj.get("type") is None and not bind:
        ctx.fail(_child(path, "type"), 'is required (or a "bind" or "rbind" option)')
    # Always the later form ({type, options}): without "options" the shared
    # parser would read a type-less entry as a 2014 read-only bind.
    shared = {"destination": obj.get("destination"), "source": obj.get("source"),
              "type": obj.get("type"), "options": kept}
    mount = _parse_mount(ctx, shared, path)
    if mount is None:  # pragma: no cover - only devtmpfs, refused above
        ctx.fail(path, "is not a mount")
    return mount


# --- namespaces and id mappings ----------------------------------------------

def _parse_namespaces(ctx: _Context, value: Any, path: str) -> tuple[NamespaceConfig, ...]:
    namespaces: list[NamespaceConfig] = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        entry_path = _item(path, i)
        obj = _obj(ctx, item, entry_path)
        ctx.check_keys(obj, frozenset({"type", "path"}), entry_path)
        if obj.get("type") is None:
            ctx.fail(_child(entry_path, "type"), "is required")
        kind = _str(ctx, obj["type"], _child(entry_path, "type"))
        if kind not in NAMESPACES:
            ctx.fail(_child(entry_path, "type"),
                     f'unknown namespace "{kind}" (expected one of {", ".join(NAMESPACES)})')
        ns_path = _opt_str(ctx, obj.get("path"), _child(entry_path, "path"))
        if ns_path and not ns_path.startswith("/"):
            ctx.fail(_child(entry_path, "path"), "must be an absolute path")
        name = NAMESPACES[kind]
        if any(ns.type == name for ns in namespaces):
            ctx.fail(_child(entry_path, "type"), f'duplicate namespace "{kind}"')
        namespaces.append(NamespaceConfig(name, ns_path))
    return tuple(namespaces)


def _parse_id_mappings(ctx: _Context, value: Any, path: str) -> tuple[IdMap, ...]:
    """container.json's id-map parser, with the OCI spelling of its keys."""
    return config_namespaces._parse_id_mappings(ctx, value, path, config_namespaces.OCI_ID_MAP_KEYS)


# --- devices -----------------------------------------------------------------

def _parse_devices(ctx: _Context, value: Any, path: str) -> tuple[DeviceConfig, ...]:
    devices: list[DeviceConfig] = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        device = ctx.collect(_parse_device_node, item, _item(path, i))
        if device is None:
            continue
        if any(other.path == device.path for other in devices):
            ctx.report(_child(_item(path, i), "path"), f'duplicate device "{device.path}"')
        devices.append(device)
    return tuple(devices)


def _parse_device_node(ctx: _Context, item: Any, path: str) -> DeviceConfig:
    obj = _obj(ctx, item, path)
    ctx.check_keys(obj, _DEVICE_KEYS, path)
    # fileMode is a whole st_mode as Go's os.FileMode writes it (podman:
    # 8576 = S_IFCHR|0600); the node type comes from "type".
    mode = _opt_int(ctx, obj.get("fileMode"), _child(path, "fileMode"), default=0o666, lo=0, hi=0o177777)
    shared = {key: obj.get(key) for key in ("type", "path", "major", "minor", "uid", "gid")}
    shared["file_mode"] = mode & 0o7777
    return _parse_device(ctx, shared, path, rule=False)


def _parse_device_rules(ctx: _Context, value: Any, path: str) -> dict[str, Any]:
    """linux.resources.devices (applied in order, the last match wins) as
    nsinit's deny-all base + allows, then denies.

    Everything before the last rule covering all devices is overridden by
    it; a deny that a later allow would undo cannot be said in that form
    and is refused rather than reordered.
    """
    rules = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        rule_path = _item(path, i)
        obj = _obj(ctx, item, rule_path)
        ctx.check_keys(obj, _DEVICE_RULE_KEYS, rule_path)
        allow = _bool(ctx, obj.get("allow"), _child(rule_path, "allow"))
        kind = _opt_str(ctx, obj.get("type"), _child(rule_path, "type"), default="a")
        if kind not in ("a", "b", "c"):
            ctx.fail(_child(rule_path, "type"), f'unknown device type "{kind}" (expected a, b or c)')
        major = _opt_int(ctx, obj.get("major"), _child(rule_path, "major"), default=-1, lo=-1)
        minor = _opt_int(ctx, obj.get("minor"), _child(rule_path, "minor"), default=-1, lo=-1)
        access = _opt_str(ctx, obj.get("access"), _child(rule_path, "access"), default="rwm")
        if not access or set(access) - set("rwm") or len(set(access)) != len(access):
            ctx.fail(_child(rule_path, "access"), 'must be a combination of "r", "w" and "m"')
        covers_all = kind == "a" and major == -1 and minor == -1 and set(access) == set("rwm")
        rules.append((allow, DeviceConfig(kind, "", major, minor, access), covers_all, rule_path))
    last_all = max((i for i, rule in enumerate(rules) if rule[2]), default=-1)
    allow_all = last_all >= 0 and rules[last_all][0]
    allowed: list[DeviceConfig] = []
    denied: list[DeviceConfig] = []
    for allow, device, _, rule_path in rules[last_all + 1:]:
        if allow and denied:
            ctx.fail(rule_path, "an allow after a deny is not supported (list the denies last)")
        (allowed if allow else denied).append(device)
    if allow_all and allowed + denied:
        ctx.fail(path, "rules after allowing every device are not supported")
    return {"allow_all_devices": allow_all or None, "allowed_devices": tuple(allowed),
            "denied_devices": tuple(denied)}


# --- cgroups -----------------------------------------------------------------

def _parse_cgroups(ctx: _Context, linux: dict[str, Any], container_id: str) -> CgroupConfig:
    path = _opt_str(ctx, linux.get("cgroupsPath"), "linux.cgroupsPath")
    if ":" in path:
        ctx.fail("linux.cgroupsPath", f'"{path}" is the systemd form (slice:prefix:name); nsinit '
                                      "manages cgroupfs only (no systemd as PID 1 here)")
    if ".." in path.split("/"):
        ctx.fail("linux.cgroupsPath", 'must not contain ".."')
    resources_path = "linux.resources"
    resources = _section(ctx, linux, "resources", resources_path, _RESOURCE_KEYS)
    for key in _UNSUPPORTED[resources_path]:
        _refuse_if_set(ctx, resources, key, resources_path)
    limits: dict[str, Any] = {}
    limits.update(ctx.collect(_parse_device_rules, resources.get("devices"), _child(resources_path, "devices"))
                  or {})
    limits.update(ctx.collect(_parse_memory, resources, _child(resources_path, "memory")) or {})
    limits.update(ctx.collect(_parse_cpu, resources, _child(resources_path, "cpu")) or {})
    limits.update(ctx.collect(_parse_pids, resources, _child(resources_path, "pids")) or {})
    limits.update(ctx.collect(_parse_block_io, resources, _child(resources_path, "blockIO")) or {})
    limits["hugetlb_limit"] = ctx.collect(_parse_hugepages, resources.get("hugepageLimits"),
                                          _child(resources_path, "hugepageLimits")) or ()
    return CgroupConfig(name="" if path else container_id, path=path, resources=CgroupResources(**limits))


def _subsection(ctx: _Context, resources: dict[str, Any], path: str, known: frozenset[str]) -> dict[str, Any]:
    key = path.rsplit(".", 1)[1]
    obj = _section(ctx, resources, key, path, known)
    for name in _UNSUPPORTED.get(path, ()):
        _refuse_if_set(ctx, obj, name, path)
    return obj


def _limit(ctx: _Context, obj: dict[str, Any], key: str, path: str, *, unlimited: bool = False) -> int | None:
    """A count or size; 0 is "not set" (Go's zero value), -1 unlimited where allowed."""
    value = _opt_int(ctx, obj.get(key), _child(path, key), lo=-1 if unlimited else 0)
    return value or None


def _parse_memory(ctx: _Context, resources: dict[str, Any], path: str) -> dict[str, Any]:
    obj = _subsection(ctx, resources, path, _MEMORY_KEYS)
    limit = _opt_int(ctx, obj.get("limit"), _child(path, "limit"), lo=-1)
    if obj.get("useHierarchy") is False:
        # cgroup v1 has use_hierarchy=1 for good since Linux 6.0 and nsinit never clears it.
        ctx.fail(_child(path, "useHierarchy"), "false is not supported")
    swappiness = obj.get("swappiness")
    return {
        "memory": None if limit in (0, -1) else limit,   # -1: no limit
        "memory_reservation": _limit(ctx, obj, "reservation", path, unlimited=True),
        "memory_swap": _limit(ctx, obj, "swap", path, unlimited=True),
        "memory_swappiness": None if swappiness is None else _int(ctx, swappiness, _child(path, "swappiness"),
                                                                    lo=0, hi=100),
        "oom_kill_disable": None if obj.get("disableOOMKiller") is None else _bool(
            ctx, obj["disableOOMKiller"], _child(path, "disableOOMKiller")),
    }


def _parse_cpu(ctx: _Context, resources: dict[str, Any], path: str) -> dict[str, Any]:
    obj = _subsection(ctx, resources, path, _CPU_KEYS)
    cpu_lists = {}
    for key, target in (("cpus", "cpuset_cpus"), ("mems", "cpuset_mems")):
        text = _opt_str(ctx, obj.get(key), _child(path, key))
        if text:
            from nsinit.config.cgroups import _check_cpu_list  # only for a cpuset: see _throttle

            _check_cpu_list(ctx, text, _child(path, key))
        cpu_lists[target] = text or None
    return {
        "cpu_shares": _limit(ctx, obj, "shares", path),
        "cpu_quota": _limit(ctx, obj, "quota", path, unlimited=True),
        "cpu_period": _limit(ctx, obj, "period", path),
        **cpu_lists,
    }


def _parse_pids(ctx: _Context, resources: dict[str, Any], path: str) -> dict[str, Any]:
    obj = _subsection(ctx, resources, path, frozenset({"limit"}))
    return {"pids_limit": _limit(ctx, obj, "limit", path, unlimited=True)}


def _parse_block_io(ctx: _Context, resources: dict[str, Any], path: str) -> dict[str, Any]:
    obj = _subsection(ctx, resources, path, _BLOCK_IO_KEYS)
    limits: dict[str, Any] = {"blkio_weight": _limit(ctx, obj, "weight", path)}
    for key, target in _THROTTLES:
        # {major, minor, rate} objects: the shared parser reads that form.
        limits[target] = _throttle(ctx, obj.get(key), _child(path, key))
    return limits


def _throttle(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    # The cgroup-limit parsers of nsinit.config.cgroups (~0.1 ms to import)
    # only for a config that sets a throttle or a cpuset: most set neither.
    if value is None:
        return ()
    from nsinit.config.cgroups import _parse_throttle

    return _parse_throttle(ctx, value, path)


def _parse_hugepages(ctx: _Context, value: Any, path: str) -> tuple[tuple[str, int], ...]:
    limits = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        item_path = _item(path, i)
        obj = _obj(ctx, item, item_path)
        ctx.check_keys(obj, frozenset({"pageSize", "limit"}), item_path)
        page_size = _opt_str(ctx, obj.get("pageSize"), _child(item_path, "pageSize"))
        if not (page_size.isascii() and page_size.isalnum()):  # part of a file name
            ctx.fail(_child(item_path, "pageSize"), 'must be a page size such as "2MB"')
        limits.append((page_size, _int(ctx, obj.get("limit"), _child(item_path, "limit"), lo=0)))
    return tuple(limits)


# --- hooks -------------------------------------------------------------------

def _parse_hooks(ctx: _Context, value: Any, path: str) -> Hooks | None:
    """None when config.json names no hook: most bundles have none, and
    their create loads no hook code at all (nsinit.oci.hooks, the runner)."""
    if value is None:
        return None
    from nsinit.oci.hooks import HOOK_KINDS, Hooks

    obj = _obj(ctx, value, path)
    ctx.check_keys(obj, frozenset(key for key, _ in HOOK_KINDS), path)
    kinds = {}
    for key, attribute in HOOK_KINDS:
        kind_path = _child(path, key)
        kinds[attribute] = tuple(_parse_hook(ctx, item, _item(kind_path, i))
                                 for i, item in enumerate(_opt_list(ctx, obj.get(key), kind_path)))
    hooks = Hooks(**kinds)
    return None if hooks == Hooks() else hooks


def _parse_hook(ctx: _Context, item: Any, path: str) -> Hook:
    obj = _obj(ctx, item, path)
    ctx.check_keys(obj, _HOOK_KEYS, path)
    if obj.get("path") is None:
        ctx.fail(_child(path, "path"), "is required")
    hook_path = _str(ctx, obj["path"], _child(path, "path"))
    if not hook_path.startswith("/"):
        ctx.fail(_child(path, "path"), "must be an absolute path")
    args = tuple(_str(ctx, arg, _item(_child(path, "args"), i))
                 for i, arg in enumerate(_opt_list(ctx, obj.get("args"), _child(path, "args"))))
    env = _parse_env(ctx, obj.get("env"), _child(path, "env"))
    timeout = None
    if obj.get("timeout") is not None:
        timeout = _int(ctx, obj["timeout"], _child(path, "timeout"), lo=1)  # spec: MUST be > 0
    from nsinit.oci.hooks import Hook

    return Hook(path=hook_path, args=args, env=env, timeout=timeout)


# --- rules across fields -----------------------------------------------------

def _check_namespace_requirements(ctx: _Context, config: Config, linux: dict[str, Any], data_mounts: Any) -> None:
    """What would change the host, or cannot work, without the namespace."""

    def need(namespace: str, where: str) -> None:
        if not config.has_namespace(namespace):
            ctx.report(where, f'requires a "{_OCI_NAMESPACE_NAMES[namespace]}" namespace in linux.namespaces')

    if not config.has_namespace("NEWNS"):
        # No mount namespace: the container shares the host's mount table
        # (runtime-tools' linux_ns_itype), and nsinit chroots into root.path.
        # Its mounts would be made in the host's table: ignored, as runc
        # ignores them, said in the log; what must hide or protect a path
        # cannot be done without one, and is refused (runc refuses it too).
        if _is_set(data_mounts):
            ctx.warn("mounts", "ignored: there is no mount namespace (linux.namespaces has no \"mount\"); "
                               "they would be mounted on the host")
        for where, wanted in (("linux.maskedPaths", config.mask_paths), ("linux.readonlyPaths", config.readonly_paths),
                              ("root.readonly", config.readonlyfs)):
            if wanted:
                need("NEWNS", where)
    if config.hostname:
        need("NEWUTS", "hostname")
    for attribute, key in (("uid_mappings", "uidMappings"), ("gid_mappings", "gidMappings")):
        if getattr(config, attribute):
            need("NEWUSER", f"linux.{key}")
    user_ns = config.namespace("NEWUSER")
    if user_ns is not None and not user_ns.path:
        for attribute, key in (("uid_mappings", "uidMappings"), ("gid_mappings", "gidMappings")):
            if not getattr(config, attribute):
                ctx.report(f"linux.{key}", 'is required by a new "user" namespace')
    for key, _ in config.sysctl:
        namespace = _sysctl_namespace(key)
        if namespace is None:
            ctx.report(_child("linux.sysctl", key), "not namespaced, refusing to change the host")
        else:
            need(namespace, _child("linux.sysctl", key))


# --- runc update: LinuxResources of a live container ---------------------------

def parse_resources_update(data: Any, source: str) -> tuple[dict[str, Any], list[str]]:
    """``nsinit-runc update --resources``: runtime-spec LinuxResources ->
    the CgroupResources fields it sets (Container.update's keywords), and
    warnings (unknown keys).  Read by the same part parsers as a bundle's
    ``linux.resources``, so a field means the same at create and at update;
    one nsinit cannot change on a live container is an error naming it.
    A limit of -1 is kept: on update it lifts the limit."""
    path = "linux.resources"
    ctx = _Context(source, "")
    if not isinstance(data, dict):
        ctx.fail("", "must be a JSON object (runtime-spec LinuxResources)")
    ctx.check_keys(data, _RESOURCE_KEYS, path)
    for key in _UNSUPPORTED[path]:
        _refuse_if_set(ctx, data, key, path)
    if _is_set(data.get("devices")):
        # Device rules are written once, at create (nsinit.cgroups); runc's
        # update does not change them either.
        ctx.report(_child(path, "devices"), "cannot be changed on a live container")
    changes: dict[str, Any] = {}
    for parse, key in ((_parse_memory, "memory"), (_parse_cpu, "cpu"), (_parse_pids, "pids"),
                       (_parse_block_io, "blockIO")):
        changes.update(ctx.collect(parse, data, _child(path, key)) or {})
    changes["hugetlb_limit"] = ctx.collect(_parse_hugepages, data.get("hugepageLimits"),
                                           _child(path, "hugepageLimits")) or ()
    ctx.raise_errors()
    memory = data.get("memory")
    if isinstance(memory, dict) and memory.get("limit") == -1:
        changes["memory"] = -1  # "no limit": the create parser's None would leave the old one
    return {key: value for key, value in changes.items() if value is not None and value != ()}, ctx.warnings
