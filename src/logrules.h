/*
 * logrules - recognise the lines in which an MTA refused a client because
 * of a DNS blocklist, and the client's address in them. Pure: a line in,
 * an address (and the list, when the line names it) out.
 *
 *   logrules_new()    the built-in rules (unless only_custom), then one
 *                     PCRE2 pattern per line of the custom rules text;
 *                     a pattern that does not compile or lacks a group
 *                     named `addr` is an error naming its line
 *   logrules_match()  the first rule that matches the line and yields a
 *                     valid IP address (IPv4-mapped IPv6 becomes IPv4)
 *   logrules_unanchored()  the custom rules that may match anywhere in a
 *                     line (not anchored with ^), for a warning at start
 *   logrules_free()
 *
 * Trust: a log line mixes the MTA's words with a client's (sender, HELO
 * name, recipients, message-id). Every built-in rule is anchored at the
 * start of the line and reads the address from the MTA's own client field
 * at its fixed place: after the syslog prefix (RFC 3339 or BSD time and
 * host; none in lines from the journal), the MTA's program[pid] field and
 * the fixed words before the client. Where the MTA names the client twice
 * (Postfix's `Client host [ADDR]`) both must be the same address (a group
 * named addr2). A reject-shaped text inside a client's field therefore
 * matches nothing, and at worst a client can make a line about itself
 * match. The list name is the log's text: it is returned with every byte
 * outside printable ASCII replaced by '?'.
 *
 * Built-in rules (each checked against real lines, tests/data/logs):
 *   postfix-smtpd     NAME/smtpd[PID]: NOQUEUE: reject: RCPT from
 *                     name[ADDR]: 5xx 5.x.y TEXT; Client host [ADDR]
 *                     blocked using LIST   (reject_warning is not a
 *                     rejection and does not match; NAME is syslog_name)
 *   postscreen        the same reject from NAME/postscreen[PID], and
 *                     `DNSBL rank N for [ADDR]:PORT` (postscreen_dnsbl_action
 *                     = drop logs nothing else)
 *   courier           `courieresmtpd: error,relay=ADDR,port=N,from=<..>[,to=<..>]:
 *                     511 ...` (Courier never names the list; an
 *                     smtpaccess BLOCK looks the same) and `courieresmtpd:
 *                     dropped blocked connection from ADDR`
 *   exim              mainlog `DATE TIME [pid] H=... [ADDR] ... rejected RCPT
 *                     <...>: ... is in a black list at LIST` / `is listed at
 *                     LIST` / `blocked using LIST`, or the same through
 *                     syslog after `exim[PID]: ` (a bare `deny dnslists`
 *                     without `message =` logs no reason and cannot be told
 *                     from other denies)
 *
 * Lines are bytes: invalid UTF-8 is matched as it is (no UTF mode), and a
 * line may hold NUL bytes.
 */
#ifndef BREAKWATER_LOGRULES_H
#define BREAKWATER_LOGRULES_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define LOGRULES_LIST_MAX 256
#define LOGRULES_ERR_MAX 512

struct logrules;

struct logrules_hit {
    struct addr addr;
    const char *rule;               /* the rule's name */
    char list[LOGRULES_LIST_MAX];   /* "" when the line does not name it;
                                       printable ASCII */
};

/* custom: the text of the rules file (NULL: none); origin names it in
 * errors. Returns NULL with err set. */
struct logrules *logrules_new(bool only_custom, const char *custom, const char *origin,
                              char *err, size_t errsize);
bool logrules_match(const struct logrules *r, const char *line, size_t len,
                    struct logrules_hit *hit);
size_t logrules_count(const struct logrules *r);
/* The name of the next rule from *next on that is not anchored, or NULL;
 * *next moves past it. Start with *next = 0. */
const char *logrules_unanchored(const struct logrules *r, size_t *next);
void logrules_free(struct logrules *r);

#endif
