"""docs/lessons/: every command of every lesson runs, and shows what the lesson says.

In each lesson, every ```sh block runs in order (``bash -e``, in the lesson's
directory once its first block has made it), with ``nsinit`` on PATH being the
tree under test, and must succeed; an ```output block right after it lists
lines that must appear in what it printed.  The lesson's /tmp/lesson-NAME is
put under a fresh directory in /tmp.  So the lessons cannot rot.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, needs_root, wait_until

pytestmark = needs_root

LESSONS = sorted((REPO / "docs" / "lessons").glob("[0-9]-*.md"))
FENCE = re.compile(r"^```(\w*)\s*$")
LESSON_DIR = re.compile(r"/tmp/lesson-[a-z]+")


def blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of each fenced block, in order."""
    out, kind, body = [], None, []
    for line in text.splitlines():
        match = FENCE.match(line)
        if match and kind is None:
            kind, body = match.group(1), []
        elif line.startswith("```") and kind is not None:
            out.append((kind, "\n".join(body) + "\n"))
            kind = None
        elif kind is not None:
            body.append(line)
    assert kind is None, "an unclosed fenced block"
    return out


def steps(text: str) -> list[tuple[str, list[str]]]:
    """(commands, expected lines) for each sh block."""
    found = blocks(text)
    out = []
    for i, (kind, body) in enumerate(found):
        if kind != "sh":
            continue
        expected = found[i + 1][1].splitlines() if i + 1 < len(found) and found[i + 1][0] == "output" else []
        out.append((body, [line for line in expected if line.strip()]))
    return out


def test_every_lesson_has_commands_and_says_what_you_will_see() -> None:
    assert len(LESSONS) == 5
    for lesson in LESSONS:
        found = steps(lesson.read_text())
        assert len(found) >= 5, lesson.name
        assert sum(1 for _, expected in found if expected) >= 3, lesson.name
        assert LESSON_DIR.search(lesson.read_text()), f"{lesson.name}: no /tmp/lesson-NAME to work in"


@pytest.fixture
def nsinit_on_path(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "nsinit"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m nsinit "$@"\n')
    launcher.chmod(0o755)
    return bin_dir


@pytest.fixture
def lesson_base() -> Iterator[Path]:
    """Where the lesson's /tmp/lesson-NAME goes: under /tmp, 0711, not under
    pytest's 0700 directories, because lesson 4's container root is host uid
    100000 and must reach its rootfs by path."""
    base = Path(tempfile.mkdtemp(prefix="nsinit-lessons-", dir="/tmp"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_the_lesson_runs_as_written(lesson: Path, tmp_path: Path, nsinit_on_path: Path, busybox_template: Path,
                                    lesson_base: Path, no_residue: None) -> None:
    text = lesson.read_text()
    workdir = Path(str(lesson_base) + LESSON_DIR.search(text).group(0))  # type: ignore[union-attr]
    env = {**os.environ, "PATH": f"{nsinit_on_path}:{os.environ['PATH']}"}
    try:
        for number, (commands, expected) in enumerate(steps(text), 1):
            script = LESSON_DIR.sub(lambda m: str(lesson_base) + m.group(0), commands)
            output_file = tmp_path / f"block-{number}.out"
            with open(output_file, "w") as out:
                # A file, not a pipe: a container a block leaves running in the
                # background (`nsinit exec ... &`) must not keep the block open.
                result = subprocess.run(["bash", "-e", "-c", script], cwd=workdir if workdir.exists() else tmp_path,
                                        env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        timeout=60)
            printed = output_file.read_text()
            assert result.returncode == 0, f"{lesson.name} block {number} failed:\n{commands}\n{printed}"
            for line in expected:
                assert line in printed, f"{lesson.name} block {number}: {line!r} not in:\n{printed}"
    finally:
        if workdir.exists():
            subprocess.run([sys.executable, "-m", "nsinit", "kill", "--all", "KILL"], cwd=workdir,
                           capture_output=True, timeout=30)
            wait_until(lambda: not (workdir / "pid").exists(), timeout=10)
