"""Per-interface counters of a network namespace: Stats' ``interfaces``.

Read from the host as /proc/PID/net/dev of a process in the namespace (the
container's init): one file for every interface the namespace has, with no
setns and no netlink socket.  Its columns (net/core/net-procfs.c): after
"name:", eight receive counters (bytes packets errs drop fifo frame
compressed multicast), then eight transmit ones (bytes packets errs drop
fifo colls carrier compressed).
"""
from __future__ import annotations

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

COUNTERS = ("bytes", "packets", "errors", "dropped")   # the seed's NetworkInterface, in its order
_RX_COLUMNS = (0, 1, 2, 3)
_TX_COLUMNS = (8, 9, 10, 11)


def parse_net_dev(text: str) -> list[dict[str, Any]]:
    """Every interface of a /proc/net/dev text: name, rx_* and tx_* counters."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines()[2:]:   # two header lines
        name, colon, rest = line.partition(":")
        values = rest.split()
        if not colon or len(values) < 16:
            continue
        entry: dict[str, Any] = {"name": name.strip()}
        for direction, columns in (("rx", _RX_COLUMNS), ("tx", _TX_COLUMNS)):
            for counter, column in zip(COUNTERS, columns):
                entry[f"{direction}_{counter}"] = int(values[column])
        out.append(entry)
    return out


def namespace_interfaces(pid: int, network_state: list[Any]) -> list[dict[str, Any]]:
    """The counters of every interface in the network namespace of ``pid``,
    as the container sees them; a veth nsinit made also names its host end
    (``host_interface_name``).  Empty once ``pid`` is gone."""
    try:
        with open(f"/proc/{pid}/net/dev", encoding="ascii", errors="replace") as f:
            interfaces = parse_net_dev(f.read())
    except OSError:
        return []   # the init exited since its state was read
    host_ends = {str(entry.get("name")): str(entry["host_interface_name"]) for entry in network_state
                 if isinstance(entry, dict) and entry.get("host_interface_name")}
    for interface in interfaces:
        if interface["name"] in host_ends:
            interface["host_interface_name"] = host_ends[interface["name"]]
    return interfaces
