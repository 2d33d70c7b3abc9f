"""cgroup v2: one directory in the unified hierarchy.

Differences from v1 that shape this file:
- A controller works in a cgroup only when every ancestor lists it in
  cgroup.subtree_control, so create() enables what it needs top-down.
- Limits have other files and units: memory.max, memory.swap.max (swap
  alone, not memory + swap), cpu.max ("QUOTA PERIOD"), cpu.weight (1..10000
  instead of shares), io.max, pids.max.
- No devices controller: an eBPF program decides (see devices.py).
- The core files need no controller: cgroup.procs, cgroup.freeze (freezer),
  cgroup.kill (kill every process at once, 5.14+), cgroup.events
  ("populated", "frozen").
"""
from __future__ import annotations

import os

from nsinit.cgroups import devices, fs
from nsinit.cgroups.membership import read_events
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
from nsinit.errors import NsinitError, describe_oserror

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.cgroups.notify import Notifier

# v1 name -> v2 name of the controller a field needs.
_V2_CONTROLLER = {"blkio": "io"}
# Enabled when available even if no limit asks for them: stats reads them.
_FOR_STATS = ("cpu", "memory", "pids", "io")
_THROTTLE_KEYS = {
    "blkio_throttle_read_bps_device": "rbps",
    "blkio_throttle_write_bps_device": "wbps",
    "blkio_throttle_read_iops_device": "riops",
    "blkio_throttle_write_iops_device": "wiops",
}


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100), as runc maps it."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000), as runc maps it."""
    return 1 + ((weight - 10) * 9999) // 990


