"""Writing kernel interface files: /proc, /sys and cgroupfs alike.

One ``write(2)`` and no O_CREAT: a missing interface file then fails with
ENOENT (the feature or controller is absent) instead of silently creating a
plain file, and the kernel sees the whole value at once (it parses every
write on its own).  Used by the supervisor's cgroup managers and by the
container's init (sysctls, oom_score_adj, security labels, cgroup moves).
And removing cgroup directories that are empty, the usual end of one (and
of the parents a creation made for it).
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from collections.abc import Iterable


def write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def removed_if_empty(directories: Iterable[str]) -> bool:
    """One rmdir per directory, in order; True if that removed them all
    (a missing one counts as removed), False at the first that stays: a
    cgroup rmdir succeeds only when no task and no sub-cgroup is left.
    The cgroup managers' first try (Manager.removed_if_empty) and delete's
    before it loads the cgroups package (lifecycle.destroy)."""
    for directory in directories:
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


def remove_parents_if_unused(directories: Iterable[str]) -> None:
    """rmdir each of ``directories`` (parents a creation made, deepest
    first) that is empty.

    One another container still uses (EBUSY, ENOTEMPTY: a cgroup in it) is
    left to the last of them to remove; one already gone (ENOENT) was
    removed by another.  No EBUSY retries: a cgroup with children stays
    busy.  A concurrent creation under the same parent whose mkdir loses
    to this rmdir makes the chain again (Manager.make_chain).
    """
    for directory in directories:
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            continue
        except OSError as err:
            import errno  # here: only a shared parent's end pays for it

            if err.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
                raise
