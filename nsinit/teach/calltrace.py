"""What ``--trace`` shows a step did: the system calls it made, with their arguments.

When tracing, ``install`` wraps the functions the steps call into the kernel
through (``_native.mount``, ``os.mknod``, ``resource.setrlimit``, ...), before
the clone, so the container's init has the wrappers too.  Each wrapper notes
its call in ``CALLS``; ``_Step`` (child) and ``_Timer`` (supervisor) take the
list at the end of every step.  A call that fails is noted with its errno,
as strace shows it.  Without ``--trace`` nothing here is imported.

The spelling is ``nsinit explain``'s (``flag_text`` is shared with
nsinit/mount/plan.py): a trace and an explanation can be read side by side.
"""
from __future__ import annotations

import errno as errno_names
import os

from nsinit.config import names

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

CALLS: list[str] = []
_saved: list[tuple[object, str, object]] = []

_MS_NAMES = sorted(((value, name) for name, value in vars(names).items()
                    if name.startswith("MS_") and name != "MS_PROPAGATION" and isinstance(value, int)))
_PRCTL = {1: "PR_SET_PDEATHSIG", 4: "PR_SET_DUMPABLE", 8: "PR_SET_KEEPCAPS", 23: "PR_CAPBSET_READ",
          24: "PR_CAPBSET_DROP", 38: "PR_SET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT"}
_AMBIENT = {1: "PR_CAP_AMBIENT_IS_SET", 2: "PR_CAP_AMBIENT_RAISE", 3: "PR_CAP_AMBIENT_LOWER",
            4: "PR_CAP_AMBIENT_CLEAR_ALL"}


def flag_text(flags: int) -> str:
    """``MS_NOSUID|MS_NODEV`` for a mount flags word; "0" for none."""
    parts, left = [], flags
    for value, name in _MS_NAMES:
        if value and flags & value == value:
            parts.append(name)
            left &= ~value
    if left:
        parts.append(hex(left))
    return "|".join(parts) or "0"


def clone_flag_text(flags: int) -> str:
    parts = [f"CLONE_{name}" for name, bit in names.NAMESPACE_CLONE_FLAGS.items() if flags & bit]
    return "|".join(parts) or "0"


def quote(value: object) -> str:
    return "NULL" if value is None else '"' + str(value) + '"'


def _where(path: object) -> object:
    """/proc/self/fd/N (the mount steps' O_PATH fds) as the path it names."""
    if isinstance(path, str) and path.startswith("/proc/self/fd/"):
        try:
            return os.readlink(path)
        except OSError:
            return path  # not ours to resolve (a closed fd): show it as it was
    return path


def _prctl_text(option: int, arg2: int = 0, arg3: int = 0, *_rest: int, **_kw: object) -> str:
    name = _PRCTL.get(option, str(option))
    if option in (23, 24):
        return f"prctl({name}, {names.CAPABILITY_NAMES.get(arg2, arg2)})"
    if option == 47:
        sub = _AMBIENT.get(arg2, str(arg2))
        return f"prctl({name}, {sub}" + (f", {names.CAPABILITY_NAMES.get(arg3, arg3)})" if arg2 in (1, 2, 3) else ")")
    return f"prctl({name}, {arg2})"


_IOCTL = {0x8913: "SIOCGIFFLAGS", 0x8914: "SIOCSIFFLAGS", 0x8915: "SIOCGIFADDR", 0x891B: "SIOCGIFNETMASK"}


def _ifname(arg: object) -> str:
    """The interface name at the start of a struct ifreq."""
    if isinstance(arg, bytes):
        return quote(arg[:16].split(b"\0", 1)[0].decode(errors="replace"))
    return str(arg)


def _map_text(entries: Any) -> str:
    return "".join(f"{e.container_id} {e.host_id} {e.size}\\n" for e in entries)


