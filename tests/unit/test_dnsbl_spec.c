/*
 * test_dnsbl_spec - unit tests of src/dnsbl_spec.c: site spec parsing and
 * its errors, reply filters, refusal answers, weighted scoring with
 * pending, answered, failed and suspended zones, and the escaping of TXT
 * text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dnsbl_spec.h"

#define EXAMPLES "zen.spamhaus.org=127.0.0.[2..11]*3, bl.spamcop.net*2\t" \
                 "list.dnswl.org=127.0.[0..255].[1..3]*-5"

/* parse_ok - parse text, failing the test with the error line if it fails. */
static void parse_ok(const char *text, struct dnsbl_sites *sites)
{
    char err[256] = "";
    int rc = dnsbl_sites_parse(text, sites, err, sizeof(err));

    if (rc != 0)
        fail_msg("parse of '%s' failed: %s", text, err);
}

/* answer - site matches a.b.c.d? */
static bool answer(const struct dnsbl_site *site, uint8_t a, uint8_t b,
                   uint8_t c, uint8_t d)
{
    const uint8_t addr[4] = { a, b, c, d };
    return dnsbl_site_matches(site, addr);
}

/* set_answer - zone result with one A answer a.b.c.d. */
static void set_answer(struct dnsbl_zone_result *r, uint8_t a, uint8_t b,
                       uint8_t c, uint8_t d)
{
    memset(r, 0, sizeof(*r));
    r->status = DNSBL_ZONE_ANSWERED;
    r->count = 1;
    r->answer[0][0] = a;
    r->answer[0][1] = b;
    r->answer[0][2] = c;
    r->answer[0][3] = d;
}

static void test_parse_header_examples(void **state)
{
    struct dnsbl_sites s;
    (void)state;

    parse_ok(EXAMPLES, &s);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.zone_count, 3);
    assert_string_equal(s.site[0].spec, "zen.spamhaus.org=127.0.0.[2..11]*3");
    assert_string_equal(s.site[1].spec, "bl.spamcop.net*2");
    assert_string_equal(s.site[2].spec,
                        "list.dnswl.org=127.0.[0..255].[1..3]*-5");
    assert_string_equal(s.zone[0], "zen.spamhaus.org");
    assert_string_equal(s.zone[1], "bl.spamcop.net");
    assert_string_equal(s.zone[2], "list.dnswl.org");
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(s.site[i].zone, i);
    assert_int_equal(s.site[0].weight, 3);
    assert_int_equal(s.site[1].weight, 2);
    assert_int_equal(s.site[2].weight, -5);
    assert_true(s.site[0].has_filter);
    assert_false(s.site[1].has_filter);
    assert_true(s.site[2].has_filter);
    assert_true(answer(&s.site[2], 127, 0, 42, 3));
    assert_false(answer(&s.site[2], 127, 0, 42, 4));
    assert_false(answer(&s.site[2], 127, 1, 42, 2));
    dnsbl_sites_free(&s);
    assert_null(s.site);
    assert_int_equal(s.count, 0);
}

static void test_parse_defaults_and_case(void **state)
{
    struct dnsbl_sites s;
    (void)state;

    parse_ok(",, Bl.SpamCop.NET. ,,", &s);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.zone[0], "bl.spamcop.net");
    assert_string_equal(s.site[0].spec, "Bl.SpamCop.NET.");
    assert_int_equal(s.site[0].weight, 1);
    assert_false(s.site[0].has_filter);
    dnsbl_sites_free(&s);

    parse_ok("a_b-c.example*+7 d.example*-1000 e.example*1000", &s);
    assert_int_equal(s.site[0].weight, 7);
    assert_int_equal(s.site[1].weight, -1000);
    assert_int_equal(s.site[2].weight, 1000);
    dnsbl_sites_free(&s);
}

static void test_parse_empty(void **state)
{
    const char *texts[] = { "", " \t, ,", NULL };
    struct dnsbl_sites s;
    (void)state;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        parse_ok(texts[i], &s);
        assert_int_equal(s.count, 0);
        assert_int_equal(s.zone_count, 0);
        assert_null(s.site);
        assert_null(s.zone);
        dnsbl_sites_free(&s);
    }
}

