"""nsinit.oci's building blocks with real processes, files and sockets:
hooks (real scripts), the --log file, the console socket (a real listener
receiving the pty master and talking through it)."""
from __future__ import annotations

import array
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from nsinit.errors import NsinitError
from nsinit.oci import hooks as hooks_module
from nsinit.oci.console_socket import send_console
from nsinit.oci.hooks import Hook, HookError, Hooks, run_hooks
from nsinit.oci.log import RuntimeLog

STATE = {"ociVersion": "1.1.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b",
         "annotations": {"k": "v"}}


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# --- hooks -------------------------------------------------------------------

def test_a_hook_gets_the_state_on_stdin_its_args_and_only_its_env(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = (f"import os, sys; open({str(out)!r} + '.stdin', 'w').write(sys.stdin.read()); "
            f"open({str(out)!r} + '.argv', 'wb').write(open('/proc/self/cmdline', 'rb').read()); "
            f"open({str(out)!r} + '.env', 'w').write(repr(dict(os.environ)))")
    os.environ["NSINIT_TEST_LEAK"] = "1"  # the runtime's env must not reach the hook
    try:
        hook = Hook(sys.executable, ("my-hook", "-c", code, "a"), ("X=1",))
        warnings = run_hooks(Hooks(create_runtime=(hook,)), "createRuntime", STATE)
    finally:
        del os.environ["NSINIT_TEST_LEAK"]
    assert warnings == []
    assert json.loads(Path(f"{out}.stdin").read_text()) == STATE
    argv = Path(f"{out}.argv").read_bytes().split(b"\0")
    assert argv[0] == b"my-hook" and argv[-2:] == [b"a", b""]  # args[0] is argv[0], then the rest
    env = eval(Path(f"{out}.env").read_text())
    assert env.get("X") == "1" and "NSINIT_TEST_LEAK" not in env and "PATH" not in env


def test_a_failing_create_hook_fails_and_the_later_ones_do_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    failing = script(tmp_path, "bad", "echo 'no GPU here' >&2; exit 3\n")
    later = script(tmp_path, "later", f"touch {marker}\n")
    hooks = Hooks(prestart=(Hook(failing), Hook(later)))
    with pytest.raises(HookError) as excinfo:
        run_hooks(hooks, "prestart", STATE)
    assert str(excinfo.value) == f"hooks.prestart[0]: {failing}: exited with status 3: no GPU here"
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "startContainer"])
def test_every_kind_before_the_process_runs_fails_the_operation(tmp_path: Path, kind: str) -> None:
    attribute = dict(hooks_module.HOOK_KINDS)[kind]
    with pytest.raises(HookError):
        run_hooks(Hooks(**{attribute: (Hook("/bin/false"),)}), kind, STATE)


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
def test_a_failing_post_hook_only_warns_and_the_others_still_run(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "ran"
    later = script(tmp_path, "later", f"touch {marker}\n")
    hooks = Hooks(**{kind: (Hook("/bin/false"), Hook(str(tmp_path / "missing")), Hook(later))})
    warnings = run_hooks(hooks, kind, STATE)
    assert warnings == [f"hooks.{kind}[0]: /bin/false: exited with status 1",
                        f"hooks.{kind}[1]: {tmp_path / 'missing'}: No such file or directory"]
    assert marker.exists()


def test_a_hook_past_its_timeout_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    path = script(tmp_path, "slow", f"echo $$ > {pidfile}; exec sleep 30\n")
    started = time.monotonic()
    with pytest.raises(HookError) as excinfo:
        run_hooks(Hooks(create_runtime=(Hook(path, timeout=1),)), "createRuntime", STATE)
    assert time.monotonic() - started < 10
    assert str(excinfo.value) == f"hooks.createRuntime[0]: {path}: timed out after 1 s"
    pid = int(pidfile.read_text())
    assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_hook_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    path = script(tmp_path, "selfkill", "kill -9 $$\n")
    with pytest.raises(HookError, match=r"killed by signal 9$"):
        run_hooks(Hooks(start_container=(Hook(path),)), "startContainer", STATE)


# --- --log -------------------------------------------------------------------

def test_json_log_lines_as_containerd_and_podman_read_them(tmp_path: Path) -> None:
    from datetime import datetime

    path = tmp_path / "log.json"
    log = RuntimeLog(str(path), "json")
    log.error('config.json: linux.namespaces[1].type: unknown namespace "x"')
    log.debug("not without --debug")
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert list(entry) == ["level", "msg", "time"] and entry["level"] == "error"
    assert entry["msg"] == 'config.json: linux.namespaces[1].type: unknown namespace "x"'
    # RFC3339 with nanoseconds in UTC ("Z"), as Go's time.RFC3339Nano parses it.
    assert entry["time"].endswith("Z") and len(entry["time"].split(".")[1]) == 10
    assert abs(datetime.fromisoformat(entry["time"][:26] + "+00:00").timestamp() - time.time()) < 60
    RuntimeLog(str(path), "json", debug=True).debug("now")
    assert [json.loads(line)["level"] for line in path.read_text().splitlines()] == ["error", "debug"]


def test_text_log_lines_and_no_file_without_log(tmp_path: Path) -> None:
    path = tmp_path / "log"
    RuntimeLog(str(path), "text").warning('a "quoted" word')
    line = path.read_text()
    assert line.startswith('time="') and line.endswith(' level=warning msg="a \\"quoted\\" word"\n')
    RuntimeLog(None, "json").error("nowhere")  # no --log: nothing written
    with pytest.raises(ValueError, match="--log-format"):
        RuntimeLog(str(path), "xml")


# --- --console-socket --------------------------------------------------------

def receive_one(listener: socket.socket, result: dict) -> None:
    """What conmon does: accept, recvmsg with room for one fd, check it."""
    conn, _ = listener.accept()
    with conn:
        data, ancillary, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
        result["payload"] = data
        result["cmsgs"] = [(level, kind, len(cdata)) for level, kind, cdata in ancillary]
        fds = array.array("i")
        for level, kind, cdata in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
        result["fds"] = list(fds)
        result["flags"] = flags


def test_the_pty_master_reaches_a_real_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    result: dict = {}
    thread = threading.Thread(target=receive_one, args=(listener, result))
    thread.start()
    master, slave = os.openpty()
    try:
        send_console(path, master, "/dev/pts/ptmx")
        thread.join(10)
        assert result["payload"] == b"/dev/pts/ptmx"
        # One SCM_RIGHTS message holding exactly one int: cmsg_len == CMSG_LEN(sizeof(int)).
        assert result["cmsgs"] == [(socket.SOL_SOCKET, socket.SCM_RIGHTS, 4)] and not result["flags"]
        received = result["fds"][0]
        os.write(received, b"hello\n")       # the engine writes to the container's terminal ...
        assert os.read(slave, 100).strip() == b"hello"
        os.write(slave, b"from inside\n")    # ... and reads what the container prints
        seen = b""
        while b"from inside" not in seen:  # after the echo of "hello"
            seen += os.read(received, 100)
        os.close(received)
    finally:
        for fd in (master, slave):
            os.close(fd)
        listener.close()


def test_console_socket_errors_are_one_line(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        with pytest.raises(NsinitError) as excinfo:
            send_console(str(tmp_path / "none.sock"), master, "/dev/pts/ptmx")
        assert str(excinfo.value) == f"console-socket: {tmp_path}/none.sock: cannot connect: No such file or directory"
        with pytest.raises(NsinitError, match="must be an absolute path"):
            send_console("relative.sock", master, "x")
    finally:
        os.close(master)
        os.close(slave)
