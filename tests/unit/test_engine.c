/*
 * test_engine - unit tests for src/engine.c, driven by whole SMTP dialogues:
 * input bytes -> the exact reply bytes and the final engine state. A small
 * harness plays the caller (session.c): it keeps unconsumed bytes in front
 * of the next read and drains the output buffer after every call. Each
 * dialogue is replayed in one piece and split into 1, 2 and 7 byte reads,
 * which must all give the same transcript. Further tests: a pipelined batch
 * in one call, lines split across calls, overlong lines, binary junk, the
 * error limit, QUIT, back-pressure with a tiny output buffer, BDAT chunks,
 * and the reject reply's truncation and validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "smtp.h"

#define HOST "mx.test"
#define REJECT "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test"

#define R_GREETING "220 " HOST " ESMTP\r\n"
#define R_EHLO "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n" \
               "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define R_HELO "250 " HOST "\r\n"
#define R_MAIL "250 2.1.0 Ok\r\n"
#define R_OK "250 2.0.0 Ok\r\n"
#define R_REJECT REJECT "\r\n"
#define R_NEED_MAIL "503 5.5.1 Error: need MAIL command\r\n"
#define R_NEED_RCPT "503 5.5.1 Error: need RCPT command\r\n"
#define R_NO_RCPT "554 5.5.1 Error: no valid recipients\r\n"
#define R_NESTED "503 5.5.1 Error: nested MAIL command\r\n"
#define R_SYN_HELO "501 5.5.4 Syntax: HELO hostname\r\n"
#define R_SYN_EHLO "501 5.5.4 Syntax: EHLO hostname\r\n"
#define R_SYN_MAIL "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
#define R_SYN_RCPT "501 5.5.4 Syntax: RCPT TO:<address>\r\n"
#define R_SYN_BDAT "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n"
#define R_BIG "552 5.3.4 Error: chunk too big\r\n"
#define R_UNKNOWN "502 5.5.2 Error: command not recognized\r\n"
#define R_NOT_IMPL "502 5.5.1 Error: command not implemented\r\n"
#define R_SYNTAX "500 5.5.2 Error: syntax error\r\n"
#define R_LONG "500 5.5.2 Error: line too long\r\n"
#define R_VRFY "252 2.5.0 Cannot VRFY user\r\n"
#define R_HELP "214 2.0.0 See RFC 5321\r\n"
#define R_BYE "221 2.0.0 Bye\r\n"
#define R_421 "421 4.7.0 " HOST " Error: too many errors\r\n"

#define BYTES(s) (s), sizeof(s) - 1
#define X9(s) s s s s s s s s s

static const struct engine_params params = { HOST, REJECT };

/* The caller's side of a dialogue. */
struct session {
    struct engine e;
    struct engine_output out;
    uint8_t outbuf[4096];
    uint8_t pending[16384];
    size_t pending_len;
    char transcript[65536];
    size_t transcript_len;
    unsigned calls;
};

/* session_new - a fresh dialogue with an output buffer of cap bytes */
static struct session *session_new(size_t cap)
{
    struct session *s = calloc(1, sizeof *s);

    assert_non_null(s);
    assert_true(cap <= sizeof s->outbuf);
    engine_init(&s->e);
    s->out.data = s->outbuf;
    s->out.cap = cap;
    return s;
}

/* session_drain - "write" the whole output buffer into the transcript */
static void session_drain(struct session *s)
{
    assert_true(s->out.len <= s->out.cap);
    assert_true(s->transcript_len + s->out.len <= sizeof s->transcript);
    memcpy(s->transcript + s->transcript_len, s->out.data, s->out.len);
    s->transcript_len += s->out.len;
    s->out.len = 0;
}

/* session_call - one engine_input() on the pending bytes, as session.c would */
static size_t session_call(struct session *s, const struct engine_params *p)
{
    size_t n = engine_input(&s->e, p, s->pending, s->pending_len, &s->out);

    s->calls++;
    assert_true(n <= s->pending_len);
    assert_true(s->out.len <= s->out.cap);
    memmove(s->pending, s->pending + n, s->pending_len - n);
    s->pending_len -= n;
    return n;
}