static void test_parse_limits(void **state)
{
    char text[DNSBL_SITES_MAX * 8 + 16] = "";
    char domain[300], err[256];
    struct dnsbl_sites s;
    (void)state;

    for (int i = 0; i < DNSBL_SITES_MAX; i++)
        snprintf(text + strlen(text), 9, "z%02d.ex ", i);
    parse_ok(text, &s);
    assert_int_equal(s.count, DNSBL_SITES_MAX);
    assert_int_equal(s.zone_count, DNSBL_SITES_MAX);
    dnsbl_sites_free(&s);
    strcat(text, "extra.ex");
    assert_int_equal(dnsbl_sites_parse(text, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'extra.ex'"));
    assert_non_null(strstr(err, "more than 64 sites"));
    assert_null(s.site);

    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters, plus a root dot */
    memset(domain, 'a', sizeof(domain));
    domain[63] = domain[127] = domain[191] = '.';
    domain[253] = '.';
    domain[254] = '\0';
    parse_ok(domain, &s);
    assert_int_equal(strlen(s.zone[0]), 253);
    dnsbl_sites_free(&s);
    domain[253] = 'a';
    assert_int_equal(dnsbl_sites_parse(domain, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 253"));
    assert_non_null(strstr(err, "...'")); /* quoted text is cut */
}

static void test_filter_ranges_and_alternatives(void **state)
{
    struct dnsbl_sites s;
    const struct dnsbl_site *site;
    (void)state;

    parse_ok("x.example=127.[0;1].[1;3;5..7].[0..255]", &s);
    site = &s.site[0];
    for (unsigned v = 0; v < 10; v++) {
        bool want = v == 1 || v == 3 || (v >= 5 && v <= 7);
        assert_int_equal(answer(site, 127, 0, (uint8_t)v, 200), want);
    }
    assert_true(answer(site, 127, 1, 3, 0));
    assert_true(answer(site, 127, 1, 3, 255));
    assert_false(answer(site, 127, 2, 3, 0));
    assert_false(answer(site, 126, 0, 3, 0));
    dnsbl_sites_free(&s);
}

static void test_filter_edges(void **state)
{
    struct dnsbl_sites s;
    (void)state;

    parse_ok("zen.spamhaus.org=127.0.0.[2..11]", &s);
    assert_true(answer(&s.site[0], 127, 0, 0, 2));
    assert_true(answer(&s.site[0], 127, 0, 0, 11));
    assert_false(answer(&s.site[0], 127, 0, 0, 1));
    assert_false(answer(&s.site[0], 127, 0, 0, 12));
    dnsbl_sites_free(&s);

    parse_ok("e.example=0.255.[255].[0..0]", &s);
    assert_true(answer(&s.site[0], 0, 255, 255, 0));
    assert_false(answer(&s.site[0], 0, 255, 255, 1));
    dnsbl_sites_free(&s);
}

static void test_no_filter_default(void **state)
{
    struct dnsbl_sites s;
    (void)state;

    parse_ok("bl.spamcop.net", &s);
    assert_true(answer(&s.site[0], 127, 0, 0, 2));
    assert_true(answer(&s.site[0], 127, 1, 2, 3));
    assert_false(answer(&s.site[0], 127, 255, 255, 254));
    assert_false(answer(&s.site[0], 10, 0, 0, 1));
    dnsbl_sites_free(&s);
}

static void test_refusal(void **state)
{
    const uint8_t refused[4] = { 127, 255, 255, 0 };
    const uint8_t near[4] = { 127, 255, 254, 255 };
    struct dnsbl_sites s;
    (void)state;

    assert_true(dnsbl_answer_is_refusal(refused));
    assert_false(dnsbl_answer_is_refusal(near));
    parse_ok("zen.spamhaus.org=127.255.255.[0..255]", &s);
    for (unsigned v = 0; v < 256; v += 51)
        assert_false(answer(&s.site[0], 127, 255, 255, (uint8_t)v));
    dnsbl_sites_free(&s);
    parse_ok("zen.spamhaus.org=127.255.[254..255].[0..255]", &s);
    assert_true(dnsbl_site_matches(&s.site[0], near));
    assert_false(dnsbl_site_matches(&s.site[0], refused));
    dnsbl_sites_free(&s);
}

static void test_duplicate_domains_share_zone(void **state)
{
    struct dnsbl_sites s;
    struct dnsbl_zone_result r[2];
    struct dnsbl_score sc;
    (void)state;

    parse_ok("zen.example=127.0.0.2*4 ZEN.example.=127.0.0.[3;4]*2 "
             "other.example zen.example", &s);
    assert_int_equal(s.count, 4);
    assert_int_equal(s.zone_count, 2);
    assert_string_equal(s.zone[0], "zen.example");
    assert_string_equal(s.zone[1], "other.example");
    assert_int_equal(s.site[0].zone, 0);
    assert_int_equal(s.site[1].zone, 0);
    assert_int_equal(s.site[2].zone, 1);
    assert_int_equal(s.site[3].zone, 0);

    set_answer(&r[0], 127, 0, 0, 4);
    r[0].count = 2;
    r[0].answer[1][3] = 9;
    memset(&r[1], 0, sizeof(r[1]));
    r[1].status = DNSBL_ZONE_ANSWERED; /* NXDOMAIN */
    dnsbl_score(&s, r, 5, &sc);
    assert_int_equal(sc.score, 3); /* sites 1 and 3, not 0 (wants .2) */
    assert_int_equal(sc.hits, (1u << 1) | (1u << 3));
    assert_true(sc.settled);
    assert_false(sc.listed);
    dnsbl_sites_free(&s);
}

static void test_score_negative_weight(void **state)
{
    struct dnsbl_sites s;
    struct dnsbl_zone_result r[2];
    struct dnsbl_score sc;
    (void)state;

    parse_ok("bl.example*3 list.dnswl.org=127.0.[0..255].[1..3]*-5", &s);
    set_answer(&r[0], 127, 0, 0, 2);
    set_answer(&r[1], 127, 0, 10, 2);
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, -2);
    assert_int_equal(sc.hits, 3);
    assert_true(sc.settled);
    assert_false(sc.listed);

    set_answer(&r[1], 127, 0, 10, 4); /* outside the allow list's filter */
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, 3);
    assert_int_equal(sc.hits, 1);
    assert_true(sc.settled);
    assert_true(sc.listed);
    dnsbl_sites_free(&s);
}

static void test_score_settles_early(void **state)
{
    struct dnsbl_sites s;
    struct dnsbl_zone_result r[3];
    struct dnsbl_score sc;
    (void)state;

    parse_ok(EXAMPLES, &s);
    memset(r, 0, sizeof(r));
    set_answer(&r[0], 127, 0, 0, 2);
    r[2].status = DNSBL_ZONE_ANSWERED; /* allow list: not listed */
    dnsbl_score(&s, r, 3, &sc); /* spamcop pending, +2 only */
    assert_int_equal(sc.score, 3);
    assert_true(sc.settled);
    assert_true(sc.listed);

    dnsbl_score(&s, r, 4, &sc); /* 3 now, 5 reachable */
    assert_false(sc.settled);
    assert_false(sc.listed);

    memset(r, 0, sizeof(r));
    r[1].status = DNSBL_ZONE_ANSWERED;
    r[2].status = DNSBL_ZONE_ANSWERED;
    dnsbl_score(&s, r, 4, &sc); /* only zen pending: at most 3 < 4 */
    assert_int_equal(sc.score, 0);
    assert_true(sc.settled);
    assert_false(sc.listed);
    dnsbl_sites_free(&s);
}

static void test_score_pending_negative_blocks(void **state)
{
    struct dnsbl_sites s;
    struct dnsbl_zone_result r[3];
    struct dnsbl_score sc;
    (void)state;

    parse_ok(EXAMPLES, &s);
    memset(r, 0, sizeof(r));
    set_answer(&r[0], 127, 0, 0, 3);
    set_answer(&r[1], 127, 0, 0, 2);
    dnsbl_score(&s, r, 5, &sc); /* 5 now, the allow list may bring 0 */
    assert_int_equal(sc.score, 5);
    assert_int_equal(sc.hits, 3);
    assert_false(sc.settled);
    assert_true(sc.listed);

    set_answer(&r[2], 127, 0, 0, 1);
    dnsbl_score(&s, r, 5, &sc);
    assert_int_equal(sc.score, 0);
    assert_true(sc.settled);
    assert_false(sc.listed);
    dnsbl_sites_free(&s);
}

static void test_score_failed_zones(void **state)
{
    struct dnsbl_sites s;
    struct dnsbl_zone_result r[3];
    struct dnsbl_score sc;
    (void)state;

    parse_ok(EXAMPLES, &s);
    set_answer(&r[0], 127, 0, 0, 2);
    set_answer(&r[1], 127, 0, 0, 2);
    set_answer(&r[2], 127, 0, 0, 2);
    r[0].status = DNSBL_ZONE_FAILED;
    r[1].status = DNSBL_ZONE_SUSPENDED;
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, -5);
    assert_int_equal(sc.hits, 1u << 2);
    assert_true(sc.settled);
    assert_false(sc.listed);

    r[2].status = DNSBL_ZONE_FAILED;
    dnsbl_score(&s, r, 0, &sc); /* nothing counts: score 0 >= 0 */
    assert_int_equal(sc.score, 0);
    assert_int_equal(sc.hits, 0);
    assert_true(sc.settled);
    assert_true(sc.listed);
    dnsbl_sites_free(&s);
}

static void test_score_refusal_and_count(void **state)
{
    struct dnsbl_sites s;
    struct dnsbl_zone_result r[1];
    struct dnsbl_score sc;
    (void)state;

    parse_ok("zen.spamhaus.org", &s);
    set_answer(&r[0], 127, 255, 255, 254);
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, 0);
    assert_true(sc.settled);
    r[0].answer[1][0] = 127;
    r[0].answer[1][3] = 2;
    dnsbl_score(&s, r, 1, &sc); /* second answer not kept: count is 1 */
    assert_int_equal(sc.score, 0);
    r[0].count = 2;
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, 1);
    assert_true(sc.listed);
    r[0].count = 200; /* more than kept: only the array is read */
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, 1);
    r[0].answer[1][0] = 10; /* none of the 8 kept answers counts */
    dnsbl_score(&s, r, 1, &sc);
    assert_int_equal(sc.score, 0);
    dnsbl_sites_free(&s);
}

