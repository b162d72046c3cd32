/*
 * session - one client connection's state machine. See session.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "generation.h"
#include "evutil.h"
#include "log.h"
#include "relay.h"
#include "session.h"
#include "smtp.h"

#define SESSION_IN_MAX 1024                      /* > SMTP_LINE_MAX + CRLF */
#define SESSION_OUT_MAX (3 * ENGINE_REPLY_MAX)
#define SESSION_CLOSING_TIMEOUT 5.0              /* to deliver a last reply */
#define SESSION_LISTS_MAX 256

enum session_state { SESSION_DNSBL, SESSION_REJECT, SESSION_RELAY, SESSION_CLOSING };

enum session_verdict {
    VERDICT_HANGUP,      /* the client left before a verdict */
    VERDICT_LISTED, VERDICT_CLEAN, VERDICT_ALLOWLISTED, VERDICT_DENYLISTED,
    VERDICT_PREGREET, VERDICT_LIMIT, VERDICT_BACKEND_DOWN,
};

_Static_assert((int)VERDICT_LIMIT == METRICS_VERDICT_LIMIT &&
               (int)VERDICT_BACKEND_DOWN + 1 == METRICS_VERDICTS,
               "session verdicts and metrics verdicts differ");
_Static_assert((int)SESSION_CLOSING == METRICS_STATE_CLOSING,
               "session states and metrics states differ");

static const char *const session_state_names[] = {
    [SESSION_DNSBL] = "dnsbl", [SESSION_REJECT] = "reject",
    [SESSION_RELAY] = "relay", [SESSION_CLOSING] = "closing",
};

static const char *const session_verdict_names[] = {
    [VERDICT_HANGUP] = "hangup", [VERDICT_LISTED] = "listed",
    [VERDICT_CLEAN] = "clean", [VERDICT_ALLOWLISTED] = "allowlisted",
    [VERDICT_DENYLISTED] = "denylisted", [VERDICT_PREGREET] = "pregreet",
    [VERDICT_LIMIT] = "limit", [VERDICT_BACKEND_DOWN] = "backend-down",
};

/* I/O buffers of a session that speaks SMTP itself, allocated only while
 * bytes wait in them: an idle connection costs no buffer. */
struct session_buffers {
    size_t in_len;
    uint8_t in[SESSION_IN_MAX];
    uint8_t out_data[SESSION_OUT_MAX];
    struct engine_output out;
};

struct session {
    struct server *srv;
    struct generation *gen;       /* the configuration it started under, held */
    struct client *client;
    struct netlimit_entry *net;   /* its count in the client's network, or NULL */
    struct session *prev, *next;  /* the client's sessions */
    int fd;
    uint16_t port;
    uint8_t state;                /* enum session_state */
    uint8_t verdict;              /* enum session_verdict */
    bool shut;                    /* CLOSING: our sending side is shut */
    bool from_cache;              /* the verdict came from the cache */
    bool banned;                  /* handed to the firewall already */
    int score;
    uint64_t hits;
    double started;               /* accept time */
    double reject_started;
    double last_active;           /* last bytes from the client */
    ev_io io;
    ev_timer timer;
    struct session_buffers *buf;  /* only while bytes wait in it */
    struct engine engine;
    struct relay *relay;
    uint64_t bytes_in, bytes_out;
    const char *reason;           /* why it ended as it did, for the log */
};

static void session_close(struct session *s);
static void session_ban(struct session *s);
static void session_reject_begin(struct session *s);

/* session_enter - the one place where a session changes state (and the
 * open-connections-by-state gauge with it; session_start() and
 * session_close() count the first and the last) */
static void session_enter(struct session *s, enum session_state state)
{
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char text[ADDR_TEXT_MAX];
        addr_format(&s->client->node.addr, text, sizeof text);
        log_debug("session [%s]:%u state %s -> %s", text, s->port,
                  session_state_names[s->state], session_state_names[state]);
    }
    s->srv->metrics->open[s->state]--;
    s->srv->metrics->open[state]++;
    s->state = (uint8_t)state;
}

