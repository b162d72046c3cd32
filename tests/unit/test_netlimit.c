/*
 * test_netlimit - sessions and connection rate per client network
 * (src/netlimit.c): caps over a network's addresses, fixed rate windows,
 * the one "keeps going" signal a window, entries freed when they count
 * nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "netlimit.h"

static struct cidr net_of(const char *text, unsigned prefix4, unsigned prefix6)
{
    struct addr a;
    assert_int_equal(addr_parse(text, &a), 0);
    return cidr_of(&a, prefix4, prefix6);
}

static void test_cidr_of(void **state)
{
    char text[CIDR_TEXT_MAX];
    (void)state;
    struct cidr c = net_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 32, 64);
    cidr_format(&c, text, sizeof text);
    assert_string_equal(text, "2001:db8:1:2::/64");
    c = net_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 32, 200); /* cut to 128 */
    cidr_format(&c, text, sizeof text);
    assert_string_equal(text, "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
    c = net_of("192.0.2.77", 24, 64);
    cidr_format(&c, text, sizeof text);
    assert_string_equal(text, "192.0.2.0/24");
    c = net_of("::ffff:192.0.2.77", 32, 64); /* mapped: IPv4 */
    cidr_format(&c, text, sizeof text);
    assert_string_equal(text, "192.0.2.77");
}

static void test_sessions_per_network(void **state)
{
    (void)state;
    struct netlimit *t = netlimit_new();
    struct netlimit_policy p = {.max_sessions = 20, .max_entries = 100};
    struct netlimit_entry *e[21], *other;
    char text[64];
    for (int i = 0; i < 20; i++) { /* 20 addresses of one /64 */
        snprintf(text, sizeof text, "2001:db8:0:1::%x", i + 1);
        struct cidr n = net_of(text, 32, 64);
        assert_int_equal(netlimit_admit(t, &n, 10.0, &p, &e[i]), NETLIMIT_ADMITTED);
    }
    struct cidr n21 = net_of("2001:db8:0:1::ffff", 32, 64);
    assert_int_equal(netlimit_admit(t, &n21, 10.0, &p, &e[20]), NETLIMIT_SESSIONS);
    struct cidr next = net_of("2001:db8:0:2::1", 32, 64); /* the next /64 */
    assert_int_equal(netlimit_admit(t, &next, 10.0, &p, &other), NETLIMIT_ADMITTED);
    assert_int_equal(netlimit_count(t), 2);
    netlimit_release(t, e[0]);
    assert_int_equal(netlimit_admit(t, &n21, 10.0, &p, &e[20]), NETLIMIT_ADMITTED);
    /* /128: every address its own */
    struct cidr single = net_of("2001:db8:0:1::ffff", 32, 128);
    assert_int_equal(netlimit_admit(t, &single, 10.0, &p, &other), NETLIMIT_ADMITTED);
    netlimit_release(t, other);
    /* without a rate, an entry goes with its last session */
    for (int i = 1; i <= 20; i++)
        netlimit_release(t, e[i]);
    assert_int_equal(netlimit_count(t), 1); /* the next /64's */
    netlimit_free(t);
}

static void test_rate_windows(void **state)
{
    (void)state;
    struct netlimit *t = netlimit_new();
    struct netlimit_policy p = {.max_sessions = 1000, .max_rate = 3, .window = 60,
                                .max_entries = 100};
    struct netlimit_entry *e;
    struct cidr n = net_of("198.51.100.7", 32, 64), other = net_of("198.51.100.8", 32, 64);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(netlimit_admit(t, &n, 100.0 + i, &p, &e), NETLIMIT_ADMITTED);
        netlimit_release(t, e); /* closed at once: the count stays */
    }
    assert_int_equal(netlimit_count(t), 1);
    assert_int_equal(netlimit_admit(t, &n, 110.0, &p, &e), NETLIMIT_RATE);
    assert_int_equal(netlimit_admit(t, &other, 110.0, &p, &e), NETLIMIT_ADMITTED);
    assert_int_equal(netlimit_admit(t, &n, 111.0, &p, &e), NETLIMIT_RATE);
    assert_int_equal(netlimit_admit(t, &n, 112.0, &p, &e), NETLIMIT_RATE_AGAIN); /* 3 refused */
    for (int i = 0; i < 10; i++) /* once a window */
        assert_int_equal(netlimit_admit(t, &n, 113.0, &p, &e), NETLIMIT_RATE);
    /* the window is over: served again */
    assert_int_equal(netlimit_admit(t, &n, 160.0, &p, &e), NETLIMIT_ADMITTED);
    netlimit_release(t, e);
    /* a clock that went back starts a window too */
    assert_int_equal(netlimit_admit(t, &n, 50.0, &p, &e), NETLIMIT_ADMITTED);
    netlimit_release(t, e);
    /* the sweep frees what counts nothing any more, not an open session */
    netlimit_sweep(t, 500.0, 60, 60);
    assert_int_equal(netlimit_count(t), 1); /* other: a session is open */
    netlimit_sweep(t, 500.0, 60, 60);
    assert_int_equal(netlimit_count(t), 1);
    netlimit_free(t); /* frees the open one too (ASan: no leak) */
}

