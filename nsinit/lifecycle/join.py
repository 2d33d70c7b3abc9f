"""A join: run a process beside PID 1 of a live container (``nsinit exec`` where one runs).

The init is pinned by a pidfd before its start time is checked again, and
setns with that pidfd enters its namespaces; the joined process gets the
config recorded at creation, never container.json as it is now.  A join
whose container ends under it says so (ContainerGoneError), and exec
decides again (nsinit/container.py ``Container._launch``).
"""
from __future__ import annotations

import errno
import os
import select
import sys

from nsinit import child, namespaces, state
from nsinit.errors import ContainerGoneError, NsinitError
from nsinit.lifecycle.launch import _Launch
from nsinit.lifecycle.supervise import init_is_exiting, oom_kills, say_if_oom_killed

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal

    from nsinit.config.model import Config
    from nsinit.container import Container, Process
    from nsinit.state import State
else:
    # The C module under signal.py, which adds enum classes (and the enum
    # module, ~2 ms of every start); its functions and constants are the same.
    import _signal as signal



class _Join(_Launch):
    """Run a process beside the init of a live container.

    The init is pinned by a pidfd opened *before* its start time is checked
    again, so pid reuse cannot send us into a stranger's namespaces; setns
    with that pidfd then enters all of them atomically.
    """

    warns_about_config = False

    def __init__(self, container: Container, process: Process, current: State) -> None:
        # The joined process gets what the container was created with, from
        # nsinit's private record, never from container.json now: that file
        # usually sits in the rootfs, where the container's root can rewrite
        # it (to hand the next joined process every capability, say).
        super().__init__(container, process, recorded_config(current))
        self.current = current
        self.init_pidfd = -1
        self.oom_kills_before = 0

    kind = "join"

    def run(self) -> int:
        if self.process.init:
            self.container.warn(f"--init: the container in {self.container.root} runs already, with its "
                                "own PID 1; this process joins it without an init")
        with self.undo:
            try:
                if self.container.trace:
                    self.start_trace(f"a new process in the container of init {self.current.init_pid}")
                self.pin_init()
                self.oom_kills_before = oom_kills(self.current.cgroup_paths)
                self.start_child()
                with self.step_timer("go, wait for exec"):
                    self.release_child()
            except (NsinitError, OSError) as err:
                # Whatever failed (setns: ESRCH, clone into a dying pid
                # namespace: ENOMEM, our child killed with that namespace:
                # ECONNRESET, ...), the cause is the container's end if its
                # init is gone by now.  The kernel stops pid allocation in
                # the namespace before the init's exit shows on its pidfd,
                # so for those errors we give the exit a moment to show.
                # The child's own setns failing with ESRCH counts too: its errno
                # crosses the sync socket now.
                dying = getattr(err, "errno", None) in (errno.ENOMEM, errno.ESRCH, errno.ECONNRESET, errno.EPIPE)
                # Reap our child first: a dying pid namespace's init does not
                # finish exiting while a zombie of the namespace is unreaped.
                self.kill_child()
                if self.init_exited(wait=1.0 if dying else 0.05):
                    raise self.gone() from None
                raise
            if self.detached:
                from nsinit.lifecycle.create import keep_child

                keep_child(self)  # exec'd; the caller waits for it
                self.undo.close()
                return 0
            status = self.supervise()
            if not say_if_oom_killed(status, self.current.cgroup_paths, self.oom_kills_before):
                self.say_if_ended_with_the_init(status)
            self.undo.close()
            return status
        raise AssertionError("unreachable")

    def pin_init(self) -> None:
        current = self.current
        try:
            self.init_pidfd = os.pidfd_open(current.init_pid)
        except ProcessLookupError:
            raise self.gone() from None
        self.undo.callback(os.close, self.init_pidfd)
        if not state.is_alive(current.init_pid, current.init_start_time):
            raise self.gone()

    def init_exited(self, wait: float) -> bool:
        """A pidfd becomes readable when its process exits (zombie or not)."""
        if self.init_pidfd < 0:
            return True
        return bool(select.select([self.init_pidfd], [], [], wait)[0])

    def say_if_ended_with_the_init(self, status: int) -> None:
        """One line when the joined process died because the container's
        init exited: the kernel SIGKILLs every process of a pid namespace
        whose init exits, and the 137 alone tells nothing of that."""
        if status != 128 + signal.SIGKILL or "NEWPID" not in self.current.namespace_inodes:
            return
        # The init cannot finish exiting before we reaped our process (it
        # waits for every process of its namespace), so "exiting" counts too.
        if self.init_exited(wait=0) or init_is_exiting(self.current.init_pid):
            sys.stderr.write(f"nsinit: the container's init (pid {self.current.init_pid}) exited, "
                             "which killed this process\n")

    def gone(self) -> ContainerGoneError:
        gone = ContainerGoneError("join", f"container init {self.current.init_pid} exited")
        gone.init_pid = self.current.init_pid
        return gone

    def cgroup_files(self) -> list[str]:
        """Where the joined process moves itself, first thing after clone:
        it runs none of the user's code outside them (moby#10046)."""
        if not self.current.cgroup_paths:
            return []
        from nsinit.cgroups import membership

        return membership.files_to_join(self.current.cgroup_paths)

    def start_child(self) -> None:
        kinds = [name for name in self.current.namespace_inodes]
        for_children = [k for k in kinds if k in namespaces.FOR_CHILDREN_ONLY]
        plan = self.prepare_plan([])
        plan.cgroup_files = self.cgroup_files()
        plan.join_pidfd = self.init_pidfd
        plan.join_flags = namespaces.flags_for(k for k in kinds if k not in namespaces.FOR_CHILDREN_ONLY)
        if "NEWUSER" in kinds and os.geteuid() != 0:
            # Without root, entering the pid namespace for our child needs
            # CAP_SYS_ADMIN in our own user namespace: we take the
            # container's, whose owner we are, and its pid (time) namespace
            # for our children, for good: neither our user namespace nor the
            # host's pid namespace could be entered again.  We make no other
            # child.  The child then joins the rest.
            namespaces.enter_with_pidfd(self.init_pidfd, namespaces.flags_for(["NEWUSER", *for_children]))
            plan.join_flags &= ~namespaces.CLONE_FLAGS["NEWUSER"]
            for_children = []
        with self.step_timer("clone"):
            try:
                with namespaces.PidfdNamespaces(self.init_pidfd, for_children):
                    pid = self.clone(0)
                    if pid == 0:
                        child.run_joined(plan)  # never returns
            except ProcessLookupError:
                raise self.gone() from None
        self.adopt_child(pid, plan)


def recorded_config(record: State) -> Config:
    from nsinit.config.recorded import read_recorded

    return read_recorded(record.config, "join")
