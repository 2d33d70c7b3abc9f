#!/usr/bin/env python3
"""nsinit's benchmark suite: nsinit against runc, crun, bubblewrap and unshare.

    sudo python3 bench/run.py [--quick] [--json FILE]

Installs the peers from Debian if missing, builds one busybox rootfs with
``nsinit rootfs``, gives runc and crun an OCI bundle for the same tree and
the same namespaces, then times every case *interleaved* (one run of each
runtime per round, the starting runtime rotating), so that drift on the
machine (page cache, CPU frequency, a neighbour's load) hits every runtime
alike.  Every run of every runtime goes through one launcher:
``os.posix_spawn`` + ``os.waitpid``, timed with ``time.perf_counter``.

The whole suite runs inside one private mount namespace in which the empty
cgroup2 mount at /sys/fs/cgroup/unified is unmounted: crun refuses the
hybrid layout otherwise, and all runtimes must see the same host.

See bench/README.md for what each case measures.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # bench/stats.py, beside this file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(REPO, "bench", "results", "latest.json")
INNER_MARK = "NSINIT_BENCH_INNER"          # set once re-executed under unshare -m
PEER_PACKAGES = {"runc": "runc", "crun": "crun", "bwrap": "bubblewrap", "hyperfine": "hyperfine",
                 "time": "time"}  # /usr/bin/time: peak RSS (see peak_rss)
RSS_RUNS = 3                                # /usr/bin/time runs per row, after the timed rounds
RUN_TIMEOUT = 30                            # seconds; one run of anything
SLEEP_ARGS = ["/bin/sleep", "1000000"]
PODMAN_PROFILE = "/usr/share/containers/seccomp.json"  # containers-common
TARGETS = {
    "create_vs_runc": 0.8, "create_vs_crun_stretch": 1.0,
    "join_vs_runc_exec": 1.0, "join_vs_crun_exec_stretch": 1.5,
    "veth_median_ms": 60.0, "supervisor_rss_mb": 12.0,
    "lifecycle_vs_runc": 1.0,
}
PR_SET_CHILD_SUBREAPER = 36                 # <linux/prctl.h>


def log(text: str) -> None:
    sys.stderr.write(f"bench: {text}\n")
    sys.stderr.flush()


class BenchError(Exception):
    """Setup of the suite failed; the text says what to do."""


# --- one launcher for every runtime ----------------------------------------------

class RunFailed(Exception):
    def __init__(self, argv: Sequence[str], status: str, stderr: str) -> None:
        tail = stderr.strip().splitlines()[-3:]
        super().__init__(f"{' '.join(argv)}: {status}" + (": " + " | ".join(tail) if tail else ""))


class _Timeout(Exception):
    pass


def _on_alarm(_signum: int, _frame: object) -> None:
    raise _Timeout()


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt()  # the same cleanup as Ctrl-C


@dataclass
class Launcher:
    """posix_spawn + waitpid: the least overhead Python offers, the same for all.

    stdin and stdout are /dev/null; stderr goes to a file that is read only
    when a run fails.
    """

    env: dict[str, str]
    errfile: str

    def spawn(self, argv: Sequence[str]) -> int:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, self.errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        ]
        return os.posix_spawn(argv[0], list(argv), self.env, file_actions=actions)

    def wait(self, pid: int, argv: Sequence[str], timeout: int = RUN_TIMEOUT) -> int:
        """The wait status; kills the run after ``timeout`` s."""
        signal.alarm(timeout)
        try:
            _, status = os.waitpid(pid, 0)
        except _Timeout:
            stop_child(pid)
            raise RunFailed(argv, f"timed out after {timeout} s", self.read_err()) from None
        except KeyboardInterrupt:
            stop_child(pid)
            raise
        finally:
            signal.alarm(0)
        return status

    def run(self, argv: Sequence[str], timeout: int = RUN_TIMEOUT) -> float:
        """Run to completion, return the seconds it took; RunFailed unless exit 0."""
        start = time.perf_counter()
        pid = self.spawn(argv)
        status = self.wait(pid, argv, timeout)
        elapsed = time.perf_counter() - start
        if status != 0:
            raise RunFailed(argv, describe_status(status), self.read_err())
        return elapsed

    def read_err(self) -> str:
        try:
            with open(self.errfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def stop_child(pid: int, grace: float = 5.0) -> None:
    """Interrupt a run and reap it before anything it made is cleaned up.

    SIGINT first: nsinit turns it into KeyboardInterrupt and undoes its steps
    (a SIGTERM or SIGKILL in mid-setup would leave its cgroup behind, and a
    run still going could re-create the bridge the cleanup just removed).
    """
    for signum in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # exited on its own; still to be reaped below
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return  # already reaped
            if done:
                return
            time.sleep(0.01)


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def quiet(argv: Sequence[str], check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    """Untimed helper commands (setup, cleanup, probes)."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.returncode}")
    return result


# --- rows and interleaved measurement ----------------------------------------------

# One step of a timed run: a command, or something the bench does itself
# between commands (waiting for a container's init, as an engine does).
Step = list[str] | Callable[[], None]


@dataclass
class Row:
    """One runtime (or floor, or reference) in a case.

    ``argvs(i)`` are run in sequence and timed together (the veth floor
    needs four processes; the lifecycle case waits for the init between
    two commands); ``prepare`` and ``cleanup`` are not timed.
    """

    name: str
    kind: str                                   # "nsinit", "peer", "floor", "reference"
    argvs: Callable[[int], list[Step]]
    prepare: Callable[[int], None] | None = None
    cleanup: Callable[[int], None] | None = None
    note: str = ""
    step_names: tuple[str, ...] = ()            # set: each step's time is reported too
    samples: list[float] = field(default_factory=list)
    step_samples: list[list[float]] = field(default_factory=list)
    peak_rss_kb: list[int] = field(default_factory=list)
    failures: int = 0
    error: str = ""                             # set: the row is unavailable

    def result(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "note": self.note, "failures": self.failures}
        if self.samples:
            out.update({k: v * 1000 for k, v in stats.summarize(self.samples).as_dict().items() if k != "n"})
            out["n"] = len(self.samples)
            out["samples_ms"] = [round(s * 1000, 3) for s in self.samples]
        if self.step_names and self.step_samples:
            out["step_median_ms"] = {name: stats.median([run[k] for run in self.step_samples]) * 1000
                                     for k, name in enumerate(self.step_names)}
        if self.peak_rss_kb:
            out["peak_rss_kb_median"] = stats.median(self.peak_rss_kb)
        if self.error:
            out["unavailable"] = self.error
        return out

    def median(self) -> float | None:
        return stats.median(self.samples) if self.samples else None


def measure(launcher: Launcher, rows: list[Row], rounds: int, warmup: int, time_tool: str = "",
            gap: float = 0.0) -> None:
    """Interleave the rows for ``warmup + rounds`` rounds; keep the last ``rounds``.

    ``gap`` seconds pass (untimed) before every run, so that deferred kernel
    work of the previous run does not land in the next one's time, and one
    runtime's cgroup migration does not make the next one's cheap: the first
    write to a v1 cgroup.procs waits for an RCU grace period (~10-15 ms
    here) unless another migration happened within the last grace period.

    A row that fails on its very first run is marked unavailable with the
    error and dropped; later failures are counted and reported.  Then, with
    ``time_tool``, a few untimed runs per row measure peak RSS.
    """
    by_name = {row.name: row for row in rows}
    count = {row.name: 0 for row in rows}
    for name in stats.interleaved_schedule([r.name for r in rows], warmup + rounds):
        row = by_name[name]
        if row.error:
            continue
        i = count[name]
        count[name] += 1
        try:
            if row.prepare:
                row.prepare(i)
            if gap:
                time.sleep(gap)
            times = [launcher.run(step) if isinstance(step, list) else timed_call(step)
                     for step in row.argvs(i)]
            elapsed = sum(times)
        except (RunFailed, BenchError) as err:
            row.failures += 1
            if i == 0:
                row.error = str(err)
                log(f"{row.name}: unavailable: {err}")
            elif row.failures <= 3:
                log(f"{row.name}: run {i} failed: {err}")
            continue
        finally:
            if row.cleanup:
                row.cleanup(i)
        if i >= warmup:
            row.samples.append(elapsed)
            row.step_samples.append(times)
    if time_tool:
        for row in rows:
            if not row.error:
                peak_rss(launcher, row, count[row.name], time_tool)


def timed_call(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def peak_rss(launcher: Launcher, row: Row, first_index: int, time_tool: str) -> None:
    """Peak RSS per run, by ``/usr/bin/time -f %M`` (max over the row's processes).

    Not wait4's ru_maxrss of the timed runs: posix_spawn's child shares the
    bench's memory until execve, and the kernel carries that (Python-sized)
    high-water mark across execve, so every runtime would show the bench's
    RSS.  time(1) is a small C program that forks, so its child starts small.
    """
    out = os.path.join(os.path.dirname(launcher.errfile), "rss")
    for k in range(RSS_RUNS):
        i = first_index + k
        peak = 0
        try:
            if row.prepare:
                row.prepare(i)
            for argv in row.argvs(i):
                if not isinstance(argv, list):
                    argv()  # the bench's own step: no process to measure
                    continue
                launcher.run([time_tool, "-f", "%M", "-o", out, *argv])
                with open(out) as f:
                    peak = max(peak, int(f.read().split()[-1]))
        except (RunFailed, BenchError, ValueError, IndexError) as err:
            log(f"{row.name}: peak RSS run failed: {err}")
            continue
        finally:
            if row.cleanup:
                row.cleanup(i)
        row.peak_rss_kb.append(peak)


# --- the environment: peers, namespace, workspace -----------------------------------

def install_peers() -> dict[str, str]:
    """Install runc, crun, bubblewrap, hyperfine from Debian if missing."""
    missing = [pkg for tool, pkg in PEER_PACKAGES.items()
               if not (shutil.which(tool) or (tool == "time" and os.access("/usr/bin/time", os.X_OK)))]
    if missing:
        log(f"installing {' '.join(missing)} (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", *missing]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
            subprocess.run(cmd, env=env, check=True, capture_output=True)
    paths = {}
    for tool in list(PEER_PACKAGES) + ["unshare", "nsenter", "ip"]:
        found = "/usr/bin/time" if tool == "time" and os.access("/usr/bin/time", os.X_OK) else shutil.which(tool)
        if not found:
            raise BenchError(f"{tool} not found after installing the peers")
        paths[tool] = found
    return paths


def reexec_in_private_mount_namespace() -> None:
    """Run the rest of the suite under ``unshare -m --propagation private``."""
    unshare = shutil.which("unshare")
    if not unshare:
        raise BenchError("unshare (util-linux) not found")
    env = dict(os.environ, **{INNER_MARK: "1"})
    os.execve(unshare, [unshare, "-m", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__), *sys.argv[1:]], env)


