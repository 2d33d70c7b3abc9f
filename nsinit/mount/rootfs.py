"""The mount steps of the container's init: from the host's tree to its own.

Order (the caller runs them in this order, in the child, inside its new
mount namespace): ``prepare_root`` -> ``mount_all`` -> ``create_devices``
(devices.py) -> ``pivot_to_rootfs`` -> ... -> ``finish_rootfs``.

Every mount destination inside the rootfs is opened with ``open_in_root`` and
mounted onto ``/proc/self/fd/N`` of that O_PATH fd (runc's technique): the
kernel mounts on the very inode that was resolved inside the rootfs, so a
symlink swapped in between the check and the mount cannot send the mount to
the host.  Destinations are resolved again for every mount, because an
earlier mount can change what a path means (runc 3c25c9b9c, 2015).

All imports are at the top and stdlib-only: after pivot_root the host's
Python files are out of reach.
"""
from __future__ import annotations

import errno
import os
import stat
import sys

from nsinit import _native, mountinfo
from nsinit.errors import NsinitError, SyscallError
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
    MS_REMOUNT,
    MS_SLAVE,
    MS_STRICTATIME,
    OPERATION_FLAGS,
    STATVFS_TO_MS,
)
from nsinit.mount.paths import check_directory, fd_path, inside, open_in_root, resolve_in_root

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from types import ModuleType

    from nsinit.config.model import Config, MountConfig

_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


# --- prepare -----------------------------------------------------------------

def prepare_root(config: Config) -> None:
    """Cut propagation to the host and make the rootfs a mount point."""
    # Private, recursively: without it every mount below would propagate to
    # the host's shared "/" (systemd makes "/" shared), leaking container
    # mounts into the host and making them unremovable (moby#34672).
    _native.mount(None, "/", None, MS_PRIVATE | MS_REC, label="/ (make rprivate)")
    rootfs = rootfs_path(config)
    # pivot_root(2) needs new_root to be a mount point; a bind onto itself is
    # the cheapest way to make it one.  MS_REC keeps the rootfs's submounts.
    _native.mount(rootfs, rootfs, None, MS_BIND | MS_REC, label=rootfs)


def rootfs_path(config: Config) -> str:
    """The rootfs with symlinks in its host path resolved.

    Resolved once here so that paths read back from /proc/self/fd (which are
    always canonical) can be compared with it.
    """
    return os.path.realpath(config.rootfs)


def open_root(rootfs: str) -> int:
    """An O_PATH fd of the rootfs *mount* (call after prepare_root).

    Opened after the self-bind, the fd is the bind's root: mounts made under
    it are the ones that are still there after pivot_root.
    """
    try:
        return os.open(rootfs, _O_PATH_DIR)
    except OSError as err:
        raise SyscallError.of(err, "open", rootfs) from None


# --- mounts --------------------------------------------------------------------

def mount_all(config: Config) -> None:
    """Mount every ``config.mounts`` entry, in order, inside the rootfs."""
    rootfs = rootfs_path(config)
    root_fd = open_root(rootfs)
    try:
        for entry in config.mounts:
            _mount_entry(config, rootfs, root_fd, entry)
    finally:
        os.close(root_fd)


