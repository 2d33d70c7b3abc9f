"""The mount(2) calls the mount steps will make for a config, without making them.

``nsinit explain`` shows these.  They come from the same decisions and flag
rules the steps use (``rootfs.mount_kind``, ``new_mount_flags``,
``bind_flags``, ``remount_flags``, ``tmpfs_data``, ``MASK_DIR_FLAGS``, the
hierarchies of ``host_cgroup_hierarchies``), so a change there changes what
explain says; what only the kernel knows at run time (the mode of a
destination directory, the flags a bind inherits) is read from the host
without changing it: the same kernel answers the container.

Not imported by the child: nothing here runs while a container is made.
"""
from __future__ import annotations

import os
import stat

from nsinit import mountinfo
from nsinit.config import names
from nsinit.mount import rootfs as steps
from nsinit.mount.flags import (
    ATIME_FLAGS,
    BIND_REMOUNT_FLAGS,
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_SLAVE,
    MS_STRICTATIME,
)
from nsinit.mount.paths import inside, resolve_in_root
from nsinit.record import field, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.config.model import Config, MountConfig

# Per-mount flags as mountinfo shows them ("ro", "nosuid", ...).
_FLAG_NAMES = sorted(((value, name) for name, value in vars(names).items()
                      if name.startswith("MS_") and name != "MS_PROPAGATION" and isinstance(value, int)))


# mountinfo's words for per-mount flags, in the kernel's order (fs/proc_namespace.c).
_OPTION_WORDS = ((names.MS_NOSUID, "nosuid"), (names.MS_NODEV, "nodev"), (names.MS_NOEXEC, "noexec"),
                 (names.MS_NOATIME, "noatime"), (names.MS_NODIRATIME, "nodiratime"),
                 (names.MS_RELATIME, "relatime"), (names.MS_NOSYMFOLLOW, "nosymfollow"))


def flag_text(flags: int) -> str:
    """``MS_NOSUID|MS_NODEV`` for a flags word; "0" for none."""
    parts = [name for value, name in _FLAG_NAMES if value and flags & value == value]
    left = flags
    for value, _name in _FLAG_NAMES:
        if flags & value == value:
            left &= ~value
    if left:
        parts.append(hex(left))
    return "|".join(parts) or "0"


@record(frozen=True)
class Call:
    """One system call of a mount step; ``target`` is a path in the container
    (the step mounts onto /proc/self/fd/N of that path opened inside the rootfs)."""

    syscall: str                   # "mount", "umount2", "pivot_root", "chroot", "mknod", "symlink"
    target: str
    source: str | None = None
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    note: str = ""                 # a condition or a value only the run decides

    def text(self) -> str:
        if self.syscall == "mount":
            return (f"mount({_quote(self.source)}, {_quote(self.target)}, {_quote(self.fstype)}, "
                    f"{flag_text(self.flags)}, {_quote(self.data)})")
        if self.syscall == "umount2":
            return f"umount2({_quote(self.target)}, MNT_DETACH)"
        if self.syscall == "pivot_root":
            return 'pivot_root(".", ".")'
        if self.syscall == "mknod":
            return f"mknod({_quote(self.target)}, {self.data})"
        if self.syscall == "symlink":
            return f"symlink({_quote(self.source)}, {_quote(self.target)})"
        return f"{self.syscall}({_quote(self.target)})"


@record(frozen=True)
class MountPoint:
    """A line of the mount table the container will see (its /proc/self/mountinfo)."""

    target: str
    fstype: str
    flags: int                     # per-mount MS_* flags, as statvfs reports them
    why: str = ""

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    def options(self) -> str:
        """The per-mount options as mountinfo's sixth field spells them."""
        words = ["ro" if self.readonly else "rw"]
        words += [word for bit, word in _OPTION_WORDS if self.flags & bit]
        return ",".join(words)


@record
class Plan:
    """Calls by child step name, in order, and the mount table they leave."""

    steps: list[tuple[str, list[Call]]] = field(default_factory=list)
    table: list[MountPoint] = field(default_factory=list)

    def add(self, step: str, call: Call) -> None:
        if not self.steps or self.steps[-1][0] != step:
            self.steps.append((step, []))
        self.steps[-1][1].append(call)

    def covering(self, path: str) -> MountPoint | None:
        """The deepest planned mount holding ``path``."""
        best = None
        for point in self.table:
            if path == point.target or path.startswith(point.target.rstrip("/") + "/"):
                if best is None or len(point.target) >= len(best.target):
                    best = point
        return best


def _quote(value: str | None) -> str:
    return "NULL" if value is None else '"' + value + '"'


