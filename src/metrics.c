/*
 * metrics - shared counters and their Prometheus text. See metrics.h.
 *
 * Rendering walks the slots once (metrics_sum) and prints a fixed set of
 * families: its cost depends on the workers and the DNSBL zones, never on
 * the number of connections.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "workers.h"

const double metrics_dnsbl_bounds[METRICS_DNSBL_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, INFINITY,
};

const double metrics_fleet_bounds[METRICS_FLEET_BUCKETS] = {
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
    INFINITY,
};

struct metrics {
    unsigned workers;
    struct metrics_slot *slots;   /* [workers], MAP_SHARED */
    size_t size;
};

/* A growing text buffer; failed stays set once memory ran out. */
struct metrics_text {
    char *data;
    size_t len, cap;
    int failed;
};

struct metrics *metrics_new(unsigned workers)
{
    if (workers == 0 || workers > WORKERS_MAX)
        return NULL;
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->workers = workers;
    m->size = workers * sizeof m->slots[0];
    m->slots = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m->slots == MAP_FAILED) {
        free(m);
        return NULL;
    }
    return m; /* anonymous mappings start zeroed */
}

struct metrics_slot *metrics_slot(struct metrics *m, unsigned index)
{
    return &m->slots[index < m->workers ? index : 0];
}

void metrics_slot_start(struct metrics_slot *slot)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (int i = 0; i < METRICS_STATES; i++)
        slot->open[i] = 0;
    slot->fleet_connected = 0;
    slot->pid = (uint64_t)getpid();
    slot->start_time_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    metrics_process_refresh(slot);
}

/* metrics_add - out += in, field by field (the slot is all uint64_t) */
static void metrics_add(struct metrics_slot *out, const struct metrics_slot *in)
{
    const uint64_t *src = (const uint64_t *)in;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *in / sizeof(uint64_t); i++)
        dst[i] += src[i];
}

void metrics_sum(const struct metrics *m, struct metrics_slot *out)
{
    memset(out, 0, sizeof *out);
    uint64_t start = 0;
    for (unsigned w = 0; w < m->workers; w++) {
        struct metrics_slot copy = m->slots[w];
        if (copy.pid == 0)
            continue;
        if (start == 0 || copy.start_time_ms < start)
            start = copy.start_time_ms;
        metrics_add(out, &copy);
    }
    out->start_time_ms = start; /* the oldest worker, not a sum */
}

/* metrics_count_fds - open descriptors: the size of /proc/self/fd (Linux
 * 6.2 and later), else counted */
