/*
 * dnsbl - asynchronous DNSBL lookups of one client address on every
 * configured list at once, and the lists' RFC 5782 health checks.
 *
 *   dnsbl_new()            the lists of a config, on a resolver
 *   dnsbl_health_start()   ask every list for its test points now and then
 *                          every dnsbl_health_interval
 *   dnsbl_lookup_start()   query every list about one address; `update` is
 *                          called from the loop after each answer
 *   dnsbl_lookup_score()   the score so far (settled or not)
 *   dnsbl_lookup_release() the caller is done: no more `update` calls; the
 *                          lookup frees itself when its last query returns
 *                          (c-ares 1.18 cannot cancel one query)
 *   dnsbl_free()           after resolver_free(), which ends every query
 *   dnsbl_set_metrics()    count queries, answers' latency and cache use in
 *                          a metrics slot (metrics.h)
 *   dnsbl_set_fleet()      after a local cache miss, ask the fleet's Redis
 *                          first (fleet.h, at most fleet_timeout), and share
 *                          each verdict made here
 *   dnsbl_busy()           a fleet answer is still due: not to be freed yet
 *
 *   dnsbl_warn_keyed()     at start: a list domain that carries a key, unnamed
 *   dnsbl_parse_a()        raw A answer -> zone result (shared with check)
 *   dnsbl_health_evaluate(), dnsbl_health_text(), dnsbl_health_suspends()
 *   dnsbl_health_refusal() the refusal answer of a test point, if any
 *   dnsbl_warn_refused()   the plain warning, with the fix, for a list that
 *                          refuses this resolver (serve and check)
 *
 * Verdicts are remembered in the store (store.h), and shared with the fleet
 * with the same expiry: a lookup of an address with an unexpired verdict
 * sends no query. A verdict is stored once every list answered (never when
 * one failed: a DNS failure must not stick), for as long as the answers
 * behind it may be believed, bounded by dnsttl_bound() (dnsttl.h):
 *
 *   listed  the lowest TTL of the A records, within [60 s, cache_listed_ttl]
 *           (cache_listed_ttl when no A record has a TTL)
 *   clean   the lowest TTL of every list's answer: an NXDOMAIN's (or
 *           NODATA's) negative TTL, from the SOA of its authority section
 *           (RFC 2308), an A answer's lowest TTL (an allow list, an answer
 *           outside the filter), within [min(60 s, cache_clean_ttl),
 *           cache_clean_ttl]; a negative answer without a usable SOA
 *           counts as the floor (RFC 2308 §5: not to be cached)
 *
 * A list that fails its health check (lists 127.0.0.1, stops listing
 * 127.0.0.2, or refuses this resolver: answers 127.0.0.2 with
 * 127.255.255.x) is suspended: its queries are not sent and its weight
 * counts 0 until it passes again. IPv4 and IPv6 are checked separately,
 * since many lists serve only IPv4. A list refusing the resolver is said
 * once (dnsbl_warn_refused(), with the fix), not once per family or check,
 * until it answers again; each refused test point is counted in the
 * metrics (dnsbl_health_refused).
 */
#ifndef BREAKWATER_DNSBL_H
#define BREAKWATER_DNSBL_H

#include <ev.h>

#include "addr.h"
#include "conf.h"
#include "dnsbl_spec.h"
#include "fleet.h"
#include "metrics.h"
#include "resolver.h"
#include "store.h"

struct dnsbl;
struct dnsbl_lookup;

typedef void (*dnsbl_update_fn)(void *arg);

/* store: where verdicts are cached (NULL: nowhere). */
struct dnsbl *dnsbl_new(struct ev_loop *loop, struct resolver *resolver,
                        const struct conf *conf, struct store *store);
void dnsbl_health_start(struct dnsbl *d);
void dnsbl_free(struct dnsbl *d);
void dnsbl_set_metrics(struct dnsbl *d, struct metrics_slot *metrics);
/* A peer's verdict counts only when it was made under the same sites. */
void dnsbl_set_fleet(struct dnsbl *d, struct fleet *fleet);
bool dnsbl_busy(const struct dnsbl *d);

/* Returns NULL only when out of memory (the caller then goes on as if
 * every list had failed). */
struct dnsbl_lookup *dnsbl_lookup_start(struct dnsbl *d, const struct addr *a,
                                        dnsbl_update_fn update, void *arg);
void dnsbl_lookup_score(const struct dnsbl_lookup *lookup, struct dnsbl_score *out);
void dnsbl_lookup_release(struct dnsbl_lookup *lookup);
/* True when the verdict came from the cache, without queries. */
bool dnsbl_lookup_cached(const struct dnsbl_lookup *lookup);

/* A warning for each list whose domain looks like it carries a key
 * (dnsbl_domain_keyed) and has no public name in dnsbl_names: the key
 * would go into replies, logs and metrics. The key is not in the warning. */
void dnsbl_warn_keyed(const struct dnsbl_sites *sites);

/* Fills out from a c-ares status and A answer: NXDOMAIN and NODATA are an
 * answer with no addresses; any other error is DNSBL_ZONE_FAILED. *ttl (if
 * not NULL) gets the lowest TTL of the A records, 0 when there are none. */
void dnsbl_parse_a(int status, const unsigned char *abuf, int alen,
                   struct dnsbl_zone_result *out, unsigned *ttl);

enum dnsbl_health {
    DNSBL_HEALTH_UNKNOWN,           /* a test query failed: keep the old state */
    DNSBL_HEALTH_OK,
    DNSBL_HEALTH_LISTS_EVERYTHING,  /* lists the 127.0.0.1 test point */
    DNSBL_HEALTH_MISSES_TEST_POINT, /* does not list 127.0.0.2 */
    DNSBL_HEALTH_REFUSED,           /* answers 127.0.0.2 with 127.255.255.x only */
};

/* listed_point: the answer for 127.0.0.2 (or ::ffff:127.0.0.2);
 * unlisted_point: for 127.0.0.1 (or ::ffff:127.0.0.1). */
enum dnsbl_health dnsbl_health_evaluate(const struct dnsbl_zone_result *listed_point,
                                        const struct dnsbl_zone_result *unlisted_point);
const char *dnsbl_health_text(enum dnsbl_health health);
/* Does this state suspend the list (its weight counts 0)? */
bool dnsbl_health_suspends(enum dnsbl_health health);
/* The first 127.255.255.x answer of an answered test point, or NULL. */
const uint8_t *dnsbl_health_refusal(const struct dnsbl_zone_result *point);
/* name: the list's public name; answer: its refusal answer for point (the
 * test point's text, "127.0.0.2" or "::ffff:127.0.0.2"). */
void dnsbl_warn_refused(const char *name, const uint8_t answer[4], const char *point);
/* The RFC 5782 test point of a family: which = 2 (must be listed) or 1. */
void dnsbl_test_point(int family, int which, struct addr *out);

#endif
