/*
 * dnsttl - negative TTLs from raw DNS messages, and TTL bounds. See
 * dnsttl.h for the layout read and the rules.
 *
 * The reader is a cursor (message, end, position) that only moves
 * forward; every step first checks that its bytes are there.
 */
#include "dnsttl.h"

#define DNSTTL_HEADER 12
#define DNSTTL_NAME_MAX 255        /* RFC 1035 §3.1: bytes of a name on the wire */
#define DNSTTL_TYPE_SOA 6
#define DNSTTL_CLASS_IN 1
#define DNSTTL_SOA_NUMBERS 20      /* SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM */
#define DNSTTL_RR_FIXED 10         /* TYPE, CLASS, TTL, RDLENGTH */

struct dnsttl_cursor {
    const unsigned char *msg;
    size_t end;                    /* bytes of msg that may be read */
    size_t pos;
};

/* dnsttl_u16, dnsttl_u32 - big-endian integers at p (bounds checked by
 * the caller) */
static uint32_t dnsttl_u16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t dnsttl_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* dnsttl_skip - n more bytes, if they are there */
static bool dnsttl_skip(struct dnsttl_cursor *c, size_t n)
{
    if (n > c->end - c->pos)
        return false;
    c->pos += n;
    return true;
}

/* dnsttl_skip_name - past one name: labels up to the root label or to a
 * compression pointer (not followed) */
static bool dnsttl_skip_name(struct dnsttl_cursor *c)
{
    size_t wire = 0;
    for (;;) {
        if (c->pos >= c->end)
            return false;
        unsigned char len = c->msg[c->pos];
        if ((len & 0xC0) == 0xC0)
            return dnsttl_skip(c, 2);
        if ((len & 0xC0) != 0)
            return false; /* 0x40 and 0x80: no such labels in use */
        wire += 1 + (size_t)len;
        if (wire > DNSTTL_NAME_MAX)
            return false;
        if (!dnsttl_skip(c, 1 + (size_t)len))
            return false;
        if (len == 0)
            return true;
    }
}

/* dnsttl_ttl - a TTL field: the top bit set reads as 0 (RFC 2181 §8) */
static uint32_t dnsttl_ttl(const unsigned char *p)
{
    uint32_t v = dnsttl_u32(p);
    return (v & 0x80000000u) ? 0 : v;
}

/* dnsttl_soa_minimum - the MINIMUM of an SOA's RDATA, which must be
 * exactly its two names and five numbers */
static bool dnsttl_soa_minimum(const unsigned char *msg, size_t start, size_t rdlength,
                               uint32_t *minimum)
{
    struct dnsttl_cursor rdata = {msg, start + rdlength, start};
    if (!dnsttl_skip_name(&rdata) || !dnsttl_skip_name(&rdata))
        return false;
    if (rdata.end - rdata.pos != DNSTTL_SOA_NUMBERS)
        return false;
    *minimum = dnsttl_u32(msg + rdata.end - 4);
    return true;
}

/* dnsttl_record - one resource record; *soa_ttl gets the negative TTL it
 * gives when it is an authority SOA (UINT32_MAX otherwise) */
static bool dnsttl_record(struct dnsttl_cursor *c, bool authority, uint32_t *soa_ttl)
{
    *soa_ttl = UINT32_MAX;
    if (!dnsttl_skip_name(c) || c->end - c->pos < DNSTTL_RR_FIXED)
        return false;
    const unsigned char *f = c->msg + c->pos;
    uint32_t type = dnsttl_u16(f), class = dnsttl_u16(f + 2), ttl = dnsttl_ttl(f + 4);
    size_t rdlength = dnsttl_u16(f + 8);
    c->pos += DNSTTL_RR_FIXED;
    if (rdlength > c->end - c->pos)
        return false;
    if (authority && type == DNSTTL_TYPE_SOA && class == DNSTTL_CLASS_IN) {
        uint32_t minimum;
        if (!dnsttl_soa_minimum(c->msg, c->pos, rdlength, &minimum))
            return false;
        *soa_ttl = ttl < minimum ? ttl : minimum;
    }
    c->pos += rdlength;
    return true;
}

bool dnsttl_negative(const unsigned char *msg, size_t len, uint32_t *ttl)
{
    if (msg == NULL || len < DNSTTL_HEADER)
        return false;
    struct dnsttl_cursor c = {msg, len, DNSTTL_HEADER};
    uint32_t questions = dnsttl_u16(msg + 4), answers = dnsttl_u16(msg + 6),
             authority = dnsttl_u16(msg + 8);
    for (uint32_t i = 0; i < questions; i++)
        if (!dnsttl_skip_name(&c) || !dnsttl_skip(&c, 4))
            return false;
    bool found = false;
    uint32_t least = UINT32_MAX;
    for (uint32_t i = 0; i < answers + authority; i++) {
        uint32_t soa_ttl;
        if (!dnsttl_record(&c, i >= answers, &soa_ttl))
            return false;
        if (soa_ttl != UINT32_MAX) {
            found = true;
            least = soa_ttl < least ? soa_ttl : least;
        }
    }
    if (found)
        *ttl = least;
    return found;
}

double dnsttl_floor(double cap)
{
    return cap < DNSTTL_FLOOR ? cap : DNSTTL_FLOOR;
}

double dnsttl_bound(uint32_t ttl, double cap)
{
    double floor = dnsttl_floor(cap);
    if (ttl < floor)
        return floor;
    return ttl > cap ? cap : (double)ttl;
}
