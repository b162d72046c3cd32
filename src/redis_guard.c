/*
 * redis_guard - what a Redis peer may send us, checked before hiredis
 * acts on it. See redis_guard.h.
 *
 * A reply is seen growing in two places: the reader's buffer (a bulk
 * string waits there whole) and the reader's object functions (an array
 * declares its size before its elements come, then each element is
 * made). The object functions are hiredis's own, wrapped: each one first
 * admits its object (redis_guard_admit: the cost so far, and whether a
 * reply of that shape may come now) against the guard of the reader (the
 * reader's privdata, handed to every read task), and makes nothing
 * otherwise, which hiredis takes as a failed allocation and turns into an
 * error on the link. The buffer is checked before each read on the event
 * loop (and by the start probe before its reads).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <hiredis/sds.h>

#include "redis_guard.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

/* what an object costs beyond its payload: the redisReply and the
 * allocator's share, rounded up */
#define REDIS_GUARD_OBJECT 64

/* the errors a link ends with */
static const char redis_guard_too_big[] = "a reply over 4 MiB"; /* REDIS_GUARD_BYTES */
static const char redis_guard_unasked[] = "a reply to no command";
static const char redis_guard_misshapen[] = "a pub/sub message of the wrong shape";

/* hiredis's own object functions: the table every new reader starts with */
static redisReplyObjectFunctions *redis_guard_hiredis;

/* redis_guard_arrayish - an array, or (hiredis 1) a RESP3 push */
static bool redis_guard_arrayish(int type)
{
#if HIREDIS_MAJOR >= 1
    if (type == REDIS_REPLY_PUSH)
        return true;
#endif
    return type == REDIS_REPLY_ARRAY;
}

/* redis_guard_first - a reply starts with task (a top-level object with
 * elements, for an array): whether one may come now. Without a command
 * waiting, only an error (hiredis drops the link on it) or, on a
 * subscribed link, a message of three elements or more, whose elements
 * are then checked too (g->message). */
static const char *redis_guard_first(struct redis_guard *g, const redisReadTask *task,
                                     size_t elements)
{
    g->message = false;
    if (g->ac == NULL || g->ac->replies.head != NULL || task->type == REDIS_REPLY_ERROR)
        return NULL;
    if (!(g->ac->c.flags & REDIS_SUBSCRIBED))
        return redis_guard_unasked;
    if (!redis_guard_arrayish(task->type) || elements < 3)
        return redis_guard_misshapen;
    g->message = true;
    return NULL;
}

/* redis_guard_in_message - task (str, len for a string) is an element of
 * a pub/sub message that came without a command waiting: hiredis reads
 * the first two as strings; hiredis 1 has a subscription's name in its
 * own list (a name it does not hold aborts it: the link's one channel it
 * must be; we subscribe to no pattern); an (p)unsubscribe's third is an
 * integer */
static const char *redis_guard_in_message(const struct redis_guard *g, const redisReadTask *task,
                                          const char *str, size_t len)
{
    const redisReply *message = task->parent->obj;
    if (task->idx <= 1 && task->type != REDIS_REPLY_STRING)
        return redis_guard_misshapen;
    if (task->idx == 0)
        return NULL;
    const char *kind = message->element[0]->str;
    bool pattern = tolower((unsigned char)kind[0]) == 'p';
    if (task->idx == 1 && strcasecmp(kind + pattern, "subscribe") == 0 &&
        (pattern || str == NULL || len != strlen(g->channel) || memcmp(str, g->channel, len) != 0))
        return redis_guard_misshapen;
    if (task->idx == 2 && strcasecmp(kind + pattern, "unsubscribe") == 0 &&
        task->type != REDIS_REPLY_INTEGER)
        return redis_guard_misshapen;
    return NULL;
}

/* redis_guard_admit - one more object of n bytes (an array's: with
 * elements; a string's: str, len) for task's reply; false, with the
 * guard's reason set, when it may not be made */
static bool redis_guard_admit(const redisReadTask *task, size_t n, size_t elements,
                              const char *str, size_t len)
{
    struct redis_guard *g = task->privdata;
    const char *why = NULL;
    if (task->parent == NULL) { /* a new reply */
        g->used = 0;
        why = redis_guard_first(g, task, elements);
    } else if (g->message && task->parent->parent == NULL) {
        why = redis_guard_in_message(g, task, str, len);
    }
    if (why == NULL && n > REDIS_GUARD_BYTES - g->used)
        why = redis_guard_too_big;
    if (why != NULL) {
        g->why = why;
        return false;
    }
    g->used += n;
    return true;
}

