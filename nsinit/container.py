"""Containers and processes: the library API, and the create flow.

``Container(root).run(Process(args))`` is what ``nsinit exec`` does: under
the root directory's lock, join the container that runs there, or create
one.  Creation is a readable sequence of named steps; if any fails, every
earlier one is undone in reverse order before the error is raised.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from nsinit import _native, child, console, namespaces, state, sync
from nsinit.config import Config, config_to_dict, load_config
from nsinit.errors import NoContainerError, NsinitError

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


@dataclass
class Process:
    """A command to run in the container, with per-process overrides."""

    args: list[str]
    env: list[str] = field(default_factory=list)   # "K=V", added to the config's
    user: str | None = None                         # default: config.user
    cwd: str | None = None                          # default: config.working_dir
    tty: bool | None = None                         # default: config.tty


def trace_line(step: str, ms: float) -> None:
    sys.stderr.write(f"nsinit: trace: {step}: {ms:.2f} ms\n")


class Container:
    """The container whose files live in ``root`` (container.json, pid, state.json)."""

    def __init__(self, root: str, config: Config, *, trace: bool = False,
                 warn: Callable[[str], None] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.config = config
        self.trace = trace
        self.warn = warn or (lambda text: sys.stderr.write(f"nsinit: warning: {text}\n"))

    @classmethod
    def load(cls, root: str = ".", config_path: str | None = None, *, trace: bool = False,
             warn: Callable[[str], None] | None = None) -> "Container":
        config, warnings = load_config(root, config_path)
        container = cls(root, config, trace=trace, warn=warn)
        for text in warnings:
            container.warn(text)
        return container

    # -- queries ---------------------------------------------------------
    def state(self) -> state.State | None:
        """The live container's state, or None (stale files are reported and removed)."""
        try:
            return state.load_state(self.root)
        except state.StaleStateError as err:
            self.warn(f"removing stale container files in {self.root}: {err}")
            state.remove_state(self.root)
            return None

    def require_state(self) -> state.State:
        current = self.state()
        if current is None:
            raise NoContainerError("state", f"no running container in {self.root}")
        return current

    def processes(self) -> list[dict[str, object]]:
        """Every process in the container: host pid, pid inside, command line."""
        current = self.require_state()
        return [describe_process(pid) for pid in container_pids(current)]

    def signal(self, signum: int, *, all_processes: bool = False) -> None:
        current = self.require_state()
        targets = container_pids(current) if all_processes else [current.init_pid]
        for pid in targets:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # exited since we listed it

    # -- running ---------------------------------------------------------
    def run(self, process: Process) -> int:
        """Create the container with ``process`` as PID 1, or join the live one.

        Returns the process's exit status (128+N when killed by signal N).
        """
        lock = state.RootLock(self.root).acquire()
        try:
            current = self.state()
            if current is not None:
                lock.release()
                return self.join(process, current)
            return self.create(process, lock)
        finally:
            lock.release()

    def join(self, process: Process, current: state.State) -> int:
        """Run ``process`` inside the live container described by ``current``."""
        return _Join(self, process, current).run()

    def create(self, process: Process, lock: state.RootLock) -> int:
        """Create the container; ``lock`` is released once the init has exec'd."""
        return _Creation(self, process, lock).run()


