/*
 * sentinel - which Redis is the fleet's master, asked of Redis Sentinel
 * (fleet_redis = redis-sentinel://...), on the libev loop: nothing here
 * blocks, every step has a bounded wait.
 *
 *   sentinel_new()      the sentinels' addresses (names resolved once, at
 *                       start, like a redis:// host)
 *   sentinel_ask()      the master is not known, or its link went: ask the
 *                       sentinels in turn, from the last one that answered,
 *                       `SENTINEL get-master-addr-by-name`; the answer goes
 *                       to the caller's function, which checks it (ROLE)
 *   sentinel_confirm()  that address is the master: the round is over;
 *                       keep a subscription to `+switch-master` on that
 *                       sentinel, whose news goes to the same function
 *   sentinel_reject()   that address is not the master (a replica, or
 *                       unreachable): the next sentinel is asked
 *   sentinel_via()      the sentinel whose answer is in use, as text
 *
 * A sentinel that does not answer (within SENTINEL_WAIT), refuses the
 * password, does not know the master's name, or answers something that is
 * not an address and port, is skipped. Rounds are paced: one starts at
 * least the back-off after the one before (SENTINEL_RETRY_MIN doubling to
 * SENTINEL_RETRY_MAX, back to the minimum once a master stayed confirmed
 * SENTINEL_STABLE seconds), so a master that hangs up or refuses writes
 * right after ROLE cannot make a reconnect loop; a round that tried every
 * sentinel is logged once per FLEET_LOG_INTERVAL. +switch-master news is
 * acted upon at most once per SENTINEL_SWITCH_MIN (the latest wins).
 * Words from a sentinel are untrusted: an answer is used only when it is
 * an IP address literal and a port; a +switch-master message only when it
 * names our master and parses the same way.
 */
#ifndef BREAKWATER_SENTINEL_H
#define BREAKWATER_SENTINEL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleetproto.h"

#define SENTINEL_WAIT 2.0
#define SENTINEL_RETRY_MIN 0.25
#define SENTINEL_RETRY_MAX 2.0
#define SENTINEL_STABLE 10.0   /* a master confirmed this long: rounds start quick again */
#define SENTINEL_SWITCH_MIN 1.0 /* seconds between two +switch-master acted upon */

struct sentinel;

/* A candidate master: addr is an IP address's text form. */
typedef void sentinel_master_fn(void *arg, const char *addr, uint16_t port);

/* auth: the fleet_sentinel_password text ("" none). NULL with err set. */
struct sentinel *sentinel_new(struct ev_loop *loop, const struct fleetproto_url *url,
                              const char *auth, sentinel_master_fn *fn, void *arg, char *err,
                              size_t errsize);
void sentinel_ask(struct sentinel *s);
void sentinel_confirm(struct sentinel *s);
void sentinel_reject(struct sentinel *s);
/* An address literal and a port from a sentinel: true and addr (text
 * form, ADDR_TEXT_MAX bytes) and port set, or false. */
bool sentinel_answer_parse(const char *addr_text, const char *port_text, char *addr,
                           uint16_t *port);
/* "ADDRESS:PORT" of the sentinel whose answer is in use; "" before one */
const char *sentinel_via(const struct sentinel *s);
void sentinel_free(struct sentinel *s);

#endif
