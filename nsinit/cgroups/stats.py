"""Cgroup statistics in libcontainer's JSON shape (its 2015 cgroups.Stats).

Every counter a host lacks (controller not mounted, file absent on this
kernel) reads as 0 or an empty list, so the shape is the same everywhere
and a consumer never has to test for keys.  Times are nanoseconds, sizes
bytes, as in libcontainer.
"""
from __future__ import annotations

import os

from nsinit.cgroups import fs

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

UNLIMITED_V2 = 2**64 - 1   # "max" reported as libcontainer reports it
BLKIO_KEYS = (
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
    "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
    "io_time_recursive", "sectors_recursive",
)


def _int(path: str | None, default: int = 0) -> int:
    if path is None:
        return default
    text = fs.read_optional(path)
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return UNLIMITED_V2
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return default


def _keyed(path: str | None) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat ...) as a dict."""
    if path is None:
        return {}
    out = {}
    for line in (fs.read_optional(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _join(directory: str | None, name: str) -> str | None:
    return None if directory is None else os.path.join(directory, name)


def empty_stats() -> dict[str, Any]:
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 0, "percpu_usage": [], "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {
            "cache": 0,
            "usage": {"usage": 0, "max_usage": 0, "failcnt": 0, "limit": 0},
            "swap_usage": {"usage": 0, "max_usage": 0, "failcnt": 0, "limit": 0},
            "kernel_usage": {"usage": 0, "max_usage": 0, "failcnt": 0, "limit": 0},
            "stats": {},
        },
        "pids_stats": {"current": 0, "limit": 0},
        "blkio_stats": {key: [] for key in BLKIO_KEYS},
        "hugetlb_stats": {},
    }


# --- v1 ----------------------------------------------------------------------

def v1_stats(paths: dict[str, str]) -> dict[str, Any]:
    out = empty_stats()
    _v1_cpu(out["cpu_stats"], paths.get("cpuacct"), paths.get("cpu"))
    _v1_memory(out["memory_stats"], paths.get("memory"))
    pids = paths.get("pids")
    out["pids_stats"] = {"current": _int(_join(pids, "pids.current")),
                         # "max" (no limit) reads as 0, as libcontainer reports it
                         "limit": _pids_limit(_join(pids, "pids.max"))}
    _v1_blkio(out["blkio_stats"], paths.get("blkio"))
    out["hugetlb_stats"] = _v1_hugetlb(paths.get("hugetlb"))
    return out


def _pids_limit(path: str | None) -> int:
    text = (fs.read_optional(path) or "").strip() if path else ""
    return int(text) if text.isdigit() else 0


def _v1_cpu(cpu: dict[str, Any], cpuacct: str | None, cpu_dir: str | None) -> None:
    usage = cpu["cpu_usage"]
    usage["total_usage"] = _int(_join(cpuacct, "cpuacct.usage"))
    percpu = fs.read_optional(os.path.join(cpuacct, "cpuacct.usage_percpu")) if cpuacct else None
    usage["percpu_usage"] = [int(x) for x in (percpu or "").split()]
    if cpuacct and os.path.exists(os.path.join(cpuacct, "cpuacct.usage_user")):
        usage["usage_in_usermode"] = _int(_join(cpuacct, "cpuacct.usage_user"))
        usage["usage_in_kernelmode"] = _int(_join(cpuacct, "cpuacct.usage_sys"))
    else:
        # cpuacct.stat counts USER_HZ ticks.
        ticks = _keyed(_join(cpuacct, "cpuacct.stat"))
        per_tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        usage["usage_in_usermode"] = ticks.get("user", 0) * per_tick
        usage["usage_in_kernelmode"] = ticks.get("system", 0) * per_tick
    stat = _keyed(_join(cpu_dir, "cpu.stat"))
    cpu["throttling_data"] = {"periods": stat.get("nr_periods", 0),
                              "throttled_periods": stat.get("nr_throttled", 0),
                              "throttled_time": stat.get("throttled_time", 0)}


def _v1_memory(memory: dict[str, Any], directory: str | None) -> None:
    if directory is None:
        return

    def usage(prefix: str) -> dict[str, int]:
        return {
            "usage": _int(os.path.join(directory, f"{prefix}.usage_in_bytes")),
            "max_usage": _int(os.path.join(directory, f"{prefix}.max_usage_in_bytes")),
            "failcnt": _int(os.path.join(directory, f"{prefix}.failcnt")),
            "limit": _int(os.path.join(directory, f"{prefix}.limit_in_bytes")),
        }

    memory["usage"] = usage("memory")
    memory["swap_usage"] = usage("memory.memsw")   # v1 reports memory + swap here
    memory["kernel_usage"] = usage("memory.kmem")
    memory["stats"] = _keyed(os.path.join(directory, "memory.stat"))
    memory["cache"] = memory["stats"].get("cache", 0)


def _blkio_entries(path: str | None) -> list[dict[str, Any]]:
    """"8:0 Read 4096" lines; the "Total N" lines are left out."""
    entries = []
    for line in (fs.read_optional(path) or "").splitlines() if path else []:
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        elif len(parts) == 2 and ":" in parts[0]:
            major, _, minor = parts[0].partition(":")
            entries.append({"major": int(major), "minor": int(minor), "op": "", "value": int(parts[1])})
    return entries


def _v1_blkio(blkio: dict[str, Any], directory: str | None) -> None:
    if directory is None:
        return
    # CFQ's files when present (they have every key); else the throttle
    # layer's, which counts I/O under any scheduler (libcontainer's fallback).
    if os.path.exists(os.path.join(directory, "blkio.io_service_bytes_recursive")):
        for key in BLKIO_KEYS:
            blkio[key] = _blkio_entries(os.path.join(directory, f"blkio.{key}"))
        return
    blkio["io_service_bytes_recursive"] = _blkio_entries(
        os.path.join(directory, "blkio.throttle.io_service_bytes_recursive"))
    blkio["io_serviced_recursive"] = _blkio_entries(
        os.path.join(directory, "blkio.throttle.io_serviced_recursive"))


def _v1_hugetlb(directory: str | None) -> dict[str, Any]:
    if directory is None or not os.path.isdir(directory):
        return {}
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
            size = name[len("hugetlb."):-len(".usage_in_bytes")]
            out[size] = {
                "usage": _int(os.path.join(directory, name)),
                "max_usage": _int(os.path.join(directory, f"hugetlb.{size}.max_usage_in_bytes")),
                "failcnt": _int(os.path.join(directory, f"hugetlb.{size}.failcnt")),
            }
    return out


# --- v2 ----------------------------------------------------------------------

def v2_stats(directory: str) -> dict[str, Any]:
    out = empty_stats()
    cpu = _keyed(os.path.join(directory, "cpu.stat"))   # a core file: usage even without the cpu controller
    out["cpu_stats"] = {
        "cpu_usage": {"total_usage": cpu.get("usage_usec", 0) * 1000, "percpu_usage": [],
                      "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                      "usage_in_usermode": cpu.get("user_usec", 0) * 1000},
        "throttling_data": {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                            "throttled_time": cpu.get("throttled_usec", 0) * 1000},
    }
    memory = out["memory_stats"]
    events = _keyed(os.path.join(directory, "memory.events"))
    memory["usage"] = {"usage": _int(os.path.join(directory, "memory.current")),
                       "max_usage": _int(os.path.join(directory, "memory.peak")),
                       "failcnt": events.get("max", 0),
                       "limit": _int(os.path.join(directory, "memory.max"))}
    memory["swap_usage"] = {"usage": _int(os.path.join(directory, "memory.swap.current")),
                            "max_usage": _int(os.path.join(directory, "memory.swap.peak")),
                            "failcnt": _keyed(os.path.join(directory, "memory.swap.events")).get("max", 0),
                            "limit": _int(os.path.join(directory, "memory.swap.max"))}
    memory["stats"] = _keyed(os.path.join(directory, "memory.stat"))
    memory["cache"] = memory["stats"].get("file", 0)
    out["pids_stats"] = {"current": _int(os.path.join(directory, "pids.current")),
                         "limit": _pids_limit(os.path.join(directory, "pids.max"))}
    _v2_io(out["blkio_stats"], os.path.join(directory, "io.stat"))
    out["hugetlb_stats"] = _v2_hugetlb(directory)
    return out


def _v2_io(blkio: dict[str, Any], path: str) -> None:
    """io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"."""
    names = {"rbytes": ("io_service_bytes_recursive", "Read"), "wbytes": ("io_service_bytes_recursive", "Write"),
             "rios": ("io_serviced_recursive", "Read"), "wios": ("io_serviced_recursive", "Write")}
    for line in (fs.read_optional(path) or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if key in names and value.isdigit():
                target, op = names[key]
                blkio[target].append({"major": int(major), "minor": int(minor), "op": op, "value": int(value)})


def _v2_hugetlb(directory: str) -> dict[str, Any]:
    out: dict[str, dict[str, int]] = {}
    if not os.path.isdir(directory):
        return out
    for name in sorted(os.listdir(directory)):
        if name.startswith("hugetlb.") and name.endswith(".current"):
            size = name[len("hugetlb."):-len(".current")]
            out[size] = {"usage": _int(os.path.join(directory, name)), "max_usage": 0,
                         "failcnt": _keyed(os.path.join(directory, f"hugetlb.{size}.events")).get("max", 0)}
    return out
