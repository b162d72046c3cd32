/*
 * startup - start-up steps shared by serve and watch. See startup.h.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "banhelper.h"
#include "control.h"
#include "httpd.h"
#include "log.h"
#include "privsep.h"
#include "startup.h"
#include "store.h"

/* startup_announce_bans - where bans go, and what a backend cannot do */
void startup_announce_bans(const struct conf *conf)
{
    static const char *const backend[] = {
        [BAN_BACKEND_NONE] = "none", [BAN_BACKEND_NFT] = "nft",
        [BAN_BACKEND_IPSET] = "ipset", [BAN_BACKEND_RECENT] = "recent",
    };
    if (conf->ban_backend == BAN_BACKEND_NONE) {
        log_info("ban_backend = none: refused clients are not banned in the firewall");
        return;
    }
    log_info("banning refused clients in %s '%s' for %gs, doubling for repeat "
             "offenders up to %gs", backend[conf->ban_backend], conf->ban_set,
             conf->ban_time, conf->ban_time_max);
    if (conf->ban_backend != BAN_BACKEND_RECENT)
        return;
    char limit[32] = "?";
    FILE *f = fopen("/sys/module/xt_recent/parameters/ip_list_tot", "re");
    if (f != NULL) {
        if (fgets(limit, sizeof limit, f) != NULL)
            limit[strcspn(limit, "\n")] = '\0';
        (void)fclose(f); /* read only */
    }
    log_warning("ban_backend = recent: an xt_recent list keeps at most %s addresses "
                "(module parameter ip_list_tot; older ones are dropped silently) and "
                "every ban lasts the rule's --seconds: no escalation", limit);
}

/* startup_signal_cb - SIGTERM or SIGINT: leave the loop */
void startup_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    log_info("signal %d: shutting down", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

/* startup_control_dir - the control socket's directory, opened: created
 * for the user when missing (/run is emptied at boot); one that exists is
 * left as it is (a root-owned RuntimeDirectory= stays root's). Returns its
 * descriptor or -1. */
static int startup_control_dir(const struct conf *conf, const struct privsep_user *as,
                               char *err, size_t errsize)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", conf->control_socket);
    char *slash = strrchr(dir, '/');
    slash[slash == dir ? 1 : 0] = '\0';
    return privsep_dir_open(dir, as, 0750, false, err, errsize);
}

/* startup_control - the control socket (serve); -1 on failure */
static int startup_control(const struct conf *conf, const struct privsep_user *as, char *err,
                           size_t errsize)
{
    int dir_fd = startup_control_dir(conf, as, err, errsize);
    if (dir_fd < 0)
        return -1;
    int fd = control_listen(conf->control_socket, dir_fd, as, err, errsize);
    close(dir_fd);
    return fd;
}

/* startup_state_dir - state_dir, made or given to the user (as): the
 * store's files in it must be the user's already (privsep_own_dir); -1
 * with err set ("cannot open the state store: ...") */
static int startup_state_dir(const struct conf *conf, const struct privsep_user *as, char *err,
                             size_t errsize)
{
    char why[768];
    if (privsep_own_dir(conf->state_dir, as, 0750, store_files, why, sizeof why) == 0)
        return 0;
    snprintf(err, errsize, "cannot open the state store: %s", why);
    return -1;
}

/* startup_prepare - while root: the state directory, the helper, the
 * control socket and the metrics listener (serve only: watch leaves ctl to
 * serve, and its helper also ends banned clients' connections); then give
 * up root. No file is reached by a path root resolves inside a directory
 * the user can change (privsep.h). Returns 0 or -1 (logged). */
int startup_prepare(const struct conf *conf, struct startup *ctx, unsigned workers,
                    bool watch)
{
    char err[1024];
    struct privsep_user user, *as = NULL;
    ctx->metrics_fd = -1;
    if (privsep_is_root()) {
        if (privsep_lookup(conf->user, &user, err, sizeof err) < 0)
            goto fail;
        as = &user;
    }
    if (startup_state_dir(conf, as, err, sizeof err) < 0)
        goto fail;
    if (conf->ban_backend != BAN_BACKEND_NONE &&
        banhelper_start(conf, as, watch, ctx->helper_fd, workers, err, sizeof err) < 0)
        goto fail;
    ctx->control_fd = watch ? -1 : startup_control(conf, as, err, sizeof err);
    if (!watch && ctx->control_fd < 0)
        goto fail;
    if (!watch && conf->has_metrics_listen) {
        ctx->metrics_fd = httpd_listen(&conf->metrics_listen, err, sizeof err);
        if (ctx->metrics_fd < 0)
            goto fail;
    }
    if (as != NULL && privsep_drop(as, PRIVSEP_KEEP_NOTHING, err, sizeof err) < 0)
        goto fail;
    if (as != NULL)
        log_info("running as user %s", conf->user);
    return 0;
fail:
    log_error("%s", err);
    return -1;
}
