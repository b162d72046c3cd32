/*
 * clients - per-address table. See clients.h.
 */
#include <stdlib.h>

#include "clients.h"
#include "dnsbl.h"
#include "generation.h"

#define CLIENTS_INITIAL_BUCKETS 1024

struct clients {
    struct addrmap map;
};

struct clients *clients_new(void)
{
    struct clients *t = malloc(sizeof *t);
    if (t == NULL || addrmap_init(&t->map, CLIENTS_INITIAL_BUCKETS) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

void clients_free(struct clients *t)
{
    if (t == NULL)
        return;
    addrmap_free(&t->map);
    free(t);
}

struct client *clients_get(struct clients *t, const struct addr *a)
{
    struct addrmap_node **link = addrmap_find(&t->map, a);
    if (*link != NULL)
        return (struct client *)*link;
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->node.addr = *a;
    addrmap_add(&t->map, &c->node);
    return c;
}

void clients_put(struct clients *t, struct client *c)
{
    if (c->sessions > 0)
        return;
    addrmap_remove(&t->map, addrmap_find(&t->map, &c->node.addr));
    dnsbl_lookup_release(c->lookup);
    generation_drop(c->lookup_gen);
    free(c);
}

void clients_foreach(struct clients *t, void (*fn)(struct client *c, void *arg),
                     void *arg)
{
    for (size_t i = 0; i < t->map.buckets; i++) {
        struct addrmap_node *node = *addrmap_bucket(&t->map, i), *next;
        for (; node != NULL; node = next) {
            next = node->chain; /* fn may free the client */
            fn((struct client *)node, arg);
        }
    }
}
