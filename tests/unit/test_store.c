/*
 * test_store - src/store.c against real LMDB in a fresh directory under /tmp
 * per test (removed after): verdict round trips and expiry, persistence,
 * the dnsbl_sites rule, the max_verdicts bound, incremental purges that
 * wrap around, ban records and their key order, reads that see uncommitted
 * writes, two processes sharing one store, flush, and a corrupt file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

#define SITES "zen.example:2, bl.example"
#define MAX_VERDICTS 1000

struct test_dir {
    char path[64];
};

/* test_setup - a fresh empty directory per test */
static int test_setup(void **state)
{
    struct test_dir *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -1;
    snprintf(d->path, sizeof d->path, "/tmp/test_store.XXXXXX");
    if (mkdtemp(d->path) == NULL) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* test_teardown - removes the directory and every file in it */
static int test_teardown(void **state)
{
    struct test_dir *d = *state;
    char file[512];
    DIR *dir = opendir(d->path);
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof file, "%s/%s", d->path, e->d_name);
        unlink(file);
    }
    if (dir != NULL)
        closedir(dir);
    int rc = rmdir(d->path);
    free(d);
    return rc;
}

/* test_open - opens the store in the test's directory, failing the test if
 * it cannot */
static struct store *test_open(void **state, size_t max_verdicts, const char *sites)
{
    struct test_dir *d = *state;
    char err[512] = "";
    struct store *s = store_open(d->path, max_verdicts, sites, err, sizeof err);
    if (s == NULL)
        fail_msg("store_open: %s", err);
    return s;
}

/* test_addr - parses text, failing the test if it is not an address */
/* HOST - an address as the network of its whole length, a ban key */
#define HOST(a) (&(struct cidr){*(a), (a)->family == AF_INET ? 32 : 128})

