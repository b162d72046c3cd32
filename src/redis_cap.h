/*
 * redis_cap - a bound on the memory one Redis reply may take.
 *
 * hiredis 0.14 buffers a bulk string whole before handing it over and
 * builds an array's objects however many it declares: a Redis server, a
 * sentinel or a peer publishing on the channel could make a host hold
 * hundreds of megabytes with one reply. With the cap installed on a
 * context, a reply that would cost more than REDIS_CAP_BYTES (its bytes
 * waiting in the reader, or the objects made of it) fails the link with
 * an error instead; what the link does on an error (drop, reconnect, ask
 * the next sentinel) is unchanged. The largest reply we ask for is a
 * SCAN batch's MGET: FLEET_SCAN_COUNT messages, far below the cap.
 */
#ifndef BREAKWATER_REDIS_CAP_H
#define BREAKWATER_REDIS_CAP_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define REDIS_CAP_BYTES ((size_t)4 << 20)

/* One per context, kept by its owner for as long as the context lives. */
struct redis_cap {
    size_t used; /* what the reply being read has cost so far */
    bool over;   /* the cap ended the link */
};

/* redis_cap_install - count what the replies read by r make, from now on */
void redis_cap_install(redisReader *r, struct redis_cap *cap);

/* redis_cap_pending_over - whether the bytes waiting in c's reader for a
 * reply passed the cap; if so c has the error, and reads on it fail */
bool redis_cap_pending_over(redisContext *c);

/* redis_cap_attach - redisLibevAttach(), the cap installed, and every
 * read on the loop checked against it */
int redis_cap_attach(struct ev_loop *loop, redisAsyncContext *ac, struct redis_cap *cap);

/* redis_cap_why - c's error for a message: the cap, or hiredis's words */
const char *redis_cap_why(const redisContext *c);

#endif
