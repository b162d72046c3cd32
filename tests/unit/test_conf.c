/*
 * test_conf - unit tests of src/conf.c: every default, good and bad values
 * of every key (a failed set must leave the struct untouched and name its
 * origin and key), durations, list separators, replacing values, file
 * loading (comments, line numbers, long lines, missing files), -o
 * overrides, reject_message escapes and the cross-key checks of
 * conf_finish().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"

#define ORIGIN "t.conf:7"

struct test_value {
    const char *key;
    const char *value;
    const char *fragment; /* expected in the error; NULL: value is good */
};

/* test_addr - parses text, failing the test if it is not an address. */
static struct addr test_addr(const char *text)
{
    struct addr a;

    assert_int_equal(addr_parse(text, &a), 0);
    return a;
}

static void test_endpoint_is(const struct endpoint *e, const char *addr, uint16_t port)
{
    struct addr want = test_addr(addr);

    assert_true(addr_equal(&e->addr, &want));
    assert_int_equal(e->port, port);
}

/* test_file - writes text into a new temp file; the caller unlinks path. */
static void test_file(char path[32], const char *text, size_t len)
{
    int fd;

    strcpy(path, "/tmp/test_conf.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* test_load_text - loads text as a config file into c (after conf_init). */
static int test_load_text(struct conf *c, const char *text, char path[32], char *err)
{
    int rc;

    test_file(path, text, strlen(text));
    rc = conf_load_file(c, path, true, err);
    unlink(path);
    return rc;
}

static void test_defaults(void **state)
{
    struct conf c;
    char host[256] = "";
    (void)state;

    conf_init(&c);
    assert_int_equal(c.listen_count, 2);
    test_endpoint_is(&c.listen[0], "0.0.0.0", 25);
    test_endpoint_is(&c.listen[1], "::", 25);
    test_endpoint_is(&c.backend, "127.0.0.1", 2525);
    assert_int_equal(c.backend_proxy_protocol, PROXY_NONE);
    assert_int_equal(c.backend_max_connections, 100);
    assert_true(c.backend_connect_timeout == 10);
    assert_true(c.relay_idle_timeout == 300);
    assert_false(c.has_backend_source);
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_string_equal(c.hostname, host);
    assert_int_equal(c.dnsbl_sites.count, 0);
    assert_true(c.dnsbl_health_interval == 300);
    assert_int_equal(c.dnsbl_threshold, 1);
    assert_true(c.dnsbl_timeout == 5);
    assert_true(c.resolver_system);
    assert_int_equal(c.resolver_count, 0);
    assert_int_equal(c.allowlist.count, 0);
    assert_int_equal(c.denylist.count, 0);
    assert_int_equal(c.max_connections, 50000);
    assert_int_equal(c.max_connections_per_ip, 20);
    assert_true(c.command_timeout == 30);
    assert_true(c.reject_session_timeout == 60);
    assert_string_equal(c.reject_message,
                        "5.7.1 Service unavailable; client [%a] blocked using %l");
    assert_string_equal(c.state_dir, "/var/lib/breakwater");
    assert_int_equal(c.log_level, LOG_LEVEL_INFO);
    conf_free(&c);
    conf_free(&c); /* a freed struct may be freed again */
}

static void test_defaults_pass_finish(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX] = "";
    (void)state;

    conf_init(&c);
    assert_int_equal(conf_finish(&c, err), 0);
    conf_free(&c);
}

static const struct test_value test_values[] = {
    {"listen", "127.0.0.1:2525", NULL},
    {"listen", "1.2.3.4:25,[::1]:25 5.6.7.8:26", NULL},
    {"listen", "", "no address given"},
    {"listen", " , ", "no address given"},
    {"listen", "1.2.3.4", "not an address:port: '1.2.3.4'"},
    {"listen", "1.2.3.4:25 1.2.3.4:25", "listed twice: '1.2.3.4:25'"},
    {"listen", "1.0.0.1:1 1.0.0.2:1 1.0.0.3:1 1.0.0.4:1 1.0.0.5:1 1.0.0.6:1 1.0.0.7:1 "
               "1.0.0.8:1 1.0.0.9:1 1.0.0.10:1 1.0.0.11:1 1.0.0.12:1 1.0.0.13:1 "
               "1.0.0.14:1 1.0.0.15:1 1.0.0.16:1 1.0.0.17:1", "more than 16 addresses"},
    {"backend", "[::1]:25", NULL},
    {"backend", "127.0.0.1", "not an address:port: '127.0.0.1'"},
    {"backend", "localhost:25", "not an address:port"},
    {"backend", "127.0.0.1:0", "not an address:port"},
    {"backend_proxy_protocol", "v2", NULL},
    {"backend_proxy_protocol", "v3", "not one of none, v1, v2: 'v3'"},
    {"backend_max_connections", "1000000", NULL},
    {"backend_max_connections", "0", "out of range 1..1000000: '0'"},
    {"backend_max_connections", "1000001", "out of range"},
    {"backend_max_connections", "99999999999999999999999", "out of range"},
    {"backend_max_connections", "-5", "out of range"},
    {"backend_max_connections", "abc", "not a number: 'abc'"},
    {"backend_max_connections", "", "not a number"},
    {"backend_max_connections", "12x", "not a number"},
    {"backend_connect_timeout", "1h", NULL},
    {"backend_connect_timeout", "0", "must be between"},
    {"backend_connect_timeout", "3601", "must be between"},
    {"backend_connect_timeout", "5x", "not a duration: '5x'"},
    {"relay_idle_timeout", "1", NULL},
    {"relay_idle_timeout", "1d", NULL},
    {"relay_idle_timeout", "0.5", "must be between 1s and 86400s: '0.5'"},
    {"relay_idle_timeout", "86401", "must be between"},
    {"relay_idle_timeout", "", "not a duration"},
    {"backend_source", "10.0.0.1", NULL},
    {"backend_source", "example.com", "not an IP address: 'example.com'"},
    {"hostname", "mx1.example.org", NULL},
    {"hostname", "", "must not be empty"},
    {"hostname", "mx example", "spaces or control characters"},
    {"hostname", "mx\x01", "spaces or control characters"},
    {"hostname", "mx\xc3\xa9", "spaces or control characters"},
    {"dnsbl_sites", "zen.spamhaus.org=127.0.0.[2..11]*3, bl.spamcop.net*2", NULL},
    {"dnsbl_sites", "zen.spamhaus.org=127.0.0.[300]", "zen.spamhaus.org"},
    {"dnsbl_names", "k0123456789abcdefghijk.zen.dq.example=zen.example", NULL},
    {"dnsbl_names", "", NULL},
    {"dnsbl_names", "zen.example", "bad domain in 'zen.example': not DOMAIN=PUBLIC_NAME"},
    {"dnsbl_names", "a.example=b example", "bad domain in 'example'"},
    {"dnsbl_names", "a.example=%l", "bad public name in '%l'"},
    {"dnsbl_health_interval", "0", NULL},
    {"dnsbl_health_interval", "2d", "must be between"},
    {"dnsbl_health_interval", "-1", "not a duration"},
    {"dnsbl_threshold", "100000", NULL},
    {"dnsbl_threshold", "0", "out of range 1..100000"},
    {"dnsbl_threshold", "-1", "out of range"},
    {"dnsbl_threshold", "100001", "out of range"},
    {"dnsbl_timeout", "60", NULL},
    {"dnsbl_timeout", "0", "must be between"},
    {"dnsbl_timeout", "61", "must be between"},
    {"resolver", "1.1.1.1", NULL},
    {"resolver", "system 1.1.1.1", "not an address or address:port: 'system'"},
    {"resolver", "", "no address given"},
    {"resolver", "1.1.1.1:0", "not an address or address:port"},
    {"resolver", "1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 1.0.0.9",
     "more than 8 addresses"},
    {"allowlist", "10.0.0.0/8", NULL},
    {"allowlist", "10.0.0.0/33", "not a CIDR: '10.0.0.0/33'"},
    {"denylist", "2001:db8::/32", NULL},
    {"denylist", "1.2.3.4 foo", "not a CIDR: 'foo'"},
    {"max_connections", "10000000", NULL},
    {"max_connections", "10000001", "out of range 1..10000000"},
    {"max_connections_per_ip", "0", "out of range 1..1000000"},
    {"command_timeout", "5m", NULL},
    {"command_timeout", "0", "must be between"},
    {"reject_session_timeout", "1e9", "not a duration: '1e9'"},
    {"reject_message", "5.7.1 no", NULL},
    {"reject_message", "", "must not be empty"},
    {"reject_message", "a\tb", "control or non-ASCII"},
    {"reject_message", "%x", "unknown escape"},
    {"state_dir", "/tmp/bw", NULL},
    {"state_dir", "var/lib/breakwater", "not an absolute path: 'var/lib/breakwater'"},
    {"state_dir", "", "must not be empty"},
    {"log_level", "debug", NULL},
    {"log_level", "INFO", "not one of error, warning, info, debug: 'INFO'"},
    {"no_such_key", "1", "unknown key 'no_such_key'"},
};

/* test_value_ok - did conf_set() do what row t expects? A bad value fails
 * with origin, key and what is wrong in err, on one line, and leaves the
 * struct as it was. */
static bool test_value_ok(const struct test_value *t, int rc, const char *err,
                          const struct conf *c, const struct conf *before)
{
    char prefix[128];

    if (t->fragment == NULL)
        return rc == 0;
    if (strstr(t->fragment, "unknown key") != NULL)
        snprintf(prefix, sizeof prefix, ORIGIN ": unknown key");
    else
        snprintf(prefix, sizeof prefix, ORIGIN ": %s: ", t->key);
    return rc == -1 && strncmp(err, prefix, strlen(prefix)) == 0 &&
           strstr(err, t->fragment) != NULL && strchr(err, '\n') == NULL &&
           memcmp(c, before, sizeof *c) == 0;
}

static void test_values_table(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof test_values / sizeof test_values[0]; i++) {
        const struct test_value *t = &test_values[i];
        struct conf c, before;
        char err[CONF_ERR_MAX] = "";
        int rc;

        conf_init(&c);
        memcpy(&before, &c, sizeof c);
        rc = conf_set(&c, t->key, t->value, ORIGIN, err);
        if (!test_value_ok(t, rc, err, &c, &before))
            fail_msg("%s = '%s': rc %d, err '%s', expected %s", t->key, t->value, rc, err,
                     t->fragment ? t->fragment : "success");
        conf_free(&c);
    }
}

