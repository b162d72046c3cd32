/*
 * fleet - bans and verdicts shared through Redis. See fleet.h.
 *
 * Two links to Redis, each a hiredis async context on the loop: `commands`
 * (short scripts run by EVAL: a publication, a batch of the live bans, a
 * verdict; SET of a verdict; PING) and, in the one process that
 * listens, `channel` (SUBSCRIBE: a subscribed connection takes no other
 * command). Every command but SUBSCRIBE is counted in flight until its
 * reply (hiredis calls each callback exactly once, with NULL when the
 * connection goes), which is how a stalled Redis is noticed.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "bans.h"
#include "fleet.h"
#include "log.h"
#include "metrics.h"
#include "redis_guard.h"
#include "sentinel.h"

#define FLEET_RETRY_MIN 0.5
#define FLEET_RETRY_MAX 30.0
#define FLEET_CONNECT_TIMEOUT 3.0
#define FLEET_KEY_MAX (FLEETPROTO_ID_MAX + 16 + ADDR_TEXT_MAX)
#define FLEET_SCAN_COUNT "1000"
#define FLEET_PING 5.0   /* seconds of silence on the commands link before a PING */
#define FLEET_STABLE 10.0 /* up this long: the next reconnect is quick again */

enum fleet_link_state { FLEET_DOWN, FLEET_CONNECTING, FLEET_UP };

struct fleet_link {
    struct fleet *f;
    const char *name;             /* for the log */
    bool subscriber;
    redisAsyncContext *ac;        /* NULL when down */
    enum fleet_link_state state;
    ev_timer timer;               /* DOWN: the next try; CONNECTING: give up */
    double backoff;
    bool was_up;                  /* it came up since it was last made */
    double up_since;              /* ev_now() when it last came up */
    unsigned inflight;            /* commands sent, replies not yet in */
    double last_reply;            /* ev_now() of the last reply */
    struct redis_guard guard;     /* on ac's replies */
};

/* A ring of bans waiting to be published, bounded by FLEET_BACKLOG_MAX. */
struct fleet_queue {
    struct fleetproto_ban *item;
    size_t cap, head, len;
};

/* A verdict request: answered by its reply or its timer, whichever comes
 * first; freed by the reply's callback, which always comes. */
struct fleet_wait {
    struct fleet *f;
    fleet_verdict_fn *fn;         /* NULL once answered */
    void *arg;
    uint64_t sites_hash;
    ev_timer timer;
    struct fleet_wait *prev, *next;
};

struct fleet {
    struct ev_loop *loop;
    char addr[ADDR_TEXT_MAX];     /* Redis's address: resolved at start, or
                                     the sentinels' answer ("" before one) */
    uint16_t port;
    struct sentinel *sentinel;    /* NULL: redis:// */
    char master[ADDR_TEXT_MAX + 8]; /* the last master ROLE confirmed */
    bool listen;
    struct fleetproto_url url;
    char name[FLEETPROTO_ID_MAX + 1];
    char id[FLEETPROTO_ID_MAX + 1];
    struct fleet_link cmd, sub;
    fleet_ban_fn *on_ban;
    void *arg;
    uint64_t unban_keep_ms;       /* an unban's key lives ban_time_max */
    struct metrics_slot *metrics;
    struct fleet_wait *waiting;
    struct fleet_queue returned;  /* in flight when the link went: first again */
    struct fleet_queue backlog;   /* made while Redis was away (or busy) */
    bool load_pending;            /* the channel is back: read the live bans */
    bool scanning;                /* a SCAN of the live bans is under way */
    ev_timer stall;
    struct log_limit link_log, drop_log, backlog_log, flush_log;
};

static void fleet_connected_gauge(struct fleet *f)
{
    if (f->metrics != NULL)
        f->metrics->fleet_connected = f->cmd.state == FLEET_UP;
}

static void fleet_link_connect(struct fleet_link *l);
static void fleet_link_drop(struct fleet_link *l);
static void fleet_master_lost(struct fleet *f);
static bool fleet_readonly(const redisReply *reply);

/* fleet_link_retry - down: try again after the back-off (which starts
 * over only after the link stayed up FLEET_STABLE seconds: a Redis that
 * hangs up right after each connect is not a reconnect loop) */
static void fleet_link_retry(struct fleet_link *l)
{
    struct fleet *f = l->f;
    bool was_up = l->was_up;
    if (was_up && ev_now(f->loop) - l->up_since >= FLEET_STABLE)
        l->backoff = FLEET_RETRY_MIN;
    l->state = FLEET_DOWN;
    l->ac = NULL;
    l->inflight = 0;
    l->was_up = false;
    ev_timer_stop(f->loop, &l->timer);
    if (l == &f->cmd && f->scanning) { /* its replies will not come */
        f->scanning = false;
        f->load_pending = true;
    }
    fleet_connected_gauge(f);
    if (f->sentinel != NULL && l == &f->cmd) {
        /* where Redis is now is the sentinels' to say: the master went,
         * or the one they named is not one (or not reachable) */
        if (was_up)
            sentinel_ask(f->sentinel);
        else
            sentinel_reject(f->sentinel);
        return;
    }
    ev_timer_set(&l->timer, l->backoff, 0.);
    ev_timer_start(f->loop, &l->timer);
    l->backoff = l->backoff * 2 > FLEET_RETRY_MAX ? FLEET_RETRY_MAX : l->backoff * 2;
}

