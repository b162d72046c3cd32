/*
 * sentinel - the fleet's master, from Redis Sentinel. See sentinel.h.
 *
 * Two hiredis contexts at most: `query`, one sentinel asked for the
 * master's address (then closed), and `watch`, subscribed to
 * +switch-master on one sentinel for as long as it stays up. A context's
 * data is the sentinel, or NULL once we let go of it (a late callback then
 * does nothing).
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "addr.h"
#include "fleet.h"
#include "log.h"
#include "redis_guard.h"
#include "sentinel.h"

#define SENTINEL_CHANNEL "+switch-master"

struct sentinel_peer {
    char addr[ADDR_TEXT_MAX];
    uint16_t port;
};

struct sentinel {
    struct ev_loop *loop;
    char master[FLEETPROTO_ID_MAX + 1];
    char user[128], password[256];      /* password "": no AUTH */
    struct sentinel_peer peer[FLEETPROTO_SENTINELS_MAX];
    unsigned count;
    sentinel_master_fn *fn;
    void *arg;
    bool asking;                 /* a round is under way */
    bool proposed;               /* an answer went to fn: confirm or reject due */
    unsigned current;            /* the sentinel asked, or whose answer is in use */
    unsigned tried;              /* sentinels tried in this round */
    redisAsyncContext *query;
    struct redis_guard query_guard;
    ev_timer query_timer;
    ev_timer retry;              /* the next round, when one is due but too soon */
    double backoff;              /* the least time between two rounds' starts */
    double round_started, confirmed_at;
    ev_timer switch_timer;       /* news of a switch waiting for its turn */
    double switched_at;          /* when news of a switch was last acted upon */
    char switch_addr[ADDR_TEXT_MAX];
    uint16_t switch_port;        /* 0: no news waiting */
    redisAsyncContext *watch;
    struct redis_guard watch_guard;
    unsigned watching;           /* the sentinel watch is (being) subscribed on */
    ev_timer watch_timer;        /* subscribe again after the watch link went */
    char via[ADDR_TEXT_MAX + 8];
    struct log_limit peer_log, round_log, switch_log;
};

static void sentinel_query(struct sentinel *s);

static const char *sentinel_name(const struct sentinel *s, unsigned i, char *buf, size_t size)
{
    snprintf(buf, size, strchr(s->peer[i].addr, ':') ? "[%s]:%u" : "%s:%u", s->peer[i].addr,
             s->peer[i].port);
    return buf;
}

/* sentinel_say - a problem with one sentinel, rate limited */
static void sentinel_say(struct sentinel *s, unsigned i, const char *what)
{
    char name[ADDR_TEXT_MAX + 8];
    log_limited(&s->peer_log, ev_now(s->loop), LOG_LEVEL_WARNING, "fleet_redis: sentinel %s: %s",
                sentinel_name(s, i, name, sizeof name), what);
}

/* sentinel_let_go - close a context from our side; its callbacks, if any
 * come, find no sentinel */
static void sentinel_let_go(redisAsyncContext **ac)
{
    if (*ac == NULL)
        return;
    (*ac)->data = NULL;
    redisAsyncFree(*ac); /* (in a callback of its own, once that returns) */
    *ac = NULL;
}

/* sentinel_next - the sentinel asked gave nothing of use: the next one */
static void sentinel_next(struct sentinel *s)
{
    ev_timer_stop(s->loop, &s->query_timer);
    sentinel_let_go(&s->query);
    s->proposed = false;
    s->tried++;
    s->current = (s->current + 1) % s->count;
    sentinel_query(s);
}

bool sentinel_answer_parse(const char *addr_text, const char *port_text, char *addr,
                           uint16_t *port)
{
    struct addr a;
    char *end;
    if (addr_parse(addr_text, &a) < 0 || port_text[0] < '1' || port_text[0] > '9')
        return false;
    unsigned long p = strtoul(port_text, &end, 10);
    if (*end != '\0' || p > 65535)
        return false;
    addr_format(&a, addr, ADDR_TEXT_MAX);
    *port = (uint16_t)p;
    return true;
}

