/*
 * clients - per-address table. See clients.h.
 */
#include <stdlib.h>

#include "clients.h"
#include "dnsbl.h"

#define CLIENTS_INITIAL_BUCKETS 1024

struct clients {
    struct client **bucket;
    size_t buckets; /* a power of two */
    size_t count;
};

struct clients *clients_new(void)
{
    struct clients *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->buckets = CLIENTS_INITIAL_BUCKETS;
    t->bucket = calloc(t->buckets, sizeof *t->bucket);
    if (t->bucket == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void clients_free(struct clients *t)
{
    if (t == NULL)
        return;
    free(t->bucket);
    free(t);
}

/* clients_grow - double the buckets; on failure keep the longer chains */
static void clients_grow(struct clients *t)
{
    size_t n = t->buckets * 2;
    struct client **bucket = calloc(n, sizeof *bucket);
    if (bucket == NULL)
        return;
    for (size_t i = 0; i < t->buckets; i++) {
        struct client *c = t->bucket[i], *next;
        for (; c != NULL; c = next) {
            next = c->next;
            size_t b = addr_hash(&c->addr) & (n - 1);
            c->next = bucket[b];
            bucket[b] = c;
        }
    }
    free(t->bucket);
    t->bucket = bucket;
    t->buckets = n;
}

struct client *clients_get(struct clients *t, const struct addr *a)
{
    size_t b = addr_hash(a) & (t->buckets - 1);
    for (struct client *c = t->bucket[b]; c != NULL; c = c->next)
        if (addr_equal(&c->addr, a))
            return c;
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->addr = *a;
    c->next = t->bucket[b];
    t->bucket[b] = c;
    if (++t->count > t->buckets)
        clients_grow(t);
    return c;
}

void clients_put(struct clients *t, struct client *c)
{
    if (c->sessions > 0)
        return;
    struct client **p = &t->bucket[addr_hash(&c->addr) & (t->buckets - 1)];
    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
    t->count--;
    dnsbl_lookup_release(c->lookup);
    free(c);
}

void clients_foreach(struct clients *t, void (*fn)(struct client *c, void *arg),
                     void *arg)
{
    for (size_t i = 0; i < t->buckets; i++) {
        struct client *c = t->bucket[i], *next;
        for (; c != NULL; c = next) {
            next = c->next; /* fn may free c */
            fn(c, arg);
        }
    }
}
