/*
 * A static test helper copied into the busybox rootfs: the syscalls busybox
 * cannot make (tests/integration/test_seccomp.py).
 *
 *   syscall call NR [ARG...]  make syscall NR; print "ret=N" or "errno=E"
 *                             (a child of a fork-like clone exits at once)
 *   syscall userns CMD...     unshare user, mount and cgroup namespaces,
 *                             map root to itself, exec CMD
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0)
            perror(path);
        close(fd);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "call") == 0) {
        unsigned long a[6] = {0};
        pid_t self = getpid();
        long nr = strtol(argv[2], NULL, 0), ret;
        int i;

        for (i = 3; i < argc && i < 9; i++)
            a[i - 3] = strtoul(argv[i], NULL, 0);
        ret = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (ret == 0 && getpid() != self)
            _exit(0);
        if (ret < 0) {
            printf("errno=%d\n", errno);
            return 0;  /* the printed result is the answer */
        }
        if (ret > 0 && nr == SYS_clone)
            waitpid(ret, NULL, 0);
        printf("ret=%ld\n", ret);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "userns") == 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP) < 0) {
            printf("unshare: %s\n", strerror(errno));
            return 1;
        }
        put("/proc/self/setgroups", "deny");
        put("/proc/self/uid_map", "0 0 1");
        put("/proc/self/gid_map", "0 0 1");
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        return 127;
    }
    fprintf(stderr, "usage: syscall call NR [ARG...] | syscall userns CMD...\n");
    return 2;
}
