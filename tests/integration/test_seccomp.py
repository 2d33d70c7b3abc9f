"""Seccomp filters, checked with real syscalls inside real containers.

Busybox makes most calls (unshare, mount, sh); a tiny static helper
(helpers/syscall.c, compiled here) makes the ones it cannot: keyctl,
personality with a chosen value, a raw clone, and unsharing a user and
cgroup namespace to reach cgroup v1 files (issue 15 item 11).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import REPO, Nsinit, needs_root, stderr_lines
from _live import READY, ok, start  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, needs_root]

HELPER_SOURCE = REPO / "tests" / "integration" / "helpers" / "syscall.c"
PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17
EPERM, EXDEV, EINVAL, ENOSYS = 1, 18, 22, 38  # EXDEV: what no keyctl returns by itself


def nr(name: str) -> str:
    """The native syscall number, from libseccomp's table."""
    from nsinit.seccomp._seccomp import lib

    number = lib.seccomp_syscall_resolve_name(name.encode())
    assert number >= 0, name
    return str(number)


@pytest.fixture(scope="session")
def helper_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (gcc) to build the static syscall helper")
    out = tmp_path_factory.mktemp("helper") / "syscall"
    built = subprocess.run([cc, "-static", "-O2", "-o", str(out), str(HELPER_SOURCE)], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"static linking failed (libc6-dev's libc.a missing?): {built.stderr.strip()[:200]}")
    return out


@pytest.fixture
def box(nsinit: Nsinit, helper_binary: Path) -> Nsinit:
    shutil.copy(helper_binary, nsinit.root / "bin" / "syscall")
    return nsinit


def with_filter(nsinit: Nsinit, seccomp: dict | None, **changes: object) -> None:
    nsinit.config(seccomp=seccomp, **changes)


def status(nsinit: Nsinit, *exec_args: str) -> dict[str, str]:
    text = ok(nsinit.run("exec", *exec_args, "cat", "/proc/self/status"))
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = stderr_lines(result)
    assert result.returncode == 125, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    return lines[0]


ALLOW_ALL_BUT = {"default_action": "allow"}


# --- actions and errno ------------------------------------------------------------------

def test_denied_syscalls_return_the_configured_errno(box: Nsinit) -> None:
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [
        {"names": ["unshare"], "action": "errno", "errno_ret": EPERM},
        {"name": "mount", "action": "errno", "errno_ret": ENOSYS},
        {"names": ["keyctl", "add_key"], "action": "errno", "errno_ret": EXDEV},
    ]}, capabilities=["SYS_ADMIN", "SETUID", "SETGID"])
    out = ok(box.run("exec", "/bin/sh", "-c",
                     "unshare -U true 2>&1; mount -t tmpfs none /mnt 2>&1; "
                     f"syscall call {nr('keyctl')} 0 0; syscall call {nr('getpid')}"))
    assert "unshare(0x10000000): Operation not permitted" in out
    assert "Function not implemented" in out  # busybox mount's ENOSYS
    assert f"errno={EXDEV}" in out
    assert re.search(r"^ret=[0-9]+$", out, re.M)  # getpid, allowed
    # Without the filter the same calls get through: the test can fail.
    with_filter(box, None)
    out = box.run("exec", "/bin/sh", "-c", f"unshare -U true && echo unshared; syscall call {nr('keyctl')} 0 0").stdout
    assert "unshared" in out and f"errno={EXDEV}" not in out


def test_filter_shows_in_proc_status_and_the_trace(box: Nsinit) -> None:
    assert status(box)["Seccomp"] == "0"  # no seccomp key: no filter, as before
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [{"name": "keyctl", "action": "errno"}]})
    fields = status(box)
    assert fields["Seccomp"] == "2" and fields["Seccomp_filters"] == "1"
    traced = box.run("--trace", "exec", "true")
    assert traced.returncode == 0
    assert any(line.startswith("nsinit: trace: create: child seccomp: ") for line in traced.stderr.splitlines())


