"""The supervisor's wait once a relay is done: a blocking wait for the init, never a poll.

A container with a terminal on nsinit's side is relayed (nsinit/console);
when its side of the relay closes before its init has exited, the
supervisor used to poll for the exit every 10 ms, so each such container
ended up to 10 ms late.  A real child and real pipes stand in for the
container here; only time.sleep is watched.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from nsinit import console
from nsinit.lifecycle import supervise


class _Launch:
    def __init__(self, pid: int, stdio: console.Stdio) -> None:
        self.pid, self.stdio, self.reaped = pid, stdio, False


def test_the_wait_after_the_relay_blocks_until_the_init_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    container_out, container_end = os.pipe()  # the container's output, relayed ...
    host_in, host_out = os.pipe()              # ... to the host's side
    pid = os.fork()
    if pid == 0:  # the "init": closes its output at once, exits a little later
        try:
            os.close(container_out)
            os.close(container_end)
            time.sleep(0.3)
        finally:
            os._exit(7)
    os.close(container_end)
    sleeps: list[float] = []
    real_sleep = time.sleep

    def watched_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(supervise.time, "sleep", watched_sleep)
    launch = _Launch(pid, console.Stdio(relays=[(container_out, host_out)]))
    exited: list[int] = []
    try:
        status = supervise._wait_with_relay(launch, launch.stdio, exited)
    finally:
        if not launch.reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for fd in (container_out, host_in, host_out):
            os.close(fd)
    assert status == 7 and launch.reaped
    assert sleeps == []  # blocked in waitpid: no poll, no time lost after the exit
