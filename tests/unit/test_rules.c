/*
 * test_rules - unit tests of src/rules.c: the setup text of every ban
 * backend for default and custom sets, ports and ban_time; that the nft
 * script holds only commands and comments and keeps the rate limit
 * commented out; that iptables rules are re-runnable (-C || -I) and split
 * past 15 ports; and rules_format()'s snprintf contract (length without a
 * buffer, cut text NUL-terminated, exact fit). Loading the text into a real
 * kernel is checked by hand in a network namespace, not here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rules.h"

#define TEST_OPTIONS_MAX 4

/* test_conf - a finished conf from "key=value" options (NULL-terminated) */
static void test_conf(struct conf *c, const char *const *options)
{
    char err[CONF_ERR_MAX];

    conf_init(c);
    for (; *options != NULL; options++)
        if (conf_set_option(c, *options, err) != 0)
            fail_msg("option '%s': %s", *options, err);
    if (conf_finish(c, err) != 0)
        fail_msg("conf_finish: %s", err);
}

/* test_rules - the whole text for the options; the caller frees it */
static char *test_rules(const char *const *options)
{
    struct conf c;
    size_t len;
    char *text;

    test_conf(&c, options);
    len = rules_format(&c, NULL, 0);
    text = malloc(len + 1);
    assert_non_null(text);
    assert_int_equal(rules_format(&c, text, len + 1), len);
    assert_int_equal(strlen(text), len);
    conf_free(&c);
    return text;
}

/* test_has_line - whether text holds this exact line */
static bool test_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p;

    for (p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* test_expect_lines - every line of want is in text */
static void test_expect_lines(const char *text, const char *const *want)
{
    for (; *want != NULL; want++)
        if (!test_has_line(text, *want))
            fail_msg("missing line '%s' in:\n%s", *want, text);
}

/* test_count - how many times needle occurs in text */
static size_t test_count(const char *text, const char *needle)
{
    size_t n = 0;

    for (; (text = strstr(text, needle)) != NULL; text++)
        n++;
    return n;
}

static void test_nft_default(void **state)
{
    static const char *const options[] = {NULL};
    static const char *const want[] = {
        "add table inet breakwater",
        "add set inet breakwater banned4 { type ipv4_addr; flags timeout; }",
        "add set inet breakwater banned6 { type ipv6_addr; flags timeout; }",
        "add set inet breakwater banned4net { type ipv4_addr; flags interval,timeout; }",
        "add set inet breakwater banned6net { type ipv6_addr; flags interval,timeout; }",
        "add chain inet breakwater bans { type filter hook input priority filter - 10; "
        "policy accept; }",
        "flush chain inet breakwater bans",
        "add rule inet breakwater bans ip saddr @banned4 tcp dport { 25 } tcp flags & (syn | ack) == syn drop",
        "add rule inet breakwater bans ip saddr @banned4net tcp dport { 25 } tcp flags & (syn | ack) == syn drop",
        "add rule inet breakwater bans ip6 saddr @banned6 tcp dport { 25 } tcp flags & (syn | ack) == syn drop",
        /* ipv6_prefix 64: the client's /64 looked up in the hash set */
        "add set inet breakwater banned6net64 { type ipv6_addr; flags timeout; }",
        "add rule inet breakwater bans ip6 saddr & ffff:ffff:ffff:ffff:: @banned6net64 tcp dport { 25 } "
        "tcp flags & (syn | ack) == syn drop",
        "add rule inet breakwater bans ip6 saddr @banned6net tcp dport { 25 } tcp flags & (syn | ack) == syn drop",
        NULL,
    };
    char *text = test_rules(options);

    (void)state;
    test_expect_lines(text, want);
    /* the flush comes after the chain exists and before its rules */
    assert_true(strstr(text, "add chain") < strstr(text, "flush chain"));
    assert_true(strstr(text, "flush chain") < strstr(text, "add rule"));
    assert_non_null(strstr(text, "breakwater rules | nft -f -"));
    /* ipv4_prefix 32: no masked IPv4 rule, no set of IPv4 networks by mask */
    assert_null(strstr(text, "ip saddr & "));
    assert_null(strstr(text, "banned4net32"));
    free(text);
}

static void test_nft_custom(void **state)
{
    static const char *const options[] = {
        "ban_set=inet fw bad", "ban_ports=25, 587 465", "ipv4_prefix=24", "ipv6_prefix=128",
        NULL,
    };
    static const char *const want[] = {
        "add table inet fw",
        "add set inet fw bad4 { type ipv4_addr; flags timeout; }",
        "add set inet fw bad6 { type ipv6_addr; flags timeout; }",
        "add set inet fw bad6net { type ipv6_addr; flags interval,timeout; }",
        "flush chain inet fw bans",
        "add set inet fw bad4net24 { type ipv4_addr; flags timeout; }",
        "add rule inet fw bans ip saddr & 255.255.255.0 @bad4net24 tcp dport { 25, 587, 465 } tcp flags & "
        "(syn | ack) == syn drop",
        "add rule inet fw bans ip saddr @bad4 tcp dport { 25, 587, 465 } tcp flags & (syn | ack) == syn drop",
        "add rule inet fw bans ip6 saddr @bad6 tcp dport { 25, 587, 465 } tcp flags & (syn | ack) == syn drop",
        NULL,
    };
    char *text = test_rules(options);

    (void)state;
    test_expect_lines(text, want);
    assert_null(strstr(text, "inet breakwater"));
    assert_null(strstr(text, "@banned"));
    assert_null(strstr(text, "ip6 saddr & ")); /* ipv6_prefix 128: no mask */
    assert_null(strstr(text, "bad6net128"));
    free(text);
}

static void test_nft_listen_ports(void **state)
{
    static const char *const options[] = {
        "listen=127.0.0.1:2526, [::1]:2526, 127.0.0.1:587", NULL,
    };
    char *text = test_rules(options);

    (void)state;
    assert_true(test_has_line(text, "add rule inet breakwater bans ip saddr @banned4 "
                                    "tcp dport { 2526, 587 } tcp flags & (syn | ack) == syn drop"));
    free(text);
}

/* Every line is a comment or an nft command; the rate limit is there,
 * commented out, and uncommenting it gives add commands. */
static void test_nft_script_shape(void **state)
{
    static const char *const options[] = {NULL};
    char *text = test_rules(options), *line, *save = NULL;

    (void)state;
    assert_int_equal(text[strlen(text) - 1], '\n');
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        if (strncmp(line, "add ", 4) != 0 && strncmp(line, "flush ", 6) != 0)
            fail_msg("not an nft command: '%s'", line);
        assert_null(strstr(line, "ratelimit")); /* max_connection_rate_per_ip = 0 */
    }
    free(text);
}

