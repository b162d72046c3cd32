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

#include "follow.h"

#define JOURNAL_POLL_INTERVAL 1.0

struct journal;

/* directory: NULL for the local journal. Returns NULL with err set. */
struct journal *journal_start(struct ev_loop *loop, const char *directory, bool from_start,
                              follow_line_fn fn, void *arg, char *err, size_t errsize);
void journal_stop(struct journal *j);

#endif
