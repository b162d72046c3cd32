/*
 * test_follow - src/follow.c on a real libev loop against real files in a
 * fresh directory under /tmp per test (removed after). Each test writes,
 * renames, truncates or deletes files the way writers and logrotate do,
 * runs the loop a step at a time until the expected lines have come (or a
 * deadline passed) and compares the lines delivered, byte for byte:
 * start at the end (skipping the rest of a line it cuts) or at the start,
 * a file that appears later, rotation by rename (the old file read to its
 * end first, a writer still appending to it, its unfinished last line, a
 * file renamed away with no new one yet), copytruncate, delete and
 * re-create, lines in pieces, lines longer than FOLLOW_LINE_MAX (in one
 * write and in pieces, and at the exact limit with and without CR), CRLF,
 * NUL and invalid UTF-8, a large file delivered in bounded steps and in
 * order, lines seen at once (not only at the periodic check), a steady
 * trickle of writes, something not a regular file at the path, an
 * unreadable file (skipped as root), and follow_stop() from inside the
 * line callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "follow.h"
#include "log.h"

#define TEST_DEADLINE 3.0   /* seconds to wait for lines that must come */
#define TEST_QUIET 0.3      /* seconds during which nothing more may come */
#define TEST_SETTLE 0.04    /* seconds for what was written to be read: more
                             * than follow.c's busy polling interval */
#define TEST_LINES_MAX 200000
#define TEST_TEXT " postfix/smtpd[12345]: NOQUEUE: reject: RCPT from unknown" \
    "[192.0.2.1]: 554 5.7.1 Service unavailable; blocked using zen.example"

struct test_line {
    char *bytes;
    size_t len;
};

struct test_ctx {
    char dir[64];
    char path[128];      /* dir/log */
    char rotated[128];   /* dir/log.1 */
    struct ev_loop *loop;
    struct follow *follow;
    struct test_line *lines;
    size_t count;
    size_t stop_after;   /* follow_stop() from the callback at this count */
};

/* test_line_cb - keeps a copy of every delivered line */
static void test_line_cb(void *arg, const char *line, size_t len)
{
    struct test_ctx *t = arg;
    assert_true(t->count < TEST_LINES_MAX);
    assert_true(len <= FOLLOW_LINE_MAX);
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, line, len);
    copy[len] = '\0';
    t->lines[t->count++] = (struct test_line){copy, len};
    if (t->stop_after != 0 && t->count == t->stop_after) {
        follow_stop(t->follow);
        t->follow = NULL;
    }
}

/* test_setup - a fresh directory and loop per test */
static int test_setup(void **state)
{
    struct test_ctx *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/test_follow.XXXXXX");
    t->lines = calloc(TEST_LINES_MAX, sizeof *t->lines);
    t->loop = ev_loop_new(EVFLAG_AUTO);
    if (t->lines == NULL || t->loop == NULL || mkdtemp(t->dir) == NULL) {
        free(t->lines);
        free(t);
        return -1;
    }
    snprintf(t->path, sizeof t->path, "%s/log", t->dir);
    snprintf(t->rotated, sizeof t->rotated, "%s/log.1", t->dir);
    *state = t;
    return 0;
}

/* test_teardown - stops the follower, removes the directory and its files */
static int test_teardown(void **state)
{
    struct test_ctx *t = *state;
    follow_stop(t->follow);
    ev_loop_destroy(t->loop);
    for (size_t i = 0; i < t->count; i++)
        free(t->lines[i].bytes);
    free(t->lines);
    char file[512];
    DIR *dir = opendir(t->dir);
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof file, "%s/%s", t->dir, e->d_name);
        if (unlink(file) < 0)
            rmdir(file);
    }
    if (dir != NULL)
        closedir(dir);
    int rc = rmdir(t->dir);
    free(t);
    return rc;
}

/* test_write - appends bytes to a file, creating it */
static void test_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* test_append - appends a string to a file, creating it */
static void test_append(const char *path, const char *text)
{
    test_write(path, text, strlen(text));
}

/* test_start - starts following the test's path */
static void test_start(struct test_ctx *t, bool from_start)
{
    t->follow = follow_start(t->loop, t->path, from_start, test_line_cb, t);
    assert_non_null(t->follow);
}

/* test_pump - runs the loop until `count` lines have come in all, or the
 * deadline passed */
