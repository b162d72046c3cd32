/*
 * journal - new journal entries as log lines. See journal.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>

#include "journal.h"
#include "log.h"

struct journal {
    struct ev_loop *loop;
    sd_journal *j;
    uid_t trusted[JOURNAL_TRUSTED_MAX];
    size_t trusted_count;
    bool told;             /* an untrusted sender's entry was skipped and said so */
    follow_line_fn fn;
    void *arg;
    ev_io io;
    ev_timer poll;
    char line[FOLLOW_LINE_MAX];
};

/* journal_field - the value of FIELD=value in the current entry, or NULL */
static const char *journal_field(sd_journal *j, const char *field, size_t *len)
{
    const void *data;
    size_t n, prefix = strlen(field) + 1;
    if (sd_journal_get_data(j, field, &data, &n) < 0 || n < prefix)
        return NULL;
    *len = n - prefix;
    return (const char *)data + prefix;
}

/* journal_trusted - was the current entry logged by a process of one of the
 * trusted users? _UID is the journal's own field (the sender's credentials
 * as the kernel gave them), never the sender's words */
static bool journal_trusted(struct journal *jr)
{
    size_t len;
    char text[16];
    const char *uid = journal_field(jr->j, "_UID", &len);
    if (uid == NULL || len == 0 || len >= sizeof text)
        return false;
    memcpy(text, uid, len);
    text[len] = '\0';
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || text[0] < '0' || text[0] > '9')
        return false;
    for (size_t i = 0; i < jr->trusted_count; i++)
        if (jr->trusted[i] == v)
            return true;
    if (!jr->told)
        log_info("journal: entries of uid %lu (not one of watch_journal_users) are not read; "
                 "said once", v);
    jr->told = true;
    return false;
}

/* journal_deliver - the current entry as "IDENT[PID]: MESSAGE", if one of
 * the trusted users logged it */
static void journal_deliver(struct journal *jr)
{
    size_t ident_len = 0, pid_len = 0, msg_len = 0;
    if (!journal_trusted(jr))
        return;
    const char *ident = journal_field(jr->j, "SYSLOG_IDENTIFIER", &ident_len);
    const char *pid = journal_field(jr->j, "_PID", &pid_len);
    const char *msg = journal_field(jr->j, "MESSAGE", &msg_len);
    if (msg == NULL)
        return;
    int head = snprintf(jr->line, sizeof jr->line, pid ? "%.*s[%.*s]: " : "%.*s: ",
                        ident ? (int)(ident_len > 256 ? 256 : ident_len) : 1, ident ? ident : "-",
                        (int)(pid_len > 16 ? 16 : pid_len), pid ? pid : "");
    size_t room = sizeof jr->line - (size_t)head;
    size_t n = msg_len < room ? msg_len : room;
    memcpy(jr->line + head, msg, n);
    jr->fn(jr->arg, jr->line, (size_t)head + n);
}

/* journal_drain - deliver every entry after the cursor */
static void journal_drain(struct journal *jr)
{
    int rc;
    sd_journal_process(jr->j);
    while ((rc = sd_journal_next(jr->j)) > 0)
        journal_deliver(jr);
    if (rc < 0)
        log_error("journal: cannot read the next entry: %s", strerror(-rc));
}

static void journal_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    journal_drain(w->data);
}

static void journal_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    journal_drain(w->data);
}

struct journal *journal_start(struct ev_loop *loop, const char *directory, bool from_start,
                              const uid_t *trusted, size_t trusted_count, follow_line_fn fn,
                              void *arg, char *err, size_t errsize)
{
    struct journal *jr = calloc(1, sizeof *jr);
    if (jr == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    *jr = (struct journal){.loop = loop, .fn = fn, .arg = arg};
    jr->trusted_count = trusted_count < JOURNAL_TRUSTED_MAX ? trusted_count : JOURNAL_TRUSTED_MAX;
    memcpy(jr->trusted, trusted, jr->trusted_count * sizeof *trusted);
    int rc = directory ? sd_journal_open_directory(&jr->j, directory, 0)
                       : sd_journal_open(&jr->j, SD_JOURNAL_LOCAL_ONLY);
    int fd = rc < 0 ? rc : sd_journal_get_fd(jr->j);
    if (rc >= 0 && fd >= 0 && !from_start) /* the cursor on the last entry */
        rc = sd_journal_seek_tail(jr->j) < 0 ? -1 : (sd_journal_previous(jr->j), 0);
    if (rc < 0 || fd < 0) {
        snprintf(err, errsize, "cannot open the journal%s%s: %s", directory ? " in " : "",
                 directory ? directory : "", strerror(rc < 0 ? -rc : -fd));
        if (jr->j != NULL)
            sd_journal_close(jr->j);
        free(jr);
        return NULL;
    }
    ev_io_init(&jr->io, journal_io_cb, fd, EV_READ);
    jr->io.data = jr;
    ev_io_start(loop, &jr->io);
    ev_timer_init(&jr->poll, journal_poll_cb, 0., JOURNAL_POLL_INTERVAL);
    jr->poll.data = jr;
    ev_timer_start(loop, &jr->poll);
    return jr;
}

void journal_stop(struct journal *jr)
{
    if (jr == NULL)
        return;
    ev_io_stop(jr->loop, &jr->io);
    ev_timer_stop(jr->loop, &jr->poll);
    sd_journal_close(jr->j);
    free(jr);
}
