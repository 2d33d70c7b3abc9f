"""The link message (struct ifinfomsg + IFLA_* attributes), built from pyroute2's parts.

pyroute2's own ``ifinfmsg`` knows every link kind the kernel has: importing
it loads a plugin module per kind, ``multiprocessing`` and ``platform``
(10-14 ms here, a seventh of a veth container's start).  nsinit sends and
reads a handful of attributes, so this module declares just those, with
pyroute2's ``nlmsg``/``nla`` classes doing the encoding, alignment and
nesting exactly as for its full message: a unit test holds the bytes of
every request nsinit makes equal to what ``ifinfmsg`` encodes, and the
decoded fields of real kernel replies equal to its.

Attribute numbers are those of <linux/if_link.h> and <linux/veth.h>; any
other attribute in a reply is decoded as pyroute2 decodes unknown ones
(kept as raw data), never an error.

Import this only through ``rtnl.load()``: it skips pyroute2's package
__init__ (see ``rtnl._import_messages``).
"""
from __future__ import annotations

from pyroute2.netlink import nla, nlmsg

IFLA_INFO_KIND_VETH = "veth"


class _LinkLayout:
    """What a link message and the veth peer inside it share."""

    # struct ifinfomsg
    fields = (("family", "B"), ("__align", "x"), ("ifi_type", "H"), ("index", "i"),
              ("flags", "I"), ("change", "I"))
    nla_map = (
        (1, "IFLA_ADDRESS", "l2addr"),
        (3, "IFLA_IFNAME", "asciiz"),
        (4, "IFLA_MTU", "uint32"),
        (10, "IFLA_MASTER", "uint32"),
        (13, "IFLA_TXQLEN", "uint32"),
        (18, "IFLA_LINKINFO", "linkinfo"),
        (28, "IFLA_NET_NS_FD", "uint32"),
    )

    class linkinfo(nla):
        nla_map = ((1, "IFLA_INFO_KIND", "asciiz"), (2, "IFLA_INFO_DATA", "info_data"))

        @staticmethod
        def info_data(self: nla, *_argv: object, **_kwarg: object) -> type:
            # The layout of IFLA_INFO_DATA depends on the kind; only a veth's is read.
            return self.veth_data if self.get_attr("IFLA_INFO_KIND") == IFLA_INFO_KIND_VETH else self.hex

        class veth_data(nla):
            nla_map = ((1, "VETH_INFO_PEER", "peer"),)

            @staticmethod
            def peer(_self: nla, *_argv: object, **_kwarg: object) -> type:
                return LinkPeer   # an ifinfomsg of its own, nested as an attribute


class LinkMessage(_LinkLayout, nlmsg):
    """RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK requests and replies."""

    prefix = "IFLA_"


class LinkPeer(_LinkLayout, nla):
    """VETH_INFO_PEER: the other end of a veth pair, created with it."""

    prefix = "IFLA_"
