"""Container networking for real: veth pairs on a test bridge, routes, joining a netns.

Traffic stays on links the tests make: every test picks a 10.213.X.0/24 that
no host route touches and bridges named with its own ``link_prefix``; nothing
gets an uplink, NAT or forwarding.  The bridges a test makes are deleted by
the ``bridge`` fixture (nsinit never deletes bridges), and ``no_residue``
checks that no interface with the test's prefix is left.
"""
from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LOOP, Nsinit, links_left, links_named, needs_root, ok, running, stderr_lines

pytestmark = needs_root

STAY = f"touch /tmp/ready; {LOOP}"   # a container that stays until the test ends


# --- fixtures -------------------------------------------------------------------

@pytest.fixture
def subnet() -> ipaddress.IPv4Network:
    """A 10.213.X.0/24 that no host route or address overlaps."""
    out = subprocess.run(["ip", "-o", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True, check=True).stdout
    out += subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    used = []
    for word in out.split():
        try:
            network = ipaddress.ip_network(word, strict=False)
        except ValueError:
            continue
        if network.version == 4 and network.prefixlen > 0:
            used.append(network)
    for third in random.sample(range(1, 255), 254):
        candidate = ipaddress.ip_network(f"10.213.{third}.0/24")
        if not any(candidate.overlaps(n) for n in used):
            return candidate
    pytest.skip("no free 10.213.X.0/24 on this host")


@pytest.fixture
def ula() -> ipaddress.IPv6Network:
    return ipaddress.ip_network(f"fd42:213:{random.randrange(1, 0xffff):x}::/64")


@pytest.fixture
def bridge(nsinit: Nsinit, link_prefix: str) -> Iterator[Callable[[], str]]:
    """Names for test bridges; every one that exists afterwards is deleted.

    Depends on ``nsinit`` so it is torn down before ``no_residue`` looks."""
    names: list[str] = []

    def new() -> str:
        names.append(f"{link_prefix}b{len(names)}")
        return names[-1]

    yield new
    for name in names:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


@pytest.fixture
def host_link(nsinit: Nsinit, link_prefix: str) -> Iterator[Callable[..., str]]:
    """Make host links with ``ip link add NAME ...``; deleted afterwards."""
    names: list[str] = []

    def add(suffix: str, *args: str) -> str:
        name = f"{link_prefix}{suffix}"
        subprocess.run(["ip", "link", "add", name, *args], check=True)
        names.append(name)
        return name

    yield add
    for name in names:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


@pytest.fixture
def named_netns(link_prefix: str) -> Iterator[str]:
    """A network namespace made with ``ip netns add``; deleted afterwards."""
    name = f"{link_prefix}ns"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


# --- helpers --------------------------------------------------------------------

def host_ip(net: ipaddress.IPv4Network | ipaddress.IPv6Network, n: int) -> str:
    return str(net.network_address + n)


def veth(bridge: str, net: ipaddress.IPv4Network, n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "veth", "bridge": bridge, "address": f"{host_ip(net, n)}/{net.prefixlen}",
            "gateway": host_ip(net, 1), **extra}


def networks(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "loopback"}, *entries]


def second_container(busybox_template: Path, tmp_path: Path) -> Nsinit:
    target = tmp_path / "rootfs2"
    shutil.copytree(busybox_template, target, symlinks=True)
    return Nsinit(target)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def sysfs(name: str, attribute: str) -> str:
    return Path(f"/sys/class/net/{name}/{attribute}").read_text().strip()


def host_ping(address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["busybox", "ping", "-c", "1", "-W", "2", address], capture_output=True, text=True)


# --- veth on a bridge -------------------------------------------------------------