/* test_parsed_values - good values end up in the right fields. */
static void test_parsed_values(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX] = "";
    (void)state;

    conf_init(&c);
    assert_int_equal(conf_set(&c, "backend_proxy_protocol", "v1", ORIGIN, err), 0);
    assert_int_equal(c.backend_proxy_protocol, PROXY_V1);
    assert_int_equal(conf_set(&c, "backend_max_connections", "777", ORIGIN, err), 0);
    assert_int_equal(c.backend_max_connections, 777);
    assert_int_equal(conf_set(&c, "dnsbl_threshold", "42", ORIGIN, err), 0);
    assert_int_equal(c.dnsbl_threshold, 42);
    assert_int_equal(conf_set(&c, "dnsbl_timeout", "2.5", ORIGIN, err), 0);
    assert_true(c.dnsbl_timeout == 2.5);
    assert_int_equal(conf_set(&c, "backend_source", "::1", ORIGIN, err), 0);
    assert_true(c.has_backend_source);
    struct addr one = test_addr("::1");
    assert_true(addr_equal(&c.backend_source, &one));
    assert_int_equal(conf_set(&c, "backend_source", "", ORIGIN, err), 0);
    assert_false(c.has_backend_source);
    assert_int_equal(conf_set(&c, "log_level", "warning", ORIGIN, err), 0);
    assert_int_equal(c.log_level, LOG_LEVEL_WARNING);
    assert_int_equal(conf_set(&c, "hostname", "mx.example.org", ORIGIN, err), 0);
    assert_string_equal(c.hostname, "mx.example.org");
    assert_int_equal(conf_set(&c, "state_dir", "/srv/bw", ORIGIN, err), 0);
    assert_string_equal(c.state_dir, "/srv/bw");
    assert_int_equal(conf_set(&c, "dnsbl_sites", "a.example*2 b.example", ORIGIN, err), 0);
    assert_int_equal(c.dnsbl_sites.count, 2);
    assert_int_equal(c.dnsbl_sites.site[0].weight, 2);
    conf_free(&c);
}

