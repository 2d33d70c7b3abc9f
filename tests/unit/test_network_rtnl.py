"""The rtnetlink client's pieces that need no root: the cheap pyroute2 import and ack parsing."""
from __future__ import annotations

import errno
import struct
import subprocess
import sys

import pytest

pytest.importorskip("pyroute2")

from nsinit.network import nlwire, rtnl


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_message_import_skips_the_package_init_and_the_link_kind_plugins() -> None:
    out = run_python(
        "import sys\n"
        "from nsinit.network import rtnl\n"
        "rtnl._import_messages()\n"
        "print(sorted(m for m in ('pyroute2.ndb', 'pyroute2.iproute', 'asyncio', 'multiprocessing',\n"
        "                         'pyroute2.netlink.rtnl.ifinfmsg') if m in sys.modules))\n"
    )
    assert out.strip() == "[]"


def test_pyroute2_still_works_fully_after_the_shortcut() -> None:
    out = run_python(
        "from nsinit.network import rtnl\n"
        "rtnl._import_messages()\n"
        "import pyroute2\n"
        "from pyroute2 import IPRoute\n"
        "import pyroute2.iproute\n"
        "print(IPRoute.__name__, bool(pyroute2.__version__), pyroute2.iproute.IPRoute is IPRoute)\n"
    )
    assert out.split() == ["IPRoute", "True", "True"]


# --- linkmsg.LinkMessage against pyroute2's full ifinfmsg ----------------------------

class Recorder(rtnl.Rtnl):
    """An Rtnl without a socket: keeps each request instead of sending it."""

    def __init__(self) -> None:
        rtnl.load()
        self.sequence = 0
        self.requests: list[tuple[int, object, int]] = []

    def _request(self, msg_type: int, msg: object, flags: int) -> list[bytes]:
        self.requests.append((msg_type, msg, flags))
        return []


LINK_REQUESTS = {
    "veth, every option": lambda r: r.create_veth("nsv0abc123", master=7, mtu=1400, txqueuelen=500,
                                                   peer_name="eth0", peer_netns_fd=5, peer_mac="02:42:ac:11:00:02"),
    "veth, defaults": lambda r: r.create_veth("nsv0abc123", master=3, mtu=0, txqueuelen=0,
                                               peer_name="eth1", peer_netns_fd=9, peer_mac=""),
    "bridge": lambda r: r.create_bridge("nsbr0"),
    "up": lambda r: r.set_up(12),
    "get by name": lambda r: r.get_link("eth0"),
}


@pytest.mark.parametrize("case", sorted(LINK_REQUESTS))
def test_link_requests_encode_as_pyroute2s_ifinfmsg_does(case: str) -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    recorder = Recorder()
    LINK_REQUESTS[case](recorder)
    [(msg_type, ours, flags)] = recorder.requests
    theirs = ifinfmsg()
    for key in ("family", "index", "flags", "change"):
        theirs[key] = ours[key]  # type: ignore[index]
    theirs["attrs"] = ours["attrs"]  # type: ignore[index]
    for msg in (ours, theirs):
        msg["header"]["type"] = msg_type  # type: ignore[index]
        msg["header"]["flags"] = flags  # type: ignore[index]
        msg.encode()  # type: ignore[attr-defined]
    assert bytes(ours.data) == bytes(theirs.data)  # type: ignore[attr-defined]


def test_link_replies_decode_as_pyroute2s_ifinfmsg_does() -> None:
    # Every link of this host, as the kernel describes it (no root needed).
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    NLM_F_DUMP = 0x300
    with rtnl.Rtnl() as host:
        replies = host._request(rtnl.RTM_GETLINK, rtnl._Messages.link(), NLM_F_DUMP)
    assert replies, "the kernel listed no link at all"

    def fields(cls: type, data: bytes) -> tuple[object, ...]:
        msg = cls(data)
        msg.decode()
        info = msg.get_attr("IFLA_LINKINFO")
        return (msg["index"], msg["flags"], msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_ADDRESS"),
                msg.get_attr("IFLA_MTU"), msg.get_attr("IFLA_MASTER"),
                info.get_attr("IFLA_INFO_KIND") if info is not None else None)

    for data in replies:
        assert fields(rtnl._Messages.link, data) == fields(ifinfmsg, data)


def ack(code: int, text: str | None) -> tuple[bytes, int]:
    """An NLMSG_ERROR as a kernel with NETLINK_CAP_ACK and NETLINK_EXT_ACK sends it."""
    body = struct.pack("=i", -code) + struct.pack("=IHHII", 32, rtnl.RTM_NEWLINK, 0, 1, 0)
    flags = nlwire.NLM_F_CAPPED
    if text is not None:
        payload = text.encode() + b"\0"
        attr = struct.pack("=HH", 4 + len(payload), nlwire.NLMSGERR_ATTR_MSG) + payload
        body += attr + b"\0" * (-len(attr) % 4)
        flags |= nlwire.NLM_F_ACK_TLVS
    header = struct.pack("=IHHII", 16 + len(body), nlwire.NLMSG_ERROR, flags, 1, 0)
    return header + body, flags


def test_error_text_adds_the_kernels_extended_ack_message() -> None:
    chunk, flags = ack(errno.EINVAL, "Master device is not a bridge")
    assert nlwire.error_text(errno.EINVAL, chunk, flags) == "Invalid argument (Master device is not a bridge)"
    chunk, flags = ack(errno.EEXIST, None)
    assert nlwire.error_text(errno.EEXIST, chunk, flags) == "File exists"


@pytest.mark.parametrize("index", [1, 12, 2**31 - 1])
def test_teardowns_dellink_encodes_as_pyroute2_does(index: int) -> None:
    # The supervisor deletes host veths without pyroute2 loaded: one fixed
    # struct, held equal here to what pyroute2's ifinfmsg makes of it.
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    from nsinit.network import teardown

    theirs = ifinfmsg()
    theirs["index"] = index
    theirs["header"]["type"] = nlwire.RTM_DELLINK
    theirs["header"]["flags"] = nlwire.NLM_F_REQUEST | nlwire.NLM_F_ACK
    theirs["header"]["sequence_number"] = 7
    theirs.encode()
    assert teardown.dellink_request(index, 7) == bytes(theirs.data)


def test_teardown_of_interfaces_that_are_gone_does_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # No root needed: nothing by these names exists, so no request is sent.
    from nsinit.network import teardown

    teardown.teardown_networks([{"type": "veth", "host_interface_name": "nsgone0", "host_interface_index": 4242},
                                {"type": "loopback"}])
    assert capsys.readouterr().err == ""


def test_teardown_spares_an_interface_whose_index_is_not_the_recorded_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    # "lo" exists with index 1: a record saying index 2 describes another
    # interface.  (Had a request been sent, the kernel's refusal to delete lo
    # would show as a warning.)
    import _socket

    from nsinit.network import teardown

    teardown.teardown_networks([{"type": "veth", "host_interface_name": "lo", "host_interface_index": 2}])
    assert _socket.if_nametoindex("lo") == 1
    assert capsys.readouterr().err == ""
