/*
 * banhelper - the privileged firewall helper. See banhelper.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "banhelper.h"
#include "banproto.h"
#include "fw.h"
#include "coverage.h"
#include "killconn.h"
#include "log.h"

#define BANHELPER_SOCKETS_MAX 64
#define BANHELPER_SOCKBUF (1 << 20)

/* One worker's socket and the requests gathered from it. */
struct banhelper_conn {
    int fd;                 /* -1 once closed; open after the peer's last request
                             * until its pending kills are answered */
    struct fw_ban *bans;    /* [BANHELPER_BATCH] */
    size_t count, malformed, refused;
    uint32_t seq;           /* of the last well-formed request */
    const char *why;        /* of the last malformed one */
    const char *refused_why; /* of the last one this helper does not do */
    bool *kill;             /* [BANHELPER_BATCH]: end addrs[i]'s connections too */
    struct addr *addrs;     /* [BANHELPER_BATCH]: the address each request named */
    struct banhelper_kill *pending; /* [BANHELPER_KILLS_PENDING]: a ring, in due order */
    size_t pending_head, pending_count;
};

/* A BAN_KILL address whose connections end at `due`: watch_kill_delay
 * after its ban went in, so that the MTA's own refusal, which it may log
 * before it writes it (Courier does), reaches the client first. The ban
 * is in at once: the address cannot connect again meanwhile. */
struct banhelper_kill {
    struct addr addr;
    double due;             /* banhelper_now() */
};

struct banhelper {
    struct fw *fw;
    const struct conf *conf;
    enum banproto_peer peer;   /* watch's helper alone ends connections */
    bool refusal_logged;
    struct addr kill_addrs[BANHELPER_BATCH]; /* one batch's BAN_KILL addresses */
    uint32_t max_seconds;
    struct banhelper_conn conn[BANHELPER_SOCKETS_MAX];
    struct pollfd pfd[BANHELPER_SOCKETS_MAX];
    size_t count, open;
    struct log_limit malformed_log;
};

static double banhelper_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* banhelper_gathered - requests read from c and not answered yet */
static size_t banhelper_gathered(const struct banhelper_conn *c)
{
    return c->count + c->malformed + c->refused;
}

/* banhelper_refuse - a well-formed request this helper does not carry out
 * (BAN_KILL from serve's process): counted as failed in the reply, logged
 * the first time only (a compromised peer must not flood the log) */
static void banhelper_refuse(struct banhelper *h, struct banhelper_conn *c,
                             const struct fw_ban *ban, const char *why)
{
    char text[CIDR_TEXT_MAX];
    c->refused++;
    c->refused_why = why;
    if (h->refusal_logged)
        return;
    h->refusal_logged = true;
    cidr_format(&ban->net, text, sizeof text);
    log_error("ban helper: %s (address %s; logged once, every later one is counted as "
              "failed in the reply)", why, text);
}

/* banhelper_peer_gone - recv() gave 0: the peer closed (or shut its
 * sending side), or it sent a zero-length message, which SOCK_SEQPACKET
 * delivers as the same 0. Only the first shuts our receiving side. */