def _fd_name(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return str(fd)


# name -> (module path, attribute, how to spell a call from its arguments)
def _spellings() -> list[tuple[object, str, Callable[..., str | list[str]]]]:
    import fcntl
    import resource

    from nsinit import _native, child, namespaces
    from nsinit.cgroups import fs

    def mask(value: int) -> str:
        return f"{value:016x}"

    return [
        (fcntl, "ioctl", lambda fd, request, arg=0, *_: (
            f"ioctl({_fd_name(fd)}, {_IOCTL.get(request, hex(request))}, {_ifname(arg)})")),
        (_native, "clone", lambda flags: f"clone3({{flags = {clone_flag_text(flags)}|SIGCHLD}})"),
        (_native, "mount", lambda source, target, fstype, flags=0, data=None, **_: (
            f"mount({quote(_where(source))}, {quote(_where(target))}, {quote(fstype)}, "
            f"{flag_text(flags)}, {quote(data)})")),
        (_native, "umount2", lambda target, flags=0: (
            f"umount2({quote(target)}, {'MNT_DETACH' if flags == 2 else flags})")),
        (_native, "pivot_root", lambda new, old: f"pivot_root({quote(new)}, {quote(old)})"),
        (_native, "sethostname", lambda name: f"sethostname({quote(name)})"),
        (_native, "setns", lambda fd, nstype=0: f"setns({_fd_name(fd)}, {clone_flag_text(nstype)})"),
        (_native, "unshare", lambda flags: f"unshare({clone_flag_text(flags)})"),
        (_native, "capset", lambda e, p, i: f"capset(effective={mask(e)}, permitted={mask(p)}, inheritable={mask(i)})"),
        (_native, "prctl", _prctl_text),
        (_native, "cloexec_from", lambda first: f"close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"),
        (_native, "close_from", lambda first: f"close_range({first}, ~0, 0)"),
        (_native, "join_new_session_keyring", lambda: "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)"),
        (os, "mknod", lambda path, mode=0o600, device=0, **_: (
            f"mknod({quote(path)}, {mode:o}, {os.major(device)}:{os.minor(device)})")),
        (os, "symlink", lambda target, link, *a, **_: f"symlink({quote(target)}, {quote(link)})"),
        (os, "mkdir", lambda path, mode=0o777, **_: f"mkdir({quote(path)}, {mode:o})"),
        (os, "chroot", lambda path: f"chroot({quote(path)})"),
        (os, "memfd_create", lambda name, flags=0: f"memfd_create({quote(name)}, {flags:#x})"),
        (os, "chdir", lambda path: f"chdir({quote(path if isinstance(path, str) else _fd_name(path))})"),
        (os, "setgroups", lambda groups: f"setgroups({list(groups)})"),
        (os, "setresgid", lambda r, e, s: f"setresgid({r}, {e}, {s})"),
        (os, "setresuid", lambda r, e, s: f"setresuid({r}, {e}, {s})"),
        (resource, "setrlimit", lambda kind, limits: (
            f"setrlimit({names.RLIMIT_NAMES.get(kind, kind)}, {{{limits[0]}, {limits[1]}}})")),
        (fs, "write_file", lambda path, value: f"write({quote(path)}, {quote(value)})"),
        (fs, "write_lines", lambda path, lines: [f"write({quote(path)}, {quote(line)})" for line in lines]),
        (child, "write_file", lambda path, value: f"write({quote(path)}, {quote(value)})"),
        (namespaces, "_write_map", lambda path, entries: f"write({quote(path)}, {quote(_map_text(entries))})"),
    ]


def _wrap(original: Callable[..., Any], spell: Callable[..., str | list[str]]) -> Callable[..., Any]:
    def traced(*args: Any, **kwargs: Any) -> Any:
        try:
            spelt = spell(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a spelling bug must never break the call itself
            spelt = f"{getattr(original, '__name__', 'call')}(…)"
        # A list: one call per system call it makes (fs.write_lines: a write a line).
        texts = spelt if isinstance(spelt, list) else [spelt]
        CALLS.extend(texts)
        try:
            return original(*args, **kwargs)
        except OSError as err:
            code = errno_names.errorcode.get(err.errno or 0, str(err.errno))
            # The one that failed (fs.LineRefused says which), and none after it.
            at = len(CALLS) - len(texts) + min(getattr(err, "index", 0), len(texts) - 1)
            del CALLS[at + 1:]
            CALLS[at] = f"{CALLS[at]} = -1 {code}"
            raise
    traced.__wrapped__ = original  # type: ignore[attr-defined]
    return traced


def install() -> None:
    """Wrap the calls (idempotent); ``uninstall`` puts the originals back."""
    if _saved:
        return
    for module, name, spell in _spellings():
        original = getattr(module, name)
        _saved.append((module, name, original))
        setattr(module, name, _wrap(original, spell))


def uninstall() -> None:
    while _saved:
        module, name, original = _saved.pop()
        setattr(module, name, original)


def take() -> list[str]:
    """The calls noted since the last take (and forget them)."""
    calls = list(CALLS)
    del CALLS[:]
    return calls


def step_record(kind: str, side: str, step: str, start: float, ms: float, calls: list[str],
                error: BaseException | None = None, message: str = "", errno: int | None = None) -> dict[str, Any]:
    """One step of a trace, as ``--trace=json`` writes it."""
    record: dict[str, Any] = {"trace": kind, "side": side, "step": step, "start": round(start, 6),
                              "ms": round(ms, 3), "calls": calls, "failed": error is not None or bool(message)}
    if error is not None and isinstance(error, OSError) and errno is None:
        errno = error.errno
    if record["failed"]:
        record["errno"] = errno
        record["errno_name"] = errno_names.errorcode.get(errno or 0, "") if errno else ""
        record["error"] = message or str(error)
    return record


def line_text(record: dict[str, Any]) -> str:
    """The text form: one line for the step, one per call."""
    head = f"nsinit: trace: {record['trace']}: {record['side']} {record['step']}: {record['ms']:.2f} ms"
    if record["failed"]:
        code = f" errno {record['errno']} ({record['errno_name']})" if record.get("errno") else ""
        head += f"  FAILED{code}: {record['error']}"
    return "\n".join([head] + [f"nsinit: trace:     {call}" for call in record["calls"]]) + "\n"
