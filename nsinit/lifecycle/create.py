"""Creation: cgroups → clone → id maps, veths, record → the init execs, or waits for start.

_Creation is one create flow, the parent side of the steps in
nsinit/child.py, for ``nsinit exec`` (the nsinit that creates stays as the
container's supervisor: nsinit/lifecycle/supervise.py) and for ``create``
(``detached`` set).  What differs in the detached one is below it: the
init's stdio are the caller's own fds 0-2 (no relay: no nsinit process
stays to relay), it does not die with its creator, and after its last setup
step it waits on the exec fifo (nsinit/lifecycle/start.py) instead of
exec'ing.  Once it waits, the creation hands it over: the caller keeps a
child (the init), nsinit keeps nothing (no fd, no signal handler, no lock).
"""
from __future__ import annotations

import os

from nsinit import child, console, messages, namespaces, state, trampoline
from nsinit.errors import NsinitError
from nsinit.lifecycle import rootfs_can_precede_go
# Before clone, not at the end where it is used: imported after clone, every
# page the import writes is a write-protect fault (the clone shared them).
from nsinit.lifecycle.destroy import remove_made
from nsinit.lifecycle.launch import _Launch
from nsinit.lifecycle.supervise import FORWARDED_SIGNALS, oom_kills, say_if_oom_killed
from nsinit.state import State

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Callable

    from nsinit.config.model import Config
    from nsinit.container import Container, Process
    from nsinit.network.helper import NetworkHelper


