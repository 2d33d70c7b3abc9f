"""The one message protocol between nsinit's processes.

Three conversations use it:

- the supervisor (or creator) and the container's init or a joined process,
  over the sync socket (SOCK_SEQPACKET: one message a packet, an fd riding
  along as SCM_RIGHTS).  The child says ``attached`` once it is in its
  cgroups, then waits for ``go`` (sent once the parent has recorded it:
  maps, pid file, state); meanwhile it sends ``trace`` records, its pty
  master (``console``) and seccomp's notify fd (``seccomp_listener``, which
  the parent answers with ``seccomp_listener_sent``).  It ends with a
  ``failed``, or ``created`` (detached: it waits for ``start``), or nothing:
  a successful execve closes its close-on-exec end and the parent reads EOF.
  This is the subprocess pattern (which step, which errno) applied to a
  whole container setup;
- a released init and ``start``, over the exec fifo (nsinit/lifecycle/start.py):
  the one failure left to tell, ``failed`` or ``exec_failed``;
- the supervisor and its network helper (nsinit/network/helper.py), over two
  pipes: ``set_up_networks`` (the init's pid), answered by ``networks`` (the
  state records) or ``failed``.

A message is a plain dict whose ``"kind"`` names it, on the wire one JSON
object ``{"kind": "trace", "step": "mounts", ...}`` (nsinit/jsontext.py: no
json package on the start-up path).  Each kind has a typed constructor below
(``trace(...)``), which ``decode`` calls too, so that a message that arrives
is one the constructor could have made; its fields' types are a TypedDict
that only the type checker sees (classes made at import, records or not,
would cost every container start ~10 us each).  A field named ``fd`` never
goes into the JSON: it is the fd passed as SCM_RIGHTS, and arrives as the
receiver's own (close-on-exec) fd.

The exec trampoline (native/trampoline.c) writes its one message in C, by
hand: ``{"exec_errno": N}``, without a kind; ``decode`` reads it as
``ExecFailed``.

To add a kind: its TypedDict and its constructor here (a field ``fd`` if it
passes one), the constructor listed in ``KINDS``; then one entry in the
receiver's dispatch table (``_Launch.child_message_handlers`` for what the
child sends to its parent).
"""
from __future__ import annotations

import os
import sys

# The C module under socket.py: socket.py adds enum classes and selectors
# that nsinit does not use, at ~3 ms of every container start.
import _socket

from nsinit import jsontext
from nsinit.errors import NsinitError, SyscallError, describe_oserror

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable, Literal, TypedDict, Union

    class Attached(TypedDict):
        kind: Literal["attached"]

    class Trace(TypedDict):
        kind: Literal["trace"]
        step: str
        start: float
        ms: float
        calls: list[str]
        failed: bool
        errno: int | None
        error: str

    class Console(TypedDict):
        kind: Literal["console"]
        fd: int

    class SeccompListener(TypedDict):
        kind: Literal["seccomp_listener"]
        fd: int

    class Created(TypedDict):
        kind: Literal["created"]

    class Failed(TypedDict):
        kind: Literal["failed"]
        step: str
        message: str
        exit: int
        errno: int | None
        syscall: str | None
        target: str | None
        strerror: str | None

    class ExecFailed(TypedDict):
        kind: Literal["exec_failed"]
        errno: int

    class HooksDue(TypedDict):
        kind: Literal["hooks"]

    class Go(TypedDict):
        kind: Literal["go"]

    class HooksRan(TypedDict):
        kind: Literal["hooks_ran"]
        state: dict[str, Any]

    class SeccompListenerSent(TypedDict):
        kind: Literal["seccomp_listener_sent"]

    class SetUpNetworks(TypedDict):
        kind: Literal["set_up_networks"]
        init_pid: int

    class Networks(TypedDict):
        kind: Literal["networks"]
        records: list[dict[str, Any]]

    Message = Union[Attached, Trace, Console, SeccompListener, Created, Failed, ExecFailed, Go,
                    SeccompListenerSent, SetUpNetworks, Networks, HooksDue, HooksRan]

