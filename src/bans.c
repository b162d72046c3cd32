/*
 * bans - ban decisions, records and the queue to the helper. See bans.h.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "banpolicy.h"
#include "banproto.h"
#include "bans.h"
#include "evutil.h"
#include "log.h"
#include "metrics.h"

#define BANS_QUEUE_INITIAL 1024

const double bans_latency_bounds[BANS_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015,
    0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 1.0, INFINITY,
};

struct bans_entry {
    struct banproto_request req;
    double queued;   /* CLOCK_MONOTONIC seconds, the clock the helper answers in */
};

/* A ring of requests: [head, sent) went to the helper and wait for its
 * reply, [sent, tail) wait for room in the socket. Indexes grow without
 * wrapping back; the slot is index & (cap - 1). */
struct bans {
    struct ev_loop *loop;
    const struct conf *conf;
    struct store *store;
    int fd;
    ev_io io;
    struct bans_entry *ring;
    size_t cap, head, sent, tail;
    uint32_t seq;
    struct bans_stats own;      /* the counters, until bans_set_metrics() */
    struct bans_stats *stats;   /* &own, or the metrics slot's */
    struct fleet *fleet;        /* NULL: no fleet */
    size_t restoring;           /* bans put back at start, not yet applied */
    uint32_t restore_seq;       /* the last of them */
    double restore_started;
    struct log_limit fail_log, drop_log;
};

static void bans_io_cb(struct ev_loop *loop, ev_io *w, int revents);

static double bans_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bans *bans_new(struct ev_loop *loop, const struct conf *conf, struct store *store,
                      int helper_fd)
{
    struct bans *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->loop = loop;
    b->stats = &b->own;
    b->conf = conf;
    b->store = store;
    b->fd = helper_fd;
    if (helper_fd >= 0) {
        ev_io_init(&b->io, bans_io_cb, helper_fd, EV_READ);
        ev_io_start(loop, &b->io);
    }
    return b;
}

/* bans_entry_at - the slot of index i */
static struct bans_entry *bans_entry_at(struct bans *b, size_t i)
{
    return &b->ring[i & (b->cap - 1)];
}

/* bans_grow - double the ring; -1 at BANS_QUEUE_MAX or out of memory */
/* gcc 12 -fanalyzer: "leak of ring", a false positive: ring is kept in
 * b->ring and freed by the next grow or bans_free(). The analyzer drops
 * what is stored in a struct reached through a callback's argument once a
 * library call has seen that struct. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static int bans_grow(struct bans *b)
{
    size_t cap = b->cap ? b->cap * 2 : BANS_QUEUE_INITIAL;
    if (cap > BANS_QUEUE_MAX)
        return -1;
    struct bans_entry *ring = malloc(cap * sizeof *ring);
    if (ring == NULL)
        return -1;
    for (size_t i = b->head; i < b->tail; i++)
        ring[i & (cap - 1)] = *bans_entry_at(b, i);
    free(b->ring);
    b->ring = ring;
    b->cap = cap;
    return 0;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* bans_pump - send what waits, as far as the socket takes it */
