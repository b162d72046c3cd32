/*
 * test_addr - unit tests for src/addr.c: address, host:port and CIDR
 * parsing (tables of good and bad inputs), IPv4-mapped handling, sockaddr
 * and text round trips, hashing, CIDR sets and DNSBL query names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

/* test_addr_make - an address from text, failing the test if it does not parse */
static struct addr test_addr_make(const char *text)
{
    struct addr a;

    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

/* test_addr_text - the formatted text of a into buf */
static const char *test_addr_text(const struct addr *a, char *buf)
{
    addr_format(a, buf, ADDR_TEXT_MAX);
    return buf;
}

/* test_describe - "input => family text[/number]" or "input => error", so a
 * failing table row names itself in cmocka's string comparison */
static void test_describe(char *out, size_t size, const char *input, int rc,
                          int family, const char *text, const char *sep, unsigned number)
{
    if (rc != 0)
        snprintf(out, size, "%s => error", input);
    else if (sep == NULL)
        snprintf(out, size, "%s => %d %s", input, family, text);
    else
        snprintf(out, size, "%s => %d %s%s%u", input, family, text, sep, number);
}

struct parse_case {
    const char *text;
    int family;           /* 0: must be rejected */
    const char *expected; /* addr_format() of the result */
};

static const struct parse_case parse_cases[] = {
    {"1.2.3.4", AF_INET, "1.2.3.4"},
    {"0.0.0.0", AF_INET, "0.0.0.0"},
    {"255.255.255.255", AF_INET, "255.255.255.255"},
    {"2001:db8::1", AF_INET6, "2001:db8::1"},
    {"2001:DB8:0:0:0:0:0:1", AF_INET6, "2001:db8::1"},
    {"::", AF_INET6, "::"},
    {"::1", AF_INET6, "::1"},
    {"::ffff:1.2.3.4", AF_INET, "1.2.3.4"},
    {"::FFFF:127.0.0.2", AF_INET, "127.0.0.2"},
    {"::ffff:0102:0304", AF_INET, "1.2.3.4"},
    {"::1.2.3.4", AF_INET6, "::1.2.3.4"},
    {"64:ff9b::1.2.3.4", AF_INET6, "64:ff9b::102:304"},
    {"", 0, NULL},
    {" 1.2.3.4", 0, NULL},
    {"1.2.3.4 ", 0, NULL},
    {"1.2.3", 0, NULL},
    {"1.2.3.4.5", 0, NULL},
    {"256.1.1.1", 0, NULL},
    {"1.2.3.04", 0, NULL},
    {"localhost", 0, NULL},
    {"mx.example.com", 0, NULL},
    {"fe80::1%eth0", 0, NULL},
    {"2001:db8::1::2", 0, NULL},
    {"[2001:db8::1]", 0, NULL},
    {"1.2.3.4/32", 0, NULL},
    {"1.2.3.4:25", 0, NULL},
    {"12345::", 0, NULL},
};

/* test_addr_parse_table - every case parses to its family and text, or fails */
static void test_addr_parse_table(void **state)
{
    char buf[ADDR_TEXT_MAX], want[128], got[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct addr a = {0};
        int rc = addr_parse(c->text, &a);

        test_describe(want, sizeof want, c->text, c->family ? 0 : -1, c->family,
                      c->expected, NULL, 0);
        test_describe(got, sizeof got, c->text, rc, a.family, test_addr_text(&a, buf), NULL, 0);
        assert_string_equal(got, want);
        assert_in_set(rc, ((uintmax_t[]){0, (uintmax_t)-1}), 2);
    }
}

/* test_addr_parse_bytes - the bytes land in network order, mapped ones in the first 4 */
static void test_addr_parse_bytes(void **state)
{
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 0x01};
    struct addr a;

