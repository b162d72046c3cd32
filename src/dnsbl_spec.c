/*
 * dnsbl_spec - DNSBL site specs, reply filters, weighted scoring and TXT
 * text made safe to print, no I/O.
 *
 * Contract (see dnsbl_spec.h for the types):
 *   dnsbl_sites_parse()        text -> struct dnsbl_sites; on error *out is
 *                              left zeroed, nothing leaked, one line in err.
 *   dnsbl_sites_free()         frees what parse allocated and zeroes the
 *                              struct; safe on a zeroed struct, repeatable.
 *   dnsbl_answer_is_refusal()  127.255.255.0/24.
 *   dnsbl_site_matches()       refusal never; else filter or 127.0.0.0/8.
 *   dnsbl_score()              zone results -> score, hits, settled, listed.
 *   dnsbl_txt_escape()         TXT bytes -> printable ASCII, \xHH for the
 *                              rest, cut at whole characters.
 *
 * Ownership: struct dnsbl_sites owns every site's spec string, the site
 * array, the zone array and every zone name. Nothing here keeps state
 * between calls; all functions are reentrant.
 *
 * Spec grammar, one item of a list separated by commas, spaces or tabs:
 *   item    = domain [ "=" filter ] [ "*" weight ]
 *   domain  = labels of [A-Za-z0-9_-], 1..63 each, 1..253 in all, one
 *             optional trailing dot; stored lower case without the dot
 *   filter  = octet "." octet "." octet "." octet
 *   octet   = number | "[" range *( ";" range ) "]"
 *   range   = number [ ".." number ]          (number 0..255, a <= b)
 *   weight  = [ "+" | "-" ] digits             (-1000..1000, default 1)
 */
#include "dnsbl_spec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNSBL_LABEL_MAX 63
#define DNSBL_WEIGHT_LIMIT 1000
#define DNSBL_QUOTE_MAX 80 /* spec characters quoted in an error line */
#define DNSBL_KEY_LABEL_MIN 20 /* a label this long, letters and digits only: a key */

/* dnsbl_is_separator - does c separate two items of the list? */
static bool dnsbl_is_separator(char c)
{
    return c == ',' || c == ' ' || c == '\t';
}

/* dnsbl_next_item - find the next non-empty item at *cursor, return its
 * length (0 at the end of the text) and advance *cursor past it. */
static size_t dnsbl_next_item(const char **cursor, const char **item)
{
    const char *p = *cursor;

    while (*p != '\0' && dnsbl_is_separator(*p))
        p++;
    *item = p;
    while (*p != '\0' && !dnsbl_is_separator(*p))
        p++;
    *cursor = p;
    return (size_t)(p - *item);
}

/* dnsbl_quote - copy item into buf for an error line: printable characters
 * only (others become '?'), a key-like run of letters and digits as "KEY",
 * cut at DNSBL_QUOTE_MAX with "...". */
static void dnsbl_quote(char *buf, size_t bufsize, const char *item,
                        size_t len)
{
    size_t shown = len > DNSBL_QUOTE_MAX ? DNSBL_QUOTE_MAX : len;
    size_t i = 0, o = 0;

    while (i < shown && o + 4 < bufsize) {
        size_t run = 0;
        while (i + run < len && isalnum((unsigned char)item[i + run]))
            run++;
        if (run >= DNSBL_KEY_LABEL_MIN) { /* a key (DQS): never in an error line */
            memcpy(buf + o, "KEY", 3);
            o += 3;
            i += run;
            continue;
        }
        unsigned char c = (unsigned char)item[i++];
        buf[o++] = (char)((c >= 0x20 && c < 0x7f) ? c : '?');
    }
    if (i < len && o + 4 <= bufsize) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/* dnsbl_error - write "bad WHAT in 'ITEM': REASON" into err. */
static void dnsbl_error(char *err, size_t errsize, const char *what,
                        const char *item, size_t len, const char *reason)
{
    char quoted[DNSBL_QUOTE_MAX + 4];

    if (err == NULL || errsize == 0)
        return;
    dnsbl_quote(quoted, sizeof(quoted), item, len);
    snprintf(err, errsize, "bad %s in '%s': %s", what, quoted, reason);
}

/* dnsbl_check_domain - validate [p, end) as a domain (one trailing dot
 * allowed); returns NULL if good, else the reason. */
static const char *dnsbl_check_domain(const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
    size_t label = 0;

    if (len > 0 && p[len - 1] == '.')
        len--;
    if (len == 0)
        return "empty domain";
    if (len > DNSBL_DOMAIN_MAX)
        return "domain longer than 253 characters";
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '.') {
            if (label == 0)
                return "empty label";
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                   || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            if (++label > DNSBL_LABEL_MAX)
                return "label longer than 63 characters";
        } else {
            return "invalid character in domain";
        }
    }
    return label == 0 ? "empty label" : NULL;
}

