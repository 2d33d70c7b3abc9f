"""What a container gets when container.json does not say.

Sources (in opencontainers/runc's history): the 2015 nsinit template for
capabilities and system mounts (runc@dcdbf01076b5:nsinit/), libcontainer's
DefaultSimpleDevices for device nodes (runc@dcdbf01076b5:
configs/device_defaults.go), and runc's current defaults for the
masked and read-only paths (the 2014 lists missed several /proc files that
leak host information or allow host changes).
"""
from __future__ import annotations

from nsinit.config.model import DeviceConfig, MountConfig, NamespaceConfig
from nsinit.config.names import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_STRICTATIME,
)

# The 2015 nsinit template's whitelist: the 2014 twelve plus FSETID and
# AUDIT_WRITE.  Everything else (SYS_ADMIN, NET_ADMIN, SYS_MODULE, ...) would
# let root in the container act on the host.  Sorted by capability number.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
)

# No NEWUSER: it needs uid/gid mappings the config must choose.
DEFAULT_NAMESPACES: tuple[NamespaceConfig, ...] = (
    NamespaceConfig("NEWNS"),
    NamespaceConfig("NEWUTS"),
    NamespaceConfig("NEWIPC"),
    NamespaceConfig("NEWPID"),
    NamespaceConfig("NEWNET"),
)

# System mounts, in mount order (/dev before the mounts inside it).  sysfs is
# read-only because writable /sys lets root reconfigure host devices.
DEFAULT_MOUNTS: tuple[MountConfig, ...] = (
    MountConfig("proc", "/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV),
    MountConfig("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
    MountConfig(
        "devpts",
        "/dev/pts",
        "devpts",
        MS_NOSUID | MS_NOEXEC,
        # newinstance: a private pts instance, so the container cannot reach host ptys.
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    ),
    MountConfig("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"),
    MountConfig("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV),
    MountConfig("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
)

# DefaultSimpleDevices: created in the container's /dev and allowed in its cgroup.
DEFAULT_DEVICES: tuple[DeviceConfig, ...] = (
    DeviceConfig("c", "/dev/null", 1, 3),
    DeviceConfig("c", "/dev/zero", 1, 5),
    DeviceConfig("c", "/dev/full", 1, 7),
    DeviceConfig("c", "/dev/tty", 5, 0),
    DeviceConfig("c", "/dev/urandom", 1, 9),
    DeviceConfig("c", "/dev/random", 1, 8),
)

# /dev/null is bind-mounted over these: they expose host memory (kcore), host
# keys, timing side channels, or firmware/power interfaces.
DEFAULT_MASK_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

# Remounted read-only: writing to them changes the host kernel, not the container.
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_ENVIRONMENT: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)

DEFAULT_PARENT_DEATH_SIGNAL = 9  # SIGKILL: the container dies with nsinit

# The process's umask when the config sets none (runc's and the OCI spec's
# default): never the caller's, which may be 077 or 000.
DEFAULT_UMASK = 0o022

# The kernel's limit on lines in uid_map/gid_map (since 4.15; 5 before).
MAX_ID_MAPPINGS = 340