/* session_timer_at - (re)arm the session timer for an absolute time */
static void session_timer_at(struct session *s, double when)
{
    struct ev_loop *loop = s->srv->loop;
    double delay = when - ev_now(loop);
    ev_timer_stop(loop, &s->timer);
    ev_timer_set(&s->timer, delay > 0 ? delay : 0., 0.);
    ev_timer_start(loop, &s->timer);
}

/* session_buffers - the I/O buffers, allocated on first use */
/* gcc 12 -fanalyzer: "leak of *s.buf", a false positive: the buffers are
 * kept in s->buf and freed by session_buffers_release() or session_close().
 * The analyzer drops what is stored in a struct reached through a
 * callback's argument once a library call has seen that struct. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static struct session_buffers *session_buffers(struct session *s)
{
    if (s->buf == NULL) {
        s->buf = malloc(sizeof *s->buf);
        if (s->buf == NULL)
            return NULL;
        s->buf->in_len = 0;
        s->buf->out = (struct engine_output){s->buf->out_data, 0, sizeof s->buf->out_data};
    }
    return s->buf;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* session_buffers_release - free the buffers if nothing waits in them */
static void session_buffers_release(struct session *s)
{
    if (s->buf != NULL && s->buf->in_len == 0 && s->buf->out.len == 0) {
        free(s->buf);
        s->buf = NULL;
    }
}

/* session_flush - write buffered output; -1 when the client is gone */
static int session_flush(struct session *s)
{
    if (s->buf == NULL || s->buf->out.len == 0)
        return 0;
    struct engine_output *out = &s->buf->out;
    ssize_t n = send(s->fd, out->data, out->len, MSG_NOSIGNAL);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    memmove(out->data, out->data + n, out->len - (size_t)n);
    out->len -= (size_t)n;
    s->bytes_out += (uint64_t)n;
    return 0;
}

/* session_read - read into the input buffer: 1 bytes came, 0 nothing now,
 * -1 the client closed or failed */
static int session_read(struct session *s)
{
    struct session_buffers *b = session_buffers(s);
    if (b == NULL) {
        s->reason = "out of memory";
        return -1;
    }
    size_t room = SESSION_IN_MAX - b->in_len;
    if (room == 0)
        return 0;
    ssize_t n = recv(s->fd, b->in + b->in_len, room, 0);
    if (n > 0) {
        b->in_len += (size_t)n;
        s->bytes_in += (uint64_t)n;
        s->last_active = ev_now(s->srv->loop);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        session_buffers_release(s);
        return 0;
    }
    return -1;
}

/* session_say_and_close - send one last reply, then close */
static void session_say_and_close(struct session *s, const char *reply)
{
    struct session_buffers *b = session_buffers(s);
    if (b == NULL) {
        session_close(s);
        return;
    }
    size_t len = strlen(reply);
    if (b->out.len + len + 2 <= b->out.cap) {
        memcpy(b->out.data + b->out.len, reply, len);
        memcpy(b->out.data + b->out.len + len, "\r\n", 2);
        b->out.len += len + 2;
    }
    session_enter(s, SESSION_CLOSING);
    session_timer_at(s, ev_now(s->srv->loop) + SESSION_CLOSING_TIMEOUT);
    evutil_io_want(s->srv->loop, &s->io, EV_WRITE);
}

/* session_closing_io - deliver the last reply, shut, wait for the client */
static void session_closing_io(struct session *s)
{
    if (session_flush(s) < 0) {
        session_close(s);
        return;
    }
    if (s->buf != NULL && s->buf->out.len > 0) {
        evutil_io_want(s->srv->loop, &s->io, EV_WRITE);
        return;
    }
    if (s->engine.sent_5xx)
        session_ban(s);
    free(s->buf); /* whatever the client still sends is dropped */
    s->buf = NULL;
    if (!s->shut) {
        shutdown(s->fd, SHUT_WR);
        s->shut = true;
    }
    char scratch[512];
    ssize_t n = recv(s->fd, scratch, sizeof scratch, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        session_close(s);
        return;
    }
    evutil_io_want(s->srv->loop, &s->io, EV_READ);
}

