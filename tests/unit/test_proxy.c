/*
 * test_proxy - unit tests for src/proxy.c: PROXY protocol v1 and v2 headers
 * for IPv4, IPv6 and mixed families compared byte for byte with headers
 * written out by hand from HAProxy's proxy-protocol.txt; buffer bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "proxy.h"

#define TEST_CANARY 0xa5

/* test_proxy_addr - an address from text, failing the test if it does not parse */
static struct addr test_proxy_addr(const char *text)
{
    struct addr a;

    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

/* test_proxy_expect - write with a buffer of exactly size bytes and compare;
 * the bytes after size must stay untouched */
static void test_proxy_expect(enum proxy_version version,
                              const char *src, uint16_t sport,
                              const char *dst, uint16_t dport,
                              const uint8_t *expected, size_t len)
{
    struct addr s = test_proxy_addr(src), d = test_proxy_addr(dst);
    uint8_t buf[PROXY_HEADER_MAX + 8];
    uint8_t canary[8];

    memset(buf, TEST_CANARY, sizeof buf);
    memset(canary, TEST_CANARY, sizeof canary);
    assert_true(len <= PROXY_HEADER_MAX);
    assert_int_equal(proxy_header_write(version, &s, sport, &d, dport, buf, len), (ssize_t)len);
    assert_memory_equal(buf, expected, len);
    assert_memory_equal(buf + len, canary, sizeof canary);
    if (len > 0) {
        memset(buf, TEST_CANARY, sizeof buf);
        assert_int_equal(proxy_header_write(version, &s, sport, &d, dport, buf, len - 1), -1);
        assert_memory_equal(buf + len - 1, canary, sizeof canary);
    }
}

/* test_v1_tcp4 - the IPv4 text header */
static void test_v1_tcp4(void **state)
{
    static const char line[] = "PROXY TCP4 192.0.2.1 198.51.100.25 56324 25\r\n";

    (void)state;
    test_proxy_expect(PROXY_V1, "192.0.2.1", 56324, "198.51.100.25", 25,
                      (const uint8_t *)line, sizeof line - 1);
}

/* test_v1_tcp4_mapped - mapped text becomes IPv4 before it reaches the header */
static void test_v1_tcp4_mapped(void **state)
{
    static const char line[] = "PROXY TCP4 10.0.0.1 10.0.0.2 1 65535\r\n";

    (void)state;
    test_proxy_expect(PROXY_V1, "::ffff:10.0.0.1", 1, "10.0.0.2", 65535,
                      (const uint8_t *)line, sizeof line - 1);
}

/* test_v1_tcp6 - the IPv6 text header, addresses in inet_ntop form */
static void test_v1_tcp6(void **state)
{
    static const char line[] = "PROXY TCP6 2001:db8::1 2001:db8::25 40000 25\r\n";

    (void)state;
    test_proxy_expect(PROXY_V1, "2001:0DB8:0:0::1", 40000, "2001:db8::25", 25,
                      (const uint8_t *)line, sizeof line - 1);
}

/* test_v1_longest - the longest TCP6 line fits PROXY_HEADER_MAX with its NUL */
static void test_v1_longest(void **state)
{
    static const char line[] =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65534\r\n";

    (void)state;
    assert_true(sizeof line <= PROXY_HEADER_MAX);
    test_proxy_expect(PROXY_V1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
                      "fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65534,
                      (const uint8_t *)line, sizeof line - 1);
}

/* test_v1_unknown - differing families give the UNKNOWN line, both ways round */
static void test_v1_unknown(void **state)
{
    static const char line[] = "PROXY UNKNOWN\r\n";

    (void)state;
    test_proxy_expect(PROXY_V1, "192.0.2.1", 1234, "2001:db8::25", 25,
                      (const uint8_t *)line, sizeof line - 1);
    test_proxy_expect(PROXY_V1, "2001:db8::1", 1234, "198.51.100.25", 25,
                      (const uint8_t *)line, sizeof line - 1);
}

/* test_v2_tcp4 - binary header: signature, 0x21, 0x11, length 12, addresses, ports */
static void test_v2_tcp4(void **state)
{
    static const uint8_t expected[] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
        0x21,                   /* version 2, command PROXY */
        0x11,                   /* AF_INET, STREAM */
        0x00, 0x0c,             /* 12 address bytes follow */
        192, 0, 2, 1,           /* source address */
        198, 51, 100, 25,       /* destination address */
        0xdc, 0x04,             /* source port 56324 */
        0x00, 0x19,             /* destination port 25 */
    };

