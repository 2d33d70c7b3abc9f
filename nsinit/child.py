"""The container's init, from clone() to execve().

This runs in the cloned child, inside the new namespaces, still in Python.
Each step is named: its name is what the user reads when it fails
(``nsinit: pivot_root: Invalid argument``) and what ``--trace`` times.
After pivot_root the host's Python files are out of reach, so every module
used here is imported at the top of this file, before the clone.
"""
from __future__ import annotations

import errno
import fcntl
import gc
import os
import stat
import sys
import time

from nsinit import _native, console, messages, namespaces, trampoline
# One write(2), no O_CREAT (already loaded by the supervisor's cgroup managers).
from nsinit.kernelfs import write_file
from nsinit.errors import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, NsinitError, SyscallError, describe_oserror
from nsinit.record import field, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
    from types import ModuleType
    from typing import Any, Callable, NoReturn

    from nsinit import identity
    from nsinit.config.model import Config, Rlimit
    from nsinit.oci.hooks import Hooks
else:
    import _signal as signal  # see nsinit/container.py

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


@record
class ChildPlan:
    """Everything the child needs, prepared by the parent before clone."""

    config: Config
    args: list[str]
    env: list[str]          # extra "K=V" from the command line
    user: str
    cwd: str
    stdio: console.Stdio
    sync_fd: int
    close_after_clone: list[int]
    trace: bool | str = False
    join_pidfd: int = -1     # joining: the live init, pinned by a pidfd
    join_flags: int = 0      # joining: namespaces to enter through it
    cgroup_files: list[str] = field(default_factory=list)  # write "0" to move in
    unshare_cgroupns: bool = False
    # Created: the rootfs (mounts, devices, pivot_root, restricted paths) is
    # set up while the parent records the container, and "go" is awaited
    # only before the process's own steps (nsinit.lifecycle.rootfs_can_precede_go).
    rootfs_before_go: bool = False
    # Created: the trampoline's sealed memfd, made by the parent before clone
    # (its copy closed after).  A join's child makes its own.
    trampoline_fd: int = -1
    init_binary: str = ""    # exec --init: the host's static tini, bound at /dev/init
    init_prefix: list[str] = field(default_factory=list)  # exec --init: tini's argv before the command
    seccomp_program: bytes = b""  # compiled by the parent (nsinit/seccomp); empty: no filter
    seccomp_flags: int = 0
    dumpable_until_go: bool = False  # rootless: the parent (or newuidmap) must open our /proc files
    detached: bool = False   # nobody supervises: do not die with the creator (nsinit/lifecycle/)
    exec_fifo_fd: int = -1   # created detached: O_PATH fd on the exec fifo to wait on before exec
    extra_files: list[int] = field(default_factory=list)  # the caller's fds, for the command's 3, 4, ...
    # Created detached without a mount namespace: an O_PATH fd on the host's
    # /proc, opened before the chroot, to reopen the fifo through (see
    # nsinit/lifecycle/start.py wait_for_start); -1: the container's /proc.
    exec_fifo_proc_fd: int = -1
    # A new session keyring for the process (runc's default); False: keep
    # the caller's (--no-new-keyring).
    new_session_keyring: bool = False
    hooks: Hooks | None = None  # OCI hooks: stop for them before pivot_root (nsinit/lifecycle/hooks.py)


class StepFailed(Exception):
    """A step's failure on its way to the parent: the step, the line, the
    exit status, the errno, and for a failed system call the SyscallError
    (sent as its call, path and errno: see report)."""

    def __init__(self, step: str, message: str, exit_code: int, errno: int | None = None,
                 call: SyscallError | None = None) -> None:
        super().__init__(message)
        self.step, self.message, self.exit_code, self.errno = step, message, exit_code, errno
        self.call = call

    def report(self) -> messages.Failed:
        """The failure as the sync socket carries it (see messages.failed)."""
        call = self.call
        if call is None:
            return messages.failed(self.step, self.message, self.exit_code, self.errno)
        return messages.failed(self.step, self.message, self.exit_code, self.errno,
                               call.syscall, call.target, call.strerror)


def reported_failure(message: messages.Failed) -> NsinitError:
    """The parent's copy of a failure the child reported (see messages.failure_error)."""
    failure = messages.failure_error(message)
    failure.from_child = True  # not the failure of the parent's step that was waiting
    return failure


