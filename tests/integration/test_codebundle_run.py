"""The launchers' code bundle in a real container: the supervisor's modules
and the child's step modules (imported after clone, before pivot_root) all
come from it.

The tree under test is copied, its bundle built, and then every source the
bundle holds is overwritten with code that fails, its size and mtime_ns put
back: the finder still serves them, a normal import would run the poison.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import _cffi_backend

from conftest import REPO, needs_root
from nsinit import codebundle

POISON = b"raise SystemExit('imported from the source, not the bundle')\n"


def poison(path: Path) -> None:
    st = path.stat()
    if st.st_size < len(POISON):
        return  # too short to hold it (an empty __init__): it does nothing anyway
    path.write_bytes(POISON + b"#" * (st.st_size - len(POISON)))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@needs_root
def test_a_container_with_init_rlimits_and_tmpcopyup_runs_on_the_bundle_alone(
        tmp_path: Path, rootfs: Path, no_residue: None) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "nsinit", tree / "nsinit", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(codebundle.build_command(sys.executable, str(tree)), check=True, capture_output=True, timeout=120)
    # The two the launcher imports the normal way, before the finder is in place.
    first = {tree / "nsinit" / "__init__.py", tree / "nsinit" / "codebundle.py"}
    for source in (tree / "nsinit").rglob("*.py"):
        if source not in first:
            poison(source)
    launcher = tmp_path / "nsinit"
    site = str(Path(_cffi_backend.__file__).parent)
    launcher.write_text(codebundle.launcher(sys.executable, [str(tree), site], "nsinit.cli", "a test"))
    launcher.chmod(0o755)
    config = json.loads((rootfs / "container.json").read_text())
    config["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
    config["mounts"] = [{"type": "tmpfs", "source": "tmpfs", "destination": "/etc", "data": "tmpcopyup,mode=755"}]
    (rootfs / "container.json").write_text(json.dumps(config))
    script = "ulimit -n; cat /etc/hostname >/dev/null && echo copied; cat /proc/1/cmdline | tr '\\0' ' '"
    out = subprocess.run([str(launcher), "--root", str(rootfs), "exec", "--init", "/bin/sh", "-c", script],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (out.returncode, out.stderr) == (0, "")
    limit, copied, init = out.stdout.splitlines()
    assert (limit, copied) == ("512", "copied") and init.startswith("/dev/init -- /bin/sh -c ")
