"""mount(2)/umount2(2) flags for the mount steps.

The MS_* numbers come from ``nsinit.config.names``, the one table of kernel
constants that configs are parsed with, so a flag means the same number in
the config and in the mount call.  (Importing it costs nothing at run time:
the config package is loaded before the child is cloned.)  What only the
mount steps need -- groupings, MNT_DETACH, the statvfs mapping -- is here.
"""
from __future__ import annotations

from nsinit.config.names import (  # noqa: F401 - re-exported for the mount modules
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_MOVE,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_PROPAGATION,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

# A mount(2) call carrying any of these changes propagation instead of
# mounting, so they must never ride along with a new mount.
PROPAGATION_FLAGS = MS_PROPAGATION
# The flags that select *what kind* of mount(2) call this is.
OPERATION_FLAGS = MS_REMOUNT | MS_BIND | MS_MOVE | MS_REC | PROPAGATION_FLAGS
ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
# Per-mount-point flags that a bind mount ignores on creation and only takes
# through a second MS_REMOUNT|MS_BIND call.
BIND_REMOUNT_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NODIRATIME
                      | MS_NOSYMFOLLOW | ATIME_FLAGS)

MNT_DETACH = 2

# statvfs(3) f_flag bits (ST_*) and the MS_* flag each one reports.  Most are
# the same number; ST_RELATIME and ST_NOSYMFOLLOW are not.
STATVFS_TO_MS = (
    (0x0001, MS_RDONLY),
    (0x0002, MS_NOSUID),
    (0x0004, MS_NODEV),
    (0x0008, MS_NOEXEC),
    (0x0400, MS_NOATIME),
    (0x0800, MS_NODIRATIME),
    (0x1000, MS_RELATIME),
    (0x2000, MS_NOSYMFOLLOW),
)