class Steps:
    """Runs named steps; reports their timing when tracing."""

    def __init__(self, sync_fd: int, trace: bool | str) -> None:
        self.sync_fd, self.trace = sync_fd, trace

    def step(self, name: str) -> _Step:
        return _Step(self, name)


class _Step:
    """One named step: its failure becomes StepFailed(name, ...), its time a trace record."""

    def __init__(self, steps: Steps, name: str) -> None:
        self.steps, self.name = steps, name
        self.start = 0.0

    def __enter__(self) -> None:
        if self.steps.trace:
            from nsinit.teach import calltrace  # loaded by the supervisor before clone

            calltrace.take()  # what ran between steps is no step's
        self.start = time.monotonic()

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, _tb: object) -> None:
        name = self.name
        if self.steps.trace and not isinstance(err, StepFailed):
            self.send_trace(err)
        if err is None:
            return
        if isinstance(err, StepFailed) or not isinstance(err, Exception):
            return  # already named, or KeyboardInterrupt/SystemExit: let it through
        if isinstance(err, NsinitError):
            raise StepFailed(err.step or name, err.message, err.exit_code, errno_of(err)) from None
        if isinstance(err, OSError):
            call = err if isinstance(err, SyscallError) else None
            raise StepFailed(name, describe_oserror(err, name), 125, err.errno, call) from None
        # A bug must still reach the user as one line.
        raise StepFailed(name, f"{err.__class__.__name__}: {err}", 125) from None

    def send_trace(self, err: BaseException | None) -> None:
        """The step's trace record: when it started, how long, the calls it made."""
        from nsinit.teach import calltrace

        ms = (time.monotonic() - self.start) * 1000
        calls = calltrace.take()
        if err is None:
            messages.send(self.steps.sync_fd, messages.trace(self.name, self.start, ms, calls))
            return
        text = (err.message if isinstance(err, NsinitError) else
                describe_oserror(err, self.name) if isinstance(err, OSError) else str(err))
        messages.send(self.steps.sync_fd, messages.trace(self.name, self.start, ms, calls,
                                                         failed=True, errno=errno_of(err), error=text))


def errno_of(err: BaseException) -> int | None:
    """The errno behind a failure: its own, or that of the OSError it was
    raised from (``raise NsinitError(...) from None`` keeps it as context)."""
    return getattr(err, "errno", None) or getattr(err.__context__, "errno", None)


def run(plan: ChildPlan) -> NoReturn:
    """The new container's init.  Never returns: execs or exits after
    reporting the failure."""
    _guarded(plan, _setup_and_exec, "init")


def _guarded(plan: ChildPlan, body: "Callable[[ChildPlan], None]", what: str) -> NoReturn:
    try:
        body(plan)
    except StepFailed as err:
        _report(plan.sync_fd, err)
    except BaseException as err:  # noqa: BLE001 - e.g. KeyboardInterrupt forwarded too early
        _report(plan.sync_fd, StepFailed(what, f"{err.__class__.__name__}: {err}", 125))
    os._exit(125)


def run_joined(plan: ChildPlan) -> NoReturn:
    """A process joining a live container: enter, restrict, exec."""
    _guarded(plan, _join_and_exec, "join")


def _join_and_exec(plan: ChildPlan) -> None:
    cfg = plan.config
    steps = Steps(plan.sync_fd, plan.trace)
    with steps.step("load steps"):
        # Before setns leaves the host's files.
        import_step_modules("nsinit.identity", "nsinit.capabilities", *optional_step_modules(plan, mounts=False))
    with steps.step("init"):
        _become_init(plan)
    with steps.step("cgroups"):
        attach_to_cgroups(plan.cgroup_files)  # host paths: before setns
    with steps.step("trampoline"):
        trampoline_fd = trampoline.sealed_copy()  # nsinit's files: before setns too
    with steps.step("wait for parent"):
        _wait_for_go(plan.sync_fd)
    if not cfg.has_own_procfs():
        write_kernel_settings_from_the_host(steps, cfg, sysctl=False)  # sysctls: the init's
    with steps.step("setns"):
        namespaces.enter_with_pidfd(plan.join_pidfd, plan.join_flags)
        os.close(plan.join_pidfd)
        if not cfg.has_namespace("NEWNS"):
            os.chroot(cfg.rootfs)
            os.chdir("/")  # a cwd left outside a chroot is a way out of it
    with steps.step("console"):
        if plan.stdio.pty_in_container:
            # setns put us in the container's mounts, and made "/" its root.
            _open_console(plan, "/")
        console.attach_child_stdio(plan.stdio)
    own_keyring_and_stdio(steps, plan)
    trampoline_fd = place_extra_files(steps, plan, trampoline_fd)
    finalize_process(steps, cfg, plan.args, plan.env, plan.user, plan.cwd, trampoline_fd,
                     seccomp=(plan.seccomp_program, plan.seccomp_flags), detached=plan.detached,
                     extra_files=len(plan.extra_files))