def _host_mount_of(path: str) -> tuple[str, str, int]:
    """(fstype, mount point, per-mount flags) of the host mount holding ``path``."""
    fstype, best = "", ""
    for _dev, _root, point, kind, _opts in mountinfo.read():
        under = point == "/" or path == point or path.startswith(point.rstrip("/") + "/")
        if under and len(point) >= len(best):  # the last of equals: it is mounted over the others
            fstype, best = kind, point
    try:
        flags = steps.mount_flags(path)
    except OSError:
        flags = 0
    return fstype, best, flags


def _as_statvfs(flags: int) -> int:
    """The per-mount flags a new mount made with ``flags`` reports (statvfs):
    no atime flag (and not strictatime) means the kernel's default, relatime."""
    per_mount = flags & (BIND_REMOUNT_FLAGS & ~MS_STRICTATIME)
    if not flags & ATIME_FLAGS:
        per_mount |= MS_RELATIME
    return per_mount


def plan_mounts(config: Config, *, tty: bool | None = None) -> Plan:
    """What prepare_root, mount_all, create_devices, pivot_to_rootfs and
    finish_rootfs will do for ``config``, in that order."""
    plan = Plan()
    rootfs = steps.rootfs_path(config)
    _prepare_root(plan, rootfs)
    for entry in config.mounts:
        _mount_entry(plan, config, rootfs, entry)
    _devices(plan, config, bool(config.tty if tty is None else tty))
    _pivot(plan, config, rootfs)
    _finish(plan, config, rootfs)
    return plan


def _prepare_root(plan: Plan, rootfs: str) -> None:
    plan.add("prepare rootfs", Call("mount", "/", None, None, MS_PRIVATE | MS_REC))
    plan.add("prepare rootfs", Call("mount", rootfs, rootfs, None, MS_BIND | MS_REC))
    fstype, _point, flags = _host_mount_of(rootfs)
    plan.table.append(MountPoint("/", fstype, flags, "the rootfs, bound onto itself"))
    base = rootfs.rstrip("/") + "/"
    for _dev, _root, point, sub_fstype, _opts in mountinfo.read():
        if point.startswith(base):  # MS_REC brings the rootfs's own submounts along
            plan.table.append(MountPoint(point[len(base) - 1:], sub_fstype, steps.mount_flags(point),
                                         "a host mount inside the rootfs (MS_REC)"))


def _mount_entry(plan: Plan, config: Config, rootfs: str, m: MountConfig) -> None:
    kind = steps.mount_kind(config, m)
    target = inside(m.destination)
    data = m.data or None
    if kind == "bind":
        _bind(plan, m.source, target, m.flags)
    elif kind == "host sysfs":
        _bind(plan, "/sys", target, steps.host_sysfs_flags(m.flags),
              note="a user namespace without its own network namespace may not mount sysfs")
        plan.add("mounts", Call("mount", target + "/*", None, None, MS_BIND | MS_RDONLY,
                                note="each host mount below /sys remounted read-only"))
    elif kind == "tmpfs":
        if not steps._has_option(data, "mode"):
            data = steps.tmpfs_data(data, _mode_of(rootfs, target))
        _new(plan, m.source or "tmpfs", target, "tmpfs", m.flags, data)
    elif kind == "mqueue":
        note = "skipped if the kernel refuses it in this user namespace" if config.has_namespace("NEWUSER") else ""
        _new(plan, m.source or "mqueue", target, "mqueue", m.flags, data, note=note)
    elif kind == "cgroup":
        _cgroup(plan, rootfs, target, m.device, m.flags, data)
    else:
        _new(plan, m.source or m.device, target, m.device, m.flags, data)
    if m.propagation and kind != "cgroup":
        plan.add("mounts", Call("mount", target, None, None, m.propagation))


def _new(plan: Plan, source: str, target: str, fstype: str, flags: int, data: str | None,
         note: str = "") -> None:
    flags = steps.new_mount_flags(flags)
    plan.add("mounts", Call("mount", target, source, fstype, flags, data, note))
    plan.table.append(MountPoint(target, fstype, _as_statvfs(flags), f"a new {fstype}"))


def _bind(plan: Plan, source: str, target: str, flags: int, step: str = "mounts", note: str = "") -> None:
    plan.add(step, Call("mount", target, source, None, steps.bind_flags(flags), note=note))
    fstype, _point, current = _host_mount_of(source)
    extra = flags & BIND_REMOUNT_FLAGS
    if extra:
        # The bind takes the source mount's flags; the remount adds ours.
        plan.add(step, Call("mount", target, None, None, steps.remount_flags(extra, current)))
    flags_now = steps.remount_flags(extra, current) & BIND_REMOUNT_FLAGS if extra else current
    plan.table.append(MountPoint(target, fstype, _as_statvfs(flags_now), f"a bind of {source}"))


