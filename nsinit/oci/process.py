"""``nsinit-runc exec``'s process: a runtime-spec Process JSON, or runc's flags.

conmon and containerd's shim write the process to a file and pass
``--process FILE`` (oci-clients.md); people type the flag form (``exec ID
CMD... --cwd -e -u -g -t``).  Both become one nsinit ``Process``, joined
into the container by the library (``Container.join``).

The JSON is read by config.json's own process parsers (nsinit/oci/spec.py):
a capability, a limit or a umask means the same thing in both files.  As
runc's exec (libcontainer's ``newInitConfig``): args, cwd, user,
additionalGids are the process's own; capabilities, rlimits, noNewPrivileges,
apparmorProfile, selinuxLabel, umask and oomScoreAdj, when absent, are the
container's; ``env`` is added to the container's (engines send the whole
environment, so the result is theirs).  What nsinit cannot apply to a joined
process is an error naming its JSON path, never dropped: the fields
config.json refuses too (ioPriority, scheduler, execCPUAffinity).
"""
from __future__ import annotations

from nsinit.config.parse import _Context, _check_every_string, _opt_bool, _opt_str, _read_json
from nsinit.config.process import _parse_oom_score_adj, _parse_rlimits, _parse_umask
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import CapabilitySets
    from nsinit.container import Process

SOURCE = "process.json"
# Fields the Process JSON has and nsinit has no implementation for.
_UNSUPPORTED = ("ioPriority", "scheduler", "execCPUAffinity")


def load_process_file(path: str) -> Process:
    """``--process FILE``: errors name the file and the field."""
    return parse_process(_read_json(path, path), path)


def parse_process(data: Any, source: str = SOURCE) -> Process:
    """A decoded Process JSON as an nsinit Process (the one mapping from
    runtime-spec's process to nsinit's: keep every field here)."""
    from nsinit.container import Process
    from nsinit.oci import spec

    ctx = _Context(source, "/")
    if not isinstance(data, dict):
        ctx.fail("", "must be a JSON object (a runtime-spec Process)")
    _check_every_string(ctx, data)
    ctx.check_keys(data, spec._PROCESS_KEYS, "")
    for key in _UNSUPPORTED:
        spec._refuse_if_set(ctx, data, key, "")
    user = ctx.collect(spec._section, data, "user", "user", spec._USER_KEYS) or {}
    has = data.get
    process = Process(
        args=list(ctx.collect(spec._parse_args, has("args"), "args") or ()),
        env=list(ctx.collect(spec._parse_env, has("env"), "env") or ()),
        user=ctx.collect(spec._parse_user, user, "user"),
        cwd=ctx.collect(spec._parse_cwd, has("cwd"), "cwd"),
        tty=ctx.collect(_opt_bool, has("terminal"), "terminal"),
        console_size=ctx.collect(spec._parse_console_size, has("consoleSize"), "consoleSize"),
        additional_groups=list(ctx.collect(spec._parse_gids, user.get("additionalGids"), "user.additionalGids") or ()),
        capabilities=None if has("capabilities") is None else ctx.collect(
            spec._parse_capabilities, has("capabilities"), "capabilities"),
        rlimits=None if has("rlimits") is None else ctx.collect(_parse_rlimits, has("rlimits"), "rlimits"),
        no_new_privileges=None if has("noNewPrivileges") is None else ctx.collect(
            _opt_bool, has("noNewPrivileges"), "noNewPrivileges"),
        apparmor_profile=ctx.collect(_opt_str, has("apparmorProfile"), "apparmorProfile") or None,
        label=ctx.collect(_opt_str, has("selinuxLabel"), "selinuxLabel") or None,
        umask=None if user.get("umask") is None else ctx.collect(_parse_umask, user["umask"], "user.umask"),
        oom_score_adj=ctx.collect(_parse_oom_score_adj, has("oomScoreAdj"), "oomScoreAdj"),
    )
    ctx.raise_errors()
    _check_labels(ctx, process)
    ctx.raise_errors()
    return process


