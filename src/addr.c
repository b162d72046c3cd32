/*
 * addr - IPv4/IPv6 addresses, CIDR sets and DNSBL query names.
 *
 * Contract (see addr.h for each function): pure functions over values, no
 * sockets, no globals; the only allocation is the item array of a cidr_set,
 * owned by the set and released by cidr_set_free(). Every constructor that
 * takes text or a sockaddr turns an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * into plain AF_INET, so one client has one form everywhere.
 *
 * Decisions made here that the header leaves open:
 *   - addr_parse() accepts only what inet_pton() accepts for the whole
 *     string: no spaces, no zone ids ("fe80::1%eth0"), no short IPv4 forms.
 *   - hostport_parse(): brackets hold an IPv6 literal only ("[1.2.3.4]:25" is
 *     an error, "[::ffff:1.2.3.4]:25" gives AF_INET); without brackets only
 *     IPv4. The port is 1..5 decimal digits, value 1..65535.
 *   - cidr_parse(): the prefix is 1..3 decimal digits within the family of
 *     the text. A mapped network "::ffff:a.b.c.d/n" needs n >= 96 and becomes
 *     the IPv4 network a.b.c.d/(n - 96); n < 96 is rejected, because such a
 *     network spans non-mapped addresses that never match an AF_INET client.
 *   - addr_dnsbl_name() with an empty zone writes the reversed name alone,
 *     without a trailing dot.
 *   - An address whose family is neither AF_INET nor AF_INET6 compares and
 *     hashes over all 16 bytes, formats as "?", gives no sockaddr (length 0)
 *     and no DNSBL name (-1).
 */
#include "addr.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest prefix text accepted after '/': "128". */
#define ADDR_PREFIX_DIGITS 3
/* Longest port text accepted: "65535". */
#define ADDR_PORT_DIGITS 5

static const uint8_t addr_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* addr_len - number of meaningful bytes in a->bytes */
static size_t addr_len(const struct addr *a)
{
    return a->family == AF_INET ? 4 : 16;
}

/* addr_is_mapped - true if a is an AF_INET6 address of the form ::ffff:a.b.c.d */
static bool addr_is_mapped(const struct addr *a)
{
    return a->family == AF_INET6 &&
           memcmp(a->bytes, addr_mapped_prefix, sizeof addr_mapped_prefix) == 0;
}

/* addr_unmap - turn an IPv4-mapped IPv6 address into plain IPv4 in place */
static void addr_unmap(struct addr *a)
{
    if (!addr_is_mapped(a))
        return;
    a->family = AF_INET;
    memmove(a->bytes, a->bytes + 12, 4);
    memset(a->bytes + 4, 0, 12);
}

/* addr_parse_raw - inet_pton() for either family, without unmapping */
static int addr_parse_raw(const char *text, struct addr *out)
{
    struct addr a;

    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, text, a.bytes) == 1) {
        a.family = AF_INET;
    } else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
        a.family = AF_INET6;
    } else {
        return -1;
    }
    *out = a;
    return 0;
}

int addr_parse(const char *text, struct addr *out)
{
    if (addr_parse_raw(text, out) < 0)
        return -1;
    addr_unmap(out);
    return 0;
}

/* addr_from_sockaddr - copy the address (and port) out of an AF_INET/AF_INET6 sockaddr */
int addr_from_sockaddr(const struct sockaddr *sa, struct addr *out, uint16_t *port)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct addr a;
    uint16_t p;

    memset(&a, 0, sizeof a);
    if (sa->sa_family == AF_INET) {
        memcpy(&sin, sa, sizeof sin);
        a.family = AF_INET;
        memcpy(a.bytes, &sin.sin_addr, 4);
        p = ntohs(sin.sin_port);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(&sin6, sa, sizeof sin6);
        a.family = AF_INET6;
        memcpy(a.bytes, &sin6.sin6_addr, 16);
        p = ntohs(sin6.sin6_port);
        addr_unmap(&a);
    } else {
        return -1;
    }
    *out = a;
    if (port != NULL)
        *port = p;
    return 0;
}

/* addr_to_sockaddr - build a sockaddr_in/sockaddr_in6; 0 for an unknown family */
socklen_t addr_to_sockaddr(const struct addr *a, uint16_t port, struct sockaddr_storage *ss)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    memset(ss, 0, sizeof *ss);
    if (a->family == AF_INET) {
        memset(&sin, 0, sizeof sin);
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        memcpy(&sin.sin_addr, a->bytes, 4);
        memcpy(ss, &sin, sizeof sin);
        return sizeof sin;
    }
    if (a->family == AF_INET6) {
        memset(&sin6, 0, sizeof sin6);
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        memcpy(&sin6.sin6_addr, a->bytes, 16);
        memcpy(ss, &sin6, sizeof sin6);
        return sizeof sin6;
    }
    return 0;
}

