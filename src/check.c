/*
 * check - the `check` command. See check.h.
 *
 * Every query (A and TXT per address and list, and each list's two RFC 5782
 * test points) is sent at once; the loop runs until the last one answered.
 *
 * A TXT answer is the list's text (or a spoofer's): it is printed escaped
 * (dnsbl_txt_escape), so that no control byte of it reaches the terminal,
 * and cut at CHECK_TXT_MAX.
 *
 * A list that answers its test point with 127.255.255.x refuses this
 * resolver: that is said once per list, with the fix (dnsbl_warn_refused,
 * on stderr as serve says it), before the addresses.
 */
#include <ares.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dnsbl.h"
#include "resolver.h"

#define CHECK_TXT_MAX 512   /* bytes of TXT text shown, quotes and NUL included */
#define CHECK_NAME_MAX (DNSBL_DOMAIN_MAX + 80)

_Static_assert(CHECK_TXT_MAX > sizeof "..." + 8, "no room for a TXT string");

/* What one list said about one address (or about one test point). */
struct check_answer {
    int a_status, txt_status;
    struct dnsbl_zone_result a;
    char txt[CHECK_TXT_MAX];
};

struct check_run {
    struct ev_loop *loop;
    unsigned pending;
};

struct check_query {
    struct check_run *run;
    struct check_answer *answer;
    bool txt;
};

/* check_txt_join - the TXT strings, each escaped and quoted, joined by
 * spaces into out; "..." after them when not all of it fitted */
static void check_txt_join(const struct ares_txt_ext *t, char *out, size_t size)
{
    size_t limit = size - sizeof "...";  /* room kept for "..." and the NUL */
    size_t used = 0;
    bool cut = false;
    for (; t != NULL && !cut; t = t->next) {
        const char *open = used > 0 ? " \"" : "\"";
        size_t open_len = strlen(open);
        if (used + open_len + 2 > limit) { /* a character and the '"' */
            cut = true;
            break;
        }
        /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): dnsbl_txt_escape() ends it */
        memcpy(out + used, open, open_len);
        used += open_len;
        size_t took = dnsbl_txt_escape(t->txt, t->length, out + used, limit - used - 1);
        used += strlen(out + used);
        out[used++] = '"';
        cut = took < t->length;
    }
    memcpy(out + used, cut ? "..." : "", cut ? sizeof "..." : 1);
}

/* check_txt - keep what the TXT answer says, safe to print */
static void check_txt(struct check_answer *a, const unsigned char *abuf, int alen)
{
    struct ares_txt_ext *txt = NULL;
    if (ares_parse_txt_reply_ext(abuf, alen, &txt) != ARES_SUCCESS)
        return;
    check_txt_join(txt, a->txt, sizeof a->txt);
    ares_free_data(txt);
}

/* check_done - one query answered */
static void check_done(void *arg, int status, const unsigned char *abuf, int alen)
{
    struct check_query *q = arg;
    if (q->txt) {
        q->answer->txt_status = status;
        if (status == ARES_SUCCESS)
            check_txt(q->answer, abuf, alen);
    } else {
        q->answer->a_status = status;
        dnsbl_parse_a(status, abuf, alen, &q->answer->a, NULL);
    }
    if (--q->run->pending == 0)
        ev_break(q->run->loop, EVBREAK_ONE);
    free(q);
}

/* check_ask - send the A (and, for a client address, TXT) query */
static void check_ask(struct check_run *run, struct resolver *r,
                      const struct addr *a, const char *zone,
                      struct check_answer *answer, bool with_txt)
{
    char name[CHECK_NAME_MAX];
    answer->a.status = DNSBL_ZONE_FAILED;
    answer->a_status = answer->txt_status = ARES_EBADNAME;
    if (addr_dnsbl_name(a, zone, name, sizeof name) < 0)
        return;
    for (int i = 0; i < (with_txt ? 2 : 1); i++) {
        struct check_query *q = malloc(sizeof *q);
        if (q == NULL)
            continue;
        *q = (struct check_query){run, answer, i == 1};
        run->pending++;
        resolver_query(r, name, i == 1 ? ns_t_txt : ns_t_a, check_done, q);
    }
}

/* check_status_text - NXDOMAIN and NODATA are answers, not errors */
static const char *check_status_text(int status)
{
    if (status == ARES_ENOTFOUND)
        return "not listed (NXDOMAIN)";
    if (status == ARES_ENODATA)
        return "not listed (no A record)";
    return ares_strerror(status);
}

/* check_print_site - one line per configured site */
static void check_print_site(const struct dnsbl_site *site, const struct check_answer *a,
                             enum dnsbl_health health)
{
    bool suspended = dnsbl_health_suspends(health);
    bool matched = false;
    printf("  %s:", site->spec);
    if (a->a_status != ARES_SUCCESS)
        printf(" %s;", check_status_text(a->a_status));
    for (unsigned i = 0; i < a->a.count; i++) {
        const uint8_t *v = a->a.answer[i];
        bool m = dnsbl_site_matches(site, v);
        matched |= m;
        printf(" A %u.%u.%u.%u%s;", v[0], v[1], v[2], v[3],
               dnsbl_answer_is_refusal(v) ? " (the list refuses this resolver: an error)" : "");
    }
    if (a->txt[0] != '\0')
        printf(" TXT %s;", a->txt);
    printf(" filter %s;", matched ? "matched" : "not matched");
    if (suspended)
        printf(" SUSPENDED: %s;", dnsbl_health_text(health));
    printf(" weight %d\n", matched && !suspended ? site->weight : 0);
}

