/*
 * notify - telling systemd how the service is doing (sd_notify, libsystemd);
 * every call is a no-op when the process was not started by systemd with
 * Type=notify (no NOTIFY_SOCKET).
 *
 *   notify_ready()          READY=1: listening, helper started, root gone
 *   notify_stopping()       STOPPING=1: a signal came, the stop has begun
 *   notify_watchdog_start() when systemd asks for a watchdog (WatchdogSec=),
 *                           WATCHDOG=1 from a loop timer at half its
 *                           interval, so a hung loop gets the service
 *                           restarted
 *   notify_watchdog_interval()  that half interval in seconds, 0 when none
 *                           (for the workers' supervisor, which has no loop)
 *   notify_watchdog_ping()  one WATCHDOG=1
 */
#ifndef BREAKWATER_NOTIFY_H
#define BREAKWATER_NOTIFY_H

#include <ev.h>

void notify_ready(void);
void notify_stopping(void);
double notify_watchdog_interval(void);
void notify_watchdog_ping(void);
/* timer: the caller's watcher, initialised always (ev_timer_stop() is then
 * safe) and started when a watchdog is asked for. */
void notify_watchdog_start(struct ev_loop *loop, ev_timer *timer);

#endif
