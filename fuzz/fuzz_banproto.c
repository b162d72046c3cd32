/*
 * fuzz_banproto - libFuzzer target for banproto_request_parse() and
 * banproto_reply_parse() in src/banproto.c: the privileged helper's checks
 * of what the network-facing process sends, which must hold against any
 * bytes at all.
 *
 * Checks: an accepted request is one well-formed message (right size, one
 * address of a known family, not all zero, a ban length within bounds or an
 * unban with none) and making a request from what was parsed gives back the
 * same bytes, which serve's helper carries out unless it is a BAN_KILL; an
 * accepted reply's error text is terminated.
 */
#include <assert.h>
#include <string.h>

#include "banproto.h"

#define FUZZ_MAX_SECONDS 86400

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fw_ban ban;
    struct addr addr;
    struct banproto_request again;
    struct banproto_reply reply;
    uint32_t seq;
    bool kill;
    const char *why = NULL;

    if (banproto_request_parse(data, size, FUZZ_MAX_SECONDS, &ban, &addr, &seq, &kill,
                               &why) == 0) {
        assert(size == sizeof again);
        assert(addr.family == AF_INET || addr.family == AF_INET6);
        assert(ban.seconds <= FUZZ_MAX_SECONDS);
        /* the network holds the address, and is no wider than allowed */
        assert(cidr_contains(&ban.net, &addr));
        assert(ban.net.prefix >= (addr.family == AF_INET ? CIDR_NET4_MIN : CIDR_NET6_MIN));
        banproto_request_make(&again, &addr, ban.net.prefix, ban.seconds, seq, kill);
        assert(memcmp(&again, data, sizeof again) == 0);
        /* serve's helper carries out all but BAN_KILL, watch's all */
        assert(banproto_request_allowed(BANPROTO_PEER_WATCH, kill, &why));
        assert(banproto_request_allowed(BANPROTO_PEER_SERVE, kill, &why) == !kill);
    } else {
        assert(why != NULL);
    }
    if (banproto_reply_parse(data, size, &reply) == 0)
        assert(memchr(reply.error, '\0', sizeof reply.error) != NULL);
    return 0;
}