/* fleet_replied - a reply (or NULL at a disconnect) came for a command of
 * ac's link; returns the link, or NULL when it is being freed */
static struct fleet_link *fleet_replied(redisAsyncContext *ac)
{
    struct fleet_link *l = ac->data;
    if (l == NULL)
        return NULL;
    if (l->inflight > 0)
        l->inflight--;
    l->last_reply = ev_now(l->f->loop);
    return l;
}

/* fleet_send - one command on a link that is up; false when it is not (or
 * too much is in flight already) */
static bool fleet_vsend(struct fleet_link *l, redisCallbackFn *fn, void *priv,
                        const char *fmt, va_list ap)
{
    if (l->state != FLEET_UP || l->inflight >= FLEET_INFLIGHT_MAX)
        return false;
    if (redis_guard_unsent_over(l->ac)) { /* it answers, but does not read */
        log_limited(&l->f->link_log, ev_now(l->f->loop), LOG_LEVEL_WARNING,
                    "fleet_redis %s:%u: over 4 MiB of commands unsent: reconnecting",
                    l->f->addr, l->f->port);
        fleet_link_drop(l);
        return false;
    }
    if (redisvAsyncCommand(l->ac, fn, priv, fmt, ap) != REDIS_OK)
        return false;
    if (l->inflight++ == 0)
        l->last_reply = ev_now(l->f->loop); /* the stall clock starts now */
    return true;
}

/* (hiredis's format: printf's, plus %b for binary-safe bytes and length) */
static bool fleet_send(struct fleet_link *l, redisCallbackFn *fn, void *priv, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool sent = fleet_vsend(l, fn, priv, fmt, ap);
    va_end(ap);
    return sent;
}

/* fleet_reply_cb - a reply nobody waits for: counted, errors logged */
static void fleet_reply_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_link *l = fleet_replied(ac);
    redisReply *reply = r;
    (void)priv;
    if (l == NULL)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_limited(&l->f->link_log, ev_now(l->f->loop), LOG_LEVEL_WARNING,
                    "fleet_redis %s:%u: %s", l->f->addr, l->f->port, reply->str);
}

static void fleet_queue_push(struct fleet *f, struct fleet_queue *q,
                             const struct fleetproto_ban *b);

/* A published ban until Redis has answered. */
struct fleet_sent {
    struct fleet *f;
    struct fleetproto_ban ban;
};

static void fleet_publish_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_sent *sent = priv;
    redisReply *reply = r;
    fleet_replied(ac);
    struct fleet *f = sent->f;
    if (reply == NULL) {
        /* the link went before Redis answered: again when it is back, in
         * the order sent (hiredis answers the pending in order) */
        fleet_queue_push(f, &f->returned, &sent->ban);
    } else if (fleet_readonly(reply)) {
        /* a replica (the master changed under us): to the master, later */
        fleet_queue_push(f, &f->returned, &sent->ban);
        fleet_master_lost(f);
    } else if (reply->type == REDIS_REPLY_ERROR) { /* e.g. NOPERM: no use trying again */
        if (f->metrics != NULL)
            f->metrics->fleet_bans_dropped[METRICS_FLEET_DROP_REFUSED]++;
        log_limited(&f->drop_log, ev_now(f->loop), LOG_LEVEL_ERROR,
                    "fleet_redis %s:%u: Redis refused the ban's publication: %s", f->addr,
                    f->port, reply->str);
    } else if (f->metrics != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        f->metrics->fleet_bans_dropped[METRICS_FLEET_DROP_STALE]++;
    } else if (f->metrics != NULL) {
        f->metrics->fleet_bans_sent++;
    }
    free(sent);
}

/* The publication of a ban or unban, run by Redis as one step: unless the
 * address's key holds a newer event (fleetproto_event_older(), here in
 * Lua: AT_MS is the fifth word of a v2 message), the message becomes the
 * key's value (for hosts that start later) and goes out on the channel.
 * A held event more than BANS_CLOCK_AHEAD_MAX ahead of the publisher's
 * clock, or a key that is not a string, counts as none (the hosts refuse
 * such a time too: it must not lock an address). Returns 1, or 0 when the
 * held event is newer. KEYS[1] the ban key; ARGV: message, AT_MS, 1 for
 * an unban, the key's life in ms, channel, the latest AT_MS believable. */
