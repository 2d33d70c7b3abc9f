"""The cgroup v2 manager against a temp directory shaped like cgroupfs (no root).

This host's cgroup2 mount has no controllers, so everything the v2 manager
does with them (enabling controllers top-down, memory.max, cpu.max, io.max,
cpu.weight ...) is checked here against ``FakeCgroup2``: a temp dir whose
"kernel" (wrapping nsinit.cgroups.fs) makes interface files on mkdir and
gives the core files their effects.  The core files themselves (procs,
freeze, kill, events) and the eBPF device program run for real in
tests/integration/test_cgroups.py.

Also here: pure parts shared by both managers (layout parsing, naming,
validation, device rules and an interpreter for the eBPF device program).
"""
from __future__ import annotations

import errno
import os
import struct
import threading
import time
from pathlib import Path

import pytest

from conftest import make_config
from nsinit.cgroups import devices, fs, layout, manager_for, notify
from nsinit.cgroups.manager import MIN_MEMORY, cgroup_path, default_name
from nsinit.cgroups.v2 import V2Manager, shares_to_weight
from nsinit.config.model import CgroupConfig, CgroupResources, DeviceConfig
from nsinit.errors import NsinitError

CONTROLLER_FILES = {
    "cpu": ["cpu.max", "cpu.weight", "cpu.stat"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "memory": ["memory.max", "memory.low", "memory.swap.max", "memory.current", "memory.events", "memory.stat"],
    "pids": ["pids.max", "pids.current"],
    "io": ["io.max", "io.weight", "io.stat"],
    "hugetlb": ["hugetlb.2MB.max", "hugetlb.2MB.current"],
}
CORE_FILES = ["cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "cgroup.events",
              "cgroup.freeze", "cgroup.kill", "cgroup.type"]


class FakeCgroup2:
    """A cgroup2 hierarchy in a temp dir, with the kernel's rules that matter here."""

    def __init__(self, root: Path, controllers: tuple[str, ...] = tuple(CONTROLLER_FILES)) -> None:
        self.root = root
        self.writes: list[tuple[str, str]] = []   # (path relative to root, value)
        self.killed: list[int] = []
        (root / "cgroup.controllers").write_text(" ".join(controllers) + "\n")
        (root / "cgroup.subtree_control").write_text("\n")
        (root / "cgroup.procs").write_text("")
        (root / "cpu.stat").write_text("usage_usec 0\n")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeCgroup2":
        monkeypatch.setattr(fs, "make_dir", self.make_dir)
        monkeypatch.setattr(fs, "write_file", self.write_file)
        monkeypatch.setattr(fs, "remove_dir", self.remove_dir)
        monkeypatch.setattr(fs, "kill_pids", self.killed.extend)
        monkeypatch.setattr(fs, "EMPTY_TIMEOUT", 0.2)
        monkeypatch.setattr(fs, "FREEZE_TIMEOUT", 0.2)
        return self

    # -- the "kernel" ------------------------------------------------------
    def make_dir(self, path: str) -> None:
        os.mkdir(path)
        parent = Path(path).parent
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        for name in CORE_FILES:
            (Path(path) / name).write_text("")
        (Path(path) / "cgroup.controllers").write_text(" ".join(enabled) + "\n")
        (Path(path) / "cgroup.events").write_text("populated 0\nfrozen 0\n")
        (Path(path) / "cgroup.freeze").write_text("0\n")
        (Path(path) / "cpu.stat").write_text("usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
        for controller in enabled:
            self.add_controller_files(Path(path), controller)

    def add_controller_files(self, directory: Path, controller: str) -> None:
        for name in CONTROLLER_FILES[controller]:
            target = directory / name
            if not target.exists():
                target.write_text("max\n" if name.endswith(".max") else "")

    def write_file(self, path: str, value: str) -> None:
        target = Path(path)
        if not target.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.writes.append((str(target.relative_to(self.root)), value))
        name, directory = target.name, target.parent
        if name == "cgroup.subtree_control":
            available = (directory / "cgroup.controllers").read_text().split()
            enabled = target.read_text().split()
            for word in value.split():
                controller = word[1:]
                if controller not in available:
                    raise OSError(errno.EINVAL, "Invalid argument", path)
                if word[0] == "+" and controller not in enabled:
                    enabled.append(controller)
                    for child in directory.iterdir():
                        if child.is_dir():
                            self.add_controller_files(child, controller)
                            controllers = (child / "cgroup.controllers").read_text().split()
                            (child / "cgroup.controllers").write_text(" ".join(controllers + [controller]) + "\n")
            target.write_text(" ".join(enabled) + "\n")
        elif name == "cgroup.procs":
            target.write_text(target.read_text() + value.strip() + "\n")
            self.set_events(directory, populated=1)
        elif name == "cgroup.freeze":
            target.write_text(value.strip() + "\n")
            self.set_events(directory, frozen=int(value.strip()))
        elif name == "cgroup.kill":
            for cgroup in fs.subtree_bottom_up(str(directory)):
                (Path(cgroup) / "cgroup.procs").write_text("")
                self.set_events(Path(cgroup), populated=0)
        else:
            target.write_text(value)

    def set_events(self, directory: Path, **changes: int) -> None:
        events = dict(line.split() for line in (directory / "cgroup.events").read_text().splitlines())
        events.update({key: str(value) for key, value in changes.items()})
        (directory / "cgroup.events").write_text("".join(f"{k} {v}\n" for k, v in events.items()))

    def remove_dir(self, path: str, retries: int = 0) -> None:
        directory = Path(path)
        if not directory.exists():
            return
        if any(child.is_dir() for child in directory.iterdir()) or (directory / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()

    # -- test helpers ------------------------------------------------------
    def read(self, relative: str) -> str:
        return (self.root / relative).read_text().strip()

    def written(self, relative: str) -> list[str]:
        return [value for path, value in self.writes if path == relative]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCgroup2:
    root = tmp_path / "cgroup2"
    root.mkdir()
    return FakeCgroup2(root).install(monkeypatch)


@pytest.fixture
def attached(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, list[devices.Rule]]]:
    calls: list[tuple[str, bool, list[devices.Rule]]] = []
    monkeypatch.setattr(devices, "attach_device_program",
                        lambda path, allow_all, rules: calls.append((path, allow_all, rules)))
    return calls


def make_manager(tree: FakeCgroup2, path: str = "/nsinit/ct", explicit: str = "",
                 devs: tuple[DeviceConfig, ...] = (), **resources: object) -> V2Manager:
    return V2Manager.for_mount(str(tree.root), path, resources=CgroupResources(**resources),  # type: ignore[arg-type]
                               devices=devs, explicit=explicit)


# --- create ------------------------------------------------------------------

def test_create_enables_controllers_top_down_and_writes_limits(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree, memory=64 * 2**20, memory_swap=96 * 2**20, memory_reservation=2**20,
                     cpu_shares=512, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0", cpuset_mems="0",
                     pids_limit=20, blkio_weight=500,
                     blkio_throttle_read_bps_device=("8:0 1048576",),
                     blkio_throttle_write_iops_device=("8:0 100",), hugetlb_limit=(("2MB", 0),))
    m.create()
    assert m.paths == {"unified": str(tree.root / "nsinit" / "ct")}
    # Root first, then the shared parent; the leaf delegates nothing.
    enabled = [p for p, _ in tree.writes if p.endswith("cgroup.subtree_control")]
    assert enabled[0] == "cgroup.subtree_control" and enabled[-1] == "nsinit/cgroup.subtree_control"
    assert set(tree.read("nsinit/cgroup.subtree_control").split()) == set(CONTROLLER_FILES)
    assert tree.read("nsinit/ct/memory.max") == str(64 * 2**20)
    assert tree.read("nsinit/ct/memory.swap.max") == str(32 * 2**20)   # swap alone: 96M - 64M
    assert tree.read("nsinit/ct/memory.low") == str(2**20)
    assert tree.read("nsinit/ct/cpu.weight") == str(shares_to_weight(512))
    assert tree.read("nsinit/ct/cpu.max") == "50000 100000"
    assert tree.read("nsinit/ct/cpuset.cpus") == "0"
    assert tree.read("nsinit/ct/pids.max") == "20"
    assert tree.read("nsinit/ct/io.weight") == str(1 + (490 * 9999) // 990)
    assert tree.written("nsinit/ct/io.max") == ["8:0 rbps=1048576", "8:0 wiops=100"]
    assert tree.read("nsinit/ct/hugetlb.2MB.max") == "0"
    [(path, allow_all, rules)] = attached
    assert path == m.path and not allow_all
    assert rules[:len(devices.DEFAULT_ALLOWED)] == list(devices.DEFAULT_ALLOWED)


def test_share_conversion_matches_runc() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


def test_unlimited_values_become_max(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree, memory=-1, cpu_quota=-1, pids_limit=-1)
    m.create()
    assert tree.read("nsinit/ct/memory.max") == "max"
    assert tree.read("nsinit/ct/cpu.max") == "max"
    assert tree.read("nsinit/ct/pids.max") == "max"


def test_allow_all_devices_attaches_no_program(tree: FakeCgroup2, attached: list) -> None:
    make_manager(tree, allow_all_devices=True).create()
    assert attached == []


def test_config_devices_are_allowed_with_their_permissions(tree: FakeCgroup2, attached: list) -> None:
    fuse = DeviceConfig("c", "/dev/fuse", 10, 229, permissions="rw")
    fifo = DeviceConfig("p", "/dev/fifo", 0, 0)
    make_manager(tree, devs=(fuse, fifo)).create()
    rules = attached[0][2]
    assert devices.Rule("c", 10, 229, "rw", True) in rules
    assert all(rule.type != "p" for rule in rules)


@pytest.mark.parametrize("resources, field", [
    ({"memory_swappiness": 10}, "cgroups.memory_swappiness"),
    ({"oom_kill_disable": True}, "cgroups.oom_kill_disable"),
    ({"hugetlb_limit": (("2MB", 1),)}, "cgroups.hugetlb_limit: the hugetlb controller is not available"),
])
def test_unsupported_on_v2_is_one_line_and_nothing_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attached: list,
        resources: dict, field: str) -> None:
    root = tmp_path / "cgroup2"
    root.mkdir()
    tree = FakeCgroup2(root, controllers=("cpu", "memory", "pids")).install(monkeypatch)
    with pytest.raises(NsinitError) as info:
        make_manager(tree, **resources).create()
    assert str(info.value).startswith(f"cgroups: {field}")
    assert "\n" not in str(info.value)
    assert not (root / "nsinit").exists()


def test_kernel_rejection_names_the_field_and_removes_what_was_made(
        tree: FakeCgroup2, attached: list, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_write = fs.write_file

    def reject_io_max(path: str, value: str) -> None:
        if path.endswith("io.max"):
            raise OSError(errno.ENODEV, "No such device", path)
        kernel_write(path, value)

    monkeypatch.setattr(fs, "write_file", reject_io_max)
    m = make_manager(tree, blkio_throttle_read_bps_device=("259:99 100",))
    with pytest.raises(NsinitError, match=r"cgroups\.blkio_throttle_read_bps_device: .*No such device"):
        m.create()
    assert not (tree.root / "nsinit").exists()
    m.destroy()  # create failed: nothing is this manager's to remove


def test_failed_device_program_is_an_error_with_a_way_out(
        tree: FakeCgroup2, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_bpf(*_: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(devices, "attach_device_program", no_bpf)
    with pytest.raises(NsinitError, match="allow_all_devices"):
        make_manager(tree).create()
    assert not (tree.root / "nsinit").exists()


def test_stale_cgroup_of_default_name_is_killed_and_replaced(tree: FakeCgroup2, attached: list) -> None:
    old = make_manager(tree)
    old.create()
    old.add(4242)
    (tree.root / "nsinit" / "ct" / "memory.max").write_text("1234\n")  # the old container's limit
    make_manager(tree, memory=MIN_MEMORY).create()
    assert ("nsinit/ct/cgroup.kill", "1") in tree.writes
    assert tree.read("nsinit/ct/cgroup.procs") == ""
    assert tree.read("nsinit/ct/memory.max") == str(MIN_MEMORY)


def test_stale_cgroup_with_a_configured_name_and_processes_is_refused(tree: FakeCgroup2, attached: list) -> None:
    other = make_manager(tree, path="/nsinit/shared", explicit="name")
    other.create()
    other.add(4242)
    with pytest.raises(NsinitError, match=r"cgroups\.name: cgroup nsinit/shared already exists with 1 process"):
        make_manager(tree, path="/nsinit/shared", explicit="name").create()
    assert tree.read("nsinit/shared/cgroup.procs") == "4242"   # untouched
    assert ("nsinit/shared/cgroup.kill", "1") not in tree.writes


# --- processes, freezer, destroy ---------------------------------------------

def test_add_freeze_thaw(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree)
    m.create()
    m.add(101)
    assert tree.read("nsinit/ct/cgroup.procs") == "101"
    assert not m.is_frozen()
    m.freeze()
    assert m.is_frozen() and tree.read("nsinit/ct/cgroup.freeze") == "1"
    m.thaw()
    assert not m.is_frozen()


def test_no_process_is_added_to_a_frozen_cgroup(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree)
    m.create()
    m.freeze()
    with pytest.raises(NsinitError, match=r"paused \(nsinit resume first\)"):
        m.add(101)   # it would freeze before its exec: a join would hang
    assert tree.read("nsinit/ct/cgroup.procs") == ""


def test_freeze_that_never_completes_is_undone(
        tree: FakeCgroup2, attached: list, monkeypatch: pytest.MonkeyPatch) -> None:
    m = make_manager(tree)
    m.create()
    kernel_write = fs.write_file

    def stuck(path: str, value: str) -> None:
        if path.endswith("cgroup.freeze"):
            tree.writes.append((path, value))
            Path(path).write_text(value)   # events never say frozen
            return
        kernel_write(path, value)

    monkeypatch.setattr(fs, "write_file", stuck)
    with pytest.raises(NsinitError, match="did not freeze"):
        m.freeze()
    assert tree.read("nsinit/ct/cgroup.freeze") == "0"


def test_destroy_kills_removes_leaf_and_default_parent_idempotently(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree)
    m.create()
    m.add(101)
    sub = tree.root / "nsinit" / "ct" / "inner"   # made by the container itself
    tree.make_dir(str(sub))
    m.destroy()
    assert ("nsinit/ct/cgroup.kill", "1") in tree.writes
    assert not (tree.root / "nsinit").exists()
    m.destroy()


def test_destroy_keeps_a_parent_another_container_uses(tree: FakeCgroup2, attached: list) -> None:
    first, second = make_manager(tree, path="/nsinit/a"), make_manager(tree, path="/nsinit/b")
    first.create()
    second.create()
    first.destroy()
    assert not (tree.root / "nsinit" / "a").exists() and (tree.root / "nsinit" / "b").exists()
    second.destroy()
    assert not (tree.root / "nsinit").exists()


def test_destroy_keeps_a_configured_parent(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree, path="/machine/ct")
    m.create()
    m.destroy()
    assert (tree.root / "machine").is_dir() and not (tree.root / "machine" / "ct").exists()
    tree.remove_dir(str(tree.root / "machine"))


def test_kill_without_cgroup_kill_freezes_and_signals_each(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree)
    m.create()
    m.add(101)
    m.add(102)
    (tree.root / "nsinit" / "ct" / "cgroup.kill").unlink()   # kernel < 5.14
    with pytest.raises(NsinitError):
        m.destroy()   # the fake "processes" do not die: bounded, then rmdir reports EBUSY
    assert sorted(set(tree.killed)) == [101, 102]
    assert "1" in tree.written("nsinit/ct/cgroup.freeze")
    assert tree.read("nsinit/ct/cgroup.freeze") == "0"   # thawed again


# --- update, stats, OOM ------------------------------------------------------

def test_update_cpu_max_keeps_the_other_half(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree, cpu_quota=50000, cpu_period=100000)
    m.create()
    m.update(CgroupResources(cpu_quota=20000))
    assert tree.written("nsinit/ct/cpu.max")[-1] == "20000"   # one number: the kernel keeps the period
    (tree.root / "nsinit" / "ct" / "cpu.max").write_text("20000 100000\n")
    m.update(CgroupResources(cpu_period=50000))
    assert tree.read("nsinit/ct/cpu.max") == "20000 50000"
    applied = m.update(CgroupResources(memory=-1, pids_limit=5))
    assert applied == {"memory": -1, "pids_limit": 5}
    assert tree.read("nsinit/ct/memory.max") == "max" and tree.read("nsinit/ct/pids.max") == "5"


def test_update_rejects_bad_values_without_writing(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree)
    m.create()
    before = len(tree.writes)
    with pytest.raises(NsinitError, match=r"cgroups\.memory: 4096 bytes is below the minimum"):
        m.update(CgroupResources(memory=4096))
    with pytest.raises(NsinitError, match=r"cgroups\.pids_limit: -5 is not a positive number"):
        m.update(CgroupResources(pids_limit=-5))
    assert len(tree.writes) == before


def test_stats_shape_from_v2_files(tree: FakeCgroup2, attached: list) -> None:
    m = make_manager(tree)
    m.create()
    d = tree.root / "nsinit" / "ct"
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                                "nr_periods 10\nnr_throttled 3\nthrottled_usec 70\n")
    (d / "memory.current").write_text("8192\n")
    (d / "memory.max").write_text("max\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (d / "memory.stat").write_text("anon 4096\nfile 12288\n")
    (d / "pids.current").write_text("3\n")
    (d / "pids.max").write_text("10\n")
    (d / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
    stats = m.stats()
    assert stats["cpu_stats"]["cpu_usage"] == {"total_usage": 1_500_000, "percpu_usage": [],
                                               "usage_in_kernelmode": 500_000, "usage_in_usermode": 1_000_000}
    assert stats["cpu_stats"]["throttling_data"] == {"periods": 10, "throttled_periods": 3, "throttled_time": 70_000}
    assert stats["memory_stats"]["usage"] == {"usage": 8192, "max_usage": 0, "failcnt": 4, "limit": 2**64 - 1}
    assert stats["memory_stats"]["cache"] == 12288
    assert stats["memory_stats"]["stats"] == {"anon": 4096, "file": 12288}
    assert stats["pids_stats"] == {"current": 3, "limit": 10}
    assert {"major": 8, "minor": 0, "op": "Write", "value": 8192} in stats["blkio_stats"]["io_service_bytes_recursive"]
    assert {"major": 8, "minor": 0, "op": "Read", "value": 1} in stats["blkio_stats"]["io_serviced_recursive"]


def test_oom_events_follow_memory_events_until_the_cgroup_goes(
        tree: FakeCgroup2, attached: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "POLL_SECONDS", 0.01)
    m = make_manager(tree)
    m.create()
    events = tree.root / "nsinit" / "ct" / "memory.events"
    events.write_text("oom 1\noom_kill 1\n")   # before watching: not reported
    watcher = m.notify_oom()

    def kernel() -> None:
        time.sleep(0.05)
        events.write_text("oom 2\noom_kill 3\n")
        time.sleep(0.05)
        m.destroy()

    thread = threading.Thread(target=kernel)
    thread.start()
    seen = list(watcher)
    thread.join()
    assert seen == [1, 2]


def test_oom_events_need_the_memory_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               attached: list) -> None:
    root = tmp_path / "cgroup2"
    root.mkdir()
    tree = FakeCgroup2(root, controllers=("pids",)).install(monkeypatch)
    m = make_manager(tree)
    m.create()
    with pytest.raises(NsinitError, match="memory controller"):
        m.notify_oom()
    m.destroy()


# --- choosing a manager, naming, checks --------------------------------------

HYBRID = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 22 0:32 /docker /mnt/my\\040cgroups rw,relatime - cgroup cgroup rw,memory
"""
PURE_V2 = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_layout_hybrid_and_pure_v2() -> None:
    hybrid = layout.parse_mountinfo(HYBRID)
    assert hybrid.mode == "hybrid"
    assert hybrid.v1 == {"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                         "memory": "/sys/fs/cgroup/memory"}
    assert hybrid.unified == "/sys/fs/cgroup/unified"
    v2 = layout.parse_mountinfo(PURE_V2)
    assert v2.mode == "v2" and v2.v1 == {} and v2.unified == "/sys/fs/cgroup"
    assert layout.parse_mountinfo("").mode == "none"


def test_layout_keeps_a_whole_hierarchy_over_a_subtree_mount() -> None:
    text = ("50 22 0:32 /docker /mnt/my\\040cgroups rw - cgroup cgroup rw,memory\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    assert layout.parse_mountinfo(text).v1["memory"] == "/sys/fs/cgroup/memory"
    only_subtree = layout.parse_mountinfo(text.splitlines()[0])
    assert only_subtree.v1["memory"] == "/mnt/my cgroups"


def test_manager_choice_follows_the_layout(tmp_path: Path) -> None:
    from nsinit.cgroups.v1 import V1Manager

    config = make_config(cgroups=CgroupConfig(name="box"))
    v1 = manager_for(config, str(tmp_path), layout.parse_mountinfo(HYBRID))
    assert isinstance(v1, V1Manager)
    assert v1.paths["memory"] == "/sys/fs/cgroup/memory/nsinit/box"
    assert v1.paths["cpu"] == v1.paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/nsinit/box"
    v2 = manager_for(config, str(tmp_path), layout.parse_mountinfo(PURE_V2))
    assert isinstance(v2, V2Manager) and v2.paths == {"unified": "/sys/fs/cgroup/nsinit/box"}
    with pytest.raises(NsinitError, match="no cgroup hierarchy"):
        manager_for(config, str(tmp_path), layout.parse_mountinfo(""))


def test_cgroup_path_rules(tmp_path: Path) -> None:
    root = str(tmp_path / "my ct")
    name = default_name(root)
    assert name.startswith("nsinit-my ct-") and len(name.rsplit("-", 1)[1]) == 8
    assert cgroup_path(None, root) == (f"/nsinit/{name}", "")
    assert cgroup_path(CgroupConfig(parent="docker"), root) == (f"/docker/{name}", "")
    assert cgroup_path(CgroupConfig(name="web", parent="/a/b/"), root) == ("/a/b/web", "name")
    assert cgroup_path(CgroupConfig(name="web", path="/x//y"), root) == ("/x/y", "path")
    with pytest.raises(NsinitError, match=r"cgroups\.path: must not be the root"):
        cgroup_path(CgroupConfig(path="/"), root)


@pytest.mark.parametrize("resources, message", [
    ({"memory": 4096}, "cgroups.memory: 4096 bytes is below the minimum of 6291456"),
    ({"memory": -5}, "cgroups.memory: -5 is negative"),
    ({"memory": 2**24, "memory_swap": 2**23}, "cgroups.memory_swap: 8388608 is less than cgroups.memory"),
    ({"memory_swap": 2**24}, "cgroups.memory_swap: needs cgroups.memory"),
    ({"cpu_shares": 1}, "cgroups.cpu_shares: 1 is not between 2 and 262144"),
    ({"cpu_quota": 500}, "cgroups.cpu_quota: 500 is below the kernel's minimum"),
    ({"cpu_period": 10}, "cgroups.cpu_period: 10 is not between"),
    ({"cpuset_cpus": "9999"}, "cgroups.cpuset_cpus: CPU 9999 does not exist (online: "),
    ({"cpuset_cpus": "1-x"}, 'cgroups.cpuset_cpus: "1-x" is not a list'),
    ({"cpuset_mems": "77"}, "cgroups.cpuset_mems: memory node 77 does not exist"),
    ({"pids_limit": 0}, "cgroups.pids_limit: 0 is not a positive number"),
    ({"blkio_weight": 5}, "cgroups.blkio_weight: 5 is not between 10 and 1000"),
])
def test_bad_limits_are_one_line_naming_the_field(tree: FakeCgroup2, attached: list,
                                                  resources: dict, message: str) -> None:
    with pytest.raises(NsinitError) as info:
        make_manager(tree, **resources).create()
    assert str(info.value).startswith(f"cgroups: {message}")
    assert not (tree.root / "nsinit").exists()


# --- device rules --------------------------------------------------------------

def test_v1_device_writes_deny_all_first_then_allow_then_deny() -> None:
    resources = CgroupResources(allowed_devices=(DeviceConfig("c", "", 10, 229, "rw"),),
                                denied_devices=(DeviceConfig("c", "", 1, 9),))
    allow_all, rules = devices.container_rules((), resources)
    writes = devices.v1_writes(allow_all, rules)
    assert writes[0] == ("devices.deny", "a")
    assert ("devices.allow", "c *:* m") in writes and ("devices.allow", "c 136:* rwm") in writes
    assert writes[-2:] == [("devices.allow", "c 10:229 rw"), ("devices.deny", "c 1:9 rwm")]
    assert devices.v1_writes(*devices.container_rules((), CgroupResources(allow_all_devices=True))) == [
        ("devices.allow", "a")]


def test_a_config_device_is_allowed_once_after_the_defaults_and_a_fifo_not_at_all() -> None:
    nodes = (DeviceConfig("c", "/dev/null", 1, 3), DeviceConfig("c", "/dev/tty1", 4, 1),
             DeviceConfig("c", "/dev/tty1-again", 4, 1), DeviceConfig("p", "/dev/fifo", 0, 0),
             DeviceConfig("c", "/dev/tty1-ro", 4, 1, "r"))
    resources = CgroupResources(allowed_devices=(DeviceConfig("c", "", 10, 229, "rw"),))
    _, rules = devices.container_rules(nodes, resources)
    lines = [rule.v1_line() for rule in rules]
    defaults = [rule.v1_line() for rule in devices.DEFAULT_ALLOWED]
    assert lines == [*defaults, "c 4:1 rwm", "c 4:1 r", "c 10:229 rw"]  # 1:3 is a default already


def run_bpf(program: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """Interpret the few eBPF instructions bpf_program() emits."""
    access_bits = sum(devices._ACCESS_BITS[a] for a in access)
    ctx = [(access_bits << 16) | devices._TYPE_CODES[kind], major, minor]
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", program[i:i + 8]) for i in range(0, len(program), 8)]
    pc = 0
    for _ in range(10000):
        code, registers, off, imm = insns[pc]
        dst, src = registers & 0xF, registers >> 4
        pc += 1
        if code == devices._LDX_MEM_W:
            assert src == 1 and off % 4 == 0
            regs[dst] = ctx[off // 4]
        elif code == devices._ALU32_AND_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == devices._ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == devices._MOV64_X:
            regs[dst] = regs[src]
        elif code == devices._MOV64_K:
            regs[dst] = imm
        elif code == devices._JEQ_K:
            pc += off if regs[dst] == imm else 0
        elif code == devices._JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == devices._EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("program did not exit")


def test_bpf_program_decides_like_the_v1_rules() -> None:
    resources = CgroupResources(allowed_devices=(DeviceConfig("b", "", 7, -1, "r"),),
                                denied_devices=(DeviceConfig("c", "", 1, 9, "w"),))
    program = devices.bpf_program(*devices.container_rules((), resources))
    allowed = [("c", 1, 3, "rw"), ("c", 1, 3, "m"), ("c", 136, 5, "rw"), ("c", 10, 237, "m"),
               ("b", 8, 0, "m"), ("b", 7, 3, "r"), ("c", 1, 9, "r")]
    denied = [("c", 10, 237, "r"), ("c", 10, 237, "rw"), ("b", 8, 0, "r"), ("b", 7, 3, "rw"),
              ("c", 1, 9, "w"), ("c", 1, 9, "rw"), ("c", 4, 0, "w")]
    for case in allowed:
        assert run_bpf(program, *case) == 1, case
    for case in denied:
        assert run_bpf(program, *case) == 0, case
    everything = devices.bpf_program(True, [])
    assert run_bpf(everything, "b", 8, 0, "rwm") == 1
