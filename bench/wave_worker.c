/*
 * wave_worker - one worker process's share of the load: SMTP client
 * sessions on one libev loop, non-blocking sockets. See wave.h.
 *
 *   wave_worker_run(options, index, fd_limit, result)
 *       runs worker `index` of options->procs: 1/procs of the concurrency,
 *       the rate, the profile and the session count. It stops by itself at
 *       the duration limit (or the profile's end), or once the session count
 *       is used up and every session has ended, or at SIGINT/SIGTERM; it then
 *       closes every socket it opened and fills *result. 0, or -1 when out
 *       of memory at start.
 *   wave_profile_at(profile, t)
 *       the profile's open connections at t seconds (linear in between).
 *
 * A session follows its kind's script, a table of steps (what to send,
 * which reply class to expect, which latency and reply class to count);
 * wave_step_enter() is the one place a step begins. Commands are shared
 * constants and replies are framed through one read buffer per worker, so a
 * session holds only its watchers, a timer and a few counters. Its one timer
 * is the session timeout, a pause (--think, --bot-linger), or an idle
 * holder's hold time.
 * Source addresses are bound with IP_BIND_ADDRESS_NO_PORT, so every address
 * has its own range of ports. Each loop iteration starts at most
 * WAVE_BURST sessions, and running out of descriptors or ports pauses the
 * starts for WAVE_PAUSE; both are counted as errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wave.h"

#define WAVE_BURST 256         /* sessions started per loop iteration */
#define WAVE_PAUSE 0.01        /* seconds without starts after EMFILE & co */
#define WAVE_READ_MAX 16384
#define WAVE_NONE (-1)
#define WAVE_EXPECT_RCPT 0     /* the kind decides what RCPT must get */

enum wave_step_type {
    WAVE_STEP_REPLY,   /* send the command (if any), then read one reply */
    WAVE_STEP_BYE,     /* the same with QUIT, or a hang-up for some bots */
    WAVE_STEP_EOF,     /* wait until the server closes: done */
    WAVE_STEP_HOLD,    /* idle holder: sit */
};

enum wave_send { WAVE_SEND_NONE, WAVE_SEND_EHLO, WAVE_SEND_MAIL, WAVE_SEND_RCPT,
                 WAVE_SEND_DATA, WAVE_SEND_BODY, WAVE_SEND_QUIT, WAVE_SEND_COUNT };

struct wave_step {
    uint8_t type;      /* enum wave_step_type */
    uint8_t send;      /* enum wave_send */
    uint8_t expect;    /* first digit of the expected reply, or WAVE_EXPECT_RCPT */
    int8_t latency;    /* enum wave_latency to record, or WAVE_NONE */
    int8_t tally;      /* enum wave_tally to count the class in, or WAVE_NONE */
};

static const struct wave_step wave_script_bot[] = {
    {WAVE_STEP_REPLY, WAVE_SEND_NONE, 2, WAVE_LAT_GREETING, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_EHLO, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_MAIL, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_RCPT, WAVE_EXPECT_RCPT, WAVE_LAT_RCPT, WAVE_TALLY_RCPT},
    {WAVE_STEP_BYE, WAVE_SEND_QUIT, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_EOF, WAVE_SEND_NONE, 0, WAVE_NONE, WAVE_NONE},
};

/* EHLO goes out at connect; the first reply is still the greeting. */
static const struct wave_step wave_script_pregreet[] = {
    {WAVE_STEP_REPLY, WAVE_SEND_EHLO, 2, WAVE_LAT_GREETING, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_NONE, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_MAIL, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_RCPT, WAVE_EXPECT_RCPT, WAVE_LAT_RCPT, WAVE_TALLY_RCPT},
    {WAVE_STEP_BYE, WAVE_SEND_QUIT, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_EOF, WAVE_SEND_NONE, 0, WAVE_NONE, WAVE_NONE},
};

