/*
 * rules - the firewall setup text for `breakwater rules`. See rules.h.
 *
 * The text is built by appending to a struct rules_out that counts the
 * whole length even after the buffer is full (snprintf semantics).
 *
 * nft: the set names come from ban_set "inet TABLE PREFIX". The chain is
 * called "bans", not "input", so that pointing ban_set at a table of one's
 * own can never flush that table's input chain. Idempotence comes from
 * `add` (a no-op for what exists, elements kept) and `flush chain` before
 * the rules are added again.
 *
 * ipset and recent: shell lines; `iptables -C ... || iptables -I ...` puts
 * a rule in once. iptables' multiport takes at most 15 ports, so more ban
 * ports make more rules.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>

#include "addr.h"
#include "rules.h"

#define RULES_MULTIPORT_MAX 15
#define RULES_IPSET_MAXELEM 1048576
/* Only connection attempts are dropped: a connection that was open when its
 * address was banned goes on to the end of breakwater's reply and QUIT
 * rather than hanging until a timeout with its packets dropped. */
#define RULES_NFT_SYN "tcp flags & (syn | ack) == syn"
#define RULES_SYN_NOTE \
    "# Only new connections (SYN) from a banned address are dropped: one\n" \
    "# already open when the ban came ends normally.\n"

struct rules_out {
    char *buf;
    size_t size;
    size_t len; /* of the whole text, even past size */
};