class _Launch:
    """What creating and joining share: stdio, the sync socket, supervision.

    ``undo`` collects the reversal of every step taken; if a later step
    raises, leaving the ``with`` runs them in reverse order.
    """

    def __init__(self, container: Container, process: Process) -> None:
        self.container = container
        self.config = container.config
        self.process = process
        self.pid = 0
        self.pidfd = -1
        self.reaped = False
        self.sync_fd = -1
        self.stdio = console.Stdio()
        self.undo = ExitStack()

    def step_timer(self, name: str) -> "_Timer":
        return _Timer(name, self.container.trace)

    def prepare_plan(self, extra_close: list[int]) -> child.ChildPlan:
        cfg, proc = self.config, self.process
        use_tty = cfg.tty if proc.tty is None else proc.tty
        with self.step_timer("stdio"):
            self.stdio = console.prepare_stdio(use_tty)
            self.undo.callback(console.close_fds, self.stdio.parent_only)
            self.undo.callback(console.restore_terminal, self.stdio)
        parent_fd, child_fd = sync.socket_pair()
        self.sync_fd = parent_fd
        self.undo.callback(os.close, parent_fd)
        return child.ChildPlan(
            config=cfg, args=list(proc.args), env=list(proc.env),
            user=proc.user if proc.user is not None else cfg.user,
            cwd=proc.cwd if proc.cwd is not None else cfg.working_dir,
            stdio=self.stdio, sync_fd=child_fd,
            close_after_clone=[parent_fd] + extra_close + self.stdio.parent_only,
            trace=self.container.trace,
        )

    def adopt_child(self, pid: int, plan: child.ChildPlan) -> None:
        """Parent side right after clone: remember the child, drop its fds."""
        self.pid = pid
        self.undo.callback(self.kill_child)
        os.close(plan.sync_fd)
        console.close_fds(self.stdio.child_only)
        self.pidfd = os.pidfd_open(pid)

    def release_child(self) -> None:
        """Send ``go``; wait until the child has exec'd (EOF) or failed."""
        sync.send(self.sync_fd, go=True)
        while True:
            message = sync.receive(self.sync_fd)
            if message is None:
                return
            if "trace" in message:
                trace_line(message["trace"], message["ms"])
                continue
            if "error" in message:
                raise NsinitError(message["step"], message["error"], message["exit"])

    def supervise(self) -> int:
        stdio = self.stdio
        exited: list[int] = []

        def forward(signum: int, _frame: object) -> None:
            if not exited:
                signal.pidfd_send_signal(self.pidfd, signum)

        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
        try:
            if stdio.needs_relay:
                return self._wait_with_relay(stdio, exited)
            return self._wait(exited)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            console.restore_terminal(stdio)

    def _wait(self, exited: list[int]) -> int:
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        exited.append(status)
        return exit_status(status)

    def _wait_with_relay(self, stdio: console.Stdio, exited: list[int]) -> int:
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(write_fd)
        old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: console.on_window_change(stdio))
        console.enter_raw_mode(stdio)

        def child_exited() -> bool:
            if not exited:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.reaped = True
                    exited.append(status)
            return bool(exited)

        try:
            console.relay(stdio, read_fd, child_exited)
            while not child_exited():
                time.sleep(0.01)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            signal.signal(signal.SIGCHLD, old_chld)
            signal.signal(signal.SIGWINCH, old_winch)
            os.close(read_fd)
            os.close(write_fd)
        return exit_status(exited[0])

    def kill_child(self) -> None:
        """Undo of the clone: the child must not outlive a failed launch.

        After a normal exit it only closes the pidfd."""
        if self.pid > 0 and not self.reaped:
            # Through the pidfd: the pid itself is only ours until reaped.
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.reaped = True
        self.close_own_fds()

    def close_own_fds(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class _Creation(_Launch):
    """One create flow.  Parent side of the steps in nsinit/child.py."""

    def __init__(self, container: Container, process: Process, lock: state.RootLock) -> None:
        super().__init__(container, process)
        self.lock = lock

    def run(self) -> int:
        with self.undo:
            self.start_child()
            self.record_child()
            self.release_child()
            # Joiners may come in only now that the init has exec'd: before,
            # its mounts and credentials were still being set up.
            self.lock.release()
            status = self.supervise()
            self.undo.close()
            return status
        raise AssertionError("unreachable")

    def start_child(self) -> None:
        cfg = self.config
        plan = self.prepare_plan([self.lock.fd])
        path_namespaces = {ns.type: ns.path for ns in cfg.namespaces if ns.path}
        with self.step_timer("clone"):
            with namespaces.ParentNamespaces(path_namespaces):
                pid = _native.clone(cfg.clone_flags())
                if pid == 0:
                    child.run(plan)  # never returns
        self.adopt_child(pid, plan)

    def record_child(self) -> None:
        cfg = self.config
        if cfg.has_namespace("NEWUSER") and not cfg.namespace("NEWUSER").path:
            with self.step_timer("id maps"):
                namespaces.write_id_maps(self.pid, cfg.uid_mappings, cfg.gid_mappings)
        with self.step_timer("state"):
            start_time = state.read_start_time(self.pid)
            if start_time is None:
                raise NsinitError("state", "container init exited before it was recorded")
            names = [ns.type for ns in cfg.namespaces]
            record = state.State(
                init_pid=self.pid, init_start_time=start_time, created=state.now_iso(),
                root=self.container.root, rootfs=cfg.rootfs,
                namespace_paths=namespaces.namespace_paths(self.pid, names),
                namespace_inodes=namespaces.namespace_inodes(self.pid, names),
                config=config_to_dict(cfg),
            )
            state.write_state(self.container.root, record)
            self.undo.callback(state.remove_state, self.container.root, self.pid)


class _Join(_Launch):
    """Run a process beside the init of a live container.

    The init is pinned by a pidfd opened *before* its start time is checked
    again, so pid reuse cannot send us into a stranger's namespaces; setns
    with that pidfd then enters all of them atomically.
    """

    def __init__(self, container: Container, process: Process, current: state.State) -> None:
        super().__init__(container, process)
        self.current = current
        self.init_pidfd = -1

    def run(self) -> int:
        with self.undo:
            self.pin_init()
            self.start_child()
            self.release_child()
            status = self.supervise()
            self.undo.close()
            return status
        raise AssertionError("unreachable")

    def pin_init(self) -> None:
        current = self.current
        try:
            self.init_pidfd = os.pidfd_open(current.init_pid)
        except ProcessLookupError:
            raise NoContainerError("join", f"container init {current.init_pid} exited") from None
        self.undo.callback(os.close, self.init_pidfd)
        if not state.is_alive(current.init_pid, current.init_start_time):
            raise NoContainerError("join", f"container init {current.init_pid} exited")

    def start_child(self) -> None:
        kinds = [name for name in self.current.namespace_inodes]
        for_children = [k for k in kinds if k in namespaces.FOR_CHILDREN_ONLY]
        plan = self.prepare_plan([])
        plan.join_pidfd = self.init_pidfd
        plan.join_flags = namespaces.flags_for(k for k in kinds if k not in namespaces.FOR_CHILDREN_ONLY)
        with self.step_timer("clone"):
            with namespaces.PidfdNamespaces(self.init_pidfd, for_children):
                pid = _native.clone(0)
                if pid == 0:
                    child.run_joined(plan)  # never returns
        self.adopt_child(pid, plan)


def exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _Timer:
    def __init__(self, name: str, enabled: bool) -> None:
        self.name, self.enabled = name, enabled

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self.enabled and exc_type is None:
            trace_line(self.name, (time.monotonic() - self.start) * 1000)


def container_pids(current: state.State) -> list[int]:
    """Host pids sharing the init's namespace (pid ns, else mount ns).

    The namespace inode, not the process tree, decides membership: a joined
    process is not a descendant of the init.
    """
    kind = "NEWPID" if "NEWPID" in current.namespace_inodes else "NEWNS"
    inode = current.namespace_inodes.get(kind)
    if inode is None:
        return [current.init_pid]
    proc_name = namespaces.PROC_NAMES[kind]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/{proc_name}").st_ino == inode:
                pids.append(int(entry))
        except OSError:
            continue  # exited while we looked, or a kernel thread
    return sorted(pids)


def describe_process(pid: int) -> dict[str, object]:
    container_pid = pid
    command = ""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    container_pid = int(line.split()[-1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = " ".join(part.decode(errors="replace") for part in f.read().split(b"\0") if part)
    except OSError:
        pass  # exited while we looked
    return {"pid": pid, "container_pid": container_pid, "command": command}
