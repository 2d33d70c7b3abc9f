"""nsinit/state.py without root: the private record and the public copies,
start times, atomic writes, stale detection, removal, the root lock.

``state.RUN_DIR`` points at a temporary directory for every test (the
autouse ``run_dir`` fixture), so nothing here touches /run/nsinit.  The
"init" of these tests is the test process itself or a child it starts:
liveness is pid + start time + namespace inodes, all readable by anyone.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nsinit import state
from nsinit.errors import NsinitError
from nsinit.record import asdict, replace
from nsinit.state import State, StaleStateError


@pytest.fixture(autouse=True)
def run_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """state.RUN_DIR for this test: outside tmp_path (the root dir), and not
    created yet, as on a freshly booted host."""
    path = tmp_path_factory.mktemp("run") / "nsinit"
    monkeypatch.setattr(state, "RUN_DIR", str(path))
    return path


def own_start_time() -> int:
    start = state.read_start_time(os.getpid())
    assert start is not None
    return start


def make_state(pid: int, start_time: int, **changes: object) -> State:
    fields: dict[str, object] = dict(init_pid=pid, init_start_time=start_time,
                                     created="2014-06-01T00:00:00Z", root="/r", rootfs="/r")
    fields.update(changes)
    return State(**fields)  # type: ignore[arg-type]


def private(root: Path) -> Path:
    return Path(state.private_dir(str(root)))


def plant_record(root: Path, content: str | bytes) -> Path:
    """Put ``content`` where nsinit keeps its own record of ``root``."""
    path = Path(state.ensure_private_dir(str(root))) / "state.json"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


def write_public(root: Path, pid_text: str | None, state_text: str | None) -> None:
    """The public copies in the root dir, as anyone with write access there
    (the container's root user) could write them."""
    if pid_text is not None:
        (root / "pid").write_text(pid_text)
    if state_text is not None:
        (root / "state.json").write_text(state_text)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())




# -- start time --------------------------------------------------------------

def stat_line(comm: bytes, start_time: int) -> bytes:
    # fields 3..52 after "pid (comm) "; field 22 is the start time
    after = [b"S"] + [str(n).encode() for n in range(4, 22)] + [str(start_time).encode()] \
        + [str(n).encode() for n in range(23, 53)]
    return b"4242 (" + comm + b") " + b" ".join(after) + b"\n"


@pytest.mark.parametrize("comm", [
    b"sleep",
    b"a) (b c",          # ") (" and spaces: a split on spaces shifts field 22
    b") S 1 2 3 4 5 6",  # looks like the fields that follow
    b"x)",               # ends in ")"
    b"((",
    b"tab\there",
])
def test_start_time_parsed_after_the_last_paren(comm: bytes) -> None:
    assert state.stat_start_time(stat_line(comm, 987654)) == 987654


def test_start_time_of_a_real_process_with_a_hostile_comm(tmp_path: Path) -> None:
    # comm is the executable's base name (up to 15 bytes), here with ") (" and spaces.
    sleep = shutil.which("sleep")
    assert sleep
    hostile = tmp_path / "a) (b c ) d"
    shutil.copy(sleep, hostile)
    proc = subprocess.Popen([str(hostile), "30"])
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            raw = f.read()
        assert b") (" in raw, raw  # the test means what it says
        start = state.read_start_time(proc.pid)
        # Checked through another door: it started after us and before now
        # (the misparse of a split on spaces gives numbers nowhere near).
        assert start is not None
        now = float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")
        assert own_start_time() <= start <= now + 1
        assert state.is_alive(proc.pid, start)
        assert not state.is_alive(proc.pid, start + 1)
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.mark.parametrize("pid", [0, -1, 2**22 + 1])
def test_no_start_time_for_impossible_or_absent_pids(pid: int) -> None:
    assert state.read_start_time(pid) is None
    assert not state.is_alive(pid, 0)


def test_no_start_time_after_exit() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    assert state.read_start_time(proc.pid) is None


# -- the private directory ----------------------------------------------------

def test_private_dir_is_named_by_device_and_inode_and_private(tmp_path: Path, run_dir: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "link").symlink_to(root)
    st = os.stat(root)
    expected = run_dir / f"{st.st_dev:x}-{st.st_ino:x}"
    assert state.private_dir(str(root)) == str(expected)
    assert not run_dir.exists()  # naming it creates nothing
    assert state.ensure_private_dir(str(root)) == str(expected)
    assert state.ensure_private_dir(str(root)) == str(expected)  # again: no error
    # The same directory by another path is the same container.
    assert state.private_dir(str(tmp_path / "link")) == str(expected)
    for path in (run_dir, expected):
        mode = os.lstat(path).st_mode
        assert stat.S_ISDIR(mode) and stat.S_IMODE(mode) == 0o700, (path, oct(mode))
    assert names(root) == []  # nothing in the root dir


