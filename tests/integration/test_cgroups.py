"""Real cgroups, real containers through the CLI (root).

This host is hybrid: v1 controllers plus a controller-less cgroup2 mount, so
containers get the v1 manager; the v2 manager's core-file parts (procs,
freeze, kill, events) and its eBPF device program run against the cgroup2
mount directly.  ``no_residue`` checks after every test that no cgroup of
the test is left in any hierarchy.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Nsinit, cgroups_left, needs_root, running, stderr_lines

pytestmark = needs_root

MiB = 1024 * 1024


def cgroup_paths(nsinit: Nsinit) -> dict[str, str]:
    return json.loads((nsinit.root / "state.json").read_text())["cgroup_paths"]


def read(path: str) -> str:
    return Path(path).read_text().strip()


# --- where the container is, and that it goes ---------------------------------

def test_every_hierarchy_gets_the_default_cgroup_and_loses_it(nsinit: Nsinit, tmp_path: Path) -> None:
    result = nsinit.sh("cat /proc/self/cgroup")
    assert result.returncode == 0, result.stderr
    from nsinit.cgroups import default_name

    name = default_name(str(nsinit.root))
    lines = dict(line.split(":", 2)[1:] for line in result.stdout.splitlines())
    for controller in ("memory", "pids", "devices", "freezer", "cpuset", "blkio"):
        assert lines[controller] == f"/nsinit/{name}", lines
    assert not cgroups_left(tmp_path)


def test_state_shows_the_cgroup_paths_and_join_enters_them(nsinit: Nsinit) -> None:
    with running(nsinit, "sleep 30", ready="pid") as _:
        paths = cgroup_paths(nsinit)
        state = nsinit.run("state")
        for name, path in paths.items():
            assert f"cgroup     {name:<10} {path}" in state.stdout
        joined = nsinit.exec("cat", "/proc/self/cgroup")
        assert f"memory:{paths['memory'].split('/memory', 1)[1]}" in joined.stdout


def test_ten_runs_leave_no_cgroup(nsinit: Nsinit, tmp_path: Path) -> None:
    for _ in range(10):
        assert nsinit.exec("/bin/true").returncode == 0
        assert not cgroups_left(tmp_path)



def test_back_to_back_runs_keep_the_shared_default_parent(nsinit: Nsinit, tmp_path: Path) -> None:
    # A parent named "nsinit" is the shared default one (here below a
    # directory of this test's, so that no other container shares it): a
    # container's end removes its own cgroup and leaves the empty parent
    # for the next one, which then makes one cgroup per hierarchy, not two
    # (bench/README.md, CI loop).
    top = f"loops{os.getpid()}-{tmp_path.name}"  # unique while other sessions run it too
    nsinit.config(cgroups={"parent": f"{top}/nsinit"})
    base = Path("/sys/fs/cgroup")
    parents = [base / h / top / "nsinit" for h in ("memory", "pids", "cpuset", "devices", "freezer")]
    try:
        for _ in range(2):
            assert nsinit.exec("/bin/true").returncode == 0
            assert not cgroups_left(tmp_path)
            kept = [p for p in parents if p.is_dir() and not [c for c in p.iterdir() if c.is_dir()]]
            assert kept == parents
    finally:
        for hierarchy in base.iterdir():  # every one nsinit made them in
            for directory in (hierarchy / top / "nsinit", hierarchy / top):
                if directory.is_dir():
                    directory.rmdir()


# --- limits ------------------------------------------------------------------

def test_memory_limit_oom_kills_and_oom_reports_it(nsinit: Nsinit) -> None:
    # No swap on top (memory_swap == memory), so the allocation cannot
    # escape into swap; the shell holds the whole string in memory.
    nsinit.config(cgroups={"memory": 16 * MiB, "memory_swap": 16 * MiB})
    hog = 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived'
    with running(nsinit, hog, go=True, ready="pid") as proc:
        assert read(os.path.join(cgroup_paths(nsinit)["memory"], "memory.limit_in_bytes")) == str(16 * MiB)
        watcher = nsinit.popen("oom")
        assert "watching for OOM kills" in watcher.stderr.readline()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL, (out, err)
    assert "survived" not in out
    report, _ = watcher.communicate(timeout=10)   # ends when the container's cgroup goes
    assert watcher.returncode == 0
    assert report.splitlines()[0] == "oom kill 1"


HOG = 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived'


def test_an_oom_kill_is_said_in_one_line_with_the_limit(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": 16 * MiB, "memory_swap": 16 * MiB})
    result = nsinit.sh(HOG)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    assert "survived" not in result.stdout
    assert stderr_lines(result) == ["nsinit: the command was killed by the OOM killer (memory limit 16 MiB)"]


def test_a_joined_process_oom_kill_is_said_too(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": 16 * MiB, "memory_swap": 16 * MiB})
    with running(nsinit, "sleep 30", ready="pid"):
        result = nsinit.sh(HOG)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    assert stderr_lines(result) == ["nsinit: the command was killed by the OOM killer (memory limit 16 MiB)"]


def test_a_sigkill_that_is_no_oom_kill_says_nothing(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": 16 * MiB, "memory_swap": 16 * MiB})
    with running(nsinit, "sleep 30", ready="pid") as proc:
        assert nsinit.run("kill", "KILL").returncode == 0
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 128 + signal.SIGKILL
        assert err == ""


def test_memory_limit_written_with_a_suffix_as_update_takes_it(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": "24M", "memory_swap": "24M"})
    with running(nsinit, "sleep 30", ready="pid"):
        memory = cgroup_paths(nsinit)["memory"]
        assert read(f"{memory}/memory.limit_in_bytes") == read(f"{memory}/memory.memsw.limit_in_bytes") == str(24 * MiB)


def test_pids_limit_bounds_a_fork_loop(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"pids_limit": 10})
    # The inner shell dies at its first failed fork; /forks tells how far it got.
    loop = ('sh -c \'i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); echo $i > /forks; done\' 2>/dev/null;'
            ' read n < /forks; echo forked $n; kill -9 -1')
    result = nsinit.sh(loop)
    forked = int(result.stdout.split()[-1])
    assert 0 < forked < 10, result.stdout   # PID 1 and the inner shell count too


def test_cpu_and_cpuset_limits_in_files_and_stats(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"cpu_shares": 512, "cpu_quota": 20000, "cpu_period": 100000,
                           "cpuset_cpus": "0", "cpuset_mems": "0", "pids_limit": 64})
    with running(nsinit, "while true; do :; done", ready="pid"):
        paths = cgroup_paths(nsinit)
        assert read(f"{paths['cpu']}/cpu.shares") == "512"
        assert read(f"{paths['cpu']}/cpu.cfs_quota_us") == "20000"
        assert read(f"{paths['cpu']}/cpu.cfs_period_us") == "100000"
        assert read(f"{paths['cpuset']}/cpuset.cpus") == "0"
        assert read(f"{paths['cpuset']}/cpuset.mems") == "0"
        time.sleep(0.3)   # let it burn some (throttled) CPU
        result = nsinit.run("stats", "--json")
        assert result.returncode == 0, result.stderr
        stats = json.loads(result.stdout)
        human = nsinit.run("stats").stdout
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert len(stats["cpu_stats"]["cpu_usage"]["percpu_usage"]) == os.cpu_count()
    assert stats["pids_stats"]["limit"] == 64 and stats["pids_stats"]["current"] >= 1
    assert stats["memory_stats"]["usage"]["usage"] > 0
    assert human.startswith("cpu      total ") and "pids     current" in human


def test_stats_json_shape(nsinit: Nsinit) -> None:
    with running(nsinit, "sleep 30", ready="pid"):
        stats = json.loads(nsinit.run("stats", "--json").stdout)
    assert set(stats) >= {"cpu_stats", "memory_stats", "pids_stats", "blkio_stats", "interfaces"}
    assert set(stats["cpu_stats"]["cpu_usage"]) == {"total_usage", "percpu_usage", "usage_in_kernelmode",
                                                    "usage_in_usermode"}
    assert set(stats["cpu_stats"]["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    assert set(stats["memory_stats"]["usage"]) == {"usage", "max_usage", "failcnt", "limit"}
    assert {"cache", "stats"} <= set(stats["memory_stats"]) and "rss" in stats["memory_stats"]["stats"]
    assert set(stats["pids_stats"]) == {"current", "limit"}
    assert "io_service_bytes_recursive" in stats["blkio_stats"]
    [lo] = stats["interfaces"]   # loopback only, every counter of it
    assert set(lo) == {"name"} | {f"{d}_{c}" for d in ("rx", "tx") for c in ("bytes", "packets", "errors", "dropped")}
    assert lo["name"] == "lo"


def test_stats_count_the_host_veth_from_the_container_side(nsinit: Nsinit, link_prefix: str) -> None:
    bridge, host = f"{link_prefix}b", f"{link_prefix}h"
    nsinit.config(networks=[{"type": "loopback"},
                            {"type": "veth", "name": "eth0", "bridge": bridge, "host_interface_name": host,
                             "address": "10.254.77.2/24"}])

    def host_counters() -> dict[str, int]:
        return {f"{d}_{c}": int(read(f"/sys/class/net/{host}/statistics/{d}_{c}"))
                for d in ("rx", "tx") for c in ("bytes", "packets")}

    try:
        # ARP for a neighbour nobody answers: the container transmits, the host end receives.
        with running(nsinit, "ping -c 2 -W 1 10.254.77.9 >/dev/null 2>&1; sleep 30", ready="pid"):
            nsinit.wait_for(lambda: host_counters()["rx_packets"] > 0)
            before = host_counters()
            stats = json.loads(nsinit.run("stats", "--json").stdout)
            after = host_counters()
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    [iface] = [i for i in stats["interfaces"] if i["name"] != "lo"]
    assert iface["name"] == "eth0" and iface["host_interface_name"] == host
    for mine, theirs in (("tx", "rx"), ("rx", "tx")):
        for counter in ("bytes", "packets"):
            value = iface[f"{mine}_{counter}"]
            assert before[f"{theirs}_{counter}"] <= value <= after[f"{theirs}_{counter}"], (mine, counter)
    assert iface["tx_packets"] > 0


def test_update_changes_live_limits_and_records_them(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": 32 * MiB, "memory_swap": 32 * MiB})
    with running(nsinit, "sleep 30", ready="pid"):
        paths = cgroup_paths(nsinit)
        result = nsinit.run("update", "--memory", "64M", "--pids-limit", "50", "--cpu-quota", "30000",
                            "--cpu-period", "60000", "--cpu-shares", "256")
        assert result.returncode == 0, result.stderr
        assert read(f"{paths['memory']}/memory.limit_in_bytes") == str(64 * MiB)
        assert read(f"{paths['memory']}/memory.memsw.limit_in_bytes") == str(64 * MiB)   # still no swap
        assert read(f"{paths['pids']}/pids.max") == "50"
        assert read(f"{paths['cpu']}/cpu.cfs_quota_us") == "30000"
        assert read(f"{paths['cpu']}/cpu.cfs_period_us") == "60000"
        assert read(f"{paths['cpu']}/cpu.shares") == "256"
        recorded = json.loads(nsinit.run("state", "--json").stdout)["config"]["cgroups"]["resources"]
        assert recorded["memory"] == 64 * MiB and recorded["memory_swap"] == 64 * MiB
        assert recorded["pids_limit"] == 50
        bad = nsinit.run("update", "--memory", "4096")
        assert bad.returncode == 1
        assert stderr_lines(bad) == ["nsinit: cgroups: cgroups.memory: 4096 bytes is below the minimum "
                                     "of 6291456 (6 MiB)"]
        assert read(f"{paths['memory']}/memory.limit_in_bytes") == str(64 * MiB)
        below_usage = nsinit.run("update", "--pids-limit", "abc")
        assert below_usage.returncode == 1 and "--pids-limit" in below_usage.stderr


# --- devices -----------------------------------------------------------------

def test_device_rules_deny_a_host_device_and_allow_the_defaults(nsinit: Nsinit) -> None:
    script = ("mknod /dev/lc c 10 237 && echo mknod ok; "
              "cat /dev/lc 2>&1; echo ok > /dev/null && echo null ok; head -c 3 /dev/zero | wc -c")
    result = nsinit.sh(script)
    lines = result.stdout.splitlines()
    assert lines[0] == "mknod ok"    # c *:* m: nodes may be made ...
    assert "Operation not permitted" in lines[1]   # ... but not opened without a rule
    assert lines[2:] == ["null ok", "3"]


def test_configured_device_rules(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"allowed_devices": [{"type": "c", "major": 10, "minor": 237, "permissions": "rw"}],
                           "denied_devices": [{"type": "c", "major": 1, "minor": 9, "permissions": "rwm"}]})
    result = nsinit.sh("mknod /dev/lc c 10 237; cat /dev/lc 2>&1; head -c1 /dev/urandom 2>&1 >/dev/null; true")
    lines = result.stdout.splitlines()
    # loop-control opens (reading it then fails with EINVAL): the cgroup let it through.
    assert "Operation not permitted" not in lines[0]
    assert "Operation not permitted" in lines[1]   # urandom denied


def test_allow_all_devices(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"allow_all_devices": True})
    result = nsinit.sh("mknod /dev/lc c 10 237; cat /dev/lc 2>&1; true")
    assert "Operation not permitted" not in result.stdout


# --- freezer -----------------------------------------------------------------

def test_pause_freezes_resume_thaws_and_state_shows_it(nsinit: Nsinit) -> None:
    counter = "i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.01; done"
    count = nsinit.root / "count"
    with running(nsinit, counter, ready="pid"):
        nsinit.wait_for(lambda: count.exists() and count.read_text().strip() != "")
        assert nsinit.run("pause").returncode == 0
        frozen_at = count.read_text()
        time.sleep(0.3)
        assert count.read_text() == frozen_at
        assert "status     paused" in nsinit.run("state").stdout       # another process sees it
        assert read(f"{cgroup_paths(nsinit)['freezer']}/freezer.state") == "FROZEN"
        assert nsinit.run("resume").returncode == 0
        nsinit.wait_for(lambda: count.read_text() not in ("", frozen_at), timeout=5)
        assert "status     running" in nsinit.run("state").stdout


def test_a_paused_container_refuses_joins_and_outlives_its_supervisor_until_resumed(
        nsinit: Nsinit, tmp_path: Path) -> None:
    with running(nsinit, "sleep 30", ready="pid") as proc:
        init = int((nsinit.root / "pid").read_text())
        assert nsinit.run("pause").returncode == 0
        joined = nsinit.exec("/bin/true", timeout=10)   # would freeze before its exec
        assert joined.returncode == 125
        assert stderr_lines(joined) == ["nsinit: cgroups: the container is paused (nsinit resume first)"]
        proc.send_signal(signal.SIGKILL)   # the supervisor
        proc.wait(timeout=10)
        # Frozen, the init cannot act on its parent-death SIGKILL: still paused.
        assert "status     paused" in nsinit.run("state").stdout
        assert nsinit.run("resume").returncode == 0
        nsinit.wait_for(lambda: _is_zombie_or_gone(init))
    # The next create finds the stale files and the stale cgroup and removes both.
    result = nsinit.exec("/bin/true")
    assert result.returncode == 0, result.stderr
    assert not cgroups_left(tmp_path)


# --- cleanup -----------------------------------------------------------------

def test_stragglers_without_a_pid_namespace_are_killed_at_exit(nsinit: Nsinit, tmp_path: Path) -> None:
    nsinit.config(namespaces=[{"type": t} for t in ("NEWNS", "NEWUTS", "NEWIPC", "NEWNET")])
    result = nsinit.sh("sleep 60 & echo $!")
    assert result.returncode == 0, result.stderr
    straggler = int(result.stdout.split()[-1])   # a host pid: no pid namespace
    assert not os.path.exists(f"/proc/{straggler}") or _is_zombie_or_gone(straggler)
    assert not cgroups_left(tmp_path)


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_sigkilled_supervisor_leaves_a_cgroup_the_next_create_removes(nsinit: Nsinit, tmp_path: Path) -> None:
    nsinit.config(namespaces=[{"type": t} for t in ("NEWNS", "NEWUTS", "NEWIPC", "NEWNET")])
    proc = nsinit.popen("exec", "/bin/sh", "-c", "sleep 60 & echo $! > /straggler; exec sleep 60")
    try:
        straggler_file = nsinit.root / "straggler"
        nsinit.wait_for(lambda: straggler_file.exists() and straggler_file.read_text().strip() != "")
        paths = cgroup_paths(nsinit)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        straggler = int(straggler_file.read_text())
        assert os.path.isdir(paths["memory"])   # what a SIGKILLed nsinit leaves ...
        assert straggler in [int(p) for p in read(f"{paths['pids']}/cgroup.procs").split()]
        result = nsinit.exec("/bin/true")   # ... the next create in that dir cleans up
        assert result.returncode == 0, result.stderr
        assert _is_zombie_or_gone(straggler)
        assert not any(os.path.isdir(p) for p in paths.values())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_named_cgroup_left_by_a_sigkilled_supervisor_goes_with_the_stale_record(
        nsinit: Nsinit, tmp_path: Path) -> None:
    # A configured name is not swept by the next create (it may be another
    # container's); nsinit's own record of the dead container is what
    # authorises removing it, at the first command that finds it stale.
    nsinit.config(cgroups={"name": f"stale-{tmp_path.name}", "parent": "nsinit"})
    proc = nsinit.popen("exec", "/bin/sh", "-c", "exec sleep 60")
    try:
        nsinit.wait_for(lambda: (nsinit.root / "pid").exists())
        paths = cgroup_paths(nsinit)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        nsinit.wait_for(lambda: not Path(f"{paths['pids']}/cgroup.procs").read_text().strip())
        assert os.path.isdir(paths["memory"])
        result = nsinit.run("state")
        assert result.returncode == 1
        assert "removing stale container files" in result.stderr
        assert not any(os.path.isdir(p) for p in paths.values())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gc_removes_what_a_killed_container_left_after_its_root_dir_was_deleted(
        nsinit: Nsinit, tmp_path: Path) -> None:
    # Nothing runs in that directory again, so only `nsinit gc` finds the
    # record: it kills the straggler still in the cgroups (no pid namespace
    # here, so it outlived its init) and removes cgroups and record.
    env = {**os.environ, "NSINIT_RUN_DIR": str(tmp_path / "run")}
    nsinit.config(namespaces=[{"type": t} for t in ("NEWNS", "NEWUTS", "NEWIPC", "NEWNET")])
    proc = nsinit.popen("exec", "/bin/sh", "-c", "sleep 60 & echo $! > /straggler; exec sleep 60", env=env)
    with killed_at_exit(proc):
        straggler_file = nsinit.root / "straggler"
        nsinit.wait_for(lambda: straggler_file.exists() and straggler_file.read_text().strip() != "")
        straggler = int(straggler_file.read_text())
        paths = cgroup_paths(nsinit)
        init_pid = int((nsinit.root / "pid").read_text())
        [record] = os.listdir(tmp_path / "run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    subprocess.run(["rm", "-rf", str(nsinit.root)], check=True)
    assert os.path.isdir(paths["memory"]) and os.listdir(tmp_path / "run") == [record]
    assert not _is_zombie_or_gone(straggler)

    gc = subprocess.run([sys.executable, "-m", "nsinit", "gc"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=30)
    assert gc.returncode == 0, gc.stderr
    [line] = gc.stdout.splitlines()
    # "is gone", or "has exited" while the dead init waits to be reaped
    assert line.startswith(f"removed container {init_pid} of {nsinit.root} (container init {init_pid} ")
    assert line.endswith(f"): {tmp_path / 'run' / record}")
    assert stderr_lines(gc) == []
    assert _is_zombie_or_gone(straggler)
    assert not any(os.path.isdir(p) for p in paths.values())
    assert os.listdir(tmp_path / "run") == []
    again = subprocess.run([sys.executable, "-m", "nsinit", "gc", "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 0 and json.loads(again.stdout) == []


def test_gc_leaves_a_running_container_alone(nsinit: Nsinit, tmp_path: Path) -> None:
    env = {**os.environ, "NSINIT_RUN_DIR": str(tmp_path / "run")}
    proc = nsinit.popen("exec", "/bin/sh", "-c", "touch /ready; exec sleep 60", env=env)
    try:
        nsinit.wait_for(lambda: (nsinit.root / "ready").exists() and (nsinit.root / "pid").exists())
        gc = nsinit.run("gc", "--json", env=env)
        assert gc.returncode == 0 and json.loads(gc.stdout) == [], gc.stderr
        assert nsinit.run("state", env=env).returncode == 0
        assert nsinit.run("kill", "KILL", env=env).returncode == 0
        assert proc.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cleanup_after_setup_failures(nsinit: Nsinit, tmp_path: Path) -> None:
    # The kernel refuses the limit after the directories exist.
    nsinit.config(cgroups={"blkio_throttle_read_bps_device": "259:250 1000"})
    result = nsinit.exec("/bin/true")
    assert result.returncode == 125
    assert stderr_lines(result) == ["nsinit: cgroups: cgroups.blkio_throttle_read_bps_device: cannot set "
                                    "blkio.throttle.read_bps_device to 259:250 1000: No such device"]
    assert not cgroups_left(tmp_path)
    # The child fails after the cgroup was made and joined.
    nsinit.config(cgroups=None)
    result = nsinit.exec("/no/such/command")
    assert result.returncode == 127
    assert not cgroups_left(tmp_path)


@pytest.mark.parametrize("cgroups, message", [
    ({"memory": -5}, "cgroups.memory"),
    ({"cpuset_cpus": "99"}, "cgroups.cpuset_cpus: CPU 99 does not exist (online: "),
    ({"memory": 4096}, "cgroups.memory: 4096 bytes is below the minimum"),
    ({"allowed_devices": [{"type": "x", "major": 1, "minor": 1}]}, "cgroups.allowed_devices[0].type"),
    ({"pids_limit": "ten"}, "cgroups.pids_limit"),
    ({"cpu_shares": 1}, "cgroups.cpu_shares: 1 is not between 2 and 262144"),
])
def test_bad_input_is_one_line_exit_125_nothing_created(nsinit: Nsinit, tmp_path: Path,
                                                         cgroups: dict, message: str) -> None:
    nsinit.config(cgroups=cgroups)
    result = nsinit.exec("/bin/true")
    assert result.returncode == 125
    lines = stderr_lines(result)
    assert len(lines) == 1 and message in lines[0], lines
    assert not cgroups_left(tmp_path)
    assert not (nsinit.root / "state.json").exists()


def test_lifecycle_commands_without_a_container_exit_1(nsinit: Nsinit) -> None:
    for command in (["pause"], ["resume"], ["stats"], ["update", "--pids-limit", "5"], ["oom"]):
        result = nsinit.run(*command)
        assert result.returncode == 1, command
        assert stderr_lines(result) == [f"nsinit: {command[0]}: no running container in {nsinit.root}"]


# --- the v2 manager on this host's cgroup2 mount (core files only) ------------

def _unified_mount() -> str:
    from nsinit.cgroups import layout

    mount = layout.detect().unified
    if mount is None:
        pytest.skip("no cgroup2 mount on this host")
    return mount



@contextmanager
def killed_at_exit(proc: subprocess.Popen[str]) -> Iterator[None]:
    """The supervisor the block means to SIGKILL is killed and reaped
    whatever the block raised before it did."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

