"""The reversal of every step taken so far, run last-first.

What the create and join flows need of ``contextlib.ExitStack`` (callbacks,
``close``, ``with``), without importing contextlib, collections and functools
on every container start.  As with ExitStack, every callback runs even when
one fails.  Unlike ExitStack, a callback's failure never replaces the error
that made the ``with`` block unwind: the user must read why the container
did not start, not that its cgroup could not be removed afterwards.  It
becomes a note on that error (``BaseException.add_note``; the CLI prints
each as ``nsinit: note: ...``), as crun keeps the first error and reports
cleanup failures beside it.  Without an error to attach to (``close``, or a
block that ended normally) the first failure is raised, the others as notes
on it.
"""
from __future__ import annotations

from nsinit.errors import error_line

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable


class Undo:
    def __init__(self) -> None:
        self._callbacks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callback(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` when unwinding (before anything registered earlier)."""
        self._callbacks.append((function, args))

    def close(self) -> None:
        """Unwind now; the stack is empty afterwards and can be used again."""
        failures = self._unwind()
        if failures:
            first = failures[0]
            add_cleanup_notes(first, failures[1:])
            raise first

    def _unwind(self) -> list[BaseException]:
        failures: list[BaseException] = []
        while self._callbacks:
            function, args = self._callbacks.pop()
            try:
                function(*args)
            except BaseException as err:  # noqa: BLE001 - reported after the other undos ran
                failures.append(err)
        return failures

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, _kind: object, error: BaseException | None, _tb: object) -> None:
        if error is None:
            self.close()
            return
        add_cleanup_notes(error, self._unwind())
        # Returning None re-raises the block's own error, notes and all.


def add_cleanup_notes(error: BaseException, failures: list[BaseException]) -> None:
    """Each failure while undoing, as one line noted on ``error``."""
    for failure in failures:
        error.add_note(f"cleanup failed: {error_line(failure)}")
        for note in getattr(failure, "__notes__", ()):
            error.add_note(note)