    (void)state;
    a = test_addr_make("10.20.30.40");
    assert_memory_equal(a.bytes, ((uint8_t[]){10, 20, 30, 40}), 4);
    a = test_addr_make("::ffff:10.20.30.40");
    assert_int_equal(a.family, AF_INET);
    assert_memory_equal(a.bytes, ((uint8_t[]){10, 20, 30, 40}), 4);
    a = test_addr_make("2001:db8::1");
    assert_memory_equal(a.bytes, v6, 16);
}

/* test_addr_sockaddr_v4 - sockaddr_in round trip with the port */
static void test_addr_sockaddr_v4(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_in sin;
    struct addr a = test_addr_make("192.0.2.7"), back;
    uint16_t port = 0;

    (void)state;
    assert_int_equal(addr_to_sockaddr(&a, 2525, &ss), sizeof(struct sockaddr_in));
    memcpy(&sin, &ss, sizeof sin);
    assert_int_equal(sin.sin_family, AF_INET);
    assert_int_equal(ntohs(sin.sin_port), 2525);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), 0xc0000207u);
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &back, &port), 0);
    assert_true(addr_equal(&a, &back));
    assert_int_equal(port, 2525);
}

/* test_addr_sockaddr_v6 - sockaddr_in6 round trip; a NULL port is allowed */
static void test_addr_sockaddr_v6(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 sin6;
    struct addr a = test_addr_make("2001:db8::25"), back;

    (void)state;
    assert_int_equal(addr_to_sockaddr(&a, 25, &ss), sizeof(struct sockaddr_in6));
    memcpy(&sin6, &ss, sizeof sin6);
    assert_int_equal(sin6.sin6_family, AF_INET6);
    assert_int_equal(ntohs(sin6.sin6_port), 25);
    assert_memory_equal(&sin6.sin6_addr, a.bytes, 16);
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &back, NULL), 0);
    assert_true(addr_equal(&a, &back));
}

/* test_addr_sockaddr_mapped - a v4-mapped sockaddr_in6 (dual-stack accept) gives AF_INET */
static void test_addr_sockaddr_mapped(void **state)
{
    struct sockaddr_in6 sin6;
    struct addr a;
    uint16_t port = 0;
    char buf[ADDR_TEXT_MAX];

    (void)state;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.9", &sin6.sin6_addr), 1);
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&sin6, &a, &port), 0);
    assert_int_equal(a.family, AF_INET);
    assert_string_equal(test_addr_text(&a, buf), "198.51.100.9");
    assert_int_equal(port, 40000);
}

/* test_addr_sockaddr_bad_family - AF_UNIX is refused, the output left alone */
static void test_addr_sockaddr_bad_family(void **state)
{
    struct sockaddr_storage ss;
    struct addr a = test_addr_make("1.2.3.4"), before = a;
    struct addr odd = {.family = AF_UNIX};

    (void)state;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &a, NULL), -1);
    assert_true(addr_equal(&a, &before));
    assert_int_equal(addr_to_sockaddr(&odd, 25, &ss), 0);
}

/* test_addr_format_round_trip - format then parse gives the same address */
static void test_addr_format_round_trip(void **state)
{
    static const char *const texts[] = {
        "1.2.3.4", "0.0.0.0", "2001:db8::1", "::", "fe80::1:2:3:4",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::1.2.3.4",
    };
    char buf[ADDR_TEXT_MAX];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct addr a = test_addr_make(texts[i]), back;

        addr_format(&a, buf, sizeof buf);
        assert_int_equal(addr_parse(buf, &back), 0);
        assert_true(addr_equal(&a, &back));
    }
}

/* test_addr_format_edge - unknown family and a too-small buffer */
static void test_addr_format_edge(void **state)
{
    struct addr odd = {.family = AF_UNIX};
    struct addr a = test_addr_make("2001:db8::1");
    char buf[ADDR_TEXT_MAX];
    char small[4] = "xyz";

    (void)state;
    assert_string_equal(test_addr_text(&odd, buf), "?");
    addr_format(&a, small, sizeof small);
    assert_string_equal(small, "");
}

