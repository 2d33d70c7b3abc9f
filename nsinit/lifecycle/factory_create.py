"""What only a creation runs of the Factory: the claim of an id, oci.json's writer, the tmpfs root.

Factory.create and Factory(tmpfs_root=True) import it when called: the
commands that load a container by id (nsinit-runc state, start, kill,
delete) never load it (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

import os

from nsinit import jsontext, state
from nsinit.errors import ConfigInvalid, IdInUse, NsinitError
from nsinit.lifecycle.factory import FACTS_FILE, FactoryContainer, OciFacts, remove_id_dir, rfc3339_now
from nsinit.record import asdict

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Callable

    from nsinit.config.model import Config
    from nsinit.lifecycle.factory import Factory
    from nsinit.oci.spec import OciSpec


def claim(factory: Factory, container_id: str, config: Config | OciSpec, *, trace: bool | str = False,
          warn: Callable[[str], None] | None = None) -> FactoryContainer:
    """Factory.create: mkdir of the id dir (two creators of one id cannot
    both win), then oci.json; the container, which nothing runs yet."""
    from nsinit.config.model import Config
    from nsinit.oci.spec import OciSpec

    path = factory.path_of(container_id)
    if isinstance(config, OciSpec):
        facts = OciFacts(id=container_id, bundle=config.bundle, rootfs=config.config.rootfs,
                         created="", oci_version=config.oci_version,
                         annotations=dict(config.annotations))
        config = config.config
    elif isinstance(config, Config):
        facts = OciFacts(id=container_id, bundle="", rootfs=config.rootfs, created="")
    else:
        raise ConfigInvalid("factory", "", f"a Config or an OciSpec is needed, not {type(config).__name__}")
    facts.created = rfc3339_now()
    facts.owner_uid = os.geteuid()
    facts.creator_pid = os.getpid()
    facts.creator_start_time = state.read_start_time(os.getpid()) or 0
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise IdInUse("", f'container "{container_id}" already exists (in {factory.root})') from None
    except OSError as err:
        raise NsinitError("factory", f"{path}: {err.strerror or err}") from None
    try:
        write_facts(path, facts)
    except BaseException:
        remove_id_dir(path)
        raise
    return FactoryContainer(factory, container_id, path, config, facts, trace=trace, warn=warn)


def write_facts(path: str, facts: OciFacts) -> None:
    """oci.json, whole or not at all (temp file + rename), 0600."""
    data = (jsontext.dumps(asdict(facts), indent=2, sort_keys=True) + "\n").encode()
    state.write_atomic(os.path.join(path, FACTS_FILE), data, 0o600)


def mount_tmpfs_unless_mounted(path: str) -> None:
    """libcontainer's TmpfsRoot: the state root on a tmpfs of its own, so
    that a reboot cannot leave stale ids behind on a disk."""
    from nsinit import _native, mountinfo

    if any(row[2] == path for row in mountinfo.read()):
        return
    try:
        _native.mount("tmpfs", path, "tmpfs", 0, "mode=0700")
    except OSError as err:
        raise NsinitError("factory", f"tmpfs_root: mount tmpfs on {path}: {err.strerror or err}") from None
