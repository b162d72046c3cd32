/*
 * httpd - the metrics endpoint. See httpd.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "server.h"
#include "log.h"

struct httpd_conn;

struct httpd {
    struct ev_loop *loop;
    const struct conf *conf;
    struct metrics *metrics;
    struct metrics_slot *slot;
    struct store *store;
    ev_io io;
    ev_timer refresh;
    struct httpd_conn *first;
    unsigned count;
};

/* One scrape: the request head in, the whole answer out. */
struct httpd_conn {
    struct httpd *h;
    struct httpd_conn *prev, *next;
    int fd;
    ev_io io;
    ev_timer timer;
    size_t in_len;
    char in[HTTPD_REQUEST_MAX];
    char *out;
    size_t out_len, out_sent;
};

int httpd_listen(const struct endpoint *where, char *err, size_t errsize)
{
    char why[256];
    int fd = server_listen(where, false, why, sizeof why);
    if (fd < 0)
        snprintf(err, errsize, "metrics_listen: %s", why);
    return fd;
}

/* httpd_conn_close - done with one scrape */
static void httpd_conn_close(struct httpd_conn *c)
{
    struct httpd *h = c->h;
    ev_io_stop(h->loop, &c->io);
    ev_timer_stop(h->loop, &c->timer);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->first = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->count--;
    free(c->out);
    free(c);
}

/* httpd_conn_write - send what the socket takes; close when all is out */
static void httpd_conn_write(struct httpd_conn *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            ev_io_stop(c->h->loop, &c->io);
            ev_io_set(&c->io, c->fd, EV_WRITE);
            ev_io_start(c->h->loop, &c->io);
            return;
        }
        if (n < 0)
            break;
        c->out_sent += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    httpd_conn_close(c);
}

/* httpd_answer - status line, headers and body into c->out */
/* gcc 12 -fanalyzer: "leak of malloc(...)", a false positive: the memory
 * is kept in c->out and freed by httpd_conn_close(). The analyzer drops
 * what is stored in a struct reached through a callback's argument once a
 * library call has seen that struct. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static void httpd_answer(struct httpd_conn *c, const char *status, const char *type,
                         const char *body, size_t body_len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, type, body_len);
    c->out = malloc((size_t)n + body_len);
    if (c->out == NULL)
        return;
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, body_len);
    c->out_len = (size_t)n + body_len;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* httpd_respond - the request head is in: answer it */
static void httpd_respond(struct httpd_conn *c)
{
    static const char not_found[] = "not found: try /metrics\n";
    static const char bad[] = "bad request\n";
    struct httpd *h = c->h;
    char *eol = strpbrk(c->in, "\r\n");
    if (eol != NULL)
        *eol = '\0';
    char method[16], path[256];
    if (sscanf(c->in, "%15s %255s", method, path) != 2) {
        httpd_answer(c, "400 Bad Request", "text/plain", bad, sizeof bad - 1);
        return;
    }
    char *query = strchr(path, '?');
    if (query != NULL)
        *query = '\0';
    bool get = strcmp(method, "GET") == 0, head = strcmp(method, "HEAD") == 0;
    if (!(get || head) || strcmp(path, "/metrics") != 0) {
        httpd_answer(c, "404 Not Found", "text/plain", not_found, sizeof not_found - 1);
        return;
    }
    metrics_process_refresh(h->slot);
    size_t len = 0;
    char *text = metrics_render(h->metrics, h->conf,
                                h->store ? store_verdict_count(h->store) : 0, &len);
    if (text == NULL)
        return;
    httpd_answer(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", text,
                 head ? 0 : len);
    free(text);
}

/* httpd_conn_read - gather the head (up to an empty line) */
static void httpd_conn_read(struct httpd_conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - 1 - c->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        httpd_conn_close(c);
        return;
    }
    c->in_len += (size_t)n;
    c->in[c->in_len] = '\0';
    bool complete = strstr(c->in, "\r\n\r\n") != NULL || strstr(c->in, "\n\n") != NULL;
    if (!complete && c->in_len < sizeof c->in - 1)
        return;
    if (complete) {
        httpd_respond(c);
    } else { /* HTTPD_REQUEST_MAX bytes and no end of the head */
        static const char long_head[] = "request head too long\n";
        httpd_answer(c, "431 Request Header Fields Too Large", "text/plain", long_head,
                     sizeof long_head - 1);
    }
    if (c->out == NULL) { /* out of memory: just close */
        httpd_conn_close(c);
        return;
    }
    httpd_conn_write(c);
}

static void httpd_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd_conn *c = w->data;
    (void)loop;
    if (revents & EV_WRITE)
        httpd_conn_write(c);
    else
        httpd_conn_read(c);
}

static void httpd_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    httpd_conn_close(w->data);
}

static void httpd_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct httpd *h = w->data;
    (void)revents;
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return; /* another worker took it */
    struct httpd_conn *c = h->count < HTTPD_CONNECTIONS_MAX ? calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
        close(fd);
        return;
    }
    c->h = h;
    c->fd = fd;
    c->next = h->first;
    if (h->first != NULL)
        h->first->prev = c;
    h->first = c;
    h->count++;
    ev_io_init(&c->io, httpd_conn_cb, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, httpd_timeout_cb, HTTPD_TIMEOUT, 0);
    c->timer.data = c;
    ev_io_start(loop, &c->io);
    ev_timer_start(loop, &c->timer);
}

/* httpd_refresh_cb - keep this worker's process facts fresh for scrapes
 * answered by another worker */
static void httpd_refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct httpd *h = w->data;
    (void)loop, (void)revents;
    metrics_process_refresh(h->slot);
}

struct httpd *httpd_start(struct ev_loop *loop, int fd, const struct conf *conf,
                          struct metrics *metrics, struct metrics_slot *slot,
                          struct store *store)
{
    struct httpd *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    *h = (struct httpd){.loop = loop, .conf = conf, .metrics = metrics, .slot = slot,
                        .store = store};
    ev_io_init(&h->io, httpd_accept_cb, fd, EV_READ);
    h->io.data = h;
    ev_io_start(loop, &h->io);
    ev_timer_init(&h->refresh, httpd_refresh_cb, HTTPD_REFRESH, HTTPD_REFRESH);
    h->refresh.data = h;
    ev_timer_start(loop, &h->refresh);
    return h;
}

void httpd_set_conf(struct httpd *h, const struct conf *conf)
{
    if (h != NULL)
        h->conf = conf;
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    while (h->first != NULL)
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): c->h == h, so close unlinks it */
        httpd_conn_close(h->first);
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->refresh);
    free(h);
}