def import_step_modules(*names: str) -> None:
    """Load modules only the child runs, while nsinit's files are reachable.

    After pivot_root, or a setns into the container's mount namespace, an
    ``import`` would search the container's filesystem (and find nothing,
    or the container's own nsinit).  A creation loads them in the parent,
    before clone (create_step_modules); a join's child loads its own.
    """
    for name in names:
        __import__(name)


def create_step_modules(plan: ChildPlan) -> list[str]:
    """What a created init's steps use, loaded by the parent before clone.

    Loaded in the child, after clone, every page the import writes is a
    copy-on-write fault of a page the clone shares (about 470 faults): 1.9
    ms of the child's, on the way to the exec, against ~1 ms before clone,
    and 0.3 ms less CPU in all (the supervisor keeps ~150 KB more of them).
    """
    return ["nsinit.mount", "nsinit.network", "nsinit.identity", "nsinit.capabilities",
            *optional_step_modules(plan)]


def optional_step_modules(plan: ChildPlan, *, mounts: bool = True) -> list[str]:
    """What only some containers' steps use (each costs every other start
    its import, 0.1-0.2 ms): fetched later with ``preloaded``.  A join
    (``mounts`` False) makes no mounts."""
    names = ["resource"] if plan.config.rlimits else []
    if not mounts:
        return names
    if plan.init_binary:
        names.append("nsinit.mount.init_binary")  # exec --init's (the supervisor has it already)
    if any(m.copy_up for m in plan.config.mounts):
        names.append("nsinit.mount.copyup")  # runc's tmpcopyup (nsinit.mount.rootfs._copyup)
    return names


def preloaded(name: str) -> ModuleType:
    """A module import_step_modules loaded.  Never an ``import`` here: past
    pivot_root or setns it would search the container's files for it."""
    try:
        return sys.modules[name]
    except KeyError:
        raise NsinitError("load steps", f"{name} was not loaded while nsinit's files were reachable") from None


def _report(fd: int, failure: StepFailed) -> NoReturn:
    try:
        messages.send(fd, failure.report())
    finally:
        os._exit(failure.exit_code)


