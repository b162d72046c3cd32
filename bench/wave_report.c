/*
 * wave_report - the generator's numbers: kind names, SMTP reply framing,
 * latency histograms, merging worker results, and the reports. See wave.h.
 *
 *   wave_kind_name(), wave_kind_by_name()   "listed", "pregreet", ...
 *   wave_reply_feed()        bytes in, a complete reply's code out (pure)
 *   wave_hist_add(), wave_hist_percentile_ms()
 *   wave_result_merge()      add one worker's result into the total
 *   wave_report_text(), wave_report_json(), wave_report_series()
 *
 * Nothing here allocates or keeps state; the reports write to the stream
 * they are given.
 */
#include <math.h>
#include <string.h>

#include "wave.h"

static const char *const wave_kind_names[WAVE_KIND_COUNT] = {
    [WAVE_KIND_LISTED] = "listed", [WAVE_KIND_PREGREET] = "pregreet",
    [WAVE_KIND_POLITE] = "polite", [WAVE_KIND_IDLE] = "idle",
    [WAVE_KIND_SINK] = "sink",
};

static const char *const wave_error_names[WAVE_ERR_COUNT] = {
    [WAVE_ERR_REFUSED] = "refused", [WAVE_ERR_RESET] = "reset",
    [WAVE_ERR_TIMEOUT] = "timeout", [WAVE_ERR_UNEXPECTED] = "unexpected",
    [WAVE_ERR_CLOSED] = "closed", [WAVE_ERR_ADDR] = "addr_unavailable",
    [WAVE_ERR_NOFILE] = "no_fds", [WAVE_ERR_OTHER] = "other",
};

static const char *const wave_latency_names[WAVE_LAT_COUNT] = {
    [WAVE_LAT_GREETING] = "greeting", [WAVE_LAT_RCPT] = "rcpt",
    [WAVE_LAT_DATA] = "data",
};

static const char *const wave_tally_names[WAVE_TALLY_COUNT] = {
    [WAVE_TALLY_RCPT] = "rcpt_replies", [WAVE_TALLY_DATA] = "data_replies",
};

static const char *const wave_class_names[WAVE_CLASS_COUNT] = {
    [WAVE_CLASS_2XX] = "2xx", [WAVE_CLASS_4XX] = "4xx",
    [WAVE_CLASS_5XX] = "5xx", [WAVE_CLASS_OTHER] = "other",
};

/* wave_kind_name - the name used on the command line and in reports */
const char *wave_kind_name(enum wave_kind kind)
{
    return wave_kind_names[kind];
}

/* wave_kind_by_name - the kind called name[0..len), or -1 */
int wave_kind_by_name(const char *name, size_t len)
{
    for (int k = 0; k < WAVE_KIND_COUNT; k++)
        if (strlen(wave_kind_names[k]) == len && memcmp(wave_kind_names[k], name, len) == 0)
            return k;
    return -1;
}

/* wave_reply_line - a complete line: its code if it ends a reply, 0 if a
 * continuation line, -1 if it is not a reply line */
static int wave_reply_line(const struct wave_reply_parser *p)
{
    const char *h = p->head;
    if (p->len < 3 || h[0] < '0' || h[0] > '9' || h[1] < '0' || h[1] > '9'
        || h[2] < '0' || h[2] > '9')
        return -1;
    char sep = p->len > 3 ? h[3] : ' ';
    if (sep == '-')
        return 0;
    if (sep != ' ' && sep != '\r')
        return -1;
    return (h[0] - '0') * 100 + (h[1] - '0') * 10 + (h[2] - '0');
}

/* wave_reply_feed - feed received bytes; returns the code of the reply that
 * ended within them (*used = the bytes up to its end, feed the rest again),
 * 0 when all were used and no reply ended, -1 for a malformed line */
int wave_reply_feed(struct wave_reply_parser *p, const char *buf, size_t len, size_t *used)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') {
            if (p->len < sizeof p->head)
                p->head[p->len] = buf[i];
            if (p->len < UINT32_MAX)
                p->len++;
            continue;
        }
        int code = wave_reply_line(p);
        p->len = 0;
        if (code != 0) {
            *used = i + 1;
            return code;
        }
    }
    *used = len;
    return 0;
}

/* wave_hist_index - the bucket of a value in microseconds */
static unsigned wave_hist_index(uint64_t us)
{
    if (us < WAVE_HIST_SUB)
        return (unsigned)us;
    unsigned shift = (unsigned)(63 - __builtin_clzll(us)) - 5;
    unsigned index = WAVE_HIST_SUB * (shift + 1) + (unsigned)((us >> shift) - WAVE_HIST_SUB);
    return index < WAVE_HIST_BUCKETS ? index : WAVE_HIST_BUCKETS - 1;
}

