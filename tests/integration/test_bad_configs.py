"""Bad configs and failed setup steps: one clear line, exit 125, nothing left.

``no_residue`` (through the ``nsinit`` fixture) checks after each test that
no pid or state file, mount or process was left behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from conftest import Nsinit, needs_root, stderr_lines

pytestmark = needs_root

NO_UTS = ["NEWNS", "NEWIPC", "NEWPID", "NEWNET"]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = stderr_lines(result)
    assert result.returncode == 125, result.stderr
    assert len(lines) == 1, lines
    assert result.stdout == ""
    return lines[0]


def test_invalid_json(nsinit: Nsinit) -> None:
    (nsinit.root / "container.json").write_text('{"hostname": "x",\n  oops}\n')
    line = one_error_line(nsinit.exec("true"))
    assert line.startswith("nsinit: container.json: invalid JSON at line 2")


BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown namespace", {"namespaces": ["NEWNS", "NEWFOO"]}, "namespaces[1]"),
    ("unknown namespace type", {"namespaces": [{"type": "NEWNS"}, {"type": "NEWFOO"}]},
     "namespaces[1].type"),
    ("unknown capability", {"capabilities": ["CHOWN", "CAP_FLY"]}, "capabilities[1]"),
    ("unknown capability in a set", {"capabilities": {"bounding": ["CAP_FLY"]}},
     "capabilities.bounding[0]"),
    ("unknown dropped capability", {"capabilities_mask": ["FLY"]}, "capabilities_mask[0]"),
    ("hostname without NEWUTS", {"namespaces": NO_UTS, "hostname": "x"}, "hostname"),
    ("uid_mappings without NEWUSER",
     {"uid_mappings": [{"container_id": 0, "host_id": 100000, "size": 1}]}, "uid_mappings"),
    ("relative mount destination",
     {"mounts": [{"source": "/etc", "destination": "mnt", "writable": False}]},
     "mounts[0].destination"),
    ("bind source missing",
     {"mounts": [{"source": "/no/such/source", "destination": "/mnt", "writable": False}]},
     "mounts[0].source"),
    ("rlimit unknown name", {"rlimits": [{"type": "RLIMIT_FLY", "soft": 1, "hard": 1}]},
     "rlimits[0].type"),
    ("environment entry", {"environment": ["PATH=/bin", "JUSTANAME"]}, "environment[1]"),
    ("wrong type", {"readonlyfs": "yes"}, "readonlyfs"),
]


@pytest.mark.parametrize("changes,field", [(c, f) for _, c, f in BAD_FIELDS],
                         ids=[name for name, _, _ in BAD_FIELDS])
def test_invalid_field_is_named(nsinit: Nsinit, changes: dict[str, Any], field: str) -> None:
    nsinit.config(**changes)
    line = one_error_line(nsinit.exec("true"))
    assert line.startswith(f"nsinit: container.json: {field}: "), line


def test_unknown_key_is_a_warning_and_the_container_runs(nsinit: Nsinit) -> None:
    nsinit.config(hostnme="typo")
    result = nsinit.exec("hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "nsinit\n"
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("nsinit: warning: ") and '"hostnme"' in lines[0]


def test_missing_config_file(nsinit: Nsinit) -> None:
    (nsinit.root / "container.json").unlink()
    line = one_error_line(nsinit.exec("true"))
    assert line.startswith("nsinit: container.json: ")


# --- failures inside the child, after clone -------------------------------------------

def test_missing_working_dir_fails_in_the_child(nsinit: Nsinit) -> None:
    nsinit.config(working_dir="/no/such/dir")
    line = one_error_line(nsinit.exec("true"))
    assert line.startswith("nsinit: cwd: /no/such/dir: "), line


def test_unknown_user_fails_in_the_child(nsinit: Nsinit) -> None:
    line = one_error_line(nsinit.exec("--user", "nosuchuser", "true"))
    assert line.startswith("nsinit: user: ") and "nosuchuser" in line, line


def test_mount_failure_fails_in_the_child(nsinit: Nsinit) -> None:
    # A file where the config wants a directory mount point.
    (nsinit.root / "blocker").write_text("")
    nsinit.config(mounts=[{"source": "tmpfs", "destination": "/blocker/sub", "device": "tmpfs",
                           "flags": 0, "data": ""}])
    line = one_error_line(nsinit.exec("true"))
    assert line.startswith("nsinit: mount"), line


def test_bad_env_option(nsinit: Nsinit) -> None:
    line = one_error_line(nsinit.exec("--env", "NOEQUALS", "true"))
    assert line.startswith("nsinit: --env: "), line


def test_the_failed_config_was_not_half_applied(nsinit: Nsinit) -> None:
    # A valid mount before an invalid one: validation happens before anything
    # is created, so the valid one's mount point is not even made.
    nsinit.config(mounts=[
        {"source": "tmpfs", "destination": "/made-early", "device": "tmpfs", "flags": 0, "data": ""},
        {"source": "/no/such/source", "destination": "/mnt", "writable": False},
    ])
    one_error_line(nsinit.exec("true"))
    assert not (nsinit.root / "made-early").exists()
    json.loads((nsinit.root / "container.json").read_text())  # left as the user wrote it


# --- one line per failure, made from errno, the call and its path ---------------------

def test_a_failed_mount_names_the_call_and_the_path_once(nsinit: Nsinit) -> None:
    nsinit.config(mounts=[{"source": "tmpfs", "destination": "/mnt", "device": "tmpfs",
                           "flags": 0, "data": "size=bogus"}])
    assert one_error_line(nsinit.exec("true")) == "nsinit: mounts: mount(/mnt): Invalid argument"


def test_a_missing_working_dir_is_one_exact_line(nsinit: Nsinit) -> None:
    nsinit.config(working_dir="/no/such/dir")
    assert one_error_line(nsinit.exec("true")) == "nsinit: cwd: /no/such/dir: No such file or directory"


# A seccomp filter on nsinit itself (inherited by the container's init) makes
# pivot_root(2) fail with EINVAL, as a rootfs it cannot pivot to would.
DENY_PIVOT_ROOT = """
import errno, os, struct, sys
from nsinit import _native
arch, nr = {arch}, {nr}
def insn(code, jt, jf, k):
    return struct.pack("=HBBI", code, jt, jf, k)
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
_native.seccomp_set_filter(b"".join([
    insn(LD_ABS, 0, 0, 4), insn(JEQ, 0, 2, arch),  # seccomp_data.arch
    insn(LD_ABS, 0, 0, 0), insn(JEQ, 0, 1, nr),    # seccomp_data.nr
    insn(RET, 0, 0, 0x00050000 | errno.EINVAL),    # SECCOMP_RET_ERRNO
    insn(RET, 0, 0, 0x7FFF0000)]))                 # SECCOMP_RET_ALLOW
