"""The process part of a config: who the command runs as and with what (the
environment, user and groups, working directory, umask, oom_score_adj, parent
death signal, capabilities in each era's form, rlimits) and the security
labels, refused when the kernel cannot apply them.

Read by both loaders: ``nsinit.config.load`` (container.json) and
``nsinit.oci.spec`` (environment, umask, capability sets, rlimits,
oom_score_adj, the security modules' check).
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.config.defaults import (
    DEFAULT_CAPABILITIES,
    DEFAULT_ENVIRONMENT,
    DEFAULT_PARENT_DEATH_SIGNAL,
    DEFAULT_UMASK,
)
from nsinit.config.model import CapabilitySets, Config, Rlimit
from nsinit.config.parse import (
    _Context,
    _bool,
    _child,
    _clean_abs_path,
    _int,
    _item,
    _list,
    _obj,
    _opt_bool,
    _opt_int,
    _opt_list,
    _opt_str,
    _pick,
    _str,
)
from nsinit.config.recorded import CAP_SET_KEYS
from nsinit.record import replace


TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any


# Module attributes (not constants inlined in the checks) so tests can point
# them at fake files.
APPARMOR_ENABLED_FILE = "/sys/module/apparmor/parameters/enabled"
SELINUX_FS = "/sys/fs/selinux"

_RLIMIT_KEYS = frozenset({"type", "soft", "hard"})
_GO_RLIM_INFINITY = 2**64 - 1  # RLIM_INFINITY as Go's uint64 configs write it


# --- environment, user, working directory, umask -----------------------------

def _parse_environment(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_ENVIRONMENT
    env = []
    for i, item in enumerate(_list(ctx, value, path)):
        entry = _str(ctx, item, _item(path, i))
        key, sep, _ = entry.partition("=")
        if not sep:
            ctx.fail(_item(path, i), 'must be "NAME=VALUE"')
        if not key:
            ctx.fail(_item(path, i), "has an empty variable name")
        env.append(entry)
    return tuple(env)


def _parse_user(ctx: _Context, value: Any, path: str) -> str:
    if value is None:
        return "root"
    if isinstance(value, int) and not isinstance(value, bool):
        spec = str(_int(ctx, value, path, lo=0))
    else:
        spec = _str(ctx, value, path) or "root"  # 2014: "" meant root, like "root"
    from nsinit.identity import parse_user_spec  # small; the child loads it anyway

    try:
        parse_user_spec(spec)  # here, so a bad spec fails before anything is created
    except ValueError as err:
        ctx.fail(path, str(err))
    return spec


def _parse_groups(ctx: _Context, value: Any, path: str) -> tuple[str, ...]:
    groups = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        if isinstance(item, int) and not isinstance(item, bool):
            groups.append(str(_int(ctx, item, _item(path, i), lo=0)))  # 2015 wrote gids as ints
            continue
        group = _str(ctx, item, _item(path, i))
        if not group:
            ctx.fail(_item(path, i), "must not be empty")
        groups.append(group)
    return tuple(groups)


def _parse_working_dir(ctx: _Context, value: Any, path: str) -> str:
    text = _opt_str(ctx, value, path)
    if not text:
        return "/"
    # ".." is harmless here: chdir happens after pivot_root, inside the container.
    return _clean_abs_path(ctx, text, path, allow_dotdot=True)


def _parse_umask(ctx: _Context, value: Any, path: str) -> int:
    """An octal string ("0022", "077"), or a number as OCI's process.user.umask
    writes it (18 = 0o22).  Unset: 0022, as runc gives; never the caller's."""
    if value is None:
        return DEFAULT_UMASK
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(ctx, value, path, lo=0, hi=0o777)
    text = _str(ctx, value, path)
    if not (1 <= len(text) <= 4 and all(ch in "01234567" for ch in text)) or int(text, 8) > 0o777:
        ctx.fail(path, f'"{text}" is not a umask: give octal digits such as "0022" or "0077"')
    return int(text, 8)


def _parse_oom_score_adj(ctx: _Context, value: Any, path: str) -> int | None:
    return None if value is None else _int(ctx, value, path, lo=-1000, hi=1000)


def _parse_parent_death_signal(ctx: _Context, value: Any, path: str) -> int:
    # 0 = no signal: 2015 configs always write the key, with 0 for "unset".
    return _opt_int(ctx, value, path, default=DEFAULT_PARENT_DEATH_SIGNAL, lo=0, hi=64)


# --- capabilities ------------------------------------------------------------

