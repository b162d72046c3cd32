/*
 * store - the verdict cache and the ban records in one LMDB environment.
 * See store.h for the contract; this comment says how it is kept.
 *
 * Layout: STATE_DIR/breakwater.mdb and breakwater.mdb-lock (MDB_NOSUBDIR),
 * three named databases:
 *   verdicts  key: family byte + 4/16 address bytes; value: struct
 *             store_verdict_record
 *   bans      key: the same for a ban of one address, and for a network
 *             (ipv4_prefix, ipv6_prefix) a prefix-length byte after the
 *             bytes, so a /64 and its first address are two records
 *             (stores written before network bans hold only the first
 *             kind); value: struct store_ban_record
 *   meta      "sites": the dnsbl_sites text the verdicts were made under
 * Values are fixed-size records in host byte order (the file never leaves
 * the machine); a value of another size reads as absent and is purged.
 *
 * Transactions: every write goes into one write transaction, begun at the
 * first write and committed by store_commit(). LMDB has one writer at a time
 * per environment, across processes: while this process holds pending
 * writes, another worker's first write waits for them. So the caller must
 * commit before its event loop blocks (an ev_prepare watcher), never leave
 * writes pending across a wait. A failed write aborts the transaction: the
 * writes since the last commit are lost, and logged; except when the map is
 * full (MDB_MAP_FULL): then room is made (the quarter of the verdicts
 * closest to their expiry go, and the map grows by half when verdicts hold
 * too little of it for that to help) and the writes of the aborted
 * transaction, which the store keeps
 * in a journal until each commit (up to STORE_JOURNAL_MAX of them), are
 * made again. Bans outrank cached verdicts: a verdict costs a DNS query to
 * make again, a lost ban lets a spammer back in.
 *
 * Reads go through the write transaction when one is open (so they see the
 * pending writes), otherwise through one read-only transaction kept in the
 * reset state between reads and renewed at the start of each (so each read
 * sees the latest commit of any process, and an idle worker pins no old
 * pages). MDB_NOTLS lets that reset read transaction coexist with the write
 * transaction in one thread; reads may nest (store_ban_foreach()'s callback
 * may read).
 *
 * MDB_NOSYNC: a commit is a write() into the page cache, no fsync, so a burst
 * of commits is cheap and a killed process loses nothing committed;
 * store_sync() on a timer and store_close() bound what a machine crash loses.
 *
 * Ownership: struct store owns its environment and both transactions. Order:
 * store_open() (in each process, after fork(): an environment must never be
 * used in a child of the process that opened it, nor opened twice in one
 * process), any calls, store_close().
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"

#define STORE_FILE "breakwater.mdb"

const char *const store_files[] = {STORE_FILE, STORE_FILE "-lock", NULL};
#define STORE_MODE 0640
#define STORE_MAX_DBS 4
#define STORE_MAP_BASE ((size_t)64 << 20)  /* address space, not disk */
#define STORE_MAP_PER_VERDICT 512          /* generous: copy-on-write pages */
#define STORE_KEY_MAX 18                   /* family byte + 16 bytes + prefix */
#define STORE_EVICT_SAMPLE 8               /* verdicts looked at to evict one */
#define STORE_META_SITES "sites"
#define STORE_JOURNAL_MAX 65536            /* writes kept for a replay */
#define STORE_JOURNAL_KEEP 4096            /* a larger journal is freed at commit */
#define STORE_ROOM_SHARE 4                 /* a full map drops 1/4 of the verdicts */
#define STORE_ROOM_TRIES 3                 /* room made, replay tried, this often */

struct store_verdict_record {
    double expires;
    uint64_t hits;
    uint64_t sites;
    int32_t score;
    uint8_t unused[4];
};

struct store_ban_record {
    double until;
    double last;
    uint32_t count;
    uint8_t reason;
    uint8_t peer;       /* 0 in records written before it was kept */
    uint8_t unbanned;   /* likewise */
    uint8_t unused;
};

/* (records of the 24-byte layout before `sites` read as expired) */
_Static_assert(sizeof(struct store_verdict_record) == 32, "verdict record layout");
_Static_assert(sizeof(struct store_ban_record) == 24, "ban record layout");