static void bans_pump(struct bans *b)
{
    while (b->sent < b->tail) {
        struct bans_entry *e = bans_entry_at(b, b->sent);
        if (send(b->fd, &e->req, sizeof e->req, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_limited(&b->fail_log, ev_now(b->loop), LOG_LEVEL_ERROR,
                            "firewall: the ban helper is gone (%s): bans are not applied",
                            strerror(errno));
            break;
        }
        b->sent++;
    }
    evutil_io_want(b->loop, &b->io, EV_READ | (b->sent < b->tail ? EV_WRITE : 0));
}

/* bans_request - queue one request for the helper (seconds 0 = unban):
 * the network of a's first prefix bits; kill ends a's own connections */
static void bans_request(struct bans *b, const struct addr *a, unsigned prefix,
                         uint32_t seconds, bool kill)
{
    if (b->tail - b->head == b->cap && bans_grow(b) < 0) {
        b->stats->dropped++;
        log_limited(&b->drop_log, ev_now(b->loop), LOG_LEVEL_ERROR,
                    "firewall: %zu bans wait for the helper: dropping new ones",
                    b->tail - b->head);
        return;
    }
    struct bans_entry *e = bans_entry_at(b, b->tail++);
    banproto_request_make(&e->req, a, prefix, seconds, ++b->seq, kill);
    e->queued = bans_monotonic();
    b->stats->requested++;
    if (b->sent + 1 == b->tail)
        bans_pump(b);
}

/* bans_record_latency - one request answered */
static void bans_record_latency(struct bans *b, double seconds)
{
    size_t i = 0;
    while (seconds > bans_latency_bounds[i])
        i++;
    b->stats->latency[i]++;
    b->stats->latency_sum_us += metrics_seconds_us(seconds);
}

/* bans_reply - the helper applied a batch ending at reply->seq */
static void bans_reply(struct bans *b, const struct banproto_reply *reply)
{
    double now = (double)reply->applied_ns / 1e9;
    while (b->head < b->sent &&
           (int32_t)(reply->seq - bans_entry_at(b, b->head)->req.seq) >= 0) {
        bans_record_latency(b, now - bans_entry_at(b, b->head)->queued);
        b->head++;
    }
    b->stats->applied += reply->applied;
    b->stats->failed += reply->failed;
    b->stats->killed += reply->killed;
    b->stats->kill_failed += reply->kill_failed;
    if (b->restoring > 0 && (int32_t)(reply->seq - b->restore_seq) >= 0) {
        log_info("%zu stored bans are back in the firewall after %.3f s", b->restoring,
                 now - b->restore_started);
        b->restoring = 0;
    }
    if (reply->failed > 0 || reply->kill_failed > 0)
        log_limited(&b->fail_log, ev_now(b->loop), LOG_LEVEL_ERROR,
                    "firewall: %u bans failed, connections of %u banned addresses not "
                    "ended: %s", reply->failed, reply->kill_failed, reply->error);
}

/* bans_helper_gone - count everything still queued as failed */
static void bans_helper_gone(struct bans *b)
{
    log_error("firewall: the ban helper is gone: bans are no longer applied");
    b->stats->failed += b->tail - b->head;
    b->head = b->sent = b->tail = 0;
    ev_io_stop(b->loop, &b->io);
    close(b->fd);
    b->fd = -1;
}

/* bans_read - take every reply waiting on the socket; false once the
 * helper has closed its end (or the socket failed) */
static bool bans_read(struct bans *b)
{
    struct banproto_reply reply;
    for (;;) {
        ssize_t n = recv(b->fd, &reply, sizeof reply, MSG_DONTWAIT | MSG_TRUNC);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return false;
        if (n < 0)
            return true;
        if (banproto_reply_parse(&reply, (size_t)n, &reply) == 0)
            bans_reply(b, &reply);
    }
}

static void bans_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct bans *b = (struct bans *)((char *)w - offsetof(struct bans, io));
    (void)loop;
    if ((revents & EV_READ) && !bans_read(b)) {
        bans_helper_gone(b);
        return;
    }
    bans_pump(b);
}

/* bans_network - what a ban of a covers: its network (ipv4_prefix,
 * ipv6_prefix), or a alone when the allowlist holds part of that network
 * (banning the network would block an allowlisted address) */
static struct cidr bans_network(const struct bans *b, const struct addr *a)
{
    struct cidr net = cidr_of(a, b->conf->ipv4_prefix, b->conf->ipv6_prefix);
    if (cidr_set_overlaps(&b->conf->allowlist, &net))
        net = cidr_of(a, 32, 128);
    return net;
}

/* bans_apply - decide with the policy, remember, request; true when a
 * ban was requested. a: the address whose connections a kill ends. */
static bool bans_apply(struct bans *b, const struct cidr *net, const struct addr *a,
                       double seconds, unsigned reason, bool kill)
{
    struct store_ban prev, next = {0};
    double now = ev_now(b->loop);
    bool known = store_ban_get(b->store, net, &prev);
    if (banpolicy_next(known ? &prev : NULL, now, b->conf->ban_time, b->conf->ban_time_max,
                       seconds, reason, &next) == BANPOLICY_NOTHING) {
        /* the network was banned a moment ago, maybe for another of its
         * addresses: this one's connections still have to end */
        if (kill && net->prefix < (net->net.family == AF_INET ? 32 : 128) && prev.until - now >= 1)
            bans_request(b, a, net->prefix, (uint32_t)(prev.until - now), true);
        return false;
    }
    store_ban_put(b->store, net, &next); /* a store error is logged there */
    double length = next.until - now;
    bans_request(b, a, net->prefix, length < 1 ? 1 : (uint32_t)(length + 0.5), kill);
    if (b->fleet != NULL)
        fleet_ban(b->fleet, net, next.last, next.until, next.count, next.reason);
    return true;
}

/* bans_lift - a ban's record becomes the unban's (at: when it was decided):
 * a record that says so, kept ban_time_max from now (its until is now:
 * never a ban that is on), so that an older ban arriving late from a peer
 * is known as older; out of the firewall if it was in */
static void bans_lift(struct bans *b, const struct cidr *net, double at, bool peer)
{
    struct store_ban prev, next = {.until = ev_now(b->loop), .last = at, .peer = peer,
                                   .unbanned = true};
    bool known = store_ban_get(b->store, net, &prev);
    store_ban_put(b->store, net, &next);
    if (!peer || (known && !prev.unbanned && prev.until > ev_now(b->loop)))
        bans_request(b, &net->net, net->prefix, 0, false);
}

