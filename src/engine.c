/*
 * engine - the reject engine's SMTP dialogue for a listed client, no I/O
 * (contract: engine.h).
 *
 *   engine_init()      zero the dialogue state
 *   engine_greeting()  append "220 <hostname> ESMTP"
 *   engine_input()     frame lines (smtp.h), answer each from the command
 *                      table, append the replies in order
 *
 * The caller owns struct engine, the parameters and the output buffer; the
 * engine keeps no pointer to any of them between calls. Output must have
 * room for ENGINE_REPLY_MAX bytes for anything to be answered; a reply is
 * appended whole or not at all, so out->len never passes out->cap.
 *
 * Dialogue rules (RFC 5321 codes, RFC 3463 enhanced codes):
 *   - HELO is not needed before MAIL; EHLO/HELO and RSET end a transaction.
 *   - Every RCPT after MAIL gets params->reject_reply (cut at the first CR or
 *     LF and to ENGINE_REPLY_MAX with its CRLF). A reply that does not start
 *     with a 4xx/5xx code and a space is replaced by
 *     "550 5.7.1 Service unavailable".
 *   - DATA and BDAT never start a data phase: 503 before RCPT, 554 after.
 *     The octets of a well-formed BDAT chunk are discarded (bdat_skip). A
 *     malformed size gets 501 and nothing is discarded. A size above
 *     ENGINE_BDAT_MAX (100 MB) gets 552 5.3.4 and the engine closes: it will
 *     not read that much only to stay in step.
 *   - Errors: unknown verbs (502 5.5.2), not offered commands (EXPN,
 *     STARTTLS, AUTH: 502 5.5.1), bad syntax (501, or 500 for an empty line,
 *     a NUL in the line or a line over SMTP_LINE_MAX), bad sequence (503),
 *     refused DATA/BDAT (554) and refused recipients. The error that reaches
 *     ENGINE_MAX_ERRORS is answered with "421 4.7.0 <hostname> Error: too
 *     many errors" instead of its own reply, and the engine closes.
 *   - sent_5xx is set when an appended reply's code starts with 5 (so a
 *     configured 4xx reject reply counts as an error but bans nobody).
 *   - The host name is cut at the first CR or LF and to 255 octets, so no
 *     parameter can inject reply lines or overflow ENGINE_REPLY_MAX.
 *   - commands counts every answered line, overlong ones included.
 */
#include "engine.h"

#include "smtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ENGINE_HOST_MAX 255          /* longest host name put into replies */
#define ENGINE_BDAT_MAX 100000000u   /* largest BDAT chunk we skip, octets */
#define ENGINE_REJECT_DEFAULT "550 5.7.1 Service unavailable"

/* One command's reply, built before it is appended. */
struct engine_reply {
    char text[ENGINE_REPLY_MAX + 1]; /* + 1 for vsnprintf's NUL */
    size_t len;
    bool error; /* counts towards ENGINE_MAX_ERRORS */
};

typedef void engine_handler(struct engine *e, const struct engine_params *p,
                            const struct smtp_command *cmd, struct engine_reply *r);

/* engine_init - a new dialogue */
void engine_init(struct engine *e)
{
    memset(e, 0, sizeof *e);
}

/* engine_host_len - how much of the host name goes into replies */
static int engine_host_len(const struct engine_params *p)
{
    size_t n = strcspn(p->hostname, "\r\n");

    return (int)(n > ENGINE_HOST_MAX ? ENGINE_HOST_MAX : n);
}

/* engine_reply_set - format a reply (the format includes its CRLF) */
__attribute__((format(printf, 3, 4)))
static void engine_reply_set(struct engine_reply *r, bool error, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    /* cppcheck-suppress ctuuninitvar ; r->text is written here, not read */
    n = vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
    r->len = n < 0 ? 0 : (size_t)n;
    if (r->len > ENGINE_REPLY_MAX)
        r->len = ENGINE_REPLY_MAX;
    r->error = error;
}

