"""``nsinit inspect``: a running container side by side with the host.

Everything comes from the kernel's own files about the container's init
(/proc/PID/ns, status, uid_map, mountinfo, net/*) and from its cgroup
directories; the host column is this process's own view.  The only thing
/proc cannot show from outside is an interface's IPv4 address: a forked
child enters the container's network namespace to ask (``_addresses``), so
nothing is loaded into, or changed in, nsinit's supervisor.
"""
from __future__ import annotations

import os

from nsinit.config import names

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.state import State

CAP_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}

# What inspect reads in each cgroup directory (v1 and v2 names): limits, then usage.
LIMIT_FILES = ("memory.limit_in_bytes", "memory.max", "memory.memsw.limit_in_bytes", "memory.swap.max",
               "pids.max", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max", "cpu.shares", "cpu.weight",
               "cpuset.cpus", "cpuset.mems")
USAGE_FILES = ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.current", "memory.peak",
               "pids.current", "cpuacct.usage", "cpu.stat", "freezer.state", "cgroup.freeze")


def inspect(root: str) -> dict[str, Any]:
    """The report for the container running in ``root`` (an NsinitError if none)."""
    from nsinit.container import Container

    current = Container.attach(root).require_state()
    pid = current.init_pid
    status = _status(pid)
    own_status = _status(os.getpid())
    return {
        "root": current.root,
        "rootfs": current.rootfs,
        "pid": {"host": pid, "container": int(status.get("NSpid", str(pid)).split()[-1])},
        "namespaces": namespaces(pid),
        "uid_map": {"container": _read_lines(f"/proc/{pid}/uid_map"), "host": _read_lines("/proc/self/uid_map")},
        "gid_map": {"container": _read_lines(f"/proc/{pid}/gid_map"), "host": _read_lines("/proc/self/gid_map")},
        "capabilities": {key: {"container": _caps(status.get(key, "0")), "host": _caps(own_status.get(key, "0"))}
                         for key in CAP_KEYS},
        "no_new_privs": {"container": int(status.get("NoNewPrivs", "0")),
                         "host": int(own_status.get("NoNewPrivs", "0"))},
        "seccomp": {"container": _seccomp(status), "host": _seccomp(own_status)},
        "mounts": mounts(pid),
        "cgroups": cgroups(current),
        "network": {"container": network(pid), "host": network(os.getpid(), addresses=False)},
    }


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in f)}


def _read_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return [" ".join(line.split()) for line in f if line.strip()]
    except OSError:
        return []


def _caps(hex_mask: str) -> dict[str, Any]:
    from nsinit.capabilities import mask_to_names

    return {"mask": hex_mask, "names": mask_to_names(int(hex_mask, 16))}


def _seccomp(status: dict[str, str]) -> dict[str, Any]:
    mode = int(status.get("Seccomp", "0"))
    out: dict[str, Any] = {"mode": SECCOMP_MODES.get(mode, str(mode))}
    if "Seccomp_filters" in status:
        out["filters"] = int(status["Seccomp_filters"])
    return out


def namespaces(pid: int) -> dict[str, dict[str, Any]]:
    """Each of the 8 kinds: the init's inode, ours, and whether it has its own."""
    out = {}
    for kind, proc_name in names.NAMESPACE_PROC_FILES.items():
        try:
            inode = os.stat(f"/proc/{pid}/ns/{proc_name}").st_ino
            host = os.stat(f"/proc/self/ns/{proc_name}").st_ino
        except OSError:
            continue  # a kernel without this namespace kind (time: before 5.6)
        out[kind] = {"file": proc_name, "container": inode, "host": host,
                     "own": inode != host}
    return out


def mounts(pid: int) -> list[dict[str, Any]]:
    """The init's mount table, each line with what it is for the container:
    read-only, masked (an empty tmpfs, or /dev/null, over a path), or plain."""
    out = []
    with open(f"/proc/{pid}/mountinfo") as f:
        lines = f.read().splitlines()
    from nsinit.mountinfo import unescape

    for line in lines:
        fields = line.split()
        sep = fields.index("-")
        root, target, options, fstype = unescape(fields[3]), unescape(fields[4]), fields[5], fields[sep + 1]
        source = fields[sep + 2] if len(fields) > sep + 2 else ""
        readonly = options.split(",")[0] == "ro"
        masked = (root == "/null" and target != "/dev/null") or (
            fstype == "tmpfs" and readonly and (target.startswith("/proc/") or target.startswith("/sys/")))
        out.append({"target": target, "fstype": fstype, "source": source, "root": root, "options": options,
                    "readonly": readonly, "masked": masked})
    return out


def cgroups(current: State) -> list[dict[str, Any]]:
    """Per cgroup directory: its limits and what the container uses now."""
    out = []
    seen: set[str] = set()
    for controller, directory in sorted(current.cgroup_paths.items()):
        if directory in seen:
            continue
        seen.add(directory)
        entry: dict[str, Any] = {"controller": controller, "path": directory}
        for key, files in (("limits", LIMIT_FILES), ("usage", USAGE_FILES)):
            for name in files:
                value = _read_cgroup_file(directory, name)
                if value is not None:
                    entry.setdefault(key, {})[name] = value
        procs = _read_cgroup_file(directory, "cgroup.procs")
        entry["processes"] = len(procs.split()) if procs else 0
        out.append(entry)
    return out


