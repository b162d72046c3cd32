/*
 * fleet_probe - the fleet's Redis reached once at start, blocking, so that
 * a password it refuses is a clear start error (fleet_probe() in fleet.h).
 *
 * The whole probe has one deadline (FLEET_PROBE_TOTAL): every reply is
 * awaited with poll() against it, so a server that answers a byte at a
 * time, or never, cannot hold the start longer. Through sentinels, the
 * probe goes the way the running code does: a sentinel that refuses the
 * password or answers nonsense, and a named server that refuses the
 * password or is not a master, are passed over for the next sentinel; a
 * refused password is a start error only when no sentinel led to a master
 * (one hostile sentinel among honest ones cannot stop the start).
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "fleet.h"
#include "log.h"
#include "redis_guard.h"
#include "sentinel.h"

#define FLEET_PROBE_TOTAL 5.0

enum fleet_probe_result { PROBE_OK, PROBE_AWAY, PROBE_REFUSED, PROBE_NOT_MASTER };

static double fleet_probe_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fleet_probe_call - one command, its reply awaited until deadline at
 * most; NULL when none came in time (or the link failed) */
static redisReply *fleet_probe_call(redisContext *c, double deadline, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK)
        return NULL;
    for (int done = 0; !done;)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return NULL;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return NULL;
        if (reply != NULL)
            return reply;
        double left = deadline - fleet_probe_clock();
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0 ||
            redis_guard_pending_over(c) || redisBufferRead(c) != REDIS_OK)
            return NULL;
    }
}

/* fleet_probe_connect - a blocking connection, within the deadline, its
 * replies checked by guard */
static redisContext *fleet_probe_connect(const char *addr, uint16_t port, double deadline,
                                         struct redis_guard *guard)
{
    double left = deadline - fleet_probe_clock();
    if (left <= 0)
        return NULL;
    if (left > FLEET_PROBE_TIMEOUT)
        left = FLEET_PROBE_TIMEOUT;
    struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};
    redisContext *c = redisConnectWithTimeout(addr, port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c != NULL)
        redis_guard_install(c->reader, NULL, guard);
    return c;
}

/* fleet_probe_auth - AUTH (or PING without a password) */
static redisReply *fleet_probe_auth(redisContext *c, double deadline, const char *user,
                                    const char *password)
{
    if (password[0] == '\0')
        return fleet_probe_call(c, deadline, "PING");
    if (user[0] != '\0')
        return fleet_probe_call(c, deadline, "AUTH %s %s", user, password);
    return fleet_probe_call(c, deadline, "AUTH %s", password);
}

/* fleet_probe_redis - AUTH, SELECT and (through sentinels) ROLE on the
 * Redis at addr:port; a refusal is described in err */
static enum fleet_probe_result fleet_probe_redis(const struct fleetproto_url *url,
                                                 const char *addr, uint16_t port,
                                                 double deadline, char *err, size_t errsize)
{
    struct redis_guard guard;
    redisContext *c = fleet_probe_connect(addr, port, deadline, &guard);
    if (c == NULL)
        return PROBE_AWAY;
    const char *step = url->password[0] != '\0' ? "AUTH" : "PING";
    redisReply *r = fleet_probe_auth(c, deadline, url->user, url->password);
    if (r != NULL && r->type != REDIS_REPLY_ERROR && url->db != 0) {
        freeReplyObject(r);
        step = "SELECT";
        r = fleet_probe_call(c, deadline, "SELECT %u", url->db);
    }
    enum fleet_probe_result result = PROBE_OK;
    if (r == NULL) {
        result = PROBE_AWAY;
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errsize, "fleet_redis %s:%u: Redis refused %s%s%s: %s", addr, port, step,
                 strcmp(step, "AUTH") == 0 && url->user[0] ? " for user " : "",
                 strcmp(step, "AUTH") == 0 ? url->user : "", r->str);
        result = PROBE_REFUSED;
    } else if (url->sentinels > 0) {
        freeReplyObject(r);
        r = fleet_probe_call(c, deadline, "ROLE");
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            strcmp(r->element[0]->str, "master") != 0)
            result = r == NULL ? PROBE_AWAY : PROBE_NOT_MASTER;
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return result;
}

