"""nsinit-runc's lifecycle as podman (through conmon) and containerd (through its shim)
drive it: the real command line, on a busybox bundle (shared/reference/oci-clients.md).

``create`` is run by a caller that is a child subreaper, as conmon and the shim
are: once create has exited, the container's init is that caller's child, and
the caller takes its exit status.  The container's stdio are the files given to
create.  Every container's cgroup is named after the test (cgroupsPath), so the
residue check finds any that is left.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import cgroups_left, needs_root, wait_until
from nsinit.cgroups import layout

pytestmark = [pytest.mark.integration, needs_root]

# conmon's part, reduced: become a child subreaper, run create with the
# container's stdio, say its exit code, then wait for the init (ours once
# create has exited) and say its pid and exit status.
CALLER = r"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
mode, stdin, stdout, stderr = sys.argv[1:5]
with open(stdin) as i, open(stdout, "w") as o, open(stderr, "w") as e:
    code = subprocess.run(sys.argv[5:], stdin=i, stdout=o, stderr=e).returncode
print(code, flush=True)
if code == 0 and mode == "hold":   # reap nothing until told: an exited init stays a zombie
    sys.stdin.readline()
if code == 0:
    pid = int(open(sys.argv[sys.argv.index("--pid-file") + 1]).read())
    pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(pid, 128 - code if code < 0 else code, flush=True)  # conmon's: 128+N when killed by N
"""


