"""Outbound networking without root: slirp4netns or pasta, a user-mode TCP/IP stack.

A plain user cannot make a veth (it needs CAP_NET_ADMIN on the host), but
can run a helper that joins the container's user and network namespaces,
opens a tap device there and relays its packets through ordinary sockets
on the host: ``{"type": "slirp4netns"}`` (Debian slirp4netns, podman's
and rootlesskit's) or ``{"type": "pasta"}`` (Debian passt).  Root may use
them too.

The helper is started by the supervisor once the id maps are written and
before the init is released, so the interface is up with its address and
default route when the command starts; it is stopped when the container
ends.  Neither forwards anything *into* the container, nor lets it reach
the host's loopback (slirp4netns --disable-host-loopback, pasta
--no-map-gw): the host's local services stay the host's.
"""
from __future__ import annotations

import os
import select
import subprocess
import time

from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import IO

    from nsinit.config.model import NetworkConfig

TYPES = ("slirp4netns", "pasta")
DEFAULT_NAME = "tap0"
PACKAGES = {"slirp4netns": "slirp4netns", "pasta": "passt"}
TUN = "/dev/net/tun"
READY_SECONDS = 10.0
STOP_SECONDS = 2.0
SLIRP_MTU = 65520  # slirp4netns' own recommendation for throughput


class UserModeNetwork:
    """One running slirp4netns or pasta, serving the container ``pid``."""

    def __init__(self, network: NetworkConfig) -> None:
        self.network = network
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_fd = -1   # slirp4netns: it exits when this, our end, closes
        self.log: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return self.network.name or DEFAULT_NAME

    def start(self, pid: int) -> None:
        from nsinit import rootless

        kind = self.network.type
        program = rootless.find_program(kind)
        if not program:
            raise NsinitError("network", f"{kind} is not installed (Debian package {PACKAGES[kind]})")
        if not os.access(TUN, os.R_OK | os.W_OK):
            # It opens the host's node from inside the container's user
            # namespace, where only "other" permission bits can apply.
            raise NsinitError("network", f"{kind} needs {TUN} readable and writable by you (distributions "
                                         "make it 0666; its ioctls need CAP_NET_ADMIN anyway)")
        import tempfile

        self.log = tempfile.TemporaryFile(prefix="nsinit-network-")
        if kind == "slirp4netns":
            self._start_slirp4netns(program, pid)
        else:
            self._start_pasta(program, pid)

    def _start_slirp4netns(self, program: str, pid: int) -> None:
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        exit_r, self.exit_fd = os.pipe2(os.O_CLOEXEC)
        args = [program, "--configure", f"--mtu={self.network.mtu or SLIRP_MTU}", "--disable-host-loopback",
                "--enable-sandbox", "--enable-seccomp", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                str(pid), self.name]
        try:
            self.process = self._spawn(args, (ready_w, exit_r))
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready, _, _ = select.select([ready_r], [], [], READY_SECONDS)
            said = os.read(ready_r, 1) if ready else b""
        finally:
            os.close(ready_r)
        if said != b"1":
            self._fail("did not get ready" if not ready else "exited before it was ready")

    def _start_pasta(self, program: str, pid: int) -> None:
        # No port of the host forwarded in (-t/-u none), none out to the
        # host's own namespace (-T/-U none), no host loopback behind the
        # gateway (--no-map-gw).
        import tempfile

        # pasta writes its pid file once its loop is about to run; the route
        # alone shows only that the namespace is configured (a connection
        # made in between was seen to hang).
        pid_dir = tempfile.mkdtemp(prefix="nsinit-pasta-")
        pid_file = os.path.join(pid_dir, "pid")
        args = [program, "--config-net", "--foreground", "--quiet", "--ns-ifname", self.name,
                "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw", "--pid", pid_file]
        if self.network.mtu:
            args += ["--mtu", str(self.network.mtu)]
        try:
            self.process = self._spawn(args + [str(pid)], ())
            self._wait_for_pasta(pid, pid_file)
        finally:
            try:
                os.unlink(pid_file)
            except FileNotFoundError:
                pass  # never written: the error says why
            os.rmdir(pid_dir)

    def _wait_for_pasta(self, pid: int, pid_file: str) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_SECONDS
        while not (self._has_default_route(pid) and _nonempty(pid_file)):
            if self.process.poll() is not None:
                self._fail("exited before it was ready")
            if time.monotonic() > deadline:
                self._fail("did not get ready")
            time.sleep(0.01)

    def _spawn(self, args: list[str], fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                    pass_fds=fds, close_fds=True, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        except OSError as err:
            raise NsinitError("network", f"{args[0]}: {err.strerror}") from None

    def _has_default_route(self, pid: int) -> bool:
        """The interface is configured once the netns has its default route
        (read through /proc/PID/net, which shows that process's netns)."""
        try:
            with open(f"/proc/{pid}/net/route", encoding="ascii", errors="replace") as f:
                return any(line.split()[:2] == [self.name, "00000000"] for line in f.readlines()[1:])
        except OSError:
            return False

    def _fail(self, what: str) -> None:
        said = ""
        if self.log is not None:
            self.log.seek(0)
            said = " ".join(self.log.read(2000).decode(errors="replace").split())
        self.stop()
        raise NsinitError("network", f"{self.network.type} {what}" + (f": {said}" if said else ""))

    def stop(self) -> None:
        """End the helper: slirp4netns on its exit fd closing, pasta on SIGTERM."""
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        process, self.process = self.process, None
        if process is not None:
            if self.network.type != "slirp4netns":
                process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def _die_with_parent() -> None:
    """In the helper before exec: SIGTERM when the supervisor dies, even by
    SIGKILL (pasta would otherwise outlive the container; the supervisor
    is single-threaded, so "parent thread" is the supervisor itself)."""
    from nsinit import _native

    _native.prctl(1, 15, label="prctl(PR_SET_PDEATHSIG)")  # PR_SET_PDEATHSIG, SIGTERM


def _nonempty(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def start_networks(networks: tuple[NetworkConfig, ...], pid: int) -> list[UserModeNetwork]:
    """Start a helper for each slirp4netns/pasta network of the container ``pid``.

    If one fails, the ones already started are stopped before the error."""
    started: list[UserModeNetwork] = []
    try:
        for network in networks:
            if network.type in TYPES:
                helper = UserModeNetwork(network)
                helper.start(pid)
                started.append(helper)
    except BaseException:
        stop_networks(started)
        raise
    return started


def stop_networks(helpers: list[UserModeNetwork]) -> None:
    for helper in reversed(helpers):
        helper.stop()