def test_nsinit_config_shows_the_filter_normalised(box: Nsinit) -> None:
    with_filter(box, {"default_action": "SCMP_ACT_ERRNO", "architectures": ["amd64"], "syscalls": [
        {"name": "read", "action": "SCMP_ACT_ALLOW"},
        {"name": "no_such_call", "action": "allow"},
        {"names": ["personality"], "action": "errno", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
    ]})
    result = box.run("config")
    assert result.returncode == 0
    assert stderr_lines(result) == ["nsinit: warning: container.json: seccomp.syscalls: "
                                    "syscalls unknown to libseccomp skipped: no_such_call"]
    assert json.loads(result.stdout)["seccomp"] == {
        "default_action": "errno", "default_errno_ret": EPERM, "architectures": ["x86_64"],
        "syscalls": [{"names": ["read"], "action": "allow"},
                     {"names": ["personality"], "action": "errno", "errno_ret": EPERM,
                      "args": [{"index": 0, "value": 8, "value_two": 0, "op": "eq"}]}],
    }
    # A container made with such a filter warns the same way, once.
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [{"names": ["keyctl", "no_such_call"], "action": "errno"}]})
    created = box.run("exec", "true")
    assert created.returncode == 0 and stderr_lines(created) == stderr_lines(result)


def test_argument_comparisons(box: Nsinit) -> None:
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [
        # personality(8): refused; personality(0xffffffff), the query: allowed.
        {"name": "personality", "action": "errno", "errno_ret": EINVAL,
         "args": [{"index": 0, "value": 8, "op": "eq"}]},
        {"name": "clone", "action": "errno", "errno_ret": EPERM,
         "args": [{"index": 0, "value": CLONE_NEWUSER, "value_two": CLONE_NEWUSER, "op": "masked_eq"}]},
    ]}, capabilities=["SYS_ADMIN", "SETUID", "SETGID"])
    personality, clone = nr("personality"), nr("clone")
    out = ok(box.run("exec", "/bin/sh", "-c",
                     f"syscall call {personality} 8; syscall call {personality} 0xffffffff; "
                     f"syscall call {clone} {CLONE_NEWUSER | SIGCHLD}; syscall call {clone} {SIGCHLD}; "
                     "echo $(echo subshell)"))
    assert out.split() == [f"errno={EINVAL}", "ret=0", f"errno={EPERM}", out.split()[3], "subshell"]
    assert out.split()[3].startswith("ret=")  # a plain fork-like clone: a child pid


def test_kill_process_ends_the_container_with_sigsys(box: Nsinit) -> None:
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [{"name": "getppid", "action": "kill_process"}]})
    result = box.run("exec", "syscall", "call", nr("getppid"))
    assert result.returncode == 128 + 31, result.stderr  # SIGSYS
    assert result.stdout == ""


def test_default_errno_and_the_allow_list(box: Nsinit) -> None:
    """A whitelist (podman's shape): what is not listed fails with ENOSYS."""
    allowed = ["execve", "exit_group", "write", "brk", "arch_prctl", "set_tid_address", "rt_sigprocmask",
               "rt_sigaction", "getpid", "mmap", "munmap", "uname", "readlinkat", "prlimit64", "getrandom",
               "mprotect", "set_robust_list", "rseq", "newfstatat", "fstat", "exit", "close"]
    with_filter(box, {"default_action": "errno", "default_errno_ret": ENOSYS,
                      "syscalls": [{"names": allowed, "action": "allow"}]}, no_new_privileges=True)
    out = ok(box.run("exec", "syscall", "call", nr("getppid")))
    assert out == f"errno={ENOSYS}\n"


# --- users, no_new_privileges, joining ----------------------------------------------------

