"""Seccomp filters from the config files: one typed SeccompConfig from three forms.

- libcontainer's ``seccomp`` in container.json: ``{default_action,
  architectures, syscalls: [{name|names, action, errno_ret, args: [{index,
  value, value_two, op}]}]}`` (also what ``nsinit config`` prints);
- the OCI runtime spec's ``linux.seccomp``: ``{defaultAction,
  defaultErrnoRet, architectures, flags, listenerPath, syscalls: [{names,
  action, errnoRet, args: [{index, value, valueTwo, op}]}]}``;
- Docker's and podman's profile files (OCI's form plus ``archMap`` and rules
  kept or dropped by ``includes``/``excludes`` of capabilities and
  architectures), through ``nsinit.seccomp.profile.from_profile``.

Every error names the field path and nothing is built.  Syscall names are
kept as written: which of them libseccomp knows is decided where the filter
is compiled (nsinit.seccomp), which skips the others with one warning, so a
profile written for a newer kernel still loads (as in runc and crun), and
the loader never loads libseccomp.
"""
from __future__ import annotations

from nsinit.config.model import SeccompArg, SeccompConfig, SeccompRule
from nsinit.errors import ConfigError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

# Every spelling of an action, to nsinit's name.  SCMP_ACT_KILL is the thread
# kill (libseccomp's historical name), as in OCI.
ACTIONS = {
    "kill": "kill", "kill_thread": "kill", "kill_process": "kill_process", "trap": "trap",
    "errno": "errno", "trace": "trace", "allow": "allow", "log": "log", "notify": "notify",
}
ACTIONS.update({f"SCMP_ACT_{key.upper()}": value for key, value in list(ACTIONS.items())})
OPERATORS = ("ne", "lt", "le", "eq", "ge", "gt", "masked_eq")
_OPERATOR_NAMES = {**{op: op for op in OPERATORS}, **{f"SCMP_CMP_{op.upper()}": op for op in OPERATORS}}
# runc's libcontainer configs (configs.Action, configs.Operator) write Go enums as numbers.
_GO_ACTIONS = {1: "kill", 2: "errno", 3: "trap", 4: "allow", 5: "trace", 6: "log", 7: "notify",
               8: "kill", 9: "kill_process"}
_GO_OPERATORS = {1: "eq", 2: "ne", 3: "gt", 4: "ge", 5: "lt", 6: "le", 7: "masked_eq"}
# seccomp(2) SECCOMP_FILTER_FLAG_* as the OCI spec names them.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_ERRNO_ACTIONS = ("errno", "trace")
# What the child calls between loading a filter with a listener and execve.
_NEEDED_TO_NOTIFY = frozenset({"write", "sendmsg", "recvmsg", "close", "socketcall"})
EPERM = 1
MAX_ARG_INDEX = 5            # a syscall has at most six arguments
_U64 = 2**64 - 1
_MAX_ERRNO = 4095            # the kernel's MAX_ERRNO: a larger value is not an error return

# Docker's and libcontainer's architecture spellings, to libseccomp's.
ARCH_ALIASES = {
    "amd64": "x86_64", "x86_64": "x86_64", "386": "x86", "i386": "x86", "i686": "x86", "x86": "x86",
    "x32": "x32", "arm": "arm", "arm64": "aarch64", "aarch64": "aarch64", "mips": "mips",
    "mipsle": "mipsel", "mipsel": "mipsel", "mips64": "mips64", "mips64le": "mipsel64",
    "mipsel64": "mipsel64", "mips64n32": "mips64n32", "mipsel64n32": "mipsel64n32",
    "mips64len32": "mipsel64n32", "ppc": "ppc", "ppc64": "ppc64", "ppc64le": "ppc64le",
    "s390": "s390", "s390x": "s390x", "riscv64": "riscv64", "parisc": "parisc", "parisc64": "parisc64",
}

_LIBCONTAINER_KEYS = frozenset({"default_action", "default_errno_ret", "architectures", "flags",
                                "syscalls", "listener_path", "listener_metadata"})
_LIBCONTAINER_RULE_KEYS = frozenset({"name", "names", "action", "errno_ret", "errnoRet", "args", "comment"})
_LIBCONTAINER_ARG_KEYS = frozenset({"index", "value", "value_two", "op"})
_OCI_KEYS = frozenset({"defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls",
                       "listenerPath", "listenerMetadata"})