class Runc:
    """nsinit-runc on one state root and bundle (both in the test's tmp_path)."""

    def __init__(self, tmp_path: Path, rootfs: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "state"
        self.bundle = tmp_path / "bundle"
        self.bundle.mkdir()
        self.callers: list[subprocess.Popen[str]] = []
        self.ids: set[str] = set()
        self.private_dirs: set[str] = set()
        assert self.run("spec", "--bundle", str(self.bundle)).returncode == 0
        self.base = json.loads((self.bundle / "config.json").read_text())
        self.base["root"] = {"path": str(rootfs)}
        self.base["process"]["terminal"] = False

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "nsinit.oci", "--root", str(self.root), *args]

    def run(self, *args: str, stdin: str | None = None, log: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        extra = ["--log", str(log), "--log-format", "json"] if log else []
        done = subprocess.run(self.argv(*extra, *args), capture_output=True, text=True, input=stdin,
                              timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def ok(self, *args: str, **kw: Any) -> str:
        done = self.run(*args, **kw)
        assert done.returncode == 0 and done.stderr == "", done
        return done.stdout

    def config(self, args: list[str], container_id: str, cgroups_path: str = "", **changes: Any) -> Path:
        """Write the bundle's config.json for ``args``; the cgroup named after
        the test unless ``cgroups_path`` names it."""
        data = json.loads(json.dumps(self.base))
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        data["process"]["args"] = args
        data["linux"]["cgroupsPath"] = cgroups_path or self.cgroup_name(container_id)
        (self.bundle / "config.json").write_text(json.dumps(data))
        return self.bundle

    def cgroup_name(self, container_id: str) -> str:
        return f"/nsinit-runc-{self.tmp.name}-{container_id}"

    def cgroup_file(self, controller: str, container_id: str, name: str) -> Path:
        return Path(f"/sys/fs/cgroup/{controller}{self.cgroup_name(container_id)}/{name}")

    def create(self, container_id: str, script: str, *flags: str, stdin: str = "", mode: str = "wait",
               cgroups_path: str = "", **changes: Any) -> "Created":
        """create by a child-subreaper caller; returns once create has exited."""
        self.config(["/bin/sh", "-c", script], container_id, cgroups_path, **changes)
        n = len(self.callers)
        files = [self.tmp / f"{kind}-{container_id}-{n}" for kind in ("in", "out", "err")]
        files[0].write_text(stdin)
        pid_file = self.tmp / f"pid-{container_id}-{n}"
        caller = subprocess.Popen([sys.executable, "-c", CALLER, mode, *map(str, files), *self.argv(
            "create", "--bundle", str(self.bundle), "--pid-file", str(pid_file), *flags, container_id)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.callers.append(caller)
        self.ids.add(container_id)
        assert caller.stdout is not None
        code = int(caller.stdout.readline() or -1)
        created = Created(self, container_id, caller, code, pid_file, *files)
        if code == 0:
            from nsinit import state

            self.private_dirs.add(state.private_dir(str(self.root / container_id)))
        return created

    def state(self, container_id: str) -> dict[str, Any]:
        return json.loads(self.ok("state", container_id))  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        for container_id in sorted(self.ids):
            self.run("delete", "--force", container_id)
        for caller in self.callers:
            if caller.stdin is not None and not caller.stdin.closed:
                caller.stdin.close()
            try:
                caller.wait(timeout=10)
            except subprocess.TimeoutExpired:
                caller.kill()
                caller.wait()


class Created:
    """A created container and the caller that holds its init."""

    def __init__(self, runc: Runc, container_id: str, caller: subprocess.Popen[str], code: int,
                 pid_file: Path, stdin: Path, stdout: Path, stderr: Path) -> None:
        self.runc, self.id, self.caller, self.code = runc, container_id, caller, code
        self.pid_file, self.stdin, self.stdout, self.stderr = pid_file, stdin, stdout, stderr

    @property
    def pid(self) -> int:
        assert self.code == 0, self.stderr.read_text()
        text = self.pid_file.read_text()
        assert text.isdigit(), repr(text)  # bare decimal, no newline (go-runc's Atoi)
        return int(text)

    def output(self) -> str:
        return self.stdout.read_text()

    def exited(self, timeout: float = 20) -> tuple[int, int]:
        """(pid, exit status) as the caller's wait saw them."""
        assert self.caller.stdout is not None and self.caller.stdin is not None
        self.caller.stdin.close()   # "hold": reap it now
        line = self.caller.stdout.readline()
        self.caller.wait(timeout=timeout)
        pid, status = line.split()
        return int(pid), int(status)


@pytest.fixture
def runc(tmp_path: Path, rootfs: Path, no_residue: None) -> Iterator[Runc]:
    r = Runc(tmp_path, rootfs)
    yield r
    r.cleanup()
    assert not r.root.exists() or os.listdir(r.root) == [], os.listdir(r.root)
    left = [p for p in r.private_dirs if os.path.exists(os.path.join(p, "state.json"))]
    assert not left, f"records left: {left}"
    assert not cgroups_left(tmp_path), cgroups_left(tmp_path)


def proc_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def waits_in_fifo(pid: int) -> bool:
    """The created init is blocked in its open of the exec fifo, not exec'd."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return proc_status(pid, "State").startswith("S") and wchan in ("wait_for_partner", "0")  # "0": hidden


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("nsinit-runc: ")
    return lines[0]


def log_entries(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    for entry in entries:
        datetime.fromisoformat(entry["time"][:26] + "+00:00")  # RFC3339, as containerd insists
    return entries


# --- create, start, state, kill, delete ----------------------------------------------

def test_create_start_kill_delete_as_conmon_drives_them(runc: Runc) -> None:
    c = runc.create("c1", "echo started; echo to-stderr >&2; exec sleep 60")
    assert c.code == 0 and c.stderr.read_text() == ""   # nothing on stderr: it is the container's
    pid = c.pid
    # The init is the caller's child (a child subreaper, as conmon), blocked before its exec.
    assert int(proc_status(pid, "PPid")) == c.caller.pid
    wait_until(lambda: waits_in_fifo(pid))
    assert c.output() == ""
    state = runc.state("c1")
    assert state["status"] == "created" and state["pid"] == pid and state["id"] == "c1"
    assert state["bundle"] == str(runc.bundle) and state["rootfs"] == runc.base["root"]["path"]
    assert state["ociVersion"] == runc.base["ociVersion"] and state["annotations"] == {}
    datetime.fromisoformat(state["created"][:26] + "+00:00")
    # The container's stdio are exactly create's: the files the caller gave.
    assert os.stat(f"/proc/{pid}/fd/1").st_ino == os.stat(c.stdout).st_ino
    assert os.stat(f"/proc/{pid}/fd/2").st_ino == os.stat(c.stderr).st_ino

    assert runc.run("start", "c1").stdout == ""        # podman runs it with its own stdout
    wait_until(lambda: "started" in c.output())
    assert c.stderr.read_text() == "to-stderr\n"
    state = runc.state("c1")
    assert state["status"] == "running" and state["pid"] == pid   # exec'd in place: the same pid
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0060\x00"
    assert "it is running, not created" in one_error(runc.run("start", "c1"))

    assert runc.ok("kill", "c1", "9") == ""
    assert c.exited() == (pid, 137)                     # the caller reaps it: 128+SIGKILL
    state = runc.state("c1")
    assert state["status"] == "stopped" and state["pid"] == 0
    # containerd matches these words for a container that exited.
    assert "container not running" in one_error(runc.run("kill", "c1", "TERM"))
    assert runc.ok("delete", "c1") == ""
    assert not (runc.root / "c1").exists()
    assert "does not exist" in one_error(runc.run("state", "c1"))
    assert "does not exist" in one_error(runc.run("delete", "c1"))
    assert runc.run("delete", "--force", "c1").returncode == 0


@pytest.mark.parametrize("end", ["created", "stopped"])
def test_delete_removes_the_parents_a_nested_cgroups_path_made(runc: Runc, tmp_path: Path, end: str) -> None:
    # runtime-tools' form: relative and nested.  Every parent the create
    # made goes with the container at delete; none is left on the host.
    top = f"nsinit-test-{os.getpid()}-{tmp_path.name}"
    mounts = sorted(set(layout.detect().v1.values()))
    try:
        c = runc.create("n", "exec sleep 60", cgroups_path=f"{top}/mid/leaf", mode="hold")
        pid = c.pid
        assert all(os.path.isdir(f"{mount}/{top}/mid/leaf") for mount in mounts)
        if end == "stopped":
            runc.ok("start", "n")
            runc.ok("kill", "n", "9")
            assert c.exited() == (pid, 137)
            assert runc.state("n")["status"] == "stopped"
        runc.ok("delete", "n")   # a created one's init is killed first
        assert [d for m in mounts for d in (f"{m}/{top}", f"{m}/{top}/mid") if os.path.isdir(d)] == []
    finally:
        runc.cleanup()
        for mount in mounts:
            for directory in (f"{mount}/{top}/mid/leaf", f"{mount}/{top}/mid", f"{mount}/{top}"):
                if os.path.isdir(directory):
                    os.rmdir(directory)


def test_the_container_reads_the_stdin_create_was_given(runc: Runc) -> None:
    # conmon -i gives the runtime a pipe as stdin; here a file.
    c = runc.create("in", "read line; echo got:$line", stdin="hello\n")
    runc.ok("start", "in")
    assert c.exited()[1] == 0
    assert c.output() == "got:hello\n"
    runc.ok("delete", "in")


def test_no_copy_of_the_stdout_pipe_stays_with_nsinit_runc(runc: Runc) -> None:
    """conmon reads the container's output from a pipe until EOF: EOF must come
    when the container exits, so no process of nsinit-runc may hold its end."""
    runc.config(["/bin/sh", "-c", "echo out"], "p")
    runc.ids.add("p")
    read_end, write_end = os.pipe()
    try:
        with open(runc.tmp / "err-p", "w") as err:  # a file: the container holds its stderr too
            done = subprocess.run(runc.argv("create", "--bundle", str(runc.bundle), "p"), stdin=subprocess.DEVNULL,
                                  stdout=write_end, stderr=err, timeout=60)
        assert done.returncode == 0 and (runc.tmp / "err-p").read_text() == ""
        os.close(write_end)
        write_end = -1
        runc.ok("start", "p")
        os.set_blocking(read_end, True)
        data = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chunk = os.read(read_end, 4096)   # EOF once the init (the last writer) is gone
            if not chunk:
                break
            data += chunk
        assert data == b"out\n"
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    runc.ok("delete", "p")


def test_kill_named_and_numeric_signals_and_all(runc: Runc) -> None:
    script = "trap 'echo usr1' USR1; trap 'echo term; exit 3' TERM; sleep 60 & echo $! > /tmp/child; " \
             "while :; do wait; done"
    c = runc.create("k", script)
    runc.ok("start", "k")
    wait_until(lambda: (Path(runc.base["root"]["path"]) / "tmp" / "child").exists())
    for sig in ("USR1", "SIGUSR1", "10"):
        runc.ok("kill", "k", sig)
    wait_until(lambda: c.output().count("usr1") == 3)
    assert "unknown signal" in one_error(runc.run("kill", "k", "SIGFOO"))
    pids = json.loads(runc.ok("ps", "--format", "json", "k"))
    assert c.pid in pids and len(pids) == 2
    child = next(p for p in pids if p != c.pid)
    runc.ok("kill", "--all", "k", "KILL")      # podman without a pid namespace, ctr tasks kill -a
    assert c.exited()[1] == 137
    wait_until(lambda: not Path(f"/proc/{child}").exists() or proc_status(child, "State").startswith("Z"))
    runc.ok("delete", "k")


def test_kill_all_reaches_what_a_stopped_container_left(runc: Runc) -> None:
    """Without a pid namespace the init's end kills no other process: kill --all
    of the stopped container signals what is left in its cgroup (runc's), and
    kill without --all says it is not running."""
    namespaces = [ns for ns in runc.base["linux"]["namespaces"] if ns["type"] != "pid"]
    c = runc.create("left", "sleep 60 & echo $! > /tmp/left; exit 0",
                    linux={**runc.base["linux"], "namespaces": namespaces})
    runc.ok("start", "left")
    assert c.exited()[1] == 0
    marker = Path(runc.base["root"]["path"]) / "tmp" / "left"
    wait_until(marker.exists)
    procs = runc.cgroup_file("pids", "left", "cgroup.procs")
    wait_until(lambda: len(procs.read_text().split()) == 1)
    orphan = int(procs.read_text())
    assert runc.state("left")["status"] == "stopped"
    assert "container not running" in one_error(runc.run("kill", "left", "KILL"))
    runc.ok("kill", "--all", "left", "KILL")
    wait_until(lambda: procs.read_text().split() == [])
    assert not Path(f"/proc/{orphan}/cmdline").exists() or Path(f"/proc/{orphan}/cmdline").read_bytes() == b""
    runc.ok("delete", "left")


def test_kill_defaults_to_sigterm(runc: Runc) -> None:
    c = runc.create("t", "trap 'exit 3' TERM; while :; do sleep 0.1; done")
    runc.ok("start", "t")
    wait_until(lambda: "sleep" in Path(f"/proc/{c.pid}/task/{c.pid}/children").read_text()
               or bool(Path(f"/proc/{c.pid}/task/{c.pid}/children").read_text()))
    runc.ok("kill", "t")
    assert c.exited()[1] == 3
    runc.ok("delete", "t")


# --- run ---------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP"])
def test_a_created_container_dies_of_a_stop_signal(runc: Runc, sig: str) -> None:
    """podman stop of a created container: its waiting init is PID 1 of its
    pid namespace and would ignore every signal it has no handler for."""
    c = runc.create("cs", "echo started")
    assert waits_in_fifo(c.pid)
    runc.ok("kill", "cs", sig)
    assert c.exited()[1] == 128 + getattr(signal, f"SIG{sig}")
    assert "started" not in c.output()
    assert runc.state("cs")["status"] == "stopped"
    runc.ok("delete", "cs")


# Runs argv[1:] in a session keyring of its own holding a key only its
# possessors may see (x86_64 syscall numbers; the test's own keyring stays clean).
WITH_A_SECRET_KEY = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_SETPERM, KEY_SPEC_SESSION_KEYRING = 1, 5, -3
assert libc.syscall(250, KEYCTL_JOIN_SESSION_KEYRING, b"nsinit-test-caller") > 0
key = libc.syscall(248, b"user", b"nsinit-test-secret", b"s3cret", 6, KEY_SPEC_SESSION_KEYRING)
assert key > 0 and libc.syscall(250, KEYCTL_SETPERM, key, 0x3f000000) == 0
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.mark.parametrize("flag", ["", "--no-new-keyring"])
def test_the_container_gets_a_session_keyring_of_its_own(runc: Runc, flag: str) -> None:
    """The caller's session keyring (and what only its possessors may see)
    stays out of the container, as with runc; --no-new-keyring keeps it."""
    linux = {**runc.base["linux"],   # runc spec masks /proc/keys: unmasked to look
             "maskedPaths": [p for p in runc.base["linux"]["maskedPaths"] if p != "/proc/keys"]}
    runc.config(["/bin/cat", "/proc/keys"], "keys", linux=linux)
    runc.ids.add("keys")
    argv = runc.argv("run", "--bundle", str(runc.bundle), *([flag] if flag else []), "keys")
    done = subprocess.run([sys.executable, "-c", WITH_A_SECRET_KEY, *argv], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    keys = done.stdout
    # (the caller's keyring itself stays listed: its user may view it)
    assert ("nsinit-test-secret" in keys) == bool(flag), keys
    if not flag:
        assert " _ses: empty" in keys, keys   # a new anonymous one


def test_run_waits_exits_with_the_status_and_deletes(runc: Runc) -> None:
    runc.config(["/bin/sh", "-c", "echo ran; exit 7"], "r")
    runc.ids.add("r")
    done = runc.run("run", "--bundle", str(runc.bundle), "r")
    assert (done.returncode, done.stdout, done.stderr) == (7, "ran\n", "")
    assert not (runc.root / "r").exists()       # deleted: no --keep
    done = runc.run("run", "--keep", "--bundle", str(runc.bundle), "r")
    assert done.returncode == 7
    assert runc.state("r")["status"] == "stopped"
    runc.ok("delete", "r")


def test_run_detach_returns_with_the_container_running(runc: Runc) -> None:
    runc.config(["/bin/sleep", "60"], "d")
    runc.ids.add("d")
    pid_file, out = runc.tmp / "d.pid", runc.tmp / "d.out"
    with open(out, "w") as f:  # files: the container keeps run's stdout and stderr
        done = subprocess.run(runc.argv("run", "--detach", "--pid-file", str(pid_file), "--bundle", str(runc.bundle),
                                        "d"), stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=60)
    assert done.returncode == 0 and out.read_text() == ""
    state = runc.state("d")
    assert state["status"] == "running" and state["pid"] == int(pid_file.read_text())
    assert "not stopped" in one_error(runc.run("delete", "d"))
    assert runc.state("d")["status"] == "running"   # the refused delete touched nothing
    runc.ok("delete", "--force", "d")
    assert not (runc.root / "d").exists()


def test_delete_refuses_a_container_whose_creator_is_still_at_work(runc: Runc) -> None:
    # What a delete finds while a create runs: the id dir and its facts, no
    # record yet, the creator alive (this test's process plays it).
    from nsinit import state

    container_dir = runc.root / "c"
    container_dir.mkdir(parents=True, mode=0o700)
    (container_dir / "oci.json").write_text(json.dumps({
        "id": "c", "bundle": str(runc.bundle), "rootfs": "", "created": "2026-01-01T00:00:00.000000000Z",
        "creator_pid": os.getpid(), "creator_start_time": state.read_start_time(os.getpid())}))
    assert runc.state("c")["status"] == "creating"
    assert one_error(runc.run("delete", "c")) == \
        'nsinit-runc: delete: cannot delete container "c" that is not stopped: creating (delete --force kills it)'
    assert sorted(os.listdir(container_dir)) == ["oci.json"]   # the refused delete touched nothing
    runc.ok("delete", "--force", "c")
    assert not container_dir.exists()


# --- pause, resume, update, ps, list ---------------------------------------------------

def test_pause_and_resume_freeze_the_cgroup(runc: Runc) -> None:
    c = runc.create("f", "while :; do echo tick >> /tmp/ticks; sleep 0.05; done")
    runc.ok("start", "f")
    freezer = runc.cgroup_file("freezer", "f", "freezer.state")
    runc.ok("pause", "f")
    assert freezer.read_text().strip() == "FROZEN"
    assert runc.state("f")["status"] == "paused"
    assert proc_status(c.pid, "State").startswith("D") or freezer.read_text().strip() == "FROZEN"
    assert "already" in one_error(runc.run("pause", "f"))
    assert "not stopped: paused" in one_error(runc.run("delete", "f"))
    runc.ok("resume", "f")
    assert freezer.read_text().strip() == "THAWED"
    assert runc.state("f")["status"] == "running"
    assert "not paused" in one_error(runc.run("resume", "f"))
    runc.ok("kill", "f", "KILL")
    c.exited()
    assert "not running" in one_error(runc.run("pause", "f"))
    runc.ok("delete", "f")


def test_update_from_a_file_from_stdin_and_from_flags(runc: Runc) -> None:
    runc.create("u", "exec sleep 60")
    runc.ok("start", "u")
    resources = runc.tmp / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}}))
    runc.ok("update", f"--resources={resources}", "u")        # podman's form
    assert int(runc.cgroup_file("memory", "u", "memory.limit_in_bytes").read_text()) == 64 << 20
    assert int(runc.cgroup_file("cpu", "u", "cpu.shares").read_text()) == 512
    runc.ok("update", "--resources", "-", "u", stdin=json.dumps({"pids": {"limit": 42}}))   # containerd's
    assert runc.cgroup_file("pids", "u", "pids.max").read_text().strip() == "42"
    runc.ok("update", "--memory", "32M", "--pids-limit", "7", "u")
    assert int(runc.cgroup_file("memory", "u", "memory.limit_in_bytes").read_text()) == 32 << 20
    assert runc.cgroup_file("pids", "u", "pids.max").read_text().strip() == "7"
    # What nsinit cannot change is refused by name, and nothing is applied.
    line = one_error(runc.run("update", "--resources", "-", "u",
                              stdin=json.dumps({"pids": {"limit": 9}, "rdma": {"mlx5_1": {"hcaHandles": 3}}})))
    assert "linux.resources.rdma: not supported" in line
    assert runc.cgroup_file("pids", "u", "pids.max").read_text().strip() == "7"
    assert "invalid JSON" in one_error(runc.run("update", "--resources", "-", "u", stdin="{oops"))
    runc.ok("delete", "--force", "u")


def test_ps_and_list(runc: Runc) -> None:
    a = runc.create("a", "sleep 60 & wait")
    runc.ok("start", "a")
    runc.create("b", "exec sleep 60")
    wait_until(lambda: len(json.loads(runc.ok("ps", "--format", "json", "a"))) == 2)
    pids = json.loads(runc.ok("ps", "--format", "json", "a"))
    assert a.pid in pids
    table = runc.ok("ps", "a").splitlines()
    assert table[0].split()[:2] == ["UID", "PID"] and len(table) == 3
    assert {int(line.split()[1]) for line in table[1:]} == set(pids)
    listed = json.loads(runc.ok("list", "--format", "json"))
    assert [(e["id"], e["status"]) for e in listed] == [("a", "running"), ("b", "created")]
    assert listed[0]["pid"] == a.pid and listed[0]["owner"] == "root"
    table = runc.ok("list").splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert [line.split()[:3] for line in table[1:]] == [["a", str(a.pid), "running"], ["b", str(
        json.loads(runc.ok("state", "b"))["pid"]), "created"]]
    assert runc.ok("list", "-q").split() == ["a", "b"]
    runc.ok("delete", "--force", "a")
    runc.ok("delete", "b")       # created: delete kills its init (runc's delete)


# --- ids and bad bundles ------------------------------------------------------------------

def test_an_id_in_use_is_refused_and_the_first_container_untouched(runc: Runc) -> None:
    first = runc.create("same", "exec sleep 60")
    second = runc.create("same", "exec sleep 60")
    assert second.code == 1
    assert second.stderr.read_text().splitlines() == [
        f'nsinit-runc: create: container "same" already exists (in {runc.root})']
    assert runc.state("same")["pid"] == first.pid
    runc.ok("delete", "same")


@pytest.mark.parametrize("case", ["missing", "invalid", "namespace", "mount", "no-command"])
def test_a_bad_bundle_is_one_line_naming_the_field_and_leaves_nothing(runc: Runc, case: str) -> None:
    bundle = runc.config(["/bin/true"], "bad")
    config = bundle / "config.json"
    data = json.loads(config.read_text())
    expected = {
        "missing": f"{config}: No such file or directory",
        "invalid": f"{config}: invalid JSON at line 1 column 2",
        "namespace": 'config.json: linux.namespaces[5].type: unknown namespace "pidns"',
        "mount": "config.json: mounts[0].destination: must be an absolute path",
        "no-command": "/no/such/command",
    }[case]
    if case == "missing":
        config.unlink()
    elif case == "invalid":
        config.write_text("{oops")
    elif case == "namespace":
        data["linux"]["namespaces"].append({"type": "pidns"})
    elif case == "mount":
        data["mounts"][0]["destination"] = "proc"
    else:
        data["process"]["args"] = ["/no/such/command"]   # found missing inside the lifecycle
    if case in ("namespace", "mount", "no-command"):
        config.write_text(json.dumps(data))
    log = runc.tmp / "log.json"
    runc.ids.add("bad")
    line = one_error(runc.run("create", "--bundle", str(bundle), "bad", log=log))
    assert line.startswith("nsinit-runc: create: ") and expected in line
    # containerd keeps the last error line of the log; podman decodes the file as one object.
    assert log_entries(log)[-1] == {**log_entries(log)[-1], "level": "error", "msg": line.removeprefix("nsinit-runc: ")}
    assert not (runc.root / "bad").exists()           # no id dir (and so no record beside it)
    assert not cgroups_left(runc.tmp)                  # no cgroup
    assert "does not exist" in one_error(runc.run("state", "bad"))


def test_systemd_cgroup_is_refused_before_anything_is_made(runc: Runc) -> None:
    runc.config(["/bin/true"], "s")
    done = subprocess.run([sys.executable, "-m", "nsinit.oci", "--root", str(runc.root), "--systemd-cgroup",
                           "create", "--bundle", str(runc.bundle), "s"], capture_output=True, text=True, timeout=60)
    assert "PID 1 is not systemd" in one_error(done)
    assert not (runc.root / "s").exists()


def test_a_pid_file_that_cannot_be_written_unwinds_the_create(runc: Runc) -> None:
    runc.config(["/bin/sleep", "60"], "pf")
    runc.ids.add("pf")
    line = one_error(runc.run("create", "--bundle", str(runc.bundle), "--pid-file", "/nonexistent/dir/pid", "pf"))
    assert "--pid-file /nonexistent/dir/pid: No such file or directory" in line
    assert not (runc.root / "pf").exists()
    assert not cgroups_left(runc.tmp)


def test_signals_reach_a_container_that_nobody_supervises(runc: Runc) -> None:
    """No nsinit-runc process stays with the container: its only parent is the caller."""
    c = runc.create("alone", "exec sleep 60")
    runc.ok("start", "alone")
    assert int(proc_status(c.pid, "PPid")) == c.caller.pid
    others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != c.caller.pid
              and Path(f"/proc/{p}/cmdline").exists()
              and b"nsinit.oci" in Path(f"/proc/{p}/cmdline").read_bytes() and str(runc.root).encode()
              in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert others == []
    os.kill(c.pid, signal.SIGKILL)
    assert c.exited()[1] == 137
    runc.ok("delete", "alone")


def test_preserve_fds_passes_the_callers_fds_3_and_up(runc: Runc) -> None:
    """podman --preserve-fds N: the caller's fds 3..3+N-1 are the init's own 3..; a fd
    above them stays outside."""
    runc.config(["/bin/sh", "-c", "echo three >&3; echo four >&4; readlink /proc/$$/fd/5 > /tmp/fds || echo closed > /tmp/fds"], "pf")
    runc.ids.add("pf")
    files = [runc.tmp / name for name in ("three", "four", "five")]
    fds = [os.open(path, os.O_WRONLY | os.O_CREAT, 0o644) for path in files]
    try:
        wanted = [3, 4, 5]
        moved = [os.dup(fd) for fd in fds]
        script = ("import os, subprocess, sys\n"
                  f"for src, dst in zip({moved}, {wanted}): os.dup2(src, dst)\n"
                  "sys.exit(subprocess.run(sys.argv[1:], pass_fds=(3, 4, 5), stdin=subprocess.DEVNULL).returncode)\n")
        err = runc.tmp / "pf.err"
        with open(err, "w") as e:  # a file: the container keeps create's stdout and stderr
            code = subprocess.run([sys.executable, "-c", script, *runc.argv(
                "create", "--preserve-fds", "2", "--bundle", str(runc.bundle), "pf")], stdout=e, stderr=e,
                timeout=60, pass_fds=moved, stdin=subprocess.DEVNULL).returncode
        for fd in moved:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
    assert code == 0, err.read_text()
    runc.ok("start", "pf")
    wait_until(lambda: (Path(runc.base["root"]["path"]) / "tmp" / "fds").exists()
               and runc.state("pf")["status"] == "stopped")
    assert files[0].read_text() == "three\n" and files[1].read_text() == "four\n"
    # Not asked for: closed before the command.
    assert (Path(runc.base["root"]["path"]) / "tmp" / "fds").read_text() == "closed\n"
    runc.ok("delete", "pf")


def test_preserve_fds_names_a_closed_fd(runc: Runc) -> None:
    runc.config(["/bin/true"], "pc")
    runc.ids.add("pc")
    done = subprocess.run(runc.argv("create", "--preserve-fds", "40", "--bundle", str(runc.bundle), "pc"),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, close_fds=True)
    assert "--preserve-fds 40: fd 3 is not open" in one_error(done)
    assert not (runc.root / "pc").exists()


def test_a_network_namespace_by_path_is_the_containers_own(runc: Runc) -> None:
    """podman gives its netns as a path (/run/netns/...): the init joins it after its
    record is written, and the record must name that namespace, not the host's one
    it was born in, or every later command takes the container for a stranger."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        wait_until(lambda: os.stat(f"/proc/{holder.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino)
        netns = f"/proc/{holder.pid}/ns/net"
        namespaces = [{"type": "network", "path": netns} if ns["type"] == "network" else ns
                      for ns in runc.base["linux"]["namespaces"]]
        c = runc.create("ns", "readlink /proc/self/ns/net; exec sleep 60",
                        linux={**runc.base["linux"], "namespaces": namespaces})
        assert runc.state("ns")["status"] == "created"
        runc.ok("start", "ns")
        assert runc.state("ns")["status"] == "running"
        wait_until(lambda: c.output() != "")
        assert c.output().strip() == os.readlink(netns)
        runc.ok("kill", "ns", "KILL")
        assert c.exited()[1] == 137
        runc.ok("delete", "ns")
    finally:
        holder.kill()
        holder.wait()


def test_a_seccomp_profile_older_than_close_range_still_runs(runc: Runc) -> None:
    """runtime-tools' default profile (and Docker's before 20.10) has no close_range
    (Linux 5.9): loaded before the capability step, it denied nsinit's own
    close-on-exec marking and no container could be created."""
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]}
    process = {**runc.base["process"], "noNewPrivileges": False}   # the filter goes on before the caps
    c = runc.create("old", "ls /proc/self/fd | tr '\\n' ' '; echo; grep ^Seccomp: /proc/self/status",
                    linux={**runc.base["linux"], "seccomp": seccomp}, process=process)
    assert c.code == 0, c.stderr.read_text()
    runc.ok("start", "old")
    assert c.exited()[1] == 0
    fds, seccomp_line = c.output().splitlines()
    assert seccomp_line.split() == ["Seccomp:", "2"]
    assert fds.split()[:3] == ["0", "1", "2"] and len(fds.split()) == 4   # 3: ls's own listing
    runc.ok("delete", "old")


def test_no_pivot_is_recorded_and_the_container_runs(runc: Runc) -> None:
    c = runc.create("np", "cat /proc/self/mountinfo | wc -l; exec sleep 60", "--no-pivot")
    done = subprocess.run([sys.executable, "-m", "nsinit", "--root", str(runc.root / "np"), "state", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout)["config"]["no_pivot_root"] is True   # what the init was built with
    runc.ok("start", "np")
    wait_until(lambda: c.output() != "")
    assert int(c.output()) > 0
    runc.ok("delete", "--force", "np")


@pytest.mark.parametrize("propagation, tag", [("shared", "shared:"), ("slave", None), ("private", None)])
def test_rootfs_propagation_is_set_on_the_containers_root(runc: Runc, propagation: str, tag: str | None) -> None:
    # runtime-tools sets "shared"; runc applies it to "/" after pivot_root.
    c = runc.create("rp", "awk '$5 == \"/\"' /proc/self/mountinfo",
                    linux={**runc.base["linux"], "rootfsPropagation": propagation})
    runc.ok("start", "rp")
    assert c.exited()[1] == 0
    fields = c.output().split(" - ")[0].split()[6:]   # the optional fields: shared:N, master:N
    assert (tag is None and not any(f.startswith("shared:") for f in fields)) or any(f.startswith(tag or "") for f in fields)
    runc.ok("delete", "rp")


def without_namespaces(runc: Runc) -> dict[str, Any]:
    """config.json changes for a container sharing every namespace with the host."""
    linux = {k: v for k, v in runc.base["linux"].items() if k not in ("namespaces", "maskedPaths", "readonlyPaths")}
    return {"linux": linux, "hostname": None}


def test_a_container_without_namespaces_is_chrooted_and_its_mounts_ignored(runc: Runc) -> None:
    """runtime-tools' linux_ns_itype: no linux.namespaces, every namespace the host's.
    nsinit chroots into root.path (runc would run in the host's /); the mounts
    would go to the host's mount table and are ignored, said in the log; the
    created init still waits on its fifo, reopened through the host's /proc."""
    rootfs = Path(runc.base["root"]["path"])
    (rootfs / "only-in-the-image").write_text("")
    log = runc.tmp / "log.json"
    runc.config(["/bin/sh", "-c", "ls /"], "nons", **without_namespaces(runc))
    runc.ids.add("nons")
    out = runc.tmp / "nons.out"
    with open(out, "w") as f:
        done = subprocess.run(runc.argv("--log", str(log), "--log-format", "json", "create", "--bundle",
                                        str(runc.bundle), "nons"), stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                              timeout=60)
    assert done.returncode == 0, out.read_text()
    state = runc.state("nons")
    assert state["status"] == "created"
    for ns in ("mnt", "pid", "net", "ipc", "uts"):
        assert os.readlink(f"/proc/{state['pid']}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")
    assert [e["msg"] for e in log_entries(log) if e["level"] == "warning"] == [
        'config.json: mounts: ignored: there is no mount namespace (linux.namespaces has no "mount"); '
        "they would be mounted on the host"]
    runc.ok("start", "nons")
    wait_until(lambda: runc.state("nons")["status"] == "stopped")
    assert "only-in-the-image" in out.read_text().split()
    runc.ok("delete", "nons")


def test_an_exited_init_not_yet_reaped_is_stopped(runc: Runc) -> None:
    """A zombie init (its parent, a subreaper, has not waited yet) is stopped, as runc
    says: without namespaces nothing else tells it from a running one."""
    c = runc.create("z", "exit 4", mode="hold", **without_namespaces(runc))
    runc.ok("start", "z")
    wait_until(lambda: proc_status(c.pid, "State").startswith("Z"))
    state = runc.state("z")
    assert state["status"] == "stopped" and state["pid"] == 0
    assert "container not running" in one_error(runc.run("kill", "z", "KILL"))
    assert c.exited() == (c.pid, 4)
    runc.ok("delete", "z")