/* One write of the pending transaction, kept to be made again after the
 * map ran full and room was made. */
struct store_write {
    MDB_dbi dbi;
    uint8_t key_size;
    uint8_t value_size;
    uint8_t key[STORE_KEY_MAX];
    uint8_t value[32];
};

_Static_assert(sizeof(struct store_verdict_record) <= sizeof(((struct store_write *)0)->value) &&
               sizeof(struct store_ban_record) <= sizeof(((struct store_write *)0)->value),
               "a journal entry holds either record");

/* Where an incremental purge goes on: the last key it visited. */
struct store_position {
    uint8_t key[STORE_KEY_MAX];
    size_t size; /* 0: start from the first record */
};

struct store {
    MDB_env *env;
    MDB_dbi verdicts, bans, meta;
    MDB_txn *write;     /* the pending writes, or NULL */
    MDB_txn *read;      /* read-only, reset while readers == 0 */
    unsigned readers;   /* reads in progress through read */
    size_t max_verdicts;
    struct store_position verdict_position, ban_position;
    struct log_limit error_log, full_log, map_log;
    struct store_write *journal; /* the writes of `write`, in order */
    size_t journal_len, journal_cap;
    bool journal_lost;  /* more than STORE_JOURNAL_MAX: no replay */
    char path[];        /* STATE_DIR/breakwater.mdb */
};

/* A purge predicate: should the record with this value go? */
typedef bool store_expired_fn(const MDB_val *value, double before);

/* store_clock - monotonic seconds, for the log rate limits */
static double store_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* store_log_error - an LMDB call failed; say so once in a while */
static void store_log_error(struct store *s, const char *what, int rc)
{
    log_limited(&s->error_log, store_clock(), LOG_LEVEL_WARNING,
                "state store %s: %s: %s", s->path, what, mdb_strerror(rc));
}

/* store_key - the key of a network: family byte, then its bytes, then
 * the prefix length unless it is the whole address; returns the key's size */
static size_t store_key(const struct cidr *c, uint8_t key[STORE_KEY_MAX])
{
    size_t size = c->net.family == AF_INET ? 4 : 16;
    key[0] = c->net.family;
    memcpy(key + 1, c->net.bytes, size);
    if (c->prefix == size * 8)
        return size + 1;
    key[size + 1] = c->prefix;
    return size + 2;
}

/* store_host - one address as the network of its whole length */
static struct cidr store_host(const struct addr *a)
{
    return cidr_of(a, 32, 128);
}

/* store_key_decode - the network of a key; false for a malformed key (a
 * prefix byte of the whole length or more, or host bits set) */
static bool store_key_decode(const MDB_val *key, struct cidr *c)
{
    const uint8_t *k = key->mv_data;
    if (key->mv_size == 0 || (k[0] != AF_INET && k[0] != AF_INET6))
        return false;
    size_t size = k[0] == AF_INET ? 4 : 16;
    if (key->mv_size != size + 1 && key->mv_size != size + 2)
        return false;
    memset(c, 0, sizeof *c);
    c->net.family = k[0];
    memcpy(c->net.bytes, k + 1, size);
    c->prefix = key->mv_size == size + 1 ? (uint8_t)(size * 8) : k[size + 1];
    if (key->mv_size == size + 2 &&
        (c->prefix >= size * 8 || c->prefix < (k[0] == AF_INET ? CIDR_NET4_MIN : CIDR_NET6_MIN)))
        return false;
    struct cidr masked = cidr_of(&c->net, c->prefix, c->prefix);
    return memcmp(masked.net.bytes, c->net.bytes, size) == 0;
}

/* store_write_begin - the write transaction, begun now if none is open;
 * NULL (logged) when LMDB refuses */
static MDB_txn *store_write_begin(struct store *s)
{
    if (s->write != NULL)
        return s->write;
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->write);
    if (rc == MDB_MAP_RESIZED && s->readers == 0) {
        /* another process grew the map: adopt its size */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(s->env, NULL, 0, &s->write);
    }
    if (rc != 0) {
        s->write = NULL;
        store_log_error(s, "cannot begin a write", rc);
    }
    return s->write;
}

