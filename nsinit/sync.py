"""The socket pair between the supervisor and the container's init.

One JSON object per SOCK_SEQPACKET message.  The parent says ``go`` once it
has recorded the child (maps, pid file, state); the child answers with
``trace`` records while it sets up, and either an ``error`` or nothing: a
successful execve closes the child's close-on-exec end, and the parent reads
EOF.  This is the subprocess pattern (which step, which errno) applied to a
whole container setup.
"""
from __future__ import annotations

import os
import sys

# The C module under socket.py: socket.py adds enum classes and selectors
# that nsinit does not use, at ~3 ms of every container start.
import _socket

from nsinit import jsontext

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 65536
_FD_SIZE = 4  # an fd in SCM_RIGHTS is a C int


def socket_pair() -> tuple[int, int]:
    """(parent end, child end); both close-on-exec."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    return a.detach(), b.detach()


def send(fd: int, *, pass_fd: int = -1, **message: Any) -> None:
    """Send one message; ``pass_fd`` rides along as SCM_RIGHTS (the
    container's pty master travels to the supervisor this way)."""
    data = jsontext.dumps(message).encode()
    if pass_fd < 0:
        os.write(fd, data)
        return
    sock = _socket.socket(fileno=fd)
    try:
        rights = pass_fd.to_bytes(_FD_SIZE, sys.byteorder, signed=True)
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    finally:
        sock.detach()


def receive(fd: int) -> dict[str, Any] | None:
    """The next message, or None at EOF.  A passed fd arrives as ``"fd"``."""
    sock = _socket.socket(fileno=fd)
    try:
        data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, _socket.CMSG_SPACE(_FD_SIZE), _socket.MSG_CMSG_CLOEXEC)
    finally:
        sock.detach()
    fds = [int.from_bytes(payload[i:i + _FD_SIZE], sys.byteorder, signed=True)
           for level, kind, payload in ancillary
           if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
           for i in range(0, len(payload) - _FD_SIZE + 1, _FD_SIZE)]
    if not data:
        for extra in fds:
            os.close(extra)
        return None
    message: dict[str, Any] = jsontext.loads(data)
    if fds:
        message["fd"] = fds[0]
    return message
