"""Print the requirements setup.cfg names, one per line, for pip.

`run`: what nsinit imports when it runs (install_requires and the criu extra),
for the interpreter scripts/install gives the launchers, which gets no
editable install of its own.  setup.cfg stays the one list.
"""
from __future__ import annotations

import configparser
import sys
from pathlib import Path


def requirements(part: str) -> list[str]:
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    if part != "run":
        raise SystemExit(f"requirements.py: unknown part {part!r} (run)")
    text = config["options"]["install_requires"] + "\n" + config["options.extras_require"]["criu"]
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1] if len(sys.argv) > 1 else "run")))
