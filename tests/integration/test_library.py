"""The Python API a script or a lesson drives: Container and Process."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import Nsinit, needs_root

pytestmark = needs_root


def run_python(nsinit: Nsinit, body: str) -> subprocess.CompletedProcess[str]:
    script = "import sys\nfrom nsinit.container import Container, Process\nfrom nsinit.errors import NsinitError\n"
    script += f"root = {str(nsinit.root)!r}\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_create_join_destroy_from_python(nsinit: Nsinit) -> None:
    # run() supervises until the init exits, so the creator is a process of
    # its own, as with the CLI.
    creator = subprocess.Popen(
        [sys.executable, "-c", "from nsinit.container import Container, Process\n"
         f"raise SystemExit(Container.load({str(nsinit.root)!r}).run(Process(['/bin/sleep', '30']), new=True))"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nsinit.wait_for(lambda: (nsinit.root / "pid").exists())
        result = run_python(nsinit, """
            c = Container.load(root)
            print("join", c.join(Process(["/bin/sh", "-c", "exit 7"])))
            try:
                c.create(Process(["/bin/true"]))
            except NsinitError as err:
                print("create refused:", err)
            print("processes", [p["container_pid"] for p in c.processes()])
            c.destroy()
            print("state after destroy", c.state())
        """)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "join 7"
        assert lines[1].startswith("create refused: create: a container already runs")
        assert lines[2] == "processes [1]"
        assert lines[3] == "state after destroy None"
        assert creator.wait(timeout=10) == 137
    finally:
        if creator.poll() is None:
            creator.kill()
        creator.communicate()


def test_join_without_a_container_is_an_error(nsinit: Nsinit) -> None:
    result = run_python(nsinit, """
        try:
            Container.load(root).join(Process(["/bin/true"]))
        except NsinitError as err:
            print(err, err.exit_code)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"join: no running container in {nsinit.root} 1"


def test_a_multi_threaded_caller_is_refused(nsinit: Nsinit) -> None:
    result = run_python(nsinit, """
        import threading
        done = threading.Event()
        threading.Thread(target=done.wait).start()
        try:
            Container.load(root).run(Process(["/bin/true"]))
        except NsinitError as err:
            print(err)
        finally:
            done.set()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("clone: the calling process has 2 threads")
    assert not (nsinit.root / "pid").exists()


def test_stop_from_python(nsinit: Nsinit) -> None:
    # sleep as PID 1 ignores SIGTERM: stop() has to SIGKILL it after the grace time.
    creator = subprocess.Popen(
        [sys.executable, "-c", "from nsinit.container import Container, Process\n"
         f"raise SystemExit(Container.load({str(nsinit.root)!r}).run(Process(['/bin/sleep', '30']), new=True))"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        nsinit.wait_for(lambda: (nsinit.root / "pid").exists())
        result = run_python(nsinit, """
            c = Container.attach(root)
            print("killed", c.stop(grace=0.5))
            print("state after stop", c.state())
        """)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["killed True", "state after stop None"]
        assert creator.wait(timeout=10) == 137
    finally:
        if creator.poll() is None:
            creator.kill()
        creator.communicate(timeout=10)
