/*
 * fw_ipset - the ipset backend of fw.h, through libipset: bans are entries
 * of two hash:net sets created with timeout support, PREFIX4 (family inet)
 * and PREFIX6 (family inet6), PREFIX being conf->ban_set. `breakwater
 * rules` (rules.c) prints the ipset and iptables lines that create them.
 * hash:net holds networks of any lengths side by side (a /64 and one of its
 * addresses alike); a hash:ip set, as made before network bans, is still
 * taken while ipv4_prefix and ipv6_prefix name single addresses.
 *
 *   fw_ipset_open()   loads the set types (once per process), opens a
 *                     session with IPSET_ENV_EXIST (re-adding an entry
 *                     refreshes its timeout, deleting an absent one is
 *                     not an error) and checks both sets with a header
 *                     request, which does not list the members
 *   fw_ipset_apply()  the batch in restore mode: lineno > 0 makes libipset
 *                     pack consecutive adds (or deletes) into one set into
 *                     page-sized netlink messages; ipset_commit() sends
 *                     the rest
 *   fw_ipset_close()
 *
 * Order within a batch: per family, additions, then removals (a message
 * holds one command into one set): give each address at most once.
 *
 * The kernel stops a message at its first bad entry, so when the batch
 * fails, every entry is tried again alone (re-adding what went in is
 * harmless); only the bad ones fail, and err gets the first one's address
 * and libipset's report. Errors come from ipset_session_report_msg(): the
 * session's print callback only receives list output, which these
 * commands do not produce, and it is dropped so nothing reaches stdout.
 *
 * Timeouts above the kernel's limit (2147483 s, about 24.8 days) are cut
 * to it here, as the kernel would.
 *
 * The state owns the session. libipset keeps its set types in globals of
 * its own; ipset_load_types() is called once.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libipset/data.h>
#include <libipset/nf_inet_addr.h>
#include <libipset/session.h>
#include <libipset/types.h>

#include "fw.h"

#define FW_IPSET_TIMEOUT_MAX 2147483u /* (UINT_MAX >> 1) / 1000 in the kernel */

struct fw_ipset_set {
    char name[IPSET_MAXNAMELEN];
    uint8_t family;                /* AF_INET or AF_INET6 */
    const struct ipset_type *type; /* from the kernel's header at open */
    bool networks;                 /* hash:net, not hash:ip */
};

struct fw_ipset {
    struct ipset_session *session;
    struct fw_ipset_set set[2]; /* [0] PREFIX4, [1] PREFIX6 */
};

/* fw_ipset_print - the session's output callback: list output is not
 * wanted (errors are in the session's report) */
static int fw_ipset_print(struct ipset_session *session, void *p, const char *fmt, ...)
{
    (void)session;
    (void)p;
    (void)fmt;
    return 0;
}

/* fw_ipset_report - libipset's last report without its trailing newline
 * and restore-mode line prefix; the report is reset */
static void fw_ipset_report(struct ipset_session *session, char *out, size_t size)
{
    const char *msg = ipset_session_report_msg(session);
    const char *colon;

    if (strncmp(msg, "Error in line ", 14) == 0 && (colon = strstr(msg, ": ")) != NULL)
        msg = colon + 2;
    snprintf(out, size, "%.*s", (int)strcspn(msg, "\n"), msg);
    if (out[0] == '\0')
        snprintf(out, size, "ipset failed without a message");
    ipset_session_report_reset(session);
}

/* fw_ipset_cmd - queue (lineno > 0) or run (lineno 0) the add or delete of
 * one entry; < 0 on failure, with the session's report set */
