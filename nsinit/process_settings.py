"""A Process's own settings over the container's config (the seed's Process fields).

libcontainer's Process carries AdditionalGroups, Capabilities,
AppArmorProfile, Label, NoNewPrivileges and Rlimits; each one set replaces
the config's value for that process alone, the init's (create, run) or a
joined one's (join), and nothing else: the container's recorded config, the
one every later join starts from, stays as it was created.  Here that is a
copy of the config with those fields replaced (``process_config``), which
the child's steps read as they read any config: ChildPlan.config.

The values are checked here, in the supervisor before clone, with the
loader's rules: a bad one is one line naming the field, and a security
setting the kernel cannot apply (an AppArmor profile without AppArmor, a
label without SELinux) is refused, never dropped.

Extra files and explicit stdio are fds of the caller's: the child puts the
extra ones on 3, 4, ... (``place_extra_files``, the rest is closed as
always) and dups the std ones onto 0-2.  None of them is closed in the
caller, except the child ends of the pipes ``Process.initialize_io`` made.
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.config.model import CapabilitySets, Rlimit
from nsinit.errors import NsinitError
from nsinit.record import replace

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import Config
    from nsinit.container import Process

STEP = "process"
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
APPARMOR_ENABLED_FILE = "/sys/module/apparmor/parameters/enabled"
SELINUX_FS = "/sys/fs/selinux"
_STD_NAMES = ("stdin", "stdout", "stderr")


def overrides_config(process: Process) -> bool:
    """Whether ``process`` sets anything of the config's (cheap: no import)."""
    return any(value is not None for value in (
        process.additional_groups, process.capabilities, process.apparmor_profile, process.label,
        process.no_new_privileges, process.rlimits))


def process_config(config: Config, process: Process) -> Config:
    """``config`` with what ``process`` sets in place of its own values."""
    changes: dict[str, Any] = {}
    if process.additional_groups is not None:
        changes["additional_groups"] = parse_groups(process.additional_groups)
    if process.capabilities is not None:
        changes["capabilities"] = parse_capabilities(process.capabilities)
    if process.no_new_privileges is not None:
        if not isinstance(process.no_new_privileges, bool):
            raise _bad("no_new_privileges", "must be True or False")
        changes["no_new_privileges"] = process.no_new_privileges
    if process.rlimits is not None:
        changes["rlimits"] = parse_rlimits(process.rlimits)
    if process.apparmor_profile is not None:
        changes["apparmor_profile"] = check_apparmor(config, process.apparmor_profile)
    if process.label is not None:
        changes["process_label"] = check_label(config, process.label)
    return replace(config, **changes)


def _bad(field: str, problem: str) -> NsinitError:
    return NsinitError(STEP, f"{field}: {problem}")


def parse_groups(groups: Any) -> tuple[str, ...]:
    if isinstance(groups, (str, bytes)) or not isinstance(groups, (list, tuple)):
        raise _bad("additional_groups", "must be a list of group names or gids")
    out = []
    for i, group in enumerate(groups):
        if isinstance(group, int) and not isinstance(group, bool) and group >= 0:
            out.append(str(group))
        elif isinstance(group, str) and group:
            out.append(group)
        else:
            raise _bad(f"additional_groups[{i}]", f"{group!r} is not a group name or gid")
    return tuple(out)


def parse_capabilities(caps: Any) -> CapabilitySets:
    """A CapabilitySets, a list (the bounding, effective and permitted sets:
    inheritable and ambient stay empty, CVE-2022-29162), or a dict of sets
    by name (the seed's configs.Capabilities; missing sets are empty)."""
    if isinstance(caps, CapabilitySets):
        sets = {name: list(getattr(caps, name)) for name in CAP_SETS}
    elif isinstance(caps, (list, tuple)):
        allowed = _cap_names(caps, "capabilities")
        sets = {"bounding": allowed, "effective": allowed, "permitted": allowed,
                "inheritable": [], "ambient": []}
    elif isinstance(caps, dict):
        unknown = sorted(set(map(str, caps)) - set(CAP_SETS) - {name.capitalize() for name in CAP_SETS})
        if unknown:
            raise _bad("capabilities", f'unknown set "{unknown[0]}" (the sets: {", ".join(CAP_SETS)})')
        sets = {name: _cap_names(caps.get(name, caps.get(name.capitalize(), [])), f"capabilities.{name}")
                for name in CAP_SETS}
    else:
        raise _bad("capabilities", "must be a list of names, a dict of sets or a CapabilitySets")
    sets = {name: [_cap_name(cap, f"capabilities.{name}") for cap in caps_] for name, caps_ in sets.items()}
    # capset(2) refuses an effective capability that is not permitted, and
    # PR_CAP_AMBIENT_RAISE one that is not both permitted and inheritable.
    for cap in sets["effective"]:
        if cap not in sets["permitted"]:
            raise _bad("capabilities.effective", f'"{cap}" must also be in the permitted set')
    for cap in sets["ambient"]:
        if cap not in sets["permitted"] or cap not in sets["inheritable"]:
            raise _bad("capabilities.ambient", f'"{cap}" must also be in the permitted and inheritable sets')
    return CapabilitySets(**{name: tuple(sorted(set(caps_), key=names.CAPABILITIES.__getitem__))
                             for name, caps_ in sets.items()})