static void *redis_guard_string(const redisReadTask *task, char *str, size_t len)
{
    if (!redis_guard_admit(task, REDIS_GUARD_OBJECT + len, 0, str, len))
        return NULL;
    return redis_guard_hiredis->createString(task, str, len);
}

/* hiredis 1 counts an array's elements in a size_t, 0.14 in an int */
#if HIREDIS_MAJOR >= 1
typedef size_t redis_guard_count;
#else
typedef int redis_guard_count;
#endif

static void *redis_guard_array(const redisReadTask *task, redis_guard_count elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    /* its pointers, counted without overflow: too many are over the bound */
    size_t cost = n <= REDIS_GUARD_BYTES / sizeof(void *) ? REDIS_GUARD_OBJECT + n * sizeof(void *)
                                                          : REDIS_GUARD_BYTES + 1;
    if (!redis_guard_admit(task, cost, n, NULL, 0))
        return NULL;
    return redis_guard_hiredis->createArray(task, elements);
}

static void *redis_guard_integer(const redisReadTask *task, long long value)
{
    if (!redis_guard_admit(task, REDIS_GUARD_OBJECT, 0, NULL, 0))
        return NULL;
    return redis_guard_hiredis->createInteger(task, value);
}

static void *redis_guard_nil(const redisReadTask *task)
{
    if (!redis_guard_admit(task, REDIS_GUARD_OBJECT, 0, NULL, 0))
        return NULL;
    return redis_guard_hiredis->createNil(task);
}

#if HIREDIS_MAJOR >= 1 /* RESP3's doubles and booleans */
static void *redis_guard_double(const redisReadTask *task, double value, char *str, size_t len)
{
    if (!redis_guard_admit(task, REDIS_GUARD_OBJECT + len, 0, NULL, 0))
        return NULL;
    return redis_guard_hiredis->createDouble(task, value, str, len);
}

static void *redis_guard_bool(const redisReadTask *task, int value)
{
    if (!redis_guard_admit(task, REDIS_GUARD_OBJECT, 0, NULL, 0))
        return NULL;
    return redis_guard_hiredis->createBool(task, value);
}
#endif

static void redis_guard_free(void *reply)
{
    redis_guard_hiredis->freeObject(reply);
}

static redisReplyObjectFunctions redis_guard_functions = {
    .createString = redis_guard_string,
    .createArray = redis_guard_array,
    .createInteger = redis_guard_integer,
    .createNil = redis_guard_nil,
#if HIREDIS_MAJOR >= 1
    .createDouble = redis_guard_double,
    .createBool = redis_guard_bool,
#endif
    .freeObject = redis_guard_free,
};

void redis_guard_install(redisReader *r, const redisAsyncContext *ac, struct redis_guard *g)
{
    *g = (struct redis_guard){.ac = ac};
    if (r->fn != &redis_guard_functions)
        redis_guard_hiredis = r->fn;
    r->fn = &redis_guard_functions;
    r->privdata = g;
}

bool redis_guard_pending_over(redisContext *c)
{
    redisReader *r = c->reader;
    if (r->len - r->pos <= REDIS_GUARD_BYTES)
        return false;
    ((struct redis_guard *)r->privdata)->why = redis_guard_too_big;
    if (c->err == 0) {
        c->err = REDIS_ERR_OTHER;
        snprintf(c->errstr, sizeof c->errstr, "%s", redis_guard_too_big);
    }
    return true;
}

bool redis_guard_unsent_over(const redisAsyncContext *ac)
{
    return sdslen(ac->c.obuf) > REDIS_GUARD_BYTES;
}

void redis_guard_subscribe(struct redis_guard *g, const char *channel)
{
    snprintf(g->channel, sizeof g->channel, "%s", channel);
}

const char *redis_guard_why(const redisContext *c)
{
    const struct redis_guard *g = c->reader != NULL ? c->reader->privdata : NULL;
    if (g != NULL && g->why != NULL)
        return g->why;
    return c->errstr[0] != '\0' ? c->errstr : "closed";
}

/* redis_guard_read_cb - the adapter's read event, the buffer checked
 * first: a context with an error fails its read, and hiredis drops the
 * link */
static void redis_guard_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    redisLibevEvents *e = w->data;
    (void)loop, (void)revents;
    redis_guard_pending_over(&e->context->c);
    redisAsyncHandleRead(e->context);
}

int redis_guard_attach(struct ev_loop *loop, redisAsyncContext *ac, struct redis_guard *g)
{
    if (redisLibevAttach(loop, ac) != REDIS_OK)
        return REDIS_ERR;
    redis_guard_install(ac->c.reader, ac, g);
    redisLibevEvents *e = ac->ev.data;
    ev_set_cb(&e->rev, redis_guard_read_cb);
    return REDIS_OK;
}
