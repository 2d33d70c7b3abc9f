"""``nsinit inspect`` against a real container with a known config."""
from __future__ import annotations

import json
import os
from typing import Any

from conftest import Nsinit, needs_root
from _live import Live
from test_network import bridge, subnet  # noqa: F401 - fixtures

pytestmark = needs_root

SCRIPT = "touch /tmp/ready; while :; do sleep 0.05; done"


def host_interfaces() -> set[str]:
    with open("/proc/self/net/dev") as f:
        return {line.split(":")[0].strip() for line in f.readlines()[2:]}


def inspected(nsinit: Nsinit, *options: str) -> dict[str, Any]:
    result = nsinit.run("inspect", "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_own_and_shared_namespaces_pids_limits_and_mounts(nsinit: Nsinit) -> None:
    nsinit.config(hostname=None, networks=None, namespaces=["NEWNS", "NEWPID", "NEWIPC"],
                  no_new_privileges=True, capabilities=["CHOWN", "KILL"],
                  cgroups={"memory": 64 << 20, "pids_limit": 20})
    container = Live(nsinit, SCRIPT).wait_ready()
    before = host_interfaces()
    try:
        report = inspected(nsinit)
        text = nsinit.run("inspect")
        inodes = {e["file"]: os.stat(f"/proc/{container.pid}/ns/{e['file']}").st_ino
                  for e in report["namespaces"].values()}
    finally:
        container.stop()
    assert text.returncode == 0 and "shared with the host" in text.stdout
    ns = report["namespaces"]
    assert {k for k, v in ns.items() if v["own"]} == {"NEWNS", "NEWPID", "NEWIPC"}
    for entry in ns.values():  # the inodes are the kernel's, for the init and for us
        assert entry["container"] == inodes[entry["file"]]
        assert entry["host"] == os.stat(f"/proc/self/ns/{entry['file']}").st_ino
    assert report["pid"] == {"host": container.pid, "container": 1}
    caps = report["capabilities"]
    assert caps["CapEff"]["container"]["names"] == ["CAP_CHOWN", "CAP_KILL"]
    assert caps["CapEff"]["container"]["mask"] == f"{(1 << 0) | (1 << 5):016x}"
    assert report["no_new_privs"]["container"] == 1
    assert report["seccomp"]["container"]["mode"] == "disabled"
    limits = {k: v for group in report["cgroups"] for k, v in group.get("limits", {}).items()}
    usage = {k: v for group in report["cgroups"] for k, v in group.get("usage", {}).items()}
    assert limits.get("pids.max") == "20"
    assert limits.get("memory.limit_in_bytes", limits.get("memory.max")) == str(64 << 20)
    assert int(usage["pids.current"]) >= 2  # sh and its sleep
    mounts = {m["target"]: m for m in report["mounts"]}
    assert mounts["/proc/sys"]["readonly"] and not mounts["/proc/sys"]["masked"]
    assert mounts["/proc/keys"]["masked"] and mounts["/sys/firmware"]["masked"]
    assert not mounts["/"]["masked"]
    # The host's network: every host interface that existed throughout is
    # in the container's list (other processes make and remove veths meanwhile).
    assert not ns["NEWNET"]["own"]
    inside = {i["name"] for i in report["network"]["container"]["interfaces"]}
    stable = before & host_interfaces() & {i["name"] for i in report["network"]["host"]["interfaces"]}
    assert "lo" in stable and stable <= inside


def test_a_new_network_namespace_has_only_loopback_with_its_address(nsinit: Nsinit) -> None:
    container = Live(nsinit, SCRIPT).wait_ready()
    try:
        report = inspected(nsinit)
    finally:
        container.stop()
    assert report["namespaces"]["NEWNET"]["own"]
    assert report["network"]["container"]["interfaces"][0]["name"] == "lo"
    assert [i["ipv4"] for i in report["network"]["container"]["interfaces"]] == ["127.0.0.1/8"]
    assert report["uid_map"]["container"] == ["0 0 4294967295"]


def test_no_container_is_one_line_and_exit_1(nsinit: Nsinit) -> None:
    result = nsinit.run("inspect")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no running container" in result.stderr


def test_a_veth_network_is_what_explain_said_and_inspect_sees(  # type: ignore[no-untyped-def]
        nsinit: Nsinit, bridge, subnet, link_prefix: str) -> None:
    name = bridge()
    address = f"{subnet[2]}/{subnet.prefixlen}"
    nsinit.config(networks=[{"type": "loopback"},
                            {"type": "veth", "bridge": name, "address": address, "gateway": str(subnet[1]),
                             "name": "eth0", "prefix": link_prefix}])
    explained = json.loads(nsinit.run("explain", "--json").stdout)
    network = next(s for s in explained["steps"] if s["step"] == "network")
    assert f"RTM_NEWADDR {address} dev eth0" in network["calls"]
    assert f"RTM_NEWROUTE default via {subnet[1]} dev eth0" in network["calls"]
    container = Live(nsinit, SCRIPT).wait_ready()
    try:
        report = inspected(nsinit)
    finally:
        container.stop()
    interfaces = {i["name"]: i for i in report["network"]["container"]["interfaces"]}
    assert set(interfaces) == {"lo", "eth0"}
    assert interfaces["eth0"]["ipv4"] == address
    routes = report["network"]["container"]["routes"]
    assert {"interface": "eth0", "destination": "0.0.0.0", "gateway": str(subnet[1]), "mask": "0.0.0.0"} in routes