static bool banhelper_peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* banhelper_read - gather what waits on one socket; -1 when it is gone */
static int banhelper_read(struct banhelper *h, struct banhelper_conn *c)
{
    struct banproto_request req;
    while (banhelper_gathered(c) < BANHELPER_BATCH) {
        ssize_t n = recv(c->fd, &req, sizeof req, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        if (n == 0 && banhelper_peer_gone(c->fd))
            return -1;
        /* else an empty message: malformed ("wrong size"), like any other */
        uint32_t seq;
        const char *why;
        struct fw_ban *ban = &c->bans[c->count];
        if (banproto_request_parse(&req, (size_t)n, h->max_seconds, ban, &c->addrs[c->count],
                                   &seq, &c->kill[c->count], &c->why) < 0) {
            c->malformed++;
            log_limited(&h->malformed_log, banhelper_now(), LOG_LEVEL_ERROR,
                        "ban helper: refused a malformed request: %s", c->why);
        } else if (!banproto_request_allowed(h->peer, c->kill[c->count], &why)) {
            banhelper_refuse(h, c, ban, why);
        } else if (ban->seconds > 0 && cidr_set_overlaps(&h->conf->allowlist, &ban->net)) {
            /* the daemon never asks it (bans.c): a compromised one might */
            banhelper_refuse(h, c, ban, "a ban of a network that holds allowlisted addresses "
                             "refused");
        } else {
            c->seq = seq;
            c->count++;
        }
    }
    return 0;
}

/* banhelper_end - end the live connections of n addresses (watch_kill)
 * and tell the daemon how many ended and for how many it failed; the
 * reply carries the last request seen, already answered, so it moves
 * nothing on in the daemon's queue */
static void banhelper_end(struct banhelper *h, struct banhelper_conn *c, size_t n)
{
    const struct conf *conf = h->conf;
    char why[FW_ERR_MAX - 32], err[FW_ERR_MAX] = "";
    int ended = conf->watch_kill == WATCH_KILL_SOCKET
                    ? killconn_sockets(h->kill_addrs, n, conf->watch_ports,
                                       conf->watch_port_count, why, sizeof why)
                    : killconn_processes(h->kill_addrs, n, conf->watch_ports,
                                         conf->watch_port_count, why, sizeof why);
    if (ended < 0)
        snprintf(err, sizeof err, "ending connections: %s", why);
    struct banproto_reply reply;
    banproto_reply_make(&reply, c->seq, 0, 0, ended < 0 ? 0 : (uint32_t)ended,
                        ended < 0 ? (uint32_t)n : 0, (uint64_t)(banhelper_now() * 1e9), err);
    if (c->fd >= 0)
        (void)send(c->fd, &reply, sizeof reply, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* banhelper_end_due - end the pending connections due by now, a batch at
 * a time; with force, the oldest batch whatever its time (the ring is
 * full) */
static void banhelper_end_due(struct banhelper *h, struct banhelper_conn *c, double now,
                              bool force)
{
    while (c->pending_count > 0 && (force || c->pending[c->pending_head].due <= now)) {
        size_t n = 0;
        while (n < BANHELPER_BATCH && c->pending_count > 0 &&
               (force || c->pending[c->pending_head].due <= now)) {
            h->kill_addrs[n++] = c->pending[c->pending_head].addr;
            c->pending_head = (c->pending_head + 1) % BANHELPER_KILLS_PENDING;
            c->pending_count--;
        }
        banhelper_end(h, c, n);
        if (force)
            return;
    }
}

/* banhelper_queue_kills - the addresses of the batch just applied whose
 * connections are to end, each watch_kill_delay from now (or half its
 * ban, when that is shorter) */
static void banhelper_queue_kills(struct banhelper *h, struct banhelper_conn *c)
{
    if (h->conf->watch_kill == WATCH_KILL_NONE || h->peer != BANPROTO_PEER_WATCH)
        return; /* serve's BAN_KILL never gets here (banhelper_read) */
    double now = banhelper_now();
    for (size_t i = 0; i < c->count; i++) {
        if (!c->kill[i])
            continue;
        if (c->pending_count == BANHELPER_KILLS_PENDING)
            banhelper_end_due(h, c, now, true);
        /* within the ban's first half, never after it ended: the address
         * may then connect again, and that connection is not the refused one */
        double delay = h->conf->watch_kill_delay, half = c->bans[i].seconds / 2.0;
        struct banhelper_kill k = {.addr = c->addrs[i], .due = now + (delay < half ? delay : half)};
        /* in due order: a shorter ban's kill goes before the later ones */
        size_t at = c->pending_count++;
        for (; at > 0; at--) {
            struct banhelper_kill *prev =
                &c->pending[(c->pending_head + at - 1) % BANHELPER_KILLS_PENDING];
            if (prev->due <= k.due)
                break;
            c->pending[(c->pending_head + at) % BANHELPER_KILLS_PENDING] = *prev;
        }
        c->pending[(c->pending_head + at) % BANHELPER_KILLS_PENDING] = k;
    }
    banhelper_end_due(h, c, now, false); /* watch_kill_delay = 0: now */
}

/* banhelper_next_due - milliseconds until the first pending kill is due
 * (at least 1 once one is pending), -1 when none is */
static int banhelper_next_due(const struct banhelper *h)
{
    double first = -1;
    for (size_t i = 0; i < h->count; i++) {
        const struct banhelper_conn *c = &h->conn[i];
        if (c->pending_count > 0 && (first < 0 || c->pending[c->pending_head].due < first))
            first = c->pending[c->pending_head].due;
    }
    if (first < 0)
        return -1;
    double ms = (first - banhelper_now()) * 1000.0;
    return ms < 1 ? 1 : ms > 60000 ? 60000 : (int)ms + 1;
}

/* banhelper_pending - kills waiting on any socket */
static bool banhelper_pending(const struct banhelper *h)
{
    for (size_t i = 0; i < h->count; i++)
        if (h->conn[i].pending_count > 0)
            return true;
    return false;
}

/* banhelper_apply - one socket's gathered requests into the firewall (one
 * transaction) and the answer; the connections to end are queued */
static void banhelper_apply(struct banhelper *h, struct banhelper_conn *c)
{
    char err[FW_ERR_MAX] = "";
    size_t failed = c->count > 0 ? fw_apply(h->fw, c->bans, c->count, err, sizeof err) : 0;
    uint64_t applied_ns = (uint64_t)(banhelper_now() * 1e9);
    if (c->refused > 0 && err[0] == '\0')
        snprintf(err, sizeof err, "%s", c->refused_why);
    if (c->malformed > 0 && err[0] == '\0')
        snprintf(err, sizeof err, "malformed request: %s", c->why);
    struct banproto_reply reply;
    banproto_reply_make(&reply, c->seq, (uint32_t)(c->count - failed),
                        (uint32_t)(failed + c->malformed + c->refused), 0, 0, applied_ns, err);
    if (c->fd >= 0)
        (void)send(c->fd, &reply, sizeof reply, MSG_DONTWAIT | MSG_NOSIGNAL);
    banhelper_queue_kills(h, c);
    c->count = c->malformed = c->refused = 0;
}

/* banhelper_drain - apply everything waiting on one socket, a batch at a
 * time */
static void banhelper_drain(struct banhelper *h, size_t i)
{
    struct banhelper_conn *c = &h->conn[i];
    for (;;) {
        bool gone = banhelper_read(h, c) < 0;
        bool full = banhelper_gathered(c) == BANHELPER_BATCH;
        if (banhelper_gathered(c) > 0)
            banhelper_apply(h, c);
        if (gone) {
            /* the peer sends no more; its pending kills still answer on
             * fd (watch reads them at stop), which closes after them */
            h->pfd[i].fd = -1;
            h->open--;
        }
        if (gone || !full)
            return;
    }
}

/* banhelper_serve - the helper's loop, until every socket has closed and
 * no kill is pending: woken by a request while busy (the last batch went
 * in less than BANHELPER_BUSY ago), it lets BANHELPER_GATHER pass so that
 * the requests behind it go in with it; a request after a quiet spell goes
 * in at once. Then it empties every socket, and ends the connections due. */
static int banhelper_serve(struct banhelper *h)
{
    const struct timespec gather = {0, (long)(BANHELPER_GATHER * 1e9)};
    double last = 0;
    while (h->open > 0 || banhelper_pending(h)) {
        int ready = poll(h->pfd, h->count, banhelper_next_due(h));
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            log_error("ban helper: poll: %s", strerror(errno));
            return 1;
        }
        if (ready > 0) {
            if (banhelper_now() - last < BANHELPER_BUSY)
                nanosleep(&gather, NULL);
            for (size_t i = 0; i < h->count; i++)
                if (h->pfd[i].fd >= 0)
                    banhelper_drain(h, i);
            last = banhelper_now();
        }
        for (size_t i = 0; i < h->count; i++) {
            struct banhelper_conn *c = &h->conn[i];
            banhelper_end_due(h, c, banhelper_now(), false);
            if (h->pfd[i].fd < 0 && c->fd >= 0 && c->pending_count == 0) {
                close(c->fd); /* the peer's last reply sent */
                c->fd = -1;
            }
        }
    }
    return 0;
}

/* banhelper_child - runs in the forked helper; never returns */
static void banhelper_child(const struct conf *conf, const struct privsep_user *user,
                            bool kills, int *fds, size_t count, int status_fd)
{
    char err[512] = "";
    struct fw *fw = fw_open(conf, err, sizeof err);
    enum privsep_keep keep = conf->watch_kill == WATCH_KILL_PROCESS && kills
                                 ? PRIVSEP_KEEP_NET_ADMIN_KILL : PRIVSEP_KEEP_NET_ADMIN;
    if (fw != NULL && user != NULL && privsep_drop(user, keep, err, sizeof err) < 0) {
        fw_close(fw);
        fw = NULL;
    }
    if (fw != NULL)
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0); /* after the drop, which clears it */
    (void)!write(status_fd, err, strlen(err)); /* nothing written = ready */
    close(status_fd);
    if (fw == NULL)
        _exit(1);
    /* the daemon decides when we stop: our sockets close. A stop signals
     * the whole process group (Ctrl-C, timeout(1), systemd's stop): the
     * helper must outlive the daemon's last bans and its clean exit. */
    (void)signal(SIGINT, SIG_IGN); /* cannot fail: a valid signal, a valid handler */
    (void)signal(SIGTERM, SIG_IGN);
    static struct banhelper h;
    h = (struct banhelper){.fw = fw, .conf = conf, .max_seconds = (uint32_t)conf->ban_time_max,
                           .peer = kills ? BANPROTO_PEER_WATCH : BANPROTO_PEER_SERVE,
                           .count = count, .open = count};
    for (size_t i = 0; i < count; i++) {
        h.conn[i] = (struct banhelper_conn){
            .fd = fds[i], .bans = malloc(BANHELPER_BATCH * sizeof(struct fw_ban)),
            .kill = calloc(BANHELPER_BATCH, sizeof(bool)),
            .addrs = malloc(BANHELPER_BATCH * sizeof(struct addr)),
            .pending = kills ? malloc(BANHELPER_KILLS_PENDING * sizeof(struct banhelper_kill))
                             : NULL};
        h.pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (h.conn[i].bans == NULL || h.conn[i].kill == NULL || h.conn[i].addrs == NULL ||
            (kills && h.conn[i].pending == NULL))
            _exit(1);
    }
    int status = banhelper_serve(&h);
    fw_close(fw);
    coverage_dump();
    _exit(status);
}

/* banhelper_pairs - count socket pairs: [i][0] the daemon's, [i][1] ours */
static int banhelper_pairs(int (*pair)[2], size_t count, char *err, size_t errsize)
{
    int size = BANHELPER_SOCKBUF;
    for (size_t i = 0; i < count; i++) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair[i]) < 0) {
            snprintf(err, errsize, "ban helper: socketpair: %s", strerror(errno));
            while (i-- > 0) {
                close(pair[i][0]);
                close(pair[i][1]);
            }
            return -1;
        }
        for (int end = 0; end < 2; end++) {
            (void)setsockopt(pair[i][end], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
            (void)setsockopt(pair[i][end], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        }
        fcntl(pair[i][0], F_SETFL, O_NONBLOCK);
    }
    return 0;
}

