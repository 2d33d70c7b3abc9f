"""``nsinit-runc list`` and ``ps``: what runs, as tables or JSON.

Apart from nsinit/oci/commands.py, whose commands an engine runs for every
container (docs/DEVELOPING.md, "nsinit-runc's hot commands").
"""
from __future__ import annotations

from nsinit.errors import ContainerNotExists, NsinitError
from nsinit.oci.commands import factory_of, leftover_pids, load_container, require_live

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.oci.cli import Globals


def cmd_list(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    fmt = args["--format"]
    if fmt not in ("table", "json"):
        raise NsinitError("", f'--format: "{fmt}" is not one of table, json')
    factory = factory_of(globals_)
    states = []
    for container_id in factory.ids():
        try:
            container = factory.load(container_id, warn=globals_.warn)
        except ContainerNotExists:
            continue  # deleted while we listed
        entry = container.oci_state()
        entry["owner"] = owner_name(container.facts.owner_uid)
        states.append(entry)
    if args["--quiet"]:
        for entry in states:
            print(entry["id"])
    elif fmt == "json":
        print(jsontext.dumps(states))
    else:
        rows: list[tuple[str, ...]] = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(e["id"], str(e["pid"]), e["status"], e["bundle"], e["created"], e["owner"]) for e in states]
        print_table(rows)
    return 0


def owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded as Go's tabwriter (minwidth 12, padding 3) lays them out."""
    widths = [max(12, *(len(row[i]) for row in rows)) + 3 for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("".join(cell.ljust(width) for cell, width in zip(row, widths)) + row[-1])


def cmd_ps(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    fmt = args["--format"]
    if fmt not in ("table", "json"):
        raise NsinitError("", f'--format: "{fmt}" is not one of table, json')
    container = load_container(globals_, args["ID"])
    status, current = container.oci_status()
    if status == "stopped":
        # runc lists a stopped container's cgroup (containerd's `ctr task
        # ps` of an exited task): what is left in it, often nothing.
        pids = leftover_pids(current) if current is not None else []
    else:
        from nsinit.processes import container_pids

        pids = container_pids(require_live(container))
    if fmt == "json":
        print(jsontext.dumps(pids))
        return 0
    print_ps_table(pids, args["PS_ARG"] or ["-ef"])
    return 0


def print_ps_table(pids: list[int], ps_args: list[str]) -> None:
    """runc's table: ps(1)'s own output, header and the container's rows."""
    import subprocess

    try:
        done = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise NsinitError("", "ps(1) is not installed (procps); --format json needs none") from None
    if done.returncode != 0:
        raise NsinitError("", f"ps {' '.join(ps_args)}: {done.stderr.strip() or 'failed'}")
    lines = done.stdout.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise NsinitError("", f"ps {' '.join(ps_args)}: its output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            print(line)