HIDDEN_CGROUP2 = "/sys/fs/cgroup/unified"


def hide_cgroup2_mount() -> bool:
    """crun 1.8 rejects the hybrid layout while the (empty) cgroup2 mount is
    visible; in our private mount namespace only, unmount it.  True if done."""
    with open("/proc/self/mountinfo") as f:
        mounted = any(line.split()[4] == HIDDEN_CGROUP2 for line in f)
    if mounted:
        quiet(["umount", HIDDEN_CGROUP2])
    return mounted


def crun_tmpfs_leftovers(prefix: str) -> list[str]:
    """With cgroup2 unmounted, /sys/fs/cgroup/unified is a plain directory of
    the host's /sys/fs/cgroup tmpfs, and crun (which still treats it as the
    unified hierarchy) leaves ID/cgroup.procs there as an ordinary file.
    Hidden from the host under its cgroup2 mount, but real: we remove ours."""
    try:
        return sorted(os.path.join(HIDDEN_CGROUP2, d) for d in os.listdir(HIDDEN_CGROUP2) if d.startswith(prefix))
    except OSError:
        return []


def remove_crun_tmpfs_leftover(path: str) -> None:
    """``ID/cgroup.procs``, or ``PARENT/libpod-ID/cgroup.procs`` under a
    podman cgroup parent: regular files and directories on tmpfs, not cgroup
    files, so they go bottom-up like any tree."""
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            os.rmdir(os.path.join(dirpath, name))
    os.rmdir(path)


def remove_cgroup_trees(name: str, settle: float = 10.0) -> list[str]:
    """Remove ``/sys/fs/cgroup/*/NAME`` and everything under it, bottom-up
    (a cgroup directory goes with rmdir once empty of processes and
    children); retried for up to ``settle`` s, since a podman's conmon
    lingers in ``NAME/conmon`` until its exit command is done.  What is left."""
    base = "/sys/fs/cgroup"
    trees = [os.path.join(base, h, name) for h in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, h, name))]
    deadline = time.monotonic() + settle
    while True:
        left = []
        for tree in trees:
            for dirpath, _, _ in sorted(os.walk(tree), key=lambda entry: -len(entry[0])):
                try:
                    os.rmdir(dirpath)
                except FileNotFoundError:
                    pass  # gone with its parent's walk order, or already removed
                except OSError:
                    left.append(dirpath)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def set_child_subreaper(on: bool) -> None:
    """PR_SET_CHILD_SUBREAPER, as conmon and containerd's shim are: an init
    whose ``create`` exited is reparented to us, and we can wait for it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise BenchError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


@dataclass
class NsinitLaunch:
    """How ``nsinit`` is started, and by which interpreter."""

    command: list[str]          # what the bench runs: the real console script
    found: str                  # what `nsinit` on PATH is
    shim: str = ""              # the pyenv shim, if `nsinit` on PATH is one
    interpreter: str = ""       # the script's #! interpreter (real path)

    def argv(self, *args: str) -> list[str]:
        return [*self.command, *args]


def _is_pyenv_shim(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(2048)
    except OSError:
        return False
    return b"pyenv" in head and head.startswith(b"#!") and b"python" not in head.split(b"\n", 1)[0]


def _shebang_interpreter(path: str) -> str:
    with open(path, "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        return ""
    words = first[2:].split()
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[1]) or words[1]
    return words[0] if words else ""


def _pyenv_shim(name: str = "nsinit") -> str:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    path = os.path.join(root, "shims", name)
    return path if os.path.isfile(path) and _is_pyenv_shim(path) else ""


def resolve_nsinit(explicit: str | None, env: dict[str, str], name: str = "nsinit") -> NsinitLaunch:
    """The real entry script behind ``nsinit`` (or ``nsinit-runc``): a pyenv
    shim adds bash and ``pyenv exec`` that a user of a system install does
    not pay.

    Started through pyenv's python3 shim, the bench's PATH already begins
    with the version's bin directory, so the shim is looked up by name too.
    """
    found = explicit or shutil.which(name, path=env.get("PATH")) or _pyenv_shim(name)
    if not found:
        raise BenchError(f"{name} not found on PATH: run ./scripts/install (or pass --{name} PATH)")
    found = os.path.abspath(found)
    shim = "" if explicit else _pyenv_shim(name)
    script = found
    if _is_pyenv_shim(found):
        shim = found
        result = quiet(["pyenv", "which", name], check=False)
        if result.returncode != 0 or not result.stdout.strip():
            raise BenchError(f"{found} is a pyenv shim and `pyenv which {name}` failed")
        script = result.stdout.strip()
    interpreter = _shebang_interpreter(script)
    return NsinitLaunch(command=[os.path.realpath(script)], found=found, shim=shim,
                        interpreter=os.path.realpath(interpreter) if interpreter else "")


@dataclass
class Workspace:
    """Everything the bench makes on disk, under one temporary directory."""

    top: str
    prefix: str                 # in every name the bench gives: root dirs, ids, netns
    rootfs: str = ""
    roots: dict[str, str] = field(default_factory=dict)     # nsinit root dirs by purpose
    bundle_true: str = ""
    bundle_sleep: str = ""
    runc_state: str = ""
    crun_state: str = ""
    nsinit_runc_state: str = ""

    def root(self, name: str, config: dict) -> str:
        # The prefix in the directory name puts it in nsinit's default cgroup
        # name too, so residue is told apart from other users' containers.
        path = os.path.join(self.top, "roots", f"{self.prefix}-{name}")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "container.json"), "w") as f:
            json.dump(config, f, indent=2)
        self.roots[name] = path
        return path


def nsinit_config(rootfs: str, networks: list[dict] | None = None) -> dict:
    """The rootfs's own container.json, pointed at the shared rootfs."""
    with open(os.path.join(rootfs, "container.json")) as f:
        config = json.load(f)
    config["rootfs"] = rootfs
    if networks is not None:
        config["networks"] = networks
    return config


def write_oci_bundle(runc: str, directory: str, rootfs: str, args: list[str]) -> dict:
    """``runc spec``, edited to match nsinit's default container.json.

    Same namespaces (pid, ipc, uts, mount, network; no user, no cgroup ns),
    no terminal, the same rootfs (by absolute path, nothing copied),
    read-write like nsinit's default, hostname as nsinit's, no cgroup mount
    (nsinit mounts none); runc's default capabilities and masked paths stay.
    """
    os.makedirs(directory, exist_ok=True)
    spec_path = os.path.join(directory, "config.json")
    if os.path.exists(spec_path):
        os.unlink(spec_path)
    quiet([runc, "spec", "--bundle", directory])
    with open(spec_path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = "nsinit"
    # `runc spec` asks for ambient capabilities without an inheritable set:
    # the kernel refuses to raise them, runc and crun drop them silently
    # (CapAmb 0 inside), nsinit-runc refuses the config.  Without the list
    # every runtime's container gets the same capabilities as before.
    spec["process"]["capabilities"].pop("ambient", None)
    wanted = ["pid", "ipc", "uts", "mount", "network"]
    spec["linux"]["namespaces"] = [{"type": t} for t in wanted]
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2)
    return spec


# --- residue ----------------------------------------------------------------

def _cgroup_dirs(match: Callable[[str], bool], max_depth: int = 4) -> list[str]:
    found = []
    base = "/sys/fs/cgroup"
    for dirpath, dirnames, _ in os.walk(base):
        depth = dirpath[len(base):].count("/")
        if dirpath == base and os.path.basename(HIDDEN_CGROUP2) in dirnames:
            dirnames.remove(os.path.basename(HIDDEN_CGROUP2))  # tmpfs, see crun_tmpfs_leftovers
        if depth >= max_depth:
            dirnames[:] = []
        for d in dirnames:
            if match(d):
                found.append(os.path.join(dirpath, d))
    return found