def test_private_dir_is_outside_the_root_dir(tmp_path: Path) -> None:
    # The root dir is usually the container's "/": nothing nsinit trusts may
    # live below it.
    directory = Path(state.ensure_private_dir(str(tmp_path)))
    assert not directory.resolve().is_relative_to(tmp_path.resolve())
    assert names(tmp_path) == []


# -- atomic writes -----------------------------------------------------------

def test_write_state_writes_record_and_public_copies_and_no_temp(tmp_path: Path) -> None:
    record = make_state(os.getpid(), own_start_time())
    state.write_state(str(tmp_path), record)
    assert names(tmp_path) == ["pid", "state.json"]
    assert (tmp_path / "pid").read_text() == str(os.getpid())
    assert json.loads((tmp_path / "state.json").read_text())["init_pid"] == os.getpid()
    assert names(private(tmp_path)) == ["state.json"]
    assert json.loads((private(tmp_path) / "state.json").read_text()) == json.loads(record.to_json())
    assert state.load_state(str(tmp_path)) == record


def test_a_full_record_is_written_as_json_writes_it(tmp_path: Path) -> None:
    # to_json writes the fields as they are (no asdict copy): every field
    # set, nested as a real record nests them, reads back the same.
    record = make_state(
        4242, 987654, namespace_paths={"NEWNET": "/proc/4242/ns/net"}, namespace_inodes={"NEWNET": 4026531992},
        cgroup_paths={"memory": "/sys/fs/cgroup/memory/c1"},
        network_state=[{"host_interface_name": "veth1", "addresses": ["10.0.0.2/24"], "mtu": 1500}],
        status="created", supervisor_pid=1, supervisor_start_time=2, detached=True,
        config={"namespaces": [{"type": "NEWNET", "path": ""}], "rootfs": "/r", "readonly": False,
                "limits": (1, 2.5, None)},
        hooks={"hooks": {"poststop": [{"path": "/bin/true", "args": ["true"], "env": [], "timeout": None}]}})
    assert record.to_json() == json.dumps(asdict(record), indent=2, sort_keys=True)
    read_back = state.read_record(str(plant_record(tmp_path, record.to_json()).parent))
    assert read_back == replace(record, config={**record.config, "limits": [1, 2.5, None]})


def test_update_state_rewrites_record_and_public_copy(tmp_path: Path) -> None:
    state.write_state(str(tmp_path), make_state(os.getpid(), own_start_time()))
    paused = make_state(os.getpid(), own_start_time(), status="paused")
    state.update_state(str(tmp_path), paused)
    assert json.loads((private(tmp_path) / "state.json").read_text())["status"] == "paused"
    assert json.loads((tmp_path / "state.json").read_text())["status"] == "paused"
    assert state.load_state(str(tmp_path)) == paused
    assert names(tmp_path) == ["pid", "state.json"]
    assert names(private(tmp_path)) == ["state.json"]


def test_write_replaces_by_rename_never_in_place(tmp_path: Path) -> None:
    record = make_state(os.getpid(), own_start_time())
    state.write_state(str(tmp_path), record)
    # Readers in the middle of reading, of either copy.
    readers = [open(tmp_path / "state.json"), open(private(tmp_path) / "state.json")]
    try:
        state.update_state(str(tmp_path), make_state(os.getpid(), own_start_time(), status="paused"))
        for old in readers:
            assert json.load(old)["status"] == "running"   # still the whole old file
    finally:
        for old in readers:
            old.close()
    assert json.loads((tmp_path / "state.json").read_text())["status"] == "paused"
    assert json.loads((private(tmp_path) / "state.json").read_text())["status"] == "paused"


