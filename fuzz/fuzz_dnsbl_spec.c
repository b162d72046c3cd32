/*
 * fuzz_dnsbl_spec - libFuzzer target for src/dnsbl_spec.c.
 *
 * Input: spec text up to the first NUL byte, then the bytes that drive
 * scoring: one threshold byte (signed), then per zone a status byte, a
 * count byte and DNSBL_ANSWERS_MAX answers of 4 bytes (missing bytes read
 * as 0). The text goes to dnsbl_sites_parse(); on failure the result must
 * be empty and the error one non-empty line; on success the invariants of
 * struct dnsbl_sites are checked, then dnsbl_score() is checked against an
 * independent sum and the lowest and highest reachable scores, and dnsbl_sites_free() must leave a zeroed struct.
 * The spec text is also given as dnsbl_names (fuzz_check_names).
 * The whole input is also TXT text for dnsbl_txt_escape(), into a buffer
 * whose size the first byte gives: the result is printable ASCII within
 * it, undoes to the text's first bytes, and stops only where the next
 * character would not fit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsbl_spec.h"

struct fuzz_bytes {
    const uint8_t *data;
    size_t size;
};

/* fuzz_byte - next input byte, 0 once the input is used up. */
static uint8_t fuzz_byte(struct fuzz_bytes *in)
{
    uint8_t b = 0;

    if (in->size > 0) {
        b = in->data[0];
        in->data++;
        in->size--;
    }
    return b;
}

/* fuzz_check_failure - a failed parse leaves nothing and one error line. */
static void fuzz_check_failure(const struct dnsbl_sites *s, const char *err)
{
    if (s->site != NULL || s->zone != NULL || s->count != 0
        || s->zone_count != 0)
        abort();
    if (err[0] == '\0' || strchr(err, '\n') != NULL)
        abort();
}

/* fuzz_check_zone - a zone name is lower case, valid and not repeated. */
static void fuzz_check_zone(const struct dnsbl_sites *s, size_t z)
{
    const char *name = s->zone[z];
    size_t len = strlen(name);

    if (len == 0 || len > DNSBL_DOMAIN_MAX || name[0] == '.'
        || name[len - 1] == '.')
        abort();
    for (size_t i = 0; i < len; i++)
        if (name[i] >= 'A' && name[i] <= 'Z')
            abort();
    for (size_t j = 0; j < z; j++)
        if (strcmp(s->zone[j], name) == 0)
            abort();
}

/* fuzz_check_sites - invariants of a successful parse. */
static void fuzz_check_sites(const struct dnsbl_sites *s)
{
    bool used[DNSBL_SITES_MAX] = { false };

    if (s->count > DNSBL_SITES_MAX || s->zone_count > s->count)
        abort();
    for (size_t i = 0; i < s->count; i++) {
        const struct dnsbl_site *site = &s->site[i];
        if (site->zone >= s->zone_count || site->spec == NULL)
            abort();
        if (site->weight < -1000 || site->weight > 1000)
            abort();
        used[site->zone] = true;
    }
    for (size_t z = 0; z < s->zone_count; z++) {
        if (!used[z])
            abort();
        fuzz_check_zone(s, z);
    }
}

/* fuzz_fill_results - zone results taken from the rest of the input. */
static void fuzz_fill_results(struct fuzz_bytes *in,
                              struct dnsbl_zone_result *results, size_t n)
{
    for (size_t z = 0; z < n; z++) {
        struct dnsbl_zone_result *r = &results[z];
        r->status = fuzz_byte(in) % 4;
        r->count = fuzz_byte(in) % (DNSBL_ANSWERS_MAX + 1);
        for (unsigned a = 0; a < DNSBL_ANSWERS_MAX; a++)
            for (unsigned o = 0; o < 4; o++)
                r->answer[a][o] = fuzz_byte(in);
    }
}

/* fuzz_site_hit - independent check: does any kept answer count? */
static bool fuzz_site_hit(const struct dnsbl_site *site,
                          const struct dnsbl_zone_result *r)
{
    if (r->status != DNSBL_ZONE_ANSWERED)
        return false;
    for (unsigned a = 0; a < r->count; a++) {
        bool match = dnsbl_site_matches(site, r->answer[a]);
        if (match && dnsbl_answer_is_refusal(r->answer[a]))
            abort();
        if (match)
            return true;
    }
    return false;
}

