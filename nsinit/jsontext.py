"""JSON for the start-up path, through the C accelerator under the json package.

Why not ``import json``: json.decoder and json.encoder compile regular
expressions when imported, which imports ``re``, which imports ``enum``,
``functools`` and ``collections`` -- about 8 ms of every ``nsinit exec``
here, more than the rest of a join's own work.  ``_json`` is the C module the
json package itself calls for every ``json.loads``; we call it the same way:

- ``loads`` runs the very scanner ``json.loads`` runs, made with the same
  settings as json's default decoder.  Anything it does not accept (a
  syntax error, a BOM, odd bytes) is handed to the real ``json.loads``, so
  errors read exactly as json's own and nothing is parsed differently;
- ``dumps`` writes what ``json.dumps(value, indent=..., sort_keys=...)``
  writes, escaping strings with json's own C function.  It only has to
  handle nsinit's own data: dicts with string keys, lists, tuples, strings,
  ints, floats, booleans and None.

A unit test compares both with the json package on many values.
"""
from __future__ import annotations

import _json

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_NO_KEY = object()  # marks the entries of an array


class _DecoderSettings:
    """What the C scanner reads from its context: json.JSONDecoder()'s defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan = _json.make_scanner(_DecoderSettings())  # type: ignore[arg-type]  # it reads these attributes


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``: same result, same errors."""
    document = text
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8")
        except UnicodeDecodeError:
            return _stdlib_loads(text)
    start = _skip_whitespace(document, 0)
    try:
        value, end = _scan(document, start)
    except Exception:  # noqa: BLE001 - every failure is json.loads's to describe
        return _stdlib_loads(text)
    if _skip_whitespace(document, end) != len(document):
        return _stdlib_loads(text)  # "Extra data"
    return value


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index


def _stdlib_loads(text: str | bytes) -> Any:
    import json

    return json.loads(text)


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """``json.dumps(value, indent=indent, sort_keys=sort_keys)`` for nsinit's data."""
    parts: list[str] = []
    _write(value, parts, indent, sort_keys, 0)
    return "".join(parts)


def _write(value: Any, out: list[str], indent: int | None, sort_keys: bool, level: int) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value))
    elif isinstance(value, dict):
        _write_object(value, out, indent, sort_keys, level)
    elif isinstance(value, (list, tuple)):
        _write_array(value, out, indent, sort_keys, level)
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode_string = _json.encode_basestring_ascii


def _write_object(value: dict[Any, Any], out: list[str], indent: int | None, sort_keys: bool, level: int) -> None:
    items = sorted(value.items()) if sort_keys else value.items()
    members = [(_encode_string(key if type(key) is str else _key_text(key)) + ": ", item) for key, item in items]
    _write_members(members, "{", "}", out, indent, sort_keys, level)


def _write_array(value: list[Any] | tuple[Any, ...], out: list[str], indent: int | None, sort_keys: bool,
                 level: int) -> None:
    _write_members([("", item) for item in value], "[", "]", out, indent, sort_keys, level)


def _write_members(members: list[tuple[str, Any]], opening: str, closing: str, out: list[str],
                   indent: int | None, sort_keys: bool, level: int) -> None:
    """An object's or an array's members, each after its prefix (a key and
    ": ", or nothing).  A string or int member is written here, not through
    _write: a call of _write for each cost a state.json ~40% more."""
    if not members:
        out.append(opening + closing)
        return
    inner, separator, close = _layout(indent, level, closing)
    out.append(opening + inner)
    for index, (prefix, item) in enumerate(members):
        if index:
            out.append(separator)
        if prefix:
            out.append(prefix)
        kind = type(item)
        if kind is str:
            out.append(_encode_string(item))
        elif kind is int:
            out.append(int.__repr__(item))
        else:
            _write(item, out, indent, sort_keys, level + 1)
    out.append(close)


def _layout(indent: int | None, level: int, bracket: str) -> tuple[str, str, str]:
    """(after the opening bracket, between members, the closing) as json.dumps writes them."""
    if indent is None:
        return "", ", ", bracket
    inner = "\n" + " " * (indent * (level + 1))
    return inner, "," + inner, "\n" + " " * (indent * level) + bracket


def _key_text(key: Any) -> str:
    """Object keys as json writes them: strings, or scalars turned into strings."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _float_text(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)
