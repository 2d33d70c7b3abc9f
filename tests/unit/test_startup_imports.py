"""What `nsinit exec` imports before it creates a container.

Every module imported on this path is paid for by every container start, so
the heavy ones are kept off it on purpose (see nsinit/record.py and
cli.parse_plain_exec).  This checks the modules a fresh interpreter holds
after parsing a plain exec line and loading container.json — no timing.
"""
from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import _cffi_backend
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path[:0] = [{repo!r}, {site!r}]
from nsinit import cli
args = cli.parse_plain_exec(cli.protect_command(["--root", {root!r}, "exec", "/bin/true"]))
from nsinit.container import Container
Container.load(args["--root"], args["--config"])
# What a join and the container's own setup import too:
import nsinit.config.recorded, nsinit.cgroups.membership, nsinit.cgroups.v1
import nsinit.lifecycle.create, nsinit.lifecycle.destroy, nsinit.child
import nsinit.mount, nsinit.network, nsinit.identity, nsinit.capabilities
print(repr(sorted(sys.modules)))
"""

# Pure-Python stdlib modules that cost milliseconds each at start-up (json,
# re, enum, functools, collections and contextlib together ~12 ms here).
KEPT_OFF = ("typing", "dataclasses", "inspect", "ast", "docopt", "pyroute2", "subprocess", "ipaddress",
            "json", "re", "enum", "functools", "collections", "contextlib", "signal", "socket", "secrets")
# Small ones a default container does not use, 0.1-0.4 ms each: a terminal's
# and a relay's (termios, select), rlimits' (resource), the loopback's old
# ifreq packing (struct), the ascii codec (encodings.ascii), exec --init's and
# tmpcopyup's mount code, the loader's cgroups part (the probed config has no "cgroups" key),
# the CLI's commands other than exec and create (nsinit/commands.py).
ONLY_WHEN_USED = ("termios", "select", "resource", "struct", "_struct", "encodings.ascii",
                  "nsinit.mount.init_binary", "nsinit.mount.copyup", "nsinit.config.cgroups", "nsinit.commands")


def test_plain_exec_path_imports_no_heavy_modules(tmp_path: pathlib.Path) -> None:
    # The config `nsinit rootfs` and `nsinit spec` write: what a user runs.
    from nsinit.demo_rootfs import DEFAULT_ROOTFS_CONFIG

    (tmp_path / "container.json").write_text(json.dumps(DEFAULT_ROOTFS_CONFIG))
    # The launcher puts the package and site-packages (for cffi's backend) on the path.
    site = str(pathlib.Path(_cffi_backend.__file__).parent)
    code = PROBE.format(repo=str(REPO), site=site, root=str(tmp_path))
    # -I -S: the way the installed launcher starts, without site-packages' .pth files.
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    loaded = set(ast.literal_eval(probe.stdout))
    assert "nsinit.container" in loaded and "nsinit.config.model" in loaded
    assert not loaded & set(KEPT_OFF)
    assert not loaded & set(ONLY_WHEN_USED)
    # Teaching (explain, inspect, the timeline) is never paid for by a container.
    assert not {m for m in loaded if m.startswith("nsinit.teach") or m == "nsinit.mount.plan"}
    assert not [name for name in loaded if name.startswith("nsinit.oci")]  # the OCI front door's own
    if os.geteuid() == 0:
        assert "nsinit.rootless" not in loaded  # a plain user's only


# The container.json loader: its top level and the modules of the config's parts.
LOADER = ("load", "parse", "namespaces", "mounts", "networks", "cgroups", "process")


def test_the_config_package_loads_its_loader_on_first_use() -> None:
    code = ("import sys; sys.path[:0] = [{repo!r}]\n"
            "import nsinit.config.names, nsinit.config.model\n"
            "assert not {{'nsinit.config.' + m for m in {loader!r}}} & set(sys.modules)\n"
            "from nsinit.config import load_config, Config\n"
            "assert load_config.__module__ == 'nsinit.config.load' and Config.__module__ == 'nsinit.config.model'\n"
            "import nsinit.config as package\n"
            "assert sorted(package.__all__) == sorted(package._HOMES)\n").format(repo=str(REPO), loader=LOADER)
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr


# --- the garbage collector: off while starting, on while a supervisor waits -----------------

# Runs an entry point with nsinit.cli.run replaced by a probe of the collector.
GC_PROBE = """
import gc, runpy, sys
sys.path.insert(0, {repo!r})
import nsinit.cli
nsinit.cli.run = lambda: print("collector on" if gc.isenabled() else "collector off")
{start}
"""


def collector_state_at_run(start: str) -> str:
    code = GC_PROBE.format(repo=str(REPO), start=start)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_python_m_nsinit_starts_with_the_collector_off() -> None:
    assert collector_state_at_run('runpy.run_module("nsinit", run_name="__main__")') == "collector off"


def test_installed_launcher_starts_with_the_collector_off() -> None:
    import shutil

    launcher = pathlib.Path(shutil.which("nsinit") or "/usr/local/bin/nsinit")
    if "scripts/install" not in launcher.read_text(errors="replace") if launcher.exists() else True:
        pytest.skip(f"{launcher} is not the launcher scripts/install writes (not installed here)")
    start = f"exec(compile(open({str(launcher)!r}).read(), 'launcher', 'exec'))"
    assert collector_state_at_run(start) == "collector off"


def test_a_waiting_supervisor_collects_only_what_is_new() -> None:
    import gc

    from nsinit.lifecycle.supervise import collecting_while_waiting

    was_enabled = gc.isenabled()
    try:
        gc.enable()
        assert collecting_while_waiting() is False and gc.isenabled()  # a library user's choice stays
        gc.disable()
        frozen_before = gc.get_freeze_count()
        assert collecting_while_waiting() is True
        assert gc.isenabled() and gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
        (gc.enable if was_enabled else gc.disable)()


# --- nsinit-runc's hot commands: what an engine pays for every container --------------

RUNC_PROBE = """
import sys
sys.path[:0] = [{repo!r}, {site!r}]
from nsinit.oci.cli import main
code = main({argv!r})
print(repr((code, sorted(sys.modules))))
"""

# Besides KEPT_OFF: the bundle's loader, the creation's and the container's
# parts that a command reading only the record never needs, and docopt's.
RUNC_KEPT_OFF = ("nsinit.oci.spec", "nsinit.oci.hooks", "nsinit.oci.process", "nsinit.config.load",
                 "nsinit.config.model", "nsinit.lifecycle.create", "nsinit.lifecycle.launch",
                 "nsinit.console", "nsinit.mount", "nsinit.network", "nsinit.seccomp", "nsinit.criu",
                 "nsinit.capabilities", "nsinit.teach", "datetime", "time_rfc3339", "docopt")

# What none of the four needs, each measured on their paths before it was taken off:
# the join (start, delete, stop used its pin_process), the cffi helper (container.py
# named /proc/PID/ns files through nsinit.namespaces), the 2014 CLI (kill's
# parse_signal), the cgroups package (delete of a stopped container: an rmdir per
# cgroup), the message codec (start, unless the init reports a failure).
RUNC_OFF_THE_PATH = ("nsinit.lifecycle.join", "nsinit.lifecycle.launch", "nsinit.child", "nsinit.namespaces",
                     "nsinit._native", "nsinit._clone", "_cffi_backend", "nsinit.cli", "nsinit.cgroups",
                     "nsinit.messages", "nsinit.console", "nsinit.lifecycle.supervise",
                     # The code they never run, split off the modules they import (docs/DEVELOPING.md,
                     # "a fourth round"): the usage texts and docopt's parse, the other commands' bodies,
                     # and Container's stop, cgroup operations and every-process queries.
                     "nsinit.oci.usage", "nsinit.oci.create_commands", "nsinit.oci.inspect_commands",
                     "nsinit.oci.resource_commands", "nsinit.oci.exec_command", "nsinit.oci.criu_commands",
                     "nsinit.oci.features", "nsinit.oci.defaults", "nsinit.lifecycle.stop",
                     "nsinit.lifecycle.resources", "nsinit.processes", "nsinit.lifecycle.factory_create", "nsinit.running",
                     # state.py's copy of the namespace file names (the config package: ~0.1 ms), and
                     # errno (~60 us: only a failed rmdir reads it).
                     "nsinit.config", "errno")


@pytest.mark.parametrize("argv", [["state", "c1"], ["start", "c1"], ["kill", "c1", "KILL"], ["kill", "--all", "c1"],
                                  ["delete", "c1"], ["--log-format=json", "delete", "--force", "c1"]],
                         ids=lambda argv: " ".join(argv))
def test_nsinit_runc_hot_commands_import_no_heavy_modules(tmp_path: pathlib.Path, argv: list[str]) -> None:
    # An id that is not there: the whole parse, the Factory and the record's
    # lookup run, and no container is needed (a unit test makes none).
    site = str(pathlib.Path(_cffi_backend.__file__).parent)
    code = RUNC_PROBE.format(repo=str(REPO), site=site, argv=["--root", str(tmp_path / "state"), *argv])
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    status, modules = ast.literal_eval(probe.stdout.splitlines()[-1])
    forced = "--force" in argv  # delete --force of an unknown id is no error (runc's)
    assert status == (0 if forced else 1)
    assert forced or 'container "c1" does not exist' in probe.stderr
    loaded = set(modules)
    assert "nsinit.lifecycle.factory" in loaded  # it did look the id up
    assert not loaded & set(KEPT_OFF), sorted(loaded & set(KEPT_OFF))
    assert not {m for m in loaded if m.startswith(RUNC_KEPT_OFF) or m.startswith(RUNC_OFF_THE_PATH)}, sorted(loaded)


def test_nsinit_runc_version_imports_no_parser_and_no_loader(tmp_path: pathlib.Path) -> None:
    # podman info and podman version run it: the hot parse answers, docopt never loads.
    site = str(pathlib.Path(_cffi_backend.__file__).parent)
    code = RUNC_PROBE.format(repo=str(REPO), site=site, argv=["--version"])
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("runc version ")
    status, modules = ast.literal_eval(probe.stdout.splitlines()[-1])
    assert status == 0
    loaded = set(modules)
    assert not loaded & set(KEPT_OFF), sorted(loaded & set(KEPT_OFF))
    assert not {m for m in loaded if m.startswith(RUNC_KEPT_OFF)}, sorted(loaded)


# --- ... and on a container of the id: the start, kill and delete themselves -------------
# The probe above stops at the lookup.  These plant a factory container the way
# create leaves one (oci.json in the id dir, the record in a private directory
# of NSINIT_RUN_DIR) around a real process of the test's, so that the command
# runs to its end: start releases a real exec fifo, kill signals, delete removes.

def plant_container(tmp_path: pathlib.Path) -> pathlib.Path:
    """A factory container "c1" of the state root tmp_path/state, not yet
    recorded; returns its private directory (in tmp_path/run)."""
    from nsinit.lifecycle.factory import OciFacts
    from nsinit.lifecycle.factory_create import write_facts

    id_dir = tmp_path / "state" / "c1"
    id_dir.mkdir(parents=True)
    write_facts(str(id_dir), OciFacts(id="c1", bundle=str(tmp_path), rootfs=str(tmp_path), created="now",
                                      oci_version="1.0.2"))  # as create records it
    st = id_dir.stat()
    private = tmp_path / "run" / f"{st.st_dev:x}-{st.st_ino:x}"
    private.mkdir(parents=True)
    return private


def record_init(private: pathlib.Path, pid: int, status: str, cgroup_paths: dict[str, str] | None = None) -> None:
    """The record of a detached container (create's) whose init is ``pid``."""
    from nsinit.state import State, read_start_time

    start_time = read_start_time(pid)
    assert start_time is not None
    record = State(init_pid=pid, init_start_time=start_time, created="now", root=str(private), rootfs="/",
                   cgroup_paths=cgroup_paths or {}, status=status, detached=True)
    (private / "state.json").write_text(record.to_json())


def run_probe(tmp_path: pathlib.Path, argv: list[str]) -> set[str]:
    site = str(pathlib.Path(_cffi_backend.__file__).parent)
    code = RUNC_PROBE.format(repo=str(REPO), site=site, argv=["--root", str(tmp_path / "state"), *argv])
    env = dict(os.environ, NSINIT_RUN_DIR=str(tmp_path / "run"))
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60,
                           env=env)
    assert probe.returncode == 0, probe.stderr
    status, modules = ast.literal_eval(probe.stdout.splitlines()[-1])
    assert status == 0, probe.stderr
    loaded = set(modules)
    assert not loaded & set(KEPT_OFF), sorted(loaded & set(KEPT_OFF))
    assert not {m for m in loaded if m.startswith(RUNC_KEPT_OFF) or m.startswith(RUNC_OFF_THE_PATH)}, sorted(loaded)
    return loaded


