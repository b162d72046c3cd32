/*
 * banproto - the ban helper's message format. See banproto.h.
 */
#include <string.h>

#include "banproto.h"

/* banproto_request_make - fill every byte, so no stack garbage crosses */
void banproto_request_make(struct banproto_request *r, const struct addr *a, unsigned prefix,
                           uint32_t seconds, uint32_t seq, bool kill)
{
    memset(r, 0, sizeof *r);
    r->version = BANPROTO_VERSION;
    r->op = seconds == 0 ? BANPROTO_UNBAN : kill ? BANPROTO_BAN_KILL : BANPROTO_BAN;
    r->family = a->family;
    memcpy(r->addr, a->bytes, a->family == AF_INET ? 4 : 16);
    r->prefix = prefix;
    r->seconds = seconds;
    r->seq = seq;
}

/* banproto_all_zero - n bytes of p are zero */
static int banproto_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* banproto_request_parse - trust nothing: every field is checked */
int banproto_request_parse(const void *buf, size_t len, uint32_t max_seconds,
                           struct fw_ban *ban, struct addr *addr, uint32_t *seq, bool *kill,
                           const char **why)
{
    struct banproto_request r;

    if (len != sizeof r) {
        *why = "wrong size";
        return -1;
    }
    memcpy(&r, buf, sizeof r);
    if (r.version != BANPROTO_VERSION) {
        *why = "unknown version";
        return -1;
    }
    if (r.family != AF_INET && r.family != AF_INET6) {
        *why = "unknown address family";
        return -1;
    }
    size_t alen = r.family == AF_INET ? 4 : 16;
    if (!banproto_all_zero(r.addr + alen, 16 - alen) || banproto_all_zero(r.addr, alen)) {
        *why = "not a single address";
        return -1;
    }
    if (r.prefix < (r.family == AF_INET ? CIDR_NET4_MIN : CIDR_NET6_MIN) ||
        r.prefix > alen * 8) {
        *why = "prefix length out of bounds";
        return -1;
    }
    bool is_ban = r.op == BANPROTO_BAN || r.op == BANPROTO_BAN_KILL;
    if (!is_ban && r.op != BANPROTO_UNBAN) {
        *why = "unknown operation";
        return -1;
    }
    if (is_ban ? r.seconds < 1 || r.seconds > max_seconds : r.seconds != 0) {
        *why = "duration out of bounds";
        return -1;
    }
    memset(addr, 0, sizeof *addr);
    addr->family = (uint8_t)r.family;
    memcpy(addr->bytes, r.addr, alen);
    memset(ban, 0, sizeof *ban);
    ban->net = cidr_of(addr, r.prefix, r.prefix);
    ban->seconds = r.seconds;
    *seq = r.seq;
    *kill = r.op == BANPROTO_BAN_KILL;
    return 0;
}

bool banproto_request_allowed(enum banproto_peer peer, bool kill, const char **why)
{
    if (!kill || peer == BANPROTO_PEER_WATCH)
        return true;
    *why = "BAN_KILL refused: this ban helper was started for serve, and only watch's "
           "may end connections";
    return false;
}

void banproto_reply_make(struct banproto_reply *r, uint32_t seq, uint32_t applied,
                         uint32_t failed, uint32_t killed, uint32_t kill_failed,
                         uint64_t applied_ns, const char *error)
{
    memset(r, 0, sizeof *r);
    r->version = BANPROTO_VERSION;
    r->seq = seq;
    r->applied = applied;
    r->failed = failed;
    r->killed = killed;
    r->kill_failed = kill_failed;
    r->applied_ns = applied_ns;
    if (error != NULL)
        strncpy(r->error, error, sizeof r->error - 1);
}

int banproto_reply_parse(const void *buf, size_t len, struct banproto_reply *out)
{
    if (len != sizeof *out)
        return -1;
    memcpy(out, buf, sizeof *out);
    if (out->version != BANPROTO_VERSION || memchr(out->error, '\0', sizeof out->error) == NULL)
        return -1;
    return 0;
}
