"""The socket pair between the supervisor and the container's init.

One JSON object per SOCK_SEQPACKET message.  The parent says ``go`` once it
has recorded the child (maps, pid file, state); the child answers with
``trace`` records while it sets up, and either an ``error`` or nothing: a
successful execve closes the child's close-on-exec end, and the parent reads
EOF.  This is the subprocess pattern (which step, which errno) applied to a
whole container setup.
"""
from __future__ import annotations

import json
import os
import socket

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 65536


def socket_pair() -> tuple[int, int]:
    """(parent end, child end); both close-on-exec."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    return a.detach(), b.detach()


def send(fd: int, *, pass_fd: int = -1, **message: Any) -> None:
    """Send one message; ``pass_fd`` rides along as SCM_RIGHTS (the
    container's pty master travels to the supervisor this way)."""
    data = json.dumps(message).encode()
    if pass_fd < 0:
        os.write(fd, data)
        return
    sock = socket.socket(fileno=fd)
    try:
        socket.send_fds(sock, [data], [pass_fd])
    finally:
        sock.detach()


def receive(fd: int) -> dict[str, Any] | None:
    """The next message, or None at EOF.  A passed fd arrives as ``"fd"``."""
    sock = socket.socket(fileno=fd)
    try:
        data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
    finally:
        sock.detach()
    if not data:
        for extra in fds:
            os.close(extra)
        return None
    message: dict[str, Any] = json.loads(data)
    if fds:
        message["fd"] = fds[0]
    return message
