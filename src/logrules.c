/*
 * logrules - DNSBL rejects in MTA log lines. See logrules.h.
 *
 * Each rule is a PCRE2 pattern (JIT-compiled when the platform allows) with
 * a group named addr and maybe one named list. A built-in rule also has a
 * needle, a literal its lines always contain: a line without it is passed
 * over with a memmem(), so the common line (a delivery, a connect) costs no
 * regex at all.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logrules.h"

#define LOGRULES_MAX 64
#define LOGRULES_ADDR_MAX 64    /* the addr group's text, with a zone or brackets */

/*
 * Every built-in pattern is anchored at the start of the line: only the
 * syslog prefix (optional: the journal's lines have none), the MTA's own
 * program[pid] field and the fixed words the MTA writes before its client
 * field may come first, so a reject-shaped text that a client gets into
 * the log (a sender, a HELO name, a recipient, a message-id) is never at
 * the place a rule reads the address from.
 */
#define LOGRULES_SYSLOG_TIME \
    "(?:\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?(?:Z|[-+]\\d\\d:\\d\\d)" \
    "|[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?)"
/* RFC 3339 or BSD time, then the host name */
#define LOGRULES_SYSLOG "^(?:" LOGRULES_SYSLOG_TIME " \\S+ )?"
/* Postfix's program field: syslog_name (postfix, postfix-INSTANCE, ...)/daemon[pid] */
#define LOGRULES_POSTFIX(daemon) LOGRULES_SYSLOG "[^\\s\\[\\]:]+/" daemon "\\[\\d+\\]: "
/* Exim's own time stamp (mainlog, or inside its syslog message) */
#define LOGRULES_EXIM_TIME \
    "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d{3})?(?: [-+]\\d{4})?"
/* mainlog: time first; syslog: exim[pid]: and maybe the time */
#define LOGRULES_EXIM \
    "^(?:(?:" LOGRULES_SYSLOG_TIME " \\S+ )?exim4?\\[\\d+\\]: (?:" LOGRULES_EXIM_TIME " )?" \
    "|" LOGRULES_EXIM_TIME " )(?:\\[\\d+\\] )?"
/* Exim's other fields (P=, S=, I=[local]:port, A=): each value read one
 * way only, possessively */
#define LOGRULES_EXIM_FIELDS \
    "(?:[A-Z]+=(?:\\[[^\\]\\s]*\\](?::\\d+)?|[^\\s<>\\[][^\\s<>]*) )*+"
/* SMTP status and enhanced status of a permanent refusal, then the reply
 * text up to the first ';' (no '<': a recipient's own refusal starts
 * "<rcpt>: ", and its text is the client's) */
#define LOGRULES_5XX "5\\d\\d 5\\.\\d{1,3}\\.\\d{1,3} [^;<\\[]*; "

#define LOGRULES_ONCE_MAX 3

struct logrules_builtin {
    const char *name;
    const char *needle;
    const char *pattern;
    /* literals that the MTA's own words hold once: where a client's text
     * (a junk HELO) can sit before the client field, a second copy means
     * the line could be read with another address, so it is not read */
    const char *once[LOGRULES_ONCE_MAX];
    /* a literal by which the MTA marks a line it cut: the rest, the
     * client's own address with it, may be gone, so the line is not read */
    const char *cut_mark;
};

/* A group named addr2, where a line names the client twice, must hold the
 * same address as addr. */
