"""nsinit.mountinfo: the one parser of /proc/PID/mountinfo."""
from __future__ import annotations

from nsinit import mountinfo

TEXT = (
    "36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
    "37 35 0:31 / /sys/fs/cgroup/memory rw shared:2 unbindable:3 - cgroup cgroup rw,memory\n"
    "38 35 0:32 / /no/super - tmpfs tmpfs\n"
    "garbage line without separator\n"
    "1 2 - short\n"
)


def test_fields_escapes_and_optional_fields() -> None:
    assert mountinfo.parse(TEXT) == [
        ("98:0", "/mnt1", "/mnt with space", "ext3", "rw,errors=continue"),
        ("0:31", "/", "/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
        ("0:32", "/", "/no/super", "tmpfs", ""),
    ]


def test_unescape_leaves_other_backslashes() -> None:
    assert mountinfo.unescape("a\\134b\\011c") == "a\\b\tc"
    assert mountinfo.unescape("end\\04") == "end\\04"


def test_reads_this_process_mounts() -> None:
    assert any(point == "/" for _dev, _root, point, _fs, _opts in mountinfo.read())
