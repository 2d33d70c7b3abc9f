"""OCI hooks at their moments: each hook writes a file that proves where and
when it ran (its mount namespace, its state JSON on stdin, its env and argv).

createRuntime (and prestart) in the runtime's namespaces, createContainer in
the container's mount namespace before pivot_root (it still sees the host's
paths), startContainer in the container (its root) before the command,
poststart after start, poststop after delete.  A failing createRuntime hook
fails create and leaves nothing behind; a timeout kills the hook.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _ocibundle import bundle
from conftest import needs_root, wait_until
from nsinit.container import Container, Process
from nsinit.errors import NsinitError
from nsinit.lifecycle.hooks import HookPlan
from nsinit.oci.spec import load_bundle

pytestmark = [pytest.mark.integration, needs_root]


def recorder(out: Path, name: str, **extra: Any) -> dict[str, Any]:
    """A host hook: its mount namespace, argv, env and stdin into out/NAME.*"""
    script = (f'readlink /proc/self/ns/mnt > {out}/{name}.ns; tr "\\0" " " < /proc/self/cmdline > {out}/{name}.args; '
              f'env > {out}/{name}.env; cat > {out}/{name}.json; test -e {out}/made || echo $PPID > {out}/{name}.order')
    return {"path": "/bin/sh", "args": ["hook-sh", "-c", script, name], "env": [f"HOOK={name}"], **extra}


def make(tmp_path: Path, rootfs: Path, hooks: dict[str, Any], script: str = "echo ran > /ran") -> tuple[Container, Any]:
    spec, _ = load_bundle(str(bundle(tmp_path, rootfs, ["/bin/sh", "-c", script])), "hooked")
    data = json.loads((spec.bundle and Path(spec.bundle, "config.json")).read_text())
    data["hooks"] = hooks
    Path(spec.bundle, "config.json").write_text(json.dumps(data))
    spec, _ = load_bundle(spec.bundle, "hooked")
    (tmp_path / "state").mkdir()
    return Container(str(tmp_path / "state"), spec.config), spec


def test_every_hook_at_its_moment(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    start_script = "readlink /proc/self/ns/mnt > /start.ns; cat > /start.json; test -e /ran || echo before > /start.when"
    hooks = {
        "prestart": [recorder(out, "prestart")],
        "createRuntime": [recorder(out, "createRuntime")],
        "createContainer": [recorder(out, "createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", start_script]}],
        "poststart": [recorder(out, "poststart")],
        "poststop": [recorder(out, "poststop")],
    }
    container, spec = make(tmp_path, rootfs, hooks)
    process = container.create(Process(list(spec.args)), hooks=HookPlan.of_spec(spec, "hooked"))
    try:
        init_mnt = os.readlink(f"/proc/{process.pid}/ns/mnt")
        host_mnt = os.readlink("/proc/self/ns/mnt")
        assert init_mnt != host_mnt
        for name in ("prestart", "createRuntime"):
            assert (out / f"{name}.ns").read_text().strip() == host_mnt
        # In the container's mount namespace, and before pivot_root: it could write out/ on the host.
        assert (out / "createContainer.ns").read_text().strip() == init_mnt
        created = json.loads((out / "createRuntime.json").read_text())
        assert created == {"ociVersion": spec.oci_version, "id": "hooked", "status": "creating",
                           "pid": process.pid, "bundle": spec.bundle, "annotations": {}}
        assert json.loads((out / "createContainer.json").read_text())["pid"] == process.pid
        # Exactly the hook's env (sh adds PWD, SHLVL and _), its args as argv.
        env = dict(line.split("=", 1) for line in (out / "createRuntime.env").read_text().splitlines())
        assert env.pop("HOOK") == "createRuntime" and set(env) <= {"PWD", "SHLVL", "_"}, env
        assert (out / "createRuntime.args").read_text().startswith("hook-sh -c ")
        assert (out / "createRuntime.args").read_text().endswith(" createRuntime ")
        assert not (out / "poststart.json").exists() and not (rootfs / "start.json").exists()
        container.start()
        assert process.wait() == 0
        # startContainer: in the container (its root, its mount namespace), before the command.
        assert (rootfs / "start.ns").read_text().strip() == init_mnt
        assert (rootfs / "start.when").read_text() == "before\n"
        assert json.loads((rootfs / "start.json").read_text())["status"] == "created"
        assert json.loads((out / "poststart.json").read_text())["status"] == "running"
        assert not (out / "poststop.json").exists()
    finally:
        container.delete(force=True)
    stopped = json.loads((out / "poststop.json").read_text())
    assert stopped["status"] == "stopped" and stopped["id"] == "hooked"
    assert (out / "poststop.ns").read_text().strip() == os.readlink("/proc/self/ns/mnt")


def test_a_failing_create_runtime_hook_fails_create_and_leaves_nothing(tmp_path: Path, rootfs: Path,
                                                                       no_residue: None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 3"]}],
             "createContainer": [recorder(out, "createContainer")], "poststop": [recorder(out, "poststop")]}
    container, spec = make(tmp_path, rootfs, hooks)
    with pytest.raises(NsinitError) as failed:
        container.create(Process(list(spec.args)), hooks=HookPlan.of_spec(spec, "hooked"))
    assert str(failed.value) == "hooks.createRuntime[0]: /bin/sh: exited with status 3: no way"
    assert not (out / "createContainer.json").exists()   # the later hooks did not run
    assert json.loads((out / "poststop.json").read_text())["status"] == "stopped"   # but the deletion's did
    assert container.status_with_record()[0] == "none"              # no_residue checks cgroups, mounts, processes


def test_a_create_that_fails_before_its_hooks_runs_no_poststop(tmp_path: Path, rootfs: Path,
                                                               no_residue: None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    container, spec = make(tmp_path, rootfs, {"poststop": [recorder(out, "poststop")]})
    source = tmp_path / "gone"
    source.mkdir()
    data = json.loads(Path(spec.bundle, "config.json").read_text())
    data["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(source), "options": ["bind"]})
    Path(spec.bundle, "config.json").write_text(json.dumps(data))
    spec, _ = load_bundle(spec.bundle, "hooked")
    source.rmdir()  # after the check: the bind fails in the init, before the hooks' moment
    container = Container(str(tmp_path / "state"), spec.config)
    with pytest.raises(NsinitError) as failed:
        container.create(Process(list(spec.args)), hooks=HookPlan.of_spec(spec, "hooked"))
    assert "bind source" in str(failed.value) and "does not exist" in str(failed.value)
    assert not (out / "poststop.json").exists()


def test_a_hook_past_its_timeout_is_killed(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # createRuntime: in the host's pid namespace, where $$ is the pid the test sees.
    hooks = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {out}/pid; exec sleep 30"],
                                "timeout": 1}]}
    container, spec = make(tmp_path, rootfs, hooks)
    with pytest.raises(NsinitError) as failed:
        container.create(Process(list(spec.args)), hooks=HookPlan.of_spec(spec, "hooked"))
    assert str(failed.value) == "hooks.createRuntime[0]: /bin/sh: timed out after 1 s"
    pid = int((out / "pid").read_text())
    assert not os.path.exists(f"/proc/{pid}")   # killed and reaped before the error was raised


def test_a_failing_start_container_hook_fails_start(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    hooks = {"startContainer": [{"path": "/bin/false"}]}
    container, spec = make(tmp_path, rootfs, hooks)
    process = container.create(Process(list(spec.args)), hooks=HookPlan.of_spec(spec, "hooked"))
    try:
        with pytest.raises(NsinitError) as failed:
            container.start()
        assert "hooks.startContainer[0]: /bin/false: exited with status 1" in str(failed.value)
        assert process.wait() != 0 and not (rootfs / "ran").exists()
    finally:
        container.delete(force=True)


def test_no_hooks_no_plan(tmp_path: Path, rootfs: Path) -> None:
    spec, _ = load_bundle(str(bundle(tmp_path, rootfs, ["/bin/true"])), "plain")
    assert HookPlan.of_spec(spec, "plain") is None


def test_nsinit_runc_runs_the_bundles_hooks(tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    """create, start and delete through nsinit-runc, as an engine drives it."""
    out = tmp_path / "out"
    out.mkdir()
    directory = bundle(tmp_path, rootfs, ["/bin/sh", "-c", "echo ran > /ran"])
    data = json.loads((directory / "config.json").read_text())
    data["hooks"] = {kind: [recorder(out, kind)] for kind in ("createRuntime", "createContainer", "poststart",
                                                              "poststop")}
    data["annotations"] = {"io.example": "yes"}
    (directory / "config.json").write_text(json.dumps(data))
    runc = [sys.executable, "-m", "nsinit.oci", "--root", str(tmp_path / "state")]

    def run(*args: str) -> None:
        # Files, not pipes: the container holds create's stdio (conmon's pipes) for its life.
        with open(tmp_path / "runc.out", "w+") as o, open(tmp_path / "runc.err", "w+") as e:
            code = subprocess.run([*runc, *args], stdout=o, stderr=e, timeout=60, stdin=subprocess.DEVNULL).returncode
            e.seek(0)
            assert code == 0 and e.read() == ""

    try:
        run("create", "--bundle", str(directory), "--pid-file", str(tmp_path / "pid"), "c1")
        pid = int((tmp_path / "pid").read_text())
        state = json.loads((out / "createRuntime.json").read_text())
        assert state["id"] == "c1" and state["pid"] == pid and state["annotations"] == {"io.example": "yes"}
        assert (out / "createContainer.ns").read_text().strip() == os.readlink(f"/proc/{pid}/ns/mnt")
        run("start", "c1")
        assert json.loads((out / "poststart.json").read_text())["status"] == "running"
        wait_until(lambda: (rootfs / "ran").exists())
        assert not (out / "poststop.json").exists()
    finally:
        run("delete", "--force", "c1")
    assert json.loads((out / "poststop.json").read_text())["status"] == "stopped"


def _runc_with_poststop(tmp_path: Path, rootfs: Path) -> tuple[list[str], Path, Path]:
    """A bundle whose poststop hook appends a line to out/poststop.count."""
    out = tmp_path / "out"
    out.mkdir()
    directory = bundle(tmp_path, rootfs, ["/bin/sh", "-c", "sleep 1000"])
    data = json.loads((directory / "config.json").read_text())
    data["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo once >> {out}/poststop.count"]}]}
    (directory / "config.json").write_text(json.dumps(data))
    return [sys.executable, "-m", "nsinit.oci", "--root", str(tmp_path / "state")], directory, out


def _start_and_kill_init(tmp_path: Path, runc: list[str], directory: Path) -> None:
    for args in (["create", "--bundle", str(directory), "--pid-file", str(tmp_path / "pid"), "c1"], ["start", "c1"]):
        with open(tmp_path / "runc.err", "w+") as e:
            assert subprocess.run([*runc, *args], stdout=subprocess.DEVNULL, stderr=e, timeout=60,
                                  stdin=subprocess.DEVNULL).returncode == 0, Path(e.name).read_text()
    pid = int((tmp_path / "pid").read_text())
    os.kill(pid, 9)
    os.waitpid(pid, 0) if _is_our_child(pid) else wait_until(lambda: not Path(f"/proc/{pid}").exists())


def _is_our_child(pid: int) -> bool:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except OSError:
        return False


@pytest.mark.parametrize("remover", ["gc", "delete"])
def test_poststop_runs_once_whoever_removes_a_dead_container(tmp_path: Path, rootfs: Path, no_residue: None,
                                                             remover: str) -> None:
    """runtime.md: poststop after the container is deleted.  Its init killed,
    the container is removed by ``nsinit gc`` or by ``nsinit-runc delete``:
    the hook runs then, and never again (a delete after gc finds nothing)."""
    runc, directory, out = _runc_with_poststop(tmp_path, rootfs)
    try:
        _start_and_kill_init(tmp_path, runc, directory)
        assert json.loads(subprocess.run([*runc, "state", "c1"], capture_output=True, text=True,
                                         timeout=60).stdout)["status"] == "stopped"
        assert not (out / "poststop.count").exists()  # looking at it deletes nothing
        if remover == "gc":
            gc = subprocess.run([sys.executable, "-m", "nsinit", "gc"], capture_output=True, text=True, timeout=60)
            assert gc.returncode == 0, gc.stderr
        subprocess.run([*runc, "delete", "c1"], capture_output=True, timeout=60, check=True)
        subprocess.run([sys.executable, "-m", "nsinit", "gc"], capture_output=True, timeout=60, check=True)
    finally:
        subprocess.run([*runc, "delete", "--force", "c1"], capture_output=True, timeout=60)
    assert (out / "poststop.count").read_text() == "once\n"
