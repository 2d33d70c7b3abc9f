"""The later seed's Go sample (libcontainer 1.0.0-rc4's README, in
../shared/seeds/004_*), ported line by line to Python, runs as written.

Each Go statement is quoted in a comment above its Python line.  Where this
machine differs from the sample's, the line says so: the rootfs is the test's
busybox (given to host uid 1000, which the sample's maps make the
container's root), /bin/sh stands for /bin/bash, the cgroup's name gets the
test's pid (suites run side by side on one machine) and /proc/kcore, masked
by the sample, does not exist on this kernel (masking skips a missing path,
as runc does).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import Nsinit, give_rootfs_to_mapped_root, needs_root

from nsinit.config.defaults import DEFAULT_DEVICES
from nsinit.config.model import (
    CapabilitySets,
    CgroupConfig,
    CgroupResources,
    Config,
    IdMap,
    MountConfig,
    NamespaceConfig,
    NetworkConfig,
    Rlimit,
)
from nsinit.container import Process
from nsinit.lifecycle.factory import Factory

pytestmark = needs_root

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY, MS_STRICTATIME = 0x2, 0x4, 0x8, 0x1, 1 << 24
RLIMIT_NOFILE = 7
CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
# The 14 capabilities above as a /proc/PID/status mask.
CAPS_MASK = "00000000a80425fb"
DAEMON_UID = 1   # the busybox rootfs's /etc/passwd: daemon:x:1:1


def seed_config(rootfs: str, cgroup_name: str) -> Config:
    # defaultMountFlags := unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV
    default_mount_flags = MS_NOEXEC | MS_NOSUID | MS_NODEV
    # config := &configs.Config{
    return Config(
        source="the seed's Go sample",
        # Rootfs: "/your/path/to/rootfs",
        rootfs=rootfs,
        # Capabilities: &configs.Capabilities{Bounding: …, Effective: …, Inheritable: …, Permitted: …, Ambient: …},
        capabilities=CapabilitySets(bounding=CAPS, effective=CAPS, inheritable=CAPS, permitted=CAPS,
                                    ambient=CAPS),
        # Namespaces: configs.Namespaces([]configs.Namespace{{Type: configs.NEWNS}, … {Type: configs.NEWNET}}),
        namespaces=tuple(NamespaceConfig(kind) for kind in
                         ("NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWUSER", "NEWNET")),
        # Cgroups: &configs.Cgroup{Name: "test-container", Parent: "system",
        #     Resources: &configs.Resources{MemorySwappiness: nil, AllowAllDevices: nil,
        #                                   AllowedDevices: configs.DefaultAllowedDevices}},
        cgroups=CgroupConfig(name=cgroup_name, parent="system", resources=CgroupResources(
            memory_swappiness=None, allow_all_devices=None, allowed_devices=DEFAULT_DEVICES)),
        # MaskPaths: []string{"/proc/kcore", "/sys/firmware"},
        mask_paths=("/proc/kcore", "/sys/firmware"),
        # ReadonlyPaths: []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"},
        readonly_paths=("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"),
        # Devices:  configs.DefaultAutoCreatedDevices,
        devices=DEFAULT_DEVICES,
        # Hostname: "testing",
        hostname="testing",
        # Mounts: []*configs.Mount{ … },
        mounts=(
            MountConfig("proc", "/proc", "proc", default_mount_flags),
            MountConfig("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755"),
            MountConfig("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                        "newinstance,ptmxmode=0666,mode=0620,gid=5"),
            MountConfig("shm", "/dev/shm", "tmpfs", default_mount_flags, "mode=1777,size=65536k"),
            MountConfig("mqueue", "/dev/mqueue", "mqueue", default_mount_flags),
            MountConfig("sysfs", "/sys", "sysfs", default_mount_flags | MS_RDONLY),
        ),
        # UidMappings: []configs.IDMap{{ContainerID: 0, HostID: 1000, Size: 65536}},
        uid_mappings=(IdMap(0, 1000, 65536),),
        # GidMappings: []configs.IDMap{{ContainerID: 0, HostID: 1000, Size: 65536}},
        gid_mappings=(IdMap(0, 1000, 65536),),
        # Networks: []*configs.Network{{Type: "loopback", Address: "127.0.0.1/0", Gateway: "localhost"}},
        networks=(NetworkConfig("loopback", address="127.0.0.1/0", gateway="localhost"),),
        # Rlimits: []configs.Rlimit{{Type: unix.RLIMIT_NOFILE, Hard: uint64(1025), Soft: uint64(1025)}},
        rlimits=(Rlimit(RLIMIT_NOFILE, 1025, 1025),),
        # (Go's zero values: no environment of the config's own; the Process brings PATH)
        environment=(),
    )


@pytest.fixture
def system_parent() -> object:
    """The sample's cgroup parent "system": removed afterwards if the test made it."""
    made = [p for p in (f"/sys/fs/cgroup/{name}/system" for name in os.listdir("/sys/fs/cgroup"))
            if os.path.isdir(os.path.dirname(p)) and not os.path.islink(os.path.dirname(p))
            and not os.path.exists(p)]
    yield None
    for path in made:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass


