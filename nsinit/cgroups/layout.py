"""Which cgroup hierarchies this host has, and where they are mounted.

Three layouts exist in the wild:

- v1 ("legacy"): one hierarchy per controller (or per group of co-mounted
  controllers, e.g. ``cpu,cpuacct``) under /sys/fs/cgroup/<name>.
- hybrid: v1 controllers plus a cgroup2 mount (usually
  /sys/fs/cgroup/unified) that holds no controllers, only the core files
  (cgroup.procs, cgroup.freeze, cgroup.kill, cgroup.events).  systemd uses it
  for process tracking.
- v2 ("unified"): one cgroup2 hierarchy at /sys/fs/cgroup with every
  controller.

The layout is read from /proc/self/mountinfo, not guessed from directory
names: distributions mount hierarchies at different places.
"""
from __future__ import annotations

import os

from nsinit import mountinfo
from nsinit.record import field, record

CPU_ONLINE = "/sys/devices/system/cpu/online"
NODE_ONLINE = "/sys/devices/system/node/online"

# v1 controllers the kernel knows; anything else in a cgroup mount's super
# options (rw, relatime, clone_children, name=..., xattr) is not a controller.
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc",
})


@record
class Layout:
    """Which cgroup hierarchies this host mounts, and where."""
    # controller -> mount point of its v1 hierarchy (co-mounted controllers share one)
    v1: dict[str, str] = field(default_factory=dict)
    unified: str | None = None   # mount point of the cgroup2 hierarchy, if any

    @property
    def mode(self) -> str:
        if self.v1:
            return "hybrid" if self.unified else "v1"
        return "v2" if self.unified else "none"


def parse_mountinfo(text: str) -> Layout:
    layout = Layout()
    # Prefer mounts of a hierarchy's root ("/" in field 4): a mount of a
    # subtree (cgroup namespace, bind mount) shows only part of it.
    roots: dict[str, str] = {}
    for _dev, root, mount_point, fstype, super_options in mountinfo.parse(text):
        if fstype == "cgroup2":
            if layout.unified is None or (roots.get("unified") != "/" and root == "/"):
                layout.unified, roots["unified"] = mount_point, root
        elif fstype == "cgroup":
            for option in super_options.split(","):
                if option in V1_CONTROLLERS:
                    if option not in layout.v1 or (roots.get(option) != "/" and root == "/"):
                        layout.v1[option], roots[option] = mount_point, root
    return layout


def detect(path: str = mountinfo.MOUNTINFO) -> Layout:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def parse_list(text: str) -> list[int]:
    """The kernel's cpu/node list grammar ("0-3,5") as sorted numbers."""
    numbers: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if dash:
            numbers.update(range(int(first), int(last) + 1))
        else:
            numbers.add(int(first))
    return sorted(numbers)


def online(kind: str) -> str:
    """The online CPU list or memory-node list, e.g. "0-1" ("0" when unknown)."""
    path = CPU_ONLINE if kind == "cpu" else NODE_ONLINE
    try:
        with open(path, encoding="utf-8") as f:  # not ascii: see cgroups/fs.read_file
            return f.read().strip()
    except FileNotFoundError:
        return "0"  # no NUMA sysfs: one node, node 0


def hierarchy_path(mount_point: str, cgroup_path: str) -> str:
    """The directory of ``cgroup_path`` (absolute in the hierarchy) under its mount."""
    return os.path.join(mount_point, cgroup_path.lstrip("/"))
