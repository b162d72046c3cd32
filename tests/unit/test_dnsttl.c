/*
 * test_dnsttl - negative TTLs read from raw DNS messages (src/dnsttl.c):
 * a real rbldnsd NXDOMAIN, the lesser of the SOA's TTL and MINIMUM, the
 * authority section only, and every malformed or cut message refused;
 * and the bounds put on a TTL before a verdict is cached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dnsttl.h"

/* rbldnsd's NXDOMAIN for 1.0.0.127.neg.test A, zone line
 * "$SOA 5 ns.neg.test hostmaster.neg.test 0 600 300 86400 50": the
 * authority SOA has TTL 50 and MINIMUM 50, its names compressed. */
static const unsigned char rbldnsd_nxdomain[] = {
    0x12, 0x34, 0x84, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x31,
    0x01, 0x30, 0x01, 0x30, 0x03, 0x31, 0x32, 0x37, 0x03, 0x6e, 0x65, 0x67, 0x04, 0x74,
    0x65, 0x73, 0x74, 0x00, 0x00, 0x01, 0x00, 0x01, 0xc0, 0x16, 0x00, 0x06, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x32, 0x00, 0x26, 0x02, 0x6e, 0x73, 0xc0, 0x16, 0x0a, 0x68, 0x6f,
    0x73, 0x74, 0x6d, 0x61, 0x73, 0x74, 0x65, 0x72, 0xc0, 0x16, 0x6b, 0x11, 0x6a, 0x96,
    0x00, 0x00, 0x02, 0x58, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x01, 0x51, 0x80, 0x00, 0x00,
    0x00, 0x32,
};

/* Offsets in a message made by start(m, 1, ...): the question ends (and
 * the first record starts) at RR; that record's RDLENGTH is at RDLENGTH. */
#define RR 35           /* 12 header + 19 name + 4 type and class */
#define RDLENGTH (RR + 2 + 8)  /* after its owner (a pointer), TYPE, CLASS, TTL */

/* A message under construction. */
struct msg {
    unsigned char b[1024];
    size_t len;
};

static void put(struct msg *m, const void *p, size_t n)
{
    assert_true(m->len + n <= sizeof m->b);
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void put16(struct msg *m, uint32_t v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(m, b, 2);
}

static void put32(struct msg *m, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(m, b, 4);
}

/* header with the counts; the question 1.0.0.127.bl.test A IN at 12 */
static void start(struct msg *m, uint32_t qd, uint32_t an, uint32_t ns)
{
    static const unsigned char question[] = "\0011\0010\0010\003127\002bl\004test";
    m->len = 0;
    put16(m, 0xbeef);
    put16(m, 0x8583); /* QR AA RD RA, NXDOMAIN */
    put16(m, qd);
    put16(m, an);
    put16(m, ns);
    put16(m, 0);
    for (uint32_t i = 0; i < qd; i++) {
        put(m, question, sizeof question); /* with its root label */
        put16(m, 1);
        put16(m, 1);
    }
}

/* an SOA for bl.test (a pointer into the question) with these fields */
static void soa(struct msg *m, uint32_t class, uint32_t ttl, uint32_t minimum)
{
    static const unsigned char names[] = "\002ns\300\026\012hostmaster\300\026";
    put16(m, 0xc016); /* bl.test in the question */
    put16(m, 6);
    put16(m, class);
    put32(m, ttl);
    put16(m, (uint32_t)(sizeof names - 1 + 20));
    put(m, names, sizeof names - 1);
    put32(m, 2026120301);
    put32(m, 3600);
    put32(m, 600);
    put32(m, 604800);
    put32(m, minimum);
}

/* an NS record for bl.test */
static void ns(struct msg *m)
{
    put16(m, 0xc016);
    put16(m, 2);
    put16(m, 1);
    put32(m, 3600);
    put16(m, 5);
    put(m, "\002ns\300\026", 5);
}

static void test_rbldnsd_answer(void **state)
{
    uint32_t ttl = 0;
    (void)state;
    assert_true(dnsttl_negative(rbldnsd_nxdomain, sizeof rbldnsd_nxdomain, &ttl));
    assert_int_equal(ttl, 50);
}

static void test_lesser_of_ttl_and_minimum(void **state)
{
    struct msg m;
    uint32_t ttl = 0;
    (void)state;
    start(&m, 1, 0, 1);
    soa(&m, 1, 3600, 300);              /* the zone's MINIMUM */
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 300);
    start(&m, 1, 0, 1);
    soa(&m, 1, 42, 300);                /* a cache counting the TTL down */
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 42);
    start(&m, 1, 0, 1);
    soa(&m, 1, 0x80000000u | 5000, 300); /* top bit: 0 (RFC 2181) */
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 0);
    start(&m, 1, 0, 1);
    soa(&m, 1, 0x7fffffffu, 0xffffffffu);
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 0x7fffffffu);
}

