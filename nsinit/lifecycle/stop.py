"""``nsinit stop`` (Container.stop): SIGTERM, a grace period, SIGKILL.

Container.stop, send_stop_signal and wait_stopped are these, imported when
called: apart from nsinit/container.py, which every nsinit-runc command
loads (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

import os

from nsinit import state
from nsinit.container import STOP_CLEANUP_SECONDS
from nsinit.errors import NoContainerError, NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal

    from nsinit.container import Container
    from nsinit.state import State
else:
    import _signal as signal  # signal.py's C half: no enum classes


def stop(container: Container, grace: float) -> bool:
    with container.locked():
        current, pidfd = send_stop_signal(container)
    return wait_stopped(container, current, pidfd, grace)


def send_stop_signal(container: Container) -> tuple[State, int]:
    """SIGTERM to the init; returns its state and a pidfd for wait_stopped.

    Call under the root lock (the pid is checked and signalled before a
    new container could take the directory over); call wait_stopped after
    releasing it: the supervisor needs the lock to clean up.
    """
    current = container.require_state()
    pidfd = state.pin_process(current.init_pid, current.init_start_time)
    if pidfd < 0:
        raise NoContainerError("stop", f"no running container in {container.root}")
    signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    return current, pidfd


def wait_stopped(container: Container, current: State, pidfd: int, grace: float) -> bool:
    """Wait ``grace`` seconds for the init to exit, then SIGKILL every
    process; return once the container's record is gone.  True when it
    took SIGKILL (a PID 1 without a TERM handler ignores TERM: the
    kernel's rule for a namespace's init)."""
    from nsinit.processes import kill_every_process

    try:
        if current.status == "paused":
            thaw_for_stop(container)  # a frozen init handles no signal
        killed = not state.process_exited(pidfd, grace)
        if killed:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            kill_every_process(current)
            state.process_exited(pidfd, STOP_CLEANUP_SECONDS)
    finally:
        os.close(pidfd)
    if not state.wait_for_removal(container.root, current, timeout=STOP_CLEANUP_SECONDS):
        raise NsinitError("stop", f"the container in {container.root} ended but its nsinit "
                                  f"(pid {current.supervisor_pid}) has not cleaned up", 1)
    container.status_with_record()  # its nsinit died unreaped: remove what it left, quietly
    return killed


def thaw_for_stop(container: Container) -> None:
    try:
        container.resume()
    except NoContainerError:
        pass  # it ended meanwhile: nothing left to thaw
