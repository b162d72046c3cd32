/*
 * fuzz_session - libFuzzer target for the whole session state machine:
 * src/session.c with src/relay.c, the reject engine and the real sockets,
 * driven in any order the input says.
 *
 * The neighbours a session talks to through calls are played here, so that
 * the input decides when each of them acts:
 *   the event loop   ev_io_start/stop, ev_timer_start/stop and ev_now are
 *                    defined below (libev is not linked): the input says
 *                    when ready sockets are dispatched and when the next
 *                    timer fires, on a clock that moves only then
 *   the DNSBL lookup dnsbl_lookup_*(): the input says when an answer comes,
 *                    whether it settles the score and whether it lists
 *   generations, bans, server_refuse(): counted and checked
 * What the session talks to through sockets is real: each client is a TCP
 * connection on 127.0.0.1, the backend a listening socket on 127.0.0.1
 * (or a port where nothing listens), so partial reads and writes, resets
 * and half-closes are the kernel's.
 *
 * Input: byte 0 the configuration, then operations, each one byte (low 4
 * bits what, high 4 bits which client or backend connection, or how much),
 * some followed by a length byte and that many data bytes.
 *   byte 0 bits 0-1  backend_proxy_protocol: none, v1, v2
 *          bit 2     reject_delay 2 s (else 0)
 *          bit 3     the client is allowlisted
 *          bit 4     the client is denylisted
 *          bit 5     nothing listens on the backend port
 *          bit 6     backend_max_connections 1 (else 8)
 *          bit 7     a lookup started after another starts settled (the
 *                    verdict cache), with the last answer's verdict
 * Operations (C: client number arg % clients, B: backend connection
 * arg % accepted; data: a length byte and up to 256 bytes, sent 96 times
 * over when arg bit 3 is set; our ends have the smallest receive buffers,
 * the session's socket the smallest send buffer):
 *    0 a new client connection (at most 4)     8 the backend accepts
 *    1 C sends data                            9 B sends data
 *    2 C reads what came                      10 B reads what came
 *    3 C shuts its sending side               11 B shuts its sending side
 *    4 C closes (arg bit 3: with a reset)     12 B closes (bit 3: reset)
 *    5 a DNSBL answer (bit 0 lists, bit 1     13 the graceful stop
 *      settles the score)                     14 0.5 s * arg pass: every
 *    6 ready sockets are dispatched once         timer due fires
 *    7 the next timer fires                   15 eight dispatch rounds
 *
 * Invariants (abort on failure):
 *   - a client that sent nothing, and that no answer listed and the
 *     denylist does not hold, is never banned and never gets a 5xx; a ban
 *     names the client's address
 *   - what a client reads is either a prefix of what its backend
 *     connection sent, or SMTP reply lines; what the backend reads is the
 *     PROXY header (if configured) and then a prefix of what the client
 *     sent (checked when the input has one session)
 *   - backend connections never exceed backend_max_connections
 *   - at the end, once every session is closed: no watcher active, no
 *     descriptor, lookup, generation hold or client entry left, the
 *     open-sessions gauges at zero and one session counted per session
 *     started
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bans.h"
#include "clients.h"
#include "dnsbl.h"
#include "generation.h"
#include "log.h"
#include "proxy.h"
#include "server.h"
#include "session.h"

#define FUZZ_WATCHERS 64
#define FUZZ_SESSIONS 4
#define FUZZ_BACKENDS 8
#define FUZZ_STREAM 65536
#define FUZZ_BIG 96          /* a big send repeats its data this often */

static void fuzz_check(bool ok)
{
    if (!ok)
        abort();
}

/* ---- the event loop: watchers registered here, a clock that moves only
 * when the input fires a timer ---- */

static struct {
    double now;
    ev_io *io[FUZZ_WATCHERS];
    size_t ios;
    ev_timer *timer[FUZZ_WATCHERS];
    double due[FUZZ_WATCHERS];
    size_t timers;
} loop_state;

#define FUZZ_LOOP ((struct ev_loop *)&loop_state)

