"""The filesystem part of a config: the rootfs, the mounts (each era's form
and OCI's ``{type, options}``), the masked and read-only paths, and the device
nodes made in the container's /dev (an entry's parser also reads the cgroup
device rules of ``nsinit.config.cgroups``, which have the same keys).

Read by both loaders: ``nsinit.config.load`` (container.json) and
``nsinit.oci.spec`` (one mount, the rootfs, the paths, the device nodes).
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.config.defaults import DEFAULT_DEVICES, DEFAULT_MOUNTS
from nsinit.config.model import DeviceConfig, MountConfig
from nsinit.config.parse import (
    _Context,
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
    _str,
    _warn_if_set,
)

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any


_MOUNT_KEYS = frozenset({
    "source", "destination", "device", "type", "flags", "options", "data",
    "writable", "private", "relabel", "premount_cmds", "postmount_cmds",
    "propagation_flags",
})
_LATER_MOUNT_KEYS = ("flags", "options", "data", "propagation_flags")
_DEVICE_KEYS = frozenset({
    "type", "path", "major", "minor", "major_number", "minor_number",
    "permissions", "cgroup_permissions", "file_mode", "uid", "gid", "allow",
})
_NODE_TYPES = ("c", "b", "p")
_RULE_TYPES = ("a", "c", "b")


# --- rootfs, masked and read-only paths --------------------------------------

def _parse_rootfs(ctx: _Context, value: Any, path: str) -> str:
    text = _opt_str(ctx, value, path) or ctx.default_rootfs or ""
    # Symlinks are resolved once here so every later step (pivot_root, mount
    # targets resolved inside the rootfs) works on the same real path.
    rootfs = os.path.realpath(os.path.join(ctx.base_dir, text))
    if not os.path.exists(rootfs):
        ctx.fail(path, f'"{rootfs}" does not exist')
    if not os.path.isdir(rootfs):
        ctx.fail(path, f'"{rootfs}" is not a directory')
    return rootfs


def _parse_path_list(ctx: _Context, value: Any, path: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(_clean_abs_path(ctx, item, _item(path, i)) for i, item in enumerate(_list(ctx, value, path)))


# --- mounts ------------------------------------------------------------------

def _parse_effective_mounts(ctx: _Context, value: Any, path: str) -> tuple[MountConfig, ...]:
    return _effective_mounts(_parse_mounts(ctx, value, path))


def _parse_mounts(ctx: _Context, value: Any, path: str) -> tuple[MountConfig, ...]:
    mounts = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        mount = ctx.collect(_parse_mount, item, _item(path, i))  # each entry's error, not only the first
        if mount is not None:
            mounts.append(mount)
    return tuple(mounts)


def _effective_mounts(configured: tuple[MountConfig, ...]) -> tuple[MountConfig, ...]:
    """Default system mounts not mounted by the config itself, then the config's."""
    taken = {m.destination for m in configured}
    return tuple(m for m in DEFAULT_MOUNTS if m.destination not in taken) + configured


def _parse_mount(ctx: _Context, item: Any, path: str) -> MountConfig | None:
    obj = _obj(ctx, item, path)
    ctx.check_keys(obj, _MOUNT_KEYS, path)
    raw_device, device_path = _pick(ctx, [(obj, "device", _child(path, "device")), (obj, "type", _child(path, "type"))])
    device = _opt_str(ctx, raw_device, device_path)
    if device == "devtmpfs":
        # April 2014 marker for "put a tmpfs on /dev"; the defaults always do.
        return None
    later_keys = [key for key in _LATER_MOUNT_KEYS if obj.get(key) is not None]
    old_keys = [key for key in ("writable", "private") if key in obj]
    if later_keys and old_keys:
        ctx.fail(_child(path, old_keys[0]), f'cannot be combined with "{later_keys[0]}"')
    if old_keys or (not later_keys and device in ("", "bind")):
        device = device or "bind"
        flags, propagation, data = _mount_2014(ctx, obj, path, device)
    else:
        flags, propagation, data = _mount_later(ctx, obj, path)
    # A bind is a bind whatever the type says (OCI writes "none" + "rbind").
    if flags & names.MS_BIND:
        device = "bind"
    elif device == "bind":
        flags |= names.MS_BIND
    if not device:
        ctx.fail(_child(path, "device"), "is required")
    _check_propagation(ctx, propagation, path)
    for key in ("relabel", "premount_cmds", "postmount_cmds"):
        _warn_if_set(ctx, obj, key, path)
    destination = _mount_destination(ctx, obj.get("destination"), _child(path, "destination"))
    source = _mount_source(ctx, obj.get("source"), _child(path, "source"), device)
    # runc's "tmpcopyup" is no filesystem option: taken out of the data.
    copy_up = "tmpcopyup" in data.split(",")
    if copy_up and device != "tmpfs":
        ctx.fail(path, '"tmpcopyup" applies to tmpfs mounts only')
    data = ",".join(part for part in data.split(",") if part != "tmpcopyup")
    return MountConfig(source, destination, device, flags, data, propagation, copy_up)


