/*
 * test_fleetproto - the fleet's messages from Redis (src/fleetproto.c):
 * what is accepted, what is refused, and the fleet_redis URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fleetproto.h"
#include "store.h"

static void test_url(void **state)
{
    struct fleetproto_url u;
    char what[128];
    (void)state;
    assert_int_equal(fleetproto_url_parse("redis://10.0.0.5:6380/2", &u, what, sizeof what), 0);
    assert_string_equal(u.redis.host, "10.0.0.5");
    assert_int_equal(u.redis.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_int_equal(fleetproto_url_parse("redis://bw:p@ss:w@rd@redis.example", &u, what,
                                          sizeof what), 0);
    assert_string_equal(u.user, "bw");
    assert_string_equal(u.password, "p@ss:w@rd"); /* the last @ ends it */
    assert_string_equal(u.redis.host, "redis.example");
    assert_int_equal(u.redis.port, 6379);
    assert_int_equal(fleetproto_url_parse("redis://:secret@[::1]:7000/", &u, what, sizeof what),
                     0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "secret");
    assert_string_equal(u.redis.host, "::1");
    assert_int_equal(u.redis.port, 7000);

    const char *bad[] = {
        "http://host:6379", "redis://", "redis://:6379", "redis://host:0",
        "redis://host:65536", "redis://host:63a9", "redis://host/x", "redis://[::1",
        "redis://:@host", "redis://host:6379/1/2", "redis://ho st", "redis://a,b:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fleetproto_url_parse(bad[i], &u, what, sizeof what) == 0)
            fail_msg("accepted '%s'", bad[i]);
}

