"""``nsinit exec --init``: a copy of the host's static tini at /dev/init.

What ``docker run --init`` does: a PID 1 of a pid namespace ignores every
signal it has no handler for and must reap every orphan, which most
commands do not do.  tini does both and passes the command's exit status
through.  Debian's package ships a static build; it is copied onto the
container's /dev tmpfs and bound read-only over itself: nothing is written
into the rootfs.  Never the host's file itself: a read-only bind stops no
root holding CAP_SYS_ADMIN, who remounts it read-write and then chmods the
host's tini (setuid) or rewrites it once no process runs it -- through
/dev/init or /proc/1/exe, the CVE-2019-5736 class.  A sealed memfd cannot
be the bind's source (the kernel binds nothing from its internal mounts:
EINVAL), so the container gets a file of its own to spoil.
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError
from nsinit.mount.flags import MS_NODEV, MS_NOSUID, MS_RDONLY
from nsinit.mount.paths import fd_path, open_in_root
from nsinit.mount.rootfs import mount_bind, open_root, rootfs_path

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.config.model import Config

INIT_PATH = "/dev/init"   # where docker puts its init too
_CANDIDATES = ("/usr/bin/tini-static", "/usr/local/bin/tini-static")
_NO_TINI = "no static tini found: install the Debian package tini (apt-get install tini)"


def find_init() -> str:
    """Host side: a statically linked tini (the container has no libc for
    a dynamic one), at Debian's path or on PATH."""
    from nsinit.elf import is_static_elf  # host side only: the child never loads it

    on_path = [os.path.join(directory, name) for name in ("tini-static", "tini")
               for directory in os.environ.get("PATH", "").split(os.pathsep) if directory]
    for path in (*_CANDIDATES, *on_path):
        if os.path.isfile(path) and os.access(path, os.X_OK) and is_static_elf(path):
            return path
    raise NsinitError("--init", _NO_TINI)


def check_init_possible(config: Config) -> None:
    """Host side, before clone: /dev/init goes on the container's /dev tmpfs."""
    if not config.has_namespace("NEWNS"):
        raise NsinitError("--init", "needs a mount namespace (NEWNS) to bind the init into")
    if not any(m.destination == "/dev" and m.device == "tmpfs" for m in config.mounts):
        raise NsinitError("--init", "needs the tmpfs on /dev (of the default mounts): "
                                    f"{INIT_PATH} is put there, never into the rootfs")


def init_args(config: Config, args: list[str]) -> list[str]:
    """tini, then the command.  Without a pid namespace tini is not PID 1:
    -s makes it the subreaper of the command's orphans instead."""
    subreaper = [] if config.has_namespace("NEWPID") else ["-s"]
    return [INIT_PATH, *subreaper, "--", *args]


def bind_init(config: Config, host_path: str) -> None:
    """Child side, after the mounts and devices (/dev is the container's
    tmpfs by then), before pivot_root (``host_path`` is a host path)."""
    rootfs = rootfs_path(config)
    root_fd = open_root(rootfs)
    try:
        copy_fd = _copy_onto_dev(root_fd, host_path)
        try:
            mount_bind(rootfs, root_fd, fd_path(copy_fd), INIT_PATH, MS_RDONLY | MS_NOSUID | MS_NODEV)
        finally:
            os.close(copy_fd)
    finally:
        os.close(root_fd)


def _copy_onto_dev(root_fd: int, host_path: str) -> int:
    """An O_PATH fd of a new 0555 copy of ``host_path`` at /dev/init."""
    dev_fd = open_in_root(root_fd, os.path.dirname(INIT_PATH))
    try:
        name = os.path.basename(INIT_PATH)
        source = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o555, dir_fd=dev_fd)
            try:
                size = os.fstat(source).st_size
                while os.sendfile(target, source, None, size):
                    pass
            finally:
                os.close(target)  # before the exec: a file open for writing is ETXTBSY
        finally:
            os.close(source)
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev_fd)
    finally:
        os.close(dev_fd)
