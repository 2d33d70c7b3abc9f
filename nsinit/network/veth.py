"""veth networks, configured before the init is released.

For each ``{"type": "veth"}`` network one veth pair is created: the host end
(``host_interface_name``, or the prefix plus 7 random hex characters) joins
the bridge, gets the MTU and txqueuelen and comes up; the peer is created
directly inside the container's network namespace under its final name
(``eth0``), then gets its addresses, comes up and gets the default routes.
``routes`` follow.  All of it happens while the init still waits for ``go``,
so the command never sees a half-configured network.  It runs in a helper
process the supervisor forks (``helper``), so that pyroute2 never stays
resident in the supervisor.

The container's side is reached through a netlink socket opened inside its
namespace (``Rtnl(netns_fd)``): no second helper, no ``ip netns exec``.

Cleanup (2014 libcontainer leaked the pair on errors): deleting one
end of a veth pair deletes both, so only host ends are tracked.  On a failed
setup every host end made so far is deleted before the error is raised; after
the container exits ``teardown.teardown_networks`` deletes any still there.
If the supervisor is SIGKILLed, the init dies with it (parent-death signal),
its namespace goes, and the kernel deletes the pair -- unless the namespace
is a persistent one joined by path, which outlives the container.

Bridges are shared with other containers and perhaps the host's own setup:
nsinit creates a missing one (and says so) but never changes or deletes one.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import sys

from nsinit.errors import NsinitError
from nsinit.network import rtnl, teardown
from nsinit.network.rtnl import Link, Rtnl

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from nsinit.config.model import Config, NetworkConfig, RouteConfig

STEP = "network"
RANDOM_HEX_CHARS = 7          # widened from 4 in 2014-10 after name collisions
NAME_ATTEMPTS = 10            # random host names tried before giving up


def setup_networks(config: Config, pid: int) -> list[dict[str, Any]]:
    """Create and configure the veth networks and routes of ``config`` for the
    init ``pid``; return one state record per veth network.

    Raises NsinitError("network", "<field>: <problem>") after deleting every
    host veth it created.
    """
    try:
        rtnl.load()
    except ImportError as err:
        raise NsinitError(STEP, f"veth networks need the Python package pyroute2: {err}") from None
    netns_path = container_netns_path(config, pid)
    try:
        netns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NsinitError(STEP, f"{netns_path}: {err.strerror}") from None
    created: list[dict[str, Any]] = []   # host ends as teardown records, in creation order
    try:
        with Rtnl() as host:
            try:
                with Rtnl(netns_fd) as inside:
                    return _configure(config, host, inside, netns_fd, created)
            except BaseException:
                # Warns, never raises: the error that brought us here is the one to report.
                teardown.teardown_networks(created)
                raise
    except OSError as err:
        raise NsinitError(STEP, f"netlink: {err.strerror or err}") from None
    finally:
        os.close(netns_fd)


def container_netns_path(config: Config, pid: int) -> str:
    """The network namespace the init runs in: the one it joins by path
    (it has not joined yet: it waits for ``go``), else its own new one."""
    ns = config.namespace("NEWNET")
    if ns is not None and ns.path:
        return ns.path
    return f"/proc/{pid}/ns/net"


# --- the steps ---------------------------------------------------------------

def _configure(config: Config, host: Rtnl, inside: Rtnl, netns_fd: int,
               created: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ns = config.namespace("NEWNET")
    if ns is not None and not ns.path:
        # The init brings lo up too (with an ioctl, for loopback-only
        # containers); doing it here first lets routes via lo be added.
        _bring_up_loopback(inside)
    veths = [(f"networks[{i}]", n) for i, n in enumerate(config.networks) if n.type == "veth"]
    bridges = {network.bridge: _check_host_side(host, network, path) for path, network in veths}
    for path, network in veths:
        _refuse_addresses_in_use(network, path)
        _warn_if_gateway_is_not_the_bridge(host, network, path, bridges[network.bridge])
    records = [_setup_veth(host, inside, netns_fd, network, path, bridges[network.bridge], created)
               for path, network in veths]
    for i, route in enumerate(config.routes):
        _add_configured_route(inside, route, f"routes[{i}]")
    return records


def _check_host_side(host: Rtnl, network: NetworkConfig, path: str) -> Link | None:
    """What the host already has that would make this network fail: checked
    for every network before anything is created (a bridge made for the
    first network would otherwise stay behind when the second fails).
    Returns the bridge, None if it does not exist yet."""
    bridge = host.get_link(network.bridge)
    if bridge is not None and bridge.kind != "bridge":
        _fail(f"{path}.bridge", f"{network.bridge} is not a bridge")
    if network.host_interface_name and host.get_link(network.host_interface_name) is not None:
        _fail(f"{path}.host_interface_name", f'"{network.host_interface_name}" already exists on the host')
    return bridge


def _refuse_addresses_in_use(network: Any, path: str) -> None:
    """An address another live nsinit container has on the same bridge
    would make both unreachable at random (ARP answers from either): refused
    before anything is created, naming that container's root dir.  Only
    nsinit's own records are seen, not other tools' containers."""
    from nsinit import state

    wanted = {key: ipaddress.ip_interface(getattr(network, key)).ip
              for key in ("address", "ipv6_address") if getattr(network, key)}
    if not wanted:
        return
    for private in state.private_dirs():
        try:
            record = state.read_record(private)
        except (state.StaleStateError, OSError):
            continue  # unreadable: nsinit gc's business, not a conflict
        if record is None or state.why_not_alive(record) is not None:
            continue
        for entry in record.network_state:
            if not isinstance(entry, dict) or entry.get("bridge") != network.bridge:
                continue
            for key, ip in wanted.items():
                theirs = entry.get(key)
                if isinstance(theirs, str) and theirs and ipaddress.ip_interface(theirs).ip == ip:
                    _fail(f"{path}.{key}", f"{ip} is already used on bridge {network.bridge} "
                                          f"by the container in {record.root}")


def _warn_if_gateway_is_not_the_bridge(host: Rtnl, network: Any, path: str, bridge: Link | None) -> None:
    """A gateway no host interface answers on gives a dead default route.
    When the bridge exists with addresses of that family and none is the
    gateway, say so (another machine on the bridge may still be the
    router: a warning, not an error).  A bridge nsinit creates gets the
    gateway as its address."""
    if bridge is None:
        return
    present = [ipaddress.ip_interface(text) for text in host.get_addresses(bridge.index)]
    for key in ("gateway", "ipv6_gateway"):
        text = getattr(network, key)
        if not text:
            continue
        gateway = ipaddress.ip_address(text)
        same_family = [a for a in present if a.version == gateway.version and not a.ip.is_link_local]
        if same_family and all(a.ip != gateway for a in same_family):
            has = ", ".join(str(a) for a in same_family)
            sys.stderr.write(f"nsinit: warning: {path}.{key}: {gateway} is not an address of bridge "
                             f"{network.bridge} (it has {has}); the default route leads nowhere "
                             "unless another machine on the bridge answers there\n")


def _bring_up_loopback(inside: Rtnl) -> None:
    lo = inside.get_link("lo")
    if lo is not None:
        inside.set_up(lo.index)


def _setup_veth(host: Rtnl, inside: Rtnl, netns_fd: int, network: NetworkConfig, path: str,
                bridge: Link | None, created: list[dict[str, Any]]) -> dict[str, Any]:
    bridge = bridge or _ensure_bridge(host, network, path)
    host_end = _create_pair(host, network, path, bridge, netns_fd, created)
    peer = inside.get_link(network.name)
    if peer is None:
        _fail(f"{path}.name", f'"{network.name}" vanished from the container right after it was created')
    for key in ("address", "ipv6_address"):
        text = getattr(network, key)
        if text:
            try:
                inside.add_address(peer.index, ipaddress.ip_interface(text))
            except OSError as err:
                _fail(f"{path}.{key}", f"{text}: {err.strerror}")
    try:
        inside.set_up(peer.index)
    except OSError as err:
        _fail(f"{path}.name", f"cannot bring up {network.name}: {err.strerror}")
    for key, default in (("gateway", "0.0.0.0/0"), ("ipv6_gateway", "::/0")):
        text = getattr(network, key)
        if text:
            try:
                inside.add_route(ipaddress.ip_network(default), gateway=ipaddress.ip_address(text), oif=peer.index)
            except OSError as err:
                _fail(f"{path}.{key}", f"default route via {text}: {err.strerror}")
    # peer.mac_address: the configured one, or the random one the kernel
    # gave the veth when it created it (bringing it up does not change it).
    return {
        "type": "veth",
        "name": network.name,
        "host_interface_name": host_end.name,
        "host_interface_index": host_end.index,
        "bridge": network.bridge,
        "address": network.address,
        "gateway": network.gateway,
        "ipv6_address": network.ipv6_address,
        "ipv6_gateway": network.ipv6_gateway,
        "mac_address": peer.mac_address,
        "mtu": peer.mtu,
    }


def _ensure_bridge(host: Rtnl, network: NetworkConfig, path: str) -> Link:
    name = network.bridge
    field = f"{path}.bridge"
    link = host.get_link(name)
    if link is None:
        try:
            host.create_bridge(name)
        except OSError as err:
            if err.errno != errno.EEXIST:
                _fail(field, f"cannot create bridge {name}: {err.strerror}")
            # Another nsinit created it a moment ago; it configures it.
        else:
            link = _configure_new_bridge(host, network, field)
        link = link or host.get_link(name)
        if link is None:
            _fail(field, f"bridge {name} vanished right after it was created")
    if link.kind != "bridge":
        _fail(field, f"{name} is not a bridge")
    return link


def _configure_new_bridge(host: Rtnl, network: NetworkConfig, field: str) -> Link:
    """Gateway addresses (with the container's prefix length) and up."""
    link = host.get_link(network.bridge)
    if link is None:
        _fail(field, f"bridge {network.bridge} vanished right after it was created")
    addresses = []
    for address_key, gateway_key in (("address", "gateway"), ("ipv6_address", "ipv6_gateway")):
        gateway = getattr(network, gateway_key)
        if gateway:
            prefix_length = ipaddress.ip_interface(getattr(network, address_key)).network.prefixlen
            addresses.append(ipaddress.ip_interface(f"{gateway}/{prefix_length}"))
    try:
        for address in addresses:
            host.add_address(link.index, address)
        host.set_up(link.index)
    except OSError as err:
        # The bridge stays: nsinit never deletes one (another container may
        # already have joined it).
        _fail(field, f"created bridge {network.bridge} but could not configure it: {err.strerror}")
    described = ", ".join(str(a) for a in addresses) or "no address"
    sys.stderr.write(f"nsinit: created bridge {network.bridge} ({described})\n")
    return link


def _create_pair(host: Rtnl, network: NetworkConfig, path: str, bridge: Link, netns_fd: int,
                 created: list[dict[str, Any]]) -> Link:
    fixed = network.host_interface_name
    for _ in range(1 if fixed else NAME_ATTEMPTS):
        # os.urandom, not secrets: the same kernel bytes, without hashlib's import (~5 ms).
        name = fixed or network.prefix + os.urandom(4).hex()[:RANDOM_HEX_CHARS]
        try:
            host.create_veth(name, master=bridge.index, mtu=network.mtu, txqueuelen=network.txqueuelen,
                             peer_name=network.name, peer_netns_fd=netns_fd, peer_mac=network.mac_address)
        except OSError as err:
            if err.errno != errno.EEXIST:
                _fail(path, f"cannot create veth pair {name}/{network.name}: {err.strerror}")
            if host.get_link(name) is None:
                _fail(f"{path}.name", f'"{network.name}" already exists in the container\'s network namespace')
            if fixed:
                _fail(f"{path}.host_interface_name", f'"{name}" already exists on the host')
            continue  # a random name taken: try another
        link = host.get_link(name)
        if link is None:
            _fail(f"{path}.host_interface_name", f"{name} vanished right after it was created")
        created.append({"type": "veth", "host_interface_name": name, "host_interface_index": link.index})
        return link
    _fail(f"{path}.prefix", f'no free interface name "{network.prefix}…" after {NAME_ATTEMPTS} tries')


def _add_configured_route(inside: Rtnl, route: RouteConfig, path: str) -> None:
    """A ``routes`` entry: {destination, source, gateway, interface_name}.

    An empty destination is the default route of the family the other
    addresses have (IPv4 if none does).
    """
    gateway = ipaddress.ip_address(route.gateway) if route.gateway else None
    source = ipaddress.ip_address(route.source) if route.source else None
    if route.destination:
        destination = ipaddress.ip_network(route.destination, strict=False)
    else:
        family = (gateway or source or ipaddress.ip_address("0.0.0.0")).version
        destination = ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
    oif = 0
    if route.interface_name:
        link = inside.get_link(route.interface_name)
        if link is None:
            _fail(f"{path}.interface_name", f'no interface "{route.interface_name}" in the container')
        oif = link.index
    try:
        inside.add_route(destination, gateway=gateway, source=source, oif=oif)
    except OSError as err:
        via = f" via {gateway}" if gateway else ""
        dev = f" dev {route.interface_name}" if route.interface_name else ""
        _fail(path, f"{destination}{via}{dev}: {err.strerror}")


# --- errors ------------------------------------------------------------------

def _fail(field: str, problem: str) -> NoReturn:
    raise NsinitError(STEP, f"{field}: {problem}")

