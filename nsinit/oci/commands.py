"""The bodies of nsinit-runc's lifecycle commands: runc's CLI on the Factory.

Each command is a few library calls (nsinit/lifecycle/factory.py and the
Container API); what podman, conmon, containerd and go-runc send and read
is shared/reference/oci-clients.md.  Rules every command keeps:

- nothing on stderr on success: an engine passes that fd on as the
  container's stderr (create) or reads it as the error text (all);
- a failure is one NsinitError, which the CLI turns into one line on
  stderr and a JSON line in the --log;
- without a terminal the container's fds 0-2 are create's own, and
  nsinit-runc keeps no copy of them (it exits; nothing of it stays).

``load_container`` turns an id into the loaded container (nsinit-runc exec
too), ``process_of`` makes the init's Process from a spec (a terminal's
master goes to --console-socket), and the spec's OCI hooks go to the
library with the creation (``HookPlan``): it runs each at its moment, in
create, start and delete (nsinit/lifecycle/hooks.py).
"""
from __future__ import annotations

import os
import sys

from nsinit.errors import (
    ContainerNotExists,
    ContainerNotRunning,
    ContainerNotStopped,
    ContainerPaused,
    NsinitError,
)

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from nsinit.container import Process
    from nsinit.lifecycle.factory import Factory, FactoryContainer
    from nsinit.lifecycle.hooks import HookPlan
    from nsinit.oci.cli import Globals
    from nsinit.oci.spec import OciSpec



# --- seams: id -> container, spec -> process, hooks ----------------------------

def factory_of(globals_: Globals) -> Factory:
    from nsinit.lifecycle.factory import Factory

    return Factory(globals_.root)


def load_container(globals_: Globals, container_id: str) -> FactoryContainer:
    """The container ``container_id`` of the state root (any status)."""
    return factory_of(globals_).load(container_id, warn=globals_.warn)


def load_spec_of(globals_: Globals, container: FactoryContainer) -> OciSpec:
    """The bundle's config.json of a loaded container, read again (exec
    and the hooks need what only the spec has)."""
    from nsinit.oci.cli import load_checked_bundle

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


# --- create, start, run ------------------------------------------------------------

def cmd_create(globals_: Globals, args: dict[str, Any]) -> int:
    create_container(globals_, args)
    return 0


