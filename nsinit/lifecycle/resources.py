"""A live container's cgroups: pause and resume (the freezer), stats, update.

Container.pause, resume, stats and update are these, imported when called:
apart from nsinit/container.py, which every nsinit-runc command loads
(docs/DEVELOPING.md, "nsinit-runc's hot commands").  pause, resume and
update rewrite state.json, so they hold the root lock (a flock: callers
must not hold it already).
"""
from __future__ import annotations

from nsinit import state

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.container import Container


def set_frozen(container: Container, frozen: bool) -> None:
    with container.locked():
        current = container.require_state()
        manager = container.cgroups(current)
        if frozen:
            manager.freeze()
        else:
            manager.thaw()
        # A created container (paused before start) is created again once thawed.
        current.status = "paused" if frozen else "created" if container._exec_fifo_exists() else "running"
        state.update_state(container.root, current)


def stats(container: Container) -> dict[str, Any]:
    """Cgroup statistics (libcontainer's shape) plus ``interfaces``: the
    counters of every interface of the container's network namespace
    (rx/tx bytes, packets, errors, dropped; none without one of its own)."""
    from nsinit.network.counters import namespace_interfaces

    current = container.require_state()
    out = container.cgroups(current).stats()
    out["interfaces"] = (namespace_interfaces(current.init_pid, current.network_state)
                         if "NEWNET" in current.namespace_inodes else [])
    return out


def update(container: Container, resources: dict[str, object]) -> None:
    """Apply limits (CgroupResources field names) live, and record them
    in state.json's config so ``nsinit state`` and later updates see them."""
    from nsinit.config import recorded
    from nsinit.config.model import CgroupResources

    changes = {key: value for key, value in resources.items() if value is not None}
    with container.locked():
        current = container.require_state()
        applied = container.cgroups(current).update(CgroupResources(**changes))  # type: ignore[arg-type]
        current.config = recorded.with_resources(current.config, applied or changes)
        state.update_state(container.root, current)
