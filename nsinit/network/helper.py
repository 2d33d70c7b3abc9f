"""veth setup in a short-lived helper process.

A supervisor stays resident as long as its container.  Had it set up the
veths itself, pyroute2 and the stdlib it needs (logging, typing, enum, re,
socket, ...) would stay resident with it: 15.2 MB instead of 11.8 for a
veth container's supervisor, measured.  So the supervisor forks a helper
that runs ``veth.setup_networks`` and exits; the pid goes there and the
records come back over two pipes, as messages (nsinit/messages.py:
``set_up_networks``, answered by ``networks`` or ``failed``).  Undoing them at the end needs no pyroute2 (``teardown``).

The helper is forked before the clone, as soon as the config is read: its
imports (pyroute2 alone is ~15 ms, more in a forked process, which pays
copy-on-write faults) then overlap the making of the cgroups and the clone.
It learns the init's pid once the container's network namespace exists; if
the creation fails before that, it is killed: it has changed nothing yet.

The helper ignores the signals the supervisor forwards to the container:
its work takes milliseconds, and a half-done setup it abandoned would leave
host veths nobody recorded.  If the setup fails, the helper has already
deleted what it created (``veth.setup_networks`` does), and the error comes
back as one line naming the field.
"""
from __future__ import annotations

import os

from nsinit import messages
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
    from typing import Any, Iterable, NoReturn

    from nsinit.config.model import Config
else:
    import _signal as signal  # signal.py without its enum classes: see nsinit/messages.py

STEP = "network"
PIPE_BUF = 4096  # a write of up to this much to a pipe is atomic (pipe(7))


class NetworkHelper:
    """The forked helper, from the supervisor's side."""

    def __init__(self, config: Config, ignored_signals: Iterable[int]) -> None:
        pid_read, self.pid_write = os.pipe2(os.O_CLOEXEC)
        self.reply_read, reply_write = os.pipe2(os.O_CLOEXEC)
        self.helper = os.fork()
        if self.helper == 0:
            os.close(self.pid_write)
            os.close(self.reply_read)
            _serve(config, ignored_signals, pid_read, reply_write)
        os.close(pid_read)
        os.close(reply_write)

    def supervisor_fds(self) -> list[int]:
        """What the container's init must close right after the clone."""
        return [fd for fd in (self.pid_write, self.reply_read) if fd >= 0]

    def setup(self, init_pid: int) -> list[dict[str, Any]]:
        """Set up the networks of ``init_pid``'s namespace; the state records."""
        os.write(self.pid_write, messages.encode(messages.set_up_networks(init_pid)))
        self._close_pid_pipe()
        data = messages.read_all(self.reply_read)
        status = self.reap()
        if not data:
            raise NsinitError(STEP, f"the network helper process died ({_describe(status)})")
        reply = messages.decode(data)
        if reply["kind"] == "failed":
            raise messages.failure_error(reply)
        if reply["kind"] != "networks":
            raise NsinitError(STEP, f"the network helper answered {reply!r}")
        return reply["records"]

    def reap(self) -> int:
        """Wait for the helper to end.  Idempotent.

        One that never got a pid (the creation failed before the clone) has
        changed nothing and may still be importing: it is killed outright.
        """
        if self.helper > 0 and self.pid_write >= 0:
            os.kill(self.helper, signal.SIGKILL)
        self._close_pid_pipe()
        if self.reply_read >= 0:
            os.close(self.reply_read)
            self.reply_read = -1
        if self.helper <= 0:
            return 0
        _, status = os.waitpid(self.helper, 0)
        self.helper = 0
        return status

    def _close_pid_pipe(self) -> None:
        if self.pid_write >= 0:
            os.close(self.pid_write)
            self.pid_write = -1


def _serve(config: Config, ignored_signals: Iterable[int], pid_fd: int, reply_fd: int) -> NoReturn:
    reply: messages.Message | None = None
    try:
        for signum in ignored_signals:
            signal.signal(signum, signal.SIG_IGN)
        from nsinit.network import rtnl, veth

        rtnl.load()  # the slow part, while the supervisor makes the cgroups and clones
        # One read: the message is one write of less than PIPE_BUF (atomic on a pipe).
        # Empty: the creation failed before the clone, and the pipe was closed.
        data = os.read(pid_fd, PIPE_BUF)
        if data:
            request = messages.decode(data)
            if request["kind"] != "set_up_networks":
                raise NsinitError(STEP, f"unexpected message {request!r}")
            reply = messages.networks(veth.setup_networks(config, request["init_pid"]))
    except NsinitError as err:
        reply = messages.failed(err.step, err.message, err.exit_code)
    except BaseException as err:  # noqa: BLE001 - a bug: still one line, and the helper must not return
        reply = messages.failed(STEP, f"{type(err).__name__}: {err}", 125)
    try:
        if reply is not None:
            messages.write_all(reply_fd, reply)
    finally:
        os._exit(0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
