/*
 * watch - the log watcher. See watch.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "addrmap.h"
#include "follow.h"
#include "journal.h"
#include "log.h"
#include "watch.h"

#define WATCH_FILES_MAX CONF_WATCH_LOGS_MAX
#define WATCH_SWEEP_INTERVAL 60.0  /* seconds between sweeps of old hit counts */

/* Rejects seen of one address, while watch_max_hits > 1. */
struct watch_hits {
    struct addrmap_node node;  /* first: address, hash chain */
    unsigned count;
    double first;              /* when the window began */
};

struct watch {
    struct ev_loop *loop;
    const struct conf *conf;
    const struct logrules *rules;
    struct bans *bans;
    struct follow *follow[WATCH_FILES_MAX];
    size_t files;
    struct journal *journal;
    struct addrmap hits;
    ev_timer sweep;
    struct watch_stats stats;
};

/* watch_count - one more reject of a; returns how many there are now
 * within the window (1 when counting is off or out of memory) */
static unsigned watch_count(struct watch *w, const struct addr *a)
{
    double now = ev_now(w->loop);
    if (w->conf->watch_max_hits <= 1)
        return 1;
    struct addrmap_node **link = addrmap_find(&w->hits, a);
    struct watch_hits *h = (struct watch_hits *)*link;
    if (h == NULL) {
        h = calloc(1, sizeof *h);
        if (h == NULL)
            return 1;
        h->node.addr = *a;
        addrmap_add(&w->hits, &h->node);
        link = addrmap_find(&w->hits, a);
    }
    if (h->count == 0 || now - h->first > w->conf->watch_window) {
        h->count = 0;
        h->first = now;
    }
    unsigned n = ++h->count;
    if (n >= w->conf->watch_max_hits) { /* banned: start over */
        addrmap_remove(&w->hits, link);
        free(h);
    }
    return n;
}

/* watch_line - one line of a followed file */
static void watch_line(void *arg, const char *line, size_t len)
{
    struct watch *w = arg;
    struct logrules_hit hit;
    char text[ADDR_TEXT_MAX];
    w->stats.lines++;
    /* a line follow or journal cut at FOLLOW_LINE_MAX: its end, where the
     * MTA's own words may be, is gone; only whole lines are read */
    if (len >= FOLLOW_LINE_MAX || !logrules_match(w->rules, line, len, &hit))
        return;
    w->stats.rejects++;
    unsigned n = watch_count(w, &hit.addr);
    const char *action = "count";
    if (n >= w->conf->watch_max_hits) {
        bool banned = bans_offender(w->bans, &hit.addr, STORE_BAN_LOG, true);
        w->stats.bans += banned;
        action = banned ? "ban" : "none";
    }
    addr_format(&hit.addr, text, sizeof text);
    log_info("watch client=[%s] rule=%s list=%s hits=%u action=%s", text, hit.rule,
             hit.list[0] ? hit.list : "-", n, action);
}

/* watch_sweep_cb - forget counts whose window has passed */
static void watch_sweep_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    struct watch *w = timer->data;
    double now = ev_now(loop);
    (void)revents;
    for (size_t i = 0; i < w->hits.buckets; i++) {
        struct addrmap_node **link = addrmap_bucket(&w->hits, i);
        while (*link != NULL) {
            struct watch_hits *h = (struct watch_hits *)*link;
            if (now - h->first <= w->conf->watch_window) {
                link = &(*link)->chain;
                continue;
            }
            addrmap_remove(&w->hits, link);
            free(h);
        }
    }
}

struct watch *watch_start(struct ev_loop *loop, const struct conf *conf,
                          const struct logrules *rules, struct bans *bans,
                          const struct watch_sources *from, char *err, size_t errsize)
{
    struct watch *w = calloc(1, sizeof *w);
    if (w == NULL || addrmap_init(&w->hits, 64) < 0) {
        free(w);
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    *w = (struct watch){.loop = loop, .conf = conf, .rules = rules, .bans = bans,
                        .hits = w->hits};
    const char *start = from->from_start ? " from its start" : "";
    for (size_t i = 0; i < from->count && i < WATCH_FILES_MAX; i++) {
        w->follow[i] = follow_start(loop, from->paths[i], from->from_start, watch_line, w);
        if (w->follow[i] == NULL) {
            watch_stop(w);
            snprintf(err, errsize, "out of memory");
            return NULL;
        }
        w->files++;
        log_info("watching %s%s", from->paths[i], start);
    }
    if (from->journal) {
        w->journal = journal_start(loop, from->journal_dir, from->from_start, from->journal_uids,
                                   from->journal_uid_count, watch_line, w, err, errsize);
        if (w->journal == NULL) {
            watch_stop(w);
            return NULL;
        }
        log_info("watching the journal%s%s%s", from->journal_dir ? " in " : "",
                 from->journal_dir ? from->journal_dir : "", start);
    }
    ev_timer_init(&w->sweep, watch_sweep_cb, WATCH_SWEEP_INTERVAL, WATCH_SWEEP_INTERVAL);
    w->sweep.data = w;
    ev_timer_start(loop, &w->sweep);
    return w;
}

void watch_stats(const struct watch *w, struct watch_stats *out)
{
    *out = w->stats;
}

void watch_stop(struct watch *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->files; i++)
        follow_stop(w->follow[i]);
    journal_stop(w->journal);
    ev_timer_stop(w->loop, &w->sweep);
    for (size_t i = 0; i < w->hits.buckets; i++) {
        struct addrmap_node *n = *addrmap_bucket(&w->hits, i), *next;
        for (; n != NULL; n = next) {
            next = n->chain;
            free(n);
        }
    }
    addrmap_free(&w->hits);
    free(w);
}
