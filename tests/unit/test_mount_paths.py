"""Path resolution inside a rootfs: nothing may lead outside it (no root needed)."""
from __future__ import annotations

import errno
import os
import stat
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from nsinit.errors import NsinitError
from nsinit.mount.paths import open_in_root, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    (r / "usr" / "lib").mkdir(parents=True)
    return r


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


# --- resolve_in_root ---------------------------------------------------------------

def test_absolute_symlink_restarts_at_root(root: Path) -> None:
    (root / "a").symlink_to("/etc")
    assert resolve_in_root(str(root), "/a/passwd") == str(root / "etc" / "passwd")


def test_relative_symlink_cannot_climb_out(root: Path) -> None:
    (root / "usr" / "lib" / "up").symlink_to("../../../../..")
    assert resolve_in_root(str(root), "/usr/lib/up/etc") == str(root / "etc")


def test_dotdot_past_root_stays_at_root(root: Path) -> None:
    assert resolve_in_root(str(root), "/../../../etc/passwd") == str(root / "etc" / "passwd")
    assert resolve_in_root(str(root), "..") == str(root)


def test_symlink_to_root_and_chains(root: Path) -> None:
    (root / "r").symlink_to("/")
    (root / "usr" / "e").symlink_to("../r/etc")
    assert resolve_in_root(str(root), "/usr/e/passwd") == str(root / "etc" / "passwd")


def test_missing_components_kept_as_written(root: Path) -> None:
    (root / "dangling").symlink_to("/nowhere/deep")
    assert resolve_in_root(str(root), "/dangling/x") == str(root / "nowhere" / "deep" / "x")


def test_symlink_loop_is_eloop(root: Path) -> None:
    (root / "l1").symlink_to("/l2")
    (root / "l2").symlink_to("/l1")
    with pytest.raises(OSError) as info:
        resolve_in_root(str(root), "/l1/x")
    assert info.value.errno == errno.ELOOP


# --- open_in_root --------------------------------------------------------------------

def test_open_follows_symlinks_inside(root: Path, root_fd: int) -> None:
    (root / "a").symlink_to("/etc")
    assert where(open_in_root(root_fd, "/a/passwd")) == str(root / "etc" / "passwd")


def test_open_relative_escape_stays_inside(root: Path, root_fd: int) -> None:
    (root / "a").symlink_to("../../../..")
    assert where(open_in_root(root_fd, "a/etc")) == str(root / "etc")
    assert where(open_in_root(root_fd, "/../../..")) == str(root)


def test_open_agrees_with_resolve(root: Path, root_fd: int) -> None:
    (root / "usr" / "x").symlink_to("lib/../../etc")
    path = "/usr/x/passwd"
    assert where(open_in_root(root_fd, path)) == resolve_in_root(str(root), path)


def test_open_symlink_loop_fails(root: Path, root_fd: int) -> None:
    (root / "l1").symlink_to("/l2")
    (root / "l2").symlink_to("/l1")
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, "/l1", create_dir=True)
    assert info.value.errno == errno.ELOOP


def test_open_refuses_magic_links(root: Path, root_fd: int) -> None:
    # A relative link towards the host's /proc is clamped at the root ...
    (root / "p").symlink_to("../../../../proc/self/root")
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, "/p/etc")
    assert info.value.errno == errno.ENOENT
    # ... and where procfs is reachable, its magic links are not followed.
    host_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as info:
            open_in_root(host_root, "/proc/self/root/etc")
        assert info.value.errno == errno.ELOOP
    finally:
        os.close(host_root)


def test_missing_without_create_is_enoent(root_fd: int) -> None:
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, "/no/such")
    assert info.value.errno == errno.ENOENT
    assert "openat2" in str(info.value)


def test_create_dir_makes_0755_dirs_whatever_the_umask(root: Path, root_fd: int) -> None:
    old = os.umask(0o077)
    try:
        fd = open_in_root(root_fd, "/dev/pts/deep", create_dir=True)
    finally:
        os.umask(old)
    assert where(fd) == str(root / "dev" / "pts" / "deep")
    for p in (root / "dev", root / "dev" / "pts", root / "dev" / "pts" / "deep"):
        assert stat.S_ISDIR(p.lstat().st_mode)
        assert stat.S_IMODE(p.lstat().st_mode) == 0o755


