"""One error shape: a failed call keeps errno, the call and its path as
attributes, and its one line is made from them in one place, on either side
of the sync socket."""
from __future__ import annotations

import errno
import os

import pytest

from nsinit import _native, child, messages
from nsinit.errors import NsinitError, SyscallError, describe_oserror, error_line


def test_a_syscall_error_keeps_errno_call_and_path_as_attributes() -> None:
    err = SyscallError(errno.ENOENT, "mount", "/dev/pts")
    assert (err.errno, err.strerror, err.syscall, err.target, err.filename) == (
        errno.ENOENT, "No such file or directory", "mount", "/dev/pts", "/dev/pts")
    assert str(err) == "mount(/dev/pts): No such file or directory"


def test_a_syscall_error_is_of_its_errnos_own_class_as_an_oserror_is() -> None:
    assert isinstance(SyscallError(errno.ENOENT, "openat2", "/x"), FileNotFoundError)
    assert isinstance(SyscallError(errno.EEXIST, "mkdir", "/x"), FileExistsError)
    busy = SyscallError(errno.EBUSY, "umount2", "/x")  # no class of its own
    assert type(busy) is SyscallError and isinstance(busy, OSError)
    with pytest.raises(FileNotFoundError):
        raise SyscallError(errno.ENOENT, "openat2", "/x")


def test_a_call_without_a_path_is_named_alone() -> None:
    err = SyscallError(errno.EINVAL, "pivot_root")
    assert str(err) == "pivot_root: Invalid argument"
    assert err.filename is None and err.args == (errno.EINVAL, "Invalid argument")


def test_what_the_kernel_said_beyond_errno_is_kept() -> None:
    err = SyscallError(errno.EACCES, "bpf(BPF_PROG_LOAD)", None, "Permission denied (R0 !read_ok)")
    assert str(err) == "bpf(BPF_PROG_LOAD): Permission denied (R0 !read_ok)"


def test_an_os_functions_error_is_named_by_the_call_and_the_containers_path() -> None:
    try:
        os.stat("/no/such/host/path")
    except OSError as raised:
        err = SyscallError.of(raised, "stat", "/etc/passwd")
    assert isinstance(err, FileNotFoundError)
    assert str(err) == "stat(/etc/passwd): No such file or directory"


def test_the_native_wrappers_raise_it_from_the_kernels_errno() -> None:
    with pytest.raises(FileNotFoundError) as caught:
        _native.openat2(-100, "/no/such/path", os.O_PATH | os.O_CLOEXEC, 0)  # AT_FDCWD
    assert isinstance(caught.value, SyscallError)
    assert str(caught.value) == "openat2(/no/such/path): No such file or directory"
    with pytest.raises(SyscallError) as bad_fd:
        _native.setns(-1, label="mnt")
    assert (bad_fd.value.errno, str(bad_fd.value)) == (errno.EBADF, "setns(mnt): Bad file descriptor")


def test_the_line_says_the_call_once_in_the_step_of_its_name() -> None:
    pivot = SyscallError(errno.EINVAL, "pivot_root")
    assert describe_oserror(pivot, "pivot_root") == "Invalid argument"
    assert describe_oserror(pivot, "mounts") == "pivot_root: Invalid argument"
    assert describe_oserror(SyscallError(errno.EPERM, "sethostname", "box"), "sethostname") == (
        "box: Operation not permitted")


def test_a_plain_oserror_is_its_file_and_strerror() -> None:
    assert describe_oserror(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")) == (
        "/x: No such file or directory")
    assert describe_oserror(OSError(errno.EIO, "Input/output error")) == "Input/output error"


def test_any_failure_is_one_line() -> None:
    assert error_line(NsinitError("state", "cannot remove x")) == "state: cannot remove x"
    assert error_line(SyscallError(errno.EBUSY, "umount2", "/mnt")) == "umount2(/mnt): Device or resource busy"
    assert error_line(ValueError("bad")) == "ValueError: bad"


def _failing_step(name: str, err: BaseException) -> child.StepFailed:
    steps = child.Steps(sync_fd=-1, trace=False)
    with pytest.raises(child.StepFailed) as caught:
        with steps.step(name):
            raise err
    return caught.value


def _across_the_socket(failed: child.StepFailed) -> messages.Failed:
    sent = messages.decode(messages.encode(failed.report()))
    assert sent["kind"] == "failed"
    return sent


def test_a_child_steps_failed_call_crosses_the_socket_as_errno_call_and_path() -> None:
    failed = _failing_step("mounts", SyscallError(errno.ENOENT, "mount", "/dev/pts"))
    sent = _across_the_socket(failed)
    assert (sent["step"], sent["errno"], sent["syscall"], sent["target"]) == ("mounts", errno.ENOENT, "mount", "/dev/pts")
    again = child.reported_failure(sent)
    assert str(again) == "mounts: mount(/dev/pts): No such file or directory"
    assert (again.errno, again.exit_code, again.from_child) == (errno.ENOENT, 125, True)
    assert isinstance(again.__cause__, FileNotFoundError) and isinstance(again.__cause__, SyscallError)
    assert again.__cause__.target == "/dev/pts"


def test_a_child_step_named_as_its_call_is_not_said_twice() -> None:
    failed = _failing_step("pivot_root", SyscallError(errno.EINVAL, "pivot_root"))
    assert failed.message == "Invalid argument"
    assert str(child.reported_failure(_across_the_socket(failed))) == (
        "pivot_root: Invalid argument")


def test_a_child_steps_own_error_keeps_the_errno_it_was_raised_from() -> None:
    def cwd_failure() -> NsinitError:
        try:
            os.chdir("/no/such/dir")
        except OSError as err:
            try:
                raise NsinitError("cwd", f"/no/such/dir: {err.strerror}") from None
            except NsinitError as named:
                return named
        raise AssertionError("chdir worked")

    failed = _failing_step("finalize", cwd_failure())
    again = child.reported_failure(_across_the_socket(failed))
    assert str(again) == "cwd: /no/such/dir: No such file or directory"
    assert again.errno == errno.ENOENT and again.__cause__ is None