/* engine_append - append a whole reply if it fits */
static void engine_append(struct engine_output *out, const struct engine_reply *r)
{
    if (out->len > out->cap || out->cap - out->len < r->len)
        return;
    memcpy(out->data + out->len, r->text, r->len);
    out->len += r->len;
}

/* engine_greeting - append the 220 greeting */
void engine_greeting(struct engine *e, const struct engine_params *p,
                     struct engine_output *out)
{
    struct engine_reply r;

    (void)e;
    engine_reply_set(&r, false, "220 %.*s ESMTP\r\n", engine_host_len(p), p->hostname);
    engine_append(out, &r);
}

/* engine_ascii_upper - upper-case an ASCII letter, leave other octets alone */
static uint8_t engine_ascii_upper(uint8_t c)
{
    return c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
}

/* engine_arg_is - does the argument equal word (upper case), ignoring case? */
static bool engine_arg_is(const uint8_t *arg, size_t len, const char *word)
{
    if (strlen(word) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (engine_ascii_upper(arg[i]) != (uint8_t)word[i])
            return false;
    return true;
}

/* engine_arg_path - is the argument "<prefix><something>", prefix in any case? */
static bool engine_arg_path(const struct smtp_command *cmd, const char *prefix)
{
    size_t n = strlen(prefix);

    return cmd->arg_len > n && engine_arg_is(cmd->arg, n, prefix);
}

/* engine_reset - end the mail transaction */
static void engine_reset(struct engine *e)
{
    e->seen_mail = false;
    e->seen_rcpt = false;
}

/* engine_helo - HELO <domain> */
static void engine_helo(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    if (cmd->arg_len == 0) {
        engine_reply_set(r, true, "501 5.5.4 Syntax: HELO hostname\r\n");
        return;
    }
    engine_reset(e);
    engine_reply_set(r, false, "250 %.*s\r\n", engine_host_len(p), p->hostname);
}

/* engine_ehlo - EHLO <domain>: the extensions we pretend to have */
static void engine_ehlo(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    if (cmd->arg_len == 0) {
        engine_reply_set(r, true, "501 5.5.4 Syntax: EHLO hostname\r\n");
        return;
    }
    engine_reset(e);
    engine_reply_set(r, false,
                     "250-%.*s\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                     "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
                     engine_host_len(p), p->hostname);
}

/* engine_mail - MAIL FROM:<path>: always accepted, to get to RCPT */
static void engine_mail(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)p;
    if (e->seen_mail) {
        engine_reply_set(r, true, "503 5.5.1 Error: nested MAIL command\r\n");
    } else if (!engine_arg_path(cmd, "FROM:")) {
        engine_reply_set(r, true, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
    } else {
        e->seen_mail = true;
        engine_reply_set(r, false, "250 2.1.0 Ok\r\n");
    }
}

/* engine_reject_len - usable length of the configured reject reply, 0 if it
 * is not a single 4xx/5xx reply line */
static size_t engine_reject_len(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strcspn(s, "\r\n");
    if (n > ENGINE_REPLY_MAX - 2)
        n = ENGINE_REPLY_MAX - 2;
    if (n < 3 || (s[0] != '4' && s[0] != '5'))
        return 0;
    if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
        return 0;
    return n == 3 || s[3] == ' ' ? n : 0;
}

/* engine_rcpt - RCPT TO:<path>: refused with the configured reply */
static void engine_rcpt(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    const char *reject = p->reject_reply;
    size_t n = engine_reject_len(reject);

    if (n == 0) {
        reject = ENGINE_REJECT_DEFAULT;
        n = strlen(reject);
    }
    if (!e->seen_mail) {
        engine_reply_set(r, true, "503 5.5.1 Error: need MAIL command\r\n");
    } else if (!engine_arg_path(cmd, "TO:")) {
        engine_reply_set(r, true, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
    } else {
        e->seen_rcpt = true;
        engine_reply_set(r, true, "%.*s\r\n", (int)n, reject);
    }
}

/* engine_refuse_data - the reply to DATA or BDAT: there is never a recipient */
static void engine_refuse_data(const struct engine *e, struct engine_reply *r)
{
    if (e->seen_rcpt)
        engine_reply_set(r, true, "554 5.5.1 Error: no valid recipients\r\n");
    else
        engine_reply_set(r, true, "503 5.5.1 Error: need RCPT command\r\n");
}

/* engine_data - DATA: refused, no 354 ever */
static void engine_data(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)p;
    (void)cmd;
    engine_refuse_data(e, r);
}

/* engine_bdat_size - parse "<chunk-size> [LAST]" (RFC 3030); sizes above
 * ENGINE_BDAT_MAX come out as ENGINE_BDAT_MAX + 1. False if malformed. */
static bool engine_bdat_size(const struct smtp_command *cmd, uint32_t *size)
{
    const uint8_t *a = cmd->arg;
    size_t i = 0;
    size_t rest;
    uint32_t v = 0;

    while (i < cmd->arg_len && a[i] >= '0' && a[i] <= '9') {
        if (v <= ENGINE_BDAT_MAX)
            v = v * 10 + (uint32_t)(a[i] - '0');
        i++;
    }
    if (i == 0 || (i < cmd->arg_len && a[i] != ' '))
        return false;
    rest = i;
    while (rest < cmd->arg_len && a[rest] == ' ')
        rest++;
    if (rest < cmd->arg_len && !engine_arg_is(a + rest, cmd->arg_len - rest, "LAST"))
        return false;
    *size = v > ENGINE_BDAT_MAX ? ENGINE_BDAT_MAX + 1 : v;
    return true;
}

/* engine_bdat - BDAT: refused like DATA; the chunk that follows is skipped */
static void engine_bdat(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    uint32_t size;

    (void)p;
    if (!engine_bdat_size(cmd, &size)) {
        engine_reply_set(r, true, "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
    } else if (size > ENGINE_BDAT_MAX) {
        engine_reply_set(r, true, "552 5.3.4 Error: chunk too big\r\n");
        e->closing = true;
    } else {
        e->bdat_skip = size;
        engine_refuse_data(e, r);
    }
}

/* engine_rset - RSET */
static void engine_rset(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)p;
    (void)cmd;
    engine_reset(e);
    engine_reply_set(r, false, "250 2.0.0 Ok\r\n");
}

/* engine_noop - NOOP */
static void engine_noop(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)e;
    (void)p;
    (void)cmd;
    engine_reply_set(r, false, "250 2.0.0 Ok\r\n");
}

