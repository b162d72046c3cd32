/*
 * main - the command line: serve, check, help, --version.
 *
 * Configuration comes from the file (-c, or the default path when it
 * exists), then every -o key=value in order; anything wrong is one line on
 * stderr and exit status 2, before anything starts.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "banhelper.h"
#include "bans.h"
#include "check.h"
#include "control.h"
#include "conf.h"
#include "dnsbl.h"
#include "log.h"
#include "privsep.h"
#include "rules.h"
#include "resolver.h"
#include "server.h"
#include "store.h"
#include "upkeep.h"
#include "watch.h"
#include "workers.h"

#define MAIN_DEFAULT_CONF "/etc/breakwater/breakwater.conf"
#define MAIN_EXIT_USAGE 2
#define MAIN_RULES_MAX 65536   /* bytes of a watch_rules file */

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: breakwater serve [-c FILE] [-o key=value]...\n"
            "       breakwater check [-c FILE] [-o key=value]... ADDRESS...\n"
            "       breakwater rules [-c FILE] [-o key=value]...\n"
            "       breakwater ctl [-c FILE] [-o key=value]... COMMAND [ARGUMENT]...\n"
            "       breakwater watch [-c FILE] [-o key=value]... [--from-start]\n"
            "                        [--journal[=DIR]] [LOGFILE]...\n"
            "       breakwater help | --version\n"
            "\n"
            "serve  run the SMTP front end in the foreground (logs to stderr)\n"
            "check  look addresses up in the configured DNSBLs and show the verdict\n"
            "rules  print the firewall rules that ban_backend needs (nft: pipe to nft -f -)\n"
            "ctl    talk to the running daemon: ban ADDRESS [DURATION], unban ADDRESS,\n"
            "       bans, flush (the verdict cache), stats\n"
            "watch  follow an exposed MTA's log: ban the clients it refused for a DNSBL\n"
            "       and end their connections (default: watch_logs)\n"
            "\n"
            "-c FILE       configuration file (default " MAIN_DEFAULT_CONF ")\n"
            "-o key=value  override one configuration key\n");
}

/* main_configure - file and -o options into conf; leaves the operands'
 * index in *first_operand. Returns 0, or the exit status on error. */
static int main_configure(struct conf *conf, int argc, char **argv, int *first_operand)
{
    char err[CONF_ERR_MAX];
    const char *path = NULL;
    int i = 2;
    for (; i < argc; i++) {
        bool c = strcmp(argv[i], "-c") == 0, o = strcmp(argv[i], "-o") == 0;
        if (!c && !o)
            break;
        if (i + 1 >= argc) {
            fprintf(stderr, "breakwater: %s needs an argument\n", argv[i]);
            return MAIN_EXIT_USAGE;
        }
        if (c)
            path = argv[++i];
        else
            i++; /* -o are applied after the file */
    }
    *first_operand = i;
    conf_init(conf);
    if (conf_load_file(conf, path ? path : MAIN_DEFAULT_CONF, path != NULL, err) < 0)
        goto fail;
    for (int j = 2; j < i; j += 2)
        if (strcmp(argv[j], "-o") == 0 && conf_set_option(conf, argv[j + 1], err) < 0)
            goto fail;
    if (conf_finish(conf, err) < 0)
        goto fail;
    log_set_level(conf->log_level);
    return 0;
fail:
    fprintf(stderr, "breakwater: %s\n", err);
    return MAIN_EXIT_USAGE;
}

/* main_endpoint_text - "127.0.0.1:25" or "[::1]:25" */
static void main_endpoint_text(const struct endpoint *e, char *buf, size_t size)
{
    char text[ADDR_TEXT_MAX];
    addr_format(&e->addr, text, sizeof text);
    snprintf(buf, size, e->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", text, e->port);
}

/* main_announce_bans - where bans go, and what a backend cannot do */
static void main_announce_bans(const struct conf *conf)
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
        fclose(f);
    }
    log_warning("ban_backend = recent: an xt_recent list keeps at most %s addresses "
                "(module parameter ip_list_tot; older ones are dropped silently) and "
                "every ban lasts the rule's --seconds: no escalation", limit);
}