static const char fleet_publish_script[] =
    "local held = redis.pcall('GET', KEYS[1]) "
    "if type(held) == 'string' then "
    "  local kind, at = string.match(held, '^(%a+) v2 %S+ %S+ (%d+)') "
    "  at = tonumber(at) "
    "  local new = tonumber(ARGV[2]) "
    "  if at and at <= tonumber(ARGV[6]) and "
    "     (new < at or (new == at and ARGV[3] == '0' and kind == 'unban')) then "
    "    return 0 "
    "  end "
    "end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4]) "
    "redis.call('PUBLISH', ARGV[5], ARGV[1]) "
    "return 1";

/* fleet_publish - one event: on the channel and in its key, unless older
 * than the key's */
static bool fleet_publish(struct fleet *f, const struct fleetproto_ban *b)
{
    char msg[FLEETPROTO_MESSAGE_MAX + 1], key[FLEET_KEY_MAX], text[CIDR_TEXT_MAX];
    char channel[FLEETPROTO_ID_MAX + 8];
    int len = fleetproto_ban_format(b, msg, sizeof msg);
    if (len < 0)
        return false;
    struct fleet_sent *sent = malloc(sizeof *sent);
    if (sent == NULL)
        return false;
    *sent = (struct fleet_sent){f, *b};
    cidr_format(&b->net, text, sizeof text);
    snprintf(key, sizeof key, "%s:ban:%s", f->name, text);
    snprintf(channel, sizeof channel, "%s:bans", f->name);
    /* a ban's key lives as long as the ban; an unban's as long as a ban
     * older than it could still be live */
    uint64_t now = b->sent_ms;
    long long life = b->kind == FLEETPROTO_UNBAN ? (long long)f->unban_keep_ms
                     : b->until_ms > now ? (long long)(b->until_ms - now) : 1;
    unsigned long long believable = now;
    believable += fleetproto_ms(BANS_CLOCK_AHEAD_MAX);
    if (!fleet_send(&f->cmd, fleet_publish_cb, sent, "EVAL %s 1 %s %b %llu %d %lld %s %llu",
                    fleet_publish_script, key, msg, (size_t)len,
                    (unsigned long long)b->at_ms, b->kind == FLEETPROTO_UNBAN, life, channel,
                    believable)) {
        free(sent);
        return false;
    }
    return true;
}

/* fleet_queue_push - at the back; a full queue (or no memory) loses its
 * oldest entry, counted. */
static void fleet_queue_push(struct fleet *f, struct fleet_queue *q,
                             const struct fleetproto_ban *b)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct fleetproto_ban *grown =
            cap <= FLEET_BACKLOG_MAX ? malloc(cap * sizeof *grown) : NULL;
        if (grown == NULL) { /* the oldest goes */
            if (f->metrics != NULL)
                f->metrics->fleet_bans_dropped[METRICS_FLEET_DROP_BACKLOG]++;
            log_limited(&f->backlog_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                        "fleet: Redis away and %zu bans waiting: dropping the oldest", q->len);
            if (q->len == 0)
                return;
            q->head = (q->head + 1) % q->cap;
            q->len--;
        } else { /* unwrap into the larger array */
            for (size_t i = 0; i < q->len; i++)
                grown[i] = q->item[(q->head + i) % q->cap];
            free(q->item);
            q->item = grown;
            q->cap = cap;
            q->head = 0;
        }
    }
    q->item[(q->head + q->len++) % q->cap] = *b;
}

/* fleet_queue_publish - from the front, in order, while Redis takes them;
 * returns how many went */
static size_t fleet_queue_publish(struct fleet *f, struct fleet_queue *q, uint64_t now)
{
    size_t done = 0;
    while (q->len > 0) {
        struct fleetproto_ban *b = &q->item[q->head];
        if (b->kind == FLEETPROTO_BAN && b->until_ms <= now) {
            q->head = (q->head + 1) % q->cap; /* over already */
            q->len--;
            continue;
        }
        b->sent_ms = now;
        if (!fleet_publish(f, b))
            break;
        q->head = (q->head + 1) % q->cap;
        q->len--;
        done++;
    }
    return done;
}

static bool fleet_waiting_bans(const struct fleet *f)
{
    return f->returned.len > 0 || f->backlog.len > 0;
}

/* fleet_backlog_flush - Redis is back: what was made meanwhile goes out,
 * oldest first (the bans that were in flight when the link went, then
 * the ones made while it was away) */
static void fleet_backlog_flush(struct fleet *f)
{
    uint64_t now = fleetproto_ms(ev_time());
    size_t done = fleet_queue_publish(f, &f->returned, now);
    if (f->returned.len == 0)
        done += fleet_queue_publish(f, &f->backlog, now);
    if (done > 0)
        log_limited(&f->flush_log, ev_now(f->loop), LOG_LEVEL_INFO,
                    "fleet: %zu bans made while Redis was away published", done);
}