static void test_authority_section_only(void **state)
{
    struct msg m;
    uint32_t ttl = 77;
    (void)state;
    start(&m, 1, 1, 0);                 /* an SOA in the answer section */
    soa(&m, 1, 300, 300);
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 77);          /* untouched */
    start(&m, 1, 1, 1);                 /* skipped there, read here */
    soa(&m, 1, 10, 10);
    soa(&m, 1, 900, 900);
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 900);
    start(&m, 1, 0, 0);                 /* no authority: none */
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    start(&m, 1, 0, 1);                 /* an NS only */
    ns(&m);
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    start(&m, 1, 0, 2);                 /* NS, then the SOA */
    ns(&m);
    soa(&m, 1, 120, 600);
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 120);
    start(&m, 1, 0, 1);                 /* class CH: not a zone of ours */
    soa(&m, 3, 120, 600);
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    start(&m, 1, 0, 2);                 /* two SOAs: the least */
    soa(&m, 1, 800, 700);
    soa(&m, 1, 900, 650);
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 650);
    start(&m, 0, 0, 1);                 /* no question at all */
    put(&m, "\002bl\004test", 9);
    put16(&m, 6);
    put16(&m, 1);
    put32(&m, 30);
    put16(&m, 22);
    put(&m, "\0\0", 2);                 /* MNAME and RNAME the root */
    for (int i = 0; i < 5; i++)
        put32(&m, 30);
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 30);
}

/* Every cut of a well-formed message is refused, and never read past. */
static void test_every_cut(void **state)
{
    unsigned char copy[sizeof rbldnsd_nxdomain];
    uint32_t ttl;
    (void)state;
    for (size_t len = 0; len < sizeof rbldnsd_nxdomain; len++) {
        memcpy(copy, rbldnsd_nxdomain, len); /* ASan sees reads past len */
        unsigned char *exact = test_malloc(len ? len : 1);
        memcpy(exact, copy, len);
        if (dnsttl_negative(exact, len, &ttl))
            fail_msg("accepted the first %zu bytes", len);
        test_free(exact);
    }
    assert_false(dnsttl_negative(NULL, 0, &ttl));
    assert_false(dnsttl_negative(NULL, 12, &ttl));
}

