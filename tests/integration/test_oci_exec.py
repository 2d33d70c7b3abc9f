"""nsinit-runc exec: a process joined into a running container, as conmon and
containerd's shim ask for it (``exec --process F --detach --pid-file P
[--console-socket S] ID``), and as people type it (``exec ID CMD...``).

The container is made by the library (a Factory on the state root, then
``create`` + ``start``), so that the test process is its init's parent;
nsinit-runc finds it by its id.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from _ocibundle import ConsoleListener, bundle, fds_on, proc_status, tty_nr
from conftest import needs_root
from nsinit.container import Process
from nsinit.lifecycle.factory import Factory
from nsinit.oci.spec import load_bundle

pytestmark = [pytest.mark.integration, needs_root]

LOOP = "while :; do sleep 0.05; done"


class Running:
    """A created-and-started container ``c1`` under the state root ``root``."""

    def __init__(self, tmp_path: Path, rootfs: Path, *, start: bool = True) -> None:
        self.root = tmp_path
        spec, _ = load_bundle(str(bundle(tmp_path, rootfs, ["/bin/sh", "-c", LOOP],
                                         env=["PATH=/bin:/usr/bin", "FROM_CONFIG=1"])), "c1")
        self.container = Factory(str(tmp_path)).create("c1", spec)
        self.init = self.container.create(Process(list(spec.args)))
        if start:
            self.container.start()

    def runc(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nsinit.oci", "--root", str(self.root), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                              **kw)  # type: ignore[call-overload]

    def remove(self) -> None:
        self.container.delete(force=True)
        self.init.wait()


@pytest.fixture
def running(tmp_path: Path, rootfs: Path, no_residue: None) -> Iterator[Running]:
    container = Running(tmp_path, rootfs)
    try:
        yield container
    finally:
        container.remove()


def process_json(path: Path, **fields: object) -> str:
    """A Process JSON in the shape conmon writes it (podman exec)."""
    data = {
        "terminal": False, "user": {"uid": 1000, "gid": 1000, "umask": 63, "additionalGids": [10, 1000]},
        "args": ["/bin/sh", "-c", "cat /proc/self/status; echo cwd=$(pwd) foo=$FOO cfg=$FROM_CONFIG; umask; "
                                  "ulimit -n"],
        "env": ["PATH=/usr/local/bin:/usr/bin:/bin", "FOO=from the json", "TERM=xterm"],
        "cwd": "/tmp",
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
                         "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                         "ambient": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}],
        "noNewPrivileges": True,
        "oomScoreAdj": 0,
    }
    data.update(fields)
    path.write_text(json.dumps(data))
    return str(path)


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":\t" in line)}


def test_exec_with_a_process_json_as_conmon_writes_it(running: Running, tmp_path: Path) -> None:
    done = running.runc("exec", "--process", process_json(tmp_path / "p.json"), "c1")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    status = status_fields(done.stdout)
    assert status["Uid"].split() == ["1000"] * 4 and status["Gid"].split() == ["1000"] * 4
    assert status["Groups"].split() == ["10", "1000"]
    assert int(status["CapBnd"], 16) == (1 << 0) | (1 << 5) | (1 << 13)
    assert int(status["CapEff"], 16) == int(status["CapAmb"], 16) == 1 << 5   # kept by ambient as uid 1000
    assert status["NoNewPrivs"] == "1"
    assert proc_status(running.init.pid, "NoNewPrivs") == "1"  # the config's (nsinit-runc spec's) too
    lines = done.stdout.splitlines()
    assert lines[-3:] == ["cwd=/tmp foo=from the json cfg=1", "0077", "256"]
    # In the container's pid namespace, whose /proc it read (one level of pids).
    assert len(status["NSpid"].split()) == 1 and int(status["NSpid"]) > 1


def test_exec_without_detach_exits_with_the_process_status(running: Running) -> None:
    done = running.runc("exec", "-u", "1000:1000", "--cwd", "/etc", "-e", "A=1", "--env=B=2", "c1",
                        "/bin/sh", "-c", "id -u; pwd; echo $A$B$FROM_CONFIG; exit 7")
    assert done.returncode == 7, done.stderr
    assert done.stdout.splitlines() == ["1000", "/etc", "121"] and done.stderr == ""


SUBREAPER = textwrap.dedent("""
    import ctypes, json, os, subprocess, sys, time
    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    pid_file, out = sys.argv[1], sys.argv[2]
    # Files, as conmon's pipes would be: the exec'd process holds them open.
    with open(out + ".1", "w") as o, open(out + ".2", "w") as e:
        code = subprocess.run(sys.argv[3:], stdout=o, stderr=e, stdin=subprocess.DEVNULL).returncode
    if code:
        print(json.dumps({"error": open(out + ".2").read(), "code": code}))
        sys.exit()
    raw = open(pid_file).read()
    pid = int(raw)
    ppid = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")][0]
    while not os.path.exists(f"/proc/{pid}/root/tmp/up"):
        time.sleep(0.02)
    os.kill(pid, 10)  # SIGUSR1: the shell's trap exits 9
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"raw": raw, "ppid": int(ppid), "me": os.getpid(), "status": os.waitstatus_to_exitcode(status),
                      "stdout": open(out + ".1").read(), "stderr": open(out + ".2").read()}))