static const struct wave_step wave_script_polite[] = {
    {WAVE_STEP_REPLY, WAVE_SEND_NONE, 2, WAVE_LAT_GREETING, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_EHLO, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_MAIL, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_RCPT, 2, WAVE_LAT_RCPT, WAVE_TALLY_RCPT},
    {WAVE_STEP_REPLY, WAVE_SEND_DATA, 3, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_REPLY, WAVE_SEND_BODY, 2, WAVE_LAT_DATA, WAVE_TALLY_DATA},
    {WAVE_STEP_REPLY, WAVE_SEND_QUIT, 2, WAVE_NONE, WAVE_NONE},
    {WAVE_STEP_EOF, WAVE_SEND_NONE, 0, WAVE_NONE, WAVE_NONE},
};

static const struct wave_step wave_script_idle[] = {
    {WAVE_STEP_REPLY, WAVE_SEND_NONE, 2, WAVE_LAT_GREETING, WAVE_NONE},
    {WAVE_STEP_HOLD, WAVE_SEND_NONE, 0, WAVE_NONE, WAVE_NONE},
};

struct wave_kind_info {
    const struct wave_step *script;
    uint8_t rcpt_expect;   /* first digit the reply to RCPT must have */
    bool bot;              /* QUITs or hangs up, by --bot-quit-share */
};

static const struct wave_kind_info wave_kinds[WAVE_KIND_COUNT] = {
    [WAVE_KIND_LISTED] = {wave_script_bot, 5, true},
    [WAVE_KIND_PREGREET] = {wave_script_pregreet, 5, true},
    [WAVE_KIND_POLITE] = {wave_script_polite, 2, false},
    [WAVE_KIND_IDLE] = {wave_script_idle, 0, false},
    [WAVE_KIND_SINK] = {wave_script_bot, 2, true},
};

static const char *const wave_commands[WAVE_SEND_COUNT] = {
    [WAVE_SEND_EHLO] = "EHLO wave.test\r\n",
    [WAVE_SEND_MAIL] = "MAIL FROM:<sender@wave.test>\r\n",
    [WAVE_SEND_RCPT] = "RCPT TO:<rcpt@example.org>\r\n",
    [WAVE_SEND_DATA] = "DATA\r\n",
    [WAVE_SEND_QUIT] = "QUIT\r\n",
};

enum wave_phase {
    WAVE_PHASE_CONNECTING, WAVE_PHASE_SENDING, WAVE_PHASE_WAITING,
    WAVE_PHASE_THINKING, WAVE_PHASE_HOLDING,
};

enum wave_end { WAVE_END_DONE, WAVE_END_SERVER_CLOSED, WAVE_END_UNFINISHED, WAVE_END_ERROR };

struct wave_worker;

struct wave_session {
    ev_io io;
    ev_timer timer;            /* session timeout, pause or hold time */
    struct wave_worker *w;
    double start;              /* wave_now() at connect, moved on by pauses */
    double pause_began;        /* wave_now() */
    double deadline;           /* ev_now() base: the session timeout */
    size_t out_off;            /* bytes of the step's command sent so far */
    struct wave_reply_parser reply;
    uint8_t kind;              /* enum wave_kind */
    uint8_t step;              /* index into the kind's script */
    uint8_t phase;             /* enum wave_phase */
    bool hangup;               /* a bot that closes instead of QUIT */
    bool late;                 /* pregreet: the greeting came before our EHLO */
    bool paused;               /* the current step's pause is over */
};

struct wave_worker {
    struct ev_loop *loop;
    const struct wave_options *o;
    unsigned index;
    struct wave_result *res;
    double t0;                 /* wave_now() at start */
    double end;                /* seconds after t0: the run ends */
    double rate;               /* this worker's new sessions per second, 0 = any */
    uint64_t count;            /* this worker's session limit */
    uint64_t started, open, bots;
    uint64_t picks[WAVE_NET_COUNT];
    double pause_until;        /* seconds after t0: no starts before */
    bool stopped;
    struct wave_session **by_fd;
    size_t fd_limit;
    ev_prepare refill;
    ev_idle kick;              /* keeps the loop from blocking while behind */
    ev_timer tick, sample, stop;
    ev_signal sigint, sigterm;
    const char *send[WAVE_SEND_COUNT];
    size_t send_len[WAVE_SEND_COUNT];
    char *body;
    char rbuf[WAVE_READ_MAX];
};

static bool wave_step_enter(struct wave_session *s);