/* store_journal_add - keep a write of the pending transaction */
static void store_journal_add(struct store *s, MDB_dbi dbi, const MDB_val *key,
                              const MDB_val *value)
{
    if (s->journal_lost)
        return;
    if (s->journal_len == s->journal_cap) {
        size_t cap = s->journal_cap ? 2 * s->journal_cap : 64;
        struct store_write *grown = cap <= STORE_JOURNAL_MAX
            ? realloc(s->journal, cap * sizeof *grown) : NULL;
        if (grown == NULL) {
            s->journal_lost = true;
            return;
        }
        s->journal = grown;
        s->journal_cap = cap;
    }
    struct store_write *w = &s->journal[s->journal_len++];
    w->dbi = dbi;
    w->key_size = (uint8_t)key->mv_size;
    memcpy(w->key, key->mv_data, key->mv_size);
    w->value_size = (uint8_t)value->mv_size;
    memcpy(w->value, value->mv_data, value->mv_size);
}

/* store_journal_reset - the pending writes were committed or are lost */
static void store_journal_reset(struct store *s)
{
    s->journal_len = 0;
    s->journal_lost = false;
    if (s->journal_cap > STORE_JOURNAL_KEEP) {
        free(s->journal);
        s->journal = NULL;
        s->journal_cap = 0;
    }
}

/* store_journal_replay - make the journal's writes again in a new write
 * transaction, left pending; 0 or an LMDB error (the transaction aborted) */
static int store_journal_replay(struct store *s)
{
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->write);
    if (rc != 0) {
        s->write = NULL;
        return rc;
    }
    for (size_t i = 0; i < s->journal_len && rc == 0; i++) {
        struct store_write *w = &s->journal[i];
        MDB_val k = {w->key_size, w->key}, v = {w->value_size, w->value};
        rc = mdb_put(s->write, w->dbi, &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(s->write);
        s->write = NULL;
    }
    return rc;
}

/* store_expiry_order - qsort: earlier expiry first */
static int store_expiry_order(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* store_drop_soonest - in txn, delete the verdicts that expire soonest, a
 * share of them (at least one); returns how many went, or -1 */
static long store_drop_soonest(struct store *s, MDB_txn *txn)
{
    MDB_stat st;
    MDB_cursor *c;
    MDB_val k, v;
    long dropped = 0;
    if (mdb_stat(txn, s->verdicts, &st) != 0)
        return -1;
    if (st.ms_entries == 0)
        return 0;
    double *expiry = malloc(st.ms_entries * sizeof *expiry);
    size_t n = 0;
    if (expiry == NULL || mdb_cursor_open(txn, s->verdicts, &c) != 0) {
        free(expiry);
        return -1;
    }
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < st.ms_entries;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct store_verdict_record r = {.expires = -1}; /* malformed: first to go */
        if (v.mv_size == sizeof r)
            memcpy(&r, v.mv_data, sizeof r);
        expiry[n++] = r.expires;
    }
    if (n == 0) {
        mdb_cursor_close(c);
        free(expiry);
        return 0;
    }
    size_t share = n / STORE_ROOM_SHARE + 1;
    qsort(expiry, n, sizeof *expiry, store_expiry_order);
    double last = expiry[share - 1 < n ? share - 1 : n - 1];
    free(expiry);
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && (size_t)dropped < share) {
        struct store_verdict_record r = {.expires = -1};
        if (v.mv_size == sizeof r)
            memcpy(&r, v.mv_data, sizeof r);
        if (r.expires <= last) {
            rc = mdb_cursor_del(c, 0); /* MDB_NEXT then gives the one after it */
            if (rc != 0)
                break;
            dropped++;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? dropped : -1;
}

/* store_make_room - the map ran full (no write transaction open): the
 * verdicts closest to their expiry go; and when they held less than a
 * quarter of the map (bans fill it) or none could go, the map grows by
 * half, since dropping verdicts would free too little; 0 or -1 */
static int store_make_room(struct store *s)
{
    MDB_envinfo info;
    MDB_stat st = {0};
    MDB_txn *txn;
    long dropped = -1;
    size_t verdict_pages = 0;
    if (mdb_env_info(s->env, &info) != 0)
        return -1;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) == 0) {
        if (mdb_stat(txn, s->verdicts, &st) == 0)
            verdict_pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
        dropped = store_drop_soonest(s, txn);
        if (dropped > 0 && mdb_txn_commit(txn) != 0)
            dropped = -1;
        else if (dropped <= 0)
            mdb_txn_abort(txn);
    }
    size_t page = st.ms_psize ? st.ms_psize : 4096;
    bool grow = dropped <= 0 || verdict_pages * 4 < info.me_mapsize / page;
    size_t bigger = info.me_mapsize + info.me_mapsize / 2;
    if (grow && (s->readers > 0 || bigger < info.me_mapsize ||
                 mdb_env_set_mapsize(s->env, bigger) != 0)) {
        if (dropped <= 0)
            return -1;
        grow = false; /* the dropped verdicts are what room there is */
    }
    char grew[64] = "";
    if (grow)
        snprintf(grew, sizeof grew, "; the map grows to %zu MiB", bigger >> 20);
    log_limited(&s->map_log, store_clock(), LOG_LEVEL_WARNING,
                "state store %s: the map (%zu MiB) is full: %ld cached verdicts closest to "
                "their expiry were dropped to make room%s", s->path, info.me_mapsize >> 20,
                dropped > 0 ? dropped : 0L, grew);
    return 0;
}