static void test_durations(void **state)
{
    static const struct { const char *text; int ok; double seconds; } cases[] = {
        {"30", 1, 30}, {"30s", 1, 30}, {"5m", 1, 300}, {"1.5h", 1, 5400},
        {"2d", 1, 172800}, {"0.25", 1, 0.25}, {"0", 1, 0}, {"007s", 1, 7},
        {"", 0, 0}, {"5x", 0, 0}, {"-1", 0, 0}, {"1e9", 0, 0}, {"1.", 0, 0},
        {".5", 0, 0}, {"5 m", 0, 0}, {" 5", 0, 0}, {"5ms", 0, 0}, {"s", 0, 0},
        {"1.5.2", 0, 0}, {"+5", 0, 0}, {"5S", 0, 0}, {"inf", 0, 0}, {"nan", 0, 0},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double seconds = -1;
        int rc = conf_parse_duration(cases[i].text, &seconds);

        if (rc != (cases[i].ok ? 0 : -1) || seconds != (cases[i].ok ? cases[i].seconds : -1))
            fail_msg("'%s': rc %d, %g seconds", cases[i].text, rc, seconds);
    }
}

static void test_duration_overflow(void **state)
{
    char text[400];
    double seconds;
    (void)state;

    memset(text, '9', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    assert_int_equal(conf_parse_duration(text, &seconds), -1);
}

/* test_list_separators - commas, spaces and tabs in any mix separate. */
static void test_list_separators(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX] = "";
    const char *inside[] = {"10.1.2.3", "192.168.4.5", "172.16.0.1", "127.0.0.1"};
    struct addr a;
    size_t i;
    (void)state;

    conf_init(&c);
    assert_int_equal(conf_set(&c, "allowlist",
                              "10.0.0.0/8,192.168.0.0/16 172.16.0.0/12 ,\t 127.0.0.1,",
                              ORIGIN, err), 0);
    assert_int_equal(c.allowlist.count, 4);
    for (i = 0; i < 4; i++) {
        a = test_addr(inside[i]);
        assert_true(cidr_set_contains(&c.allowlist, &a));
    }
    a = test_addr("11.0.0.1");
    assert_false(cidr_set_contains(&c.allowlist, &a));
    assert_int_equal(conf_set(&c, "resolver", "9.9.9.9,\t[2001:db8::1]:5353 2001:db8::2",
                              ORIGIN, err), 0);
    assert_false(c.resolver_system);
    assert_int_equal(c.resolver_count, 3);
    test_endpoint_is(&c.resolver[0], "9.9.9.9", 53);
    test_endpoint_is(&c.resolver[1], "2001:db8::1", 5353);
    test_endpoint_is(&c.resolver[2], "2001:db8::2", 53);
    assert_int_equal(conf_set(&c, "resolver", "system", ORIGIN, err), 0);
    assert_true(c.resolver_system);
    assert_int_equal(c.resolver_count, 0);
    assert_int_equal(conf_set(&c, "listen", "\t127.0.0.1:25 ,, [::1]:2525\t", ORIGIN, err), 0);
    assert_int_equal(c.listen_count, 2);
    test_endpoint_is(&c.listen[1], "::1", 2525);
    conf_free(&c);
}

