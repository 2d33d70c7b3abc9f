"""nsinit's modules compiled ahead into one file, served while their sources are unchanged.

Every ``nsinit exec`` and every nsinit-runc command is a fresh interpreter,
and for each module it imports the import system does work of its own in
Python code besides unmarshalling the module's code: the path finder's search
of sys.path and of each package's directory, its stat calls, reading and
validating the .pyc.  So scripts/install compiles every ``nsinit/**/*.py``
into one file beside the package (``build``), and the launchers put a
``BundleFinder`` first on ``sys.meta_path`` (``install``) before they import
the rest of nsinit: one stat of the source and one read of the bundle per
module instead, ~2 ms of CPU less per ``nsinit exec`` here.

The finder answers for a module only while its source file's size and
mtime_ns are what the bundle recorded; otherwise it returns None and the
normal import finds the source: editing a file always takes effect.  A
missing, corrupt, foreign-version or untrusted bundle only means normal
imports, silently.  A served module is a normal one: its loader is a
``SourceFileLoader`` of the real file that takes only its code from the
bundle, so ``__file__``, ``__spec__``, ``__path__``, ``__cached__``,
tracebacks, ``inspect.getsource`` and ``importlib.resources`` are the
source file's.  A pip-installed nsinit has no launcher and no bundle: it
imports the normal way.  docs/DEVELOPING.md, "The start-up dialect", has
the numbers.
"""
from __future__ import annotations

import marshal
import os
import stat
import sys

# importlib.machinery's own classes (it re-exports them): importing it would
# load importlib and warnings, ~0.5 ms of the start this module is for.
from _frozen_importlib import ModuleSpec
from _frozen_importlib_external import MAGIC_NUMBER, SourceFileLoader
from _imp import extension_suffixes

TYPE_CHECKING = False  # mypy reads it as True; importing typing costs every container ~5 ms
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import CodeType, ModuleType

    # (source path, its size, its mtime_ns, is a package, offset, length of its
    # code, its __cached__)
    Entry = tuple[str, int, int, bool, int, int, str]

PACKAGE = __name__.rpartition(".")[0]  # "nsinit"
PACKAGE_DIR = os.path.dirname(__file__)
# The file: HEADER, where the index starts (4 bytes, little-endian), each
# module's marshalled code object, the marshalled index last (so a
# truncated file has none).  The interpreter's bytecode version
# (importlib.util.MAGIC_NUMBER) comes first, as in a .pyc: another
# CPython's bundle is never read (nor any other file of this name).
HEADER = MAGIC_NUMBER + b" nsinit codebundle 2\n"
_OFFSET_SIZE = 4


def default_path() -> str | None:
    """Where this interpreter's bundle of this tree lives: with the .pyc files
    (git-ignored), named by the cache tag as they are (cpython-311)."""
    tag = sys.implementation.cache_tag
    if not tag:  # None: an implementation that caches no bytecode (typeshed says str)
        return None
    return os.path.join(PACKAGE_DIR, "__pycache__", f"{PACKAGE}.{tag}.codebundle")


def install(path: str | None = None) -> BundleFinder | None:
    """Serve this package's modules from the bundle at ``path`` (this
    interpreter's, by default), first on ``sys.meta_path``; the finder, or
    None if there is no usable bundle (then imports are the normal ones)."""
    path = path or default_path()
    finder = BundleFinder.open(path) if path else None
    if finder is not None:
        sys.meta_path.insert(0, finder)
    return finder


def _trusted(st: os.stat_result) -> bool:
    """Whether the bundle may be run.

    Its code runs as whoever runs nsinit, root included, so it is trusted
    exactly as the .pyc files beside it are: scripts/install writes it as
    root in the same tree, and whoever could replace it could replace the
    sources too.  CPython checks nothing on a .pyc; one fstat here refuses
    the plain mistakes: a file owned by anyone but root (who installs) or
    the caller (whose own file gives them nothing they could not run
    anyway), or one its group or everyone may write (a world-writable
    __pycache__'s hole).  The open file is checked, not the path, so a swap
    after the check gains nothing, and each later read checks that it is
    still the same file (``_identity``).
    """
    return (stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid())
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    # A rebuild is a new inode (rename), an edit in place a new mtime and
    # size: either way the index read at install no longer describes it.
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _modules(index: object) -> dict[str, Entry] | None:
    """The index's modules, if it is one of this tree's, for this optimisation level.

    Its entries are checked where they are used (``find_spec``): a check of
    all of them here would cost every start ~0.1 ms, for the ~50 it uses.
    """
    if not (type(index) is tuple and len(index) == 4):
        return None
    root, optimize, pycache_prefix, modules = index
    if root != PACKAGE_DIR or optimize != sys.flags.optimize or type(modules) is not dict:
        return None  # another tree's (a copy keeps its mtimes) or another -O's
    if pycache_prefix != sys.pycache_prefix:
        return None  # the __cached__ paths it holds are another prefix's
    return modules


