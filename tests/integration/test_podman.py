"""podman (through conmon) drives the runtime under test, as users run podman (issue 18, part 3).

``podman --runtime RUNTIME run --rootfs DIR ...`` with the busybox rootfs:
exit codes (0, 3, 127, 126), stdio, -i, env, user, workdir, --read-only,
capabilities, what podman sets up by default, the options users pass,
volumes, limits, detached run + logs + stop + kill + rm, create + start,
restart, a restart policy, pause, update, joining another container's
namespaces, exec (-i, -d, --privileged, -t), -t, an interactive shell; and
after every test nothing is left: no container in ``podman ps -a``, no
runtime state, no cgroup, no mount, no process, no nsinit record.

The runtime is this tree's nsinit-runc, or NSINIT_ENGINE_RUNTIME (see
_engines.py): with ``NSINIT_ENGINE_RUNTIME=runc`` the same tests pass with
runc, which shows the tests ask only what podman users get from runc.

podman here is isolated from the machine's: its own --root, --runroot and
--tmpdir under this module's dir /tmp/nsinit-podman-test-* (removed at the end), the vfs driver (``--rootfs`` needs no
layers, and vfs mounts nothing), --events-backend file (no journald),
--cgroup-manager cgroupfs (PID 1 is not systemd) under a cgroup parent of
its own (removed at the end), --network none (the default bridge needs
netavark and iptables).  On this machine podman also needs
``--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`` (its default nofile
of 1048576 is above the hard limit root has, without CAP_SYS_RESOURCE).

conmon double-forks; once its container ends it exits and PID 1 reaps it,
late on these machines: a conmon zombie is not a leftover, a live one is.
"""
from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import needs_root, processes_rooted_in, wait_until
from _engines import (Runtime, cgroup_children, container_stderr, kill_what_is_left, live_processes_mentioning,
                      mounts_mentioning, needs, needs_binaries, nsinit_records_mentioning, read_until_closed,
                      remove_cgroup_tree, runtime_under_test)

pytestmark = [pytest.mark.integration, needs_root, needs_binaries("podman", "conmon")]

# podman's default capabilities (containers.conf): CHOWN DAC_OVERRIDE FOWNER
# FSETID KILL NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT.
PODMAN_DEFAULT_CAPS = 0x800405FB
CAP_NET_RAW = 1 << 13
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


