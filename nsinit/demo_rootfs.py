"""``nsinit rootfs DIR``: a minimal busybox root filesystem with a container.json.

Host side.  It is the shared fixture of the integration tests (built once per
test session), so it is kept cheap: one ``busybox --list-full`` call, then
symlinks; no subprocess per applet.

Busybox must be statically linked: the container has no libc or dynamic
loader, so a dynamic busybox would fail with ENOENT on execve (the missing
file being its PT_INTERP loader, which confuses everyone who meets it).
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

from nsinit.elf import is_static_elf
from nsinit.errors import NsinitError, describe_oserror

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOTFS_CONFIG: dict[str, Any] = {
    "hostname": "nsinit",
    "namespaces": [{"type": t} for t in ("NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET")],
    "environment": [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
    ],
    "networks": [{"type": "loopback"}],
}

_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_NO_BUSYBOX = ("no static busybox found: install the Debian package busybox-static "
               "(apt-get install busybox-static)")

USER_UID = 1000
USER_GID = 1000

# (relative path, mode); modes are chmod'ed explicitly so the umask of the
# caller does not matter.
_DIRECTORIES = (
    ("bin", 0o755), ("sbin", 0o755), ("usr", 0o755), ("usr/bin", 0o755),
    ("usr/sbin", 0o755), ("etc", 0o755), ("proc", 0o755), ("sys", 0o755),
    ("dev", 0o755), ("tmp", 0o1777), ("root", 0o700), ("home", 0o755),
    ("home/user", 0o755), ("var", 0o755), ("run", 0o755),
)

# The usual set of a Debian base system, cut down: root, daemon (the user
# libcontainer's API sample runs its process as), an unprivileged user for
# tests and people, and nobody.
_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    f"user:x:{USER_UID}:{USER_GID}:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
# wheel lists both users so supplementary groups can be tested; tty is the
# group devpts gives the container's ptys (gid=5 in its mount options).
_GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "tty:x:5:\n"
    "wheel:x:10:root,user\n"
    "users:x:100:\n"
    f"user:x:{USER_GID}:\n"
    "nogroup:x:65534:\n"
)
_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
)

def find_busybox() -> str:
    """Path of a statically linked busybox on the host."""
    candidates = list(_BUSYBOX_CANDIDATES)
    found = shutil.which("busybox")
    if found:
        candidates.append(found)
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK) and is_static_elf(path):
            return path
    raise NsinitError("rootfs", _NO_BUSYBOX)


def _is_nsinit_rootfs(target: str) -> bool:
    return os.path.isfile(os.path.join(target, "container.json"))


def _write_if_missing(path: str, content: str, mode: int = 0o644) -> None:
    # A second run leaves files the user edited alone.
    if os.path.lexists(path):
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(path, mode)


def _install_busybox(busybox: str, target: str) -> str:
    dest = os.path.join(target, "bin", "busybox")
    src_stat = os.stat(busybox)
    try:
        dst_stat = os.lstat(dest)
        current = (stat.S_ISREG(dst_stat.st_mode) and dst_stat.st_size == src_stat.st_size
                   and dst_stat.st_mtime_ns == src_stat.st_mtime_ns)
    except FileNotFoundError:
        current = False
    if not current:
        tmp = dest + ".nsinit-tmp"
        shutil.copy2(busybox, tmp)  # copy2 keeps the mtime the check above uses
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    return dest


def _applets(busybox: str) -> list[str]:
    """``busybox --list-full``: paths such as ``usr/bin/env``, one per applet."""
    try:
        result = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                                check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise NsinitError("rootfs", f"{busybox} --list-full failed: {err}") from None
    return [line.strip().lstrip("/") for line in result.stdout.splitlines() if line.strip()]


def _link_applets(target: str, busybox_path: str, applets: list[str]) -> None:
    for applet in applets:
        link = os.path.normpath(os.path.join(target, applet))
        # Never let a strange applet path escape the target directory.
        if os.path.commonpath([link, target]) != target or link == busybox_path:
            continue
        if os.path.lexists(link):
            continue
        parent = os.path.dirname(link)
        os.makedirs(parent, mode=0o755, exist_ok=True)
        os.symlink(os.path.relpath(busybox_path, parent), link)


def build_rootfs(target: str, *, busybox: str | None = None, config: dict[str, Any] | None = None) -> None:
    """Populate ``target`` with busybox, /etc files and container.json.

    Refuses a non-empty directory that is not already an nsinit rootfs;
    running it again on one of ours only fills in what is missing.  An
    existing container.json is kept unless ``config`` is given.
    """
    try:
        _build_rootfs(os.path.abspath(target), busybox, config)
    except OSError as err:
        raise NsinitError("rootfs", describe_oserror(err)) from err


def _build_rootfs(target: str, busybox: str | None, config: dict[str, Any] | None) -> None:
    if os.path.lexists(target) and not os.path.isdir(target):
        raise NsinitError("rootfs", f"{target}: not a directory")
    if os.path.isdir(target) and os.listdir(target) and not _is_nsinit_rootfs(target):
        raise NsinitError("rootfs", f"{target}: refusing to populate a non-empty directory "
                                    "that is not an nsinit rootfs (no container.json)")
    busybox = busybox or find_busybox()
    if not is_static_elf(busybox):
        raise NsinitError("rootfs", f"{busybox} is not statically linked: {_NO_BUSYBOX}")

    os.makedirs(target, mode=0o755, exist_ok=True)
    for rel, mode in _DIRECTORIES:
        path = os.path.join(target, rel)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    if os.geteuid() == 0:
        os.chown(os.path.join(target, "home", "user"), USER_UID, USER_GID)
    # Not root: home/user stays ours; only the tests of `user` need 1000:1000
    # and those run as root anyway.

    busybox_path = _install_busybox(busybox, target)
    _link_applets(target, busybox_path, _applets(busybox))

    etc = os.path.join(target, "etc")
    _write_if_missing(os.path.join(etc, "passwd"), _PASSWD)
    _write_if_missing(os.path.join(etc, "group"), _GROUP)
    chosen = DEFAULT_ROOTFS_CONFIG if config is None else config
    hostname = str(chosen.get("hostname") or "nsinit")
    _write_if_missing(os.path.join(etc, "hostname"), hostname + "\n")
    _write_if_missing(os.path.join(etc, "hosts"), _HOSTS)

    config_path = os.path.join(target, "container.json")
    if config is not None or not os.path.exists(config_path):
        # container.json goes last: its presence marks a complete rootfs, so
        # an interrupted first run is refused rather than half-trusted.
        tmp = config_path + ".nsinit-tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(chosen, indent=2) + "\n")
        os.replace(tmp, config_path)
