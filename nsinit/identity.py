"""Who the container command runs as: resolve a ``user`` spec, then switch to it.

Runs in the container child after pivot_root, so ``/etc`` is the container's
and every import is at the top.  The ``pwd``/``grp`` modules are deliberately
not used: they ask the host's NSS (nscd, sssd, LDAP ...), not the files inside
the container image, and could load host libraries into the container.

Semantics follow libcontainer's ``user.GetExecUser``:

* a spec is exactly ``name``, ``uid``, ``name:group``, ``uid:gid``,
  ``uid:group`` or ``name:gid`` (``parse_user_spec``); empty parts, negative
  numbers and a second colon are refused, never read as root;
* ``""``/``"root"`` is uid 0 (the passwd entry of "root"/uid 0 when there is
  one, else gid 0 and home ``/`` as libcontainer's defaults);
* a number is a uid and is matched against the uid field only, a name
  against the name field only: the image could otherwise name a user "1000"
  with uid 0 and turn ``--user 1000`` into root (CVE-2016-3697).  A uid not
  in passwd (or with no passwd file) is used as is, with home ``/`` and gid 0;
* the group part likewise: a number is a gid, a name a group name; a gid
  not in the group file is used as is;
* supplementary groups (every group listing the user's name) are only taken
  in the implicit form, without a group part -- with ``user:group`` the
  caller asked for exactly that group, as ``docker run -u user:group`` does;
* ``additional_groups`` (names or numbers) are always added.
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError, SyscallError
from nsinit.record import record
from nsinit.regularfile import FileRefused, MiB, read_regular_file

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

_MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to setres*id
# Some 80,000 users; real images have dozens.
MAX_ID_FILE_BYTES = 8 * MiB


@record(frozen=True)
class Identity:
    """Who the container process runs as, resolved from the container's /etc."""
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    name: str  # "" for a numeric uid with no passwd entry


@record(frozen=True)
class _PasswdEntry:
    """One line of the container's /etc/passwd."""
    name: str
    uid: int
    gid: int
    home: str


@record(frozen=True)
class _GroupEntry:
    """One line of the container's /etc/group."""
    name: str
    gid: int
    members: tuple[str, ...]


def _read_lines(path: str, shown: str) -> list[list[str]] | None:
    """Colon-split, non-comment lines of ``path``; None when it does not exist.

    The image made this file: only a regular file is read (a FIFO would hang
    create and join, a link to /dev/zero read until the OOM killer came), at
    most MAX_ID_FILE_BYTES, and through no magic link (a /proc/PID/fd or
    /proc/PID/root link can lead to a host file).  Read after pivot_root or
    chroot, so its symlinks resolve inside the container's root.
    """
    try:
        raw = read_regular_file(path, MAX_ID_FILE_BYTES, no_magic_links=True)
    except FileNotFoundError:
        return None
    except FileRefused as err:
        raise NsinitError("user", str(err).replace(path, shown, 1)) from None
    except OSError as err:
        raise NsinitError("user", f"{shown}: {err.strerror}") from None
    text = raw.decode("utf-8", errors="surrogateescape")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _parse_id(text: str) -> int | None:
    """A non-negative decimal id, or None when ``text`` is not one."""
    if text.isascii() and text.isdigit():
        return int(text)
    return None


def _read_passwd(path: str, shown: str) -> list[_PasswdEntry] | None:
    rows = _read_lines(path, shown)
    if rows is None:
        return None
    entries = []
    for fields in rows:
        fields += [""] * (7 - len(fields))
        uid, gid = _parse_id(fields[2]), _parse_id(fields[3])
        if uid is None or gid is None:
            continue  # a malformed line; libcontainer skips these too
        entries.append(_PasswdEntry(fields[0], uid, gid, fields[5]))
    return entries


def _read_group(path: str, shown: str) -> list[_GroupEntry] | None:
    rows = _read_lines(path, shown)
    if rows is None:
        return None
    entries = []
    for fields in rows:
        fields += [""] * (4 - len(fields))
        gid = _parse_id(fields[2])
        if gid is None:
            continue  # malformed line
        members = tuple(m.strip() for m in fields[3].split(",") if m.strip())
        entries.append(_GroupEntry(fields[0], gid, members))
    return entries


def parse_user_spec(spec: str) -> tuple[str, str]:
    """(user, group) of ``name``, ``uid``, ``name:group``, ``uid:gid``,
    ``uid:group`` or ``name:gid``; group is "" when not given.

    Raises ValueError with the problem, for the caller to name its field
    (``--user``, container.json's ``user``).  A lax parse once ran ``:`` and
    ``:1000`` as uid 0 (issue 15).
    """
    if not spec:
        raise ValueError("must not be empty (name, uid, name:group or uid:gid)")
    user, sep, group = spec.partition(":")
    if not user:
        raise ValueError(f'"{spec}" has no user before the colon (name, uid, name:group or uid:gid)')
    if sep and not group:
        raise ValueError(f'"{spec}" has no group after the colon (name, uid, name:group or uid:gid)')
    _check_spec_part(spec, user, "user")
    if sep:
        _check_spec_part(spec, group, "group")
    return user, group


