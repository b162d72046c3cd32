/*
 * log - leveled messages on stderr or to syslog. See log.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static enum log_level log_level_current = LOG_LEVEL_INFO;
static enum log_target log_target_current = LOG_TARGET_STDERR;

static const int log_priorities[] = {
    [LOG_LEVEL_ERROR] = LOG_ERR,
    [LOG_LEVEL_WARNING] = LOG_WARNING,
    [LOG_LEVEL_INFO] = LOG_INFO,
    [LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
    log_level_current = level;
}

void log_set_target(enum log_target target)
{
    if (target == LOG_TARGET_SYSLOG && log_target_current != LOG_TARGET_SYSLOG)
        openlog("breakwater", LOG_PID | LOG_NDELAY, LOG_MAIL); /* opened before root goes */
    log_target_current = target;
}

bool log_enabled(enum log_level level)
{
    return level <= log_level_current;
}

/* log_vmsg - format one line and write it with a single stdio call */
static void log_vmsg(enum log_level level, const char *suffix,
                     const char *fmt, va_list ap)
{
    char line[2048];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    if (log_target_current == LOG_TARGET_SYSLOG)
        syslog(log_priorities[level], "%s: %s%s", log_level_names[level], line, suffix);
    else
        fprintf(stderr, "breakwater: %s: %s%s\n", log_level_names[level], line, suffix);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, "", fmt, ap);
    va_end(ap);
}

void log_limited(struct log_limit *limit, double now, enum log_level level,
                 const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    if (limit->last != 0 && now - limit->last < LOG_LIMIT_INTERVAL) {
        limit->suppressed++;
        return;
    }
    char suffix[64] = "";
    if (limit->suppressed > 0)
        snprintf(suffix, sizeof suffix, " (%u similar messages suppressed)",
                 limit->suppressed);
    limit->last = now;
    limit->suppressed = 0;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, suffix, fmt, ap);
    va_end(ap);
}
