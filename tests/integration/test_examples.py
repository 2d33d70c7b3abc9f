"""The shipped example config loads and runs on the busybox rootfs."""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import REPO, Nsinit, needs_root

pytestmark = needs_root


def test_example_config_runs(nsinit: Nsinit) -> None:
    shutil.copy(REPO / "examples" / "container.json", nsinit.root / "container.json")
    result = nsinit.sh("hostname; grep -c ' /tmp tmpfs' /proc/self/mounts; ulimit -n; "
                       "grep NoNewPrivs /proc/self/status; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || true")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "example"
    assert lines[1] == "1"
    assert lines[2] == "1024"
    assert lines[3].split() == ["NoNewPrivs:", "1"]


def test_example_config_is_valid(tmp_path: Path) -> None:
    from nsinit.config import load_config

    config, warnings = load_config(str(tmp_path), str(REPO / "examples" / "container.json"))
    assert warnings == []
    assert config.hostname == "example"
    assert config.cgroups is not None and config.cgroups.resources.pids_limit == 256
