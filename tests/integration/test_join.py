"""A second ``nsinit exec`` in the same directory joins the live container.

Each test starts a container in the background (``_live.start``), joins it
with ``nsinit exec`` and compares what the joined process sees with what
the init sees, using the kernel's own answers (/proc, namespace inodes).
Stale, garbage and faked records (nsinit's private one, under /run/nsinit)
must lead to a new container and leave unrelated processes alone; the
public pid and state.json in the root dir, which the container's root can
write, are never trusted at all.
"""
from __future__ import annotations

import ctypes
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import pytest

from conftest import Nsinit, needs_root, stderr_lines
from _live import (READY, Live, ns_inode, ok, planted_record, private_dir, read_cmdline,  # noqa: F401 (fixture)
                   start, wait_until)

pytestmark = [pytest.mark.integration, needs_root]

SLEEP_30 = b"sleep\x0030\x00"
CLONE_NEWIPC = 0x08000000
IPC_CREAT = 0o1000
IPC_RMID = 0


def caps_of(status_text: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16)
            for line in status_text.splitlines() if line.startswith("Cap")}


def cap_mask(*bits: int) -> int:
    mask = 0
    for bit in bits:
        mask |= 1 << bit
    return mask


CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE = 0, 5, 10


def make_shm_in_namespace_of(pid: int, key: int) -> None:
    """A SysV shared memory segment in the IPC namespace of ``pid``,
    made from a forked child so the test process stays where it is."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/proc/{pid}/ns/ipc", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWIPC) == 0 and libc.shmget(key, 4096, IPC_CREAT | 0o600) >= 0:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def sysvipc_keys(text: str) -> set[int]:
    return {int(line.split()[0]) for line in text.splitlines()[1:] if line.strip()}


def mount_points(mountinfo: str) -> list[str]:
    return [line.split()[4] for line in mountinfo.splitlines() if line.strip()]


# -- what a joined process sees -------------------------------------------------

def test_join_shares_pid1_hostname_mounts_net_and_ipc(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    nsinit.config(hostname="joinme")
    live = start("cat /proc/self/mountinfo > /tmp/creator.mountinfo; "
                 "readlink /proc/self/ns/ipc > /tmp/creator.ipc; "
                 f"{READY}; exec sleep 30", cmdline=SLEEP_30)
    key = 0x4E53494E  # "NSIN"
    make_shm_in_namespace_of(live.pid, key)
    out = ok(nsinit.sh("cat /proc/1/cmdline; echo; hostname; "
                       "for n in net ipc mnt pid uts; do readlink /proc/self/ns/$n; done; "
                       "echo ==; cat /proc/sysvipc/shm; echo ==; cat /proc/self/mountinfo"))
    head, shm, mountinfo = out.split("==\n")
    cmdline, hostname, net, ipc, mnt, pid, uts = head.splitlines()

    assert cmdline == "sleep\x0030\x00"
    assert hostname == "joinme"
    for text, kind in ((net, "net"), (ipc, "ipc"), (mnt, "mnt"), (pid, "pid"), (uts, "uts")):
        assert text == f"{kind}:[{ns_inode(live.pid, kind)}]"
        assert ns_inode(live.pid, kind) != ns_inode("self", kind)
    recorded = json.loads((nsinit.root / "state.json").read_text())["namespace_inodes"]
    assert net == f"net:[{recorded['NEWNET']}]"
    assert ipc == (nsinit.root / "tmp" / "creator.ipc").read_text().strip()
    # The segment made in PID 1's IPC namespace is visible to the joined
    # process, and not on the host.
    assert key in sysvipc_keys(shm)
    assert key not in sysvipc_keys(Path("/proc/sysvipc/shm").read_text())
    assert mount_points(mountinfo) == mount_points((nsinit.root / "tmp" / "creator.mountinfo").read_text())


def test_join_enters_the_user_namespace(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    # Root stays root (the rootfs under pytest's 0700 tmp dir must stay
    # reachable); every other id is shifted, which the join must show.
    maps = [{"container_id": 0, "host_id": 0, "size": 1},
            {"container_id": 1, "host_id": 100001, "size": 65535}]
    data = nsinit.config(uid_mappings=maps, gid_mappings=maps)
    nsinit.config(namespaces=data["namespaces"] + [{"type": "NEWUSER"}])
    live = start()
    out = ok(nsinit.exec("--user", "user", "/bin/sh", "-c",
                         "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u; touch /tmp/made-by-join"))
    user_ns, map0, map1, uid = out.splitlines()
    assert user_ns == f"user:[{ns_inode(live.pid, 'user')}]" != f"user:[{ns_inode('self', 'user')}]"
    assert [map0.split(), map1.split()] == [["0", "0", "1"], ["1", "100001", "65535"]]
    assert uid == "1000"
    made = (nsinit.root / "tmp" / "made-by-join").stat()
    assert (made.st_uid, made.st_gid) == (101000, 101000)


def test_joined_process_is_a_child_of_nobody_inside(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    start()
    # Its parent is outside the PID namespace, so getppid() says 0.
    assert ok(nsinit.sh("echo $$ $PPID")).split()[1] == "0"


def test_joined_process_is_in_the_init_cgroups(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    inside = ok(nsinit.exec("/bin/cat", "/proc/self/cgroup"))
    assert inside == Path(f"/proc/{live.pid}/cgroup").read_text()


def test_joined_process_is_in_configured_cgroups(nsinit: Nsinit, start: Callable[..., Live],
                                                  tmp_path: Path) -> None:
    name = f"nsinit-join-{os.getpid()}-{tmp_path.name}"
    nsinit.config(cgroups={"name": name})
    live = start()
    own = Path("/proc/self/cgroup").read_text()
    init = Path(f"/proc/{live.pid}/cgroup").read_text()
    assert init != own and name in init
    assert ok(nsinit.exec("/bin/cat", "/proc/self/cgroup")) == init
    assert any(line.startswith("cgroup ") and name in line for line in ok(nsinit.run("state")).splitlines())
    live.stop()
    leftovers = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{name}")] + \
        [str(p) for p in Path("/sys/fs/cgroup").glob(name)]
    assert not leftovers, leftovers


def test_joined_process_has_configured_capabilities(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    nsinit.config(capabilities=["CAP_CHOWN", "CAP_KILL"], no_new_privileges=True)
    start()
    out = ok(nsinit.sh("cat /proc/self/status; echo ==; cat /proc/1/status; echo ==; id -u"))
    joined, init, uid = out.split("==\n")
    expected = cap_mask(CAP_CHOWN, CAP_KILL)
    caps = caps_of(joined)
    assert caps == {"CapInh": 0, "CapPrm": expected, "CapEff": expected, "CapBnd": expected, "CapAmb": 0}
    assert caps == caps_of(init)
    assert "NoNewPrivs:\t1" in joined
    assert uid.strip() == "0"


def test_joined_process_runs_as_configured_user_with_ambient_caps(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    bind = ["CAP_NET_BIND_SERVICE"]
    nsinit.config(user="user", capabilities={"bounding": bind, "effective": bind, "permitted": bind,
                                             "inheritable": bind, "ambient": bind})
    start()
    out = ok(nsinit.sh("id -u; id -g; grep ^Cap /proc/self/status"))
    uid, gid, *cap_lines = out.splitlines()
    assert (uid, gid) == ("1000", "1000")
    mask = cap_mask(CAP_NET_BIND_SERVICE)
    assert caps_of("\n".join(cap_lines)) == {"CapInh": mask, "CapPrm": mask, "CapEff": mask,
                                             "CapBnd": mask, "CapAmb": mask}


@pytest.mark.parametrize("user, expected", [
    ("0", "0 0 /root"),
    ("user", "1000 1000 /home/user"),
    ("1000:10", "1000 10 /home/user"),
    ("nobody", "65534 65534 /nonexistent"),
])
def test_join_user_override(nsinit: Nsinit, start: Callable[..., Live], user: str, expected: str) -> None:
    nsinit.config(user="user")
    start()
    assert ok(nsinit.exec("--user", user, "/bin/sh", "-c", 'echo $(id -u) $(id -g) "$HOME"')).strip() == expected


def test_join_environment_is_config_env_and_home_only(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    nsinit.config(environment=["PATH=/bin:/usr/bin", "TERM=xterm", "FROM_CONFIG=1", "OVERRIDDEN=config"])
    start()
    host_env = {**os.environ, "LEAK_FROM_HOST": "1", "HOME": "/host/home"}
    # cat itself, not a shell: sh would add PWD and SHLVL
    out = ok(nsinit.run("exec", "--env", "FROM_CLI=2", "-e", "OVERRIDDEN=cli", "/bin/cat",
                        "/proc/self/environ", env=host_env))
    assert sorted(out.split("\0")[:-1]) == sorted([
        "PATH=/bin:/usr/bin", "TERM=xterm", "FROM_CONFIG=1", "OVERRIDDEN=cli", "FROM_CLI=2", "HOME=/root",
    ])


@pytest.mark.parametrize("script, status", [
    ("exit 7", 7), ("exit 255", 255), ("kill -9 $$", 137), ("kill -TERM $$", 143),
])
def test_join_exit_status_propagates(nsinit: Nsinit, start: Callable[..., Live], script: str, status: int) -> None:
    live = start()
    result = nsinit.sh(script)
    assert result.returncode == status, result.stderr
    assert stderr_lines(result) == []
    assert live.alive()


def test_join_command_not_found_is_127_in_one_line(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    start()
    result = nsinit.exec("/no/such/command")
    assert result.returncode == 127
    lines = stderr_lines(result)
    assert len(lines) == 1 and "/no/such/command" in lines[0]


def test_joined_process_has_configured_limits(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    nsinit.config(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}], oom_score_adj=321)
    start()
    out = ok(nsinit.sh("grep 'Max open files' /proc/self/limits; cat /proc/self/oom_score_adj"))
    limits, oom = out.splitlines()
    assert limits.split()[3:5] == ["123", "456"]
    assert oom == "321"


@pytest.mark.parametrize("configured, expected", [(None, "0022"), ("0027", "0027")])
def test_joined_process_gets_the_containers_umask_not_the_callers(
        nsinit: Nsinit, start: Callable[..., Live], configured: str | None, expected: str) -> None:
    nsinit.config(umask=configured)
    start()
    old = os.umask(0o077)
    try:
        result = nsinit.sh("umask")
    finally:
        os.umask(old)
    assert ok(result).strip() == expected


def test_join_cwd(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    nsinit.config(working_dir="/home")
    start()
    assert ok(nsinit.sh("pwd")).strip() == "/home"
    assert ok(nsinit.exec("--cwd", "/tmp", "/bin/sh", "-c", "pwd")).strip() == "/tmp"
    result = nsinit.exec("--cwd", "/no/such/dir", "/bin/true")
    assert result.returncode == 125
    lines = stderr_lines(result)
    assert len(lines) == 1 and "/no/such/dir" in lines[0]


def test_joined_process_gets_no_extra_fds(nsinit: Nsinit, start: Callable[..., Live], tmp_path: Path) -> None:
    start()
    # Hand nsinit inheritable fds of our own: none may reach the container.
    read_end, write_end = os.pipe()
    extra = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nsinit", "exec", "/bin/ls", "/proc/self/fd"], cwd=nsinit.root,
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
            pass_fds=(read_end, write_end, extra))
    finally:
        for fd in (read_end, write_end, extra):
            os.close(fd)
    # 3 is ls's own handle on /proc/self/fd
    assert sorted(ok(result).split(), key=int) == ["0", "1", "2", "3"]


def run_under_pty(args: list[str], cwd: Path, timeout: float = 20) -> tuple[int, str]:
    """Run ``args`` with a pty made here as its stdin/stdout/stderr."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True)
    finally:
        os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                output += data
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    return proc.returncode, output.decode(errors="replace")


