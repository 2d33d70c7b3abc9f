"""Containers and processes: the library API (the facade over nsinit/lifecycle/).

``Container(root).run(Process(args))`` is what ``nsinit exec`` does: under
the root directory's lock, join the container that runs there, or create
one.  Creation is a readable sequence of named steps; if any fails, every
earlier one is undone in reverse order before the error is raised.
``create`` and ``start`` split it in two, with nobody supervising the
container in between or after.

Here: Process, Container (which decides: create, join, or decide again
when the container met is ending), and the queries over a live container
(its processes, its network counters).  Each flow lives in its module of
nsinit/lifecycle/: create.py (cgroups → clone → maps, veths, record),
join.py (pin by pidfd, setns, exec beside PID 1), both on launch.py's
shared steps; supervise.py (the 2014 ``exec``'s wait: signals, pty relay,
exit status, OOM told), start.py, destroy.py (the one teardown path) and
gc.py (``nsinit gc``).
"""
from __future__ import annotations

import os
import sys
import time

from nsinit import state
from nsinit.record import field, record
from nsinit.state import State
from nsinit.errors import (EXIT_COMMAND_FAILED, ContainerGoneError, NoContainerError, NsinitError,
                           describe_oserror)

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
    from typing import Any, BinaryIO, Callable

    from nsinit.cgroups.manager import Manager
    from nsinit.cgroups.notify import Notifier
    from nsinit.config.model import Config
    from nsinit.criu.options import CriuOptions
    from nsinit.lifecycle.hooks import HookPlan
    from nsinit.processes import container_pids as container_pids
    from nsinit.processes import describe_process as describe_process
    from nsinit.processes import kill_every_process as kill_every_process
else:
    # The C module under signal.py, which adds enum classes (and the enum
    # module, ~2 ms of every start); its functions and constants are the same.
    import _signal as signal

# The library's module-level functions that only some commands use, and
# their modules (PEP 562: imported on first use; an engine's state, start,
# kill and delete never load them).
_HOMES = {"container_pids": "nsinit.processes", "describe_process": "nsinit.processes",
          "kill_every_process": "nsinit.processes"}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nsinit.container' has no attribute {name!r}")
    value = getattr(__import__(home, fromlist=[name]), name)
    globals()[name] = value
    return value


RELAUNCH_SECONDS = 10.0   # how long exec keeps deciding again when containers keep ending under it
STOP_GRACE_SECONDS = 10.0  # `nsinit stop`: SIGTERM, then this long before SIGKILL (docker's default)
STOP_CLEANUP_SECONDS = 10.0  # then how long its supervisor may take to remove what it made


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


def warn_on_stderr(text: str) -> None:
    sys.stderr.write(f"nsinit: warning: {text}\n")


