"""The exec trampoline: the container's command is exec'd from a sealed copy of native/trampoline.c.

The container's init and joined processes are forks of nsinit's Python.  If
they exec'd the command themselves, ``/proc/self/exe`` at that moment would
be the host's interpreter: a command ``/proc/self/exe`` or a
``#!/proc/self/exe`` script would run it inside the container, with an fd
on the host binary to rewrite once nothing runs it (CVE-2019-5736, here for
Python rather than runc).  So the child execs a tiny static program from a
memfd sealed against every change, and that program execs the command: the
only binary the container can reach through /proc/self/exe is the sealed
copy.  runc has done the same (runc-dmz, and a sealed memfd of itself).

The memfd is made in the child before it leaves the host's files (pivot_root
or setns), while the supervisor does its own part of the setup.
"""
from __future__ import annotations

import errno
import fcntl
import os

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import NoReturn

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_trampoline")
MEMFD_NAME = "nsinit-exec"
# Linux 6.3+: with vm.memfd_noexec set, a memfd is executable only if made so.
MFD_EXEC = 0x0010
SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
MAX_SIZE = 1 << 20  # the real one is about 1 KB


def sealed_copy() -> int:
    """A close-on-exec memfd holding the trampoline, sealed: no one can change it."""
    image = _read_trampoline()
    try:
        fd = os.memfd_create(MEMFD_NAME, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | MFD_EXEC)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        # A kernel before MFD_EXEC (6.3), where every memfd is executable.
        fd = os.memfd_create(MEMFD_NAME, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(image)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_trampoline() -> bytes:
    try:
        fd = os.open(PATH, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise NsinitError("exec", f"{PATH} is missing (python3 native/build_clone.py builds it)") from None
    try:
        # Its size and one byte, not MAX_SIZE: os.read allocates all it is
        # asked for first (a MiB is an mmap and a munmap, in the child).
        image = os.read(fd, min(os.fstat(fd).st_size + 1, MAX_SIZE))
    finally:
        os.close(fd)
    if image[:4] != b"\x7fELF":
        raise NsinitError("exec", f"{PATH} is not an ELF program (python3 native/build_clone.py builds it)")
    return image


def keep_report_fd(report_fd: int) -> None:
    """Let the sync socket through the trampoline's exec (see exec_through)."""
    os.set_inheritable(report_fd, True)


def exec_through(trampoline_fd: int, report_fd: int, path: str, args: list[str],
                 env: dict[str, str], own_procfs: bool = False) -> NoReturn:
    """Replace this process with the trampoline, which execs ``path``.

    ``report_fd`` must survive this exec (``keep_report_fd``, called before
    the seccomp filter, which may deny fcntl): the trampoline marks it
    close-on-exec again itself, so the command's exec closes it, and writes
    ``{"exec_errno": N}`` to it if that exec fails.
    """
    argv = [MEMFD_NAME, str(report_fd), path, *args]
    try:
        os.execve(trampoline_fd, argv, env)  # execveat(fd, "", AT_EMPTY_PATH)
    except OSError as err:
        # An allow-list seccomp filter (loaded just before this) may list
        # execve but not execveat.  The same memfd is reachable by path
        # through the container's own procfs: only with a mount namespace of
        # the container's is that procfs the one nsinit mounted, not a
        # directory of the image's.
        if not own_procfs:
            raise
        try:
            os.execve(f"/proc/self/fd/{trampoline_fd}", argv, env)
        except OSError:
            raise err from None
