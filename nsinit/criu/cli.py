"""``nsinit checkpoint`` and ``nsinit restore``: options to CriuOptions, and
--detach.  Failures exit 1, as the other lifecycle commands do."""
from __future__ import annotations

import os
import sys

from nsinit.criu.options import CriuOptions
from nsinit.errors import EXIT_COMMAND_FAILED, NsinitError, describe_oserror, lines_with_notes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def options_from_args(args: dict[str, Any]) -> CriuOptions:
    return CriuOptions(
        images_directory=args.get("--image-path") or "", work_directory=args.get("--work-path") or "",
        leave_running=bool(args.get("--leave-running")), tcp_established=bool(args.get("--tcp-established")),
        external_unix_connections=bool(args.get("--ext-unix-sk")), shell_job=bool(args.get("--shell-job")),
        file_locks=bool(args.get("--file-locks")), pre_dump=bool(args.get("--pre-dump")),
        page_server=args.get("--page-server") or "", manage_cgroups_mode=args.get("--manage-cgroups-mode") or "",
        detach=bool(args.get("--detach")),
    )


def cmd_checkpoint(args: dict[str, Any]) -> int:
    from nsinit.container import Container

    opts = options_from_args(args)
    try:
        images = Container.attach(args["--root"]).checkpoint(opts)
    except NsinitError as err:
        err.exit_code = EXIT_COMMAND_FAILED
        raise
    print(f"nsinit: checkpoint written to {images}", file=sys.stderr)
    return 0


def cmd_restore(args: dict[str, Any]) -> int:
    from nsinit.container import Container

    opts = options_from_args(args)
    container = Container.for_exec(args["--root"], args["--config"], trace=args["--trace"])
    if opts.detach:
        return restore_detached(container, opts)
    return container.restore(None, opts)


def restore_detached(container: Any, opts: CriuOptions) -> int:
    """Fork the supervisor into a session of its own; the foreground waits
    until the container is restored (or the restore failed) and says so."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.setsid()
        pending = [write_fd]   # the foreground's pipe, until it has its answer
        code = EXIT_COMMAND_FAILED  # anything unforeseen: the foreground sees the pipe close
        try:
            code = container.restore(None, opts, on_restored=lambda init: _tell(pending, f"ok {init}"))
        except NsinitError as err:
            _tell(pending, "error " + "\n".join(lines_with_notes(str(err), err)))
            code = err.exit_code
        except OSError as err:
            _tell(pending, "error " + "\n".join(lines_with_notes(f"restore: {describe_oserror(err)}", err)))
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        answer = f.read().decode(errors="replace")
    if answer.startswith("ok "):
        print(f"nsinit: restored, init pid {answer.split()[1]}", file=sys.stderr)
        return 0
    os.waitpid(pid, 0)
    raise NsinitError("", answer[len("error "):] if answer.startswith("error ") else "restore: the supervisor died",
                      EXIT_COMMAND_FAILED)


def _tell(pending: list[int], text: str) -> None:
    if not pending:
        return
    fd = pending.pop()
    os.write(fd, text.encode())
    os.close(fd)
