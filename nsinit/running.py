"""Running a Process in a container: Container.run, create and join.

The Process and IO records, and the decision taken under the root's lock:
join the container that runs there, create one, or decide again when the
one met is ending (the flows themselves: nsinit/lifecycle/create.py and
join.py).  Apart from nsinit/container.py, which re-exports Process and IO
and whose methods import this when called: an engine's state, start, kill
and delete never load it (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

import os
import time

from nsinit import state
from nsinit.errors import ContainerGoneError, NoContainerError, NsinitError, describe_oserror
from nsinit.record import field, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable

    from nsinit.container import Container
    from nsinit.lifecycle.hooks import HookPlan

RELAUNCH_SECONDS = 10.0   # how long exec keeps deciding again when containers keep ending under it


@record
class Process:
    """A command to run in the container, with per-process overrides."""

    args: list[str]
    env: list[str] = field(default_factory=list)   # "K=V", added to the config's
    user: str | None = None                         # default: config.user
    cwd: str | None = None                          # default: config.working_dir
    tty: bool | None = None                         # default: config.tty, else stdin's (use_tty)
    init: bool = False                              # tini as PID 1 (creation only)
    # The seed's Process fields (nsinit/process_settings.py).  None: the
    # config's; set, they replace it for this process, created or joined.
    stdin: Any = None            # an fd or a file object; None: nsinit's own 0 (1, 2)
    stdout: Any = None
    stderr: Any = None
    extra_files: list[Any] = field(default_factory=list)  # fds or files, the process's 3, 4, ...
    additional_groups: list[str] | None = None       # names or gids, beside the user's own
    capabilities: Any = None     # CapabilitySets, a list of names, or a dict of sets
    apparmor_profile: str | None = None
    label: str | None = None     # SELinux: refused where the kernel has none
    no_new_privileges: bool | None = None
    rlimits: list[Any] | None = None  # Rlimit, (type, soft, hard) or dicts: the config's whole list
    console_socket: str | None = None  # a tty's master goes there (nsinit/oci/console_socket.py)
    console_size: tuple[int, int] | None = None  # (rows, columns) of that tty (OCI consoleSize)
    umask: int | None = None     # an OCI exec's process.user.umask (nsinit/oci/process.py)
    oom_score_adj: int | None = None
    # Set by create, and by run/join with detach: the host pid, then the exit status once waited for.
    pid: int = field(default=0, compare=False)
    status: int | None = field(default=None, compare=False)
    # The child ends of initialize_io's pipes: closed here once the process has them.
    io_child_fds: list[int] = field(default_factory=list, compare=False)

    def initialize_io(self, uid: int = 0, gid: int = 0) -> IO:
        """Pipes for the process's stdin, stdout and stderr; returns their
        other ends (write stdin, read stdout and stderr).  Every end is
        owned by ``uid``:``gid`` (the container's root, as the host sees
        it), so a process of the container that is not the host's root can
        still reopen them (/dev/stdout, /proc/self/fd/1).  The seed's
        InitializeIO; for a process without a tty, started detached
        (create, run or join with detach): a supervised run returns only
        once the process has exited, and nobody would read the pipes."""
        pairs: list[tuple[int, int]] = []
        try:
            for _ in range(3):
                pairs.append(os.pipe2(os.O_CLOEXEC))
            for pair in pairs:
                for fd in pair:
                    os.fchown(fd, uid, gid)
        except OSError as err:
            from nsinit import console

            for pair in pairs:
                console.close_fds(list(pair))
            raise NsinitError("initialize_io", describe_oserror(err)) from None
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = pairs
        self.stdin, self.stdout, self.stderr = in_r, out_w, err_w
        self.io_child_fds = [in_r, out_w, err_w]
        return IO(stdin=os.fdopen(in_w, "wb"), stdout=os.fdopen(out_r, "rb"), stderr=os.fdopen(err_r, "rb"))

    def close_io_child_ends(self) -> None:
        from nsinit import console

        console.close_fds(self.io_child_fds)
        self.io_child_fds = []

    def wait(self) -> int:
        """Wait for the process to exit; its status (128+N when killed by
        signal N).  Only its parent (the caller of create) or a child
        subreaper it was reparented to can."""
        if self.status is not None:
            return self.status
        if not self.pid:
            raise NsinitError("wait", "the process has not been started")
        try:
            _, raw = os.waitpid(self.pid, 0)
        except ChildProcessError:
            raise NsinitError("wait", f"pid {self.pid} is not a child of this process (only its parent or "
                                      "a child subreaper it was reparented to can wait for it)") from None
        from nsinit.lifecycle.supervise import exit_status

        self.status = exit_status(raw)
        return self.status

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (a container's PID 1 ignores the
        ones it has no handler for, SIGKILL aside)."""
        if not self.pid or self.status is not None:
            raise NsinitError("signal", f"process {self.pid or '(not started)'} is not running")
        os.kill(self.pid, signum)  # not reaped by us yet: the pid is still this process's


@record
class IO:
    """The caller's ends of Process.initialize_io's pipes (the seed's IO)."""

    stdin: BinaryIO    # write: the process reads it on its fd 0
    stdout: BinaryIO   # read
    stderr: BinaryIO

    def close(self) -> None:
        for end in (self.stdin, self.stdout, self.stderr):
            end.close()