class _Creation(_Launch):
    """One create flow.  Parent side of the steps in nsinit/child.py."""

    kind = "create"

    def __init__(self, container: Container, process: Process, config: Config,
                 lock: state.RootLock) -> None:
        super().__init__(container, process, config)
        self.lock = lock
        self.cgroup_paths: dict[str, str] = {}
        self.cgroup_files: list[str] = []
        self.network_helper: NetworkHelper | None = None
        self.network_state: list[dict[str, object]] = []
        self.oom_kills_before = 0
        self.rootfs_before_go = False  # see rootfs_can_precede_go

    def run(self) -> int:
        with self.undo:
            if self.container.trace:
                self.start_trace(f"a new container in {self.container.root}")
            # The network helper (veth configs only) first: its imports
            # overlap the cgroups and the clone.  The cgroups before clone:
            # the parent's own work after it pays for copy-on-write faults
            # (measured: ~1.5 ms longer when done after clone, beside the
            # child; made after clone while the child waited to move in,
            # 0.2-0.5 ms more wall per container than before it).
            self.start_network_helper()
            self.create_cgroups()
            self.start_child()
            self.setup_networks()  # nothing in it waits for the child
            # Before the record even where the rootfs precedes go: the record
            # holds the init's cgroup namespace, made once it is in its
            # cgroups; and the move (~0.4 ms) done alone, the record beside
            # the rootfs steps, came 0.6 ms sooner to the exec than the
            # record beside the move (stamps, n=60, load 1-2).
            self.wait_until_attached()
            self.write_id_maps()
            self.start_user_mode_networks()
            self.record_child_unless_it_failed()
            if self.detached:
                hand_over(self)  # the init waits for start; nobody supervises it
                self.undo.close()
                return 0
            with self.step_timer("go, wait for exec"):
                self.tell_child(messages.go())
                self.read_child_messages(until=None)
            # Joiners may come in only now that the init has exec'd: before,
            # its mounts and credentials were still being set up.
            self.lock.release()
            status = self.supervise()
            say_if_oom_killed(status, self.cgroup_paths, self.oom_kills_before)
            self.undo.close()
            return status
        raise AssertionError("unreachable")

    def create_cgroups(self) -> None:
        """Before clone: the cgroups exist with their limits, so the init
        can enter them before it runs any code of the user's, and nothing it
        starts can escape the limits."""
        from nsinit import cgroups

        with self.step_timer("cgroups"):
            self.manager = cgroups.manager_for(self.config, self.container.root)
            self.undo.callback(self.tear_down)
            self.manager.create()
            self.cgroup_files = self.manager.self_attach_files()
        self.cgroup_paths = self.manager.paths
        if not self.manager.owned:  # a cgroup named in the config may have seen kills before
            self.oom_kills_before = oom_kills(self.cgroup_paths)

    def tell_child(self, message: messages.Message) -> None:
        """Send the child ``message``.  A child that is gone failed in a
        step it ran before waiting for this one, and left its report in the
        socket: that is the error, not the EPIPE."""
        try:
            messages.send(self.sync_fd, message)
        except (BrokenPipeError, ConnectionResetError):
            self.read_child_messages(until=UNTIL_ITS_END)
            raise

    def record_child_unless_it_failed(self) -> None:
        """record_child.  While the parent records, a child setting up its
        rootfs (rootfs_before_go) may fail and exit: then its report is the
        error, not what the record could not read of a dead process."""
        try:
            self.record_child()
        except (NsinitError, OSError):
            # A second, for a child caught between giving up its namespaces
            # and its exit; a record that failed on its own costs no more.
            if self.rootfs_before_go and state.process_exited(self.pidfd, 1.0):
                self.read_child_messages(until=UNTIL_ITS_END)
            raise

    def tear_down(self) -> None:
        """Undo the container, whether it failed to start or has ended: the
        init dead, then host veths, cgroups and last the record.

        Under the root lock, and only while the record is still ours: while
        this supervisor waited for the lock, another nsinit may have found
        the record stale, cleaned up, and started a container whose cgroups
        have the same path.  Removing the record last keeps a new creation
        from starting while the old cgroups still exist.
        """
        if self.keep_child:
            return  # handed to the caller: delete removes it (nsinit/lifecycle/destroy.py)
        self.kill_child()  # a cgroup with a live process in it cannot be removed
        if self.lock.held:  # creation failed: nobody else can have stepped in
            self._remove_everything()
            return
        with state.RootLock(self.container.root):
            if state.recorded_init_pid(self.container.root) == self.pid:
                self._remove_everything()

    def _remove_everything(self) -> None:
        remove_made(self.manager, self.network_state)
        state.remove_state(self.container.root, self.pid, checked=True)  # ours: tear_down's rule

    def start_child(self) -> None:
        cfg = self.config
        helper_fds = self.network_helper.supervisor_fds() if self.network_helper else []
        plan = self.prepare_plan([self.lock.fd, *helper_fds])
        plan.cgroup_files = self.cgroup_files
        plan.dumpable_until_go = os.geteuid() != 0  # see nsinit/child.py _become_init
        if self.detached:
            plan.exec_fifo_fd = prepare_exec_fifo(self)
        if self.process.init:
            add_init(plan, cfg)
        if self.container.hooks is not None:
            plan.hooks = self.container.hooks.hooks  # the init stops for them before pivot_root
        plan.rootfs_before_go = self.rootfs_before_go = rootfs_can_precede_go(
            cfg, hooks=plan.hooks is not None, rootless=plan.dumpable_until_go)
        flags = cfg.clone_flags()
        if flags & namespaces.CLONE_FLAGS["NEWCGROUP"]:
            # The cgroup namespace is rooted where its creator stands when it
            # is made: the child makes it once it is in its own cgroups.
            flags &= ~namespaces.CLONE_FLAGS["NEWCGROUP"]
            plan.unshare_cgroupns = True
        path_namespaces = {ns.type: ns.path for ns in cfg.namespaces if ns.path}
        with self.step_timer("load steps"):
            child.import_step_modules(*child.create_step_modules(plan))
        # Made here for the child, as the step modules are loaded: made in
        # the child, after clone, its code's pages fault (~0.2 ms there).
        with self.step_timer("trampoline"):
            plan.trampoline_fd = trampoline.sealed_copy()
        try:
            with self.step_timer("clone"):
                with namespaces.ParentNamespaces(path_namespaces):
                    pid = self.clone(flags)
                    if pid == 0:
                        child.run(plan)  # never returns
        finally:
            os.close(plan.trampoline_fd)  # the parent's copy: the child has its own
        self.adopt_child(pid, plan)

    def wait_until_attached(self) -> None:
        """The child moves itself into its cgroups (and cgroup namespace)
        first thing; the namespaces recorded in state.json come after."""
        with self.step_timer("wait for child"):
            self.read_child_messages(until="attached")

    def write_id_maps(self) -> None:
        cfg = self.config
        user_ns = cfg.namespace("NEWUSER")
        if user_ns is not None and not user_ns.path:
            with self.step_timer("id maps"):
                namespaces.write_id_maps(self.pid, cfg.uid_mappings, cfg.gid_mappings)

    def start_user_mode_networks(self) -> None:
        """slirp4netns/pasta, once the id maps let them into the namespaces;
        stopped when the container ends (nsinit/network/usermode.py)."""
        if not any(n.type in ("slirp4netns", "pasta") for n in self.config.networks):
            return
        from nsinit.network import usermode

        with self.step_timer("network"):
            helpers = usermode.start_networks(self.config.networks, self.pid)
        self.undo.callback(usermode.stop_networks, helpers)

    def start_network_helper(self) -> None:
        """Before the cgroups and the clone, so that its imports overlap them
        (see nsinit/network/helper.py)."""
        if not any(n.type == "veth" for n in self.config.networks) and not self.config.routes:
            return  # loopback is the child's job; pyroute2 is only paid for veth
        from nsinit.network.helper import NetworkHelper

        self.network_helper = NetworkHelper(self.config, FORWARDED_SIGNALS)
        self.undo.callback(self.network_helper.reap)

    def setup_networks(self) -> None:
        joined = self.config.namespace("NEWNET")
        if joined is not None and joined.path:
            from nsinit.network import netns

            # Checked here, not at load: `nsinit kill` must work after the
            # namespace file is gone while the container still holds it.
            netns.check_network_namespace(self.config)
        if self.network_helper is None:
            return
        with self.step_timer("network"):
            self.network_state = self.network_helper.setup(self.pid)  # undone by tear_down

    def record_child(self) -> None:
        cfg = self.config
        from nsinit.config.recorded import config_to_dict

        with self.step_timer("state"):
            start_time = state.read_start_time(self.pid)
            if start_time is None:
                raise NsinitError("state", "container init exited before it was recorded")
            names = [ns.type for ns in cfg.namespaces]
            record = State(
                init_pid=self.pid, init_start_time=start_time, created=state.now_iso(),
                root=self.container.root, rootfs=cfg.rootfs,
                namespace_paths=namespaces.namespace_paths(self.pid, names),
                namespace_inodes=recorded_namespace_inodes(self.pid, cfg),
                cgroup_paths=self.cgroup_paths, cgroup_parents_made=self.manager.parents_made,
                network_state=self.network_state,
                config=config_to_dict(cfg),
                supervisor_pid=os.getpid(), supervisor_start_time=state.read_start_time(os.getpid()) or 0,
            )
            if self.detached:  # no supervisor: the creator only holds the lock while it creates
                record.status, record.detached, record.supervisor_pid, record.supervisor_start_time = \
                    "creating", True, 0, 0
            if self.container.hooks is not None:  # for start and delete, later
                record.hooks = self.container.hooks.to_record()
            state.write_state(self.container.root, record)  # undone by tear_down


