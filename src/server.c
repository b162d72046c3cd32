/*
 * server - listeners, accept and the limits before a session. See server.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "session.h"

#define SERVER_BACKLOG 4096
#define SERVER_ACCEPT_BATCH 64     /* accepts per wakeup, to stay fair */
#define SERVER_FD_PAUSE 0.1        /* seconds without accepting at EMFILE */
#define SERVER_FD_RESERVE 64       /* listeners, DNS sockets, logs */
#define SERVER_SWEEP_INTERVAL 1.0  /* seconds between sweeps of the netlimit table */
#define SERVER_NETS_MIN 65536      /* networks counted at least (4 x max_connections else) */
#define SERVER_REPLY_PER_NET "421 4.7.0 Too many connections from your address, try again later"

void server_refuse(int fd, const char *reply)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s\r\n", reply);
    if (n > 0)
        (void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
    close(fd);
}

/* server_log_refusal - the session line of a client turned away at once,
 * counted as a refusal and a session with verdict limit */
static void server_log_refusal(struct server *s, const struct addr *a, uint16_t port,
                               enum metrics_refusal reason, const char *why)
{
    s->metrics->refused[reason]++;
    s->metrics->sessions[METRICS_VERDICT_LIMIT]++;
    char text[ADDR_TEXT_MAX];
    addr_format(a, text, sizeof text);
    log_info("session client=[%s]:%u verdict=limit score=0 lists=- duration=0.000 reason=\"%s\"",
             text, port, why);
}

/* server_rate_refuse - over max_connection_rate_per_ip: 421, counted; a
 * network that keeps going is banned if connection_rate_ban says so, unless
 * the allowlist holds part of it (the rate was the network's, so no one
 * address of it can be picked to ban instead) */
static void server_rate_refuse(struct server *s, int fd, const struct addr *a,
                               const struct cidr *net, uint16_t port, bool again)
{
    char text[ADDR_TEXT_MAX], reply[128];
    server_log_refusal(s, a, port, METRICS_REFUSED_RATE, "max_connection_rate_per_ip");
    addr_format(a, text, sizeof text);
    snprintf(reply, sizeof reply, "421 4.7.0 Error: too many connections from [%s]", text);
    server_refuse(fd, reply);
    const struct conf *conf = s->gen->conf;
    if (again && conf->connection_rate_ban && !cidr_set_overlaps(&conf->allowlist, net))
        bans_offender(s->bans, a, STORE_BAN_RATE, false);
}

/* server_net_admit - the client network's limits (netlimit.h): 0 with
 * *entry set (NULL when nothing needs counting there), or -1 when the
 * client was turned away (fd closed) */
static int server_net_admit(struct server *s, int fd, const struct addr *a, uint16_t port,
                            struct netlimit_entry **entry)
{
    const struct conf *conf = s->gen->conf;
    struct cidr net = cidr_of(a, conf->ipv4_prefix, conf->ipv6_prefix);
    *entry = NULL;
    /* a network of one address without a rate: the per-address count of
     * clients.h is the same number, kept at no extra memory; an allowlisted
     * address is not counted with its neighbours (they cannot get it
     * refused) and keeps the per-address cap */
    if ((conf->max_connection_rate_per_ip == 0 && net.prefix == (a->family == AF_INET ? 32 : 128))
        || cidr_set_contains(&conf->allowlist, a))
        return 0;
    size_t most = 4 * (size_t)conf->max_connections;
    struct netlimit_policy p = {conf->max_connections_per_ip, conf->max_connection_rate_per_ip,
                                conf->connection_rate_window,
                                most > SERVER_NETS_MIN ? most : SERVER_NETS_MIN};
    enum netlimit_verdict v = netlimit_admit(s->nets, &net, ev_now(s->loop), &p, entry);
    switch (v) {
    case NETLIMIT_ADMITTED:
        return 0;
    case NETLIMIT_SESSIONS:
        server_log_refusal(s, a, port, METRICS_REFUSED_PER_IP, "max_connections_per_ip");
        server_refuse(fd, SERVER_REPLY_PER_NET);
        return -1;
    case NETLIMIT_RATE:
    case NETLIMIT_RATE_AGAIN:
        server_rate_refuse(s, fd, a, &net, port, v == NETLIMIT_RATE_AGAIN);
        return -1;
    case NETLIMIT_NO_MEMORY: /* fail open: the per-address cap still holds */
        log_limited(&s->nets_log, ev_now(s->loop), LOG_LEVEL_WARNING,
                    "too many client networks to count (%zu, or out of memory): new ones "
                    "are admitted uncounted", netlimit_count(s->nets));
        return 0;
    }
    return 0;
}