/* bans_unban_one - an unban made here: record, firewall and the fleet */
static void bans_unban_one(struct bans *b, const struct cidr *net)
{
    double now = ev_now(b->loop);
    bans_lift(b, net, now, false);
    if (b->fleet != NULL)
        fleet_unban(b->fleet, net, now);
}

enum fleet_taken bans_peer(void *arg, const struct fleetproto_ban *m)
{
    struct bans *b = arg;
    const struct cidr *net = &m->net;
    unsigned own = net->net.family == AF_INET ? b->conf->ipv4_prefix : b->conf->ipv6_prefix;
    /* never wider than this host's own networks: a peer's word must not
     * ban more here than this host's policy would */
    if (b->fd < 0 || cidr_set_overlaps(&b->conf->allowlist, net) || net->prefix < own)
        return FLEET_IGNORED;
    /* a time well ahead of this host's clock would outrank every event
     * after it for as long as the record lives */
    if (m->at_ms > fleetproto_ms(ev_now(b->loop) + BANS_CLOCK_AHEAD_MAX))
        return FLEET_CLOCK;
    struct store_ban prev;
    bool known = store_ban_get(b->store, net, &prev);
    bool unban = m->kind == FLEETPROTO_UNBAN;
    if (known && fleetproto_event_older(m->at_ms, unban, fleetproto_ms(prev.last), prev.unbanned))
        return FLEET_STALE; /* what is held here came after it */
    double at = (double)m->at_ms / 1000.0;
    if (unban) {
        bans_lift(b, net, at, true);
        return FLEET_APPLIED;
    }
    double now = ev_now(b->loop), left = (double)m->until_ms / 1000.0 - now;
    if (left < 1)
        return FLEET_IGNORED; /* over already (or a peer's clock far ahead of ours) */
    if (left > b->conf->ban_time_max)
        left = b->conf->ban_time_max;
    struct store_ban next = {now + left, at, m->count, m->reason, true, false};
    if (known && !prev.unbanned) {
        if (prev.until >= next.until - 1) { /* banned as long already */
            if (prev.last < at) { /* but the newest event is this one */
                prev.last = at;
                store_ban_put(b->store, net, &prev);
            }
            return FLEET_IGNORED;
        }
        if (prev.count > next.count)
            next.count = prev.count;
    }
    store_ban_put(b->store, net, &next);
    /* never kill: a peer's word proves nothing about this host's connections */
    bans_request(b, &net->net, net->prefix, (uint32_t)(left + 0.5), false);
    return FLEET_APPLIED;
}

bool bans_offender(struct bans *b, const struct addr *a, enum store_ban_reason reason,
                   bool kill)
{
    if (b->fd < 0 || cidr_set_contains(&b->conf->allowlist, a))
        return false;
    struct cidr net = bans_network(b, a);
    return bans_apply(b, &net, a, 0, reason, kill);
}

/* bans_usable - can a ban be made by hand now? */
static int bans_usable(struct bans *b, char *err, size_t errsize)
{
    if (b->conf->ban_backend == BAN_BACKEND_NONE) {
        snprintf(err, errsize, "ban_backend is none: nothing to ban in");
        return -1;
    }
    if (b->fd < 0) {
        snprintf(err, errsize, "the ban helper is gone");
        return -1;
    }
    return 0;
}

int bans_manual(struct bans *b, const struct addr *a, int prefix, double seconds, char *err,
                size_t errsize)
{
    if (bans_usable(b, err, errsize) < 0)
        return -1;
    if (cidr_set_contains(&b->conf->allowlist, a)) {
        snprintf(err, errsize, "the address is in the allowlist");
        return -1;
    }
    struct cidr net = prefix < 0 ? bans_network(b, a) : cidr_of(a, (unsigned)prefix, (unsigned)prefix);
    if (cidr_set_overlaps(&b->conf->allowlist, &net)) {
        snprintf(err, errsize, "the network holds addresses of the allowlist");
        return -1;
    }
    if (seconds > b->conf->ban_time_max) {
        snprintf(err, errsize, "longer than ban_time_max (%gs)", b->conf->ban_time_max);
        return -1;
    }
    bans_apply(b, &net, &net.net, seconds, STORE_BAN_MANUAL, false);
    return 0;
}

/* The bans an unban lifts, gathered first: the store is not written while
 * store_ban_foreach() walks it. */
struct bans_overlap_walk {
    const struct cidr *net;
    struct cidr *found;
    size_t count, cap;
    bool failed;
};

