/*
 * upkeep - commits, syncs and purges of the state store. See upkeep.h.
 */
#include "upkeep.h"

static void upkeep_commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct upkeep *u = w->data;
    (void)loop, (void)revents;
    store_commit(u->store);
}

static void upkeep_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upkeep *u = w->data;
    double now = ev_now(loop);
    (void)revents;
    store_verdict_purge(u->store, now, UPKEEP_PURGE_SLICE);
    store_ban_purge(u->store, now, u->conf->ban_time_max, UPKEEP_PURGE_SLICE);
    store_commit(u->store);
    store_sync(u->store);
}

void upkeep_start(struct upkeep *u, struct ev_loop *loop, const struct conf *conf,
                  struct store *store)
{
    *u = (struct upkeep){.loop = loop, .conf = conf, .store = store};
    ev_prepare_init(&u->commit, upkeep_commit_cb);
    u->commit.data = u;
    ev_prepare_start(loop, &u->commit);
    ev_timer_init(&u->timer, upkeep_timer_cb, UPKEEP_INTERVAL, UPKEEP_INTERVAL);
    u->timer.data = u;
    ev_timer_start(loop, &u->timer);
}

void upkeep_set_conf(struct upkeep *u, const struct conf *conf)
{
    u->conf = conf;
}

void upkeep_stop(struct upkeep *u)
{
    ev_prepare_stop(u->loop, &u->commit);
    ev_timer_stop(u->loop, &u->timer);
    store_commit(u->store);
}
