"""Memory notifications a caller can select on: OOM kills and memory pressure.

libcontainer's NotifyOOM and NotifyMemoryPressure hand out a channel; the
Python shape is a ``Notifier``: ``fileno()`` for select/poll (readable when
notifications are pending), ``read()`` to take them, iteration (one item per
notification, blocking, until the container's cgroup goes), and ``close()``
(or ``with``).

v1: an eventfd registered through cgroup.event_control on
memory.oom_control (every OOM in the cgroup) or memory.pressure_level with
a level (the kernel's vmpressure: reclaim in the cgroup); libcontainer's
notify_linux.go.  The kernel also signals every registered eventfd once when
the cgroup is removed; that wake is told apart by cgroup.event_control being
gone.

v2: memory.events' ``oom_kill`` counter, re-read whenever kernfs flags the
file changed (POLLPRI).  A kernfs file always polls readable, so the fd
handed out is an epoll fd watching it for POLLPRI: readable exactly when a
kill was counted, as the v1 eventfd is.  Memory pressure is a PSI trigger
written to memory.pressure (a stall threshold within a window:
Documentation/accounting/psi.rst), whose own fd is handed out: see
V2Pressure.  The removal of a v2 cgroup shows on no fd: ``read`` also
checks that the directory still exists, at least every POLL_SECONDS.

Every notifier is registered before it is returned: a notification right
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
    from typing import Callable, Iterator

POLL_SECONDS = 1.0   # v2: re-check at least this often that the cgroup still exists
LEVELS = ("low", "medium", "critical")
# v2 has no levels: nsinit's choice of PSI trigger for each, as stalled
# time within a two-second window.  Two seconds: without CAP_SYS_RESOURCE
# (a plain user; root in a container that dropped it, as on these
# machines) the kernel takes only windows that are multiples of 2 s
# (EINVAL otherwise).  "some": at least one task waited for memory; "full":
# every non-idle task did at once.
PSI_TRIGGERS = {
    "low": "some 100000 2000000",       # 5% of the window
    "medium": "some 400000 2000000",    # 20%
    "critical": "full 400000 2000000",  # 20%, with nothing making progress
}


class Notifier:
    """Notifications of one kind for one cgroup; see the module doc."""

    def __init__(self, what: str, directory: str) -> None:
        self.what, self.directory = what, directory
        self.fd = -1          # what the caller selects on
        self.count = 0        # notifications taken so far
        self.ended = False    # the cgroup is gone: nothing more will come
        self._own: list[int] = []  # fds to close, the selectable one among them

    def fileno(self) -> int:
        if self.fd < 0:
            raise ValueError(f"{self.what} notifier is closed")
        return self.fd

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def read(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds (None: for ever) for notifications;
        how many arrived (0 on timeout, and once the cgroup is gone:
        ``ended`` says which)."""
        if self.fd < 0:
            raise ValueError(f"{self.what} notifier is closed")
        if self.ended:
            return 0
        got = self._take(timeout)
        self.count += got
        return got

    def _take(self, timeout: float | None) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        """The running count (1, 2, ...) once per notification, until the
        cgroup goes; the notifier stays open (close it, or use ``with``)."""
        while not self.ended and self.fd >= 0:
            before = self.count
            self.read(None)
            yield from range(before + 1, self.count + 1)

    def close(self) -> None:
        for fd in self._own:
            os.close(fd)
        self._own, self.fd = [], -1

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._own:
            self.close()


def _wait_readable(fd: int, timeout: float | None) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


class _V1Event(Notifier):
    """An eventfd registered on a memory cgroup file through cgroup.event_control."""

    def __init__(self, what: str, directory: str, file_name: str, argument: str = "") -> None:
        super().__init__(what, directory)
        self.control = os.path.join(directory, "cgroup.event_control")
        target = os.path.join(directory, file_name)
        try:
            target_fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NsinitError(what, f"{target} does not exist (has the container exited?)") from None
        self._own.append(target_fd)
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._own.append(self.fd)
        line = f"{self.fd} {target_fd} {argument}".rstrip()
        try:
            fs.write_file(self.control, line)
        except OSError as err:
            self.close()
            raise NsinitError(what, f"cannot register on {target}: {err.strerror}") from None

    def _wakes(self, timeout: float | None) -> int:
        """The eventfd's counter (how many times the kernel signalled it), or
        0: nothing within ``timeout``, or the cgroup was removed."""
        if not _wait_readable(self.fd, timeout):
            return 0
        try:
            wakes = os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0  # another reader of the same fd took it
        if not os.path.exists(self.control):
            self.ended = True  # the removal's wake, maybe with last events: none is told apart
            return 0
        return wakes


class V1Oom(_V1Event):
    def __init__(self, directory: str) -> None:
        super().__init__("oom", directory, "memory.oom_control")
        self.oom_control = os.path.join(directory, "memory.oom_control")
        # Kernels >= 4.13 count kills in memory.oom_control: one wake can
        # stand for several kills, and an OOM without a kill
        # (oom_kill_disable) wakes it too.
        self.kills = _counter(self.oom_control, "oom_kill")

    def _take(self, timeout: float | None) -> int:
        wakes = self._wakes(timeout)
        if not wakes:
            return 0
        now = _counter(self.oom_control, "oom_kill")
        got = wakes
        if self.kills is not None and now is not None and now > self.kills:
            got = now - self.kills
        self.kills = now
        return got


