"""Read container.json of any era into one normalised, validated Config.

Three generations of libcontainer wrote this file (2014 docker pkg/libcontainer,
mid-2014 docker/libcontainer, 2015 configs.Config) and later runc added more;
their sources are in opencontainers/runc's history (runc@ed290121599c:
container.go, runc@bdafa085aeca:config.go, runc@dcdbf01076b5:configs/).  Every form is accepted
and folded into the model in ``nsinit.config.model``; everything that would
only fail later, half-way through building a container, is rejected here with
the field path that is wrong (``mounts[2].destination: must be an absolute
path``).  Unknown keys are warnings, not errors: Go's decoder ignored them, and
old files carry keys of retired features.

The part parsers here (mounts, capabilities, rlimits, sysctl, devices, umask)
also read an OCI config.json (nsinit/oci/spec.py): one meaning per part
through both front doors.  Both loaders read the file, collect errors and
read typed fields through ``nsinit.config.parse``.

This module is on the start-up path of every container, so it imports only
small stdlib modules; ``ipaddress`` is imported inside the one function that
checks addresses.
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.config.cgroups import _parse_cgroups
from nsinit.config.defaults import (
    DEFAULT_CAPABILITIES,
    DEFAULT_ENVIRONMENT,
    DEFAULT_MASK_PATHS,
    DEFAULT_MOUNTS,
    DEFAULT_PARENT_DEATH_SIGNAL,
    DEFAULT_READONLY_PATHS,
    DEFAULT_UMASK,
)
from nsinit.config.model import (
    CapabilitySets,
    Config,
    Rlimit,
)
from nsinit.config.mounts import (
    _parse_effective_devices,
    _parse_effective_mounts,
    _parse_path_list,
    _parse_rootfs,
)
from nsinit.config.namespaces import (
    _parse_hostname,
    _parse_id_mappings,
    _parse_namespaces,
    _parse_sysctl,
    _sysctl_namespace,
)
from nsinit.config.networks import (
    _check_route_next_hops,
    _join_netns_networks,
    _parse_networks,
    _parse_routes,
)
from nsinit.config.parse import (
    _Context,
    _bool,
    _check_every_string,
    _child,
    _clean_abs_path,
    _int,
    _item,
    _list,
    _obj,
    _opt_bool,
    _opt_int,
    _opt_list,
    _opt_str,
    _pick,
    _read_json,
    _str,
    _warn_if_set,
)
from nsinit.config.recorded import CAP_SET_KEYS
from nsinit.record import replace

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.rootless import Caller

CONFIG_FILE = "container.json"

# Module attributes (not constants inlined in the checks) so tests can point
# them at fake files.
APPARMOR_ENABLED_FILE = "/sys/module/apparmor/parameters/enabled"
SELINUX_FS = "/sys/fs/selinux"


# Keys known at the top level, across all eras.
_TOP_KEYS = frozenset({
    "rootfs", "hostname", "namespaces", "capabilities", "capabilities_mask",
    "mounts", "devices", "device_nodes", "mount_config", "environment", "user",
    "additional_groups", "working_dir", "tty", "readonlyfs", "readonly_fs",
    "no_pivot_root", "context", "apparmor_profile", "process_label",
    "mount_label", "restrict_sys", "restrictions", "uid_mappings",
    "gid_mappings", "mask_paths", "readonly_paths", "rlimits",
    "no_new_privileges", "oom_score_adj", "sysctl", "system_properties",
    "networks", "routes", "cgroups", "parent_death_signal", "version",
    "labels", "hooks", "Hooks", "seccomp", "pivot_dir", "privatefs",
    "rootPropagation", "umask",
})
# Known but not implemented: a warning when set, silence when zero/empty
# (2015 configs write every key, so zero values are common and harmless).
# Hooks was an untagged Go field, hence the capitalised spelling.
_UNSUPPORTED_TOP_KEYS = ("hooks", "Hooks", "pivot_dir", "privatefs", "rootPropagation")

_MOUNT_CONFIG_KEYS = frozenset({"no_pivot_root", "readonly_fs", "mounts", "device_nodes", "mount_label"})
_CONTEXT_KEYS = frozenset({"apparmor_profile", "process_label", "mount_label", "restrictions"})
_RLIMIT_KEYS = frozenset({"type", "soft", "hard"})

_GO_RLIM_INFINITY = 2**64 - 1  # RLIM_INFINITY as Go's uint64 configs write it


# --- public API --------------------------------------------------------------

def load_config(root: str, config_path: str | None = None) -> tuple[Config, list[str]]:
    """Read <root>/container.json (or config_path); return (config, warnings).

    With ``config_path``, a config without a ``rootfs`` runs ``root`` (``nsinit
    --config /elsewhere/c.json exec`` in a rootfs directory runs that
    directory), not the directory the file happens to sit in.
    """
    path = os.path.abspath(config_path if config_path else os.path.join(root, CONFIG_FILE))
    source = os.path.basename(path)
    data = _read_json(path, source)
    default_rootfs = os.path.abspath(root) if config_path else None
    caller = None
    if os.geteuid() != 0:  # a plain user's: root's start-up does not load nsinit.rootless
        from nsinit import rootless

        caller = rootless.Caller.current()
    config, warnings = parse_config(data, source, os.path.dirname(path), default_rootfs=default_rootfs,
                                    caller=caller)
    return replace(config, source=path), warnings


def parse_config(data: dict, source: str, base_dir: str, *,
                 default_rootfs: str | None = None, caller: Caller | None = None) -> tuple[Config, list[str]]:
    """Normalise and validate decoded JSON; ``source`` names the file in errors.

    Relative paths (rootfs, bind sources) are relative to ``base_dir``, the
    directory holding the config file; without a ``rootfs`` field the rootfs
    is ``default_rootfs`` if given, else ``base_dir``.
    """
    ctx = _Context(source, os.path.abspath(base_dir))
    ctx.default_rootfs = default_rootfs
    if not isinstance(data, dict):
        ctx.fail("", "must be a JSON object")
    _check_every_string(ctx, data)
    ctx.check_keys(data, _TOP_KEYS, "")
    for key in _UNSUPPORTED_TOP_KEYS:
        _warn_if_set(ctx, data, key, "")
    mount_config = ctx.collect(_section, data, "mount_config", _MOUNT_CONFIG_KEYS)
    context = ctx.collect(_section, data, "context", _CONTEXT_KEYS)
    # restrict_sys / restrictions (2014) are accepted and need no handling:
    # the default mask and read-only paths and the read-only sysfs already do
    # what they asked for.  version and labels are informational.

    origin: dict[str, str] = {}

    def pick(field: str, candidates: list[tuple[dict | None, str, str]]) -> Any:
        value, origin[field] = ctx.collect(_pick, candidates) or (None, candidates[0][2])
        return value

    raw_mounts = pick("mounts", [(data, "mounts", "mounts"), (mount_config, "mounts", "mount_config.mounts")])
    raw_devices = pick("devices", [
        (data, "devices", "devices"),
        (data, "device_nodes", "device_nodes"),
        (mount_config, "device_nodes", "mount_config.device_nodes"),
    ])
    readonlyfs = pick("readonlyfs", [
        (data, "readonlyfs", "readonlyfs"),
        (data, "readonly_fs", "readonly_fs"),
        (mount_config, "readonly_fs", "mount_config.readonly_fs"),
    ])
    no_pivot_root = pick("no_pivot_root", [
        (data, "no_pivot_root", "no_pivot_root"),
        (mount_config, "no_pivot_root", "mount_config.no_pivot_root"),
    ])
    apparmor_profile = pick("apparmor_profile", [
        (data, "apparmor_profile", "apparmor_profile"),
        (context, "apparmor_profile", "context.apparmor_profile"),
    ])
    process_label = pick("process_label", [
        (data, "process_label", "process_label"),
        (context, "process_label", "context.process_label"),
    ])
    mount_label = pick("mount_label", [
        (data, "mount_label", "mount_label"),
        (mount_config, "mount_label", "mount_config.mount_label"),
        (context, "mount_label", "context.mount_label"),
    ])
    raw_sysctl = pick("sysctl", [(data, "sysctl", "sysctl"), (data, "system_properties", "system_properties")])

    config = Config(
        source=source,
        rootfs=ctx.collect(_parse_rootfs, data.get("rootfs"), "rootfs"),
        hostname=ctx.collect(_parse_hostname, data.get("hostname"), "hostname"),
        namespaces=ctx.collect(_parse_namespaces, data.get("namespaces"), "namespaces"),
        uid_mappings=ctx.collect(_parse_id_mappings, data.get("uid_mappings"), "uid_mappings"),
        gid_mappings=ctx.collect(_parse_id_mappings, data.get("gid_mappings"), "gid_mappings"),
        capabilities=ctx.collect(_parse_capabilities, data),
        mounts=ctx.collect(_parse_effective_mounts, raw_mounts, origin["mounts"]),
        devices=ctx.collect(_parse_effective_devices, raw_devices, origin["devices"]),
        environment=ctx.collect(_parse_environment, data.get("environment"), "environment"),
        user=ctx.collect(_parse_user, data.get("user"), "user"),
        additional_groups=ctx.collect(_parse_groups, data.get("additional_groups"), "additional_groups"),
        working_dir=ctx.collect(_parse_working_dir, data.get("working_dir"), "working_dir"),
        umask=ctx.collect(_parse_umask, data.get("umask"), "umask"),
        tty=None if data.get("tty") is None else ctx.collect(_bool, data["tty"], "tty"),
        readonlyfs=ctx.collect(_opt_bool, readonlyfs, origin["readonlyfs"]),
        no_pivot_root=ctx.collect(_opt_bool, no_pivot_root, origin["no_pivot_root"]),
        mask_paths=ctx.collect(_parse_path_list, data.get("mask_paths"), "mask_paths", DEFAULT_MASK_PATHS),
        readonly_paths=ctx.collect(_parse_path_list, data.get("readonly_paths"), "readonly_paths", DEFAULT_READONLY_PATHS),
        rlimits=ctx.collect(_parse_rlimits, data.get("rlimits"), "rlimits"),
        no_new_privileges=ctx.collect(_opt_bool, data.get("no_new_privileges"), "no_new_privileges"),
        oom_score_adj=ctx.collect(_parse_oom_score_adj, data.get("oom_score_adj"), "oom_score_adj"),
        sysctl=ctx.collect(_parse_sysctl, raw_sysctl, origin["sysctl"]),
        networks=ctx.collect(_parse_networks, data.get("networks"), "networks"),
        routes=ctx.collect(_parse_routes, data.get("routes"), "routes"),
        cgroups=ctx.collect(_parse_cgroups, data.get("cgroups"), "cgroups"),
        apparmor_profile=ctx.collect(_opt_str, apparmor_profile, origin["apparmor_profile"]),
        process_label=ctx.collect(_opt_str, process_label, origin["process_label"]),
        mount_label=ctx.collect(_opt_str, mount_label, origin["mount_label"]),
        parent_death_signal=ctx.collect(_parse_parent_death_signal, data.get("parent_death_signal"), "parent_death_signal"),
        seccomp=ctx.collect(_parse_seccomp, data.get("seccomp")),
    )
    # The rules across fields are checked once every field is valid: with a
    # field that failed, they would judge the default standing in for it.
    ctx.raise_errors()
    if caller is not None:
        # Without root: a user namespace and maps of the caller's own ids
        # (nsinit/config/rootless.py), before the rules below judge them
        # (and before a capabilities_mask looks for the user namespace).
        from nsinit.config.rootless import apply_rootless

        config = apply_rootless(ctx, config, caller)
    if data.get("capabilities_mask") is not None:
        config = _limit_mask_to_caller(config)
    config = ctx.collect(_join_netns_networks, config) or config
    _check_namespace_requirements(ctx, config, origin)
    _check_route_next_hops(ctx, config)
    _check_security_modules(ctx, config, origin)
    ctx.raise_errors()
    return config, ctx.warnings


# --- top-level sections ------------------------------------------------------

def _section(ctx: _Context, data: dict, key: str, known: frozenset[str]) -> dict | None:
    """A nested object of the top level (2014 mount_config, context), keys checked."""
    value = data.get(key)
    if value is None:
        return None
    obj = _obj(ctx, value, key)
    ctx.check_keys(obj, known, key)
    return obj


# --- rootfs, hostname, process -----------------------------------------------


def _parse_seccomp(ctx: _Context, value: Any) -> Any:
    if value is None:
        return None
    from nsinit.config import seccomp  # only a config with a filter pays for it

    config, warnings = seccomp.parse_libcontainer(value, ctx.source)
    ctx.warnings.extend(warnings)
    return config


def _parse_environment(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_ENVIRONMENT
    env = []
    for i, item in enumerate(_list(ctx, value, path)):
        entry = _str(ctx, item, _item(path, i))
        key, sep, _ = entry.partition("=")
        if not sep:
            ctx.fail(_item(path, i), 'must be "NAME=VALUE"')
        if not key:
            ctx.fail(_item(path, i), "has an empty variable name")
        env.append(entry)
    return tuple(env)


def _parse_user(ctx: _Context, value: Any, path: str) -> str:
    if value is None:
        return "root"
    if isinstance(value, int) and not isinstance(value, bool):
        spec = str(_int(ctx, value, path, lo=0))
    else:
        spec = _str(ctx, value, path) or "root"  # 2014: "" meant root, like "root"
    from nsinit.identity import parse_user_spec  # small; the child loads it anyway

    try:
        parse_user_spec(spec)  # here, so a bad spec fails before anything is created
    except ValueError as err:
        ctx.fail(path, str(err))
    return spec


def _parse_groups(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    groups = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        if isinstance(item, int) and not isinstance(item, bool):
            groups.append(str(_int(ctx, item, _item(path, i), lo=0)))  # 2015 wrote gids as ints
            continue
        group = _str(ctx, item, _item(path, i))
        if not group:
            ctx.fail(_item(path, i), "must not be empty")
        groups.append(group)
    return tuple(groups)


def _parse_working_dir(ctx: _Context, value: Any, path: str) -> str:
    text = _opt_str(ctx, value, path)
    if not text:
        return "/"
    # ".." is harmless here: chdir happens after pivot_root, inside the container.
    return _clean_abs_path(ctx, text, path, allow_dotdot=True)


def _parse_umask(ctx: _Context, value: Any, path: str) -> int:
    """An octal string ("0022", "077"), or a number as OCI's process.user.umask
    writes it (18 = 0o22).  Unset: 0022, as runc gives; never the caller's."""
    if value is None:
        return DEFAULT_UMASK
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(ctx, value, path, lo=0, hi=0o777)
    text = _str(ctx, value, path)
    if not (1 <= len(text) <= 4 and all(ch in "01234567" for ch in text)) or int(text, 8) > 0o777:
        ctx.fail(path, f'"{text}" is not a umask: give octal digits such as "0022" or "0077"')
    return int(text, 8)


