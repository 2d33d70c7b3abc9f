"""The two-step lifecycle: create a container with its init waiting, start it later.

libcontainer's split (Start sets up, Exec releases, Run does both), which
podman's conmon and containerd's shim drive through runc's CLI:

- ``create`` (create.py): every step up to the last one before execve,
  done by the calling process, which clones the init and is its parent;
  then the init waits on an exec fifo in nsinit's private record, and
  ``create`` returns.  Nobody supervises the container from then on.
- ``start`` (start.py): from any process, any time later, open the fifo:
  the init execs its command.
- ``destroy`` (destroy.py): the one way a container's cgroups, host veths
  and record are removed, whoever finds it ended (its supervisor, ``nsinit
  delete``, the next command in its root dir, ``nsinit gc``).

The 2014 ``nsinit exec`` (create, or join, and supervise until PID 1 exits)
stays in nsinit/container.py and uses none of this on its way.
"""