def _check_spec_part(spec: str, part: str, kind: str) -> None:
    if ":" in part:
        raise ValueError(f'"{spec}" has more than one colon (name, uid, name:group or uid:gid)')
    if part.startswith(("-", "+")):
        raise ValueError(f'"{spec}": {kind} "{part}" is neither a name nor a non-negative number')
    if not part.isprintable() or any(c.isspace() for c in part):
        raise ValueError(f'"{spec}": {kind} name "{part}" contains a space or control character')
    number = _parse_id(part)
    if number is not None and number > _MAX_ID:
        raise ValueError(f'"{spec}": {"uid" if kind == "user" else "gid"} {number} is out of range (0-{_MAX_ID})')


def _check_range(kind: str, value: int) -> int:
    if value > _MAX_ID:
        raise NsinitError("user", f"{kind} {value} is out of range (0-{_MAX_ID})")
    return value


def _lookup_group(spec: str, groups: list[_GroupEntry] | None, group_path: str) -> int:
    gid = _parse_id(spec)
    for entry in groups or ():
        if entry.gid == gid if gid is not None else entry.name == spec:
            return entry.gid
    if gid is None:
        where = (f"not in {group_path} of the container" if groups is not None
                 else f"the container has no {group_path}")
        raise NsinitError("user", f'unknown group "{spec}" ({where})')
    return _check_range("gid", gid)


def resolve_user(spec: str, additional_groups: Sequence[str] = (), etc: str = "/etc") -> Identity:
    """The Identity for ``spec`` from ``<etc>/passwd`` and ``<etc>/group``."""
    passwd_path = os.path.join(etc, "passwd")
    group_path = os.path.join(etc, "group")
    # Messages name the files as the container sees them: ``etc`` is the
    # container's /etc even when a caller (or a test) reaches it another way.
    shown_passwd, shown_group = "/etc/passwd", "/etc/group"

    try:
        # "" is root, as in 2014 configs (whatever root's passwd name is).
        user_part, group_part = parse_user_spec(spec or "0")
    except ValueError as err:
        raise NsinitError("user", str(err)) from None
    numeric = _parse_id(user_part)
    passwd = _read_passwd(passwd_path, shown_passwd)
    groups = _read_group(group_path, shown_group)

    entry = None
    for candidate in passwd or ():
        if candidate.uid == numeric if numeric is not None else candidate.name == user_part:
            entry = candidate
            break

    if entry is not None:
        uid, gid, home, name = entry.uid, entry.gid, entry.home or "/", entry.name
    elif user_part == "root" or numeric == 0:
        uid, gid, home, name = 0, 0, "/", "root"
    else:
        if numeric is None:
            where = (f"not in {shown_passwd} of the container" if passwd is not None
                     else f"the container has no {shown_passwd}")
            raise NsinitError("user", f'unknown user "{user_part}" ({where})')
        uid, gid, home, name = _check_range("uid", numeric), 0, "/", ""

    supplementary: list[int] = []
    if group_part:
        gid = _lookup_group(group_part, groups, shown_group)
    elif name:
        supplementary = [g.gid for g in groups or () if name in g.members]

    for extra in additional_groups:
        supplementary.append(_lookup_group(str(extra), groups, shown_group))

    unique = tuple(dict.fromkeys(supplementary))
    return Identity(uid=uid, gid=gid, groups=unique, home=home, name=name)


def setgroups_denied(path: str = "/proc/self/setgroups") -> bool:
    """Whether this user namespace forbids setgroups(2) for good: one that a
    plain user mapped their own gid into (see nsinit/rootless.py).  The
    process keeps the supplementary groups it came with, the user's own on
    the host, which it cannot drop (that is why the kernel denies it); the
    config loader refuses additional_groups there."""
    try:
        with open(path, "rb") as f:
            return f.read().strip() == b"deny"
    except OSError:
        return False  # no user namespaces (or before Linux 3.19): allowed


def _set_groups(groups: list[int]) -> None:
    """setgroups(2), skipped only where the kernel itself refuses it.

    Tried first, /proc/self/setgroups read only on EPERM: this runs after
    the chroot or pivot_root, where /proc may be a directory of the image's
    (no NEWNS), and a fake "deny" there would have kept nsinit's own
    supplementary groups, the caller's host groups, in the container."""
    try:
        os.setgroups(groups)
    except PermissionError:
        if not setgroups_denied():
            raise


def switch_user(identity: Identity) -> None:
    """setgroups, then setresgid, then setresuid -- in that order because both
    group calls need CAP_SETGID, which setresuid to a non-root uid takes away
    (unless PR_SET_KEEPCAPS, and even then the effective set is cleared).

    Setting all three of real/effective/saved ids leaves no saved uid 0 that
    the container command could switch back to.
    """
    steps: list[tuple[str, Callable[..., None], tuple[Any, ...]]] = []
    steps.append((f"setgroups({list(identity.groups)})", _set_groups, (list(identity.groups),)))
    steps.append((f"setresgid({identity.gid})", os.setresgid, (identity.gid,) * 3))
    steps.append((f"setresuid({identity.uid})", os.setresuid, (identity.uid,) * 3))
    for label, call, args in steps:
        try:
            call(*args)
        except OSError as err:
            raise SyscallError.of(err, label) from None
