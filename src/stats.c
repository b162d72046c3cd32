/*
 * stats - the `stats` command: polls `ctl stats`. See stats.h.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "control.h"
#include "stats.h"

/* The `ctl stats` keys this command reads. */
enum stats_key {
    STATS_CONNECTIONS, STATS_DNSBL, STATS_REJECT, STATS_RELAY, STATS_ACCEPTED,
    STATS_LISTED, STATS_DENYLISTED, STATS_PREGREET, STATS_CLEAN, STATS_ALLOWLISTED,
    STATS_BANS, STATS_KEYS
};

static const char *const stats_keys[STATS_KEYS] = {
    "connections", "connections_dnsbl", "connections_reject", "connections_relay",
    "connections_accepted_total", "sessions_listed_total", "sessions_denylisted_total",
    "sessions_pregreet_total", "sessions_clean_total", "sessions_allowlisted_total",
    "bans_requested_total",
};

struct stats_sample {
    double when;                       /* CLOCK_MONOTONIC seconds */
    unsigned long long value[STATS_KEYS];
};

/* stats_options - -i SECONDS, -n COUNT (0: no end), --json. Returns 0 or
 * -1. */
static int stats_options(char **operands, int count, double *interval, long *lines,
                         bool *json)
{
    for (int i = 0; i < count; i += 2) {
        char *end;
        if (strcmp(operands[i], "--json") == 0) {
            *json = true;
            i--;
            continue;
        }
        if (i + 1 >= count)
            return -1;
        errno = 0;
        if (strcmp(operands[i], "-i") == 0) {
            *interval = strtod(operands[i + 1], &end);
            if (errno || *end || !(*interval >= 0.1 && *interval <= 86400))
                return -1;
        } else if (strcmp(operands[i], "-n") == 0) {
            *lines = strtol(operands[i + 1], &end, 10);
            if (errno || *end || *lines < 1)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* stats_counter - a `key value` line whose value is a whole decimal
 * number: key (shorter than 64 bytes) into key, the number into *value.
 * False for any other line. */
static bool stats_counter(const char *line, char *key, unsigned long long *value)
{
    size_t klen = strcspn(line, " ");
    if (klen == 0 || klen >= 64 || line[klen] != ' ')
        return false;
    const char *digits = line + klen + 1;
    if (*digits < '0' || *digits > '9')
        return false;
    char *end;
    errno = 0;
    *value = strtoull(digits, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    memcpy(key, line, klen);
    key[klen] = '\0';
    return true;
}

/* stats_sample - one `stats` answer (at most CONTROL_STATS_MAX bytes),
 * parsed. Returns 0, or the control request's status. */
static int stats_sample(const struct conf *conf, struct stats_sample *s)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (out == NULL)
        return 1;
    int status = control_request(conf, "stats", CONTROL_STATS_MAX, out, stderr);
    if (fclose(out) != 0) { /* out of memory: the answer is not all in text, if any */
        if (status == 0)
            fprintf(stderr, "breakwater: stats: out of memory\n");
        free(text);
        return status != 0 ? status : 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *s = (struct stats_sample){.when = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9};
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); status == 0 && line;
         line = strtok_r(NULL, "\n", &save)) {
        char key[64];
        unsigned long long value;
        if (!stats_counter(line, key, &value))
            continue;
        for (int k = 0; k < STATS_KEYS; k++)
            if (strcmp(key, stats_keys[k]) == 0)
                s->value[k] = value;
    }
    free(text);
    return status;
}

/* stats_rate - per second between two samples, of the sum of keys */
static double stats_rate(const struct stats_sample *old, const struct stats_sample *now,
                         const enum stats_key *keys, int n)
{
    double delta = 0, seconds = now->when - old->when;
    for (int i = 0; i < n; i++)
        delta += (double)(now->value[keys[i]] - old->value[keys[i]]);
    return seconds > 0 ? delta / seconds : 0;
}

/* stats_print - one line: the time, connections, rates since old; as
 * key=value, or a JSON object */
static void stats_print(const struct stats_sample *old, const struct stats_sample *now,
                        bool json)
{
    static const enum stats_key accepted[] = {STATS_ACCEPTED};
    static const enum stats_key rejects[] = {STATS_LISTED, STATS_DENYLISTED, STATS_PREGREET};
    static const enum stats_key relays[] = {STATS_CLEAN, STATS_ALLOWLISTED};
    static const enum stats_key bans[] = {STATS_BANS};
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL ||
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
        snprintf(when, sizeof when, "?"); /* not for a time(NULL) of this era */
    printf(json ? "{\"time\":\"%s\",\"connections\":%llu,\"dnsbl\":%llu,\"reject\":%llu,"
                  "\"relay\":%llu,\"new_per_second\":%.1f,\"rejects_per_second\":%.1f,"
                  "\"relays_per_second\":%.1f,\"bans_per_second\":%.1f}\n"
                : "%s connections=%llu dnsbl=%llu reject=%llu relay=%llu "
                  "new/s=%.1f rejects/s=%.1f relays/s=%.1f bans/s=%.1f\n", when,
           now->value[STATS_CONNECTIONS], now->value[STATS_DNSBL], now->value[STATS_REJECT],
           now->value[STATS_RELAY], stats_rate(old, now, accepted, 1),
           stats_rate(old, now, rejects, 3), stats_rate(old, now, relays, 2),
           stats_rate(old, now, bans, 1));
    (void)fflush(stdout); /* a line the terminal or pipe lost: the next one comes anyway */
}

/* stats_sleep - until `when` (CLOCK_MONOTONIC seconds) */
static void stats_sleep(double when)
{
    struct timespec ts = {(time_t)when, (long)((when - (double)(time_t)when) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* stats_digits - past the decimal digits at *p; how many there were */
static size_t stats_digits(const char **p)
{
    size_t n = strspn(*p, "0123456789");
    *p += n;
    return n;
}

/* stats_json_number - text is a JSON number as RFC 8259 spells it
 * (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?): no hex, no "1.", no
 * "+1", no leading zeros, no words */
static bool stats_json_number(const char *text)
{
    const char *p = text + (*text == '-');
    if (*p == '0')
        p++;
    else if (*p < '1' || *p > '9' || stats_digits(&p) == 0)
        return false;
    if (*p == '.') {
        p++;
        if (stats_digits(&p) == 0)
            return false;
    }
    if (*p == 'e' || *p == 'E') {
        p += 1 + (p[1] == '+' || p[1] == '-');
        if (stats_digits(&p) == 0)
            return false;
    }
    return *p == '\0';
}

/* stats_json_line - the line at p (len bytes, no newline) as `key value`:
 * key of [a-z0-9_], one space, a value of no spaces, both shorter than
 * 64 bytes, into key and value. Returns the value's JSON text: value
 * itself when it is a JSON number, "null" for inf and nan (as %g writes
 * them, or a number too large for a double), NULL for anything else. */
static const char *stats_json_line(const char *p, size_t len, char *key, char *value)
{
    static const char *const nulls[] = {"inf", "-inf", "nan", "-nan"};
    size_t klen = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
    if (klen == 0 || klen >= 64 || klen >= len || p[klen] != ' ' || len - klen - 1 >= 64)
        return NULL;
    memcpy(key, p, klen);
    key[klen] = '\0';
    memcpy(value, p + klen + 1, len - klen - 1);
    value[len - klen - 1] = '\0';
    if (stats_json_number(value))
        return isfinite(strtod(value, NULL)) ? value : "null";
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp(value, nulls[i]) == 0)
            return "null";
    return NULL;
}

int stats_json(const char *lines, FILE *out)
{
    /* every line is checked before the first is written: all or nothing */
    for (int write = 0; write < 2; write++) {
        const char *sep = "{";
        for (const char *p = lines; *p != '\0';) {
            char key[64], value[64];
            size_t len = strcspn(p, "\n");
            const char *json = stats_json_line(p, len, key, value);
            if (json == NULL)
                return -1;
            if (write)
                fprintf(out, "%s\"%s\":%s", sep, key, json);
            sep = ",";
            p += len + (p[len] == '\n');
        }
        if (write)
            fprintf(out, "%s}\n", sep[0] == '{' ? "{" : "");
    }
    return 0;
}

int stats_run(struct conf *conf, char **operands, int count)
{
    double interval = 5;
    long lines = 0;
    bool json = false;
    if (stats_options(operands, count, &interval, &lines, &json) < 0) {
        fprintf(stderr, "breakwater: usage: stats [-i SECONDS] [-n COUNT] [--json] "
                "(SECONDS at least 0.1, COUNT at least 1)\n");
        return CMD_EXIT_USAGE;
    }
    struct stats_sample old, now;
    if (stats_sample(conf, &old) != 0)
        return 1;
    double next = old.when;
    for (long printed = 0; lines == 0 || printed < lines; printed++) {
        next += interval;
        stats_sleep(next);
        if (stats_sample(conf, &now) != 0)
            return 1;
        stats_print(&old, &now, json);
        old = now;
    }
    return 0;
}