/* fleet_take - a peer's message, checked, to the bans module */
static void fleet_take(struct fleet *f, const char *text, size_t len, bool live)
{
    struct fleetproto_ban b;
    if (fleetproto_ban_parse(text, len, &b) < 0) {
        if (f->metrics != NULL)
            f->metrics->fleet_bans_dropped[METRICS_FLEET_DROP_MALFORMED]++;
        log_limited(&f->drop_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                    "fleet: dropped a malformed message (%zu bytes) from Redis", len);
        return;
    }
    if (strcmp(b.origin, f->id) == 0)
        return; /* our own, back from the channel */
    if (f->metrics != NULL) {
        f->metrics->fleet_bans_received++;
        /* sent_ms has a millisecond's resolution: a message can look
         * sent a moment after it arrived; that counts as 0 */
        double now = ev_time(), took = now - (double)b.sent_ms / 1000.0;
        if (live) {
            unsigned i = 0;
            while (i + 1 < METRICS_FLEET_BUCKETS && took > metrics_fleet_bounds[i])
                i++;
            f->metrics->fleet_latency[i]++;
            f->metrics->fleet_latency_sum_us += metrics_seconds_us(took);
        }
    }
    enum fleet_taken taken = f->on_ban(f->arg, &b);
    if (f->metrics != NULL && taken == FLEET_APPLIED)
        f->metrics->fleet_bans_applied++;
    else if (f->metrics != NULL && taken == FLEET_STALE)
        f->metrics->fleet_bans_dropped[METRICS_FLEET_DROP_STALE]++;
    if (taken == FLEET_CLOCK) {
        if (f->metrics != NULL)
            f->metrics->fleet_bans_dropped[METRICS_FLEET_DROP_CLOCK]++;
        log_limited(&f->drop_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                    "fleet: dropped an event of %s decided more than %gs ahead of this host's "
                    "clock (are the clocks in sync?)", b.origin, BANS_CLOCK_AHEAD_MAX);
    }
}

static void fleet_scan(struct fleet *f, const char *cursor);

/* fleet_cursor_valid - a SCAN cursor is a number: anything else (a
 * hostile Redis's megabyte of digits, say) is not sent back */
static bool fleet_cursor_valid(const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return false;
    for (size_t i = 0; i < r->len; i++)
        if (r->str[i] < '0' || r->str[i] > '9')
            return false;
    return true;
}

/* fleet_scan_cb - one batch of live bans: take them, go on */
static void fleet_scan_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_link *l = fleet_replied(ac);
    redisReply *reply = r;
    (void)priv;
    if (l == NULL)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        !fleet_cursor_valid(reply->element[0]) ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        l->f->scanning = false; /* cut off (the link went, or an error): again later */
        l->f->load_pending = true;
        return;
    }
    redisReply *values = reply->element[1];
    for (size_t i = 0; i < values->elements; i++)
        if (values->element[i]->type == REDIS_REPLY_STRING)
            fleet_take(l->f, values->element[i]->str, values->element[i]->len, false);
    if (strcmp(reply->element[0]->str, "0") != 0)
        fleet_scan(l->f, reply->element[0]->str);
    else
        l->f->scanning = false;
}

/* One batch of the live bans, read by Redis: a SCAN step over the ban
 * keys and the values of those that can be a message at all. A longer
 * value stays in Redis: whoever may write the fleet's keys could
 * otherwise make every host's read of them too big to take (past
 * redis_guard's bound, the read would fail on every try). ARGV: the
 * cursor, the keys' pattern. Returns {the next cursor, {values}}. */
#define FLEET_TEXT(x) FLEET_TEXT_(x)
#define FLEET_TEXT_(x) #x
static const char fleet_scan_script[] =
    "local step = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', " FLEET_SCAN_COUNT ") "
    "local values = {} "
    "for _, key in ipairs(step[2]) do "
    "  local v = redis.pcall('GET', key) "
    "  if type(v) == 'string' and #v <= " FLEET_TEXT(FLEETPROTO_MESSAGE_MAX) " then "
    "    values[#values + 1] = v "
    "  end "
    "end "
    "return {step[1], values}";

static void fleet_scan(struct fleet *f, const char *cursor)
{
    if (fleet_send(&f->cmd, fleet_scan_cb, NULL, "EVAL %s 0 %s %s:ban:*", fleet_scan_script,
                   cursor, f->name))
        return;
    f->scanning = false; /* not sent: the stall timer starts it again */
    f->load_pending = true;
}

/* fleet_load - the channel is (back) up: read the bans that are live now
 * (made while this host was away or before it started) */
static void fleet_load(struct fleet *f)
{
    if (f->cmd.state != FLEET_UP || f->scanning) { /* when the link is up, or after */
        f->load_pending = true;
        return;
    }
    f->load_pending = false;
    f->scanning = true;
    fleet_scan(f, "0");
}

