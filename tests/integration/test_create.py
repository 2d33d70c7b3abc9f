"""``nsinit exec`` creates a container: what really happened inside it.

Each test runs a real container from the busybox rootfs and looks at the
kernel's own answers from inside (/proc/self/mountinfo, /proc/1/fd, env,
exit statuses, signals).  ``no_residue`` checks afterwards that no pid or
state file, mount or process is left.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LOOP, REPO, Nsinit, needs_root, ok, processes_rooted_in, running, stderr_lines

pytestmark = needs_root

def init_pid(root: Path) -> int:
    return int((root / "pid").read_text())


# --- PID 1, hostname, mounts --------------------------------------------------

def test_command_is_pid_1_with_the_configured_hostname(nsinit: Nsinit) -> None:
    assert ok(nsinit.sh("echo $$; hostname")) == "1\nnsinit\n"


def parse_mountinfo(text: str) -> dict[str, tuple[str, str, set[str]]]:
    """mount point -> (root within its fs, fs type, mount options)."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        mounts[fields[4]] = (fields[3], fields[sep + 1], set(fields[5].split(",")))
    return mounts


def test_mountinfo_shows_the_rootfs_and_the_system_mounts(nsinit: Nsinit) -> None:
    mounts = parse_mountinfo(ok(nsinit.exec("cat", "/proc/self/mountinfo")))
    root, _, _ = mounts["/"]
    # The root is the bind of the rootfs directory, not the host's "/".
    assert root != "/" and str(nsinit.root).endswith(root)
    assert mounts["/proc"][1] == "proc"
    assert mounts["/dev"][1] == "tmpfs"
    assert mounts["/dev/pts"][1] == "devpts"
    assert mounts["/dev/shm"][1] == "tmpfs"
    assert mounts["/dev/mqueue"][1] == "mqueue"
    assert mounts["/sys"][1] == "sysfs" and "ro" in mounts["/sys"][2]
    # Nothing of the host's tree: every other mount is a masked or
    # read-only path below /proc or /sys.
    system = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
    others = [m for m in mounts if m not in system]
    assert all(m.startswith(("/proc/", "/sys/")) for m in others), others


def test_dev_has_the_default_nodes_and_a_private_ptmx(nsinit: Nsinit) -> None:
    out = ok(nsinit.sh("for d in null zero full tty random urandom; do test -c /dev/$d && echo $d; done;"
                       " readlink /dev/ptmx; echo x > /dev/null && echo null-ok"))
    assert out.split() == ["null", "zero", "full", "tty", "random", "urandom", "pts/ptmx", "null-ok"]


def test_masked_paths_read_empty(nsinit: Nsinit) -> None:
    out = ok(nsinit.sh("cat /proc/keys /proc/timer_list | wc -c; ls -A /sys/firmware | wc -l"))
    assert out.split() == ["0", "0"]


def test_proc_sys_is_read_only(nsinit: Nsinit) -> None:
    result = nsinit.sh("echo evil > /proc/sys/kernel/domainname; echo rc=$?; cat /proc/sys/kernel/domainname")
    out = ok(result, quiet=False)  # the shell says which writes failed
    assert "rc=0" not in out and "evil" not in out
    assert "Read-only file system" in result.stderr


def test_loopback_is_up_in_the_new_network_namespace(nsinit: Nsinit) -> None:
    flags = int(ok(nsinit.exec("cat", "/sys/class/net/lo/flags")).strip(), 16)
    assert flags & 0x1, "IFF_UP not set on lo"
    assert ok(nsinit.exec("ls", "/sys/class/net")).split() == ["lo"]


def test_the_seed_loopback_entry_runs(nsinit: Nsinit) -> None:
    # The later seed's sample: placeholders libcontainer never read.
    nsinit.config(networks=[{"type": "loopback", "address": "127.0.0.1/0", "gateway": "localhost"}])
    result = nsinit.exec("cat", "/sys/class/net/lo/flags")
    assert int(ok(result).strip(), 16) & 0x1, "IFF_UP not set on lo"
    assert result.stderr == ""


