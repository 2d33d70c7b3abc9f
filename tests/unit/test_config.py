"""Unit tests for nsinit.config: every era of container.json, every error rule."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsinit.config import (
    DEFAULT_CAPABILITIES,
    CapabilitySets,
    Config,
    DeviceConfig,
    IdMap,
    MountConfig,
    NamespaceConfig,
    NetworkConfig,
    Rlimit,
    RouteConfig,
    config_to_dict,
    load_config,
    parse_config,
)
from nsinit.config import defaults, names, parse as parse_module, process as process_module
from nsinit.config.recorded import config_from_dict
from nsinit.errors import ConfigError

SAMPLE_2014 = Path(__file__).parent / "data" / "sample-2014.json"
MS = names  # MS_* constants

ALL_DEFAULT_NS = ["NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET"]
USERNS = {
    "namespaces": ALL_DEFAULT_NS + ["NEWUSER"],
    "uid_mappings": [{"container_id": 0, "host_id": 100000, "size": 65536}],
    "gid_mappings": [{"container_id": 0, "host_id": 100000, "size": 65536}],
}


def parse(tmp_path: Path, data: dict) -> tuple[Config, list[str]]:
    return parse_config(data, "container.json", str(tmp_path))


def cfg(tmp_path: Path, **data: object) -> Config:
    return parse(tmp_path, data)[0]


def error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(ConfigError) as excinfo:
        parse(tmp_path, data)
    return str(excinfo.value)


def write(tmp_path: Path, data: object, name: str = "container.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def runnable_sample(tmp_path: Path) -> dict:
    """The 2014 sample with its host-specific parts made local to tmp_path."""
    data = json.loads(SAMPLE_2014.read_text())
    for mount in data["mounts"]:
        source = tmp_path / os.path.basename(mount["source"])
        source.touch()
        mount["source"] = str(source)
    data["networks"] = [n for n in data["networks"] if n["type"] != "veth"]
    del data["context"]["apparmor_profile"]
    return data


def apparmor_enabled_here() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


# --- the 2014 sample ---------------------------------------------------------

def test_sample_2014_as_shipped_names_the_missing_bind_source(tmp_path: Path) -> None:
    data = json.loads(SAMPLE_2014.read_text())
    if os.path.exists(data["mounts"][0]["source"]):
        pytest.skip("this host has the sample's docker files")
    lines = error(tmp_path, data).splitlines()
    assert lines[0].startswith('container.json: mounts[0].source: "/var/lib/docker/containers/')
    assert lines[0].endswith('/resolv.conf" does not exist')
    assert all(line.startswith("container.json: mounts[") for line in lines)  # each missing source


def test_sample_2014_runnable_variant(tmp_path: Path) -> None:
    config, warnings = parse(tmp_path, runnable_sample(tmp_path))
    assert warnings == []
    assert config.rootfs == os.path.realpath(tmp_path)
    assert config.hostname == "koye" and config.tty is True
    assert [ns.type for ns in config.namespaces] == ALL_DEFAULT_NS
    assert config.environment[1] == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert "CAP_SYS_ADMIN" not in config.capabilities.bounding
    from nsinit.capabilities import held_by_caller

    dropped = {"CAP_" + name for name in json.loads(SAMPLE_2014.read_text())["capabilities_mask"]}
    assert len(dropped) == 15
    # The 37 capabilities of 2014 that nsinit holds, minus the 15, never DAC_READ_SEARCH.
    assert config.capabilities.bounding == tuple(
        n for n in CAPS_2014 if n in held_by_caller() and n not in dropped | {"CAP_DAC_READ_SEARCH"})
    assert config.mounts[:6] == defaults.DEFAULT_MOUNTS
    assert config.mounts[6] == MountConfig(
        str(tmp_path / "resolv.conf"), "/etc/resolv.conf", "bind",
        MS.MS_BIND | MS.MS_REC | MS.MS_RDONLY, "", MS.MS_PRIVATE | MS.MS_REC,
    )
    assert config.cgroups is not None and config.cgroups.parent == "docker"
    assert config.networks == ()


def test_sample_2014_veth_network(tmp_path: Path) -> None:
    data = runnable_sample(tmp_path)
    data["networks"] = json.loads(SAMPLE_2014.read_text())["networks"]
    (network,) = cfg(tmp_path, **data).networks
    assert network == NetworkConfig(
        type="veth", name="eth0", bridge="docker0", prefix="veth",
        address="172.17.0.2/16", gateway="172.17.42.1", mtu=1500,
    )


def test_sample_2014_apparmor_profile_follows_the_kernel(tmp_path: Path) -> None:
    data = runnable_sample(tmp_path)
    data["context"]["apparmor_profile"] = "docker-default"
    if apparmor_enabled_here():
        assert cfg(tmp_path, **data).apparmor_profile == "docker-default"
    else:
        assert error(tmp_path, data) == (
            "container.json: context.apparmor_profile: AppArmor is not enabled on this kernel"
        )


# --- defaults ----------------------------------------------------------------

def test_empty_config_gets_defaults(tmp_path: Path) -> None:
    config = cfg(tmp_path)
    assert config.rootfs == os.path.realpath(tmp_path)
    assert config.namespaces == defaults.DEFAULT_NAMESPACES
    assert config.mounts == defaults.DEFAULT_MOUNTS
    assert config.devices == defaults.DEFAULT_DEVICES
    assert config.environment == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    assert config.mask_paths == defaults.DEFAULT_MASK_PATHS
    assert config.readonly_paths == defaults.DEFAULT_READONLY_PATHS
    assert (config.user, config.working_dir, config.parent_death_signal) == ("root", "/", 9)
    assert config.cgroups is None and config.oom_score_adj is None


def test_default_capabilities_are_the_14(tmp_path: Path) -> None:
    expected = {
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    }
    assert set(DEFAULT_CAPABILITIES) == expected and len(DEFAULT_CAPABILITIES) == 14
    caps = cfg(tmp_path).capabilities
    assert caps.bounding == caps.effective == caps.permitted == DEFAULT_CAPABILITIES
    assert caps.inheritable == caps.ambient == ()


def test_default_mount_table(tmp_path: Path) -> None:
    by_dest = {m.destination: m for m in defaults.DEFAULT_MOUNTS}
    assert list(by_dest) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert by_dest["/sys"].flags == MS.MS_NOSUID | MS.MS_NOEXEC | MS.MS_NODEV | MS.MS_RDONLY
    assert by_dest["/dev/pts"].data == "newinstance,ptmxmode=0666,mode=0620,gid=5"


def test_name_tables() -> None:
    assert names.CAPABILITIES["CAP_CHOWN"] == 0 and names.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert len(names.CAPABILITIES) == 41
    assert names.RLIMITS["RLIMIT_CPU"] == 0 and names.RLIMITS["RLIMIT_RTTIME"] == 15
    assert names.NAMESPACE_PROC_FILES["NEWNS"] == "mnt"
    assert names.MOUNT_FLAGS["rbind"] == MS.MS_BIND | MS.MS_REC


# --- reading files -----------------------------------------------------------

def test_load_config_reads_root_container_json(tmp_path: Path) -> None:
    write(tmp_path, {"hostname": "box"})
    config, warnings = load_config(str(tmp_path))
    assert config.hostname == "box" and warnings == []
    assert config.source == str(tmp_path / "container.json")


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(str(tmp_path))
    path = tmp_path / "container.json"
    assert str(excinfo.value) == (f'container.json: {path}: No such file or directory (write one with "nsinit spec", '
                                  'or make a rootfs with one: "nsinit rootfs DIR")')


@pytest.mark.parametrize("make, kind", [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: os.symlink("/dev/zero", p), "a character device"),
    (lambda p: os.mkdir(p), "a directory"),
])
def test_load_config_reads_only_a_regular_file(tmp_path: Path, make, kind: str) -> None:
    make(tmp_path / "container.json")
    with pytest.raises(ConfigError) as excinfo:
        load_config(str(tmp_path))
    assert str(excinfo.value) == f"container.json: {tmp_path / 'container.json'}: not a regular file ({kind})"


def test_load_config_refuses_a_huge_file(tmp_path: Path) -> None:
    with open(tmp_path / "container.json", "wb") as f:
        f.truncate(parse_module.MAX_CONFIG_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ConfigError) as excinfo:
        load_config(str(tmp_path))
    assert str(excinfo.value) == f"container.json: {tmp_path / 'container.json'}: larger than 4 MiB, not read"


def test_load_config_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, '{\n  "hostname": "x",\n  oops\n}')
    with pytest.raises(ConfigError) as excinfo:
        load_config(str(tmp_path))
    assert str(excinfo.value).startswith("container.json: invalid JSON at line 3 column 3: ")


def test_load_config_explicit_path_and_relative_rootfs(tmp_path: Path) -> None:
    (tmp_path / "fs").mkdir()
    path = write(tmp_path, {"rootfs": "fs"}, name="my.json")
    config, _ = load_config("/nonexistent-state-dir", str(path))
    assert config.rootfs == os.path.realpath(tmp_path / "fs")


def test_load_config_explicit_path_without_rootfs_runs_the_root_dir(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "here").mkdir()
    path = write(tmp_path / "elsewhere", {"hostname": "x"}, name="c.json")
    config, _ = load_config(str(tmp_path / "here"), str(path))
    assert config.rootfs == str(tmp_path / "here")
    # Without --config the file sits in the root dir: the same directory.
    write(tmp_path / "here", {"hostname": "x"})
    assert load_config(str(tmp_path / "here"))[0].rootfs == str(tmp_path / "here")


def test_rootfs_must_be_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "file").touch()
    assert error(tmp_path, {"rootfs": "nope"}) == (
        f'container.json: rootfs: "{os.path.realpath(tmp_path)}/nope" does not exist'
    )
    assert error(tmp_path, {"rootfs": "file"}).endswith('/file" is not a directory')


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    assert error(tmp_path, [1]) == "container.json: must be a JSON object"  # type: ignore[arg-type]


# --- namespaces --------------------------------------------------------------

@pytest.mark.parametrize("value", [
    ["NEWNS", "NEWPID"],                                         # Feb 2014
    [{"key": "NEWNS", "value": 131072, "enabled": True, "file": "mnt"},
     {"key": "NEWPID", "enabled": True}, {"key": "NEWNET", "enabled": False}],  # Mar 2014
    {"NEWNS": True, "NEWPID": True, "NEWUSER": False},           # May 2014
    [{"type": "NEWNS", "path": ""}, {"type": "NEWPID"}],         # 2015
])
def test_namespace_forms(tmp_path: Path, value: object) -> None:
    config = cfg(tmp_path, namespaces=value)
    assert config.namespaces == (NamespaceConfig("NEWNS"), NamespaceConfig("NEWPID"))
    assert config.clone_flags() == names.CLONE_NEWNS | names.CLONE_NEWPID


def test_namespace_with_path_is_joined_not_cloned(tmp_path: Path) -> None:
    config = cfg(tmp_path, namespaces=[{"type": "NEWNS"}, {"type": "NEWNET", "path": "/proc/1/ns/net"}])
    assert config.namespace("NEWNET") == NamespaceConfig("NEWNET", "/proc/1/ns/net")
    assert config.has_namespace("NEWNET") and not config.has_namespace("NEWPID")
    assert config.clone_flags() == names.CLONE_NEWNS


@pytest.mark.parametrize("value, expected", [
    (["NEWNS", "NEWFOO"], 'namespaces[1]: unknown namespace "NEWFOO"'),
    ({"NEWFOO": True}, 'namespaces.NEWFOO: unknown namespace "NEWFOO"'),
    (["NEWNS", "NEWNS"], 'namespaces[1]: duplicate namespace "NEWNS"'),
    ([{"type": "NEWNET", "path": "proc/1/ns/net"}], "namespaces[0].path: must be an absolute path"),
    ("NEWNS", "namespaces: must be a list or an object"),
])
def test_namespace_errors(tmp_path: Path, value: object, expected: str) -> None:
    assert error(tmp_path, {"namespaces": value}) == f"container.json: {expected}"


# --- capabilities ------------------------------------------------------------

def test_capability_list_is_a_whitelist(tmp_path: Path) -> None:
    caps = cfg(tmp_path, capabilities=["kill", "CAP_chown", "NET_RAW", "KILL"]).capabilities
    assert caps == CapabilitySets(
        bounding=("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"),
        effective=("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"),
        permitted=("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"),
    )


def test_capability_object_form_with_runc_keys(tmp_path: Path) -> None:
    caps = cfg(tmp_path, capabilities={
        "Bounding": ["CHOWN", "KILL"], "Effective": ["KILL"], "Permitted": ["KILL"],
        "Inheritable": ["KILL"], "Ambient": ["KILL"],
    }).capabilities
    assert caps == CapabilitySets(("CAP_CHOWN", "CAP_KILL"), ("CAP_KILL",), ("CAP_KILL",), ("CAP_KILL",), ("CAP_KILL",))


CAPS_2014 = [name for name, bit in names.CAPABILITIES.items() if bit <= names.CAPABILITIES["CAP_BLOCK_SUSPEND"]]


def test_capabilities_mask_list_drops(tmp_path: Path) -> None:
    # In a user namespace the container holds every capability, whatever
    # nsinit holds: the result is the mask's alone.
    caps = cfg(tmp_path, **USERNS, capabilities_mask=["SYS_ADMIN", "MKNOD"]).capabilities
    assert caps.bounding == tuple(n for n in CAPS_2014 if n not in ("CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_DAC_READ_SEARCH"))
    assert caps.bounding == caps.effective == caps.permitted and caps.inheritable == ()


def test_capabilities_mask_map_false_drops(tmp_path: Path) -> None:
    caps = cfg(tmp_path, **USERNS, capabilities_mask={"MKNOD": True, "SYS_ADMIN": False}).capabilities
    assert "CAP_MKNOD" in caps.bounding and "CAP_SYS_ADMIN" not in caps.bounding


@pytest.mark.parametrize("mask", [[], {"DAC_READ_SEARCH": True}, [{"key": "DAC_READ_SEARCH", "enabled": True}]])
def test_a_mask_never_grants_dac_read_search_nor_caps_newer_than_2014(tmp_path: Path, mask: object) -> None:
    # Shocker: open_by_handle_at needs only DAC_READ_SEARCH to read host files.
    config, warnings = parse(tmp_path, {**USERNS, "capabilities_mask": mask})
    assert "CAP_DAC_READ_SEARCH" not in config.capabilities.bounding
    for newer in ("CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"):
        assert newer not in config.capabilities.bounding
    assert len(config.capabilities.bounding) == len(CAPS_2014) - 1
    assert "DAC_READ_SEARCH" in config.capabilities_note
    assert len(warnings) == (1 if mask else 0)
    assert all("DAC_READ_SEARCH is never granted by a mask" in w for w in warnings)


def test_a_mask_keeps_only_what_nsinit_holds(tmp_path: Path) -> None:
    from nsinit.capabilities import held_by_caller

    caps = cfg(tmp_path, capabilities_mask=["MKNOD"]).capabilities
    assert caps.bounding == tuple(n for n in CAPS_2014 if n in held_by_caller()
                                  and n not in ("CAP_MKNOD", "CAP_DAC_READ_SEARCH"))


def test_a_whitelist_may_name_dac_read_search(tmp_path: Path) -> None:
    assert cfg(tmp_path, capabilities=["DAC_READ_SEARCH"]).capabilities.bounding == ("CAP_DAC_READ_SEARCH",)


def test_an_ambient_capability_not_permitted_and_inheritable_is_dropped_with_a_warning(tmp_path: Path) -> None:
    # What `runc spec` writes: ambient without inheritable (runc drops them unsaid).
    config, warnings = parse(tmp_path, {"capabilities": {
        "bounding": ["KILL", "CHOWN"], "permitted": ["KILL", "CHOWN"], "effective": ["KILL"],
        "inheritable": ["CHOWN"], "ambient": ["KILL", "CHOWN"]}})
    assert config.capabilities.ambient == ("CAP_CHOWN",)
    assert warnings == ['container.json: capabilities.ambient[0]: "CAP_KILL" is not raised: '
                        'an ambient capability must also be permitted and inheritable']


@pytest.mark.parametrize("data, expected", [
    ({"capabilities": ["CHOWN", "CAP_FLY"]}, 'capabilities[1]: unknown capability "CAP_FLY"'),
    ({"capabilities": {"bounding": ["fly"]}}, 'capabilities.bounding[0]: unknown capability "fly"'),
    ({"capabilities": {"effective": ["KILL"]}},
     'capabilities.effective[0]: "CAP_KILL" must also be in the permitted set'),
    ({"capabilities": ["KILL"], "capabilities_mask": ["MKNOD"]},
     'capabilities_mask: cannot be combined with "capabilities"'),
    ({"capabilities_mask": {"MKNOD": "no"}}, "capabilities_mask.MKNOD: must be true or false"),
])
def test_capability_errors(tmp_path: Path, data: dict, expected: str) -> None:
    assert error(tmp_path, data) == f"container.json: {expected}"


# --- mounts ------------------------------------------------------------------

def test_2014_mount_is_a_bind(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    config = cfg(tmp_path, mounts=[{"source": "data", "destination": "/data/", "writable": True}])
    assert config.mounts[-1] == MountConfig(str(tmp_path / "data"), "/data", "bind", MS.MS_BIND | MS.MS_REC)


def test_later_mount_int_flags_split_propagation(tmp_path: Path) -> None:
    flags = MS.MS_BIND | MS.MS_REC | MS.MS_PRIVATE
    mounts = [{"source": "/", "destination": "/host", "device": "bind", "flags": flags}]
    (mount,) = cfg(tmp_path, mounts=mounts).mounts[6:]
    assert (mount.flags, mount.propagation) == (MS.MS_BIND | MS.MS_REC, MS.MS_PRIVATE | MS.MS_REC)


def test_mount_flag_names_and_oci_options(tmp_path: Path) -> None:
    mounts = cfg(tmp_path, mounts=[
        {"device": "tmpfs", "source": "tmpfs", "destination": "/run", "flags": ["nosuid", "NODEV"], "data": "mode=755"},
        {"type": "none", "source": "/", "destination": "/mnt", "options": ["rbind", "ro", "rslave", "x=1"]},
    ]).mounts[6:]
    assert mounts[0] == MountConfig("tmpfs", "/run", "tmpfs", MS.MS_NOSUID | MS.MS_NODEV, "mode=755")
    assert mounts[1] == MountConfig("/", "/mnt", "bind", MS.MS_BIND | MS.MS_REC | MS.MS_RDONLY, "x=1",
                                    MS.MS_SLAVE | MS.MS_REC)


def test_configured_mount_replaces_default_at_same_destination(tmp_path: Path) -> None:
    mounts = cfg(tmp_path, mounts=[{"device": "tmpfs", "destination": "/dev//shm/", "data": "size=1m"}]).mounts
    assert [m.destination for m in mounts] == ["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/dev/shm"]
    assert mounts[-1].source == "tmpfs"


def test_devtmpfs_marker_is_dropped(tmp_path: Path) -> None:
    assert cfg(tmp_path, mounts=[{"type": "devtmpfs", "destination": "/dev"}]).mounts == defaults.DEFAULT_MOUNTS


def test_mount_config_is_folded_in(tmp_path: Path) -> None:
    config = cfg(tmp_path, mount_config={
        "no_pivot_root": True, "readonly_fs": True, "mount_label": "",
        "mounts": [{"source": "/", "destination": "/host", "writable": False}],
        "device_nodes": [{"type": 99, "path": "/dev/kmsg", "major_number": 1, "minor_number": 11,
                          "cgroup_permissions": "rwm", "file_mode": 438}],
    })
    assert config.no_pivot_root and config.readonlyfs
    assert config.mounts[-1].destination == "/host" and config.mounts[-1].flags & MS.MS_RDONLY
    assert config.devices[-1] == DeviceConfig("c", "/dev/kmsg", 1, 11)


@pytest.mark.parametrize("mount, expected", [
    ({"source": "/", "destination": "etc"}, "mounts[0].destination: must be an absolute path"),
    ({"source": "/", "destination": "/a/../../etc"}, 'mounts[0].destination: must not contain ".."'),
    ({"source": "/", "destination": "/"}, "mounts[0].destination: must not be the container root"),
    ({"source": "/"}, "mounts[0].destination: is required"),
    ({"device": "bind", "flags": 0, "destination": "/x"}, "mounts[0].source: is required for a bind mount"),
    ({"device": "tmpfs", "destination": "/x", "flags": ["nosuid", "wobbly"]},
     'mounts[0].flags[1]: unknown mount flag "wobbly"'),
    ({"device": "tmpfs", "destination": "/x", "flags": "nosuid"}, "mounts[0].flags: must be a list"),
    ({"device": "tmpfs", "destination": "/x", "flags": ["private", "shared"]},
     "mounts[0]: conflicting propagation flags (choose one of private, slave, shared, unbindable)"),
    ({"device": "tmpfs", "destination": "/x", "propagation_flags": [names.MS_REC]},
     "mounts[0]: recursive propagation flag without private, slave, shared or unbindable"),
    ({"destination": "/x", "data": "a"}, "mounts[0].device: is required"),
    ({"source": "/", "destination": "/x", "writable": True, "flags": 0},
     'mounts[0].writable: cannot be combined with "flags"'),
])
def test_mount_errors(tmp_path: Path, mount: dict, expected: str) -> None:
    assert error(tmp_path, {"mounts": [mount]}) == f"container.json: {expected}"


def test_bind_source_is_relative_to_the_config_dir_and_must_exist(tmp_path: Path) -> None:
    message = error(tmp_path, {"mounts": [{"source": "missing", "destination": "/x"}]})
    assert message == f'container.json: mounts[0].source: "{tmp_path}/missing" does not exist'


# --- devices -----------------------------------------------------------------

def test_configured_device_overrides_default_by_path(tmp_path: Path) -> None:
    devices = cfg(tmp_path, devices=[
        {"type": "c", "path": "/dev/null", "major": 1, "minor": 3, "file_mode": 0o600, "uid": 5, "gid": 6},
        {"type": 112, "path": "/dev/fifo"},
    ]).devices
    assert [d.path for d in devices] == ["/dev/zero", "/dev/full", "/dev/tty", "/dev/urandom", "/dev/random",
                                         "/dev/null", "/dev/fifo"]
    assert devices[-2] == DeviceConfig("c", "/dev/null", 1, 3, "rwm", 0o600, 5, 6)
    assert devices[-1].type == "p"


@pytest.mark.parametrize("device, expected", [
    ({"type": "x", "path": "/dev/x", "major": 1, "minor": 1},
     'devices[0].type: unknown device type "x" (expected c, b, p)'),
    ({"type": 117, "path": "/dev/x", "major": 1, "minor": 1},
     'devices[0].type: unknown device type "117" (expected c, b, p)'),
    ({"type": "c", "path": "/etc/x", "major": 1, "minor": 1}, "devices[0].path: must be under /dev"),
    ({"type": "c", "path": "dev/x", "major": 1, "minor": 1}, "devices[0].path: must be an absolute path"),
    ({"type": "c", "path": "/dev/x", "minor": 1}, "devices[0].major: is required"),
    ({"type": "c", "path": "/dev/x", "major": "1", "minor": 1}, "devices[0].major: must be an integer"),
    ({"type": "c", "path": "/dev/x", "major": 1, "minor": 1, "permissions": "rx"},
     'devices[0].permissions: must be a combination of "r", "w" and "m"'),
])
def test_device_errors(tmp_path: Path, device: dict, expected: str) -> None:
    assert error(tmp_path, {"devices": [device]}) == f"container.json: {expected}"


def test_duplicate_device_path_is_an_error(tmp_path: Path) -> None:
    device = {"type": "c", "path": "/dev/x", "major": 1, "minor": 1}
    assert error(tmp_path, {"devices": [device, device]}) == "container.json: devices[1].path: duplicates devices[0]"


# --- process settings --------------------------------------------------------

def test_process_settings(tmp_path: Path) -> None:
    config = cfg(tmp_path, user=1000, additional_groups=["audio", 44], working_dir="/home/u/",
                 environment=["A=1", "B="], tty=True, no_new_privileges=True, oom_score_adj=-1000,
                 parent_death_signal=15)
    assert (config.user, config.additional_groups, config.working_dir) == ("1000", ("audio", "44"), "/home/u")
    assert config.environment == ("A=1", "B=")
    assert config.tty and config.no_new_privileges
    assert (config.oom_score_adj, config.parent_death_signal) == (-1000, 15)


def test_context_and_readonly_fs_of_2014_are_folded_in(tmp_path: Path) -> None:
    config = cfg(tmp_path, readonly_fs=True, context={"restrictions": "true", "mount_label": ""}, restrict_sys=True)
    assert config.readonlyfs


@pytest.mark.parametrize("data, expected", [
    ({"environment": ["A=1", "JUNK"]}, 'environment[1]: must be "NAME=VALUE"'),
    ({"environment": ["=x"]}, "environment[0]: has an empty variable name"),
    ({"environment": "A=1"}, "environment: must be a list"),
    ({"working_dir": "home"}, "working_dir: must be an absolute path"),
    ({"tty": "yes"}, "tty: must be true or false"),
    ({"hostname": 7}, "hostname: must be a string"),
    ({"oom_score_adj": 1001}, "oom_score_adj: must be between -1000 and 1000"),
    ({"oom_score_adj": True}, "oom_score_adj: must be an integer"),
    ({"parent_death_signal": 65}, "parent_death_signal: must be between 0 and 64"),
    ({"user": -1}, "user: must be at least 0"),
    ({"user": 2**32}, f'user: "{2**32}": uid {2**32} is out of range (0-{2**32 - 2})'),
    ({"user": ":"}, 'user: ":" has no user before the colon (name, uid, name:group or uid:gid)'),
    ({"user": ":1000"}, 'user: ":1000" has no user before the colon (name, uid, name:group or uid:gid)'),
    ({"user": "1000:"}, 'user: "1000:" has no group after the colon (name, uid, name:group or uid:gid)'),
    ({"user": "-1"}, 'user: "-1": user "-1" is neither a name nor a non-negative number'),
    ({"user": "0:-1"}, 'user: "0:-1": group "-1" is neither a name nor a non-negative number'),
    ({"user": "a:b:c"}, 'user: "a:b:c" has more than one colon (name, uid, name:group or uid:gid)'),
    ({"readonlyfs": True, "readonly_fs": False}, 'readonly_fs: conflicts with "readonlyfs"'),
    ({"mask_paths": ["proc/kcore"]}, "mask_paths[0]: must be an absolute path"),
    ({"readonly_paths": "/proc/sys"}, "readonly_paths: must be a list"),
])
def test_process_errors(tmp_path: Path, data: dict, expected: str) -> None:
    assert error(tmp_path, data) == f"container.json: {expected}"


def test_mask_and_readonly_paths_given_replace_defaults(tmp_path: Path) -> None:
    config = cfg(tmp_path, mask_paths=[], readonly_paths=["/proc/sys/"])
    assert config.mask_paths == () and config.readonly_paths == ("/proc/sys",)


# --- user namespace mappings -------------------------------------------------

def test_id_mappings(tmp_path: Path) -> None:
    config = cfg(tmp_path, **USERNS)
    assert config.uid_mappings == (IdMap(0, 100000, 65536),)
    assert config.clone_flags() & names.CLONE_NEWUSER


@pytest.mark.parametrize("mappings, expected", [
    ([{"container_id": 0, "host_id": 1000, "size": 0}], "uid_mappings[0].size: must be at least 1"),
    ([{"container_id": 0, "host_id": -1, "size": 1}], "uid_mappings[0].host_id: must be at least 0"),
    ([{"container_id": 0, "host_id": 1000}], "uid_mappings[0].size: is required"),
    ([{"container_id": 0, "host_id": 1000, "size": 10}, {"container_id": 5, "host_id": 5000, "size": 10}],
     "uid_mappings[1].container_id: overlaps uid_mappings[0]"),
    ([{"container_id": 0, "host_id": 1, "size": 1}] * 341, "uid_mappings: must have at most 340 entries"),
])
def test_id_mapping_errors(tmp_path: Path, mappings: list, expected: str) -> None:
    assert error(tmp_path, {**USERNS, "uid_mappings": mappings}) == f"container.json: {expected}"


def test_mappings_need_newuser_and_newuser_needs_both(tmp_path: Path) -> None:
    assert error(tmp_path, {"uid_mappings": USERNS["uid_mappings"]}) == (
        "container.json: uid_mappings: requires the NEWUSER namespace"
    )
    assert error(tmp_path, {**USERNS, "gid_mappings": []}) == (
        "container.json: gid_mappings: is required by the NEWUSER namespace"
    )


# --- rlimits and sysctl ------------------------------------------------------

def test_rlimits(tmp_path: Path) -> None:
    rlimits = cfg(tmp_path, rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
        {"type": "core", "soft": "unlimited", "hard": -1},
        {"type": 6, "soft": 10, "hard": 18446744073709551615},
    ]).rlimits
    assert rlimits == (Rlimit(7, 1024, 4096), Rlimit(4, -1, -1), Rlimit(6, 10, -1))


@pytest.mark.parametrize("rlimit, expected", [
    ({"type": "NOFILE", "soft": 10, "hard": 5}, "rlimits[0].soft: must not exceed the hard limit"),
    ({"type": "NOFILE", "soft": -1, "hard": 5}, "rlimits[0].soft: must not exceed the hard limit"),
    ({"type": "NOFILE", "soft": -2, "hard": 5}, 'rlimits[0].soft: must not be negative (use -1 or "unlimited")'),
    ({"type": "RLIMIT_FLY", "soft": 1, "hard": 1}, 'rlimits[0].type: unknown rlimit "RLIMIT_FLY"'),
    ({"type": 16, "soft": 1, "hard": 1}, "rlimits[0].type: unknown rlimit 16"),
    ({"type": "NOFILE", "soft": "1", "hard": 1}, "rlimits[0].soft: must be an integer"),
])
def test_rlimit_errors(tmp_path: Path, rlimit: dict, expected: str) -> None:
    assert error(tmp_path, {"rlimits": [rlimit]}) == f"container.json: {expected}"


def test_duplicate_rlimit(tmp_path: Path) -> None:
    limit = {"type": "NOFILE", "soft": 1, "hard": 1}
    assert error(tmp_path, {"rlimits": [limit, {**limit, "type": 7}]}) == (
        'container.json: rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"'
    )


def test_sysctl_and_2015_system_properties(tmp_path: Path) -> None:
    assert cfg(tmp_path, sysctl={"net.ipv4.ip_forward": 1, "kernel.shmmax": "100"}).sysctl == (
        ("net.ipv4.ip_forward", "1"), ("kernel.shmmax", "100"),
    )
    assert cfg(tmp_path, system_properties={"fs.mqueue.msg_max": "20"}).sysctl == (("fs.mqueue.msg_max", "20"),)


@pytest.mark.parametrize("data, expected", [
    ({"sysctl": {"kernel.pid_max": "10"}}, "sysctl.kernel.pid_max: not namespaced, refusing to change the host"),
    ({"sysctl": {"net.core.somaxconn": "1"}, "namespaces": ["NEWNS"]},
     "sysctl.net.core.somaxconn: requires the NEWNET namespace"),
    ({"sysctl": {"kernel.sem": "1"}, "namespaces": ["NEWNS"]}, "sysctl.kernel.sem: requires the NEWIPC namespace"),
    ({"system_properties": {"kernel.hostname": "x"}, "namespaces": ["NEWNS"]},
     "system_properties.kernel.hostname: requires the NEWUTS namespace"),
    ({"sysctl": {"net/../x": "1"}}, 'sysctl.net/../x: must be a dotted name such as "net.ipv4.ip_forward"'),
    ({"sysctl": {"net..x": "1"}}, 'sysctl.net..x: must be a dotted name such as "net.ipv4.ip_forward"'),
    ({"sysctl": {"net.x": True}}, "sysctl.net.x: must be a string"),
])
def test_sysctl_errors(tmp_path: Path, data: dict, expected: str) -> None:
    assert error(tmp_path, data) == f"container.json: {expected}"


# --- networks and routes -----------------------------------------------------

def test_network_forms(tmp_path: Path) -> None:
    networks = cfg(tmp_path, networks=[
        {"type": "loopback", "mtu": 65535},
        {"type": "veth", "ns_path": "", "bridge": "br0", "veth_prefix": "ve", "address": "10.0.0.2/24",
         "gateway": "10.0.0.1", "mtu": 1500},                                   # mid-2014
        {"type": "veth", "name": "eth1", "bridge": "br1", "host_interface_name": "vhost1",
         "mac_address": "02:42:ac:11:00:02", "ipv6_address": "fd00::2/64", "ipv6_gateway": "fd00::1",
         "txqueuelen": 1000},                                                   # 2015
        {"type": "netns", "context": {"nspath": "/var/run/netns/x"}},           # 2014 netns
    ]).networks
    assert networks[1] == NetworkConfig("veth", "eth0", "br0", prefix="ve", address="10.0.0.2/24",
                                        gateway="10.0.0.1", mtu=1500)
    assert networks[2].host_interface_name == "vhost1" and networks[2].txqueuelen == 1000
    assert networks[3] == NetworkConfig("netns", path="/var/run/netns/x")


@pytest.mark.parametrize("network, expected", [
    ({"type": "bridge"}, 'networks[0].type: unknown network type "bridge"'),
    ({"type": "veth"}, "networks[0].bridge: is required for a veth network"),
    ({"type": "netns"}, "networks[0].path: is required for a netns network"),
    ({"type": "veth", "context": {"bridge": "br0", "prefix": "dockerveth"}},
     "networks[0].context.prefix: must be at most 8 characters (7 random ones are appended)"),
    ({"type": "veth", "bridge": "br0", "host_interface_name": "a-very-long-name"},
     "networks[0].host_interface_name: must be at most 15 characters"),
    ({"type": "veth", "bridge": "br0", "address": "10.0.0.300/24"},
     "networks[0].address: must be an IPv4 address with a prefix length, like 172.17.0.2/16"),
    ({"type": "veth", "bridge": "br0", "address": "10.0.0.2"},
     "networks[0].address: must be an IPv4 address with a prefix length, like 172.17.0.2/16"),
    ({"type": "veth", "bridge": "br0", "address": "10.0.0.2/24", "gateway": "10.0.1.1"},
     "networks[0].gateway: is not inside 10.0.0.0/24"),
    ({"type": "veth", "bridge": "br0", "gateway": "10.0.1.1"}, 'networks[0].gateway: requires "networks[0].address"'),
    ({"type": "veth", "bridge": "br0", "mtu": 67},
     "networks[0].mtu: must be between 68 and 65535 (or 0 for the default)"),
    ({"type": "veth", "bridge": "br0", "mac_address": "02:42"},
     "networks[0].mac_address: must look like 02:42:ac:11:00:02"),
])
def test_network_errors(tmp_path: Path, network: dict, expected: str) -> None:
    assert error(tmp_path, {"networks": [network]}) == f"container.json: {expected}"


def test_duplicate_interface_names(tmp_path: Path) -> None:
    veth = {"type": "veth", "bridge": "br0"}
    assert error(tmp_path, {"networks": [veth, veth]}) == (
        'container.json: networks[1].name: interface "eth0" duplicates networks[0]'
    )


def test_routes(tmp_path: Path) -> None:
    route = {"destination": "0.0.0.0/0", "gateway": "10.0.0.1", "interface_name": "eth0"}
    routes = cfg(tmp_path, routes=[route]).routes
    assert routes == (RouteConfig(destination="0.0.0.0/0", gateway="10.0.0.1", interface_name="eth0"),)
    assert error(tmp_path, {"routes": [{"gateway": "nope"}]}) == (
        "container.json: routes[0].gateway: must be an IP address"
    )


def test_networks_and_routes_need_newnet(tmp_path: Path) -> None:
    assert error(tmp_path, {"namespaces": ["NEWNS"], "networks": [{"type": "loopback"}]}) == (
        "container.json: networks[0]: requires the NEWNET namespace"
    )
    assert error(tmp_path, {"namespaces": ["NEWNS"], "routes": [{}]}) == (
        "container.json: routes: requires the NEWNET namespace\n"
        'container.json: routes[0]: needs a "gateway" or an "interface_name"'  # every error at once
    )
    assert cfg(tmp_path, namespaces=["NEWNS"], networks=[{"type": "netns", "path": "/run/netns/a"}]).networks


# --- cgroups -----------------------------------------------------------------

def test_cgroups_flat_2015_form_with_zero_meaning_unset(tmp_path: Path) -> None:
    cgroups = cfg(tmp_path, cgroups={
        "name": "c1", "parent": "nsinit", "memory": 1 << 20, "memory_swap": -1, "cpu_shares": 0,
        "cpu_quota": -1, "cpuset_cpus": "0-1,3", "cpuset_mems": "", "freezer": "", "slice": "",
        "allowed_devices": [{"type": 99, "path": "", "major": -1, "minor": -1, "permissions": "m"}],
        "blkio_throttle_read_bps_device": "8:0 1024\n8:16 2048\n", "memory_swappiness": -1,
    }).cgroups
    assert cgroups is not None and (cgroups.name, cgroups.parent) == ("c1", "nsinit")
    res = cgroups.resources
    assert (res.memory, res.memory_swap, res.cpu_shares, res.cpu_quota) == (1 << 20, -1, None, -1)
    assert (res.cpuset_cpus, res.cpuset_mems, res.freezer, res.memory_swappiness) == ("0-1,3", None, None, None)
    assert res.allowed_devices == (DeviceConfig("c", "", -1, -1, "m"),)
    assert res.blkio_throttle_read_bps_device == ("8:0 1024", "8:16 2048")


def test_cgroups_nested_resources(tmp_path: Path) -> None:
    cgroups = cfg(tmp_path, cgroups={"path": "/machine/c1", "resources": {
        "pids_limit": 100, "oom_kill_disable": True,
        "hugetlb_limit": [{"page_size": "2MB", "limit": 4}],
        "devices": [{"type": "a", "allow": False, "permissions": "rwm"}],
    }}).cgroups
    assert cgroups is not None and cgroups.path == "/machine/c1"
    assert cgroups.resources.pids_limit == 100 and cgroups.resources.oom_kill_disable is True
    assert cgroups.resources.hugetlb_limit == (("2MB", 4),)
    assert cgroups.resources.denied_devices == (DeviceConfig("a", "", -1, -1),)


@pytest.mark.parametrize("cgroups, expected", [
    ({"memory": -1}, "cgroups.memory: must be at least 0"),
    ({"memory_swap": -2}, "cgroups.memory_swap: must be at least -1"),
    ({"resources": {"cpu_shares": "1024"}}, "cgroups.resources.cpu_shares: must be an integer"),
    ({"cpuset_cpus": "0-"}, 'cgroups.cpuset_cpus: "0-" is not a list like "0-1,3"'),
    ({"cpuset_cpus": "3-1"}, 'cgroups.cpuset_cpus: "3-1" is not a list like "0-1,3"'),
    ({"allowed_devices": [{"type": "p", "major": 1, "minor": 1}]},
     'cgroups.allowed_devices[0].type: unknown device type "p" (expected a, c, b)'),
    ({"memory": 1, "resources": {}}, 'cgroups.memory: cannot be combined with "cgroups.resources"'),
    ({"parent": "../escape"}, 'cgroups.parent: must not contain ".."'),
    ({"hugetlb_limit": [{"page_size": "../2MB", "limit": 1}]},
     'cgroups.hugetlb_limit[0].page_size: must be a page size such as "2MB"'),
    ({"freezer": "frozen"}, 'cgroups.freezer: must be "FROZEN" or "THAWED"'),
    ({"blkio_throttle_write_iops_device": ["8:0"]},
     'cgroups.blkio_throttle_write_iops_device[0]: "8:0" is not "MAJOR:MINOR RATE"'),
])
def test_cgroup_errors(tmp_path: Path, cgroups: dict, expected: str) -> None:
    assert error(tmp_path, {"cgroups": cgroups}) == f"container.json: {expected}"


@pytest.mark.parametrize("text, expected", [
    ("64M", 64 << 20), ("64m", 64 << 20), ("64MiB", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10),
    ("268435456", 268435456),
])
def test_memory_takes_the_sizes_update_takes(tmp_path: Path, text: str, expected: int) -> None:
    from nsinit.commands import parse_amount

    resources = cfg(tmp_path, cgroups={"memory": text, "memory_swap": text}).cgroups.resources
    assert resources.memory == resources.memory_swap == expected == parse_amount("--memory", text)


@pytest.mark.parametrize("text", ["64X", "1.5G", "M", "-1M", ""])
def test_memory_refuses_what_is_not_a_size(tmp_path: Path, text: str) -> None:
    assert error(tmp_path, {"cgroups": {"memory": text}}) == (
        f'container.json: cgroups.memory: "{text}" is not a size (e.g. 268435456, 256M, 1G)')


# --- rules across fields -----------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    ({"hostname": "box", "namespaces": ["NEWNS"]}, "hostname: requires the NEWUTS namespace"),
    ({"namespaces": ["NEWUTS"], "mounts": [{"device": "tmpfs", "destination": "/tmp"}]},
     "mounts: requires the NEWNS namespace"),
    ({"namespaces": ["NEWUTS"], "mount_config": {"mounts": [{"device": "tmpfs", "destination": "/tmp"}]}},
     "mount_config.mounts: requires the NEWNS namespace"),
    ({"namespaces": ["NEWUTS"], "mask_paths": []}, "mask_paths: requires the NEWNS namespace"),
    ({"namespaces": ["NEWUTS"], "readonly_paths": ["/proc"]}, "readonly_paths: requires the NEWNS namespace"),
    ({"namespaces": ["NEWUTS"], "readonlyfs": True}, "readonlyfs: requires the NEWNS namespace"),
])
def test_namespace_requirements(tmp_path: Path, data: dict, expected: str) -> None:
    assert error(tmp_path, data) == f"container.json: {expected}"


def test_no_newns_with_default_mounts_is_fine(tmp_path: Path) -> None:
    assert cfg(tmp_path, namespaces=["NEWUTS"], mounts=[]).mounts == defaults.DEFAULT_MOUNTS


def test_apparmor_profile_needs_apparmor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enabled = tmp_path / "enabled"
    monkeypatch.setattr(process_module, "APPARMOR_ENABLED_FILE", str(enabled))
    enabled.write_text("N\n")
    assert error(tmp_path, {"apparmor_profile": "p"}) == (
        "container.json: apparmor_profile: AppArmor is not enabled on this kernel"
    )
    enabled.write_text("Y\n")
    assert cfg(tmp_path, apparmor_profile="p").apparmor_profile == "p"


def test_selinux_labels_need_selinux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_module, "SELINUX_FS", str(tmp_path / "selinux"))
    assert error(tmp_path, {"context": {"process_label": "system_u:system_r:svirt_lxc_net_t:s0"}}) == (
        "container.json: context.process_label: SELinux is not enabled on this kernel"
    )
    assert error(tmp_path, {"mount_config": {"mount_label": "l"}}) == (
        "container.json: mount_config.mount_label: SELinux is not enabled on this kernel"
    )
    (tmp_path / "selinux").mkdir()
    label = "system_u:system_r:svirt_lxc_net_t:s0"
    assert cfg(tmp_path, process_label=label).process_label == label
    # Mount labels are refused even with SELinux, rather than silently not applied.
    assert error(tmp_path, {"mount_label": "l"}) == (
        "container.json: mount_label: SELinux mount labels are not supported yet"
    )


# --- every error at once ------------------------------------------------------

def test_every_field_error_is_listed_once_each_in_order(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse(tmp_path, {
            "hostname": 5, "namespaces": ["NEWFOO"], "user": [],
            "mounts": [{"device": "tmpfs", "destination": "rel"}], "cgroups": {"memory": "lots"},
        })
    assert str(excinfo.value).splitlines() == [
        "container.json: hostname: must be a string",
        'container.json: namespaces[0]: unknown namespace "NEWFOO"',
        "container.json: mounts[0].destination: must be an absolute path",
        "container.json: user: must be a string",
        'container.json: cgroups.memory: "lots" is not a size (e.g. 268435456, 256M, 1G)',
    ]
    assert (excinfo.value.field, excinfo.value.problem) == ("hostname", "must be a string")  # the first


def test_every_bad_entry_of_a_list_and_every_bad_limit_is_listed(tmp_path: Path) -> None:
    lines = error(tmp_path, {
        "mounts": [{"device": "tmpfs", "destination": "a"}, {"device": "tmpfs", "destination": "/ok"},
                   {"device": "tmpfs", "destination": "/"}],
        "networks": [{"type": "wifi"}, {"type": "loopback"}, {"type": "veth"}],
        "devices": [{"type": "x", "path": "/dev/a", "major": 1, "minor": 1}, {"type": "c", "path": "/etc/b", "major": 1, "minor": 2}],
        "cgroups": {"memory": "lots", "pids_limit": "many", "cpuset_cpus": "3-1", "oom_kill_disable": 1},
    }).splitlines()
    assert lines == [
        "container.json: mounts[0].destination: must be an absolute path",
        "container.json: mounts[2].destination: must not be the container root",
        'container.json: devices[0].type: unknown device type "x" (expected c, b, p)',
        "container.json: devices[1].path: must be under /dev",
        'container.json: networks[0].type: unknown network type "wifi"',
        'container.json: networks[2].bridge: is required for a veth network',
        'container.json: cgroups.memory: "lots" is not a size (e.g. 268435456, 256M, 1G)',
        "container.json: cgroups.cpuset_cpus: \"3-1\" is not a list like \"0-1,3\"",
        "container.json: cgroups.pids_limit: must be an integer",
        "container.json: cgroups.oom_kill_disable: must be true or false",
    ]


def test_rules_across_fields_are_all_listed_once_the_fields_are_valid(tmp_path: Path) -> None:
    # A field error alone: the cross-field rules would judge its default.
    assert error(tmp_path, {"namespaces": 3, "hostname": "h"}) == (
        "container.json: namespaces: must be a list or an object")
    assert error(tmp_path, {"namespaces": ["NEWNS"], "hostname": "h", "sysctl": {"kernel.shmmax": "1", "vm.x": "1"}}
                 ).splitlines() == [
        "container.json: hostname: requires the NEWUTS namespace",
        "container.json: sysctl.kernel.shmmax: requires the NEWIPC namespace",
        "container.json: sysctl.vm.x: not namespaced, refusing to change the host",
    ]


# --- warnings ----------------------------------------------------------------

def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    _, warnings = parse(tmp_path, {
        "hostnme": "x",
        "mounts": [{"device": "tmpfs", "destination": "/t", "writeable": True}],
        "cgroups": {"resources": {"memroy": 1}},
        "context": {"colour": "blue"},
        "zzz": 1,
    })
    assert warnings == [
        'container.json: unknown key "hostnme" ignored (did you mean hostname?)',
        'container.json: unknown key "zzz" ignored',
        'container.json: unknown key "context.colour" ignored',
        'container.json: unknown key "mounts[0].writeable" ignored (did you mean writable?)',
        'container.json: unknown key "cgroups.resources.memroy" ignored (did you mean memory?)',
    ]


def test_unsupported_features_warn_only_when_set(tmp_path: Path) -> None:
    _, warnings = parse(tmp_path, {
        "hooks": {"prestart": [{"path": "/bin/true"}]}, "seccomp": {"default_action": 0, "syscalls": None},
        "version": "1.0", "labels": ["a=b"], "Hooks": {"prestart": []}, "pivot_dir": "",
        "cgroups": {"kernel_memory": 0, "cpu_rt_runtime": 5, "unit_properties": None},
    })
    assert warnings == [
        "container.json: hooks: not supported yet, ignored",
        "container.json: cgroups.cpu_rt_runtime: not supported yet, ignored",
    ]


@pytest.mark.parametrize("value, expected", [(None, 0o022), ("0077", 0o077), ("027", 0o027), ("0", 0), (18, 0o022)])
def test_umask_is_octal_text_or_a_number_and_0022_by_default(tmp_path: Path, value: object, expected: int) -> None:
    assert cfg(tmp_path, umask=value).umask == expected


@pytest.mark.parametrize("value", ["0999", "1777", "22a", "", "00022", 512, -1, True])
def test_bad_umask(tmp_path: Path, value: object) -> None:
    assert error(tmp_path, {"umask": value}).startswith("container.json: umask: ")


def test_tty_unset_stays_unset_for_exec_to_decide(tmp_path: Path) -> None:
    assert cfg(tmp_path).tty is None and cfg(tmp_path, tty=None).tty is None
    assert cfg(tmp_path, tty=False).tty is False and cfg(tmp_path, tty=True).tty is True


def test_go_null_means_absent(tmp_path: Path) -> None:
    config = cfg(tmp_path, mounts=None, devices=None, networks=None, cgroups=None, mask_paths=None,
                 namespaces=None, capabilities=None, environment=None)
    assert config == cfg(tmp_path)


# --- output ------------------------------------------------------------------

def test_round_trip_of_a_rich_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_module, "SELINUX_FS", str(tmp_path))
    config = cfg(tmp_path, **{
        **USERNS, "hostname": "box", "user": "nobody", "working_dir": "/srv", "umask": "0027",
        "capabilities": {"bounding": ["KILL", "CHOWN"], "permitted": ["KILL"], "effective": ["KILL"],
                         "inheritable": ["KILL"], "ambient": ["KILL"]},
        "mounts": [
            {"source": str(tmp_path), "destination": "/data", "writable": False, "private": True},
            {"device": "tmpfs", "destination": "/run", "flags": 1 << 30 | MS.MS_NOSUID, "data": "mode=755"},
            {"type": "proc", "destination": "/proc", "options": ["nosuid"]},
        ],
        "devices": [{"type": "b", "path": "/dev/loop0", "major": 7, "minor": 0, "permissions": "rw"}],
        "rlimits": [{"type": "NOFILE", "soft": 1024, "hard": -1}],
        "sysctl": {"net.ipv4.ip_forward": "1"}, "oom_score_adj": 100, "process_label": "l",
        "networks": [{"type": "loopback"}, {"type": "veth", "bridge": "br0", "address": "10.0.0.2/24", "mtu": 1400}],
        "routes": [{"destination": "10.1.0.0/16", "gateway": "10.0.0.1"}],
        "cgroups": {"name": "c", "allowed_devices": [{"type": "c", "major": 1, "minor": -1}],
                    "memory_swappiness": 0, "hugetlb_limit": [{"page_size": "2MB", "limit": 1}],
                    "blkio_throttle_read_iops_device": [{"major": 8, "minor": 0, "rate": 10}]},
    })
    dumped = json.loads(json.dumps(config_to_dict(config)))
    again, warnings = parse_config(dumped, "dumped.json", "/")
    assert again == config and warnings == []
    # A join reads the record back without the loader: same Config.
    assert config_from_dict(dumped) == config
    assert dumped["mounts"][-3]["flags"] == ["rbind", "ro", "rprivate"]
    assert dumped["umask"] == "0027"  # what `nsinit config` shows


def test_round_trip_of_the_2014_sample(tmp_path: Path) -> None:
    data = runnable_sample(tmp_path)
    data["networks"] = json.loads(SAMPLE_2014.read_text())["networks"]
    config = cfg(tmp_path, **data)
    assert parse_config(config_to_dict(config), "x.json", "/")[0] == config
    assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config


def test_recorded_form_keeps_unnamed_mount_bits_and_propagation(tmp_path: Path) -> None:
    config = cfg(tmp_path, mounts=[{"source": "tmpfs", "destination": "/t", "device": "tmpfs",
                                    "flags": 0x40 | 0x2, "propagation_flags": ["rslave"]}])
    dumped = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(dumped) == config == parse_config(dumped, "x.json", "/")[0]


def test_config_is_frozen_and_hashable(tmp_path: Path) -> None:
    config = cfg(tmp_path, cgroups={"memory": 5})
    assert hash(config) == hash(cfg(tmp_path, cgroups={"memory": 5}))
    with pytest.raises(AttributeError):
        config.hostname = "x"  # type: ignore[misc]


def test_import_stays_light() -> None:
    # -S: without site, nothing (editable-install finders, .pth files) has
    # imported modules before nsinit.config does.
    repo = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {repo!r}); import nsinit.config; "
        "print(sorted({'ipaddress', 'jsonschema', 'yaml'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- strings that cannot reach the kernel --------------------------------------

SURROGATE = "is not valid Unicode: a lone surrogate U+D800 cannot be encoded as UTF-8"


@pytest.mark.parametrize("data, expected", [
    ({"hostname": "\ud800"}, f"hostname: {SURROGATE}"),
    ({"environment": ["PATH=/bin", "A=\ud800"]}, f"environment[1]: {SURROGATE}"),
    ({"user": "us\ud800er"}, f"user: {SURROGATE}"),
    ({"working_dir": "/\ud800"}, f"working_dir: {SURROGATE}"),
    ({"sysctl": {"kernel.\ud800": "1"}}, f"sysctl: key {SURROGATE}"),
    ({"sysctl": {"kernel.domainname": "\ud800"}}, f"sysctl.kernel.domainname: {SURROGATE}"),
    ({"mounts": [{"type": "tmpfs", "destination": "/x", "data": "size=\ud800"}]}, f"mounts[0].data: {SURROGATE}"),
    ({"\ud800": 1}, f"(top level): key {SURROGATE}"),
    ({"labels": ["a\x00b"]}, "labels[0]: must not contain NUL characters"),
    ({"cgroups": {"name": "x", "resources": {"cpuset_cpus": "0\x00"}}},
     "cgroups.resources.cpuset_cpus: must not contain NUL characters"),
    ({"sysctl": {"kernel.domain\x00name": "x"}}, "sysctl: key must not contain NUL characters"),
])
def test_strings_that_cannot_be_encoded_are_refused_by_field(tmp_path: Path, data: dict, expected: str) -> None:
    assert error(tmp_path, data) == f"container.json: {expected}"


def test_every_bad_string_is_listed(tmp_path: Path) -> None:
    # An object's keys first, then its values in order; nothing below a bad key.
    data = {"hostname": "\ud800", "environment": ["A=\x00", "B=\udfff"], "\ud801": {"x": "\x00"}}
    assert error(tmp_path, data).splitlines() == [
        f"container.json: (top level): key {SURROGATE.replace('D800', 'D801')}",
        f"container.json: hostname: {SURROGATE}",
        "container.json: environment[0]: must not contain NUL characters",
        f"container.json: environment[1]: {SURROGATE.replace('D800', 'DFFF')}",
    ]


def test_a_lone_surrogate_from_the_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "container.json").write_text('{"hostname": "\\ud800"}')  # valid JSON
    with pytest.raises(ConfigError) as excinfo:
        load_config(str(tmp_path))
    assert str(excinfo.value) == f"container.json: hostname: {SURROGATE}"


@pytest.mark.parametrize("field", ["apparmor_profile", "process_label"])
def test_a_security_label_needs_the_containers_own_proc(tmp_path: Path, field: str) -> None:
    # Without NEWNS, /proc/self/attr/exec could be a regular file of the image.
    data = {"namespaces": ["NEWUTS", "NEWIPC", "NEWPID", "NEWNET"], field: "unconfined"}
    # (listed with the LSM's own check, which fails on a kernel without it)
    assert f"container.json: {field}: requires the NEWNS namespace" in error(tmp_path, data).splitlines()
