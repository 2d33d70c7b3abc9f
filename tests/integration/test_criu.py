"""``nsinit checkpoint`` and ``nsinit restore`` with a real criu.

They need criu 4.1 or newer that works on this kernel: found as nsinit
finds it (NSINIT_CRIU, else ``criu`` on PATH), then ``criu check`` must
pass.  Otherwise every test here is skipped with what criu said (Debian
12's criu 3.17, for one, cannot dump on kernels with the vvar_vclock
mapping: "Unexpected rt vDSO area bounds").
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Nsinit, give_rootfs_to_mapped_root, needs_root, stderr_lines, wait_until
from _live import ns_inode, one_error_line
from test_network import bridge, host_ip, subnet, veth  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, needs_root]

COUNTER = "i=0; while :; do echo $i; echo $i > /tmp/count; i=$((i+1)); sleep 0.05; done"
# For a container that runs on after its dump: criu checks at restore that a
# file the dump caught open has the size it had then, which /tmp/count,
# rewritten all the time, would not.
STDOUT_COUNTER = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.05; done"


def find_working_criu() -> tuple[str | None, str]:
    """(criu, "") when one works here, else (None, why not)."""
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        return None, "protobuf (PyPI) is not installed"
    from nsinit.criu import CriuError
    from nsinit.criu.swrk import find_criu

    try:
        criu = find_criu()
    except CriuError as err:
        return None, str(err)
    check = subprocess.run([criu, "check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        lines = [line for line in (check.stderr + check.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error")] or lines
        return None, f"`{criu} check` fails here: {errors[0] if errors else check.returncode}"
    return criu, ""


CRIU, WHY_NOT = find_working_criu()
needs_criu = pytest.mark.skipif(CRIU is None, reason=f"no working criu: {WHY_NOT}")


class Counter:
    """``nsinit exec`` (or ``restore``) of a counter, its stdout read as it
    comes (a thread).  The count is the one in the rootfs's /tmp/count, or
    with ``from_stdout`` the last line printed."""

    def __init__(self, nsinit: Nsinit, *args: str, from_stdout: bool = False) -> None:
        self.nsinit = nsinit
        self.from_stdout = from_stdout
        self.proc = nsinit.popen(*args)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def count(self) -> int:
        try:
            if self.from_stdout:
                return int(self.lines[-1])
            return int((self.nsinit.root / "tmp" / "count").read_text())
        except (IndexError, OSError, ValueError):
            return -1

    def wait_past(self, value: int) -> int:
        wait_until(lambda: self.count() > value or self.proc.poll() is not None, timeout=15)
        assert self.proc.poll() is None, self.finish()
        return self.count()

    def finish(self, timeout: float = 15) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.nsinit.run("kill", "KILL")
        self.finish()


@pytest.fixture
def counters(nsinit: Nsinit) -> Iterator[list[Counter]]:
    started: list[Counter] = []
    yield started
    for counter in started:
        counter.stop()


def start_counter(nsinit: Nsinit, counters: list[Counter], *args: str, from_stdout: bool = False) -> Counter:
    counter = Counter(nsinit, *args, from_stdout=from_stdout)
    counters.append(counter)
    return counter


def init_pid(nsinit: Nsinit) -> int:
    result = nsinit.run("state", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["init_pid"]


def pid_inside(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid")


def checkpoint(nsinit: Nsinit, images: Path, *options: str) -> None:
    result = nsinit.run("checkpoint", "--image-path", str(images), *options, timeout=60)
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == [f"nsinit: checkpoint written to {images}"]


def restored(nsinit: Nsinit, counters: list[Counter], images: Path, from_stdout: bool = False) -> Counter:
    counter = start_counter(nsinit, counters, "restore", "--image-path", str(images), from_stdout=from_stdout)
    wait_until(lambda: (nsinit.root / "pid").exists() or counter.proc.poll() is not None, timeout=30)
    assert counter.proc.poll() is None, counter.finish()
    return counter


@needs_criu
def test_a_counter_continues_where_it_was_checkpointed(nsinit: Nsinit, counters: list[Counter],
                                                       tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(10)
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    # Dumped, then destroyed: its supervisor has exited and cleaned up.
    assert first.proc.wait(timeout=10) == 137
    assert one_error_line(nsinit.run("state")).startswith("nsinit: state: no running container")
    at_dump = first.count()
    time.sleep(0.3)
    assert first.count() == at_dump   # nothing runs any more

    second = restored(nsinit, counters, images)
    second.wait_past(at_dump + 5)
    pid = init_pid(nsinit)
    assert pid_inside(pid) == 1
    assert nsinit.exec("hostname").stdout == "nsinit\n"     # a join works, in the same UTS namespace
    assert nsinit.exec("cat", "/proc/1/cmdline").stdout.startswith("/bin/sh\0-c\0")
    nsinit.run("kill", "KILL")
    second.finish()
    # The restored shell kept its stdout: our new pipe, counting on from the dump.
    numbers = [int(n) for n in second.out.split()]
    assert numbers[0] in (at_dump, at_dump + 1) and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


@needs_criu
def test_leave_running_keeps_the_container_and_the_images_restore(nsinit: Nsinit, counters: list[Counter],
                                                                   tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", STDOUT_COUNTER, from_stdout=True)
    first.wait_past(5)
    pid = init_pid(nsinit)
    images = tmp_path / "images"
    before = first.wait_past(5)
    checkpoint(nsinit, images, "--leave-running")
    after = first.wait_past(before)
    first.wait_past(after + 10)   # still counting, same init
    assert init_pid(nsinit) == pid
    nsinit.run("kill", "KILL")
    first.finish()
    wait_until(lambda: not (nsinit.root / "pid").exists())

    second = restored(nsinit, counters, images, from_stdout=True)
    second.wait_past(0)
    assert init_pid(nsinit) != pid
    nsinit.run("kill", "KILL")
    second.finish()
    numbers = [int(n) for n in second.out.split()]
    # From where the dump was taken, not from where the original was killed.
    assert numbers and before <= numbers[0] <= after + 1, (before, after, numbers[:3])


@needs_criu
def test_a_bind_mount_is_mapped_back_at_restore(nsinit: Nsinit, counters: list[Counter], tmp_path: Path) -> None:
    dumped_source, restored_source = tmp_path / "data1", tmp_path / "data2"
    for directory, text in ((dumped_source, "one"), (restored_source, "two")):
        directory.mkdir()
        (directory / "file").write_text(text)
    nsinit.config(mounts=[{"type": "bind", "source": str(dumped_source), "destination": "/data"}])
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(3)
    assert nsinit.exec("cat", "/data/file").stdout == "one"
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    first.finish()
    # The external mount is keyed by its destination: restore binds
    # whatever container.json names as its source now.
    nsinit.config(mounts=[{"type": "bind", "source": str(restored_source), "destination": "/data"}])
    second = restored(nsinit, counters, images)
    second.wait_past(first.count() + 3)
    assert nsinit.exec("cat", "/data/file").stdout == "two"
    assert " /data " in nsinit.exec("cat", "/proc/1/mountinfo").stdout


@needs_criu
def test_cgroup_limits_are_restored(nsinit: Nsinit, counters: list[Counter], tmp_path: Path) -> None:
    nsinit.config(cgroups={"resources": {"memory": 64 << 20}})
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(3)
    update = nsinit.run("update", "--pids-limit", "50")   # only in the record, not in container.json
    assert update.returncode == 0, update.stderr
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    first.finish()
    second = restored(nsinit, counters, images)
    second.wait_past(first.count() + 3)
    paths = json.loads(nsinit.run("state", "--json").stdout)["cgroup_paths"]
    pid = init_pid(nsinit)
    if "unified" in paths:
        assert Path(paths["unified"], "memory.max").read_text().strip() == str(64 << 20)
        assert Path(paths["unified"], "pids.max").read_text().strip() == "50"
        assert str(pid) in Path(paths["unified"], "cgroup.procs").read_text().split()
    else:
        assert Path(paths["memory"], "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        assert Path(paths["pids"], "pids.max").read_text().strip() == "50"
        for directory in paths.values():
            assert str(pid) in Path(directory, "cgroup.procs").read_text().split()


@needs_criu
def test_restore_from_a_copied_rootfs(nsinit: Nsinit, counters: list[Counter], tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(3)
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    first.finish()
    copy = tmp_path / "copy"
    shutil.copytree(nsinit.root, copy, symlinks=True)
    moved = Nsinit(copy)
    at_copy = int((copy / "tmp" / "count").read_text())
    second = restored(moved, counters, images)
    second.wait_past(at_copy + 3)
    # It counts in the copy; the original rootfs stays as it was.
    assert int((nsinit.root / "tmp" / "count").read_text()) == at_copy
    pid = init_pid(moved)
    assert os.stat(f"/proc/{pid}/root").st_ino == os.stat(copy).st_ino
    assert ns_inode(pid, "pid") != ns_inode("self", "pid")


# A server and a client inside the container, talking over its veth address:
# the connection must survive the dump and the restore.  busybox nc ends when
# its stdin does, so the server's stdin is a pipe that never ends.
TCP_PAIR = ("sleep 100000 | nc -l -p 5000 > /tmp/received & sleep 0.5; "
            "(i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done) | nc {address} 5000 & wait")


@needs_criu
def test_an_established_tcp_connection_on_a_veth_survives(nsinit: Nsinit, counters: list[Counter],
                                                          tmp_path: Path, bridge, subnet,  # type: ignore[no-untyped-def]
                                                          link_prefix: str) -> None:
    address = host_ip(subnet, 2)
    bridge_name = bridge()
    nsinit.config(networks=[{"type": "loopback"}, veth(bridge_name, subnet, 2, prefix=link_prefix + "v")])
    received = nsinit.root / "tmp" / "received"

    def ticks() -> int:
        return len(received.read_text().split("\n")) - 1 if received.exists() else 0

    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", TCP_PAIR.format(address=address))
    wait_until(lambda: ticks() > 5)
    host_end = json.loads(nsinit.run("state", "--json").stdout)["network_state"][-1]["host_interface_name"]
    images = tmp_path / "images"
    refused = nsinit.run("checkpoint", "--image-path", str(images), timeout=60)
    assert "Connected TCP socket, consider using --tcp-established option" in one_error_line(refused)
    checkpoint(nsinit, images, "--tcp-established")
    first.finish()
    at_dump = ticks()
    second = start_counter(nsinit, counters, "restore", "--tcp-established", "--image-path", str(images))
    wait_until(lambda: ticks() > at_dump + 10 or second.proc.poll() is not None, timeout=30)
    assert second.proc.poll() is None, second.finish()
    # One connection, one stream: no tick lost or repeated across the restore.
    lines = received.read_text().split("\n")[:-1]
    assert lines == [f"tick {n}" for n in range(len(lines))]
    netstat = nsinit.exec("netstat", "-tn").stdout
    assert netstat.count("ESTABLISHED") == 2, netstat
    # The host end is back under its name, on the bridge, and recorded for the teardown.
    assert Path(f"/sys/class/net/{host_end}/master").resolve().name == bridge_name
    assert Path(f"/sys/class/net/{host_end}/operstate").read_text().strip() == "up"
    state = json.loads(nsinit.run("state", "--json").stdout)
    assert state["network_state"][-1]["host_interface_name"] == host_end


@needs_criu
def test_a_user_namespace_container_is_restored(nsinit: Nsinit, counters: list[Counter], tmp_path: Path,
                                                traversable: None) -> None:
    base = 100000
    give_rootfs_to_mapped_root(nsinit, base)
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(3)
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    first.finish()
    second = restored(nsinit, counters, images)
    second.wait_past(first.count() + 3)
    pid = init_pid(nsinit)
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(base), "65536"]
    assert os.stat(f"/proc/{pid}").st_uid == base
    # criu reads some images as the container's root: its group may read them, nobody may write.
    mode = images.stat()
    assert (mode.st_gid, stat.S_IMODE(mode.st_mode)) == (base, 0o750)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in images.glob("*.img"))


@needs_criu
def test_restore_detach_returns_and_the_container_is_supervised(nsinit: Nsinit, counters: list[Counter],
                                                                 tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(3)
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    first.finish()
    # The container keeps the stdio restore was given: files here, so that
    # nothing waits for the background supervisor to close a pipe.
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        result = subprocess.run([sys.executable, "-m", "nsinit", "restore", "--detach", "--image-path", str(images)],
                                cwd=nsinit.root, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=60)
    try:
        stderr = (tmp_path / "err").read_text()
        assert result.returncode == 0, stderr
        pid = init_pid(nsinit)
        assert stderr == f"nsinit: restored, init pid {pid}\n"
        count = first.count()
        wait_until(lambda: first.count() > count + 3)
    finally:
        nsinit.run("kill", "KILL")
    # Its background supervisor removes it.
    wait_until(lambda: not (nsinit.root / "pid").exists())


@needs_criu
def test_a_joined_process_is_named_as_not_checkpointed(nsinit: Nsinit, counters: list[Counter],
                                                       tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(1)
    joined = nsinit.popen("exec", "sleep", "30")
    try:
        wait_until(lambda: len(json.loads(nsinit.run("ps", "--json").stdout)) >= 3)
        sleep_pid = next(p["pid"] for p in json.loads(nsinit.run("ps", "--json").stdout)
                         if p["command"] == "sleep 30")
        result = nsinit.run("checkpoint", "--leave-running", "--image-path", str(tmp_path / "images"), timeout=60)
        assert result.returncode == 0, result.stderr
        assert stderr_lines(result) == [
            f"nsinit: warning: processes joined with exec are not checkpointed (not children of the init): {sleep_pid}",
            f"nsinit: checkpoint written to {tmp_path / 'images'}"]
    finally:
        joined.kill()
        joined.communicate(timeout=10)


@needs_criu
def test_a_failed_restore_leaves_nothing_behind(nsinit: Nsinit, counters: list[Counter], tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(1)
    images = tmp_path / "images"
    checkpoint(nsinit, images)
    first.finish()
    (images / "pstree.img").unlink()
    result = nsinit.run("restore", "--image-path", str(images), timeout=60)
    assert result.returncode == 125
    (line,) = stderr_lines(result)
    # criu 4.2 crashes on the missing image: nsinit says how it ended.
    assert line.startswith("nsinit: restore: criu was killed by SIG") or "pstree" in line, line
    assert f"(criu log: {images / 'restore.log'})" in line, line
    assert "criu-root" not in Path("/proc/self/mountinfo").read_text()
    # And no_residue: no cgroups, no record, nothing running.


@needs_criu
def test_a_no_pivot_root_container_is_refused(nsinit: Nsinit, counters: list[Counter], tmp_path: Path) -> None:
    nsinit.config(no_pivot_root=True)
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(1)
    line = one_error_line(nsinit.run("checkpoint", "--image-path", str(tmp_path / "images")))
    assert line == ("nsinit: checkpoint: no_pivot_root is set: criu cannot restore a container "
                    "whose root was entered by chroot (MS_MOVE)")
    first.wait_past(first.count() + 2)   # untouched


@needs_criu
def test_a_container_with_a_terminal_is_refused(nsinit: Nsinit, counters: list[Counter], tmp_path: Path) -> None:
    first = start_counter(nsinit, counters, "exec", "--tty", "/bin/sh", "-c", COUNTER)
    first.wait_past(1)
    line = one_error_line(nsinit.run("checkpoint", "--image-path", str(tmp_path / "images")))
    assert line == ("nsinit: checkpoint: the container's init has a terminal on fd 0 (/dev/pts/0): "
                    "checkpoint supports pipes and files as its stdio, not a terminal")
    first.wait_past(first.count() + 2)


@needs_criu
def test_pre_dump_is_refused_clearly_without_soft_dirty(nsinit: Nsinit, counters: list[Counter],
                                                        tmp_path: Path) -> None:
    from nsinit.criu.checkpoint import require_memory_tracking
    from nsinit.criu import CriuError

    try:
        require_memory_tracking(CRIU or "")
    except CriuError:
        pass
    else:
        pytest.skip("this kernel tracks memory changes (soft-dirty): criu would accept the pre-dump")
    first = start_counter(nsinit, counters, "exec", "/bin/sh", "-c", COUNTER)
    first.wait_past(1)
    line = one_error_line(nsinit.run("checkpoint", "--pre-dump", "--image-path", str(tmp_path / "images")))
    assert line == ("nsinit: --pre-dump: this kernel has no memory change tracking (soft-dirty bits, "
                    "CONFIG_MEM_SOFT_DIRTY): criu refuses pre-dumps and iterative migration")
    first.wait_past(first.count() + 2)


def test_a_missing_criu_or_checkpoint_is_one_line(nsinit: Nsinit, tmp_path: Path) -> None:
    env = {**os.environ, "NSINIT_CRIU": str(tmp_path / "no-criu")}
    line = one_error_line(nsinit.run("checkpoint", env=env))
    assert line == f"nsinit: criu: NSINIT_CRIU={tmp_path / 'no-criu'} is not an executable file"
    if CRIU is not None:
        line = one_error_line(nsinit.run("checkpoint"))
        assert line == f"nsinit: checkpoint: no running container in {nsinit.root}"
    # restore exits as exec does when nsinit fails: 125.
    result = nsinit.run("restore", "--image-path", str(tmp_path), env=env)
    assert result.returncode == 125 and stderr_lines(result) == [
        f"nsinit: restore: {tmp_path / 'descriptors.json'} is missing: {tmp_path} holds no nsinit checkpoint"]