static int bans_overlap_one(const struct cidr *net, const struct store_ban *ban, void *arg)
{
    struct bans_overlap_walk *walk = arg;
    if (ban->unbanned || !cidr_overlaps(net, walk->net))
        return 0;
    if (walk->count == walk->cap) {
        size_t cap = walk->cap ? walk->cap * 2 : 8;
        struct cidr *found = realloc(walk->found, cap * sizeof *found);
        if (found == NULL) {
            walk->failed = true;
            return 1;
        }
        walk->found = found;
        walk->cap = cap;
    }
    walk->found[walk->count++] = *net;
    return 0;
}

int bans_unban(struct bans *b, const struct cidr *net, char *err, size_t errsize)
{
    if (bans_usable(b, err, errsize) < 0)
        return -1;
    struct bans_overlap_walk walk = {.net = net};
    if (store_ban_foreach(b->store, bans_overlap_one, &walk) < 0 || walk.failed) {
        free(walk.found);
        snprintf(err, errsize, "the bans cannot be read from the state store");
        return -1;
    }
    for (size_t i = 0; i < walk.count; i++)
        bans_unban_one(b, &walk.found[i]);
    if (walk.count == 0) /* removed from the firewall even without a record: it
                            may predate it */
        bans_unban_one(b, net);
    free(walk.found);
    return 0;
}

struct bans_restore_walk {
    struct bans *b;
    double now;
    size_t count;
};

/* bans_restore_one - one stored ban, back with its remaining time; not a
 * peer's that is wider than this host's prefix now (bans_peer() would
 * refuse it today) */
static int bans_restore_one(const struct cidr *net, const struct store_ban *ban, void *arg)
{
    struct bans_restore_walk *walk = arg;
    const struct conf *conf = walk->b->conf;
    double left = ban->until - walk->now;
    unsigned own = net->net.family == AF_INET ? conf->ipv4_prefix : conf->ipv6_prefix;
    if (left >= 1 && !ban->unbanned && !cidr_set_overlaps(&conf->allowlist, net) &&
        !(ban->peer && net->prefix < own)) {
        if (left > walk->b->conf->ban_time_max)
            left = walk->b->conf->ban_time_max;
        bans_request(walk->b, &net->net, net->prefix, (uint32_t)left, false);
        walk->count++;
    }
    return 0;
}

size_t bans_restore(struct bans *b)
{
    struct bans_restore_walk walk = {b, ev_now(b->loop), 0};
    b->restore_started = bans_monotonic();
    if (b->fd >= 0)
        store_ban_foreach(b->store, bans_restore_one, &walk);
    b->restoring = walk.count;
    b->restore_seq = b->seq;
    return walk.count;
}

void bans_stats(const struct bans *b, struct bans_stats *out)
{
    *out = *b->stats;
}

void bans_set_conf(struct bans *b, const struct conf *conf)
{
    b->conf = conf;
}

void bans_set_fleet(struct bans *b, struct fleet *fleet)
{
    b->fleet = fleet;
}

void bans_set_metrics(struct bans *b, struct metrics_slot *metrics)
{
    b->stats = &metrics->bans; /* a restarted worker goes on from its slot */
}

double bans_latency_quantile(const struct bans_stats *s, double q)
{
    uint64_t total = 0, seen = 0;
    for (size_t i = 0; i < BANS_LATENCY_BUCKETS; i++)
        total += s->latency[i];
    if (total == 0)
        return 0;
    for (size_t i = 0; i < BANS_LATENCY_BUCKETS; i++) {
        seen += s->latency[i];
        if ((double)seen >= q * (double)total)
            return bans_latency_bounds[i];
    }
    return bans_latency_bounds[BANS_LATENCY_BUCKETS - 1];
}

void bans_finish(struct bans *b, double limit)
{
    if (b == NULL || b->fd < 0)
        return;
    bans_pump(b);
    ev_io_stop(b->loop, &b->io);
    if (b->tail > b->sent) /* the helper's socket is full */
        log_info("firewall: %zu bans not handed to the helper at stop: they are in the "
                 "store and go in at the next start", b->tail - b->sent);
    if (shutdown(b->fd, SHUT_WR) < 0)
        return;
    double end = bans_monotonic() + limit;
    for (;;) {
        double left = end - bans_monotonic();
        if (left <= 0)
            return;
        struct pollfd p = {.fd = b->fd, .events = POLLIN};
        int ready = poll(&p, 1, (int)(left * 1000.0) + 1);
        if (ready < 0 && errno != EINTR)
            return;
        if (ready > 0 && !bans_read(b))
            return; /* the helper closed: every reply is in */
    }
}

void bans_free(struct bans *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0) {
        ev_io_stop(b->loop, &b->io);
        close(b->fd);
    }
    free(b->ring);
    free(b);
}
