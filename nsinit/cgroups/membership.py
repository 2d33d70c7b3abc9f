"""Which files move a process into a container's cgroups, and whether they are frozen.

This is all a join needs from the cgroups package, so it lives apart from the
managers and imports nothing heavier than ``fs``: an ``nsinit exec`` that
joins pays neither for the managers nor for mount-table parsing.  The
managers answer the same questions through these functions.

``paths`` is the recorded mapping: controller -> directory on a v1 (or hybrid)
host, or ``{"unified": directory}`` on a cgroup2-only host.
"""
from __future__ import annotations

import os

from nsinit.cgroups import fs
from nsinit.errors import NsinitError


def is_unified(paths: dict[str, str]) -> bool:
    return set(paths) == {"unified"}


def attach_files(paths: dict[str, str]) -> list[str]:
    """The files a process writes "0" to, to move itself in.

    v1: "tasks", not "cgroup.procs": moving only the calling thread skips the
    kernel's global threadgroup rwsem and its RCU grace period (about 11 ms
    per container here, against 0.3 ms).  The mover is single-threaded, so
    the thread is the whole process.
    """
    if is_unified(paths):
        return [os.path.join(paths["unified"], "cgroup.procs")]
    return [os.path.join(directory, "tasks") for directory in sorted(set(paths.values()))]


def is_frozen(paths: dict[str, str]) -> bool:
    if is_unified(paths):
        return read_events(os.path.join(paths["unified"], "cgroup.events")).get("frozen") == 1
    freezer = paths.get("freezer")
    if freezer is None:
        return False
    text = fs.read_optional(os.path.join(freezer, "freezer.state"))
    # FREEZING counts: some tasks are frozen already.
    return text is not None and text.strip() in ("FROZEN", "FREEZING")


def refuse_if_frozen(paths: dict[str, str]) -> None:
    """A process added to a frozen cgroup freezes at once: a joined process
    would hang before its exec until someone resumes."""
    if is_frozen(paths):
        raise NsinitError("cgroups", "the container is paused (nsinit resume first)")


def files_to_join(paths: dict[str, str]) -> list[str]:
    refuse_if_frozen(paths)
    return attach_files(paths)


def read_events(path: str) -> dict[str, int]:
    """A flat keyed file (cgroup.events, memory.events ...) as {key: number}; {} if missing."""
    text = fs.read_optional(path) or ""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out