/* test_addr_equal_hash - equal addresses hash alike; families and bytes separate */
static void test_addr_equal_hash(void **state)
{
    struct addr a = test_addr_make("10.1.2.3");
    struct addr b = test_addr_make("::ffff:10.1.2.3");
    struct addr c = test_addr_make("10.1.2.4");
    struct addr d = test_addr_make("::a01:203");
    struct addr e = test_addr_make("2001:db8::1");
    struct addr f = test_addr_make("2001:0db8:0::0:1");
    struct addr g;

    (void)state;
    assert_true(addr_equal(&a, &b));
    assert_int_equal(addr_hash(&a), addr_hash(&b));
    assert_true(addr_equal(&e, &f));
    assert_int_equal(addr_hash(&e), addr_hash(&f));
    assert_false(addr_equal(&a, &c));
    assert_int_not_equal(addr_hash(&a), addr_hash(&c));
    assert_false(addr_equal(&a, &d)); /* same low bytes, other family */
    assert_int_not_equal(addr_hash(&a), addr_hash(&d));
    g = d;
    g.family = AF_UNIX; /* all 16 bytes alike, only the family differs */
    assert_false(addr_equal(&d, &g));
    assert_int_not_equal(addr_hash(&d), addr_hash(&g));
}

/* test_addr_hash_ignores_unused - bytes past an IPv4 address do not count */
static void test_addr_hash_ignores_unused(void **state)
{
    struct addr a = test_addr_make("10.1.2.3");
    struct addr b = a;

    (void)state;
    b.bytes[9] = 0x77;
    assert_true(addr_equal(&a, &b));
    assert_int_equal(addr_hash(&a), addr_hash(&b));
}

/* test_addr_hash_spread - 4096 neighbouring addresses fill 256 buckets evenly */
static void test_addr_hash_spread(void **state)
{
    unsigned buckets[256] = {0};
    struct addr a = test_addr_make("10.0.0.0");
    unsigned i, max = 0;

    (void)state;
    for (i = 0; i < 4096; i++) {
        a.bytes[2] = (uint8_t)(i >> 8);
        a.bytes[3] = (uint8_t)i;
        buckets[addr_hash(&a) & 0xff]++;
    }
    for (i = 0; i < 256; i++) {
        if (buckets[i] > max)
            max = buckets[i];
    }
    assert_in_range(max, 16, 40); /* mean 16 */
}

struct hostport_case {
    const char *text;
    int family; /* 0: must be rejected */
    const char *expected;
    uint16_t port;
};

static const struct hostport_case hostport_cases[] = {
    {"1.2.3.4:25", AF_INET, "1.2.3.4", 25},
    {"127.0.0.1:65535", AF_INET, "127.0.0.1", 65535},
    {"0.0.0.0:1", AF_INET, "0.0.0.0", 1},
    {"[2001:db8::1]:25", AF_INET6, "2001:db8::1", 25},
    {"[::]:2525", AF_INET6, "::", 2525},
    {"[::ffff:1.2.3.4]:25", AF_INET, "1.2.3.4", 25},
    {"1.2.3.4:00025", AF_INET, "1.2.3.4", 25},
    {"1.2.3.4", 0, NULL, 0},
    {"1.2.3.4:", 0, NULL, 0},
    {"1.2.3.4:0", 0, NULL, 0},
    {"1.2.3.4:65536", 0, NULL, 0},
    {"1.2.3.4:100000", 0, NULL, 0},
    {"1.2.3.4:+25", 0, NULL, 0},
    {"1.2.3.4:-25", 0, NULL, 0},
    {"1.2.3.4:25x", 0, NULL, 0},
    {"1.2.3.4:25 ", 0, NULL, 0},
    {"1.2.3.4: 25", 0, NULL, 0},
    {"1.2.3.4:25:26", 0, NULL, 0},
    {":25", 0, NULL, 0},
    {"2001:db8::1:25", 0, NULL, 0},
    {"::1:25", 0, NULL, 0},
    {"[2001:db8::1]", 0, NULL, 0},
    {"[2001:db8::1]:", 0, NULL, 0},
    {"[2001:db8::1]25", 0, NULL, 0},
    {"[2001:db8::1:25", 0, NULL, 0},
    {"[1.2.3.4]:25", 0, NULL, 0},
    {"[]:25", 0, NULL, 0},
    {"[fe80::1%eth0]:25", 0, NULL, 0},
    {"mx.example.com:25", 0, NULL, 0},
    {"[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa]:25", 0, NULL, 0},
    {"[000000:1111:2222:3333:4444:5555:66.255.255.255]:25", 0, NULL, 0}, /* 46 characters */
    {"", 0, NULL, 0},
};

