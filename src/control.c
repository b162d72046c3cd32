/*
 * control - the control socket's server and client. See control.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "dnsbl_spec.h"
#include "log.h"

#define CONTROL_TIMEOUT 10.0   /* seconds a client has to ask and read */
#define CONTROL_NO_ANSWER "no answer from the control socket %s within %ds"
#define CONTROL_ANSWER_LINE_MAX (CONTROL_LINE_MAX * 2) /* ctl prints longer lines in pieces */
#define CONTROL_ARGS_MAX 4

struct control {
    struct ev_loop *loop;
    control_reload_fn *reload;
    void *reload_arg;
    struct store *store;
    struct bans *bans;
    const struct metrics *metrics;
    ev_io io;
    unsigned open;               /* client connections, up to CONTROL_CONNECTIONS_MAX */
};

/* One client connection: the command line in, the whole answer out. */
struct control_conn {
    struct control *ctl;
    int fd;
    ev_io io;
    ev_timer timer;
    size_t in_len;
    char in[CONTROL_LINE_MAX];
    char *out;
    size_t out_len, out_cap, out_sent;
    bool out_failed;           /* out of memory: answer with an error */
};

typedef void control_handler(struct control_conn *cc, char **argv, int argc);

/* control_say - append a formatted line to the answer */
/* gcc 12 -fanalyzer: "leak of grown", a false positive: grown is kept in
 * cc->out and freed by control_conn_close(). The analyzer drops what is
 * stored in a struct reached through a callback's argument (w->data) once
 * a library call has seen that struct. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
__attribute__((format(printf, 2, 3)))
static void control_say(struct control_conn *cc, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = cc->out_cap - cc->out_len;
        va_start(ap, fmt);
        int n = vsnprintf(cc->out ? cc->out + cc->out_len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0 || cc->out_failed)
            return;
        if (cc->out != NULL && (size_t)n + 2 <= room) {
            cc->out_len += (size_t)n;
            cc->out[cc->out_len++] = '\n';
            cc->out[cc->out_len] = '\0';
            return;
        }
        size_t cap = cc->out_cap ? cc->out_cap * 2 : 4096;
        while (cap < cc->out_len + (size_t)n + 2)
            cap *= 2;
        char *grown = cap <= CONTROL_OUT_MAX ? realloc(cc->out, cap) : NULL;
        if (grown == NULL) {
            cc->out_failed = true;
            return;
        }
        cc->out = grown;
        cc->out_cap = cap;
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* control_parse_net - the ADDRESS[/LEN] argument, or an error answer;
 * *prefix is -1 when no /LEN was given (net is then the address alone) */
static int control_parse_net(struct control_conn *cc, const char *text, struct cidr *net,
                             int *prefix)
{
    if (cidr_parse(text, net) < 0) {
        control_say(cc, "error: not an IP address or ADDRESS/LEN: '%.64s'", text);
        return -1;
    }
    *prefix = strchr(text, '/') != NULL ? net->prefix : -1;
    if (*prefix >= 0 &&
        *prefix < (net->net.family == AF_INET ? CIDR_NET4_MIN : CIDR_NET6_MIN)) {
        control_say(cc, "error: a network wider than /%d (IPv4) or /%d (IPv6): '%.64s'",
                    CIDR_NET4_MIN, CIDR_NET6_MIN, text);
        return -1;
    }
    return 0;
}

static void control_ban(struct control_conn *cc, char **argv, int argc)
{
    struct cidr net;
    int prefix;
    double seconds = 0;
    char err[256];
    if (control_parse_net(cc, argv[1], &net, &prefix) < 0)
        return;
    if (argc > 2 && (conf_parse_duration(argv[2], &seconds) < 0 || seconds < 1)) {
        control_say(cc, "error: not a duration of at least 1s: '%.64s'", argv[2]);
        return;
    }
    if (bans_manual(cc->ctl->bans, &net.net, prefix, seconds, err, sizeof err) < 0)
        control_say(cc, "error: %s", err);
    else
        control_say(cc, "ok");
}

