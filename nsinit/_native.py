"""The one module that touches the cffi ``lib``/``ffi`` of native/clone.c.

Every wrapper raises ``SyscallError`` (an OSError) with the errno, the
syscall and its path as attributes, so a failure deep in container setup
reads ``mount(/dev/pts): No such file or directory``.  Python code elsewhere
never sees raw cffi objects.
"""
from __future__ import annotations

import os

from nsinit import _clone
from nsinit._clone import ffi, lib
from nsinit.errors import NsinitError, SyscallError

# close_range(2) flag: mark instead of closing, so the sync socket stays
# usable until execve closes it.
CLOSE_RANGE_CLOEXEC = 1 << 2
# openat2(2) resolve flags.
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


# What native/build_clone.py builds the helper (and nsinit/_trampoline) from.
HELPER_SOURCES = ("clone.c", "clone.h", "build_clone.py", "trampoline.c")


def stale_build(built: str, sources: str, names: tuple[str, ...] = HELPER_SOURCES) -> str | None:
    """The name of a file in ``sources`` (native/) newer than the built
    helper ``built``, or None.

    A built helper older than its sources (a pull changed clone.c, the build
    was not rerun) can lack a function or disagree on one, and would fail
    far from the cause.  A stat per file, no hash: this runs at every start.
    The files it is built from (``names``) are looked at by name; the whole
    directory only when it changed since the build (a file made, removed or
    renamed there, as a checkout does): its first listing in a process
    costs ~50 us here, more than the stats.  An installed package has no
    native/ beside it: nothing to compare.
    """
    try:
        built_at = os.stat(built).st_mtime_ns
        changed = os.stat(sources).st_mtime_ns > built_at
    except FileNotFoundError:
        return None
    if changed:
        for entry in os.scandir(sources):
            if entry.is_file() and entry.stat().st_mtime_ns > built_at:
                return entry.name
        return None
    for name in names:
        try:
            if os.stat(os.path.join(sources, name)).st_mtime_ns > built_at:
                return name
        except FileNotFoundError:
            continue  # not a source of this version's helper
    return None


_STALE = stale_build(_clone.__file__, os.path.join(os.path.dirname(os.path.dirname(__file__)), "native"))
if _STALE is not None:
    raise NsinitError("native helper", f"{_clone.__file__} is older than native/{_STALE}: "
                                       "rebuild it with python3 native/build_clone.py")


def _raise(syscall: str, target: str | None = None) -> None:
    raise SyscallError(ffi.errno, syscall, target or None)


def _cstr(value: str | None):  # type: ignore[no-untyped-def]
    return ffi.NULL if value is None else os.fsencode(value)


def clone(flags: int) -> int:
    """fork() into the namespaces in ``flags``; 0 in the child, its pid in the parent."""
    pid = lib.nsi_clone(flags)
    if pid < 0:
        _raise("clone")
    return int(pid)


def setns(fd: int, nstype: int = 0, *, label: str | None = None) -> None:
    if lib.nsi_setns(fd, nstype) < 0:
        _raise("setns", label)


def unshare(flags: int) -> None:
    if lib.nsi_unshare(flags) < 0:
        _raise("unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None, *, label: str | None = None) -> None:
    if lib.nsi_mount(_cstr(source), _cstr(target), _cstr(fstype), flags, _cstr(data)) < 0:
        _raise("mount", label or target)


def umount2(target: str, flags: int = 0) -> None:
    if lib.nsi_umount2(_cstr(target), flags) < 0:
        _raise("umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    if lib.nsi_pivot_root(_cstr(new_root), _cstr(put_old)) < 0:
        _raise("pivot_root")


def join_new_session_keyring() -> None:
    """Make and join a new anonymous session keyring (keyctl(2)); a name
    would join an existing keyring of that name instead."""
    if lib.nsi_join_session_keyring(ffi.NULL) < 0:
        _raise("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")


def sethostname(name: str) -> None:
    raw = name.encode()
    if lib.nsi_sethostname(raw, len(raw)) < 0:
        _raise("sethostname", name)


def _to_words(mask: int):  # type: ignore[no-untyped-def]
    return ffi.new("uint32_t[2]", [mask & 0xFFFFFFFF, (mask >> 32) & 0xFFFFFFFF])


def _from_words(words) -> int:  # type: ignore[no-untyped-def]
    return int(words[0]) | (int(words[1]) << 32)


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of this thread as 64-bit masks."""
    eff, prm, inh = (ffi.new("uint32_t[2]") for _ in range(3))
    if lib.nsi_capget(eff, prm, inh) < 0:
        _raise("capget")
    return _from_words(eff), _from_words(prm), _from_words(inh)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    if lib.nsi_capset(_to_words(effective), _to_words(permitted), _to_words(inheritable)) < 0:
        _raise("capset")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0,
          *, label: str = "prctl") -> int:
    result = lib.nsi_prctl(option, arg2, arg3, arg4, arg5)
    if result < 0:
        _raise(label)
    return int(result)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    fd = lib.nsi_openat2(dirfd, _cstr(path), flags, mode, resolve)
    if fd < 0:
        _raise("openat2", path)
    return int(fd)


def fstatfs_type(fd: int) -> int:
    """The magic number (f_type) of the filesystem ``fd`` is on."""
    magic = lib.nsi_fstatfs_type(fd)
    if magic == -1:
        _raise("fstatfs")
    return int(magic)


def cloexec_from(first: int) -> None:
    """Mark every fd >= first close-on-exec (close_range CLOEXEC)."""
    if lib.nsi_close_range(first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) < 0:
        _raise("close_range")


def close_from(first: int) -> None:
    """Close every fd >= first (close_range), however high it is numbered."""
    if lib.nsi_close_range(first, 0xFFFFFFFF, 0) < 0:
        _raise("close_range")


def bpf_load_device_program(program: bytes, license: str = "Apache-2.0") -> int:
    """Load a cgroup device program (raw instructions); its fd.  A refusal
    by the verifier carries the verifier's last line."""
    log = ffi.new("char[]", 16384)
    insns = ffi.from_buffer(program)
    fd = lib.nsi_bpf_load_device_program(insns, len(program) // 8, license.encode(), log, 16384)
    if fd < 0:
        err = ffi.errno
        lines = ffi.string(log).decode(errors="replace").strip().splitlines()
        detail = f" ({lines[-1]})" if lines else ""
        raise SyscallError(err, "bpf(BPF_PROG_LOAD)", None, f"{os.strerror(err)}{detail}")
    return int(fd)


def bpf_attach_device_program(cgroup_fd: int, prog_fd: int) -> None:
    if lib.nsi_bpf_attach_device_program(cgroup_fd, prog_fd) < 0:
        _raise("bpf(BPF_PROG_ATTACH)")


def seccomp_set_filter(program: bytes, flags: int = 0) -> int:
    """Load a compiled seccomp filter (struct sock_filter instructions) for
    this thread; the result is a notification fd with NEW_LISTENER, else 0."""
    result = lib.nsi_seccomp_set_filter(flags, ffi.from_buffer(program), len(program) // 8)
    if result < 0:
        _raise("seccomp(SECCOMP_SET_MODE_FILTER)")
    return int(result)
