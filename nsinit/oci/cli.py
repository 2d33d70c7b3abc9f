"""nsinit-runc: runc's command line over nsinit, for podman, containerd and friends.

Usage:
  nsinit-runc [options] COMMAND [ARG...]
  nsinit-runc (-h | --help)
  nsinit-runc (-v | --version)

Commands:
  create     set a container up from a bundle; its init waits for start
  start      let a created container run its command
  run        create + start (and wait, unless --detach)
  state      the container's state, as runc's JSON
  kill       send a signal (default SIGTERM) to the init, or --all
  delete     remove a stopped container (--force: kill it first)
  ps         the container's processes (--format json: host pids)
  pause, resume   freeze and thaw every process
  update     change cgroup limits live (--resources FILE or -)
  list       the containers of --root
  exec       run a process in a container (--process FILE, or the flags and CMD...)
  checkpoint dump a running container with criu (--image-path, default ./checkpoint)
  restore    bring a checkpoint back as a new container (--detach: the caller's child)
  events     not yet
  spec       write a default config.json (runc spec)
  features   what this runtime supports, as JSON (runc features)

Options:
  --root DIR          Where container state lives (default: /run/nsinit-runc,
                      or $XDG_RUNTIME_DIR/nsinit-runc when not root).
  --log FILE          Also write messages to FILE.
  --log-format FMT    text or json [default: text].
  --debug             Write debug messages to the log too.
  --systemd-cgroup    Let systemd manage cgroups: refused, PID 1 is no systemd here.
  --criu PATH         The criu binary, for checkpoint and restore [default: criu].
  --rootless VALUE    true, false or auto [default: auto].
  -h --help           Show this text.
  -v --version        Print the version (runc's format).

Exit status: 0 on success, 1 on any failure (a bad bundle, a bad argument).
Errors are one line on stderr, and with --log in the log too; nothing is
written to stderr on success (engines pass it to the container).
"""
from __future__ import annotations

import os
import sys

from nsinit.errors import ConfigErrors, NsinitError, describe_oserror
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

    from nsinit.oci.log import RuntimeLog

PROGRAM = "nsinit-runc"
EXIT_FAILED = 1
NOT_YET = "not yet implemented in nsinit-runc"
# Commands whose bodies are in nsinit/oci/commands.py.
LIFECYCLE_COMMANDS = ("create", "start", "run", "state", "kill", "delete", "ps", "pause", "resume",
                      "update", "list")
LOG_FORMATS = ("text", "json")
ROOTLESS_VALUES = ("true", "false", "auto")


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


# --- each command's usage: docopt reads these, both --x=v and --x v ----------

_HELP = "  -h --help  Show this text.\n"