/* max_connection_rate_per_ip in the kernel: per network, twice the rate */
static void test_nft_ratelimit_lines(void **state)
{
    static const char *const options[] = {"max_connection_rate_per_ip=30",
                                          "connection_rate_window=2m", "ipv4_prefix=24",
                                          "ipv6_prefix=48", NULL};
    static const char *const want[] = {
        "add set inet breakwater ratelimit4 { type ipv4_addr; size 262144; "
        "flags dynamic,timeout; timeout 120s; }",
        "add set inet breakwater ratelimit6 { type ipv6_addr; size 262144; "
        "flags dynamic,timeout; timeout 120s; }",
        "add rule inet breakwater bans tcp dport { 25 } tcp flags & (syn | ack) == syn "
        "add @ratelimit4 { ip saddr & 255.255.255.0 limit rate over 1800/hour burst 60 packets } "
        "counter drop",
        "add rule inet breakwater bans tcp dport { 25 } tcp flags & (syn | ack) == syn "
        "add @ratelimit6 { ip6 saddr & ffff:ffff:ffff:: limit rate over 1800/hour burst 60 "
        "packets } counter drop",
        NULL,
    };
    static const char *const whole[] = {"max_connection_rate_per_ip=1", "ipv6_prefix=128",
                                        NULL};
    static const char *const want_whole[] = {
        "add rule inet breakwater bans tcp dport { 25 } tcp flags & (syn | ack) == syn "
        "add @ratelimit6 { ip6 saddr limit rate over 120/hour burst 2 packets } counter drop",
        NULL,
    };
    static const char *const ipset[] = {"ban_backend=ipset", "max_connection_rate_per_ip=10",
                                        NULL};
    static const char *const want_ipset[] = {
        "ip6tables -C INPUT -p tcp --syn -m multiport --dports 25 -m hashlimit "
        "--hashlimit-name breakwater6 --hashlimit-mode srcip --hashlimit-srcmask 64 "
        "--hashlimit-above 1200/hour --hashlimit-burst 20 --hashlimit-htable-expire 60000 "
        "-j DROP 2>/dev/null ||",
        NULL,
    };
    char *text = test_rules(options);

    (void)state;
    test_expect_lines(text, want);
    free(text);
    text = test_rules(whole);
    test_expect_lines(text, want_whole);
    free(text);
    text = test_rules(ipset);
    test_expect_lines(text, want_ipset);
    free(text);
}