def test_failed_write_leaves_old_files_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = make_state(os.getpid(), own_start_time())
    state.write_state(str(tmp_path), record)
    before = {path: path.read_text() for path in (tmp_path / "state.json", tmp_path / "pid",
                                                  private(tmp_path) / "state.json")}

    def failing_rename(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(state.os, "rename", failing_rename)
        with pytest.raises(OSError):
            state.update_state(str(tmp_path), make_state(os.getpid(), 1))
        with pytest.raises(OSError):
            state.write_state(str(tmp_path), make_state(os.getpid(), 1))
    assert {path: path.read_text() for path in before} == before
    assert names(tmp_path) == ["pid", "state.json"]
    assert names(private(tmp_path)) == ["state.json"]
    assert state.load_state(str(tmp_path)) == record


def test_public_write_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    # The container's root can plant anything in its "/" while it runs,
    # e.g. the temp name a later update (pause, resume, update) writes to:
    # nsinit must not write through it into a host file.
    root = tmp_path / "root"
    root.mkdir()
    victim = tmp_path / "host-file"
    victim.write_text("precious\n")
    state.write_state(str(root), make_state(os.getpid(), own_start_time()))
    for name in ("state.json", "pid"):
        (root / f"{name}.tmp{os.getpid()}").symlink_to(victim)
    paused = make_state(os.getpid(), own_start_time(), status="paused")
    state.update_state(str(root), paused)
    state.write_state(str(root), paused)
    assert victim.read_text() == "precious\n"
    assert names(root) == ["pid", "state.json"]
    assert not (root / "state.json").is_symlink() and not (root / "pid").is_symlink()
    assert json.loads((root / "state.json").read_text())["status"] == "paused"
    assert state.load_state(str(root)) == paused


# -- loading: what counts as a record ----------------------------------------

def test_nothing_recorded(tmp_path: Path, run_dir: Path) -> None:
    assert state.load_state(str(tmp_path)) is None
    assert not run_dir.exists()  # a reader creates nothing


def test_empty_private_dir_is_no_container(tmp_path: Path) -> None:
    # What a lock holder that has not written a record leaves, for a moment.
    state.ensure_private_dir(str(tmp_path))
    assert state.load_state(str(tmp_path)) is None


def test_record_without_public_copies_is_loaded(tmp_path: Path) -> None:
    # What a creation leaves for an instant between its writes (the private
    # record comes first): a reader must neither report nor remove it.
    record = make_state(os.getpid(), own_start_time())
    plant_record(tmp_path, record.to_json())
    assert state.load_state(str(tmp_path)) == record
    assert names(tmp_path) == []


def test_live_process_is_loaded(tmp_path: Path) -> None:
    record = make_state(os.getpid(), own_start_time())
    plant_record(tmp_path, record.to_json())
    write_public(tmp_path, f"{os.getpid()}\n", record.to_json())
    assert state.load_state(str(tmp_path)) == record


def test_unknown_keys_from_a_newer_nsinit_are_ignored(tmp_path: Path) -> None:
    raw = json.loads(make_state(os.getpid(), own_start_time()).to_json())
    raw["something_new"] = {"x": 1}
    plant_record(tmp_path, json.dumps(raw))
    loaded = state.load_state(str(tmp_path))
    assert loaded is not None and loaded.init_pid == os.getpid()


def stale_reason(root: Path) -> str:
    with pytest.raises(StaleStateError) as info:
        state.load_state(str(root))
    text = str(info.value)
    assert text and "\n" not in text
    return text


# -- the public copies are never trusted ---------------------------------------

def public_only_cases(pid: int, start_time: int) -> dict[str, tuple[str | None, str | None]]:
    live = make_state(pid, start_time).to_json()
    return {
        "pid and state.json of a live process": (str(pid), live),
        "pid only": (str(pid), None),
        "state.json only": (None, live),
        "garbage pid": ("abc", None),
        "truncated state.json": (str(pid), live[: len(live) // 2]),
    }


@pytest.mark.parametrize("case", list(public_only_cases(1, 1)))
def test_public_files_without_a_private_record_are_stale(tmp_path: Path, case: str) -> None:
    pid_text, state_text = public_only_cases(os.getpid(), own_start_time())[case]
    write_public(tmp_path, pid_text, state_text)
    assert "without a live container" in stale_reason(tmp_path)
    # The caller then removes them; nothing is left and nothing more is stale.
    state.remove_state(str(tmp_path))
    assert names(tmp_path) == []
    assert state.load_state(str(tmp_path)) is None


@pytest.mark.parametrize("kind", ["directory", "dangling symlink", "symlink to a live record"])
def test_odd_public_entries_without_a_private_record_are_stale(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    if kind == "directory":
        (root / "pid").mkdir()
    elif kind == "dangling symlink":
        (root / "state.json").symlink_to(tmp_path / "nowhere")
    else:
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(make_state(os.getpid(), own_start_time()).to_json())
        (root / "state.json").symlink_to(elsewhere)
    assert "without a live container" in stale_reason(root)


@pytest.mark.parametrize("forgery", ["another live process", "garbage", "directories"])
def test_forged_public_files_beside_a_live_record_are_ignored(
        tmp_path: Path, sleeper: subprocess.Popen[bytes], forgery: str) -> None:
    record = make_state(os.getpid(), own_start_time())
    state.write_state(str(tmp_path), record)
    for name in ("pid", "state.json"):
        (tmp_path / name).unlink()
    if forgery == "another live process":
        # A perfect record of another process: right start time, its own
        # namespaces.
        other_start = state.read_start_time(sleeper.pid)
        assert other_start is not None
        inodes = {"NEWNS": os.stat(f"/proc/{sleeper.pid}/ns/mnt").st_ino}
        write_public(tmp_path, str(sleeper.pid),
                     make_state(sleeper.pid, other_start, namespace_inodes=inodes).to_json())
    elif forgery == "garbage":
        write_public(tmp_path, "abc", "{")
    else:
        (tmp_path / "pid").mkdir()
        (tmp_path / "state.json").mkdir()
    assert state.load_state(str(tmp_path)) == record
    assert sleeper.poll() is None


# -- loading: garbage and fakes in the private record ------------------------

@pytest.mark.parametrize("value", ["abc", "", "12abc", "1.5", "\x00\xff", 1.5, None, True, [], {}])
def test_init_pid_that_is_no_integer(tmp_path: Path, value: object) -> None:
    raw = json.loads(make_state(os.getpid(), own_start_time()).to_json())
    raw["init_pid"] = value
    plant_record(tmp_path, json.dumps(raw))
    assert "init_pid is not an integer" in stale_reason(tmp_path)


@pytest.mark.parametrize("pid", [0, -1, -5, 2**22 + 1])
def test_init_pid_that_is_no_process(tmp_path: Path, pid: int) -> None:
    # -1 would signal every process, 0 our own process group.
    plant_record(tmp_path, make_state(pid, own_start_time()).to_json())
    assert "is gone" in stale_reason(tmp_path)


def test_record_that_is_a_directory(tmp_path: Path) -> None:
    (Path(state.ensure_private_dir(str(tmp_path))) / "state.json").mkdir()
    assert "state.json" in stale_reason(tmp_path)


def test_truncated_record(tmp_path: Path) -> None:
    text = make_state(os.getpid(), own_start_time()).to_json()
    plant_record(tmp_path, text[: len(text) // 2])
    write_public(tmp_path, str(os.getpid()), text)  # an intact public copy changes nothing
    assert "not valid JSON" in stale_reason(tmp_path)


@pytest.mark.parametrize("content, reason", [
    (b"", "not valid JSON"),
    (b"[]", "does not hold an object"),
    (b'"x"', "does not hold an object"),
    (b"{}", "lacks"),
    (b'{"init_pid": 1}', "lacks"),
    (b"\xff", "not valid JSON"),
])
def test_malformed_record(tmp_path: Path, content: bytes, reason: str) -> None:
    plant_record(tmp_path, content)
    assert reason in stale_reason(tmp_path)


def test_a_record_from_before_cgroup_parents_made_loads_with_none(tmp_path: Path) -> None:
    raw = json.loads(make_state(os.getpid(), own_start_time(), cgroup_paths={"pids": "/c/pids/a/b"}).to_json())
    del raw["cgroup_parents_made"]
    plant_record(tmp_path, json.dumps(raw))
    loaded = state.load_state(str(tmp_path))
    assert loaded is not None and loaded.cgroup_parents_made == []


def test_cgroup_parents_made_round_trips(tmp_path: Path) -> None:
    record = make_state(os.getpid(), own_start_time(), cgroup_paths={"pids": "/c/pids/a/b"},
                        cgroup_parents_made=["/c/pids/a"])
    plant_record(tmp_path, record.to_json())
    assert state.load_state(str(tmp_path)) == record


@pytest.mark.parametrize("changes, reason", [
    ({"init_start_time": "soon"}, "init_start_time is not an integer"),
    ({"init_start_time": True}, "init_start_time is not an integer"),
    ({"namespace_inodes": {"NEWFOO": 1}}, "namespace_inodes is malformed"),
    ({"namespace_inodes": {"NEWNET": "x"}}, "namespace_inodes is malformed"),
    ({"namespace_inodes": []}, "namespace_inodes is malformed"),
    ({"cgroup_paths": {"pids": "/c/pids/a/b"}, "cgroup_parents_made": "/c/pids/a"}, "cgroup_parents_made is malformed"),
    # Only directories above the container's own cgroups may be recorded for removal.
    ({"cgroup_paths": {"pids": "/c/pids/a/b"}, "cgroup_parents_made": ["/c/pids/x"]},
     "cgroup_parents_made is malformed"),
    ({"cgroup_paths": {"pids": "/c/pids/a/b"}, "cgroup_parents_made": ["/c/pids/a/b"]},
     "cgroup_parents_made is malformed"),
    ({"cgroup_paths": {"pids": "/c/pids/a/b"}, "cgroup_parents_made": ["/"]}, "cgroup_parents_made is malformed"),
])
def test_wrong_types_in_record(tmp_path: Path, changes: dict[str, object], reason: str) -> None:
    raw = json.loads(make_state(os.getpid(), own_start_time()).to_json())
    raw.update(changes)
    plant_record(tmp_path, json.dumps(raw))
    assert reason in stale_reason(tmp_path)


def test_dead_pid(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    plant_record(tmp_path, make_state(proc.pid, 12345).to_json())
    assert "is gone" in stale_reason(tmp_path)


def test_reused_pid_has_another_start_time(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    real = state.read_start_time(sleeper.pid)
    assert real is not None
    plant_record(tmp_path, make_state(sleeper.pid, real - 1).to_json())
    assert "another process" in stale_reason(tmp_path)
    assert sleeper.poll() is None


def test_right_start_time_but_other_namespaces(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    real = state.read_start_time(sleeper.pid)
    record = make_state(sleeper.pid, real, namespace_inodes={"NEWNS": 1, "NEWNET": 2})
    plant_record(tmp_path, record.to_json())
    assert "not the container's init" in stale_reason(tmp_path)


def test_right_start_time_and_inodes_but_host_namespaces(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    # A record faked to match a host process exactly: its namespaces are
    # ours, so it cannot be a container's init.
    real = state.read_start_time(sleeper.pid)
    inodes = {"NEWNS": os.stat(f"/proc/{sleeper.pid}/ns/mnt").st_ino,
              "NEWPID": os.stat(f"/proc/{sleeper.pid}/ns/pid").st_ino}
    plant_record(tmp_path, make_state(sleeper.pid, real, namespace_inodes=inodes).to_json())
    assert "shares nsinit's own" in stale_reason(tmp_path)


def test_namespace_joined_by_path_may_be_shared(tmp_path: Path) -> None:
    # NEWNET given by path (e.g. the host's): sharing it is the point.
    inodes = {"NEWNET": os.stat("/proc/self/ns/net").st_ino}
    config = {"namespaces": [{"type": "NEWNET", "path": "/proc/1/ns/net"}]}
    record = make_state(os.getpid(), own_start_time(), namespace_inodes=inodes, config=config)
    plant_record(tmp_path, record.to_json())
    assert state.load_state(str(tmp_path)) == record
    # ...but only the one joined by path.
    inodes["NEWNS"] = os.stat("/proc/self/ns/mnt").st_ino
    plant_record(tmp_path, make_state(os.getpid(), own_start_time(), namespace_inodes=inodes,
                                      config=config).to_json())
    assert "shares nsinit's own mnt" in stale_reason(tmp_path)


def test_zombie_init_counts_as_gone(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        # Wait for it to be a zombie (state Z) without reaping it: by the
        # clock, not a count of yields, which a loaded machine can run out.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
            time.sleep(0.001)
        start = state.read_start_time(pid)
        assert start is not None  # still in /proc
        inodes = {"NEWNS": 1}
        plant_record(tmp_path, make_state(pid, start, namespace_inodes=inodes).to_json())
        assert "has exited" in stale_reason(tmp_path)
    finally:
        os.waitpid(pid, 0)


# -- removal -----------------------------------------------------------------

def test_remove_without_pid_keeps_the_private_dir(tmp_path: Path) -> None:
    # Clearing stale files for a new container: the caller holds the lock
    # on the private dir and is about to write there.
    state.write_state(str(tmp_path), make_state(os.getpid(), own_start_time()))
    state.remove_state(str(tmp_path))
    assert names(tmp_path) == []
    assert private(tmp_path).is_dir() and names(private(tmp_path)) == []
    assert state.load_state(str(tmp_path)) is None
    state.remove_state(str(tmp_path))  # nothing there: no error


def test_remove_with_pid_removes_the_private_dir(tmp_path: Path, run_dir: Path) -> None:
    state.write_state(str(tmp_path), make_state(os.getpid(), own_start_time()))
    state.remove_state(str(tmp_path), pid=os.getpid())
    assert names(tmp_path) == []
    assert not private(tmp_path).exists()
    assert names(run_dir) == []
    assert state.load_state(str(tmp_path)) is None
    state.remove_state(str(tmp_path), pid=os.getpid())  # nothing there: no error


def test_remove_only_own_record(tmp_path: Path) -> None:
    state.write_state(str(tmp_path), make_state(4242, 1))
    state.remove_state(str(tmp_path), pid=4343)   # a dying older supervisor
    assert names(tmp_path) == ["pid", "state.json"]
    assert names(private(tmp_path)) == ["state.json"]
    state.remove_state(str(tmp_path), pid=4242)
    assert names(tmp_path) == []
    assert not private(tmp_path).exists()


def test_remove_spares_a_newer_record_being_written(tmp_path: Path) -> None:
    # A newer creation has written its private record but no public copy yet.
    plant_record(tmp_path, make_state(4343, 1).to_json())
    state.remove_state(str(tmp_path), pid=4242)
    assert names(private(tmp_path)) == ["state.json"]
    state.remove_state(str(tmp_path), pid=4343)
    assert names(tmp_path) == []
    assert not private(tmp_path).exists()


@pytest.mark.parametrize("forgery", ["another pid", "garbage", "fifo"])
def test_remove_own_record_removes_forged_public_files(tmp_path: Path, forgery: str) -> None:
    # The container's root rewrote the public pid file while it ran; its
    # content decides nothing, and reading it must not hang (a FIFO).
    state.write_state(str(tmp_path), make_state(4242, 1))
    pid_path = tmp_path / "pid"
    pid_path.unlink()
    if forgery == "another pid":
        pid_path.write_text("4343")
    elif forgery == "garbage":
        pid_path.write_text("abc")
    else:
        os.mkfifo(pid_path)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (state.remove_state(str(tmp_path), pid=4242), done.set()),
                              daemon=True)
    worker.start()
    worker.join(timeout=5)
    if not done.is_set():
        # Unblock a reader stuck on the FIFO before failing.
        os.close(os.open(pid_path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("remove_state hung on the public pid file")
    assert names(tmp_path) == []
    assert not private(tmp_path).exists()


def test_remove_with_pid_tolerates_a_leftover_in_the_private_dir(tmp_path: Path) -> None:
    # A temp file of a writer that was SIGKILLed mid-write.
    state.write_state(str(tmp_path), make_state(4242, 1))
    (private(tmp_path) / "state.json.tmp99999").write_text("{")
    state.remove_state(str(tmp_path), pid=4242)
    assert names(tmp_path) == []
    assert not (private(tmp_path) / "state.json").exists()


def test_remove_a_pid_directory_is_one_clean_error(tmp_path: Path) -> None:
    (tmp_path / "pid").mkdir()
    with pytest.raises(NsinitError) as info:
        state.remove_state(str(tmp_path))
    assert "pid" in str(info.value)


# -- the root lock -----------------------------------------------------------

FLOCK_PROBE = ("import fcntl, os, sys\n"
               "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
               "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
               "except BlockingIOError:\n    sys.exit(3)\n")


def flock_probe(path: Path | str) -> int:
    """3 if another open file holds a flock on ``path``, 0 if not."""
    return subprocess.run([sys.executable, "-c", FLOCK_PROBE, str(path)], timeout=10).returncode


# Holds an exclusive flock on argv[1] until told to go on; then does what
# stdin says: "rmdir" removes the directory first, like a container's end.
FLOCK_HOLDER = ("import fcntl, os, sys\n"
                "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                "print(os.fstat(fd).st_ino, flush=True)\n"
                "if sys.stdin.readline().strip() == 'rmdir':\n"
                "    os.rmdir(sys.argv[1])\n"
                "os.close(fd)\n")


def hold_flock(path: Path | str) -> tuple[subprocess.Popen[str], int]:
    holder = subprocess.Popen([sys.executable, "-c", FLOCK_HOLDER, str(path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line.strip().isdigit(), line
    return holder, int(line)


def let_go(holder: subprocess.Popen[str], how: str = "release") -> None:
    assert holder.stdin is not None
    holder.stdin.write(how + "\n")
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0


def test_root_lock_is_exclusive_and_leaves_nothing(tmp_path: Path, run_dir: Path) -> None:
    lock = state.RootLock(str(tmp_path))
    assert not lock.held
    with lock:
        assert lock.held
        assert flock_probe(private(tmp_path)) == 3
        assert os.fstat(lock.fd).st_ino == private(tmp_path).stat().st_ino
        assert fcntl.fcntl(lock.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert not lock.held
    # Nothing recorded: the lock's directory goes with it.
    assert names(tmp_path) == []
    assert names(run_dir) == []
    again = state.RootLock(str(tmp_path))
    try:
        assert again.try_acquire(0) is True
    finally:
        again.release()
    assert names(run_dir) == []


def test_root_lock_does_not_live_in_the_root_dir(tmp_path: Path) -> None:
    # The root dir is usually the container's "/": a process in there that
    # flocks it blocks no nsinit...
    holder, _ = hold_flock(tmp_path)
    try:
        lock = state.RootLock(str(tmp_path))
        try:
            began = time.monotonic()
            assert lock.try_acquire(5) is True
            assert time.monotonic() - began < 1
        finally:
            lock.release()
        done = threading.Event()
        worker = threading.Thread(target=lambda: (state.RootLock(str(tmp_path)).acquire().release(), done.set()),
                                  daemon=True)
        worker.start()
        worker.join(timeout=5)
        assert done.is_set(), "RootLock.acquire blocked on a flock of the root dir"
    finally:
        let_go(holder)
    # ...and nsinit's lock takes no flock on the root dir either.
    with state.RootLock(str(tmp_path)):
        assert flock_probe(tmp_path) == 0


def test_root_lock_bounded_wait(tmp_path: Path) -> None:
    with state.RootLock(str(tmp_path)):
        other = state.RootLock(str(tmp_path))  # another open file: flock conflicts
        try:
            began = time.monotonic()
            assert other.try_acquire(0.05) is False
            assert time.monotonic() - began < 2
            assert not other.held
        finally:
            other.release()
    other = state.RootLock(str(tmp_path))
    try:
        assert other.try_acquire(0.05) is True
        assert other.held
    finally:
        other.release()


def blocked_on(inode: int) -> bool:
    """Whether some flock on ``inode`` is waiting (a "->" line in /proc/locks)."""
    with open("/proc/locks") as f:
        return any("->" in line and f":{inode} " in line for line in f)


@pytest.mark.parametrize("wait", ["blocking", "bounded"])
def test_root_lock_starts_over_when_the_dir_it_waited_on_is_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait: str) -> None:
    opened: list[str] = []
    real_ensure = state.ensure_private_dir

    def counting_ensure(root: str) -> str:
        opened.append(root)
        return real_ensure(root)

    monkeypatch.setattr(state, "ensure_private_dir", counting_ensure)
    old = real_ensure(str(tmp_path))
    holder, old_inode = hold_flock(old)
    lock = state.RootLock(str(tmp_path))
    result: list[bool] = []
    if wait == "blocking":
        def take() -> None:
            result.append(lock.acquire().held)

        def waiting() -> bool:
            return blocked_on(old_inode)  # in flock(), in the kernel
    else:
        def take() -> None:
            result.append(lock.try_acquire(10))

        def waiting() -> bool:  # polling with LOCK_NB, on the old directory
            fd = lock.fd
            try:
                return fd >= 0 and os.fstat(fd).st_ino == old_inode
            except OSError:
                return False
    waiter = threading.Thread(target=take, daemon=True)
    try:
        waiter.start()
        deadline = time.monotonic() + 10
        while not waiting() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert waiting(), "the waiter never waited on the old directory"
        time.sleep(0.05)
        assert waiter.is_alive() and not result  # still waiting
        # The container ends: its supervisor removes the directory, then
        # lets go of the lock.
        let_go(holder, "rmdir")
        waiter.join(timeout=10)
        assert result == [True]
        assert len(opened) == 2  # the old directory, then the new one
        new = private(tmp_path)
        assert new.is_dir()
        assert os.fstat(lock.fd).st_ino == new.stat().st_ino
        assert flock_probe(new) == 3  # really held, on the directory that is there now
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=5)
        waiter.join(timeout=10)
        lock.release()


def test_root_lock_starts_over_when_the_dir_goes_before_it_is_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Between making sure the directory exists and opening it, a container's
    # end may remove it; that is a retry, not an error.
    real_ensure = state.ensure_private_dir
    calls: list[str] = []

    def vanishing_ensure(root: str) -> str:
        path = real_ensure(root)
        calls.append(path)
        if len(calls) == 1:
            os.rmdir(path)
        return path

    monkeypatch.setattr(state, "ensure_private_dir", vanishing_ensure)
    lock = state.RootLock(str(tmp_path))
    try:
        assert lock.try_acquire(5) is True
        assert len(calls) == 2
        assert os.fstat(lock.fd).st_ino == private(tmp_path).stat().st_ino
    finally:
        lock.release()


def test_root_lock_release_keeps_a_dir_with_a_record(tmp_path: Path) -> None:
    record = make_state(os.getpid(), own_start_time())
    with state.RootLock(str(tmp_path)):
        state.write_state(str(tmp_path), record)
    assert names(private(tmp_path)) == ["state.json"]
    assert state.load_state(str(tmp_path)) == record


def test_root_lock_release_never_removes_a_newer_dir(tmp_path: Path) -> None:
    # A's container ends: A removes the directory it holds locked; B, which
    # was waiting, starts over on a new directory.  A's release must leave
    # B's directory (and so B's lock) alone.
    first = state.RootLock(str(tmp_path)).acquire()
    try:
        state.write_state(str(tmp_path), make_state(4242, 1))
        state.remove_state(str(tmp_path), pid=4242)
        assert not private(tmp_path).exists()
        second = state.RootLock(str(tmp_path))
        assert second.try_acquire(1) is True
    finally:
        first.release()
    try:
        assert private(tmp_path).is_dir()
        assert os.fstat(second.fd).st_ino == private(tmp_path).stat().st_ino
        assert flock_probe(private(tmp_path)) == 3
        third = state.RootLock(str(tmp_path))
        try:
            assert third.try_acquire(0.05) is False
        finally:
            third.release()
    finally:
        second.release()
    assert not private(tmp_path).exists()


def test_root_lock_open_failure_is_an_oserror(tmp_path: Path) -> None:
    # A root dir that does not exist: callers turn OSError into one line.
    lock = state.RootLock(str(tmp_path / "missing"))
    with pytest.raises(OSError) as info:
        lock.try_acquire(0.05)
    assert info.value.errno == errno.ENOENT
    assert not lock.held


def test_a_bounded_lock_goes_on_without_it_and_says_so(tmp_path: Path) -> None:
    # state, ps, kill, stop: a slow creation must not keep them waiting.
    warnings: list[str] = []
    with state.RootLock(str(tmp_path)):
        looking = state.RootLock(str(tmp_path), wait=0.05, warn=warnings.append)
        began = time.monotonic()
        with looking:
            assert not looking.held
        assert time.monotonic() - began < 2
    assert warnings == [f"{tmp_path} stays locked; going on without the lock"]
    with state.RootLock(str(tmp_path), wait=0.05, warn=warnings.append) as free:
        assert free.held
    assert len(warnings) == 1 and not free.held


def test_a_bounded_lock_that_cannot_open_is_one_state_error_exit_1(tmp_path: Path) -> None:
    with pytest.raises(NsinitError) as info:
        with state.RootLock(str(tmp_path / "missing"), wait=0.05):
            raise AssertionError("entered")
    assert (info.value.step, info.value.exit_code) == ("state", 1)
    assert "No such file or directory" in info.value.message


def test_the_container_lock_is_the_root_dirs(tmp_path: Path) -> None:
    from nsinit.container import Container

    warnings: list[str] = []
    container = Container(str(tmp_path), None, warn=warnings.append)
    with container.locked() as lock:
        assert lock.held and flock_probe(private(tmp_path)) == 3
        with container.locked(wait=0.05) as looking:
            assert not looking.held
    assert warnings == [f"{tmp_path} stays locked; going on without the lock"]


def test_an_ended_container_whose_supervisor_lives_is_stopped_not_stale(tmp_path: Path) -> None:
    # The init exited; its nsinit (here: this test process) is about to
    # remove everything.  Nobody else may treat that as stale and clean up.
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    record = make_state(proc.pid, 12345, supervisor_pid=os.getpid(), supervisor_start_time=own_start_time())
    plant_record(tmp_path, record.to_json())
    with pytest.raises(state.ContainerStoppedError) as stopped:
        state.load_state(str(tmp_path))
    assert stopped.value.record.init_pid == proc.pid
    assert state.wait_for_removal(str(tmp_path), stopped.value.record, timeout=0.05) is False
    (private(tmp_path) / "state.json").unlink()
    assert state.wait_for_removal(str(tmp_path), stopped.value.record, timeout=0.05) is True


def test_an_ended_container_whose_supervisor_died_is_stale(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=5)
    record = make_state(gone.pid, 12345, supervisor_pid=gone.pid, supervisor_start_time=1)
    plant_record(tmp_path, record.to_json())
    assert "is gone" in stale_reason(tmp_path)


@pytest.mark.parametrize("status", ["created", "running", "paused"])
def test_an_ended_detached_container_is_stopped_until_deleted(tmp_path: Path, status: str) -> None:
    # Nobody supervises it: its end is a "stopped" container (OCI), kept for
    # delete, not stale files to remove on sight.
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=5)
    plant_record(tmp_path, make_state(gone.pid, 12345, detached=True, status=status).to_json())
    with pytest.raises(state.ContainerStoppedError) as stopped:
        state.load_state(str(tmp_path))
    assert str(stopped.value) == f"container init {gone.pid} has exited; nsinit delete removes it"


def test_a_detached_creation_that_died_half_way_is_stale(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=5)
    plant_record(tmp_path, make_state(gone.pid, 12345, detached=True, status="creating").to_json())
    assert "is gone" in stale_reason(tmp_path)


def test_removing_a_record_removes_its_exec_fifo(tmp_path: Path, run_dir: Path) -> None:
    plant_record(tmp_path, make_state(os.getpid(), own_start_time()).to_json())
    os.mkfifo(private(tmp_path) / state.EXEC_FIFO)
    state.remove_state(str(tmp_path), os.getpid())
    assert not private(tmp_path).exists()


def test_every_namespace_kind_has_its_proc_file() -> None:
    # state.py holds the table (config.names re-exports it): one per kind a
    # config can name, each a file the kernel has under /proc/self/ns.
    from nsinit.config.names import NAMESPACE_CLONE_FLAGS

    assert set(state.NAMESPACE_PROC_FILES) == set(NAMESPACE_CLONE_FLAGS)
    for name in state.NAMESPACE_PROC_FILES.values():
        assert os.path.exists(f"/proc/self/ns/{name}"), name
