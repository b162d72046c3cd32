/*
 * journal - follow the systemd journal (sd-journal, libsystemd) for
 * `watch --journal`: on Debian 12 without a syslog daemon the journal is
 * the only place the MTA's log lines go.
 *
 *   journal_start()  the local journal, or the journal files of one
 *                    directory; new entries from now on (or every entry
 *                    with from_start), each delivered as the line a syslog
 *                    daemon would have written after its host name:
 *                    "IDENTIFIER[PID]: MESSAGE"
 *   journal_stop()
 *
 * Only the entries of trusted users are delivered: their _UID (a field
 * the journal fills in from the sender's credentials) must be one of the
 * trusted ids. SYSLOG_IDENTIFIER is what the sender says it is (`logger -t
 * postfix/smtpd` by any user), so an entry of anyone else never reaches
 * the rules; an entry without _UID (kernel, or a forwarded one that lost
 * it) neither. The first entry skipped is logged once.
 *
 * New entries are noticed through the journal's inotify descriptor on the
 * loop, plus a check every JOURNAL_POLL_INTERVAL for file systems without
 * inotify. An entry whose MESSAGE is binary (not text) is passed on as it
 * is, cut at FOLLOW_LINE_MAX.
 */
#ifndef BREAKWATER_JOURNAL_H
#define BREAKWATER_JOURNAL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "follow.h"

#define JOURNAL_POLL_INTERVAL 1.0
#define JOURNAL_TRUSTED_MAX 32

struct journal;

/* directory: NULL for the local journal; trusted[0..trusted_count): the
 * uids whose entries are read (at most JOURNAL_TRUSTED_MAX). Returns NULL
 * with err set. */
struct journal *journal_start(struct ev_loop *loop, const char *directory, bool from_start,
                              const uid_t *trusted, size_t trusted_count, follow_line_fn fn,
                              void *arg, char *err, size_t errsize);
void journal_stop(struct journal *j);

#endif