def _parse_oom_score_adj(ctx: _Context, value: Any, path: str) -> int | None:
    return None if value is None else _int(ctx, value, path, lo=-1000, hi=1000)


def _parse_parent_death_signal(ctx: _Context, value: Any, path: str) -> int:
    # 0 = no signal: 2015 configs always write the key, with 0 for "unset".
    return _opt_int(ctx, value, path, default=DEFAULT_PARENT_DEATH_SIGNAL, lo=0, hi=64)


# --- capabilities ------------------------------------------------------------

def _parse_capabilities(ctx: _Context, data: dict) -> CapabilitySets:
    caps = data.get("capabilities")
    mask = data.get("capabilities_mask")
    if caps is not None and mask is not None:
        ctx.fail("capabilities_mask", 'cannot be combined with "capabilities"')
    if mask is not None:
        return _whitelist(_caps_kept_by_mask(ctx, mask, "capabilities_mask"))
    if caps is None:
        return _whitelist(DEFAULT_CAPABILITIES)
    if isinstance(caps, list):
        # From May 2014 a list is a whitelist (the Feb-Mar 2014 drop-list
        # meaning was renamed capabilities_mask and is not guessed at).
        return _whitelist(_cap_list(ctx, caps, "capabilities"))
    if isinstance(caps, dict):
        return _cap_sets(ctx, caps, "capabilities")
    ctx.fail("capabilities", "must be a list or an object")


