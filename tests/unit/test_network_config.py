"""Network validation in the config loader, and netns networks becoming the NEWNET path."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from nsinit.config import NamespaceConfig, parse_config
from nsinit.config.model import Config
from nsinit.errors import ConfigError, NsinitError
from nsinit.network.netns import check_network_namespace

VETH = {"type": "veth", "bridge": "br0", "address": "10.213.0.2/24", "gateway": "10.213.0.1"}


def cfg(tmp_path: Path, **data: object) -> Config:
    return parse_config(data, "container.json", str(tmp_path))[0]


def error(tmp_path: Path, **data: object) -> str:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(data, "container.json", str(tmp_path))
    return str(excinfo.value)


# --- netns networks -------------------------------------------------------------

def test_netns_network_becomes_the_newnet_path(tmp_path: Path) -> None:
    config = cfg(tmp_path, networks=[{"type": "netns", "path": "/run/netns/a"}])
    assert config.namespace("NEWNET") == NamespaceConfig("NEWNET", "/run/netns/a")
    # Joined, not created: no CLONE_NEWNET for the clone.
    assert not config.clone_flags() & 0x40000000
    # Where NEWNET was listed, it stays; the order of the others is kept.
    assert [ns.type for ns in config.namespaces] == ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]


def test_netns_network_adds_newnet_when_missing(tmp_path: Path) -> None:
    config = cfg(tmp_path, namespaces=["NEWNS"], networks=[{"type": "netns", "context": {"nspath": "/run/netns/a"}}])
    assert config.namespaces == (NamespaceConfig("NEWNS"), NamespaceConfig("NEWNET", "/run/netns/a"))


def test_netns_network_and_the_same_newnet_path_agree(tmp_path: Path) -> None:
    config = cfg(tmp_path, namespaces=[{"type": "NEWNET", "path": "/run/netns//a"}],
                 networks=[{"type": "netns", "path": "/run/netns/a"}])
    assert config.namespace("NEWNET").path == "/run/netns/a"


def test_netns_network_conflicting_with_newnet_path(tmp_path: Path) -> None:
    assert error(tmp_path, namespaces=[{"type": "NEWNET", "path": "/run/netns/b"}],
                 networks=[{"type": "netns", "path": "/run/netns/a"}]) == (
        'container.json: networks[0].path: "/run/netns/a" conflicts with the NEWNET namespace path "/run/netns/b"'
    )


def test_two_netns_networks_must_agree(tmp_path: Path) -> None:
    assert error(tmp_path, networks=[{"type": "netns", "path": "/run/netns/a"},
                                     {"type": "netns", "path": "/run/netns/b"}]) == (
        'container.json: networks[1].path: joins "/run/netns/b" but networks[0] joins "/run/netns/a"'
    )


# --- veth fields ----------------------------------------------------------------

@pytest.mark.parametrize("changes, expected", [
    ({"address": "10.213.0.2"}, "networks[0].address: must be an IPv4 address with a prefix length"),
    ({"gateway": "10.9.9.9"}, "networks[0].gateway: is not inside 10.213.0.0/24"),
    ({"gateway": "10.213.0.2"}, 'networks[0].gateway: must differ from "networks[0].address"'),
    ({"mtu": 65536}, "networks[0].mtu: must be between 68 and 65535"),
    ({"mtu": 1000, "ipv6_address": "fd00::2/64"}, "networks[0].mtu: must be at least 1280 with an IPv6 address"),
    ({"prefix": "toolongpfx"}, "networks[0].prefix: must be at most 8 characters"),
    ({"name": "lo"}, 'networks[0].name: "lo" is the loopback interface'),
    ({"mac_address": "03:00:00:00:00:01"}, "networks[0].mac_address: must be a unicast address"),
    ({"mac_address": "00:00:00:00:00:00"}, "networks[0].mac_address: must be a unicast address"),
])
def test_bad_veth_fields(tmp_path: Path, changes: dict, expected: str) -> None:
    assert error(tmp_path, networks=[{**VETH, **changes}]).startswith(f"container.json: {expected}")


def test_host_names_unique_and_not_a_bridge(tmp_path: Path) -> None:
    first = {**VETH, "host_interface_name": "vh0"}
    assert error(tmp_path, networks=[first, {**VETH, "name": "eth1", "host_interface_name": "vh0"}]) == (
        'container.json: networks[1].host_interface_name: interface "vh0" duplicates '
        "networks[0].host_interface_name"
    )
    assert error(tmp_path, networks=[first, {**VETH, "name": "eth1", "bridge": "vh0"}]) == (
        'container.json: networks[1].bridge: "vh0" is the host veth of networks[0].host_interface_name'
    )
    assert "duplicates networks[0].bridge" in error(
        tmp_path, networks=[first, {**VETH, "name": "eth1", "host_interface_name": "br0"}])
    # Two networks on one bridge are fine.
    assert len(cfg(tmp_path, networks=[first, {**VETH, "name": "eth1"}]).networks) == 2


# --- loopback -------------------------------------------------------------------

SEED_LOOPBACK = {"type": "loopback", "address": "127.0.0.1/0", "gateway": "localhost"}


def test_the_seed_loopback_entry_loads_without_a_warning(tmp_path: Path) -> None:
    # From the later seed's sample config: libcontainer read neither field.
    config, warnings = parse_config({"networks": [SEED_LOOPBACK]}, "container.json", str(tmp_path))
    assert warnings == []
    assert config.networks[0].type == "loopback" and config.networks[0].address == ""


def test_a_loopback_address_nsinit_does_not_give_is_named(tmp_path: Path) -> None:
    _, warnings = parse_config({"networks": [{"type": "loopback", "address": "10.0.0.1/8"}]},
                               "container.json", str(tmp_path))
    assert warnings == [('container.json: networks[0].address: "10.0.0.1/8" is ignored: '
                         "the loopback interface always has 127.0.0.1/8 and ::1")]


# --- routes -------------------------------------------------------------------

def test_route_needs_a_next_hop(tmp_path: Path) -> None:
    assert error(tmp_path, routes=[{"destination": "10.0.0.0/8"}]) == (
        'container.json: routes[0]: needs a "gateway" or an "interface_name"'
    )


def test_route_addresses_share_one_family(tmp_path: Path) -> None:
    assert error(tmp_path, routes=[{"destination": "10.0.0.0/8", "gateway": "fd00::1"}]) == (
        'container.json: routes[0].gateway: is IPv6 but "routes[0].destination" is IPv4'
    )


# --- the create-time netns check --------------------------------------------------

def netns_config(tmp_path: Path, path: str) -> Config:
    return cfg(tmp_path, networks=[{"type": "netns", "path": path}])


def test_netns_check_accepts_a_network_namespace(tmp_path: Path) -> None:
    check_network_namespace(netns_config(tmp_path, f"/proc/{os.getpid()}/ns/net"))
    check_network_namespace(cfg(tmp_path))  # a new namespace: nothing to check


@pytest.mark.parametrize("kind, expected", [
    ("uts", "is a uts namespace, not a network namespace"),
    ("file", "is not a namespace file"),
    ("missing", "No such file or directory"),
])
def test_netns_check_names_the_field(tmp_path: Path, kind: str, expected: str) -> None:
    (tmp_path / "file").write_text("")
    path = {"uts": f"/proc/{os.getpid()}/ns/uts", "file": str(tmp_path / "file"),
            "missing": str(tmp_path / "missing")}[kind]
    with pytest.raises(NsinitError) as excinfo:
        check_network_namespace(netns_config(tmp_path, path))
    assert excinfo.value.step == "network"
    assert excinfo.value.message.startswith(f"networks[0].path: {path}")
    assert expected in excinfo.value.message


def test_netns_network_round_trips_through_config_to_dict(tmp_path: Path) -> None:
    from nsinit.config import config_to_dict

    config = cfg(tmp_path, networks=[{"type": "netns", "path": "/run/netns/a"}])
    again = parse_config(config_to_dict(config), "container.json", str(tmp_path))[0]
    assert again == config
