"""``nsinit-runc exec``: a process joined to a running (or created) container.

Apart from nsinit/oci/cli.py, which imports it only for exec: the
per-container commands an engine runs (state, start, kill, delete) never
load it (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.oci.cli import Globals


def cmd_exec(globals_: Globals, args: dict[str, Any]) -> int:
    """Run a process in a running (or created) container: conmon's and the
    shim's ``exec --process F --detach --pid-file P [--console-socket S]``,
    or runc's flag form; without --detach, exit with the process's status."""
    from nsinit.oci import process as oci_process

    _refuse_exec_flags(args)
    container = container_for_exec(globals_, args["ID"])
    if args["--process"]:
        process = oci_process.load_process_file(args["--process"])
        if args["--tty"]:
            process.tty = True
    else:
        from nsinit.lifecycle.join import recorded_config

        process = oci_process.process_from_flags(args, recorded_config(container.require_state()).capabilities)
    process.console_socket = args["--console-socket"]
    if process.tty is None:
        process.tty = False  # runc: a terminal only when asked, whatever nsinit-runc's stdin is
    detach = bool(args["--detach"])
    if detach and process.tty and not process.console_socket:
        from nsinit.lifecycle.console import NO_SOCKET

        raise NsinitError("", f"{NO_SOCKET} (--tty with --detach: the pty master goes to --console-socket)")
    try:
        if not detach and not args["--pid-file"] and not process.console_socket:
            status = container.join(process)  # relays a terminal and forwards signals, as runc exec does
            assert isinstance(status, int)
            return status
        container.join(process, detach=True)
        if args["--pid-file"]:
            oci_process.write_pid_file(args["--pid-file"], process.pid)
    except NsinitError as err:
        raise oci_process.as_engines_read_it(err) from None
    # Detached: the process is our child until we exit, then the caller's
    # (conmon and the shim are child subreapers and wait for it).
    return 0 if detach else process.wait()


def _refuse_exec_flags(args: dict[str, Any]) -> None:
    if args["--preserve-fds"] not in ("0", None):
        raise NsinitError("", "--preserve-fds: not supported: a joined process gets fds 0-2 only")
    if args["--cgroup"]:
        raise NsinitError("", "--cgroup: not supported: a joined process enters the container's own cgroups")
    if args["--ignore-paused"]:
        # The joined process moves itself into the frozen cgroups first
        # thing: it would freeze there before its setup, and exec with it.
        raise NsinitError("", "--ignore-paused: not supported: a process joining a paused container freezes "
                              "before it is set up (resume it first)")


def container_for_exec(globals_: Globals, container_id: str) -> Any:
    """The container ``container_id``, in a state a process can join:
    error texts as runc's, which containerd and podman match."""
    container = container_by_id(globals_, container_id)
    status = container.status_with_record()[0]
    if status in ("none", "stale"):
        raise NsinitError("", f'container "{container_id}" does not exist')
    if status == "stopped":
        raise NsinitError("", f'cannot exec in a stopped container: container "{container_id}" is not running')
    if status == "paused":
        raise NsinitError("", f'cannot exec in a paused container: container "{container_id}" is paused')
    if status == "creating":
        raise NsinitError("", f'container "{container_id}" is still being created: container not running')
    return container


def container_by_id(globals_: Globals, container_id: str) -> Any:
    """The container ``container_id`` of the state root (the Factory's);
    a join reads the config recorded at its creation, never a file."""
    from nsinit.oci.commands import load_container

    container = load_container(globals_, container_id)  # its warnings go to the log, not to our stderr
    container.read_config_on_create = True  # a join needs no config.json (Container.for_exec)
    return container
