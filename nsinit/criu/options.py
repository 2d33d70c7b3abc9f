"""CriuOptions: what ``Container.checkpoint`` and ``Container.restore`` take
(libcontainer's CriuOpts, field for field)."""
from __future__ import annotations

from nsinit.record import field, record

# criu's names for its cgroup modes (criu_cg_mode in rpc.proto).
MANAGE_CGROUPS_MODES = ("soft", "full", "strict", "ignore", "props", "none")


@record
class VethPair:
    """A veth of the container: its name inside, and the host end's name."""

    container_interface_name: str
    host_interface_name: str


@record
class CriuOptions:
    images_directory: str = ""        # default: a host-private directory per root dir (see checkpoint.py)
    work_directory: str = ""          # criu's logs and temporary files; default: the images directory
    leave_running: bool = False       # keep the container running after the dump
    tcp_established: bool = False     # dump (and restore) established TCP connections
    external_unix_connections: bool = False  # allow unix sockets connected to peers outside
    shell_job: bool = False           # the init belongs to a session/terminal outside the container
    file_locks: bool = False          # dump file locks the container holds
    pre_dump: bool = False            # dump memory only, keep running (needs soft-dirty tracking)
    page_server: str = ""             # "ADDRESS:PORT" of a `criu page-server` to send the memory to
    veth_pairs: list[VethPair] = field(default_factory=list)  # extra pairs; the config's veths are added
    manage_cgroups_mode: str = ""     # one of MANAGE_CGROUPS_MODES; "" = criu's default (soft)
    empty_namespaces: int = 0         # CLONE_NEW* bits of namespaces criu should restore empty
    detach: bool = False              # restore: return once restored, supervised in the background
    criu_path: str = ""               # the criu binary; "" (or "criu"): NSINIT_CRIU, else criu on PATH

    def check(self) -> None:
        from nsinit.criu import CriuError

        if self.manage_cgroups_mode and self.manage_cgroups_mode not in MANAGE_CGROUPS_MODES:
            raise CriuError("--manage-cgroups-mode", f'"{self.manage_cgroups_mode}" is not one of '
                                                     f'{", ".join(MANAGE_CGROUPS_MODES)}')
        if self.page_server:
            page_server_address(self.page_server)


def page_server_address(text: str) -> tuple[str, int]:
    from nsinit.criu import CriuError

    address, _, port = text.rpartition(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise CriuError("--page-server", f'"{text}" is not ADDRESS:PORT')
    return address.strip("[]"), int(port)
