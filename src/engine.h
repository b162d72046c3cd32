/*
 * engine - the reject engine's SMTP dialogue for a listed client, no I/O.
 *
 * It speaks just enough SMTP to refuse every recipient with a 5xx: greeting,
 * EHLO/HELO, MAIL (250), RCPT (the reject reply), DATA/BDAT (554 after RCPT,
 * 503 before), RSET/NOOP (250), VRFY (252), QUIT (221). The caller owns the
 * socket: it passes the bytes it read and writes out what the engine put in
 * the output buffer.
 *
 *   engine_init()      a new dialogue
 *   engine_greeting()  append the 220 greeting
 *   engine_input()     consume client bytes, append replies
 *
 * Back-pressure: engine_input() stops consuming while the output buffer has
 * less than ENGINE_REPLY_MAX bytes free, so a pipelining flood is answered in
 * order at the pace the client reads, with bounded memory.
 */
#ifndef BREAKWATER_ENGINE_H
#define BREAKWATER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest reply the engine appends for one command (the EHLO list, or the
 * reject reply, which is truncated to fit). */
#define ENGINE_REPLY_MAX 600

/* Errors (unknown or malformed commands, bad sequence, overlong lines,
 * refused recipients) before the engine says 421 and closes. */
#define ENGINE_MAX_ERRORS 10

struct engine_params {
    const char *hostname;     /* for the greeting and EHLO */
    const char *reject_reply; /* the whole RCPT reply without CRLF, e.g.
                                 "550 5.7.1 Service unavailable; ..." */
};

struct engine_output {
    uint8_t *data;
    size_t len;
    size_t cap;
};

struct engine {
    uint8_t errors;
    bool seen_mail;          /* a MAIL transaction is open */
    bool seen_rcpt;          /* RCPT was given in this transaction */
    bool skipping_line;      /* discarding the rest of an overlong line */
    bool sent_5xx;           /* at least one 5xx reply has been appended */
    bool closing;            /* QUIT or too many errors: close after output */
    uint32_t bdat_skip;      /* BDAT chunk bytes still to discard */
    unsigned commands;       /* commands answered, for the session log */
};

void engine_init(struct engine *e);
/* Appends "220 <hostname> ESMTP\r\n". */
void engine_greeting(struct engine *e, const struct engine_params *p,
                     struct engine_output *out);
/* Consumes as much of in[0..len) as it can answer now and returns how many
 * bytes that was. An incomplete last line is not consumed (call again when
 * more bytes arrived, with those bytes kept in front). Stops consuming once
 * e->closing is set. */
size_t engine_input(struct engine *e, const struct engine_params *p,
                    const uint8_t *in, size_t len, struct engine_output *out);

#endif
