"""OCI hooks at their moments of a container's life (runtime-spec config.md, runtime.md).

nsinit/oci/hooks.py runs hooks; this module says when and where, beside
the lifecycle steps.  The library takes them as a ``HookPlan``
(``Container.create(process, hooks=...)``): the OCI front door passes its
config.json's, the 2014 one none, and without a plan nothing here runs.

- ``prestart`` and ``createRuntime``: the init, its namespaces made and its
  mounts done, stops before pivot_root (before the chroot without a mount
  namespace) and asks its creator over the sync socket (``hooks``), which
  runs them in the runtime's namespaces, then answers with the state the
  init needs for the rest.  runc does the same through its init pipe
  (procHooks, libcontainer/process_linux.go).
- ``createContainer``: then, run by the init itself, before pivot_root: in
  the container's mount namespace (and its other namespaces), with the
  host's paths still reachable, as runc's init runs them
  (libcontainer/rootfs_linux.go).  A failure of any of these three fails
  the creation, which unwinds everything.
- ``startContainer``: by the init, after ``start`` released it and before
  the exec of the user's command, in the container (paths resolve in its
  root); a failure reaches the starter through the exec fifo and fails
  ``start``.
- ``poststart``: by ``start``, once the command runs; ``poststop``: by
  ``delete``, once the container is removed, and by a create that failed
  from its hooks on, once it has unwound (runc's destroy).  Both in the runtime's namespaces;
  their failures are warnings.

The plan is recorded in the container's state.json (``State.hooks``) at
creation: ``start`` and ``delete`` run in other processes, later.

A restore (``Container.restore(..., hooks=...)``, nsinit/criu/restore.py)
runs what runc's does (criuNotifications, libcontainer/criu_linux.go):
prestart and createRuntime when criu says "setup-namespaces" (the restored
init's host pid in the state; a failure fails the restore, which unwinds
and then runs poststop, as a failed create), poststop at its removal, and
none of createContainer, startContainer, poststart: the container was
created and started before its checkpoint.
"""
from __future__ import annotations

import os

from nsinit import messages
from nsinit.errors import NsinitError
from nsinit.oci.hooks import HOOK_KINDS, Hook, Hooks, run_hooks
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

    from nsinit.lifecycle.launch import _Launch
    from nsinit.oci.spec import OciSpec
    from nsinit.state import State

STEP = "hooks"
# At the hook point the init sends ``hooks``; its creator answers
# ``hooks_ran`` with the state (nsinit/messages.py).


@record(frozen=True)
class HookPlan:
    """A container's hooks, and who the container is to them (their state JSON)."""
    hooks: Hooks
    container_id: str
    bundle: str
    oci_version: str
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of_spec(cls, spec: OciSpec, container_id: str) -> HookPlan | None:
        """The plan of a config.json; None when it has no hook at all."""
        if spec.hooks is None or not any(spec.hooks.of_kind(kind) for kind, _ in HOOK_KINDS):
            return None
        return cls(spec.hooks, container_id, spec.bundle, spec.oci_version, spec.annotations)

    def state(self, status: str, pid: int) -> dict[str, Any]:
        """runtime.md "State", as a hook reads it on stdin."""
        return {"ociVersion": self.oci_version, "id": self.container_id, "status": status, "pid": pid,
                "bundle": self.bundle, "annotations": dict(self.annotations)}

    def to_record(self) -> dict[str, Any]:
        return {"id": self.container_id, "bundle": self.bundle, "ociVersion": self.oci_version,
                "annotations": dict(self.annotations),
                "hooks": {kind: [{"path": h.path, "args": list(h.args), "env": list(h.env), "timeout": h.timeout}
                                 for h in self.hooks.of_kind(kind)] for kind, _ in HOOK_KINDS}}

    @classmethod
    def from_record(cls, recorded: dict[str, Any]) -> HookPlan | None:
        """The plan state.json holds (written by to_record), or None."""
        if not recorded:
            return None
        kinds = {attribute: tuple(Hook(path=h["path"], args=tuple(h["args"]), env=tuple(h["env"]),
                                       timeout=h["timeout"]) for h in recorded["hooks"].get(kind, ()))
                 for kind, attribute in HOOK_KINDS}
        return cls(Hooks(**kinds), recorded["id"], recorded["bundle"], recorded["ociVersion"],
                   tuple(recorded["annotations"].items()))


def recorded_plan(current: State) -> HookPlan | None:
    return HookPlan.from_record(current.hooks)


# --- the creator's side --------------------------------------------------------

def run_runtime_hooks(launch: _Launch) -> None:
    """The init asked (``hooks``): prestart, then createRuntime, here in
    the runtime's namespaces; then tell the init the state to go on with."""
    plan: HookPlan | None = getattr(launch.container, "hooks", None)
    if plan is None:
        raise NsinitError(STEP, "the container's init asked for hooks it has none of")
    launch.container.hooks_begun = True
    state = run_prestart_and_create_runtime(plan, launch.pid)
    messages.send(launch.sync_fd, messages.hooks_ran(state))


def run_prestart_and_create_runtime(plan: HookPlan, pid: int) -> dict[str, Any]:
    """prestart, then createRuntime, with ``pid`` (the init, on the host) in
    the state; the first failure raises.  At create, and at a restore once
    criu has made the namespaces (nsinit/criu/restore.py)."""
    state = plan.state("creating", pid)
    for kind in ("prestart", "createRuntime"):
        run_hooks(plan.hooks, kind, state)
    return state


def run_poststart(current: State, warn: Callable[[str], None]) -> None:
    plan = recorded_plan(current)
    if plan is not None:
        _warn_all(run_hooks(plan.hooks, "poststart", plan.state("running", current.init_pid)), warn)


def run_poststop(current: State, warn: Callable[[str], None]) -> None:
    plan = recorded_plan(current)
    if plan is not None:
        run_poststop_of(plan, warn)


def run_poststop_of(plan: HookPlan, warn: Callable[[str], None]) -> None:
    """After delete, and after a failed create (which unwound everything:
    runtime.md's lifecycle goes on at the deletion, as runc's destroy does)."""
    _warn_all(run_hooks(plan.hooks, "poststop", plan.state("stopped", 0)), warn)


def _warn_all(warnings: list[str], warn: Callable[[str], None]) -> None:
    for text in warnings:
        warn(text)


# --- the init's side (nsinit/child.py) -------------------------------------------

def hook_point(hooks: Hooks, sync_fd: int) -> dict[str, Any]:
    """Before pivot_root: the creator runs its hooks, then we run the
    createContainer ones here, in the container's mount namespace.
    Returns the state, for startContainer."""
    import subprocess  # noqa: F401  # loaded now: after pivot_root the host's files are gone

    messages.send(sync_fd, messages.hooks())
    reply = messages.receive(sync_fd)
    if reply is None:
        os._exit(125)  # the creator failed (a hook did, and it says so) or died
    if reply["kind"] != "hooks_ran":
        raise NsinitError(STEP, f"unexpected message {reply!r}")
    state: dict[str, Any] = reply["state"]
    run_hooks(hooks, "createContainer", state)
    return state


def run_start_container(hooks: Hooks, state: dict[str, Any]) -> None:
    """Released by start, before the command's exec: in the container."""
    run_hooks(hooks, "startContainer", {**state, "status": "created"})