/* main_announce - say where we listen, where we relay, which lists */
static void main_announce(const struct conf *conf)
{
    static const char *const proxy[] = {"none", "v1", "v2"};
    char text[64];
    for (size_t i = 0; i < conf->listen_count; i++) {
        main_endpoint_text(&conf->listen[i], text, sizeof text);
        log_info("listening on %s", text);
    }
    main_endpoint_text(&conf->backend, text, sizeof text);
    log_info("relaying clean clients to %s (PROXY protocol: %s, at most %u at once)",
             text, proxy[conf->backend_proxy_protocol], conf->backend_max_connections);
    const struct dnsbl_sites *sites = &conf->dnsbl_sites;
    if (sites->count == 0)
        log_warning("no dnsbl_sites configured: every client that is not "
                    "denylisted is relayed");
    for (size_t i = 0; i < sites->count; i++)
        log_info("dnsbl site %s (weight %d)", sites->site[i].spec, sites->site[i].weight);
    log_info("listed at score >= %d; decision within %.1fs", conf->dnsbl_threshold,
             conf->dnsbl_timeout);
    main_announce_bans(conf);
    if (conf->backend_proxy_protocol == PROXY_NONE)
        log_warning("backend_proxy_protocol = none: the MTA sees every relayed "
                    "client as this host's address%s; it must not grant that "
                    "address relay rights (see README, \"Never an open relay\")",
                    conf->has_backend_source ? " (backend_source)" : "");
}

/* main_signal_cb - SIGTERM or SIGINT: leave the loop */
static void main_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    log_info("signal %d: shutting down", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

/* What every serving process is handed, made by main_serve() while root. */
struct main_serve_ctx {
    int helper_fd[WORKERS_MAX]; /* one per worker; -1: ban_backend = none */
    int control_fd;
};

/* main_sites_text - the dnsbl_sites as one line, to tell the store when
 * they changed */
static void main_sites_text(const struct conf *conf, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < conf->dnsbl_sites.count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "",
                                 conf->dnsbl_sites.site[i].spec);
}

/* The pieces of one serving process, made and freed in order. */
struct main_daemon {
    struct store *store;
    struct resolver *resolver;
    struct dnsbl *dnsbl;
    struct bans *bans;
    struct server srv;
    bool serving;
    struct control *control;
    struct upkeep upkeep;
};

