/*
 * privsep - giving up root: the network-facing processes run as `user`
 * with no capabilities at all; the ban helper runs as `user` with only
 * CAP_NET_ADMIN (and, for watch_kill = process, what killing an MTA's
 * processes takes). Every step is checked; a failed step is an error the
 * caller treats as fatal (never go on as root by accident).
 *
 *   privsep_lookup()     the user's uid and gid; a missing user is an error
 *                        that names the fix
 *   privsep_dir_open()   open a directory for the work root does in it at
 *                        start (creating it when missing, giving it to the
 *                        user): the descriptor, not the path, is used from
 *                        then on
 *   privsep_own_dir()    the same for state_dir, always given to the user;
 *                        the named files in it must be the user's already
 *                        (a worker restarted after the drop opens them)
 *   privsep_dir_find()   open an existing directory the same way, to look
 *                        in it only (root's `breakwater ctl`)
 *   privsep_dir_shared() may someone other than root change the names in a
 *                        directory (then root must not work in it by name)
 *   privsep_enter(), privsep_leave()
 *                        work in a directory by name for a moment: it is
 *                        the working directory, and with a user, the
 *                        user's effective identity is taken (seteuid and
 *                        setegid, the saved IDs kept to come back, no
 *                        supplementary groups): what
 *                        is made or looked up in a directory the user can
 *                        change is made or looked up with the user's rights
 *   privsep_drop()       switch to the user (with the user's supplementary
 *                        groups, so that e.g. membership in `adm` lets
 *                        watch read /var/log/mail.log), keeping
 *                        CAP_NET_ADMIN or nothing
 *
 * The rule for what root does with files before the drop: no name inside a
 * directory the user can write is resolved with root's rights. A directory
 * is opened with O_NOFOLLOW|O_DIRECTORY from a parent only root can change
 * (or a sticky one, as /tmp), and is then changed through its descriptor
 * (fchown, fchmod); a file in it is opened with O_PATH|O_NOFOLLOW and kept
 * only if it is a regular file with one link owned by the user (no
 * symlink, no hard link, and no file of root's: a rename keeps one link,
 * so one of root's may have been moved there from any directory the user
 * can write; it is refused with the chown that gives it, for the admin
 * to decide; breakwater never makes one: the store is opened once root
 * is gone); a socket in it is made under the user's identity,
 * so it is the user's from the start and nothing is chowned by name.
 * Root's `breakwater ctl` connects there with the user's identity, to a
 * socket of the user's only (control.h). The directories above
 * state_dir's and the control socket's parents are trusted as the admin
 * set them (the defaults, /var/lib and /run, are root's).
 *
 * Started as another user than root, nothing is switched: the process
 * keeps what it was given (a systemd unit may grant CAP_NET_ADMIN).
 */
#ifndef BREAKWATER_PRIVSEP_H
#define BREAKWATER_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct privsep_user {
    uid_t uid;
    gid_t gid;
    char name[33];
};

/* True when running as root: the only case in which we switch users. */
bool privsep_is_root(void);
int privsep_lookup(const char *name, struct privsep_user *out, char *err, size_t errsize);
/* Opens path (an absolute path) as a directory, creating it with mode when
 * missing; a symlink as its last name is refused, never followed. user
 * NULL: nothing more (not root). Else its parent must be root's and not
 * writable by others unless sticky, and the directory is given to the user
 * (owner, group, mode) when it was made now, or always with give_existing
 * (one owned by neither root nor the user is then an error). Returns the
 * descriptor (O_RDONLY|O_DIRECTORY, close-on-exec), or -1 with err set. */
int privsep_dir_open(const char *path, const struct privsep_user *user, mode_t mode,
                     bool give_existing, char *err, size_t errsize);
/* Opens the existing directory path (absolute) to look names up in it
 * (O_PATH): a symlink as its last name is refused, never followed, and as
 * root its parent must be root's and not writable by others unless sticky.
 * Nothing is made or given away. Returns the descriptor (close-on-exec),
 * or -1 with err set. */
int privsep_dir_find(const char *path, char *err, size_t errsize);
/* privsep_dir_open() with give_existing, then files: NULL-terminated names
 * in it that must be the user's regular files with one link (those that
 * exist; the group is set to the user's), or NULL. */
int privsep_own_dir(const char *path, const struct privsep_user *user, mode_t mode,
                    const char *const *files, char *err, size_t errsize);
/* st: a directory's. True unless it is root's and writable by no one else. */
bool privsep_dir_shared(const struct stat *st);

#define PRIVSEP_GROUPS_MAX 256

/* Where privsep_enter() was, for privsep_leave(). */
struct privsep_at {
    int cwd;                 /* the working directory before (O_PATH) */
    bool as_user;
    uid_t euid;              /* the effective identity before: the user's is
                                taken as a whole, so that a socket's peer
                                (SO_PEERCRED) sees the user, not root */
    gid_t egid;
    int ngroups;
    gid_t groups[PRIVSEP_GROUPS_MAX];
};

/* Makes dir_fd the working directory, so that a name is looked up there
 * and nowhere else, and with user (root only) takes the user's fsuid and
 * fsgid with no supplementary groups: until privsep_leave(), what is made
 * or reached by name is made or reached with the user's rights (the
 * effective file capabilities are cleared meanwhile). Returns 0, or -1
 * with err set and nothing changed. */
int privsep_enter(int dir_fd, const struct privsep_user *user, struct privsep_at *at,
                  char *err, size_t errsize);
/* Back to the directory and identity before; -1 with err set when that
 * failed (the caller must stop). */
int privsep_leave(struct privsep_at *at, char *err, size_t errsize);

/* What a process keeps once it is the user: nothing (the network-facing
 * processes), CAP_NET_ADMIN (the ban helper), or CAP_NET_ADMIN with what
 * ending an MTA's processes needs (the helper of watch_kill = process:
 * CAP_KILL, and CAP_SYS_PTRACE with CAP_DAC_READ_SEARCH to read other
 * users' /proc/PID/fd). */
enum privsep_keep { PRIVSEP_KEEP_NOTHING, PRIVSEP_KEEP_NET_ADMIN, PRIVSEP_KEEP_NET_ADMIN_KILL };

int privsep_drop(const struct privsep_user *user, enum privsep_keep keep,
                 char *err, size_t errsize);

#endif