def test_nsinit_runc_start_releases_the_init_without_the_join_or_the_codec(tmp_path: pathlib.Path) -> None:
    # The init's side of the exec fifo: blocked in its open for writing until
    # start opens it for reading, then "0", then its end closes (here: exit).
    private = plant_container(tmp_path)
    os.mkfifo(private / "exec.fifo", 0o600)
    init = subprocess.Popen([sys.executable, "-I", "-S", "-c",
                             f"import os; os.write(os.open({str(private / 'exec.fifo')!r}, os.O_WRONLY), b'0')"])
    try:
        record_init(private, init.pid, "created")
        loaded = run_probe(tmp_path, ["start", "c1"])
        assert "nsinit.lifecycle.start" in loaded
        assert init.wait(timeout=30) == 0  # released: its open returned
        assert not (private / "exec.fifo").exists()
        assert json.loads((private / "state.json").read_text())["status"] == "running"
    finally:
        init.kill()
        init.wait()


def test_nsinit_runc_state_of_a_live_container(tmp_path: pathlib.Path) -> None:
    init = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"])
    try:
        record_init(plant_container(tmp_path), init.pid, "running")
        run_probe(tmp_path, ["state", "c1"])
    finally:
        init.kill()
        init.wait()


def test_nsinit_runc_kill_signals_without_the_2014_cli(tmp_path: pathlib.Path) -> None:
    init = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"])
    try:
        record_init(plant_container(tmp_path), init.pid, "running")
        run_probe(tmp_path, ["kill", "c1", "KILL"])
        assert init.wait(timeout=30) == -9
    finally:
        init.kill()
        init.wait()


