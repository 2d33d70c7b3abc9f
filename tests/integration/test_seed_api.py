"""Issue 16's library API on real containers: memory notifications,
network counters, the Process fields (the seed's libcontainer.Process)."""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import Nsinit, give_rootfs_to_mapped_root, needs_root, running

from nsinit.container import Container

pytestmark = needs_root

MiB = 1024 * 1024
TMPFS_MAGIC = 0x01021994
# Grows the shell's memory by 1 MiB every 50 ms.  Anonymous memory cannot be
# reclaimed without swap, so the hog first reads a ballast file: its page
# cache, charged to the container, is what the kernel reclaims (pressure)
# for the ~20 steps the hog takes to grow into it, before the OOM killer
# comes.  Without it both events came in the same instant on a busy machine.
BALLAST_MIB = 20
STEADY_HOG = ('cat /ballast > /dev/null; '
              'x=""; while :; do x="$x$(head -c 1048576 /dev/zero | tr "\\0" a)"; sleep 0.05; done')


def write_uncached_ballast(path: Path) -> None:
    """BALLAST_MIB of data on disk and out of the host's page cache, so that
    the container's read charges the cache to the container's cgroup."""
    with open(path, "wb") as f:
        for _ in range(BALLAST_MIB):
            f.write(os.urandom(MiB))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def memory_v1() -> bool:
    return os.path.isfile("/sys/fs/cgroup/memory/cgroup.event_control")


def test_low_memory_pressure_comes_before_the_oom_kill_which_is_notified(nsinit: Nsinit) -> None:
    nsinit.config(cgroups={"memory": 32 * MiB, "memory_swap": 32 * MiB})
    write_uncached_ballast(nsinit.root / "ballast")
    events: list[tuple[int, str]] = []   # (which select call saw it, what)
    with running(nsinit, STEADY_HOG, go=True, ready="pid") as proc:
        container = Container.attach(str(nsinit.root))
        with container.notify_memory_pressure("low") as pressure, container.notify_oom() as oom:
            (nsinit.root / "go").touch()
            deadline, calls = time.monotonic() + 60, 0
            while not oom.ended and time.monotonic() < deadline:
                ready, _, _ = select.select([pressure, oom], [], [], 1.0)
                calls += 1
                for notifier in ready:
                    if notifier.read(0):
                        events.append((calls, "oom" if notifier is oom else "low"))
                if proc.poll() is not None and not ready:
                    break
    assert proc.returncode == 128 + signal.SIGKILL
    first_oom = min((call for call, kind in events if kind == "oom"), default=None)
    assert first_oom is not None, events
    assert any(kind == "low" and call < first_oom for call, kind in events), events   # seen before, not with it


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


# --- the Process fields ------------------------------------------------------

def run_python(nsinit: Nsinit, *parts: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``parts`` (each dedented) in a Python of its own (creating or joining
    needs a single-threaded caller), with ``root``, Container and Process defined."""
    script = ("import os, sys\nfrom nsinit.container import Container, Process\n"
              "from nsinit.errors import NsinitError\n"
              f"root = {str(nsinit.root)!r}\n" + "".join(textwrap.dedent(part) for part in parts))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# Inside: the settings as the kernel has them, then every open fd and
# where it leads (the shell becomes ls: a busybox ls runs inside the shell
# process, with fds of the shell's own beside it, unless it is exec'd).
REPORT = ('grep -E "^(Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):" /proc/$$/status; '
          'grep "Max open files" /proc/$$/limits; exec ls -l /proc/self/fd')

# Two pipes the caller passes as extra files, and what the process should
# report of them; the settings given as the seed's Process fields.
PROCESS_WITH_SETTINGS = """
    a_read, a_write = os.pipe()
    b_read, b_write = os.pipe()
    extra = [os.fdopen(a_write, "wb"), b_read]   # a file object and a plain fd
    print("want fd 3 pipe:[%d]" % os.fstat(a_write).st_ino)
    print("want fd 4 pipe:[%d]" % os.fstat(b_read).st_ino)
    sys.stdout.flush()
    process = Process(["/bin/sh", "-c", REPORT], extra_files=extra, additional_groups=["users", "1000"],
                      capabilities=CAPS, no_new_privileges=True,
                      rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1025, "hard": 1025}])