@contextmanager
def v2_manager(tmp_path: Path, **resources: object):  # type: ignore[no-untyped-def]
    from nsinit.cgroups.v2 import V2Manager
    from nsinit.config.model import CgroupResources

    m = V2Manager.for_mount(_unified_mount(), f"/nsinit/nsinit-v2-{tmp_path.name}-{os.getpid()}",
                            resources=CgroupResources(**resources), devices=(), explicit="")  # type: ignore[arg-type]
    m.create()
    try:
        yield m
    finally:
        m.destroy()


@pytest.mark.usefixtures("no_residue")
def test_v2_procs_freeze_kill_on_the_unified_mount(tmp_path: Path) -> None:
    with v2_manager(tmp_path) as m:
        sleeper = subprocess.Popen(["sleep", "30"])
        try:
            m.add(sleeper.pid)
            assert read(f"{m.path}/cgroup.procs") == str(sleeper.pid)
            m.freeze()
            assert "frozen 1" in read(f"{m.path}/cgroup.events").splitlines() and m.is_frozen()
            assert m.stats()["cpu_stats"]["cpu_usage"]["total_usage"] >= 0
            m.thaw()
            assert "frozen 0" in read(f"{m.path}/cgroup.events").splitlines() and not m.is_frozen()
            m.freeze()   # destroy must kill a frozen cgroup too
        finally:
            m.destroy()  # cgroup.kill, wait for "populated 0", rmdir
            assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not os.path.exists(m.path)


