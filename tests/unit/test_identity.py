"""resolve_user against a temporary container /etc; no root needed."""
from __future__ import annotations

import os

import pytest

from nsinit.errors import NsinitError
from nsinit.identity import MAX_ID_FILE_BYTES, Identity, parse_user_spec, resolve_user

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment line
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
user:x:1000:1000:user:/home/user:/bin/sh
broken:x:notanumber:1::/:
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""

GROUP = """\
root:x:0:
wheel:x:10:root,user
user:x:1000:
audio:x:29:user
video:x:44:daemon
staff:x:50:
nogroup:x:65534:
"""


@pytest.fixture
def etc(tmp_path):
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    return str(tmp_path)


def test_empty_and_root_are_uid_0(etc):
    expected = Identity(uid=0, gid=0, groups=(10,), home="/root", name="root")
    assert resolve_user("", etc=etc) == expected
    assert resolve_user("root", etc=etc) == expected
    assert resolve_user("0", etc=etc) == expected


def test_name(etc):
    assert resolve_user("user", etc=etc) == Identity(1000, 1000, (10, 29), "/home/user", "user")


def test_uid_in_passwd(etc):
    assert resolve_user("1", etc=etc) == Identity(1, 1, (44,), "/usr/sbin", "daemon")


def test_uid_not_in_passwd(etc):
    assert resolve_user("4242", etc=etc) == Identity(4242, 0, (), "/", "")


def test_uid_gid_not_in_files(etc):
    assert resolve_user("4242:4343", etc=etc) == Identity(4242, 4343, (), "/", "")


def test_name_group(etc):
    # Explicit group: exactly that group, no membership groups (GetExecUser).
    assert resolve_user("user:staff", etc=etc) == Identity(1000, 50, (), "/home/user", "user")


def test_name_gid(etc):
    assert resolve_user("user:44", etc=etc) == Identity(1000, 44, (), "/home/user", "user")
    assert resolve_user("user:7777", etc=etc).gid == 7777


def test_uid_group(etc):
    assert resolve_user("1000:wheel", etc=etc) == Identity(1000, 10, (), "/home/user", "user")
    assert resolve_user("4242:wheel", etc=etc) == Identity(4242, 10, (), "/", "")


@pytest.mark.parametrize("spec", [":", ":1000", "user:", "1000:", "-1", "1000:-1", "-5:0", "+1",
                                  "a:b:c", "1:2:3", "us er", "user\t", "1:\n", str(2**32), f"0:{2**32}"])
def test_malformed_specs_are_refused_never_root(etc, spec):
    with pytest.raises(NsinitError) as err:
        resolve_user(spec, etc=etc)
    assert err.value.step == "user"
    assert repr(spec)[1:-1] in err.value.message or spec in err.value.message


@pytest.mark.parametrize("spec, parts", [
    ("user", ("user", "")), ("1000", ("1000", "")), ("user:wheel", ("user", "wheel")),
    ("1000:10", ("1000", "10")), ("1000:wheel", ("1000", "wheel")), ("user:10", ("user", "10")),
])
def test_the_six_accepted_forms(spec, parts):
    assert parse_user_spec(spec) == parts


def test_a_number_is_a_uid_never_a_name(tmp_path):
    # CVE-2016-3697: the image names a user "1000" with uid 0.
    (tmp_path / "passwd").write_text("1000:x:0:0::/:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    (tmp_path / "group").write_text("10:x:0:\nstaff:x:10:\n")
    assert resolve_user("1000", etc=str(tmp_path)) == Identity(1000, 1000, (), "/home/user", "user")
    assert resolve_user("1000:10", etc=str(tmp_path)).gid == 10
    assert resolve_user("user", ["10"], etc=str(tmp_path)).groups == (10,)
    # A name is looked up by name only.
    assert resolve_user("1000:staff", etc=str(tmp_path)).gid == 10


def test_additional_groups_names_and_numbers(etc):
    ident = resolve_user("user", ["staff", "44", "9999", "wheel"], etc=etc)
    assert ident.groups == (10, 29, 50, 44, 9999)  # deduplicated, order kept
    ident = resolve_user("user:staff", ["audio"], etc=etc)
    assert (ident.gid, ident.groups) == (50, (29,))


def test_unknown_user(etc):
    with pytest.raises(NsinitError) as info:
        resolve_user("bob", etc=etc)
    assert info.value.step == "user"
    assert info.value.message == 'unknown user "bob" (not in /etc/passwd of the container)'


def test_unknown_group(etc):
    with pytest.raises(NsinitError, match='unknown group "nosuch"'):
        resolve_user("user:nosuch", etc=etc)
    with pytest.raises(NsinitError, match='unknown group "nosuch"'):
        resolve_user("user", ["nosuch"], etc=etc)


def test_malformed_line_is_skipped(etc):
    with pytest.raises(NsinitError, match='unknown user "broken"'):
        resolve_user("broken", etc=etc)


def test_out_of_range_uid(etc):
    with pytest.raises(NsinitError, match="out of range"):
        resolve_user(str(2**32), etc=etc)


def test_missing_files(tmp_path):
    etc = str(tmp_path)
    assert resolve_user("", etc=etc) == Identity(0, 0, (), "/", "root")
    assert resolve_user("root", etc=etc) == Identity(0, 0, (), "/", "root")
    assert resolve_user("1000:1000", ["5"], etc=etc) == Identity(1000, 1000, (5,), "/", "")
    with pytest.raises(NsinitError) as info:
        resolve_user("bob", etc=etc)
    assert info.value.step == "user"
    assert info.value.message == 'unknown user "bob" (the container has no /etc/passwd)'
    with pytest.raises(NsinitError, match='unknown group "staff"'):
        resolve_user("0:staff", etc=etc)


@pytest.mark.parametrize("name", ["passwd", "group"])
def test_only_regular_id_files_are_read(tmp_path, name):
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    (tmp_path / name).unlink()
    os.mkfifo(tmp_path / name)  # with no writer: an open without O_NONBLOCK waits for ever
    with pytest.raises(NsinitError) as err:
        resolve_user("user", etc=str(tmp_path))
    assert err.value.message == f"/etc/{name}: not a regular file (a FIFO)"
    (tmp_path / name).unlink()
    (tmp_path / name).symlink_to("/dev/zero")  # read until the OOM killer came
    with pytest.raises(NsinitError) as err:
        resolve_user("user", etc=str(tmp_path))
    assert err.value.message == f"/etc/{name}: not a regular file (a character device)"


def test_a_huge_passwd_is_not_read(tmp_path):
    with open(tmp_path / "passwd", "wb") as f:
        f.truncate(MAX_ID_FILE_BYTES + 1)
    with pytest.raises(NsinitError) as err:
        resolve_user("user", etc=str(tmp_path))
    assert err.value.message == "/etc/passwd: larger than 8 MiB, not read"


def test_id_files_are_not_read_through_magic_links(tmp_path):
    secret = tmp_path / "host-file"
    secret.write_text("user:x:0:0::/:/bin/sh\n")
    fd = os.open(secret, os.O_RDONLY)
    try:
        (tmp_path / "passwd").symlink_to(f"/proc/self/fd/{fd}")
        with pytest.raises(NsinitError) as err:
            resolve_user("user", etc=str(tmp_path))
        assert err.value.message == "/etc/passwd: Too many levels of symbolic links"
    finally:
        os.close(fd)