def test_nsinit_runc_delete_of_a_stopped_container_loads_no_cgroups_package(tmp_path: pathlib.Path) -> None:
    # A created container whose init has exited: stopped, until delete.
    init = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"])
    cgroups = {name: tmp_path / "cgroup" / name / "c1" for name in ("memory", "pids")}
    for path in cgroups.values():
        path.mkdir(parents=True)  # empty, as a stopped container's are: one rmdir each
    try:
        private = plant_container(tmp_path)
        record_init(private, init.pid, "created", {k: str(v) for k, v in cgroups.items()})
    finally:
        init.kill()
        init.wait()
    loaded = run_probe(tmp_path, ["delete", "c1"])
    assert "nsinit.lifecycle.destroy" in loaded
    assert not any(path.exists() for path in cgroups.values())
    assert not private.exists() and not (tmp_path / "state" / "c1").exists()


# --- nsinit-runc create: the bundle's loader, up to the claim of the id -----------------

# Of the spec loader's parts, what a bundle like podman's (no hooks, no throttle, no
# cpuset) never runs: the hook code (the parsed form and the runner) and the cgroup-limit
# parsers of container.json; and container.json's own loader and docopt.
CREATE_OFF_THE_PATH = ("nsinit.oci.hooks", "nsinit.lifecycle.hooks", "nsinit.config.cgroups",
                       "nsinit.config.load", "nsinit.config.networks", "nsinit.oci.usage", "docopt")


