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
# tmpcopyup's mount code, the loader's cgroups part (the probed config has no "cgroups" key).
ONLY_WHEN_USED = ("termios", "select", "resource", "struct", "_struct", "encodings.ascii",
                  "nsinit.mount.init_binary", "nsinit.mount.copyup", "nsinit.config.cgroups")


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
    import sysconfig

    launcher = pathlib.Path(sysconfig.get_path("scripts")) / "nsinit"
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
    assert not {m for m in loaded if m.startswith(RUNC_KEPT_OFF)}, sorted(loaded)
