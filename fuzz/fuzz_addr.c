/*
 * fuzz_addr - libFuzzer target for the text parsers of src/addr.c.
 *
 * The input, as a NUL-terminated string, goes to addr_parse(),
 * hostport_parse() and cidr_parse(). Whatever parses must survive a round
 * trip: formatting and parsing again gives an equal address (equal hash),
 * the same port or prefix, a network that contains its own address, and a
 * DNSBL name of the length the family implies that fails cleanly in a buffer
 * one byte short. Any violation aborts.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_addr_dnsbl - the DNSBL name has the expected length and needs all of it */
static void fuzz_addr_dnsbl(const struct addr *a)
{
    char name[128];
    int n = addr_dnsbl_name(a, "bl.test", name, sizeof name);

    assert(n > 0 && (size_t)n == strlen(name));
    if (a->family == AF_INET6)
        assert(n == 63 + 8); /* 32 nibbles, 31 dots, ".bl.test" */
    else
        assert(n >= 7 + 8 && n <= 15 + 8); /* "0.0.0.0" .. "255.255.255.255" */
    assert(strcmp(name + n - 8, ".bl.test") == 0);
    assert(addr_dnsbl_name(a, "bl.test", name, (size_t)n) == -1);
}

/* fuzz_addr_round_trip - format, re-parse, compare; sockaddr round trip too */
static void fuzz_addr_round_trip(const struct addr *a)
{
    char text[ADDR_TEXT_MAX];
    struct sockaddr_storage ss;
    struct addr back;
    uint16_t port = 0;

    assert(a->family == AF_INET || a->family == AF_INET6);
    addr_format(a, text, sizeof text);
    assert(addr_parse(text, &back) == 0);
    assert(addr_equal(a, &back));
    assert(addr_hash(a) == addr_hash(&back));
    assert(addr_to_sockaddr(a, 25, &ss) > 0);
    assert(addr_from_sockaddr((const struct sockaddr *)&ss, &back, &port) == 0);
    assert(addr_equal(a, &back) && port == 25);
    fuzz_addr_dnsbl(a);
}

/* fuzz_addr_hostport - a parsed host:port formats back to an equal one */
static void fuzz_addr_hostport(const char *input)
{
    char host[ADDR_TEXT_MAX], text[ADDR_TEXT_MAX + 16];
    struct addr a, back;
    uint16_t port, port_back;

    if (hostport_parse(input, &a, &port) < 0)
        return;
    assert(port >= 1);
    fuzz_addr_round_trip(&a);
    addr_format(&a, host, sizeof host);
    snprintf(text, sizeof text, a.family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
    assert(hostport_parse(text, &back, &port_back) == 0);
    assert(addr_equal(&a, &back) && port == port_back);
}

/* fuzz_addr_cidr - a parsed network contains itself and re-parses equal */
static void fuzz_addr_cidr(const char *input)
{
    char host[ADDR_TEXT_MAX], text[ADDR_TEXT_MAX + 8];
    struct cidr c, back;

    if (cidr_parse(input, &c) < 0)
        return;
    assert(c.prefix <= (c.net.family == AF_INET ? 32 : 128));
    fuzz_addr_round_trip(&c.net);
    assert(cidr_contains(&c, &c.net));
    addr_format(&c.net, host, sizeof host);
    snprintf(text, sizeof text, "%s/%u", host, c.prefix);
    assert(cidr_parse(text, &back) == 0);
    assert(addr_equal(&c.net, &back.net) && c.prefix == back.prefix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *input = malloc(size + 1);
    struct addr a;

    if (input == NULL)
        return 0;
    memcpy(input, data, size);
    input[size] = '\0';
    if (addr_parse(input, &a) == 0)
        fuzz_addr_round_trip(&a);
    fuzz_addr_hostport(input);
    fuzz_addr_cidr(input);
    free(input);
    return 0;
}
