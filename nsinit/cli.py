"""nsinit — run a container from container.json, or join the one running there.

Usage:
  nsinit [options] exec [--tty | --no-tty] [--user USER] [--cwd DIR] [--env K=V]... [--] COMMAND [ARG...]
  nsinit [options] state [--json]
  nsinit [options] ps [--json]
  nsinit [options] kill [--all] [SIGNAL]
  nsinit [options] config
  nsinit [options] spec [--rootless] [--force]
  nsinit rootfs DIR
  nsinit (-h | --help)
  nsinit --version

Options:
  --root DIR       Directory holding container.json, pid and state.json [default: .]
  --config FILE    The container.json to read (default: ROOT/container.json).
  --trace          Print each setup step with its duration to stderr.
  -t --tty         Give the command a terminal of its own (a pty).
  -T --no-tty      No terminal, even when container.json asks for one.
  -u --user USER   User to run as: name, uid, name:group or uid:gid.
  --cwd DIR        Working directory inside the container.
  -e --env K=V     Extra environment variable (repeatable).
  --json           Machine-readable output.
  --all            Signal every process of the container, not just PID 1.
  --force          Overwrite an existing container.json.
  --rootless       Write a config with a user namespace mapping.

Exit status of exec: the command's own status, 128+N when a signal N killed
it, 125 when nsinit itself failed, 126 when the command cannot be executed,
127 when it was not found.  Other commands exit 1 on failure.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from nsinit.errors import EXIT_COMMAND_FAILED, EXIT_NSINIT_FAILED, NsinitError

# exec's own options that take a value: everything after them and their
# value, up to the first other word, still belongs to nsinit.
_EXEC_VALUE_OPTIONS = {"--user", "-u", "--cwd", "--env", "-e"}
_GLOBAL_VALUE_OPTIONS = {"--root", "--config"}


def protect_command(argv: list[str]) -> list[str]:
    """Insert ``--`` before the container command so its own options
    (``sh -c ...``) are not taken for nsinit's."""
    try:
        start = argv.index("exec") + 1
    except ValueError:
        return argv
    if any(a in _GLOBAL_VALUE_OPTIONS for a in argv[start - 2:start - 1]):
        return argv  # "exec" was the value of --root/--config; leave it to docopt
    i = start
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv
        if word in _EXEC_VALUE_OPTIONS:
            i += 2
            continue
        if word.startswith("-") and word != "-":
            i += 1
            continue
        return argv[:i] + ["--"] + argv[i:]
    return argv


def main(argv: list[str] | None = None) -> int:
    from docopt import docopt

    from nsinit import __version__

    args = docopt(__doc__, argv=protect_command(list(sys.argv[1:] if argv is None else argv)),
                  version=f"nsinit {__version__}")
    try:
        return dispatch(args)
    except NsinitError as err:
        print(f"nsinit: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("nsinit: interrupted", file=sys.stderr)
        return 130


def dispatch(args: dict[str, Any]) -> int:
    if args["rootfs"]:
        return cmd_rootfs(args["DIR"])
    if args["spec"]:
        return cmd_spec(args)
    if args["exec"]:
        return cmd_exec(args)
    from nsinit.container import Container

    container = Container.load(args["--root"], args["--config"])
    if args["config"]:
        return cmd_config(container)
    if args["state"]:
        return cmd_state(container, args["--json"])
    if args["ps"]:
        return cmd_ps(container, args["--json"])
    if args["kill"]:
        return cmd_kill(container, args["SIGNAL"] or "TERM", args["--all"])
    raise NsinitError("usage", "unknown command")


def cmd_exec(args: dict[str, Any]) -> int:
    from nsinit.container import Container, Process

    tty = True if args["--tty"] else False if args["--no-tty"] else None
    for entry in args["--env"]:
        if "=" not in entry or entry.startswith("="):
            raise NsinitError("--env", f'"{entry}" is not KEY=VALUE')
    container = Container.load(args["--root"], args["--config"], trace=args["--trace"])
    process = Process(args=[args["COMMAND"], *args["ARG"]], env=list(args["--env"]),
                      user=args["--user"], cwd=args["--cwd"], tty=tty)
    return container.run(process)


def cmd_rootfs(target: str) -> int:
    from nsinit.rootfs import build_rootfs

    try:
        build_rootfs(target)
    except OSError as err:
        raise NsinitError("rootfs", f"{err.filename or target}: {err.strerror}", EXIT_COMMAND_FAILED) from None
    print(f"nsinit: busybox rootfs ready in {os.path.abspath(target)}; run: cd {target} && nsinit exec /bin/sh")
    return 0


def cmd_config(container: Any) -> int:
    import json

    from nsinit.config import config_to_dict

    print(json.dumps(config_to_dict(container.config), indent=2))
    return 0


def cmd_spec(args: dict[str, Any]) -> int:
    import json

    from nsinit.rootfs import DEFAULT_ROOTFS_CONFIG

    path = args["--config"] or os.path.join(args["--root"], "container.json")
    if os.path.exists(path) and not args["--force"]:
        raise NsinitError("spec", f"{path} exists (use --force to overwrite)", EXIT_COMMAND_FAILED)
    spec: dict[str, Any] = json.loads(json.dumps(DEFAULT_ROOTFS_CONFIG))
    if args["--rootless"]:
        spec["namespaces"].append({"type": "NEWUSER"})
        spec["uid_mappings"] = [{"container_id": 0, "host_id": 100000, "size": 65536}]
        spec["gid_mappings"] = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    with open(path, "w") as f:
        f.write(json.dumps(spec, indent=2) + "\n")
    return 0


def cmd_state(container: Any, as_json: bool) -> int:
    current = container.require_state()
    if as_json:
        print(current.to_json())
        return 0
    print(f"status     {current.status}")
    print(f"pid        {current.init_pid}")
    print(f"created    {current.created}")
    for name, inode in sorted(current.namespace_inodes.items()):
        print(f"namespace  {name:<10} {inode}")
    return 0


def cmd_ps(container: Any, as_json: bool) -> int:
    import json

    rows = container.processes()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'PID':>8} {'CPID':>8}  COMMAND")
    for row in rows:
        print(f"{row['pid']:>8} {row['container_pid']:>8}  {row['command']}")
    return 0


def cmd_kill(container: Any, signame: str, every: bool) -> int:
    container.signal(parse_signal(signame), all_processes=every)
    return 0


def parse_signal(text: str) -> int:
    import signal

    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        value = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if value is not None:
            return int(value)
    raise NsinitError("kill", f'unknown signal "{text}"', EXIT_COMMAND_FAILED)


if __name__ == "__main__":
    raise SystemExit(main())
