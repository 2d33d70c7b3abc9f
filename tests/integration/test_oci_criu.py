"""nsinit-runc checkpoint and restore with a real criu, as engines drive them.

They need criu 4.1 or newer that passes ``criu check`` here (NSINIT_CRIU,
else criu on PATH: test_criu.py's rule); Debian 12's criu 3.17 fails on
this kernel's vDSO layout, so without NSINIT_CRIU they are skipped, with
what criu said.  The refusals need no criu.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import needs_root, wait_until
from test_criu import needs_criu
from test_oci_lifecycle import CALLER, Runc, one_error, runc  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, needs_root]

COUNTER = "i=0; while :; do echo $i > /tmp/count; i=$((i+1)); sleep 0.05; done"


def count(rootfs: Path) -> int:
    try:
        return int((rootfs / "tmp" / "count").read_text())
    except (OSError, ValueError):
        return -1


def count_passes(rootfs: Path, value: int) -> int:
    wait_until(lambda: count(rootfs) > value, timeout=15)
    return count(rootfs)


def nspid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid")


@pytest.fixture
def rootfs_of(rootfs: Path) -> Iterator[Path]:
    (rootfs / "tmp").mkdir(exist_ok=True)
    yield rootfs


def restore_by_caller(runc: Runc, container_id: str, images: Path, *flags: str) -> tuple[subprocess.Popen[str], int, Path]:
    """``restore --detach`` run by a child-subreaper caller, as conmon runs it:
    (the caller, restore's exit code, the pid file); nothing on its stderr."""
    n = len(runc.callers)
    files = [runc.tmp / f"{kind}-restore-{n}" for kind in ("in", "out", "err")]
    files[0].write_text("")
    pid_file = runc.tmp / f"pid-restore-{n}"
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, "wait", *map(str, files), *runc.argv(
            "restore", "--detach", "--image-path", str(images), "--bundle", str(runc.bundle),
            "--pid-file", str(pid_file), *flags, container_id)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    runc.callers.append(caller)
    assert caller.stdout is not None
    code = int(caller.stdout.readline() or -1)
    assert files[2].read_text() == "", files[2].read_text()  # nothing on stderr on success
    return caller, code, pid_file


@needs_criu
def test_checkpoint_removes_it_and_restore_detach_continues_the_count(runc: Runc, rootfs_of: Path) -> None:
    created = runc.create("c1", COUNTER)
    runc.ok("start", "c1")
    before = count_passes(rootfs_of, 3)
    images = runc.tmp / "images"
    runc.ok("checkpoint", "--image-path", str(images), "c1")
    assert (images / "inventory.img").exists()
    assert one_error(runc.run("state", "c1")).endswith('container "c1" does not exist')
    assert created.exited()[1] == 137  # criu killed the tree after the dump
    at_dump = count(rootfs_of)
    assert at_dump >= before

    caller, code, pid_file = restore_by_caller(runc, "c1", images)
    assert code == 0
    text = pid_file.read_text()
    assert text.isdigit(), repr(text)  # bare decimal, no newline
    pid = int(text)
    state = runc.state("c1")
    assert state["status"] == "running" and state["pid"] == pid
    assert nspid(pid) == 1   # the same PID 1 inside
    # From where it was (a few steps may have run between our read and criu's freeze), and on.
    first = count_passes(rootfs_of, -1)
    assert at_dump <= first <= at_dump + 3, (at_dump, first)
    count_passes(rootfs_of, first + 2)
    runc.ok("delete", "--force", "c1")
    # The restored init was the caller's child: its wait took the SIGKILL.
    assert caller.stdout is not None
    assert caller.stdout.readline().split() == [str(pid), "137"]
    caller.wait(timeout=10)
    runc.ids.discard("c1")


@needs_criu
def test_leave_running_keeps_the_container(runc: Runc, rootfs_of: Path) -> None:
    created = runc.create("c1", COUNTER)
    runc.ok("start", "c1")
    before = count_passes(rootfs_of, 2)
    images = runc.tmp / "images"
    runc.ok("checkpoint", "--leave-running", "--image-path", str(images), "c1")
    assert (images / "inventory.img").exists()
    state = runc.state("c1")
    assert state["status"] == "running" and state["pid"] == created.pid
    count_passes(rootfs_of, before + 3)


def test_an_unsupported_flag_is_refused_by_name(runc: Runc) -> None:
    for args in (["checkpoint", "--lazy-pages", "c1"], ["checkpoint", "--parent-path", "/x", "c1"],
                 ["restore", "--auto-dedup", "c1"], ["restore", "--lsm-profile", "selinux:x", "c1"]):
        line = one_error(runc.run(*args))
        assert f"{args[1]}: not supported" in line, line
    line = one_error(runc.run("checkpoint", "--manage-cgroups-mode", "bogus", "c1"))
    assert "--manage-cgroups-mode" in line and "bogus" in line


def test_without_criu_one_line(runc: Runc) -> None:
    runc.create("c1", "sleep 1000")
    runc.ok("start", "c1")
    missing = runc.tmp / "no-criu"
    line = one_error(runc.run("--criu", str(missing), "checkpoint", "--image-path", str(runc.tmp / "i"), "c1"))
    assert f"{missing} is not an executable file" in line, line
    assert runc.state("c1")["status"] == "running"
    line = one_error(runc.run("--criu", str(missing), "restore", "--detach", "--image-path",
                              str(runc.tmp / "i"), "--bundle", str(runc.bundle), "c2"))
    assert "c2" not in os.listdir(runc.root)   # nothing left of the id


@contextmanager
def attached_restore(runc: Runc, images: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``restore`` of c1 without --detach, in the background, once its pid
    file names the restored init: (the restore, that pid, its stdout+stderr
    file).  Killed at the end if the test left it running."""
    pid_file = runc.tmp / "restore.pid"
    (runc.tmp / "restore.in").write_text("")
    # stdio of the kinds the dump saw (files): criu checks an inherited file's mode.
    with open(runc.tmp / "restore.err", "w+") as err, open(runc.tmp / "restore.in") as stdin:
        restoring = subprocess.Popen(runc.argv("restore", "--image-path", str(images), "--bundle", str(runc.bundle),
                                               "--pid-file", str(pid_file), "c1"),
                                     stdin=stdin, stdout=err, stderr=err)
        try:
            wait_until(lambda: pid_file.exists() or restoring.poll() is not None, timeout=30)
            assert restoring.poll() is None, Path(err.name).read_text()
            yield restoring, int(pid_file.read_text()), Path(err.name)
        finally:
            if restoring.poll() is None:
                restoring.kill()
                restoring.wait()


@needs_criu
def test_restore_without_detach_waits_and_exits_with_the_status(runc: Runc, rootfs_of: Path) -> None:
    created = runc.create("c1", COUNTER)
    runc.ok("start", "c1")
    count_passes(rootfs_of, 2)
    images = runc.tmp / "images"
    runc.ok("checkpoint", "--image-path", str(images), "c1")
    created.exited()
    with attached_restore(runc, images) as (restoring, pid, _):
        assert runc.state("c1") == {**runc.state("c1"), "status": "running", "pid": pid}
        count_passes(rootfs_of, count(rootfs_of) + 2)
        os.kill(pid, 9)
        assert restoring.wait(timeout=30) == 137
    assert one_error(runc.run("state", "c1")).endswith('container "c1" does not exist')  # deleted at its end
    runc.ids.discard("c1")


# A hook (run by the host's python, with no env at all): appends its name to
# out/order and writes out/NAME.json: its state JSON, its mount namespace, and
# the network namespace and command name of the state's pid at that moment;
# then, if its 3rd argument is "fail", fails: "no way", status 1.
HOOK = r"""
import json, os, sys
out, name, fail = sys.argv[1], sys.argv[2], sys.argv[3] == "fail"
state = json.load(sys.stdin)
with open(os.path.join(out, "order"), "a") as f:
    f.write(name + "\n")
pid = state["pid"]
seen = {"state": state, "mnt": os.readlink("/proc/self/ns/mnt"),
        "init_net": os.readlink(f"/proc/{pid}/ns/net") if pid else "",
        "init_comm": open(f"/proc/{pid}/comm").read().strip() if pid else ""}
with open(os.path.join(out, name + ".json"), "w") as f:
    json.dump(seen, f)
if fail:
    sys.exit("no way")
"""
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def hook(out: Path, name: str, *, fail: bool = False) -> dict[str, Any]:
    return {"path": sys.executable, "args": ["hook", "-c", HOOK, str(out), name, "fail" if fail else "ok"]}


def ran(out: Path) -> list[str]:
    order = out / "order"
    return order.read_text().splitlines() if order.exists() else []


def seen(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / f"{name}.json").read_text())  # type: ignore[no-any-return]


def checkpointed_counter(runc: Runc, rootfs: Path) -> Path:
    """c1 counting, created and started without hooks, then checkpointed: the images."""
    created = runc.create("c1", COUNTER)
    runc.ok("start", "c1")
    count_passes(rootfs, 2)
    images = runc.tmp / "images"
    runc.ok("checkpoint", "--image-path", str(images), "c1")
    created.exited()
    return images


@needs_criu
def test_restore_runs_prestart_then_create_runtime_with_the_restored_init(runc: Runc, rootfs_of: Path) -> None:
    """runc's criuNotifications: at criu's "setup-namespaces", the restored
    init's host pid in the state; no createContainer, startContainer or
    poststart (the container was created and started before its dump);
    poststop at delete."""
    images = checkpointed_counter(runc, rootfs_of)
    out = runc.tmp / "out"
    out.mkdir()
    runc.config(["/bin/sh", "-c", COUNTER], "c1", hooks={kind: [hook(out, kind)] for kind in KINDS},
                annotations={"io.example": "yes"})
    caller, code, pid_file = restore_by_caller(runc, "c1", images)
    assert code == 0
    pid = int(pid_file.read_text())
    assert ran(out) == ["prestart", "createRuntime"]
    for name in ("prestart", "createRuntime"):
        what = seen(out, name)
        assert what["state"] == {"ociVersion": runc.base["ociVersion"], "id": "c1", "status": "creating",
                                 "pid": pid, "bundle": str(runc.bundle), "annotations": {"io.example": "yes"}}
        assert what["mnt"] == os.readlink("/proc/self/ns/mnt")        # in the runtime's namespaces
        assert what["init_net"] == os.readlink(f"/proc/{pid}/ns/net")  # the init's namespaces already made
        assert what["init_comm"] != "sh"                               # before criu restored the command
    assert runc.state("c1")["status"] == "running"
    count_passes(rootfs_of, count(rootfs_of) + 2)
    runc.ok("delete", "--force", "c1")
    assert ran(out) == ["prestart", "createRuntime", "poststop"]
    assert seen(out, "poststop")["state"]["status"] == "stopped"
    assert caller.stdout is not None
    assert caller.stdout.readline().split() == [str(pid), "137"]
    caller.wait(timeout=10)
    runc.ids.discard("c1")


@needs_criu
def test_restore_without_detach_runs_poststop_at_its_end(runc: Runc, rootfs_of: Path) -> None:
    """runc's restore without --detach destroys the container when its init
    has exited, and its destroy runs poststop."""
    images = checkpointed_counter(runc, rootfs_of)
    out = runc.tmp / "out"
    out.mkdir()
    runc.config(["/bin/sh", "-c", COUNTER], "c1", hooks={kind: [hook(out, kind)] for kind in KINDS})
    with attached_restore(runc, images) as (restoring, pid, output):
        assert ran(out) == ["prestart", "createRuntime"] and seen(out, "prestart")["state"]["pid"] == pid
        os.kill(pid, 9)
        assert restoring.wait(timeout=30) == 137
    assert output.read_text() == ""
    assert ran(out) == ["prestart", "createRuntime", "poststop"]
    assert one_error(runc.run("state", "c1")).endswith('container "c1" does not exist')
    runc.ids.discard("c1")


# restore run by a child subreaper that, once restore has exited, says which
# processes were left to it: a restored init that restore neither kept as
# the caller's child on success nor reaped on failure comes to it.
ORPHANS = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
stdin, stdout, stderr = sys.argv[1:4]
with open(stdin) as i, open(stdout, "w") as o, open(stderr, "w") as e:
    code = subprocess.run(sys.argv[4:], stdin=i, stdout=o, stderr=e).returncode
children = []
for pid in open(f"/proc/self/task/{os.getpid()}/children").read().split():
    status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
    children.append({"pid": int(pid), "name": status["Name"], "state": status["State"]})
print(json.dumps({"code": code, "children": children}), flush=True)
"""


@needs_criu
def test_a_failing_prestart_hook_fails_the_restore_and_leaves_nothing(runc: Runc, rootfs_of: Path) -> None:
    images = checkpointed_counter(runc, rootfs_of)
    out = runc.tmp / "out"
    out.mkdir()
    runc.config(["/bin/sh", "-c", COUNTER], "c1", hooks={
        "prestart": [hook(out, "prestart", fail=True)], "createRuntime": [hook(out, "createRuntime")],
        "poststart": [hook(out, "poststart")], "poststop": [hook(out, "poststop")]})
    files = [runc.tmp / f"{kind}-failed-restore" for kind in ("in", "out", "err")]
    files[0].write_text("")
    done = subprocess.run([sys.executable, "-c", ORPHANS, *map(str, files), *runc.argv(
        "restore", "--detach", "--image-path", str(images), "--bundle", str(runc.bundle),
        "--pid-file", str(runc.tmp / "restore.pid"), "c1")], capture_output=True, text=True, timeout=60)
    report = json.loads(done.stdout)
    assert report["code"] == 1
    lines = files[2].read_text().splitlines()
    assert lines == [f"nsinit-runc: restore: hooks.prestart[0]: {sys.executable}: exited with status 1: no way"], lines
    # The later hooks did not run; the deletion's did, once the restore had unwound (as a failed create's).
    assert ran(out) == ["prestart", "poststop"]
    assert seen(out, "poststop")["state"]["status"] == "stopped"
    pid = seen(out, "prestart")["state"]["pid"]
    assert pid > 0 and not Path(f"/proc/{pid}").exists()  # the restored init is gone, reaped
    # Nor left to the caller: only criu's own cgroupd, which criu (4.2) leaves when a restore
    # fails, may come to it, exited.
    assert all(child["pid"] != pid and child["name"] == "criu" and child["state"].startswith("Z")
               for child in report["children"]), (pid, report)
    assert not (runc.tmp / "restore.pid").exists()
    assert one_error(runc.run("state", "c1")).endswith('container "c1" does not exist')
    runc.ids.discard("c1")   # the fixture checks: no record, no cgroup, no mount, no process
