/* knet pod sandbox holder ("pause"), the C twin of pause.py (same argv, same behaviour).
 *
 * argv: pause HOSTNAME NEWNET(0|1)[p] SCRATCH [SOURCE TARGET READONLY(0|1)]...
 * (NEWNET followed by "p": a PID namespace the pod's containers share, shareProcessNamespace)
 * Unshares the mount and IPC namespaces (and network + UTS when NEWNET=1), sets the hostname, brings lo
 * up, bind-mounts every SOURCE on TARGET privately, prints "ok" and then only reaps children.
 * A TARGET missing on the host is made inside the pod only: its nearest existing ancestor gets
 * an overlay whose upper layer is a tmpfs under SCRATCH (pause.py creates it on the host).
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
#include <sys/prctl.h>
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

/* Mount points under `dir` (from /proc/self/mountinfo), in mount order (parents first). */
static int submounts(const char *dir, char out[][4096], int max) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f) return -1;
    char line[8192];
    int n = 0;
    size_t len = strlen(dir);
    while (fgets(line, sizeof line, f) && n < max) {
        char *field = line;
        for (int i = 0; i < 4 && field; i++) field = strchr(field, ' ') ? strchr(field, ' ') + 1 : NULL;
        if (!field) continue;
        char *end = strchr(field, ' ');
        if (!end) continue;
        *end = 0;
        if (strncmp(field, dir, len) == 0 && field[len] == '/') snprintf(out[n++], 4096, "%s", field);
    }
    fclose(f);
    return n;
}

/* Make `target` exist inside this mount namespace only: overlay its nearest existing ancestor
 * (upper layer on a private tmpfs under `scratch`), so the host filesystem is never written.
 * Mounts below that ancestor are bound again on top. Returns 0 when done, -1 to fall back. */
static char overlaid[64][4096];
static int n_overlaid = 0;

static int private_target(const char *target, const char *scratch) {
    char ancestor[4096];
    struct stat st;
    snprintf(ancestor, sizeof ancestor, "%s", target);
    while (stat(ancestor, &st) != 0) {
        char *slash = strrchr(ancestor, '/');
        if (!slash) return -1;
        if (slash == ancestor) { ancestor[1] = 0; break; }
        *slash = 0;
    }
    char real[4096];
    if (!realpath(ancestor, real)) return -1; /* /var/run -> /run: match mountinfo's paths */
    snprintf(ancestor, sizeof ancestor, "%s", real);
    if (strcmp(ancestor, "/") == 0 || !S_ISDIR(st.st_mode)) return -1;
    int done = 0;
    for (int i = 0; i < n_overlaid; i++)
        if (strcmp(overlaid[i], ancestor) == 0) done = 1;
    if (!done) {
        if (n_overlaid >= 64) return -1;
        static char subs[256][4096];
        int n = submounts(ancestor, subs, 256);
        if (n < 0) return -1;
        int fds[256];
        for (int i = 0; i < n; i++) fds[i] = open(subs[i], O_PATH | O_CLOEXEC);
        char layer[4096], upper[4200], work[4200], opts[12800];
        snprintf(layer, sizeof layer, "%s/%d", scratch, n_overlaid);
        mkdirs(layer);
        if (mount("tmpfs", layer, "tmpfs", 0, "mode=0755") != 0) return -1;
        snprintf(upper, sizeof upper, "%s/upper", layer);
        snprintf(work, sizeof work, "%s/work", layer);
        mkdir(upper, 0755);
        mkdir(work, 0755);
        snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", ancestor, upper, work);
        if (mount("overlay", ancestor, "overlay", 0, opts) != 0) return -1;
        for (int i = 0; i < n; i++) {
            char fdpath[64];
            if (fds[i] < 0) continue;
            snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fds[i]);
            mount(fdpath, subs[i], NULL, MS_BIND | MS_REC, NULL);
            close(fds[i]);
        }
        snprintf(overlaid[n_overlaid++], 4096, "%s", ancestor);
    }
    return 0;
}

static void noop(int sig) { (void)sig; }
static void quit(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
    if (argc < 4 || (argc - 4) % 3 != 0) {
        printf("error: usage: pause HOSTNAME NEWNET SCRATCH [SRC DST RO]...\n");
        return 2;
    }
    const char *scratch = argv[3];
    int new_net = argv[2][0] == '1';
    int new_pid = strchr(argv[2], 'p') != NULL; /* "1p"/"0p": a PID namespace for the pod */
    /* IPC always: the pod's containers share it (a hostIPC pod's containers join the node's). */
    int flags = CLONE_NEWNS | CLONE_NEWIPC | (new_net ? CLONE_NEWNET | CLONE_NEWUTS : 0);
    if (unshare(flags | (new_pid ? CLONE_NEWPID : 0)) != 0) fail("unshare", NULL);
    if (new_pid) {
        /* The namespace's PID 1 (what `ps` in a shareProcessNamespace pod shows as 1): it only
         * reaps, and dies with us; containers join it through our ns/pid_for_children. */
        pid_t init = fork();
        if (init < 0) fail("fork", NULL);
        if (init == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0);
            dup2(null, 1); /* the kubelet's pipe stays its parent's only */
            signal(SIGCHLD, noop);
            for (;;) {
                if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) pause();
            }
        }
    }
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
    /* Sources first (an overlay may cover their path), then make missing targets privately,
     * then bind. */
    int srcfd[512];
    for (int i = 4; i + 2 < argc && (i - 4) / 3 < 512; i += 3) {
        srcfd[(i - 4) / 3] = open(argv[i], O_PATH | O_CLOEXEC);
        if (srcfd[(i - 4) / 3] < 0) fail("open", argv[i]);
    }
    for (int i = 4; i + 2 < argc; i += 3) {
        struct stat st;
        if (stat(argv[i + 1], &st) != 0 && private_target(argv[i + 1], scratch) != 0) {
            ensure_target(argv[i], argv[i + 1]); /* no overlay possible: create it on the host */
        }
        ensure_target(argv[i], argv[i + 1]);
    }
    for (int i = 4; i + 2 < argc; i += 3) {
        char fdpath[64];
        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", srcfd[(i - 4) / 3]);
        if (mount(fdpath, argv[i + 1], NULL, MS_BIND, NULL) != 0) fail("bind", argv[i + 1]);
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
