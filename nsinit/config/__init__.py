"""container.json: load any era of it into one typed, validated Config.

``load_config`` is what the CLI calls; ``parse_config`` works on decoded JSON;
``config_to_dict`` gives the normalised form back (``nsinit config``).

The names below are imported on first use (PEP 562): importing the small
``nsinit.config.names`` or ``nsinit.config.model`` must not load the loader
(``load.py`` and the part modules it reads the config's parts with, ~1,900
lines), which a joined process never needs.
"""
from __future__ import annotations

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.config.defaults import DEFAULT_CAPABILITIES
    from nsinit.config.load import load_config, parse_config
    from nsinit.config.recorded import config_to_dict
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

_HOMES = {
    "DEFAULT_CAPABILITIES": "defaults",
    "config_to_dict": "recorded", "load_config": "load", "parse_config": "load",
    **{name: "model" for name in ("CapabilitySets", "CgroupConfig", "CgroupResources", "Config",
                                  "DeviceConfig", "IdMap", "MountConfig", "NamespaceConfig",
                                  "NetworkConfig", "Rlimit", "RouteConfig")},
}

__all__ = [
    "CapabilitySets",
    "CgroupConfig",
    "CgroupResources",
    "Config",
    "DEFAULT_CAPABILITIES",
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


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nsinit.config' has no attribute {name!r}")
    module = __import__(f"nsinit.config.{home}", fromlist=[name])
    value = getattr(module, name)
    globals()[name] = value
    return value