# No message has this kind: reading "until" it ends with the child's failure
# report (raised) or with EOF (it died during setup: raised too).
UNTIL_ITS_END = ""


def recorded_namespace_inodes(pid: int, cfg: Config) -> dict[str, int]:
    """The init's namespaces as they will be once it runs: one given by path
    is the path's, not the one the init is in now.  The init joins those
    after "go" (the pid and time ones excepted: it was cloned into them), so
    reading them from /proc/PID/ns now would record the host's network
    namespace for podman's /run/netns/... and every later liveness check
    would take the container for a stranger (and remove it as stale)."""
    inodes = namespaces.namespace_inodes(pid, [ns.type for ns in cfg.namespaces])
    for ns in cfg.namespaces:
        if ns.path and ns.type not in namespaces.FOR_CHILDREN_ONLY:
            try:
                inodes[ns.type] = os.stat(ns.path).st_ino
            except OSError as err:
                raise NsinitError("state", f"namespace {ns.path}: {err.strerror or err}") from None
    return inodes


def add_init(plan: child.ChildPlan, config: Config) -> None:
    """``exec --init``: tini, bound in by the child, runs the command."""
    from nsinit.mount.init_binary import check_init_possible, find_init, init_args

    check_init_possible(config)
    plan.init_binary = find_init()
    plan.init_prefix = init_args(config, [])


