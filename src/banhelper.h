/*
 * banhelper - the only process that touches the firewall. Forked by serve
 * while still root: it opens the firewall backend (fw.h), drops to `user`
 * keeping CAP_NET_ADMIN alone, then applies the bans that arrive on its
 * sockets until they all close.
 *
 *   banhelper_start()  fork the helper with one socket per worker; returns
 *                      once it has opened the firewall (or with the error
 *                      that stopped it: a missing set names the command
 *                      that creates it)
 *
 * Protocol (banproto.h): fixed-size requests over SOCK_SEQPACKET, each
 * checked; a malformed one is refused, logged and counted in the reply,
 * never applied. Only watch's helper ends connections: a BAN_KILL sent to
 * serve's (which only a compromised serve process would send) is refused
 * whole (no ban, nothing ended), counted as failed with its reason in the
 * reply, and logged the first time (banproto_request_allowed).
 *
 * Batching: in a wave (bans keep coming), the requests that
 * arrive within BANHELPER_GATHER of the first one (at most BANHELPER_BATCH
 * per socket) go into the firewall in one transaction per socket, so
 * thousands of bans a second cost a few hundred transactions; a ban after a
 * quiet spell goes in at once.
 *
 * Ending connections (watch's helper): the ban goes in at once, the
 * connections end watch_kill_delay later (an MTA may log its refusal
 * before it writes it; half the ban at most, so never after it ended), reported in a reply of their own (applied 0,
 * killed N). Once every socket has closed, the helper exits when the last
 * pending kill is done.
 */
#ifndef BREAKWATER_BANHELPER_H
#define BREAKWATER_BANHELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conf.h"
#include "privsep.h"

#define BANHELPER_BATCH 1024
#define BANHELPER_GATHER 0.002 /* seconds */
#define BANHELPER_BUSY 0.05    /* seconds: a batch within this of the last is a wave */
#define BANHELPER_KILLS_PENDING 4096 /* per socket; the oldest go early when it is full */

/* user: NULL when not started as root (no switch). kills: the helper of
 * `watch`, which ends banned addresses' connections (watch_kill; with
 * `process` it keeps CAP_KILL, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH as
 * well); false for serve's, which refuses BAN_KILL. Fills fds[0..count)
 * with the daemon's ends (non-blocking, close-on-exec). Returns the
 * helper's pid, or -1 with err set. */
pid_t banhelper_start(const struct conf *conf, const struct privsep_user *user, bool kills,
                      int *fds, size_t count, char *err, size_t errsize);

#endif