static void control_unban(struct control_conn *cc, char **argv, int argc)
{
    struct cidr net;
    int prefix;
    char err[256];
    (void)argc;
    if (control_parse_net(cc, argv[1], &net, &prefix) < 0)
        return;
    if (bans_unban(cc->ctl->bans, &net, err, sizeof err) < 0)
        control_say(cc, "error: %s", err);
    else
        control_say(cc, "ok");
}

/* control_ban_line - one active ban of `bans` */
static int control_ban_line(const struct cidr *net, const struct store_ban *b, void *arg)
{
    static const char *const reasons[] = {
        [STORE_BAN_DNSBL] = "dnsbl", [STORE_BAN_DENYLIST] = "denylist",
        [STORE_BAN_PREGREET] = "pregreet", [STORE_BAN_MANUAL] = "manual",
        [STORE_BAN_LOG] = "log", [STORE_BAN_RATE] = "rate",
    };
    struct control_conn *cc = arg;
    char text[CIDR_TEXT_MAX];
    double left = b->until - ev_now(cc->ctl->loop);
    if (left < 1 || b->unbanned)
        return 0;
    cidr_format(net, text, sizeof text);
    control_say(cc, "address=%s remaining=%.0f reason=%s count=%u", text, left,
                b->reason < sizeof reasons / sizeof reasons[0] && reasons[b->reason]
                    ? reasons[b->reason] : "unknown", b->count);
    return 0;
}

static void control_bans(struct control_conn *cc, char **argv, int argc)
{
    (void)argv, (void)argc;
    if (store_ban_foreach(cc->ctl->store, control_ban_line, cc) < 0)
        control_say(cc, "error: the state store cannot be read");
    else
        control_say(cc, "ok");
}

static void control_flush(struct control_conn *cc, char **argv, int argc)
{
    (void)argv, (void)argc;
    if (store_verdict_flush(cc->ctl->store) < 0)
        control_say(cc, "error: the verdict cache could not be emptied");
    else
        control_say(cc, "ok");
}

/* control_stats_totals - every worker's connections and totals */
static void control_stats_totals(struct control_conn *cc)
{
    static const char *const states[] = {"dnsbl", "reject", "relay", "closing"};
    static const char *const verdicts[METRICS_VERDICTS] = {
        "hangup", "listed", "clean", "allowlisted", "denylisted", "pregreet", "limit",
        "backend_down",
    };
    struct metrics_slot *m = malloc(sizeof *m);
    if (m == NULL) {
        cc->out_failed = true;
        return;
    }
    metrics_sum(cc->ctl->metrics, m);
    uint64_t open = 0, refused = 0;
    for (int i = 0; i < METRICS_STATES; i++)
        open += m->open[i];
    for (int i = 0; i < METRICS_REFUSALS; i++)
        refused += m->refused[i];
    control_say(cc, "connections %llu", (unsigned long long)open);
    for (int i = 0; i < METRICS_STATES; i++)
        control_say(cc, "connections_%s %llu", states[i], (unsigned long long)m->open[i]);
    control_say(cc, "connections_accepted_total %llu", (unsigned long long)m->accepted);
    control_say(cc, "connections_refused_total %llu", (unsigned long long)refused);
    for (int i = 0; i < METRICS_VERDICTS; i++)
        control_say(cc, "sessions_%s_total %llu", verdicts[i],
                    (unsigned long long)m->sessions[i]);
    control_say(cc, "relayed_bytes_to_backend_total %llu",
                (unsigned long long)m->relayed_to_backend);
    control_say(cc, "relayed_bytes_to_client_total %llu",
                (unsigned long long)m->relayed_to_client);
    control_say(cc, "bans_requested_total %llu", (unsigned long long)m->bans.requested);
    control_say(cc, "bans_applied_total %llu", (unsigned long long)m->bans.applied);
    char master[sizeof m->fleet_master + 1], sentinel[sizeof m->fleet_sentinel + 1];
    metrics_slot_text(m->fleet_master, sizeof m->fleet_master, master);
    metrics_slot_text(m->fleet_sentinel, sizeof m->fleet_sentinel, sentinel);
    if (master[0] != '\0') { /* the fleet's Redis, when there is one */
        control_say(cc, "fleet_connected %llu", (unsigned long long)m->fleet_connected);
        control_say(cc, "fleet_redis %s", master);
        if (sentinel[0] != '\0')
            control_say(cc, "fleet_sentinel %s", sentinel);
        control_say(cc, "fleet_failovers_total %llu", (unsigned long long)m->fleet_failovers);
    }
    free(m);
}

