/*
 * test_smtp - unit tests for src/smtp.c: line framing (CRLF, bare LF,
 * incomplete and overlong lines at the SMTP_LINE_MAX boundary), skipping an
 * overlong line, command parsing (case, spaces, NUL and 8-bit octets) and
 * verb names. Table-driven; each case states the exact expected result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp.h"

#define BYTES(s) (const uint8_t *)(s), sizeof(s) - 1

struct line_case {
    const char *name;
    const uint8_t *in;
    size_t len;
    enum smtp_line_status status;
    size_t line_len;
    size_t consumed;
};

static const struct line_case line_cases[] = {
    { "crlf", BYTES("NOOP\r\n"), SMTP_LINE_COMPLETE, 4, 6 },
    { "bare lf", BYTES("NOOP\n"), SMTP_LINE_COMPLETE, 4, 5 },
    { "first of two", BYTES("HELO a\r\nNOOP\r\n"), SMTP_LINE_COMPLETE, 6, 8 },
    { "empty crlf", BYTES("\r\n"), SMTP_LINE_COMPLETE, 0, 2 },
    { "empty lf", BYTES("\n"), SMTP_LINE_COMPLETE, 0, 1 },
    { "inner cr kept", BYTES("A\rB\r\n"), SMTP_LINE_COMPLETE, 3, 5 },
    { "cr cr lf", BYTES("A\r\r\n"), SMTP_LINE_COMPLETE, 2, 4 },
    { "nul inside", BYTES("NO\0OP\r\n"), SMTP_LINE_COMPLETE, 5, 7 },
    { "no lf", BYTES("NOOP"), SMTP_LINE_INCOMPLETE, 0, 0 },
    { "cr only", BYTES("NOOP\r"), SMTP_LINE_INCOMPLETE, 0, 0 },
    { "nothing", (const uint8_t *)"", 0, SMTP_LINE_INCOMPLETE, 0, 0 },
};

/* test_line_table - smtp_next_line on short inputs */
static void test_line_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof line_cases / sizeof line_cases[0]; i++) {
        const struct line_case *c = &line_cases[i];
        size_t line_len = 99, consumed = 99;
        enum smtp_line_status st = smtp_next_line(c->in, c->len, &line_len, &consumed);

        if (st != c->status || consumed != c->consumed)
            print_message("case %s\n", c->name);
        assert_int_equal(st, c->status);
        assert_int_equal(consumed, c->consumed);
        if (c->status == SMTP_LINE_COMPLETE)
            assert_int_equal(line_len, c->line_len);
    }
}

/* make_line - n bytes of 'A' followed by tail, in a heap buffer */
static uint8_t *make_line(size_t n, const char *tail, size_t *len)
{
    size_t t = strlen(tail);
    uint8_t *b = malloc(n + t);

    assert_non_null(b);
    memset(b, 'A', n);
    memcpy(b + n, tail, t);
    *len = n + t;
    return b;
}

/* check_long - frame n x 'A' + tail and compare status and consumed */
static void check_long(size_t n, const char *tail, enum smtp_line_status status,
                       size_t consumed_expected)
{
    size_t len, line_len, consumed;
    uint8_t *b = make_line(n, tail, &len);
    enum smtp_line_status st = smtp_next_line(b, len, &line_len, &consumed);

    if (st != status || consumed != consumed_expected)
        print_message("n=%zu tail=%zu\n", n, strlen(tail));
    assert_int_equal(st, status);
    assert_int_equal(consumed, consumed_expected);
    if (status == SMTP_LINE_COMPLETE)
        assert_int_equal(line_len, n);
    free(b);
}

/* test_line_limit - the SMTP_LINE_MAX boundary, with and without line end */
static void test_line_limit(void **state)
{
    (void)state;
    check_long(SMTP_LINE_MAX, "\r\n", SMTP_LINE_COMPLETE, SMTP_LINE_MAX + 2);
    check_long(SMTP_LINE_MAX, "\n", SMTP_LINE_COMPLETE, SMTP_LINE_MAX + 1);
    check_long(SMTP_LINE_MAX + 1, "\r\n", SMTP_LINE_TOO_LONG, SMTP_LINE_MAX + 3);
    check_long(SMTP_LINE_MAX + 1, "\n", SMTP_LINE_TOO_LONG, SMTP_LINE_MAX + 2);
    /* not yet certain: SMTP_LINE_MAX bytes, maybe followed by CR LF */
    check_long(SMTP_LINE_MAX, "", SMTP_LINE_INCOMPLETE, 0);
    check_long(SMTP_LINE_MAX, "\r", SMTP_LINE_INCOMPLETE, 0);
    /* certain: one content byte too many */
    check_long(SMTP_LINE_MAX + 1, "", SMTP_LINE_TOO_LONG, SMTP_LINE_MAX + 1);
    check_long(SMTP_LINE_MAX, "\r\r", SMTP_LINE_TOO_LONG, SMTP_LINE_MAX + 2);
    /* an overlong line followed by another: consumed stops at its LF */
    check_long(2 * SMTP_LINE_MAX, "\r\nNOOP\r\n", SMTP_LINE_TOO_LONG, 2 * SMTP_LINE_MAX + 2);
}