def test_nsinit_runc_create_of_a_bundle_without_hooks_loads_no_hook_code(tmp_path: pathlib.Path) -> None:
    # podman's config.json (seccomp aside: its compiler is the creation's), its id
    # already taken: the parse, the checks and the claim run, and no container is made.
    data = json.loads((REPO / "tests" / "unit" / "data" / "oci" / "podman-default.json").read_text())
    data["linux"].pop("seccomp", None)
    data["root"]["path"] = "rootfs"
    data["mounts"] = [mount for mount in data["mounts"] if mount.get("type") != "bind"]
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(data))
    (tmp_path / "state" / "c1").mkdir(parents=True)
    site = str(pathlib.Path(_cffi_backend.__file__).parent)
    argv = ["--root", str(tmp_path / "state"), "create", "--bundle", str(tmp_path), "--pid-file",
            str(tmp_path / "pid"), "c1"]
    code = RUNC_PROBE.format(repo=str(REPO), site=site, argv=argv)
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    status, modules = ast.literal_eval(probe.stdout.splitlines()[-1])
    assert status == 1 and 'container "c1" already exists' in probe.stderr, probe.stderr
    loaded = set(modules)
    assert {"nsinit.oci.spec", "nsinit.lifecycle.factory_create"} <= loaded  # it did parse and claim
    assert not loaded & set(KEPT_OFF), sorted(loaded & set(KEPT_OFF))
    assert not loaded & set(CREATE_OFF_THE_PATH), sorted(loaded & set(CREATE_OFF_THE_PATH))
    assert not (tmp_path / "pid").exists()
