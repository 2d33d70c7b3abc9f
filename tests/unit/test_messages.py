"""The one message protocol (nsinit/messages.py): every kind crosses a real
socket pair as itself, an fd rides along as SCM_RIGHTS, the trampoline's
hand-written C message is read as a kind, anything else is one clear error."""
from __future__ import annotations

import errno
import os
import pathlib
import socket
import subprocess
import sys

import pytest

from nsinit import messages, trampoline
from nsinit.errors import NsinitError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

EVERY_KIND = [
    messages.attached(),
    messages.go(),
    messages.trace("mounts", 12.5, 0.75, ["mount(/proc)"]),
    messages.trace("pivot_root", 1.0, 2.0, [], failed=True, errno=errno.EINVAL, error="Invalid argument"),
    messages.created(),
    messages.failed("mounts", "mount(/dev/pts): No such file or directory", 125, errno.ENOENT,
                    "mount", "/dev/pts", "No such file or directory"),
    messages.exec_failed(errno.ENOENT),
    messages.seccomp_listener_sent(),
    messages.set_up_networks(4242),
    messages.networks([{"type": "veth", "host": "nsinit-1"}]),
    messages.hooks(),
    messages.hooks_ran({"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b",
                        "annotations": {}}),
]


@pytest.fixture
def pair() -> Iterator[tuple[int, int]]:
    parent, child = messages.socket_pair()
    yield parent, child
    os.close(parent)
    os.close(child)


def test_every_kind_is_listed_under_the_name_its_constructor_gives() -> None:
    assert sorted(messages.KINDS) == sorted({m["kind"] for m in EVERY_KIND} | {"console", "seccomp_listener"})
    assert all(make.__name__ == name for name, make in messages.KINDS.items())


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: f"{m['kind']}")
def test_a_message_crosses_the_sync_socket_as_itself(pair: tuple[int, int], message: messages.Message) -> None:
    parent, child = pair
    messages.send(child, message)
    assert messages.receive(parent) == message


def test_a_message_is_one_json_object_named_by_its_kind() -> None:
    assert messages.encode(messages.go()) == b'{"kind": "go"}'
    assert messages.encode(messages.set_up_networks(7)) == b'{"kind": "set_up_networks", "init_pid": 7}'


@pytest.mark.parametrize("kind", ["console", "seccomp_listener"])
def test_an_fd_rides_along_as_scm_rights_and_arrives_close_on_exec(pair: tuple[int, int], kind: str) -> None:
    parent, child = pair
    read_end, write_end = os.pipe()
    try:
        sent = messages.KINDS[kind](write_end)
        messages.send(child, sent)
        received = messages.receive(parent)
        assert received is not None and received["kind"] == kind
        fd = received["fd"]
        assert fd not in (read_end, write_end) and not os.get_inheritable(fd)
        os.write(fd, b"through the passed fd")
        os.close(fd)
        assert os.read(read_end, 100) == b"through the passed fd"
        assert messages.encode(sent) == b'{"kind": "%s"}' % kind.encode()  # the fd is not in the JSON
    finally:
        os.close(read_end)
        os.close(write_end)


def test_eof_is_none() -> None:
    parent, child = messages.socket_pair()
    os.close(child)
    try:
        assert messages.receive(parent) is None
    finally:
        os.close(parent)


def test_the_trampolines_own_message_reads_as_exec_failed(tmp_path: pathlib.Path) -> None:
    """What native/trampoline.c really writes when the command's execve fails."""
    if not os.path.exists(trampoline.PATH):
        pytest.skip("the trampoline is not built (python3 native/build_clone.py)")
    read_end, write_end = os.pipe()
    try:
        subprocess.run([trampoline.PATH, str(write_end), str(tmp_path / "missing"), "missing"],
                       pass_fds=[write_end], check=False, timeout=10, executable=trampoline.PATH)
        os.close(write_end)
        write_end = -1
        assert messages.decode(messages.read_all(read_end)) == messages.exec_failed(errno.ENOENT)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


@pytest.mark.parametrize("data", [b'{"kind": "no such kind"}', b'{"go": true}', b"not json", b"[1]",
                                  b'{"kind": "set_up_networks"}', b'{"kind": "go", "extra": 1}'])
def test_anything_else_is_one_sync_error(data: bytes) -> None:
    with pytest.raises(NsinitError) as caught:
        messages.decode(data)
    assert caught.value.step == "sync" and "\n" not in str(caught.value)


def test_an_fd_sent_with_a_kind_that_takes_none_is_closed(pair: tuple[int, int]) -> None:
    parent, child = pair
    read_end, write_end = os.pipe()
    os.close(write_end)
    before = set(os.listdir("/proc/self/fd"))
    sock = socket.socket(fileno=os.dup(child))
    sock.sendmsg([messages.encode(messages.go())], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                     read_end.to_bytes(4, sys.byteorder))])
    sock.close()
    assert messages.receive(parent) == messages.go()
    assert set(os.listdir("/proc/self/fd")) == before
    os.close(read_end)


def test_a_failure_comes_back_as_the_same_error_with_its_call() -> None:
    sent = messages.failed("mounts", "mount(/dev/pts): No such file or directory", 125, errno.ENOENT,
                           "mount", "/dev/pts", None)
    received = messages.decode(messages.encode(sent))
    assert received["kind"] == "failed"
    again = messages.failure_error(received)
    assert (str(again), again.exit_code, again.errno) == ("mounts: mount(/dev/pts): No such file or directory",
                                                         125, errno.ENOENT)
    assert isinstance(again.__cause__, SyscallError) and isinstance(again.__cause__, FileNotFoundError)
    plain = messages.failure_error(messages.failed("network", "veth0: exists", 125))
    assert (str(plain), plain.errno, plain.__cause__) == ("network: veth0: exists", None, None)
