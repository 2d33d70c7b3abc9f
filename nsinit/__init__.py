"""nsinit: run a container from a directory holding container.json, or join it.

The library API lives in nsinit.container (Container, Process); the CLI in
nsinit.cli only parses arguments and prints.
"""
from __future__ import annotations

__version__ = "0.1.0"