def _mount_entry(config: Config, rootfs: str, root_fd: int, m: MountConfig) -> None:
    device = m.device
    data = m.data or None
    kind = mount_kind(config, m)
    if kind == "bind":
        mount_bind(rootfs, root_fd, m.source, m.destination, m.flags, m.propagation)
    elif kind == "host sysfs":
        # The kernel lets a user namespace mount sysfs only if it owns the
        # network namespace (sysfs shows that netns's devices).  Without
        # NEWNET the best we can give is the host's /sys, read-only -- all
        # of it: a remount only changes the top mount, and the host's
        # submounts (cgroup hierarchies, debugfs, ...) come along with MS_REC.
        mount_bind(rootfs, root_fd, "/sys", m.destination, host_sysfs_flags(m.flags))
        readonly_submounts(rootfs, root_fd, m.destination)
        if m.propagation:
            set_propagation(rootfs, root_fd, m.destination, m.propagation)
    elif kind == "tmpfs":
        mount_tmpfs(rootfs, root_fd, m.source or "tmpfs", m.destination, m.flags, data,
                    m.propagation, copy_up=m.copy_up)
    elif kind == "mqueue":
        try:
            mount_fs(rootfs, root_fd, m.source or "mqueue", m.destination, "mqueue",
                     m.flags, data, m.propagation)
        except OSError as err:
            # mqueue can be mounted only by the user namespace that owns the
            # IPC namespace (EPERM when the container shares the host's IPC
            # namespace), and not at all without CONFIG_POSIX_MQUEUE (ENODEV).
            # /dev/mqueue is a convenience: mq_open(3) works without it, so
            # a container that cannot have it still runs.
            if not (config.has_namespace("NEWUSER") and err.errno in (errno.EPERM, errno.ENODEV)):
                raise
    elif kind == "cgroup":
        mount_cgroup(rootfs, root_fd, m.destination, device, m.flags, data, m.propagation)
    else:
        mount_fs(rootfs, root_fd, m.source or device, m.destination, device, m.flags, data,
                 m.propagation)


def _userns_without_netns(config: Config) -> bool:
    return bool(config.has_namespace("NEWUSER") and not config.has_namespace("NEWNET"))


def mount_kind(config: Config, m: MountConfig) -> str:
    """How ``_mount_entry`` mounts ``m``: "bind", "host sysfs", "tmpfs",
    "mqueue", "cgroup" or "fs".  ``nsinit explain`` (mount/plan.py) follows
    the same choice, so what it shows is what this module does."""
    device = m.device
    if device == "bind":
        return "bind"
    if device == "sysfs" and _userns_without_netns(config):
        return "host sysfs"
    if device in ("tmpfs", "mqueue"):
        return device
    if device in ("cgroup", "cgroup2"):
        return "cgroup"
    return "fs"


def host_sysfs_flags(flags: int) -> int:
    """The bind flags of "host sysfs": the host's /sys, all of it, read-only."""
    return flags | MS_REC | MS_RDONLY


def readonly_submounts(rootfs: str, root_fd: int, destination: str) -> None:
    """Remount read-only every mount below ``destination`` (not itself).

    The mount points come from mountinfo as strings; they are safe to use:
    they lie under a bind of a host tree made just now, which the image
    cannot have put symlinks into.
    """
    fd = open_destination(rootfs, root_fd, destination)
    try:
        top = rootfs.rstrip("/") + _inside_rootfs(rootfs, fd, destination)
    finally:
        os.close(fd)
    for _dev, _root, mountpoint, _fstype, _opts in mountinfo.read():
        if mountpoint.startswith(top + "/") and not mount_flags(mountpoint) & MS_RDONLY:
            remount_bind(mountpoint, MS_RDONLY, label=mountpoint[len(rootfs.rstrip("/")):])


def open_destination(rootfs: str, root_fd: int, destination: str, *,
                     create_file: bool = False, allow_proc: bool = False) -> int:
    """The O_PATH fd to mount on, after the policy checks; the caller closes it.

    Refused: the rootfs itself (mounting over it would hide the whole tree
    and break pivot_root) and anything in /proc (mounting over procfs files
    can hide the protections placed there, e.g. masking /proc/kcore, and was
    the CVE-2019-19921 route); only the proc mount itself may go on /proc.
    """
    try:
        fd = open_in_root(root_fd, destination, create_dir=not create_file,
                          create_file=create_file)
    except OSError:
        # Creating a missing destination inside procfs fails with a bare
        # ENOENT/EACCES; when that is where the path leads, say why instead.
        where = _resolve_for_message(rootfs, destination)
        if where is not None and _in_proc(where):
            raise _proc_refusal(destination, where) from None
        raise
    _check_destination(rootfs, fd, destination, allow_proc)
    return fd


