/*
 * dnsbl - asynchronous DNSBL lookups and list health checks. See dnsbl.h.
 *
 * Ownership: a lookup belongs to its caller until dnsbl_lookup_release(),
 * then to its outstanding queries; the last one to finish frees it. Health
 * probes belong to their queries the same way.
 */
#include <ares.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "dnsbl.h"
#include "dnsttl.h"
#include "log.h"

#define DNSBL_NAME_MAX (DNSBL_DOMAIN_MAX + 80)
#define DNSBL_TTL_NONE UINT32_MAX      /* no answer has given a TTL yet */

enum { DNSBL_FAMILY_V4, DNSBL_FAMILY_V6, DNSBL_FAMILIES };

struct dnsbl_zone_state {
    uint8_t health[DNSBL_FAMILIES]; /* enum dnsbl_health; UNKNOWN = usable */
    bool refused_said;              /* dnsbl_warn_refused() since it last
                                       stopped refusing */
    struct log_limit refusal_log;
    struct log_limit error_log;
};

struct dnsbl {
    struct ev_loop *loop;
    struct resolver *resolver;
    const struct dnsbl_sites *sites;
    int threshold;
    double health_interval;
    ev_timer health_timer;
    struct dnsbl_zone_state *zone; /* [sites->zone_count] */
    struct store *store;           /* the verdict cache; NULL: none */
    double clean_ttl, listed_ttl;
    struct metrics_slot *metrics;  /* NULL: not counted */
    struct fleet *fleet;           /* NULL: no fleet */
    uint64_t sites_hash;           /* dnsbl_sites_hash(): the tag of its verdicts */
    unsigned fleet_waiting;        /* lookups waiting for the fleet's answer */
    double fleet_timeout;
};

/* One query's argument: which lookup and which zone. */
struct dnsbl_query {
    struct dnsbl_lookup *lookup;
    unsigned zone;
    double sent;                   /* ev_now() when sent */
};

struct dnsbl_lookup {
    struct dnsbl *d;
    struct addr addr;
    dnsbl_update_fn update;
    void *arg;
    unsigned pending;
    bool released;
    bool starting;                     /* dnsbl_lookup_start() is sending */
    bool cached;                       /* decided from the cache */
    struct store_verdict verdict;      /* when cached */
    unsigned min_ttl;                  /* lowest TTL of the A answers, 0: none */
    uint32_t clean_ttl;                /* lowest TTL of every answer, negative
                                          TTLs included; DNSBL_TTL_NONE: none */
    struct dnsbl_zone_result *results; /* [zone_count], after query[] */
    struct dnsbl_query query[];        /* [zone_count] */
};

struct dnsbl_probe;

struct dnsbl_probe_query {
    struct dnsbl_probe *probe;
    int which; /* 0: the listed point, 1: the unlisted point */
};

/* One health check of one zone for one family: two queries. */
struct dnsbl_probe {
    struct dnsbl *d;
    unsigned zone;
    int family;
    unsigned pending;
    struct dnsbl_probe_query query[2];
    struct dnsbl_zone_result result[2];
};

static int dnsbl_family_index(const struct addr *a)
{
    return a->family == AF_INET6 ? DNSBL_FAMILY_V6 : DNSBL_FAMILY_V4;
}

static bool dnsbl_zone_suspended(const struct dnsbl *d, unsigned zone, int family)
{
    return dnsbl_health_suspends((enum dnsbl_health)d->zone[zone].health[family]);
}

/* dnsbl_zone_refused - does the list refuse us for some family? */
static bool dnsbl_zone_refused(const struct dnsbl *d, unsigned zone)
{
    for (int family = 0; family < DNSBL_FAMILIES; family++)
        if (d->zone[zone].health[family] == DNSBL_HEALTH_REFUSED)
            return true;
    return false;
}

/* dnsbl_answer_ttl - how long one list's answer may be believed, for a
 * clean verdict: an NXDOMAIN's or NODATA's negative TTL (0, which
 * dnsttl_bound() raises to the floor, when it carries no well-formed SOA),
 * else the lowest TTL of its A records */
static uint32_t dnsbl_answer_ttl(int status, const unsigned char *abuf, int alen,
                                 unsigned a_ttl)
{
    uint32_t ttl;
    if (status != ARES_ENOTFOUND && status != ARES_ENODATA)
        return a_ttl;
    if (abuf == NULL || alen <= 0 || !dnsttl_negative(abuf, (size_t)alen, &ttl))
        return 0;
    return ttl;
}

