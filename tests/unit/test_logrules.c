/*
 * test_logrules - unit tests for src/logrules.c against real MTA log lines
 * (tests/data/logs: Courier 1.0.16, Postfix 3.7 smtpd and postscreen, Exim
 * 4.96 on Debian 12, with a notes file per log saying what each line is).
 *
 * Every line of every log goes through the built-in rules: the lines the
 * notes call DNSBL-REJECT (and postscreen's DNSBL-VERDICT rank lines, the
 * only trace of postscreen_dnsbl_action = drop) must match with the
 * client's address, every other line must not, except where a rule cannot
 * tell by design (listed in test_logrules_exceptions, each with why). The
 * same lines with the classic syslog prefix and as the journal shows them
 * must give the same answers. Then: custom rules, bad patterns, IPv6 and
 * mapped forms, hostile bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logrules.h"

#define LOG_DIR "tests/data/logs/"
#define LINES_MAX 256

/* Lines whose expected answer differs from their category in the notes. */
static const struct {
    const char *log;
    unsigned line;
    bool match;
    const char *why;
} test_logrules_exceptions[] = {
    {"courier", 67, true, "an smtpaccess BLOCK gives the same 511 line as a DNSBL block"},
    {"courier", 78, true, "an smtpaccess BLOCK with -drop gives the same line as a DNSBL drop"},
    {"exim", 6, false, "bare deny dnslists: no reason in the log"},
    {"exim", 7, false, "bare deny dnslists: no reason in the log"},
    {"exim", 8, false, "bare deny dnslists: no reason in the log"},
    {"exim", 9, false, "bare deny dnslists: no reason in the log"},
    {"exim", 10, false, "bare deny dnslists: no reason in the log"},
    {"exim", 11, false, "bare deny dnslists: no reason in the log"},
    {"exim", 12, false, "bare deny dnslists: no reason in the log"},
    {"exim", 56, false, "bare deny dnslists: no reason in the log"},
};

struct test_line {
    char *text;
    char category[32];
    char client[64];
};