def _whitelist(caps: list[str] | tuple[str, ...]) -> CapabilitySets:
    # A plain list fills bounding, effective and permitted only.  Inheritable
    # and ambient stay empty: runc used to fill inheritable too, so programs
    # with inheritable file capabilities gained them on execve even for a
    # non-root user (CVE-2022-29162).
    allowed = _sorted_caps(caps)
    return CapabilitySets(bounding=allowed, effective=allowed, permitted=allowed)


def _sorted_caps(caps: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(caps), key=names.CAPABILITIES.__getitem__))


def _cap_name(ctx: _Context, value: Any, path: str) -> str:
    text = _str(ctx, value, path)
    name = text.upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in names.CAPABILITIES:
        ctx.fail(path, f'unknown capability "{text}"')
    return name


def _cap_list(ctx: _Context, value: Any, path: str) -> list[str]:
    return [_cap_name(ctx, item, _item(path, i)) for i, item in enumerate(_opt_list(ctx, value, path))]


def _cap_sets(ctx: _Context, obj: dict, path: str) -> CapabilitySets:
    """The object form; runc writes the keys capitalised (Go field names)."""
    ctx.check_keys(obj, frozenset(CAP_SET_KEYS) | {key.capitalize() for key in CAP_SET_KEYS}, path)
    sets: dict[str, list[str]] = {}
    set_paths: dict[str, str] = {}
    for key in CAP_SET_KEYS:
        value, set_paths[key] = _pick(ctx, [
            (obj, key, _child(path, key)),
            (obj, key.capitalize(), _child(path, key.capitalize())),
        ])
        sets[key] = _cap_list(ctx, value, set_paths[key])
    # capset(2) refuses an effective capability that is not permitted, and
    # PR_CAP_AMBIENT_RAISE one that is not both permitted and inheritable.
    for i, name in enumerate(sets["effective"]):
        if name not in sets["permitted"]:
            ctx.fail(_item(set_paths["effective"], i), f'"{name}" must also be in the permitted set')
    for i, name in enumerate(sets["ambient"]):
        if name not in sets["permitted"] or name not in sets["inheritable"]:
            ctx.fail(_item(set_paths["ambient"], i), f'"{name}" must also be in the permitted and inheritable sets')
    return CapabilitySets(**{key: _sorted_caps(caps) for key, caps in sets.items()})


