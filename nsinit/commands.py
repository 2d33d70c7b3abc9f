"""The commands of ``nsinit`` other than exec and create: what ``cli.dispatch`` runs for them.

A module of their own so that ``nsinit exec``, which every container start
runs, does not load their code (~40 KB of bytecode, ~0.1-0.2 ms of every
start here): ``nsinit/cli.py`` keeps the usage text, the parse of a plain
exec line and exec's own dispatch, and imports this module for the rest,
docopt's parse included.
"""
from __future__ import annotations

import os
import sys

from nsinit import cli
from nsinit.errors import EXIT_COMMAND_FAILED, EXIT_NSINIT_FAILED, NoContainerError, NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.container import Container


def dispatch(args: dict[str, Any]) -> int:
    """Every command but exec and create (``cli.dispatch`` runs those)."""
    if args.get("rootfs"):
        return cmd_rootfs(args["DIR"])
    if args.get("spec"):
        return cmd_spec(args)
    if args.get("gc"):
        return cmd_gc(args["--json"])
    if args.get("explain") or args.get("inspect") or args.get("trace-timeline"):
        return cmd_teach(args)
    if args.get("checkpoint") or args.get("restore"):
        from nsinit.criu.cli import cmd_checkpoint, cmd_restore

        return cmd_checkpoint(args) if args.get("checkpoint") else cmd_restore(args)
    from nsinit.container import Container

    if args.get("config"):
        try:
            container = Container.load(args["--root"], args["--config"])
        except NsinitError as err:
            err.exit_code = EXIT_COMMAND_FAILED  # like the other commands; 125 is exec's own
            raise
        return cmd_config(container)
    # The commands below act on the running container through its recorded
    # state; they need no container.json (it may even have changed since).
    container = Container.attach(args["--root"])
    if args.get("state"):
        return cmd_state(container, args["--json"])
    if args.get("ps"):
        return cmd_ps(container, args["--json"])
    if args.get("kill"):
        return cmd_kill(container, "TERM" if args["SIGNAL"] is None else args["SIGNAL"], args["--all"])
    if args.get("stop"):
        return cmd_stop(container, args["--time"])
    if args.get("start"):
        return cmd_start(container)
    if args.get("delete"):
        return cmd_delete(container, args["--force"])
    for name in ("pause", "resume", "stats", "update", "oom"):
        if args.get(name):
            return _cgroup_command(name, container, args)
    raise NsinitError("usage", "unknown command")


def parse_with_docopt(words: list[str]) -> dict[str, Any]:
    """docopt's parse; a usage error is one line naming the command.

    docopt's own message for an unknown command or a bare ``exec`` is its
    internal ``Warning: found unmatched (duplicate?) arguments
    [Argument(None, 'run')]`` followed by the whole usage text.
    """
    from docopt import DocoptExit, docopt

    from nsinit import __version__

    command = cli._command_word(words)
    if command is not None and command not in _usage_commands():
        raise NsinitError("", unknown_command_text(command), EXIT_COMMAND_FAILED)
    try:
        return docopt(cli.usage_for(words), argv=words, version=f"nsinit {__version__}")
    except DocoptExit:
        if command is None:
            raise  # a bare `nsinit` (or only options): the usage text is the answer
    if command == "exec" and _exec_command_missing(words):
        raise NsinitError("exec", "no command given (e.g. nsinit exec /bin/sh); see nsinit exec --help")
    usage = next(line.strip() for line in (cli.__doc__ or "").split("\n")
                 if line.startswith("  nsinit ") and f" {command} " in f"{line} ")
    code = EXIT_NSINIT_FAILED if command == "exec" else EXIT_COMMAND_FAILED
    raise NsinitError(command, f"bad arguments; usage: {usage} (see nsinit --help)", code)


def _usage_commands() -> set[str]:
    """The command words of the usage text ("exec", "state", ...)."""
    found = set()
    for line in (cli.__doc__ or "").split("\n"):
        parts = line.split()
        if line.startswith("  nsinit ") and len(parts) > 1:
            word = parts[2] if parts[1] == "[options]" and len(parts) > 2 else parts[1]
            if word.replace("-", "").isalpha():  # trace-timeline too
                found.add(word)
    return found


# What other runtimes call these, and what nsinit does instead.
_OTHER_RUNTIMES_COMMANDS = {
    "run": "nsinit exec COMMAND creates the container (or joins the one running in the root dir); "
           "exec --detach returns at once",
    "list": "nsinit has no list: a container is its root dir; nsinit --root DIR state shows one",
    "ls": "nsinit has no list: a container is its root dir; nsinit --root DIR state shows one",
    "rm": "nsinit delete removes a stopped container (--force: a running one); nsinit gc removes what dead ones left",
}