/* fleet_message_cb - everything the subscribed link receives */
static void fleet_message_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_link *l = ac->data;
    redisReply *reply = r;
    (void)priv;
    if (l == NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        log_info("fleet: listening on %s:bans at %s:%u", l->f->name, l->f->addr, l->f->port);
        fleet_load(l->f);
    } else if (strcmp(kind, "message") == 0) {
        redisReply *payload = reply->element[2];
        if (payload->type == REDIS_REPLY_STRING)
            fleet_take(l->f, payload->str, payload->len, true);
    }
}

/* fleet_auth_cb - AUTH or SELECT answered: an error means the link is of
 * no use (logged), and is dropped */
static void fleet_auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_link *l = fleet_replied(ac);
    redisReply *reply = r;
    if (l == NULL || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    log_limited(&l->f->link_log, ev_now(l->f->loop), LOG_LEVEL_ERROR,
                "fleet_redis %s:%u: Redis refused %s: %s", l->f->addr, l->f->port,
                (const char *)priv, reply->str);
    redisAsyncDisconnect(ac);
}

/* fleet_master_text - the metrics' copy of where the fleet's Redis is:
 * kept by the listening process alone (the others' zeros add nothing to
 * the sum of the slots) */
static void fleet_master_text(struct fleet *f)
{
    if (f->metrics == NULL || !f->listen)
        return;
    snprintf((char *)f->metrics->fleet_master, sizeof f->metrics->fleet_master, "%s",
             f->master);
    snprintf((char *)f->metrics->fleet_sentinel, sizeof f->metrics->fleet_sentinel, "%s",
             f->sentinel ? sentinel_via(f->sentinel) : "");
}

/* fleet_link_up - a link is connected (and, through sentinels, checked) */
static void fleet_link_up(struct fleet_link *l)
{
    struct fleet *f = l->f;
    ev_timer_stop(f->loop, &l->timer);
    l->state = FLEET_UP;
    l->was_up = true;
    l->up_since = ev_now(f->loop);
    l->last_reply = ev_now(f->loop);
    if (l != &f->cmd)
        return;
    char now[sizeof f->master];
    snprintf(now, sizeof now, strchr(f->addr, ':') ? "[%s]:%u" : "%s:%u", f->addr, f->port);
    if (f->sentinel != NULL) {
        sentinel_confirm(f->sentinel);
        if (f->master[0] != '\0' && strcmp(f->master, now) != 0 && f->metrics != NULL &&
            f->listen)
            f->metrics->fleet_failovers++;
        log_info("fleet: connected to Redis at %s, the master named by sentinel %s", now,
                 sentinel_via(f->sentinel));
    } else {
        log_info("fleet: connected to Redis at %s", now);
    }
    snprintf(f->master, sizeof f->master, "%s", now);
    fleet_master_text(f);
    fleet_connected_gauge(f);
    fleet_backlog_flush(f);
    if (f->load_pending)
        fleet_load(f);
}

/* fleet_role_cb - ROLE answered on a link to the master the sentinels
 * named: only a master is written to or listened to */
static void fleet_role_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_link *l = fleet_replied(ac);
    redisReply *reply = r;
    (void)priv;
    if (l == NULL || reply == NULL)
        return; /* the link went: its disconnect says so */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "master") == 0) {
        fleet_link_up(l);
        return;
    }
    if (l != &l->f->cmd) { /* the channel: again later (the commands link says why) */
        fleet_link_drop(l);
        return;
    }
    log_limited(&l->f->link_log, ev_now(l->f->loop), LOG_LEVEL_WARNING,
                "fleet_redis %s:%u, named by sentinel %s, is not a master (ROLE: %.40s): "
                "asking the next sentinel", l->f->addr, l->f->port, sentinel_via(l->f->sentinel),
                reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                        reply->element[0]->type == REDIS_REPLY_STRING
                    ? reply->element[0]->str
                    : reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
    fleet_link_drop(l);
}

static void fleet_connect_cb(const redisAsyncContext *ac, int status)
{
    struct fleet_link *l = ac->data;
    if (l == NULL)
        return;
    struct fleet *f = l->f;
    if (status != REDIS_OK) {
        log_limited(&f->link_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                    "fleet_redis %s:%u: cannot connect (%s): going on alone, retrying",
                    f->addr, f->port, ac->errstr);
        fleet_link_retry(l); /* hiredis frees the context */
        return;
    }
    if (f->sentinel == NULL)
        fleet_link_up(l);
    /* else up once ROLE says master (the connect timer bounds the wait) */
}

static void fleet_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct fleet_link *l = ac->data;
    (void)status;
    if (l == NULL)
        return;
    log_limited(&l->f->link_log, ev_now(l->f->loop), LOG_LEVEL_WARNING,
                "fleet_redis %s:%u: connection lost (%s): going on alone, retrying",
                l->f->addr, l->f->port, redis_guard_why(&ac->c));
    fleet_link_retry(l);
}

/* fleet_link_close - let go of a link's context from our side (also from
 * one of its own callbacks: hiredis frees it once that returns); its
 * pending callbacks run without the link. True when there was one. */
