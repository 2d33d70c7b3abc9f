"""The starter's side of the exec fifo (nsinit/lifecycle/start.py ``release``).

A real process plays the init: it opens the fifo for writing (blocking
until the release), writes RELEASED, and then, as the init's exec would,
keeps its end open a moment before it writes what a failure would and
closes it.  The release reads all of it, and runs ``meanwhile`` (where
start records the container as running) between the release and the end.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsinit import state
from nsinit.lifecycle import start
from nsinit.state import State

# Opens the fifo (blocks until released), writes "0", then, 0.2 s later,
# more: a write to a fifo whose reader closed fails (EPIPE), exit status 1.
INIT = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"0")
time.sleep(0.2)
os.write(fd, b"after")
"""


def released_init(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, State]:
    fifo = str(tmp_path / state.EXEC_FIFO)
    os.mkfifo(fifo, 0o600)
    init = subprocess.Popen([sys.executable, "-c", INIT, fifo])
    start_time = state.read_start_time(init.pid)
    assert start_time is not None
    record = State(init_pid=init.pid, init_start_time=start_time, created="", root=str(tmp_path),
                   rootfs=str(tmp_path))
    return init, fifo, record


def test_release_runs_meanwhile_once_and_reads_until_the_init_closes(tmp_path: Path) -> None:
    init, fifo, record = released_init(tmp_path)
    calls: list[int] = []
    try:
        report = start.release(fifo, record, meanwhile=lambda: calls.append(init.poll() is None))
    finally:
        status = init.wait(10)
    assert (report, calls, status) == (b"after", [True], 0)


def test_a_failing_meanwhile_is_raised_once_the_init_is_done_with_the_fifo(tmp_path: Path) -> None:
    init, fifo, record = released_init(tmp_path)

    def failing() -> None:
        raise OSError(28, "No space left on device")

    try:
        with pytest.raises(OSError, match="No space left"):
            start.release(fifo, record, meanwhile=failing)
    finally:
        status = init.wait(10)
    assert status == 0  # its write after the release found the reader still there
