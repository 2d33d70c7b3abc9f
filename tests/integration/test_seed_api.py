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


def test_stats_count_every_interface_of_the_container_and_see_a_loopback_ping(nsinit: Nsinit) -> None:
    with running(nsinit, "sleep 30", ready="pid"):
        container = Container.attach(str(nsinit.root))
        before = {i["name"]: i for i in container.stats()["interfaces"]}
        result = nsinit.exec("ping", "-c", "3", "-W", "1", "127.0.0.1")
        assert result.returncode == 0, result.stderr
        after = {i["name"]: i for i in container.stats()["interfaces"]}
    assert set(before) == set(after) == {"lo"}
    # Loopback receives what it sends: three requests and three replies, each way.
    for direction in ("rx", "tx"):
        assert after["lo"][f"{direction}_packets"] - before["lo"][f"{direction}_packets"] == 6
        assert after["lo"][f"{direction}_bytes"] > before["lo"][f"{direction}_bytes"]
        assert after["lo"][f"{direction}_errors"] == after["lo"][f"{direction}_dropped"] == 0