@pytest.mark.parametrize("option, expected", [("--tty", "TTY"), ("--no-tty", "NOTTY"), ("--", "TTY")])
def test_join_tty(nsinit: Nsinit, start: Callable[..., Live], option: str, expected: str) -> None:
    live = start()
    status, output = run_under_pty(
        [sys.executable, "-m", "nsinit", "exec", option, "/bin/sh", "-c",
         'if [ -t 0 ] && [ -t 1 ] && [ -t 2 ]; then echo T""TY; else echo NOT""TY; fi'],
        cwd=nsinit.root)
    assert status == 0, output
    assert "Traceback" not in output
    assert expected in output.split(), output
    assert live.alive()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_to_a_joining_nsinit_reach_the_joined_process(nsinit: Nsinit, start: Callable[..., Live],
                                                               signum: int) -> None:
    live = start()
    joined = nsinit.popen("exec", "/bin/sh", "-c", "touch /tmp/joined; exec sleep 30")
    try:
        wait_until(lambda: (nsinit.root / "tmp" / "joined").exists() or joined.poll() is not None)
        # The supervisor installs its forwarding handlers only after the
        # exec (see the report on container.py); give it that moment.
        time.sleep(0.1)
        joined.send_signal(signum)
        _, err = joined.communicate(timeout=10)
    finally:
        if joined.poll() is None:
            joined.kill()
            joined.communicate(timeout=10)
    assert joined.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert live.alive()