@pytest.mark.parametrize("settings", [
    {"user": "user"},                         # caps dropped, no no_new_privs: loaded before the capability step
    {"user": "user", "no_new_privileges": True},  # loaded last
    {},                                       # root without CAP_SYS_ADMIN: before the capability step
])
def test_filter_loads_for_every_kind_of_process(box: Nsinit, settings: dict) -> None:
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [{"name": "keyctl", "action": "errno", "errno_ret": EXDEV}]},
                **settings)
    out = ok(box.run("exec", "/bin/sh", "-c", f"id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                                              f"syscall call {nr('keyctl')} 0 0"))
    lines = out.split("\n")
    assert lines[0] == ("1000" if settings.get("user") else "0")
    assert "Seccomp:\t2" in out and f"errno={EXDEV}" in out
    assert ("NoNewPrivs:\t1" in out) == bool(settings.get("no_new_privileges"))


def test_a_joined_process_gets_the_containers_filter(box: Nsinit, start) -> None:  # type: ignore[no-untyped-def]
    with_filter(box, {**ALLOW_ALL_BUT, "syscalls": [{"name": "keyctl", "action": "errno", "errno_ret": EXDEV}]})
    start()
    # The file changes under the live container: the join still uses what
    # the container was created with (nsinit's record), never container.json.
    with_filter(box, None)
    out = ok(box.run("exec", "/bin/sh", "-c", f"grep Seccomp: /proc/self/status; syscall call {nr('keyctl')} 0 0"))
    assert "Seccomp:\t2" in out and f"errno={EXDEV}" in out


# --- notify ----------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100   # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101   # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes


def answer_one_notification(server: socket.socket, answer: int, seen: dict) -> None:
    """A seccomp agent: take the fd and the state, make one notified syscall return ``answer``."""
    conn, _ = server.accept()
    with conn:
        data, fds, _, _ = socket.recv_fds(conn, 65536, 1)
    seen["state"] = json.loads(data)
    notify_fd = fds[0]
    try:
        request = bytearray(80)
        fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, request)
        notif_id, pid, _flags, syscall_nr = struct.unpack_from("=QIIi", request)
        seen["nr"], seen["pid"] = syscall_nr, pid
        fcntl.ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, struct.pack("=QqiI", notif_id, answer, 0, 0))
    finally:
        os.close(notify_fd)


def test_notify_hands_the_fd_to_the_listener(box: Nsinit, tmp_path: Path) -> None:
    listener = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(listener))
    server.listen(1)
    server.settimeout(20)
    seen: dict = {}
    agent = threading.Thread(target=answer_one_notification, args=(server, 4242, seen), daemon=True)
    agent.start()
    try:
        with_filter(box, {**ALLOW_ALL_BUT, "listener_path": str(listener),
                          "syscalls": [{"name": "getppid", "action": "notify"}]})
        out = ok(box.run("exec", "syscall", "call", nr("getppid")))
        agent.join(10)
    finally:
        server.close()
    assert out == "ret=4242\n"  # the agent's answer, not the kernel's
    assert seen["nr"] == int(nr("getppid")) and seen["state"]["fds"] == ["seccompFd"]
    assert seen["state"]["pid"] == seen["pid"]  # host pid of the container process


def test_notify_without_a_reachable_listener_fails_cleanly(box: Nsinit, tmp_path: Path) -> None:
    with_filter(box, {**ALLOW_ALL_BUT, "listener_path": str(tmp_path / "nobody.sock"),
                      "syscalls": [{"name": "getppid", "action": "notify"}]})
    line = one_error_line(box.run("exec", "true"))
    assert line == f"nsinit: seccomp: listener {tmp_path / 'nobody.sock'}: No such file or directory"


# --- profiles --------------------------------------------------------------------------

