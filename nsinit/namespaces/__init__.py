"""Namespace flags, user-namespace maps, and entering existing namespaces.

Creation itself is one clone() in nsinit._native; this module holds the
policy around it: which flags, which namespaces to join by path, the
uid/gid maps, and the order a join must follow.
"""
from __future__ import annotations

import os

from nsinit import _native
from nsinit.config.names import NAMESPACE_CLONE_FLAGS, NAMESPACE_PROC_FILES
from nsinit.errors import SyscallError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Iterable, Sequence

    from nsinit.config.model import IdMap

CLONE_FLAGS: dict[str, int] = NAMESPACE_CLONE_FLAGS
PROC_NAMES: dict[str, str] = NAMESPACE_PROC_FILES  # file names under /proc/PID/ns/

# Order for setns when joining: the user namespace first, because it grants
# the capabilities needed to enter the others it owns; mnt last, because once
# inside it the /proc paths of the other namespace files may no longer be
# reachable (we open all fds up front anyway).  pid and time only take effect
# for children, hence the fork after the join.
JOIN_ORDER: tuple[str, ...] = ("NEWUSER", "NEWIPC", "NEWUTS", "NEWNET", "NEWPID",
                               "NEWCGROUP", "NEWTIME", "NEWNS")

# Namespaces that a process cannot move itself into, only its children.
FOR_CHILDREN_ONLY = ("NEWPID", "NEWTIME")


def flags_for(names: Iterable[str]) -> int:
    flags = 0
    for name in names:
        flags |= CLONE_FLAGS[name]
    return flags


def namespace_paths(pid: int, names: Iterable[str]) -> dict[str, str]:
    return {name: f"/proc/{pid}/ns/{PROC_NAMES[name]}" for name in names}


def namespace_inodes(pid: int, names: Iterable[str]) -> dict[str, int]:
    return {name: os.stat(f"/proc/{pid}/ns/{PROC_NAMES[name]}").st_ino for name in names}


def open_namespaces(paths: dict[str, str]) -> dict[str, int]:
    """Open every namespace file before entering any: after setns into a
    mount namespace the host paths may not exist any more."""
    fds: dict[str, int] = {}
    try:
        for name, path in paths.items():
            fds[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        close_all(fds.values())
        raise
    return fds


def close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        os.close(fd)


def enter_namespaces(fds: dict[str, int], names: Sequence[str] = JOIN_ORDER) -> None:
    """setns into each opened namespace, in JOIN_ORDER."""
    for name in names:
        fd = fds.get(name)
        if fd is not None:
            _native.setns(fd, CLONE_FLAGS[name], label=PROC_NAMES[name])


def write_id_maps(pid: int, uid_maps: Sequence[IdMap], gid_maps: Sequence[IdMap]) -> None:
    """Write /proc/PID/{gid,uid}_map for a child in a new user namespace.

    Entries have container_id, host_id and size.  We write as host root, so
    setgroups stays allowed and the container's root may call setgroups().
    A plain user writes only their own id, or has newuidmap write the rest
    (nsinit/rootless.py).
    """
    if os.geteuid() != 0:
        from nsinit import rootless

        rootless.write_id_maps(pid, uid_maps, gid_maps)
        return
    _write_map(f"/proc/{pid}/gid_map", gid_maps)
    _write_map(f"/proc/{pid}/uid_map", uid_maps)


def _write_map(path: str, entries: Sequence[IdMap]) -> None:
    write_proc_file(path, map_text(entries))


def map_text(entries: Sequence[IdMap]) -> str:
    """A uid_map/gid_map as the kernel reads it: one "inside outside count" line each."""
    return "".join(f"{e.container_id} {e.host_id} {e.size}\n" for e in entries)


def write_proc_file(path: str, text: str) -> None:
    """One write(2): the kernel takes a map (and setgroups) in one write only."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    except OSError as err:
        raise SyscallError.of(err, "write", path) from None
    finally:
        os.close(fd)


class ParentNamespaces:
    """Enter pid/time namespaces *for our children* around the clone.

    A NEWPID or NEWTIME namespace given by path cannot be entered by the
    container's init itself (setns on them only affects later children), so
    the supervisor enters them just for the clone and returns to its own
    right after.
    """

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = {n: p for n, p in paths.items() if n in FOR_CHILDREN_ONLY}
        self.saved: dict[str, int] = {}

    def __enter__(self) -> "ParentNamespaces":
        if not self.paths:
            return self
        own = {n: f"/proc/self/ns/{PROC_NAMES[n]}_for_children" for n in self.paths}
        self.saved = open_namespaces(own)
        targets = open_namespaces(self.paths)
        try:
            enter_namespaces(targets, FOR_CHILDREN_ONLY)
        except OSError:
            self.__exit__()
            raise
        finally:
            close_all(targets.values())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            enter_namespaces(self.saved, FOR_CHILDREN_ONLY)
        finally:
            close_all(self.saved.values())
            self.saved = {}


class PidfdNamespaces(ParentNamespaces):
    """Like ParentNamespaces, but the target is the process behind ``pidfd``
    (setns(2) accepts a pidfd since Linux 5.8)."""

    def __init__(self, pidfd: int, kinds: Sequence[str]) -> None:
        super().__init__({})
        self.pidfd = pidfd
        self.kinds = [k for k in kinds if k in FOR_CHILDREN_ONLY]

    def __enter__(self) -> "PidfdNamespaces":
        if not self.kinds:
            return self
        own = {n: f"/proc/self/ns/{PROC_NAMES[n]}_for_children" for n in self.kinds}
        self.saved = open_namespaces(own)
        try:
            _native.setns(self.pidfd, flags_for(self.kinds))
        except OSError:
            self.__exit__()
            raise
        return self


def enter_with_pidfd(pidfd: int, flags: int) -> None:
    """Enter the namespaces in ``flags`` of the process behind ``pidfd`` at once."""
    if flags:
        _native.setns(pidfd, flags)
