/*
 * conf - breakwater's configuration: a typed table of keys with defaults and
 * limits, parsed from a flat `key = value` file and `-o key=value` overrides.
 *
 *   conf_init()       built-in defaults (hostname from gethostname())
 *   conf_load_file()  read a file; a missing file is an error only if
 *                     required
 *   conf_set()        one key = value (from a file line or -o)
 *   conf_finish()     checks that need every key; call once after the above
 *   conf_free()
 *   conf_read()       all of the above from a conf_source (start and reload)
 *   conf_keep_restart_keys()  a reload: the keys that only a restart can
 *                     change keep their running values
 *   conf_reload()     the two above for a running configuration, with the
 *                     one line a reload reports
 *
 * Errors are one line: "<origin>: <key>: <what is wrong> ('<text>')" where
 * origin is "file:line" or "-o". Values: lists are separated by commas
 * and/or spaces; durations are a number with an optional s/m/h/d suffix
 * (seconds without); counts are plain decimal numbers.
 */
#ifndef BREAKWATER_CONF_H
#define BREAKWATER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "dnsbl_spec.h"
#include "fleetproto.h"
#include "proxy.h"

#define CONF_ERR_MAX 512
#define CONF_LISTEN_MAX 16
#define CONF_RESOLVERS_MAX 8

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG };

/* Where bans go (fw.h): an nftables set, an ipset, an xt_recent list, or
 * nowhere. */
enum ban_backend { BAN_BACKEND_NONE, BAN_BACKEND_NFT, BAN_BACKEND_IPSET, BAN_BACKEND_RECENT };

#define CONF_BAN_PORTS_MAX 16
#define CONF_WATCH_LOGS_MAX 16

/* How `watch` ends the live connections of an address it banned. */
enum watch_kill { WATCH_KILL_NONE, WATCH_KILL_SOCKET, WATCH_KILL_PROCESS };

struct endpoint {
    struct addr addr;
    uint16_t port;
};

/* Where a configuration comes from, kept so that a reload reads it again
 * the same way: the file, then the -o overrides in order. */
struct conf_source {
    const char *path;          /* NULL: the default file, which may be missing */
    const char *default_path;
    char **options;            /* "key=value" as given to -o */
    size_t option_count;
};

