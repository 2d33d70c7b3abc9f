"""runc's ``tmpcopyup``: a new tmpfs starts with a copy of the directory it covers.

podman asks for it for /tmp, /run and /var/tmp under ``--read-only``, so
that what the image put there is still there, writable.  The covered
directory is opened before the tmpfs goes over it; afterwards that fd still
reads the covered tree, and everything is copied by fd, never by path:
symlinks are recreated, never followed (an image's ``/tmp/x -> /etc/shadow``
stays a link), and every open has O_NOFOLLOW.  Owners, modes (set after the
owner: chown clears set-id bits) and times are kept; hard links become copies.
"""
from __future__ import annotations

import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


def open_covered(o_path_fd: int) -> int:
    """A readable fd of the directory at ``o_path_fd``, taken before a mount covers it."""
    # Through the fd's magic link, so no O_NOFOLLOW here (it would refuse the link itself).
    return os.open(f"/proc/self/fd/{o_path_fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def copy_tree(source_fd: int, target_fd: int) -> None:
    """Copy the entries of directory ``source_fd`` into directory ``target_fd``."""
    for name in os.listdir(source_fd):
        info = os.stat(name, dir_fd=source_fd, follow_symlinks=False)
        kind = stat.S_IFMT(info.st_mode)
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=target_fd)
            sub_source = os.open(name, _DIR_FLAGS, dir_fd=source_fd)
            try:
                sub_target = os.open(name, _DIR_FLAGS, dir_fd=target_fd)
                try:
                    copy_tree(sub_source, sub_target)
                finally:
                    os.close(sub_target)
            finally:
                os.close(sub_source)
        elif kind == stat.S_IFREG:
            _copy_file(name, source_fd, target_fd)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=source_fd), name, dir_fd=target_fd)
        elif kind == stat.S_IFSOCK:
            continue  # a socket file means nothing without its listener
        else:  # fifo, character or block device
            os.mknod(name, info.st_mode, info.st_rdev, dir_fd=target_fd)
        _copy_attributes(name, target_fd, info)


def _copy_file(name: str, source_fd: int, target_fd: int) -> None:
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source_fd)
    try:
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=target_fd)
        try:
            while os.sendfile(target, source, None, _CHUNK):
                pass
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_attributes(name: str, target_fd: int, info: os.stat_result) -> None:
    os.chown(name, info.st_uid, info.st_gid, dir_fd=target_fd, follow_symlinks=False)
    if not stat.S_ISLNK(info.st_mode):  # a symlink's mode means nothing (and lchmod is ENOTSUP)
        os.chmod(name, stat.S_IMODE(info.st_mode), dir_fd=target_fd)
    os.utime(name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=target_fd, follow_symlinks=False)