/* engine_vrfy - VRFY: neither confirm nor deny (RFC 5321 3.5.3) */
static void engine_vrfy(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)e;
    (void)p;
    (void)cmd;
    engine_reply_set(r, false, "252 2.5.0 Cannot VRFY user\r\n");
}

/* engine_help - HELP */
static void engine_help(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)e;
    (void)p;
    (void)cmd;
    engine_reply_set(r, false, "214 2.0.0 See RFC 5321\r\n");
}

/* engine_quit - QUIT: say goodbye and close */
static void engine_quit(struct engine *e, const struct engine_params *p,
                        const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)p;
    (void)cmd;
    e->closing = true;
    engine_reply_set(r, false, "221 2.0.0 Bye\r\n");
}

/* engine_not_offered - EXPN, STARTTLS, AUTH: known, not implemented */
static void engine_not_offered(struct engine *e, const struct engine_params *p,
                               const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)e;
    (void)p;
    (void)cmd;
    engine_reply_set(r, true, "502 5.5.1 Error: command not implemented\r\n");
}

/* engine_unknown - anything else */
static void engine_unknown(struct engine *e, const struct engine_params *p,
                           const struct smtp_command *cmd, struct engine_reply *r)
{
    (void)e;
    (void)p;
    (void)cmd;
    engine_reply_set(r, true, "502 5.5.2 Error: command not recognized\r\n");
}

