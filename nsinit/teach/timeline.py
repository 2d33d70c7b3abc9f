"""``nsinit trace-timeline TRACE.json OUT.svg``: a create or join, drawn.

TRACE.json holds the lines ``--trace=json`` writes (other lines, such as the
command's own stderr, are skipped).  The picture has one time axis and two
lanes: the supervisor's steps above, the container init's below, one row per
step, a bar from its start to its end (red if it failed), and the three
messages of the sync socket as arrows between the lanes: "attached" (the
child is in its cgroups: the parent may go on), "go" (the parent has written
the maps and the state: the child may go on), and the EOF of the child's
exec (the supervisor's wait ends).  Plain SVG written by hand: no dependency.
"""
from __future__ import annotations

import json

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

WIDTH = 1100
GUTTER = 230          # step names, left of the bars
ROW = 20
TOP = 56
LANE_GAP = 34
COLORS = {"parent": "#3b6ea8", "child": "#3f8f4f"}
WAIT_COLOR = "#c8c8c8"
FAILED_COLOR = "#c0392b"


def read_trace(path: str) -> list[dict[str, Any]]:
    """The step records of a ``--trace=json`` output, in the order written."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise NsinitError("trace-timeline", f"{path}: {err.strerror}", 1) from None
    records = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the command's own output that happens to start with "{"
        if isinstance(record, dict) and {"step", "side", "start", "ms"} <= set(record):
            records.append(record)
    if not records:
        raise NsinitError("trace-timeline", f"{path}: no step records "
                                            f"(make one with: nsinit --trace=json exec ... 2> {path})", 1)
    return records


def is_wait(record: dict[str, Any]) -> bool:
    return "wait" in record["step"]


def render(records: list[dict[str, Any]]) -> str:
    start = float(min(r["start"] for r in records))
    end = float(max(r["start"] + r["ms"] / 1000 for r in records))
    span_ms = max((end - start) * 1000, 0.001)
    scale = (WIDTH - GUTTER - 30) / span_ms

    def x(at: float) -> float:
        return GUTTER + (at - start) * 1000 * scale

    lanes = {side: [r for r in records if r["side"] == side] for side in ("parent", "child")}
    rows: dict[int, float] = {}
    y = TOP
    lane_tops = {}
    for side in ("parent", "child"):
        lane_tops[side] = y
        y += 22
        for record in lanes[side]:
            rows[id(record)] = y
            y += ROW
        y += LANE_GAP
    height = y + 30
    kind = records[0].get("trace", "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>',
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="12" y="22" font-size="16" font-weight="bold">nsinit {escape(kind)}: '
           f'{len(records)} steps in {span_ms:.2f} ms</text>']
    out += _axis(span_ms, scale, height)
    for side, title in (("parent", "parent: the supervisor (nsinit)"), ("child", "child: the container's init")):
        top = lane_tops[side]
        out.append(f'<text x="12" y="{top + 14}" font-weight="bold" fill="{COLORS[side]}">{escape(title)}</text>')
        for record in lanes[side]:
            out += _row(record, rows[id(record)], x, scale)
    out += _messages(records, rows, x)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _axis(span_ms: float, scale: float, height: int) -> list[str]:
    step = _tick_step(span_ms)
    parts = []
    tick = 0.0
    while tick <= span_ms + 1e-9:
        at = GUTTER + tick * scale
        parts.append(f'<line x1="{at:.1f}" y1="{TOP - 8}" x2="{at:.1f}" y2="{height - 24}" stroke="#eee"/>')
        parts.append(f'<text x="{at:.1f}" y="{TOP - 12}" text-anchor="middle" fill="#666">{tick:g} ms</text>')
        tick += step
    return parts


def _tick_step(span_ms: float) -> float:
    for candidate in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
        if span_ms / candidate <= 12:
            return float(candidate)
    return 1000.0


def _row(record: dict[str, Any], y: float, x: Any, scale: float) -> list[str]:
    left = x(record["start"])
    width = max(record["ms"] * scale, 1.5)
    color = FAILED_COLOR if record.get("failed") else (WAIT_COLOR if is_wait(record) else COLORS[record["side"]])
    label = record["step"]
    title = f'{record["side"]} {label}: {record["ms"]:.3f} ms'
    if record.get("failed"):
        label += "  FAILED"
        title += f' FAILED errno {record.get("errno")}: {record.get("error", "")}'
    calls = record.get("calls") or []
    if calls:
        title += "\n" + "\n".join(calls[:40]) + ("\n…" if len(calls) > 40 else "")
    name_color = FAILED_COLOR if record.get("failed") else "#222"
    parts = [f'<text x="{GUTTER - 8}" y="{y + 13}" text-anchor="end" fill="{name_color}">{escape(label[:34])}</text>',
             f'<rect class="step" data-side="{record["side"]}" data-step="{escape(record["step"])}" '
             f'x="{left:.2f}" y="{y + 3}" width="{width:.2f}" height="{ROW - 6}" rx="2" fill="{color}">'
             f'<title>{escape(title)}</title></rect>']
    after = left + width + 5
    summary = f'{record["ms"]:.2f} ms' + (f" · {len(calls)} calls" if calls else "")
    if record.get("failed"):
        summary += f' · {record.get("errno_name") or "failed"}: {record.get("error", "")}'
    anchor = "start" if after + 6.5 * len(summary) < WIDTH else "end"
    at = after if anchor == "start" else left - 5
    parts.append(f'<text x="{at:.1f}" y="{y + 13}" text-anchor="{anchor}" fill="#555" font-size="11">'
                 f'{escape(summary)}</text>')
    return parts


def _messages(records: list[dict[str, Any]], rows: dict[int, float], x: Any) -> list[str]:
    """The sync socket's three messages, as arrows from sender to receiver."""
    def find(side: str, step: str) -> dict[str, Any] | None:
        return next((r for r in records if r["side"] == side and r["step"] == step), None)

    def end(record: dict[str, Any]) -> float:
        return float(record["start"] + record["ms"] / 1000)

    arrows = []
    pairs = [
        ("attached", find("child", "cgroups"), "end", find("parent", "wait for child")),
        ("go", find("parent", "go, wait for exec"), "start", find("child", "wait for parent")),
        ("exec: EOF", find("child", "exec"), "end", find("parent", "go, wait for exec")),
    ]
    for label, sender, when, receiver in pairs:
        if sender is None or receiver is None:
            continue
        sent = sender["start"] if when == "start" else end(sender)
        x1, x2 = x(sent), x(end(receiver))
        y1, y2 = rows[id(sender)] + ROW / 2, rows[id(receiver)] + ROW / 2
        arrows.append(f'<line class="message" x1="{x1:.2f}" y1="{y1:.1f}" x2="{x2:.2f}" y2="{y2:.1f}" '
                      f'stroke="#444" stroke-width="1.2" stroke-dasharray="4 2" marker-end="url(#arrow)"/>')
        middle = (x1 + x2) / 2
        anchor, at = ("end", middle - 4) if middle > WIDTH - 90 else ("start", middle + 4)
        arrows.append(f'<text x="{at:.1f}" y="{(y1 + y2) / 2:.1f}" text-anchor="{anchor}" fill="#444" '
                      f'font-size="11" font-style="italic">{escape(label)}</text>')
    return arrows


def escape(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def write_svg(trace_path: str, svg_path: str) -> int:
    """Draw ``trace_path`` into ``svg_path``; the number of steps drawn."""
    records = read_trace(trace_path)
    text = render(records)
    try:
        with open(svg_path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise NsinitError("trace-timeline", f"{svg_path}: {err.strerror}", 1) from None
    return len(records)