static struct addr test_addr(const char *text)
{
    struct addr a;
    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

/* test_addr_n - the n-th address of 10.0.0.0/8 */
static struct addr test_addr_n(unsigned n)
{
    char text[32];
    snprintf(text, sizeof text, "10.%u.%u.%u", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    return test_addr(text);
}

static void test_verdict_round_trip(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr v4 = test_addr("192.0.2.7"), v6 = test_addr("2001:db8::7");
    /* the same first bytes in the other family: another key */
    struct addr v6_like = test_addr("c000:207::");
    struct store_verdict listed = {7, 0x8000000000000005ull, 0};
    struct store_verdict clean = {-3, 0, 0};
    struct store_verdict got;

    assert_false(store_verdict_get(s, &v4, 0, 0, &got));
    assert_int_equal(store_verdict_put(s, &v4, &listed, 1000), 0);
    assert_int_equal(store_verdict_put(s, &v6, &clean, 1000), 0);
    assert_int_equal(store_commit(s), 0);

    assert_true(store_verdict_get(s, &v4, 10, 0, &got));
    assert_int_equal(got.score, 7);
    assert_true(got.hits == 0x8000000000000005ull);
    assert_true(store_verdict_get(s, &v6, 10, 0, &got));
    assert_int_equal(got.score, -3);
    assert_true(got.hits == 0);
    assert_false(store_verdict_get(s, &v6_like, 10, 0, &got));
    assert_int_equal(store_verdict_count(s), 2);
    store_close(s);
}

/* a verdict is for the sites it was made under: another worker, or a
 * generation from before a reload, may write one made under others */
static void test_verdict_sites_tag(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr a = test_addr("192.0.2.8");
    struct store_verdict old = {3, 1, 0x1111}, now = {1, 2, 0x2222}, got;
    assert_int_equal(store_verdict_put(s, &a, &old, 1000), 0);
    assert_false(store_verdict_get(s, &a, 0, 0x2222, &got));
    assert_true(store_verdict_get(s, &a, 0, 0x1111, &got));
    assert_int_equal(got.score, 3);
    assert_int_equal(store_verdict_put(s, &a, &now, 1000), 0);
    assert_true(store_verdict_get(s, &a, 0, 0x2222, &got));
    assert_int_equal(got.score, 1);
    assert_true(got.sites == 0x2222);
    assert_false(store_verdict_get(s, &a, 0, 0x1111, &got));
    store_close(s);
}

static void test_verdict_expiry(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr a = test_addr("198.51.100.1");
    struct store_verdict v = {1, 1, 0}, got;
    assert_int_equal(store_verdict_put(s, &a, &v, 100.0), 0);
    assert_int_equal(store_commit(s), 0);
    assert_true(store_verdict_get(s, &a, 99.9, 0, &got));
    assert_false(store_verdict_get(s, &a, 100.0, 0, &got));
    assert_false(store_verdict_get(s, &a, 5000.0, 0, &got));
    /* absent to readers, still counted until a purge */
    assert_int_equal(store_verdict_count(s), 1);
    store_close(s);
}

static void test_persistence(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr a = test_addr("203.0.113.9"), b = test_addr("2001:db8:1::9");
    struct store_verdict v = {4, 2, 0}, got;
    struct store_ban ban = {1e9 + 0.5, 1e9 - 60.25, 3, STORE_BAN_PREGREET, true, false}, gotban;
    assert_int_equal(store_verdict_put(s, &a, &v, 2e9), 0);
    assert_int_equal(store_ban_put(s, HOST(&b), &ban), 0);
    store_close(s); /* commits */

    s = test_open(state, MAX_VERDICTS, SITES);
    assert_true(store_verdict_get(s, &a, 1e9, 0, &got));
    assert_int_equal(got.score, 4);
    assert_true(got.hits == 2);
    assert_true(store_ban_get(s, HOST(&b), &gotban));
    assert_true(gotban.until == ban.until);
    assert_true(gotban.last == ban.last);
    assert_int_equal(gotban.count, 3);
    assert_int_equal(gotban.reason, STORE_BAN_PREGREET);
    assert_true(gotban.peer);
    assert_false(store_ban_get(s, HOST(&a), &gotban));
    store_close(s);
}

static void test_sites_change(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr a = test_addr("192.0.2.1"), b = test_addr("192.0.2.2");
    struct store_verdict v = {1, 1, 0}, got;
    struct store_ban ban = {500, 400, 1, STORE_BAN_DNSBL, false, false}, gotban;
    assert_int_equal(store_verdict_put(s, &a, &v, 1000), 0);
    assert_int_equal(store_ban_put(s, HOST(&b), &ban), 0);
    store_close(s);

    /* same text: kept */
    s = test_open(state, MAX_VERDICTS, SITES);
    assert_true(store_verdict_get(s, &a, 0, 0, &got));
    store_close(s);

    /* other text: verdicts emptied, bans kept */
    s = test_open(state, MAX_VERDICTS, "bl.example, zen.example:2");
    assert_int_equal(store_verdict_count(s), 0);
    assert_false(store_verdict_get(s, &a, 0, 0, &got));
    assert_true(store_ban_get(s, HOST(&b), &gotban));
    assert_int_equal(store_verdict_put(s, &a, &v, 1000), 0);
    store_close(s);

    /* the new text was recorded: a reopen with it keeps the new verdict */
    s = test_open(state, MAX_VERDICTS, "bl.example, zen.example:2");
    assert_true(store_verdict_get(s, &a, 0, 0, &got));
    store_close(s);

    /* no cache (max_verdicts 0): nothing kept, nothing read */
    s = test_open(state, 0, "bl.example, zen.example:2");
    assert_int_equal(store_verdict_count(s), 0);
    assert_int_equal(store_verdict_put(s, &a, &v, 1000), 0);
    assert_false(store_verdict_get(s, &a, 0, 0, &got));
    assert_int_equal(store_verdict_count(s), 0);
    assert_true(store_ban_get(s, HOST(&b), &gotban));
    store_close(s);
}

/* test_raw_verdicts - writes n verdict-like records straight with LMDB,
 * without a "sites" meta record, as a store of unknown origin */
static void test_raw_verdicts(const char *dir, unsigned n)
{
    char path[512];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t key[5] = {AF_INET, 10, 0, 0, 0}, value[24] = {0};
    snprintf(path, sizeof path, "%s/breakwater.mdb", dir);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "verdicts", MDB_CREATE, &dbi), 0);
    for (unsigned i = 0; i < n; i++) {
        key[4] = (uint8_t)i;
        MDB_val k = {sizeof key, key}, v = {sizeof value, value};
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_sites_absent(void **state)
{
    struct test_dir *d = *state;
    test_raw_verdicts(d->path, 5);
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    assert_int_equal(store_verdict_count(s), 0);
    store_close(s);
}

static void test_max_verdicts(void **state)
{
    struct store *s = test_open(state, 3, SITES);
    struct store_verdict v = {0, 0, 0}, w = {9, 4, 0}, got;
    struct addr a[4] = {test_addr_n(1), test_addr_n(2), test_addr_n(3), test_addr_n(4)};
    assert_int_equal(store_verdict_put(s, &a[0], &v, 100), 0);
    assert_int_equal(store_verdict_put(s, &a[1], &v, 1000), 0);
    assert_int_equal(store_verdict_put(s, &a[2], &v, 1000), 0);
    /* a replacement never evicts */
    assert_int_equal(store_verdict_put(s, &a[1], &w, 1000), 0);
    assert_true(store_verdict_get(s, &a[1], 0, 0, &got));
    assert_int_equal(got.score, 9);
    assert_int_equal(store_verdict_count(s), 3);
    /* full: a new address takes the place of the one expiring soonest
     * (a[0], at 100; all three are in the sample) */
    assert_int_equal(store_verdict_put(s, &a[3], &v, 2000), 0);
    assert_true(store_verdict_get(s, &a[3], 0, 0, &got));
    assert_false(store_verdict_get(s, &a[0], 0, 0, &got));
    assert_int_equal(store_verdict_count(s), 3);
    assert_int_equal(store_commit(s), 0);
    /* again after a commit: now a[1] or a[2] (1000) goes, a[3] (2000) stays */
    assert_int_equal(store_verdict_put(s, &a[0], &v, 3000), 0);
    assert_true(store_verdict_get(s, &a[3], 0, 0, &got));
    assert_true(store_verdict_get(s, &a[0], 0, 0, &got));
    assert_int_equal(store_verdict_count(s), 3);
    assert_int_equal(store_commit(s), 0);
    store_close(s);
}

static void test_verdict_purge(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct store_verdict v = {0, 0, 0}, got;
    /* 0..9: the even ones expire at 50, the odd ones at 500 */
    for (unsigned i = 0; i < 10; i++) {
        struct addr a = test_addr_n(i);
        assert_int_equal(store_verdict_put(s, &a, &v, i % 2 ? 500 : 50), 0);
    }
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_verdict_purge(s, 100, 0), 0);
    assert_int_equal(store_verdict_purge(s, 100, 4), 2);  /* visits 0 1 2 3 */
    assert_int_equal(store_verdict_count(s), 8);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_verdict_purge(s, 100, 4), 2);  /* 4 5 6 7 */
    assert_int_equal(store_verdict_purge(s, 100, 4), 1);  /* 8 9, wraps: 1 3 */
    assert_int_equal(store_verdict_count(s), 5);
    struct addr eight = test_addr_n(8), nine = test_addr_n(9);
    assert_false(store_verdict_get(s, &eight, 0, 0, &got));
    assert_true(store_verdict_get(s, &nine, 0, 0, &got));
    assert_int_equal(store_verdict_purge(s, 100, 4), 0);  /* 5 7 9 1 */
    /* more visits than records: each is visited once */
    assert_int_equal(store_verdict_purge(s, 1000, 100), 5);
    assert_int_equal(store_verdict_count(s), 0);
    assert_int_equal(store_verdict_purge(s, 1000, 100), 0);
    assert_int_equal(store_commit(s), 0);
    store_close(s);
}