def _check_destination(rootfs: str, fd: int, destination: str, allow_proc: bool) -> None:
    """open_destination's policy checks of the opened ``fd``; on a refusal it is closed."""
    try:
        where = _inside_rootfs(rootfs, fd, destination)
        if where == "/":
            raise NsinitError("mount", f"mount destination {inside(destination)} resolves to "
                                       "the rootfs itself; refusing to mount over it")
        if allow_proc and where != inside(destination):
            # procfs must land where it is configured: an image with
            # "/proc -> /elsewhere" would otherwise move it out from under the
            # /proc checks here and the masks of finish_rootfs.
            raise NsinitError("mount", f"proc mount destination {inside(destination)} leads "
                                       f"to {where} through symlinks; refusing")
        if _in_proc(where) and not (where == "/proc" and allow_proc):
            raise _proc_refusal(destination, where)
    except BaseException:
        os.close(fd)
        raise


def _in_proc(where: str) -> bool:
    return where == "/proc" or where.startswith("/proc/")


def _proc_refusal(destination: str, where: str) -> NsinitError:
    shown = inside(destination)
    via = f" (through symlinks: {where})" if where != shown else ""
    return NsinitError("mount", f"mount destination {shown}{via} is inside /proc; "
                                "mounting over procfs files is refused")


def _resolve_for_message(rootfs: str, destination: str) -> str | None:
    """Where ``destination`` leads inside the rootfs, computed in Python (messages only)."""
    try:
        host = resolve_in_root(rootfs, destination)
    except OSError:
        return None  # a symlink loop: the original error says enough
    return host[len(rootfs.rstrip("/")):] or "/"


def _inside_rootfs(rootfs: str, fd: int, destination: str) -> str:
    """Where ``fd`` really is, as a path inside the rootfs ("/" = rootfs)."""
    real = os.readlink(fd_path(fd))
    base = rootfs.rstrip("/")
    if real == rootfs or real == base:
        return "/"
    if not real.startswith(base + "/"):
        # openat2(RESOLVE_IN_ROOT) makes this impossible; refuse loudly anyway.
        raise NsinitError("mount", f"mount destination {inside(destination)} resolved to "
                                   f"{real}, outside the rootfs")
    return real[len(base):]


def mount_fs(rootfs: str, root_fd: int, source: str, destination: str, fstype: str,
             flags: int, data: str | None, propagation: int = 0) -> None:
    """A new filesystem (proc, sysfs, devpts, tmpfs, ...) at ``destination``."""
    fd = open_destination(rootfs, root_fd, destination, allow_proc=(fstype == "proc"))
    mount_fs_on(fd, rootfs, root_fd, source, destination, fstype, flags, data, propagation)


def mount_fs_on(fd: int, rootfs: str, root_fd: int, source: str, destination: str, fstype: str,
                flags: int, data: str | None, propagation: int = 0) -> None:
    """mount_fs on ``fd``, open_destination's (its checks made), which this closes."""
    try:
        _native.mount(source, fd_path(fd), fstype, new_mount_flags(flags), data,
                      label=inside(destination))
    finally:
        os.close(fd)
    if propagation:
        set_propagation(rootfs, root_fd, destination, propagation)


def new_mount_flags(flags: int) -> int:
    """The flags of the mount(2) call that makes a new filesystem."""
    return flags & ~OPERATION_FLAGS


def mount_tmpfs(rootfs: str, root_fd: int, source: str, destination: str, flags: int,
                data: str | None, propagation: int = 0, *, copy_up: bool = False) -> None:
    """tmpfs, keeping the mode the destination directory had (runc does so too).

    Without it a tmpfs root is 1777, so a tmpfs over e.g. /run would make it
    world-writable.  The mode goes into the mount data: no chmod afterwards.
    A destination nsinit has to make keeps the tmpfs's own 1777, as runc's:
    there was no mode to keep, and `podman run --tmpfs /new-dir` as a user
    expects to write there.
    With ``copy_up`` the new tmpfs gets a copy of what it covers (tmpcopyup).
    """
    fd, existed = _open_tmpfs_destination(rootfs, root_fd, destination)
    covered = -1
    try:
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if copy_up:
                covered = _copyup().open_covered(fd)  # before the tmpfs hides it
        except BaseException:
            os.close(fd)
            raise
        if existed and not _has_option(data, "mode"):
            data = tmpfs_data(data, mode)
        # On the fd the checks were made on: nothing was mounted since it
        # was resolved, so resolving it again would find the same inode.
        mount_fs_on(fd, rootfs, root_fd, source, destination, "tmpfs", flags & ~MS_RDONLY if copy_up else flags,
                    data, propagation)
        if copy_up:
            copy_into_tmpfs(rootfs, root_fd, covered, destination, flags)
    finally:
        if covered >= 0:
            os.close(covered)


