"""``nsinit gc`` without root: which private records it removes and which it
must leave alone.

Records are planted in a temporary ``state.RUN_DIR``; their "inits" and
"supervisors" are real processes of this test (alive, or exited and reaped),
so liveness is decided by the same pid + start time checks as for real
containers.  The records name no cgroups and no veths: removing those is
covered by the integration test that kills a real container's nsinit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsinit import state
from nsinit.lifecycle.gc import collect_garbage
from nsinit.state import State


@pytest.fixture(autouse=True)
def run_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("run") / "nsinit"
    monkeypatch.setattr(state, "RUN_DIR", str(path))
    return path


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    return proc.pid


@pytest.fixture
def live() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait(timeout=5)


def start_time(pid: int) -> int:
    value = state.read_start_time(pid)
    assert value is not None
    return value


def plant(root: Path, init_pid: int, init_start: int, **changes: object) -> Path:
    """A record for ``root`` as a creation writes it: private copy plus the
    public pid/state.json; returns the private directory."""
    root.mkdir(exist_ok=True)
    record = State(init_pid=init_pid, init_start_time=init_start, created="2026-01-01T00:00:00Z",
                   root=str(root), rootfs=str(root), **changes)  # type: ignore[arg-type]
    state.write_state(str(root), record)
    return Path(state.private_dir(str(root)))


def test_nothing_to_collect_without_a_run_dir(run_dir: Path) -> None:
    assert collect_garbage() == []
    assert not run_dir.exists()


def test_dead_container_whose_root_dir_is_gone_is_removed(tmp_path: Path, dead_pid: int) -> None:
    root = tmp_path / "root"
    private = plant(root, dead_pid, 12345)
    for name in os.listdir(root):
        os.unlink(root / name)
    root.rmdir()
    [entry] = collect_garbage()
    assert entry["record"] == str(private) and entry["root"] == str(root) and entry["init_pid"] == dead_pid
    assert "is gone" in str(entry["why"])
    assert not private.exists()
    assert collect_garbage() == []


def test_dead_container_whose_root_dir_remains_loses_its_public_files(tmp_path: Path, dead_pid: int) -> None:
    root = tmp_path / "root"
    private = plant(root, dead_pid, 12345)
    (root / "keep").write_text("the container's own file")
    assert sorted(os.listdir(root)) == ["keep", "pid", "state.json"]
    assert len(collect_garbage()) == 1
    assert os.listdir(root) == ["keep"]
    assert not private.exists()


def test_a_new_directory_at_the_old_path_is_not_touched(tmp_path: Path, dead_pid: int) -> None:
    root = tmp_path / "root"
    private = plant(root, dead_pid, 12345)
    moved = tmp_path / "moved"
    root.rename(moved)          # the record's path now names another directory...
    root.mkdir()
    (root / "pid").write_text("1")  # ...whose files are not the dead container's
    # (the old directory, renamed, keeps its inode and so its record)
    assert state.private_dir(str(moved)) == str(private)
    assert len(collect_garbage()) == 1
    assert (root / "pid").read_text() == "1"
    assert not private.exists()


def test_running_container_is_kept(tmp_path: Path, live: subprocess.Popen[bytes]) -> None:
    private = plant(tmp_path / "root", live.pid, start_time(live.pid))
    assert collect_garbage() == []
    assert (private / "state.json").exists()


def test_reused_pid_is_no_running_container(tmp_path: Path, live: subprocess.Popen[bytes]) -> None:
    private = plant(tmp_path / "root", live.pid, start_time(live.pid) - 1)
    [entry] = collect_garbage()
    assert "another process" in str(entry["why"])
    assert not private.exists()
    assert live.poll() is None


def test_ended_container_whose_nsinit_lives_is_left_to_it(tmp_path: Path, dead_pid: int,
                                                         live: subprocess.Popen[bytes]) -> None:
    private = plant(tmp_path / "root", dead_pid, 12345,
                    supervisor_pid=live.pid, supervisor_start_time=start_time(live.pid))
    assert collect_garbage() == []
    assert (private / "state.json").exists()


def test_created_container_whose_creator_is_gone_is_kept(tmp_path: Path, live: subprocess.Popen[bytes]) -> None:
    # Created detached: no supervisor was ever recorded, and its creator has
    # exited by design.  Only its init's death makes it garbage.
    private = plant(tmp_path / "root", live.pid, start_time(live.pid), detached=True, status="created")
    os.mkfifo(private / state.EXEC_FIFO)
    assert collect_garbage() == []
    assert (private / "state.json").exists()


def test_stopped_detached_container_is_removed_with_its_fifo(tmp_path: Path, dead_pid: int) -> None:
    private = plant(tmp_path / "root", dead_pid, 12345, detached=True, status="created")
    os.mkfifo(private / state.EXEC_FIFO)
    [entry] = collect_garbage()
    assert entry["init_pid"] == dead_pid
    assert not private.exists()


def test_record_whose_lock_is_held_is_skipped(tmp_path: Path, dead_pid: int) -> None:
    root = tmp_path / "root"
    private = plant(root, dead_pid, 12345)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys\n"
                               "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n",
         str(private)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert collect_garbage() == []
        assert (private / "state.json").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert len(collect_garbage()) == 1


def test_unreadable_record_and_writer_leftovers_are_removed(tmp_path: Path) -> None:
    private = Path(state.ensure_private_dir(str(tmp_path)))
    (private / "state.json").write_bytes(b'{"init_pid": 12')
    (private / "state.json.tmp4242").write_text("half")
    [entry] = collect_garbage()
    assert entry["root"] is None and "not valid JSON" in str(entry["why"])
    assert not private.exists()


def test_empty_private_dir_goes_quietly(tmp_path: Path) -> None:
    private = Path(state.ensure_private_dir(str(tmp_path)))
    assert collect_garbage() == []
    assert not private.exists()


def test_foreign_entries_in_the_run_dir_are_not_touched(run_dir: Path, dead_pid: int, tmp_path: Path) -> None:
    plant(tmp_path / "root", dead_pid, 12345)
    (run_dir / "notes").mkdir()
    (run_dir / "notes" / "state.json").write_text("{}")
    (run_dir / "fe00-zz").mkdir()
    (run_dir / "readme").write_text("x")
    assert len(collect_garbage()) == 1
    assert sorted(os.listdir(run_dir)) == ["fe00-zz", "notes", "readme"]


@pytest.mark.parametrize("name, ok", [("fe00-20e00e", True), ("0-1", True), ("fe00", False), ("fe00-", False),
                                      ("FE00-1", False), ("fe00-1-2", False), ("fe00-1.tmp", False)])
def test_only_dev_inode_names_are_private_dirs(run_dir: Path, name: str, ok: bool) -> None:
    (run_dir / name).mkdir(parents=True)
    assert state.private_dirs() == ([str(run_dir / name)] if ok else [])


def test_one_record_that_cannot_be_removed_does_not_stop_the_others(tmp_path: Path, dead_pid: int) -> None:
    stuck = Path(state.ensure_private_dir(str(tmp_path)))
    (stuck / "state.json").mkdir()            # unreadable, and unlink() refuses a directory
    private = plant(tmp_path / "root", dead_pid, 12345)
    entries = collect_garbage()
    assert [e["record"] for e in entries if "error" in e] == [str(stuck)]
    assert [e["record"] for e in entries if "error" not in e] == [str(private)]
    assert not private.exists() and stuck.exists()


def test_cli_prints_what_it_removed_and_fails_on_what_it_could_not(tmp_path: Path, run_dir: Path,
                                                                     dead_pid: int) -> None:
    stuck = Path(state.ensure_private_dir(str(tmp_path)))
    (stuck / "state.json").mkdir()
    private = plant(tmp_path / "root", dead_pid, 12345)
    env = {**os.environ, "NSINIT_RUN_DIR": str(run_dir)}
    result = subprocess.run([sys.executable, "-m", "nsinit", "gc"], capture_output=True, text=True,
                            timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"removed container {dead_pid} of {tmp_path / 'root'} (container init {dead_pid} is gone): {private}"]
    [error] = result.stderr.splitlines()
    assert error.startswith(f"nsinit: gc: {stuck}: ") and "Traceback" not in result.stderr
    again = subprocess.run([sys.executable, "-m", "nsinit", "gc", "--json"], capture_output=True, text=True,
                           timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert again.returncode == 1 and [e["record"] for e in json.loads(again.stdout)] == [str(stuck)]
