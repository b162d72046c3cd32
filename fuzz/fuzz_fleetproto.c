/*
 * fuzz_fleetproto - libFuzzer target for what breakwater reads from Redis
 * (src/fleetproto.c): peers' ban messages, shared verdicts and the
 * fleet_redis URL, which must hold against any bytes at all.
 *
 * Checks: an accepted ban message has a known kind, a valid origin, an
 * address of a known family, a count within bounds and a known reason,
 * and its formatted text parses back to the same (its decision time too);
 * an accepted URL has a host and a port, or 1..8 sentinels with a host and
 * a port each and a valid master name; parsing a verdict never reads past
 * its length; a sentinel password text splits within its buffers.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fleetproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fleetproto_ban b;
    char again[FLEETPROTO_MESSAGE_MAX + 1];
    if (fleetproto_ban_parse((const char *)data, size, &b) == 0) {
        assert(b.kind == FLEETPROTO_BAN || b.kind == FLEETPROTO_UNBAN);
        assert(fleetproto_id_valid(b.origin));
        assert(b.net.net.family == AF_INET || b.net.net.family == AF_INET6);
        /* a network no wider than allowed, host bits zero */
        assert(b.net.prefix >= (b.net.net.family == AF_INET ? CIDR_NET4_MIN : CIDR_NET6_MIN) &&
               b.net.prefix <= (b.net.net.family == AF_INET ? 32 : 128));
        struct cidr masked = cidr_of(&b.net.net, b.net.prefix, b.net.prefix);
        assert(addr_equal(&masked.net, &b.net.net));
        if (b.kind == FLEETPROTO_BAN) {
            assert(b.count >= 1 && b.count <= FLEETPROTO_COUNT_MAX);
            assert(fleetproto_reason_name(b.reason) != NULL);
        }
        int n = fleetproto_ban_format(&b, again, sizeof again);
        assert(n > 0);
        /* the address word (the fourth) was in the one spelling we write */
        char net[CIDR_TEXT_MAX];
        cidr_format(&b.net, net, sizeof net);
        const char *word = (const char *)data, *end = word + size;
        for (int spaces = 0; spaces < 3; word++)
            spaces += *word == ' ';
        assert((size_t)(end - word) > strlen(net) && memcmp(word, net, strlen(net)) == 0 &&
               word[strlen(net)] == ' ');
        struct fleetproto_ban b2;
        assert(fleetproto_ban_parse(again, (size_t)n, &b2) == 0);
        assert(b2.kind == b.kind && strcmp(b2.origin, b.origin) == 0 &&
               addr_equal(&b2.net.net, &b.net.net) && b2.net.prefix == b.net.prefix &&
               b2.until_ms == b.until_ms && b2.at_ms == b.at_ms &&
               b2.count == b.count && b2.reason == b.reason && b2.sent_ms == b.sent_ms);
    }
    int score;
    uint64_t hits, expires;
    (void)fleetproto_verdict_parse((const char *)data, size, 0x1234, &score, &hits, &expires);
    char *text = malloc(size + 1);
    if (text != NULL) {
        memcpy(text, data, size);
        text[size] = '\0';
        struct fleetproto_url url;
        char what[128];
        bool accepted = fleetproto_url_parse(text, &url, what, sizeof what) == 0;
        if (accepted && url.sentinels == 0)
            assert(url.redis.host[0] != '\0' && url.redis.port != 0);
        else if (accepted) {
            assert(url.sentinels <= FLEETPROTO_SENTINELS_MAX && fleetproto_id_valid(url.master));
            for (unsigned i = 0; i < url.sentinels; i++)
                assert(url.sentinel[i].host[0] != '\0' && url.sentinel[i].port != 0);
        }
        char user[8], password[8];
        fleetproto_auth_split(text, user, sizeof user, password, sizeof password);
        assert(strlen(user) < sizeof user && strlen(password) < sizeof password);
        free(text);
    }
    return 0;
}
