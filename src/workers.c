/*
 * workers - several processes on the same ports. See workers.h.
 */
#include <errno.h>
#include <linux/filter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coverage.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "workers.h"

#define WORKERS_QUICK_DEATH 2.0  /* seconds: a worker dying sooner ... */
#define WORKERS_QUICK_DEATHS 5   /* ... this many times in a row: give up */

struct workers {
    const struct conf *conf;  /* the whole config: main's, or reloaded */
    struct conf reloaded;     /* owned, once a reload has succeeded */
    struct conf share;        /* each worker's share, see workers_divide() */
    workers_main_fn worker_main;
    void *arg;
    bool started_once[WORKERS_MAX];
    unsigned count;
    int fds[WORKERS_MAX][CONF_LISTEN_MAX];
    pid_t pid[WORKERS_MAX];
    double started[WORKERS_MAX];
    unsigned quick_deaths;
    sigset_t old_mask;
};

static double workers_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* workers_mask - the mask of word w (0-based, 32 bits each) of an
 * address under a prefix of that many bits */
static uint32_t workers_mask(unsigned prefix, unsigned w)
{
    unsigned bits = prefix > 32 * w ? prefix - 32 * w : 0;
    return bits >= 32 ? 0xffffffffu : bits == 0 ? 0 : ~(0xffffffffu >> bits);
}

/* workers_steer - attach the client-network hash program to one port's
 * group: a client's network (ipv4_prefix, ipv6_prefix) always goes to the
 * same worker, so per-network limits and the verdict cache stay exact */
static int workers_steer(int fd, int family, unsigned count, const struct conf *conf)
{
    /* the source address: IPv4 header offset 12, IPv6 offset 8; the XOR of
     * its 32-bit words within the prefix, each masked to it */
    unsigned base = family == AF_INET6 ? 8 : 12;
    unsigned prefix = family == AF_INET6 ? conf->ipv6_prefix : conf->ipv4_prefix;
    unsigned words = family == AF_INET6 ? (prefix + 31) / 32 : 1;
    struct sock_filter code[4 * 4 + 8];
    unsigned n = 0;
    for (unsigned w = 0; w < words; w++) {
        if (w > 0)
            code[n++] = (struct sock_filter)BPF_STMT(BPF_MISC | BPF_TAX, 0);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                 (unsigned)SKF_NET_OFF + base + 4 * w);
        code[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K,
                                                 workers_mask(prefix, w));
        if (w > 0)
            code[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0);
    }
    const struct sock_filter fold[] = {
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_MISC | BPF_TAX, 0),
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 8),
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, count),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    for (size_t i = 0; i < sizeof fold / sizeof fold[0]; i++)
        code[n++] = fold[i];
    struct sock_fprog prog = {(unsigned short)n, code};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