"""


def parse_report(stdout: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    wanted = dict(line[len("want fd "):].split(" ", 1) for line in stdout.splitlines() if line.startswith("want "))
    # "lrwx------ 1 root root 64 Dec 2 00:06 3 -> pipe:[123]", less ls's own fd on the directory
    fds = dict(found.groups() for line in stdout.splitlines() if (found := re.search(r" (\d+) -> (.*)$", line))
               and not found.group(2).endswith("/fd"))
    status = dict(line.split(":", 1) for line in stdout.splitlines() if line[:1].isupper() and ":" in line)
    status.update(("Max open files", line[len("Max open files"):]) for line in stdout.splitlines()
                  if line.startswith("Max open files"))
    return wanted, fds, {key: value.strip() for key, value in status.items()}


def check_settings(stdout: str, caps_mask: str) -> None:
    wanted, fds, status = parse_report(stdout)
    assert sorted(fds) == ["0", "1", "2", "3", "4"], fds   # the extra files, and nothing else
    assert fds["3"] == wanted["3"] and fds["4"] == wanted["4"], (fds, wanted)
    assert status["Groups"].split() == ["10", "100", "1000"]   # root's wheel, then the extra ones
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert status[key] == caps_mask, (key, status)
    assert status["CapInh"] == status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    assert status["Max open files"].split()[:2] == ["1025", "1025"]


CHOWN_KILL = "0000000000000021"   # CAP_CHOWN (0) and CAP_KILL (5)


def test_the_init_gets_the_process_fields(nsinit: Nsinit) -> None:
    result = run_python(nsinit, f"REPORT = {REPORT!r}\nCAPS = ['CAP_CHOWN', 'kill']\n", PROCESS_WITH_SETTINGS, """
    status = Container.load(root).run(process, new=True)
    print("status", status)
    """)
    assert result.returncode == 0, result.stderr
    assert "status 0" in result.stdout, result.stdout
    check_settings(result.stdout, CHOWN_KILL)


def test_a_joined_process_gets_the_process_fields_over_the_config(nsinit: Nsinit) -> None:
    nsinit.config(no_new_privileges=False, rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 2048}])
    with running(nsinit, "sleep 30", ready="pid"):
        result = run_python(nsinit, f"REPORT = {REPORT!r}\n"
                            "CAPS = {'bounding': ['CAP_CHOWN', 'CAP_KILL'], 'effective': ['CAP_CHOWN', 'CAP_KILL'],"
                            " 'permitted': ['CAP_CHOWN', 'CAP_KILL']}\n", PROCESS_WITH_SETTINGS, """
    print("status", Container.load(root).join(process))
        """)
        # The next joined process gets the container's settings again.
        plain = nsinit.sh('grep -E "^(NoNewPrivs|CapEff):" /proc/self/status; grep "Max open files" /proc/self/limits')
    assert result.returncode == 0, result.stderr
    assert "status 0" in result.stdout, result.stdout
    check_settings(result.stdout, CHOWN_KILL)
    assert "NoNewPrivs:\t0" in plain.stdout and "CapEff:\t00000000a80425fb" in plain.stdout, plain.stdout
    assert "2048                 2048" in plain.stdout, plain.stdout


def test_initialize_io_pipes_carry_data_and_belong_to_the_containers_root(nsinit: Nsinit) -> None:
    # As "daemon" (uid 1, no user namespace: the container's root is the
    # host's), reopening its stdout through /proc works only on a pipe it may open.
    result = run_python(nsinit, """
        def once(uid):
            process = Process(["/bin/sh", "-c", 'read line; echo "got $line"; echo oops >&2; echo again > /proc/self/fd/1'],
                              user="daemon")
            io = process.initialize_io(uid, uid)
            container = Container.load(root)
            container.run(process, detach=True, new=True)
            io.stdin.write(b"hello\\n")
            io.stdin.close()
            out, err = io.stdout.read(), io.stderr.read()   # EOF: nsinit kept no copy of the child ends
            print(uid, repr(out), repr(err), process.wait())
            io.close()
            container.delete()
        once(1)
        once(0)
    """)
    assert result.returncode == 0, result.stderr
    owned, root_owned = result.stdout.splitlines()
    assert owned == "1 b'got hello\\nagain\\n' b'oops\\n' 0"
    # Owned by the host's root, the same pipe is refused to uid 1.
    assert root_owned == ("""0 b'got hello\\n' b"oops\\n/bin/sh: can't create /proc/self/fd/1: """
                          """Permission denied\\n" 1"""), root_owned


