"""Writing kernel interface files: /proc, /sys and cgroupfs alike.

One ``write(2)`` and no O_CREAT: a missing interface file then fails with
ENOENT (the feature or controller is absent) instead of silently creating a
plain file, and the kernel sees the whole value at once (it parses every
write on its own).  Used by the supervisor's cgroup managers and by the
container's init (sysctls, oom_score_adj, security labels, cgroup moves).
And removing cgroup directories that are empty, the usual end of one.
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
