/*
 * dnsttl - how long a DNSBL answer may be believed: the negative-caching
 * TTL of an NXDOMAIN or NODATA answer, read from the raw DNS message, and
 * the bounds breakwater puts on any TTL before it caches a verdict for it
 * (pure: bytes in, values out; no I/O, no globals, no allocation).
 *
 *   dnsttl_negative()  a negative answer -> its negative TTL (RFC 2308 §5:
 *                      the lesser of the authority SOA record's own TTL and
 *                      its MINIMUM field), or "none"
 *   dnsttl_bound()     a TTL from a list -> the seconds a verdict is kept:
 *                      at least dnsttl_floor(cap), at most cap
 *   dnsttl_floor()     the lesser of DNSTTL_FLOOR and cap
 *
 * Why it is read here: an NXDOMAIN has no A record and so no TTL of its
 * own; its authority section holds the zone's SOA, whose TTL and MINIMUM
 * say how long "not listed" may be cached (RFC 2308). c-ares 1.18 hands the
 * whole message to the query callback with ARES_ENOTFOUND and ARES_ENODATA,
 * but ares_parse_soa_reply() reads the answer section only.
 *
 * The message layout read (RFC 1035 §4.1; all integers big-endian):
 *
 *   header    12 bytes: ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
 *   question  QDCOUNT x (NAME, TYPE 2, CLASS 2)
 *   answer    ANCOUNT x RR, skipped
 *   authority NSCOUNT x RR: NAME, TYPE 2, CLASS 2, TTL 4, RDLENGTH 2, RDATA
 *             an SOA (TYPE 6, CLASS IN) has RDATA = MNAME, RNAME, SERIAL 4,
 *             REFRESH 4, RETRY 4, EXPIRE 4, MINIMUM 4
 *
 * Every byte is the sender's, or a spoofer's. Each length is checked
 * against the end of the message before it is read; a NAME is only
 * skipped: a compression pointer ends it and is never followed, so no
 * loop can be built; labels of the reserved kinds (0x40, 0x80) and names
 * longer than 255 bytes are malformed; an SOA's RDATA must be exactly its
 * two names and 20 bytes. A message that breaks any of this gives "none",
 * whatever it held before the fault. A TTL with its top bit set is 0
 * (RFC 2181 §8). With several SOA records the least value counts. The
 * SOA's owner is not compared with the query: a forged one can say no
 * more than dnsttl_bound() lets any answer say.
 */
#ifndef BREAKWATER_DNSTTL_H
#define BREAKWATER_DNSTTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds: no verdict is kept shorter than this (unless its cap is), so
 * that a list answering with a TTL of 0 or a few seconds does not make
 * every connection a query. Postfix's postscreen_dnsbl_min_ttl. */
#define DNSTTL_FLOOR 60.0

/* True, with *ttl set, when msg[0..len) is a well-formed DNS message with
 * at least one SOA record of class IN in its authority section; false
 * otherwise (*ttl untouched). msg may be NULL when len is 0. */
bool dnsttl_negative(const unsigned char *msg, size_t len, uint32_t *ttl);

/* The lesser of DNSTTL_FLOOR and cap (cap > 0). */
double dnsttl_floor(double cap);

/* ttl (seconds, from a list) bounded to [dnsttl_floor(cap), cap]. */
double dnsttl_bound(uint32_t ttl, double cap);

#endif
