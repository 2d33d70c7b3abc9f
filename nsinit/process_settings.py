"""A Process's own settings over the container's config (the seed's Process fields).

libcontainer's Process carries AdditionalGroups, Capabilities,
AppArmorProfile, Label, NoNewPrivileges and Rlimits; each one set replaces
the config's value for that process alone, the init's (create, run) or a
joined one's (join), and nothing else: the container's recorded config, the
one every later join starts from, stays as it was created.  Here that is a
copy of the config with those fields replaced (``process_config``), which
the child's steps read as they read any config: ChildPlan.config.

The values are checked here, in the supervisor before clone, by the
loader's own parsers (nsinit/config/process.py): a bad one is one line naming the field, and a security
setting the kernel cannot apply (an AppArmor profile without AppArmor, a
label without SELinux) is refused, never dropped.

Extra files and explicit stdio are fds of the caller's: the child puts the
extra ones on 3, 4, ... (``place_extra_files``, the rest is closed as
always) and dups the std ones onto 0-2.  None of them is closed in the
caller, except the child ends of the pipes ``Process.initialize_io`` made.
"""
from __future__ import annotations

import os

from nsinit.config.model import CapabilitySets, Rlimit
from nsinit.errors import NsinitError
from nsinit.record import replace

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import Config
    from nsinit.config.parse import _Context
    from nsinit.container import Process

STEP = "process"
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
_STD_NAMES = ("stdin", "stdout", "stderr")


def overrides_config(process: Process) -> bool:
    """Whether ``process`` sets anything of the config's (cheap: no import)."""
    return any(value is not None for value in (
        process.additional_groups, process.capabilities, process.apparmor_profile, process.label,
        process.no_new_privileges, process.rlimits, process.umask, process.oom_score_adj))


def process_config(config: Config, process: Process) -> Config:
    """``config`` with what ``process`` sets in place of its own values,
    read by the config loader's own rules (nsinit/config/process.py)."""
    from nsinit.config.parse import _Context

    ctx = _Context(STEP, "/")
    changes: dict[str, Any] = {}
    if process.additional_groups is not None:
        changes["additional_groups"] = parse_groups(ctx, process.additional_groups)
    if process.capabilities is not None:
        changes["capabilities"] = parse_capabilities(ctx, process.capabilities)
    if process.no_new_privileges is not None:
        if not isinstance(process.no_new_privileges, bool):
            raise _bad("no_new_privileges", "must be True or False")
        changes["no_new_privileges"] = process.no_new_privileges
    if process.rlimits is not None:
        changes["rlimits"] = parse_rlimits(ctx, process.rlimits)
    if process.umask is not None:  # an OCI exec's (nsinit/oci/process.py: parsed there)
        changes["umask"] = process.umask
    if process.oom_score_adj is not None:
        changes["oom_score_adj"] = process.oom_score_adj
    # An empty profile or label is no setting (runc's rule): it never
    # takes away the one the config has.
    if process.apparmor_profile is not None and process.apparmor_profile != "":
        changes["apparmor_profile"] = check_apparmor(config, process.apparmor_profile)
    if process.label is not None and process.label != "":
        changes["process_label"] = check_label(config, process.label)
    if ctx.warnings:  # an unknown key: a typo in a program is an error, not a warning
        raise NsinitError(STEP, ctx.warnings[0].removeprefix(f"{STEP}: ").replace(" ignored", ""))
    return replace(config, **changes)


def _bad(field: str, problem: str) -> NsinitError:
    return NsinitError(STEP, f"{field}: {problem}")


def parse_groups(ctx: _Context, groups: Any) -> tuple[str, ...]:
    from nsinit.config.process import _parse_groups

    if not isinstance(groups, (list, tuple)):
        raise _bad("additional_groups", "must be a list of group names or gids")
    return _parse_groups(ctx, list(groups), "additional_groups")


def parse_capabilities(ctx: _Context, caps: Any) -> CapabilitySets:
    """A CapabilitySets, a list (the bounding, effective and permitted sets:
    inheritable and ambient stay empty, CVE-2022-29162), or a dict of sets
    by name (the seed's configs.Capabilities; a missing set is empty)."""
    from nsinit.config.process import _cap_list, _cap_sets, _whitelist

    if isinstance(caps, CapabilitySets):
        caps = {name: list(getattr(caps, name)) for name in CAP_SETS}
    if isinstance(caps, (list, tuple)):
        return _whitelist(_cap_list(ctx, list(caps), "capabilities"))
    if not isinstance(caps, dict):
        raise _bad("capabilities", "must be a list of names, a dict of sets or a CapabilitySets")
    return _cap_sets(ctx, {key: list(value) if isinstance(value, tuple) else value for key, value in caps.items()},
                     "capabilities")


def parse_rlimits(ctx: _Context, rlimits: Any) -> tuple[Rlimit, ...]:
    """Rlimit records, (type, soft, hard) tuples or {"type", "soft", "hard"}
    dicts; the type a number or a name ("RLIMIT_NOFILE", "nofile"); -1 is
    unlimited.  Replaces the config's whole list (runc's rule for exec)."""
    from nsinit.config.process import _parse_rlimits

    if not isinstance(rlimits, (list, tuple)):
        raise _bad("rlimits", "must be a list")
    items = [{"type": item.type, "soft": item.soft, "hard": item.hard} if isinstance(item, Rlimit)
             else dict(zip(("type", "soft", "hard"), item)) if isinstance(item, tuple) and len(item) == 3
             else item for item in rlimits]
    return _parse_rlimits(ctx, items, "rlimits")


def check_apparmor(config: Config, profile: Any) -> str:
    from nsinit.config.process import _apparmor_enabled

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
    from nsinit.config.process import SELINUX_FS

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
    """The extra files' fds; a terminal is refused, as for stdio (std_fds)."""
    fds = []
    for i, value in enumerate(process.extra_files):
        fd = fd_of(value, f"extra_files[{i}]")
        if _isatty(fd):
            raise _bad(f"extra_files[{i}]", f"fd {fd} is a terminal: a container never gets a host terminal")
        fds.append(fd)
    return fds


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
