"""containerd 1.6 (through containerd-shim-runc-v2) drives the runtime under test (issue 18, part 3).

``ctr run --runtime io.containerd.runc.v2 --runc-binary RUNTIME --rootfs DIR``:
run --rm (exit status, stdout and stderr, env, cwd, -t, a missing command),
run -d, task exec, ps, pause, resume, kill (one signal, --all), limits,
task delete and container rm, and after every test nothing is left: no
container or task in ctr, no runtime state, no shim or its socket, no
cgroup, no fifo, no mount, no process.

The containerd is the module's own, never the machine's: its config puts
root, state, the gRPC and ttrpc sockets and the opt dir under a tmp dir,
with the CRI plugin off (it wants CNI and a sandbox image); ctr's --runc-root,
--fifo-dir and --cgroup keep the runtime's state, the stdio fifos and the
cgroups there and under a parent of this module's.  It is stopped and its
dirs removed at the end even when a test failed.  One thing goes where
containerd 1.6 puts it whatever the config says: the shim's socket, in
/run/containerd/s (named by a hash of address, namespace and id; checked
gone after each test).  The shim, like conmon, ends as PID 1's child, and
PID 1 reaps it late here: a zombie shim is no leftover, a live one is.

The runtime is this tree's nsinit-runc, or NSINIT_ENGINE_RUNTIME (see _engines.py).
"""
from __future__ import annotations

import hashlib
import os
import pty
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import needs_root, processes_rooted_in, wait_until
from _engines import (Runtime, cgroup_children, container_stderr, kill_what_is_left, live_processes_mentioning,
                      mounts_mentioning, needs, needs_binaries, nsinit_records_mentioning, read_until_closed,
                      remove_cgroup_tree, runtime_under_test)

pytestmark = [pytest.mark.integration, needs_root, needs_binaries("containerd", "ctr", "containerd-shim-runc-v2")]

NAMESPACE = "nsinit-test"
SHIM_SOCKETS = Path("/run/containerd/s")   # containerd 1.6's shim.SocketAddress: not configurable

CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"""


class Containerd:
    """A private containerd and ctr talking to it, running ``runtime`` through the runc v2 shim."""

    def __init__(self, base: Path, runtime: Runtime, rootfs: Path) -> None:
        self.base = base
        self.runtime = runtime
        self.rootfs = rootfs
        self.address = str(base / "containerd.sock")
        self.runc_root = base / "runc"
        self.fifo_dir = base / "fifo"
        self.cgroup_parent = f"/nsinit-ctr-{base.parent.name}-{base.name}"
        self.daemon: subprocess.Popen[bytes] | None = None

    # --- the daemon ---
    def start(self) -> None:
        config = self.base / "config.toml"
        config.write_text(CONFIG.format(base=self.base))
        with open(self.base / "containerd.log", "wb") as log:
            self.daemon = subprocess.Popen(["containerd", "--config", str(config)], stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 30
        while self.ctr("version", timeout=10).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"containerd did not come up: {self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(timeout=10)

    def log_tail(self) -> str:
        path = self.base / "containerd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # --- ctr ---
    def ctr(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", self.address, "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def ok(self, *args: str, **kw: Any) -> str:
        result = self.ctr(*args, **kw)
        assert result.returncode == 0, f"ctr {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result.stdout

    def run_options(self, container_id: str, *options: str) -> list[str]:
        return ["--runtime", "io.containerd.runc.v2", "--runc-binary", self.runtime.path,
                "--runc-root", str(self.runc_root), "--fifo-dir", str(self.fifo_dir),
                "--cgroup", f"{self.cgroup_parent}/{container_id}", *options, "--rootfs", str(self.rootfs),
                container_id]

    def run(self, container_id: str, script: str, *options: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``ctr run --rm ... ID /bin/sh -c SCRIPT``, in the foreground."""
        return self.ctr("run", "--rm", *self.run_options(container_id, *options), "/bin/sh", "-c", script, **kw)

    def detached(self, container_id: str, script: str, *options: str) -> None:
        self.ok("run", "--detach", *self.run_options(container_id, *options), "/bin/sh", "-c", script)

    def exec(self, container_id: str, exec_id: str, *command: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.ctr("task", "exec", "--exec-id", exec_id, "--fifo-dir", str(self.fifo_dir), container_id,
                        *command, **kw)

    def task_status(self, container_id: str) -> str:
        for line in self.ok("task", "ls").splitlines()[1:]:
            fields = line.split()
            if fields[0] == container_id:
                return fields[2]
        return ""

    def task_pid(self, container_id: str) -> int:
        for line in self.ok("task", "ls").splitlines()[1:]:
            fields = line.split()
            if fields[0] == container_id:
                return int(fields[1])
        raise AssertionError(f"no task {container_id}")

    def remove(self, container_id: str) -> subprocess.CompletedProcess[str]:
        """Once its task stopped: ``task delete`` (its stderr tells a non-zero
        exit status), then ``container rm``."""
        wait_until(lambda: self.task_status(container_id) in ("STOPPED", ""), timeout=20)
        deleted = self.ctr("task", "delete", container_id)
        self.ok("container", "rm", container_id)
        return deleted

    def remove_everything(self) -> None:
        for task in self.ctr("task", "ls", "--quiet").stdout.split():
            self.ctr("task", "resume", task)
            self.ctr("task", "kill", "--all", "--signal", "SIGKILL", task)
            deadline = time.monotonic() + 10
            while self.task_status(task) not in ("STOPPED", "") and time.monotonic() < deadline:
                time.sleep(0.05)
            self.ctr("task", "delete", "--force", task)
        for container in self.ctr("container", "ls", "--quiet").stdout.split():
            self.ctr("container", "rm", container)

    def shim_socket(self, container_id: str) -> Path:
        digest = hashlib.sha256(os.path.join(self.address, NAMESPACE, container_id).encode()).hexdigest()
        return SHIM_SOCKETS / digest

    def leftovers(self, ids: list[str]) -> list[str]:
        left = [f"ctr container ls: {line}" for line in self.ctr("container", "ls", "--quiet").stdout.split()]
        left += [f"ctr task ls: {line}" for line in self.ctr("task", "ls", "--quiet").stdout.split()]
        runtime_root = str(self.runc_root / NAMESPACE)
        left += [f"the runtime still has {i}" for i in ids if self.runtime.knows(i, runtime_root)]
        left += [f"runtime state: {runtime_root}/{i}" for i in ids if os.path.lexists(f"{runtime_root}/{i}")]
        left += [f"shim socket of {i}: {self.shim_socket(i)}" for i in ids if os.path.lexists(self.shim_socket(i))]
        bundles = self.base / "state" / "io.containerd.runtime.v2.task" / NAMESPACE
        left += [f"bundle: {bundles / i}" for i in ids if os.path.lexists(bundles / i)]
        left += [f"fifo: {name}" for name in (os.listdir(self.fifo_dir) if self.fifo_dir.is_dir() else [])]
        left += [f"cgroup: {path}" for path in cgroup_children(self.cgroup_parent)]
        left += [f"mount: {line}" for line in mounts_mentioning(str(self.base))]
        left += [f"container process: {pid}" for pid in processes_rooted_in(self.rootfs)]
        left += [f"live process: {line}" for line in live_processes_mentioning(f"-address {self.address}")]
        left += [f"nsinit record: {path}" for path in nsinit_records_mentioning(str(self.base))]
        return left


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return runtime_under_test(tmp_path_factory)


@pytest.fixture(scope="module")
def containerd_env(tmp_path_factory: pytest.TempPathFactory, runtime: Runtime) -> Iterator[Containerd]:
    from nsinit.demo_rootfs import build_rootfs

    base = tmp_path_factory.mktemp("containerd")
    rootfs = base / "rootfs"
    build_rootfs(str(rootfs))
    daemon = Containerd(base, runtime, rootfs)
    try:
        daemon.start()
        yield daemon
    finally:
        try:
            if daemon.daemon is not None and daemon.daemon.poll() is None:
                daemon.remove_everything()
        finally:
            daemon.stop()
            kill_what_is_left(daemon.cgroup_parent, rootfs, base)
            remove_cgroup_tree(daemon.cgroup_parent)
            for name in ("root", "state", "opt", "runc", "fifo"):
                shutil.rmtree(base / name, ignore_errors=True)


@pytest.fixture
def containerd(containerd_env: Containerd) -> Iterator[Containerd]:
    """The module's containerd; after the test, nothing of its containers may be left."""
    yield containerd_env
    ids = [*containerd_env.ctr("container", "ls", "--quiet").stdout.split(), *USED_IDS]
    USED_IDS.clear()
    containerd_env.remove_everything()
    deadline = time.monotonic() + 5
    while containerd_env.leftovers(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not containerd_env.leftovers(ids), "\n".join(containerd_env.leftovers(ids))


USED_IDS: list[str] = []


def new_id(name: str) -> str:
    """A container id, remembered for the residue check (ctr forgets it once removed)."""
    USED_IDS.append(name)
    return name


def test_run_rm_gives_the_exit_status_and_stdio(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    needs(request, containerd.runtime, "create", "start", "delete")
    result = containerd.run(new_id("status"), "echo to-out; echo to-err >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert (result.stdout, container_stderr(result.stderr)) == ("to-out\n", "to-err\n")
    zero = containerd.run(new_id("zero"), "exit 0")
    assert (zero.returncode, container_stderr(zero.stderr)) == (0, "")


def test_run_passes_env_and_cwd(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    # Not stdin: ctr 1.6 never closes the container's stdin fifo when its own
    # stdin ends (without -t), so `cat` would wait for ever, with runc too.
    needs(request, containerd.runtime, "create", "start", "delete")
    result = containerd.run(new_id("env"), 'echo "$GREETING"; pwd; id -u',
                            "--env", "GREETING=hello there", "--cwd", "/tmp")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello there", "/tmp", "0"]


def test_null_io_gives_a_writable_dev_null(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    # ctr run --null-io: the shim (go-runc's NullIO) hands the runtime
    # /dev/null opened O_RDONLY as stdout and stderr.  runc reopens every
    # stdio that is /dev/null as the container's own, read-write
    # (libcontainer's reOpenDevNull), so the command can write to it.
    needs(request, containerd.runtime, "create", "start", "delete")
    ran = containerd.rootfs / "tmp" / "null-io"
    ran.unlink(missing_ok=True)
    result = containerd.run(new_id("nullio"), "echo ran > /tmp/null-io; echo out; echo err >&2", "--null-io")
    assert ran.read_text() == "ran\n"
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


def test_a_missing_command_fails_the_run(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    needs(request, containerd.runtime, "create", "start", "delete")
    cid = new_id("missing")
    result = containerd.ctr("run", "--rm", *containerd.run_options(cid), "/no/such/command")
    assert result.returncode != 0
    # The shim reads the runtime's error from its --log (JSON) and ctr shows it.
    assert "/no/such/command" in result.stderr, result.stderr
    containerd.ctr("container", "rm", cid)   # a failed create leaves ctr's container record


def test_detached_run_ps_kill_delete(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    needs(request, containerd.runtime, "create", "start", "ps", "kill", "delete")
    cid = new_id("detached")
    containerd.detached(cid, 'trap "exit 7" USR1; sleep 1000 & while :; do sleep 0.05; done')
    assert containerd.task_status(cid) == "RUNNING"
    pid = containerd.task_pid(cid)
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/bin/sh\0-c\0")
    # The shim's Pids: `ps --format json`, host pids, the init's among them.
    def listed() -> list[int]:
        return [int(line.split()[0]) for line in containerd.ok("task", "ps", cid).splitlines()[1:]]

    wait_until(lambda: any(cmdline(p) == b"sleep\x001000\x00" for p in listed()))   # the init's child
    assert pid in listed()
    containerd.ok("task", "kill", "--signal", "SIGUSR1", cid)
    deleted = containerd.remove(cid)
    assert "exit code 7" in deleted.stderr, deleted.stderr


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""   # one of the loop's short sleeps, gone since


def test_ps_of_a_stopped_task_is_empty(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    # runc ps of a stopped container lists what is left in its cgroup: nothing.
    needs(request, containerd.runtime, "create", "start", "ps", "delete")
    cid = new_id("psstopped")
    containerd.detached(cid, "exit 0")
    wait_until(lambda: containerd.task_status(cid) == "STOPPED")
    assert containerd.ok("task", "ps", cid).splitlines()[1:] == []
    containerd.remove(cid)


def test_exec_into_a_running_task(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    needs(request, containerd.runtime, "create", "start", "exec", "kill", "delete")
    cid = new_id("execd")
    (containerd.rootfs / "tmp" / "up").unlink(missing_ok=True)
    containerd.detached(cid, "echo up > /tmp/up; while :; do sleep 0.05; done")
    wait_until(lambda: (containerd.rootfs / "tmp" / "up").exists())   # the rootfs's own /tmp
    # ctr's exec process has no env, no PATH: absolute commands only.
    out = containerd.exec(cid, "e1", "/bin/sh", "-c", "cat /tmp/up; echo $$; cat /proc/1/cmdline | head -c 7; echo")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "up" and lines[1] != "1" and lines[2] == "/bin/sh", out.stdout
    assert containerd.exec(cid, "e2", "/bin/sh", "-c", "exit 4").returncode == 4
    user = containerd.ctr("task", "exec", "--exec-id", "e3", "--user", "1000", "--cwd", "/home/user",
                          "--fifo-dir", str(containerd.fifo_dir), cid, "/bin/sh", "-c", "id -u; pwd")
    assert user.stdout.splitlines() == ["1000", "/home/user"], user.stderr
    missing = containerd.exec(cid, "e4", "/no/such/command")
    assert missing.returncode != 0 and "/no/such/command" in missing.stderr, missing.stderr
    containerd.ok("task", "kill", "--signal", "SIGKILL", cid)
    containerd.remove(cid)


def test_kill_all_and_the_status_of_a_killed_task(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    needs(request, containerd.runtime, "create", "start", "kill", "delete")
    cid = new_id("killall")
    containerd.detached(cid, "sleep 1000 & while :; do sleep 0.05; done")
    containerd.ok("task", "kill", "--all", "--signal", "SIGKILL", cid)
    deleted = containerd.remove(cid)
    assert f"exit code {128 + signal.SIGKILL}" in deleted.stderr, deleted.stderr


def test_pause_and_resume(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    needs(request, containerd.runtime, "create", "start", "pause", "resume", "kill", "delete")
    cid = new_id("paused")
    containerd.detached(cid, "while :; do sleep 0.05; done")
    freezer = Path(f"/sys/fs/cgroup/freezer{containerd.cgroup_parent}/{cid}/freezer.state")
    containerd.ok("task", "pause", cid)
    assert containerd.task_status(cid) == "PAUSED"
    assert freezer.read_text().strip() == "FROZEN"
    containerd.ok("task", "resume", cid)
    assert containerd.task_status(cid) == "RUNNING"
    assert freezer.read_text().strip() == "THAWED"
    containerd.ok("task", "kill", "--signal", "SIGKILL", cid)
    containerd.remove(cid)


def test_sigkill_ends_a_paused_task(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    # On cgroup v1 a frozen process does not die of SIGKILL until thawed:
    # runc thaws the container after sending SIGKILL to a paused one
    # (libcontainer's Signal), so `kill 9` ends it.  podman kill of a paused
    # container relies on it too (else: "timed out waiting for file .../exits/ID").
    needs(request, containerd.runtime, "create", "start", "pause", "kill", "delete")
    cid = new_id("frozenkill")
    containerd.detached(cid, "while :; do sleep 0.05; done")
    containerd.ok("task", "pause", cid)
    containerd.ok("task", "kill", "--signal", "SIGKILL", cid)
    deadline = time.monotonic() + 3   # runc's: within 0.1 s
    while containerd.task_status(cid) != "STOPPED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert containerd.task_status(cid) == "STOPPED"
    deleted = containerd.remove(cid)
    assert f"exit code {128 + signal.SIGKILL}" in deleted.stderr, deleted.stderr


def test_limits_land_on_the_cgroup_asked(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    # ctr's default spec mounts no cgroupfs in the container: read them on the host.
    needs(request, containerd.runtime, "create", "start", "kill", "delete")
    cid = new_id("limited")
    containerd.detached(cid, "while :; do sleep 0.05; done", "--memory-limit", str(64 * 1024 * 1024),
                        "--cpus", "0.5")
    pid = containerd.task_pid(cid)
    assert f"memory:{containerd.cgroup_parent}/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()
    memory = Path(f"/sys/fs/cgroup/memory{containerd.cgroup_parent}/{cid}")
    cpu = Path(f"/sys/fs/cgroup/cpu{containerd.cgroup_parent}/{cid}")
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
    assert int((cpu / "cpu.cfs_quota_us").read_text()) * 2 == int((cpu / "cpu.cfs_period_us").read_text())
    containerd.ok("task", "kill", "--signal", "SIGKILL", cid)
    containerd.remove(cid)


def test_run_with_a_tty(containerd: Containerd, request: pytest.FixtureRequest) -> None:
    # ctr run -t wants a terminal of its own: it gets a pty here.  The shim
    # hands the runtime a console socket and copies the master it receives.
    needs(request, containerd.runtime, "create", "start", "delete", "console-socket")
    cid = new_id("tty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(["ctr", "--address", containerd.address, "--namespace", NAMESPACE, "run", "--rm",
                                 "--tty", *containerd.run_options(cid), "/bin/sh", "-c",
                                 "tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; exit 5"],
                                stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        slave = -1
        out = read_until_closed(master, proc, timeout=30)
        code = proc.wait(timeout=10)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert code == 5, out
    assert out.replace("\r", "").splitlines() == ["/dev/pts/0", "all-ttys"], out

