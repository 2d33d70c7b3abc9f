"""What both config loaders share: reading the file, the error-collecting
context, field paths and the typed field readers.

container.json (``nsinit.config.load``) and an OCI config.json
(``nsinit.oci.spec``) are read through these, and so are the part parsers
(``namespaces``, ``mounts``, ``networks``, ``cgroups``, ``process``) both use:
an error names the file and the field path that is wrong
(``mounts[2].destination: must be an absolute path``), ``ctx.collect`` keeps
one field's error and reads the others, and a JSON null is absent everywhere.

On the start-up path of every container: small stdlib modules only.
"""
from __future__ import annotations

import os

from nsinit import jsontext
from nsinit.errors import ConfigError, ConfigErrors

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn


# --- reading -----------------------------------------------------------------

# Far above any real config (the 2015 ones with every key are ~10 KiB): a bound
# so that /dev/zero or a runaway generator cannot eat the memory.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _read_json(path: str, source: str) -> Any:
    from nsinit.regularfile import FileRefused, read_regular_file

    try:
        raw = read_regular_file(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(source, "", f'{path}: No such file or directory (write one with "nsinit spec", '
                                      'or make a rootfs with one: "nsinit rootfs DIR")') from None
    except FileRefused as err:
        raise ConfigError(source, "", str(err)) from None
    except OSError as err:
        raise ConfigError(source, "", f"{path}: {err.strerror or err}") from None
    try:
        return jsontext.loads(raw)
    except UnicodeDecodeError:
        raise ConfigError(source, "", "invalid JSON: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(source, "", "invalid JSON: nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError, without importing json to name it
        where = f" at line {err.lineno} column {err.colno}" if hasattr(err, "lineno") else ""  # type: ignore[attr-defined]
        raise ConfigError(source, "", f"invalid JSON{where}: {getattr(err, 'msg', err)}") from None


def _check_every_string(ctx: _Context, data: dict) -> None:
    """Every key and string value of the file, once, before any field is read.

    Strings end up in C calls (sethostname, mount, execve) and in files
    (sysctl, cgroups): a NUL would silently cut them short, and a lone
    surrogate (valid JSON: "\\ud800") cannot be encoded at all and ended in a
    UnicodeEncodeError traceback (issue 15).  Every bad string is listed
    (an object's keys before its values); then nothing else is checked, as the field parsers would
    meet the same strings.  Iterative: the nesting depth is whatever the
    JSON scanner accepted.
    """
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            children = [(item, _child(path, key)) for key, item in value.items()
                        if _text_ok(ctx, key, path or "(top level)", what="key ")]
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(item, _item(path, i)) for i, item in enumerate(value)]))
        elif isinstance(value, str):
            _text_ok(ctx, value, path)
    ctx.raise_errors()


def _text_ok(ctx: _Context, text: str, path: str, what: str = "") -> bool:
    """False, with the error reported, for a string no C call can take."""
    if "\x00" in text:
        ctx.report(path, f"{what}must not contain NUL characters")
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = ord(text[err.start])
        ctx.report(path, f"{what}is not valid Unicode: a lone surrogate U+{bad:04X} cannot be encoded as UTF-8")
        return False
    return True


# --- helpers: context, field paths, types ------------------------------------