class Podman:
    """podman with every piece of state under ``base``, running ``runtime``."""

    def __init__(self, base: Path, runtime: Runtime, rootfs: Path) -> None:
        self.base = base
        self.runtime = runtime
        self.rootfs = rootfs
        self.cgroup_parent = f"/{base.name}"
        self.events = base / "tmp" / "events" / "events.log"

    def argv(self, *args: str) -> list[str]:
        b = self.base
        return ["podman", "--root", str(b / "root"), "--runroot", str(b / "runroot"), "--tmpdir", str(b / "tmp"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--runtime", self.runtime.path, *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # cwd: conmon writes files there (an "oom" when the kernel killed the container).
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, cwd=self.base)

    def ok(self, *args: str, **kw: Any) -> str:
        result = self(*args, **kw)
        assert result.returncode == 0, f"podman {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result.stdout

    def container_options(self, *options: str) -> list[str]:
        return ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none",
                "--cgroup-parent", self.cgroup_parent, *options, "--rootfs", str(self.rootfs)]

    def run(self, *options: str, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``podman run --rm OPTIONS --rootfs DIR /bin/sh -c SCRIPT``."""
        return self("run", "--rm", *self.container_options(*options), "/bin/sh", "-c", script, **kw)

    def detached(self, name: str, script: str, *options: str) -> str:
        """``podman run -d``: the container's id, once it runs."""
        out = self.ok("run", "-d", "--name", name, *self.container_options(*options), "/bin/sh", "-c", script)
        return out.strip().splitlines()[-1]

    def inspect(self, name: str, template: str) -> str:
        return self.ok("inspect", "--format", template, name).strip()

    def created_ids(self, since: int) -> list[str]:
        """Ids of the containers podman created since the events log had ``since`` bytes."""
        if not self.events.exists():
            return []
        with open(self.events, "rb") as f:
            f.seek(since)
            events = [json.loads(line) for line in f if line.strip()]
        return sorted({e["ID"] for e in events if e.get("Type") == "container" and e.get("Status") == "create"})

    def events_size(self) -> int:
        return self.events.stat().st_size if self.events.exists() else 0

    def leftovers(self, ids: list[str]) -> list[str]:
        """Whatever of these containers is still there, each said in a line."""
        left = [f"podman ps -a: {line}" for line in self.ok("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").splitlines()]
        left += [f"the runtime still has {i[:12]}" for i in ids if self.runtime.knows(i)]
        left += [f"runtime state dir: {path}" for i in ids for path in (f"/run/runc/{i}", f"/run/nsinit-runc/{i}")
                 if os.path.lexists(path)]
        left += [f"cgroup: {path}" for path in cgroup_children(self.cgroup_parent)
                 if not path.endswith("/conmon")]   # podman's, shared by every conmon of the parent
        left += [f"mount: {line}" for line in mounts_mentioning(str(self.base))]
        left += [f"container process: {pid}" for pid in processes_rooted_in(self.rootfs)]
        left += [f"live process: {line}" for line in live_processes_mentioning(str(self.base))]
        left += [f"nsinit record: {path}" for path in nsinit_records_mentioning(str(self.base))]
        return left


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return runtime_under_test(tmp_path_factory)


@pytest.fixture(scope="module")
def podman_env(runtime: Runtime) -> Iterator[Podman]:
    from nsinit.demo_rootfs import build_rootfs

    # Not under pytest's basetemp: podman refuses a --runroot longer than 50 characters.
    base = Path(tempfile.mkdtemp(prefix="nsinit-podman-test-", dir="/tmp"))
    rootfs = base / "rootfs"
    podman = Podman(base, runtime, rootfs)
    try:
        build_rootfs(str(rootfs))
        yield podman
    finally:
        podman("rm", "--all", "--force", "--time", "0")
        try:
            wait_until(lambda: not podman.leftovers([]), timeout=10)
        finally:
            kill_what_is_left(podman.cgroup_parent, rootfs, base)
            for container_id in podman.created_ids(0):   # its records in the runtime's default root
                if runtime.knows(container_id):
                    runtime.run("delete", "--force", container_id)
            remove_cgroup_tree(podman.cgroup_parent)
            if not mounts_mentioning(str(base)):   # never rm -r through a mount
                shutil.rmtree(base)


@pytest.fixture
def podman(podman_env: Podman, request: pytest.FixtureRequest) -> Iterator[Podman]:
    """The module's podman; after the test, nothing of its containers may be left."""
    since = podman_env.events_size()
    yield podman_env
    ids = podman_env.created_ids(since)
    podman_env("rm", "--all", "--force", "--time", "0")   # a failed test's containers, so the next starts clean
    # podman run --rm and rm return once the runtime deleted the container;
    # conmon may still be leaving: give it a moment.
    deadline = time.monotonic() + 5
    while podman_env.leftovers(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not podman_env.leftovers(ids), "\n".join(podman_env.leftovers(ids))


def status_of(text: str) -> dict[str, str]:
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return {key: value.strip() for key, value in fields.items() if key in STATUS_FIELDS}


def cgroup_dir(pid: int, controller: str) -> Path:
    """The host dir of ``pid``'s cgroup in the v1 hierarchy of ``controller``."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"{pid} has no {controller} cgroup")


# --- foreground runs: what `podman run --rm` users see -------------------------

@pytest.mark.parametrize("code", [0, 3])
def test_the_exit_status_is_the_commands(podman: Podman, request: pytest.FixtureRequest, code: int) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman.run(script=f"exit {code}")
    assert result.returncode == code, result.stderr
    assert container_stderr(result.stderr) == ""   # the runtime said nothing there


def test_a_missing_command_is_127(podman: Podman, request: pytest.FixtureRequest) -> None:
    # The runtime's execve fails: podman reads the runtime's error text
    # ("no such file or directory", "executable file not found") to say 127.
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman("run", "--rm", *podman.container_options(), "/no/such/command")
    assert result.returncode == 127, result.stderr
    assert "/no/such/command" in result.stderr and "Traceback" not in result.stderr


def test_a_command_that_cannot_be_executed_is_126(podman: Podman, request: pytest.FixtureRequest) -> None:
    # /etc/passwd is no executable: EACCES, which podman says as 126.
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman("run", "--rm", *podman.container_options(), "/etc/passwd")
    assert result.returncode == 126, result.stderr
    # 126 is also podman's word for any failure to start: the reason must be the exec's.
    assert "permission denied" in result.stderr.lower() and "Traceback" not in result.stderr, result.stderr


def test_stdout_and_stderr_reach_podman_apart(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman.run(script="echo to-out; echo to-err >&2; echo more-out")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "to-out\nmore-out\n"
    assert container_stderr(result.stderr) == "to-err\n"


def test_stdin_is_passed_with_i_and_empty_without(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    with_i = podman.run("-i", script="cat; echo end", input="line one\nline two\n")
    assert (with_i.returncode, with_i.stdout) == (0, "line one\nline two\nend\n"), with_i.stderr
    without = podman.run(script="cat; echo end", input="not for the container\n")
    assert (without.returncode, without.stdout) == (0, "end\n"), without.stderr


def test_env_user_and_workdir(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman.run("--env", "GREETING=hello there", "--user", "1000:100", "--workdir", "/home/user",
                        script='echo "$GREETING"; id -u; id -g; pwd; echo "$HOME"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello there", "1000", "100", "/home/user", "/home/user"]
    named = podman.run("--user", "nobody", script="id -un; id -u")
    assert named.stdout.splitlines() == ["nobody", "65534"], named.stderr


DEFAULTS_PROBE = ("hostname; ulimit -n; ulimit -u; umask; stat -c '%n %F %t,%T' /dev/null /dev/zero /dev/full "
                  "/dev/random /dev/urandom /dev/tty; readlink /dev/ptmx; cut -s -d: -f1 /proc/net/dev | tr -d ' '; "
                  "echo x 2>/dev/null > /proc/sys/kernel/hostname || echo proc-sys-ro; cat /proc/self/mountinfo")


def test_what_podman_sets_up_by_default(podman: Podman, request: pytest.FixtureRequest) -> None:
    # --hostname, the --ulimit values, the default umask, the /dev nodes the
    # runtime makes (podman lists none), --network none's lone loopback,
    # podman's bind mounts and the read-only /sys and /proc/sys.
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman.run("--hostname", "box", script=DEFAULTS_PROBE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["box", "1024", "1024", "0022"], lines
    assert lines[4:10] == ["/dev/null character special file 1,3", "/dev/zero character special file 1,5",
                           "/dev/full character special file 1,7", "/dev/random character special file 1,8",
                           "/dev/urandom character special file 1,9", "/dev/tty character special file 5,0"], lines
    assert lines[10:13] == ["pts/ptmx", "lo", "proc-sys-ro"], lines
    mounts = {line.split()[4]: line.split() for line in lines[13:]}
    for path in ("/etc/hosts", "/etc/hostname", "/run/.containerenv"):
        assert mounts[path][3].startswith(str(podman.base)), mounts.get(path)   # podman's own files, bound
    assert mounts["/sys"][5].startswith("ro") and mounts["/proc/sys"][5].startswith("ro")
    assert {"/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"} <= mounts.keys()


# What users pass to podman run, each seen from inside: (options, script, stdout).
OPTIONS_SEEN_INSIDE = [
    (("--security-opt", "no-new-privileges"), "grep NoNewPrivs /proc/self/status", "NoNewPrivs:\t1"),
    (("--security-opt", "seccomp=unconfined"), "grep Seccomp: /proc/self/status", "Seccomp:\t0"),
    (("--sysctl", "net.ipv4.ip_forward=1"), "cat /proc/sys/net/ipv4/ip_forward", "1"),
    (("--oom-score-adj", "500"), "cat /proc/self/oom_score_adj", "500"),
    (("--group-add", "10", "--user", "1000:1000"), "id -G", "1000 10"),
    (("--user", "4242:4243"), "id -u; id -g", "4242\n4243"),
    (("--ulimit", "core=0:0", "--ulimit", "nofile=100:200"), "ulimit -c; ulimit -n; ulimit -Hn", "0\n100\n200"),
    (("--shm-size", "1m"), "df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2", "1024"),
    (("--add-host", "db.example:10.1.2.3"), "grep db.example /etc/hosts", "10.1.2.3\tdb.example"),
    (("--tmpfs", "/scratch:size=1m"), "grep ' /scratch ' /proc/self/mountinfo | cut -d' ' -f9", "tmpfs"),
    (("--device", "/dev/fuse"), "stat -c '%F %t,%T' /dev/fuse", "character special file a,e5"),
    (("--pid", "host"), "test $$ -gt 1 && test -d /proc/1 && readlink /proc/1/exe >/dev/null 2>&1; echo $?", "1"),
    (("--privileged",), "grep -E '^(CapEff|Seccomp):' /proc/self/status | cut -f2 | tr '\\n' ' '",
     "000001fffeffffff 0 "),
]


@pytest.mark.parametrize("options,script,expected", OPTIONS_SEEN_INSIDE, ids=[" ".join(o[0]) for o in OPTIONS_SEEN_INSIDE])
def test_options_seen_inside(podman: Podman, request: pytest.FixtureRequest, options: tuple[str, ...],
                             script: str, expected: str) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman.run(*options, script=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == expected


def test_volumes_rw_and_ro(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    volume = podman.base / f"volume-{request.node.name}"
    volume.mkdir()
    (volume / "from-host").write_text("host\n")
    result = podman.run("--volume", f"{volume}:/data", "--volume", f"{volume}:/data-ro:ro",
                        script="cat /data/from-host; echo container > /data/from-container; "
                               "touch /data-ro/no 2>/dev/null || echo ro-refused")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["host", "ro-refused"]
    assert (volume / "from-container").read_text() == "container\n"
    assert not (volume / "no").exists()
    shutil.rmtree(volume)


def test_a_tmpfs_on_a_new_directory_is_world_writable(podman: Podman, request: pytest.FixtureRequest) -> None:
    # runc keeps the mode of a tmpfs's destination only if it existed
    # (libcontainer/rootfs_linux.go: chmod to the old stat's mode if stat
    # succeeded); one it had to make gets the tmpfs default, 1777, as with
    # docker --tmpfs.  An existing directory keeps its mode.
    needs(request, podman.runtime, "create", "start", "delete")
    new = f"/new-{os.urandom(4).hex()}"   # the runtime makes it in the module's rootfs
    result = podman.run("--tmpfs", f"{new}:size=1m", "--tmpfs", "/var:size=1m", "--user", "1000",
                        script=f"stat -c '%a' {new} /var; touch {new}/mine && echo wrote")
    assert result.stdout.splitlines() == ["1777", "755", "wrote"], result.stderr


def test_read_only_root(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    result = podman.run("--read-only", script="touch /in-the-root 2>&1; echo $?; touch /tmp/fine && echo tmp-ok; "
                                              "grep -E '^[^ ]+ [^ ]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] == "1" and lines[2] == "tmp-ok", result.stdout
    assert lines[3].split()[5].split(",")[0] == "ro", lines[3]
    assert not (podman.rootfs / "in-the-root").exists()


def test_capabilities_default_dropped_and_added(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "delete")
    default = status_of(podman.ok("run", "--rm", *podman.container_options(), "cat", "/proc/self/status"))
    assert int(default["CapEff"], 16) == int(default["CapBnd"], 16) == PODMAN_DEFAULT_CAPS, default
    assert int(default["CapInh"], 16) == int(default["CapAmb"], 16) == 0, default
    assert default["Seccomp"] == "2", default   # podman's default profile, filtered
    dropped = status_of(podman.ok("run", "--rm", *podman.container_options("--cap-drop", "chown,kill"),
                                  "cat", "/proc/self/status"))
    assert int(dropped["CapEff"], 16) == PODMAN_DEFAULT_CAPS & ~(1 << 0) & ~(1 << 5), dropped
    only = status_of(podman.ok("run", "--rm", *podman.container_options("--cap-drop", "all", "--cap-add", "net_raw"),
                               "cat", "/proc/self/status"))
    assert int(only["CapEff"], 16) == int(only["CapBnd"], 16) == CAP_NET_RAW, only
    # A capability dropped is dropped: chown as root fails without CAP_CHOWN.
    denied = podman.run("--cap-drop", "chown", script="chown 1000 /tmp 2>&1; echo $?")
    assert denied.stdout.splitlines()[-1] == "1", denied.stdout


# --- detached containers: run -d, then the other commands ----------------------

LOOP_UNTIL_TERM = 'trap "echo got-term; exit 0" TERM; echo started; while :; do sleep 0.05; done'


def test_detached_run_logs_stop_and_rm(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    cid = podman.detached("logs-stop", LOOP_UNTIL_TERM)
    assert podman.inspect("logs-stop", "{{.State.Status}}") == "running"
    pid = int(podman.inspect("logs-stop", "{{.State.Pid}}"))
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/bin/sh\0-c\0")
    wait_until(lambda: "started" in podman.ok("logs", "logs-stop"))
    assert cid in podman.ok("ps", "--no-trunc", "--format", "{{.ID}}")
    started = time.monotonic()
    podman.ok("stop", "--time", "20", "logs-stop")   # SIGTERM, which the script answers at once
    assert time.monotonic() - started < 10, "stop had to wait for its timeout: SIGTERM did not arrive"
    assert podman.inspect("logs-stop", "{{.State.Status}}") == "exited"
    assert podman.inspect("logs-stop", "{{.State.ExitCode}}") == "0"
    assert podman.ok("logs", "logs-stop").splitlines() == ["started", "got-term"]
    podman.ok("rm", "logs-stop")
    assert podman("inspect", "logs-stop").returncode != 0


def test_create_start_restart_and_start_again(podman: Podman, request: pytest.FixtureRequest) -> None:
    # podman create is the runtime's create (the init waits), podman start its
    # start; restart and a second start make the container again under the same id.
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    podman.ok("create", "--name", "twostep", *podman.container_options(), "/bin/sh", "-c",
              'trap "exit 0" TERM; echo started; while :; do sleep 0.05; done')
    assert podman.inspect("twostep", "{{.State.Status}}") == "created"
    podman.ok("start", "twostep")
    assert podman.inspect("twostep", "{{.State.Status}}") == "running"
    first = int(podman.inspect("twostep", "{{.State.Pid}}"))
    podman.ok("restart", "--time", "10", "twostep")
    second = int(podman.inspect("twostep", "{{.State.Pid}}"))
    assert podman.inspect("twostep", "{{.State.Status}}") == "running" and second != first
    podman.ok("stop", "--time", "10", "twostep")
    podman.ok("start", "twostep")
    assert podman.inspect("twostep", "{{.State.Status}}") == "running"
    wait_until(lambda: podman.ok("logs", "twostep").splitlines() == ["started"] * 3)
    podman.ok("rm", "--force", "--time", "0", "twostep")


def test_restart_policy_runs_it_again(podman: Podman, request: pytest.FixtureRequest) -> None:
    # --restart on-failure: conmon's exit command (podman container cleanup)
    # starts it again through the runtime.
    needs(request, podman.runtime, "create", "start", "delete")
    podman.ok("run", "--detach", "--name", "again", "--restart", "on-failure:2", *podman.container_options(),
              "/bin/sh", "-c", "echo run; exit 3")
    wait_until(lambda: podman.inspect("again", "{{.State.Status}} {{.RestartCount}}") == "exited 2", timeout=20)
    assert podman.inspect("again", "{{.State.ExitCode}}") == "3"
    assert podman.ok("logs", "again").splitlines() == ["run"] * 3
    podman.ok("rm", "--force", "--time", "0", "again")


def test_stop_kills_what_ignores_sigterm(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    podman.detached("deaf", "trap '' TERM; while :; do sleep 0.05; done")
    podman.ok("stop", "--time", "1", "deaf")   # 15, then 9 after a second
    assert podman.inspect("deaf", "{{.State.ExitCode}}") == str(128 + 9)
    podman.ok("rm", "deaf")


def test_kill_sends_the_signal_asked(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    podman.detached("killed", 'trap "exit 7" USR1; while :; do sleep 0.05; done')
    podman.ok("kill", "--signal", "USR1", "killed")
    assert podman.ok("wait", "killed").strip() == "7"
    podman.ok("rm", "killed")
    podman.detached("killed9", "while :; do sleep 0.05; done")
    podman.ok("kill", "killed9")   # SIGKILL
    assert podman.ok("wait", "killed9").strip() == str(128 + 9)
    podman.ok("rm", "killed9")


def test_rm_force_removes_a_running_container(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    podman.detached("forced", "while :; do sleep 0.05; done")
    pid = int(podman.inspect("forced", "{{.State.Pid}}"))
    podman.ok("rm", "--force", "--time", "0", "forced")
    assert not Path(f"/proc/{pid}/cmdline").exists() or Path(f"/proc/{pid}/cmdline").read_bytes() == b""


def test_limits_are_set_on_the_cgroup(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    podman.detached("limited", "while :; do sleep 0.05; done", "--memory", "64m", "--pids-limit", "42")
    pid = int(podman.inspect("limited", "{{.State.Pid}}"))
    memory, pids = cgroup_dir(pid, "memory"), cgroup_dir(pid, "pids")
    assert str(memory).startswith(f"/sys/fs/cgroup/memory{podman.cgroup_parent}/"), memory
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
    assert (pids / "pids.max").read_text().strip() == "42"
    assert str(pid) in (pids / "cgroup.procs").read_text().split()
    podman.ok("rm", "--force", "--time", "0", "limited")


def test_update_changes_the_limits_of_a_running_container(podman: Podman, request: pytest.FixtureRequest) -> None:
    # podman update: the runtime's `update --resources=FILE ID`.
    needs(request, podman.runtime, "create", "start", "update", "kill", "delete")
    podman.detached("updated", "while :; do sleep 0.05; done", "--memory", "64m")
    pid = int(podman.inspect("updated", "{{.State.Pid}}"))
    podman.ok("update", "--memory", "96m", "--cpu-period", "100000", "--cpu-quota", "50000", "updated")
    assert int((cgroup_dir(pid, "memory") / "memory.limit_in_bytes").read_text()) == 96 * 1024 * 1024
    assert (cgroup_dir(pid, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "50000"
    podman.ok("rm", "--force", "--time", "0", "updated")


def test_joining_another_containers_namespaces(podman: Podman, request: pytest.FixtureRequest) -> None:
    # What pods are made of: --pid/--uts/--ipc container:NAME and --network
    # ns:PATH put namespaces.path in config.json; the runtime setns()es.
    needs(request, podman.runtime, "create", "start", "kill", "delete")
    podman.detached("joined", "while :; do sleep 0.05; done", "--hostname", "first")
    pid = int(podman.inspect("joined", "{{.State.Pid}}"))
    result = podman.run("--pid", "container:joined", "--uts", "container:joined", "--ipc", "container:joined",
                        script="hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                               "for ns in pid uts ipc; do readlink /proc/self/ns/$ns; done")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["first", "/bin/sh -c while :; do sleep 0.05; done "], lines
    assert lines[2:] == [os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("pid", "uts", "ipc")]
    network = podman("run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                     "--network", f"ns:/proc/{pid}/ns/net", "--cgroup-parent", podman.cgroup_parent,
                     "--rootfs", str(podman.rootfs), "readlink", "/proc/self/ns/net")
    assert network.stdout.strip() == os.readlink(f"/proc/{pid}/ns/net"), network.stderr
    podman.ok("rm", "--force", "--time", "0", "joined")


def test_pause_and_unpause(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "pause", "resume", "kill", "delete")
    tick = podman.rootfs / "tmp" / "tick"   # the rootfs's own /tmp, seen from the host
    tick.unlink(missing_ok=True)
    podman.detached("paused", "n=0; while :; do n=$((n+1)); echo $n > /tmp/tick; sleep 0.02; done")
    wait_until(tick.exists)
    pid = int(podman.inspect("paused", "{{.State.Pid}}"))
    freezer = cgroup_dir(pid, "freezer")
    podman.ok("pause", "paused")
    assert podman.inspect("paused", "{{.State.Status}}") == "paused"
    assert (freezer / "freezer.state").read_text().strip() == "FROZEN"
    frozen_at = tick.read_text()
    time.sleep(0.3)
    assert tick.read_text() == frozen_at, "the container kept running while paused"
    podman.ok("unpause", "paused")
    assert podman.inspect("paused", "{{.State.Status}}") == "running"
    assert (freezer / "freezer.state").read_text().strip() == "THAWED"
    wait_until(lambda: tick.read_text() not in (frozen_at, ""))
    podman.ok("rm", "--force", "--time", "0", "paused")


# --- exec and terminals ---------------------------------------------------------

def test_exec_into_a_detached_container(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "exec", "kill", "delete")
    for mark in ("mark", "mark-d"):
        (podman.rootfs / "tmp" / mark).unlink(missing_ok=True)
    podman.detached("execd", "echo from-init > /tmp/mark; while :; do sleep 0.05; done", "--env", "FROM=init")
    wait_until(lambda: (podman.rootfs / "tmp" / "mark").exists())   # the rootfs's own /tmp
    out = podman.ok("exec", "--env", "EXTRA=yes", "--user", "1000", "--workdir", "/tmp", "execd", "/bin/sh", "-c",
                    'cat mark; echo "$FROM $EXTRA"; id -u; pwd; cat /proc/1/cmdline | tr "\\0" " "; echo')
    assert out.splitlines() == ["from-init", "init yes", "1000", "/tmp",
                                "/bin/sh -c echo from-init > /tmp/mark; while :; do sleep 0.05; done "]
    assert podman("exec", "execd", "/bin/sh", "-c", "exit 5").returncode == 5
    missing = podman("exec", "execd", "/no/such/command")
    assert missing.returncode == 127, missing.stderr
    piped = podman("exec", "-i", "execd", "cat", input="through exec\n")
    assert piped.stdout == "through exec\n", piped.stderr
    status = status_of(podman.ok("exec", "execd", "cat", "/proc/self/status"))
    assert int(status["CapEff"], 16) == PODMAN_DEFAULT_CAPS and status["Seccomp"] == "2", status
    privileged = status_of(podman.ok("exec", "--privileged", "execd", "cat", "/proc/self/status"))
    assert int(privileged["CapEff"], 16) > PODMAN_DEFAULT_CAPS, privileged
    # exec -d: the runtime's exec --detach; the process outlives the podman command.
    podman.ok("exec", "--detach", "execd", "/bin/sh", "-c", "echo detached > /tmp/mark-d; sleep 30")
    wait_until(lambda: (podman.rootfs / "tmp" / "mark-d").exists())
    assert "sleep 30" in podman.ok("top", "execd", "args")
    podman.ok("rm", "--force", "--time", "0", "execd")


def test_tty(podman: Podman, request: pytest.FixtureRequest) -> None:
    # -t: the runtime sends the pty master over conmon's console socket.
    needs(request, podman.runtime, "create", "start", "delete", "console-socket")
    result = podman.run("-t", script="tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys")
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace("\r\n", "\n").splitlines() == ["/dev/pts/0", "all-ttys"]


def test_an_interactive_shell(podman: Podman, request: pytest.FixtureRequest) -> None:
    # podman run -it /bin/sh from a terminal: what people type, what they see, the exit status.
    needs(request, podman.runtime, "create", "start", "delete", "console-socket")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(podman.argv("run", "--rm", "-it", *podman.container_options(), "/bin/sh"),
                                stdin=slave, stdout=slave, stderr=slave, start_new_session=True, cwd=podman.base)
        os.close(slave)
        slave = -1
        banner = read_until_closed(master, proc, timeout=30, until=b"/ # ")
        assert "/ # " in banner, banner   # the prompt (then busybox asks where the cursor is)
        os.write(master, b"echo hi-$((6*7)); tty; exit 4\n")
        out = read_until_closed(master, proc, timeout=30)
        code = proc.wait(timeout=10)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert code == 4, out
    assert out.replace("\r", "").splitlines()[-2:] == ["hi-42", "/dev/pts/0"], out


def test_exec_with_a_tty(podman: Podman, request: pytest.FixtureRequest) -> None:
    needs(request, podman.runtime, "create", "start", "exec", "console-socket", "kill", "delete")
    podman.detached("exectty", "while :; do sleep 0.05; done")
    out = podman.ok("exec", "-t", "exectty", "/bin/sh", "-c", "tty; test -t 1 && echo a-tty")
    lines = out.replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "a-tty", out
    podman.ok("rm", "--force", "--time", "0", "exectty")
