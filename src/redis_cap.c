/*
 * redis_cap - a bound on the memory one Redis reply may take. See
 * redis_cap.h.
 *
 * Two places see a reply grow: the reader's buffer (a bulk string waits
 * there whole) and the reader's object functions (an array declares its
 * size before its elements come, then each element is made). The object
 * functions are hiredis's own, wrapped: each charges its object to the
 * cap of the reader (the reader's privdata, handed to every read task)
 * and makes nothing past it, which hiredis takes as a failed allocation
 * and turns into an error on the link. The buffer is checked before each
 * read on the event loop (and by the start probe before its reads).
 */
#include <stdio.h>

#include "redis_cap.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop

/* what an object costs beyond its payload: the redisReply and the
 * allocator's share, rounded up */
#define REDIS_CAP_OBJECT 64

/* the error a link ends with when the cap is reached */
static const char redis_cap_reason[] = "a reply over 4 MiB"; /* REDIS_CAP_BYTES */

/* hiredis's own object functions: the table every new reader starts with */
static redisReplyObjectFunctions *redis_cap_hiredis;

/* redis_cap_charge - n more bytes for task's reply; false past the cap
 * (a task without a parent starts a new reply) */
static bool redis_cap_charge(const redisReadTask *task, size_t n)
{
    struct redis_cap *cap = task->privdata;
    if (task->parent == NULL)
        cap->used = 0;
    if (n > REDIS_CAP_BYTES - cap->used) {
        cap->over = true;
        return false;
    }
    cap->used += n;
    return true;
}

static void *redis_cap_string(const redisReadTask *task, char *str, size_t len)
{
    if (!redis_cap_charge(task, REDIS_CAP_OBJECT + len))
        return NULL;
    return redis_cap_hiredis->createString(task, str, len);
}

/* hiredis 1 counts an array's elements in a size_t, 0.14 in an int */
#if HIREDIS_MAJOR >= 1
typedef size_t redis_cap_count;
#else
typedef int redis_cap_count;
#endif

static void *redis_cap_array(const redisReadTask *task, redis_cap_count elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    if (n > REDIS_CAP_BYTES / sizeof(void *) ||
        !redis_cap_charge(task, REDIS_CAP_OBJECT + n * sizeof(void *))) {
        ((struct redis_cap *)task->privdata)->over = true;
        return NULL;
    }
    return redis_cap_hiredis->createArray(task, elements);
}

static void *redis_cap_integer(const redisReadTask *task, long long value)
{
    if (!redis_cap_charge(task, REDIS_CAP_OBJECT))
        return NULL;
    return redis_cap_hiredis->createInteger(task, value);
}

static void *redis_cap_nil(const redisReadTask *task)
{
    if (!redis_cap_charge(task, REDIS_CAP_OBJECT))
        return NULL;
    return redis_cap_hiredis->createNil(task);
}

#if HIREDIS_MAJOR >= 1 /* RESP3's doubles and booleans */
static void *redis_cap_double(const redisReadTask *task, double value, char *str, size_t len)
{
    if (!redis_cap_charge(task, REDIS_CAP_OBJECT + len))
        return NULL;
    return redis_cap_hiredis->createDouble(task, value, str, len);
}

static void *redis_cap_bool(const redisReadTask *task, int value)
{
    if (!redis_cap_charge(task, REDIS_CAP_OBJECT))
        return NULL;
    return redis_cap_hiredis->createBool(task, value);
}
#endif

static void redis_cap_free(void *reply)
{
    redis_cap_hiredis->freeObject(reply);
}

static redisReplyObjectFunctions redis_cap_functions = {
    .createString = redis_cap_string,
    .createArray = redis_cap_array,
    .createInteger = redis_cap_integer,
    .createNil = redis_cap_nil,
#if HIREDIS_MAJOR >= 1
    .createDouble = redis_cap_double,
    .createBool = redis_cap_bool,
#endif
    .freeObject = redis_cap_free,
};

void redis_cap_install(redisReader *r, struct redis_cap *cap)
{
    *cap = (struct redis_cap){0};
    if (r->fn != &redis_cap_functions)
        redis_cap_hiredis = r->fn;
    r->fn = &redis_cap_functions;
    r->privdata = cap;
}

bool redis_cap_pending_over(redisContext *c)
{
    redisReader *r = c->reader;
    if (r->len - r->pos <= REDIS_CAP_BYTES)
        return false;
    ((struct redis_cap *)r->privdata)->over = true;
    if (c->err == 0) {
        c->err = REDIS_ERR_OTHER;
        snprintf(c->errstr, sizeof c->errstr, "%s", redis_cap_reason);
    }
    return true;
}

const char *redis_cap_why(const redisContext *c)
{
    const struct redis_cap *cap = c->reader != NULL ? c->reader->privdata : NULL;
    if (cap != NULL && cap->over)
        return redis_cap_reason;
    return c->errstr;
}

/* redis_cap_read_cb - the adapter's read event, the buffer checked first:
 * a context with an error fails its read, and hiredis drops the link */
static void redis_cap_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    redisLibevEvents *e = w->data;
    (void)loop, (void)revents;
    redis_cap_pending_over(&e->context->c);
    redisAsyncHandleRead(e->context);
}

int redis_cap_attach(struct ev_loop *loop, redisAsyncContext *ac, struct redis_cap *cap)
{
    if (redisLibevAttach(loop, ac) != REDIS_OK)
        return REDIS_ERR;
    redis_cap_install(ac->c.reader, cap);
    redisLibevEvents *e = ac->ev.data;
    ev_set_cb(&e->rev, redis_cap_read_cb);
    return REDIS_OK;
}
