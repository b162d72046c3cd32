/*
 * watch - `breakwater watch`: for an MTA that stays exposed on port 25.
 * Follows the MTA's log files (follow.h) or the systemd journal
 * (journal.h), finds the DNSBL rejects in them
 * (logrules.h), and bans each such client through the same path as serve
 * (bans.h: policy, escalation, state store, allowlist, the privileged
 * helper), asking the helper to end its live connections to watch_ports as
 * well, so that the MTA's process for it goes away at once.
 *
 *   watch_start()  follow every file; watch_stop()
 *   watch_stats()  lines read, rejects found, bans asked for
 *
 * watch_max_hits > 1: an address is banned once that many rejects of it
 * were seen within watch_window (one reject is proof enough by default).
 * Each reject found is logged:
 *   watch client=[ADDR] rule=RULE list=LIST hits=N action=ban|count|none
 */
#ifndef BREAKWATER_WATCH_H
#define BREAKWATER_WATCH_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "bans.h"
#include "conf.h"
#include "logrules.h"

struct watch;

struct watch_stats {
    uint64_t lines;
    uint64_t rejects;   /* lines a rule matched */
    uint64_t bans;      /* bans asked for */
};

/* What to follow: paths[0..count) and, with journal, the systemd journal
 * (journal_dir NULL: the local one). */
struct watch_sources {
    char *const *paths;
    size_t count;
    bool journal;
    const char *journal_dir;
    const uid_t *journal_uids;  /* whose entries are read (watch_journal_users) */
    size_t journal_uid_count;
    bool from_start;
};

/* Returns NULL with err set. */
struct watch *watch_start(struct ev_loop *loop, const struct conf *conf,
                          const struct logrules *rules, struct bans *bans,
                          const struct watch_sources *from, char *err, size_t errsize);
void watch_stats(const struct watch *w, struct watch_stats *out);
void watch_stop(struct watch *w);

#endif