static const struct logrules_builtin logrules_builtin[] = {
    {"postfix-smtpd", "blocked using ",
     LOGRULES_POSTFIX("smtpd") "(?:NOQUEUE|[0-9A-Za-z]+): reject: RCPT from [^\\[\\s]*\\["
     "(?<addr>[^\\]]+)\\](?::\\d+)?: " LOGRULES_5XX
     "Client host \\[(?<addr2>[^\\]]+)\\] blocked using (?<list>[^\\s;]+)", {NULL}, NULL},
    {"postscreen", "blocked using ",
     LOGRULES_POSTFIX("postscreen") "NOQUEUE: reject: RCPT from \\[(?<addr>[^\\]]+)\\]:\\d+: "
     LOGRULES_5XX "client \\[(?<addr2>[^\\]]+)\\] blocked using (?<list>[^\\s;]+)", {NULL}, NULL},
    {"postscreen", "DNSBL rank ",
     LOGRULES_POSTFIX("postscreen") "DNSBL rank \\d+ for \\[(?<addr>[^\\]]+)\\]:\\d+$", {NULL}, NULL},
    {"courier", ": 511 ",
     LOGRULES_SYSLOG "courieresmtpd(?:\\[\\d+\\])?: error,relay=(?<addr>[0-9A-Fa-f:.]+),"
     "port=\\d+,from=<.*>: 511 ", {NULL}, NULL}, /* the last '>: 511 ': from and to may hold '>' */
    {"courier", "dropped blocked connection from ",
     LOGRULES_SYSLOG "courieresmtpd(?:\\[\\d+\\])?: dropped blocked connection from "
     "(?<addr>[0-9A-Fa-f:.]+)$", {NULL}, NULL},
    {"exim", "rejected RCPT <",
     LOGRULES_EXIM "H=(?:[^\\s()\\[\\]]+ )?(?:\\([^\\s()]*\\) )?\\[(?<addr>[0-9A-Fa-f:.]+)\\]"
     "(?::\\d+)? " LOGRULES_EXIM_FIELDS "F=<.*> " LOGRULES_EXIM_FIELDS
     "rejected RCPT <[^>]*>: .*?(?:is in a black list at|is listed at|blocked using) "
     "(?<list>[A-Za-z0-9_-]+(?:\\.[A-Za-z0-9_-]+)+)",
     /* ") [" ends the HELO Exim shows: a junk HELO (helo_accept_junk_hosts)
      * can fake what comes before the client's [ADDR] in any H= line */
     {" F=<", "rejected RCPT <", ") ["},
     /* Exim 4.98 keeps the start of a line longer than its 8 KiB buffer:
      * a junk HELO can push the client's [ADDR] out of it */
     "**** log string overflowed log buffer ****"},
};

struct logrules_rule {
    char name[32];
    const char *needle;   /* NULL: always try the pattern */
    const char *const *once; /* LOGRULES_ONCE_MAX literals or NULLs; NULL: none */
    const char *cut_mark;    /* NULL: none */
    pcre2_code *code;
    int addr_group, addr2_group, list_group;
    bool anchored;        /* matches only at the start of a line */
};

struct logrules {
    struct logrules_rule rule[LOGRULES_MAX];
    size_t count;
    pcre2_match_data *match;
};

/* logrules_skip_openers - past the group openers and option settings at
 * p[i..len): "(", "(?:", "(?>", "(?|", "(?<name>", "(?'name'", "(?P<name>",
 * "(?i)", "(?s:" */
static size_t logrules_skip_openers(const char *p, size_t len, size_t i)
{
    while (i < len && p[i] == '(') {
        size_t j = i + 1;
        if (j < len && p[j] == '?') {
            j++;
            if (j < len && (p[j] == '<' || p[j] == '\'' || p[j] == 'P')) {
                if (j + 1 < len && (p[j + 1] == '=' || p[j + 1] == '!'))
                    return i; /* a lookbehind: not an opener */
                while (j < len && p[j] != '>' && p[j] != '\'')
                    j++;
                j++;
            } else {
                while (j < len && (p[j] == '-' || p[j] == '^' || (p[j] >= 'a' && p[j] <= 'z') ||
                                   (p[j] >= 'A' && p[j] <= 'Z')))
                    j++;
                if (j < len && (p[j] == ':' || p[j] == '>' || p[j] == '|' || p[j] == ')'))
                    j++;
                else
                    return i; /* a lookahead, a comment, a callout: stop here */
            }
        }
        i = j;
    }
    return i;
}

/* logrules_starts_anchored - does the pattern pin its start to the line's
 * start with ^ or \A, not followed by a wildcard? PCRE2 calls "^.*x" and
 * "(?s).*x" anchored, but they match x anywhere in the line; this is the
 * textual check that goes with PCRE2's own */
