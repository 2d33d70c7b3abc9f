"""The one way a container is removed: what it made on the host, then its record.

Whoever finds a container ended comes here: its supervisor when its init
exits (``nsinit exec``), ``delete`` (and ``Container.destroy``), the next
command in its root dir when its init died with nobody watching, and ``nsinit
gc`` for the records of root dirs that are gone.  The cgroups go first:
destroying them kills every process still in them and waits for it (a
cgroup with a live process cannot be removed), then the host ends of its
veths (the kernel removes them with the netns, unless something keeps
that alive), and the record last, so that a new creation in the same root
dir cannot start while the old cgroups still exist.
"""
from __future__ import annotations

import os
import time

from nsinit import kernelfs, state
from nsinit.errors import EXIT_COMMAND_FAILED, NoContainerError, NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Callable

    from nsinit.cgroups.manager import Manager
    from nsinit.container import Container
    from nsinit.state import State

# How long delete waits for a killed init to exit (it exits at once; a
# process in uninterruptible sleep takes longer).
KILL_WAIT_SECONDS = 10.0


def remove_made(manager: Manager | None, network_state: list[dict[str, object]]) -> None:
    """The container's cgroups (with any process left in them, thawed if it
    was paused) and the host ends of its veths."""
    if manager is not None:
        manager.destroy()
    if any(entry.get("host_interface_name") for entry in network_state if isinstance(entry, dict)):
        from nsinit.network import teardown

        teardown.teardown_networks(network_state)


def remove_leftovers(record: State) -> None:
    """remove_made for a container known only by its record (its
    supervisor was killed, or it never had one)."""
    manager = None
    # Every manager's destroy tries this first (the usual end: the init
    # reaped, its pid namespace took every process); done here before the
    # cgroups package is loaded, which for a stopped container's delete was
    # most of the command's own time (nine modules).  Anything else (a
    # process left, a sub-cgroup, EBUSY) goes to the manager's full path,
    # which removes the parents the creation made too.
    if record.cgroup_paths and not kernelfs.removed_if_empty(sorted(set(record.cgroup_paths.values()))):
        from nsinit import cgroups

        manager = cgroups.load_manager(record.cgroup_paths, record.cgroup_parents_made)
    else:
        kernelfs.remove_parents_if_unused(record.cgroup_parents_made)
    remove_made(manager, record.network_state)


def remove_container(root: str, record: State, warn: Callable[[str], None] | None = None) -> None:
    """Everything of the container recorded in ``root``'s private directory,
    then its poststop hooks.  Call with the root lock held, once its init
    is dead."""
    remove_leftovers(record)
    state.remove_state(root, record.init_pid, checked=True)  # the caller read it under the lock
    run_recorded_poststop(record, warn)


def remove_dead_record(private: str, record: State, warn: Callable[[str], None] | None = None) -> None:
    """remove_container for a record whose root dir may be gone (``nsinit gc``)."""
    remove_leftovers(record)
    state.remove_private_dir(private, record)
    run_recorded_poststop(record, warn)


def run_recorded_poststop(record: State, warn: Callable[[str], None] | None) -> None:
    """The runtime spec's poststop: after the container is deleted, whoever
    deletes it (delete, gc, the next command that finds its init dead).
    Exactly once: each caller has just removed the record under the root
    lock, and a record is removed only once."""
    if not record.hooks:
        return
    from nsinit.container import warn_on_stderr
    from nsinit.lifecycle.hooks import run_poststop

    run_poststop(record, warn or warn_on_stderr)


# --- delete ------------------------------------------------------------------------

def delete(container: Container, *, force: bool, grace: float = 2.0,
           decide: Callable[[str], None] | None = None) -> None:
    """``nsinit delete [--force]``: remove the container in ``container.root``.

    As runc's: a stopped or created container is deleted (a created one's
    init killed first), a running or paused one only with ``force``, which
    kills it first; with ``force``, no container is no error.  A container
    a 2014 ``nsinit exec`` supervises is killed and left to that nsinit to
    remove (``grace`` seconds, then it is removed here if its nsinit died).
    ``decide`` sees the status of the record read here under the lock and may
    raise instead (nsinit-runc's delete refuses a live container in runc's
    words): one read of the record decides and deletes.
    """
    root = container.root
    lock = state.RootLock(root).acquire()
    try:
        status, current, _why = container.status_with_record()  # a stale record: removed right there
        if decide is not None:
            decide(status)
        if current is None:
            if force:
                return
            raise NoContainerError("delete", f"no container in {root}")
        if status in ("running", "paused", "creating") and not force:
            raise NsinitError("delete", f"the container in {root} is {status} (pid {current.init_pid}); "
                                        "nsinit stop it first, or delete --force", EXIT_COMMAND_FAILED)
        supervised = not current.detached and state.supervisor_alive(current)
        if status != "stopped":
            kill(container, current, wait=not supervised)
        if not supervised:
            remove_container(root, current, container.warn)  # and its poststop hooks
            return
    finally:
        lock.release()
    # Its nsinit removes it, and needs the lock for that.
    wait_for_supervisor(container, current, grace)


def kill(container: Container, current: State, *, wait: bool) -> None:
    """SIGKILL the init and every process of the container; with ``wait``,
    until the init has exited (a zombie counts: its parent reaps it)."""
    from nsinit.container import kill_every_process

    import _signal as signal  # type: ignore[import-not-found]  # see nsinit/container.py

    pidfd = state.pin_process(current.init_pid, current.init_start_time)
    if pidfd < 0:
        return  # exited since the status was read
    try:
        # SIGKILL first, then thaw: a frozen process dies only once thawed
        # (cgroup v1), and one killed before (`kill 9` of a paused
        # container) dies at the thaw and may be reaped by its parent at
        # once; the pidfd then answers ESRCH, which is what we wanted.
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_every_process(current)
        if current.status == "paused":
            try:
                container.cgroups(current).thaw()
            except NsinitError:
                pass  # no freezer to thaw: destroying the cgroups kills it all the same
        if wait and not state.process_exited(pidfd, KILL_WAIT_SECONDS):
            raise NsinitError("delete", f"container init {current.init_pid} still runs "
                                        f"{KILL_WAIT_SECONDS:g} s after SIGKILL", EXIT_COMMAND_FAILED)
    finally:
        os.close(pidfd)


def wait_for_supervisor(container: Container, current: State, grace: float) -> None:
    """Until the supervising nsinit has removed ``current``; after ``grace``
    seconds what is left is removed here (its nsinit was killed too)."""
    record = os.path.join(state.private_dir(container.root), state.STATE_FILE)
    deadline = time.monotonic() + grace
    while os.path.exists(record) and time.monotonic() < deadline:
        time.sleep(0.02)
    with state.RootLock(container.root):
        if container.state() is not None:  # removes a record whose nsinit died
            raise NsinitError("delete", f"the container in {container.root} still runs after SIGKILL",
                              EXIT_COMMAND_FAILED)
