/*
 * cmd_serve - `breakwater serve`: the listeners and privileges first
 * (startup.h), then one process or `workers` processes (workers.h), each
 * with its store, resolver, DNSBL lookups, bans, sessions, control socket
 * and metrics endpoint, until SIGTERM or SIGINT. The metrics (metrics.h)
 * are mapped before the workers fork: each worker counts in its own slot.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bans.h"
#include "cmd.h"
#include "control.h"
#include "dnsbl.h"
#include "fleet.h"
#include "generation.h"
#include "httpd.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "startup.h"
#include "store.h"
#include "upkeep.h"
#include "workers.h"

#define SERVE_REAP_INTERVAL 1.0   /* seconds between frees of old generations */

/* serve_endpoint_text - "127.0.0.1:25" or "[::1]:25" */
static void serve_endpoint_text(const struct endpoint *e, char *buf, size_t size)
{
    char text[ADDR_TEXT_MAX];
    addr_format(&e->addr, text, sizeof text);
    snprintf(buf, size, e->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", text, e->port);
}

/* serve_announce - say where we listen, where we relay, which lists */
static void serve_announce(const struct conf *conf)
{
    static const char *const proxy[] = {"none", "v1", "v2"};
    char text[64];
    for (size_t i = 0; i < conf->listen_count; i++) {
        serve_endpoint_text(&conf->listen[i], text, sizeof text);
        log_info("listening on %s", text);
    }
    serve_endpoint_text(&conf->backend, text, sizeof text);
    log_info("relaying clean clients to %s (PROXY protocol: %s, at most %u at once)",
             text, proxy[conf->backend_proxy_protocol], conf->backend_max_connections);
    const struct dnsbl_sites *sites = &conf->dnsbl_sites;
    if (sites->count == 0)
        log_warning("no dnsbl_sites configured: every client that is not "
                    "denylisted is relayed");
    for (size_t i = 0; i < sites->count; i++)
        log_info("dnsbl site %s (weight %d)", sites->site[i].spec, sites->site[i].weight);
    dnsbl_warn_keyed(sites);
    log_info("listed at score >= %d; decision within %.1fs", conf->dnsbl_threshold,
             conf->dnsbl_timeout);
    startup_announce_bans(conf);
    if (conf->has_metrics_listen) {
        serve_endpoint_text(&conf->metrics_listen, text, sizeof text);
        log_info("metrics at http://%s/metrics", text);
    }
    if (conf->backend_proxy_protocol == PROXY_NONE)
        log_warning("backend_proxy_protocol = none: the MTA sees every relayed "
                    "client as this host's address%s; it must not grant that "
                    "address relay rights (see docs/deployment.md, \"Never an open relay\")",
                    conf->has_backend_source ? " (backend_source)" : "");
}

/* The pieces of one serving process, made and freed in order. */
struct serve_daemon {
    struct ev_loop *loop;
    struct store *store;
    struct generation *current;      /* held; the server holds it too */
    struct generation *generations;  /* every one not freed yet, newest first */
    struct bans *bans;
    struct fleet *fleet;        /* NULL: fleet_redis is empty */
    struct server srv;
    bool serving;
    bool supervised;            /* a worker: its supervisor leads a reload */
    pid_t supervisor;           /* the pid that started it (0: none) */
    struct metrics_slot *slot;
    struct control *control;
    struct httpd *httpd;        /* NULL: metrics_listen is empty */
    struct upkeep upkeep;
    ev_signal sigterm, sigint, sighup;
    ev_timer reap;              /* frees the generations no one holds */
    ev_timer drain;             /* after a signal: until the relays are done */
    ev_timer watchdog;          /* systemd's WatchdogSec= (notify.h) */
    double drain_deadline;
};

/* serve_read_next - conf_reload(), with this process's share of the
 * limits; the same returns and note */
static int serve_read_next(const struct serve_daemon *d, struct conf *next, char *note,
                           size_t size)
{
    if (conf_reload(next, d->current->conf, note, size) < 0)
        return -1;
    if (d->supervised)
        workers_divide(next, workers_count(next));
    return 0;
}

/* serve_reload - SIGHUP or `ctl reload`: new sessions start under the
 * configuration read again; sessions already open keep theirs. Returns
 * 0 (note: the keys that need a restart, or "") or -1 (note: why the
 * running configuration stays). */
static int serve_reload(struct serve_daemon *d, char *note, size_t size)
{
    char err[CONF_ERR_MAX], sites[4096];
    struct conf next;
    if (serve_read_next(d, &next, note, size) < 0) {
        log_error("%s", note);
        return -1;
    }
    struct generation *gen = generation_new(d->loop, NULL, &next, d->store, err, sizeof err);
    if (gen == NULL) {
        snprintf(note, size, "reload refused, the running configuration stays: %s", err);
        log_error("%s", note);
        return -1;
    }
    const struct conf *conf = gen->conf;
    gen->next = d->generations;
    d->generations = gen;
    if (metrics_slot_move_zones(d->slot, &d->current->conf->dnsbl_sites, &conf->dnsbl_sites))
        for (struct generation *old = gen->next; old != NULL; old = old->next)
            dnsbl_set_metrics(old->dnsbl, NULL); /* their rows are not theirs now */
    dnsbl_set_metrics(gen->dnsbl, d->slot);
    dnsbl_sites_text(&conf->dnsbl_sites, sites, sizeof sites);
    store_set_sites(d->store, sites);
    if (d->fleet != NULL)
        dnsbl_set_fleet(gen->dnsbl, d->fleet);
    server_reload(&d->srv, generation_hold(gen));
    bans_set_conf(d->bans, conf);
    httpd_set_conf(d->httpd, conf);
    upkeep_set_conf(&d->upkeep, conf);
    log_set_level(conf->log_level);
    generation_drop(d->current);
    d->current = gen;
    dnsbl_health_start(gen->dnsbl);
    log_info("configuration reloaded%s%s", note[0] ? "; " : "", note);
    return 0;
}

/* serve_control_reload - `ctl reload`. A worker checks the file itself (so
 * that the answer carries the error) and then asks its supervisor, which
 * passes SIGHUP on to every worker. */
static int serve_control_reload(void *arg, char *note, size_t size)
{
    struct serve_daemon *d = arg;
    if (!d->supervised)
        return serve_reload(d, note, size);
    struct conf next;
    if (serve_read_next(d, &next, note, size) < 0)
        return -1;
    conf_free(&next);
    if (getppid() != d->supervisor) { /* never SIGHUP to whoever adopted us */
        snprintf(note, size, "the supervisor is gone: restart breakwater");
        return -1;
    }
    if (kill(d->supervisor, SIGHUP) < 0) {
        snprintf(note, size, "cannot signal the supervisor: %s", strerror(errno));
        return -1;
    }
    return 0; /* note: as conf_reload() left it */
}

static void serve_sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    char note[CONF_ERR_MAX + 128];
    (void)loop, (void)revents;
    serve_reload(w->data, note, sizeof note);
}

