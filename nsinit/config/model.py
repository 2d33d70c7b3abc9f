"""The normalised container configuration.

Every era of container.json (2014 libcontainer through later runc) is loaded
into these frozen records (nsinit.record) by ``nsinit.config.load``; nothing downstream
reads raw JSON.  Collections are tuples so a Config is immutable and hashable:
the create and join flows can pass it around without defensive copies.
"""
from __future__ import annotations


from nsinit.config.names import NAMESPACE_CLONE_FLAGS
from nsinit.record import field, record


@record(frozen=True)
class NamespaceConfig:
    """A namespace to create, or with ``path`` to join."""
    type: str          # "NEWNS", "NEWUTS", ... (keys of names.NAMESPACE_CLONE_FLAGS)
    path: str = ""     # non-empty: setns(2) into this existing namespace instead of creating one


@record(frozen=True)
class IdMap:
    """One line of /proc/PID/uid_map or gid_map."""

    container_id: int
    host_id: int
    size: int


@record(frozen=True)
class MountConfig:
    """One mount, in the order the child performs it."""
    source: str
    destination: str   # absolute, normalised, inside the container
    # "bind", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"
    # or any other filesystem type name passed to mount(2).
    device: str
    flags: int = 0     # MS_* bits for the mount call itself (never propagation bits)
    data: str = ""
    # MS_PRIVATE/MS_SLAVE/MS_SHARED/MS_UNBINDABLE (|MS_REC), applied by a
    # second mount(2) after mounting; 0 = leave propagation alone.
    propagation: int = 0
    # tmpfs only: start with a copy of the directory it covers (runc's
    # "tmpcopyup" option, nsinit.mount.copyup).
    copy_up: bool = False


@record(frozen=True)
class DeviceConfig:
    """A device node to create, or (in cgroup rules) a device to allow/deny.

    ``type`` is 'c', 'b' or 'p' for nodes; cgroup rules use 'c', 'b' or 'a'
    and may use -1 for major/minor as the "*" wildcard.
    """

    type: str
    path: str
    major: int
    minor: int
    permissions: str = "rwm"
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@record(frozen=True)
class CapabilitySets:
    """Canonical "CAP_X" names, each set sorted by capability number."""

    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


@record(frozen=True)
class Rlimit:
    """A resource limit set in the container (RLIMIT_* number)."""
    type: int          # RLIMIT_* number (names.RLIMITS)
    soft: int          # -1 (resource.RLIM_INFINITY) = unlimited
    hard: int


@record(frozen=True)
class NetworkConfig:
    """One network of the container: loopback, veth or netns."""
    type: str                      # "loopback", "veth" or "netns"
    name: str = ""                 # interface name inside the container ("eth0" for veth)
    bridge: str = ""               # veth: host bridge the host end joins
    host_interface_name: str = ""  # veth: fixed host end name; empty = prefix + 7 random hex chars
    prefix: str = "veth"
    mac_address: str = ""
    address: str = ""              # IPv4 CIDR
    gateway: str = ""
    ipv6_address: str = ""         # IPv6 CIDR
    ipv6_gateway: str = ""
    mtu: int = 0                   # 0 = kernel default
    txqueuelen: int = 0
    path: str = ""                 # netns: namespace file to join


@record(frozen=True)
class RouteConfig:
    """A route added in the container's network namespace."""
    destination: str = ""
    source: str = ""
    gateway: str = ""
    interface_name: str = ""


@record(frozen=True)
class CgroupResources:
    """Limits; None (or an empty tuple) means "leave the kernel's value"."""

    memory: int | None = None
    memory_reservation: int | None = None
    memory_swap: int | None = None        # -1 = unlimited
    memory_swappiness: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None          # -1 = unlimited
    cpu_period: int | None = None
    cpuset_cpus: str | None = None        # cpu-list grammar, e.g. "0-1,3"
    cpuset_mems: str | None = None
    pids_limit: int | None = None         # -1 = unlimited
    blkio_weight: int | None = None
    oom_kill_disable: bool | None = None
    freezer: str | None = None            # "FROZEN" or "THAWED"
    allow_all_devices: bool | None = None
    allowed_devices: tuple[DeviceConfig, ...] = ()
    denied_devices: tuple[DeviceConfig, ...] = ()
    # "MAJOR:MINOR RATE" lines, as the blkio/io controllers take them.
    blkio_throttle_read_bps_device: tuple[str, ...] = ()
    blkio_throttle_write_bps_device: tuple[str, ...] = ()
    blkio_throttle_read_iops_device: tuple[str, ...] = ()
    blkio_throttle_write_iops_device: tuple[str, ...] = ()
    hugetlb_limit: tuple[tuple[str, int], ...] = ()   # (page size such as "2MB", limit)


