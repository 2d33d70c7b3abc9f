"""The launchers' code bundle (nsinit/codebundle.py): nsinit's modules
compiled ahead into one file, served only while their sources are unchanged.

Each test copies the package into a directory of its own (the bundle records
the paths it was built from), builds the bundle there with the command
scripts/install runs, and imports in a fresh ``python3 -I -S``, the way the
launchers start.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
from typing import Any

import _cffi_backend
import pytest

from nsinit import codebundle

REPO = pathlib.Path(__file__).resolve().parents[2]
SITE = str(pathlib.Path(_cffi_backend.__file__).parent)  # cffi's backend, for nsinit._native

# What the probe reports of a module: everything an importer can see of where it came from.
DESCRIBE = """
import importlib, importlib.resources, inspect, json, sys, traceback
def describe(name):
    module = importlib.import_module(name)
    return {"loader": type(module.__spec__.loader).__name__, "file": module.__file__,
            "origin": module.__spec__.origin, "cached": module.__cached__, "parent": module.__spec__.parent,
            "path": getattr(module, "__path__", None), "package": module.__package__,
            "source_is_the_file": inspect.getsource(module) == open(module.__file__).read()}
"""


def copy_tree(tmp_path: pathlib.Path) -> pathlib.Path:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "nsinit", tree / "nsinit", ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def build(tree: pathlib.Path) -> pathlib.Path:
    subprocess.run(codebundle.build_command(sys.executable, str(tree)), check=True, capture_output=True, timeout=120)
    return bundle_path(tree)


def bundle_path(tree: pathlib.Path) -> pathlib.Path:
    return tree / "nsinit" / "__pycache__" / f"nsinit.{sys.implementation.cache_tag}.codebundle"


def probe(tree: pathlib.Path, code: str, *, bundle: bool = True) -> Any:
    """Run ``code`` in a fresh isolated interpreter with ``tree`` first on
    sys.path (and the bundle's finder installed, as the launchers do); what it
    prints last, decoded from JSON."""
    # Two lines either way: the tracebacks' line numbers in the script agree.
    start = "from nsinit.codebundle import install\nfinder = install()\n" if bundle else "finder = None\n\n"
    script = f"import sys\nsys.path[:0] = [{str(tree)!r}, {SITE!r}]\n{start}{DESCRIBE}{code}"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A tree of one's own, its bundle built: for a test that changes the sources."""
    tree = copy_tree(tmp_path)
    build(tree)
    return tree


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, bytes]:
    tree = copy_tree(tmp_path_factory.mktemp("shared"))
    return tree, build(tree).read_bytes()


@pytest.fixture
def shared(built: tuple[pathlib.Path, bytes]) -> pathlib.Path:
    """The module's tree, its sources untouched, its bundle as built (a test may damage it)."""
    tree, data = built
    path = bundle_path(tree)
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)
    return tree


MODULES = ["nsinit.container", "nsinit.oci", "nsinit.oci.cli", "nsinit.criu", "nsinit.criu.messages",
           "nsinit.config", "nsinit.jsontext", "nsinit.lifecycle.create", "nsinit.child"]


def test_a_served_module_is_the_one_the_normal_import_gives(shared: pathlib.Path) -> None:
    tree = shared
    code = f"""
import nsinit.jsontext
try:
    nsinit.jsontext.loads('{{"a": [1,')
except ValueError as error:
    frames = [(f.filename, f.lineno, f.line) for f in traceback.extract_tb(error.__traceback__)]
import nsinit.criu.messages
proto = importlib.resources.files("nsinit.criu").joinpath("rpc.proto").read_text()
print(json.dumps({{"modules": {{name: describe(name) for name in {MODULES!r}}}, "frames": frames,
                  "proto": proto == open(nsinit.criu.messages.PROTO_FILE).read(),
                  "value": nsinit.jsontext.loads('{{"a": [1, "x"]}}')}}))
"""
    served, normal = probe(tree, code), probe(tree, code, bundle=False)
    for name in MODULES:
        assert served["modules"][name].pop("loader") == "BundleLoader", name
        assert normal["modules"][name].pop("loader") == "SourceFileLoader", name
    assert served == normal
    assert served["modules"]["nsinit.oci"]["path"] == [str(tree / "nsinit" / "oci")]
    assert served["modules"]["nsinit.container"]["file"] == str(tree / "nsinit" / "container.py")
    assert all(m["source_is_the_file"] for m in served["modules"].values())
    # The traceback names the real file and shows its line.
    jsontext = [frame for frame in served["frames"] if frame[0] == str(tree / "nsinit" / "jsontext.py")]
    assert jsontext and all(line for _, _, line in jsontext)
    assert served["proto"] is True and served["value"] == {"a": [1, "x"]}


def test_what_the_finder_costs_to_import_is_itself() -> None:
    # The launchers import it before anything else: it must bring nothing along
    # (importlib.machinery would load importlib and warnings, ~0.5 ms) but
    # __future__, which every nsinit module imports anyway.
    code = ("import sys, os, stat\nsys.path[:0] = [{repo!r}]\nbefore = set(sys.modules)\n"
            "from nsinit.codebundle import install\ninstall()\nprint(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code.format(repo=str(REPO))],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["['__future__',", "'nsinit',", "'nsinit.codebundle']"]


def edit(path: pathlib.Path) -> None:
    with path.open("a") as file:
        file.write("EDITED = True\n")


def touch(path: pathlib.Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))


