/*
 * relay - backend connection and two-way copy. See relay.h.
 *
 * One timer per relay serves every phase (relay_enter() arms it). While
 * copying, a moved byte only notes the time (last_active); when the timer
 * fires before the idle timeout has passed since then, it is set again for
 * what is left, so a busy relay touches its timer once per timeout, not
 * once per read.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evutil.h"
#include "proxy.h"
#include "relay.h"

enum relay_phase { RELAY_CONNECTING, RELAY_COPYING, RELAY_LINGERING };

/* One direction of the copy. */
struct relay_pipe {
    int from, to;
    uint8_t *buf;
    size_t start, end;  /* bytes buf[start..end) wait to be written */
    bool eof;           /* `from` has closed its sending side */
    bool shut;          /* and that was passed on to `to` */
    uint64_t bytes;
};

/* Laid out so that the idle timeout fits the hole after phase, and
 * last_active the room a size_t proxy_len took: struct relay is no larger
 * than before it had them. */
struct relay {
    struct ev_loop *loop;
    relay_done_fn done;
    void *arg;
    uint8_t phase;            /* enum relay_phase, set by relay_enter() */
    float idle_timeout;       /* seconds: relay_idle_timeout */
    ev_io client_io;
    ev_io backend_io;
    ev_timer timer;           /* the deadline of the phase */
    struct relay_pipe up;     /* client -> backend */
    struct relay_pipe down;   /* backend -> client */
    ev_tstamp last_active;    /* a byte last moved either way */
    uint8_t proxy_header[PROXY_HEADER_MAX];
    uint16_t proxy_len;
};

_Static_assert(PROXY_HEADER_MAX <= UINT16_MAX, "proxy_len cannot hold a header's length");

void relay_stats(const struct relay *r, struct relay_stats *out)
{
    *out = (struct relay_stats){r->up.bytes, r->down.bytes, NULL};
}

/* relay_finish - stop everything, free, then tell the caller */
static void relay_finish(struct relay *r, enum relay_event event,
                         const char *problem)
{
    struct relay_stats stats;
    relay_stats(r, &stats);
    stats.problem = problem;
    relay_done_fn done = r->done;
    void *arg = r->arg;
    relay_free(r);
    done(arg, event, &stats);
}

/* relay_enter - the one place where a relay changes phase: the timer is
 * set to the new phase's deadline, delay seconds from now */
static void relay_enter(struct relay *r, enum relay_phase phase, double delay)
{
    r->phase = (uint8_t)phase;
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_set(&r->timer, delay, 0.);
    ev_timer_start(r->loop, &r->timer);
}

/* relay_pipe_read - read what fits; returns 1 when bytes or the end of
 * file came, 0 when nothing did, -1 on a hard error */
static int relay_pipe_read(struct relay_pipe *p)
{
    if (p->eof || p->end == RELAY_BUFFER_SIZE)
        return 0;
    ssize_t n = recv(p->from, p->buf + p->end, RELAY_BUFFER_SIZE - p->end, 0);
    if (n > 0)
        p->end += (size_t)n;
    else if (n == 0)
        p->eof = true;
    else
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    return 1;
}

/* relay_pipe_write - write what is buffered, pass on an end of file;
 * returns 1 when bytes went, 0 when none did, -1 on a hard error */