/* test_replace - a second value replaces the first, lists included. */
static void test_replace(void **state)
{
    struct conf c;
    char err[CONF_ERR_MAX] = "";
    struct addr a = test_addr("10.0.0.1");
    (void)state;

    conf_init(&c);
    assert_int_equal(conf_set(&c, "denylist", "10.0.0.0/8 11.0.0.0/8", ORIGIN, err), 0);
    assert_int_equal(conf_set(&c, "denylist", "12.0.0.0/8", ORIGIN, err), 0);
    assert_int_equal(c.denylist.count, 1);
    assert_false(cidr_set_contains(&c.denylist, &a));
    assert_int_equal(conf_set(&c, "denylist", "", ORIGIN, err), 0);
    assert_int_equal(c.denylist.count, 0);
    assert_int_equal(conf_set(&c, "dnsbl_sites", "a.example b.example", ORIGIN, err), 0);
    assert_int_equal(conf_set(&c, "dnsbl_sites", "c.example", ORIGIN, err), 0);
    assert_int_equal(c.dnsbl_sites.count, 1);
    assert_int_equal(conf_set(&c, "hostname", "a.example", ORIGIN, err), 0);
    assert_int_equal(conf_set(&c, "hostname", "b.example", ORIGIN, err), 0);
    assert_string_equal(c.hostname, "b.example");
    assert_int_equal(conf_set(&c, "listen", "1.2.3.4:25 1.2.3.5:25", ORIGIN, err), 0);
    assert_int_equal(conf_set(&c, "listen", "1.2.3.6:25", ORIGIN, err), 0);
    assert_int_equal(c.listen_count, 1);
    conf_free(&c);
}

