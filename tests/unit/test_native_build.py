"""The C helper's build: one list of prototypes, and a stale build refused."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from nsinit import _native


def test_every_prototype_of_clone_h_is_in_the_built_helper() -> None:
    sys.path.insert(0, str(REPO / "native"))
    try:
        import build_clone
    finally:
        sys.path.remove(str(REPO / "native"))
    declared = re.findall(r"\b(nsi_\w+)\(", build_clone.declarations((REPO / "native" / "clone.h").read_text()))
    defined = re.findall(r"^static \w+ (nsi_\w+)\(", (REPO / "native" / "clone.c").read_text(), re.M)
    assert declared and sorted(declared) == sorted(defined)
    assert all(hasattr(_native.lib, name) for name in declared)


def test_a_source_newer_than_the_build_is_named(tmp_path: Path) -> None:
    built, sources = tmp_path / "_clone.so", tmp_path / "native"
    sources.mkdir()
    (sources / "clone.c").write_text("")
    (sources / "__pycache__").mkdir()
    built.write_text("")
    os.utime(sources / "clone.c", ns=(1, 1_000_000_000))
    os.utime(sources, ns=(1, 1_000_000_000))  # nothing made, removed or renamed there since the build
    os.utime(built, ns=(1, 2_000_000_000))
    assert _native.stale_build(str(built), str(sources)) is None
    os.utime(sources / "clone.c", ns=(1, 3_000_000_000))  # edited in place: found by its name
    assert _native.stale_build(str(built), str(sources)) == "clone.c"
    os.utime(sources / "clone.c", ns=(1, 1_000_000_000))
    # A file made since the build, whatever its name: the directory changed,
    # so every file in it is looked at.
    (sources / "extra.h").write_text("")
    assert _native.stale_build(str(built), str(sources)) == "extra.h"
    os.utime(sources / "extra.h", ns=(1, 1_000_000_000))
    assert _native.stale_build(str(built), str(sources)) is None
    # An installed package: no native/ beside it, nothing to compare.
    assert _native.stale_build(str(built), str(tmp_path / "none")) is None


def test_nsinit_refuses_a_stale_helper_in_one_line(tmp_path: Path) -> None:
    shutil.copytree(REPO / "nsinit", tmp_path / "nsinit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "native", tmp_path / "native", ignore=shutil.ignore_patterns("__pycache__"))
    os.utime(tmp_path / "native" / "clone.c")   # now: newer than the copied build
    result = subprocess.run([sys.executable, "-m", "nsinit", "exec", "/bin/true"], cwd=tmp_path, text=True,
                            capture_output=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=30)
    assert result.returncode == 125
    assert result.stderr.splitlines() == [
        f"nsinit: native helper: {next((tmp_path / 'nsinit').glob('_clone*.so'))} is older than "
        "native/clone.c: rebuild it with python3 native/build_clone.py"]