static void test_ipset(void **state)
{
    static const char *const options[] = {
        "ban_backend=ipset", "ban_ports=25,587", NULL,
    };
    static const char *const want[] = {
        "#!/bin/sh",
        "set -e",
        "ipset create breakwater-banned4 hash:net family inet timeout 0 maxelem 1048576 -exist",
        "ipset create breakwater-banned6 hash:net family inet6 timeout 0 maxelem 1048576 "
        "-exist",
        "iptables -C INPUT -p tcp --syn -m multiport --dports 25,587 -m set --match-set "
        "breakwater-banned4 src -j DROP 2>/dev/null ||",
        "    iptables -I INPUT -p tcp --syn -m multiport --dports 25,587 -m set --match-set "
        "breakwater-banned4 src -j DROP",
        "ip6tables -C INPUT -p tcp --syn -m multiport --dports 25,587 -m set --match-set "
        "breakwater-banned6 src -j DROP 2>/dev/null ||",
        "    ip6tables -I INPUT -p tcp --syn -m multiport --dports 25,587 -m set --match-set "
        "breakwater-banned6 src -j DROP",
        NULL,
    };
    char *text = test_rules(options);

    (void)state;
    test_expect_lines(text, want);
    /* the sets are created before any rule refers to them */
    assert_true(strstr(text, "\nipset create") < strstr(text, "\niptables -C"));
    assert_non_null(strstr(text, "breakwater rules -o ban_backend=ipset | sh"));
    assert_null(strstr(text, "nft"));
    free(text);
}

static void test_ipset_custom_set(void **state)
{
    static const char *const options[] = {
        "ban_backend=ipset", "ban_set=bw", NULL,
    };
    char *text = test_rules(options);

    (void)state;
    assert_true(test_has_line(text, "ipset create bw4 hash:net family inet timeout 0 "
                                    "maxelem 1048576 -exist"));
    assert_true(test_has_line(text, "    ip6tables -I INPUT -p tcp --syn -m multiport --dports 25 "
                                    "-m set --match-set bw6 src -j DROP"));
    free(text);
}

static void test_recent(void **state)
{
    static const char *const options[] = {
        "ban_backend=recent", "ban_ports=25 587", "ban_time=1h", NULL,
    };
    static const char *const want[] = {
        "#!/bin/sh",
        "set -e",
        "iptables -C INPUT -p tcp --syn -m multiport --dports 25,587 -m recent --name breakwater "
        "--rcheck --seconds 3600 -j DROP 2>/dev/null ||",
        "    iptables -I INPUT -p tcp --syn -m multiport --dports 25,587 -m recent --name "
        "breakwater --rcheck --seconds 3600 -j DROP",
        "ip6tables -C INPUT -p tcp --syn -m multiport --dports 25,587 -m recent --name breakwater6 "
        "--rcheck --seconds 3600 --mask ffff:ffff:ffff:ffff:: -j DROP 2>/dev/null ||",
        "    ip6tables -I INPUT -p tcp --syn -m multiport --dports 25,587 -m recent --name "
        "breakwater6 --rcheck --seconds 3600 --mask ffff:ffff:ffff:ffff:: -j DROP",
        NULL,
    };
    char *text = test_rules(options);

    (void)state;
    test_expect_lines(text, want);
    /* the limits are said */
    assert_non_null(strstr(text, "ip_list_tot"));
    assert_non_null(strstr(text, "100"));
    assert_non_null(strstr(text, "cannot escalate"));
    assert_non_null(strstr(text, "/proc/net/xt_recent/breakwater"));
    assert_null(strstr(text, "ipset"));
    free(text);
}

static void test_recent_default_time(void **state)
{
    static const char *const options[] = {"ban_backend=recent", "ban_set=smtp", NULL};
    static const char *const networks[] = {"ban_backend=recent", "ipv4_prefix=24",
                                           "ipv6_prefix=128", NULL};
    char *text = test_rules(options);

    (void)state;
    /* the IPv4 rules match single addresses, the IPv6 ones a /64 */
    assert_int_equal(test_count(text, "--name smtp --rcheck --seconds 600 -j DROP"), 2);
    assert_int_equal(test_count(text, "--name smtp6 --rcheck --seconds 600 "
                                      "--mask ffff:ffff:ffff:ffff:: -j DROP"), 2);
    free(text);
    text = test_rules(networks);
    assert_int_equal(test_count(text, "--rcheck --seconds 600 --mask 255.255.255.0 -j DROP"), 2);
    assert_int_equal(test_count(text, "ip6tables -C INPUT -p tcp --syn -m multiport --dports 25 "
                                      "-m recent --name breakwater6 --rcheck --seconds 600 -j DROP"),
                     1);
    free(text);
}

