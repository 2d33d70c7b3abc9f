"""The rtnetlink client's pieces that need no root: the cheap pyroute2 import and ack parsing."""
from __future__ import annotations

import errno
import struct
import subprocess
import sys

import pytest

pytest.importorskip("pyroute2")

from nsinit.network import rtnl  # noqa: E402


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_message_import_skips_the_package_init() -> None:
    out = run_python(
        "import sys\n"
        "from nsinit.network import rtnl\n"
        "rtnl._import_messages()\n"
        "print(sorted(m for m in ('pyroute2.ndb', 'pyroute2.iproute', 'asyncio') if m in sys.modules))\n"
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


def test_veth_request_encodes_the_peer_inside_linkinfo() -> None:
    rtnl._import_messages()
    msg = rtnl._Messages.ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", "vethtest"), ("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "veth"),
        ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": [("IFLA_IFNAME", "eth0")]})]}),
    ]})]
    msg.encode()
    decoded = rtnl._Messages.ifinfmsg(bytes(msg.data))
    decoded.decode()
    info = decoded.get_attr("IFLA_LINKINFO")
    assert decoded.get_attr("IFLA_IFNAME") == "vethtest"
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0"


def ack(code: int, text: str | None) -> tuple[bytes, int]:
    """An NLMSG_ERROR as a kernel with NETLINK_CAP_ACK and NETLINK_EXT_ACK sends it."""
    body = struct.pack("=i", -code) + struct.pack("=IHHII", 32, rtnl.RTM_NEWLINK, 0, 1, 0)
    flags = rtnl.NLM_F_CAPPED
    if text is not None:
        payload = text.encode() + b"\0"
        attr = struct.pack("=HH", 4 + len(payload), rtnl.NLMSGERR_ATTR_MSG) + payload
        body += attr + b"\0" * (-len(attr) % 4)
        flags |= rtnl.NLM_F_ACK_TLVS
    header = struct.pack("=IHHII", 16 + len(body), rtnl.NLMSG_ERROR, flags, 1, 0)
    return header + body, flags


def test_error_text_adds_the_kernels_extended_ack_message() -> None:
    chunk, flags = ack(errno.EINVAL, "Master device is not a bridge")
    assert rtnl._error_text(errno.EINVAL, chunk, flags) == "Invalid argument (Master device is not a bridge)"
    chunk, flags = ack(errno.EEXIST, None)
    assert rtnl._error_text(errno.EEXIST, chunk, flags) == "File exists"
