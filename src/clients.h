/*
 * clients - what the daemon knows about each client address that has a
 * session open: how many sessions (for max_connections_per_ip), which they
 * are, and the DNSBL lookup they share (two sessions from one address ask
 * the lists once).
 *
 *   clients_new(), clients_free()  (the table must be empty when freed)
 *   clients_get()       the entry of an address, created on first use
 *   clients_put()       drop an entry that has no sessions left
 *   clients_foreach()   visit every entry (shutdown)
 *
 * An addrmap (addrmap.h): finding an address stays O(1) at tens of
 * thousands of connections.
 */
#ifndef BREAKWATER_CLIENTS_H
#define BREAKWATER_CLIENTS_H

#include "addrmap.h"

struct session;
struct dnsbl_lookup;
struct generation;

struct client {
    struct addrmap_node node;     /* first: the address and the hash chain */
    unsigned sessions;            /* open sessions from this address */
    struct session *first;        /* those sessions, linked through them */
    struct dnsbl_lookup *lookup;  /* NULL until the first lookup starts */
    struct generation *lookup_gen; /* the generation the lookup belongs to, held */
};

struct clients;

struct clients *clients_new(void);
void clients_free(struct clients *t);
/* Returns NULL only when out of memory. */
struct client *clients_get(struct clients *t, const struct addr *a);
/* Frees the entry if it has no sessions; releases its lookup. */
void clients_put(struct clients *t, struct client *c);
void clients_foreach(struct clients *t, void (*fn)(struct client *c, void *arg),
                     void *arg);

#endif