class BundleFinder:
    """The meta-path finder for the modules one bundle holds."""

    def __init__(self, path: str, identity: tuple[int, int, int, int], modules: dict[str, Entry]) -> None:
        self.path = path
        self.identity = identity
        self.modules = modules

    @classmethod
    def open(cls, path: str) -> BundleFinder | None:
        """The finder for the bundle at ``path``, or None if it is missing,
        untrusted, of another interpreter or tree, or unreadable."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # never built (a pip install, a fresh checkout) or removed: normal imports
        try:
            st = os.fstat(fd)
            if not _trusted(st):
                return None
            head = os.pread(fd, len(HEADER) + _OFFSET_SIZE, 0)
            if head[:len(HEADER)] != HEADER:
                return None  # another CPython's (or not a bundle): its code would not run here
            start = int.from_bytes(head[len(HEADER):], "little")
            modules = _modules(marshal.loads(os.pread(fd, st.st_size - start, start)))
        except (OSError, EOFError, ValueError, TypeError):
            return None  # truncated or corrupt: the sources are still there
        finally:
            os.close(fd)
        if modules is None:
            return None
        return cls(path, _identity(st), modules)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        # ``path`` (the parent's __path__) is not needed: the bundle holds this
        # package's modules by their full names, and a parent is this tree's
        # (``nsinit`` itself is imported before the finder is installed).
        entry = self.modules.get(fullname)
        if entry is None:
            return None  # not one of ours (the stdlib, pyroute2, an extension module)
        try:
            origin, size, mtime_ns, is_package, offset, length, cached = entry
            st = os.stat(origin) if type(origin) is str and type(cached) is str else None
        except (TypeError, ValueError):
            return None  # a corrupt entry, though marshal could read it
        except OSError:
            return None  # removed since: whatever the normal import finds, or its error
        if st is None or st.st_size != size or st.st_mtime_ns != mtime_ns:
            return None  # edited since the install: the normal import reads the new source
        # (A corrupt offset or length only fails the read: BundleLoader.get_code.)
        spec = ModuleSpec(fullname, BundleLoader(fullname, origin, self, offset, length),
                          origin=origin, is_package=is_package)
        spec.has_location = True  # __file__ and __cached__, as the path finder sets them
        # The import system's own cache_from_source, run at build time: ~5 µs a module.
        spec.cached = cached
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        return spec

    def code(self, offset: int, length: int, filename: str) -> CodeType | None:
        """The code object compiled from ``filename``, or None if the bundle
        no longer reads as it did."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _identity(os.fstat(fd)) != self.identity:
                    return None  # rebuilt or rewritten since install: the offsets are stale
                code = marshal.loads(os.pread(fd, length, offset))
            finally:
                os.close(fd)
        except (OSError, EOFError, ValueError, TypeError):
            return None  # the loader compiles the source instead
        # Never another module's code, whatever the damage.
        return code if type(code) is _CODE and code.co_filename == filename else None


_CODE = type(_identity.__code__)  # types.CodeType, without importing types


class BundleLoader(SourceFileLoader):
    """A source file's loader whose code comes from the bundle.

    Everything else is ``SourceFileLoader``'s, for the real file: get_source
    (inspect, linecache), get_resource_reader (importlib.resources),
    get_filename, is_package.  The code was compiled from that file, under
    its path, so tracebacks name it and its lines.
    """

    def __init__(self, fullname: str, path: str, finder: BundleFinder, offset: int, length: int) -> None:
        super().__init__(fullname, path)
        self.finder = finder
        self.offset = offset
        self.length = length

    def get_code(self, fullname: str) -> CodeType | None:
        code = self.finder.code(self.offset, self.length, self.path) if fullname == self.name else None
        # The bundle did not read (corrupt, replaced): the normal way, its .pyc or source.
        return code if code is not None else super().get_code(fullname)


