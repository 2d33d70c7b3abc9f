"""Escape classes of other runtimes, tried from inside real containers (issue 15).

Each test is an attack a container's root can make; it passes when the
attack fails inside the container, or nsinit refuses with one line.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import Nsinit, needs_root, ok, stderr_lines
from _live import Live, start  # noqa: F401 (fixture)

pytestmark = needs_root

USERNS_BASE = 100000


def map_root(nsinit: Nsinit) -> None:
    """A user namespace whose root is host uid USERNS_BASE, owning the rootfs."""
    for dirpath, dirnames, filenames in os.walk(nsinit.root):
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        for name in [dirpath, *(os.path.join(dirpath, n) for n in filenames + links)]:
            st = os.lstat(name)
            os.lchown(name, USERNS_BASE + st.st_uid, USERNS_BASE + st.st_gid)
    maps = [{"container_id": 0, "host_id": USERNS_BASE, "size": 65536}]
    nsinit.config(namespaces=["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER"],
                  uid_mappings=maps, gid_mappings=maps)


# --- no_pivot_root: the host's procfs ----------------------------------------------

# A fresh procfs, mounted where no mask of nsinit's covers anything: if the
# kernel allows the mount, /proc/kcore, /proc/timer_list, ... are all readable
# to whoever may read them (root's root: timer_list is 0400).
FRESH_PROC = "unshare -mrpf sh -c 'mount -t proc none /proc' 2>/dev/null; echo mounted=$?"


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_no_pivot_root_cannot_mount_an_unmasked_procfs(nsinit: Nsinit, traversable: None,
                                                       userns: bool) -> None:
    # The kernel lets a user namespace mount procfs only while a full procfs
    # is in the mount namespace: the host's /proc, left under the moved root,
    # would be one.  In a user namespace it cannot be unmounted, only covered.
    if userns:
        map_root(nsinit)
    nsinit.config(no_pivot_root=True)
    out = ok(nsinit.sh(f"{FRESH_PROC}; test -r /proc/self/status && echo own-proc"))
    assert out.split() == ["mounted=1", "own-proc"]


def test_pivot_root_cannot_mount_an_unmasked_procfs(nsinit: Nsinit) -> None:
    assert ok(nsinit.sh(FRESH_PROC)).split() == ["mounted=1"]


# --- the console: opened inside the container's root, checked before use ----------

def test_console_is_the_containers_pty_when_dev_leads_to_the_host(nsinit: Nsinit,
                                                                   tmp_path: Path) -> None:
    # /dev -> ../../..<host dir>: inside the root the ".." stop at its top and
    # it names a directory of the image; by host path it names <host dir>,
    # whose pts is the host's devpts.  Opened by host path, dev/pts/ptmx
    # gave the container a pty of the host's.
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "pts").symlink_to("/dev/pts")
    (nsinit.root / str(host_dir).lstrip("/")).mkdir(parents=True)
    shutil.rmtree(nsinit.root / "dev")
    (nsinit.root / "dev").symlink_to("../" * len(nsinit.root.parts) + str(host_dir).lstrip("/"))
    assert os.path.realpath(nsinit.root / "dev/pts/ptmx") == "/dev/pts/ptmx"
    out = ok(nsinit.exec("-t", "/bin/sh", "-c", "stat -L -c %d /proc/self/fd/0; stat -c %d /dev/pts/"))
    console_dev, devpts_dev = (int(n) for n in out.split())
    assert console_dev == devpts_dev != os.stat("/dev/pts").st_dev


IN_OPEN = 0x20


def watch_opens(path: Path) -> int:
    """An inotify fd (non-blocking) that reports every open(2) of ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    assert libc.inotify_add_watch(fd, bytes(path), IN_OPEN) >= 0, os.strerror(ctypes.get_errno())
    return fd


def opened(watch: int) -> bool:
    try:
        return bool(os.read(watch, 4096))
    except BlockingIOError:
        return False


def without_devpts(nsinit: Nsinit) -> None:
    """The default mounts, but no devpts: /dev/pts is what the container makes it."""
    config = json.loads(nsinit.run("config").stdout)
    nsinit.config(mounts=[m for m in config["mounts"] if m["device"] != "devpts"])


def test_join_refuses_a_ptmx_that_leads_to_a_host_file(nsinit: Nsinit, start: Callable[..., Live],
                                                       tmp_path: Path) -> None:
    # The container's root points /dev/pts/ptmx at the joiner's stdin, a host
    # file: through /proc/self/fd (a magic link) the join reopened it
    # read-write, as the host's root, before seeing it is no terminal.
    without_devpts(nsinit)
    start("mkdir -p /dev/pts && ln -s /proc/self/fd/0 /dev/pts/ptmx && touch /tmp/ready;"
          " exec sleep 30")
    secret = tmp_path / "host-file"
    secret.write_text("host\n")
    with open(secret) as stdin:
        watch = watch_opens(secret)
        try:
            result = subprocess.run([sys.executable, "-m", "nsinit", "exec", "-t", "/bin/true"],
                                    cwd=nsinit.root, stdin=stdin, capture_output=True, text=True,
                                    timeout=30, check=False)
            assert not opened(watch), "the join opened the host file"
        finally:
            os.close(watch)
    lines = stderr_lines(result)
    assert result.returncode == 125 and len(lines) == 1, result.stderr
    assert lines[0].startswith("nsinit: console: "), lines


