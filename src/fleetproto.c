/*
 * fleetproto - fleet messages and their checks. See fleetproto.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetproto.h"
#include "store.h"

#define FLEETPROTO_WORDS_MAX 9

static const char *const fleetproto_reasons[] = {
    [STORE_BAN_DNSBL] = "dnsbl", [STORE_BAN_DENYLIST] = "denylist",
    [STORE_BAN_PREGREET] = "pregreet", [STORE_BAN_MANUAL] = "manual",
    [STORE_BAN_LOG] = "log", [STORE_BAN_RATE] = "rate",
};

const char *fleetproto_reason_name(unsigned reason)
{
    return reason < sizeof fleetproto_reasons / sizeof fleetproto_reasons[0]
               ? fleetproto_reasons[reason] : NULL;
}

bool fleetproto_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > FLEETPROTO_ID_MAX)
        return false;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* fleetproto_number - a whole decimal number in [min, max] */
static int fleetproto_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9' || strlen(text) > 20)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* fleetproto_copy_part - text[0..len) into buf as a string */
static int fleetproto_copy_part(const char *text, size_t len, char *buf, size_t size)
{
    if (len >= size || memchr(text, '\0', len) != NULL)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return 0;
}

static int fleetproto_url_fail(char *what, size_t size, const char *why)
{
    snprintf(what, size, "%s", why);
    return -1;
}

/* fleetproto_endpoint_parse - HOST[:PORT] or [IPv6][:PORT] in [p, end) */
static int fleetproto_endpoint_parse(const char *p, const char *end, uint16_t default_port,
                                     struct fleetproto_endpoint *out, char *what, size_t size)
{
    const char *host_end, *rest;
    out->port = default_port;
    if (p < end && *p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL)
            return fleetproto_url_fail(what, size, "unclosed [ in the host");
        if (fleetproto_copy_part(p + 1, (size_t)(host_end - p - 1), out->host,
                                 sizeof out->host) < 0)
            return fleetproto_url_fail(what, size, "host too long");
        rest = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end == NULL)
            host_end = end;
        if (fleetproto_copy_part(p, (size_t)(host_end - p), out->host, sizeof out->host) < 0)
            return fleetproto_url_fail(what, size, "host too long");
        rest = host_end;
    }
    if (out->host[0] == '\0' || strpbrk(out->host, " \t@[],/") != NULL)
        return fleetproto_url_fail(what, size, "no host, or a bad one");
    char number[24];
    uint64_t v;
    if (rest < end && *rest == ':') {
        if (fleetproto_copy_part(rest + 1, (size_t)(end - rest - 1), number, sizeof number) < 0 ||
            fleetproto_number(number, 1, 65535, &v) < 0)
            return fleetproto_url_fail(what, size, "port not 1..65535");
        out->port = (uint16_t)v;
    } else if (rest != end) {
        return fleetproto_url_fail(what, size, "unexpected text after the host");
    }
    return 0;
}

/* fleetproto_db_parse - "" or "/" or "/N" */
static int fleetproto_db_parse(const char *rest, unsigned *db, char *what, size_t size)
{
    uint64_t v;
    if (*rest == '/' && rest[1] != '\0') {
        if (fleetproto_number(rest + 1, 0, 1000000, &v) < 0)
            return fleetproto_url_fail(what, size, "database not a number");
        *db = (unsigned)v;
    } else if (*rest != '\0' && strcmp(rest, "/") != 0) {
        return fleetproto_url_fail(what, size, "unexpected text after the host");
    }
    return 0;
}

/* fleetproto_sentinels_parse - HOST:PORT[,HOST:PORT...]/MASTER_NAME[/db] */
static int fleetproto_sentinels_parse(const char *p, struct fleetproto_url *out, char *what,
                                      size_t size)
{
    const char *end = strchr(p, '/');
    if (end == NULL)
        return fleetproto_url_fail(what, size, "no /MASTER_NAME after the sentinels");
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (out->sentinels == FLEETPROTO_SENTINELS_MAX)
            return fleetproto_url_fail(what, size, "more than 8 sentinels");
        if (fleetproto_endpoint_parse(p, stop, 26379, &out->sentinel[out->sentinels++], what,
                                      size) < 0)
            return -1;
        p = comma ? comma + 1 : end;
        if (comma != NULL && p == end)
            return fleetproto_url_fail(what, size, "an empty sentinel after a comma");
    }
    if (out->sentinels == 0)
        return fleetproto_url_fail(what, size, "no sentinel");
    const char *name = end + 1, *name_end = name + strcspn(name, "/");
    if (fleetproto_copy_part(name, (size_t)(name_end - name), out->master, sizeof out->master) < 0 ||
        !fleetproto_id_valid(out->master))
        return fleetproto_url_fail(what, size, "master name not 1..64 of [A-Za-z0-9._-]");
    return fleetproto_db_parse(name_end, &out->db, what, size);
}