# --- building it: scripts/install, as root, with the launchers' interpreter ---------------


def _sources() -> Iterator[tuple[str, str, bool]]:
    """(module name, source path, is a package) for every module of the
    package the normal import would load from a .py file."""
    for directory, subdirs, files in os.walk(PACKAGE_DIR):
        # Only regular packages: the import system finds nothing else of ours.
        subdirs[:] = sorted(d for d in subdirs if os.path.isfile(os.path.join(directory, d, "__init__.py")))
        relative = os.path.relpath(directory, PACKAGE_DIR)
        prefix = PACKAGE if relative == "." else PACKAGE + "." + relative.replace(os.sep, ".")
        for file in sorted(files):
            stem, ext = os.path.splitext(file)
            if ext != ".py":
                continue
            if stem == "__init__":
                yield prefix, os.path.join(directory, file), True
                continue
            # The path finder prefers a package of that name, then an
            # extension module (scripts/install builds those first).
            if stem in subdirs or any(stem + suffix in files for suffix in extension_suffixes()):
                continue
            yield f"{prefix}.{stem}", os.path.join(directory, file), False


def build(path: str | None = None) -> int:
    """Compile every module of the package into the bundle at ``path``
    (this interpreter's, by default), replacing it atomically; how many
    modules it holds."""
    path = path or default_path()
    if path is None:
        raise OSError("this Python caches no bytecode (sys.implementation.cache_tag is None)")
    from importlib.util import cache_from_source  # build time only

    modules: dict[str, Entry] = {}
    blobs = []
    offset = len(HEADER) + _OFFSET_SIZE
    for name, source_path, is_package in _sources():
        with open(source_path, "rb") as file:
            # Stat before the read: a write meanwhile leaves a newer mtime than
            # the one recorded, so the finder steps aside, never serves stale code.
            st = os.fstat(file.fileno())
            source = file.read()
        try:
            code = compile(source, source_path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            continue  # left to the normal import, which reports it as ever
        blob = marshal.dumps(code)
        modules[name] = (source_path, st.st_size, st.st_mtime_ns, is_package, offset, len(blob),
                         cache_from_source(source_path))
        blobs.append(blob)
        offset += len(blob)
    index = marshal.dumps((PACKAGE_DIR, sys.flags.optimize, sys.pycache_prefix, modules))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # A temporary name and a rename: a launcher starting meanwhile reads the
    # old bundle or the new one, never half of one.
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # whatever the umask: _trusted refuses group- or world-writable
            file.write(HEADER + offset.to_bytes(_OFFSET_SIZE, "little"))
            file.writelines(blobs)
            file.write(index)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass  # never created
        raise
    return len(modules)


def build_command(python: str, tree: str) -> list[str]:
    """The command that builds the bundle of the package in ``tree``:
    with the launchers' interpreter (their bytecode version) and ``tree``
    first on sys.path as theirs is (the source paths it records are the
    ones they import)."""
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; from nsinit import codebundle; "
            "print(f'nsinit: {codebundle.build()} modules compiled into {codebundle.default_path()}')")
    return [python, "-I", "-S", "-c", code, tree]


# --- the launchers: scripts/install's, and tests/integration/_engines.py's for the tree under test ---


def launcher(python: str, paths: Sequence[str], entry: str, written_by: str) -> str:
    """The text of a launcher that runs ``entry``'s ``run`` (nsinit.cli,
    nsinit.oci.cli) with ``python``: isolated mode (the host's PYTHON*
    variables and user site-packages cannot change what runs as root), no
    site module (no .pth files), ``paths`` first on sys.path, the collector
    off for start-up (nsinit/__main__.py says why), and the bundle's finder
    installed before anything but this module and the package's
    ``__init__`` is imported."""
    return (f"#!{python} -IS\n"
            f"# Written by {written_by}: isolated mode, no site module.\n"
            "import gc\n"
            "gc.disable()  # for start-up only: see nsinit/__main__.py\n"
            "import sys\n"
            f"sys.path[:0] = {list(paths)!r}\n"
            "from nsinit.codebundle import install\n"
            "install()  # nsinit's modules compiled ahead, while their sources are unchanged\n"
            f"from {entry} import run\n"
            "run()\n")