/* wave_now - monotonic seconds */
static double wave_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* wave_share - worker index's part of total, the parts adding up to it */
static uint64_t wave_share(uint64_t total, unsigned index, unsigned procs)
{
    return total * (index + 1) / procs - total * index / procs;
}

/* wave_profile_at - the profile's open connections at t (linear between
 * points, the first and last value outside them) */
double wave_profile_at(const struct wave_profile *p, double t)
{
    if (p->count == 0)
        return 0;
    if (t <= p->points[0].t)
        return p->points[0].open;
    size_t lo = 0, hi = p->count;  /* points[lo].t <= t < points[hi].t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->points[mid].t <= t)
            lo = mid;
        else
            hi = mid;
    }
    if (hi == p->count)
        return p->points[lo].open;
    const struct wave_point *a = &p->points[lo], *b = &p->points[hi];
    return a->open + (b->open - a->open) * (t - a->t) / (b->t - a->t);
}

/* wave_error_of - the error kind of an errno value */
static enum wave_error wave_error_of(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return WAVE_ERR_REFUSED;
    case ECONNRESET:
    case EPIPE:
        return WAVE_ERR_RESET;
    case ETIMEDOUT:
        return WAVE_ERR_TIMEOUT;
    case EADDRNOTAVAIL:
        return WAVE_ERR_ADDR;
    case EMFILE:
    case ENFILE:
        return WAVE_ERR_NOFILE;
    default:
        return WAVE_ERR_OTHER;
    }
}

/* wave_class_of - a reply code's class for the tallies */
static enum wave_class wave_class_of(int code)
{
    switch (code / 100) {
    case 2:
        return WAVE_CLASS_2XX;
    case 4:
        return WAVE_CLASS_4XX;
    case 5:
        return WAVE_CLASS_5XX;
    default:
        return WAVE_CLASS_OTHER;
    }
}

/* wave_io_want - make the session's io watcher wait for exactly `events` */
static void wave_io_want(struct wave_session *s, int events)
{
    struct ev_loop *loop = s->w->loop;
    int current = ev_is_active(&s->io) ? (s->io.events & (EV_READ | EV_WRITE)) : 0;
    if (current == events)
        return;
    ev_io_stop(loop, &s->io);
    if (events == 0)
        return;
    ev_io_set(&s->io, s->io.fd, events);
    ev_io_start(loop, &s->io);
}

/* wave_timer_after - (re)arm the session's one timer */
static void wave_timer_after(struct wave_session *s, double seconds)
{
    ev_timer_stop(s->w->loop, &s->timer);
    ev_timer_set(&s->timer, seconds > 0 ? seconds : 0, 0);
    ev_timer_start(s->w->loop, &s->timer);
}

/* wave_step_of - the step the session is at */
static const struct wave_step *wave_step_of(const struct wave_session *s)
{
    return &wave_kinds[s->kind].script[s->step];
}

/* wave_session_end - count how it ended, close, free */
static void wave_session_end(struct wave_session *s, enum wave_end how, enum wave_error error)
{
    struct wave_worker *w = s->w;
    struct wave_kind_stats *ks = &w->res->kind[s->kind];
    if (how == WAVE_END_DONE)
        ks->completed++;
    else if (how == WAVE_END_SERVER_CLOSED)
        ks->closed_by_server++;
    else if (how == WAVE_END_UNFINISHED)
        ks->unfinished++;
    else
        ks->errors[error]++;
    ev_io_stop(w->loop, &s->io);
    ev_timer_stop(w->loop, &s->timer);
    w->by_fd[s->io.fd] = NULL;
    close(s->io.fd);
    free(s);
    w->open--;
}

/* wave_session_fail - end with an error */
static void wave_session_fail(struct wave_session *s, enum wave_error error)
{
    wave_session_end(s, WAVE_END_ERROR, error);
}

/* wave_session_wait - wait for the step's reply */
static void wave_session_wait(struct wave_session *s)
{
    s->phase = WAVE_PHASE_WAITING;
    wave_io_want(s, EV_READ);
}

/* wave_session_flush - write what is left of the step's command; then wait
 * for the reply. false if the session ended. */