static void serve_reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct serve_daemon *d = w->data;
    (void)loop, (void)revents;
    generation_reap(&d->generations);
}

/* serve_daemon_start - store, lists, bans, listeners, control */
static int serve_daemon_start(struct serve_daemon *d, struct ev_loop *loop,
                             const struct conf *conf, const struct startup *ctx,
                             const int *fds, unsigned index, pid_t supervisor)
{
    char err[1024], sites[4096];
    d->loop = loop;
    d->supervised = supervisor != 0;
    d->supervisor = supervisor;
    dnsbl_sites_text(&conf->dnsbl_sites, sites, sizeof sites);
    d->store = store_open(conf->state_dir, conf->cache_max_entries, sites, err, sizeof err);
    if (d->store == NULL)
        goto fail;
    d->current = d->generations = generation_new(loop, conf, NULL, d->store, err, sizeof err);
    if (d->current == NULL)
        goto fail;
    d->bans = bans_new(loop, conf, d->store, ctx->helper_fd[index]);
    if (d->bans == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    d->slot = metrics_slot(ctx->metrics, index);
    metrics_slot_start(d->slot);
    dnsbl_set_metrics(d->current->dnsbl, d->slot);
    bans_set_metrics(d->bans, d->slot);
    if (conf->has_fleet) { /* worker 0 alone listens to the peers' bans */
        d->fleet = fleet_new(loop, conf, index == 0, bans_peer, d->bans, err, sizeof err);
        if (d->fleet == NULL)
            goto fail;
        fleet_set_metrics(d->fleet, d->slot);
        bans_set_fleet(d->bans, d->fleet);
        dnsbl_set_fleet(d->current->dnsbl, d->fleet);
    }
    if (server_start(&d->srv, loop, generation_hold(d->current), d->bans, d->slot, fds, err,
                     sizeof err) < 0) {
        generation_drop(d->current);
        return log_error("%s", err), -1;
    }
    d->serving = true;
    d->control = control_start(loop, ctx->control_fd, serve_control_reload, d, d->store,
                               d->bans, ctx->metrics);
    if (d->control != NULL && ctx->metrics_fd >= 0)
        d->httpd = httpd_start(loop, ctx->metrics_fd, conf, ctx->metrics, d->slot, d->store);
    if (d->control == NULL || (ctx->metrics_fd >= 0 && d->httpd == NULL)) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    upkeep_start(&d->upkeep, loop, conf, d->store);
    ev_timer_init(&d->reap, serve_reap_cb, SERVE_REAP_INTERVAL, SERVE_REAP_INTERVAL);
    d->reap.data = d;
    ev_timer_start(loop, &d->reap);
    return 0;
fail:
    log_error("%s", err);
    for (size_t i = 0; !d->serving && i < conf->listen_count; i++)
        close(fds[i]);
    return -1;
}

/* serve_daemon_stop - everything serve_daemon_start() made, in reverse */
static void serve_daemon_stop(struct serve_daemon *d)
{
    ev_timer_stop(d->loop, &d->reap);
    httpd_stop(d->httpd);
    if (d->control != NULL) {
        control_stop(d->control);
        upkeep_stop(&d->upkeep);
    }
    if (d->serving)
        server_stop(&d->srv);
    fleet_free(d->fleet); /* answers the lookups still waiting for it */
    bans_free(d->bans);
    generation_drop(d->current);
    generation_reap(&d->generations); /* every session is gone: all of them */
    if (d->store != NULL)
        store_close(d->store);
}

/* serve_drain_cb - stopping: leave the loop once every session is done
 * or shutdown_timeout has passed */
static void serve_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct serve_daemon *d = w->data;
    (void)revents;
    if (d->srv.connections > 0 && ev_now(loop) < d->drain_deadline)
        return;
    if (d->srv.connections > 0)
        log_warning("shutdown_timeout: closing %u sessions still open", d->srv.connections);
    ev_break(loop, EVBREAK_ALL);
}

