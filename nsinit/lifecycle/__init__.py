"""A container's life, one role per module; nsinit/container.py is the facade over them.

- launch.py: what creating and joining share (the child's plan and stdio,
  the sync socket, clone, the seccomp filter compiled before clone and its
  notify fd handed over, the child's messages, the trace's steps).
- create.py: the creation (cgroups → clone → id maps, veths, record), the
  one path of ``nsinit exec`` and ``create`` alike.
- join.py: a process beside PID 1 of a live container (pin by pidfd, setns).
- supervise.py: the 2014 ``nsinit exec``'s supervision: signals forwarded
  from clone on, the wait and pty relay, the exit status, the OOM killer told.
- gc.py: ``nsinit gc``, the records whose init and nsinit are both gone.

And the two-step lifecycle: create a container with its init waiting, start
it later.  libcontainer's split (Start sets up, Exec releases, Run does
both), which podman's conmon and containerd's shim drive through runc's CLI:

- ``create`` (create.py, ``detached``): every step up to the last one
  before execve, done by the calling process, which clones the init and is
  its parent; then the init waits on an exec fifo in nsinit's private
  record, and ``create`` returns.  Nobody supervises the container from
  then on.
- ``start`` (start.py): from any process, any time later, open the fifo:
  the init execs its command.
- ``destroy`` (destroy.py): the one way a container's cgroups, host veths
  and record are removed, whoever finds it ended (its supervisor, ``nsinit
  delete``, the next command in its root dir, ``nsinit gc``).

The 2014 ``nsinit exec`` (create, or join, and supervise until PID 1 exits)
uses none of the two-step pieces on its way (no fifo, no start).
"""