/* dnsbl_copy_domain - lower case copy of a checked domain [p, end) without
 * its trailing dot; NULL when out of memory. */
static char *dnsbl_copy_domain(const char *p, const char *end)
{
    size_t len = (size_t)(end - p);
    char *copy;

    if (p[len - 1] == '.')
        len--;
    copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] - 'A' + 'a' : p[i]);
    copy[len] = '\0';
    return copy;
}

/* dnsbl_parse_number - decimal 0..255 at p; returns the end or NULL. */
static const char *dnsbl_parse_number(const char *p, const char *end,
                                      unsigned *value)
{
    const char *start = p;
    unsigned v = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > 255)
            return NULL;
        p++;
    }
    if (p == start)
        return NULL;
    *value = v;
    return p;
}

/* dnsbl_allow - set the bits of values lo..hi in one octet pattern. */
static void dnsbl_allow(uint8_t bits[32], unsigned lo, unsigned hi)
{
    for (unsigned v = lo; v <= hi; v++)
        bits[v / 8] |= (uint8_t)(1u << (v % 8));
}

/* dnsbl_parse_range - "a" or "a..b" at p inside brackets ending at end;
 * returns the end of the range or NULL with *reason set. */
static const char *dnsbl_parse_range(const char *p, const char *end,
                                     uint8_t bits[32], const char **reason)
{
    unsigned lo, hi;

    *reason = "expected a number 0..255 in brackets";
    p = dnsbl_parse_number(p, end, &lo);
    if (p == NULL)
        return NULL;
    hi = lo;
    if (end - p >= 2 && p[0] == '.' && p[1] == '.') {
        p = dnsbl_parse_number(p + 2, end, &hi);
        if (p == NULL)
            return NULL;
        if (lo > hi) {
            *reason = "range start above its end";
            return NULL;
        }
    }
    dnsbl_allow(bits, lo, hi);
    return p;
}

/* dnsbl_parse_octet - one octet pattern at p: a number or [ranges];
 * returns its end or NULL with *reason set. */
static const char *dnsbl_parse_octet(const char *p, const char *end,
                                     uint8_t bits[32], const char **reason)
{
    const char *close;
    unsigned v;

    if (p < end && *p == '[') {
        close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL) {
            *reason = "missing ']'";
            return NULL;
        }
        for (p++;; p++) {
            p = dnsbl_parse_range(p, close, bits, reason);
            if (p == NULL)
                return NULL;
            if (p == close)
                return close + 1;
            if (*p != ';') {
                *reason = "expected ';' or ']' after a range";
                return NULL;
            }
        }
    }
    p = dnsbl_parse_number(p, end, &v);
    if (p == NULL) {
        *reason = "expected a number 0..255 or [...]";
        return NULL;
    }
    dnsbl_allow(bits, v, v);
    return p;
}

/* dnsbl_parse_filter - four dot-separated octet patterns filling [p, end);
 * returns NULL on success, else the reason. */
static const char *dnsbl_parse_filter(const char *p, const char *end,
                                      struct dnsbl_filter *filter)
{
    const char *reason = NULL;

    memset(filter, 0, sizeof(*filter));
    for (int i = 0; i < 4; i++) {
        if (i > 0) {
            if (p == end || *p != '.')
                return "expected 4 dot-separated octet patterns";
            p++;
        }
        p = dnsbl_parse_octet(p, end, filter->octet[i], &reason);
        if (p == NULL)
            return reason;
    }
    if (p != end)
        return "junk after the 4th octet pattern";
    return NULL;
}

/* dnsbl_parse_weight - signed decimal in [p, end) within -1000..1000;
 * returns NULL on success, else the reason. */
static const char *dnsbl_parse_weight(const char *p, const char *end,
                                      int *weight)
{
    bool negative = false;
    int v = 0;

    if (p < end && (*p == '-' || *p == '+'))
        negative = *p++ == '-';
    if (p == end)
        return "not an integer";
    for (const char *q = p; q < end; q++)
        if (*q < '0' || *q > '9')
            return "not an integer";
    for (; p < end; p++) {
        v = v * 10 + (*p - '0');
        if (v > DNSBL_WEIGHT_LIMIT)
            return "out of range -1000..1000";
    }
    *weight = negative ? -v : v;
    return NULL;
}

