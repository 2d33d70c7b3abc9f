"""A live container's processes: found by namespace inode, described, killed.

Apart from nsinit/container.py, which imports it where a command needs
every process (kill --all, ps, stop, checkpoint): an engine's state, start,
kill and delete of one init never load it (docs/DEVELOPING.md,
"nsinit-runc's hot commands").
"""
from __future__ import annotations

import os

from nsinit.state import NAMESPACE_PROC_FILES

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal

    from nsinit.state import State
else:
    import _signal as signal  # signal.py's C half: no enum classes


def container_pids(current: State) -> list[int]:
    """Host pids sharing the init's namespace (pid ns, else mount ns).

    The namespace inode, not the process tree, decides membership: a joined
    process is not a descendant of the init.
    """
    kind = "NEWPID" if "NEWPID" in current.namespace_inodes else "NEWNS"
    inode = current.namespace_inodes.get(kind)
    if inode is None:
        return [current.init_pid]
    # The names table, not nsinit.namespaces: that loads the cffi helper
    # (nsinit._native), which nsinit-runc kill --all and ps need no part of.
    proc_name = NAMESPACE_PROC_FILES[kind]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/{proc_name}").st_ino == inode:
                pids.append(int(entry))
        except OSError:
            continue  # exited while we looked, or a kernel thread
    return sorted(pids)


def describe_process(pid: int) -> dict[str, object]:
    container_pid = pid
    command = ""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    container_pid = int(line.split()[-1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = " ".join(part.decode(errors="replace") for part in f.read().split(b"\0") if part)
    except OSError:
        pass  # exited while we looked
    return {"pid": pid, "container_pid": container_pid, "command": command}


def kill_every_process(current: State) -> None:
    for pid in container_pids(current):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # exited since we listed it