/* test_skip_line - discarding the rest of an overlong line */
static void test_skip_line(void **state)
{
    int done = 7;

    (void)state;
    assert_int_equal(smtp_skip_line(BYTES("AAAA"), &done), 4);
    assert_int_equal(done, 0);
    assert_int_equal(smtp_skip_line(BYTES("AA\r\nNOOP\r\n"), &done), 4);
    assert_int_equal(done, 1);
    assert_int_equal(smtp_skip_line(BYTES("\n"), &done), 1);
    assert_int_equal(done, 1);
    done = 7;
    assert_int_equal(smtp_skip_line((const uint8_t *)"", 0, &done), 0);
    assert_int_equal(done, 0);
}

struct parse_case {
    const uint8_t *line;
    size_t len;
    enum smtp_verb verb;
    const char *arg;
};

static const struct parse_case parse_cases[] = {
    { BYTES("HELO a.example"), SMTP_HELO, "a.example" },
    { BYTES("ehlo a.example"), SMTP_EHLO, "a.example" },
    { BYTES("MAIL FROM:<a@b>"), SMTP_MAIL, "FROM:<a@b>" },
    { BYTES("mAiL   FROM:<a@b>  \t "), SMTP_MAIL, "FROM:<a@b>" },
    { BYTES("RCPT TO:<c@d> NOTIFY=NEVER"), SMTP_RCPT, "TO:<c@d> NOTIFY=NEVER" },
    { BYTES("DATA"), SMTP_DATA, "" },
    { BYTES("DATA   "), SMTP_DATA, "" },
    { BYTES("BDAT 12 LAST"), SMTP_BDAT, "12 LAST" },
    { BYTES("RSET"), SMTP_RSET, "" },
    { BYTES("noop"), SMTP_NOOP, "" },
    { BYTES("VRFY root"), SMTP_VRFY, "root" },
    { BYTES("EXPN staff"), SMTP_EXPN, "staff" },
    { BYTES("Help"), SMTP_HELP, "" },
    { BYTES("QUIT"), SMTP_QUIT, "" },
    { BYTES("StartTLS"), SMTP_STARTTLS, "" },
    { BYTES("AUTH PLAIN AGFAAGI="), SMTP_AUTH, "PLAIN AGFAAGI=" },
    { BYTES("MAILX FROM:<a>"), SMTP_UNKNOWN, "FROM:<a>" },
    { BYTES("MAI"), SMTP_UNKNOWN, "" },
    { BYTES(""), SMTP_UNKNOWN, "" },
    { BYTES(" NOOP"), SMTP_UNKNOWN, "NOOP" },
    { BYTES("NOOP\tx"), SMTP_UNKNOWN, "" },
    { BYTES("NO\0P"), SMTP_UNKNOWN, "" },
    { BYTES("QUIT\0"), SMTP_UNKNOWN, "" },
    { BYTES("H\xc5LO x"), SMTP_UNKNOWN, "x" },
    { BYTES("\xc8\xc5LO x"), SMTP_UNKNOWN, "x" },
    { BYTES("HELO \xff\x80"), SMTP_HELO, "\xff\x80" },
};

/* test_parse_table - smtp_parse_command */
static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct smtp_command cmd;

        smtp_parse_command(c->line, c->len, &cmd);
        if (cmd.verb != c->verb || cmd.arg_len != strlen(c->arg))
            print_message("case %zu\n", i);
        assert_int_equal(cmd.verb, c->verb);
        assert_int_equal(cmd.arg_len, strlen(c->arg));
        assert_memory_equal(cmd.arg, c->arg, cmd.arg_len);
        /* the argument lies inside the line */
        assert_true(cmd.arg >= c->line && cmd.arg + cmd.arg_len <= c->line + c->len);
    }
}

/* test_verb_name - names round-trip through the parser */
static void test_verb_name(void **state)
{
    static const enum smtp_verb verbs[] = {
        SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT, SMTP_RSET,
        SMTP_NOOP, SMTP_VRFY, SMTP_EXPN, SMTP_HELP, SMTP_QUIT, SMTP_STARTTLS, SMTP_AUTH,
    };

    (void)state;
    assert_string_equal(smtp_verb_name(SMTP_EHLO), "EHLO");
    assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
    assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "UNKNOWN");
    assert_string_equal(smtp_verb_name((enum smtp_verb)999), "UNKNOWN");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const char *name = smtp_verb_name(verbs[i]);
        struct smtp_command cmd;

        smtp_parse_command((const uint8_t *)name, strlen(name), &cmd);
        assert_int_equal(cmd.verb, verbs[i]);
    }
}

static void test_format_reject(void **state)
{
    char buf[128];
    (void)state;
    size_t n = smtp_format_reject("5.7.1 Service unavailable; client [%a] blocked using %l",
                                  "127.66.1.1", "bl.test,zen.test", buf, sizeof buf);
    assert_string_equal(buf, "550 5.7.1 Service unavailable; client [127.66.1.1] "
                             "blocked using bl.test,zen.test");
    assert_int_equal(n, strlen(buf));
    smtp_format_reject("100%% sure %a%", "::1", "-", buf, sizeof buf);
    assert_string_equal(buf, "550 100% sure ::1%");
    /* cut to fit, always terminated */
    n = smtp_format_reject("%l", "x", "abcdefghij", buf, 10);
    assert_string_equal(buf, "550 abcde");
    assert_int_equal(n, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_table),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_skip_line),
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_verb_name),
        cmocka_unit_test(test_format_reject),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