struct conf {
    const struct conf_source *source;    /* NULL when built by hand (tests) */
    struct endpoint listen[CONF_LISTEN_MAX];
    size_t listen_count;
    struct endpoint backend;
    enum proxy_version backend_proxy_protocol;
    unsigned backend_max_connections;
    double backend_connect_timeout;      /* seconds */
    double relay_idle_timeout;           /* seconds without a byte either way
                                            that end a relay */
    bool has_backend_source;
    struct addr backend_source;
    char *hostname;
    struct dnsbl_sites dnsbl_sites;      /* named from dnsbl_names by conf_finish() */
    char *dnsbl_names;                   /* DOMAIN=PUBLIC_NAME pairs, or NULL */
    double dnsbl_health_interval;        /* seconds; 0 = no health checks */
    int dnsbl_threshold;
    double dnsbl_timeout;                /* seconds */
    bool resolver_system;                /* /etc/resolv.conf */
    struct endpoint resolver[CONF_RESOLVERS_MAX];
    size_t resolver_count;
    struct cidr_set allowlist;
    struct cidr_set denylist;
    unsigned max_connections;
    unsigned max_connections_per_ip;     /* per network (ipv4_prefix, ipv6_prefix) */
    unsigned ipv4_prefix, ipv6_prefix;   /* a client's network: limits and bans */
    unsigned max_connection_rate_per_ip; /* new connections per window; 0 = none */
    double connection_rate_window;       /* seconds */
    bool connection_rate_ban;            /* ban a network that keeps going */
    double command_timeout;              /* seconds */
    double reject_session_timeout;       /* seconds */
    double reject_delay;                 /* seconds before each reply to a listed client */
    char *reject_message;                /* %a address, %l lists, %% percent */
    double cache_clean_ttl;              /* seconds a clean verdict is kept */
    double cache_listed_ttl;             /* seconds a listed verdict is kept */
    unsigned cache_max_entries;          /* 0 = no verdict cache */
    unsigned workers;                    /* processes serving the ports */
    char *state_dir;
    enum log_level log_level;
    enum log_target log_target;
    bool has_metrics_listen;             /* metrics_listen is not empty */
    struct endpoint metrics_listen;      /* Prometheus /metrics over HTTP */
    enum ban_backend ban_backend;
    /* nft: "family table set-prefix" (sets <prefix>4 and <prefix>6);
     * ipset: a set-name prefix (sets <prefix>4 and <prefix>6); recent: the
     * list name. conf_finish() puts the backend's default in when empty. */
    char *ban_set;
    double shutdown_timeout;             /* seconds relays get to finish at SIGTERM */
    double ban_time;                     /* seconds of a first ban */
    double ban_time_max;                 /* seconds: escalation stops here */
    uint16_t ban_ports[CONF_BAN_PORTS_MAX];
    size_t ban_port_count;               /* conf_finish(): the listen ports when 0 */
    char *control_socket;
    char *user;                          /* serve started as root runs as this user */
    char *watch_logs[CONF_WATCH_LOGS_MAX]; /* files `watch` follows */
    size_t watch_log_count;
    char *watch_rules;                   /* file of extra patterns, or NULL */
    bool watch_rules_only;               /* no built-in rules */
    unsigned watch_max_hits;             /* hits within watch_window make a ban */
    double watch_window;                 /* seconds */
    uint16_t watch_ports[CONF_BAN_PORTS_MAX];
    size_t watch_port_count;
    enum watch_kill watch_kill;
    double watch_kill_delay;             /* seconds from a ban to its kill */
    char *watch_journal_users;           /* whose journal entries `watch` reads */
    bool has_fleet;                      /* fleet_redis is not empty */
    struct fleetproto_url fleet_redis;   /* the fleet's Redis */
    char *fleet_name;                    /* key prefix and channel name */
    char *fleet_host_id;                 /* this host in the fleet; "" = hostname */
    char *fleet_sentinel_password;       /* [USER:]PASSWORD for the sentinels; "" = none */
    double fleet_timeout;                /* seconds a Redis request may take */
};

void conf_init(struct conf *c);
/* Returns 0, or -1 with err set. A missing file is not an error when
 * required is false. */
int conf_load_file(struct conf *c, const char *path, bool required, char *err);
/* origin is "file:line" or "-o". Returns 0, or -1 with err set. */
int conf_set(struct conf *c, const char *key, const char *value,
             const char *origin, char *err);
/* Parses "key=value" as given to -o. */
int conf_set_option(struct conf *c, const char *option, char *err);
int conf_finish(struct conf *c, char *err);
void conf_free(struct conf *c);
/* conf_init() + file + options + conf_finish(); c->source = src. Returns 0,
 * or -1 with err set and c freed. */
int conf_read(struct conf *c, const struct conf_source *src, char *err);
/* The keys a running daemon cannot change (listen, user, state_dir,
 * workers, control_socket, metrics_listen, ban_backend, ban_set,
 * log_target, cache_max_entries, fleet_redis, fleet_name, fleet_host_id, fleet_sentinel_password): where next differs from running, next
 * gets running's value and the key's name is added to changed (comma
 * separated, "" when none). Returns -1 when out of memory. */
int conf_keep_restart_keys(struct conf *next, const struct conf *running,
                           char *changed, size_t size);
/* running's source read again into next, restart-only keys kept. Returns
 * 0 with note "" or "KEYS changed: that needs a restart", or -1 with note
 * "reload refused, the running configuration stays: WHY" (nothing left to
 * free). size: at least CONF_ERR_MAX + 64. */
int conf_reload(struct conf *next, const struct conf *running, char *note, size_t size);

/* Helpers shared with other modules' parsers. Return 0 or -1. */
int conf_parse_duration(const char *text, double *seconds);

#endif