ev_tstamp ev_now(struct ev_loop *loop)
{
    fuzz_check(loop == FUZZ_LOOP);
    return loop_state.now;
}

void ev_io_start(struct ev_loop *loop, ev_io *w)
{
    fuzz_check(loop == FUZZ_LOOP);
    if (w->active)
        return;
    fuzz_check(loop_state.ios < FUZZ_WATCHERS && w->fd >= 0);
    w->active = 1;
    loop_state.io[loop_state.ios++] = w;
}

void ev_io_stop(struct ev_loop *loop, ev_io *w)
{
    fuzz_check(loop == FUZZ_LOOP);
    for (size_t i = 0; i < loop_state.ios; i++)
        if (loop_state.io[i] == w) {
            loop_state.io[i] = loop_state.io[--loop_state.ios];
            break;
        }
    w->active = 0;
}

void ev_timer_start(struct ev_loop *loop, ev_timer *w)
{
    fuzz_check(loop == FUZZ_LOOP);
    if (w->active)
        return;
    fuzz_check(loop_state.timers < FUZZ_WATCHERS && w->at >= 0);
    w->active = 1;
    loop_state.due[loop_state.timers] = loop_state.now + w->at;
    loop_state.timer[loop_state.timers++] = w;
}

void ev_timer_stop(struct ev_loop *loop, ev_timer *w)
{
    fuzz_check(loop == FUZZ_LOOP);
    for (size_t i = 0; i < loop_state.timers; i++)
        if (loop_state.timer[i] == w) {
            loop_state.timers--;
            loop_state.timer[i] = loop_state.timer[loop_state.timers];
            loop_state.due[i] = loop_state.due[loop_state.timers];
            break;
        }
    w->active = 0;
}

static bool loop_io_active(const ev_io *w)
{
    for (size_t i = 0; i < loop_state.ios; i++)
        if (loop_state.io[i] == w)
            return true;
    return false;
}

/* loop_dispatch - one round: every io watcher whose socket is ready, as
 * libev would call them; a callback may stop or free other watchers */
