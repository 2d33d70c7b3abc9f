"""``exec --init``: finding a static tini on the host, and when it can be used."""
from __future__ import annotations

from pathlib import Path

import pytest

from nsinit.config import parse_config
from nsinit.errors import NsinitError
from nsinit.mount import init_binary


def cfg(tmp_path: Path, **data: object):  # type: ignore[no-untyped-def]
    return parse_config(data, "container.json", str(tmp_path))[0]


def test_without_a_static_tini_one_line_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_binary, "_CANDIDATES", (str(tmp_path / "tini-static"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "tini").write_text("#!/bin/sh\n")  # not an ELF at all: refused
    (tmp_path / "tini").chmod(0o755)
    with pytest.raises(NsinitError) as err:
        init_binary.find_init()
    assert str(err.value) == "--init: no static tini found: install the Debian package tini (apt-get install tini)"


def test_init_needs_a_mount_namespace(tmp_path: Path) -> None:
    with pytest.raises(NsinitError, match="needs a mount namespace"):
        init_binary.check_init_possible(cfg(tmp_path, namespaces=["NEWUTS"], mounts=[]))
    init_binary.check_init_possible(cfg(tmp_path))  # the defaults: NEWNS and the /dev tmpfs


def test_without_a_pid_namespace_tini_is_a_subreaper(tmp_path: Path) -> None:
    assert init_binary.init_args(cfg(tmp_path), ["sh"]) == ["/dev/init", "--", "sh"]
    no_pid = cfg(tmp_path, namespaces=["NEWNS", "NEWNET"])
    assert init_binary.init_args(no_pid, ["sh", "-c", "x"]) == ["/dev/init", "-s", "--", "sh", "-c", "x"]
