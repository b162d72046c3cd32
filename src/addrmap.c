/*
 * addrmap - intrusive hash table keyed by address. See addrmap.h.
 */
#include <stdlib.h>

#include "addrmap.h"

int addrmap_init(struct addrmap *m, size_t buckets)
{
    size_t n = 1;
    while (n < buckets)
        n *= 2;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the buckets are pointers, as meant */
    *m = (struct addrmap){calloc(n, sizeof *m->bucket), n, 0};
    return m->bucket == NULL ? -1 : 0;
}

void addrmap_free(struct addrmap *m)
{
    free(m->bucket);
    *m = (struct addrmap){NULL, 0, 0};
}

struct addrmap_node **addrmap_find(struct addrmap *m, const struct addr *a)
{
    struct addrmap_node **link = &m->bucket[addr_hash(a) & (m->buckets - 1)];
    while (*link != NULL && !addr_equal(&(*link)->addr, a))
        link = &(*link)->chain;
    return link;
}

/* addrmap_grow - double the buckets; on failure keep the longer chains */
static void addrmap_grow(struct addrmap *m)
{
    size_t n = m->buckets * 2;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): the buckets are pointers, as meant */
    struct addrmap_node **bucket = calloc(n, sizeof *bucket);
    if (bucket == NULL)
        return;
    for (size_t i = 0; i < m->buckets; i++) {
        struct addrmap_node *node = m->bucket[i], *next;
        for (; node != NULL; node = next) {
            next = node->chain;
            size_t b = addr_hash(&node->addr) & (n - 1);
            node->chain = bucket[b];
            bucket[b] = node;
        }
    }
    free(m->bucket);
    m->bucket = bucket;
    m->buckets = n;
}

void addrmap_add(struct addrmap *m, struct addrmap_node *node)
{
    struct addrmap_node **head = &m->bucket[addr_hash(&node->addr) & (m->buckets - 1)];
    node->chain = *head;
    *head = node;
    if (++m->count > m->buckets)
        addrmap_grow(m);
}

void addrmap_remove(struct addrmap *m, struct addrmap_node **link)
{
    *link = (*link)->chain;
    m->count--;
}
