/*
 * evutil - small helpers over libev shared by the I/O modules.
 */
#ifndef BREAKWATER_EVUTIL_H
#define BREAKWATER_EVUTIL_H

#include <ev.h>

/* evutil_io_want - make an io watcher wait for exactly `events` (0 = stop),
 * touching libev only when something changes. */
static inline void evutil_io_want(struct ev_loop *loop, ev_io *w, int events)
{
    int current = ev_is_active(w) ? (w->events & (EV_READ | EV_WRITE)) : 0;
    if (current == events)
        return;
    ev_io_stop(loop, w);
    if (events == 0)
        return;
    ev_io_set(w, w->fd, events);
    ev_io_start(loop, w);
}

#endif