/* test_read_log - the log's lines and, from its notes, their categories */
static size_t test_read_log(const char *name, struct test_line *lines)
{
    char path[256], buf[8192];
    size_t n = 0;
    snprintf(path, sizeof path, LOG_DIR "%s.log", name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (n < LINES_MAX && fgets(buf, sizeof buf, f) != NULL) {
        buf[strcspn(buf, "\n")] = '\0';
        lines[n].text = strdup(buf);
        strcpy(lines[n].category, "?");
        n++;
    }
    fclose(f);
    snprintf(path, sizeof path, LOG_DIR "%s.notes", name);
    f = fopen(path, "r");
    assert_non_null(f);
    unsigned number;
    char category[32], client[64];
    while (fgets(buf, sizeof buf, f) != NULL)
        if (sscanf(buf, "%u\t%31[^\t]\t%63[^\t]", &number, category, client) == 3 &&
            number >= 1 && number <= n) {
            strcpy(lines[number - 1].category, category);
            strcpy(lines[number - 1].client, client);
        }
    fclose(f);
    return n;
}

/* test_expected - should line `number` of log match? */
static bool test_expected(const char *log, unsigned number, const struct test_line *line)
{
    for (size_t i = 0; i < sizeof test_logrules_exceptions / sizeof test_logrules_exceptions[0];
         i++)
        if (strcmp(test_logrules_exceptions[i].log, log) == 0 &&
            test_logrules_exceptions[i].line == number)
            return test_logrules_exceptions[i].match;
    return strcmp(line->category, "DNSBL-REJECT") == 0 ||
           (strcmp(log, "postscreen") == 0 && strcmp(line->category, "DNSBL-VERDICT") == 0);
}

/* test_reprefix - the line with its RFC 3339 syslog prefix replaced:
 * style 1 the classic "Nov 29 12:55:12 mx1 " form, style 2 the journal's
 * "IDENT[PID]: MESSAGE" with no prefix at all. An Exim mainlog line becomes
 * what Exim sends to syslog: in a file (style 1) the message keeps Exim's
 * own time stamp, in the journal (style 2) it is without it
 * (syslog_timestamp = false). */
static void test_reprefix(const char *line, int style, char *out, size_t size)
{
    const char *rest = line;
    if (strlen(line) > 20 && line[4] == '-' && line[10] == ' ') {
        if (style == 1)
            snprintf(out, size, "Nov 29 12:55:12 mx1 exim[4242]: %s", line);
        else
            snprintf(out, size, "exim[4242]: %s", line + 20);
        return;
    }
    if (strlen(line) > 33 && line[4] == '-' && line[10] == 'T') {
        rest = strchr(line, ' ');            /* after the timestamp */
        rest = rest ? strchr(rest + 1, ' ') : NULL;   /* after the host */
        rest = rest ? rest + 1 : line;
    }
    if (style == 1)
        snprintf(out, size, "Nov 29 12:55:12 mx1 %s", rest);
    else
        snprintf(out, size, "%s", rest);
}

/* test_log - every line of one log, in three prefix styles */
static void test_log(const char *log)
{
    static struct test_line lines[LINES_MAX];
    char err[LOGRULES_ERR_MAX], text[8192], want[ADDR_TEXT_MAX], got[ADDR_TEXT_MAX];
    struct logrules *r = logrules_new(false, NULL, NULL, err, sizeof err);
    assert_non_null(r);
    size_t n = test_read_log(log, lines);
    unsigned matched = 0;
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        bool expect = test_expected(log, (unsigned)i + 1, &lines[i]);
        for (int style = 0; style < 3; style++) {
            struct logrules_hit hit;
            if (style == 0)
                snprintf(text, sizeof text, "%s", lines[i].text);
            else
                test_reprefix(lines[i].text, style, text, sizeof text);
            bool m = logrules_match(r, text, strlen(text), &hit);
            if (m != expect)
                fail_msg("%s line %zu (%s, style %d): %s, expected %s:\n%s", log, i + 1,
                         lines[i].category, style, m ? "matched" : "no match",
                         expect ? "a match" : "none", text);
            if (!m)
                continue;
            struct addr a;
            assert_int_equal(addr_parse(lines[i].client, &a), 0);
            addr_format(&a, want, sizeof want);
            addr_format(&hit.addr, got, sizeof got);
            if (strcmp(want, got) != 0)
                fail_msg("%s line %zu: address %s, expected %s", log, i + 1, got, want);
            matched += style == 0;
        }
        free(lines[i].text);
    }
    assert_true(matched >= 3);
    logrules_free(r);
}

static void test_courier(void **state) { (void)state; test_log("courier"); }
static void test_postfix_smtpd(void **state) { (void)state; test_log("postfix-smtpd"); }
static void test_postscreen(void **state) { (void)state; test_log("postscreen"); }
static void test_exim(void **state) { (void)state; test_log("exim"); }

static void test_lists_named(void **state)
{
    char err[LOGRULES_ERR_MAX];
    struct logrules_hit hit;
    struct logrules *r = logrules_new(false, NULL, NULL, err, sizeof err);
    (void)state;
    const char *postfix = "Nov 29 12:56:36 mx1 postfix/smtpd[11118]: NOQUEUE: reject: RCPT "
        "from unknown[2001:db8::7]: 554 5.7.1 Service unavailable; Client host [2001:db8::7] "
        "blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/2001:db8::7; "
        "from=<a@b.example> to=<c@d.example> proto=ESMTP helo=<x>";
    assert_true(logrules_match(r, postfix, strlen(postfix), &hit));
    assert_string_equal(hit.rule, "postfix-smtpd");
    assert_string_equal(hit.list, "zen.spamhaus.org");
    assert_int_equal(hit.addr.family, AF_INET6);
    const char *exim = "2026-11-29 13:02:08 H=mail.example (helo) [2001:db8::9]:4711 "
        "F=<s@example.test> rejected RCPT <a@mx.test>: blocked using bl.spamcop.net";
    assert_true(logrules_match(r, exim, strlen(exim), &hit));
    assert_string_equal(hit.list, "bl.spamcop.net");
    const char *courier = "courieresmtpd: error,relay=::ffff:192.0.2.9,port=4242,"
        "from=<a@b>,to=<c@d>: 511 https://www.spamhaus.org/query/ip/192.0.2.9";
    assert_true(logrules_match(r, courier, strlen(courier), &hit));
    assert_int_equal(hit.addr.family, AF_INET); /* the mapped form is IPv4 */
    assert_string_equal(hit.list, "");
    logrules_free(r);
}

