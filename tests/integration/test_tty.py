"""Terminals: nsinit run on a pty made by the test, as a user's shell would run it.

With ``--tty`` the container gets a pty of its own (stdio, controlling
terminal, /dev/console) and the host terminal is put back as it was; without
it, a host terminal on stdio must not reach the container at all.
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from conftest import Nsinit, needs_root

pytestmark = needs_root

TIOCSCTTY = 0x540E


@dataclass
class PtyRun:
    returncode: int
    output: str              # what the container wrote to the terminal, "\r\n" made "\n"
    stderr: str
    termios_before: list     # type: ignore[type-arg]
    termios_after: list      # type: ignore[type-arg]


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run_on_pty(nsinit: Nsinit, *args: str,
               during: Callable[[int, subprocess.Popen[bytes]], None] | None = None,
               timeout: float = 20) -> PtyRun:
    """``nsinit ARGS`` with the slave of a new pty as stdin, stdout and
    controlling terminal (stderr stays a pipe, to read nsinit's own messages).

    ``during(master_fd, process)`` runs once the process has started.
    """
    master, slave = os.openpty()
    try:
        set_window_size(slave, 33, 77)
        before = termios.tcgetattr(slave)

        def become_terminal_owner() -> None:
            os.setsid()
            fcntl.ioctl(0, TIOCSCTTY, 0)

        proc = subprocess.Popen([sys.executable, "-m", "nsinit", *args], cwd=nsinit.root,
                                stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                                preexec_fn=become_terminal_owner)
        try:
            if during is not None:
                during(master, proc)
            output = _read_until_exit(master, proc, timeout)
            stderr = proc.stderr.read().decode() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()
        after = termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)
    return PtyRun(proc.returncode, output.decode(errors="replace").replace("\r\n", "\n"),
                  stderr, before, after)


def _read_until_exit(master: int, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        exited = proc.poll() is not None
        readable, _, _ = select.select([master], [], [], 0.05)
        if readable:
            data += os.read(master, 65536)
        elif exited:
            return data
    raise AssertionError(f"nsinit did not exit within {timeout} s; output so far: {data!r}")


def test_tty_gives_the_container_its_own_terminal(nsinit: Nsinit) -> None:
    # `stty size` first: the size must be on the pty before the exec, not
    # only once the supervisor gets round to it (it did, on a loaded machine:
    # busybox then says "stty: standard input" for a 0x0 window).
    run = run_on_pty(nsinit, "exec", "--tty", "/bin/sh", "-c",
                     "stty size; tty; test -t 0 && echo stdin-tty; test -c /dev/console && echo console")
    assert "Traceback" not in run.stderr
    assert run.returncode == 0, run.stderr
    assert run.output.splitlines() == ["33 77", "/dev/pts/0", "stdin-tty", "console"]


def test_tty_from_the_config(nsinit: Nsinit) -> None:
    nsinit.config(tty=True)
    run = run_on_pty(nsinit, "exec", "/bin/sh", "-c", "test -t 0 && test -t 1 && echo tty")
    assert run.returncode == 0, run.stderr
    assert run.output.splitlines() == ["tty"]


TTY_CHECK = "tty; test -t 1 && echo stdout-tty; true"


def test_a_terminal_on_stdin_gives_a_pty_when_nothing_says(nsinit: Nsinit) -> None:
    # The config `nsinit rootfs` writes has no "tty": someone typing
    # `nsinit exec /bin/sh` gets a shell with a terminal (a prompt).
    assert "tty" not in json.loads((nsinit.root / "container.json").read_text())
    run = run_on_pty(nsinit, "exec", "/bin/sh", "-c", TTY_CHECK)
    assert run.returncode == 0, run.stderr
    assert run.output.splitlines() == ["/dev/pts/0", "stdout-tty"]
    assert run.termios_after == run.termios_before


def test_no_terminal_on_stdin_no_pty(nsinit: Nsinit) -> None:
    result = nsinit.sh(TTY_CHECK)   # stdin /dev/null, stdout a pipe
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["not a tty"]


def test_tty_false_in_the_config_is_obeyed_on_a_terminal(nsinit: Nsinit) -> None:
    nsinit.config(tty=False)
    run = run_on_pty(nsinit, "exec", "/bin/sh", "-c", TTY_CHECK)
    assert run.returncode == 0, run.stderr
    assert run.output.splitlines() == ["not a tty"]


def test_window_size_changes_reach_the_container(nsinit: Nsinit) -> None:
    ready, go = nsinit.root / "tmp" / "ready", nsinit.root / "tmp" / "go"

    def resize(master: int, proc: subprocess.Popen[bytes]) -> None:
        nsinit.wait_for(lambda: ready.exists() or proc.poll() is not None)
        set_window_size(master, 50, 132)  # SIGWINCH to nsinit, the terminal's foreground
        time.sleep(0.2)
        go.touch()

    run = run_on_pty(nsinit, "exec", "--tty", "/bin/sh", "-c",
                     # The relay passes the size on when its SIGWINCH handler runs: on a
                     # loaded machine that can come after the 0.2 s above (bounded: 5 s).
                     "touch /tmp/ready; while [ ! -f /tmp/go ]; do sleep 0.02; done; "
                     "i=0; while [ \"$(stty size)\" != '50 132' ] && [ $i -lt 100 ]; do "
                     "sleep 0.05; i=$((i+1)); done; stty size",
                     during=resize)
    assert run.returncode == 0, run.stderr
    assert run.output.splitlines()[-1] == "50 132"


@pytest.mark.parametrize("command", ["exit 0", "exit 5", "kill -9 $$"])
def test_host_terminal_is_restored(nsinit: Nsinit, command: str) -> None:
    nsinit.config(namespaces=["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"])  # so kill -9 $$ kills
    run = run_on_pty(nsinit, "exec", "--tty", "/bin/sh", "-c", command)
    assert "Traceback" not in run.stderr
    assert run.returncode == {"exit 0": 0, "exit 5": 5, "kill -9 $$": 137}[command], run.stderr
    assert run.termios_after == run.termios_before


def test_host_terminal_is_restored_after_a_setup_failure(nsinit: Nsinit) -> None:
    run = run_on_pty(nsinit, "exec", "--tty", "--cwd", "/no/such/dir", "true")
    assert run.returncode == 125
    assert run.stderr.startswith("nsinit: cwd: ") and len(run.stderr.splitlines()) == 1
    assert run.termios_after == run.termios_before


def test_without_tty_no_host_terminal_leaks_in(nsinit: Nsinit) -> None:
    run = run_on_pty(nsinit, "exec", "--no-tty", "/bin/sh", "-c",
                     "test -t 0 || echo stdin-not-tty; test -t 1 || echo stdout-not-tty;"
                     " tty; ls /proc/1/fd; true")
    assert "Traceback" not in run.stderr
    assert run.returncode == 0, run.stderr
    lines = run.output.splitlines()
    assert lines[:3] == ["stdin-not-tty", "stdout-not-tty", "not a tty"]
    assert lines[3:] == ["0", "1", "2"]
    assert run.termios_after == run.termios_before


def test_tty_output_reaches_the_host_terminal_in_order(nsinit: Nsinit) -> None:
    run = run_on_pty(nsinit, "exec", "--tty", "/bin/sh", "-c", "seq 1 2000")
    assert run.returncode == 0, run.stderr
    assert run.output.split() == [str(i) for i in range(1, 2001)]


def test_a_terminal_on_stdin_alone_reaches_the_container_without_tty(nsinit: Nsinit) -> None:
    """-T with only stdin a terminal (``nsinit exec -T cmd | tee log`` typed in a
    shell): stdin is relayed through a pipe, and the relay must run while
    the container does, though nothing of the container's side is relayed."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "nsinit", "exec", "-T", "/bin/sh", "-c",
                                 "read line; echo got $line"], cwd=nsinit.root,
                                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            os.write(master, b"typed\n")
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert out.decode() == "got typed\n"