/* rules_printf - append formatted text, counting what does not fit */
static void rules_printf(struct rules_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void rules_printf(struct rules_out *out, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    if (out->len < out->size)
        n = vsnprintf(out->buf + out->len, out->size - out->len, fmt, ap);
    else
        n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        out->len += (size_t)n;
}

/* rules_seconds - a duration as whole seconds, rounded up, at least 1 */
static unsigned long rules_seconds(double seconds)
{
    unsigned long whole = (unsigned long)seconds;

    if ((double)whole < seconds)
        whole++;
    return whole > 0 ? whole : 1;
}

/* rules_nft_ports - " tcp dport { 25, 587 }", or " meta l4proto tcp" when
 * no port is set, into buf */
static void rules_nft_ports(const struct conf *conf, char *buf, size_t size)
{
    size_t i, len;

    if (conf->ban_port_count == 0) {
        snprintf(buf, size, " meta l4proto tcp");
        return;
    }
    len = (size_t)snprintf(buf, size, " tcp dport {");
    for (i = 0; i < conf->ban_port_count && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s %u", i > 0 ? "," : "",
                                (unsigned)conf->ban_ports[i]);
    if (len < size)
        snprintf(buf + len, size - len, " }");
}

/* The kernel's limit lets through twice max_connection_rate_per_ip in a
 * window: the daemon answers the excess up to there with its 421 (and its
 * ban), the kernel drops a flood beyond it before it costs an accept(). */
#define RULES_RATE_FACTOR 2u
#define RULES_RATE_SET_SIZE 262144 /* networks remembered by the kernel's limit */

/* rules_rate_per_hour - the kernel's rate of new connections an hour */
static unsigned long rules_rate_per_hour(const struct conf *conf)
{
    double per_hour = RULES_RATE_FACTOR * conf->max_connection_rate_per_ip * 3600.0 /
                      conf->connection_rate_window;
    return (unsigned long)per_hour + ((double)(unsigned long)per_hour < per_hour);
}

/* rules_mask - " & MASK" of a family's network prefix, "" for a whole
 * address */
static void rules_mask(int family, unsigned prefix, char *buf, size_t size)
{
    struct addr ones = {.family = (uint8_t)family};
    memset(ones.bytes, 0xff, family == AF_INET ? 4 : 16);
    struct cidr c = cidr_of(&ones, prefix, prefix);
    char text[ADDR_TEXT_MAX];
    addr_format(&c.net, text, sizeof text);
    if (c.prefix == (family == AF_INET ? 32 : 128))
        snprintf(buf, size, "%s", "");
    else
        snprintf(buf, size, " & %s", text);
}

/* rules_nft_allowlist - the allowlist leaves the chain before the rate
 * limit: a neighbour's flood never gets a partner's SYNs dropped */
static void rules_nft_allowlist(struct rules_out *out, const struct conf *conf, int table_len,
                                const char *table)
{
    static const char *const family[] = {"ip", "ip6"};
    for (size_t f = 0; f < 2; f++) {
        const char *sep = " {";
        for (size_t i = 0; i < conf->allowlist.count; i++) {
            const struct cidr *c = &conf->allowlist.items[i];
            if ((c->net.family == AF_INET) != (f == 0))
                continue;
            char text[CIDR_TEXT_MAX];
            cidr_format(c, text, sizeof text);
            if (sep[1] == '{')
                rules_printf(out, "add rule %.*s bans %s saddr", table_len, table, family[f]);
            rules_printf(out, "%s %s", sep, text);
            sep = ",";
        }
        if (sep[0] == ',')
            rules_printf(out, " } return\n");
    }
}

/* rules_nft_ratelimit - max_connection_rate_per_ip in the kernel: a
 * dynamic set per family remembers each network (ipv4_prefix,
 * ipv6_prefix) with a token bucket, forgotten after a quiet window */
static void rules_nft_ratelimit(struct rules_out *out, const struct conf *conf, int table_len,
                                const char *table, const char *ports)
{
    static const char *const family[][3] = {{"4", "ip", "ipv4"}, {"6", "ip6", "ipv6"}};
    if (conf->max_connection_rate_per_ip == 0) {
        rules_printf(out, "# No kernel rate limit: max_connection_rate_per_ip is 0.\n");
        return;
    }
    unsigned long per_hour = rules_rate_per_hour(conf);
    rules_printf(out, "# Rate limit (max_connection_rate_per_ip = %u per %gs, per network of\n"
                 "# ipv4_prefix /%u and ipv6_prefix /%u): the kernel drops new connections\n"
                 "# beyond %u times that, before breakwater sees them; up to there\n"
                 "# breakwater answers the excess with 421.\n",
                 conf->max_connection_rate_per_ip, conf->connection_rate_window,
                 conf->ipv4_prefix, conf->ipv6_prefix, RULES_RATE_FACTOR);
    for (size_t f = 0; f < 2; f++)
        rules_printf(out, "add set %.*s ratelimit%s { type %s_addr; size %d; "
                     "flags dynamic,timeout; timeout %lus; }\n", table_len, table,
                     family[f][0], family[f][2], RULES_RATE_SET_SIZE,
                     rules_seconds(conf->connection_rate_window));
    rules_nft_allowlist(out, conf, table_len, table);
    for (size_t f = 0; f < 2; f++) {
        char mask[ADDR_TEXT_MAX + 4];
        rules_mask(f == 0 ? AF_INET : AF_INET6, f == 0 ? conf->ipv4_prefix : conf->ipv6_prefix,
                   mask, sizeof mask);
        rules_printf(out, "add rule %.*s bans%s %s add @ratelimit%s { %s saddr%s limit rate "
                     "over %lu/hour burst %u packets } counter drop\n", table_len, table, ports,
                     RULES_NFT_SYN, family[f][0], family[f][1], mask, per_hour,
                     RULES_RATE_FACTOR * conf->max_connection_rate_per_ip);
    }
}

/* rules_nft - the script for `nft -f -` */
static void rules_nft(struct rules_out *out, const struct conf *conf)
{
    static const char *const family[][3] = {{"4", "ip", "ipv4_addr"}, {"6", "ip6", "ipv6_addr"}};
    const char *set = conf->ban_set, *space = strrchr(set, ' ');
    int table_len = space != NULL ? (int)(space - set) : (int)strlen(set);
    const char *prefix = space != NULL ? space + 1 : "banned";
    char ports[CONF_BAN_PORTS_MAX * 8 + 32];

    rules_nft_ports(conf, ports, sizeof ports);
    rules_printf(out, "# breakwater: nftables sets and rules for ban_backend = nft,\n"
                 "# ban_set = \"%s\". Load with: breakwater rules | nft -f -\n"
                 "# Safe to load again: what exists stays, banned addresses too, and\n"
                 "# the rules of chain bans are replaced. breakwater adds and removes\n"
                 "# the elements of the sets itself: %s4 and %s6 (hash sets) hold\n"
                 "# single addresses; %s4netP and %s6netP (hash sets, for prefixes\n"
                 "# shorter than an address) the networks of ipv4_prefix and\n"
                 "# ipv6_prefix (here /%u and /%u), by their first address, which a rule\n"
                 "# matches against the client's address cut to P; %s4net and %s6net\n"
                 "# (interval sets, slower to change) networks of any other length\n"
                 "# (ctl ban ADDRESS/LEN, bans made under other prefixes). After a\n"
                 "# change of a prefix, load this again and restart breakwater.\n"
                 RULES_SYN_NOTE,
                 set, prefix, prefix, prefix, prefix, conf->ipv4_prefix, conf->ipv6_prefix,
                 prefix, prefix);
    rules_printf(out, "add table %.*s\n", table_len, set);
    for (int f = 0; f < 2; f++) {
        unsigned p = f == 0 ? conf->ipv4_prefix : conf->ipv6_prefix;
        rules_printf(out, "add set %.*s %s%s { type %s; flags timeout; }\n", table_len, set,
                     prefix, family[f][0], family[f][2]);
        if (p < (f == 0 ? 32u : 128u))
            rules_printf(out, "add set %.*s %s%snet%u { type %s; flags timeout; }\n",
                         table_len, set, prefix, family[f][0], p, family[f][2]);
        rules_printf(out, "add set %.*s %s%snet { type %s; flags interval,timeout; }\n",
                     table_len, set, prefix, family[f][0], family[f][2]);
    }
    rules_printf(out, "add chain %.*s bans { type filter hook input priority filter - 10; "
                 "policy accept; }\n", table_len, set);
    rules_printf(out, "flush chain %.*s bans\n", table_len, set);
    for (int f = 0; f < 2; f++) {
        char mask[ADDR_TEXT_MAX + 4];
        rules_mask(f == 0 ? AF_INET : AF_INET6, f == 0 ? conf->ipv4_prefix : conf->ipv6_prefix,
                   mask, sizeof mask);
        rules_printf(out, "add rule %.*s bans %s saddr @%s%s%s %s drop\n", table_len, set,
                     family[f][1], prefix, family[f][0], ports, RULES_NFT_SYN);
        if (mask[0] != '\0')
            rules_printf(out, "add rule %.*s bans %s saddr%s @%s%snet%u%s %s drop\n",
                         table_len, set, family[f][1], mask, prefix, family[f][0],
                         f == 0 ? conf->ipv4_prefix : conf->ipv6_prefix, ports, RULES_NFT_SYN);
        rules_printf(out, "add rule %.*s bans %s saddr @%s%snet%s %s drop\n", table_len, set,
                     family[f][1], prefix, family[f][0], ports, RULES_NFT_SYN);
    }
    rules_nft_ratelimit(out, conf, table_len, set, ports);
}

/* rules_iptables - `CMD -C ... || CMD -I ...` for the match, one rule per
 * group of at most RULES_MULTIPORT_MAX ports */
static void rules_iptables(struct rules_out *out, const struct conf *conf,
                           const char *cmd, const char *match)
{
    char spec[RULES_MULTIPORT_MAX * 6 + 64];
    size_t first = 0, i, len;

    do {
        len = (size_t)snprintf(spec, sizeof spec, "-p tcp --syn");
        for (i = first; i < conf->ban_port_count && i < first + RULES_MULTIPORT_MAX; i++)
            len += (size_t)snprintf(spec + len, sizeof spec - len, "%s%u",
                                    i == first ? " -m multiport --dports " : ",",
                                    (unsigned)conf->ban_ports[i]);
        rules_printf(out, "%s -C INPUT %s %s -j DROP 2>/dev/null ||\n"
                     "    %s -I INPUT %s %s -j DROP\n", cmd, spec, match, cmd, spec, match);
        first += RULES_MULTIPORT_MAX;
    } while (first < conf->ban_port_count);
}

/* rules_iptables_ratelimit - the same with iptables' hashlimit, for the
 * ipset and recent backends */
static void rules_iptables_ratelimit(struct rules_out *out, const struct conf *conf)
{
    if (conf->max_connection_rate_per_ip == 0)
        return;
    unsigned long per_hour = rules_rate_per_hour(conf);
    char match[256];
    rules_printf(out, "# Rate limit (max_connection_rate_per_ip = %u per %gs, per network):\n"
                 "# the kernel drops new connections beyond %u times that.\n",
                 conf->max_connection_rate_per_ip, conf->connection_rate_window,
                 RULES_RATE_FACTOR);
    for (int f = 0; f < 2; f++) {
        snprintf(match, sizeof match, "-m hashlimit --hashlimit-name breakwater%d "
                 "--hashlimit-mode srcip --hashlimit-srcmask %u --hashlimit-above %lu/hour "
                 "--hashlimit-burst %u --hashlimit-htable-expire %lu",
                 f == 0 ? 4 : 6, f == 0 ? conf->ipv4_prefix : conf->ipv6_prefix, per_hour,
                 RULES_RATE_FACTOR * conf->max_connection_rate_per_ip,
                 rules_seconds(conf->connection_rate_window) * 1000);
        rules_iptables(out, conf, f == 0 ? "iptables" : "ip6tables", match);
    }
}

/* rules_ipset - the sets and the iptables rules that match them */
static void rules_ipset(struct rules_out *out, const struct conf *conf)
{
    const char *set = conf->ban_set;
    char match[256];

    rules_printf(out, "#!/bin/sh\n"
                 "# breakwater: ipsets and iptables rules for ban_backend = ipset,\n"
                 "# ban_set = \"%s\". Run with: breakwater rules -o ban_backend=ipset | sh\n"
                 "# Safe to run again: -exist keeps the sets and their entries, and a\n"
                 "# rule goes in only when iptables -C does not find it.\n"
                 RULES_SYN_NOTE
                 "# hash:net: an entry is a network of ipv4_prefix or ipv6_prefix bits\n"
                 "# or a single address; timeout 0: entries take their own timeouts\n"
                 "# (breakwater gives each one); maxelem: room for %d bans per family.\n"
                 "# A hash:ip set made before network bans makes this script fail:\n"
                 "# remove its iptables rules and the set (ipset destroy) first, then\n"
                 "# restart breakwater, which puts its stored bans back.\n"
                 "set -e\n", set, RULES_IPSET_MAXELEM);
    rules_printf(out, "ipset create %s4 hash:net family inet timeout 0 maxelem %d -exist\n",
                 set, RULES_IPSET_MAXELEM);
    rules_printf(out, "ipset create %s6 hash:net family inet6 timeout 0 maxelem %d -exist\n",
                 set, RULES_IPSET_MAXELEM);
    snprintf(match, sizeof match, "-m set --match-set %s4 src", set);
    rules_iptables(out, conf, "iptables", match);
    snprintf(match, sizeof match, "-m set --match-set %s6 src", set);
    rules_iptables(out, conf, "ip6tables", match);
    rules_iptables_ratelimit(out, conf);
}

/* rules_recent - the iptables rules that create and test the xt_recent
 * list, and what this backend cannot do */
static void rules_recent(struct rules_out *out, const struct conf *conf)
{
    unsigned long seconds = rules_seconds(conf->ban_time);
    char match[300], mask[ADDR_TEXT_MAX + 16];

    rules_printf(out, "#!/bin/sh\n"
                 "# breakwater: iptables rules for ban_backend = recent, xt_recent list\n"
                 "# \"%s\". Run with: breakwater rules -o ban_backend=recent | sh\n"
                 "# The rules create /proc/net/xt_recent/%s (IPv4) and %s6 (IPv6).\n"
                 "# Safe to run again: a rule goes in only when iptables -C does not\n"
                 "# find it; after a change of ban_time or of a prefix, delete the old\n"
                 "# rules (iptables -D; a list goes with its last rule, and keeps the\n"
                 "# --mask of the rule that made it) yourself, run this again and\n"
                 "# restart breakwater, which puts its stored bans back.\n",
                 conf->ban_set, conf->ban_set, conf->ban_set);
    rules_printf(out, "# Limits of this backend:\n"
                 "# - entries have no timeout of their own: a ban lasts --seconds %lu\n"
                 "#   (ban_time) after breakwater last listed the address, so bans\n"
                 "#   cannot escalate towards ban_time_max;\n"
                 "# - a list keeps at most ip_list_tot entries, an xt_recent module\n"
                 "#   parameter (100 unless the module is loaded with more; see\n"
                 "#   /sys/module/xt_recent/parameters/ip_list_tot): when it is full\n"
                 "#   the oldest entry goes, silently;\n"
                 "# - an entry is one address: --mask cuts the client's address to its\n"
                 "#   network (ipv4_prefix /%u, ipv6_prefix /%u) before the lookup, and\n"
                 "#   breakwater lists a network by its first address, so a list holds\n"
                 "#   bans of that one length: an address banned alone (its network\n"
                 "#   holds allowlisted addresses) or a network of another length\n"
                 "#   (ctl ban ADDRESS/LEN) is refused and counted as failed.\n"
                 "set -e\n", seconds, conf->ipv4_prefix, conf->ipv6_prefix);
    for (int f = 0; f < 2; f++) {
        rules_mask(f == 0 ? AF_INET : AF_INET6, f == 0 ? conf->ipv4_prefix : conf->ipv6_prefix,
                   mask, sizeof mask);
        snprintf(match, sizeof match, "-m recent --name %s%s --rcheck --seconds %lu%s%s",
                 conf->ban_set, f == 0 ? "" : "6", seconds, mask[0] != '\0' ? " --mask " : "",
                 mask[0] != '\0' ? mask + 3 : "");
        rules_iptables(out, conf, f == 0 ? "iptables" : "ip6tables", match);
    }
    rules_iptables_ratelimit(out, conf);
}

/* rules_format - the setup text for the configured backend */
size_t rules_format(const struct conf *conf, char *buf, size_t size)
{
    struct rules_out out = {buf, size, 0};

    if (size > 0)
        buf[0] = '\0';
    switch (conf->ban_backend) {
    case BAN_BACKEND_NFT:
        rules_nft(&out, conf);
        break;
    case BAN_BACKEND_IPSET:
        rules_ipset(&out, conf);
        break;
    case BAN_BACKEND_RECENT:
        rules_recent(&out, conf);
        break;
    case BAN_BACKEND_NONE:
        rules_printf(&out, "# breakwater: ban_backend = none: bans stay inside breakwater\n"
                     "# and go into no firewall, so there is nothing to install.\n");
        break;
    }
    return out.len;
}
