"""``nsinit exec --init``: the host's static tini, bound read-only at /dev/init.

What ``docker run --init`` does: a PID 1 of a pid namespace ignores every
signal it has no handler for and must reap every orphan, which most
commands do not do.  tini does both and passes the command's exit status
through.  It is bound from the host (Debian's package ships a static build)
onto a file in the container's /dev tmpfs: nothing is written into the
rootfs, and the container cannot change the binary (read-only, nosuid).
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError
from nsinit.mount.flags import MS_NODEV, MS_NOSUID, MS_RDONLY
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
        mount_bind(rootfs, root_fd, host_path, INIT_PATH, MS_RDONLY | MS_NOSUID | MS_NODEV)
    finally:
        os.close(root_fd)
