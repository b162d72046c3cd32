/*
 * resolver - c-ares on the libev loop. See resolver.h.
 *
 * c-ares tells us which sockets to watch through its socket-state callback;
 * each gets an ev_io that calls ares_process_fd(). One ev_timer, re-armed
 * from ares_timeout() after every call into c-ares, drives retries.
 */
#include <ares.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"

#define RESOLVER_SOCKETS_MAX 16

struct resolver_socket {
    ev_io io;
    bool used;
};

struct resolver_pending {
    struct resolver_pending *next;
    resolver_callback cb;
    void *arg;
    int type;
    double queued;
    char name[];
};

/* What c-ares gets as the query argument: our callback and the resolver,
 * so that a finished query can start a waiting one. */
struct resolver_call {
    struct resolver *r;
    resolver_callback cb;
    void *arg;
};

struct resolver {
    struct ev_loop *loop;
    ares_channel channel;
    ev_timer timer;
    double timeout;
    unsigned inflight;
    unsigned inflight_max;  /* this process's share of RESOLVER_INFLIGHT_MAX */
    struct resolver_pending *head, *tail;
    struct resolver_socket sockets[RESOLVER_SOCKETS_MAX];
};

static void resolver_rearm(struct resolver *r);
static void resolver_start_waiting(struct resolver *r);

/* resolver_io_cb - a c-ares socket is readable or writable */
static void resolver_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct resolver *r = w->data;
    ares_process_fd(r->channel,
                    (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
    resolver_rearm(r);
}

/* resolver_timer_cb - let c-ares retry or time out its queries */
static void resolver_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct resolver *r = w->data;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    resolver_rearm(r);
}

/* resolver_rearm - point the timer at c-ares' next deadline */
static void resolver_rearm(struct resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);
    ev_timer_stop(r->loop, &r->timer);
    if (tvp == NULL)
        return;
    ev_timer_set(&r->timer, tvp->tv_sec + tvp->tv_usec / 1e6, 0.);
    ev_timer_start(r->loop, &r->timer);
}