/* test_hostport_table - every case parses to its address and port, or fails */
static void test_hostport_table(void **state)
{
    char buf[ADDR_TEXT_MAX], want[128], got[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof hostport_cases / sizeof hostport_cases[0]; i++) {
        const struct hostport_case *c = &hostport_cases[i];
        struct addr a = {0};
        uint16_t port = 0;
        int rc = hostport_parse(c->text, &a, &port);

        test_describe(want, sizeof want, c->text, c->family ? 0 : -1, c->family,
                      c->expected, " port ", c->port);
        test_describe(got, sizeof got, c->text, rc, a.family, test_addr_text(&a, buf),
                      " port ", port);
        assert_string_equal(got, want);
        assert_in_set(rc, ((uintmax_t[]){0, (uintmax_t)-1}), 2);
    }
}

struct cidr_case {
    const char *text;
    int family; /* 0: must be rejected */
    const char *net;
    unsigned prefix;
};

static const struct cidr_case cidr_cases[] = {
    {"10.0.0.0/8", AF_INET, "10.0.0.0", 8},
    {"10.1.2.3/8", AF_INET, "10.0.0.0", 8},
    {"192.168.1.255/23", AF_INET, "192.168.0.0", 23},
    {"1.2.3.4/0", AF_INET, "0.0.0.0", 0},
    {"1.2.3.4/32", AF_INET, "1.2.3.4", 32},
    {"1.2.3.4/31", AF_INET, "1.2.3.4", 31},
    {"1.2.3.5/31", AF_INET, "1.2.3.4", 31},
    {"1.2.3.4", AF_INET, "1.2.3.4", 32},
    {"10.0.0.0/08", AF_INET, "10.0.0.0", 8},
    {"2001:db8::/32", AF_INET6, "2001:db8::", 32},
    {"2001:db8:ffff::1/33", AF_INET6, "2001:db8:8000::", 33},
    {"2001:db8::1", AF_INET6, "2001:db8::1", 128},
    {"2001:db8::1/128", AF_INET6, "2001:db8::1", 128},
    {"ffff::/0", AF_INET6, "::", 0},
    {"::/0", AF_INET6, "::", 0},
    {"::ffff:10.0.0.0/104", AF_INET, "10.0.0.0", 8},
    {"::ffff:10.9.8.7/120", AF_INET, "10.9.8.0", 24},
    {"::ffff:1.2.3.4", AF_INET, "1.2.3.4", 32},
    {"::ffff:0.0.0.0/96", AF_INET, "0.0.0.0", 0},
    {"::ffff:10.0.0.0/95", 0, NULL, 0},
    {"1.2.3.4/33", 0, NULL, 0},
    {"2001:db8::/129", 0, NULL, 0},
    {"1.2.3.4/", 0, NULL, 0},
    {"/8", 0, NULL, 0},
    {"1.2.3.4/-1", 0, NULL, 0},
    {"1.2.3.4/+8", 0, NULL, 0},
    {"1.2.3.4/8 ", 0, NULL, 0},
    {"1.2.3.4/0008", 0, NULL, 0},
    {"1.2.3.4/8/8", 0, NULL, 0},
    {"10/8", 0, NULL, 0},
    {"10.0.0/24", 0, NULL, 0},
    {"example.com/24", 0, NULL, 0},
    {"fe80::%eth0/64", 0, NULL, 0},
    {"000000:1111:2222:3333:4444:5555:66.255.255.255/64", 0, NULL, 0}, /* 46 characters */
    {"", 0, NULL, 0},
};

