/*
 * fuzz_dnsttl - libFuzzer target for src/dnsttl.c: the negative TTL read
 * from a DNS message that a list's server, or a spoofer, wrote (c-ares
 * hands breakwater the NXDOMAIN's bytes as they came).
 *
 * Input: the whole message. It is read from a buffer of exactly its size,
 * so that ASan sees any read past the end.
 *
 * Checks: an accepted message yields a TTL below 2^31 (a TTL with its top
 * bit set reads as 0, and the lesser of it and MINIMUM is taken); bytes
 * added after an accepted message change nothing (the reader stops where
 * the authority section ends); dnsttl_bound() of the TTL, with a cap taken
 * from the first input bytes, lies within [min(60 s, cap), cap].
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsttl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_cap - a cap of 1 s .. 30 d from the first bytes */
static double fuzz_cap(const uint8_t *data, size_t size)
{
    uint32_t v = 0;
    for (size_t i = 0; i < size && i < 4; i++)
        v = v << 8 | data[i];
    return 1 + (double)(v % (30u * 86400u));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *msg = malloc(size + 8);
    if (msg == NULL)
        return 0;
    memcpy(msg, data, size);
    uint32_t ttl = 0xdeadbeef;
    unsigned char *exact = malloc(size ? size : 1);
    if (exact == NULL) {
        free(msg);
        return 0;
    }
    memcpy(exact, data, size);
    bool ok = dnsttl_negative(exact, size, &ttl);
    free(exact);
    if (!ok) {
        assert(ttl == 0xdeadbeef); /* untouched */
        free(msg);
        return 0;
    }
    assert(ttl <= 0x7fffffffu);
    /* trailing bytes (an additional section, garbage) change nothing */
    memset(msg + size, 0xc0, 8);
    uint32_t again = 0;
    assert(dnsttl_negative(msg, size + 8, &again) && again == ttl);
    double cap = fuzz_cap(data, size);
    double kept = dnsttl_bound(ttl, cap);
    assert(kept >= dnsttl_floor(cap) && kept <= cap);
    assert(dnsttl_floor(cap) <= DNSTTL_FLOOR);
    free(msg);
    return 0;
}
