"""nsinit.undo.Undo: the reversal of the steps taken, last first, all of them."""
from __future__ import annotations

import pytest

from nsinit.undo import Undo


def test_callbacks_run_last_first_with_their_arguments() -> None:
    ran: list[object] = []
    with Undo() as undo:
        undo.callback(ran.append, 1)
        undo.callback(ran.append, 2)
        undo.callback(lambda: ran.append("last"))
    assert ran == ["last", 2, 1]


def test_close_unwinds_now_and_only_once() -> None:
    ran: list[int] = []
    undo = Undo()
    undo.callback(ran.append, 1)
    undo.close()
    undo.close()
    assert ran == [1]


def test_a_failing_block_is_unwound_and_its_error_kept() -> None:
    ran: list[int] = []
    with pytest.raises(KeyError):
        with Undo() as undo:
            undo.callback(ran.append, 1)
            raise KeyError("step failed")
    assert ran == [1]


def test_every_callback_runs_even_when_one_fails() -> None:
    ran: list[int] = []

    def broken() -> None:
        raise OSError("cannot undo")

    undo = Undo()
    undo.callback(ran.append, 1)
    undo.callback(broken)
    undo.callback(ran.append, 3)
    with pytest.raises(OSError, match="cannot undo"):
        undo.close()
    assert ran == [3, 1]


def test_an_undo_error_replaces_the_blocks_and_keeps_it_as_context() -> None:
    def broken() -> None:
        raise OSError("cannot undo")

    with pytest.raises(OSError) as caught:
        with Undo() as undo:
            undo.callback(broken)
            raise KeyError("step failed")
    assert isinstance(caught.value.__context__, KeyError)
