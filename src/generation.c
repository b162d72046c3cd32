/*
 * generation - a configuration and its DNSBL machinery. See generation.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "generation.h"

static void generation_free(struct generation *g)
{
    resolver_free(g->resolver); /* ends every query, before the lists go */
    dnsbl_free(g->dnsbl);
    if (g->owns_conf)
        conf_free(&g->own);
    free(g);
}

struct generation *generation_new(struct ev_loop *loop, const struct conf *borrowed,
                                  struct conf *taken, struct store *store, char *err,
                                  size_t errsize)
{
    struct generation *g = calloc(1, sizeof *g);
    if (g == NULL) {
        if (taken != NULL)
            conf_free(taken);
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    g->holders = 1;
    g->owns_conf = taken != NULL;
    if (taken != NULL) {
        g->own = *taken;
        g->conf = &g->own;
    } else {
        g->conf = borrowed;
    }
    g->resolver = resolver_new(loop, g->conf, g->conf->dnsbl_timeout, err, errsize);
    if (g->resolver != NULL)
        g->dnsbl = dnsbl_new(loop, g->resolver, g->conf, store);
    if (g->resolver != NULL && g->dnsbl == NULL)
        snprintf(err, errsize, "out of memory");
    if (g->dnsbl == NULL) {
        generation_free(g);
        return NULL;
    }
    return g;
}

struct generation *generation_hold(struct generation *g)
{
    g->holders++;
    return g;
}

void generation_drop(struct generation *g)
{
    if (g != NULL)
        g->holders--;
}

void generation_reap(struct generation **list)
{
    while (*list != NULL) {
        struct generation *g = *list;
        if (g->holders > 0 || dnsbl_busy(g->dnsbl)) { /* a fleet answer is due */
            list = &g->next;
            continue;
        }
        *list = g->next;
        generation_free(g);
    }
}
