"""nsinit-runc: runc's command line over nsinit, for podman, containerd and friends.

Here: the entry point, the hot commands' plain lines (read without docopt),
the global options and the dispatch to each command's module.  The usage
texts and docopt's parse (any other line, --help, --version) are
nsinit/oci/usage.py's, and each command's body lives in the module
COMMAND_HOMES names, imported when it runs: an engine's state, start, kill
and delete load none of the others (docs/DEVELOPING.md, "nsinit-runc's hot
commands").
"""
from __future__ import annotations

import os
import sys

from nsinit.errors import ConfigErrors, NsinitError, describe_oserror
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.oci.log import RuntimeLog

PROGRAM = "nsinit-runc"
EXIT_FAILED = 1
NOT_YET = "not yet implemented in nsinit-runc"
LOG_FORMATS = ("text", "json")
ROOTLESS_VALUES = ("true", "false", "auto")
# Each command's module, where its body is cmd_COMMAND (None: recognised, no body yet).
COMMAND_HOMES: dict[str, str | None] = {
    "create": "nsinit.oci.create_commands", "run": "nsinit.oci.create_commands",
    "start": "nsinit.oci.commands", "state": "nsinit.oci.commands", "kill": "nsinit.oci.commands",
    "delete": "nsinit.oci.commands",
    "ps": "nsinit.oci.inspect_commands", "list": "nsinit.oci.inspect_commands",
    "pause": "nsinit.oci.resource_commands", "resume": "nsinit.oci.resource_commands",
    "update": "nsinit.oci.resource_commands",
    "exec": "nsinit.oci.exec_command",
    "checkpoint": "nsinit.oci.criu_commands", "restore": "nsinit.oci.criu_commands",
    "features": "nsinit.oci.features", "spec": "nsinit.oci.defaults",
    "events": None,
}


@record
class Globals:
    """runc's global options, parsed, for every command."""
    root: str
    log: RuntimeLog
    debug: bool = False
    criu: str = "criu"
    rootless: str = "auto"

    def warn(self, message: str) -> None:
        # Never on stderr: an engine passes that fd on as the container's stderr.
        self.log.warning(message)


# --- entry points ------------------------------------------------------------

