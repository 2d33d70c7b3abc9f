"""nsinit — run a container from container.json, or join the one running there.

Usage:
  nsinit [options] exec [--tty | --no-tty] [--detach] [--init] [--user USER] [--cwd DIR] [--env K=V]... [--new | --join] [--] COMMAND [ARG...]
  nsinit [options] create [--no-tty] [--init] [--user USER] [--cwd DIR] [--env K=V]... [--] COMMAND [ARG...]
  nsinit [options] start
  nsinit [options] delete [--force]
  nsinit [options] state [--json]
  nsinit [options] ps [--json]
  nsinit [options] kill [--all] [SIGNAL]
  nsinit [options] stop [--time N]
  nsinit [options] config
  nsinit [options] spec [--rootless] [--force]
  nsinit [options] pause
  nsinit [options] resume
  nsinit [options] stats [--json]
  nsinit [options] update [--memory BYTES] [--cpu-quota N] [--cpu-period N] [--cpu-shares N] [--pids-limit N]
  nsinit [options] oom
  nsinit [options] checkpoint [--image-path DIR] [--work-path DIR] [--leave-running] [--tcp-established] [--ext-unix-sk] [--shell-job] [--file-locks] [--pre-dump] [--page-server ADDR:PORT] [--manage-cgroups-mode MODE]
  nsinit [options] restore [--image-path DIR] [--work-path DIR] [--detach] [--tcp-established] [--ext-unix-sk] [--shell-job] [--file-locks] [--manage-cgroups-mode MODE]
  nsinit gc [--json]
  nsinit [options] explain [--json]
  nsinit [options] inspect [--json]
  nsinit trace-timeline TRACE SVG
  nsinit rootfs DIR
  nsinit (-h | --help)
  nsinit --version

Options:
  --root DIR       Directory holding container.json, pid and state.json [default: .]
  --config FILE    The container.json to read (default: ROOT/container.json);
                   the rootfs is then ROOT unless the file names one.
  --trace          Print each setup step, the system calls it made and its duration to stderr.
  --trace-json     The same as one JSON object per step and line (also spelled --trace=json).
  -t --tty         Give the command a terminal of its own (a pty); without -t/-T
                   and a "tty" in container.json: one when stdin is a terminal.
  -T --no-tty      No terminal, even when container.json asks for one.
  --init           Run tini as PID 1: it forwards signals and reaps zombies.
  -u --user USER   User to run as: name, uid, name:group or uid:gid.
  --cwd DIR        Working directory inside the container.
  -e --env K=V     Extra environment variable (repeatable).
  --new            Only create a container: fail if one runs in ROOT.
  --join           Only join the container running in ROOT: fail if none does.
  --json           Machine-readable output.
  --all            Signal every process of the container, not just PID 1.
  --time N         Seconds stop waits after SIGTERM before SIGKILL (default 10).
  --force          spec: overwrite an existing container.json; delete: kill
                   a running container first (no container is no error).
  --rootless       Write a config with a user namespace mapping (as a plain user: your ids).
  --memory BYTES   Memory limit: bytes, or with a K/M/G suffix; -1 = unlimited.
  --cpu-quota N    CPU time (µs) per period the container may use; -1 = unlimited.
  --cpu-period N   Length of a CPU quota period in µs (1000..1000000).
  --cpu-shares N   Relative CPU weight (2..262144, default 1024).
  --pids-limit N   Maximum number of processes; -1 = unlimited.
  --image-path DIR        criu's images (default: /var/lib/nsinit/checkpoints/ID).
  --work-path DIR         criu's logs (default: the image path).
  --leave-running         Keep the container running after the checkpoint.
  --tcp-established       Checkpoint/restore established TCP connections.
  --ext-unix-sk           Allow unix sockets connected outside the container.
  --shell-job             The init is attached to a terminal session outside.
  --file-locks            Checkpoint file locks.
  --pre-dump              Dump memory only (needs soft-dirty tracking).
  --page-server ADDR:PORT Send the memory to a criu page server.
  --manage-cgroups-mode MODE  soft, full, strict, ignore, props or none.
  -d --detach             exec: create and start the container (or join it), print
                          the process's host pid and exit: nobody supervises it,
                          its stdio are nsinit's own fds 0-2 (a terminal: /dev/null).
                          restore: return once restored; nsinit supervises in the background.

Exit status of exec: the command's own status, 128+N when a signal N killed
it, 125 when nsinit itself failed, 126 when the command cannot be executed,
127 when it was not found.  create and exec --detach exit 0 once PID 1 waits
(create) or runs (exec --detach), else as exec.  Other commands exit 1 on failure.

create sets the container up with PID 1 waiting before it execs COMMAND, and
prints PID 1's host pid; start lets it exec; delete removes a stopped or
created container (with --force a running one).  PID 1 is a child of the
process that ran create (or of its nearest child subreaper), which can wait
for it; nothing else supervises it.
"""
from __future__ import annotations

