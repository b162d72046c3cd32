/*
 * upkeep - the state store's housekeeping on the event loop:
 *
 *   commit  once per loop iteration, before the loop sleeps, so a burst of
 *           writes is one transaction and a kill -9 loses at most the
 *           updates of the iteration it interrupted
 *   every UPKEEP_INTERVAL: purge a slice of expired verdicts and of
 *           forgotten ban records (an offender's record is kept
 *           ban_time_max after its ban ended, so escalation remembers it),
 *           then sync to disk, bounding what a power cut can lose
 *
 *   upkeep_start(), upkeep_stop()  (stop commits what is pending)
 */
#ifndef BREAKWATER_UPKEEP_H
#define BREAKWATER_UPKEEP_H

#include <ev.h>

#include "conf.h"
#include "store.h"

#define UPKEEP_INTERVAL 1.0
#define UPKEEP_PURGE_SLICE 4096  /* records looked at per purge and table */

struct upkeep {
    struct ev_loop *loop;
    const struct conf *conf;
    struct store *store;
    ev_prepare commit;
    ev_timer timer;
};

void upkeep_start(struct upkeep *u, struct ev_loop *loop, const struct conf *conf,
                  struct store *store);
/* A reload: ban_time_max from conf from now on. */
void upkeep_set_conf(struct upkeep *u, const struct conf *conf);
void upkeep_stop(struct upkeep *u);

#endif
