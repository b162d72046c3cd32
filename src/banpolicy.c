/*
 * banpolicy - ban lengths and escalation. See banpolicy.h.
 */
#include "banpolicy.h"

enum banpolicy_action banpolicy_next(const struct store_ban *prev, double now,
                                     double ban_time, double ban_time_max,
                                     double seconds, unsigned reason,
                                     struct store_ban *next)
{
    bool active = prev != NULL && !prev->unbanned && prev->until > now;
    double length;

    if (active && seconds == 0 && now - prev->last < BANPOLICY_REFRESH_MIN)
        return BANPOLICY_NOTHING;
    if (seconds > 0) {
        length = seconds;
        next->count = prev != NULL ? prev->count + 1 : 1;
    } else if (active) {
        length = prev->until - prev->last; /* refresh: same length again */
        next->count = prev->count;
    } else {
        next->count = prev != NULL ? prev->count + 1 : 1;
        length = ban_time;
        for (unsigned i = 1; i < next->count && length < ban_time_max; i++)
            length *= 2;
    }
    if (length > ban_time_max)
        length = ban_time_max;
    next->last = now;
    next->until = now + length;
    next->reason = (unsigned char)reason;
    next->peer = false;      /* a ban decided here */
    next->unbanned = false;
    return BANPOLICY_BAN;
}