import os
import sys

from nsinit.errors import EXIT_NSINIT_FAILED, NsinitError, describe_oserror, lines_with_notes

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

    from nsinit.container import Container, Process

# exec's own options that take a value: everything after them and their
# value, up to the first other word, still belongs to nsinit.
_EXEC_VALUE_OPTIONS = {"--user", "-u", "--cwd", "--env", "-e"}
_GLOBAL_VALUE_OPTIONS = {"--root", "--config"}


def protect_command(argv: list[str]) -> list[str]:
    """Insert ``--`` before the container command so its own options
    (``sh -c ...``) are not taken for nsinit's."""
    at = _command_index(argv)
    if at is not None and argv[at] == "create":
        return _protect_after(argv, at + 1)
    try:
        start = argv.index("exec") + 1
    except ValueError:
        return argv
    if any(a in _GLOBAL_VALUE_OPTIONS for a in argv[start - 2:start - 1]):
        return argv  # "exec" was the value of --root/--config; leave it to docopt
    return _protect_after(argv, start)


def _protect_after(argv: list[str], start: int) -> list[str]:
    i = start
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv
        if word in _EXEC_VALUE_OPTIONS or word in _GLOBAL_VALUE_OPTIONS:
            i += 2
            continue
        if word.startswith("-") and word != "-":
            i += 1
            continue
        return argv[:i] + ["--"] + argv[i:]
    return argv


def signal_as_argument(words: list[str]) -> list[str]:
    """``kill -9`` / ``kill -KILL``, as kill(1) spells them: the signal
    without its dash, so docopt takes it for SIGNAL rather than an option."""
    start = _command_index(words)
    if start is None or words[start] != "kill":
        return words
    kept = {"--all", "--", "-h", "--help"}
    return words[:start + 1] + [word[1:] if word.startswith("-") and len(word) > 1 and word not in kept
                                else word for word in words[start + 1:]]


def usage_for(words: list[str]) -> str:
    """The usage text docopt parses: for ``exec``, only its own pattern.

    docopt's work grows with the number of patterns (7 ms for all of them
    here, 2 ms for exec's alone), and exec is the command that must start
    fast.  Options and exit codes are kept, so ``exec --help`` still helps.
    """
    if _command_word(words) != "exec":
        return __doc__ or ""
    return "\n".join(line for line in (__doc__ or "").split("\n")
                     if not line.startswith("  nsinit ") or " exec " in line)


def _command_word(words: list[str]) -> str | None:
    i = _command_index(words)
    return None if i is None else words[i]


def _command_index(words: list[str]) -> int | None:
    i = 0
    while i < len(words):
        word = words[i]
        if word in _GLOBAL_VALUE_OPTIONS:
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            return i
    return None


# The `exec` options a plain command line uses, spelled out in full: with
# these, parse_plain_exec gives docopt's answer without importing docopt.
_PLAIN_EXEC_FLAGS = {"--trace": "--trace", "--trace-json": "--trace-json", "-t": "--tty", "--tty": "--tty",
                     "-T": "--no-tty", "--no-tty": "--no-tty", "--init": "--init", "--new": "--new", "--join": "--join",
                     "-d": "--detach", "--detach": "--detach"}
