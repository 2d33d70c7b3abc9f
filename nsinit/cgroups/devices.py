"""Which device nodes the container may create (m), read (r) and write (w).

Deny by default: a root process that can open /dev/sda or /dev/mem owns the
host, and mknod is in the default capability set, so the device cgroup, not
the absence of nodes, is what keeps the container away from host devices.
The allow list is libcontainer's (DefaultAllowedDevices in
runc@dcdbf01076b5:configs/device_defaults.go), the container's own nodes
(config.devices), then ``resources.allowed_devices``; after it
``resources.denied_devices``.  ``allow_all_devices`` turns all of it off.

cgroup v1 takes the rules as lines written to devices.deny/devices.allow.
cgroup v2 has no device files: an eBPF program of type CGROUP_DEVICE,
attached to the cgroup, answers each access.  It is built here instruction
by instruction; the C helper makes the two bpf(2) calls that load and
attach it (nsinit._native).
"""
from __future__ import annotations

import os

from nsinit.config.model import CgroupResources, DeviceConfig
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Iterable


@record(frozen=True)
class Rule:
    """One device cgroup rule: type, major, minor, access."""
    type: str      # "a" (all), "c" or "b"
    major: int     # -1 = any ("*")
    minor: int     # -1 = any
    access: str    # subset of "rwm"
    allow: bool

    def v1_line(self) -> str:
        if self.type == "a":
            return "a"
        major = "*" if self.major < 0 else str(self.major)
        minor = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _allow(kind: str, major: int, minor: int, access: str = "rwm") -> Rule:
    return Rule(kind, major, minor, access, True)


# libcontainer's DefaultAllowedDevices without tty0/tty1 (host virtual
# consoles: runc dropped them too), plus the six DefaultSimpleDevices.
DEFAULT_ALLOWED: tuple[Rule, ...] = (
    _allow("c", -1, -1, "m"),     # mknod of any char device; opening needs its own rule
    _allow("b", -1, -1, "m"),     # same for block devices
    _allow("c", 1, 3),            # /dev/null
    _allow("c", 1, 5),            # /dev/zero
    _allow("c", 1, 7),            # /dev/full
    _allow("c", 5, 0),            # /dev/tty
    _allow("c", 1, 9),            # /dev/urandom
    _allow("c", 1, 8),            # /dev/random
    _allow("c", 5, 1),            # /dev/console
    _allow("c", 136, -1),         # /dev/pts/*
    _allow("c", 5, 2),            # /dev/ptmx
    _allow("c", 10, 200),         # /dev/net/tun
)


# The defaults as plain tuples: a config's devices are checked against them
# by hash, not by ~70 record comparisons (~40 µs of every container's cgroups).
_DEFAULT_KEYS = frozenset((r.type, r.major, r.minor, r.access, r.allow) for r in DEFAULT_ALLOWED)


def _from_config(device: DeviceConfig, allow: bool) -> Rule:
    return Rule(device.type, device.major, device.minor, device.permissions, allow)


def container_rules(devices: Iterable[DeviceConfig], resources: CgroupResources) -> tuple[bool, list[Rule]]:
    """(allow_all, rules in the order they apply: allows, then denies)."""
    if resources.allow_all_devices:
        return True, []
    rules = list(DEFAULT_ALLOWED)
    seen = set(_DEFAULT_KEYS)
    for device in devices:
        if device.type in ("c", "b"):  # FIFOs ("p") are not subject to the device cgroup
            key = (device.type, device.major, device.minor, device.permissions, True)
            if key not in seen:
                seen.add(key)
                rules.append(_from_config(device, True))
    rules.extend(_from_config(d, True) for d in resources.allowed_devices)
    rules.extend(_from_config(d, False) for d in resources.denied_devices)
    return False, rules


def v1_writes(allow_all: bool, rules: list[Rule]) -> list[tuple[str, str]]:
    """(file, line) pairs for a fresh v1 devices cgroup, in order."""
    if allow_all:
        return [("devices.allow", "a")]
    writes = [("devices.deny", "a")]
    writes.extend(("devices.allow" if r.allow else "devices.deny", r.v1_line()) for r in rules)
    return writes


# --- cgroup v2: eBPF device program ------------------------------------------
#
# The program sees struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
# u32 minor; } with access_type = (access << 16) | type, and returns 1 to
# allow, 0 to deny (the syscall then fails with EPERM).

BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
_ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPE_CODES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

