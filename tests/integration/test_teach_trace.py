"""``--trace`` and ``--trace=json``: what each step did, on create, join and failure."""
from __future__ import annotations

import json
import os
from typing import Any

from conftest import Nsinit, needs_root
from _live import Live

pytestmark = needs_root

SCRIPT = "touch /tmp/ready; while :; do sleep 0.05; done"

CREATE_STEPS = {
    ("parent", "cgroups"), ("parent", "stdio"), ("parent", "clone"), ("parent", "wait for child"),
    ("parent", "state"), ("parent", "go, wait for exec"),
    ("parent", "load steps"), ("parent", "trampoline"), ("child", "init"), ("child", "cgroups"),
    ("child", "wait for parent"),
    ("child", "console"), ("child", "prepare rootfs"), ("child", "mounts"), ("child", "devices"),
    ("child", "pivot_root"), ("child", "hostname"), ("child", "loopback"), ("child", "restrict paths"),
    ("child", "keyring"), ("child", "stdio"),
    ("child", "close fds"), ("child", "user"), ("child", "capabilities"), ("child", "cwd"), ("child", "signals"),
    ("child", "exec"),
}


def json_trace(stderr: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert records, stderr
    return records


def by_step(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    keys = [(r["side"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)), f"a step traced twice: {keys}"
    return {(r["side"], r["step"]): r for r in records}


def test_a_create_traces_every_step_that_ran_once_with_its_calls(nsinit: Nsinit) -> None:
    result = nsinit.run("--trace=json", "exec", "/bin/true")
    assert result.returncode == 0, result.stderr
    records = json_trace(result.stderr)
    assert {r["trace"] for r in records} == {"create"}
    steps = by_step(records)
    # Exactly the steps that ran: no "join namespaces" (no namespace is
    # joined by path), no sysctl or rlimits (none configured).
    assert set(steps) == CREATE_STEPS
    assert not any(r["failed"] for r in records)
    assert steps["parent", "clone"]["calls"] == [
        "clone3({flags = CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD})"]
    assert 'sethostname("nsinit")' in steps["child", "hostname"]["calls"]
    assert any(c.startswith("capset(effective=00000000a80425fb") for c in steps["child", "capabilities"]["calls"])
    # The child waits for the parent's "go", sent once the state is written.
    def end(key: tuple[str, str]) -> float:
        return steps[key]["start"] + steps[key]["ms"] / 1000

    assert end(("child", "wait for parent")) >= end(("parent", "state"))
    assert steps["child", "init"]["start"] >= steps["parent", "clone"]["start"]
    # The mount calls are spelled as explain spells them.
    explained = json.loads(nsinit.run("explain", "--json").stdout)
    planned = next(s for s in explained["steps"] if s["step"] == "mounts")["calls"]
    root = str(nsinit.root)
    traced = [c.replace(f'"{root}/', '"/') for c in steps["child", "mounts"]["calls"] if c.startswith("mount(")]
    assert traced == planned


def ends(step: dict[str, Any]) -> float:
    return float(step["start"] + step["ms"] / 1000)


def test_the_init_sets_up_its_rootfs_while_the_parent_records_unless_the_parent_comes_first(
        nsinit: Nsinit) -> None:
    result = nsinit.run("--trace=json", "exec", "/bin/true")
    assert result.returncode == 0, result.stderr
    steps = by_step(json_trace(result.stderr))
    # Nothing of the parent's is needed before the rootfs: go is awaited
    # after it (the record is written meanwhile; how much of it overlaps is
    # the scheduler's, not asserted).
    assert steps["child", "wait for parent"]["start"] >= ends(steps["child", "restrict paths"])
    assert ends(steps["parent", "state"]) <= ends(steps["child", "wait for parent"])
    # A namespace given by path is joined right after go: go comes first.
    data = json.loads((nsinit.root / "container.json").read_text())
    nsinit.config(namespaces=[ns for ns in data["namespaces"] if ns["type"] != "NEWIPC"]
                  + [{"type": "NEWIPC", "path": f"/proc/{os.getpid()}/ns/ipc"}])
    result = nsinit.run("--trace=json", "exec", "/bin/true")
    assert result.returncode == 0, result.stderr
    steps = by_step(json_trace(result.stderr))
    assert ends(steps["child", "wait for parent"]) <= steps["child", "join namespaces"]["start"]
    assert ends(steps["child", "join namespaces"]) <= steps["child", "mounts"]["start"]
    assert ends(steps["parent", "state"]) <= ends(steps["child", "wait for parent"])


def test_the_text_trace_says_create_and_lists_no_join_step(nsinit: Nsinit) -> None:
    result = nsinit.run("--trace", "exec", "/bin/true")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"nsinit: trace: create: a new container in {nsinit.root}"
    assert not any("join namespaces" in line for line in lines)  # a create showed one, 0.01 ms, before
    assert any(line.startswith("nsinit: trace: create: child pivot_root: ") for line in lines)
    assert 'nsinit: trace:     pivot_root(".", ".")' in lines


def test_a_join_traces_its_own_steps(nsinit: Nsinit) -> None:
    container = Live(nsinit, SCRIPT).wait_ready()
    try:
        result = nsinit.run("--trace=json", "exec", "/bin/true")
    finally:
        container.stop()
    assert result.returncode == 0, result.stderr
    records = json_trace(result.stderr)
    assert {r["trace"] for r in records} == {"join"}
    steps = by_step(records)
    assert {("child", "load steps"), ("child", "setns"), ("child", "exec")} <= set(steps)
    assert not {("child", "mounts"), ("child", "pivot_root"), ("parent", "cgroups")} & set(steps)
    assert steps["child", "setns"]["calls"] == [
        "setns(anon_inode:[pidfd], CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET)"]


def test_a_failing_step_is_marked_with_its_errno_and_nothing_after_it_is_traced(nsinit: Nsinit) -> None:
    result = nsinit.run("--trace=json", "exec", "--cwd", "/nonexistent", "/bin/true")
    assert result.returncode == 125
    records = json_trace(result.stderr)
    failed = [r for r in records if r["failed"]]
    assert len(failed) == 1
    assert (failed[0]["side"], failed[0]["step"], failed[0]["errno"], failed[0]["errno_name"]) == (
        "child", "cwd", 2, "ENOENT")
    assert failed[0]["calls"][-1] == 'chdir("/nonexistent") = -1 ENOENT'
    steps = {(r["side"], r["step"]) for r in records}
    assert ("child", "signals") not in steps and ("child", "exec") not in steps
    # Still one error line for people, after the trace.
    assert result.stderr.splitlines()[-1] == "nsinit: cwd: /nonexistent: No such file or directory"
    text = nsinit.run("--trace", "exec", "--cwd", "/nonexistent", "/bin/true")
    assert any("child cwd:" in line and "FAILED errno 2 (ENOENT)" in line for line in text.stderr.splitlines())


def test_a_parent_step_failure_is_marked(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"cpuset_cpus": "0", "path": "/"})
    result = nsinit.run("--trace=json", "exec", "/bin/true")
    assert result.returncode == 125
    records = json_trace(result.stderr)
    assert [(r["side"], r["step"], r["failed"]) for r in records] == [("parent", "cgroups", True)]