static void control_stats(struct control_conn *cc, char **argv, int argc)
{
    struct bans_stats s;
    (void)argv, (void)argc;
    if (cc->ctl->metrics != NULL)
        control_stats_totals(cc);
    bans_stats(cc->ctl->bans, &s);
    control_say(cc, "verdicts_cached %zu", store_verdict_count(cc->ctl->store));
    control_say(cc, "bans_requested %llu", (unsigned long long)s.requested);
    control_say(cc, "bans_applied %llu", (unsigned long long)s.applied);
    control_say(cc, "bans_failed %llu", (unsigned long long)s.failed);
    control_say(cc, "bans_dropped %llu", (unsigned long long)s.dropped);
    control_say(cc, "connections_ended %llu", (unsigned long long)s.killed);
    control_say(cc, "ban_latency_p50_seconds %g", bans_latency_quantile(&s, 0.5));
    control_say(cc, "ban_latency_p99_seconds %g", bans_latency_quantile(&s, 0.99));
    control_say(cc, "ok");
}

static void control_reload(struct control_conn *cc, char **argv, int argc)
{
    char note[CONF_ERR_MAX + 128];
    (void)argv, (void)argc;
    if (cc->ctl->reload(cc->ctl->reload_arg, note, sizeof note) < 0)
        control_say(cc, "error: %s", note);
    else if (note[0] != '\0')
        control_say(cc, "ok: %s", note);
    else
        control_say(cc, "ok");
}

static const struct {
    const char *name;
    control_handler *handler;
    int min_args, max_args;   /* not counting the name */
    const char *usage;
} control_commands[] = {
    {"ban", control_ban, 1, 2, "ban ADDRESS[/LEN] [DURATION]"},
    {"unban", control_unban, 1, 1, "unban ADDRESS[/LEN]"},
    {"bans", control_bans, 0, 0, "bans"},
    {"flush", control_flush, 0, 0, "flush"},
    {"stats", control_stats, 0, 0, "stats"},
    {"reload", control_reload, 0, 0, "reload"},
};

/* control_execute - split the line into words and run its command */
static void control_execute(struct control_conn *cc, char *line)
{
    char *argv[CONTROL_ARGS_MAX + 1], *save = NULL;
    int argc = 0;
    for (char *w = strtok_r(line, " \t\r", &save); w != NULL; w = strtok_r(NULL, " \t\r", &save)) {
        if (argc == CONTROL_ARGS_MAX + 1) {
            control_say(cc, "error: too many words");
            return;
        }
        argv[argc++] = w;
    }
    for (size_t i = 0; argc > 0 && i < sizeof control_commands / sizeof control_commands[0]; i++) {
        if (strcmp(argv[0], control_commands[i].name) != 0)
            continue;
        if (argc - 1 < control_commands[i].min_args || argc - 1 > control_commands[i].max_args)
            control_say(cc, "error: usage: %s", control_commands[i].usage);
        else
            control_commands[i].handler(cc, argv, argc);
        return;
    }
    control_say(cc, "error: unknown command '%.64s' (commands: ban, unban, bans, flush, stats, reload)",
                argc > 0 ? argv[0] : "");
}

