"""Escape classes of issue 15, each tried for real against a container.

Every test here reproduces an attack that worked once (a hostile image, a
hostile config or a hostile caller's fd) and checks from the kernel's own
answers (/proc/PID/status, the files a process can read) that it no longer
does.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from _live import READY, Live
from conftest import Nsinit, needs_root, stderr_lines

pytestmark = needs_root

CAP_CHOWN = 1 << 0


def ok(result: subprocess.CompletedProcess[str]) -> str:
    stderr_lines(result)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails_with_one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single error line of a refused run, checked to name ``words``."""
    lines = stderr_lines(result)
    assert result.returncode != 0, result.stdout
    errors = [line for line in lines if line.startswith("nsinit:") and "warning" not in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{name} not in /proc/{pid}/status")


def run_and_read_status(nsinit: Nsinit, *fields: str) -> dict[str, int]:
    """Start a container; read ``fields`` of its init's status from the host."""
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    try:
        return {name: status_field(live.pid, name) for name in fields}
    finally:
        live.stop()
        stderr_lines(subprocess.CompletedProcess([], 0, "", live.stderr))


# --- 1. the last capability comes from the kernel, not the image's /proc -----

def test_a_fake_cap_last_cap_in_the_image_grants_nothing(nsinit: Nsinit) -> None:
    # No NEWNS: the container's /proc is the image's own directory.
    nsinit.config(namespaces=[{"type": t} for t in ("NEWUTS", "NEWIPC", "NEWPID", "NEWNET")],
                  capabilities=["CHOWN"])
    fake = nsinit.root / "proc" / "sys" / "kernel"
    fake.mkdir(parents=True)
    (fake / "cap_last_cap").write_text("1\n")
    status = run_and_read_status(nsinit, "CapEff", "CapPrm", "CapBnd")
    assert status == {"CapEff": CAP_CHOWN, "CapPrm": CAP_CHOWN, "CapBnd": CAP_CHOWN}
