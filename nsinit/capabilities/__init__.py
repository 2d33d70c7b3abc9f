"""Capability sets of the container process, applied just before execve.

Runs in the container child after pivot_root, so every import is at the top
(host modules cannot be imported any more) and only the stdlib and
``nsinit._native`` are used.

The order is fixed by kernel rules; the flow calls, as root:

1. ``drop_bounding_set(caps)`` -- PR_CAPBSET_DROP needs CAP_SETPCAP in the
   effective set, which we only have while we are still uid 0 with full caps.
   Doing it first also means no later step can regain a dropped capability:
   the bounding set caps what execve can ever grant.
2. ``keep_caps_across_setuid(True)`` -- setuid() from uid 0 to a non-zero uid
   clears the permitted set (and so everything) unless PR_SET_KEEPCAPS is set.
   Without it step 5 could not give a non-root user any capability.
3. ``identity.switch_user(...)`` -- setgroups, setresgid, setresuid (needs
   CAP_SETUID/CAP_SETGID, so it must come before capabilities are trimmed).
   The kernel clears the effective set on the switch even with KEEPCAPS.
4. ``keep_caps_across_setuid(False)`` -- so the flag does not leak into the
   container command (it would let a setuid-root helper keep caps).
5. ``apply_capability_sets(caps)`` -- capset after the switch: permitted may
   only shrink, effective must be a subset of permitted, and inheritable may
   only grow within the old permitted set; then the ambient set, whose caps
   the kernel accepts only when they are in both permitted and inheritable
   (so it must follow capset), and which is what lets a non-root command keep
   capabilities across execve of a file without file capabilities.
6. ``set_no_new_privileges()`` when configured -- last, because it makes
   setuid/file-capability binaries useless for the rest of the process life.

This is libcontainer's FinalizeNamespace order (2014 ``namespaces/init.go``,
2015 ``init_linux.go``), plus the ambient set that postdates it.
"""
from __future__ import annotations

import errno

from nsinit import _native
from nsinit.config.names import CAPABILITIES

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Iterable

    from nsinit.config.model import CapabilitySets

# prctl(2) options and arguments (linux/prctl.h).
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_NAMES_BY_BIT: dict[int, str] = {bit: name for name, bit in CAPABILITIES.items()}

# No kernel has more: the capability sets are 64-bit masks (two u32 words).
_MAX_CAP = 63

_last_cap_cache: int | None = None


def names_to_mask(names: Iterable[str]) -> int:
    """OR of the bits of canonical names ``CAP_X``.

    A bare decimal number is accepted too (``"41"``), which is how
    ``mask_to_names`` spells a bit this table has no name for, as libcap's
    cap_to_name does; so the two round-trip for every 64-bit mask.
    """
    mask = 0
    for name in names:
        bit = CAPABILITIES.get(name)
        if bit is None:
            if not (name.isascii() and name.isdigit() and int(name) < 64):
                raise ValueError(f'unknown capability "{name}"')
            bit = int(name)
        mask |= 1 << bit
    return mask


def mask_to_names(mask: int) -> list[str]:
    """Names of the bits set in ``mask``, lowest bit first."""
    if mask < 0:
        raise ValueError(f"capability mask must not be negative: {mask}")
    names = []
    bit = 0
    while mask >> bit:
        if (mask >> bit) & 1:
            names.append(_NAMES_BY_BIT.get(bit, str(bit)))
        bit += 1
    return names


def last_cap() -> int:
    """Highest capability number the running kernel supports.

    Asked of the kernel itself: PR_CAPBSET_READ fails with EINVAL for a
    capability it does not know.  Never read from
    /proc/sys/kernel/cap_last_cap: this runs after the chroot or pivot_root,
    where /proc may be a directory of the image's (no NEWNS, or a bind over
    /proc), and a fake "1" there would leave every capability above 1 in the
    bounding set and the permitted set of the container (issue 15).
    """
    global _last_cap_cache
    if _last_cap_cache is None:
        _last_cap_cache = _probe_last_cap()
    return _last_cap_cache


def _probe_last_cap() -> int:
    """Binary search for the highest cap PR_CAPBSET_READ accepts (6 prctl calls)."""
    low, high = 0, _MAX_CAP  # CAP_CHOWN (0) exists on every kernel
    while low < high:
        middle = (low + high + 1) // 2
        if _kernel_knows(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _kernel_knows(cap: int) -> bool:
    try:
        _native.prctl(PR_CAPBSET_READ, cap, label=f"prctl(PR_CAPBSET_READ, {cap})")
    except OSError as err:
        if err.errno == errno.EINVAL:
            return False
        raise
    return True


def _supported_mask() -> int:
    return (1 << (last_cap() + 1)) - 1


def held_by_caller() -> frozenset[str]:
    """Names of the capabilities this process could hand a child: in both
    its permitted set (capset can never add to it) and its bounding set
    (no execve can ever gain more)."""
    _effective, permitted, _inheritable = _native.capget()
    return frozenset(name for name, bit in CAPABILITIES.items()
                     if bit <= last_cap() and permitted >> bit & 1 and _in_bounding_set(bit))


def _in_bounding_set(cap: int) -> bool:
    return _native.prctl(PR_CAPBSET_READ, cap, label=f"prctl(PR_CAPBSET_READ, {cap})") == 1


def drop_bounding_set(caps: CapabilitySets) -> None:
    """Remove from the bounding set every capability not in ``caps.bounding``.

    Needs CAP_SETPCAP, so call it while still root (step 1 above).
    """
    keep = names_to_mask(caps.bounding)
    for cap in range(last_cap() + 1):
        if not keep & (1 << cap):
            _native.prctl(PR_CAPBSET_DROP, cap, label=f"prctl(PR_CAPBSET_DROP, {cap})")


def keep_caps_across_setuid(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across setuid away from uid 0."""
    _native.prctl(PR_SET_KEEPCAPS, 1 if on else 0, label="prctl(PR_SET_KEEPCAPS)")


def apply_capability_sets(caps: CapabilitySets) -> None:
    """capset(effective, permitted, inheritable), then replace the ambient set.

    Capabilities the running kernel does not know (newer than cap_last_cap)
    are left out instead of failing: capset would refuse them with EPERM as
    they can never be in the old permitted set, and runc likewise skips them.
    """
    supported = _supported_mask()
    _native.capset(names_to_mask(caps.effective) & supported,
                   names_to_mask(caps.permitted) & supported,
                   names_to_mask(caps.inheritable) & supported)
    # Clear first: ambient caps survive execve, so anything inherited from
    # the runtime itself must not leak into the container command.
    _native.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL,
                  label="prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    ambient = names_to_mask(caps.ambient) & supported
    for cap in range(last_cap() + 1):
        if ambient & (1 << cap):
            _native.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap,
                          label=f"prctl(PR_CAP_AMBIENT_RAISE, {_NAMES_BY_BIT.get(cap, cap)})")


def set_no_new_privileges() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (setuid bits,
    file capabilities); irreversible for this process and its children."""
    _native.prctl(PR_SET_NO_NEW_PRIVS, 1, label="prctl(PR_SET_NO_NEW_PRIVS)")