def unknown_command_text(command: str) -> str:
    hint = _OTHER_RUNTIMES_COMMANDS.get(command)
    return f'unknown command "{command}": ' + (f"{hint}; " if hint else "") + "see nsinit --help"


def _exec_command_missing(words: list[str]) -> bool:
    """After ``exec`` and its options, nothing is left to run."""
    rest = words[words.index("exec") + 1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "--":
            return i + 1 == len(rest)
        if word in cli._EXEC_VALUE_OPTIONS or word in cli._GLOBAL_VALUE_OPTIONS:
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            return False
    return True


def cmd_teach(args: dict[str, Any]) -> int:
    """explain, inspect, trace-timeline: nsinit/teach/ does the work; this prints."""
    import json

    if args.get("explain"):
        from nsinit.config.load import load_config
        from nsinit.teach import explain

        config, warnings = load_config(args["--root"], args["--config"])
        for text in warnings:
            sys.stderr.write(f"nsinit: warning: {text}\n")
        parts = explain.explain(config, os.path.abspath(args["--root"]))
        if args["--json"]:
            print(json.dumps(explain.to_json(parts, config), indent=2))
        else:
            sys.stdout.write(explain.to_text(parts))
        return 0
    if args.get("inspect"):
        from nsinit.teach import inspect

        report = inspect.inspect(args["--root"])
        if args["--json"]:
            print(json.dumps(report, indent=2))
        else:
            sys.stdout.write(inspect.to_text(report))
        return 0
    from nsinit.teach import timeline

    count = timeline.write_svg(args["TRACE"], args["SVG"])
    print(f"nsinit: {count} steps drawn in {args['SVG']}")
    return 0


def cmd_start(container: Container) -> int:
    """Let the created container's PID 1 exec its command; prints nothing."""
    try:
        container.start()
    except NsinitError as err:
        if err.step == "start":
            err.exit_code = EXIT_COMMAND_FAILED  # a refusal; the command's own exec failure keeps 126/127
        raise
    return 0


def cmd_delete(container: Container, force: bool) -> int:
    try:
        container.delete(force=force)
    except NsinitError as err:
        err.exit_code = EXIT_COMMAND_FAILED
        raise
    return 0


def cmd_gc(as_json: bool) -> int:
    """Dead containers' leftovers, wherever their root dirs were: one line each."""
    import json

    from nsinit.lifecycle.gc import collect_garbage

    entries = collect_garbage()
    failed = [entry for entry in entries if "error" in entry]
    if as_json:
        print(json.dumps(entries, indent=2))
    for entry in entries:
        if "error" in entry:
            sys.stderr.write(f"nsinit: gc: {entry['record']}: {entry['error']}\n")
        elif not as_json:
            whose = f"container {entry['init_pid']} of {entry['root']}" if entry["root"] else "unreadable record"
            print(f"removed {whose} ({entry['why']}): {entry['record']}")
    return EXIT_COMMAND_FAILED if failed else 0


def cmd_rootfs(target: str) -> int:
    from nsinit.demo_rootfs import build_rootfs

    try:
        build_rootfs(target)
    except OSError as err:
        raise NsinitError("rootfs", f"{err.filename or target}: {err.strerror}", EXIT_COMMAND_FAILED) from None
    print(f"nsinit: busybox rootfs ready in {os.path.abspath(target)}; run: cd {target} && nsinit exec /bin/sh")
    return 0


def cmd_config(container: Any) -> int:
    import json

    from nsinit.config import config_to_dict

    config = container.config
    if config.seccomp is not None:  # as it is compiled: the names libseccomp knows
        from nsinit.record import replace
        from nsinit.seccomp import unknown_syscalls_warning, without_unknown_syscalls

        seccomp, unknown = without_unknown_syscalls(config.seccomp)
        if unknown:
            container.warn(unknown_syscalls_warning(config.source, unknown))
        config = replace(config, seccomp=seccomp)
    print(json.dumps(config_to_dict(config), indent=2))
    if config.capabilities_note:  # on stderr: stdout stays a config that loads
        sys.stderr.write(f"nsinit: note: {config.capabilities_note}\n")
    return 0


def cmd_spec(args: dict[str, Any]) -> int:
    import json

    from nsinit.errors import describe_oserror
    from nsinit.demo_rootfs import DEFAULT_ROOTFS_CONFIG

    path = args["--config"] or os.path.join(args["--root"], "container.json")
    spec: dict[str, Any] = json.loads(json.dumps(DEFAULT_ROOTFS_CONFIG))
    if args["--rootless"]:
        spec["namespaces"].append({"type": "NEWUSER"})
        spec["uid_mappings"], spec["gid_mappings"] = rootless_maps()
    from nsinit.seccomp.default_profile import default_seccomp

    spec["seccomp"] = default_seccomp()  # Docker's deny list; container.json without it: no filter
    # "x" (O_EXCL) rather than exists()-then-open: two specs at once cannot
    # both think the file was theirs to write.
    try:
        with open(path, "w" if args["--force"] else "x") as f:
            f.write(json.dumps(spec, indent=2) + "\n")
    except FileExistsError:
        raise NsinitError("spec", f"{path} exists (use --force to overwrite)", EXIT_COMMAND_FAILED) from None
    except OSError as err:
        raise NsinitError("spec", describe_oserror(err), EXIT_COMMAND_FAILED) from None
    written = os.path.abspath(path)
    # The rootfs of a config without one: its own directory, or with --config the root dir.
    command = f"nsinit --config {written} exec /bin/sh" if args["--config"] else "nsinit exec /bin/sh"
    rootfs = os.path.abspath(args["--root"]) if args["--config"] else os.path.dirname(written)
    print(f"nsinit: wrote {written}; next: {command} in {rootfs}, "
          "once it holds a root filesystem (nsinit rootfs DIR builds a busybox one)")
    return 0


def rootless_maps() -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    """spec --rootless: run by a plain user, maps that user can have (their
    own ids as root, plus the /etc/subuid range newuidmap can map); run by
    root, 65536 ids from 100000 for a user namespace of root's."""
    from nsinit import rootless

    if not rootless.is_rootless():
        whole = [{"container_id": 0, "host_id": 100000, "size": 65536}]
        return whole, [dict(whole[0])]
    caller = rootless.Caller.current()
    return tuple([{"container_id": m.container_id, "host_id": m.host_id, "size": m.size}  # type: ignore[return-value]
                  for m in caller.default_maps(kind)] for kind in ("uid", "gid"))


def cmd_state(container: Any, as_json: bool) -> int:
    """Exit 0 for a live container (running or paused); otherwise one line
    (or a JSON object with the status) and exit 1."""
    from nsinit.state import LOOK_WAIT_SECONDS

    with container.locked(wait=LOOK_WAIT_SECONDS):
        status, current, why = container.status_with_record(report_stale=True)
    if status == "stopped" and as_json and current is not None:
        current.status = "stopped"  # the OCI status; the record keeps the last one it was in
        print(current.to_json())
        return EXIT_COMMAND_FAILED
    if status == "stopped":
        raise NsinitError("state", f"stopped: {why}", EXIT_COMMAND_FAILED)
    if current is None:  # none, or stale (reported and removed just now)
        raise NoContainerError("state", f"no running container in {container.root}")
    if as_json:
        current.status = status  # "running" for a created one a start released (see Container.status)
        print(current.to_json())
        return 0
    print(f"status     {status}")
    print(f"pid        {current.init_pid}")
    print(f"started    {_start_time_text(current.init_start_time)}")
    print(f"created    {current.created}")
    print(f"root       {current.root}")
    for name, inode in sorted(current.namespace_inodes.items()):
        print(f"namespace  {name:<10} {inode}")
    for name, path in sorted(current.cgroup_paths.items()):
        print(f"cgroup     {name:<10} {path}")
    return 0


def _start_time_text(ticks: int) -> str:
    """Clock ticks after boot, as the kernel records it, and as a UTC time."""
    import time

    text = f"{ticks} (clock ticks after boot)"
    try:
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return text  # no wall-clock time to add; the ticks alone are still right
    when = boot + ticks / os.sysconf("SC_CLK_TCK")
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(when))}, {text}"


