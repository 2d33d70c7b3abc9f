"""``Container.restore``: bring a checkpoint back as a new container.

The restoring nsinit becomes the container's supervisor, exactly as the
creating one was: it makes the cgroups (with the limits of the config and
of any ``update`` recorded at dump), starts ``criu swrk`` inside them,
asks for a RESTORE with ``rst_sibling`` (criu puts the restored init as a
child of its own caller, so nsinit can wait for it), records the restored
init as the container's, then supervises it until it exits and removes
what it made.  The rootfs is that of container.json in the restoring root
dir: it may be a copy of the one dumped from, elsewhere.
"""
from __future__ import annotations

import os

from nsinit import console, state
from nsinit.container import Process
from nsinit.lifecycle.create import _Creation
from nsinit.criu import IMAGES_RECORD, CriuError, fds, mounts
from nsinit.criu.checkpoint import (LOG_LEVEL, cgroups_mode_value, default_images_dir, open_dirs,
                                    refuse_unrestorable)
from nsinit.criu.options import CriuOptions
from nsinit.errors import NsinitError
from nsinit.lifecycle import supervise
from nsinit.lifecycle.join import recorded_config
from nsinit.mount.flags import MNT_DETACH, MS_BIND, MS_REC
from nsinit.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from nsinit.config.model import Config
    from nsinit.container import Container

CRIU_ROOT = "criu-root"   # where the rootfs is bound for criu, in the private state dir


def restore(container: Container, process: Process | None, opts: CriuOptions,
            on_restored: Callable[[int], None] | None = None, *, detach: bool = False) -> int:
    from nsinit.criu.swrk import check_version, find_criu

    opts.check()
    images = os.path.abspath(opts.images_directory or default_images_dir(container.root))
    targets = fds.read_descriptors(images)
    dumped = read_dumped_record(images)
    criu = find_criu(opts.criu_path)
    check_version(criu)
    console.ensure_std_fds()
    lock = state.RootLock(container.root).acquire()
    try:
        if container.state() is not None:  # a stale record is reported and removed
            raise NsinitError("restore", f"a container already runs in {container.root}")
        config = container.config if container.config is not None else container.read_config()
        refuse_unrestorable(config)
        flow = _Restore(container, process or Process(args=[]), config, lock, criu=criu, opts=opts,
                        images=images, targets=targets, dumped=dumped, on_restored=on_restored)
        flow.detached = detach
        return flow.run()
    finally:
        lock.release()


def read_dumped_record(images: str) -> State:
    from nsinit import jsontext

    path = os.path.join(images, IMAGES_RECORD)
    try:
        with open(path, "rb") as f:
            return state._state_from_json(jsontext.loads(f.read()))
    except FileNotFoundError:
        raise CriuError("restore", f"{path} is missing: {images} holds no nsinit checkpoint") from None
    except (ValueError, state.StaleStateError) as err:
        raise CriuError("restore", f"{path}: {err}") from None


