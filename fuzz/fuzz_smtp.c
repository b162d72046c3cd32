/*
 * fuzz_smtp - libFuzzer target for src/smtp.c.
 *
 * The input is a byte stream from a client. It is framed the way the engine
 * frames it (smtp_next_line, smtp_skip_line after an overlong line) and
 * every complete line is parsed from an exact-size heap copy, so ASan sees
 * any read past the line. Checked: consumed stays within the buffer and
 * ends at the first LF; lines hold no LF and respect SMTP_LINE_MAX;
 * TOO_LONG only when the line cannot fit, INCOMPLETE only while it still
 * may; the argument lies inside the line without surrounding blanks; a
 * recognised verb is really spelt at the start of the line. The whole
 * input is also parsed as one line. A failed check aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp.h"

/* fuzz_check - abort (a crash libFuzzer reports) when an invariant fails */
static void fuzz_check(bool ok)
{
    if (!ok)
        abort();
}

/* fuzz_upper - ASCII upper case */
static uint8_t fuzz_upper(uint8_t c)
{
    return c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
}

/* fuzz_parse - parse one line and check the result against the bytes */
static void fuzz_parse(const uint8_t *line, size_t len)
{
    struct smtp_command cmd;
    const char *name;
    size_t n;

    smtp_parse_command(line, len, &cmd);
    fuzz_check(cmd.arg >= line && cmd.arg_len <= len);
    fuzz_check((size_t)(cmd.arg - line) + cmd.arg_len <= len);
    if (cmd.arg_len > 0) {
        fuzz_check(cmd.arg[0] != ' ' && cmd.arg[0] != '\t');
        fuzz_check(cmd.arg[cmd.arg_len - 1] != ' ' && cmd.arg[cmd.arg_len - 1] != '\t');
    }
    name = smtp_verb_name(cmd.verb);
    fuzz_check(name != NULL);
    if (cmd.verb == SMTP_UNKNOWN) {
        fuzz_check(strcmp(name, "UNKNOWN") == 0);
        return;
    }
    n = strlen(name);
    fuzz_check(len >= n && (len == n || line[n] == ' '));
    for (size_t i = 0; i < n; i++)
        fuzz_check(fuzz_upper(line[i]) == (uint8_t)name[i]);
}

/* fuzz_line - check and parse one COMPLETE line */
static void fuzz_line(const uint8_t *buf, size_t rest, size_t line_len, size_t consumed)
{
    uint8_t *copy;

    fuzz_check(line_len <= SMTP_LINE_MAX);
    fuzz_check(consumed <= rest && buf[consumed - 1] == '\n');
    fuzz_check(consumed == line_len + 1 || (consumed == line_len + 2 && buf[line_len] == '\r'));
    fuzz_check(line_len == 0 || memchr(buf, '\n', line_len) == NULL);
    copy = malloc(line_len ? line_len : 1);
    fuzz_check(copy != NULL);
    memcpy(copy, buf, line_len);
    fuzz_parse(copy, line_len);
    free(copy);
}

/* fuzz_too_long - check a TOO_LONG result; returns whether the LF is still
 * to come */
static bool fuzz_too_long(const uint8_t *buf, size_t rest, size_t consumed)
{
    const uint8_t *lf = memchr(buf, '\n', rest);
    size_t content;

    if (lf == NULL) {
        content = rest - (buf[rest - 1] == '\r');
        fuzz_check(consumed == rest && content > SMTP_LINE_MAX);
        return true;
    }
    content = (size_t)(lf - buf);
    fuzz_check(consumed == content + 1);
    if (content > 0 && buf[content - 1] == '\r')
        content--;
    fuzz_check(content > SMTP_LINE_MAX);
    return false;
}

/* fuzz_skip - drop the rest of an overlong line; returns whether still skipping */
static bool fuzz_skip(const uint8_t *buf, size_t rest, size_t *n)
{
    int done = -1;

    *n = smtp_skip_line(buf, rest, &done);
    fuzz_check(done == 0 || done == 1);
    fuzz_check(*n > 0 && *n <= rest);
    fuzz_check(memchr(buf, '\n', *n - 1) == NULL);
    fuzz_check(done ? buf[*n - 1] == '\n' : (*n == rest && buf[*n - 1] != '\n'));
    return !done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    bool skipping = false;

    fuzz_parse(data, size);
    while (pos < size) {
        const uint8_t *buf = data + pos;
        size_t rest = size - pos;
        size_t line_len = 0, consumed = 0;
        enum smtp_line_status st;

        if (skipping) {
            skipping = fuzz_skip(buf, rest, &consumed);
            pos += consumed;
            continue;
        }
        st = smtp_next_line(buf, rest, &line_len, &consumed);
        if (st == SMTP_LINE_INCOMPLETE) {
            fuzz_check(consumed == 0 && rest <= SMTP_LINE_MAX + 1);
            fuzz_check(memchr(buf, '\n', rest) == NULL);
            break;
        }
        fuzz_check(consumed > 0 && consumed <= rest);
        if (st == SMTP_LINE_COMPLETE)
            fuzz_line(buf, rest, line_len, consumed);
        else
            skipping = fuzz_too_long(buf, rest, consumed);
        pos += consumed;
    }
    return 0;
}
