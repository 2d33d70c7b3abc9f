"""The reversal of every step taken so far, run last-first.

What the create and join flows need of ``contextlib.ExitStack`` (callbacks,
``close``, ``with``), without importing contextlib, collections and functools
on every container start.  As with ExitStack, every callback runs even when
one fails, and a callback's error is raised once all have run (inside a
failing ``with`` block it replaces the block's error, which stays attached as
its ``__context__``).
"""
from __future__ import annotations

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
        failure: BaseException | None = None
        while self._callbacks:
            function, args = self._callbacks.pop()
            try:
                function(*args)
            except BaseException as err:  # noqa: BLE001 - raised below, after the other undos ran
                failure = failure or err
        if failure is not None:
            raise failure

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