static void loop_dispatch(void)
{
    ev_io *ready[FUZZ_WATCHERS];
    int revents[FUZZ_WATCHERS];
    size_t n = 0;

    for (size_t i = 0; i < loop_state.ios; i++) {
        ev_io *w = loop_state.io[i];
        struct pollfd p = {w->fd, (short)((w->events & EV_READ ? POLLIN : 0) |
                                          (w->events & EV_WRITE ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 0) != 1)
            continue;
        int ev = 0;
        if (p.revents & (POLLIN | POLLHUP | POLLERR))
            ev |= w->events & EV_READ;
        if (p.revents & (POLLOUT | POLLHUP | POLLERR))
            ev |= w->events & EV_WRITE;
        if (ev == 0)
            continue;
        ready[n] = w;
        revents[n++] = ev;
    }
    for (size_t i = 0; i < n; i++)
        if (loop_io_active(ready[i])) /* not stopped by an earlier callback */
            ready[i]->cb(FUZZ_LOOP, ready[i], revents[i]);
}

/* loop_fire - the earliest timer fires (the clock moves to it); false
 * when none is active */
static bool loop_fire(void)
{
    if (loop_state.timers == 0)
        return false;
    size_t first = 0;
    for (size_t i = 1; i < loop_state.timers; i++)
        if (loop_state.due[i] < loop_state.due[first])
            first = i;
    ev_timer *w = loop_state.timer[first];
    if (loop_state.due[first] > loop_state.now)
        loop_state.now = loop_state.due[first];
    ev_timer_stop(FUZZ_LOOP, w); /* a one-shot timer is stopped when it fires */
    w->cb(FUZZ_LOOP, w, EV_TIMER);
    return true;
}

/* ---- the neighbours: DNSBL lookups, generations, bans ---- */

struct dnsbl_lookup {
    dnsbl_update_fn fn;
    void *arg;
    struct dnsbl_score score;
    bool cached;
};

static struct {
    struct dnsbl_lookup *lookup;   /* the live one, at most one (one client) */
    unsigned lookups;
    bool cache;                    /* a new lookup starts settled */
    bool last_listed;
    bool ever_listed;              /* an answer listed the client */
    bool client_spoke;             /* some client sent bytes */
    bool denylisted;
    unsigned bans;
    struct addr client;
} world;

struct dnsbl_lookup *dnsbl_lookup_start(struct dnsbl *d, const struct addr *a,
                                        dnsbl_update_fn fn, void *arg)
{
    (void)d;
    fuzz_check(addr_equal(a, &world.client) && world.lookup == NULL);
    struct dnsbl_lookup *l = calloc(1, sizeof *l);
    fuzz_check(l != NULL);
    l->fn = fn;
    l->arg = arg;
    if (world.cache && world.lookups > 0) {
        l->cached = l->score.settled = true;
        l->score.listed = world.last_listed;
        l->score.score = world.last_listed ? 1 : 0;
        l->score.hits = world.last_listed ? 1 : 0;
    }
    world.lookups++;
    world.lookup = l;
    return l;
}

void dnsbl_lookup_score(const struct dnsbl_lookup *l, struct dnsbl_score *out)
{
    fuzz_check(l == world.lookup);
    *out = l->score;
}

bool dnsbl_lookup_cached(const struct dnsbl_lookup *l)
{
    fuzz_check(l == world.lookup);
    return l->cached;
}

void dnsbl_lookup_release(struct dnsbl_lookup *l)
{
    if (l == NULL)
        return;
    fuzz_check(l == world.lookup);
    world.lookup = NULL;
    free(l);
}

/* dns_answer - a list answers: listed or not, settling the score or not */
static void dns_answer(bool listed, bool settles)
{
    struct dnsbl_lookup *l = world.lookup;
    if (l == NULL)
        return;
    if (listed) {
        l->score.score += 1;
        l->score.hits |= 1;
        l->score.listed = true;
        world.ever_listed = true;
    }
    if (settles)
        l->score.settled = true;
    world.last_listed = l->score.listed;
    l->fn(l->arg);
}

static struct generation generation;

struct generation *generation_hold(struct generation *g)
{
    fuzz_check(g == &generation && g->holders > 0);
    g->holders++;
    return g;
}

void generation_drop(struct generation *g)
{
    if (g == NULL)
        return;
    fuzz_check(g == &generation && g->holders > 1); /* the server keeps one */
    g->holders--;
}

bool bans_offender(struct bans *b, const struct addr *a, enum store_ban_reason reason, bool kill)
{
    (void)b;
    (void)reason;
    fuzz_check(!kill && addr_equal(a, &world.client));
    /* the proof: an answer that listed it, the denylist, or bytes it sent
     * before it was spoken to */
    fuzz_check(world.ever_listed || world.denylisted || world.client_spoke);
    world.bans++;
    return true;
}

void server_refuse(int fd, const char *reply)
{
    (void)reply;
    close(fd);
}

/* ---- the peers: clients and backend connections over TCP ---- */

struct stream {
    uint8_t data[FUZZ_STREAM];
    size_t len;
    bool overflow;           /* more went than data holds: not compared */
};

struct peer {
    int fd;                  /* our end, -1 once closed */
    struct stream sent, got;
};

static struct {
    struct conf conf;
    struct server srv;
    struct metrics_slot metrics;
    int client_listener, backend_listener;
    uint16_t listener_port, backend_port, dead_port;
    struct peer client[FUZZ_SESSIONS];
    uint16_t client_port[FUZZ_SESSIONS];
    size_t clients;
    struct peer backend[FUZZ_BACKENDS];
    size_t backends;
    int fds_at_start;
} fz;

static void stream_add(struct stream *s, const uint8_t *p, size_t n)
{
    if (n > sizeof s->data - s->len) {
        n = sizeof s->data - s->len;
        s->overflow = true;
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

static int tcp_listener(uint16_t *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fuzz_check(fd >= 0);
    fuzz_check(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(fd, 64) == 0);
    fuzz_check(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* peer_socket - our end of a connection, with the smallest receive buffer
 * the kernel allows: the session and the relay meet full sockets soon */
static struct peer peer_socket(int fd)
{
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
    return (struct peer){.fd = fd};
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    fuzz_check(d != NULL);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* client_connect - a new client connection; its accepted end goes to
 * session_start() as the server's accept would */
static void client_connect(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    uint16_t port;

    if (fz.clients == FUZZ_SESSIONS)
        return;
    fuzz_check(getsockname(fz.client_listener, (struct sockaddr *)&sin, &len) == 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fuzz_check(fd >= 0);
    fuzz_check(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 || errno == EINPROGRESS);
    len = sizeof sin;
    fuzz_check(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    port = ntohs(sin.sin_port);
    int server_fd = accept4(fz.client_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    fuzz_check(server_fd >= 0);
    /* the smallest send buffer too (a fixed one: no autotuning), so that
     * replies and relayed bytes meet a full socket as with a slow client */
    int one = 1;
    setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
    struct client *c = clients_get(fz.srv.clients, &world.client);
    fuzz_check(c != NULL);
    fz.client[fz.clients] = peer_socket(fd);
    fz.client_port[fz.clients++] = port;
    session_start(&fz.srv, c, server_fd, port, NULL);
}

/* peer_send - send data (FUZZ_BIG times over if big) as far as the
 * socket takes it */
static void peer_send(struct peer *p, const uint8_t *data, size_t n, bool big, bool is_client)
{
    if (p->fd < 0 || n == 0)
        return;
    for (int i = 0; i < (big ? FUZZ_BIG : 1); i++) {
        ssize_t sent = send(p->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent <= 0)
            return;
        stream_add(&p->sent, data, (size_t)sent);
        if (is_client)
            world.client_spoke = true;
        if ((size_t)sent < n)
            return;
    }
}

static void peer_read(struct peer *p)
{
    uint8_t buf[4096];
    ssize_t n;

    if (p->fd < 0)
        return;
    while ((n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        stream_add(&p->got, buf, (size_t)n);
}

static void peer_close(struct peer *p, bool reset)
{
    if (p->fd < 0)
        return;
    peer_read(p); /* what came before the close still counts */
    if (reset) {
        struct linger l = {1, 0};
        setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(p->fd);
    p->fd = -1;
}

static void backend_accept(void)
{
    int fd;

    while (fz.backends < FUZZ_BACKENDS &&
           (fd = accept4(fz.backend_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        fz.backend[fz.backends++] = peer_socket(fd);
}

/* ---- the invariants on what the peers read ---- */

static bool is_prefix(const struct stream *part, const struct stream *whole)
{
    return part->overflow || whole->overflow ||
           (part->len <= whole->len && memcmp(part->data, whole->data, part->len) == 0);
}

/* reply_lines - "ddd[ -]text\r\n"... (a last line may be cut short by a
 * close); *five: a 5xx line among them */
static bool reply_lines(const struct stream *s, bool *five)
{
    size_t col = 0;
    for (size_t i = 0; i < s->len; i++) {
        uint8_t c = s->data[i];
        if (col < 3 && (c < '0' || c > '9'))
            return false;
        if (col == 0 && c == '5')
            *five = true;
        if (col == 3 && c != ' ' && c != '-' && c != '\r')
            return false;
        if (c == '\n' && (i == 0 || s->data[i - 1] != '\r'))
            return false;
        if (c == '\r' && i + 1 < s->len && s->data[i + 1] != '\n')
            return false;
        col = c == '\n' ? 0 : col + 1;
    }
    return true;
}

static void check_peers(void)
{
    bool innocent = !world.ever_listed && !world.denylisted && !world.client_spoke;

    for (size_t i = 0; i < fz.clients; i++) {
        const struct stream *got = &fz.client[i].got;
        bool five = false;
        bool relayed = false;
        for (size_t j = 0; j < fz.backends; j++)
            relayed |= is_prefix(got, &fz.backend[j].sent);
        fuzz_check(relayed || reply_lines(got, &five));
        fuzz_check(!(innocent && five));
    }
    if (fz.clients != 1 || fz.backends != 1)
        return;
    /* the one backend connection: the PROXY header, then the client's bytes */
    const struct stream *got = &fz.backend[0].got;
    uint8_t header[PROXY_HEADER_MAX];
    ssize_t header_len = 0;
    if (fz.conf.backend_proxy_protocol != PROXY_NONE) {
        struct addr local;
        fuzz_check(addr_parse("127.0.0.1", &local) == 0);
        header_len = proxy_header_write(fz.conf.backend_proxy_protocol, &world.client,
                                        fz.client_port[0], &local, fz.listener_port, header,
                                        sizeof header);
        fuzz_check(header_len > 0);
    }
    size_t head = got->len < (size_t)header_len ? got->len : (size_t)header_len;
    fuzz_check(memcmp(got->data, header, head) == 0);
    if (got->len >= (size_t)header_len) {
        static struct stream rest;
        rest.len = got->len - (size_t)header_len;
        rest.overflow = got->overflow;
        memcpy(rest.data, got->data + header_len, rest.len);
        fuzz_check(is_prefix(&rest, &fz.client[0].sent));
    }
}

/* ---- one input ---- */

/* setup_once - the listeners and the parts of the configuration that do
 * not change; the dead port is one that was bound once and closed */
static void setup_once(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    log_set_level(LOG_LEVEL_ERROR);
    fz.client_listener = tcp_listener(&fz.listener_port);
    fz.backend_listener = tcp_listener(&fz.backend_port);
    close(tcp_listener(&fz.dead_port));
    fuzz_check(addr_parse("127.0.0.1", &world.client) == 0);
}

static void conf_make(uint8_t bits)
{
    static const char *const proxy[] = {"none", "v1", "v2", "none"};
    char err[512], backend[64];
    struct conf *c = &fz.conf;

    conf_init(c);
    snprintf(backend, sizeof backend, "127.0.0.1:%u",
             (bits & 0x20) ? fz.dead_port : fz.backend_port);
    const char *const set[][2] = {
        {"backend", backend},
        {"backend_proxy_protocol", proxy[bits & 3]},
        {"reject_delay", (bits & 4) ? "2" : "0"},
        {"allowlist", (bits & 8) ? "127.0.0.1" : ""},
        {"denylist", (bits & 16) ? "127.0.0.0/8" : ""},
        {"backend_max_connections", (bits & 0x40) ? "1" : "8"},
        {"dnsbl_sites", "bl.test"},
        {"hostname", "mx.fuzz.test"},
        {"dnsbl_timeout", "5"},
        {"command_timeout", "30"},
        {"reject_session_timeout", "60"},
        {"relay_idle_timeout", "120"},
        {"backend_connect_timeout", "10"},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        fuzz_check(conf_set(c, set[i][0], set[i][1], "fuzz", err) == 0);
    fuzz_check(conf_finish(c, err) == 0);
}

static void begin(uint8_t bits)
{
    setup_once();
    struct addr client = world.client;
    memset(&world, 0, sizeof world);
    world.client = client;
    world.cache = (bits & 0x80) != 0;
    world.denylisted = (bits & 0x18) == 0x10; /* the allowlist comes first */
    memset(&loop_state, 0, sizeof loop_state);
    loop_state.now = 1000.0;
    memset(&fz.metrics, 0, sizeof fz.metrics);
    fz.clients = fz.backends = 0;
    conf_make(bits);
    generation = (struct generation){.conf = &fz.conf, .holders = 1};
    fz.srv = (struct server){.loop = FUZZ_LOOP, .gen = &generation, .metrics = &fz.metrics};
    fz.srv.clients = clients_new();
    fuzz_check(fz.srv.clients != NULL);
    fz.fds_at_start = count_fds();
}

static void count_entry(struct client *c, void *arg)
{
    (void)c;
    (*(unsigned *)arg)++;
}

static void end(void)
{
    unsigned entries = 0;
    uint64_t sessions = 0;

    for (size_t i = 0; i < fz.clients; i++)
        peer_read(&fz.client[i]);
    for (size_t i = 0; i < fz.backends; i++)
        peer_read(&fz.backend[i]);
    check_peers();
    clients_foreach(fz.srv.clients, session_close_all, NULL);
    clients_foreach(fz.srv.clients, count_entry, &entries);
    fuzz_check(entries == 0 && fz.srv.connections == 0 && fz.srv.backend_connections == 0);
    fuzz_check(loop_state.ios == 0 && loop_state.timers == 0);
    fuzz_check(world.lookup == NULL && generation.holders == 1);
    for (size_t i = 0; i < METRICS_STATES; i++)
        fuzz_check(fz.metrics.open[i] == 0);
    for (size_t i = 0; i < METRICS_VERDICTS; i++)
        sessions += fz.metrics.sessions[i];
    fuzz_check(sessions == fz.clients);
    clients_free(fz.srv.clients);
    for (size_t i = 0; i < fz.clients; i++)
        peer_close(&fz.client[i], false);
    for (size_t i = 0; i < fz.backends; i++)
        peer_close(&fz.backend[i], false);
    int fd; /* connections the input never accepted */
    while ((fd = accept4(fz.backend_listener, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        close(fd);
    fuzz_check(count_fds() == fz.fds_at_start);
    conf_free(&fz.conf);
}

/* take - the next length byte and that many bytes of data */
static const uint8_t *take(const uint8_t **data, size_t *size, size_t *len)
{
    const uint8_t *p;
    if (*size == 0) {
        *len = 0;
        return *data;
    }
    *len = 1 + (size_t)**data;
    (*data)++;
    (*size)--;
    if (*len > *size)
        *len = *size;
    p = *data;
    *data += *len;
    *size -= *len;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    begin(data[0]);
    data++;
    size--;
    client_connect();
    while (size > 0) {
        uint8_t op = *data & 15, arg = *data >> 4;
        struct peer *client = &fz.client[arg % fz.clients];
        struct peer *backend = fz.backends ? &fz.backend[arg % fz.backends] : NULL;
        const uint8_t *bytes;
        size_t len;

        data++;
        size--;
        switch (op) {
        case 0:
            client_connect();
            break;
        case 1:
            bytes = take(&data, &size, &len);
            peer_send(client, bytes, len, arg & 8, true);
            break;
        case 2:
            peer_read(client);
            break;
        case 3:
            if (client->fd >= 0)
                shutdown(client->fd, SHUT_WR);
            break;
        case 4:
            peer_close(client, arg & 8);
            break;
        case 5:
            dns_answer(arg & 1, arg & 2);
            break;
        case 6:
            loop_dispatch();
            break;
        case 7:
            loop_fire();
            break;
        case 8:
            backend_accept();
            break;
        case 9:
            bytes = take(&data, &size, &len);
            if (backend != NULL)
                peer_send(backend, bytes, len, arg & 8, false);
            break;
        case 10:
            if (backend != NULL)
                peer_read(backend);
            break;
        case 11:
            if (backend != NULL && backend->fd >= 0)
                shutdown(backend->fd, SHUT_WR);
            break;
        case 12:
            if (backend != NULL)
                peer_close(backend, arg & 8);
            break;
        case 13:
            clients_foreach(fz.srv.clients, session_shutdown_all, NULL);
            break;
        case 14: /* time passes: every timer due by then fires */
            loop_state.now += 0.5 * arg;
            while (loop_state.timers > 0) {
                size_t first = 0;
                for (size_t i = 1; i < loop_state.timers; i++)
                    if (loop_state.due[i] < loop_state.due[first])
                        first = i;
                if (loop_state.due[first] > loop_state.now)
                    break;
                loop_fire();
            }
            break;
        case 15:
            for (int i = 0; i < 8; i++)
                loop_dispatch();
            break;
        }
        fuzz_check(fz.srv.backend_connections <= fz.conf.backend_max_connections);
    }
    end();
    return 0;
}