@pytest.mark.usefixtures("no_residue")
def test_v2_device_program_on_the_unified_mount(tmp_path: Path) -> None:
    node = tmp_path / "lc"
    os.mknod(node, 0o600 | 0o020000, os.makedev(10, 237))
    probe = ("import sys\nsys.stdin.readline()\n"
             f"for path in ('/dev/null', {str(node)!r}):\n"
             "    try:\n        open(path, 'rb').close(); print(path, 'ok')\n"
             "    except OSError as e: print(path, e.strerror)\n")
    with v2_manager(tmp_path) as m:
        child = subprocess.Popen([sys.executable, "-c", probe], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        m.add(child.pid)
        out, _ = child.communicate("go\n", timeout=10)
    assert out.splitlines() == ["/dev/null ok", f"{node} Operation not permitted"]


def test_cgroup_namespace_is_rooted_at_the_containers_cgroup(nsinit: Nsinit) -> None:
    # The init enters its cgroups before it makes its cgroup namespace, so
    # inside, its own cgroup is the root of every hierarchy.
    data = json.loads((nsinit.root / "container.json").read_text())
    nsinit.config(namespaces=data["namespaces"] + [{"type": "NEWCGROUP"}])
    result = nsinit.sh("cat /proc/self/cgroup")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.split(":")[1] in ("memory", "pids")]
    assert len(lines) == 2
    assert all(line.split(":", 2)[2] == "/" for line in lines), result.stdout


