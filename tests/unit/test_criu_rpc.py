"""The RPC requests nsinit sends criu, checked against a fake ``criu swrk``.

The fake is a real process on a real socketpair: nsinit starts it exactly
as it starts criu (``CRIU swrk FD``); it records every request it reads and
answers as the mode in $FAKE_CRIU_MODE says.  No criu, no root, no container.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("google.protobuf", reason="protobuf (PyPI) is not installed: pip install protobuf")

from nsinit.config.load import parse_config
from nsinit.container import Container
from nsinit.criu import CriuError, checkpoint, fds, mounts, swrk
from nsinit.criu.messages import PROTO_FILE, messages, parse_proto
from nsinit.criu.options import CriuOptions, VethPair
from nsinit.criu.restore import _Restore
from nsinit.state import RootLock, State

REPO = Path(__file__).resolve().parents[2]

FAKE_CRIU = r'''#!{python}
import os, socket, sys
sys.path.insert(0, {repo!r})
from nsinit.criu.messages import messages
m = messages()
mode = os.environ.get("FAKE_CRIU_MODE", "ok")
log = os.environ["FAKE_CRIU_LOG"]
assert sys.argv[1] == "swrk", sys.argv
sock = socket.socket(fileno=int(sys.argv[2]))
def record(kind, data):
    with open(log, "a") as f:
        f.write(kind + " " + data.hex() + "\n")
data = sock.recv(1 << 20)
record("req", data)
req = m.criu_req.FromString(data)
if mode == "silent":
    sys.exit(1)
if req.type == m.VERSION:
    major, minor = (3, 17) if mode == "old" else (4, 2)
    sock.send(m.criu_resp(type=m.VERSION, success=True,
                          version=m.criu_version(major_number=major, minor_number=minor)).SerializeToString())
    sys.exit(0)
if req.type == m.FEATURE_CHECK:
    sock.send(m.criu_resp(type=m.FEATURE_CHECK, success=True,
                          features=m.criu_features(mem_track=False)).SerializeToString())
    sys.exit(0)
if mode == "notify":
    sock.send(m.criu_resp(type=m.NOTIFY, success=True,
                          notify=m.criu_notify(script="post-dump", pid=42)).SerializeToString())
    record("answer", sock.recv(1 << 20))
if mode == "fail":
    sock.send(m.criu_resp(type=req.type, success=False, cr_errno=1,
                          cr_errmsg="Dumping FAILED.").SerializeToString())
    sys.exit(0)
sock.send(m.criu_resp(type=req.type, success=True).SerializeToString())
'''


@pytest.fixture
def fake_criu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "criu"
    script.write_text(FAKE_CRIU.format(python=sys.executable, repo=str(REPO)))
    script.chmod(0o755)
    monkeypatch.setenv("NSINIT_CRIU", str(script))
    monkeypatch.setenv("FAKE_CRIU_LOG", str(tmp_path / "requests"))
    return script


def received(tmp_path: Path, kind: str = "req") -> list:
    m = messages()
    lines = (tmp_path / "requests").read_text().split("\n")
    parse = m.criu_req.FromString
    return [parse(bytes.fromhex(line.split()[1])) for line in lines if line.startswith(kind + " ")]


def config_for(tmp_path: Path, **extra: object):  # type: ignore[no-untyped-def]
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    data = {"rootfs": "rootfs", "namespaces": [{"type": "NEWNS"}, {"type": "NEWPID"}], **extra}
    config, _ = parse_config(data, "container.json", str(tmp_path))
    return config


def state_for(tmp_path: Path, pid: int, **extra: object) -> State:
    return State(init_pid=pid, init_start_time=1, created="now", root=str(tmp_path), rootfs=str(tmp_path / "rootfs"),
                 **extra)  # type: ignore[arg-type]


# -- the proto file and the message classes ---------------------------------

def test_the_proto_file_keeps_criu_field_numbers() -> None:
    """A few of criu's numbers (images/rpc.proto): a wrong one would make
    criu read another option than the one nsinit meant."""
    _, messages_, enums = parse_proto(Path(PROTO_FILE).read_text())
    numbers = {name: number for _, _, name, number in messages_["criu_opts"]}
    assert numbers["images_dir_fd"] == 1 and numbers["ext_mnt"] == 23 and numbers["inherit_fd"] == 27
    assert numbers["freeze_cgroup"] == 44 and numbers["external"] == 37 and numbers["rst_sibling"] == 26
    assert dict(enums["criu_req_type"])["VERSION"] == 10 and dict(enums["criu_cg_mode"])["SOFT"] == 3


def test_messages_round_trip_on_the_wire() -> None:
    m = messages()
    request = m.criu_req(type=m.DUMP, opts=m.criu_opts(images_dir_fd=7, freeze_cgroup="/sys/fs/cgroup/x"))
    data = request.SerializeToString()
    assert data[:2] == b"\x08\x01"   # field 1 (type), varint, DUMP
    assert m.criu_req.FromString(data).opts.freeze_cgroup == "/sys/fs/cgroup/x"


# -- finding criu and its version -----------------------------------------

def test_a_missing_criu_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NSINIT_CRIU", str(tmp_path / "none"))
    with pytest.raises(CriuError, match=r"NSINIT_CRIU=.*/none is not an executable file"):
        swrk.find_criu()
    monkeypatch.delenv("NSINIT_CRIU")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "access", lambda *_: False)
    with pytest.raises(CriuError, match="criu is not installed"):
        swrk.find_criu()


def test_a_named_criu_comes_before_nsinit_criu(monkeypatch: pytest.MonkeyPatch, fake_criu: Path,
                                              tmp_path: Path) -> None:
    """--criu PATH / Factory(criu_path=...): a path or a name on PATH wins;
    the default name "criu" leaves the choice to NSINIT_CRIU and PATH."""
    monkeypatch.setenv("NSINIT_CRIU", str(fake_criu))
    assert swrk.find_criu("criu") == str(fake_criu) and swrk.find_criu("") == str(fake_criu)
    other = tmp_path / "other-criu"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert swrk.find_criu(str(other)) == str(other)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert swrk.find_criu("other-criu") == str(other)
    with pytest.raises(CriuError, match=r"^criu: .*/none is not an executable file"):
        swrk.find_criu(str(tmp_path / "none"))


def test_a_factory_container_uses_the_factory_criu(tmp_path: Path) -> None:
    from nsinit.lifecycle.factory import Factory

    factory = Factory(str(tmp_path / "state"), criu_path="/opt/criu/criu")
    container = factory.create("c1", config_for(tmp_path))
    try:
        assert container._with_criu(None).criu_path == "/opt/criu/criu"
        assert container._with_criu(CriuOptions(criu_path="/x/criu")).criu_path == "/x/criu"
    finally:
        container.forget()


def test_the_version_is_asked_over_rpc(fake_criu: Path, tmp_path: Path) -> None:
    assert swrk.check_version(str(fake_criu))[:2] == (4, 2)
    assert [r.type for r in received(tmp_path)] == [messages().VERSION]


def test_an_old_criu_is_refused(fake_criu: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CRIU_MODE", "old")
    with pytest.raises(CriuError, match=r"is criu 3\.17\.0; nsinit needs 4\.1 or newer"):
        swrk.check_version(str(fake_criu))


def test_a_criu_that_does_not_answer_is_refused(fake_criu: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CRIU_MODE", "silent")
    with pytest.raises(CriuError, match="answered no version request"):
        swrk.check_version(str(fake_criu))


def test_pre_dump_without_soft_dirty_is_refused_clearly(fake_criu: Path, tmp_path: Path) -> None:
    with pytest.raises(CriuError, match="no memory change tracking .soft-dirty"):
        checkpoint.require_memory_tracking(str(fake_criu))
    (request,) = received(tmp_path)
    assert request.type == messages().FEATURE_CHECK and request.features.mem_track


# -- notifications and failures -------------------------------------------------

def test_notifications_are_answered(fake_criu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CRIU_MODE", "notify")
    m = messages()
    seen = []
    client = swrk.Swrk(str(fake_criu))
    try:
        response = client.call(m.criu_req(type=m.DUMP, opts=m.criu_opts(images_dir_fd=0)),
                               on_notify=lambda script, pid: seen.append((script, pid)))
    finally:
        client.close()
    assert response.success and seen == [("post-dump", 42)]
    (answer,) = received(tmp_path, "answer")
    assert answer.type == m.NOTIFY and answer.notify_success


def test_a_failing_notification_hook_is_answered_with_failure(fake_criu: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CRIU_MODE", "notify")
    m = messages()

    def hook(_script: str, _pid: int) -> None:
        raise RuntimeError("hook failed")

    client = swrk.Swrk(str(fake_criu))
    with pytest.raises(RuntimeError):
        client.call(m.criu_req(type=m.DUMP, opts=m.criu_opts(images_dir_fd=0)), on_notify=hook)
    client.close()
    (answer,) = received(tmp_path, "answer")
    assert answer.notify_success is False


def test_a_failure_names_the_first_real_error_of_the_log(tmp_path: Path) -> None:
    log = tmp_path / "dump.log"
    log.write_text("(00.01) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: EPERM\n"
                   "(00.02) Error (criu/files-reg.c:1790): Can't lookup mount=24 for fd=0 path=/dev/null\n"
                   "(00.03) Error (criu/cr-dump.c:2128): Dumping FAILED.\n")
    m = messages()
    err = swrk.failure("checkpoint", m.criu_resp(type=m.DUMP, success=False, cr_errmsg="Dumping FAILED."), str(log))
    assert str(err) == f"checkpoint: Can't lookup mount=24 for fd=0 path=/dev/null (criu log: {log})"


# -- the dump request --------------------------------------------------------------

def test_the_dump_request_carries_the_options(fake_criu: Path, tmp_path: Path) -> None:
    host_dir = tmp_path / "data"
    host_dir.mkdir()
    netns = tmp_path / "netns"
    netns.write_text("")
    config = config_for(tmp_path, mounts=[{"type": "bind", "source": str(host_dir), "destination": "/data"}])
    current = state_for(tmp_path, os.getpid(), cgroup_paths={"freezer": "/sys/fs/cgroup/freezer/nsinit/c",
                                                             "memory": "/sys/fs/cgroup/memory/nsinit/c"})
    opts = CriuOptions(leave_running=True, tcp_established=True, external_unix_connections=True, shell_job=True,
                       file_locks=True, page_server="10.0.0.2:27", manage_cgroups_mode="strict",
                       empty_namespaces=0x40000000)
    m = messages()
    request = checkpoint.dump_request(config, current, opts, images_fd=5, work_fd=6)
    client = swrk.Swrk(str(fake_criu))
    assert client.call(request).success
    client.close()
    (sent,) = received(tmp_path)
    o = sent.opts
    assert sent.type == m.DUMP and o.pid == os.getpid() and o.images_dir_fd == 5 and o.work_dir_fd == 6
    assert o.root == str(tmp_path / "rootfs") and o.freeze_cgroup == "/sys/fs/cgroup/freezer/nsinit/c"
    assert (o.leave_running, o.tcp_established, o.ext_unix_sk, o.shell_job, o.file_locks) == (True,) * 5
    assert o.manage_cgroups and o.manage_cgroups_mode == m.STRICT and o.empty_ns == 0x40000000
    assert (o.ps.address, o.ps.port) == ("10.0.0.2", 27)
    assert [(e.key, e.val) for e in o.ext_mnt] == [("/data", "/data")]
    assert o.log_file == "dump.log" and not o.track_mem


def test_a_pre_dump_is_its_own_request_type(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    request = checkpoint.dump_request(config, state_for(tmp_path, 1), CriuOptions(pre_dump=True),
                                      images_fd=5, work_fd=5)
    assert request.type == messages().PRE_DUMP and request.opts.track_mem and request.opts.log_file == "pre-dump.log"


def test_a_namespace_joined_by_path_is_external(tmp_path: Path) -> None:
    netns = tmp_path / "netns"
    netns.write_text("")
    config = config_for(tmp_path, namespaces=[{"type": "NEWNS"}, {"type": "NEWNET", "path": str(netns)}])
    inode = os.stat("/proc/self/ns/net").st_ino
    assert mounts.dump_external_namespaces(config, os.getpid()) == [f"net[{inode}]:extRootNetNS"]
    assert mounts.joined_namespaces(config) == [("extRootNetNS", str(netns))]


def test_a_container_criu_cannot_restore_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CriuError, match="no_pivot_root is set"):
        checkpoint.refuse_unrestorable(config_for(tmp_path, no_pivot_root=True))
    with pytest.raises(CriuError, match="no mount namespace"):
        checkpoint.refuse_unrestorable(config_for(tmp_path, namespaces=[{"type": "NEWPID"}]))


def test_bad_options_are_one_line() -> None:
    with pytest.raises(CriuError, match='--manage-cgroups-mode: "loose" is not one of soft'):
        CriuOptions(manage_cgroups_mode="loose").check()
    with pytest.raises(CriuError, match='--page-server: "host" is not ADDRESS:PORT'):
        CriuOptions(page_server="host").check()


# -- stdio: recorded at dump, inherited at restore --------------------------------

def test_stdio_targets_of_a_process() -> None:
    r, w = os.pipe()
    inode = os.fstat(r).st_ino
    child = subprocess.Popen(["sleep", "10"], stdin=r, stdout=w, stderr=subprocess.DEVNULL)
    try:
        targets = fds.read_stdio_targets(child.pid)
    finally:
        child.kill()
        child.wait()
        os.close(r)
        os.close(w)
    # Both ends of one pipe: the same "pipe:[INODE]", the inode of the pipe.
    assert targets[0] == targets[1] == f"pipe:[{inode}]"
    # The same mount namespace: /dev/null is on one of the process's own mounts.
    assert targets[2] == "/dev/null"


def test_inherited_fds_name_each_pipe_once() -> None:
    targets = ["file[18:3]", "pipe:[77]", "pipe:[77]"]
    assert fds.inherited_fds(targets) == [("file[18:3]", 0), ("pipe:[77]", 1)]
    assert fds.external_files(targets) == ["file[18:3]"]
    assert fds.inherited_fds(["/dev/null", "/tmp/log", ""]) == []


def test_descriptors_file_round_trip_and_errors(tmp_path: Path) -> None:
    fds.write_descriptors(str(tmp_path), ["pipe:[1]", "pipe:[2]", "pipe:[2]"])
    assert fds.read_descriptors(str(tmp_path)) == ["pipe:[1]", "pipe:[2]", "pipe:[2]"]
    with pytest.raises(CriuError, match="descriptors.json is missing: .* holds no nsinit checkpoint"):
        fds.read_descriptors(str(tmp_path / "other"))
    (tmp_path / "descriptors.json").write_text("{")
    with pytest.raises(CriuError, match="descriptors.json is not valid JSON"):
        fds.read_descriptors(str(tmp_path))


# -- the restore request -----------------------------------------------------------

def test_the_restore_request_maps_mounts_fds_cgroups_and_veths(fake_criu: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved-data"
    moved.mkdir()
    config = config_for(tmp_path, mounts=[{"type": "bind", "source": str(moved), "destination": "/data"}])
    dumped = state_for(tmp_path, 1, network_state=[
        {"type": "loopback"},
        {"type": "veth", "name": "eth0", "host_interface_name": "vethab12cd3", "bridge": "nsbr0"}])
    own = Path("/proc/self/cgroup").read_text().splitlines()[0].split(":", 2)
    controllers = own[1] or "unified"
    flow = _Restore(Container(str(tmp_path), config), None, config, RootLock(str(tmp_path)),  # type: ignore[arg-type]
                    criu=str(fake_criu), opts=CriuOptions(tcp_established=True, manage_cgroups_mode="soft",
                                                          veth_pairs=[VethPair("eth1", "vethhost1")]),
                    images=str(tmp_path), targets=["file[18:3]", "pipe:[77]", "pipe:[77]"], dumped=dumped,
                    on_restored=None)
    flow.cgroup_paths = {controllers.split(",")[0]: "/sys/fs/cgroup/x"}
    request = flow.restore_request("/run/nsinit/x/criu-root", (5, 6), [("extRootNetNS", 9)], os.getpid(),
                                   [10, 11, 12])
    client = swrk.Swrk(str(fake_criu))
    assert client.call(request).success
    client.close()
    (sent,) = received(tmp_path)
    m, o = messages(), sent.opts
    assert sent.type == m.RESTORE and o.rst_sibling and o.manage_cgroups and o.tcp_established
    assert o.root == "/run/nsinit/x/criu-root" and (o.images_dir_fd, o.work_dir_fd) == (5, 6)
    assert [(e.key, e.val) for e in o.ext_mnt] == [("/data", str(moved))]
    assert [(i.key, i.fd) for i in o.inherit_fd] == [("file[18:3]", 10), ("pipe:[77]", 11), ("extRootNetNS", 9)]
    assert [(c.ctrl, c.path) for c in o.cg_root] == [(own[1], own[2])]
    assert list(o.external) == ["veth[eth0]:vethab12cd3@nsbr0", "veth[eth1]:vethhost1"]
    assert o.manage_cgroups_mode == m.SOFT and o.log_file == "restore.log"


# -- start-up cost -------------------------------------------------------------------

def test_the_exec_path_imports_nothing_of_criu(tmp_path: Path) -> None:
    (tmp_path / "container.json").write_text(json.dumps({"hostname": "probe"}))
    code = (f"import sys; sys.path[:0] = [{str(REPO)!r}]\n"
            "from nsinit import cli\n"
            f"args = cli.parse_plain_exec(cli.protect_command(['--root', {str(tmp_path)!r}, 'exec', '/bin/true']))\n"
            "from nsinit.container import Container\n"
            "Container.load(args['--root'], args['--config'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('nsinit.criu', 'google'))))\n")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_images_inside_the_rootfs_are_warned_about(tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    warnings: list[str] = []
    container = Container(str(tmp_path), None, warn=warnings.append)
    checkpoint.warn_if_inside(container, str(tmp_path / "images"), str(tmp_path / "rootfs"))
    assert warnings == []
    checkpoint.warn_if_inside(container, str(tmp_path / "rootfs" / "checkpoint"), str(tmp_path / "rootfs"))
    assert warnings == [f"{tmp_path / 'rootfs' / 'checkpoint'} is inside the container's rootfs: its root can "
                        "rewrite the images that restore will trust"]