def create_container(globals_: Globals, args: dict[str, Any]) -> tuple[FactoryContainer, Process, OciSpec]:
    """The bundle read and checked first (a bad one fails with its field named
    and nothing made), then the id, then the container; a failure at any
    step removes what the earlier ones made."""
    from nsinit.oci.cli import load_checked_bundle
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
    container = factory_of(globals_).create(container_id, spec, warn=globals_.warn)
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
    most bundles have none, and their create loads no hook runner then
    (nsinit/lifecycle/hooks.py and its imports, ~1 ms)."""
    from nsinit.oci.hooks import Hooks

    if spec.hooks == Hooks():
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


def cmd_start(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit.lifecycle.start import start_locked

    container = load_container(globals_, args["ID"])
    # The status read once, under the lock the start holds anyway.
    with container.locked():
        status, current = container.oci_status()
        if status != "created" or current is None:
            raise NsinitError("", f'cannot start container "{container.id}": it is {status}, not created')
        start_locked(container, current)  # and its poststart hooks
    return 0


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


# --- state, list, ps ------------------------------------------------------------------

def cmd_state(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    print(jsontext.dumps(load_container(globals_, args["ID"]).oci_state(), indent=2))
    return 0


def cmd_list(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    fmt = args["--format"]
    if fmt not in ("table", "json"):
        raise NsinitError("", f'--format: "{fmt}" is not one of table, json')
    factory = factory_of(globals_)
    states = []
    for container_id in factory.ids():
        try:
            container = factory.load(container_id, warn=globals_.warn)
        except ContainerNotExists:
            continue  # deleted while we listed
        entry = container.oci_state()
        entry["owner"] = owner_name(container.facts.owner_uid)
        states.append(entry)
    if args["--quiet"]:
        for entry in states:
            print(entry["id"])
    elif fmt == "json":
        print(jsontext.dumps(states))
    else:
        rows: list[tuple[str, ...]] = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]) for e in states]
        print_table(rows)
    return 0


def owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded as Go's tabwriter (minwidth 12, padding 3) lays them out."""
    widths = [max(12, *(len(row[i]) for row in rows)) + 3 for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("".join(cell.ljust(width) for cell, width in zip(row, widths)) + row[-1])


def cmd_ps(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    fmt = args["--format"]
    if fmt not in ("table", "json"):
        raise NsinitError("", f'--format: "{fmt}" is not one of table, json')
    container = load_container(globals_, args["ID"])
    status, current = container.oci_status()
    if status == "stopped":
        # runc lists a stopped container's cgroup (containerd's `ctr task
        # ps` of an exited task): what is left in it, often nothing.
        pids = leftover_pids(current) if current is not None else []
    else:
        from nsinit.container import container_pids

        pids = container_pids(require_live(container))
    if fmt == "json":
        print(jsontext.dumps(pids))
        return 0
    print_ps_table(pids, args["PS_ARG"] or ["-ef"])
    return 0


def print_ps_table(pids: list[int], ps_args: list[str]) -> None:
    """runc's table: ps(1)'s own output, header and the container's rows."""
    import subprocess

    try:
        done = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise NsinitError("", "ps(1) is not installed (procps); --format json needs none") from None
    if done.returncode != 0:
        raise NsinitError("", f"ps {' '.join(ps_args)}: {done.stderr.strip() or 'failed'}")
    lines = done.stdout.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise NsinitError("", f"ps {' '.join(ps_args)}: its output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            print(line)


def live_status(container: FactoryContainer) -> tuple[str, Any]:
    """(status, record) of a created, running or paused container; else
    runc's "container not running" (containerd matches those words)."""
    status, current = container.oci_status()
    if current is None or status in ("stopped", "creating"):
        raise_not_running(container, status)
    return status, current


def raise_not_running(container: FactoryContainer, status: str) -> NoReturn:
    raise ContainerNotRunning("", f'container "{container.id}" is {status}: container not running')


def require_live(container: FactoryContainer) -> Any:
    return live_status(container)[1]


# --- kill, pause, resume, update ------------------------------------------------------

def cmd_kill(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import state
    from nsinit.container import parse_signal

    signum = parse_signal(args["SIGNAL"] or "SIGTERM")
    container = load_container(globals_, args["ID"])
    every = bool(args["--all"])
    # Under the lock: the pid is checked (start time, namespaces) and
    # signalled before anything else could take the id's record over.
    # At most LOOK_WAIT_SECONDS: a kill must work while a slow creation holds the lock.
    with container.locked(wait=state.LOOK_WAIT_SECONDS):
        status, current = container.oci_status()
        if every and status == "stopped":
            # runc's kill --all of a stopped container: what is left of it
            # (without a pid namespace, the init's end kills no other
            # process), else nothing to do, and no error.
            if current is not None:
                signal_leftovers(current, signum)
            return 0
        if current is None or status in ("stopped", "creating"):
            raise_not_running(container, status)   # runc's words
        container.signal(signum, all_processes=every, current=current)   # thaws a paused one after a SIGKILL
    return 0


def signal_leftovers(record: Any, signum: int) -> None:
    """Processes still in a stopped container's cgroups (its init is dead).
    The cgroups, not the namespaces: they stay until delete, and nothing but
    the container's own processes can be in them (a namespace's inode may
    be a new namespace's once the last process of the old one is gone)."""
    for pid in leftover_pids(record):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # exited since we listed it


def leftover_pids(record: Any) -> list[int]:
    """The processes in a stopped container's cgroups, its (zombie) init aside."""
    from nsinit.cgroups import fs

    pids = {pid for path in set(record.cgroup_paths.values()) if os.path.isdir(path)
            for pid in fs.procs_recursive(path)}
    pids.discard(record.init_pid)  # a zombie for its parent to reap
    return sorted(pids)


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


# --- delete --------------------------------------------------------------------------

def cmd_delete(globals_: Globals, args: dict[str, Any]) -> int:
    """runc's delete: a stopped or created container is removed (a created
    one's init killed first), a running or paused one only with --force;
    an unknown id with --force is no error (podman's cleanup, containerd's
    shim delete it twice)."""
    force = bool(args["--force"])
    try:
        container = load_container(globals_, args["ID"])
    except ContainerNotExists:
        if force:
            return 0
        raise
    def not_stopped(status: str) -> Exception:
        return ContainerNotStopped("", f'cannot delete container "{container.id}" that is not stopped: {status} '
                                       "(delete --force kills it)")

    # --force deletes whatever the status; without it a live one is refused,
    # decided on the record the delete reads.  A created one's init is
    # killed (runc's delete); then its poststop hooks.
    container.delete(force=True, refuse=None if force else not_stopped)
    return 0