struct bad_spec {
    const char *text;
    const char *error; /* expected as a substring of err */
};

static const struct bad_spec bad_specs[] = {
    { "zen.spamhaus.org*x", "bad weight in 'zen.spamhaus.org*x': not an integer" },
    { "zen.spamhaus.org*", "bad weight in 'zen.spamhaus.org*': not an integer" },
    { "z.org*-", "bad weight in 'z.org*-': not an integer" },
    { "z.org*3x", "bad weight in 'z.org*3x': not an integer" },
    { "z.org*1001", "bad weight in 'z.org*1001': out of range" },
    { "z.org*-1001", "bad weight in 'z.org*-1001': out of range" },
    { "z.org*99999999999999999999", "out of range -1000..1000" },
    { "z.org*2*3", "bad weight in 'z.org*2*3': not an integer" },
    { "z.org=127.0.0.2*", "bad weight" },
    { "=127.0.0.2", "bad domain in '=127.0.0.2': empty domain" },
    { "*3", "bad domain in '*3': empty domain" },
    { ".", "bad domain in '.': empty domain" },
    { "a..b", "bad domain in 'a..b': empty label" },
    { ".a.b", "bad domain in '.a.b': empty label" },
    { "a.b..", "bad domain in 'a.b..': empty label" },
    { "a/b.org", "bad domain in 'a/b.org': invalid character" },
    { "ok.org b\xc3\xa9.org", "bad domain in 'b??.org': invalid character" },
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org",
      "label longer than 63" },
    { "z.org=", "bad filter in 'z.org=': expected a number 0..255 or [...]" },
    { "z.org=127.0.0", "bad filter in 'z.org=127.0.0': expected 4 dot-separated" },
    { "z.org=127.0.0.2.5", "bad filter in 'z.org=127.0.0.2.5': junk after" },
    { "z.org=127.0.0.256", "bad filter in 'z.org=127.0.0.256': expected a number" },
    { "z.org=127.0..2", "bad filter" },
    { "z.org=127.0.0.-1", "bad filter" },
    { "z.org=127.0.0.x", "bad filter" },
    { "z.org=127.0.0.[2..11", "bad filter in 'z.org=127.0.0.[2..11': missing ']'" },
    { "z.org=127.0.0.[]", "bad filter in 'z.org=127.0.0.[]': expected a number" },
    { "z.org=127.0.0.[1;]", "bad filter" },
    { "z.org=127.0.0.[;1]", "bad filter" },
    { "z.org=127.0.0.[11..2]", "range start above its end" },
    { "z.org=127.0.0.[2..]", "bad filter" },
    { "z.org=127.0.0.[2...3]", "bad filter" },
    { "z.org=127.0.0.[2..300]", "bad filter" },
    { "z.org=127.0.0.[2:3]", "expected ';' or ']'" },
    { "z.org=127.0.0.[2]x", "junk after" },
    { "z.org=127.0.0.2=5", "junk after" },
    { "good.org=127.0.0.2 bad.org*y", "bad weight in 'bad.org*y'" },
};

