"""The networks part of a config: the interfaces (loopback, veth, netns,
slirp4netns, pasta) with their names and addresses, the routes, and the rules
across them (a netns network is the NEWNET namespace's path; a route needs a
next hop).

Read by ``nsinit.config.load`` (container.json); an OCI config names no
interfaces (``nsinit.oci.spec`` brings up loopback in a new network
namespace, the engine does the rest).

``ipaddress`` (3 ms) is imported only by a config that sets an address.
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.config.model import Config, NamespaceConfig, NetworkConfig, RouteConfig
from nsinit.config.parse import (
    _Context,
    _child,
    _item,
    _obj,
    _opt_int,
    _opt_list,
    _opt_str,
    _pick,
    _warn_if_set,
)
from nsinit.record import replace

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any


_NETWORK_KEYS = frozenset({
    "type", "name", "bridge", "host_interface_name", "prefix", "veth_prefix",
    "mac_address", "address", "gateway", "ipv6_address", "ipv6_gateway", "mtu",
    "txqueuelen", "path", "ns_path", "context", "hairpin_mode",
})
_NETWORK_CONTEXT_KEYS = frozenset({"bridge", "prefix", "nspath"})
_ROUTE_KEYS = frozenset({"destination", "source", "gateway", "interface_name"})
_NETWORK_TYPES = ("loopback", "veth", "netns", "slirp4netns", "pasta")
_USER_MODE_TYPES = ("slirp4netns", "pasta")  # nsinit/network/usermode.py
_VETH_RANDOM_CHARS = 7       # host veth name = prefix + 7 random hex chars


# --- networks ----------------------------------------------------------------

def _parse_networks(ctx: _Context, value: Any, path: str) -> tuple[NetworkConfig, ...]:
    networks: list[NetworkConfig] = []
    seen: dict[str, int] = {}        # interface names inside the container
    host_seen: dict[str, str] = {}   # fixed host veth names and bridges, on the host
    for i, item in enumerate(_opt_list(ctx, value, path)):
        entry_path = _item(path, i)
        network = ctx.collect(_parse_network, item, entry_path)
        if network is None:
            continue  # its error is kept; the other entries are still read
        ifname = "lo" if network.type == "loopback" else network.name
        if ifname and ifname in seen:
            ctx.fail(_child(entry_path, "name"), f'interface "{ifname}" duplicates {_item(path, seen[ifname])}')
        if ifname:
            seen[ifname] = i
        if network.type == "veth":
            _check_host_names(ctx, network, entry_path, host_seen)
        networks.append(network)
    return tuple(networks)


def _check_host_names(ctx: _Context, network: NetworkConfig, path: str, seen: dict[str, str]) -> None:
    """Host-side names: a fixed veth name must be unique and must not be a
    bridge's name (several networks may share one bridge)."""
    host_name, bridge = network.host_interface_name, network.bridge
    host_path, bridge_path = _child(path, "host_interface_name"), _child(path, "bridge")
    if host_name and host_name in seen:
        ctx.fail(host_path, f'interface "{host_name}" duplicates {seen[host_name]}')
    if host_name:
        seen[host_name] = host_path
    if seen.get(bridge, bridge_path).endswith(".host_interface_name"):
        ctx.fail(bridge_path, f'"{bridge}" is the host veth of {seen[bridge]}')
    seen.setdefault(bridge, bridge_path)


