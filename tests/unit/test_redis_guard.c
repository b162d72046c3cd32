/*
 * test_redis_guard - what a Redis peer may send (src/redis_guard.c), on
 * hiredis's real reader: replies under the bound come through whole, one
 * after another however many; a reply that declares or builds more than
 * the bound fails the reader; bytes waiting for a bulk string past it
 * fail the context, and say why. On an asynchronous context (its two
 * fields the guard reads set by hand): a reply no command waits for is
 * refused unless it is an error, and on a subscribed one a message of a
 * shape hiredis would abort on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <hiredis/async.h>

#include "redis_guard.h"

/* feed - the bytes to r; the reader's verdict on its next reply */
static int feed(redisReader *r, const char *bytes, size_t len, redisReply **reply)
{
    *reply = NULL;
    if (redisReaderFeed(r, bytes, len) != REDIS_OK)
        return REDIS_ERR;
    return redisReaderGetReply(r, (void **)reply);
}

/* bulk - "$LEN\r\n" + len bytes of 'x' + "\r\n", malloc'ed; its size in *n */
static char *bulk(size_t len, size_t *n)
{
    char *b = malloc(len + 32);
    assert_non_null(b);
    int head = snprintf(b, 32, "$%zu\r\n", len);
    memset(b + head, 'x', len);
    memcpy(b + head + len, "\r\n", 2);
    *n = (size_t)head + len + 2;
    return b;
}

/* A reader guarded as on a blocking context, for the tests of size. */
struct guarded {
    redisReader *r;
    struct redis_guard g;
};

static int guarded_setup(void **state)
{
    struct guarded *gr = calloc(1, sizeof *gr);
    if (gr == NULL || (gr->r = redisReaderCreate()) == NULL)
        return -1;
    redis_guard_install(gr->r, NULL, &gr->g);
    *state = gr;
    return 0;
}

static int guarded_teardown(void **state)
{
    struct guarded *gr = *state;
    redisReaderFree(gr->r);
    free(gr);
    return 0;
}

static void test_many_replies_under_the_cap_all_come(void **state)
{
    struct guarded *gr = *state;
    redisReader *r = gr->r;
    const struct redis_guard *g = &gr->g;
    size_t n;
    char *one = bulk(REDIS_GUARD_BYTES / 8, &n);
    /* 40 of them: five times the cap in all, each reply on its own count */
    for (int i = 0; i < 40; i++) {
        redisReply *reply;
        assert_int_equal(feed(r, one, n, &reply), REDIS_OK);
        assert_non_null(reply);
        assert_int_equal(reply->type, REDIS_REPLY_STRING);
        assert_int_equal(reply->len, REDIS_GUARD_BYTES / 8);
        freeReplyObject(reply);
    }
    assert_null(g->why);
    free(one);
}

static void test_an_array_near_the_cap_comes_whole(void **state)
{
    struct guarded *gr = *state;
    redisReader *r = gr->r;
    size_t n;
    char *part = bulk(REDIS_GUARD_BYTES / 4, &n);
    redisReply *reply;
    assert_int_equal(feed(r, "*3\r\n", 4, &reply), REDIS_OK);
    assert_null(reply);
    for (int i = 0; i < 3; i++)
        assert_int_equal(feed(r, part, n, &reply), REDIS_OK);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(reply->elements, 3);
    assert_int_equal(reply->element[2]->len, REDIS_GUARD_BYTES / 4);
    freeReplyObject(reply);
    free(part);
}

static void test_an_array_declaring_too_much_is_refused(void **state)
{
    struct guarded *gr = *state;
    redisReader *r = gr->r;
    const struct redis_guard *g = &gr->g;
    redisReply *reply;
    /* 100 million pointers: 800 MB before a single element came */
    assert_int_equal(feed(r, "*100000000\r\n", 12, &reply), REDIS_ERR);
    assert_null(reply);
    assert_non_null(g->why);
}