USAGES: dict[str, str] = {
    "create": """Usage: nsinit-runc create [options] ID

Options:
  -b DIR --bundle DIR     The bundle directory [default: .].
  --console-socket PATH   Send the pty master to this AF_UNIX socket.
  --pid-file FILE         Write the container's init pid here.
  --no-pivot              Do not use pivot_root.
  --no-new-keyring        Keep the caller's session keyring.
  --preserve-fds N        Pass N more fds (from 3) to the init [default: 0].
""",
    "run": """Usage: nsinit-runc run [options] ID

Options:
  -b DIR --bundle DIR     The bundle directory [default: .].
  --console-socket PATH   Send the pty master to this AF_UNIX socket.
  -d --detach             Do not wait for the container.
  --keep                  Do not delete the container after it exits.
  --pid-file FILE         Write the container's init pid here.
  --no-subreaper          Do not become a child subreaper.
  --no-pivot              Do not use pivot_root.
  --no-new-keyring        Keep the caller's session keyring.
  --preserve-fds N        Pass N more fds (from 3) to the init [default: 0].
""",
    "start": "Usage: nsinit-runc start [options] ID\n\nOptions:\n",
    "state": "Usage: nsinit-runc state [options] ID\n\nOptions:\n",
    "pause": "Usage: nsinit-runc pause [options] ID\n\nOptions:\n",
    "resume": "Usage: nsinit-runc resume [options] ID\n\nOptions:\n",
    "kill": """Usage: nsinit-runc kill [options] ID [SIGNAL]

Options:
  -a --all  Signal every process of the container.
""",
    "delete": """Usage: nsinit-runc delete [options] ID

Options:
  -f --force  Kill a running container first; an unknown ID is no error.
""",
    "exec": """Usage: nsinit-runc exec [options] [--env K=V]... [--additional-gids GID]... [--cap CAP]... [--cgroup PATH]... ID [COMMAND...]

Options:
  --console-socket PATH   Send the pty master to this AF_UNIX socket.
  --cwd DIR               Working directory.
  -e K=V --env K=V        Environment variable (repeatable).
  -t --tty                Allocate a pty.
  -u UID --user UID       uid[:gid].
  -g GID --additional-gids GID  Supplementary group (repeatable).
  -p FILE --process FILE  The process, as runtime-spec Process JSON.
  -d --detach             Do not wait for the process.
  --pid-file FILE         Write the process's pid here.
  --process-label LABEL   SELinux label.
  --apparmor PROFILE      AppArmor profile.
  --no-new-privs          Set no_new_privs.
  -c CAP --cap CAP        Capability to add (repeatable).
  --preserve-fds N        Pass N more fds (from 3) [default: 0].
  --cgroup PATH           Sub-cgroup to join (repeatable).
  --ignore-paused         Exec into a paused container.
""",
    "ps": """Usage: nsinit-runc ps [options] ID [PS_ARG...]

Options:
  -f FMT --format FMT  table or json [default: table].
""",
    "update": """Usage: nsinit-runc update [options] ID

Options:
  -r FILE --resources FILE  runtime-spec LinuxResources JSON ("-" = stdin).
  --blkio-weight N
  --cpu-period N
  --cpu-quota N
  --cpu-share N
  --cpu-rt-period N
  --cpu-rt-runtime N
  --cpuset-cpus LIST
  --cpuset-mems LIST
  --kernel-memory N
  --kernel-memory-tcp N
  --memory N
  --memory-reservation N
  --memory-swap N
  --pids-limit N
  --l3-cache-schema S
  --mem-bw-schema S
""",
    "list": """Usage: nsinit-runc list [options]

Options:
  -f FMT --format FMT  table or json [default: table].
  -q --quiet           Only the IDs.
""",
    "events": """Usage: nsinit-runc events [options] ID

Options:
  --interval T  Stats interval [default: 5s].
  --stats       Print stats once and exit.
""",
    "checkpoint": """Usage: nsinit-runc checkpoint [options] ID

Options:
  --image-path DIR
  --work-path DIR
  --parent-path DIR
  --leave-running
  --tcp-established
  --ext-unix-sk
  --shell-job
  --lazy-pages
  --status-fd FD
  --page-server ADDR
  --file-locks
  --pre-dump
  --manage-cgroups-mode MODE
  --empty-ns NS
  --auto-dedup
""",
    "restore": """Usage: nsinit-runc restore [options] ID

Options:
  --console-socket PATH
  --image-path DIR
  --work-path DIR
  --tcp-established
  --ext-unix-sk
  --shell-job
  --file-locks
  --manage-cgroups-mode MODE
  -b DIR --bundle DIR  [default: .]
  -d --detach
  --pid-file FILE
  --no-subreaper
  --no-pivot
  --empty-ns NS
  --auto-dedup
  --lazy-pages
  --lsm-profile P
  --lsm-mount-context C
""",
    "spec": """Usage: nsinit-runc spec [options]

Options:
  -b DIR --bundle DIR  Where to write config.json [default: .].
  --rootless           A spec for a container run without root.
""",
    "features": "Usage: nsinit-runc features [options]\n\nOptions:\n",
}
# Commands whose arguments after the ID belong to the process: options stop there.
_OPTIONS_FIRST = frozenset({"exec", "ps"})


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
            words = parse_words(argv, __doc__ or "", options_first=True) if argv else {"--help": True}
        if words["--help"] or words["COMMAND"] == "help":
            print((__doc__ or "").strip())
            return 0
        if words["--version"]:
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
        if command not in COMMANDS:
            raise NsinitError("", f'unknown command "{command}" (see {PROGRAM} --help)')
        if hot is not None:
            return COMMANDS[command](globals_, hot[1])
        usage = USAGES[command] + _HELP
        if _asks_for_help(words["ARG"], options_first=command in _OPTIONS_FIRST):
            print(usage.strip())
            return 0
        args = parse_command_words(command, words["ARG"], usage)
        return COMMANDS[command](globals_, args)
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


def _asks_for_help(words: list[str], *, options_first: bool) -> bool:
    """-h/--help among the command's own options (before its first
    argument for exec and ps, whose later words are the process's)."""
    for word in words:
        if word in ("-h", "--help"):
            return True
        if word == "--" or (options_first and not word.startswith("-")):
            return False
    return False


def report(log: RuntimeLog, command: str, message: str) -> None:
    """One line on stderr (conmon and the shim forward it) and in the log."""
    line = f"{command}: {message}" if command else message
    sys.stderr.write(f"{PROGRAM}: {line}\n")
    try:
        log.error(line)
    except OSError as err:  # the log is extra; stderr already has the message
        sys.stderr.write(f"{PROGRAM}: --log {log.path}: {err.strerror or err}\n")