/* test_deadline_cb - nothing to do: the timer only ends test_pump() */
static void test_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static void test_pump(struct test_ctx *t, size_t count, double seconds)
{
    ev_timer deadline;  /* wakes the loop when it is time to give up */
    ev_timer_init(&deadline, test_deadline_cb, seconds, 0.);
    ev_timer_start(t->loop, &deadline);
    while (t->count < count && ev_is_active(&deadline))
        ev_run(t->loop, EVRUN_ONCE);
    ev_timer_stop(t->loop, &deadline);
}

/* test_expect - waits for the lines up to `count` and checks them all
 * against `expected` (strings; NULL-terminated); with `quiet`, also that
 * no more come (otherwise a later check sees them) */
static void test_expect(struct test_ctx *t, bool quiet, const char *const *expected)
{
    size_t n = 0;
    while (expected[n] != NULL)
        n++;
    test_pump(t, n, TEST_DEADLINE);
    test_pump(t, n + 1, quiet ? TEST_QUIET : 0.01);
    for (size_t i = 0; i < t->count && i < n; i++)
        if (t->lines[i].len != strlen(expected[i]) ||
            memcmp(t->lines[i].bytes, expected[i], t->lines[i].len) != 0)
            fail_msg("line %zu: got \"%s\" (%zu bytes), expected \"%s\"", i,
                     t->lines[i].bytes, t->lines[i].len, expected[i]);
    assert_int_equal(t->count, n);
}

#define EXPECT(t, ...) test_expect((t), false, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_LAST(t, ...) test_expect((t), true, (const char *const[]){__VA_ARGS__, NULL})

/* test_starts_at_end - what the file held before start is not delivered */
static void test_starts_at_end(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "old 1\nold 2\n");
    test_start(t, false);
    test_append(t->path, "new 1\n");
    EXPECT(t, "new 1");
    test_append(t->path, "new 2\nnew 3\n");
    EXPECT_LAST(t, "new 1", "new 2", "new 3");
}

/* test_end_mid_line - starting at the end in the middle of a line: the
 * rest of that line is not delivered as a line */
static void test_end_mid_line(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "old\nhalf of a li");
    test_start(t, false);
    test_append(t->path, "ne\nnew\n");
    EXPECT_LAST(t, "new");
}

/* test_from_start - from_start delivers what the file already held */
static void test_from_start(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "a\nb\n\nc\n");
    test_start(t, true);
    EXPECT_LAST(t, "a", "b", "", "c");
}

/* test_not_from_start_call - nothing is delivered inside follow_start() */
static void test_not_from_start_call(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "a\n");
    test_start(t, true);
    assert_int_equal(t->count, 0);
    EXPECT_LAST(t, "a");
}

/* test_missing_file - a missing file is waited for, then read from its
 * start even though following began at the end */
static void test_missing_file(void **state)
{
    struct test_ctx *t = *state;
    test_start(t, false);
    test_pump(t, 1, TEST_QUIET);
    test_append(t->path, "first\nsecond\n");
    EXPECT_LAST(t, "first", "second");
}

/* test_rename_rotation - the old file is read to its end (what was written
 * just before the rename), then the new one from its start */
static void test_rename_rotation(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "one\n");
    test_start(t, true);
    EXPECT(t, "one");
    test_append(t->path, "two\n");
    assert_int_equal(rename(t->path, t->rotated), 0);
    test_append(t->rotated, "three\n");
    test_append(t->path, "four\n");
    EXPECT(t, "one", "two", "three", "four");
    test_append(t->path, "five\n");
    test_append(t->rotated, "lost\n");  /* after the switch: not read */
    EXPECT_LAST(t, "one", "two", "three", "four", "five");
}

/* test_rename_create_empty - logrotate's create: the new file is empty
 * until the writer is told to reopen; meanwhile it still appends to the
 * old file, and that is delivered */
static void test_rename_create_empty(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "");
    test_start(t, false);
    int writer = open(t->path, O_WRONLY | O_APPEND);
    assert_true(writer >= 0);
    assert_int_equal(write(writer, "a\n", 2), 2);
    EXPECT(t, "a");
    assert_int_equal(rename(t->path, t->rotated), 0);
    test_append(t->path, "");
    test_pump(t, 2, TEST_QUIET);
    assert_int_equal(write(writer, "b\n", 2), 2);
    EXPECT(t, "a", "b");
    close(writer);
    test_append(t->path, "c\n");
    EXPECT_LAST(t, "a", "b", "c");
}