def _setup_and_exec(plan: ChildPlan) -> None:
    cfg = plan.config
    steps = Steps(plan.sync_fd, plan.trace)
    with steps.step("init"):
        _become_init(plan)
    with steps.step("cgroups"):
        attach_to_cgroups(plan.cgroup_files)
        if plan.unshare_cgroupns:
            _native.unshare(namespaces.CLONE_FLAGS["NEWCGROUP"])
        messages.send(plan.sync_fd, messages.attached())
    # Both made by the parent before clone: the trampoline's memfd
    # (lifecycle/create.py start_child) and the step modules (create_step_modules).
    trampoline_fd = plan.trampoline_fd
    from nsinit import mount, network

    if not plan.rootfs_before_go:
        wait_for_parent(steps, plan)
    if (userns := cfg.namespace("NEWUSER")) is not None and not userns.path:
        with steps.step("user namespace"):
            # Until now we ran as the host's uid 0, which the maps need not
            # cover; files we create would get unmappable owners (EOVERFLOW).
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    if any(ns.path and ns.type not in namespaces.FOR_CHILDREN_ONLY for ns in cfg.namespaces):
        with steps.step("join namespaces"):
            _join_path_namespaces(cfg)
    if not plan.stdio.pty_in_container:
        with steps.step("console"):
            console.attach_child_stdio(plan.stdio)
    if cfg.has_namespace("NEWNS"):
        with steps.step("prepare rootfs"):
            mount.prepare_root(cfg)
        with steps.step("mounts"):
            mount.mount_all(cfg)
        if plan.stdio.pty_in_container:
            with steps.step("console"):
                _open_console(plan, os.path.realpath(cfg.rootfs))
        with steps.step("devices"):
            mount.create_devices(cfg, plan.stdio.console_fd)
        if plan.init_binary:
            with steps.step("--init"):
                preloaded("nsinit.mount.init_binary").bind_init(cfg, plan.init_binary)
        if plan.stdio.pty_in_container:
            with steps.step("console"):
                console.attach_child_stdio(plan.stdio)
        if not cfg.has_own_procfs():
            write_kernel_settings_from_the_host(steps, cfg)
        hook_state = _hook_point(steps, plan)
        with steps.step("pivot_root"):
            mount.pivot_to_rootfs(cfg)
    else:
        write_kernel_settings_from_the_host(steps, cfg)
        hook_state = _hook_point(steps, plan)
        with steps.step("chroot"):
            if plan.exec_fifo_fd >= 0:
                # The image's /proc is a directory, not procfs: the wait for
                # start reopens its fifo through the host's, which this fd
                # keeps within reach until then (closed before the exec).
                plan.exec_fifo_proc_fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            os.chroot(cfg.rootfs)
            os.chdir("/")
    if cfg.hostname:
        with steps.step("hostname"):
            _native.sethostname(cfg.hostname)
    if (netns := cfg.namespace("NEWNET")) is not None and not netns.path:
        with steps.step("loopback"):
            network.bring_up_loopback()
    if cfg.sysctl and cfg.has_own_procfs():
        with steps.step("sysctl"):
            _write_sysctls(cfg.sysctl)
    if cfg.has_namespace("NEWNS"):
        with steps.step("restrict paths"):
            mount.finish_rootfs(cfg)
    if plan.rootfs_before_go:
        wait_for_parent(steps, plan)
    own_keyring_and_stdio(steps, plan)
    trampoline_fd = place_extra_files(steps, plan, trampoline_fd)
    start_hooks = None
    if plan.hooks is not None and plan.hooks.start_container:
        start_hooks = (plan.hooks, hook_state)
    finalize_process(steps, cfg, plan.args, plan.env, plan.user, plan.cwd, trampoline_fd,
                     plan.init_prefix, seccomp=(plan.seccomp_program, plan.seccomp_flags),
                     detached=plan.detached, exec_fifo_fd=plan.exec_fifo_fd,
                     exec_fifo_proc_fd=plan.exec_fifo_proc_fd, extra_files=len(plan.extra_files),
                     start_hooks=start_hooks)


def wait_for_parent(steps: Steps, plan: ChildPlan) -> None:
    """Until the parent's ``go``: it has recorded the container (and
    written the id maps, set up the networks, if any)."""
    with steps.step("wait for parent"):
        _wait_for_go(plan.sync_fd)
        if plan.dumpable_until_go:
            _native.prctl(PR_SET_DUMPABLE, 0, label="prctl(PR_SET_DUMPABLE)")


def place_extra_files(steps: Steps, plan: ChildPlan, trampoline_fd: int) -> int:
    """The caller's extra files onto fds 3, 4, ... (libcontainer's
    ExtraFiles, os/exec's rule); returns the trampoline's fd, moved if it
    sat in that range.  Every fd still needed (the sync socket, the
    trampoline, the exec fifo) and the extra files themselves first go above
    the range, since any of them may sit where another must land; then each
    extra file is dup'd into its place (close-on-exec until the last step)."""
    if not plan.extra_files:
        return trampoline_fd
    floor = 3 + len(plan.extra_files)
    with steps.step("extra files"):
        def lift(fd: int) -> int:
            return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) if 0 <= fd < floor else fd

        sources = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in plan.extra_files]
        plan.sync_fd = steps.sync_fd = lift(steps.sync_fd)
        plan.exec_fifo_fd = lift(plan.exec_fifo_fd)
        plan.exec_fifo_proc_fd = lift(plan.exec_fifo_proc_fd)
        trampoline_fd = lift(trampoline_fd)
        for target, source in enumerate(sources, start=3):
            os.dup2(source, target, inheritable=False)
            os.close(source)
    return trampoline_fd


def _hook_point(steps: Steps, plan: ChildPlan) -> dict[str, Any]:
    """OCI hooks: prestart and createRuntime by the creator, then
    createContainer here, in the container's mount namespace, before
    pivot_root (nsinit/lifecycle/hooks.py)."""
    if plan.hooks is None:
        return {}
    with steps.step("hooks"):
        from nsinit.lifecycle import hooks

        return hooks.hook_point(plan.hooks, plan.sync_fd)