static void test_nested_small_objects_past_the_cap_are_refused(void **state)
{
    struct guarded *gr = *state;
    redisReader *r = gr->r;
    const struct redis_guard *g = &gr->g;
    /* 1,000 arrays of 1,000 integers: 4 MB on the wire, a million objects */
    char inner[7 + 4 * 1000];
    memcpy(inner, "*1000\r\n", 7);
    for (int i = 0; i < 1000; i++)
        memcpy(inner + 7 + 4 * i, ":1\r\n", 4);
    redisReply *reply = NULL;
    int rc = feed(r, "*1000\r\n", 7, &reply);
    int fed = 0;
    while (rc == REDIS_OK && fed < 1000) {
        rc = feed(r, inner, sizeof inner, &reply);
        fed++;
    }
    assert_int_equal(rc, REDIS_ERR);
    assert_null(reply);
    assert_non_null(g->why);
    /* refused within the cap: at 64 bytes an object, well before the end */
    assert_in_range(fed, 1, 80);
}

static void test_a_bulk_string_waiting_past_the_cap_fails_the_context(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    redisContext *c = redisConnectFd(sv[0]);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    struct redis_guard cap;
    redis_guard_install(c->reader, NULL, &cap);
    /* the header of a 64 MiB string, then its bytes a chunk at a time,
     * each read as it comes: the context reads until the cap says no more */
    const char *head = "$67108864\r\n";
    assert_int_equal(write(sv[1], head, strlen(head)), (ssize_t)strlen(head));
    char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    int chunks = 0;
    bool over = false;
    while (!over && chunks < 1000) {
        assert_int_equal(write(sv[1], chunk, sizeof chunk), (ssize_t)sizeof chunk);
        chunks++;
        struct pollfd p = {.fd = sv[0], .events = POLLIN};
        while (!(over = redis_guard_pending_over(c)) && poll(&p, 1, 0) > 0)
            assert_int_equal(redisBufferRead(c), REDIS_OK);
        void *reply = NULL;
        assert_int_equal(redisGetReplyFromReader(c, &reply), REDIS_OK);
        assert_null(reply); /* the string is not whole yet */
    }
    assert_non_null(cap.why);
    /* cut at the chunk that took it past 4 MiB */
    assert_in_range(chunks, REDIS_GUARD_BYTES / sizeof chunk, REDIS_GUARD_BYTES / sizeof chunk + 1);
    assert_int_not_equal(c->err, 0);
    assert_string_equal(redis_guard_why(c), "a reply over 4 MiB");
    assert_int_equal(redisBufferRead(c), REDIS_ERR); /* reads stop here */
    redisFree(c);
    close(sv[1]);
}

static void test_why_is_hiredis_words_without_the_cap(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    redisContext *c = redisConnectFd(sv[0]);
    assert_non_null(c);
    struct redis_guard cap;
    redis_guard_install(c->reader, NULL, &cap);
    close(sv[1]);
    assert_int_equal(redisBufferRead(c), REDIS_ERR); /* the peer closed */
    assert_null(cap.why);
    assert_string_equal(redis_guard_why(c), c->errstr);
    assert_true(strlen(c->errstr) > 0);
    redisFree(c);
}

/* shape - bytes read by a fresh reader guarded for an asynchronous
 * context with flags and (when waiting) a command waiting, subscribing
 * to channel "c": how many
 * whole replies came before the reader stopped or ran out, and the
 * guard's reason (NULL when none) */
static int shape(const char *bytes, int flags, bool waiting, const char **why)
{
    redisAsyncContext ac;
    redisCallback cb;
    memset(&ac, 0, sizeof ac);
    memset(&cb, 0, sizeof cb);
    ac.c.flags = flags;
    ac.replies.head = waiting ? &cb : NULL;
    redisReader *r = redisReaderCreate();
    struct redis_guard g;
    redis_guard_install(r, &ac, &g);
    redis_guard_subscribe(&g, "c");
    int whole = 0;
    redisReply *reply;
    if (redisReaderFeed(r, bytes, strlen(bytes)) == REDIS_OK)
        while (redisReaderGetReply(r, (void **)&reply) == REDIS_OK && reply != NULL) {
            freeReplyObject(reply);
            whole++;
        }
    *why = g.why;
    redisReaderFree(r);
    return whole;
}