/* control_conn_close - done with one client */
static void control_conn_close(struct control_conn *cc)
{
    ev_io_stop(cc->ctl->loop, &cc->io);
    ev_timer_stop(cc->ctl->loop, &cc->timer);
    close(cc->fd);
    cc->ctl->open--;
    free(cc->out);
    free(cc);
}

/* control_conn_write - send the answer; close when it is all out */
static void control_conn_write(struct control_conn *cc)
{
    if (cc->out_failed) {
        static const char oom[] = "error: out of memory\n";
        (void)send(cc->fd, oom, sizeof oom - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        control_conn_close(cc);
        return;
    }
    while (cc->out_sent < cc->out_len) {
        ssize_t n = send(cc->fd, cc->out + cc->out_sent, cc->out_len - cc->out_sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            ev_io_stop(cc->ctl->loop, &cc->io);
            ev_io_set(&cc->io, cc->fd, EV_WRITE);
            ev_io_start(cc->ctl->loop, &cc->io);
            return;
        }
        if (n < 0)
            break;
        cc->out_sent += (size_t)n;
    }
    control_conn_close(cc);
}

/* control_conn_read - gather the command line; run it at its newline */
static void control_conn_read(struct control_conn *cc)
{
    ssize_t n = recv(cc->fd, cc->in + cc->in_len, sizeof cc->in - 1 - cc->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        control_conn_close(cc);
        return;
    }
    cc->in_len += (size_t)n;
    cc->in[cc->in_len] = '\0';
    char *nl = memchr(cc->in, '\n', cc->in_len);
    if (nl == NULL && cc->in_len < sizeof cc->in - 1)
        return;
    if (nl == NULL || memchr(cc->in, '\0', (size_t)(nl - cc->in)) != NULL)
        control_say(cc, "error: %s", nl == NULL ? "line too long" : "NUL byte in line");
    else {
        *nl = '\0';
        control_execute(cc, cc->in);
    }
    control_conn_write(cc);
}

static void control_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct control_conn *cc = w->data;
    (void)loop;
    if (revents & EV_WRITE)
        control_conn_write(cc);
    else
        control_conn_read(cc);
}

static void control_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    control_conn_close(w->data);
}

/* control_peer_allowed - root or our own user */
static bool control_peer_allowed(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == 0 || cred.uid == geteuid();
}

static void control_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct control *ctl = w->data;
    (void)revents;
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return; /* another worker took it, or out of fds: the client retries */
    if (!control_peer_allowed(fd)) {
        static const char refused[] = "error: permission denied\n";
        (void)send(fd, refused, sizeof refused - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
        return;
    }
    struct control_conn *cc = ctl->open < CONTROL_CONNECTIONS_MAX ? calloc(1, sizeof *cc) : NULL;
    if (cc == NULL) {
        static const char busy[] = "error: busy (too many control connections)\n";
        (void)send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
        return;
    }
    ctl->open++;
    cc->ctl = ctl;
    cc->fd = fd;
    ev_io_init(&cc->io, control_conn_cb, fd, EV_READ);
    cc->io.data = cc;
    ev_timer_init(&cc->timer, control_timeout_cb, CONTROL_TIMEOUT, 0);
    cc->timer.data = cc;
    ev_io_start(loop, &cc->io);
    ev_timer_start(loop, &cc->timer);
}

/* control_address - path into a sockaddr_un; 0 when it does not fit */
static socklen_t control_address(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path)
        return 0;
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(sun->sun_path, path);
    return (socklen_t)sizeof *sun;
}

/* control_pin - the socket named name in dir_fd, held by an O_PATH
 * descriptor (a symlink there is not followed): what is connected to
 * (control_connect_pin) is what was looked at, whatever the name holds by
 * then. The one way the start and ctl look at a socket. Returns the
 * descriptor with st filled, -1 with why set, or -2 (why set too) when
 * nothing has that name. */
