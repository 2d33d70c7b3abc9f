"""``nsinit trace-timeline``: the SVG of a real trace is valid XML with one
bar per step and the sync socket's messages as arrows."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import Nsinit, needs_root

pytestmark = needs_root

SVG = "{http://www.w3.org/2000/svg}"


def draw(nsinit: Nsinit, tmp_path: Path, *exec_args: str) -> tuple[list[str], ET.Element]:
    result = nsinit.run("--trace=json", "exec", *exec_args)
    trace = tmp_path / "trace.json"
    trace.write_text(result.stderr)
    records = [line for line in result.stderr.splitlines() if line.startswith("{")]
    drawn = nsinit.run("trace-timeline", str(trace), str(tmp_path / "out.svg"))
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.strip() == f"nsinit: {len(records)} steps drawn in {tmp_path / 'out.svg'}"
    return records, ET.parse(tmp_path / "out.svg").getroot()


def test_a_create_is_one_bar_per_step_and_three_messages(nsinit: Nsinit, tmp_path: Path) -> None:
    records, svg = draw(nsinit, tmp_path, "/bin/true")
    bars = [e for e in svg.iter(f"{SVG}rect") if e.get("class") == "step"]
    assert len(bars) == len(records) > 10
    assert {b.get("data-side") for b in bars} == {"parent", "child"}
    messages = [e for e in svg.iter(f"{SVG}line") if e.get("class") == "message"]
    assert len(messages) == 3  # attached, go, the exec's EOF
    assert all(float(b.get("width", 0)) > 0 for b in bars)


def test_the_failed_step_is_red(nsinit: Nsinit, tmp_path: Path) -> None:
    records, svg = draw(nsinit, tmp_path, "--cwd", "/nonexistent", "/bin/true")
    bars = [e for e in svg.iter(f"{SVG}rect") if e.get("class") == "step"]
    assert len(bars) == len(records)
    red = [b for b in bars if b.get("fill") == "#c0392b"]
    assert [(b.get("data-side"), b.get("data-step")) for b in red] == [("child", "cwd")]


def test_a_file_without_steps_is_one_line(nsinit: Nsinit, tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_text("just the command's output\n")
    result = nsinit.run("trace-timeline", str(tmp_path / "empty.json"), str(tmp_path / "out.svg"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no step records" in result.stderr
    assert not (tmp_path / "out.svg").exists()
