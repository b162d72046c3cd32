/*
 * resolver - c-ares driven from the libev loop, with a cap on queries in
 * flight.
 *
 *   resolver_new()    a channel on the configured servers (`resolver` key)
 *   resolver_query()  one DNS query; the callback runs exactly once: from
 *                     the loop with the answer or error, with
 *                     ARES_EDESTRUCTION when the resolver is freed, or at
 *                     once when the query cannot even be sent (bad name,
 *                     no memory)
 *   resolver_free()
 *
 * Why a cap: a DNSBL server such as rbldnsd drops packets when hundreds of
 * queries arrive at once, and a dropped query costs the whole c-ares
 * back-off. Queries beyond RESOLVER_INFLIGHT_MAX (divided among the
 * workers, each keeping at least RESOLVER_INFLIGHT_MIN) wait in a FIFO; one that
 * waited longer than the query timeout fails with ARES_ETIMEOUT unsent.
 */
#ifndef BREAKWATER_RESOLVER_H
#define BREAKWATER_RESOLVER_H

#include <ev.h>

#include "conf.h"

#define RESOLVER_INFLIGHT_MAX 200
#define RESOLVER_INFLIGHT_MIN 16

struct resolver;

/* status is an ARES_* code; abuf/alen the raw answer with ARES_SUCCESS,
 * and with ARES_ENOTFOUND (NXDOMAIN) and ARES_ENODATA (no record of the
 * type), whose authority section holds the zone's SOA, the negative TTL
 * (c-ares 1.18's ares_query passes the message on then; dnsttl.h reads
 * it); NULL/0 with any other status, and may be NULL with those too. The
 * bytes are the server's (or a spoofer's), valid during the call only. */
typedef void (*resolver_callback)(void *arg, int status,
                                  const unsigned char *abuf, int alen);

/* timeout: the longest a query may take in all (tries included). Returns
 * NULL with err set on failure. */
struct resolver *resolver_new(struct ev_loop *loop, const struct conf *conf,
                              double timeout, char *err, size_t errsize);
void resolver_query(struct resolver *r, const char *name, int type,
                    resolver_callback cb, void *arg);
void resolver_free(struct resolver *r);

#endif