def finalize_process(steps: Steps, cfg: Config, args: list[str], extra_env: list[str],
                     user: str, cwd: str, trampoline_fd: int,
                     init_prefix: list[str] | None = None,
                     seccomp: tuple[bytes, int] = (b"", 0), *, detached: bool = False,
                     exec_fifo_fd: int = -1, exec_fifo_proc_fd: int = -1, extra_files: int = 0,
                     start_hooks: tuple[Hooks, dict[str, Any]] | None = None) -> NoReturn:
    """The part shared by create and join: limits, who we are, what we may do, exec."""
    from nsinit import capabilities, identity  # already loaded: see import_step_modules

    # The seccomp filter goes on last, right before execve, so that nsinit's
    # own steps are not filtered.  The kernel accepts a filter only from a
    # task with no_new_privs or CAP_SYS_ADMIN: without no_new_privileges and
    # with CAP_SYS_ADMIN dropped, it must be loaded before the capability
    # step instead (runc's order), and the profile must allow that step's
    # syscalls (capset, setresuid, prctl...; every engine's default does).
    filter_late = bool(seccomp[0]) and (cfg.no_new_privileges
                                        or "CAP_SYS_ADMIN" in cfg.capabilities.effective)
    with steps.step("close fds"):
        # First: nothing below (the image's /etc/passwd, the cwd) may reach
        # a caller's fd through /proc/self/fd.
        close_inherited_fds(steps.sync_fd, trampoline_fd, exec_fifo_fd, exec_fifo_proc_fd, *range(3, 3 + extra_files))
    if cfg.rlimits:
        with steps.step("rlimits"):
            _set_rlimits(cfg.rlimits)
    if cfg.oom_score_adj is not None and cfg.has_own_procfs():
        with steps.step("oom_score_adj"):
            write_file("/proc/self/oom_score_adj", str(cfg.oom_score_adj))
    with steps.step("user"):
        ident = identity.resolve_user(user, cfg.additional_groups)
    if cfg.apparmor_profile or cfg.process_label:
        with steps.step("security label"):
            apply_security_labels(cfg.apparmor_profile, cfg.process_label)
    if seccomp[0] and not filter_late:
        with steps.step("seccomp"):
            load_seccomp_filter(*seccomp, steps.sync_fd)
    with steps.step("capabilities"):
        caps = cfg.capabilities
        capabilities.drop_bounding_set(caps)
        capabilities.keep_caps_across_setuid(True)
        identity.switch_user(ident)
        capabilities.keep_caps_across_setuid(False)
        capabilities.apply_capability_sets(caps)
        if cfg.no_new_privileges:
            capabilities.set_no_new_privileges()
        # setuid cleared the parent-death signal; the container must still
        # die with its supervisor.  A detached one has none: its creator
        # exits once it is set up (until then, its end of the sync socket
        # closing still ends us: our next message fails).
        _native.prctl(PR_SET_PDEATHSIG, 0 if detached else cfg.parent_death_signal,
                      label="prctl(PR_SET_PDEATHSIG)")
    env = build_environment(cfg.environment, extra_env, ident)
    os.umask(cfg.umask)  # the config's, never the caller's
    with steps.step("cwd"):
        enter_working_dir(cwd)
    with steps.step("signals"):
        reset_signals()
        mark_cloexec_from(3)
        for fd in range(3, 3 + extra_files):  # the extra files (place_extra_files): the command's
            os.set_inheritable(fd, True)
        trampoline.keep_report_fd(steps.sync_fd)  # before a late filter, which may deny fcntl
    path = None
    if filter_late or exec_fifo_fd >= 0:  # detached: a missing command is a create error, not a start one
        with steps.step("exec"):
            path = find_executable(args[0], env, cfg.rootfs)  # its stat and access calls: not the container's
    if filter_late:
        with steps.step("seccomp"):
            load_seccomp_filter(*seccomp, steps.sync_fd)  # before the wait: a listener goes to the creator
    if exec_fifo_fd >= 0:
        with steps.step("wait for start"):
            from nsinit.lifecycle import start  # loaded by the parent before clone

            steps.trace = False  # nobody reads the sync socket once we are created
            start.wait_for_start(exec_fifo_fd, steps.sync_fd, exec_fifo_proc_fd)
    if start_hooks is not None:
        with steps.step("hooks"):
            from nsinit.lifecycle import hooks  # loaded before pivot_root, at the hook point

            hooks.run_start_container(*start_hooks)
    with steps.step("exec"):
        exec_command(args, env, trampoline_fd, steps.sync_fd, init_prefix or [],
                     cfg.rootfs, path, cfg.has_own_procfs())
    raise AssertionError("unreachable")


