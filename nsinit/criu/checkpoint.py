"""``Container.checkpoint``: dump a running container's processes with criu.

The steps, as runc takes them: check criu; under the root lock, check that
the container is one criu can restore (its own mount namespace entered by
pivot_root); write nsinit's record and the init's stdio targets beside the
images; send criu a DUMP (or PRE_DUMP) request that names the init, the
rootfs, the freezer cgroup to stop the tree with, the external mounts and
namespaces.  Unless --leave-running (or a pre-dump), criu kills the
container after the dump; its supervisor then removes what it made.
"""
from __future__ import annotations

import os

from nsinit import state
from nsinit.criu import IMAGES_RECORD, CriuError, fds, mounts
from nsinit.criu.options import CriuOptions, page_server_address

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from nsinit.config.model import Config
    from nsinit.container import Container
    from nsinit.state import State

# NSINIT_CHECKPOINT_DIR moves the default images directories (tests).
CHECKPOINT_DIR = os.environ.get("NSINIT_CHECKPOINT_DIR", "/var/lib/nsinit/checkpoints")
LOG_LEVEL = 4   # criu's most verbose: the log is what explains a refusal


def default_images_dir(root: str) -> str:
    """A host-private directory per root dir (named as the root's private
    state is): never inside the rootfs, where the container's root could
    rewrite the images that criu, as the host's root, restores from."""
    return os.path.join(CHECKPOINT_DIR, os.path.basename(state.private_dir(root)))


def checkpoint(container: Container, opts: CriuOptions) -> str:
    """Dump the container in ``container.root``; returns the images directory."""
    from nsinit.lifecycle.join import recorded_config
    from nsinit.criu.swrk import Swrk, check_version, failure, find_criu

    opts.check()
    criu = find_criu(opts.criu_path)
    check_version(criu)
    with state.RootLock(container.root):
        current = container.require_state()
        config = recorded_config(current)
        refuse_unrestorable(config)
        warn_about_joined(container, current)
        images = prepare_dir(opts.images_directory or default_images_dir(container.root), "--image-path")
        work = prepare_dir(opts.work_directory, "--work-path") if opts.work_directory else images
        warn_if_inside(container, images, config.rootfs)
        if opts.pre_dump:
            require_memory_tracking(criu)
        targets = fds.read_stdio_targets(current.init_pid)
        fds.refuse_terminal(targets)
        fds.write_descriptors(images, targets)
        with open(os.path.join(images, IMAGES_RECORD), "w") as f:
            f.write(current.to_json() + "\n")
        dir_fds = open_dirs(images, work)
        try:
            request = dump_request(config, current, opts, images_fd=dir_fds[0], work_fd=dir_fds[1])
            request.opts.external.extend(fds.external_files(targets))
            swrk = Swrk(criu, keep_fds=list(dir_fds))
            try:
                response = swrk.call(request)
            finally:
                swrk.close()
        finally:
            for fd in dir_fds:
                os.close(fd)
    log = os.path.join(work, "pre-dump.log" if opts.pre_dump else "dump.log")
    if response is None or not response.success:
        raise failure("checkpoint", response, log, swrk.exit_text())
    if not opts.leave_running and not opts.pre_dump:
        wait_for_end(container)
    return images


def wait_for_end(container: Container, grace: float = 5.0) -> None:
    """criu has killed the tree after the dump: wait until its supervisor
    has removed the record; if it does not, destroy the rest ourselves."""
    import time

    from nsinit.errors import NoContainerError

    record = os.path.join(state.private_dir(container.root), state.STATE_FILE)
    deadline = time.monotonic() + grace
    if is_detached(container.root):
        deadline = 0.0  # no supervisor will remove it (nsinit-runc's): destroy it now
    while os.path.exists(record) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        container.destroy()
    except NoContainerError:
        pass  # gone, as it should be


def is_detached(root: str) -> bool:
    try:
        record = state.read_record(state.private_dir(root))
    except (state.StaleStateError, OSError):
        return False
    return record is not None and record.detached


def refuse_unrestorable(config: Config) -> None:
    if not config.has_namespace("NEWNS"):
        raise CriuError("checkpoint", "the container has no mount namespace (NEWNS): criu restores only "
                                      "a container with a root of its own")
    if config.no_pivot_root:
        raise CriuError("checkpoint", "no_pivot_root is set: criu cannot restore a container whose root "
                                      "was entered by chroot (MS_MOVE)")


