/*
 * store - what breakwater must not forget across restarts, in one LMDB
 * environment under state_dir: the verdict cache and the ban records.
 * Several worker processes open the same store (each after fork()), so a
 * verdict one of them made spares the others their DNS queries.
 *
 *   store_open()      open or create STATE_DIR/breakwater.mdb; a corrupt or
 *                     unreadable store is an error naming the path
 *   store_close()     commits what is pending
 *   store_commit()    commits the writes made since the last commit: the
 *                     caller calls it once per event-loop iteration, so a
 *                     burst of writes costs one transaction and a kill -9
 *                     loses only the current iteration's updates
 *   store_sync()      flush to disk (the environment runs with MDB_NOSYNC:
 *                     committed data survives a crash of the process, and
 *                     store_sync() on a timer bounds what a crash of the
 *                     machine can lose)
 *
 *   store_verdict_get(), store_verdict_put(), store_verdict_flush(),
 *   store_verdict_purge(), store_verdict_count()
 *   store_ban_get(), store_ban_put(), store_ban_delete(),
 *   store_ban_foreach(), store_ban_purge()
 *
 * Reads see the writes made before them, committed or not. Times are wall
 * clock seconds (time(NULL), ev_now()), since they must mean the same after
 * a restart. Verdicts are kept per address, bans per network (one address
 * being the network of its whole length); keys sort one family together
 * and in address order.
 *
 * Errors from LMDB (disk full, map full) are logged, rate-limited, and the
 * call returns -1 or false: the daemon goes on without the stored data.
 */
#ifndef BREAKWATER_STORE_H
#define BREAKWATER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct store;

/* The files of a store in state_dir, NULL-terminated. */
extern const char *const store_files[];

/* Listed or not is the score against the threshold in force when it is
 * read: a reload may move the threshold. */
struct store_verdict {
    int score;
    uint64_t hits;  /* bit i: dnsbl site i matched */
    uint64_t sites; /* the dnsbl_sites it was made under (dnsbl_sites_hash()) */
};

enum store_ban_reason {
    STORE_BAN_DNSBL = 1,    /* refused: listed in the DNSBLs */
    STORE_BAN_DENYLIST = 2, /* refused: in the denylist */
    STORE_BAN_PREGREET = 3, /* talked before the greeting */
    STORE_BAN_MANUAL = 4,   /* ctl ban */
    STORE_BAN_LOG = 5,      /* watch: the MTA's log showed a DNSBL reject */
    STORE_BAN_RATE = 6,     /* went on past max_connection_rate_per_ip */
};

struct store_ban {
    double until;     /* the ban ends (wall clock seconds) */
    double last;      /* the latest ban began */
    uint32_t count;   /* bans so far, for escalation */
    uint8_t reason;   /* enum store_ban_reason of the latest ban */
    bool peer;        /* the latest ban came from a fleet peer */
    bool unbanned;    /* lifted at `last` (until = last): kept so that an
                         older ban arriving late (fleet) is known as such */
};

/* max_verdicts bounds the verdict table (beyond it, a new address's
 * verdict takes the place of one close to its expiry, as in an LRU cache:
 * the one expiring soonest of a sample of 8); sites is the dnsbl_sites
 * text: when it differs from the one stored, the verdicts are emptied (their
 * hits bits name sites by position). Returns NULL with err set. */
struct store *store_open(const char *state_dir, size_t max_verdicts, const char *sites,
                         char *err, size_t errsize);
void store_close(struct store *s);
int store_commit(struct store *s);
int store_sync(struct store *s);
/* The environment's path, for messages. */
const char *store_path(const struct store *s);

/* An unexpired verdict of a (expired ones read as absent). */
/* Only a verdict made under `sites` (its hits bits name those sites, and
 * another worker or a generation before a reload may still write ones
 * made under others). */
bool store_verdict_get(struct store *s, const struct addr *a, double now, uint64_t sites,
                       struct store_verdict *out);
int store_verdict_put(struct store *s, const struct addr *a,
                      const struct store_verdict *v, double expires);
/* A reload: drops the verdicts if they were made under other dnsbl_sites
 * (the rule store_open() applies). Returns 0 or -1 (logged). */
int store_set_sites(struct store *s, const char *sites);
/* Empties the verdict table (ctl flush). */
int store_verdict_flush(struct store *s);
/* Visits up to max_visit verdicts from where the last call stopped (then
 * wraps around) and deletes the expired ones; returns how many it deleted. */
size_t store_verdict_purge(struct store *s, double now, size_t max_visit);
size_t store_verdict_count(struct store *s);

/* Bans are keyed by network: a, host bits zero (cidr_of()). */
bool store_ban_get(struct store *s, const struct cidr *a, struct store_ban *out);
int store_ban_put(struct store *s, const struct cidr *a, const struct store_ban *b);
/* Calls fn for every ban record in key order until fn returns non-zero;
 * returns that value, or 0, or -1 on a store error. fn must not write to
 * the store. */
int store_ban_foreach(struct store *s,
                      int (*fn)(const struct cidr *a, const struct store_ban *b, void *arg),
                      void *arg);
/* Like store_verdict_purge() for ban records whose until is older than
 * now - keep (an offender forgotten: its next ban starts from ban_time). */
size_t store_ban_purge(struct store *s, double now, double keep, size_t max_visit);

#endif