/* resolver_sock_state_cb - c-ares opens, closes or changes interest in a socket */
static void resolver_sock_state_cb(void *data, ares_socket_t fd, int readable,
                                   int writable)
{
    struct resolver *r = data;
    struct resolver_socket *slot = NULL, *free_slot = NULL;
    for (int i = 0; i < RESOLVER_SOCKETS_MAX; i++) {
        if (r->sockets[i].used && r->sockets[i].io.fd == fd)
            slot = &r->sockets[i];
        else if (!r->sockets[i].used && free_slot == NULL)
            free_slot = &r->sockets[i];
    }
    if (slot != NULL)
        ev_io_stop(r->loop, &slot->io);
    if (!readable && !writable) {
        if (slot != NULL)
            slot->used = false;
        return;
    }
    if (slot == NULL)
        slot = free_slot;
    if (slot == NULL)
        return; /* more sockets than servers configured: cannot happen */
    slot->used = true;
    ev_io_init(&slot->io, resolver_io_cb, fd,
               (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    slot->io.data = r;
    ev_io_start(r->loop, &slot->io);
}

/* resolver_set_servers - the `resolver` key's list, as c-ares' CSV */
static int resolver_set_servers(struct resolver *r, const struct conf *conf)
{
    char csv[CONF_RESOLVERS_MAX * (ADDR_TEXT_MAX + 10)] = "";
    size_t used = 0;
    for (size_t i = 0; i < conf->resolver_count; i++) {
        char text[ADDR_TEXT_MAX];
        const struct endpoint *e = &conf->resolver[i];
        addr_format(&e->addr, text, sizeof text);
        used += snprintf(csv + used, sizeof csv - used,
                         e->addr.family == AF_INET6 ? "%s[%s]:%u" : "%s%s:%u",
                         i ? "," : "", text, e->port);
    }
    return ares_set_servers_ports_csv(r->channel, csv);
}

struct resolver *resolver_new(struct ev_loop *loop, const struct conf *conf,
                              double timeout, char *err, size_t errsize)
{
    static bool library_ready;
    if (!library_ready && ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        snprintf(err, errsize, "cannot initialise c-ares");
        return NULL;
    }
    library_ready = true;

    struct resolver *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->timeout = timeout;
    /* workers share the DNS server: each gets its part of the cap */
    r->inflight_max = RESOLVER_INFLIGHT_MAX / (conf->workers > 0 ? conf->workers : 1);
    if (r->inflight_max < RESOLVER_INFLIGHT_MIN)
        r->inflight_max = RESOLVER_INFLIGHT_MIN;
    struct ares_options opts = {
        .flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES,
        /* two tries: c-ares doubles the wait, so the total is 3 x this */
        .timeout = (int)(timeout * 1000 / 3) > 100 ? (int)(timeout * 1000 / 3) : 100,
        .tries = 2,
        .sock_state_cb = resolver_sock_state_cb,
        .sock_state_cb_data = r,
        .lookups = (char *)"b",
    };
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
    int status = ares_init_options(&r->channel, &opts, mask);
    if (status == ARES_SUCCESS && !conf->resolver_system)
        status = resolver_set_servers(r, conf);
    if (status != ARES_SUCCESS) {
        snprintf(err, errsize, "cannot set up the DNS resolver: %s",
                 ares_strerror(status));
        if (r->channel != NULL)
            ares_destroy(r->channel);
        free(r);
        return NULL;
    }
    ev_timer_init(&r->timer, resolver_timer_cb, 0., 0.);
    r->timer.data = r;
    return r;
}

/* resolver_done - c-ares finished one query */
static void resolver_done(void *arg, int status, int timeouts,
                          unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct resolver_call *call = arg;
    struct resolver *r = call->r;
    call->cb(call->arg, status, abuf, alen);
    free(call);
    r->inflight--;
    if (status != ARES_EDESTRUCTION)
        resolver_start_waiting(r);
}

/* resolver_send - hand one query to c-ares */
static void resolver_send(struct resolver *r, const char *name, int type,
                          resolver_callback cb, void *arg)
{
    struct resolver_call *call = malloc(sizeof *call);
    if (call == NULL) {
        cb(arg, ARES_ENOMEM, NULL, 0);
        return;
    }
    *call = (struct resolver_call){r, cb, arg};
    r->inflight++;
    ares_query(r->channel, name, ns_c_in, type, resolver_done, call);
    resolver_rearm(r);
}

/* resolver_start_waiting - send queued queries while there is room */
static void resolver_start_waiting(struct resolver *r)
{
    double now = ev_now(r->loop);
    while (r->head != NULL && r->inflight < r->inflight_max) {
        struct resolver_pending *p = r->head;
        r->head = p->next;
        if (r->head == NULL)
            r->tail = NULL;
        if (now - p->queued > r->timeout)
            p->cb(p->arg, ARES_ETIMEOUT, NULL, 0);
        else
            resolver_send(r, p->name, p->type, p->cb, p->arg);
        free(p);
    }
}

void resolver_query(struct resolver *r, const char *name, int type,
                    resolver_callback cb, void *arg)
{
    if (r->inflight < r->inflight_max && r->head == NULL) {
        resolver_send(r, name, type, cb, arg);
        return;
    }
    size_t len = strlen(name) + 1;
    struct resolver_pending *p = malloc(sizeof *p + len);
    if (p == NULL) {
        cb(arg, ARES_ENOMEM, NULL, 0);
        return;
    }
    *p = (struct resolver_pending){NULL, cb, arg, type, ev_now(r->loop)};
    memcpy(p->name, name, len);
    if (r->tail != NULL)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
}

void resolver_free(struct resolver *r)
{
    if (r == NULL)
        return;
    while (r->head != NULL) {
        struct resolver_pending *p = r->head;
        r->head = p->next;
        p->cb(p->arg, ARES_EDESTRUCTION, NULL, 0);
        free(p);
    }
    ares_destroy(r->channel); /* runs every callback with ARES_EDESTRUCTION */
    ev_timer_stop(r->loop, &r->timer);
    for (int i = 0; i < RESOLVER_SOCKETS_MAX; i++)
        if (r->sockets[i].used)
            ev_io_stop(r->loop, &r->sockets[i].io);
    free(r);
}