# Opcodes (linux/bpf.h, linux/bpf_common.h).
_LDX_MEM_W = 0x61     # dst = *(u32 *)(src + off)
_ALU32_AND_K = 0x54   # dst = (u32)dst & imm
_ALU32_RSH_K = 0x74   # dst = (u32)dst >> imm
_MOV64_X = 0xBF       # dst = src
_MOV64_K = 0xB7       # dst = imm
_JEQ_K = 0x15         # if dst == imm: pc += off
_JNE_K = 0x55         # if dst != imm: pc += off
_EXIT = 0x95

# Registers: r1 = ctx on entry; r2 type, r3 access, r4 major, r5 minor, r6 scratch.
_R0, _R1, _R2, _R3, _R4, _R5, _R6 = range(7)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # struct.pack("<BBhi", ...) without importing struct on v1 hosts, which never get here.
    return (bytes((code, (src << 4) | dst)) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


def _access_mask(access: str) -> int:
    mask = 0
    for letter in access:
        mask |= _ACCESS_BITS[letter]
    return mask


def _rule_block(rule: Rule) -> list[bytes]:
    """Instructions for one rule: on a match return its verdict, else fall through.

    Every check jumps to the end of the block when it fails; the offsets are
    filled in once the block's length is known.
    """
    checks: list[tuple[int, int, int]] = []   # (opcode, register, imm) that skip the rule
    if rule.type != "a":
        checks.append((_JNE_K, _R2, _TYPE_CODES[rule.type]))
    if rule.major >= 0:
        checks.append((_JNE_K, _R4, rule.major))
    if rule.minor >= 0:
        checks.append((_JNE_K, _R5, rule.minor))
    mask = _access_mask(rule.access)
    # allow: every requested bit must be granted -> skip if (access & ~mask) != 0
    # deny:  any requested bit that is denied -> skip if (access & mask) == 0
    test_mask = (~mask & 7) if rule.allow else mask
    need_access_test = test_mask != 0 if rule.allow else mask != 7
    body: list[tuple[str, tuple[int, ...]]] = []
    for opcode, register, imm in checks:
        body.append(("jump", (opcode, register, imm)))
    if need_access_test:
        body.append(("insn", (_MOV64_X, _R6, _R3, 0, 0)))
        body.append(("insn", (_ALU32_AND_K, _R6, 0, 0, test_mask)))
        body.append(("jump", (_JNE_K if rule.allow else _JEQ_K, _R6, 0)))
    body.append(("insn", (_MOV64_K, _R0, 0, 0, 1 if rule.allow else 0)))
    body.append(("insn", (_EXIT, 0, 0, 0, 0)))
    out = []
    for index, (kind, args) in enumerate(body):
        if kind == "jump":
            opcode, register, imm = args
            out.append(_insn(opcode, register, 0, len(body) - index - 1, imm))
        else:
            out.append(_insn(*args))
    return out


def bpf_program(allow_all: bool, rules: list[Rule]) -> bytes:
    """The CGROUP_DEVICE program for these rules.

    First match wins, so the denies go first: a denied device stays denied
    whatever allow covers it.  (v1 differs slightly: a deny there only
    removes allow entries that match it exactly.)
    """
    code = [
        _insn(_LDX_MEM_W, _R2, _R1, 0),
        _insn(_ALU32_AND_K, _R2, 0, 0, 0xFFFF),
        _insn(_LDX_MEM_W, _R3, _R1, 0),
        _insn(_ALU32_RSH_K, _R3, 0, 0, 16),
        _insn(_LDX_MEM_W, _R4, _R1, 4),
        _insn(_LDX_MEM_W, _R5, _R1, 8),
    ]
    if not allow_all:
        for rule in [r for r in rules if not r.allow] + [r for r in rules if r.allow]:
            code.extend(_rule_block(rule))
    code.append(_insn(_MOV64_K, _R0, 0, 0, 1 if allow_all else 0))
    code.append(_insn(_EXIT))
    return b"".join(code)


def attach_device_program(cgroup_dir: str, allow_all: bool, rules: list[Rule]) -> None:
    """Load the program and attach it to ``cgroup_dir`` (a cgroup2 directory).

    Attached without BPF_F_ALLOW_MULTI, so nothing below can add a program
    that widens access; the cgroup holds the program after our fds close.
    """
    from nsinit import _native

    prog_fd = _native.bpf_load_device_program(bpf_program(allow_all, rules))
    try:
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _native.bpf_attach_device_program(cgroup_fd, prog_fd)
        finally:
            os.close(cgroup_fd)
    finally:
        os.close(prog_fd)
