"""The container's cgroup: limits, device rules, freezer, stats, OOM events.

Two calls start it all::

    manager = manager_for(config, root)    # create flow: then create(), add(pid)
    manager = load_manager(state.cgroup_paths)   # join and lifecycle commands

Every container gets a cgroup, limits or not: the device rules (deny all but
the defaults) are a security default, and the cgroup is what lets nsinit
kill, freeze and account for every process of the container.

The v1 manager is used whenever v1 controllers are mounted (v1 and hybrid
hosts); the v2 manager on a pure cgroup2 host.  See layout.py.
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.cgroups.layout import Layout
    from nsinit.cgroups.manager import Manager
    from nsinit.config.model import Config

# The package itself imports nothing heavy: a join only needs
# nsinit.cgroups.membership, and importing that runs this file first.
__all__ = ["Manager", "manager_for", "load_manager", "cgroup_path", "default_name", "DEFAULT_PARENT"]


def __getattr__(name: str) -> object:
    if name in ("Manager", "cgroup_path", "default_name", "DEFAULT_PARENT"):
        from nsinit.cgroups import manager

        return getattr(manager, name)
    raise AttributeError(f"module 'nsinit.cgroups' has no attribute {name!r}")


def manager_for(config: Config, root: str, lay: Layout | None = None) -> Manager:
    """The manager for a container about to be created from ``config`` in ``root``."""
    from nsinit.cgroups import layout
    from nsinit.cgroups.manager import cgroup_path
    from nsinit.config.model import CgroupResources

    if lay is None and os.geteuid() != 0:
        from nsinit.cgroups.rootless import rootless_manager

        return rootless_manager(config, root)
    cgroups = config.cgroups
    path, explicit = cgroup_path(cgroups, root)
    resources = cgroups.resources if cgroups is not None else CgroupResources()
    devices = config.devices
    lay = lay or layout.detect()
    if lay.v1:
        from nsinit.cgroups.v1 import V1Manager

        return V1Manager.for_layout(lay, path, resources=resources, devices=devices, explicit=explicit)
    if lay.unified:
        from nsinit.cgroups.v2 import V2Manager

        return V2Manager.for_mount(lay.unified, path, resources=resources, devices=devices, explicit=explicit)
    raise NsinitError("cgroups", "no cgroup hierarchy is mounted (no cgroup or cgroup2 in /proc/self/mountinfo)")


def load_manager(cgroup_paths: dict[str, str], parents_made: list[str] | None = None) -> Manager:
    """The manager of a live container, from state.json's cgroup_paths (and,
    for its removal, cgroup_parents_made)."""
    if not cgroup_paths:
        if os.geteuid() != 0:
            raise NsinitError("cgroups", "the container has no cgroup: without root, nsinit makes one only "
                                         "in a cgroup2 subtree delegated to you")
        raise NsinitError("cgroups", "the container has no cgroup recorded in state.json")
    if set(cgroup_paths) == {"unified"}:
        from nsinit.cgroups import layout
        from nsinit.cgroups.v2 import V2Manager

        unified = layout.detect().unified or ""
        inside = unified and cgroup_paths["unified"].startswith(unified.rstrip("/") + "/")
        return V2Manager(cgroup_paths, mount=unified if inside else "", owned=True, parents_made=parents_made)
    from nsinit.cgroups.v1 import V1Manager

    return V1Manager(cgroup_paths, owned=True, parents_made=parents_made)
