"""create, start, delete and exec --detach: a container nobody supervises (issue 18).

The init of a created container waits on its exec fifo until ``start``; the
process that ran ``nsinit create`` (or the nearest child subreaper, as
conmon and containerd's shim are) is its parent and takes its exit status;
its stdio are that process's own fds.  Every container here runs its
command with stdout and stderr in files: a pipe would stay open as long as
the container holds it, which is the point.
"""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import Nsinit, cgroups_left, needs_root, private_dirs_left, stderr_lines, wait_until
from _live import one_error_line

pytestmark = [pytest.mark.integration, needs_root]


class Run:
    """One nsinit command with its stdio in files (the container's, too)."""

    def __init__(self, nsinit: Nsinit, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> None:
        tmp = nsinit.root.parent
        n = len(list(tmp.glob("out-*")))
        self.out_path, self.err_path = tmp / f"out-{n}", tmp / f"err-{n}"
        (tmp / f"in-{n}").write_text(stdin)
        with open(tmp / f"in-{n}") as i, open(self.out_path, "w") as o, open(self.err_path, "w") as e:
            self.returncode = subprocess.run([sys.executable, "-m", "nsinit", *args], cwd=nsinit.root,
                                             stdin=i, stdout=o, stderr=e, timeout=60, env=env).returncode

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    @property
    def pid(self) -> int:
        assert self.returncode == 0, self.stderr
        return int(self.stdout.splitlines()[0])


def run_ok(nsinit: Nsinit, *args: str, **kw: Any) -> Run:
    run = Run(nsinit, *args, **kw)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run


def status_of(nsinit: Nsinit) -> str:
    result = nsinit.run("state", "--json")
    assert "Traceback" not in result.stderr
    return str(json.loads(result.stdout)["status"]) if result.stdout else "none"


def proc_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def wait_gone(pid: int) -> None:
    """Until ``pid`` has exited (a zombie counts: it is not ours to reap)."""
    def gone() -> bool:
        try:
            return proc_status(pid, "State").startswith(("Z", "X"))
        except FileNotFoundError:
            return True
    wait_until(gone)


@pytest.fixture(autouse=True)
def no_container_left(nsinit: Nsinit) -> Iterator[None]:
    """A created init waits on its fifo for ever, and nothing supervises it:
    a test that stops half-way (a failed assertion) would leave it behind.
    Delete it then, and still fail: leaving one is a defect in itself."""
    yield
    left = status_of(nsinit)
    if left != "none":
        nsinit.run("delete", "--force")
        raise AssertionError(f"the test left a {left} container (deleted now)")


# -- create, start, state, delete ------------------------------------------------

def test_create_leaves_the_init_waiting_and_start_releases_it(nsinit: Nsinit) -> None:
    created = run_ok(nsinit, "create", "/bin/sh", "-c", "touch /tmp/started; exec sleep 30")
    pid = created.pid
    assert created.stdout == f"{pid}\n" and created.stderr == ""
    # Blocked in the open of its exec fifo, its command not run yet (create
    # returns once the init has said it goes to the fifo: on a loaded machine
    # it may still be on its way into the open).
    wait_until(lambda: proc_status(pid, "State").startswith("S"))
    assert Path(f"/proc/{pid}/wchan").read_text() in ("wait_for_partner", "0")  # "0": wchan hidden by the kernel
    assert not (nsinit.root / "tmp" / "started").exists()
    assert status_of(nsinit) == "created"

    started = run_ok(nsinit, "start")
    assert started.stdout == "" and started.stderr == ""  # podman runs start with its own stdout
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0030\x00")  # the same pid, exec'd
    assert (nsinit.root / "tmp" / "started").exists()
    assert status_of(nsinit) == "running"

    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    result = nsinit.run("state", "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["status"] == "stopped"
    assert one_error_line(nsinit.run("state")) == (
        f"nsinit: state: stopped: container init {pid} has exited; nsinit delete removes it")
    assert private_dirs_left(nsinit.root.parent) and cgroups_left(nsinit.root.parent)  # kept for delete
    run_ok(nsinit, "delete")
    assert not private_dirs_left(nsinit.root.parent) and not cgroups_left(nsinit.root.parent)
    assert status_of(nsinit) == "none"


def test_start_twice_and_start_of_nothing_are_one_line(nsinit: Nsinit) -> None:
    assert one_error_line(nsinit.run("start")) == f"nsinit: start: no container in {nsinit.root}"
    pid = run_ok(nsinit, "create", "/bin/sleep", "30").pid
    run_ok(nsinit, "start")
    assert one_error_line(nsinit.run("start")) == (
        f"nsinit: start: the container in {nsinit.root} runs already (pid {pid}): only a created one can be started")
    run_ok(nsinit, "delete", "--force")


def test_delete_refuses_a_running_container_and_force_kills_it(nsinit: Nsinit) -> None:
    pid = run_ok(nsinit, "exec", "--detach", "/bin/sleep", "30").pid
    assert one_error_line(nsinit.run("delete")) == (
        f"nsinit: delete: the container in {nsinit.root} is running (pid {pid}); nsinit stop it first, "
        "or delete --force")
    assert proc_status(pid, "State").startswith("S")
    run_ok(nsinit, "delete", "--force")
    wait_gone(pid)
    assert status_of(nsinit) == "none"
    # Nothing to delete: an error, except with --force (runc's, which podman and containerd rely on).
    assert one_error_line(nsinit.run("delete")) == f"nsinit: delete: no container in {nsinit.root}"
    run_ok(nsinit, "delete", "--force")


def test_delete_of_a_created_container_needs_no_force(nsinit: Nsinit) -> None:
    pid = run_ok(nsinit, "create", "/bin/sh", "-c", "touch /tmp/started").pid
    run_ok(nsinit, "delete")
    wait_gone(pid)
    assert not (nsinit.root / "tmp" / "started").exists()


@pytest.mark.parametrize("command, code, line", [
    (["/bin/nonexistent"], 127, "exec: /bin/nonexistent: No such file or directory in the rootfs {rootfs}"),
    (["--cwd", "/no/such/dir", "/bin/true"], 125, "cwd: /no/such/dir: No such file or directory"),
    (["-t", "/bin/true"], None, None),
], ids=["missing command", "bad cwd", "tty"])
def test_a_failed_create_says_one_line_and_leaves_nothing(nsinit: Nsinit, command: list[str], code: int | None,
                                                          line: str | None) -> None:
    words = ["exec", "--detach", *command] if command[0] == "-t" else ["create", *command]
    failed = Run(nsinit, *words)
    lines = failed.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stdout == ""  # no pid: nothing was created
    if line is None:
        assert failed.returncode == 125 and lines[0].startswith("nsinit: tty: a detached container cannot have "
                                                                 "a terminal here"), lines
    else:
        assert failed.returncode == code, failed.stderr
        assert lines[0] == "nsinit: " + line.format(rootfs=nsinit.root)
    assert status_of(nsinit) == "none"  # and no_residue: no cgroup, no record, no fifo, no process


# -- nobody in between: the caller is the parent -----------------------------------

REAPER = textwrap.dedent("""
    import ctypes, json, os, subprocess, sys
    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    steps, tmp = json.loads(sys.argv[1]), sys.argv[2]
    report = {"me": os.getpid(), "runs": []}
    for n, words in enumerate(steps):
        with open(f"{tmp}/r-out-{n}", "w+") as out, open(f"{tmp}/r-err-{n}", "w+") as err:
            code = subprocess.run([sys.executable, "-m", "nsinit", *words], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err).returncode
            out.seek(0), err.seek(0)
            report["runs"].append([code, out.read(), err.read()])
        if n == 0:
            report["pid"] = pid = int(report["runs"][0][1].split()[0])
            with open(f"/proc/{pid}/status") as f:
                report["ppid"] = int(next(l for l in f if l.startswith("PPid:")).split()[1])
    _, raw = os.waitpid(report["pid"], 0)
    report["status"] = os.waitstatus_to_exitcode(raw)
    print(json.dumps(report))
""")


def under_a_subreaper(nsinit: Nsinit, *steps: list[str]) -> dict[str, Any]:
    """Run nsinit commands from a child subreaper (conmon, the shim) that
    then waits for the pid the first one printed."""
    result = subprocess.run([sys.executable, "-c", REAPER, json.dumps(steps), str(nsinit.root.parent)],
                            cwd=nsinit.root, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    for code, _out, err in report["runs"]:
        assert code == 0 and "Traceback" not in err, report
    return report


def test_the_init_is_the_subreapers_child_and_its_status_is_collected_there(nsinit: Nsinit) -> None:
    report = under_a_subreaper(nsinit, ["create", "/bin/sh", "-c", "exit 7"], ["start"], ["delete"])
    assert report["ppid"] == report["me"]  # nsinit create cloned it and exited: no nsinit in between
    assert report["status"] == 7


def test_exec_detach_prints_the_pid_of_a_started_init(nsinit: Nsinit) -> None:
    report = under_a_subreaper(nsinit, ["exec", "--detach", "/bin/sh", "-c", "kill -TERM $$; exit 3"])
    assert report["runs"][0][1] == f"{report['pid']}\n"
    assert report["ppid"] == report["me"]
    # PID 1 of a pid namespace ignores a signal it has no handler for: exit 3.
    assert report["status"] == 3
    run_ok(nsinit, "delete")


def test_exec_detach_into_a_running_container_starts_a_joined_process(nsinit: Nsinit) -> None:
    init = run_ok(nsinit, "exec", "--detach", "/bin/sleep", "30").pid
    report = under_a_subreaper(nsinit, ["exec", "--detach", "/bin/sh", "-c", "sleep 0.5; exit 4"])
    assert report["pid"] != init and report["ppid"] == report["me"]
    assert report["status"] == 4  # it outlived the nsinit that started it, which exited at once
    run_ok(nsinit, "delete", "--force")


def test_create_with_trace_says_each_step_and_stops_at_the_wait(nsinit: Nsinit) -> None:
    created = run_ok(nsinit, "--trace", "create", "/bin/true")
    lines = created.stderr.splitlines()
    assert all(line.startswith("nsinit: trace: ") for line in lines)
    steps = [line.split(": ")[3] for line in lines if line.startswith("nsinit: trace: create: child ")]
    assert "child pivot_root" in steps and steps[-1] == "child exec"  # the command's look-up; not the wait
    run_ok(nsinit, "delete")


def test_delete_force_while_the_init_is_an_unreaped_zombie(nsinit: Nsinit) -> None:
    # The subreaper reaps only after delete: the cgroups go with a zombie in them.
    report = under_a_subreaper(nsinit, ["exec", "--detach", "/bin/sleep", "30"], ["delete", "--force"])
    assert report["status"] == -signal.SIGKILL  # waitstatus_to_exitcode: killed by SIGKILL


def test_the_container_stdio_are_the_callers_fds(nsinit: Nsinit) -> None:
    run = run_ok(nsinit, "exec", "--detach", "/bin/sh", "-c",
                 "read line; echo \"out: $line\"; echo err >&2; (ls /proc/$$/fd) > /tmp/fds; true", stdin="typed\n")
    pid = run.pid
    wait_gone(pid)
    assert run.stdout == f"{pid}\nout: typed\n"
    assert run.stderr == "err\n"
    assert (nsinit.root / "tmp" / "fds").read_text().split() == ["0", "1", "2"]  # and nothing else of nsinit's
    run_ok(nsinit, "delete")


def test_nsinit_holds_no_copy_of_the_stdio_once_it_exits(nsinit: Nsinit) -> None:
    # The pipe's reader sees EOF when the container exits: nobody else holds its write end.
    proc = subprocess.Popen([sys.executable, "-m", "nsinit", "exec", "--detach", "/bin/sh", "-c",
                             "sleep 0.5; echo bye"], cwd=nsinit.root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None
    out, _ = proc.communicate(timeout=10)
    pid = int(out.split()[0])
    assert out.decode() == f"{pid}\nbye\n"
    wait_gone(pid)
    run_ok(nsinit, "delete")


def test_a_terminal_on_nsinits_stdio_becomes_dev_null_in_the_container(nsinit: Nsinit) -> None:
    master, slave = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "nsinit", "exec", "--detach", "-T", "/bin/sh", "-c",
                                 "(readlink /proc/$$/fd/1) > /tmp/stdout; echo hidden; true"], cwd=nsinit.root,
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(slave)
    os.close(master)
    assert result.returncode == 0
    assert stderr_lines(result) == ["nsinit: warning: stdout of nsinit is a terminal: the detached container gets "
                                    "/dev/null there, never the host's terminal (redirect to a file or pipe to keep "
                                    "its output)"]
    wait_until(lambda: (nsinit.root / "tmp" / "stdout").exists() and status_of(nsinit) == "stopped")
    assert (nsinit.root / "tmp" / "stdout").read_text() == "/dev/null\n"
    run_ok(nsinit, "delete")


# -- joining, pausing, gc ------------------------------------------------------------

def test_a_created_container_can_be_joined_as_runc_allows(nsinit: Nsinit) -> None:
    # runc exec refuses only a stopped container (and a paused one without
    # --ignore-paused): a created one is fully set up, its PID 1 not exec'd yet.
    pid = run_ok(nsinit, "create", "/bin/sleep", "30").pid
    joined = nsinit.exec("/bin/sh", "-c", "echo $$; cat /proc/1/status | grep -c '^State:.S'")
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.split() == ["2", "1"]
    assert status_of(nsinit) == "created"
    run_ok(nsinit, "start")
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"/bin/sleep\x0030\x00"
    run_ok(nsinit, "delete", "--force")


def test_pause_and_resume_of_a_created_container(nsinit: Nsinit) -> None:
    run_ok(nsinit, "create", "/bin/sleep", "30")
    assert nsinit.run("pause").returncode == 0
    assert status_of(nsinit) == "paused"
    assert one_error_line(nsinit.run("start")).endswith("is paused (pid %s); nsinit resume first"
                                                       % json.loads(nsinit.run("state", "--json").stdout)["init_pid"])
    assert nsinit.run("resume").returncode == 0
    assert status_of(nsinit) == "created"
    run_ok(nsinit, "start")
    assert status_of(nsinit) == "running"
    run_ok(nsinit, "delete", "--force")


def test_gc_keeps_a_created_container_whose_creator_is_gone(nsinit: Nsinit, tmp_path: Path) -> None:
    env = {**os.environ, "NSINIT_RUN_DIR": str(tmp_path / "run")}
    pid = run_ok(nsinit, "create", "/bin/sleep", "30", env=env).pid
    gc = subprocess.run([sys.executable, "-m", "nsinit", "gc", "--json"], capture_output=True, text=True,
                        env=env, timeout=60)
    assert gc.returncode == 0 and json.loads(gc.stdout) == [], gc.stderr
    assert len(os.listdir(tmp_path / "run")) == 1
    # Once its init is dead, gc removes it (its root dir need not exist any more).
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    gc = subprocess.run([sys.executable, "-m", "nsinit", "gc", "--json"], capture_output=True, text=True,
                        env=env, timeout=60)
    assert gc.returncode == 0, gc.stderr
    [entry] = json.loads(gc.stdout)
    assert entry["init_pid"] == pid and entry["root"] == str(nsinit.root)
    assert os.listdir(tmp_path / "run") == []


def test_exec_in_the_dir_of_a_stopped_detached_container_replaces_it(nsinit: Nsinit) -> None:
    pid = run_ok(nsinit, "exec", "--detach", "/bin/true").pid
    wait_gone(pid)
    wait_until(lambda: status_of(nsinit) == "stopped")
    result = nsinit.exec("/bin/echo", "new")
    assert result.returncode == 0 and result.stdout == "new\n" and result.stderr == ""
    assert status_of(nsinit) == "none"


def test_stop_leaves_a_detached_container_stopped_for_delete(nsinit: Nsinit) -> None:
    pid = run_ok(nsinit, "exec", "--detach", "/bin/sleep", "30").pid
    result = nsinit.run("stop", "--time", "0")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    wait_gone(pid)
    assert status_of(nsinit) == "stopped"
    run_ok(nsinit, "delete")


def test_an_exec_failure_after_start_is_reported_by_start(nsinit: Nsinit) -> None:
    # Executable, found, but no binary and no #!: execve fails with ENOEXEC,
    # after the release (the check before the wait cannot see that).
    script = nsinit.root / "bin" / "notabinary"
    script.write_bytes(b"\x00\x01garbage")
    script.chmod(0o755)
    pid = run_ok(nsinit, "create", "/bin/notabinary").pid
    failed = nsinit.run("start")
    assert failed.returncode == 126, failed.stderr
    assert stderr_lines(failed) == ["nsinit: exec: the command's execve failed: Exec format error"]
    wait_gone(pid)
    run_ok(nsinit, "delete")


# -- the library ------------------------------------------------------------------------

def run_python(nsinit: Nsinit, body: str) -> subprocess.CompletedProcess[str]:
    script = "import os, sys\nfrom nsinit.container import Container, Process\n"
    script += f"root = {str(nsinit.root)!r}\n" + textwrap.dedent(body)
    out = nsinit.root.parent / "python-out"
    with open(out, "w") as f:
        result = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.PIPE, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
    result.stdout = out.read_text()
    return result


def test_library_create_start_wait_signal(nsinit: Nsinit) -> None:
    result = run_python(nsinit, """
        c = Container.load(root)
        before = sorted(os.listdir("/proc/self/fd"))
        p = c.create(Process(["/bin/sh", "-c", "trap 'exit 4' TERM; touch /tmp/started; while :; do sleep 0.1; done"]))
        print("fds kept", sorted(os.listdir("/proc/self/fd")) != before, flush=True)
        print("status", c.status_with_record()[0], os.path.exists(root + "/tmp/started"), flush=True)
        c.start()
        while not os.path.exists(root + "/tmp/started"):
            pass
        print("status", c.status_with_record()[0], flush=True)
        p.signal(15)
        print("exit", p.wait(), p.wait(), flush=True)
        print("status", c.status_with_record()[0], flush=True)
        c.delete()
        print("status", c.status_with_record()[0], flush=True)
        q = c.run(Process(["/bin/sh", "-c", "exit 5"]), detach=True)
        print("run detach", q.wait(), flush=True)
        c.destroy()
        print("status", c.status_with_record()[0], flush=True)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["fds kept False", "status created False", "status running",
                                          "exit 4 4", "status stopped", "status none", "run detach 5",
                                          "status none"]


def test_the_readme_library_snippet_runs_as_written(nsinit: Nsinit) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Library\n", 1)[1].split("\n## ", 1)[0]
    # The first indented block, blank lines within it included.
    lines = section.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith("    "))
    end = next((i for i in range(first, len(lines)) if lines[i] and not lines[i].startswith("    ")), len(lines))
    block = "\n".join(line[4:] for line in lines[first:end])
    assert block.count('"/tmp/nsinit-demo"') == 1  # the demo's root dir, here a fresh one
    result = run_python(nsinit, block.replace('"/tmp/nsinit-demo"', "root"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout.splitlines()
    assert out[0] == "nsinit" and out[1].endswith(" created") and out[-2:] == ["3", "137"], out


@pytest.mark.parametrize("settings", [{}, {"no_new_privileges": True}, {"user": "user", "no_new_privileges": True}],
                         ids=["filter before the capabilities", "filter last", "filter last, as a user"])
def test_a_created_container_waits_and_starts_under_its_seccomp_filter(nsinit: Nsinit, settings: dict) -> None:
    # The filter is loaded before the wait (a listener's fd must reach the
    # creator), so the wait's own calls (open, write, dup2, close) run under it.
    profile = Path("/usr/share/containers/seccomp.json")
    if profile.exists():
        from nsinit.config.defaults import DEFAULT_CAPABILITIES
        from nsinit.config.seccomp import to_dict
        from nsinit.seccomp.profile import from_profile

        converted, _ = from_profile(json.loads(profile.read_text()), str(profile), DEFAULT_CAPABILITIES, "x86_64")
        seccomp = to_dict(converted)
    else:
        seccomp = {"default_action": "allow", "syscalls": [{"name": "keyctl", "action": "errno", "errno_ret": 18}]}
    nsinit.config(seccomp=seccomp, **settings)
    pid = run_ok(nsinit, "create", "/bin/sh", "-c", "grep ^Seccomp: /proc/self/status > /tmp/seccomp").pid
    assert proc_status(pid, "Seccomp") == "2"  # filtered already while it waits
    run_ok(nsinit, "start")
    wait_gone(pid)
    assert (nsinit.root / "tmp" / "seccomp").read_text() == "Seccomp:\t2\n"
    run_ok(nsinit, "delete")