/* session_read - bytes arrive; answer until the engine wants more */
static void session_read(struct session *s, const struct engine_params *p,
                         const char *in, size_t len)
{
    assert_true(s->pending_len + len <= sizeof s->pending);
    memcpy(s->pending + s->pending_len, in, len);
    s->pending_len += len;
    for (;;) {
        size_t n = session_call(s, p);

        session_drain(s);
        if (n == 0)
            break;
    }
}

/* session_read_split - the same bytes arriving in reads of chunk bytes */
static void session_read_split(struct session *s, const struct engine_params *p,
                               const char *in, size_t len, size_t chunk)
{
    for (size_t off = 0; off < len; off += chunk)
        session_read(s, p, in + off, len - off < chunk ? len - off : chunk);
}

/* check_reply_lines - every line is "ddd", "ddd text" or "ddd-text" + CRLF */
static void check_reply_lines(const char *t, size_t len)
{
    size_t start = 0;

    assert_true(len == 0 || (len >= 2 && t[len - 2] == '\r' && t[len - 1] == '\n'));
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '\n')
            continue;
        assert_true(i >= start + 4 && t[i - 1] == '\r');
        for (size_t d = start; d < start + 3; d++)
            assert_true(t[d] >= '0' && t[d] <= '9');
        assert_true(t[start + 3] == ' ' || t[start + 3] == '-' || i == start + 4);
        assert_null(memchr(t + start, '\r', i - 1 - start));
        start = i + 1;
    }
}

/* assert_transcript - the transcript is exactly the expected bytes */
static void assert_transcript(const struct session *s, const char *name, const char *expected)
{
    size_t len = strlen(expected);

    if (s->transcript_len != len || memcmp(s->transcript, expected, len) != 0)
        print_message("%s: got\n%.*s\nexpected\n%s\n", name, (int)s->transcript_len,
                      s->transcript, expected);
    assert_int_equal(s->transcript_len, len);
    assert_memory_equal(s->transcript, expected, len);
    check_reply_lines(s->transcript, s->transcript_len);
}

struct dialogue {
    const char *name;
    const char *in;
    size_t in_len;
    const char *out;
    size_t unconsumed; /* bytes the engine must leave unread at the end */
    unsigned commands;
    unsigned errors;
    bool sent_5xx;
    bool closing;
};

