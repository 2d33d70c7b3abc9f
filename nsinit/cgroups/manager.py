"""What the v1 and v2 managers share: naming, checking limits, killing, errors.

A limit is checked before anything is made, against the host where it
matters (does CPU 7 exist?), so a bad config fails with one line naming the
field and leaves nothing behind.  What only the kernel can judge (a throttle
on a device that does not exist, a value below current usage) is caught when
written, turned into the same kind of line, and everything made is removed.

``resources.freezer`` is not applied at creation: a frozen init could never
reach its exec, and the create would hang.  ``nsinit pause`` freezes.
"""
from __future__ import annotations

import errno
import os

from nsinit import kernelfs
from nsinit.cgroups import fs, layout, membership
from nsinit.config.model import CgroupConfig, CgroupResources, DeviceConfig
from nsinit.errors import NsinitError, describe_oserror
from nsinit.record import fields

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.cgroups.notify import Notifier

DEFAULT_PARENT = "nsinit"
MiB = 1024 * 1024
# Docker's floor.  The kernel accepts a limit of one page, but then the
# container's init is OOM-killed before it reaches exec(2) and the user sees
# a confusing setup failure instead of this line.
MIN_MEMORY = 6 * MiB
# cpu.shares bounds the kernel silently clamps to; a value outside them is a
# mistake worth reporting.  cfs bounds are the kernel's own (EINVAL otherwise).
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_CFS_QUOTA = 1000
MIN_CFS_PERIOD, MAX_CFS_PERIOD = 1000, 1000000
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000

# Which controller each resource field needs.
FIELD_CONTROLLERS = {
    "memory": "memory", "memory_reservation": "memory", "memory_swap": "memory",
    "memory_swappiness": "memory", "oom_kill_disable": "memory",
    "cpu_shares": "cpu", "cpu_quota": "cpu", "cpu_period": "cpu",
    "cpuset_cpus": "cpuset", "cpuset_mems": "cpuset",
    "pids_limit": "pids",
    "blkio_weight": "blkio",
    "blkio_throttle_read_bps_device": "blkio", "blkio_throttle_write_bps_device": "blkio",
    "blkio_throttle_read_iops_device": "blkio", "blkio_throttle_write_iops_device": "blkio",
    "hugetlb_limit": "hugetlb",
}


def _sha256(data: bytes):  # type: ignore[no-untyped-def]
    """hashlib.sha256 without hashlib's import: loading OpenSSL costs ~10 ms
    on every container start, CPython's builtin module almost nothing."""
    try:
        from _sha256 import sha256  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return sha256(data)


def field_error(field: str, problem: str) -> NsinitError:
    return NsinitError("cgroups", f"cgroups.{field}: {problem}")


def default_name(root: str) -> str:
    """nsinit-<dir name>-<8 hex>: readable, and unique per root directory."""
    root = os.path.abspath(root)
    digest = _sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"nsinit-{os.path.basename(root.rstrip('/')) or 'root'}-{digest}"


def cgroup_path(cgroups: CgroupConfig | None, root: str) -> tuple[str, str]:
    """(path absolute in every hierarchy, the config field that chose it or "").

    Relative to each hierarchy's root, not to nsinit's own cgroup, so the
    same container always lands in the same place (like runc's cgroupsPath).
    """
    path, name, parent = ("", "", "") if cgroups is None else (cgroups.path, cgroups.name, cgroups.parent)
    if path:
        full, field = path, "path"
    else:
        full = f"{parent or DEFAULT_PARENT}/{name or default_name(root)}"
        field = "name"
    parts = [p for p in full.split("/") if p not in ("", ".")]
    if not parts:
        raise field_error(field, "must not be the root of the hierarchy (that would be the whole host)")
    if ".." in parts:
        raise field_error(field, 'must not contain ".."')
    return "/" + "/".join(parts), field if (path or name) else ""


def describe_write(err: OSError) -> str:
    if err.errno == errno.EINVAL:
        return "the kernel rejected it (Invalid argument)"
    if err.errno == errno.ENOENT:
        return f"{os.path.basename(err.filename or '')} does not exist on this host"
    return err.strerror or str(err)