/* test_cidr_table - every case parses to its network and prefix, or fails */
static void test_cidr_table(void **state)
{
    char buf[ADDR_TEXT_MAX], want[128], got[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cidr_cases / sizeof cidr_cases[0]; i++) {
        const struct cidr_case *c = &cidr_cases[i];
        struct cidr net = {{0}, 0};
        int rc = cidr_parse(c->text, &net);

        test_describe(want, sizeof want, c->text, c->family ? 0 : -1, c->family,
                      c->net, "/", c->prefix);
        test_describe(got, sizeof got, c->text, rc, net.net.family,
                      test_addr_text(&net.net, buf), "/", net.prefix);
        assert_string_equal(got, want);
        assert_in_set(rc, ((uintmax_t[]){0, (uintmax_t)-1}), 2);
    }
}

/* test_cidr_contains_if - assert whether network text holds address text */
static void test_cidr_contains_if(const char *network, const char *address, bool expected)
{
    struct cidr c;
    struct addr a = test_addr_make(address);

    char want[128], got[128];

    assert_int_equal(cidr_parse(network, &c), 0);
    snprintf(want, sizeof want, "%s in %s: %d", address, network, expected);
    snprintf(got, sizeof got, "%s in %s: %d", address, network, cidr_contains(&c, &a));
    assert_string_equal(got, want);
}

/* test_cidr_contains - boundaries, /0, /32, /128 and family mismatch */
static void test_cidr_contains(void **state)
{
    (void)state;
    test_cidr_contains_if("10.0.0.0/8", "10.0.0.0", true);
    test_cidr_contains_if("10.0.0.0/8", "10.255.255.255", true);
    test_cidr_contains_if("10.0.0.0/8", "11.0.0.0", false);
    test_cidr_contains_if("10.0.0.0/8", "9.255.255.255", false);
    test_cidr_contains_if("192.168.0.0/23", "192.168.1.200", true);
    test_cidr_contains_if("192.168.0.0/23", "192.168.2.0", false);
    test_cidr_contains_if("0.0.0.0/0", "203.0.113.9", true);
    test_cidr_contains_if("0.0.0.0/0", "2001:db8::1", false);
    test_cidr_contains_if("1.2.3.4/32", "1.2.3.4", true);
    test_cidr_contains_if("1.2.3.4/32", "1.2.3.5", false);
    test_cidr_contains_if("1.2.3.4", "::ffff:1.2.3.4", true);
    test_cidr_contains_if("::ffff:10.0.0.0/104", "10.200.0.1", true);
    test_cidr_contains_if("2001:db8::/32", "2001:db8:ffff::1", true);
    test_cidr_contains_if("2001:db8::/32", "2001:db9::", false);
    test_cidr_contains_if("2001:db8::/33", "2001:db8:7fff::", true);
    test_cidr_contains_if("2001:db8::/33", "2001:db8:8000::", false);
    test_cidr_contains_if("::/0", "2001:db8::1", true);
    test_cidr_contains_if("::/0", "1.2.3.4", false);
    test_cidr_contains_if("2001:db8::1/128", "2001:db8::1", true);
    test_cidr_contains_if("2001:db8::1/128", "2001:db8::", false);
    test_cidr_contains_if("::/96", "1.2.3.4", false);
}

/* test_cidr_overlaps_if - assert whether networks a and b share an address,
 * both ways round */
static void test_cidr_overlaps_if(const char *a, const char *b, bool expected)
{
    struct cidr x, y;
    char want[128], got[128];

    assert_int_equal(cidr_parse(a, &x), 0);
    assert_int_equal(cidr_parse(b, &y), 0);
    snprintf(want, sizeof want, "%s ~ %s: %d %d", a, b, expected, expected);
    snprintf(got, sizeof got, "%s ~ %s: %d %d", a, b, cidr_overlaps(&x, &y),
             cidr_overlaps(&y, &x));
    assert_string_equal(got, want);
}

