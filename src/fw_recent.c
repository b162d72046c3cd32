/*
 * fw_recent - the xt_recent backend of fw.h: bans are entries of two lists,
 * /proc/net/xt_recent/NAME for IPv4 and NAME6 for IPv6 (NAME =
 * conf->ban_set), which iptables and ip6tables rules with `-m recent --name
 * NAME --rcheck --seconds N [--mask M] -j DROP` test. The kernel creates a
 * list's file when the first rule naming it is loaded; `breakwater rules`
 * (rules.c) prints those rules. One list per family, because xt_recent
 * keeps the --mask of the rule that created a list for the whole list.
 *
 *   fw_recent_open()   opens both list files for writing and keeps the
 *                      descriptors: the files belong to root, and the ban
 *                      helper drops its privileges after opening
 *   fw_recent_apply()  one write per entry, "+ADDR\n" to add (an entry that
 *                      is there gets its last-seen time refreshed) and
 *                      "-ADDR\n" to remove (an absent one is no error);
 *                      every write at offset 0, as xt_recent requires
 *   fw_recent_close()
 *
 * A network is written as its first address: the rules' --mask (the
 * prefix of ipv4_prefix and ipv6_prefix when they were printed, taken here
 * from the configuration at open) cuts the client's address the same way
 * before the lookup. So a list can hold networks of exactly that length,
 * or, when it is the whole address, single addresses, and nothing else:
 * an entry of another length (one address where the allowlist holds part
 * of its network, ctl ban ADDRESS/LEN, a ban made under other prefixes)
 * is refused and counted as failed, since written as it is it would stand
 * for another network than its own.
 *
 * Limits of this backend, said again by `breakwater rules`: entries have
 * no timeout of their own, so a ban lasts the rule's --seconds (ban_time)
 * whatever fw_ban.seconds asks, and bans cannot escalate; and a list keeps
 * at most ip_list_tot entries (an xt_recent module parameter, 100 on this
 * kernel), the oldest going silently when a new one comes.
 *
 * The state owns the descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fw.h"

#define FW_RECENT_DIR "/proc/net/xt_recent/"

/* [0] the IPv4 list NAME, [1] the IPv6 list NAME6 */
struct fw_recent {
    unsigned mask[2];     /* the rules' --mask as a prefix length */
    int fd[2];
    char path[2][PATH_MAX];
};

/* fw_recent_write - one command line at offset 0 of list file fd; 0 or an
 * errno value */
static int fw_recent_write(int fd, const char *line, size_t len)
{
    ssize_t n;

    if (lseek(fd, 0, SEEK_SET) < 0)
        return errno;
    do
        n = write(fd, line, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno;
    return (size_t)n == len ? 0 : EIO;
}

/* fw_recent_apply - each entry written; returns how many failed */
static size_t fw_recent_apply(void *state, const struct fw_ban *bans, size_t count,
                              char *err, size_t errsize)
{
    struct fw_recent *recent = state;
    char line[ADDR_TEXT_MAX + 2];
    size_t i, failed = 0;
    int len, e;

    for (i = 0; i < count; i++) {
        if (bans[i].net.net.family != AF_INET && bans[i].net.net.family != AF_INET6) {
            if (failed++ == 0)
                snprintf(err, errsize, "entry %zu: not an IPv4 or IPv6 address", i);
            continue;
        }
        size_t list = bans[i].net.net.family == AF_INET6;
        if (bans[i].net.prefix != recent->mask[list]) {
            char text[CIDR_TEXT_MAX];
            cidr_format(&bans[i].net, text, sizeof text);
            if (failed++ == 0)
                snprintf(err, errsize, "%s: %s: the list holds only networks of /%u "
                         "(its rules' --mask, from ipv%c_prefix)", recent->path[list], text,
                         recent->mask[list], list ? '6' : '4');
            continue;
        }
        line[0] = bans[i].seconds > 0 ? '+' : '-';
        addr_format(&bans[i].net.net, line + 1, sizeof line - 2);
        len = (int)strlen(line);
        line[len++] = '\n';
        e = fw_recent_write(recent->fd[list], line, (size_t)len);
        if (e != 0 && failed++ == 0)
            snprintf(err, errsize, "%s: writing %.*s: %s", recent->path[list], len - 1, line,
                     strerror(e));
    }
    return failed;
}

/* fw_recent_close - close the list file */
static void fw_recent_close(void *state)
{
    struct fw_recent *recent = state;

    if (recent == NULL)
        return;
    for (size_t i = 0; i < 2; i++)
        if (recent->fd[i] >= 0)
            close(recent->fd[i]);
    free(recent);
}

/* fw_recent_open - both list files opened for writing; NULL with err set,
 * naming the command that loads the rules when a list does not exist */
static void *fw_recent_open(const struct conf *conf, char *err, size_t errsize)
{
    struct fw_recent *recent = calloc(1, sizeof *recent);

    if (recent == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    recent->fd[0] = recent->fd[1] = -1;
    recent->mask[0] = conf->ipv4_prefix;
    recent->mask[1] = conf->ipv6_prefix;
    if (conf->ban_set[0] == '\0' || strchr(conf->ban_set, '/') != NULL ||
        strlen(conf->ban_set) + 1 + sizeof FW_RECENT_DIR > sizeof recent->path[0]) {
        snprintf(err, errsize, "ban_set '%s' is not an xt_recent list name", conf->ban_set);
        fw_recent_close(recent);
        return NULL;
    }
    for (size_t i = 0; i < 2; i++) {
        snprintf(recent->path[i], sizeof recent->path[i], FW_RECENT_DIR "%s%s", conf->ban_set,
                 i == 0 ? "" : "6");
        recent->fd[i] = open(recent->path[i], O_WRONLY | O_CLOEXEC);
        if (recent->fd[i] >= 0)
            continue;
        if (errno == ENOENT)
            snprintf(err, errsize, "xt_recent list %s%s does not exist (no %s): load its "
                     "rules with `breakwater rules -o ban_backend=recent | sh`",
                     conf->ban_set, i == 0 ? "" : "6", recent->path[i]);
        else
            snprintf(err, errsize, "%s: %s", recent->path[i], strerror(errno));
        fw_recent_close(recent);
        return NULL;
    }
    return recent;
}

const struct fw_backend_ops fw_recent_ops = {
    .open = fw_recent_open,
    .apply = fw_recent_apply,
    .close = fw_recent_close,
};
