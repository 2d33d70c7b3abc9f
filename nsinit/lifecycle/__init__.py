"""A container's life, one role per module; nsinit/container.py is the facade over them.

- launch.py: what creating and joining share (the child's plan and stdio,
  the sync socket, clone, the seccomp filter compiled before clone and its
  notify fd handed over, the child's messages, the trace's steps).
- create.py: the creation (cgroups → clone → id maps, veths, record), the
  one path of ``nsinit exec`` and ``create`` alike.
- join.py: a process beside PID 1 of a live container (pin by pidfd, setns).
- supervise.py: the 2014 ``nsinit exec``'s supervision: signals forwarded
  from clone on, the wait and pty relay, the exit status, the OOM killer told.
- gc.py: ``nsinit gc``, the records whose init and nsinit are both gone.

And the two-step lifecycle: create a container with its init waiting, start
it later.  libcontainer's split (Start sets up, Exec releases, Run does
both), which podman's conmon and containerd's shim drive through runc's CLI:

- ``create`` (create.py, ``detached``): every step up to the last one
  before execve, done by the calling process, which clones the init and is
  its parent; then the init waits on an exec fifo in nsinit's private
  record, and ``create`` returns.  Nobody supervises the container from
  then on.
- ``start`` (start.py): from any process, any time later, open the fifo:
  the init execs its command.
- ``destroy`` (destroy.py): the one way a container's cgroups, host veths
  and record are removed, whoever finds it ended (its supervisor, ``nsinit
  delete``, the next command in its root dir, ``nsinit gc``).

The 2014 ``nsinit exec`` (create, or join, and supervise until PID 1 exits)
uses none of the two-step pieces on its way (no fifo, no start).
"""
from __future__ import annotations

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.config.model import Config


# Here, not in create.py, so that ``nsinit explain`` (nsinit/teach/explain.py)
# tells the same order without loading the creation (and the child's modules).
def rootfs_can_precede_go(config: Config, *, hooks: bool, rootless: bool) -> bool:
    """Whether the child may set up its rootfs (mounts, devices, pivot_root,
    restricted paths) before ``go``, while the parent records the container
    (~1 ms: on 2 CPUs, then no wall time).  Those steps need nothing of the
    parent's record; the process's own steps (its user, capabilities,
    exec) still wait for it.  Not where something of the parent's comes
    first: a new user namespace (its id maps, before the child's setresuid),
    namespaces joined by path (joined right after go), OCI hooks (the init
    stops for them before pivot_root), networks the parent sets up (veth,
    routes, slirp4netns, pasta), a rootless one (dumpable until go).  A
    detached init (create) does them before go too: the creator records it
    meanwhile, and only its process steps and its wait for start follow go."""
    return (config.namespace("NEWUSER") is None
            and not any(ns.path for ns in config.namespaces)
            and not hooks and not rootless
            and all(network.type == "loopback" for network in config.networks) and not config.routes)
