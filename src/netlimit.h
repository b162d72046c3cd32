/*
 * netlimit - what the daemon counts per client network (an address's
 * ipv4_prefix or ipv6_prefix bits): open sessions, for
 * max_connections_per_ip, and new connections in the current
 * connection_rate_window, for max_connection_rate_per_ip. A bot that holds
 * a whole IPv6 /64 counts once, whatever address of it each connection
 * comes from.
 *
 *   netlimit_new(), netlimit_free()
 *   netlimit_admit()    a new connection from a network: counted, or why not
 *   netlimit_release()  its session ended
 *   netlimit_sweep()    free a few buckets' entries that count nothing any
 *                       more (no session, window over): call every second
 *
 * The rate is counted in fixed windows of connection_rate_window, as
 * Postfix's anvil does: a window starts with a network's first connection
 * after the last one ended. A connection refused for the rate counts too,
 * so that one that goes on past the limit can be banned (netlimit_admit
 * says when), whichever of its addresses the refusals came from: the ban
 * is of the network too (bans.h).
 *
 * Bounded: past max_entries a new network is admitted uncounted (failing
 * open, as for no memory), and the sweep visits the whole table about
 * twice a window.
 *
 * An addrmap (addrmap.h) keyed by the network's address with host bits
 * zero: O(1) at any size. Pure (no I/O, time passed in): unit-tested.
 */
#ifndef BREAKWATER_NETLIMIT_H
#define BREAKWATER_NETLIMIT_H

#include <stdbool.h>

#include "addr.h"
#include "addrmap.h"

struct netlimit_policy {
    unsigned max_sessions;  /* open at once; at least 1 */
    unsigned max_rate;      /* new connections per window; 0 = no limit */
    double window;          /* seconds */
    size_t max_entries;     /* networks counted at most */
};

struct netlimit_entry {
    struct addrmap_node node;  /* first: the network's address */
    unsigned sessions;
    unsigned count;            /* connections in the window, refused ones too */
    double window_start;
};

enum netlimit_verdict {
    NETLIMIT_ADMITTED,
    NETLIMIT_SESSIONS,         /* max_sessions open already */
    NETLIMIT_RATE,             /* max_rate reached in this window */
    NETLIMIT_RATE_AGAIN,       /* ... and as many refused since: it keeps going
                                  (said once a window) */
    NETLIMIT_NO_MEMORY,        /* or max_entries reached: the caller fails open */
};

struct netlimit;

struct netlimit *netlimit_new(void);
/* Frees every entry. */
void netlimit_free(struct netlimit *t);
/* A connection from network net (a cidr_of() network, host
 * bits zero) at now. NETLIMIT_ADMITTED: counted as an open session in
 * *entry, which netlimit_release() takes when it ends. NETLIMIT_RATE_AGAIN
 * comes once a window, when the refusals reach max_rate. */
enum netlimit_verdict netlimit_admit(struct netlimit *t, const struct cidr *net, double now,
                                     const struct netlimit_policy *p,
                                     struct netlimit_entry **entry);
void netlimit_release(struct netlimit *t, struct netlimit_entry *e);
/* Called every `interval` seconds: visits a slice of the buckets (the
 * whole table about twice a window) from where the last sweep stopped and
 * frees the entries with no session whose window is over. */
void netlimit_sweep(struct netlimit *t, double now, double window, double interval);
/* Entries held (tests, metrics). */
size_t netlimit_count(const struct netlimit *t);

#endif
