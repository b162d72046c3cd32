/*
 * proxy - the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1
 * and 2) that tells the backend MTA the real client address.
 *
 * Contract: proxy_header_write() is pure; it writes into the caller's buffer
 * and never past size bytes. No NUL is written, so a buffer of exactly the
 * header's length is enough; on -1 the buffer's content is unspecified.
 *
 *   v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6 for IPv6),
 *       addresses in inet_ntop form; "PROXY UNKNOWN\r\n" otherwise.
 *   v2: 12-byte signature, ver_cmd 0x21 (version 2, PROXY), family byte
 *       0x11 (TCP over IPv4, 12 address bytes) or 0x21 (TCP over IPv6, 36),
 *       16-bit big-endian length, then src addr, dst addr, src port, dst port.
 *       Otherwise family 0x00 (AF_UNSPEC) and length 0.
 *
 * "Otherwise" means: the two families differ, or either is neither AF_INET
 * nor AF_INET6. An enum value other than the three versions returns -1.
 */
#include "proxy.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define PROXY_V2_FIXED 16 /* signature, ver_cmd, family, length */

static const uint8_t proxy_v2_signature[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* proxy_family - the shared family of src and dst, or AF_UNSPEC */
static int proxy_family(const struct addr *src, const struct addr *dst)
{
    if (src->family != dst->family)
        return AF_UNSPEC;
    if (src->family != AF_INET && src->family != AF_INET6)
        return AF_UNSPEC;
    return src->family;
}

/* proxy_write_v1 - the text header */
static ssize_t proxy_write_v1(const struct addr *src, uint16_t sport,
                              const struct addr *dst, uint16_t dport,
                              uint8_t *buf, size_t size)
{
    char line[PROXY_HEADER_MAX];
    char stext[ADDR_TEXT_MAX];
    char dtext[ADDR_TEXT_MAX];
    int family = proxy_family(src, dst);
    int n;

    if (family == AF_UNSPEC) {
        n = snprintf(line, sizeof line, "PROXY UNKNOWN\r\n");
    } else {
        addr_format(src, stext, sizeof stext);
        addr_format(dst, dtext, sizeof dtext);
        n = snprintf(line, sizeof line, "PROXY %s %s %s %u %u\r\n",
                     family == AF_INET ? "TCP4" : "TCP6", stext, dtext,
                     (unsigned)sport, (unsigned)dport);
    }
    if (n < 0 || (size_t)n >= sizeof line || (size_t)n > size)
        return -1;
    memcpy(buf, line, (size_t)n);
    return n;
}

/* proxy_put_port - a port in network byte order */
static void proxy_put_port(uint8_t *p, uint16_t port)
{
    p[0] = (uint8_t)(port >> 8);
    p[1] = (uint8_t)(port & 0xff);
}

/* proxy_write_v2 - the binary header with the PROXY command over TCP */
static ssize_t proxy_write_v2(const struct addr *src, uint16_t sport,
                              const struct addr *dst, uint16_t dport,
                              uint8_t *buf, size_t size)
{
    int family = proxy_family(src, dst);
    size_t alen = family == AF_INET ? 4 : 16;
    size_t block = family == AF_UNSPEC ? 0 : 2 * alen + 4;
    uint8_t *p = buf + PROXY_V2_FIXED;

    if (size < PROXY_V2_FIXED + block)
        return -1;
    memcpy(buf, proxy_v2_signature, sizeof proxy_v2_signature);
    buf[12] = 0x21;
    buf[13] = family == AF_INET ? 0x11 : family == AF_INET6 ? 0x21 : 0x00;
    buf[14] = (uint8_t)(block >> 8);
    buf[15] = (uint8_t)(block & 0xff);
    if (block > 0) {
        memcpy(p, src->bytes, alen);
        memcpy(p + alen, dst->bytes, alen);
        proxy_put_port(p + 2 * alen, sport);
        proxy_put_port(p + 2 * alen + 2, dport);
    }
    return (ssize_t)(PROXY_V2_FIXED + block);
}

/* proxy_header_write - dispatch on version; bytes written, 0 for none, -1 */
ssize_t proxy_header_write(enum proxy_version version,
                           const struct addr *src, uint16_t sport,
                           const struct addr *dst, uint16_t dport,
                           uint8_t *buf, size_t size)
{
    switch (version) {
    case PROXY_NONE:
        return 0;
    case PROXY_V1:
        return proxy_write_v1(src, sport, dst, dport, buf, size);
    case PROXY_V2:
        return proxy_write_v2(src, sport, dst, dport, buf, size);
    }
    return -1;
}
