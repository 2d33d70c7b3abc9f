"""A SeccompConfig to a BPF program, with libseccomp.

libseccomp knows every architecture's syscall numbers, the multiplexed
socketcall/ipc syscalls of x86 and s390, and the x32 ABI's numbering; the
filter it generates checks the architecture first (a syscall from an
architecture the filter was not built for is killed, libseccomp's default),
so an int 0x80 syscall cannot reach a 64-bit rule's number.

libseccomp takes 10-30 ms for a profile the size of podman's (three
architectures, ~400 syscalls); the program only depends on the normalised
config, libseccomp's version and the machine, so it is kept in a cache in
nsinit's private run directory (root-only, like crun's cache of compiled
filters) and the next container with the same filter reads it back.
"""
from __future__ import annotations

import os

from nsinit.config.seccomp import FLAGS
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
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8  # seccomp(2) returns the notification fd
_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: unknown on every architecture
_BPF_INSN_SIZE = 8   # struct sock_filter
_MAX_PROGRAM = 4096 * _BPF_INSN_SIZE  # BPF_MAXINSNS: the kernel refuses longer programs


def unknown_syscalls(names: Iterable[str]) -> set[str]:
    """The names libseccomp knows on no architecture."""
    return {name for name in names if lib.seccomp_syscall_resolve_name(name.encode()) == _NR_SCMP_ERROR}


def action_value(action: str, errno_ret: int | None) -> int:
    return _ACTION_BASE[action] | (errno_ret or 0)


def filter_flags(config: SeccompConfig) -> int:
    """The SECCOMP_FILTER_FLAG_* bits the child passes to seccomp(2)."""
    flags = SECCOMP_FILTER_FLAG_NEW_LISTENER if config.listener_path else 0
    for name in config.flags:
        flags |= FLAGS[name]
    return flags


def program_for(config: SeccompConfig, cache_dir: str | None) -> bytes:
    """The compiled filter, from the cache when it has it (``cache_dir``
    None: no cache)."""
    if cache_dir is None:
        return compile_filter(config)
    path = os.path.join(cache_dir, _cache_key(config) + ".bpf")
    cached = _read_cached(path)
    if cached is not None:
        return cached
    program = compile_filter(config)
    _write_cached(cache_dir, path, program)
    return program


def _cache_key(config: SeccompConfig) -> str:
    # A record's repr names every field and value in order: the normalised
    # config exactly, four times faster than its JSON (0.1 ms, not 0.4).
    version = lib.seccomp_version()
    text = (f"nsinit-seccomp-2 libseccomp {version.major}.{version.minor}.{version.micro} "
            f"arch {lib.seccomp_arch_native():#x} {config!r}")
    return _sha256(text.encode())


def _sha256(data: bytes) -> str:
    """CPython's builtin sha256, as nsinit.cgroups.manager takes it: hashlib
    would load OpenSSL (ms) for one hash."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef]  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _read_cached(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # Only what nsinit (root) wrote itself: a regular file of BPF instructions.
        if not stat_is_ours(st) or st.st_size == 0 or st.st_size % _BPF_INSN_SIZE or st.st_size > _MAX_PROGRAM:
            return None
        program = os.pread(fd, st.st_size, 0)
    finally:
        os.close(fd)
    return program if len(program) == st.st_size else None


def stat_is_ours(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _write_cached(cache_dir: str, path: str, program: bytes) -> None:
    """Atomically, and never fatal: a container starts without a cache."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        # The run dir too, as nsinit.state makes it (0700): makedirs would
        # give a missing parent the umask's mode.
        os.makedirs(os.path.dirname(cache_dir), mode=0o700, exist_ok=True)
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, program)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


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
