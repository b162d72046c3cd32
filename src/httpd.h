/*
 * httpd - the `metrics_listen` endpoint: a tiny non-blocking HTTP/1.0
 * responder on the loop. `GET /metrics` gets the Prometheus text
 * (metrics.h), anything else 404; then the connection is closed.
 *
 *   httpd_listen()  open the TCP listener (while root, before the workers
 *                   fork: every worker accepts on the same socket)
 *   httpd_start()   serve it on the loop; refreshes the worker's process
 *                   facts every HTTPD_REFRESH seconds
 *   httpd_stop()    close every connection (not the listener: the parent
 *                   keeps it for a restarted worker)
 *
 * Limits: the request head must arrive within HTTPD_TIMEOUT seconds and
 * fit HTTPD_REQUEST_MAX bytes; at most HTTPD_CONNECTIONS_MAX connections
 * at once per worker (more are closed at accept). The answer is rendered
 * once into a buffer and written as the socket takes it.
 */
#ifndef BREAKWATER_HTTPD_H
#define BREAKWATER_HTTPD_H

#include <ev.h>

#include "conf.h"
#include "metrics.h"
#include "store.h"

#define HTTPD_TIMEOUT 10.0
#define HTTPD_REFRESH 5.0
#define HTTPD_REQUEST_MAX 4096
#define HTTPD_CONNECTIONS_MAX 16

struct httpd;

/* Returns the listening fd, or -1 with err set. */
int httpd_listen(const struct endpoint *where, char *err, size_t errsize);
/* NULL when out of memory. slot: this worker's, refreshed for scrapes. */
struct httpd *httpd_start(struct ev_loop *loop, int fd, const struct conf *conf,
                          struct metrics *metrics, struct metrics_slot *slot,
                          struct store *store);
/* A reload: the DNSBL zones' names for the labels from conf from now on. */
void httpd_set_conf(struct httpd *h, const struct conf *conf);
void httpd_stop(struct httpd *h);

#endif
