"""The init's stdio across a checkpoint.

What fds 0-2 of the container's init pointed at outside the container
(typically pipes to whoever started nsinit) cannot be dumped: criu dumps
one end of a pipe, and the other end lives in a process it does not dump.
So, as runc does, the targets of /proc/PID/fd/0..2 ("pipe:[INODE]") are
written beside the images at dump, and at restore each pipe is handed to
criu as an inherited fd: key "pipe:[INODE]", and an fd of criu's that is
the restoring nsinit's stdin, stdout or stderr, whichever it was.

A file the init has open from a mount outside its own mount namespace
(the host's /dev/null, a log file on the host) is the same problem: criu
can only name it, "file[MNT_ID:INODE]" (hex), declared external at dump;
at restore it reopens whatever fd is handed to it under that key.
"""
from __future__ import annotations

import os

from nsinit import jsontext
from nsinit.criu import DESCRIPTORS_FILE, CriuError

# Pipes and sockets whose peer is outside the container: criu needs
# them given back.  Anything else (a file inside the rootfs, the
# container's /dev/null) criu dumps and reopens by itself.
_INHERITED_PREFIXES = ("pipe:", "socket:", "file[")


def read_stdio_targets(pid: int) -> list[str]:
    """What fds 0-2 of ``pid`` are: "pipe:[INODE]", "socket:[INODE]",
    "file[MNT_ID:INODE]" for a file outside the container's mounts, a path
    otherwise, "" for a closed fd."""
    own_mounts = _mount_ids(pid)
    targets = []
    for fd in (0, 1, 2):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            targets.append("")  # closed in the container
            continue
        if target.startswith("/"):
            mnt_id = _fd_mount_id(pid, fd)
            if mnt_id not in own_mounts:
                target = f"file[{mnt_id:x}:{os.stat(f'/proc/{pid}/fd/{fd}').st_ino:x}]"
        targets.append(target)
    return targets


def refuse_terminal(targets: list[str]) -> None:
    """A container made with a terminal (``exec -t``) has the slave of a pty
    whose master nsinit's supervisor holds, outside what criu dumps: criu
    would fail late with "Unable to find a master"."""
    for fd, target in enumerate(targets):
        if target.startswith("/dev/pts/") or target in ("/dev/console", "/dev/tty"):
            raise CriuError("checkpoint", f"the container's init has a terminal on fd {fd} ({target}): "
                                          "checkpoint supports pipes and files as its stdio, not a terminal")


def external_files(targets: list[str]) -> list[str]:
    """criu's ``external`` entries for the stdio files outside the container."""
    return sorted({t for t in targets if t.startswith("file[")})


def _mount_ids(pid: int) -> set[int]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return {int(line.split(" ", 1)[0]) for line in f}


def _fd_mount_id(pid: int, fd: int) -> int:
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return -1


def write_descriptors(images_dir: str, targets: list[str]) -> None:
    with open(os.path.join(images_dir, DESCRIPTORS_FILE), "w") as f:
        f.write(jsontext.dumps(targets) + "\n")


def read_descriptors(images_dir: str) -> list[str]:
    path = os.path.join(images_dir, DESCRIPTORS_FILE)
    try:
        with open(path, "rb") as f:
            targets = jsontext.loads(f.read())
    except FileNotFoundError:
        raise CriuError("restore", f"{path} is missing: {images_dir} holds no nsinit checkpoint") from None
    except ValueError:
        raise CriuError("restore", f"{path} is not valid JSON") from None
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise CriuError("restore", f"{path}: not a list of fd targets")
    return targets


def inherited_fds(targets: list[str]) -> list[tuple[str, int]]:
    """(key, which of 0-2) for each recorded pipe, socket or outside file; a target
    on several fds (stdout and stderr on one pipe) is given once, from the
    first of them."""
    seen: dict[str, int] = {}
    for fd, target in enumerate(targets[:3]):
        if target.startswith(_INHERITED_PREFIXES) and target not in seen:
            seen[target] = fd
    return list(seen.items())