static void test_near_misses(void **state)
{
    char err[LOGRULES_ERR_MAX];
    struct logrules_hit hit;
    struct logrules *r = logrules_new(false, NULL, NULL, err, sizeof err);
    (void)state;
    const char *lines[] = {
        /* a 4xx for a DNSBL (soft_bounce): the client will retry */
        "postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 450 4.7.1 Service "
        "unavailable; Client host [192.0.2.1] blocked using bl.test; from=<a@b>",
        /* a DNSBL name in the body of an unrelated line */
        "postfix/cleanup[2]: 4AB: message-id=<blocked using bl.test [192.0.2.2]>",
        "postfix/smtpd[3]: connect from unknown[192.0.2.3] blocked using bl.test",
        /* the address group holding something that is not an address */
        "postfix/postscreen[4]: DNSBL rank 3 for [not-an-address]:25",
        "courieresmtpd: error,relay=::ffff:192.0.2.4,port=1,from=<a@b>: 550 User unknown",
        "",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (logrules_match(r, lines[i], strlen(lines[i]), &hit))
            fail_msg("matched: %s", lines[i]);
    logrules_free(r);
}

static void test_hostile_bytes(void **state)
{
    char err[LOGRULES_ERR_MAX], line[20000];
    struct logrules_hit hit;
    struct logrules *r = logrules_new(false, NULL, NULL, err, sizeof err);
    (void)state;
    /* NUL and invalid UTF-8 before a real reject: not the MTA's line */
    const char *tail = "postfix/postscreen[4]: DNSBL rank 2 for [198.51.100.7]:25";
    memset(line, 0, sizeof line);
    memcpy(line, "\xff\xfe\x00\xc3\x28 ", 6);
    memcpy(line + 6, tail, strlen(tail));
    assert_false(logrules_match(r, line, 6 + strlen(tail), &hit));
    /* ... and after the part a rule reads: the reject is still found, and
     * the list name comes out as printable ASCII */
    const char reject[] = "postfix/smtpd[9]: NOQUEUE: reject: RCPT from x[198.51.100.8]: "
        "554 5.7.1 Service unavailable; Client host [198.51.100.8] blocked using "
        "bl\x01\x1b[31m\xff.test; from=<\x00\xff>";
    assert_true(logrules_match(r, reject, sizeof reject - 1, &hit));
    assert_string_equal(hit.list, "bl??[31m?.test");
    /* a long line of needles and brackets: no match, bounded time */
    for (size_t i = 0; i + 16 < sizeof line; i += 16)
        memcpy(line + i, "blocked using [", 15), line[i + 15] = ':';
    assert_false(logrules_match(r, line, sizeof line, &hit));
    /* the pieces Exim's and Courier's rules backtrack over, repeated */
    const char *heads[] = {"2026-11-29 13:02:08 H=(c) [198.51.100.9] F=<",
                           "courieresmtpd: error,relay=198.51.100.9,port=1,from=<",
                           "2026-11-29 13:02:08 H=(c) [198.51.100.9]:1 "};
    const char *pieces[] = {"> rejected RCPT <a>: x", ">: 51", "A=[1]:2 B=[x] "};
    const char *tails[] = {"", "", "rejected RCPT <a>: x"};
    for (size_t k = 0; k < 3; k++) {
        size_t used = strlen(heads[k]), n = strlen(pieces[k]), t = strlen(tails[k]);
        memcpy(line, heads[k], used);
        for (; used + n + t < sizeof line; used += n)
            memcpy(line + used, pieces[k], n);
        memcpy(line + used, tails[k], t);
        used += t;
        assert_false(logrules_match(r, line, used, &hit));
    }
    logrules_free(r);
}

/* What a client can write into the MTA's log: a whole reject line of each
 * MTA's format naming a victim, in every field the MTA logs for it. */
#define VICTIM "192.0.2.99"
#define ATTACKER "198.51.100.1"
#define FAKE_POSTFIX "/smtpd[1]: NOQUEUE: reject: RCPT from x[" VICTIM "]: 554 5.7.1 x; " \
    "Client host [" VICTIM "] blocked using evil.example"
#define FAKE_POSTSCREEN "postfix/postscreen[1]: DNSBL rank 9 for [" VICTIM "]:25"
#define FAKE_COURIER "courieresmtpd: error,relay=" VICTIM ",port=1,from=<a>: 511 x"
#define FAKE_EXIM "2026-11-29 13:02:08 H=(x) [" VICTIM "] F=<a> rejected RCPT <b>: " \
    "blocked using evil.example"
#define JUNK_HELO(helo) \
    "2026-11-29 13:02:08 H=(" helo ") [" ATTACKER "]:4711 F=<s@b.example> rejected RCPT " \
    "<a@mx.test>: blocked using bl.test"
#define EXIM_OTHER(rest) \
    "2026-11-29 13:02:08 H=(x) [" VICTIM "] rejected RCPT <b>: blocked using evil.example) [" \
    ATTACKER "] " rest
#define FAKES(before, after) \
    before FAKE_POSTFIX after, before FAKE_POSTSCREEN after, before FAKE_COURIER after, \
    before FAKE_EXIM after

static void test_injection(void **state)
{
    char err[LOGRULES_ERR_MAX], got[ADDR_TEXT_MAX];
    struct logrules_hit hit;
    struct logrules *r = logrules_new(false, NULL, NULL, err, sizeof err);
    (void)state;
    /* the lines of refusals that are not DNSBL rejects, deliveries and
     * local users' lines: none may match */
    const char *none[] = {
#define PF "2026-11-29T12:56:36.3+00:00 mx1 postfix/smtpd[77]: NOQUEUE: reject: RCPT from " \
    "unknown[" ATTACKER "]: 554 5.7.1 <x@out.example>: Relay access denied; "
        FAKES(PF "from=<\"", "\"@b.example> to=<x@out.example> proto=ESMTP helo=<h>"),
        FAKES(PF "from=<a@b.example> to=<x@out.example> proto=ESMTP helo=<", ">"),
        FAKES(PF "from=<a@b.example> to=<\"", "\"@out.example> proto=ESMTP helo=<h>"),
        FAKES("2026-11-29T12:56:36.3+00:00 mx1 postfix/smtpd[77]: NOQUEUE: reject: RCPT from "
              "unknown[" ATTACKER "]: 554 5.7.1 <\"", "\"@out.example>: Relay access denied; "
              "from=<a@b> to=<x@out.example> proto=ESMTP helo=<h>"),
        FAKES("Nov 29 12:56:36 mx1 postfix/cleanup[78]: 4AB: message-id=<", ">"),
        FAKES("Nov 29 12:56:36 mx1 postfix/qmgr[79]: 4AB: from=<\"", "\"@b.example>, size=1, "
              "nrcpt=1 (queue active)"),
        FAKES("Nov 29 12:56:36 mx1 postfix/smtpd[77]: warning: Illegal address syntax from "
              "unknown[" ATTACKER "] in MAIL command: <", ">"),
        FAKES("courierlocal: id=00A9.6B0C,from=<", ">,addr=<alice@mx.test>,size=1,success: ok"),
        FAKES("2026-11-29 13:02:03 1xXeXb-0003Qg-2h <= ", " H=(c) [" ATTACKER "] P=esmtp S=1"),
        /* a local user's logger under its own name (`logger -t postfix/smtpd`
         * cannot be told from Postfix in a file: watch --journal can) */
        FAKES("Nov 29 12:56:36 mx1 mallory: ", ""),
        FAKES("Nov 29 12:56:36 mx1 mallory[5]: ", ""),
        FAKES("mallory[5]: ", ""),
#undef PF
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        if (logrules_match(r, none[i], strlen(none[i]), &hit)) {
            addr_format(&hit.addr, got, sizeof got);
            fail_msg("matched (%s, %s): %s", hit.rule, got, none[i]);
        }
    /* a refusal of the client whose address field holds a '>': the line
     * is ambiguous, and may then count as the client's own reject */
    const char *maybe_self[] = {
        FAKES("courieresmtpd: error,relay=::ffff:" ATTACKER ",port=4,from=<a@b>,to=<",
              ">: 550 User unknown"),
        FAKES("2026-11-29 13:02:04 H=(c) [" ATTACKER "] F=<", "> rejected RCPT <x@out.test>: "
              "relay not permitted"),
        /* Exim's words twice (a client's sender holding a reject): not read */
        FAKES("2026-11-29 13:02:08 H=(c) [" ATTACKER "] F=<", "> rejected RCPT <a@mx.test>: "
              "blocked using bl.test"),
        /* a junk HELO (helo_accept_junk_hosts) that fakes the fields
         * before the client's own [address] */
        JUNK_HELO("x) [" VICTIM "] F=<a> rejected RCPT <b>: blocked using evil x"),
        JUNK_HELO("x) [" VICTIM "] F=<"),
        JUNK_HELO("x) [" VICTIM "] rejected RCPT <"),
        JUNK_HELO("x) [" VICTIM "] A="),
        JUNK_HELO("x) [" VICTIM "] A=["),
        JUNK_HELO("x) [" VICTIM "]:25 I=[10.0.0.1]:25 A="),
        JUNK_HELO("x) [" VICTIM "] P=esmtp"),
        /* Exim 4.98 cuts a line past its 8 KiB buffer and says so: a long
         * junk HELO leaves only the fake (found with a real Exim 4.98.2) */
        "2026-12-03 13:59:41 H=(x) [" VICTIM "] F=<a> rejected RCPT <b>: blocked using "
        "evil.example AAAA**** log string overflowed log buffer ****",
        /* Exim's other H= lines (found by a review with a real Exim 4.96):
         * a junk HELO faking a whole reject before the client's address */
        EXIM_OTHER("sender verify fail for <s@nonexistent.invalid>: Unrouteable address"),
        EXIM_OTHER("F=<s@b> rejected RCPT <alice@mx.test>: Sender verify failed"),
        EXIM_OTHER("Warning: listed"),
        EXIM_OTHER("rejected MAIL <s@b>: no"),
        EXIM_OTHER("incomplete transaction (QUIT) from <s@b>"),
        EXIM_OTHER("F=<s@b> RCPT <a@mx.test>: discarded by RCPT ACL"),
        "2026-11-29 13:02:08 H=rev.example.net (x) [" VICTIM "] rejected RCPT <b>: blocked "
        "using evil.example) [" ATTACKER "]:4711 I=[10.0.0.1]:25 sender verify fail",
        "exim[4242]: 2026-11-29 13:02:08 H=(x) [2001:db8::99] rejected RCPT <b>: blocked using "
        "evil.example) [" ATTACKER "] Warning: listed",
    };
    for (size_t i = 0; i < sizeof maybe_self / sizeof maybe_self[0]; i++)
        if (logrules_match(r, maybe_self[i], strlen(maybe_self[i]), &hit)) {
            addr_format(&hit.addr, got, sizeof got);
            if (strcmp(got, ATTACKER) != 0)
                fail_msg("%s: %s banned for %s", hit.rule, got, maybe_self[i]);
        }
    /* the client's own DNSBL reject carrying a fake one: it names the
     * client, never the victim */
    const char *self[] = {
        FAKES("postfix/smtpd[77]: NOQUEUE: reject: RCPT from unknown[" ATTACKER "]: 554 5.7.1 "
              "Service unavailable; Client host [" ATTACKER "] blocked using bl.test; "
              "from=<\"", "\"@b.example> to=<a@mx.test> proto=ESMTP helo=<h>"),
        FAKES("postfix/postscreen[7]: NOQUEUE: reject: RCPT from [" ATTACKER "]:4711: 550 5.7.1 "
              "Service unavailable; client [" ATTACKER "] blocked using bl.test; from=<\"",
              "\"@b>, to=<a@mx.test>, proto=ESMTP, helo=<h>"),
        FAKES("courieresmtpd: error,relay=::ffff:" ATTACKER ",port=4,from=<", ">,to=<a@mx.test>: "
              "511 Listed in bl.test"),
        "2026-11-29 13:02:08 H=(c) [" ATTACKER "] F=<s@b> A=plain:bob rejected RCPT "
        "<a@mx.test>: blocked using bl.test",
        "2026-11-29 13:02:08 H=([" VICTIM "]) [" ATTACKER "]:25 F=<a@b> rejected RCPT <a@mx.test>: "
        "blocked using bl.test",
    };
    for (size_t i = 0; i < sizeof self / sizeof self[0]; i++) {
        if (!logrules_match(r, self[i], strlen(self[i]), &hit))
            fail_msg("no match: %s", self[i]);
        addr_format(&hit.addr, got, sizeof got);
        if (strcmp(got, ATTACKER) != 0)
            fail_msg("%s: %s banned for %s", hit.rule, got, self[i]);
    }
    /* a line naming two different clients is not Postfix's */
    const char *two = "postfix/smtpd[77]: NOQUEUE: reject: RCPT from unknown[" ATTACKER "]: 554 "
        "5.7.1 Service unavailable; Client host [" VICTIM "] blocked using bl.test; from=<a@b>";
    assert_false(logrules_match(r, two, strlen(two), &hit));
    size_t next = 0;
    assert_null(logrules_unanchored(r, &next)); /* every built-in rule is anchored */
    logrules_free(r);
}

static void test_custom_rules(void **state)
{
    char err[LOGRULES_ERR_MAX];
    struct logrules_hit hit;
    (void)state;
    const char *custom = "# my MTA\n\n"
        "mymta: refused (?<addr>[0-9.]+) listed in (?<list>\\S+)\r\n"
        "  otherd: banned host (?<addr>[0-9a-f:.]+)\n";
    struct logrules *r = logrules_new(true, custom, "/etc/breakwater/watch.rules", err,
                                      sizeof err);
    assert_non_null(r);
    assert_int_equal(logrules_count(r), 2);
    const char *a = "Nov 29 mx mymta: refused 203.0.113.5 listed in bl.example now";
    assert_true(logrules_match(r, a, strlen(a), &hit));
    assert_string_equal(hit.rule, "custom:3");
    assert_string_equal(hit.list, "bl.example");
    const char *b = "otherd: banned host 2001:db8::5";
    assert_true(logrules_match(r, b, strlen(b), &hit));
    assert_string_equal(hit.rule, "custom:4");
    size_t next = 0; /* line 3 may match anywhere, line 4 too */
    assert_string_equal(logrules_unanchored(r, &next), "custom:3");
    assert_string_equal(logrules_unanchored(r, &next), "custom:4");
    assert_null(logrules_unanchored(r, &next));
    logrules_free(r);
    r = logrules_new(true, "^mymta: refused (?<addr>\\S+)\n\\A(?:a|b) (?<addr>\\S+)\n"
                     "(?:^x|^y) (?<addr>\\S+)\nz|^w (?<addr>\\S+)\n", "f", err, sizeof err);
    assert_non_null(r);
    next = 0; /* only the last one has a branch that is not anchored */
    assert_string_equal(logrules_unanchored(r, &next), "custom:4");
    assert_null(logrules_unanchored(r, &next));
    logrules_free(r);
    /* PCRE2 calls these anchored, but they match anywhere in the line */
    r = logrules_new(true, "^.*refused (?<addr>\\S+)\n(?s).*refused (?<addr>\\S+)\n"
                     "(?i)^(?:.+)refused (?<addr>\\S+)\n\\A\\N*refused (?<addr>\\S+)\n"
                     "^[^:]*: refused (?<addr>\\S+)\n(?i)(?<x>^mymta) refused (?<addr>\\S+)\n",
                     "f", err, sizeof err);
    assert_non_null(r);
    next = 0;
    for (int line = 1; line <= 5; line++) {
        char name[16];
        snprintf(name, sizeof name, "custom:%d", line);
        assert_string_equal(logrules_unanchored(r, &next), name);
    }
    assert_null(logrules_unanchored(r, &next)); /* the last one is */
    const char *injected = "Nov 29 12:55:12 mx1 mymta[812]: from=x refused 192.0.2.1";
    assert_true(logrules_match(r, injected, strlen(injected), &hit));
    logrules_free(r);
    /* docs/watch.md's example of an anchored rule */
    r = logrules_new(true, "^(?:\\w{3} [ \\d]\\d [\\d:]{8} \\S+ )?mymta\\[\\d+\\]: refused "
                     "(?<addr>[0-9a-fA-F:.]+): listed in (?<list>\\S+)$\n", "f", err, sizeof err);
    assert_non_null(r);
    next = 0;
    assert_null(logrules_unanchored(r, &next));
    const char *example = "Nov 29 12:55:12 mx1 mymta[812]: refused 203.0.113.5: listed in bl.example";
    assert_true(logrules_match(r, example, strlen(example), &hit));
    assert_string_equal(hit.list, "bl.example");
    const char *inside = "Nov 29 12:55:12 mx1 mymta[812]: from=<x mymta[1]: refused 192.0.2.1: "
                         "listed in bl.example>";
    assert_false(logrules_match(r, inside, strlen(inside), &hit));
    /* only custom: the built-in ones are off */
    const char *postscreen = "postfix/postscreen[4]: DNSBL rank 2 for [198.51.100.7]:25";
    assert_false(logrules_match(r, postscreen, strlen(postscreen), &hit));
    logrules_free(r);
    r = logrules_new(false, custom, "f", err, sizeof err);
    assert_int_equal(logrules_count(r), 6 + 2);
    assert_true(logrules_match(r, postscreen, strlen(postscreen), &hit));
    logrules_free(r);
}

static void test_bad_patterns(void **state)
{
    char err[LOGRULES_ERR_MAX];
    (void)state;
    assert_null(logrules_new(false, "ok (?<addr>\\S+)\nbroken (?<addr>[0-9.+\n", "rules.txt",
                             err, sizeof err));
    assert_non_null(strstr(err, "rules.txt:2: pattern does not compile"));
    assert_null(logrules_new(false, "no group (\\S+)\n", "rules.txt", err, sizeof err));
    assert_non_null(strstr(err, "rules.txt:1: pattern has no group named addr"));
    assert_null(logrules_new(true, "# only a comment\n", "rules.txt", err, sizeof err));
    assert_non_null(strstr(err, "no rules"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_courier),
        cmocka_unit_test(test_postfix_smtpd),
        cmocka_unit_test(test_postscreen),
        cmocka_unit_test(test_exim),
        cmocka_unit_test(test_lists_named),
        cmocka_unit_test(test_near_misses),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_custom_rules),
        cmocka_unit_test(test_bad_patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
