/*
 * generation - one reading of the configuration and the DNSBL machinery
 * made from it (a resolver, the lists with their weights and threshold,
 * their health checks), shared by reference count.
 *
 *   generation_new()   from a conf, borrowed (the configuration read at
 *                      start, which main() owns) or taken over (a reload)
 *   generation_hold()  one more holder
 *   generation_drop()  one holder fewer
 *   generation_reap()  free the generations of a list that no one holds
 *
 * Holders: the daemon holds the current generation; each session the one it
 * started under; each client's shared DNSBL lookup the one it was started
 * in. A reload (serve_reload() in cmd_serve.c) makes a new generation current and drops
 * the old one, which lives on until its last session ends: a reload never
 * changes a session already open.
 *
 * Freeing waits for generation_reap(), called from a timer: the last
 * holder often lets go inside one of the generation's own resolver
 * callbacks, where its resolver must not be destroyed; and it waits for
 * the fleet's answers its lookups still expect (at most fleet_timeout).
 */
#ifndef BREAKWATER_GENERATION_H
#define BREAKWATER_GENERATION_H

#include <ev.h>
#include <stdbool.h>

#include "conf.h"
#include "dnsbl.h"
#include "metrics.h"
#include "resolver.h"
#include "store.h"

struct generation {
    const struct conf *conf;
    struct resolver *resolver;
    struct dnsbl *dnsbl;
    unsigned holders;
    struct generation *next;    /* the daemon's list of generations */
    bool owns_conf;
    struct conf own;            /* the conf, when taken over */
};

/* Exactly one of borrowed and taken: taken is moved into the generation
 * (the caller must not free it, also on failure). Returns NULL with err
 * set; holders is 1 (the caller's). */
struct generation *generation_new(struct ev_loop *loop, const struct conf *borrowed,
                                  struct conf *taken, struct store *store, char *err,
                                  size_t errsize);
struct generation *generation_hold(struct generation *g);
void generation_drop(struct generation *g);
/* Frees and unlinks every generation of the list with no holder left. */
void generation_reap(struct generation **list);

#endif
