"""A terminal for a detached container: its pty master goes to a console socket.

What conmon and containerd's shim rely on (../shared/reference/oci-clients.md):
one SOCK_STREAM message with exactly one SCM_RIGHTS fd and a non-empty
payload, sent before ``create`` returns; the pty is the container's own
(its devpts, ``newinstance``), its slave the init's fds 0-2 and controlling
terminal; the runtime keeps no copy of the master.  Here the library's
``Container.create`` is the runtime, run by the test process (the engine).
"""
from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from _ocibundle import ConsoleListener, bundle, tty_nr
from conftest import needs_root
from nsinit.container import Container, Process
from nsinit.errors import NsinitError
from nsinit.oci.spec import load_bundle

pytestmark = [pytest.mark.integration, needs_root]

TIOCGPTN = 0x80045430
PTY_SLAVE_MAJOR = 136


def read_until(fd: int, wanted: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while wanted not in data and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the slave's last holder exited
                break
            data += chunk
    return data


def same_file_fds(fd: int) -> list[str]:
    """Our fds open on the same file as ``fd``."""
    st = os.fstat(fd)
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            other = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            found.append(name)
    return found


def test_created_container_sends_its_own_pty_master(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    script = "stty size; tty; read line; echo typed:$line; exit 3"
    spec, _ = load_bundle(str(bundle(tmp_path, rootfs, ["/bin/sh", "-c", script], terminal=True,
                                     consoleSize={"height": 31, "width": 97})), "cs")
    listener = ConsoleListener(tmp_path / "console.sock")
    container = Container(str(tmp_path / "state"), spec.config)
    (tmp_path / "state").mkdir()
    master = -1
    try:
        process = container.create(Process(list(spec.args), console_socket=listener.path,
                                           console_size=spec.console_size))
        # Sent before create returned: the message waits in the socket.
        payload, fds, lengths = listener.receive()
        assert len(fds) == 1 and lengths == [4], (fds, lengths)   # conmon: cmsg_len == CMSG_LEN(sizeof(int))
        assert payload == b"/dev/pts/ptmx"
        master = fds[0]
        # A pty master of the container's own devpts, not the host's.
        assert os.major(os.fstat(master).st_rdev) == 5 and os.minor(os.fstat(master).st_rdev) == 2
        assert os.fstat(master).st_dev != os.stat("/dev/pts/ptmx").st_dev
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        # The slave is the init's fds 0-2 (by the container's path) and its controlling terminal.
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{process.pid}/fd/{fd}") == f"/dev/pts/{number}"
        assert tty_nr(process.pid) == os.makedev(PTY_SLAVE_MAJOR, number)
        # The runtime kept no copy: the one we received is the only one here.
        assert same_file_fds(master) == [str(master)]
        size = struct.unpack("HHHH", fcntl.ioctl(master, termios.TIOCGWINSZ, b"\0" * 8))
        assert size[:2] == (31, 97)
        container.start()
        out = read_until(master, b"/dev/pts/")
        os.write(master, b"hello pty\n")
        out += read_until(master, b"typed:hello pty")
        assert process.wait() == 3
        text = out.decode().replace("\r", "")
        assert "31 97\n" in text and f"/dev/pts/{number}\n" in text and "typed:hello pty\n" in text, text
    finally:
        if master >= 0:
            os.close(master)
        listener.close()
        container.delete(force=True)


def test_a_detached_terminal_without_a_console_socket_is_refused(tmp_path: Path, rootfs: Path,
                                                                no_residue: None) -> None:
    spec, _ = load_bundle(str(bundle(tmp_path, rootfs, ["/bin/true"], terminal=True)), "cs")
    (tmp_path / "state").mkdir()
    container = Container(str(tmp_path / "state"), spec.config)
    with pytest.raises(NsinitError) as refused:
        container.create(Process(list(spec.args)))
    assert str(refused.value).startswith("tty: a detached container cannot have a terminal here: its pty would "
                                         "need a console socket")
    assert container.status_with_record()[0] == "none"


def test_an_unreachable_console_socket_fails_create_and_leaves_nothing(tmp_path: Path, rootfs: Path,
                                                                      no_residue: None) -> None:
    spec, _ = load_bundle(str(bundle(tmp_path, rootfs, ["/bin/true"], terminal=True)), "cs")
    (tmp_path / "state").mkdir()
    container = Container(str(tmp_path / "state"), spec.config)
    with pytest.raises(NsinitError) as failed:
        container.create(Process(list(spec.args), console_socket=str(tmp_path / "nobody.sock")))
    assert "nobody.sock: cannot connect: No such file or directory" in str(failed.value)
    assert container.status_with_record()[0] == "none"


def runc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """nsinit-runc with its stdio in files: a container made without a
    terminal would hold pipes open for its life."""
    with open(root.parent / "runc.out", "w+") as o, open(root.parent / "runc.err", "w+") as e:
        code = subprocess.run([sys.executable, "-m", "nsinit.oci", "--root", str(root), *args], stdout=o, stderr=e,
                              timeout=60, stdin=subprocess.DEVNULL).returncode
        o.seek(0)
        e.seek(0)
        return subprocess.CompletedProcess(args, code, o.read(), e.read())


def test_nsinit_runc_create_with_a_console_socket(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    """conmon's create --console-socket: the master arrives before create exits."""
    directory = bundle(tmp_path, rootfs, ["/bin/sh", "-c", "read line; echo typed:$line"], terminal=True)
    listener = ConsoleListener(tmp_path / "console.sock")
    master = -1
    try:
        done = runc(tmp_path / "state", "create", "--bundle", str(directory), "--console-socket", listener.path,
                    "--pid-file", str(tmp_path / "pid"), "c1")
        assert done.returncode == 0 and done.stderr == "", done.stderr
        payload, fds, lengths = listener.receive()
        assert payload and len(fds) == 1 and lengths == [4]
        master = fds[0]
        pid = int((tmp_path / "pid").read_text())
        assert os.readlink(f"/proc/{pid}/fd/0").startswith("/dev/pts/") and tty_nr(pid) != 0
        assert runc(tmp_path / "state", "start", "c1").returncode == 0
        os.write(master, b"from conmon\n")
        assert b"typed:from conmon" in read_until(master, b"typed:from conmon")
    finally:
        if master >= 0:
            os.close(master)
        listener.close()
        assert runc(tmp_path / "state", "delete", "--force", "c1").returncode == 0


def test_nsinit_runc_create_with_a_terminal_and_no_socket(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    directory = bundle(tmp_path, rootfs, ["/bin/true"], terminal=True)
    done = runc(tmp_path / "state", "create", "--bundle", str(directory), "c1")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "cannot allocate tty if runc will detach without setting console socket" in done.stderr
    assert runc(tmp_path / "state", "list", "-q").stdout == ""