static bool wave_session_flush(struct wave_session *s)
{
    const struct wave_worker *w = s->w;
    unsigned what = wave_step_of(s)->send;
    while (s->out_off < w->send_len[what]) {
        ssize_t n = send(s->io.fd, w->send[what] + s->out_off, w->send_len[what] - s->out_off,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wave_io_want(s, EV_WRITE);
            return true;
        }
        if (n < 0) {
            wave_session_fail(s, wave_error_of(errno));
            return false;
        }
        s->out_off += (size_t)n;
    }
    wave_session_wait(s);
    return true;
}

/* wave_session_send - start sending the step's command */
static bool wave_session_send(struct wave_session *s)
{
    s->phase = WAVE_PHASE_SENDING;
    s->out_off = 0;
    return wave_session_flush(s);
}

/* wave_session_pause - pause before the step, as a slow client (--think)
 * or a bot that holds on after its refusal (--bot-linger); the pause
 * counts neither in the latencies nor against the session timeout */
static void wave_session_pause(struct wave_session *s, double seconds)
{
    s->phase = WAVE_PHASE_THINKING;
    s->pause_began = wave_now();
    s->paused = true;
    s->deadline += seconds;
    wave_io_want(s, 0);
    wave_timer_after(s, seconds);
}

/* wave_step_pause - seconds to pause before the step begins: a bot's
 * linger before its QUIT or hang-up, else the think pause before a command
 * (none before a hang-up) */
static double wave_step_pause(const struct wave_session *s, const struct wave_step *st)
{
    const struct wave_options *o = s->w->o;
    if (st->type == WAVE_STEP_BYE && wave_kinds[s->kind].bot && o->bot_linger > 0)
        return o->bot_linger;
    if (st->send == WAVE_SEND_NONE || s->step == 0 ||
        (st->type == WAVE_STEP_BYE && s->hangup))
        return 0;
    return o->think;
}

/* wave_session_hold - an idle holder sits until --hold or the end */
static void wave_session_hold(struct wave_session *s)
{
    s->phase = WAVE_PHASE_HOLDING;
    wave_io_want(s, EV_READ);
    if (s->w->o->hold > 0)
        wave_timer_after(s, s->w->o->hold);
    else
        ev_timer_stop(s->w->loop, &s->timer);
}

/* wave_step_enter - begin the session's current step; false if the
 * session ended */
static bool wave_step_enter(struct wave_session *s)
{
    const struct wave_step *st = wave_step_of(s);
    double pause = wave_step_pause(s, st);
    if (pause > 0 && !s->paused) {
        wave_session_pause(s, pause);
        return true;
    }
    s->paused = false;
    if (st->type == WAVE_STEP_BYE && s->hangup) {
        wave_session_end(s, WAVE_END_DONE, 0);
        return false;
    }
    if (st->type == WAVE_STEP_HOLD) {
        wave_session_hold(s);
        return true;
    }
    if (st->send == WAVE_SEND_NONE) {
        wave_session_wait(s);
        return true;
    }
    return wave_session_send(s);
}

/* wave_session_reply - a complete reply (code -1: malformed); false if
 * the session ended */
static bool wave_session_reply(struct wave_session *s, int code)
{
    const struct wave_step *st = wave_step_of(s);
    if (s->phase == WAVE_PHASE_HOLDING || st->type == WAVE_STEP_EOF)
        return true;  /* e.g. the server's 421 before it closes */
    if (s->phase != WAVE_PHASE_WAITING) {
        wave_session_fail(s, WAVE_ERR_UNEXPECTED);  /* before our command */
        return false;
    }
    struct wave_kind_stats *ks = &s->w->res->kind[s->kind];
    if (st->latency != WAVE_NONE && code > 0) {
        double seconds = wave_now() - s->start;
        wave_hist_add(&ks->latency[st->latency], (uint64_t)llround(seconds * 1e6));
    }
    if (st->tally != WAVE_NONE)
        ks->tally[st->tally][wave_class_of(code)]++;
    int expect = st->expect;
    if (expect == WAVE_EXPECT_RCPT)
        expect = s->late ? code / 100 : wave_kinds[s->kind].rcpt_expect;
    if (code < 0 || code / 100 != expect) {
        wave_session_fail(s, WAVE_ERR_UNEXPECTED);
        return false;
    }
    s->step++;
    return wave_step_enter(s);
}

