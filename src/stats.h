/*
 * stats - `breakwater stats [-i SECONDS] [-n COUNT]`: a timestamped line
 * every interval (default 5 s) with the open connections (in all and by
 * state) and the rates since the last line: new connections, rejects
 * (listed, denylisted, pregreet sessions), relays (ended clean and
 * allowlisted sessions) and bans requested, per second. Computed by asking
 * the daemon `stats` over the control socket (control.h) each time.
 *
 *   stats_run()  the command (--json: one JSON object per line); returns
 *                the exit status (0 after COUNT lines,
 *                1 when the daemon stops answering, CMD_EXIT_USAGE for bad
 *                options)
 */
#ifndef BREAKWATER_STATS_H
#define BREAKWATER_STATS_H

#include <stdio.h>

#include "conf.h"

int stats_run(struct conf *conf, char **operands, int count);
/* The `key value` lines of `ctl stats` as one JSON object: a value is
 * written as it came only when it is a JSON number (RFC 8259: no hex, no
 * "1.", no "+1"); inf and nan, as %g writes them, are null. Returns 0, or
 * -1 (nothing written) when a line has another shape or value. */
int stats_json(const char *lines, FILE *out);

#endif