@record(frozen=True)
class CgroupConfig:
    """Where the container's cgroup goes and what limits it gets."""
    name: str = ""
    parent: str = ""
    path: str = ""
    resources: CgroupResources = field(default_factory=CgroupResources)
    # Without root and with no cgroup delegated to the user, limits are an
    # error ("" or "error") or, with "ignore", a warning (runc's rule).
    rootless: str = ""


@record(frozen=True)
class SeccompArg:
    """One argument comparison of a seccomp rule (all of a rule's must match)."""
    index: int                     # 0..5, the syscall argument
    value: int                     # uint64
    value_two: int = 0             # masked_eq: the value compared after masking with ``value``
    op: str = "eq"                 # ne lt le eq ge gt masked_eq


@record(frozen=True)
class SeccompRule:
    """The action for some syscalls (when all ``args`` comparisons match)."""
    names: tuple[str, ...]
    action: str                    # kill kill_process trap errno trace allow log notify
    errno_ret: int | None = None   # errno/trace: the value returned (EPERM when not set)
    args: tuple[SeccompArg, ...] = ()


@record(frozen=True)
class SeccompConfig:
    """A syscall filter, loaded as the container process's last step before execve.

    Both config forms (libcontainer's ``seccomp`` and OCI's ``linux.seccomp``)
    read into this; nsinit/seccomp compiles it with libseccomp.
    """
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()   # libseccomp names ("x86_64", "x86", "x32"); the native one is always in
    flags: tuple[str, ...] = ()           # SECCOMP_FILTER_FLAG_* names: TSYNC, LOG, SPEC_ALLOW
    syscalls: tuple[SeccompRule, ...] = ()
    listener_path: str = ""               # notify: the unix socket the listener fd is sent to


# kw_only: the field order follows the config file, not "defaults last".
@record(frozen=True, kw_only=True)
class Config:
    """The whole normalised container.json; nothing downstream reads raw JSON."""
    # Where the config was read from; metadata only, so two configs with the
    # same content compare equal (the `nsinit config` round trip relies on it).
    source: str = field(compare=False)
    rootfs: str                    # absolute, symlinks resolved
    hostname: str = ""
    namespaces: tuple[NamespaceConfig, ...]
    uid_mappings: tuple[IdMap, ...] = ()
    gid_mappings: tuple[IdMap, ...] = ()
    capabilities: CapabilitySets
    mounts: tuple[MountConfig, ...]      # default system mounts + configured, in mount order
    devices: tuple[DeviceConfig, ...]    # default nodes + configured, unique by path
    environment: tuple[str, ...]         # "K=V"
    user: str = "root"
    additional_groups: tuple[str, ...] = ()
    working_dir: str = "/"
    umask: int = 0o022               # config.defaults.DEFAULT_UMASK
    tty: bool | None = None          # None: a pty exactly when nsinit's stdin is a terminal
    readonlyfs: bool = False
    no_pivot_root: bool = False
    # MS_* propagation bits for the container's "/" once it is the root
    # (OCI linux.rootfsPropagation); 0: what nsinit makes it, private.
    rootfs_propagation: int = 0
    # runc's --no-new-keyring: keep the caller's session keyring.  By default
    # the container gets a new one of its own (nsinit/child.py).
    no_new_keyring: bool = False
    mask_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    sysctl: tuple[tuple[str, str], ...] = ()
    networks: tuple[NetworkConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    cgroups: CgroupConfig | None = None
    apparmor_profile: str = ""
    process_label: str = ""
    mount_label: str = ""
    parent_death_signal: int = 9         # SIGKILL; 0 = none (2015 configs write 0 for "unset")
    seccomp: SeccompConfig | None = None  # None: no filter (2014 configs never had one)
    # How a 2014 capabilities_mask became ``capabilities``, for `nsinit config`
    # to say; "" when the sets were written out.  Not part of the config's value.
    capabilities_note: str = field(default="", compare=False)

    def has_namespace(self, name: str) -> bool:
        """True if the container gets its own (new or joined) namespace of this type."""
        return self.namespace(name) is not None

    def has_own_procfs(self) -> bool:
        """True if the container's /proc is the procfs nsinit mounts there.

        Otherwise (no NEWNS, or a config.json whose mounts leave out proc)
        /proc after the chroot or pivot_root is a directory of the image's,
        whose plain files would take any write meant for the kernel.  The
        mount steps keep a proc mount exactly on /proc and refuse any other
        mount over it."""
        return self.has_namespace("NEWNS") and any(
            m.device == "proc" and m.destination == "/proc" for m in self.mounts)

    def namespace(self, name: str) -> NamespaceConfig | None:
        for ns in self.namespaces:
            if ns.type == name:
                return ns
        return None

    def clone_flags(self) -> int:
        """CLONE_NEW* flags for the namespaces to create (joined ones are setns'd)."""
        flags = 0
        for ns in self.namespaces:
            if not ns.path:
                flags |= NAMESPACE_CLONE_FLAGS[ns.type]
        return flags