def run() -> None:
    """Console script: main(), flush, leave without interpreter teardown."""
    code = main(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BrokenPipeError:
            pass  # our reader went away; nothing to tell it
    os._exit(code)


def main(argv: list[str]) -> int:
    from nsinit.oci.log import RuntimeLog

    log = RuntimeLog()
    command = ""
    try:
        hot = parse_hot_command(argv)
        words: dict[str, Any]
        if hot is not None:
            words = hot[0]
        else:
            from nsinit.oci import usage

            words = usage.parse_line(argv)
        if words["--help"] or words["COMMAND"] == "help":
            from nsinit.oci.usage import USAGE

            print(USAGE.strip())
            return 0
        if words["--version"]:
            from nsinit.oci.usage import version_text

            print(version_text())
            return 0
        globals_ = parse_globals(words)
        log = globals_.log
        if words["--systemd-cgroup"]:
            # podman sends it when its cgroup manager is systemd: say so rather
            # than put the container where systemd does not look.
            raise NsinitError("", "--systemd-cgroup: not supported: PID 1 is not systemd on this machine; "
                                  "nsinit manages cgroupfs (podman: --cgroup-manager cgroupfs)")
        command = words["COMMAND"]
        if command not in COMMAND_HOMES:
            raise NsinitError("", f'unknown command "{command}" (see {PROGRAM} --help)')
        if hot is not None:
            return run_command(command, globals_, hot[1])
        from nsinit.oci.usage import command_args

        args = command_args(command, words["ARG"])
        return 0 if args is None else run_command(command, globals_, args)
    except ConfigErrors as errors:
        for error in errors.errors:
            report(log, command, str(error))
    except NsinitError as err:
        report(log, command, str(err))
    except BrokenPipeError:
        pass  # our reader went away (`nsinit-runc features | head`)
    except OSError as err:
        # A call no step wrapped (a container deleted by another command
        # while this one looked at it): still one line, never a traceback.
        report(log, command, describe_oserror(err))
    return EXIT_FAILED


def run_command(command: str, globals_: Globals, args: dict[str, Any]) -> int:
    """cmd_COMMAND of the command's module (COMMAND_HOMES), imported now."""
    home = COMMAND_HOMES[command]
    if home is None:
        raise NsinitError("", NOT_YET)
    __import__(home)
    return sys.modules[home].__dict__[f"cmd_{command}"](globals_, args)  # type: ignore[no-any-return]


def report(log: RuntimeLog, command: str, message: str) -> None:
    """One line on stderr (conmon and the shim forward it) and in the log."""
    line = f"{command}: {message}" if command else message
    sys.stderr.write(f"{PROGRAM}: {line}\n")
    try:
        log.error(line)
    except OSError as err:  # the log is extra; stderr already has the message
        sys.stderr.write(f"{PROGRAM}: --log {log.path}: {err.strerror or err}\n")


# --- the hot commands' plain lines, read without docopt ------------------------
# An engine runs state, start, kill and delete for every container, and polls
# state: docopt (with re, typing and enum under it) was ~15 ms of each ~33 ms
# run.  Their plain lines -- the global options spelt out, then the command,
# its flags and its words, as podman, conmon, containerd and go-runc send
# them -- are read here into the very dicts docopt makes of them.  Any other
# line (an abbreviated or repeated option, -h, a combined short flag, "--", a
# missing word) is docopt's, which decides and words its error as before.

_GLOBAL_VALUES: dict[str, str | None] = {"--root": None, "--log": None, "--log-format": "text",
                                         "--criu": "criu", "--rootless": "auto"}
_GLOBAL_FLAGS = ("--debug", "--systemd-cgroup", "--help", "--version")
# command -> (its flags, its options with a value: each by every spelling; its
# words, the ID first and required).  Defaults as in USAGES.
_HOT_COMMANDS: dict[str, tuple[dict[str, str], dict[str, str], tuple[str, ...]]] = {
    "state": ({}, {}, ("ID",)),
    "start": ({}, {}, ("ID",)),
    "kill": ({"-a": "--all", "--all": "--all"}, {}, ("ID", "SIGNAL")),
    "delete": ({"-f": "--force", "--force": "--force"}, {}, ("ID",)),
    "create": ({"--no-pivot": "--no-pivot", "--no-new-keyring": "--no-new-keyring"},
               {"-b": "--bundle", "--bundle": "--bundle", "--console-socket": "--console-socket",
                "--pid-file": "--pid-file", "--preserve-fds": "--preserve-fds"}, ("ID",)),
}
_HOT_DEFAULTS = {"--bundle": ".", "--preserve-fds": "0"}


def parse_hot_command(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(global words, command words) of a plain state/start/kill/delete/create
    line or a lone --version, as docopt would parse it; None for any other line."""
    words: dict[str, Any] = {**_GLOBAL_VALUES, **dict.fromkeys(_GLOBAL_FLAGS, False)}
    if argv in (["--version"], ["-v"]):
        # podman's info and version ask it; docopt and its imports were 10 ms of 20.
        words.update({"--version": True, "COMMAND": None, "ARG": []})
        return words, {}
    at = _read_options(argv, 0, {name: name for name in _GLOBAL_FLAGS[:2]}, {name: name for name in _GLOBAL_VALUES},
                       words, stop_at_word=True)
    if at is None or at == len(argv) or argv[at] not in _HOT_COMMANDS:
        return None
    command, rest = argv[at], argv[at + 1:]
    flags, valued, names = _HOT_COMMANDS[command]
    args: dict[str, Any] = {command: True, "--help": False, **dict.fromkeys(flags.values(), False),
                            **{name: _HOT_DEFAULTS.get(name) for name in valued.values()}}
    positional: list[str] = []
    if _read_options(rest, 0, flags, valued, args, positional=positional) is None:
        return None
    if not 1 <= len(positional) <= len(names):
        return None
    args.update(zip(names, positional + [None] * (len(names) - len(positional))))
    words.update(COMMAND=command, ARG=rest)
    return words, args


def _read_options(argv: list[str], at: int, flags: dict[str, str], valued: dict[str, str], into: dict[str, Any],
                  *, stop_at_word: bool = False, positional: list[str] | None = None) -> int | None:
    """Options from argv[at] on into ``into`` (flags: ``--x``; the others:
    ``--x V``, ``--x=V``, ``-x V``), each at most once; the index of the first
    word (stop_at_word) or of the end, words going to ``positional``.  None:
    a line for docopt."""
    given: set[str] = set()
    while at < len(argv):
        word = argv[at]
        if not word.startswith("-"):
            if stop_at_word:
                return at
            if not word or positional is None:
                return None
            positional.append(word)
            at += 1
            continue
        spelling, equals, value = word.partition("=") if word.startswith("--") else (word, "", "")
        name = flags.get(spelling) or valued.get(spelling)
        if not name or name in given:
            return None
        given.add(name)
        if spelling in flags:
            if equals:
                return None
            into[name] = True
        else:
            if not equals:
                at += 1
                if at == len(argv):
                    return None
                value = argv[at]
            into[name] = value
        at += 1
    return at


def parse_globals(words: dict[str, Any]) -> Globals:
    from nsinit.oci.log import RuntimeLog

    log_format = words["--log-format"]
    # Checked before anything is logged: a bad format cannot write its own error.
    if log_format not in LOG_FORMATS:
        raise NsinitError("", f'--log-format: "{log_format}" is not one of text, json')
    log = RuntimeLog(words["--log"], log_format, debug=bool(words["--debug"]))
    if words["--rootless"] not in ROOTLESS_VALUES:
        raise NsinitError("", f'--rootless: "{words["--rootless"]}" is not one of true, false, auto')
    return Globals(root=default_root(words["--root"]), log=log, debug=bool(words["--debug"]),
                   criu=words["--criu"], rootless=words["--rootless"])


def default_root(given: str | None) -> str:
    """runc's rule: /run/<runtime> as root, $XDG_RUNTIME_DIR/<runtime> without
    (podman passes XDG_RUNTIME_DIR to a rootless runtime)."""
    if given:
        return os.path.abspath(given)
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0 and runtime_dir:
        return os.path.join(runtime_dir, PROGRAM)
    return f"/run/{PROGRAM}"