static const struct engine_command {
    enum smtp_verb verb;
    engine_handler *handler;
} engine_commands[] = {
    { SMTP_HELO, engine_helo },         { SMTP_EHLO, engine_ehlo },
    { SMTP_MAIL, engine_mail },         { SMTP_RCPT, engine_rcpt },
    { SMTP_DATA, engine_data },         { SMTP_BDAT, engine_bdat },
    { SMTP_RSET, engine_rset },         { SMTP_NOOP, engine_noop },
    { SMTP_VRFY, engine_vrfy },         { SMTP_EXPN, engine_not_offered },
    { SMTP_HELP, engine_help },         { SMTP_QUIT, engine_quit },
    { SMTP_STARTTLS, engine_not_offered }, { SMTP_AUTH, engine_not_offered },
};

/* engine_handler_for - the table entry for a verb, engine_unknown if none */
static engine_handler *engine_handler_for(enum smtp_verb verb)
{
    for (size_t i = 0; i < sizeof engine_commands / sizeof engine_commands[0]; i++)
        if (engine_commands[i].verb == verb)
            return engine_commands[i].handler;
    return engine_unknown;
}

/* engine_finish - count the command and its error, append its reply (or the
 * 421 that replaces it when it is one error too many) */
static void engine_finish(struct engine *e, const struct engine_params *p,
                          struct engine_reply *r, struct engine_output *out)
{
    e->commands++;
    if (r->error && ++e->errors >= ENGINE_MAX_ERRORS) {
        engine_reply_set(r, true, "421 4.7.0 %.*s Error: too many errors\r\n",
                         engine_host_len(p), p->hostname);
        e->closing = true;
    }
    if (r->len > 0 && r->text[0] == '5')
        e->sent_5xx = true;
    engine_append(out, r);
}

/* engine_line - answer one complete line */
static void engine_line(struct engine *e, const struct engine_params *p,
                        const uint8_t *line, size_t len, struct engine_output *out)
{
    struct engine_reply r;
    struct smtp_command cmd;

    if (len == 0 || memchr(line, '\0', len) != NULL) {
        engine_reply_set(&r, true, "500 5.5.2 Error: syntax error\r\n");
    } else {
        smtp_parse_command(line, len, &cmd);
        engine_handler_for(cmd.verb)(e, p, &cmd, &r);
    }
    engine_finish(e, p, &r, out);
}

/* engine_next_line - frame and answer the next line; returns the bytes
 * consumed, 0 while the line is incomplete */
static size_t engine_next_line(struct engine *e, const struct engine_params *p,
                               const uint8_t *in, size_t len,
                               struct engine_output *out)
{
    size_t line_len;
    size_t consumed;
    struct engine_reply r;

    switch (smtp_next_line(in, len, &line_len, &consumed)) {
    case SMTP_LINE_COMPLETE:
        engine_line(e, p, in, line_len, out);
        break;
    case SMTP_LINE_TOO_LONG:
        e->skipping_line = in[consumed - 1] != '\n';
        engine_reply_set(&r, true, "500 5.5.2 Error: line too long\r\n");
        engine_finish(e, p, &r, out);
        break;
    case SMTP_LINE_INCOMPLETE:
        break;
    }
    return consumed;
}

/* engine_discard - drop BDAT chunk octets or the rest of an overlong line */
static size_t engine_discard(struct engine *e, const uint8_t *in, size_t len)
{
    int done;
    size_t n;

    if (e->bdat_skip > 0) {
        n = len < e->bdat_skip ? len : e->bdat_skip;
        e->bdat_skip -= (uint32_t)n;
        return n;
    }
    n = smtp_skip_line(in, len, &done);
    if (done)
        e->skipping_line = false;
    return n;
}

/* engine_input - consume and answer what can be answered now */
size_t engine_input(struct engine *e, const struct engine_params *p,
                    const uint8_t *in, size_t len, struct engine_output *out)
{
    size_t pos = 0;

    while (pos < len && !e->closing) {
        size_t n;

        if (e->bdat_skip > 0 || e->skipping_line)
            n = engine_discard(e, in + pos, len - pos);
        else if (out->len > out->cap || out->cap - out->len < ENGINE_REPLY_MAX)
            break;
        else
            n = engine_next_line(e, p, in + pos, len - pos, out);
        if (n == 0)
            break;
        pos += n;
    }
    return pos;
}
