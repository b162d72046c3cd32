/*
 * cache - verdicts per address with expiry. See cache.h.
 */
#include <stdlib.h>

#include "addrmap.h"
#include "cache.h"

#define CACHE_INITIAL_BUCKETS 1024

struct cache_entry {
    struct addrmap_node node;              /* first: address, hash chain */
    struct cache_entry *older, *newer;     /* insertion order */
    struct cache_verdict verdict;
    double expires;
};

struct cache {
    struct addrmap map;
    size_t max;
    size_t cursor;         /* next bucket cache_purge() looks at */
    struct cache_entry *oldest, *newest;
};

struct cache *cache_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    struct cache *c = calloc(1, sizeof *c);
    if (c == NULL || addrmap_init(&c->map, CACHE_INITIAL_BUCKETS) < 0) {
        free(c);
        return NULL;
    }
    c->max = max_entries;
    return c;
}

/* cache_unlink - take the entry *link points at out of the table and the
 * insertion order, and free it */
static void cache_unlink(struct cache *c, struct addrmap_node **link)
{
    struct cache_entry *e = (struct cache_entry *)*link;
    addrmap_remove(&c->map, link);
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    free(e);
}

bool cache_get(struct cache *c, const struct addr *a, double now,
               struct cache_verdict *out)
{
    if (c == NULL)
        return false;
    struct addrmap_node **link = addrmap_find(&c->map, a);
    if (*link == NULL)
        return false;
    struct cache_entry *e = (struct cache_entry *)*link;
    if (e->expires <= now) {
        cache_unlink(c, link);
        return false;
    }
    *out = e->verdict;
    return true;
}

int cache_put(struct cache *c, const struct addr *a, const struct cache_verdict *v,
              double expires)
{
    if (c == NULL)
        return 0;
    struct addrmap_node **link = addrmap_find(&c->map, a);
    if (*link != NULL)
        cache_unlink(c, link); /* a replaced verdict counts as new */
    if (c->map.count >= c->max)
        cache_unlink(c, addrmap_find(&c->map, &c->oldest->node.addr));
    struct cache_entry *e = malloc(sizeof *e);
    if (e == NULL)
        return -1;
    *e = (struct cache_entry){.node.addr = *a, .verdict = *v, .expires = expires,
                              .older = c->newest};
    addrmap_add(&c->map, &e->node);
    if (c->newest != NULL)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    return 0;
}

size_t cache_purge(struct cache *c, double now, size_t buckets)
{
    size_t dropped = 0;
    if (c == NULL)
        return 0;
    for (size_t i = 0; i < buckets && i < c->map.buckets; i++) {
        c->cursor &= c->map.buckets - 1;
        struct addrmap_node **link = addrmap_bucket(&c->map, c->cursor++);
        while (*link != NULL) {
            if (((struct cache_entry *)*link)->expires <= now) {
                cache_unlink(c, link);
                dropped++;
            } else {
                link = &(*link)->chain;
            }
        }
    }
    return dropped;
}

size_t cache_count(const struct cache *c)
{
    return c == NULL ? 0 : c->map.count;
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    while (c->oldest != NULL)
        cache_unlink(c, addrmap_find(&c->map, &c->oldest->node.addr));
    addrmap_free(&c->map);
    free(c);
}
