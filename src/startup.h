/*
 * startup - what serve and watch do alike when they start, while still
 * root, and a few things both print or need.
 *
 *   startup_prepare()        the state directory given to `user`, the
 *                            ban helper forked, the control socket (its
 *                            directory made for `user` when missing) and
 *                            the metrics listener made (serve), then root
 *                            given up; privsep.h says how root may touch
 *                            files meanwhile
 *   startup_announce_bans()  where bans go, and what a backend cannot do
 *   startup_signal_cb()      SIGTERM, SIGINT: leave the loop
 */
#ifndef BREAKWATER_STARTUP_H
#define BREAKWATER_STARTUP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "metrics.h"
#include "workers.h"

/* What every serving process is handed, made while root. */
struct startup {
    int helper_fd[WORKERS_MAX]; /* one per worker; -1: ban_backend = none */
    int control_fd;             /* -1: none (watch leaves ctl to serve) */
    int metrics_fd;             /* -1: none (metrics_listen empty, or watch) */
    struct metrics *metrics;    /* shared by the workers (serve; made by the caller) */
};

/* workers: how many sockets to the helper. watch: no control socket, and
 * a helper that also ends banned clients' connections. Returns 0 or -1
 * (logged). */
int startup_prepare(const struct conf *conf, struct startup *s, unsigned workers, bool watch);
void startup_announce_bans(const struct conf *conf);
void startup_signal_cb(struct ev_loop *loop, ev_signal *w, int revents);

#endif
