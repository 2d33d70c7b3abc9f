"""OOM-kill notifications, until the cgroup goes away.

v1: an eventfd registered on memory.oom_control through cgroup.event_control
(libcontainer's notify_linux.go).  The kernel signals it on every OOM in the
cgroup, and once more when the cgroup is removed; the removal is told apart
by cgroup.event_control being gone.
v2: memory.events' ``oom_kill`` counter, re-read whenever the kernel flags
the file changed (poll POLLPRI), with a bounded poll timeout as a fallback.

Both register *before* returning the iterator, so an OOM that happens right
after the call is not missed.
"""
from __future__ import annotations

import errno
import os
import select

from nsinit.cgroups import fs
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Iterator

POLL_SECONDS = 1.0   # v2: re-check at least this often (missed notifications, removal)


def _counter(path: str, key: str) -> int | None:
    """The ``key N`` line of a flat keyed file, or None."""
    text = fs.read_optional(path)
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def v1_oom_events(directory: str) -> Iterator[int]:
    """Yields the running count of OOM events (1, 2, ...)."""
    control = os.path.join(directory, "cgroup.event_control")
    oom_control = os.path.join(directory, "memory.oom_control")
    try:
        oom_fd = os.open(oom_control, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NsinitError("oom", f"{directory} does not exist (has the container exited?)") from None
    event_fd = os.eventfd(0, os.EFD_CLOEXEC)
    try:
        fs.write_file(control, f"{event_fd} {oom_fd}")
    except OSError as err:
        os.close(event_fd)
        os.close(oom_fd)
        raise NsinitError("oom", f"cannot register for OOM events: {err.strerror}") from None
    # Kernels >= 4.13 count kills in memory.oom_control; one eventfd wake
    # can stand for several kills, and an OOM without a kill (oom_kill_disable)
    # still wakes it.
    kills = _counter(oom_control, "oom_kill")
    return _v1_loop(event_fd, oom_fd, control, oom_control, kills)


def _v1_loop(event_fd: int, oom_fd: int, control: str, oom_control: str, kills: int | None) -> Iterator[int]:
    total = 0
    try:
        while True:
            wakes = os.eventfd_read(event_fd)
            if not os.path.exists(control):
                return  # the cgroup was removed
            now = _counter(oom_control, "oom_kill")
            count = wakes
            if kills is not None and now is not None and now > kills:
                count = now - kills
            kills = now
            for _ in range(count):
                total += 1
                yield total
    finally:
        os.close(event_fd)
        os.close(oom_fd)


def v2_oom_events(directory: str) -> Iterator[int]:
    events = os.path.join(directory, "memory.events")
    try:
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not os.path.isdir(directory):
            raise NsinitError("oom", f"{directory} does not exist (has the container exited?)") from None
        raise NsinitError("oom", "no memory.events: the memory controller is not enabled for this cgroup") from None
    return _v2_loop(fd, directory, _counter(events, "oom_kill") or 0)


def _v2_loop(fd: int, directory: str, last: int) -> Iterator[int]:
    total = 0
    poller = select.poll()
    poller.register(fd, select.POLLPRI | select.POLLERR)
    try:
        while True:
            poller.poll(int(POLL_SECONDS * 1000))
            try:
                text = os.pread(fd, 4096, 0).decode("ascii", "replace")
            except OSError as err:
                if err.errno in (errno.ENODEV, errno.ENOENT):
                    return  # the cgroup was removed under the open file
                raise
            now = last
            for line in text.splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill" and value.strip().isdigit():
                    now = int(value)
            for _ in range(max(0, now - last)):
                total += 1
                yield total
            last = now
            if not os.path.isdir(directory):
                return
    finally:
        os.close(fd)


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
