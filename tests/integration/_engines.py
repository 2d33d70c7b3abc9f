"""What test_podman and test_containerd share: the runtime binary under test.

The engines run a runtime *binary* by path (podman --runtime, the shim's
BinaryName), with an environment of their own choosing: PYTHONPATH does not
reach it.  So by default the tests write a launcher for THIS tree's
nsinit-runc, the one scripts/install writes (isolated mode, no site module,
nsinit/codebundle.py's text), with the tree first on sys.path and its
modules compiled ahead: a git worktree tests its own code.

NSINIT_ENGINE_RUNTIME names another binary (a path, or a name on PATH):
``NSINIT_ENGINE_RUNTIME=runc`` runs the same tests against runc, which
proves the tests and their cleanup, not nsinit.

A feature nsinit-runc does not have yet answers "not yet" (nsinit.oci.cli's
NOT_YET): ``needs(request, runtime, "exec")`` then marks the test
xfail(strict=True) naming the command, so it runs (and must pass) as soon
as the command lands, and is never skipped silently.  Each command is
asked once, on an id nobody has; "console-socket" is asked with a real
create of `spec`'s default bundle (process.terminal) and a socket path
that does not exist.  A known difference from runc is an xfail(strict=True)
too, in its test, naming the cause, and only for nsinit.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import REPO, processes_rooted_in
from nsinit.codebundle import build_command, launcher

ENV_NAME = "NSINIT_ENGINE_RUNTIME"

# The engines' own log lines (logrus: podman's WARN[0000] ..., ctr's time="..." level=warning ...):
# a machine's configuration can add some; what is left is the container's (and the runtime's).
ENGINE_LOG_LINE = re.compile(r'^(time="[^"]*" level=\w+ |(WARN|INFO|ERRO|DEBU)\[\d+\] )')


def container_stderr(text: str) -> str:
    """``text`` without the engine's own log lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not ENGINE_LOG_LINE.match(line))


class Runtime:
    """The runtime binary the engines are told to run."""

    def __init__(self, path: str, scratch: Path) -> None:
        self.path = path
        self.scratch = scratch   # the --root of the "not yet" probes
        self.name = os.path.basename(path)
        self.is_nsinit = self.name.startswith("nsinit")
        self._missing: dict[str, str] = {}

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.path, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def knows(self, container_id: str, root: str | None = None) -> bool:
        """Whether the runtime still has a container of that id (``state`` succeeds)."""
        return self.run(*(("--root", root) if root else ()), "state", container_id).returncode == 0

    def not_yet(self, command: str) -> str:
        """The runtime's "not yet" answer to ``command`` (on an id nobody has), or ""."""
        if command not in self._missing:
            self._missing[command] = self._probe(command) if self.is_nsinit else ""
        return self._missing[command]

    def _probe(self, command: str) -> str:
        root = ("--root", str(self.scratch / "probe-root"))
        if command == "console-socket":
            # Only a valid bundle with process.terminal gets that far: `spec`'s
            # default is one.  A runtime that has it fails on the socket path.
            bundle = self.scratch / "probe-bundle"
            if not bundle.exists():
                (bundle / "rootfs").mkdir(parents=True)
                self.run("spec", "--bundle", str(bundle))
            probe: tuple[str, ...] = ("create", "--bundle", str(bundle), "--console-socket",
                                      str(self.scratch / "no-socket"), "nsinit-engines-probe")
        else:
            probe = {"exec": ("exec", "nsinit-engines-probe", "true"),
                     "kill": ("kill", "nsinit-engines-probe", "9")}.get(command, (command, "nsinit-engines-probe"))
        result = self.run(*root, *probe)
        if command == "console-socket":
            self.run(*root, "delete", "--force", "nsinit-engines-probe")
        text = (result.stderr + result.stdout).strip()
        return text if "not yet" in text else ""


