"""nsinit-runc checkpoint and restore: runc's flags onto the library's
``FactoryContainer.checkpoint`` / ``restore`` (nsinit/criu/).

Each runc flag the library's CriuOptions has is mapped; the others are
refused by name, in one line, before anything is done.  The global
``--criu PATH`` is the factory's criu binary.  As runc: the images
default to ./checkpoint, a checkpoint without --leave-running removes the
container, and ``restore --detach`` leaves the restored init the caller's
child (conmon and the shim are subreapers and wait for it) with nothing
of nsinit-runc in between; without --detach, nsinit-runc waits for it and
exits with its status.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Iterator

    from nsinit.criu.options import CriuOptions
    from nsinit.lifecycle.factory import Factory
    from nsinit.oci.cli import Globals

DEFAULT_IMAGES = "checkpoint"   # runc's default --image-path, in the current directory
# runc flag -> why nsinit does not take it.
UNSUPPORTED = {
    "--parent-path": "nsinit's checkpoint has no parent images (pre-dump chains)",
    "--lazy-pages": "nsinit has no lazy migration",
    "--status-fd": "nsinit has no lazy migration (its --status-fd)",
    "--auto-dedup": "nsinit does not deduplicate images",
    "--lsm-profile": "nsinit restores the checkpointed LSM profile only",
    "--lsm-mount-context": "nsinit restores the checkpointed mount contexts only",
}
# runc's --empty-ns names (runtime-spec namespace types) -> CLONE_NEW* bits.
EMPTY_NS = {"network": 0x40000000, "mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000,
            "user": 0x10000000, "pid": 0x20000000, "cgroup": 0x02000000}


def factory_with_criu(globals_: Globals) -> Factory:
    from nsinit.lifecycle.factory import Factory

    return Factory(globals_.root, criu_path=globals_.criu)


def refuse_unsupported(args: dict[str, Any]) -> None:
    for flag, why in UNSUPPORTED.items():
        if args.get(flag):
            raise NsinitError("", f"{flag}: not supported: {why}")


def criu_options(globals_: Globals, args: dict[str, Any], *, images_default: str) -> CriuOptions:
    from nsinit.criu.options import CriuOptions

    refuse_unsupported(args)
    empty = 0
    if args.get("--empty-ns"):
        name = args["--empty-ns"]
        if name not in EMPTY_NS:
            raise NsinitError("", f'--empty-ns: "{name}" is not one of {", ".join(EMPTY_NS)}')
        empty = EMPTY_NS[name]
    opts = CriuOptions(
        images_directory=os.path.abspath(args["--image-path"] or images_default),
        work_directory=os.path.abspath(args["--work-path"]) if args["--work-path"] else "",
        leave_running=bool(args.get("--leave-running")), tcp_established=bool(args["--tcp-established"]),
        external_unix_connections=bool(args["--ext-unix-sk"]), shell_job=bool(args["--shell-job"]),
        file_locks=bool(args["--file-locks"]), pre_dump=bool(args.get("--pre-dump")),
        page_server=args.get("--page-server") or "", manage_cgroups_mode=args["--manage-cgroups-mode"] or "",
        empty_namespaces=empty, criu_path=globals_.criu,
    )
    opts.check()
    return opts


def cmd_checkpoint(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit.oci.commands import live_status

    opts = criu_options(globals_, args, images_default=DEFAULT_IMAGES)
    container = factory_with_criu(globals_).load(args["ID"], warn=globals_.warn)
    status, _current = live_status(container)
    if status == "created":
        raise NsinitError("", f'cannot checkpoint container "{container.id}": it is created, not running')
    with said_once("checkpoint"):
        container.checkpoint(opts)  # without --leave-running (or --pre-dump), the container is gone after
    return 0


@contextmanager
def said_once(command: str) -> Iterator[None]:
    """The library's "restore: ..." under nsinit-runc's own "restore: " prefix: once."""
    try:
        yield
    except NsinitError as err:
        if err.step == command:
            err.step = ""
        raise


def cmd_restore(globals_: Globals, args: dict[str, Any]) -> int:
    """The bundle and the images checked first (nothing made on a bad one),
    then the id, then the restore; a failure removes the id again."""
    from nsinit.container import Process
    from nsinit.lifecycle.hooks import HookPlan
    from nsinit.oci.create_commands import load_checked_bundle
    from nsinit.oci.create_commands import set_child_subreaper, write_pid_file
    from nsinit.record import replace

    container_id = args["ID"]
    opts = criu_options(globals_, args, images_default=DEFAULT_IMAGES)
    pid_file = os.path.abspath(args["--pid-file"]) if args["--pid-file"] else None
    spec = load_checked_bundle(globals_, args["--bundle"], container_id)
    if spec.config.tty:
        raise NsinitError("", "config.json: process.terminal is true: nsinit checkpoints no container "
                              "with a terminal, so none is restored with one")
    if args["--console-socket"]:
        raise NsinitError("", "--console-socket: cannot use a console socket without a terminal "
                              "(process.terminal is false)")
    if args["--no-pivot"]:
        spec = replace(spec, config=replace(spec.config, no_pivot_root=True))  # the library refuses it, by name
    detach = bool(args["--detach"])
    if not detach and not args["--no-subreaper"]:
        set_child_subreaper()  # the init's orphans come to us, as runc restore's
    container = factory_with_criu(globals_).create(container_id, spec, warn=globals_.warn)
    hooks = HookPlan.of_spec(spec, container_id)
    process = Process(args=list(spec.args))

    def restored(pid: int) -> None:
        if pid_file:
            write_pid_file(pid_file, pid)

    with said_once("restore"):
        if not detach:
            return container.restore(process, opts, on_restored=restored, hooks=hooks)
        container.restore(process, opts, detach=True, hooks=hooks)  # recorded: delete runs the poststop ones
    try:
        restored(process.pid)
    except BaseException:
        container.destroy()
        raise
    return 0
