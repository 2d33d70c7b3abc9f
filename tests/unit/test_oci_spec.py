"""nsinit.oci.spec: config.json as podman 4.3 and containerd 1.6 write it -> the one Config.

The files under data/oci were written on this machine by the tools themselves:
podman 4.3.1 (`podman --runtime WRAPPER run --rootfs DIR ...`, the wrapper
copying the bundle's config.json and failing), containerd 1.6.20 (`ctr run
--runtime io.containerd.runc.v2 --runc-binary WRAPPER`, a private containerd)
and `ctr oci spec` (containerd's default spec, no process.args).  Their host
paths (rootfs, bind sources) are pointed at this test's directories.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nsinit.config import names
from nsinit.config.model import DeviceConfig, IdMap, MountConfig, NamespaceConfig, Rlimit
from nsinit.errors import ConfigError
from nsinit.oci.hooks import Hook
from nsinit.oci.spec import load_bundle, parse_spec

DATA = Path(__file__).parent / "data" / "oci"


def captured(name: str, tmp_path: Path, *, keep_seccomp: bool = False) -> dict:
    """A captured config.json with its host paths moved under tmp_path."""
    data = json.loads((DATA / f"{name}.json").read_text())
    if not keep_seccomp:
        data.get("linux", {}).pop("seccomp", None)
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    data["root"]["path"] = "rootfs"  # relative: to the bundle
    for i, mount in enumerate(data.get("mounts", [])):
        if mount.get("type") == "bind":
            source = tmp_path / f"bind{i}"
            source.mkdir(exist_ok=True)
            mount["source"] = str(source)
    return data


def parse(tmp_path: Path, data: dict, container_id: str = "c1"):
    return parse_spec(data, "config.json", str(tmp_path), container_id)


def errors(tmp_path: Path, data: dict) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        parse(tmp_path, data)
    return str(excinfo.value).splitlines()


def minimal(tmp_path: Path, **changes: object) -> dict:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    data = {"ociVersion": "1.1.0", "root": {"path": "rootfs"},
            "process": {"args": ["/bin/sh"], "cwd": "/"},
            "linux": {"namespaces": [{"type": "mount"}]}}
    data.update(changes)
    return data


# --- what podman writes ------------------------------------------------------

def test_podman_default_run(tmp_path: Path) -> None:
    spec, warnings = parse(tmp_path, captured("podman-default", tmp_path))
    config = spec.config
    assert warnings == []
    assert spec.args == ("/bin/true",) and spec.oci_version == "1.0.2-dev"
    assert config.rootfs == str(tmp_path / "rootfs") and not config.readonlyfs
    assert config.user == "0:0" and config.additional_groups == ("10",) and config.umask == 0o022
    assert config.environment[0].startswith("PATH=") and "HOME=/root" in config.environment
    assert config.working_dir == "/" and config.tty is False
    assert len(config.capabilities.bounding) == 11 and config.capabilities.inheritable == ()
    assert config.capabilities.effective == config.capabilities.permitted == config.capabilities.bounding
    assert config.rlimits == (Rlimit(names.RLIMITS["RLIMIT_NOFILE"], 1024, 1024),
                              Rlimit(names.RLIMITS["RLIMIT_NPROC"], 1024, 1024))
    assert config.hostname == "607ef72ba9c3"
    # The namespaces as listed; the network one joined by path (podman's netns).
    assert config.namespaces == (
        NamespaceConfig("NEWPID"),
        NamespaceConfig("NEWNET", "/run/netns/netns-347a659b-8e4c-87de-27ee-c02fe3fb4b29"),
        NamespaceConfig("NEWIPC"), NamespaceConfig("NEWUTS"), NamespaceConfig("NEWNS"))
    assert config.networks == ()  # a joined netns is podman's to configure
    # Exactly config.json's mounts, in its order: no container.json default is added.
    assert [m.destination for m in config.mounts] == [
        "/proc", "/dev", "/sys", "/dev/pts", "/dev/mqueue", "/etc/resolv.conf", "/etc/hosts", "/dev/shm",
        "/run/.containerenv", "/etc/hostname", "/sys/fs/cgroup"]
    devpts = config.mounts[3]
    assert devpts.device == "devpts" and devpts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert devpts.flags == names.MS_NOSUID | names.MS_NOEXEC
    hosts = config.mounts[6]
    assert hosts.device == "bind" and hosts.source == str(tmp_path / "bind6")
    assert hosts.flags == names.MS_BIND  # "bind": not recursive, read-write
    assert hosts.propagation == names.MS_PRIVATE | names.MS_REC
    assert config.mounts[-1].device == "cgroup" and config.mounts[-1].flags & names.MS_RDONLY
    assert len(config.mask_paths) == 11 and "/sys/dev/block" in config.mask_paths
    assert len(config.readonly_paths) == 6 and "/proc/asound" in config.readonly_paths
    assert config.sysctl == (("net.ipv4.ping_group_range", "0 0"),)
    assert config.cgroups.path.startswith("/libpod_parent/libpod-607ef72b")
    resources = config.cgroups.resources
    assert resources.pids_limit == 2048
    assert resources.allowed_devices == resources.denied_devices == () and not resources.allow_all_devices
    assert config.parent_death_signal == 0  # nobody supervises: the runtime exits after create
    assert dict(spec.annotations)["io.container.manager"] == "libpod"
    assert config.devices == DEFAULT_DEVICE_NODES


DEFAULT_DEVICE_NODES = (
    DeviceConfig("c", "/dev/null", 1, 3), DeviceConfig("c", "/dev/zero", 1, 5),
    DeviceConfig("c", "/dev/full", 1, 7), DeviceConfig("c", "/dev/tty", 5, 0),
    DeviceConfig("c", "/dev/urandom", 1, 9), DeviceConfig("c", "/dev/random", 1, 8),
)


def test_podman_with_many_options(tmp_path: Path) -> None:
    data = captured("podman-many", tmp_path)
    spec, _ = parse(tmp_path, data)
    config = spec.config
    assert spec.args == ("/bin/sh", "-c", "echo hi")
    assert config.readonlyfs and config.tty is True
    assert config.user == "1000:1000" and config.additional_groups == ("1000", "100")
    assert "FOO=bar" in config.environment and config.working_dir == "/tmp"
    caps = config.capabilities
    assert "CAP_NET_ADMIN" in caps.bounding and "CAP_CHOWN" not in caps.bounding
    assert caps.effective == caps.permitted == caps.inheritable == caps.ambient == ("CAP_NET_ADMIN",)
    assert config.no_new_privileges and config.oom_score_adj == 100 and config.hostname == "box"
    assert ("net.ipv4.ip_forward", "1") in config.sysctl
    volume = next(m for m in config.mounts if m.destination == "/vol")
    assert volume.flags == names.MS_BIND | names.MS_REC | names.MS_RDONLY
    hosts = next(m for m in config.mounts if m.destination == "/etc/hosts")  # --read-only: ro binds
    assert hosts.flags == names.MS_BIND | names.MS_RDONLY | names.MS_NOSUID | names.MS_NOEXEC | names.MS_NODEV
    tmp = next(m for m in config.mounts if m.destination == "/tmp")
    assert tmp.device == "tmpfs" and tmp.flags == names.MS_NOSUID | names.MS_NODEV and tmp.data == ""
    # --read-only: /tmp, /run and /var/tmp start with a copy of what they cover (runc's tmpcopyup).
    assert [m.destination for m in config.mounts if m.copy_up] == ["/tmp", "/run", "/var/tmp"]
    resources = config.cgroups.resources
    assert (resources.memory, resources.memory_reservation, resources.memory_swap) == (
        64 << 20, 32 << 20, 128 << 20)
    assert (resources.cpu_shares, resources.cpu_quota, resources.cpu_period) == (512, 50000, 100000)
    assert resources.cpuset_cpus == "0" and resources.cpuset_mems == "0" and resources.pids_limit == 100
    assert resources.allowed_devices == (DeviceConfig("c", "", 10, 229, "rwm"),)
    # linux.devices: /dev/fuse with fileMode 8576 (S_IFCHR|0600), after the default nodes.
    assert config.devices == DEFAULT_DEVICE_NODES + (DeviceConfig("c", "/dev/fuse", 10, 229, file_mode=0o600),)


def test_tmpcopyup_is_for_tmpfs_only_and_in_the_recorded_form(tmp_path: Path) -> None:
    from nsinit.config import config_to_dict, parse_config

    (tmp_path / "data").mkdir()
    data = minimal(tmp_path, mounts=[{"destination": "/d", "type": "bind", "source": "data",
                                      "options": ["rbind", "tmpcopyup"]}])
    assert errors(tmp_path, data) == ['config.json: mounts[0]: "tmpcopyup" applies to tmpfs mounts only']
    data["mounts"] = [{"destination": "/t", "type": "tmpfs", "options": ["tmpcopyup", "size=1m"]}]
    config = parse(tmp_path, data)[0].config
    assert config.mounts[0].copy_up and config.mounts[0].data == "size=1m"
    # The recorded form (state.json, `nsinit config`) keeps it, and reads back the same.
    again = parse_config(config_to_dict(config), "container.json", str(tmp_path))[0]
    assert again.mounts[-1] == config.mounts[0]


def test_runcs_recursive_mount_attributes_are_refused_by_name(tmp_path: Path) -> None:
    data = minimal(tmp_path, mounts=[{"destination": "/t", "type": "tmpfs", "options": ["rro"]}])
    assert errors(tmp_path, data) == ['config.json: mounts[0].options[0]: "rro" is not supported']


def test_podman_network_ns_path_and_host_pid(tmp_path: Path) -> None:
    config = parse(tmp_path, captured("podman-netns", tmp_path))[0].config
    assert not config.has_namespace("NEWPID")  # --pid host: no pid namespace listed
    assert config.namespace("NEWNET") == NamespaceConfig("NEWNET", "/run/netns/ocicap")


def test_podman_seccomp_profile_is_read_by_the_filters_parser(tmp_path: Path) -> None:
    seccomp = parse(tmp_path, captured("podman-default", tmp_path, keep_seccomp=True))[0].config.seccomp
    assert seccomp.default_action == "errno" and seccomp.default_errno_ret == 38
    assert seccomp.architectures == ("x86_64", "x86", "x32")
    assert any("swapoff" in rule.names and rule.errno_ret == 1 for rule in seccomp.syscalls)
    assert any(rule.args for rule in seccomp.syscalls)  # podman's rules with argument comparisons
    data = minimal(tmp_path)
    data["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOPE"}
    assert errors(tmp_path, data)[0].startswith("config.json: linux.seccomp.defaultAction: ")


# --- what containerd writes --------------------------------------------------

def test_containerd_run(tmp_path: Path) -> None:
    spec, warnings = parse(tmp_path, captured("containerd-run", tmp_path), "cap1")
    config = spec.config
    assert warnings == [] and spec.args == ("/bin/true",)
    assert config.environment == ()  # no env: an empty environment, as runc gives
    assert config.no_new_privileges and len(config.capabilities.bounding) == 14
    assert config.rlimits == (Rlimit(names.RLIMITS["RLIMIT_NOFILE"], 1024, 1024),)
    # A new network namespace: loopback up, as runc does it.
    assert config.namespace("NEWNET") == NamespaceConfig("NEWNET")
    assert [n.type for n in config.networks] == ["loopback"]
    assert [m.destination for m in config.mounts] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                                      "/sys", "/run"]
    assert config.cgroups.path == "/default/cap1" and config.cgroups.resources.cpu_shares == 1024
    allowed = config.cgroups.resources.allowed_devices
    assert len(allowed) == 9 and DeviceConfig("c", "", 136, -1, "rwm") in allowed  # minor absent: all


def test_containerd_with_options(tmp_path: Path) -> None:
    config = parse(tmp_path, captured("containerd-many", tmp_path))[0].config
    assert config.environment == ("FOO=bar",) and config.working_dir == "/tmp"
    assert config.cgroups.resources.memory == 64 << 20
    assert "CAP_NET_ADMIN" in config.capabilities.effective


def test_containerd_default_spec_has_no_command(tmp_path: Path) -> None:
    data = captured("ctr-oci-spec", tmp_path)
    assert errors(tmp_path, data) == ["config.json: process.args: must name the command to run"]
    data["process"]["args"] = ["/bin/sh"]
    config = parse(tmp_path, data)[0].config
    assert config.rootfs == str(tmp_path / "rootfs")


# --- the OCI meaning of each part --------------------------------------------

def test_no_cgroups_path_names_the_cgroup_after_the_container(tmp_path: Path) -> None:
    config = parse(tmp_path, minimal(tmp_path), "web")[0].config
    assert config.cgroups.name == "web" and config.cgroups.path == ""


def test_uid_and_gid_mappings_with_a_user_namespace(tmp_path: Path) -> None:
    data = minimal(tmp_path, linux={
        "namespaces": [{"type": "mount"}, {"type": "user"}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    })
    config = parse(tmp_path, data)[0].config
    assert config.uid_mappings == config.gid_mappings == (IdMap(0, 100000, 65536),)
    del data["linux"]["gidMappings"]
    assert errors(tmp_path, data) == ['config.json: linux.gidMappings: is required by a new "user" namespace']


def test_absent_capabilities_are_none_at_all(tmp_path: Path) -> None:
    caps = parse(tmp_path, minimal(tmp_path))[0].config.capabilities
    assert caps.bounding == caps.effective == caps.permitted == ()


def test_without_a_mount_namespace_the_mounts_are_ignored_and_said_so(tmp_path: Path) -> None:
    """runtime-tools' linux_ns_itype: every namespace the host's; nsinit chroots into
    root.path, and mounts would go to the host's mount table (runc ignores them)."""
    data = minimal(tmp_path)
    data["linux"] = {}
    data["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    spec, warnings = parse(tmp_path, data)
    assert spec.config.mounts == () and not spec.config.has_namespace("NEWNS")
    assert warnings == ['config.json: mounts: ignored: there is no mount namespace (linux.namespaces has no '
                        '"mount"); they would be mounted on the host']
    data["mounts"] = [{"destination": "proc", "type": "proc"}]   # still checked
    assert errors(tmp_path, data) == ["config.json: mounts[0].destination: must be an absolute path"]


def test_umask_as_a_number_and_rootfs_propagation(tmp_path: Path) -> None:
    data = minimal(tmp_path)
    data["process"]["user"] = {"uid": 5, "gid": 6, "umask": 63}
    data["linux"]["rootfsPropagation"] = "rprivate"
    config = parse(tmp_path, data)[0].config
    assert config.umask == 0o077 and config.user == "5:6" and config.rootfs_propagation == 0
    data["linux"]["rootfsPropagation"] = "rshared"
    assert parse(tmp_path, data)[0].config.rootfs_propagation == names.MOUNT_PROPAGATION["rshared"]
    data["linux"]["rootfsPropagation"] = "sharde"
    assert errors(tmp_path, data)[0].startswith('config.json: linux.rootfsPropagation: "sharde" is not one of private,')


def test_a_bind_without_options_is_read_write_and_not_recursive(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    data = minimal(tmp_path, mounts=[{"destination": "/data", "type": "bind", "source": "data"}])
    mount = parse(tmp_path, data)[0].config.mounts[0]
    assert mount == MountConfig(str(tmp_path / "data"), "/data", "bind", names.MS_BIND)


def test_hooks_are_read(tmp_path: Path) -> None:
    data = minimal(tmp_path, hooks={
        "prestart": [{"path": "/bin/a"}],
        "poststop": [{"path": "/bin/b", "args": ["b", "-x"], "env": ["A=1"], "timeout": 3}],
    })
    hooks = parse(tmp_path, data)[0].hooks
    assert hooks.prestart == (Hook("/bin/a"),)
    assert hooks.poststop == (Hook("/bin/b", ("b", "-x"), ("A=1",), 3),)
    data["hooks"]["poststart"] = [{"path": "rel"}, {"path": "/x", "timeout": 0}]
    assert errors(tmp_path, data) == [
        "config.json: hooks.poststart[0].path: must be an absolute path"]


def test_unknown_keys_are_warnings_as_the_spec_says(tmp_path: Path) -> None:
    data = minimal(tmp_path, future={"x": 1})
    data["process"]["newThing"] = True
    _, warnings = parse(tmp_path, data)
    assert warnings == ['config.json: unknown key "future" ignored',
                        'config.json: unknown key "process.newThing" ignored']


def test_other_platforms_sections_are_ignored(tmp_path: Path) -> None:
    data = minimal(tmp_path, windows={"layerFolders": ["C:\\x"]})
    data["process"]["user"] = {"uid": 0, "gid": 0, "username": "ContainerAdministrator"}
    assert parse(tmp_path, data)[1] == []


@pytest.mark.parametrize("where, value, expected", [
    ("linux.intelRdt", {"closID": "x"}, "config.json: linux.intelRdt: not supported"),
    ("linux.personality", {"domain": "LINUX32"}, "config.json: linux.personality: not supported"),
    ("linux.timeOffsets", {"monotonic": {"secs": 1}}, "config.json: linux.timeOffsets: not supported"),
    ("domainname", "example.org", "config.json: domainname: not supported"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_IDLE"}, "config.json: process.ioPriority: not supported"),
    ("process.scheduler", {"policy": "SCHED_FIFO"}, "config.json: process.scheduler: not supported"),
    ("linux.resources.memory.kernel", 1 << 20, "config.json: linux.resources.memory.kernel: not supported"),
    ("linux.resources.cpu.realtimeRuntime", 1000,
     "config.json: linux.resources.cpu.realtimeRuntime: not supported"),
    ("linux.resources.blockIO.weightDevice", [{"major": 8, "minor": 0, "weight": 10}],
     "config.json: linux.resources.blockIO.weightDevice: not supported"),
    ("linux.resources.network", {"classID": 1}, "config.json: linux.resources.network: not supported"),
    ("linux.resources.unified", {"memory.high": "1G"}, "config.json: linux.resources.unified: not supported"),
])
def test_a_field_nsinit_cannot_honour_is_refused_by_its_path(
        tmp_path: Path, where: str, value: object, expected: str) -> None:
    data = minimal(tmp_path)
    target = data
    *parents, last = where.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    assert errors(tmp_path, data) == [expected]


@pytest.mark.parametrize("change, expected", [
    ({"linux": {"namespaces": [{"type": "mount"}, {"type": "pidd"}]}},
     'config.json: linux.namespaces[1].type: unknown namespace "pidd" (expected one of pid, network, mount, '
     'ipc, uts, user, cgroup, time)'),
    ({"mounts": [{"destination": "relative", "type": "tmpfs"}]},
     "config.json: mounts[0].destination: must be an absolute path"),
    ({"mounts": [{"destination": "/x", "type": "bind", "source": "/no/such/dir"}]},
     'config.json: mounts[0].source: "/no/such/dir" does not exist'),
    ({"mounts": [{"destination": "/x"}]},
     'config.json: mounts[0].type: is required (or a "bind" or "rbind" option)'),
    ({"ociVersion": "2.0.0"}, 'config.json: ociVersion: "2.0.0" is not supported (this runtime reads 1.0.x and 1.1.x)'),
    ({"root": {}}, "config.json: root.path: is required"),
    ({"hostname": "h"}, 'config.json: hostname: requires a "uts" namespace in linux.namespaces'),
    ({"linux": {"maskedPaths": ["/proc/kcore"]}},
     'config.json: linux.maskedPaths: requires a "mount" namespace in linux.namespaces'),
    ({"linux": {}, "root": {"path": "rootfs", "readonly": True}},
     'config.json: root.readonly: requires a "mount" namespace in linux.namespaces'),
    ({"linux": {"namespaces": [{"type": "mount"}], "cgroupsPath": "machine.slice:libpod:abc"}},
     'config.json: linux.cgroupsPath: "machine.slice:libpod:abc" is the systemd form (slice:prefix:name); '
     "nsinit manages cgroupfs only (no systemd as PID 1 here)"),
    ({"linux": {"namespaces": [{"type": "mount"}], "sysctl": {"kernel.panic": "1"}}},
     "config.json: linux.sysctl.kernel.panic: not namespaced, refusing to change the host"),
])
def test_bad_configs_name_the_field(tmp_path: Path, change: dict, expected: str) -> None:
    assert errors(tmp_path, minimal(tmp_path, **change)) == [expected]


def test_a_nul_or_a_lone_surrogate_anywhere_is_refused(tmp_path: Path) -> None:
    data = minimal(tmp_path, annotations={"k": "a\x00b"})
    data["process"]["env"] = ["A=\ud800"]
    lines = errors(tmp_path, data)
    assert len(lines) == 2 and lines[0].startswith("config.json: process.env[0]: ")
    assert lines[1].startswith("config.json: annotations.k: ")


def test_a_missing_section_is_one_error(tmp_path: Path) -> None:
    assert errors(tmp_path, {"ociVersion": "1.0.2"}) == ["config.json: process: is required",
                                                         "config.json: root: is required"]


def test_every_bad_field_at_once(tmp_path: Path) -> None:
    data = minimal(tmp_path, linux={"namespaces": [{"type": "mount"}], "intelRdt": {"closID": "a"}})
    data["process"]["rlimits"] = [{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]
    data["process"]["cwd"] = "relative"
    assert errors(tmp_path, data) == [
        "config.json: linux.intelRdt: not supported",
        "config.json: process.cwd: must be an absolute path",
        'config.json: process.rlimits[0].type: unknown rlimit "RLIMIT_NOPE"',
    ]


def test_device_rules_in_order(tmp_path: Path) -> None:
    def rules(*entries: dict):
        data = minimal(tmp_path)
        data["linux"]["resources"] = {"devices": list(entries)}
        return parse(tmp_path, data)[0].config.cgroups.resources

    deny_all = {"allow": False, "access": "rwm"}
    allow_all = {"allow": True, "access": "rwm"}
    assert rules(deny_all, allow_all).allow_all_devices is True          # privileged
    assert rules(allow_all, deny_all).allow_all_devices is None          # the last one wins
    kept = rules(allow_all, deny_all, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                 {"allow": False, "type": "b", "major": 8, "access": "m"})
    assert kept.allowed_devices == (DeviceConfig("c", "", 1, 3, "rw"),)
    assert kept.denied_devices == (DeviceConfig("b", "", 8, -1, "m"),)
    data = minimal(tmp_path)
    data["linux"]["resources"] = {"devices": [deny_all, {"allow": False, "type": "c", "major": 1},
                                              {"allow": True, "type": "c", "major": 1, "minor": 3}]}
    assert errors(tmp_path, data) == [
        "config.json: linux.resources.devices[2]: an allow after a deny is not supported (list the denies last)"]


def test_load_bundle_reads_config_json_and_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_bundle(str(tmp_path))
    assert str(excinfo.value) == f"{tmp_path}/config.json: No such file or directory"
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError) as excinfo:
        load_bundle(str(tmp_path))
    assert str(excinfo.value).startswith(f"{tmp_path}/config.json: invalid JSON at line 1 column 2")
    (tmp_path / "config.json").write_text(json.dumps(minimal(tmp_path)))
    spec, _ = load_bundle(str(tmp_path), "c9")
    assert spec.bundle == str(tmp_path) and spec.config.cgroups.name == "c9"
    with pytest.raises(ConfigError) as excinfo:
        load_bundle(str(tmp_path / "nope"))
    assert str(excinfo.value) == f"{tmp_path}/nope: the bundle directory does not exist"


def test_the_container_json_loader_and_this_one_agree_on_a_part(tmp_path: Path) -> None:
    """One parser per part: the same mount reads the same through both doors."""
    from nsinit.config import parse_config

    (tmp_path / "rootfs").mkdir(exist_ok=True)
    entry = {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "ro"]}
    oci = parse(tmp_path, minimal(tmp_path, mounts=[copy.deepcopy(entry)]))[0].config.mounts[0]
    old = parse_config({"rootfs": "rootfs", "mounts": [entry]}, "container.json", str(tmp_path))[0]
    assert oci == old.mounts[-1]


# --- runc update's LinuxResources ----------------------------------------------

def test_update_resources_map_onto_container_update() -> None:
    from nsinit.oci.spec import parse_resources_update

    changes, warnings = parse_resources_update({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": -1},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42}, "blockIO": {"weight": 300},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}, "--resources")
    assert warnings == []
    assert changes == {"memory": 64 << 20, "memory_reservation": 32 << 20, "memory_swap": -1, "cpu_shares": 512,
                       "cpu_quota": 50000, "cpu_period": 100000, "cpuset_cpus": "0", "cpuset_mems": "0",
                       "pids_limit": 42, "blkio_weight": 300, "hugetlb_limit": (("2MB", 1 << 21),)}


def test_update_lifts_a_memory_limit_with_minus_one() -> None:
    from nsinit.oci.spec import parse_resources_update

    assert parse_resources_update({"memory": {"limit": -1}}, "--resources")[0] == {"memory": -1}


@pytest.mark.parametrize("resources, expected", [
    ({"devices": [{"allow": True, "access": "rwm"}]}, "linux.resources.devices: cannot be changed on a live container"),
    ({"unified": {"memory.high": "1G"}}, "linux.resources.unified: not supported"),
    ({"memory": {"kernel": 1 << 20}}, "linux.resources.memory.kernel: not supported"),
    ({"cpu": {"shares": "many"}}, "linux.resources.cpu.shares"),
    ([], "must be a JSON object"),
])
def test_update_refuses_by_name_what_cannot_change(resources: object, expected: str) -> None:
    from nsinit.errors import ConfigError
    from nsinit.oci.spec import parse_resources_update

    with pytest.raises(ConfigError) as raised:
        parse_resources_update(resources, "--resources")
    assert expected in str(raised.value)
