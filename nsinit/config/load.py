"""Read container.json of any era into one normalised, validated Config.

Three generations of libcontainer wrote this file (2014 docker pkg/libcontainer,
mid-2014 docker/libcontainer, 2015 configs.Config) and later runc added more;
their sources are in opencontainers/runc's history (runc@ed290121599c:
container.go, runc@bdafa085aeca:config.go, runc@dcdbf01076b5:configs/).  Every form is accepted
and folded into the model in ``nsinit.config.model``; everything that would
only fail later, half-way through building a container, is rejected here with
the field path that is wrong (``mounts[2].destination: must be an absolute
path``).  Unknown keys are warnings, not errors: Go's decoder ignored them, and
old files carry keys of retired features.

This module is the file's top level: reading it, the top-level keys, the
synonyms by which the eras spell one setting (``mount_config.readonly_fs``,
``context.process_label``), assembling the Config and the rules across its
parts.  Each part's parsers live in a module of its own, which the OCI loader
(nsinit/oci/spec.py) imports wherever its spelling of a part is
container.json's, so a part means one thing through both front doors:

- ``nsinit.config.parse``: reading the file, the error-collecting context,
  field paths, the typed field readers;
- ``nsinit.config.namespaces``: namespaces, uid/gid maps, hostname, sysctl;
- ``nsinit.config.mounts``: rootfs, mounts, masked and read-only paths,
  device nodes;
- ``nsinit.config.networks``: networks, routes;
- ``nsinit.config.cgroups``: the cgroup and its limits (imported only by a
  config with a "cgroups" key);
- ``nsinit.config.process``: environment, user, groups, working directory,
  umask, capabilities, rlimits, the security labels;
- ``nsinit.config.seccomp``: the filter (imported only by a config with one).

This module and the part modules are on the start-up path of every
container, so they import only small stdlib modules; ``ipaddress`` is
imported inside the functions that check addresses.
"""
from __future__ import annotations

import os

from nsinit.config.defaults import DEFAULT_MASK_PATHS, DEFAULT_MOUNTS, DEFAULT_READONLY_PATHS
from nsinit.config.model import Config
from nsinit.config.mounts import (
    _parse_effective_devices,
    _parse_effective_mounts,
    _parse_path_list,
    _parse_rootfs,
)
from nsinit.config.namespaces import (
    _parse_hostname,
    _parse_id_mappings,
    _parse_namespaces,
    _parse_sysctl,
    _sysctl_namespace,
)
from nsinit.config.networks import (
    _check_route_next_hops,
    _join_netns_networks,
    _parse_networks,
    _parse_routes,
)
from nsinit.config.parse import (
    _Context,
    _bool,
    _check_every_string,
    _child,
    _item,
    _obj,
    _opt_bool,
    _opt_str,
    _pick,
    _read_json,
    _warn_if_set,
)
from nsinit.config.process import (
    _check_security_modules,
    _limit_mask_to_caller,
    _parse_capabilities,
    _parse_environment,
    _parse_groups,
    _parse_oom_score_adj,
    _parse_parent_death_signal,
    _parse_rlimits,
    _parse_umask,
    _parse_user,
    _parse_working_dir,
)

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import CgroupConfig
    from nsinit.rootless import Caller

CONFIG_FILE = "container.json"


# Keys known at the top level, across all eras.
_TOP_KEYS = frozenset({
    "rootfs", "hostname", "namespaces", "capabilities", "capabilities_mask",
    "mounts", "devices", "device_nodes", "mount_config", "environment", "user",
    "additional_groups", "working_dir", "tty", "readonlyfs", "readonly_fs",
    "no_pivot_root", "context", "apparmor_profile", "process_label",
    "mount_label", "restrict_sys", "restrictions", "uid_mappings",
    "gid_mappings", "mask_paths", "readonly_paths", "rlimits",
    "no_new_privileges", "oom_score_adj", "sysctl", "system_properties",
    "networks", "routes", "cgroups", "parent_death_signal", "version",
    "labels", "hooks", "Hooks", "seccomp", "pivot_dir", "privatefs",
    "rootPropagation", "umask",
})
# Known but not implemented: a warning when set, silence when zero/empty
# (2015 configs write every key, so zero values are common and harmless).
# Hooks was an untagged Go field, hence the capitalised spelling.
_UNSUPPORTED_TOP_KEYS = ("hooks", "Hooks", "pivot_dir", "privatefs", "rootPropagation")

