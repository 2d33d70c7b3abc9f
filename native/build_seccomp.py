"""cffi (API mode) build script for libseccomp -> nsinit.seccomp._seccomp.

A second module, apart from nsinit._clone, so that only a container with a
seccomp filter loads libseccomp (and its ~150 KiB of syscall tables): the
parent compiles the filter with it before clone; the child loads the
compiled program with seccomp(2) through nsinit._clone and never needs it.
Nothing but libseccomp's own functions is declared: all policy (which rule,
which action) lives in nsinit/seccomp/.
"""
from __future__ import annotations

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent

ffibuilder = FFI()
ffibuilder.cdef(
    """
    typedef void *scmp_filter_ctx;
    enum scmp_compare { SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ,
                        SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ, ... };
    enum scmp_filter_attr { SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP,
                            SCMP_FLTATR_CTL_OPTIMIZE, ... };
    struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op;
                          uint64_t datum_a; uint64_t datum_b; };
    struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };

    const struct scmp_version *seccomp_version(void);
    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
    uint32_t seccomp_arch_native(void);
    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                               unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
    """
)
ffibuilder.set_source(
    "nsinit.seccomp._seccomp",
    "#include <seccomp.h>",
    libraries=["seccomp"],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    import shutil
    import tempfile

    # Build in a scratch dir, then keep only the shared object in nsinit/seccomp/.
    with tempfile.TemporaryDirectory() as tmp:
        built = ffibuilder.compile(tmpdir=tmp, verbose=False)
        shutil.copy(built, HERE.parent / "nsinit" / "seccomp" / pathlib.Path(built).name)
