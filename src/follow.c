/*
 * follow - read a growing log file line by line as `tail -F` does. See
 * follow.h for the contract; this comment says how it is kept.
 *
 * State: at most one open descriptor (fd, its dev/ino, offset = bytes of it
 * read so far), the piece of a line read without its newline yet
 * (pending[], at most FOLLOW_LINE_MAX bytes), and `skipping` while the rest
 * of a line that was too long is being dropped (also the rest of the line
 * that follow_start() found the file's end in the middle of: a fragment is
 * not a line). Lines that come whole in one read are handed over from the
 * read buffer without a copy.
 *
 * Every event (ev_stat on the path, or the timer) runs one check:
 *   1. no file open: open the path (waiting quietly while it is missing)
 *      and read from its start;
 *   2. fstat the descriptor: smaller than the offset means copytruncate:
 *      the piece of a line is delivered and reading starts over at 0;
 *   3. read what is new, in FOLLOW_CHUNK reads, at most FOLLOW_BUDGET bytes
 *      per check; more left means the timer is set to fire at once, so
 *      the rest comes on the next loop iteration after other watchers had
 *      their turn (a zero-delay timer rather than ev_idle, which would
 *      starve for as long as the loop has other events);
 *   4. at the end of the descriptor, stat the path. It still names our
 *      file: done. It names another file: rotation by rename. The old file
 *      has been read to its end; its piece of a line is delivered, and the
 *      new file is opened and read from its start. Until the new file has
 *      any bytes the old one is kept and read (logrotate's `create` makes
 *      an empty file and the writer moves to it only when told to: what
 *      it writes meanwhile still goes to the old one), unless the old one
 *      was deleted. The path is gone: a deleted file (no links) is
 *      finished and closed and the path waited for; a file renamed away
 *      with no new one yet is kept and read.
 *
 * Pacing: a quiet file is watched by ev_stat (a line comes at once) with
 * the timer every FOLLOW_POLL_INTERVAL as the safety net. But libev turns
 * each inotify event into about eight system calls (stat twice, statfs,
 * inotify_rm_watch, inotify_add_watch, ...): a writer doing one write() per
 * line at 100,000 lines/s would cost half a CPU. So once a check finds
 * something, ev_stat is stopped and the timer checks every
 * FOLLOW_BUSY_INTERVAL instead, until a check finds nothing new.
 *
 * Only regular files are followed: anything else at the path is an error,
 * logged rate-limited and retried, as are permission and read errors.
 *
 * The line callback may call follow_stop() (on this follower too): the
 * follower is then only marked, and freed once its own watcher callback
 * returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "follow.h"
#include "log.h"

#define FOLLOW_CHUNK ((size_t)64 << 10)   /* bytes per read() */
#define FOLLOW_BUDGET ((off_t)1 << 20)    /* bytes per check */
#define FOLLOW_SWITCHES_MAX 4             /* new files taken up per check */
#define FOLLOW_BUSY_INTERVAL 0.002        /* seconds between checks while busy */

enum follow_read_result {
    FOLLOW_READ_END,     /* read up to the file's current end */
    FOLLOW_READ_MORE,    /* the budget ran out first */
    FOLLOW_READ_FAILED,  /* logged; retried at the next check */
    FOLLOW_READ_STOPPED, /* the line callback called follow_stop() */
};

enum follow_next {
    FOLLOW_NEXT_NOW,     /* more to read: check again at once */
    FOLLOW_NEXT_BUSY,    /* the check had something: poll briefly */
    FOLLOW_NEXT_IDLE,    /* nothing new: wait for ev_stat or the poll */
};

enum follow_path_state {
    FOLLOW_PATH_SAME,     /* the path names the open file */
    FOLLOW_PATH_NEW,      /* take up the file at the path now */
    FOLLOW_PATH_GONE,     /* the open file was deleted: close it, wait */
    FOLLOW_PATH_KEEP,     /* keep reading the old file for now */
};

