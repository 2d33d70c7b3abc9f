"""Did the OOM killer end the container's command?  (Notifications as
they happen: nsinit/cgroups/notify.py.)"""
from __future__ import annotations

import os

from nsinit.cgroups import fs


def _counter(path: str, key: str) -> int | None:
    """The ``key N`` line of a flat keyed file, or None."""
    text = fs.read_optional(path)
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


# --- after the fact: did the OOM killer end the container's command? --------

_UNLIMITED = 2**62  # v1 writes PAGE_COUNTER_MAX pages (~2**63) for "no limit"


def oom_kills_and_limit(cgroup_paths: dict[str, str]) -> tuple[int, int | None] | None:
    """(OOM kills so far, memory limit in bytes or None) of a container's
    memory cgroup, or None when the host does not count kills there.

    Read by the supervisor once its child is reaped, before the cgroups go:
    the kernel counts a kill before delivering it, so the count is final.
    """
    if "memory" in cgroup_paths:
        directory = cgroup_paths["memory"]
        kills = _counter(os.path.join(directory, "memory.oom_control"), "oom_kill")
        limit_text = fs.read_optional(os.path.join(directory, "memory.limit_in_bytes"))
    elif "unified" in cgroup_paths:
        directory = cgroup_paths["unified"]
        kills = _counter(os.path.join(directory, "memory.events"), "oom_kill")
        limit_text = fs.read_optional(os.path.join(directory, "memory.max"))
    else:
        return None
    if kills is None:
        return None  # no memory controller, or a kernel before 4.13 (v1)
    limit_text = (limit_text or "").strip()
    limit = int(limit_text) if limit_text.isdigit() and int(limit_text) < _UNLIMITED else None
    return kills, limit


def oom_kill_text(limit: int | None) -> str:
    """The line nsinit prints when the OOM killer ended the command."""
    if limit is None:
        return "the command was killed by the OOM killer (no memory limit: the host ran out of memory)"
    amount = f"{limit / (1 << 20):g} MiB" if limit >= 1 << 20 else f"{limit} bytes"
    return f"the command was killed by the OOM killer (memory limit {amount})"