/* fuzz_check_score - score, hits, listed and settled against the input. */
static void fuzz_check_score(const struct dnsbl_sites *s,
                             struct fuzz_bytes *in)
{
    struct dnsbl_zone_result results[DNSBL_SITES_MAX];
    struct dnsbl_score sc;
    int threshold = (int8_t)fuzz_byte(in), sum = 0, lose = 0, gain = 0;
    uint64_t hits = 0;
    bool pending = false;

    memset(results, 0, sizeof(results));
    fuzz_fill_results(in, results, s->zone_count);
    dnsbl_score(s, results, threshold, &sc);
    for (size_t i = 0; i < s->count; i++) {
        const struct dnsbl_zone_result *r = &results[s->site[i].zone];
        if (fuzz_site_hit(&s->site[i], r)) {
            sum += s->site[i].weight;
            hits |= UINT64_C(1) << i;
        }
        if (r->status == DNSBL_ZONE_PENDING) {
            pending = true;
            *(s->site[i].weight < 0 ? &lose : &gain) += s->site[i].weight;
        }
    }
    if (sc.score != sum || sc.hits != hits)
        abort();
    if (sc.listed != (sc.score >= threshold))
        abort();
    if (!pending && !sc.settled)
        abort();
    if (sc.settled != (sum + lose >= threshold || sum + gain < threshold))
        abort();
}

/* fuzz_unescape - one character of escaped text at *p back to its byte */
static uint8_t fuzz_unescape(const char **p)
{
    static const char hex[] = "0123456789abcdef";
    const char *s = *p;
    if (*s < 0x20 || *s > 0x7e || *s == '"')
        abort();
    if (*s != '\\') {
        *p = s + 1;
        return (uint8_t)*s;
    }
    const char *hi = s[2] ? strchr(hex, s[2]) : NULL;
    const char *lo = hi && s[3] ? strchr(hex, s[3]) : NULL;
    if (s[1] != 'x' || lo == NULL)
        abort();
    *p = s + 4;
    return (uint8_t)((hi - hex) << 4 | (lo - hex));
}

/* fuzz_check_escape - the input as TXT text, escaped and checked */
static void fuzz_check_escape(const uint8_t *data, size_t size)
{
    char out[257];
    size_t cap = size > 0 ? data[0] % sizeof out : 0;
    size_t took = dnsbl_txt_escape(data, size, out, cap);
    if (took > size || (cap == 0 && took != 0))
        abort();
    if (cap == 0)
        return;
    size_t len = strnlen(out, cap);
    if (len >= cap)
        abort();
    const char *p = out;
    for (size_t i = 0; i < took; i++)
        if (fuzz_unescape(&p) != data[i])
            abort();
    if (p != out + len)
        abort();
    bool plain = took < size && data[took] >= 0x20 && data[took] < 0x7f &&
                 data[took] != '\\' && data[took] != '"';
    if (took < size && len + (plain ? 1 : 4) < cap)
        abort();
}

/* fuzz_check_names - the text as dnsbl_names too: checked and applied
 * agree, and once named every site's spec starts (in any case) with its
 * public name, which holds domain characters only. */
static void fuzz_check_names(struct dnsbl_sites *sites, const char *names)
{
    char err[256] = "";
    int checked = dnsbl_names_check(names, err, sizeof err);
    int named = dnsbl_sites_name(sites, names, err, sizeof err);
    if (checked < 0 && named == 0)
        abort();
    if ((checked < 0 || named < 0) && err[0] == '\0')
        abort();
    for (size_t i = 0; i < sites->count; i++) {
        const char *name = sites->name[sites->site[i].zone];
        size_t n = strlen(name);
        if (n == 0 || strncasecmp(sites->site[i].spec, name, n) != 0 ||
            name[strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.")] != '\0')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul != NULL ? (size_t)(nul - data) : size;
    struct fuzz_bytes rest = { data + text_len, size - text_len };
    struct dnsbl_sites sites;
    char err[256];
    char *text = malloc(text_len + 1);

    fuzz_check_escape(data, size);
    if (text == NULL)
        return 0;
    memcpy(text, data, text_len);
    text[text_len] = '\0';
    fuzz_byte(&rest); /* the NUL itself */
    if (dnsbl_sites_parse(text, &sites, err, sizeof(err)) != 0) {
        fuzz_check_failure(&sites, err);
    } else {
        fuzz_check_sites(&sites);
        fuzz_check_score(&sites, &rest);
        fuzz_check_names(&sites, text);
    }
    dnsbl_sites_free(&sites);
    if (sites.site != NULL || sites.zone != NULL || sites.count != 0)
        abort();
    free(text);
    return 0;
}
