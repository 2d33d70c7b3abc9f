"""Start: release a created container's init, through its exec fifo.

runc's exec.fifo.  The creation makes a FIFO in nsinit's private record
and gives the child an O_PATH fd on it.  After its last setup step the
init opens it for writing through /proc/self/fd, which blocks until
someone opens it for reading: ``start``, from any process, any time later.
The init then writes "0" and execs its command.  Its end of the fifo is
close-on-exec, so ``start`` reads until EOF and knows the exec happened;
from the open on, the fifo is also where the init reports a failure (a
step's error, or the trampoline's exec errno): they were the sync socket's
to carry, and no one reads that socket any more.
"""
from __future__ import annotations

import os
import select
import stat
import time

from nsinit import state
from nsinit.errors import EXIT_CANNOT_EXECUTE, EXIT_COMMAND_FAILED, EXIT_NOT_FOUND, NoContainerError, NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Callable

    from nsinit.container import Container

RELEASED = b"0"             # what the init writes once its open returned (runc writes the same)
START_TIMEOUT_SECONDS = 30.0  # from the release to the command's execve: a few ms, unless the host is stuck
# Writable by anyone who can reach it, as runc's: the init opens it after it
# became the container's user (in a user namespace, not even the owner);
# only root can get through the private directory (0700) to it.
FIFO_MODE = 0o622


# --- the creation's side (parent, before clone) ---------------------------------

def make_exec_fifo(private: str) -> int:
    """Make ``private``/exec.fifo afresh; an O_PATH fd on it, for the child."""
    path = os.path.join(private, state.EXEC_FIFO)
    try:
        os.unlink(path)  # left by a creation killed before it could unwind
    except FileNotFoundError:
        pass
    os.mkfifo(path, FIFO_MODE)
    os.chmod(path, FIFO_MODE)  # mkfifo's mode went through our umask
    return os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)


# --- the init's side (in the child, its last step before exec) -------------------

def wait_for_start(fifo_fd: int, sync_fd: int, proc_fd: int = -1) -> None:
    """Tell the creator we are created, then block until ``start``.

    The fifo is reopened through /proc/self/fd: its directory is not
    reachable from the container's root, and an O_PATH fd on the fifo
    itself (not on a directory) gives no way out of it.  Checked before
    "created" is sent, so that a container without /proc fails its create,
    not its start.  After the open, ``sync_fd`` becomes the fifo: what the
    init has left to report goes to the starter.  ``proc_fd`` (a container
    without a mount namespace, chrooted into an image whose /proc is a plain
    directory): the host's /proc, to reopen the fifo through.
    """
    path = f"/proc/self/fd/{fifo_fd}"
    name, dir_fd = (f"self/fd/{fifo_fd}", proc_fd) if proc_fd >= 0 else (path, None)
    # Not checked through the host's /proc, which is one: faccessat goes
    # through faccessat2 there, which a seccomp profile older than Linux
    # 5.8 (loaded by now) denies.
    if proc_fd < 0 and not os.access(path, os.W_OK):
        raise NsinitError("wait for start", f"cannot reach the exec fifo through {path} "
                                            "(a created container's init needs /proc mounted)")
    # Imported here, not at the top: the starter reads messages only when
    # the init reports a failure.  The child has it loaded already (child.py
    # imports it), so this finds it in sys.modules: no file is opened, the
    # host's tree may be out of reach by now.
    from nsinit import messages

    die_of_stop_signals_while_waiting()
    messages.send(sync_fd, messages.created())
    # Blocks until start opens it for reading.
    fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    os.write(fd, RELEASED)
    # The O_PATH fds go before exec: the kernel once reset dumpable too late
    # for an fd on a host file to be safe in an exec'd process (CVE-2016-9962).
    os.close(fifo_fd)
    if proc_fd >= 0:
        os.close(proc_fd)
    # Inheritable, as the sync socket was made for the trampoline's exec
    # (trampoline.keep_report_fd); the trampoline makes it close-on-exec
    # for the command's, whose success the starter sees as EOF.
    os.dup2(fd, sync_fd, inheritable=True)
    os.close(fd)


# --- the starter's side ----------------------------------------------------------

# Signals that end a created container that was never started (podman stop
# of a created container, `nsinit-runc kill ID` before start).
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def die_of_stop_signals_while_waiting() -> None:
    """A waiting init is its pid namespace's PID 1, which the kernel spares
    every signal it has no handler for, SIGKILL aside: without handlers a
    SIGTERM to a created container would do nothing.  runc's waiting init
    (a Go program, which handles them all) dies of them; so does this one,
    exiting 128+N.  execve resets caught signals to the default, so nothing
    of this reaches the command."""
    import _signal as signal  # type: ignore[import-not-found]  # built in: the host's stdlib is out of reach now

    def die(signum: int, _frame: object) -> None:
        os._exit(128 + signum)

    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), die)