def _cap_names(value: Any, field: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _bad(field, "must be a list of capability names")
    return [_cap_name(item, field) for item in value]


def _cap_name(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _bad(field, f"{value!r} is not a capability name")
    name = value.upper()
    name = name if name.startswith("CAP_") else "CAP_" + name
    if name not in names.CAPABILITIES:
        raise _bad(field, f'unknown capability "{value}"')
    return name


def parse_rlimits(rlimits: Any) -> tuple[Rlimit, ...]:
    """Rlimit records, (type, soft, hard) tuples or {"type", "soft", "hard"}
    dicts; the type a number or a name ("RLIMIT_NOFILE", "nofile"); -1 is
    unlimited.  Replaces the config's whole list (runc's rule for exec)."""
    if not isinstance(rlimits, (list, tuple)):
        raise _bad("rlimits", "must be a list")
    out: list[Rlimit] = []
    for i, item in enumerate(rlimits):
        field = f"rlimits[{i}]"
        kind: Any
        soft: Any
        hard: Any
        if isinstance(item, Rlimit):
            kind, soft, hard = item.type, item.soft, item.hard
        elif isinstance(item, dict):
            kind, soft, hard = item.get("type"), item.get("soft"), item.get("hard")
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            kind, soft, hard = item
        else:
            raise _bad(field, "must be an Rlimit, a (type, soft, hard) tuple or a dict")
        number = _rlimit_type(kind, field)
        if any(limit.type == number for limit in out):
            raise _bad(field, f'duplicate rlimit "{names.RLIMIT_NAMES[number]}"')
        soft, hard = _rlimit_value(soft, f"{field}.soft"), _rlimit_value(hard, f"{field}.hard")
        if hard != names.RLIM_INFINITY and (soft == names.RLIM_INFINITY or soft > hard):
            raise _bad(f"{field}.soft", "must not exceed the hard limit")
        out.append(Rlimit(number, soft, hard))
    return tuple(out)


def _rlimit_type(value: Any, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in names.RLIMIT_NAMES:
            raise _bad(f"{field}.type", f"unknown rlimit {value}")
        return value
    if not isinstance(value, str):
        raise _bad(f"{field}.type", "must be an RLIMIT_* name or number")
    name = value.upper()
    name = name if name.startswith("RLIMIT_") else "RLIMIT_" + name
    if name not in names.RLIMITS:
        raise _bad(f"{field}.type", f'unknown rlimit "{value}"')
    return names.RLIMITS[name]


def _rlimit_value(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(field, "must be a number (-1: unlimited)")
    if value == -1 or value == 2**64 - 1:   # Go's RLIM_INFINITY, as the seed writes it
        return names.RLIM_INFINITY
    if value < 0 or value >= 2**63:
        raise _bad(field, "must be -1 (unlimited) or between 0 and 2**63-1")
    return value


def check_apparmor(config: Config, profile: Any) -> str:
    if not isinstance(profile, str):
        raise _bad("apparmor_profile", "must be a string")
    if profile:
        if not _apparmor_enabled():
            raise _bad("apparmor_profile", f'"{profile}": AppArmor is not enabled on this kernel')
        _need_own_procfs(config, "apparmor_profile")
    return profile


def check_label(config: Config, label: Any) -> str:
    """The SELinux label the command is exec'd into; without SELinux it
    could only be ignored, so it is refused."""
    if not isinstance(label, str):
        raise _bad("label", "must be a string")
    if label:
        if not os.path.isdir(SELINUX_FS):
            raise _bad("label", f'"{label}": SELinux is not enabled on this kernel (no {SELINUX_FS})')
        _need_own_procfs(config, "label")
    return label


def _need_own_procfs(config: Config, field: str) -> None:
    # Written to /proc/self/attr: without nsinit's procfs on the container's
    # /proc, a regular file of the image's would take the write (issue 15).
    if not config.has_own_procfs():
        raise _bad(field, "needs the container's own procfs on /proc (a mount namespace with a proc mount)")


def _apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED_FILE, encoding="ascii", errors="replace") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


# --- fds: extra files and stdio ---------------------------------------------

def fd_of(value: Any, field: str) -> int:
    """An fd from an int or a file object (anything with fileno())."""
    if isinstance(value, int) and not isinstance(value, bool):
        fd = value
    elif hasattr(value, "fileno"):
        try:
            fd = value.fileno()
        except (OSError, ValueError) as err:
            raise _bad(field, f"has no usable fd ({err})") from None
    else:
        raise _bad(field, f"{value!r} is neither an fd nor a file object")
    try:
        os.fstat(fd)
    except OSError as err:
        raise _bad(field, f"fd {fd}: {err.strerror}") from None
    return fd


def extra_fds(process: Process) -> list[int]:
    return [fd_of(value, f"extra_files[{i}]") for i, value in enumerate(process.extra_files)]


def std_fds(process: Process) -> tuple[int | None, int | None, int | None]:
    """The fds the process's stdin, stdout and stderr name, None where it
    names none (or the caller's own 0, 1, 2: the default, relayed as always
    when it is a terminal).  Any other terminal is refused: the container
    must never hold a host terminal (TIOCSTI), and only nsinit's own 0-2
    are relayed."""
    given: list[int | None] = []
    for number, (name, value) in enumerate(zip(_STD_NAMES, (process.stdin, process.stdout, process.stderr))):
        fd = None if value is None else fd_of(value, name)
        if fd == number:
            fd = None
        if fd is not None and _isatty(fd):
            raise _bad(name, f"fd {fd} is a terminal: a container never gets a host terminal "
                             "(give a pipe or a file, or use tty)")
        given.append(fd)
    return given[0], given[1], given[2]


def refuse_with_tty(given: tuple[int | None, int | None, int | None] | None) -> None:
    if given is not None and any(fd is not None for fd in given):
        raise _bad("stdin/stdout/stderr", "cannot be given with a tty: the pty is the process's stdio")


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
