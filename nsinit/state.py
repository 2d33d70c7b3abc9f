"""Where a container's record lives, and whether it is alive.

The record is kept twice.  The authoritative copy is ``state.json`` in a
private directory, ``/run/nsinit/<dev>-<inode of the root dir>`` (0700): the
root directory is usually the container's own ``/``, and its root user must
not be able to forge what nsinit later trusts (which pid to join, which
cgroups to signal) or to flock it and block every ``nsinit exec``.  The
2014 contract is kept too: ``pid`` and ``state.json`` appear in the root
directory while the container runs, for people and scripts to read; nsinit
itself never trusts them.

A pid on its own proves nothing: pids are reused, so a container is live
only when its pid exists, has the start time we recorded (libcontainer
stored it but never compared it: runc#871), and still has the namespaces we
recorded, none of them nsinit's own.
Files are written atomically (temp file + rename).
"""
from __future__ import annotations

import fcntl
import os
import time

from nsinit import jsontext
from nsinit.errors import EXIT_COMMAND_FAILED, NsinitError, describe_oserror
from nsinit.record import field, fields, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

    from nsinit.config.recorded import RecordedConfig

PID_FILE = "pid"
STATE_FILE = "state.json"
# In the private directory while a created container's init waits to be
# started (nsinit/lifecycle/start.py); runc's exec.fifo.
EXEC_FIFO = "exec.fifo"
# The OCI runtime spec's statuses.  "stopped" is never stored: it is what a
# record whose init has exited is read as.
STATUSES = ("creating", "created", "running", "paused", "stopped")
# Config name -> file name under /proc/PID/ns/ (the liveness check stats
# the recorded ones).  Defined here, not in nsinit.config.names (which
# re-exports it): a command that reads a record then loads no part of the
# config package (nsinit.config and its names: ~0.1 ms).
NAMESPACE_PROC_FILES = {"NEWNS": "mnt", "NEWUTS": "uts", "NEWIPC": "ipc", "NEWPID": "pid", "NEWNET": "net",
                        "NEWUSER": "user", "NEWCGROUP": "cgroup", "NEWTIME": "time"}


# Root's private state; NSINIT_RUN_DIR moves it (tests).  A plain user's
# goes to a directory of their own (nsinit/rootless.py): /run/nsinit is root's.
def _default_run_dir() -> str:
    if os.geteuid() == 0:
        return "/run/nsinit"
    from nsinit import rootless  # a plain user's only: root's start-up does not load it

    return rootless.run_dir(os.geteuid())


RUN_DIR = os.environ.get("NSINIT_RUN_DIR") or _default_run_dir()


class ContainerStoppedError(Exception):
    """The init has exited and its supervisor, still alive, is removing the
    container: not stale, not running either.  Or the container was created
    detached (no nsinit supervises it): it stays "stopped" until ``nsinit
    delete``, gc or the next creation in its root dir removes it."""

    def __init__(self, record: "State") -> None:
        who = "nsinit delete removes it" if record.detached else "its nsinit is cleaning up"
        super().__init__(f"container init {record.init_pid} has exited; {who}")
        self.record = record


class StaleStateError(Exception):
    """The files exist but do not describe a live container; the text says why.

    ``record`` is set when nsinit's own private record was readable: the
    container it describes is gone, but its cgroups or veths may not be.
    """

    record: "State | None" = None


@record
class State:
    """What nsinit records about a running container (state.json)."""
    init_pid: int
    init_start_time: int
    created: str
    root: str
    rootfs: str
    namespace_paths: dict[str, str] = field(default_factory=dict)
    namespace_inodes: dict[str, int] = field(default_factory=dict)
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    # Ancestors of cgroup_paths' directories that the creation made, deepest
    # first, removed after them when no other container uses them; a record
    # of an nsinit before this field has none.
    cgroup_parents_made: list[str] = field(default_factory=list)
    network_state: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"          # creating, created, running or paused (STATUSES)
    supervisor_pid: int = 0          # the creating nsinit, which removes all this at the end
    supervisor_start_time: int = 0
    detached: bool = False           # created with nobody supervising (Container.create): kept once stopped
    config: RecordedConfig = field(default_factory=dict)   # written and read by nsinit.config.recorded
    hooks: dict[str, Any] = field(default_factory=dict)    # OCI hooks: nsinit.lifecycle.hooks.HookPlan

    def to_json(self) -> str:
        # Its fields hold JSON's own types (no record inside: each is a
        # dict or list as it is read back), so no asdict copy of the
        # recorded config (~0.13 ms of each write of a record).
        return jsontext.dumps({f.name: getattr(self, f.name) for f in fields(self)}, indent=2, sort_keys=True)


