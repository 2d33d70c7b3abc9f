"""The container's stdio: a pty when asked for, pipes when the host's stdio is a terminal.

A container must never hold a host terminal: with it, TIOCSTI could type
commands into the user's shell, and job-control signals would cross the
boundary.  So a terminal on the host side is always relayed, never passed:
through a pty of the container's own (``tty``), or through pipes.
Plain files and pipes (scripts, CI) pass straight through at no cost.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat

from nsinit import _native
from nsinit.errors import NsinitError
from nsinit.record import field, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Callable

TIOCSCTTY = 0x540E
TIOCSPTLCK = 0x40045431  # unlockpt()
TIOCGPTPEER = 0x5441     # open the slave of a master fd, without a path
PTMX = "dev/pts/ptmx"     # inside the container's root
DEVPTS_SUPER_MAGIC = 0x1CD1
PTMX_RDEV = (5, 2)
# termios's, spelt out: the child sizes its pty with them (after pivot_root,
# where nothing can be imported), and termios and select are imported only
# with a terminal or a relay (~0.3 ms of every start otherwise).
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414


@record
class Stdio:
    """What the child dups onto 0, 1, 2, and what the parent relays."""

    child_fds: tuple[int, int, int] = (0, 1, 2)
    console_fd: int | None = None            # pty slave, child side
    master_fd: int | None = None             # pty master, parent side
    relays: list[tuple[int, int]] = field(default_factory=list)  # (read end, write end) in the parent
    child_only: list[int] = field(default_factory=list)          # close in the parent after clone
    parent_only: list[int] = field(default_factory=list)         # close in the child after clone
    saved_termios: list | None = None  # type: ignore[type-arg]
    # The pty is made by the child in the container's own devpts, so that
    # `tty` says /dev/pts/0 inside and the host's devpts never enters it.
    pty_in_container: bool = False
    # Detached with a terminal (nsinit/lifecycle/console.py): the master
    # goes to this AF_UNIX socket instead of a relay, sized so.
    console_socket: str = ""
    window_size: tuple[int, int] | None = None   # (rows, columns)

    @property
    def needs_relay(self) -> bool:
        return bool(self.relays)


def ensure_std_fds() -> None:
    """Open /dev/null on any of fds 0, 1, 2 that is closed.

    Called before nsinit opens anything: otherwise its own fds (the lock,
    the sync socket) would take those numbers and be handed to the
    container as its stdio.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open("/dev/null", os.O_RDWR)  # the lowest free number: fd itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # it is stdio: it must survive execve


def prepare_stdio(use_tty: bool, container_devpts: bool = True, *,
                  given: tuple[int | None, int | None, int | None] | None = None) -> Stdio:
    """Parent side, before clone.  With ``container_devpts`` the pty is
    opened later by the child (see open_container_pty); without a mount
    namespace there is no devpts of the container's, so a host pty is used.
    ``given``: fds a Process names for its stdio, passed as they are
    (nsinit/process_settings.py checked they are no terminals)."""
    if use_tty:
        from nsinit.process_settings import refuse_with_tty

        refuse_with_tty(given)
    if use_tty and container_devpts:
        return Stdio(pty_in_container=True)
    if use_tty:
        return _prepare_pty()
    return _prepare_passthrough(given or (None, None, None))