def _read_cgroup_file(directory: str, name: str) -> str | None:
    try:
        with open(os.path.join(directory, name)) as f:
            text = f.read().strip()
    except OSError:
        return None  # not this controller's directory, or not this cgroup version
    if name == "cpu.stat":
        # v2's usage_usec; v1's cpu.stat holds only throttling counts
        return next((line.split()[1] for line in text.splitlines() if line.startswith("usage_usec ")), None)
    return text


def network(pid: int, *, addresses: bool = True) -> dict[str, Any]:
    """Interfaces (with counters and IPv4 addresses) and IPv4 routes, through /proc/PID/net."""
    interfaces: list[dict[str, Any]] = []
    for line in _read_lines(f"/proc/{pid}/net/dev")[2:]:
        name, _, counters = line.partition(":")
        values = counters.split()
        interfaces.append({"name": name.strip(), "rx_bytes": int(values[0]), "rx_packets": int(values[1]),
                           "tx_bytes": int(values[8]), "tx_packets": int(values[9])})
    if addresses:
        found = _addresses(pid, [i["name"] for i in interfaces])
        for interface in interfaces:
            interface["ipv4"] = found.get(interface["name"], "")
    return {"interfaces": interfaces, "routes": routes(pid)}


def routes(pid: int) -> list[dict[str, str]]:
    out = []
    for line in _read_lines(f"/proc/{pid}/net/route")[1:]:
        fields = line.split()
        out.append({"interface": fields[0], "destination": _ipv4(fields[1]), "gateway": _ipv4(fields[2]),
                    "mask": _ipv4(fields[7])})
    return out


def _ipv4(little_endian_hex: str) -> str:
    value = int(little_endian_hex, 16)
    return ".".join(str((value >> shift) & 0xFF) for shift in (0, 8, 16, 24))


def _addresses(pid: int, interfaces: list[str]) -> dict[str, str]:
    """{interface: "a.b.c.d/len"}, asked inside the container's network
    namespace by a forked child (setns changes only that child)."""
    import json

    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(read_fd)
            found = _ask_addresses(pid, interfaces)
            os.write(write_fd, json.dumps(found).encode())
        except BaseException:  # noqa: BLE001 - a child must never return into the caller's code
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(child, 0)
    try:
        return dict(json.loads(b"".join(chunks) or b"{}"))
    except ValueError:
        return {}  # the child could not enter the namespace: no addresses to show


def _ask_addresses(pid: int, interfaces: list[str]) -> dict[str, str]:
    import fcntl
    import socket
    import struct

    from nsinit import _native

    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    _native.setns(fd, names.CLONE_NEWNET)
    os.close(fd)
    found = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in interfaces:
            request = struct.pack("256s", name.encode()[:15])
            try:
                address = fcntl.ioctl(sock.fileno(), 0x8915, request)[20:24]   # SIOCGIFADDR
                netmask = fcntl.ioctl(sock.fileno(), 0x891B, request)[20:24]   # SIOCGIFNETMASK
            except OSError:
                continue  # no IPv4 address on it
            prefix = bin(int.from_bytes(netmask, "big")).count("1")
            found[name] = f"{socket.inet_ntoa(address)}/{prefix}"
    return found


def to_text(report: dict[str, Any]) -> str:
    lines = [f"container in {report['root']} (rootfs {report['rootfs']})",
             f"init pid     {report['pid']['host']} on the host, {report['pid']['container']} inside", "",
             f"{'namespace':<10} {'container':>12} {'host':>12}  "]
    for kind, ns in report["namespaces"].items():
        whose = "own" if ns["own"] else "shared with the host"
        lines.append(f"{kind:<10} {ns['container']:>12} {ns['host']:>12}  {whose}")
    lines.append("")
    for key in ("uid_map", "gid_map"):
        inside, host = "; ".join(report[key]["container"]), "; ".join(report[key]["host"])
        lines.append(f"{key:<10} container: {inside}   host: {host}")
    lines.append("")
    for key, sets in report["capabilities"].items():
        inside = sets["container"]
        lines.append(f"{key}  {inside['mask']} (host {sets['host']['mask']})  {' '.join(inside['names']) or '(none)'}")
    lines.append(f"NoNewPrivs {report['no_new_privs']['container']} (host {report['no_new_privs']['host']})   "
                 f"seccomp {report['seccomp']['container']['mode']} (host {report['seccomp']['host']['mode']})")
    lines.append("")
    lines.append("mounts, as the container sees them:")
    for m in report["mounts"]:
        mark = "masked" if m["masked"] else ("read-only" if m["readonly"] else "")
        lines.append(f"  {m['target']:<28} {m['fstype']:<8} {m['options']:<40} {mark}")
    lines.append("")
    for group in report["cgroups"]:
        limits = ", ".join(f"{k} {v}" for k, v in group.get("limits", {}).items())
        usage = ", ".join(f"{k} {v}" for k, v in group.get("usage", {}).items())
        lines.append(f"cgroup {group['controller']:<8} {group['path']}")
        if limits or usage:
            lines.append(f"         limits: {limits or '-'}   usage: {usage or '-'}")
    lines.append("")
    net = report["network"]
    lines.append("network interfaces (container | host): "
                 + " ".join(f"{i['name']} {i.get('ipv4', '')}".strip() for i in net["container"]["interfaces"])
                 + " | " + " ".join(i["name"] for i in net["host"]["interfaces"]))
    for route in net["container"]["routes"]:
        lines.append(f"  route {route['destination']}/{route['mask']} via {route['gateway']} dev {route['interface']}")
    return "\n".join(lines) + "\n"
