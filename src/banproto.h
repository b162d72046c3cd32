/*
 * banproto - the messages between the network-facing process and the
 * privileged ban helper: fixed-size structs, one per SOCK_SEQPACKET
 * message, checked field by field on arrival. Pure: no I/O.
 *
 *   banproto_request_make()  a ban of a network (seconds > 0, with or
 *                            without ending one address's connections) or
 *                            an unban (seconds 0)
 *   banproto_request_parse() the helper's check of what arrived: exactly one
 *                            request, known version and operation, one
 *                            address of a known family (not the unspecified
 *                            address), a prefix length from CIDR_NET4_MIN
 *                            or CIDR_NET6_MIN to the whole address, a
 *                            duration within 1..max_seconds for a ban and 0
 *                            for an unban
 *   banproto_request_allowed() what the helper's peer may ask: bans and
 *                            unbans from serve and watch alike, BAN_KILL
 *                            from watch alone (a compromised serve must
 *                            not end anyone's sessions to watch_ports)
 *   banproto_reply_make(), banproto_reply_parse()
 *
 * The helper answers every batch it applied with one reply carrying the
 * sequence number of the batch's last request and the moment (monotonic
 * clock, the same in both processes) the firewall took it, so the sender
 * learns which bans are in the kernel and how long each took, however late
 * its own loop reads the reply.
 */
#ifndef BREAKWATER_BANPROTO_H
#define BREAKWATER_BANPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "fw.h"

#define BANPROTO_VERSION 2

/* BAN_KILL: a ban of the address's network, then the live connections of
 * the address itself (not its network's) to watch_ports are ended
 * (killconn.h); what `watch` asks for. */
enum banproto_op { BANPROTO_BAN = 1, BANPROTO_UNBAN = 2, BANPROTO_BAN_KILL = 3 };

struct banproto_request {
    uint32_t version;
    uint32_t op;         /* enum banproto_op */
    uint32_t family;     /* AF_INET or AF_INET6 */
    uint8_t addr[16];    /* network order; IPv4 in the first 4, rest zero */
    uint32_t prefix;     /* the banned network: addr's first prefix bits */
    uint32_t seconds;    /* BAN: 1..max; UNBAN: 0 */
    uint32_t seq;        /* the sender's counter, echoed in replies */
};

struct banproto_reply {
    uint32_t version;
    uint32_t seq;        /* the last request of the batch */
    uint32_t applied;
    uint32_t failed;     /* refused as malformed or failed in the kernel */
    uint32_t killed;     /* connections (or processes) ended for BAN_KILL */
    uint32_t kill_failed; /* BAN_KILL addresses whose connections could not be ended */
    uint64_t applied_ns; /* CLOCK_MONOTONIC when the firewall took the batch */
    char error[FW_ERR_MAX]; /* the first failure, NUL-terminated, or "" */
};

/* a: the address (whose connections a kill ends); prefix: the length of
 * its network to ban. */
void banproto_request_make(struct banproto_request *r, const struct addr *a, unsigned prefix,
                           uint32_t seconds, uint32_t seq, bool kill);
/* Returns 0 and fills *ban (the network), *addr (the address as sent),
 * *seq and *kill, or -1 with *why saying what is wrong. */
int banproto_request_parse(const void *buf, size_t len, uint32_t max_seconds,
                           struct fw_ban *ban, struct addr *addr, uint32_t *seq, bool *kill,
                           const char **why);

/* Whom a helper was started for (banhelper_start's kills). */
enum banproto_peer { BANPROTO_PEER_SERVE, BANPROTO_PEER_WATCH };

/* kill: the parsed request was BAN_KILL. Returns true, or false with *why
 * saying why the request is refused (it is then not carried out at all). */
bool banproto_request_allowed(enum banproto_peer peer, bool kill, const char **why);

void banproto_reply_make(struct banproto_reply *r, uint32_t seq, uint32_t applied,
                         uint32_t failed, uint32_t killed, uint32_t kill_failed,
                         uint64_t applied_ns, const char *error);
/* Returns 0, or -1 when buf is not one well-formed reply. */
int banproto_reply_parse(const void *buf, size_t len, struct banproto_reply *out);

#endif