# The capabilities a 2014 mask can keep: the 2014 table ended at
# CAP_BLOCK_SUSPEND (36); AUDIT_READ, PERFMON, BPF and CHECKPOINT_RESTORE came
# later, and a mask written then never meant to grant them.
_LAST_CAP_2014 = names.CAPABILITIES["CAP_BLOCK_SUSPEND"]
# Never granted by a mask, only by naming it in "capabilities": with it,
# open_by_handle_at(2) opens any host file by inode number (the Shocker
# exploit, why Docker 1.0 moved from a drop list to a whitelist), and 2014
# masks never dropped it because nobody knew.
_NEVER_BY_MASK = "CAP_DAC_READ_SEARCH"


def _caps_kept_by_mask(ctx: _Context, mask: Any, path: str) -> list[str]:
    """2014 capabilities_mask: the 2014 capabilities except the dropped ones
    and DAC_READ_SEARCH; ``_limit_mask_to_caller`` then keeps those the
    caller holds."""
    dropped: set[str] = set()
    asked_for_shocker: list[str] = []  # fields that keep DAC_READ_SEARCH by name
    if isinstance(mask, dict):
        # May 2014: {"MKNOD": true, "SYS_ADMIN": false}; false drops.
        for key, keep in mask.items():
            name = _cap_name(ctx, key, _child(path, key))
            if not _bool(ctx, keep, _child(path, key)):
                dropped.add(name)
            elif name == _NEVER_BY_MASK:
                asked_for_shocker.append(_child(path, key))
    elif isinstance(mask, list):
        for i, item in enumerate(mask):
            if isinstance(item, dict):
                # March 2014: {key, value, enabled}; enabled false drops.
                ctx.check_keys(item, frozenset({"key", "value", "enabled"}), _item(path, i))
                name = _cap_name(ctx, item.get("key"), _child(_item(path, i), "key"))
                if not _opt_bool(ctx, item.get("enabled"), _child(_item(path, i), "enabled")):
                    dropped.add(name)
                elif name == _NEVER_BY_MASK:
                    asked_for_shocker.append(_item(path, i))
            else:
                dropped.add(_cap_name(ctx, item, _item(path, i)))  # a plain drop-list
    else:
        ctx.fail(path, "must be a list or an object")
    for field in asked_for_shocker:
        ctx.warn(field, "DAC_READ_SEARCH is never granted by a mask (open_by_handle_at reads host "
                        'files with it): name it in "capabilities" to grant it')
    dropped.add(_NEVER_BY_MASK)
    return [name for name, bit in names.CAPABILITIES.items() if bit <= _LAST_CAP_2014 and name not in dropped]