/* sentinel_propose - hand an answer to the fleet to check */
static void sentinel_propose(struct sentinel *s, unsigned from, const char *addr, uint16_t port)
{
    sentinel_name(s, from, s->via, sizeof s->via);
    s->current = from;
    s->proposed = true;
    s->fn(s->arg, addr, port);
}

static void sentinel_master_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct sentinel *s = ac->data;
    redisReply *reply = r;
    char addr[ADDR_TEXT_MAX], what[160];
    uint16_t port;
    (void)priv;
    if (s == NULL || ac != s->query)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING &&
        sentinel_answer_parse(reply->element[0]->str, reply->element[1]->str, addr, &port)) {
        ev_timer_stop(s->loop, &s->query_timer);
        sentinel_let_go(&s->query);
        sentinel_propose(s, s->current, addr, port);
        return;
    }
    if (reply == NULL)
        snprintf(what, sizeof what, "connection lost (%s)", redis_guard_why(&ac->c));
    else if (reply->type == REDIS_REPLY_ERROR)
        snprintf(what, sizeof what, "refused: %.120s", reply->str);
    else if (reply->type == REDIS_REPLY_NIL)
        snprintf(what, sizeof what, "knows no master named %s", s->master);
    else
        snprintf(what, sizeof what, "answered something that is not an address and port");
    sentinel_say(s, s->current, what);
    sentinel_next(s);
}

static void sentinel_auth_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct sentinel *s = ac->data;
    redisReply *reply = r;
    char what[160];
    if (s == NULL || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    /* the commands after it are refused too; say why once, here */
    snprintf(what, sizeof what, "refused AUTH: %.120s", reply->str);
    sentinel_say(s, priv == &s->watch ? s->watching : s->current, what);
}

static void sentinel_query_connect_cb(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    char what[160];
    if (s == NULL || status == REDIS_OK)
        return;
    snprintf(what, sizeof what, "cannot connect (%s)", ac->errstr);
    s->query = NULL; /* hiredis frees it */
    sentinel_say(s, s->current, what);
    sentinel_next(s);
}

static void sentinel_query_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sentinel *s = w->data;
    (void)loop, (void)revents;
    sentinel_say(s, s->current, "no answer in time");
    sentinel_next(s);
}

static void sentinel_auth(struct sentinel *s, redisAsyncContext *ac, void *which)
{
    if (s->password[0] != '\0' && s->user[0] != '\0')
        redisAsyncCommand(ac, sentinel_auth_cb, which, "AUTH %s %s", s->user, s->password);
    else if (s->password[0] != '\0')
        redisAsyncCommand(ac, sentinel_auth_cb, which, "AUTH %s", s->password);
}