_MOUNT_CONFIG_KEYS = frozenset({"no_pivot_root", "readonly_fs", "mounts", "device_nodes", "mount_label"})
_CONTEXT_KEYS = frozenset({"apparmor_profile", "process_label", "mount_label", "restrictions"})


# --- public API --------------------------------------------------------------

def load_config(root: str, config_path: str | None = None) -> tuple[Config, list[str]]:
    """Read <root>/container.json (or config_path); return (config, warnings).

    With ``config_path``, a config without a ``rootfs`` runs ``root`` (``nsinit
    --config /elsewhere/c.json exec`` in a rootfs directory runs that
    directory), not the directory the file happens to sit in.
    """
    path = os.path.abspath(config_path if config_path else os.path.join(root, CONFIG_FILE))
    source = os.path.basename(path)
    data = _read_json(path, source)
    default_rootfs = os.path.abspath(root) if config_path else None
    caller = None
    if os.geteuid() != 0:  # a plain user's: root's start-up does not load nsinit.rootless
        from nsinit import rootless

        caller = rootless.Caller.current()
    return parse_config(data, source, os.path.dirname(path), default_rootfs=default_rootfs, caller=caller,
                        source_path=path)


def parse_config(data: dict, source: str, base_dir: str, *, default_rootfs: str | None = None,
                 caller: Caller | None = None, source_path: str | None = None) -> tuple[Config, list[str]]:
    """Normalise and validate decoded JSON; ``source`` names the file in errors,
    ``source_path`` (by default ``source``) is the Config's ``source``: made
    so at once, not by a copy of the whole Config afterwards.

    Relative paths (rootfs, bind sources) are relative to ``base_dir``, the
    directory holding the config file; without a ``rootfs`` field the rootfs
    is ``default_rootfs`` if given, else ``base_dir``.
    """
    ctx = _Context(source, os.path.abspath(base_dir))
    ctx.default_rootfs = default_rootfs
    if not isinstance(data, dict):
        ctx.fail("", "must be a JSON object")
    _check_every_string(ctx, data)
    ctx.check_keys(data, _TOP_KEYS, "")
    for key in _UNSUPPORTED_TOP_KEYS:
        _warn_if_set(ctx, data, key, "")
    mount_config = ctx.collect(_section, data, "mount_config", _MOUNT_CONFIG_KEYS)
    context = ctx.collect(_section, data, "context", _CONTEXT_KEYS)
    # restrict_sys / restrictions (2014) are accepted and need no handling:
    # the default mask and read-only paths and the read-only sysfs already do
    # what they asked for.  version and labels are informational.

    origin: dict[str, str] = {}

    def pick(field: str, candidates: list[tuple[dict | None, str, str]]) -> Any:
        value, origin[field] = ctx.collect(_pick, candidates) or (None, candidates[0][2])
        return value

    raw_mounts = pick("mounts", [(data, "mounts", "mounts"), (mount_config, "mounts", "mount_config.mounts")])
    raw_devices = pick("devices", [
        (data, "devices", "devices"),
        (data, "device_nodes", "device_nodes"),
        (mount_config, "device_nodes", "mount_config.device_nodes"),
    ])
    readonlyfs = pick("readonlyfs", [
        (data, "readonlyfs", "readonlyfs"),
        (data, "readonly_fs", "readonly_fs"),
        (mount_config, "readonly_fs", "mount_config.readonly_fs"),
    ])
    no_pivot_root = pick("no_pivot_root", [
        (data, "no_pivot_root", "no_pivot_root"),
        (mount_config, "no_pivot_root", "mount_config.no_pivot_root"),
    ])
    apparmor_profile = pick("apparmor_profile", [
        (data, "apparmor_profile", "apparmor_profile"),
        (context, "apparmor_profile", "context.apparmor_profile"),
    ])
    process_label = pick("process_label", [
        (data, "process_label", "process_label"),
        (context, "process_label", "context.process_label"),
    ])
    mount_label = pick("mount_label", [
        (data, "mount_label", "mount_label"),
        (mount_config, "mount_label", "mount_config.mount_label"),
        (context, "mount_label", "context.mount_label"),
    ])
    raw_sysctl = pick("sysctl", [(data, "sysctl", "sysctl"), (data, "system_properties", "system_properties")])

    config = Config(
        source=source if source_path is None else source_path,
        rootfs=ctx.collect(_parse_rootfs, data.get("rootfs"), "rootfs"),
        hostname=ctx.collect(_parse_hostname, data.get("hostname"), "hostname"),
        namespaces=ctx.collect(_parse_namespaces, data.get("namespaces"), "namespaces"),
        uid_mappings=ctx.collect(_parse_id_mappings, data.get("uid_mappings"), "uid_mappings"),
        gid_mappings=ctx.collect(_parse_id_mappings, data.get("gid_mappings"), "gid_mappings"),
        capabilities=ctx.collect(_parse_capabilities, data),
        mounts=ctx.collect(_parse_effective_mounts, raw_mounts, origin["mounts"]),
        devices=ctx.collect(_parse_effective_devices, raw_devices, origin["devices"]),
        environment=ctx.collect(_parse_environment, data.get("environment"), "environment"),
        user=ctx.collect(_parse_user, data.get("user"), "user"),
        additional_groups=ctx.collect(_parse_groups, data.get("additional_groups"), "additional_groups"),
        working_dir=ctx.collect(_parse_working_dir, data.get("working_dir"), "working_dir"),
        umask=ctx.collect(_parse_umask, data.get("umask"), "umask"),
        tty=None if data.get("tty") is None else ctx.collect(_bool, data["tty"], "tty"),
        readonlyfs=ctx.collect(_opt_bool, readonlyfs, origin["readonlyfs"]),
        no_pivot_root=ctx.collect(_opt_bool, no_pivot_root, origin["no_pivot_root"]),
        mask_paths=ctx.collect(_parse_path_list, data.get("mask_paths"), "mask_paths", DEFAULT_MASK_PATHS),
        readonly_paths=ctx.collect(_parse_path_list, data.get("readonly_paths"), "readonly_paths", DEFAULT_READONLY_PATHS),
        rlimits=ctx.collect(_parse_rlimits, data.get("rlimits"), "rlimits"),
        no_new_privileges=ctx.collect(_opt_bool, data.get("no_new_privileges"), "no_new_privileges"),
        oom_score_adj=ctx.collect(_parse_oom_score_adj, data.get("oom_score_adj"), "oom_score_adj"),
        sysctl=ctx.collect(_parse_sysctl, raw_sysctl, origin["sysctl"]),
        networks=ctx.collect(_parse_networks, data.get("networks"), "networks"),
        routes=ctx.collect(_parse_routes, data.get("routes"), "routes"),
        cgroups=_parse_cgroups_if_given(ctx, data.get("cgroups")),
        apparmor_profile=ctx.collect(_opt_str, apparmor_profile, origin["apparmor_profile"]),
        process_label=ctx.collect(_opt_str, process_label, origin["process_label"]),
        mount_label=ctx.collect(_opt_str, mount_label, origin["mount_label"]),
        parent_death_signal=ctx.collect(_parse_parent_death_signal, data.get("parent_death_signal"), "parent_death_signal"),
        seccomp=ctx.collect(_parse_seccomp, data.get("seccomp")),
    )
    # The rules across fields are checked once every field is valid: with a
    # field that failed, they would judge the default standing in for it.
    ctx.raise_errors()
    if caller is not None:
        # Without root: a user namespace and maps of the caller's own ids
        # (nsinit/config/rootless.py), before the rules below judge them
        # (and before a capabilities_mask looks for the user namespace).
        from nsinit.config.rootless import apply_rootless

        config = apply_rootless(ctx, config, caller)
    if data.get("capabilities_mask") is not None:
        config = _limit_mask_to_caller(config)
    config = ctx.collect(_join_netns_networks, config) or config
    _check_namespace_requirements(ctx, config, origin)
    _check_route_next_hops(ctx, config)
    _check_security_modules(ctx, config, origin)
    ctx.raise_errors()
    return config, ctx.warnings