def _limit_mask_to_caller(config: Config) -> Config:
    """A mask means "every capability the caller holds, minus these": the
    ones nsinit itself lacks (root here may lack CAP_SYS_RESOURCE, and any
    outer container lacks more) are left out instead of failing capset.

    A new or joined user namespace gives its first process every capability
    in it, whatever the caller held, so there nothing is left out.
    """
    if config.has_namespace("NEWUSER"):
        held_note = "in its user namespace"
        kept = config.capabilities.bounding
    else:
        from nsinit.capabilities import held_by_caller  # only configs with a mask pay for it

        held = held_by_caller()
        held_note = "that nsinit holds"
        kept = tuple(name for name in config.capabilities.bounding if name in held)
    note = (f"capabilities_mask: the capabilities of 2014 (CHOWN to BLOCK_SUSPEND) {held_note}, "
            f"minus those the mask drops and never DAC_READ_SEARCH: {len(kept)} kept")
    return replace(config, capabilities=_whitelist(kept), capabilities_note=note)


# --- rlimits, sysctl ---------------------------------------------------------

def _parse_rlimits(ctx: _Context, value: Any, path: str) -> tuple[Rlimit, ...]:
    limits: list[Rlimit] = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        entry_path = _item(path, i)
        obj = _obj(ctx, item, entry_path)
        ctx.check_keys(obj, _RLIMIT_KEYS, entry_path)
        number = _rlimit_type(ctx, obj.get("type"), _child(entry_path, "type"))
        if any(limit.type == number for limit in limits):
            ctx.fail(_child(entry_path, "type"), f'duplicate rlimit "{names.RLIMIT_NAMES[number]}"')
        soft = _rlimit_value(ctx, obj.get("soft"), _child(entry_path, "soft"))
        hard = _rlimit_value(ctx, obj.get("hard"), _child(entry_path, "hard"))
        if hard != names.RLIM_INFINITY and (soft == names.RLIM_INFINITY or soft > hard):
            ctx.fail(_child(entry_path, "soft"), "must not exceed the hard limit")
        limits.append(Rlimit(number, soft, hard))
    return tuple(limits)