void dnsbl_parse_a(int status, const unsigned char *abuf, int alen,
                   struct dnsbl_zone_result *out, unsigned *ttl)
{
    memset(out, 0, sizeof *out);
    if (ttl != NULL)
        *ttl = 0;
    if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
        out->status = DNSBL_ZONE_ANSWERED;
        return;
    }
    struct ares_addrttl ttls[DNSBL_ANSWERS_MAX];
    int n = DNSBL_ANSWERS_MAX;
    if (status != ARES_SUCCESS ||
        ares_parse_a_reply(abuf, alen, NULL, ttls, &n) != ARES_SUCCESS) {
        out->status = DNSBL_ZONE_FAILED;
        return;
    }
    out->status = DNSBL_ZONE_ANSWERED;
    out->count = (uint8_t)n;
    for (int i = 0; i < n; i++) {
        memcpy(out->answer[i], &ttls[i].ipaddr, 4);
        if (ttl != NULL && ttls[i].ttl >= 0 && (*ttl == 0 || (unsigned)ttls[i].ttl < *ttl))
            *ttl = (unsigned)ttls[i].ttl;
    }
}

/* dnsbl_log_problems - say once in a while that a list refuses us or fails */
static void dnsbl_log_problems(struct dnsbl *d, unsigned zone, int status,
                               const struct dnsbl_zone_result *r,
                               const struct addr *a)
{
    char text[ADDR_TEXT_MAX];
    const char *name = d->sites->name[zone];
    if (r->status == DNSBL_ZONE_FAILED && status != ARES_EDESTRUCTION) {
        log_limited(&d->zone[zone].error_log, ev_now(d->loop), LOG_LEVEL_WARNING,
                    "dnsbl %s: query failed: %s (counted as not listed)",
                    name, ares_strerror(status));
        return;
    }
    for (unsigned i = 0; i < r->count; i++) {
        if (!dnsbl_answer_is_refusal(r->answer[i]))
            continue;
        addr_format(a, text, sizeof text);
        log_limited(&d->zone[zone].refusal_log, ev_now(d->loop), LOG_LEVEL_WARNING,
                    "dnsbl %s answered %u.%u.%u.%u for %s: the list refuses "
                    "to serve this resolver (an error, not a listing)",
                    name, r->answer[i][0], r->answer[i][1], r->answer[i][2],
                    r->answer[i][3], text);
        return;
    }
}

/* dnsbl_remember - every list answered: keep the verdict in the cache */
static void dnsbl_remember(const struct dnsbl_lookup *lookup)
{
    struct dnsbl *d = lookup->d;
    if (d->store == NULL || d->sites->zone_count == 0)
        return;
    for (size_t z = 0; z < d->sites->zone_count; z++) {
        const struct dnsbl_zone_result *r = &lookup->results[z];
        if (r->status != DNSBL_ZONE_ANSWERED)
            return; /* failed or suspended: not a verdict to keep */
        for (unsigned i = 0; i < r->count; i++)
            if (dnsbl_answer_is_refusal(r->answer[i]))
                return; /* the list refused us: an error, which never sticks */
    }
    struct dnsbl_score score;
    dnsbl_score(d->sites, lookup->results, d->threshold, &score);
    double ttl;
    if (!score.listed)
        ttl = dnsttl_bound(lookup->clean_ttl, d->clean_ttl);
    else if (lookup->min_ttl > 0)
        ttl = dnsttl_bound(lookup->min_ttl, d->listed_ttl);
    else
        ttl = d->listed_ttl;
    struct store_verdict v = {score.score, score.hits, d->sites_hash};
    store_verdict_put(d->store, &lookup->addr, &v, ev_now(d->loop) + ttl);
    if (d->fleet != NULL)
        fleet_verdict_put(d->fleet, &lookup->addr, d->sites_hash, score.score, score.hits,
                          ev_now(d->loop) + ttl);
}