def test_two_containers_reach_each_other_the_gateway_and_the_host(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network,
        busybox_template: Path, tmp_path: Path) -> None:
    br = bridge()
    nsinit.config(networks=networks(veth(br, subnet, 2)))
    other = second_container(busybox_template, tmp_path)
    other.config(networks=networks(veth(br, subnet, 3)))
    with running(nsinit, STAY) as first:
        result = other.sh(f"ping -c 1 -W 2 {host_ip(subnet, 2)} && ping -c 1 -W 2 {host_ip(subnet, 1)}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert stderr_lines(result) == []  # the bridge existed already: nothing said
        assert host_ping(host_ip(subnet, 2)).returncode == 0
        assert host_ping(host_ip(subnet, 3)).returncode != 0  # that container is gone again
        assert nsinit.run("kill", "KILL").returncode == 0
        first_stderr = first.communicate(timeout=10)[1]
    assert first_stderr.splitlines() == [f"nsinit: created bridge {br} ({host_ip(subnet, 1)}/24)"]
    assert not (other.root / "pid").exists() and not (other.root / "state.json").exists()


def test_address_mtu_mac_and_host_end_as_configured(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network,
        ula: ipaddress.IPv6Network, link_prefix: str) -> None:
    br = bridge()
    host_name = f"{link_prefix}h0"
    nsinit.config(networks=networks(veth(
        br, subnet, 2, mtu=1400, txqueuelen=500, mac_address="02:42:0a:d5:00:02", host_interface_name=host_name,
        ipv6_address=f"{host_ip(ula, 2)}/64", ipv6_gateway=host_ip(ula, 1),
    )))
    with running(nsinit, STAY):
        # The host end: on the bridge, MTU, txqueuelen, up.
        assert os.path.basename(os.readlink(f"/sys/class/net/{host_name}/master")) == br
        assert sysfs(host_name, "mtu") == "1400"
        assert sysfs(host_name, "tx_queue_len") == "500"
        assert int(sysfs(host_name, "flags"), 16) & 1
        inside = ok(nsinit.sh("ip addr show eth0; ip link show lo; ip -6 route; "
                              f"ping -c 1 -W 2 {host_ip(ula, 1)} >/dev/null && echo ping6-ok"))
        assert host_ping(host_ip(ula, 2)).returncode == 0
    assert "mtu 1400" in inside
    assert f"inet {host_ip(subnet, 2)}/24" in inside
    assert f"inet6 {host_ip(ula, 2)}/64" in inside
    assert "link/ether 02:42:0a:d5:00:02" in inside
    assert "lo: <LOOPBACK,UP" in inside
    assert f"default via {host_ip(ula, 1)} dev eth0" in inside
    assert "ping6-ok" in inside
    # The new bridge got the IPv4 and IPv6 gateways, with the containers' prefix lengths.
    addresses = subprocess.run(["ip", "addr", "show", br], capture_output=True, text=True).stdout
    assert f"inet {host_ip(subnet, 1)}/24" in addresses and f"inet6 {host_ip(ula, 1)}/64" in addresses


def test_routes_are_applied(nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network) -> None:
    gateway = host_ip(subnet, 1)
    nsinit.config(
        networks=networks(veth(bridge(), subnet, 2, name="eth1")),
        routes=[
            {"destination": "10.214.0.0/16", "gateway": gateway, "interface_name": "eth1"},
            {"destination": "10.215.7.0/24", "interface_name": "eth1", "source": host_ip(subnet, 2)},
            {"destination": "10.216.0.0/16", "gateway": gateway},
        ],
    )
    routes = ok(nsinit.sh("ip route"), quiet=False)  # "created bridge"
    assert f"default via {gateway} dev eth1" in routes
    assert f"10.214.0.0/16 via {gateway} dev eth1" in routes
    assert f"10.215.7.0/24 dev eth1 scope link  src {host_ip(subnet, 2)}" in routes
    assert f"10.216.0.0/16 via {gateway} dev eth1" in routes


def test_network_state_is_recorded(nsinit: Nsinit, bridge: Callable[[], str],
                                   subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    br = bridge()
    nsinit.config(networks=networks(veth(br, subnet, 2, prefix=f"{link_prefix}v")))
    with running(nsinit, STAY):
        result = nsinit.run("state", "--json")
        assert result.returncode == 0, result.stderr
        [record] = json.loads(result.stdout)["network_state"]
        host_name = record["host_interface_name"]
        assert link_exists(host_name)
        # The MAC the kernel picked at creation, as the container sees it.
        assert ok(nsinit.exec("cat", "/sys/class/net/eth0/address")).strip() == record["mac_address"]
    assert host_name.startswith(f"{link_prefix}v") and len(host_name) == len(link_prefix) + 1 + 7
    assert record["type"] == "veth" and record["name"] == "eth0" and record["bridge"] == br
    assert record["address"] == f"{host_ip(subnet, 2)}/24" and len(record["mac_address"].split(":")) == 6
    assert not link_exists(host_name)


def test_supervisor_never_loads_pyroute2(nsinit: Nsinit, bridge: Callable[[], str],
                                         subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    # It stays resident as long as the container: the veths are set up by a
    # short-lived helper process, and removed without pyroute2.  Checked in a
    # supervisor driven through the library, where sys.modules can be read.
    host_name = f"{link_prefix}h0"
    nsinit.config(networks=networks(veth(bridge(), subnet, 2, host_interface_name=host_name)))
    script = (
        "import sys\n"
        "from nsinit.container import Container, Process\n"
        f"container = Container.load({str(nsinit.root)!r})\n"
        "status = container.run(Process(args=['/bin/sh', '-c', 'ip -o -4 addr show dev eth0']))\n"
        "print(status, sorted(m for m in sys.modules if m.startswith(('pyroute2', 'nsinit.network.veth'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert f"inet {host_ip(subnet, 2)}/24" in result.stdout       # the helper did configure eth0
    assert result.stdout.splitlines()[-1] == "0 []"
    assert not link_exists(host_name)                               # and teardown removed the pair


# --- cleanup ---------------------------------------------------------------------

def test_host_veth_is_gone_right_after_exit(nsinit: Nsinit, bridge: Callable[[], str],
                                            subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    host_name = f"{link_prefix}h0"
    nsinit.config(networks=networks(veth(bridge(), subnet, 2, host_interface_name=host_name)))
    assert "eth0" in ok(nsinit.sh("ip link show eth0"), quiet=False)
    assert not link_exists(host_name)  # deleted by nsinit, not left to the kernel's async cleanup


def test_host_veth_is_gone_after_a_failure_later_in_setup(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    host_name = f"{link_prefix}h0"
    nsinit.config(networks=networks(veth(bridge(), subnet, 2, host_interface_name=host_name)))
    result = nsinit.exec("/no/such/command")
    assert result.returncode == 127, result.stderr
    assert not link_exists(host_name)


def test_host_veths_made_before_a_failing_route_are_removed(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    # The routes come after every veth: the kernel refuses this one (its
    # gateway is on no link), so both pairs made already are rolled back.
    br = bridge()
    second = veth(br, subnet, 3, name="eth1", host_interface_name=f"{link_prefix}h1")
    del second["gateway"]  # one default route is enough
    nsinit.config(networks=networks(veth(br, subnet, 2, host_interface_name=f"{link_prefix}h0"), second),
                  routes=[{"destination": "10.214.0.0/16", "gateway": "10.250.250.250"}])
    result = nsinit.exec("true")
    assert result.returncode == 125, result.stderr
    lines = stderr_lines(result)   # after the line saying the bridge was made
    assert lines[-1].startswith("nsinit: network: routes[0]: 10.214.0.0/16 via 10.250.250.250: "), lines
    assert links_named(link_prefix) == [br]


def test_host_veth_is_removed_by_the_kernel_after_kill_9_of_nsinit(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    host_name = f"{link_prefix}h0"
    nsinit.config(networks=networks(veth(bridge(), subnet, 2, host_interface_name=host_name)))
    with running(nsinit, STAY) as proc:
        assert link_exists(host_name)
        proc.kill()  # SIGKILL: no cleanup code of ours runs
        proc.wait(timeout=10)
        # The init dies of its parent-death signal, its namespace goes, and
        # the kernel deletes the pair (asynchronously).
        nsinit.wait_for(lambda: not link_exists(host_name), timeout=10)
    # The next exec finds the stale files (and reuses the cgroups the killed
    # supervisor could not remove), then cleans up after itself.
    result = nsinit.exec("true")
    assert result.returncode == 0, result.stderr
    assert not link_exists(host_name)


def test_no_links_leak_over_many_runs(nsinit: Nsinit, bridge: Callable[[], str],
                                      subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    br = bridge()
    nsinit.config(networks=networks(veth(br, subnet, 2, prefix=f"{link_prefix}v")))
    deadline = time.monotonic() + 60
    for _ in range(20):
        assert nsinit.exec("true").returncode == 0
        if time.monotonic() > deadline:
            break
    assert links_left(f"{link_prefix}v") == []
    assert links_named(link_prefix) == [br]


# --- joining an existing network namespace ------------------------------------------

def test_netns_network_joins_the_namespace(nsinit: Nsinit, named_netns: str, link_prefix: str) -> None:
    subprocess.run(["ip", "netns", "exec", named_netns, "ip", "link", "add", f"{link_prefix}d",
                    "type", "veth", "peer", "name", f"{link_prefix}e"], check=True)
    path = f"/run/netns/{named_netns}"
    nsinit.config(networks=[{"type": "netns", "path": path}])
    out = ok(nsinit.sh("readlink /proc/self/ns/net; ip -o link"))
    assert out.splitlines()[0] == f"net:[{os.stat(path).st_ino}]"
    assert f"{link_prefix}d" in out


def test_veth_into_a_joined_namespace_is_removed_on_exit(
        nsinit: Nsinit, named_netns: str, bridge: Callable[[], str],
        subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    host_name = f"{link_prefix}h0"
    nsinit.config(networks=[{"type": "netns", "path": f"/run/netns/{named_netns}"},
                            veth(bridge(), subnet, 2, host_interface_name=host_name)])
    ok(nsinit.sh(f"ping -c 1 -W 2 {host_ip(subnet, 1)} >/dev/null"), quiet=False)
    # The namespace outlives the container, so only nsinit's teardown removes the pair.
    assert not link_exists(host_name)
    listing = subprocess.run(["ip", "netns", "exec", named_netns, "ip", "-o", "link"],
                             capture_output=True, text=True, check=True).stdout
    assert "eth0" not in listing


# --- bad input: one line naming the field, exit 125, nothing left -------------------

BAD_NETWORKS: dict[str, tuple[Callable[[str, ipaddress.IPv4Network], list[dict[str, Any]]], str]] = {
    "address not CIDR": (lambda br, net: [veth(br, net, 2, address=host_ip(net, 2))], "networks[1].address: "),
    "gateway outside the subnet": (lambda br, net: [veth(br, net, 2, gateway="10.9.9.9")], "networks[1].gateway: "),
    "MTU too large": (lambda br, net: [veth(br, net, 2, mtu=70000)], "networks[1].mtu: "),
    "MTU too small": (lambda br, net: [veth(br, net, 2, mtu=20)], "networks[1].mtu: "),
    "prefix too long": (lambda br, net: [veth(br, net, 2, prefix="waytoolong")], "networks[1].prefix: "),
    "duplicate interface names": (lambda br, net: [veth(br, net, 2), veth(br, net, 3)], "networks[2].name: "),
    "duplicate host names": (lambda br, net: [veth(br, net, 2, host_interface_name="ntdup0"),
                                              veth(br, net, 3, name="eth1", host_interface_name="ntdup0")],
                             "networks[2].host_interface_name: "),
    "multicast MAC": (lambda br, net: [veth(br, net, 2, mac_address="01:00:5e:00:00:01")],
                      "networks[1].mac_address: "),
}


@pytest.mark.parametrize("case", sorted(BAD_NETWORKS))
def test_bad_network_config(case: str, nsinit: Nsinit, bridge: Callable[[], str],
                            subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    make, field = BAD_NETWORKS[case]
    nsinit.config(networks=networks(*make(bridge(), subnet)))
    assert_one_line_failure(nsinit, field)
    assert links_named(link_prefix) == []  # not even the bridge


def test_bridge_that_is_not_a_bridge(nsinit: Nsinit, host_link: Callable[..., str],
                                     subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    not_a_bridge = host_link("x0", "type", "veth", "peer", "name", f"{link_prefix}x1")
    nsinit.config(networks=networks(veth(not_a_bridge, subnet, 2, prefix=f"{link_prefix}v")))
    assert_one_line_failure(nsinit, f"networks[1].bridge: {not_a_bridge} is not a bridge")
    assert links_named(f"{link_prefix}v") == []


def test_taken_host_interface_name(nsinit: Nsinit, host_link: Callable[..., str], bridge: Callable[[], str],
                                   subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    taken = host_link("d0", "type", "veth", "peer", "name", f"{link_prefix}d1")
    nsinit.config(networks=networks(veth(bridge(), subnet, 2, host_interface_name=taken)))
    assert_one_line_failure(nsinit, f'networks[1].host_interface_name: "{taken}" already exists on the host')


def test_a_gateway_the_existing_bridge_does_not_have_is_warned_of(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network,
        busybox_template: Path, tmp_path: Path, link_prefix: str) -> None:
    br = bridge()
    nsinit.config(networks=networks(veth(br, subnet, 2, prefix=f"{link_prefix}v")))  # makes br at .1
    other = second_container(busybox_template, tmp_path)
    other.config(networks=networks(veth(br, subnet, 3, gateway=host_ip(subnet, 254), prefix=f"{link_prefix}w")))
    with running(nsinit, STAY):
        result = other.exec("true")
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == [
        f"nsinit: warning: networks[1].gateway: {host_ip(subnet, 254)} is not an address of bridge {br} "
        f"(it has {host_ip(subnet, 1)}/24); the default route leads nowhere unless another machine on "
        "the bridge answers there"]


def test_an_address_a_live_container_has_on_the_bridge_is_refused(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network,
        busybox_template: Path, tmp_path: Path, link_prefix: str) -> None:
    br = bridge()
    nsinit.config(networks=networks(veth(br, subnet, 2, prefix=f"{link_prefix}v")))
    other = second_container(busybox_template, tmp_path)
    other.config(networks=networks(veth(br, subnet, 2, prefix=f"{link_prefix}w")))
    with running(nsinit, STAY):
        assert_one_line_failure(other, f"networks[1].address: {host_ip(subnet, 2)} is already used on bridge "
                                       f"{br} by the container in {nsinit.root}")
        assert links_named(f"{link_prefix}w") == []   # nothing created
        assert not (other.root / "pid").exists()
    # Once that container is gone, the address is free again.
    assert ok(other.sh(f"ip -4 addr show eth0 | grep -c {host_ip(subnet, 2)}")) == "1\n"


def processes_with_cwd(path: Path) -> list[int]:
    """Processes working in ``path``: nsinit and its network helper do (it is the root dir)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/cwd") == str(path):
                found.append(int(entry))
        except OSError:
            continue  # exited while we looked
    return found


def test_a_failure_before_the_clone_lets_the_network_helper_go_untouched(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network, link_prefix: str,
        tmp_path: Path) -> None:
    # The helper is forked before the cgroups are made; here they fail (the
    # kernel refuses the limit), so it never learns a pid: no veth, no bridge,
    # and it is gone when nsinit returns.
    br = bridge()
    nsinit.config(networks=networks(veth(br, subnet, 2, host_interface_name=f"{link_prefix}h0")),
                  cgroups={"blkio_throttle_read_bps_device": "259:250 1000"})
    result = nsinit.exec("/bin/true")
    assert result.returncode == 125
    [line] = stderr_lines(result)
    assert line.startswith("nsinit: cgroups: cgroups.blkio_throttle_read_bps_device: ")
    assert links_named(link_prefix) == []
    assert processes_with_cwd(nsinit.root) == []


def test_netns_path_that_is_not_a_network_namespace(nsinit: Nsinit) -> None:
    uts = f"/proc/{os.getpid()}/ns/uts"
    nsinit.config(networks=[{"type": "netns", "path": uts}])
    assert_one_line_failure(nsinit, f"networks[0].path: {uts} is a uts namespace, not a network namespace")
    nsinit.config(networks=[{"type": "netns", "path": str(nsinit.root / "container.json")}])
    assert_one_line_failure(nsinit, "networks[0].path: ")


def assert_one_line_failure(nsinit: Nsinit, expected: str) -> None:
    result = nsinit.exec("true")
    assert result.returncode == 125, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("nsinit: ") and expected in lines[0], lines


# --- the loopback-only path stays light -------------------------------------------

def test_loopback_only_container_does_not_import_pyroute2(nsinit: Nsinit) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "nsinit", "exec", "true"],
                            cwd=nsinit.root, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "pyroute2" not in result.stderr and "nsinit.network.veth" not in result.stderr


def test_delete_removes_the_host_veth_of_a_created_and_a_running_container(
        nsinit: Nsinit, bridge: Callable[[], str], subnet: ipaddress.IPv4Network, link_prefix: str) -> None:
    # Nobody supervises a created container: delete is what removes its veth.
    host_end = f"{link_prefix}h"
    nsinit.config(networks=networks(veth(bridge(), subnet, 2, host_interface_name=host_end)))
    for start in (False, True):
        with open(nsinit.root.parent / "created", "w") as out:
            created = subprocess.run([sys.executable, "-m", "nsinit", "create", "/bin/sleep", "30"], cwd=nsinit.root,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=60)
        assert created.returncode == 0, (nsinit.root.parent / "created").read_text()
        assert link_exists(host_end)
        if start:
            assert nsinit.run("start").returncode == 0
        deleted = nsinit.run("delete", "--force")
        assert deleted.returncode == 0 and deleted.stderr == "", deleted.stderr
        assert not link_exists(host_end)
