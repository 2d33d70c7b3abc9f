"""Argument handling of the CLI (no containers, no root)."""
from __future__ import annotations

import signal

import pytest
from docopt import docopt

from nsinit import cli
from nsinit.errors import NsinitError


@pytest.mark.parametrize("argv, expected", [
    (["exec", "sh", "-c", "echo $$"], ["exec", "--", "sh", "-c", "echo $$"]),
    (["exec", "--tty", "-u", "user", "sh", "-c", "x"], ["exec", "--tty", "-u", "user", "--", "sh", "-c", "x"]),
    (["--root", "/r", "exec", "-e", "A=1", "ls", "-l"], ["--root", "/r", "exec", "-e", "A=1", "--", "ls", "-l"]),
    (["exec", "--", "ls", "-l"], ["exec", "--", "ls", "-l"]),
    (["state", "--json"], ["state", "--json"]),
])
def test_the_container_command_keeps_its_own_options(argv: list[str], expected: list[str]) -> None:
    assert cli.protect_command(argv) == expected


def test_exec_is_parsed_with_its_own_pattern_only() -> None:
    words = cli.protect_command(["--trace", "exec", "-e", "A=1", "-e", "B=2", "sh", "-c", "echo"])
    usage = cli.usage_for(words)
    assert " state " not in usage and " exec " in usage
    args = docopt(usage, argv=words)
    assert args["exec"] and args["--trace"]
    assert args["COMMAND"] == "sh" and args["ARG"] == ["-c", "echo"]
    assert args["--env"] == ["A=1", "B=2"]


def test_other_commands_get_the_whole_usage() -> None:
    words = ["--root", "exec", "state"]   # a root dir named "exec"
    assert cli.usage_for(words) == cli.__doc__
    args = docopt(cli.usage_for(words), argv=words)
    assert args["state"] and args["--root"] == "exec"


@pytest.mark.parametrize("text, number", [
    ("TERM", signal.SIGTERM), ("sigkill", signal.SIGKILL), ("SIGUSR1", signal.SIGUSR1), ("9", 9), ("1", 1),
])
def test_signal_names_and_numbers(text: str, number: int) -> None:
    assert cli.parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "0", "65", "FLY", "SIG", "-9"])
def test_bad_signals_are_one_error(text: str) -> None:
    with pytest.raises(NsinitError) as err:
        cli.parse_signal(text)
    assert err.value.exit_code == 1
