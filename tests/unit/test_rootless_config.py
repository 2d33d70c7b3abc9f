"""nsinit/rootless.py and nsinit/config/rootless.py: what a plain user's nsinit decides.

Run as anyone: the caller is a ``Caller`` built by the test (uid, gid,
subordinate ranges, helpers), the directories are the test's own.  The
real user, namespaces and maps are in tests/integration/test_rootless.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from nsinit import rootless
from nsinit.config.load import parse_config
from nsinit.config.model import IdMap
from nsinit.errors import ConfigErrors, NsinitError
from nsinit.identity import setgroups_denied
from nsinit.rootless import Caller

ME = os.geteuid()


def caller(subuids: list[tuple[int, int]] | None = None, helper: bool = True) -> Caller:
    ranges = subuids or []
    tool = "/usr/bin/newuidmap" if helper else ""
    return Caller(1234, 1235, "alice", ranges, ranges, tool, tool.replace("uid", "gid"))


# --- the state directory ---------------------------------------------------------

def test_xdg_runtime_dir_first_when_private(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    assert rootless.run_dir(ME, {"XDG_RUNTIME_DIR": str(xdg)}) == str(xdg / "nsinit")


@pytest.mark.parametrize("mode", [0o755, 0o770])
def test_an_xdg_dir_others_can_enter_is_passed_over(tmp_path: Path, mode: int) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    os.chmod(xdg, mode)
    assert rootless.run_dir(ME, {"XDG_RUNTIME_DIR": str(xdg)}) != str(xdg / "nsinit")


def test_a_relative_or_missing_xdg_dir_falls_back(tmp_path: Path) -> None:
    for value in ("", "relative/dir", str(tmp_path / "missing")):
        chosen = rootless.run_dir(987654, {"XDG_RUNTIME_DIR": value})
        assert chosen == "/tmp/nsinit-987654"


def test_check_private_dir_accepts_the_users_0700_dir(tmp_path: Path) -> None:
    path = tmp_path / "mine"
    path.mkdir(mode=0o700)
    rootless.check_private_dir(str(path), ME)


def test_check_private_dir_refuses_open_modes_other_owners_and_symlinks(tmp_path: Path) -> None:
    path = tmp_path / "open"
    path.mkdir()
    os.chmod(path, 0o755)
    with pytest.raises(NsinitError, match=r"has mode 0755; it must be 0700"):
        rootless.check_private_dir(str(path), ME)
    os.chmod(path, 0o700)
    with pytest.raises(NsinitError, match=rf"is owned by uid {ME}, not {ME + 1}"):
        rootless.check_private_dir(str(path), ME + 1)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(NsinitError, match=r"is not a directory \(a symlink\?\)"):
        rootless.check_private_dir(str(link), ME)


# --- subordinate ids and maps ------------------------------------------------------

def test_subordinate_ranges_by_name_or_uid(tmp_path: Path) -> None:
    path = tmp_path / "subuid"
    path.write_text("bob:100000:65536\nalice:165536:65536\n1234:300000:10\nalice:bad:1\nalice:1:0\n")
    assert rootless.subordinate_ranges(str(path), "alice", 1234) == [(165536, 65536), (300000, 10)]
    assert rootless.subordinate_ranges(str(tmp_path / "none"), "alice", 1234) == []


def test_own_id_needs_no_helper_and_anything_else_does() -> None:
    me = caller()
    assert not me.needs_helper("uid", [IdMap(0, 1234, 1)])
    assert me.needs_helper("uid", [IdMap(0, 1234, 1), IdMap(1, 100000, 10)])
    assert me.needs_helper("gid", [IdMap(0, 1234, 1)])  # the gid is 1235


def test_map_problems_name_the_entry() -> None:
    me = caller([(100000, 65536)])
    assert me.map_problem("uid", [IdMap(0, 1234, 1), IdMap(1, 100000, 65536)]) is None
    index, text = me.map_problem("uid", [IdMap(0, 1234, 1), IdMap(1, 100000, 65537)])  # type: ignore[misc]
    assert index == 1
    assert text == ("host uids 100000-165536 are not yours: without root you may map your own uid 1234 "
                    "(one id) and what /etc/subuid grants alice (100000-165535)")
    index, text = caller([(100000, 10)], helper=False).map_problem("uid", [IdMap(0, 100000, 5)])  # type: ignore[misc]
    assert index == 0 and text.startswith("mapping host uids from /etc/subuid needs newuidmap, which is not installed")


def test_default_maps_add_the_subordinate_range_only_with_the_helper() -> None:
    assert caller([(100000, 65536)]).default_maps("uid") == [IdMap(0, 1234, 1), IdMap(1, 100000, 65536)]
    assert caller([(100000, 65536)], helper=False).default_maps("uid") == [IdMap(0, 1234, 1)]
    assert caller().default_maps("gid") == [IdMap(0, 1235, 1)]


# --- the config a plain user runs --------------------------------------------------

def parse(data: dict, me: Caller, tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config(data, "container.json", str(tmp_path), caller=me)


def test_a_config_without_user_namespace_gets_one_with_the_callers_ids(tmp_path: Path) -> None:
    config, _ = parse({"namespaces": [{"type": "NEWNS"}, {"type": "NEWPID"}]}, caller(), tmp_path)
    assert config.has_namespace("NEWUSER")
    assert config.uid_mappings == (IdMap(0, 1234, 1),)
    assert config.gid_mappings == (IdMap(0, 1235, 1),)
    devpts = next(m for m in config.mounts if m.device == "devpts")
    assert "gid=5" not in devpts.data.split(","), "gid 5 is not mapped: the kernel would refuse the mount"
    assert "newinstance" in devpts.data


def test_root_parses_as_before(tmp_path: Path) -> None:
    config, _ = parse_config({"namespaces": [{"type": "NEWNS"}]}, "container.json", str(tmp_path))
    assert not config.has_namespace("NEWUSER")


def test_mapped_gid_5_keeps_the_devpts_option(tmp_path: Path) -> None:
    me = caller([(100000, 65536)])
    config, _ = parse({}, me, tmp_path)
    devpts = next(m for m in config.mounts if m.device == "devpts")
    assert "gid=5" in devpts.data.split(",")


def test_what_a_plain_user_cannot_have_is_listed_at_once(tmp_path: Path) -> None:
    data = {
        "uid_mappings": [{"container_id": 0, "host_id": 0, "size": 1}],
        "gid_mappings": [{"container_id": 0, "host_id": 1235, "size": 1}],
        "additional_groups": ["wheel"],
        "networks": [{"type": "veth", "bridge": "br0"}],
        "cgroups": {"memory": 67108864, "allowed_devices": []},
    }
    with pytest.raises(ConfigErrors) as caught:
        parse(data, caller(), tmp_path)
    fields = [error.field for error in caught.value.errors]
    assert fields == ["uid_mappings[0]", "additional_groups", "networks[0].type", "cgroups.memory"]


def test_cgroups_rootless_ignore_turns_limits_into_warnings(tmp_path: Path) -> None:
    config, warnings = parse({"cgroups": {"pids_limit": 10, "rootless": "ignore"}}, caller(), tmp_path)
    assert config.cgroups is not None and config.cgroups.rootless == "ignore"
    assert any("cgroups.pids_limit: ignored: it needs a cgroup" in w for w in warnings)


def test_cgroups_rootless_takes_two_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r'cgroups.rootless: must be "error" or "ignore", not "skip"'):
        parse_config({"cgroups": {"rootless": "skip"}}, "container.json", str(tmp_path))


def test_setgroups_denied_reads_the_proc_file(tmp_path: Path) -> None:
    path = tmp_path / "setgroups"
    path.write_text("deny\n")
    assert setgroups_denied(str(path))
    path.write_text("allow\n")
    assert not setgroups_denied(str(path))
    assert not setgroups_denied(str(tmp_path / "none"))


@pytest.mark.parametrize("kind", ["slirp4netns", "pasta"])
def test_user_mode_networks_load_with_tap0(tmp_path: Path, kind: str) -> None:
    config, _ = parse_config({"networks": [{"type": kind}, {"type": "loopback"}]}, "container.json", str(tmp_path))
    assert (config.networks[0].type, config.networks[0].name) == (kind, "tap0")


def test_proc_without_a_pid_namespace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r'namespaces: without root, /proc can be mounted only in a new pid namespace'):
        parse({"namespaces": [{"type": "NEWNS"}]}, caller(), tmp_path)
