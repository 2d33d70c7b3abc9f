"""Checkpoint and restore of a container with CRIU, driven as runc does.

nsinit never runs criu's command-line front end for the work: it starts
``criu swrk FD`` with one end of a socketpair and sends protobuf requests
(rpc.proto beside this file), answering the notifications criu sends on the
way.  The pieces, one concern each:

- ``options``: CriuOptions, the library's knobs (libcontainer's CriuOpts);
- ``swrk``: the RPC client (start criu, one request, notifications, errors),
  and finding criu (NSINIT_CRIU or ``criu`` on PATH) with its version check;
- ``mounts``: what the container mounted from outside, declared to criu as
  external mounts at dump and mapped back at restore;
- ``fds``: the init's stdio recorded at dump, handed back as inherited fds;
- ``checkpoint`` and ``restore``: the two flows.

Nothing here is imported on the create or join path.
"""
from __future__ import annotations

from nsinit.errors import NsinitError

# vvar_vclock, which kernels from 6.x map beside the vDSO, is understood from
# criu 4.1 on; older releases fail every dump here ("Unexpected rt vDSO area").
MIN_VERSION = (4, 1)
ENV_CRIU = "NSINIT_CRIU"
IMAGES_RECORD = "nsinit-state.json"   # nsinit's record of the container, beside criu's images
DESCRIPTORS_FILE = "descriptors.json"  # what the init's fds 0-2 were (runc's name)


class CriuError(NsinitError):
    """criu is missing, too old, or refused a request."""
