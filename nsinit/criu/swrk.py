"""The criu RPC client: ``criu swrk FD`` over a socketpair.

One criu process serves one request (as runc uses it): nsinit sends a
``criu_req``, answers every ``criu_resp`` of type NOTIFY (criu waits for
that answer before it goes on), and the first other response is the
result.  Errors come back as one line: criu's own message if it sent one,
else the last error line of its log, and where the log is.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

from nsinit.criu import ENV_CRIU, MIN_VERSION, CriuError
from nsinit.criu.messages import messages

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

MAX_MESSAGE = 1 << 20   # criu's answers are a few hundred bytes; SEQPACKET truncates beyond the buffer


DEFAULT_NAME = "criu"


def find_criu(named: str = "") -> str:
    """``named`` (a path, or a name looked up on PATH), unless it is empty or
    the default "criu": then NSINIT_CRIU, else ``criu`` on PATH; a one-line
    error naming what was looked for."""
    if named and named != DEFAULT_NAME:
        found = named if "/" in named else shutil.which(named)
        if found is None or not os.access(found, os.X_OK) or os.path.isdir(found):
            raise CriuError("criu", f"{named} is not an executable file (the criu binary given)")
        return found
    configured = os.environ.get(ENV_CRIU, "")
    if configured:
        if not os.access(configured, os.X_OK) or os.path.isdir(configured):
            raise CriuError("criu", f"{ENV_CRIU}={configured} is not an executable file")
        return configured
    found = shutil.which("criu") or next((p for p in ("/usr/sbin/criu", "/sbin/criu") if os.access(p, os.X_OK)), None)
    if found is None:
        raise CriuError("criu", f"criu is not installed (none on PATH; set {ENV_CRIU} to its path); "
                                f"checkpoint and restore need criu {'.'.join(map(str, MIN_VERSION))} or newer")
    return found


class Swrk:
    """One ``criu swrk`` process and the socket nsinit talks to it on.

    criu's own fds 0-2 are /dev/null: everything it says goes to its log
    (before the log is open it warns on stderr about what it was built
    without, which is no business of nsinit's user).  ``keep_fds`` stay
    open in criu at the same numbers (images dir, namespace files, the
    stdio handed to the restored init); ``before_exec`` runs in criu's
    process before the exec (joining the container's cgroups).
    """

    def __init__(self, criu: str, *, keep_fds: list[int] | None = None,
                 before_exec: Callable[[], None] | None = None) -> None:
        self.criu = criu
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock = ours
        try:
            self.proc = subprocess.Popen(
                [criu, "swrk", str(theirs.fileno())], pass_fds=[theirs.fileno(), *(keep_fds or [])],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=before_exec, close_fds=True)
        except OSError as err:
            ours.close()
            raise CriuError("criu", f"cannot start {criu} swrk: {err.strerror}") from None
        finally:
            theirs.close()

    def call(self, request: Any, on_notify: Callable[[str, int], None] | None = None) -> Any:
        """Send ``request``; the final response (its ``success`` may be False)."""
        msgs = messages()
        self._send(request)
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except ConnectionResetError:
                data = b""
            if not data:
                return None  # criu exited without answering: the caller says so with its log
            response = msgs.criu_resp.FromString(data)
            if response.type != msgs.NOTIFY:
                return response
            ok = False
            try:
                if on_notify is not None:
                    on_notify(response.notify.script, response.notify.pid)
                ok = True
            finally:
                # criu waits for this answer; a failed hook makes it abort and unwind.
                self._send(msgs.criu_req(type=msgs.NOTIFY, notify_success=ok))
                if not ok:
                    self._drain()

    def _drain(self) -> None:
        """After a failed notification: until criu's final answer, which it
        sends once it has unwound (killed what it restored).  The caller's
        exception stands; criu's answer adds nothing to it."""
        msgs = messages()
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                return
            if not data or msgs.criu_resp.FromString(data).type != msgs.NOTIFY:
                return
            self._send(msgs.criu_req(type=msgs.NOTIFY, notify_success=False))

    def _send(self, request: Any) -> None:
        try:
            self.sock.send(request.SerializeToString())
        except (BrokenPipeError, ConnectionResetError):
            pass  # criu is gone; the receive that follows reports it

    def close(self) -> int:
        """Close the socket (criu exits on EOF) and reap criu."""
        self.sock.close()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def exit_text(self) -> str:
        """How criu ended, for a request it never answered."""
        status = self.proc.returncode
        if status is None:
            return "criu exited without an answer"
        if status < 0:
            import signal

            return f"criu was killed by {signal.Signals(-status).name} before it answered"
        return f"criu exited with status {status} without an answer"


def check_version(criu: str) -> tuple[int, int, int]:
    """criu's version through a VERSION request; refuses one older than MIN_VERSION."""
    msgs = messages()
    swrk = Swrk(criu)
    try:
        response = swrk.call(msgs.criu_req(type=msgs.VERSION))
    finally:
        swrk.close()
    wanted = ".".join(map(str, MIN_VERSION))
    if response is None or not response.success or not response.HasField("version"):
        # criu before 3.0 had no VERSION request at all.
        raise CriuError("criu", f"{criu} answered no version request: it is older than {wanted}, which nsinit needs")
    version = response.version
    found = (version.major_number, version.minor_number, version.sublevel)
    if found[:2] < MIN_VERSION:
        raise CriuError("criu", f"{criu} is criu {'.'.join(map(str, found))}; nsinit needs {wanted} or newer "
                                "(older releases cannot dump on this kernel's vDSO layout)")
    return found


def failure(what: str, response: Any, log_path: str, exit_text: str = "criu exited without an answer") -> CriuError:
    """One line for a failed request: the first real error of criu's log
    (the cause; later ones are its consequences), else criu's message."""
    detail = first_log_error(log_path)
    if not detail and response is not None and response.cr_errmsg:
        detail = response.cr_errmsg.strip().splitlines()[-1]
    if not detail and response is not None and response.cr_errno:
        detail = os.strerror(response.cr_errno)
    if not detail:
        detail = exit_text if response is None else "criu reported a failure"
    return CriuError(what, f"{detail} (criu log: {log_path})")


# Errors criu logs and then carries on after: never the cause of a failure.
# (Raising RLIMIT_NOFILE needs CAP_SYS_RESOURCE, which sandboxes often drop.)
_HARMLESS = ("Can't setup RLIMIT_NOFILE",)


def first_log_error(log_path: str) -> str:
    """The first "Error (file:line): text" line of a criu log, as "text"."""
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for line in lines:
        if "Error (" in line and not any(text in line for text in _HARMLESS):
            return line.split("Error (", 1)[1].split("): ", 1)[-1].strip()
    return ""