/* dnsbl_parse_site - split item into domain, filter and weight, fill site
 * (all but spec and zone) and return the domain copy in *domain. */
static int dnsbl_parse_site(const char *item, size_t len,
                            struct dnsbl_site *site, char **domain,
                            char *err, size_t errsize)
{
    const char *end = item + len, *domain_end = item, *star, *reason;

    while (domain_end < end && *domain_end != '=' && *domain_end != '*')
        domain_end++;
    reason = dnsbl_check_domain(item, domain_end);
    if (reason != NULL) {
        dnsbl_error(err, errsize, "domain", item, len, reason);
        return -1;
    }
    star = memchr(domain_end, '*', (size_t)(end - domain_end));
    if (domain_end < end && *domain_end == '=') {
        site->has_filter = true;
        reason = dnsbl_parse_filter(domain_end + 1, star ? star : end,
                                    &site->filter);
        if (reason != NULL) {
            dnsbl_error(err, errsize, "filter", item, len, reason);
            return -1;
        }
    }
    site->weight = 1;
    if (star != NULL) {
        reason = dnsbl_parse_weight(star + 1, end, &site->weight);
        if (reason != NULL) {
            dnsbl_error(err, errsize, "weight", item, len, reason);
            return -1;
        }
    }
    *domain = dnsbl_copy_domain(item, domain_end);
    if (*domain == NULL) {
        dnsbl_error(err, errsize, "site", item, len, "out of memory");
        return -1;
    }
    return 0;
}

/* dnsbl_zone_index - index of domain in sites->zone, adding it (named as
 * itself) if new; takes ownership of domain either way. DNSBL_SITES_MAX
 * when out of memory. */
static unsigned dnsbl_zone_index(struct dnsbl_sites *sites, char *domain)
{
    for (size_t i = 0; i < sites->zone_count; i++) {
        if (strcmp(sites->zone[i], domain) == 0) {
            free(domain);
            return (unsigned)i;
        }
    }
    sites->name[sites->zone_count] = strdup(domain);
    if (sites->name[sites->zone_count] == NULL) {
        free(domain);
        return DNSBL_SITES_MAX; /* out of memory */
    }
    sites->zone[sites->zone_count] = domain;
    return (unsigned)sites->zone_count++;
}

/* dnsbl_add_site - parse one item into the next free site of sites. */
static int dnsbl_add_site(struct dnsbl_sites *sites, const char *item,
                          size_t len, char *err, size_t errsize)
{
    struct dnsbl_site *site = &sites->site[sites->count];
    char *domain = NULL;

    if (dnsbl_parse_site(item, len, site, &domain, err, errsize) < 0)
        return -1;
    site->spec = strndup(item, len);
    if (site->spec == NULL) {
        free(domain);
        dnsbl_error(err, errsize, "site", item, len, "out of memory");
        return -1;
    }
    site->zone = dnsbl_zone_index(sites, domain);
    if (site->zone == DNSBL_SITES_MAX) {
        free(site->spec);
        dnsbl_error(err, errsize, "site", item, len, "out of memory");
        return -1;
    }
    sites->count++;
    return 0;
}

/* dnsbl_count_items - number of items in text; past DNSBL_SITES_MAX, stops
 * and points *extra at the first item too many. */
static size_t dnsbl_count_items(const char *text, const char **extra,
                                size_t *extra_len)
{
    const char *cursor = text, *item;
    size_t n = 0, len;

    while ((len = dnsbl_next_item(&cursor, &item)) > 0) {
        if (n == DNSBL_SITES_MAX) {
            *extra = item;
            *extra_len = len;
            return n + 1;
        }
        n++;
    }
    return n;
}

/* dnsbl_sites_parse - parse the dnsbl_sites list into out (zeroed on
 * failure): built in sites, put in out once complete. */
int dnsbl_sites_parse(const char *text, struct dnsbl_sites *out,
                      char *err, size_t errsize)
{
    const char *cursor = text != NULL ? text : "", *item = NULL;
    struct dnsbl_sites sites = {0};
    size_t n, len = 0;

    memset(out, 0, sizeof(*out));
    if (err != NULL && errsize > 0)
        err[0] = '\0';
    n = dnsbl_count_items(cursor, &item, &len);
    if (n > DNSBL_SITES_MAX) {
        dnsbl_error(err, errsize, "site list", item, len,
                    "more than 64 sites");
        return -1;
    }
    if (n == 0)
        return 0;
    sites.site = calloc(n, sizeof(*sites.site));
    sites.zone = calloc(n, sizeof(*sites.zone));
    sites.name = calloc(n, sizeof(*sites.name));
    if (sites.site == NULL || sites.zone == NULL || sites.name == NULL) {
        dnsbl_error(err, errsize, "site list", cursor, strlen(cursor),
                    "out of memory");
        dnsbl_sites_free(&sites);
        return -1;
    }
    while ((len = dnsbl_next_item(&cursor, &item)) > 0) {
        if (dnsbl_add_site(&sites, item, len, err, errsize) < 0) {
            dnsbl_sites_free(&sites);
            return -1;
        }
    }
    *out = sites;
    return 0;
}