static bool fleet_link_close(struct fleet_link *l)
{
    if (l->ac == NULL)
        return false;
    l->ac->data = NULL;
    redisAsyncFree(l->ac);
    l->ac = NULL;
    return true;
}

/* fleet_link_drop - end a link from our side, and try again */
static void fleet_link_drop(struct fleet_link *l)
{
    if (fleet_link_close(l))
        fleet_link_retry(l);
}

/* fleet_master_lost - Redis answered as a replica: the master moved */
static void fleet_master_lost(struct fleet *f)
{
    if (f->cmd.ac == NULL)
        return; /* dropped already */
    log_limited(&f->link_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                "fleet_redis %s:%u: refused a write as a replica: %s", f->addr, f->port,
                f->sentinel ? "asking the sentinels where the master is" : "reconnecting");
    fleet_link_drop(&f->cmd);
    fleet_link_drop(&f->sub);
}

/* fleet_readonly - Redis's answer to a write on a replica */
static bool fleet_readonly(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "READONLY", 8) == 0;
}

static void fleet_link_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fleet_link *l = w->data;
    (void)loop, (void)revents;
    if (l->state == FLEET_CONNECTING) {
        log_limited(&l->f->link_log, ev_now(l->f->loop), LOG_LEVEL_WARNING,
                    "fleet_redis %s:%u: no connection within %gs: going on alone, retrying",
                    l->f->addr, l->f->port, FLEET_CONNECT_TIMEOUT);
        fleet_link_drop(l);
    } else if (l->state == FLEET_DOWN) {
        fleet_link_connect(l);
    }
}

static void fleet_link_connect(struct fleet_link *l)
{
    struct fleet *f = l->f;
    redisAsyncContext *ac = redisAsyncConnect(f->addr, f->port);
    if (ac == NULL || ac->err) {
        log_limited(&f->link_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                    "fleet_redis %s:%u: cannot connect (%s): going on alone, retrying",
                    f->addr, f->port, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        fleet_link_retry(l);
        return;
    }
    ac->data = l;
    redisEnableKeepAlive(&ac->c); /* a dead peer on an idle link is noticed */
    redis_guard_attach(f->loop, ac, &l->guard);
    redisAsyncSetConnectCallback(ac, fleet_connect_cb);
    redisAsyncSetDisconnectCallback(ac, fleet_disconnect_cb);
    l->ac = ac;
    l->state = FLEET_CONNECTING;
    l->inflight = 0;
    ev_timer_stop(f->loop, &l->timer);
    ev_timer_set(&l->timer, FLEET_CONNECT_TIMEOUT, 0.);
    ev_timer_start(f->loop, &l->timer);
    /* queued now, sent first once connected */
    if (f->url.password[0] != '\0' && f->url.user[0] != '\0')
        redisAsyncCommand(ac, fleet_auth_cb, "AUTH", "AUTH %s %s", f->url.user, f->url.password);
    else if (f->url.password[0] != '\0')
        redisAsyncCommand(ac, fleet_auth_cb, "AUTH", "AUTH %s", f->url.password);
    if (f->url.db != 0)
        redisAsyncCommand(ac, fleet_auth_cb, "SELECT", "SELECT %u", f->url.db);
    l->inflight = (f->url.password[0] != '\0') + (f->url.db != 0);
    /* through sentinels, only a master is used: its word first, on both
     * links (before SUBSCRIBE: nothing a replica says is read) */
    if (f->sentinel != NULL && redisAsyncCommand(ac, fleet_role_cb, NULL, "ROLE") == REDIS_OK)
        l->inflight++;
    if (l->subscriber) {
        char channel[sizeof l->guard.channel];
        snprintf(channel, sizeof channel, "%s:bans", f->name);
        redis_guard_subscribe(&l->guard, channel);
        redisAsyncCommand(ac, fleet_message_cb, NULL, "SUBSCRIBE %s", channel);
    }
}

/* fleet_master_named - a sentinel's answer: the links go there (and the
 * commands link checks it with ROLE) unless they are up there already; a
 * new address is connected to at once, the same one again only where a
 * link is down and at the pace of its back-off */
static void fleet_master_named(void *arg, const char *addr, uint16_t port)
{
    struct fleet *f = arg;
    bool moved = strcmp(addr, f->addr) != 0 || port != f->port;
    if (!moved && f->cmd.state == FLEET_UP) {
        sentinel_confirm(f->sentinel);
        return;
    }
    snprintf(f->addr, sizeof f->addr, "%s", addr);
    f->port = port;
    struct fleet_link *links[] = {&f->cmd, &f->sub};
    for (int i = 0; i < (f->listen ? 2 : 1); i++) {
        struct fleet_link *l = links[i];
        if (!moved && l != &f->cmd)
            continue; /* the channel keeps its own pace */
        fleet_link_close(l); /* without a word to the sentinels */
        l->state = FLEET_DOWN;
        l->was_up = false;
        if (moved)
            l->backoff = FLEET_RETRY_MIN;
        ev_timer_stop(f->loop, &l->timer);
        fleet_link_connect(l);
    }
    if (f->scanning) { /* the old link's replies will not come */
        f->scanning = false;
        f->load_pending = true;
    }
    fleet_connected_gauge(f);
}

/* fleet_stall_cb - every second: a Redis that stopped answering (stopped,
 * swapping, a dead network path) is given up on and connected to again */
static void fleet_stall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fleet *f = w->data;
    (void)revents;
    struct fleet_link *l = &f->cmd;
    if (l->state == FLEET_UP && l->inflight == 0 && ev_now(loop) - l->last_reply > FLEET_PING)
        fleet_send(l, fleet_reply_cb, NULL, "PING"); /* an idle link is checked too */
    if (l->state == FLEET_UP && l->inflight > 0 && ev_now(loop) - l->last_reply >= FLEET_STALL) {
        log_limited(&f->link_log, ev_now(loop), LOG_LEVEL_WARNING,
                    "fleet_redis %s:%u: %u replies overdue for %gs: reconnecting", f->addr,
                    f->port, l->inflight, FLEET_STALL);
        fleet_link_drop(&f->cmd);
        fleet_link_drop(&f->sub); /* it would not notice by itself */
        return;
    }
    if (l->state == FLEET_UP && fleet_waiting_bans(f))
        fleet_backlog_flush(f); /* what did not fit in flight before */
    if (l->state == FLEET_UP && f->load_pending && !f->scanning)
        fleet_load(f);
}