class _Restore(_Creation):
    """The create flow with criu in the place of clone and the child's setup."""

    def __init__(self, container: Container, process: Process, config: Config, lock: state.RootLock, *,
                 criu: str, opts: CriuOptions, images: str, targets: list[str], dumped: State,
                 on_restored: Callable[[int], None] | None) -> None:
        super().__init__(container, process, config, lock)
        self.criu = criu
        self.opts = opts
        self.images = images
        self.work = os.path.abspath(opts.work_directory) if opts.work_directory else images
        self.targets = targets
        self.dumped = dumped
        self.on_restored = on_restored
        container.hooks_begun = False

    def run(self) -> int:
        with self.undo:
            self.create_cgroups()
            self.apply_dumped_limits()
            self.prepare_stdio()
            self.restore_tree()
            self.configure_host_veths()
            self.record_child()
            if self.detached:
                self.hand_over_restored()
                self.undo.close()
                return 0
            self.lock.release()
            if self.on_restored is not None:
                self.on_restored(self.pid)
            status = self.supervise()
            self.undo.close()
            return status
        raise AssertionError("unreachable")

    def apply_dumped_limits(self) -> None:
        """Limits changed by ``update`` while it ran live only in the dumped
        record's config: the container gets them back."""
        try:
            resources = recorded_config(self.dumped).cgroups
        except NsinitError:
            return  # a record of another nsinit version: container.json's limits stand
        if resources is not None and resources.resources != (self.config.cgroups.resources
                                                              if self.config.cgroups else None):
            self.manager.update(resources.resources)

    def hand_over_restored(self) -> None:
        """Detached (nsinit-runc restore --detach): the restored init runs
        on as the caller's child, recorded as running with no supervisor,
        as ``create`` leaves its init; ``delete`` removes it."""
        from nsinit.lifecycle.create import record_and_keep_child

        record_and_keep_child(self, "running", "restored")
        if self.on_restored is not None:
            self.on_restored(self.pid)

    def prepare_stdio(self) -> None:
        """criu's fds 0-2 are what the restored init's stdio pipes become:
        ours, or pipes we relay when ours is a terminal (as at create);
        detached, the caller's own fds 0-2 (a terminal: /dev/null)."""
        if self.detached:
            from nsinit.lifecycle.create import detached_stdio

            self.stdio = detached_stdio(False, False, self.container.warn)
            self.undo.callback(console.close_fds, self.stdio.child_only)
            return
        self.stdio = console.prepare_stdio(False, True)
        self.undo.callback(console.close_fds, self.stdio.parent_only)
        self.undo.callback(console.restore_terminal, self.stdio)

    def restore_tree(self) -> None:
        from nsinit import _native
        from nsinit.criu.swrk import Swrk, failure

        share_images_with_container_root(self.images, self.config)
        root = self.bind_rootfs()
        keep: list[int] = []
        namespace_fds = []
        try:
            for key, path in mounts.joined_namespaces(self.config):
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as err:
                    raise CriuError("restore", f"namespace {path}: {err.strerror}") from None
                namespace_fds.append((key, fd))
                keep.append(fd)
            dir_fds = open_dirs(self.images, self.work)
            keep.extend(dir_fds)
            # The stdio for the restored init, at numbers of their own in
            # criu (whose own 0-2 are /dev/null): inherit_fd names them.
            stdio = [os.dup(fd) for fd in self.stdio.child_fds]
            keep.extend(stdio)
            # criu runs in the container's cgroups: cg_root below is read from
            # where it stands, and the restored tree lands in the same place.
            cgroup_files = list(self.cgroup_files)
            swrk = Swrk(self.criu, keep_fds=keep, before_exec=lambda: _attach(cgroup_files))
            try:
                request = self.restore_request(root, dir_fds, namespace_fds, swrk.proc.pid, stdio)
                response = swrk.call(request, on_notify=self.criu_notified)
            finally:
                swrk.close()
        finally:
            for fd in keep:
                os.close(fd)
            _native.umount2(root, MNT_DETACH)
            os.rmdir(root)
        console.close_fds(self.stdio.child_only)
        if response is None or not response.success:
            raise failure("restore", response, os.path.join(self.work, "restore.log"), swrk.exit_text())
        self.adopt_restored(response.restore.pid)

    def criu_notified(self, script: str, pid: int) -> None:
        """criu's "setup-namespaces": the restored init (``pid``, on the
        host) stands in its namespaces, before criu restores anything into
        them.  runc runs prestart and createRuntime there (criuNotifications,
        libcontainer/criu_linux.go), so do we; a failure makes criu unwind.
        createContainer, startContainer and poststart do not run: the
        container was created and started before its checkpoint."""
        if script != "setup-namespaces":
            return
        # criu made the restored init our child (rst_sibling): on a failure
        # from here it kills it but cannot reap it; the teardown does.
        self.pid = pid
        if self.container.hooks is None:
            return
        from nsinit.lifecycle.hooks import run_prestart_and_create_runtime

        self.container.hooks_begun = True
        run_prestart_and_create_runtime(self.container.hooks, pid)

    def _remove_everything(self) -> None:
        """As a creation's; then, once its hooks had begun, the poststop
        ones: after a restore failed from there (as create's), and at the
        end of one nsinit supervised (runc's destroy).  A detached one is
        removed by ``delete``, which runs them from the record."""
        super()._remove_everything()
        if self.container.hooks is not None and self.container.hooks_begun:
            from nsinit.lifecycle.hooks import run_poststop_of

            run_poststop_of(self.container.hooks, self.container.warn)

    def bind_rootfs(self) -> str:
        """criu pivots into the root it is given, which must be a mount."""
        from nsinit import _native

        target = os.path.join(state.ensure_private_dir(self.container.root), CRIU_ROOT)
        os.makedirs(target, mode=0o700, exist_ok=True)
        _native.mount(os.path.realpath(self.config.rootfs), target, None, MS_BIND | MS_REC)
        return target

    def restore_request(self, root: str, dir_fds: tuple[int, int], namespace_fds: list[tuple[str, int]],
                        criu_pid: int, stdio: list[int]) -> Any:
        from nsinit.criu.messages import messages

        msgs = messages()
        opts = self.opts
        criu_opts = msgs.criu_opts(
            images_dir_fd=dir_fds[0], work_dir_fd=dir_fds[1], log_level=LOG_LEVEL, log_file="restore.log",
            root=root, rst_sibling=True, manage_cgroups=True, notify_scripts=True, evasive_devices=True,
            shell_job=opts.shell_job, ext_unix_sk=opts.external_unix_connections,
            tcp_established=opts.tcp_established, file_locks=opts.file_locks, empty_ns=opts.empty_namespaces,
        )
        for key, value in mounts.restore_ext_mounts(self.config, self.cgroup_paths):
            criu_opts.ext_mnt.add(key=key, val=value)
        for key, index in fds.inherited_fds(self.targets):
            criu_opts.inherit_fd.add(key=key, fd=stdio[index])
        for key, fd in namespace_fds:
            criu_opts.inherit_fd.add(key=key, fd=fd)
        for controllers, path in criu_cgroups(criu_pid, self.cgroup_paths):
            entry = criu_opts.cg_root.add(path=path)
            if controllers:
                entry.ctrl = controllers
        for inside, outside, bridge in self.veth_pairs():
            criu_opts.external.append(f"veth[{inside}]:{outside}" + (f"@{bridge}" if bridge else ""))
        if opts.manage_cgroups_mode:
            criu_opts.manage_cgroups_mode = cgroups_mode_value(opts.manage_cgroups_mode)
        return msgs.criu_req(type=msgs.RESTORE, opts=criu_opts)

    def veth_pairs(self) -> list[tuple[str, str, str]]:
        """(name inside, host end, bridge) of each veth the dumped container had:
        criu makes the pair again with the same host name, on the bridge."""
        pairs = [(str(e["name"]), str(e["host_interface_name"]), str(e.get("bridge") or ""))
                 for e in self.dumped.network_state if isinstance(e, dict) and e.get("type") == "veth"
                 and e.get("name") and e.get("host_interface_name")]
        pairs += [(p.container_interface_name, p.host_interface_name, "") for p in self.opts.veth_pairs]
        return pairs

    def adopt_restored(self, pid: int) -> None:
        self.pid = pid
        if self.container.hooks is not None:
            self.container.hooks_begun = True  # restored (whether criu said "setup-namespaces" or not)
        self.undo.callback(self.kill_child)
        self.pidfd = os.pidfd_open(pid)
        supervise.forward_signals(self)

    def configure_host_veths(self) -> None:
        """The host ends criu made: up, and recorded for the teardown."""
        pairs = self.veth_pairs()
        if not pairs:
            return
        from nsinit.network.rtnl import Rtnl

        by_host = {outside: inside for inside, outside, _ in pairs}
        with Rtnl() as host:
            for entry in self.dumped.network_state:
                if not isinstance(entry, dict) or entry.get("host_interface_name") not in by_host:
                    continue
                link = host.get_link(str(entry["host_interface_name"]))
                if link is None:
                    raise CriuError("restore", f"criu did not make the host veth {entry['host_interface_name']}")
                host.set_up(link.index)
                self.network_state.append({**entry, "host_interface_index": link.index})