_OCI_RULE_KEYS = frozenset({"names", "action", "errnoRet", "args", "comment"})
_OCI_ARG_KEYS = frozenset({"index", "value", "valueTwo", "op"})


class _Reader:
    """One config's source name, its key spellings and its warnings."""

    def __init__(self, source: str, keys: dict[str, str], go_enums: bool = False) -> None:
        self.source = source
        self.keys = keys   # nsinit's key -> this form's spelling
        self.go_enums = go_enums  # actions and operators may be runc's numbers
        self.warnings: list[str] = []

    def fail(self, path: str, problem: str) -> NoReturn:
        raise ConfigError(self.source, path, problem)

    def get(self, obj: dict[str, Any], key: str) -> Any:
        return obj.get(self.keys.get(key, key))

    def path(self, base: str, key: str) -> str:
        return f"{base}.{self.keys.get(key, key)}"

    def check_keys(self, obj: dict[str, Any], known: frozenset[str], path: str) -> None:
        for key in obj:
            if key not in known:
                self.warnings.append(f'{self.source}: unknown key "{path}.{key}" ignored')


_LIBCONTAINER: dict[str, str] = {}  # the field names are nsinit's own
_OCI = {
    "default_action": "defaultAction", "default_errno_ret": "defaultErrnoRet", "errno_ret": "errnoRet",
    "value_two": "valueTwo", "listener_path": "listenerPath",
}


def parse_libcontainer(value: Any, source: str, path: str = "seccomp") -> tuple[SeccompConfig | None, list[str]]:
    """container.json's ``seccomp``; None (no filter) when absent, null or all empty."""
    reader = _Reader(source, _LIBCONTAINER, go_enums=True)
    return _parse(reader, value, path, _LIBCONTAINER_KEYS, _LIBCONTAINER_RULE_KEYS, _LIBCONTAINER_ARG_KEYS)


def parse_oci(value: Any, source: str, path: str = "linux.seccomp") -> tuple[SeccompConfig | None, list[str]]:
    """An OCI config.json's ``linux.seccomp``; None when absent."""
    reader = _Reader(source, _OCI)
    return _parse(reader, value, path, _OCI_KEYS, _OCI_RULE_KEYS, _OCI_ARG_KEYS)


def _parse(reader: _Reader, value: Any, path: str, top_keys: frozenset[str], rule_keys: frozenset[str],
           arg_keys: frozenset[str]) -> tuple[SeccompConfig | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, dict):
        reader.fail(path, "must be an object")
    if not any(v not in (None, "", [], {}, 0) for v in value.values()):
        return None, []  # 2015 configs write every key, zero-valued: no filter
    reader.check_keys(value, top_keys, path)
    default_action = _action(reader, reader.get(value, "default_action"), reader.path(path, "default_action"))
    default_errno = _errno_ret(reader, value, path, default_action, "default_errno_ret")
    rules = [
        _rule(reader, raw, f"{path}.syscalls[{i}]", rule_keys, arg_keys)
        for i, raw in enumerate(_list(reader, value.get("syscalls"), f"{path}.syscalls"))
    ]
    listener = _str(reader, reader.get(value, "listener_path"), reader.path(path, "listener_path"))
    if listener and not listener.startswith("/"):
        reader.fail(reader.path(path, "listener_path"), "must be an absolute path")
    uses_notify = default_action == "notify" or any(rule.action == "notify" for rule in rules)
    if uses_notify and not listener:
        reader.fail(reader.path(path, "listener_path"),
                    'the "notify" action needs a listener: set the path of its unix socket')
    for i, rule in enumerate(rules):
        blocked = [name for name in rule.names if name in _NEEDED_TO_NOTIFY] if rule.action == "notify" else []
        if blocked:
            # Notified before the listener has the fd: the container would hang (runc refuses write).
            reader.fail(f"{path}.syscalls[{i}].names", f'"{blocked[0]}" cannot be notified: nsinit needs it '
                        "to hand the listener its fd")
    if default_action == "notify":
        reader.fail(reader.path(path, "default_action"), '"notify" cannot be the default action '
                    "(the filter would notify on nsinit's own exec)")
    config = SeccompConfig(
        default_action=default_action,
        default_errno_ret=default_errno,
        architectures=_architectures(reader, value.get("architectures"), f"{path}.architectures"),
        flags=_flags(reader, value.get("flags"), f"{path}.flags"),
        syscalls=tuple(rules),
        listener_path=listener,
    )
    return config, reader.warnings