def _mount_2014(ctx: _Context, obj: dict, path: str, device: str) -> tuple[int, int, str]:
    """{source, destination, writable, private}: a bind, read-only unless writable."""
    writable = _opt_bool(ctx, obj.get("writable"), _child(path, "writable"))
    private = _opt_bool(ctx, obj.get("private"), _child(path, "private"))
    flags = names.MS_BIND | names.MS_REC if device == "bind" else 0
    if not writable:
        flags |= names.MS_RDONLY
    return flags, (names.MS_PRIVATE | names.MS_REC) if private else 0, ""


def _mount_later(ctx: _Context, obj: dict, path: str) -> tuple[int, int, str]:
    """{device, flags, data} (2015) and OCI-style {type, options}."""
    flags = propagation = 0
    data = [_opt_str(ctx, obj.get("data"), _child(path, "data"))]
    for key, options in (("flags", False), ("options", True)):
        if obj.get(key) is not None:
            flags, propagation, extra = _mount_flags(ctx, obj[key], _child(path, key), flags, propagation, options)
            data.extend(extra)
    for i, item in enumerate(_opt_list(ctx, obj.get("propagation_flags"), _child(path, "propagation_flags"))):
        item_path = _item(_child(path, "propagation_flags"), i)
        if isinstance(item, str):
            if item.lower() not in names.MOUNT_PROPAGATION:
                ctx.fail(item_path, f'unknown propagation "{item}"')
            propagation |= names.MOUNT_PROPAGATION[item.lower()]
        else:
            bits = _int(ctx, item, item_path, lo=0)
            if bits & ~(names.MS_PROPAGATION | names.MS_REC):
                ctx.fail(item_path, "must be propagation flags only")
            propagation |= bits
    return flags, propagation, ",".join(part for part in data if part)


def _mount_flags(
    ctx: _Context, value: Any, path: str, flags: int, propagation: int, options: bool
) -> tuple[int, int, list[str]]:
    """Apply an int or a list of flag names; OCI options that are not flags are fs data."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (*_split_flag_bits(_int(ctx, value, path, lo=0), flags, propagation), [])
    extra: list[str] = []
    for i, item in enumerate(_list(ctx, value, path)):
        item_path = _item(path, i)
        if isinstance(item, int) and not isinstance(item, bool):
            flags, propagation = _split_flag_bits(_int(ctx, item, item_path, lo=0), flags, propagation)
            continue
        text = _str(ctx, item, item_path)
        name = text.lower()
        if name in names.MOUNT_FLAGS:
            flags |= names.MOUNT_FLAGS[name]
        elif name in names.MOUNT_CLEAR_FLAGS:
            flags &= ~names.MOUNT_CLEAR_FLAGS[name]
        elif name in names.MOUNT_PROPAGATION:
            propagation |= names.MOUNT_PROPAGATION[name]
        elif options:
            extra.append(text)
        else:
            ctx.fail(item_path, f'unknown mount flag "{text}"')
    return flags, propagation, extra


def _split_flag_bits(bits: int, flags: int, propagation: int) -> tuple[int, int]:
    """Move propagation bits of a 2015 int out of the mount flags.

    MS_REC goes with them (it makes the propagation change recursive) and
    stays in the flags too, where it makes a bind recursive.
    """
    kinds = bits & names.MS_PROPAGATION
    if kinds:
        propagation |= kinds | (bits & names.MS_REC)
    return flags | (bits & ~names.MS_PROPAGATION), propagation


def _check_propagation(ctx: _Context, propagation: int, path: str) -> None:
    kinds = propagation & names.MS_PROPAGATION
    if kinds & (kinds - 1):
        ctx.fail(path, "conflicting propagation flags (choose one of private, slave, shared, unbindable)")
    if propagation and not kinds:
        ctx.fail(path, "recursive propagation flag without private, slave, shared or unbindable")


def _mount_destination(ctx: _Context, value: Any, path: str) -> str:
    if value is None or value == "":
        ctx.fail(path, "is required")
    # Destinations are resolved inside the rootfs when mounting; ".." here is
    # an obvious attempt to leave it.
    destination = _clean_abs_path(ctx, value, path)
    if destination == "/":
        ctx.fail(path, "must not be the container root")
    return destination


def _mount_source(ctx: _Context, value: Any, path: str, device: str) -> str:
    source = _opt_str(ctx, value, path)
    if device != "bind":
        return source or device  # "proc", "tmpfs", ...: only shown in /proc/mounts
    if not source:
        ctx.fail(path, "is required for a bind mount")
    full = os.path.normpath(os.path.join(ctx.base_dir, source))
    if not os.path.exists(full):
        ctx.fail(path, f'"{full}" does not exist')
    return full


# --- devices -----------------------------------------------------------------

def _parse_effective_devices(ctx: _Context, value: Any, path: str) -> tuple[DeviceConfig, ...]:
    return _effective_devices(_parse_devices(ctx, value, path))


def _parse_devices(ctx: _Context, value: Any, path: str) -> tuple[DeviceConfig, ...]:
    devices: list[DeviceConfig] = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        device = ctx.collect(_parse_device, item, _item(path, i), rule=False)
        if device is None:
            continue  # its error is kept; the other entries are still read
        for j, other in enumerate(devices):
            if other.path == device.path:
                ctx.fail(_child(_item(path, i), "path"), f"duplicates {_item(path, j)}")
        devices.append(device)
    return tuple(devices)


def _effective_devices(configured: tuple[DeviceConfig, ...]) -> tuple[DeviceConfig, ...]:
    """Default nodes not redefined by the config, then the config's."""
    taken = {d.path for d in configured}
    return tuple(d for d in DEFAULT_DEVICES if d.path not in taken) + configured