/* check_print - one address: its sites, score and verdict; returns the
 * address's exit status */
static int check_print(const struct conf *conf, const char *text,
                       struct check_answer *answers, const enum dnsbl_health *health)
{
    const struct dnsbl_sites *sites = &conf->dnsbl_sites;
    struct dnsbl_zone_result results[DNSBL_SITES_MAX];
    size_t failed = 0;
    printf("%s\n", text);
    for (size_t z = 0; z < sites->zone_count; z++) {
        results[z] = answers[z].a;
        if (dnsbl_health_suspends(health[z]))
            results[z].status = DNSBL_ZONE_SUSPENDED;
        if (answers[z].a.status == DNSBL_ZONE_FAILED)
            failed++;
    }
    for (size_t i = 0; i < sites->count; i++)
        check_print_site(&sites->site[i], &answers[sites->site[i].zone],
                         health[sites->site[i].zone]);
    struct dnsbl_score score;
    dnsbl_score(sites, results, conf->dnsbl_threshold, &score);
    bool all_failed = sites->zone_count > 0 && failed == sites->zone_count;
    printf("  score %d, threshold %d: %s%s\n", score.score, conf->dnsbl_threshold,
           score.listed ? "listed" : "clean",
           all_failed ? " (every list failed to answer)" : "");
    return all_failed ? 3 : score.listed ? 1 : 0;
}

/* check_warn_refused - once per list that refuses this resolver for some
 * family (points: the list's four test-point answers) */
static void check_warn_refused(const struct conf *conf, size_t zone,
                               const struct check_answer *points,
                               const enum dnsbl_health *health)
{
    for (size_t f = 0; f < 2; f++) {
        if (health[f] != DNSBL_HEALTH_REFUSED)
            continue;
        dnsbl_warn_refused(conf->dnsbl_sites.name[zone],
                           dnsbl_health_refusal(&points[f * 2].a),
                           f == 1 ? "::ffff:127.0.0.2" : "127.0.0.2");
        return;
    }
}

int check_run(const struct conf *conf, char *const addresses[], int count)
{
    size_t zones = conf->dnsbl_sites.zone_count;
    struct addr *addr = calloc((size_t)count + 1, sizeof *addr);
    struct check_answer *answers = calloc((size_t)count * zones + 1, sizeof *answers);
    struct check_answer *points = calloc(zones * 4 + 1, sizeof *points);
    enum dnsbl_health *health = calloc(zones * 2 + 1, sizeof *health);
    struct ev_loop *loop = ev_default_loop(0);
    int status = 0;
    char err[256];
    struct resolver *r = NULL;
    if (addr == NULL || answers == NULL || points == NULL || health == NULL) {
        fprintf(stderr, "breakwater: out of memory\n");
        status = 2;
        goto out;
    }
    for (int i = 0; i < count; i++) {
        if (addr_parse(addresses[i], &addr[i]) < 0) {
            fprintf(stderr, "breakwater: check: not an IPv4 or IPv6 address: '%s'\n",
                    addresses[i]);
            status = 2;
            goto out;
        }
    }
    dnsbl_warn_keyed(&conf->dnsbl_sites);
    r = resolver_new(loop, conf, conf->dnsbl_timeout, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "breakwater: %s\n", err);
        status = 2;
        goto out;
    }
    struct check_run run = {loop, 0};
    for (size_t z = 0; z < zones; z++) {
        const char *zone = conf->dnsbl_sites.zone[z];
        for (int i = 0; i < count; i++)
            check_ask(&run, r, &addr[i], zone, &answers[(size_t)i * zones + z], true);
        for (int k = 0; k < 4; k++) { /* IPv4 2 and 1, IPv6 2 and 1 */
            struct addr point;
            dnsbl_test_point(k < 2 ? AF_INET : AF_INET6, k % 2 == 0 ? 2 : 1, &point);
            check_ask(&run, r, &point, zone, &points[z * 4 + k], false);
        }
    }
    if (run.pending > 0)
        ev_run(loop, 0);
    for (size_t z = 0; z < zones; z++) {
        for (size_t f = 0; f < 2; f++)
            health[z * 2 + f] = dnsbl_health_evaluate(&points[z * 4 + f * 2].a,
                                                      &points[z * 4 + f * 2 + 1].a);
        check_warn_refused(conf, z, &points[z * 4], &health[z * 2]);
    }
    for (int i = 0; i < count; i++) {
        enum dnsbl_health h[DNSBL_SITES_MAX] = {DNSBL_HEALTH_UNKNOWN}; /* h[0..zones) set below */
        for (size_t z = 0; z < zones; z++)
            h[z] = health[z * 2 + (addr[i].family == AF_INET6)];
        int s = check_print(conf, addresses[i], &answers[(size_t)i * zones], h);
        status = (s == 3 || status == 3) ? 3 : (s > status ? s : status);
    }
out:
    resolver_free(r);
    free(addr);
    free(answers);
    free(points);
    free(health);
    return status;
}