_PLAIN_EXEC_VALUES = {"--root": "--root", "--config": "--config", "-u": "--user", "--user": "--user",
                      "--cwd": "--cwd", "-e": "--env", "--env": "--env"}
# What docopt returns for `nsinit exec COMMAND` (a unit test keeps it equal).
_EXEC_DEFAULTS: dict[str, Any] = {
    "--root": ".", "--config": None, "--trace": False, "--trace-json": False, "--json": False, "--all": False,
    "--force": False, "--rootless": False, "--time": None, "--memory": None, "--cpu-quota": None,
    "--cpu-period": None, "--cpu-shares": None, "--pids-limit": None, "exec": True,
    "--image-path": None, "--work-path": None, "--leave-running": False, "--tcp-established": False,
    "--ext-unix-sk": False, "--shell-job": False, "--file-locks": False, "--pre-dump": False,
    "--page-server": None, "--manage-cgroups-mode": None, "--detach": False,
    "--tty": False, "--no-tty": False, "--init": False, "--user": None, "--cwd": None, "--env": [], "--": True,
    "COMMAND": None, "ARG": [], "--new": False, "--join": False,
}


def parse_plain_exec(words: list[str]) -> dict[str, Any] | None:
    """docopt's result for a plain ``exec`` command line, or None to ask docopt.

    Importing docopt (with the ``typing`` and ``re`` it needs) costs ~13 ms,
    an eighth of a container start.  Lines such as ``--root DIR exec -t -e
    K=V -- sh -c ...`` are the common case, and their parse is fixed: options
    spelled out in full, each at most once (``--env`` repeatable), then the
    command behind ``--`` (as protect_command leaves it).  Anything else —
    abbreviations, ``--opt=value``, stacked short flags, help — goes to docopt.
    """
    args = {**_EXEC_DEFAULTS, "--env": [], "ARG": []}
    seen: set[str] = set()
    value: bool | str
    i = 0
    while i < len(words) and words[i] != "--":
        word = words[i]
        if word == "exec" and "exec" not in seen:
            name, value, step = "exec", True, 1
        elif word in _PLAIN_EXEC_FLAGS:
            name, value, step = _PLAIN_EXEC_FLAGS[word], True, 1
        elif word in _PLAIN_EXEC_VALUES and i + 1 < len(words) and not words[i + 1].startswith("-"):
            name, value, step = _PLAIN_EXEC_VALUES[word], words[i + 1], 2
        else:
            return None
        if name == "--env":
            args[name].append(value)
        elif name in seen:
            return None
        else:
            args[name] = value
        seen.add(name)
        i += step
    command = words[i + 1:]
    if "exec" not in seen or not command or {"--tty", "--no-tty"} <= seen or {"--new", "--join"} <= seen:
        return None
    args["COMMAND"], args["ARG"] = command[0], command[1:]
    return args


def spell_trace_json(words: list[str]) -> list[str]:
    """``--trace=json`` as ``--trace-json`` for the parsers (docopt has no
    optional option values); only nsinit's own words, before ``--``."""
    end = words.index("--") if "--" in words else len(words)
    return [("--trace-json" if word == "--trace=json" and i < end else word) for i, word in enumerate(words)]


def main(argv: list[str] | None = None) -> int:
    words = protect_command(list(sys.argv[1:] if argv is None else argv))
    words = spell_trace_json(signal_as_argument(words))
    args = parse_plain_exec(words)
    try:
        if args is None:
            from nsinit.commands import parse_with_docopt

            args = parse_with_docopt(words)
        return dispatch(args)
    except NsinitError as err:
        if err.step == "state" and _command_word(words) in _ATTACHED_COMMANDS:
            err.step = str(_command_word(words))  # require_state's step: name the command that failed
        # One "nsinit: " per line: a config's errors come several at once.
        print_error(str(err), err)
        return err.exit_code
    except OSError as err:
        # A syscall failed outside any named step: still one line, no traceback.
        print_error(describe_oserror(err), err)
        return EXIT_NSINIT_FAILED
    except KeyboardInterrupt as err:
        print_error("interrupted", err)
        return 130


