/*
 * cmd_watch - `breakwater watch`: the rules (built-in and watch_rules),
 * the sources from the command line, privileges and the ban helper
 * (startup.h), then the watcher (watch.h) on the loop until SIGTERM or
 * SIGINT, and a summary line.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bans.h"
#include "cmd.h"
#include "fleet.h"
#include "journal.h"
#include "log.h"
#include "notify.h"
#include "logrules.h"
#include "startup.h"
#include "store.h"
#include "upkeep.h"
#include "watch.h"

#define WATCH_RULES_MAX 65536   /* bytes of a watch_rules file */

/* watch_read_file - a whole small text file (the watch rules); NULL with
 * err set */
static char *watch_read_file(const char *path, char *err, size_t errsize)
{
    FILE *f = fopen(path, "re");
    char *text = f ? calloc(1, WATCH_RULES_MAX + 1) : NULL;
    size_t n = text ? fread(text, 1, WATCH_RULES_MAX + 1, f) : 0;
    if (text == NULL || ferror(f) || n > WATCH_RULES_MAX || memchr(text, '\0', n)) {
        snprintf(err, errsize, "%s: %s", path, f == NULL ? strerror(errno)
                 : n > WATCH_RULES_MAX ? "larger than 64 KiB" : "cannot read it as text");
        free(text);
        text = NULL;
    }
    if (f != NULL)
        (void)fclose(f); /* read only: ferror() checked above */
    return text;
}

/* watch_rules_load - the built-in rules and those of watch_rules */
static struct logrules *watch_rules_load(const struct conf *conf)
{
    char err[LOGRULES_ERR_MAX + 256];
    char *custom = conf->watch_rules ? watch_read_file(conf->watch_rules, err, sizeof err) : NULL;
    struct logrules *rules = conf->watch_rules && custom == NULL ? NULL
        : logrules_new(conf->watch_rules_only, custom, conf->watch_rules, err, sizeof err);
    free(custom);
    if (rules == NULL)
        fprintf(stderr, "breakwater: watch_rules: %s\n", err);
    size_t next = 0;
    for (const char *name; rules && (name = logrules_unanchored(rules, &next)) != NULL;)
        log_warning("watch_rules %s line %s: the pattern is not anchored with ^ (or a wildcard "
                    "such as .* follows it), so text a "
                    "client gets into the MTA's log (a sender, a HELO name) can match it and "
                    "ban another address; anchor it where the MTA's own words begin "
                    "(breakwater(8), WATCH, \"Custom rules\")", conf->watch_rules,
                    name + strlen("custom:"));
    return rules;
}

/* watch_loop - follow, match, ban until a signal */
static int watch_loop(const struct conf *conf, const struct logrules *rules,
                           int helper_fd, const struct watch_sources *from)
{
    char err[1024], sites[4096];
    struct ev_loop *loop = ev_default_loop(0);
    dnsbl_sites_text(&conf->dnsbl_sites, sites, sizeof sites); /* the store serve shares */
    struct store *store = store_open(conf->state_dir, conf->cache_max_entries, sites, err,
                                     sizeof err);
    struct bans *bans = store ? bans_new(loop, conf, store, helper_fd) : NULL;
    if (store != NULL && bans == NULL)
        snprintf(err, sizeof err, "out of memory");
    struct fleet *fleet = NULL;
    if (bans != NULL && conf->has_fleet) {
        fleet = fleet_new(loop, conf, true, bans_peer, bans, err, sizeof err);
        if (fleet != NULL)
            bans_set_fleet(bans, fleet);
    }
    struct watch *w = bans && (fleet || !conf->has_fleet)
                          ? watch_start(loop, conf, rules, bans, from, err, sizeof err) : NULL;
    if (w == NULL) {
        log_error("%s", err);
        fleet_free(fleet);
        bans_free(bans);
        if (store != NULL)
            store_close(store);
        return 1;
    }
    struct upkeep upkeep;
    upkeep_start(&upkeep, loop, conf, store);
    ev_signal sigterm, sigint;
    ev_signal_init(&sigterm, startup_signal_cb, SIGTERM);
    ev_signal_init(&sigint, startup_signal_cb, SIGINT);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigint);
    ev_timer watchdog;
    notify_ready();
    notify_watchdog_start(loop, &watchdog);
    ev_run(loop, 0);
    notify_stopping();
    ev_timer_stop(loop, &watchdog);
    /* the kills already asked for still come (watch_kill_delay after their
     * ban); the summary counts them. The margin covers the helper's
     * batching and the kill itself. */
    bans_finish(bans, conf->watch_kill_delay + 2.0);
    struct watch_stats ws;
    struct bans_stats bs;
    watch_stats(w, &ws);
    bans_stats(bans, &bs);
    log_info("watch: %llu lines, %llu rejects, %llu bans asked, %llu applied, %llu failed, "
             "%llu connections ended, %llu addresses not ended; ban latency p50 %gs p99 %gs",
             (unsigned long long)ws.lines, (unsigned long long)ws.rejects,
             (unsigned long long)ws.bans, (unsigned long long)bs.applied,
             (unsigned long long)bs.failed, (unsigned long long)bs.killed,
             (unsigned long long)bs.kill_failed,
             bans_latency_quantile(&bs, 0.5), bans_latency_quantile(&bs, 0.99));
    watch_stop(w);
    upkeep_stop(&upkeep);
    fleet_free(fleet);
    bans_free(bans);
    store_close(store);
    ev_signal_stop(loop, &sigterm);
    ev_signal_stop(loop, &sigint);
    ev_loop_destroy(loop);
    return 0;
}

