"""Escape classes of other runtimes, tried from inside real containers (issue 15).

Each test is an attack a container's root can make; it passes when the
attack fails inside the container, or nsinit refuses with one line.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Nsinit, needs_root, stderr_lines

pytestmark = needs_root

USERNS_BASE = 100000


def ok(result: subprocess.CompletedProcess[str]) -> str:
    stderr_lines(result)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def traversable(tmp_path: Path) -> Iterator[None]:
    """Let any user search the pytest directories above tmp_path (they are
    0700): a mapped root is an unprivileged host uid."""
    changed = []
    for directory in [tmp_path, *tmp_path.parents]:
        mode = directory.stat().st_mode
        if mode & stat.S_IXOTH:
            continue
        directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        changed.append((directory, stat.S_IMODE(mode)))
    try:
        yield
    finally:
        for directory, mode in changed:
            directory.chmod(mode)


def map_root(nsinit: Nsinit) -> None:
    """A user namespace whose root is host uid USERNS_BASE, owning the rootfs."""
    for dirpath, dirnames, filenames in os.walk(nsinit.root):
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for name in [dirpath, *(os.path.join(dirpath, n) for n in filenames + links)]:
            st = os.lstat(name)
            os.lchown(name, USERNS_BASE + st.st_uid, USERNS_BASE + st.st_gid)
    maps = [{"container_id": 0, "host_id": USERNS_BASE, "size": 65536}]
    nsinit.config(namespaces=["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"],
                  uid_mappings=maps, gid_mappings=maps)


# --- no_pivot_root: the host's procfs ----------------------------------------------

# A fresh procfs, mounted where no mask of nsinit's covers anything: if the
# kernel allows the mount, /proc/kcore, /proc/timer_list, ... are all readable
# to whoever may read them (root's root: timer_list is 0400).
FRESH_PROC = "unshare -mrpf sh -c 'mount -t proc none /proc' 2>/dev/null; echo mounted=$?"


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_no_pivot_root_cannot_mount_an_unmasked_procfs(nsinit: Nsinit, traversable: None,
                                                       userns: bool) -> None:
    # The kernel lets a user namespace mount procfs only while a full procfs
    # is in the mount namespace: the host's /proc, left under the moved root,
    # would be one.  In a user namespace it cannot be unmounted, only covered.
    if userns:
        map_root(nsinit)
    nsinit.config(no_pivot_root=True)
    out = ok(nsinit.sh(f"{FRESH_PROC}; test -r /proc/self/status && echo own-proc"))
    assert out.split() == ["mounted=1", "own-proc"]


def test_pivot_root_cannot_mount_an_unmasked_procfs(nsinit: Nsinit) -> None:
    assert ok(nsinit.sh(FRESH_PROC)).split() == ["mounted=1"]