static const struct dialogue dialogues[] = {
    { "bot with EHLO",
      BYTES("EHLO bot.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
            "DATA\r\nQUIT\r\n"),
      R_EHLO R_MAIL R_REJECT R_NO_RCPT R_BYE, 0, 5, 2, true, true },
    { "bot with HELO",
      BYTES("HELO bot.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
            "RSET\r\nQUIT\r\n"),
      R_HELO R_MAIL R_REJECT R_OK R_BYE, 0, 5, 1, true, true },
    { "MAIL without HELO", BYTES("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"),
      R_MAIL R_REJECT, 0, 2, 1, true, false },
    { "lower case, spaces, null sender",
      BYTES("ehlo x\r\nmail from: <a@b> SIZE=100\r\nrset\r\nMAIL FROM:<>\r\nrcpt To: <c@d>  \r\n"),
      R_EHLO R_MAIL R_OK R_MAIL R_REJECT, 0, 5, 1, true, false },
    { "no 5xx before RCPT", BYTES("EHLO x\r\nMAIL FROM:<a@b>\r\nNOOP\r\n"),
      R_EHLO R_MAIL R_OK, 0, 3, 0, false, false },
    { "hello without argument", BYTES("EHLO\r\nHELO   \r\nHELO x\r\n"),
      R_SYN_EHLO R_SYN_HELO R_HELO, 0, 3, 2, true, false },
    { "nested MAIL", BYTES("MAIL FROM:<a>\r\nMAIL FROM:<b>\r\n"),
      R_MAIL R_NESTED, 0, 2, 1, true, false },
    { "MAIL syntax", BYTES("MAIL TO:<a>\r\nMAIL FROM:\r\nMAIL FROM:  \r\nMAIL\r\nMAIL FROM<a>\r\n"),
      R_SYN_MAIL R_SYN_MAIL R_SYN_MAIL R_SYN_MAIL R_SYN_MAIL, 0, 5, 5, true, false },
    { "RCPT before MAIL", BYTES("RCPT TO:<a>\r\n"), R_NEED_MAIL, 0, 1, 1, true, false },
    { "RCPT syntax", BYTES("MAIL FROM:<a>\r\nRCPT FROM:<a>\r\nRCPT TO:\r\nRCPT\r\n"),
      R_MAIL R_SYN_RCPT R_SYN_RCPT R_SYN_RCPT, 0, 4, 3, true, false },
    { "DATA before RCPT", BYTES("DATA\r\nMAIL FROM:<a>\r\nDATA\r\n"),
      R_NEED_RCPT R_MAIL R_NEED_RCPT, 0, 3, 2, true, false },
    { "DATA after RCPT stays out of data mode",
      BYTES("MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nSubject: x\r\n.\r\n"),
      R_MAIL R_REJECT R_NO_RCPT R_UNKNOWN R_UNKNOWN, 0, 5, 4, true, false },
    { "RSET ends the transaction", BYTES("MAIL FROM:<a>\r\nRSET\r\nRCPT TO:<b>\r\n"),
      R_MAIL R_OK R_NEED_MAIL, 0, 3, 1, true, false },
    { "EHLO ends the transaction",
      BYTES("MAIL FROM:<a>\r\nRCPT TO:<b>\r\nEHLO x\r\nDATA\r\nRCPT TO:<b>\r\n"),
      R_MAIL R_REJECT R_EHLO R_NEED_RCPT R_NEED_MAIL, 0, 5, 3, true, false },
    { "HELO ends the transaction", BYTES("MAIL FROM:<a>\r\nHELO x\r\nMAIL FROM:<b>\r\n"),
      R_MAIL R_HELO R_MAIL, 0, 3, 0, false, false },
    { "other commands",
      BYTES("NOOP\r\nVRFY root\r\nEXPN staff\r\nHELP\r\nSTARTTLS\r\nAUTH PLAIN AGEAYg==\r\n"
            "XYZZY\r\n"),
      R_OK R_VRFY R_NOT_IMPL R_HELP R_NOT_IMPL R_NOT_IMPL R_UNKNOWN, 0, 7, 4, true, false },
    { "bare LF", BYTES("EHLO x\nMAIL FROM:<a>\nRCPT TO:<b>\r\nQUIT\n"),
      R_EHLO R_MAIL R_REJECT R_BYE, 0, 4, 1, true, true },
    { "NUL in a line", BYTES("NO\0OP\r\nMAIL FROM:<a\0>\r\nNOOP\r\n"),
      R_SYNTAX R_SYNTAX R_OK, 0, 3, 2, true, false },
    { "8-bit verb", BYTES("H\xc9LO x\r\n\xff\xfe\r\n"), R_UNKNOWN R_UNKNOWN, 0, 2, 2, true, false },
    { "empty lines", BYTES("\r\n\n"), R_SYNTAX R_SYNTAX, 0, 2, 2, true, false },
    { "stray CR", BYTES("NOOP\r\r\n"), R_UNKNOWN, 0, 1, 1, true, false },
    { "incomplete last line", BYTES("NOOP\r\nNOOP"), R_OK, 4, 1, 0, false, false },
    { "QUIT stops consumption", BYTES("QUIT\r\nNOOP\r\nXYZZY\r\n"), R_BYE, 13, 1, 0, false, true },
    { "error limit",
      BYTES(X9("XYZZY\r\n") "XYZZY\r\nNOOP\r\n"),
      X9(R_UNKNOWN) R_421, 6, 10, 10, true, true },
    { "error limit by recipients",
      BYTES("MAIL FROM:<a>\r\n" X9("RCPT TO:<b>\r\n") "RCPT TO:<b>\r\nRCPT TO:<b>\r\n"),
      R_MAIL X9(R_REJECT) R_421, 13, 11, 10, true, true },
    { "BDAT before RCPT skips the chunk", BYTES("BDAT 5\r\nQUIT\nNOOP\r\n"),
      R_NEED_RCPT R_OK, 0, 2, 1, true, false },
    { "BDAT after RCPT skips the chunk",
      BYTES("MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n"),
      R_MAIL R_REJECT R_NO_RCPT R_OK, 0, 4, 2, true, false },
    { "BDAT 0 LAST", BYTES("bdat 0 last\r\nNOOP\r\n"), R_NEED_RCPT R_OK, 0, 2, 1, true, false },
    { "BDAT two chunks", BYTES("BDAT 3\r\nabcBDAT 2 LAST\r\nxyNOOP\r\n"),
      R_NEED_RCPT R_NEED_RCPT R_OK, 0, 3, 2, true, false },
    { "BDAT malformed skips nothing",
      BYTES("BDAT x\r\nBDAT\r\nBDAT 5x\r\nBDAT 5 FIRST\r\nBDAT -1\r\nBDAT 5 LAST x\r\nNOOP\r\n"),
      R_SYN_BDAT R_SYN_BDAT R_SYN_BDAT R_SYN_BDAT R_SYN_BDAT R_SYN_BDAT R_OK, 0, 7, 6, true, false },
    { "BDAT over the cap closes", BYTES("BDAT 100000001\r\nNOOP\r\n"), R_BIG, 6, 1, 1, true, true },
    { "BDAT size overflow", BYTES("BDAT 99999999999999999999999 LAST\r\nNOOP\r\n"),
      R_BIG, 6, 1, 1, true, true },
    { "BDAT size that wraps 32 bits", BYTES("BDAT 4294967296\r\nNOOP\r\n"),
      R_BIG, 6, 1, 1, true, true },
};

