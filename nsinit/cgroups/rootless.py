"""Cgroups without root: only in a subtree delegated to the user.

A plain user may write cgroup files only where the host delegated a
cgroup2 subtree to them (systemd's ``Delegate=yes`` for user@UID.service:
the directory and its cgroup.procs, cgroup.subtree_control are theirs).
There the container gets a child cgroup of the caller's own.  Elsewhere (a
cgroup v1 host, an undelegated cgroup2) nsinit writes no cgroup file at
all, and a config asking for limits is refused, one line per field, unless
``cgroups.rootless`` is "ignore" (then each is a warning): runc's rootless
cgroup manager makes the same choice.
"""
from __future__ import annotations

import os

from nsinit.cgroups.manager import Manager

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import Config

# Device rules a plain user's container needs no cgroup for: it cannot
# mknod (refused in a user namespace), and each node it has is the host's,
# bound in, with the host's permissions.  A deny rule, though, is a limit.
_NO_CGROUP_NEEDED = ("allowed_devices", "allow_all_devices", "freezer")
NOT_DELEGATED = ("needs a cgroup, and none is delegated to you (without root nsinit writes "
                 "cgroup files only in a cgroup2 subtree the host delegates to your user)")


def delegated_cgroup(uid: int, mountinfo_path: str = "/proc/self/mountinfo",
                     cgroup_file: str = "/proc/self/cgroup") -> str | None:
    """The caller's own cgroup2 directory if it is delegated to ``uid``, else None."""
    from nsinit.cgroups import layout

    try:
        unified = layout.detect(mountinfo_path).unified
        with open(cgroup_file, encoding="utf-8") as f:
            own = next((line.split(":", 2)[2].strip() for line in f if line.startswith("0::")), None)
    except OSError:
        return None
    if not unified or own is None:
        return None
    directory = layout.hierarchy_path(unified, own)
    try:
        st = os.stat(directory)
    except OSError:
        return None
    writable = all(os.access(os.path.join(directory, name), os.W_OK)
                   for name in ("", "cgroup.procs", "cgroup.subtree_control"))
    return directory if st.st_uid == uid and writable else None


def check_limits(ctx: Any, config: Config, uid: int) -> None:
    """Refuse (or with cgroups.rootless "ignore", warn of) each limit that
    no cgroup of the user's can hold."""
    cgroups = config.cgroups
    if cgroups is None or delegated_cgroup(uid) is not None:
        return
    from nsinit.cgroups.manager import changed_fields

    for name in changed_fields(cgroups.resources):
        if name in _NO_CGROUP_NEEDED:
            continue
        if cgroups.rootless == "ignore":
            ctx.warn(f"cgroups.{name}", f"ignored: it {NOT_DELEGATED}")
        else:
            ctx.report(f"cgroups.{name}", f'{NOT_DELEGATED}; set cgroups.rootless to "ignore" '
                       "to run without it")


def rootless_manager(config: Config, root: str) -> Manager:
    """The container's cgroup as a plain user: a child of the caller's own
    delegated cgroup, or none at all."""
    directory = delegated_cgroup(os.geteuid())
    if directory is None:
        return NoCgroup()
    from nsinit.cgroups.manager import default_name
    from nsinit.cgroups.v2 import V2Manager
    from nsinit.config.model import CgroupResources
    from nsinit.record import replace

    resources = config.cgroups.resources if config.cgroups is not None else CgroupResources()
    # The delegated directory stands in for the mount point: controllers are
    # enabled from there down, never above it.  Device rules need bpf(2)
    # with CAP_SYS_ADMIN, which a plain user lacks (and _NO_CGROUP_NEEDED
    # says why the container does not need them).
    return V2Manager.for_mount(directory, default_name(root), devices=(), explicit="",
                               resources=replace(resources, allow_all_devices=True))


class NoCgroup(Manager):
    """A container without a cgroup: nothing is made, written or removed."""

    version = "none"

    def __init__(self) -> None:
        super().__init__({}, owned=True)

    def create(self) -> None:
        pass  # nothing to make

    def self_attach_files(self) -> list[str]:
        return []

    def destroy(self) -> None:
        pass  # nothing was made
