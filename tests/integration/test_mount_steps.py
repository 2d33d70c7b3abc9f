"""The mount steps for real, each run in a throwaway child with its own mount namespace.

The child makes "/" rprivate before anything else, runs the steps on a tmp
rootfs, checks the result from inside, and reports back as JSON through a
pipe.  The parent then checks that the host's mount table has nothing new
under tmp_path.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import make_config
from nsinit import _native
from nsinit.config.model import Config
from nsinit.config.model import DeviceConfig as Device
from nsinit.config.model import MountConfig as Mount
from nsinit.errors import NsinitError
from nsinit.record import replace
from nsinit.mount import (create_devices, finish_rootfs, mount_all, pivot_to_rootfs,
                          prepare_root)
from nsinit.mount.flags import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
                                MS_NOATIME, MS_RDONLY, MS_REC, MS_REMOUNT,
                                MS_STRICTATIME)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts")]

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000


SAFE = MS_NOSUID | MS_NODEV | MS_NOEXEC
SYSTEM_MOUNTS = (
    Mount("proc", "/proc", "proc", SAFE),
    Mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755"),
    Mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620,gid=5"),
    Mount("shm", "/dev/shm", "tmpfs", SAFE, "mode=1777,size=65536k"),
    Mount("mqueue", "/dev/mqueue", "mqueue", SAFE),
    Mount("sysfs", "/sys", "sysfs", SAFE | MS_RDONLY),
)
DEVICES = (
    Device("c", "/dev/null", 1, 3),
    Device("c", "/dev/zero", 1, 5),
    Device("c", "/dev/full", 1, 7),
    Device("c", "/dev/tty", 5, 0),
    Device("c", "/dev/urandom", 1, 9),
    Device("c", "/dev/random", 1, 8),
)


# --- running steps in a child ------------------------------------------------------

def _report(write_fd: int, result: dict[str, Any]) -> None:
    try:
        os.write(write_fd, json.dumps(result).encode())
    except OSError:
        pass  # the parent then sees "child reported nothing"


def _in_child(write_fd: int, *steps: Callable[[], Any]) -> None:
    """Run ``steps`` in a forked child; report the last one's dict; never return."""
    try:
        result: Any = None
        for step in steps:
            result = step()
        _report(write_fd, result)
    except BaseException as err:  # noqa: BLE001 - everything goes back to the test
        _report(write_fd, {"error": f"{err.__class__.__name__}: {err}",
                           "trace": traceback.format_exc()})
    finally:
        os._exit(0)  # never back into pytest from a forked child


def _private_mount_namespace() -> None:
    _native.unshare(CLONE_NEWNS)
    _native.mount(None, "/", None, MS_PRIVATE | MS_REC)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def run_in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``body()`` in a forked child with its own, rprivate mount namespace."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _in_child(write_fd, _private_mount_namespace, body)
    os.close(write_fd)
    data = _read_all(read_fd)
    os.waitpid(pid, 0)
    return _decode(data)


def run_in_userns_child(body: Callable[[], dict[str, Any]],
                        prepare: Callable[[], None] | None = None) -> dict[str, Any]:
    """``body()`` as pid 1 of new user (root = host root, 65536 ids), pid and mount namespaces.

    ``prepare()`` runs first as real root, in a private mount namespace of its
    own: the mounts it makes are what the user namespace inherits (locked).
    """
    read_fd, write_fd = os.pipe()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def enter_namespaces() -> None:
        if prepare is not None:
            _private_mount_namespace()
            prepare()
        _native.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID)
        os.write(ready_w, b"x")
        if os.read(go_r, 1) != b"x":
            raise RuntimeError("the parent did not write the id maps")

    def run_pid1() -> None:
        inner = os.fork()  # the first child is pid 1 of the new pid namespace
        if inner == 0:
            _in_child(write_fd, _private_mount_namespace, body)
        os.close(write_fd)
        os.waitpid(inner, 0)
        os._exit(0)

    pid = os.fork()
    if pid == 0:
        for fd in (read_fd, ready_r, go_w):
            os.close(fd)
        _in_child(write_fd, enter_namespaces, run_pid1)
    for fd in (write_fd, ready_w, go_r):
        os.close(fd)
    try:
        if os.read(ready_r, 1) == b"x":
            # We are root in the initial user namespace: any mapping is allowed.
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write("0 0 65536\n")
            os.write(go_w, b"x")
    finally:
        os.close(ready_r)
        os.close(go_w)
    data = _read_all(read_fd)
    os.waitpid(pid, 0)
    return _decode(data)


