"""``nsinit explain`` against what really happens.

A container is made from the same config, and what it sees (its
/proc/self/mountinfo, the Cap* lines of /proc/self/status) must be exactly
what explain said it would see; explain itself needs no root and touches
nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


from conftest import Nsinit, needs_root, stderr_lines

pytestmark = needs_root

PROBE = "cat /proc/self/mountinfo; echo ===; grep -E '^(Cap|NoNewPrivs)' /proc/self/status"


# This interpreter lives under /root (0700 here): the modules are loaded as
# root, then every privilege goes (uid, gids, and with them all capabilities)
# before explain runs.
AS_NOBODY = """
import os, sys, docopt, json
import nsinit.cli, nsinit.teach.explain, nsinit.mount.plan, nsinit.config.load, nsinit.cgroups.manager
import nsinit.cgroups.v1, nsinit.cgroups.v2, nsinit.cgroups.devices, nsinit.identity, nsinit.capabilities
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
assert open("/proc/self/status").read().count("CapEff:\t0000000000000000") == 1
raise SystemExit(nsinit.cli.main(["explain"]))
"""


def explained(nsinit: Nsinit, *options: str) -> dict[str, Any]:
    result = nsinit.run("explain", "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["steps"] if s["step"] == name)


def run_probe(nsinit: Nsinit) -> tuple[set[tuple[str, str, str]], dict[str, str]]:
    result = nsinit.sh(PROBE)
    stderr_lines(result)
    assert result.returncode == 0, result.stderr
    mounts, status = result.stdout.split("===\n")
    table = set()
    for line in mounts.splitlines():
        fields = line.split()
        sep = fields.index("-")
        table.add((fields[4], fields[sep + 1], fields[5]))
    return table, dict(line.split(":\t") for line in status.splitlines())


def expected(report: dict[str, Any]) -> tuple[set[tuple[str, str, str]], dict[str, str]]:
    table = {(m["target"], m["fstype"], m["options"]) for m in step(report, "mount table")["table"]}
    sets = {key: value["mask"] for key, value in step(report, "capabilities")["sets"].items()}
    sets["NoNewPrivs"] = step(report, "after exec")["calls"][-1].split("\t")[1]
    return table, sets


def test_default_config_mounts_and_capabilities_are_what_explain_says(nsinit: Nsinit) -> None:
    report = explained(nsinit)
    table, status = run_probe(nsinit)
    want_table, want_status = expected(report)
    assert table == want_table
    assert status == want_status
    assert status["CapEff"] == "00000000a80425fb"  # the 14 default capabilities, by hand


def test_a_user_with_ambient_caps_binds_and_tmpfs_are_what_explain_says(nsinit: Nsinit, tmp_path: Path) -> None:
    source = tmp_path / "shared"
    source.mkdir()
    nsinit.config(
        user="user",
        no_new_privileges=True,
        readonlyfs=True,
        capabilities={"bounding": ["NET_BIND_SERVICE", "KILL", "CHOWN"], "permitted": ["NET_BIND_SERVICE", "KILL"],
                      "effective": ["NET_BIND_SERVICE"], "inheritable": ["NET_BIND_SERVICE", "KILL"],
                      "ambient": ["NET_BIND_SERVICE"]},
        mounts=[{"source": str(source), "destination": "/mnt/shared", "device": "bind",
                 "flags": ["bind", "ro", "nosuid", "nodev"]},
                {"source": "tmpfs", "destination": "/tmp", "device": "tmpfs", "flags": ["noexec", "noatime"],
                 "data": "size=1m"}],
    )
    report = explained(nsinit)
    table, status = run_probe(nsinit)
    want_table, want_status = expected(report)
    assert table == want_table
    assert status == want_status
    # By hand: a non-root command keeps only its ambient set (NET_BIND_SERVICE = bit 10).
    assert status["CapEff"] == status["CapPrm"] == status["CapAmb"] == f"{1 << 10:016x}"
    assert next(t for t in table if t[0] == "/")[2].startswith("ro,")  # readonlyfs


def give_rootfs_to(root: Path, base: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for name in [dirpath, *(os.path.join(dirpath, n) for n in filenames + links)]:
            st = os.lstat(name)
            os.lchown(name, base + st.st_uid, base + st.st_gid)


def test_a_user_namespace_config_is_what_explain_says(nsinit: Nsinit, traversable: None) -> None:
    give_rootfs_to(nsinit.root, 100000)
    nsinit.config(namespaces=["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"],
                  uid_mappings=[{"container_id": 0, "host_id": 100000, "size": 65536}],
                  gid_mappings=[{"container_id": 0, "host_id": 100000, "size": 65536}])
    report = explained(nsinit)
    table, status = run_probe(nsinit)
    want_table, want_status = expected(report)
    assert table == want_table
    assert status == want_status
    maps = step(report, "id maps")
    assert maps["uid_map"] == [[0, 100000, 65536]]
    assert "CLONE_NEWUSER" in step(report, "clone")["calls"][0]


def test_explain_names_shared_namespaces_rlimits_and_cgroup_writes(nsinit: Nsinit) -> None:
    nsinit.config(hostname=None, networks=None, namespaces=["NEWNS", "NEWPID"],
                  rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}],
                  cgroups={"memory": 64 << 20, "pids_limit": 20})
    report = explained(nsinit)
    clone = step(report, "clone")
    assert clone["calls"] == ["clone3({flags = CLONE_NEWNS|CLONE_NEWPID|SIGCHLD})"]
    assert set(clone["shared_with_host"]) == {"NEWUTS", "NEWIPC", "NEWNET", "NEWUSER", "NEWCGROUP", "NEWTIME"}
    assert step(report, "rlimits")["calls"] == ["setrlimit(RLIMIT_NOFILE, {512, 1024})"]
    writes = {(os.path.basename(w["file"]), w["value"]) for w in step(report, "cgroups")["writes"]}
    assert {("pids.max", "20")} <= writes
    assert ("memory.limit_in_bytes", str(64 << 20)) in writes or ("memory.max", str(64 << 20)) in writes
    names = [s["step"] for s in report["steps"]]
    assert "loopback" not in names and "hostname" not in names  # no NEWNET, no hostname
    # And the container really gets them: the limit, and the host's network.
    result = nsinit.sh("ulimit -n; ulimit -Hn; cat /proc/self/net/dev | wc -l")
    assert result.returncode == 0, result.stderr
    soft, hard, lines = result.stdout.split()
    assert (soft, hard) == ("512", "1024")
    with open("/proc/self/net/dev") as f:
        assert int(lines) == len(f.readlines())


def test_explain_needs_no_root_and_touches_nothing(nsinit: Nsinit, traversable: None) -> None:
    before = sorted((str(p), p.lstat().st_mtime_ns) for p in nsinit.root.rglob("*"))
    result = subprocess.run([sys.executable, "-c", AS_NOBODY], cwd=nsinit.root, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "pivot_root(\".\", \".\")" in result.stdout and "CapEff:" in result.stdout
    after = sorted((str(p), p.lstat().st_mtime_ns) for p in nsinit.root.rglob("*"))
    assert before == after
    assert not (nsinit.root / "pid").exists()


def test_a_bad_config_is_one_line(nsinit: Nsinit) -> None:
    (nsinit.root / "container.json").write_text('{"mounts": [{"destination": "relative"}]}')
    result = nsinit.run("explain")
    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1 and "mounts[0]" in lines[0], lines
    assert "Traceback" not in result.stderr


def test_explain_tells_each_step_once_in_the_creations_order(nsinit: Nsinit) -> None:
    # The parent's cgroups, step modules and trampoline come before clone,
    # as in lifecycle/create.py; no step is told twice.
    names = [(s["step"], s["side"]) for s in explained(nsinit)["steps"]]
    assert len(names) == len(set(names)), names
    clone = names.index(("clone", "parent"))
    for before in (("cgroups", "parent"), ("load steps", "parent"), ("trampoline", "parent")):
        assert names.index(before) < clone, names
    assert names.index(("cgroups", "child")) > clone