/* wave_hist_value - the middle of a bucket, in microseconds */
static double wave_hist_value(unsigned index)
{
    if (index < WAVE_HIST_SUB)
        return index;
    unsigned shift = index / WAVE_HIST_SUB - 1;
    uint64_t low = (uint64_t)(WAVE_HIST_SUB + index % WAVE_HIST_SUB) << shift;
    return (double)low + (double)((1ull << shift) - 1) / 2.0;
}

/* wave_hist_add - count one latency */
void wave_hist_add(struct wave_hist *h, uint64_t us)
{
    h->buckets[wave_hist_index(us)]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

/* wave_hist_percentile_ms - the latency below which `fraction` of the
 * samples lie, in ms (the bucket's middle, never above the maximum) */
double wave_hist_percentile_ms(const struct wave_hist *h, double fraction)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(fraction * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    unsigned i = 0;
    for (; i < WAVE_HIST_BUCKETS - 1; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            break;
    }
    double us = wave_hist_value(i);
    if (us > (double)h->max_us)
        us = (double)h->max_us;
    return us / 1000.0;
}

/* wave_kind_merge - add one kind's counters and histograms */
static void wave_kind_merge(struct wave_kind_stats *into, const struct wave_kind_stats *from)
{
    into->started += from->started;
    into->completed += from->completed;
    into->closed_by_server += from->closed_by_server;
    into->unfinished += from->unfinished;
    into->late += from->late;
    for (int e = 0; e < WAVE_ERR_COUNT; e++)
        into->errors[e] += from->errors[e];
    for (int t = 0; t < WAVE_TALLY_COUNT; t++)
        for (int c = 0; c < WAVE_CLASS_COUNT; c++)
            into->tally[t][c] += from->tally[t][c];
    for (int l = 0; l < WAVE_LAT_COUNT; l++) {
        struct wave_hist *a = &into->latency[l];
        const struct wave_hist *b = &from->latency[l];
        a->count += b->count;
        if (b->max_us > a->max_us)
            a->max_us = b->max_us;
        for (unsigned i = 0; i < WAVE_HIST_BUCKETS; i++)
            a->buckets[i] += b->buckets[i];
    }
}

/* wave_result_merge - add a worker's result: counters summed, the series
 * summed second by second, the longest elapsed time kept */
void wave_result_merge(struct wave_result *into, const struct wave_result *from)
{
    if (from->elapsed > into->elapsed)
        into->elapsed = from->elapsed;
    into->max_open += from->max_open;
    if (from->series_len > into->series_len)
        into->series_len = from->series_len;
    for (uint32_t i = 0; i < from->series_len && i < WAVE_SERIES_MAX; i++)
        into->series[i] += from->series[i];
    for (int k = 0; k < WAVE_KIND_COUNT; k++)
        wave_kind_merge(&into->kind[k], &from->kind[k]);
}

/* wave_errors - all errors of one kind */
static uint64_t wave_errors(const struct wave_kind_stats *ks)
{
    uint64_t n = 0;
    for (int e = 0; e < WAVE_ERR_COUNT; e++)
        n += ks->errors[e];
    return n;
}

/* wave_total - the counters of all kinds together (histograms left out) */
static void wave_total(const struct wave_result *r, struct wave_kind_stats *t)
{
    memset(t, 0, sizeof *t);
    for (int k = 0; k < WAVE_KIND_COUNT; k++) {
        const struct wave_kind_stats *ks = &r->kind[k];
        t->started += ks->started;
        t->completed += ks->completed;
        t->closed_by_server += ks->closed_by_server;
        t->unfinished += ks->unfinished;
        t->late += ks->late;
        for (int e = 0; e < WAVE_ERR_COUNT; e++)
            t->errors[e] += ks->errors[e];
    }
}

/* wave_per_s - a count over the elapsed time */
static double wave_per_s(uint64_t n, double elapsed)
{
    return elapsed > 0 ? (double)n / elapsed : 0;
}

/* wave_shown - whether a kind belongs in the report */
static bool wave_shown(const struct wave_options *o, const struct wave_result *r, int k)
{
    return o->shares[k] > 0 || r->kind[k].started > 0;
}

/* wave_text_load - the first line: target, limits, load shape */
static void wave_text_load(FILE *f, const struct wave_options *o, const struct wave_result *r)
{
    fprintf(f, "wave: %s, %.2f s (limits %g s, %llu sessions), %u proc%s, %s addresses",
            o->target_text, r->elapsed, o->duration, (unsigned long long)o->count,
            o->procs, o->procs == 1 ? "" : "s", o->fresh ? "fresh" : "pooled");
    if (o->concurrency)
        fprintf(f, ", concurrency %llu", (unsigned long long)o->concurrency);
    if (o->rate > 0)
        fprintf(f, ", rate %g/s", o->rate);
    if (o->profile.count)
        fprintf(f, ", profile %s x%g, time x%g", o->profile_path, o->scale, o->time_scale);
    fprintf(f, "\n");
}

/* wave_text_kind - one kind's block */
static void wave_text_kind(FILE *f, const struct wave_result *r, int k)
{
    const struct wave_kind_stats *ks = &r->kind[k];
    fprintf(f, "%-9s started %llu, completed %llu (%.1f/s), unfinished %llu, errors %llu",
            wave_kind_names[k], (unsigned long long)ks->started,
            (unsigned long long)ks->completed, wave_per_s(ks->completed, r->elapsed),
            (unsigned long long)ks->unfinished, (unsigned long long)wave_errors(ks));
    if (k == WAVE_KIND_IDLE)
        fprintf(f, ", closed by server %llu", (unsigned long long)ks->closed_by_server);
    if (k == WAVE_KIND_PREGREET)
        fprintf(f, ", late %llu", (unsigned long long)ks->late);
    fprintf(f, "\n");
    for (int l = 0; l < WAVE_LAT_COUNT; l++) {
        const struct wave_hist *h = &ks->latency[l];
        if (h->count == 0)
            continue;
        fprintf(f, "  %-8s ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (%llu)\n",
                wave_latency_names[l], wave_hist_percentile_ms(h, 0.50),
                wave_hist_percentile_ms(h, 0.90), wave_hist_percentile_ms(h, 0.99),
                (double)h->max_us / 1000.0, (unsigned long long)h->count);
    }
    for (int t = 0; t < WAVE_TALLY_COUNT; t++) {
        const uint64_t *c = ks->tally[t];
        if (c[0] + c[1] + c[2] + c[3] == 0)
            continue;
        fprintf(f, "  %-12s 2xx %llu  4xx %llu  5xx %llu  other %llu\n", wave_tally_names[t],
                (unsigned long long)c[0], (unsigned long long)c[1],
                (unsigned long long)c[2], (unsigned long long)c[3]);
    }
}

/* wave_report_text - the report for a person */
void wave_report_text(FILE *f, const struct wave_options *o, const struct wave_result *r,
                      const struct wave_cpu *cpu)
{
    struct wave_kind_stats t;
    wave_total(r, &t);
    wave_text_load(f, o, r);
    for (int k = 0; k < WAVE_KIND_COUNT; k++)
        if (wave_shown(o, r, k))
            wave_text_kind(f, r, k);
    fprintf(f, "all       started %llu, completed %llu (%.1f/s), max open %llu\n",
            (unsigned long long)t.started, (unsigned long long)t.completed,
            wave_per_s(t.completed, r->elapsed), (unsigned long long)r->max_open);
    fprintf(f, "errors   ");
    for (int e = 0; e < WAVE_ERR_COUNT; e++)
        fprintf(f, " %s %llu", wave_error_names[e], (unsigned long long)t.errors[e]);
    double total = cpu->user + cpu->sys;
    fprintf(f, "\nwave CPU  user %.2f s, sys %.2f s: %.0f%% of one core, %.3f ms per session\n",
            cpu->user, cpu->sys, r->elapsed > 0 ? 100.0 * total / r->elapsed : 0.0,
            t.started ? 1000.0 * total / (double)t.started : 0.0);
}

/* wave_json_hist - {"count":..,"p50":..,...} in ms (null without samples) */
static void wave_json_hist(FILE *f, const struct wave_hist *h)
{
    if (h->count == 0) {
        fprintf(f, "{\"count\":0,\"p50\":null,\"p90\":null,\"p99\":null,\"max\":null}");
        return;
    }
    fprintf(f, "{\"count\":%llu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}",
            (unsigned long long)h->count, wave_hist_percentile_ms(h, 0.50),
            wave_hist_percentile_ms(h, 0.90), wave_hist_percentile_ms(h, 0.99),
            (double)h->max_us / 1000.0);
}

/* wave_json_errors - {"refused":..,...,"total":..} */
static void wave_json_errors(FILE *f, const uint64_t *errors)
{
    uint64_t total = 0;
    fputc('{', f);
    for (int e = 0; e < WAVE_ERR_COUNT; e++) {
        fprintf(f, "\"%s\":%llu,", wave_error_names[e], (unsigned long long)errors[e]);
        total += errors[e];
    }
    fprintf(f, "\"total\":%llu}", (unsigned long long)total);
}

/* wave_json_counts - the counters common to a kind and the total */
static void wave_json_counts(FILE *f, const struct wave_kind_stats *ks, double elapsed)
{
    fprintf(f, "\"started\":%llu,\"completed\":%llu,\"sessions_per_s\":%.3f,"
            "\"unfinished\":%llu,\"closed_by_server\":%llu,\"late\":%llu,\"errors\":",
            (unsigned long long)ks->started, (unsigned long long)ks->completed,
            wave_per_s(ks->completed, elapsed), (unsigned long long)ks->unfinished,
            (unsigned long long)ks->closed_by_server, (unsigned long long)ks->late);
    wave_json_errors(f, ks->errors);
}

/* wave_json_kind - "name":{...} for one kind */
static void wave_json_kind(FILE *f, const struct wave_options *o, const struct wave_result *r,
                           int k)
{
    const struct wave_kind_stats *ks = &r->kind[k];
    fprintf(f, "\"%s\":{\"share\":%u,", wave_kind_names[k], o->shares[k]);
    wave_json_counts(f, ks, r->elapsed);
    fprintf(f, ",\"latency_ms\":{");
    for (int l = 0; l < WAVE_LAT_COUNT; l++) {
        fprintf(f, "%s\"%s\":", l ? "," : "", wave_latency_names[l]);
        wave_json_hist(f, &ks->latency[l]);
    }
    fputc('}', f);
    for (int t = 0; t < WAVE_TALLY_COUNT; t++) {
        fprintf(f, ",\"%s\":{", wave_tally_names[t]);
        for (int c = 0; c < WAVE_CLASS_COUNT; c++)
            fprintf(f, "%s\"%s\":%llu", c ? "," : "", wave_class_names[c],
                    (unsigned long long)ks->tally[t][c]);
        fputc('}', f);
    }
    fputc('}', f);
}

/* wave_json_string - a JSON string literal */
static void wave_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* wave_json_load - "target" .. "load":{...}: what was asked for */
static void wave_json_load(FILE *f, const struct wave_options *o)
{
    fprintf(f, "\"target\":");
    wave_json_string(f, o->target_text);
    fprintf(f, ",\"procs\":%u,\"duration_limit_s\":%g,\"count_limit\":%llu,"
            "\"fresh_addresses\":%s,\"pool\":%u,\"load\":{\"concurrency\":%llu,"
            "\"rate\":%g,\"profile\":", o->procs, o->duration, (unsigned long long)o->count,
            o->fresh ? "true" : "false", o->pool, (unsigned long long)o->concurrency, o->rate);
    if (o->profile.count) {
        wave_json_string(f, o->profile_path);
        fprintf(f, ",\"scale\":%g,\"time_scale\":%g}", o->scale, o->time_scale);
    } else {
        fprintf(f, "null}");
    }
}

/* wave_json_tail - max open, CPU and the series */
static void wave_json_tail(FILE *f, const struct wave_result *r, const struct wave_cpu *cpu,
                           uint64_t sessions)
{
    double total = cpu->user + cpu->sys;
    fprintf(f, ",\"max_open\":%llu,\"cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,"
            "\"percent_of_one_core\":%.1f,\"ms_per_1000_sessions\":%.1f},\"series\":[",
            (unsigned long long)r->max_open, cpu->user, cpu->sys,
            r->elapsed > 0 ? 100.0 * total / r->elapsed : 0.0,
            sessions ? 1e6 * total / (double)sessions : 0.0);
    for (uint32_t i = 0; i < r->series_len; i++)
        fprintf(f, "%s%u", i ? "," : "", r->series[i]);
    fprintf(f, "]}\n");
}

/* wave_report_json - the report as one JSON object on one line */
void wave_report_json(FILE *f, const struct wave_options *o, const struct wave_result *r,
                      const struct wave_cpu *cpu)
{
    struct wave_kind_stats t;
    wave_total(r, &t);
    fputc('{', f);
    wave_json_load(f, o);
    fprintf(f, ",\"elapsed_s\":%.3f,\"all\":{", r->elapsed);
    wave_json_counts(f, &t, r->elapsed);
    fprintf(f, "},\"kinds\":{");
    bool first = true;
    for (int k = 0; k < WAVE_KIND_COUNT; k++) {
        if (!wave_shown(o, r, k))
            continue;
        if (!first)
            fputc(',', f);
        first = false;
        wave_json_kind(f, o, r, k);
    }
    fputc('}', f);
    wave_json_tail(f, r, cpu, t.started);
}

/* wave_report_series - "second<TAB>open" lines; 0 or -1 (errno set) */
int wave_report_series(const char *path, const struct wave_result *r)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    for (uint32_t i = 0; i < r->series_len; i++)
        fprintf(f, "%u\t%u\n", i, r->series[i]);
    return fclose(f) == 0 ? 0 : -1;
}