SECCOMP_FILTER_FLAG_NEW_LISTENER = 8


def load_seccomp_filter(program: bytes, flags: int, sync_fd: int) -> None:
    """seccomp(2) with the program the parent compiled: nothing to parse here.

    With a listener (the notify action), the notification fd goes to the
    supervisor, which hands it to the listener's socket; we exec only once
    it has (runc's handshake), or a notified syscall would find nobody."""
    listener = _native.seccomp_set_filter(program, flags)
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
        try:
            messages.send(sync_fd, messages.seccomp_listener(listener))
        finally:
            os.close(listener)
        reply = messages.receive(sync_fd)
        if reply is None or reply["kind"] != "seccomp_listener_sent":
            os._exit(125)  # the supervisor failed (and reports why) or died



def mark_cloexec_from(first: int) -> None:
    """Every fd >= first close-on-exec: close_range(CLOSE_RANGE_CLOEXEC), or
    one fd at a time where a seccomp filter, already on (see
    finalize_process), denies close_range: profiles older than Linux 5.9
    do (runtime-tools' default, Docker's before 20.10), and runc marks
    them one by one with fcntl anyway."""
    try:
        _native.cloexec_from(first)
        return
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOSYS, errno.EACCES):
            raise
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no procfs in this container: every number a fd can have
        # sysconf(_SC_OPEN_MAX) is RLIMIT_NOFILE's soft limit (glibc's
        # getdtablesize), without the resource module (only rlimits load it).
        fds = list(range(first, os.sysconf("SC_OPEN_MAX")))
    for fd in fds:
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError as err:
                if err.errno != errno.EBADF:  # not open (or listdir's own, closed again)
                    raise


def close_inherited_fds(*keep: int) -> None:
    """Close every fd but stdio and ``keep`` (the sync socket, the exec
    trampoline), before the chdir and before reading the image's files.

    A caller's fd on a host directory (``exec 9</``) would otherwise still
    be open when the working directory is entered, and a cwd of
    ``/proc/self/fd/9`` would put the command in the host's root
    (CVE-2024-21626).  What is kept goes at execve (close-on-exec).
    """
    first = 3
    for fd in sorted(set(keep)):
        if fd > first:
            os.closerange(first, fd)
        first = max(first, fd + 1)
    _native.close_from(first)


def own_keyring_and_stdio(steps: Steps, plan: ChildPlan) -> None:
    """The last steps a created and a joined process share before their
    extra files and the exec: a session keyring of its own, stdio that work."""
    if plan.new_session_keyring:
        with steps.step("keyring"):
            join_new_session_keyring()
    with steps.step("stdio"):
        reopen_dev_null_stdio()


def join_new_session_keyring() -> None:
    """A session keyring of the process's own, as runc makes one: the
    caller's (root's, on the host) would otherwise be the container's to
    read and to link keys into.  Anonymous, unlike runc's (named after the
    container id): joining by name would join any existing keyring of that
    name, another container's of the same name.  Made as the container's
    root, after the user namespace's maps, so it is owned by it.  A kernel
    without keyrings (ENOSYS) has nothing to share."""
    try:
        _native.join_new_session_keyring()
    except OSError as err:
        if err.errno != errno.ENOSYS:
            raise


DEV_NULL = (1, 3)


