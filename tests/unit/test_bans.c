/*
 * test_bans - unit tests for the pure parts of banning: src/banproto.c (the
 * helper's message checks, which must refuse anything malformed) and
 * src/banpolicy.c (ban lengths, refreshes and escalation); which requests
 * serve's and watch's helpers carry out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "banpolicy.h"
#include "banproto.h"

#define MAX_SECONDS 86400

static struct addr test_addr(const char *text)
{
    struct addr a;
    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

/* test_parse - parse r as the helper does; returns its result */
static int test_parse(const struct banproto_request *r, struct fw_ban *ban, const char **why)
{
    uint32_t seq = 0;
    bool kill;
    struct addr addr;
    return banproto_request_parse(r, sizeof *r, MAX_SECONDS, ban, &addr, &seq, &kill, why);
}

/* test_request_round_trip - the address, its network of the prefix sent,
 * the length, the sequence number and kill come back as made */
static void test_request_round_trip(void **state)
{
    static const struct {
        const char *addr;
        unsigned prefix;
        const char *net;
    } cases[] = {{"192.0.2.7", 32, "192.0.2.7"}, {"2001:db8::1", 64, "2001:db8::/64"},
                 {"::ffff:127.66.0.1", 24, "127.66.0.0/24"},
                 {"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"},
                 {"2001:db8:ffff::1", 16, "2001::/16"}, {"10.9.8.7", 8, "10.0.0.0/8"}};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct addr a = test_addr(cases[i].addr), sent;
        struct banproto_request r;
        struct fw_ban ban;
        uint32_t seq = 0;
        bool kill = true;
        const char *why = NULL;
        char text[CIDR_TEXT_MAX];
        banproto_request_make(&r, &a, cases[i].prefix, 600, 41 + (uint32_t)i, i == 1);
        assert_int_equal(banproto_request_parse(&r, sizeof r, MAX_SECONDS, &ban, &sent, &seq,
                                                &kill, &why), 0);
        assert_true(addr_equal(&sent, &a));
        cidr_format(&ban.net, text, sizeof text);
        assert_string_equal(text, cases[i].net);
        assert_int_equal(ban.seconds, 600);
        assert_int_equal(seq, 41 + i);
        assert_int_equal(kill, i == 1);  /* only the one made with kill */
    }
}

static void test_request_unban(void **state)
{
    struct addr a = test_addr("198.51.100.1");
    struct banproto_request r;
    struct fw_ban ban;
    const char *why;
    (void)state;
    banproto_request_make(&r, &a, 32, 0, 1, true);
    assert_int_equal(r.op, BANPROTO_UNBAN); /* nothing to kill for an unban */
    assert_int_equal(test_parse(&r, &ban, &why), 0);
    assert_int_equal(ban.seconds, 0);
}

static void test_request_malformed(void **state)
{
    struct addr a = test_addr("198.51.100.1");
    struct banproto_request good, r;
    struct fw_ban ban;
    struct addr sent;
    uint32_t seq;
    bool kill;
    const char *why = NULL;
    (void)state;
    banproto_request_make(&good, &a, 32, 60, 1, false);

    assert_int_equal(banproto_request_parse(&good, sizeof good - 1, MAX_SECONDS, &ban, &sent,
                                            &seq, &kill, &why), -1);
    assert_string_equal(why, "wrong size");
    assert_int_equal(banproto_request_parse(&good, sizeof good + 1, MAX_SECONDS, &ban, &sent,
                                            &seq, &kill, &why), -1);
    /* an empty message: the ban helper tells it from its peer's close and
     * refuses it here (test_privsep.ServeHelperKillTest) */
    why = NULL;
    assert_int_equal(banproto_request_parse(&good, 0, MAX_SECONDS, &ban, &sent, &seq, &kill,
                                            &why), -1);
    assert_string_equal(why, "wrong size");

    r = good; r.version = 1;   /* before network bans */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "unknown version");
    r = good; r.prefix = 7;    /* wider than a /8 */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "prefix length out of bounds");
    r = good; r.prefix = 33;
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    r = good; r.prefix = 0;
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    r = good; r.family = AF_INET6; r.addr[15] = 1; r.prefix = 15; /* wider than a /16 */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "prefix length out of bounds");
    r.prefix = 129;
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    r.prefix = 16;
    assert_int_equal(test_parse(&r, &ban, &why), 0);
    r = good; r.family = 17;
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "unknown address family");
    r = good; r.addr[9] = 1;   /* bytes beyond an IPv4 address */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "not a single address");
    r = good; memset(r.addr, 0, sizeof r.addr); /* 0.0.0.0 */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    r = good; r.op = 4;
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "unknown operation");
    r = good; r.op = BANPROTO_BAN_KILL; r.seconds = 0; /* a ban and kill needs a length */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    r = good; r.seconds = 0;   /* a ban needs a length */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    assert_string_equal(why, "duration out of bounds");
    r = good; r.seconds = MAX_SECONDS + 1;
    assert_int_equal(test_parse(&r, &ban, &why), -1);
    r = good; r.seconds = MAX_SECONDS;
    assert_int_equal(test_parse(&r, &ban, &why), 0);
    r = good; r.op = BANPROTO_UNBAN; r.seconds = 5; /* an unban has none */
    assert_int_equal(test_parse(&r, &ban, &why), -1);
}