/* dnsbl_count_answer - one query's result and latency into the metrics */
static void dnsbl_count_answer(struct dnsbl *d, const struct dnsbl_query *q, int status,
                               const struct dnsbl_zone_result *r)
{
    struct metrics_slot *m = d->metrics;
    if (m == NULL || q->zone >= DNSBL_SITES_MAX || status == ARES_EDESTRUCTION)
        return;
    enum metrics_dnsbl_result result = METRICS_DNSBL_CLEAN;
    if (status == ARES_ETIMEOUT)
        result = METRICS_DNSBL_TIMEOUT;
    else if (r->status == DNSBL_ZONE_FAILED)
        result = METRICS_DNSBL_ERROR;
    for (unsigned i = 0; result == METRICS_DNSBL_CLEAN && i < r->count; i++)
        result = dnsbl_answer_is_refusal(r->answer[i]) ? METRICS_DNSBL_REFUSED
                                                       : METRICS_DNSBL_LISTED;
    m->dnsbl_queries[q->zone][result]++;
    if (result == METRICS_DNSBL_TIMEOUT || result == METRICS_DNSBL_ERROR)
        return;
    double seconds = ev_now(d->loop) - q->sent;
    size_t b = 0;
    while (seconds > metrics_dnsbl_bounds[b])
        b++;
    m->dnsbl_latency[q->zone][b]++;
    m->dnsbl_latency_sum_us[q->zone] += metrics_seconds_us(seconds);
}

/* dnsbl_lookup_done - one zone answered for a lookup */
static void dnsbl_lookup_done(void *arg, int status, const unsigned char *abuf,
                              int alen)
{
    struct dnsbl_query *q = arg;
    struct dnsbl_lookup *lookup = q->lookup;
    struct dnsbl_zone_result *r = &lookup->results[q->zone];
    unsigned ttl;
    dnsbl_parse_a(status, abuf, alen, r, &ttl);
    if (ttl > 0 && (lookup->min_ttl == 0 || ttl < lookup->min_ttl))
        lookup->min_ttl = ttl;
    uint32_t believed = dnsbl_answer_ttl(status, abuf, alen, ttl);
    if (r->status == DNSBL_ZONE_ANSWERED && believed < lookup->clean_ttl)
        lookup->clean_ttl = believed;
    dnsbl_log_problems(lookup->d, q->zone, status, r, &lookup->addr);
    dnsbl_count_answer(lookup->d, q, status, r);
    if (--lookup->pending == 0 && !lookup->starting)
        dnsbl_remember(lookup);
    if (lookup->starting)
        return; /* dnsbl_lookup_start() finishes the bookkeeping */
    if (lookup->released) {
        if (lookup->pending == 0)
            free(lookup);
        return;
    }
    lookup->update(lookup->arg);
}

/* dnsbl_lookup_send - ask every list (no cached verdict here or in the
 * fleet); update calls wait until every query is counted */
static void dnsbl_lookup_send(struct dnsbl_lookup *lookup)
{
    struct dnsbl *d = lookup->d;
    const struct addr *a = &lookup->addr;
    size_t n = d->sites->zone_count;
    lookup->starting = true;
    /* Count every query before sending any, so that one failing at once
     * cannot look like the last; no update calls while starting. */
    int family = dnsbl_family_index(a);
    for (size_t z = 0; z < n; z++) {
        lookup->query[z] = (struct dnsbl_query){lookup, (unsigned)z, ev_now(d->loop)};
        if (dnsbl_zone_suspended(d, (unsigned)z, family))
            lookup->results[z].status = DNSBL_ZONE_SUSPENDED;
        else
            lookup->pending++;
    }
    for (size_t z = 0; z < n; z++) {
        char name[DNSBL_NAME_MAX];
        if (lookup->results[z].status == DNSBL_ZONE_SUSPENDED)
            continue;
        if (addr_dnsbl_name(a, d->sites->zone[z], name, sizeof name) < 0)
            dnsbl_lookup_done(&lookup->query[z], ARES_EBADNAME, NULL, 0);
        else
            resolver_query(d->resolver, name, ns_t_a, dnsbl_lookup_done,
                           &lookup->query[z]);
    }
    lookup->starting = false;
    if (lookup->pending == 0)
        dnsbl_remember(lookup);
}

/* dnsbl_fleet_answer - the fleet's Redis answered (v NULL: no verdict
 * there, or no answer in time): take it, or ask the lists */
static void dnsbl_fleet_answer(void *arg, const struct fleet_verdict *v)
{
    struct dnsbl_lookup *lookup = arg;
    struct dnsbl *d = lookup->d;
    d->fleet_waiting--;
    lookup->pending--;
    if (v != NULL) {
        lookup->cached = true;
        /* a peer's expiry, but never longer than ours */
        double ttl = v->score >= d->threshold ? d->listed_ttl : d->clean_ttl;
        double expires = v->expires < ev_now(d->loop) + ttl ? v->expires : ev_now(d->loop) + ttl;
        lookup->verdict = (struct store_verdict){v->score, v->hits, d->sites_hash};
        if (d->store != NULL)
            store_verdict_put(d->store, &lookup->addr, &lookup->verdict, expires);
    } else if (!lookup->released) {
        dnsbl_lookup_send(lookup);
    }
    if (lookup->released) {
        if (lookup->pending == 0)
            free(lookup);
        return;
    }
    lookup->update(lookup->arg);
}