/* test_cidr_overlaps - nesting, neighbours, equal networks, families */
static void test_cidr_overlaps(void **state)
{
    struct cidr_set set = {NULL, 0};
    struct cidr c;

    (void)state;
    test_cidr_overlaps_if("2001:db8::/64", "2001:db8::5", true);
    test_cidr_overlaps_if("2001:db8::/64", "2001:db8:0:1::5", false);
    test_cidr_overlaps_if("2001:db8::/48", "2001:db8:0:ffff::/64", true);
    test_cidr_overlaps_if("2001:db8::/64", "2001:db8::/64", true);
    test_cidr_overlaps_if("2001:db8::/64", "2001:db9::/64", false);
    test_cidr_overlaps_if("10.0.0.0/24", "10.0.0.255", true);
    test_cidr_overlaps_if("10.0.0.0/24", "10.0.1.0", false);
    test_cidr_overlaps_if("10.0.0.0/24", "10.0.0.0/8", true);
    test_cidr_overlaps_if("0.0.0.0/0", "::/0", false);
    test_cidr_overlaps_if("::ffff:10.0.0.0/120", "10.0.0.7", true);
    assert_int_equal(cidr_parse("192.0.2.7", &c), 0);
    assert_int_equal(cidr_set_add(&set, &c), 0);
    assert_int_equal(cidr_parse("192.0.2.0/24", &c), 0);
    assert_true(cidr_set_overlaps(&set, &c));
    assert_int_equal(cidr_parse("192.0.3.0/24", &c), 0);
    assert_false(cidr_set_overlaps(&set, &c));
    cidr_set_free(&set);
}

/* test_cidr_set_many - a thousand networks: all found, neighbours not, freed empty */
static void test_cidr_set_many(void **state)
{
    struct cidr_set set = {NULL, 0};
    struct cidr c;
    struct addr a;
    char text[64];
    unsigned i;

    (void)state;
    assert_false(cidr_set_contains(&set, &(struct addr){.family = AF_INET}));
    for (i = 0; i < 1000; i++) {
        snprintf(text, sizeof text, "10.%u.%u.0/24", i / 200, (i % 200) + 1);
        assert_int_equal(cidr_parse(text, &c), 0);
        assert_int_equal(cidr_set_add(&set, &c), 0);
        assert_int_equal(set.count, i + 1);
    }
    assert_int_equal(cidr_parse("2001:db8::/48", &c), 0);
    assert_int_equal(cidr_set_add(&set, &c), 0);
    for (i = 0; i < 1000; i++) {
        snprintf(text, sizeof text, "10.%u.%u.77", i / 200, (i % 200) + 1);
        a = test_addr_make(text);
        assert_true(cidr_set_contains(&set, &a));
    }
    assert_false(cidr_set_contains(&set, &(struct addr){.family = AF_INET, .bytes = {10, 0, 0, 5}}));
    assert_false(cidr_set_contains(&set, &(struct addr){.family = AF_INET, .bytes = {10, 0, 201, 5}}));
    a = test_addr_make("2001:db8:0:1::1");
    assert_true(cidr_set_contains(&set, &a));
    a = test_addr_make("2001:db8:1::1");
    assert_false(cidr_set_contains(&set, &a));
    assert_int_equal(set.items[0].net.bytes[2], 1);
    assert_int_equal(set.items[999].net.bytes[2], 200);
    assert_int_equal(set.items[1000].net.family, AF_INET6);
    cidr_set_free(&set);
    assert_null(set.items);
    assert_int_equal(set.count, 0);
}

struct dnsbl_case {
    const char *text;
    const char *zone;
    const char *expected;
};