def _rule(reader: _Reader, raw: Any, path: str, rule_keys: frozenset[str],
          arg_keys: frozenset[str]) -> SeccompRule:
    if not isinstance(raw, dict):
        reader.fail(path, "must be an object")
    reader.check_keys(raw, rule_keys, path)
    names: list[str] = []
    if raw.get("name") is not None:  # libcontainer's one name per rule
        names.append(_str(reader, raw["name"], f"{path}.name"))
    listed = _list(reader, raw.get("names"), f"{path}.names")
    if all(isinstance(name, str) for name in listed) and "\x00" not in "".join(listed):
        names.extend(listed)  # the usual case, without a call per name (profiles list hundreds)
    else:
        for i, name in enumerate(listed):
            names.append(_str(reader, name, f"{path}.names[{i}]"))
    if not names or not all(names):
        key = "names" if raw.get("name") is None else "name"
        reader.fail(f"{path}.{key}", "must name at least one syscall" if not names else "must not be empty")
    action = _action(reader, raw.get("action"), f"{path}.action")
    args = tuple(
        _arg(reader, item, f"{path}.args[{i}]", arg_keys)
        for i, item in enumerate(_list(reader, raw.get("args"), f"{path}.args"))
    )
    indexes = [arg.index for arg in args]
    if len(set(indexes)) != len(indexes):
        # libseccomp refuses two comparisons of one argument in a rule (EINVAL).
        reader.fail(f"{path}.args", "compares one argument twice; make it two rules")
    return SeccompRule(tuple(dict.fromkeys(names)), action, _errno_ret(reader, raw, path, action, "errno_ret"), args)


def _arg(reader: _Reader, raw: Any, path: str, arg_keys: frozenset[str]) -> SeccompArg:
    if not isinstance(raw, dict):
        reader.fail(path, "must be an object")
    reader.check_keys(raw, arg_keys, path)
    index = _int(reader, raw.get("index"), f"{path}.index", 0, MAX_ARG_INDEX, required=True)
    value = _int(reader, raw.get("value"), f"{path}.value", 0, _U64)
    value_two = _int(reader, reader.get(raw, "value_two"), reader.path(path, "value_two"), 0, _U64)
    op_raw = raw.get("op")
    if reader.go_enums and type(op_raw) is int and op_raw in _GO_OPERATORS:
        return SeccompArg(index, value, value_two, _GO_OPERATORS[op_raw])
    if not isinstance(op_raw, str) or op_raw not in _OPERATOR_NAMES:
        reader.fail(f"{path}.op", f"unknown operator {_show(op_raw)} (one of {', '.join(OPERATORS)})")
    return SeccompArg(index, value, value_two, _OPERATOR_NAMES[op_raw])


def _action(reader: _Reader, raw: Any, path: str) -> str:
    if reader.go_enums and type(raw) is int and raw in _GO_ACTIONS:
        return _GO_ACTIONS[raw]
    if not isinstance(raw, str) or raw not in ACTIONS:
        if raw is None:
            reader.fail(path, "must be set")
        reader.fail(path, f"unknown action {_show(raw)} (one of {', '.join(sorted(set(ACTIONS.values())))})")
    return ACTIONS[raw]


def _errno_ret(reader: _Reader, obj: dict[str, Any], path: str, action: str, key: str) -> int | None:
    raw = reader.get(obj, key)
    field = reader.path(path, key)
    if raw is None and reader.go_enums and obj.get("errnoRet") is not None:
        raw, field = obj["errnoRet"], f"{path}.errnoRet"  # runc's configs.Syscall spells it so
    if action not in _ERRNO_ACTIONS:
        if raw is not None:
            reader.fail(field, f'is only for the "errno" and "trace" actions, not "{action}"')
        return None
    # EPERM when not set: the OCI spec's default (and runc's).
    return EPERM if raw is None else _int(reader, raw, field, 0, _MAX_ERRNO)