static uint64_t metrics_count_fds(void)
{
    struct stat st;
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
        return (uint64_t)st.st_size;
    DIR *dir = opendir("/proc/self/fd");
    uint64_t n = 0;
    if (dir == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

void metrics_process_refresh(struct metrics_slot *slot)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        slot->cpu_us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
                       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    FILE *f = fopen("/proc/self/statm", "re");
    if (f != NULL) {
        /* "size resident shared ...", in pages: the second number */
        char line[256];
        const char *field = fgets(line, sizeof line, f) ? strchr(line, ' ') : NULL;
        if (field != NULL && field[1] >= '0' && field[1] <= '9') {
            char *end;
            errno = 0;
            unsigned long long resident = strtoull(field + 1, &end, 10);
            if (errno == 0 && (*end == ' ' || *end == '\n' || *end == '\0'))
                slot->resident_bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        }
        (void)fclose(f); /* read only */
    }
    slot->open_fds = metrics_count_fds();
}

/* metrics_printf - append to the text */
__attribute__((format(printf, 2, 3)))
static void metrics_printf(struct metrics_text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (t->failed)
            return;
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 16384;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        if (grown == NULL) {
            t->failed = 1;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
}

/* metrics_family - the HELP and TYPE lines of one metric */
static void metrics_family(struct metrics_text *t, const char *name, const char *type,
                           const char *help)
{
    metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* metrics_histogram - the _bucket, _sum and _count lines; labels: "" or
 * `key="value",` */
static void metrics_histogram(struct metrics_text *t, const char *name, const char *labels,
                              const double *bounds, const uint64_t *counts, size_t buckets,
                              uint64_t sum_us)
{
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets; i++) {
        seen += counts[i];
        if (i + 1 == buckets)
            metrics_printf(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                           (unsigned long long)seen);
        else
            metrics_printf(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i],
                           (unsigned long long)seen);
    }
    size_t len = strlen(labels);
    char bare[DNSBL_DOMAIN_MAX + 32] = "";
    if (len > 0) /* without the trailing comma */
        snprintf(bare, sizeof bare, "{%.*s}", (int)(len - 1), labels);
    metrics_printf(t, "%s_sum%s %.6f\n", name, bare, (double)sum_us / 1e6);
    metrics_printf(t, "%s_count%s %llu\n", name, bare, (unsigned long long)seen);
}

/* metrics_by_label - n series of one family that differ in one label:
 * NAME{FIXEDLABEL="names[i]"} values[i] (fixed: "" or labels ending in a
 * comma) */
static void metrics_by_label(struct metrics_text *t, const char *name, const char *fixed,
                             const char *label, const char *const *names,
                             const uint64_t *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        metrics_printf(t, "%s{%s%s=\"%s\"} %llu\n", name, fixed, label, names[i],
                       (unsigned long long)values[i]);
}

/* metrics_render_sessions - connections, refusals, verdicts, relays */
static void metrics_render_sessions(struct metrics_text *t, const struct metrics_slot *s)
{
    static const char *const states[] = {"dnsbl", "reject", "relay", "closing"};
    static const char *const refusals[] = {"max_connections", "per_ip", "backend_full",
                                           "backend_down", "rate"};
    static const char *const verdicts[METRICS_VERDICTS] = {
        "hangup", "listed", "clean", "allowlisted", "denylisted", "pregreet", "limit",
        "backend-down",
    };
    static const char *const directions[] = {"to_backend", "to_client"};
    metrics_family(t, "breakwater_connections", "gauge", "Open client connections by state.");
    metrics_by_label(t, "breakwater_connections", "", "state", states, s->open, METRICS_STATES);
    metrics_family(t, "breakwater_connections_accepted_total", "counter",
                   "Client connections accepted.");
    metrics_printf(t, "breakwater_connections_accepted_total %llu\n",
                   (unsigned long long)s->accepted);
    metrics_family(t, "breakwater_connections_refused_total", "counter",
                   "Client connections turned away, by reason.");
    metrics_by_label(t, "breakwater_connections_refused_total", "", "reason", refusals,
                     s->refused, METRICS_REFUSALS);
    metrics_family(t, "breakwater_sessions_total", "counter",
                   "Ended sessions (one per session log line), by verdict.");
    metrics_by_label(t, "breakwater_sessions_total", "", "verdict", verdicts, s->sessions,
                     METRICS_VERDICTS);
    metrics_family(t, "breakwater_relayed_bytes_total", "counter",
                   "Bytes copied by ended relays, by direction.");
    const uint64_t relayed[] = {s->relayed_to_backend, s->relayed_to_client};
    metrics_by_label(t, "breakwater_relayed_bytes_total", "", "direction", directions, relayed,
                     2);
    metrics_family(t, "breakwater_backend_connect_failures_total", "counter",
                   "Connections to the backend that failed or timed out.");
    metrics_printf(t, "breakwater_backend_connect_failures_total %llu\n",
                   (unsigned long long)s->backend_connect_failures);
}

/* metrics_render_dnsbl - queries and latency by list, the verdict cache */
static void metrics_render_dnsbl(struct metrics_text *t, const struct metrics_slot *s,
                                 const struct conf *conf, size_t cache_entries)
{
    static const char *const results[] = {"listed", "clean", "error", "timeout", "refused"};
    const struct dnsbl_sites *sites = &conf->dnsbl_sites;
    metrics_family(t, "breakwater_dnsbl_queries_total", "counter",
                   "DNSBL queries by list and result.");
    for (size_t z = 0; z < sites->zone_count && z < DNSBL_SITES_MAX; z++)
        for (int r = 0; r < METRICS_DNSBL_RESULTS; r++)
            metrics_printf(t, "breakwater_dnsbl_queries_total{list=\"%s\",result=\"%s\"} %llu\n",
                           sites->name[z], results[r],
                           (unsigned long long)s->dnsbl_queries[z][r]);
    metrics_family(t, "breakwater_dnsbl_answer_duration_seconds", "histogram",
                   "Time from a DNSBL query to its answer, by list.");
    for (size_t z = 0; z < sites->zone_count && z < DNSBL_SITES_MAX; z++) {
        char labels[DNSBL_DOMAIN_MAX + 16];
        snprintf(labels, sizeof labels, "list=\"%s\",", sites->name[z]);
        metrics_histogram(t, "breakwater_dnsbl_answer_duration_seconds", labels,
                          metrics_dnsbl_bounds, s->dnsbl_latency[z], METRICS_DNSBL_BUCKETS,
                          s->dnsbl_latency_sum_us[z]);
    }
    metrics_family(t, "breakwater_dnsbl_health_refused_total", "counter",
                   "Health checks whose test point 127.0.0.2 (or ::ffff:127.0.0.2) the "
                   "list answered with 127.255.255.x: it refuses this resolver.");
    for (size_t z = 0; z < sites->zone_count && z < DNSBL_SITES_MAX; z++)
        metrics_printf(t, "breakwater_dnsbl_health_refused_total{list=\"%s\"} %llu\n",
                       sites->name[z], (unsigned long long)s->dnsbl_health_refused[z]);
    metrics_family(t, "breakwater_verdict_cache_lookups_total", "counter",
                   "Verdict cache lookups, by result.");
    static const char *const lookups[] = {"hit", "miss"};
    const uint64_t cache[] = {s->cache_hits, s->cache_misses};
    metrics_by_label(t, "breakwater_verdict_cache_lookups_total", "", "result", lookups, cache,
                     2);
    metrics_family(t, "breakwater_verdict_cache_entries", "gauge",
                   "Verdicts in the cache (expired ones until upkeep removes them).");
    metrics_printf(t, "breakwater_verdict_cache_entries %zu\n", cache_entries);
}

/* metrics_render_bans - ban requests and their latency */
static void metrics_render_bans(struct metrics_text *t, const struct metrics_slot *s,
                                const struct conf *conf)
{
    static const char *const backends[] = {
        [BAN_BACKEND_NONE] = "none", [BAN_BACKEND_NFT] = "nft",
        [BAN_BACKEND_IPSET] = "ipset", [BAN_BACKEND_RECENT] = "recent",
    };
    static const char *const results[] = {"requested", "applied", "failed", "dropped"};
    const uint64_t counts[] = {s->bans.requested, s->bans.applied, s->bans.failed,
                               s->bans.dropped};
    char labels[32];
    snprintf(labels, sizeof labels, "backend=\"%s\",", backends[conf->ban_backend]);
    metrics_family(t, "breakwater_bans_total", "counter",
                   "Ban and unban requests to the firewall, by backend and result.");
    metrics_by_label(t, "breakwater_bans_total", labels, "result", results, counts, 4);
    metrics_family(t, "breakwater_ban_duration_seconds", "histogram",
                   "Time from a ban request to the firewall having it.");
    metrics_histogram(t, "breakwater_ban_duration_seconds", labels, bans_latency_bounds,
                      s->bans.latency, BANS_LATENCY_BUCKETS, s->bans.latency_sum_us);
}

void metrics_slot_text(const uint64_t *field, size_t size, char *out)
{
    memcpy(out, field, size);
    out[size] = '\0';
    for (size_t i = 0; i < size; i++) /* only what the writer could have put */
        if (out[i] != '\0' && strchr("0123456789abcdefABCDEF.:[]", out[i]) == NULL)
            out[i] = '?';
}

/* metrics_render_fleet - Redis sharing (fleet.h), when fleet_redis is set */
static void metrics_render_fleet(struct metrics_text *t, const struct metrics_slot *s)
{
    static const char *const drops[] = {"malformed", "backlog_full", "refused", "stale", "clock"};
    static const char *const verdicts[] = {"hit", "miss", "timeout"};
    static const char *const results[] = {"sent", "received", "applied"};
    const uint64_t bans[] = {s->fleet_bans_sent, s->fleet_bans_received, s->fleet_bans_applied};
    metrics_family(t, "breakwater_fleet_connected", "gauge",
                   "Processes connected to the fleet's Redis.");
    metrics_printf(t, "breakwater_fleet_connected %llu\n",
                   (unsigned long long)s->fleet_connected);
    metrics_family(t, "breakwater_fleet_bans_total", "counter",
                   "Bans and unbans published, received from peers, and applied here.");
    metrics_by_label(t, "breakwater_fleet_bans_total", "", "result", results, bans, 3);
    metrics_family(t, "breakwater_fleet_bans_dropped_total", "counter",
                   "Fleet bans dropped: malformed messages, a full backlog, refused "
                   "by Redis, older than the event held for the address, or decided ahead of "
                   "this host's clock.");
    metrics_by_label(t, "breakwater_fleet_bans_dropped_total", "", "reason", drops,
                     s->fleet_bans_dropped, METRICS_FLEET_DROPS);
    metrics_family(t, "breakwater_fleet_verdict_lookups_total", "counter",
                   "Shared verdicts asked of Redis after a local cache miss, by result.");
    metrics_by_label(t, "breakwater_fleet_verdict_lookups_total", "", "result", verdicts,
                     s->fleet_verdicts, METRICS_FLEET_VERDICTS);
    metrics_family(t, "breakwater_fleet_propagation_seconds", "histogram",
                   "Time from a peer publishing a ban to its arrival here.");
    metrics_histogram(t, "breakwater_fleet_propagation_seconds", "", metrics_fleet_bounds,
                      s->fleet_latency, METRICS_FLEET_BUCKETS, s->fleet_latency_sum_us);
    metrics_family(t, "breakwater_fleet_failovers_total", "counter",
                   "Times the master named by the sentinels changed and was followed.");
    metrics_printf(t, "breakwater_fleet_failovers_total %llu\n",
                   (unsigned long long)s->fleet_failovers);
    char master[sizeof s->fleet_master + 1], sentinel[sizeof s->fleet_sentinel + 1];
    metrics_slot_text(s->fleet_master, sizeof s->fleet_master, master);
    metrics_slot_text(s->fleet_sentinel, sizeof s->fleet_sentinel, sentinel);
    if (master[0] != '\0') {
        metrics_family(t, "breakwater_fleet_master_info", "gauge",
                       "The fleet's Redis in use, and the sentinel that named it.");
        metrics_printf(t, "breakwater_fleet_master_info{address=\"%s\",sentinel=\"%s\"} 1\n",
                       master, sentinel);
    }
}

/* metrics_render_process - the standard process metrics, summed */
static void metrics_render_process(struct metrics_text *t, const struct metrics_slot *s)
{
    metrics_family(t, "process_open_fds", "gauge", "Open file descriptors (all workers).");
    metrics_printf(t, "process_open_fds %llu\n", (unsigned long long)s->open_fds);
    metrics_family(t, "process_resident_memory_bytes", "gauge",
                   "Resident memory size in bytes (all workers).");
    metrics_printf(t, "process_resident_memory_bytes %llu\n",
                   (unsigned long long)s->resident_bytes);
    metrics_family(t, "process_cpu_seconds_total", "counter",
                   "User and system CPU time in seconds (all workers).");
    metrics_printf(t, "process_cpu_seconds_total %.6f\n", (double)s->cpu_us / 1e6);
    metrics_family(t, "process_start_time_seconds", "gauge",
                   "Start time of the oldest worker since the Unix epoch in seconds.");
    metrics_printf(t, "process_start_time_seconds %.3f\n", (double)s->start_time_ms / 1e3);
}

char *metrics_render(const struct metrics *m, const struct conf *conf, size_t cache_entries,
                     size_t *len)
{
    struct metrics_text t = {0};
    struct metrics_slot *sum = malloc(sizeof *sum);
    if (sum == NULL)
        return NULL;
    metrics_sum(m, sum);
    metrics_render_sessions(&t, sum);
    metrics_render_dnsbl(&t, sum, conf, cache_entries);
    metrics_render_bans(&t, sum, conf);
    if (conf->has_fleet)
        metrics_render_fleet(&t, sum);
    metrics_render_process(&t, sum);
    free(sum);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    *len = t.len;
    return t.data;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    munmap(m->slots, m->size);
    free(m);
}

bool metrics_slot_move_zones(struct metrics_slot *slot, const struct dnsbl_sites *from,
                             const struct dnsbl_sites *to)
{
    bool same = from->zone_count == to->zone_count;
    for (size_t z = 0; same && z < to->zone_count; z++)
        same = strcmp(from->zone[z], to->zone[z]) == 0;
    if (same)
        return false;
    struct metrics_slot old;
    memcpy(&old, slot, sizeof old);
    for (size_t z = 0; z < DNSBL_SITES_MAX; z++) {
        size_t was = 0;
        while (z < to->zone_count && was < from->zone_count && was < DNSBL_SITES_MAX &&
               strcmp(from->zone[was], to->zone[z]) != 0)
            was++;
        bool found = z < to->zone_count && was < from->zone_count && was < DNSBL_SITES_MAX;
        if (found) {
            memcpy(slot->dnsbl_queries[z], old.dnsbl_queries[was], sizeof slot->dnsbl_queries[z]);
            memcpy(slot->dnsbl_latency[z], old.dnsbl_latency[was], sizeof slot->dnsbl_latency[z]);
            slot->dnsbl_latency_sum_us[z] = old.dnsbl_latency_sum_us[was];
            slot->dnsbl_health_refused[z] = old.dnsbl_health_refused[was];
        } else {
            memset(slot->dnsbl_queries[z], 0, sizeof slot->dnsbl_queries[z]);
            memset(slot->dnsbl_latency[z], 0, sizeof slot->dnsbl_latency[z]);
            slot->dnsbl_latency_sum_us[z] = 0;
            slot->dnsbl_health_refused[z] = 0;
        }
    }
    return true;
}
