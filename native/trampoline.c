/*
 * nsinit's exec trampoline: the last program the container's process runs
 * before its command, and the only one it can reach through /proc/self/exe.
 *
 * The container's init and joined processes are forks of nsinit's Python.
 * Had they exec'd the command directly, a command "/proc/self/exe" (or a
 * "#!/proc/self/exe" script) would run the host's interpreter inside the
 * container with an fd on the host binary (CVE-2019-5736).  Instead the
 * child execs this program from a sealed memfd copy (nsinit/trampoline.py),
 * and this program execs the command: at the command's execve,
 * /proc/self/exe is the sealed copy, which no one can write.
 *
 *   argv: [anything, REPORT_FD, PATH, command argv...]
 *
 * REPORT_FD (nsinit's sync socket) is marked close-on-exec, so a successful
 * execve closes it and the supervisor reads EOF; a failed one sends
 * {"exec_errno":N} on it, and the supervisor says what failed (policy is
 * in Python).  No libc: a few hundred bytes to copy on every start.
 */
#include <asm/unistd.h>
#include <linux/fcntl.h>

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n  hlt\n");

static long sys3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n  mov x0, sp\n  bl start_c\n  brk #0\n");

static long sys3(long nr, long a, long b, long c)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#else
#error "nsinit's trampoline knows the syscall convention of x86_64 and aarch64 only"
#endif

static void say(int fd, const char *text, long len) { sys3(__NR_write, fd, (long)text, len); }

static __attribute__((noreturn)) void leave(int status)
{
    for (;;)
        sys3(__NR_exit_group, status, 0, 0);
}

__attribute__((noreturn, used)) void start_c(long *sp)
{
    static const char usage[] = "nsinit's exec trampoline: not a command\n";
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    static char msg[32] = "{\"exec_errno\":";
    long fd = 0, err, n = 14, i;
    char digits[12];
    const char *p;

    if (argc < 4)
        goto not_ours;
    for (p = argv[1]; *p; p++) {
        if (*p < '0' || *p > '9' || fd > 65535)
            goto not_ours;
        fd = fd * 10 + (*p - '0');
    }
    if (p == argv[1] || sys3(__NR_fcntl, fd, F_SETFD, FD_CLOEXEC) < 0)
        goto not_ours;
    err = -sys3(__NR_execve, (long)argv[2], (long)(argv + 3), (long)envp);
    for (i = 0; err > 0 || i == 0; err /= 10)
        digits[i++] = (char)('0' + err % 10);
    while (i > 0)
        msg[n++] = digits[--i];
    msg[n++] = '}';
    say((int)fd, msg, n);
    leave(127);
not_ours:
    say(2, usage, sizeof(usage) - 1);
    leave(127);
}