/* server_admit - limits, then a session; takes ownership of fd */
static void server_admit(struct server *s, int fd, const struct addr *a, uint16_t port)
{
    const struct conf *conf = s->gen->conf;
    struct netlimit_entry *net;
    if (s->connections >= conf->max_connections) {
        server_log_refusal(s, a, port, METRICS_REFUSED_MAX_CONNECTIONS, "max_connections");
        server_refuse(fd, "421 4.7.0 Too many connections, try again later");
        return;
    }
    if (server_net_admit(s, fd, a, port, &net) < 0)
        return;
    struct client *c = clients_get(s->clients, a);
    if (c == NULL) {
        if (net != NULL)
            netlimit_release(s->nets, net);
        server_refuse(fd, SERVER_REPLY_TRY_LATER);
        return;
    }
    if (net == NULL && c->sessions >= conf->max_connections_per_ip) { /* uncounted above */
        server_log_refusal(s, a, port, METRICS_REFUSED_PER_IP, "max_connections_per_ip");
        server_refuse(fd, SERVER_REPLY_PER_NET);
        clients_put(s->clients, c);
        return;
    }
    session_start(s, c, fd, port, net);
}

/* server_sweep_cb - forget networks that count nothing any more */
static void server_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = w->data;
    (void)revents;
    netlimit_sweep(s->nets, ev_now(loop), s->gen->conf->connection_rate_window,
                   SERVER_SWEEP_INTERVAL);
}

/* server_pause_accepting - out of file descriptors: stop accepting for a
 * moment instead of spinning on a listener that stays readable */
static void server_pause_accepting(struct server *s)
{
    for (size_t i = 0; i < s->listener_count; i++)
        ev_io_stop(s->loop, &s->listener[i].io);
    ev_timer_set(&s->accept_pause, SERVER_FD_PAUSE, 0.);
    ev_timer_start(s->loop, &s->accept_pause);
    log_limited(&s->fd_log, ev_now(s->loop), LOG_LEVEL_WARNING,
                "out of file descriptors at %u connections: not accepting "
                "for %.0f ms (raise the open-file limit or lower max_connections)",
                s->connections, SERVER_FD_PAUSE * 1000);
}

/* server_resume_cb - try accepting again after a pause */
static void server_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct server *s = w->data;
    for (size_t i = 0; i < s->listener_count; i++)
        ev_io_start(loop, &s->listener[i].io);
}

/* server_accept_cb - a listener has connections waiting */
static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *s = w->data;
    for (int i = 0; i < SERVER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                server_pause_accepting(s);
            return; /* EAGAIN, or an aborted connection: next wakeup */
        }
        struct addr a;
        uint16_t port;
        if (addr_from_sockaddr((struct sockaddr *)&ss, &a, &port) < 0) {
            close(fd);
            continue;
        }
        s->metrics->accepted++;
        server_admit(s, fd, &a, port);
    }
}

