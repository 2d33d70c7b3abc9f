"""Mounts and namespaces that come from outside the container.

criu dumps a mount namespace by walking its mounts; a mount whose source
lies outside the dumped tree (a bind of a host directory, a device node
bound from the host) cannot be dumped, only named.  So, as runc does,
each is declared an external mount at dump, keyed by its destination in
the container, and at restore the same key is mapped to the host path to
bind there again — which may be another path than at dump (the rootfs was
copied elsewhere, the host directory moved).  Namespaces that the config
joins by path are external too: criu records only their inode at dump and
gets an open fd of the namespace to use at restore.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsinit.config.model import Config

# Namespace types criu can take from outside (criu's --external net[]/pid[]),
# with the key runc uses for them.
EXTERNAL_NAMESPACE_KEYS = {"NEWNET": "extRootNetNS", "NEWPID": "extRootPidNS"}
_PROC_NAMES = {"NEWNET": "net", "NEWPID": "pid"}


def external_binds(config: Config) -> list[tuple[str, str]]:
    """(destination in the container, host source) of every mount criu
    must treat as external: bind mounts, and device nodes bound from the
    host (in a user namespace, where mknod is refused)."""
    binds = [(m.destination, m.source) for m in config.mounts if m.device == "bind"]
    if config.has_namespace("NEWUSER"):
        binds += [(d.path, d.path) for d in config.devices if d.type != "p"]
    return binds


def cgroup_binds(config: Config, cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """(destination, host source) of the binds a "cgroup" mount is made of
    on a cgroup v1 host: one read-only bind per host hierarchy, under a
    tmpfs (nsinit/mount/rootfs.py mount_cgroup).  Each is the container's
    own cgroup (``cgroup_paths``) in a hierarchy nsinit manages, else the
    hierarchy as the rootfs code finds it: what runc declares for criu
    too.  A cgroup2 mount is a filesystem of its own: criu dumps it."""
    destinations = [m.destination for m in config.mounts if m.device == "cgroup"]
    if not destinations:
        return []
    from nsinit.mount.rootfs import host_cgroup_hierarchies

    hierarchies = [h for h in host_cgroup_hierarchies(config.rootfs) if h[2] == "cgroup"]
    if not hierarchies:
        return []  # no v1 here: mount_cgroup mounted cgroup2
    binds = []
    for destination in destinations:
        for name, source, _fstype in hierarchies:
            path = next((cgroup_paths[c] for c in name.split(",") if c in cgroup_paths), source)
            binds.append((f"{destination.rstrip('/')}/{name}", path))
    return binds


def dump_ext_mounts(config: Config, cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """The ext_mnt map for a dump: each external mount keyed by its
    destination (criu stores the key in the images)."""
    return [(destination, destination)
            for destination, _ in external_binds(config) + cgroup_binds(config, cgroup_paths)]


def restore_ext_mounts(config: Config, cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """The ext_mnt map for a restore: key -> host path to bind there now
    (the config loader has made every source absolute; the cgroups are the
    restored container's, made before criu runs)."""
    return external_binds(config) + cgroup_binds(config, cgroup_paths)


def dump_external_namespaces(config: Config, init_pid: int) -> list[str]:
    """criu's ``external`` entries ("net[INODE]:KEY") for namespaces joined by path."""
    entries = []
    for ns in config.namespaces:
        if ns.path and ns.type in EXTERNAL_NAMESPACE_KEYS:
            inode = os.stat(f"/proc/{init_pid}/ns/{_PROC_NAMES[ns.type]}").st_ino
            entries.append(f"{_PROC_NAMES[ns.type]}[{inode}]:{EXTERNAL_NAMESPACE_KEYS[ns.type]}")
    return entries


def joined_namespaces(config: Config) -> list[tuple[str, str]]:
    """(criu key, namespace file) of the namespaces to hand criu at restore."""
    return [(EXTERNAL_NAMESPACE_KEYS[ns.type], ns.path) for ns in config.namespaces
            if ns.path and ns.type in EXTERNAL_NAMESPACE_KEYS]
