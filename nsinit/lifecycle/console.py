"""A terminal for a detached container or process: its pty master goes to a console socket.

Nobody stays to relay a detached process's pty, so the master goes to
whoever asked for the terminal (conmon, containerd's shim, any listener on
an AF_UNIX socket) the way runc hands it over (nsinit/oci/console_socket.py),
and nsinit keeps no copy of it.  The pty is the container's own: the child
opens it in the container's devpts (``newinstance``) through openat2 in the
container's root (nsinit.console.open_devpts_ptmx), makes the slave its
controlling terminal and fds 0-2, and sends the master to the parent over
the sync socket; the parent passes it on here before ``create`` (or ``exec
--detach``) returns.  A container without a mount namespace has no devpts
of its own: there, a host pty is made by the parent, as for ``nsinit exec``.
"""
from __future__ import annotations

import os

from nsinit import console
from nsinit.errors import NsinitError

# runc's words (utils_linux.go), which engines' users search for: nsinit-runc's.
NO_SOCKET = "cannot allocate tty if runc will detach without setting console socket"
# The name sent with the fd: the payload must not be empty (see console_socket.py).
MASTER_NAME = "/dev/pts/ptmx"


def detached_terminal(console_socket: str, window_size: tuple[int, int] | None,
                      container_devpts: bool) -> console.Stdio:
    """The Stdio of a detached process with a terminal (parent side, before clone)."""
    if not console_socket:
        raise NsinitError("tty", "a detached container cannot have a terminal here: its pty would need a "
                                 "console socket to go to (Process.console_socket; nsinit: run with -T, "
                                 "or without --detach)")
    if not os.path.isabs(console_socket):
        raise NsinitError("console-socket", f'"{console_socket}" must be an absolute path')
    if container_devpts:
        return console.Stdio(pty_in_container=True, console_socket=console_socket, window_size=window_size)
    master, slave = os.openpty()
    os.set_inheritable(slave, False)
    stdio = console.Stdio(child_fds=(slave, slave, slave), console_fd=slave, child_only=[slave],
                          console_socket=console_socket, window_size=window_size)
    try:
        if window_size is not None:
            console.set_window_size(master, window_size)
        hand_master_to_socket(stdio, master)
    except BaseException:
        os.close(slave)
        raise
    return stdio


def hand_master_to_socket(stdio: console.Stdio, master: int) -> None:
    """Send ``master`` to the console socket, then close it: the runtime
    keeps no copy (its holder decides when the terminal hangs up)."""
    from nsinit.oci.console_socket import send_console

    try:
        send_console(stdio.console_socket, master, MASTER_NAME)
    finally:
        os.close(master)