/* test_rename_partial_line - the old file's unfinished last line is
 * delivered when it is left, and not glued to the new file's first */
static void test_rename_partial_line(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "");
    test_start(t, false);
    test_append(t->path, "whole\nhalf a li");
    EXPECT(t, "whole");
    assert_int_equal(rename(t->path, t->rotated), 0);
    test_append(t->path, "ne\nnext\n");
    EXPECT_LAST(t, "whole", "half a li", "ne", "next");
}

/* test_renamed_away - the path is gone but the file only moved: it is
 * still read until a new file takes its name */
static void test_renamed_away(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "");
    test_start(t, false);
    assert_int_equal(rename(t->path, t->rotated), 0);
    test_pump(t, 1, TEST_QUIET);
    test_append(t->rotated, "moved\n");
    EXPECT(t, "moved");
    test_append(t->path, "new\n");
    EXPECT_LAST(t, "moved", "new");
}

/* test_copytruncate - the same file, now shorter than what was read:
 * reading starts over at 0 */
static void test_copytruncate(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "aaaaaaaa\nbbbbbbbb\n");
    test_start(t, true);
    EXPECT(t, "aaaaaaaa", "bbbbbbbb");
    struct stat before, after;
    assert_int_equal(stat(t->path, &before), 0);
    assert_int_equal(truncate(t->path, 0), 0);
    test_append(t->path, "c\n");
    assert_int_equal(stat(t->path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    EXPECT(t, "aaaaaaaa", "bbbbbbbb", "c");
    test_append(t->path, "d\n");
    EXPECT_LAST(t, "aaaaaaaa", "bbbbbbbb", "c", "d");
}

/* test_delete_recreate - a deleted file is finished, the path waited for
 * and the new file read from its start */
static void test_delete_recreate(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "");
    test_start(t, false);
    test_append(t->path, "before\nunfinished");
    EXPECT(t, "before");
    assert_int_equal(unlink(t->path), 0);
    EXPECT(t, "before", "unfinished");
    test_append(t->path, "after\n");
    EXPECT_LAST(t, "before", "unfinished", "after");
}

/* test_pieces - a line written in pieces is delivered once, whole */
static void test_pieces(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "");
    test_start(t, false);
    const char *pieces[] = {"ab", "cd", "ef\nxy", "z", "\r", "\n"};
    for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
        test_append(t->path, pieces[i]);
        test_pump(t, 3, TEST_SETTLE);
    }
    EXPECT_LAST(t, "abcdef", "xyz");
}

/* test_long_line - a line over FOLLOW_LINE_MAX is cut there and its rest
 * skipped; the next line is intact */
static void test_long_line(void **state)
{
    struct test_ctx *t = *state;
    size_t len = 3 * FOLLOW_LINE_MAX + 100;
    char *line = malloc(len + 1);
    assert_non_null(line);
    for (size_t i = 0; i < len; i++)
        line[i] = (char)('a' + i % 26);
    line[len] = '\n';
    test_append(t->path, "");
    test_start(t, false);
    test_write(t->path, line, len + 1);
    test_append(t->path, "short\n");
    test_pump(t, 2, TEST_DEADLINE);
    test_pump(t, 3, TEST_QUIET);
    assert_int_equal(t->count, 2);
    assert_int_equal(t->lines[0].len, FOLLOW_LINE_MAX);
    assert_memory_equal(t->lines[0].bytes, line, FOLLOW_LINE_MAX);
    assert_string_equal(t->lines[1].bytes, "short");
    free(line);
}

/* test_long_line_pieces - the same, written in pieces across the limit */
static void test_long_line_pieces(void **state)
{
    struct test_ctx *t = *state;
    char piece[5000];
    memset(piece, 'x', sizeof piece);
    test_append(t->path, "");
    test_start(t, false);
    for (int i = 0; i < 10; i++) {
        test_write(t->path, piece, sizeof piece);
        test_pump(t, 2, 0.05);
    }
    assert_int_equal(t->count, 1);  /* cut as soon as it is too long */
    assert_int_equal(t->lines[0].len, FOLLOW_LINE_MAX);
    test_append(t->path, "tail of it\nnext\n");
    test_pump(t, 2, TEST_DEADLINE);
    test_pump(t, 3, TEST_QUIET);
    assert_int_equal(t->count, 2);
    assert_string_equal(t->lines[1].bytes, "next");
}