/* addr_format - inet_ntop() text; "?" for an unknown family, "" if size is too small */
void addr_format(const struct addr *a, char *buf, size_t size)
{
    if (size == 0)
        return;
    if (a->family != AF_INET && a->family != AF_INET6) {
        snprintf(buf, size, "?");
        return;
    }
    if (inet_ntop(a->family, a->bytes, buf,
                  (socklen_t)(size > ADDR_TEXT_MAX ? ADDR_TEXT_MAX : size)) == NULL)
        buf[0] = '\0';
}

bool addr_equal(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, addr_len(a)) == 0;
}

/* addr_hash - FNV-1a over family and used bytes, then a murmur3-style finaliser */
uint32_t addr_hash(const struct addr *a)
{
    uint32_t h = 2166136261u;
    size_t i;

    h = (h ^ a->family) * 16777619u;
    for (i = 0; i < addr_len(a); i++)
        h = (h ^ a->bytes[i]) * 16777619u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* addr_copy_span - copy n bytes of s into buf as a string; -1 if it does not fit */
static int addr_copy_span(const char *s, size_t n, char *buf, size_t size)
{
    if (n >= size)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

/* addr_parse_decimal - whole string of 1..max_digits digits -> value; -1 otherwise */
static long addr_parse_decimal(const char *s, size_t max_digits)
{
    long value = 0;
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (i >= max_digits || s[i] < '0' || s[i] > '9')
            return -1;
        value = value * 10 + (s[i] - '0');
    }
    return i == 0 ? -1 : value;
}

/* hostport_split - find the host text and the port text of "h:p" or "[h]:p" */
static int hostport_split(const char *text, char *host, size_t size, const char **port_text)
{
    const char *end;

    if (text[0] == '[') {
        end = strchr(text, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        *port_text = end + 2;
        return addr_copy_span(text + 1, (size_t)(end - text - 1), host, size);
    }
    end = strchr(text, ':');
    if (end == NULL || strchr(end + 1, ':') != NULL)
        return -1;
    *port_text = end + 1;
    return addr_copy_span(text, (size_t)(end - text), host, size);
}

/* hostport_parse - "a.b.c.d:port" or "[v6]:port" -> address (unmapped) and port */
int hostport_parse(const char *text, struct addr *a, uint16_t *port)
{
    char host[ADDR_TEXT_MAX];
    const char *port_text;
    struct addr parsed;
    long p;

    if (hostport_split(text, host, sizeof host, &port_text) < 0)
        return -1;
    if (addr_parse_raw(host, &parsed) < 0)
        return -1;
    if ((text[0] == '[') != (parsed.family == AF_INET6))
        return -1;
    p = addr_parse_decimal(port_text, ADDR_PORT_DIGITS);
    if (p < 1 || p > 65535)
        return -1;
    addr_unmap(&parsed);
    *a = parsed;
    *port = (uint16_t)p;
    return 0;
}

/* cidr_mask - clear every bit of bytes[0..len) after the first prefix bits */
static void cidr_mask(uint8_t *bytes, size_t len, unsigned prefix)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (prefix >= 8) {
            prefix -= 8;
        } else {
            bytes[i] &= (uint8_t)(0xff00u >> prefix);
            prefix = 0;
        }
    }
}

/* cidr_parse - "net/prefix" or a bare address -> network with host bits cleared */
int cidr_parse(const char *text, struct cidr *out)
{
    char host[ADDR_TEXT_MAX];
    const char *slash = strchr(text, '/');
    struct cidr c;
    long prefix;

    if (slash == NULL) {
        if (addr_parse_raw(text, &c.net) < 0)
            return -1;
        prefix = (long)addr_len(&c.net) * 8;
    } else {
        if (addr_copy_span(text, (size_t)(slash - text), host, sizeof host) < 0 ||
            addr_parse_raw(host, &c.net) < 0)
            return -1;
        prefix = addr_parse_decimal(slash + 1, ADDR_PREFIX_DIGITS);
        if (prefix < 0 || prefix > (long)addr_len(&c.net) * 8)
            return -1;
    }
    if (addr_is_mapped(&c.net)) {
        if (prefix < 96)
            return -1;
        addr_unmap(&c.net);
        prefix -= 96;
    }
    cidr_mask(c.net.bytes, addr_len(&c.net), (unsigned)prefix);
    c.prefix = (uint8_t)prefix;
    *out = c;
    return 0;
}