def _check_labels(ctx: _Context, process: Process) -> None:
    """An LSM label the kernel cannot apply fails now, as in config.json."""
    from nsinit.config.process import _check_security_modules

    class Labels:  # the three fields _check_security_modules reads
        apparmor_profile = process.apparmor_profile or ""
        process_label = process.label or ""
        mount_label = ""

    _check_security_modules(ctx, Labels, {  # type: ignore[arg-type]
        "apparmor_profile": "apparmorProfile", "process_label": "selinuxLabel", "mount_label": ""})


def process_from_flags(args: dict[str, Any], capabilities: CapabilitySets) -> Process:
    """runc's flag form: the container's process, changed by the flags.
    ``capabilities`` are the container's, which --cap adds to."""
    from nsinit.container import Process

    command = args["COMMAND"][1:] if args["COMMAND"][:1] == ["--"] else args["COMMAND"]
    if not command:
        raise NsinitError("", "give a command, or --process FILE")
    user = args["--user"]
    if user is not None:
        _check_ids(user.split(":", 1), "--user", 'uid[:gid], numeric, such as "1000" or "1000:1000"')
        if ":" not in user:
            user = f"{user}:0"
    _check_ids(args["--additional-gids"], "--additional-gids", "a numeric gid")
    cwd = args["--cwd"]
    if cwd is not None and not cwd.startswith("/"):
        raise NsinitError("", f'--cwd: "{cwd}" must be an absolute path')
    for entry in args["--env"]:
        if "=" not in entry or entry.startswith("="):
            raise NsinitError("", f'--env: "{entry}" is not KEY=VALUE')
    return Process(
        args=list(command), env=list(args["--env"]), user=user, cwd=cwd,
        tty=True if args["--tty"] else None,
        additional_groups=list(args["--additional-gids"]) or None,
        capabilities=_with_added_caps(capabilities, args["--cap"]) if args["--cap"] else None,
        no_new_privileges=True if args["--no-new-privs"] else None,
        apparmor_profile=args["--apparmor"], label=args["--process-label"],
    )


def _check_ids(values: list[str], option: str, wanted: str) -> None:
    for value in values:
        if not value.isdigit() or int(value) > 2**32 - 2:
            raise NsinitError("", f'{option}: "{value}" is not {wanted}')


def _with_added_caps(capabilities: CapabilitySets, added: list[str]) -> CapabilitySets:
    """runc's --cap: into every set but ambient, by name with or without CAP_."""
    from nsinit.config.names import CAPABILITIES
    from nsinit.record import replace

    wanted = []
    for name in added:
        full = name.upper() if name.upper().startswith("CAP_") else f"CAP_{name.upper()}"
        if full not in CAPABILITIES:
            raise NsinitError("", f'--cap: "{name}" is not a capability')
        wanted.append(full)
    return replace(capabilities, **{key: tuple(dict.fromkeys((*getattr(capabilities, key), *wanted)))
                                    for key in ("bounding", "effective", "inheritable", "permitted")})


def write_pid_file(path: str, pid: int) -> None:
    """Bare decimal, no newline (go-runc reads it with strconv.Atoi),
    written whole: a reader never sees half of it."""
    import os

    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never made
        raise NsinitError("", f"--pid-file {path}: {err.strerror or err}") from None


# What podman reads in a runtime's error (libpod/oci_util.go): these words map
# to exit 127 and 126.
_ENGINE_WORDS = {127: "executable file not found in $PATH: no such file or directory",
                 126: "permission denied"}


def as_engines_read_it(err: NsinitError) -> NsinitError:
    """nsinit's error with the words podman matches to tell 127 from 126."""
    words = _ENGINE_WORDS.get(err.exit_code)
    if words is None or words in err.message:  # as written: podman's patterns are lowercase
        return err
    return NsinitError(err.step, f"{err.message} ({words})", err.exit_code)
