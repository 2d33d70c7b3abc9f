"""Containers by id under a state root: libcontainer's Factory.

``Factory(root).create(id, config)`` claims ``<root>/<id>/`` (mkdir: two
creators of one id cannot both win) and returns a ``FactoryContainer``;
``load(id)`` finds it again from any process.  Each container is the same
object the 2014 API makes, rooted at a directory: here its root dir IS
``<root>/<id>/``.  So it has one house, as every nsinit container has:
nsinit's private record under RUN_DIR keyed by that directory's device and
inode, the RootLock on it, the exec fifo, the public ``pid`` and
``state.json`` copies in the directory.  Beside them the id dir holds the
OCI facts nsinit's record has no field for (``oci.json``: id, bundle,
rootfs, created, annotations, who created it), written atomically; the
directory is 0700: only its owner reads what is in it.

Why the id dir and not the rootfs as the root dir: nsinit writes ``pid``
and ``state.json`` into its root dir, and a rootfs is the container's own
``/`` (podman --read-only, or an image shared by several containers);
and two ids on one rootfs are legitimate (``podman run --rootfs DIR``
twice, as runc allows), each with its own record here.

A 2014 container and the factory: a container made by ``nsinit exec`` in
a directory ``<root>/<name>`` is loadable as ``Factory(root).load(name)``
while it runs (no ``oci.json``: its facts come from its record); the
reverse, any nsinit command given ``--root <root>/<id>`` (``nsinit
--root /run/nsinit-runc/c1 state``, ``exec`` to join it, ``kill``...) acts
on the factory's container ``c1``.

Atomic: a failed ``FactoryContainer.create`` (the two-step create of
nsinit/lifecycle/create.py) unwinds its own steps (cgroups, veths, record,
the init) and then removes the id dir, so nothing is left; ``delete`` and
``destroy`` remove the id dir after the container.

What only a creation runs (the claim of an id, oci.json's writer, the
tmpfs root) is nsinit/lifecycle/factory_create.py's: the commands that load
a container by id never load it (docs/DEVELOPING.md, "nsinit-runc's hot
commands").
"""
from __future__ import annotations

import os

from nsinit import jsontext, state
from nsinit.container import Container
from nsinit.errors import ContainerNotExists, InvalidIdFormat, NsinitError
from nsinit.record import field, fields, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

    from nsinit.config.model import Config
    from nsinit.container import Process
    from nsinit.criu.options import CriuOptions
    from nsinit.lifecycle.hooks import HookPlan
    from nsinit.oci.spec import OciSpec

# runc's libcontainer idRegex, ``^[\w+-\.]+$`` (Go: ASCII \w; ``+-\.`` is the
# range from "+" to ".", so "+", ",", "-" and "." too); "." and ".." are
# refused as runc's CleanPath check does.  A set of characters, not a
# regular expression: importing re costs every nsinit-runc command ~4 ms.
ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+,-.")
# The id is a directory name (and, without a cgroupsPath, a cgroup's):
# NAME_MAX, below libcontainer's old 1024, which mkdir would refuse anyway.
MAX_ID_LENGTH = 255
FACTS_FILE = "oci.json"
CGROUP_DRIVERS = ("cgroupfs", "systemd", "rootless")
# What runc's delete without --force refuses.
LIVE_STATUSES = ("running", "paused", "creating")


def is_id_text(name: str) -> bool:
    """Only runc's id characters, at least one."""
    return bool(name) and ID_CHARACTERS.issuperset(name)


def validate_id(container_id: str) -> None:
    if not container_id:
        raise InvalidIdFormat("", "invalid id format: the id is empty")
    if len(container_id) > MAX_ID_LENGTH:
        raise InvalidIdFormat("", f"invalid id format: the id has {len(container_id)} characters "
                                  f"(at most {MAX_ID_LENGTH}: it becomes a directory name)")
    if not is_id_text(container_id) or container_id in (".", ".."):
        raise InvalidIdFormat("", f'invalid id format: "{container_id}" (letters, digits and _ + , - . '
                                  'only; not "." or "..")')


@record
class OciFacts:
    """oci.json: what an OCI client asks of a container that nsinit's record
    does not say (runc's state output and list)."""
    id: str
    bundle: str
    rootfs: str
    created: str                       # RFC3339 with nanoseconds, UTC
    oci_version: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    owner_uid: int = 0
    # The nsinit that is creating the container: until the record exists,
    # a container whose creator lives is "creating", else "stopped".
    creator_pid: int = 0
    creator_start_time: int = 0

    @classmethod
    def from_json(cls, raw: object) -> "OciFacts":
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