/* The ban signal counts the network's refusals, whichever of its
 * addresses made them (the ban is of the network), once a window. */
static void test_rate_ban_of_the_network(void **state)
{
    (void)state;
    struct netlimit *t = netlimit_new();
    struct netlimit_policy p = {.max_sessions = 1000, .max_rate = 2, .window = 60,
                                .max_entries = 100};
    struct netlimit_entry *e;
    struct cidr n = net_of("2001:db8:77:1::a", 32, 64);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(netlimit_admit(t, &n, 1.0, &p, &e), NETLIMIT_ADMITTED);
        netlimit_release(t, e);
    }
    assert_int_equal(netlimit_admit(t, &n, 1.0, &p, &e), NETLIMIT_RATE);
    assert_int_equal(netlimit_admit(t, &n, 1.0, &p, &e), NETLIMIT_RATE_AGAIN);
    for (int i = 0; i < 5; i++) /* said once in this window */
        assert_int_equal(netlimit_admit(t, &n, 1.0, &p, &e), NETLIMIT_RATE);
    /* next window: counted afresh */
    assert_int_equal(netlimit_admit(t, &n, 100.0, &p, &e), NETLIMIT_ADMITTED);
    netlimit_release(t, e);
    assert_int_equal(netlimit_admit(t, &n, 100.0, &p, &e), NETLIMIT_ADMITTED);
    netlimit_release(t, e);
    assert_int_equal(netlimit_admit(t, &n, 100.0, &p, &e), NETLIMIT_RATE);
    assert_int_equal(netlimit_admit(t, &n, 100.0, &p, &e), NETLIMIT_RATE_AGAIN);
    netlimit_free(t);
}

/* max_entries: a new network past it is not counted (the caller fails open) */
static void test_max_entries(void **state)
{
    (void)state;
    struct netlimit *t = netlimit_new();
    struct netlimit_policy p = {.max_sessions = 10, .max_rate = 5, .window = 60,
                                .max_entries = 3};
    struct netlimit_entry *e;
    char text[32];
    for (int i = 1; i <= 3; i++) {
        snprintf(text, sizeof text, "10.0.0.%d", i);
        struct cidr n = net_of(text, 32, 64);
        assert_int_equal(netlimit_admit(t, &n, 1.0, &p, &e), NETLIMIT_ADMITTED);
    }
    struct cidr fourth = net_of("10.0.0.4", 32, 64), first = net_of("10.0.0.1", 32, 64);
    assert_int_equal(netlimit_admit(t, &fourth, 1.0, &p, &e), NETLIMIT_NO_MEMORY);
    assert_int_equal(netlimit_admit(t, &first, 1.0, &p, &e), NETLIMIT_ADMITTED);
    assert_int_equal(netlimit_count(t), 3);
    netlimit_free(t);
}

static void test_sweep_visits_a_slice(void **state)
{
    (void)state;
    struct netlimit *t = netlimit_new();
    struct netlimit_policy p = {.max_sessions = 10, .max_rate = 1000, .window = 1,
                                .max_entries = 100000};
    struct netlimit_entry *e;
    char text[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(text, sizeof text, "10.%d.%d.1", i / 250, i % 250);
        struct cidr n = net_of(text, 32, 64);
        assert_int_equal(netlimit_admit(t, &n, 1.0, &p, &e), NETLIMIT_ADMITTED);
        netlimit_release(t, e);
    }
    assert_int_equal(netlimit_count(t), 5000);
    netlimit_sweep(t, 1.5, 1, 1); /* the window not over */
    assert_int_equal(netlimit_count(t), 5000);
    netlimit_sweep(t, 300.0, 100, 1);    /* a window of 100 s: a slice goes */
    size_t left = netlimit_count(t);
    assert_true(left < 5000 && left > 0);
    for (int i = 0; i < 50; i++)         /* half a window: the whole table */
        netlimit_sweep(t, 300.0, 100, 1);
    assert_int_equal(netlimit_count(t), 0);
    netlimit_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_of),
        cmocka_unit_test(test_sessions_per_network),
        cmocka_unit_test(test_rate_windows),
        cmocka_unit_test(test_rate_ban_of_the_network),
        cmocka_unit_test(test_max_entries),
        cmocka_unit_test(test_sweep_visits_a_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
