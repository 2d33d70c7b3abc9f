/*
 * The only C in nsinit: syscalls that Python cannot make, or cannot make
 * safely, from the interpreter.  No policy lives here; every function is a
 * thin wrapper that returns -1 and leaves errno set on failure, and
 * nsinit/_native.py turns that into OSError naming the syscall.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sched.h>

#include "clone.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

struct nsi_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
             stack_size, tls, set_tid, set_tid_size, cgroup;
};

/*
 * fork() into new namespaces.  clone3 with no stack behaves like fork, and
 * unlike clone() it accepts CLONE_NEWTIME.  The interpreter's own fork hooks
 * run around the syscall (as os.fork does) so the child can continue in
 * Python: cffi released the GIL for this call, so we take it back first.
 * nsinit is single-threaded here, so no lock can be held by a thread that
 * does not exist in the child.
 */
static long nsi_clone(uint64_t flags)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    struct nsi_clone_args args;
    long pid;
    int saved;

    memset(&args, 0, sizeof(args));
    args.flags = flags;
    args.exit_signal = SIGCHLD;

    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0 && errno == ENOSYS && !(flags & CLONE_NEWTIME))
        pid = syscall(SYS_clone, (unsigned long)(flags | SIGCHLD), 0, 0, 0, 0);
    saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    errno = saved;
    return pid;
}

static int nsi_setns(int fd, int nstype) { return setns(fd, nstype); }
static int nsi_unshare(int flags) { return unshare(flags); }

static int nsi_mount(const char *source, const char *target, const char *fstype,
                     unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data);
}

static int nsi_umount2(const char *target, int flags) { return umount2(target, flags); }

static int nsi_pivot_root(const char *new_root, const char *put_old)
{
    return syscall(SYS_pivot_root, new_root, put_old);
}

static int nsi_sethostname(const char *name, size_t len) { return sethostname(name, len); }

static int nsi_capget(uint32_t *effective, uint32_t *permitted, uint32_t *inheritable)
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    int i;

    if (syscall(SYS_capget, &hdr, data) < 0)
        return -1;
    for (i = 0; i < 2; i++) {
        effective[i] = data[i].effective;
        permitted[i] = data[i].permitted;
        inheritable[i] = data[i].inheritable;
    }
    return 0;
}

static int nsi_capset(const uint32_t *effective, const uint32_t *permitted,
                      const uint32_t *inheritable)
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    int i;

    for (i = 0; i < 2; i++) {
        data[i].effective = effective[i];
        data[i].permitted = permitted[i];
        data[i].inheritable = inheritable[i];
    }
    return syscall(SYS_capset, &hdr, data);
}

static int nsi_prctl(int option, unsigned long a2, unsigned long a3,
                     unsigned long a4, unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

struct nsi_open_how { uint64_t flags, mode, resolve; };

static int nsi_openat2(int dirfd, const char *path, uint64_t flags,
                       uint64_t mode, uint64_t resolve)
{
    struct nsi_open_how how = { flags, mode, resolve };
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* The filesystem magic of what ``fd`` is on (f_type of fstatfs(2)): Python has no fstatfs. */
static long nsi_fstatfs_type(int fd)
{
    struct statfs st;

    if (fstatfs(fd, &st) < 0)
        return -1;
    return (long)st.f_type;
}

static int nsi_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return syscall(SYS_close_range, first, last, flags);
}

/* keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): join or make a session keyring (no libkeyutils). */
static long nsi_join_session_keyring(const char *name)
{
    return syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, name);
}

/*
 * bpf(2) for the cgroup v2 device controller: load a BPF_PROG_TYPE_CGROUP_DEVICE
 * program (instructions built by nsinit/cgroups/devices.py) and attach it.
 * The verifier's log goes to the caller's buffer.
 */
static int nsi_bpf_load_device_program(const void *insns, unsigned int insn_count,
                                       const char *license, char *log, unsigned int log_size)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insn_cnt = insn_count;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.license = (uint64_t)(uintptr_t)license;
    attr.log_level = log_size ? 1 : 0;
    attr.log_size = log_size;
    attr.log_buf = (uint64_t)(uintptr_t)log;
    strncpy(attr.prog_name, "nsinit_devices", sizeof(attr.prog_name) - 1);
    return syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
}

static int nsi_bpf_attach_device_program(int cgroup_fd, int prog_fd)
{
    union bpf_attr attr;

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = cgroup_fd;
    attr.attach_bpf_fd = prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    return syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr));
}

/*
 * seccomp(2) SECCOMP_SET_MODE_FILTER with a program the parent compiled
 * (nsinit/seccomp/compile.py); with SECCOMP_FILTER_FLAG_NEW_LISTENER the
 * result is the notification fd.
 */
static int nsi_seccomp_set_filter(unsigned int flags, const void *insns, unsigned int insn_count)
{
    struct sock_fprog prog;

    prog.len = (unsigned short)insn_count;
    prog.filter = (struct sock_filter *)insns;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}
