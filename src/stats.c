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

/* stats_sample - one `stats` answer, parsed. Returns 0, or the control
 * request's status. */
static int stats_sample(const char *path, struct stats_sample *s)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (out == NULL)
        return 1;
    int status = control_request(path, "stats", out, stderr);
    fclose(out);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *s = (struct stats_sample){.when = ts.tv_sec + ts.tv_nsec / 1e9};
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); status == 0 && line;
         line = strtok_r(NULL, "\n", &save)) {
        char key[64];
        unsigned long long value;
        if (sscanf(line, "%63s %llu", key, &value) != 2)
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
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", localtime_r(&t, &tm));
    printf(json ? "{\"time\":\"%s\",\"connections\":%llu,\"dnsbl\":%llu,\"reject\":%llu,"
                  "\"relay\":%llu,\"new_per_second\":%.1f,\"rejects_per_second\":%.1f,"
                  "\"relays_per_second\":%.1f,\"bans_per_second\":%.1f}\n"
                : "%s connections=%llu dnsbl=%llu reject=%llu relay=%llu "
                  "new/s=%.1f rejects/s=%.1f relays/s=%.1f bans/s=%.1f\n", when,
           now->value[STATS_CONNECTIONS], now->value[STATS_DNSBL], now->value[STATS_REJECT],
           now->value[STATS_RELAY], stats_rate(old, now, accepted, 1),
           stats_rate(old, now, rejects, 3), stats_rate(old, now, relays, 2),
           stats_rate(old, now, bans, 1));
    fflush(stdout);
}

/* stats_sleep - until `when` (CLOCK_MONOTONIC seconds) */
static void stats_sleep(double when)
{
    struct timespec ts = {(time_t)when, (long)((when - (time_t)when) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int stats_json(const char *lines, FILE *out)
{
    const char *sep = "{";
    char key[64], value[64];
    for (const char *p = lines; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        char *end;
        if (sscanf(p, "%63s %63s", key, value) != 2 ||
            strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(key))
            return -1;
        double v = strtod(value, &end);
        if (*end != '\0' && *end != '\n')
            return -1;
        if (isfinite(v))
            fprintf(out, "%s\"%s\":%s", sep, key, value);
        else
            fprintf(out, "%s\"%s\":null", sep, key);
        sep = ",";
        p += len + (p[len] == '\n');
    }
    fprintf(out, "%s}\n", sep[0] == '{' ? "{" : "");
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
    if (stats_sample(conf->control_socket, &old) != 0)
        return 1;
    double next = old.when;
    for (long printed = 0; lines == 0 || printed < lines; printed++) {
        next += interval;
        stats_sleep(next);
        if (stats_sample(conf->control_socket, &now) != 0)
            return 1;
        stats_print(&old, &now, json);
        old = now;
    }
    return 0;
}
