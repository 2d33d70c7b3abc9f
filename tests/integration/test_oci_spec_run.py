"""The config.json podman and containerd wrote, read by nsinit.oci.spec, run by the
2014 create flow (Container.run): one model, two front doors, checked from inside.

The two-step lifecycle (create, then start) is not here yet; running the same
Config through the supervised run shows that what the OCI loader made is a
container nsinit builds as podman asked.  Host paths of the captured files
(bind sources, podman's netns) are replaced by this test's own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, needs_root
from nsinit.capabilities import names_to_mask
from nsinit.container import Container, Process
from nsinit.oci.spec import parse_spec

pytestmark = needs_root

DATA = REPO / "tests" / "unit" / "data" / "oci"
PROBE = ("grep -E '^(Cap|NoNewPrivs|Groups|Seccomp)' /proc/self/status; id -u; id -g; ulimit -n; umask; "
         "hostname; grep pids /proc/self/cgroup; cat /proc/self/mountinfo")


def bundle_from(name: str, tmp_path: Path, rootfs: Path, *, keep_seccomp: bool = False) -> dict:
    data = json.loads((DATA / f"{name}.json").read_text())
    if not keep_seccomp:
        data["linux"].pop("seccomp", None)   # its own test below
    data["root"]["path"] = str(rootfs)
    for i, mount in enumerate(data.get("mounts", [])):
        if mount.get("type") == "bind":
            source = tmp_path / f"bind{i}"
            if mount["destination"] == "/dev/shm":
                source.mkdir()
            else:
                source.write_text(f"{mount['destination']}\n")
            mount["source"] = str(source)
    for namespace in data["linux"]["namespaces"]:
        namespace.pop("path", None)       # podman's netns does not exist any more
    data["linux"]["cgroupsPath"] = f"/nsinit-oci-{tmp_path.name}"   # found by the residue check
    return data


def run_probe(tmp_path: Path, data: dict, capfd: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str], str]:
    spec, warnings = parse_spec(data, "config.json", str(tmp_path), "probe")
    assert warnings == []
    state_root = tmp_path / "state"
    state_root.mkdir()
    code = Container(str(state_root), spec.config).run(Process(args=["/bin/sh", "-c", PROBE], tty=False))
    out = capfd.readouterr().out
    status = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    return code, {k: v.strip() for k, v in status.items()}, out


def test_podmans_config_runs_as_podman_asked(tmp_path: Path, rootfs: Path, no_residue: None,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    data = bundle_from("podman-default", tmp_path, rootfs)
    code, status, out = run_probe(tmp_path, data, capfd)
    assert code == 0, out
    wanted = names_to_mask(data["process"]["capabilities"]["bounding"])
    assert int(status["CapBnd"], 16) == int(status["CapEff"], 16) == wanted == 0x800405FB
    assert int(status["CapInh"], 16) == int(status["CapAmb"], 16) == 0
    assert status["Groups"] == "10" and status["NoNewPrivs"] == "0"
    assert status["Seccomp"] == "0"  # this test runs it without its filter
    lines = out.splitlines()
    assert lines[9:14] == ["0", "0", "1024", "0022", data["hostname"]]
    assert lines[14].endswith(f":pids:/nsinit-oci-{tmp_path.name}")
    mounted = {line.split()[4]: line.split()[5] for line in lines[15:]}
    assert mounted["/etc/hosts"].startswith("rw") and mounted["/sys"].startswith("ro")
    assert mounted["/sys/fs/cgroup"].startswith("ro") and "/run/.containerenv" in mounted


def test_containerds_config_runs_as_containerd_asked(tmp_path: Path, rootfs: Path, no_residue: None,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    data = bundle_from("containerd-many", tmp_path, rootfs)
    code, status, out = run_probe(tmp_path, data, capfd)
    assert code == 0, out
    assert int(status["CapBnd"], 16) == names_to_mask(data["process"]["capabilities"]["bounding"])
    assert status["NoNewPrivs"] == "1"
    memory = Path(f"/sys/fs/cgroup/memory/nsinit-oci-{tmp_path.name}")
    assert not memory.exists()  # removed with the container
    assert "/run" in {line.split()[4] for line in out.splitlines() if len(line.split()) > 5}


def test_a_read_only_root_from_config_json(tmp_path: Path, rootfs: Path, no_residue: None,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    data = bundle_from("containerd-run", tmp_path, rootfs)
    data["root"]["readonly"] = True
    spec, _ = parse_spec(data, "config.json", str(tmp_path), "ro")
    state_root = tmp_path / "state"
    state_root.mkdir()
    code = Container(str(state_root), spec.config).run(
        Process(args=["/bin/sh", "-c", "touch /x 2>/dev/null && echo wrote || echo refused"], tty=False))
    assert code == 0 and capfd.readouterr().out.strip() == "refused"
    assert not os.path.exists(rootfs / "x")


def test_podmans_read_only_root_with_tmpcopyup(tmp_path: Path, rootfs: Path, no_residue: None,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    """podman --read-only: / read-only, /tmp /run /var/tmp tmpfs filled with what the image had."""
    (rootfs / "tmp" / "sub").mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp" / "sub" / "kept").write_text("from the image\n")
    os.chmod(rootfs / "tmp" / "sub" / "kept", 0o640)
    os.chown(rootfs / "tmp" / "sub" / "kept", 1000, 1000)
    os.symlink("/etc/shadow-of-the-host", rootfs / "tmp" / "link")
    data = bundle_from("podman-many", tmp_path, rootfs)
    (tmp_path / "vol").mkdir()
    spec, _ = parse_spec(data, "config.json", str(tmp_path), "ro")
    assert [m.destination for m in spec.config.mounts if m.copy_up] == ["/tmp", "/run", "/var/tmp"]
    state_root = tmp_path / "state"
    state_root.mkdir()
    probe = ("cat /tmp/sub/kept; stat -c '%a %u:%g' /tmp/sub/kept; readlink /tmp/link; "
             "echo new > /tmp/sub/kept && echo tmp-writable; touch /etc/x 2>/dev/null || echo root-read-only; "
             "grep ' /tmp ' /proc/self/mountinfo | cut -d' ' -f9")
    code = Container(str(state_root), spec.config).run(Process(args=["/bin/sh", "-c", probe], tty=False))
    out = capfd.readouterr().out.splitlines()
    assert code == 0, out
    assert out == ["from the image", "640 1000:1000", "/etc/shadow-of-the-host", "tmp-writable",
                   "root-read-only", "tmpfs"]
    # The image itself is untouched: the write went to the tmpfs.
    assert (rootfs / "tmp" / "sub" / "kept").read_text() == "from the image\n"


def test_podmans_seccomp_profile_is_enforced(tmp_path: Path, rootfs: Path, no_residue: None,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    data = bundle_from("podman-default", tmp_path, rootfs, keep_seccomp=True)
    spec, _ = parse_spec(data, "config.json", str(tmp_path), "sc")
    assert spec.config.seccomp is not None and spec.config.seccomp.default_errno_ret == 38
    state_root = tmp_path / "state"
    state_root.mkdir()
    # swapoff is in the profile's EPERM list; the filter answers before the kernel checks caps.
    probe = "grep -E '^Seccomp(_filters)?:' /proc/self/status; swapoff /x 2>&1; true"
    code = Container(str(state_root), spec.config).run(Process(args=["/bin/sh", "-c", probe], tty=False))
    out = capfd.readouterr().out
    assert code == 0, out
    status = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    assert status["Seccomp"].strip() == "2" and status["Seccomp_filters"].strip() == "1"


def test_oom_score_adj_reaches_the_kernel_without_a_proc_mount(tmp_path: Path, rootfs: Path, no_residue: None,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    # A config.json's mounts are all the container gets: without proc there,
    # /proc after pivot_root is the image's directory, whose plain file took
    # the write (and the setting never reached the kernel).
    import time

    data = bundle_from("containerd-run", tmp_path, rootfs)
    data["mounts"] = [m for m in data["mounts"] if m["destination"] != "/proc"]
    data["process"]["oomScoreAdj"] = 123
    fake = rootfs / "proc" / "self" / "oom_score_adj"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("")
    spec, _ = parse_spec(data, "config.json", str(tmp_path), "oom")
    state_root = tmp_path / "state"
    state_root.mkdir()
    runner = os.fork()  # Container.run wants a single-threaded caller, and blocks
    if runner == 0:
        try:
            os._exit(Container(str(state_root), spec.config).run(
                Process(args=["/bin/sh", "-c", "exec sleep 33"], tty=False)))
        finally:
            os._exit(125)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 10
        while not pids and time.monotonic() < deadline:
            pids = [int(p) for p in os.listdir("/proc")
                    if p.isdigit() and _cmdline(p) == b"sleep\x0033\x00"]
            time.sleep(0.02)
        assert pids, capfd.readouterr()
        oom = Path(f"/proc/{pids[0]}/oom_score_adj").read_text().strip()
    finally:
        for pid in pids:
            os.kill(pid, 9)
        if not pids:
            os.kill(runner, 9)
        os.waitpid(runner, 0)
    assert oom == "123"
    assert fake.read_text() == ""


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.skipif(not any(os.access(os.path.join(d, "runc"), os.X_OK) for d in os.environ.get("PATH", "").split(":")),
                    reason="runc not installed (scripts/install installs it)")
def test_the_config_runc_spec_writes_runs_with_its_ambient_capabilities_dropped(
        tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    subprocess.run(["runc", "spec", "--bundle", str(tmp_path)], check=True, timeout=30)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["process"]["capabilities"]["ambient"] and "inheritable" not in data["process"]["capabilities"]
    data["root"] = {"path": str(rootfs), "readonly": True}
    data["process"].update(terminal=False, args=["/bin/sh", "-c", "grep ^Cap /proc/self/status"])
    data["linux"]["cgroupsPath"] = f"/nsinit-oci-{tmp_path.name}"
    (tmp_path / "config.json").write_text(json.dumps(data))
    log = tmp_path / "runtime.log"
    out = subprocess.run([sys.executable, "-m", "nsinit.oci", "--root", str(tmp_path / "state"),
                          "--log", str(log), "run",
                          "--bundle", str(tmp_path), "runc-spec"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    status = dict(line.split(":\t", 1) for line in out.stdout.splitlines())
    granted = names_to_mask(data["process"]["capabilities"]["permitted"])
    assert int(status["CapPrm"], 16) == int(status["CapEff"], 16) == granted
    assert int(status["CapAmb"], 16) == 0          # as under runc 1.1: not raised
    # Said in the runtime's log (stderr is the container's, as an engine passes it on).
    assert out.stderr == ""
    for i, name in enumerate(data["process"]["capabilities"]["ambient"]):
        assert f'process.capabilities.ambient[{i}]: \\"{name}\\" is not raised' in log.read_text()