def _rlimit_type(ctx: _Context, value: Any, path: str) -> int:
    if value is None:
        ctx.fail(path, "is required")
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in names.RLIMIT_NAMES:
            ctx.fail(path, f"unknown rlimit {value}")
        return value
    text = _str(ctx, value, path)
    name = text.upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in names.RLIMITS:
        ctx.fail(path, f'unknown rlimit "{text}"')
    return names.RLIMITS[name]


def _rlimit_value(ctx: _Context, value: Any, path: str) -> int:
    if value is None:
        ctx.fail(path, "is required")
    if isinstance(value, str) and value.lower() in ("unlimited", "infinity"):
        return names.RLIM_INFINITY
    number = _int(ctx, value, path)
    if number in (-1, _GO_RLIM_INFINITY):
        return names.RLIM_INFINITY
    if number < 0:
        ctx.fail(path, 'must not be negative (use -1 or "unlimited")')
    if number > _GO_RLIM_INFINITY:
        ctx.fail(path, "is too large")
    return number


# --- rules across fields -----------------------------------------------------


def _check_namespace_requirements(ctx: _Context, config: Config, origin: dict[str, str]) -> None:
    """Settings that would change the host unless the container has the namespace."""

    def need(namespace: str, field: str) -> None:
        if not config.has_namespace(namespace):
            ctx.report(field, f"requires the {namespace} namespace")

    if config.hostname:
        need("NEWUTS", "hostname")
    if config.uid_mappings:
        need("NEWUSER", "uid_mappings")
    if config.gid_mappings:
        need("NEWUSER", "gid_mappings")
    user_ns = config.namespace("NEWUSER")
    if user_ns is not None and not user_ns.path:
        # A new user namespace without maps leaves every id unmapped (nobody),
        # and root in it could not even set up the mounts.
        for field in ("uid_mappings", "gid_mappings"):
            if not getattr(config, field):
                ctx.report(field, "is required by the NEWUSER namespace")
    for i, network in enumerate(config.networks):
        if network.type != "netns":  # netns networks join an existing namespace
            need("NEWNET", _item("networks", i))
    if config.routes:
        need("NEWNET", "routes")
    if config.mounts != DEFAULT_MOUNTS:
        need("NEWNS", origin["mounts"])
    if config.mask_paths != DEFAULT_MASK_PATHS:
        need("NEWNS", "mask_paths")
    if config.readonly_paths != DEFAULT_READONLY_PATHS:
        need("NEWNS", "readonly_paths")
    if config.readonlyfs:
        need("NEWNS", origin["readonlyfs"])  # would remount the host's / read-only
    # Labels are written to /proc/self/attr: without NEWNS the container's /proc
    # is a directory of the image's, whose regular files would take the write
    # and leave the command unconfined without a word (as a fake
    # /proc/sys/kernel/cap_last_cap once kept every capability; issue 15).
    for field in ("apparmor_profile", "process_label"):
        if getattr(config, field):
            need("NEWNS", origin[field])
    for key, _ in config.sysctl:
        namespace = _sysctl_namespace(key)
        if namespace is None:
            ctx.report(_child(origin["sysctl"], key), "not namespaced, refusing to change the host")
        else:
            need(namespace, _child(origin["sysctl"], key))


def _check_security_modules(ctx: _Context, config: Config, origin: dict[str, str]) -> None:
    """Labels the kernel cannot apply: failing now beats running unconfined."""
    if config.apparmor_profile and not _apparmor_enabled():
        ctx.report(origin["apparmor_profile"], "AppArmor is not enabled on this kernel")
    for field in ("process_label", "mount_label"):
        if getattr(config, field) and not os.path.isdir(SELINUX_FS):
            ctx.report(origin[field], "SELinux is not enabled on this kernel")
    if config.mount_label and os.path.isdir(SELINUX_FS):
        # Refused rather than ignored: the mounts would carry no context.
        ctx.report(origin["mount_label"], "SELinux mount labels are not supported yet")


def _apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED_FILE, encoding="ascii", errors="replace") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False  # no such file: AppArmor is not built in or not loaded
