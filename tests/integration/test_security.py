"""Escape classes of issue 15, each tried for real against a container.

Every test here reproduces an attack that worked once (a hostile image, a
hostile config or a hostile caller's fd) and checks from the kernel's own
answers (/proc/PID/status, the files a process can read) that it no longer
does.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _live import READY, Live, read_cmdline
from conftest import Nsinit, needs_root, stderr_lines

pytestmark = needs_root

CAP_CHOWN = 1 << 0


def ok(result: subprocess.CompletedProcess[str]) -> str:
    stderr_lines(result)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails_with_one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single error line of a refused run, checked to name ``words``."""
    lines = stderr_lines(result)
    assert result.returncode != 0, result.stdout
    errors = [line for line in lines if line.startswith("nsinit:") and "warning" not in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{name} not in /proc/{pid}/status")


def run_and_read_status(nsinit: Nsinit, *fields: str) -> dict[str, int]:
    """Start a container; read ``fields`` of its init's status from the host."""
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    try:
        return {name: status_field(live.pid, name) for name in fields}
    finally:
        live.stop()
        stderr_lines(subprocess.CompletedProcess([], 0, "", live.stderr))


# --- 1. the last capability comes from the kernel, not the image's /proc -----

def test_a_fake_cap_last_cap_in_the_image_grants_nothing(nsinit: Nsinit) -> None:
    # No NEWNS: the container's /proc is the image's own directory.
    nsinit.config(namespaces=[{"type": t} for t in ("NEWUTS", "NEWIPC", "NEWPID", "NEWNET")],
                  capabilities=["CHOWN"])
    fake = nsinit.root / "proc" / "sys" / "kernel"
    fake.mkdir(parents=True)
    (fake / "cap_last_cap").write_text("1\n")
    status = run_and_read_status(nsinit, "CapEff", "CapPrm", "CapBnd")
    assert status == {"CapEff": CAP_CHOWN, "CapPrm": CAP_CHOWN, "CapBnd": CAP_CHOWN}


def test_sysctl_and_oom_score_adj_reach_the_kernel_past_a_fake_proc(nsinit: Nsinit) -> None:
    # No NEWNS: written through the image's /proc after the chroot, both
    # settings went into these plain files and never reached the kernel.
    nsinit.config(namespaces=[{"type": t} for t in ("NEWUTS", "NEWIPC", "NEWPID", "NEWNET")],
                  oom_score_adj=123, sysctl={"net.ipv4.ip_unprivileged_port_start": "333"})
    fakes = [nsinit.root / "proc" / "self" / "oom_score_adj",
             nsinit.root / "proc" / "sys" / "net" / "ipv4" / "ip_unprivileged_port_start"]
    for fake in fakes:
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text("")
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    try:
        oom = Path(f"/proc/{live.pid}/oom_score_adj").read_text().strip()
        port_start = subprocess.run(["nsenter", f"--net=/proc/{live.pid}/ns/net", "cat",
                                     "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    finally:
        live.stop()
        stderr_lines(subprocess.CompletedProcess([], 0, "", live.stderr))
    assert (oom, port_start) == ("123", "333")
    assert [fake.read_text() for fake in fakes] == ["", ""]


def test_a_joined_process_gets_oom_score_adj_past_a_fake_proc(nsinit: Nsinit) -> None:
    nsinit.config(namespaces=[{"type": t} for t in ("NEWUTS", "NEWIPC", "NEWPID", "NEWNET")],
                  oom_score_adj=321)
    fake = nsinit.root / "proc" / "self" / "oom_score_adj"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("")
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    joined = nsinit.popen("exec", "--join", "/bin/sh", "-c", "exec sleep 31")
    try:
        pids: list[int] = []

        def started() -> bool:
            pids[:] = [int(p) for p in os.listdir("/proc")
                       if p.isdigit() and read_cmdline(int(p)) == b"sleep\x0031\x00"]
            return bool(pids)

        nsinit.wait_for(started)
        oom = Path(f"/proc/{pids[0]}/oom_score_adj").read_text().strip()
    finally:
        live.stop()
        joined.communicate(timeout=10)
        stderr_lines(subprocess.CompletedProcess([], 0, "", live.stderr))
    assert oom == "321"
    assert fake.read_text() == ""


def test_a_fake_setgroups_deny_in_the_image_keeps_no_host_group(nsinit: Nsinit) -> None:
    # No NEWNS: a "deny" in the image's /proc/self/setgroups made nsinit skip
    # setgroups, and the command kept the groups its caller had on the host.
    nsinit.config(namespaces=[{"type": t} for t in ("NEWUTS", "NEWIPC", "NEWPID", "NEWNET")])
    fake = nsinit.root / "proc" / "self" / "setgroups"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("deny\n")
    result = subprocess.run([sys.executable, "-m", "nsinit", "exec", "id", "-G"], cwd=nsinit.root,
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                            extra_groups=[4242])
    assert "4242" not in ok(result).split()


# --- 2. the working directory is inside the container (CVE-2024-21626) ------

def run_with_host_root_fd(nsinit: Nsinit, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """``nsinit ARGS``, run by a caller holding an fd on the host's "/";
    ``{fd}`` in ARGS is that fd's number."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nsinit", *(arg.replace("{fd}", str(fd)) for arg in args)],
            cwd=nsinit.root, capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, pass_fds=(fd,))
    finally:
        os.close(fd)
    return result, fd


HOST_ONLY = "cat etc/hostname; ls"  # relative: reads whatever the cwd is


def test_a_cwd_through_a_callers_fd_is_refused(nsinit: Nsinit) -> None:
    result, fd = run_with_host_root_fd(nsinit, "exec", "--cwd", "/proc/self/fd/{fd}", "/bin/sh", "-c", HOST_ONLY)
    fails_with_one_line(result, "cwd", f"/proc/self/fd/{fd}")
    assert result.stdout == ""


def test_a_working_dir_through_a_callers_fd_is_refused(nsinit: Nsinit) -> None:
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    os.close(fd)  # the number the next open gets, in run_with_host_root_fd
    nsinit.config(working_dir=f"/proc/self/fd/{fd}")
    result, used = run_with_host_root_fd(nsinit, "exec", "/bin/sh", "-c", HOST_ONLY)
    assert used == fd
    fails_with_one_line(result, "cwd", f"/proc/self/fd/{fd}")
    assert result.stdout == ""


def test_a_joining_cwd_through_a_callers_fd_is_refused(nsinit: Nsinit) -> None:
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    try:
        result, fd = run_with_host_root_fd(nsinit, "exec", "--cwd", "/proc/self/fd/{fd}",
                                           "/bin/sh", "-c", HOST_ONLY)
        fails_with_one_line(result, "cwd", f"/proc/self/fd/{fd}")
        assert result.stdout == ""
        assert live.alive()
    finally:
        live.stop()


def test_a_cwd_that_getcwd_finds_unreachable_is_refused(nsinit: Nsinit, sleeper: subprocess.Popen[bytes]) -> None:
    # Without NEWPID the container's procfs shows host processes: a host
    # process's cwd link leads out of the root while no fd of ours is open
    # (following it needs ptrace access: CAP_SYS_PTRACE, as the host process
    # holds capabilities the container does not).
    nsinit.config(namespaces=[{"type": t} for t in ("NEWNS", "NEWUTS", "NEWIPC", "NEWNET")],
                  capabilities=["SYS_PTRACE"], working_dir=f"/proc/{sleeper.pid}/cwd")
    result = nsinit.sh(HOST_ONLY)
    fails_with_one_line(result, "cwd", f"/proc/{sleeper.pid}/cwd", "outside the container's root")
    assert result.stdout == ""


def test_a_relative_cwd_is_relative_to_the_containers_root(nsinit: Nsinit) -> None:
    assert ok(nsinit.exec("--cwd", "tmp", "/bin/pwd")) == "/tmp\n"


# --- 3. a number is a uid, never a name (CVE-2016-3697) ---------------------

def test_a_numeric_user_is_the_uid_even_when_a_name_says_otherwise(nsinit: Nsinit) -> None:
    passwd = nsinit.root / "etc" / "passwd"
    passwd.write_text("1000:x:0:0::/:/bin/sh\n" + passwd.read_text())
    group = nsinit.root / "etc" / "group"
    group.write_text("1000:x:0:\n" + group.read_text())
    assert ok(nsinit.exec("--user", "1000:1000", "/bin/sh", "-c", "id -u; id -g")) == "1000\n1000\n"
    status = ok(nsinit.exec("--user", "1000", "/bin/cat", "/proc/self/status"))
    assert "\nUid:\t1000\t1000\t1000\t1000\n" in status


# --- 4. a user spec is one of six forms, or refused -------------------------

BAD_USERS = (":", ":1000", "1000:", "", "-1", "0:-1", "a:b:c", "user:wheel:x", "us er")


@pytest.mark.parametrize("spec", BAD_USERS)
def test_a_malformed_user_is_refused_on_create(nsinit: Nsinit, spec: str) -> None:
    result = nsinit.exec("--user", spec, "/bin/sh", "-c", "id -u")
    fails_with_one_line(result, "--user")
    assert result.stdout == ""


@pytest.mark.parametrize("spec", BAD_USERS[:3])
def test_a_malformed_user_in_container_json_is_refused_before_anything_runs(nsinit: Nsinit, spec: str) -> None:
    nsinit.config(user=spec)
    result = nsinit.sh("touch /ran; id -u")
    fails_with_one_line(result, "container.json", "user")
    assert result.stdout == "" and not (nsinit.root / "ran").exists()


def test_a_malformed_user_is_refused_on_join(nsinit: Nsinit) -> None:
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    try:
        for spec in (":", ":1000"):
            result = nsinit.exec("--user", spec, "/bin/sh", "-c", "id -u")
            fails_with_one_line(result, "--user")
            assert result.stdout == ""
        assert ok(nsinit.exec("--user", "1000:10", "/bin/sh", "-c", "id -u; id -g")) == "1000\n10\n"
        assert live.alive()
    finally:
        live.stop()


# --- 8. a 2014 mask: what the caller holds, never DAC_READ_SEARCH -----------

CAP_DAC_READ_SEARCH = 1 << 2
CAPS_OF_2014 = (1 << 37) - 1  # CHOWN (0) to BLOCK_SUSPEND (36)


def host_caps(name: str) -> int:
    return status_field(os.getpid(), name)


def test_a_mask_grants_what_the_caller_holds_but_never_dac_read_search(nsinit: Nsinit) -> None:
    # The host's root may lack some capability the mask keeps (CAP_SYS_RESOURCE
    # here, more in an outer container): those are left out, capset no longer
    # fails.  DAC_READ_SEARCH is the Shocker capability (open_by_handle_at).
    nsinit.config(capabilities_mask={"SYS_ADMIN": False, "MKNOD": False, "DAC_READ_SEARCH": True})
    held = host_caps("CapPrm") & host_caps("CapBnd")
    expected = held & CAPS_OF_2014 & ~(CAP_DAC_READ_SEARCH | 1 << 21 | 1 << 27)  # SYS_ADMIN, MKNOD
    status = ok(nsinit.exec("/bin/cat", "/proc/self/status"))
    caps = {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith("Cap")}
    assert caps == {"CapInh": 0, "CapPrm": expected, "CapEff": expected, "CapBnd": expected, "CapAmb": 0}


def test_nsinit_config_shows_what_a_mask_grants(nsinit: Nsinit) -> None:
    nsinit.config(capabilities_mask=["SYS_ADMIN"])
    result = nsinit.run("config")
    stderr_lines(result)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["capabilities"]
    assert "CAP_DAC_READ_SEARCH" not in shown["bounding"] and "CAP_SYS_ADMIN" not in shown["bounding"]
    assert "CAP_BPF" not in shown["bounding"] and "CAP_CHOWN" in shown["bounding"]
    assert "never DAC_READ_SEARCH" in result.stderr


# --- 9. only regular files are read, and only so much ------------------------

def hostile(path: Path, kind: str) -> None:
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("kind, shown", [("fifo", "a FIFO"), ("zero", "a character device")])
def test_a_hostile_container_json_is_refused_at_once(nsinit: Nsinit, kind: str, shown: str) -> None:
    config = nsinit.root / "container.json"
    hostile(config, kind)
    result = nsinit.exec("/bin/true", timeout=10)
    fails_with_one_line(result, str(config), f"not a regular file ({shown})")


def test_a_missing_container_json_says_where_and_what_to_run(nsinit: Nsinit) -> None:
    (nsinit.root / "container.json").unlink()
    result = nsinit.exec("/bin/true", timeout=10)
    fails_with_one_line(result, str(nsinit.root / "container.json"), "No such file or directory",
                        "nsinit spec", "nsinit rootfs")


@pytest.mark.parametrize("name", ["passwd", "group"])
@pytest.mark.parametrize("kind, shown", [("fifo", "a FIFO"), ("zero", "a character device")])
def test_a_hostile_passwd_or_group_is_refused_on_create(nsinit: Nsinit, name: str, kind: str, shown: str) -> None:
    hostile(nsinit.root / "etc" / name, kind)
    result = nsinit.exec("/bin/true", timeout=10)
    fails_with_one_line(result, "user", f"/etc/{name}: not a regular file ({shown})")


@pytest.mark.parametrize("name", ["passwd", "group"])
def test_a_hostile_passwd_or_group_is_refused_on_join(nsinit: Nsinit, name: str) -> None:
    live = Live(nsinit, f"{READY}; exec sleep 30").wait_ready(b"sleep\x0030\x00")
    try:
        for kind, shown in (("fifo", "a FIFO"), ("zero", "a character device")):
            hostile(nsinit.root / "etc" / name, kind)
            result = nsinit.exec("--user", "user", "/bin/true", timeout=10)
            fails_with_one_line(result, "user", f"/etc/{name}: not a regular file ({shown})")
        assert live.alive()
    finally:
        live.stop()


def test_a_passwd_symlink_resolves_inside_the_container(nsinit: Nsinit, tmp_path: Path) -> None:
    # An absolute link is the container's path, never the host's.
    host_passwd = tmp_path / "host-passwd"
    host_passwd.write_text("user:x:0:0::/:/bin/sh\n")
    passwd = nsinit.root / "etc" / "passwd"
    (nsinit.root / "etc" / "passwd.real").write_text(passwd.read_text())
    passwd.unlink()
    passwd.symlink_to(host_passwd)  # does not exist inside: the container has no passwd
    assert ok(nsinit.exec("--user", "1000", "/bin/sh", "-c", "id -u")) == "1000\n"
    fails_with_one_line(nsinit.exec("--user", "user", "/bin/true"), "user", "unknown user", "no /etc/passwd")
    passwd.unlink()
    passwd.symlink_to("/etc/passwd.real")
    assert ok(nsinit.exec("--user", "user", "/bin/sh", "-c", "id -u")) == "1000\n"


# --- 10. strings the kernel cannot take ---------------------------------------

@pytest.mark.parametrize("field, value", [("hostname", "\ud800"), ("environment", ["A=\udfff"]),
                                          ("hostname", "a\x00b")])
def test_a_string_that_cannot_be_encoded_is_one_line_naming_the_field(nsinit: Nsinit, field: str, value: object) -> None:
    nsinit.config(**{field: value})  # json.dumps writes the lone surrogate as \ud800: valid JSON
    result = nsinit.exec("/bin/true")
    fails_with_one_line(result, "container.json", field)
