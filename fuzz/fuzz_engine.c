/*
 * fuzz_engine - libFuzzer target for src/engine.c, playing the caller.
 *
 * Input: bytes 0 and 1 choose the read pattern and the parameters, the
 * rest is what the client sends.
 *   byte 0 bits 0-5  largest read: 1 + 8 * value bytes (each read's size is
 *                    drawn from a small generator seeded with byte 0)
 *   byte 0 bit 6     drain only part of the output between calls (a slow
 *                    client)
 *   byte 0 bit 7     output capacity ENGINE_REPLY_MAX + 1 instead of + 300
 *   byte 1 bit 0     a reject reply longer than ENGINE_REPLY_MAX
 *   byte 1 bit 1     a host name longer than the engine puts in replies
 * Unconsumed bytes are kept in front of the next read, as session.c does;
 * each call sees an exact-size heap copy and the output buffer is exactly
 * cap bytes, so ASan catches any access outside them.
 *
 * Invariants (abort on failure): consumed <= len; out.len <= out.cap; the
 * output is a sequence of reply lines "ddd[ -]text\r\n" (or "ddd\r\n") with
 * no stray CR or LF; a 5xx reply implies sent_5xx; once closing nothing more
 * is consumed; errors never pass ENGINE_MAX_ERRORS; a call with room in the
 * output that consumes nothing leaves only an incomplete line that may still
 * fit; at the end the output ends on a line boundary and holds one final
 * reply line per counted command plus the greeting.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "smtp.h"

struct fuzz_replies {
    size_t col;        /* bytes of the current line seen so far */
    uint8_t fourth;    /* the current line's fourth byte */
    bool cr;           /* the last byte was CR */
    unsigned finals;   /* complete final reply lines */
};

#define FUZZ_REJECT "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test"

struct fuzz_run {
    struct engine e;
    struct engine_params params;
    struct engine_output out;
    struct fuzz_replies replies;
    char long_reject[ENGINE_REPLY_MAX + 100];
    char long_host[700];
    uint32_t rand;
    bool partial_drain;
};

/* fuzz_check - abort (a crash libFuzzer reports) when an invariant fails */
static void fuzz_check(bool ok)
{
    if (!ok)
        abort();
}

/* fuzz_rand - a small linear congruential generator */
static uint32_t fuzz_rand(struct fuzz_run *r)
{
    r->rand = r->rand * 1103515245u + 12345u;
    return r->rand >> 16;
}

/* fuzz_reply_byte - follow one output byte through the reply-line grammar */
static void fuzz_reply_byte(struct fuzz_run *r, uint8_t c)
{
    struct fuzz_replies *v = &r->replies;

    fuzz_check(!v->cr || c == '\n');
    if (v->col < 3) {
        fuzz_check(c >= '0' && c <= '9');
        fuzz_check(v->col != 0 || c != '5' || r->e.sent_5xx);
    } else if (v->col == 3) {
        fuzz_check(c == ' ' || c == '-' || c == '\r');
        v->fourth = c;
    }
    fuzz_check(c != '\n' || v->cr);
    v->cr = c == '\r';
    v->col++;
    if (c == '\n') {
        v->finals += v->fourth != '-';
        v->col = 0;
    }
}

/* fuzz_drain - "write" some or all of the output */
static void fuzz_drain(struct fuzz_run *r)
{
    size_t n = r->out.len;

    fuzz_check(r->out.len <= r->out.cap);
    if (r->partial_drain && n > 1)
        n = 1 + fuzz_rand(r) % n;
    for (size_t i = 0; i < n; i++)
        fuzz_reply_byte(r, r->out.data[i]);
    memmove(r->out.data, r->out.data + n, r->out.len - n);
    r->out.len -= n;
}

/* fuzz_stalled - check that a call that consumed nothing had to stop */
static void fuzz_stalled(const struct fuzz_run *r, const uint8_t *in, size_t len,
                         bool was_closing, bool had_room)
{
    if (was_closing || len == 0)
        return;
    fuzz_check(r->e.bdat_skip == 0 && !r->e.skipping_line);
    if (!had_room)
        return;
    fuzz_check(memchr(in, '\n', len) == NULL && len <= SMTP_LINE_MAX + 1);
}

/* fuzz_call - one engine_input() on an exact-size copy of the pending bytes */
static size_t fuzz_call(struct fuzz_run *r, const uint8_t *pending, size_t len)
{
    uint8_t *in = malloc(len ? len : 1);
    bool was_closing = r->e.closing;
    bool had_room = r->out.cap - r->out.len >= ENGINE_REPLY_MAX;
    unsigned commands = r->e.commands;
    size_t n;

    fuzz_check(in != NULL);
    memcpy(in, pending, len);
    n = engine_input(&r->e, &r->params, in, len, &r->out);
    fuzz_check(n <= len && r->out.len <= r->out.cap);
    fuzz_check(!was_closing || (n == 0 && r->e.commands == commands));
    fuzz_check(r->e.errors <= ENGINE_MAX_ERRORS);
    fuzz_check(r->e.errors < ENGINE_MAX_ERRORS || r->e.closing);
    fuzz_check(r->e.commands >= commands);
    if (n == 0)
        fuzz_stalled(r, in, len, was_closing, had_room);
    free(in);
    return n;
}

/* fuzz_pump - call and drain until the engine waits for more input */
static size_t fuzz_pump(struct fuzz_run *r, const uint8_t *pending, size_t len)
{
    size_t done = 0;

    for (;;) {
        size_t n = fuzz_call(r, pending + done, len - done);

        done += n;
        if (n == 0 && r->out.len == 0)
            return done;
        fuzz_drain(r);
    }
}

/* fuzz_setup - parameters and output buffer as the two header bytes say */
static void fuzz_setup(struct fuzz_run *r, uint8_t pattern, uint8_t params)
{
    memset(r, 0, sizeof *r);
    memset(r->long_reject, 'r', sizeof r->long_reject - 1);
    memcpy(r->long_reject, FUZZ_REJECT, strlen(FUZZ_REJECT));
    memset(r->long_host, 'h', sizeof r->long_host - 1);
    r->params.reject_reply = (params & 1) ? r->long_reject : FUZZ_REJECT;
    r->params.hostname = (params & 2) ? r->long_host : "mx.fuzz.test";
    r->rand = pattern;
    r->partial_drain = (pattern & 0x40) != 0;
    r->out.cap = ENGINE_REPLY_MAX + ((pattern & 0x80) ? 1 : 300);
    r->out.data = malloc(r->out.cap);
    fuzz_check(r->out.data != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_run r;
    size_t start = 0, end = 0, max_read;

    if (size < 2)
        return 0;
    fuzz_setup(&r, data[0], data[1]);
    max_read = 1 + 8 * (size_t)(data[0] & 0x3f);
    data += 2;
    size -= 2;

    engine_init(&r.e);
    engine_greeting(&r.e, &r.params, &r.out);
    while (end < size) {
        size_t chunk = 1 + fuzz_rand(&r) % max_read;

        end += chunk < size - end ? chunk : size - end;
        start += fuzz_pump(&r, data + start, end - start);
    }
    r.partial_drain = false;
    fuzz_drain(&r);
    fuzz_check(r.replies.col == 0 && r.replies.finals == r.e.commands + 1);
    free(r.out.data);
    return 0;
}