/* store_recover - the pending transaction is gone after rc: when the map
 * was full, make room and replay the journal (the writes pending again);
 * otherwise, or when that fails, the writes are lost (logged); 0 or -1 */
static int store_recover(struct store *s, const char *what, int rc)
{
    for (int i = 0; i < STORE_ROOM_TRIES && rc == MDB_MAP_FULL; i++) {
        if (store_make_room(s) != 0 || s->journal_lost)
            break; /* (lost: the room is for the writes to come) */
        rc = store_journal_replay(s);
    }
    if (rc == 0)
        return 0;
    store_journal_reset(s);
    log_limited(&s->error_log, store_clock(), LOG_LEVEL_WARNING,
                "state store %s: %s: %s (the updates since the last commit "
                "are lost)", s->path, what, mdb_strerror(rc));
    return -1;
}

/* store_write_fail - a write failed: abort, recover what can be (see
 * store_recover()); 0 when the write and those before it are pending again
 * (journaled: the failed write was in the journal), else -1 */
static int store_write_fail(struct store *s, const char *what, int rc, bool journaled)
{
    mdb_txn_abort(s->write);
    s->write = NULL;
    return store_recover(s, what, rc) == 0 && journaled ? 0 : -1;
}

/* store_read_begin - the transaction a read goes through: the write one if
 * open, else the read-only one, renewed for the outermost read */
static MDB_txn *store_read_begin(struct store *s)
{
    if (s->write != NULL)
        return s->write;
    if (s->readers == 0) {
        int rc = mdb_txn_renew(s->read);
        if (rc == MDB_MAP_RESIZED) {
            rc = mdb_env_set_mapsize(s->env, 0);
            if (rc == 0)
                rc = mdb_txn_renew(s->read);
        }
        if (rc != 0) {
            store_log_error(s, "cannot begin a read", rc);
            return NULL;
        }
    }
    s->readers++;
    return s->read;
}

/* store_read_end - done with what store_read_begin() gave; the outermost
 * read resets the read-only transaction */
static void store_read_end(struct store *s, MDB_txn *txn)
{
    if (txn == s->read && --s->readers == 0)
        mdb_txn_reset(s->read);
}

/* store_get - copies the size-byte value of a's record in dbi into out;
 * 1 found, 0 absent (or malformed), -1 error */
static int store_get(struct store *s, MDB_dbi dbi, const struct cidr *a,
                     void *out, size_t size)
{
    uint8_t key[STORE_KEY_MAX];
    MDB_val k = {store_key(a, key), key}, v;
    MDB_txn *txn = store_read_begin(s);
    if (txn == NULL)
        return -1;
    int rc = mdb_get(txn, dbi, &k, &v);
    bool found = rc == 0 && v.mv_size == size;
    if (found)
        memcpy(out, v.mv_data, size);
    store_read_end(s, txn);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        store_log_error(s, "cannot read", rc);
        return -1;
    }
    return found;
}