def parse_command_words(command: str, words: list[str], usage: str) -> dict[str, Any]:
    """A command's own words.  For exec and ps, options end at the ID (the
    words after it are the process's, ``-c`` and ``--help`` included): docopt's
    options_first stops at the first positional word, which must then be the
    ID, so their pattern is parsed without the command's name in it."""
    if command not in _OPTIONS_FIRST:
        return parse_words([command, *words], usage, options_first=False)
    bare = usage.replace(f"{PROGRAM} {command} ", f"{PROGRAM} ", 1)
    return parse_words(words, bare, options_first=True, shown=usage)


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
    line, as docopt would parse it; None for any other line."""
    words: dict[str, Any] = {**_GLOBAL_VALUES, **dict.fromkeys(_GLOBAL_FLAGS, False)}
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


def parse_words(argv: list[str], usage: str, *, options_first: bool, shown: str = "") -> dict[str, Any]:
    """docopt's parse; a usage error is one line with the usage pattern."""
    from docopt import DocoptExit, docopt

    try:
        return docopt(usage, argv=argv, default_help=False, options_first=options_first)
    except DocoptExit:
        patterns = [line.replace("Usage:", "").strip() for line in (shown or usage).splitlines()
                    if line.startswith(("Usage:", f"  {PROGRAM} [options]"))]
        patterns = [pattern for pattern in patterns if pattern]
        raise NsinitError("", f"bad arguments; usage: {patterns[0]}") from None


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


def version_text() -> str:
    from nsinit import __version__
    from nsinit.oci.spec import SPEC_VERSION

    # go-runc reads "runc version X", "commit: ..." and "spec: ..." by prefix.
    return (f"runc version {__version__}\n"
            f"spec: {SPEC_VERSION}\n"
            f"commit: nsinit {__version__}\n"
            f"python: {sys.version.split()[0]}")


# --- commands ----------------------------------------------------------------

def cmd_not_yet(globals_: Globals, args: dict[str, Any]) -> int:
    """Recognised, flags parsed; no body yet."""
    raise NsinitError("", NOT_YET)


def _lifecycle(name: str) -> Callable[[Globals, dict[str, Any]], int]:
    """A command whose body is nsinit/oci/commands.py's cmd_NAME, imported
    when it runs (features, spec and --version never load the lifecycle)."""
    def command(globals_: Globals, args: dict[str, Any]) -> int:
        from nsinit.oci import commands

        return getattr(commands, f"cmd_{name}")(globals_, args)  # type: ignore[no-any-return]

    command.__name__ = f"cmd_{name}"
    return command


def _criu_command(name: str, globals_: Globals, args: dict[str, Any]) -> int:
    """checkpoint and restore: nsinit/oci/criu_commands.py, imported when run."""
    from nsinit.oci import criu_commands

    return getattr(criu_commands, f"cmd_{name}")(globals_, args)  # type: ignore[no-any-return]


def load_checked_bundle(globals_: Globals, bundle: str, container_id: str) -> Any:
    """The bundle's OciSpec; warnings (unknown keys) go to the log only."""
    from nsinit.oci.spec import load_bundle

    spec, warnings = load_bundle(bundle, container_id)
    for warning in warnings:
        globals_.warn(warning)
    return spec


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


def cmd_features(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext
    from nsinit.oci.features import features

    print(jsontext.dumps(features(), indent=4))
    return 0


def cmd_spec(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext
    from nsinit.oci.defaults import default_spec

    path = os.path.join(args["--bundle"], "config.json")
    spec = default_spec(rootless=bool(args["--rootless"]))
    try:
        # O_EXCL: never overwrite a config (runc: "File config.json exists. Remove it first").
        with open(path, "x") as f:
            f.write(jsontext.dumps(spec, indent=4) + "\n")
    except FileExistsError:
        raise NsinitError("", f"{os.path.abspath(path)} exists: remove it first") from None
    except OSError as err:
        raise NsinitError("", f"{os.path.abspath(path)}: {err.strerror or err}") from None
    return 0


COMMANDS: dict[str, Callable[[Globals, dict[str, Any]], int]] = {
    **{name: cmd_not_yet for name in USAGES},
    **{name: _lifecycle(name) for name in LIFECYCLE_COMMANDS},
    "exec": cmd_exec,
    "checkpoint": lambda globals_, args: _criu_command("checkpoint", globals_, args),
    "restore": lambda globals_, args: _criu_command("restore", globals_, args),
    "features": cmd_features,
    "spec": cmd_spec,
}
