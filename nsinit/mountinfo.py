"""Lines of /proc/PID/mountinfo (proc(5)), for the cgroup layout and the mount steps."""
from __future__ import annotations

MOUNTINFO = "/proc/self/mountinfo"


def parse(text: str) -> list[tuple[str, str, str, str, str]]:
    """(major:minor, root, mount point, fstype, super options) per mount.

    Fields 0-5 are fixed, optional fields follow up to a lone "-", then
    fstype, source and super options; lines that do not fit are skipped.
    """
    rows = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if sep < 5 or len(fields) < sep + 2:
            continue
        rows.append((fields[2], unescape(fields[3]), unescape(fields[4]),
                     fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""))
    return rows


def read(path: str = MOUNTINFO) -> list[tuple[str, str, str, str, str]]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse(f.read())


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
