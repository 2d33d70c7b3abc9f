"""``--console-socket``: hand the pty master to the engine that asked for a terminal.

The protocol runc speaks (docs/terminals.md) and conmon and go-runc expect:
connect to the AF_UNIX SOCK_STREAM socket at the path, send ONE message whose
ancillary data is one SCM_RIGHTS fd (conmon checks ``cmsg_len ==
CMSG_LEN(sizeof(int))``, go-runc wants exactly one fd) and whose payload is
non-empty (runc sends the master's name, e.g. "/dev/pts/ptmx"; an empty
payload reads as EOF on a stream socket).  The JSON request/response that
runtime-tools' docs describe is used by no client.  Sent before ``create``
returns, else conmon says "Runtime did not set up terminal".
"""
from __future__ import annotations

import os

from nsinit.errors import NsinitError

STEP = "console-socket"


def send_console(socket_path: str, master_fd: int, name: str) -> None:
    """Send ``master_fd`` over the socket at ``socket_path`` with ``name`` as payload."""
    import array
    import socket  # only when a terminal is asked for

    payload = name.encode() or b"/dev/ptmx"  # never empty: see the module doc
    if not os.path.isabs(socket_path):
        raise NsinitError(STEP, f'"{socket_path}" must be an absolute path')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(socket_path)
        except OSError as err:
            raise NsinitError(STEP, f"{socket_path}: cannot connect: {err.strerror or err}") from None
        fds = array.array("i", [master_fd])
        try:
            sent = sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        except OSError as err:
            raise NsinitError(STEP, f"{socket_path}: cannot send the terminal: {err.strerror or err}") from None
        if sent != len(payload):
            raise NsinitError(STEP, f"{socket_path}: the terminal's name was cut short ({sent} bytes sent)")
    finally:
        sock.close()