""")


def test_detached_exec_is_the_subreapers_child_with_a_bare_pid_file(running: Running, tmp_path: Path) -> None:
    """conmon and the shim: child subreapers that wait for the exec'd process."""
    pid_file = tmp_path / "exec.pid"
    proc = process_json(tmp_path / "p.json", args=["/bin/sh", "-c", "trap 'exit 9' USR1; echo up > /tmp/up; "
                                                                    "while :; do sleep 0.05; done"])
    runc = [sys.executable, "-m", "nsinit.oci", "--root", str(running.root)]
    done = subprocess.run([sys.executable, "-c", SUBREAPER, str(pid_file), str(tmp_path / "out"), *runc,
                           "exec", "--pid-file",
                           str(pid_file), "--process", proc, "--detach", "c1"],
                          capture_output=True, text=True, timeout=60)
    result = json.loads(done.stdout)
    assert "error" not in result, result
    assert result["raw"].isdigit()                      # bare decimal, no newline
    assert result["ppid"] == result["me"]               # nsinit-runc exited: the subreaper's child now
    assert result["status"] == 9
    assert result["stdout"] == result["stderr"] == ""   # nothing on the engine's pipes


def test_detached_exec_with_a_console_socket(running: Running, tmp_path: Path) -> None:
    listener = ConsoleListener(tmp_path / "exec.sock")
    pid_file = tmp_path / "exec.pid"
    proc = process_json(tmp_path / "p.json", terminal=True, user={"uid": 0, "gid": 0},
                        args=["/bin/sh", "-c", "read line; echo typed:$line; sleep 0.2"],
                        consoleSize={"height": 24, "width": 80})
    master = -1
    try:
        done = running.runc("exec", "--pid-file", str(pid_file), "--process", proc, "--detach", "--tty",
                            "--console-socket", listener.path, "c1")
        assert done.returncode == 0, done.stderr
        payload, fds, lengths = listener.receive()
        assert payload and len(fds) == 1 and lengths == [4]
        master = fds[0]
        pid = int(pid_file.read_text())
        slave = os.readlink(f"/proc/{pid}/fd/0")
        assert slave.startswith("/dev/pts/") and os.readlink(f"/proc/{pid}/fd/1") == slave
        assert tty_nr(pid) != 0
        # The container's devpts: the same instance as the one its init sees at /dev/pts.
        assert os.stat(f"/proc/{pid}/root/dev/pts/ptmx").st_dev == os.fstat(master).st_dev
        assert not fds_on(os.getpid(), "/dev/ptmx")
        os.write(master, b"over the socket\n")
        out = b""
        while b"typed:over the socket" not in out:
            out += os.read(master, 4096)
    finally:
        if master >= 0:
            os.close(master)
        listener.close()


def test_exec_into_what_is_not_running(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    created = Running(tmp_path, rootfs, start=False)
    try:
        missing = created.runc("exec", "c2", "/bin/true")
        assert missing.returncode == 1 and missing.stderr == 'nsinit-runc: exec: container "c2" does not exist\n'
        created.container.pause()
        paused = created.runc("exec", "c1", "/bin/true")
        assert paused.returncode == 1 and "cannot exec in a paused container" in paused.stderr
        created.container.resume()
        os.kill(created.init.pid, 9)
        created.init.wait()
        stopped = created.runc("exec", "c1", "/bin/true")
        assert stopped.returncode == 1, stopped.stderr
        assert "cannot exec in a stopped container" in stopped.stderr and "not running" in stopped.stderr
        assert stopped.stderr.count("\n") == 1 and "Traceback" not in stopped.stderr
    finally:
        created.container.delete(force=True)


def test_a_process_json_field_nsinit_cannot_apply_is_named(running: Running, tmp_path: Path) -> None:
    proc = process_json(tmp_path / "p.json", ioPriority={"class": "IOPRIO_CLASS_IDLE"})
    done = running.runc("exec", "--process", proc, "c1")
    assert done.returncode == 1
    assert done.stderr == f"nsinit-runc: exec: {proc}: ioPriority: not supported\n"
    bad = process_json(tmp_path / "q.json", user={"uid": "root"})
    done = running.runc("exec", "--process", bad, "c1")
    assert done.returncode == 1 and done.stderr.startswith(f"nsinit-runc: exec: {bad}: user.uid: ")


def test_a_detached_terminal_needs_a_console_socket(running: Running, tmp_path: Path) -> None:
    proc = process_json(tmp_path / "p.json", terminal=True)
    done = running.runc("exec", "--process", proc, "--detach", "c1")
    assert done.returncode == 1 and done.stderr == (
        "nsinit-runc: exec: cannot allocate tty if runc will detach without setting console socket "
        "(--tty with --detach: the pty master goes to --console-socket)\n")


def test_a_missing_command_says_what_podman_maps_to_127(running: Running) -> None:
    done = running.runc("exec", "c1", "no-such-command")
    assert done.returncode == 1
    assert "executable file not found in $PATH" in done.stderr and done.stderr.count("\n") == 1
