/*
 * relay - a clean client's connection to the backend MTA: connect (from
 * backend_source if set), send the PROXY header if configured, then copy
 * bytes both ways until both sides have closed.
 *
 *   relay_start()  begin connecting; NULL if that failed at once
 *   relay_stats()  bytes so far, for the log of a relay cut short
 *   relay_free()   abandon a relay (shutdown): closes the backend socket
 *
 * The relay reports once through its callback and has freed itself by
 * then: RELAY_BACKEND_DOWN (connect refused or timed out), RELAY_CLIENT_SPOKE
 * (the client sent bytes before any byte of the backend, its greeting,
 * reached it: a pregreet; the bytes stay unread for the caller; the backend
 * connection is closed), RELAY_FINISHED (both
 * directions done, or a reset on either side). The client socket always
 * stays the caller's to close.
 *
 * Buffers: RELAY_BUFFER_SIZE each way, allocated once connected. When one
 * side cannot take more, the other side is not read (back-pressure). An end
 * of file from one side is passed on as a half-close (shutdown SHUT_WR)
 * after the bytes before it were delivered.
 */
#ifndef BREAKWATER_RELAY_H
#define BREAKWATER_RELAY_H

#include <ev.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"

#define RELAY_BUFFER_SIZE 16384

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
