"""The residue check (conftest's ``no_residue``) blames a test only for the
private state dirs it made or changed.

A private dir is named by the device and inode of its root dir; a dead
container's dir outlives that root (another session killed mid-test), and
the filesystem reuses the inode for a later test's new directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import private_dirs_left, private_dirs_now
from nsinit import state


@pytest.fixture(autouse=True)
def run_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("run") / "nsinit"
    path.mkdir(mode=0o700)
    monkeypatch.setattr(state, "RUN_DIR", str(path))
    return path


def test_a_dir_made_during_the_test_is_its_residue(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    before = private_dirs_now()
    os.mkdir(state.private_dir(str(tmp_path / "rootfs")))
    assert private_dirs_left(tmp_path, before) == [state.private_dir(str(tmp_path / "rootfs"))]


def test_another_sessions_dir_with_a_reused_name_is_not(tmp_path: Path) -> None:
    # As if a killed session's container had had tmp_path's inode as its root.
    stale = Path(state.private_dir(str(tmp_path)))
    stale.mkdir()
    (stale / state.STATE_FILE).write_text("{}")
    before = private_dirs_now()
    assert private_dirs_left(tmp_path, before) == []
    assert private_dirs_left(tmp_path) == [str(stale)]   # the check without the snapshot


def test_a_reused_dir_the_test_wrote_into_is_its_residue(tmp_path: Path) -> None:
    stale = Path(state.private_dir(str(tmp_path)))
    stale.mkdir()
    before = private_dirs_now()
    (stale / state.STATE_FILE).write_text("{}")
    assert private_dirs_left(tmp_path, before) == [str(stale)]
