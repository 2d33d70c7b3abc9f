"""Resolving paths inside the container's rootfs.

A rootfs is an untrusted tree: the image decides where its symlinks point.
``/etc -> /`` or ``a -> ../../..`` inside the rootfs must mean "the rootfs's
own /", never the host's, or a mount destination chosen by the image could
put a mount (or a device node) on the host (moby PR #5778; the 2015
re-resolve-after-every-mount fix, runc 3c25c9b9c).

``open_in_root`` lets the kernel do that resolution: ``openat2`` with
RESOLVE_IN_ROOT treats the root fd as "/" for every absolute symlink and every
"..", and RESOLVE_NO_MAGICLINKS refuses ``/proc/*/fd``-style links that could
jump anywhere.  What it returns is an O_PATH fd, and the mount steps mount
onto ``/proc/self/fd/N`` of it, so the kernel mounts on exactly the inode that
was checked.  ``resolve_in_root`` is the same rule computed in Python, for
messages and tests only: its answer is a string, and a string can be raced.
"""
from __future__ import annotations

import errno
import os
import stat

from nsinit import _native
from nsinit.errors import NsinitError, SyscallError

# The kernel's own limit (MAXSYMLINKS) on symlinks followed in one lookup.
MAX_SYMLINKS = 40

_RESOLVE = _native.RESOLVE_IN_ROOT | _native.RESOLVE_NO_MAGICLINKS
_O_PATH = os.O_PATH | os.O_CLOEXEC
_DIR_MODE = 0o755
_FILE_MODE = 0o644


def components(path: str) -> list[str]:
    """The names in ``path``, without empty and "." parts; ".." is kept."""
    return [part for part in path.split("/") if part not in ("", ".")]


def inside(path: str) -> str:
    """``path`` as an absolute, lexically clean path inside a root."""
    return "/" + "/".join(components(path))


def fd_path(fd: int) -> str:
    """The magic link that names exactly the file ``fd`` refers to."""
    return f"/proc/self/fd/{fd}"


def resolve_in_root(root: str, path: str) -> str:
    """The host path that ``path`` names when ``root`` is "/".

    Symlinks are followed as the kernel would inside a chroot at ``root``: an
    absolute target restarts at ``root`` and ".." at ``root`` stays there, so
    the answer is always ``root`` or below it.  Missing components are kept
    as written.  Raises ``OSError(ELOOP)`` after MAX_SYMLINKS links.
    """
    root = os.path.abspath(root)
    pending = components(path)
    resolved: list[str] = []
    links = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, name)
        try:
            info = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            # Nothing there (yet): the rest of the path is taken as written.
            resolved.append(name)
            continue
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), inside(path))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = components(target) + pending
    return os.path.join(root, *resolved)


def open_in_root(root_fd: int, path: str, *, create_dir: bool = False,
                 create_file: bool = False) -> int:
    """An O_PATH fd of ``path`` resolved inside the root that ``root_fd`` opens.

    With ``create_dir`` missing components are made as 0755 directories; with
    ``create_file`` the last one is made as an empty 0644 file.  Each is made
    with mkdirat/openat relative to its parent's fd, never through a host path
    string.  A dangling symlink on the way is created where it points, inside
    the root.  The caller closes the fd.
    """
    if create_dir and create_file:
        raise ValueError("open_in_root: create_dir and create_file exclude each other")
    try:
        fd = _open(root_fd, path)
    except OSError as err:
        if err.errno == errno.ENOTDIR:
            raise _not_a_directory(root_fd, path) from None
        if err.errno != errno.ENOENT or not (create_dir or create_file):
            raise
        fd = _create(root_fd, path, create_file)
    try:
        _check_kind(fd, path, create_dir, create_file)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open(root_fd: int, path: str) -> int:
    rel = "/".join(components(path)) or "."
    return _native.openat2(root_fd, rel, _O_PATH, _RESOLVE)