def _architectures(reader: _Reader, raw: Any, path: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(reader, raw, path)):
        name = _str(reader, item, f"{path}[{i}]")
        short = name[len("SCMP_ARCH_"):].lower() if name.startswith("SCMP_ARCH_") else name
        if short not in ARCH_ALIASES:
            reader.fail(f"{path}[{i}]", f'unknown architecture "{name}"')
        out.append(ARCH_ALIASES[short])
    return tuple(dict.fromkeys(out))


def _flags(reader: _Reader, raw: Any, path: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(reader, raw, path)):
        name = _str(reader, item, f"{path}[{i}]")
        if name not in FLAGS:
            reader.fail(f"{path}[{i}]", f'unknown flag "{name}" (one of {", ".join(FLAGS)})')
        out.append(name)
    return tuple(dict.fromkeys(out))


def _list(reader: _Reader, raw: Any, path: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        reader.fail(path, "must be a list")
    return raw


def _str(reader: _Reader, raw: Any, path: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        reader.fail(path, "must be a string")
    if "\x00" in raw:
        reader.fail(path, "must not contain NUL characters")
    return raw


def _int(reader: _Reader, raw: Any, path: str, lo: int, hi: int, *, required: bool = False) -> int:
    if raw is None and not required:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int):
        reader.fail(path, "must be an integer")
    if not lo <= raw <= hi:
        reader.fail(path, f"must be between {lo} and {hi}")
    return raw


def _show(raw: Any) -> str:
    return f'"{raw}"' if isinstance(raw, str) else repr(raw)


# --- the recorded form ---------------------------------------------------------

def to_dict(config: SeccompConfig) -> dict[str, Any]:
    """The libcontainer form, normalised (nsinit config, state.json); parse_libcontainer reads it back."""
    out: dict[str, Any] = {"default_action": config.default_action}
    if config.default_errno_ret is not None:
        out["default_errno_ret"] = config.default_errno_ret
    out["architectures"] = list(config.architectures)
    if config.flags:
        out["flags"] = list(config.flags)
    if config.listener_path:
        out["listener_path"] = config.listener_path
    out["syscalls"] = [_rule_to_dict(rule) for rule in config.syscalls]
    return out


def _rule_to_dict(rule: SeccompRule) -> dict[str, Any]:
    out: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
    if rule.errno_ret is not None:
        out["errno_ret"] = rule.errno_ret
    if rule.args:
        out["args"] = [{"index": a.index, "value": a.value, "value_two": a.value_two, "op": a.op} for a in rule.args]
    return out


def from_dict(data: dict[str, Any]) -> SeccompConfig:
    """What to_dict wrote, without validation (nsinit's own record; see config/recorded.py)."""
    return SeccompConfig(
        default_action=data["default_action"],
        default_errno_ret=data.get("default_errno_ret"),
        architectures=tuple(data.get("architectures", ())),
        flags=tuple(data.get("flags", ())),
        syscalls=tuple(
            SeccompRule(tuple(r["names"]), r["action"], r.get("errno_ret"),
                        tuple(SeccompArg(a["index"], a["value"], a["value_two"], a["op"]) for a in r.get("args", ())))
            for r in data["syscalls"]
        ),
        listener_path=data.get("listener_path", ""),
    )


def to_oci(config: SeccompConfig) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` form (for the bench's runc and crun bundles);
    parse_oci reads it back."""
    def action(name: str) -> str:
        return "SCMP_ACT_KILL" if name == "kill" else f"SCMP_ACT_{name.upper()}"

    out: dict[str, Any] = {"defaultAction": action(config.default_action)}
    if config.default_errno_ret is not None:
        out["defaultErrnoRet"] = config.default_errno_ret
    out["architectures"] = [f"SCMP_ARCH_{arch.upper()}" for arch in config.architectures]
    if config.flags:
        out["flags"] = list(config.flags)
    if config.listener_path:
        out["listenerPath"] = config.listener_path
    out["syscalls"] = []
    for rule in config.syscalls:
        item: dict[str, Any] = {"names": list(rule.names), "action": action(rule.action)}
        if rule.errno_ret is not None:
            item["errnoRet"] = rule.errno_ret
        if rule.args:
            item["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two,
                             "op": f"SCMP_CMP_{a.op.upper()}"} for a in rule.args]
        out["syscalls"].append(item)
    return out