int fleet_resolve(const char *host, char *out, size_t size, char *err, size_t errsize)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errsize, "fleet_redis: cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    struct addr a;
    uint16_t unused;
    addr_from_sockaddr(res->ai_addr, &a, &unused);
    freeaddrinfo(res);
    addr_format(&a, out, size);
    return 0;
}

struct fleet *fleet_new(struct ev_loop *loop, const struct conf *conf, bool listen,
                        fleet_ban_fn *on_ban, void *arg, char *err, size_t errsize)
{
    struct fleet *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    f->loop = loop;
    f->url = conf->fleet_redis;
    f->listen = listen;
    f->unban_keep_ms = fleetproto_ms(conf->ban_time_max);
    snprintf(f->name, sizeof f->name, "%s", conf->fleet_name);
    snprintf(f->id, sizeof f->id, "%s", conf->fleet_host_id);
    f->on_ban = on_ban;
    f->arg = arg;
    if (f->url.sentinels > 0) {
        f->sentinel = sentinel_new(loop, &f->url, conf->fleet_sentinel_password,
                                   fleet_master_named, f, err, errsize);
        if (f->sentinel == NULL) {
            free(f);
            return NULL;
        }
    } else {
        f->port = f->url.redis.port;
        if (fleet_resolve(f->url.redis.host, f->addr, sizeof f->addr, err, errsize) < 0) {
            free(f);
            return NULL;
        }
    }
    struct fleet_link *links[] = {&f->cmd, &f->sub};
    for (int i = 0; i < 2; i++) {
        struct fleet_link *l = links[i];
        *l = (struct fleet_link){.f = f, .name = i ? "channel" : "commands",
                                 .subscriber = i == 1, .backoff = FLEET_RETRY_MIN};
        ev_init(&l->timer, fleet_link_timer_cb);
        l->timer.data = l;
    }
    if (f->sentinel != NULL) {
        sentinel_ask(f->sentinel); /* its answer connects the links */
    } else {
        fleet_link_connect(&f->cmd);
        if (listen)
            fleet_link_connect(&f->sub);
    }
    ev_timer_init(&f->stall, fleet_stall_cb, 1., 1.);
    f->stall.data = f;
    ev_timer_start(loop, &f->stall);
    return f;
}

void fleet_set_metrics(struct fleet *f, struct metrics_slot *metrics)
{
    f->metrics = metrics;
    fleet_connected_gauge(f);
}

void fleet_ban(struct fleet *f, const struct cidr *net, double at, double until, uint32_t count,
               uint8_t reason)
{
    struct fleetproto_ban b = {.kind = FLEETPROTO_BAN, .net = *net, .at_ms = fleetproto_ms(at),
                               .until_ms = fleetproto_ms(until),
                               .count = count ? count : 1, .reason = reason,
                               .sent_ms = fleetproto_ms(ev_time())};
    snprintf(b.origin, sizeof b.origin, "%s", f->id);
    if (fleet_waiting_bans(f) || !fleet_publish(f, &b)) /* in order, after the waiting */
        fleet_queue_push(f, &f->backlog, &b);
}

