/*
 * addr - IPv4/IPv6 addresses, CIDR sets and DNSBL query names.
 *
 * Pure functions over values: no sockets, no globals, no allocation except
 * in cidr_set_add(). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is turned
 * into plain IPv4 by every constructor here, so the rest of the program sees
 * one form per client.
 *
 *   addr_parse()          text -> address (IPv4, IPv6, mapped -> IPv4)
 *   addr_from_sockaddr()  accept()/getsockname() result -> address, port
 *   addr_to_sockaddr()    address, port -> sockaddr for connect()/bind()
 *   addr_format()         address -> text (inet_ntop form)
 *   addr_equal(), addr_hash()
 *   hostport_parse()      "a.b.c.d:port", "[v6]:port" -> address, port
 *   cidr_parse(), cidr_contains()
 *   cidr_of(), cidr_format()  an address's network of a prefix, as text
 *   cidr_overlaps()       two networks share an address (one holds the other)
 *   cidr_set_add(), cidr_set_contains(), cidr_set_overlaps(), cidr_set_free()
 *   addr_dnsbl_name()     reversed octets (IPv4) or nibbles (IPv6) + zone
 */
#ifndef BREAKWATER_ADDR_H
#define BREAKWATER_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

struct addr {
    uint8_t family;    /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* network order; IPv4 uses the first 4 */
};

struct cidr {
    struct addr net; /* host bits are zero */
    uint8_t prefix;  /* 0..32 or 0..128 */
};

/* The widest networks breakwater limits or bans (ipv4_prefix, ipv6_prefix,
 * ctl ban ADDRESS/LEN): a /8 of IPv4, a /16 of IPv6. */
#define CIDR_NET4_MIN 8
#define CIDR_NET6_MIN 16

struct cidr_set {
    struct cidr *items;
    size_t count;
};

/* Returns 0 on success, -1 if text is not a numeric IPv4/IPv6 address. */
int addr_parse(const char *text, struct addr *out);
/* Returns 0, or -1 for a family other than AF_INET/AF_INET6. port may be NULL. */
int addr_from_sockaddr(const struct sockaddr *sa, struct addr *out, uint16_t *port);
/* Fills *ss; returns its length. */
socklen_t addr_to_sockaddr(const struct addr *a, uint16_t port, struct sockaddr_storage *ss);
/* Writes the text form (NUL-terminated) into buf; size >= ADDR_TEXT_MAX. */
void addr_format(const struct addr *a, char *buf, size_t size);
bool addr_equal(const struct addr *a, const struct addr *b);
uint32_t addr_hash(const struct addr *a);

/* "1.2.3.4:25" or "[2001:db8::1]:25"; the port is required and 1..65535.
 * Returns 0 or -1. */
int hostport_parse(const char *text, struct addr *a, uint16_t *port);

/* "10.0.0.0/8", "2001:db8::/32" or a bare address (/32, /128). Host bits
 * below the prefix are cleared. Returns 0 or -1. */
int cidr_parse(const char *text, struct cidr *out);
bool cidr_contains(const struct cidr *c, const struct addr *a);
/* The network of a with the prefix of its family (longer ones cut to the
 * address's length), host bits zero. */
struct cidr cidr_of(const struct addr *a, unsigned prefix4, unsigned prefix6);
/* "ADDR" when c is one address, else "ADDR/PREFIX"; CIDR_TEXT_MAX fits any. */
#define CIDR_TEXT_MAX (ADDR_TEXT_MAX + 4)
void cidr_format(const struct cidr *c, char *buf, size_t size);
/* Networks of one family that share an address: since both are aligned,
 * one holds the other. */
bool cidr_overlaps(const struct cidr *a, const struct cidr *b);

/* Appends; returns 0 or -1 on allocation failure. */
int cidr_set_add(struct cidr_set *set, const struct cidr *c);
bool cidr_set_contains(const struct cidr_set *set, const struct addr *a);
bool cidr_set_overlaps(const struct cidr_set *set, const struct cidr *c);
void cidr_set_free(struct cidr_set *set);

/* The DNSBL query name for a under zone: "4.3.2.1.zone" for 1.2.3.4, 32
 * nibbles for IPv6 (RFC 5782). Works on the bytes as given (an AF_INET6
 * address holding ::ffff:127.0.0.2 yields nibbles: the IPv6 test point).
 * Returns the length written (without NUL) or -1 if it does not fit. */
int addr_dnsbl_name(const struct addr *a, const char *zone, char *buf, size_t size);

#endif