static int fw_ipset_cmd(struct fw_ipset *ip, const struct fw_ban *ban, uint32_t lineno)
{
    const struct fw_ipset_set *set = &ip->set[ban->net.net.family == AF_INET6];
    struct ipset_data *data = ipset_session_data(ip->session);
    uint32_t timeout = ban->seconds < FW_IPSET_TIMEOUT_MAX ? ban->seconds
                                                            : FW_IPSET_TIMEOUT_MAX;
    uint8_t prefix = ban->net.prefix;
    union nf_inet_addr address;

    if (!set->networks && prefix != (set->family == AF_INET ? 32 : 128))
        return ipset_session_report(ip->session, IPSET_ERROR,
                                    "a hash:ip set takes no networks: recreate it as the "
                                    "hash:net of `breakwater rules -o ban_backend=ipset`");
    memset(&address, 0, sizeof address);
    memcpy(&address, ban->net.net.bytes, set->family == AF_INET ? 4 : 16);
    if (ipset_data_set(data, IPSET_SETNAME, set->name) < 0 ||
        ipset_data_set(data, IPSET_OPT_TYPE, set->type) < 0 ||
        ipset_data_set(data, IPSET_OPT_FAMILY, &set->family) < 0 ||
        ipset_data_set(data, IPSET_OPT_IP, &address) < 0 ||
        (set->networks && ipset_data_set(data, IPSET_OPT_CIDR, &prefix) < 0) ||
        (ban->seconds > 0 && ipset_data_set(data, IPSET_OPT_TIMEOUT, &timeout) < 0)) {
        ipset_data_reset(data);
        return ipset_session_report(ip->session, IPSET_ERROR, "cannot set up the entry");
    }
    return ipset_cmd(ip->session, ban->seconds > 0 ? IPSET_CMD_ADD : IPSET_CMD_DEL, lineno);
}

/* fw_ipset_is_address - whether the entry is an IPv4 or IPv6 address */
static bool fw_ipset_is_address(const struct fw_ban *ban)
{
    return ban->net.net.family == AF_INET || ban->net.net.family == AF_INET6;
}

/* fw_ipset_batch - every entry, grouped so that libipset can pack them;
 * 0 when all went in */
static int fw_ipset_batch(struct fw_ipset *ip, const struct fw_ban *bans, size_t count)
{
    static const int families[] = {AF_INET, AF_INET6};
    uint32_t lineno = 0;
    size_t f, i;
    int removals;

    for (f = 0; f < sizeof families / sizeof families[0]; f++)
        for (removals = 0; removals < 2; removals++)
            for (i = 0; i < count; i++) {
                if (bans[i].net.net.family != families[f] ||
                    (bans[i].seconds == 0) != (removals == 1))
                    continue;
                if (fw_ipset_cmd(ip, &bans[i], ++lineno) < 0)
                    return -1;
            }
    return ipset_commit(ip->session) < 0 ? -1 : 0;
}

/* fw_ipset_apply_each - every entry alone; returns how many failed */
static size_t fw_ipset_apply_each(struct fw_ipset *ip, const struct fw_ban *bans,
                                  size_t count, char *err, size_t errsize)
{
    char report[FW_ERR_MAX], text[CIDR_TEXT_MAX];
    size_t i, failed = 0;

    for (i = 0; i < count; i++) {
        if (!fw_ipset_is_address(&bans[i])) {
            if (failed++ == 0)
                snprintf(err, errsize, "entry %zu: not an IPv4 or IPv6 address", i);
            continue;
        }
        if (fw_ipset_cmd(ip, &bans[i], 0) == 0)
            continue;
        fw_ipset_report(ip->session, report, sizeof report);
        if (failed++ == 0) {
            cidr_format(&bans[i].net, text, sizeof text);
            snprintf(err, errsize, "ipset %s: %s: %s",
                     ip->set[bans[i].net.net.family == AF_INET6].name, text, report);
        }
    }
    return failed;
}

/* fw_ipset_apply - the batch packed; entry by entry if that fails */
static size_t fw_ipset_apply(void *state, const struct fw_ban *bans, size_t count,
                             char *err, size_t errsize)
{
    struct fw_ipset *ip = state;
    size_t i;

    for (i = 0; i < count && fw_ipset_is_address(&bans[i]); i++)
        ;
    ipset_session_report_reset(ip->session);
    if (i == count && fw_ipset_batch(ip, bans, count) == 0)
        return 0;
    /* Send or drop whatever the failed batch left queued. */
    (void)ipset_commit(ip->session);
    ipset_data_reset(ipset_session_data(ip->session));
    ipset_session_report_reset(ip->session);
    return fw_ipset_apply_each(ip, bans, count, err, errsize);
}

