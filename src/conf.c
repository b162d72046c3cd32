/*
 * conf - breakwater's configuration: one typed table of keys, each with its
 * setter, the field it fills, its default text and its limits.
 *
 *   conf_init()           zero the struct, run every key's default text
 *                         through its setter, then take the host's name from
 *                         gethostname() (never DNS)
 *   conf_load_file()      "key = value" lines; '#' comments; blank lines
 *   conf_set()            one key = value; the one place values get in
 *   conf_set_option()     "key=value" as given to -o
 *   conf_finish()         checks between keys, once after all of the above
 *   conf_free()           frees every owned value; safe after conf_init()
 *   conf_parse_duration() "1.5h" -> 5400 seconds, shared with other modules
 *
 * Ownership: struct conf owns hostname, reject_message, state_dir, the
 * dnsbl_sites and both cidr sets. A setter parses into a temporary and only
 * on success frees the old value and puts the new one in its place, so a
 * failed set leaves the previous value intact and a replaced value never
 * leaks (lists are replaced wholesale, never appended to).
 *
 * Errors are one line of at most CONF_ERR_MAX bytes:
 * "<origin>: <key>: <what is wrong>: '<text>'", the quoted text cut short
 * and with unprintable bytes shown as '?'.
 */
#include "conf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONF_LINE_MAX 4096     /* bytes per file line, without the newline */
#define CONF_ITEM_MAX 128      /* bytes per list item (address, CIDR) */
#define CONF_QUOTE_MAX 64      /* bytes of bad text quoted in an error */
#define CONF_PATH_MAX 1024     /* state_dir length */
#define CONF_RESOLVER_PORT 53
#define CONF_SEPARATORS ", \t\r\n\v\f"
#define CONF_WHITESPACE " \t\r\n\v\f"

struct conf_key;

/* Parses value into the key's field; on error writes what is wrong (without
 * origin or key) into what and returns -1. */
typedef int conf_setter(struct conf *c, const struct conf_key *k,
                        const char *value, char *what, size_t size);

struct conf_key {
    const char *name;
    conf_setter *set;
    size_t offset;            /* field in struct conf, for generic setters */
    const char *default_text; /* run through set by conf_init() */
    double min, max;          /* counts, durations (seconds), text lengths */
};

struct conf_name {
    const char *name;
    int value;
};

static const struct conf_name conf_proxy_names[] = {
    {"none", PROXY_NONE}, {"v1", PROXY_V1}, {"v2", PROXY_V2},
};

static const struct conf_name conf_ban_backend_names[] = {
    {"nft", BAN_BACKEND_NFT}, {"ipset", BAN_BACKEND_IPSET},
    {"recent", BAN_BACKEND_RECENT}, {"none", BAN_BACKEND_NONE},
};

static const struct conf_name conf_watch_kill_names[] = {
    {"socket", WATCH_KILL_SOCKET}, {"process", WATCH_KILL_PROCESS}, {"none", WATCH_KILL_NONE},
};

static const struct conf_name conf_log_target_names[] = {
    {"stderr", LOG_TARGET_STDERR}, {"syslog", LOG_TARGET_SYSLOG},
};

static const struct conf_name conf_bool_names[] = {
    {"no", 0}, {"yes", 1}, {"false", 0}, {"true", 1}, {"off", 0}, {"on", 1},
};

static const struct conf_name conf_log_names[] = {
    {"error", LOG_LEVEL_ERROR}, {"warning", LOG_LEVEL_WARNING},
    {"info", LOG_LEVEL_INFO}, {"debug", LOG_LEVEL_DEBUG},
};

/* conf_quote - copies text for an error message: at most CONF_QUOTE_MAX
 * bytes, unprintable bytes as '?', "..." when cut short; returns buf. */
