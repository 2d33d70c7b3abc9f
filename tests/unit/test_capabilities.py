"""Capability names and masks; one root test applies real sets in a forked child."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from nsinit import capabilities as caps_mod
from nsinit.capabilities import CAPABILITIES, last_cap, mask_to_names, names_to_mask


def test_table_is_complete_and_dense():
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(CAPABILITIES.values()) == list(range(41))


def test_names_to_mask():
    assert names_to_mask([]) == 0
    assert names_to_mask(["CAP_CHOWN"]) == 1
    assert names_to_mask(["CAP_SETPCAP", "CAP_NET_RAW", "CAP_NET_RAW"]) == (1 << 8) | (1 << 13)
    assert names_to_mask(["CAP_CHECKPOINT_RESTORE"]) == 1 << 40


def test_unknown_name_is_rejected():
    with pytest.raises(ValueError, match='unknown capability "CAP_FLY"'):
        names_to_mask(["CAP_FLY"])
    with pytest.raises(ValueError):
        names_to_mask(["chown"])


def test_round_trips():
    every = list(CAPABILITIES)
    assert mask_to_names(names_to_mask(every)) == every  # the table is in bit order
    for name in every:
        assert mask_to_names(names_to_mask([name])) == [name]
    for mask in (0, 1, 0x1FFFFFFFFFF, 0xA5A5A5A5A5, (1 << 63) | (1 << 41) | 5):
        assert names_to_mask(mask_to_names(mask)) == mask
    # Bits without a name are spelled as numbers, as libcap does.
    assert mask_to_names((1 << 41) | 1) == ["CAP_CHOWN", "41"]


def test_last_cap_matches_proc():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            expected = int(f.read())
    except OSError:
        expected = 40
    assert last_cap() == expected


def test_last_cap_asks_the_kernel_not_a_file(monkeypatch):
    # After chroot, /proc may be the image's: the probe must not open anything.
    import builtins
    import os

    def no_files(*args, **kwargs):
        raise AssertionError(f"last_cap opened {args[0]!r}")

    monkeypatch.setattr(caps_mod, "_last_cap_cache", None)
    monkeypatch.setattr(builtins, "open", no_files)
    monkeypatch.setattr(os, "open", no_files)
    probed = last_cap()
    monkeypatch.undo()
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert probed == int(f.read())


def _status_masks() -> dict[str, str]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Cap") or key in ("Uid", "Gid", "Groups", "NoNewPrivs"):
                fields[key] = value.strip()
    return fields


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_apply_in_child_as_uid_1000():
    from nsinit.identity import Identity, switch_user

    caps = SimpleNamespace(
        bounding=("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
                  "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
        effective=("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
        permitted=("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
        inheritable=("CAP_NET_BIND_SERVICE", "CAP_NET_RAW"),
        ambient=("CAP_NET_BIND_SERVICE",),
    )
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            os.close(read_fd)
            caps_mod.drop_bounding_set(caps)
            caps_mod.keep_caps_across_setuid(True)
            switch_user(Identity(uid=1000, gid=1000, groups=(10,), home="/", name="user"))
            caps_mod.keep_caps_across_setuid(False)
            caps_mod.apply_capability_sets(caps)
            caps_mod.set_no_new_privileges()
            payload = {"ok": _status_masks()}
            status = 0
        except BaseException as err:  # noqa: BLE001 - report anything, the parent fails the test
            payload = {"error": f"{type(err).__name__}: {err}"}
        finally:
            try:
                os.write(write_fd, json.dumps(payload).encode())
            finally:
                os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    result = json.loads(data)
    assert "error" not in result, result["error"]
    assert os.waitstatus_to_exitcode(wait_status) == 0
    got = result["ok"]

    def mask(names):
        return f"{names_to_mask(names):016x}"

    assert got["CapBnd"] == mask(caps.bounding)
    assert got["CapEff"] == mask(caps.effective)
    assert got["CapPrm"] == mask(caps.permitted)
    assert got["CapInh"] == mask(caps.inheritable)
    assert got["CapAmb"] == mask(caps.ambient)
    assert got["Uid"].split() == ["1000"] * 4
    assert got["Gid"].split() == ["1000"] * 4
    assert got["Groups"].split() == ["10"]
    assert got["NoNewPrivs"] == "1"