/* store_put - stores a's record in dbi in the write transaction */
static int store_put(struct store *s, MDB_dbi dbi, const struct cidr *a,
                     const void *value, size_t size)
{
    MDB_txn *txn = store_write_begin(s);
    if (txn == NULL)
        return -1;
    uint8_t key[STORE_KEY_MAX];
    MDB_val k = {store_key(a, key), key}, v = {size, (void *)value};
    store_journal_add(s, dbi, &k, &v);
    int rc = mdb_put(txn, dbi, &k, &v, 0);
    return rc == 0 ? 0 : store_write_fail(s, "cannot write", rc, true);
}

/* store_check_sites - empties the verdicts when they were made under other
 * dnsbl_sites (or under unknown ones, or the cache is off), and records the
 * current text */
static int store_check_sites(struct store *s, MDB_txn *txn, const char *sites)
{
    MDB_val key = {strlen(STORE_META_SITES), (void *)STORE_META_SITES};
    MDB_val old, current = {strlen(sites), (void *)sites};
    MDB_stat st;
    int rc = mdb_get(txn, s->meta, &key, &old);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    bool same = rc == 0 && old.mv_size == current.mv_size &&
                memcmp(old.mv_data, current.mv_data, current.mv_size) == 0;
    rc = mdb_stat(txn, s->verdicts, &st);
    if (rc == 0 && st.ms_entries > 0 && (!same || s->max_verdicts == 0)) {
        log_info("state store %s: %zu cached verdicts dropped (%s)", s->path,
                 st.ms_entries, s->max_verdicts == 0 ? "verdict cache off"
                                                     : "dnsbl_sites changed");
        rc = mdb_drop(txn, s->verdicts, 0);
    }
    if (rc == 0 && !same)
        rc = mdb_put(txn, s->meta, &key, &current, 0);
    return rc;
}

/* store_env_open - creates and opens the environment */
static int store_env_open(struct store *s)
{
    size_t mapsize = SIZE_MAX / 2;
    if (s->max_verdicts < (mapsize - STORE_MAP_BASE) / STORE_MAP_PER_VERDICT)
        mapsize = STORE_MAP_BASE + s->max_verdicts * STORE_MAP_PER_VERDICT;
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        return rc;
    }
    rc = mdb_env_set_maxdbs(s->env, STORE_MAX_DBS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, mapsize);
    if (rc == 0)
        rc = mdb_env_open(s->env, s->path, MDB_NOSUBDIR | MDB_NOSYNC | MDB_NOTLS,
                          STORE_MODE);
    if (rc == 0) {
        int dead; /* reader slots of killed workers would pin old pages */
        rc = mdb_reader_check(s->env, &dead);
    }
    return rc;
}

/* store_setup - opens the databases, applies the sites rule and makes the
 * read-only transaction (left reset) */
static int store_setup(struct store *s, const char *sites)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_dbi_open(txn, "verdicts", MDB_CREATE, &s->verdicts);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "bans", MDB_CREATE, &s->bans);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
    if (rc == 0)
        rc = store_check_sites(s, txn, sites != NULL ? sites : "");
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc == 0)
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->read);
    if (rc == 0)
        mdb_txn_reset(s->read);
    return rc;
}

/* store_free - releases what is open, without committing */
static void store_free(struct store *s)
{
    if (s->write != NULL)
        mdb_txn_abort(s->write);
    if (s->read != NULL)
        mdb_txn_abort(s->read);
    if (s->env != NULL)
        mdb_env_close(s->env);
    free(s->journal);
    free(s);
}