def reopen_dev_null_stdio() -> None:
    """A stdio fd that is /dev/null is reopened read-write from the
    container's own /dev/null (runc's reOpenDevNull).  containerd's
    ``--null-io`` hands over a /dev/null opened read-only as fds 0-2: a
    command writing to it would fail with EBADF where /dev/null always
    takes writes.  The node opened must itself be 1:3 (no symlink followed):
    without a mount namespace /dev is the image's."""
    null = -1
    try:
        for fd in (0, 1, 2):
            try:
                st = os.fstat(fd)
            except OSError:
                continue  # closed: nothing to reopen
            if not _is_dev_null(st):
                continue
            if null < 0:
                null = os.open("/dev/null", os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
                if not _is_dev_null(os.fstat(null)):
                    return  # the image's /dev/null is something else: leave the fds as given
            os.dup2(null, fd)   # inheritable: the command's stdio
    except OSError:
        return  # no /dev/null to open (a chroot without one): the fds stay as given
    finally:
        if null >= 0:
            os.close(null)


def _is_dev_null(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o020000 and (os.major(st.st_rdev), os.minor(st.st_rdev)) == DEV_NULL


def enter_working_dir(cwd: str) -> None:
    """chdir inside the container's root, then check that we are still in it.

    From "/", so a relative cwd is relative to the container's root and never
    to wherever a join or a chroot left us.  The kernel's getcwd() prefixes
    "(unreachable)" to a directory outside the process's root, and glibc
    turns that into ENOENT: either way the command would run outside.
    """
    try:
        os.chdir("/")
        os.chdir(cwd)
    except OSError as err:
        raise NsinitError("cwd", f"{cwd}: {err.strerror}") from None
    try:
        reached = os.getcwd()
    except OSError:
        reached = "(unreachable)"
    if not reached.startswith("/"):
        raise NsinitError("cwd", f"{cwd}: is outside the container's root")


def _become_init(plan: ChildPlan) -> None:
    # Die with the supervisor; if it is already gone, the sync read below
    # sees EOF and we exit.
    _native.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, label="prctl(PR_SET_PDEATHSIG)")
    # Non-dumpable until execve: nothing in the container may ptrace us or
    # open our /proc/PID/exe, the host's Python (the CVE-2019-5736 class).
    # Without root, only from "go" on: a non-dumpable process's /proc files
    # belong to root, and a plain user's nsinit could not write our id maps.
    # Until go, nothing of the container runs yet.
    if not plan.dumpable_until_go:
        _native.prctl(PR_SET_DUMPABLE, 0, label="prctl(PR_SET_DUMPABLE)")
    console.close_fds(plan.close_after_clone)
    # The extra files are the caller's fds as they were at clone: one of
    # 0-2 is taken aside now, before the stdio replace them.
    plan.extra_files = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) if fd < 3 else fd for fd in plan.extra_files]
    # The child execs within milliseconds: a garbage collection here would
    # only walk the interpreter's objects, copying every page it touches
    # from the parent (copy-on-write).
    gc.disable()


def attach_to_cgroups(files: list[str]) -> None:
    """Move this (single-threaded) process into its cgroups by writing "0".

    Done by the child itself rather than by the parent writing its pid:
    see Manager.self_attach_files for the cost this avoids.
    """
    for path in files:
        try:
            write_file(path, "0")
        except OSError as err:
            raise NsinitError("cgroups", f"{path}: {err.strerror}") from None


def _wait_for_go(fd: int) -> None:
    message = messages.receive(fd)
    if message is None:
        os._exit(125)  # the supervisor died (or gave up) before releasing us
    if message["kind"] != "go":
        raise NsinitError("sync", f"unexpected message {message!r}")


def apply_security_labels(apparmor_profile: str, process_label: str) -> None:
    """The LSM label the command is exec'd into (the loader has checked that
    the kernel has the LSM).  Set for the exec, not for us: our own remaining
    steps run as before, the command starts confined."""
    if apparmor_profile:
        # aa_change_onexec(): the AppArmor-specific file where it exists
        # (Linux 5.1+, stacked LSMs), else the shared one.
        _write_first(("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"), f"exec {apparmor_profile}")
    if process_label:
        _write_first(("/proc/self/attr/exec",), process_label)


def _write_first(paths: tuple[str, ...], value: str) -> None:
    for path in paths:
        try:
            write_file(path, value)
            return
        except FileNotFoundError:
            continue
    raise NsinitError("security label", f"none of {', '.join(paths)} exists")