def _cgroup(plan: Plan, rootfs: str, target: str, device: str, flags: int, data: str | None) -> None:
    # mount_cgroup's shapes: cgroup2 read-only, or (v1) a tmpfs with a
    # read-only bind of the container's own cgroup in each host hierarchy.
    hierarchies = steps.host_cgroup_hierarchies(rootfs)
    if device == "cgroup2" or not any(h[2] == "cgroup" for h in hierarchies):
        _new(plan, "cgroup2", target, "cgroup2", flags | MS_RDONLY, data)
        return
    safe = MS_NOSUID | MS_NODEV | MS_NOEXEC
    _new(plan, "cgroup", target, "tmpfs", (flags | safe) & ~MS_RDONLY, "mode=755")
    for name, _source, fstype in hierarchies:
        plan.add("mounts", Call("mount", f"{target}/{name}", f"<the container's cgroup in {name}>", None,
                                MS_BIND, note="then remounted MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC"))
        plan.table.append(MountPoint(f"{target}/{name}", fstype, _as_statvfs(MS_RDONLY | safe),
                                     "the container's own cgroup"))


def _mode_of(rootfs: str, target: str) -> int:
    """The destination directory's mode, which mount_tmpfs keeps (0755 if missing)."""
    try:
        return stat.S_IMODE(os.stat(resolve_in_root(rootfs, target)).st_mode)
    except OSError:
        return 0o755  # open_in_root makes a missing destination 0755


def _devices(plan: Plan, config: Config, tty: bool) -> None:
    userns = config.has_namespace("NEWUSER")
    for device in config.devices:
        target = inside(device.path)
        if userns and device.type != "p":
            _bind(plan, target, target, 0, step="devices",
                  note="mknod is refused in a user namespace: the host's node is bound")
        else:
            node = f"{device.type} {device.major}:{device.minor}, mode {device.file_mode:o}, " \
                   f"owner {device.uid}:{device.gid}"
            plan.add("devices", Call("mknod", target, data=node))
    plan.add("devices", Call("symlink", "/dev/ptmx", "pts/ptmx"))
    if tty:
        plan.add("devices", Call("mount", "/dev/console", "<the pty slave>", None, MS_BIND))
        plan.table.append(MountPoint("/dev/console", "devpts", _as_statvfs(MS_NOSUID | MS_NOEXEC),
                                     "the container's terminal"))


def _pivot(plan: Plan, config: Config, rootfs: str) -> None:
    if config.no_pivot_root:
        plan.add("pivot_root", Call("mount", "/", rootfs, None, MS_MOVE))
        plan.add("pivot_root", Call("chroot", "."))
        return
    plan.add("pivot_root", Call("pivot_root", "."))
    plan.add("pivot_root", Call("mount", ".", None, None, MS_SLAVE | MS_REC))
    plan.add("pivot_root", Call("umount2", ".", flags=MNT_DETACH))


def _finish(plan: Plan, config: Config, rootfs: str) -> None:
    if config.readonlyfs:
        root = plan.table[0]
        plan.add("restrict paths", Call("mount", "/", None, None, steps.remount_flags(MS_RDONLY, root.flags)))
        plan.table[0] = MountPoint("/", root.fstype, root.flags | MS_RDONLY, root.why + ", read-only")
    for path in config.readonly_paths:
        if _exists(plan, rootfs, path) is None:
            continue
        holder = plan.covering(path)
        current = holder.flags if holder else 0
        plan.add("restrict paths", Call("mount", path, path, None, MS_BIND | MS_REC))
        plan.add("restrict paths", Call("mount", path, None, None, steps.remount_flags(MS_RDONLY, current)))
        plan.table.append(MountPoint(path, holder.fstype if holder else "", current | MS_RDONLY, "read-only"))
    for path in config.mask_paths:
        is_dir = _exists(plan, rootfs, path)
        if is_dir is None:
            continue
        if is_dir:
            plan.add("restrict paths", Call("mount", path, "tmpfs", "tmpfs", steps.MASK_DIR_FLAGS))
            plan.table.append(MountPoint(path, "tmpfs", _as_statvfs(steps.MASK_DIR_FLAGS),
                                         "masked: an empty read-only tmpfs"))
        else:
            holder = plan.covering("/dev/null")
            plan.add("restrict paths", Call("mount", path, "/dev/null", None, MS_BIND))
            plan.table.append(MountPoint(path, holder.fstype if holder else "", holder.flags if holder else 0,
                                         "masked: /dev/null bound over it"))


def _exists(plan: Plan, rootfs: str, path: str) -> bool | None:
    """Is ``path`` a directory (True), a file (False) or absent (None) in the container?

    Under the container's proc or sysfs the host's answer is the container's
    (the same kernel); anywhere else the rootfs answers.
    """
    holder = plan.covering(path)
    if holder is not None and holder.fstype in ("proc", "sysfs") and holder.target in ("/proc", "/sys"):
        host = "/" + holder.target.strip("/") + path[len(holder.target):]
    else:
        host = resolve_in_root(rootfs, path)
    try:
        return stat.S_ISDIR(os.stat(host).st_mode)
    except OSError:
        return None