static void test_a_reply_no_command_waits_for_is_refused(void **state)
{
    (void)state;
    const char *why;
    assert_int_equal(shape("+OK\r\n", 0, true, &why), 1); /* awaited */
    assert_null(why);
    assert_int_equal(shape("+OK\r\n", 0, false, &why), 0); /* hiredis would abort */
    assert_string_equal(why, "a reply to no command");
    assert_int_equal(shape(":1\r\n", 0, false, &why), 0);
    assert_non_null(why);
    /* an error without a command hiredis reads itself (and drops the link) */
    assert_int_equal(shape("-ERR max number of clients reached\r\n", 0, false, &why), 1);
    assert_null(why);
}

static void test_a_subscribed_link_takes_whole_messages_only(void **state)
{
    (void)state;
    const char *why;
    const char *message = "*3\r\n$7\r\nmessage\r\n$15\r\nbreakwater:bans\r\n$3\r\nban\r\n";
    assert_int_equal(shape(message, REDIS_SUBSCRIBED, false, &why), 1);
    assert_null(why);
    assert_int_equal(shape("*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", REDIS_SUBSCRIBED,
                           false, &why), 1);
    assert_null(why);
    assert_int_equal(shape("*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$1\r\nx\r\n",
                           REDIS_SUBSCRIBED, false, &why), 1);
    assert_null(why);
    const char *misshapen[] = {
        "*1\r\n$7\r\nmessage\r\n",                              /* too short */
        "*2\r\n$7\r\nmessage\r\n$1\r\nc\r\n",                   /* too short */
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",         /* nested */
        "*3\r\n:1\r\n$1\r\nc\r\n$1\r\nx\r\n",                     /* kind not a string */
        "*3\r\n$7\r\nmessage\r\n*0\r\n$1\r\nx\r\n",                /* channel not a string */
        "*3\r\n+message\r\n$1\r\nc\r\n$1\r\nx\r\n",                /* a status, not a string */
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n$1\r\nx\r\n",      /* count not a number */
        "*3\r\n$12\r\nPUNSUBSCRIBE\r\n$1\r\nc\r\n$-1\r\n",          /* nor here */
        "$7\r\nmessage\r\n",                                    /* not an array */
        "*3\r\n$9\r\nsubscribe\r\n$5\r\nother\r\n:1\r\n",          /* not our channel */
        "*3\r\n$10\r\npsubscribe\r\n$1\r\nc\r\n:1\r\n",          /* no pattern of ours */
    };
    for (size_t i = 0; i < sizeof misshapen / sizeof *misshapen; i++) {
        assert_int_equal(shape(misshapen[i], REDIS_SUBSCRIBED, false, &why), 0);
        assert_non_null(why);
    }
    assert_int_equal(shape("*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n", REDIS_SUBSCRIBED,
                           false, &why), 1);
    assert_null(why);
    /* with a command waiting, its reply may be anything */
    assert_int_equal(shape("*1\r\n:1\r\n", REDIS_SUBSCRIBED, true, &why), 1);
    assert_null(why);
    /* a whole message, then a short one: the first comes, then the stop */
    char two[256];
    snprintf(two, sizeof two, "%s*1\r\n$7\r\nmessage\r\n", message);
    assert_int_equal(shape(two, REDIS_SUBSCRIBED, false, &why), 1);
    assert_string_equal(why, "a pub/sub message of the wrong shape");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_replies_under_the_cap_all_come, guarded_setup,
                                        guarded_teardown),
        cmocka_unit_test_setup_teardown(test_an_array_near_the_cap_comes_whole, guarded_setup,
                                        guarded_teardown),
        cmocka_unit_test_setup_teardown(test_an_array_declaring_too_much_is_refused, guarded_setup,
                                        guarded_teardown),
        cmocka_unit_test_setup_teardown(test_nested_small_objects_past_the_cap_are_refused, guarded_setup,
                                        guarded_teardown),
        cmocka_unit_test(test_a_bulk_string_waiting_past_the_cap_fails_the_context),
        cmocka_unit_test(test_why_is_hiredis_words_without_the_cap),
        cmocka_unit_test(test_a_reply_no_command_waits_for_is_refused),
        cmocka_unit_test(test_a_subscribed_link_takes_whole_messages_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