def _parse_network(ctx: _Context, item: Any, path: str) -> NetworkConfig:
    """2014 {type, context{bridge,prefix,nspath}}, mid-2014 {ns_path, veth_prefix}, 2015 flat form."""
    obj = _obj(ctx, item, path)
    ctx.check_keys(obj, _NETWORK_KEYS, path)
    context = None
    if obj.get("context") is not None:
        context = _obj(ctx, obj["context"], _child(path, "context"))
        ctx.check_keys(context, _NETWORK_CONTEXT_KEYS, _child(path, "context"))
    _warn_if_set(ctx, obj, "hairpin_mode", path)

    def text(key: str) -> str:
        return _opt_str(ctx, obj.get(key), _child(path, key))

    def synonym(*candidates: tuple[dict | None, str, str]) -> tuple[str, str]:
        value, value_path = _pick(ctx, [(o, k, _child(path, p)) for o, k, p in candidates])
        return _opt_str(ctx, value, value_path), value_path

    kind = text("type")
    if kind not in _NETWORK_TYPES:
        ctx.fail(_child(path, "type"), f'unknown network type "{kind}"' if kind else "is required")
    bridge, bridge_path = synonym((obj, "bridge", "bridge"), (context, "bridge", "context.bridge"))
    prefix, prefix_path = synonym(
        (obj, "prefix", "prefix"), (obj, "veth_prefix", "veth_prefix"), (context, "prefix", "context.prefix")
    )
    ns_path, ns_path_path = synonym(
        (obj, "path", "path"), (obj, "ns_path", "ns_path"), (context, "nspath", "context.nspath")
    )
    network = NetworkConfig(
        type=kind,
        name=text("name") or ("eth0" if kind == "veth" else "tap0" if kind in _USER_MODE_TYPES else ""),
        bridge=bridge,
        host_interface_name=text("host_interface_name"),
        prefix=prefix or "veth",
        mac_address=text("mac_address"),
        address=text("address"),
        gateway=text("gateway"),
        ipv6_address=text("ipv6_address"),
        ipv6_gateway=text("ipv6_gateway"),
        mtu=_opt_int(ctx, obj.get("mtu"), _child(path, "mtu"), lo=0),
        txqueuelen=_opt_int(ctx, obj.get("txqueuelen"), _child(path, "txqueuelen"), lo=0),
        path=ns_path,
    )
    if network.mtu and not 68 <= network.mtu <= 65535:  # IPv4 minimum, 16-bit maximum
        ctx.fail(_child(path, "mtu"), "must be between 68 and 65535 (or 0 for the default)")
    if kind == "veth" and not bridge:
        ctx.fail(bridge_path, "is required for a veth network")
    if kind == "netns" and not ns_path:
        ctx.fail(ns_path_path, "is required for a netns network")
    if ns_path and not ns_path.startswith("/"):
        ctx.fail(ns_path_path, "must be an absolute path")
    _check_ifname(ctx, network.name, _child(path, "name"))
    _check_ifname(ctx, network.host_interface_name, _child(path, "host_interface_name"))
    _check_ifname(ctx, network.bridge, bridge_path)
    if len(network.prefix) + _VETH_RANDOM_CHARS > names.IFNAMSIZ_MAX:
        limit = names.IFNAMSIZ_MAX - _VETH_RANDOM_CHARS
        ctx.fail(prefix_path, f"must be at most {limit} characters ({_VETH_RANDOM_CHARS} random ones are appended)")
    _check_ifname(ctx, network.prefix, prefix_path)
    if kind == "veth" and network.name == "lo":
        ctx.fail(_child(path, "name"), '"lo" is the loopback interface every network namespace has')
    if network.mac_address:
        _check_mac(ctx, network.mac_address, _child(path, "mac_address"))
    if kind in _USER_MODE_TYPES:
        # The helper chooses them (slirp4netns: 10.0.2.100/24 via 10.0.2.2;
        # pasta: the host's own address and gateway).
        for key in ("bridge", "host_interface_name", "mac_address", "address", "gateway",
                    "ipv6_address", "ipv6_gateway", "path"):
            if obj.get(key):
                ctx.fail(_child(path, key), f"is not configurable for a {kind} network")
    if kind == "loopback":
        network = _loopback_without_addresses(ctx, network, path)
    if network.address or network.gateway or network.ipv6_address or network.ipv6_gateway:
        _check_network_addresses(ctx, network, path)
    if network.ipv6_address and network.mtu and network.mtu < 1280:
        # The kernel turns IPv6 off on a link below the IPv6 minimum MTU.
        ctx.fail(_child(path, "mtu"), "must be at least 1280 with an IPv6 address")
    return network


def _loopback_without_addresses(ctx: _Context, network: NetworkConfig, path: str) -> NetworkConfig:
    """Drop the addresses of a loopback entry: lo always has 127.0.0.1/8 and ::1.

    libcontainer's loopback strategy only brought lo up and read nothing
    else, so its samples wrote placeholders ({"address": "127.0.0.1/0",
    "gateway": "localhost"}): those load silently.  Anything else would be
    an address nsinit does not give, so it is named in a warning.
    """
    keys = [key for key in ("address", "gateway", "ipv6_address", "ipv6_gateway") if getattr(network, key)]
    if not keys:
        return network  # the usual {"type": "loopback"}: no ipaddress import (3 ms) on every start
    import ipaddress

    for key in keys:
        value = getattr(network, key)
        if not _names_loopback(ipaddress, value):
            ctx.warn(_child(path, key), f'"{value}" is ignored: the loopback interface always has '
                                        "127.0.0.1/8 and ::1")
    return replace(network, address="", gateway="", ipv6_address="", ipv6_gateway="")


def _names_loopback(ipaddress: Any, text: str) -> bool:
    if text == "localhost":
        return True
    try:
        return bool(ipaddress.ip_interface(text).ip.is_loopback)
    except ValueError:
        return False


def _check_ifname(ctx: _Context, name: str, path: str) -> None:
    if not name:
        return
    if len(name.encode()) > names.IFNAMSIZ_MAX:
        ctx.fail(path, f"must be at most {names.IFNAMSIZ_MAX} characters")
    # dev_valid_name(): no "/", ":" or whitespace, not "." or "..".
    if name in (".", "..") or any(ch in "/:" or ch.isspace() for ch in name):
        ctx.fail(path, f'"{name}" is not a valid interface name')


def _check_mac(ctx: _Context, mac: str, path: str) -> None:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        ctx.fail(path, "must look like 02:42:ac:11:00:02")
    # The kernel refuses a multicast or all-zero address for an interface
    # (is_valid_ether_addr), half-way through creating the veth pair.
    if int(parts[0], 16) & 1 or mac.replace(":", "") == "000000000000":
        ctx.fail(path, "must be a unicast address (even first byte, not all zeros), like 02:42:ac:11:00:02")


