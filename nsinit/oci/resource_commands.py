"""``nsinit-runc pause``, ``resume`` and ``update``: a live container's cgroups.

Apart from nsinit/oci/commands.py, whose commands an engine runs for every
container (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

import sys

from nsinit.errors import ContainerPaused, NsinitError
from nsinit.oci.commands import live_status, load_container

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.lifecycle.factory import FactoryContainer
    from nsinit.oci.cli import Globals


def cmd_pause(globals_: Globals, args: dict[str, Any]) -> int:
    container = load_container(globals_, args["ID"])
    status = require_live_status(container)
    if status == "paused":
        raise ContainerPaused("", f'container "{container.id}" is paused already')
    container.pause()
    return 0


def cmd_resume(globals_: Globals, args: dict[str, Any]) -> int:
    container = load_container(globals_, args["ID"])
    status = require_live_status(container)
    if status != "paused":
        raise NsinitError("", f'container "{container.id}" is {status}: container not paused')
    container.resume()
    return 0


def require_live_status(container: FactoryContainer) -> str:
    return live_status(container)[0]


# runc update's flags -> LinuxResources JSON paths (runc's own mapping).
_UPDATE_FLAGS: tuple[tuple[str, tuple[str, str], str], ...] = (
    ("--blkio-weight", ("blockIO", "weight"), "int"),
    ("--cpu-period", ("cpu", "period"), "int"),
    ("--cpu-quota", ("cpu", "quota"), "int"),
    ("--cpu-share", ("cpu", "shares"), "int"),
    ("--cpu-rt-period", ("cpu", "realtimePeriod"), "int"),
    ("--cpu-rt-runtime", ("cpu", "realtimeRuntime"), "int"),
    ("--cpuset-cpus", ("cpu", "cpus"), "str"),
    ("--cpuset-mems", ("cpu", "mems"), "str"),
    ("--kernel-memory", ("memory", "kernel"), "bytes"),
    ("--kernel-memory-tcp", ("memory", "kernelTCP"), "bytes"),
    ("--memory", ("memory", "limit"), "bytes"),
    ("--memory-reservation", ("memory", "reservation"), "bytes"),
    ("--memory-swap", ("memory", "swap"), "bytes"),
    ("--pids-limit", ("pids", "limit"), "int"),
)


def cmd_update(globals_: Globals, args: dict[str, Any]) -> int:
    """--resources FILE (or - for stdin) as runtime-spec LinuxResources, and
    runc's flags on top; each field mapped onto Container.update, and one
    nsinit cannot apply refused by name (the spec parser's rules)."""
    from nsinit.oci.spec import parse_resources_update

    for flag in ("--l3-cache-schema", "--mem-bw-schema"):
        if args[flag] is not None:
            raise NsinitError("", f"{flag}: not supported: nsinit has no Intel RDT")
    resources = read_resources(args["--resources"]) if args["--resources"] else {}
    for flag, (section, key), kind in _UPDATE_FLAGS:
        if args[flag] is not None:
            resources.setdefault(section, {})[key] = flag_value(flag, args[flag], kind)
    if not resources:
        raise NsinitError("", "nothing to update: give --resources FILE or a limit flag")
    source = "--resources" if args["--resources"] else "update"
    changes, warnings = parse_resources_update(resources, source)
    for warning in warnings:
        globals_.warn(warning)
    container = load_container(globals_, args["ID"])
    require_live_status(container)
    container.update(**changes)
    return 0


def read_resources(path: str) -> dict[str, Any]:
    from nsinit import jsontext

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
    except OSError as err:
        raise NsinitError("", f"--resources {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise NsinitError("", f"--resources {path}: not UTF-8 text") from None
    where = "stdin" if path == "-" else path
    try:
        data = jsontext.loads(text)
    except ValueError as err:
        raise NsinitError("", f"--resources {where}: invalid JSON: {err}") from None
    if not isinstance(data, dict):
        raise NsinitError("", f"--resources {where}: must be a JSON object (LinuxResources)")
    return data


def flag_value(flag: str, text: str, kind: str) -> object:
    if kind == "str":
        return text
    if kind == "bytes":
        from nsinit.config.sizes import parse_size

        size = parse_size(text)
        if size is None:
            raise NsinitError("", f'{flag}: "{text}" is not a size (e.g. 268435456, 256M, -1)')
        return size
    try:
        return int(text)
    except ValueError:
        raise NsinitError("", f'{flag}: "{text}" is not a number') from None
