/*
 * privsep - giving up root: the network-facing processes run as `user`
 * with no capabilities at all; the ban helper runs as `user` with only
 * CAP_NET_ADMIN (and, for watch_kill = process, what killing an MTA's
 * processes takes). Every step is checked; a failed step is an error the
 * caller treats as fatal (never go on as root by accident).
 *
 *   privsep_lookup()   the user's uid and gid; a missing user is an error
 *                      that names the fix
 *   privsep_own_dir()  create a directory if missing and give it, and the
 *                      named files in it, to the user, so that a worker
 *                      restarted after the drop can open them
 *   privsep_drop()     switch to the user (with the user's supplementary
 *                      groups, so that e.g. membership in `adm` lets
 *                      watch read /var/log/mail.log), keeping
 *                      CAP_NET_ADMIN or nothing
 *
 * Started as another user than root, nothing is switched: the process
 * keeps what it was given (a systemd unit may grant CAP_NET_ADMIN).
 */
#ifndef BREAKWATER_PRIVSEP_H
#define BREAKWATER_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct privsep_user {
    uid_t uid;
    gid_t gid;
    char name[33];
};

/* True when running as root: the only case in which we switch users. */
bool privsep_is_root(void);
int privsep_lookup(const char *name, struct privsep_user *out, char *err, size_t errsize);
/* user NULL: only create the directory. files: NULL-terminated names in
 * it to give to the user too (those that exist), or NULL. */
int privsep_own_dir(const char *path, const struct privsep_user *user, mode_t mode,
                    const char *const *files, char *err, size_t errsize);
/* What a process keeps once it is the user: nothing (the network-facing
 * processes), CAP_NET_ADMIN (the ban helper), or CAP_NET_ADMIN with what
 * ending an MTA's processes needs (the helper of watch_kill = process:
 * CAP_KILL, and CAP_SYS_PTRACE with CAP_DAC_READ_SEARCH to read other
 * users' /proc/PID/fd). */
enum privsep_keep { PRIVSEP_KEEP_NOTHING, PRIVSEP_KEEP_NET_ADMIN, PRIVSEP_KEEP_NET_ADMIN_KILL };

int privsep_drop(const struct privsep_user *user, enum privsep_keep keep,
                 char *err, size_t errsize);

#endif
