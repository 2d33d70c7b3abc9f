"""``nsinit exec --init``: tini (a copy of the host's static build, read-only at
/dev/init) as PID 1, forwarding signals and reaping zombies, as ``docker run
--init`` does.  Checked from inside real containers and from the host's /proc."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Nsinit, needs_root, stderr_lines
from _live import READY, Live, ok, read_cmdline, start, wait_until  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, needs_root,
              pytest.mark.skipif(not os.path.exists("/usr/bin/tini-static"),
                                 reason="Debian package tini (its /usr/bin/tini-static) not installed")]


def test_timeout_ends_a_command_under_init_in_time(nsinit: Nsinit) -> None:
    # Without an init, sleep is PID 1 and ignores timeout's SIGTERM: 12 s.
    began = time.monotonic()
    result = subprocess.run(["timeout", "3", sys.executable, "-m", "nsinit", "exec", "--init", "sleep", "12"],
                            cwd=nsinit.root, capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    took = time.monotonic() - began
    assert result.returncode == 124, result.stderr  # timeout's: it had to signal
    assert 2.9 < took < 6
    assert stderr_lines(result) == []


@pytest.mark.parametrize("script, status", [("exit 0", 0), ("exit 7", 7), ("kill -9 $$", 137)])
def test_the_commands_exit_status_is_passed_through(nsinit: Nsinit, script: str, status: int) -> None:
    result = nsinit.exec("--init", "/bin/sh", "-c", script)
    assert result.returncode == status, result.stderr
    assert stderr_lines(result) == []


def test_a_missing_command_is_nsinits_one_line_not_tinis(nsinit: Nsinit) -> None:
    result = nsinit.exec("--init", "no-such-command")
    assert result.returncode == 127
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert stderr_lines(result) == [f"nsinit: exec: no-such-command: command not found in the rootfs "
                                    f"{nsinit.root} (PATH={path})"]


def test_init_is_pid_1_read_only_and_not_in_the_rootfs(nsinit: Nsinit) -> None:
    out = ok(nsinit.exec("--init", "/bin/sh", "-c",
                         "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $PPID;"
                         " grep ' /dev/init ' /proc/self/mountinfo | cut -d' ' -f6;"
                         " (echo x > /dev/init) 2>/dev/null || echo not-writable"))
    cmdline, parent, options, writable = out.splitlines()
    assert cmdline.startswith("/dev/init -- /bin/sh -c ")
    assert parent == "1"
    assert {"ro", "nosuid", "nodev"} <= set(options.split(","))
    assert writable == "not-writable"
    # Bound onto the container's /dev tmpfs: nothing was written into the rootfs.
    assert os.listdir(nsinit.root / "dev") == []


def zombies_in(pid: int) -> list[int]:
    """Zombie processes in the pid namespace of ``pid`` (seen from the host)."""
    inode = os.stat(f"/proc/{pid}/ns/pid").st_ino
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}/ns/pid").st_ino == inode:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if stat[stat.rindex(")") + 2] == "Z":
                    found.append(int(entry))
        except OSError:
            continue  # exited (and reaped) while we looked
    return found


@pytest.mark.parametrize("options, reaped", [(("--init",), True), ((), False)], ids=["init", "no-init"])
def test_orphans_are_reaped(nsinit: Nsinit, start: Callable[..., Live], options: tuple[str, ...],
                            reaped: bool) -> None:
    # The subshell's sleep is orphaned: it goes to PID 1 (tini, or the
    # final `sleep 30`, which never waits) and becomes a zombie when it ends.
    live = start(f"(sleep 0.1 &); {READY}; exec sleep 30", *options)
    time.sleep(1.0)
    if reaped:
        assert read_cmdline(live.pid).startswith(b"/dev/init\0")
        assert zombies_in(live.pid) == []
    else:  # the control: what --init is for
        assert len(zombies_in(live.pid)) == 1


def test_init_on_a_join_is_a_warning(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    start()
    result = nsinit.exec("--init", "/bin/sh", "-c", "echo $$")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != "1"
    assert stderr_lines(result) == [(f"nsinit: warning: --init: the container in {nsinit.root} runs already, "
                                     "with its own PID 1; this process joins it without an init")]



def test_root_with_sys_admin_cannot_change_the_hosts_tini(nsinit: Nsinit) -> None:
    # A read-only bind is no barrier to a root keeping CAP_SYS_ADMIN: it
    # remounts the bind read-write.  Then chmod (the same mode: harmless,
    # but it moves the ctime) and a write of the byte already there (ETXTBSY
    # while tini runs, not once it has exited) reach whatever file it is.
    import hashlib
    host = "/usr/bin/tini-static"
    nsinit.config(capabilities=["SYS_ADMIN", "DAC_OVERRIDE"], seccomp=None)  # no filter on mount
    before = os.stat(host)
    digest = hashlib.sha256(Path(host).read_bytes()).hexdigest()
    out = ok(nsinit.exec("--init", "/bin/sh", "-c",
                         "mount -o remount,bind,rw /dev/init && echo remounted;"
                         " chmod 755 /dev/init /proc/1/exe;"
                         " printf '\\177' | dd of=/dev/init bs=1 count=1 conv=notrunc 2>/dev/null;"
                         " stat -L -c '%d %i' /proc/1/exe /dev/init"))
    remounted, exe, init = out.splitlines()
    assert remounted == "remounted"
    assert exe == init != f"{before.st_dev} {before.st_ino}"  # a copy, not the host's inode
    after = os.stat(host)
    assert (after.st_ctime_ns, after.st_mtime_ns, after.st_mode) == \
        (before.st_ctime_ns, before.st_mtime_ns, before.st_mode)
    assert hashlib.sha256(Path(host).read_bytes()).hexdigest() == digest
