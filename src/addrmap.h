/*
 * addrmap - a hash table of entries keyed by client address, under the
 * per-address table (clients.c).
 *
 * Intrusive: an entry embeds a struct addrmap_node as its first member and
 * the owner allocates and frees it; the table only links nodes. Chaining,
 * and the bucket array doubles when there are more entries than buckets,
 * so a lookup stays O(1) at any size.
 *
 *   addrmap_init(), addrmap_free()   (free only the bucket array)
 *   addrmap_find()    the link that points at a's node, or at the NULL
 *                     ending its chain: what addrmap_remove() takes
 *   addrmap_add()     link a new node (its addr set)
 *   addrmap_remove()  unlink the node *link points at
 *   addrmap_bucket()  the head link of one bucket, for sweeps that visit
 *                     a few buckets at a time
 */
#ifndef BREAKWATER_ADDRMAP_H
#define BREAKWATER_ADDRMAP_H

#include <stddef.h>

#include "addr.h"

struct addrmap_node {
    struct addrmap_node *chain;
    struct addr addr;
};

struct addrmap {
    struct addrmap_node **bucket;
    size_t buckets; /* a power of two */
    size_t count;
};

/* Returns 0, or -1 when out of memory. */
int addrmap_init(struct addrmap *m, size_t buckets);
void addrmap_free(struct addrmap *m);
struct addrmap_node **addrmap_find(struct addrmap *m, const struct addr *a);
void addrmap_add(struct addrmap *m, struct addrmap_node *node);
void addrmap_remove(struct addrmap *m, struct addrmap_node **link);
/* The head link of bucket i (i < m->buckets), for sweeps. */
static inline struct addrmap_node **addrmap_bucket(struct addrmap *m, size_t i)
{
    return &m->bucket[i];
}

#endif
