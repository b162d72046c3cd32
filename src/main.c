/*
 * main - the command line: serve, check, help, --version.
 *
 * Configuration comes from the file (-c, or the default path when it
 * exists), then every -o key=value in order; anything wrong is one line on
 * stderr and exit status 2, before anything starts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conf.h"
#include "dnsbl.h"
#include "log.h"
#include "resolver.h"
#include "server.h"
#include "workers.h"

#define MAIN_DEFAULT_CONF "/etc/breakwater/breakwater.conf"
#define MAIN_EXIT_USAGE 2

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: breakwater serve [-c FILE] [-o key=value]...\n"
            "       breakwater check [-c FILE] [-o key=value]... ADDRESS...\n"
            "       breakwater help | --version\n"
            "\n"
            "serve  run the SMTP front end in the foreground (logs to stderr)\n"
            "check  look addresses up in the configured DNSBLs and show the verdict\n"
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

/* main_serve_worker - the daemon on these listeners until a signal */
static int main_serve_worker(const struct conf *conf, const int *fds)
{
    char err[512];
    struct server srv;
    struct ev_loop *loop = ev_default_loop(0);
    signal(SIGPIPE, SIG_IGN);
    struct resolver *resolver = resolver_new(loop, conf, conf->dnsbl_timeout, err, sizeof err);
    struct dnsbl *dnsbl = resolver ? dnsbl_new(loop, resolver, conf) : NULL;
    if (dnsbl == NULL || server_start(&srv, loop, conf, dnsbl, fds, err, sizeof err) < 0) {
        log_error("%s", resolver == NULL || dnsbl != NULL ? err : "out of memory");
        resolver_free(resolver);
        dnsbl_free(dnsbl);
        return 1;
    }
    dnsbl_health_start(dnsbl);
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, main_signal_cb, SIGTERM);
    ev_signal_init(&sigint, main_signal_cb, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_run(loop, 0);
    server_stop(&srv);
    resolver_free(resolver); /* ends every query, before dnsbl goes */
    dnsbl_free(dnsbl);
    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    ev_loop_destroy(loop);
    return 0;
}

/* main_serve - one process, or `workers` processes on the same ports */
static int main_serve(struct conf *conf)
{
    if (conf->workers > 1) {
        main_announce(conf);
        return workers_run(conf, main_serve_worker);
    }
    char err[512];
    int fds[CONF_LISTEN_MAX];
    if (server_open_listeners(conf, false, fds, err, sizeof err) < 0) {
        log_error("%s", err);
        return 1;
    }
    main_announce(conf);
    return main_serve_worker(conf, fds);
}

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
    bool serve = strcmp(command, "serve") == 0, check = strcmp(command, "check") == 0;
    if (!serve && !check) {
        fprintf(stderr, "breakwater: unknown command '%s'\n", command);
        main_usage(stderr);
        return MAIN_EXIT_USAGE;
    }
    struct conf conf;
    int operand, status = main_configure(&conf, argc, argv, &operand);
    if (status == 0 && serve && operand < argc) {
        fprintf(stderr, "breakwater: serve takes no operands ('%s')\n", argv[operand]);
        status = MAIN_EXIT_USAGE;
    } else if (status == 0 && check && operand >= argc) {
        fprintf(stderr, "breakwater: check needs at least one ADDRESS\n");
        status = MAIN_EXIT_USAGE;
    } else if (status == 0) {
        status = serve ? main_serve(&conf) : check_run(&conf, argv + operand, argc - operand);
    }
    conf_free(&conf);
    return status;
}