def test_joined_process_enters_the_cgroups_by_itself(nsinit: Nsinit) -> None:
    with running(nsinit, "sleep 30", ready="pid"):
        paths = cgroup_paths(nsinit)
        result = nsinit.sh("cat /proc/self/cgroup")
        assert result.returncode == 0, result.stderr
        memory = next(line for line in result.stdout.splitlines() if line.split(":")[1] == "memory")
        assert paths["memory"].endswith(memory.split(":", 2)[2])


def test_containers_ending_and_starting_in_one_dir_do_not_undo_each_other(nsinit: Nsinit) -> None:
    # Each exec either creates the container or joins it, and one ends while
    # the next begins; every creation reuses the same cgroup path.  A
    # supervisor tearing down must never remove its successor's cgroups or
    # record, or the successor fails (its cgroup gone) or leaks.
    # A process that joined dies with the init it joined (SIGKILL, 137, and
    # one line saying so); none may fail in nsinit itself (125) or say more.
    procs = [nsinit.popen("exec", "/bin/sh", "-c", "sleep 0.05") for _ in range(12)]
    results = [(p.wait(timeout=60), p.communicate()) for p in procs]
    for code, (_, err) in results:
        assert code in (0, 128 + signal.SIGKILL), err
        if code == 0:
            assert err == ""
        else:
            assert re.fullmatch(r"nsinit: the container's init \(pid \d+\) exited, which killed this process\n", err), err
    assert any(code == 0 for code, _ in results)