def check_list(field: str, text: str, kind: str) -> None:
    """A cpuset list must parse and name only CPUs / memory nodes that are online."""
    try:
        wanted = layout.parse_list(text)
    except ValueError:
        raise field_error(field, f'"{text}" is not a list like "0-1,3"') from None
    available = layout.online(kind)
    have = set(layout.parse_list(available))
    for number in wanted:
        if number not in have:
            what = "CPU" if kind == "cpu" else "memory node"
            raise field_error(field, f"{what} {number} does not exist (online: {available})")


def check_resources(r: CgroupResources) -> None:
    """Checks that do not depend on the cgroup version."""

    def limit(field: str, value: int | None, minimum: int = 1) -> None:
        if value is None or value == -1:
            return
        if value < minimum:
            if value < 0:
                raise field_error(field, f"{value} is negative (use -1 for unlimited)")
            raise field_error(field, f"{value} is below the minimum of {minimum}")

    if r.memory is not None and r.memory != -1:
        if r.memory < 0:
            raise field_error("memory", f"{r.memory} is negative (use -1 for unlimited)")
        if r.memory < MIN_MEMORY:
            raise field_error("memory", f"{r.memory} bytes is below the minimum of {MIN_MEMORY} (6 MiB)")
    limit("memory_reservation", r.memory_reservation, 0)
    if r.memory_swap is not None and r.memory_swap != -1:
        limit("memory_swap", r.memory_swap)
        if r.memory is None or r.memory == -1:
            raise field_error("memory_swap", "needs cgroups.memory (memory_swap is memory + swap)")
        if r.memory_swap < r.memory:
            raise field_error("memory_swap", f"{r.memory_swap} is less than cgroups.memory ({r.memory}); "
                              "it is memory + swap")
    if r.memory_swappiness is not None and not 0 <= r.memory_swappiness <= 100:
        raise field_error("memory_swappiness", f"{r.memory_swappiness} is not between 0 and 100")
    if r.cpu_shares is not None and not MIN_SHARES <= r.cpu_shares <= MAX_SHARES:
        raise field_error("cpu_shares", f"{r.cpu_shares} is not between {MIN_SHARES} and {MAX_SHARES}")
    if r.cpu_quota is not None and r.cpu_quota != -1 and r.cpu_quota < MIN_CFS_QUOTA:
        raise field_error("cpu_quota", f"{r.cpu_quota} is below the kernel's minimum of {MIN_CFS_QUOTA} µs "
                          "(use -1 for unlimited)")
    if r.cpu_period is not None and not MIN_CFS_PERIOD <= r.cpu_period <= MAX_CFS_PERIOD:
        raise field_error("cpu_period", f"{r.cpu_period} is not between {MIN_CFS_PERIOD} and {MAX_CFS_PERIOD} µs")
    if r.cpuset_cpus:
        check_list("cpuset_cpus", r.cpuset_cpus, "cpu")
    if r.cpuset_mems:
        check_list("cpuset_mems", r.cpuset_mems, "node")
    if r.pids_limit is not None and r.pids_limit != -1 and r.pids_limit < 1:
        raise field_error("pids_limit", f"{r.pids_limit} is not a positive number (use -1 for unlimited)")
    if r.blkio_weight is not None and not MIN_BLKIO_WEIGHT <= r.blkio_weight <= MAX_BLKIO_WEIGHT:
        raise field_error("blkio_weight", f"{r.blkio_weight} is not between {MIN_BLKIO_WEIGHT} and {MAX_BLKIO_WEIGHT}")
    for i, (_size, value) in enumerate(r.hugetlb_limit):
        if value < 0:
            raise field_error(f"hugetlb_limit[{i}].limit", f"{value} is negative")


def changed_fields(r: CgroupResources) -> dict[str, object]:
    """Every field of ``r`` that sets something, as {name: value}."""
    return {f.name: getattr(r, f.name) for f in fields(CgroupResources)
            if getattr(r, f.name) not in (None, ())}


def configured_fields(r: CgroupResources) -> list[str]:
    """Resource fields that ask for a value (not None, not empty)."""
    return [name for name in FIELD_CONTROLLERS if getattr(r, name) not in (None, ())]