def _links() -> list[str]:
    result = quiet(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def residue(ws: Workspace, veth_prefix: str, paths: dict[str, str]) -> dict[str, list[str]]:
    """What the runs left behind: must all be empty (apart from the baseline).

    Only what carries the bench's own names counts (its id prefix, its veth
    prefix, its directories): other people's containers may come and go on
    the same host while the bench runs.
    """
    id_prefix = ws.prefix
    out: dict[str, list[str]] = {}
    leftover = []
    for root in [ws.rootfs, *ws.roots.values()]:
        for name in os.listdir(root):
            if name in ("pid", "state.json") or name.startswith(("pid.tmp", "state.json.tmp")):
                leftover.append(os.path.join(root, name))
    out["pid/state files"] = leftover
    out["cgroups with the bench's ids"] = _cgroup_dirs(lambda d: id_prefix in d)
    out["crun's files in the hidden cgroup2 dir (removed by the bench)"] = crun_tmpfs_leftovers(id_prefix)
    out[f"links named {veth_prefix}*"] = [n for n in _links() if n.startswith(veth_prefix)]
    with open("/proc/self/mountinfo") as f:
        out["mounts under the bench dir"] = [line.split()[4] for line in f
                                             if line.split()[4].startswith(ws.top)]
    containers = []
    for tool, state_dir in (("runc", ws.runc_state), ("crun", ws.crun_state),
                            ("nsinit-runc", ws.nsinit_runc_state)):
        if state_dir and os.path.isdir(state_dir):
            listed = quiet([paths[tool], "--root", state_dir, "list", "-q"], check=False).stdout
            containers += [f"{tool}:{c}" for c in listed.split()]
    out["runc/crun/nsinit-runc containers"] = containers
    netns_dir = "/run/netns"
    out["netns made by the bench"] = sorted(
        n for n in (os.listdir(netns_dir) if os.path.isdir(netns_dir) else []) if n.startswith(id_prefix))
    rooted = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root").startswith(ws.rootfs):
                    rooted.append(entry)
            except OSError:
                continue  # gone, or a kernel thread
    out["processes rooted in the rootfs"] = rooted
    return out


def new_residue(now: dict[str, list[str]], baseline: dict[str, list[str]]) -> dict[str, list[str]]:
    return {key: [v for v in values if v not in baseline.get(key, [])] for key, values in now.items()}


def settled_residue(ws: Workspace, veth_prefix: str, paths: dict[str, str],
                    baseline: dict[str, list[str]], settle: float = 3.0) -> dict[str, object]:
    """Residue right away and, if any, after up to ``settle`` s: a net
    namespace (and the veth end in it) is freed by the kernel asynchronously."""
    first = new_residue(residue(ws, veth_prefix, paths), baseline)
    if not any(first.values()):
        return {"items": first, "total": 0, "settled_after_ms": 0}
    start = time.monotonic()
    current = first
    while time.monotonic() - start < settle:
        time.sleep(0.1)
        current = new_residue(residue(ws, veth_prefix, paths), baseline)
        if not any(current.values()):
            break
    return {"items": current, "total": sum(len(v) for v in current.values()),
            "right_after": {k: len(v) for k, v in first.items() if v},
            "settled_after_ms": round((time.monotonic() - start) * 1000)}


# --- the suite ------------------------------------------------------------------

class Suite:
    def __init__(self, args: argparse.Namespace, paths: dict[str, str], cleanup: ExitStack,
                 cgroup2_hidden: bool) -> None:
        self.args = args
        self.cgroup2_hidden = cgroup2_hidden
        self.crun_leftovers_removed = 0
        self.paths = paths
        self.cleanup = cleanup
        self.rounds = args.iterations or (15 if args.quick else 60)
        self.warmup = 2 if args.quick else 3
        self.many = args.containers or (20 if args.quick else 100)
        self.id_prefix = f"nsb{os.getpid()}"
        env = dict(os.environ)
        # Users have .pyc caches; this shell's PYTHONDONTWRITEBYTECODE=1 would
        # make every nsinit run compile its modules from source.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop(INNER_MARK, None)
        self.env = env
        self.nsinit = resolve_nsinit(args.nsinit, env)
        # nsinit's OCI front door (runc's CLI), for the podman and lifecycle
        # cases only: the other cases run without it.
        self.nsinit_runc_error = ""
        try:
            self.nsinit_runc: NsinitLaunch | None = resolve_nsinit(args.nsinit_runc, env, "nsinit-runc")
            paths["nsinit-runc"] = self.nsinit_runc.command[0]
        except BenchError as err:
            self.nsinit_runc, self.nsinit_runc_error = None, str(err)
        self.veth_prefix = f"veth{os.getpid() % 0x10000:04x}"   # 8 chars: 7 random ones follow
        self.ws = Workspace(top=tempfile.mkdtemp(prefix="nsinit-bench-"), prefix=self.id_prefix)
        cleanup.callback(self.remove_workspace)
        self.launcher = Launcher(env=env, errfile=os.path.join(self.ws.top, "stderr"))
        self.results: dict[str, object] = {}
        self.sleepers: dict[int, str] = {}      # nsinit supervisor pid -> its root dir
        self.baseline: dict[str, list[str]] = {}
        self.bridge = ""

    # -- setup ------------------------------------------------------------
    def setup(self) -> None:
        ws = self.ws
        ws.rootfs = os.path.join(ws.top, "rootfs")
        log(f"workspace {ws.top}; building the busybox rootfs with `nsinit rootfs`")
        self.launcher.run(self.nsinit.argv("rootfs", ws.rootfs), timeout=120)
        base = nsinit_config(ws.rootfs)
        for name in ("create", "join", "seq", "par0", "par1", "profile"):
            ws.root(name, base)
        ws.bundle_true = os.path.join(ws.top, "bundle-true")
        ws.bundle_sleep = os.path.join(ws.top, "bundle-sleep")
        write_oci_bundle(self.paths["runc"], ws.bundle_true, ws.rootfs, ["/bin/true"])
        write_oci_bundle(self.paths["runc"], ws.bundle_sleep, ws.rootfs, SLEEP_ARGS)
        ws.runc_state = os.path.join(ws.top, "runc-state")
        ws.crun_state = os.path.join(ws.top, "crun-state")
        if self.nsinit_runc:
            ws.nsinit_runc_state = os.path.join(ws.top, "nsinit-runc-state")
        self.cleanup.callback(self.delete_oci_containers)
        self.cleanup.callback(self.stop_sleepers)
        # Warm the .pyc cache and the page cache once, untimed.
        self.launcher.run(self.nsinit.argv("--root", ws.roots["create"], "exec", "/bin/true"))
        # `python3 -m nsinit` and `-c "import nsinit"` put the cwd first on
        # sys.path: run them where no nsinit/ directory can shadow the install.
        os.chdir(ws.top)
        self.baseline = residue(ws, self.veth_prefix, self.paths)

    def remove_workspace(self) -> None:
        if self.args.keep:
            log(f"kept {self.ws.top}")
            return
        with open("/proc/self/mountinfo") as f:
            mounted = sorted((line.split()[4] for line in f if line.split()[4].startswith(self.ws.top)),
                             reverse=True)
        for point in mounted:  # never let rmtree walk into a leaked mount
            subprocess.run(["umount", "-l", point], capture_output=True)
        os.chdir("/")
        shutil.rmtree(self.ws.top, ignore_errors=True)

    def oci_state(self, tool: str) -> str:
        return {"runc": self.ws.runc_state, "crun": self.ws.crun_state,
                "nsinit-runc": self.ws.nsinit_runc_state}[tool]

    def oci(self, tool: str, *args: str) -> list[str]:
        """runc's command line, for runc, crun or nsinit-runc, with the bench's own --root."""
        return [self.paths[tool], "--root", self.oci_state(tool), *args]

    def oci_delete(self, tool: str, cid: str) -> None:
        quiet(self.oci(tool, "delete", "--force", cid), check=False)
        if tool == "crun" and self.cgroup2_hidden:
            leftover = os.path.join(HIDDEN_CGROUP2, cid)
            if os.path.isdir(leftover):
                remove_crun_tmpfs_leftover(leftover)
                self.crun_leftovers_removed += 1

    def delete_oci_containers(self) -> None:
        for tool in ("runc", "crun", "nsinit-runc"):
            state = self.oci_state(tool)
            if state and os.path.isdir(state):
                for cid in quiet(self.oci(tool, "list", "-q"), check=False).stdout.split():
                    self.oci_delete(tool, cid)
        if self.cgroup2_hidden:
            for path in crun_tmpfs_leftovers(self.id_prefix):
                remove_crun_tmpfs_leftover(path)
                self.crun_leftovers_removed += 1

    def stop_sleepers(self) -> None:
        for supervisor, root in list(self.sleepers.items()):
            try:
                with open(os.path.join(root, "pid")) as f:
                    init = int(f.read().strip())
            except (OSError, ValueError):
                init = 0  # not recorded yet: stop_nsinit_sleeper interrupts the supervisor
            self.stop_nsinit_sleeper(supervisor, init)

    def cid(self, row: str, i: int) -> str:
        return f"{self.id_prefix}-{row}-{i}"

    # -- case 1 -------------------------------------------------------------
    def case_create(self) -> None:
        ws, p = self.ws, self.paths
        root = ws.roots["create"]
        rows = [
            Row("nsinit", "nsinit", lambda i: [self.nsinit.argv("--root", root, "exec", "/bin/true")],
                note="console script, run directly (no pyenv shim)"),
            Row("runc", "peer", lambda i: [self.oci("runc", "run", "--bundle", ws.bundle_true, self.cid("runc", i))],
                cleanup=lambda i: self.oci_delete("runc", self.cid("runc", i))),
            Row("crun", "peer", lambda i: [self.oci("crun", "run", "--bundle", ws.bundle_true, self.cid("crun", i))],
                cleanup=lambda i: self.oci_delete("crun", self.cid("crun", i))),
            Row("bwrap", "peer", lambda i: [[p["bwrap"], "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                             "--unshare-net", "--bind", ws.rootfs, "/", "--proc", "/proc",
                                             "--dev", "/dev", "/bin/true"]]),
            Row("unshare (floor)", "floor",
                lambda i: [[p["unshare"], "-m", "-u", "-i", "-n", "-p", "-f", "--mount-proc",
                            f"--root={ws.rootfs}", "/bin/true"]],
                note="5 new namespaces + fork + mount /proc + chroot + exec; no pivot_root, /dev, "
                     "masks or capability drop"),
        ]
        if self.nsinit.shim:
            rows.append(Row("nsinit via pyenv shim", "reference",
                            lambda i: [[self.nsinit.shim, "--root", root, "exec", "/bin/true"]],
                            note=f"{self.nsinit.shim}: bash + `pyenv exec` before the same script"))
        # `python3 -m nsinit` as a pip install runs it: the interpreter pip installed
        # nsinit into (the launchers' venv has only its run-time packages).
        rows.append(Row("python3 -m nsinit", "reference",
                        lambda i: [[sys.executable, "-m", "nsinit", "--root", root, "exec", "/bin/true"]]))
        rows += self.start_floor_rows(1)
        self.run_case("create", "1. create + run /bin/true", rows)
        self.report_floor("create", 1)

    # -- seccomp ------------------------------------------------------------
    def case_seccomp(self) -> None:
        """Case 1 with podman's default seccomp profile, against case 1 without:
        the same filter (includes/excludes applied for nsinit's default
        capabilities on this machine's architecture) for nsinit, runc and crun."""
        ws = self.ws
        if not os.path.exists(PODMAN_PROFILE):
            raise BenchError(f"{PODMAN_PROFILE} missing: install containers-common (scripts/install)")
        sys.path.insert(0, REPO)
        from nsinit.config.defaults import DEFAULT_CAPABILITIES
        from nsinit.config.seccomp import to_dict, to_oci
        from nsinit.seccomp.profile import from_profile

        with open(PODMAN_PROFILE) as f:
            converted, _ = from_profile(json.load(f), PODMAN_PROFILE, DEFAULT_CAPABILITIES, os.uname().machine)
        plain = ws.roots["create"]
        filtered = ws.root("seccomp", {**nsinit_config(ws.rootfs), "seccomp": to_dict(converted)})
        bundle = os.path.join(ws.top, "bundle-true-seccomp")
        spec = write_oci_bundle(self.paths["runc"], bundle, ws.rootfs, ["/bin/true"])
        spec["linux"]["seccomp"] = to_oci(converted)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f, indent=2)

        def oci_row(tool: str, name: str, directory: str) -> Row:
            key = f"{tool}-sc" if directory == bundle else tool  # container ids: no spaces
            return Row(name, "peer", lambda i: [self.oci(tool, "run", "--bundle", directory, self.cid(key, i))],
                       cleanup=lambda i: self.oci_delete(tool, self.cid(key, i)))

        rows = [
            Row("nsinit", "nsinit", lambda i: [self.nsinit.argv("--root", plain, "exec", "/bin/true")]),
            Row("nsinit + podman seccomp", "nsinit",
                lambda i: [self.nsinit.argv("--root", filtered, "exec", "/bin/true")],
                note="compiled filter from nsinit's cache after the first run"),
            oci_row("runc", "runc", ws.bundle_true),
            oci_row("runc", "runc + podman seccomp", bundle),
            oci_row("crun", "crun", ws.bundle_true),
            oci_row("crun", "crun + podman seccomp", bundle),
        ]
        self.run_case("seccomp", "seccomp: create + run /bin/true with podman's default profile", rows)
        # The filter's cost as the median of per-round differences: both runs
        # of a pair sit in the same round, so the machine's drift (a loaded
        # neighbour) cancels out better than in the difference of medians.
        costs: dict[str, object] = {}
        for plain_row, filtered_row in zip(rows[0::2], rows[1::2]):
            pairs = [b - a for a, b in zip(plain_row.samples, filtered_row.samples)]
            if pairs:
                costs[plain_row.name] = {"paired_median_ms": stats.median(pairs) * 1000,
                                         "median_difference_ms": (stats.median(filtered_row.samples)
                                                                  - stats.median(plain_row.samples)) * 1000}
        self.results["seccomp"]["filter_cost"] = costs  # type: ignore[index]
        for name, cost in costs.items():
            print(f"  filter cost, {name}: {cost['paired_median_ms']:.2f} ms (median of per-round differences), "  # type: ignore[index]
                  f"{cost['median_difference_ms']:.2f} ms (difference of medians)")  # type: ignore[index]

    # -- case 2 -------------------------------------------------------------
    def start_nsinit_sleeper(self, root: str) -> tuple[int, int]:
        """(supervisor pid, container init pid) of ``nsinit exec sleep``."""
        argv = self.nsinit.argv("--root", root, "exec", *SLEEP_ARGS)
        launcher = Launcher(env=self.env, errfile=os.path.join(self.ws.top, "sleeper.err"))
        supervisor = launcher.spawn(argv)
        self.sleepers[supervisor] = root
        pid_file = os.path.join(root, "pid")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done, status = os.waitpid(supervisor, os.WNOHANG)
            if done:
                del self.sleepers[supervisor]
                raise RunFailed(argv, describe_status(status), launcher.read_err())
            try:
                with open(pid_file) as f:
                    init = int(f.read().strip())
                # The lock is released once the init has exec'd: joining
                # before would only wait on it.
                if os.readlink(f"/proc/{init}/exe").endswith("busybox"):
                    return supervisor, init
            except (FileNotFoundError, ValueError, OSError):
                pass  # not written yet / init not exec'd yet
            time.sleep(0.01)
        raise RunFailed(argv, "no pid file after 15 s", launcher.read_err())

    def stop_nsinit_sleeper(self, supervisor: int, init: int) -> dict[str, object]:
        """SIGKILL the init (a PID 1 ignores SIGTERM from outside); the
        supervisor must then exit by itself and remove its files and cgroup.
        Killing the supervisor instead would leave both behind."""
        if init > 0:
            try:
                os.kill(init, signal.SIGKILL)
            except ProcessLookupError:
                pass  # already gone
        start = time.monotonic()
        while init > 0 and time.monotonic() - start < 10:
            done, status = os.waitpid(supervisor, os.WNOHANG)
            if done:
                del self.sleepers[supervisor]
                return {"supervisor_exit": describe_status(status),
                        "supervisor_exit_ms": round((time.monotonic() - start) * 1000, 1)}
            time.sleep(0.005)
        stop_child(supervisor)
        del self.sleepers[supervisor]
        return {"supervisor_exit": "did not exit after its init's death: interrupted"}

    def case_join(self) -> None:
        ws, p = self.ws, self.paths
        root = ws.roots["join"]
        try:
            supervisor, init = self.start_nsinit_sleeper(root)
        except RunFailed as err:
            self.results["join"] = {"title": "2. join", "unavailable": str(err)}
            return
        runc_id, crun_id = self.cid("runc", 999999), self.cid("crun", 999999)
        started = []
        for tool, cid in (("runc", runc_id), ("crun", crun_id)):
            try:
                self.launcher.run(self.oci(tool, "run", "-d", "--bundle", ws.bundle_sleep, cid))
                started.append((tool, cid))
            except RunFailed as err:
                log(f"{tool} run -d: {err}")
        try:
            self.results["resident"] = self.resident_memory(supervisor, init)
            self.results["trace_join"] = self.trace_runs(root, count=5)
            rows = [
                Row("nsinit exec (join)", "nsinit", lambda i: [self.nsinit.argv("--root", root, "exec", "/bin/true")]),
                Row("runc exec", "peer", lambda i: [self.oci("runc", "exec", runc_id, "/bin/true")]),
                Row("crun exec", "peer", lambda i: [self.oci("crun", "exec", crun_id, "/bin/true")]),
                Row("nsenter (floor)", "floor",
                    lambda i: [[p["nsenter"], "-t", str(init), "-m", "-u", "-i", "-n", "-p", "/bin/true"]],
                    note="setns into nsinit's container + fork + exec; no cgroup, caps or user switch"),
            ]
            self.run_case("join", "2. join + run /bin/true in a running container", rows)
        finally:
            self.results["join_stop"] = self.stop_nsinit_sleeper(supervisor, init)
            for tool, cid in started:
                self.oci_delete(tool, cid)

    # -- case 3 -------------------------------------------------------------
    def make_bridge(self) -> tuple[str, str, str]:
        """A bench-only bridge on a subnet no host route or address uses."""
        used = []
        for cmd in (["ip", "-j", "-4", "route", "show", "table", "all"], ["ip", "-j", "-4", "addr", "show"]):
            for entry in json.loads(quiet(cmd).stdout or "[]"):
                if "dst" in entry:
                    used.append(entry["dst"])
                for addr in entry.get("addr_info", []):
                    used.append(f"{addr['local']}/{addr['prefixlen']}")
        subnet = stats.choose_free_subnet(used)
        hosts = subnet.hosts()
        gateway, address = str(next(hosts)), str(next(hosts))
        self.bridge = f"nsbench{os.getpid() % 100000}"
        quiet(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.cleanup.callback(lambda: quiet(["ip", "link", "del", self.bridge], check=False))
        quiet(["ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", self.bridge])
        quiet(["ip", "link", "set", self.bridge, "up"])
        return str(subnet), gateway, f"{address}/{subnet.prefixlen}"

    def case_veth(self) -> None:
        ws, p = self.ws, self.paths
        subnet, gateway, address = self.make_bridge()
        veth = {"type": "veth", "name": "eth0", "bridge": self.bridge, "address": address,
                "gateway": gateway, "prefix": self.veth_prefix}
        root = ws.root("veth", nsinit_config(ws.rootfs, [{"type": "loopback"}, veth]))
        plain = ws.roots["create"]
        batch_dir = os.path.join(ws.top, "ip-batch")
        os.makedirs(batch_dir, exist_ok=True)

        def names(i: int) -> tuple[str, str]:
            return f"{self.id_prefix}-{i}", f"{self.veth_prefix}{i:07x}"

        def write_batches(i: int) -> None:
            netns, host_end = names(i)
            files = {
                "host": [f"netns add {netns}",
                         f"link add {host_end} type veth peer name eth0 netns {netns}",
                         f"link set {host_end} master {self.bridge} up"],
                "inside": ["link set lo up", f"addr add {address} dev eth0", "link set eth0 up",
                           f"route add default via {gateway}"],
                "down": [f"link del {host_end}", f"netns del {netns}"],
            }
            for name, lines in files.items():
                with open(os.path.join(batch_dir, name), "w") as f:
                    f.write("\n".join(lines) + "\n")

        def floor_argvs(i: int, command: Sequence[str] = ("/bin/true",)) -> list[list[str]]:
            netns, _ = names(i)
            return [
                [p["ip"], "-b", os.path.join(batch_dir, "host")],
                [p["ip"], "-n", netns, "-b", os.path.join(batch_dir, "inside")],
                [p["nsenter"], f"--net=/run/netns/{netns}", p["unshare"], "-m", "-u", "-i", "-p", "-f",
                 "--mount-proc", f"--root={ws.rootfs}", *command],
                [p["ip"], "-b", os.path.join(batch_dir, "down")],
            ]

        def floor_cleanup(i: int) -> None:
            netns, host_end = names(i)
            if os.path.exists(f"/run/netns/{netns}"):  # only after a failed run
                quiet(["ip", "link", "del", host_end], check=False)
                quiet(["ip", "netns", "del", netns], check=False)

        rows = [
            Row("nsinit + veth", "nsinit", lambda i: [self.nsinit.argv("--root", root, "exec", "/bin/true")],
                note=f"veth on bridge {self.bridge}, {address} via {gateway}"),
            Row("ip + unshare (floor)", "floor", floor_argvs, prepare=write_batches, cleanup=floor_cleanup,
                note="ip -b: netns add, veth add + peer into netns, master bridge, up; "
                     "ip -n -b: lo up, addr, eth0 up, default route; nsenter --net + unshare + chroot "
                     "/bin/true; ip -b: link del, netns del (4 processes)"),
            Row("nsinit, loopback only", "reference",
                lambda i: [self.nsinit.argv("--root", plain, "exec", "/bin/true")],
                note="the same nsinit without veth: the difference is the veth's cost"),
        ]
        # A config that is accepted but not applied must not produce numbers:
        # each row first shows its eth0, with the address, from inside.
        show = ["/sbin/ip", "-4", "addr", "show", "dev", "eth0"]  # busybox ip
        rows[0].error = self.check_veth([self.nsinit.argv("--root", root, "exec", *show)], address)
        try:
            write_batches(10**6)
            rows[1].error = self.check_veth(floor_argvs(10**6, show), address)
        finally:
            floor_cleanup(10**6)
        self.run_case("veth", f"3. create with a veth network on a bridge ({subnet})", rows)
        if not rows[0].error:
            self.results["resident_veth"] = self.veth_resident_memory(root)
        if not rows[0].error:
            self.results["trace_veth"] = self.trace_runs(root, count=5)
            self.results["importtime_veth"] = self.importtime_runs(root, count=3)
        self.results["veth"]["residue"] = settled_residue(ws, self.veth_prefix, p, self.baseline)  # type: ignore[index]

    def check_veth(self, argvs: list[list[str]], address: str) -> str:
        """'' when every command succeeds and together they print ``address``; else the error."""
        output = ""
        for argv in argvs:
            result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=RUN_TIMEOUT)
            if result.returncode != 0:
                return f"{' '.join(argv)}: exit status {result.returncode}: " + \
                    " | ".join(result.stderr.strip().splitlines()[-3:])
            output += result.stdout
        if address.split("/")[0] not in output:
            return f"eth0 inside has no {address}: {' '.join(output.split())[:200]}"
        return ""

    def veth_resident_memory(self, root: str) -> dict[str, object]:
        """What the supervisor of a veth container keeps resident (case 4)."""
        try:
            supervisor, init = self.start_nsinit_sleeper(root)
        except RunFailed as err:
            return {"unavailable": str(err)}
        try:
            return self.resident_memory(supervisor, init)
        finally:
            self.stop_nsinit_sleeper(supervisor, init)

    # -- case 4 (the part not measured by cases 1 and 2) --------------------------
    def resident_memory(self, supervisor: int, init: int) -> dict[str, object]:
        def status_kb(pid: int) -> dict[str, int]:
            out = {}
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                        out[key] = int(value.split()[0])
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(("Pss:", "Private_Dirty:")):
                            key, value = line.split()[:2]
                            out[key.rstrip(":")] = int(value)
            except OSError:
                pass  # smaps_rollup needs 4.14; the VmRSS figures stand alone
            return out

        time.sleep(0.2)  # let the supervisor settle into waitpid
        return {"supervisor_pid": supervisor, "supervisor_kb": status_kb(supervisor),
                "container_init_kb": status_kb(init)}

    # -- case 5 -------------------------------------------------------------
    def case_many(self) -> None:
        n = self.many
        ws = self.ws
        out: dict[str, object] = {"title": f"5. {n} containers, sequentially and 2 at a time", "n": n}
        lanes = {
            "nsinit": lambda lane, i: self.nsinit.argv("--root", ws.roots["seq" if lane < 0 else f"par{lane}"],
                                                      "exec", "/bin/true"),
            "crun": lambda lane, i: self.oci("crun", "run", "--bundle", ws.bundle_true, self.cid(f"many{lane}", i)),
            "runc": lambda lane, i: self.oci("runc", "run", "--bundle", ws.bundle_true, self.cid(f"many{lane}", i)),
        }
        for name, argv_for in lanes.items():
            row: dict[str, object] = {}
            before = residue(ws, self.veth_prefix, self.paths)
            try:
                row["sequential_s"] = self.run_sequential(n, argv_for)
                row["parallel2_s"] = self.run_parallel(n, argv_for)
            except RunFailed as err:
                row["error"] = str(err)
            row["residue"] = settled_residue(ws, self.veth_prefix, self.paths, before)
            if name != "nsinit":
                self.delete_oci_containers()  # after the check: it must not hide residue
            out[name] = row
        self.results["many"] = out

    def run_sequential(self, n: int, argv_for: Callable[[int, int], list[str]]) -> float:
        start = time.perf_counter()
        for i in range(n):
            self.launcher.run(argv_for(-1, i))
        return time.perf_counter() - start

    def run_parallel(self, n: int, argv_for: Callable[[int, int], list[str]], lanes: int = 2) -> float:
        """``n`` runs, ``lanes`` at a time, from this one thread: waitpid(-1)
        reaps whichever finishes first and starts that lane's next run."""
        pending = {lane: list(range(lane, n, lanes)) for lane in range(lanes)}
        running: dict[int, tuple[int, list[str]]] = {}
        start = time.perf_counter()
        for lane in range(lanes):
            if pending[lane]:
                argv = argv_for(lane, pending[lane].pop(0))
                running[self.launcher.spawn(argv)] = (lane, argv)
        try:
            while running:
                signal.alarm(RUN_TIMEOUT)
                try:
                    pid, status = os.waitpid(-1, 0)
                finally:
                    signal.alarm(0)
                if pid not in running:
                    continue  # not one of ours (cannot happen: no other children now)
                lane, argv = running.pop(pid)
                if status != 0:
                    raise RunFailed(argv, describe_status(status), self.launcher.read_err())
                if pending[lane]:
                    argv = argv_for(lane, pending[lane].pop(0))
                    running[self.launcher.spawn(argv)] = (lane, argv)
        except (_Timeout, RunFailed, KeyboardInterrupt):
            for pid in running:
                stop_child(pid)
            raise
        return time.perf_counter() - start

    # -- CI loop: containers back to back ----------------------------------------
    def pip_console_script(self) -> str:
        """The console script ``pip install`` writes for nsinit (pip's own
        ScriptMaker, its template: ``#!python``, site and every .pth file,
        ``import re``), in the workspace; "" if pip cannot be imported.

        It must run the code the launcher runs: a launcher written by
        scripts/install puts its tree first on sys.path, and the pip script
        gets that tree through PYTHONPATH (see loop_env)."""
        interp = self.nsinit.interpreter or sys.executable
        directory = os.path.join(self.ws.top, "pip-bin")
        os.makedirs(directory, exist_ok=True)
        make = ("import sys\n"
                "from pip._internal.operations.install.wheel import PipScriptMaker\n"
                "maker = PipScriptMaker(None, sys.argv[1])\n"
                "maker.clobber = True\n"
                "maker.variants = {''}\n"
                "maker.executable = sys.executable\n"
                "maker.make_multiple(['nsinit = nsinit.cli:run'])\n")
        result = quiet([interp, "-c", make, directory], check=False)
        path = os.path.join(directory, "nsinit")
        return path if result.returncode == 0 and os.path.isfile(path) else ""

    def launcher_paths(self) -> list[str]:
        """What a scripts/install launcher puts first on sys.path: its tree,
        then its interpreter's site-packages ([] for another script)."""
        with open(self.nsinit.command[0], errors="replace") as f:
            for line in f:
                if line.startswith("sys.path[:0] = "):
                    return [str(p) for p in json.loads(line.split("=", 1)[1].strip().replace("'", '"'))]
        return []

    def launcher_tree(self) -> str:
        """The first directory a scripts/install launcher puts on sys.path."""
        paths = self.launcher_paths()
        return paths[0] if paths else ""

    def case_loop(self) -> None:
        """A CI loop: ``--loop-block`` containers in a row per runtime, no gap
        between them (blocks interleaved, the gap before each block only),
        then the same runtimes interleaved run by run, with no gap at all."""
        ws = self.ws
        root = ws.root("loop", nsinit_config(ws.rootfs))
        block = self.args.loop_block
        pip_script = self.pip_console_script()
        tree = self.launcher_tree()
        pip_env = dict(self.env, PYTHONPATH=tree) if tree else self.env
        oci_runs = {"runc": 0, "crun": 0}

        def oci_argv(tool: str) -> list[str]:
            oci_runs[tool] += 1
            return self.oci(tool, "run", "--bundle", ws.bundle_true, self.cid(f"loop{tool}", oci_runs[tool]))

        def oci_cleanup(tool: str) -> None:
            self.oci_delete(tool, self.cid(f"loop{tool}", oci_runs[tool]))

        runners: dict[str, tuple[Callable[[], list[str]], Callable[[], None] | None, dict[str, str]]] = {
            "nsinit": (lambda: self.nsinit.argv("--root", root, "exec", "/bin/true"), None, self.env),
            "runc": (lambda: oci_argv("runc"), lambda: oci_cleanup("runc"), self.env),
            "crun": (lambda: oci_argv("crun"), lambda: oci_cleanup("crun"), self.env),
        }
        if self.args.compare:
            other = ws.root("loop-compare", nsinit_config(ws.rootfs))
            runners[f"nsinit {self.args.compare}"] = (
                lambda: [self.args.compare, "--root", other, "exec", "/bin/true"], None, self.env)
        if pip_script:
            runners["nsinit, pip's console script"] = (
                lambda: [pip_script, "--root", root, "exec", "/bin/true"], None, pip_env)
        per_run: dict[str, list[float]] = {name: [] for name in runners}
        per_block: dict[str, list[float]] = {name: [] for name in runners}
        mixed: dict[str, list[float]] = {name: [] for name in runners}
        errors: dict[str, str] = {}

        def one(name: str) -> float:
            argv_for, cleanup, env = runners[name]
            launcher = Launcher(env=env, errfile=self.launcher.errfile)
            try:
                return launcher.run(argv_for())
            finally:
                if cleanup:
                    cleanup()  # untimed; runc/crun `run` already removed the container

        log(f"CI loop: {self.rounds} rounds of {len(runners)} blocks of {block}, then "
            f"{self.rounds * block} runs interleaved run by run")
        names = list(runners)
        # Blocks: a runtime's containers back to back, as a CI loop runs them.
        for r, name in enumerate(stats.interleaved_schedule(names, self.warmup + self.rounds)):
            if name in errors:
                continue
            time.sleep(self.args.gap_ms / 1000)
            times = []
            try:
                for _ in range(block):
                    times.append(one(name))
            except RunFailed as err:
                errors[name] = str(err)
                log(f"{name}: unavailable: {err}")
                continue
            if r >= self.warmup * len(names):
                per_run[name] += times
                per_block[name].append(sum(times))
        # Run by run: every runtime follows another's container, no gap.
        for name in stats.interleaved_schedule(names, self.rounds * block):
            if name not in errors:
                mixed[name].append(one(name))
        rows: dict[str, dict[str, object]] = {}
        for name in names:
            if name in errors:
                rows[name] = {"unavailable": errors[name]}
                continue
            rows[name] = {"block_per_container_median_ms": stats.median(per_run[name]) * 1000,
                          "block_total_median_ms": stats.median(per_block[name]) * 1000,
                          "block_min_ms": min(per_run[name]) * 1000,
                          "mixed_median_ms": stats.median(mixed[name]) * 1000,
                          "samples_ms": [round(t * 1000, 3) for t in per_run[name]],
                          "mixed_samples_ms": [round(t * 1000, 3) for t in mixed[name]]}
        self.results["loop"] = {"title": f"CI loop: blocks of {block} back to back, {self.rounds} rounds",
                                "block": block, "rounds": self.rounds, "rows": rows,
                                "pip_console_script": pip_script,
                                "pip_pythonpath": tree}
        print_loop(self.results["loop"])  # type: ignore[arg-type]

    # -- OCI lifecycle: create + start + wait + delete -----------------------------
    def oci_runtime_rows(self) -> list[tuple[str, str]]:
        """(row name, tool) of the OCI runtimes, nsinit-runc first."""
        return [("nsinit-runc", "nsinit-runc"), ("runc", "runc"), ("crun", "crun")]

    def unavailable_nsinit_runc(self, row: Row) -> Row:
        if row.kind == "nsinit" and not self.nsinit_runc:
            row.error = self.nsinit_runc_error
        return row

    def wait_for_init(self, pid_file: str) -> None:
        """What conmon and containerd's shim do between ``start`` and
        ``delete``: wait for the container's init, which ``create`` left as
        a child of its caller (here the bench, a child subreaper)."""
        try:
            with open(pid_file) as f:
                pid = stats.parse_pid_file(f.read())
        except (OSError, ValueError) as err:
            raise BenchError(f"--pid-file {pid_file}: {err}") from None
        signal.alarm(RUN_TIMEOUT)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            raise BenchError(f"the init {pid} is not a child of create's caller: "
                             "no engine could wait for it") from None
        except _Timeout:
            raise BenchError(f"the init {pid} did not exit within {RUN_TIMEOUT} s") from None
        finally:
            signal.alarm(0)
        if status != 0:
            raise BenchError(f"the init {pid}: {describe_status(status)}")

    def reap_orphans(self) -> None:
        """Reap whatever was reparented to the bench (a subreaper), except
        the nsinit sleepers it waits for by pid."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in self.sleepers:
                return
            os.waitpid(info.si_pid, 0)

    def case_lifecycle(self) -> None:
        """``create``, ``start``, wait for the init, ``delete``: an engine's
        calls for one container, through each runtime's CLI on one bundle."""
        ws = self.ws
        pid_file = os.path.join(ws.top, "lifecycle.pid")

        def steps(tool: str, i: int) -> list[Step]:
            cid = self.cid(f"lc-{tool}", i)
            return [self.oci(tool, "create", "--bundle", ws.bundle_true, "--pid-file", pid_file, cid),
                    self.oci(tool, "start", cid),
                    lambda: self.wait_for_init(pid_file),
                    self.oci(tool, "delete", cid)]

        def prepare(_i: int) -> None:
            if os.path.exists(pid_file):
                os.unlink(pid_file)

        def cleanup(tool: str, i: int) -> None:
            self.oci_delete(tool, self.cid(f"lc-{tool}", i))  # untimed; nothing left after a good run
            self.reap_orphans()

        rows = [self.unavailable_nsinit_runc(Row(
                    name, "nsinit" if tool == "nsinit-runc" else "peer",
                    lambda i, tool=tool: steps(tool, i), prepare=prepare,
                    cleanup=lambda i, tool=tool: cleanup(tool, i),
                    step_names=("create", "start", "wait", "delete"),
                    note="create --pid-file, start, waitpid(init) as a subreaper, delete"))
                for name, tool in self.oci_runtime_rows()]
        rows += self.start_floor_rows(3)
        set_child_subreaper(True)
        try:
            self.run_case("lifecycle", "OCI lifecycle: create + start + wait + delete of /bin/true", rows)
        finally:
            set_child_subreaper(False)
            self.reap_orphans()
        self.report_floor("lifecycle", 3)

    def report_floor(self, key: str, commands: int) -> None:
        floor = cpython_floor(self.results[key]["rows"], commands)  # type: ignore[index]
        if floor:
            self.results[key]["cpython_floor"] = floor  # type: ignore[index]
            print_cpython_floor(floor, commands)

    def start_floor_rows(self, commands: int) -> list[Row]:
        """``commands`` bare starts of nsinit's interpreter and as many of
        crun's binary, in the same rounds as the runtimes: with crun's row
        they bound what any runtime that is a fresh CPython for each of its
        commands can reach here (``cpython_floor``)."""
        interp = self.nsinit.interpreter
        name, crun_name = floor_row_names(commands)
        rows = []
        if interp:
            rows.append(Row(name, "floor", lambda i: [[interp, "-I", "-S", "-c", "pass"]] * commands,
                            note=f"nsinit's interpreter started {commands} time(s), doing nothing"))
        if self.paths.get("crun"):
            rows.append(Row(crun_name, "floor", lambda i: [[self.paths["crun"], "--version"]] * commands,
                            note=f"crun's binary started {commands} time(s) (--version): its own cost a command"))
        return rows

    # -- podman run --rm --------------------------------------------------------
    def case_podman(self) -> None:
        """``podman run --rm /bin/true`` with each runtime, podman kept apart
        from the host's own podman: its own storage, run and tmp directories
        in the workspace, its own cgroup parent (carrying the bench's id)."""
        ws = self.ws
        podman = shutil.which("podman")
        if not podman:
            self.results["podman"] = {"title": "podman run --rm", "unavailable":
                                      "podman not found: scripts/install installs it"}
            log("podman: unavailable: not installed")
            return
        top = os.path.join(ws.top, "podman")
        parent = f"{self.id_prefix}-podman"
        base = [podman, "--root", os.path.join(top, "storage"), "--runroot", os.path.join(top, "run"),
                "--tmpdir", os.path.join(top, "tmp"), "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

        def argv(tool: str) -> list[str]:
            # Root lacks CAP_SYS_RESOURCE here: podman's default nofile (1048576) cannot be set.
            return [*base, "--runtime", self.paths[tool], "run", "--rm", "--network", "none",
                    "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                    "--cgroup-parent", f"/{parent}", "--rootfs", ws.rootfs, "/bin/true"]

        def cleanup(_i: int) -> None:
            if self.cgroup2_hidden:  # crun's PARENT/libpod-ID/cgroup.procs in the hidden cgroup2 dir
                for path in crun_tmpfs_leftovers(parent):
                    remove_crun_tmpfs_leftover(path)
                    self.crun_leftovers_removed += 1

        rows = [self.unavailable_nsinit_runc(Row(
                    f"podman + {name}", "nsinit" if tool == "nsinit-runc" else "peer",
                    lambda i, tool=tool: [argv(tool)], cleanup=cleanup,
                    note="--runtime PATH run --rm --network none --rootfs ROOTFS (vfs storage, cgroupfs)"))
                for name, tool in self.oci_runtime_rows()]
        try:
            self.run_case("podman", "podman run --rm /bin/true, by runtime", rows)
        finally:
            left = quiet([*base, "ps", "-aq"], check=False).stdout.split()
            for cid in left:
                quiet([*base, "rm", "-f", cid], check=False)
            case = self.results.setdefault("podman", {})
            case["podman_containers_left"] = left  # type: ignore[index]
            # runc, crun and nsinit-runc all leave a cgroup parent they did not make (podman
            # asked for it): the bench removes it, and reports what it could not remove.
            case["cgroup_parent_not_removed"] = remove_cgroup_trees(parent)  # type: ignore[index]
            if left or case["cgroup_parent_not_removed"]:  # type: ignore[index]
                log(f"podman residue: containers {left}, cgroups {case['cgroup_parent_not_removed']}")  # type: ignore[index]

    # -- where nsinit's time goes --------------------------------------------------
    # Steps that are one process waiting for the other (the other's steps, counted already).
    TRACE_WAITS = ("wait for parent", "wait for child", "go, wait for exec")

    def trace_runs(self, root: str, count: int) -> dict[str, object]:
        """``nsinit --trace exec /bin/true``, ``count`` times: median per step."""
        runs, walls = [], []
        for _ in range(count):
            argv = self.nsinit.argv("--root", root, "--trace", "exec", "/bin/true")
            elapsed = self.launcher.run(argv)
            walls.append(elapsed * 1000)
            runs.append(stats.parse_trace(self.launcher.read_err()))
        steps = stats.median_by_key(runs)
        # The child's "wait for parent" is the parent's cgroups/network/state
        # steps seen from the other side: counting it would count them twice.
        return {"wall_ms_median": stats.median(walls), "steps_ms": steps,
                "steps_total_ms": sum(ms for step, ms in steps if step not in self.TRACE_WAITS)}

    def profile(self) -> None:
        """Interleaved rows whose differences are the interpreter, site and its
        .pth files, nsinit's imports and nsinit's own work; then --trace and
        -X importtime."""
        root = self.ws.roots["profile"]
        interp = self.nsinit.interpreter or sys.executable
        out: dict[str, object] = {"trace_create": self.trace_runs(root, count=7)}
        dirs = self.import_dirs(interp)
        prelude = f"import sys; sys.path += {dirs!r}; "  # where site would put them: after the stdlib
        # What a plain `exec` that creates imports in the supervisor (docopt is
        # not among them: see cli.parse_plain_exec).
        imports = "import nsinit.cli, nsinit.container, nsinit.config.load, nsinit.cgroups.v1"
        main = "from nsinit.cli import run; run()"  # as the launcher does: os._exit once done
        rows = [
            Row("python3 -S -c pass", "reference", lambda i: [[interp, "-S", "-c", "pass"]],
                note="the interpreter alone"),
            Row("python3 -c pass", "reference", lambda i: [[interp, "-c", "pass"]],
                note="+ site: every .pth in site-packages"),
            Row("python3 -S, imports only", "reference", lambda i: [[interp, "-S", "-c", prelude + imports]],
                note=f"the interpreter + what `nsinit exec` imports ({imports}), no .pth"),
            Row("nsinit, python3 -S", "reference",
                lambda i: [[interp, "-S", "-c", prelude + main, "--root", root, "exec", "/bin/true"]],
                note="the same nsinit code with no site/.pth processing; sys.path: " + ", ".join(dirs)),
            Row("nsinit exec /bin/true", "nsinit", lambda i: [self.nsinit.argv("--root", root, "exec", "/bin/true")],
                note="as users start it"),
        ]
        self.run_case("startup", "where nsinit's time goes (interleaved)", rows)
        if all(row.samples for row in rows):
            # Medians and minima: under load the minima are the steadier estimate.
            for key, pick in (("decomposition_ms", stats.median), ("decomposition_min_ms", min)):
                m = {row.name: pick(row.samples) * 1000 for row in rows}
                out[key] = [
                    ("interpreter (python3 -S -c pass)", m["python3 -S -c pass"]),
                    ("site + .pth files", m["python3 -c pass"] - m["python3 -S -c pass"]),
                    ("imports", m["python3 -S, imports only"] - m["python3 -S -c pass"]),
                    ("nsinit's work: parse, config, steps, container, exit",
                     m["nsinit, python3 -S"] - m["python3 -S, imports only"]),
                    ("total as users start it", m["nsinit exec /bin/true"]),
                ]
        out.update(self.importtime_runs(root, count=5))
        self.results["profile"] = out

    def importtime_runs(self, root: str, count: int) -> dict[str, object]:
        """``python3 -X importtime`` running the launcher's code (``exec /bin/true``): medians by group."""
        interp = self.nsinit.interpreter or sys.executable
        # The launcher's code under -X importtime: its paths first, with site.
        main = (f"import sys; sys.path[:0] = {self.launcher_paths()!r}; "
                "from nsinit.cli import run; run()")
        samples = []
        site_children: list[list[tuple[str, float]]] = []
        for _ in range(count):
            argv = [interp, "-X", "importtime", "-c", main, "--root", root, "exec", "/bin/true"]
            self.launcher.run(argv)
            records = stats.parse_importtime(self.launcher.read_err())
            samples.append(records)
            site_children.append(_site_children(records))
        return {
            "importtime_groups_ms": stats.median_by_key([list(stats.import_groups(r).items()) for r in samples]),
            "importtime_top_self_ms": stats.median_by_key([stats.top_self(r, 12) for r in samples])[:12],
            "site_pth_ms": stats.median_by_key(site_children),
        }

    def import_dirs(self, interp: str) -> list[str]:
        """Where nsinit, docopt and cffi come from: sys.path for ``-S`` runs."""
        probe = ("import os, nsinit, docopt, cffi, _cffi_backend\n"
                 "for m in (nsinit, docopt, cffi, _cffi_backend):\n"
                 "    up = 2 if m.__file__.endswith('__init__.py') else 1\n"
                 "    print(os.path.abspath(os.path.join(m.__file__, *['..'] * up)))\n")
        # The launchers' interpreter is a venv without nsinit in it (scripts/install):
        # the launcher's own paths come first, as they do when it runs.
        prelude = f"import sys; sys.path[:0] = {self.launcher_paths()!r}\n"
        result = quiet([interp, "-c", prelude + probe])
        return list(dict.fromkeys(result.stdout.split()))

    # -- running a case and reporting ---------------------------------------------
    def run_case(self, key: str, title: str, rows: list[Row]) -> None:
        log(f"{title}: {self.rounds} rounds of {len(rows)} rows, {self.warmup} warm-up, "
            f"{self.args.gap_ms:g} ms gap")
        measure(self.launcher, rows, self.rounds, self.warmup,
                self.paths["time"] if key != "startup" else "", gap=self.args.gap_ms / 1000)
        self.results[key] = {"title": title, "rounds": self.rounds, "warmup": self.warmup,
                             "rows": {row.name: row.result() for row in rows}}
        print_case(self.results[key])  # type: ignore[arg-type]


def _site_children(records: list[stats.ImportRecord]) -> list[tuple[str, float]]:
    """The direct imports of ``site``: which .pth file costs what."""
    out = []
    for index, rec in enumerate(records):
        if rec.name == "site" and rec.depth == 0:
            # -X importtime prints children before their parent.
            j = index - 1
            while j >= 0 and records[j].depth > 0:
                if records[j].depth == 1:
                    out.append((records[j].name, records[j].cumulative_us / 1000))
                j -= 1
            break
    return sorted(out, key=lambda kv: -kv[1])[:6]


def floor_row_names(commands: int) -> tuple[str, str]:
    """The names of the interpreter's and crun's bare-start rows."""
    times = f"{commands} x " if commands > 1 else ""
    return f"floor: {times}python3 -IS", f"floor: {times}crun --version"


def cpython_floor(rows: dict[str, dict[str, object]], commands: int) -> dict[str, float] | None:
    """What a runtime that is a fresh CPython for each of its ``commands``
    cannot go below here.

    crun's time is the kernel's work for the container (namespaces,
    cgroups, mounts, exec, teardown) plus its starts of a small C binary;
    without those starts and with bare interpreters instead, it is a lower
    bound that no Python code of ours can beat (a little generous: crun's
    own work besides starting is counted as the kernel's).
    """
    interpreters_name, starts_name = floor_row_names(commands)
    crun = _reference(rows, "crun")
    starts = _reference(rows, starts_name)
    interpreters = _reference(rows, interpreters_name)
    if crun is None or starts is None or interpreters is None:
        return None
    floor = {"crun": crun, "crun_starts": starts, "interpreters": interpreters,
             "floor": crun - starts + interpreters}
    for name in ("runc", "nsinit-runc", "nsinit"):
        value = _reference(rows, name)
        if value is not None:
            floor[name] = value
    return floor


def print_cpython_floor(floor: dict[str, float], commands: int) -> None:
    starts = f"its {commands} starts" if commands > 1 else "its start"
    interpreters = f"{commands} interpreters" if commands > 1 else "the interpreter"
    line = (f"  floor for a CPython runtime: crun {floor['crun']:.1f} - {starts} {floor['crun_starts']:.1f}"
            f" + {interpreters} {floor['interpreters']:.1f} = {floor['floor']:.1f} ms")
    if "runc" in floor:
        line += f"; runc {floor['runc']:.1f} ({stats.format_ratio(stats.ratio(floor['floor'], floor['runc']))})"
    for name in ("nsinit-runc", "nsinit"):
        if name in floor:
            line += f"; {name} {floor[name]:.1f} (floor + {floor[name] - floor['floor']:.1f})"
    print(line)
    sys.stdout.flush()


# --- output -------------------------------------------------------------------

def _reference(rows: dict[str, dict], *names: str) -> float | None:
    for name in names:
        row = rows.get(name)
        if row and "median" in row:
            return row["median"]  # type: ignore[return-value]
    return None


def print_case(case: dict[str, object]) -> None:
    rows: dict[str, dict] = case["rows"]  # type: ignore[assignment]
    crun = _reference(rows, "crun", "crun exec", "podman + crun")
    runc = _reference(rows, "runc", "runc exec", "podman + runc")
    print(f"\n{case['title']}  ({case['rounds']} rounds interleaved, {case['warmup']} warm-up)")
    print(f"  {'':26} {'median':>8} {'min':>8} {'max':>8} {'x crun':>7} {'x runc':>7} {'peak RSS':>9}")
    for name, row in rows.items():
        if "median" not in row:
            print(f"  {name:26} unavailable: {row.get('unavailable', 'no samples')}")
            continue
        rss = row.get("peak_rss_kb_median")
        print(f"  {name:26} {row['median']:8.1f} {row['min']:8.1f} {row['max']:8.1f} "
              f"{stats.format_ratio(stats.ratio(row['median'], crun)):>7} "
              f"{stats.format_ratio(stats.ratio(row['median'], runc)):>7} "
              f"{(f'{rss / 1024:.1f} MB' if rss else '-'):>9}"
              + (f"  ({row['failures']} failed)" if row.get("failures") else ""))
    for name, row in rows.items():
        if row.get("step_median_ms"):
            print(f"  {name}, medians by step: {_listing(list(row['step_median_ms'].items()), by_size=False)}")
    sys.stdout.flush()


def print_loop(case: dict[str, object]) -> None:
    rows: dict[str, dict] = case["rows"]  # type: ignore[assignment]
    runc = rows.get("runc", {})
    print(f"\n{case['title']} (ms)")
    print(f"  {'':30} {'per container':>13} {'x runc':>7} {'block':>8} {'x runc':>7} {'min':>6} "
          f"{'run by run':>10} {'x runc':>7}")
    for name, row in rows.items():
        if "unavailable" in row:
            print(f"  {name:30} unavailable: {row['unavailable']}")
            continue
        def vs(key: str, row: dict = row) -> str:
            return stats.format_ratio(stats.ratio(row[key], runc.get(key)))
        print(f"  {name:30} {row['block_per_container_median_ms']:13.1f} {vs('block_per_container_median_ms'):>7} "
              f"{row['block_total_median_ms']:8.0f} {vs('block_total_median_ms'):>7} {row['block_min_ms']:6.1f} "
              f"{row['mixed_median_ms']:10.1f} {vs('mixed_median_ms'):>7}")
    sys.stdout.flush()


def _listing(pairs: Sequence[tuple[str, float]], digits: int = 1, by_size: bool = True, limit: int = 10) -> str:
    ordered = sorted(pairs, key=lambda kv: -kv[1]) if by_size else list(pairs)
    return ", ".join(f"{name} {value:.{digits}f}" for name, value in ordered[:limit])


def print_summary(results: dict[str, object]) -> None:
    print("\n(all times in ms)")
    if isinstance(results.get("resident"), dict) or isinstance(results.get("resident_veth"), dict):
        print("\n4. memory (MB)")
        create = results.get("create", {}).get("rows", {}).get("nsinit", {})  # type: ignore[union-attr]
        if create.get("peak_rss_kb_median"):
            peak = create["peak_rss_kb_median"] / 1024
            print(f"  peak RSS of `nsinit exec /bin/true` (/usr/bin/time %M): {peak:.1f}")
        for label, key in (("its container sleeps", "resident"), ("a veth container sleeps", "resident_veth")):
            entry = results.get(key)
            if not isinstance(entry, dict) or "supervisor_kb" not in entry:
                continue
            sup = {k: v / 1024 for k, v in entry["supervisor_kb"].items()}
            print(f"  supervisor while {label}: VmRSS {sup.get('VmRSS', 0):.1f} "
                  f"(anon {sup.get('RssAnon', 0):.1f}, file {sup.get('RssFile', 0):.1f}), "
                  f"PSS {sup.get('Pss', 0):.1f}, private dirty {sup.get('Private_Dirty', 0):.1f}")
        print("  runc/crun: no resident process per container (their init is reparented)")
    many = results.get("many")
    if isinstance(many, dict):
        n = many["n"]
        print(f"\n{many['title']} (ms)")
        print(f"  {'':10} {'sequential':>10} {'per run':>8} {'2 parallel':>10} {'per run':>8}  residue")
        for name in ("nsinit", "crun", "runc"):
            row = many.get(name)
            if not isinstance(row, dict):
                continue
            if "error" in row:
                print(f"  {name:10} failed: {row['error']}")
                continue
            seq, par = row["sequential_s"] * 1000, row["parallel2_s"] * 1000
            print(f"  {name:10} {seq:10.0f} {seq / n:8.1f} {par:10.0f} {par / n:8.1f}  {_residue_text(row['residue'])}")
    profile = results.get("profile")
    if isinstance(profile, dict):
        print("\nwhere nsinit's time goes (ms)")
        for key, label in (("trace_create", "create"), ("trace_join", "join"), ("trace_veth", "veth")):
            trace = profile.get(key) or results.get(key)
            if isinstance(trace, dict):
                print(f"  --trace {label} (wall {trace['wall_ms_median']:.1f}, steps total without 'wait for parent' "
                      f"{trace['steps_total_ms']:.1f}): {_listing(trace['steps_ms'], 2, limit=8)}")
        if profile.get("decomposition_ms"):
            print(f"  medians, interleaved: {_listing(profile['decomposition_ms'], by_size=False)}")
            print(f"  minima, interleaved:  {_listing(profile['decomposition_min_ms'], by_size=False)}")
        print(f"  -X importtime by top-level import: {_listing(profile['importtime_groups_ms'])}")
        veth_imports = results.get("importtime_veth")
        if isinstance(veth_imports, dict):
            print(f"  -X importtime with veth: {_listing(veth_imports['importtime_groups_ms'])}")
        print(f"  site's imports (.pth files): {_listing(profile['site_pth_ms'], limit=6)}")
        print(f"  largest own import times: {_listing(profile['importtime_top_self_ms'])}")
    targets = results.get("targets")
    if isinstance(targets, dict):
        print("\ntargets (issue 6; reported, not asserted)")
        for name, t in targets.items():
            print(f"  {name:34} {t['text']}")
    final = results.get("final_residue")
    if isinstance(final, dict):
        print(f"\nresidue at the end: {_residue_text(final)}")


def _residue_text(res: dict) -> str:
    if not res.get("total"):
        return "none" + (f" (after {res['settled_after_ms']} ms)" if res.get("settled_after_ms") else "")
    return "; ".join(f"{k}: {len(v)} ({', '.join(v[:3])})" for k, v in res["items"].items() if v)


def evaluate_targets(results: dict[str, object]) -> dict[str, dict[str, object]]:
    def rows(case: str) -> dict[str, dict]:
        c = results.get(case)
        return c.get("rows", {}) if isinstance(c, dict) else {}  # type: ignore[return-value]

    def check(value: float | None, limit: float, unit: str, strict: bool = False) -> dict[str, object]:
        if value is None:
            return {"value": None, "limit": limit, "met": None, "text": "not measured"}
        met = value < limit if strict else value <= limit
        return {"value": value, "limit": limit, "met": met,
                "text": f"{value:.2f}{unit} vs {'<' if strict else '≤'} {limit}{unit}: {'met' if met else 'NOT met'}"}

    create, join, veth = rows("create"), rows("join"), rows("veth")
    ns = _reference(create, "nsinit")
    nj = _reference(join, "nsinit exec (join)")
    out = {
        "create ≤ 0.8x runc": check(stats.ratio(ns, _reference(create, "runc")), TARGETS["create_vs_runc"], "x"),
        "create ≤ 1.0x crun (stretch)": check(stats.ratio(ns, _reference(create, "crun")),
                                              TARGETS["create_vs_crun_stretch"], "x"),
        "join < 1.0x runc exec": check(stats.ratio(nj, _reference(join, "runc exec")),
                                       TARGETS["join_vs_runc_exec"], "x", strict=True),
        "join ≤ 1.5x crun exec (stretch)": check(stats.ratio(nj, _reference(join, "crun exec")),
                                                 TARGETS["join_vs_crun_exec_stretch"], "x"),
        "veth container ≤ 60 ms": check(_reference(veth, "nsinit + veth"), TARGETS["veth_median_ms"], " ms"),
        "create+start+delete ≤ 1.0x runc": check(stats.ratio(_reference(rows("lifecycle"), "nsinit-runc"),
                                                             _reference(rows("lifecycle"), "runc")),
                                                 TARGETS["lifecycle_vs_runc"], "x"),
    }
    for label, key in (("supervisor RSS ≤ 12 MB", "resident"), ("veth supervisor RSS ≤ 12 MB", "resident_veth")):
        entry = results.get(key)
        rss = entry["supervisor_kb"].get("VmRSS") / 1024 if isinstance(entry, dict) and "supervisor_kb" in entry else None  # type: ignore[index]
        out[label] = check(rss, TARGETS["supervisor_rss_mb"], " MB")
    return out


def describe_machine(suite: Suite, cgroup_note: str) -> dict[str, object]:
    def first_line(argv: list[str]) -> str:
        result = quiet(argv, check=False)
        return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else ""

    git = quiet(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = quiet(["git", "-C", REPO, "status", "--porcelain", "nsinit"], check=False).stdout.strip()
    python = quiet([suite.nsinit.interpreter or sys.executable, "-VV"], check=False).stdout.strip()
    return {
        "kernel": platform.release(), "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
        "nsinit_git": git + (" + uncommitted changes in nsinit/" if dirty else ""),
        "nsinit_found_on_path": suite.nsinit.found, "nsinit_pyenv_shim": suite.nsinit.shim,
        "nsinit_command": suite.nsinit.command, "nsinit_interpreter": suite.nsinit.interpreter,
        "nsinit_runc_command": suite.nsinit_runc.command if suite.nsinit_runc else suite.nsinit_runc_error,
        "nsinit_python": python,
        "runc": first_line(["runc", "--version"]), "crun": first_line(["crun", "--version"]),
        "podman": first_line(["podman", "--version"]) if shutil.which("podman") else "not installed",
        "bwrap": first_line(["bwrap", "--version"]), "unshare": first_line(["unshare", "--version"]),
        "cgroup2_mount": cgroup_note, "workspace": suite.ws.top,
        "env_removed": ["PYTHONDONTWRITEBYTECODE"],
        "oci_bundle_edits": "runc spec; terminal false; args; root = the nsinit rootfs (absolute, rw); "
                            "hostname nsinit; namespaces pid ipc uts mount network; no /sys/fs/cgroup mount",
    }


# --- main ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="15 rounds per case, 20 containers in case 5")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    parser.add_argument("--iterations", type=int, default=0, help="rounds per case (default 60, --quick 15)")
    parser.add_argument("--containers", type=int, default=0, help="case 5 count (default 100, --quick 20)")
    parser.add_argument("--cases", default="create,join,veth,many,profile",
                        help="comma-separated subset of create,join,veth,many,profile,seccomp,loop,"
                             "lifecycle,podman")
    parser.add_argument("--compare", default="",
                        help="loop case: another nsinit command as one more row (e.g. the launcher of another tree)")
    parser.add_argument("--loop-block", type=int, default=10,
                        help="containers in a row per runtime in the loop case (default 10)")
    parser.add_argument("--gap-ms", type=float, default=50.0,
                        help="idle time before every timed run (default 50; see measure())")
    parser.add_argument("--nsinit", help="the nsinit command to benchmark (default: `nsinit` on PATH)")
    parser.add_argument("--nsinit-runc", help="the nsinit-runc command for the lifecycle and podman cases "
                                              "(default: `nsinit-runc` on PATH)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace for inspection")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    args.json = os.path.abspath(args.json)
    if os.geteuid() != 0:
        log("needs root (namespaces, mounts, a bridge): sudo python3 bench/run.py")
        return 2
    if os.environ.get(INNER_MARK) != "1":
        try:
            install_peers()
            reexec_in_private_mount_namespace()  # does not return
        except (BenchError, subprocess.CalledProcessError) as err:
            log(str(err))
            return 1
    # SIGTERM gets the same cleanup as Ctrl-C.
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGALRM, _on_alarm)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    with ExitStack() as cleanup:
        try:
            paths = install_peers()
            hidden = hide_cgroup2_mount()
            cgroup_note = "unmounted in the bench's mount namespace" if hidden else "not mounted"
            suite = Suite(args, paths, cleanup, hidden)
            suite.setup()
            results: dict[str, object] = {"machine": describe_machine(suite, cgroup_note),
                                          "quick": args.quick}
            suite.results = results
            load = os.getloadavg()[0]
            if load > 0.5 * (os.cpu_count() or 1):
                log(f"warning: load average {load:.1f} on {os.cpu_count()} CPUs: "
                    "absolute times will be noisy; compare ratios")
            log(f"nsinit runs as {' '.join(suite.nsinit.command)}"
                + (f" (PATH has the pyenv shim {suite.nsinit.shim})" if suite.nsinit.shim else ""))
            steps: dict[str, Callable[[], None]] = {
                "create": suite.case_create, "join": suite.case_join, "veth": suite.case_veth,
                "many": suite.case_many, "profile": suite.profile, "seccomp": suite.case_seccomp,
                "loop": suite.case_loop, "lifecycle": suite.case_lifecycle, "podman": suite.case_podman,
            }
            for name in cases:
                if name not in steps:
                    raise BenchError(f"unknown case {name!r}")
                steps[name]()
            results["targets"] = evaluate_targets(results)
            suite.stop_sleepers()
            suite.delete_oci_containers()
            if suite.bridge:
                quiet(["ip", "link", "del", suite.bridge], check=False)
            results["final_residue"] = settled_residue(suite.ws, suite.veth_prefix, paths, suite.baseline)
            results["crun_tmpfs_leftovers_removed"] = suite.crun_leftovers_removed
            results["loadavg_at_end"] = os.getloadavg()
            print_summary(results)
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2, default=str)
            log(f"results written to {args.json}")
        except KeyboardInterrupt:
            log("interrupted: cleaning up")
            return 130
        except (BenchError, RunFailed) as err:
            log(f"failed: {err}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