/* fleet_probe_ask - one sentinel: its answer for the master's name in
 * addr and port (PROBE_OK), or why not */
static enum fleet_probe_result fleet_probe_ask(const struct conf *conf, unsigned i,
                                               double deadline, char *addr, uint16_t *port,
                                               char *err, size_t errsize)
{
    const struct fleetproto_url *url = &conf->fleet_redis;
    const char *auth = conf->fleet_sentinel_password;
    char user[128], password[256], sentinel[ADDR_TEXT_MAX];
    fleetproto_auth_split(auth, user, sizeof user, password, sizeof password);
    if (fleet_resolve(url->sentinel[i].host, sentinel, sizeof sentinel, err, errsize) < 0)
        return PROBE_AWAY;
    struct redis_guard guard;
    redisContext *c = fleet_probe_connect(sentinel, url->sentinel[i].port, deadline, &guard);
    if (c == NULL)
        return PROBE_AWAY;
    enum fleet_probe_result result = PROBE_AWAY;
    redisReply *r = fleet_probe_auth(c, deadline, user, password);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errsize, "fleet_redis: sentinel %s:%u refused %s: %s", sentinel,
                 url->sentinel[i].port,
                 auth[0] ? "fleet_sentinel_password" : "PING (does it need "
                                                       "fleet_sentinel_password?)", r->str);
        result = PROBE_REFUSED;
    } else if (r != NULL) {
        freeReplyObject(r);
        r = fleet_probe_call(c, deadline, "SENTINEL get-master-addr-by-name %s", url->master);
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            sentinel_answer_parse(r->element[0]->str, r->element[1]->str, addr, port))
            result = PROBE_OK;
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return result;
}

int fleet_probe(const struct conf *conf, char *err, size_t errsize)
{
    const struct fleetproto_url *url = &conf->fleet_redis;
    double deadline = fleet_probe_clock() + FLEET_PROBE_TOTAL;
    char addr[ADDR_TEXT_MAX], refused[256] = "";
    uint16_t port = url->redis.port;
    if (url->sentinels == 0) {
        if (fleet_resolve(url->redis.host, addr, sizeof addr, err, errsize) < 0)
            return -1;
        enum fleet_probe_result r = fleet_probe_redis(url, addr, port, deadline, err, errsize);
        if (r == PROBE_AWAY)
            log_warning("fleet_redis %s:%u: not reachable now: going on alone until it is",
                        addr, port);
        return r == PROBE_REFUSED ? -1 : 0;
    }
    for (unsigned i = 0; i < url->sentinels; i++) {
        char why[256] = "";
        enum fleet_probe_result r = fleet_probe_ask(conf, i, deadline, addr, &port, why,
                                                    sizeof why);
        if (r == PROBE_OK)
            r = fleet_probe_redis(url, addr, port, deadline, why, sizeof why);
        if (r == PROBE_OK)
            return 0;
        if (r == PROBE_REFUSED && refused[0] == '\0')
            snprintf(refused, sizeof refused, "%s", why);
        if (why[0] != '\0' && r != PROBE_REFUSED) { /* a name that does not resolve */
            snprintf(err, errsize, "%s", why);
            return -1;
        }
    }
    /* nothing usable and a password refused: an error, unless the deadline
     * came first (a hostile sentinel refusing late must not crowd out an
     * honest one listed after it) */
    if (refused[0] != '\0' && fleet_probe_clock() < deadline) {
        snprintf(err, errsize, "%s", refused);
        return -1;
    }
    log_warning("fleet_redis: no sentinel names a reachable master %s now: going on alone "
                "until one does", url->master);
    return 0;
}
