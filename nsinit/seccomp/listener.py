"""The notify action: the filter's notification fd goes to a listener.

The listener (a seccomp agent) is a unix stream socket at ``listener_path``;
it receives, as the OCI runtime spec describes, one message: the JSON
container process state with the fd in SCM_RIGHTS (``"fds":
["seccompFd"]``).  From then on the agent answers the container's notified
syscalls (SECCOMP_IOCTL_NOTIF_RECV / SEND on that fd).
"""
from __future__ import annotations

import _socket
import os
import sys

from nsinit import __version__, jsontext
from nsinit.errors import NsinitError, describe_oserror

OCI_VERSION = "1.0.2"
_CONNECT_TIMEOUT = 5.0  # seconds: a listener that never accepts must not hang the container


def process_state(pid: int, root: str, rootfs: str) -> dict[str, object]:
    return {
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": "",
        "state": {"ociVersion": OCI_VERSION, "id": os.path.basename(os.path.abspath(root)), "status": "creating",
                  "pid": pid, "bundle": rootfs, "annotations": {"nsinit.version": __version__}},
    }


def send_to_listener(path: str, fd: int, pid: int, root: str, rootfs: str) -> None:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(_CONNECT_TIMEOUT)
        sock.connect(path)
        data = jsontext.dumps(process_state(pid, root, rootfs)).encode()
        rights = fd.to_bytes(4, sys.byteorder, signed=True)
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    except OSError as err:
        raise NsinitError("seccomp", f"listener {path}: {describe_oserror(err)}") from None
    finally:
        sock.close()
