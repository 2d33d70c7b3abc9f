"""What a running container leaves in its root directory, and whether it is alive.

``pid`` holds the init's host pid (the 2014 contract: its presence means a
container runs here); ``state.json`` holds everything else.  Both are written
atomically (temp file + rename) so a reader never sees half a file.  A pid on
its own proves nothing: pids are reused, so a container is live only when its
pid exists *and* has the start time we recorded (nsinit-origins §7.2).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

PID_FILE = "pid"
STATE_FILE = "state.json"


class StaleStateError(Exception):
    """The files exist but do not describe a live container; the text says why."""


@dataclass
class State:
    init_pid: int
    init_start_time: int
    created: str
    root: str
    rootfs: str
    namespace_paths: dict[str, str] = field(default_factory=dict)
    namespace_inodes: dict[str, int] = field(default_factory=dict)
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    network_state: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def read_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if gone.

    Parsed after the last ')' because the command name may itself contain
    spaces and parentheses.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state), so field 22 is fields[19].
    return int(fields[19])


def is_alive(pid: int, start_time: int) -> bool:
    return pid > 0 and read_start_time(pid) == start_time


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def write_state(root: str, state: State) -> None:
    # state.json first: once `pid` exists, readers expect the state beside it.
    _write_atomic(os.path.join(root, STATE_FILE), state.to_json())
    _write_atomic(os.path.join(root, PID_FILE), str(state.init_pid))


def update_state(root: str, state: State) -> None:
    _write_atomic(os.path.join(root, STATE_FILE), state.to_json())


def remove_state(root: str, pid: int | None = None) -> None:
    """Delete pid and state.json; with ``pid``, only if they still name that pid.

    The check keeps a dying supervisor from removing the files of a newer
    container created in the same directory after its own had been reaped.
    """
    if pid is not None:
        try:
            with open(os.path.join(root, PID_FILE)) as f:
                if f.read().strip() != str(pid):
                    return
        except FileNotFoundError:
            pass
    for name in (PID_FILE, STATE_FILE):
        try:
            os.unlink(os.path.join(root, name))
        except FileNotFoundError:
            pass


def load_state(root: str) -> State | None:
    """The recorded state, or None when no container was ever recorded here.

    Raises StaleStateError when files exist but are garbage, disagree, or
    describe a process that is gone or is no longer the container's init.
    """
    pid_path = os.path.join(root, PID_FILE)
    state_path = os.path.join(root, STATE_FILE)
    has_pid, has_state = os.path.exists(pid_path), os.path.exists(state_path)
    if not has_pid and not has_state:
        return None
    try:
        with open(pid_path) as f:
            pid = int(f.read().strip())
        with open(state_path) as f:
            raw = json.load(f)
        state = State(**raw)
    except FileNotFoundError as err:
        raise StaleStateError(f"{os.path.basename(err.filename)} is missing") from None
    except (ValueError, TypeError) as err:
        raise StaleStateError(f"unreadable state ({err.__class__.__name__})") from None
    if state.init_pid != pid:
        raise StaleStateError(f"pid file says {pid}, state.json says {state.init_pid}")
    if not is_alive(pid, state.init_start_time):
        if read_start_time(pid) is None:
            raise StaleStateError(f"container init {pid} is gone")
        raise StaleStateError(f"pid {pid} now belongs to another process")
    return state


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class RootLock:
    """flock on the root directory itself: serialises create-or-join decisions.

    Locking the directory (not a lock file inside it) leaves nothing behind.
    The fd is close-on-exec and the container child closes it right after
    clone, so only the supervisor holds the lock.
    """

    def __init__(self, root: str) -> None:
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def acquire(self) -> "RootLock":
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "RootLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