def _check_network_addresses(ctx: _Context, network: NetworkConfig, path: str) -> None:
    import ipaddress  # costs an import only for configs that set addresses

    for address_key, gateway_key, version in (("address", "gateway", 4), ("ipv6_address", "ipv6_gateway", 6)):
        address = getattr(network, address_key)
        gateway = getattr(network, gateway_key)
        interface = None
        if address:
            address_path = _child(path, address_key)
            try:
                interface = ipaddress.ip_interface(address)
            except ValueError:
                interface = None
            if interface is None or interface.version != version or "/" not in address:
                example = _EXAMPLE_CIDR[version]
                ctx.fail(address_path, f"must be an IPv{version} address with a prefix length, like {example}")
        if gateway:
            gateway_path = _child(path, gateway_key)
            ip = _ip_address(ctx, ipaddress, gateway, gateway_path, version)
            if interface is None:
                ctx.fail(gateway_path, f'requires "{_child(path, address_key)}"')
            if ip not in interface.network:
                ctx.fail(gateway_path, f"is not inside {interface.network}")
            if ip == interface.ip:
                ctx.fail(gateway_path, f'must differ from "{_child(path, address_key)}"')


_EXAMPLE_CIDR = {4: "172.17.0.2/16", 6: "fd00::2/64"}


def _ip_address(ctx: _Context, ipaddress: Any, text: str, path: str, version: int | None) -> Any:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is None or (version is not None and ip.version != version):
        ctx.fail(path, f"must be an IPv{version} address" if version else "must be an IP address")
    return ip


# --- routes ------------------------------------------------------------------

def _parse_routes(ctx: _Context, value: Any, path: str) -> tuple[RouteConfig, ...]:
    routes = []
    for i, item in enumerate(_opt_list(ctx, value, path)):
        entry_path = _item(path, i)
        obj = _obj(ctx, item, entry_path)
        ctx.check_keys(obj, _ROUTE_KEYS, entry_path)
        route = RouteConfig(
            **{key: _opt_str(ctx, obj.get(key), _child(entry_path, key)) for key in sorted(_ROUTE_KEYS)}
        )
        _check_ifname(ctx, route.interface_name, _child(entry_path, "interface_name"))
        if route.destination or route.source or route.gateway:
            _check_route_addresses(ctx, route, entry_path)
        routes.append(route)
    return tuple(routes)


def _check_route_addresses(ctx: _Context, route: RouteConfig, path: str) -> None:
    import ipaddress  # see _check_network_addresses

    versions: list[tuple[int, str]] = []
    if route.destination:
        try:
            versions.append((ipaddress.ip_network(route.destination, strict=False).version, "destination"))
        except ValueError:
            ctx.fail(_child(path, "destination"), "must be an IP network like 10.0.0.0/8")
    for key in ("source", "gateway"):
        if getattr(route, key):
            versions.append((_ip_address(ctx, ipaddress, getattr(route, key), _child(path, key), None).version, key))
    for version, key in versions[1:]:
        if version != versions[0][0]:
            ctx.fail(_child(path, key), f'is IPv{version} but "{_child(path, versions[0][1])}" is IPv{versions[0][0]}')


# --- rules across fields -----------------------------------------------------

def _join_netns_networks(ctx: _Context, config: Config) -> Config:
    """A netns network (``{"type": "netns", "path": P}``) means: run in the
    existing network namespace P.  The container's init joins namespaces
    given by path already, so the network becomes the NEWNET namespace's
    path (added if namespaces lacks NEWNET; 2014 configs listed NEWNET *and*
    the netns network, and the child then setns'd out of its new one).
    """
    joined = [(i, n.path) for i, n in enumerate(config.networks) if n.type == "netns"]
    if not joined:
        return config
    first, path = joined[0]
    for i, other in joined[1:]:
        if os.path.normpath(other) != os.path.normpath(path):
            ctx.fail(_child(_item("networks", i), "path"),
                     f'joins "{other}" but {_item("networks", first)} joins "{path}"')
    current = config.namespace("NEWNET")
    if current is not None and current.path and os.path.normpath(current.path) != os.path.normpath(path):
        ctx.fail(_child(_item("networks", first), "path"),
                 f'"{path}" conflicts with the NEWNET namespace path "{current.path}"')
    joined_ns = NamespaceConfig("NEWNET", path)
    if current is None:
        namespaces = config.namespaces + (joined_ns,)
    else:  # keep NEWNET where the config listed it
        namespaces = tuple(joined_ns if ns.type == "NEWNET" else ns for ns in config.namespaces)
    return replace(config, namespaces=namespaces)


def _check_route_next_hops(ctx: _Context, config: Config) -> None:
    # Without either the kernel has nowhere to send the packets (ENODEV).
    for i, route in enumerate(config.routes):
        if not route.gateway and not route.interface_name:
            ctx.report(_item("routes", i), 'needs a "gateway" or an "interface_name"')
