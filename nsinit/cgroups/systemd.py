"""``cgroups="systemd"`` (libcontainer's SystemdCgroups option): refused.

The systemd driver asks systemd, over D-Bus, for a transient scope per
container; that needs systemd as PID 1.  nsinit has no such driver: on a
machine without systemd one would be faked, and on one with systemd the
cgroupfs driver works beside it (as runc's does).  So asking for it is one
clear error, never a silent fallback to cgroupfs.
"""
from __future__ import annotations

from nsinit.errors import NsinitError

SYSTEMD_RUNTIME_DIR = "/run/systemd/system"  # what sd_booted(3) checks


def pid1_name() -> str:
    try:
        with open("/proc/1/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def refuse_systemd_driver(step: str = "factory") -> NsinitError:
    """The error (to raise) for a factory that asks for the systemd cgroup driver."""
    import os

    name = pid1_name()
    if name != "systemd" or not os.path.isdir(SYSTEMD_RUNTIME_DIR):
        return NsinitError(step, f'cgroups: "systemd": PID 1 of this machine is not systemd (it is "{name}"), so there is '
                                  'no systemd to manage cgroups; use "cgroupfs"')
    return NsinitError(step, 'cgroups: "systemd": nsinit has no systemd cgroup driver; use "cgroupfs" '
                              "(it works beside systemd)")
