"""What the OCI tests share: a bundle of nsinit-runc's default spec on the
test's rootfs, and a console-socket listener as conmon's and go-runc's."""
from __future__ import annotations

import array
import json
import os
import socket
from pathlib import Path
from typing import Any

from nsinit.oci.defaults import default_spec


def bundle(tmp_path: Path, rootfs: Path, args: list[str], **process: Any) -> Path:
    """tmp_path/bundle/config.json: nsinit-runc spec's, running ``args``,
    its cgroup under the test's name (found by the residue check)."""
    data = default_spec(rootless=False)
    data["root"] = {"path": str(rootfs), "readonly": False}
    data["process"].update({"args": args, "terminal": False, **process})
    data["linux"]["cgroupsPath"] = f"/nsinit-oci-{tmp_path.name}"
    data.pop("hostname", None)
    directory = tmp_path / "bundle"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(data, indent=2))
    return directory


def proc_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def tty_nr(pid: int) -> int:
    """The controlling terminal's device number (proc(5) stat field 7)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])


class ConsoleListener:
    """An AF_UNIX SOCK_STREAM listener that takes one message as conmon does:
    the payload, and every fd of its SCM_RIGHTS (a test checks there is one)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(30)

    def receive(self) -> tuple[bytes, list[int], list[int]]:
        """(payload, fds, cmsg lengths) of the one message sent."""
        conn, _ = self.sock.accept()
        with conn:
            payload, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * 4), socket.MSG_CMSG_CLOEXEC)
            rest = conn.recv(4096)  # then the runtime closes its end
        assert rest == b""
        fds: list[int] = []
        lengths = []
        for level, kind, data in ancillary:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            lengths.append(len(data))
            fds.extend(array.array("i", data))
        return payload, fds, lengths

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)


def fds_on(pid: int, target: str) -> list[str]:
    """The fds of ``pid`` open on ``target`` (a readlink of /proc/PID/fd/N)."""
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == target:
                found.append(name)
        except OSError:
            continue
    return found