static int control_pin(int dir_fd, const char *name, struct stat *st, char *why, size_t size)
{
    int fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    if (fd < 0 || fstat(fd, st) < 0)
        snprintf(why, size, "%s", strerror(fd < 0 ? e : errno));
    else if (!S_ISSOCK(st->st_mode))
        snprintf(why, size, "%s", S_ISLNK(st->st_mode) ? "a symlink (not followed here)"
                 : "not a socket");
    else
        return fd;
    if (fd >= 0)
        close(fd);
    return fd < 0 && e == ENOENT ? -2 : -1;
}

/* control_connect_pin - a stream socket connected to the pinned socket
 * through /proc/self/fd (its descriptor, never its name), with the
 * current file-system identity; its connect() and send() give up after
 * CONTROL_WAIT seconds with EAGAIN (a Unix socket's connect() never says
 * EINPROGRESS: it waits for room in a full backlog as long as SO_SNDTIMEO
 * lets it). Returns the fd, -1 with *error set, or -2 when no room came in
 * the backlog in time. */
static int control_connect_pin(int pin, int *error)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct timeval wait = {.tv_sec = CONTROL_WAIT};
    snprintf(sun.sun_path, sizeof sun.sun_path, "/proc/self/fd/%d", pin);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait) == 0 &&
        connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0)
        return fd;
    *error = errno;
    if (fd >= 0)
        close(fd);
    return *error == EAGAIN ? -2 : -1;
}

/* What the start finds listening on the socket it is about to replace. */
enum control_probe {
    CONTROL_PROBE_NONE,      /* no one: a socket left behind */
    CONTROL_PROBE_DAEMON,    /* a listener takes connections */
    CONTROL_PROBE_STUCK,     /* a listener whose backlog stayed full */
};

/* control_probe - who listens on the pinned socket? */
static enum control_probe control_probe(int pin)
{
    int e;
    int fd = control_connect_pin(pin, &e);
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? CONTROL_PROBE_DAEMON : fd == -2 ? CONTROL_PROBE_STUCK : CONTROL_PROBE_NONE;
}

/* control_clear - what is at the name before the start binds it: nothing,
 * or a socket left by a daemon that did not stop cleanly (removed), unless
 * something still listens on it (looked at through control_pin). Anything
 * else there is an error. Returns 0, or -1 with err set. */
static int control_clear(int dir_fd, const char *name, const char *path, char *err,
                         size_t errsize)
{
    struct stat st;
    char why[256];
    int pin = control_pin(dir_fd, name, &st, why, sizeof why);
    if (pin == -2)
        return 0;
    if (pin < 0) {
        snprintf(err, errsize, "%s: %s: not replaced (remove it)", path, why);
        return -1;
    }
    enum control_probe found = control_probe(pin);
    close(pin);
    if (found == CONTROL_PROBE_DAEMON) {
        snprintf(err, errsize, "%s: another breakwater answers on this control socket "
                 "(set control_socket to run a second one)", path);
        return -1;
    }
    if (found == CONTROL_PROBE_STUCK) {
        snprintf(err, errsize, CONTROL_NO_ANSWER ": something listens there and takes "
                 "no one (stop it, or remove the socket)", path, CONTROL_WAIT);
        return -1;
    }
    unlinkat(dir_fd, name, 0);
    return 0;
}

/* control_bind - in the socket's directory (the current one, dir_fd): the
 * name cleared (control_clear), then the new socket, mode 0600. Returns
 * the listening fd, or -1 with err set. */
