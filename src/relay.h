/*
 * relay - a clean client's connection to the backend MTA: connect (from
 * backend_source if set), send the PROXY header if configured, then copy
 * bytes both ways until both sides have closed, the relay has been idle
 * too long, or the client keeps its side open after the MTA closed.
 *
 *   relay_start()  begin connecting; NULL if that failed at once
 *   relay_stats()  bytes so far, for the log of a relay cut short
 *   relay_free()   abandon a relay (shutdown): closes the backend socket
 *
 * The relay reports once through its callback and has freed itself by
 * then: RELAY_BACKEND_DOWN (connect refused or timed out), RELAY_CLIENT_SPOKE
 * (the client sent bytes before any byte of the backend, its greeting,
 * reached it: a pregreet; the bytes stay unread for the caller; the backend
 * connection is closed), RELAY_FINISHED (both directions done, a reset on
 * either side, or a deadline of the phases below; stats.problem names the
 * last two). The client socket always stays the caller's to close (at
 * LINGERING's deadline the relay may have set SO_LINGER 0 on it, below).
 *
 * Buffers: RELAY_BUFFER_SIZE each way, allocated once connected. When one
 * side cannot take more, the other side is not read (back-pressure). An end
 * of file from one side is passed on as a half-close (shutdown SHUT_WR)
 * after the bytes before it were delivered.
 *
 * Phases, entered only through relay_enter(), each with its one deadline
 * on the relay's one timer:
 *
 *   CONNECTING  until the backend accepts: backend_connect_timeout
 *   COPYING     bytes both ways: relay_idle_timeout without a byte moved
 *               either way ends it (problem "relay_idle_timeout"); the
 *               time of the last byte is noted, the timer is not restarted
 *               per byte but re-armed when it fires early
 *   LINGERING   from the MTA's end of file: its last bytes and the
 *               half-close are passed on as the client takes them, and
 *               RELAY_LINGER_TIMEOUT later the relay ends (problem "client
 *               did not close after the backend") unless the client has
 *               closed too. A fixed deadline: bytes still moving do not
 *               extend it, so a client reading slowly cannot keep it. A
 *               client that has not taken all the MTA's bytes by then
 *               (some still in the relay's buffer or the kernel's) is
 *               reset, not closed
 *
 * A session whose MTA has finished with it no longer holds a slot of
 * backend_max_connections for as long as the client likes. The client's
 * end of file starts no such deadline: the MTA still answers what came
 * before it (a final dot may take its filters minutes) and closes when it
 * is done, which starts LINGERING; until then relay_idle_timeout applies.
 */
#ifndef BREAKWATER_RELAY_H
#define BREAKWATER_RELAY_H

#include <ev.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"

#define RELAY_BUFFER_SIZE 16384

/* Seconds a client may keep its side open once the MTA has closed: to
 * read the MTA's last bytes and close. An SMTP client closes right after
 * reading the 221; one that does not holds a slot of
 * backend_max_connections that the MTA has already let go. A few seconds
 * cover a slow link's last reply and FIN. */
#define RELAY_LINGER_TIMEOUT 5.0

enum relay_event { RELAY_BACKEND_DOWN, RELAY_CLIENT_SPOKE, RELAY_FINISHED };

struct relay_stats {
    uint64_t to_backend;  /* client bytes delivered to the backend */
    uint64_t to_client;   /* backend bytes delivered to the client */
    const char *problem;  /* NULL, or what went wrong, for the log */
};

typedef void (*relay_done_fn)(void *arg, enum relay_event event,
                              const struct relay_stats *stats);

struct relay;

struct relay *relay_start(struct ev_loop *loop, const struct conf *conf,
                          int client_fd, const struct addr *client,
                          uint16_t client_port, relay_done_fn done, void *arg);
void relay_stats(const struct relay *r, struct relay_stats *out);
void relay_free(struct relay *r);

#endif
