"""Writing kernel interface files: /proc, /sys and cgroupfs alike.

One ``write(2)`` and no O_CREAT: a missing interface file then fails with
ENOENT (the feature or controller is absent) instead of silently creating a
plain file, and the kernel sees the whole value at once (it parses every
write on its own).  Used by the supervisor's cgroup managers and by the
container's init (sysctls, oom_score_adj, security labels, cgroup moves).
"""
from __future__ import annotations

import os


def write_file(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
