/*
 * workers - `workers = N` (N > 1): N processes serve the same ports.
 *
 *   workers_open() open every listener N times with SO_REUSEPORT and steer
 *                  each client address to one worker (while still root)
 *   workers_run()  fork the workers, supervise them; returns the exit
 *                  status
 *   workers_close() instead of workers_run(), when start-up failed
 *
 * Steering: a classic BPF program on each port's reuseport group picks the
 * socket (= the worker) from a hash of the client's source address, so an
 * address always meets the same worker: max_connections_per_ip, the shared
 * DNSBL lookup and the verdict cache stay exact per address. The kernel
 * numbers a group's sockets in the order they started listening: the
 * parent opens worker 0's sockets first, then worker 1's, and keeps them
 * all open, so a worker that dies is started again on the same sockets and
 * the numbering never changes.
 *
 * Each worker gets its share of max_connections (rounded up) and of
 * backend_max_connections (rounded down, at least 1: the MTA never sees
 * more than the configured cap in all). SIGTERM/SIGINT to the parent is
 * passed on to every worker; the parent exits when they all have. SIGHUP
 * to the parent reloads: it reads the configuration again (a broken one is
 * refused and logged), keeps it for workers it starts from then on, and
 * passes SIGHUP on to every worker, which reloads itself.
 */
#ifndef BREAKWATER_WORKERS_H
#define BREAKWATER_WORKERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "conf.h"

#define WORKERS_MAX 64

/* What a worker runs: the daemon on these listeners (one per conf->listen
 * entry, owned by it) as worker `index`, `first` the first time that index
 * starts, `supervisor` the pid of the process that started it; returns its
 * exit status. */
typedef int (*workers_main_fn)(void *arg, const struct conf *conf, const int *fds,
                               unsigned index, bool first, pid_t supervisor);

struct workers;

/* NULL when a listener cannot be opened (logged). */
struct workers *workers_open(const struct conf *conf);
/* Closes the listeners and frees w, when the workers will not be run. */
void workers_close(struct workers *w);
/* Frees w. */
int workers_run(struct workers *w, workers_main_fn worker_main, void *arg);
/* One worker's share of the limits of c, in place. */
void workers_divide(struct conf *c, unsigned n);
/* The number of workers (conf->workers, at most WORKERS_MAX). */
unsigned workers_count(const struct conf *conf);

#endif
