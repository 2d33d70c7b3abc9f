"""Name tables: the single source of truth for kernel constants named in configs.

container.json names namespaces, capabilities, rlimits and mount flags by
name; the namespaces, capabilities and mount modules import these tables so a
name means the same number everywhere.  Values are the Linux UAPI constants
(include/uapi/linux/sched.h, capability.h, asm-generic/resource.h, mount.h);
they are fixed by the kernel ABI, so they are spelled out here rather than
fetched from ``os``/``resource`` (which lack several of them, e.g. CLONE_NEWTIME).
"""
from __future__ import annotations

# The record's table, re-exported: every command that reads a record needs
# it and loads no config module for it.
from nsinit.state import NAMESPACE_PROC_FILES as NAMESPACE_PROC_FILES

# --- namespaces ------------------------------------------------------------

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Config name -> clone(2)/unshare(2)/setns(2) flag.
NAMESPACE_CLONE_FLAGS: dict[str, int] = {
    "NEWNS": CLONE_NEWNS,
    "NEWUTS": CLONE_NEWUTS,
    "NEWIPC": CLONE_NEWIPC,
    "NEWPID": CLONE_NEWPID,
    "NEWNET": CLONE_NEWNET,
    "NEWUSER": CLONE_NEWUSER,
    "NEWCGROUP": CLONE_NEWCGROUP,
    "NEWTIME": CLONE_NEWTIME,
}

# Config name -> file name under /proc/PID/ns/: NAMESPACE_PROC_FILES,
# imported above from nsinit.state, where it is defined.

# --- capabilities ----------------------------------------------------------

# Canonical "CAP_X" name -> capability number (include/uapi/linux/capability.h).
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# Highest capability this table knows.  A running kernel may know fewer
# (PR_CAPBSET_READ says which); the capabilities module clips to that.
CAP_LAST_CAP = 40

# Capability number -> canonical name.
CAPABILITY_NAMES: dict[int, str] = {number: name for name, number in CAPABILITIES.items()}

# --- rlimits ---------------------------------------------------------------

# "RLIMIT_X" -> resource number (asm-generic/resource.h; x86, arm, riscv, ...).
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

RLIMIT_NAMES: dict[int, str] = {number: name for name, number in RLIMITS.items()}

# Python's resource.RLIM_INFINITY; the config uses it for "unlimited".
RLIM_INFINITY = -1

# --- mount flags -----------------------------------------------------------

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

# The propagation-type bits.  mount(2) treats a call carrying one of them as a
# pure propagation change and ignores the other arguments, so they are kept
# apart from the flags of the mount itself (MountConfig.propagation).
MS_PROPAGATION = MS_UNBINDABLE | MS_PRIVATE | MS_SLAVE | MS_SHARED

# Flag name -> bits set (names as in mount(8), OCI "options" and the MS_* names).
# The first name listed for a single bit is the one `nsinit config` prints.
MOUNT_FLAGS: dict[str, int] = {
    "ro": MS_RDONLY,
    "rdonly": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "sync": MS_SYNCHRONOUS,
    "synchronous": MS_SYNCHRONOUS,
    "remount": MS_REMOUNT,
    "mand": MS_MANDLOCK,
    "dirsync": MS_DIRSYNC,
    "nosymfollow": MS_NOSYMFOLLOW,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "bind": MS_BIND,
    "rbind": MS_BIND | MS_REC,
    "move": MS_MOVE,
    "rec": MS_REC,
    "silent": MS_SILENT,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
    "lazytime": MS_LAZYTIME,
}

# Flag name -> bits cleared (OCI "options" such as "rw" undo a flag).
MOUNT_CLEAR_FLAGS: dict[str, int] = {
    "rw": MS_RDONLY,
    "suid": MS_NOSUID,
    "dev": MS_NODEV,
    "exec": MS_NOEXEC,
    "async": MS_SYNCHRONOUS,
    "nomand": MS_MANDLOCK,
    "atime": MS_NOATIME,
    "diratime": MS_NODIRATIME,
    "norelatime": MS_RELATIME,
    "nostrictatime": MS_STRICTATIME,
    "nolazytime": MS_LAZYTIME,
    "defaults": 0,
}

# Propagation name -> bits, applied by a second mount(2) after the mount itself.
MOUNT_PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# --- network ---------------------------------------------------------------

# Longest interface name the kernel accepts (IFNAMSIZ 16 minus the NUL).
IFNAMSIZ_MAX = 15
