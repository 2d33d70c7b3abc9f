"""nsinit run by a plain user: a real unprivileged account, made for the session.

The test user is created with useradd (a unique name, no subordinate ids)
and removed at the end, also when a test fails.  It cannot read root's
Python or this tree under /work or /root, so the package (with its built C
helper, cffi's backend and docopt) is copied to a directory it can read,
and nsinit runs as ``runuser -u NAME -- PYTHON -m nsinit``.  Every rootfs
is built by the user with ``nsinit rootfs``, so its files are the user's.

After each test: nothing in /run/nsinit, nothing in the user's state
directory, no process of the user's left.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, needs_root, stderr_lines

pytestmark = [pytest.mark.integration, needs_root]

needs_runuser = pytest.mark.skipif(shutil.which("runuser") is None or shutil.which("useradd") is None,
                                   reason="needs runuser and useradd (util-linux, passwd)")


def records_in(run_dir: Path) -> list[str]:
    """What containers left in a run dir: everything but the seccomp cache,
    which outlives them on purpose (compiled filters, keyed by content)."""
    return sorted(name for name in os.listdir(run_dir) if name != "seccomp-cache")


class PlainUser:
    """The test account, and nsinit run as it."""

    def __init__(self, name: str, base: Path) -> None:
        self.name, self.base = name, base
        import pwd

        entry = pwd.getpwnam(name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.home = Path(entry.pw_dir)
        self.lib = base / "lib"
        self.python = ""
        self.run_dir = Path(f"/tmp/nsinit-{self.uid}")

    def env(self, **extra: str) -> list[str]:
        values = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.home),
                  "PYTHONPATH": str(self.lib), "LANG": "C.UTF-8", **extra}
        return ["env", "-i", *(f"{k}={v}" for k, v in values.items())]

    def command(self, args: list[str], **env: str) -> list[str]:
        return ["runuser", "-u", self.name, "--", *self.env(**env), *args]

    def nsinit_command(self, args: list[str], **env: str) -> list[str]:
        return self.command([self.python, "-m", "nsinit", *args], **env)

    def nsinit(self, *args: str, cwd: Path, timeout: float = 60, stdin: str = "",
               **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.nsinit_command(list(args), **env), cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, input=stdin)

    def popen(self, *args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.nsinit_command(list(args), **env), cwd=cwd, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def processes(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == self.uid:
                        found.append(int(entry))
                except OSError:
                    continue  # exited while we looked
        return found


def _copy_package(target: Path) -> None:
    """nsinit (with its built _clone module), cffi's backend and docopt, where the user can read them."""
    import _cffi_backend
    import docopt

    target.mkdir()
    shutil.copytree(REPO / "nsinit", target / "nsinit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(_cffi_backend.__file__, target)
    docopt_path = Path(docopt.__file__)
    if docopt_path.name == "__init__.py":
        shutil.copytree(docopt_path.parent, target / "docopt", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(docopt_path, target)


def _usable_python(user: PlainUser) -> str:
    """An interpreter of this Python version the user may run (root's own
    may sit under /root, which is 0700)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.path.exists(candidate):
            continue
        probe = subprocess.run(user.command([candidate, "-c", "import nsinit._native"]),
                               capture_output=True, text=True, cwd="/")
        if probe.returncode == 0:
            return candidate
    pytest.skip(f"no Python {version} that the test user can run (root's is {sys.executable})")


@pytest.fixture(scope="module")
def user() -> Iterator[PlainUser]:
    if shutil.which("runuser") is None or shutil.which("useradd") is None:
        pytest.skip("needs runuser and useradd (Debian util-linux and passwd)")
    base = Path(tempfile.mkdtemp(prefix="nsinit-rootless-"))
    name = "nsr" + secrets.token_hex(4)
    home = base / "home"
    created = False
    try:
        os.chmod(base, 0o755)
        # No subordinate ids: the plain case first; test_subordinate_ids adds a range.
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh",
                        "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
                       check=True, capture_output=True, text=True)
        created = True
        plain = PlainUser(name, base)
        home.mkdir()
        os.chown(home, plain.uid, plain.gid)
        _copy_package(plain.lib)
        subprocess.run(["chmod", "-R", "a+rX", str(plain.lib)], check=True)
        plain.python = _usable_python(plain)
        yield plain
    finally:
        if created:
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
            subprocess.run(["userdel", "--force", name], capture_output=True)
            shutil.rmtree(f"/tmp/nsinit-{plain.uid}", ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def work(user: PlainUser) -> Iterator[Path]:
    """A directory of the user's, removed after the test, with the residue checks."""
    path = Path(tempfile.mkdtemp(prefix="t-", dir=user.base))
    os.chown(path, user.uid, user.gid)
    try:
        yield path
        left = user.processes()
        assert not left, f"processes of the test user left running: {[describe(pid) for pid in left]}"
        run_dir = Path("/run/nsinit")
        left = [e for e in os.listdir(run_dir)] if run_dir.is_dir() else []
        for root in path.iterdir():
            st = os.stat(root)
            assert f"{st.st_dev:x}-{st.st_ino:x}" not in left, "a record in /run/nsinit"
        if user.run_dir.exists():
            left = records_in(user.run_dir)
            assert not left, f"left in {user.run_dir}: {left}"
    finally:
        for pid in user.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(path, ignore_errors=True)


def make_rootfs(user: PlainUser, work: Path, name: str = "rootfs") -> Path:
    result = user.nsinit("rootfs", name, cwd=work)
    assert result.returncode == 0, result.stderr
    return work / name


def edit_config(rootfs: Path, **changes: object) -> None:
    path = rootfs / "container.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def running(user: PlainUser, rootfs: Path) -> bool:
    return user.nsinit("state", cwd=rootfs).returncode == 0


# --- the tests -------------------------------------------------------------------

def test_rootfs_built_by_a_plain_user_is_theirs(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    for path in (rootfs, rootfs / "bin" / "busybox", rootfs / "etc" / "passwd", rootfs / "home" / "user"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (user.uid, user.gid), path
    assert not [p for p in (rootfs / "dev").iterdir()], "no device node is made (mknod needs root)"


def test_exec_as_a_plain_user(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    script = ("echo pid=$$; hostname; cat /proc/self/uid_map /proc/self/gid_map; "
              "cat /proc/self/setgroups; id -u; touch /tmp/made; echo data > /dev/null && echo null-ok")
    result = user.nsinit("exec", "/bin/sh", "-c", script, cwd=rootfs)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "pid=1"
    assert lines[1] == "nsinit"
    assert lines[2].split() == ["0", str(user.uid), "1"]   # uid_map: the caller's uid as root
    assert lines[3].split() == ["0", str(user.gid), "1"]   # gid_map
    assert lines[4] == "deny"  # the kernel's price for an unprivileged gid_map
    assert lines[5] == "0"
    assert lines[6] == "null-ok"  # /dev/null bound from the host
    st = os.stat(rootfs / "tmp" / "made")
    assert (st.st_uid, st.st_gid) == (user.uid, user.gid), "a file made inside is the caller's on the host"


def test_state_goes_to_the_users_own_directory(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    proc = user.popen("exec", "sleep", "30", cwd=rootfs)
    try:
        wait_for(lambda: running(user, rootfs))
        st = os.lstat(user.run_dir)
        assert (st.st_uid, st.st_mode & 0o7777) == (user.uid, 0o700)
        root = os.stat(rootfs)
        assert records_in(user.run_dir) == [f"{root.st_dev:x}-{root.st_ino:x}"]
        assert not os.path.exists(f"/run/nsinit/{root.st_dev:x}-{root.st_ino:x}")
    finally:
        user.nsinit("kill", "KILL", cwd=rootfs)
        proc.wait(timeout=15)


def test_xdg_runtime_dir_is_used_when_it_is_private(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    xdg = work / "xdg"
    xdg.mkdir(mode=0o700)
    os.chown(xdg, user.uid, user.gid)
    result = user.nsinit("exec", "/bin/sh", "-c", "ls /", cwd=rootfs, XDG_RUNTIME_DIR=str(xdg))
    assert result.returncode == 0, result.stderr
    assert os.listdir(xdg / "nsinit") == [], "the record went away with the container"
    proc = user.popen("exec", "sleep", "30", cwd=rootfs, XDG_RUNTIME_DIR=str(xdg))
    try:
        wait_for(lambda: bool(os.listdir(xdg / "nsinit")))
    finally:
        user.nsinit("kill", "KILL", cwd=rootfs, XDG_RUNTIME_DIR=str(xdg))
        proc.wait(timeout=15)


def test_a_state_dir_someone_else_made_is_refused(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    shutil.rmtree(user.run_dir, ignore_errors=True)
    user.run_dir.mkdir(mode=0o755)  # root's, as another user could have made it first
    try:
        result = user.nsinit("exec", "/bin/true", cwd=rootfs)
        lines = stderr_lines(result)
        assert result.returncode == 125
        assert lines == [f"nsinit: state: {user.run_dir} is owned by uid 0, not {user.uid}: refusing to keep "
                         "container state there (remove it, or set NSINIT_RUN_DIR or XDG_RUNTIME_DIR)"]
        assert records_in(user.run_dir) == []
    finally:
        user.run_dir.rmdir()


def test_join_state_ps_kill(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    proc = user.popen("exec", "sleep", "30", cwd=rootfs)
    try:
        wait_for(lambda: running(user, rootfs))
        state = json.loads(user.nsinit("state", "--json", cwd=rootfs).stdout)
        init = state["init_pid"]
        joined = user.nsinit("exec", "/bin/sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/self/uid_map; "
                             "hostname; echo $$", cwd=rootfs)
        assert joined.returncode == 0, joined.stderr
        lines = joined.stdout.split("\n")
        assert lines[0] == "sleep\x0030\x00"
        assert lines[1].split() == ["0", str(user.uid), "1"]
        assert lines[2] == "nsinit"
        assert lines[3] != "1"
        for kind in ("user", "pid", "mnt", "net", "uts"):
            assert os.stat(f"/proc/{init}/ns/{kind}").st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino
        ps = user.nsinit("ps", cwd=rootfs)
        assert ps.returncode == 0, ps.stderr
        assert "sleep 30" in ps.stdout
        killed = user.nsinit("kill", "KILL", cwd=rootfs)
        assert killed.returncode == 0, killed.stderr
        assert proc.wait(timeout=15) == 137
    finally:
        if proc.poll() is None:
            user.nsinit("kill", "KILL", cwd=rootfs)
            proc.wait(timeout=15)


def test_limits_are_refused_naming_the_field(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    edit_config(rootfs, cgroups={"memory": "64M", "pids_limit": 20})
    result = user.nsinit("exec", "/bin/true", cwd=rootfs)
    lines = stderr_lines(result)
    assert result.returncode == 125
    assert [line.split(":")[2].strip() for line in lines] == ["cgroups.memory", "cgroups.pids_limit"]
    assert "none is delegated to you" in lines[0]
    edit_config(rootfs, cgroups={"memory": "64M", "rootless": "ignore"})
    result = user.nsinit("exec", "/bin/true", cwd=rootfs)
    assert result.returncode == 0, result.stderr
    assert "warning: container.json: cgroups.memory: ignored: it needs a cgroup" in result.stderr


def test_no_cgroup_file_is_written(user: PlainUser, work: Path) -> None:
    """Without delegation the container has no cgroup: nothing under
    /sys/fs/cgroup names it, and it runs in the caller's own cgroups."""
    rootfs = make_rootfs(user, work)
    result = user.nsinit("exec", "/bin/cat", "/proc/self/cgroup", cwd=rootfs)
    assert result.returncode == 0, result.stderr
    with open("/proc/self/cgroup") as f:
        assert result.stdout == f.read(), "the container stays in its caller's cgroups"
    proc = user.popen("exec", "sleep", "30", cwd=rootfs)
    try:
        wait_for(lambda: running(user, rootfs))
        for command in ("pause", "stats"):
            refused = user.nsinit(command, cwd=rootfs)
            assert refused.returncode == 1
            assert stderr_lines(refused) == ["nsinit: cgroups: the container has no cgroup: without root, nsinit "
                                             "makes one only in a cgroup2 subtree delegated to you"]
    finally:
        user.nsinit("kill", "KILL", cwd=rootfs)
        proc.wait(timeout=15)


def test_a_map_of_ids_the_user_does_not_own_is_refused(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    edit_config(rootfs, uid_mappings=[{"container_id": 0, "host_id": 100000, "size": 10}])
    result = user.nsinit("exec", "/bin/true", cwd=rootfs)
    assert result.returncode == 125
    assert stderr_lines(result) == [
        "nsinit: container.json: uid_mappings[0]: host uids 100000-100009 are not yours: without root you "
        f"may map your own uid {user.uid} (one id) and what /etc/subuid grants {user.name} (nothing)"]


def test_veth_is_refused_without_root(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    edit_config(rootfs, networks=[{"type": "loopback"}, {"type": "veth", "bridge": "nsinit0"}])
    result = user.nsinit("exec", "/bin/true", cwd=rootfs)
    assert result.returncode == 125
    assert stderr_lines(result)[0].startswith("nsinit: container.json: networks[1].type: a veth needs root")


def test_gc_walks_the_users_own_records(user: PlainUser, work: Path) -> None:
    result = user.nsinit("gc", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_spec_rootless_writes_the_callers_own_maps(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    result = user.nsinit("spec", "--rootless", "--force", cwd=rootfs)
    assert result.returncode == 0, result.stderr
    config = json.loads((rootfs / "container.json").read_text())
    assert config["uid_mappings"] == [{"container_id": 0, "host_id": user.uid, "size": 1}]
    assert config["gid_mappings"] == [{"container_id": 0, "host_id": user.gid, "size": 1}]
    assert "cgroups" not in config
    assert config["networks"] == [{"type": "loopback"}]
    ran = user.nsinit("exec", "/bin/cat", "/proc/self/uid_map", cwd=rootfs)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["0", str(user.uid), "1"]


@pytest.fixture
def subordinate_ids(user: PlainUser) -> Iterator[int]:
    """A range of 65536 ids in /etc/subuid and /etc/subgid for the test user, removed after."""
    if not shutil.which("newuidmap") or not shutil.which("newgidmap"):
        pytest.skip("newuidmap/newgidmap not installed (Debian package uidmap)")
    first = 3_000_000_000 + secrets.randbelow(10_000) * 65536
    line = f"{user.name}:{first}:65536\n"
    saved = {}
    try:
        for path in ("/etc/subuid", "/etc/subgid"):
            saved[path] = Path(path).read_text() if os.path.exists(path) else None
            with open(path, "a") as f:
                f.write(line)
        yield first
    finally:
        for path, text in saved.items():
            if text is None:
                os.unlink(path)
            else:
                current = Path(path).read_text()
                Path(path).write_text(current.replace(line, ""))


def test_subordinate_ids_through_newuidmap(user: PlainUser, work: Path, subordinate_ids: int) -> None:
    rootfs = make_rootfs(user, work)
    result = user.nsinit("spec", "--rootless", "--force", cwd=rootfs)
    assert result.returncode == 0, result.stderr
    config = json.loads((rootfs / "container.json").read_text())
    expected = [{"container_id": 0, "host_id": user.uid, "size": 1},
                {"container_id": 1, "host_id": subordinate_ids, "size": 65536}]
    assert config["uid_mappings"] == expected
    assert config["gid_mappings"] == [dict(expected[0], host_id=user.gid), expected[1]]
    # --user with another uid works inside; what it makes is a subordinate id's on the host.
    script = "id -u; id -g; cat /proc/self/uid_map; cat /proc/self/setgroups; touch /tmp/by-user"
    ran = user.nsinit("exec", "--user", "user", "/bin/sh", "-c", script, cwd=rootfs)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.split("\n")
    assert lines[:2] == ["1000", "1000"]
    assert [line.split() for line in lines[2:4]] == [["0", str(user.uid), "1"], ["1", str(subordinate_ids), "65536"]]
    assert lines[4] == "allow"  # newgidmap mapped the groups: setgroups works
    st = os.stat(rootfs / "tmp" / "by-user")
    assert (st.st_uid, st.st_gid) == (subordinate_ids + 999, subordinate_ids + 999)
    # A range beyond the grant is refused in one line naming the entry.
    edit_config(rootfs, uid_mappings=[{"container_id": 0, "host_id": subordinate_ids, "size": 65537}])
    refused = user.nsinit("exec", "/bin/true", cwd=rootfs)
    assert refused.returncode == 125
    assert stderr_lines(refused) == [
        f"nsinit: container.json: uid_mappings[0]: host uids {subordinate_ids}-{subordinate_ids + 65536} are "
        f"not yours: without root you may map your own uid {user.uid} (one id) and what /etc/subuid grants "
        f"{user.name} ({subordinate_ids}-{subordinate_ids + 65535})"]


# --- networking without root ---------------------------------------------------------

@pytest.fixture
def tun_usable() -> Iterator[None]:
    """/dev/net/tun as distributions ship it (0666, by udev); restored after."""
    mode = os.stat("/dev/net/tun").st_mode & 0o777 if os.path.exists("/dev/net/tun") else None
    if mode is None:
        pytest.skip("no /dev/net/tun (CONFIG_TUN)")
    os.chmod("/dev/net/tun", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/net/tun", mode)


# Run by root in a network namespace made for the test: a veth (both ends there)
# with two addresses stands in for the host's network (pasta copies the
# first to the container), and a listener on the second is what the
# container reaches through its helper.  Nothing leaves that namespace.
_OUTSIDE = r"""
set -e
ip link set lo up
ip link add d0 type veth peer name d1
ip addr add 10.199.0.1/24 dev d0
ip addr add 10.199.0.5/24 dev d0
ip link set d1 up
ip link set d0 up
ip route add default via 10.199.0.254 dev d0
{python} -c '
import os, socket, sys
s = socket.socket()
s.bind(("10.199.0.5", 9999))
s.listen()
open(sys.argv[1], "w").close()
c, peer = s.accept()
c.sendall(b"hello from outside\n")
c.close()
' {ready} &
while [ ! -e {ready} ]; do sleep 0.05; done
{nsinit}
wait
"""


@pytest.mark.parametrize("kind", ["slirp4netns", "pasta"])
def test_user_mode_network_reaches_outside(user: PlainUser, work: Path, kind: str, tun_usable: None) -> None:
    if not shutil.which(kind):
        pytest.skip(f"{kind} not installed (Debian package {'passt' if kind == 'pasta' else kind})")
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare (util-linux) and ip (iproute2)")
    rootfs = make_rootfs(user, work)
    edit_config(rootfs, networks=[{"type": "loopback"}, {"type": kind}])
    script = ("ip -o -4 addr show tap0; ip route | grep ^default; "
              # timeout: the pasta of Debian 12 now and then does not pass
              # on the listener's FIN (nc then sits in FIN_WAIT2 for good);
              # the line has come by then.
              "timeout 5 nc 10.199.0.5 9999 </dev/null; true")
    command = " ".join(f"'{part}'" for part in user.nsinit_command(["exec", "/bin/sh", "-c", script]))
    outside = _OUTSIDE.format(python=sys.executable, ready=work / "ready", nsinit=command)
    result = subprocess.run(["unshare", "--net", "--", "sh", "-c", outside], cwd=rootfs, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    address = "10.0.2.100/24" if kind == "slirp4netns" else "10.199.0.1/24"
    assert lines[0].split()[1:4] == ["tap0", "inet", address]
    assert lines[1].startswith("default via ") and lines[1].split()[3:5] == ["dev", "tap0"]
    assert lines[2] == "hello from outside"
    assert not user.processes(), f"{kind} still runs after the container"


def test_user_mode_network_takes_no_addresses(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    edit_config(rootfs, networks=[{"type": "slirp4netns", "address": "10.0.2.5/24"}])
    result = user.nsinit("exec", "/bin/true", cwd=rootfs)
    assert result.returncode == 125
    assert stderr_lines(result) == [
        "nsinit: container.json: networks[0].address: is not configurable for a slirp4netns network"]


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"{pid} " + f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return str(pid)


def test_user_mode_network_without_tun_access_is_one_line(user: PlainUser, work: Path) -> None:
    if not os.path.exists("/dev/net/tun") or not shutil.which("slirp4netns"):
        pytest.skip("needs /dev/net/tun and slirp4netns")
    rootfs = make_rootfs(user, work)
    edit_config(rootfs, networks=[{"type": "slirp4netns"}])
    mode = os.stat("/dev/net/tun").st_mode & 0o777
    os.chmod("/dev/net/tun", 0o600)  # as a host without udev's rule has it
    try:
        result = user.nsinit("exec", "/bin/true", cwd=rootfs)
    finally:
        os.chmod("/dev/net/tun", mode)
    assert result.returncode == 125
    assert stderr_lines(result) == ["nsinit: network: slirp4netns needs /dev/net/tun readable and writable by "
                                    "you (distributions make it 0666; its ioctls need CAP_NET_ADMIN anyway)"]


def test_gc_removes_what_a_killed_nsinit_left_in_the_users_dir(user: PlainUser, work: Path) -> None:
    rootfs = make_rootfs(user, work)
    proc = user.popen("exec", "sleep", "30", cwd=rootfs)
    try:
        wait_for(lambda: running(user, rootfs))
        state = json.loads(user.nsinit("state", "--json", cwd=rootfs).stdout)
        os.kill(state["supervisor_pid"], signal.SIGKILL)  # its init dies with it (PDEATHSIG)
        proc.wait(timeout=15)
        wait_for(lambda: not os.path.exists(f"/proc/{state['init_pid']}"))
        assert len(records_in(user.run_dir)) == 1, "the record outlived its nsinit"
        shutil.rmtree(rootfs)  # nothing would ever look there again
        result = user.nsinit("gc", cwd=work)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"removed container {state['init_pid']} of {rootfs} (")
        assert records_in(user.run_dir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def delegated_cgroup(user: PlainUser) -> Iterator[Path]:
    """A cgroup2 directory given to the test user, as systemd's Delegate=yes does."""
    from nsinit.cgroups import layout

    unified = layout.detect().unified
    if unified is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    path = Path(unified) / f"nsinit-delegated-{user.name}"
    path.mkdir()
    try:
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(path / name, user.uid, user.gid)
        yield path
    finally:
        for child in path.iterdir() if path.is_dir() else ():
            if child.is_dir():
                child.rmdir()
        path.rmdir()


def test_a_delegated_cgroup2_subtree_is_used(user: PlainUser, work: Path, delegated_cgroup: Path) -> None:
    rootfs = make_rootfs(user, work)
    # Root moves the user's nsinit into the delegated cgroup, as a login does.
    command = ["sh", "-c", f'echo $$ > {delegated_cgroup}/cgroup.procs && exec "$@"', "sh",
               *user.nsinit_command(["exec", "/bin/sh", "-c", "cat /proc/self/cgroup | grep ^0::; "
                                     "ls -ln /sys/fs/cgroup/unified >/dev/null 2>&1; true"])]
    result = subprocess.run(command, cwd=rootfs, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from nsinit.cgroups import default_name, layout

    relative = "/" + os.path.relpath(delegated_cgroup, layout.detect().unified)
    assert result.stdout.strip() == f"0::{relative}/{default_name(str(rootfs))}"
    assert [p.name for p in delegated_cgroup.iterdir() if p.is_dir()] == [], "its cgroup went with it"


def test_a_plain_user_installs_nsinit_into_a_venv(user: PlainUser, work: Path) -> None:
    """The README's install without root: a venv of the user's, `pip install .`
    from a copy they own; the wheel carries the built C helper and the
    trampoline, and the venv's nsinit runs a container.  Needs PyPI (cffi,
    docopt-ng, pyroute2)."""
    source = work / "nsinit-src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.so", "_trampoline", "build", "*.egg-info", ".pytest_cache"))
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(source)], check=True)
    venv = work / "venv"
    made = subprocess.run(user.command([user.python, "-m", "venv", str(venv)]), cwd=work,
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        pytest.skip(f"python3 -m venv fails (Debian package python3-venv): {made.stdout}{made.stderr}")
    installed = subprocess.run(user.command([str(venv / "bin" / "pip"), "install", "-q",
                                             "--disable-pip-version-check", str(source)]),
                               cwd=work, capture_output=True, text=True, timeout=600)
    if installed.returncode != 0 and any(word in installed.stdout + installed.stderr for word in (
            "NewConnectionError", "Temporary failure in name resolution", "No matching distribution")):
        pytest.skip(f"PyPI is out of reach: {installed.stderr.strip().splitlines()[-1]}")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    nsinit = str(venv / "bin" / "nsinit")
    alone = {"PYTHONPATH": "/nonexistent"}  # the venv's own nsinit, not the copy the other tests use
    built = subprocess.run(user.command([nsinit, "rootfs", "box"], **alone), cwd=work, capture_output=True,
                           text=True)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run(user.command([nsinit, "exec", "/bin/sh", "-c", "echo $$; cat /proc/self/uid_map"], **alone),
                         cwd=work / "box", capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.split("\n")
    assert lines[0] == "1"
    assert lines[1].split() == ["0", str(user.uid), "1"]


def test_create_start_delete_as_a_plain_user(user: PlainUser, work: Path) -> None:
    # nsinit create exits: the init must live on (no parent-death signal),
    # wait on its fifo in the user's own state dir, and start as the user.
    rootfs = make_rootfs(user, work)
    out = work / "created"
    with open(out, "w") as f:
        created = subprocess.run(user.nsinit_command(["create", "/bin/sh", "-c", "echo started > /tmp/started"]),
                                 cwd=rootfs, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, timeout=60)
    assert created.returncode == 0, out.read_text()
    pid = int(out.read_text())
    assert json.loads(user.nsinit("state", "--json", cwd=rootfs).stdout)["status"] == "created"
    assert not (rootfs / "tmp" / "started").exists()
    started = user.nsinit("start", cwd=rootfs)
    assert started.returncode == 0 and started.stderr == "", started.stderr
    wait_for(lambda: not os.path.exists(f"/proc/{pid}/ns/pid"))  # exited (reaped by PID 1, or a zombie)
    assert (rootfs / "tmp" / "started").read_text() == "started\n"
    deleted = user.nsinit("delete", cwd=rootfs)
    assert deleted.returncode == 0, deleted.stderr
    assert user.nsinit("state", cwd=rootfs).returncode == 1
