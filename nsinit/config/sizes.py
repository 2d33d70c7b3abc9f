"""Memory sizes as people write them: 268435456, "256M", "1g", -1.

One parser for container.json's cgroup memory fields and ``nsinit update
--memory``, so the two accept the same forms.  Suffixes are powers of 1024
(the kernel's and Docker's meaning of "m"); a trailing "B" or "iB" is
allowed ("64MB", "64MiB").
"""
from __future__ import annotations

_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
SIZE_EXAMPLES = "e.g. 268435456, 256M, 1G"


def parse_size(value: int | str) -> int | None:
    """The number of bytes, or None when ``value`` is not a size."""
    if isinstance(value, bool):
        return None  # an int in Python, never a size in JSON
    if isinstance(value, int):
        return value
    body = value.strip().lower()
    for tail in ("ib", "b"):
        if body.endswith(tail) and body[-len(tail) - 1:-len(tail)] in _UNITS:
            body = body[:-len(tail)]
            break
    scale = 1
    if body[-1:] in _UNITS:
        body, scale = body[:-1], _UNITS[body[-1]]
    digits = body.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or (digits != body and scale != 1):
        return None  # not a number, or a negative size with a unit ("-1M")
    return int(body) * scale