def _parse_capabilities(ctx: _Context, data: dict) -> CapabilitySets:
    caps = data.get("capabilities")
    mask = data.get("capabilities_mask")
    if caps is not None and mask is not None:
        ctx.fail("capabilities_mask", 'cannot be combined with "capabilities"')
    if mask is not None:
        return _whitelist(_caps_kept_by_mask(ctx, mask, "capabilities_mask"))
    if caps is None:
        return _whitelist(DEFAULT_CAPABILITIES)
    if isinstance(caps, list):
        # From May 2014 a list is a whitelist (the Feb-Mar 2014 drop-list
        # meaning was renamed capabilities_mask and is not guessed at).
        return _whitelist(_cap_list(ctx, caps, "capabilities"))
    if isinstance(caps, dict):
        return _cap_sets(ctx, caps, "capabilities")
    ctx.fail("capabilities", "must be a list or an object")


def _whitelist(caps: list[str] | tuple[str, ...]) -> CapabilitySets:
    # A plain list fills bounding, effective and permitted only.  Inheritable
    # and ambient stay empty: runc used to fill inheritable too, so programs
    # with inheritable file capabilities gained them on execve even for a
    # non-root user (CVE-2022-29162).
    allowed = _sorted_caps(caps)
    return CapabilitySets(bounding=allowed, effective=allowed, permitted=allowed)


def _sorted_caps(caps: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(caps), key=names.CAPABILITIES.__getitem__))


def _cap_name(ctx: _Context, value: Any, path: str) -> str:
    text = _str(ctx, value, path)
    name = text.upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in names.CAPABILITIES:
        ctx.fail(path, f'unknown capability "{text}"')
    return name


def _cap_list(ctx: _Context, value: Any, path: str) -> list[str]:
    return [_cap_name(ctx, item, _item(path, i)) for i, item in enumerate(_opt_list(ctx, value, path))]


def _cap_sets(ctx: _Context, obj: dict, path: str) -> CapabilitySets:
    """The object form; runc writes the keys capitalised (Go field names)."""
    ctx.check_keys(obj, frozenset(CAP_SET_KEYS) | {key.capitalize() for key in CAP_SET_KEYS}, path)
    sets: dict[str, list[str]] = {}
    set_paths: dict[str, str] = {}
    for key in CAP_SET_KEYS:
        value, set_paths[key] = _pick(ctx, [
            (obj, key, _child(path, key)),
            (obj, key.capitalize(), _child(path, key.capitalize())),
        ])
        sets[key] = _cap_list(ctx, value, set_paths[key])
    # capset(2) refuses an effective capability that is not permitted.
    for i, name in enumerate(sets["effective"]):
        if name not in sets["permitted"]:
            ctx.fail(_item(set_paths["effective"], i), f'"{name}" must also be in the permitted set')
    # PR_CAP_AMBIENT_RAISE refuses one that is not both permitted and
    # inheritable.  `runc spec` writes ambient without inheritable and runc
    # drops them unsaid; dropping grants nothing, so nsinit runs such a
    # config too, and says what it dropped.
    raisable = []
    for i, name in enumerate(sets["ambient"]):
        if name in sets["permitted"] and name in sets["inheritable"]:
            raisable.append(name)
        else:
            ctx.warn(_item(set_paths["ambient"], i),
                     f'"{name}" is not raised: an ambient capability must also be permitted and inheritable')
    sets["ambient"] = raisable
    return CapabilitySets(**{key: _sorted_caps(caps) for key, caps in sets.items()})


# The capabilities a 2014 mask can keep: the 2014 table ended at
# CAP_BLOCK_SUSPEND (36); AUDIT_READ, PERFMON, BPF and CHECKPOINT_RESTORE came
# later, and a mask written then never meant to grant them.
_LAST_CAP_2014 = names.CAPABILITIES["CAP_BLOCK_SUSPEND"]
# Never granted by a mask, only by naming it in "capabilities": with it,
# open_by_handle_at(2) opens any host file by inode number (the Shocker
# exploit, why Docker 1.0 moved from a drop list to a whitelist), and 2014
# masks never dropped it because nobody knew.
_NEVER_BY_MASK = "CAP_DAC_READ_SEARCH"


def _caps_kept_by_mask(ctx: _Context, mask: Any, path: str) -> list[str]:
    """2014 capabilities_mask: the 2014 capabilities except the dropped ones
    and DAC_READ_SEARCH; ``_limit_mask_to_caller`` then keeps those the
    caller holds."""
    dropped: set[str] = set()
    asked_for_shocker: list[str] = []  # fields that keep DAC_READ_SEARCH by name
    if isinstance(mask, dict):
        # May 2014: {"MKNOD": true, "SYS_ADMIN": false}; false drops.
        for key, keep in mask.items():
            name = _cap_name(ctx, key, _child(path, key))
            if not _bool(ctx, keep, _child(path, key)):
                dropped.add(name)
            elif name == _NEVER_BY_MASK:
                asked_for_shocker.append(_child(path, key))
    elif isinstance(mask, list):
        for i, item in enumerate(mask):
            if isinstance(item, dict):
                # March 2014: {key, value, enabled}; enabled false drops.
                ctx.check_keys(item, frozenset({"key", "value", "enabled"}), _item(path, i))
                name = _cap_name(ctx, item.get("key"), _child(_item(path, i), "key"))
                if not _opt_bool(ctx, item.get("enabled"), _child(_item(path, i), "enabled")):
                    dropped.add(name)
                elif name == _NEVER_BY_MASK:
                    asked_for_shocker.append(_item(path, i))
            else:
                dropped.add(_cap_name(ctx, item, _item(path, i)))  # a plain drop-list
    else:
        ctx.fail(path, "must be a list or an object")
    for field in asked_for_shocker:
        ctx.warn(field, "DAC_READ_SEARCH is never granted by a mask (open_by_handle_at reads host "
                        'files with it): name it in "capabilities" to grant it')
    dropped.add(_NEVER_BY_MASK)
    return [name for name, bit in names.CAPABILITIES.items() if bit <= _LAST_CAP_2014 and name not in dropped]


