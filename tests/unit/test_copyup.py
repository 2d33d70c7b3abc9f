"""nsinit.mount.copyup (runc's tmpcopyup) on real directories: what is copied, and
that a symlink is recreated, never followed (no way out of the rootfs)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from nsinit.mount.copyup import copy_tree


def copy(source: Path, target: Path) -> None:
    src = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    dst = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(src, dst)
    finally:
        os.close(src)
        os.close(dst)


def test_files_dirs_links_and_fifos_with_their_modes_and_times(tmp_path: Path) -> None:
    source, target = tmp_path / "image-tmp", tmp_path / "tmpfs"
    (source / "a" / "b").mkdir(parents=True)
    (source / "a" / "b" / "f").write_bytes(b"x" * 3_000_000)   # more than one sendfile chunk
    os.chmod(source / "a", 0o751)
    (source / "tool").write_text("#!/bin/sh\n")
    os.chmod(source / "tool", 0o4755)                          # set-uid survives (chmod after chown)
    os.utime(source / "tool", ns=(1_000_000_000, 2_000_000_000))
    os.mkfifo(source / "pipe", 0o620)
    os.symlink("/", source / "escape")                         # a link to the host's / in the image
    os.symlink("a/b/f", source / "rel")
    target.mkdir()
    copy(source, target)
    assert (target / "a" / "b" / "f").read_bytes() == b"x" * 3_000_000
    assert stat.S_IMODE(os.stat(target / "a").st_mode) == 0o751
    info = os.stat(target / "tool")
    assert stat.S_IMODE(info.st_mode) == 0o4755 and info.st_mtime_ns == 2_000_000_000
    assert stat.S_ISFIFO(os.stat(target / "pipe").st_mode)
    assert os.readlink(target / "escape") == "/" and os.readlink(target / "rel") == "a/b/f"
    # Nothing of what the links point to was copied: only the entries themselves.
    assert sorted(os.listdir(target)) == ["a", "escape", "pipe", "rel", "tool"]


def test_a_symlinked_directory_is_not_entered(tmp_path: Path) -> None:
    outside = tmp_path / "host-secret"
    outside.mkdir()
    (outside / "key").write_text("secret")
    source, target = tmp_path / "image-tmp", tmp_path / "tmpfs"
    source.mkdir()
    target.mkdir()
    os.symlink(outside, source / "dir")
    copy(source, target)
    assert os.path.islink(target / "dir") and not (target / "key").exists()
    assert os.listdir(target) == ["dir"]
