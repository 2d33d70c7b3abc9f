"""One error family for nsinit.

Every failure a user can see is an ``NsinitError``: it names the step that
failed and carries a one-line message.  The CLI prints ``nsinit: STEP: MESSAGE``
and exits with ``exit_code``; nothing else reaches the terminal.
"""
from __future__ import annotations

import os

# Exit codes of nsinit's own failures, chosen as docker/podman do so that a
# script can tell them from the container command's own status.
EXIT_NSINIT_FAILED = 125   # bad config, setup step failed, bad usage of exec
EXIT_CANNOT_EXECUTE = 126  # the command exists but cannot be executed
EXIT_NOT_FOUND = 127       # the command was not found in the container
EXIT_COMMAND_FAILED = 1    # non-exec commands (state, kill, ...) that fail


class NsinitError(Exception):
    """A failure with the step it happened in and a user-facing message."""

    exit_code: int = EXIT_NSINIT_FAILED

    def __init__(self, step: str, message: str, exit_code: int | None = None) -> None:
        super().__init__(f"{step}: {message}" if step else message)
        self.step = step
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.step}: {self.message}" if self.step else self.message


class ConfigError(NsinitError):
    """container.json is unreadable or invalid.

    ``step`` is the file name and ``message`` is ``FIELD.PATH: what is wrong``,
    so the printed line reads ``nsinit: container.json: mounts[2].destination: ...``.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        message = f"{field}: {problem}" if field else problem
        super().__init__(source, message)
        self.source = source
        self.field = field
        self.problem = problem


class ConfigErrors(ConfigError):
    """Every error found in one config, so that one run lists them all.

    Its field and problem are the first error's; ``str()`` is one line per
    error (the CLI prefixes each with ``nsinit: ``).
    """

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.source, first.field, first.problem)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class NoContainerError(NsinitError):
    """A lifecycle command found no live container in the root directory."""

    exit_code = EXIT_COMMAND_FAILED


class ContainerGoneError(NoContainerError):
    """The container ended while a process was joining it; ``nsinit exec``
    then decides again (and creates a new one)."""


def describe_oserror(err: OSError) -> str:
    """strerror plus the file name when the OSError carries one."""
    text = err.strerror or str(err)
    if err.filename is not None:
        return f"{err.filename}: {text}"
    return text


def errno_text(err: OSError) -> str:
    """The bare system message of ``err`` ("Operation not permitted"),
    even when its strerror already names a syscall (see nsinit._native)."""
    return os.strerror(err.errno) if err.errno is not None else str(err)
