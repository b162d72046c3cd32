/*
 * follow - read a growing log file line by line as `tail -F` does, on the
 * libev loop.
 *
 *   follow_start()  begin at the file's end (or its start with from_start);
 *                   a file that does not exist yet is waited for
 *   follow_stop()
 *
 * It survives rotation by rename (the name now points at a new file: the
 * old one is read to its end, then the new one from its start), rotation
 * by copytruncate (the file got shorter than what was read: start over at
 * 0), a file that disappears and comes back, and lines written in pieces
 * (a line is delivered once its newline has arrived; a piece without one
 * waits). A line longer than FOLLOW_LINE_MAX is delivered cut at that
 * length and the rest of it skipped. Bytes are passed on as they are
 * (invalid UTF-8, NUL); the newline (and a CR before it) is not.
 *
 * Changes are seen through ev_stat (inotify where the kernel has it) plus
 * a check every FOLLOW_POLL_INTERVAL, so nothing is missed on file systems
 * without inotify.
 */
#ifndef BREAKWATER_FOLLOW_H
#define BREAKWATER_FOLLOW_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#define FOLLOW_LINE_MAX 16384
#define FOLLOW_POLL_INTERVAL 0.25

typedef void (*follow_line_fn)(void *arg, const char *line, size_t len);

struct follow;

/* Returns NULL only when out of memory. */
struct follow *follow_start(struct ev_loop *loop, const char *path, bool from_start,
                            follow_line_fn fn, void *arg);
void follow_stop(struct follow *f);

#endif