def _parse_device(ctx: _Context, item: Any, path: str, *, rule: bool) -> DeviceConfig:
    """A node to create, or with ``rule`` a cgroup allow/deny rule (-1 = "*")."""
    obj = _obj(ctx, item, path)
    ctx.check_keys(obj, _DEVICE_KEYS, path)
    kind = _device_type(ctx, obj.get("type"), _child(path, "type"), _RULE_TYPES if rule else _NODE_TYPES)
    numbers = []
    for key, old_key in (("major", "major_number"), ("minor", "minor_number")):
        value, number_path = _pick(ctx, [(obj, key, _child(path, key)), (obj, old_key, _child(path, old_key))])
        if value is None and not rule and kind != "p":
            ctx.fail(number_path, "is required")
        numbers.append(_opt_int(ctx, value, number_path, default=-1 if rule else 0, lo=-1 if rule else 0))
    if rule:
        dev_path = _opt_str(ctx, obj.get("path"), _child(path, "path"))
    else:
        dev_path = _device_path(ctx, obj.get("path"), _child(path, "path"))
    permissions, perm_path = _pick(ctx, [
        (obj, "permissions", _child(path, "permissions")),
        (obj, "cgroup_permissions", _child(path, "cgroup_permissions")),
    ])
    permissions = _opt_str(ctx, permissions, perm_path, default="rwm")
    if not permissions or set(permissions) - set("rwm") or len(set(permissions)) != len(permissions):
        ctx.fail(perm_path, 'must be a combination of "r", "w" and "m"')
    return DeviceConfig(
        type=kind,
        path=dev_path,
        major=numbers[0],
        minor=numbers[1],
        permissions=permissions,
        file_mode=_opt_int(ctx, obj.get("file_mode"), _child(path, "file_mode"), default=0o666, lo=0, hi=0o7777),
        uid=_opt_int(ctx, obj.get("uid"), _child(path, "uid"), lo=0),
        gid=_opt_int(ctx, obj.get("gid"), _child(path, "gid"), lo=0),
    )


def _device_type(ctx: _Context, value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value is None:
        ctx.fail(path, "is required")
    if isinstance(value, int) and not isinstance(value, bool):
        # Go wrote the rune as a number: 99 = 'c', 98 = 'b', 112 = 'p'.
        kind = chr(value) if 0 < value < 0x110000 else ""
    else:
        kind = _str(ctx, value, path)
    if kind not in allowed:
        ctx.fail(path, f'unknown device type "{value}" (expected {", ".join(allowed)})')
    return kind


def _device_path(ctx: _Context, value: Any, path: str) -> str:
    if value is None or value == "":
        ctx.fail(path, "is required")
    dev_path = _clean_abs_path(ctx, value, path)
    if not dev_path.startswith("/dev/"):
        ctx.fail(path, "must be under /dev")
    return dev_path
