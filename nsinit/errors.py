"""One error family for nsinit.

Every failure a user can see is an ``NsinitError``: it names the step that
failed and carries a one-line message.  The CLI prints ``nsinit: STEP: MESSAGE``
and exits with ``exit_code``; nothing else reaches the terminal.

A failed system call is a ``SyscallError``: errno, the call and the path it
acted on stay attributes, and its one line is made from them in one place
(``describe_oserror``), the way crun's single ``crun_make_error`` names the
call and the path.  Nothing folds them into a text that a caller would then
re-wrap.  A failure while undoing earlier steps is a note on the error that
caused the undo (``BaseException.add_note``, see nsinit/undo.py): the CLI
prints the error's line and then one ``nsinit: note: ...`` line per note.
"""
from __future__ import annotations

import os

# Exit codes of nsinit's own failures, chosen as docker/podman do so that a
# script can tell them from the container command's own status.
EXIT_NSINIT_FAILED = 125   # bad config, setup step failed, bad usage of exec
EXIT_CANNOT_EXECUTE = 126  # the command exists but cannot be executed
EXIT_NOT_FOUND = 127       # the command was not found in the container
EXIT_COMMAND_FAILED = 1    # non-exec commands (state, kill, ...) that fail


class SyscallError(OSError):
    """A system call that failed: ``errno``, ``strerror`` and ``filename``
    as OSError has them, plus ``syscall`` and ``target`` (the path or name it
    acted on, or None; ``filename`` is the same).  Its text is
    ``mount(/dev/pts): No such file or directory``.

    Like ``OSError(ENOENT, ...)``, it is an instance of the errno's own class
    (FileNotFoundError, FileExistsError, ...), so ``except FileNotFoundError``
    still catches a failed openat2.  ``strerror`` is the system's text unless
    the kernel said more (the BPF verifier's last line).
    """

    syscall: str
    target: str | None

    def __new__(cls, err: int, syscall: str, target: str | None = None,
                strerror: str | None = None) -> SyscallError:
        if cls is SyscallError:
            cls = _syscall_error_class(err)
        text = strerror or os.strerror(err)
        return super().__new__(cls, err, text) if target is None else super().__new__(cls, err, text, target)

    def __init__(self, err: int, syscall: str, target: str | None = None, strerror: str | None = None) -> None:
        # OSError.__new__ has set errno, strerror and filename already.
        self.syscall, self.target = syscall, target

    @classmethod
    def of(cls, err: OSError, syscall: str, target: str | None = None) -> SyscallError:
        """``err`` (from an ``os`` function, which names no call and shows the
        host's or a dir fd's path) as the failure of ``syscall`` on ``target``,
        the path the user knows (the one inside the container)."""
        return cls(err.errno or 0, syscall, target, err.strerror)

    def __str__(self) -> str:
        where = self.syscall if self.target is None else f"{self.syscall}({self.target})"
        return f"{where}: {self.strerror}"


_SYSCALL_ERROR_CLASSES: dict[type[OSError], type[SyscallError]] = {}


def _syscall_error_class(err: int) -> type[SyscallError]:
    """SyscallError joined with the class OSError picks for ``err``
    (made on the first failure with that errno: nothing at start-up)."""
    builtin = type(OSError(err, ""))
    if builtin is OSError:
        return SyscallError
    joined = _SYSCALL_ERROR_CLASSES.get(builtin)
    if joined is None:
        joined = type("SyscallError", (SyscallError, builtin), {"__module__": __name__})
        _SYSCALL_ERROR_CLASSES[builtin] = joined
    return joined


class NsinitError(Exception):
    """A failure with the step it happened in and a user-facing message."""

    exit_code: int = EXIT_NSINIT_FAILED
    errno: int | None = None  # the errno behind it, when a system call failed
    from_child: bool = False  # reported by the container's init over the sync socket

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

    init_pid = 0  # the init that ended: a different one each time is progress


# --- containers by id (nsinit/lifecycle/factory.py): libcontainer's error codes ---

class InvalidIdFormat(NsinitError):
    """An id that is not a name libcontainer accepts (it becomes a directory name)."""

    exit_code = EXIT_COMMAND_FAILED


class IdInUse(NsinitError):
    """Factory.create with an id that names a container already."""

    exit_code = EXIT_COMMAND_FAILED


class ContainerNotExists(NoContainerError):
    """No container has that id.  Its text says "does not exist": containerd
    matches those words (a delete or kill of what is gone is no error there)."""


class ConfigInvalid(ConfigError):
    """What Factory.create was given is no config it can create from."""

    exit_code = EXIT_COMMAND_FAILED


class ContainerNotRunning(NsinitError):
    """An operation that needs a live container met a stopped one
    ("container not running": containerd matches the words on a kill)."""

    exit_code = EXIT_COMMAND_FAILED


class ContainerNotStopped(NsinitError):
    """delete without force of a container that still runs."""

    exit_code = EXIT_COMMAND_FAILED


class ContainerPaused(NsinitError):
    """An operation that a paused container cannot take (resume it first)."""

    exit_code = EXIT_COMMAND_FAILED


def describe_oserror(err: OSError, step: str = "") -> str:
    """The one line of a failed call, from its attributes: ``CALL(TARGET):
    strerror`` for a SyscallError, ``FILE: strerror`` for an OSError with a
    file name, else strerror.

    In the step of the same name as the call, the name is said once:
    ``pivot_root: Invalid argument``, never ``pivot_root: pivot_root: ...``.
    """
    text = err.strerror or str(err)
    if isinstance(err, SyscallError):
        if err.syscall != step:
            return str(err)
        return text if err.target is None else f"{err.target}: {text}"
    if err.filename is not None:
        return f"{err.filename}: {text}"
    return text


def lines_with_notes(text: str, err: BaseException) -> list[str]:
    """``text`` (the error's own line or lines), then ``note: NOTE`` for each
    note on ``err``; the CLI puts ``nsinit: `` before each."""
    return text.splitlines() + [f"note: {note}" for note in getattr(err, "__notes__", ())]


def error_line(err: BaseException) -> str:
    """Any failure as one line (what a note on another error says)."""
    if isinstance(err, NsinitError):
        return str(err)
    if isinstance(err, OSError):
        return describe_oserror(err)
    return f"{err.__class__.__name__}: {err}"