/* watch_journal_uids - the ids of watch_journal_users that exist here;
 * returns how many, or -1 (said on stderr) when none does */
static long watch_journal_uids(const struct conf *conf, uid_t *uids, size_t max)
{
    char *copy = strdup(conf->watch_journal_users), *save = NULL;
    size_t count = 0;
    for (char *name = copy ? strtok_r(copy, ", \t", &save) : NULL; name && count < max;
         name = strtok_r(NULL, ", \t", &save)) {
        char *end;
        unsigned long id = strtoul(name, &end, 10);
        struct passwd *pw = name[0] >= '0' && name[0] <= '9' ? NULL : getpwnam(name);
        if (*end == '\0' && name[0] >= '0' && name[0] <= '9' && id < (uid_t)-1)
            uids[count++] = (uid_t)id;
        else if (pw != NULL)
            uids[count++] = pw->pw_uid;
    }
    free(copy);
    if (count == 0)
        fprintf(stderr, "breakwater: watch_journal_users: none of '%s' is a user here\n",
                conf->watch_journal_users);
    return count > 0 ? (long)count : -1;
}

/* watch_sources_parse - [--from-start] [--journal[=DIR]] [LOGFILE...]; the
 * files default to watch_logs unless the journal is asked for. Returns 0
 * or an exit status. */
static int watch_sources_parse(const struct conf *conf, char **operands, int count,
                              struct watch_sources *from, uid_t *uids)
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
            return CMD_EXIT_USAGE;
        }
    }
    for (int i = 0; i < count; i++)
        if (operands[i][0] != '/' && operands[i][0] != '.') {
            fprintf(stderr, "breakwater: watch: not a log file path: '%s'\n", operands[i]);
            return CMD_EXIT_USAGE;
        }
    long trusted = from->journal ? watch_journal_uids(conf, uids, JOURNAL_TRUSTED_MAX) : 0;
    if (trusted < 0)
        return CMD_EXIT_USAGE;
    from->journal_uids = uids;
    from->journal_uid_count = (size_t)trusted;
    bool defaults = count == 0 && !from->journal;
    from->paths = defaults ? conf->watch_logs : operands;
    from->count = defaults ? conf->watch_log_count : (size_t)count;
    if ((from->count == 0 && !from->journal) || from->count > CONF_WATCH_LOGS_MAX) {
        fprintf(stderr, "breakwater: watch: give 1 to 16 log files, or --journal\n");
        return CMD_EXIT_USAGE;
    }
    return 0;
}

/* cmd_watch - breakwater watch */
int cmd_watch(struct conf *conf, char **operands, int count)
{
    struct watch_sources from;
    uid_t journal_uids[JOURNAL_TRUSTED_MAX];
    int usage = watch_sources_parse(conf, operands, count, &from, journal_uids);
    if (usage != 0)
        return usage;
    struct logrules *rules = watch_rules_load(conf);
    if (rules == NULL)
        return CMD_EXIT_USAGE;
    struct startup ctx = {.helper_fd = {-1}, .control_fd = -1};
    int status = 1;
    char err[1024];
    bool ready = startup_prepare(conf, &ctx, 1, true) == 0;
    if (ready && conf->has_fleet && fleet_probe(conf, err, sizeof err) < 0) {
        log_error("%s", err);
        ready = false;
    }
    if (ready) {
        startup_announce_bans(conf);
        log_info("watch: %zu rules; %u reject(s) within %gs make a ban", logrules_count(rules),
                 conf->watch_max_hits, conf->watch_window);
        status = watch_loop(conf, rules, ctx.helper_fd[0], &from);
    }
    logrules_free(rules);
    return status;
}

