/*
 * test_cache - the verdict cache: hits, expiry, replacement, eviction of the
 * oldest entry when full, and the incremental purge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "cache.h"

static struct addr test_addr(unsigned n)
{
    char text[32];
    struct addr a;
    snprintf(text, sizeof text, "10.%u.%u.%u", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

static void test_hit_and_expiry(void **state)
{
    (void)state;
    struct cache *c = cache_new(10);
    struct addr a = test_addr(1), b = test_addr(2);
    struct cache_verdict v = {true, 3, 0x5}, got;
    assert_non_null(c);
    assert_false(cache_get(c, &a, 0, &got));
    assert_int_equal(cache_put(c, &a, &v, 100.0), 0);
    assert_true(cache_get(c, &a, 99.9, &got));
    assert_true(got.listed);
    assert_int_equal(got.score, 3);
    assert_int_equal(got.hits, 0x5);
    assert_false(cache_get(c, &b, 50, &got));
    /* expired: gone, and counted out */
    assert_false(cache_get(c, &a, 100.0, &got));
    assert_int_equal(cache_count(c), 0);
    cache_free(c);
}

static void test_replace(void **state)
{
    (void)state;
    struct cache *c = cache_new(10);
    struct addr a = test_addr(7);
    struct cache_verdict listed = {true, 2, 1}, clean = {false, -5, 4}, got;
    cache_put(c, &a, &listed, 100);
    cache_put(c, &a, &clean, 200);
    assert_int_equal(cache_count(c), 1);
    assert_true(cache_get(c, &a, 150, &got));
    assert_false(got.listed);
    assert_int_equal(got.score, -5);
    cache_free(c);
}

static void test_eviction_oldest_first(void **state)
{
    (void)state;
    struct cache *c = cache_new(100);
    struct cache_verdict v = {false, 0, 0}, got;
    for (unsigned i = 0; i < 150; i++) {
        struct addr a = test_addr(i);
        assert_int_equal(cache_put(c, &a, &v, 1000), 0);
        assert_true(cache_count(c) <= 100);
    }
    assert_int_equal(cache_count(c), 100);
    for (unsigned i = 0; i < 150; i++) {
        struct addr a = test_addr(i);
        assert_int_equal(cache_get(c, &a, 0, &got), i >= 50);
    }
    cache_free(c);
}

static void test_purge(void **state)
{
    (void)state;
    struct cache *c = cache_new(1000);
    struct cache_verdict v = {false, 0, 0}, got;
    for (unsigned i = 0; i < 1000; i++) {
        struct addr a = test_addr(i);
        cache_put(c, &a, &v, i % 2 ? 10 : 1000); /* every odd one expires at 10 */
    }
    size_t dropped = 0;
    for (int round = 0; round < 200 && cache_count(c) > 500; round++)
        dropped += cache_purge(c, 20, 16);
    assert_int_equal(dropped, 500);
    assert_int_equal(cache_count(c), 500);
    struct addr even = test_addr(2), odd = test_addr(3);
    assert_true(cache_get(c, &even, 20, &got));
    assert_false(cache_get(c, &odd, 0, &got));
    cache_free(c);
}

static void test_disabled(void **state)
{
    (void)state;
    struct addr a = test_addr(1);
    struct cache_verdict v = {true, 1, 1}, got;
    assert_null(cache_new(0));
    assert_int_equal(cache_put(NULL, &a, &v, 10), 0);
    assert_false(cache_get(NULL, &a, 0, &got));
    assert_int_equal(cache_count(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_expiry),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_eviction_oldest_first),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
