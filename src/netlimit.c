/*
 * netlimit - sessions and connection rate per client network. See
 * netlimit.h.
 */
#include <stdlib.h>

#include "netlimit.h"

#define NETLIMIT_INITIAL_BUCKETS 1024

struct netlimit {
    struct addrmap map;
    size_t sweep_next;  /* the bucket the next sweep starts at */
};

struct netlimit *netlimit_new(void)
{
    struct netlimit *t = calloc(1, sizeof *t);
    if (t == NULL || addrmap_init(&t->map, NETLIMIT_INITIAL_BUCKETS) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

void netlimit_free(struct netlimit *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->map.buckets; i++) {
        struct addrmap_node *node = *addrmap_bucket(&t->map, i), *next;
        for (; node != NULL; node = next) {
            next = node->chain;
            free(node);
        }
    }
    addrmap_free(&t->map);
    free(t);
}

/* netlimit_drop - unlink and free e if it counts nothing: no session and,
 * unless its window is to be kept, no connection in it */
static void netlimit_drop(struct netlimit *t, struct netlimit_entry *e, bool keep_window)
{
    if (e->sessions > 0 || (keep_window && e->count > 0))
        return;
    addrmap_remove(&t->map, addrmap_find(&t->map, &e->node.addr));
    free(e);
}


enum netlimit_verdict netlimit_admit(struct netlimit *t, const struct cidr *net, double now,
                                     const struct netlimit_policy *p,
                                     struct netlimit_entry **entry)
{
    struct addrmap_node **link = addrmap_find(&t->map, &net->net);
    struct netlimit_entry *e = (struct netlimit_entry *)*link;
    if (e == NULL) {
        if (t->map.count >= p->max_entries)
            return NETLIMIT_NO_MEMORY;
        e = calloc(1, sizeof *e);
        if (e == NULL)
            return NETLIMIT_NO_MEMORY;
        e->node.addr = net->net;
        e->window_start = now;
        addrmap_add(&t->map, &e->node);
    }
    if (p->max_rate > 0) {
        if (now - e->window_start >= p->window || now < e->window_start) {
            e->window_start = now; /* a new window (or the clock went back) */
            e->count = 0;
        }
        if (e->count <= 2u * p->max_rate) /* bounded: past it nothing changes */
            e->count++;
        else
            return NETLIMIT_RATE;
        if (e->count > p->max_rate) /* the max_rate-th refusal says it keeps going */
            return e->count == 2u * p->max_rate ? NETLIMIT_RATE_AGAIN : NETLIMIT_RATE;
    }
    if (e->sessions >= p->max_sessions)
        return NETLIMIT_SESSIONS; /* sessions >= 1: the entry stays */
    e->sessions++;
    *entry = e;
    return NETLIMIT_ADMITTED;
}

void netlimit_release(struct netlimit *t, struct netlimit_entry *e)
{
    e->sessions--;
    netlimit_drop(t, e, true);
}

void netlimit_sweep(struct netlimit *t, double now, double window, double interval)
{
    size_t buckets = (size_t)(2.0 * (double)t->map.buckets * interval / window) + 1;
    for (size_t n = 0; n < buckets && n < t->map.buckets; n++) {
        size_t i = t->sweep_next++ & (t->map.buckets - 1);
        struct addrmap_node **link = addrmap_bucket(&t->map, i);
        while (*link != NULL) {
            struct netlimit_entry *e = (struct netlimit_entry *)*link;
            if (e->sessions == 0 && (now - e->window_start >= window || now < e->window_start)) {
                addrmap_remove(&t->map, link);
                free(e);
            } else {
                link = &(*link)->chain;
            }
        }
    }
}

size_t netlimit_count(const struct netlimit *t)
{
    return t->map.count;
}