/* store_open - see store.h */
struct store *store_open(const char *state_dir, size_t max_verdicts, const char *sites,
                         char *err, size_t errsize)
{
    size_t dir_len = strlen(state_dir);
    const char *slash = dir_len > 0 && state_dir[dir_len - 1] == '/' ? "" : "/";
    size_t size = dir_len + strlen(slash) + sizeof STORE_FILE;
    struct store *s = calloc(1, sizeof *s + size);
    if (s == NULL) {
        snprintf(err, errsize, "%s: cannot open the state store: out of memory",
                 state_dir);
        return NULL;
    }
    snprintf(s->path, size, "%s%s%s", state_dir, slash, STORE_FILE);
    s->max_verdicts = max_verdicts;
    int rc = store_env_open(s);
    if (rc == 0)
        rc = store_setup(s, sites);
    if (rc != 0) {
        /* a file that is not a store of ours (another program's, or
         * damaged): say how to start afresh, and what that costs */
        bool foreign = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
                       rc == MDB_INCOMPATIBLE || rc == MDB_PAGE_NOTFOUND;
        snprintf(err, errsize, "%s: cannot open the state store: %s%s%s%s", s->path,
                 mdb_strerror(rc), foreign ? "; if it is not breakwater's or is damaged, "
                 "move it and " : "", foreign ? s->path : "",
                 foreign ? "-lock away and start again (a new store is made; the bans "
                 "and cached verdicts in the old one are not put back)" : "");
        store_free(s);
        return NULL;
    }
    return s;
}

/* store_close - commits, flushes to disk, closes; NULL is a no-op */
void store_close(struct store *s)
{
    if (s == NULL)
        return;
    store_commit(s);
    int rc = mdb_env_sync(s->env, 1);
    if (rc != 0)
        store_log_error(s, "cannot flush to disk", rc);
    store_free(s);
}

/* store_commit - commits the pending writes, if any (making room and
 * committing them again when the map was full) */
int store_commit(struct store *s)
{
    for (int i = 0; s->write != NULL; i++) {
        int rc = mdb_txn_commit(s->write); /* frees the transaction, even failed */
        s->write = NULL;
        if (rc == MDB_MAP_FULL && i == STORE_ROOM_TRIES)
            s->journal_lost = true; /* no more replays: the loss is logged */
        if (rc != 0 && store_recover(s, "cannot commit", rc) != 0)
            return -1;
    }
    store_journal_reset(s);
    return 0;
}

/* store_sync - flushes committed data to disk */
int store_sync(struct store *s)
{
    int rc = mdb_env_sync(s->env, 1);
    if (rc != 0) {
        store_log_error(s, "cannot flush to disk", rc);
        return -1;
    }
    return 0;
}

/* store_path - the environment's file name */
const char *store_path(const struct store *s)
{
    return s->path;
}

/* store_verdict_get - see store.h */
bool store_verdict_get(struct store *s, const struct addr *a, double now, uint64_t sites,
                       struct store_verdict *out)
{
    struct store_verdict_record r;
    struct cidr host = store_host(a);
    if (s->max_verdicts == 0 || store_get(s, s->verdicts, &host, &r, sizeof r) != 1)
        return false;
    if (r.expires <= now || r.sites != sites)
        return false;
    *out = (struct store_verdict){.score = r.score, .hits = r.hits, .sites = r.sites};
    return true;
}

/* store_verdict_evict - the table is full: delete the verdict closest to
 * its expiry among STORE_EVICT_SAMPLE neighbours of key (the keys after
 * it, wrapping: a sample as good as random, since an address says nothing
 * of its age), as an LRU cache would its oldest; false when none could go */