/* server_listen - one listening socket (also the metrics endpoint's) */
int server_listen(const struct endpoint *e, bool reuseport, char *err, size_t errsize)
{
    char text[ADDR_TEXT_MAX];
    struct sockaddr_storage ss;
    socklen_t len = addr_to_sockaddr(&e->addr, e->port, &ss);
    int one = 1;
    int fd = socket(e->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (e->addr.family == AF_INET6) /* [::]:25 next to 0.0.0.0:25 */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&ss, len) == 0 && listen(fd, SERVER_BACKLOG) == 0)
            return fd;
    }
    addr_format(&e->addr, text, sizeof text);
    snprintf(err, errsize, "cannot listen on %s%s%s:%u: %s",
             e->addr.family == AF_INET6 ? "[" : "", text,
             e->addr.family == AF_INET6 ? "]" : "", e->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int server_open_listeners(const struct conf *conf, bool reuseport, int *fds,
                          char *err, size_t errsize)
{
    for (size_t i = 0; i < conf->listen_count; i++) {
        fds[i] = server_listen(&conf->listen[i], reuseport, err, errsize);
        if (fds[i] < 0) {
            while (i-- > 0)
                close(fds[i]);
            return -1;
        }
    }
    return 0;
}

/* server_raise_fd_limit - each session takes a socket, a relay two */
static void server_raise_fd_limit(const struct conf *conf)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conf->max_connections + conf->backend_max_connections +
                  SERVER_FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return;
    rlim_t want = need;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || want < need)
        log_warning("open-file limit is %llu but max_connections=%u needs %llu: "
                    "connections beyond the limit wait in the kernel's backlog "
                    "(raise the hard limit, e.g. systemd LimitNOFILE=)",
                    (unsigned long long)want, conf->max_connections,
                    (unsigned long long)need);
}

int server_start(struct server *s, struct ev_loop *loop, struct generation *gen,
                 struct bans *bans, struct metrics_slot *metrics,
                 const int *fds, char *err, size_t errsize)
{
    const struct conf *conf = gen->conf;
    *s = (struct server){.loop = loop, .gen = gen, .bans = bans, .metrics = metrics};
    s->clients = clients_new();
    s->nets = netlimit_new();
    if (s->clients == NULL || s->nets == NULL) {
        for (size_t i = 0; i < conf->listen_count; i++)
            close(fds[i]);
        clients_free(s->clients);
        netlimit_free(s->nets);
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    ev_init(&s->accept_pause, server_resume_cb);
    s->accept_pause.data = s;
    ev_timer_init(&s->sweep, server_sweep_cb, SERVER_SWEEP_INTERVAL, SERVER_SWEEP_INTERVAL);
    s->sweep.data = s;
    ev_timer_start(loop, &s->sweep);
    server_raise_fd_limit(conf);
    for (size_t i = 0; i < conf->listen_count; i++) {
        struct listener *l = &s->listener[s->listener_count++];
        l->where = conf->listen[i];
        ev_io_init(&l->io, server_accept_cb, fds[i], EV_READ);
        l->io.data = s;
        ev_io_start(loop, &l->io);
    }
    return 0;
}

void server_reload(struct server *s, struct generation *next)
{
    generation_drop(s->gen);
    s->gen = next;
    server_raise_fd_limit(next->conf);
}

/* server_close_listeners - accept no more */
static void server_close_listeners(struct server *s)
{
    for (size_t i = 0; i < s->listener_count; i++) {
        ev_io_stop(s->loop, &s->listener[i].io);
        close(s->listener[i].io.fd);
    }
    s->listener_count = 0;
    ev_timer_stop(s->loop, &s->accept_pause);
    ev_timer_stop(s->loop, &s->sweep);
}

void server_shutdown(struct server *s)
{
    server_close_listeners(s);
    if (s->clients != NULL)
        clients_foreach(s->clients, session_shutdown_all, NULL);
}

void server_stop(struct server *s)
{
    server_close_listeners(s);
    if (s->clients != NULL)
        clients_foreach(s->clients, session_close_all, NULL);
    clients_free(s->clients);
    s->clients = NULL;
    netlimit_free(s->nets); /* after the sessions, which release their entries */
    s->nets = NULL;
    generation_drop(s->gen);
    s->gen = NULL;
}