/* test_limit_line - writes `content` bytes of 'y' and `ending`, split in
 * two writes at `split` (0: one write) read separately, then
 * "z\n"; checks the line is min(content, FOLLOW_LINE_MAX) bytes of 'y' and
 * "z" follows intact */
static void test_limit_line(struct test_ctx *t, size_t content, const char *ending,
                            size_t split)
{
    size_t total = content + strlen(ending);
    char *buf = malloc(total);
    assert_non_null(buf);
    memset(buf, 'y', content);
    memcpy(buf + content, ending, strlen(ending));
    size_t before = t->count;
    if (split == 0 || split >= total)
        split = total;
    test_write(t->path, buf, split);
    if (split < total)
        test_pump(t, SIZE_MAX, TEST_SETTLE);
    test_write(t->path, buf + split, total - split);
    test_append(t->path, "z\n");
    test_pump(t, before + 2, TEST_DEADLINE);
    assert_int_equal(t->count, before + 2);
    size_t expected = content < FOLLOW_LINE_MAX ? content : FOLLOW_LINE_MAX;
    assert_int_equal(t->lines[before].len, expected);
    assert_memory_equal(t->lines[before].bytes, buf, expected);
    assert_string_equal(t->lines[before + 1].bytes, "z");
    free(buf);
}

/* test_limit_exact - around FOLLOW_LINE_MAX, with and without a CR before
 * the newline, in one write and split at every place near the limit */
static void test_limit_exact(void **state)
{
    struct test_ctx *t = *state;
    static const char *const endings[] = {"\n", "\r\n"};
    test_append(t->path, "");
    test_start(t, false);
    for (size_t content = FOLLOW_LINE_MAX - 1; content <= FOLLOW_LINE_MAX + 2; content++)
        for (size_t e = 0; e < 2; e++)
            for (size_t split = FOLLOW_LINE_MAX - 1; split <= FOLLOW_LINE_MAX + 2; split++) {
                test_limit_line(t, content, endings[e], 0);
                test_limit_line(t, content, endings[e], split);
            }
    test_pump(t, t->count + 1, TEST_QUIET);
    assert_int_equal(t->count, 4 * 2 * 4 * 2 * 2);
}

/* test_bytes - CRLF loses its CR; a lone CR, NUL and invalid UTF-8 pass */
static void test_bytes(void **state)
{
    struct test_ctx *t = *state;
    static const char data[] = "dos\r\nmid\rcr\na\0b\n\xff\xfe\xc3(\n\r\n";
    test_append(t->path, "");
    test_start(t, false);
    test_write(t->path, data, sizeof data - 1);
    test_pump(t, 5, TEST_DEADLINE);
    test_pump(t, 6, TEST_QUIET);
    assert_int_equal(t->count, 5);
    assert_string_equal(t->lines[0].bytes, "dos");
    assert_string_equal(t->lines[1].bytes, "mid\rcr");
    assert_int_equal(t->lines[2].len, 3);
    assert_memory_equal(t->lines[2].bytes, "a\0b", 3);
    assert_string_equal(t->lines[3].bytes, "\xff\xfe\xc3(");
    assert_int_equal(t->lines[4].len, 0);
}

/* test_large_bounded - a big file comes in bounded steps (one loop step
 * delivers part of it), completely and in order */
static void test_large_bounded(void **state)
{
    struct test_ctx *t = *state;
    enum { LINES = 60000 };
    FILE *out = fopen(t->path, "w");
    assert_non_null(out);
    for (int i = 0; i < LINES; i++)
        fprintf(out, "%08d%s\n", i, TEST_TEXT);
    fclose(out);
    test_start(t, true);
    ev_run(t->loop, EVRUN_NOWAIT);
    assert_true(t->count > 0);
    assert_true(t->count < LINES / 2);
    test_pump(t, LINES, 10.0);
    assert_int_equal(t->count, LINES);
    for (int i = 0; i < LINES; i++) {
        char expected[256];
        int len = snprintf(expected, sizeof expected, "%08d%s", i, TEST_TEXT);
        assert_int_equal(t->lines[i].len, (size_t)len);
        assert_memory_equal(t->lines[i].bytes, expected, (size_t)len);
    }
}

