"""A container kept running in the background for join and lifecycle tests.

``Live`` starts ``nsinit exec /bin/sh -c SCRIPT`` and waits until the script
has touched /tmp/ready.  ``stop()`` SIGKILLs the init while its supervisor has
not reaped it yet (so the pid cannot belong to anyone else), then waits for
the supervisor, which removes pid and state.json: killing the supervisor
instead would leave them behind.  Everything is bounded.
"""
from __future__ import annotations

import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import Nsinit, ok, stderr_lines, wait_until  # noqa: F401 (re-exported to the tests)

READY = "touch /tmp/ready"


class Live:
    def __init__(self, nsinit: Nsinit, script: str, *exec_options: str) -> None:
        self.nsinit = nsinit
        self.root = nsinit.root
        self.proc = nsinit.popen("exec", *exec_options, "/bin/sh", "-c", script)
        self.pid = 0
        self.stdout = self.stderr = ""

    def wait_ready(self, cmdline: bytes | None = None) -> "Live":
        """Until /tmp/ready exists (and PID 1's command line is ``cmdline``)."""
        def ready() -> bool:
            if self.proc.poll() is not None:
                return True
            if not (self.root / "tmp" / "ready").exists() or not (self.root / "pid").exists():
                return False
            self.pid = int((self.root / "pid").read_text())
            return cmdline is None or read_cmdline(self.pid) == cmdline

        self.nsinit.wait_for(ready)
        if self.proc.poll() is not None:
            self.finish()
            pytest.fail(f"container exited early ({self.proc.returncode}): {self.stderr}")
        return self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None and self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)  # unreaped: still the init's pid
            except ProcessLookupError:
                pass
        return self.finish()

    def finish(self, timeout: float = 10) -> int:
        """Wait for the supervisor; kill it only if it hangs."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
        self.stdout += out
        self.stderr += err
        return self.proc.returncode


def read_cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def ns_inode(pid: int | str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = stderr_lines(result)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nsinit: "), lines
    return lines[0]


@pytest.fixture
def start(nsinit: Nsinit) -> Iterator[Callable[..., Live]]:
    """start(script, *exec_options, cmdline=None) -> a ready Live container;
    every one is stopped at the end of the test, before the residue check."""
    started: list[Live] = []

    def _start(script: str = f"{READY}; exec sleep 30", *exec_options: str,
               cmdline: bytes | None = None) -> Live:
        live = Live(nsinit, script, *exec_options)
        started.append(live)
        return live.wait_ready(cmdline)

    try:
        yield _start
    finally:
        for live in started:
            live.stop()




def private_dir(root: Path) -> Path:
    """nsinit's private state dir of ``root`` (under the real /run/nsinit)."""
    from nsinit import state

    return Path(state.private_dir(str(root)))


@contextmanager
def planted_record(root: Path, text: str) -> Iterator[Path]:
    """``text`` as nsinit's own record of ``root``, where only root can put
    it.  Afterwards whatever is left of the plant is removed, so a failing
    test leaves nothing in /run/nsinit; a record nsinit wrote over it (a
    live container's) is left alone.  Tests assert what nsinit removed
    before this cleanup runs."""
    from nsinit import state

    directory = Path(state.ensure_private_dir(str(root)))
    record = directory / "state.json"
    record.write_text(text)
    try:
        yield record
    finally:
        try:
            if record.read_text() == text:
                record.unlink()
        except FileNotFoundError:
            pass
        try:
            directory.rmdir()
        except OSError:
            pass  # gone already, or a live container's record is in it
