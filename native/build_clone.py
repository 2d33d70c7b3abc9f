"""cffi (API mode) build script for native/clone.c -> nsinit._clone; run as a
script, it also builds native/trampoline.c -> nsinit/_trampoline.

Built without the limited API on purpose: PyOS_BeforeFork and friends,
which nsi_clone needs to keep the interpreter consistent in the child,
are not part of it.
"""
from __future__ import annotations

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent


def declarations(header: str) -> str:
    """clone.h as cffi's cdef reads it: the prototypes without the include guard."""
    return "\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(declarations((HERE / "clone.h").read_text()))
ffibuilder.set_source(
    "nsinit._clone",
    (HERE / "clone.c").read_text(),
    py_limited_api=False,
    # cffi defines Py_LIMITED_API by default; this keeps the full API.
    define_macros=[("_CFFI_NO_LIMITED_API", None)],
    include_dirs=[str(HERE)],   # clone.h
    # Warnings fail the build: the helper is small enough to keep at zero.
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"],
)

# native/trampoline.c -> nsinit/_trampoline: static, no libc, about 1 KB
# (copied into a memfd on every start, see nsinit/trampoline.py).
TRAMPOLINE_FLAGS = [
    "-Os", "-static", "-nostdlib", "-no-pie", "-ffreestanding", "-fno-builtin",
    "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
    "-Wall", "-Wextra", "-Werror",
    "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-z,noseparate-code", "-s",
]


def build_trampoline(target: pathlib.Path) -> None:
    import os
    import subprocess

    scratch = target.with_name(target.name + ".new")
    compiler = os.environ.get("CC", "gcc")
    subprocess.run([compiler, *TRAMPOLINE_FLAGS, "-o", str(scratch), str(HERE / "trampoline.c")],
                   check=True)
    scratch.replace(target)  # atomic: a container starting now reads the old or the new one


if __name__ == "__main__":
    import tempfile

    # Build in a scratch dir, then keep only the shared object in nsinit/.
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        built = ffibuilder.compile(tmpdir=tmp, verbose=False)
        shutil.copy(built, HERE.parent / "nsinit" / pathlib.Path(built).name)
    build_trampoline(HERE.parent / "nsinit" / "_trampoline")
