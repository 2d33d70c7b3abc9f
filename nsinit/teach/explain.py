"""``nsinit explain``: what creating a container from this config will do.

Each part in the order nsinit does it (nsinit/lifecycle/create.py ``_Creation.run``,
nsinit/child.py ``_setup_and_exec``), with the system calls and arguments it
becomes and one sentence of why.  Nothing is made or changed: the mount calls
come from nsinit/mount/plan.py (the mount steps' own decisions), the cgroup
writes from the cgroup manager with its ``write`` recorded instead of done,
the capability masks from the kernel's execve rules.  Step names are the
ones ``--trace`` prints, so a trace and an explanation line up.
"""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.record import field, record

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import CapabilitySets, Config


@record
class Part:
    """One step: who does it, the calls it makes, why."""

    step: str                      # the name --trace prints
    side: str                      # "parent" (the supervisor) or "child" (the container's init)
    why: str
    calls: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "side": self.side, "calls": list(self.calls), "why": self.why}
        out.update(self.detail)
        return out


def clone_flag_text(flags: int) -> str:
    parts = [f"CLONE_{name}" for name, bit in names.NAMESPACE_CLONE_FLAGS.items() if flags & bit]
    return "|".join(parts + ["SIGCHLD"])


def cap_mask_hex(mask: int) -> str:
    """A capability set as /proc/PID/status prints it (%016x)."""
    return f"{mask:016x}"


def caps_after_exec(caps: CapabilitySets, uid: int, no_new_privs: bool, last_cap: int) -> dict[str, int]:
    """The five sets /proc/self/status shows once the command runs.

    nsinit sets bounding, inheritable, permitted, effective and ambient before
    execve; execve then computes new ones (capabilities(7), "Transformation
    of capabilities during execve()"), for a file without file capabilities:
    uid 0 gets P' = bounding | inheritable (the "root is special" rule, unless
    no_new_privs: then no more than it had), and E' = P'; any other uid gets
    only the ambient set, in P' and E'.  I' and the bounding set stay.
    """
    from nsinit.capabilities import names_to_mask

    supported = (1 << (last_cap + 1)) - 1
    bounding = names_to_mask(caps.bounding) & supported
    inheritable = names_to_mask(caps.inheritable) & supported
    permitted = names_to_mask(caps.permitted) & supported
    ambient = names_to_mask(caps.ambient) & supported & permitted & inheritable
    if uid == 0:
        new_permitted = bounding | inheritable
        if no_new_privs:
            new_permitted &= permitted
        new_permitted |= ambient
        new_effective = new_permitted
    else:
        new_permitted = new_effective = ambient
    return {"CapInh": inheritable, "CapPrm": new_permitted, "CapEff": new_effective,
            "CapBnd": bounding, "CapAmb": ambient}


def explain(config: Config, root: str) -> list[Part]:
    """Every part of creating a container from ``config`` in ``root``, in order."""
    parts: list[Part] = []
    veth = [n for n in config.networks if n.type == "veth"]
    if veth or config.routes:
        parts.append(Part("network helper", "parent", "a short-lived helper process will set up the veths, "
                          "so that the supervisor never loads the netlink library", ["fork()"]))
    parts.append(_cgroups(config, root))
    parts.append(Part("load steps", "parent", "the mount, network, identity and capability code is imported "
                      "now, before clone: the child could not after pivot_root (the host's files are hidden), "
                      "and after clone each page an import writes would be a copy-on-write fault", []))
    parts.append(Part("trampoline", "parent", "made for the child before clone: the command will be exec'd by a tiny static program from a sealed "
                      "memfd, never from the host's Python, so /proc/self/exe in the container cannot reach a "
                      "host binary (CVE-2019-5736); the child inherits it",
                      ["memfd_create(\"nsinit-exec\", MFD_CLOEXEC|MFD_ALLOW_SEALING|MFD_EXEC)",
                       "fcntl(F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE)"]))
    parts.append(Part("stdio", "parent", "the command's stdin/stdout/stderr: nsinit's own, or a pty the "
                      "container makes in its own devpts" if config.tty else
                      "the command's stdin/stdout/stderr: nsinit's own, passed through",
                      ["socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)"]))
    parts.append(_clone(config))
    parts.append(Part("init", "child", "the child dies with the supervisor, and nothing in the container "
                      "may ptrace it or open its /proc/PID/exe (the host's Python, CVE-2019-5736) until execve",
                      ["prctl(PR_SET_PDEATHSIG, SIGKILL)", "prctl(PR_SET_DUMPABLE, 0)",
                       "close(the supervisor's fds)"]))
    parts.append(_attach(config, root))
    wait = Part("wait for parent", "child", "the init waits on the sync socket until the supervisor "
                "has written the id maps, set up the network and recorded the container",
                ["recv(sync socket) → {\"kind\": \"go\"}"])
    from nsinit.lifecycle import rootfs_can_precede_go

    if rootfs_can_precede_go(config, hooks=False, rootless=os.geteuid() != 0):
        wait.why = ("the init has set up its rootfs while the supervisor recorded the container (nothing "
                    "in those steps needs the record); it waits on the sync socket for that record now")
        parts.extend(_parent_setup(config, veth))
        parts.extend(_child_setup(config))
        parts.append(wait)
    else:
        parts.append(wait)
        parts.extend(_parent_setup(config, veth))
        parts.extend(_child_setup(config))
    parts.extend(_finalize(config))
    return parts