/* test_purge_resumes_after_deleted - the position survives the deletion of
 * the record it names (its key no longer exists on the next call) */
static void test_purge_resumes_after_deleted(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct store_verdict v = {0, 0, 0};
    for (unsigned i = 0; i < 6; i++) {
        struct addr a = test_addr_n(i);
        assert_int_equal(store_verdict_put(s, &a, &v, i == 1 || i >= 4 ? 50 : 500), 0);
    }
    assert_int_equal(store_verdict_purge(s, 100, 2), 1); /* 0 1 (deleted) */
    assert_int_equal(store_verdict_purge(s, 100, 2), 0); /* 2 3 */
    assert_int_equal(store_verdict_purge(s, 100, 2), 2); /* 4 5 */
    assert_int_equal(store_verdict_count(s), 3);
    store_close(s);
}

/* test_purge_visits_each_once - more visits than records stop at the
 * record before the first visited, so the next purge starts there */
static void test_purge_visits_each_once(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct store_verdict v = {0, 0, 0}, got;
    struct addr a[3] = {test_addr_n(0), test_addr_n(1), test_addr_n(2)};
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(store_verdict_put(s, &a[i], &v, 100), 0);
    assert_int_equal(store_verdict_purge(s, 50, 5), 0); /* 0 1 2, not 0 1 2 0 1 */
    assert_int_equal(store_verdict_purge(s, 200, 1), 1); /* wraps to 0 */
    assert_false(store_verdict_get(s, &a[0], 0, 0, &got));
    assert_true(store_verdict_get(s, &a[1], 0, 0, &got));
    assert_true(store_verdict_get(s, &a[2], 0, 0, &got));
    store_close(s);
}