@pytest.mark.parametrize("change", [edit, touch], ids=lambda change: change.__name__)
def test_a_changed_source_is_imported_from_the_source(tree: pathlib.Path, change: Any) -> None:
    change(tree / "nsinit" / "jsontext.py")
    found = probe(tree, "import nsinit.jsontext, nsinit.record\n"
                        "print(json.dumps([describe('nsinit.jsontext'), describe('nsinit.record'),"
                        " getattr(nsinit.jsontext, 'EDITED', False)]))")
    changed, unchanged, edited = found
    assert changed["loader"] == "SourceFileLoader" and unchanged["loader"] == "BundleLoader"
    assert edited is (change is edit)


def test_a_removed_source_is_not_served(tree: pathlib.Path) -> None:
    (tree / "nsinit" / "mountinfo.py").unlink()
    found = probe(tree, "try:\n    import nsinit.mountinfo\nexcept ImportError as e:\n    print(json.dumps(type(e).__name__))")
    assert found == "ModuleNotFoundError"  # as without a bundle


def flip(offset: int) -> Any:
    def damage(path: pathlib.Path) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
    damage.__name__ = f"byte {offset} flipped"
    return damage


def truncate(size: int) -> Any:
    def damage(path: pathlib.Path) -> None:
        path.write_bytes(path.read_bytes()[:size])
    damage.__name__ = f"truncated to {size}"
    return damage


def chmod(mode: int) -> Any:
    def damage(path: pathlib.Path) -> None:
        path.chmod(mode)
    damage.__name__ = f"mode {mode:o}"
    return damage


def another_owner(path: pathlib.Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: gives the bundle to another user")
    os.chown(path, 65534, 65534)  # nobody


def another_trees(path: pathlib.Path) -> None:
    # A bundle is its tree's: a copy of the tree keeps the mtimes, not the paths.
    shutil.rmtree(path.parents[3] / "other", ignore_errors=True)
    other = copy_tree(path.parents[3] / "other")
    shutil.copyfile(build(other), path)


def removed(path: pathlib.Path) -> None:
    path.unlink()


HEADER = len(codebundle.HEADER)
DAMAGE = [removed, truncate(0), truncate(HEADER - 1), truncate(HEADER + 6), truncate(-100), flip(0), flip(HEADER - 2),
          flip(HEADER + 1), flip(-1), chmod(0o666), chmod(0o664), another_owner, another_trees]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__)
def test_an_unusable_bundle_means_normal_imports(shared: pathlib.Path, damage: Any) -> None:
    tree = shared
    damage(bundle_path(tree))
    found = probe(tree, "print(json.dumps([finder is None, describe('nsinit.container')['loader']]))")
    assert found == [True, "SourceFileLoader"]
    # And nsinit runs, as ever: one line for an id nobody has, no traceback.
    runc = tree / "nsinit-runc"
    runc.write_text(codebundle.launcher(sys.executable, [str(tree), SITE], "nsinit.oci.cli", "a test"))
    runc.chmod(0o755)
    out = subprocess.run([str(runc), "--root", str(tree / "state"), "state", "nobody"],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (1, 'nsinit-runc: state: container "nobody" does not exist\n')


def test_a_module_whose_code_does_not_read_is_compiled_from_its_source(shared: pathlib.Path) -> None:
    tree = shared
    # The index is intact, one module's code object is not: its loader falls
    # back to the normal way (its .pyc, or its source).
    offset, length = probe(tree, "print(json.dumps(finder.modules['nsinit.jsontext'][4:6]))")
    path = bundle_path(tree)
    data = bytearray(path.read_bytes())
    data[offset:offset + length] = b"\0" * length
    path.write_bytes(bytes(data))
    found = probe(tree, "import nsinit.jsontext\n"
                        "print(json.dumps([describe('nsinit.jsontext')['loader'], nsinit.jsontext.loads('[1]')]))")
    assert found == ["BundleLoader", [1]]


PROBE_ENTRY = '''"""A launcher's entry point for tests/unit/test_codebundle.py."""
import json, sys


def run() -> None:
    from nsinit import cli
    args = cli.parse_plain_exec(cli.protect_command(["--root", sys.argv[1], "exec", "/bin/true"]))
    from nsinit.container import Container
    Container.load(args["--root"], args["--config"])
    import nsinit.child, nsinit.lifecycle.create, nsinit.mount, nsinit.network, nsinit.identity, nsinit.capabilities
    print(json.dumps({name: type(module.__spec__.loader).__name__
                      for name, module in sys.modules.items()
                      if name.startswith("nsinit") and module.__spec__}))  # cffi's nsinit._clone.lib has none
'''


def test_the_launcher_serves_nsinit_from_the_bundle(tree: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from nsinit.demo_rootfs import DEFAULT_ROOTFS_CONFIG

    (tree / "nsinit" / "_launcher_probe.py").write_text(PROBE_ENTRY)
    build(tree)
    launcher = tree / "nsinit-probe"
    launcher.write_text(codebundle.launcher(sys.executable, [str(tree), SITE], "nsinit._launcher_probe", "a test"))
    launcher.chmod(0o755)
    (tmp_path / "container.json").write_text(json.dumps(DEFAULT_ROOTFS_CONFIG))
    out = subprocess.run([str(launcher), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaders = json.loads(out.stdout)
    # The package and this module come first, the normal way; the extension
    # modules are not Python; everything else is the bundle's.
    assert loaders.pop("nsinit") == loaders.pop("nsinit.codebundle") == "SourceFileLoader"
    assert {loaders.pop(name) for name in ("nsinit._clone",)} == {"ExtensionFileLoader"}
    assert len(loaders) >= 30 and set(loaders.values()) == {"BundleLoader"}, loaders


def test_the_bundle_is_written_whole_and_only_its_owner_may_write_it(tmp_path: pathlib.Path) -> None:
    tree = copy_tree(tmp_path)
    old_umask = os.umask(0)
    try:
        path = build(tree)
    finally:
        os.umask(old_umask)
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.geteuid()
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert path.read_bytes().startswith(codebundle.HEADER)
