"""The recorded form of a Config: JSON-ready, with later-era key names.

``config_to_dict`` gives it: ``nsinit config`` prints it, and a creation
writes it into the container's record (state.json's "config").
``config_from_dict`` turns it back into the Config for a joined process,
without the loader: the record is nsinit's own, written at creation into its
private directory, so it needs types, not validation, and a join need not
import 1,500 lines of era handling.  ``parse_config`` reads the same form
(with validation); a unit test keeps the three in agreement.

The container's record is written and read back through this module:
``config_to_dict`` (a creation), ``read_recorded`` (a join) and
``with_resources`` (``nsinit update``).  Only the liveness check in
nsinit/state.py reads one key itself (which namespaces were joined by path),
because the lifecycle commands must not load the config model for it.
"""
from __future__ import annotations

from nsinit.config import names
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
    Rlimit,
    RouteConfig,
)
from nsinit.errors import NsinitError
from nsinit.record import asdict, fields, replace

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    # config_to_dict's form, as state.json keeps it under "config".
    RecordedConfig = dict[str, Any]

CAP_SET_KEYS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def config_to_dict(config: Config) -> RecordedConfig:
    """The config as JSON-ready data with later-era key names.

    ``parse_config`` of the result gives back an equal Config: mounts and
    devices are the effective lists, which replace the defaults when re-read.
    """
    return {
        "rootfs": config.rootfs,
        "hostname": config.hostname,
        "namespaces": [{"type": ns.type, "path": ns.path} for ns in config.namespaces],
        "uid_mappings": [asdict(m) for m in config.uid_mappings],
        "gid_mappings": [asdict(m) for m in config.gid_mappings],
        "capabilities": {key: list(getattr(config.capabilities, key)) for key in CAP_SET_KEYS},
        "mounts": [_mount_to_dict(m) for m in config.mounts],
        "devices": [asdict(d) for d in config.devices],
        "environment": list(config.environment),
        "user": config.user,
        "additional_groups": list(config.additional_groups),
        "working_dir": config.working_dir,
        "umask": f"{config.umask:04o}",
        "tty": config.tty,
        "readonlyfs": config.readonlyfs,
        "no_pivot_root": config.no_pivot_root,
        "mask_paths": list(config.mask_paths),
        "readonly_paths": list(config.readonly_paths),
        "rlimits": [
            {"type": names.RLIMIT_NAMES[r.type], "soft": r.soft, "hard": r.hard} for r in config.rlimits
        ],
        "no_new_privileges": config.no_new_privileges,
        "oom_score_adj": config.oom_score_adj,
        "sysctl": dict(config.sysctl),
        "networks": [_network_to_dict(n) for n in config.networks],
        "routes": [asdict(r) for r in config.routes],
        "cgroups": None if config.cgroups is None else _cgroups_to_dict(config.cgroups),
        "apparmor_profile": config.apparmor_profile,
        "process_label": config.process_label,
        "mount_label": config.mount_label,
        "parent_death_signal": config.parent_death_signal,
        "seccomp": None if config.seccomp is None else _seccomp().to_dict(config.seccomp),
    }


def _seccomp() -> ModuleType:
    from nsinit.config import seccomp  # only a config with a filter pays for it

    return seccomp


def _single_bit_names() -> list[tuple[str, int]]:
    """One name per mount flag bit (the first listed), in bit order."""
    chosen: dict[int, str] = {}
    for name, bits in names.MOUNT_FLAGS.items():
        if bits & (bits - 1) == 0 and bits not in chosen:
            chosen[bits] = name
    return [(chosen[bits], bits) for bits in sorted(chosen)]


_FLAG_NAMES = _single_bit_names()
_PROPAGATION_NAMES = {bits: name for name, bits in reversed(list(names.MOUNT_PROPAGATION.items()))}


def _mount_flag_names(flags: int, propagation: int) -> list[Any]:
    out: list[Any] = []
    rbind = names.MS_BIND | names.MS_REC
    if flags & rbind == rbind:
        out.append("rbind")
        flags &= ~rbind
    for name, bits in _FLAG_NAMES:
        if flags & bits:
            out.append(name)
            flags &= ~bits
    if flags:
        out.append(flags)  # bits without a name stay a number
    if propagation:
        out.append(_PROPAGATION_NAMES[propagation])
    return out


def _mount_to_dict(mount: MountConfig) -> dict[str, Any]:
    return {
        "source": mount.source,
        "destination": mount.destination,
        "device": mount.device,
        "flags": _mount_flag_names(mount.flags, mount.propagation),
        "data": ",".join(filter(None, [mount.data, "tmpcopyup" if mount.copy_up else ""])),
    }


def _network_to_dict(network: NetworkConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"type": network.type}
    for key, default in _NETWORK_DEFAULTS.items():
        value = getattr(network, key)
        if value != default:
            out[key] = value
    return out