/* session_log - the one line every session ends with */
static void session_log(const struct session *s)
{
    char addr[ADDR_TEXT_MAX], lists[SESSION_LISTS_MAX], extra[160] = "";
    addr_format(&s->client->node.addr, addr, sizeof addr);
    dnsbl_format_hits(&s->gen->conf->dnsbl_sites, s->hits, lists, sizeof lists);
    double duration = ev_now(s->srv->loop) - s->started;
    if (s->verdict == VERDICT_CLEAN || s->verdict == VERDICT_ALLOWLISTED)
        snprintf(extra, sizeof extra, " bytes_in=%llu bytes_out=%llu",
                 (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
    else if (s->engine.commands > 0)
        snprintf(extra, sizeof extra, " commands=%u", s->engine.commands);
    log_info("session client=[%s]:%u verdict=%s score=%d lists=%s duration=%.3f%s%s%s%s%s",
             addr, s->port, session_verdict_names[s->verdict], s->score, lists,
             duration, s->from_cache ? " cache=hit" : "", extra, s->reason ? " reason=\"" : "",
             s->reason ? s->reason : "", s->reason ? "\"" : "");
}

/* session_ban - a refused client goes to the firewall: once its first 5xx
 * has been written (a false positive must learn why), or at the end for a
 * denylisted or pregreeting client that never got that far */
static void session_ban(struct session *s)
{
    static const enum store_ban_reason reason[] = {
        [VERDICT_LISTED] = STORE_BAN_DNSBL, [VERDICT_DENYLISTED] = STORE_BAN_DENYLIST,
        [VERDICT_PREGREET] = STORE_BAN_PREGREET,
    };
    if (s->banned || (s->verdict != VERDICT_LISTED && s->verdict != VERDICT_DENYLISTED &&
                      s->verdict != VERDICT_PREGREET))
        return;
    s->banned = true;
    bans_offender(s->srv->bans, &s->client->node.addr, reason[s->verdict], false);
}

/* session_count_end - the metrics of a session that ends */
static void session_count_end(const struct session *s)
{
    struct metrics_slot *m = s->srv->metrics;
    m->open[s->state]--;
    m->sessions[s->verdict]++;
    if (s->verdict == VERDICT_CLEAN || s->verdict == VERDICT_ALLOWLISTED) {
        m->relayed_to_backend += s->bytes_in;
        m->relayed_to_client += s->bytes_out;
    }
}

/* session_close - log, release everything, free */
static void session_close(struct session *s)
{
    struct server *srv = s->srv;
    struct client *c = s->client;
    ev_io_stop(srv->loop, &s->io);
    ev_timer_stop(srv->loop, &s->timer);
    if (s->relay != NULL) {
        struct relay_stats stats;
        relay_stats(s->relay, &stats);
        s->bytes_in = stats.to_backend;
        s->bytes_out = stats.to_client;
        relay_free(s->relay);
        srv->backend_connections--;
    }
    if (s->verdict != VERDICT_LISTED) /* listed: only after a 5xx went out */
        session_ban(s);
    session_log(s);
    session_count_end(s);
    close(s->fd);
    free(s->buf);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->first = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    c->sessions--;
    srv->connections--;
    clients_put(srv->clients, c);
    if (s->net != NULL)
        netlimit_release(srv->nets, s->net);
    generation_drop(s->gen);
    free(s);
}

/* session_reject_reply - the RCPT reply for this client, made when needed
 * rather than kept: an idle listed session holds no text */
static void session_reject_reply(const struct session *s, char *text, size_t size)
{
    char addr[ADDR_TEXT_MAX], lists[SESSION_LISTS_MAX];
    if (s->verdict == VERDICT_DENYLISTED)
        snprintf(lists, sizeof lists, "local denylist");
    else if (s->verdict == VERDICT_PREGREET)
        snprintf(lists, sizeof lists, "pregreet test");
    else
        dnsbl_format_hits(&s->gen->conf->dnsbl_sites, s->hits, lists, sizeof lists);
    addr_format(&s->client->node.addr, addr, sizeof addr);
    smtp_format_reject(s->gen->conf->reject_message, addr, lists, text, size);
}

/* session_reject_deadline - the idle or the whole-session limit, earlier */
static double session_reject_deadline(const struct session *s)
{
    const struct conf *conf = s->gen->conf;
    double idle = s->last_active + conf->command_timeout;
    double whole = s->reject_started + conf->reject_session_timeout;
    return idle < whole ? idle : whole;
}

/* session_reject_gated - reject_delay, a tarpit as OpenBSD spamd's: the
 * client's next command is not read until reject_delay after our last
 * reply (or its last bytes), so each reply comes that long after the
 * client's command. The command waits in the kernel, not in our buffers.
 * True while the gate is shut; the session's timer is then set for its
 * opening, or for the session's deadline if that comes first. */
static bool session_reject_gated(struct session *s)
{
    double due = s->last_active + s->gen->conf->reject_delay;
    if (s->gen->conf->reject_delay <= 0 || ev_now(s->srv->loop) >= due)
        return false;
    double deadline = session_reject_deadline(s);
    session_timer_at(s, due < deadline ? due : deadline);
    return true;
}

/* session_reject_pump - answer what the client sent, write what we can */
static void session_reject_pump(struct session *s)
{
    struct session_buffers *b = s->buf;
    if (b == NULL) { /* nothing came, nothing waits to go */
        evutil_io_want(s->srv->loop, &s->io, session_reject_gated(s) ? 0 : EV_READ);
        return;
    }
    char reply[ENGINE_REPLY_MAX];
    session_reject_reply(s, reply, sizeof reply);
    const struct engine_params params = {s->gen->conf->hostname, reply};
    for (;;) {
        size_t used = engine_input(&s->engine, &params, b->in, b->in_len, &b->out);
        memmove(b->in, b->in + used, b->in_len - used);
        b->in_len -= used;
        if (b->out.len > 0 && s->gen->conf->reject_delay > 0)
            s->last_active = ev_now(s->srv->loop); /* the tarpit's gate runs from here */
        if (session_flush(s) < 0) {
            s->reason = "client gone";
            session_close(s);
            return;
        }
        if (s->engine.sent_5xx && b->out.len == 0)
            session_ban(s);
        if (used == 0 || b->out.len > 0 || s->engine.closing)
            break;
    }
    if (s->engine.closing) {
        session_enter(s, SESSION_CLOSING);
        session_timer_at(s, ev_now(s->srv->loop) + SESSION_CLOSING_TIMEOUT);
        session_closing_io(s);
        return;
    }
    int want = b->out.len > 0 ? EV_WRITE : 0;
    if (b->in_len < SESSION_IN_MAX && b->out.cap - b->out.len >= ENGINE_REPLY_MAX &&
        !session_reject_gated(s))
        want |= EV_READ;
    evutil_io_want(s->srv->loop, &s->io, want);
    session_buffers_release(s);
}

/* session_reject_begin - listed (or denylisted, or pregreet): the engine
 * takes over the dialogue */
static void session_reject_begin(struct session *s)
{
    if (session_buffers(s) == NULL) {
        s->reason = "out of memory";
        session_close(s);
        return;
    }
    double now = ev_now(s->srv->loop);
    s->reject_started = s->last_active = now;
    session_enter(s, SESSION_REJECT);
    engine_init(&s->engine);
    const struct engine_params params = {s->gen->conf->hostname, NULL};
    engine_greeting(&s->engine, &params, &s->buf->out);
    if (session_flush(s) < 0) { /* the greeting is never held back */
        s->reason = "client gone";
        session_close(s);
        return;
    }
    session_timer_at(s, session_reject_deadline(s));
    session_reject_pump(s);
}

/* session_reject_io - the client socket is ready during the dialogue */
static void session_reject_io(struct session *s, int revents)
{
    if ((revents & EV_READ) && session_read(s) < 0) {
        s->reason = "client closed";
        session_close(s);
        return;
    }
    session_reject_pump(s);
}

/* session_reject_timeout - idle too long, or kept too long in all */
static void session_reject_timeout(struct session *s)
{
    double deadline = session_reject_deadline(s);
    if (ev_now(s->srv->loop) < deadline) {
        session_timer_at(s, deadline);
        session_reject_pump(s); /* a held reply may be due */
        return;
    }
    char reply[300];
    snprintf(reply, sizeof reply, "421 4.4.2 %s Error: timeout exceeded",
             s->gen->conf->hostname);
    s->reason = "timeout";
    session_say_and_close(s, reply);
}

/* session_relay_done - relay.c reports how the relay ended */
static void session_relay_done(void *arg, enum relay_event event,
                               const struct relay_stats *stats)
{
    struct session *s = arg;
    s->relay = NULL;
    s->srv->backend_connections--;
    s->bytes_in = stats->to_backend;
    s->bytes_out = stats->to_client;
    s->reason = stats->problem;
    switch (event) {
    case RELAY_BACKEND_DOWN:
        s->srv->metrics->backend_connect_failures++;
        s->srv->metrics->refused[METRICS_REFUSED_BACKEND_DOWN]++;
        s->verdict = VERDICT_BACKEND_DOWN;
        session_say_and_close(s, SERVER_REPLY_TRY_LATER);
        break;
    case RELAY_CLIENT_SPOKE:
        s->verdict = VERDICT_PREGREET;
        s->reason = NULL;
        session_reject_begin(s);
        break;
    case RELAY_FINISHED:
        session_close(s);
        break;
    }
}

/* session_relay_begin - clean or allowlisted: hand the client to the
 * backend, unless the backend already has all it may take */
static void session_relay_begin(struct session *s)
{
    struct server *srv = s->srv;
    const struct conf *conf = s->gen->conf;
    if (srv->backend_connections >= conf->backend_max_connections) {
        srv->metrics->refused[METRICS_REFUSED_BACKEND_FULL]++;
        s->verdict = VERDICT_LIMIT;
        s->reason = "backend_max_connections";
        session_say_and_close(s, SERVER_REPLY_TRY_LATER);
        return;
    }
    ev_io_stop(srv->loop, &s->io);
    ev_timer_stop(srv->loop, &s->timer);
    session_enter(s, SESSION_RELAY);
    s->relay = relay_start(srv->loop, conf, s->fd, &s->client->node.addr, s->port,
                           session_relay_done, s);
    if (s->relay == NULL) {
        srv->metrics->backend_connect_failures++;
        srv->metrics->refused[METRICS_REFUSED_BACKEND_DOWN]++;
        s->verdict = VERDICT_BACKEND_DOWN;
        s->reason = strerror(errno);
        session_say_and_close(s, SERVER_REPLY_TRY_LATER);
        return;
    }
    srv->backend_connections++;
}

/* session_decide - the verdict is in: reject or relay */
static void session_decide(struct session *s, enum session_verdict verdict)
{
    s->verdict = (uint8_t)verdict;
    if (verdict == VERDICT_CLEAN || verdict == VERDICT_ALLOWLISTED)
        session_relay_begin(s);
    else
        session_reject_begin(s);
}

/* session_lookup_done - s has its verdict: the client's lookup is let go
 * unless another of its sessions still waits on it (a later session asks
 * the cache, where the lookup leaves its verdict) */
static void session_lookup_done(struct session *s)
{
    struct client *c = s->client;
    for (struct session *o = c->first; o != NULL; o = o->next)
        if (o != s && o->state == SESSION_DNSBL)
            return;
    dnsbl_lookup_release(c->lookup);
    generation_drop(c->lookup_gen);
    c->lookup = NULL;
    c->lookup_gen = NULL;
}

/* session_dnsbl_check - decide if the score is settled or time is up */
static void session_dnsbl_check(struct session *s)
{
    struct dnsbl_score score;
    double deadline = s->started + s->gen->conf->dnsbl_timeout;
    dnsbl_lookup_score(s->client->lookup, &score);
    if (!score.settled && ev_now(s->srv->loop) < deadline) {
        session_timer_at(s, deadline);
        return;
    }
    if (!score.settled)
        s->reason = "dnsbl_timeout";
    s->from_cache = dnsbl_lookup_cached(s->client->lookup);
    session_lookup_done(s);
    s->score = score.score;
    s->hits = score.hits;
    session_decide(s, score.listed ? VERDICT_LISTED : VERDICT_CLEAN);
}

/* session_dnsbl_update - a list answered for this client's address */
static void session_dnsbl_update(void *arg)
{
    struct client *c = arg;
    struct session *s = c->first, *next;
    for (; s != NULL; s = next) {
        next = s->next; /* a decision may close s */
        if (s->state == SESSION_DNSBL)
            session_dnsbl_check(s);
    }
}

/* session_dnsbl_io - the client did something before we spoke */
static void session_dnsbl_io(struct session *s)
{
    int got = session_read(s);
    if (got != 0) /* it waits no more: nor need the lookup for it */
        session_lookup_done(s);
    if (got < 0) {
        session_close(s); /* verdict hangup */
        return;
    }
    if (got > 0)
        session_decide(s, VERDICT_PREGREET);
}

/* session_io_cb - the client socket is ready */
static void session_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct session *s = w->data;
    switch (s->state) {
    case SESSION_DNSBL:
        session_dnsbl_io(s);
        break;
    case SESSION_REJECT:
        session_reject_io(s, revents);
        break;
    case SESSION_CLOSING:
        session_closing_io(s);
        break;
    case SESSION_RELAY: /* relay.c watches the socket */
        break;
    }
}

/* session_timer_cb - a deadline of the current state */
static void session_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct session *s = w->data;
    switch (s->state) {
    case SESSION_DNSBL:
        session_dnsbl_check(s);
        break;
    case SESSION_REJECT:
        session_reject_timeout(s);
        break;
    case SESSION_CLOSING:
        session_close(s);
        break;
    case SESSION_RELAY:
        break;
    }
}