static bool store_verdict_evict(struct store *s, MDB_txn *txn, MDB_val *key)
{
    MDB_cursor *c;
    MDB_val k = *key, v;
    double soonest = 0;
    uint8_t victim[STORE_KEY_MAX];
    size_t victim_size = 0;
    if (mdb_cursor_open(txn, s->verdicts, &c) != 0)
        return false;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    for (int n = 0; n < STORE_EVICT_SAMPLE; n++) {
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        if (rc != 0)
            break;
        struct store_verdict_record r;
        double expires = -1; /* a malformed record goes first */
        if (v.mv_size == sizeof r) {
            memcpy(&r, v.mv_data, sizeof r);
            expires = r.expires;
        }
        if ((victim_size == 0 || expires < soonest) && k.mv_size <= sizeof victim) {
            soonest = expires;
            victim_size = k.mv_size;
            memcpy(victim, k.mv_data, k.mv_size);
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    MDB_val gone = {victim_size, victim};
    return victim_size > 0 && mdb_del(txn, s->verdicts, &gone, NULL) == 0;
}

/* store_verdict_room - may a's verdict be written: the table has room, or
 * a's is there to be replaced, or one closest to its expiry was evicted */
static bool store_verdict_room(struct store *s, MDB_txn *txn, const struct addr *a)
{
    MDB_stat st;
    uint8_t key[STORE_KEY_MAX];
    struct cidr host = store_host(a);
    MDB_val k = {store_key(&host, key), key}, v;
    if (mdb_stat(txn, s->verdicts, &st) != 0 || st.ms_entries < s->max_verdicts)
        return true; /* (a failed stat: let the put report the error) */
    if (mdb_get(txn, s->verdicts, &k, &v) == 0)
        return true;
    log_limited(&s->full_log, store_clock(), LOG_LEVEL_WARNING,
                "state store %s: the verdict table is full (max_verdicts %zu): the "
                "verdicts closest to their expiry make room for new ones",
                s->path, s->max_verdicts);
    return store_verdict_evict(s, txn, &k);
}

/* store_verdict_put - see store.h */
int store_verdict_put(struct store *s, const struct addr *a,
                      const struct store_verdict *v, double expires)
{
    if (s->max_verdicts == 0)
        return 0;
    MDB_txn *txn = store_write_begin(s);
    if (txn == NULL || !store_verdict_room(s, txn, a))
        return -1;
    struct store_verdict_record r = {.expires = expires, .hits = v->hits, .sites = v->sites,
                                     .score = v->score};
    struct cidr host = store_host(a);
    return store_put(s, s->verdicts, &host, &r, sizeof r);
}

/* store_verdict_flush - see store.h */
int store_set_sites(struct store *s, const char *sites)
{
    MDB_txn *txn = store_write_begin(s);
    if (txn == NULL)
        return -1;
    int rc = store_check_sites(s, txn, sites);
    return rc == 0 ? 0 : store_write_fail(s, "cannot record the dnsbl_sites", rc, false);
}

int store_verdict_flush(struct store *s)
{
    MDB_txn *txn = store_write_begin(s);
    if (txn == NULL)
        return -1;
    int rc = mdb_drop(txn, s->verdicts, 0);
    if (rc != 0)
        return store_write_fail(s, "cannot empty the verdicts", rc, false);
    return 0; /* (the purge position needs no reset: a seek wraps) */
}

/* store_position_seek - puts the cursor on the first record after pos,
 * wrapping to the first one */
static int store_position_seek(MDB_cursor *c, const struct store_position *pos,
                               MDB_val *k, MDB_val *v)
{
    if (pos->size == 0)
        return mdb_cursor_get(c, k, v, MDB_FIRST);
    *k = (MDB_val){pos->size, (void *)pos->key};
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == pos->size &&
        memcmp(k->mv_data, pos->key, pos->size) == 0)
        rc = mdb_cursor_get(c, k, v, MDB_NEXT);
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(c, k, v, MDB_FIRST);
    return rc;
}

/* store_purge_walk - the visits of store_purge() with an open cursor;
 * returns 0, MDB_NOTFOUND (the table emptied) or an LMDB error */
static int store_purge_walk(MDB_cursor *c, struct store_position *pos,
                            store_expired_fn *expired, double before,
                            size_t max_visit, size_t *deleted)
{
    MDB_val k, v;
    int rc = store_position_seek(c, pos, &k, &v);
    for (size_t i = 0; i < max_visit && rc == 0; i++) {
        pos->size = k.mv_size < STORE_KEY_MAX ? k.mv_size : STORE_KEY_MAX;
        memcpy(pos->key, k.mv_data, pos->size); /* before a delete frees it */
        if (expired(&v, before)) {
            rc = mdb_cursor_del(c, 0); /* the cursor is left on the next */
            if (rc != 0)
                return rc;
            (*deleted)++;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    return rc;
}

/* store_purge - visits up to max_visit records of dbi after pos (wrapping
 * around, none twice) and deletes those `expired` says should go */
static size_t store_purge(struct store *s, MDB_dbi dbi, struct store_position *pos,
                          store_expired_fn *expired, double before, size_t max_visit)
{
    MDB_txn *txn = store_write_begin(s);
    MDB_cursor *c;
    MDB_stat st;
    size_t deleted = 0;
    if (txn == NULL)
        return 0;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc == 0 && st.ms_entries < max_visit)
        max_visit = st.ms_entries; /* so no record is visited twice */
    if (rc == 0 && max_visit > 0 && (rc = mdb_cursor_open(txn, dbi, &c)) == 0) {
        rc = store_purge_walk(c, pos, expired, before, max_visit, &deleted);
        mdb_cursor_close(c);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        store_write_fail(s, "cannot purge", rc, false);
        return 0;
    }
    return deleted;
}

/* store_verdict_expired - a verdict record past its expiry (or malformed) */
static bool store_verdict_expired(const MDB_val *value, double now)
{
    struct store_verdict_record r;
    if (value->mv_size != sizeof r)
        return true;
    memcpy(&r, value->mv_data, sizeof r);
    return r.expires <= now;
}

/* store_verdict_purge - see store.h */
size_t store_verdict_purge(struct store *s, double now, size_t max_visit)
{
    return store_purge(s, s->verdicts, &s->verdict_position, store_verdict_expired,
                       now, max_visit);
}

/* store_verdict_count - the number of verdicts stored, expired or not */
size_t store_verdict_count(struct store *s)
{
    MDB_stat st;
    MDB_txn *txn = store_read_begin(s);
    if (txn == NULL)
        return 0;
    int rc = mdb_stat(txn, s->verdicts, &st);
    store_read_end(s, txn);
    if (rc != 0) {
        store_log_error(s, "cannot count the verdicts", rc);
        return 0;
    }
    return st.ms_entries;
}

/* store_ban_decode - a ban record's value; false when malformed */
static bool store_ban_decode(const MDB_val *value, struct store_ban *out)
{
    struct store_ban_record r;
    if (value->mv_size != sizeof r)
        return false;
    memcpy(&r, value->mv_data, sizeof r);
    *out = (struct store_ban){.until = r.until, .last = r.last, .count = r.count,
                              .reason = r.reason, .peer = r.peer != 0,
                              .unbanned = r.unbanned != 0};
    return true;
}

/* store_ban_get - see store.h */
bool store_ban_get(struct store *s, const struct cidr *a, struct store_ban *out)
{
    struct store_ban_record r;
    if (store_get(s, s->bans, a, &r, sizeof r) != 1)
        return false;
    MDB_val v = {sizeof r, &r};
    return store_ban_decode(&v, out);
}

/* store_ban_put - see store.h */
int store_ban_put(struct store *s, const struct cidr *a, const struct store_ban *b)
{
    struct store_ban_record r = {.until = b->until, .last = b->last,
                                 .count = b->count, .reason = b->reason,
                                 .peer = b->peer, .unbanned = b->unbanned};
    return store_put(s, s->bans, a, &r, sizeof r);
}

/* store_ban_foreach - see store.h */
int store_ban_foreach(struct store *s,
                      int (*fn)(const struct cidr *a, const struct store_ban *b, void *arg),
                      void *arg)
{
    MDB_txn *txn = store_read_begin(s);
    MDB_cursor *c;
    MDB_val k, v;
    int result = 0;
    if (txn == NULL)
        return -1;
    int rc = mdb_cursor_open(txn, s->bans, &c);
    if (rc == 0) {
        for (MDB_cursor_op op = MDB_FIRST; rc == 0 && result == 0; op = MDB_NEXT) {
            struct cidr a;
            struct store_ban b;
            rc = mdb_cursor_get(c, &k, &v, op);
            if (rc == 0 && store_key_decode(&k, &a) && store_ban_decode(&v, &b))
                result = fn(&a, &b, arg);
        }
        mdb_cursor_close(c);
    }
    store_read_end(s, txn);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        store_log_error(s, "cannot list the bans", rc);
        return -1;
    }
    return result;
}

/* store_ban_expired - a ban that ended before `before` (or malformed) */
static bool store_ban_expired(const MDB_val *value, double before)
{
    struct store_ban b;
    return !store_ban_decode(value, &b) || b.until < before;
}

/* store_ban_purge - see store.h */
size_t store_ban_purge(struct store *s, double now, double keep, size_t max_visit)
{
    return store_purge(s, s->bans, &s->ban_position, store_ban_expired,
                       now - keep, max_visit);
}