def cmd_ps(container: Any, as_json: bool) -> int:
    import json

    from nsinit.state import LOOK_WAIT_SECONDS

    with container.locked(wait=LOOK_WAIT_SECONDS):
        rows = container.processes()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'PID':>8} {'CPID':>8}  COMMAND")
    for row in rows:
        print(f"{row['pid']:>8} {row['container_pid']:>8}  {row['command']}")
    return 0


def cmd_kill(container: Any, signame: str, every: bool) -> int:
    from nsinit.container import parse_signal
    from nsinit.state import LOOK_WAIT_SECONDS

    signum = parse_signal(signame)
    # Under the lock: the pid is checked (start time, namespaces) and
    # signalled before a new container could take over this directory.
    with container.locked(wait=LOOK_WAIT_SECONDS):
        container.signal(signum, all_processes=every)
    return 0


def cmd_stop(container: Any, time_text: str | None) -> int:
    """SIGTERM, ``--time`` seconds, SIGKILL; exit 0 once the container is gone."""
    from nsinit.container import STOP_GRACE_SECONDS
    from nsinit.state import LOOK_WAIT_SECONDS

    grace = STOP_GRACE_SECONDS
    if time_text is not None:
        if not (time_text.isascii() and time_text.isdigit()):
            raise NsinitError("stop", f'--time: "{time_text}" is not a whole number of seconds', EXIT_COMMAND_FAILED)
        grace = float(time_text)
    with container.locked(wait=LOOK_WAIT_SECONDS):
        current, pidfd = container.send_stop_signal()
    if container.wait_stopped(current, pidfd, grace):
        print(f"nsinit: stop: PID 1 was still running {grace:g} s after SIGTERM; killed it (SIGKILL)",
              file=sys.stderr)
    return 0


