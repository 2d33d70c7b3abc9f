"""cgroups/fs.write_lines: several kernel writes through one open, and which one failed."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from nsinit.cgroups import fs
from nsinit.cgroups.v1 import V1Manager
from nsinit.errors import NsinitError
from nsinit.teach import calltrace


def test_every_line_is_written_in_order(tmp_path: Path) -> None:
    target = tmp_path / "devices.allow"
    target.write_text("")
    fs.write_lines(str(target), ["c 1:3 rwm", "c 1:5 rwm"])
    assert target.read_text() == "c 1:3 rwmc 1:5 rwm"  # a regular file keeps them all; cgroupfs parses each


def test_a_refused_line_is_named_with_its_place() -> None:
    # /dev/full refuses every write (ENOSPC): the first line is the one.
    with pytest.raises(fs.LineRefused) as caught:
        fs.write_lines("/dev/full", ["a", "b"])
    assert (caught.value.line, caught.value.index, caught.value.errno) == ("a", 0, errno.ENOSPC)


def test_a_missing_file_is_the_open_that_failed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fs.write_lines(str(tmp_path / "missing"), ["a"])
    assert not (tmp_path / "missing").exists()  # no O_CREAT: a kernel file is never made up


def test_the_trace_spells_one_write_per_line_and_marks_the_refused_one(tmp_path: Path) -> None:
    target = tmp_path / "devices.allow"
    target.write_text("")
    calltrace.install()
    try:
        calltrace.take()
        fs.write_lines(str(target), ["x", "y"])
        assert calltrace.take() == [f'write("{target}", "x")', f'write("{target}", "y")']
        with pytest.raises(OSError):
            fs.write_lines("/dev/full", ["x", "y"])
        assert calltrace.take() == ['write("/dev/full", "x") = -1 ENOSPC']  # "y" was never written
    finally:
        calltrace.uninstall()


def test_v1_device_rules_name_the_line_the_kernel_refused(tmp_path: Path) -> None:
    (tmp_path / "devices.deny").write_text("")
    (tmp_path / "devices.allow").symlink_to("/dev/full")
    manager = V1Manager({"devices": str(tmp_path)})
    with pytest.raises(NsinitError) as caught:
        manager.write_device_rules([("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"),
                                    ("devices.allow", "c 1:5 rwm")])
    assert str(caught.value) == 'cgroups: devices: cannot write "c 1:3 rwm" to devices.allow: No space left on device'
    assert (tmp_path / "devices.deny").read_text() == "a"


def test_parents_made_are_the_ancestors_deepest_first_each_once() -> None:
    from nsinit.cgroups.manager import parents_made

    made = ["/m/a", "/m/a/b", "/m/a/b/leaf", "/n/a", "/n/a/b", "/n/a/b/leaf", "/m/a"]
    assert parents_made(made, ["/m/a/b/leaf", "/n/a/b/leaf"]) == ["/m/a/b", "/n/a/b", "/m/a", "/n/a"]
    # The shared default parent is kept for the next container, and so what is above it.
    assert parents_made(["/m/x", "/m/x/nsinit", "/m/x/nsinit/c"], ["/m/x/nsinit/c"]) == []


def test_remove_parents_if_unused_leaves_a_used_one_and_a_gone_one(tmp_path: Path) -> None:
    from nsinit import kernelfs

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "other").mkdir()   # another container's
    kernelfs.remove_parents_if_unused([str(tmp_path / "gone"), str(tmp_path / "a" / "b"), str(tmp_path / "a")])
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "other").is_dir()


def test_make_chain_starts_again_when_a_parent_goes_meanwhile(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from nsinit.cgroups import fs as cgroup_fs

    real = cgroup_fs.make_dir
    removed: list[str] = []

    def make_dir(path: str) -> None:
        # A concurrent teardown rmdirs the empty shared parent between our mkdirs, once.
        if path.endswith("/leaf") and not removed and os.path.isdir(os.path.dirname(path)):
            os.rmdir(os.path.dirname(path))
            removed.append(path)
        real(path)

    monkeypatch.setattr(cgroup_fs, "make_dir", make_dir)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").mkdir()   # shared, made by someone else
    made: list[str] = []
    V1Manager({}).make_chain(str(tmp_path), str(tmp_path / "a" / "b" / "leaf"), made)
    assert (tmp_path / "a" / "b" / "leaf").is_dir() and removed
    assert made == [str(tmp_path / "a" / "b"), str(tmp_path / "a" / "b" / "leaf")]