/* wave_session_eof - the server closed (err 0) or reset the connection */
static void wave_session_eof(struct wave_session *s, int err)
{
    if (s->phase == WAVE_PHASE_HOLDING)
        wave_session_end(s, WAVE_END_SERVER_CLOSED, 0);
    else if (wave_step_of(s)->type == WAVE_STEP_EOF)
        wave_session_end(s, WAVE_END_DONE, 0);
    else
        wave_session_fail(s, err ? wave_error_of(err) : WAVE_ERR_CLOSED);
}

/* wave_session_read - read what arrived and handle each complete reply */
static void wave_session_read(struct wave_session *s)
{
    struct wave_worker *w = s->w;
    ssize_t n = recv(s->io.fd, w->rbuf, sizeof w->rbuf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        wave_session_eof(s, n < 0 ? errno : 0);
        return;
    }
    size_t off = 0;
    while (off < (size_t)n) {
        size_t used;
        int code = wave_reply_feed(&s->reply, w->rbuf + off, (size_t)n - off, &used);
        off += used;
        if (code == 0 || !wave_session_reply(s, code))
            return;
    }
}

/* wave_session_connected - the connect finished, well or not. A pregreet
 * bot whose greeting is already here (its loop was slow) is late: any
 * reply to its RCPT is then right. */
static void wave_session_connected(struct wave_session *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        wave_session_fail(s, wave_error_of(err));
        return;
    }
    char c;
    if (wave_step_of(s)->send != WAVE_SEND_NONE
        && recv(s->io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
        s->late = true;  /* the server spoke first: no pregreet test */
        s->w->res->kind[s->kind].late++;
    }
    wave_step_enter(s);
}

/* wave_io_cb - the socket is ready */
static void wave_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct wave_session *s = io->data;
    switch (s->phase) {
    case WAVE_PHASE_CONNECTING:
        wave_session_connected(s);
        break;
    case WAVE_PHASE_SENDING:
        wave_session_flush(s);
        break;
    default:
        wave_session_read(s);
        break;
    }
}

/* wave_timer_cb - pause over, hold time over, or timed out */
static void wave_timer_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)revents;
    struct wave_session *s = timer->data;
    if (s->phase == WAVE_PHASE_THINKING) {
        s->start += wave_now() - s->pause_began;
        wave_timer_after(s, s->deadline - ev_now(loop));
        wave_step_enter(s);
    } else if (s->phase == WAVE_PHASE_HOLDING) {
        wave_session_end(s, WAVE_END_DONE, 0);
    } else {
        wave_session_fail(s, WAVE_ERR_TIMEOUT);
    }
}

/* wave_net_usable - addresses used in a net: no x.y.z.0 or x.y.z.255 when
 * the net spans whole /24s */
static uint64_t wave_net_usable(const struct wave_cidr *c)
{
    uint64_t size = 1ull << (32 - c->prefix);
    return c->prefix <= 24 ? size / 256 * 254 : size;
}

/* wave_net_address - the k-th usable address of a net (host byte order) */
static uint32_t wave_net_address(const struct wave_cidr *c, uint64_t k)
{
    if (c->prefix > 24)
        return c->base + (uint32_t)k;
    return c->base + (uint32_t)(k / 254 * 256 + k % 254 + 1);
}

/* wave_pick_source - the next source address for a kind: from its net,
 * fresh each time or from the first --pool addresses, the workers taking
 * turns */
static uint32_t wave_pick_source(struct wave_worker *w, enum wave_kind kind)
{
    const struct wave_options *o = w->o;
    enum wave_net net = WAVE_NET_CLEAN;
    if (kind == WAVE_KIND_LISTED || kind == WAVE_KIND_SINK)
        net = WAVE_NET_LISTED;
    else if (kind == WAVE_KIND_IDLE)
        net = o->idle_net;
    const struct wave_cidr *c = &o->nets[net];
    uint64_t range = wave_net_usable(c);
    if (!o->fresh && o->pool < range)
        range = o->pool;
    uint64_t slot = w->picks[net]++ * o->procs + w->index;
    return wave_net_address(c, slot % range);
}

