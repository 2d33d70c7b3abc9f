"""Shared fixtures.

Integration tests build real containers from a busybox rootfs made by
``nsinit rootfs``.  After every such test, ``no_residue`` checks that nothing
was left behind: pid/state files, mounts under the test's directories,
processes running from the rootfs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parent.parent


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root: creates namespaces and mounts")


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nsinit.errors import NsinitError
    from nsinit.rootfs import build_rootfs, find_busybox

    try:
        find_busybox()
    except NsinitError as err:
        pytest.skip(f"busybox-static not installed: {err}")
    target = tmp_path_factory.mktemp("template") / "rootfs"
    build_rootfs(str(target))
    return target


@pytest.fixture
def rootfs(busybox_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the busybox rootfs for one test (symlinks kept)."""
    target = tmp_path / "rootfs"
    shutil.copytree(busybox_template, target, symlinks=True)
    return target


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4].startswith(prefix)]


def processes_rooted_in(path: Path) -> list[int]:
    prefix = str(path)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root").startswith(prefix):
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def no_residue(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    leftovers = [p for p in ("pid", "state.json") if (tmp_path / "rootfs" / p).exists()]
    assert not leftovers, f"files left in the root dir: {leftovers}"
    assert not mounts_under(tmp_path), "mounts left on the host"
    assert not processes_rooted_in(tmp_path), "container processes left running"


class Nsinit:
    """Runs the nsinit CLI as a user would, in a given root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def config(self, **changes: Any) -> dict[str, Any]:
        path = self.root / "container.json"
        data = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        path.write_text(json.dumps(data, indent=2))
        return data

    def run(self, *args: str, timeout: float = 30, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nsinit", *args], cwd=self.root, capture_output=True,
            text=True, timeout=timeout, input=input, env=env,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def exec(self, *command: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("exec", *command, **kw)

    def sh(self, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.exec("/bin/sh", "-c", script, **kw)

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "nsinit", *args], cwd=self.root,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, **kw)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError("timed out waiting")


@pytest.fixture
def nsinit(rootfs: Path, no_residue: None) -> Nsinit:
    return Nsinit(rootfs)