class Factory:
    """The state root ``root`` and the containers in it, by id (libcontainer's
    ``New(root, options…)``).

    ``cgroups``: "cgroupfs" (the default) or "rootless" (a plain user's:
    nsinit picks it by itself, see nsinit/rootless.py); "systemd" is an
    error, as these machines have no systemd as PID 1.  ``criu_path`` is
    the criu binary checkpoint and restore run; ``tmpfs_root`` mounts a
    tmpfs on ``root`` unless something is mounted there already.
    """

    def __init__(self, root: str, cgroups: str = "cgroupfs", criu_path: str | None = None,
                 tmpfs_root: bool = False) -> None:
        if cgroups not in CGROUP_DRIVERS:
            raise NsinitError("factory", f'cgroups: "{cgroups}" is not one of {", ".join(CGROUP_DRIVERS)}')
        if cgroups == "systemd":
            from nsinit.cgroups.systemd import refuse_systemd_driver

            raise refuse_systemd_driver("factory")
        self.root = os.path.abspath(root)
        self.cgroups = cgroups
        self.criu_path = criu_path or "criu"
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as err:
            raise NsinitError("factory", f"{self.root}: {err.strerror or err}") from None
        if tmpfs_root:
            from nsinit.lifecycle.factory_create import mount_tmpfs_unless_mounted

            mount_tmpfs_unless_mounted(self.root)

    def path_of(self, container_id: str) -> str:
        validate_id(container_id)
        return os.path.join(self.root, container_id)

    # -- Create and Load ---------------------------------------------------
    def create(self, container_id: str, config: Config | OciSpec, *, trace: bool | str = False,
               warn: Callable[[str], None] | None = None) -> "FactoryContainer":
        """Claim ``container_id`` for a container of ``config`` (a Config, or
        an OciSpec whose bundle and annotations are kept too).  Nothing runs
        yet: ``create(process)`` or ``run(process)`` on the result does that,
        and a failure there removes the id again (nsinit/lifecycle/factory_create.py)."""
        from nsinit.lifecycle.factory_create import claim

        return claim(self, container_id, config, trace=trace, warn=warn)

    def load(self, container_id: str, *, trace: bool | str = False,
             warn: Callable[[str], None] | None = None) -> "FactoryContainer":
        """The container ``container_id``, whatever its status (a stopped one
        stays until it is deleted)."""
        path = self.path_of(container_id)
        facts = read_facts(path)
        owns_dir = facts is not None
        if facts is None:
            facts = facts_of_a_2014_container(container_id, path)
        if facts is None:
            raise ContainerNotExists("", f'container "{container_id}" does not exist')
        container = FactoryContainer(self, container_id, path, None, facts, trace=trace, warn=warn)
        container.owns_dir = owns_dir
        return container

    def ids(self) -> list[str]:
        """Every id the factory made in the state root, sorted (runc's list);
        a 2014 container loadable by name is not among them."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(names):
            if is_id_text(name) and name not in (".", "..") and \
                    os.path.isfile(os.path.join(self.root, name, FACTS_FILE)):
                found.append(name)
        return found


class FactoryContainer(Container):
    """A container of a Factory: a Container rooted at ``<root>/<id>/``
    with an id and the OCI facts.  Every 2014 call works on it as on any."""

    def __init__(self, factory: Factory, container_id: str, path: str, config: Config | None,
                 facts: OciFacts, *, trace: bool | str = False, warn: Callable[[str], None] | None = None) -> None:
        super().__init__(path, config, trace=trace, warn=warn)
        self.factory = factory
        self.id = container_id
        self.facts = facts
        # The id dir is the factory's (made by create); a 2014 container's
        # root dir is its user's, and stays when the container goes.
        self.owns_dir = True

    # -- status in the OCI words --------------------------------------------
    def oci_status(self) -> tuple[str, state.State | None]:
        """(creating|created|running|paused|stopped, the live record or None).
        A container with no record is stopped: its init ended and its
        leftovers were removed (by gc, or by the command that found it dead),
        or it is still being created (its creator lives)."""
        status, current, _why = self.status_with_record()
        return self._oci_status_of(status), current

    def _oci_status_of(self, status: str) -> str:
        """status_with_record's status in the OCI words."""
        if status in ("none", "stale"):
            return "creating" if self._creator_alive() else "stopped"
        return status

    def status(self) -> str:
        """The OCI status, "creating" while its creator still sets it up."""
        return self.oci_status()[0]

    def _creator_alive(self) -> bool:
        facts = self.facts
        return bool(facts.creator_pid) and facts.creator_pid != os.getpid() and \
            state.is_alive(facts.creator_pid, facts.creator_start_time)

    def oci_state(self) -> dict[str, Any]:
        """runc's ``state`` output: pid 0 once stopped."""
        status, current = self.oci_status()
        pid = current.init_pid if current is not None and status != "stopped" else 0
        return {
            "ociVersion": self.facts.oci_version or _spec_version(),
            "id": self.id,
            "pid": pid,
            "status": status,
            "bundle": self.facts.bundle,
            "rootfs": self.facts.rootfs,
            "created": self.facts.created,
            "annotations": dict(self.facts.annotations),
            "owner": "",
        }

    # -- the lifecycle: what the id dir adds ---------------------------------
    def create(self, process: Process, *, hooks: HookPlan | None = None) -> Process:
        """Container.create; on failure the id goes too (libcontainer's
        atomic Create: nothing is left of a container that never was)."""
        try:
            return super().create(process, hooks=hooks)
        except BaseException:
            self.forget()
            raise

    def run(self, process: Process, *, detach: bool = False, new: bool = False,
            created: Callable[[Process], None] | None = None, hooks: HookPlan | None = None) -> int | Process:
        try:
            return super().run(process, detach=detach, new=new, created=created, hooks=hooks)
        except BaseException:
            if self.oci_status()[0] == "stopped":
                self.forget()
            raise

    def delete(self, *, force: bool = False, refuse: Callable[[str], Exception] | None = None) -> None:
        """Container.delete, then the id dir: a stopped container (or one
        whose record is already gone) is what delete is for.  With no record
        and no live creator there is nothing but the id dir: that is looked
        up without reading a record (the delete reads it, under the lock).

        ``refuse``: the error for a running, paused or creating container
        (runc's delete without --force), given its status; otherwise
        ``force`` decides.  The status is the one the delete reads under its
        lock, except while the creator lives: a creation holds the lock
        until its container is created, and a delete of a creating one
        fails at once (runc's), so then it is read without the lock first.
        """
        from nsinit.lifecycle.destroy import delete

        def refuse_live(status: str) -> None:
            oci = self._oci_status_of(status)
            if refuse is not None and oci in LIVE_STATUSES:
                raise refuse(oci)

        creator_alive = self._creator_alive()
        if refuse is not None and creator_alive:
            refuse_live(self.status_with_record()[0])
        if creator_alive or os.path.exists(os.path.join(state.private_dir(self.root), state.STATE_FILE)):
            delete(self, force=force, decide=refuse_live if refuse is not None else None)
        self.forget()

    def destroy(self, grace: float = 2.0) -> None:
        super().destroy(grace)
        self.forget()

    # -- checkpoint and restore: the factory's criu ------------------------------
    def checkpoint(self, opts: CriuOptions | None = None) -> str:
        """Container.checkpoint with the factory's criu unless ``opts`` names one."""
        return super().checkpoint(self._with_criu(opts))

    def restore(self, process: Process | None = None, opts: CriuOptions | None = None, *,
                on_restored: Callable[[int], None] | None = None, detach: bool = False,
                hooks: HookPlan | None = None) -> int:
        """Container.restore with the factory's criu; the id goes when the
        restore fails, and (not detached) once the restored container ended."""
        try:
            status = super().restore(process, self._with_criu(opts), on_restored=on_restored, detach=detach,
                                     hooks=hooks)
        except BaseException:
            if self.oci_status()[0] == "stopped":
                self.forget()
            raise
        if not detach:
            self.forget()
        return status

    def _with_criu(self, opts: CriuOptions | None) -> CriuOptions:
        from nsinit.criu.options import CriuOptions
        from nsinit.record import replace

        opts = opts or CriuOptions()
        return opts if opts.criu_path else replace(opts, criu_path=self.factory.criu_path)

    def forget(self) -> None:
        """Remove the id dir (its container is gone, or never came)."""
        if self.owns_dir:
            remove_id_dir(self.root)


