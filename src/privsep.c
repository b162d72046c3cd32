/*
 * privsep - dropping root, keeping at most CAP_NET_ADMIN. See privsep.h.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
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
    strcpy(out->name, name);
    return 0;
}

/* privsep_chown_files - give the named files in path, if there, to the
 * user; nothing else in the directory is touched */
static int privsep_chown_files(const char *path, const char *const *files,
                               const struct privsep_user *user, char *err, size_t errsize)
{
    char file[4096];
    for (; files != NULL && *files != NULL; files++) {
        snprintf(file, sizeof file, "%s/%s", path, *files);
        if (lchown(file, user->uid, user->gid) < 0 && errno != ENOENT) {
            snprintf(err, errsize, "%s: cannot give it to uid %u: %s", file,
                     (unsigned)user->uid, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int privsep_own_dir(const char *path, const struct privsep_user *user, mode_t mode,
                    const char *const *files, char *err, size_t errsize)
{
    struct stat st;
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        snprintf(err, errsize, "%s: cannot create the directory: %s", path, strerror(errno));
        return -1;
    }
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "%s: not a directory", path);
        return -1;
    }
    if (user == NULL)
        return 0;
    if (chown(path, user->uid, user->gid) < 0 || chmod(path, mode) < 0) {
        snprintf(err, errsize, "%s: cannot give it to uid %u: %s", path,
                 (unsigned)user->uid, strerror(errno));
        return -1;
    }
    return privsep_chown_files(path, files, user, err, errsize);
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