/* dnsbl_sites_free - release everything parse allocated, zero the struct. */
void dnsbl_sites_text(const struct dnsbl_sites *sites, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sites->count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "",
                                 sites->site[i].spec);
}

uint64_t dnsbl_sites_hash(const struct dnsbl_sites *sites)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sites->count; i++)
        for (const unsigned char *p = (const unsigned char *)sites->site[i].spec;; p++) {
            h ^= *p; /* the NUL too: it separates the sites */
            h *= 0x100000001b3ull;
            if (*p == '\0')
                break;
        }
    return h;
}

void dnsbl_sites_free(struct dnsbl_sites *sites)
{
    if (sites == NULL)
        return;
    for (size_t i = 0; i < sites->count; i++)
        free(sites->site[i].spec);
    for (size_t i = 0; i < sites->zone_count; i++) {
        free(sites->zone[i]);
        free(sites->name[i]);
    }
    free(sites->site);
    free(sites->zone);
    free(sites->name);
    memset(sites, 0, sizeof(*sites));
}

/* dnsbl_next_name - the next DOMAIN=NAME pair of a dnsbl_names text at
 * *cursor, both checked, as lower case copies without trailing dots in
 * *domain and *name (the caller frees them); 1, 0 at the end, -1 with err
 * set */
static int dnsbl_next_name(const char **cursor, char **domain, char **name, char *err,
                           size_t errsize)
{
    const char *item;
    size_t len = dnsbl_next_item(cursor, &item);
    if (len == 0)
        return 0;
    const char *end = item + len, *eq = memchr(item, '=', len);
    const char *reason = eq == NULL ? "not DOMAIN=PUBLIC_NAME" : dnsbl_check_domain(item, eq);
    if (reason != NULL) {
        dnsbl_error(err, errsize, "domain", item, len, reason);
        return -1;
    }
    reason = dnsbl_check_domain(eq + 1, end);
    if (reason != NULL) { /* quoted alone: the domain may carry a key */
        dnsbl_error(err, errsize, "public name", eq + 1, (size_t)(end - eq - 1), reason);
        return -1;
    }
    *domain = dnsbl_copy_domain(item, eq);
    *name = dnsbl_copy_domain(eq + 1, end);
    if (*domain != NULL && *name != NULL)
        return 1;
    free(*domain);
    free(*name);
    dnsbl_error(err, errsize, "name", item, len, "out of memory");
    return -1;
}

int dnsbl_names_check(const char *text, char *err, size_t errsize)
{
    char *domain, *name;
    int rc;
    while ((rc = dnsbl_next_name(&text, &domain, &name, err, errsize)) > 0) {
        free(domain);
        free(name);
    }
    return rc;
}

/* dnsbl_site_rename - site's spec with its domain part replaced by name;
 * -1 when out of memory */
static int dnsbl_site_rename(struct dnsbl_site *site, const char *name)
{
    size_t domain_len = strcspn(site->spec, "=*"), name_len = strlen(name);
    size_t rest = strlen(site->spec + domain_len);
    char *spec = malloc(name_len + rest + 1);
    if (spec == NULL)
        return -1;
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): the next memcpy brings the NUL */
    memcpy(spec, name, name_len);
    memcpy(spec + name_len, site->spec + domain_len, rest + 1);
    free(site->spec);
    site->spec = spec;
    return 0;
}

int dnsbl_sites_name(struct dnsbl_sites *sites, const char *names, char *err, size_t errsize)
{
    char *domain, *name;
    int rc;
    while ((rc = dnsbl_next_name(&names, &domain, &name, err, errsize)) > 0) {
        size_t z = 0;
        while (z < sites->zone_count && strcmp(sites->zone[z], domain) != 0)
            z++;
        if (z == sites->zone_count) {
            snprintf(err, errsize, "%s is not a domain of dnsbl_sites", name);
            rc = -1; /* the public name: the domain may carry a key */
        }
        for (size_t i = 0; rc > 0 && i < sites->count; i++)
            if (sites->site[i].zone == z && dnsbl_site_rename(&sites->site[i], name) < 0) {
                snprintf(err, errsize, "out of memory");
                rc = -1;
            }
        if (rc > 0) {
            free(sites->name[z]);
            sites->name[z] = name;
        } else {
            free(name);
        }
        free(domain);
        if (rc < 0)
            return -1;
    }
    return rc;
}