/* sentinel_connect - a context to sentinel i on the loop, or NULL */
static redisAsyncContext *sentinel_connect(struct sentinel *s, unsigned i,
                                           redisConnectCallback *on_connect,
                                           struct redis_guard *guard)
{
    redisAsyncContext *ac = redisAsyncConnect(s->peer[i].addr, s->peer[i].port);
    if (ac == NULL || ac->err) {
        sentinel_say(s, i, ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redis_guard_attach(s->loop, ac, guard);
    redisAsyncSetConnectCallback(ac, on_connect);
    return ac;
}

/* sentinel_query - ask the current sentinel, or end a round that tried
 * every one */
static void sentinel_query(struct sentinel *s)
{
    if (s->tried >= s->count) {
        s->asking = false;
        log_limited(&s->round_log, ev_now(s->loop), LOG_LEVEL_WARNING,
                    "fleet_redis: none of the %u sentinels named a master %s that answers as "
                    "one: going on alone, asking again", s->count, s->master);
        sentinel_ask(s); /* paced: after the back-off */
        return;
    }
    s->query = sentinel_connect(s, s->current, sentinel_query_connect_cb, &s->query_guard);
    if (s->query == NULL) {
        sentinel_next(s);
        return;
    }
    sentinel_auth(s, s->query, &s->query);
    redisAsyncCommand(s->query, sentinel_master_cb, NULL,
                      "SENTINEL get-master-addr-by-name %s", s->master);
    ev_timer_set(&s->query_timer, SENTINEL_WAIT, 0.);
    ev_timer_start(s->loop, &s->query_timer);
}

void sentinel_ask(struct sentinel *s)
{
    if (s->asking || ev_is_active(&s->retry))
        return; /* under way, or due after the back-off */
    double now = ev_now(s->loop);
    if (s->confirmed_at > 0 && now - s->confirmed_at >= SENTINEL_STABLE)
        s->backoff = SENTINEL_RETRY_MIN; /* the last master held: no loop to brake */
    s->confirmed_at = 0;
    double wait = s->round_started + s->backoff - now;
    if (s->round_started > 0 && wait > 0) {
        ev_timer_set(&s->retry, wait, 0.);
        ev_timer_start(s->loop, &s->retry);
        return;
    }
    if (s->round_started > 0) /* a round soon after another: the next waits longer */
        s->backoff = s->backoff * 2 > SENTINEL_RETRY_MAX ? SENTINEL_RETRY_MAX : s->backoff * 2;
    s->round_started = now;
    s->asking = true;
    s->proposed = false;
    s->tried = 0;
    sentinel_query(s);
}

void sentinel_reject(struct sentinel *s)
{
    if (s->proposed)
        sentinel_next(s); /* that one lies, or is behind */
    else
        sentinel_ask(s);
}

static void sentinel_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    sentinel_ask(w->data);
}

/* sentinel_switch - act on the news of a failover waiting in s */
static void sentinel_switch(struct sentinel *s)
{
    log_limited(&s->switch_log, ev_now(s->loop), LOG_LEVEL_INFO,
                "fleet_redis: sentinel %s: %s moved to %s:%u", s->via[0] ? s->via : "?",
                s->master, s->switch_addr, s->switch_port);
    s->switched_at = ev_now(s->loop);
    ev_timer_stop(s->loop, &s->query_timer); /* the news wins over a query under way */
    sentinel_let_go(&s->query);
    ev_timer_stop(s->loop, &s->retry);
    s->asking = true;
    s->tried = 0;
    uint16_t port = s->switch_port;
    s->switch_port = 0;
    sentinel_propose(s, s->watching, s->switch_addr, port);
}

static void sentinel_switch_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sentinel *s = w->data;
    (void)loop, (void)revents;
    if (s->switch_port != 0)
        sentinel_switch(s);
}

/* sentinel_switch_cb - the watch link's messages: a failover's news */
static void sentinel_switch_cb(redisAsyncContext *ac, void *r, void *priv)
{
    struct sentinel *s = ac->data;
    redisReply *reply = r;
    char text[512], *w[6], addr[ADDR_TEXT_MAX];
    uint16_t port;
    int n = 0;
    (void)priv;
    if (s == NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(reply->element[0]->str, "message") != 0 ||
        reply->element[2]->type != REDIS_REPLY_STRING || reply->element[2]->len >= sizeof text ||
        memchr(reply->element[2]->str, '\0', reply->element[2]->len) != NULL)
        return;
    /* MASTER_NAME OLD_ADDRESS OLD_PORT NEW_ADDRESS NEW_PORT */
    memcpy(text, reply->element[2]->str, reply->element[2]->len + 1);
    for (char *save = NULL, *t = strtok_r(text, " ", &save); t != NULL && n < 6;
         t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    if (n != 5 || strcmp(w[0], s->master) != 0 || !sentinel_answer_parse(w[3], w[4], addr, &port))
        return;
    memcpy(s->switch_addr, addr, sizeof s->switch_addr);
    s->switch_port = port;
    double wait = s->switched_at + SENTINEL_SWITCH_MIN - ev_now(s->loop);
    if (s->switched_at > 0 && wait > 0) { /* the latest news, in its turn */
        if (!ev_is_active(&s->switch_timer)) {
            ev_timer_set(&s->switch_timer, wait, 0.);
            ev_timer_start(s->loop, &s->switch_timer);
        }
        return;
    }
    sentinel_switch(s);
}

static void sentinel_watch_lost(struct sentinel *s)
{
    s->watch = NULL;
    s->watching = (s->watching + 1) % s->count; /* another one next time */
    ev_timer_set(&s->watch_timer, SENTINEL_RETRY_MAX, 0.);
    ev_timer_start(s->loop, &s->watch_timer);
}

static void sentinel_watch_connect_cb(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    if (s != NULL && status != REDIS_OK)
        sentinel_watch_lost(s); /* hiredis frees it */
}

static void sentinel_watch_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct sentinel *s = ac->data;
    char what[160];
    if (s == NULL)
        return;
    if (status != REDIS_OK) {
        snprintf(what, sizeof what, "subscription lost (%s)", redis_guard_why(&ac->c));
        sentinel_say(s, s->watching, what);
    }
    sentinel_watch_lost(s);
}