def _open_console(plan: ChildPlan, root: str) -> None:
    """Make the pty in the devpts of the container whose root is ``root``;
    its master goes to the supervisor."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        master, slave = console.open_container_pty(root_fd, plan.stdio.window_size)
    finally:
        os.close(root_fd)
    try:
        messages.send(plan.sync_fd, messages.console(master))
    finally:
        os.close(master)
    console.use_child_pty(plan.stdio, slave)


def _join_path_namespaces(cfg: Config) -> None:
    paths = {ns.type: ns.path for ns in cfg.namespaces
             if ns.path and ns.type not in namespaces.FOR_CHILDREN_ONLY}
    if not paths:
        return
    fds = namespaces.open_namespaces(paths)
    try:
        namespaces.enter_namespaces(fds)
    finally:
        namespaces.close_all(fds.values())


def write_kernel_settings_from_the_host(steps: Steps, cfg: Config, sysctl: bool = True) -> None:
    """Without a procfs of its own (``Config.has_own_procfs``), the
    container's /proc is a directory of the image's: a regular file there
    would take a write and leave the setting unapplied without a word.  So
    they go through the host's /proc while it is still reachable (before the
    chroot, pivot_root or setns): /proc/self is this very process, and a
    namespaced sysctl (the only kind the loaders let through) is the one of
    the writer's namespaces, which are the container's by now."""
    if sysctl and cfg.sysctl:
        with steps.step("sysctl"):
            _write_sysctls(cfg.sysctl)
    if cfg.oom_score_adj is not None:
        with steps.step("oom_score_adj"):
            write_file("/proc/self/oom_score_adj", str(cfg.oom_score_adj))


def _write_sysctls(sysctl: tuple[tuple[str, str], ...]) -> None:
    for key, value in sysctl:
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            write_file(path, value)
        except OSError as err:
            raise NsinitError("sysctl", f"{key}: {err.strerror}") from None


def _set_rlimits(rlimits: tuple[Rlimit, ...]) -> None:
    resource = preloaded("resource")
    for limit in rlimits:
        try:
            resource.setrlimit(limit.type, (limit.soft, limit.hard))
        except (OSError, ValueError) as err:
            raise NsinitError("rlimits", f"resource {limit.type}: soft {limit.soft} hard {limit.hard}: "
                              f"{getattr(err, 'strerror', None) or err} (a hard limit can be lowered but "
                              "not raised without CAP_SYS_RESOURCE)") from None


def build_environment(config_env: tuple[str, ...], extra: list[str], ident: identity.Identity) -> list[str]:
    """The container's env: config, then --env, then HOME if still unset.

    Nothing comes from the host's environment.
    """
    merged: dict[str, str] = {}
    for entry in list(config_env) + list(extra):
        key, _, value = entry.partition("=")
        merged[key] = value
    merged.setdefault("HOME", ident.home or "/")
    return [f"{k}={v}" for k, v in merged.items()]


def reset_signals() -> None:
    """Default dispositions and an empty mask, as a fresh process expects.

    Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive execve;
    a container must not inherit that from the runtime.
    """
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # 32/33 are reserved by glibc for threads; they cannot be set
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def find_executable(name: str, env: list[str], rootfs: str = "/") -> str:
    """The command's path by $PATH, found and checked here: the trampoline's
    execve reports only an errno (see exec_failure).  Errors name the rootfs
    searched (on the host), since a config read from elsewhere may point at
    another one."""
    if "/" in name:
        return _check_executable(name, rootfs)
    path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/local/bin:/usr/bin:/bin")
    found_not_executable = ""
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            found_not_executable = found_not_executable or candidate
    if found_not_executable:
        raise NsinitError("exec", f"{found_not_executable}: Permission denied", EXIT_CANNOT_EXECUTE)
    raise NsinitError("exec", f"{name}: command not found in the rootfs {rootfs} (PATH={path})", EXIT_NOT_FOUND)


def _check_executable(path: str, rootfs: str) -> str:
    try:
        st = os.stat(path)
    except OSError as err:
        raise exec_failure(path, err.errno or errno.EACCES, rootfs) from None
    # execve(2) refuses anything but a regular file with EACCES; access(2)
    # also sees a noexec mount.
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        raise exec_failure(path, errno.EACCES, rootfs)
    return path


def exec_command(args: list[str], env: list[str], trampoline_fd: int, report_fd: int,
                 init_prefix: list[str], rootfs: str = "/", path: str | None = None,
                 own_procfs: bool = False) -> NoReturn:
    path = path or find_executable(args[0], env, rootfs)
    if init_prefix:
        # Looked up here all the same, so that a missing command gets
        # nsinit's one line and 127 rather than tini's FATAL; tini is given
        # the name as typed and finds it on the same PATH.
        path, args = init_prefix[0], [*init_prefix, *args]
    try:
        trampoline.exec_through(trampoline_fd, report_fd, path, args,
                                dict(e.split("=", 1) for e in env), own_procfs)
    except OSError as err:
        raise NsinitError("exec", f"{trampoline.MEMFD_NAME} (nsinit's exec trampoline): "
                                  f"{err.strerror}") from None


def exec_failure(path: str, err: int, rootfs: str) -> NsinitError:
    """An execve of ``path`` that failed with ``err``: 127 if not found, else 126."""
    code = EXIT_NOT_FOUND if err == errno.ENOENT else EXIT_CANNOT_EXECUTE
    where = f" in the rootfs {rootfs}" if err == errno.ENOENT else ""
    return NsinitError("exec", f"{path}: {os.strerror(err)}{where}", code)