/* serve_signal_cb - SIGTERM, SIGINT: stop accepting, tell the clients not
 * relayed yet to come back later, let the relays finish; a second signal
 * stops at once */
static void serve_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct serve_daemon *d = w->data;
    (void)revents;
    if (ev_is_active(&d->drain)) {
        log_info("signal %d again: stopping now", w->signum);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    double timeout = d->current->conf->shutdown_timeout;
    log_info("signal %d: shutting down (relays get up to %gs)", w->signum, timeout);
    notify_stopping();
    ev_signal_stop(loop, &d->sighup); /* no reload while draining */
    server_shutdown(&d->srv);
    d->drain_deadline = ev_now(loop) + timeout;
    ev_timer_init(&d->drain, serve_drain_cb, 0., 0.1);
    d->drain.data = d;
    ev_timer_start(loop, &d->drain);
}

/* serve_worker - the daemon on these listeners until a signal */
static int serve_worker(void *arg, const struct conf *conf, const int *fds,
                             unsigned index, bool first, pid_t supervisor)
{
    const struct startup *ctx = arg;
    struct serve_daemon d = {0};
    struct ev_loop *loop = ev_default_loop(0);
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail: a valid signal, a valid handler */
    if (serve_daemon_start(&d, loop, conf, ctx, fds, index, supervisor) < 0) {
        serve_daemon_stop(&d);
        return 1;
    }
    dnsbl_health_start(d.current->dnsbl);
    if (index == 0 && first && conf->ban_backend != BAN_BACKEND_NONE)
        log_info("put %zu stored bans back into the firewall", bans_restore(d.bans));
    ev_signal_init(&d.sigterm, serve_signal_cb, SIGTERM);
    ev_signal_init(&d.sigint, serve_signal_cb, SIGINT);
    ev_signal_init(&d.sighup, serve_sighup_cb, SIGHUP);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    ev_signal_start(loop, &d.sigterm);
    ev_signal_start(loop, &d.sigint);
    ev_signal_start(loop, &d.sighup);
    sigset_t watched;   /* a worker starts with them blocked (workers.c) */
    sigemptyset(&watched);
    sigaddset(&watched, SIGTERM);
    sigaddset(&watched, SIGINT);
    sigaddset(&watched, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &watched, NULL);
    notify_ready(); /* as a worker: ignored by systemd, the supervisor says it */
    notify_watchdog_start(loop, &d.watchdog);
    ev_run(loop, 0);
    ev_timer_stop(loop, &d.watchdog);
    ev_timer_stop(loop, &d.drain);
    ev_signal_stop(loop, &d.sigterm);
    ev_signal_stop(loop, &d.sigint);
    ev_signal_stop(loop, &d.sighup);
    serve_daemon_stop(&d);
    ev_loop_destroy(loop);
    return 0;
}