/* check_dialogue - replay one dialogue with reads of chunk bytes */
static void check_dialogue(const struct dialogue *d, size_t chunk)
{
    struct session *s = session_new(sizeof s->outbuf);

    session_read_split(s, &params, d->in, d->in_len, chunk);
    assert_transcript(s, d->name, d->out);
    assert_int_equal(s->pending_len, d->unconsumed);
    assert_int_equal(s->e.commands, d->commands);
    assert_int_equal(s->e.errors, d->errors);
    assert_int_equal(s->e.sent_5xx, d->sent_5xx);
    assert_int_equal(s->e.closing, d->closing);
    assert_false(s->e.skipping_line);
    assert_int_equal(s->e.bdat_skip, 0);
    free(s);
}

/* test_dialogues - the table, whole and split into small reads */
static void test_dialogues(void **state)
{
    static const size_t chunks[] = { SIZE_MAX, 1, 2, 7 };

    (void)state;
    for (size_t i = 0; i < sizeof dialogues / sizeof dialogues[0]; i++)
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
            check_dialogue(&dialogues[i], chunks[c]);
}

/* test_greeting - the 220 line, and a host name that cannot inject lines */
static void test_greeting(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);
    struct engine_params evil = { "evil.test\r\n250 injected", REJECT };
    char longhost[400];

    (void)state;
    engine_greeting(&s->e, &params, &s->out);
    session_drain(s);
    assert_transcript(s, "greeting", R_GREETING);

    s->transcript_len = 0;
    engine_greeting(&s->e, &evil, &s->out);
    session_drain(s);
    assert_transcript(s, "evil greeting", "220 evil.test ESMTP\r\n");

    memset(longhost, 'h', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    evil.hostname = longhost;
    s->transcript_len = 0;
    engine_greeting(&s->e, &evil, &s->out);
    session_drain(s);
    assert_int_equal(s->transcript_len, 4 + 255 + 8);
    check_reply_lines(s->transcript, s->transcript_len);
    assert_int_equal(s->e.commands, 0);
    free(s);
}

/* test_pipelined_one_call - a whole batch is answered by one call */
static void test_pipelined_one_call(void **state)
{
    static const char in[] = "EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\n"
                             "DATA\r\nRSET\r\nNOOP\r\nQUIT\r\n";
    static const char out[] = R_EHLO R_MAIL R_REJECT R_REJECT R_NO_RCPT R_OK R_OK R_BYE;
    uint8_t buf[4096];
    struct engine_output o = { buf, 0, sizeof buf };
    struct engine e;

    (void)state;
    engine_init(&e);
    assert_int_equal(engine_input(&e, &params, (const uint8_t *)in, sizeof in - 1, &o),
                     sizeof in - 1);
    assert_int_equal(o.len, sizeof out - 1);
    assert_memory_equal(buf, out, sizeof out - 1);
    assert_int_equal(e.commands, 8);
    assert_true(e.closing);
}