def needs(request: pytest.FixtureRequest, runtime: Runtime, *commands: str) -> None:
    """Mark the test xfail(strict=True) while the runtime answers "not yet" to one of ``commands``."""
    missing = [command for command in commands if runtime.not_yet(command)]
    if missing:
        reason = f"{runtime.name} answers not yet to: {', '.join(missing)} ({runtime.not_yet(missing[0])})"
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def write_launcher(directory: Path) -> str:
    paths = [str(REPO)] + sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    target = directory / "nsinit-runc"   # podman and conmon look at the basename
    target.write_text(launcher(sys.executable, paths, "nsinit.oci.cli", "tests/integration/_engines.py, for this tree"))
    target.chmod(0o755)
    # Its modules compiled ahead, as scripts/install does: the engines run
    # nsinit-runc the way it is installed.
    subprocess.run(build_command(sys.executable, str(REPO)), check=True, capture_output=True)
    return str(target)


def runtime_under_test(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    scratch = tmp_path_factory.mktemp("runtime")
    named = os.environ.get(ENV_NAME)
    if not named:
        return Runtime(write_launcher(scratch), scratch)
    path = shutil.which(named)
    if path is None:
        pytest.fail(f"{ENV_NAME}={named}: no such executable")
    return Runtime(os.path.abspath(path), scratch)


def needs_binaries(*names: str) -> pytest.MarkDecorator:
    missing = [name for name in names if shutil.which(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)} (scripts/install installs them)")


def cgroup_children(parent: str) -> list[str]:
    """Directories below /sys/fs/cgroup/<hierarchy>/<parent>, every hierarchy."""
    found = []
    base = Path("/sys/fs/cgroup")
    for hierarchy in sorted(base.iterdir()):
        directory = hierarchy / parent.strip("/")
        if directory.is_dir():
            found += [str(child) for child in directory.rglob("*") if child.is_dir()]
    return found


def kill_what_is_left(parent: str, rootfs: Path, base: Path) -> None:
    """The last resort of a module's teardown, after a runtime that failed
    to clean up (the tests have said so already): thaw and SIGKILL what is
    in the cgroups below ``parent`` or rooted in ``rootfs``, and detach the
    mounts under ``base``, so that nothing of the module stays on the machine."""
    import signal

    from nsinit import _native

    for freezer in Path("/sys/fs/cgroup/freezer", parent.strip("/")).glob("**/freezer.state"):
        try:
            freezer.write_text("THAWED")
        except OSError:
            pass
    pids = set(processes_rooted_in(rootfs))
    for procs in Path("/sys/fs/cgroup").glob(f"*/{parent.strip('/')}/**/cgroup.procs"):
        try:
            pids |= {int(pid) for pid in procs.read_text().split()}
        except OSError:
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if pids:
        time.sleep(0.5)   # their parents (conmon, the shim, PID 1) reap them
    for line in reversed(mounts_mentioning(str(base))):
        try:
            _native.umount2(line.split()[4], 2)   # MNT_DETACH
        except OSError:
            pass


def remove_cgroup_tree(parent: str) -> None:
    """rmdir the parent and what is below it, deepest first, in every hierarchy."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        directory = hierarchy / parent.strip("/")
        if not directory.is_dir():
            continue
        for child in sorted((c for c in directory.rglob("*") if c.is_dir()), key=lambda p: -len(p.parts)):
            child.rmdir()
        directory.rmdir()


def live_processes_mentioning(text: str) -> list[str]:
    """Processes (not zombies: those have no command line) whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry}: {cmdline[:200]}")
    return found


def mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if text in line]


def nsinit_records_mentioning(text: str) -> list[str]:
    """nsinit's private dirs (state.RUN_DIR) whose record names a path containing ``text``."""
    from nsinit import state

    found = []
    for private in state.private_dirs():
        try:
            record = Path(private, state.STATE_FILE).read_text()
        except OSError:
            continue   # no record (being made or removed)
        if text in record:
            found.append(private)
    return found


def read_until_closed(fd: int, proc: subprocess.Popen[bytes], timeout: float, until: bytes = b"") -> str:
    """What comes out of a pty master until every slave is closed (EIO) or
    ``proc`` ended (or, with ``until``, once that has come)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:   # EIO: the last slave closed
            break
        if not chunk:
            break
        out += chunk
        if until and until in out:
            break
    else:
        proc.kill()
    return out.decode(errors="replace")