struct dnsbl_lookup *dnsbl_lookup_start(struct dnsbl *d, const struct addr *a,
                                        dnsbl_update_fn update, void *arg)
{
    size_t n = d->sites->zone_count;
    struct dnsbl_lookup *lookup = calloc(1, sizeof *lookup +
                                         n * (sizeof lookup->query[0] +
                                              sizeof lookup->results[0]));
    if (lookup == NULL)
        return NULL;
    *lookup = (struct dnsbl_lookup){.d = d, .addr = *a, .update = update,
                                    .arg = arg, .starting = true,
                                    .clean_ttl = DNSBL_TTL_NONE};
    lookup->results = (struct dnsbl_zone_result *)&lookup->query[n];
    if (d->store != NULL && store_verdict_get(d->store, a, ev_now(d->loop), d->sites_hash,
                                              &lookup->verdict)) {
        lookup->cached = true;
        lookup->starting = false;
        if (d->metrics != NULL)
            d->metrics->cache_hits++;
        return lookup;
    }
    if (d->store != NULL && d->metrics != NULL)
        d->metrics->cache_misses++;
    lookup->starting = false;
    if (d->fleet != NULL && n > 0 &&
        fleet_verdict_get(d->fleet, a, d->sites_hash, d->fleet_timeout, dnsbl_fleet_answer,
                          lookup)) {
        lookup->pending = 1; /* the fleet's answer; then maybe the lists */
        d->fleet_waiting++;
        return lookup;
    }
    dnsbl_lookup_send(lookup);
    return lookup;
}

void dnsbl_lookup_score(const struct dnsbl_lookup *lookup, struct dnsbl_score *out)
{
    if (lookup->cached) {
        /* the score, not the stored verdict: a reload may have moved
         * the threshold since */
        *out = (struct dnsbl_score){lookup->verdict.score, lookup->verdict.hits, true,
                                    lookup->verdict.score >= lookup->d->threshold};
        return;
    }
    dnsbl_score(lookup->d->sites, lookup->results, lookup->d->threshold, out);
}

bool dnsbl_lookup_cached(const struct dnsbl_lookup *lookup)
{
    return lookup->cached;
}

void dnsbl_lookup_release(struct dnsbl_lookup *lookup)
{
    if (lookup == NULL)
        return;
    lookup->released = true;
    if (lookup->pending == 0)
        free(lookup);
}

void dnsbl_warn_keyed(const struct dnsbl_sites *sites)
{
    for (size_t z = 0; z < sites->zone_count; z++) {
        const char *list = dnsbl_domain_keyed(sites->zone[z]);
        if (list != NULL && strcmp(sites->name[z], sites->zone[z]) == 0)
            log_warning("dnsbl_sites: the domain KEY.%s looks like it carries your key, which "
                        "every refused client would read in its reply: give it a public name, "
                        "as in dnsbl_names = KEY.%s=zen.spamhaus.org (docs/deployment.md, "
                        "\"Using Spamhaus DQS\")", list, list);
    }
}

void dnsbl_test_point(int family, int which, struct addr *out)
{
    memset(out, 0, sizeof *out);
    out->family = (uint8_t)family;
    uint8_t *v4 = out->bytes;
    if (family == AF_INET6) {
        out->bytes[10] = 0xff; /* ::ffff:127.0.0.x, as RFC 5782 says */
        out->bytes[11] = 0xff;
        v4 = out->bytes + 12;
    }
    v4[0] = 127;
    v4[3] = (uint8_t)which;
}

/* dnsbl_counts - does any answer look like a listing (127/8, no refusal)? */
static bool dnsbl_counts(const struct dnsbl_zone_result *r)
{
    for (unsigned i = 0; i < r->count; i++)
        if (r->answer[i][0] == 127 && !dnsbl_answer_is_refusal(r->answer[i]))
            return true;
    return false;
}

const uint8_t *dnsbl_health_refusal(const struct dnsbl_zone_result *point)
{
    if (point->status != DNSBL_ZONE_ANSWERED)
        return NULL;
    for (unsigned i = 0; i < point->count; i++)
        if (dnsbl_answer_is_refusal(point->answer[i]))
            return point->answer[i];
    return NULL;
}