def test_the_third_ctrl_c_kills_only_the_joined_process(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    joined = nsinit.popen("exec", "/bin/sh", "-c",
                          'trap "" INT; touch /tmp/joined; while :; do sleep 0.05; done')
    try:
        wait_until(lambda: (nsinit.root / "tmp" / "joined").exists() or joined.poll() is not None)
        for _ in range(2):
            joined.send_signal(signal.SIGINT)
            time.sleep(0.3)
            assert joined.poll() is None  # forwarded, and ignored
        joined.send_signal(signal.SIGINT)
        _, err = joined.communicate(timeout=10)
    finally:
        if joined.poll() is None:
            joined.kill()
            joined.communicate(timeout=10)
    assert joined.returncode == 128 + signal.SIGKILL
    assert err.splitlines() == ["nsinit: interrupted 3 times: killing the joined process (SIGKILL)"]
    assert live.alive()


# -- the join never tears the container down; PID 1 does ----------------------

def test_join_leaves_the_container_running(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    before = (nsinit.root / "state.json").read_text()
    ok(nsinit.exec("/bin/true"))
    assert nsinit.exec("/bin/false").returncode == 1
    assert live.alive()
    assert int((nsinit.root / "pid").read_text()) == live.pid
    assert (nsinit.root / "state.json").read_text() == before
    assert "running" in ok(nsinit.run("state"))


def test_pid1_exit_kills_joined_processes_and_creator_cleans_up(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    joined = nsinit.popen("exec", "/bin/sh", "-c", "touch /tmp/joined; exec sleep 60")
    try:
        wait_until(lambda: (nsinit.root / "tmp" / "joined").exists() or joined.poll() is not None)
        assert joined.poll() is None
        os.kill(live.pid, signal.SIGKILL)
        _, err = joined.communicate(timeout=10)
    finally:
        if joined.poll() is None:
            joined.kill()
            joined.communicate(timeout=10)
    assert joined.returncode == 137
    assert err.splitlines() == [f"nsinit: the container's init (pid {live.pid}) exited, which killed this process"]
    assert live.finish() == 137
    assert not (nsinit.root / "pid").exists() and not (nsinit.root / "state.json").exists()


def test_a_joined_process_killed_on_its_own_says_nothing_of_the_init(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    start()
    result = nsinit.exec("/bin/sh", "-c", "kill -9 $$")
    assert (result.returncode, result.stderr) == (137, "")


# -- create or join: stale, garbage and faked files ---------------------------

def fake_state(pid: int, start_time: int, root: Path, **changes: object) -> str:
    record: dict[str, object] = {
        "init_pid": pid, "init_start_time": start_time, "created": "2014-06-01T00:00:00Z",
        "root": str(root), "rootfs": str(root), "namespace_paths": {}, "namespace_inodes": {},
        "cgroup_paths": {}, "network_state": [], "status": "running", "config": {},
    }
    record.update(changes)
    return json.dumps(record)


def exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    return proc.pid


def assert_one_warning(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsinit: warning: "), stderr


def test_stale_record_of_a_dead_init_is_replaced(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    dead = exited_pid()
    stale = fake_state(dead, 1234, nsinit.root, namespace_inodes={"NEWNS": 1, "NEWPID": 2})
    # What a supervisor killed by SIGKILL leaves: its record and the public copies.
    (nsinit.root / "state.json").write_text(stale)
    (nsinit.root / "pid").write_text(str(dead))
    with planted_record(nsinit.root, stale) as record:
        live = start()
        assert live.pid != dead
        for copy in (record, nsinit.root / "state.json"):
            recorded = json.loads(copy.read_text())
            assert recorded["init_pid"] == live.pid
            assert recorded["namespace_inodes"]["NEWPID"] == ns_inode(live.pid, "pid")
        assert ok(nsinit.sh("echo $$")).strip() != "1"  # and it is joinable
        live.stop()
        assert_one_warning(live.stderr)
        assert not os.path.lexists(private_dir(nsinit.root))


@pytest.fixture
def bystander(sleeper: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """An unrelated host process that a faked pid file names."""
    return sleeper


def start_time_of(pid: int) -> int:
    from nsinit.state import read_start_time

    start_time = read_start_time(pid)
    assert start_time is not None
    return start_time


PRIVATE_CASES = ["wrong start time", "right start time, other namespaces", "right start time, its own namespaces",
                 "garbage init_pid", "truncated state.json"]
PUBLIC_CASES = ["pid file only", "public pid and state.json only"]


@pytest.mark.parametrize("case", PRIVATE_CASES + PUBLIC_CASES)
def test_record_naming_an_unrelated_process_is_never_joined(
        nsinit: Nsinit, bystander: subprocess.Popen[bytes], case: str) -> None:
    pid = bystander.pid
    host_ns = {kind: ns_inode(pid, kind) for kind in ("mnt", "pid", "net", "ipc", "uts")}
    real_start = start_time_of(pid)
    own_ns = {"NEWNS": host_ns["mnt"], "NEWPID": host_ns["pid"], "NEWNET": host_ns["net"]}
    other_ns = {"NEWNS": 7, "NEWPID": 8}
    state_text = {
        "wrong start time": fake_state(pid, real_start + 1, nsinit.root),
        "right start time, other namespaces": fake_state(pid, real_start, nsinit.root, namespace_inodes=other_ns),
        "right start time, its own namespaces": fake_state(pid, real_start, nsinit.root, namespace_inodes=own_ns),
        "garbage init_pid": fake_state(pid, real_start, nsinit.root, init_pid="abc"),
        "truncated state.json": fake_state(pid, real_start, nsinit.root)[:40],
        "pid file only": None,
        "public pid and state.json only": fake_state(pid, real_start, nsinit.root, namespace_inodes=other_ns),
    }[case]
    # The public copies name the bystander too (or are all there is).
    (nsinit.root / "pid").write_text(str(pid))
    if state_text is not None:
        (nsinit.root / "state.json").write_text(state_text)
    with planted_record(nsinit.root, state_text or "") if case in PRIVATE_CASES else nullcontext():
        result = nsinit.sh("echo $$; readlink /proc/self/ns/mnt")
        assert result.returncode == 0, result.stderr
        assert_one_warning(result.stderr)
        if case in PUBLIC_CASES:
            assert "without a live container" in result.stderr
        assert not os.path.lexists(private_dir(nsinit.root))
    dollar, mnt = result.stdout.split()
    assert dollar == "1"  # a new container: we are its PID 1
    assert mnt != f"mnt:[{host_ns['mnt']}]"
    # The bystander is untouched: alive, same start time, same namespaces.
    assert bystander.poll() is None
    assert start_time_of(pid) == real_start
    assert {kind: ns_inode(pid, kind) for kind in host_ns} == host_ns
    assert read_cmdline(pid) == SLEEP_30


def test_files_forged_inside_the_container_are_never_trusted(
        nsinit: Nsinit, start: Callable[..., Live], bystander: subprocess.Popen[bytes]) -> None:
    # The root dir is the container's "/": its root user rewrites the public
    # copies to name a host process.  nsinit joins, reports and signals the
    # real container all the same, and cleans the forgeries up at its end.
    live = start()
    pid = bystander.pid
    forged = fake_state(pid, start_time_of(pid), nsinit.root, namespace_inodes={"NEWNS": 7, "NEWPID": 8})
    ok(nsinit.sh(f"printf '%s' '{forged}' > /state.json; echo {pid} > /pid"))
    assert int((nsinit.root / "pid").read_text()) == pid  # the forgery is really there
    joined = ok(nsinit.sh("echo $$; readlink /proc/self/ns/pid")).split()
    assert joined[0] != "1" and joined[1] == f"pid:[{ns_inode(live.pid, 'pid')}]"
    assert json.loads(ok(nsinit.run("state", "--json")))["init_pid"] == live.pid
    ok(nsinit.run("kill", "KILL"))
    assert live.finish() == 137
    assert bystander.poll() is None
    assert not os.path.lexists(nsinit.root / "pid") and not os.path.lexists(nsinit.root / "state.json")
    assert not os.path.lexists(private_dir(nsinit.root))


# -- twenty at once ------------------------------------------------------------

def test_concurrent_execs_in_an_empty_dir_make_one_container(nsinit: Nsinit) -> None:
    count = 20
    (nsinit.root / "tmp" / "joined").mkdir()
    # Every process reports itself and PID 1; PID 1 waits (bounded) until all
    # have reported, so none of them can come after it and start another.
    script = ('echo "$$ $(readlink /proc/self/ns/pid) $(tr "\\0" " " < /proc/1/cmdline)"; '
              "touch /tmp/joined/$$; "
              f'if [ $$ = 1 ]; then i=0; while [ $(ls /tmp/joined | wc -l) -lt {count} ] && [ $i -lt 300 ]; '
              "do sleep 0.05; i=$((i+1)); done; sleep 0.3; fi")
    procs = [nsinit.popen("exec", "/bin/sh", "-c", script) for _ in range(count)]
    results = []
    try:
        deadline = time.monotonic() + 40
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    for status, _out, err in results:
        assert status == 0 and "Traceback" not in err and not err.strip(), (status, err)
    reports = [out.split(" ", 2) for _, out, _ in results]
    pids = [pid for pid, _, _ in reports]
    assert pids.count("1") == 1
    assert len(set(pids)) == count
    assert len({pid_ns for _, pid_ns, _ in reports}) == 1
    assert {cmd.strip() for _, _, cmd in reports} == {f"/bin/sh -c {script}"}


def test_a_join_ignores_a_container_json_rewritten_from_inside(nsinit: Nsinit) -> None:
    # container.json sits in the rootfs: the container's root can rewrite it.
    # A joined process must get what the container was created with.
    import json as _json

    forged = _json.loads((nsinit.root / "container.json").read_text())
    forged["capabilities"] = ["SYS_ADMIN", "SYS_MODULE"]
    forged["user"] = "root"
    nsinit.config(user="user")
    init = nsinit.popen("exec", "/bin/sh", "-c", "touch /tmp/ready; exec sleep 30")
    try:
        nsinit.wait_for(lambda: (nsinit.root / "tmp" / "ready").exists())
        (nsinit.root / "container.json").write_text(_json.dumps(forged))
        result = nsinit.sh("id -u; grep CapBnd /proc/self/status")
        assert result.returncode == 0, result.stderr
        uid, capbnd = result.stdout.split("\n")[:2]
        assert uid == "1000"
        from nsinit.capabilities import names_to_mask
        from nsinit.config.defaults import DEFAULT_CAPABILITIES
        assert int(capbnd.split()[1], 16) == names_to_mask(DEFAULT_CAPABILITIES)
    finally:
        nsinit.run("kill", "KILL")
        init.communicate(timeout=10)


def test_a_join_does_not_read_container_json(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    # `exec` decides create-or-join first and reads container.json only to
    # create: an unreadable file neither slows nor breaks a join.
    live = start()
    (nsinit.root / "container.json").write_text("{ not json")
    assert ok(nsinit.exec("/bin/echo", "joined")).strip() == "joined"
    assert live.alive()
    live.stop()
    created = nsinit.exec("/bin/true")
    assert created.returncode == 125
    assert "container.json" in created.stderr and len(stderr_lines(created)) == 1


# -- exec --new / --join: say which one is wanted ----------------------------

def test_exec_new_refuses_a_live_container_in_one_line(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    result = nsinit.exec("--new", "/bin/sh", "-c", "touch /tmp/ran")
    assert result.returncode == 125
    assert stderr_lines(result) == [f"nsinit: exec --new: a container already runs in {nsinit.root} "
                                    f"(pid {live.pid})"]
    assert not (nsinit.root / "tmp" / "ran").exists() and live.alive()


def test_exec_new_creates_when_none_runs(nsinit: Nsinit) -> None:
    assert ok(nsinit.exec("--new", "/bin/sh", "-c", "echo $$")) == "1\n"


def test_exec_join_refuses_when_none_runs_and_creates_nothing(nsinit: Nsinit) -> None:
    result = nsinit.exec("--join", "/bin/sh", "-c", "touch /tmp/ran")
    assert result.returncode == 125
    assert stderr_lines(result) == [f"nsinit: exec --join: no running container in {nsinit.root}"]
    assert not (nsinit.root / "tmp" / "ran").exists() and not (nsinit.root / "pid").exists()


def test_exec_join_joins_the_live_one(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    live = start()
    joined = ok(nsinit.exec("--join", "/bin/sh", "-c", "readlink /proc/self/ns/pid; echo $$")).split()
    assert joined[0] == f"pid:[{ns_inode(live.pid, 'pid')}]" and joined[1] != "1"
