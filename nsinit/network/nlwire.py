"""rtnetlink on the wire: the socket, one request, its acknowledgement.

What is below the messages themselves, shared by ``rtnl.Rtnl`` (whose
requests pyroute2's message classes encode) and ``teardown`` (which needs
no message library at all).  A netlink socket stays bound to the network
namespace it was created in, so ``open_route_socket(netns_fd)`` enters the
target namespace just long enough to create it.  Every failure is an
``OSError`` carrying the errno and, when the kernel gave one, its
extended-ack text.
"""
from __future__ import annotations

import errno
import os
import struct

import _socket  # not socket.py: see nsinit/messages.py

from nsinit import _native

CLONE_NEWNET = 0x40000000

# <linux/netlink.h>
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSGERR_ATTR_MSG = 1
NLM_F_ACK_TLVS = 0x200      # in an ack's nlmsg_flags: extended-ack attributes follow
NLM_F_CAPPED = 0x100        # the ack carries only the request's header
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

# <linux/rtnetlink.h>: the link requests (addresses and routes: see rtnl.py)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18

HEADER = struct.Struct("=IHHII")    # struct nlmsghdr
_ERROR_CODE = struct.Struct("=i")   # struct nlmsgerr starts with int error
_ATTR = struct.Struct("=HH")        # struct nlattr
_RECEIVE_BUFFER = 65536


def open_route_socket(netns_fd: int = -1) -> _socket.socket:
    """A bound NETLINK_ROUTE socket in this namespace, or in ``netns_fd``'s."""
    if netns_fd < 0:
        return _new_socket()
    # /proc/thread-self: setns(2) moves only the calling thread.
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _native.setns(netns_fd, CLONE_NEWNET)
        try:
            return _new_socket()
        finally:
            # Back to our own namespace.  Should this fail, the OSError
            # propagates and the create is undone: every later host-side
            # step would otherwise act on the container's namespace.
            _native.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)


def _new_socket() -> _socket.socket:
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    except OSError:
        pass  # kernels before 4.12: plain acks, errno without text
    sock.bind((0, 0))
    return sock


def request(sock: _socket.socket, sequence: int, data: bytes) -> list[bytes]:
    """Send one encoded request that asks for an ack (NLM_F_ACK) and carries
    ``sequence``; return the payload messages of the reply.

    The reply always ends with an NLMSG_ERROR (error 0 = success) or, for a
    dump, NLMSG_DONE.
    """
    sock.send(data)
    replies: list[bytes] = []
    while True:
        data = sock.recv(_RECEIVE_BUFFER)
        offset = 0
        while offset + HEADER.size <= len(data):
            length, kind, msg_flags, seq, _pid = HEADER.unpack_from(data, offset)
            if length < HEADER.size:
                raise OSError(errno.EBADMSG, "malformed netlink reply")
            chunk = data[offset:offset + length]
            offset += (length + 3) & ~3
            if seq != sequence:
                continue  # a reply to an earlier request we stopped waiting for
            if kind == NLMSG_ERROR:
                code = _ERROR_CODE.unpack_from(chunk, HEADER.size)[0]
                if code:
                    raise OSError(-code, error_text(-code, chunk, msg_flags))
                return replies
            if kind == NLMSG_DONE:
                return replies
            replies.append(chunk)


def error_text(code: int, chunk: bytes, flags: int) -> str:
    """strerror, plus the kernel's extended-ack message when it sent one."""
    text = os.strerror(code)
    if not flags & NLM_F_ACK_TLVS:
        return text
    # struct nlmsgerr: error, then the request's header (capped: header only).
    offset = HEADER.size + _ERROR_CODE.size + HEADER.size
    if not flags & NLM_F_CAPPED:
        request_length = HEADER.unpack_from(chunk, HEADER.size + _ERROR_CODE.size)[0]
        offset = HEADER.size + _ERROR_CODE.size + ((request_length + 3) & ~3)
    while offset + _ATTR.size <= len(chunk):
        length, kind = _ATTR.unpack_from(chunk, offset)
        if length < _ATTR.size:
            break
        if kind & 0x3FFF == NLMSGERR_ATTR_MSG:
            detail = chunk[offset + _ATTR.size:offset + length].split(b"\0", 1)[0].decode(errors="replace")
            if detail:
                return f"{text} ({detail})"
        offset += (length + 3) & ~3
    return text
