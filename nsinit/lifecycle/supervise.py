"""2014 ``nsinit exec``'s supervision: from clone until PID 1 (or the joined process) exits.

Signals meant for nsinit go to the child from right after clone (three
Ctrl-C in a row kill it); the wait relays a pty when there is one; the exit
status is the command's (128+N when killed by signal N), and the OOM killer
or the init's end is said in one line when it explains a 137.  A detached
launch (``create``, ``--detach``) forwards signals only while it sets up:
nobody supervises it after (nsinit/lifecycle/create.py).
"""
from __future__ import annotations

import gc
import os
import sys
import time

from nsinit import console

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal

    from nsinit.lifecycle.launch import _Launch
else:
    # The C module under signal.py, which adds enum classes (and the enum
    # module, ~2 ms of every start); its functions and constants are the same.
    import _signal as signal


INTERRUPTS_TO_KILL = 3     # Ctrl-C presses (SIGINT to the supervisor) that kill, as docker's third
INTERRUPT_WINDOW_SECONDS = 5.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


def forward_signals(launch: _Launch) -> None:
    """From now on, signals meant for nsinit go to the child.

    Installed right after clone, not after the exec: a SIGTERM that
    arrives during setup must stop the container, not kill nsinit and
    leave the container behind without its supervisor.
    """
    interrupts = InterruptCounter()

    def forward(signum: int, _frame: object) -> None:
        if launch.reaped:
            return
        if signum == signal.SIGINT and interrupts.press():
            kill_on_interrupts(launch)
            return
        signal.pidfd_send_signal(launch.pidfd, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    launch.undo.callback(lambda: [signal.signal(sig, h) for sig, h in previous.items()])


def kill_on_interrupts(launch: _Launch) -> None:
    """The third Ctrl-C in a row: SIGKILL our child, whose PID 1 may
    ignore SIGINT (a namespace's init without a handler does)."""
    from nsinit.lifecycle.join import _Join

    what = "the joined process" if isinstance(launch, _Join) else "the container"
    sys.stderr.write(f"nsinit: interrupted {INTERRUPTS_TO_KILL} times: killing {what} (SIGKILL)\n")
    signal.pidfd_send_signal(launch.pidfd, signal.SIGKILL)


def supervise(launch: _Launch) -> int:
    stdio = launch.stdio
    exited: list[int] = []
    was_off = collecting_while_waiting()
    try:
        if stdio.needs_relay:
            return _wait_with_relay(launch, stdio, exited)
        return _wait(launch, exited)
    finally:
        console.restore_terminal(stdio)
        if was_off:
            gc.disable()


def _wait(launch: _Launch, exited: list[int]) -> int:
    _, status = os.waitpid(launch.pid, 0)
    launch.reaped = True
    exited.append(status)
    return exit_status(status)


def _wait_with_relay(launch: _Launch, stdio: console.Stdio, exited: list[int]) -> int:
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(write_fd)
    old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: console.on_window_change(stdio))
    # The command has run since its exec: a resize before the handler
    # above was installed was ignored (SIGWINCH's default), so copy the
    # size once more now that none can be missed.
    console.on_window_change(stdio)
    console.enter_raw_mode(stdio)

    def child_exited() -> bool:
        if not exited:
            pid, status = os.waitpid(launch.pid, os.WNOHANG)
            if pid:
                launch.reaped = True
                exited.append(status)
        return bool(exited)

    try:
        console.relay(stdio, read_fd, child_exited)
        if not child_exited():
            # The container's side closed before its init exited (it is
            # being torn down, or closed its output and runs on): block
            # for it, as _wait does.  A 10 ms poll here cost a container
            # with a terminal up to 10 ms after its end (seen in 3 of 5
            # runs); forwarded signals still run their handlers (PEP 475).
            _, status = os.waitpid(launch.pid, 0)
            launch.reaped = True
            exited.append(status)
    finally:
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGCHLD, old_chld)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(read_fd)
        os.close(write_fd)
    return exit_status(exited[0])


class InterruptCounter:
    """SIGINTs to the supervisor: ``press`` is True on the third within
    INTERRUPT_WINDOW_SECONDS.  The first two are forwarded as they are (the
    command may handle them); the third ends a container that ignores them."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def press(self) -> bool:
        now = time.monotonic()
        self.times = [t for t in self.times if now - t < INTERRUPT_WINDOW_SECONDS] + [now]
        return len(self.times) >= INTERRUPTS_TO_KILL


def oom_kills(cgroup_paths: dict[str, str]) -> int:
    """The memory cgroup's OOM kill count (0 when the host keeps none)."""
    if not cgroup_paths:
        return 0
    from nsinit.cgroups import oom

    try:
        found = oom.oom_kills_and_limit(cgroup_paths)
    except OSError:
        return 0  # the cgroup is going away with its container
    return found[0] if found else 0


def say_if_oom_killed(status: int, cgroup_paths: dict[str, str], kills_before: int) -> bool:
    """One line when the OOM killer ended the command, which otherwise just
    exits 137 like any SIGKILL.  Read before the cgroups are removed.
    Returns whether it said so."""
    if status != 128 + signal.SIGKILL or not cgroup_paths:
        return False
    from nsinit.cgroups import oom

    try:
        found = oom.oom_kills_and_limit(cgroup_paths)
    except OSError:
        return False  # the cgroup went with the container (a join outliving it): nothing to tell
    if found is None or found[0] <= kills_before:
        return False
    sys.stderr.write(f"nsinit: {oom.oom_kill_text(found[1])}\n")
    return True


_PF_EXITING = 0x4  # include/linux/sched.h: the task is in do_exit()


def init_is_exiting(pid: int) -> bool:
    """Whether ``pid`` has begun to exit (its /proc stat flags say PF_EXITING)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return bool(int(fields[6]) & _PF_EXITING)
    except (OSError, IndexError, ValueError):
        return True  # gone already


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def collecting_while_waiting() -> bool:
    """Turn the cyclic garbage collector on for a supervisor's wait, if it is
    off; returns whether it was (to turn it off again after).

    nsinit's launchers start with it off (see nsinit/__main__.py).  A
    supervisor may wait for hours, relaying a terminal: there it collects,
    but only what is new: everything made until now is frozen, never
    scanned again.
    """
    if gc.isenabled():
        return False
    gc.freeze()
    gc.enable()
    return True
