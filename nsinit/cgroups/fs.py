"""Reading and writing cgroupfs files, making and removing cgroup directories.

Both managers go through these few functions, so the unit tests can stand a
temp directory in for cgroupfs and play the kernel's part by wrapping them.

cgroupfs files are written with nsinit.kernelfs.write_file: one ``write(2)``,
without O_CREAT.
"""
from __future__ import annotations

import errno
import os
import time

# Called as fs.write_file by the managers, so the unit tests can wrap it here.
from nsinit.kernelfs import write_file as write_file

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # see nsinit/container.py

# EBUSY from rmdir: the last task has exited but the kernel has not yet
# unlinked it from the cgroup.  Short, doubling waits, bounded (~0.6 s).
RMDIR_RETRIES = 6
RMDIR_FIRST_DELAY = 0.01
# Waiting for a killed cgroup to empty, and for a freeze to complete.
EMPTY_TIMEOUT = 5.0
FREEZE_TIMEOUT = 5.0
POLL_INTERVAL = 0.005


def read_int(path: str) -> int:
    return int(read_file(path).strip())


class LineRefused(OSError):
    """write_lines: the kernel refused ``line``, the ``index``-th (errno and strerror are its)."""

    def __init__(self, line: str, index: int, err: OSError) -> None:
        super().__init__(err.errno, err.strerror)
        self.line, self.index = line, index


def write_lines(path: str, lines: list[str]) -> None:
    """Each line in a write(2) of its own (the kernel parses one rule per
    write: devices.allow), through one open, not an open and a close per
    line.  A refused line raises LineRefused; a failed open, its OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for index, line in enumerate(lines):
            try:
                os.write(fd, line.encode())
            except OSError as err:
                raise LineRefused(line, index, err) from None
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    # utf-8, not ascii: the same text for the kernel's ASCII files, and the
    # ascii codec would be looked up and imported on every start (~0.2 ms).
    # os.read, not open(): no buffered reader and text wrapper to build (and
    # their fstat, ioctl and lseek) for a few bytes, six times per container.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def read_optional(path: str) -> str | None:
    try:
        return read_file(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def make_dir(path: str) -> None:
    """mkdir one cgroup (the parent must exist); EEXIST is the caller's business."""
    os.mkdir(path, 0o755)


def remove_dir(path: str, retries: int = RMDIR_RETRIES) -> None:
    """rmdir one cgroup, retrying EBUSY a few times; a missing one is fine."""
    delay = RMDIR_FIRST_DELAY
    for attempt in range(retries + 1):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or attempt == retries:
                raise
        time.sleep(delay)
        delay *= 2


def subtree_bottom_up(path: str) -> list[str]:
    """``path`` and every cgroup below it, deepest first (rmdir order).

    A container with write access to its cgroupfs may have made sub-cgroups;
    they must go before their parent can.
    """
    found: list[str] = []
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        found.append(dirpath)
    return found if found else [path]


def procs(path: str) -> list[int]:
    """Pids in this cgroup (not its children); empty if it does not exist."""
    text = read_optional(os.path.join(path, "cgroup.procs"))
    return [int(word) for word in text.split()] if text else []


def procs_recursive(path: str) -> list[int]:
    pids: list[int] = []
    for cgroup in subtree_bottom_up(path):
        pids.extend(procs(cgroup))
    return pids


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # exited on its own since cgroup.procs was read


def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
