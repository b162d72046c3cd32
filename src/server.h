/*
 * server - the listening sockets, accept, and the limits applied before a
 * session exists: max_connections, max_connections_per_ip, and running out
 * of file descriptors.
 *
 *   server_start()  raise RLIMIT_NOFILE as max_connections needs, bind and
 *                   listen on every `listen` address, start accepting
 *   server_stop()   close the listeners and every session
 *
 * struct server is the daemon's shared context: the sessions reach the
 * config, the loop, the DNSBL module and the counters through it.
 */
#ifndef BREAKWATER_SERVER_H
#define BREAKWATER_SERVER_H

#include <ev.h>

#include "clients.h"
#include "conf.h"
#include "dnsbl.h"
#include "log.h"

struct listener {
    ev_io io;
    struct endpoint where;
};

struct server {
    struct ev_loop *loop;
    const struct conf *conf;
    struct dnsbl *dnsbl;
    struct clients *clients;
    unsigned connections;          /* open client sessions */
    unsigned backend_connections;  /* relays connecting or copying */
    struct listener listener[CONF_LISTEN_MAX];
    size_t listener_count;
    ev_timer accept_pause;         /* accepting stopped: out of fds */
    struct log_limit fd_log;
};

/* Returns 0, or -1 with err set (a listen address that cannot be bound). */
int server_start(struct server *s, struct ev_loop *loop, const struct conf *conf,
                 struct dnsbl *dnsbl, char *err, size_t errsize);
void server_stop(struct server *s);

/* Writes a one-line reply and closes: for clients turned away before a
 * session exists (the reply may be lost if the client already sent data). */
void server_refuse(int fd, const char *reply);

#endif