static int relay_pipe_write(struct relay_pipe *p)
{
    int moved = 0;
    if (p->end > p->start) {
        ssize_t n = send(p->to, p->buf + p->start, p->end - p->start, MSG_NOSIGNAL);
        if (n < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        p->start += (size_t)n;
        p->bytes += (uint64_t)n;
        if (p->start == p->end)
            p->start = p->end = 0;
        moved = n > 0;
    }
    if (p->eof && !p->shut && p->end == p->start) {
        shutdown(p->to, SHUT_WR);
        p->shut = true;
    }
    return moved;
}

/* relay_update - wait for what each side can do next, or finish */
static void relay_update(struct relay *r)
{
    if (r->up.shut && r->down.shut) {
        relay_finish(r, RELAY_FINISHED, NULL);
        return;
    }
    /* The MTA is done: the deadline runs from its end of file, not from
     * the delivery of its last bytes, which a slow reader can put off. */
    if (r->down.eof && r->phase == RELAY_COPYING)
        relay_enter(r, RELAY_LINGERING, RELAY_LINGER_TIMEOUT);
    int client = 0, backend = 0;
    if (!r->up.eof && r->up.end < RELAY_BUFFER_SIZE)
        client |= EV_READ;
    if (r->up.end > r->up.start)
        backend |= EV_WRITE;
    if (!r->down.eof && r->down.end < RELAY_BUFFER_SIZE)
        backend |= EV_READ;
    if (r->down.end > r->down.start)
        client |= EV_WRITE;
    evutil_io_want(r->loop, &r->client_io, client);
    evutil_io_want(r->loop, &r->backend_io, backend);
}

/* relay_copy - move bytes after `fd` became ready; the pipe reading from
 * it and the pipe writing to it both get a turn */
static void relay_copy(struct relay *r, struct relay_pipe *in,
                       struct relay_pipe *out, int revents)
{
    int result[3] = {0, 0, 0};
    if (revents & EV_READ) {
        result[0] = relay_pipe_read(in);
        result[1] = relay_pipe_write(in);
    }
    if (revents & EV_WRITE)
        result[2] = relay_pipe_write(out);
    if (result[0] < 0 || result[1] < 0 || result[2] < 0) {
        relay_finish(r, RELAY_FINISHED, "connection reset");
        return;
    }
    if (result[0] > 0 || result[1] > 0 || result[2] > 0)
        r->last_active = ev_now(r->loop);
    relay_update(r);
}

/* relay_client_cb - the client socket is ready */
static void relay_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct relay *r = w->data;
    /* Until the backend's first bytes (its greeting) have reached the
     * client, the client has not been spoken to: talking now is a pregreet. */
    if ((revents & EV_READ) && r->down.bytes == 0) {
        char byte;
        ssize_t n = recv(r->client_io.fd, &byte, 1, MSG_PEEK);
        if (n > 0) {
            relay_finish(r, RELAY_CLIENT_SPOKE, NULL);
            return;
        }
        if (r->phase == RELAY_CONNECTING &&
            (n == 0 || (errno != EAGAIN && errno != EINTR))) {
            relay_finish(r, RELAY_FINISHED, "client left before the backend answered");
            return;
        }
    }
    if (r->phase != RELAY_CONNECTING)
        relay_copy(r, &r->up, &r->down, revents);
}

/* relay_connected - the backend accepted: set up the copy */
static void relay_connected(struct relay *r)
{
    uint8_t *buf = malloc(2 * (size_t)RELAY_BUFFER_SIZE);
    if (buf == NULL) {
        relay_finish(r, RELAY_BACKEND_DOWN, "out of memory");
        return;
    }
    /* buf goes into r before the libev calls: stored after them, gcc 12
     * -fanalyzer loses it and reports a leak (in evutil.h, out of reach of
     * a #pragma here) */
    r->up.buf = buf;
    r->down.buf = buf + RELAY_BUFFER_SIZE;
    r->last_active = ev_now(r->loop);
    relay_enter(r, RELAY_COPYING, r->idle_timeout);
    memcpy(r->up.buf, r->proxy_header, r->proxy_len);
    r->up.end = r->proxy_len;
    /* The header counts as relay overhead, not as client bytes. */
    r->up.bytes = 0;
    if (relay_pipe_write(&r->up) < 0) {
        relay_finish(r, RELAY_BACKEND_DOWN, "backend closed at once");
        return;
    }
    r->up.bytes = 0;
    relay_update(r);
}

/* relay_backend_cb - the backend socket is ready */
static void relay_backend_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct relay *r = w->data;
    if (r->phase != RELAY_CONNECTING) {
        relay_copy(r, &r->down, &r->up, revents);
        return;
    }
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
        error = errno;
    if (error != 0) {
        relay_finish(r, RELAY_BACKEND_DOWN, strerror(error));
        return;
    }
    relay_connected(r);
}

/* relay_idle_check - the timer fired while copying: a whole idle timeout
 * since the last byte ends the relay, else the timer waits for the rest */