/* fw_ipset_check_set - the set's header from the kernel: it must exist and
 * be a hash:net (or, when networks is false, a hash:ip) of the right
 * family; keeps its type for the commands */
static int fw_ipset_check_set(struct fw_ipset *ip, struct fw_ipset_set *set, bool networks,
                              char *err, size_t errsize)
{
    struct ipset_data *data = ipset_session_data(ip->session);
    const char *typename;
    char report[FW_ERR_MAX];

    ipset_session_report_reset(ip->session);
    if (ipset_data_set(data, IPSET_SETNAME, set->name) < 0 ||
        (set->type = ipset_type_get(ip->session, IPSET_CMD_ADD)) == NULL) {
        bool missing = strstr(ipset_session_report_msg(ip->session), "does not exist") != NULL;
        fw_ipset_report(ip->session, report, sizeof report);
        if (missing)
            snprintf(err, errsize, "ipset %s does not exist: create it with "
                     "`breakwater rules -o ban_backend=ipset | sh`", set->name);
        else
            snprintf(err, errsize, "ipset %s: %s", set->name, report);
        ipset_data_reset(data);
        return -1;
    }
    typename = ipset_data_get(data, IPSET_OPT_TYPENAME);
    set->networks = typename != NULL && strcmp(typename, "hash:net") == 0;
    if (typename == NULL || (!set->networks && (networks || strcmp(typename, "hash:ip") != 0)) ||
        ipset_data_family(data) != set->family) {
        snprintf(err, errsize, "ipset %s is not a hash:net set of family %s (it is %s): "
                 "recreate it as `breakwater rules -o ban_backend=ipset` prints (stored "
                 "bans come back at start)", set->name,
                 set->family == AF_INET ? "inet" : "inet6", typename ? typename : "unknown");
        ipset_data_reset(data);
        return -1;
    }
    ipset_data_reset(data);
    return 0;
}

/* fw_ipset_close - end the session */
static void fw_ipset_close(void *state)
{
    struct fw_ipset *ip = state;

    if (ip == NULL)
        return;
    if (ip->session != NULL)
        ipset_session_fini(ip->session);
    free(ip);
}

/* fw_ipset_setup - set names, the session, and both sets checked */
static int fw_ipset_setup(struct fw_ipset *ip, const struct conf *conf,
                          char *err, size_t errsize)
{
    static bool types_loaded;
    size_t i;

    if (strlen(conf->ban_set) + 2 > IPSET_MAXNAMELEN || conf->ban_set[0] == '\0') {
        snprintf(err, errsize, "ban_set '%s': an ipset name prefix has 1 to %d characters",
                 conf->ban_set, IPSET_MAXNAMELEN - 2);
        return -1;
    }
    for (i = 0; i < 2; i++) {
        snprintf(ip->set[i].name, sizeof ip->set[i].name, "%s%c", conf->ban_set,
                 i == 0 ? '4' : '6');
        ip->set[i].family = i == 0 ? AF_INET : AF_INET6;
    }
    if (!types_loaded) {
        ipset_load_types();
        types_loaded = true;
    }
    ip->session = ipset_session_init(fw_ipset_print, NULL);
    if (ip->session == NULL) {
        snprintf(err, errsize, "ipset: cannot start a libipset session");
        return -1;
    }
    ipset_envopt_set(ip->session, IPSET_ENV_EXIST);
    for (i = 0; i < 2; i++)
        if (fw_ipset_check_set(ip, &ip->set[i],
                               i == 0 ? conf->ipv4_prefix < 32 : conf->ipv6_prefix < 128,
                               err, errsize) != 0)
            return -1;
    return 0;
}

/* fw_ipset_open - the backend's state; NULL with err set */
static void *fw_ipset_open(const struct conf *conf, char *err, size_t errsize)
{
    struct fw_ipset *ip = calloc(1, sizeof *ip);

    if (ip == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (fw_ipset_setup(ip, conf, err, errsize) != 0) {
        fw_ipset_close(ip);
        return NULL;
    }
    return ip;
}

const struct fw_backend_ops fw_ipset_ops = {
    .open = fw_ipset_open,
    .apply = fw_ipset_apply,
    .close = fw_ipset_close,
};
