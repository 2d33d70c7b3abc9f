"""Running in an existing network namespace (``{"type": "netns", "path": P}``).

The config loader turns such a network into the NEWNET namespace's path, and
the init joins it like any namespace given by path.  What is left here is
the check, done by the supervisor before the init is released, that P really
is a network namespace: the init's own setns would only say "Invalid
argument", without naming the field.  It is not done when the config is
loaded because every command loads it: ``nsinit kill`` must still work after
``ip netns del`` removed the file of a namespace the container keeps alive.

Stdlib only: this runs for every container that joins a network namespace.
"""
from __future__ import annotations

import errno
import fcntl
import os

from nsinit.config.names import NAMESPACE_CLONE_FLAGS, NAMESPACE_PROC_FILES
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from nsinit.config.model import Config

NS_GET_NSTYPE = 0xB703     # _IO(0xb7, 0x3), Linux 4.11: the CLONE_NEW* type of an nsfs file
CLONE_NEWNET = NAMESPACE_CLONE_FLAGS["NEWNET"]


def check_network_namespace(config: Config) -> None:
    """Raise NsinitError("network", "<field>: ...") unless the NEWNET path
    (if any) names a network namespace."""
    ns = config.namespace("NEWNET")
    if ns is None or not ns.path:
        return
    field = _field_of(config, ns.path)
    try:
        fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NsinitError("network", f"{field}: {ns.path}: {err.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as err:
        if err.errno not in (errno.ENOTTY, errno.EINVAL):
            raise NsinitError("network", f"{field}: {ns.path}: {err.strerror}") from None
        raise NsinitError("network", f"{field}: {ns.path} is not a namespace file "
                                     "(like /run/netns/NAME or /proc/PID/ns/net)") from None
    finally:
        os.close(fd)
    if kind != CLONE_NEWNET:
        other = next((NAMESPACE_PROC_FILES[name] for name, flag in NAMESPACE_CLONE_FLAGS.items() if flag == kind),
                     hex(kind))
        raise NsinitError("network", f"{field}: {ns.path} is a {other} namespace, not a network namespace")


def _field_of(config: Config, path: str) -> str:
    """The config field the path came from, for the error message."""
    for i, network in enumerate(config.networks):
        if network.type == "netns" and os.path.normpath(network.path) == os.path.normpath(path):
            return f"networks[{i}].path"
    return "namespaces[NEWNET].path"