static void test_reject_message(void **state)
{
    static const struct { const char *text; int ok; } cases[] = {
        {"%a", 1}, {"%l", 1}, {"%%", 1}, {"5.7.1 [%a] in %l: 100%% sure", 1},
        {"%", 0}, {"50%", 0}, {"%x", 0}, {"%A", 0}, {"%%%", 0}, {"%s", 0}, {"% a", 0},
    };
    char long_text[402];
    char err[CONF_ERR_MAX];
    struct conf c;
    size_t i;
    (void)state;

    conf_init(&c);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = conf_set(&c, "reject_message", cases[i].text, ORIGIN, err);

        if (rc != (cases[i].ok ? 0 : -1))
            fail_msg("'%s': rc %d, err '%s'", cases[i].text, rc, err);
        if (cases[i].ok)
            assert_string_equal(c.reject_message, cases[i].text);
    }
    memset(long_text, 'x', 400);
    long_text[400] = '\0';
    assert_int_equal(conf_set(&c, "reject_message", long_text, ORIGIN, err), 0);
    long_text[400] = 'x';
    long_text[401] = '\0';
    assert_int_equal(conf_set(&c, "reject_message", long_text, ORIGIN, err), -1);
    assert_non_null(strstr(err, "longer than 400 characters"));
    assert_non_null(strstr(err, "...'")); /* the quote is cut short */
    conf_free(&c);
}

static void test_hostname_length(void **state)
{
    char name[255], err[CONF_ERR_MAX];
    struct conf c;
    (void)state;

    conf_init(&c);
    memset(name, 'a', 253);
    name[253] = '\0';
    assert_int_equal(conf_set(&c, "hostname", name, ORIGIN, err), 0);
    name[253] = 'a';
    name[254] = '\0';
    assert_int_equal(conf_set(&c, "hostname", name, ORIGIN, err), -1);
    assert_non_null(strstr(err, "hostname: longer than 253 characters"));
    conf_free(&c);
}

/* test_error_quoting - the quoted text stays printable and on one line. */
static void test_error_quoting(void **state)
{
    char err[CONF_ERR_MAX];
    struct conf c;
    (void)state;

    conf_init(&c);
    assert_int_equal(conf_set(&c, "state_dir", "x\ny\x7f", ORIGIN, err), -1);
    assert_string_equal(err, ORIGIN ": state_dir: not an absolute path: 'x?y?'");
    assert_int_equal(conf_set(&c, "bad\nkey", "1", ORIGIN, err), -1);
    assert_string_equal(err, ORIGIN ": unknown key 'bad?key'");
    conf_free(&c);
}

static void test_file_loading(void **state)
{
    const char *text =
        "# breakwater test configuration\n"
        "\n"
        "   listen = 127.0.0.1:2525 , [::1]:2525   # two listeners\n"
        "backend=127.0.0.1:25\r\n"
        "\t# indented comment\n"
        "max_connections = 100\n"
        "max_connections = 200\n"
        "hostname = mx#1\n"
        "reject_message = 5.7.1 go away = now\n"
        "backend_source =\n"
        "log_level = debug";
    char path[32], err[CONF_ERR_MAX] = "";
    struct conf c;
    (void)state;

    conf_init(&c);
    assert_int_equal(test_load_text(&c, text, path, err), 0);
    assert_int_equal(c.listen_count, 2);
    test_endpoint_is(&c.listen[0], "127.0.0.1", 2525);
    test_endpoint_is(&c.backend, "127.0.0.1", 25);
    assert_int_equal(c.max_connections, 200);
    assert_string_equal(c.hostname, "mx#1");
    assert_string_equal(c.reject_message, "5.7.1 go away = now");
    assert_false(c.has_backend_source);
    assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(conf_finish(&c, err), 0);
    conf_free(&c);
}

/* test_file_errors - each bad file fails with its path and line number. */
static void test_file_errors(void **state)
{
    static const struct { const char *text; const char *message; } cases[] = {
        {"log_level = info\n# c\n\ndnsbl_timeout = 5x\n", ":4: dnsbl_timeout: not a duration: '5x'"},
        {"\nfoo = 1\n", ":2: unknown key 'foo'"},
        {"a\nb\n", ":1: missing '=' after 'a'"},
        {"log_level = info\n\nlisten\n", ":3: missing '=' after 'listen'"},
        /* the words after the first may be a password: not repeated */
        {"fleet_sentinel_password s3cr3t\n", ":1: missing '=' after 'fleet_sentinel_password'"},
        {"= 5\n", ":1: missing key before '='"},
        {"max_connections = 0 # none\n", ":1: max_connections: out of range 1..10000000: '0'"},
    };
    char path[32], err[CONF_ERR_MAX], want[CONF_ERR_MAX];
    struct conf c;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conf_init(&c);
        assert_int_equal(test_load_text(&c, cases[i].text, path, err), -1);
        snprintf(want, sizeof want, "%s%s", path, cases[i].message);
        assert_string_equal(err, want);
        conf_free(&c);
    }
}

