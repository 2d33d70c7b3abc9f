"""``nsinit gc``: the records of containers whose init and nsinit are both gone.

What they made is removed by the one teardown path, nsinit/lifecycle/destroy.py,
which runs their poststop hooks too.
"""
from __future__ import annotations

from nsinit import state
from nsinit.errors import NsinitError, describe_oserror
from nsinit.lifecycle.destroy import remove_dead_record


def collect_garbage() -> list[dict[str, object]]:
    """Remove what dead containers left anywhere on this host: ``nsinit gc``.

    ``exec``, ``state`` and the other commands clean up a dead container's
    leftovers when they are run in its root dir.  When that directory is
    gone (deleted after its nsinit was killed with SIGKILL), nothing would
    ever find them again: this walks every private record instead.  Only
    records of a container whose init and nsinit are both gone are
    touched; one whose lock is held (a creation, a join or a teardown
    under way) is skipped.  Returns one entry per record removed, or per
    record that could not be (with an ``error``): one failure does not stop
    the others.
    """
    entries = []
    for private in state.private_dirs():
        lock = state.RootLock.of_private_dir(private)
        try:
            if not lock.try_acquire(timeout=0):
                continue
            entry = _collect_dead_record(private)
        except (NsinitError, OSError) as err:
            entry = {"record": private, "error": str(err) if isinstance(err, NsinitError) else describe_oserror(err)}
        finally:
            lock.release()  # also removes the directory if nothing is left in it
        if entry is not None:
            entries.append(entry)
    return entries


def _collect_dead_record(private: str) -> dict[str, object] | None:
    try:
        record = state.read_record(private)
    except state.StaleStateError as err:
        # Not a record at all: nothing says what it made, only the files go.
        state.remove_private_dir(private, None)
        return {"record": private, "root": None, "init_pid": None, "why": str(err)}
    if record is None:
        return None
    why = state.why_not_alive(record)
    if why is None or state.supervisor_alive(record):
        return None  # running, or stopped with its nsinit still removing it
    remove_dead_record(private, record)  # and its poststop hooks
    return {"record": private, "root": record.root, "init_pid": record.init_pid, "why": why}
