"""The config.json ``nsinit-runc spec`` writes: runc 1.1's example spec
(libcontainer/specconv/example.go), and its ``--rootless`` variant (ToRootless).

Inheritable and ambient capabilities stay empty, as in runc since 1.1.2
(CVE-2022-29162: filled, programs with inheritable file capabilities gained
them on execve even for a non-root user).
"""
from __future__ import annotations

import os

from nsinit.config.defaults import DEFAULT_PATH
from nsinit.errors import NsinitError
from nsinit.oci import SPEC_VERSION

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.oci.cli import Globals

_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
_MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# A cgroup namespace only where cgroup2 is the whole tree, as runc's example does.
CGROUP2_ROOT_FILE = "/sys/fs/cgroup/cgroup.controllers"


def default_spec(*, rootless: bool = False) -> dict[str, Any]:
    namespaces = ["pid", "network", "ipc", "uts", "mount"]
    if os.path.exists(CGROUP2_ROOT_FILE):
        namespaces.append("cgroup")
    spec: dict[str, Any] = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {key: list(_CAPABILITIES) for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "nsinit",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": kind} for kind in namespaces],
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
        },
    }
    return to_rootless(spec) if rootless else spec


def to_rootless(spec: dict[str, Any]) -> dict[str, Any]:
    """runc's ToRootless: a user namespace mapping only the caller's ids, no
    network namespace (nothing could configure it), host /sys bound (a new
    sysfs needs a network namespace owned by the user namespace), no gid=/uid=
    mount options (unmapped ids) and no cgroup resources (not delegated)."""
    linux = spec["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    mounts = []
    for mount in spec["mounts"]:
        if mount["destination"] == "/sys":
            mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
            continue
        if "options" in mount:
            mount["options"] = [o for o in mount["options"] if not o.startswith(("gid=", "uid="))]
        mounts.append(mount)
    spec["mounts"] = mounts
    linux.pop("resources", None)
    return spec


def cmd_spec(globals_: Globals, args: dict[str, Any]) -> int:
    """``nsinit-runc spec``: default_spec as BUNDLE/config.json."""
    from nsinit import jsontext

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