pid_t banhelper_start(const struct conf *conf, const struct privsep_user *user, bool kills,
                      int *fds, size_t count, char *err, size_t errsize)
{
    int pair[BANHELPER_SOCKETS_MAX][2], status[2];
    if (count > BANHELPER_SOCKETS_MAX || banhelper_pairs(pair, count, err, errsize) < 0)
        return -1;
    pid_t pid = pipe2(status, O_CLOEXEC) < 0 ? -1 : fork();
    if (pid == 0) {
        close(status[0]);
        int theirs[BANHELPER_SOCKETS_MAX];
        for (size_t i = 0; i < count; i++) {
            close(pair[i][0]);
            theirs[i] = pair[i][1];
        }
        banhelper_child(conf, user, kills, theirs, count, status[1]);
    }
    for (size_t i = 0; i < count; i++) {
        close(pair[i][1]);
        fds[i] = pair[i][0];
    }
    if (pid < 0) {
        snprintf(err, errsize, "ban helper: cannot start: %s", strerror(errno));
        for (size_t i = 0; i < count; i++)
            close(fds[i]);
        return -1;
    }
    close(status[1]);
    char why[512];
    ssize_t n;
    while ((n = read(status[0], why, sizeof why - 1)) < 0 && errno == EINTR)
        ;
    close(status[0]);
    if (n != 0) {
        snprintf(err, errsize, "%s", n > 0 ? (why[n] = '\0', why) : "ban helper: no answer");
        for (size_t i = 0; i < count; i++)
            close(fds[i]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}
