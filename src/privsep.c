/*
 * privsep - dropping root, keeping at most CAP_NET_ADMIN; the directories
 * and files root hands to the user before that. See privsep.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "privsep.h"

bool privsep_is_root(void)
{
    return geteuid() == 0;
}

int privsep_lookup(const char *name, struct privsep_user *out, char *err, size_t errsize)
{
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (pw == NULL) {
        snprintf(err, errsize, "user '%s' does not exist: create it with `make install` "
                 "or `useradd --system --no-create-home --shell /usr/sbin/nologin %s`, "
                 "or set user to an existing one", name, name);
        return -1;
    }
    if (pw->pw_uid == 0) {
        snprintf(err, errsize, "user '%s' is root: breakwater must not serve as root", name);
        return -1;
    }
    if (strlen(name) >= sizeof out->name) {
        snprintf(err, errsize, "user '%s': name too long", name);
        return -1;
    }
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(out->name, name);
    return 0;
}

/* privsep_split - path without trailing slashes into its parent
 * directory and last name ("" for "/"); -1 when a part does not fit */
static int privsep_split(const char *path, char *parent, size_t psize, char *name,
                         size_t nsize)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *slash = memrchr(path, '/', len);
    if (slash == NULL || len >= psize)
        return -1;
    size_t plen = slash == path ? 1 : (size_t)(slash - path);
    size_t nlen = len == 1 ? 0 : len - (size_t)(slash - path) - 1;
    if (nlen >= nsize)
        return -1;
    memcpy(parent, path, plen);
    parent[plen] = '\0';
    memcpy(name, slash + 1, nlen);
    name[nlen] = '\0';
    return 0;
}

bool privsep_dir_shared(const struct stat *st)
{
    return st->st_uid != 0 || (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

/* privsep_parent_check - the directory holding one we give away: root's,
 * and writable by others only if sticky (others cannot then rename or
 * remove root's names in it) */
static int privsep_parent_check(int parent_fd, const char *parent, const char *path,
                                char *err, size_t errsize)
{
    struct stat st;
    if (fstat(parent_fd, &st) < 0) {
        snprintf(err, errsize, "%s: %s", parent, strerror(errno));
        return -1;
    }
    if (!privsep_dir_shared(&st) || (st.st_uid == 0 && (st.st_mode & S_ISVTX) != 0))
        return 0;
    snprintf(err, errsize, "%s: the directory holding %s is owned by uid %u or writable by "
             "others (mode %04o): it must be root's and writable by root alone, or "
             "sticky as /tmp", parent, path, (unsigned)st.st_uid,
             (unsigned)(st.st_mode & 07777));
    return -1;
}

/* privsep_give_dir - an open directory to the user: owner, group, mode */
static int privsep_give_dir(int fd, const char *path, const struct privsep_user *user,
                            mode_t mode, char *err, size_t errsize)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != user->uid) {
        snprintf(err, errsize, "%s: owned by uid %u, neither root nor %s: not given to %s",
                 path, (unsigned)st.st_uid, user->name, user->name);
        return -1;
    }
    if (fchown(fd, user->uid, user->gid) < 0 || fchmod(fd, mode) < 0) {
        snprintf(err, errsize, "%s: cannot give it to uid %u: %s", path,
                 (unsigned)user->uid, strerror(errno));
        return -1;
    }
    return 0;
}

/* privsep_open_root - "/" itself: opened, never given away */
static int privsep_open_root(bool give, char *err, size_t errsize)
{
    int fd = give ? -1 : open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errsize, "/: %s", give ? "not given to the user" : strerror(errno));
    return fd;
}

/* privsep_parent_open - path's parent directory, opened (O_PATH: only
 * looked in), and path's last name into name ("" for "/", its own
 * parent); with check, the parent must be root's and writable by root
 * alone, or sticky. Returns the descriptor, or -1 with err set. */
