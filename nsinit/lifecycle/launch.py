"""What creating and joining share: the child's plan, clone, its messages, the trace.

A launch (nsinit/lifecycle/create.py's _Creation, join.py's _Join) prepares
the child's stdio and sync socket, compiles the seccomp filter before clone
(the child only loads it; a notify fd comes back and goes to its listener),
clones, reads the child's messages until it has exec'd or failed, and is
supervised until it exits (supervise.py) unless it is detached.  ``undo``
collects the reversal of every step taken: if a later step raises, leaving
the ``with`` runs them in reverse order.
"""
from __future__ import annotations

import os
import sys
import time

from nsinit import _native, child, console, messages, state
from nsinit.errors import NsinitError, describe_oserror
from nsinit.lifecycle import supervise
from nsinit.undo import Undo

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
    from typing import Any, Callable

    from nsinit.config.model import Config
    from nsinit.container import Container, Process
else:
    # The C module under signal.py, which adds enum classes (and the enum
    # module, ~2 ms of every start); its functions and constants are the same.
    import _signal as signal



def trace_line(trace: bool | str, record: dict[str, object]) -> None:
    """One step of ``--trace`` (text) or ``--trace=json`` (one JSON object a line)."""
    from nsinit import jsontext
    from nsinit.teach import calltrace

    text = jsontext.dumps(record) + "\n" if trace == "json" else calltrace.line_text(record)
    sys.stderr.write(text)



