"""Creation with nobody supervising: what differs from ``nsinit exec``'s.

The steps are _Creation's (nsinit/container.py) with ``detached`` set:
the init's stdio are the caller's own fds 0-2 (no relay: no nsinit process
stays to relay), it does not die with its creator, and after its last setup
step it waits on the exec fifo (nsinit/lifecycle/start.py) instead of
exec'ing.  Once it waits, the creation hands it over: the caller keeps a
child (the init), nsinit keeps nothing (no fd, no signal handler, no lock).
"""
from __future__ import annotations

import os

from nsinit import console, state, sync
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Callable

    from nsinit.config.model import Config
    from nsinit.container import _Creation
    from nsinit.lifecycle.launch import _Launch

_STD_NAMES = ("stdin", "stdout", "stderr")


def detached_stdio(asked_tty: bool | None, configured_tty: bool | None,
                   warn: Callable[[str], None]) -> console.Stdio:
    """The caller's fds 0-2, as they are, except a terminal.

    A detached container outlives the nsinit that could relay a terminal,
    and it must never hold the host's: from it, the container could read
    what the user types into their shell afterwards (and, with
    CAP_SYS_ADMIN, type into it with TIOCSTI).  So a terminal fd becomes
    /dev/null, said in one warning; a pty of the container's own needs a
    console socket to hand its master to someone (nsinit-runc's job).
    """
    if asked_tty or (asked_tty is None and configured_tty):
        raise NsinitError("tty", "a detached container cannot have a terminal here: its pty would need a "
                                 "console socket to go to (run with -T, or without --detach)")
    terminals = [fd for fd in (0, 1, 2) if _isatty(fd)]
    if not terminals:
        return console.Stdio()
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    warn(f"{', '.join(_STD_NAMES[fd] for fd in terminals)} of nsinit "
         f"{'is a terminal' if len(terminals) == 1 else 'are terminals'}: the detached container gets "
         "/dev/null there, never the host's terminal (redirect to a file or pipe to keep its output)")
    fds = tuple(null if fd in terminals else fd for fd in (0, 1, 2))
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
    sync.send(creation.sync_fd, go=True)
    creation.read_child_messages(until="created")
    # read_record, not load_state: a plain user cannot look at the
    # namespaces of a non-dumpable init (and this one is ours, live).
    record = state.read_record(state.private_dir(creation.container.root))
    if record is None or record.init_pid != creation.pid:
        raise NsinitError("state", "the container's record went away while it was being created")
    record.status = "created"
    state.update_state(creation.container.root, record)
    keep_child(creation)


def keep_child(launch: "_Launch") -> None:
    """The caller keeps the child: give the Process its pid, and make the
    launch's undo leave the child alone."""
    launch.process.pid = launch.pid
    launch.keep_child = True
