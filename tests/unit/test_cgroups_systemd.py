"""cgroups="systemd" is one clear error, naming what PID 1 is."""
from __future__ import annotations

from pathlib import Path

from nsinit.cgroups import systemd


def test_the_systemd_driver_is_refused_naming_pid_1() -> None:
    err = systemd.refuse_systemd_driver()
    pid1 = Path("/proc/1/comm").read_text().strip()
    assert err.step == "factory" and err.message.startswith('cgroups: "systemd": ')
    if pid1 != "systemd":
        assert f'PID 1 of this machine is not systemd (it is "{pid1}")' in err.message
    else:
        assert "no systemd cgroup driver" in err.message
    assert "\n" not in str(err) and '"cgroupfs"' in err.message
