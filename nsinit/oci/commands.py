"""The bodies of nsinit-runc's lifecycle commands: runc's CLI on the Factory.

Each command is a few library calls (nsinit/lifecycle/factory.py and the
Container API); what podman, conmon, containerd and go-runc send and read
is shared/reference/oci-clients.md.  Rules every command keeps:

- nothing on stderr on success: an engine passes that fd on as the
  container's stderr (create) or reads it as the error text (all);
- a failure is one NsinitError, which the CLI turns into one line on
  stderr and a JSON line in the --log;
- without a terminal the container's fds 0-2 are create's own, and
  nsinit-runc keeps no copy of them (it exits; nothing of it stays).

``load_container`` turns an id into the loaded container (every command
but create, run and spec).  Here: what an engine runs for every container
besides create (start, state, kill, delete); the other commands are in
modules of their own (nsinit/oci/cli.py's COMMAND_HOMES), which these
never load (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

import os

from nsinit.errors import ContainerNotExists, ContainerNotRunning, ContainerNotStopped, NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from nsinit.lifecycle.factory import Factory, FactoryContainer
    from nsinit.oci.cli import Globals


# --- id -> container ---------------------------------------------------------------

def factory_of(globals_: Globals) -> Factory:
    from nsinit.lifecycle.factory import Factory

    return Factory(globals_.root)


def load_container(globals_: Globals, container_id: str) -> FactoryContainer:
    """The container ``container_id`` of the state root (any status)."""
    return factory_of(globals_).load(container_id, warn=globals_.warn)


# --- start ------------------------------------------------------------

def cmd_start(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit.lifecycle.start import start_locked

    container = load_container(globals_, args["ID"])
    # The status read once, under the lock the start holds anyway.
    with container.locked():
        status, current = container.oci_status()
        if status != "created" or current is None:
            raise NsinitError("", f'cannot start container "{container.id}": it is {status}, not created')
        start_locked(container, current)  # and its poststart hooks
    return 0


# --- state ----------------------------------------------------------------------------------

def cmd_state(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    print(jsontext.dumps(load_container(globals_, args["ID"]).oci_state(), indent=2))
    return 0


def live_status(container: FactoryContainer) -> tuple[str, Any]:
    """(status, record) of a created, running or paused container; else
    runc's "container not running" (containerd matches those words)."""
    status, current = container.oci_status()
    if current is None or status in ("stopped", "creating"):
        raise_not_running(container, status)
    return status, current


def raise_not_running(container: FactoryContainer, status: str) -> NoReturn:
    raise ContainerNotRunning("", f'container "{container.id}" is {status}: container not running')


def require_live(container: FactoryContainer) -> Any:
    return live_status(container)[1]


# --- kill --------------------------------------------------------------------------------------

def cmd_kill(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import state
    from nsinit.container import parse_signal

    signum = parse_signal(args["SIGNAL"] or "SIGTERM")
    container = load_container(globals_, args["ID"])
    every = bool(args["--all"])
    # Under the lock: the pid is checked (start time, namespaces) and
    # signalled before anything else could take the id's record over.
    # At most LOOK_WAIT_SECONDS: a kill must work while a slow creation holds the lock.
    with container.locked(wait=state.LOOK_WAIT_SECONDS):
        status, current = container.oci_status()
        if every and status == "stopped":
            # runc's kill --all of a stopped container: what is left of it
            # (without a pid namespace, the init's end kills no other
            # process), else nothing to do, and no error.
            if current is not None:
                signal_leftovers(current, signum)
            return 0
        if current is None or status in ("stopped", "creating"):
            raise_not_running(container, status)   # runc's words
        container.signal(signum, all_processes=every, current=current)   # thaws a paused one after a SIGKILL
    return 0


def signal_leftovers(record: Any, signum: int) -> None:
    """Processes still in a stopped container's cgroups (its init is dead).
    The cgroups, not the namespaces: they stay until delete, and nothing but
    the container's own processes can be in them (a namespace's inode may
    be a new namespace's once the last process of the old one is gone)."""
    for pid in leftover_pids(record):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # exited since we listed it


def leftover_pids(record: Any) -> list[int]:
    """The processes in a stopped container's cgroups, its (zombie) init aside."""
    from nsinit.cgroups import fs

    pids = {pid for path in set(record.cgroup_paths.values()) if os.path.isdir(path)
            for pid in fs.procs_recursive(path)}
    pids.discard(record.init_pid)  # a zombie for its parent to reap
    return sorted(pids)


# --- delete --------------------------------------------------------------------------

def cmd_delete(globals_: Globals, args: dict[str, Any]) -> int:
    """runc's delete: a stopped or created container is removed (a created
    one's init killed first), a running or paused one only with --force;
    an unknown id with --force is no error (podman's cleanup, containerd's
    shim delete it twice)."""
    force = bool(args["--force"])
    try:
        container = load_container(globals_, args["ID"])
    except ContainerNotExists:
        if force:
            return 0
        raise
    def not_stopped(status: str) -> Exception:
        return ContainerNotStopped("", f'cannot delete container "{container.id}" that is not stopped: {status} '
                                       "(delete --force kills it)")

    # --force deletes whatever the status; without it a live one is refused,
    # decided on the record the delete reads.  A created one's init is
    # killed (runc's delete); then its poststop hooks.
    container.delete(force=True, refuse=None if force else not_stopped)
    return 0
