/*
 * banpolicy - how long a ban lasts. Pure: the caller passes the time and
 * the address's record (store.h), gets the new record and what to do.
 *
 *   a first ban                     ban_time
 *   again while still banned        the same length again from now (the
 *                                   client tried again: the ban is
 *                                   refreshed), but not more than once a
 *                                   second, so the many connections of one
 *                                   bot cost one firewall update
 *   again after the ban ended       twice the previous length, at most
 *                                   ban_time_max (a repeat offender)
 *   by hand (ctl ban, seconds > 0)  that long, counted like any other
 */
#ifndef BREAKWATER_BANPOLICY_H
#define BREAKWATER_BANPOLICY_H

#include <stdbool.h>

#include "store.h"

#define BANPOLICY_REFRESH_MIN 1.0 /* seconds between refreshes */

enum banpolicy_action {
    BANPOLICY_NOTHING, /* already banned a moment ago */
    BANPOLICY_BAN,     /* put the address in the firewall for next->until */
};

/* prev: the address's record, or NULL. seconds: a length given by hand,
 * or 0 for the policy. Fills *next when the answer is BANPOLICY_BAN. */
enum banpolicy_action banpolicy_next(const struct store_ban *prev, double now,
                                     double ban_time, double ban_time_max,
                                     double seconds, unsigned reason,
                                     struct store_ban *next);

#endif