static void test_bad_specs(void **state)
{
    (void)state;

    for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
        struct dnsbl_sites s;
        char err[256] = "unchanged";
        int rc = dnsbl_sites_parse(bad_specs[i].text, &s, err, sizeof(err));

        if (rc != -1)
            fail_msg("'%s' parsed, expected '%s'", bad_specs[i].text,
                     bad_specs[i].error);
        if (strstr(err, bad_specs[i].error) == NULL)
            fail_msg("'%s': got '%s', expected '%s'", bad_specs[i].text, err,
                     bad_specs[i].error);
        assert_null(strchr(err, '\n'));
        assert_null(s.site);
        assert_null(s.zone);
        assert_int_equal(s.count, 0);
        assert_int_equal(s.zone_count, 0);
        dnsbl_sites_free(&s); /* safe after a failed parse */
    }
}

static void test_error_buffer(void **state)
{
    struct dnsbl_sites s;
    char err[8];
    (void)state;

    memset(err, 'x', sizeof(err));
    assert_int_equal(dnsbl_sites_parse("z.org*x", &s, err, sizeof(err)), -1);
    assert_string_equal(err, "bad wei");
    assert_int_equal(dnsbl_sites_parse("z.org*x", &s, NULL, 0), -1);
    assert_int_equal(dnsbl_sites_parse("z.org", &s, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    dnsbl_sites_free(&s);
}

static void test_free_zeroed(void **state)
{
    struct dnsbl_sites s;
    (void)state;

    memset(&s, 0, sizeof(s));
    dnsbl_sites_free(&s);
    dnsbl_sites_free(NULL);
    parse_ok("a.org b.org", &s);
    dnsbl_sites_free(&s);
    dnsbl_sites_free(&s);
    assert_null(s.site);
    assert_null(s.zone);
    assert_int_equal(s.zone_count, 0);
}

/* the sites' line and its hash: the same sites, the same tag; any change
 * of a domain, a filter, a weight or the order, another */
static void test_sites_text_and_hash(void **state)
{
    const char *texts[] = {"zen.spamhaus.org=127.0.0.[2..11]*3, bl.spamcop.net*2",
                           "zen.spamhaus.org=127.0.0.[2..11]*3, bl.spamcop.net*1",
                           "bl.spamcop.net*2, zen.spamhaus.org=127.0.0.[2..11]*3",
                           "zen.spamhaus.org*3, bl.spamcop.net*2",
                           "zen.spamhaus.org=127.0.0.[2..11]*3,bl.spamcop.net*2", ""};
    uint64_t h[6];
    char err[256], line[512];
    (void)state;
    for (int i = 0; i < 6; i++) {
        struct dnsbl_sites sites;
        assert_int_equal(dnsbl_sites_parse(texts[i], &sites, err, sizeof err), 0);
        h[i] = dnsbl_sites_hash(&sites);
        if (i == 0) {
            dnsbl_sites_text(&sites, line, sizeof line);
            assert_string_equal(line, "zen.spamhaus.org=127.0.0.[2..11]*3,bl.spamcop.net*2");
        }
        dnsbl_sites_free(&sites);
    }
    assert_true(h[0] != h[1] && h[0] != h[2] && h[0] != h[3] && h[0] != h[5]);
    assert_true(h[0] == h[4]); /* spacing is not a change */
}

/* dnsbl_names: public names in every shown text, the domain kept for the
 * query, the hash and the store's text free of the key */
static void test_names(void **state)
{
    const char *key = "q7w8e9r0t1y2u3i4o5p6a7s8d9";
    char domain[128], err[256], line[512], names[256];
    struct dnsbl_sites sites, plain;
    (void)state;
    snprintf(domain, sizeof domain, "%s.zen.dq.spamhaus.net", key);
    snprintf(line, sizeof line, "%s=127.0.0.[2..11]*3 %s*2 bl.example", domain, domain);
    assert_int_equal(dnsbl_sites_parse(line, &sites, err, sizeof err), 0);
    assert_string_equal(dnsbl_domain_keyed(sites.zone[0]), "zen.dq.spamhaus.net");
    assert_null(dnsbl_domain_keyed(sites.zone[1]));
    assert_string_equal(sites.name[0], domain); /* no names yet: the domain */
    snprintf(names, sizeof names, "%s.=Zen.Spamhaus.org", domain);
    assert_int_equal(dnsbl_sites_name(&sites, names, err, sizeof err), 0);
    assert_string_equal(sites.zone[0], domain);
    assert_string_equal(sites.name[0], "zen.spamhaus.org");
    assert_string_equal(sites.name[1], "bl.example");
    assert_string_equal(sites.site[0].spec, "zen.spamhaus.org=127.0.0.[2..11]*3");
    assert_string_equal(sites.site[1].spec, "zen.spamhaus.org*2");
    dnsbl_sites_text(&sites, line, sizeof line);
    assert_null(strstr(line, key));
    /* the hash is the public text's: the same as the lists named so */
    assert_int_equal(dnsbl_sites_parse("zen.spamhaus.org=127.0.0.[2..11]*3 zen.spamhaus.org*2 "
                                       "bl.example", &plain, err, sizeof err), 0);
    assert_true(dnsbl_sites_hash(&sites) == dnsbl_sites_hash(&plain));
    /* naming again (a second conf_finish) changes nothing */
    assert_int_equal(dnsbl_sites_name(&sites, names, err, sizeof err), 0);
    assert_string_equal(sites.site[1].spec, "zen.spamhaus.org*2");
    /* a pair for no zone of the sites: the error names the public name only */
    assert_int_equal(dnsbl_sites_name(&sites, "other.example=o.example", err, sizeof err), -1);
    assert_string_equal(err, "o.example is not a domain of dnsbl_sites");
    dnsbl_sites_free(&sites);
    dnsbl_sites_free(&plain);
    /* the check: pairs, both domain-shaped; the key never quoted for a bad name */
    assert_int_equal(dnsbl_names_check(" a.example=b.example,c.example=d.example ", err,
                                       sizeof err), 0);
    assert_int_equal(dnsbl_names_check("", err, sizeof err), 0);
    snprintf(names, sizeof names, "%s=<b>", domain);
    assert_int_equal(dnsbl_names_check(names, err, sizeof err), -1);
    assert_string_equal(err, "bad public name in '<b>': invalid character in domain");
    assert_int_equal(dnsbl_names_check("=b.example", err, sizeof err), -1);
    /* an error line never quotes a key */
    assert_int_equal(dnsbl_names_check(domain, err, sizeof err), -1);
    assert_string_equal(err, "bad domain in 'KEY.zen.dq.spamhaus.net': not DOMAIN=PUBLIC_NAME");
    snprintf(line, sizeof line, "%s=127.0.0.[2..300]*3", domain);
    assert_int_equal(dnsbl_sites_parse(line, &sites, err, sizeof err), -1);
    assert_null(strstr(err, key));
    assert_non_null(strstr(err, "'KEY.zen.dq.spamhaus.net=127.0.0.[2..300]*3'"));
    /* what looks like a key: 20 or more letters and digits in one label */
    assert_null(dnsbl_domain_keyed("zen.spamhaus.org"));
    assert_null(dnsbl_domain_keyed("a0123456789012345678-x.example"));
    assert_null(dnsbl_domain_keyed("0123456789012345678.example"));
    assert_string_equal(dnsbl_domain_keyed("01234567890123456789.example"), "example");
    assert_string_equal(dnsbl_domain_keyed("x.01234567890123456789"), "");
}

/* escape_is - text (len bytes) escaped into a buffer of size bytes gives
 * want and takes `took` bytes of text */
static void escape_is(const char *text, size_t len, size_t size, const char *want,
                      size_t took)
{
    char out[64];
    memset(out, '#', sizeof out);
    assert_true(size <= sizeof out);
    assert_int_equal(dnsbl_txt_escape((const uint8_t *)text, len, out, size), took);
    assert_string_equal(out, want);
}

/* TXT text: printable ASCII kept, the rest as \xHH, never cut in half */
static void test_txt_escape(void **state)
{
    (void)state;
    escape_is("Listed, see http://example.invalid/1.2.3.4", 42, 64,
              "Listed, see http://example.invalid/1.2.3.4", 42);
    escape_is("", 0, 8, "", 0);
    escape_is("a\nb\r\tc", 6, 64, "a\\x0ab\\x0d\\x09c", 6);
    escape_is("\x1b]0;owned\x07\x1b[2J", 14, 64,
              "\\x1b]0;owned\\x07\\x1b[2J", 14);
    escape_is("back\\slash \"quote\"", 18, 64, "back\\x5cslash \\x22quote\\x22", 18);
    escape_is("nul\0in\x7f\x80\xff", 9, 64, "nul\\x00in\\x7f\\x80\\xff", 9);
    /* bounded: size - 1 characters at most, an escape whole or not at all */
    escape_is("abcdefghij", 10, 8, "abcdefg", 7);
    escape_is("ab\ncd", 5, 6, "ab", 2);
    escape_is("ab\ncd", 5, 7, "ab\\x0a", 3);
    escape_is("abc", 3, 1, "", 0);
    char untouched = '#';
    assert_int_equal(dnsbl_txt_escape((const uint8_t *)"abc", 3, &untouched, 0), 0);
    assert_int_equal(untouched, '#');
}

/* every byte: out is printable ASCII, and undoing the escapes gives the
 * text back */
static void test_txt_escape_every_byte(void **state)
{
    uint8_t text[256], back[256];
    char out[4 * 256 + 1];
    size_t n = 0;
    (void)state;
    for (int i = 0; i < 256; i++)
        text[i] = (uint8_t)i;
    assert_int_equal(dnsbl_txt_escape(text, sizeof text, out, sizeof out), sizeof text);
    for (const char *p = out; *p != '\0'; p++) {
        assert_true(*p >= 0x20 && *p < 0x7f);
        assert_true(n < sizeof back);
        if (*p != '\\') {
            back[n++] = (uint8_t)*p;
            continue;
        }
        unsigned v;
        assert_int_equal(p[1], 'x');
        assert_int_equal(sscanf(p + 2, "%2x", &v), 1);
        back[n++] = (uint8_t)v;
        p += 3;
    }
    assert_int_equal(n, sizeof text);
    assert_memory_equal(back, text, sizeof text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_header_examples),
        cmocka_unit_test(test_parse_defaults_and_case),
        cmocka_unit_test(test_parse_empty),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_filter_ranges_and_alternatives),
        cmocka_unit_test(test_filter_edges),
        cmocka_unit_test(test_no_filter_default),
        cmocka_unit_test(test_refusal),
        cmocka_unit_test(test_duplicate_domains_share_zone),
        cmocka_unit_test(test_score_negative_weight),
        cmocka_unit_test(test_score_settles_early),
        cmocka_unit_test(test_score_pending_negative_blocks),
        cmocka_unit_test(test_score_failed_zones),
        cmocka_unit_test(test_score_refusal_and_count),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_free_zeroed),
        cmocka_unit_test(test_sites_text_and_hash),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_txt_escape),
        cmocka_unit_test(test_txt_escape_every_byte),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
