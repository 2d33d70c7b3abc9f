"""The namespaces part of a config: which namespaces, joined by path or new;
the user namespace's id maps; the UTS namespace's hostname; the sysctls, each
private to the namespace it belongs to.

Read by both loaders: ``nsinit.config.load`` (container.json) and
``nsinit.oci.spec`` (hostname, sysctl and which namespace a sysctl needs).
"""
from __future__ import annotations

from nsinit.config import names
from nsinit.config.defaults import DEFAULT_NAMESPACES, MAX_ID_MAPPINGS
from nsinit.config.model import IdMap, NamespaceConfig
from nsinit.config.parse import (
    _Context,
    _bool,
    _child,
    _int,
    _item,
    _obj,
    _opt_bool,
    _opt_list,
    _opt_str,
    _str,
)

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any


_NAMESPACE_KEYS = frozenset({"type", "path"})
_OLD_NAMESPACE_KEYS = frozenset({"key", "value", "enabled", "file"})
_ID_MAP_KEYS = frozenset({"container_id", "host_id", "size"})
_ID_LIMIT = 2**32 - 1        # (uid_t)-1 is not a valid id, so ranges end below it


# --- namespaces --------------------------------------------------------------

def _parse_namespaces(ctx: _Context, value: Any, path: str) -> tuple[NamespaceConfig, ...]:
    if value is None:
        return DEFAULT_NAMESPACES
    if isinstance(value, dict):
        # May 2014 form: {"NEWNS": true, "NEWUSER": false}.
        entries = [
            (_namespace_name(ctx, key, _child(path, key)), "", _bool(ctx, on, _child(path, key)), _child(path, key))
            for key, on in value.items()
        ]
    elif isinstance(value, list):
        entries = [_namespace_entry(ctx, item, _item(path, i)) for i, item in enumerate(value)]
    else:
        ctx.fail(path, "must be a list or an object")
    namespaces: list[NamespaceConfig] = []
    for name, ns_path, enabled, entry_path in entries:
        if not enabled:
            continue
        if any(ns.type == name for ns in namespaces):
            ctx.fail(entry_path, f'duplicate namespace "{name}"')
        namespaces.append(NamespaceConfig(name, ns_path))
    return tuple(namespaces)


def _namespace_entry(ctx: _Context, item: Any, path: str) -> tuple[str, str, bool, str]:
    """(name, path to join, enabled, field path) of one list entry."""
    if isinstance(item, str):
        return _namespace_name(ctx, item, path), "", True, path
    obj = _obj(ctx, item, path)
    if "key" in obj:
        # March 2014 form {key, value, enabled, file}; value and file are the
        # clone flag and /proc file name, which the tables already know.
        ctx.check_keys(obj, _OLD_NAMESPACE_KEYS, path)
        name = _namespace_name(ctx, obj["key"], _child(path, "key"))
        return name, "", _opt_bool(ctx, obj.get("enabled"), _child(path, "enabled")), path
    ctx.check_keys(obj, _NAMESPACE_KEYS, path)
    if obj.get("type") is None:
        ctx.fail(_child(path, "type"), "is required")
    name = _namespace_name(ctx, obj["type"], _child(path, "type"))
    ns_path = _opt_str(ctx, obj.get("path"), _child(path, "path"))
    if ns_path and not ns_path.startswith("/"):
        ctx.fail(_child(path, "path"), "must be an absolute path")
    return name, ns_path, True, path


def _namespace_name(ctx: _Context, value: Any, path: str) -> str:
    text = _str(ctx, value, path)
    name = text.upper()
    if name not in names.NAMESPACE_CLONE_FLAGS:
        ctx.fail(path, f'unknown namespace "{text}"')
    return name


# --- uid/gid mappings --------------------------------------------------------

# The keys of one map entry, in IdMap's field order, in each front door's spelling.
ID_MAP_KEYS = ("container_id", "host_id", "size")
OCI_ID_MAP_KEYS = ("containerID", "hostID", "size")


def _parse_id_mappings(ctx: _Context, value: Any, path: str,
                       keys: tuple[str, str, str] = ID_MAP_KEYS) -> tuple[IdMap, ...]:
    items = _opt_list(ctx, value, path)
    if len(items) > MAX_ID_MAPPINGS:
        ctx.fail(path, f"must have at most {MAX_ID_MAPPINGS} entries")
    maps: list[IdMap] = []
    for i, item in enumerate(items):
        entry_path = _item(path, i)
        obj = _obj(ctx, item, entry_path)
        ctx.check_keys(obj, frozenset(keys), entry_path)
        numbers = []
        for key in keys:
            if obj.get(key) is None:
                ctx.fail(_child(entry_path, key), "is required")
            numbers.append(_int(ctx, obj[key], _child(entry_path, key), lo=1 if key == "size" else 0))
        mapping = IdMap(*numbers)
        for field_name in ID_MAP_KEYS[:2]:
            if getattr(mapping, field_name) + mapping.size > _ID_LIMIT:
                ctx.fail(_child(entry_path, keys[2]), "range goes past the largest id 4294967294")
        # The kernel rejects a map whose ranges overlap on either side.
        for j, other in enumerate(maps):
            for field_name, key in zip(ID_MAP_KEYS[:2], keys[:2]):
                if _ranges_overlap(getattr(mapping, field_name), getattr(other, field_name),
                                   mapping.size, other.size):
                    ctx.fail(_child(entry_path, key), f"overlaps {_item(path, j)}")
        maps.append(mapping)
    return tuple(maps)


def _ranges_overlap(start_a: int, start_b: int, size_a: int, size_b: int) -> bool:
    return start_a < start_b + size_b and start_b < start_a + size_a


# --- hostname, sysctl --------------------------------------------------------

def _parse_hostname(ctx: _Context, value: Any, path: str) -> str:
    hostname = _opt_str(ctx, value, path)
    if len(hostname.encode()) > 64:  # HOST_NAME_MAX; sethostname fails with EINVAL
        ctx.fail(path, "must be at most 64 bytes")
    return hostname


def _parse_sysctl(ctx: _Context, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    entries = []
    for key, setting in _obj(ctx, value, path).items():
        key_path = _child(path, key)
        # Keys become paths under /proc/sys; "/" or an empty segment could
        # point the write anywhere in /proc.
        if not key or "/" in key or "\x00" in key or "" in key.split(".") or key != key.strip():
            ctx.fail(key_path, 'must be a dotted name such as "net.ipv4.ip_forward"')
        if isinstance(setting, (int, float)) and not isinstance(setting, bool):
            setting = str(setting)
        entries.append((key, _str(ctx, setting, key_path)))
    return tuple(entries)


def _sysctl_namespace(key: str) -> str | None:
    """The namespace that makes a sysctl private to the container, if any."""
    if key.startswith("net."):
        return "NEWNET"
    if key.startswith(("kernel.msg", "kernel.shm", "fs.mqueue.")) or key == "kernel.sem":
        return "NEWIPC"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "NEWUTS"
    return None
