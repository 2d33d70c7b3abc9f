"""nsinit-runc's usage texts and docopt's parse: the slow path of its command line.

nsinit/oci/cli.py reads the hot commands' plain lines itself and imports this
only for any other line, --help and --version, so that an engine's
state/start/kill/delete never load these texts (docs/DEVELOPING.md,
"nsinit-runc's hot commands").
"""
from __future__ import annotations

import sys

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

PROGRAM = "nsinit-runc"

USAGE = """nsinit-runc: runc's command line over nsinit, for podman, containerd and friends.

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


def parse_line(argv: list[str]) -> dict[str, Any]:
    """The global options and the command word of any line, docopt's way."""
    return parse_words(argv, USAGE, options_first=True) if argv else {"--help": True, "COMMAND": None}


def command_args(command: str, words: list[str]) -> dict[str, Any] | None:
    """The command's own words, docopt's way; None once its usage is printed
    (-h or --help among them)."""
    usage = USAGES[command] + _HELP
    if _asks_for_help(words, options_first=command in _OPTIONS_FIRST):
        print(usage.strip())
        return None
    return parse_command_words(command, words, usage)


def _asks_for_help(words: list[str], *, options_first: bool) -> bool:
    """-h/--help among the command's own options (before its first
    argument for exec and ps, whose later words are the process's)."""
    for word in words:
        if word in ("-h", "--help"):
            return True
        if word == "--" or (options_first and not word.startswith("-")):
            return False
    return False


def parse_command_words(command: str, words: list[str], usage: str) -> dict[str, Any]:
    """A command's own words.  For exec and ps, options end at the ID (the
    words after it are the process's, ``-c`` and ``--help`` included): docopt's
    options_first stops at the first positional word, which must then be the
    ID, so their pattern is parsed without the command's name in it."""
    if command not in _OPTIONS_FIRST:
        return parse_words([command, *words], usage, options_first=False)
    bare = usage.replace(f"{PROGRAM} {command} ", f"{PROGRAM} ", 1)
    return parse_words(words, bare, options_first=True, shown=usage)


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


def version_text() -> str:
    from nsinit import __version__
    from nsinit.oci import SPEC_VERSION

    # go-runc reads "runc version X", "commit: ..." and "spec: ..." by prefix.
    return (f"runc version {__version__}\n"
            f"spec: {SPEC_VERSION}\n"
            f"commit: nsinit {__version__}\n"
            f"python: {sys.version.split()[0]}")