void fleet_unban(struct fleet *f, const struct cidr *net, double at)
{
    struct fleetproto_ban b = {.kind = FLEETPROTO_UNBAN, .net = *net, .at_ms = fleetproto_ms(at),
                               .sent_ms = fleetproto_ms(ev_time())};
    snprintf(b.origin, sizeof b.origin, "%s", f->id);
    if (fleet_waiting_bans(f) || !fleet_publish(f, &b))
        fleet_queue_push(f, &f->backlog, &b);
}

/* fleet_answer - a verdict request's one answer */
static void fleet_answer(struct fleet_wait *w, const struct fleet_verdict *v,
                         enum metrics_fleet_verdict outcome)
{
    struct fleet *f = w->f;
    fleet_verdict_fn *fn = w->fn;
    ev_timer_stop(f->loop, &w->timer);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        f->waiting = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->fn = NULL;
    if (f->metrics != NULL)
        f->metrics->fleet_verdicts[outcome]++;
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): fn is set while w is on f->waiting */
    fn(w->arg, v);
}

static void fleet_wait_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct fleet_wait *w = t->data;
    (void)loop, (void)revents;
    fleet_answer(w, NULL, METRICS_FLEET_VERDICT_TIMEOUT);
}

static void fleet_get_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct fleet_wait *w = priv;
    redisReply *reply = r;
    fleet_replied(ac);
    if (w->fn != NULL) {
        struct fleet_verdict v;
        uint64_t expires_ms = 0; /* read below also when not found */
        bool found = reply != NULL && reply->type == REDIS_REPLY_STRING &&
                     fleetproto_verdict_parse(reply->str, reply->len, w->sites_hash, &v.score,
                                              &v.hits, &expires_ms) == 0;
        v.expires = (double)expires_ms / 1000.0;
        if (found && v.expires <= ev_time())
            found = false;
        fleet_answer(w, found ? &v : NULL,
                     found ? METRICS_FLEET_VERDICT_HIT : METRICS_FLEET_VERDICT_MISS);
    }
    free(w);
}

/* An address's shared verdict, read by Redis: the value only if it can
 * be a verdict (as for the bans, a longer one stays in Redis); KEYS[1]
 * the verdict's key */
static const char fleet_verdict_script[] =
    "local v = redis.pcall('GET', KEYS[1]) "
    "if type(v) == 'string' and #v <= " FLEET_TEXT(FLEETPROTO_MESSAGE_MAX) " then return v end "
    "return false";

bool fleet_verdict_get(struct fleet *f, const struct addr *a, uint64_t sites_hash,
                       double timeout, fleet_verdict_fn *fn, void *arg)
{
    char text[ADDR_TEXT_MAX];
    if (f->cmd.state != FLEET_UP)
        return false;
    struct fleet_wait *w = calloc(1, sizeof *w);
    if (w == NULL)
        return false;
    *w = (struct fleet_wait){.f = f, .fn = fn, .arg = arg, .sites_hash = sites_hash};
    addr_format(a, text, sizeof text);
    if (!fleet_send(&f->cmd, fleet_get_cb, w, "EVAL %s 1 %s:verdict:%s", fleet_verdict_script,
                    f->name, text)) {
        free(w);
        return false;
    }
    ev_timer_init(&w->timer, fleet_wait_timer_cb, timeout, 0.);
    w->timer.data = w;
    ev_timer_start(f->loop, &w->timer);
    w->next = f->waiting;
    if (f->waiting != NULL)
        f->waiting->prev = w;
    f->waiting = w;
    return true;
}

void fleet_verdict_put(struct fleet *f, const struct addr *a, uint64_t sites_hash, int score,
                       uint64_t hits, double expires)
{
    char text[ADDR_TEXT_MAX], value[FLEETPROTO_MESSAGE_MAX];
    uint64_t now = fleetproto_ms(ev_time()), until = fleetproto_ms(expires);
    int len = fleetproto_verdict_format(sites_hash, score, hits, until, value, sizeof value);
    if (len < 0 || until <= now)
        return;
    addr_format(a, text, sizeof text);
    fleet_send(&f->cmd, fleet_reply_cb, NULL, "SET %s:verdict:%s %b PX %llu", f->name, text,
               value, (size_t)len, (unsigned long long)(until - now));
}

void fleet_free(struct fleet *f)
{
    if (f == NULL)
        return;
    while (f->waiting != NULL)
        fleet_answer(f->waiting, NULL, METRICS_FLEET_VERDICT_MISS);
    sentinel_free(f->sentinel);
    ev_timer_stop(f->loop, &f->stall);
    struct fleet_link *links[] = {&f->cmd, &f->sub};
    for (int i = 0; i < 2; i++) {
        struct fleet_link *l = links[i];
        ev_timer_stop(f->loop, &l->timer);
        fleet_link_close(l); /* no callback of ours runs now */
    }
    if (fleet_waiting_bans(f))
        log_warning("fleet: %zu bans made while Redis was away were never published",
                    f->returned.len + f->backlog.len);
    free(f->returned.item);
    free(f->backlog.item);
    free(f);
}
