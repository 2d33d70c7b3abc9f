"""``nsinit-runc create`` and ``run``: a container from a bundle.

``process_of`` makes the init's Process from a spec (a terminal's master
goes to --console-socket), and the spec's OCI hooks go to the library with
the creation (``HookPlan``): it runs each at its moment, in create, start
and delete (nsinit/lifecycle/hooks.py).  Apart from nsinit/oci/commands.py
(start, state, kill, delete): those never load the creation's code
(docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.container import Process
    from nsinit.lifecycle.factory import FactoryContainer
    from nsinit.lifecycle.hooks import HookPlan
    from nsinit.oci.cli import Globals
    from nsinit.oci.spec import OciSpec


def load_checked_bundle(globals_: Globals, bundle: str, container_id: str) -> Any:
    """The bundle's OciSpec; warnings (unknown keys) go to the log only."""
    from nsinit.oci.spec import load_bundle

    spec, warnings = load_bundle(bundle, container_id)
    for warning in warnings:
        globals_.warn(warning)
    return spec


def load_spec_of(globals_: Globals, container: FactoryContainer) -> OciSpec:
    """The bundle's config.json of a loaded container, read again (exec
    and the hooks need what only the spec has)."""
    return load_checked_bundle(globals_, container.facts.bundle, container.id)  # type: ignore[no-any-return]


def process_of(spec: OciSpec, console_socket: str | None) -> Process:
    """The init's Process: process.args of the spec (env, user, cwd and the
    rest are the Config's already); with process.terminal, its pty's master
    goes to ``console_socket`` (runc's error without one: the library's)."""
    from nsinit.container import Process

    if not spec.args:
        raise NsinitError("", "config.json: process.args: the container needs a command")
    if spec.config.tty:
        if not console_socket:  # before anything is made
            from nsinit.lifecycle.console import NO_SOCKET

            raise NsinitError("", f"config.json: process.terminal is true: {NO_SOCKET} "
                                  "(the engine receives the pty master there)")
        return Process(args=list(spec.args), tty=True, console_socket=console_socket,
                       console_size=spec.console_size)
    return Process(args=list(spec.args), tty=False)


def cmd_create(globals_: Globals, args: dict[str, Any]) -> int:
    create_container(globals_, args)
    return 0


def create_container(globals_: Globals, args: dict[str, Any]) -> tuple[FactoryContainer, Process, OciSpec]:
    """The bundle read and checked first (a bad one fails with its field named
    and nothing made), then the id, then the container; a failure at any
    step removes what the earlier ones made."""
    from nsinit.lifecycle.factory import Factory
    from nsinit.record import replace

    container_id = args["ID"]
    preserve = parse_preserve_fds(args["--preserve-fds"])
    pid_file = os.path.abspath(args["--pid-file"]) if args["--pid-file"] else None
    spec = load_checked_bundle(globals_, args["--bundle"], container_id)
    if args["--no-pivot"]:
        spec = replace(spec, config=replace(spec.config, no_pivot_root=True))
    if args["--no-new-keyring"]:
        spec = replace(spec, config=replace(spec.config, no_new_keyring=True))
    process = process_of(spec, args["--console-socket"])
    if preserve:
        process = with_preserved_fds(process, preserve)
    container = Factory(globals_.root).create(container_id, spec, warn=globals_.warn)
    container.create(process, hooks=hook_plan(spec, container_id))  # removes the id again if it fails
    try:
        if pid_file:
            write_pid_file(pid_file, process.pid)
    except BaseException:
        container.destroy()
        raise
    return container, process, spec


def hook_plan(spec: OciSpec, container_id: str) -> HookPlan | None:
    """The spec's hooks for the library (HookPlan.of_spec), None without any:
    most bundles have none, and their create loads no hook code then
    (nsinit/lifecycle/hooks.py, nsinit/oci/hooks.py: ~1 ms)."""
    if spec.hooks is None:
        return None
    from nsinit.lifecycle.hooks import HookPlan

    return HookPlan.of_spec(spec, container_id)


def parse_preserve_fds(text: str | None) -> int:
    if text is None or text == "0":
        return 0
    if not (text.isascii() and text.isdigit()):
        raise NsinitError("", f'--preserve-fds: "{text}" is not a number of fds')
    count = int(text)
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise NsinitError("", f"--preserve-fds {count}: fd {fd} is not open") from None
    return count


def with_preserved_fds(process: Process, count: int) -> Process:
    """fds 3..3+count-1 of nsinit-runc, as the init's own 3.. (runc's
    --preserve-fds), through the Process's extra_files (issue 16's field)."""
    from nsinit.record import replace

    return replace(process, extra_files=list(range(3, 3 + count)))


def write_pid_file(path: str, pid: int) -> None:
    """Bare decimal, no newline (go-runc's strconv.Atoi), whole or not at all:
    a reader polling for the file never sees it half-written."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # the write's error is the one to tell
        raise NsinitError("", f"--pid-file {path}: {err.strerror or err}") from None


def cmd_run(globals_: Globals, args: dict[str, Any]) -> int:
    """create + start; without --detach, wait for the init (nsinit-runc is its
    parent) and exit with its status, deleting the container unless --keep."""
    if not args["--detach"] and not args["--no-subreaper"]:
        set_child_subreaper()  # the init's orphans come to us, as runc run's
    container, process, _spec = create_container(globals_, args)
    try:
        container.start()  # and its poststart hooks
    except BaseException:
        container.destroy()
        raise
    if args["--detach"]:
        return 0
    status = wait_forwarding_signals(process)
    if not args["--keep"]:
        container.delete(force=True)  # and its poststop hooks
    return status


def set_child_subreaper() -> None:
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def wait_forwarding_signals(process: Process) -> int:
    """Wait for the init; the signals a terminal or an engine sends to
    nsinit-runc go on to it, as runc run forwards them."""
    import signal

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass  # exited: the wait below returns

    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