/* test_long_lines - 4096 bytes are a line, 4097 are an error. */
static void test_long_lines(void **state)
{
    char text[4200], path[32], err[CONF_ERR_MAX], want[CONF_ERR_MAX];
    struct conf c;
    (void)state;

    memset(text, 'x', sizeof text);
    memcpy(text, "log_level = info\n#", 18);
    text[17 + 4096] = '\n';
    text[17 + 4097] = '\0';
    conf_init(&c);
    assert_int_equal(test_load_text(&c, text, path, err), 0);
    text[17 + 4096] = 'x';
    text[17 + 4097] = '\n';
    text[17 + 4098] = '\0';
    assert_int_equal(test_load_text(&c, text, path, err), -1);
    snprintf(want, sizeof want, "%s:2: line longer than 4096 bytes", path);
    assert_string_equal(err, want);
    conf_free(&c);
}

static void test_nul_byte(void **state)
{
    static const char text[] = "log_level = info\nhostname = a\0b\n";
    char path[32], err[CONF_ERR_MAX], want[CONF_ERR_MAX];
    struct conf c;
    (void)state;

    conf_init(&c);
    test_file(path, text, sizeof text - 1);
    assert_int_equal(conf_load_file(&c, path, true, err), -1);
    unlink(path);
    snprintf(want, sizeof want, "%s:2: NUL byte in line", path);
    assert_string_equal(err, want);
    conf_free(&c);
}

static void test_missing_file(void **state)
{
    const char *path = "/nonexistent/breakwater.conf";
    char err[CONF_ERR_MAX] = "";
    struct conf c, before;
    (void)state;

    conf_init(&c);
    before = c;
    assert_int_equal(conf_load_file(&c, path, false, err), 0);
    assert_memory_equal(&c, &before, sizeof c);
    assert_int_equal(conf_load_file(&c, path, true, err), -1);
    assert_string_equal(err, "/nonexistent/breakwater.conf: cannot open: "
                             "No such file or directory");
    /* only a missing file may be skipped, not one that cannot be opened */
    assert_int_equal(conf_load_file(&c, "/dev/null/breakwater.conf", false, err), -1);
    assert_string_equal(err, "/dev/null/breakwater.conf: cannot open: Not a directory");
    conf_free(&c);
}

/* test_option_overrides - -o after a file wins; its errors say "-o". */
static void test_option_overrides(void **state)
{
    char path[32], err[CONF_ERR_MAX] = "";
    struct conf c;
    (void)state;

    conf_init(&c);
    assert_int_equal(test_load_text(&c, "max_connections = 100\nallowlist = 10.0.0.0/8\n",
                                    path, err), 0);
    assert_int_equal(conf_set_option(&c, "max_connections=300", err), 0);
    assert_int_equal(c.max_connections, 300);
    assert_int_equal(conf_set_option(&c, " max_connections = 400 ", err), 0);
    assert_int_equal(c.max_connections, 400);
    assert_int_equal(conf_set_option(&c, "allowlist=192.0.2.0/24", err), 0);
    assert_int_equal(c.allowlist.count, 1);
    assert_int_equal(conf_set_option(&c, "reject_message=a=b", err), 0);
    assert_string_equal(c.reject_message, "a=b");
    assert_int_equal(conf_set_option(&c, "max_connections=abc", err), -1);
    assert_string_equal(err, "-o: max_connections: not a number: 'abc'");
    assert_int_equal(c.max_connections, 400);
    assert_int_equal(conf_set_option(&c, "max_connections", err), -1);
    assert_string_equal(err, "-o: missing '=' after 'max_connections'");
    assert_int_equal(conf_set_option(&c, "=5", err), -1);
    assert_string_equal(err, "-o: missing key before '='");
    assert_int_equal(conf_set_option(&c, "foo=1", err), -1);
    assert_string_equal(err, "-o: unknown key 'foo'");
    /* a word where a port belongs is refused (found by fuzz_conf) */
    assert_int_equal(conf_set_option(&c, "ban_ports=info", err), -1);
    assert_int_equal(conf_set_option(&c, "watch_ports=25 x", err), -1);
    /* a Redis URL refused leaves the one before it whole (found by fuzz_conf) */
    assert_int_equal(conf_set_option(&c, "fleet_redis=redis://10.0.0.5:6380", err), 0);
    struct fleetproto_url before = c.fleet_redis;
    assert_int_equal(conf_set_option(&c, "fleet_redis=oi\227\231 ", err), -1);
    assert_memory_equal(&before, &c.fleet_redis, sizeof before);
    assert_true(c.has_fleet);
    conf_free(&c);
}

struct test_finish {
    const char *options[3];
    const char *fragment; /* NULL: conf_finish() succeeds */
};

