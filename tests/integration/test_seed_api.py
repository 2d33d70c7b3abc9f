"""Issue 16's library API on real containers: memory notifications,
network counters, the Process fields (the seed's libcontainer.Process)."""
from __future__ import annotations

import os
import select
import signal
import time

from conftest import Nsinit, needs_root, running

from nsinit.container import Container

pytestmark = needs_root

MiB = 1024 * 1024
# Grows the shell's buffer in steps, a 16 MiB chunk at a time, so that the
# cgroup reclaims for a while before the OOM killer comes.
STEADY_HOG = ('x=""; while :; do x="$x$(head -c 4194304 /dev/zero | tr "\\0" a)"; done')


def memory_v1() -> bool:
    return os.path.isfile("/sys/fs/cgroup/memory/cgroup.event_control")


def test_low_memory_pressure_comes_before_the_oom_kill_which_is_notified(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": 32 * MiB, "memory_swap": 32 * MiB})
    events: list[tuple[float, str]] = []
    with running(nsinit, STEADY_HOG, go=True, ready="pid") as proc:
        container = Container.attach(str(nsinit.root))
        with container.notify_memory_pressure("low") as pressure, container.notify_oom() as oom:
            (nsinit.root / "go").touch()
            deadline = time.monotonic() + 60
            while not oom.ended and time.monotonic() < deadline:
                ready, _, _ = select.select([pressure, oom], [], [], 1.0)
                for notifier in ready:
                    if notifier.read(0):
                        events.append((time.monotonic(), "oom" if notifier is oom else "low"))
                if proc.poll() is not None and not ready:
                    break
    assert proc.returncode == 128 + signal.SIGKILL
    kinds = [kind for _, kind in events]
    assert "oom" in kinds, kinds
    assert "low" in kinds[:kinds.index("oom")], kinds
