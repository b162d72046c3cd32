/*
 * bans - the network-facing side of banning: decides (banpolicy.h),
 * remembers (store.h) and hands the firewall work to the privileged helper
 * (banhelper.h) without ever blocking the event loop.
 *
 *   bans_new()       on the socket to the helper (-1: ban_backend = none,
 *                    then nothing is banned)
 *   bans_offender()  a client was refused (after its first 5xx went out),
 *                    or the MTA's log says it refused it (watch: then its
 *                    live connections to watch_ports are ended too)
 *   bans_manual()    ctl ban ADDRESS[/LEN] [DURATION]
 *   bans_unban()     ctl unban ADDRESS[/LEN]
 *   bans_restore()   at start: every unexpired ban back into the firewall
 *                    with its remaining time
 *   bans_set_fleet() publish every ban and unban made here to the fleet
 *                    (fleet.h)
 *   bans_peer()      a fleet peer's ban or unban: applied here (not
 *                    published again) unless the allowlist says no, at
 *                    most ban_time_max
 *   bans_stats()     counters and the 5xx-to-firewall latency
 *   bans_set_metrics()  count in a metrics slot (metrics.h; serve's
 *                    workers, where a scrape sums every worker) rather than
 *                    in the module's own counters (watch)
 *   bans_finish()    at stop: no more requests; the answers of those
 *                    sent, and of the kills they queued, are counted
 *   bans_free()
 *
 * Requests go to the helper at once; when its socket is full they wait in
 * a queue (bounded: BANS_QUEUE_MAX, beyond which they are dropped and
 * counted) that drains as the socket becomes writable. Allowlisted
 * addresses are never banned.
 *
 * A ban covers the client's network (ipv4_prefix, ipv6_prefix, as when it
 * was made): records, escalation, the firewall entry and the fleet message
 * are the network's. Where the allowlist holds part of that network, the
 * client's address alone is banned. A kill (watch) still ends only the
 * connections of the address the log named. A peer's ban wider than this
 * host's own prefix is refused.
 */
#ifndef BREAKWATER_BANS_H
#define BREAKWATER_BANS_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"
#include "fleet.h"
#include "store.h"

#define BANS_QUEUE_MAX (1u << 20)
#define BANS_LATENCY_BUCKETS 16

/* Upper bounds (seconds) of the latency buckets; the last is +Inf. */
extern const double bans_latency_bounds[BANS_LATENCY_BUCKETS];

struct bans_stats {
    uint64_t requested;   /* bans and unbans handed to the helper */
    uint64_t applied;     /* the helper put them in the firewall */
    uint64_t failed;      /* the firewall refused them, or the helper is gone */
    uint64_t dropped;     /* the queue was full */
    uint64_t killed;      /* connections (or processes) of banned addresses ended */
    uint64_t kill_failed; /* banned addresses whose connections could not be ended */
    uint64_t latency[BANS_LATENCY_BUCKETS]; /* request to applied */
    uint64_t latency_sum_us;
};

struct bans;

struct bans *bans_new(struct ev_loop *loop, const struct conf *conf, struct store *store,
                      int helper_fd);
/* Returns true when a ban was requested (false: allowlisted, banned a
 * moment ago, or no backend). */
bool bans_offender(struct bans *b, const struct addr *a, enum store_ban_reason reason,
                   bool kill);
/* A peer's ban only blocks new connections, also under watch: ending live
 * ones is for what this host's own MTA log proves. */
void bans_set_fleet(struct bans *b, struct fleet *fleet);
/* A peer's event decided more than this many seconds ahead of this host's
 * clock is refused (FLEET_CLOCK). */
#define BANS_CLOCK_AHEAD_MAX 60.0
/* A fleet_ban_fn (arg: the bans). */
enum fleet_taken bans_peer(void *arg, const struct fleetproto_ban *ban);
/* prefix: the network of a to ban, or -1 for the configured one (as for
 * an offender); seconds 0 = the policy's length. Returns 0, or -1 with err
 * set. */
int bans_manual(struct bans *b, const struct addr *a, int prefix, double seconds, char *err,
                size_t errsize);
/* Lifts every ban that overlaps net (the /64 that holds an address, or the
 * addresses banned alone inside a network). */
int bans_unban(struct bans *b, const struct cidr *net, char *err, size_t errsize);
/* Returns how many bans were put back. */
size_t bans_restore(struct bans *b);
void bans_stats(const struct bans *b, struct bans_stats *out);
/* A reload: ban_time, ban_time_max and the allowlist from conf from now on
 * (conf outlives its use: the generation holding it is current). */
void bans_set_conf(struct bans *b, const struct conf *conf);
struct metrics_slot;
void bans_set_metrics(struct bans *b, struct metrics_slot *metrics);
/* The latency below which fraction q (0..1] of the applied bans fell: a
 * bucket's upper bound; 0 when none was applied. */
double bans_latency_quantile(const struct bans_stats *s, double q);
/* Waits at most limit seconds for the helper to answer everything it was
 * sent (it closes its end once its last pending kill is answered). */
void bans_finish(struct bans *b, double limit);
void bans_free(struct bans *b);

#endif
