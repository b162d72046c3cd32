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
 *   logrules_free()
 *
 * Built-in rules (each checked against real lines, tests/data/logs):
 *   postfix-smtpd     NOQUEUE: reject: RCPT from name[ADDR]: 5xx ...
 *                     blocked using LIST   (smtpd; reject_warning is not a
 *                     rejection and does not match)
 *   postscreen        the same reject from postscreen, and `DNSBL rank N
 *                     for [ADDR]:PORT` (postscreen_dnsbl_action = drop logs
 *                     nothing else)
 *   courier           `error,relay=ADDR,...: 511 ...` (Courier never names
 *                     the list; an smtpaccess BLOCK looks the same) and
 *                     `dropped blocked connection from ADDR`
 *   exim              `[ADDR] ... rejected RCPT <...>: ... is in a black list
 *                     at LIST` / `is listed at LIST` / `blocked using LIST`
 *                     (a bare `deny dnslists` without `message =` logs no
 *                     reason and cannot be told from other denies)
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
    char list[LOGRULES_LIST_MAX];   /* "" when the line does not name it */
};

/* custom: the text of the rules file (NULL: none); origin names it in
 * errors. Returns NULL with err set. */
struct logrules *logrules_new(bool only_custom, const char *custom, const char *origin,
                              char *err, size_t errsize);
bool logrules_match(const struct logrules *r, const char *line, size_t len,
                    struct logrules_hit *hit);
size_t logrules_count(const struct logrules *r);
void logrules_free(struct logrules *r);

#endif