struct test_ban_list {
    char text[8][CIDR_TEXT_MAX];
    struct store_ban ban[8];
    unsigned count;
    unsigned stop_at; /* return 7 at this record (1-based); 0: never */
};

/* test_ban_collect - store_ban_foreach() callback: notes each record */
static int test_ban_collect(const struct cidr *a, const struct store_ban *b, void *arg)
{
    struct test_ban_list *list = arg;
    if (list->count >= 8)
        return -2;
    cidr_format(a, list->text[list->count], CIDR_TEXT_MAX);
    list->ban[list->count] = *b;
    list->count++;
    return list->count == list->stop_at ? 7 : 0;
}

static void test_ban_records(void **state)
{
    static const char *const inserted[] = {
        "2001:db8::1", "10.0.0.2", "9.255.255.255", "10.0.0.1", "::1", "255.255.255.255",
    };
    static const char *const sorted[] = {
        "9.255.255.255", "10.0.0.1", "10.0.0.2", "255.255.255.255", "::1", "2001:db8::1",
    };
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    for (unsigned i = 0; i < 6; i++) {
        struct addr a = test_addr(inserted[i]);
        struct store_ban b = {1000 + i, 900 + i, i, STORE_BAN_MANUAL, false, false};
        assert_int_equal(store_ban_put(s, HOST(&a), &b), 0);
    }
    for (int pass = 0; pass < 2; pass++) { /* pending, then committed */
        struct test_ban_list list = {.count = 0};
        assert_int_equal(store_ban_foreach(s, test_ban_collect, &list), 0);
        assert_int_equal(list.count, 6);
        for (unsigned i = 0; i < 6; i++) {
            assert_string_equal(list.text[i], sorted[i]);
            unsigned n = list.ban[i].count; /* its place in inserted[] */
            assert_string_equal(inserted[n], sorted[i]);
            assert_true(list.ban[i].until == 1000 + n);
            assert_true(list.ban[i].last == 900 + n);
            assert_int_equal(list.ban[i].reason, STORE_BAN_MANUAL);
        }
        assert_int_equal(store_commit(s), 0);
    }
    /* a non-zero return stops the walk and is returned */
    struct test_ban_list list = {.stop_at = 3};
    assert_int_equal(store_ban_foreach(s, test_ban_collect, &list), 7);
    assert_int_equal(list.count, 3);

    /* an unban keeps the record, marked (the fleet's order needs it) */
    struct addr a = test_addr("10.0.0.1"), absent = test_addr("10.9.9.9");
    struct store_ban lifted = {1100, 1100, 0, STORE_BAN_MANUAL, true, true}, b;
    assert_int_equal(store_ban_put(s, HOST(&a), &lifted), 0);
    assert_false(store_ban_get(s, HOST(&absent), &b));
    assert_int_equal(store_commit(s), 0);
    assert_true(store_ban_get(s, HOST(&a), &b));
    assert_true(b.unbanned && b.peer && b.until == 1100 && b.last == 1100 && b.count == 0);
    list = (struct test_ban_list){.count = 0};
    assert_int_equal(store_ban_foreach(s, test_ban_collect, &list), 0);
    assert_int_equal(list.count, 6);
    assert_true(list.ban[1].unbanned && !list.ban[2].unbanned);
    store_close(s);
}

/* test_ban_networks - a network and its first address are two records;
 * networks sort with their family in address order, and come back with
 * their length */