struct follow {
    struct ev_loop *loop;
    char *path;
    follow_line_fn fn;
    void *arg;
    int fd;              /* -1: no file open */
    dev_t dev;
    ino_t ino;
    off_t offset;        /* bytes of fd read so far */
    bool waiting;        /* the path was missing when last looked at */
    bool skipping;       /* dropping the rest of a line that was too long */
    bool running;        /* inside a watcher callback */
    bool stopped;        /* follow_stop() was called meanwhile */
    size_t pending_len;
    ev_stat stat_watcher;
    ev_timer timer;
    struct log_limit error_log;
    char pending[FOLLOW_LINE_MAX];
    char chunk[FOLLOW_CHUNK];
};

/* follow_emit - hand one line (newline removed) to the caller: a CR at its
 * end is dropped, and it is cut at FOLLOW_LINE_MAX */
static void follow_emit(struct follow *f, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > FOLLOW_LINE_MAX)
        len = FOLLOW_LINE_MAX;
    f->fn(f->arg, line, len);
}

/* follow_keep - add the piece of a line that has no newline yet; once it
 * is longer than FOLLOW_LINE_MAX its first FOLLOW_LINE_MAX bytes go out and
 * the rest of it is skipped (were the byte over the limit the CR before the
 * newline, those bytes are the whole line anyway) */
static void follow_keep(struct follow *f, const char *data, size_t len)
{
    size_t room = FOLLOW_LINE_MAX - f->pending_len;
    if (len <= room) {
        memcpy(f->pending + f->pending_len, data, len);
        f->pending_len += len;
        return;
    }
    memcpy(f->pending + f->pending_len, data, room);
    f->pending_len = 0;
    f->skipping = true;
    f->fn(f->arg, f->pending, FOLLOW_LINE_MAX);
}

/* follow_feed - split bytes into lines; returns false when the callback
 * stopped the follower */
static bool follow_feed(struct follow *f, const char *data, size_t len)
{
    while (len > 0 && !f->stopped) {
        const char *newline = memchr(data, '\n', len);
        size_t piece = newline != NULL ? (size_t)(newline - data) : len;
        if (f->skipping)
            ;  /* the rest of a line already delivered cut */
        else if (newline != NULL && f->pending_len == 0)
            follow_emit(f, data, piece);
        else
            follow_keep(f, data, piece);
        if (newline != NULL) {
            if (!f->skipping && f->pending_len > 0 && !f->stopped)
                follow_emit(f, f->pending, f->pending_len);
            f->pending_len = 0;
            f->skipping = false;
            piece++;
        }
        data += piece;
        len -= piece;
    }
    return !f->stopped;
}

/* follow_flush - the file being left ended without a newline: what it had
 * of its last line is delivered as a line */
static void follow_flush(struct follow *f)
{
    if (!f->skipping && f->pending_len > 0)
        f->fn(f->arg, f->pending, f->pending_len);
    f->pending_len = 0;
    f->skipping = false;
}

/* follow_close - leave the open file, delivering its unfinished line */
static void follow_close(struct follow *f)
{
    close(f->fd);
    f->fd = -1;
    follow_flush(f);
}

/* follow_at_end - start reading at the file's end; when it ends in the
 * middle of a line, the rest of that line is skipped (not a line of its
 * own: whatever matches lines would see a fragment) */
static void follow_at_end(struct follow *f, off_t size)
{
    char last = '\n';
    f->offset = size;
    if (size > 0 && pread(f->fd, &last, 1, size - 1) == 1 && last != '\n')
        f->skipping = true;
}

/* follow_open - open the path, to read it from its start or its end; false
 * when it is missing or unusable (a missing path is only noted, anything
 * else logged) */
static bool follow_open(struct follow *f, bool at_end)
{
    struct stat st;
    int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        bool missing = errno == ENOENT || errno == ENOTDIR;
        if (!missing)
            log_limited(&f->error_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                        "follow %s: %s (retrying)", f->path, strerror(errno));
        else if (!f->waiting)
            log_info("follow %s: does not exist (yet); waiting for it", f->path);
        f->waiting = missing;
        return false;
    }
    const char *problem = fstat(fd, &st) < 0 ? strerror(errno)
                          : !S_ISREG(st.st_mode) ? "not a regular file" : NULL;
    if (problem != NULL) {
        log_limited(&f->error_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                    "follow %s: %s (retrying)", f->path, problem);
        close(fd);
        return false;
    }
    if (f->waiting)
        log_info("follow %s: appeared; reading it from its start", f->path);
    f->waiting = false;
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->offset = 0;
    if (at_end)
        follow_at_end(f, st.st_size);
    return true;
}

