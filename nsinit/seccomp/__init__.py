"""Seccomp filters: compiled by the parent with libseccomp, loaded by the child.

``program_for`` turns a SeccompConfig into a classic-BPF program before
clone; the container child hands those bytes to seccomp(2) as its last step
before execve (nsinit._native.seccomp_set_filter), so it needs neither
libseccomp nor any parsing after pivot_root.

libseccomp (``compile``, through the cffi module ``_seccomp`` built by
native/build_seccomp.py) takes 10-30 ms for a profile the size of podman's
(three architectures, ~400 syscalls), and loading it and resolving the names
costs another 0.7 ms.  The program depends only on the config, on which
libseccomp compiled it and on the machine, so it is kept in a cache in
nsinit's root-only run directory (as crun caches compiled filters), with the
syscall names that libseccomp did not know and the identity (device, inode,
size, mtime) of the libseccomp file that compiled it: an upgraded libseccomp
(which may know new syscalls) is a different file, and the entry is
compiled again.  A hit loads no libseccomp at all.  A container without a
filter never imports this package.
"""
from __future__ import annotations

import os

from nsinit import jsontext
from nsinit.config.seccomp import FLAGS
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from nsinit.config.model import SeccompConfig

SECCOMP_FILTER_FLAG_NEW_LISTENER = 8  # seccomp(2) returns the notification fd
_CACHE_FORMAT = "nsinit-seccomp-3"   # bump when compile.py would compile differently
_BPF_INSN_SIZE = 8                   # struct sock_filter
_MAX_ENTRY = 4096 * _BPF_INSN_SIZE + 65536  # BPF_MAXINSNS instructions and the header


def filter_flags(config: SeccompConfig) -> int:
    """The SECCOMP_FILTER_FLAG_* bits the child passes to seccomp(2)."""
    flags = SECCOMP_FILTER_FLAG_NEW_LISTENER if config.listener_path else 0
    for name in config.flags:
        flags |= FLAGS[name]
    return flags


def program_for(config: SeccompConfig, cache_dir: str | None) -> tuple[bytes, tuple[str, ...]]:
    """(the compiled filter, the syscall names libseccomp does not know and
    the filter skips); from the cache when it has them (``cache_dir`` None:
    no cache)."""
    path = None if cache_dir is None else os.path.join(cache_dir, _cache_key(config) + ".bpf")
    if path is not None:
        cached = _read_cached(path)
        if cached is not None:
            return cached
    compiler = _compiler()
    program, unknown = compiler.compile_known(config)
    if path is not None and cache_dir is not None:
        library = compiler.libseccomp_file()
        if library:  # found: an upgrade can be told apart; else no cache
            _write_cached(cache_dir, path, {"library": library, "identity": _identity(library),
                                            "unknown": list(unknown)}, program)
    return program, unknown


def without_unknown_syscalls(config: SeccompConfig) -> tuple[SeccompConfig, tuple[str, ...]]:
    """The filter as it is compiled: without the names libseccomp does not
    know (a rule left with none goes too), and those names."""
    from nsinit.config.model import SeccompRule

    unknown = _compiler().unknown_syscalls({name for rule in config.syscalls for name in rule.names})
    if not unknown:
        return config, ()
    rules = tuple(SeccompRule(names, rule.action, rule.errno_ret, rule.args) for rule in config.syscalls
                  if (names := tuple(name for name in rule.names if name not in unknown)))
    from nsinit.record import replace

    return replace(config, syscalls=rules), tuple(sorted(unknown))


def _compiler() -> ModuleType:
    try:
        from nsinit.seccomp import compile
    except ImportError as err:  # the cffi module was not built
        raise NsinitError("seccomp", f"libseccomp support is not built ({err}): run scripts/install") from None
    return compile


def unknown_syscalls_warning(source: str, unknown: tuple[str, ...]) -> str:
    return f"{os.path.basename(source)}: seccomp.syscalls: syscalls unknown to libseccomp skipped: {', '.join(unknown)}"


def _cache_key(config: SeccompConfig) -> str:
    # marshal (C, builtin) of the fields as plain tuples: the config exactly,
    # in 0.03 ms; its repr or JSON took 0.1-0.4 ms.  marshal's output is
    # fixed for a given marshal.version, which is in the key too.
    import marshal

    fields = (
        _CACHE_FORMAT, marshal.version, os.uname().machine,
        config.default_action, config.default_errno_ret, config.architectures, config.flags,
        config.listener_path,
        tuple((rule.names, rule.action, rule.errno_ret,
               tuple((arg.index, arg.value, arg.value_two, arg.op) for arg in rule.args))
              for rule in config.syscalls),
    )
    return _sha256(marshal.dumps(fields))


def _sha256(data: bytes) -> str:
    """CPython's builtin sha256, as nsinit.cgroups.manager takes it: hashlib
    would load OpenSSL (ms) for one hash."""
    try:
        from _sha256 import sha256  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def _identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _read_cached(path: str) -> tuple[bytes, tuple[str, ...]] | None:
    """The entry, if nsinit (root) wrote it and the libseccomp that compiled it is still there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not entry_is_ours(st) or st.st_size > _MAX_ENTRY:
            return None
        data = os.pread(fd, st.st_size, 0)
    finally:
        os.close(fd)
    header, newline, program = data.partition(b"\n")
    if not newline or not program or len(program) % _BPF_INSN_SIZE:
        return None
    try:
        meta = jsontext.loads(header)
        if _identity(meta["library"]) != meta["identity"]:
            return None  # libseccomp was upgraded (or moved) since
        return program, tuple(meta["unknown"])
    except (ValueError, KeyError, TypeError):
        return None


def entry_is_ours(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _write_cached(cache_dir: str, path: str, meta: dict[str, Any], program: bytes) -> None:
    """Atomically, and never fatal: a container starts without a cache."""
    from nsinit import state  # the supervisor's: loaded by now

    try:
        # The run dir too, as nsinit.state makes it (0700): makedirs would
        # give a missing parent the umask's mode.
        os.makedirs(os.path.dirname(cache_dir), mode=0o700, exist_ok=True)
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        state.write_atomic(path, jsontext.dumps(meta).encode() + b"\n" + program, 0o600)
    except OSError:
        pass
