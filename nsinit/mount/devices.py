"""Device nodes, /dev symlinks, /dev/ptmx and /dev/console in the rootfs.

Runs after ``mount_all`` (so /dev is the container's tmpfs) and before
``pivot_to_rootfs`` (the console and, in a user namespace, the host's device
nodes are bound from host paths).  Every path is opened inside the rootfs
with ``open_in_root``; nothing is made through a host path string.
"""
from __future__ import annotations

import os
import stat

from nsinit import _native
from nsinit.console import close_fds
from nsinit.errors import NsinitError, SyscallError
from nsinit.mount.flags import MS_BIND
from nsinit.mount.paths import components, fd_path, inside, open_in_root
from nsinit.mount.rootfs import open_destination, open_root, rootfs_path

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.config.model import Config, DeviceConfig

_NODE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

# Links every container expects in /dev (2014 nsinit, mount/nodes + init.go).
_DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)


def create_devices(config: Config, console_fd: int | None) -> None:
    """Make ``config.devices``, the /dev links, /dev/ptmx and /dev/console."""
    rootfs = rootfs_path(config)
    root_fd = open_root(rootfs)
    try:
        userns = config.has_namespace("NEWUSER")
        # umask 0: file_mode is what the config asks for, exactly.
        old_umask = os.umask(0)
        # The directories the nodes go in, each opened once: making a node
        # changes no path's resolution (a bind of a host node, which does,
        # opens its own destination).
        parents: dict[str, int] = {}
        try:
            for device in config.devices:
                # mknod of a FIFO needs no privilege; of a device node it is
                # refused in any user namespace but the initial one.
                if userns and device.type != "p":
                    bind_host_node(rootfs, root_fd, device.path)
                else:
                    make_node(root_fd, device, parents)
        finally:
            os.umask(old_umask)
            close_fds(list(parents.values()))
        make_dev_links(root_fd)
        if console_fd is not None:
            bind_console(rootfs, root_fd, console_fd)
    finally:
        os.close(root_fd)


def make_node(root_fd: int, device: DeviceConfig, parents: dict[str, int]) -> None:
    """mknod ``device.path`` inside the root and give it to uid:gid.

    ``parents``: directory fds already open, by their path in the root; the
    node's is added to it (and left open, for the caller to close)."""
    kind = _NODE_TYPES.get(device.type)
    if kind is None:
        raise NsinitError("mount", f"device {device.path}: unknown type {device.type!r} "
                                   "(expected c, b or p)")
    parent, name = _split(device.path)
    mode = (device.file_mode & 0o7777) | kind
    rdev = 0 if kind == stat.S_IFIFO else os.makedev(device.major, device.minor)
    shown = inside(device.path)
    dir_fd = parents.get(parent)
    if dir_fd is None:
        dir_fd = parents[parent] = open_in_root(root_fd, parent, create_dir=True)
    try:
        os.mknod(name, mode, rdev, dir_fd=dir_fd)
    except FileExistsError:
        # The image (or a duplicate entry) has something there; a stale or
        # wrong node (say a regular file at /dev/null) must not survive.
        _call("unlink", shown, os.unlink, name, dir_fd=dir_fd)
        _call("mknod", shown, os.mknod, name, mode, rdev, dir_fd=dir_fd)
    except OSError as err:
        raise SyscallError.of(err, "mknod", shown) from None
    _call("chown", shown, os.chown, name, device.uid, device.gid, dir_fd=dir_fd,
          follow_symlinks=False)


def bind_host_node(rootfs: str, root_fd: int, path: str) -> None:
    """Bind the host's node at ``path`` over an empty file in the rootfs.

    In a user namespace mknod is refused (EPERM) for every device, so the
    container gets the host's node itself, which the host already controls
    access to.
    """
    host = inside(path)
    if not os.path.exists(host):
        raise NsinitError("mount", f"device {host}: in a user namespace device nodes are "
                                   "bind-mounted from the host, and the host has none there")
    fd = open_destination(rootfs, root_fd, path, create_file=True)
    try:
        _native.mount(host, fd_path(fd), None, MS_BIND, label=host)
    finally:
        os.close(fd)


def make_dev_links(root_fd: int) -> None:
    """/dev/ptmx -> pts/ptmx, /dev/fd and stdio links, /dev/core if /proc/kcore exists."""
    dev_fd = open_in_root(root_fd, "/dev", create_dir=True)
    try:
        # The container's devpts is mounted with newinstance; its own ptmx is
        # pts/ptmx.  A /dev/ptmx node would open the host's pty instance.
        try:
            os.unlink("ptmx", dir_fd=dev_fd)
        except FileNotFoundError:
            pass  # nothing to replace
        except OSError as err:
            raise SyscallError.of(err, "unlink", "/dev/ptmx") from None
        _call("symlink", "/dev/ptmx", os.symlink, "pts/ptmx", "ptmx", dir_fd=dev_fd)
        links = list(_DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):  # same kernel: the host's answer is the container's
            links.append(("core", "/proc/kcore"))
        for name, target in links:
            try:
                os.symlink(target, name, dir_fd=dev_fd)
            except FileExistsError:
                pass  # the image provides it (/dev not a tmpfs); keep theirs, as nsinit did
            except OSError as err:
                raise SyscallError.of(err, "symlink", f"/dev/{name}") from None
    finally:
        os.close(dev_fd)


def bind_console(rootfs: str, root_fd: int, console_fd: int) -> None:
    """Bind the pty slave (already open as ``console_fd``) onto /dev/console."""
    fd = open_destination(rootfs, root_fd, "/dev/console", create_file=True)
    try:
        # Through /proc/self/fd: the slave's path may not be reachable by name
        # (another devpts instance), the open fd always is.
        _native.mount(fd_path(console_fd), fd_path(fd), None, MS_BIND, label="/dev/console")
    finally:
        os.close(fd)


def _split(path: str) -> tuple[str, str]:
    names = components(path)
    if not names or names[-1] == "..":
        raise NsinitError("mount", f"device path {path!r} does not name a file")
    return "/".join(names[:-1]), names[-1]


def _call(syscall: str, shown: str, func, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """Run an os function; an OSError names the syscall and the container path."""
    try:
        func(*args, **kwargs)
    except OSError as err:
        raise SyscallError.of(err, syscall, shown) from None