int fleetproto_url_parse(const char *text, struct fleetproto_url *out, char *what,
                         size_t size)
{
    static const char plain[] = "redis://", sentinel[] = "redis-sentinel://";
    *out = (struct fleetproto_url){.redis.port = 6379};
    bool by_sentinel = strncmp(text, sentinel, sizeof sentinel - 1) == 0;
    if (!by_sentinel && strncmp(text, plain, sizeof plain - 1) != 0)
        return fleetproto_url_fail(what, size, "not a redis:// or redis-sentinel:// URL");
    const char *p = text + (by_sentinel ? sizeof sentinel : sizeof plain) - 1;
    const char *at = strrchr(p, '@');
    if (at != NULL) {     /* user:password@ or :password@ or password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (colon != NULL &&
            fleetproto_copy_part(p, (size_t)(colon - p), out->user, sizeof out->user) < 0)
            return fleetproto_url_fail(what, size, "user name too long");
        if (fleetproto_copy_part(pw, (size_t)(at - pw), out->password, sizeof out->password) < 0)
            return fleetproto_url_fail(what, size, "password too long");
        if (out->password[0] == '\0')
            return fleetproto_url_fail(what, size, "empty password");
        p = at + 1;
    }
    if (by_sentinel)
        return fleetproto_sentinels_parse(p, out, what, size);
    const char *end = p[0] == '[' && strchr(p, ']') ? strchr(p, ']') + 1 : p;
    end += strcspn(end, "/");
    if (fleetproto_endpoint_parse(p, end, 6379, &out->redis, what, size) < 0)
        return -1;
    return fleetproto_db_parse(end, &out->db, what, size);
}

int fleetproto_ban_format(const struct fleetproto_ban *b, char *buf, size_t size)
{
    char text[CIDR_TEXT_MAX];
    cidr_format(&b->net, text, sizeof text);
    int n;
    if (b->kind == FLEETPROTO_BAN) {
        const char *reason = fleetproto_reason_name(b->reason);
        n = snprintf(buf, size, "ban v2 %s %s %" PRIu64 " %" PRIu64 " %" PRIu32 " %s %" PRIu64,
                     b->origin, text, b->at_ms, b->until_ms, b->count,
                     reason ? reason : "manual", b->sent_ms);
    } else {
        n = snprintf(buf, size, "unban v2 %s %s %" PRIu64 " %" PRIu64, b->origin, text,
                     b->at_ms, b->sent_ms);
    }
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* fleetproto_printable - printable ASCII and spaces only */
static bool fleetproto_printable(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

/* fleetproto_split - words separated by single spaces, no empty word */
static int fleetproto_split(char *line, char **words, int max)
{
    int n = 0;
    for (char *p = line;; p++) {
        if (n == max)
            return -1;
        words[n++] = p;
        p = strchr(p, ' ');
        if (p == NULL)
            break;
        *p = '\0';
    }
    for (int i = 0; i < n; i++)
        if (words[i][0] == '\0')
            return -1;
    return n;
}

/* fleetproto_net_parse - ADDRESS or NETWORK/LEN exactly as
 * fleetproto_ban_format() writes it (host bits zero, no mapped form), no
 * wider than CIDR_NET4_MIN or CIDR_NET6_MIN */
static int fleetproto_net_parse(const char *word, struct cidr *out)
{
    char again[CIDR_TEXT_MAX];
    if (cidr_parse(word, out) < 0)
        return -1;
    cidr_format(out, again, sizeof again);
    if (strcmp(again, word) != 0 ||
        out->prefix < (out->net.family == AF_INET ? CIDR_NET4_MIN : CIDR_NET6_MIN))
        return -1;
    return 0;
}

uint64_t fleetproto_ms(double seconds)
{
    return seconds > 0 ? (uint64_t)(seconds * 1000 + 0.5) : 0;
}

void fleetproto_auth_split(const char *text, char *user, size_t user_size, char *password,
                           size_t password_size)
{
    const char *colon = strchr(text, ':');
    size_t n = colon != NULL ? (size_t)(colon - text) : 0;
    snprintf(user, user_size, "%.*s", (int)(n < user_size ? n : user_size - 1), text);
    snprintf(password, password_size, "%s", colon != NULL ? colon + 1 : text);
}

bool fleetproto_event_older(uint64_t at_ms, bool unban, uint64_t held_ms, bool held_unban)
{
    return at_ms < held_ms || (at_ms == held_ms && !unban && held_unban);
}

int fleetproto_ban_parse(const char *text, size_t len, struct fleetproto_ban *out)
{
    char line[FLEETPROTO_MESSAGE_MAX + 1], *w[FLEETPROTO_WORDS_MAX];
    if (len > FLEETPROTO_MESSAGE_MAX || fleetproto_copy_part(text, len, line, sizeof line) < 0)
        return -1;
    if (!fleetproto_printable(line, len))
        return -1;
    int n = fleetproto_split(line, w, FLEETPROTO_WORDS_MAX);
    if (n < 2)
        return -1;
    int at = strcmp(w[1], "v2") == 0 ? 1 : strcmp(w[1], "v1") == 0 ? 0 : -1;
    if (at < 0)
        return -1;
    *out = (struct fleetproto_ban){0};
    bool ban = strcmp(w[0], "ban") == 0;
    if (!(ban && n == 8 + at) && !(strcmp(w[0], "unban") == 0 && n == 5 + at))
        return -1;
    out->kind = ban ? FLEETPROTO_BAN : FLEETPROTO_UNBAN;
    if (!fleetproto_id_valid(w[2]) || fleetproto_net_parse(w[3], &out->net) < 0)
        return -1;
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): id_valid() bounds it */
    strcpy(out->origin, w[2]);
    uint64_t v;
    if (fleetproto_number(w[n - 1], 1, UINT64_MAX / 2, &out->sent_ms) < 0)
        return -1;
    out->at_ms = out->sent_ms; /* v1 */
    if (at && fleetproto_number(w[4], 1, UINT64_MAX / 2, &out->at_ms) < 0)
        return -1;
    if (!ban)
        return 0;
    if (fleetproto_number(w[4 + at], 1, UINT64_MAX / 2, &out->until_ms) < 0 ||
        fleetproto_number(w[5 + at], 1, FLEETPROTO_COUNT_MAX, &v) < 0)
        return -1;
    out->count = (uint32_t)v;
    for (unsigned r = 0; r < sizeof fleetproto_reasons / sizeof fleetproto_reasons[0]; r++) {
        if (fleetproto_reasons[r] != NULL && strcmp(w[6 + at], fleetproto_reasons[r]) == 0) {
            out->reason = (uint8_t)r;
            return 0;
        }
    }
    return -1;
}

int fleetproto_verdict_format(uint64_t sites_hash, int score, uint64_t hits,
                              uint64_t expires_ms, char *buf, size_t size)
{
    int n = snprintf(buf, size, "v1 %" PRIx64 " %d %" PRIx64 " %" PRIu64, sites_hash, score,
                     hits, expires_ms);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int fleetproto_verdict_parse(const char *text, size_t len, uint64_t sites_hash, int *score,
                             uint64_t *hits, uint64_t *expires_ms)
{
    char line[FLEETPROTO_MESSAGE_MAX + 1], *w[FLEETPROTO_WORDS_MAX], *end;
    if (len > FLEETPROTO_MESSAGE_MAX || fleetproto_copy_part(text, len, line, sizeof line) < 0 ||
        !fleetproto_printable(line, len))
        return -1;
    if (fleetproto_split(line, w, FLEETPROTO_WORDS_MAX) != 5 || strcmp(w[0], "v1") != 0 ||
        fleetproto_number(w[4], 1, UINT64_MAX / 2, expires_ms) < 0)
        return -1;
    errno = 0;
    uint64_t h = strtoull(w[1], &end, 16);
    if (errno != 0 || *end != '\0' || w[1][0] == '-' || w[1][0] == '+' || h != sites_hash)
        return -1;
    long s = strtol(w[2], &end, 10);
    if (errno != 0 || *end != '\0' || s < -1000000 || s > 1000000)
        return -1;
    uint64_t bits = strtoull(w[3], &end, 16);
    if (errno != 0 || *end != '\0' || w[3][0] == '-' || w[3][0] == '+')
        return -1;
    *score = (int)s;
    *hits = bits;
    return 0;
}