static const char *conf_quote(const char *text, char buf[CONF_QUOTE_MAX + 4])
{
    size_t n = 0;

    /* cppcheck-suppress arrayIndexThenCheck ; text[n] is in the string: text[0..n) has no NUL */
    for (; text[n] != '\0' && n < CONF_QUOTE_MAX; n++) {
        unsigned char ch = (unsigned char)text[n];
        buf[n] = (char)((ch >= 0x20 && ch < 0x7f) ? ch : '?');
    }
    if (text[n] != '\0') {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* conf_error - writes "message: 'text'" into what; returns -1. */
static int conf_error(char *what, size_t size, const char *message, const char *text)
{
    char quoted[CONF_QUOTE_MAX + 4];

    snprintf(what, size, "%s: '%s'", message, conf_quote(text, quoted));
    return -1;
}

/* conf_field - the key's field in c. */
static void *conf_field(struct conf *c, const struct conf_key *k)
{
    return (char *)c + k->offset;
}

static bool conf_is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* conf_next_item - copies the next comma/whitespace separated item of *text
 * into buf and moves *text past it. Returns the item's length, 0 when no
 * item is left, -1 when it does not fit (buf then holds its beginning). */
static int conf_next_item(const char **text, char *buf, size_t size)
{
    const char *start = *text + strspn(*text, CONF_SEPARATORS);
    size_t n = strcspn(start, CONF_SEPARATORS);

    *text = start + n;
    if (n >= size) {
        memcpy(buf, start, size - 1);
        buf[size - 1] = '\0';
        return -1;
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
    return (int)n;
}

/* conf_parse_duration - "30", "30s", "5m", "1.5h", "2d" -> seconds: digits,
 * an optional fraction, an optional unit; nothing else (no sign, no
 * exponent, no spaces). Returns 0 or -1. */
int conf_parse_duration(const char *text, double *seconds)
{
    static const struct { char unit; double factor; } units[] = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400},
    };
    const char *p = text;
    double value = 0, scale = 1, factor = 1;
    size_t i;

    if (!conf_is_digit(*p))
        return -1;
    for (; conf_is_digit(*p); p++)
        value = value * 10 + (*p - '0');
    if (*p == '.') {
        if (!conf_is_digit(*++p))
            return -1;
        for (; conf_is_digit(*p); p++) {
            scale /= 10;
            value += (*p - '0') * scale;
        }
    }
    if (*p != '\0') {
        for (i = 0; i < sizeof units / sizeof units[0] && units[i].unit != *p; i++)
            ;
        if (i == sizeof units / sizeof units[0] || p[1] != '\0')
            return -1;
        factor = units[i].factor;
    }
    value *= factor;
    if (!isfinite(value))
        return -1;
    *seconds = value;
    return 0;
}

/* conf_parse_integer - optional '-' and decimal digits; values beyond
 * +-1e15 saturate there (beyond every key's limits). Returns 0 or -1. */
static int conf_parse_integer(const char *text, long long *out)
{
    const long long limit = 1000000000000000LL;
    bool negative = (*text == '-');
    const char *p = text + negative;
    long long value = 0;

    if (!conf_is_digit(*p))
        return -1;
    for (; conf_is_digit(*p); p++)
        value = value > limit ? limit + 1 : value * 10 + (*p - '0');
    if (*p != '\0')
        return -1;
    *out = negative ? -value : value;
    return 0;
}

/* conf_set_number - parses an integer within the key's limits. */
static int conf_set_number(const struct conf_key *k, const char *value,
                           long long *out, char *what, size_t size)
{
    char message[96];

    if (conf_parse_integer(value, out) != 0)
        return conf_error(what, size, "not a number", value);
    if (*out < (long long)k->min || *out > (long long)k->max) {
        snprintf(message, sizeof message, "out of range %.0f..%.0f", k->min, k->max);
        return conf_error(what, size, message, value);
    }
    return 0;
}

/* conf_set_count - an unsigned field: a number in min..max. */
static int conf_set_count(struct conf *c, const struct conf_key *k,
                          const char *value, char *what, size_t size)
{
    long long n;

    if (conf_set_number(k, value, &n, what, size) != 0)
        return -1;
    *(unsigned *)conf_field(c, k) = (unsigned)n;
    return 0;
}

/* conf_set_workers - a count, or "auto": one per online processor. */
static int conf_set_workers(struct conf *c, const struct conf_key *k,
                            const char *value, char *what, size_t size)
{
    char cores[32];

    if (strcmp(value, "auto") == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(cores, sizeof cores, "%ld", n < 1 ? 1 : n > (long)k->max ? (long)k->max : n);
        value = cores;
    }
    return conf_set_count(c, k, value, what, size);
}

/* conf_set_int - a signed int field: a number in min..max. */
static int conf_set_int(struct conf *c, const struct conf_key *k,
                        const char *value, char *what, size_t size)
{
    long long n;

    if (conf_set_number(k, value, &n, what, size) != 0)
        return -1;
    *(int *)conf_field(c, k) = (int)n;
    return 0;
}

/* conf_set_duration - a double field in seconds, within min..max. */
static int conf_set_duration(struct conf *c, const struct conf_key *k,
                             const char *value, char *what, size_t size)
{
    char message[96];
    double seconds;

    if (conf_parse_duration(value, &seconds) != 0)
        return conf_error(what, size, "not a duration", value);
    if (seconds < k->min || seconds > k->max) {
        snprintf(message, sizeof message, "must be between %gs and %gs", k->min, k->max);
        return conf_error(what, size, message, value);
    }
    *(double *)conf_field(c, k) = seconds;
    return 0;
}

/* conf_choice - looks value up in names; writes the accepted names into
 * what when it is not there. Returns 0 or -1. */
static int conf_choice(const char *value, const struct conf_name *names, size_t count,
                       int *out, char *what, size_t size)
{
    char message[96] = "not one of";
    size_t i, used = strlen(message);

    for (i = 0; i < count; i++) {
        if (strcmp(value, names[i].name) == 0) {
            *out = names[i].value;
            return 0;
        }
        if (used < sizeof message)
            used += (size_t)snprintf(message + used, sizeof message - used, "%s %s",
                                     i ? "," : "", names[i].name);
    }
    return conf_error(what, size, message, value);
}

/* conf_set_proxy_protocol - none, v1 or v2. */
static int conf_set_proxy_protocol(struct conf *c, const struct conf_key *k,
                                   const char *value, char *what, size_t size)
{
    int v;

    (void)k;
    if (conf_choice(value, conf_proxy_names, sizeof conf_proxy_names / sizeof conf_proxy_names[0],
                    &v, what, size) != 0)
        return -1;
    c->backend_proxy_protocol = (enum proxy_version)v;
    return 0;
}

/* conf_set_log_level - error, warning, info or debug. */
static int conf_set_log_level(struct conf *c, const struct conf_key *k,
                              const char *value, char *what, size_t size)
{
    int v;

    (void)k;
    if (conf_choice(value, conf_log_names, sizeof conf_log_names / sizeof conf_log_names[0],
                    &v, what, size) != 0)
        return -1;
    c->log_level = (enum log_level)v;
    return 0;
}

/* conf_replace_text - puts a copy of value into the key's char * field,
 * freeing the old text. */
static int conf_replace_text(struct conf *c, const struct conf_key *k,
                             const char *value, char *what, size_t size)
{
    char **field = conf_field(c, k);
    char *copy = strdup(value);

    if (copy == NULL) {
        snprintf(what, size, "out of memory");
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

/* conf_check_length - value's length is within the key's min..max. */
static int conf_check_length(const struct conf_key *k, const char *value,
                             char *what, size_t size)
{
    size_t n = strlen(value);

    if (n == 0 && k->min > 0) {
        snprintf(what, size, "must not be empty");
        return -1;
    }
    if (n > (size_t)k->max) {
        char message[64];
        snprintf(message, sizeof message, "longer than %.0f characters", k->max);
        return conf_error(what, size, message, value);
    }
    return 0;
}

/* conf_set_hostname - printable ASCII without spaces. */
static int conf_set_hostname(struct conf *c, const struct conf_key *k,
                             const char *value, char *what, size_t size)
{
    const unsigned char *p;

    if (conf_check_length(k, value, what, size) != 0)
        return -1;
    for (p = (const unsigned char *)value; *p != '\0'; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return conf_error(what, size, "spaces or control characters in host name", value);
    return conf_replace_text(c, k, value, what, size);
}

/* conf_set_message - printable ASCII; '%' only in %a (address), %l (lists)
 * and %% (a percent sign). */
static int conf_set_message(struct conf *c, const struct conf_key *k,
                            const char *value, char *what, size_t size)
{
    const unsigned char *p;

    if (conf_check_length(k, value, what, size) != 0)
        return -1;
    for (p = (const unsigned char *)value; *p != '\0'; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            return conf_error(what, size, "control or non-ASCII character", value);
        if (*p == '%') {
            p++;
            if (*p != 'a' && *p != 'l' && *p != '%')
                return conf_error(what, size, "unknown escape (only %a, %l, %%)", value);
        }
    }
    return conf_replace_text(c, k, value, what, size);
}

/* conf_set_path - an absolute path without control characters. */
static int conf_set_path(struct conf *c, const struct conf_key *k,
                         const char *value, char *what, size_t size)
{
    const unsigned char *p;

    if (conf_check_length(k, value, what, size) != 0)
        return -1;
    if (value[0] != '/')
        return conf_error(what, size, "not an absolute path", value);
    for (p = (const unsigned char *)value; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return conf_error(what, size, "control character in path", value);
    return conf_replace_text(c, k, value, what, size);
}

/* conf_endpoint_equal - same address and port. */
static bool conf_endpoint_equal(const struct endpoint *a, const struct endpoint *b)
{
    return a->port == b->port && addr_equal(&a->addr, &b->addr);
}

/* conf_parse_endpoint - "host:port"; with a default_port also a bare
 * address (IPv6 with or without brackets). Returns 0 or -1. */
static int conf_parse_endpoint(const char *text, uint16_t default_port, struct endpoint *out)
{
    if (default_port != 0 && addr_parse(text, &out->addr) == 0) {
        out->port = default_port;
        return 0;
    }
    return hostport_parse(text, &out->addr, &out->port);
}

/* conf_parse_endpoints - a list of 1..max distinct endpoints into out;
 * default_port 0 means every item needs its port. */
static int conf_parse_endpoints(const char *value, uint16_t default_port,
                                struct endpoint *out, size_t max, size_t *count,
                                char *what, size_t size)
{
    char item[CONF_ITEM_MAX];
    size_t n = 0, i;
    int len;

    while ((len = conf_next_item(&value, item, sizeof item)) != 0) {
        if (len < 0)
            return conf_error(what, size, "item too long", item);
        if (n == max) {
            snprintf(what, size, "more than %zu addresses", max);
            return -1;
        }
        if (conf_parse_endpoint(item, default_port, &out[n]) != 0)
            return conf_error(what, size, default_port ? "not an address or address:port"
                                                       : "not an address:port", item);
        for (i = 0; i < n; i++)
            if (conf_endpoint_equal(&out[i], &out[n]))
                return conf_error(what, size, "listed twice", item);
        n++;
    }
    if (n == 0) {
        snprintf(what, size, "no address given");
        return -1;
    }
    *count = n;
    return 0;
}

/* conf_set_listen - 1..max distinct address:port to listen on. */
static int conf_set_listen(struct conf *c, const struct conf_key *k,
                           const char *value, char *what, size_t size)
{
    struct endpoint list[CONF_LISTEN_MAX];
    size_t count;

    if (conf_parse_endpoints(value, 0, list, (size_t)k->max, &count, what, size) != 0)
        return -1;
    memcpy(c->listen, list, count * sizeof list[0]);
    c->listen_count = count;
    return 0;
}

/* conf_set_resolver - "system", or 1..max servers: IP, IP:port, [IPv6]:port
 * (port 53 when none is given). */
static int conf_set_resolver(struct conf *c, const struct conf_key *k,
                             const char *value, char *what, size_t size)
{
    struct endpoint list[CONF_RESOLVERS_MAX];
    size_t count;

    if (strcmp(value, "system") == 0) {
        c->resolver_system = true;
        c->resolver_count = 0;
        return 0;
    }
    if (conf_parse_endpoints(value, CONF_RESOLVER_PORT, list, (size_t)k->max, &count,
                             what, size) != 0)
        return -1;
    memcpy(c->resolver, list, count * sizeof list[0]);
    c->resolver_count = count;
    c->resolver_system = false;
    return 0;
}

/* conf_set_endpoint - one address:port into the key's endpoint field. */
static int conf_set_endpoint(struct conf *c, const struct conf_key *k,
                             const char *value, char *what, size_t size)
{
    struct endpoint e;

    if (hostport_parse(value, &e.addr, &e.port) != 0)
        return conf_error(what, size, "not an address:port", value);
    *(struct endpoint *)conf_field(c, k) = e;
    return 0;
}

/* conf_set_backend_source - an address to bind to, or empty for none. */
static int conf_set_backend_source(struct conf *c, const struct conf_key *k,
                                   const char *value, char *what, size_t size)
{
    struct addr a;

    (void)k;
    if (value[0] == '\0') {
        c->has_backend_source = false;
        memset(&c->backend_source, 0, sizeof c->backend_source);
        return 0;
    }
    if (addr_parse(value, &a) != 0)
        return conf_error(what, size, "not an IP address", value);
    c->backend_source = a;
    c->has_backend_source = true;
    return 0;
}

/* conf_set_cidrs - a list of CIDRs replacing the key's cidr_set. */
static int conf_set_cidrs(struct conf *c, const struct conf_key *k,
                          const char *value, char *what, size_t size)
{
    struct cidr_set set = {0};
    struct cidr_set *field = conf_field(c, k);
    char item[CONF_ITEM_MAX];
    struct cidr net;
    int len;

    while ((len = conf_next_item(&value, item, sizeof item)) != 0) {
        if (len < 0 || cidr_parse(item, &net) != 0 || cidr_set_add(&set, &net) != 0) {
            cidr_set_free(&set);
            return conf_error(what, size, len < 0 ? "item too long" : "not a CIDR", item);
        }
    }
    cidr_set_free(field);
    *field = set;
    return 0;
}

/* conf_set_dnsbl_sites - the site specs, parsed by dnsbl_spec. */
static int conf_set_dnsbl_sites(struct conf *c, const struct conf_key *k,
                                const char *value, char *what, size_t size)
{
    struct dnsbl_sites sites = {0};

    (void)k;
    if (dnsbl_sites_parse(value, &sites, what, size) != 0)
        return -1;
    dnsbl_sites_free(&c->dnsbl_sites);
    c->dnsbl_sites = sites;
    return 0;
}

/* conf_set_dnsbl_names - DOMAIN=PUBLIC_NAME pairs (dnsbl_spec), applied
 * to dnsbl_sites by conf_finish(); "" for none */
static int conf_set_dnsbl_names(struct conf *c, const struct conf_key *k,
                                const char *value, char *what, size_t size)
{
    if (conf_check_length(k, value, what, size) != 0 || dnsbl_names_check(value, what, size) < 0)
        return -1;
    if (value[strspn(value, CONF_SEPARATORS)] != '\0')
        return conf_replace_text(c, k, value, what, size);
    free(c->dnsbl_names);
    c->dnsbl_names = NULL;
    return 0;
}

/* conf_set_ban_backend - one of conf_ban_backend_names. */
static int conf_set_ban_backend(struct conf *c, const struct conf_key *k,
                                const char *value, char *what, size_t size)
{
    int v;

    (void)k;
    if (conf_choice(value, conf_ban_backend_names,
                    sizeof conf_ban_backend_names / sizeof conf_ban_backend_names[0],
                    &v, what, size) != 0)
        return -1;
    c->ban_backend = (enum ban_backend)v;
    return 0;
}

/* conf_set_ban_set - words of letters, digits, '_', '-' and '.' separated
 * by single spaces (they go into firewall commands and file names, so
 * nothing else may get in); "" = the backend's default. */
static int conf_set_ban_set(struct conf *c, const struct conf_key *k,
                            const char *value, char *what, size_t size)
{
    char words[CONF_ITEM_MAX * 3] = "", word[CONF_ITEM_MAX];
    const char *p = value;
    int n;

    if (conf_check_length(k, value, what, size) != 0)
        return -1;
    while ((n = conf_next_item(&p, word, sizeof word)) > 0) {
        if (strspn(word, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789_-.") != (size_t)n || word[0] == '-')
            return conf_error(what, size, "names may hold only letters, digits, _ - .", value);
        snprintf(words + strlen(words), sizeof words - strlen(words), "%s%s",
                 words[0] ? " " : "", word);
    }
    return conf_replace_text(c, k, words, what, size);
}

/* conf_set_ports - a list of TCP ports into the key's field, whose count
 * (a size_t) follows the array */
_Static_assert(offsetof(struct conf, ban_port_count) ==
               offsetof(struct conf, ban_ports) + sizeof(uint16_t[CONF_BAN_PORTS_MAX]),
               "ban_port_count follows ban_ports");
_Static_assert(offsetof(struct conf, watch_port_count) ==
               offsetof(struct conf, watch_ports) + sizeof(uint16_t[CONF_BAN_PORTS_MAX]),
               "watch_port_count follows watch_ports");
static int conf_set_ports(struct conf *c, const struct conf_key *k,
                          const char *value, char *what, size_t size)
{
    uint16_t ports[CONF_BAN_PORTS_MAX] = {0};
    char item[CONF_ITEM_MAX];
    const char *p = value;
    size_t count = 0;
    char *end;
    int n;

    (void)k;
    while ((n = conf_next_item(&p, item, sizeof item)) != 0) {
        if (count == CONF_BAN_PORTS_MAX)
            return conf_error(what, size, "more than 16 ports", value);
        unsigned long port = 0;
        end = item; /* a word that is not a number is refused below, not read past */
        if (n > 0 && conf_is_digit(item[0]))
            port = strtoul(item, &end, 10);
        if (n < 0 || *end != '\0' || port < 1 || port > 65535)
            return conf_error(what, size, "not a port number", item);
        ports[count++] = (uint16_t)port;
    }
    uint16_t *field = conf_field(c, k);
    memcpy(field, ports, count * sizeof ports[0]);
    *(size_t *)((char *)field + sizeof ports) = count;
    return 0;
}

/* conf_set_watch_logs - absolute paths of log files */
static int conf_set_watch_logs(struct conf *c, const struct conf_key *k,
                               const char *value, char *what, size_t size)
{
    char *paths[CONF_WATCH_LOGS_MAX] = {NULL}, item[CONF_PATH_MAX + 1];
    const char *p = value;
    size_t count = 0;
    int n;

    (void)k;
    while ((n = conf_next_item(&p, item, sizeof item)) != 0) {
        const char *why = n < 0 ? "path too long" : item[0] != '/' ? "not an absolute path"
                          : count == CONF_WATCH_LOGS_MAX ? "more than 16 files" : NULL;
        if (why == NULL && (paths[count] = strdup(item)) == NULL)
            why = "out of memory";
        if (why != NULL) {
            while (count > 0)
                free(paths[--count]);
            return conf_error(what, size, why, item);
        }
        count++;
    }
    for (size_t i = 0; i < c->watch_log_count; i++)
        free(c->watch_logs[i]);
    memcpy(c->watch_logs, paths, count * sizeof paths[0]);
    c->watch_log_count = count;
    return 0;
}

/* conf_set_log_target - stderr or syslog */
static int conf_set_log_target(struct conf *c, const struct conf_key *k,
                               const char *value, char *what, size_t size)
{
    int v;

    (void)k;
    if (conf_choice(value, conf_log_target_names,
                    sizeof conf_log_target_names / sizeof conf_log_target_names[0],
                    &v, what, size) != 0)
        return -1;
    c->log_target = (enum log_target)v;
    return 0;
}

/* conf_set_metrics_listen - address:port, or "" for no metrics */
static int conf_set_metrics_listen(struct conf *c, const struct conf_key *k,
                                   const char *value, char *what, size_t size)
{
    struct endpoint e;

    (void)k;
    if (value[0] == '\0') {
        c->has_metrics_listen = false;
        return 0;
    }
    if (hostport_parse(value, &e.addr, &e.port) != 0)
        return conf_error(what, size, "not an address:port", value);
    c->metrics_listen = e;
    c->has_metrics_listen = true;
    return 0;
}

/* conf_set_watch_kill - one of conf_watch_kill_names */
static int conf_set_watch_kill(struct conf *c, const struct conf_key *k,
                               const char *value, char *what, size_t size)
{
    int v;

    (void)k;
    if (conf_choice(value, conf_watch_kill_names,
                    sizeof conf_watch_kill_names / sizeof conf_watch_kill_names[0],
                    &v, what, size) != 0)
        return -1;
    c->watch_kill = (enum watch_kill)v;
    return 0;
}

/* conf_set_bool - yes/no, true/false, on/off */
static int conf_set_bool(struct conf *c, const struct conf_key *k,
                         const char *value, char *what, size_t size)
{
    int v;

    if (conf_choice(value, conf_bool_names, sizeof conf_bool_names / sizeof conf_bool_names[0],
                    &v, what, size) != 0)
        return -1;
    *(bool *)conf_field(c, k) = v != 0;
    return 0;
}

/* conf_set_optional_path - an absolute path, or "" for none */
static int conf_set_optional_path(struct conf *c, const struct conf_key *k,
                                  const char *value, char *what, size_t size)
{
    if (value[0] != '\0')
        return conf_set_path(c, k, value, what, size);
    free(*(char **)conf_field(c, k));
    *(char **)conf_field(c, k) = NULL;
    return 0;
}

/* conf_set_user - a user name as useradd takes them. */
static int conf_set_user(struct conf *c, const struct conf_key *k,
                         const char *value, char *what, size_t size)
{
    size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789_-.");

    if (conf_check_length(k, value, what, size) != 0)
        return -1;
    if (value[n] != '\0' || value[0] == '-')
        return conf_error(what, size, "not a user name", value);
    return conf_replace_text(c, k, value, what, size);
}

/* conf_set_users - a list of user names or numeric ids, kept as written
 * (`watch` resolves it at start) */
static int conf_set_users(struct conf *c, const struct conf_key *k,
                          const char *value, char *what, size_t size)
{
    char item[CONF_ITEM_MAX];
    const char *p = value;
    int n;
    if (conf_check_length(k, value, what, size) != 0)
        return -1;
    while ((n = conf_next_item(&p, item, sizeof item)) != 0) {
        size_t ok = n < 0 ? 0 : strspn(item, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789_-.");
        if (n < 0 || item[ok] != '\0' || item[0] == '-')
            return conf_error(what, size, "not a user name", item);
    }
    return conf_replace_text(c, k, value, what, size);
}

/* conf_set_fleet_redis - redis://[user:password@]host:port[/db],
 * redis-sentinel://[user:password@]host:port[,...]/MASTER[/db], or "" */
static int conf_set_fleet_redis(struct conf *c, const struct conf_key *k,
                                const char *value, char *what, size_t size)
{
    char why[128];
    (void)k;
    if (value[0] == '\0') {
        c->has_fleet = false;
        memset(&c->fleet_redis, 0, sizeof c->fleet_redis);
        return 0;
    }
    if (strlen(value) > FLEETPROTO_URL_MAX)
        return conf_error(what, size, "too long", "(not shown: it may hold a password)");
    struct fleetproto_url url; /* a value refused leaves the old one as it was */
    if (fleetproto_url_parse(value, &url, why, sizeof why) < 0)
        return conf_error(what, size, why, "(not shown: it may hold a password)");
    c->fleet_redis = url;
    c->has_fleet = true;
    return 0;
}

/* conf_set_fleet_id - a name Redis keys and messages may carry */
static int conf_set_fleet_id(struct conf *c, const struct conf_key *k,
                             const char *value, char *what, size_t size)
{
    if (value[0] != '\0' && !fleetproto_id_valid(value))
        return conf_error(what, size, "1..64 letters, digits, '.', '_' or '-'", value);
    if (value[0] == '\0' && k->min > 0)
        return conf_error(what, size, "must not be empty", value);
    return conf_replace_text(c, k, value, what, size);
}

/* conf_set_secret - a password: any text of one line, never repeated in
 * an error */
static int conf_set_secret(struct conf *c, const struct conf_key *k, const char *value,
                           char *what, size_t size)
{
    if (strlen(value) > 384 || strchr(value, ' ') != NULL || strchr(value, '\t') != NULL)
        return conf_error(what, size, "not 0..384 characters without blanks",
                          "(not shown: a password)");
    return conf_replace_text(c, k, value, what, size);
}

#define CONF_FIELD(name) offsetof(struct conf, name)

static const struct conf_key conf_keys[] = {
    {"listen", conf_set_listen, 0, "0.0.0.0:25, [::]:25", 1, CONF_LISTEN_MAX},
    {"backend", conf_set_endpoint, CONF_FIELD(backend), "127.0.0.1:2525", 0, 0},
    {"backend_proxy_protocol", conf_set_proxy_protocol, 0, "none", 0, 0},
    {"backend_max_connections", conf_set_count, CONF_FIELD(backend_max_connections),
     "100", 1, 1000000},
    {"backend_connect_timeout", conf_set_duration, CONF_FIELD(backend_connect_timeout),
     "10s", 0.001, 3600},
    /* Postfix's smtpd_timeout: the MTA would have given up by then too */
    {"relay_idle_timeout", conf_set_duration, CONF_FIELD(relay_idle_timeout),
     "300s", 1, 86400},
    {"backend_source", conf_set_backend_source, 0, "", 0, 0},
    /* conf_init() replaces this default with gethostname()'s answer */
    {"hostname", conf_set_hostname, CONF_FIELD(hostname), "localhost", 1, 253},
    {"dnsbl_sites", conf_set_dnsbl_sites, 0, "", 0, 0},
    {"dnsbl_names", conf_set_dnsbl_names, CONF_FIELD(dnsbl_names), "", 0, CONF_LINE_MAX},
    {"dnsbl_health_interval", conf_set_duration, CONF_FIELD(dnsbl_health_interval),
     "5m", 0, 86400},
    {"dnsbl_threshold", conf_set_int, CONF_FIELD(dnsbl_threshold), "1", 1, 100000},
    {"dnsbl_timeout", conf_set_duration, CONF_FIELD(dnsbl_timeout), "5s", 0.001, 60},
    {"resolver", conf_set_resolver, 0, "system", 1, CONF_RESOLVERS_MAX},
    {"allowlist", conf_set_cidrs, CONF_FIELD(allowlist), "", 0, 0},
    {"denylist", conf_set_cidrs, CONF_FIELD(denylist), "", 0, 0},
    {"max_connections", conf_set_count, CONF_FIELD(max_connections), "50000", 1, 10000000},
    {"max_connections_per_ip", conf_set_count, CONF_FIELD(max_connections_per_ip),
     "20", 1, 1000000},
    /* an IPv6 site (an ISP's customer, a bot's VPS) holds a /64 */
    {"ipv4_prefix", conf_set_count, CONF_FIELD(ipv4_prefix), "32", CIDR_NET4_MIN, 32},
    {"ipv6_prefix", conf_set_count, CONF_FIELD(ipv6_prefix), "64", CIDR_NET6_MIN, 128},
    {"max_connection_rate_per_ip", conf_set_count, CONF_FIELD(max_connection_rate_per_ip),
     "0", 0, 1000000},
    {"connection_rate_window", conf_set_duration, CONF_FIELD(connection_rate_window),
     "60s", 1, 3600},
    {"connection_rate_ban", conf_set_bool, CONF_FIELD(connection_rate_ban), "no", 0, 0},
    {"command_timeout", conf_set_duration, CONF_FIELD(command_timeout), "30s", 0.001, 86400},
    {"reject_delay", conf_set_duration, CONF_FIELD(reject_delay), "0", 0, 300},
    {"reject_session_timeout", conf_set_duration, CONF_FIELD(reject_session_timeout),
     "60s", 0.001, 86400},
    {"reject_message", conf_set_message, CONF_FIELD(reject_message),
     "5.7.1 Service unavailable; client [%a] blocked using %l", 1, 400},
    /* the cap of a clean verdict's negative TTL (dnsttl_bound), Postfix's
     * postscreen_dnsbl_max_ttl */
    {"cache_clean_ttl", conf_set_duration, CONF_FIELD(cache_clean_ttl), "1h", 1, 30 * 86400},
    {"cache_listed_ttl", conf_set_duration, CONF_FIELD(cache_listed_ttl), "1h", 60, 30 * 86400},
    {"cache_max_entries", conf_set_count, CONF_FIELD(cache_max_entries), "1000000", 0, 100000000},
    {"workers", conf_set_workers, CONF_FIELD(workers), "1", 1, 64},
    {"state_dir", conf_set_path, CONF_FIELD(state_dir), "/var/lib/breakwater", 1, CONF_PATH_MAX},
    {"log_level", conf_set_log_level, 0, "info", 0, 0},
    {"log_target", conf_set_log_target, 0, "stderr", 0, 0},
    {"metrics_listen", conf_set_metrics_listen, 0, "127.0.0.1:9625", 0, 0},
    {"shutdown_timeout", conf_set_duration, CONF_FIELD(shutdown_timeout), "30s", 0, 3600},
    {"ban_backend", conf_set_ban_backend, 0, "nft", 0, 0},
    {"ban_set", conf_set_ban_set, CONF_FIELD(ban_set), "", 0, 200},
    {"ban_time", conf_set_duration, CONF_FIELD(ban_time), "10m", 1, 365 * 86400},
    {"ban_time_max", conf_set_duration, CONF_FIELD(ban_time_max), "24h", 1, 365 * 86400},
    {"ban_ports", conf_set_ports, CONF_FIELD(ban_ports), "", 0, 0},
    {"control_socket", conf_set_path, CONF_FIELD(control_socket), "/run/breakwater/control",
     1, 107 /* sun_path */},
    {"user", conf_set_user, CONF_FIELD(user), "breakwater", 1, 32},
    {"watch_logs", conf_set_watch_logs, 0, "/var/log/mail.log", 0, 0},
    {"watch_rules", conf_set_optional_path, CONF_FIELD(watch_rules), "", 1, CONF_PATH_MAX},
    {"watch_rules_only", conf_set_bool, CONF_FIELD(watch_rules_only), "no", 0, 0},
    {"watch_max_hits", conf_set_count, CONF_FIELD(watch_max_hits), "1", 1, 1000},
    {"watch_window", conf_set_duration, CONF_FIELD(watch_window), "10m", 1, 7 * 86400},
    {"watch_ports", conf_set_ports, CONF_FIELD(watch_ports), "25, 465, 587", 0, 0},
    {"watch_kill", conf_set_watch_kill, 0, "socket", 0, 0},
    {"watch_kill_delay", conf_set_duration, CONF_FIELD(watch_kill_delay), "0.5s", 0, 10},
    {"watch_journal_users", conf_set_users, CONF_FIELD(watch_journal_users),
     "root, postfix, Debian-exim, courier, daemon", 1, 1024},
    {"fleet_redis", conf_set_fleet_redis, 0, "", 0, 0},
    {"fleet_name", conf_set_fleet_id, CONF_FIELD(fleet_name), "breakwater", 1, 0},
    /* "": conf_finish() puts the hostname in */
    {"fleet_host_id", conf_set_fleet_id, CONF_FIELD(fleet_host_id), "", 0, 0},
    {"fleet_sentinel_password", conf_set_secret, CONF_FIELD(fleet_sentinel_password), "", 0, 0},
    {"fleet_timeout", conf_set_duration, CONF_FIELD(fleet_timeout), "0.02s", 0.001, 10},
};

/* conf_key_find - the table entry named name, or NULL. */
static const struct conf_key *conf_key_find(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++)
        if (strcmp(conf_keys[i].name, name) == 0)
            return &conf_keys[i];
    return NULL;
}

/* conf_init - defaults: every key's default text through its setter, then
 * the host's name if gethostname() gives one that hostname accepts. */
void conf_init(struct conf *c)
{
    char err[CONF_ERR_MAX], host[256];
    size_t i;

    memset(c, 0, sizeof *c);
    for (i = 0; i < sizeof conf_keys / sizeof conf_keys[0]; i++) {
        if (conf_set(c, conf_keys[i].name, conf_keys[i].default_text, "default", err) != 0) {
            fprintf(stderr, "breakwater: bad built-in %s\n", err);
            abort();
        }
    }
    if (gethostname(host, sizeof host - 1) == 0) {
        host[sizeof host - 1] = '\0';
        (void)conf_set(c, "hostname", host, "gethostname", err); /* else: keep localhost */
    }
}

/* conf_set - sets one key from its text; the value is taken as given. */
int conf_set(struct conf *c, const char *key, const char *value,
             const char *origin, char *err)
{
    const struct conf_key *k = conf_key_find(key);
    char what[CONF_ERR_MAX], quoted[CONF_QUOTE_MAX + 4];

    if (k == NULL) {
        snprintf(err, CONF_ERR_MAX, "%s: unknown key '%s'", origin, conf_quote(key, quoted));
        return -1;
    }
    if (k->set(c, k, value, what, sizeof what) != 0) {
        snprintf(err, CONF_ERR_MAX, "%s: %s: %.*s", origin, k->name,
                 CONF_ERR_MAX - 64, what);
        return -1;
    }
    return 0;
}

/* conf_trim - strips leading and trailing whitespace in place. */
static char *conf_trim(char *text)
{
    size_t n;

    text += strspn(text, CONF_WHITESPACE);
    n = strlen(text);
    while (n > 0 && strchr(CONF_WHITESPACE, text[n - 1]) != NULL)
        text[--n] = '\0';
    return text;
}

/* conf_set_pair - "key = value" (already without comments) -> conf_set. */
static int conf_set_pair(struct conf *c, char *line, const char *origin, char *err)
{
    char *equals = strchr(line, '='), quoted[CONF_QUOTE_MAX + 4];
    char *key;

    if (equals == NULL) { /* only its first word: the rest may be a password */
        line[strcspn(line, CONF_WHITESPACE)] = '\0';
        snprintf(err, CONF_ERR_MAX, "%s: missing '=' after '%s'", origin,
                 conf_quote(line, quoted));
        return -1;
    }
    *equals = '\0';
    key = conf_trim(line);
    if (key[0] == '\0') {
        snprintf(err, CONF_ERR_MAX, "%s: missing key before '='", origin);
        return -1;
    }
    return conf_set(c, key, conf_trim(equals + 1), origin, err);
}

/* conf_set_option - "key=value" as given to -o, split at the first '='. */
int conf_set_option(struct conf *c, const char *option, char *err)
{
    char *copy = strdup(option);
    int rc;

    if (copy == NULL) {
        snprintf(err, CONF_ERR_MAX, "-o: out of memory");
        return -1;
    }
    rc = conf_set_pair(c, copy, "-o", err);
    free(copy);
    return rc;
}

/* conf_strip_comment - cuts line at a '#' that starts it or follows
 * whitespace. */
static void conf_strip_comment(char *line)
{
    char *p;

    for (p = line; (p = strchr(p, '#')) != NULL; p++) {
        if (p == line || strchr(CONF_WHITESPACE, p[-1]) != NULL) {
            *p = '\0';
            return;
        }
    }
}

/* conf_read_line - reads one line without its newline into buf (size
 * CONF_LINE_MAX + 1). Returns its length, -1 at the end of the file, -2 if
 * it is too long, -3 if it holds a NUL byte. */
static long conf_read_line(FILE *f, char *buf)
{
    size_t n = 0;
    bool nul = false;
    int ch;

    while ((ch = getc(f)) != EOF && ch != '\n') {
        if (n == CONF_LINE_MAX)
            return -2;
        nul |= (ch == '\0');
        buf[n++] = (char)ch;
    }
    if (ch == EOF && n == 0)
        return -1;
    buf[n] = '\0';
    return nul ? -3 : (long)n;
}

/* conf_load_lines - applies every line of f; origin is "path:line". */
static int conf_load_lines(struct conf *c, FILE *f, const char *path, char *err)
{
    char line[CONF_LINE_MAX + 1], origin[CONF_ERR_MAX / 2];
    unsigned number = 0;
    long len;
    char *text;

    while ((len = conf_read_line(f, line)) != -1) {
        snprintf(origin, sizeof origin, "%.*s:%u", CONF_ERR_MAX / 2 - 16, path, ++number);
        if (len < -1) {
            snprintf(err, CONF_ERR_MAX, "%s: %s", origin,
                     len == -2 ? "line longer than 4096 bytes" : "NUL byte in line");
            return -1;
        }
        conf_strip_comment(line);
        text = conf_trim(line);
        if (text[0] != '\0' && conf_set_pair(c, text, origin, err) != 0)
            return -1;
    }
    if (ferror(f)) {
        snprintf(err, CONF_ERR_MAX, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* conf_load_file - applies a config file; a missing one only matters if
 * required. */
int conf_load_file(struct conf *c, const char *path, bool required, char *err)
{
    FILE *f = fopen(path, "re");
    int rc;

    if (f == NULL) {
        if (errno == ENOENT && !required)
            return 0;
        snprintf(err, CONF_ERR_MAX, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    rc = conf_load_lines(c, f, path, err);
    (void)fclose(f); /* read only: conf_load_lines checked ferror() */
    return rc;
}

/* conf_is_loopback - 127.0.0.0/8 or ::1. */
static bool conf_is_loopback(const struct addr *a)
{
    static const uint8_t one[16] = {[15] = 1};

    return a->family == AF_INET ? a->bytes[0] == 127 : memcmp(a->bytes, one, 16) == 0;
}

/* conf_is_unspecified - 0.0.0.0 or ::. */
static bool conf_is_unspecified(const struct addr *a)
{
    static const uint8_t zero[16];

    return memcmp(a->bytes, zero, a->family == AF_INET ? 4 : 16) == 0;
}

/* conf_loops_back - would a connection to backend arrive at listener l? */
static bool conf_loops_back(const struct endpoint *l, const struct endpoint *backend)
{
    if (l->port != backend->port)
        return false;
    return addr_equal(&l->addr, &backend->addr) ||
           (conf_is_unspecified(&l->addr) && conf_is_loopback(&backend->addr));
}

/* conf_positive_weights - the highest score the dnsbl_sites can reach. */
static long conf_positive_weights(const struct dnsbl_sites *sites)
{
    long sum = 0;
    size_t i;

    for (i = 0; i < sites->count; i++)
        if (sites->site[i].weight > 0)
            sum += sites->site[i].weight;
    return sum;
}

/* conf_finish_bans - the ban keys' defaults that depend on other keys, and
 * their checks. */
static int conf_finish_bans(struct conf *c, char *err)
{
    static const char *const default_set[] = {
        [BAN_BACKEND_NONE] = "", [BAN_BACKEND_NFT] = "inet breakwater banned",
        [BAN_BACKEND_IPSET] = "breakwater-banned", [BAN_BACKEND_RECENT] = "breakwater",
    };
    static const char *const example[] = {
        [BAN_BACKEND_NONE] = "", [BAN_BACKEND_NFT] = "'inet breakwater banned'",
        [BAN_BACKEND_IPSET] = "'breakwater-banned'", [BAN_BACKEND_RECENT] = "'breakwater'",
    };
    size_t words = 0, i, j;
    char *p;

    if (c->ban_time_max < c->ban_time) {
        snprintf(err, CONF_ERR_MAX, "configuration: ban_time_max: shorter than ban_time");
        return -1;
    }
    if (c->ban_set[0] == '\0') {
        free(c->ban_set);
        c->ban_set = strdup(default_set[c->ban_backend]);
        if (c->ban_set == NULL) {
            snprintf(err, CONF_ERR_MAX, "configuration: out of memory");
            return -1;
        }
    }
    for (p = c->ban_set; *p != '\0'; p++)
        words += (p == c->ban_set || p[-1] == ' ');
    if (c->ban_backend != BAN_BACKEND_NONE &&
        words != (c->ban_backend == BAN_BACKEND_NFT ? 3u : 1u)) {
        snprintf(err, CONF_ERR_MAX, "configuration: ban_set: '%s' does not name a set for "
                 "this ban_backend (like %s)", c->ban_set, example[c->ban_backend]);
        return -1;
    }
    if (c->ban_backend == BAN_BACKEND_NFT && strncmp(c->ban_set, "inet ", 5) != 0) {
        snprintf(err, CONF_ERR_MAX, "configuration: ban_set: '%s': the nft table's family "
                 "must be inet (one table for IPv4 and IPv6)", c->ban_set);
        return -1;
    }
    if (c->ban_port_count == 0) {
        for (i = 0; i < c->listen_count; i++) {
            for (j = 0; j < c->ban_port_count && c->ban_ports[j] != c->listen[i].port; j++)
                ;
            if (j == c->ban_port_count)
                c->ban_ports[c->ban_port_count++] = c->listen[i].port;
        }
    }
    return 0;
}

/* conf_finish - checks that involve more than one key. */
int conf_finish(struct conf *c, char *err)
{
    const char *origin = "configuration";
    size_t i;

    for (i = 0; i < c->listen_count; i++) {
        if (conf_loops_back(&c->listen[i], &c->backend)) {
            snprintf(err, CONF_ERR_MAX, "%s: backend: connects to breakwater's own listen "
                     "address (port %u): move the MTA to another port", origin, c->backend.port);
            return -1;
        }
    }
    if (c->has_backend_source && c->backend_source.family != c->backend.addr.family) {
        snprintf(err, CONF_ERR_MAX, "%s: backend_source: not of the backend's address family",
                 origin);
        return -1;
    }
    char why[CONF_ERR_MAX / 2];
    if (c->dnsbl_names != NULL && dnsbl_sites_name(&c->dnsbl_sites, c->dnsbl_names, why,
                                                   sizeof why) < 0) {
        snprintf(err, CONF_ERR_MAX, "%s: dnsbl_names: %s", origin, why);
        return -1;
    }
    if (c->dnsbl_sites.count > 0 && conf_positive_weights(&c->dnsbl_sites) < c->dnsbl_threshold) {
        snprintf(err, CONF_ERR_MAX, "%s: dnsbl_threshold: %d can never be reached: the positive "
                 "weights of dnsbl_sites add up to %ld", origin, c->dnsbl_threshold,
                 conf_positive_weights(&c->dnsbl_sites));
        return -1;
    }
    if (c->reject_delay >= c->command_timeout) {
        snprintf(err, CONF_ERR_MAX, "%s: reject_delay: %gs is not shorter than command_timeout "
                 "(%gs): a delayed reply would come after the session's idle limit", origin,
                 c->reject_delay, c->command_timeout);
        return -1;
    }
    if (c->has_fleet && c->fleet_timeout >= c->dnsbl_timeout) {
        snprintf(err, CONF_ERR_MAX, "%s: fleet_timeout: %gs is not shorter than dnsbl_timeout "
                 "(%gs): the lists are asked only after Redis", origin, c->fleet_timeout,
                 c->dnsbl_timeout);
        return -1;
    }
    if (c->has_fleet && c->fleet_host_id[0] == '\0') {
        char id[FLEETPROTO_ID_MAX + 1];
        snprintf(id, sizeof id, "%s", c->hostname);
        if (!fleetproto_id_valid(id)) {
            snprintf(err, CONF_ERR_MAX, "%s: fleet_host_id: the hostname '%s' is not a "
                     "valid id: set fleet_host_id", origin, id);
            return -1;
        }
        char *copy = strdup(id);
        if (copy == NULL) {
            snprintf(err, CONF_ERR_MAX, "out of memory");
            return -1;
        }
        free(c->fleet_host_id);
        c->fleet_host_id = copy;
    }
    return conf_finish_bans(c, err);
}

/* conf_free - frees every owned value and zeroes c; repeatable. */
void conf_free(struct conf *c)
{
    free(c->hostname);
    free(c->reject_message);
    free(c->state_dir);
    free(c->ban_set);
    free(c->control_socket);
    free(c->user);
    free(c->watch_rules);
    free(c->watch_journal_users);
    free(c->dnsbl_names);
    free(c->fleet_name);
    free(c->fleet_host_id);
    free(c->fleet_sentinel_password);
    for (size_t i = 0; i < c->watch_log_count; i++)
        free(c->watch_logs[i]);
    dnsbl_sites_free(&c->dnsbl_sites);
    cidr_set_free(&c->allowlist);
    cidr_set_free(&c->denylist);
    memset(c, 0, sizeof *c);
}

int conf_read(struct conf *c, const struct conf_source *src, char *err)
{
    conf_init(c);
    const char *path = src->path != NULL ? src->path : src->default_path;
    int rc = conf_load_file(c, path, src->path != NULL, err);
    for (size_t i = 0; rc == 0 && i < src->option_count; i++)
        rc = conf_set_option(c, src->options[i], err);
    if (rc == 0)
        rc = conf_finish(c, err);
    if (rc != 0) {
        conf_free(c);
        return -1;
    }
    c->source = src;
    return 0;
}

static bool conf_string_equal(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* conf_fleet_url_equal - the same Redis URL, member by member: memcmp()
 * would compare the padding after port and the bytes after each string's
 * NUL too */
static bool conf_endpoint_same(const struct fleetproto_endpoint *a,
                               const struct fleetproto_endpoint *b)
{
    return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

static bool conf_fleet_url_equal(const struct fleetproto_url *a, const struct fleetproto_url *b)
{
    if (strcmp(a->user, b->user) != 0 || strcmp(a->password, b->password) != 0 ||
        !conf_endpoint_same(&a->redis, &b->redis) || a->db != b->db ||
        a->sentinels != b->sentinels || strcmp(a->master, b->master) != 0)
        return false;
    for (unsigned i = 0; i < a->sentinels; i++)
        if (!conf_endpoint_same(&a->sentinel[i], &b->sentinel[i]))
            return false;
    return true;
}

/* conf_keep_string - *next = a copy of running; false when out of memory */
static bool conf_keep_string(char **next, const char *running)
{
    char *copy = running != NULL ? strdup(running) : NULL;
    if (running != NULL && copy == NULL)
        return false;
    free(*next);
    *next = copy;
    return true;
}

/* conf_changed - appends a key name to the list */
static void conf_changed(char *changed, size_t size, const char *key)
{
    size_t used = strlen(changed);
    snprintf(changed + used, size - used, "%s%s", used ? ", " : "", key);
}

int conf_keep_restart_keys(struct conf *next, const struct conf *running,
                           char *changed, size_t size)
{
    changed[0] = '\0';
    bool same = next->listen_count == running->listen_count;
    for (size_t i = 0; same && i < next->listen_count; i++)
        same = conf_endpoint_equal(&next->listen[i], &running->listen[i]);
    if (!same) {
        conf_changed(changed, size, "listen");
        memcpy(next->listen, running->listen, sizeof next->listen);
        next->listen_count = running->listen_count;
    }
    if (next->has_metrics_listen != running->has_metrics_listen ||
        (next->has_metrics_listen &&
         !conf_endpoint_equal(&next->metrics_listen, &running->metrics_listen))) {
        conf_changed(changed, size, "metrics_listen");
        next->has_metrics_listen = running->has_metrics_listen;
        next->metrics_listen = running->metrics_listen;
    }
    const struct {
        const char *key;
        size_t offset;
    } strings[] = {
        {"user", offsetof(struct conf, user)},
        {"state_dir", offsetof(struct conf, state_dir)},
        {"control_socket", offsetof(struct conf, control_socket)},
        {"ban_set", offsetof(struct conf, ban_set)},
        {"fleet_name", offsetof(struct conf, fleet_name)},
        {"fleet_host_id", offsetof(struct conf, fleet_host_id)},
        {"fleet_sentinel_password", offsetof(struct conf, fleet_sentinel_password)},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        char **n = (char **)((char *)next + strings[i].offset);
        char *const *r = (char *const *)((const char *)running + strings[i].offset);
        if (conf_string_equal(*n, *r))
            continue;
        conf_changed(changed, size, strings[i].key);
        if (!conf_keep_string(n, *r))
            return -1;
    }
#define CONF_KEEP(field)                            \
    if (next->field != running->field) {            \
        conf_changed(changed, size, #field);        \
        next->field = running->field;               \
    }
    CONF_KEEP(workers)
    CONF_KEEP(ban_backend)
    CONF_KEEP(log_target)
    CONF_KEEP(cache_max_entries)
#undef CONF_KEEP
    if (next->has_fleet != running->has_fleet ||
        !conf_fleet_url_equal(&next->fleet_redis, &running->fleet_redis)) {
        conf_changed(changed, size, "fleet_redis");
        next->has_fleet = running->has_fleet;
        next->fleet_redis = running->fleet_redis;
    }
    return 0;
}

int conf_reload(struct conf *next, const struct conf *running, char *note, size_t size)
{
    char err[CONF_ERR_MAX], changed[256];
    const char *why = err;
    if (running->source == NULL) {
        why = "no configuration file to read";
    } else if (conf_read(next, running->source, err) == 0) { /* else err says why */
        if (conf_keep_restart_keys(next, running, changed, sizeof changed) == 0) {
            if (changed[0] != '\0')
                snprintf(note, size, "%s changed: that needs a restart", changed);
            else
                note[0] = '\0';
            return 0;
        }
        conf_free(next);
        why = "out of memory";
    }
    snprintf(note, size, "reload refused, the running configuration stays: %s", why);
    return -1;
}