def read_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if gone."""
    raw = _read_proc_stat(pid)
    return None if raw is None else stat_start_time(raw)


def _read_proc_stat(pid: int) -> bytes | None:
    """/proc/PID/stat, or None if there is no such process.

    One read of a page: the kernel writes the whole line into a buffer
    that holds it (at most ~1.1 KB: 52 numbers and a 15-byte comm), and
    os.open/os.read, not open(): a buffered reader's fstat, ioctl and
    lseeks were three quarters of the system calls of each liveness check.
    """
    if pid <= 0:
        return None  # /proc/0 does not exist, and /proc/-1 is no pid either
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        return os.read(fd, 4096)
    except ProcessLookupError:
        return None  # it was reaped between the open and the read
    finally:
        os.close(fd)


def _stat_fields(raw: bytes) -> list[bytes]:
    """The fields of a /proc/PID/stat line from field 3 (state) on.

    Split after the last ')' because the command name may itself contain
    spaces and parentheses (``comm`` is up to 15 bytes of anything but NUL):
    splitting the whole line on spaces shifts every later field
    (libcontainer's bug, runc#871).
    """
    return raw[raw.rindex(b")") + 2:].split()


def stat_start_time(raw: bytes) -> int:
    """The start time in a /proc/PID/stat line."""
    # fields[0] is field 3 (state), so field 22 is fields[19].
    return int(_stat_fields(raw)[19])


def is_alive(pid: int, start_time: int) -> bool:
    return pid > 0 and read_start_time(pid) == start_time


# pin_process and process_exited live here, beside the liveness check, not
# in the join: start, delete and stop use them and load none of its modules.
def pin_process(pid: int, start_time: int) -> int:
    """A pidfd on ``pid`` if it is still the process that started at
    ``start_time``, else -1.  Opened before the check: from then on the pid
    cannot be reused under us."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return -1
    if not is_alive(pid, start_time):
        os.close(pidfd)
        return -1
    return pidfd


def process_exited(pidfd: int, timeout: float) -> bool:
    """A pidfd becomes readable when its process exits (zombie or not)."""
    import select

    return bool(select.select([pidfd], [], [], timeout)[0])


def _write_atomic(path: str, text: str) -> None:
    write_atomic(path, text.encode())


def write_atomic(path: str, data: bytes, mode: int = 0o666) -> None:
    """``path`` holds ``data`` whole or not at all: a temp file beside it,
    renamed over it.  ``mode`` before the umask."""
    tmp = f"{path}.tmp{os.getpid()}"
    # The public copies go into a directory the container's root can write
    # to: whatever sits at the temp name (a symlink to a host file) is
    # removed, and O_EXCL | O_NOFOLLOW refuse one planted again meanwhile;
    # nothing is ever written through it.
    _unlink(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        # A half-written temp file must not stay behind in the root dir.
        try:
            os.unlink(tmp)
        except OSError:
            pass  # the original error is the one to report
        raise


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``.  os.write, not a text file object: that
    costs an fstat, an ioctl and two lseeks (and an encoder) per file, and
    a record is three files."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_own_file(path: str) -> bytes:
    """The whole of a file nsinit wrote into a directory only it writes (the
    private directory, a factory's id dir): one read of its size and one to
    see the end (os.read allocates what it is asked), no buffered reader."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        want = os.fstat(fd).st_size + 1
        while chunk := os.read(fd, max(want, 4096)):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def private_dir(root: str) -> str:
    """The root directory's private state directory (not created here).

    Named by device and inode, not by path: the same directory reached by
    two paths (a symlink, a bind mount) is one container.
    """
    st = os.stat(root)
    return os.path.join(RUN_DIR, f"{st.st_dev:x}-{st.st_ino:x}")


def ensure_private_dir(root: str) -> str:
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    if os.geteuid() != 0:
        from nsinit import rootless

        # Made by us just now, or by whoever came first (in /tmp, anyone).
        rootless.check_private_dir(RUN_DIR, os.geteuid())
    path = private_dir(root)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    return path


def write_state(root: str, state: State) -> None:
    text = state.to_json()
    _write_atomic(os.path.join(ensure_private_dir(root), STATE_FILE), text)
    # The public copies, state.json first: once `pid` exists, readers
    # expect the state beside it.
    _write_atomic(os.path.join(root, STATE_FILE), text)
    _write_atomic(os.path.join(root, PID_FILE), str(state.init_pid))


def update_state(root: str, state: State) -> None:
    text = state.to_json()
    _write_atomic(os.path.join(private_dir(root), STATE_FILE), text)
    _write_atomic(os.path.join(root, STATE_FILE), text)


def remove_state(root: str, pid: int | None = None, *, checked: bool = False) -> None:
    """Delete the record and the public files; with ``pid``, only if the
    record is still that pid's (a newer container may own the dir by now).
    ``checked``: the caller has read the record under the lock it holds and
    found it ``pid``'s (a teardown, delete), so it is not read once more.

    Call with the RootLock held.  With ``pid`` (a container's end) the
    private directory goes too, and the lock's waiters notice that and
    start over (see RootLock); without, it stays for the caller's new
    container.
    """
    private = private_dir(root)
    if pid is not None and not checked and _recorded_init_pid(os.path.join(private, STATE_FILE)) not in (pid, None):
        return
    _remove_public_files(root)
    _unlink(os.path.join(private, STATE_FILE))
    _unlink(os.path.join(private, EXEC_FIFO))
    if pid is None:
        return  # clearing stale files for a new container: keep the locked dir
    _rmdir_if_empty(private)


def _remove_public_files(root: str) -> None:
    # Removed unread: only the private record says whose they are (a newer
    # container writes its record before them, under the lock we hold), and
    # reading what the container's root may have put there (a FIFO, a
    # device) could hang or worse.
    for name in (PID_FILE, STATE_FILE):
        _unlink(os.path.join(root, name))


# --- every root's records at once (nsinit gc) ---------------------------------

def private_dirs() -> list[str]:
    """The private directories in RUN_DIR, whatever state they are in."""
    try:
        names = os.listdir(RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(RUN_DIR, name) for name in names if _is_private_dir_name(name))


def _is_private_dir_name(name: str) -> bool:
    parts = name.split("-")
    return len(parts) == 2 and all(part and all(c in "0123456789abcdef" for c in part) for part in parts)


def read_record(private: str) -> State | None:
    """The record kept in a private directory, alive or not; None if there is none.

    Raises StaleStateError when the file is there but is no record.
    """
    try:
        raw = jsontext.loads(read_own_file(os.path.join(private, STATE_FILE)))
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StaleStateError(f"state.json: {err.strerror}") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise StaleStateError("state.json is not valid JSON (truncated?)") from None
    return _state_from_json(raw)


def why_not_alive(record: State) -> str | None:
    """Why ``record`` describes no live container init; None while it does."""
    try:
        _check_alive(record)
    except StaleStateError as err:
        return str(err)
    return None


def remove_private_dir(private: str, record: State | None) -> None:
    """Delete a dead container's private directory (call with its lock
    held), and the public files in its root dir if that directory is still
    the one the record was made for: a path now naming another directory
    (its inode differs) is left alone."""
    if record is not None and _names_private_dir(record.root, private):
        _remove_public_files(record.root)
    try:
        names = os.listdir(private)
    except FileNotFoundError:
        return
    for name in names:
        # The record, a created init's exec fifo, and temp files a writer
        # killed mid-write left beside them.
        if name in (STATE_FILE, EXEC_FIFO) or name.startswith(f"{STATE_FILE}.tmp"):
            _unlink(os.path.join(private, name))
    _rmdir_if_empty(private)


def _names_private_dir(root: str, private: str) -> bool:
    try:
        return private_dir(root) == private
    except OSError:
        return False  # the root dir is gone (or unreadable): nothing public to remove


def _rmdir_if_empty(path: str) -> None:
    """Remove a private dir; one that is gone or not empty (a writer's
    temp file left by a SIGKILL) is no error: it is only not removed."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass  # removed already
    except OSError as err:
        import errno  # here: importing it costs every command that reads a record ~60 us

        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise NsinitError("state", f"cannot remove {describe_oserror(err)}") from None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise NsinitError("state", f"cannot remove {describe_oserror(err)}") from None


def recorded_init_pid(root: str) -> object:
    """init_pid of the private record, None without one.  No liveness check:
    for a supervisor asking whether the record is still its own."""
    return _recorded_init_pid(os.path.join(private_dir(root), STATE_FILE))


def _recorded_init_pid(path: str) -> object:
    """init_pid from state.json; None when there is no readable one."""
    try:
        raw = jsontext.loads(read_own_file(path))
    except (OSError, ValueError):
        return None
    return raw.get("init_pid") if isinstance(raw, dict) else None


def load_state(root: str) -> State | None:
    """The live container's record, or None when no container runs here.

    Raises StaleStateError when something is recorded but does not describe
    a live container init: garbage, a process that is gone, a reused pid,
    or public files with no private record behind them (a container that
    ended without cleaning up, or files planted in the directory).
    """
    state = read_record(private_dir(root))
    if state is None:
        if any(os.path.lexists(os.path.join(root, n)) for n in (PID_FILE, STATE_FILE)):
            raise StaleStateError("pid/state.json without a live container")
        return None
    try:
        _check_alive(state)
    except StaleStateError as err:
        if supervisor_alive(state) or is_stopped_detached(state):
            raise ContainerStoppedError(state) from None
        # Our own record of a container that is gone: the caller can still
        # remove what it left behind (cgroups, host veths).
        err.record = state
        raise
    return state


def is_stopped_detached(record: State) -> bool:
    """A detached container (call when its init is gone) that got as far as
    "created": stopped, as the OCI spec has it, until someone deletes it.
    One whose creation died half-way ("creating") is stale: nothing was
    handed to anyone, it is removed at once."""
    return record.detached and record.status != "creating"


def supervisor_alive(record: State) -> bool:
    return bool(record.supervisor_pid) and is_alive(record.supervisor_pid, record.supervisor_start_time)


def wait_for_removal(root: str, record: State, timeout: float) -> bool:
    """Wait (without the lock) until the supervisor of ``record`` has removed
    it, or has died; False on timeout."""
    path = os.path.join(private_dir(root), STATE_FILE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _recorded_init_pid(path) != record.init_pid or not supervisor_alive(record):
            return True
        time.sleep(0.005)
    return False


def _check_alive(state: State) -> None:
    pid = state.init_pid
    # One read of /proc/PID/stat for the start time and the zombie check.
    raw = _read_proc_stat(pid)
    if raw is None:
        raise StaleStateError(f"container init {pid} is gone")
    if stat_start_time(raw) != state.init_start_time:
        raise StaleStateError(f"pid {pid} now belongs to another process")
    if _stat_fields(raw)[0] in (b"Z", b"X"):
        # Exited, its parent has not reaped it yet (a subreaper or PID 1
        # that reaps late).  With namespaces, their links are gone too; a
        # container without any has nothing else to tell (runc's rule).
        raise StaleStateError(f"container init {pid} has exited")
    _check_namespaces(state)


def _state_from_json(raw: object) -> State:
    if not isinstance(raw, dict):
        raise StaleStateError("state.json does not hold an object")
    known = {f.name for f in fields(State)}
    required = {f.name for f in fields(State) if f.required}
    missing = sorted(required - raw.keys())
    if missing:
        raise StaleStateError(f"state.json lacks {', '.join(missing)}")
    # Keys of a newer nsinit are ignored rather than making a live container
    # unjoinable.
    state = State(**{k: v for k, v in raw.items() if k in known})
    for name in ("init_pid", "init_start_time"):
        value = getattr(state, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise StaleStateError(f"state.json: {name} is not an integer")
    inodes = state.namespace_inodes
    if not isinstance(inodes, dict) or not all(
            isinstance(v, int) and k in NAMESPACE_PROC_FILES for k, v in inodes.items()):
        raise StaleStateError("state.json: namespace_inodes is malformed")
    if state.cgroup_parents_made and not _are_cgroup_parents(state.cgroup_parents_made, state.cgroup_paths):
        raise StaleStateError("state.json: cgroup_parents_made is malformed")
    return state


def _are_cgroup_parents(parents: object, cgroup_paths: object) -> bool:
    """Every entry names a directory above one of the container's cgroups:
    the teardown rmdirs them, and nothing else may be removed for it."""
    if not isinstance(parents, list) or not isinstance(cgroup_paths, dict):
        return False
    own = [path for path in cgroup_paths.values() if isinstance(path, str)]
    return all(isinstance(parent, str) and parent.startswith("/") and not parent.endswith("/")
               and any(path.startswith(parent + "/") for path in own) for parent in parents)


def _check_namespaces(state: State) -> None:
    """The start time proves the pid was not reused; the namespaces prove it
    is a container init at all.  Every recorded namespace must still be the
    init's, and one the container created (not joined by path) can never be
    nsinit's own: a pid file naming a host process is refused here, whatever
    start time sits beside it.  A zombie init has lost its namespace links,
    so it counts as gone."""
    # Read here, not through nsinit.config.recorded: kill, state and the
    # other lifecycle commands check liveness without loading the config model.
    joined_by_path = {ns.get("type") for ns in state.config.get("namespaces", [])
                      if isinstance(ns, dict) and ns.get("path")} if isinstance(state.config, dict) else set()
    pid = state.init_pid
    for name, inode in sorted(state.namespace_inodes.items()):
        proc_name = NAMESPACE_PROC_FILES[name]
        try:
            actual = os.stat(f"/proc/{pid}/ns/{proc_name}").st_ino
        except PermissionError:
            if state.detached and state.status == "created" and os.geteuid() != 0:
                # A plain user's created init, not yet exec'd, is still
                # non-dumpable: its /proc/PID/ns are root's.  Its pid and
                # start time matched, and the record lies in the user's
                # own 0700 directory: nobody else could have forged it.
                continue
            raise
        except (FileNotFoundError, ProcessLookupError):
            raise StaleStateError(f"container init {pid} has exited") from None
        if actual != inode:
            raise StaleStateError(f"pid {pid} is not the container's init (its {proc_name} namespace differs)")
        if name in joined_by_path:
            continue
        try:
            own = os.stat(f"/proc/self/ns/{proc_name}").st_ino
        except OSError:
            continue  # nsinit runs without that namespace type; nothing to compare
        if actual == own:
            raise StaleStateError(f"pid {pid} is not a container's init (it shares nsinit's own {proc_name} namespace)")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# How long the commands that only look or signal (state, ps, kill, stop) wait
# for the lock before they go on without it (see RootLock).
LOOK_WAIT_SECONDS = 2.0


class RootLock:
    """The root dir's lock: the one lock of nsinit, an flock on the private
    state directory (``/run/nsinit/<dev>-<inode>``, never the root dir,
    which the container's root user could flock: see the module docstring).

    What it protects: one root dir's record (the private state.json, the
    exec fifo, the public pid and state.json) and what the record names
    (cgroups, host veths), so that every decision "nothing runs here, create
    one", "one runs, join it" or "it is dead, remove it" is taken on a record
    nobody is changing, and two containers never share a root dir.

    Who takes it, and around what (the order is the rule):

    - a creation (nsinit/lifecycle/create.py) from before it reads the
      record to the init's exec: network helper, cgroups, clone, veths,
      id maps, record, go; so a join never enters a container whose mounts
      and credentials are half set up.  A detached one keeps it until the
      init waits on its exec fifo, recorded as created (``run --detach``
      keeps it through the start too: ``start_locked``).  Then the
      supervisor runs unlocked, and takes the lock again at the container's
      end to tear down (init killed, veths, cgroups, the record last), and
      only if the record is still its own pid's;
    - a join, only while it decides: released before its clone (the join
      then pins the init by a pidfd checked against the record), so no
      container process ever runs under it;
    - start, pause/resume/update, delete, checkpoint/restore: over their
      change of the record and its cgroups; a delete lets go before it
      waits for a supervisor (which needs the lock to remove what it made);
    - nsinit state, ps, kill, stop: over reading (and signalling) the
      record, so that they never mistake a container being born for stale
      files; they wait at most LOOK_WAIT_SECONDS and then go on without it,
      with a warning (``wait=``): kill must work even while a slow creation
      holds the lock;
    - gc, without waiting: a held lock means a creation, a join or a
      teardown is under way, and that record is skipped.

    It is not re-entrant: a holder that takes it again opens another file
    and waits for itself.  Pass the held lock on instead (``_Creation``'s
    ``lock``, ``start_locked``).

    A crashed holder: an flock belongs to an open file, which the kernel
    closes when its holder dies, SIGKILL included: no lock file or pid is
    left to clean up.  The fd is close-on-exec; the container's init closes
    its copy right after clone, and the network helper, forked while it is
    held, shares it only for its milliseconds of veth setup.  What a crashed
    holder leaves is its record, which the next holder finds dead (pid,
    start time, namespaces: see why_not_alive) and removes.

    The directory is removed when its container ends, and on release when
    nothing is recorded in it, so after getting the lock we check that the
    path still names the directory we locked; if not, it went while we
    waited, and we start over on the new one.

    ``with RootLock(root):`` (or ``Container.locked()``) waits as long as it
    takes; ``acquire``/``release`` for a holder that hands the lock on.
    """

    def __init__(self, root: str, *, wait: float | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        """``wait``: the longest ``with`` waits before it goes on without
        the lock, telling ``warn``; None: no limit."""
        self.root = root
        self.fd = -1
        self.path = ""
        self.existing_dir = ""
        self.wait, self.warn = wait, warn

    @classmethod
    def of_private_dir(cls, private: str) -> "RootLock":
        """The lock of an existing private directory, whatever root it was
        made for (that root may be gone): it is never created again."""
        lock = cls("")
        lock.existing_dir = private
        return lock

    def _open(self) -> bool:
        """Open the private dir; False if it went (a container's end) between
        being made sure of and being opened: then start over."""
        path = self.existing_dir or ensure_private_dir(self.root)
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self.path = path
        return True

    def _still_current(self, path: str) -> bool:
        try:
            return os.stat(path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return False

    def acquire(self) -> "RootLock":
        if not self.try_acquire(None):
            raise AssertionError("unreachable: no timeout")
        return self

    def try_acquire(self, timeout: float | None) -> bool:
        """Get the lock; with ``timeout``, give up after that many seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._open():
                if self._lock(deadline) and self._still_current(self.path):
                    return True
                self._close()
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _lock(self, deadline: float | None) -> bool:
        if deadline is None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            return True
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        """Let go of the lock.  A directory with no record in it goes too,
        so locking leaves nothing behind in RUN_DIR; only while its path
        still names the directory we locked: after a container's end, that
        may be a newer directory, locked by a waiter that started over."""
        if self.fd < 0:
            return
        try:
            if self._still_current(self.path):
                os.rmdir(self.path)
        except OSError:
            pass  # not empty: a container is recorded there (or an empty dir stays; harmless)
        finally:
            self._close()

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "RootLock":
        if self.wait is None:
            return self.acquire()
        try:
            if not self.try_acquire(self.wait) and self.warn is not None:
                self.warn(f"{self.root} stays locked; going on without the lock")
        except OSError as err:
            self.release()
            raise NsinitError("state", describe_oserror(err), EXIT_COMMAND_FAILED) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
