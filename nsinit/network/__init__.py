"""Container networking.

Loopback is brought up from inside the child with one ioctl: no netlink
library needed, so a loopback-only container pays nothing for pyroute2.
veth networks are set up from the host side by a short-lived helper process
that the supervisor forks (helper.py, veth.py), and undone without pyroute2
(teardown.py).
"""
from __future__ import annotations

import fcntl
import struct

import _socket  # not socket.py: see nsinit/messages.py

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def bring_up_loopback() -> None:
    """Set IFF_UP on ``lo`` in the current network namespace."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        sock.close()