/* wave_connect - a non-blocking socket bound to the kind's next source
 * address (IPv4 targets), connecting to the target; -1 with errno */
static int wave_connect(struct wave_worker *w, enum wave_kind kind)
{
    const struct wave_options *o = w->o;
    int fd = socket(o->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int ok = 0, one = 1;
    if (o->target.ss_family == AF_INET) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(wave_pick_source(w, kind));
        ok = setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (ok == 0)
            ok = bind(fd, (const struct sockaddr *)&src, sizeof src);
    }
    if (ok == 0 && connect(fd, (const struct sockaddr *)&o->target, o->target_len) < 0
        && errno != EINPROGRESS)
        ok = -1;
    if (ok == 0 && (size_t)fd < w->fd_limit)
        return fd;
    int err = ok == 0 ? EMFILE : errno;
    close(fd);
    errno = err;
    return -1;
}

/* wave_pick_kind - the kind of the next session: the one furthest behind
 * its share, so the mix is exact at every moment */
static enum wave_kind wave_pick_kind(const struct wave_worker *w)
{
    const unsigned *shares = w->o->shares;
    int64_t sum = 0;
    for (int k = 0; k < WAVE_KIND_COUNT; k++)
        sum += shares[k];
    int64_t n = (int64_t)w->started + 1;
    int best = 0;
    int64_t best_lag = INT64_MIN;
    for (int k = 0; k < WAVE_KIND_COUNT; k++) {
        int64_t lag = (int64_t)shares[k] * n - (int64_t)w->res->kind[k].started * sum;
        if (shares[k] > 0 && lag > best_lag) {
            best = k;
            best_lag = lag;
        }
    }
    return (enum wave_kind)best;
}

/* wave_bot_quits - whether the next bot QUITs (--bot-quit-share percent of
 * them, spread evenly) */
static bool wave_bot_quits(struct wave_worker *w)
{
    uint64_t j = w->bots++, q = w->o->bot_quit_share;
    return (j + 1) * q / 100 > j * q / 100;
}

/* wave_session_start - start one session; a failure to even connect is
 * counted, and running out of descriptors or ports pauses the starts */
static void wave_session_start(struct wave_worker *w)
{
    enum wave_kind kind = wave_pick_kind(w);
    struct wave_kind_stats *ks = &w->res->kind[kind];
    ks->started++;
    w->started++;
    double start = wave_now();
    int fd = wave_connect(w, kind);
    struct wave_session *s = fd < 0 ? NULL : calloc(1, sizeof *s);
    if (s == NULL) {
        enum wave_error e = fd < 0 ? wave_error_of(errno) : WAVE_ERR_OTHER;
        ks->errors[e]++;
        if (fd >= 0)
            close(fd);
        if (e == WAVE_ERR_ADDR || e == WAVE_ERR_NOFILE || e == WAVE_ERR_OTHER)
            w->pause_until = start - w->t0 + WAVE_PAUSE;
        return;
    }
    s->w = w;
    s->kind = (uint8_t)kind;
    s->start = start;
    s->phase = WAVE_PHASE_CONNECTING;
    s->hangup = wave_kinds[kind].bot && !wave_bot_quits(w);
    s->deadline = ev_now(w->loop) + w->o->session_timeout;
    ev_io_init(&s->io, wave_io_cb, fd, EV_WRITE);
    s->io.data = s;
    ev_io_start(w->loop, &s->io);
    ev_timer_init(&s->timer, wave_timer_cb, w->o->session_timeout, 0);
    s->timer.data = s;
    ev_timer_start(w->loop, &s->timer);
    w->by_fd[fd] = s;
    if (++w->open > w->res->max_open)
        w->res->max_open = w->open;
}

/* wave_target_open - connections this worker should hold at t, or
 * UINT64_MAX when only the rate shapes the load */
