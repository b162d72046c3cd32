/*
 * session - one client connection, from accept to close.
 *
 *   session_start()  take a freshly accepted socket (limits already passed)
 *   session_close_all()  end every session of a client entry (stop)
 *   session_shutdown_all()  the graceful stop: every session of a client
 *                   entry that is not being relayed says `421 4.3.2
 *                   Shutting down` and closes; relays go on
 *
 * The states, entered only through session_enter():
 *
 *   DNSBL    waiting for the verdict; the client is watched, since a client
 *            that talks before it is spoken to is a bot (pregreet)
 *   REJECT   listed: the reject engine answers it until QUIT, too many
 *            errors or a timeout
 *   RELAY    clean: relay.c connects to the backend and copies bytes
 *            until both sides have closed, relay_idle_timeout passes
 *            without a byte, or the client holds on after the MTA closed
 *            (relay.h); then the session ends, its reason logged
 *   CLOSING  a last reply is being written; then the sending side is shut
 *            and the socket read until the client closes (or a short
 *            timeout), so the reply is not lost to a reset
 *
 * Every session ends with one log line: client, verdict, score, lists,
 * duration, and bytes for relays.
 */
#ifndef BREAKWATER_SESSION_H
#define BREAKWATER_SESSION_H

#include <stdint.h>

#include "addr.h"
#include "clients.h"
#include "server.h"

/* net: the session's count in its client network (netlimit.h), or NULL;
 * released when it ends */
void session_start(struct server *srv, struct client *client, int fd,
                   uint16_t port, struct netlimit_entry *net);
void session_close_all(struct client *client, void *unused);
void session_shutdown_all(struct client *client, void *unused);

#endif
