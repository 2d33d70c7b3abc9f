"""Container networking.

Loopback is brought up from inside the child with one ioctl: no netlink
library needed, so a loopback-only container pays nothing for pyroute2.
veth networks are set up from the host side by a short-lived helper process
that the supervisor forks (helper.py, veth.py), and undone without pyroute2
(teardown.py).
"""
from __future__ import annotations

import fcntl
import sys

import _socket  # not socket.py: see nsinit/messages.py

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
# struct ifreq: the name in 16 bytes, then a 24-byte union; ifr_flags is a
# short at its start.  Built by hand: struct.py and _struct cost the child
# ~0.4 ms of imports, for two ioctls.
IFNAMSIZ = 16
IFREQ_SIZE = IFNAMSIZ + 24


def bring_up_loopback() -> None:
    """Set IFF_UP on ``lo`` in the current network namespace."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, ifreq(b"lo", 0))
        flags = int.from_bytes(reply[IFNAMSIZ:IFNAMSIZ + 2], sys.byteorder)
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, ifreq(b"lo", flags | IFF_UP))
    finally:
        sock.close()


def ifreq(name: bytes, flags: int) -> bytes:
    """A struct ifreq carrying an interface name and ifr_flags."""
    return name.ljust(IFNAMSIZ, b"\0") + flags.to_bytes(2, sys.byteorder) + bytes(IFREQ_SIZE - IFNAMSIZ - 2)