def run(container: Container, process: Process, *, detach: bool = False, new: bool = False,
        created: Callable[[Process], None] | None = None, hooks: HookPlan | None = None) -> int | Process:
    """Create the container with ``process`` as PID 1, or join the live one.

    This is ``nsinit exec`` (``new``: ``exec --new``, create only).
    Returns the process's exit status (128+N when killed by signal N).
    With ``detach``: create and start it (or join) and return
    ``process`` at once, with its ``pid``; the caller waits for it.
    ``created(process)`` is called between the create and the start
    (``exec --detach`` prints the pid there: before anything the
    container writes to the same stdout).  ``hooks``: the OCI hooks of a
    creation (nsinit/lifecycle/hooks.py).
    """
    container.hooks = hooks
    if detach:
        return launch(container, process, create=True, join=not new, detach=True, start=created or _no_hook)
    return launch(container, process, create=True, join=not new)


def create(container: Container, process: Process, *, hooks: HookPlan | None = None) -> Process:
    """Set the container up with ``process`` as PID 1, which then waits
    for ``start`` before it execs; an error if a container runs here.

    Returns ``process`` with its ``pid``: a child of the caller, with the
    caller's fds 0-2 as its stdio, which nothing supervises (libcontainer's
    Start; nsinit/lifecycle/).  ``hooks``: its OCI hooks, run at their
    moments by create, start and delete (nsinit/lifecycle/hooks.py).
    """
    container.hooks, container.hooks_begun = hooks, False
    try:
        created = launch(container, process, create=True, join=False, detach=True)
    except NsinitError:
        # From its hooks on, a failed creation goes on at the deletion
        # (runtime.md; runc's destroy): poststop runs.
        if hooks is not None and container.hooks_begun:
            from nsinit.lifecycle.hooks import run_poststop_of

            run_poststop_of(hooks, container.warn)
        raise
    assert isinstance(created, Process)  # detach=True returns the process
    return created


def launch(container: Container, process: Process, *, create: bool, join: bool, detach: bool = False,
           start: Callable[[Process], None] | None = None) -> int | Process:
    try:
        return _launch_until_decided(container, process, create=create, join=join, detach=detach, start=start)
    finally:
        process.close_io_child_ends()  # initialize_io's: the process has its copies, or failed


def _launch_until_decided(container: Container, process: Process, *, create: bool, join: bool, detach: bool,
                          start: Callable[[Process], None] | None) -> int | Process:
    if container.config is None and not container.read_config_on_create:
        raise NsinitError("exec", "no container.json loaded (use Container.load)")
    from nsinit import console  # here, not at the top: nsinit-runc state, kill and delete load no terminal code

    console.ensure_std_fds()
    # Bounded by time, not by a count: where execs come and go in one
    # dir, a few decisions in a row can meet a container that is just
    # ending (seen: four, on a loaded machine), and each such end is
    # progress made by someone else.  So the time runs from the last
    # new container met: with twelve execs at load 15 on 2 cores, one
    # met ending containers for more than 10 s in all, each a new one.
    deadline, last_init = time.monotonic() + RELAUNCH_SECONDS, 0
    while True:
        try:
            return _launch_once(container, process, create=create, join=join, detach=detach, start=start)
        except ContainerGoneError as gone:
            if not create:
                raise
            if gone.init_pid != last_init:
                deadline, last_init = time.monotonic() + RELAUNCH_SECONDS, gone.init_pid
            elif time.monotonic() >= deadline:
                raise
            # It ended between our decision and the join: decide again.


def _launch_once(container: Container, process: Process, *, create: bool, join: bool, detach: bool,
                 start: Callable[[Process], None] | None) -> int | Process:
    lock = container.locked().acquire()
    try:
        try:
            current = state.load_state(container.root)
        except state.ContainerStoppedError as stopped:
            if stopped.record.detached:
                # Nobody else would remove it: its init is gone and no nsinit watches it.
                from nsinit.lifecycle.destroy import remove_container

                remove_container(container.root, stopped.record, container.warn)
                current = None
            else:
                # Its supervisor needs the lock to finish: let go, wait, retry.
                lock.release()
                state.wait_for_removal(container.root, stopped.record, timeout=5.0)
                gone = ContainerGoneError("exec", str(stopped))
                gone.init_pid = stopped.record.init_pid
                raise gone from None
        except state.StaleStateError:
            current = container.state()  # reports and removes it
        if current is not None:
            if not join:
                raise NsinitError("create", f"a container already runs in {container.root} (pid {current.init_pid})")
            # The pidfd taken by the join pins the init from here on.
            lock.release()
            from nsinit.lifecycle.join import _Join

            joining = _Join(container, process, current)
            joining.detached = detach
            status = joining.run()
            return process if detach else status
        if not create:
            raise NoContainerError("join", f"no running container in {container.root}")
        config = container.config if container.config is not None else container.read_config()
        from nsinit.lifecycle.create import _Creation

        # The creation releases the lock once the init has exec'd.
        creation = _Creation(container, process, config, lock)
        creation.detached = detach
        status = creation.run()
        if start is not None:  # run(detach=True)
            from nsinit.lifecycle.start import start_locked

            start(process)
            start_locked(container)  # still under the lock: nobody can start it first
        return process if detach else status
    finally:
        lock.release()


def _no_hook(_process: Process) -> None:
    pass