def share_images_with_container_root(images: str, config: Config) -> None:
    """In a new user namespace, criu reads some images (utsns-*.img, ...) as
    the restored tree's own root: the images get its group, readable, not
    writable (0750 / 0640), so that it can read them and cannot replace
    them.  Others still have no access at all."""
    user_ns = config.namespace("NEWUSER")
    if user_ns is None or user_ns.path:
        return
    gid = next((m.host_id for m in config.gid_mappings if m.container_id == 0), None)
    if gid is None:
        return  # no root inside: criu would fail itself, with its own message
    os.chown(images, -1, gid)
    os.chmod(images, 0o750)
    for name in os.listdir(images):
        path = os.path.join(images, name)
        if name.endswith(".img") and os.path.isfile(path) and not os.path.islink(path):
            os.chown(path, -1, gid)
            os.chmod(path, 0o640)


def _attach(files: list[str]) -> None:
    for path in files:
        with open(path, "w") as f:
            f.write("0")


def criu_cgroups(pid: int, paths: dict[str, str]) -> list[tuple[str, str]]:
    """(controllers, path in the hierarchy) of ``pid``'s cgroups that are the
    container's: criu's cg_root entries, as runc takes them from the criu
    process it has moved there."""
    ours = set(paths)
    entries = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            names = set(controllers.split(",")) if controllers else {"unified"}
            if names & ours:
                entries.append((controllers, path))
    return entries