static void test_url_sentinel(void **state)
{
    struct fleetproto_url u;
    char what[128];
    (void)state;
    assert_int_equal(fleetproto_url_parse("redis-sentinel://bw:s3cret@10.0.0.1:26380,"
                                          "[2001:db8::2],s3.example:5000/mx-fleet/3",
                                          &u, what, sizeof what), 0);
    assert_string_equal(u.user, "bw");
    assert_string_equal(u.password, "s3cret");
    assert_int_equal(u.sentinels, 3);
    assert_string_equal(u.sentinel[0].host, "10.0.0.1");
    assert_int_equal(u.sentinel[0].port, 26380);
    assert_string_equal(u.sentinel[1].host, "2001:db8::2");
    assert_int_equal(u.sentinel[1].port, 26379); /* Sentinel's own default */
    assert_string_equal(u.sentinel[2].host, "s3.example");
    assert_int_equal(u.sentinel[2].port, 5000);
    assert_string_equal(u.master, "mx-fleet");
    assert_int_equal(u.db, 3);
    assert_int_equal(fleetproto_url_parse("redis-sentinel://127.0.0.1/m", &u, what, sizeof what),
                     0);
    assert_int_equal(u.sentinels, 1);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    /* a plain URL names no sentinel */
    assert_int_equal(fleetproto_url_parse("redis://10.0.0.5", &u, what, sizeof what), 0);
    assert_int_equal(u.sentinels, 0);

    const char *bad[] = {
        "redis-sentinel://", "redis-sentinel://h:26379", "redis-sentinel://h:26379/",
        "redis-sentinel:///m", "redis-sentinel://h,/m", "redis-sentinel://,h/m",
        "redis-sentinel://h:0/m", "redis-sentinel://h/m/x", "redis-sentinel://h/m/1/2",
        "redis-sentinel://h/m m", "redis-sentinel://h/m\xc3\xa9",
        "redis-sentinel://a,b,c,d,e,f,g,h,i/m", /* nine */
        "redis-sentinel://h/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "redis-sentinel://[::1/m", "redis-sentinel://:@h/m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fleetproto_url_parse(bad[i], &u, what, sizeof what) == 0)
            fail_msg("accepted '%s'", bad[i]);
}

/* fleet_sentinel_password: USER:PASSWORD, PASSWORD, :PASS:WORD */
static void test_auth_split(void **state)
{
    char user[8], password[16];
    (void)state;
    fleetproto_auth_split("bw:s3cr:et", user, sizeof user, password, sizeof password);
    assert_string_equal(user, "bw");
    assert_string_equal(password, "s3cr:et");
    fleetproto_auth_split("s3cret", user, sizeof user, password, sizeof password);
    assert_string_equal(user, "");
    assert_string_equal(password, "s3cret");
    fleetproto_auth_split(":pa:ss", user, sizeof user, password, sizeof password);
    assert_string_equal(user, "");
    assert_string_equal(password, "pa:ss");
    fleetproto_auth_split("averylonguser:pw", user, sizeof user, password, sizeof password);
    assert_string_equal(user, "averylo"); /* cut to its buffer, never past it */
    assert_string_equal(password, "pw");
    assert_true(fleetproto_ms(1.0005) == 1001 && fleetproto_ms(-3) == 0);
}

/* two events about one address: the later wins, an unban at the same
 * millisecond as a ban wins, whichever arrives first */
static void test_event_order(void **state)
{
    (void)state;
    assert_true(fleetproto_event_older(1000, false, 1001, false));
    assert_true(fleetproto_event_older(1000, true, 1001, false));
    assert_false(fleetproto_event_older(1001, false, 1000, true));
    assert_true(fleetproto_event_older(1000, false, 1000, true));  /* ban vs unban, same ms */
    assert_false(fleetproto_event_older(1000, true, 1000, false)); /* unban vs ban, same ms */
    assert_false(fleetproto_event_older(1000, false, 1000, false)); /* the same again */
    assert_false(fleetproto_event_older(1000, true, 1000, true));
}

static void test_ban_round_trip(void **state)
{
    struct fleetproto_ban b = {.kind = FLEETPROTO_BAN, .origin = "mx-2.example",
                               .at_ms = 1789999999000ull, .until_ms = 1800000000123ull, .count = 3,
                               .reason = STORE_BAN_PREGREET, .sent_ms = 1790000000456ull};
    struct fleetproto_ban out;
    char text[FLEETPROTO_MESSAGE_MAX + 1];
    (void)state;
    assert_int_equal(cidr_parse("2001:db8::7", &b.net), 0);
    int n = fleetproto_ban_format(&b, text, sizeof text);
    assert_string_equal(text, "ban v2 mx-2.example 2001:db8::7 1789999999000 1800000000123 3 "
                              "pregreet 1790000000456");
    assert_int_equal(fleetproto_ban_parse(text, (size_t)n, &out), 0);
    assert_true(out.at_ms == b.at_ms);
    assert_int_equal(out.kind, FLEETPROTO_BAN);
    assert_string_equal(out.origin, "mx-2.example");
    assert_true(addr_equal(&out.net.net, &b.net.net) && out.net.prefix == 128);
    assert_true(out.until_ms == b.until_ms && out.sent_ms == b.sent_ms);
    assert_int_equal(out.count, 3);
    assert_int_equal(out.reason, STORE_BAN_PREGREET);

    b.kind = FLEETPROTO_UNBAN;
    n = fleetproto_ban_format(&b, text, sizeof text);
    assert_string_equal(text, "unban v2 mx-2.example 2001:db8::7 1789999999000 1790000000456");
    assert_int_equal(fleetproto_ban_parse(text, (size_t)n, &out), 0);
    assert_int_equal(out.kind, FLEETPROTO_UNBAN);
    assert_true(out.at_ms == b.at_ms && out.sent_ms == b.sent_ms);
    /* too small a buffer is refused, not cut */
    assert_int_equal(fleetproto_ban_format(&b, text, 10), -1);

    /* a network: ADDRESS/LEN */
    b.kind = FLEETPROTO_BAN;
    assert_int_equal(cidr_parse("2001:db8:0:7::/64", &b.net), 0);
    n = fleetproto_ban_format(&b, text, sizeof text);
    assert_string_equal(text, "ban v2 mx-2.example 2001:db8:0:7::/64 1789999999000 "
                              "1800000000123 3 pregreet 1790000000456");
    assert_int_equal(fleetproto_ban_parse(text, (size_t)n, &out), 0);
    assert_true(addr_equal(&out.net.net, &b.net.net) && out.net.prefix == 64);

    /* v1, from a host not yet upgraded: decided when sent */
    const char *v1 = "ban v1 mx-1 192.0.2.9 1800000000000 2 dnsbl 1790000000777";
    assert_int_equal(fleetproto_ban_parse(v1, strlen(v1), &out), 0);
    assert_true(out.at_ms == 1790000000777ull && out.sent_ms == 1790000000777ull);
    assert_true(out.until_ms == 1800000000000ull && out.count == 2);
    v1 = "unban v1 mx-1 192.0.2.9 1790000000778";
    assert_int_equal(fleetproto_ban_parse(v1, strlen(v1), &out), 0);
    assert_true(out.at_ms == 1790000000778ull && out.kind == FLEETPROTO_UNBAN);
}

/* every field of a ban message has its own reason to be refused */
static void test_ban_refused(void **state)
{
    const char *bad[] = {
        "", "ban", "ban v1", "garbage",
        "ban v2 a 192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        "ban v1 a/b 192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        "ban v1 " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        " 192.0.2.1 1800000000000 1 dnsbl 1790000000000",   /* origin of 65 */
        "ban v1 a 192.0.2.256 1800000000000 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1/24 1800000000000 1 dnsbl 1790000000000", /* host bits */
        "ban v1 a 10.0.0.0/7 1800000000000 1 dnsbl 1790000000000",   /* wider than /8 */
        "ban v1 a 2001::/15 1800000000000 1 dnsbl 1790000000000",    /* wider than /16 */
        "ban v1 a 192.0.2.1/32 1800000000000 1 dnsbl 1790000000000", /* not as written */
        "ban v1 a 2001:db8:0:0::/64 1800000000000 1 dnsbl 1790000000000",
        "ban v1 a ::ffff:192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.0/024 1800000000000 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 -1800000000000 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 0 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 18e11 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 99999999999999999999999 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 1800000000000 0 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 1800000000000 1000001 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 1800000000000 +1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 1800000000000 1 DNSBL 1790000000000",
        "ban v1 a 192.0.2.1 1800000000000 1 dnsbl",
        "ban v1 a 192.0.2.1 1800000000000 1 dnsbl 1790000000000 extra",
        "ban v1 a  192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        " ban v1 a 192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        "ban v1 a 192.0.2.1 1800000000000 1 dnsbl 1790000000000 ",
        "ban v1 a 192.0.2.1 1800000000000 1 dnsbl 1790000000000\n",
        "ban\tv1 a 192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        "unban v1 a 192.0.2.1",
        "unban v1 a 192.0.2.1 1800000000000 1",
        "ban v1 h\xc3\xa9 192.0.2.1 1800000000000 1 dnsbl 1790000000000",
        "ban v3 a 192.0.2.1 1 1800000000000 1 dnsbl 1790000000000",
        "ban v2 a 192.0.2.1 0 1800000000000 1 dnsbl 1790000000000",  /* AT_MS 0 */
        "ban v2 a 192.0.2.1 x 1800000000000 1 dnsbl 1790000000000",
        "ban v2 a 192.0.2.1 1 1800000000000 1 dnsbl 1790000000000 1",
        "unban v2 a 192.0.2.1 1790000000000",                         /* no AT_MS */
        "unban v2 a 192.0.2.1 -1 1790000000000",
    };
    struct fleetproto_ban out;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fleetproto_ban_parse(bad[i], strlen(bad[i]), &out) == 0)
            fail_msg("accepted '%s'", bad[i]);
    /* a NUL inside, and more than FLEETPROTO_MESSAGE_MAX bytes */
    const char nul[] = "ban v1 a 192.0.2.1\0 1800000000000 1 dnsbl 1790000000000";
    assert_int_equal(fleetproto_ban_parse(nul, sizeof nul - 1, &out), -1);
    char long_text[FLEETPROTO_MESSAGE_MAX + 2];
    memset(long_text, 'a', sizeof long_text);
    assert_int_equal(fleetproto_ban_parse(long_text, sizeof long_text, &out), -1);
    /* the length given counts, not a NUL: the valid prefix of a longer text */
    const char *ok = "unban v1 a 192.0.2.1 1790000000000";
    assert_int_equal(fleetproto_ban_parse(ok, strlen(ok), &out), 0);
    assert_int_equal(fleetproto_ban_parse(ok, strlen(ok) - 3, &out), 0);
    assert_int_equal(out.sent_ms, 1790000000ull);
}

