"""veth setup in a short-lived helper process.

A supervisor stays resident as long as its container.  Had it set up the
veths itself, pyroute2 and the stdlib it needs (logging, typing, enum, re,
socket, ...) would stay resident with it: 15.3 MB instead of 10.6 for a
veth container's supervisor, measured.  So the supervisor forks a helper
that runs ``veth.setup_networks`` and exits; the records come back over a
pipe as JSON.  Undoing them at the end needs no pyroute2 (``teardown``).

The helper ignores the signals the supervisor forwards to the container:
its work takes milliseconds, and a half-done setup it abandoned would leave
host veths nobody recorded.  If the setup fails, the helper has already
deleted what it created (``veth.setup_networks`` does), and the error comes
back as one line naming the field.
"""
from __future__ import annotations

import os

from nsinit import jsontext
from nsinit.errors import NsinitError

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    import signal
    from typing import Any, Iterable, NoReturn
else:
    import _signal as signal  # signal.py without its enum classes: see nsinit/sync.py

STEP = "network"


def setup_networks_in_helper(config: Any, pid: int, ignored_signals: Iterable[int]) -> list[dict[str, Any]]:
    """``veth.setup_networks(config, pid)``, run in a forked helper."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    helper = os.fork()
    if helper == 0:
        os.close(read_fd)
        _serve(config, pid, ignored_signals, write_fd)
    os.close(write_fd)
    try:
        data = _read_to_end(read_fd)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(helper, 0)
    if not data:
        raise NsinitError(STEP, f"the network helper process died ({_describe(status)})")
    reply = jsontext.loads(data)
    if "error" in reply:
        raise NsinitError(reply["step"], reply["error"])
    records: list[dict[str, Any]] = reply["records"]
    return records


def _serve(config: Any, pid: int, ignored_signals: Iterable[int], fd: int) -> NoReturn:
    try:
        for signum in ignored_signals:
            signal.signal(signum, signal.SIG_IGN)
        from nsinit.network import veth

        reply: dict[str, Any] = {"records": veth.setup_networks(config, pid)}
    except NsinitError as err:
        reply = {"step": err.step, "error": err.message}
    except BaseException as err:  # a bug: still one line, and the helper must not return
        reply = {"step": STEP, "error": f"{type(err).__name__}: {err}"}
    try:
        data = jsontext.dumps(reply).encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os._exit(0)


def _read_to_end(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