class Container:
    """The container whose files live in ``root`` (container.json, pid, state.json)."""

    def __init__(self, root: str, config: Config | None, *, trace: bool | str = False,
                 warn: Callable[[str], None] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.config = config
        self.trace = trace
        self.warn: Callable[[str], None] = warn or warn_on_stderr
        self.config_path: str | None = None
        self.read_config_on_create = False
        # OCI hooks for the next creation (nsinit/lifecycle/hooks.py); the 2014 door has none.
        self.hooks: HookPlan | None = None
        self.hooks_begun = False  # the creation reached its hooks (a failure then runs poststop)

    @classmethod
    def attach(cls, root: str = ".") -> "Container":
        """A handle on the container running in ``root``, for lifecycle
        commands: they read its recorded state, not container.json."""
        return cls(root, None)

    @classmethod
    def load(cls, root: str = ".", config_path: str | None = None, *, trace: bool | str = False,
             warn: Callable[[str], None] | None = None) -> "Container":
        """The container of ``root`` with container.json read now (errors and
        warnings at once)."""
        container = cls(root, None, trace=trace, warn=warn)
        container.config_path = config_path
        container.read_config()
        return container

    @classmethod
    def for_exec(cls, root: str = ".", config_path: str | None = None, *, trace: bool | str = False,
                 warn: Callable[[str], None] | None = None) -> "Container":
        """A handle for ``run``: container.json is read only if the container
        must be created.  A join takes the config recorded at creation, so it
        neither pays for parsing the file nor fails on a later edit of it."""
        container = cls(root, None, trace=trace, warn=warn)
        container.config_path = config_path
        container.read_config_on_create = True
        return container

    def read_config(self) -> Config:
        from nsinit.config.load import load_config

        config, warnings = load_config(self.root, self.config_path)
        for text in warnings:
            self.warn(text)
        self.config = config
        return config

    def locked(self, *, wait: float | None = None) -> state.RootLock:
        """This root dir's lock, for ``with`` (the rule it keeps: state.RootLock).

        ``wait``: give up after that many seconds and go on unlocked, with a
        warning (``state.LOOK_WAIT_SECONDS``, for commands that only look or
        signal); None waits as long as it takes.  Not re-entrant."""
        return state.RootLock(self.root, wait=wait, warn=self.warn)

    # -- queries ---------------------------------------------------------
    def state(self) -> State | None:
        """The live container's state, or None (stale files are reported and removed)."""
        status, current, _ = self.status_with_record(report_stale=True)
        return None if status == "stopped" else current

    def status(self) -> str:
        """The container's status in the OCI words (libcontainer's Status()):
        "creating", "created" (its init waits for start), "running",
        "paused" or "stopped" (its init exited, or there is no container
        here: nothing of a dead one is left once this has looked)."""
        status = self.status_with_record()[0]
        return "stopped" if status in ("none", "stale") else status

    def status_with_record(self, *, report_stale: bool = False) -> tuple[str, State | None, str]:
        """(status, state, why) where status is "creating", "created" (its
        init waits for start), "running", "paused", "stopped" (its init
        exited; its own nsinit is removing it, or, created detached, it
        waits for delete), "stale" (what a dead container left: removed now,
        with its cgroups and veths) or "none"."""
        try:
            current = state.load_state(self.root)
        except state.ContainerStoppedError as stopped:
            return "stopped", stopped.record, str(stopped)
        except state.StaleStateError as err:
            if report_stale:
                self.warn(f"removing stale container files in {self.root}: {err}")
            if err.record is not None:
                remove_leftovers(err.record)
            state.remove_state(self.root)
            if err.record is not None:
                from nsinit.lifecycle.destroy import run_recorded_poststop

                run_recorded_poststop(err.record, self.warn)
            return "stale", None, str(err)
        if current is None:
            return "none", None, f"no container in {self.root}"
        if current.status == "created" and not self._exec_fifo_exists():
            return "running", current, ""  # a start released it, and died before it could record that
        return current.status, current, ""

    def _exec_fifo_exists(self) -> bool:
        return os.path.exists(os.path.join(state.private_dir(self.root), state.EXEC_FIFO))

    def recorded_config(self) -> Config:
        """The config the live container was created with (libcontainer's
        Config()), from its record: a later edit of container.json is not it."""
        from nsinit.lifecycle.join import recorded_config

        return recorded_config(self.require_state())

    def require_state(self) -> State:
        current = self.state()
        if current is None:
            raise NoContainerError("state", f"no running container in {self.root}")
        return current

    def processes(self) -> list[dict[str, object]]:
        """Every process in the container: host pid, pid inside, command line."""
        from nsinit.processes import container_pids, describe_process

        current = self.require_state()
        return [describe_process(pid) for pid in container_pids(current)]

    def signal(self, signum: int, *, all_processes: bool = False, current: State | None = None) -> None:
        """Send ``signum`` to the init (or every process).  ``current``: the
        live record the caller has just read under the root lock (nsinit-runc
        kill, which checks the status in runc's words), else it is read here."""
        if current is None:
            current = self.require_state()
        targets = [current.init_pid]
        if all_processes:
            from nsinit.processes import container_pids

            targets = container_pids(current)
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # exited since we listed it
        if signum == signal.SIGKILL and current.status == "paused":
            # Frozen tasks die only once thawed (cgroup v1's freezer): a
            # SIGKILL, to the init or to all, is for the end: let it
            # happen, as libcontainer's Signal does (podman kill of a
            # paused container waits for its exit).
            self.cgroups(current).thaw()

    # -- cgroups: pause, resume, stats, update, oom ------------------------
    # pause/resume/update rewrite state.json, so they hold the root lock
    # (a flock: callers must not hold it already).
    def cgroups(self, current: State | None = None) -> Manager:
        """The live container's cgroup manager (nsinit.cgroups.Manager)."""
        from nsinit import cgroups

        return cgroups.load_manager((current or self.require_state()).cgroup_paths)

    def pause(self) -> None:
        """Freeze every process; ``status`` becomes "paused" for every reader."""
        self._set_frozen(True)

    def resume(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        from nsinit.lifecycle.resources import set_frozen

        set_frozen(self, frozen)

    def stats(self) -> dict[str, Any]:
        """Cgroup statistics (libcontainer's shape) plus ``interfaces``: each
        network interface's counters (nsinit/lifecycle/resources.py)."""
        from nsinit.lifecycle.resources import stats

        return stats(self)

    def update(self, **resources: object) -> None:
        """Apply limits (CgroupResources field names) live, and record them
        (nsinit/lifecycle/resources.py)."""
        from nsinit.lifecycle.resources import update

        update(self, resources)

    def notify_oom(self) -> Notifier:
        """OOM events of the container's memory cgroup: a Notifier
        (nsinit/cgroups/notify.py) to select on (``fileno``), to ``read``,
        or to iterate (1, 2, ... per OOM kill, until the cgroup is
        removed); close it, or use ``with``.  Registered before it returns:
        no OOM is missed.  libcontainer's NotifyOOM."""
        return self.cgroups().notify_oom()

    oom_events = notify_oom  # the name `nsinit oom` had first

    def notify_memory_pressure(self, level: str) -> Notifier:
        """Memory pressure at ``level`` ("low", "medium", "critical") in the
        container's memory cgroup, as a Notifier (see notify_oom).
        libcontainer's NotifyMemoryPressure."""
        return self.cgroups().notify_memory_pressure(level)

    # -- running ---------------------------------------------------------
    def run(self, process: Process, *, detach: bool = False, new: bool = False,
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
        self.hooks = hooks
        if detach:
            return self._launch(process, create=True, join=not new, detach=True, start=created or _no_hook)
        return self._launch(process, create=True, join=not new)

    def create(self, process: Process, *, hooks: HookPlan | None = None) -> Process:
        """Set the container up with ``process`` as PID 1, which then waits
        for ``start`` before it execs; an error if a container runs here.

        Returns ``process`` with its ``pid``: a child of the caller, with the
        caller's fds 0-2 as its stdio, which nothing supervises (libcontainer's
        Start; nsinit/lifecycle/).  ``hooks``: its OCI hooks, run at their
        moments by create, start and delete (nsinit/lifecycle/hooks.py).
        """
        self.hooks, self.hooks_begun = hooks, False
        try:
            created = self._launch(process, create=True, join=False, detach=True)
        except NsinitError:
            # From its hooks on, a failed creation goes on at the deletion
            # (runtime.md; runc's destroy): poststop runs.
            if hooks is not None and self.hooks_begun:
                from nsinit.lifecycle.hooks import run_poststop_of

                run_poststop_of(hooks, self.warn)
            raise
        assert isinstance(created, Process)  # detach=True returns the process
        return created

    def start(self) -> None:
        """Let the created container's PID 1 exec its command (from any
        process); returns once it has."""
        from nsinit.lifecycle.start import start

        start(self)

    def exec(self) -> None:
        """libcontainer's Exec: release the created init (``start``)."""
        self.start()

    def join(self, process: Process, *, detach: bool = False) -> int | Process:
        """Run ``process`` in the live container; an error if none runs.
        Its exit status, or with ``detach`` the process, started, at once."""
        return self._launch(process, create=False, join=True, detach=detach)

    def _launch(self, process: Process, *, create: bool, join: bool, detach: bool = False,
                start: Callable[[Process], None] | None = None) -> int | Process:
        try:
            return self._launch_until_decided(process, create=create, join=join, detach=detach, start=start)
        finally:
            process.close_io_child_ends()  # initialize_io's: the process has its copies, or failed

    def _launch_until_decided(self, process: Process, *, create: bool, join: bool, detach: bool,
                              start: Callable[[Process], None] | None) -> int | Process:
        if self.config is None and not self.read_config_on_create:
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
                return self._launch_once(process, create=create, join=join, detach=detach, start=start)
            except ContainerGoneError as gone:
                if not create:
                    raise
                if gone.init_pid != last_init:
                    deadline, last_init = time.monotonic() + RELAUNCH_SECONDS, gone.init_pid
                elif time.monotonic() >= deadline:
                    raise
                # It ended between our decision and the join: decide again.

    def _launch_once(self, process: Process, *, create: bool, join: bool, detach: bool,
                     start: Callable[[Process], None] | None) -> int | Process:
        lock = self.locked().acquire()
        try:
            try:
                current = state.load_state(self.root)
            except state.ContainerStoppedError as stopped:
                if stopped.record.detached:
                    # Nobody else would remove it: its init is gone and no nsinit watches it.
                    from nsinit.lifecycle.destroy import remove_container

                    remove_container(self.root, stopped.record, self.warn)
                    current = None
                else:
                    # Its supervisor needs the lock to finish: let go, wait, retry.
                    lock.release()
                    state.wait_for_removal(self.root, stopped.record, timeout=5.0)
                    gone = ContainerGoneError("exec", str(stopped))
                    gone.init_pid = stopped.record.init_pid
                    raise gone from None
            except state.StaleStateError:
                current = self.state()  # reports and removes it
            if current is not None:
                if not join:
                    raise NsinitError("create", f"a container already runs in {self.root} (pid {current.init_pid})")
                # The pidfd taken by the join pins the init from here on.
                lock.release()
                from nsinit.lifecycle.join import _Join

                joining = _Join(self, process, current)
                joining.detached = detach
                status = joining.run()
                return process if detach else status
            if not create:
                raise NoContainerError("join", f"no running container in {self.root}")
            config = self.config if self.config is not None else self.read_config()
            from nsinit.lifecycle.create import _Creation

            # The creation releases the lock once the init has exec'd.
            creation = _Creation(self, process, config, lock)
            creation.detached = detach
            status = creation.run()
            if start is not None:  # run(detach=True)
                from nsinit.lifecycle.start import start_locked

                start(process)
                start_locked(self)  # still under the lock: nobody can start it first
            return process if detach else status
        finally:
            lock.release()

    def delete(self, *, force: bool = False) -> None:
        """Remove the container: its cgroups, host veths and record.

        A running or paused one only with ``force`` (SIGKILL first), a
        created one always (runc's delete); a stopped one is what delete is
        for.  One ``nsinit exec`` supervises is left to that nsinit to remove.
        """
        from nsinit.lifecycle.destroy import delete

        delete(self, force=force)

    def destroy(self, grace: float = 2.0) -> None:
        """Kill every process of the container and remove what it made
        (cgroups, veths, state); no container is no error.  A supervisor
        gets ``grace`` seconds to do the removal itself; if it does not (it
        was killed too), the dead container's record is cleaned up here."""
        from nsinit.lifecycle.destroy import delete

        delete(self, force=True, grace=grace)

    # -- stop: SIGTERM, a grace period, SIGKILL (nsinit/lifecycle/stop.py) --
    def stop(self, grace: float = STOP_GRACE_SECONDS) -> bool:
        """``nsinit stop``: SIGTERM, ``grace`` seconds, then SIGKILL; returns
        once the container is gone, True when it took SIGKILL."""
        from nsinit.lifecycle.stop import stop

        return stop(self, grace)

    def send_stop_signal(self) -> tuple[State, int]:
        """SIGTERM to the init, under the root lock; its state and a pidfd
        for wait_stopped, called after the lock is released."""
        from nsinit.lifecycle.stop import send_stop_signal

        return send_stop_signal(self)

    def wait_stopped(self, current: State, pidfd: int, grace: float = STOP_GRACE_SECONDS) -> bool:
        """``grace`` seconds for the init's exit, then SIGKILL to every
        process; returns once the record is gone, True when it took SIGKILL."""
        from nsinit.lifecycle.stop import wait_stopped

        return wait_stopped(self, current, pidfd, grace)

    def set(self, **resources: object) -> None:
        """libcontainer's name for update(): change cgroup limits live."""
        self.update(**resources)

    # -- checkpoint and restore: the flows live in nsinit/criu/ -------------
    def checkpoint(self, opts: CriuOptions | None = None) -> str:
        """Dump the live container with criu; returns the images directory."""
        from nsinit.criu import checkpoint
        from nsinit.criu.options import CriuOptions

        return checkpoint.checkpoint(self, opts or CriuOptions())

    def restore(self, process: Process | None = None, opts: CriuOptions | None = None, *,
                on_restored: Callable[[int], None] | None = None, detach: bool = False,
                hooks: HookPlan | None = None) -> int:
        """Restore a checkpoint into a new container here; supervises it
        and returns its init's exit status, as ``run`` does.  With
        ``detach``, returns 0 once restored: the init is the caller's child
        (``process.pid``), nothing supervises it, as after ``create``.
        ``hooks``: its OCI hooks, as runc runs them at a restore: prestart
        and createRuntime in criu's "setup-namespaces", poststop at its
        removal (nsinit/criu/restore.py)."""
        from nsinit.criu import restore
        from nsinit.criu.options import CriuOptions

        self.hooks = hooks
        return restore.restore(self, process, opts or CriuOptions(), on_restored, detach=detach)



def _no_hook(_process: Process) -> None:
    pass



def parse_signal(text: str) -> int:
    """A signal's number from its name (TERM, SIGTERM, sigterm) or number,
    for ``nsinit kill`` and ``nsinit-runc kill`` (here, not in either CLI:
    nsinit-runc kill loads no part of the 2014 one).  ``signal`` is _signal
    here, signal.py's C half: the names signal.Signals is made of."""
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        value = getattr(signal, name, None) if not name.startswith("SIG_") else None
        if isinstance(value, int):
            return value
    raise NsinitError("kill", f'unknown signal "{text}"', EXIT_COMMAND_FAILED)


def remove_leftovers(record: State) -> None:
    """What a container whose supervisor was SIGKILLed leaves (or a detached
    one whose init died): its cgroups (with any process still in them, and
    thawed if it was paused) and host veths that nothing removed."""
    from nsinit.lifecycle.destroy import remove_leftovers as remove

    remove(record)