static void test_ban_networks(void **state)
{
    static const char *const inserted[] = {
        "2001:db8::/64", "2001:db8::", "10.0.0.0/24", "10.0.0.0", "2001:db8::/48",
    };
    static const char *const sorted[] = {
        "10.0.0.0", "10.0.0.0/24", "2001:db8::", "2001:db8::/48", "2001:db8::/64",
    };
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    for (unsigned i = 0; i < 5; i++) {
        struct cidr net;
        struct store_ban b = {1000, 900, i, STORE_BAN_RATE, false, false};
        assert_int_equal(cidr_parse(inserted[i], &net), 0);
        assert_int_equal(store_ban_put(s, &net, &b), 0);
    }
    assert_int_equal(store_commit(s), 0);
    struct test_ban_list list = {.count = 0};
    assert_int_equal(store_ban_foreach(s, test_ban_collect, &list), 0);
    assert_int_equal(list.count, 5);
    for (unsigned i = 0; i < 5; i++) {
        assert_string_equal(list.text[i], sorted[i]);
        assert_string_equal(inserted[list.ban[i].count], sorted[i]);
    }
    struct cidr net;
    struct store_ban got;
    struct store_ban lifted = {1200, 1200, 0, STORE_BAN_RATE, false, true};
    assert_int_equal(cidr_parse("2001:db8::/64", &net), 0);
    assert_int_equal(store_ban_put(s, &net, &lifted), 0);
    assert_true(store_ban_get(s, &net, &got) && got.unbanned);
    assert_int_equal(cidr_parse("2001:db8::", &net), 0); /* its first address stays */
    assert_true(store_ban_get(s, &net, &got));
    assert_int_equal(got.count, 1);
    assert_false(got.unbanned);
    store_close(s);
}

/* test_ban_keys_checked - ban keys written straight with LMDB: only well
 * formed ones are read (a network no wider than /8 or /16, host bits zero,
 * a prefix byte only below the whole length) */
static void test_ban_keys_checked(void **state)
{
    static const struct {
        uint8_t key[18];
        size_t size;
        const char *read_as; /* NULL: skipped */
    } keys[] = {
        {{AF_INET, 10, 0, 0, 0, 8}, 6, "10.0.0.0/8"},
        {{AF_INET, 10, 0, 0, 0, 7}, 6, NULL},            /* wider than /8 */
        {{AF_INET, 0, 0, 0, 0, 0}, 6, NULL},             /* 0.0.0.0/0 */
        {{AF_INET, 10, 0, 0, 1, 24}, 6, NULL},           /* host bits */
        {{AF_INET, 10, 0, 0, 1, 32}, 6, NULL},           /* /32 written long */
        {{AF_INET, 10, 0, 0, 1}, 5, "10.0.0.1"},
        {{AF_INET6, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 18, NULL},
        {{AF_INET6, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32}, 18,
         "2001:db8::/32"},
    };
    struct test_dir *d = *state;
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    store_close(s); /* the environment and its databases exist */
    char path[512];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    struct store_ban_record_raw { double until, last; uint32_t count; uint8_t reason, peer, unused[2]; }
        value = {1e12, 1e9, 1, STORE_BAN_MANUAL, 0, {0, 0}};
    snprintf(path, sizeof path, "%s/breakwater.mdb", d->path);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "bans", 0, &dbi), 0);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        MDB_val k = {keys[i].size, (void *)keys[i].key}, v = {sizeof value, &value};
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    s = test_open(state, MAX_VERDICTS, SITES);
    struct test_ban_list list = {.count = 0};
    assert_int_equal(store_ban_foreach(s, test_ban_collect, &list), 0);
    char got[256] = "", want[256] = "";
    for (unsigned i = 0; i < list.count; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s ", list.text[i]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].read_as != NULL)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s ", keys[i].read_as);
    assert_string_equal(got, want);
    store_close(s);
}

struct test_nested {
    struct store *s;
    unsigned found;
};

/* test_ban_reread - store_ban_foreach() callback that reads the store */
static int test_ban_reread(const struct cidr *a, const struct store_ban *b, void *arg)
{
    struct test_nested *n = arg;
    struct store_ban again;
    if (store_ban_get(n->s, a, &again) && again.count == b->count)
        n->found++;
    return 0;
}

static void test_ban_foreach_nested_read(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    for (unsigned i = 0; i < 3; i++) {
        struct addr a = test_addr_n(i);
        struct store_ban b = {100, 50, i, STORE_BAN_DNSBL, false, false};
        assert_int_equal(store_ban_put(s, HOST(&a), &b), 0);
    }
    assert_int_equal(store_commit(s), 0);
    struct test_nested n = {s, 0};
    assert_int_equal(store_ban_foreach(s, test_ban_reread, &n), 0);
    assert_int_equal(n.found, 3);
    /* the read transaction was reset after the walk: a write, then reads */
    struct addr a = test_addr_n(7);
    struct store_ban b = {100, 50, 7, STORE_BAN_DNSBL, false, false}, got;
    assert_int_equal(store_ban_put(s, HOST(&a), &b), 0);
    assert_int_equal(store_commit(s), 0);
    assert_true(store_ban_get(s, HOST(&a), &got));
    store_close(s);
}

