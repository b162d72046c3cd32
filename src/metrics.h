/*
 * metrics - breakwater's counters, gauges and histograms, in memory shared
 * by every worker, and their Prometheus text exposition.
 *
 *   metrics_new()      map the shared area (before the workers fork): one
 *                      slot per worker, all zero
 *   metrics_slot()     worker `index`'s slot; metrics_slot_start() when that
 *                      worker (re)starts: its gauges back to zero, its pid
 *   metrics_sum()      every slot added up, into one struct metrics_slot
 *   metrics_process_refresh()  the worker's own process facts (open fds,
 *                      RSS, CPU) into its slot; cheap: one stat() and two
 *                      small /proc reads
 *   metrics_render()   the Prometheus text format (version 0.0.4) of the
 *                      sum, into a malloc'd buffer the caller frees
 *   metrics_free()
 *
 * Concurrency: each worker writes only its own slot, with plain stores of
 * aligned 64-bit integers, which are single-copy atomic on x86-64 and
 * arm64: a scrape in another worker reads each value whole, possibly a
 * moment old, never torn. Counters only grow (a restarted worker goes on
 * from its slot's values); gauges are set back to zero at a restart.
 *
 * Labels are fixed enums (states, refusal reasons, verdicts, DNSBL results,
 * ban results) or the configured DNSBL zones, by their public names
 * (sites->name[z], never the queried domain, which may carry a key): never
 * a client address.
 */
#ifndef BREAKWATER_METRICS_H
#define BREAKWATER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bans.h"
#include "conf.h"
#include "dnsbl_spec.h"

/* Open sessions by state (session.c's states). */
enum metrics_state {
    METRICS_STATE_DNSBL, METRICS_STATE_REJECT, METRICS_STATE_RELAY, METRICS_STATE_CLOSING,
    METRICS_STATES
};

/* Connections turned away, and why. */
enum metrics_refusal {
    METRICS_REFUSED_MAX_CONNECTIONS, METRICS_REFUSED_PER_IP,
    METRICS_REFUSED_BACKEND_FULL, METRICS_REFUSED_BACKEND_DOWN, METRICS_REFUSED_RATE,
    METRICS_REFUSALS
};

/* Session verdicts, in session.c's order (session.c checks it). */
enum metrics_verdict {
    METRICS_VERDICT_HANGUP, METRICS_VERDICT_LISTED, METRICS_VERDICT_CLEAN,
    METRICS_VERDICT_ALLOWLISTED, METRICS_VERDICT_DENYLISTED, METRICS_VERDICT_PREGREET,
    METRICS_VERDICT_LIMIT, METRICS_VERDICT_BACKEND_DOWN,
    METRICS_VERDICTS
};

/* What one DNSBL query brought. */
enum metrics_dnsbl_result {
    METRICS_DNSBL_LISTED, METRICS_DNSBL_CLEAN, METRICS_DNSBL_ERROR,
    METRICS_DNSBL_TIMEOUT, METRICS_DNSBL_REFUSED,
    METRICS_DNSBL_RESULTS
};

/* Why a fleet ban was not applied or not sent. */
enum metrics_fleet_drop {
    METRICS_FLEET_DROP_MALFORMED,   /* a message from Redis that does not parse */
    METRICS_FLEET_DROP_BACKLOG,     /* Redis away too long: the oldest waiting ban */
    METRICS_FLEET_DROP_REFUSED,     /* Redis refused our PUBLISH (e.g. an ACL) */
    METRICS_FLEET_DROP_STALE,       /* older than the event held for its address */
    METRICS_FLEET_DROP_CLOCK,       /* decided too far ahead of this host's clock */
    METRICS_FLEET_DROPS
};
/* What a shared-verdict lookup brought. */
enum metrics_fleet_verdict {
    METRICS_FLEET_VERDICT_HIT, METRICS_FLEET_VERDICT_MISS, METRICS_FLEET_VERDICT_TIMEOUT,
    METRICS_FLEET_VERDICTS
};
#define METRICS_DNSBL_BUCKETS 12   /* the last is +Inf */
extern const double metrics_dnsbl_bounds[METRICS_DNSBL_BUCKETS];
#define METRICS_FLEET_BUCKETS 16   /* the last is +Inf */
extern const double metrics_fleet_bounds[METRICS_FLEET_BUCKETS];