@pytest.mark.skipif(not PODMAN_PROFILE.exists(), reason="containers-common (podman's seccomp.json) not installed")
def test_podmans_default_profile_loads_and_busybox_works(box: Nsinit) -> None:
    from nsinit.config.seccomp import to_dict
    from nsinit.seccomp.profile import from_profile
    from nsinit.config.defaults import DEFAULT_CAPABILITIES

    converted, _ = from_profile(json.loads(PODMAN_PROFILE.read_text()), str(PODMAN_PROFILE),
                                DEFAULT_CAPABILITIES, "x86_64")
    with_filter(box, to_dict(converted))
    out = ok(box.run("exec", "/bin/sh", "-c",
                     "grep Seccomp: /proc/self/status; ls / >/dev/null && ps >/dev/null && echo $(echo works); "
                     f"syscall call {nr('bpf')} 0 0 0; syscall call {nr('personality')} 8; "
                     f"syscall call {nr('personality')} 4"))
    # bpf: EPERM without CAP_SYS_ADMIN; personality: only the listed values, else the default ENOSYS.
    assert out.split() == ["Seccomp:", "2", "works", f"errno={EPERM}", "ret=0", f"errno={ENOSYS}"]


def test_spec_profile_keeps_root_from_raising_its_own_limits(box: Nsinit) -> None:
    """Issue 15 item 11: through a user and cgroup namespace of its own,
    root could mount cgroup v1 and raise its memory and pids limits."""
    if not Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        pytest.skip("needs the cgroup v1 memory hierarchy on the host")
    ok(box.run("spec", "--force"))
    spec = json.loads((box.root / "container.json").read_text())
    assert spec["seccomp"]["default_action"] == "allow"
    name = f"nsinit-{box.root.parent.name}"
    box.config(cgroups={"name": name, "resources": {"memory": 64 << 20, "pids_limit": 50}})
    script = ("mkdir -p /tmp/m /tmp/p && mount -t cgroup -o memory none /tmp/m && mount -t cgroup -o pids none /tmp/p"
              " && echo 1073741824 > /tmp/m/memory.limit_in_bytes && echo max > /tmp/p/pids.max; "
              "cat /tmp/m/memory.limit_in_bytes /tmp/p/pids.max")
    attempt = f"syscall userns /bin/sh -c '{script}'; unshare -U true; echo unshare=$?"
    out = box.run("exec", "/bin/sh", "-c", attempt)
    assert out.returncode == 0, out.stderr
    assert "unshare: Operation not permitted" in out.stdout
    assert "unshare=1" in out.stdout and "max" not in out.stdout and "1073741824" not in out.stdout
    # The same container without the filter: the limits go up (the hole the filter closes).
    with_filter(box, None)
    out = box.run("exec", "/bin/sh", "-c", attempt)
    assert "1073741824" in out.stdout and "\nmax\n" in out.stdout, out.stdout + out.stderr


# --- bad filters -------------------------------------------------------------------------

@pytest.mark.parametrize("seccomp, message", [
    ({"default_action": "allow", "syscalls": [{"name": "keyctl", "action": "foo"}]},
     'nsinit: container.json: seccomp.syscalls[0].action: unknown action "foo"'),
    ({"default_action": "allow", "syscalls": [{"name": "keyctl", "action": "errno",
                                               "args": [{"index": 0, "value": 1, "op": "approx"}]}]},
     'nsinit: container.json: seccomp.syscalls[0].args[0].op: unknown operator "approx"'),
    ({"default_action": "allow", "syscalls": [{"name": "keyctl", "action": "errno",
                                               "args": [{"index": 6, "value": 1, "op": "eq"}]}]},
     "nsinit: container.json: seccomp.syscalls[0].args[0].index: must be between 0 and 5"),
    ({"default_action": "allow", "syscalls": [{"names": [], "action": "errno"}]},
     "nsinit: container.json: seccomp.syscalls[0].names: must name at least one syscall"),
    ({"default_action": "allow", "syscalls": [{"name": "keyctl", "action": "notify"}]},
     'nsinit: container.json: seccomp.listener_path: the "notify" action needs a listener'),
])
def test_bad_filters_give_one_line_and_leave_nothing(box: Nsinit, seccomp: dict, message: str) -> None:
    with_filter(box, seccomp)
    line = one_error_line(box.run("exec", "true"))
    assert line.startswith(message)
