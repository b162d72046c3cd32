/*
 * smtp - SMTP command-line framing and parsing, no I/O (contract: smtp.h).
 *
 *   smtp_next_line()      find the next line; overlong lines are reported as
 *                         soon as no line end can keep them within
 *                         SMTP_LINE_MAX octets
 *   smtp_skip_line()      discard the rest of an overlong line
 *   smtp_parse_command()  one line -> verb and argument
 *   smtp_verb_name()      verb -> upper-case name, "UNKNOWN" for the rest
 *
 * Pure functions over the caller's bytes: no allocation, no state, no
 * globals but the constant verb table. Results point into the caller's
 * buffer. Only ASCII letters are folded for the verb comparison, so 8-bit
 * octets and NUL simply make a verb SMTP_UNKNOWN.
 */
#include "smtp.h"

#include <string.h>

struct smtp_verb_entry {
    enum smtp_verb verb;
    const char *name;
};

static const struct smtp_verb_entry smtp_verbs[] = {
    { SMTP_HELO, "HELO" },         { SMTP_EHLO, "EHLO" },
    { SMTP_MAIL, "MAIL" },         { SMTP_RCPT, "RCPT" },
    { SMTP_DATA, "DATA" },         { SMTP_BDAT, "BDAT" },
    { SMTP_RSET, "RSET" },         { SMTP_NOOP, "NOOP" },
    { SMTP_VRFY, "VRFY" },         { SMTP_EXPN, "EXPN" },
    { SMTP_HELP, "HELP" },         { SMTP_QUIT, "QUIT" },
    { SMTP_STARTTLS, "STARTTLS" }, { SMTP_AUTH, "AUTH" },
};

#define SMTP_VERB_COUNT (sizeof smtp_verbs / sizeof smtp_verbs[0])

/* smtp_next_line - frame the next line, see smtp.h */
enum smtp_line_status smtp_next_line(const uint8_t *buf, size_t len,
                                     size_t *line_len, size_t *consumed)
{
    const uint8_t *lf = len ? memchr(buf, '\n', len) : NULL;
    size_t content;

    *consumed = 0;
    *line_len = 0;
    if (lf == NULL) {
        /* a trailing CR may still turn out to precede the LF */
        content = len;
        if (len > 0 && buf[len - 1] == '\r')
            content--;
        if (content <= SMTP_LINE_MAX)
            return SMTP_LINE_INCOMPLETE;
        *consumed = len;
        return SMTP_LINE_TOO_LONG;
    }
    content = (size_t)(lf - buf);
    *consumed = content + 1;
    if (content > 0 && buf[content - 1] == '\r')
        content--;
    if (content > SMTP_LINE_MAX)
        return SMTP_LINE_TOO_LONG;
    *line_len = content;
    return SMTP_LINE_COMPLETE;
}

/* smtp_skip_line - drop bytes through the next LF, see smtp.h */
size_t smtp_skip_line(const uint8_t *buf, size_t len, int *done)
{
    const uint8_t *lf = len ? memchr(buf, '\n', len) : NULL;

    if (lf == NULL) {
        *done = 0;
        return len;
    }
    *done = 1;
    return (size_t)(lf - buf) + 1;
}

/* smtp_ascii_upper - upper-case an ASCII letter, leave other octets alone */
static uint8_t smtp_ascii_upper(uint8_t c)
{
    return c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
}

/* smtp_verb_lookup - the verb spelt by word[0..len), any case */
static enum smtp_verb smtp_verb_lookup(const uint8_t *word, size_t len)
{
    for (size_t i = 0; i < SMTP_VERB_COUNT; i++) {
        const char *name = smtp_verbs[i].name;
        size_t j = 0;

        if (strlen(name) != len)
            continue;
        while (j < len && smtp_ascii_upper(word[j]) == (uint8_t)name[j])
            j++;
        if (j == len)
            return smtp_verbs[i].verb;
    }
    return SMTP_UNKNOWN;
}

/* smtp_parse_command - split a line into verb and argument. The verb ends at
 * the first SP; the argument starts after the spaces and tabs that follow it
 * and loses its trailing spaces and tabs. */
void smtp_parse_command(const uint8_t *line, size_t len, struct smtp_command *out)
{
    size_t verb_end = 0;
    size_t start;
    size_t end = len;

    while (verb_end < len && line[verb_end] != ' ')
        verb_end++;
    start = verb_end;
    while (start < len && (line[start] == ' ' || line[start] == '\t'))
        start++;
    while (end > start && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    out->verb = smtp_verb_lookup(line, verb_end);
    out->arg = len ? line + start : line; /* no arithmetic on a NULL line */
    out->arg_len = end - start;
}

/* smtp_verb_name - the verb's name for logs */
const char *smtp_verb_name(enum smtp_verb verb)
{
    for (size_t i = 0; i < SMTP_VERB_COUNT; i++)
        if (smtp_verbs[i].verb == verb)
            return smtp_verbs[i].name;
    return "UNKNOWN";
}

/* smtp_append - copy text into buf[*used..size-1), keeping room for NUL */
static void smtp_append(char *buf, size_t size, size_t *used, const char *text)
{
    while (*text != '\0' && *used + 1 < size)
        buf[(*used)++] = *text++;
}

size_t smtp_format_reject(const char *template, const char *addr,
                          const char *lists, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return 0;
    smtp_append(buf, size, &used, "550 ");
    for (const char *p = template; *p != '\0'; p++) {
        char one[2] = {*p, '\0'};
        const char *insert = one;
        if (p[0] == '%' && p[1] == 'a')
            insert = addr;
        else if (p[0] == '%' && p[1] == 'l')
            insert = lists;
        else if (p[0] == '%' && p[1] == '%')
            insert = "%";
        if (insert != one)
            p++;
        smtp_append(buf, size, &used, insert);
    }
    buf[used] = '\0';
    return used;
}
