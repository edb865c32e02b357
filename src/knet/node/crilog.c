/* knet container log writer: containerd's per-container log redirection (pkg/cri/io/logger.go)
 * as a small process, the C twin of crilogwriter.py (same argv, same output).
 *
 * argv: crilog [-g] LOGFILE MAXLEN COMMAND [ARG]...
 * Runs COMMAND with its stdout and stderr on two pipes and appends every line it prints to LOGFILE
 * in the CRI log format, stamped when it is read:
 *     <RFC3339Nano UTC time> <stdout|stderr> <F|P> <text>\n
 * F: a whole line (its "\n" or "\r\n" dropped); P: a partial one, either MAXLEN bytes of a longer
 * line (as containerd's max_container_log_line_size, 16384) or what a stream held when it closed
 * without a newline. Each record is one write() to an O_APPEND file, so the two streams interleave
 * by whole records. Exits as COMMAND did (the same code, or the same signal) once both pipes are
 * drained; a background process still holding them after COMMAND ended gets DRAIN_MS more.
 * It ignores SIGTERM/SIGINT/SIGHUP/SIGQUIT (a signal to the process group reaches COMMAND, whose
 * dispositions are reset) so that it outlives COMMAND long enough to write its last words.
 * -g: start COMMAND (with /dev/null as its stdin) only once this process's stdin closes (at most
 * GATE_MS later): the kubelet moves a host process into its container's cgroup first, and COMMAND
 * is then started inside it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 2000
#define GATE_MS 5000

struct stream {
    const char *name;
    int fd;
    char *buf;
    size_t len;
};

static int logfd;
static size_t maxlen;
static char *record;

static void stamp(char *out, size_t size) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    long ns = ts.tv_nsec;
    if (ns) { /* RFC3339Nano: the fraction without trailing zeros */
        char frac[16];
        int digits = 9;
        while (ns % 10 == 0) {
            ns /= 10;
            digits--;
        }
        snprintf(frac, sizeof frac, ".%0*ld", digits, ns);
        n += snprintf(out + n, size - n, "%s", frac);
    }
    snprintf(out + n, size - n, "Z");
}

static void emit(struct stream *s, const char *text, size_t len, char tag) {
    char ts[64];
    stamp(ts, sizeof ts);
    int head = snprintf(record, 96, "%s %s %c ", ts, s->name, tag);
    memcpy(record + head, text, len);
    record[head + len] = '\n';
    size_t total = head + len + 1, off = 0;
    while (off < total) {
        ssize_t w = write(logfd, record + off, total - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* a full disk loses the record, as containerd's logger does */
        }
        off += w;
    }
}

/* Emit every whole line in the buffer and every MAXLEN-long piece; keep the rest. */
static void flush_lines(struct stream *s) {
    size_t start = 0;
    for (;;) {
        char *nl = memchr(s->buf + start, '\n', s->len - start);
        size_t avail = s->len - start;
        if (nl && (size_t)(nl - (s->buf + start)) <= maxlen) {
            size_t n = nl - (s->buf + start);
            size_t text = n;
            if (text > 0 && s->buf[start + text - 1] == '\r')
                text--;
            emit(s, s->buf + start, text, 'F');
            start += n + 1;
            continue;
        }
        if (avail > maxlen) {
            emit(s, s->buf + start, maxlen, 'P');
            start += maxlen;
            continue;
        }
        break;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

/* Read what is there; 0 at end of stream. */
static int pump(struct stream *s) {
    ssize_t r = read(s->fd, s->buf + s->len, maxlen + 1 - s->len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (r <= 0) {
        if (s->len)
            emit(s, s->buf, s->len, 'P');
        s->len = 0;
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    s->len += r;
    flush_lines(s);
    return 1;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    int gate = argc > 1 && strcmp(argv[1], "-g") == 0;
    if (gate) {
        argv++;
        argc--;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: crilog [-g] LOGFILE MAXLEN COMMAND [ARG]...\n");
        return 2;
    }
    maxlen = strtoul(argv[2], NULL, 10);
    if (maxlen < 1)
        maxlen = 16384;
    logfd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (logfd < 0) {
        fprintf(stderr, "crilog: open %s: %s\n", argv[1], strerror(errno));
        return 125;
    }
    record = malloc(maxlen + 128);
    struct stream streams[2] = {{"stdout", -1, malloc(maxlen + 1), 0}, {"stderr", -1, malloc(maxlen + 1), 0}};
    int pipes[2][2];
    if (!record || !streams[0].buf || !streams[1].buf || pipe2(pipes[0], O_CLOEXEC) || pipe2(pipes[1], O_CLOEXEC)) {
        fprintf(stderr, "crilog: %s\n", strerror(errno));
        return 125;
    }
    int ignored[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE};
    if (gate) {
        struct pollfd in = {0, POLLIN, 0};
        char byte;
        if (poll(&in, 1, GATE_MS) > 0)
            while (read(0, &byte, 1) < 0 && errno == EINTR)
                ;
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
    }
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "crilog: fork: %s\n", strerror(errno));
        return 125;
    }
    if (child == 0) {
        dup2(pipes[0][1], 1);
        dup2(pipes[1][1], 2);
        execvp(argv[3], argv + 3);
        fprintf(stderr, "crilog: exec %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
        signal(ignored[i], SIG_IGN);
    close(pipes[0][1]);
    close(pipes[1][1]);
    streams[0].fd = pipes[0][0];
    streams[1].fd = pipes[1][0];
    int status = 0, reaped = 0;
    long long deadline = 0;
    while (streams[0].fd >= 0 || streams[1].fd >= 0) {
        struct pollfd fds[2];
        int n = 0, which[2];
        for (int i = 0; i < 2; i++)
            if (streams[i].fd >= 0) {
                fds[n].fd = streams[i].fd;
                fds[n].events = POLLIN;
                which[n++] = i;
            }
        int timeout = 200;
        if (reaped) {
            long long left = deadline - now_ms();
            if (left <= 0)
                break;
            timeout = left < timeout ? (int)left : timeout;
        }
        int ready = poll(fds, n, timeout);
        if (ready < 0 && errno != EINTR)
            break;
        for (int k = 0; ready > 0 && k < n; k++)
            if (fds[k].revents)
                pump(&streams[which[k]]);
        if (!reaped && waitpid(child, &status, WNOHANG) == child) {
            reaped = 1;
            deadline = now_ms() + DRAIN_MS;
        }
    }
    for (int i = 0; i < 2; i++) /* what a lingering writer left unterminated */
        if (streams[i].fd >= 0 && streams[i].len)
            emit(&streams[i], streams[i].buf, streams[i].len, 'P');
    if (!reaped)
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig;
    }
    return WEXITSTATUS(status);
}