class _Launch:
    """What creating and joining share: stdio, the sync socket, supervision.

    ``undo`` collects the reversal of every step taken; if a later step
    raises, leaving the ``with`` runs them in reverse order.
    """

    warns_about_config = True  # a join's config was the creation's: warned about then

    def __init__(self, container: Container, process: Process, config: Config) -> None:
        self.container = container
        self.config = config
        self.process = process
        self.pid = 0
        self.pidfd = -1
        self.reaped = False
        self.sync_fd = -1
        self.stdio = console.Stdio()
        self.undo = Undo()
        # Detached (Container.create, run/join with detach): nobody
        # supervises; once set up, the child is handed to the caller
        # (keep_child) and undoing the launch leaves it alone.
        self.detached = False
        self.keep_child = False

    kind = ""  # "create" or "join": what a trace says it is

    def step_timer(self, name: str) -> "_Timer":
        return _Timer(name, self.container.trace, self.kind)

    def start_trace(self, what: str) -> None:
        """Say what this trace is, and wrap the calls the steps make (nsinit/teach/calltrace.py)."""
        from nsinit.teach import calltrace

        calltrace.install()
        self.undo.callback(calltrace.uninstall)
        if self.container.trace != "json":
            sys.stderr.write(f"nsinit: trace: {self.kind}: {what}\n")

    def prepare_plan(self, extra_close: list[int]) -> child.ChildPlan:
        cfg, proc = self.config, self.process
        given, extra_files = seed_process_fields(proc)
        if given is not None:
            from nsinit import process_settings

            cfg = process_settings.process_config(cfg, proc)  # the init's or joined process's own
        with self.step_timer("stdio"):
            if self.detached:
                from nsinit.lifecycle.create import detached_stdio

                self.stdio = detached_stdio(proc.tty, cfg.tty, self.container.warn, given=given,
                                            console_socket=proc.console_socket or "", window_size=proc.console_size,
                                            container_devpts=cfg.has_namespace("NEWNS"))
                self.undo.callback(self.close_child_stdio_unless_cloned)
            else:
                use_tty = choose_tty(proc.tty, cfg.tty if given is None or given[0] is None else bool(cfg.tty))
                self.stdio = console.prepare_stdio(use_tty, cfg.has_namespace("NEWNS"), given=given)
            self.undo.callback(console.close_fds, self.stdio.parent_only)
            self.undo.callback(console.restore_terminal, self.stdio)
        parent_fd, child_fd = messages.socket_pair()
        self.sync_fd = parent_fd
        self.undo.callback(os.close, parent_fd)
        seccomp_program, seccomp_flags = self.seccomp_filter()
        return child.ChildPlan(
            config=cfg, args=list(proc.args), env=list(proc.env),
            user=proc.user if proc.user is not None else cfg.user,
            cwd=proc.cwd if proc.cwd is not None else cfg.working_dir,
            stdio=self.stdio, sync_fd=child_fd,
            close_after_clone=[parent_fd] + extra_close + self.stdio.parent_only,
            trace=self.container.trace, detached=self.detached,
            seccomp_program=seccomp_program, seccomp_flags=seccomp_flags, extra_files=extra_files,
            new_session_keyring=not cfg.no_new_keyring,
        )

    def seccomp_filter(self) -> tuple[bytes, int]:
        """The container's filter and its seccomp(2) flags, compiled here
        before clone: the child only loads it (see nsinit/seccomp)."""
        seccomp = self.config.seccomp
        if seccomp is None:
            return b"", 0
        from nsinit.seccomp import filter_flags, program_for, unknown_syscalls_warning

        with self.step_timer("seccomp compile"):
            program, unknown = program_for(seccomp, os.path.join(state.RUN_DIR, "seccomp-cache"))
        if unknown and self.warns_about_config:
            self.container.warn(unknown_syscalls_warning(self.config.source, unknown))
        return program, filter_flags(seccomp)

    def send_seccomp_listener(self, fd: int) -> None:
        """The notify action's fd, to the configured listener; then the child may exec."""
        from nsinit.seccomp.listener import send_to_listener

        try:
            send_to_listener(self.config.seccomp.listener_path, fd, self.pid, self.container.root,  # type: ignore[union-attr]
                             self.config.rootfs)
        finally:
            os.close(fd)
        messages.send(self.sync_fd, messages.seccomp_listener_sent())

    def close_child_stdio_unless_cloned(self) -> None:
        """Undo of a detached stdio: its /dev/null, if clone never came
        (after clone, adopt_child closes it)."""
        if not self.pid:
            console.close_fds(self.stdio.child_only)

    def clone(self, flags: int) -> int:
        """clone() for the flows; refuses a multi-threaded caller.

        Only the calling thread exists in the child: a lock another thread
        held (malloc's, the import lock) would stay locked there for ever,
        and setns into a mount or user namespace fails outright.
        """
        threads = len(os.listdir("/proc/self/task"))
        if threads > 1:
            raise NsinitError("clone", f"the calling process has {threads} threads; "
                                       "creating or joining a container needs a single-threaded caller")
        return _native.clone(flags)

    def adopt_child(self, pid: int, plan: child.ChildPlan) -> None:
        """Parent side right after clone: remember the child, drop its fds."""
        self.pid = pid
        self.undo.callback(self.kill_child)
        os.close(plan.sync_fd)
        console.close_fds(self.stdio.child_only)
        self.pidfd = os.pidfd_open(pid)
        supervise.forward_signals(self)

    def release_child(self) -> None:
        """Send ``go``; wait until the child has exec'd (EOF) or failed.

        A join that finds the socket closed here (EPIPE, ECONNRESET) learns
        from that OSError that its container is ending (see _Join.run)."""
        messages.send(self.sync_fd, messages.go())
        self.read_child_messages(until=None)

    child_step_end = 0.0

    def trace_exec(self) -> None:
        """The child's last step, exec, ends with the exec itself: only the
        EOF it causes on the sync socket says it worked, so it is traced here."""
        from nsinit.teach import calltrace

        start = self.child_step_end or time.monotonic()
        args = ", ".join(f'"{arg}"' for arg in self.process.args)
        trace_line(self.container.trace, calltrace.step_record(
            self.kind, "child", "exec", start, (time.monotonic() - start) * 1000, [f"execve([{args}], …)"]))

    def read_child_messages(self, until: str | None) -> None:
        """Handle the child's messages until one of kind ``until`` (or, for
        None, until EOF: the exec closed the child's end)."""
        handlers = self.child_message_handlers()
        while True:
            message = messages.receive(self.sync_fd)
            if message is None:
                if until is None:
                    if self.container.trace:
                        self.trace_exec()
                    return
                raise NsinitError("init", "the container's init exited during setup")
            kind = message["kind"]
            if kind == until:
                return
            handler = handlers.get(kind)
            if handler is not None:
                handler(message)

    def child_message_handlers(self) -> dict[str, Callable[[Any], None]]:
        """What each kind of the child's messages does here (the kinds: nsinit/messages.py)."""
        return {
            "trace": self.show_child_trace,
            "console": self.adopt_console,
            "hooks": self.run_runtime_hooks,
            "seccomp_listener": self.hand_over_seccomp_listener,
            "failed": self.raise_child_failure,
            "exec_failed": self.raise_exec_failure,
        }

    def show_child_trace(self, message: messages.Trace) -> None:
        from nsinit.teach import calltrace

        start, ms = message["start"], message["ms"]
        self.child_step_end = start + ms / 1000
        trace_line(self.container.trace, calltrace.step_record(
            self.kind, "child", message["step"], start, ms, message["calls"],
            message=message["error"] if message["failed"] else "", errno=message["errno"]))

    def adopt_console(self, message: messages.Console) -> None:
        console.adopt_master(self.stdio, message["fd"])

    def run_runtime_hooks(self, message: messages.HooksDue) -> None:
        """The init stands before pivot_root: the OCI hooks of the runtime's namespaces."""
        from nsinit.lifecycle.hooks import run_runtime_hooks

        run_runtime_hooks(self)

    def hand_over_seccomp_listener(self, message: messages.SeccompListener) -> None:
        self.send_seccomp_listener(message["fd"])

    def raise_child_failure(self, message: messages.Failed) -> None:
        raise child.reported_failure(message)

    def raise_exec_failure(self, message: messages.ExecFailed) -> None:
        """From the exec trampoline (nsinit/trampoline.py)."""
        raise child.exec_failure(self.process.args[0], int(message["errno"]), self.config.rootfs)

    def supervise(self) -> int:
        """Until the child exits: its exit status (nsinit/lifecycle/supervise.py)."""
        return supervise.supervise(self)

    def kill_child(self) -> None:
        """Undo of the clone: the child must not outlive a failed launch.

        After a normal exit, or once handed to the caller, it only closes the pidfd."""
        if self.pid > 0 and not self.reaped and not self.keep_child:
            # An unreaped child keeps its pid, so os.kill cannot hit a stranger.
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.reaped = True
        self.close_own_fds()

    def close_own_fds(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def seed_process_fields(process: Process) -> tuple[tuple[int | None, int | None, int | None] | None, list[int]]:
    """The fds ``process`` names for its stdio (None: it sets none of the
    seed's fields) and its extra files; checked (nsinit/process_settings.py)."""
    if (process.stdin is None and process.stdout is None and process.stderr is None
            and not process.extra_files and process.additional_groups is None and process.capabilities is None
            and process.apparmor_profile is None and process.label is None
            and process.no_new_privileges is None and process.rlimits is None
            and process.umask is None and process.oom_score_adj is None):
        return None, []
    from nsinit import process_settings

    return process_settings.std_fds(process), process_settings.extra_fds(process)


def choose_tty(asked: bool | None, configured: bool | None) -> bool:
    """-t/-T first, then container.json's "tty"; when neither says, a pty
    exactly when nsinit's stdin is a terminal (someone is typing: a shell
    without one has no prompt and no job control), and none in pipelines
    and CI, where the output must stay byte for byte."""
    if asked is not None:
        return asked
    if configured is not None:
        return configured
    return console.stdin_is_terminal()



class _Timer:
    """A supervisor step: with --trace, its time, its calls, and whether it failed."""

    def __init__(self, name: str, enabled: bool | str, kind: str = "") -> None:
        self.name, self.enabled, self.kind = name, enabled, kind

    def __enter__(self) -> None:
        if self.enabled:
            from nsinit.teach import calltrace

            calltrace.take()
        self.start = time.monotonic()

    def __exit__(self, exc_type: object, err: BaseException | None, _tb: object) -> None:
        if not self.enabled:
            return
        from nsinit.teach import calltrace

        ms = (time.monotonic() - self.start) * 1000
        own_failure = err if err is not None and not getattr(err, "from_child", False) else None
        message = str(own_failure) if isinstance(own_failure, NsinitError) else (
            describe_oserror(own_failure, self.name) if isinstance(own_failure, OSError) else "")
        trace_line(self.enabled, calltrace.step_record(self.kind, "parent", self.name, self.start, ms,
                                                       calltrace.take(), own_failure, message))
