"""Argument handling of the CLI (no containers, no root)."""
from __future__ import annotations

import signal

import pytest
from docopt import docopt

from nsinit import cli
from nsinit.container import parse_signal
from nsinit.errors import NsinitError


@pytest.mark.parametrize("argv, expected", [
    (["exec", "sh", "-c", "echo $$"], ["exec", "--", "sh", "-c", "echo $$"]),
    (["exec", "--tty", "-u", "user", "sh", "-c", "x"], ["exec", "--tty", "-u", "user", "--", "sh", "-c", "x"]),
    (["--root", "/r", "exec", "-e", "A=1", "ls", "-l"], ["--root", "/r", "exec", "-e", "A=1", "--", "ls", "-l"]),
    (["exec", "--", "ls", "-l"], ["exec", "--", "ls", "-l"]),
    (["exec", "--root", "r", "ls"], ["exec", "--root", "r", "--", "ls"]),   # global option after exec
    (["state", "--json"], ["state", "--json"]),
    (["create", "-u", "user", "sh", "-c", "x"], ["create", "-u", "user", "--", "sh", "-c", "x"]),
    (["--root", "/r", "create", "sh", "-c", "exec x"], ["--root", "/r", "create", "--", "sh", "-c", "exec x"]),
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


PLAIN_EXEC_LINES = [
    ["exec", "/bin/true"],
    ["--root", "/x", "--trace", "exec", "/bin/true", "-a"],
    ["exec", "-t", "-e", "A=1", "--env", "B=2", "sh", "-c", "x"],
    ["exec", "--root", "r", "-u", "1:2", "--cwd", "/tmp", "ls"],
    ["--config", "c.json", "exec", "-T", "--", "-weird"],
    ["-t", "exec", "--user", "nobody", "id"],
    ["exec", "--init", "-T", "sleep", "12"],
    ["exec", "--new", "--", "sh"],
    ["exec", "--join", "-t", "sh"],
    ["exec", "-d", "sh"],
    ["exec", "--detach", "--new", "-T", "sh", "-c", "x"],
]
DOCOPT_ONLY_LINES = [
    ["exec", "--tty", "--no-tty", "sh"],        # exclusive: docopt reports it
    ["exec", "--new", "--join", "sh"],
    ["exec", "--trace", "--trace", "sh"],       # repeated
    ["--root", "exec", "exec", "sh"],           # a root dir named "exec"
    ["exec", "-tT", "sh"],                      # stacked short flags
    ["exec", "--us", "x", "sh"],                # abbreviation
    ["exec", "--user=x", "sh"],
    ["exec", "-u", "-1", "sh"],                 # value that looks like an option
    ["exec"],
    ["exec", "--help"],
    ["state", "--json"],
]


@pytest.mark.parametrize("argv", PLAIN_EXEC_LINES)
def test_plain_exec_lines_parse_as_docopt_parses_them(argv: list[str]) -> None:
    words = cli.protect_command(argv)
    fast = cli.parse_plain_exec(words)
    assert fast is not None
    assert fast == dict(docopt(cli.usage_for(words), argv=words))


@pytest.mark.parametrize("argv", DOCOPT_ONLY_LINES)
def test_other_lines_are_left_to_docopt(argv: list[str]) -> None:
    assert cli.parse_plain_exec(cli.protect_command(argv)) is None


def test_the_plain_parse_does_not_share_its_lists() -> None:
    first = cli.parse_plain_exec(["exec", "-e", "A=1", "--", "sh"])
    second = cli.parse_plain_exec(["exec", "--", "sh"])
    assert first is not None and second is not None
    assert first["--env"] == ["A=1"] and second["--env"] == []


def test_other_commands_get_the_whole_usage() -> None:
    words = ["--root", "exec", "state"]   # a root dir named "exec"
    assert cli.usage_for(words) == cli.__doc__
    args = docopt(cli.usage_for(words), argv=words)
    assert args["state"] and args["--root"] == "exec"


@pytest.mark.parametrize("argv, expected", [
    (["kill", "-9"], ["kill", "9"]),
    (["--root", "/r", "kill", "--all", "-KILL"], ["--root", "/r", "kill", "--all", "KILL"]),
    (["kill", "--help"], ["kill", "--help"]),
    (["--root", "kill", "state"], ["--root", "kill", "state"]),   # "kill" is --root's value
    (["exec", "kill", "-9", "1"], ["exec", "kill", "-9", "1"]),    # the container's own kill
])
def test_kill_dash_signal_becomes_the_signal_argument(argv: list[str], expected: list[str]) -> None:
    assert cli.signal_as_argument(argv) == expected


@pytest.mark.parametrize("text, number", [
    ("TERM", signal.SIGTERM), ("sigkill", signal.SIGKILL), ("SIGUSR1", signal.SIGUSR1), ("9", 9), ("1", 1),
])
def test_signal_names_and_numbers(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "0", "65", "FLY", "SIG", "-9"])
def test_bad_signals_are_one_error(text: str) -> None:
    with pytest.raises(NsinitError) as err:
        parse_signal(text)
    assert err.value.exit_code == 1