/* follow_truncated - copytruncate: the file is now shorter than what was
 * read of it, so start over at its beginning */
static void follow_truncated(struct follow *f)
{
    log_info("follow %s: truncated; reading it again from its start", f->path);
    follow_flush(f);
    f->offset = 0;
}

/* follow_read - read and split what the open file has beyond the offset,
 * up to *budget bytes (decreased by what was read) */
static enum follow_read_result follow_read(struct follow *f, off_t *budget)
{
    while (*budget > 0) {
        ssize_t n = pread(f->fd, f->chunk, FOLLOW_CHUNK, f->offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return FOLLOW_READ_END;
        if (n < 0) {
            log_limited(&f->error_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                        "follow %s: read: %s (retrying)", f->path, strerror(errno));
            return FOLLOW_READ_FAILED;
        }
        f->offset += n;
        *budget -= n;
        if (!follow_feed(f, f->chunk, (size_t)n))
            return FOLLOW_READ_STOPPED;
        /* A short read of a regular file: that was its end for now. */
        if ((size_t)n < FOLLOW_CHUNK)
            return FOLLOW_READ_END;
    }
    return FOLLOW_READ_MORE;
}

/* follow_path_state - after the open file (fstat in open_st) was read to
 * its end: does the path still name it, and if not, what now */
static enum follow_path_state follow_path_state(struct follow *f,
                                                const struct stat *open_st)
{
    struct stat path_st;
    if (stat(f->path, &path_st) < 0) {
        if (errno != ENOENT && errno != ENOTDIR) {
            log_limited(&f->error_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                        "follow %s: %s (retrying)", f->path, strerror(errno));
            return FOLLOW_PATH_KEEP;
        }
        return open_st->st_nlink == 0 ? FOLLOW_PATH_GONE : FOLLOW_PATH_KEEP;
    }
    if (path_st.st_dev == f->dev && path_st.st_ino == f->ino && open_st->st_nlink > 0)
        return FOLLOW_PATH_SAME;
    if (path_st.st_size > 0 || open_st->st_nlink == 0)
        return FOLLOW_PATH_NEW;
    return FOLLOW_PATH_KEEP;
}

/* follow_read_new - truncation, then whatever the open file has beyond
 * the offset; *read is set when it had something */
static enum follow_read_result follow_read_new(struct follow *f, off_t *budget,
                                               struct stat *open_st, bool *read)
{
    if (fstat(f->fd, open_st) < 0) {
        log_limited(&f->error_log, ev_now(f->loop), LOG_LEVEL_WARNING,
                    "follow %s: fstat: %s (retrying)", f->path, strerror(errno));
        return FOLLOW_READ_FAILED;
    }
    if (open_st->st_size < f->offset) {
        follow_truncated(f);
        *read = true;
        if (f->stopped)
            return FOLLOW_READ_STOPPED;
    }
    if (open_st->st_size == f->offset)
        return FOLLOW_READ_END;
    *read = true;
    return follow_read(f, budget);
}

/* follow_check - one look at the file and the path (see the top of this
 * file): read what is new, follow rotation and truncation */
static enum follow_next follow_check(struct follow *f)
{
    off_t budget = FOLLOW_BUDGET;
    bool read = false;
    for (int opened = 0; opened <= FOLLOW_SWITCHES_MAX; opened++) {
        struct stat open_st;
        if (f->fd < 0 && !follow_open(f, false))
            break;
        enum follow_read_result result = follow_read_new(f, &budget, &open_st, &read);
        if (result == FOLLOW_READ_MORE)
            return FOLLOW_NEXT_NOW;
        if (result != FOLLOW_READ_END)
            break;
        enum follow_path_state state = follow_path_state(f, &open_st);
        if (state == FOLLOW_PATH_SAME || state == FOLLOW_PATH_KEEP)
            break;
        if (state == FOLLOW_PATH_NEW)
            log_info("follow %s: rotated; reading the new file from its start", f->path);
        follow_close(f);
        read = true;
        if (f->stopped)
            break;
        if (state == FOLLOW_PATH_GONE) {
            log_info("follow %s: deleted; waiting for it to come back", f->path);
            f->waiting = true;
        }
        if (opened == FOLLOW_SWITCHES_MAX)
            return FOLLOW_NEXT_NOW;  /* rotating faster than it is read */
    }
    return read ? FOLLOW_NEXT_BUSY : FOLLOW_NEXT_IDLE;
}

/* follow_schedule - after a check: while the file is busy, ev_stat (whose
 * every event costs libev several system calls) rests and the timer checks
 * every FOLLOW_BUSY_INTERVAL; once a check finds nothing new, ev_stat
 * watches again, with the timer at FOLLOW_POLL_INTERVAL as a safety net */
static void follow_schedule(struct follow *f, enum follow_next next)
{
    double after = next == FOLLOW_NEXT_NOW ? 0.
                   : next == FOLLOW_NEXT_BUSY ? FOLLOW_BUSY_INTERVAL
                   : FOLLOW_POLL_INTERVAL;
    if (next != FOLLOW_NEXT_IDLE) {
        ev_stat_stop(f->loop, &f->stat_watcher);
    } else if (!ev_is_active(&f->stat_watcher)) {
        ev_stat_start(f->loop, &f->stat_watcher);
        /* A write between the last read and the watch's first stat. */
        const ev_statdata *now = &f->stat_watcher.attr;
        if (f->fd >= 0 && now->st_nlink > 0 && now->st_ino == f->ino &&
            now->st_dev == f->dev && now->st_size != f->offset)
            after = 0.;
    }
    ev_timer_stop(f->loop, &f->timer);
    ev_timer_set(&f->timer, after, 0.);
    ev_timer_start(f->loop, &f->timer);
}

/* follow_free - release everything; watchers already stopped */
static void follow_free(struct follow *f)
{
    free(f->path);
    free(f);
}

/* follow_run - a watcher fired: check, then free if stopped meanwhile */
static void follow_run(struct follow *f)
{
    f->running = true;
    enum follow_next next = follow_check(f);
    f->running = false;
    if (f->stopped)
        follow_free(f);
    else
        follow_schedule(f, next);
}

/* follow_stat_cb - the path's stat data changed (inotify or libev's poll) */
static void follow_stat_cb(struct ev_loop *loop, ev_stat *w, int revents)
{
    (void)loop;
    (void)revents;
    follow_run(w->data);
}

/* follow_timer_cb - the periodic safety net, a busy file's next check, or
 * the rest of what the last check had no budget for */
static void follow_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    follow_run(w->data);
}

struct follow *follow_start(struct ev_loop *loop, const char *path, bool from_start,
                            follow_line_fn fn, void *arg)
{
    struct follow *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->path = strdup(path);
    if (f->path == NULL) {
        free(f);
        return NULL;
    }
    f->loop = loop;
    f->fn = fn;
    f->arg = arg;
    f->fd = -1;
    /* The end is taken now, not at the first check: lines written from
     * here on are delivered. Reading itself happens from the loop. */
    follow_open(f, !from_start);
    ev_stat_init(&f->stat_watcher, follow_stat_cb, f->path, 0.);
    f->stat_watcher.data = f;
    ev_timer_init(&f->timer, follow_timer_cb, 0., 0.);
    f->timer.data = f;
    ev_timer_start(loop, &f->timer);
    return f;
}

void follow_stop(struct follow *f)
{
    if (f == NULL || f->stopped)
        return;
    ev_stat_stop(f->loop, &f->stat_watcher);
    ev_timer_stop(f->loop, &f->timer);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->stopped = true;
    if (!f->running)
        follow_free(f);
}