static void test_ban_purge_keep(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    double until[] = {100, 200, 249, 250, 300};
    for (unsigned i = 0; i < 5; i++) {
        struct addr a = test_addr_n(i);
        struct store_ban b = {until[i], until[i] - 10, 1, STORE_BAN_DNSBL, false, false};
        assert_int_equal(store_ban_put(s, HOST(&a), &b), 0);
    }
    assert_int_equal(store_commit(s), 0);
    /* now 400, keep 150: those that ended before 250 go */
    assert_int_equal(store_ban_purge(s, 400, 150, 2), 2);
    assert_int_equal(store_ban_purge(s, 400, 150, 2), 1);
    assert_int_equal(store_ban_purge(s, 400, 150, 10), 0);
    assert_int_equal(store_commit(s), 0);
    struct store_ban b;
    for (unsigned i = 0; i < 5; i++) {
        struct addr a = test_addr_n(i);
        assert_int_equal(store_ban_get(s, HOST(&a), &b), until[i] >= 250);
    }
    store_close(s);
}

static void test_reads_see_pending_writes(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr a = test_addr("192.0.2.50");
    struct store_verdict v = {2, 1, 0}, got;
    struct store_ban b = {100, 50, 1, STORE_BAN_DENYLIST, false, false}, gotban;
    /* a read first, so the read transaction has seen an older state */
    assert_false(store_verdict_get(s, &a, 0, 0, &got));
    assert_int_equal(store_verdict_put(s, &a, &v, 100), 0);
    assert_int_equal(store_ban_put(s, HOST(&a), &b), 0);
    assert_true(store_verdict_get(s, &a, 0, 0, &got));
    assert_true(store_ban_get(s, HOST(&a), &gotban));
    assert_int_equal(store_verdict_count(s), 1);
    assert_int_equal(store_commit(s), 0);
    /* a pending overwrite hides the committed record */
    struct store_ban lifted = {60, 60, 0, STORE_BAN_DENYLIST, false, true};
    assert_int_equal(store_ban_put(s, HOST(&a), &lifted), 0);
    assert_true(store_ban_get(s, HOST(&a), &gotban) && gotban.unbanned);
    assert_int_equal(store_commit(s), 0);
    assert_true(store_ban_get(s, HOST(&a), &gotban) && gotban.unbanned && gotban.until == 60);
    assert_true(store_verdict_get(s, &a, 0, 0, &got));
    store_close(s);
}

/* test_child - in a forked child: its own store, which must see what the
 * parent committed, then a verdict of its own; the exit code says which
 * step failed */
static void test_child(const char *dir)
{
    char err[512];
    struct addr parents = test_addr("192.0.2.1"), mine = test_addr("2001:db8::2");
    struct store_verdict v = {5, 3, 0}, got;
    struct store *s = store_open(dir, MAX_VERDICTS, SITES, err, sizeof err);
    if (s == NULL)
        _exit(2);
    if (!store_verdict_get(s, &parents, 0, 0, &got) || got.score != 1)
        _exit(3);
    if (store_verdict_put(s, &mine, &v, 1000) != 0 || store_commit(s) != 0)
        _exit(4);
    store_close(s);
    _exit(0);
}

static void test_two_processes(void **state)
{
    struct test_dir *d = *state;
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct addr parents = test_addr("192.0.2.1"), childs = test_addr("2001:db8::2");
    struct store_verdict v = {1, 0, 0}, got;
    assert_int_equal(store_verdict_put(s, &parents, &v, 1000), 0);
    assert_int_equal(store_commit(s), 0);
    assert_false(store_verdict_get(s, &childs, 0, 0, &got));

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        test_child(d->path); /* never the parent's handle */
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* the parent's handle, opened before, sees the child's commit */
    assert_true(store_verdict_get(s, &childs, 0, 0, &got));
    assert_int_equal(got.score, 5);
    assert_true(got.hits == 3);
    assert_int_equal(store_verdict_count(s), 2);
    store_close(s);
}

/* test_addr6_n - the n-th address of 2001:db8::/64 */
static struct addr test_addr6_n(unsigned n)
{
    struct addr a = test_addr("2001:db8::");
    for (int i = 0; i < 4; i++)
        a.bytes[15 - i] = (uint8_t)(n >> (8 * i));
    return a;
}

/* test_map_full - one transaction of more writes than the journal keeps
 * (STORE_JOURNAL_MAX) runs past the map: its writes are lost, the store
 * goes on: what was committed stays, the next writes work */
