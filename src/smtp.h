/*
 * smtp - SMTP command-line framing and parsing, no I/O.
 *
 *   smtp_next_line()      find the next command line in a byte buffer
 *   smtp_parse_command()  one line -> verb and argument
 *   smtp_verb_name()      verb -> its upper-case name, for logs
 *   smtp_format_reject()  reject_message template -> the RCPT reply line
 *
 * A line ends at LF; a CR right before the LF is removed, so bare LF is
 * accepted as a line end (as most MTAs do) and the dialogue never loses its
 * place. Bytes are taken as they are: NUL and 8-bit octets are part of the
 * line and end up in an unknown verb or an argument, never in a crash.
 */
#ifndef BREAKWATER_SMTP_H
#define BREAKWATER_SMTP_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4 allows 512 octets per command line including CRLF; we
 * accept up to this many octets before the line end, as a margin for
 * sloppy clients, and reply 500 beyond it. */
#define SMTP_LINE_MAX 1000

enum smtp_verb {
    SMTP_UNKNOWN,
    SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT,
    SMTP_RSET, SMTP_NOOP, SMTP_VRFY, SMTP_EXPN, SMTP_HELP, SMTP_QUIT,
    SMTP_STARTTLS, SMTP_AUTH,
};

enum smtp_line_status {
    SMTP_LINE_INCOMPLETE, /* no line end yet and fewer than SMTP_LINE_MAX bytes */
    SMTP_LINE_COMPLETE,   /* a line: *line_len bytes without CR LF */
    SMTP_LINE_TOO_LONG,   /* more than SMTP_LINE_MAX bytes before the line end */
};

/* Looks for the next line in buf[0..len). On COMPLETE, *line_len is the
 * length without the line end and *consumed includes it. On TOO_LONG,
 * *consumed covers the line through its LF if there is one in buf, else all
 * of buf (the caller then discards input up to the next LF: see
 * smtp_skip_line()). On INCOMPLETE, *consumed is 0. */
enum smtp_line_status smtp_next_line(const uint8_t *buf, size_t len,
                                     size_t *line_len, size_t *consumed);

/* While discarding the rest of an overlong line: returns how many bytes of
 * buf[0..len) to drop and sets *done when the LF was among them. */
size_t smtp_skip_line(const uint8_t *buf, size_t len, int *done);

struct smtp_command {
    enum smtp_verb verb;
    const uint8_t *arg; /* after the verb and its spaces; points into the line */
    size_t arg_len;     /* trailing spaces removed */
};

/* Verbs are case-insensitive and end at a space or the end of the line
 * ("MAIL FROM:<a>" is verb MAIL, argument "FROM:<a>"). Never fails: an
 * unrecognised verb is SMTP_UNKNOWN. */
void smtp_parse_command(const uint8_t *line, size_t len, struct smtp_command *out);

const char *smtp_verb_name(enum smtp_verb verb);

/* Writes "550 " and the template with %a replaced by addr, %l by lists and
 * %% by '%' into buf (NUL-terminated, cut to fit). Any other '%' is copied
 * as it is (the config refuses such templates). Returns the length. */
size_t smtp_format_reject(const char *template, const char *addr,
                          const char *lists, char *buf, size_t size);

#endif
