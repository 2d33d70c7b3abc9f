"""The parts of ``nsinit explain`` and the trace that need no container: flag and mask spelling,
the execve capability rules (checked against a real container in
tests/integration/test_teach_explain.py)."""
from __future__ import annotations

from nsinit.config.model import CapabilitySets
from nsinit.mount.plan import MountPoint, flag_text
from nsinit.teach.explain import cap_mask_hex, caps_after_exec, clone_flag_text


def test_flag_text_names_every_bit_and_keeps_unknown_ones() -> None:
    assert flag_text(0) == "0"
    assert flag_text(0x1 | 0x2 | 0x1000) == "MS_RDONLY|MS_NOSUID|MS_BIND"
    assert flag_text(0x1 << 40).endswith(hex(0x1 << 40))


def test_options_are_spelled_as_mountinfo_spells_them() -> None:
    assert MountPoint("/proc", "proc", 0x2 | 0x4 | 0x8 | 0x200000).options() == "rw,nosuid,nodev,noexec,relatime"
    assert MountPoint("/sys", "sysfs", 0x1).options() == "ro"


def test_root_gets_bounding_and_inheritable_after_exec() -> None:
    caps = CapabilitySets(bounding=("CAP_CHOWN", "CAP_KILL"), effective=("CAP_CHOWN",),
                          permitted=("CAP_CHOWN",), inheritable=("CAP_KILL",))
    sets = caps_after_exec(caps, uid=0, no_new_privs=False, last_cap=40)
    assert sets["CapPrm"] == sets["CapEff"] == (1 << 0) | (1 << 5)
    # no_new_privs: no more than it had before execve.
    assert caps_after_exec(caps, uid=0, no_new_privs=True, last_cap=40)["CapPrm"] == 1 << 0


def test_any_other_uid_keeps_only_the_ambient_set() -> None:
    caps = CapabilitySets(bounding=("CAP_CHOWN", "CAP_NET_RAW"), effective=("CAP_CHOWN", "CAP_NET_RAW"),
                          permitted=("CAP_CHOWN", "CAP_NET_RAW"), inheritable=("CAP_NET_RAW",),
                          ambient=("CAP_NET_RAW",))
    sets = caps_after_exec(caps, uid=1000, no_new_privs=False, last_cap=40)
    assert sets["CapPrm"] == sets["CapEff"] == sets["CapAmb"] == 1 << 13
    assert cap_mask_hex(sets["CapBnd"]) == f"{(1 << 0) | (1 << 13):016x}"


def test_clone_flags_are_named() -> None:
    assert clone_flag_text(0x00020000 | 0x20000000) == "CLONE_NEWNS|CLONE_NEWPID|SIGCHLD"


def test_seccomp_rules_are_listed_when_the_config_has_them() -> None:
    # The config model gets its seccomp field on another branch; explain reads it by name.
    from types import SimpleNamespace

    from nsinit.teach.explain import _seccomp

    rule = SimpleNamespace(names=("mount", "umount2"), action="errno", errno_ret=None,
                           args=(SimpleNamespace(index=0, op="eq", value=5, value_two=0),))
    profile = SimpleNamespace(default_action="allow", default_errno_ret=None, flags=(), syscalls=(rule,))
    parts = _seccomp(SimpleNamespace(seccomp=profile))  # type: ignore[arg-type]
    assert parts[0].calls == ["seccomp(SECCOMP_SET_MODE_FILTER, 0, default allow, 1 rules)",
                              "  mount,umount2 if arg0 eq 5 → errno EPERM"]
    assert _seccomp(SimpleNamespace()) == []  # type: ignore[arg-type]
