/*
 * log - leveled messages, one line each, on stderr or to syslog (facility
 * mail, tag breakwater, with the PID).
 *
 *   log_set_level()   messages above this level are dropped (default info)
 *   log_set_target()  stderr (default) or syslog
 *   log_msg()         "breakwater: <level>: <text>" on stderr, or
 *                     "<level>: <text>" at the matching syslog priority
 *   log_error(), log_warning(), log_info(), log_debug()
 *   struct log_limit  a rate limiter for a message that may repeat (a dead
 *                     DNS server): log_limited() prints it at most once per
 *                     interval and says how many were suppressed meanwhile
 *
 * Event lines (one per session) are key=value so that scripts can read them.
 */
#ifndef BREAKWATER_LOG_H
#define BREAKWATER_LOG_H

#include <stdbool.h>

#include "conf.h"

void log_set_level(enum log_level level);
void log_set_target(enum log_target target);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

struct log_limit {
    double last;          /* when it was last printed (monotonic seconds) */
    unsigned suppressed;  /* how many were dropped since */
};

#define LOG_LIMIT_INTERVAL 60.0

/* Prints the message unless one went out through the same limit less than
 * LOG_LIMIT_INTERVAL seconds before `now`. */
void log_limited(struct log_limit *limit, double now, enum log_level level,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
