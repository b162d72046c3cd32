/*
 * fleet - several MX hosts share bans and DNSBL verdicts through one Redis
 * (fleet_redis), with hiredis on the libev loop: Redis never blocks the
 * loop, every request that a decision waits for has a bounded wait.
 *
 *   fleet_probe()       at start, before serving: reach Redis once
 *                       (fleet_probe.c: blocking, within one deadline) so
 *                       that a refused password is a clear start error;
 *                       Redis unreachable is only a warning
 *   fleet_new()         the links: one for commands, and (listen = true,
 *                       one worker) one subscribed to the ban channel
 *   fleet_ban(), fleet_unban()  publish a local ban (and keep it under its
 *                       own key until it ends, for hosts that start later)
 *   fleet_verdict_get() ask for a verdict another host made; the answer
 *                       comes from the loop within fleet_timeout
 *   fleet_verdict_put() share a verdict made here, for its TTL
 *   fleet_free()        answers every waiting request (as a miss) first
 *
 * Keys: FLEET_NAME:ban:ADDRESS or :ban:ADDRESS/LEN for a network (the ban
 * message, expiring with the ban),
 * FLEET_NAME:verdict:ADDRESS (expiring with the verdict); channel
 * FLEET_NAME:bans. Messages: fleetproto.h.
 *
 * Through Redis Sentinel (fleet_redis = redis-sentinel://...), sentinel.h
 * says where the master is; the commands link asks ROLE before it is used
 * and writes only to a master; it asks the sentinels again when the
 * master's link drops or a write is refused as read-only (READONLY: the
 * ban goes back into the backlog).
 *
 * Order: a ban or unban is published by a Redis script that refuses it
 * when the address's key holds a newer event (fleetproto_event_older());
 * an unban's key stays for ban_time_max, so that an older ban published
 * late (from a backlog) is refused there, and hosts refuse it too.
 *
 * Redis down, slow or restarting: every request is answered as a miss
 * (then DNS), bans made meanwhile wait in a bounded backlog
 * (FLEET_BACKLOG_MAX, the oldest dropped and counted) and are published
 * in order after reconnecting (a ban whose PUBLISH Redis did not take goes
 * back into it); reconnects back off from 0.5 s to 30 s; a link with
 * replies overdue by FLEET_STALL seconds is dropped and made again (an
 * idle commands link is PINGed, both links have TCP keepalive). A problem
 * is logged once per FLEET_LOG_INTERVAL with how many were suppressed.
 *
 * Peers' messages are untrusted: fleetproto_ban_parse() checks them, the
 * bans module applies its own allowlist and ban_time_max; anything that
 * does not parse is counted (metrics) and dropped.
 */
#ifndef BREAKWATER_FLEET_H
#define BREAKWATER_FLEET_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"
#include "fleetproto.h"

#define FLEET_PROBE_TIMEOUT 2.0
#define FLEET_BACKLOG_MAX 65536
#define FLEET_STALL 2.0
#define FLEET_INFLIGHT_MAX 100000
#define FLEET_LOG_INTERVAL 60.0

struct fleet;
struct metrics_slot;

enum fleet_taken {
    FLEET_APPLIED,
    FLEET_IGNORED,   /* allowlisted, over, banned as long already */
    FLEET_STALE,     /* older than the event held for the address */
    FLEET_CLOCK,     /* decided too far ahead of this host's clock */
};
/* A peer's ban or unban, checked. */
typedef enum fleet_taken fleet_ban_fn(void *arg, const struct fleetproto_ban *ban);

struct fleet_verdict {
    int score;
    uint64_t hits;
    double expires;      /* wall clock seconds */
};
/* v is NULL for a miss (none, other lists, timeout, Redis down). */
typedef void fleet_verdict_fn(void *arg, const struct fleet_verdict *v);

/* A host name's first address, as text (blocking: at start only).
 * Returns 0, or -1 with err set. */
int fleet_resolve(const char *host, char *out, size_t size, char *err, size_t errsize);
/* Returns 0 (reached, or not reachable now: logged), or -1 with err set
 * when Redis (or a sentinel) refused the password or the database. */
int fleet_probe(const struct conf *conf, char *err, size_t errsize);
/* NULL with err set (out of memory, a host name that does not resolve). */
struct fleet *fleet_new(struct ev_loop *loop, const struct conf *conf, bool listen,
                        fleet_ban_fn *on_ban, void *arg, char *err, size_t errsize);
void fleet_set_metrics(struct fleet *f, struct metrics_slot *metrics);
/* at: when the ban or unban was decided (wall clock seconds) */
void fleet_ban(struct fleet *f, const struct cidr *net, double at, double until, uint32_t count,
               uint8_t reason);
void fleet_unban(struct fleet *f, const struct cidr *net, double at);
/* timeout: fleet_timeout of the caller's configuration. Returns false (fn
 * will not be called) when Redis is not connected. */
bool fleet_verdict_get(struct fleet *f, const struct addr *a, uint64_t sites_hash,
                       double timeout, fleet_verdict_fn *fn, void *arg);
void fleet_verdict_put(struct fleet *f, const struct addr *a, uint64_t sites_hash, int score,
                       uint64_t hits, double expires);
void fleet_free(struct fleet *f);

#endif