def _limit_mask_to_caller(config: Config) -> Config:
    """A mask means "every capability the caller holds, minus these": the
    ones nsinit itself lacks (root here may lack CAP_SYS_RESOURCE, and any
    outer container lacks more) are left out instead of failing capset.

    A new or joined user namespace gives its first process every capability
    in it, whatever the caller held, so there nothing is left out.
    """
    if config.has_namespace("NEWUSER"):
        held_note = "in its user namespace"
        kept = config.capabilities.bounding
    else:
        from nsinit.capabilities import held_by_caller  # only configs with a mask pay for it

        held = held_by_caller()
        held_note = "that nsinit holds"
        kept = tuple(name for name in config.capabilities.bounding if name in held)
    note = (f"capabilities_mask: the capabilities of 2014 (CHOWN to BLOCK_SUSPEND) {held_note}, "
            f"minus those the mask drops and never DAC_READ_SEARCH: {len(kept)} kept")
    return replace(config, capabilities=_whitelist(kept), capabilities_note=note)


# --- rlimits -----------------------------------------------------------------

def _parse_rlimits(ctx: _Context, value: Any, path: str) -> tuple[Rlimit, ...]:
    limits: list[Rlimit] = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        entry_path = _item(path, i)
        obj = _obj(ctx, item, entry_path)
        ctx.check_keys(obj, _RLIMIT_KEYS, entry_path)
        number = _rlimit_type(ctx, obj.get("type"), _child(entry_path, "type"))
        if any(limit.type == number for limit in limits):
            ctx.fail(_child(entry_path, "type"), f'duplicate rlimit "{names.RLIMIT_NAMES[number]}"')
        soft = _rlimit_value(ctx, obj.get("soft"), _child(entry_path, "soft"))
        hard = _rlimit_value(ctx, obj.get("hard"), _child(entry_path, "hard"))
        if hard != names.RLIM_INFINITY and (soft == names.RLIM_INFINITY or soft > hard):
            ctx.fail(_child(entry_path, "soft"), "must not exceed the hard limit")
        limits.append(Rlimit(number, soft, hard))
    return tuple(limits)


def _rlimit_type(ctx: _Context, value: Any, path: str) -> int:
    if value is None:
        ctx.fail(path, "is required")
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in names.RLIMIT_NAMES:
            ctx.fail(path, f"unknown rlimit {value}")
        return value
    text = _str(ctx, value, path)
    name = text.upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in names.RLIMITS:
        ctx.fail(path, f'unknown rlimit "{text}"')
    return names.RLIMITS[name]


def _rlimit_value(ctx: _Context, value: Any, path: str) -> int:
    if value is None:
        ctx.fail(path, "is required")
    if isinstance(value, str) and value.lower() in ("unlimited", "infinity"):
        return names.RLIM_INFINITY
    number = _int(ctx, value, path)
    if number in (-1, _GO_RLIM_INFINITY):
        return names.RLIM_INFINITY
    if number < 0:
        ctx.fail(path, 'must not be negative (use -1 or "unlimited")')
    if number > _GO_RLIM_INFINITY:
        ctx.fail(path, "is too large")
    return number


# --- security modules --------------------------------------------------------

def _check_security_modules(ctx: _Context, config: Config, origin: dict[str, str]) -> None:
    """Labels the kernel cannot apply: failing now beats running unconfined."""
    if config.apparmor_profile and not _apparmor_enabled():
        ctx.report(origin["apparmor_profile"], "AppArmor is not enabled on this kernel")
    for field in ("process_label", "mount_label"):
        if getattr(config, field) and not os.path.isdir(SELINUX_FS):
            ctx.report(origin[field], "SELinux is not enabled on this kernel")
    if config.mount_label and os.path.isdir(SELINUX_FS):
        # Refused rather than ignored: the mounts would carry no context.
        ctx.report(origin["mount_label"], "SELinux mount labels are not supported yet")


def _apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED_FILE, encoding="ascii", errors="replace") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False  # no such file: AppArmor is not built in or not loaded