/* test_crlf_split - "NOOP\r" waits for its LF, then is answered once */
static void test_crlf_split(void **state)
{
    uint8_t buf[1024];
    struct engine_output o = { buf, 0, sizeof buf };
    struct engine e;

    (void)state;
    engine_init(&e);
    assert_int_equal(engine_input(&e, &params, (const uint8_t *)"NOOP\r", 5, &o), 0);
    assert_int_equal(o.len, 0);
    assert_int_equal(e.commands, 0);
    assert_int_equal(engine_input(&e, &params, (const uint8_t *)"NOOP\r\n", 6, &o), 6);
    assert_int_equal(o.len, strlen(R_OK));
    assert_memory_equal(buf, R_OK, strlen(R_OK));
    assert_int_equal(e.commands, 1);
}

/* test_overlong_split - an overlong line over three reads: one 500 reply */
static void test_overlong_split(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);
    char a[700];

    (void)state;
    memset(a, 'A', sizeof a);
    session_read(s, &params, a, sizeof a);
    assert_int_equal(s->pending_len, sizeof a); /* may still end in time */
    assert_int_equal(s->transcript_len, 0);
    session_read(s, &params, a, sizeof a);
    assert_int_equal(s->pending_len, 0);        /* 1400 > SMTP_LINE_MAX: dropped */
    assert_true(s->e.skipping_line);
    session_read(s, &params, a, sizeof a);
    assert_int_equal(s->pending_len, 0);
    assert_true(s->e.skipping_line);
    session_read(s, &params, BYTES("AAA\r\nNOOP\r\n"));
    assert_false(s->e.skipping_line);
    assert_transcript(s, "overlong split", R_LONG R_OK);
    assert_int_equal(s->e.errors, 1);
    assert_int_equal(s->e.commands, 2);
    assert_true(s->e.sent_5xx);
    free(s);
}

/* test_line_limit - SMTP_LINE_MAX octets pass, one more is too long */
static void test_line_limit(void **state)
{
    char line[SMTP_LINE_MAX + 16];
    struct session *s = session_new(sizeof s->outbuf);

    (void)state;
    memcpy(line, "HELO ", 5);
    memset(line + 5, 'a', SMTP_LINE_MAX - 5);
    memcpy(line + SMTP_LINE_MAX, "\r\n", 2);
    session_read(s, &params, line, SMTP_LINE_MAX + 2);
    memcpy(line + SMTP_LINE_MAX, "a\r\nNOOP\r\n", 9);
    session_read(s, &params, line, SMTP_LINE_MAX + 9);
    assert_transcript(s, "line limit", R_HELO R_LONG R_OK);
    assert_false(s->e.skipping_line);
    free(s);
}

/* lcg - a fixed pseudo-random sequence for junk input */
static uint8_t lcg(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return (uint8_t)(*x >> 16);
}

/* test_binary_junk - random octets end in 421 after ENGINE_MAX_ERRORS lines */
static void test_binary_junk(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);
    char junk[8192];
    uint32_t x = 1;
    unsigned lines = 0;

    (void)state;
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (char)lcg(&x);
        lines += junk[i] == '\n';
    }
    assert_true(lines > ENGINE_MAX_ERRORS);
    session_read_split(s, &params, junk, sizeof junk, 100);
    check_reply_lines(s->transcript, s->transcript_len);
    assert_true(s->e.closing);
    assert_true(s->e.sent_5xx);
    assert_int_equal(s->e.errors, ENGINE_MAX_ERRORS);
    assert_int_equal(s->e.commands, ENGINE_MAX_ERRORS);
    assert_true(s->transcript_len > strlen(R_421));
    assert_memory_equal(s->transcript + s->transcript_len - strlen(R_421), R_421, strlen(R_421));
    assert_true(s->pending_len > 0);
    free(s);
}