MAX_MESSAGE = 65536
_FD_SIZE = 4  # an fd in SCM_RIGHTS is a C int
STEP = "sync"  # the step a malformed message is blamed on


# --- child → parent ------------------------------------------------------------------

def attached() -> Attached:
    """The child is in its cgroups (and cgroup namespace)."""
    return {"kind": "attached"}


def trace(step: str, start: float, ms: float, calls: list[str], failed: bool = False,
          errno: int | None = None, error: str = "") -> Trace:
    """One child step, for --trace: when it started (monotonic), how long,
    the calls it made, and whether (how) it failed."""
    return {"kind": "trace", "step": step, "start": start, "ms": ms, "calls": calls,
            "failed": failed, "errno": errno, "error": error}


def console(fd: int) -> Console:
    """The pty master, made in the container's devpts, for the supervisor."""
    return {"kind": "console", "fd": fd}


def seccomp_listener(fd: int) -> SeccompListener:
    """seccomp's notification fd, for the configured listener."""
    return {"kind": "seccomp_listener", "fd": fd}


def created() -> Created:
    """A detached init is set up and waits on its exec fifo for ``start``."""
    return {"kind": "created"}


def failed(step: str, message: str, exit: int, errno: int | None = None, syscall: str | None = None,
           target: str | None = None, strerror: str | None = None) -> Failed:
    """A step failed: its name, its line, the exit status, the errno, and for
    a failed system call the call, its path and the kernel's text (CPython's
    _posixsubprocess writes "step:errno"; the call and its path are ours)."""
    return {"kind": "failed", "step": step, "message": message, "exit": exit, "errno": errno,
            "syscall": syscall, "target": target, "strerror": strerror}


def hooks() -> HooksDue:
    """The init stands before pivot_root: run the OCI hooks of the runtime's
    namespaces, then answer ``hooks_ran`` (nsinit/lifecycle/hooks.py)."""
    return {"kind": "hooks"}


def exec_failed(errno: int) -> ExecFailed:
    """The trampoline's execve of the command failed (written in C, see above)."""
    return {"kind": "exec_failed", "errno": errno}


# --- parent → child ------------------------------------------------------------------

def go() -> Go:
    """The parent has recorded the child: it may set up and exec."""
    return {"kind": "go"}


def hooks_ran(state: dict[str, Any]) -> HooksRan:
    """prestart and createRuntime ran; ``state`` is the container's, for
    the init's own hooks (createContainer, startContainer)."""
    return {"kind": "hooks_ran", "state": state}


def seccomp_listener_sent() -> SeccompListenerSent:
    """The listener has the notify fd: the child may exec."""
    return {"kind": "seccomp_listener_sent"}


# --- supervisor ↔ network helper -----------------------------------------------------

def set_up_networks(init_pid: int) -> SetUpNetworks:
    """The init's network namespace exists: set up its networks."""
    return {"kind": "set_up_networks", "init_pid": init_pid}


def networks(records: list[dict[str, Any]]) -> Networks:
    """The networks are set up: their state records (nsinit/network/veth.py)."""
    return {"kind": "networks", "records": records}


KINDS: dict[str, Callable[..., Message]] = {
    "attached": attached, "trace": trace, "console": console, "seccomp_listener": seccomp_listener,
    "created": created, "failed": failed, "exec_failed": exec_failed, "go": go,
    "seccomp_listener_sent": seccomp_listener_sent, "set_up_networks": set_up_networks, "networks": networks,
    "hooks": hooks, "hooks_ran": hooks_ran,
}
_PASS_FD = frozenset(("console", "seccomp_listener"))  # the kinds with an ``fd``
_TRAMPOLINE_KEY = "exec_errno"


