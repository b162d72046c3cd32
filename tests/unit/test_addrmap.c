/*
 * test_addrmap - the address-keyed hash table: add, find, remove, growth
 * far past the initial bucket count, IPv4 and IPv6 keys kept apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "addrmap.h"

static struct addr test_addr(unsigned n, int family)
{
    char text[64];
    struct addr a;
    if (family == AF_INET)
        snprintf(text, sizeof text, "10.%u.%u.%u", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    else
        snprintf(text, sizeof text, "2001:db8::%x:%x", n >> 16, n & 0xffff);
    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

static void test_grow_find_remove(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct addrmap m;
    struct addrmap_node *nodes = calloc(2 * N, sizeof *nodes);
    assert_non_null(nodes);
    assert_int_equal(addrmap_init(&m, 16), 0);
    for (unsigned i = 0; i < N; i++) {
        nodes[i].addr = test_addr(i, AF_INET);
        nodes[N + i].addr = test_addr(i, AF_INET6);
        assert_null(*addrmap_find(&m, &nodes[i].addr));
        addrmap_add(&m, &nodes[i]);
        addrmap_add(&m, &nodes[N + i]);
    }
    assert_int_equal(m.count, 2 * N);
    assert_true(m.buckets >= 2 * N); /* it grew */
    for (unsigned i = 0; i < 2 * N; i++)
        assert_ptr_equal(*addrmap_find(&m, &nodes[i].addr), &nodes[i]);
    for (unsigned i = 0; i < 2 * N; i += 2)
        addrmap_remove(&m, addrmap_find(&m, &nodes[i].addr));
    assert_int_equal(m.count, N);
    for (unsigned i = 0; i < 2 * N; i++) {
        struct addrmap_node *found = *addrmap_find(&m, &nodes[i].addr);
        if (i % 2 == 0)
            assert_null(found);
        else
            assert_ptr_equal(found, &nodes[i]);
    }
    size_t seen = 0;
    for (size_t b = 0; b < m.buckets; b++)
        for (struct addrmap_node *n = *addrmap_bucket(&m, b); n != NULL; n = n->chain)
            seen++;
    assert_int_equal(seen, N);
    addrmap_free(&m);
    free(nodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_find_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