_NETWORK_DEFAULTS = {
    f.name: f.default
    for f in fields(NetworkConfig)
    if f.name != "type"
}


def _cgroups_to_dict(cgroups: CgroupConfig) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for key in (f.name for f in fields(CgroupResources)):
        value = getattr(cgroups.resources, key)
        if value is None or value == ():
            continue
        if key in ("allowed_devices", "denied_devices"):
            value = [asdict(d) for d in value]
        elif key == "hugetlb_limit":
            value = [{"page_size": size, "limit": limit} for size, limit in value]
        elif isinstance(value, tuple):
            value = list(value)
        resources[key] = value
    out = {"name": cgroups.name, "parent": cgroups.parent, "path": cgroups.path, "resources": resources}
    if cgroups.rootless:
        out["rootless"] = cgroups.rootless
    return out


def config_from_dict(data: RecordedConfig, source: str = "recorded config") -> Config:
    """The Config that ``config_to_dict`` made ``data`` from."""
    cgroups = data.get("cgroups")
    return Config(
        source=source,
        rootfs=data["rootfs"],
        hostname=data["hostname"],
        namespaces=tuple(NamespaceConfig(ns["type"], ns.get("path", "")) for ns in data["namespaces"]),
        uid_mappings=tuple(IdMap(**m) for m in data["uid_mappings"]),
        gid_mappings=tuple(IdMap(**m) for m in data["gid_mappings"]),
        capabilities=CapabilitySets(**{key: tuple(data["capabilities"][key]) for key in CAP_SET_KEYS}),
        mounts=tuple(_mount_from_dict(m) for m in data["mounts"]),
        devices=tuple(DeviceConfig(**d) for d in data["devices"]),
        environment=tuple(data["environment"]),
        user=data["user"],
        additional_groups=tuple(data["additional_groups"]),
        working_dir=data["working_dir"],
        umask=int(data.get("umask", "0022"), 8),  # absent in records of older nsinit versions
        tty=data["tty"],
        readonlyfs=data["readonlyfs"],
        no_pivot_root=data["no_pivot_root"],
        mask_paths=tuple(data["mask_paths"]),
        readonly_paths=tuple(data["readonly_paths"]),
        rlimits=tuple(Rlimit(names.RLIMITS[r["type"]], r["soft"], r["hard"]) for r in data["rlimits"]),
        no_new_privileges=data["no_new_privileges"],
        oom_score_adj=data["oom_score_adj"],
        sysctl=tuple(data["sysctl"].items()),
        networks=tuple(NetworkConfig(**n) for n in data["networks"]),
        routes=tuple(RouteConfig(**r) for r in data["routes"]),
        cgroups=None if cgroups is None else _cgroups_from_dict(cgroups),
        apparmor_profile=data["apparmor_profile"],
        process_label=data["process_label"],
        mount_label=data["mount_label"],
        parent_death_signal=data["parent_death_signal"],
        seccomp=None if data.get("seccomp") is None else _seccomp().from_dict(data["seccomp"]),
    )


def _mount_from_dict(data: dict[str, Any]) -> MountConfig:
    flags = propagation = 0
    for item in data["flags"]:
        if isinstance(item, int):
            flags |= item
        elif item in names.MOUNT_PROPAGATION:
            propagation = names.MOUNT_PROPAGATION[item]
        else:
            flags |= names.MOUNT_FLAGS[item]
    options = data["data"].split(",")
    return MountConfig(data["source"], data["destination"], data["device"], flags,
                       ",".join(o for o in options if o != "tmpcopyup"), propagation, "tmpcopyup" in options)


def _cgroups_from_dict(data: dict[str, Any]) -> CgroupConfig:
    values: dict[str, Any] = {}
    for key, value in data["resources"].items():
        if key in ("allowed_devices", "denied_devices"):
            value = tuple(DeviceConfig(**d) for d in value)
        elif key == "hugetlb_limit":
            value = tuple((entry["page_size"], entry["limit"]) for entry in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return CgroupConfig(data["name"], data["parent"], data["path"], CgroupResources(**values),
                        data.get("rootless", ""))


def read_recorded(data: RecordedConfig, step: str) -> Config:
    """The Config recorded at creation; an error names ``step``."""
    try:
        return config_from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        # Only a record written by another nsinit version gets here.
        raise NsinitError(step, f"the container's recorded config does not load "
                                f"({err.__class__.__name__}: {err})") from None


def with_resources(data: RecordedConfig, changes: dict[str, object]) -> RecordedConfig:
    """The recorded config with these CgroupResources fields changed."""
    config = read_recorded(data, "update")
    cgroups = config.cgroups or CgroupConfig()
    resources = replace(cgroups.resources, **changes)
    return config_to_dict(replace(config, cgroups=replace(cgroups, resources=resources)))