def print_error(text: str, err: BaseException) -> None:
    """``nsinit: `` before each line of the error, then one ``nsinit: note:``
    line per note on it (what failed while undoing, see nsinit/undo.py)."""
    print("\n".join(f"nsinit: {line}" for line in lines_with_notes(text, err)), file=sys.stderr)


# Commands that act on the running container (their errors name them).
_ATTACHED_COMMANDS = ("ps", "kill", "stop", "pause", "resume", "stats", "update", "oom", "checkpoint")


def run() -> None:
    """Entry point of the command: main(), then a fast exit.

    Everything nsinit must undo is undone inside main(); tearing down the
    interpreter afterwards only costs time (about 9 ms here), so once the
    output is flushed we leave with os._exit.
    """
    try:
        code = main()
    except SystemExit as exit_:  # docopt's --help, --version and usage errors
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BrokenPipeError:
        code = 1  # our reader went away (`nsinit ps | head`); nothing to tell it
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None when started with that fd closed
                stream.flush()
        except BrokenPipeError:
            pass  # same: the output has nowhere to go
    os._exit(code)


def dispatch(args: dict[str, Any]) -> int:
    if args.get("exec"):
        return cmd_exec(args)
    if args.get("create"):
        return cmd_create(args)
    from nsinit import commands  # the other commands' code: not loaded by exec and create

    return commands.dispatch(args)


def cmd_exec(args: dict[str, Any]) -> int:
    container, process = _container_and_process(args)
    if not args["--detach"]:
        if args["--new"] or args["--join"]:
            return exec_new_or_join(container, process, new=args["--new"])  # type: ignore[return-value]
        return container.run(process)  # type: ignore[return-value]
    printed: list[int] = []

    def print_pid(started: Process) -> None:
        # Before the start: ahead of whatever the container writes to the same stdout.
        print(started.pid, flush=True)
        printed.append(started.pid)

    if args["--new"] or args["--join"]:
        exec_new_or_join(container, process, new=args["--new"], detach=True, created=print_pid)
    else:
        container.run(process, detach=True, created=print_pid)
    if not printed:  # joined: it runs already
        print(process.pid)
    return 0


def cmd_create(args: dict[str, Any]) -> int:
    """Set up, with PID 1 waiting for ``nsinit start``; print its host pid."""
    container, process = _container_and_process(args)
    container.create(process)
    print(process.pid)
    return 0


def _container_and_process(args: dict[str, Any]) -> tuple[Container, Process]:
    from nsinit.container import Container, Process

    tty = True if args["--tty"] else False if args["--no-tty"] else None
    for entry in args["--env"]:
        if "=" not in entry or entry.startswith("="):
            raise NsinitError("--env", f'"{entry}" is not KEY=VALUE')
    if args["--user"] is not None:
        from nsinit.identity import parse_user_spec

        try:
            parse_user_spec(args["--user"])
        except ValueError as err:
            raise NsinitError("--user", str(err)) from None
    trace = "json" if args.get("--trace-json") else args["--trace"]
    container = Container.for_exec(args["--root"], args["--config"], trace=trace)
    process = Process(args=[args["COMMAND"], *args["ARG"]], env=list(args["--env"]),
                      user=args["--user"], cwd=args["--cwd"], tty=tty, init=args["--init"])
    return container, process


def exec_new_or_join(container: Container, process: Process, *, new: bool, detach: bool = False,
                     created: Callable[[Process], None] | None = None) -> int | Process:
    """``exec --new`` creates only, ``exec --join`` joins only: two CI jobs
    sharing a directory must not silently run inside each other."""
    try:
        if new:
            return container.run(process, new=True, detach=detach, created=created)
        return container.join(process, detach=detach)
    except NsinitError as err:
        if err.step in ("create", "join"):  # the refusal (or the joined container's end): name the option
            err.step = "exec --new" if new else "exec --join"
            err.exit_code = EXIT_NSINIT_FAILED  # exec's own failures are 125
        raise


if __name__ == "__main__":
    raise SystemExit(main())