def _check_kind(fd: int, path: str, want_dir: bool, want_file: bool) -> None:
    if want_dir:
        check_directory(fd, path)
    elif want_file and stat.S_ISDIR(os.fstat(fd).st_mode):
        raise NsinitError("mount", f"{inside(path)} is a directory in the rootfs, "
                                   "but a file is mounted there")


def check_directory(fd: int, path: str) -> None:
    """Refuse ``fd`` (of ``path``) unless it is a directory."""
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        raise NsinitError("mount", f"{inside(path)} exists in the rootfs and is not a directory")


def _create(root_fd: int, path: str, want_file: bool) -> int:
    todo = path
    for _ in range(MAX_SYMLINKS + 1):
        result = _create_walk(root_fd, todo, want_file)
        if isinstance(result, int):
            return result
        todo = result  # a dangling symlink: create where it points instead
    raise SyscallError(errno.ELOOP, "create", inside(path))


def _create_walk(root_fd: int, path: str, want_file: bool) -> int | str:
    """Open ``path`` one component at a time, making what is missing.

    Returns the O_PATH fd of the last component, or, when a component is a
    symlink to something that does not exist, the path rewritten through that
    symlink so the caller can start over with it.
    """
    names = components(path)
    if not names:
        return _open(root_fd, ".")
    parent_fd: int | None = None
    try:
        for i, name in enumerate(names):
            prefix = "/".join(names[: i + 1])
            try:
                fd = _open(root_fd, prefix)
            except OSError as err:
                if err.errno == errno.ENOTDIR:
                    raise _not_a_directory(root_fd, path, names[:i]) from None
                if err.errno != errno.ENOENT:
                    raise
                dir_fd = root_fd if parent_fd is None else parent_fd
                last = i == len(names) - 1
                if not _make(dir_fd, name, "/" + prefix, want_file and last):
                    target = _readlink(dir_fd, name, "/" + prefix)
                    base = [] if target.startswith("/") else names[:i]
                    return "/".join([*base, *components(target), *names[i + 1:]])
                # Re-resolve from the root rather than trusting the new name.
                fd = _open(root_fd, prefix)
            if parent_fd is not None:
                os.close(parent_fd)
            parent_fd = fd
    except BaseException:
        if parent_fd is not None:
            os.close(parent_fd)
        raise
    assert parent_fd is not None
    return parent_fd


def _make(dir_fd: int, name: str, shown: str, as_file: bool) -> bool:
    """Create ``name`` in ``dir_fd``; False if something is already there.

    The mode is set with fchmod after creation so the caller's umask (0 while
    device nodes are made, 022 or anything else otherwise) does not change it.
    O_NOFOLLOW: the fd we chmod must be the entry we just made.
    """
    try:
        if as_file:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, _FILE_MODE, dir_fd=dir_fd)
            mode = _FILE_MODE
        else:
            os.mkdir(name, _DIR_MODE, dir_fd=dir_fd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dir_fd)
            mode = _DIR_MODE
    except FileExistsError:
        return False
    except OSError as err:
        call = "open" if as_file else "mkdir"
        raise SyscallError.of(err, call, shown) from None
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def _readlink(dir_fd: int, name: str, shown: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as err:
        # EINVAL: not a symlink after all, so something raced us; say so.
        raise SyscallError.of(err, "readlink", shown) from None


def _not_a_directory(root_fd: int, path: str, parent: list[str] | None = None) -> NsinitError:
    """The clear error for a path that runs through a non-directory."""
    if parent is None:
        parent = _first_non_directory(root_fd, components(path))
    where = inside("/".join(parent)) if parent is not None else "a component"
    return NsinitError("mount", f"{inside(path)}: {where} in the rootfs is not a directory")


def _first_non_directory(root_fd: int, names: list[str]) -> list[str] | None:
    for i in range(1, len(names)):
        try:
            fd = _open(root_fd, "/".join(names[:i]))
        except OSError:
            return None
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                return names[:i]
        finally:
            os.close(fd)
    return None
