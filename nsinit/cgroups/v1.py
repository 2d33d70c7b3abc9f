"""cgroup v1: one directory per hierarchy, limits in per-controller files.

The container gets ``<mount>/<path>`` in every mounted v1 hierarchy (named
ones like name=systemd excepted), as libcontainer's fs driver did, so all of
its processes are accounted everywhere and ``stats`` can read any controller.
"""
from __future__ import annotations

import os

from nsinit.cgroups import devices, fs, layout
from nsinit.cgroups.manager import (
    FIELD_CONTROLLERS,
    Manager,
    changed_fields,
    check_resources,
    configured_fields,
    field_error,
    stale_error,
)
from nsinit.config.model import CgroupResources, DeviceConfig
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.cgroups.notify import Notifier

_THROTTLE_FILES = {
    "blkio_throttle_read_bps_device": "blkio.throttle.read_bps_device",
    "blkio_throttle_write_bps_device": "blkio.throttle.write_bps_device",
    "blkio_throttle_read_iops_device": "blkio.throttle.read_iops_device",
    "blkio_throttle_write_iops_device": "blkio.throttle.write_iops_device",
}


class V1Manager(Manager):
    version = "v1"

    def __init__(self, paths: dict[str, str], *, mounts: dict[str, str] | None = None,
                 cgroup_path: str = "", **kw: object) -> None:
        super().__init__(paths, **kw)  # type: ignore[arg-type]
        self.mounts = mounts or {}          # controller -> hierarchy mount (create only)
        self.cgroup_path = cgroup_path

    @classmethod
    def for_layout(cls, lay: layout.Layout, cgroup_path: str, *, resources: CgroupResources,
                   devices: tuple[DeviceConfig, ...], explicit: str) -> "V1Manager":
        paths = {name: layout.hierarchy_path(mount, cgroup_path) for name, mount in lay.v1.items()}
        return cls(paths, mounts=dict(lay.v1), cgroup_path=cgroup_path, resources=resources,
                   devices=devices, explicit=explicit, owned=False)

    # -- create ------------------------------------------------------------
    def create(self) -> None:
        self.check(self.resources, creating=True)
        allow_all, rules = devices.container_rules(self.devices, self.resources)
        if "devices" not in self.paths and not allow_all:
            raise NsinitError("cgroups", "the devices controller is not mounted, so device access cannot be "
                              "restricted; set cgroups.allow_all_devices to run without that")
        self.clear_stale()
        with self.creating() as made:
            for directory in self.dirs():
                mount = self.mount_of(directory)
                self.make_chain(mount, directory, made)
                if directory == self.paths.get("cpuset"):
                    self.init_cpuset_chain(mount, directory)
            self.write_limits(self.resources, updating=False)
            self.write_device_rules(devices.v1_writes(allow_all, rules))

    def write_device_rules(self, writes: list[tuple[str, str]]) -> None:
        """The rules in order, each a write of its own; a run of lines for
        the same file through one open (deny "a", then a dozen allows)."""
        runs: list[tuple[str, list[str]]] = []
        for name, line in writes:
            if runs and runs[-1][0] == name:
                runs[-1][1].append(line)
            else:
                runs.append((name, [line]))
        for name, lines in runs:
            try:
                fs.write_lines(os.path.join(self.paths["devices"], name), lines)
            except OSError as err:
                line = err.line if isinstance(err, fs.LineRefused) else lines[0]
                raise NsinitError("cgroups", f"devices: cannot write \"{line}\" to {name}: "
                                  f"{err.strerror}") from None

    def mount_of(self, directory: str) -> str:
        for name, path in self.paths.items():
            if path == directory:
                return self.mounts[name]
        raise KeyError(directory)

    def check(self, r: CgroupResources, *, creating: bool) -> None:
        check_resources(r)
        for name in configured_fields(r):
            controller = FIELD_CONTROLLERS[name]
            if controller not in self.paths:
                raise field_error(name, f"the {controller} controller is not mounted on this host")
        memory = self.paths.get("memory")
        if r.memory_swap is not None and memory is not None:
            # The file exists only with swap accounting on (swapaccount=1).
            probe = memory if os.path.isdir(memory) else self.mounts.get("memory", memory)
            if not os.path.exists(os.path.join(probe, "memory.memsw.limit_in_bytes")):
                raise field_error("memory_swap", "swap accounting is off on this host "
                                  "(no memory.memsw.limit_in_bytes; boot with swapaccount=1)")

    def clear_stale(self) -> None:
        """A directory of our name left by a SIGKILLed nsinit goes first.

        Left alone, it would keep the old limits and device rules (and maybe
        processes) and the mkdir would fail.
        """
        existing = [d for d in self.dirs() if os.path.isdir(d)]
        if not existing:
            return
        pids = sorted({pid for d in existing for pid in fs.procs_recursive(d)})
        if pids and self.explicit:
            raise stale_error(self.explicit, self.cgroup_path, pids)
        if pids:
            self.kill_all(existing)
        self.remove_dirs(existing)

    def init_cpuset_chain(self, mount: str, directory: str) -> None:
        """A new cpuset cgroup starts with no CPUs and no memory nodes, and
        adding a task to it fails (ENOSPC): each level of the chain gets its
        parent's, top-down.

        Every level, not only those this creation made: a concurrent creation
        may have just made the shared parent and not filled it yet (found by
        the bench running two lanes of containers).  Done once the whole
        chain exists, since our own cgroup keeps its ancestors from removal.
        """
        current = mount
        for part in os.path.relpath(directory, mount).split(os.sep):
            current = os.path.join(current, part)
            self.init_cpuset(current)

    def init_cpuset(self, directory: str) -> None:
        """Copy the parent's cpus and mems into ``directory`` if it has none."""
        parent = os.path.dirname(directory)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if fs.read_file(os.path.join(directory, name)).strip():
                continue
            value = fs.read_file(os.path.join(parent, name)).strip()
            fs.write_file(os.path.join(directory, name), value)

    def write_limits(self, r: CgroupResources, *, updating: bool) -> dict[str, object]:
        """Write every limit ``r`` sets; returns the ones implied besides (memory_swap)."""
        cpuset = self.paths.get("cpuset")
        if r.cpuset_cpus:
            self.write("cpuset_cpus", os.path.join(cpuset, "cpuset.cpus"), r.cpuset_cpus)  # type: ignore[arg-type]
        if r.cpuset_mems:
            self.write("cpuset_mems", os.path.join(cpuset, "cpuset.mems"), r.cpuset_mems)  # type: ignore[arg-type]
        implied = self.write_memory(r, updating)
        cpu = self.paths.get("cpu")
        if r.cpu_shares is not None:
            self.write("cpu_shares", os.path.join(cpu, "cpu.shares"), str(r.cpu_shares))  # type: ignore[arg-type]
        # Period before quota: the kernel checks quota against the period it has.
        if r.cpu_period is not None:
            self.write("cpu_period", os.path.join(cpu, "cpu.cfs_period_us"), str(r.cpu_period))  # type: ignore[arg-type]
        if r.cpu_quota is not None:
            self.write("cpu_quota", os.path.join(cpu, "cpu.cfs_quota_us"), str(r.cpu_quota))  # type: ignore[arg-type]
        if r.pids_limit is not None:
            value = "max" if r.pids_limit == -1 else str(r.pids_limit)
            self.write("pids_limit", os.path.join(self.paths["pids"], "pids.max"), value)
        self.write_blkio(r)
        for size, limit in r.hugetlb_limit:
            path = os.path.join(self.paths["hugetlb"], f"hugetlb.{size}.limit_in_bytes")
            if not os.path.exists(path):
                raise field_error("hugetlb_limit", f"no {size} huge pages on this host ({os.path.basename(path)} missing)")
            self.write("hugetlb_limit", path, str(limit))
        return implied

    def write_memory(self, r: CgroupResources, updating: bool) -> dict[str, object]:
        directory = self.paths.get("memory")
        implied: dict[str, object] = {}
        if directory is None:
            return implied
        limit_file = os.path.join(directory, "memory.limit_in_bytes")
        swap_file = os.path.join(directory, "memory.memsw.limit_in_bytes")
        memory, swap = r.memory, r.memory_swap
        if updating and memory is not None and swap is None and os.path.exists(swap_file):
            # memsw must stay >= the memory limit.  A container without swap
            # (memsw == memory) keeps having none; an unlimited memory makes
            # memsw unlimited too (as runc does).
            current_memory = fs.read_int(limit_file)
            current_swap = fs.read_int(swap_file)
            if memory == -1:
                swap = -1
            elif current_swap == current_memory:
                swap = memory
            if swap is not None:
                implied["memory_swap"] = swap
        writes = []
        if memory is not None:
            writes.append(("memory", limit_file, str(memory)))
        if swap is not None:
            writes.append(("memory_swap", swap_file, str(swap)))
        if memory is not None and swap is not None and updating:
            # The kernel wants memory <= memsw after every single write, so
            # growing writes memsw first and shrinking writes memory first.
            if swap == -1 or fs.read_int(limit_file) < swap:
                writes.reverse()
        for field, path, value in writes:
            self.write(field, path, value)
        if r.memory_reservation is not None:
            self.write("memory_reservation", os.path.join(directory, "memory.soft_limit_in_bytes"),
                       str(r.memory_reservation))
        if r.memory_swappiness is not None:
            self.write("memory_swappiness", os.path.join(directory, "memory.swappiness"), str(r.memory_swappiness))
        if r.oom_kill_disable is not None:
            self.write("oom_kill_disable", os.path.join(directory, "memory.oom_control"),
                       "1" if r.oom_kill_disable else "0")
        return implied

    def write_blkio(self, r: CgroupResources) -> None:
        directory = self.paths.get("blkio")
        if directory is None:
            return
        if r.blkio_weight is not None:
            # CFQ had blkio.weight; with BFQ it is blkio.bfq.weight; with
            # neither scheduler there is no proportional weight at all.
            for name in ("blkio.weight", "blkio.bfq.weight"):
                path = os.path.join(directory, name)
                if os.path.exists(path):
                    self.write("blkio_weight", path, str(r.blkio_weight))
                    break
            else:
                raise field_error("blkio_weight", "this host's I/O schedulers have no weights "
                                  "(no blkio.weight or blkio.bfq.weight)")
        for field, name in _THROTTLE_FILES.items():
            for line in getattr(r, field):
                self.write(field, os.path.join(directory, name), line)

    # -- processes ---------------------------------------------------------
    def add(self, pid: int) -> None:
        self.refuse_if_frozen()
        for directory in self.dirs():
            self.add_to(directory, pid)


    def kill_all(self, directories: list[str]) -> None:
        """SIGKILL every process, frozen first so none can fork meanwhile.

        A v1-frozen task does not die until thawed, hence freeze, kill, thaw.
        Bounded: a process stuck in D state is reported by the rmdir after.
        """
        freezer = self.paths.get("freezer")
        for _round in range(3):
            pids = sorted({pid for d in directories for pid in fs.procs_recursive(d)})
            if not pids:
                return
            frozen = freezer is not None and self.try_freeze(freezer)
            fs.kill_pids(pids)
            if frozen:
                fs.write_file(os.path.join(freezer, "freezer.state"), "THAWED")  # type: ignore[arg-type]
            if fs.wait_until(lambda: not any(fs.procs_recursive(d) for d in directories), fs.EMPTY_TIMEOUT):
                return

    def try_freeze(self, freezer: str) -> bool:
        try:
            self.set_freezer("FROZEN")
            return True
        except (OSError, NsinitError):
            return False  # killing unfrozen still works, it just may race with forks

    def destroy(self) -> None:
        if not self.owned:
            return
        if not self.removed_if_empty():
            existing = [d for d in self.dirs() if os.path.isdir(d)]
            if existing:
                self.kill_all(existing)
            self.remove_dirs(self.dirs())
        self.remove_parents_made()

    # -- freezer -----------------------------------------------------------
    def set_freezer(self, wanted: str) -> None:
        freezer = self.paths.get("freezer")
        if freezer is None:
            raise NsinitError("cgroups", "the freezer controller is not mounted on this host")
        state_file = os.path.join(freezer, "freezer.state")
        fs.write_file(state_file, wanted)
        # Reading freezer.state is what advances FREEZING to FROZEN.
        if not fs.wait_until(lambda: fs.read_file(state_file).strip() == wanted, fs.FREEZE_TIMEOUT):
            if wanted == "FROZEN":
                fs.write_file(state_file, "THAWED")
                raise NsinitError("cgroups", f"the container did not freeze within {fs.FREEZE_TIMEOUT:g} s "
                                  "(a task in uninterruptible sleep?); thawed it again")
            raise NsinitError("cgroups", f"the container did not thaw within {fs.FREEZE_TIMEOUT:g} s")

    def freeze(self) -> None:
        self.set_freezer("FROZEN")

    def thaw(self) -> None:
        self.set_freezer("THAWED")

    # -- live changes, reports ---------------------------------------------
    def update(self, resources: CgroupResources) -> dict[str, object]:
        self.check(resources, creating=False)
        implied = self.write_limits(resources, updating=True)
        return {**changed_fields(resources), **implied}

    def stats(self) -> dict[str, Any]:
        from nsinit.cgroups import stats

        return stats.v1_stats(self.paths)

    def notify_oom(self) -> Notifier:
        from nsinit.cgroups import notify

        return notify.V1Oom(self.memory_dir("oom"))

    def notify_memory_pressure(self, level: str) -> Notifier:
        from nsinit.cgroups import notify

        return notify.V1Pressure(self.memory_dir("memory pressure"), notify.check_level(level))

    def memory_dir(self, what: str) -> str:
        memory = self.paths.get("memory")
        if memory is None:
            raise NsinitError(what, "the memory controller is not mounted on this host")
        return memory