/* main_daemon_start - store, resolver, lists, bans, listeners, control */
static int main_daemon_start(struct main_daemon *d, struct ev_loop *loop,
                             const struct conf *conf, const struct main_serve_ctx *ctx,
                             const int *fds, unsigned index)
{
    char err[1024], sites[4096];
    main_sites_text(conf, sites, sizeof sites);
    d->store = store_open(conf->state_dir, conf->cache_max_entries, sites, err, sizeof err);
    if (d->store == NULL)
        goto fail;
    d->resolver = resolver_new(loop, conf, conf->dnsbl_timeout, err, sizeof err);
    if (d->resolver == NULL)
        goto fail;
    d->dnsbl = dnsbl_new(loop, d->resolver, conf, d->store);
    d->bans = d->dnsbl ? bans_new(loop, conf, d->store, ctx->helper_fd[index]) : NULL;
    if (d->bans == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (server_start(&d->srv, loop, conf, d->dnsbl, d->bans, fds, err, sizeof err) < 0)
        return log_error("%s", err), -1;
    d->serving = true;
    d->control = control_start(loop, ctx->control_fd, conf, d->store, d->bans);
    if (d->control == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    upkeep_start(&d->upkeep, loop, conf, d->store);
    return 0;
fail:
    log_error("%s", err);
    for (size_t i = 0; !d->serving && i < conf->listen_count; i++)
        close(fds[i]);
    return -1;
}

/* main_daemon_stop - everything main_daemon_start() made, in reverse */
static void main_daemon_stop(struct main_daemon *d)
{
    if (d->control != NULL) {
        control_stop(d->control);
        upkeep_stop(&d->upkeep);
    }
    if (d->serving)
        server_stop(&d->srv);
    bans_free(d->bans);
    resolver_free(d->resolver); /* ends every query, before dnsbl goes */
    dnsbl_free(d->dnsbl);
    if (d->store != NULL)
        store_close(d->store);
}

/* main_serve_worker - the daemon on these listeners until a signal */
static int main_serve_worker(void *arg, const struct conf *conf, const int *fds,
                             unsigned index, bool first)
{
    const struct main_serve_ctx *ctx = arg;
    struct main_daemon d = {0};
    struct ev_loop *loop = ev_default_loop(0);
    signal(SIGPIPE, SIG_IGN);
    if (main_daemon_start(&d, loop, conf, ctx, fds, index) < 0) {
        main_daemon_stop(&d);
        return 1;
    }
    dnsbl_health_start(d.dnsbl);
    if (index == 0 && first && conf->ban_backend != BAN_BACKEND_NONE)
        log_info("put %zu stored bans back into the firewall", bans_restore(d.bans));
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, main_signal_cb, SIGTERM);
    ev_signal_init(&sigint, main_signal_cb, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_run(loop, 0);
    main_daemon_stop(&d);
    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    ev_loop_destroy(loop);
    return 0;
}

/* main_control_dir - the control socket's directory: created for the user
 * when missing (/run is emptied at boot); one that exists is left as is */
static int main_control_dir(const struct conf *conf, const struct privsep_user *as,
                            char *err, size_t errsize)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", conf->control_socket);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        return 0;
    *slash = '\0';
    struct stat st;
    return stat(dir, &st) == 0 ? 0 : privsep_own_dir(dir, as, 0750, NULL, err, errsize);
}

/* main_prepare - while root: the helper, the state and control directory,
 * the control socket (serve only: watch leaves ctl to serve, and its helper
 * also ends banned clients' connections); then give up root. Returns 0 or
 * -1 (logged). */
static int main_prepare(const struct conf *conf, struct main_serve_ctx *ctx, unsigned workers,
                        bool watch)
{
    char err[1024];
    struct privsep_user user, *as = NULL;
    if (privsep_is_root()) {
        if (privsep_lookup(conf->user, &user, err, sizeof err) < 0)
            goto fail;
        as = &user;
    }
    if (privsep_own_dir(conf->state_dir, as, 0750, store_files, err, sizeof err) < 0 ||
        (!watch && main_control_dir(conf, as, err, sizeof err) < 0))
        goto fail;
    if (conf->ban_backend != BAN_BACKEND_NONE &&
        banhelper_start(conf, as, watch, ctx->helper_fd, workers, err, sizeof err) < 0)
        goto fail;
    ctx->control_fd = watch ? -1 : control_listen(conf->control_socket, as, err, sizeof err);
    if (!watch && ctx->control_fd < 0)
        goto fail;
    if (as != NULL && privsep_drop(as, PRIVSEP_KEEP_NOTHING, err, sizeof err) < 0)
        goto fail;
    if (as != NULL)
        log_info("running as user %s", conf->user);
    return 0;
fail:
    log_error("%s", err);
    return -1;
}

/* main_check_store - open and close the store once, so that a broken one
 * is one clear error at start rather than workers dying */
static int main_check_store(const struct conf *conf)
{
    char err[1024], sites[4096];
    main_sites_text(conf, sites, sizeof sites);
    struct store *store = store_open(conf->state_dir, conf->cache_max_entries, sites, err,
                                     sizeof err);
    if (store == NULL) {
        log_error("%s", err);
        return -1;
    }
    store_close(store);
    return 0;
}

/* main_serve - listeners and privileges first, then one process or
 * `workers` processes on the same ports */
static int main_serve(struct conf *conf)
{
    struct main_serve_ctx ctx = {.control_fd = -1};
    unsigned n = workers_count(conf);
    for (unsigned i = 0; i < WORKERS_MAX; i++)
        ctx.helper_fd[i] = -1;
    if (n > 1) {
        struct workers *w = workers_open(conf);
        if (w == NULL)
            return 1;
        if (main_prepare(conf, &ctx, n, false) < 0 || main_check_store(conf) < 0) {
            workers_close(w);
            return 1;
        }
        main_announce(conf);
        return workers_run(w, main_serve_worker, &ctx);
    }
    char err[512];
    int fds[CONF_LISTEN_MAX];
    if (server_open_listeners(conf, false, fds, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    if (main_prepare(conf, &ctx, 1, false) < 0) {
        for (size_t i = 0; i < conf->listen_count; i++)
            close(fds[i]);
        return 1;
    }
    main_announce(conf);
    return main_serve_worker(&ctx, conf, fds, 0, true);
}

/* main_rules - print the firewall rules for the configured backend */
static int main_rules(struct conf *conf, char **operands, int count)
{
    (void)operands, (void)count;
    size_t need = rules_format(conf, NULL, 0) + 1;
    char *text = malloc(need);
    if (text == NULL)
        return 1;
    rules_format(conf, text, need);
    fputs(text, stdout);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* main_ctl - one control command to the running daemon */
static int main_ctl(struct conf *conf, char **operands, int count)
{
    char line[CONTROL_LINE_MAX] = "";
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        int n = snprintf(line + used, sizeof line - used, "%s%s", i ? " " : "", operands[i]);
        if (n < 0 || (size_t)n >= sizeof line - used || strpbrk(operands[i], "\r\n")) {
            fprintf(stderr, "breakwater: ctl: command too long or with a line break\n");
            return MAIN_EXIT_USAGE;
        }
        used += (size_t)n;
    }
    return control_request(conf->control_socket, line, stdout, stderr);
}

static int main_check(struct conf *conf, char **operands, int count)
{
    return check_run(conf, operands, count);
}

/* main_read_file - a whole small text file (the watch rules); NULL with
 * err set */
static char *main_read_file(const char *path, char *err, size_t errsize)
{
    FILE *f = fopen(path, "re");
    char *text = f ? calloc(1, MAIN_RULES_MAX + 1) : NULL;
    size_t n = text ? fread(text, 1, MAIN_RULES_MAX + 1, f) : 0;
    if (text == NULL || ferror(f) || n > MAIN_RULES_MAX || memchr(text, '\0', n)) {
        snprintf(err, errsize, "%s: %s", path, f == NULL ? strerror(errno)
                 : n > MAIN_RULES_MAX ? "larger than 64 KiB" : "cannot read it as text");
        free(text);
        text = NULL;
    }
    if (f != NULL)
        fclose(f);
    return text;
}

/* main_watch_rules - the built-in rules and those of watch_rules */
static struct logrules *main_watch_rules(const struct conf *conf)
{
    char err[LOGRULES_ERR_MAX + 256];
    char *custom = conf->watch_rules ? main_read_file(conf->watch_rules, err, sizeof err) : NULL;
    struct logrules *rules = conf->watch_rules && custom == NULL ? NULL
        : logrules_new(conf->watch_rules_only, custom, conf->watch_rules, err, sizeof err);
    free(custom);
    if (rules == NULL)
        fprintf(stderr, "breakwater: watch_rules: %s\n", err);
    return rules;
}

/* main_watch_loop - follow, match, ban until a signal */
static int main_watch_loop(const struct conf *conf, const struct logrules *rules,
                           int helper_fd, const struct watch_sources *from)
{
    char err[1024], sites[4096];
    struct ev_loop *loop = ev_default_loop(0);
    main_sites_text(conf, sites, sizeof sites); /* the store serve shares */
    struct store *store = store_open(conf->state_dir, conf->cache_max_entries, sites, err,
                                     sizeof err);
    struct bans *bans = store ? bans_new(loop, conf, store, helper_fd) : NULL;
    if (store != NULL && bans == NULL)
        snprintf(err, sizeof err, "out of memory");
    struct watch *w = bans ? watch_start(loop, conf, rules, bans, from, err, sizeof err) : NULL;
    if (w == NULL) {
        log_error("%s", err);
        bans_free(bans);
        if (store != NULL)
            store_close(store);
        return 1;
    }
    struct upkeep upkeep;
    upkeep_start(&upkeep, loop, conf, store);
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, main_signal_cb, SIGTERM);
    ev_signal_init(&sigint, main_signal_cb, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_run(loop, 0);
    struct watch_stats ws;
    struct bans_stats bs;
    watch_stats(w, &ws);
    bans_stats(bans, &bs);
    log_info("watch: %llu lines, %llu rejects, %llu bans asked, %llu applied, %llu failed; "
             "ban latency p50 %gs p99 %gs", (unsigned long long)ws.lines,
             (unsigned long long)ws.rejects, (unsigned long long)ws.bans,
             (unsigned long long)bs.applied, (unsigned long long)bs.failed,
             bans_latency_quantile(&bs, 0.5), bans_latency_quantile(&bs, 0.99));
    watch_stop(w);
    upkeep_stop(&upkeep);
    bans_free(bans);
    store_close(store);
    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    ev_loop_destroy(loop);
    return 0;
}

/* main_watch_sources - [--from-start] [--journal[=DIR]] [LOGFILE...]; the
 * files default to watch_logs unless the journal is asked for. Returns 0
 * or an exit status. */
static int main_watch_sources(const struct conf *conf, char **operands, int count,
                              struct watch_sources *from)
{
    *from = (struct watch_sources){0};
    for (; count > 0 && strncmp(operands[0], "--", 2) == 0; operands++, count--) {
        if (strcmp(operands[0], "--from-start") == 0)
            from->from_start = true;
        else if (strcmp(operands[0], "--journal") == 0)
            from->journal = true;
        else if (strncmp(operands[0], "--journal=", 10) == 0 && operands[0][10] == '/')
            from->journal = true, from->journal_dir = operands[0] + 10;
        else {
            fprintf(stderr, "breakwater: watch: unknown option '%s'\n", operands[0]);
            return MAIN_EXIT_USAGE;
        }
    }
    for (int i = 0; i < count; i++)
        if (operands[i][0] != '/' && operands[i][0] != '.') {
            fprintf(stderr, "breakwater: watch: not a log file path: '%s'\n", operands[i]);
            return MAIN_EXIT_USAGE;
        }
    bool defaults = count == 0 && !from->journal;
    from->paths = defaults ? conf->watch_logs : operands;
    from->count = defaults ? conf->watch_log_count : (size_t)count;
    if ((from->count == 0 && !from->journal) || from->count > CONF_WATCH_LOGS_MAX) {
        fprintf(stderr, "breakwater: watch: give 1 to 16 log files, or --journal\n");
        return MAIN_EXIT_USAGE;
    }
    return 0;
}

/* main_watch - breakwater watch */
static int main_watch(struct conf *conf, char **operands, int count)
{
    struct watch_sources from;
    int usage = main_watch_sources(conf, operands, count, &from);
    if (usage != 0)
        return usage;
    struct logrules *rules = main_watch_rules(conf);
    if (rules == NULL)
        return MAIN_EXIT_USAGE;
    struct main_serve_ctx ctx = {.helper_fd = {-1}, .control_fd = -1};
    int status = 1;
    if (main_prepare(conf, &ctx, 1, true) == 0) {
        main_announce_bans(conf);
        log_info("watch: %zu rules; %u reject(s) within %gs make a ban", logrules_count(rules),
                 conf->watch_max_hits, conf->watch_window);
        status = main_watch_loop(conf, rules, ctx.helper_fd[0], &from);
    }
    logrules_free(rules);
    return status;
}

static int main_serve_command(struct conf *conf, char **operands, int count)
{
    (void)operands, (void)count;
    return main_serve(conf);
}

static const struct {
    const char *name;
    int (*run)(struct conf *conf, char **operands, int count);
    int min, max;          /* operands after the options */
    const char *need;      /* said when there are too few or too many */
} main_commands[] = {
    {"serve", main_serve_command, 0, 0, "takes no operands"},
    {"check", main_check, 1, 1 << 20, "needs at least one ADDRESS"},
    {"rules", main_rules, 0, 0, "takes no operands"},
    {"ctl", main_ctl, 1, 3, "needs a COMMAND and at most 2 arguments"},
    {"watch", main_watch, 0, CONF_WATCH_LOGS_MAX + 2, "takes at most 16 log files"},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return MAIN_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "-h") == 0) {
        main_usage(stdout);
        return 0;
    }
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("breakwater %s\n", BREAKWATER_VERSION);
        return 0;
    }
    size_t c = 0, count = sizeof main_commands / sizeof main_commands[0];
    while (c < count && strcmp(command, main_commands[c].name) != 0)
        c++;
    if (c == count) {
        fprintf(stderr, "breakwater: unknown command '%s'\n", command);
        main_usage(stderr);
        return MAIN_EXIT_USAGE;
    }
    struct conf conf;
    int operand, status = main_configure(&conf, argc, argv, &operand);
    int operands = argc - operand;
    if (status == 0 && (operands < main_commands[c].min || operands > main_commands[c].max)) {
        fprintf(stderr, "breakwater: %s %s\n", command, main_commands[c].need);
        status = MAIN_EXIT_USAGE;
    } else if (status == 0) {
        status = main_commands[c].run(&conf, argv + operand, operands);
    }
    conf_free(&conf);
    return status;
}