static void test_malformed(void **state)
{
    struct msg m;
    uint32_t ttl;
    (void)state;
    /* RDLENGTH one short, one long, and past the end */
    for (int delta = -1; delta <= 1; delta += 2) {
        start(&m, 1, 0, 1);
        soa(&m, 1, 300, 300);
        uint32_t rdlength = (uint32_t)(m.b[RDLENGTH] << 8 | m.b[RDLENGTH + 1]);
        rdlength = (uint32_t)((int)rdlength + delta);
        m.b[RDLENGTH] = (unsigned char)(rdlength >> 8);
        m.b[RDLENGTH + 1] = (unsigned char)rdlength;
        if (delta > 0)
            put(&m, "\0", 1); /* the byte the longer RDATA would cover */
        if (dnsttl_negative(m.b, m.len, &ttl))
            fail_msg("accepted RDLENGTH %+d", delta);
    }
    start(&m, 1, 0, 1);
    soa(&m, 1, 300, 300);
    m.b[RDLENGTH] = 0xff;               /* RDLENGTH 0xff.. past the end */
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    /* a label of the reserved kinds 0x40 and 0x80 in the question */
    for (unsigned kind = 0x40; kind <= 0x80; kind += 0x40) {
        start(&m, 1, 0, 1);
        soa(&m, 1, 300, 300);
        m.b[12] = (unsigned char)(kind | 1);
        assert_false(dnsttl_negative(m.b, m.len, &ttl));
    }
    /* a compression pointer cut after its first byte */
    start(&m, 1, 0, 1);
    put(&m, "\300", 1);
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    /* a pointer to itself is skipped, never followed */
    start(&m, 1, 0, 1);
    soa(&m, 1, 200, 300);
    m.b[RR] = 0xc0;
    m.b[RR + 1] = RR;
    assert_true(dnsttl_negative(m.b, m.len, &ttl));
    assert_int_equal(ttl, 200);
    /* counts far beyond the bytes */
    start(&m, 1, 0, 1);
    soa(&m, 1, 300, 300);
    m.b[4] = m.b[5] = 0xff;
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    start(&m, 1, 0, 1);
    soa(&m, 1, 300, 300);
    m.b[8] = m.b[9] = 0xff;
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
    /* a good SOA, then a record cut short: the whole message is refused */
    start(&m, 1, 0, 2);
    soa(&m, 1, 300, 300);
    put16(&m, 0xc016);
    assert_false(dnsttl_negative(m.b, m.len, &ttl));
}

static void test_name_length(void **state)
{
    struct msg m;
    uint32_t ttl;
    (void)state;
    /* a question name of 4 x 63-byte labels = 256 bytes with the root:
     * over 255 */
    unsigned char label[64];
    label[0] = 63;
    memset(label + 1, 'a', 63);
    for (int labels = 3; labels <= 4; labels++) {
        m.len = 0;
        put16(&m, 1);
        put16(&m, 0x8183);
        put16(&m, 1);
        put16(&m, 0);
        put16(&m, 1);
        put16(&m, 0);
        for (int i = 0; i < labels; i++)
            put(&m, label, sizeof label);
        put(&m, "\0", 1);
        put16(&m, 1);
        put16(&m, 1);
        soa(&m, 1, 90, 90); /* its owner points at offset 22: any name */
        bool ok = dnsttl_negative(m.b, m.len, &ttl);
        if (labels == 3) {
            assert_true(ok);          /* 193 bytes */
            assert_int_equal(ttl, 90);
        } else {
            assert_false(ok);
        }
    }
}

static void test_bound(void **state)
{
    (void)state;
    assert_true(dnsttl_floor(3600) == DNSTTL_FLOOR);
    assert_true(dnsttl_floor(5) == 5);
    /* [60 s, cap] */
    assert_true(dnsttl_bound(0, 3600) == 60);
    assert_true(dnsttl_bound(10, 3600) == 60);
    assert_true(dnsttl_bound(59, 3600) == 60);
    assert_true(dnsttl_bound(61, 3600) == 61);
    assert_true(dnsttl_bound(300, 3600) == 300);
    assert_true(dnsttl_bound(3600, 3600) == 3600);
    assert_true(dnsttl_bound(172800, 3600) == 3600);
    assert_true(dnsttl_bound(UINT32_MAX, 3600) == 3600);
    /* a cap below 60 s is the lifetime whatever the list says */
    assert_true(dnsttl_bound(0, 5) == 5);
    assert_true(dnsttl_bound(2, 5) == 5);
    assert_true(dnsttl_bound(86400, 5) == 5);
    assert_true(dnsttl_bound(60, 60) == 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rbldnsd_answer),
        cmocka_unit_test(test_lesser_of_ttl_and_minimum),
        cmocka_unit_test(test_authority_section_only),
        cmocka_unit_test(test_every_cut),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
