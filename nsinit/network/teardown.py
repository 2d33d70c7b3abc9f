"""Removing the host ends of a container's veths, without a netlink library.

The supervisor stays resident as long as its container, so it never imports
pyroute2 (~4.5 MB of a veth container's supervisor, measured): the veths are
set up in a short-lived helper process (see ``helper``), and this module
undoes them at the end with the one request that needs no message library,
RTM_DELLINK of an interface index (a fixed struct ifinfomsg, no attributes).
A unit test holds it byte-equal to pyroute2's encoding.  The helper's own
rollback after a failed setup uses it too: one way to delete a host end.

Deleting one end of a veth pair deletes both.  A host end is deleted only
while its name still has the index recorded at creation: a namesake made
since is someone else's.  Normally the kernel is removing the pair already,
with the container's network namespace (asynchronously); the request then
waits for it, so that the name is free and the old address answers no more
once nsinit returns.
"""
from __future__ import annotations

import errno
import struct
import sys

import _socket  # not socket.py: see nsinit/messages.py

from nsinit.network import nlwire

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

AF_UNSPEC = 0
_IFINFOMSG = struct.Struct("=BxHiII")   # struct ifinfomsg: family, type, index, flags, change


def teardown_networks(records: list[dict[str, Any]]) -> None:
    """Delete the host ends of ``records`` that still exist.  Idempotent.

    Failures are reported as warnings, not raised: this runs after the
    container exited, and its exit status must still reach the caller.
    """
    veths = [r for r in records if r.get("type") == "veth" and r.get("host_interface_name")]
    if not veths:
        return
    try:
        sock = nlwire.open_route_socket()
        try:
            for sequence, record in enumerate(veths, 1):
                _delete_if_ours(sock, sequence, record["host_interface_name"], record.get("host_interface_index"))
        finally:
            sock.close()
    except OSError as err:
        names = [r["host_interface_name"] for r in veths]
        sys.stderr.write(f"nsinit: warning: could not remove host veth interfaces {names}: {err.strerror or err}\n")


def _delete_if_ours(sock: _socket.socket, sequence: int, name: str, index: object) -> None:
    try:
        current = _socket.if_nametoindex(name)
    except OSError:
        return  # gone already
    if current != index:
        return  # the name now belongs to another interface
    try:
        nlwire.request(sock, sequence, dellink_request(current, sequence))
    except OSError as err:
        if err.errno != errno.ENODEV:  # ENODEV: the kernel removed it meanwhile
            raise


def dellink_request(index: int, sequence: int) -> bytes:
    """RTM_DELLINK of interface ``index``, asking for an ack."""
    body = _IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0)
    header = nlwire.HEADER.pack(nlwire.HEADER.size + len(body), nlwire.RTM_DELLINK,
                                nlwire.NLM_F_REQUEST | nlwire.NLM_F_ACK, sequence, 0)
    return header + body
