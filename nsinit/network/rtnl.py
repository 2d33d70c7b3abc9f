"""A small rtnetlink client: the link, address and route requests nsinit needs.

The messages are encoded and decoded by pyroute2's message classes: its
``ifaddrmsg`` and ``rtmsg``, and for links ``linkmsg.LinkMessage``, the few
IFLA attributes nsinit uses declared on pyroute2's own ``nlmsg``/``nla``
bases (its full ``ifinfmsg`` loads a plugin per link kind).  That is the
part of netlink that is easy to get wrong (attribute layouts, nesting,
alignment).  The socket is a plain stdlib AF_NETLINK socket, because
pyroute2's own socket classes pull in asyncio, multiprocessing and
unittest.mock, and because ``pyroute2/__init__.py`` imports every module of
the library (~120-180 ms here, more than a whole loopback-only container
start).  ``_import_messages`` skips that __init__ and loads only the message
modules (~20 ms); see its docstring.

One ``Rtnl`` talks to one network namespace (``Rtnl(netns_fd)``: see
``nlwire.open_route_socket``; no helper process, unlike pyroute2's NetNS).
Every failure is an ``OSError`` carrying the errno and, when the kernel gave
one, its extended-ack text.
"""
from __future__ import annotations

import errno
import importlib.util
import os
import sys

from nsinit.network import nlwire
from nsinit.network.nlwire import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, RTM_GETLINK, RTM_NEWLINK
from nsinit.record import record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

AF_INET, AF_INET6 = 2, 10

# <linux/rtnetlink.h>
RTM_NEWADDR = 20
RTM_GETADDR = 22
NLM_F_DUMP = 0x300          # <linux/netlink.h>: NLM_F_ROOT | NLM_F_MATCH
RTM_NEWROUTE = 24
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3             # what `ip route add` uses
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
IFF_UP = 0x1
IFA_F_NODAD = 0x02


@record(frozen=True)
class Link:
    """A network interface as netlink reports it."""
    index: int
    name: str
    kind: str            # IFLA_INFO_KIND: "bridge", "veth", ... ("" for physical devices)
    mac_address: str
    mtu: int


class _Messages:
    """The message classes, loaded once by ``_import_messages``."""

    link: Any = None
    ifaddrmsg: Any = None
    rtmsg: Any = None


def load() -> None:
    """Import what the netlink requests need; ImportError if pyroute2 is missing.

    ``Rtnl()`` does this itself; calling it first lets the caller tell a
    missing package from a netlink failure."""
    _import_messages()


def _import_messages() -> None:
    """Import the rtnetlink message classes without pyroute2's package __init__.

    ``import pyroute2.netlink.rtnl.ifaddrmsg`` would first run
    ``pyroute2/__init__.py``, which imports the whole library.  Instead a
    module object for the package is created from its spec *without running
    it* and put in sys.modules; the submodules then import against it as
    their parent.  Whoever later asks the package for a name it does not have
    yet (``from pyroute2 import IPRoute``) gets the real __init__ run into the
    same module object first, so the shortcut cannot break other users of
    pyroute2 in the process.
    """
    if _Messages.link is not None:
        return
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            raise ImportError("No module named 'pyroute2'", name="pyroute2")
        package = importlib.util.module_from_spec(spec)
        package.__getattr__ = _complete_on_demand(package, spec)  # type: ignore[method-assign]
        sys.modules["pyroute2"] = package
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    from nsinit.network.linkmsg import LinkMessage

    _Messages.link, _Messages.ifaddrmsg, _Messages.rtmsg = LinkMessage, ifaddrmsg, rtmsg


def _complete_on_demand(package: Any, spec: Any) -> Callable[[str], Any]:
    directories = list(spec.submodule_search_locations)

    def __getattr__(name: str) -> Any:
        if any(os.path.exists(os.path.join(d, name)) or os.path.exists(os.path.join(d, name + ".py"))
               for d in directories):
            # A submodule not imported yet: the import system asks with
            # hasattr() first and loads the submodule on AttributeError.
            raise AttributeError(name)
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)   # the real __init__, into the same module
        return getattr(package, name)

    return __getattr__


