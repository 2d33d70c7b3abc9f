"""Shared fixtures.

Integration tests build real containers from a busybox rootfs made by
``nsinit rootfs``.  After every such test, ``no_residue`` checks that nothing
was left behind: pid/state files, nsinit's private state dirs (under
``state.RUN_DIR``), mounts under the test's directories, processes running
from the rootfs.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
# Subprocesses (``python -m nsinit``) import the tree under test, not whatever
# checkout the editable install points at: a git worktree tests its own code.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root: creates namespaces and mounts")


@pytest.fixture(scope="session", autouse=True)
def no_shared_residue() -> Iterator[None]:
    """What nsinit keeps between containers on purpose, and the suite must
    not leave on a machine that had none: the shared default cgroup parent
    (``nsinit`` in every hierarchy: kept so that the next container does
    not pay for making it) and the compiled seccomp filter cache in RUN_DIR.
    Removed at the end of the session if the session made them; a parent
    still holding a cgroup (another run's container) stays."""
    from nsinit import state
    from nsinit.cgroups.manager import DEFAULT_PARENT

    parents = [os.path.join("/sys/fs/cgroup", name, DEFAULT_PARENT) for name in _cgroup_roots()]
    made_here = [path for path in [*parents, os.path.join(state.RUN_DIR, "seccomp-cache"), state.RUN_DIR]
                 if not os.path.exists(path)]
    yield
    if not is_root():
        return
    for path in made_here:
        if path.endswith("seccomp-cache"):
            shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            os.rmdir(path)
        except OSError:
            pass  # not empty: in use by a container of another run


def _cgroup_roots() -> list[str]:
    try:
        return sorted(name for name in os.listdir("/sys/fs/cgroup")
                      if os.path.isdir(os.path.join("/sys/fs/cgroup", name))
                      and not os.path.islink(os.path.join("/sys/fs/cgroup", name)))
    except OSError:
        return []


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nsinit.errors import NsinitError
    from nsinit.demo_rootfs import build_rootfs, find_busybox

    try:
        find_busybox()
    except NsinitError as err:
        pytest.skip(f"busybox-static not installed: {err}")
    target = tmp_path_factory.mktemp("template") / "rootfs"
    build_rootfs(str(target))
    return target


@pytest.fixture
def rootfs(busybox_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the busybox rootfs for one test (symlinks and owners kept)."""
    target = tmp_path / "rootfs"
    shutil.copytree(busybox_template, target, symlinks=True)
    if is_root():
        _copy_owners(busybox_template, target)  # copytree does not: /home/user is 1000's
    return target


def _copy_owners(source: Path, target: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(source):
        rel = os.path.relpath(dirpath, source)
        for name in (".", *dirnames, *filenames):
            st = os.lstat(os.path.join(dirpath, name))
            os.lchown(os.path.join(target, rel, name), st.st_uid, st.st_gid)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4].startswith(prefix)]


def _directory_ids(path: Path, depth: int) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of ``path`` and the directories up to ``depth`` below it."""
    ids: set[tuple[int, int]] = set()
    try:
        st = os.lstat(path)
    except OSError:
        return ids
    if not os.path.isdir(path) or os.path.islink(path):
        return ids
    ids.add((st.st_dev, st.st_ino))
    if depth > 0:
        for child in path.iterdir():
            ids |= _directory_ids(child, depth - 1)
    return ids


def processes_rooted_in(path: Path) -> list[int]:
    """Processes whose root directory is ``path`` or a directory just below it.

    Compared by inode: after pivot_root, readlink(/proc/PID/root) of a
    container process says "/" (its root mount is not in our namespace).
    """
    prefix = str(path)
    roots = _directory_ids(path, 2)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/root")
            if (st.st_dev, st.st_ino) in roots or os.readlink(f"/proc/{entry}/root").startswith(prefix):
                found.append(int(entry))
        except OSError:
            continue  # exited, a zombie, or a kernel thread
    return found


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """nsinit's stderr, line by line; a Python traceback there is always a bug."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()


@pytest.fixture
def no_residue(tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    before = private_dirs_now()
    yield
    leftovers = [p for p in ("pid", "state.json") if os.path.lexists(tmp_path / "rootfs" / p)]
    assert not leftovers, f"files left in the root dir: {leftovers}"
    left = private_dirs_left(tmp_path, before)
    assert not left, f"private state left: {left}"
    assert not mounts_under(tmp_path), "mounts left on the host"
    assert not processes_rooted_in(tmp_path), "container processes left running"
    prefix = getattr(request.node, "link_prefix", None)
    if prefix:
        assert not links_left(prefix), f"network interfaces left on the host: {links_left(prefix)}"
    assert not cgroups_left(tmp_path), f"cgroups left on the host: {cgroups_left(tmp_path)}"


def private_dirs_left(tmp_path: Path, before: dict[str, tuple[int, int, tuple[str, ...]]] | None = None) -> list[str]:
    """nsinit's private state dirs (under state.RUN_DIR) of this test's root
    dirs: ``tmp_path`` and the directories just below it (rootfs, ...).

    Named by device and inode, so only this test's, whatever else runs;
    except that a dead container's dir outlives its root, and the inode is
    reused: a test's new directory can then have the name of a dir another
    session left (seen: a killed run's record "left" by an OOM test that
    never touched it).  So with ``before`` (private_dirs_now() at the start)
    a dir this test did not create or change is not counted as its own."""
    from nsinit import state

    roots = [tmp_path, *(p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink())]
    paths = [state.private_dir(str(root)) for root in roots]
    return [path for path in paths if os.path.lexists(path)
            and (before is None or _dir_identity(path) != before.get(path))]


def private_dirs_now() -> dict[str, tuple[int, int, tuple[str, ...]]]:
    """Every private dir in state.RUN_DIR, with what tells a change of it."""
    from nsinit import state

    found = {}
    for path in state.private_dirs():
        identity = _dir_identity(path)
        if identity is not None:
            found[path] = identity
    return found


def _dir_identity(path: str) -> tuple[int, int, tuple[str, ...]] | None:
    """(inode, ctime, names): adding or removing an entry changes the ctime,
    and the names tell it apart within one tick of the ctime's clock."""
    try:
        st = os.lstat(path)
        names = tuple(sorted(os.listdir(path)))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_ctime_ns, names


def cgroups_left(tmp_path: Path, depth: int = 3) -> list[str]:
    """cgroup dirs named "*nsinit*" that belong to this test, in any hierarchy.

    Only this test's: other test sessions may run containers meanwhile.  A
    default name carries the hash of the root dir; a test that names its
    cgroup puts ``tmp_path.name`` in the name.
    """
    from nsinit.cgroups import default_name

    tags = (default_name(str(tmp_path / "rootfs")).rsplit("-", 1)[1], tmp_path.name)
    found = []
    base = Path("/sys/fs/cgroup")
    if not base.is_dir():
        return found
    for hierarchy in base.iterdir():
        stack = [(hierarchy, 0)]
        while stack:
            directory, level = stack.pop()
            try:
                children = [c for c in directory.iterdir() if c.is_dir()]
            except OSError:
                continue  # removed while we looked
            for child in children:
                if "nsinit" in child.name and any(tag in child.name for tag in tags):
                    found.append(str(child))
                if level + 1 < depth:
                    stack.append((child, level + 1))
    return found


@pytest.fixture
def link_prefix(request: pytest.FixtureRequest) -> str:
    """A name prefix, unique to this test, for every host interface it makes
    (veth prefixes, bridges); ``no_residue`` checks none is left."""
    import secrets

    prefix = "nt" + secrets.token_hex(2)
    request.node.link_prefix = prefix
    return prefix


def links_named(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir("/sys/class/net") if name.startswith(prefix))


def links_left(prefix: str, grace: float = 2.0) -> list[str]:
    """Interfaces still named ``prefix*`` after ``grace`` seconds: the kernel
    removes a veth asynchronously once its peer's namespace is gone."""
    import time

    deadline = time.monotonic() + grace
    while links_named(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    return links_named(prefix)


class Nsinit:
    """Runs the nsinit CLI as a user would, in a given root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def config(self, **changes: Any) -> dict[str, Any]:
        path = self.root / "container.json"
        data = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        path.write_text(json.dumps(data, indent=2))
        return data

    def run(self, *args: str, timeout: float = 30, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nsinit", *args], cwd=self.root, capture_output=True,
            text=True, timeout=timeout, input=input, env=env,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def exec(self, *command: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("exec", *command, **kw)

    def sh(self, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.exec("/bin/sh", "-c", script, **kw)

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "nsinit", *args], cwd=self.root,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, **kw)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        wait_until(predicate, timeout)


def make_config(rootfs: str = "/", *, namespaces: tuple[str, ...] = ("NEWNS",), **fields: Any) -> Any:
    """A real nsinit Config (what the loader makes), with every field a test
    does not name left empty: for the steps that take a Config directly."""
    from nsinit.config.model import CapabilitySets, Config, NamespaceConfig

    values: dict[str, Any] = dict(
        source="test", rootfs=rootfs, namespaces=tuple(NamespaceConfig(name) for name in namespaces),
        capabilities=CapabilitySets(), mounts=(), devices=(), environment=(), mask_paths=(), readonly_paths=())
    values.update(fields)
    return Config(**values)


# A container that stays until killed: the shell loops, one short sleep at a time.
LOOP = "while :; do sleep 0.05; done"


def ok(result: subprocess.CompletedProcess[str], *, quiet: bool = True) -> str:
    """The stdout of a run that must have succeeded, with nothing on stderr
    (``quiet=False``: warnings allowed, a traceback never)."""
    lines = stderr_lines(result)
    assert result.returncode == 0, result.stderr
    if quiet:
        assert not lines, result.stderr
    return result.stdout


@contextmanager
def running(nsinit: Nsinit, script: str, *, ready: str = "tmp/ready",
            go: bool = False) -> Iterator[subprocess.Popen[str]]:
    """A container running ``script``, supervised by an nsinit process, from
    the moment ``ready`` (a path in the rootfs) exists; ``ready="pid"``: as
    soon as it is recorded.  Killed on the way out if still alive; its
    supervisor must end without a traceback.

    ``go``: the script first waits for /go, which leaving the block creates.
    """
    proc = nsinit.popen("exec", "/bin/sh", "-c", f"{WAIT_FOR_GO}; {script}" if go else script)
    try:
        nsinit.wait_for(lambda: (nsinit.root / ready).exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        yield proc
        if go:
            (nsinit.root / "go").touch()
    finally:
        if proc.poll() is None and not go:
            nsinit.run("resume")   # a frozen init would not die of the SIGKILL
            nsinit.run("kill", "KILL")  # the supervisor then cleans up as after any exit
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr, stderr


# The script of a ``running(..., go=True)`` container waits for this first.
WAIT_FOR_GO = "while [ ! -e /go ]; do sleep 0.02; done"


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    """Poll ``predicate`` every 20 ms; fail the test after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.fixture
def nsinit(rootfs: Path, no_residue: None) -> Nsinit:
    return Nsinit(rootfs)


@pytest.fixture
def sleeper():  # type: ignore[no-untyped-def]
    """A plain host process (sleep 30), killed after the test."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def traversable(tmp_path: Path) -> Iterator[None]:
    """Let any user search (not list) the pytest directories above tmp_path.

    The container's root is an unprivileged host uid in a user namespace, and
    the rootfs is bind-mounted by path: pytest makes its directories 0700.
    """
    changed = []
    for directory in [tmp_path, *tmp_path.parents]:
        mode = directory.stat().st_mode
        if mode & stat.S_IXOTH:
            continue
        directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        changed.append((directory, stat.S_IMODE(mode)))
    try:
        yield
    finally:
        for directory, mode in changed:
            directory.chmod(mode)


def give_rootfs_to_mapped_root(nsinit: "Nsinit", base: int = 100000) -> None:
    """Chown the rootfs by ``base`` and map container ids 0-65535 to it, so
    that inside a user namespace the rootfs belongs to root, not to nobody."""
    for dirpath, dirnames, filenames in os.walk(nsinit.root):
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for name in [dirpath, *(os.path.join(dirpath, n) for n in filenames + links)]:
            st = os.lstat(name)
            os.lchown(name, base + st.st_uid, base + st.st_gid)
    nsinit.config(namespaces=["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"],
                  uid_mappings=[{"container_id": 0, "host_id": base, "size": 65536}],
                  gid_mappings=[{"container_id": 0, "host_id": base, "size": 65536}])