static uint64_t wave_target_open(const struct wave_worker *w, double t)
{
    const struct wave_options *o = w->o;
    if (o->profile.count) {
        double open = o->scale * wave_profile_at(&o->profile, t / o->time_scale);
        return wave_share((uint64_t)llround(open), w->index, o->procs);
    }
    if (o->concurrency)
        return wave_share(o->concurrency, w->index, o->procs);
    return UINT64_MAX;
}

/* wave_want - sessions to start now: what the target, the rate and the
 * count limit all allow */
static uint64_t wave_want(const struct wave_worker *w, double t)
{
    if (t < w->pause_until || w->started >= w->count)
        return 0;
    uint64_t want = w->count - w->started;
    uint64_t target = wave_target_open(w, t);
    if (target != UINT64_MAX) {
        uint64_t room = target > w->open ? target - w->open : 0;
        if (room < want)
            want = room;
    }
    if (w->rate > 0) {
        uint64_t allowed = (uint64_t)(w->rate * t) + 1;
        uint64_t left = allowed > w->started ? allowed - w->started : 0;
        if (left < want)
            want = left;
    }
    return want;
}

/* wave_worker_stop - the end, once (the elapsed time stops here): idle
 * holders still sitting count as held, other sessions as unfinished. The
 * signal watchers stay until wave_worker_quiet(), so a second signal cannot
 * kill the worker before it has sent its result. */
static void wave_worker_stop(struct wave_worker *w)
{
    if (w->stopped)
        return;
    w->stopped = true;
    w->res->elapsed = wave_now() - w->t0;
    for (size_t fd = 0; fd < w->fd_limit; fd++) {
        struct wave_session *s = w->by_fd[fd];
        if (s != NULL)
            wave_session_end(s, s->phase == WAVE_PHASE_HOLDING ? WAVE_END_DONE
                                                               : WAVE_END_UNFINISHED, 0);
    }
    ev_prepare_stop(w->loop, &w->refill);
    ev_idle_stop(w->loop, &w->kick);
    ev_timer_stop(w->loop, &w->tick);
    ev_timer_stop(w->loop, &w->sample);
    ev_timer_stop(w->loop, &w->stop);
    ev_break(w->loop, EVBREAK_ALL);
}

/* wave_refill_cb - before each wait for events: end the run when its time
 * or its sessions are used up, else start what the load shape asks for */
static void wave_refill_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    struct wave_worker *w = p->data;
    double t = wave_now() - w->t0;
    if (t >= w->end || (w->started >= w->count && w->open == 0)) {
        wave_worker_stop(w);
        return;
    }
    uint64_t want = wave_want(w, t);
    uint64_t n = want < WAVE_BURST ? want : WAVE_BURST;
    for (uint64_t i = 0; i < n; i++)
        wave_session_start(w);
    if (want > n && w->pause_until <= t)
        ev_idle_start(loop, &w->kick);
    else
        ev_idle_stop(loop, &w->kick);
}

/* wave_nothing_cb - a watcher whose only job is to wake the loop */
static void wave_nothing_cb(struct ev_loop *loop, ev_idle *idle, int revents)
{
    (void)loop;
    (void)idle;
    (void)revents;
}

/* wave_tick_cb - wakes the loop for the rate, pauses and the profile */
static void wave_tick_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)timer;
    (void)revents;
}

/* wave_sample_cb - every second: the open connections */
static void wave_sample_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    struct wave_worker *w = timer->data;
    struct wave_result *r = w->res;
    if (r->series_len < WAVE_SERIES_MAX)
        r->series[r->series_len++] = (uint32_t)w->open;
}

/* wave_end_cb - the duration (or the profile) is over */
static void wave_end_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
    (void)loop;
    (void)revents;
    wave_worker_stop(timer->data);
}

/* wave_signal_cb - SIGINT or SIGTERM: end now, report what was done */
static void wave_signal_cb(struct ev_loop *loop, ev_signal *signal, int revents)
{
    (void)loop;
    (void)revents;
    wave_worker_stop(signal->data);
}

/* wave_body - the message polite MTAs send after DATA: headers, text lines
 * up to about `size` bytes, the final dot; NULL when out of memory */