class Rtnl:
    """A NETLINK_ROUTE socket in the current namespace, or in ``netns_fd``'s."""

    def __init__(self, netns_fd: int = -1) -> None:
        _import_messages()
        self.sequence = 0
        self.sock = nlwire.open_route_socket(netns_fd)

    def __enter__(self) -> "Rtnl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # A netlink socket holds a reference on its namespace: the container's
        # must be closed or its network namespace (and the veth) would live
        # as long as the supervisor.
        self.sock.close()

    # -- links -----------------------------------------------------------------
    def get_link(self, name: str) -> Link | None:
        msg = _Messages.link()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            replies = self._request(RTM_GETLINK, msg, 0)
        except OSError as err:
            if err.errno == errno.ENODEV:
                return None
            raise
        for data in replies:
            reply = _Messages.link(data)
            reply.decode()
            info = reply.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            return Link(index=reply["index"], name=reply.get_attr("IFLA_IFNAME") or name, kind=kind or "",
                        mac_address=reply.get_attr("IFLA_ADDRESS") or "", mtu=reply.get_attr("IFLA_MTU") or 0)
        return None

    def create_bridge(self, name: str) -> None:
        msg = _Messages.link()
        msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})]
        self._request(RTM_NEWLINK, msg, NLM_F_CREATE | NLM_F_EXCL)

    def create_veth(self, name: str, *, master: int, mtu: int, txqueuelen: int,
                    peer_name: str, peer_netns_fd: int, peer_mac: str) -> None:
        """One request creates both ends: ``name`` here, on ``master``, up;
        ``peer_name`` directly inside the namespace of ``peer_netns_fd``.

        The peer never appears in this namespace, so no temporary name is
        needed and a failure cannot strand a half-moved peer on the host.
        """
        peer: list[tuple[str, Any]] = [("IFLA_IFNAME", peer_name), ("IFLA_NET_NS_FD", peer_netns_fd)]
        if mtu:
            peer.append(("IFLA_MTU", mtu))
        if peer_mac:
            peer.append(("IFLA_ADDRESS", peer_mac))
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        if txqueuelen:
            attrs.append(("IFLA_TXQLEN", txqueuelen))
        attrs.append(("IFLA_MASTER", master))
        attrs.append(("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer})]}),
        ]}))
        msg = _Messages.link()
        msg["flags"] = IFF_UP
        msg["change"] = IFF_UP
        msg["attrs"] = attrs
        self._request(RTM_NEWLINK, msg, NLM_F_CREATE | NLM_F_EXCL)

    def set_up(self, index: int) -> None:
        msg = _Messages.link()
        msg["index"] = index
        msg["flags"] = IFF_UP
        msg["change"] = IFF_UP
        self._request(RTM_NEWLINK, msg, 0)

    # -- addresses and routes --------------------------------------------------
    def add_address(self, index: int, interface: Any) -> None:
        """``interface``: an ipaddress.IPv4Interface or IPv6Interface."""
        msg = _Messages.ifaddrmsg()
        msg["family"] = AF_INET if interface.version == 4 else AF_INET6
        msg["prefixlen"] = interface.network.prefixlen
        msg["index"] = index
        address = str(interface.ip)
        attrs: list[tuple[str, Any]] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        if interface.version == 4:
            if interface.network.prefixlen < 31:
                attrs.append(("IFA_BROADCAST", str(interface.network.broadcast_address)))
        else:
            # Without NODAD the address stays "tentative" for about a second
            # after start and the container's first packets fail.  The link
            # is private to one container, so duplicates are the config's fault.
            msg["flags"] = IFA_F_NODAD
            attrs.append(("IFA_FLAGS", IFA_F_NODAD))
        msg["attrs"] = attrs
        self._request(RTM_NEWADDR, msg, NLM_F_CREATE | NLM_F_EXCL)

    def get_addresses(self, index: int) -> list[str]:
        """The addresses of link ``index`` with their prefix lengths ("10.0.0.1/24")."""
        msg = _Messages.ifaddrmsg()
        msg["index"] = index  # the kernel dumps every link's; filtered below
        found = []
        for data in self._request(RTM_GETADDR, msg, NLM_F_DUMP):
            reply = _Messages.ifaddrmsg(data)
            reply.decode()
            address = reply.get_attr("IFA_LOCAL") or reply.get_attr("IFA_ADDRESS")
            if reply["index"] == index and address:
                found.append(f"{address}/{reply['prefixlen']}")
        return found

    def add_route(self, destination: Any, *, gateway: Any = None, source: Any = None, oif: int = 0) -> None:
        """``destination``: an ipaddress network; ``gateway``/``source``: addresses or None."""
        msg = _Messages.rtmsg()
        msg["family"] = AF_INET if destination.version == 4 else AF_INET6
        msg["dst_len"] = destination.prefixlen
        msg["table"] = RT_TABLE_MAIN
        msg["proto"] = RTPROT_BOOT
        # A route without a gateway is "on this link"; the kernel refuses a
        # universe-scope route whose next hop is not a gateway.
        msg["scope"] = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        msg["type"] = RTN_UNICAST
        attrs: list[tuple[str, Any]] = []
        if destination.prefixlen:
            attrs.append(("RTA_DST", str(destination.network_address)))
        if gateway is not None:
            attrs.append(("RTA_GATEWAY", str(gateway)))
        if source is not None:
            attrs.append(("RTA_PREFSRC", str(source)))
        if oif:
            attrs.append(("RTA_OIF", oif))
        msg["attrs"] = attrs
        self._request(RTM_NEWROUTE, msg, NLM_F_CREATE | NLM_F_EXCL)

    # -- the wire --------------------------------------------------------------
    def _request(self, msg_type: int, msg: Any, flags: int) -> list[bytes]:
        """Send one request; return the payload messages of the reply.

        Every request asks for an ack, so the reply always ends with an
        NLMSG_ERROR (error 0 = success) carrying our sequence number.
        """
        self.sequence += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        msg["header"]["sequence_number"] = self.sequence
        msg.encode()
        return nlwire.request(self.sock, self.sequence, bytes(msg.data))