class V1Pressure(_V1Event):
    def __init__(self, directory: str, level: str) -> None:
        super().__init__("memory pressure", directory, "memory.pressure_level", level)
        self.level = level

    def _take(self, timeout: float | None) -> int:
        return self._wakes(timeout)


class _V2Poll(Notifier):
    """An epoll fd watching one cgroup2 file for POLLPRI."""

    def __init__(self, what: str, directory: str, file_name: str, flags: int) -> None:
        super().__init__(what, directory)
        path = os.path.join(directory, file_name)
        try:
            self.file_fd = os.open(path, flags | os.O_CLOEXEC)
        except FileNotFoundError:
            if not os.path.isdir(directory):
                raise NsinitError(what, f"{directory} does not exist (has the container exited?)") from None
            raise NsinitError(what, f"no {file_name}: the memory controller is not enabled for this cgroup") from None
        self._own.append(self.file_fd)
        self.epoll = select.epoll(flags=select.EPOLL_CLOEXEC)
        self.fd = self.epoll.fileno()
        try:
            self.epoll.register(self.file_fd, select.EPOLLPRI)
        except PermissionError:
            pass  # not a kernfs file (a test's fake tree): read() re-reads it every POLL_SECONDS

    def close(self) -> None:
        if self.fd >= 0:
            self.epoll.close()  # closes self.fd
            self.fd = -1
        super().close()

    def _wait(self, timeout: float | None, changed: Callable[[], bool]) -> bool:
        """Until ``changed()`` (called after each flag of the file, and at
        least every POLL_SECONDS: a change is never missed) or ``timeout``;
        False on timeout or once the cgroup is gone (``ended``)."""
        left = timeout
        while True:
            step = POLL_SECONDS if left is None else min(left, POLL_SECONDS)
            self.epoll.poll(step)
            if changed():
                return True
            if self.ended or not os.path.isdir(self.directory):
                self.ended = True
                return False
            if left is not None:
                left -= step
                if left <= 0:
                    return False


class V2Oom(_V2Poll):
    def __init__(self, directory: str) -> None:
        super().__init__("oom", directory, "memory.events", os.O_RDONLY)
        self.last = self._kills() or 0

    def _kills(self) -> int | None:
        """memory.events' oom_kill, read through the watched fd (the read
        is what clears kernfs's "changed" flag); None once the cgroup is gone."""
        try:
            text = os.pread(self.file_fd, 4096, 0).decode("ascii", "replace")
        except OSError as err:
            if err.errno in (errno.ENODEV, errno.ENOENT):
                self.ended = True
                return None
            raise
        return _counter_in(text, "oom_kill") or 0

    def _take(self, timeout: float | None) -> int:
        before = self.last

        def counted_more() -> bool:
            now = self._kills()
            if now is not None and now > self.last:
                self.last = now
            return self.last > before

        self._wait(timeout, counted_more)
        return self.last - before


class V2Pressure(Notifier):
    """A PSI trigger on memory.pressure.  Its fd is handed out as it is:
    polling a trigger takes its event (psi_trigger_poll clears it), so no
    epoll fd could stand in front of it without losing what it shows.  It
    polls POLLPRI only: select's exceptional set, or poll(POLLPRI); after
    such a poll says so, that notification is the caller's to count."""

    def __init__(self, directory: str, level: str) -> None:
        super().__init__("memory pressure", directory)
        self.level = level
        path = os.path.join(directory, "memory.pressure")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if not os.path.isdir(directory):
                raise NsinitError(self.what, f"{directory} does not exist (has the container exited?)") from None
            raise NsinitError(self.what, "no memory.pressure: the kernel has no PSI (psi=1 on its command line)") from None
        self._own.append(self.fd)
        trigger = PSI_TRIGGERS[level]
        try:
            os.write(self.fd, trigger.encode() + b"\0")  # the kernel takes the NUL as the end
        except OSError as err:
            self.close()
            raise NsinitError(self.what, f'cannot set the PSI trigger "{trigger}" on {path}: {err.strerror}') from None
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLPRI)

    def _take(self, timeout: float | None) -> int:
        # A trigger fires at most once per window and stays armed.  POLLERR:
        # the cgroup went; so does a directory that is gone.
        left = timeout
        while True:
            step = POLL_SECONDS if left is None else min(left, POLL_SECONDS)
            for _, mask in self.poller.poll(int(step * 1000)):
                if mask & (select.POLLERR | select.POLLNVAL):
                    self.ended = True
                    return 0
                return 1
            if not os.path.isdir(self.directory):
                self.ended = True
                return 0
            if left is not None:
                left -= step
                if left <= 0:
                    return 0


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise NsinitError("memory pressure", f'level "{level}" must be one of {", ".join(LEVELS)}')
    return level


def _counter(path: str, key: str) -> int | None:
    """The ``key N`` line of a flat keyed file, or None."""
    return _counter_in(fs.read_optional(path) or "", key)


def _counter_in(text: str, key: str) -> int | None:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None