# --- the id dir's files ------------------------------------------------------

def read_facts(path: str) -> OciFacts | None:
    try:
        raw = jsontext.loads(state.read_own_file(os.path.join(path, FACTS_FILE)))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise NsinitError("factory", f"{path}/{FACTS_FILE}: {err.strerror or err}") from None
    except ValueError:
        raise NsinitError("factory", f"{path}/{FACTS_FILE} is not valid JSON (truncated?)") from None
    try:
        return OciFacts.from_json(raw)
    except (TypeError, ValueError):
        raise NsinitError("factory", f"{path}/{FACTS_FILE} does not hold a container's facts") from None


def facts_of_a_2014_container(container_id: str, path: str) -> OciFacts | None:
    """A container ``nsinit exec`` made with ``path`` as its root dir, while
    its record lives: the factory can load it too."""
    if not os.path.isdir(path):
        return None
    try:
        record = state.read_record(state.private_dir(path))
    except (state.StaleStateError, OSError):
        return None
    if record is None or state.why_not_alive(record) is not None:
        return None
    return OciFacts(id=container_id, bundle=path, rootfs=record.rootfs, created=record.created)


def remove_id_dir(path: str) -> None:
    """oci.json, the public copies of the record (already gone when its
    container was removed), temp files of a writer killed mid-write, and
    the directory.  Anything else in it is not ours: it is left, with the
    directory (an error says so)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        if name in (FACTS_FILE, state.PID_FILE, state.STATE_FILE) or ".tmp" in name:
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise NsinitError("factory", f"cannot remove {path}: {err.strerror or err}") from None


def rfc3339_now() -> str:
    from nsinit.oci.log import rfc3339_now as now

    return now()


def _spec_version() -> str:
    from nsinit.oci import SPEC_VERSION

    return SPEC_VERSION