def open_container_pty(root_fd: int, window_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """In the child, after the container's devpts is mounted: (master, slave).

    ``root_fd`` is the container's root: its dev/pts/ptmx is opened with
    the path resolved inside it, never through the host's tree.  The pty
    gets ``window_size`` (rows, columns), else the size of nsinit's stdin.
    """
    master = open_devpts_ptmx(root_fd)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
        # Here, not only when the supervisor adopts the master: the child
        # does not wait for that and may exec first, and a command started
        # on a 0x0 pty (stty size, a shell's line editor) sees no size.
        # Fd 0 is still the host's stdin: the pty replaces it later.
        if window_size is not None:
            set_window_size(master, window_size)
        else:
            _copy_window_size(0, master)
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        os.close(master)
        raise
    return master, slave


def open_devpts_ptmx(root_fd: int) -> int:
    """The container's /dev/pts/ptmx, opened read-write only once it is known
    to be a devpts ptmx.

    By host path, an image whose /dev (or a parent) is a symlink chain would
    hand us a host pty, or any host file opened read-write as root.
    RESOLVE_IN_ROOT keeps every symlink and ".." inside the root (as the
    mounts were resolved), magic links are refused, and the node is checked
    through an O_PATH fd first: on a devpts, opening can only make a pty,
    where any other device node could act on being opened.
    """
    probe = _open_in_root(root_fd, os.O_PATH | os.O_CLOEXEC)
    try:
        seen = _check_ptmx(probe)
        master = _open_in_root(root_fd, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(probe)
    try:
        if _check_ptmx(master) != seen:
            raise _not_ptmx("was replaced while it was opened")
    except BaseException:
        os.close(master)
        raise
    return master


def _open_in_root(root_fd: int, flags: int) -> int:
    try:
        return _native.openat2(root_fd, PTMX, flags,
                               _native.RESOLVE_IN_ROOT | _native.RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _not_ptmx("leads through a /proc magic link or a symlink loop") from None
        raise


def _check_ptmx(fd: int) -> tuple[int, int]:
    """(st_dev, st_ino) of ``fd`` if it is a ptmx on a devpts, else NsinitError."""
    st = os.fstat(fd)
    if _native.fstatfs_type(fd) != DEVPTS_SUPER_MAGIC:
        raise _not_ptmx("is not on a devpts filesystem")
    if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != PTMX_RDEV:
        raise _not_ptmx("is not the ptmx device (5:2)")
    return st.st_dev, st.st_ino


def _not_ptmx(why: str) -> NsinitError:
    return NsinitError("console", f"/{PTMX} in the container {why}; refusing it as the console")


def use_child_pty(stdio: Stdio, slave: int) -> None:
    """In the child: the slave from open_container_pty becomes fds 0-2 and the console."""
    stdio.console_fd = slave
    stdio.child_fds = (slave, slave, slave)


def adopt_master(stdio: Stdio, master: int) -> None:
    """In the parent: relay through the master the child sent us (or,
    detached, hand it to the console socket and keep no copy)."""
    if stdio.console_socket:
        from nsinit.lifecycle.console import hand_master_to_socket

        hand_master_to_socket(stdio, master)
        return
    stdio.master_fd = master
    stdio.parent_only.append(master)
    stdio.relays = [(0, master), (master, 1)]
    _copy_window_size(0, master)


def _prepare_pty() -> Stdio:
    master, slave = os.openpty()
    os.set_inheritable(slave, False)
    stdio = Stdio(child_fds=(slave, slave, slave), console_fd=slave, master_fd=master,
                  child_only=[slave], parent_only=[master])
    _copy_window_size(0, master)
    stdio.relays = [(0, master), (master, 1)]
    return stdio


def _prepare_passthrough(given: tuple[int | None, int | None, int | None]) -> Stdio:
    stdio = Stdio()
    fds = [0, 1, 2]
    for fd in (0, 1, 2):
        mine = given[fd]
        if mine is not None:
            fds[fd] = mine
            continue
        if not _isatty(fd):
            continue
        r, w = os.pipe2(os.O_CLOEXEC)
        if fd == 0:
            fds[0] = r
            stdio.relays.append((0, w))
            stdio.child_only.append(r)
            stdio.parent_only.append(w)
        else:
            fds[fd] = w
            stdio.relays.append((r, fd))
            stdio.child_only.append(w)
            stdio.parent_only.append(r)
    stdio.child_fds = (fds[0], fds[1], fds[2])
    return stdio


def stdin_is_terminal() -> bool:
    return _isatty(0)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def set_window_size(fd: int, size: tuple[int, int]) -> None:
    """TIOCSWINSZ: (rows, columns), no pixel sizes.  No struct: a joined
    process sizes its pty after setns, where nothing can be imported."""
    import sys  # built in: always loaded

    winsize = b"".join(n.to_bytes(2, sys.byteorder) for n in (*size, 0, 0))  # struct winsize: 4 shorts
    fcntl.ioctl(fd, TIOCSWINSZ, winsize)


def _copy_window_size(src: int, dst: int) -> None:
    if not _isatty(src):
        return
    size = fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8)
    fcntl.ioctl(dst, TIOCSWINSZ, size)


def attach_child_stdio(stdio: Stdio) -> None:
    """In the child: new session, the pty as controlling terminal, fds 0-2."""
    os.setsid()
    if stdio.console_fd is not None:
        fcntl.ioctl(stdio.console_fd, TIOCSCTTY, 0)
    for target, fd in enumerate(stdio.child_fds):
        if fd != target:
            os.dup2(fd, target)


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError as err:
            # EBADF: already closed by an earlier cleanup path.
            if err.errno != errno.EBADF:
                raise


def enter_raw_mode(stdio: Stdio) -> None:
    if stdio.master_fd is not None and _isatty(0):
        import termios
        import tty  # only with a terminal: not worth an import on every start

        stdio.saved_termios = termios.tcgetattr(0)
        tty.setraw(0)


def restore_terminal(stdio: Stdio) -> None:
    if stdio.saved_termios is not None:
        import termios  # loaded by enter_raw_mode

        termios.tcsetattr(0, termios.TCSADRAIN, stdio.saved_termios)
        stdio.saved_termios = None


def on_window_change(stdio: Stdio) -> None:
    if stdio.master_fd is not None:
        _copy_window_size(0, stdio.master_fd)


def relay(stdio: Stdio, wakeup_fd: int, child_exited: Callable[[], bool]) -> None:
    """Copy data between host and container fds until the container's side is done.

    ``wakeup_fd`` is the signal wakeup pipe: a SIGCHLD makes select return
    so we notice the exit even when no data flows.
    """
    import select  # only with a relay (the supervisor's, on the host)

    sources = {src: dst for src, dst in stdio.relays}
    container_side = {src for src in sources if src not in (0,)}
    # Until the container's side is done, or, when only the host's stdin is
    # relayed (-T, a terminal on stdin alone), until stdin ends or the init exits.
    while container_side or 0 in sources:
        readable, _, _ = select.select(list(sources) + [wakeup_fd], [], [], 1.0)
        if wakeup_fd in readable:
            _drain(wakeup_fd)
        for src in readable:
            if src == wakeup_fd:
                continue
            try:
                data = os.read(src, 65536)
            except OSError as err:
                # EIO from a pty master means every slave fd is closed.
                if err.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                _stop_source(stdio, sources, container_side, src)
                continue
            _write_all(sources[src], data)
        # The wakeup fd's byte (the SIGCHLD itself) is no data still to copy.
        if child_exited() and not [fd for fd in readable if fd != wakeup_fd]:
            break


def _stop_source(stdio: Stdio, sources: dict[int, int], container_side: set[int], src: int) -> None:
    dst = sources.pop(src)
    container_side.discard(src)
    if src == 0 and stdio.master_fd is None:
        os.close(dst)  # EOF on host stdin becomes EOF on the container's stdin pipe
        stdio.parent_only.remove(dst)
    elif src == 0 and stdio.master_fd is not None:
        # Send EOF the way a terminal would: ^D at the start of a line.
        _write_all(stdio.master_fd, b"\x04")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as err:
            if err.errno in (errno.EPIPE, errno.EIO):
                return  # the reader went away; nothing left to deliver
            raise
        view = view[n:]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
