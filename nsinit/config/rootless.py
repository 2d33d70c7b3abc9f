"""A config as a plain user can run it (see nsinit/rootless.py).

Applied by ``parse_config`` when nsinit runs without root, before the
rules across fields: the container always gets a user namespace; a config
without maps gets the caller's own ids as root (and the subordinate ranges
newuidmap can map); and whatever a plain user cannot have is refused here,
one line per field, instead of failing half-way through the creation.
"""
from __future__ import annotations

from nsinit.config.model import Config, MountConfig, NamespaceConfig
from nsinit.record import replace

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import IdMap
    from nsinit.rootless import Caller

SLIRP_HINT = 'without root use {"type": "slirp4netns"} or {"type": "pasta"} for outbound networking'


def apply_rootless(ctx: Any, config: Config, caller: Caller) -> Config:
    user_ns = config.namespace("NEWUSER")
    if user_ns is None:
        # Mounts, a hostname, a new network: each needs capabilities that
        # only root on the host, or root in a user namespace we own, has.
        config = replace(config, namespaces=(*config.namespaces, NamespaceConfig("NEWUSER")))
        user_ns = config.namespace("NEWUSER")
    if user_ns is not None and not user_ns.path:
        config = _with_maps(ctx, config, caller)
        config = _devpts_without_unmapped_gid(config)
        if config.additional_groups and not caller.needs_helper("gid", config.gid_mappings):
            ctx.report("additional_groups", "a user namespace that maps only your own gid denies "
                       "setgroups(2) (the kernel's rule); map a range from /etc/subgid in "
                       "gid_mappings (newgidmap) to use additional groups")
    if not config.has_namespace("NEWPID") and any(m.device == "proc" for m in config.mounts):
        # The kernel mounts a procfs only for a pid namespace that the
        # mounting user namespace owns: the host's is root's.
        ctx.report("namespaces", "without root, /proc can be mounted only in a new pid namespace: "
                   'add {"type": "NEWPID"}')
    for i, network in enumerate(config.networks):
        if network.type == "veth":
            ctx.report(f"networks[{i}].type", f"a veth needs root (its host end joins a host bridge); {SLIRP_HINT}")
    from nsinit.cgroups.rootless import check_limits

    check_limits(ctx, config, caller.uid)
    return config


def _with_maps(ctx: Any, config: Config, caller: Caller) -> Config:
    changes = {}
    for kind in ("uid", "gid"):
        field = f"{kind}_mappings"
        maps: tuple[IdMap, ...] = getattr(config, field)
        if not maps:
            changes[field] = tuple(caller.default_maps(kind))
            continue
        problem = caller.map_problem(kind, maps)
        if problem is not None:
            ctx.report(f"{field}[{problem[0]}]", problem[1])
    return replace(config, **changes) if changes else config


def _devpts_without_unmapped_gid(config: Config) -> Config:
    """Drop devpts's ``gid=N`` when N is not mapped in the container: the
    kernel refuses the mount (EINVAL) and its ptys then get the gid of
    their opener, as runc's rootless spec does."""
    mounts = []
    for mount in config.mounts:
        if mount.device == "devpts":
            mount = _without_unmapped_gid(mount, config.gid_mappings)
        mounts.append(mount)
    return replace(config, mounts=tuple(mounts))


def _without_unmapped_gid(mount: MountConfig, gid_maps: tuple[IdMap, ...]) -> MountConfig:
    kept = []
    for option in mount.data.split(","):
        if option.startswith("gid=") and option[4:].isdigit():
            gid = int(option[4:])
            if not any(m.container_id <= gid < m.container_id + m.size for m in gid_maps):
                continue
        kept.append(option)
    return replace(mount, data=",".join(o for o in kept if o))
