"""nsinit.undo.Undo: the reversal of the steps taken, last first, all of them."""
from __future__ import annotations

import errno

import pytest

from nsinit.errors import NsinitError, SyscallError
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


def test_an_undo_error_is_a_note_on_the_blocks_error_which_is_raised() -> None:
    def broken() -> None:
        raise OSError(errno.EBUSY, "Device or resource busy", "/sys/fs/cgroup/x")

    step_failed = NsinitError("cwd", "/nope: No such file or directory")
    ran: list[int] = []
    with pytest.raises(NsinitError) as caught:
        with Undo() as undo:
            undo.callback(ran.append, 1)
            undo.callback(broken)
            raise step_failed
    assert caught.value is step_failed
    assert ran == [1]  # the failure did not stop the earlier undo
    assert caught.value.__notes__ == ["cleanup failed: /sys/fs/cgroup/x: Device or resource busy"]


def test_every_undo_error_is_noted_in_the_order_they_failed() -> None:
    def broken(what: str) -> None:
        raise NsinitError("state", f"cannot remove {what}")

    with pytest.raises(KeyError) as caught:
        with Undo() as undo:
            undo.callback(broken, "first registered")
            undo.callback(broken, "last registered")
            raise KeyError("step failed")
    assert caught.value.__notes__ == ["cleanup failed: state: cannot remove last registered",
                                      "cleanup failed: state: cannot remove first registered"]


def test_without_an_error_the_first_undo_failure_is_raised_with_the_others_as_notes() -> None:
    first = NsinitError("cgroups", "cannot remove /sys/fs/cgroup/x: Device or resource busy")

    def fail(err: BaseException) -> None:
        raise err

    undo = Undo()
    undo.callback(fail, SyscallError(errno.EINVAL, "umount2", "/mnt"))
    undo.callback(fail, first)
    with pytest.raises(NsinitError) as caught:
        undo.close()
    assert caught.value is first
    assert caught.value.__notes__ == ["cleanup failed: umount2(/mnt): Invalid argument"]


def test_a_block_that_ends_normally_raises_its_undo_failure() -> None:
    def broken() -> None:
        raise NsinitError("state", "cannot remove x")

    with pytest.raises(NsinitError, match="cannot remove x") as caught:
        with Undo() as undo:
            undo.callback(broken)
    assert not hasattr(caught.value, "__notes__")