static void relay_idle_check(struct relay *r)
{
    ev_tstamp left = r->last_active + r->idle_timeout - ev_now(r->loop);
    if (left <= 0.) {
        relay_finish(r, RELAY_FINISHED, "relay_idle_timeout");
        return;
    }
    ev_timer_set(&r->timer, left, 0.);
    ev_timer_start(r->loop, &r->timer);
}

/* relay_linger_over - the client had its RELAY_LINGER_TIMEOUT after the
 * MTA's end of file. If it has not taken all the MTA's bytes (some are in
 * our buffer or the kernel's), its connection is reset (SO_LINGER 0 for
 * the caller's close): after a plain close the kernel would go on feeding
 * a slow reader, past every limit on its sessions, and a FIN after our
 * buffer's loss would pass the cut-off reply for a whole one. */
static void relay_linger_over(struct relay *r)
{
    int unsent = 0;
    if (!r->down.shut || (ioctl(r->down.to, SIOCOUTQ, &unsent) == 0 && unsent > 0)) {
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(r->down.to, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    relay_finish(r, RELAY_FINISHED, "client did not close after the backend");
}

/* relay_timer_cb - the deadline of the phase */
static void relay_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct relay *r = w->data;
    switch ((enum relay_phase)r->phase) {
    case RELAY_CONNECTING:
        relay_finish(r, RELAY_BACKEND_DOWN, "connect timed out");
        break;
    case RELAY_COPYING:
        relay_idle_check(r);
        break;
    case RELAY_LINGERING:
        relay_linger_over(r);
        break;
    }
}

/* relay_socket - a non-blocking socket to the backend, connect started */
static int relay_socket(const struct conf *conf)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(conf->backend.addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (conf->has_backend_source) {
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        len = addr_to_sockaddr(&conf->backend_source, 0, &ss);
        if (bind(fd, (struct sockaddr *)&ss, len) < 0)
            goto fail;
    }
    len = addr_to_sockaddr(&conf->backend.addr, conf->backend.port, &ss);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

/* relay_proxy_header - the PROXY header naming the client and where it
 * connected to */
static uint16_t relay_proxy_header(const struct conf *conf, int client_fd,
                                   const struct addr *client, uint16_t port,
                                   uint8_t *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct addr local;
    uint16_t local_port;
    if (conf->backend_proxy_protocol == PROXY_NONE ||
        getsockname(client_fd, (struct sockaddr *)&ss, &len) < 0 ||
        addr_from_sockaddr((struct sockaddr *)&ss, &local, &local_port) < 0)
        return 0;
    ssize_t n = proxy_header_write(conf->backend_proxy_protocol, client, port,
                                   &local, local_port, buf, PROXY_HEADER_MAX);
    return n > 0 ? (uint16_t)n : 0;
}

struct relay *relay_start(struct ev_loop *loop, const struct conf *conf,
                          int client_fd, const struct addr *client,
                          uint16_t client_port, relay_done_fn done, void *arg)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    int fd = relay_socket(conf);
    if (fd < 0) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->done = done;
    r->arg = arg;
    r->idle_timeout = (float)conf->relay_idle_timeout;
    r->proxy_len = relay_proxy_header(conf, client_fd, client, client_port,
                                      r->proxy_header);
    r->up = (struct relay_pipe){.from = client_fd, .to = fd};
    r->down = (struct relay_pipe){.from = fd, .to = client_fd};
    ev_io_init(&r->client_io, relay_client_cb, client_fd, EV_READ);
    ev_io_init(&r->backend_io, relay_backend_cb, fd, EV_WRITE);
    ev_init(&r->timer, relay_timer_cb);
    r->client_io.data = r->backend_io.data = r->timer.data = r;
    ev_io_start(loop, &r->client_io);
    ev_io_start(loop, &r->backend_io);
    relay_enter(r, RELAY_CONNECTING, conf->backend_connect_timeout);
    return r;
}

void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    ev_io_stop(r->loop, &r->client_io);
    ev_io_stop(r->loop, &r->backend_io);
    ev_timer_stop(r->loop, &r->timer);
    close(r->backend_io.fd);
    free(r->up.buf);
    free(r);
}
