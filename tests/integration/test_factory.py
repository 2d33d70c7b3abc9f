"""The Factory (nsinit/lifecycle/factory.py): containers by id under a state root,
libcontainer's Create and Load, its typed errors, its atomic create, and how a
2014 ``nsinit exec`` container and a factory container see each other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import cgroups_left, needs_root, wait_until

from nsinit import state
from nsinit.container import Process
from nsinit.errors import (
    ContainerNotExists,
    IdInUse,
    InvalidIdFormat,
    NoContainerError,
    NsinitError,
)
from nsinit.lifecycle.factory import Factory, validate_id
from nsinit.oci.defaults import default_spec
from nsinit.oci.spec import OciSpec, parse_spec

pytestmark = [pytest.mark.integration, needs_root]


def spec_for(tmp_path: Path, rootfs: Path, container_id: str, **process: Any) -> OciSpec:
    data = default_spec(rootless=False)
    data["root"] = {"path": str(rootfs)}
    data["process"].update(terminal=False, **process)
    data["linux"]["cgroupsPath"] = f"/nsinit-factory-{tmp_path.name}-{container_id}"
    data["annotations"] = {"org.example/who": "test"}
    spec, warnings = parse_spec(data, "config.json", str(tmp_path), container_id)
    assert warnings == []
    return spec


@pytest.mark.parametrize("good", ["c1", "a.b", "x_y-z", "a+b,c", "." * 3, "A" * 255])
def test_ids_libcontainer_accepts(good: str) -> None:
    validate_id(good)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../x", "a b", "é", "a:b", "A" * 256, "a\nb"])
def test_ids_libcontainer_refuses(bad: str) -> None:
    with pytest.raises(InvalidIdFormat, match="invalid id format"):
        validate_id(bad)


def test_create_load_start_wait_delete(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    factory = Factory(str(tmp_path / "state"))
    assert os.stat(factory.root).st_mode & 0o777 == 0o700
    container = factory.create("c1", spec_for(tmp_path, rootfs, "c1"))
    assert container.id == "c1" and container.root == str(tmp_path / "state" / "c1")
    with pytest.raises(IdInUse, match='container "c1" already exists'):
        factory.create("c1", spec_for(tmp_path, rootfs, "c1"))
    init = container.create(Process(["/bin/sh", "-c", "read x < /dev/null; exit 5"]))
    private = state.private_dir(container.root)
    try:
        loaded = factory.load("c1")        # from any process: by id
        assert loaded.status() == "created" and loaded.oci_state()["pid"] == init.pid
        assert loaded.oci_state()["annotations"] == {"org.example/who": "test"}
        assert factory.ids() == ["c1"]
        loaded.exec()                       # libcontainer's Exec: the init execs its command
        assert init.wait() == 5             # the caller of create is the init's parent
        stopped = factory.load("c1")
        assert stopped.status() == "stopped" and stopped.oci_state()["pid"] == 0
        stopped.delete()
    finally:
        factory.load("c1").destroy() if os.path.isdir(container.root) else None
    assert factory.ids() == [] and not os.path.exists(container.root)
    assert not os.path.exists(os.path.join(private, state.STATE_FILE))
    with pytest.raises(ContainerNotExists, match='container "c1" does not exist') as raised:
        factory.load("c1")
    assert isinstance(raised.value, NoContainerError) and raised.value.exit_code == 1


def test_a_failed_create_leaves_nothing(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    factory = Factory(str(tmp_path / "state"))
    container = factory.create("bad", spec_for(tmp_path, rootfs, "bad"))
    with pytest.raises(NsinitError, match="/no/such/command"):
        container.create(Process(["/no/such/command"]))
    assert os.listdir(factory.root) == []       # no id dir
    assert not cgroups_left(tmp_path)           # no cgroup
    with pytest.raises(ContainerNotExists):
        factory.load("bad")
    # The id is free again.
    factory.create("bad", spec_for(tmp_path, rootfs, "bad")).forget()
    assert os.listdir(factory.root) == []


def test_systemd_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NsinitError, match='cgroups: "systemd"'):
        Factory(str(tmp_path / "state"), cgroups="systemd")
    assert not (tmp_path / "state").exists()


def nsinit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "nsinit", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=cwd)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_nsinit_commands_act_on_a_factory_container_by_its_id_dir(tmp_path: Path, rootfs: Path,
                                                                  no_residue: None) -> None:
    factory = Factory(str(tmp_path / "state"))
    container = factory.create("c2", spec_for(tmp_path, rootfs, "c2"))
    init = container.create(Process(["/bin/sleep", "60"]))
    try:
        container.start()
        # The 2014 CLI, rooted at the id dir, sees the same container.
        done = nsinit("--root", container.root, "state", "--json")
        assert done.returncode == 0, done.stderr
        recorded = json.loads(done.stdout)
        assert recorded["status"] == "running" and recorded["init_pid"] == init.pid
        assert nsinit("--root", container.root, "kill", "KILL").returncode == 0
        assert init.wait() == 137
        assert factory.load("c2").oci_status()[0] == "stopped"
    finally:
        factory.load("c2").destroy()
    assert os.listdir(factory.root) == []


def test_a_2014_container_is_loadable_by_the_factory(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    states = tmp_path / "state"
    old = states / "old"
    old.mkdir(parents=True)
    config = json.loads((rootfs / "container.json").read_text())
    config["rootfs"] = str(rootfs)
    config["networks"] = [n for n in config.get("networks", []) if n.get("type") == "loopback"]
    (old / "container.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    with open(out, "w") as f:  # a file: the detached container keeps its stdout
        code = subprocess.run([sys.executable, "-m", "nsinit", "exec", "--detach", "/bin/sleep", "60"], cwd=old,
                              stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=60).returncode
    assert code == 0, out.read_text()
    pid = int(out.read_text().split()[0])
    try:
        loaded = Factory(str(states)).load("old")
        assert loaded.oci_state()["status"] == "running" and loaded.oci_state()["pid"] == pid
        assert loaded.oci_state()["rootfs"] == str(rootfs)
        assert Factory(str(states)).ids() == []   # not one the factory made
        loaded.delete(force=True)
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2])
    finally:
        nsinit("delete", "--force", cwd=old)
    assert (old / "container.json").exists()     # its directory is its user's: it stays
    with pytest.raises(ContainerNotExists):
        Factory(str(states)).load("old")


def test_the_readme_factory_snippet_runs_as_written(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Library\n", 1)[1].split("\n## ", 1)[0]
    lines = section.split("\n")
    first = next(i for i, line in enumerate(lines) if line.startswith("    from nsinit.lifecycle.factory"))
    first = max(i for i in range(first + 1) if not lines[i - 1].startswith("    ") and lines[i].startswith("    "))
    end = next((i for i in range(first, len(lines)) if lines[i] and not lines[i].startswith("    ")), len(lines))
    block = "\n".join(line[4:] for line in lines[first:end])
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    data = default_spec(rootless=False)
    data["root"] = {"path": str(rootfs)}
    data["process"].update(terminal=False, args=["/bin/sh", "-c", "sleep 1; exit 3"])
    data["linux"]["cgroupsPath"] = f"/nsinit-factory-{tmp_path.name}-web"
    (bundle / "config.json").write_text(json.dumps(data))
    assert block.count('"/tmp/nsinit-bundle"') == 1 and block.count('"/tmp/nsinit-state"') == 1
    code = block.replace('"/tmp/nsinit-bundle"', repr(str(bundle))).replace(
        '"/tmp/nsinit-state"', repr(str(tmp_path / "state")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.splitlines() == ["running", "3"]
    assert os.listdir(tmp_path / "state") == []


def test_sigkill_ends_a_paused_container(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    """libcontainer's Signal: a frozen process dies of SIGKILL only once
    thawed (cgroup v1), so the library thaws after sending it."""
    factory = Factory(str(tmp_path / "state"))
    container = factory.create("frozen", spec_for(tmp_path, rootfs, "frozen"))
    init = container.run(Process(["/bin/sh", "-c", "while :; do sleep 0.05; done"]), detach=True)
    assert isinstance(init, Process)
    try:
        container.pause()
        assert container.status() == "paused"
        container.signal(9)
        # Bounded: a container left frozen would make wait() block for ever.
        wait_until(lambda: Path(f"/proc/{init.pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z", timeout=5)
        assert init.wait() == 137
    finally:
        container.destroy()