static const struct test_finish test_finishes[] = {
    /* caps above max_connections are harmless: the global cap binds first */
    {{"max_connections=3", "backend_max_connections=200", "max_connections_per_ip=20"}, NULL},
    {{"listen=0.0.0.0:2525", "backend=127.0.0.1:2525"}, "configuration: backend: connects to"},
    {{"listen=127.0.0.1:25", "backend=127.0.0.1:25"}, "configuration: backend: connects to"},
    {{"listen=[::]:25", "backend=[::1]:25"}, "configuration: backend: connects to"},
    {{"listen=127.0.0.1:25", "backend=127.0.0.1:2525"}, NULL},
    {{"listen=0.0.0.0:25", "backend=192.0.2.5:25"}, NULL},
    {{"backend_source=::1"}, "configuration: backend_source: not of the backend's"},
    {{"backend_source=127.0.0.2"}, NULL},
    {{"dnsbl_sites=a.example*2 b.example*2 c.example*-5", "dnsbl_threshold=5"},
     "configuration: dnsbl_threshold: 5 can never be reached"},
    {{"dnsbl_sites=a.example*2 b.example*2 c.example*-5", "dnsbl_threshold=4"}, NULL},
    {{"reject_delay=30s"}, "configuration: reject_delay: 30s is not shorter than command_timeout"},
    {{"reject_delay=29s"}, NULL},
    {{"dnsbl_sites=key01234567890123456789.a.example", "dnsbl_names=c.example=c.test"},
     "configuration: dnsbl_names: c.test is not a domain of dnsbl_sites"},
    {{"dnsbl_names=KEY01234567890123456789.A.example.=a.test",
      "dnsbl_sites=key01234567890123456789.a.example=127.0.0.2*2"}, NULL},
    /* the lists are asked only after Redis: its wait must leave them time */
    {{"fleet_redis=redis://10.0.0.5", "fleet_timeout=5s", "dnsbl_timeout=5s"},
     "configuration: fleet_timeout: 5s is not shorter than dnsbl_timeout"},
    {{"fleet_redis=redis://10.0.0.5", "fleet_timeout=0.1s", "hostname=mx1.example"}, NULL},
    {{"fleet_redis=redis://10.0.0.5", "hostname=mx#1"}, "configuration: fleet_host_id: the"},
    {{"fleet_redis=redis://10.0.0.5", "hostname=mx#1", "fleet_host_id=mx1"}, NULL},
    {{"fleet_redis=", "hostname=mx#1"}, NULL},
};

static void test_finish_checks(void **state)
{
    size_t i, j;
    (void)state;

    for (i = 0; i < sizeof test_finishes / sizeof test_finishes[0]; i++) {
        const struct test_finish *t = &test_finishes[i];
        char err[CONF_ERR_MAX] = "";
        struct conf c;
        int rc;

        conf_init(&c);
        for (j = 0; j < 3 && t->options[j] != NULL; j++)
            assert_int_equal(conf_set_option(&c, t->options[j], err), 0);
        rc = conf_finish(&c, err);
        if (t->fragment == NULL ? rc != 0
                                : rc != -1 || strncmp(err, t->fragment, strlen(t->fragment)) != 0)
            fail_msg("row %zu (%s ...): rc %d, err '%s'", i, t->options[0], rc, err);
        conf_free(&c);
    }
}

/* conf_read: the file, then -o in order; a failure leaves nothing to free */
static void test_read_source(void **state)
{
    char path[32], err[CONF_ERR_MAX];
    char *options[] = {"dnsbl_threshold=3", "hostname=opt.test"};
    struct conf c;
    (void)state;

    test_file(path, "dnsbl_sites = a.test*2, b.test\nhostname = file.test\n", 52);
    struct conf_source src = {.path = path, .default_path = "/nonexistent",
                              .options = options, .option_count = 2};
    assert_int_equal(conf_read(&c, &src, err), 0);
    assert_ptr_equal(c.source, &src);
    assert_int_equal(c.dnsbl_threshold, 3);
    assert_string_equal(c.hostname, "opt.test");
    conf_free(&c);

    /* conf_finish's checks count: 3 is more than the weights add up to */
    char *too_high[] = {"dnsbl_sites=a.test", "dnsbl_threshold=3"};
    src.options = too_high;
    src.option_count = 2;
    assert_int_equal(conf_read(&c, &src, err), -1);
    assert_non_null(strstr(err, "can never be reached"));
    unlink(path);
    /* the named file is required, the default one is not */
    assert_int_equal(conf_read(&c, &src, err), -1);
    assert_non_null(strstr(err, "cannot open"));
    src.path = NULL;
    src.option_count = 0;
    assert_int_equal(conf_read(&c, &src, err), 0);
    conf_free(&c);
}

