"""The container's filesystem: from the host's tree to the rootfs as "/".

The child calls, in this order, inside its new mount namespace:
``prepare_root`` -> ``mount_all`` -> ``create_devices`` -> (``init_binary.bind_init``) -> ``pivot_to_rootfs``
-> (hostname, sysctls, ...) -> ``finish_rootfs``.  This package imports only
the stdlib and ``nsinit._native`` / ``nsinit.errors``, all at import time,
because after pivot_root the host's Python files are out of reach
(init_binary, exec --init's, and copyup, tmpcopyup's, are loaded only for
the containers that use them: child.optional_step_modules).
"""
from __future__ import annotations

from nsinit.mount.devices import create_devices
from nsinit.mount.paths import open_in_root, resolve_in_root
from nsinit.mount.rootfs import finish_rootfs, mount_all, pivot_to_rootfs, prepare_root

__all__ = [
    "resolve_in_root",
    "open_in_root",
    "prepare_root",
    "mount_all",
    "create_devices",
    "pivot_to_rootfs",
    "finish_rootfs",
]
