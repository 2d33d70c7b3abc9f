"""A SeccompConfig to a BPF program, with libseccomp.

libseccomp knows every architecture's syscall numbers, the multiplexed
socketcall/ipc syscalls of x86 and s390, and the x32 ABI's numbering; the
filter it generates checks the architecture first (a syscall from an
architecture the filter was not built for is killed, libseccomp's default),
so an int 0x80 syscall cannot reach a 64-bit rule's number.

Imported only when the cache (nsinit/seccomp/__init__.py) has no entry.
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError
from nsinit.seccomp._seccomp import ffi, lib

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Iterable

    from nsinit.config.model import SeccompConfig

# SECCOMP_RET_* as libseccomp's SCMP_ACT_* values (linux/seccomp.h).
_ACTION_BASE = {
    "kill": 0x00000000,          # SECCOMP_RET_KILL_THREAD
    "kill_process": 0x80000000,  # SECCOMP_RET_KILL_PROCESS
    "trap": 0x00030000,
    "errno": 0x00050000,         # | errno
    "notify": 0x7FC00000,
    "trace": 0x7FF00000,         # | message for the tracer
    "log": 0x7FFC0000,
    "allow": 0x7FFF0000,
}
_OPERATORS = {
    "ne": lib.SCMP_CMP_NE, "lt": lib.SCMP_CMP_LT, "le": lib.SCMP_CMP_LE, "eq": lib.SCMP_CMP_EQ,
    "ge": lib.SCMP_CMP_GE, "gt": lib.SCMP_CMP_GT, "masked_eq": lib.SCMP_CMP_MASKED_EQ,
}
_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: unknown on every architecture
_BPF_INSN_SIZE = 8   # struct sock_filter


def unknown_syscalls(names: Iterable[str]) -> set[str]:
    """The names libseccomp knows on no architecture."""
    return {name for name in names if lib.seccomp_syscall_resolve_name(name.encode()) == _NR_SCMP_ERROR}


def action_value(action: str, errno_ret: int | None) -> int:
    return _ACTION_BASE[action] | (errno_ret or 0)


def compile_known(config: SeccompConfig) -> tuple[bytes, tuple[str, ...]]:
    """The filter without the syscalls libseccomp does not know, and their names."""
    unknown = unknown_syscalls({name for rule in config.syscalls for name in rule.names})
    return compile_filter(config), tuple(sorted(unknown))  # compile_filter skips them


def libseccomp_file() -> str:
    """The libseccomp shared object this process has loaded (to tell an
    upgrade apart in the cache), or "" if it cannot be told."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(None, 5)[-1]
                if "/libseccomp.so" in path:
                    return path
    except OSError:
        pass
    return ""


def compile_filter(config: SeccompConfig) -> bytes:
    """The filter as struct sock_filter instructions, ready for seccomp(2)."""
    ctx = lib.seccomp_init(action_value(config.default_action, config.default_errno_ret))
    if ctx == ffi.NULL:
        raise NsinitError("seccomp", "seccomp_init failed (invalid default action?)")
    try:
        # A binary tree of syscall numbers instead of libseccomp's default
        # linear list: a third longer, but the kernel's install (which runs
        # the filter once per syscall number to fill its action cache) takes
        # 0.3 ms instead of 0.9 for podman's profile, and every filtered
        # syscall walks log(n) comparisons.  libseccomp < 2.5 lacks it.
        lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)
        # The native architecture is in from seccomp_init; each configured
        # one adds its own syscall numbers to every rule.
        for arch in config.architectures:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            _check(lib.seccomp_arch_add(ctx, token) if token else -22, f"architecture {arch}", exists_ok=True)
        for rule in config.syscalls:
            _add_rule(ctx, rule, config)
        return _export(ctx)
    finally:
        lib.seccomp_release(ctx)


def _add_rule(ctx, rule, config: SeccompConfig) -> None:  # type: ignore[no-untyped-def]
    action = action_value(rule.action, rule.errno_ret)
    if action == action_value(config.default_action, config.default_errno_ret):
        return  # libseccomp refuses a rule that repeats the default action (EACCES), as runc skips it
    cmps = ffi.new("struct scmp_arg_cmp[]", max(len(rule.args), 1))
    for i, arg in enumerate(rule.args):
        cmps[i].arg = arg.index
        cmps[i].op = _OPERATORS[arg.op]
        cmps[i].datum_a = arg.value
        cmps[i].datum_b = arg.value_two
    for name in rule.names:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == _NR_SCMP_ERROR:
            continue  # the loader warned about it
        _check(lib.seccomp_rule_add_array(ctx, action, number, len(rule.args), cmps), f"rule for {name}")


def _export(ctx) -> bytes:  # type: ignore[no-untyped-def]
    # libseccomp 2.5 exports only to an fd; a memfd keeps it off any filesystem.
    fd = os.memfd_create("nsinit-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        program = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    if not program or len(program) % _BPF_INSN_SIZE:
        raise NsinitError("seccomp", f"libseccomp exported {len(program)} bytes, not a BPF program")
    return program


def _check(result: int, what: str, *, exists_ok: bool = False) -> None:
    if result == 0 or (exists_ok and result == -17):  # -EEXIST: the native arch, already in
        return
    raise NsinitError("seccomp", f"{what}: {os.strerror(-result)}")