/* conf_keep_restart_keys: each restart-only key named once and put back;
 * the others left as read */
static void test_keep_restart_keys(void **state)
{
    char err[CONF_ERR_MAX], changed[256];
    struct conf running, next;
    (void)state;

    conf_init(&running);
    assert_int_equal(conf_finish(&running, err), 0);
    conf_init(&next);
    assert_int_equal(conf_finish(&next, err), 0);
    assert_int_equal(conf_keep_restart_keys(&next, &running, changed, sizeof changed), 0);
    assert_string_equal(changed, "");

    const char *set[] = {"listen=127.0.0.1:2600", "metrics_listen=", "user=mail",
                         "state_dir=/tmp/elsewhere", "control_socket=/tmp/ctl",
                         "ban_set=inet t s", "workers=4", "ban_backend=ipset",
                         "log_target=syslog", "cache_max_entries=5", "dnsbl_threshold=2",
                         "reject_message=new", "relay_idle_timeout=60"};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        assert_int_equal(conf_set_option(&next, set[i], err), 0);
    assert_int_equal(conf_keep_restart_keys(&next, &running, changed, sizeof changed), 0);
    assert_string_equal(changed, "listen, metrics_listen, user, state_dir, control_socket, "
                                 "ban_set, workers, ban_backend, log_target, cache_max_entries");
    assert_int_equal(next.listen_count, running.listen_count);
    test_endpoint_is(&next.listen[0], "0.0.0.0", 25);
    assert_true(next.has_metrics_listen);
    assert_string_equal(next.user, running.user);
    assert_string_equal(next.state_dir, running.state_dir);
    assert_string_equal(next.control_socket, running.control_socket);
    assert_string_equal(next.ban_set, running.ban_set);
    assert_int_equal(next.workers, running.workers);
    assert_int_equal(next.ban_backend, running.ban_backend);
    assert_int_equal(next.log_target, running.log_target);
    assert_int_equal(next.cache_max_entries, running.cache_max_entries);
    /* what a reload may change, it does */
    assert_int_equal(next.dnsbl_threshold, 2);
    assert_string_equal(next.reject_message, "new");
    assert_true(next.relay_idle_timeout == 60);
    /* a second pass finds nothing left to keep */
    assert_int_equal(conf_keep_restart_keys(&next, &running, changed, sizeof changed), 0);
    assert_string_equal(changed, "");
    conf_free(&next);
    conf_free(&running);
}

/* conf_reload: the running configuration's file read again, one line said */
static void test_reload_note(void **state)
{
    char path[32], err[CONF_ERR_MAX], note[CONF_ERR_MAX + 128];
    struct conf running, next;
    (void)state;
    const char *first = "listen = 127.0.0.1:2500\ndnsbl_threshold = 1\n";
    test_file(path, first, strlen(first));
    struct conf_source src = {.path = path, .default_path = "/nonexistent"};
    assert_int_equal(conf_read(&running, &src, err), 0);

    FILE *f = fopen(path, "w");
    fputs("listen = 127.0.0.1:2600\ndnsbl_threshold = 1\nreject_message = new\n", f);
    fclose(f);
    assert_int_equal(conf_reload(&next, &running, note, sizeof note), 0);
    assert_string_equal(note, "listen changed: that needs a restart");
    assert_int_equal(next.listen[0].port, 2500);
    assert_string_equal(next.reject_message, "new");
    conf_free(&next);

    f = fopen(path, "w");
    fputs("dnsbl_threshold = many\n", f);
    fclose(f);
    assert_int_equal(conf_reload(&next, &running, note, sizeof note), -1);
    assert_non_null(strstr(note, "reload refused, the running configuration stays: "));
    assert_non_null(strstr(note, ":1: dnsbl_threshold"));
    unlink(path);
    conf_free(&running);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_defaults_pass_finish),
        cmocka_unit_test(test_values_table),
        cmocka_unit_test(test_parsed_values),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_duration_overflow),
        cmocka_unit_test(test_list_separators),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_reject_message),
        cmocka_unit_test(test_hostname_length),
        cmocka_unit_test(test_error_quoting),
        cmocka_unit_test(test_file_loading),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_option_overrides),
        cmocka_unit_test(test_finish_checks),
        cmocka_unit_test(test_read_source),
        cmocka_unit_test(test_keep_restart_keys),
        cmocka_unit_test(test_reload_note),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