# --- top-level sections ------------------------------------------------------

def _parse_cgroups_if_given(ctx: _Context, value: Any) -> CgroupConfig | None:
    """The cgroups part's module only for a config with a "cgroups" key: the
    one ``nsinit rootfs`` writes has none (nsinit's default cgroup), and a
    module costs every start its import (~0.15 ms here)."""
    if value is None:
        return None
    from nsinit.config.cgroups import _parse_cgroups

    return ctx.collect(_parse_cgroups, value, "cgroups")


def _section(ctx: _Context, data: dict, key: str, known: frozenset[str]) -> dict | None:
    """A nested object of the top level (2014 mount_config, context), keys checked."""
    value = data.get(key)
    if value is None:
        return None
    obj = _obj(ctx, value, key)
    ctx.check_keys(obj, known, key)
    return obj


# --- seccomp -----------------------------------------------------------------

def _parse_seccomp(ctx: _Context, value: Any) -> Any:
    if value is None:
        return None
    from nsinit.config import seccomp  # only a config with a filter pays for it

    config, warnings = seccomp.parse_libcontainer(value, ctx.source)
    ctx.warnings.extend(warnings)
    return config


# --- rules across fields -----------------------------------------------------

def _check_namespace_requirements(ctx: _Context, config: Config, origin: dict[str, str]) -> None:
    """Settings that would change the host unless the container has the namespace."""

    def need(namespace: str, field: str) -> None:
        if not config.has_namespace(namespace):
            ctx.report(field, f"requires the {namespace} namespace")

    if config.hostname:
        need("NEWUTS", "hostname")
    if config.uid_mappings:
        need("NEWUSER", "uid_mappings")
    if config.gid_mappings:
        need("NEWUSER", "gid_mappings")
    user_ns = config.namespace("NEWUSER")
    if user_ns is not None and not user_ns.path:
        # A new user namespace without maps leaves every id unmapped (nobody),
        # and root in it could not even set up the mounts.
        for field in ("uid_mappings", "gid_mappings"):
            if not getattr(config, field):
                ctx.report(field, "is required by the NEWUSER namespace")
    for i, network in enumerate(config.networks):
        if network.type != "netns":  # netns networks join an existing namespace
            need("NEWNET", _item("networks", i))
    if config.routes:
        need("NEWNET", "routes")
    if config.mounts != DEFAULT_MOUNTS:
        need("NEWNS", origin["mounts"])
    if config.mask_paths != DEFAULT_MASK_PATHS:
        need("NEWNS", "mask_paths")
    if config.readonly_paths != DEFAULT_READONLY_PATHS:
        need("NEWNS", "readonly_paths")
    if config.readonlyfs:
        need("NEWNS", origin["readonlyfs"])  # would remount the host's / read-only
    # Labels are written to /proc/self/attr: without NEWNS the container's /proc
    # is a directory of the image's, whose regular files would take the write
    # and leave the command unconfined without a word (as a fake
    # /proc/sys/kernel/cap_last_cap once kept every capability; issue 15).
    for field in ("apparmor_profile", "process_label"):
        if getattr(config, field):
            need("NEWNS", origin[field])
    for key, _ in config.sysctl:
        namespace = _sysctl_namespace(key)
        if namespace is None:
            ctx.report(_child(origin["sysctl"], key), "not namespaced, refusing to change the host")
        else:
            need(namespace, _child(origin["sysctl"], key))
