/*
 * The functions of native/clone.c that nsinit/_native.py calls, declared
 * once: clone.c includes this file, so the compiler holds every definition
 * to its prototype, and native/build_clone.py hands the same lines to cffi's
 * cdef (without the preprocessor lines, which cdef does not read).  A new
 * wrapper is declared here and nowhere else.
 */
#ifndef NSINIT_CLONE_H
#define NSINIT_CLONE_H

static long nsi_clone(uint64_t flags);
static int nsi_setns(int fd, int nstype);
static int nsi_unshare(int flags);
static int nsi_mount(const char *source, const char *target, const char *fstype,
                     unsigned long flags, const char *data);
static int nsi_umount2(const char *target, int flags);
static int nsi_pivot_root(const char *new_root, const char *put_old);
static int nsi_sethostname(const char *name, size_t len);
static int nsi_capget(uint32_t *effective, uint32_t *permitted, uint32_t *inheritable);
static int nsi_capset(const uint32_t *effective, const uint32_t *permitted,
                      const uint32_t *inheritable);
static int nsi_prctl(int option, unsigned long a2, unsigned long a3,
                     unsigned long a4, unsigned long a5);
static int nsi_openat2(int dirfd, const char *path, uint64_t flags,
                       uint64_t mode, uint64_t resolve);
static long nsi_fstatfs_type(int fd);
static int nsi_close_range(unsigned int first, unsigned int last, unsigned int flags);
static long nsi_join_session_keyring(const char *name);
static int nsi_bpf_load_device_program(const void *insns, unsigned int insn_count,
                                       const char *license, char *log, unsigned int log_size);
static int nsi_bpf_attach_device_program(int cgroup_fd, int prog_fd);
static int nsi_seccomp_set_filter(unsigned int flags, const void *insns, unsigned int insn_count);

#endif
