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
from typing import Any

MAX_MESSAGE = 65536


def socket_pair() -> tuple[int, int]:
    """(parent end, child end); both close-on-exec."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    return a.detach(), b.detach()


def send(fd: int, **message: Any) -> None:
    os.write(fd, json.dumps(message).encode())


def receive(fd: int) -> dict[str, Any] | None:
    """The next message, or None at EOF."""
    data = os.read(fd, MAX_MESSAGE)
    if not data:
        return None
    return json.loads(data)