bool dnsbl_health_suspends(enum dnsbl_health health)
{
    return health == DNSBL_HEALTH_LISTS_EVERYTHING ||
           health == DNSBL_HEALTH_MISSES_TEST_POINT || health == DNSBL_HEALTH_REFUSED;
}

enum dnsbl_health dnsbl_health_evaluate(const struct dnsbl_zone_result *listed_point,
                                        const struct dnsbl_zone_result *unlisted_point)
{
    if (!dnsbl_counts(listed_point) && dnsbl_health_refusal(listed_point) != NULL)
        return DNSBL_HEALTH_REFUSED;
    if (unlisted_point->status == DNSBL_ZONE_ANSWERED && dnsbl_counts(unlisted_point))
        return DNSBL_HEALTH_LISTS_EVERYTHING;
    if (listed_point->status == DNSBL_ZONE_ANSWERED && !dnsbl_counts(listed_point))
        return DNSBL_HEALTH_MISSES_TEST_POINT;
    if (listed_point->status == DNSBL_ZONE_ANSWERED &&
        unlisted_point->status == DNSBL_ZONE_ANSWERED)
        return DNSBL_HEALTH_OK;
    return DNSBL_HEALTH_UNKNOWN;
}

const char *dnsbl_health_text(enum dnsbl_health health)
{
    switch (health) {
    case DNSBL_HEALTH_OK:
        return "passes its RFC 5782 test points";
    case DNSBL_HEALTH_LISTS_EVERYTHING:
        return "lists the test point 127.0.0.1 or ::ffff:127.0.0.1 (a dead list "
               "answering for every address)";
    case DNSBL_HEALTH_MISSES_TEST_POINT:
        return "does not list the test point 127.0.0.2 or ::ffff:127.0.0.2";
    case DNSBL_HEALTH_REFUSED:
        return "refuses this resolver (answers its test point 127.0.0.2 or "
               "::ffff:127.0.0.2 with 127.255.255.x)";
    case DNSBL_HEALTH_UNKNOWN:
        break;
    }
    return "health unknown (test queries failed)";
}

void dnsbl_warn_refused(const char *name, const uint8_t answer[4], const char *point)
{
    log_warning("dnsbl %s refuses this resolver: it answered %u.%u.%u.%u for its test point "
                "%s, so every answer it gives here is an error, and its weight counts 0 "
                "until it answers the test point again. "
                "Spamhaus answers so to queries that come through public or shared "
                "resolvers (127.255.255.254) or go over its free limit (127.255.255.255). "
                "Fix: a local recursive resolver such as unbound (resolver = 127.0.0.1), "
                "or Spamhaus DQS with dnsbl_names (docs/deployment.md, \"Using Spamhaus DQS\")",
                name, answer[0], answer[1], answer[2], answer[3], point);
}

/* dnsbl_health_refused - a probe's test point was refused: count it, and
 * say it once until the list stops refusing */
static void dnsbl_health_refused(struct dnsbl *d, unsigned zone, int family,
                                 const uint8_t answer[4])
{
    struct dnsbl_zone_state *z = &d->zone[zone];
    if (d->metrics != NULL && zone < DNSBL_SITES_MAX)
        d->metrics->dnsbl_health_refused[zone]++;
    if (z->refused_said)
        return;
    z->refused_said = true;
    dnsbl_warn_refused(d->sites->name[zone], answer,
                       family == DNSBL_FAMILY_V6 ? "::ffff:127.0.0.2" : "127.0.0.2");
}

/* dnsbl_health_apply - record a probe's outcome; log changes of state (a
 * refusal is said by dnsbl_health_refused()) */
static void dnsbl_health_apply(struct dnsbl *d, unsigned zone, int family,
                               enum dnsbl_health health)
{
    uint8_t *state = &d->zone[zone].health[family];
    const char *fam = family == DNSBL_FAMILY_V6 ? "IPv6" : "IPv4";
    if (health == DNSBL_HEALTH_UNKNOWN || health == *state)
        return;
    bool was = dnsbl_zone_suspended(d, zone, family);
    *state = (uint8_t)health;
    bool now = dnsbl_zone_suspended(d, zone, family);
    if (!dnsbl_zone_refused(d, zone))
        d->zone[zone].refused_said = false; /* a new refusal is said again */
    if (health == DNSBL_HEALTH_REFUSED)
        return;
    if (now)
        log_warning("dnsbl %s suspended for %s clients: it %s; its weight "
                    "counts 0 until it passes again", d->sites->name[zone],
                    fam, dnsbl_health_text(health));
    else if (was)
        log_info("dnsbl %s passes its health check again for %s clients",
                 d->sites->name[zone], fam);
}

