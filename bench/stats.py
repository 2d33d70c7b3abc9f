"""Pure helpers of the benchmark: schedules, summaries, parsers.

Nothing here starts a process or needs root, so tests/unit/test_bench_stats.py
can check it in milliseconds.  bench/run.py does the measuring.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Sequence


def interleaved_schedule(names: Sequence[str], rounds: int, *, rotate: bool = True) -> list[str]:
    """The order to run ``names`` in: one of each per round (A B C A B C ...).

    With ``rotate`` every round starts one name later (A B C, B C A, C A B):
    whatever runs right after a slow runtime (a dirty page cache, a cgroup
    being torn down in the background) then hits every runtime equally,
    not always the same one.
    """
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    order: list[str] = []
    n = len(names)
    for r in range(rounds):
        shift = r % n if (rotate and n) else 0
        order.extend(names[shift:])
        order.extend(names[:shift])
    return order


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "median": self.median, "min": self.min, "max": self.max}


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summary of no values")
    return Summary(n=len(values), median=median(values), min=float(min(values)),
                   max=float(max(values)))


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


# --- the OCI runtimes' files -------------------------------------------------

def parse_pid_file(text: str) -> int:
    """The init's pid from a ``--pid-file`` (runc writes it without a newline;
    a trailing one is accepted).  ValueError for anything but a positive
    decimal: a half-written or foreign file must not send signals or waits
    to a wrong process."""
    word = text[:-1] if text.endswith("\n") else text
    if not word.isascii() or not word.isdigit() or int(word) <= 0:
        raise ValueError(f"not a pid file: {text[:40]!r}")
    return int(word)


# --- networks ----------------------------------------------------------------

DEFAULT_SUBNET_CANDIDATES = (
    "10.213.47.0/24", "10.199.83.0/24", "172.30.241.0/24", "192.168.231.0/24",
    "10.251.17.0/24", "172.29.113.0/24",
)


def choose_free_subnet(used: Iterable[str],
                       candidates: Sequence[str] = DEFAULT_SUBNET_CANDIDATES) -> ipaddress.IPv4Network:
    """The first candidate that overlaps none of ``used`` (routes, addresses).

    ``used`` may hold networks ("10.0.0.0/8"), interface addresses
    ("10.0.0.5/24", taken as their network) or "default", which is skipped:
    a default route overlaps everything and says nothing about local use.
    """
    taken: list[ipaddress.IPv4Network] = []
    for text in used:
        if not text or text == "default":
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network):
            taken.append(net)
    for text in candidates:
        candidate = ipaddress.IPv4Network(text)
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise LookupError("every candidate subnet is in use: " + ", ".join(candidates))


# --- nsinit's own reports ------------------------------------------------------

# "nsinit: trace: create: child mounts: 0.55 ms" (older nsinit: "nsinit: trace: mounts: 0.55 ms");
# the indented lines under a step are its system calls.
_TRACE_LINE = re.compile(r"^nsinit: trace: (?:(?:create|join): (?:parent|child) )?"
                         r"(?P<step>[^ ].*?): (?P<ms>[0-9.]+) ms$")


def parse_trace(stderr: str) -> list[tuple[str, float]]:
    """``nsinit --trace`` lines as (step, ms), in the order printed."""
    steps = []
    for line in stderr.splitlines():
        match = _TRACE_LINE.match(line.strip())
        if match:
            steps.append((match["step"], float(match["ms"])))
    return steps


@dataclass(frozen=True)
class ImportRecord:
    name: str
    self_us: int
    cumulative_us: int
    depth: int          # 0 = imported by __main__ or the interpreter itself


def parse_importtime(stderr: str) -> list[ImportRecord]:
    """``python -X importtime`` lines, in the order printed (children first)."""
    records = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            self_part, cumulative_part, name_part = line[len("import time:"):].split("|")
            indent = len(name_part) - len(name_part.lstrip(" "))
            records.append(ImportRecord(name=name_part.strip(), self_us=int(self_part),
                                        cumulative_us=int(cumulative_part),
                                        depth=max(0, (indent - 1) // 2)))
        except ValueError:
            continue  # an interleaved line of the program's own stderr
    return records


_KNOWN_GROUPS = {
    "nsinit": "nsinit modules (+ stdlib they import)",
    "docopt": "docopt",
    "cffi": "cffi",
    "_cffi_backend": "cffi",
    "pyroute2": "pyroute2",
    "runpy": "runpy (-m)",
}


def import_groups(records: Sequence[ImportRecord]) -> dict[str, float]:
    """Milliseconds of import time by who asked for it.

    Top-level imports (depth 0) before ``site`` are the interpreter's own
    bootstrap; ``site`` is start-up including every .pth file in
    site-packages; after it, imports are grouped by package (nsinit, docopt,
    cffi, pyroute2) and the rest, imported lazily inside functions, is
    "other".
    """
    groups: dict[str, float] = {}
    seen_site = any(rec.name == "site" and rec.depth == 0 for rec in records)
    after_site = not seen_site
    for rec in records:
        if rec.depth != 0:
            continue
        top = rec.name.split(".")[0]
        if top == "site":
            key = "site (.pth files, sitecustomize)"
            after_site = True
        elif not after_site:
            key = "interpreter bootstrap (encodings, io, ...)"
        else:
            key = _KNOWN_GROUPS.get(top, "other (imported inside functions)")
        groups[key] = groups.get(key, 0.0) + rec.cumulative_us / 1000.0
    return groups


def top_self(records: Sequence[ImportRecord], count: int = 10) -> list[tuple[str, float]]:
    """The ``count`` modules with the largest own (self) import time, in ms."""
    ordered = sorted(records, key=lambda r: r.self_us, reverse=True)
    return [(r.name, r.self_us / 1000.0) for r in ordered[:count]]


def median_by_key(samples: Iterable[Iterable[tuple[str, float]]]) -> list[tuple[str, float]]:
    """Per key, the median over runs; keys in first-seen order.

    A key that appears twice in one run (a step run twice) is summed for that
    run first.
    """
    order: list[str] = []
    per_key: dict[str, list[float]] = {}
    for run in samples:
        totals: dict[str, float] = {}
        for key, value in run:
            totals[key] = totals.get(key, 0.0) + value
            if key not in per_key:
                per_key[key] = []
                order.append(key)
        for key, value in totals.items():
            per_key[key].append(value)
    return [(key, median(per_key[key])) for key in order]
