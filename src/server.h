/*
 * server - the listening sockets, accept, and the limits applied before a
 * session exists: max_connections, max_connections_per_ip, and running out
 * of file descriptors.
 *
 *   server_open_listeners()  bind and listen on every `listen` address
 *                   (with SO_REUSEPORT when workers share the ports)
 *   server_start()  raise RLIMIT_NOFILE as max_connections needs, start
 *                   accepting on the listeners it is given (it owns them)
 *   server_shutdown() the start of a graceful stop: close the listeners,
 *                   tell every client still waiting for its verdict or
 *                   talking to the reject engine `421 4.3.2 Shutting
 *                   down`; relays go on (server_connections() says when
 *                   they are all done)
 *   server_stop()   close the listeners and every session
 *
 * struct server is the daemon's shared context: the sessions reach the
 * loop, the current generation (the config and the DNSBL module, see
 * generation.h) and the counters (this worker's metrics slot) through it.
 */
#ifndef BREAKWATER_SERVER_H
#define BREAKWATER_SERVER_H

#include <ev.h>

#include "bans.h"
#include "clients.h"
#include "netlimit.h"
#include "conf.h"
#include "generation.h"
#include "log.h"
#include "metrics.h"

struct listener {
    ev_io io;
    struct endpoint where;
};

struct server {
    struct ev_loop *loop;
    struct generation *gen;        /* the current one, held; a session holds its own */
    struct bans *bans;
    struct clients *clients;
    struct netlimit *nets;         /* per client network: sessions, connection rate */
    struct metrics_slot *metrics;  /* this worker's (metrics.h) */
    unsigned connections;          /* open client sessions */
    unsigned backend_connections;  /* relays connecting or copying */
    struct listener listener[CONF_LISTEN_MAX];
    size_t listener_count;
    ev_timer accept_pause;         /* accepting stopped: out of fds */
    ev_timer sweep;                /* netlimit_sweep() every second */
    struct log_limit fd_log;
    struct log_limit nets_log;     /* the netlimit table full */
};

/* One non-blocking TCP listening socket on e (IPv6 sockets IPv6-only).
 * Returns it, or -1 with err "cannot listen on ADDR:PORT: why". */
int server_listen(const struct endpoint *e, bool reuseport, char *err, size_t errsize);
/* Fills fds[0..conf->listen_count). Returns 0, or -1 with err set (an
 * address that cannot be bound); then no socket is left open. */
int server_open_listeners(const struct conf *conf, bool reuseport, int *fds,
                          char *err, size_t errsize);
/* fds: one listening socket per conf->listen entry. Returns 0, or -1 with
 * err set; the listeners are closed either way on failure. */
int server_start(struct server *s, struct ev_loop *loop, struct generation *gen,
                 struct bans *bans, struct metrics_slot *metrics,
                 const int *fds, char *err, size_t errsize);
/* New sessions start under next (the server takes the caller's hold on it
 * and drops its hold on the one before). */
void server_reload(struct server *s, struct generation *next);
void server_shutdown(struct server *s);
void server_stop(struct server *s);

/* The reply to a client whose mail cannot be taken now (backend down or
 * full, out of memory): the sender retries later, nothing is lost. */
#define SERVER_REPLY_TRY_LATER "421 4.3.2 Service temporarily unavailable, try again later"
/* The reply to clients not yet relayed when the daemon stops. */
#define SERVER_REPLY_SHUTTING_DOWN "421 4.3.2 Shutting down"

/* Writes a one-line reply and closes: for clients turned away before a
 * session exists (the reply may be lost if the client already sent data). */
void server_refuse(int fd, const char *reply);

#endif
