/* knet pod sandbox holder ("pause"), the C twin of pause.py (same argv, same behaviour).
 *
 * argv: pause HOSTNAME NEWNET(0|1) [SOURCE TARGET READONLY(0|1)]...
 * Unshares the mount namespace (and network + UTS when NEWNET=1), sets the hostname, brings lo
 * up, bind-mounts every SOURCE on TARGET privately, prints "ok" and then only reaps children.
 * Built by the kubelet on first use when a C compiler exists; pause.py is used otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char *what, const char *arg) {
    printf("error: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    fflush(stdout);
    exit(1);
}

static void mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

static void ensure_target(const char *source, const char *target) {
    struct stat st;
    if (stat(target, &st) == 0) return;
    if (stat(source, &st) == 0 && S_ISDIR(st.st_mode)) {
        mkdirs(target);
        return;
    }
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", target);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        mkdirs(parent);
    }
    int fd = open(target, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
}

static void noop(int sig) { (void)sig; }
static void quit(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
    if (argc < 3 || (argc - 3) % 3 != 0) {
        printf("error: usage: pause HOSTNAME NEWNET [SRC DST RO]...\n");
        return 2;
    }
    int new_net = strcmp(argv[2], "1") == 0;
    int flags = CLONE_NEWNS | (new_net ? CLONE_NEWNET | CLONE_NEWUTS : 0);
    if (unshare(flags) != 0) fail("unshare", NULL);
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("make-rprivate", "/");
    if (new_net) {
        if (sethostname(argv[1], strlen(argv[1])) != 0) fail("sethostname", argv[1]);
        int sock = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) fail("lo", "get flags");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) fail("lo", "up");
        close(sock);
    }
    for (int i = 3; i + 2 < argc; i += 3) {
        ensure_target(argv[i], argv[i + 1]);
        if (mount(argv[i], argv[i + 1], NULL, MS_BIND, NULL) != 0) fail("bind", argv[i + 1]);
        if (strcmp(argv[i + 2], "1") == 0 &&
            mount("none", argv[i + 1], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0)
            fail("remount ro", argv[i + 1]);
    }
    printf("ok\n");
    fflush(stdout);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    signal(SIGTERM, quit);
    signal(SIGCHLD, noop);
    for (;;) {
        if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) pause();
    }
}
