/*
 * fuzz_fleetproto - libFuzzer target for what breakwater reads from Redis
 * (src/fleetproto.c): peers' ban messages, shared verdicts and the
 * fleet_redis URL, which must hold against any bytes at all.
 *
 * Checks: an accepted ban message has a known kind, a valid origin, an
 * address of a known family, a count within bounds and a known reason,
 * and its formatted text parses back to the same; an accepted URL has a host
 * and a port; parsing a verdict never reads past its length.
 */
#include <assert.h>
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
        assert(b.addr.family == AF_INET || b.addr.family == AF_INET6);
        if (b.kind == FLEETPROTO_BAN) {
            assert(b.count >= 1 && b.count <= FLEETPROTO_COUNT_MAX);
            assert(fleetproto_reason_name(b.reason) != NULL);
        }
        int n = fleetproto_ban_format(&b, again, sizeof again);
        assert(n > 0);
        /* the same meaning (the text may differ in the address's spelling) */
        struct fleetproto_ban b2;
        assert(fleetproto_ban_parse(again, (size_t)n, &b2) == 0);
        assert(b2.kind == b.kind && strcmp(b2.origin, b.origin) == 0 &&
               addr_equal(&b2.addr, &b.addr) && b2.until_ms == b.until_ms &&
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
        if (fleetproto_url_parse(text, &url, what, sizeof what) == 0)
            assert(url.host[0] != '\0' && url.port != 0);
        free(text);
    }
    return 0;
}
