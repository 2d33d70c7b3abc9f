"""Containers and processes: the library API (the facade over nsinit/lifecycle/).

``Container(root).run(Process(args))`` is what ``nsinit exec`` does: under
the root directory's lock, join the container that runs there, or create
one.  Creation is a readable sequence of named steps; if any fails, every
earlier one is undone in reverse order before the error is raised.
``create`` and ``start`` split it in two, with nobody supervising the
container in between or after.

Here: Container and its queries over a live container (its status, its
signals).  Its methods import what only some commands run when they are
called, so that an engine's nsinit-runc state, start, kill and delete load
none of it (docs/DEVELOPING.md, "nsinit-runc's hot commands"):
nsinit/running.py has Process and the decision of run, create and join
(create, join, or decide again when the container met is ending; Process
and IO are re-exported here), nsinit/processes.py the every-process
queries, nsinit/lifecycle/stop.py the stop and lifecycle/resources.py the
cgroup operations (pause, resume, stats, update).  Each flow lives in its module of
nsinit/lifecycle/: create.py (cgroups → clone → maps, veths, record),
join.py (pin by pidfd, setns, exec beside PID 1), both on launch.py's
shared steps; supervise.py (the 2014 ``exec``'s wait: signals, pty relay,
exit status, OOM told), start.py, destroy.py (the one teardown path) and
gc.py (``nsinit gc``).
"""
from __future__ import annotations

import os
import sys

from nsinit import state
from nsinit.state import State
from nsinit.errors import EXIT_COMMAND_FAILED, NoContainerError, NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
    from typing import Any, Callable

    from nsinit.cgroups.manager import Manager
    from nsinit.cgroups.notify import Notifier
    from nsinit.config.model import Config
    from nsinit.criu.options import CriuOptions
    from nsinit.lifecycle.hooks import HookPlan
    from nsinit.processes import container_pids as container_pids
    from nsinit.processes import describe_process as describe_process
    from nsinit.processes import kill_every_process as kill_every_process
    from nsinit.running import IO as IO
    from nsinit.running import Process as Process
else:
    # The C module under signal.py, which adds enum classes (and the enum
    # module, ~2 ms of every start); its functions and constants are the same.
    import _signal as signal

# The library's names that only some commands use, and their modules
# (PEP 562: imported on first use; an engine's state, start, kill and
# delete never load them).
_HOMES = {"container_pids": "nsinit.processes", "describe_process": "nsinit.processes",
          "kill_every_process": "nsinit.processes", "Process": "nsinit.running", "IO": "nsinit.running"}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nsinit.container' has no attribute {name!r}")
    value = getattr(__import__(home, fromlist=[name]), name)
    globals()[name] = value
    return value


STOP_GRACE_SECONDS = 10.0  # `nsinit stop`: SIGTERM, then this long before SIGKILL (docker's default)
STOP_CLEANUP_SECONDS = 10.0  # then how long its supervisor may take to remove what it made


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

    # -- running: nsinit/running.py ---------------------------------------------
    def run(self, process: Process, *, detach: bool = False, new: bool = False,
            created: Callable[[Process], None] | None = None, hooks: HookPlan | None = None) -> int | Process:
        """``nsinit exec``: create the container with ``process`` as PID 1, or
        join the live one; its exit status, or with ``detach`` the process
        (nsinit.running.run says all)."""
        from nsinit.running import run

        return run(self, process, detach=detach, new=new, created=created, hooks=hooks)

    def create(self, process: Process, *, hooks: HookPlan | None = None) -> Process:
        """Set the container up with ``process`` as PID 1, which then waits
        for ``start`` before it execs (nsinit.running.create says all)."""
        from nsinit.running import create

        return create(self, process, hooks=hooks)

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
        from nsinit.running import launch

        return launch(self, process, create=False, join=True, detach=detach)

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
