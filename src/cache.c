/*
 * cache - verdicts per address with expiry. See cache.h.
 */
#include <stdlib.h>

#include "cache.h"

struct cache_entry {
    struct cache_entry *chain;             /* same bucket */
    struct cache_entry *older, *newer;     /* insertion order */
    struct addr addr;
    struct cache_verdict verdict;
    double expires;
};

#define CACHE_INITIAL_BUCKETS 1024

struct cache {
    struct cache_entry **bucket;
    size_t buckets;        /* a power of two; doubled as entries come */
    size_t count, max;
    size_t cursor;         /* next bucket cache_purge() looks at */
    struct cache_entry *oldest, *newest;
};

struct cache *cache_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    struct cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->max = max_entries;
    c->buckets = CACHE_INITIAL_BUCKETS;
    c->bucket = calloc(c->buckets, sizeof *c->bucket);
    if (c->bucket == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

/* cache_slot - the link that points at a's entry (or at NULL) */
static struct cache_entry **cache_slot(struct cache *c, const struct addr *a)
{
    struct cache_entry **p = &c->bucket[addr_hash(a) & (c->buckets - 1)];
    while (*p != NULL && !addr_equal(&(*p)->addr, a))
        p = &(*p)->chain;
    return p;
}

/* cache_unlink - take *slot's entry out of both lists and free it */
static void cache_unlink(struct cache *c, struct cache_entry **slot)
{
    struct cache_entry *e = *slot;
    *slot = e->chain;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    c->count--;
    free(e);
}

bool cache_get(struct cache *c, const struct addr *a, double now,
               struct cache_verdict *out)
{
    if (c == NULL)
        return false;
    struct cache_entry **slot = cache_slot(c, a);
    if (*slot == NULL)
        return false;
    if ((*slot)->expires <= now) {
        cache_unlink(c, slot);
        return false;
    }
    *out = (*slot)->verdict;
    return true;
}

/* cache_grow - double the buckets once there are more entries than
 * buckets; on failure keep the longer chains */
static void cache_grow(struct cache *c)
{
    size_t n = c->buckets * 2;
    struct cache_entry **bucket = calloc(n, sizeof *bucket);
    if (bucket == NULL)
        return;
    for (size_t i = 0; i < c->buckets; i++) {
        struct cache_entry *e = c->bucket[i], *next;
        for (; e != NULL; e = next) {
            next = e->chain;
            size_t b = addr_hash(&e->addr) & (n - 1);
            e->chain = bucket[b];
            bucket[b] = e;
        }
    }
    free(c->bucket);
    c->bucket = bucket;
    c->buckets = n;
    c->cursor = 0;
}

int cache_put(struct cache *c, const struct addr *a, const struct cache_verdict *v,
              double expires)
{
    if (c == NULL)
        return 0;
    struct cache_entry **slot = cache_slot(c, a);
    if (*slot != NULL)
        cache_unlink(c, slot); /* a replaced verdict counts as new */
    if (c->count >= c->max)
        cache_unlink(c, cache_slot(c, &c->oldest->addr));
    struct cache_entry *e = malloc(sizeof *e);
    if (e == NULL)
        return -1;
    *e = (struct cache_entry){.addr = *a, .verdict = *v, .expires = expires,
                              .older = c->newest};
    slot = cache_slot(c, a); /* the chain may have changed above */
    e->chain = *slot;
    *slot = e;
    if (c->newest != NULL)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    if (++c->count > c->buckets)
        cache_grow(c);
    return 0;
}

size_t cache_purge(struct cache *c, double now, size_t buckets)
{
    size_t dropped = 0;
    if (c == NULL)
        return 0;
    for (size_t i = 0; i < buckets && i < c->buckets; i++) {
        struct cache_entry **p = &c->bucket[c->cursor];
        while (*p != NULL) {
            if ((*p)->expires <= now) {
                cache_unlink(c, p);
                dropped++;
            } else {
                p = &(*p)->chain;
            }
        }
        c->cursor = (c->cursor + 1) & (c->buckets - 1);
    }
    return dropped;
}

size_t cache_count(const struct cache *c)
{
    return c == NULL ? 0 : c->count;
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    while (c->oldest != NULL)
        cache_unlink(c, cache_slot(c, &c->oldest->addr));
    free(c->bucket);
    free(c);
}