class Manager:
    """The container's cgroup in every hierarchy this host has.

    ``paths`` (subsystem, or "unified" for cgroup v2 -> directory) is what
    state.json records and what ``load_manager`` rebuilds a manager from.
    """

    version = ""

    def __init__(self, paths: dict[str, str], *, resources: CgroupResources | None = None,
                 devices: tuple[DeviceConfig, ...] = (), explicit: str = "",
                 owned: bool = True, parents_made: list[str] | None = None) -> None:
        self.paths = dict(paths)
        # The ancestors of ``paths`` that this container's creation made,
        # deepest first (state.json's cgroup_parents_made): destroy removes
        # them once empty, so a nested cgroupsPath ("a/b/leaf") leaves no
        # "a/b" behind.  Set by create(), or given by the record.
        self.parents_made = list(parents_made or ())
        self.resources = resources or CgroupResources()
        self.devices = devices
        # The config field ("name" or "path") that named the cgroup, or ""
        # when the name derives from the root dir.  A stale directory with
        # a configured name may belong to someone else: its processes are
        # not ours to kill.
        self.explicit = explicit
        # destroy() acts only on cgroups this manager made (or was loaded
        # for): a create() that failed, e.g. because the name is taken by a
        # live container, must not then tear the other container down.
        self.owned = owned

    # Each version implements these.
    def create(self) -> None:
        raise NotImplementedError

    def add(self, pid: int) -> None:
        raise NotImplementedError

    def creating(self) -> _Creating:
        """Around a create(): the caller appends each directory it makes to
        the list ``with`` gives.  If the block fails, those go again, deepest
        first (only what we made: nothing has joined it yet, nothing to
        kill); if it succeeds, the manager owns the cgroup from then on,
        and ``parents_made`` names the ancestors among them."""
        return _Creating(self)

    def self_attach_files(self) -> list[str]:
        """Files into which a single-threaded process writes "0" to move
        itself into this cgroup: the container's init does that itself (see
        nsinit.child.attach_to_cgroups).  For the cgroup create() has just
        made: nobody can have frozen it yet, so unlike a join
        (membership.files_to_join) the freezer is not read."""
        return membership.attach_files(self.paths)

    def destroy(self) -> None:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        return membership.is_frozen(self.paths)

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def update(self, resources: CgroupResources) -> dict[str, object]:
        """Apply the limits ``resources`` sets to the live cgroup.

        Returns what changed, including limits implied by the ones given
        (v1: memory_swap follows memory when the container had no swap)."""
        raise NotImplementedError

    def notify_oom(self) -> Notifier:
        """A notifier of OOM events in the cgroup (nsinit/cgroups/notify.py)."""
        raise NotImplementedError

    def notify_memory_pressure(self, level: str) -> Notifier:
        """A notifier of memory pressure at ``level`` ("low", "medium", "critical")."""
        raise NotImplementedError

    # Shared helpers.
    def dirs(self) -> list[str]:
        """Each directory once (co-mounted controllers share one)."""
        return sorted(set(self.paths.values()))

    def write(self, field: str, path: str, value: str) -> None:
        try:
            fs.write_file(path, value)
        except OSError as err:
            raise field_error(field, f"cannot set {os.path.basename(path)} to {value.strip()}: "
                              f"{describe_write(err)}") from None

    def refuse_if_frozen(self) -> None:
        membership.refuse_if_frozen(self.paths)

    def add_to(self, directory: str, pid: int) -> None:
        try:
            fs.write_file(os.path.join(directory, "cgroup.procs"), str(pid))
        except OSError as err:
            hint = ""
            if err.errno == errno.ENOSPC:
                hint = " (a cpuset cgroup needs cpuset.cpus and cpuset.mems)"
            raise NsinitError("cgroups", f"cannot add pid {pid} to {directory}: "
                              f"{describe_oserror(err)}{hint}") from None

    def removed_if_empty(self) -> bool:
        """One rmdir per directory; True if that removed them all.

        The usual end of a container: its init has been reaped and took the
        pid namespace, so every process, with it, so the cgroups are empty.
        rmdir succeeds only then (no task, no sub-cgroup), so nothing is lost
        by trying it first; anything else (a process left, a sub-cgroup,
        EBUSY while the kernel unlinks the last task) is left to the full
        path: freeze, kill, wait, walk the subtree.

        The shared default parent stays, empty, for the next container (the
        full path removes it): containers run back to back, as in a CI
        loop, and removing it costs one more rmdir per hierarchy now and a
        mkdir (and, for cpuset, two writes) in the next container, all
        under the kernel's cgroup_mutex, and more css teardown for the
        kernel's workqueue while the next container starts (measured on
        cgroup v1, 8 hierarchies: 2.4 ms per create+destroy with the
        parent removed, 0.4 ms with it kept; bench/README.md, CI loop).
        runc and crun make their cgroup at a path that needs no parent.
        """
        return kernelfs.removed_if_empty(self.dirs())

    def remove_parents_made(self) -> None:
        """After the container's own directories: the parents its creation
        made, those no other container uses."""
        kernelfs.remove_parents_if_unused(self.parents_made)

    def remove_dirs(self, directories: list[str]) -> None:
        """rmdir each (with its sub-cgroups), then empty default parents.

        Every directory is attempted; the first failure is raised at the end.
        """
        failure: OSError | None = None
        for directory in directories:
            for cgroup in fs.subtree_bottom_up(directory):
                try:
                    fs.remove_dir(cgroup)
                except OSError as err:
                    failure = failure or err
        for directory in directories:
            remove_default_parent(directory)
        if failure is not None:
            raise NsinitError("cgroups", f"cannot remove {failure.filename}: {failure.strerror}")

    def make_chain(self, mount: str, directory: str, made: list[str]) -> None:
        """mkdir ``directory`` and any missing ancestors below ``mount``.

        A concurrent destroy may rmdir an empty shared parent between our
        mkdirs (ENOENT): start again, a few times.  The directory itself is
        tried first: its parent (the shared "nsinit") is usually there
        already, and then one mkdir does, not one per level.
        """
        if directory != mount:
            try:
                fs.make_dir(directory)
                made.append(directory)
                return
            except FileNotFoundError:
                pass  # a missing ancestor: the walk below makes it
            except FileExistsError:
                raise NsinitError("cgroups", f"{directory} was created by someone else meanwhile") from None
        relative = os.path.relpath(directory, mount)
        parts = [] if relative == "." else relative.split(os.sep)
        for attempt in range(5):
            current = mount
            try:
                for part in parts:
                    current = os.path.join(current, part)
                    try:
                        fs.make_dir(current)
                    except FileExistsError:
                        if current == directory:
                            raise
                        continue
                    made.append(current)
                return
            except FileNotFoundError:
                if attempt == 4:
                    raise
            except FileExistsError:
                raise NsinitError("cgroups", f"{directory} was created by someone else meanwhile") from None


