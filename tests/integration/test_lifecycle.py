"""``nsinit state | ps | kill | config | spec`` against real containers.

Every command aimed at a directory without a live container says so in one
line and exits 1; none ever prints a traceback.
"""
from __future__ import annotations

import calendar
import fcntl
import json
import os
import re
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import pytest

from conftest import LOOP, Nsinit, needs_root, stderr_lines
from _live import (READY, Live, ns_inode, ok, one_error_line, planted_record, private_dir,  # noqa: F401 (fixture)
                   start, wait_until)

pytestmark = [pytest.mark.integration, needs_root]

SLEEP_30 = b"sleep\x0030\x00"

LIFECYCLE_COMMANDS = [["state"], ["state", "--json"], ["ps"], ["ps", "--json"], ["kill"],
                      ["kill", "--all", "KILL"], ["kill", "9"], ["stop"], ["stop", "--time", "1"]]


# -- state -------------------------------------------------------------------

def test_state_json(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    data = json.loads(ok(nsinit.run("state", "--json")))
    assert data["status"] == "running"
    assert data["init_pid"] == live.pid
    stat = Path(f"/proc/{live.pid}/stat").read_bytes()
    assert data["init_start_time"] == int(stat[stat.rindex(b")") + 2:].split()[19])
    kinds = {"NEWNS": "mnt", "NEWUTS": "uts", "NEWIPC": "ipc", "NEWPID": "pid", "NEWNET": "net"}
    assert data["namespace_inodes"] == {name: ns_inode(live.pid, kind) for name, kind in kinds.items()}
    created = calendar.timegm(time.strptime(data["created"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(created - time.time()) < 60
    assert data["root"] == str(nsinit.root)
    assert len(data["config"]["capabilities"]["bounding"]) == 14


def test_state_text(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    out = ok(nsinit.run("state"))
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        fields.setdefault(key, []).append(value.strip())
    assert fields["status"] == ["running"]
    assert fields["pid"] == [str(live.pid)]
    started = fields["started"][0]
    stat = Path(f"/proc/{live.pid}/stat").read_bytes()
    assert stat[stat.rindex(b")") + 2:].split()[19].decode() in started
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", fields["created"][0])
    namespaces = {value.split()[0]: int(value.split()[1]) for value in fields["namespace"]}
    assert namespaces["NEWNET"] == ns_inode(live.pid, "net")
    assert set(namespaces) == {"NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"}


@pytest.mark.parametrize("case", ["record of a dead init", "public files only"])
def test_state_with_stale_files_warns_removes_and_fails(nsinit: Nsinit, case: str) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    stale = json.dumps({"init_pid": proc.pid, "init_start_time": 1, "created": "", "root": "", "rootfs": ""})
    (nsinit.root / "pid").write_text(str(proc.pid))
    (nsinit.root / "state.json").write_text(stale)
    with planted_record(nsinit.root, stale) if case == "record of a dead init" else nullcontext():
        result = nsinit.run("state")
        assert result.returncode == 1
        lines = stderr_lines(result)
        assert len(lines) == 2 and "warning" in lines[0] and "no running container" in lines[1], lines
        assert ("is gone" if case == "record of a dead init" else "without a live container") in lines[0]
        assert not (nsinit.root / "pid").exists() and not (nsinit.root / "state.json").exists()
        assert not os.path.lexists(private_dir(nsinit.root))
    # Nothing stale is left: the next command says only that nothing runs.
    assert "no running container" in one_error_line(nsinit.run("state"))


# -- ps ------------------------------------------------------------------------

def test_ps_lists_init_and_joined_processes(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start(cmdline=SLEEP_30)
    joined = nsinit.popen("exec", "/bin/sh", "-c", "exec sleep 31")
    try:
        def listed() -> list[dict[str, object]]:
            return json.loads(ok(nsinit.run("ps", "--json")))

        wait_until(lambda: any(row["command"] == "sleep 31" for row in listed()) or joined.poll() is not None)
        rows = listed()
        by_command = {row["command"]: row for row in rows}
        assert by_command["sleep 30"] == {"pid": live.pid, "container_pid": 1, "command": "sleep 30"}
        other = by_command["sleep 31"]
        assert other["pid"] != live.pid and other["container_pid"] not in (1, other["pid"])
        assert Path(f"/proc/{other['pid']}/cmdline").read_bytes() == b"sleep\x0031\x00"
        assert len(rows) == 2

        text = ok(nsinit.run("ps")).splitlines()
        assert text[0].split() == ["PID", "CPID", "COMMAND"]
        assert [str(live.pid), "1", "sleep", "30"] in [line.split() for line in text[1:]]
        assert len(text) == 3
    finally:
        live.stop()
        joined.communicate(timeout=10)
    assert joined.returncode == 137


# -- kill ----------------------------------------------------------------------

@pytest.mark.parametrize("args, trapped", [
    ([], "TERM"), (["SIGTERM"], "TERM"), (["usr1"], "USR1"), (["1"], "HUP"),
], ids=["default", "SIGTERM", "usr1", "1"])
def test_kill_signals_pid1(nsinit: Nsinit, start: Callable[..., Live], args: list[str], trapped: str) -> None:
    # PID 1 of a PID namespace ignores signals it has no handler for: trap it.
    live = start(f'trap "echo got-{trapped}; exit 3" {trapped}; {READY}; {LOOP}')
    ok(nsinit.run("kill", *args))
    assert live.finish() == 3
    assert f"got-{trapped}" in live.stdout


@pytest.mark.parametrize("spelling", ["-9", "-KILL", "KILL", "SIGKILL", "9", "-sigkill"])
def test_kill_takes_every_spelling_of_kill_1(nsinit: Nsinit, start: Callable[..., Live], spelling: str) -> None:
    live = start()
    ok(nsinit.run("kill", spelling))
    assert live.finish() == 137


def test_kill_dash_signal_with_all(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start(f'trap "echo got-USR1; exit 3" USR1; {READY}; {LOOP}')
    ok(nsinit.run("kill", "-USR1", "--all"))
    assert live.finish() == 3 and "got-USR1" in live.stdout


# -- stop ----------------------------------------------------------------------

def test_stop_ends_a_pid1_that_handles_term_at_once(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start(f'trap "echo got-TERM; exit 3" TERM; {READY}; {LOOP}')
    began = time.monotonic()
    ok(nsinit.run("stop"))
    assert time.monotonic() - began < 5
    # Gone when stop returns: its nsinit has removed the record.
    assert not (nsinit.root / "pid").exists() and not os.path.lexists(private_dir(nsinit.root))
    assert live.finish() == 3 and "got-TERM" in live.stdout


def test_stop_kills_a_pid1_that_ignores_term_after_the_grace_time(
        nsinit: Nsinit, start: Callable[..., Live]) -> None:
    # A shell as PID 1 without a TERM trap ignores TERM (the kernel's rule
    # for a pid namespace's init); so does a joined process's parent here.
    live = start(f"{READY}; {LOOP}")
    joined = nsinit.popen("exec", "/bin/sh", "-c", f"touch /tmp/joined; {LOOP}")
    try:
        wait_until(lambda: (nsinit.root / "tmp" / "joined").exists() or joined.poll() is not None)
        began = time.monotonic()
        result = nsinit.run("stop", "--time", "1")
        took = time.monotonic() - began
        joined.communicate(timeout=10)
    finally:
        if joined.poll() is None:
            joined.kill()
            joined.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == ["nsinit: stop: PID 1 was still running 1 s after SIGTERM; killed it (SIGKILL)"]
    assert 1 <= took < 6
    assert not (nsinit.root / "pid").exists() and not os.path.lexists(private_dir(nsinit.root))
    assert live.finish() == 137 and joined.returncode == 137


def test_stop_thaws_a_paused_container(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start(f'trap "exit 3" TERM; {READY}; {LOOP}')
    ok(nsinit.run("pause"))
    ok(nsinit.run("stop", "--time", "5"))
    assert live.finish() == 3


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
def test_stop_bad_time_is_one_line(nsinit: Nsinit, start: Callable[..., Live], value: str) -> None:
    live = start()
    assert "--time" in one_error_line(nsinit.run("stop", "--time", value))
    assert live.alive()


def test_kill_without_all_reaches_only_pid1(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start(f'trap "touch /tmp/init-got-it" USR1; {READY}; {LOOP}')
    joined = nsinit.popen("exec", "/bin/sh", "-c",
                          f'trap "touch /tmp/joined-got-it" USR1; touch /tmp/joined; {LOOP}')
    tmp = nsinit.root / "tmp"
    try:
        wait_until(lambda: (tmp / "joined").exists() or joined.poll() is not None)
        assert joined.poll() is None
        ok(nsinit.run("kill", "USR1"))
        wait_until(lambda: (tmp / "init-got-it").exists())
        time.sleep(0.2)
        assert not (tmp / "joined-got-it").exists()
        ok(nsinit.run("kill", "--all", "USR1"))
        wait_until(lambda: (tmp / "joined-got-it").exists())
    finally:
        live.stop()
        joined.communicate(timeout=10)


def test_kill_all_kills_every_process(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    joined = nsinit.popen("exec", "/bin/sh", "-c", f"touch /tmp/joined; {LOOP}")
    try:
        wait_until(lambda: (nsinit.root / "tmp" / "joined").exists() or joined.poll() is not None)
        ok(nsinit.run("kill", "--all", "KILL"))
        _, err = joined.communicate(timeout=10)
    finally:
        if joined.poll() is None:
            joined.kill()
            joined.communicate(timeout=10)
    assert joined.returncode == 137 and "Traceback" not in err
    assert live.finish() == 137
    assert not (nsinit.root / "pid").exists()


def test_a_flock_on_the_containers_root_blocks_no_nsinit(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    # The root dir is the container's "/": anything inside can flock it.
    # nsinit's lock is its private dir's, so such a flock must hold up
    # nothing: no join, no lifecycle command, not the supervisor's cleanup.
    live = start()
    fd = os.open(f"/proc/{live.pid}/root", os.O_RDONLY | os.O_DIRECTORY)  # the container's "/"
    try:
        inside, outside = os.fstat(fd), os.stat(nsinit.root)
        assert (inside.st_dev, inside.st_ino) == (outside.st_dev, outside.st_ino)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # ok(): exit 0 and not a line on stderr (a lock that could not be
        # had within its wait would be reported there).
        assert ok(nsinit.sh("echo $$", timeout=20)).strip() != "1"  # joined
        assert json.loads(ok(nsinit.run("state", "--json", timeout=20)))["init_pid"] == live.pid
        assert str(live.pid) in ok(nsinit.run("ps", timeout=20))
        ok(nsinit.run("kill", "KILL", timeout=20))
        assert live.finish() == 137
        assert "Traceback" not in live.stderr
        # Cleaned up while the flock is still held.
        assert not (nsinit.root / "pid").exists() and not (nsinit.root / "state.json").exists()
        assert not os.path.lexists(private_dir(nsinit.root))
    finally:
        os.close(fd)


def test_state_and_kill_go_on_without_a_lock_held_too_long(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    # state, ps, kill and stop wait for the root lock a bounded time (a slow
    # creation holds it): then they say so and work all the same.
    from nsinit import state

    live = start()
    lock = state.RootLock(str(nsinit.root)).acquire()
    try:
        began = time.monotonic()
        looked = nsinit.run("state", "--json", timeout=20)
        assert looked.returncode == 0 and json.loads(looked.stdout)["init_pid"] == live.pid
        assert stderr_lines(looked) == [f"nsinit: warning: {nsinit.root} stays locked; going on without the lock"]
        assert 1.5 < time.monotonic() - began < 15
        killed = nsinit.run("kill", "KILL", timeout=20)
        assert killed.returncode == 0 and "stays locked" in killed.stderr
        wait_until(lambda: _exited(live.pid))
        assert live.alive()  # its supervisor waits for the lock to clean up
    finally:
        lock.release()
    assert live.finish() == 137
    assert not (nsinit.root / "pid").exists() and not os.path.lexists(private_dir(nsinit.root))


def _exited(pid: int) -> bool:
    """Gone, or a zombie its parent has yet to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: reaped while the file was read
        return True


@pytest.mark.parametrize("name", ["FOO", "SIGFOO", "0", "99", "1.5", "SIG"])
def test_kill_bad_signal_is_one_line(nsinit: Nsinit, name: str) -> None:
    line = one_error_line(nsinit.run("kill", name))
    assert "signal" in line


def test_kill_bad_signal_leaves_the_container_alone(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start(f'trap "exit 3" TERM; {READY}; {LOOP}')
    assert "signal" in one_error_line(nsinit.run("kill", "--all", "SIGNOPE"))
    time.sleep(0.2)
    assert live.alive()


# -- no live container ------------------------------------------------------

@pytest.mark.parametrize("command", LIFECYCLE_COMMANDS, ids=" ".join)
def test_commands_without_a_container_say_so(nsinit: Nsinit, command: list[str]) -> None:
    line = one_error_line(nsinit.run(*command))
    assert line == f"nsinit: {command[0]}: no running container in {nsinit.root}"
    assert not (nsinit.root / "pid").exists()


@pytest.mark.parametrize("command", [["state"], ["ps", "--json"], ["kill", "--all", "KILL"]], ids=" ".join)
def test_commands_after_the_container_exited_say_so(nsinit: Nsinit, command: list[str]) -> None:
    ok(nsinit.exec("/bin/true"))
    line = one_error_line(nsinit.run(*command))
    assert "no running container" in line


@pytest.mark.parametrize("command", [["state"], ["ps"], ["kill"]], ids=" ".join)
def test_commands_in_a_dir_without_config_say_no_container(tmp_path: Path, command: list[str]) -> None:
    line = one_error_line(Nsinit(tmp_path).run(*command))
    assert "no running container" in line


# -- usage errors -----------------------------------------------------------

@pytest.mark.parametrize("words, expected", [
    (["run", "sh"], 'unknown command "run": nsinit exec COMMAND creates the container (or joins the one '
                    'running in the root dir); exec --detach returns at once; see nsinit --help'),
    (["list"], 'unknown command "list": nsinit has no list: a container is its root dir; '
               'nsinit --root DIR state shows one; see nsinit --help'),
    (["rm"], 'unknown command "rm": nsinit delete removes a stopped container (--force: a running one); '
             'nsinit gc removes what dead ones left; see nsinit --help'),
    (["--root", ".", "frob"], 'unknown command "frob": see nsinit --help'),
    (["kill", "TERM", "extra"], "kill: bad arguments; usage: nsinit [options] kill [--all] [SIGNAL] (see nsinit --help)"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_usage_errors_are_one_line_naming_the_command(nsinit: Nsinit, words: list[str], expected: str) -> None:
    assert one_error_line(nsinit.run(*words)) == f"nsinit: {expected}"


@pytest.mark.parametrize("words", [["exec"], ["exec", "-t"], ["exec", "--"]], ids=" ".join)
def test_exec_without_a_command_is_one_line(nsinit: Nsinit, words: list[str]) -> None:
    result = nsinit.run(*words)
    assert result.returncode == 125
    assert stderr_lines(result) == ["nsinit: exec: no command given (e.g. nsinit exec /bin/sh); see nsinit exec --help"]


# -- config and spec --------------------------------------------------------

def test_config_prints_the_effective_config(nsinit: Nsinit) -> None:
    data = json.loads(ok(nsinit.run("config")))
    assert len(data["capabilities"]["bounding"]) == 14
    assert data["capabilities"]["effective"] == data["capabilities"]["bounding"]
    assert data["rootfs"] == str(nsinit.root)
    assert data["user"] == "root" and data["working_dir"] == "/"
    assert {ns["type"] for ns in data["namespaces"]} == {"NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"}
    assert any(m["destination"] == "/proc" for m in data["mounts"])
    assert data["hostname"] == "nsinit"


def test_config_of_a_running_container(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    start()
    assert json.loads(ok(nsinit.run("config")))["hostname"] == "nsinit"


def test_config_error_is_one_line(nsinit: Nsinit) -> None:
    (nsinit.root / "container.json").write_text('{"namespaces": 3}')
    assert "namespaces" in one_error_line(nsinit.run("config"))


BROKEN = {"hostname": 5, "working_dir": "rel", "cgroups": {"pids_limit": "many"}}
BROKEN_LINES = ["nsinit: container.json: hostname: must be a string",
                "nsinit: container.json: working_dir: must be an absolute path",
                "nsinit: container.json: cgroups.pids_limit: must be an integer"]


def test_config_lists_every_error_at_once_and_exits_1(nsinit: Nsinit) -> None:
    nsinit.config(**BROKEN)
    result = nsinit.run("config")
    assert (result.returncode, stderr_lines(result)) == (1, BROKEN_LINES)
    assert not result.stdout


def test_exec_lists_every_config_error_too_and_exits_125(nsinit: Nsinit) -> None:
    nsinit.config(**BROKEN)
    result = nsinit.exec("/bin/true")
    assert (result.returncode, stderr_lines(result)) == (125, BROKEN_LINES)


@pytest.fixture
def empty(tmp_path: Path) -> Nsinit:
    root = tmp_path / "empty"
    root.mkdir()
    return Nsinit(root)


def test_spec_writes_a_loadable_default(empty: Nsinit) -> None:
    said = ok(empty.run("spec"))
    assert said.splitlines() == [f"nsinit: wrote {empty.root}/container.json; next: nsinit exec /bin/sh in "
                                 f"{empty.root}, once it holds a root filesystem (nsinit rootfs DIR builds a busybox one)"]
    written = json.loads((empty.root / "container.json").read_text())
    assert {ns["type"] for ns in written["namespaces"]} >= {"NEWNS", "NEWPID"}
    assert "NEWUSER" not in {ns["type"] for ns in written["namespaces"]}
    assert "tty" not in written  # unset: a pty exactly when stdin is a terminal
    config = json.loads(ok(empty.run("config")))
    assert len(config["capabilities"]["bounding"]) == 14
    assert config["tty"] is None


def test_spec_refuses_to_overwrite_without_force(empty: Nsinit) -> None:
    path = empty.root / "container.json"
    path.write_text('{"hostname": "mine"}')
    line = one_error_line(empty.run("spec"))
    assert "--force" in line
    assert path.read_text() == '{"hostname": "mine"}'
    ok(empty.run("spec", "--force"))
    assert json.loads(path.read_text())["hostname"] == "nsinit"


def test_spec_rootless_adds_a_user_namespace(empty: Nsinit) -> None:
    ok(empty.run("spec", "--rootless"))
    written = json.loads((empty.root / "container.json").read_text())
    assert "NEWUSER" in {ns["type"] for ns in written["namespaces"]}
    for key in ("uid_mappings", "gid_mappings"):
        assert written[key] and written[key][0]["container_id"] == 0 and written[key][0]["size"] > 0
    config = json.loads(ok(empty.run("config")))
    assert config["uid_mappings"] == written["uid_mappings"]


def test_spec_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(Nsinit(tmp_path).run("--root", str(tmp_path / "missing"), "spec"))
    assert "missing" in line


def test_spec_to_a_named_config_file(empty: Nsinit) -> None:
    said = ok(empty.run("--config", "other.json", "spec"))
    assert said.startswith(f"nsinit: wrote {empty.root}/other.json; next: nsinit --config {empty.root}/other.json "
                           f"exec /bin/sh in {empty.root}, ")
    assert (empty.root / "other.json").exists() and not (empty.root / "container.json").exists()


def test_state_of_a_container_whose_nsinit_is_still_cleaning_up_is_stopped(nsinit: Nsinit) -> None:
    # Its init has exited, its supervisor (here: a stand-in process) lives:
    # "stopped", and nobody but that supervisor may remove the record.
    from nsinit import state as state_module

    dead = subprocess.Popen(["true"])
    dead.wait(timeout=5)
    supervisor = subprocess.Popen(["sleep", "30"])
    try:
        record = state_module.State(
            init_pid=dead.pid, init_start_time=1, created="2026-01-01T00:00:00Z",
            root=str(nsinit.root), rootfs=str(nsinit.root),
            supervisor_pid=supervisor.pid,
            supervisor_start_time=state_module.read_start_time(supervisor.pid) or 0)
        with planted_record(nsinit.root, record.to_json()) as planted:
            result = nsinit.run("state")
            assert result.returncode == 1
            assert stderr_lines(result) == [
                f"nsinit: state: stopped: container init {dead.pid} has exited; its nsinit is cleaning up"]
            assert planted.exists()
    finally:
        supervisor.kill()
        supervisor.wait(timeout=5)