def test_join_refuses_a_ptmx_that_is_no_devpts_ptmx(nsinit: Nsinit, start: Callable[..., Live]) -> None:
    without_devpts(nsinit)
    start("mkdir -p /dev/pts && ln -s /dev/null /dev/pts/ptmx && touch /tmp/ready; exec sleep 30")
    result = nsinit.exec("-t", "/bin/true")
    lines = stderr_lines(result)
    assert result.returncode == 125 and len(lines) == 1, result.stderr
    assert lines[0] == ("nsinit: console: /dev/pts/ptmx in the container is not on a devpts "
                        "filesystem; refusing it as the console"), lines


# --- /proc/self/exe: never the host's interpreter (CVE-2019-5736) ------------------

def give_host_python_its_libraries(root: Path) -> None:
    """Copy the host interpreter's ELF loader and libraries into the image, at
    their host paths: as an image with a compatible libc (any Debian image)
    has them, so that if the container reached the host's python, it would
    run.  Its standard library stays out: ``-V`` and the fatal "no
    encodings" error are proof enough that it ran."""
    listing = subprocess.run(["ldd", sys.executable], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        words = line.split()
        path = words[2] if "=>" in words and len(words) > 2 else words[0]
        if not path.startswith("/"):
            continue  # linux-vdso.so.1: in the kernel
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(path), target)


SHEBANG_SELF = "#!/proc/self/exe\nprint('python ran')\n"


def write_self_script(root: Path) -> None:
    script = root / "self.py"
    script.write_text(SHEBANG_SELF)
    script.chmod(0o755)


def assert_no_host_python(result: subprocess.CompletedProcess[str]) -> None:
    out = result.stdout + result.stderr
    assert "Python" not in out and "python ran" not in out, out
    assert result.returncode == 127, out
    assert stderr_lines(result) == ["nsinit's exec trampoline: not a command"]


@pytest.mark.parametrize("command", [["/proc/self/exe", "-V"], ["/self.py"]],
                         ids=["command", "shebang"])
def test_proc_self_exe_is_not_the_host_interpreter(nsinit: Nsinit, command: list[str]) -> None:
    give_host_python_its_libraries(nsinit.root)
    write_self_script(nsinit.root)
    assert_no_host_python(nsinit.exec(*command))


@pytest.mark.parametrize("command", [["/proc/self/exe", "-V"], ["/self.py"]],
                         ids=["command", "shebang"])
def test_joined_proc_self_exe_is_not_the_host_interpreter(nsinit: Nsinit, start: Callable[..., Live],
                                                          command: list[str]) -> None:
    give_host_python_its_libraries(nsinit.root)
    write_self_script(nsinit.root)
    start()
    assert_no_host_python(nsinit.exec(*command))


def full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is full: the next write to it blocks."""
    import fcntl

    r, w = os.pipe()
    flags = fcntl.fcntl(w, fcntl.F_GETFL)
    fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(w, b"x" * 65536)
    except BlockingIOError:
        pass
    fcntl.fcntl(w, fcntl.F_SETFL, flags)
    return r, w


def test_the_exe_the_container_reaches_is_a_sealed_memfd(nsinit: Nsinit, tmp_path: Path) -> None:
    # The trampoline, run as the init's command ("/proc/self/exe 1 /nonexistent x"),
    # fails to exec /nonexistent and blocks reporting it on its stdout, a
    # full pipe: it stays the init while a joined process tries its exe.
    import fcntl

    r, w = full_pipe()
    proc = subprocess.Popen([sys.executable, "-m", "nsinit", "exec", "/proc/self/exe", "1",
                             "/nonexistent", "x"], cwd=nsinit.root, stdin=subprocess.DEVNULL,
                            stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    try:
        pid_file = nsinit.root / "pid"
        nsinit.wait_for(lambda: pid_file.exists() and Path(f"/proc/{pid_file.read_text()}/exe").exists()
                        and os.readlink(f"/proc/{pid_file.read_text()}/exe").startswith("/memfd:"))
        init = int(pid_file.read_text())
        exe = os.open(f"/proc/{init}/exe", os.O_RDONLY | os.O_CLOEXEC)
        try:
            seals = fcntl.fcntl(exe, fcntl.F_GET_SEALS)
        finally:
            os.close(exe)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        joined = ok(nsinit.sh("readlink /proc/1/exe; (printf x >> /proc/1/exe) 2>/dev/null; echo write=$?"))
        assert joined.splitlines() == ["/memfd:nsinit-exec (deleted)", "write=1"], joined
    finally:
        while os.read(r, 65536):  # let the trampoline's report through; it exits
            pass
        os.close(r)
        proc.wait(timeout=20)
    assert proc.returncode == 127
    assert "nsinit" not in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.parametrize("joined", [False, True], ids=["create", "join"])
def test_exec_errors_behind_the_trampoline_are_one_line(nsinit: Nsinit, start: Callable[..., Live],
                                                        joined: bool) -> None:
    # Checked in Python before the trampoline: missing, not executable.  Only
    # the kernel knows the rest; the trampoline reports execve's errno.
    (nsinit.root / "garbage").write_bytes(b"\0\1\2 not a program")
    (nsinit.root / "no-interpreter").write_text("#!/no/such/interpreter\n")
    for name in ("garbage", "no-interpreter"):
        (nsinit.root / name).chmod(0o755)
    if joined:
        start()
    for command, status, line in [
        ("/garbage", 126, "nsinit: exec: /garbage: Exec format error"),
        ("/no-interpreter", 127, "nsinit: exec: /no-interpreter: No such file or directory"
                                 f" in the rootfs {nsinit.root}"),
        ("/etc", 126, "nsinit: exec: /etc: Permission denied"),
        ("/no/such", 127, f"nsinit: exec: /no/such: No such file or directory in the rootfs {nsinit.root}"),
    ]:
        result = nsinit.exec(command)
        assert (result.returncode, stderr_lines(result)) == (status, [line])