/* session_lookup - the client's shared lookup, started if there is none
 * (one is kept only while a session of the client waits on it; a session
 * that joins one started before a reload gets its verdict, made at most
 * dnsbl_timeout ago under the previous configuration) */
static struct dnsbl_lookup *session_lookup(struct session *s, struct client *c)
{
    if (c->lookup == NULL) {
        c->lookup = dnsbl_lookup_start(s->gen->dnsbl, &c->node.addr, session_dnsbl_update, c);
        if (c->lookup != NULL)
            c->lookup_gen = generation_hold(s->gen);
    }
    return c->lookup;
}

void session_start(struct server *srv, struct client *c, int fd, uint16_t port,
                   struct netlimit_entry *net)
{
    struct session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        server_refuse(fd, SERVER_REPLY_TRY_LATER);
        return;
    }
    s->srv = srv;
    s->gen = generation_hold(srv->gen);
    s->client = c;
    s->net = net;
    s->fd = fd;
    s->port = port;
    s->started = ev_now(srv->loop);
    s->next = c->first;
    if (c->first != NULL)
        c->first->prev = s;
    c->first = s;
    c->sessions++;
    srv->connections++;
    srv->metrics->open[SESSION_DNSBL]++; /* calloc: s->state is DNSBL */
    ev_io_init(&s->io, session_io_cb, fd, EV_READ);
    ev_init(&s->timer, session_timer_cb);
    s->io.data = s->timer.data = s;

    const struct conf *conf = s->gen->conf;
    if (cidr_set_contains(&conf->allowlist, &c->node.addr)) {
        session_decide(s, VERDICT_ALLOWLISTED);
        return;
    }
    if (cidr_set_contains(&conf->denylist, &c->node.addr)) {
        session_decide(s, VERDICT_DENYLISTED);
        return;
    }
    struct dnsbl_lookup *lookup = session_lookup(s, c);
    if (lookup == NULL) { /* out of memory: fail open */
        s->reason = "out of memory";
        session_decide(s, VERDICT_CLEAN);
        return;
    }
    ev_io_start(srv->loop, &s->io);
    struct dnsbl_score score;
    dnsbl_lookup_score(lookup, &score);
    /* A settled answer (a shared lookup) is still delivered from the loop. */
    session_timer_at(s, score.settled ? s->started : s->started + conf->dnsbl_timeout);
}

void session_shutdown_all(struct client *c, void *unused)
{
    struct session *s = c->first, *next;
    (void)unused;
    for (; s != NULL; s = next) {
        next = s->next; /* s may be closed (out of memory) */
        if (s->state != SESSION_DNSBL && s->state != SESSION_REJECT)
            continue;
        if (s->state == SESSION_DNSBL)
            session_lookup_done(s);
        s->reason = "shutdown";
        session_say_and_close(s, SERVER_REPLY_SHUTTING_DOWN);
    }
}

void session_close_all(struct client *c, void *unused)
{
    (void)unused;
    while (c->first != NULL) {
        struct session *s = c->first;
        bool last = c->sessions == 1;
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s->client == c, so c->first is a new s */
        s->reason = "shutdown";
        session_close(s);
        if (last)
            return; /* c is freed */
    }
}