class V2Manager(Manager):
    version = "v2"

    def __init__(self, paths: dict[str, str], *, mount: str = "", **kw: object) -> None:
        super().__init__(paths, **kw)  # type: ignore[arg-type]
        # The cgroup2 mount point: where enabling controllers starts.
        self.mount = mount or os.path.dirname(paths["unified"])

    @classmethod
    def for_mount(cls, mount: str, cgroup_path: str, *, resources: CgroupResources,
                  devices: tuple[DeviceConfig, ...], explicit: str) -> "V2Manager":
        path = os.path.join(mount, cgroup_path.lstrip("/"))
        return cls({"unified": path}, mount=mount, resources=resources, devices=devices,
                   explicit=explicit, owned=False)

    @property
    def path(self) -> str:
        return self.paths["unified"]

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- create ------------------------------------------------------------
    def available(self) -> list[str]:
        return (fs.read_optional(os.path.join(self.mount, "cgroup.controllers")) or "").split()

    def needed(self, r: CgroupResources) -> dict[str, str]:
        """controller -> the first field that needs it."""
        out: dict[str, str] = {}
        for name in configured_fields(r):
            controller = FIELD_CONTROLLERS[name]
            out.setdefault(_V2_CONTROLLER.get(controller, controller), name)
        return out

    def check(self, r: CgroupResources) -> None:
        check_resources(r)
        if r.memory_swappiness is not None:
            raise field_error("memory_swappiness", "cgroup v2 has no per-cgroup swappiness")
        if r.oom_kill_disable:
            raise field_error("oom_kill_disable", "cgroup v2 cannot disable the OOM killer")
        available = self.available()
        for controller, name in self.needed(r).items():
            if controller not in available:
                have = " ".join(available) or "none"
                raise field_error(name, f"the {controller} controller is not available "
                                  f"(cgroup v2 controllers here: {have})")

    def create(self) -> None:
        self.check(self.resources)
        allow_all, rules = devices.container_rules(self.devices, self.resources)
        self.clear_stale()
        with self.creating() as made:
            self.make_chain(self.mount, self.path, made)
            self.enable_controllers(self.resources)
            self.write_limits(self.resources, updating=False)
            if not allow_all:
                try:
                    devices.attach_device_program(self.path, allow_all, rules)
                except OSError as err:
                    raise NsinitError("cgroups", f"devices: {describe_oserror(err)}; cgroup v2 device rules need "
                                      "bpf(2) (CONFIG_CGROUP_BPF, CAP_SYS_ADMIN); set "
                                      "cgroups.allow_all_devices to run without them") from None

    def clear_stale(self) -> None:
        if not os.path.isdir(self.path):
            return
        pids = fs.procs_recursive(self.path)
        if pids and self.explicit:
            raise stale_error(self.explicit, os.path.relpath(self.path, self.mount), pids)
        if pids:
            self.kill_all()
        self.remove_dirs([self.path])

    def enable_controllers(self, r: CgroupResources) -> None:
        """+controller in cgroup.subtree_control of every ancestor, top-down.

        Those a limit needs must succeed; the ones only stats would read are
        best effort (an ancestor with processes of its own cannot delegate
        controllers: the "no internal processes" rule, EBUSY).
        """
        needed = self.needed(r)
        available = self.available()
        wanted = [c for c in available if c in needed or c in _FOR_STATS]
        relative = os.path.relpath(os.path.dirname(self.path), self.mount)
        ancestors = [self.mount]
        if relative != ".":
            for part in relative.split(os.sep):
                ancestors.append(os.path.join(ancestors[-1], part))
        for ancestor in ancestors:
            control = os.path.join(ancestor, "cgroup.subtree_control")
            enabled = (fs.read_optional(control) or "").split()
            for controller in wanted:
                if controller in enabled:
                    continue
                try:
                    fs.write_file(control, f"+{controller}")
                except OSError as err:
                    if controller in needed:
                        raise field_error(needed[controller], f"cannot enable the {controller} controller "
                                          f"in {ancestor}: {err.strerror}") from None
                    wanted.remove(controller)  # not below here either

    def write_limits(self, r: CgroupResources, *, updating: bool) -> None:
        if r.cpuset_cpus:
            self.write("cpuset_cpus", self.file("cpuset.cpus"), r.cpuset_cpus)
        if r.cpuset_mems:
            self.write("cpuset_mems", self.file("cpuset.mems"), r.cpuset_mems)
        if r.memory is not None:
            self.write("memory", self.file("memory.max"), "max" if r.memory == -1 else str(r.memory))
        if r.memory_swap is not None:
            # v1's memory_swap is memory + swap; v2 limits swap alone.
            swap = "max" if r.memory_swap == -1 else str(r.memory_swap - (r.memory or 0))
            self.write("memory_swap", self.file("memory.swap.max"), swap)
        if r.memory_reservation is not None:
            value = "max" if r.memory_reservation == -1 else str(r.memory_reservation)
            self.write("memory_reservation", self.file("memory.low"), value)
        if r.cpu_shares is not None:
            self.write("cpu_shares", self.file("cpu.weight"), str(shares_to_weight(r.cpu_shares)))
        if r.cpu_quota is not None or r.cpu_period is not None:
            quota = None if r.cpu_quota is None else ("max" if r.cpu_quota == -1 else str(r.cpu_quota))
            if r.cpu_period is None:
                cpu_max = quota  # one number: the kernel keeps the period
            else:
                if quota is None:
                    quota = (fs.read_optional(self.file("cpu.max")) or "max").split()[0]
                cpu_max = f"{quota} {r.cpu_period}"
            self.write("cpu_quota" if r.cpu_quota is not None else "cpu_period", self.file("cpu.max"), cpu_max)  # type: ignore[arg-type]
        if r.pids_limit is not None:
            self.write("pids_limit", self.file("pids.max"), "max" if r.pids_limit == -1 else str(r.pids_limit))
        if r.blkio_weight is not None:
            if os.path.exists(self.file("io.bfq.weight")):
                self.write("blkio_weight", self.file("io.bfq.weight"), str(r.blkio_weight))
            elif os.path.exists(self.file("io.weight")):
                self.write("blkio_weight", self.file("io.weight"), str(blkio_weight_to_io_weight(r.blkio_weight)))
            else:
                raise field_error("blkio_weight", "this host's I/O schedulers have no weights "
                                  "(no io.weight or io.bfq.weight)")
        for field, key in _THROTTLE_KEYS.items():
            for line in getattr(r, field):
                device, _, rate = line.partition(" ")
                self.write(field, self.file("io.max"), f"{device} {key}={rate.strip()}")
        for size, limit in r.hugetlb_limit:
            path = self.file(f"hugetlb.{size}.max")
            if not os.path.exists(path):
                raise field_error("hugetlb_limit", f"no {size} huge pages on this host ({os.path.basename(path)} missing)")
            self.write("hugetlb_limit", path, str(limit))

    # -- processes ---------------------------------------------------------
    def add(self, pid: int) -> None:
        self.refuse_if_frozen()
        self.add_to(self.path, pid)


    def populated(self) -> bool:
        events = read_events(self.file("cgroup.events"))
        if "populated" in events:
            return events["populated"] != 0
        return bool(fs.procs_recursive(self.path))

    def kill_all(self) -> None:
        """cgroup.kill when the kernel has it (5.14+): one write kills the
        whole subtree, race-free.  Else freeze, SIGKILL each, thaw: unlike
        v1, a v2-frozen task dies of SIGKILL while frozen."""
        kill_file = self.file("cgroup.kill")
        for _round in range(3):
            if not self.populated():
                return
            if os.path.exists(kill_file):
                fs.write_file(kill_file, "1")
            else:
                frozen = self.try_freeze()
                fs.kill_pids(fs.procs_recursive(self.path))
                if frozen:
                    fs.write_file(self.file("cgroup.freeze"), "0")
            if fs.wait_until(lambda: not self.populated(), fs.EMPTY_TIMEOUT):
                return

    def try_freeze(self) -> bool:
        try:
            self.set_frozen(True)
            return True
        except (OSError, NsinitError):
            return False  # killing unfrozen still works, it just may race with forks

    def destroy(self) -> None:
        if not self.owned:
            return
        if not self.removed_if_empty():
            if os.path.isdir(self.path):
                self.kill_all()
            self.remove_dirs([self.path])
        self.remove_parents_made()

    # -- freezer -----------------------------------------------------------
    def set_frozen(self, frozen: bool) -> None:
        fs.write_file(self.file("cgroup.freeze"), "1" if frozen else "0")
        wanted = 1 if frozen else 0
        if not fs.wait_until(lambda: read_events(self.file("cgroup.events")).get("frozen") == wanted,
                             fs.FREEZE_TIMEOUT):
            if frozen:
                fs.write_file(self.file("cgroup.freeze"), "0")
                raise NsinitError("cgroups", f"the container did not freeze within {fs.FREEZE_TIMEOUT:g} s; "
                                  "thawed it again")
            raise NsinitError("cgroups", f"the container did not thaw within {fs.FREEZE_TIMEOUT:g} s")

    def freeze(self) -> None:
        self.set_frozen(True)

    def thaw(self) -> None:
        self.set_frozen(False)

    # -- live changes, reports ---------------------------------------------
    def update(self, resources: CgroupResources) -> dict[str, object]:
        self.check(resources)
        self.enable_controllers(resources)
        self.write_limits(resources, updating=True)
        return changed_fields(resources)

    def stats(self) -> dict[str, Any]:
        from nsinit.cgroups import stats

        return stats.v2_stats(self.path)

    def notify_oom(self) -> Notifier:
        from nsinit.cgroups import notify

        return notify.V2Oom(self.path)

    def notify_memory_pressure(self, level: str) -> Notifier:
        from nsinit.cgroups import notify

        return notify.V2Pressure(self.path, notify.check_level(level))
