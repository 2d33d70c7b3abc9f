"""Running nsinit without root: where its state goes, which ids it may map.

nsinit with an effective uid other than 0 is *rootless*, as runc, podman
and bubblewrap are when a plain user runs them.  What changes:

- State and locks go to a directory of the user's own (``run_dir``), never
  /run/nsinit, which only root may write.
- The container always gets a user namespace.  Without help the kernel
  lets a user map exactly one id, their own, and for gid_map only once
  ``/proc/PID/setgroups`` says "deny" (since Linux 3.19: otherwise a user
  could drop a group that a file's ACL denies, CVE-2014-8989); that is what
  ``unshare -r`` and bwrap do.  With the setuid helpers newuidmap and
  newgidmap (Debian ``uidmap``) the ranges /etc/subuid and /etc/subgid grant
  the user can be mapped too.
- Cgroups only where the user may write (see nsinit/cgroups/rootless.py).

This module is imported by nsinit.state on every command: it imports
nothing but ``os`` at the top.
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Sequence

    from nsinit.config.model import IdMap

SUBUID_FILE = "/etc/subuid"
SUBGID_FILE = "/etc/subgid"
UIDMAP_PACKAGE_HINT = "install the Debian package uidmap"


def is_rootless() -> bool:
    return os.geteuid() != 0


# --- the state directory -------------------------------------------------------

def run_dir(uid: int, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """Where a plain user's containers keep their records.

    ``$XDG_RUNTIME_DIR/nsinit`` (systemd's per-user tmpfs), else
    ``/run/user/UID/nsinit``, each only if that directory is the user's own
    and private; else ``/tmp/nsinit-UID``, which anyone could have made
    first: ``check_private_dir`` refuses it unless it is the user's and 0700.
    """
    for base in (environ.get("XDG_RUNTIME_DIR", ""), f"/run/user/{uid}"):
        if base.startswith("/") and _is_private_dir(base, uid):
            return os.path.join(base, "nsinit")
    return f"/tmp/nsinit-{uid}"


def _is_private_dir(path: str, uid: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return _private_problem(st, uid) is None


def _private_problem(st: os.stat_result, uid: int) -> str | None:
    import stat

    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory (a symlink?)"
    if st.st_uid != uid:
        return f"is owned by uid {st.st_uid}, not {uid}"
    if st.st_mode & 0o077:
        return f"has mode {st.st_mode & 0o7777:04o}; it must be 0700"
    return None


def check_private_dir(path: str, uid: int) -> None:
    """Refuse a state directory someone else could read, write or swap.

    In /tmp another user can make ``/tmp/nsinit-UID`` first (or a symlink
    there) and read, forge or delete the records nsinit trusts.  lstat, so
    a symlink is refused rather than followed.
    """
    try:
        st = os.lstat(path)
    except OSError as err:
        raise NsinitError("state", f"{path}: {err.strerror}") from None
    problem = _private_problem(st, uid)
    if problem is not None:
        raise NsinitError("state", f"{path} {problem}: refusing to keep container state there "
                                   "(remove it, or set NSINIT_RUN_DIR or XDG_RUNTIME_DIR)")


# --- who is asking, and which ids are theirs ------------------------------------

class Caller:
    """The user running nsinit and the ids they may map."""

    def __init__(self, uid: int, gid: int, name: str, subuids: list[tuple[int, int]],
                 subgids: list[tuple[int, int]], newuidmap: str, newgidmap: str) -> None:
        self.uid, self.gid, self.name = uid, gid, name
        self.subuids, self.subgids = subuids, subgids   # (first host id, count)
        self.newuidmap, self.newgidmap = newuidmap, newgidmap  # "" when not installed

    @classmethod
    def current(cls) -> "Caller":
        uid, gid = os.geteuid(), os.getegid()
        name = user_name(uid)
        return cls(uid, gid, name, subordinate_ranges(SUBUID_FILE, name, uid),
                   subordinate_ranges(SUBGID_FILE, name, uid),
                   find_program("newuidmap"), find_program("newgidmap"))

    def own_map(self, kind: str) -> list[IdMap]:
        """The one mapping a user may write without help: their id as 0."""
        from nsinit.config.model import IdMap

        return [IdMap(container_id=0, host_id=self.uid if kind == "uid" else self.gid, size=1)]

    def default_maps(self, kind: str) -> list[IdMap]:
        """What a config without maps gets: the caller's id as root, and
        the subordinate range (if newuidmap can map it) from 1 on, so that
        ``--user`` with another uid works inside, as podman does."""
        from nsinit.config.model import IdMap

        maps = self.own_map(kind)
        ranges, helper = (self.subuids, self.newuidmap) if kind == "uid" else (self.subgids, self.newgidmap)
        if helper and ranges:
            start, count = ranges[0]
            maps.append(IdMap(container_id=1, host_id=start, size=min(count, 65536)))
        return maps

    def map_problem(self, kind: str, maps: Sequence[IdMap]) -> tuple[int, str] | None:
        """(index of the entry, what is wrong) for a map this user cannot
        have written, or None."""
        own = self.uid if kind == "uid" else self.gid
        ranges, helper = (self.subuids, self.newuidmap) if kind == "uid" else (self.subgids, self.newgidmap)
        sub_file = SUBUID_FILE if kind == "uid" else SUBGID_FILE
        for i, entry in enumerate(maps):
            if entry.host_id == own and entry.size == 1:
                continue
            if not any(start <= entry.host_id and entry.host_id + entry.size <= start + count
                       for start, count in ranges):
                granted = ", ".join(f"{s}-{s + c - 1}" for s, c in ranges) or "nothing"
                last = entry.host_id + entry.size - 1
                return i, (f"host {kind}s {entry.host_id}-{last} are not yours: without root you may "
                           f"map your own {kind} {own} (one id) and what {sub_file} grants "
                           f"{self.name or own} ({granted})")
            if not helper:
                return i, (f"mapping host {kind}s from {sub_file} needs new{kind}map, which is not "
                           f"installed ({UIDMAP_PACKAGE_HINT}); without it only your own {kind} "
                           f"{own} can be mapped, as one id")
        return None

    def needs_helper(self, kind: str, maps: Sequence[IdMap]) -> bool:
        """Whether the map is more than the one line the kernel lets us write."""
        own = self.uid if kind == "uid" else self.gid
        return [(e.host_id, e.size) for e in maps] != [(own, 1)]


def user_name(uid: int) -> str:
    """The passwd name of ``uid`` ("" if it has none): /etc/subuid lines
    name users more often than uids."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return ""


def subordinate_ranges(path: str, name: str, uid: int) -> list[tuple[int, int]]:
    """The ``name:first:count`` (or ``uid:first:count``) lines of subuid(5)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(uid)) or not name and parts[0] != str(uid):
            continue
        try:
            first, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue  # newuidmap skips a line it cannot read too
        if count > 0:
            found.append((first, count))
    return found


def find_program(name: str) -> str:
    """``name`` on $PATH (and in /usr/bin, /usr/sbin), or ""."""
    directories = os.environ.get("PATH", "").split(":") + ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
    for directory in directories:
        if directory:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return ""


# --- writing the maps -----------------------------------------------------------

def write_id_maps(pid: int, uid_maps: Sequence[IdMap], gid_maps: Sequence[IdMap],
                  caller: Caller | None = None) -> None:
    """Give the child ``pid`` (in its new user namespace) its maps, as a plain user.

    The one-line map of the caller's own id is written directly; anything
    else goes through newuidmap/newgidmap, which check /etc/subuid.  gid
    first: once the uid map exists the child could act as root in it.
    """
    from nsinit.namespaces import map_text, write_proc_file

    caller = caller or Caller.current()
    if caller.needs_helper("gid", gid_maps):
        _run_map_helper(caller.newgidmap or "newgidmap", pid, gid_maps)
    else:
        # The kernel's rule: an unprivileged gid_map only after setgroups is
        # denied for good in that namespace.
        write_proc_file(f"/proc/{pid}/setgroups", "deny")
        write_proc_file(f"/proc/{pid}/gid_map", map_text(gid_maps))
    if caller.needs_helper("uid", uid_maps):
        _run_map_helper(caller.newuidmap or "newuidmap", pid, uid_maps)
    else:
        write_proc_file(f"/proc/{pid}/uid_map", map_text(uid_maps))


def _run_map_helper(helper: str, pid: int, maps: Sequence[IdMap]) -> None:
    import subprocess

    args = [helper, str(pid)] + [str(n) for m in maps for n in (m.container_id, m.host_id, m.size)]
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", close_fds=True)
    except OSError as err:
        raise NsinitError("id maps", f"{helper}: {err.strerror} ({UIDMAP_PACKAGE_HINT})") from None
    if done.returncode != 0:
        said = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise NsinitError("id maps", f"{os.path.basename(helper)} {' '.join(args[2:])}: {said}")