static void sentinel_subscribe(struct sentinel *s, unsigned i)
{
    s->watching = i;
    s->watch = sentinel_connect(s, i, sentinel_watch_connect_cb, &s->watch_guard);
    if (s->watch == NULL) {
        sentinel_watch_lost(s);
        return;
    }
    redisAsyncSetDisconnectCallback(s->watch, sentinel_watch_disconnect_cb);
    sentinel_auth(s, s->watch, &s->watch);
    redis_guard_subscribe(&s->watch_guard, SENTINEL_CHANNEL);
    redisAsyncCommand(s->watch, sentinel_switch_cb, NULL, "SUBSCRIBE " SENTINEL_CHANNEL);
}

static void sentinel_watch_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sentinel *s = w->data;
    (void)loop, (void)revents;
    if (s->watch == NULL)
        sentinel_subscribe(s, s->watching);
}

void sentinel_confirm(struct sentinel *s)
{
    s->asking = false;
    s->proposed = false;
    s->confirmed_at = ev_now(s->loop);
    ev_timer_stop(s->loop, &s->retry);
    if (s->watch == NULL && !ev_is_active(&s->watch_timer))
        sentinel_subscribe(s, s->current);
}

const char *sentinel_via(const struct sentinel *s)
{
    return s->via;
}

struct sentinel *sentinel_new(struct ev_loop *loop, const struct fleetproto_url *url,
                              const char *auth, sentinel_master_fn *fn, void *arg, char *err,
                              size_t errsize)
{
    struct sentinel *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    *s = (struct sentinel){.loop = loop, .fn = fn, .arg = arg, .backoff = SENTINEL_RETRY_MIN};
    snprintf(s->master, sizeof s->master, "%s", url->master);
    fleetproto_auth_split(auth, s->user, sizeof s->user, s->password, sizeof s->password);
    for (unsigned i = 0; i < url->sentinels; i++) {
        if (fleet_resolve(url->sentinel[i].host, s->peer[i].addr, sizeof s->peer[i].addr, err,
                          errsize) < 0) {
            free(s);
            return NULL;
        }
        s->peer[i].port = url->sentinel[i].port;
    }
    s->count = url->sentinels;
    ev_init(&s->query_timer, sentinel_query_timer_cb);
    s->query_timer.data = s;
    ev_init(&s->retry, sentinel_retry_cb);
    s->retry.data = s;
    ev_init(&s->watch_timer, sentinel_watch_timer_cb);
    s->watch_timer.data = s;
    ev_init(&s->switch_timer, sentinel_switch_timer_cb);
    s->switch_timer.data = s;
    return s;
}

void sentinel_free(struct sentinel *s)
{
    if (s == NULL)
        return;
    ev_timer_stop(s->loop, &s->query_timer);
    ev_timer_stop(s->loop, &s->retry);
    ev_timer_stop(s->loop, &s->watch_timer);
    ev_timer_stop(s->loop, &s->switch_timer);
    redisAsyncContext *contexts[] = {s->query, s->watch};
    for (int i = 0; i < 2; i++) {
        if (contexts[i] != NULL) {
            contexts[i]->data = NULL;
            redisAsyncFree(contexts[i]);
        }
    }
    free(s);
}