def _open_tmpfs_destination(rootfs: str, root_fd: int, destination: str) -> tuple[int, bool]:
    """open_destination's fd for a tmpfs, and whether the destination was
    there before (not made now): one lookup when it exists, as it usually does."""
    try:
        fd = open_in_root(root_fd, destination)
    except FileNotFoundError:
        return open_destination(rootfs, root_fd, destination), False
    except OSError:
        # open_destination says what is wrong with it, as it would have.
        return open_destination(rootfs, root_fd, destination), True
    try:
        check_directory(fd, destination)
    except BaseException:
        os.close(fd)
        raise
    _check_destination(rootfs, fd, destination, allow_proc=False)
    return fd, True


def _copyup() -> ModuleType:
    """nsinit.mount.copyup, which the child loads with its step modules only
    for a config with a tmpcopyup mount (child.optional_step_modules): looked
    up, never imported here, in the middle of making the container's mounts."""
    module = sys.modules.get("nsinit.mount.copyup")
    if module is None:
        raise NsinitError("mount", "tmpcopyup: nsinit.mount.copyup was not loaded with the step modules")
    return module


def copy_into_tmpfs(rootfs: str, root_fd: int, covered: int, destination: str, flags: int) -> None:
    """Fill the tmpfs just mounted at ``destination`` from ``covered``; then make it read-only if asked."""
    fd = open_destination(rootfs, root_fd, destination)  # again: now the tmpfs, not what it covers
    try:
        target = os.open(fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _copyup().copy_tree(covered, target)
        except OSError as err:
            where = f" ({err.filename})" if isinstance(err.filename, str) else ""
            raise NsinitError("mount", f"tmpcopyup of {inside(destination)}{where}: {err.strerror or err}") from None
        finally:
            os.close(target)
        if flags & MS_RDONLY:
            remount_bind(fd_path(fd), MS_RDONLY, label=inside(destination))
    finally:
        os.close(fd)


def tmpfs_data(data: str | None, mode: int) -> str:
    return f"{data},mode={mode:o}" if data else f"mode={mode:o}"


def _has_option(data: str | None, name: str) -> bool:
    return any(opt.split("=", 1)[0] == name for opt in (data or "").split(","))


def mount_bind(rootfs: str, root_fd: int, source: str, destination: str, flags: int,
               propagation: int = 0) -> None:
    """Bind the host path ``source`` at ``destination`` inside the rootfs.

    The kernel ignores ro/nosuid/nodev/noexec on the MS_BIND call itself; they
    only take effect through a second MS_REMOUNT|MS_BIND call on the new mount.
    """
    try:
        info = os.stat(source)
    except FileNotFoundError:
        raise NsinitError("mount", f"bind source {source} does not exist") from None
    except OSError as err:
        raise SyscallError.of(err, "stat", source) from None
    as_file = not stat.S_ISDIR(info.st_mode)
    fd = open_destination(rootfs, root_fd, destination, create_file=as_file)
    try:
        _native.mount(source, fd_path(fd), None, bind_flags(flags), label=inside(destination))
    finally:
        os.close(fd)
    extra = flags & BIND_REMOUNT_FLAGS
    if extra:
        # Open again: the old fd is the directory *under* the new mount.
        fd = open_destination(rootfs, root_fd, destination, create_file=as_file)
        try:
            remount_bind(fd_path(fd), extra, label=inside(destination))
        finally:
            os.close(fd)
    if propagation:
        set_propagation(rootfs, root_fd, destination, propagation, as_file=as_file)


def bind_flags(flags: int) -> int:
    """The flags of the first, binding mount(2) call (see mount_bind)."""
    return MS_BIND | (flags & MS_REC)


def remount_bind(target: str, flags: int, *, label: str) -> None:
    """MS_REMOUNT|MS_BIND ``target`` adding ``flags``, keeping what it has.

    In a user namespace, nosuid/nodev/noexec/ro and the atime mode of a mount
    inherited from the host are locked: a remount that would clear them fails
    with EPERM.  So the mount's current flags (statvfs) are carried over, and
    its atime mode too unless ``flags`` picks one.
    """
    _native.mount(None, target, None, remount_flags(flags, mount_flags(target)), label=label)


def remount_flags(flags: int, current: int) -> int:
    """The remount's flags: ``flags`` added to the mount's ``current`` ones."""
    if flags & ATIME_FLAGS:
        current &= ~ATIME_FLAGS
    elif not current & ATIME_FLAGS:
        # statvfs has no bit for strictatime; no atime bit means strictatime,
        # and leaving it out would make the kernel default to relatime.
        current |= MS_STRICTATIME
    return MS_BIND | MS_REMOUNT | flags | current


def mount_flags(path: str) -> int:
    """The per-mount MS_* flags of the mount holding ``path`` (from statvfs)."""
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError as err:
        raise SyscallError.of(err, "statvfs", path) from None
    return sum(ms for st, ms in STATVFS_TO_MS if f_flag & st)


def set_propagation(rootfs: str, root_fd: int, destination: str, propagation: int, *,
                    as_file: bool = False) -> None:
    fd = open_destination(rootfs, root_fd, destination, create_file=as_file)
    try:
        _native.mount(None, fd_path(fd), None, propagation, label=inside(destination))
    finally:
        os.close(fd)


# --- cgroups -------------------------------------------------------------------
#
# "cgroup2" gets a read-only cgroup2 filesystem.  "cgroup" (v1) gets what the
# 2015 runtime gave: a tmpfs with a read-only bind of the container's own
# cgroup in each host hierarchy; on a host without v1 hierarchies it gets the
# cgroup2 filesystem instead.  Read-only always: without a cgroup namespace
# the container would otherwise see, and could write, the host's limits.

def mount_cgroup(rootfs: str, root_fd: int, destination: str, device: str, flags: int,
                 data: str | None, propagation: int = 0) -> None:
    hierarchies = host_cgroup_hierarchies(rootfs)
    v1 = [h for h in hierarchies if h[2] == "cgroup"]
    if device == "cgroup2" or not v1:
        mount_fs(rootfs, root_fd, "cgroup2", destination, "cgroup2", flags | MS_RDONLY, data,
                 propagation)
        return
    safe = MS_NOSUID | MS_NODEV | MS_NOEXEC
    mount_tmpfs(rootfs, root_fd, "cgroup", destination, (flags | safe) & ~MS_RDONLY, "mode=755")
    base = inside(destination)
    for name, source, _fstype in hierarchies:
        mount_bind(rootfs, root_fd, source, f"{base}/{name}", MS_BIND | MS_RDONLY | safe)
    _link_comounted(root_fd, base, [h[0] for h in hierarchies])
    if flags & MS_RDONLY:
        fd = open_destination(rootfs, root_fd, destination)
        try:
            remount_bind(fd_path(fd), MS_RDONLY, label=base)
        finally:
            os.close(fd)
    if propagation:
        set_propagation(rootfs, root_fd, destination, propagation)


def _link_comounted(root_fd: int, base: str, names: list[str]) -> None:
    """``cpu -> cpu,cpuacct`` links, as hosts have for co-mounted controllers."""
    fd = open_in_root(root_fd, base)
    try:
        for name in names:
            for part in name.split(","):
                if part == name or "=" in part:
                    continue
                try:
                    os.symlink(name, part, dir_fd=fd)
                except FileExistsError:
                    pass  # a hierarchy of that name is mounted there already
                except OSError as err:
                    raise SyscallError.of(err, "symlink", f"{base}/{part}") from None
    finally:
        os.close(fd)


def host_cgroup_hierarchies(rootfs: str) -> list[tuple[str, str, str]]:
    """(name, host path of our own cgroup in it, fstype) per host hierarchy.

    Read from this process's mountinfo and /proc/self/cgroup while the host
    tree is still visible (before pivot_root).  Mounts inside the rootfs are
    skipped (a host /sys bound there repeats them), as are second mounts of
    the same hierarchy.
    """
    own = _own_cgroups()
    seen: set[str] = set()
    found: list[tuple[str, str, str]] = []
    base = rootfs.rstrip("/") + "/"
    for dev, root, mountpoint, fstype, superopts in mountinfo.read():
        if fstype not in ("cgroup", "cgroup2") or dev in seen:
            continue
        if mountpoint.startswith(base) or mountpoint == rootfs:
            continue
        seen.add(dev)
        if fstype == "cgroup2":
            path = own.get(frozenset(), "/")
        else:
            opts = set(superopts.split(","))
            path = next((p for ctrls, p in own.items() if ctrls and ctrls <= opts), "/")
        rel = os.path.relpath(path, root) if _is_under(path, root) else "."
        source = os.path.normpath(os.path.join(mountpoint, rel))
        if not os.path.isdir(source):
            source = mountpoint
        found.append((os.path.basename(mountpoint), source, fstype))
    return found


def _is_under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root.rstrip("/") + "/")