static char *wave_body(size_t size, size_t *len)
{
    static const char head[] = "From: <sender@wave.test>\r\nTo: <rcpt@example.org>\r\n"
                               "Subject: wave test message\r\n\r\n";
    static const char line[] = "A line of a test message sent by bench/wave, breakwater's "
                               "wave generator.\r\n";
    char *body = malloc(sizeof head + size + sizeof line + 4);
    if (body == NULL)
        return NULL;
    size_t n = sizeof head - 1;
    memcpy(body, head, n);
    while (n < size) {
        memcpy(body + n, line, sizeof line - 1);
        n += sizeof line - 1;
    }
    memcpy(body + n, ".\r\n", 3);
    *len = n + 3;
    return body;
}

/* wave_worker_init - the worker's share of the load, its commands and
 * watchers; -1 when out of memory */
static int wave_worker_init(struct wave_worker *w, const struct wave_options *o,
                            unsigned index, size_t fd_limit, struct wave_result *out)
{
    w->o = o;
    w->index = index;
    w->res = out;
    w->fd_limit = fd_limit;
    w->count = wave_share(o->count, index, o->procs);
    w->rate = o->rate / o->procs;
    w->end = o->duration;
    if (o->profile.count && o->profile.points[o->profile.count - 1].t * o->time_scale < w->end)
        w->end = o->profile.points[o->profile.count - 1].t * o->time_scale;
    for (int i = 0; i < WAVE_SEND_COUNT; i++) {
        w->send[i] = wave_commands[i] ? wave_commands[i] : "";
        w->send_len[i] = strlen(w->send[i]);
    }
    w->body = wave_body(o->message_size, &w->send_len[WAVE_SEND_BODY]);
    w->send[WAVE_SEND_BODY] = w->body;
    w->by_fd = calloc(fd_limit, sizeof *w->by_fd);
    w->loop = ev_default_loop(EVFLAG_AUTO);
    return w->body && w->by_fd && w->loop ? 0 : -1;
}

/* wave_worker_watchers - start the load: refill, ticks, the per-second
 * sample, the end of the duration, the signals */
static void wave_worker_watchers(struct wave_worker *w)
{
    struct ev_loop *loop = w->loop;
    ev_prepare_init(&w->refill, wave_refill_cb);
    w->refill.data = w;
    ev_prepare_start(loop, &w->refill);
    ev_idle_init(&w->kick, wave_nothing_cb);
    double tick = w->rate > 0 ? 0.001 : 0.01;
    ev_timer_init(&w->tick, wave_tick_cb, tick, tick);
    ev_timer_start(loop, &w->tick);
    ev_timer_init(&w->sample, wave_sample_cb, 1.0, 1.0);
    w->sample.data = w;
    ev_timer_start(loop, &w->sample);
    ev_timer_init(&w->stop, wave_end_cb, w->end, 0);
    w->stop.data = w;
    ev_timer_start(loop, &w->stop);
    ev_signal_init(&w->sigint, wave_signal_cb, SIGINT);
    w->sigint.data = w;
    ev_signal_start(loop, &w->sigint);
    ev_signal_init(&w->sigterm, wave_signal_cb, SIGTERM);
    w->sigterm.data = w;
    ev_signal_start(loop, &w->sigterm);
}

/* wave_worker_quiet - after the loop: further SIGINT/SIGTERM stay pending
 * (blocked) while the result is sent, then go with the process */
static void wave_worker_quiet(struct wave_worker *w)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    ev_signal_stop(w->loop, &w->sigint);
    ev_signal_stop(w->loop, &w->sigterm);
}

/* wave_worker_run - see the top of this file */
int wave_worker_run(const struct wave_options *o, unsigned index, size_t fd_limit,
                    struct wave_result *out)
{
    struct wave_worker *w = calloc(1, sizeof *w);
    int rc = -1;
    if (w != NULL && wave_worker_init(w, o, index, fd_limit, out) == 0) {
        ev_now_update(w->loop);
        w->t0 = wave_now();
        out->series[0] = 0;
        out->series_len = 1;
        wave_worker_watchers(w);
        ev_run(w->loop, 0);
        wave_worker_quiet(w);
        rc = 0;
    }
    if (w != NULL) {
        free(w->body);
        free(w->by_fd);
    }
    free(w);
    return rc;
}