static bool logrules_starts_anchored(const char *p, size_t len)
{
    size_t i = logrules_skip_openers(p, len, 0);
    if (i < len && p[i] == '^')
        i++;
    else if (i + 1 < len && p[i] == '\\' && p[i + 1] == 'A')
        i += 2;
    else
        return false;
    i = logrules_skip_openers(p, len, i);
    if (i < len && p[i] == '.')
        return false;
    if (i + 1 < len && ((p[i] == '\\' && strchr("NCX", p[i + 1]) != NULL) ||
                        (p[i] == '[' && p[i + 1] == '^')))
        return false;
    return true;
}

/* logrules_add - compile one pattern; -1 with err set */
static int logrules_add(struct logrules *r, const char *name, const char *needle,
                        const char *pattern, size_t len, char *err, size_t errsize)
{
    int code;
    PCRE2_SIZE offset;
    char message[256];
    if (r->count == LOGRULES_MAX) {
        snprintf(err, errsize, "more than %d rules", LOGRULES_MAX);
        return -1;
    }
    struct logrules_rule *rule = &r->rule[r->count];
    rule->code = pcre2_compile((PCRE2_SPTR)pattern, len, 0, &code, &offset, NULL);
    if (rule->code == NULL) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)message, sizeof message);
        snprintf(err, errsize, "pattern does not compile at offset %zu: %s",
                 (size_t)offset, message);
        return -1;
    }
    rule->addr_group = pcre2_substring_number_from_name(rule->code, (PCRE2_SPTR) "addr");
    rule->addr2_group = pcre2_substring_number_from_name(rule->code, (PCRE2_SPTR) "addr2");
    rule->list_group = pcre2_substring_number_from_name(rule->code, (PCRE2_SPTR) "list");
    uint32_t options = 0;
    (void)pcre2_pattern_info(rule->code, PCRE2_INFO_ALLOPTIONS, &options);
    rule->anchored = (options & PCRE2_ANCHORED) != 0 &&
                     logrules_starts_anchored(pattern, len == PCRE2_ZERO_TERMINATED
                                                           ? strlen(pattern) : len);
    if (rule->addr_group < 0) {
        pcre2_code_free(rule->code);
        snprintf(err, errsize, "pattern has no group named addr: (?<addr>...)");
        return -1;
    }
    (void)pcre2_jit_compile(rule->code, PCRE2_JIT_COMPLETE); /* else: interpreted */
    snprintf(rule->name, sizeof rule->name, "%s", name);
    rule->needle = needle;
    r->count++;
    return 0;
}

/* logrules_add_custom - one pattern per line of text; blank lines and
 * lines starting with '#' are skipped */
static int logrules_add_custom(struct logrules *r, const char *text, const char *origin,
                               char *err, size_t errsize)
{
    char what[LOGRULES_ERR_MAX], name[32];
    unsigned number = 0;
    for (const char *line = text; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        number++;
        size_t skip = strspn(line, " \t");
        if (len > skip && line[skip] != '#' && line[skip] != '\r') {
            size_t end = len;
            while (end > skip && (line[end - 1] == '\r' || line[end - 1] == ' '))
                end--;
            snprintf(name, sizeof name, "custom:%u", number);
            if (logrules_add(r, name, NULL, line + skip, end - skip, what, sizeof what) < 0) {
                snprintf(err, errsize, "%s:%u: %s", origin, number, what);
                return -1;
            }
        }
        line += len + (line[len] == '\n');
    }
    return 0;
}

struct logrules *logrules_new(bool only_custom, const char *custom, const char *origin,
                              char *err, size_t errsize)
{
    struct logrules *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    size_t n = only_custom ? 0 : sizeof logrules_builtin / sizeof logrules_builtin[0];
    for (size_t i = 0; i < n; i++) {
        const struct logrules_builtin *b = &logrules_builtin[i];
        if (logrules_add(r, b->name, b->needle, b->pattern, PCRE2_ZERO_TERMINATED, err,
                         errsize) < 0)
            goto fail; /* a bug in the table: the tests compile it */
        r->rule[r->count - 1].once = b->once;
        r->rule[r->count - 1].cut_mark = b->cut_mark;
    }
    if (custom != NULL && logrules_add_custom(r, custom, origin, err, errsize) < 0)
        goto fail;
    if (r->count == 0) {
        snprintf(err, errsize, "no rules: watch_rules_only is set but %s holds no pattern",
                 custom ? origin : "watch_rules");
        goto fail;
    }
    r->match = pcre2_match_data_create(LOGRULES_MAX, NULL);
    if (r->match != NULL)
        return r;
    snprintf(err, errsize, "out of memory");
fail:
    logrules_free(r);
    return NULL;
}