os.execv(sys.executable, [sys.executable, "-m", "nsinit", "exec", "true"])
"""
# AUDIT_ARCH_* and __NR_pivot_root of each architecture.
PIVOT_ROOT_SYSCALL = {"x86_64": (0xC000003E, 155), "aarch64": (0xC00000B7, 41)}


def test_a_failed_pivot_root_says_pivot_root_once(nsinit: Nsinit) -> None:
    machine = os.uname().machine
    if machine not in PIVOT_ROOT_SYSCALL:
        pytest.skip(f"no pivot_root syscall number known for {machine}")
    arch, nr = PIVOT_ROOT_SYSCALL[machine]
    result = subprocess.run([sys.executable, "-c", DENY_PIVOT_ROOT.format(arch=arch, nr=nr)], cwd=nsinit.root,
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    # Not "nsinit: pivot_root: pivot_root: Invalid argument".
    assert one_error_line(result) == "nsinit: pivot_root: Invalid argument"


def test_a_cleanup_failure_is_a_note_after_the_error_that_caused_it(nsinit: Nsinit) -> None:
    from nsinit import state

    # A mount on the container's private state dir: removing that dir, the
    # last undo of a failed create, fails with EBUSY.
    private = state.private_dir(str(nsinit.root))
    os.makedirs(os.path.dirname(private), mode=0o700, exist_ok=True)
    os.mkdir(private, 0o700)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "nsinit-test", private], check=True)
        try:
            nsinit.config(working_dir="/no/such/dir")
            result = nsinit.exec("true")
        finally:
            subprocess.run(["umount", private], check=True)
    finally:
        os.rmdir(private)
    assert result.returncode == 125, result.stderr
    assert stderr_lines(result) == [
        "nsinit: cwd: /no/such/dir: No such file or directory",
        f"nsinit: note: cleanup failed: state: cannot remove {private}: Device or resource busy"]