const char *dnsbl_domain_keyed(const char *domain)
{
    const char *after = NULL;
    size_t run = 0;
    bool plain = true;
    for (const char *p = domain;; p++) {
        if (*p == '.' || *p == '\0') {
            if (plain && run >= DNSBL_KEY_LABEL_MIN)
                after = *p == '.' ? p + 1 : p;
            if (*p == '\0')
                return after;
            run = 0;
            plain = true;
        } else {
            run++;
            plain &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9');
        }
    }
}

/* dnsbl_answer_is_refusal - is answer in 127.255.255.0/24? */
bool dnsbl_answer_is_refusal(const uint8_t answer[4])
{
    return answer[0] == 127 && answer[1] == 255 && answer[2] == 255;
}

/* dnsbl_site_matches - does one A answer count as a listing for site? */
bool dnsbl_site_matches(const struct dnsbl_site *site, const uint8_t answer[4])
{
    if (dnsbl_answer_is_refusal(answer))
        return false;
    if (!site->has_filter)
        return answer[0] == 127;
    for (int i = 0; i < 4; i++)
        if (!(site->filter.octet[i][answer[i] / 8] & (1u << (answer[i] % 8))))
            return false;
    return true;
}

/* dnsbl_zone_hits - does any answer kept for an answered zone match site? */
static bool dnsbl_zone_hits(const struct dnsbl_site *site,
                            const struct dnsbl_zone_result *result)
{
    unsigned count = result->count;

    if (count > DNSBL_ANSWERS_MAX)
        count = DNSBL_ANSWERS_MAX;
    for (unsigned i = 0; i < count; i++)
        if (dnsbl_site_matches(site, result->answer[i]))
            return true;
    return false;
}

/* dnsbl_score - sum the weights of the sites hit, and decide whether the
 * zones still pending could move the score across threshold. */
void dnsbl_score(const struct dnsbl_sites *sites,
                 const struct dnsbl_zone_result *results, int threshold,
                 struct dnsbl_score *out)
{
    int may_lose = 0, may_gain = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sites->count; i++) {
        const struct dnsbl_site *site = &sites->site[i];
        const struct dnsbl_zone_result *result = &results[site->zone];

        if (result->status == DNSBL_ZONE_PENDING) {
            if (site->weight < 0)
                may_lose += site->weight;
            else
                may_gain += site->weight;
        } else if (result->status == DNSBL_ZONE_ANSWERED
                   && dnsbl_zone_hits(site, result)) {
            out->score += site->weight;
            out->hits |= UINT64_C(1) << i;
        }
    }
    out->listed = out->score >= threshold;
    out->settled = out->score + may_lose >= threshold
                   || out->score + may_gain < threshold;
}

/* dnsbl_txt_escape - see dnsbl_spec.h: out is printable ASCII whatever
 * text holds */
size_t dnsbl_txt_escape(const uint8_t *text, size_t len, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t used = 0, i;
    if (size == 0)
        return 0;
    for (i = 0; i < len; i++) {
        uint8_t c = text[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '\\' && c != '"';
        if (used + (plain ? 1 : 4) >= size)
            break;
        if (plain) {
            out[used++] = (char)c;
            continue;
        }
        out[used++] = '\\';
        out[used++] = 'x';
        out[used++] = hex[c >> 4];
        out[used++] = hex[c & 0x0f];
    }
    out[used] = '\0';
    return i;
}

/* dnsbl_zone_named_before - did an earlier hit site use the same zone? */
static bool dnsbl_zone_named_before(const struct dnsbl_sites *sites,
                                    uint64_t hits, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if ((hits & (UINT64_C(1) << j)) && sites->site[j].zone == sites->site[i].zone)
            return true;
    return false;
}

void dnsbl_format_hits(const struct dnsbl_sites *sites, uint64_t hits,
                       char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sites->count && used < size; i++) {
        if (!(hits & (UINT64_C(1) << i)))
            continue;
        if (dnsbl_zone_named_before(sites, hits, i))
            continue;
        const char *name = sites->name[sites->site[i].zone];
        used += snprintf(buf + used, size - used, "%s%s", used ? "," : "", name);
    }
    if (used == 0)
        snprintf(buf, size, "-");
}
