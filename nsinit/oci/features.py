"""``nsinit-runc features``: what this runtime supports, in runc's JSON shape
(runtime-spec features.md, as runc 1.1 prints it)."""
from __future__ import annotations

import os

from nsinit.config import names
from nsinit.oci.hooks import HOOK_KINDS
from nsinit.oci import SPEC_VERSION
from nsinit.oci.spec import NAMESPACES

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from nsinit.oci.cli import Globals


def features() -> dict[str, Any]:
    from nsinit import __version__
    from nsinit.config import process, seccomp

    # Only what spec.py turns into a mount: the mount(2) flags, their
    # negations, propagation and runc's tmpcopyup; anything else goes to the
    # filesystem as data.
    mount_options = sorted({*names.MOUNT_FLAGS, *names.MOUNT_CLEAR_FLAGS, *names.MOUNT_PROPAGATION,
                            "tmpcopyup", "notmpcopyup"})
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": [key for key, _ in HOOK_KINDS],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(names.CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": sorted(name for name in seccomp.ACTIONS if name.startswith("SCMP_ACT_")),
                        "operators": [f"SCMP_CMP_{op.upper()}" for op in seccomp.OPERATORS],
                        "archs": sorted({f"SCMP_ARCH_{arch.upper()}" for arch in seccomp.ARCH_ALIASES.values()})},
            "apparmor": {"enabled": process._apparmor_enabled()},
            "selinux": {"enabled": os.path.isdir(process.SELINUX_FS)},
        },
        "annotations": {"org.nsinit.version": __version__},
    }


def cmd_features(globals_: Globals, args: dict[str, Any]) -> int:
    from nsinit import jsontext

    print(jsontext.dumps(features(), indent=4))
    return 0