def failure_error(message: Failed) -> NsinitError:
    """The receiver's copy of a ``failed``: the same step, exit status and
    errno; a failed system call comes back as a SyscallError (its
    ``__cause__``) and its line is made again from it."""
    step, err, syscall = message["step"], message["errno"], message["syscall"]
    if syscall and err:
        call = SyscallError(err, syscall, message["target"], message["strerror"])
        failure = NsinitError(step, describe_oserror(call, step), message["exit"])
        failure.__cause__ = call
    else:
        failure = NsinitError(step, message["message"], message["exit"])
    failure.errno = err
    return failure


# --- the wire ------------------------------------------------------------------------

def encode(message: Message) -> bytes:
    """The JSON of ``message``; its ``fd`` (if any) is not in it."""
    wire: dict[str, object] = dict(message)
    wire.pop("fd", None)
    return jsontext.dumps(wire).encode()


def decode(data: bytes, fd: int = -1) -> Message:
    """The message in ``data``, made again by its kind's constructor; ``fd``,
    passed with it, becomes its ``fd`` (closed if its kind passes none).
    Anything else: NsinitError("sync")."""
    try:
        wire = jsontext.loads(data)
        kind = wire.pop("kind", None) if isinstance(wire, dict) else None
    except ValueError:
        wire, kind = data[:200], None
    if kind is None and isinstance(wire, dict) and set(wire) == {_TRAMPOLINE_KEY}:
        kind, wire = "exec_failed", {"errno": wire[_TRAMPOLINE_KEY]}
    make = KINDS.get(kind) if isinstance(kind, str) else None
    if fd >= 0:
        if kind in _PASS_FD:
            wire["fd"] = fd
        else:
            os.close(fd)
            fd = -1
    if make is None:
        raise NsinitError(STEP, f"unexpected message {wire!r}")
    try:
        return make(**wire)
    except TypeError:
        if fd >= 0:
            os.close(fd)
        raise NsinitError(STEP, f"malformed {kind} message {wire!r}") from None

# --- the sync socket -----------------------------------------------------------------

def socket_pair() -> tuple[int, int]:
    """(parent end, child end); both close-on-exec."""
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    return a.detach(), b.detach()


def send(fd: int, message: Message) -> None:
    """Send one message as one packet; its ``fd`` rides along as SCM_RIGHTS
    (the container's pty master travels to the supervisor this way)."""
    data = encode(message)
    # (mypy narrows a union of TypedDicts by one kind, not by a set of them)
    pass_fd = message["fd"] if message["kind"] in _PASS_FD else -1  # type: ignore[typeddict-item]
    if pass_fd < 0:
        os.write(fd, data)
        return
    sock = _socket.socket(fileno=fd)
    try:
        rights = pass_fd.to_bytes(_FD_SIZE, sys.byteorder, signed=True)
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    finally:
        sock.detach()


def receive(fd: int) -> Message | None:
    """The next message, or None at EOF."""
    sock = _socket.socket(fileno=fd)
    try:
        data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, _socket.CMSG_SPACE(_FD_SIZE), _socket.MSG_CMSG_CLOEXEC)
    finally:
        sock.detach()
    fds = [int.from_bytes(payload[i:i + _FD_SIZE], sys.byteorder, signed=True)
           for level, kind, payload in ancillary
           if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
           for i in range(0, len(payload) - _FD_SIZE + 1, _FD_SIZE)]
    for extra in fds[1:] if data else fds:
        os.close(extra)
    if not data:
        return None
    return decode(data, fds[0] if fds else -1)


# --- pipes and the exec fifo: one message, then EOF -----------------------------------

def write_all(fd: int, message: Message) -> None:
    """``message`` on a pipe, for a reader that reads to EOF (``read_all``)."""
    data = encode(message)
    while data:
        data = data[os.write(fd, data):]


def read_all(fd: int) -> bytes:
    """What a writer wrote until it closed its end."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