class _Creating:
    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self.made: list[str] = []

    def __enter__(self) -> list[str]:
        return self.made

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.manager.owned = True
            self.manager.parents_made = parents_made(self.made, self.manager.dirs())
            return
        for directory in reversed(self.made):
            try:
                fs.remove_dir(directory)
            except OSError:
                pass  # a shared parent another container uses meanwhile


def parents_made(made: list[str], own: list[str]) -> list[str]:
    """The directories of ``made`` that are not the container's own
    (``own``): its ancestors, deepest first (rmdir order), each once (a
    make_chain that started again may have made one twice).

    None below the shared default parent: that parent is kept for the next
    container (Manager.removed_if_empty), and what is above it cannot go
    while it stays; the full path's remove_default_parent has its own rule.
    """
    if any(os.path.basename(os.path.dirname(d.rstrip("/"))) == DEFAULT_PARENT for d in own):
        return []
    ancestors = set(made).difference(own)
    return sorted(ancestors, key=lambda d: (-d.rstrip("/").count("/"), d))


def remove_default_parent(directory: str) -> None:
    """The shared "nsinit" parent goes when its last container does.

    Only a parent with the default name: any other parent was chosen by the
    config and may be someone else's.  ENOTEMPTY/EBUSY: another container
    still uses it.
    """
    parent = os.path.dirname(directory.rstrip("/"))
    if os.path.basename(parent) != DEFAULT_PARENT:
        return
    try:
        # No EBUSY retries: a cgroup with children is EBUSY for good.
        fs.remove_dir(parent, retries=0)
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY, errno.EEXIST):
            raise NsinitError("cgroups", f"cannot remove {parent}: {err.strerror}") from None


def stale_error(field: str, path: str, pids: list[int]) -> NsinitError:
    shown = " ".join(str(p) for p in pids[:5]) + (" ..." if len(pids) > 5 else "")
    return field_error(field, f"cgroup {path} already exists with {len(pids)} process(es) in it "
                       f"(pid {shown}); another container uses that name")
