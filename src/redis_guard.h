/*
 * redis_guard - what a Redis peer may send us, checked before hiredis
 * acts on it.
 *
 * hiredis (0.14 on bookworm) trusts its peer: it buffers a bulk string
 * whole and builds an array's objects however many it declares, and its
 * asynchronous context aborts the process (assert) on a reply that no
 * command waits for, or on a pub/sub message of the wrong shape. A Redis
 * server or a sentinel could so take a host's memory, or stop it. With
 * the guard on a context:
 *  - one reply may cost at most REDIS_GUARD_BYTES (its bytes waiting in
 *    the reader, or the objects made of it);
 *  - on an asynchronous context, a reply must have a command waiting for
 *    it, or, on a subscribed one, be a message that hiredis can read
 *    (an array of at least three, two strings first, a subscription
 *    the link's own channel, an unsubscribe's count an integer); an
 *    error reply nobody waits for hiredis handles itself (it drops the
 *    link);
 *  - commands may wait unsent up to REDIS_GUARD_BYTES (a peer that
 *    answers without reading cannot make us queue without end).
 * Anything else fails the link with an error; what the link does on an
 * error (drop, reconnect, ask the next sentinel) is unchanged.
 */
#ifndef BREAKWATER_REDIS_GUARD_H
#define BREAKWATER_REDIS_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define REDIS_GUARD_BYTES ((size_t)4 << 20)

/* One per context, kept by its owner for as long as the context lives. */
struct redis_guard {
    const redisAsyncContext *ac; /* NULL for a blocking context */
    size_t used;                 /* what the reply being read has cost so far */
    bool message;                /* it is a pub/sub message no command waits for */
    char channel[80];            /* the one channel the link subscribes to */
    const char *why;             /* why the guard ended the link, or NULL */
};

/* redis_guard_install - check the replies read by r from now on; ac is
 * the asynchronous context r belongs to, or NULL */
void redis_guard_install(redisReader *r, const redisAsyncContext *ac, struct redis_guard *g);

/* redis_guard_pending_over - whether the bytes waiting in c's reader for a
 * reply passed the bound; if so c has the error, and reads on it fail */
bool redis_guard_pending_over(redisContext *c);

/* redis_guard_attach - redisLibevAttach(), the guard installed, and every
 * read on the loop checked against it */
int redis_guard_attach(struct ev_loop *loop, redisAsyncContext *ac, struct redis_guard *g);

/* redis_guard_unsent_over - whether the commands waiting to be sent on ac
 * passed the bound (the caller then drops the link) */
bool redis_guard_unsent_over(const redisAsyncContext *ac);

/* redis_guard_subscribe - the link subscribes to channel, its only one */
void redis_guard_subscribe(struct redis_guard *g, const char *channel);

/* redis_guard_why - c's error for a message: the guard's, hiredis's, or
 * "closed" when there is none (the peer hung up) */
const char *redis_guard_why(const redisContext *c);

#endif