static int privsep_parent_open(const char *path, bool check, char *name, size_t nsize,
                               char *err, size_t errsize)
{
    char parent[4096];
    if (privsep_split(path, parent, sizeof parent, name, nsize) < 0) {
        snprintf(err, errsize, "%s: not a usable directory path", path);
        return -1;
    }
    int fd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errsize, "%s: cannot open the directory: %s", parent, strerror(errno));
    else if (check && privsep_parent_check(fd, parent, path, err, errsize) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* privsep_open_error - why openat(O_DIRECTORY|O_NOFOLLOW) failed: a
 * symlink says so (the kernel says ELOOP or ENOTDIR) */
static void privsep_open_error(int parent_fd, const char *name, const char *path, char *err,
                               size_t errsize)
{
    int e = errno;
    struct stat st;
    if ((e == ELOOP || e == ENOTDIR) && fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        snprintf(err, errsize, "%s: a symlink (not followed here): name the directory it "
                 "points to instead", path);
    else
        snprintf(err, errsize, "%s: cannot open the directory: %s", path, strerror(e));
}

int privsep_dir_open(const char *path, const struct privsep_user *user, mode_t mode,
                     bool give_existing, char *err, size_t errsize)
{
    char name[256];
    int parent_fd = privsep_parent_open(path, user != NULL, name, sizeof name, err, errsize);
    if (parent_fd < 0)
        return -1;
    if (name[0] == '\0') {      /* "/" is its own parent */
        close(parent_fd);
        return privsep_open_root(user != NULL && give_existing, err, errsize);
    }
    bool made = mkdirat(parent_fd, name, mode) == 0;
    int fd = -1;
    if (!made && errno != EEXIST)
        snprintf(err, errsize, "%s: cannot create the directory: %s", path, strerror(errno));
    else if ((fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        privsep_open_error(parent_fd, name, path, err, errsize);
    close(parent_fd);
    if (fd >= 0 && user != NULL && (made || give_existing) &&
        privsep_give_dir(fd, path, user, mode, err, errsize) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int privsep_dir_find(const char *path, char *err, size_t errsize)
{
    char name[256];
    int parent_fd = privsep_parent_open(path, privsep_is_root(), name, sizeof name, err, errsize);
    if (parent_fd < 0 || name[0] == '\0')
        return parent_fd;       /* "/" is its own parent */
    int fd = openat(parent_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        privsep_open_error(parent_fd, name, path, err, errsize);
    close(parent_fd);
    return fd;
}

/* privsep_give_file - one named file in dir_fd kept for the user, if
 * there: a regular file with one link of the user's already (its group
 * set to the user's). Root's is refused too: a rename keeps one link,
 * and the user may rename any root file it can reach on this file system
 * (a non-sticky directory it may write) into its own directory. No
 * version of breakwater makes these files as root (the store is opened
 * only once root is gone): one of root's is a restore, or a tool run as
 * root, for the admin to check and chown. A symlink, a hard link or
 * another kind of file is refused, never followed. */
static int privsep_give_file(int dir_fd, const char *path, const char *name,
                             const struct privsep_user *user, char *err, size_t errsize)
{
    struct stat st;
    int fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    int rc = fd < 0 || fstat(fd, &st) < 0 ? -1 : 0;
    if (rc < 0)
        snprintf(err, errsize, "%s/%s: %s", path, name, strerror(errno));
    else if (S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == 0) {
        snprintf(err, errsize, "%s/%s: root's, not %s's: root gives no file in %s away (made "
                 "by root: a restore, a tool run as root?); if it is the store, `chown %s: "
                 "%s/%s`, else remove it", path, name, user->name, path, user->name, path,
                 name);
        rc = -1;
    } else if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != user->uid) {
        snprintf(err, errsize, "%s/%s: not a plain file of %s's (a symlink, a file with %lu "
                 "links, or owned by uid %u): not given to %s; remove it", path, name,
                 user->name, (unsigned long)st.st_nlink, (unsigned)st.st_uid, user->name);
        rc = -1;
    } else if (st.st_gid != user->gid &&
               fchownat(fd, "", user->uid, user->gid, AT_EMPTY_PATH) < 0) {
        snprintf(err, errsize, "%s/%s: cannot give it to gid %u: %s", path, name,
                 (unsigned)user->gid, strerror(errno));
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int privsep_own_dir(const char *path, const struct privsep_user *user, mode_t mode,
                    const char *const *files, char *err, size_t errsize)
{
    int fd = privsep_dir_open(path, user, mode, true, err, errsize);
    if (fd < 0)
        return -1;
    int rc = 0;
    for (; rc == 0 && user != NULL && files != NULL && *files != NULL; files++)
        rc = privsep_give_file(fd, path, *files, user, err, errsize);
    close(fd);
    return rc;
}

/* privsep_fs_become - the user's effective uid and gid (the file-system
 * ones follow), no supplementary groups; what was there saved in at */
static int privsep_fs_become(const struct privsep_user *user, struct privsep_at *at,
                             char *err, size_t errsize)
{
    at->ngroups = getgroups(PRIVSEP_GROUPS_MAX, at->groups);
    at->euid = geteuid();
    at->egid = getegid();
    if (at->ngroups < 0 || setgroups(0, NULL) < 0) {
        snprintf(err, errsize, "cannot %s the supplementary groups: %s",
                 at->ngroups < 0 ? "save" : "clear", strerror(errno));
        return -1;
    }
    /* the effective ids (the file-system ones follow them); the saved
     * set-user-ID stays root's, to come back */
    if (setegid(user->gid) < 0 || seteuid(user->uid) < 0) {
        snprintf(err, errsize, "cannot take uid %u's identity: %s", (unsigned)user->uid,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* privsep_fs_restore - the identity saved by privsep_fs_become() */
static int privsep_fs_restore(const struct privsep_at *at, char *err, size_t errsize)
{
    if (seteuid(at->euid) < 0 || setegid(at->egid) < 0 ||
        setgroups((size_t)at->ngroups, at->groups) < 0 || geteuid() != at->euid) {
        snprintf(err, errsize, "cannot take back the identity of uid %u: %s",
                 (unsigned)at->euid, strerror(errno));
        return -1;
    }
    return 0;
}

int privsep_enter(int dir_fd, const struct privsep_user *user, struct privsep_at *at,
                  char *err, size_t errsize)
{
    char ignored[64];
    at->as_user = false;
    at->cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (at->cwd < 0 && errno == EACCES) /* started in a directory we may not search: come back to / */
        at->cwd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (at->cwd < 0 || fchdir(dir_fd) < 0) {
        snprintf(err, errsize, "cannot enter the directory: %s", strerror(errno));
        if (at->cwd >= 0)
            close(at->cwd);
        return -1;
    }
    if (user != NULL && privsep_fs_become(user, at, err, errsize) < 0) {
        if (at->ngroups >= 0)
            (void)privsep_fs_restore(at, ignored, sizeof ignored);
        (void)!fchdir(at->cwd);
        close(at->cwd);
        return -1;
    }
    at->as_user = user != NULL;
    return 0;
}

int privsep_leave(struct privsep_at *at, char *err, size_t errsize)
{
    int rc = at->as_user ? privsep_fs_restore(at, err, errsize) : 0;
    if (fchdir(at->cwd) < 0 && rc == 0) {
        snprintf(err, errsize, "cannot return to the working directory: %s", strerror(errno));
        rc = -1;
    }
    close(at->cwd);
    return rc;
}

/* privsep_set_caps - exactly what keep names (permitted and effective) */
static int privsep_set_caps(enum privsep_keep keep, char *err, size_t errsize)
{
    static const cap_value_t kept[] = {CAP_NET_ADMIN, CAP_KILL, CAP_SYS_PTRACE,
                                       CAP_DAC_READ_SEARCH};
    int n = keep == PRIVSEP_KEEP_NOTHING ? 0 : keep == PRIVSEP_KEEP_NET_ADMIN ? 1 : 4;
    cap_t caps = cap_init();
    int rc = caps == NULL ? -1 : 0;
    if (rc == 0 && n > 0)
        rc = cap_set_flag(caps, CAP_PERMITTED, n, kept, CAP_SET) |
             cap_set_flag(caps, CAP_EFFECTIVE, n, kept, CAP_SET);
    if (rc == 0)
        rc = cap_set_proc(caps);
    if (rc != 0)
        snprintf(err, errsize, "cannot set capabilities: %s", strerror(errno));
    if (caps != NULL)
        cap_free(caps);
    return rc == 0 ? 0 : -1;
}

int privsep_drop(const struct privsep_user *user, enum privsep_keep keep,
                 char *err, size_t errsize)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (initgroups(user->name, user->gid) < 0 ||
        setresgid(user->gid, user->gid, user->gid) < 0) {
        snprintf(err, errsize, "cannot switch to gid %u: %s", (unsigned)user->gid,
                 strerror(errno));
        return -1;
    }
    if (keep != PRIVSEP_KEEP_NOTHING && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
        snprintf(err, errsize, "cannot keep capabilities: %s", strerror(errno));
        return -1;
    }
    if (setresuid(user->uid, user->uid, user->uid) < 0) {
        snprintf(err, errsize, "cannot switch to uid %u: %s", (unsigned)user->uid,
                 strerror(errno));
        return -1;
    }
    if (privsep_set_caps(keep, err, errsize) < 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, errsize, "cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    /* check, rather than trust, that root is gone for good */
    if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
        ruid != user->uid || euid != user->uid || suid != user->uid ||
        rgid != user->gid || egid != user->gid || sgid != user->gid || setuid(0) == 0) {
        snprintf(err, errsize, "privileges were not dropped");
        return -1;
    }
    return 0;
}