struct metrics_slot {
    uint64_t pid;                          /* 0: this worker never ran */
    /* gauges */
    uint64_t open[METRICS_STATES];
    uint64_t open_fds, resident_bytes;
    uint64_t cpu_us;                       /* user + system CPU time */
    uint64_t start_time_ms;                /* Unix epoch, milliseconds */
    /* counters */
    uint64_t accepted;
    uint64_t refused[METRICS_REFUSALS];
    uint64_t sessions[METRICS_VERDICTS];
    uint64_t dnsbl_queries[DNSBL_SITES_MAX][METRICS_DNSBL_RESULTS];
    uint64_t dnsbl_latency[DNSBL_SITES_MAX][METRICS_DNSBL_BUCKETS];
    uint64_t dnsbl_latency_sum_us[DNSBL_SITES_MAX];
    uint64_t dnsbl_health_refused[DNSBL_SITES_MAX]; /* test points answered 127.255.255.x */
    uint64_t cache_hits, cache_misses;
    struct bans_stats bans;                /* bans.c counts here (all uint64_t) */
    uint64_t relayed_to_backend, relayed_to_client;
    uint64_t backend_connect_failures;
    uint64_t fleet_connected;              /* gauge: the command link is up */
    uint64_t fleet_bans_sent, fleet_bans_received, fleet_bans_applied;
    uint64_t fleet_bans_dropped[METRICS_FLEET_DROPS];
    uint64_t fleet_verdicts[METRICS_FLEET_VERDICTS];
    uint64_t fleet_latency[METRICS_FLEET_BUCKETS];  /* publish -> received here */
    uint64_t fleet_latency_sum_us;
    uint64_t fleet_failovers;              /* the master changed (through sentinels) */
    /* text, NUL-terminated, written by the process that listens to the
     * fleet alone (the others' zeros leave the sum its text): the Redis in
     * use ("ADDRESS:PORT") and the sentinel that named it */
    uint64_t fleet_master[8], fleet_sentinel[8];
};

struct metrics;

/* NULL when the shared memory cannot be mapped. workers: 1..WORKERS_MAX. */
struct metrics *metrics_new(unsigned workers);
struct metrics_slot *metrics_slot(struct metrics *m, unsigned index);
void metrics_slot_start(struct metrics_slot *slot);
void metrics_sum(const struct metrics *m, struct metrics_slot *out);
void metrics_process_refresh(struct metrics_slot *slot);
/* A reload: the per-list rows of the slot move to the zones' places in
 * `to`; a zone `to` does not have loses its row (its counters start from
 * zero if it comes back, which Prometheus reads as a counter reset).
 * Returns false when the zones are the same, in the same order. */
bool metrics_slot_move_zones(struct metrics_slot *slot, const struct dnsbl_sites *from,
                             const struct dnsbl_sites *to);
/* cache_entries: the verdicts in the store now. Returns the text (its
 * length in *len), or NULL when out of memory. */
char *metrics_render(const struct metrics *m, const struct conf *conf, size_t cache_entries,
                     size_t *len);
void metrics_free(struct metrics *m);
/* A text field of a slot (fleet_master, fleet_sentinel) as a string: out
 * has size + 1 bytes. */
void metrics_slot_text(const uint64_t *field, size_t size, char *out);

/* metrics_seconds_us - seconds as whole microseconds, for the sums */
static inline uint64_t metrics_seconds_us(double seconds)
{
    return seconds > 0 ? (uint64_t)(seconds * 1e6 + 0.5) : 0;
}

#endif