/* cidr_of - the network of a: its first prefix4 (IPv4) or prefix6 (IPv6)
 * bits, the prefix cut to the family's length */
struct cidr cidr_of(const struct addr *a, unsigned prefix4, unsigned prefix6)
{
    unsigned bits = (unsigned)addr_len(a) * 8, prefix = a->family == AF_INET ? prefix4 : prefix6;
    struct cidr c = {*a, (uint8_t)(prefix < bits ? prefix : bits)};
    cidr_mask(c.net.bytes, addr_len(a), c.prefix);
    return c;
}

/* cidr_format - "ADDR" for a whole address, else "ADDR/PREFIX" */
void cidr_format(const struct cidr *c, char *buf, size_t size)
{
    char text[ADDR_TEXT_MAX];
    addr_format(&c->net, text, sizeof text);
    if (c->prefix == addr_len(&c->net) * 8)
        snprintf(buf, size, "%s", text);
    else
        snprintf(buf, size, "%s/%u", text, (unsigned)c->prefix);
}

/* cidr_contains - true if a has c's family and agrees with c.net on c.prefix bits */
bool cidr_contains(const struct cidr *c, const struct addr *a)
{
    struct addr masked;

    if (a->family != c->net.family)
        return false;
    masked = *a;
    cidr_mask(masked.bytes, addr_len(&masked), c->prefix);
    return memcmp(masked.bytes, c->net.bytes, addr_len(&masked)) == 0;
}

/* cidr_overlaps - the wider of the two networks holds the other's address */
bool cidr_overlaps(const struct cidr *a, const struct cidr *b)
{
    const struct cidr *wide = a->prefix <= b->prefix ? a : b;
    const struct cidr *narrow = wide == a ? b : a;

    return cidr_contains(wide, &narrow->net);
}

/* cidr_set_add - append c; the capacity is implied by count (4, then powers of two) */
int cidr_set_add(struct cidr_set *set, const struct cidr *c)
{
    size_t n = set->count;
    struct cidr *items;

    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t capacity = n == 0 ? 4 : n * 2;

        if (capacity > SIZE_MAX / sizeof *items)
            return -1;
        items = realloc(set->items, capacity * sizeof *items);
        if (items == NULL)
            return -1;
        set->items = items;
    }
    set->items[n] = *c;
    set->count = n + 1;
    return 0;
}

/* cidr_set_contains - linear search: true if any network in set holds a */
bool cidr_set_contains(const struct cidr_set *set, const struct addr *a)
{
    size_t i;

    for (i = 0; i < set->count; i++) {
        if (cidr_contains(&set->items[i], a))
            return true;
    }
    return false;
}

/* cidr_set_overlaps - linear search: true if any network in set shares an
 * address with c */
bool cidr_set_overlaps(const struct cidr_set *set, const struct cidr *c)
{
    size_t i;

    for (i = 0; i < set->count; i++) {
        if (cidr_overlaps(&set->items[i], c))
            return true;
    }
    return false;
}

void cidr_set_free(struct cidr_set *set)
{
    free(set->items);
    set->items = NULL;
    set->count = 0;
}

/* addr_dnsbl_reverse - reversed octets or nibbles, without zone; its length or -1 */
static int addr_dnsbl_reverse(const struct addr *a, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0;
    int i;

    if (a->family == AF_INET)
        return snprintf(out, size, "%u.%u.%u.%u", a->bytes[3], a->bytes[2],
                        a->bytes[1], a->bytes[0]);
    if (a->family != AF_INET6 || size < 64)
        return -1;
    for (i = 15; i >= 0; i--) {
        out[pos++] = hex[a->bytes[i] & 0x0f];
        out[pos++] = '.';
        out[pos++] = hex[a->bytes[i] >> 4];
        out[pos++] = i > 0 ? '.' : '\0';
    }
    return 63;
}

/* addr_dnsbl_name - "<reversed>.<zone>" into buf; its length or -1 if it does not fit */
int addr_dnsbl_name(const struct addr *a, const char *zone, char *buf, size_t size)
{
    char reversed[64];
    int rlen = addr_dnsbl_reverse(a, reversed, sizeof reversed);
    size_t zlen = strlen(zone);
    size_t total;

    if (rlen < 0)
        return -1;
    total = (size_t)rlen + (zlen > 0 ? 1 + zlen : 0);
    if (total >= size || total > INT_MAX)
        return -1;
    memcpy(buf, reversed, (size_t)rlen);
    if (zlen > 0) {
        buf[rlen] = '.';
        memcpy(buf + rlen + 1, zone, zlen);
    }
    buf[total] = '\0';
    return (int)total;
}