def start(container: Container) -> None:
    """``nsinit start``: release the created container in ``container.root``."""
    with state.RootLock(container.root):
        start_locked(container)


def start_locked(container: Container, current: state.State | None = None) -> None:
    """``start`` for a caller that holds the root dir's lock; ``current``:
    the record of a created container that caller read under that lock
    (nsinit-runc start checks the status itself, in runc's words), else it
    is read and checked here."""
    if current is None:
        status, current, why = container.status_with_record(report_stale=True)
        if status != "created" or current is None:
            raise _not_startable(container.root, status, current, why)
    private = state.private_dir(container.root)

    def record_running() -> None:
        # Done while the init execs (Python -> trampoline -> command, ~2 ms
        # on another CPU), not after: the record is the lock holder's alone
        # either way, and a released init that then fails is dead, which
        # every reader sees whatever status it was recorded with.  The init
        # opens the fifo through its O_PATH fd: its name can go first.
        _unlink_fifo(private)
        current.status = "running"
        state.update_state(container.root, current)

    report = release(os.path.join(private, state.EXEC_FIFO), current, meanwhile=record_running)
    _raise_reported(report, current)
    if current.hooks:
        from nsinit.lifecycle.hooks import run_poststart

        run_poststart(current, container.warn)


def release(path: str, current: state.State, meanwhile: Callable[[], None] | None = None) -> bytes:
    """Open the fifo for reading, which lets the init's open return; read
    what it writes until its exec closes its end.  Returns the bytes after
    the "0": empty, or a failure's message (nsinit/messages.py).
    ``meanwhile`` runs right after the release, while the init execs."""
    pidfd = state.pin_process(current.init_pid, current.init_start_time)
    if pidfd < 0:
        raise NsinitError("start", f"container init {current.init_pid} is gone", EXIT_COMMAND_FAILED)
    try:
        # Non-blocking: the open returns whether or not the init is (still)
        # in its own open; its exit is watched through the pidfd meanwhile.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                raise NsinitError("start", f"{path} is not a FIFO", EXIT_COMMAND_FAILED)
            try:
                if meanwhile is not None:
                    meanwhile()
            finally:
                # Released whatever ``meanwhile`` raised: this end stays open
                # until the init's exec, as before it (a closed reader would
                # fail the init's write of RELEASED).
                data = _read_until_exec(fd, pidfd)
        finally:
            os.close(fd)
    finally:
        os.close(pidfd)
    if not data.startswith(RELEASED):
        raise NsinitError("start", f"container init {current.init_pid} exited before it was started",
                          EXIT_COMMAND_FAILED)
    return data[len(RELEASED):]


def _read_until_exec(fd: int, pidfd: int) -> bytes:
    """Everything written to the fifo until EOF (the init's end closed), or
    until the init has exited (a writer that never came gives no EOF)."""
    data = b""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        ready = select.select([fd, pidfd], [], [], max(remaining, 0))[0]
        if not ready:
            raise NsinitError("start", f"the container's init did not exec within {START_TIMEOUT_SECONDS:g} s "
                                       "of being released", EXIT_COMMAND_FAILED)
        if fd not in ready:  # exited without having opened the fifo
            return data + _read_available(fd)
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue  # woken by the writer's open, nothing written yet
        if not chunk:
            return data
        data += chunk


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def _raise_reported(report: bytes, current: state.State) -> None:
    """A failure the init reported after its release: one of its last
    steps, or the command's execve (through the trampoline)."""
    if not report:
        return
    from nsinit import messages

    try:
        message = messages.decode(report)
    except NsinitError:
        message = None
    if message is not None and message["kind"] == "exec_failed":
        err = int(message["errno"])
        code = EXIT_NOT_FOUND if err == 2 else EXIT_CANNOT_EXECUTE  # ENOENT
        raise NsinitError("exec", f"the command's execve failed: {os.strerror(err)}", code)
    if message is not None and message["kind"] == "failed":
        raise messages.failure_error(message)
    raise NsinitError("start", f"container init {current.init_pid} reported {report[:200]!r}")


def _unlink_fifo(private: str) -> None:
    try:
        os.unlink(os.path.join(private, state.EXEC_FIFO))
    except FileNotFoundError:
        pass


def _not_startable(root: str, status: str, current: state.State | None, why: str) -> NsinitError:
    if current is None:
        return NoContainerError("start", f"no container in {root}")
    pid = current.init_pid
    text = {
        "running": f"the container in {root} runs already (pid {pid}): only a created one can be started",
        "paused": f"the container in {root} is paused (pid {pid}); nsinit resume first",
        "creating": f"the container in {root} is still being created (pid {pid})",
        "stopped": f"the container in {root} has stopped ({why})",
    }.get(status, f"the container in {root} is {status}")
    return NsinitError("start", text, EXIT_COMMAND_FAILED)
