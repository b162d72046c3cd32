/*
 * fleetproto - what breakwater hosts say to each other through Redis, as
 * text, and the checks every word from Redis goes through (pure: no I/O).
 *
 *   fleetproto_url_parse()   fleet_redis = redis://[user:password@]host:port[/db]
 *                            or redis-sentinel://[user:password@]host:port
 *                            [,host:port...]/MASTER_NAME[/db]
 *   fleetproto_ban_format()  a ban or unban as one channel message (also
 *                            the value of the ban's own key)
 *   fleetproto_ban_parse()   a message from the channel or a key: every
 *                            field checked; anything else is refused
 *   fleetproto_verdict_format(), fleetproto_verdict_parse()
 *                            a shared DNSBL verdict, tagged with the hash
 *                            of the dnsbl_sites it was made under
 *                            (dnsbl_sites_hash())
 *
 * Messages (ASCII, space separated, at most FLEETPROTO_MESSAGE_MAX bytes):
 *
 *   ban v2 ORIGIN ADDRESS AT_MS UNTIL_MS COUNT REASON SENT_MS
 *   unban v2 ORIGIN ADDRESS AT_MS SENT_MS
 *
 * (v1, read for hosts not yet upgraded, has no AT_MS: SENT_MS stands for it)
 *
 * AT_MS is when the ban or unban was decided, SENT_MS when this copy was
 * published (a ban that waited for Redis is published later than made).
 * Events about one address are ordered by (AT_MS, unban after ban):
 * fleetproto_event_older() says which of two comes first; a host, and
 * Redis's key, keep the newest and refuse what is older.
 *
 * ORIGIN is the sender's fleet_host_id ([A-Za-z0-9._-], 1..64), ADDRESS an
 * IPv4 or IPv6 address, or a network ADDRESS/LEN of ipv4_prefix or
 * ipv6_prefix bits (LEN from 8 or 16, host bits zero; hosts before network
 * bans refuse it as malformed), in the text form this program writes,
 * UNTIL_MS and SENT_MS Unix time in milliseconds,
 * COUNT the network's ban count (escalation) 1..1000000, REASON one of
 * dnsbl, denylist, pregreet, manual, log, rate.
 *
 * Verdicts: "v1 SITES_HASH SCORE HITS EXPIRES_MS" (hex, decimal, hex,
 * decimal).
 */
#ifndef BREAKWATER_FLEETPROTO_H
#define BREAKWATER_FLEETPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define FLEETPROTO_MESSAGE_MAX 256
#define FLEETPROTO_ID_MAX 64
#define FLEETPROTO_COUNT_MAX 1000000u
#define FLEETPROTO_URL_MAX 1024
#define FLEETPROTO_SENTINELS_MAX 8

struct fleetproto_endpoint {
    char host[256];       /* a name or an address; [IPv6] without brackets */
    uint16_t port;
};

struct fleetproto_url {
    char user[128];       /* "" = none (AUTH password alone, or no AUTH) */
    char password[256];   /* "" = no AUTH */
    struct fleetproto_endpoint redis;  /* redis:// */
    unsigned db;
    unsigned sentinels;   /* 0: redis://; else redis-sentinel:// and these */
    struct fleetproto_endpoint sentinel[FLEETPROTO_SENTINELS_MAX];
    char master[FLEETPROTO_ID_MAX + 1]; /* the name the sentinels know it by */
};

/* Returns 0, or -1 with what set (one short phrase). */
int fleetproto_url_parse(const char *text, struct fleetproto_url *out, char *what,
                         size_t size);
/* [A-Za-z0-9._-], 1..FLEETPROTO_ID_MAX characters. */
bool fleetproto_id_valid(const char *id);

enum fleetproto_kind { FLEETPROTO_BAN, FLEETPROTO_UNBAN };

struct fleetproto_ban {
    enum fleetproto_kind kind;
    char origin[FLEETPROTO_ID_MAX + 1];
    struct cidr net;      /* host bits zero */
    uint64_t at_ms;       /* decided */
    uint64_t until_ms;    /* ban only */
    uint32_t count;       /* ban only */
    uint8_t reason;       /* ban only: enum store_ban_reason */
    uint64_t sent_ms;
};

/* Returns the length written (< size), or -1 when it does not fit. */
int fleetproto_ban_format(const struct fleetproto_ban *b, char *buf, size_t size);
/* text need not be NUL-terminated. Returns 0, or -1 (malformed). */
int fleetproto_ban_parse(const char *text, size_t len, struct fleetproto_ban *out);
/* Is the event (at_ms, unban) older than the held one (held_ms,
 * held_unban)? At the same millisecond an unban comes after a ban, so that
 * every host settles on the same outcome whatever order they arrive in. */
bool fleetproto_event_older(uint64_t at_ms, bool unban, uint64_t held_ms, bool held_unban);
/* Wall clock seconds as whole milliseconds, the messages' unit (0 for
 * a time before the epoch). */
uint64_t fleetproto_ms(double seconds);
/* fleet_sentinel_password's "USER:PASSWORD" or "PASSWORD" (":PASSWORD"
 * for one that holds a colon) into user ("" none) and password. */
void fleetproto_auth_split(const char *text, char *user, size_t user_size, char *password,
                           size_t password_size);
/* "dnsbl" ... for a store_ban_reason, NULL for an unknown one. */
const char *fleetproto_reason_name(unsigned reason);

int fleetproto_verdict_format(uint64_t sites_hash, int score, uint64_t hits,
                              uint64_t expires_ms, char *buf, size_t size);
/* Returns 0 and fills the rest when text is a verdict made under
 * sites_hash; -1 otherwise (malformed, or other lists). */
int fleetproto_verdict_parse(const char *text, size_t len, uint64_t sites_hash, int *score,
                             uint64_t *hits, uint64_t *expires_ms);

#endif