static void test_verdict(void **state)
{
    char text[FLEETPROTO_MESSAGE_MAX];
    int score;
    uint64_t hits, expires;
    uint64_t h = 0xcbf29ce484222325ull;
    (void)state;
    int n = fleetproto_verdict_format(h, -4, 0x5, 1800000000000ull, text, sizeof text);
    assert_true(n > 0);
    assert_int_equal(fleetproto_verdict_parse(text, (size_t)n, h, &score, &hits, &expires), 0);
    assert_int_equal(score, -4);
    assert_int_equal(hits, 5);
    assert_true(expires == 1800000000000ull);
    /* made under other lists: not ours */
    assert_int_equal(fleetproto_verdict_parse(text, (size_t)n, h + 1, &score, &hits, &expires),
                     -1);
    const char *bad[] = {"", "v1", "v2 1 1 1 1", "v1 zz 1 1 1", "v1 1 x 1 1", "v1 1 1 -1 1",
                         "v1 1 1 1 0", "v1 1 99999999 1 1", "v1 1 1 1 1 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fleetproto_verdict_parse(bad[i], strlen(bad[i]), 1, &score, &hits, &expires) == 0)
            fail_msg("accepted '%s'", bad[i]);
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(fleetproto_id_valid("mx1.example.org"));
    assert_true(fleetproto_id_valid("a_b-c"));
    assert_false(fleetproto_id_valid(""));
    assert_false(fleetproto_id_valid("a b"));
    assert_false(fleetproto_id_valid("a:b"));
    assert_false(fleetproto_id_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_url_sentinel),
        cmocka_unit_test(test_event_order),
        cmocka_unit_test(test_auth_split),
        cmocka_unit_test(test_ban_round_trip),
        cmocka_unit_test(test_ban_refused),
        cmocka_unit_test(test_verdict),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