def test_the_seeds_go_sample_runs_as_written(nsinit: Nsinit, tmp_path: Path, traversable: None,
                                             system_parent: None) -> None:
    give_rootfs_to_mapped_root(nsinit, 1000)
    cgroup_name = f"test-container-{os.getpid()}"
    # factory, err := libcontainer.New("/var/lib/container", libcontainer.Cgroupfs, …)
    factory = Factory(str(tmp_path / "var-lib-container"), cgroups="cgroupfs")
    # container, err := factory.Create("container-id", config)
    container = factory.create("container-id", seed_config(str(nsinit.root), cgroup_name))
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    # process := &libcontainer.Process{Args: []string{"/bin/bash"}, Env: []string{"PATH=/bin"},
    #     User: "daemon", Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
    process = Process(args=["/bin/sh"], env=["PATH=/bin"], user="daemon",
                      stdin=stdin_r, stdout=stdout_w, stderr=stdout_w)
    try:
        # err := container.Run(process)  (start the init and let it exec at once)
        container.run(process, detach=True)
        # status, err := container.Status(); state, err := container.State()
        assert (container.id, container.status()) == ("container-id", "running")
        assert container.state() is not None and container.state().init_pid == process.pid
        # (Config(): the config it was created with, from its record)
        assert container.recorded_config().hostname == "testing"
        os.close(stdin_r)
        os.close(stdout_w)
        os.write(stdin_w, b"echo uid=$(id -u) host=$(hostname); ulimit -n; cat /proc/self/uid_map;"
                          b" grep -E '^Cap(Bnd|Amb):' /proc/self/status; ls /sys/firmware | wc -l;"
                          b" ip -o addr show lo; echo ready\n")
        output = read_until(stdout_r, b"ready\n").decode()
        assert f"uid={DAEMON_UID} host=testing" in output               # User: "daemon", Hostname: "testing"
        assert "\n1025\n" in output                                     # RLIMIT_NOFILE 1025
        assert output.split("\n")[2].split() == ["0", "1000", "65536"]  # the 0 -> 1000 65536 map
        assert f"CapBnd:\t{CAPS_MASK}" in output
        assert f"CapAmb:\t{CAPS_MASK}" in output
        assert output.split("\n")[5] == "0"                            # /sys/firmware masked: empty
        assert "127.0.0.1/8" in output                                  # the loopback network, up
        # On the host: daemon is 1 + 1000, in the cgroup system/<name>.
        status = Path(f"/proc/{process.pid}/status").read_text()
        assert f"Uid:\t{1000 + DAEMON_UID}\t" in status

        # processes, err := container.Processes()
        processes = container.processes()
        assert [(p["pid"], p["container_pid"], p["command"]) for p in processes] == [(process.pid, 1, "/bin/sh")]
        # stats, err := container.Stats()
        stats = container.stats()
        assert "lo" in [interface["name"] for interface in stats["interfaces"]]
        freezer = f"/sys/fs/cgroup/freezer/system/{cgroup_name}/freezer.state"
        # container.Pause()
        container.pause()
        assert Path(freezer).read_text().strip() == "FROZEN"
        # container.Resume()
        container.resume()
        assert Path(freezer).read_text().strip() == "THAWED"
        # container.Signal(signal): SIGKILL, as PID 1 ignores the signals it has no handler for
        container.signal(signal.SIGKILL)
        # _, err := process.Wait()
        assert process.wait() == 128 + signal.SIGKILL
    finally:
        os.close(stdin_w)
        os.close(stdout_r)
        # container.Destroy()
        container.destroy()
    assert not os.path.exists(f"/sys/fs/cgroup/freezer/system/{cgroup_name}")
    assert not os.path.exists(tmp_path / "var-lib-container" / "container-id")


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    while marker not in data:
        assert time.monotonic() < deadline, data
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        assert chunk, data
        data += chunk
    return data