static void test_none(void **state)
{
    static const char *const options[] = {"ban_backend=none", NULL};
    char *text = test_rules(options), *line, *save = NULL;

    (void)state;
    assert_non_null(strstr(text, "nothing to install"));
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        assert_int_equal(line[0], '#');
    free(text);
}

/* iptables' multiport takes 15 ports: 16 make two rules per command. */
static void test_sixteen_ports(void **state)
{
    static const char *const options[] = {
        "ban_backend=ipset", "ban_ports=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", NULL,
    };
    static const char *const nft_options[] = {
        "ban_ports=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", NULL,
    };
    char *text = test_rules(options);

    (void)state;
    assert_true(test_has_line(text, "    iptables -I INPUT -p tcp --syn -m multiport --dports "
                                    "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -m set "
                                    "--match-set breakwater-banned4 src -j DROP"));
    assert_true(test_has_line(text, "    iptables -I INPUT -p tcp --syn -m multiport --dports 16 "
                                    "-m set --match-set breakwater-banned4 src -j DROP"));
    assert_int_equal(test_count(text, " -I INPUT "), 4);
    free(text);
    text = test_rules(nft_options);
    assert_non_null(strstr(text, "tcp dport { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, "
                                 "14, 15, 16 } tcp flags & (syn | ack) == syn drop"));
    free(text);
}

/* No ban ports (a conf that did not get them from listen): every TCP port. */
static void test_no_ports(void **state)
{
    static const char *const options[] = {NULL};
    struct conf c;
    char text[4096];

    (void)state;
    test_conf(&c, options);
    c.ban_port_count = 0;
    assert_true(rules_format(&c, text, sizeof text) < sizeof text);
    assert_true(test_has_line(text, "add rule inet breakwater bans ip saddr @banned4 "
                                    "meta l4proto tcp tcp flags & (syn | ack) == syn drop"));
    c.ban_backend = BAN_BACKEND_RECENT;
    free(c.ban_set);
    c.ban_set = strdup("breakwater");
    assert_true(rules_format(&c, text, sizeof text) < sizeof text);
    assert_true(test_has_line(text, "    iptables -I INPUT -p tcp --syn -m recent --name breakwater "
                                    "--rcheck --seconds 600 -j DROP"));
    conf_free(&c);
}

/* snprintf contract: the length without a buffer, a cut text that is a
 * NUL-terminated prefix, an exact fit, and one byte short. */
static void test_snprintf_contract(void **state)
{
    static const char *const backends[] = {"nft", "ipset", "recent", "none"};
    char option[32], *full, *cut;
    const char *options[2] = {option, NULL};
    size_t b, len, size;
    struct conf c;

    (void)state;
    for (b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        snprintf(option, sizeof option, "ban_backend=%s", backends[b]);
        full = test_rules(options);
        test_conf(&c, options);
        len = strlen(full);
        assert_true(len > 0);
        assert_int_equal(rules_format(&c, NULL, 0), len);
        cut = malloc(len + 2);
        assert_non_null(cut);
        for (size = 1; size <= len + 1; size += (size < 80 || size > len - 5) ? 1 : 37) {
            memset(cut, 'x', len + 2);
            assert_int_equal(rules_format(&c, cut, size), len);
            assert_int_equal(strlen(cut), size - 1);
            assert_memory_equal(cut, full, size - 1);
            assert_int_equal(cut[size], 'x');
        }
        free(cut);
        free(full);
        conf_free(&c);
    }
}

/* A zero-size call writes nothing even with a real buffer. */
static void test_zero_size(void **state)
{
    static const char *const options[] = {NULL};
    char buf[4] = "abc";
    struct conf c;

    (void)state;
    test_conf(&c, options);
    assert_true(rules_format(&c, buf, 0) > 100);
    assert_string_equal(buf, "abc");
    conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nft_default),
        cmocka_unit_test(test_nft_custom),
        cmocka_unit_test(test_nft_listen_ports),
        cmocka_unit_test(test_nft_script_shape),
        cmocka_unit_test(test_nft_ratelimit_lines),
        cmocka_unit_test(test_ipset),
        cmocka_unit_test(test_ipset_custom_set),
        cmocka_unit_test(test_recent),
        cmocka_unit_test(test_recent_default_time),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_sixteen_ports),
        cmocka_unit_test(test_no_ports),
        cmocka_unit_test(test_snprintf_contract),
        cmocka_unit_test(test_zero_size),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
