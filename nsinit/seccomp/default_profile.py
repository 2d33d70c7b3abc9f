"""The seccomp filter ``nsinit spec`` writes: Docker's and podman's deny list, in short.

Everything is allowed except the syscalls that let root in a container
escape it or attack the kernel it shares with the host, the same ones
Docker's and podman's default profiles refuse to a container without the
matching capability.  They return EPERM, as Docker's explicit denials do;
clone3 returns ENOSYS because its flags sit in memory a filter cannot read,
and ENOSYS makes glibc fall back to clone, whose flags it can (Docker's
choice too).  Creating a user namespace (unshare or clone with
CLONE_NEWUSER) is refused: inside one, root gets every capability again,
enough to mount cgroup v1 and raise its own memory and pids limits.
"""
from __future__ import annotations

import os

CLONE_NEWUSER = 0x10000000
EPERM = 1
ENOSYS = 38

# Group by reason; every name is refused with EPERM.
_DENIED = (
    # Kernel keyrings are not namespaced: a container could read or fill the host's.
    "keyctl", "add_key", "request_key",
    # Loading code into the kernel, or replacing it.
    "bpf", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "query_module", "get_kernel_syms",
    # Mounts, with both the old and the new mount API: mounting cgroup v1 or
    # a fresh procfs undoes the container's masks and limits.
    "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    # Other namespaces: setns into one passed in from outside.
    "setns",
    # Tracing and inspecting other processes and the kernel.
    "ptrace", "perf_event_open", "process_vm_readv", "process_vm_writev", "kcmp", "lookup_dcookie",
    "fanotify_init",
    # File handles reach any file of a filesystem (the Shocker escape).
    "open_by_handle_at", "name_to_handle_at",
    # userfaultfd stalls kernel code at will (a classic exploit helper).
    "userfaultfd",
    # Host-wide state: clocks, swap, accounting, the console, I/O ports, NUMA.
    "settimeofday", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "stime",
    "swapon", "swapoff", "acct", "syslog", "vhangup", "iopl", "ioperm", "nfsservctl", "uselib",
    "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "mbind", "set_mempolicy", "migrate_pages",
    "move_pages", "quotactl", "quotactl_fd",
    # io_uring runs syscalls the filter never sees (Docker denies it since 25.0).
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)

# libseccomp's names of the native architecture and the ones its CPU also runs.
_COMPAT_ARCHES = {
    "x86_64": ("x86_64", "x86", "x32"),
    "aarch64": ("aarch64", "arm"),
    "s390x": ("s390x", "s390"),
    "ppc64le": ("ppc64le",),
}


def default_seccomp() -> dict[str, object]:
    """The libcontainer form of the default filter, for this machine's architectures."""
    machine = os.uname().machine
    # clone's flags are its first argument, except on s390 (the second).
    flags_arg = 1 if machine.startswith("s390") else 0
    clone_newuser = [{"index": flags_arg, "value": CLONE_NEWUSER, "value_two": CLONE_NEWUSER, "op": "masked_eq"}]
    return {
        "default_action": "allow",
        "architectures": list(_COMPAT_ARCHES.get(machine, ())),
        "syscalls": [
            {"names": list(_DENIED), "action": "errno", "errno_ret": EPERM},
            {"names": ["unshare", "clone"], "action": "errno", "errno_ret": EPERM, "args": clone_newuser},
            {"names": ["clone3"], "action": "errno", "errno_ret": ENOSYS},
        ],
    }