/* dnsbl_probe_done - one of a probe's two test queries answered */
static void dnsbl_probe_done(void *arg, int status, const unsigned char *abuf,
                             int alen)
{
    struct dnsbl_probe_query *q = arg;
    struct dnsbl_probe *p = q->probe;
    dnsbl_parse_a(status, abuf, alen, &p->result[q->which], NULL);
    if (--p->pending > 0)
        return;
    if (status != ARES_EDESTRUCTION) {
        enum dnsbl_health health = dnsbl_health_evaluate(&p->result[0], &p->result[1]);
        if (health == DNSBL_HEALTH_REFUSED)
            dnsbl_health_refused(p->d, p->zone, p->family,
                                 dnsbl_health_refusal(&p->result[0]));
        dnsbl_health_apply(p->d, p->zone, p->family, health);
    }
    free(p);
}

/* dnsbl_probe_start - ask one zone for one family's two test points */
static void dnsbl_probe_start(struct dnsbl *d, unsigned zone, int family)
{
    struct dnsbl_probe *p = calloc(1, sizeof *p);
    if (p == NULL)
        return;
    *p = (struct dnsbl_probe){.d = d, .zone = zone, .family = family, .pending = 2};
    for (int which = 0; which < 2; which++) {
        struct addr point;
        char name[DNSBL_NAME_MAX];
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): pending = 2 keeps p until both answer */
        p->query[which] = (struct dnsbl_probe_query){p, which};
        dnsbl_test_point(family == DNSBL_FAMILY_V6 ? AF_INET6 : AF_INET,
                         which == 0 ? 2 : 1, &point);
        if (addr_dnsbl_name(&point, d->sites->zone[zone], name, sizeof name) < 0)
            dnsbl_probe_done(&p->query[which], ARES_EBADNAME, NULL, 0);
        else
            resolver_query(d->resolver, name, ns_t_a, dnsbl_probe_done,
                           &p->query[which]);
    }
}

/* dnsbl_health_cb - time for every list's health check */
static void dnsbl_health_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct dnsbl *d = w->data;
    for (size_t z = 0; z < d->sites->zone_count; z++)
        for (int family = 0; family < DNSBL_FAMILIES; family++)
            dnsbl_probe_start(d, (unsigned)z, family);
}

void dnsbl_health_start(struct dnsbl *d)
{
    if (d->health_interval <= 0 || d->sites->zone_count == 0)
        return;
    ev_timer_set(&d->health_timer, 0., d->health_interval);
    ev_timer_start(d->loop, &d->health_timer);
}

struct dnsbl *dnsbl_new(struct ev_loop *loop, struct resolver *resolver,
                        const struct conf *conf, struct store *store)
{
    struct dnsbl *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->zone = calloc(conf->dnsbl_sites.zone_count + 1, sizeof *d->zone);
    if (d->zone == NULL) {
        free(d);
        return NULL;
    }
    d->loop = loop;
    d->resolver = resolver;
    d->sites = &conf->dnsbl_sites;
    d->threshold = conf->dnsbl_threshold;
    d->sites_hash = dnsbl_sites_hash(&conf->dnsbl_sites);
    d->fleet_timeout = conf->fleet_timeout;
    d->health_interval = conf->dnsbl_health_interval;
    ev_timer_init(&d->health_timer, dnsbl_health_cb, 0., 0.);
    d->health_timer.data = d;
    d->clean_ttl = conf->cache_clean_ttl;
    d->listed_ttl = conf->cache_listed_ttl;
    d->store = store;
    return d;
}

void dnsbl_set_fleet(struct dnsbl *d, struct fleet *fleet)
{
    d->fleet = fleet;
}

bool dnsbl_busy(const struct dnsbl *d)
{
    return d != NULL && d->fleet_waiting > 0;
}

void dnsbl_set_metrics(struct dnsbl *d, struct metrics_slot *metrics)
{
    d->metrics = metrics;
}

void dnsbl_free(struct dnsbl *d)
{
    if (d == NULL)
        return;
    ev_timer_stop(d->loop, &d->health_timer);
    free(d->zone);
    free(d);
}
