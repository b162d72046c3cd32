/*
 * control - the daemon's control socket (`control_socket`, a Unix stream
 * socket, mode 0600): one command line per connection, answered with zero
 * or more lines and then "ok" or "error: WHAT", then closed. Only root and
 * the daemon's own user may talk to it (peer credentials are checked).
 *
 *   ban ADDRESS[/LEN] [DURATION]  ban now (DURATION as in the config,
 *                            default the policy's length): the address's
 *                            network (bans.h), or ADDRESS/LEN
 *   unban ADDRESS[/LEN]      lift every ban that overlaps it
 *   bans                     address=A remaining=S reason=R count=N, one
 *                            line per active ban
 *   flush                    empty the verdict cache
 *   stats                    key value lines: this worker's ban counters,
 *                            and every worker's connections and totals
 *                            (from the shared metrics, metrics.h)
 *   reload                   read the configuration again (as SIGHUP does);
 *                            a broken one is refused with its file:line
 *                            error, keys that need a restart are named
 *
 *   control_listen()  create the socket (before privileges are dropped),
 *                     never by a path root resolves in a directory the
 *                     user can change (privsep.h)
 *   control_start()   serve it on the loop; control_stop()
 *   control_request() the client side, for `breakwater ctl` and `stats`.
 *                     It finds the socket's directory without following a
 *                     symlink (privsep_dir_find), holds the socket there
 *                     by an O_PATH descriptor (a symlink is refused) and
 *                     connects to that descriptor, never again to the
 *                     name. Run as root, in a directory others than root
 *                     can change (privsep_dir_shared), it connects with
 *                     the effective identity of the configured `user`
 *                     (privsep_lookup), to a socket owned by that user
 *                     only: it reaches only what the user could, and no
 *                     socket another user could rename there. The answer
 *                     is printed as dnsbl_txt_escape() prints TXT text
 *                     (printable ASCII, \xHH for the rest): whoever
 *                     listens there may have written it.
 *
 * The start's look at a socket already at the name holds it the same way
 * (control_pin) and connects through the descriptor, never by the name.
 *
 * Whoever listens on the socket may never answer, answer without end, or
 * send what poll() shows and recv() skips (a byte sent MSG_OOB): ctl
 * reads without blocking, gives up when CONTROL_WAIT seconds pass without
 * a byte or CONTROL_ANSWER_WAIT since the request, and stops
 * past the caller's cap on the answer (CONTROL_OUT_MAX, the longest answer
 * the daemon sends; CONTROL_STATS_MAX for `stats`, kept in memory); the
 * start's look gives up after CONTROL_WAIT seconds too.
 *
 * With workers, every worker serves the same listening socket: the store
 * and the helper are shared, so any of them can answer.
 *
 * Bounded: at most CONTROL_CONNECTIONS_MAX clients at once per worker (one
 * more gets "error: busy" and is closed), each with CONTROL_TIMEOUT
 * seconds to ask and read, so a peer that connects and stays silent, or
 * many of them, holds little memory and no answer buffers.
 */
#ifndef BREAKWATER_CONTROL_H
#define BREAKWATER_CONTROL_H

#include <ev.h>
#include <stdio.h>

#include "bans.h"
#include "conf.h"
#include "metrics.h"
#include "privsep.h"
#include "store.h"

#define CONTROL_LINE_MAX 512
#define CONTROL_CONNECTIONS_MAX 16
#define CONTROL_WAIT 5          /* seconds: ctl's wait for each part of an answer; the start's look */
#define CONTROL_ANSWER_WAIT 20  /* seconds: ctl's whole request */
#define CONTROL_OUT_MAX (256u << 20)  /* bytes: the longest answer sent, or read by ctl */
#define CONTROL_STATS_MAX (1u << 20)  /* bytes of a `stats` answer read (kept in memory) */

struct control;

/* path: the socket's; dir_fd: its directory, opened by the caller
 * (privsep_dir_open), in which every name is looked up. user: the socket's
 * owner (NULL: leave it to the current user); in a directory others than
 * root can change (privsep_dir_shared) the socket is made under the user's
 * file-system identity, else made by root and given to the user with
 * fchownat(AT_SYMLINK_NOFOLLOW). A socket already at the name is removed
 * when no one listens on it; one a daemon answers on, or whose backlog
 * stays full for CONTROL_WAIT seconds, is an error. Returns the listening
 * fd, or -1 with err set. */
int control_listen(const char *path, int dir_fd, const struct privsep_user *user, char *err,
                   size_t errsize);
/* The daemon's reload: returns 0 (note: "" or what the reload could not
 * change) or -1 (note: why it was refused). */
typedef int control_reload_fn(void *arg, char *note, size_t size);

struct control *control_start(struct ev_loop *loop, int fd, control_reload_fn *reload,
                              void *reload_arg, struct store *store, struct bans *bans,
                              const struct metrics *metrics);
void control_stop(struct control *c);

/* Sends line to the daemon at conf->control_socket (absolute; as root in
 * a directory others can change, as conf->user, to a socket of that
 * user's) and copies the answer to out (without the final "ok"), escaped;
 * an "error: ..." answer goes to err. Returns 0 for ok, 1 for an error
 * answer, 2 when the daemon cannot be reached, the whole answer is not in
 * within CONTROL_WAIT seconds ("no answer from the control socket PATH
 * within 5s"), or it is longer than max bytes ("... longer than MAX
 * bytes"; what came before is printed). */
int control_request(const struct conf *conf, const char *line, size_t max, FILE *out,
                    FILE *err);

#endif