/* test_junk_without_lf - endless junk costs one 500 and no memory */
static void test_junk_without_lf(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);
    char junk[5000];
    uint32_t x = 7;

    (void)state;
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (char)lcg(&x);
        if (junk[i] == '\n')
            junk[i] = 'x';
    }
    for (int round = 0; round < 4; round++)
        session_read_split(s, &params, junk, sizeof junk, 333);
    assert_transcript(s, "junk without LF", R_LONG);
    assert_true(s->e.skipping_line);
    assert_true(s->pending_len <= SMTP_LINE_MAX + 1);
    free(s);
}

/* test_closed_consumes_nothing - after closing, every call returns 0 */
static void test_closed_consumes_nothing(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);

    (void)state;
    session_read(s, &params, BYTES("QUIT\r\n"));
    assert_true(s->e.closing);
    assert_int_equal(s->pending_len, 0);
    session_read(s, &params, BYTES("NOOP\r\nBDAT 1\r\n"));
    assert_int_equal(s->pending_len, 14);
    assert_int_equal(session_call(s, &params), 0);
    assert_transcript(s, "closed", R_BYE);
    assert_int_equal(s->e.commands, 1);
    free(s);
}

/* append_command - add one command and its expected reply */
static void append_command(char *in, char *out, unsigned i)
{
    static const char *const cmds[] = { "NOOP", "VRFY u", "EHLO x", "MAIL FROM:<a>", "HELP",
                                        "RSET" };
    static const char *const replies[] = { R_OK, R_VRFY, R_EHLO, R_MAIL, R_HELP, R_OK };
    unsigned k = i % 6;

    strcat(in, cmds[k]);
    strcat(in, "\r\n");
    strcat(out, replies[k]);
}

/* test_back_pressure - a 50-command pipeline through a tiny output buffer:
 * one reply per call, all in order, never past the buffer's end */
static void test_back_pressure(void **state)
{
    struct session *s = session_new(ENGINE_REPLY_MAX + 10);
    char in[2048] = "";
    char out[8192] = "";
    size_t first_line;

    (void)state;
    for (unsigned i = 0; i < 50; i++)
        append_command(in, out, i);
    first_line = strlen("NOOP\r\n");
    memcpy(s->pending, in, strlen(in));
    s->pending_len = strlen(in);

    assert_int_equal(session_call(s, &params), first_line);
    assert_int_equal(s->out.len, strlen(R_OK));
    /* not drained: the buffer has less than ENGINE_REPLY_MAX free */
    assert_int_equal(session_call(s, &params), 0);
    assert_int_equal(s->out.len, strlen(R_OK));
    session_drain(s);
    while (s->pending_len > 0) {
        assert_true(session_call(s, &params) > 0);
        session_drain(s);
    }
    assert_int_equal(s->calls, 51);
    assert_transcript(s, "back-pressure", out);
    assert_int_equal(s->e.commands, 50);
    assert_int_equal(s->e.errors, 0);
    free(s);
}

/* test_discard_without_room - skipping needs no output room, answering does */
static void test_discard_without_room(void **state)
{
    struct session *s = session_new(ENGINE_REPLY_MAX + 10);

    (void)state;
    session_read(s, &params, BYTES("BDAT 10\r\n"));
    assert_int_equal(s->e.bdat_skip, 10);
    s->out.len = 11; /* pretend an unwritten reply: 599 bytes free */
    memcpy(s->pending, "0123456789NOOP\r\n", 16);
    s->pending_len = 16;
    assert_int_equal(session_call(s, &params), 10);
    assert_int_equal(s->e.bdat_skip, 0);
    assert_int_equal(s->out.len, 11);
    assert_int_equal(s->pending_len, 6);
    s->out.len = 0;
    assert_int_equal(session_call(s, &params), 6);
    assert_memory_equal(s->out.data, R_OK, strlen(R_OK));
    free(s);
}

/* test_bdat_chunk_split - a chunk arriving over several reads */
static void test_bdat_chunk_split(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);

    (void)state;
    session_read(s, &params, BYTES("BDAT 10 LAST\r\n01234"));
    assert_int_equal(s->e.bdat_skip, 5);
    assert_int_equal(s->pending_len, 0);
    session_read(s, &params, BYTES("567"));
    assert_int_equal(s->e.bdat_skip, 2);
    session_read(s, &params, BYTES("89NOOP\r\n"));
    assert_int_equal(s->e.bdat_skip, 0);
    assert_transcript(s, "bdat split", R_NEED_RCPT R_OK);
    free(s);
}