/* test_prompt - a line appended to a quiet file comes at once (ev_stat,
 * inotify), not at the next FOLLOW_POLL_INTERVAL check */
static void test_prompt(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "");
    test_start(t, false);
    double slowest = 0;
    for (size_t i = 0; i < 5; i++) {
        test_pump(t, SIZE_MAX, 0.1);  /* the file goes quiet */
        test_append(t->path, "now\n");
        double start = ev_time();
        test_pump(t, i + 1, TEST_DEADLINE);
        assert_int_equal(t->count, i + 1);
        if (ev_time() - start > slowest)
            slowest = ev_time() - start;
    }
    if (slowest > FOLLOW_POLL_INTERVAL / 2)
        fail_msg("a line took %.3f s to come", slowest);
}

/* test_steady_writes - a line every millisecond, the loop stepped between
 * writes (the follower going between busy polling and ev_stat): all come,
 * in order */
static void test_steady_writes(void **state)
{
    struct test_ctx *t = *state;
    enum { LINES = 300 };
    test_append(t->path, "");
    test_start(t, false);
    for (int i = 0; i < LINES; i++) {
        char line[32];
        snprintf(line, sizeof line, "%d\n", i);
        test_append(t->path, line);
        ev_run(t->loop, EVRUN_NOWAIT);
        if (i % 50 == 49)
            test_pump(t, SIZE_MAX, 0.05);
        usleep(1000);
    }
    test_pump(t, LINES, TEST_DEADLINE);
    assert_int_equal(t->count, LINES);
    for (int i = 0; i < LINES; i++)
        assert_int_equal(atoi(t->lines[i].bytes), i);
}

/* test_not_regular - a directory at the path is an error, retried until a
 * file takes its place */
static void test_not_regular(void **state)
{
    struct test_ctx *t = *state;
    assert_int_equal(mkdir(t->path, 0755), 0);
    test_start(t, true);
    test_pump(t, 1, TEST_QUIET);
    assert_int_equal(rmdir(t->path), 0);
    test_append(t->path, "file now\n");
    EXPECT_LAST(t, "file now");
}

/* test_permission - an unreadable file is retried until it can be read,
 * then read from its start (as root, permissions do not stop reads: the
 * test is skipped) */
static void test_permission(void **state)
{
    struct test_ctx *t = *state;
    if (geteuid() == 0)
        skip();
    test_append(t->path, "secret\n");
    assert_int_equal(chmod(t->path, 0), 0);
    test_start(t, false);
    test_pump(t, 1, TEST_QUIET);
    assert_int_equal(t->count, 0);
    assert_int_equal(chmod(t->path, 0644), 0);
    EXPECT_LAST(t, "secret");
}

/* test_stop_in_callback - follow_stop() from the line callback: no more
 * lines, nothing touched after (ASan checks) */
static void test_stop_in_callback(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "1\n2\n3\n");
    t->stop_after = 2;
    test_start(t, true);
    test_pump(t, 3, TEST_QUIET);
    assert_int_equal(t->count, 2);
}

/* test_stop_partial_flush - follow_stop() from the callback that delivers
 * a rotated file's unfinished line */
static void test_stop_partial_flush(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "unfinished");
    t->stop_after = 1;
    test_start(t, true);
    test_pump(t, 1, TEST_QUIET);
    assert_int_equal(t->count, 0);
    assert_int_equal(unlink(t->path), 0);
    test_pump(t, 2, TEST_QUIET);
    assert_int_equal(t->count, 1);
    assert_string_equal(t->lines[0].bytes, "unfinished");
}

/* test_stop_unstarted - start and stop without running the loop */
static void test_stop_unstarted(void **state)
{
    struct test_ctx *t = *state;
    test_append(t->path, "x\n");
    test_start(t, true);
    follow_stop(t->follow);
    t->follow = NULL;
    test_pump(t, 1, TEST_QUIET);
    assert_int_equal(t->count, 0);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_starts_at_end, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_end_mid_line, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_from_start, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_not_from_start_call, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_rename_rotation, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_rename_create_empty, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_rename_partial_line, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_renamed_away, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_copytruncate, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_delete_recreate, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_pieces, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_long_line, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_long_line_pieces, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_limit_exact, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_bytes, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_large_bounded, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_prompt, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_steady_writes, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_not_regular, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_permission, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_callback, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_partial_flush, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(test_stop_unstarted, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