/* serve_check_store - open and close the store once, so that a broken one
 * is one clear error at start rather than workers dying */
static int serve_check_store(const struct conf *conf)
{
    char err[1024], sites[4096];
    dnsbl_sites_text(&conf->dnsbl_sites, sites, sizeof sites);
    struct store *store = store_open(conf->state_dir, conf->cache_max_entries, sites, err,
                                     sizeof err);
    if (store == NULL) {
        log_error("%s", err);
        return -1;
    }
    store_close(store);
    return 0;
}

/* serve_check_fleet - a password Redis refuses is a start error; Redis
 * away is not (the daemon goes on alone and keeps trying) */
static int serve_check_fleet(const struct conf *conf)
{
    char err[1024];
    if (!conf->has_fleet || fleet_probe(conf, err, sizeof err) == 0)
        return 0;
    log_error("%s", err);
    return -1;
}

/* serve_run - listeners and privileges first, then one process or
 * `workers` processes on the same ports */
static int serve_run(struct conf *conf, struct startup *ctx, unsigned n)
{
    if (n > 1) {
        struct workers *w = workers_open(conf);
        if (w == NULL)
            return 1;
        if (startup_prepare(conf, ctx, n, false) < 0 || serve_check_store(conf) < 0 ||
            serve_check_fleet(conf) < 0) {
            workers_close(w);
            return 1;
        }
        serve_announce(conf);
        return workers_run(w, serve_worker, ctx);
    }
    char err[512];
    int fds[CONF_LISTEN_MAX];
    if (server_open_listeners(conf, false, fds, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    if (startup_prepare(conf, ctx, 1, false) < 0 || serve_check_fleet(conf) < 0) {
        for (size_t i = 0; i < conf->listen_count; i++)
            close(fds[i]);
        return 1;
    }
    serve_announce(conf);
    return serve_worker(ctx, conf, fds, 0, true, 0); /* no supervisor */
}

/* cmd_serve - the shared metrics, then serve_run() */
int cmd_serve(struct conf *conf)
{
    struct startup ctx = {.control_fd = -1, .metrics_fd = -1};
    unsigned n = workers_count(conf);
    for (unsigned i = 0; i < WORKERS_MAX; i++)
        ctx.helper_fd[i] = -1;
    ctx.metrics = metrics_new(n);
    if (ctx.metrics == NULL) {
        log_error("cannot map the shared metrics: out of memory");
        return 1;
    }
    int status = serve_run(conf, &ctx, n);
    metrics_free(ctx.metrics);
    return status;
}