_STD_NAMES = ("stdin", "stdout", "stderr")


def detached_stdio(asked_tty: bool | None, configured_tty: bool | None, warn: Callable[[str], None], *,
                   given: tuple[int | None, int | None, int | None] | None = None, console_socket: str = "",
                   window_size: tuple[int, int] | None = None, container_devpts: bool = True) -> console.Stdio:
    """The caller's fds 0-2, as they are, except a terminal.

    A detached container outlives the nsinit that could relay a terminal,
    and it must never hold the host's: from it, the container could read
    what the user types into their shell afterwards (and, with
    CAP_SYS_ADMIN, type into it with TIOCSTI).  So a terminal fd becomes
    /dev/null, said in one warning; a pty of the container's own needs a
    console socket to hand its master to (nsinit/lifecycle/console.py).
    """
    if asked_tty or (asked_tty is None and configured_tty):
        from nsinit.lifecycle.console import detached_terminal

        return detached_terminal(console_socket, window_size, container_devpts)
    given = given or (None, None, None)  # a Process's own fds: no terminals (nsinit/process_settings.py)
    own = [fd if (mine := given[fd]) is None else mine for fd in (0, 1, 2)]
    terminals = [fd for fd in (0, 1, 2) if given[fd] is None and _isatty(fd)]
    if not terminals:
        return console.Stdio(child_fds=(own[0], own[1], own[2]))
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    warn(f"{', '.join(_STD_NAMES[fd] for fd in terminals)} of nsinit "
         f"{'is a terminal' if len(terminals) == 1 else 'are terminals'}: the detached container gets "
         "/dev/null there, never the host's terminal (redirect to a file or pipe to keep its output)")
    fds = tuple(null if fd in terminals else own[fd] for fd in (0, 1, 2))
    return console.Stdio(child_fds=fds, child_only=[null])  # type: ignore[arg-type]


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def prepare_exec_fifo(creation: "_Creation") -> int:
    """Before clone: the fifo the init will wait on, and an O_PATH fd on it
    for the child (the fifo's directory is out of its reach after
    pivot_root); the parent closes its copy once the child has it."""
    from nsinit.lifecycle import start

    refuse_what_needs_a_supervisor(creation.config)
    fd = start.make_exec_fifo(creation.lock.path)
    creation.undo.callback(os.close, fd)
    return fd


def refuse_what_needs_a_supervisor(config: Config) -> None:
    """slirp4netns and pasta run beside the container for as long as it
    does, and the nsinit that started them stops them at its end: with
    nobody supervising, nobody would."""
    helpers = sorted({n.type for n in config.networks if n.type in ("slirp4netns", "pasta")})
    if helpers:
        raise NsinitError("network", f"a {' and '.join(helpers)} network needs the nsinit that runs it: "
                                     "not with create or --detach (run nsinit exec without --detach)")


def hand_over(creation: "_Creation") -> None:
    """The init waits on the fifo: record it as created, and let go of it.

    From here, undoing the launch (``undo.close``) closes nsinit's fds and
    restores its signal handlers, but neither kills the child nor removes
    what was made: the container is the caller's, and its removal
    ``delete``'s (nsinit/lifecycle/destroy.py).
    """
    creation.tell_child(messages.go())
    creation.read_child_messages(until="created")
    record_and_keep_child(creation, "created", "created")


def record_and_keep_child(launch: "_Launch", status: str, doing: str) -> None:
    """Record the launched init with ``status`` and leave it to the caller
    (create's init, and a restore's --detach)."""
    # read_record, not load_state: a plain user cannot look at the
    # namespaces of a non-dumpable init (and this one is ours, live).
    record = state.read_record(state.private_dir(launch.container.root))
    if record is None or record.init_pid != launch.pid:
        raise NsinitError("state", f"the container's record went away while it was being {doing}")
    record.status = status
    state.update_state(launch.container.root, record)
    keep_child(launch)


def keep_child(launch: "_Launch") -> None:
    """The caller keeps the child: give the Process its pid, and make the
    launch's undo leave the child alone."""
    launch.process.pid = launch.pid
    launch.keep_child = True
