"""Read a file only when it is a regular file, and only so much of it.

nsinit reads files that someone else may have made: container.json (a FIFO
there hung nsinit for good, ``/dev/zero`` read until MemoryError) and the
image's /etc/passwd and /etc/group (a FIFO hung create and join, a symlink
to /dev/zero ended in the OOM killer).  Issue 15.

The file type is checked before the open (a device node is never opened:
opening one can have effects, a watchdog arms itself), the open does not
block (O_NONBLOCK: a FIFO that appeared since opens at once), fstat checks
again what was opened, and the read stops one byte past the bound.

Runs in the container child after pivot_root too (identity imports it at
the top), so only the stdlib and ``nsinit._native`` are used.
"""
from __future__ import annotations

import os
import stat

from nsinit import _native

MiB = 1 << 20
_AT_FDCWD = -100
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class FileRefused(Exception):
    """The file exists but is not one nsinit reads; the text names it and why."""


def read_regular_file(path: str, limit: int, *, no_magic_links: bool = False) -> bytes:
    """The contents of the regular file ``path``, at most ``limit`` bytes.

    Raises FileRefused for anything else (and for a larger file), OSError
    when it cannot be opened (FileNotFoundError when it does not exist).
    ``no_magic_links``: refuse /proc/PID/fd/N-style links on the way
    (openat2 RESOLVE_NO_MAGICLINKS), which could lead to an fd of the host.
    """
    _check_regular(path, os.stat(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if no_magic_links:
        fd = _native.openat2(_AT_FDCWD, path, flags, _native.RESOLVE_NO_MAGICLINKS)
    else:
        fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        _check_regular(path, st)  # what was opened, if it changed since the stat
        if st.st_size > limit:
            raise FileRefused(_too_large(path, limit))
        chunks, size = [], 0
        # A read as large as the file and one byte more (to see a file that
        # grew), not a MiB: os.read allocates its whole size first, and a
        # MiB is an mmap and a munmap for container.json's few hundred bytes.
        want = st.st_size + 1
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, max(want - size, 4096), MiB))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused(_too_large(path, limit))  # grew while we read
    return b"".join(chunks)


def _check_regular(path: str, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
    raise FileRefused(f"{path}: not a regular file ({kind})")


def _too_large(path: str, limit: int) -> str:
    return f"{path}: larger than {limit // MiB} MiB, not read"