/* test_bdat_cap - the largest chunk that is still skipped */
static void test_bdat_cap(void **state)
{
    struct session *s = session_new(sizeof s->outbuf);

    (void)state;
    session_read(s, &params, BYTES("BDAT 100000000\r\nNOOP\r\n"));
    assert_int_equal(s->e.bdat_skip, 100000000 - 6);
    assert_false(s->e.closing);
    assert_transcript(s, "bdat cap", R_NEED_RCPT);
    free(s);
}

/* rcpt_reply - the transcript of MAIL + RCPT with the given reject reply */
static struct session *rcpt_reply(const char *reject)
{
    struct engine_params p = { HOST, reject };
    struct session *s = session_new(sizeof s->outbuf);

    session_read(s, &p, BYTES("MAIL FROM:<a>\r\nRCPT TO:<b>\r\n"));
    return s;
}

/* test_reject_truncated - a long reject reply is cut to ENGINE_REPLY_MAX
 * octets with its CRLF; one that fits is sent whole */
static void test_reject_truncated(void **state)
{
    static const size_t lengths[] = { 10, ENGINE_REPLY_MAX - 3, ENGINE_REPLY_MAX - 2,
                                      ENGINE_REPLY_MAX - 1, ENGINE_REPLY_MAX, 799 };
    char reject[800];
    char expected[ENGINE_REPLY_MAX + 32];

    (void)state;
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        size_t len = lengths[i];
        size_t sent = len < ENGINE_REPLY_MAX - 2 ? len : ENGINE_REPLY_MAX - 2;
        struct session *s;

        memset(reject, 'x', len);
        memcpy(reject, "550 5.7.1 ", 10);
        reject[len] = '\0';
        s = rcpt_reply(reject);
        snprintf(expected, sizeof expected, R_MAIL "%.*s\r\n", (int)sent, reject);
        assert_transcript(s, "long reject", expected);
        assert_int_equal(s->transcript_len - strlen(R_MAIL), sent + 2);
        free(s);
    }
}

/* test_reject_validated - the reject reply is one 4xx/5xx line or the default */
static void test_reject_validated(void **state)
{
    static const struct {
        const char *reject;
        const char *reply;
    } cases[] = {
        { "550 5.7.1 a\r\n250 2.0.0 injected", "550 5.7.1 a\r\n" },
        { "554", "554\r\n" },
        { "hello", "550 5.7.1 Service unavailable\r\n" },
        { "250 2.1.5 Ok", "550 5.7.1 Service unavailable\r\n" },
        { "550-5.7.1 first of many", "550 5.7.1 Service unavailable\r\n" },
        { "5x0 bad", "550 5.7.1 Service unavailable\r\n" },
        { "", "550 5.7.1 Service unavailable\r\n" },
        { NULL, "550 5.7.1 Service unavailable\r\n" },
    };
    char expected[256];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct session *s = rcpt_reply(cases[i].reject);

        snprintf(expected, sizeof expected, R_MAIL "%s", cases[i].reply);
        assert_transcript(s, cases[i].reject ? cases[i].reject : "NULL", expected);
        assert_true(s->e.sent_5xx);
        free(s);
    }
}

/* test_reject_4xx - a temporary refusal counts as an error but is no 5xx */
static void test_reject_4xx(void **state)
{
    struct session *s = rcpt_reply("450 4.7.1 Try again later");

    (void)state;
    assert_transcript(s, "4xx reject", R_MAIL "450 4.7.1 Try again later\r\n");
    assert_false(s->e.sent_5xx);
    assert_int_equal(s->e.errors, 1);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dialogues),
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_pipelined_one_call),
        cmocka_unit_test(test_crlf_split),
        cmocka_unit_test(test_overlong_split),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_binary_junk),
        cmocka_unit_test(test_junk_without_lf),
        cmocka_unit_test(test_closed_consumes_nothing),
        cmocka_unit_test(test_back_pressure),
        cmocka_unit_test(test_discard_without_room),
        cmocka_unit_test(test_bdat_chunk_split),
        cmocka_unit_test(test_bdat_cap),
        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_validated),
        cmocka_unit_test(test_reject_4xx),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