def warn_if_inside(container: Container, images: str, rootfs: str) -> None:
    """Images inside the rootfs can be rewritten by the container's root
    before criu, as the host's root, restores from them."""
    real_rootfs = os.path.realpath(rootfs)
    if os.path.commonpath([os.path.realpath(images), real_rootfs]) == real_rootfs:
        container.warn(f"{images} is inside the container's rootfs: its root can rewrite the images "
                       "that restore will trust")


def warn_about_joined(container: Container, current: State) -> None:
    """criu dumps the init's process tree; a process joined with ``exec``
    is in the container's namespaces but its parent is its own nsinit,
    outside: it is not in the images (and ends with the container)."""
    from nsinit.container import container_pids

    # The members first, the tree after: a child the init forks meanwhile
    # is then in the tree if it is in the list at all.
    members = container_pids(current)
    tree = descendants(current.init_pid)
    outside = [pid for pid in members if pid not in tree and os.path.exists(f"/proc/{pid}")]
    if outside:
        container.warn(f"processes joined with exec are not checkpointed (not children of the init): "
                       f"{', '.join(map(str, outside))}")


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue  # exited while we looked
        parent = int(raw[raw.rindex(b")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, stack = {pid}, [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def prepare_dir(path: str, option: str) -> str:
    path = os.path.abspath(path)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as err:
        raise CriuError(option, f"{path}: {err.strerror}") from None
    return path


def open_dirs(*paths: str) -> tuple[int, int]:
    opened: list[int] = []
    try:
        for path in paths:
            opened.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError as err:
        for fd in opened:
            os.close(fd)
        raise CriuError("checkpoint", f"{err.filename}: {err.strerror}") from None
    return opened[0], opened[1]


def require_memory_tracking(criu: str) -> None:
    """Pre-dumps track which pages change after them: soft-dirty bits, which
    some kernels lack.  Asked of criu before the dump, for a clear refusal."""
    from nsinit.criu.messages import messages
    from nsinit.criu.swrk import Swrk

    msgs = messages()
    swrk = Swrk(criu)
    try:
        response = swrk.call(msgs.criu_req(type=msgs.FEATURE_CHECK, features=msgs.criu_features(mem_track=True)))
    finally:
        swrk.close()
    if response is None or not response.success or not response.features.mem_track:
        raise CriuError("--pre-dump", "this kernel has no memory change tracking (soft-dirty bits, "
                                      "CONFIG_MEM_SOFT_DIRTY): criu refuses pre-dumps and iterative migration")


def freezer_cgroup(current: State) -> str:
    """The cgroup criu freezes the tree with: v1's freezer, else the v2 cgroup."""
    paths = current.cgroup_paths
    return paths.get("freezer") or paths.get("unified") or ""


def dump_request(config: Config, current: State, opts: CriuOptions, *, images_fd: int, work_fd: int) -> Any:
    from nsinit.criu.messages import messages

    msgs = messages()
    criu_opts = msgs.criu_opts(
        images_dir_fd=images_fd, work_dir_fd=work_fd, log_level=LOG_LEVEL,
        log_file="pre-dump.log" if opts.pre_dump else "dump.log",
        root=os.path.realpath(config.rootfs), pid=current.init_pid,
        manage_cgroups=True, notify_scripts=True,
        leave_running=opts.leave_running, tcp_established=opts.tcp_established,
        ext_unix_sk=opts.external_unix_connections, shell_job=opts.shell_job, file_locks=opts.file_locks,
        empty_ns=opts.empty_namespaces,
    )
    freezer = freezer_cgroup(current)
    if freezer:
        criu_opts.freeze_cgroup = freezer
    for key, value in mounts.dump_ext_mounts(config, current.cgroup_paths):
        criu_opts.ext_mnt.add(key=key, val=value)
    criu_opts.external.extend(mounts.dump_external_namespaces(config, current.init_pid))
    if opts.manage_cgroups_mode:
        criu_opts.manage_cgroups_mode = cgroups_mode_value(opts.manage_cgroups_mode)
    if opts.page_server:
        address, port = page_server_address(opts.page_server)
        criu_opts.ps.address, criu_opts.ps.port = address, port
    if opts.pre_dump:
        criu_opts.track_mem = True
    return msgs.criu_req(type=msgs.PRE_DUMP if opts.pre_dump else msgs.DUMP, opts=criu_opts)


def cgroups_mode_value(mode: str) -> int:
    from nsinit.criu.messages import messages

    names = {"soft": "SOFT", "full": "FULL", "strict": "STRICT", "ignore": "IGNORE", "props": "PROPS", "none": "CG_NONE"}
    return int(getattr(messages(), names[mode]))