static int control_bind(int dir_fd, const char *name, const char *path, char *err,
                        size_t errsize)
{
    struct sockaddr_un sun;
    socklen_t len = control_address(name, &sun);
    if (control_clear(dir_fd, name, path, err, errsize) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0177);
    int rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sun, len);
    umask(old);
    if (rc == 0)
        rc = listen(fd, 64);
    if (rc < 0) {
        snprintf(err, errsize, "%s: cannot create the control socket: %s", path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* control_bind_in - control_bind() with dir_fd as the working directory
 * (names are looked up there, never through the path), as the user when
 * as_user (privsep_enter). Failing to get back is an error too: the
 * caller stops. */
static int control_bind_in(int dir_fd, const char *name, const char *path,
                           const struct privsep_user *as_user, char *err, size_t errsize)
{
    struct privsep_at at;
    char why[256];
    if (privsep_enter(dir_fd, as_user, &at, why, sizeof why) < 0) {
        snprintf(err, errsize, "%s: %s", path, why);
        return -1;
    }
    int fd = control_bind(dir_fd, name, path, err, errsize);
    if (privsep_leave(&at, why, sizeof why) < 0) {
        snprintf(err, errsize, "%s: %s", path, why);
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    return fd;
}

int control_listen(const char *path, int dir_fd, const struct privsep_user *user, char *err,
                   size_t errsize)
{
    struct sockaddr_un sun;
    struct stat dir;
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    if (control_address(path, &sun) == 0 || name[0] == '\0') {
        snprintf(err, errsize, "%s: %s", path, name[0] == '\0' ? "not a socket path"
                 : "control socket path too long");
        return -1;
    }
    if (fstat(dir_fd, &dir) < 0) {
        snprintf(err, errsize, "%s: its directory: %s", path, strerror(errno));
        return -1;
    }
    /* a directory someone else can change: made as the user, owned by the
     * user from the start; one only root can change: made by root, then
     * given to the user by name, which no one else can swap there */
    bool shared = user != NULL && privsep_dir_shared(&dir);
    int fd = control_bind_in(dir_fd, name, path, shared ? user : NULL, err, errsize);
    if (fd >= 0 && user != NULL && !shared &&
        fchownat(dir_fd, name, user->uid, user->gid, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(err, errsize, "%s: cannot give the control socket to uid %u: %s", path,
                 (unsigned)user->uid, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct control *control_start(struct ev_loop *loop, int fd, control_reload_fn *reload,
                              void *reload_arg, struct store *store, struct bans *bans,
                              const struct metrics *metrics)
{
    struct control *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    *c = (struct control){.loop = loop, .reload = reload, .reload_arg = reload_arg,
                          .store = store, .bans = bans, .metrics = metrics};
    ev_io_init(&c->io, control_accept_cb, fd, EV_READ);
    c->io.data = c;
    ev_io_start(loop, &c->io);
    return c;
}

void control_stop(struct control *c)
{
    if (c == NULL)
        return;
    ev_io_stop(c->loop, &c->io);
    free(c);
}

/* control_identity - whose file-system identity root connects with, from
 * the directory's descriptor and the pinned socket: root's own in a
 * directory only root can change; in any other, the configured user's
 * (user, looked up as the start looks it up), and then the socket must be
 * that user's: a socket of someone else's, renamed there by whoever may
 * write the directory, is not used (root would reach it with its owner's
 * rights). Returns 1 with *as set, 0 for root's own (and when not root),
 * or -1 with why set. */
static int control_identity(int dir_fd, const struct stat *sock, const char *user,
                            struct privsep_user *as, char *why, size_t size)
{
    struct stat dir;
    if (!privsep_is_root())
        return 0;
    if (fstat(dir_fd, &dir) < 0) {
        snprintf(why, size, "%s", strerror(errno));
        return -1;
    }
    if (!privsep_dir_shared(&dir))
        return 0;
    if (privsep_lookup(user, as, why, size) < 0)
        return -1;
    if (sock->st_uid != as->uid) {
        snprintf(why, size, "owned by uid %u, not by %s (uid %u), in a directory others than "
                 "root can change: not used", (unsigned)sock->st_uid, as->name,
                 (unsigned)as->uid);
        return -1;
    }
    return 1;
}

/* control_connect_as - control_connect_pin() with as's file-system
 * identity when given (privsep_enter, in dir_fd). Returns the fd, -1 with
 * why set, or -2 when no room came in its backlog in time. Not getting
 * root's identity back is fatal. */
static int control_connect_as(int dir_fd, int pin, const struct privsep_user *as, char *why,
                              size_t size)
{
    struct privsep_at at;
    char back[256];
    int e = 0;
    if (privsep_enter(dir_fd, as, &at, why, size) < 0)
        return -1;
    int fd = control_connect_pin(pin, &e);
    if (privsep_leave(&at, back, sizeof back) < 0) {
        fprintf(stderr, "breakwater: %s\n", back);
        exit(2);
    }
    if (fd < 0)
        snprintf(why, size, "%s", strerror(e));
    return fd;
}

/* control_connect - a socket connected to the daemon at path (absolute).
 * Root resolves no name another user can change: the directory is found
 * without following a symlink (privsep_dir_find), the socket is pinned in
 * it and connected to by its descriptor, with the identity
 * control_identity() decides. Returns the fd, -1 with why set, or -2 when
 * the socket took no one in time. */
static int control_connect(const char *path, const char *user, char *why, size_t size)
{
    char dir[4096];
    struct stat st;
    struct privsep_user owner;
    const char *name = strrchr(path, '/') + 1;
    snprintf(dir, sizeof dir, "%.*s", name - path > 1 ? (int)(name - path - 1) : 1, path);
    int dir_fd = privsep_dir_find(dir, why, size);
    if (dir_fd < 0)
        return -1;
    int fd = -1, pin = control_pin(dir_fd, name, &st, why, size);
    int as = pin < 0 ? -1 : control_identity(dir_fd, &st, user, &owner, why, size);
    if (as >= 0)
        fd = control_connect_as(dir_fd, pin, as ? &owner : NULL, why, size);
    if (pin >= 0)
        close(pin);
    close(dir_fd);
    return fd;
}

/* control_clock - CLOCK_MONOTONIC in seconds */
static double control_clock(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* control_recv - more of the answer, before the deadline (control_clock):
 * bytes read, 0 at its end, -1 on an error, -2 past the deadline. No read
 * blocks: poll() may show what recv() then skips (a byte sent MSG_OOB),
 * so a read that finds nothing goes back to poll() until the deadline. */
static ssize_t control_recv(int fd, char *buf, size_t size, double deadline)
{
    for (;;) {
        int ms = (int)((deadline - control_clock()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = ms > 0 ? poll(&p, 1, ms) : 0;
        if (ready == 0)
            return -2;
        ssize_t n = ready < 0 ? -1 : recv(fd, buf, size, MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return n;
    }
}

/* control_line - one line of the answer: "ok" ends it well, "ok: NOTE"
 * and "error: WHY" go to err, anything else to out, each as printable
 * ASCII (dnsbl_txt_escape: what comes through the socket is not for the
 * terminal to interpret). Returns the request's status so far. */
static int control_line(const char *line, size_t len, int status, FILE *out, FILE *err)
{
    char shown[4 * CONTROL_ANSWER_LINE_MAX + 1];
    if (len == 2 && memcmp(line, "ok", 2) == 0)
        return 0;
    bool note = len >= 4 && memcmp(line, "ok: ", 4) == 0;
    bool error = len >= 7 && memcmp(line, "error: ", 7) == 0;
    size_t skip = note ? 4 : error ? 7 : 0;
    dnsbl_txt_escape((const uint8_t *)line + skip, len - skip, shown, sizeof shown);
    fprintf(note || error ? err : out, "%s%s\n", note || error ? "breakwater: " : "", shown);
    return note ? 0 : error ? 1 : status;
}

/* control_lines - the complete lines in buf[0..len) to control_line(),
 * and a line that fills buf alone in pieces; returns the bytes used and
 * updates *status */
static size_t control_lines(const char *buf, size_t len, size_t size, int *status, FILE *out,
                            FILE *err)
{
    size_t used = 0;
    for (const char *nl; (nl = memchr(buf + used, '\n', len - used)) != NULL;
         used = (size_t)(nl - buf) + 1)
        *status = control_line(buf + used, (size_t)(nl - buf) - used, *status, out, err);
    if (used == 0 && len == size) { /* a line longer than buf: in pieces */
        *status = control_line(buf, len, *status, out, err);
        used = len;
    }
    return used;
}

/* control_answer - read the answer line by line until the daemon closes:
 * the first bytes within CONTROL_WAIT seconds of start, each later ones
 * within CONTROL_WAIT of the last, all within CONTROL_ANSWER_WAIT of start
 * (a long answer on a busy machine takes more than CONTROL_WAIT; a peer
 * that drips cannot hold ctl longer), and at most max bytes; returns the
 * request's status */
static int control_answer(int fd, const char *path, double start, size_t max, FILE *out,
                          FILE *err)
{
    char buf[CONTROL_ANSWER_LINE_MAX];
    size_t len = 0, total = 0;
    int status = 2;
    ssize_t n;
    double idle = start + CONTROL_WAIT, whole = start + CONTROL_ANSWER_WAIT;
    bool whole_due; /* the bound in force is the whole request's */
    for (;;) {
        whole_due = whole <= idle;
        n = control_recv(fd, buf + len, sizeof buf - len, whole_due ? whole : idle);
        if (n <= 0)
            break;
        idle = control_clock() + CONTROL_WAIT;
        total += (size_t)n;
        if (total > max)
            break;
        len += (size_t)n;
        size_t used = control_lines(buf, len, sizeof buf, &status, out, err);
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    if (n == 0 && len > 0) /* the last line had no newline */
        status = control_line(buf, len, status, out, err);
    if (total > max)
        fprintf(err, "breakwater: the answer from the control socket %s is longer than %zu "
                "bytes: not read further\n", path, max);
    else if (n == -2 && whole_due)
        fprintf(err, "breakwater: the answer from the control socket %s took longer than %ds: "
                "not read further\n", path, CONTROL_ANSWER_WAIT);
    else if (n == -2)
        fprintf(err, "breakwater: " CONTROL_NO_ANSWER "\n", path, CONTROL_WAIT);
    else if (n < 0)
        fprintf(err, "breakwater: the daemon at %s: %s\n", path, strerror(errno));
    else if (status == 2)
        fprintf(err, "breakwater: the daemon at %s gave no answer\n", path);
    return n < 0 || total > max ? 2 : status;
}

/* control_ask - connect (control_connect) and send the command line;
 * returns the fd, -1 with why set, or -2 when the socket took no one, or
 * not the line, in time */
static int control_ask(const char *path, const char *user, const char *line, char *why,
                       size_t size)
{
    char ask[CONTROL_LINE_MAX + 1];
    int len = snprintf(ask, sizeof ask, "%s\n", line);
    if (path[0] != '/' || len < 0 || (size_t)len >= sizeof ask) {
        snprintf(why, size, "%s", path[0] != '/' ? "not an absolute path" : "command too long");
        return -1;
    }
    int fd = control_connect(path, user, why, size);
    if (fd < 0)
        return fd;
    ssize_t sent = send(fd, ask, (size_t)len, MSG_NOSIGNAL);
    if (sent == len)
        return fd;
    int e = sent < 0 ? errno : EAGAIN; /* a part: the rest timed out */
    close(fd);
    snprintf(why, size, "%s", strerror(e));
    return e == EAGAIN ? -2 : -1;
}

int control_request(const struct conf *conf, const char *line, size_t max, FILE *out,
                    FILE *err)
{
    char why[1024];
    const char *path = conf->control_socket;
    double start = control_clock();
    int fd = control_ask(path, conf->user, line, why, sizeof why);
    if (fd == -2)
        fprintf(err, "breakwater: " CONTROL_NO_ANSWER "\n", path, CONTROL_WAIT);
    else if (fd < 0)
        fprintf(err, "breakwater: cannot reach the daemon at %s: %s\n", path, why);
    if (fd < 0)
        return 2;
    int status = control_answer(fd, path, start, max, out, err);
    close(fd);
    return status;
}