def _own_cgroups() -> dict[frozenset[str], str]:
    """/proc/self/cgroup as {controllers (name=x included): path}; v2 is frozenset()."""
    result: dict[frozenset[str], str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                ctrls = frozenset(c for c in parts[1].split(",") if c)
                result[ctrls] = parts[2]
    return result


# --- pivot ---------------------------------------------------------------------

def pivot_to_rootfs(config: Config) -> None:
    """Make the rootfs "/" and get rid of the host's tree."""
    rootfs = rootfs_path(config)
    if config.no_pivot_root:
        _move_root(rootfs)
    else:
        _pivot_root(rootfs)
    if config.rootfs_propagation:
        # After the pivot, on the container's own "/" (runc's order): before
        # it, a shared flag would have joined the host's peer group.
        _native.mount(None, "/", None, config.rootfs_propagation, label="/ (rootfsPropagation)")


def _pivot_root(rootfs: str) -> None:
    # pivot_root(".", ".") stacks the old root on top of the new one, at the
    # same place; unmounting "." then removes it.  No temporary directory in
    # the rootfs is needed (which a read-only rootfs could not hold, and which
    # the 2014 code left behind on failure) -- runc's method since 2017.
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            _native.pivot_root(".", ".")
        finally:
            os.close(new_root)
        # The kernel does not promise where "." is after pivot_root(2); go to
        # the old root explicitly before unmounting it.
        os.fchdir(old_root)
    finally:
        os.close(old_root)
    # rslave before the detach, so the unmount cannot propagate to the host
    # even if something made these mounts shared again.  Not rprivate: runc
    # found it races with host processes still using those mounts.
    _native.mount(None, ".", None, MS_SLAVE | MS_REC, label="old root (make rslave)")
    _native.umount2(".", MNT_DETACH)
    os.chdir("/")


def _move_root(rootfs: str) -> None:
    # no_pivot_root (pivot_root fails with EINVAL on ramfs/initramfs,
    # moby#4512): move the rootfs over "/" and chroot into it.  The host tree
    # is still underneath, and a process with CAP_SYS_CHROOT can escape a
    # chroot; the user asked for this mode.
    hide_host_pseudo_filesystems(rootfs)
    os.chdir(rootfs)
    _native.mount(rootfs, "/", None, MS_MOVE, label="/ (move rootfs)")
    os.chroot(".")
    os.chdir("/")


# Filesystems the kernel lets a user namespace mount only if a full mount of
# them is already in the mount namespace (SB_I_USERNS_VISIBLE, checked by
# mount_too_revealing() in fs/namespace.c): procfs and sysfs.
_USERNS_VISIBLE = ("proc", "sysfs")


def hide_host_pseudo_filesystems(rootfs: str) -> None:
    """Unmount (or cover) every full procfs/sysfs mount outside the rootfs.

    Without pivot_root the host's tree stays in our mount namespace under the
    moved rootfs.  Its /proc is a full, unmasked procfs, so the kernel would
    let the container's root ``unshare -mr`` and mount a fresh procfs with
    none of our masks (/proc/kcore, /proc/timer_list, ...): the masks would be
    for show.  runc's msMoveRoot does the same before its MS_MOVE.  Where the
    unmount is refused (EINVAL/EPERM: the mount is locked, e.g. inherited by
    a user namespace) a tmpfs over it makes it count as hidden.  Repeated
    until none is left, because mounts can be stacked on one mount point.
    """
    # Opened once: the host's /proc goes away in the first pass.  Each read
    # from offset 0 lists the mounts as they are then.
    table = os.open(mountinfo.MOUNTINFO, os.O_RDONLY | os.O_CLOEXEC)
    try:
        covered: set[tuple[str, str]] = set()
        while True:
            left = [m for m in _full_pseudo_mounts_outside(table, rootfs) if m not in covered]
            if not left:
                return
            outcome = {m: _unmount_or_cover(m[1]) for m in left}
            covered.update(m for m, done in outcome.items() if done == "covered")
            if "detached" not in outcome.values() and "unreachable" in outcome.values():
                # Listed, yet no path leads to them (a deleted or covered
                # directory): the kernel still counts them.
                hidden = ", ".join(m[1] for m, done in outcome.items() if done == "unreachable")
                raise NsinitError("pivot_root", f"no_pivot_root: cannot hide the host's {hidden}")
    finally:
        os.close(table)


def _full_pseudo_mounts_outside(table: int, rootfs: str) -> list[tuple[str, str]]:
    """(major:minor, mount point) of each full procfs/sysfs mount outside the rootfs."""
    base = rootfs.rstrip("/")
    return [(dev, point) for dev, root, point, fstype, _opts in mountinfo.parse(_read_from_start(table))
            if fstype in _USERNS_VISIBLE and root == "/"
            and point != base and not point.startswith(base + "/")]


def _read_from_start(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks).decode("utf-8", "surrogateescape")
        chunks.append(chunk)


def _unmount_or_cover(point: str) -> str:
    """Detach the mount at ``point``, or cover it: "detached", "covered" or "unreachable"."""
    try:
        # rslave first: the unmount must never propagate to the host, even
        # if something made this mount shared again (prepare_root made "/"
        # rprivate).
        _native.mount(None, point, None, MS_SLAVE | MS_REC, label=f"{point} (make rslave)")
        _native.umount2(point, MNT_DETACH)
        return "detached"
    except OSError as err:
        if err.errno == errno.ENOENT:
            # Under a mount detached just now (then it is gone with it), or
            # out of reach of any path: the next pass tells which.
            return "unreachable"
        if err.errno not in (errno.EINVAL, errno.EPERM):
            raise
    _native.mount("tmpfs", point, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  None, label=f"{point} (cover)")
    return "covered"


# --- after pivot -----------------------------------------------------------------
#
# From here "/" is the rootfs: a symlink can only point inside the container,
# so plain paths are safe (and /proc may not even be procfs, so the
# /proc/self/fd technique is not available).

def finish_rootfs(config: Config) -> None:
    """Read-only root, read-only paths, masked paths."""
    if config.readonlyfs:
        remount_bind("/", MS_RDONLY, label="/ (read-only)")
    for path in config.readonly_paths:
        make_readonly(path)
    for path in config.mask_paths:
        mask_path(path)


def make_readonly(path: str) -> None:
    """Bind ``path`` onto itself and make that mount read-only; skip if missing."""
    try:
        _native.mount(path, path, None, MS_BIND | MS_REC, label=path)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return  # nothing to protect: this kernel or image has no such path
        raise
    remount_bind(path, MS_RDONLY, label=path)


MASK_DIR_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC  # the empty tmpfs over a masked directory


def mask_path(path: str) -> None:
    """Hide ``path``: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there to hide
    except OSError as err:
        raise SyscallError.of(err, "stat", path) from None
    try:
        if is_dir:
            _native.mount("tmpfs", path, "tmpfs", MASK_DIR_FLAGS, None, label=path)
        else:
            _native.mount("/dev/null", path, None, MS_BIND, label=path)
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise
        # Gone between stat and mount (procfs entries come and go): nothing to hide.