def test_explicit_stdio_and_extra_files_for_a_created_init(nsinit: Nsinit, tmp_path: Path) -> None:
    result = run_python(nsinit, f"""
        out = open({str(tmp_path / "out")!r}, "wb")
        extra = open({str(tmp_path / "extra")!r}, "wb")
        # The caller's own fd 1 as an extra file is that fd, not the process's stdout.
        process = Process(["/bin/sh", "-c", "echo to-stdout; echo to-extra >&3; echo to-callers-1 >&4; "
                                            "ls /proc/self/fd"],
                          stdout=out, extra_files=[extra, 1])
        container = Container.load(root)
        container.create(process)
        container.start()
        print("status", process.wait())
        container.delete()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "to-callers-1\nstatus 0\n"
    lines = (tmp_path / "out").read_text().splitlines()
    assert lines[0] == "to-stdout"
    assert lines[1:] == ["0", "1", "2", "3", "4", "5"]   # ls's own directory fd is the 5
    assert (tmp_path / "extra").read_text() == "to-extra\n"


def test_settings_the_kernel_cannot_apply_are_refused_in_one_line(nsinit: Nsinit) -> None:
    result = run_python(nsinit, """
        master, slave = os.openpty()
        for fields in ({"label": "system_u:system_r:container_t:s0"}, {"apparmor_profile": "docker-default"},
                       {"stdout": slave}, {"extra_files": [slave]}, {"capabilities": ["CAP_NOPE"]},
                       {"rlimits": [("RLIMIT_NOFILE", 10, 5)]}, {"extra_files": [9999]}):
            try:
                Container.load(root).run(Process(["/bin/true"], **fields), new=True)
                print("ran with", fields)
            except NsinitError as err:
                print(str(err).replace(str(slave), "N"), err.exit_code)
        print("state", Container.attach(root).state())
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    selinux = "SELinux is not enabled" if not os.path.isdir("/sys/fs/selinux") else None
    if selinux:
        assert lines[0] == ('process: label: "system_u:system_r:container_t:s0": SELinux is not enabled on this '
                            'kernel (no /sys/fs/selinux) 125'), lines
    if not os.path.exists("/sys/module/apparmor/parameters/enabled"):
        assert lines[1] == 'process: apparmor_profile: "docker-default": AppArmor is not enabled on this kernel 125'
    assert lines[2].startswith("process: stdout: fd N is a terminal: a container never gets a host terminal")
    assert lines[3] == "process: extra_files[0]: fd N is a terminal: a container never gets a host terminal 125"
    assert lines[4] == 'process: capabilities[0]: unknown capability "CAP_NOPE" 125'
    assert lines[5] == "process: rlimits[0].soft: must not exceed the hard limit 125"
    assert lines[6] == "process: extra_files[0]: fd 9999: Bad file descriptor 125"
    assert lines[7] == "state None"


def test_initialize_io_for_a_joined_process(nsinit: Nsinit) -> None:
    with running(nsinit, "sleep 30", ready="pid"):
        result = run_python(nsinit, """
            process = Process(["/bin/sh", "-c", "tr a-z A-Z; echo done >&2"])
            io = process.initialize_io()
            Container.load(root).join(process, detach=True)
            io.stdin.write(b"joined\\n")
            io.stdin.close()
            print(io.stdout.read(), io.stderr.read(), process.wait())
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "b'JOINED\\n' b'done\\n' 0\n"


def test_v2_psi_trigger_fires_under_memory_pressure_on_the_unified_mount(nsinit: Nsinit, tmp_path: Path) -> None:
    # This host is hybrid: memory is a v1 controller, but PSI counts a
    # task's memory stalls in its cgroup2 cgroup all the same.  So the
    # container's init also joins a cgroup of the controller-less cgroup2
    # mount, whose memory.pressure takes the trigger.  (memory.events needs
    # the v2 memory controller: the v2 OOM notifier cannot run here.)
    from nsinit import _native
    from nsinit.cgroups import layout
    from nsinit.cgroups.v2 import V2Manager
    from nsinit.config.model import CgroupResources
    from nsinit.errors import NsinitError

    unified = layout.detect().unified
    if unified is None or not os.path.exists(os.path.join(unified, "memory.pressure")):
        pytest.skip("no cgroup2 mount with PSI (memory.pressure) on this host")
    v2 = V2Manager.for_mount(unified, f"/nsinit/nsinit-psi-{tmp_path.name}-{os.getpid()}",
                             resources=CgroupResources(), devices=(), explicit="")
    v2.create()
    nsinit.config(cgroups={"memory": 32 * MiB, "memory_swap": 32 * MiB})
    fired = 0
    try:
        with pytest.raises(NsinitError, match="no memory.events: the memory controller is not enabled"):
            v2.notify_oom()
        # Thrash: 10 MiB held, then a 24 MiB file of the rootfs read over and
        # over in what is left: its page cache, charged to the container, is
        # reclaimed and read again, and every wait for it is a memory stall.
        with open(nsinit.root / "big", "wb") as f:
            if _native.fstatfs_type(f.fileno()) == TMPFS_MAGIC:
                pytest.skip("the rootfs is on tmpfs: its pages are no page cache to reclaim")
            f.write(os.urandom(24 * MiB))
            f.flush()
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # its pages: not the host's cache
        thrash = 'x=$(head -c 10485760 /dev/zero | tr "\\0" a); while :; do cat /big > /dev/null; done'
        with running(nsinit, thrash, go=True, ready="pid") as proc:
            v2.add(int((nsinit.root / "pid").read_text()))
            with v2.notify_memory_pressure("low") as pressure:
                (nsinit.root / "go").touch()
                deadline = time.monotonic() + 60
                while not fired and proc.poll() is None and time.monotonic() < deadline:
                    if pressure.read(0.5):   # (the trigger's fd polls POLLPRI)
                        fired = pressure.count
            assert nsinit.run("kill", "KILL").returncode == 0   # it thrashes for ever
            proc.wait(timeout=20)
    finally:
        v2.destroy()
    assert fired >= 1


def test_initialize_io_for_the_root_of_a_user_namespace(nsinit: Nsinit, traversable: None) -> None:
    # The seed's case: in a user namespace the container's root is a host
    # uid of the map; pipes of the host's root are nobody's there, and even
    # the container's root cannot reopen them.
    give_rootfs_to_mapped_root(nsinit, 100000)
    result = run_python(nsinit, """
        for uid in (100000, 0):
            process = Process(["/bin/sh", "-c", "id -u; echo reopened > /proc/self/fd/1"])
            io = process.initialize_io(uid, uid)
            container = Container.load(root)
            container.run(process, detach=True, new=True)
            io.stdin.close()
            print(uid, repr(io.stdout.read()), repr(io.stderr.read()), process.wait())
            io.close()
            container.delete()
    """)
    assert result.returncode == 0, result.stderr
    mapped, host_root = result.stdout.splitlines()
    assert mapped == "100000 b'0\\nreopened\\n' b'' 0"
    assert host_root.startswith("0 b'0\\n' ") and "Permission denied" in host_root and host_root.endswith(" 1")