static const struct dnsbl_case dnsbl_cases[] = {
    {"127.0.0.2", "bl.test", "2.0.0.127.bl.test"},
    {"192.0.2.99", "zen.spamhaus.org", "99.2.0.192.zen.spamhaus.org"},
    {"::ffff:1.2.3.4", "bl.test", "4.3.2.1.bl.test"},
    {"1.2.3.4", "", "4.3.2.1"},
    {"2001:db8::1", "bl.test",
     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test"},
    {"2001:DB8:ABCD:12::F", "bl6.test",
     "f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.1.0.0.d.c.b.a.8.b.d.0.1.0.0.2.bl6.test"},
};

/* test_dnsbl_table - names for IPv4, mapped input, IPv6 and an empty zone */
static void test_dnsbl_table(void **state)
{
    char buf[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof dnsbl_cases / sizeof dnsbl_cases[0]; i++) {
        const struct dnsbl_case *c = &dnsbl_cases[i];
        struct addr a = test_addr_make(c->text);
        int n = addr_dnsbl_name(&a, c->zone, buf, sizeof buf);

        assert_int_equal(n, (int)strlen(c->expected));
        assert_string_equal(buf, c->expected);
    }
}

/* test_dnsbl_v6_test_point - ::ffff:127.0.0.2 kept as AF_INET6 bytes gives nibbles */
static void test_dnsbl_v6_test_point(void **state)
{
    struct addr a = {.family = AF_INET6,
                     .bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2}};
    const char *expected =
        "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test";
    char buf[128];

    (void)state;
    assert_int_equal(addr_dnsbl_name(&a, "bl.test", buf, sizeof buf), (int)strlen(expected));
    assert_string_equal(buf, expected);
}

/* test_dnsbl_small_buffer - exactly fitting works; one byte less is -1 */
static void test_dnsbl_small_buffer(void **state)
{
    struct addr v4 = test_addr_make("127.0.0.2");
    struct addr v6 = test_addr_make("2001:db8::1");
    struct addr odd = {.family = AF_UNIX};
    char buf[128];

    (void)state;
    assert_int_equal(addr_dnsbl_name(&v4, "bl.test", buf, 18), 17);
    assert_string_equal(buf, "2.0.0.127.bl.test");
    assert_int_equal(addr_dnsbl_name(&v4, "bl.test", buf, 17), -1);
    assert_int_equal(addr_dnsbl_name(&v4, "bl.test", buf, 0), -1);
    assert_int_equal(addr_dnsbl_name(&v6, "bl.test", buf, 72), 71);
    assert_int_equal(addr_dnsbl_name(&v6, "bl.test", buf, 71), -1);
    assert_int_equal(addr_dnsbl_name(&v6, "", buf, 64), 63);
    assert_int_equal(addr_dnsbl_name(&v6, "", buf, 63), -1);
    assert_int_equal(addr_dnsbl_name(&odd, "bl.test", buf, sizeof buf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_table),
        cmocka_unit_test(test_addr_parse_bytes),
        cmocka_unit_test(test_addr_sockaddr_v4),
        cmocka_unit_test(test_addr_sockaddr_v6),
        cmocka_unit_test(test_addr_sockaddr_mapped),
        cmocka_unit_test(test_addr_sockaddr_bad_family),
        cmocka_unit_test(test_addr_format_round_trip),
        cmocka_unit_test(test_addr_format_edge),
        cmocka_unit_test(test_addr_equal_hash),
        cmocka_unit_test(test_addr_hash_ignores_unused),
        cmocka_unit_test(test_addr_hash_spread),
        cmocka_unit_test(test_hostport_table),
        cmocka_unit_test(test_cidr_table),
        cmocka_unit_test(test_cidr_contains),
        cmocka_unit_test(test_cidr_overlaps),
        cmocka_unit_test(test_cidr_set_many),
        cmocka_unit_test(test_dnsbl_table),
        cmocka_unit_test(test_dnsbl_v6_test_point),
        cmocka_unit_test(test_dnsbl_small_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
