"""container.json: load any era of it into one typed, validated Config.

``load_config`` is what the CLI calls; ``parse_config`` works on decoded JSON;
``config_to_dict`` gives the normalised form back (``nsinit config``).
"""
from __future__ import annotations

from nsinit.config.defaults import DEFAULT_CAPABILITIES
from nsinit.config.load import config_to_dict, load_config, parse_config
from nsinit.config.model import (
    CapabilitySets,
    CgroupConfig,
    CgroupResources,
    Config,
    DeviceConfig,
    IdMap,
    MountConfig,
    NamespaceConfig,
    NetworkConfig,
    Rlimit,
    RouteConfig,
)

__all__ = [
    "DEFAULT_CAPABILITIES",
    "CapabilitySets",
    "CgroupConfig",
    "CgroupResources",
    "Config",
    "DeviceConfig",
    "IdMap",
    "MountConfig",
    "NamespaceConfig",
    "NetworkConfig",
    "Rlimit",
    "RouteConfig",
    "config_to_dict",
    "load_config",
    "parse_config",
]