/* workers_steer_all - the steering of every listen port's group */
static int workers_steer_all(struct workers *w)
{
    const struct conf *conf = w->conf;
    for (size_t l = 0; l < conf->listen_count; l++) {
        if (workers_steer(w->fds[0][l], conf->listen[l].addr.family, w->count, conf) < 0) {
            log_error("cannot attach the reuseport steering program: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* workers_open_listeners - every worker's listeners, in worker order, then
 * steering */
static int workers_open_listeners(struct workers *w)
{
    char err[256];
    const struct conf *conf = w->conf;
    for (unsigned i = 0; i < w->count; i++) {
        if (server_open_listeners(conf, true, w->fds[i], err, sizeof err) < 0) {
            log_error("%s", err);
            return -1;
        }
    }
    return workers_steer_all(w);
}

/* workers_close - close every listener and free w */
void workers_close(struct workers *w)
{
    for (unsigned i = 0; i < w->count; i++)
        for (size_t l = 0; l < w->conf->listen_count; l++)
            if (w->fds[i][l] > 0)
                close(w->fds[i][l]);
    if (w->conf == &w->reloaded)
        conf_free(&w->reloaded);
    free(w);
}

/* workers_spawn - start worker i on its sockets */
static int workers_spawn(struct workers *w, unsigned i)
{
    pid_t supervisor = getpid(), pid = fork();
    if (pid < 0) {
        log_error("cannot start worker %u: %s", i, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* SIGTERM, SIGINT and SIGHUP stay blocked until the worker's loop
         * watches them (the worker unblocks them then): one that comes
         * during start-up waits, and is then handled as usual */
        sigset_t mask = w->old_mask;
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_SETMASK, &mask, NULL);
        unsetenv("NOTIFY_SOCKET"); /* the supervisor speaks to systemd, not the workers */
        for (unsigned j = 0; j < w->count; j++)
            for (size_t l = 0; j != i && l < w->conf->listen_count; l++)
                close(w->fds[j][l]);
        int status = w->worker_main(w->arg, &w->share, w->fds[i], i, !w->started_once[i],
                                    supervisor);
        coverage_dump();
        _exit(status);
    }
    w->started_once[i] = true;
    w->pid[i] = pid;
    w->started[i] = workers_now();
    return 0;
}

/* workers_signal_all - pass a signal on to every running worker */
static void workers_signal_all(struct workers *w, int signo)
{
    for (unsigned i = 0; i < w->count; i++)
        if (w->pid[i] > 0)
            kill(w->pid[i], signo);
}

/* workers_reap - collect exited workers and restart them unless
 * stopping; sets *give_up when they keep dying at start. Returns how many
 * are still running. */
static unsigned workers_reap(struct workers *w, bool stopping, bool *give_up,
                             int *status)
{
    pid_t pid;
    int st;
    unsigned running = 0;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (unsigned i = 0; i < w->count; i++) {
            if (w->pid[i] != pid)
                continue;
            w->pid[i] = 0;
            if (stopping) { /* how it ended is the daemon's exit status */
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                    *status = 1;
                break;
            }
            log_warning("worker %u (pid %d) ended (%s %d): starting it again", i,
                        (int)pid, WIFEXITED(st) ? "exit status" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            w->quick_deaths = workers_now() - w->started[i] < WORKERS_QUICK_DEATH
                                  ? w->quick_deaths + 1 : 0;
            if (w->quick_deaths >= WORKERS_QUICK_DEATHS || workers_spawn(w, i) < 0)
                *give_up = true;
        }
    }
    for (unsigned i = 0; i < w->count; i++)
        running += w->pid[i] > 0;
    return running;
}

void workers_divide(struct conf *c, unsigned n)
{
    /* cppcheck-suppress zerodivcond ; n >= 1: workers is 1..64, and the test below is
     * about backend_max_connections, not n */
    c->max_connections = (c->max_connections + n - 1) / n;
    c->backend_max_connections /= n;
    if (c->backend_max_connections == 0)
        c->backend_max_connections = 1;
}

/* workers_share - w->share from w->conf */
static void workers_share(struct workers *w)
{
    w->share = *w->conf;
    workers_divide(&w->share, w->count);
}

/* workers_reload - SIGHUP: read the configuration again; if it is good,
 * keep it for workers started from now on and tell every worker to
 * reload (each reads the file itself: a session's config lives in its
 * worker) */
static void workers_reload(struct workers *w)
{
    char note[CONF_ERR_MAX + 128];
    struct conf next;
    if (conf_reload(&next, w->conf, note, sizeof note) < 0) {
        log_error("%s", note);
        return;
    }
    if (note[0] != '\0')
        log_warning("reload: %s", note);
    struct conf old = w->reloaded;
    bool owned = w->conf == &w->reloaded;
    w->reloaded = next;
    w->conf = &w->reloaded;
    workers_share(w);
    if (owned)
        conf_free(&old);
    (void)workers_steer_all(w); /* new prefixes: new connections follow them */
    log_info("reload: passed on to %u workers", w->count);
    workers_signal_all(w, SIGHUP);
}

/* workers_supervise - wait for signals until every worker is gone */
static int workers_supervise(struct workers *w, const sigset_t *set, bool stopping)
{
    int status = 0;
    for (;;) {
        /* with systemd's watchdog, wake up to tell it we are alive */
        double interval = notify_watchdog_interval();
        struct timespec ts = {(time_t)interval,
                              (long)((interval - (double)(time_t)interval) * 1e9)};
        int signo = interval > 0 ? sigtimedwait(set, NULL, &ts) : sigwaitinfo(set, NULL);
        if (interval > 0)
            notify_watchdog_ping();
        if (signo == SIGHUP && !stopping)
            workers_reload(w);
        if ((signo == SIGTERM || signo == SIGINT) && !stopping) {
            log_info("signal %d: stopping %u workers", signo, w->count);
            notify_stopping();
            stopping = true;
            workers_signal_all(w, SIGTERM);
        }
        bool give_up = false;
        unsigned running = workers_reap(w, stopping, &give_up, &status);
        if (give_up && !stopping) {
            log_error("workers keep dying: stopping");
            stopping = true;
            status = 1;
            workers_signal_all(w, SIGTERM);
        }
        if (stopping && running == 0)
            return status;
    }
}

unsigned workers_count(const struct conf *conf)
{
    return conf->workers > WORKERS_MAX ? WORKERS_MAX : conf->workers;
}

struct workers *workers_open(const struct conf *conf)
{
    struct workers *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    unsigned n = workers_count(conf);
    w->conf = conf;
    w->count = n;
    workers_share(w);
    if (workers_open_listeners(w) < 0) {
        workers_close(w);
        return NULL;
    }
    return w;
}

int workers_run(struct workers *w, workers_main_fn worker_main, void *arg)
{
    unsigned n = w->count;
    w->worker_main = worker_main;
    w->arg = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &w->old_mask);
    log_info("%u workers, each taking up to %u connections and %u relays", n,
             w->share.max_connections, w->share.backend_max_connections);
    int status = 0;
    for (unsigned i = 0; i < n && status == 0; i++)
        status = workers_spawn(w, i) < 0 ? 1 : 0;
    if (status != 0)
        workers_signal_all(w, SIGTERM);
    else
        notify_ready();
    if (w->pid[0] > 0) {
        int supervised = workers_supervise(w, &set, status != 0);
        status = status != 0 ? status : supervised;
    }
    sigprocmask(SIG_SETMASK, &w->old_mask, NULL);
    workers_close(w);
    return status;
}