def _decode(data: bytes) -> dict[str, Any]:
    assert data, "child reported nothing"
    result = json.loads(data)
    assert "error" not in result, result.get("trace") or result["error"]
    return result


def mountinfo() -> dict[str, dict[str, str]]:
    """{mount point: {"opts", "fstype"}}; the last (top) mount at a point wins."""
    table: dict[str, dict[str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            table[fields[4]] = {"opts": fields[5], "fstype": fields[sep + 1]}
    return table


def write_errno(path: str) -> int:
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as err:
        return err.errno or -1
    return 0


def host_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("rodir", "secretdir", "run", "proc", "sys"):
        (root / d).mkdir(parents=True)
    (root / "rodir" / "file").write_text("ro\n")
    (root / "secret.txt").write_text("secret\n")
    (root / "secretdir" / "key").write_text("k\n")
    (root / "run").chmod(0o700)
    (root / "evil").symlink_to("/etc")
    (tmp_path / "src-dir").mkdir()
    (tmp_path / "src-dir" / "marker").write_text("bound\n")
    (tmp_path / "data.txt").write_text("data\n")
    yield root
    assert host_mounts_under(tmp_path) == [], "a mount leaked to the host"


def full_config(root: Path, **overrides: Any) -> Config:
    tmp = root.parent
    mounts = SYSTEM_MOUNTS + (
        Mount("cgroup", "/sys/fs/cgroup", "cgroup", SAFE | MS_RDONLY),
        Mount(str(tmp / "data.txt"), "/data.txt", "bind", MS_BIND | MS_RDONLY),
        Mount(str(tmp / "src-dir"), "/evil", "bind", MS_BIND | MS_REC),
        Mount("tmpfs", "/run", "tmpfs", SAFE),
        Mount("tmpfs", "/made-tmp", "tmpfs", SAFE),  # a destination nsinit makes
    )
    values: dict[str, Any] = dict(
        rootfs=str(root), mounts=mounts, devices=DEVICES + (
            Device("c", "/dev/fuse", 10, 229, file_mode=0o600, uid=1000, gid=1000),
            Device("p", "/dev/fifo", 0, 0, file_mode=0o640)),
        mask_paths=("/secret.txt", "/secretdir", "/missing", "/proc/kcore"),
        readonly_paths=("/rodir", "/missing-too", "/proc/sys"),
    )
    values.update(overrides)
    return make_config(**values)


# --- tests ---------------------------------------------------------------------------------

def _setup_and_inspect(config: Config, with_console: bool) -> dict[str, Any]:
    """Run every step, checking along the way; the checks that need the host tree come first."""
    root = config.rootfs
    out: dict[str, Any] = {}
    prepare_root(config)
    mount_all(config)
    table = mountinfo()
    out["host_etc_mounted"] = "/etc" in table
    out["inside_etc_mounted"] = f"{root}/etc" in table
    out["host_etc_marker"] = os.path.exists("/etc/marker")
    console = None
    if with_console:
        _master, console = os.openpty()
        out["console_rdev"] = os.fstat(console).st_rdev
    create_devices(config, console)
    pivot_to_rootfs(config)
    out["cwd"] = os.getcwd()
    out["root_entries"] = sorted(os.listdir("/"))
    finish_rootfs(config)

    table = mountinfo()
    out["mounts"] = table
    null = os.stat("/dev/null")
    out["null"] = [null.st_rdev, stat.S_IMODE(null.st_mode), stat.S_ISCHR(null.st_mode)]
    out["null_write"] = write_errno("/dev/null")
    fuse = os.stat("/dev/fuse")
    out["fuse"] = [fuse.st_rdev, stat.S_IMODE(fuse.st_mode), fuse.st_uid, fuse.st_gid]
    out["fifo"] = stat.S_ISFIFO(os.lstat("/dev/fifo").st_mode)
    out["links"] = {n: os.readlink(f"/dev/{n}")
                    for n in ("ptmx", "fd", "stdin", "stdout", "stderr")}
    out["core"] = os.path.lexists("/dev/core")
    out["data"] = open("/data.txt").read()
    out["data_write"] = write_errno("/data.txt")
    out["etc_marker"] = open("/etc/marker").read()
    out["secret"] = open("/secret.txt").read()
    out["secretdir"] = os.listdir("/secretdir")
    out["secretdir_write"] = write_errno("/secretdir/new")
    out["rodir_write"] = write_errno("/rodir/new")
    out["rodir_file"] = open("/rodir/file").read()
    out["procsys_write"] = write_errno("/proc/sys/kernel/hostname")
    out["root_write"] = write_errno("/newfile")
    out["run_mode"] = stat.S_IMODE(os.stat("/run").st_mode)
    out["made_tmp_mode"] = stat.S_IMODE(os.stat("/made-tmp").st_mode)
    if os.path.isdir("/dev/sub"):
        out["sub_nodes"] = {name: [os.lstat(f"/dev/sub/{name}").st_rdev, stat.S_IFMT(os.lstat(f"/dev/sub/{name}").st_mode)]
                            for name in sorted(os.listdir("/dev/sub"))}
    out["cgroup_entries"] = sorted(os.listdir("/sys/fs/cgroup"))
    out["cgroup_write"] = write_errno("/sys/fs/cgroup/x")
    if with_console:
        out["dev_console_rdev"] = os.stat("/dev/console").st_rdev
    return out


def test_full_rootfs_setup(rootfs: Path) -> None:
    config = full_config(rootfs)
    # Two nodes in a directory made for them (one open of it serves both).
    config = replace(config, devices=(*config.devices, Device("c", "/dev/sub/tun", 10, 200),
                                      Device("p", "/dev/sub/fifo", 0, 0)))
    out = run_in_child(lambda: _setup_and_inspect(config, with_console=True))

    # The symlinked destination evil -> /etc was mounted inside the rootfs.
    assert out["inside_etc_mounted"] and not out["host_etc_mounted"]
    assert not out["host_etc_marker"]
    assert out["etc_marker"] == "bound\n"
    assert not (Path("/etc") / "marker").exists()

    assert out["cwd"] == "/"
    assert "evil" in out["root_entries"] and "secret.txt" in out["root_entries"]

    m = out["mounts"]
    for point in ("/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc",
                  "/data.txt", "/run", "/rodir", "/secret.txt", "/secretdir", "/dev/console",
                  "/sys/fs/cgroup", "/proc/sys"):
        assert point in m, f"{point} is not a mount point: {sorted(m)}"
    assert m["/proc"]["fstype"] == "proc"
    assert m["/dev/pts"]["fstype"] == "devpts"
    assert m["/dev/mqueue"]["fstype"] == "mqueue"
    assert m["/sys"]["fstype"] == "sysfs"
    for ro in ("/sys", "/data.txt", "/rodir", "/secretdir", "/sys/fs/cgroup", "/proc/sys"):
        assert m[ro]["opts"].split(",")[0] == "ro", (ro, m[ro])
    for rw in ("/", "/dev", "/etc", "/run"):
        assert m[rw]["opts"].split(",")[0] == "rw", (rw, m[rw])
    assert str(rootfs.parent) not in json.dumps(m), "the old root is still visible"

    assert out["null"] == [os.makedev(1, 3), 0o666, True]
    assert out["null_write"] == 0
    assert out["fuse"] == [os.makedev(10, 229), 0o600, 1000, 1000]
    assert out["fifo"] is True
    assert out["links"] == {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                            "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    assert out["core"] == os.path.exists("/proc/kcore")
    assert out["dev_console_rdev"] == out["console_rdev"]

    assert out["data"] == "data\n"
    assert out["data_write"] == errno.EROFS
    assert out["secret"] == ""
    assert out["secretdir"] == [] and out["secretdir_write"] == errno.EROFS
    assert out["rodir_write"] == errno.EROFS and out["rodir_file"] == "ro\n"
    assert out["procsys_write"] == errno.EROFS
    assert out["root_write"] == 0
    assert out["run_mode"] == 0o700  # tmpfs kept the directory's mode
    assert out["made_tmp_mode"] == 0o1777  # none to keep: the tmpfs's own (runc's)
    assert m["/made-tmp"]["fstype"] == "tmpfs"
    assert out["sub_nodes"] == {"fifo": [0, stat.S_IFIFO], "tun": [os.makedev(10, 200), stat.S_IFCHR]}
    assert "memory" in out["cgroup_entries"] or "cgroup.procs" in out["cgroup_entries"]
    assert out["cgroup_write"] in (errno.EROFS, errno.EACCES, errno.EPERM)

    # The masks hid the files without touching them (the fixture also
    # checks that the host mount table has nothing under tmp_path).
    assert (rootfs / "secret.txt").read_text() == "secret\n"


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/user"), reason="no user namespaces")
def test_rootfs_setup_in_user_namespace(rootfs: Path) -> None:
    locked = rootfs.parent / "locked"
    locked.mkdir()
    config = full_config(rootfs, readonlyfs=True,
                         namespaces=("NEWNS", "NEWUSER", "NEWPID"))
    config = replace(config, mounts=config.mounts + (
        Mount(str(locked / "file.txt"), "/locked.txt", "bind", MS_BIND | MS_RDONLY),))

    def lock_flags() -> None:
        # Mounts a user namespace inherits keep nosuid/nodev/noexec locked:
        # the ro remounts must carry them over or the kernel says EPERM.
        _native.mount(str(rootfs), str(rootfs), None, MS_BIND | MS_REC)
        _native.mount(None, str(rootfs), None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)
        _native.mount("tmpfs", str(locked), "tmpfs", SAFE | MS_NOATIME, "size=64k")
        (locked / "file.txt").write_text("locked\n")

    def body() -> dict[str, Any]:
        out = _setup_and_inspect(config, with_console=False)
        out["locked"] = open("/locked.txt").read()
        out["locked_write"] = write_errno("/locked.txt")
        return out

    out = run_in_userns_child(body, prepare=lock_flags)

    m = out["mounts"]
    # No NEWNET: the host's /sys, bound read-only, instead of a new sysfs.
    assert m["/sys"]["fstype"] == "sysfs" and m["/sys"]["opts"].startswith("ro")
    under_sys = {p: v["opts"] for p, v in m.items() if p.startswith("/sys/")}
    assert under_sys and all(o.startswith("ro") for o in under_sys.values()), under_sys
    # mqueue needs an IPC namespace owned by the user namespace: skipped.
    assert "/dev/mqueue" not in m
    # No mknod in a user namespace: the host's nodes are bound instead.
    assert "/dev/null" in m and "/dev/fuse" in m
    assert out["null"][0] == os.makedev(1, 3) and out["null"][2]
    assert out["null_write"] == 0
    assert out["fuse"][0] == os.makedev(10, 229)
    assert out["fifo"] is True  # mkfifo needs no privilege, so it is made
    # readonlyfs and the ro binds worked on mounts with locked flags.
    assert out["root_write"] == errno.EROFS
    assert m["/"]["opts"].split(",")[:1] == ["ro"] and "nosuid" in m["/"]["opts"]
    assert out["locked"] == "locked\n" and out["locked_write"] == errno.EROFS
    locked_opts = set(m["/locked.txt"]["opts"].split(","))
    assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= locked_opts
    assert out["etc_marker"] == "bound\n" and not out["host_etc_mounted"]
    assert out["data_write"] == errno.EROFS and out["secret"] == ""
    assert out["rodir_write"] == errno.EROFS
    assert out["procsys_write"] == errno.EROFS
    assert out["run_mode"] == 0o700


def test_no_pivot_root_moves_and_chroots(rootfs: Path) -> None:
    config = make_config(rootfs=str(rootfs), mounts=(SYSTEM_MOUNTS[1],), devices=DEVICES[:1],
                    no_pivot_root=True, readonlyfs=True)

    def body() -> dict[str, Any]:
        prepare_root(config)
        mount_all(config)
        create_devices(config, None)
        pivot_to_rootfs(config)
        finish_rootfs(config)
        return {"entries": sorted(os.listdir("/")), "cwd": os.getcwd(),
                "null": os.stat("/dev/null").st_rdev, "root_write": write_errno("/x"),
                "dev_write": write_errno("/dev/x")}

    out = run_in_child(body)
    assert "secret.txt" in out["entries"] and "evil" in out["entries"]
    assert out["cwd"] == "/"
    assert out["null"] == os.makedev(1, 3)
    assert out["root_write"] == errno.EROFS and out["dev_write"] == 0


def test_policy_refusals(rootfs: Path) -> None:
    (rootfs / "toproc").symlink_to("/proc/sys")
    (rootfs / "up").symlink_to("../..")

    def attempt(extra: Mount) -> str:
        config = make_config(rootfs=str(rootfs), mounts=(SYSTEM_MOUNTS[0], extra))
        try:
            mount_all(config)
        except NsinitError as err:
            return str(err)
        return "mounted"

    def body() -> dict[str, Any]:
        prepare_root(make_config(rootfs=str(rootfs), mounts=()))
        src = str(rootfs.parent / "src-dir")
        return {
            "root": attempt(Mount(src, "/", "bind", MS_BIND)),
            "root_via_symlink": attempt(Mount(src, "/up", "bind", MS_BIND)),
            "in_proc": attempt(Mount("tmpfs", "/proc/sys", "tmpfs")),
            "proc_via_symlink": attempt(Mount(src, "/toproc/x", "bind", MS_BIND)),
            "proc_bind_on_proc": attempt(Mount(src, "/proc", "bind", MS_BIND)),
            "missing_source": attempt(Mount("/no/such/source", "/x", "bind", MS_BIND)),
        }

    out = run_in_child(body)
    assert "resolves to the rootfs itself" in out["root"]
    assert "resolves to the rootfs itself" in out["root_via_symlink"]
    assert "/proc/sys is inside /proc" in out["in_proc"]
    assert "/toproc/x (through symlinks: /proc/sys/x) is inside /proc" in out["proc_via_symlink"]
    assert "/proc is inside /proc" in out["proc_bind_on_proc"]
    assert "bind source /no/such/source does not exist" in out["missing_source"]


def test_proc_behind_a_symlink_is_refused(rootfs: Path) -> None:
    # Otherwise procfs would land at /realproc, out of reach of the /proc
    # checks and of the masks.
    (rootfs / "proc").rmdir()
    (rootfs / "proc").symlink_to("/realproc")
    config = make_config(rootfs=str(rootfs), mounts=(SYSTEM_MOUNTS[0],))

    def body() -> dict[str, Any]:
        prepare_root(config)
        try:
            mount_all(config)
        except NsinitError as err:
            return {"message": str(err)}
        return {"message": "mounted"}

    out = run_in_child(body)
    assert "proc mount destination /proc leads to /realproc through symlinks" in out["message"]