/* test_request_allowed - serve's helper carries out bans and unbans but
 * refuses BAN_KILL (only watch ends connections); watch's does all three */
static void test_request_allowed(void **state)
{
    static const struct {
        uint32_t seconds;
        bool kill;
        bool serve_may;
    } cases[] = {{600, false, true}, {0, false, true}, {600, true, false}, {0, true, true}};
    struct addr a = test_addr("192.0.2.9");
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct banproto_request r;
        struct fw_ban ban;
        struct addr sent;
        uint32_t seq;
        bool kill;
        const char *why = NULL;
        banproto_request_make(&r, &a, 32, cases[i].seconds, 7, cases[i].kill);
        assert_int_equal(banproto_request_parse(&r, sizeof r, MAX_SECONDS, &ban, &sent, &seq,
                                                &kill, &why), 0);
        assert_true(banproto_request_allowed(BANPROTO_PEER_WATCH, kill, &why));
        assert_int_equal(banproto_request_allowed(BANPROTO_PEER_SERVE, kill, &why),
                         cases[i].serve_may);
        if (!cases[i].serve_may) {
            assert_int_equal(r.op, BANPROTO_BAN_KILL);
            assert_non_null(strstr(why, "BAN_KILL refused"));
            assert_non_null(strstr(why, "serve"));
        }
    }
}

static void test_reply_round_trip(void **state)
{
    struct banproto_reply r, out;
    char longer[400];
    (void)state;
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    banproto_reply_make(&r, 9, 7, 2, 3, 1, 123456789, longer);
    assert_int_equal(banproto_reply_parse(&r, sizeof r, &out), 0);
    assert_int_equal(out.seq, 9);
    assert_int_equal(out.applied, 7);
    assert_int_equal(out.failed, 2);
    assert_int_equal(out.killed, 3);
    assert_int_equal(out.kill_failed, 1);
    assert_int_equal(out.applied_ns, 123456789);
    assert_int_equal(strlen(out.error), sizeof out.error - 1);
    memset(r.error, 'y', sizeof r.error); /* no terminator */
    assert_int_equal(banproto_reply_parse(&r, sizeof r, &out), -1);
    assert_int_equal(banproto_reply_parse(&r, sizeof r - 1, &out), -1);
}

static void test_policy_first_ban(void **state)
{
    struct store_ban next;
    (void)state;
    assert_int_equal(banpolicy_next(NULL, 1000, 600, 86400, 0, STORE_BAN_DNSBL, &next),
                     BANPOLICY_BAN);
    assert_int_equal(next.count, 1);
    assert_true(next.until == 1600);
    assert_true(next.last == 1000);
    assert_int_equal(next.reason, STORE_BAN_DNSBL);
}

static void test_policy_escalation(void **state)
{
    struct store_ban prev = {0}, next;
    double now = 1000;
    double expect[] = {600, 1200, 2400, 4800, 9600, 19200, 38400, 76800, 86400, 86400};
    (void)state;
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        assert_int_equal(banpolicy_next(i ? &prev : NULL, now, 600, 86400, 0,
                                        STORE_BAN_DNSBL, &next), BANPOLICY_BAN);
        assert_int_equal(next.count, i + 1);
        assert_true(next.until - now == expect[i]);
        prev = next;
        now = next.until + 5; /* comes back after the ban ended */
    }
}

static void test_policy_refresh_while_banned(void **state)
{
    struct store_ban prev, next;
    (void)state;
    banpolicy_next(NULL, 1000, 600, 86400, 0, STORE_BAN_DNSBL, &prev);
    /* a burst of connections of the same bot: nothing more to do */
    assert_int_equal(banpolicy_next(&prev, 1000.5, 600, 86400, 0, STORE_BAN_DNSBL, &next),
                     BANPOLICY_NOTHING);
    /* tries again later, still banned: same length from now, no escalation */
    assert_int_equal(banpolicy_next(&prev, 1300, 600, 86400, 0, STORE_BAN_PREGREET, &next),
                     BANPOLICY_BAN);
    assert_int_equal(next.count, 1);
    assert_true(next.until == 1900);
    assert_int_equal(next.reason, STORE_BAN_PREGREET);
}

static void test_policy_manual(void **state)
{
    struct store_ban prev, next;
    (void)state;
    banpolicy_next(NULL, 1000, 600, 86400, 0, STORE_BAN_DNSBL, &prev);
    /* by hand, even right after an automatic ban */
    assert_int_equal(banpolicy_next(&prev, 1000.1, 600, 86400, 30, STORE_BAN_MANUAL, &next),
                     BANPOLICY_BAN);
    assert_true(next.until > 1030.09 && next.until < 1030.11);
    assert_int_equal(next.count, 2);
    assert_int_equal(banpolicy_next(NULL, 0, 600, 86400, 1e9, STORE_BAN_MANUAL, &next),
                     BANPOLICY_BAN);
    assert_true(next.until == 86400); /* never beyond the max */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_unban),
        cmocka_unit_test(test_request_malformed),
        cmocka_unit_test(test_request_allowed),
        cmocka_unit_test(test_reply_round_trip),
        cmocka_unit_test(test_policy_first_ban),
        cmocka_unit_test(test_policy_escalation),
        cmocka_unit_test(test_policy_refresh_while_banned),
        cmocka_unit_test(test_policy_manual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