/* logrules_group - copy group g of the last match into buf; false if unset
 * or too long (the text is the log's: any bytes) */
static bool logrules_group(const struct logrules *r, int g, const char *line, char *buf,
                           size_t size)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->match);
    if (g < 0)
        return false;
    size_t i = 2 * (size_t)g;
    if (ov[i] == PCRE2_UNSET || ov[i + 1] - ov[i] >= size)
        return false;
    size_t n = ov[i + 1] - ov[i];
    memcpy(buf, line + ov[i], n);
    buf[n] = '\0';
    return true;
}

/* logrules_address - group g of the last match as an address; -1 if it
 * is not one */
static int logrules_address(const struct logrules *r, int g, const char *line,
                            struct addr *out)
{
    char text[LOGRULES_ADDR_MAX];
    return logrules_group(r, g, line, text, sizeof text) ? addr_parse(text, out) : -1;
}

/* logrules_printable - the text with every byte outside printable ASCII
 * (controls, DEL, 8-bit) replaced by '?', in place: what goes into
 * breakwater's own log lines */
static void logrules_printable(char *text)
{
    for (; *text != '\0'; text++)
        if (*text < 0x21 || *text > 0x7e)
            *text = '?';
}

/* logrules_suspect - does one of the rule's once literals occur twice, or
 * its cut mark once? */
static bool logrules_suspect(const struct logrules_rule *rule, const char *line, size_t len)
{
    if (rule->cut_mark != NULL && memmem(line, len, rule->cut_mark, strlen(rule->cut_mark)))
        return true;
    for (size_t i = 0; rule->once != NULL && i < LOGRULES_ONCE_MAX && rule->once[i]; i++) {
        size_t n = strlen(rule->once[i]);
        const char *first = memmem(line, len, rule->once[i], n);
        if (first != NULL && memmem(first + 1, len - (size_t)(first + 1 - line), rule->once[i],
                                    n) != NULL)
            return true;
    }
    return false;
}

bool logrules_match(const struct logrules *r, const char *line, size_t len,
                    struct logrules_hit *hit)
{
    struct addr again;
    for (size_t i = 0; i < r->count; i++) {
        const struct logrules_rule *rule = &r->rule[i];
        if (rule->needle != NULL && memmem(line, len, rule->needle, strlen(rule->needle)) == NULL)
            continue;
        if (logrules_suspect(rule, line, len))
            continue; /* a client's text copies the MTA's words, or the MTA cut the line */
        if (pcre2_match(rule->code, (PCRE2_SPTR)line, len, 0, 0, r->match, NULL) < 0)
            continue;
        if (logrules_address(r, rule->addr_group, line, &hit->addr) < 0)
            continue;
        if (rule->addr2_group >= 0 && (logrules_address(r, rule->addr2_group, line, &again) < 0 ||
                                       !addr_equal(&again, &hit->addr)))
            continue; /* the line names two different clients: not the MTA's own words */
        hit->rule = rule->name;
        if (!logrules_group(r, rule->list_group, line, hit->list, sizeof hit->list))
            hit->list[0] = '\0';
        logrules_printable(hit->list);
        return true;
    }
    return false;
}

size_t logrules_count(const struct logrules *r)
{
    return r->count;
}

const char *logrules_unanchored(const struct logrules *r, size_t *next)
{
    for (; *next < r->count; (*next)++)
        if (!r->rule[*next].anchored)
            return r->rule[(*next)++].name;
    return NULL;
}

void logrules_free(struct logrules *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        pcre2_code_free(r->rule[i].code);
    pcre2_match_data_free(r->match);
    free(r);
}