def _cgroups(config: Config, root: str) -> Part:
    why = ("made before the clone with every limit and device rule written, so the init is inside them "
           "before it runs any of the command's code")
    try:
        writes, paths = planned_cgroup_writes(config, root)
    except Exception as err:  # noqa: BLE001 - a host without cgroups still gets the rest explained
        return Part("cgroups", "parent", why, [f"(not on this host: {err})"])
    calls = [f"mkdir(\"{path}\")" for path in sorted(set(paths.values()))]
    calls += [f"write(\"{path}\", \"{value}\")" for _field, path, value in writes]
    return Part("cgroups", "parent", why, calls,
                {"paths": paths, "writes": [{"field": f, "file": p, "value": v} for f, p, v in writes]})


def planned_cgroup_writes(config: Config, root: str) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(field, file, value) the manager's create() will write, and its directories.

    The manager's own ``write_limits`` and device rules run with its
    ``write`` recorded instead of done: the same code, nothing written.
    """
    from nsinit import cgroups
    from nsinit.cgroups import devices
    from nsinit.cgroups.manager import check_resources

    manager = cgroups.manager_for(config, root)
    check_resources(manager.resources)
    writes: list[tuple[str, str, str]] = []
    manager.write = lambda field, path, value: writes.append((field, path, value))  # type: ignore[method-assign]
    try:
        manager.write_limits(manager.resources, updating=False)  # type: ignore[attr-defined]  # v1 and v2 both
    except Exception as err:  # noqa: BLE001 - e.g. a weight file only the made cgroup would show
        writes.append(("(unknown)", "(decided when the cgroup exists)", str(err)))
    allow_all, rules = devices.container_rules(manager.devices, manager.resources)
    if manager.version == "v1" and "devices" in manager.paths:
        for name, line in devices.v1_writes(allow_all, rules):
            writes.append(("devices", os.path.join(manager.paths["devices"], name), line))
    elif not allow_all:
        writes.append(("devices", "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE)",
                       f"a device program allowing {len([r for r in rules if r.allow])} rules"))
    return writes, dict(manager.paths)


def _clone(config: Config) -> Part:
    flags = config.clone_flags()
    later = ""
    if flags & names.CLONE_NEWCGROUP:
        flags &= ~names.CLONE_NEWCGROUP
        later = " The cgroup namespace comes later: it is rooted where its creator stands when it is made."
    shared = [n for n in names.NAMESPACE_CLONE_FLAGS if not config.has_namespace(n)]
    joined = {ns.type: ns.path for ns in config.namespaces if ns.path}
    why = ("one fork into new namespaces: each CLONE_NEW* flag gives the child its own copy of one "
           "kind of kernel state." + later)
    if shared:
        why += " Shared with the host: " + ", ".join(shared) + "."
    return Part("clone", "parent", why, [f"clone3({{flags = {clone_flag_text(flags)}}})"],
                {"flags": flags, "new": [n for n, bit in names.NAMESPACE_CLONE_FLAGS.items() if flags & bit],
                 "shared_with_host": shared, "joined": joined})


def _attach(config: Config, root: str) -> Part:
    calls = []
    try:
        from nsinit import cgroups

        for path in cgroups.manager_for(config, root).self_attach_files():
            calls.append(f"write(\"{path}\", \"0\")")
    except Exception as err:  # noqa: BLE001 - see _cgroups
        calls.append(f"(not on this host: {err})")
    if config.has_namespace("NEWCGROUP"):
        calls.append("unshare(CLONE_NEWCGROUP)")
    return Part("cgroups", "child", "the init moves itself into its cgroups (\"0\" means \"me\") before it "
                "runs anything else, so nothing it starts escapes the limits", calls)


def _parent_setup(config: Config, veth: list[Any]) -> list[Part]:
    parts = []
    for network in veth:
        host_end = network.host_interface_name or network.prefix + "XXXXXXX"
        calls = [f"RTM_NEWLINK veth {host_end} peer {network.name} (in the container's netns)"]
        if network.bridge:
            calls.append(f"RTM_NEWLINK {host_end} master {network.bridge} up")
        for key in ("address", "ipv6_address"):
            if getattr(network, key):
                calls.append(f"RTM_NEWADDR {getattr(network, key)} dev {network.name}")
        calls.append(f"RTM_NEWLINK {network.name} up")
        for key in ("gateway", "ipv6_gateway"):
            if getattr(network, key):
                calls.append(f"RTM_NEWROUTE default via {getattr(network, key)} dev {network.name}")
        parts.append(Part("network", "parent", "a veth pair is a cable: one end stays on the host (on the bridge), "
                          "the other is created inside the container's network namespace", calls,
                          {"bridge": network.bridge, "name": network.name, "address": network.address,
                           "gateway": network.gateway}))
    user_ns = config.namespace("NEWUSER")
    if user_ns is not None and not user_ns.path:
        gid = "".join(f"{m.container_id} {m.host_id} {m.size}\\n" for m in config.gid_mappings)
        uid = "".join(f"{m.container_id} {m.host_id} {m.size}\\n" for m in config.uid_mappings)
        parts.append(Part("id maps", "parent", "a user namespace starts with no ids at all; the maps say which "
                          "host uid each container uid really is (container_id host_id size)",
                          [f"write(\"/proc/PID/gid_map\", \"{gid}\")", f"write(\"/proc/PID/uid_map\", \"{uid}\")"],
                          {"uid_map": [[m.container_id, m.host_id, m.size] for m in config.uid_mappings],
                           "gid_map": [[m.container_id, m.host_id, m.size] for m in config.gid_mappings]}))
    parts.append(Part("state", "parent", "the container is recorded (init pid, its start time and namespace "
                      "inodes) so that a later exec joins it and no pid reuse can fool it",
                      ["write(\"/run/nsinit/…/state.json\")", "write(\"ROOT/pid\")", "write(\"ROOT/state.json\")"]))
    parts.append(Part("go", "parent", "the init may go on now", ["send(sync socket, {\"kind\": \"go\"})"]))
    return parts


def _child_setup(config: Config) -> list[Part]:
    from nsinit.mount.plan import plan_mounts

    parts = []
    if config.has_namespace("NEWUSER") and not config.namespace("NEWUSER").path:  # type: ignore[union-attr]
        parts.append(Part("user namespace", "child", "with the maps written, become the container's root "
                          "(files made from now on get owners the maps can show)",
                          ["setresgid(0, 0, 0)", "setresuid(0, 0, 0)"]))
    joined = [ns for ns in config.namespaces if ns.path and ns.type not in ("NEWPID", "NEWTIME")]
    if joined:
        parts.append(Part("join namespaces", "child", "namespaces given by path are entered, not made",
                          [f"setns(open(\"{ns.path}\"), CLONE_{ns.type})" for ns in joined]))
    if config.has_namespace("NEWNS"):
        plan = plan_mounts(config)
        whys = {
            "prepare rootfs": "no mount may propagate back to the host, and pivot_root needs the rootfs to be a mount",
            "mounts": "each mount lands on the O_PATH fd of its destination opened inside the rootfs "
                      "(/proc/self/fd/N), so a symlink in the image cannot send it to the host",
            "devices": "the container's /dev is a fresh tmpfs: only the device nodes it is allowed get made",
            "pivot_root": "the rootfs becomes /, and the host's tree is detached: nothing of it stays reachable",
            "restrict paths": "files of /proc and /sys that would let root reach the host are made read-only "
                              "or hidden",
        }
        for step, calls in plan.steps:
            if step == "restrict paths":
                parts.extend(_middle(config))
            parts.append(Part(step, "child", whys.get(step, ""),
                              [call.text() + (f"  ({call.note})" if call.note else "") for call in calls]))
        if not any(step == "restrict paths" for step, _ in plan.steps):
            parts.extend(_middle(config))
        parts.append(Part("mount table", "child", "what /proc/self/mountinfo shows in the container",
                          [f"{p.target} {p.fstype} {p.options()}  ({p.why})" for p in plan.table],
                          {"table": [{"target": p.target, "fstype": p.fstype, "options": p.options(),
                                      "readonly": p.readonly, "why": p.why} for p in plan.table]}))
    else:
        parts.append(Part("chroot", "child", "without a mount namespace the container shares the host's mounts; "
                          "only chroot makes the rootfs its /", [f"chroot(\"{config.rootfs}\")", "chdir(\"/\")"]))
        parts.extend(_middle(config))
    return parts


def _middle(config: Config) -> list[Part]:
    """The steps between pivot_root and restrict paths."""
    parts = []
    if config.hostname:
        parts.append(Part("hostname", "child", "its own UTS namespace: the host's name does not change",
                          [f"sethostname(\"{config.hostname}\")"]))
    new_net = config.namespace("NEWNET")
    if new_net is not None and not new_net.path:
        parts.append(Part("loopback", "child", "a new network namespace has only lo, and it is down",
                          ["ioctl(SIOCSIFFLAGS, \"lo\", IFF_UP)"]))
    if config.sysctl:
        parts.append(Part("sysctl", "child", "kernel settings of the container's own namespaces",
                          [f"write(\"/proc/sys/{key.replace('.', '/')}\", \"{value}\")"
                           for key, value in config.sysctl]))
    return parts


def _resolve_uid(config: Config) -> tuple[int | None, str]:
    from nsinit import identity
    from nsinit.errors import NsinitError
    from nsinit.mount.paths import resolve_in_root

    try:
        ident = identity.resolve_user(config.user, config.additional_groups,
                                      etc=resolve_in_root(config.rootfs, "/etc"))
    except (NsinitError, OSError) as err:
        return None, str(err)
    return ident.uid, f"uid {ident.uid} gid {ident.gid} groups {list(ident.groups)}"


def _finalize(config: Config) -> list[Part]:
    from nsinit import capabilities

    parts = []
    if not config.no_new_keyring:
        parts.append(Part("keyring", "child", "a session keyring of its own: the caller's keys (root's on the "
                          "host) are not the container's to read or to add to", [
                              "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)"]))
    parts.append(Part("stdio", "child", "a stdio fd that is /dev/null is reopened read-write from the "
                      "container's own, as runc does", ["open(\"/dev/null\", O_RDWR), dup2 over fds 0-2 that are it"]))
    parts += [Part("close fds", "child", "every fd the caller passed in is closed (but the sync socket and the "
                  "trampoline) before the image's files are read or its cwd entered (CVE-2024-21626)",
                  ["close_range(3.., all but the sync socket and the trampoline)"])]
    if config.rlimits:
        parts.append(Part("rlimits", "child", "limits per process, inherited by everything the command starts",
                          [f"setrlimit({names.RLIMIT_NAMES.get(r.type, r.type)}, "
                           f"{{{_limit(r.soft)}, {_limit(r.hard)}}})" for r in config.rlimits]))
    if config.oom_score_adj is not None:
        parts.append(Part("oom_score_adj", "child", "how eagerly the OOM killer picks this container",
                          [f"write(\"/proc/self/oom_score_adj\", \"{config.oom_score_adj}\")"]))
    uid, who = _resolve_uid(config)
    parts.append(Part("user", "child", f"\"{config.user}\" is looked up in the container's own /etc/passwd: {who}", []))
    if config.apparmor_profile or config.process_label:
        parts.append(Part("security label", "child", "the LSM label the command is exec'd into",
                          [f"write(\"/proc/self/attr/exec\", \"{config.apparmor_profile or config.process_label}\")"]))
    caps = config.capabilities
    last = capabilities.last_cap()
    supported = (1 << (last + 1)) - 1
    dropped = [names.CAPABILITY_NAMES.get(bit, str(bit)) for bit in range(last + 1)
               if not capabilities.names_to_mask(caps.bounding) & supported & (1 << bit)]
    calls = [f"prctl(PR_CAPBSET_DROP, {name})" for name in dropped]
    calls += ["prctl(PR_SET_KEEPCAPS, 1)", "setgroups(…)", "setresgid(…)",
              f"setresuid({uid if uid is not None else '…'})",
              "prctl(PR_SET_KEEPCAPS, 0)",
              f"capset(effective={cap_mask_hex(capabilities.names_to_mask(caps.effective) & supported)}, "
              f"permitted={cap_mask_hex(capabilities.names_to_mask(caps.permitted) & supported)}, "
              f"inheritable={cap_mask_hex(capabilities.names_to_mask(caps.inheritable) & supported)})",
              "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)"]
    calls += [f"prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, {name})" for name in caps.ambient]
    if config.no_new_privileges:
        calls.append("prctl(PR_SET_NO_NEW_PRIVS, 1)")
    calls.append(f"prctl(PR_SET_PDEATHSIG, {config.parent_death_signal})")
    status = caps_after_exec(caps, uid if uid is not None else 0, config.no_new_privileges, last)
    parts.append(Part("capabilities", "child", "root's power is split into capabilities; the bounding set caps "
                      "what any later execve can give, the rest is what the command starts with",
                      calls, {"sets": {key: {"mask": cap_mask_hex(mask), "names": capabilities.mask_to_names(mask)}
                                       for key, mask in status.items()},
                              "dropped_from_bounding": dropped}))
    parts.append(Part("cwd", "child", "the working directory, inside the container",
                      [f"chdir(\"{config.working_dir}\")"]))
    parts.append(Part("signals", "child", "signal dispositions and mask reset, every fd above 2 closed on exec: "
                      "nothing of nsinit leaks into the command", ["rt_sigaction(1..64, SIG_DFL)",
                                                                    "sigprocmask(SIG_SETMASK, {})",
                                                                    "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)"]))
    parts.extend(_seccomp(config))  # last before execve: nsinit's own steps are not filtered
    parts.append(Part("exec", "child", "the init becomes the command: PID 1 of the container (its end closes "
                      "the sync socket, which tells the supervisor it worked)",
                      ["execveat(the nsinit-exec memfd, …)", "execve(COMMAND, ARGS, ENV)  (by the trampoline)"],
                      {"environment": list(config.environment)}))
    parts.append(Part("after exec", "child", "what the kernel's execve rules leave: /proc/self/status of the command",
                      [f"{key}:\t{cap_mask_hex(mask)}" for key, mask in status.items()]
                      + [f"NoNewPrivs:\t{1 if config.no_new_privileges else 0}"]))
    return parts


def _seccomp(config: Config) -> list[Part]:
    """The syscall filter, if this nsinit's config model has one (the field
    ``seccomp``: SeccompConfig with default_action and syscalls rules)."""
    profile = getattr(config, "seccomp", None)
    if not profile:
        return []
    default = _seccomp_action(profile.default_action, getattr(profile, "default_errno_ret", None))
    calls = [f"seccomp(SECCOMP_SET_MODE_FILTER, {'|'.join(getattr(profile, 'flags', ())) or '0'}, "
             f"default {default}, {len(profile.syscalls)} rules)"]
    for rule in profile.syscalls:
        args = " && ".join(f"arg{a.index} {a.op} {a.value}" + (f" ({a.value_two})" if a.op == "masked_eq" else "")
                           for a in getattr(rule, "args", ()))
        calls.append(f"  {','.join(rule.names)}{' if ' + args if args else ''} → "
                     f"{_seccomp_action(rule.action, getattr(rule, 'errno_ret', None))}")
    return [Part("seccomp", "child", "a filter the kernel runs on every system call of the command, "
                 "loaded last so that nsinit's own steps are not filtered", calls,
                 {"default_action": profile.default_action, "rules": len(profile.syscalls)})]


def _seccomp_action(action: str, errno_ret: int | None) -> str:
    if action == "errno":
        import errno

        code = 1 if errno_ret is None else errno_ret
        return f"errno {errno.errorcode.get(code, code)}"
    return action


def _limit(value: int) -> str:
    return "RLIM_INFINITY" if value == -1 else str(value)


def to_json(parts: list[Part], config: Config) -> dict[str, Any]:
    return {"config": config.source, "rootfs": config.rootfs, "steps": [p.to_dict() for p in parts]}


def to_text(parts: list[Part]) -> str:
    lines = []
    for number, part in enumerate(parts, 1):
        lines.append(f"{number:>2}. {part.step}  [{part.side}]")
        lines.append(f"      why: {part.why}")
        for call in part.calls:
            lines.append(f"      {call}")
        sets = part.detail.get("sets")
        if sets:
            for key, value in sets.items():
                lines.append(f"      {key} {value['mask']}  {' '.join(value['names']) or '(none)'}")
    return "\n".join(lines) + "\n"
