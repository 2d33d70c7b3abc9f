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

ffibuilder = FFI()
ffibuilder.cdef(
    """
    long nsi_clone(uint64_t flags);
    int nsi_setns(int fd, int nstype);
    int nsi_unshare(int flags);
    int nsi_mount(const char *source, const char *target, const char *fstype,
                  unsigned long flags, const char *data);
    int nsi_umount2(const char *target, int flags);
    int nsi_pivot_root(const char *new_root, const char *put_old);
    int nsi_sethostname(const char *name, size_t len);
    int nsi_capget(uint32_t *effective, uint32_t *permitted, uint32_t *inheritable);
    int nsi_capset(const uint32_t *effective, const uint32_t *permitted,
                   const uint32_t *inheritable);
    int nsi_prctl(int option, unsigned long a2, unsigned long a3,
                  unsigned long a4, unsigned long a5);
    int nsi_openat2(int dirfd, const char *path, uint64_t flags,
                    uint64_t mode, uint64_t resolve);
    long nsi_fstatfs_type(int fd);
    int nsi_close_range(unsigned int first, unsigned int last, unsigned int flags);
    int nsi_bpf_load_device_program(const void *insns, unsigned int insn_count,
                                    const char *license, char *log, unsigned int log_size);
    int nsi_bpf_attach_device_program(int cgroup_fd, int prog_fd);
    """
)
ffibuilder.set_source(
    "nsinit._clone",
    (HERE / "clone.c").read_text(),
    py_limited_api=False,
    # cffi defines Py_LIMITED_API by default; this keeps the full API.
    define_macros=[("_CFFI_NO_LIMITED_API", None)],
    extra_compile_args=["-O2", "-Wall"],
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
