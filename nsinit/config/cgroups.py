"""The cgroups part of a config: where the cgroup goes (name, parent, path)
and its limits (memory, cpu, cpuset, pids, blkio and its throttles, hugetlb,
freezer, device rules), in the flat 2014-2015 form and in ``resources``.

Read by ``nsinit.config.load`` (container.json); ``nsinit.oci.spec`` reads
``linux.resources`` with its own keys and takes the cpu-list and throttle
checks from here.
"""
from __future__ import annotations

from nsinit.config.model import CgroupConfig, CgroupResources, DeviceConfig
from nsinit.config.mounts import _parse_device
from nsinit.config.parse import (
    _Context,
    _bool,
    _child,
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


_THROTTLE_KEYS = (
    "blkio_throttle_read_bps_device",
    "blkio_throttle_write_bps_device",
    "blkio_throttle_read_iops_device",
    "blkio_throttle_write_iops_device",
)
# Resource keys of 2014-2015 libcontainer that nsinit does not implement.
_UNSUPPORTED_RESOURCE_KEYS = (
    "kernel_memory", "kernel_memory_tcp", "cpu_rt_runtime", "cpu_rt_period",
    "blkio_leaf_weight", "blkio_weight_device", "net_prio_ifpriomap", "net_cls_classid",
)
_RESOURCE_KEYS = frozenset({
    "memory", "memory_reservation", "memory_swap", "memory_swappiness",
    "cpu_shares", "cpu_quota", "cpu_period", "cpuset_cpus", "cpuset_mems",
    "pids_limit", "blkio_weight", "oom_kill_disable", "freezer",
    "allow_all_devices", "device_access", "allowed_devices", "denied_devices",
    "devices", "hugetlb_limit", *_THROTTLE_KEYS, *_UNSUPPORTED_RESOURCE_KEYS,
})
# systemd-driver settings: meaningless for the fs driver, accepted silently.
_CGROUP_KEYS = frozenset({"name", "parent", "path", "resources", "slice", "unit_properties", "scope_prefix",
                          "rootless"})
_HUGETLB_KEYS = frozenset({"page_size", "limit"})
_THROTTLE_OBJECT_KEYS = frozenset({"major", "minor", "rate"})


# --- cgroup and limits -------------------------------------------------------

def _parse_cgroups(ctx: _Context, value: Any, path: str) -> CgroupConfig | None:
    if value is None:
        return None
    obj = _obj(ctx, value, path)
    ctx.check_keys(obj, _CGROUP_KEYS | _RESOURCE_KEYS, path)
    location = {key: _cgroup_path_part(ctx, obj.get(key), _child(path, key)) for key in ("name", "parent", "path")}
    if obj.get("resources") is None:
        resources = _parse_resources(ctx, obj, path)  # 2014/2015: limits sit in cgroups itself
    else:
        flat = [key for key in obj if key in _RESOURCE_KEYS]
        if flat:
            ctx.fail(_child(path, flat[0]), f'cannot be combined with "{_child(path, "resources")}"')
        resources_path = _child(path, "resources")
        resources_obj = _obj(ctx, obj["resources"], resources_path)
        ctx.check_keys(resources_obj, _RESOURCE_KEYS, resources_path)
        resources = _parse_resources(ctx, resources_obj, resources_path)
    rootless = _opt_str(ctx, obj.get("rootless"), _child(path, "rootless"))
    if rootless not in ("", "error", "ignore"):
        ctx.fail(_child(path, "rootless"), f'must be "error" or "ignore", not "{rootless}"')
    return CgroupConfig(resources=resources, rootless=rootless, **location)


def _cgroup_path_part(ctx: _Context, value: Any, path: str) -> str:
    text = _opt_str(ctx, value, path)
    # The cgroup directory is made by joining these under the hierarchy root.
    if ".." in text.split("/"):
        ctx.fail(path, 'must not contain ".."')
    return text


def _parse_resources(ctx: _Context, obj: dict, path: str) -> CgroupResources:
    # Each limit's error is kept (ctx.collect) and the other limits still read.
    def count(key: str, *, unlimited: bool = False) -> int | None:
        # Go configs write 0 for "not set"; writing 0 to memory.limit_in_bytes
        # or pids.max would make the container unusable, so 0 means None.
        value = ctx.collect(_opt_int, obj.get(key), _child(path, key), lo=-1 if unlimited else 0)
        return value or None

    def size(key: str, *, unlimited: bool = False) -> int | None:
        return ctx.collect(_memory_size, obj.get(key), _child(path, key), unlimited)

    def cpu_list(key: str) -> str | None:
        text = ctx.collect(_opt_str, obj.get(key), _child(path, key))
        if text:
            ctx.collect(_check_cpu_list, text, _child(path, key))  # an error: the config is refused anyway
        return text or None

    def flag(key: str) -> bool | None:
        return None if obj.get(key) is None else ctx.collect(_bool, obj[key], _child(path, key))

    for key in _UNSUPPORTED_RESOURCE_KEYS:
        _warn_if_set(ctx, obj, key, path)
    allowed, denied = _parse_device_rules(ctx, obj, path)
    allow_all, allow_all_path = _pick(ctx, [
        (obj, "allow_all_devices", _child(path, "allow_all_devices")),
        (obj, "device_access", _child(path, "device_access")),  # March 2014 spelling
    ])
    return CgroupResources(
        memory=size("memory"),
        memory_reservation=size("memory_reservation"),
        memory_swap=size("memory_swap", unlimited=True),
        memory_swappiness=_parse_swappiness(ctx, obj.get("memory_swappiness"), _child(path, "memory_swappiness")),
        cpu_shares=count("cpu_shares"),
        cpu_quota=count("cpu_quota", unlimited=True),
        cpu_period=count("cpu_period"),
        cpuset_cpus=cpu_list("cpuset_cpus"),
        cpuset_mems=cpu_list("cpuset_mems"),
        pids_limit=count("pids_limit", unlimited=True),
        blkio_weight=count("blkio_weight"),
        oom_kill_disable=flag("oom_kill_disable"),
        freezer=_parse_freezer(ctx, obj.get("freezer"), _child(path, "freezer")),
        allow_all_devices=None if allow_all is None else _bool(ctx, allow_all, allow_all_path),
        allowed_devices=allowed,
        denied_devices=denied,
        **{key: _parse_throttle(ctx, obj.get(key), _child(path, key)) for key in _THROTTLE_KEYS},
        hugetlb_limit=_parse_hugetlb(ctx, obj.get("hugetlb_limit"), _child(path, "hugetlb_limit")),
    )


def _memory_size(ctx: _Context, value: Any, path: str, unlimited: bool) -> int | None:
    """A memory amount: bytes, or "256M" as ``nsinit update --memory`` takes it."""
    if isinstance(value, str):
        from nsinit.config.sizes import SIZE_EXAMPLES, parse_size

        size = parse_size(value)
        if size is None:
            ctx.fail(path, f'"{value}" is not a size ({SIZE_EXAMPLES})')
        value = size
    return _opt_int(ctx, value, path, lo=-1 if unlimited else 0) or None


def _parse_swappiness(ctx: _Context, value: Any, path: str) -> int | None:
    # -1 was Docker's "kernel default"; 0 is a real setting here (no swapping).
    swappiness = _opt_int(ctx, value, path, default=-1, lo=-1, hi=100)
    return None if swappiness == -1 else swappiness


def _parse_freezer(ctx: _Context, value: Any, path: str) -> str | None:
    state = _opt_str(ctx, value, path)
    if state not in ("", "FROZEN", "THAWED"):
        ctx.fail(path, 'must be "FROZEN" or "THAWED"')
    return state or None


# --- device rules, cpu lists, throttles, hugetlb -----------------------------

def _parse_device_rules(
    ctx: _Context, obj: dict, path: str
) -> tuple[tuple[DeviceConfig, ...], tuple[DeviceConfig, ...]]:
    """allowed_devices/denied_devices (2014-2015) and later {…, allow: bool} devices."""
    allowed: list[DeviceConfig] = []
    denied: list[DeviceConfig] = []
    for key, target in (("allowed_devices", allowed), ("denied_devices", denied)):
        for i, item in enumerate(_opt_list(ctx, obj.get(key), _child(path, key))):
            target.append(_parse_device(ctx, item, _item(_child(path, key), i), rule=True))
    for i, item in enumerate(_opt_list(ctx, obj.get("devices"), _child(path, "devices"))):
        item_path = _item(_child(path, "devices"), i)
        rule = _parse_device(ctx, item, item_path, rule=True)
        allow = _opt_bool(ctx, item.get("allow"), _child(item_path, "allow"))
        (allowed if allow else denied).append(rule)
    return tuple(allowed), tuple(denied)


def _check_cpu_list(ctx: _Context, text: str, path: str) -> None:
    """The kernel's cpu-list grammar: "0-3,5,7-8"."""
    for part in text.split(","):
        first, dash, last = part.partition("-")
        valid = _is_decimal(first) and (not dash or (_is_decimal(last) and int(first) <= int(last)))
        if not valid:
            ctx.fail(path, f'"{text}" is not a list like "0-1,3"')


def _is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse_throttle(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    """Throttle rules as "MAJOR:MINOR RATE" lines.

    2015 wrote one string (possibly several lines), later runc a list of
    {major, minor, rate} objects.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[Any] = [line for line in _str(ctx, value, path).splitlines() if line.strip()]
        item_paths = [path] * len(items)
    else:
        items = _list(ctx, value, path)
        item_paths = [_item(path, i) for i in range(len(items))]
    lines = []
    for item, item_path in zip(items, item_paths):
        if isinstance(item, dict):
            ctx.check_keys(item, _THROTTLE_OBJECT_KEYS, item_path)
            major, minor, rate = (
                _int(ctx, item.get(key), _child(item_path, key), lo=0) for key in ("major", "minor", "rate")
            )
            lines.append(f"{major}:{minor} {rate}")
            continue
        line = _str(ctx, item, item_path).strip()
        device, _, rate_text = line.partition(" ")
        major_text, colon, minor_text = device.partition(":")
        rate_text = rate_text.strip()
        if not (colon and _is_decimal(major_text) and _is_decimal(minor_text) and _is_decimal(rate_text)):
            ctx.fail(item_path, f'"{line}" is not "MAJOR:MINOR RATE"')
        lines.append(f"{major_text}:{minor_text} {rate_text}")
    return tuple(lines)


def _parse_hugetlb(ctx: _Context, value: Any, path: str) -> tuple[tuple[str, int], ...]:
    limits = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        item_path = _item(path, i)
        obj = _obj(ctx, item, item_path)
        ctx.check_keys(obj, _HUGETLB_KEYS, item_path)
        page_size = _opt_str(ctx, obj.get("page_size"), _child(item_path, "page_size"))
        # It becomes part of a file name (hugetlb.2MB.limit_in_bytes).
        if not (page_size.isascii() and page_size.isalnum()):
            ctx.fail(_child(item_path, "page_size"), 'must be a page size such as "2MB"')
        limit = _int(ctx, obj.get("limit"), _child(item_path, "limit"), lo=0)
        limits.append((page_size, limit))
    return tuple(limits)