def _cgroup_command(name: str, container: Any, args: dict[str, Any]) -> int:
    """pause, resume, stats, update, oom: failures exit 1, like the other
    lifecycle commands (the manager's errors default to exec's 125)."""
    try:
        if name == "pause":
            container.pause()
        elif name == "resume":
            container.resume()
        elif name == "stats":
            cmd_stats(container, args["--json"])
        elif name == "update":
            cmd_update(container, args)
        else:
            cmd_oom(container)
    except NsinitError as err:
        err.exit_code = EXIT_COMMAND_FAILED
        raise
    return 0


def cmd_stats(container: Any, as_json: bool) -> None:
    import json

    stats = container.stats()
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    cpu, memory, pids = stats["cpu_stats"], stats["memory_stats"], stats["pids_stats"]
    usage, throttling = cpu["cpu_usage"], cpu["throttling_data"]
    print(f"cpu      total {usage['total_usage'] / 1e9:.3f} s  user {usage['usage_in_usermode'] / 1e9:.3f} s  "
          f"system {usage['usage_in_kernelmode'] / 1e9:.3f} s  "
          f"throttled {throttling['throttled_periods']} of {throttling['periods']} periods")
    mem = memory["usage"]
    print(f"memory   usage {_size(mem['usage'])}  max {_size(mem['max_usage'])}  limit {_size(mem['limit'])}  "
          f"failcnt {mem['failcnt']}  cache {_size(memory['cache'])}")
    print(f"pids     current {pids['current']}  limit {pids['limit'] or 'none'}")
    totals = {"Read": 0, "Write": 0}
    for entry in stats["blkio_stats"]["io_service_bytes_recursive"]:
        if entry["op"] in totals:
            totals[entry["op"]] += entry["value"]
    print(f"blkio    read {_size(totals['Read'])}  write {_size(totals['Write'])}")
    for iface in stats["interfaces"]:
        print(f"{iface['name']:<8} rx {_size(iface['rx_bytes'])} ({iface['rx_packets']} packets)  "
              f"tx {_size(iface['tx_bytes'])} ({iface['tx_packets']} packets)  "
              f"errors {iface['rx_errors']}/{iface['tx_errors']}  dropped {iface['rx_dropped']}/{iface['tx_dropped']}")


def _size(value: int) -> str:
    if value >= 2**62:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


_UPDATE_OPTIONS = {"--memory": "memory", "--cpu-quota": "cpu_quota", "--cpu-period": "cpu_period",
                   "--cpu-shares": "cpu_shares", "--pids-limit": "pids_limit"}


def cmd_update(container: Any, args: dict[str, Any]) -> None:
    changes = {field: parse_amount(option, args[option])
               for option, field in _UPDATE_OPTIONS.items() if args[option] is not None}
    if not changes:
        raise NsinitError("update", "nothing to change (give --memory, --cpu-quota, --cpu-period, "
                          "--cpu-shares or --pids-limit)")
    container.update(**changes)


def parse_amount(option: str, text: str) -> int:
    """An integer, -1, or for --memory a size with a K/M/G suffix (powers of
    1024), parsed as container.json's cgroups.memory is."""
    from nsinit.config.sizes import parse_size

    if option == "--memory":
        amount = parse_size(text)
    else:
        body = text.strip()
        amount = int(body) if body.lstrip("-").isdigit() and body.isascii() else None
    if amount is not None:
        return amount
    example = " (e.g. 268435456, 256M, -1)" if option == "--memory" else ""
    raise NsinitError("update", f'{option}: "{text}" is not a number{example}')


def cmd_oom(container: Any) -> None:
    with container.notify_oom() as events:
        # On stderr: stdout carries only the events, one line each.
        print("nsinit: watching for OOM kills until the container exits", file=sys.stderr, flush=True)
        for count in events:
            print(f"oom kill {count}", flush=True)