# --- fds ------------------------------------------------------------------------

def test_pid_1_has_only_stdio(nsinit: Nsinit) -> None:
    # sh (PID 1) forks ls, which lists PID 1's fds, not its own.
    assert ok(nsinit.sh("ls /proc/1/fd; true")).split() == ["0", "1", "2"]


def test_an_inherited_host_fd_does_not_leak_in(nsinit: Nsinit, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    fd = os.open(secret, os.O_RDONLY)
    try:
        os.set_inheritable(fd, True)
        result = subprocess.run(
            [sys.executable, "-m", "nsinit", "exec", "/bin/sh", "-c", "ls /proc/1/fd; true"],
            cwd=nsinit.root, capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert fd > 2
    assert ok(result).split() == ["0", "1", "2"]


# --- environment and cwd --------------------------------------------------------

def test_environment_is_config_plus_cli_plus_home(nsinit: Nsinit) -> None:
    nsinit.config(environment=["PATH=/bin:/usr/bin", "FOO=from-config", "KEEP=1"])
    host_env = dict(os.environ, NSINIT_TEST_HOST_MARKER="leaked")
    result = nsinit.run("exec", "--env", "FOO=from-cli", "-e", "EXTRA=x=y", "env", env=host_env)
    assert sorted(ok(result).splitlines()) == sorted(
        ["PATH=/bin:/usr/bin", "FOO=from-cli", "KEEP=1", "EXTRA=x=y", "HOME=/root"])


def test_home_from_the_config_is_kept(nsinit: Nsinit) -> None:
    nsinit.config(environment=["PATH=/bin:/usr/bin", "HOME=/srv"])
    assert "HOME=/srv" in ok(nsinit.exec("env")).splitlines()


def test_working_dir_and_cwd_option(nsinit: Nsinit) -> None:
    nsinit.config(working_dir="/etc")
    assert ok(nsinit.exec("pwd")) == "/etc\n"
    assert ok(nsinit.exec("--cwd", "/home/user", "pwd")) == "/home/user\n"


# --- exit statuses ----------------------------------------------------------------

def test_exit_status_is_the_commands(nsinit: Nsinit) -> None:
    result = nsinit.sh("exit 3")
    assert result.returncode == 3 and stderr_lines(result) == []


def test_killed_by_a_signal_exits_128_plus_n(nsinit: Nsinit) -> None:
    # Without NEWPID: a pid namespace's init cannot kill itself (see below).
    nsinit.config(namespaces=["NEWNS", "NEWUTS", "NEWIPC", "NEWNET"])
    result = nsinit.sh("kill -9 $$; sleep 5")
    assert result.returncode == 128 + signal.SIGKILL
    assert stderr_lines(result) == []


def test_pid_1_ignores_kill_from_inside(nsinit: Nsinit) -> None:
    # SIGNAL_UNKILLABLE: signals without a handler, even SIGKILL, sent to a
    # namespace's init from inside that namespace are dropped.
    assert ok(nsinit.sh("kill -9 $$; echo survived")) == "survived\n"


def test_command_not_found_exits_127(nsinit: Nsinit) -> None:
    result = nsinit.exec("no-such-command")
    assert result.returncode == 127
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert stderr_lines(result) == [f"nsinit: exec: no-such-command: command not found in the rootfs "
                                    f"{nsinit.root} (PATH={path})"]


def test_missing_absolute_path_exits_127(nsinit: Nsinit) -> None:
    result = nsinit.exec("/bin/no-such-command")
    assert result.returncode == 127
    assert stderr_lines(result) == [f"nsinit: exec: /bin/no-such-command: No such file or directory "
                                    f"in the rootfs {nsinit.root}"]


def test_config_from_elsewhere_runs_the_current_directory(nsinit: Nsinit, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = json.loads((nsinit.root / "container.json").read_text())
    (elsewhere / "c.json").write_text(json.dumps(config))
    (nsinit.root / "marker").write_text("the rootfs\n")
    assert ok(nsinit.run("--config", str(elsewhere / "c.json"), "exec", "cat", "/marker")) == "the rootfs\n"
    assert sorted(os.listdir(elsewhere)) == ["c.json"]   # no dev/, proc/, sys/ made there
    # An explicit rootfs still wins (relative to the file's directory).
    config["rootfs"] = os.path.relpath(nsinit.root, elsewhere)
    (elsewhere / "c.json").write_text(json.dumps(config))
    other = Nsinit(tmp_path)
    assert ok(other.run("--config", str(elsewhere / "c.json"), "exec", "cat", "/marker")) == "the rootfs\n"


@pytest.mark.parametrize("command", ["/not-executable", "not-executable"])
def test_command_not_executable_exits_126(nsinit: Nsinit, command: str) -> None:
    script = nsinit.root / "not-executable"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    nsinit.config(environment=["PATH=/bin:/"])
    result = nsinit.exec(command)
    assert result.returncode == 126
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("nsinit: exec: ") and "not-executable" in lines[0]
    assert result.stdout == ""


# --- signals and supervision ------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
def test_signals_to_nsinit_reach_pid_1(nsinit: Nsinit, sig: signal.Signals) -> None:
    name = sig.name[3:]
    with running(nsinit, f'trap "exit 42" {name}; touch /tmp/ready; {LOOP}') as proc:
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 42


def test_the_third_ctrl_c_kills_a_pid_1_that_ignores_it(nsinit: Nsinit) -> None:
    proc = nsinit.popen("exec", "sleep", "60")  # sleep as PID 1: SIGINT is ignored
    try:
        nsinit.wait_for(lambda: proc.poll() is not None or (
            (nsinit.root / "pid").exists() and
            Path(f"/proc/{init_pid(nsinit.root)}/cmdline").read_bytes() == b"sleep\x0060\x00"))
        for _ in range(2):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
            assert proc.poll() is None  # forwarded, and ignored
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 128 + signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=10)
    assert stderr_lines(subprocess.CompletedProcess([], 0, "", stderr)) == [
        "nsinit: interrupted 3 times: killing the container (SIGKILL)"]


def test_nsinit_kill_signals_pid_1(nsinit: Nsinit) -> None:
    with running(nsinit, f"touch /tmp/ready; {LOOP}") as proc:
        # From outside, TERM without a handler is dropped for an init too.
        assert nsinit.run("kill", "TERM").returncode == 0
        time.sleep(0.3)
        assert proc.poll() is None
        result = nsinit.run("kill", "KILL")
        assert result.returncode == 0, result.stderr
        assert proc.wait(timeout=10) == 128 + signal.SIGKILL


def test_container_dies_with_its_supervisor_and_leaves_stale_files(nsinit: Nsinit) -> None:
    # The sleep starts before the ready mark, so both are there when it shows.
    with running(nsinit, f"sleep 60 & touch /tmp/ready; {LOOP}") as proc:
        pid = init_pid(nsinit.root)
        assert len(processes_rooted_in(nsinit.root)) >= 2  # the init and its sleep
        proc.kill()
        proc.wait(timeout=10)
        # Reaped, not just dead: an unreaped init is the next test's case.
        nsinit.wait_for(lambda: not processes_rooted_in(nsinit.root) and not Path(f"/proc/{pid}").exists())
    # The supervisor had no chance to clean up; the next exec notices.
    assert (nsinit.root / "pid").exists()
    result = nsinit.sh("echo $$")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n"
    lines = stderr_lines(result)
    assert len(lines) == 1 and "stale" in lines[0] and lines[0].startswith("nsinit: warning: ")


# The init dies with its supervisor but nobody has reaped it yet (a slow
# host init, or a subreaper): pid and start time still read back from /proc.
# Run in a helper that is a child subreaper, so the dead init becomes its
# unreaped child for as long as the second exec runs.
ZOMBIE_INIT = r"""
import ctypes, json, os, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
root, deadline = sys.argv[1], time.monotonic() + 20
exec_ = [sys.executable, "-m", "nsinit", "exec"]

def wait_until(predicate):
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)

def state(pid):
    raw = open(f"/proc/{pid}/stat", "rb").read()
    return raw[raw.rindex(b")") + 2:].split()[0].decode()

supervisor = subprocess.Popen(exec_ + ["/bin/sh", "-c", "touch /tmp/ready; while :; do sleep 0.05; done"],
                              cwd=root, stdin=subprocess.DEVNULL)
wait_until(lambda: os.path.exists(os.path.join(root, "tmp", "ready")))
pid = int(open(os.path.join(root, "pid")).read())
supervisor.kill()
supervisor.wait()
wait_until(lambda: state(pid) == "Z")
second = subprocess.run(exec_ + ["/bin/sh", "-c", "echo $$"], cwd=root, capture_output=True,
                        text=True, stdin=subprocess.DEVNULL, timeout=20)
still = state(pid)
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
print(json.dumps({"returncode": second.returncode, "stdout": second.stdout,
                  "stderr": second.stderr, "init_state": still}))
"""


def test_a_dead_unreaped_init_is_stale_too(nsinit: Nsinit) -> None:
    helper = subprocess.run([sys.executable, "-c", ZOMBIE_INIT, str(nsinit.root)], cwd=REPO,
                            capture_output=True, text=True, timeout=40, stdin=subprocess.DEVNULL)
    assert helper.returncode == 0, helper.stderr
    second = json.loads(helper.stdout)
    assert second["init_state"] == "Z"  # the case under test really happened
    assert "Traceback" not in second["stderr"], second["stderr"]
    assert second["returncode"] == 0, second["stderr"]
    assert second["stdout"] == "1\n"
    assert "stale" in second["stderr"]


# --- tracing and the library ------------------------------------------------------

def test_trace_prints_each_step(nsinit: Nsinit) -> None:
    result = nsinit.run("--trace", "exec", "true")
    assert result.returncode == 0
    lines = stderr_lines(result)
    assert lines and all(line.startswith("nsinit: trace: ") for line in lines)
    # A header, then per step a line with its time and one per system call it made.
    step_lines = [line for line in lines[1:] if not line.startswith("nsinit: trace:     ")]
    assert step_lines and all(line.endswith(" ms") for line in step_lines)
    steps = [line.split(": ")[3].split(" ", 1)[1] for line in step_lines]
    for step in ("clone", "mounts", "pivot_root", "capabilities"):
        assert step in steps, steps


def test_library_api_returns_the_exit_status(nsinit: Nsinit) -> None:
    code = ("import sys\n"
            "from nsinit.container import Container, Process\n"
            "sys.exit(Container.load(sys.argv[1]).run(Process(['/bin/sh', '-c', 'hostname; exit 7'])))\n")
    result = subprocess.run([sys.executable, "-c", code, str(nsinit.root)], cwd=REPO,
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 7, result.stderr
    assert result.stdout == "nsinit\n"
    assert stderr_lines(result) == []


def test_a_closed_stdin_becomes_dev_null_not_an_nsinit_fd(nsinit: Nsinit) -> None:
    # With fd 0 closed, nsinit's own first fd (its lock, say) would take
    # number 0 and reach the container as its stdin.
    result = subprocess.run(
        [sys.executable, "-m", "nsinit", "exec", "/bin/sh", "-c", "readlink /proc/$$/fd/0"],
        cwd=nsinit.root, capture_output=True, text=True, timeout=30,
        preexec_fn=lambda: os.close(0))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/dev/null"