static void test_map_full(void **state)
{
    struct store *s = test_open(state, 10, SITES); /* the smallest map */
    struct store_ban b = {100, 50, 1, STORE_BAN_DNSBL, false, false}, got;
    struct addr kept = test_addr("192.0.2.1"), lost = test_addr("192.0.2.2");
    assert_int_equal(store_ban_put(s, HOST(&kept), &b), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_ban_put(s, HOST(&lost), &b), 0);
    unsigned n = 0;
    while (n < 4000000) {
        struct addr a = test_addr6_n(n++);
        if (store_ban_put(s, HOST(&a), &b) != 0)
            break;
    }
    assert_true(n < 4000000);
    assert_false(store_ban_get(s, HOST(&lost), &got));
    assert_true(store_ban_get(s, HOST(&kept), &got));
    assert_int_equal(store_commit(s), 0); /* nothing pending */
    assert_int_equal(store_ban_put(s, HOST(&lost), &b), 0);
    assert_int_equal(store_commit(s), 0);
    assert_true(store_ban_get(s, HOST(&lost), &got));
    store_close(s);
}

/* test_stderr_begin, test_stderr_end - what the store logs, in a file */
static int test_stderr_begin(FILE **file)
{
    fflush(stderr);
    *file = tmpfile();
    assert_non_null(*file);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(*file), 2), 2);
    return saved;
}

static char *test_stderr_end(FILE *file, int saved, char *text, size_t size)
{
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    rewind(file);
    size_t n = fread(text, 1, size - 1, file);
    text[n] = '\0';
    fclose(file);
    return text;
}

/* test_map_full_makes_room - bans committed a batch at a time (as the
 * event loop does) until the map has been full twice: no ban is lost; each
 * time the quarter of the verdicts closest to their expiry go and, since
 * bans fill the map, it grows by half; one warning says so */
static void test_map_full_makes_room(void **state)
{
    enum { VERDICTS = 1000, BATCH = 500, LIMIT = 8000000 };
    struct store *s = test_open(state, VERDICTS, SITES);
    struct store_verdict v = {1, 1, 0}, got;
    struct store_ban b = {100, 50, 1, STORE_BAN_DNSBL, false, false}, ban;
    for (unsigned i = 0; i < VERDICTS; i++) {
        struct addr a = test_addr_n(i);
        assert_int_equal(store_verdict_put(s, &a, &v, 1000 + i), 0); /* i: its age */
    }
    assert_int_equal(store_commit(s), 0);

    FILE *log_file;
    char log_text[4096];
    log_set_level(LOG_LEVEL_WARNING);
    int saved = test_stderr_begin(&log_file);
    /* (no assertion while stderr is the log file: cmocka says why there) */
    unsigned n = 0, first_room = 0, failed_puts = 0, failed_commits = 0, events = 0;
    size_t left_at_room = 0, before = VERDICTS;
    bool kept[4] = {false};
    while (n < LIMIT && events < 2) {
        for (unsigned i = 0; i < BATCH; i++) {
            struct addr a = test_addr6_n(n++);
            failed_puts += store_ban_put(s, HOST(&a), &b) != 0;
        }
        failed_commits += store_commit(s) != 0;
        size_t left = store_verdict_count(s);
        if (first_room == 0 && left < VERDICTS) {
            first_room = n;
            left_at_room = left;
            unsigned which[4] = {0, VERDICTS / 4, VERDICTS / 4 + 1, VERDICTS - 1};
            for (int i = 0; i < 4; i++) {
                struct addr a = test_addr_n(which[i]);
                kept[i] = store_verdict_get(s, &a, 0, 0, &got);
            }
        }
        events += left < before;
        before = left;
    }
    test_stderr_end(log_file, saved, log_text, sizeof log_text);
    log_set_level(LOG_LEVEL_ERROR);
    assert_int_equal(failed_puts, 0);
    assert_int_equal(failed_commits, 0);
    /* the quarter expiring soonest went (and one more, rounding up); the
     * oldest and the 250th are gone, the 251st and the youngest stay */
    assert_int_equal(left_at_room, VERDICTS - VERDICTS / 4 - 1);
    assert_false(kept[0]);
    assert_false(kept[1]);
    assert_true(kept[2]);
    assert_true(kept[3]);
    assert_int_equal(events, 2);
    for (unsigned i = 0; i < n; i++) {
        struct addr a = test_addr6_n(i);
        if (!store_ban_get(s, HOST(&a), &ban))
            fail_msg("ban %u of %u lost", i, n);
    }
    /* the first event is said, the ones right after it are not */
    const char *said = strstr(log_text, "the map (64 MiB) is full: 251 cached verdicts closest to "
                              "their expiry were dropped to make room; the map grows to 96 MiB");
    assert_non_null(said);
    assert_null(strstr(strchr(said, '\n'), "is full"));
    assert_null(strstr(log_text, "are lost"));
    store_close(s);

    /* the grown map is what the file needs: it opens again, all there */
    s = test_open(state, VERDICTS, SITES);
    struct addr a = test_addr6_n(n - 1);
    assert_true(store_ban_get(s, HOST(&a), &ban));
    store_close(s);
}

