/*
 * notify - sd_notify for readiness, stopping and the watchdog. See notify.h.
 */
#include <systemd/sd-daemon.h>

#include "notify.h"

void notify_ready(void)
{
    sd_notify(0, "READY=1");
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

double notify_watchdog_interval(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    return (double)usec / 2e6;
}

void notify_watchdog_ping(void)
{
    sd_notify(0, "WATCHDOG=1");
}

static void notify_watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    notify_watchdog_ping();
}

void notify_watchdog_start(struct ev_loop *loop, ev_timer *timer)
{
    double interval = notify_watchdog_interval();
    ev_timer_init(timer, notify_watchdog_cb, interval, interval); /* stoppable either way */
    if (interval > 0)
        ev_timer_start(loop, timer);
}