def test_create_file_makes_empty_0644_file(root: Path, root_fd: int) -> None:
    fd = open_in_root(root_fd, "/dev/console", create_file=True)
    assert where(fd) == str(root / "dev" / "console")
    info = (root / "dev" / "console").lstat()
    assert stat.S_ISREG(info.st_mode) and info.st_size == 0
    assert stat.S_IMODE(info.st_mode) == 0o644
    assert stat.S_IMODE((root / "dev").lstat().st_mode) == 0o755


def test_create_existing_is_opened_not_replaced(root: Path, root_fd: int) -> None:
    assert where(open_in_root(root_fd, "/etc/passwd", create_file=True)) == str(root / "etc/passwd")
    assert (root / "etc" / "passwd").read_text() == "inside\n"
    assert where(open_in_root(root_fd, "/etc", create_dir=True)) == str(root / "etc")


def test_create_through_absolute_symlink_stays_inside(root: Path, root_fd: int) -> None:
    name = f"nsinit-test-{uuid.uuid4().hex}"
    (root / "evil").symlink_to("/etc")
    fd = open_in_root(root_fd, f"/evil/{name}/sub", create_dir=True)
    assert where(fd) == str(root / "etc" / name / "sub")
    assert not os.path.lexists(f"/etc/{name}")


def test_create_through_dangling_symlink_creates_its_target_inside(root: Path,
                                                                   root_fd: int) -> None:
    name = f"nsinit-test-{uuid.uuid4().hex}"
    (root / "evil").symlink_to(f"/tmp/{name}/x")
    (root / "rel").symlink_to(f"../../{name}-rel")
    assert where(open_in_root(root_fd, "/evil/f", create_file=True)) == \
        str(root / "tmp" / name / "x" / "f")
    assert (root / "tmp" / name / "x" / "f").is_file()
    assert where(open_in_root(root_fd, "/rel", create_dir=True)) == str(root / f"{name}-rel")
    assert not os.path.lexists(f"/tmp/{name}")
    assert not os.path.lexists(f"/{name}-rel")


def test_create_symlink_loop_fails(root: Path, root_fd: int) -> None:
    (root / "self").symlink_to("self/x")
    with pytest.raises(OSError) as info:
        open_in_root(root_fd, "/self", create_dir=True)
    assert info.value.errno == errno.ELOOP


def test_file_where_directory_needed_is_a_clear_error(root: Path, root_fd: int) -> None:
    with pytest.raises(NsinitError) as info:
        open_in_root(root_fd, "/etc/passwd/sub", create_dir=True)
    assert "/etc/passwd in the rootfs is not a directory" in str(info.value)
    with pytest.raises(NsinitError) as info:
        open_in_root(root_fd, "/etc/passwd/a/b")
    assert "/etc/passwd in the rootfs is not a directory" in str(info.value)
    (root / "p").symlink_to("etc/passwd")
    with pytest.raises(NsinitError) as info:
        open_in_root(root_fd, "/p/x", create_file=True)
    assert "/p in the rootfs is not a directory" in str(info.value)


def test_existing_file_with_create_dir_is_a_clear_error(root_fd: int) -> None:
    with pytest.raises(NsinitError, match="/etc/passwd exists in the rootfs and is not a dir"):
        open_in_root(root_fd, "/etc/passwd", create_dir=True)
    with pytest.raises(NsinitError, match="/etc is a directory"):
        open_in_root(root_fd, "/etc", create_file=True)


def test_no_fd_leak(root: Path, root_fd: int) -> None:
    before = len(os.listdir("/proc/self/fd"))
    (root / "a").symlink_to("/nowhere")
    for path in ("/a/b", "/etc/passwd/x", "/x/y/z"):
        try:
            os.close(open_in_root(root_fd, path, create_dir=True))
        except (OSError, NsinitError):
            pass  # failures must not leak fds either
    assert len(os.listdir("/proc/self/fd")) == before