static void test_flush(void **state)
{
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    struct store_verdict v = {1, 1, 0}, got;
    struct store_ban b = {100, 50, 1, STORE_BAN_DNSBL, false, false}, gotban;
    for (unsigned i = 0; i < 20; i++) {
        struct addr a = test_addr_n(i);
        assert_int_equal(store_verdict_put(s, &a, &v, 1000), 0);
    }
    struct addr banned = test_addr_n(3);
    assert_int_equal(store_ban_put(s, HOST(&banned), &b), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_verdict_purge(s, 0, 5), 0); /* a purge position */
    assert_int_equal(store_verdict_flush(s), 0);
    assert_int_equal(store_verdict_count(s), 0);
    assert_false(store_verdict_get(s, &banned, 0, 0, &got));
    assert_true(store_ban_get(s, HOST(&banned), &gotban));
    /* the table works after a flush, purge included */
    assert_int_equal(store_verdict_put(s, &banned, &v, 10), 0);
    assert_int_equal(store_verdict_purge(s, 100, 5), 1);
    store_close(s);

    s = test_open(state, MAX_VERDICTS, SITES);
    assert_int_equal(store_verdict_count(s), 0);
    assert_true(store_ban_get(s, HOST(&banned), &gotban));
    store_close(s);
}

static void test_commit_sync_path(void **state)
{
    struct test_dir *d = *state;
    char expected[128];
    struct store *s = test_open(state, MAX_VERDICTS, SITES);
    snprintf(expected, sizeof expected, "%s/breakwater.mdb", d->path);
    assert_string_equal(store_path(s), expected);
    assert_int_equal(store_commit(s), 0); /* nothing pending */
    assert_int_equal(store_sync(s), 0);
    struct stat st;
    assert_int_equal(stat(expected, &st), 0);
    strcat(expected, "-lock");
    assert_int_equal(stat(expected, &st), 0);
    store_close(s);
    store_close(NULL);
}

static void test_corrupt_file(void **state)
{
    struct test_dir *d = *state;
    char path[128], err[512] = "", garbage[16384];
    snprintf(path, sizeof path, "%s/breakwater.mdb", d->path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    memset(garbage, 'x', sizeof garbage);
    assert_int_equal(write(fd, garbage, sizeof garbage), (ssize_t)sizeof garbage);
    close(fd);
    assert_null(store_open(d->path, MAX_VERDICTS, SITES, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "cannot open the state store: "));
    assert_non_null(strstr(err, "move it and "));   /* what to do */
}

static void test_missing_dir(void **state)
{
    struct test_dir *d = *state;
    char dir[128], err[512] = "";
    snprintf(dir, sizeof dir, "%s/absent", d->path);
    assert_null(store_open(dir, MAX_VERDICTS, SITES, err, sizeof err));
    assert_non_null(strstr(err, dir));
    assert_non_null(strstr(err, "No such file or directory"));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR); /* the refusals tested log warnings */
    const struct CMUnitTest tests[] = {
        TEST(test_verdict_round_trip),
        TEST(test_verdict_sites_tag),
        TEST(test_verdict_expiry),
        TEST(test_persistence),
        TEST(test_sites_change),
        TEST(test_sites_absent),
        TEST(test_max_verdicts),
        TEST(test_verdict_purge),
        TEST(test_purge_resumes_after_deleted),
        TEST(test_purge_visits_each_once),
        TEST(test_ban_networks),
        TEST(test_ban_keys_checked),
        TEST(test_ban_records),
        TEST(test_ban_foreach_nested_read),
        TEST(test_ban_purge_keep),
        TEST(test_reads_see_pending_writes),
        TEST(test_two_processes),
        TEST(test_map_full),
        TEST(test_map_full_makes_room),
        TEST(test_flush),
        TEST(test_commit_sync_path),
        TEST(test_corrupt_file),
        TEST(test_missing_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