def test_two_roots_creating_in_parallel_share_the_parent_cgroup_safely(nsinit: Nsinit, tmp_path: Path) -> None:
    # Two containers in two root dirs share the default "nsinit" parent
    # cgroup: one may make it (cpuset: empty until filled in) or remove it
    # while the other makes its own cgroup under it.  The bench's two lanes
    # once hit an empty cpuset (ENOSPC on joining it); every run must pass.
    config = json.loads((nsinit.root / "container.json").read_text())
    config["rootfs"] = str(nsinit.root)
    lanes = []
    for lane in ("lane-a", "lane-b"):
        (tmp_path / lane).mkdir()
        (tmp_path / lane / "container.json").write_text(json.dumps(config))
        lanes.append(tmp_path / lane)
    failures: list[str] = []

    def run_lane(root: Path) -> None:
        for _ in range(20):
            result = subprocess.run([sys.executable, "-m", "nsinit", "--root", str(root), "exec", "/bin/true"],
                                    capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            if result.returncode != 0:
                failures.append(result.stderr.strip())

    import threading

    threads = [threading.Thread(target=run_lane, args=(root,)) for root in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert cgroups_left(tmp_path) == []


# --- a nested cgroup path: the parents its creation made go with it (issue 18) ---

def dirs_named(top: str) -> list[str]:
    """``top`` (a directory right below each hierarchy's root) and what is
    below it, in every hierarchy."""
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        found.extend(dirpath for dirpath, _, _ in os.walk(hierarchy / top))
    return found


@pytest.fixture
def nested_top(tmp_path: Path) -> Iterator[str]:
    """A unique top directory for a nested cgroup path; whatever is left of
    it is removed after the test, deepest first."""
    top = f"nsinit-test-{os.getpid()}-{tmp_path.name}"
    try:
        yield top
    finally:
        for directory in sorted(dirs_named(top), key=lambda d: -d.count("/")):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass  # removed meanwhile


def v1_mounts() -> list[str]:
    from nsinit.cgroups import layout

    return sorted(set(layout.detect().v1.values()))


def test_a_nested_cgroup_path_leaves_none_of_its_parents(nsinit: Nsinit, nested_top: str) -> None:
    nsinit.config(cgroups={"path": f"{nested_top}/mid/leaf"})
    with running(nsinit, "sleep 30", ready="pid"):
        for mount in v1_mounts():
            assert os.path.isdir(f"{mount}/{nested_top}/mid/leaf"), mount
        recorded = json.loads((nsinit.root / "state.json").read_text())["cgroup_parents_made"]
        assert sorted(recorded) == sorted(f"{m}/{nested_top}{mid}" for m in v1_mounts() for mid in ("/mid", ""))
    assert dirs_named(nested_top) == []


def test_a_parent_that_was_there_before_stays(nsinit: Nsinit, nested_top: str) -> None:
    for mount in v1_mounts():
        os.mkdir(f"{mount}/{nested_top}")
    nsinit.config(cgroups={"path": f"{nested_top}/mid/leaf"})
    assert nsinit.exec("/bin/true").returncode == 0
    assert sorted(dirs_named(nested_top)) == sorted(f"{m}/{nested_top}" for m in v1_mounts())


def test_a_nested_path_whose_limit_the_kernel_refuses_leaves_no_parent(nsinit: Nsinit, nested_top: str) -> None:
    nsinit.config(cgroups={"path": f"{nested_top}/mid/leaf", "blkio_throttle_read_bps_device": "259:250 1000"})
    assert nsinit.exec("/bin/true").returncode == 125
    assert dirs_named(nested_top) == []


def test_gc_removes_the_parents_a_killed_containers_nested_path_made(
        nsinit: Nsinit, tmp_path: Path, nested_top: str) -> None:
    env = {**os.environ, "NSINIT_RUN_DIR": str(tmp_path / "run")}
    nsinit.config(cgroups={"path": f"{nested_top}/mid/leaf"})
    proc = nsinit.popen("exec", "/bin/sh", "-c", "exec sleep 60", env=env)
    with killed_at_exit(proc):
        nsinit.wait_for(lambda: (nsinit.root / "pid").exists())
        proc.send_signal(signal.SIGKILL)   # nobody removes its cgroups now
        proc.wait(timeout=10)
    subprocess.run(["rm", "-rf", str(nsinit.root)], check=True)
    assert all(os.path.isdir(f"{mount}/{nested_top}/mid/leaf") for mount in v1_mounts())
    gc = subprocess.run([sys.executable, "-m", "nsinit", "gc"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=30)
    assert gc.returncode == 0 and stderr_lines(gc) == [], gc.stderr
    assert dirs_named(nested_top) == []
