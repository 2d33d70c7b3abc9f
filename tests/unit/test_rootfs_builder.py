"""build_rootfs into a temporary directory; root only for the chown check."""
from __future__ import annotations

import json
import os
import stat

import pytest

from nsinit.errors import NsinitError
from nsinit.demo_rootfs import DEFAULT_ROOTFS_CONFIG, build_rootfs, find_busybox, is_static_elf


@pytest.fixture(scope="module")
def busybox():
    try:
        return find_busybox()
    except NsinitError:
        pytest.skip("busybox-static not installed")


@pytest.fixture
def rootfs(tmp_path, busybox):
    target = tmp_path / "rootfs"
    build_rootfs(str(target), busybox=busybox)
    return target


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_find_busybox_is_static(busybox):
    assert is_static_elf(busybox)


def test_dynamic_binary_is_not_static():
    assert not is_static_elf("/bin/sh" if os.path.exists("/bin/sh") else "/usr/bin/env")


def test_directory_tree(rootfs):
    for rel in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp",
                "root", "home/user", "var", "run"):
        assert (rootfs / rel).is_dir(), rel
        assert not (rootfs / rel).is_symlink(), rel
    assert _mode(rootfs / "tmp") == 0o1777
    assert _mode(rootfs / "root") == 0o700
    assert _mode(rootfs / "bin" / "busybox") == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_home_user_owner(rootfs):
    st = os.stat(rootfs / "home" / "user")
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_applet_symlinks(rootfs):
    busybox = os.path.realpath(rootfs / "bin" / "busybox")
    for rel in ("bin/sh", "bin/ls", "usr/bin/env", "bin/cat"):
        link = rootfs / rel
        assert link.is_symlink(), rel
        target = os.readlink(link)
        assert not os.path.isabs(target), f"{rel} -> {target} must be relative"
        assert os.path.realpath(link) == busybox, rel
    links = [p for p in rootfs.rglob("*") if p.is_symlink()]
    assert len(links) > 100
    assert all(os.path.realpath(p) == busybox for p in links)


def test_etc_files(rootfs):
    passwd = (rootfs / "etc" / "passwd").read_text().splitlines()
    assert "root:x:0:0:root:/root:/bin/sh" in passwd
    assert "user:x:1000:1000:user:/home/user:/bin/sh" in passwd
    assert "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" in passwd
    assert "daemon:x:1:1:daemon:/usr/sbin:/bin/false" in passwd
    group = (rootfs / "etc" / "group").read_text().splitlines()
    for line in ("root:x:0:", "user:x:1000:", "wheel:x:10:root,user", "nogroup:x:65534:",
                 "daemon:x:1:", "tty:x:5:", "users:x:100:"):
        assert line in group
    assert (rootfs / "etc" / "hostname").read_text() == "nsinit\n"
    assert "127.0.0.1\tlocalhost" in (rootfs / "etc" / "hosts").read_text()


def test_container_json(rootfs):
    config = json.loads((rootfs / "container.json").read_text())
    assert config == DEFAULT_ROOTFS_CONFIG
    assert "capabilities" not in config
    assert [n["type"] for n in config["namespaces"]] == [
        "NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]


def test_custom_config(tmp_path, busybox):
    build_rootfs(str(tmp_path / "r"), busybox=busybox, config={"hostname": "other"})
    assert json.loads((tmp_path / "r" / "container.json").read_text()) == {"hostname": "other"}
    assert (tmp_path / "r" / "etc" / "hostname").read_text() == "other\n"


def test_refuses_non_empty_foreign_directory(tmp_path, busybox):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(NsinitError, match="refusing to populate a non-empty directory") as info:
        build_rootfs(str(tmp_path), busybox=busybox)
    assert info.value.step == "rootfs"
    assert sorted(os.listdir(tmp_path)) == ["precious.txt"]


def test_refuses_dynamic_busybox(tmp_path):
    dynamic = "/bin/sh" if os.path.exists("/bin/sh") else "/usr/bin/env"
    with pytest.raises(NsinitError, match="not statically linked"):
        build_rootfs(str(tmp_path / "r"), busybox=dynamic)


def test_idempotent(rootfs, busybox):
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")  # a user edit
    os.unlink(rootfs / "bin" / "ls")
    before = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*"))
    build_rootfs(str(rootfs), busybox=busybox)
    after = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*"))
    assert sorted(before + ["bin/ls"]) == after
    assert (rootfs / "bin" / "ls").is_symlink()
    assert (rootfs / "etc" / "passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    assert json.loads((rootfs / "container.json").read_text()) == DEFAULT_ROOTFS_CONFIG
