/*
 * cache - verdicts remembered per client address until they expire, so that
 * a client seen recently is decided without asking the lists again.
 *
 * Pure: the caller passes the time; no sockets, no globals.
 *
 *   cache_new(), cache_free()
 *   cache_get()    the unexpired verdict of an address (an expired one is
 *                  dropped on the way)
 *   cache_put()    remember or replace a verdict; when the cache is full the
 *                  entry stored longest ago makes room
 *   cache_purge()  drop expired entries in a few buckets at a time (called
 *                  from a timer, so no call ever scans the whole table)
 *   cache_count()
 *
 * A hash table with chaining that doubles as it fills, plus a list in
 * insertion order for eviction. About 90 bytes per entry.
 */
#ifndef BREAKWATER_CACHE_H
#define BREAKWATER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct cache_verdict {
    bool listed;
    int score;
    uint64_t hits; /* bit i: dnsbl site i matched */
};

struct cache;

/* NULL when out of memory or max_entries is 0 (no cache). */
struct cache *cache_new(size_t max_entries);
void cache_free(struct cache *c);
bool cache_get(struct cache *c, const struct addr *a, double now,
               struct cache_verdict *out);
/* Returns 0, or -1 when out of memory (the verdict is then not kept). */
int cache_put(struct cache *c, const struct addr *a, const struct cache_verdict *v,
              double expires);
/* Looks at up to `buckets` buckets from where the last call stopped;
 * returns how many entries it dropped. */
size_t cache_purge(struct cache *c, double now, size_t buckets);
size_t cache_count(const struct cache *c);

#endif