    (void)state;
    test_proxy_expect(PROXY_V2, "192.0.2.1", 56324, "198.51.100.25", 25,
                      expected, sizeof expected);
}

/* test_v2_tcp6 - binary header: family 0x21, length 36 */
static void test_v2_tcp6(void **state)
{
    static const uint8_t expected[] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
        0x21,                   /* version 2, command PROXY */
        0x21,                   /* AF_INET6, STREAM */
        0x00, 0x24,             /* 36 address bytes follow */
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25,
        0x9c, 0x40,             /* source port 40000 */
        0x00, 0x19,             /* destination port 25 */
    };

    (void)state;
    test_proxy_expect(PROXY_V2, "2001:db8::1", 40000, "2001:db8::25", 25,
                      expected, sizeof expected);
}

/* test_v2_unspec - differing families: AF_UNSPEC, no address block */
static void test_v2_unspec(void **state)
{
    static const uint8_t expected[] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
        0x21, 0x00, 0x00, 0x00,
    };

    (void)state;
    test_proxy_expect(PROXY_V2, "2001:db8::1", 40000, "198.51.100.25", 25,
                      expected, sizeof expected);
    test_proxy_expect(PROXY_V2, "192.0.2.1", 40000, "2001:db8::25", 25,
                      expected, sizeof expected);
}

/* test_none - PROXY_NONE writes nothing, even into a zero-sized buffer */
static void test_none(void **state)
{
    struct addr s = test_proxy_addr("192.0.2.1"), d = test_proxy_addr("198.51.100.25");
    uint8_t buf[4] = {TEST_CANARY, TEST_CANARY, TEST_CANARY, TEST_CANARY};
    static const uint8_t untouched[4] = {TEST_CANARY, TEST_CANARY, TEST_CANARY, TEST_CANARY};

    (void)state;
    assert_int_equal(proxy_header_write(PROXY_NONE, &s, 1, &d, 25, buf, sizeof buf), 0);
    assert_int_equal(proxy_header_write(PROXY_NONE, &s, 1, &d, 25, buf, 0), 0);
    assert_memory_equal(buf, untouched, sizeof buf);
}

/* test_small_buffers - every size below the header's length is -1 */
static void test_small_buffers(void **state)
{
    struct addr s = test_proxy_addr("2001:db8::1"), d = test_proxy_addr("2001:db8::25");
    uint8_t buf[PROXY_HEADER_MAX];
    size_t size;

    (void)state;
    for (size = 0; size < 52; size++)
        assert_int_equal(proxy_header_write(PROXY_V2, &s, 1, &d, 25, buf, size), -1);
    assert_int_equal(proxy_header_write(PROXY_V2, &s, 1, &d, 25, buf, sizeof buf), 52);
    for (size = 0; size < 42; size++)
        assert_int_equal(proxy_header_write(PROXY_V1, &s, 1, &d, 25, buf, size), -1);
    assert_int_equal(proxy_header_write(PROXY_V1, &s, 1, &d, 25, buf, sizeof buf), 42);
}

/* test_bad_version - a value outside the enum is refused */
static void test_bad_version(void **state)
{
    struct addr s = test_proxy_addr("192.0.2.1"), d = test_proxy_addr("198.51.100.25");
    uint8_t buf[PROXY_HEADER_MAX];

    (void)state;
    assert_int_equal(proxy_header_write((enum proxy_version)7, &s, 1, &d, 25, buf, sizeof buf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp4_mapped),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_longest),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v2_tcp4),
        cmocka_unit_test(test_v2_tcp6),
        cmocka_unit_test(test_v2_unspec),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_small_buffers),
        cmocka_unit_test(test_bad_version),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