class _Context:
    """Where errors and warnings go while one config is parsed."""

    def __init__(self, source: str, base_dir: str) -> None:
        self.source = source
        self.base_dir = base_dir
        self.warnings: list[str] = []
        self.errors: list[ConfigError] = []
        self.default_rootfs: str | None = None

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ConfigError(self.source, field, problem)

    def report(self, field: str, problem: str) -> None:
        """An error that does not stop the checks of other fields."""
        self.errors.append(ConfigError(self.source, field, problem))

    def collect(self, parse: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``parse(self, *args)``, or None with its error kept: the parse of
        one field stops at its first error, the other fields are still read."""
        try:
            return parse(self, *args, **kwargs)
        except ConfigError as err:
            self.errors.append(err)
            return None

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)

    def warn(self, field: str, problem: str) -> None:
        self.warnings.append(f"{self.source}: {field}: {problem}")

    def check_keys(self, obj: dict, known: frozenset[str], path: str) -> None:
        for key in obj:
            if key not in known:
                hint = _closest_key(key, known)
                self.warnings.append(f'{self.source}: unknown key "{_child(path, key)}" ignored'
                                     + (f" (did you mean {hint}?)" if hint else ""))


def _closest_key(key: str, known: frozenset[str]) -> str | None:
    """The known key a typo most likely meant ("hostnme" -> "hostname")."""
    import difflib  # only on this path: most configs have no unknown key

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _str(ctx: _Context, value: Any, path: str) -> str:
    if not isinstance(value, str):
        ctx.fail(path, "must be a string")
    # Every string ends up in a C call (mount, execve, sethostname) that would
    # silently truncate it at a NUL.
    if "\x00" in value:
        ctx.fail(path, "must not contain NUL characters")
    return value


def _int(ctx: _Context, value: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
    # bool is an int subclass in Python but never one in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(path, "must be an integer")
    if lo is not None and hi is not None and not lo <= value <= hi:
        ctx.fail(path, f"must be between {lo} and {hi}")
    if lo is not None and value < lo:
        ctx.fail(path, f"must be at least {lo}")
    if hi is not None and value > hi:
        ctx.fail(path, f"must be at most {hi}")
    return value


def _bool(ctx: _Context, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        ctx.fail(path, "must be true or false")
    return value


def _list(ctx: _Context, value: Any, path: str) -> list:
    if not isinstance(value, list):
        ctx.fail(path, "must be a list")
    return value


def _obj(ctx: _Context, value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        ctx.fail(path, "must be an object")
    return value


# JSON null counts as absent everywhere: Go wrote nil slices, maps and
# pointers as null, meaning "not set".
def _opt_str(ctx: _Context, value: Any, path: str, default: str = "") -> str:
    return default if value is None else _str(ctx, value, path)


def _opt_int(
    ctx: _Context, value: Any, path: str, default: int = 0, lo: int | None = None, hi: int | None = None
) -> int:
    return default if value is None else _int(ctx, value, path, lo, hi)


def _opt_bool(ctx: _Context, value: Any, path: str, default: bool = False) -> bool:
    return default if value is None else _bool(ctx, value, path)


def _opt_list(ctx: _Context, value: Any, path: str) -> list:
    return [] if value is None else _list(ctx, value, path)


def _pick(ctx: _Context, candidates: list[tuple[dict | None, str, str]]) -> tuple[Any, str]:
    """The value of whichever synonym key is present, and its field path.

    The eras spell one setting differently (readonly_fs, readonlyfs,
    mount_config.readonly_fs); two spellings with different values is an error
    rather than a silent choice.
    """
    found: tuple[Any, str] | None = None
    for obj, key, path in candidates:
        value = None if obj is None else obj.get(key)
        if value is None:
            continue
        if found is None:
            found = (value, path)
        elif value != found[0]:
            ctx.fail(path, f'conflicts with "{found[1]}"')
    return found if found is not None else (None, candidates[0][2])


def _is_set(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_is_set(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return bool(value)


def _warn_if_set(ctx: _Context, obj: dict, key: str, path: str) -> None:
    if _is_set(obj.get(key)):
        ctx.warn(_child(path, key), "not supported yet, ignored")


def _clean_abs_path(ctx: _Context, value: Any, path: str, *, allow_dotdot: bool = False) -> str:
    """An absolute path, normalised: no trailing slash, no "." or "//"."""
    text = _str(ctx, value, path)
    if not text.startswith("/"):
        ctx.fail(path, "must be an absolute path")
    if not allow_dotdot and ".." in text.split("/"):
        ctx.fail(path, 'must not contain ".."')
    # normpath keeps a leading "//" (POSIX leaves it implementation-defined).
    return "/" + os.path.normpath(text).lstrip("/")
