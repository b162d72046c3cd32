/*
 * wave - breakwater's spam-wave generator: many SMTP clients from many
 * loopback source addresses, a mix of client kinds, a load shape, bounded
 * in time and in sessions; reports rates, latencies, errors and its own CPU.
 * Usage: wave --help; bench/README.md explains the numbers.
 *
 *   main()  parse the options into one read-only struct wave_options, load
 *           the profile, raise RLIMIT_NOFILE's soft limit to the hard one,
 *           fork --procs workers (wave_worker.c), each with a pipe back;
 *           read each worker's struct wave_result whole, wait for all,
 *           merge, add the CPU time of all processes, report (wave_report.c)
 *
 * Traffic goes only to 127.0.0.0/8 or ::1, from source addresses in
 * 127.0.0.0/8. SIGINT/SIGTERM end the run early: the parent passes SIGTERM
 * on to its workers and still reports. A worker dies with its parent
 * (PR_SET_PDEATHSIG). Exit status: 0 run complete, 1 a worker failed,
 * 2 usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wave.h"

#define WAVE_COUNT_DEFAULT 1000000
#define WAVE_PROFILE_MAX 1000000

static volatile sig_atomic_t wave_interrupted;

static const char wave_usage[] =
    "usage: wave -t ADDR:PORT -d SECONDS (-c N | -r PER_SECOND | --profile FILE) [options]\n"
    "  -t, --target ADDR:PORT    127.x.y.z:PORT or [::1]:PORT\n"
    "  -d, --duration SECONDS    hard end of the run (up to 3600)\n"
    "  -n, --count N             sessions started in all (default 1000000)\n"
    "  -c, --concurrency N       keep N sessions open (with -r: at most N)\n"
    "  -r, --rate PER_SECOND     start sessions at this rate\n"
    "  --profile FILE            'seconds<TAB>open connections' lines: follow them\n"
    "  --scale X, --time-scale Y open connections x X, profile seconds x Y\n"
    "  --mix KIND=SHARE,...      kinds listed, pregreet, polite, idle, sink\n"
    "                            (default listed=100)\n"
    "  --bot-quit-share PERCENT  bots that QUIT; the others hang up (default 100)\n"
    "  --fresh-addresses         a new source address for every session\n"
    "  --pool N                  else reuse the first N of each net (default 1024)\n"
    "  --listed-net CIDR         listed bots and sink (default 127.66.0.0/16)\n"
    "  --clean-net CIDR          polite, pregreet, idle (default 127.1.0.0/16)\n"
    "  --idle-net listed|clean   where idle holders come from (default clean)\n"
    "  --procs N                 worker processes (default 1)\n"
    "  --hold SECONDS            idle holders leave after this (default: at the end)\n"
    "  --session-timeout SECONDS (default 30)\n"
    "  --think SECONDS           pause before each command (default 0)\n"
    "  --bot-linger SECONDS      bots hold the connection this long after the\n"
    "                            RCPT reply, then QUIT or hang up (default 0)\n"
    "  --message-size BYTES      polite message body (default 512)\n"
    "  --json                    one JSON object instead of text\n"
    "  --series FILE             'second<TAB>open' lines\n";

enum wave_long_option {
    OPT_PROFILE = 256, OPT_SCALE, OPT_TIME_SCALE, OPT_MIX, OPT_BOT_QUIT, OPT_FRESH,
    OPT_POOL, OPT_LISTED_NET, OPT_CLEAN_NET, OPT_IDLE_NET, OPT_PROCS, OPT_HOLD,
    OPT_TIMEOUT, OPT_THINK, OPT_BOT_LINGER, OPT_MESSAGE_SIZE, OPT_JSON, OPT_SERIES, OPT_HELP,
};

static const struct option wave_long_options[] = {
    {"target", required_argument, NULL, 't'},
    {"duration", required_argument, NULL, 'd'},
    {"count", required_argument, NULL, 'n'},
    {"concurrency", required_argument, NULL, 'c'},
    {"rate", required_argument, NULL, 'r'},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"scale", required_argument, NULL, OPT_SCALE},
    {"time-scale", required_argument, NULL, OPT_TIME_SCALE},
    {"mix", required_argument, NULL, OPT_MIX},
    {"bot-quit-share", required_argument, NULL, OPT_BOT_QUIT},
    {"fresh-addresses", no_argument, NULL, OPT_FRESH},
    {"pool", required_argument, NULL, OPT_POOL},
    {"listed-net", required_argument, NULL, OPT_LISTED_NET},
    {"clean-net", required_argument, NULL, OPT_CLEAN_NET},
    {"idle-net", required_argument, NULL, OPT_IDLE_NET},
    {"procs", required_argument, NULL, OPT_PROCS},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"session-timeout", required_argument, NULL, OPT_TIMEOUT},
    {"think", required_argument, NULL, OPT_THINK},
    {"bot-linger", required_argument, NULL, OPT_BOT_LINGER},
    {"message-size", required_argument, NULL, OPT_MESSAGE_SIZE},
    {"json", no_argument, NULL, OPT_JSON},
    {"series", required_argument, NULL, OPT_SERIES},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* wave_number - text as a number in [min, max], else -1 and a message */
static int wave_number(const char *name, const char *text, double min, double max,
                       double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "wave: %s: expected a number from %g to %g: '%s'\n", name, min, max,
                text);
        return -1;
    }
    *out = v;
    return 0;
}

/* wave_integer - text as a whole number in [min, max] */
static int wave_integer(const char *name, const char *text, double min, double max,
                        uint64_t *out)
{
    double v;
    if (wave_number(name, text, min, max, &v) < 0)
        return -1;
    if (v != floor(v)) {
        fprintf(stderr, "wave: %s: expected a whole number: '%s'\n", name, text);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* wave_parse_target - ADDR:PORT or [::1]:PORT, loopback only */
static int wave_parse_target(struct wave_options *o, const char *text)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    size_t hlen = colon ? (size_t)(colon - text) : 0;
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']')
        text++, hlen -= 2;
    uint64_t port;
    if (colon == NULL || hlen == 0 || hlen >= sizeof host
        || wave_integer("-t", colon + 1, 1, 65535, &port) < 0) {
        fprintf(stderr, "wave: -t: expected ADDR:PORT: '%s'\n", text);
        return -1;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    struct sockaddr_in *v4 = (struct sockaddr_in *)&o->target;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->target;
    memset(&o->target, 0, sizeof o->target);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1
        && (ntohl(v4->sin_addr.s_addr) >> 24) == 127) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        o->target_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1
               && IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        o->target_len = sizeof *v6;
    } else {
        fprintf(stderr, "wave: -t: only 127.0.0.0/8 or ::1, not '%s'\n", host);
        return -1;
    }
    snprintf(o->target_text, sizeof o->target_text, strchr(host, ':') ? "[%s]:%u" : "%s:%u",
             host, (unsigned)port);
    return 0;
}

/* wave_parse_cidr - a source net inside 127.0.0.0/8, /8 to /32 */
static int wave_parse_cidr(const char *name, const char *text, struct wave_cidr *out)
{
    char addr[32];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : 0;
    uint64_t prefix;
    struct in_addr in;
    if (slash == NULL || len >= sizeof addr
        || wave_integer(name, slash + 1, 8, 32, &prefix) < 0) {
        fprintf(stderr, "wave: %s: expected a CIDR such as 127.66.0.0/16: '%s'\n", name, text);
        return -1;
    }
    memcpy(addr, text, len);
    addr[len] = '\0';
    if (inet_pton(AF_INET, addr, &in) != 1 || (ntohl(in.s_addr) >> 24) != 127) {
        fprintf(stderr, "wave: %s: only nets inside 127.0.0.0/8: '%s'\n", name, text);
        return -1;
    }
    uint32_t mask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
    out->base = ntohl(in.s_addr) & mask;
    out->prefix = (unsigned)prefix;
    return 0;
}

/* wave_parse_mix - "kind=share,..."; kinds not named get 0 */
static int wave_parse_mix(struct wave_options *o, const char *text)
{
    memset(o->shares, 0, sizeof o->shares);
    uint64_t sum = 0;
    for (const char *p = text; *p != '\0';) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        int kind = eq ? wave_kind_by_name(p, (size_t)(eq - p)) : -1;
        char share[16];
        size_t slen = eq ? len - (size_t)(eq - p) - 1 : 0;
        uint64_t v;
        if (kind < 0 || slen == 0 || slen >= sizeof share) {
            fprintf(stderr, "wave: --mix: expected KIND=SHARE,... with kinds listed, pregreet, "
                    "polite, idle, sink: '%s'\n", text);
            return -1;
        }
        memcpy(share, eq + 1, slen);
        share[slen] = '\0';
        if (wave_integer("--mix", share, 0, 1000000, &v) < 0)
            return -1;
        o->shares[kind] = (unsigned)v;
        sum += v;
        p += len + (p[len] == ',');
    }
    if (sum == 0) {
        fprintf(stderr, "wave: --mix: no kind has a share: '%s'\n", text);
        return -1;
    }
    return 0;
}

/* wave_option_load - options of the target and the load shape; 1 if opt
 * is not one of them */
static int wave_option_load(struct wave_options *o, int opt, const char *arg)
{
    switch (opt) {
    case 't':
        return wave_parse_target(o, arg);
    case 'd':
        return wave_number("-d", arg, 0.001, WAVE_DURATION_MAX, &o->duration);
    case 'n':
        return wave_integer("-n", arg, 1, 1e9, &o->count);
    case 'c':
        return wave_integer("-c", arg, 1, 1e7, &o->concurrency);
    case 'r':
        return wave_number("-r", arg, 0.001, 1e7, &o->rate);
    case OPT_PROFILE:
        o->profile_path = arg;
        return 0;
    case OPT_SCALE:
        return wave_number("--scale", arg, 0.0001, 1e6, &o->scale);
    case OPT_TIME_SCALE:
        return wave_number("--time-scale", arg, 0.0001, 1e4, &o->time_scale);
    case OPT_MIX:
        return wave_parse_mix(o, arg);
    case OPT_BOT_QUIT: {
        uint64_t v;
        int rc = wave_integer("--bot-quit-share", arg, 0, 100, &v);
        o->bot_quit_share = (unsigned)v;
        return rc;
    }
    default:
        return 1;
    }
}

/* wave_option_clients - options of the clients and the output; 1 if opt
 * is not one of them */
static int wave_option_clients(struct wave_options *o, int opt, const char *arg)
{
    uint64_t v = 0;
    int rc = 0;
    switch (opt) {
    case OPT_FRESH:
        o->fresh = true;
        return 0;
    case OPT_POOL:
        rc = wave_integer("--pool", arg, 1, 1 << 24, &v);
        o->pool = (uint32_t)v;
        return rc;
    case OPT_LISTED_NET:
        return wave_parse_cidr("--listed-net", arg, &o->nets[WAVE_NET_LISTED]);
    case OPT_CLEAN_NET:
        return wave_parse_cidr("--clean-net", arg, &o->nets[WAVE_NET_CLEAN]);
    case OPT_IDLE_NET:
        if (strcmp(arg, "listed") != 0 && strcmp(arg, "clean") != 0) {
            fprintf(stderr, "wave: --idle-net: expected listed or clean: '%s'\n", arg);
            return -1;
        }
        o->idle_net = strcmp(arg, "listed") == 0 ? WAVE_NET_LISTED : WAVE_NET_CLEAN;
        return 0;
    case OPT_PROCS:
        rc = wave_integer("--procs", arg, 1, WAVE_PROCS_MAX, &v);
        o->procs = (unsigned)v;
        return rc;
    case OPT_HOLD:
        return wave_number("--hold", arg, 0, WAVE_DURATION_MAX, &o->hold);
    case OPT_TIMEOUT:
        return wave_number("--session-timeout", arg, 0.001, WAVE_DURATION_MAX,
                           &o->session_timeout);
    case OPT_THINK:
        return wave_number("--think", arg, 0, 600, &o->think);
    case OPT_BOT_LINGER:
        return wave_number("--bot-linger", arg, 0, 600, &o->bot_linger);
    case OPT_MESSAGE_SIZE:
        rc = wave_integer("--message-size", arg, 0, 1 << 20, &v);
        o->message_size = (size_t)v;
        return rc;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_SERIES:
        o->series_path = arg;
        return 0;
    default:
        return 1;
    }
}

/* wave_defaults - everything an option may change */
static void wave_defaults(struct wave_options *o)
{
    memset(o, 0, sizeof *o);
    o->count = WAVE_COUNT_DEFAULT;
    o->scale = 1;
    o->time_scale = 1;
    o->shares[WAVE_KIND_LISTED] = 100;
    o->bot_quit_share = 100;
    o->pool = 1024;
    o->nets[WAVE_NET_LISTED] = (struct wave_cidr){(127u << 24) | (66u << 16), 16};
    o->nets[WAVE_NET_CLEAN] = (struct wave_cidr){(127u << 24) | (1u << 16), 16};
    o->idle_net = WAVE_NET_CLEAN;
    o->procs = 1;
    o->session_timeout = 30;
    o->message_size = 512;
}

/* wave_check - what must be given, and what does not go together */
static int wave_check(const struct wave_options *o)
{
    const char *problem = NULL;
    if (o->target_len == 0)
        problem = "-t ADDR:PORT is required";
    else if (o->duration <= 0)
        problem = "-d SECONDS is required";
    else if (!o->concurrency && o->rate <= 0 && !o->profile_path)
        problem = "one of -c, -r or --profile is required";
    else if (o->concurrency && o->profile_path)
        problem = "-c and --profile do not go together (-r does, with either)";
    if (problem == NULL)
        return 0;
    fprintf(stderr, "wave: %s\n%s", problem, wave_usage);
    return -1;
}

/* wave_parse - the command line into *o; 0, or the exit status */
static int wave_parse(int argc, char **argv, struct wave_options *o)
{
    wave_defaults(o);
    int opt;
    while ((opt = getopt_long(argc, argv, "t:d:n:c:r:h", wave_long_options, NULL)) != -1) {
        if (opt == 'h' || opt == OPT_HELP) {
            fputs(wave_usage, stdout);
            exit(0);
        }
        int rc = wave_option_load(o, opt, optarg);
        if (rc == 1)
            rc = wave_option_clients(o, opt, optarg);
        if (rc == 1)
            fputs(wave_usage, stderr);
        if (rc != 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "wave: unexpected argument '%s'\n%s", argv[optind], wave_usage);
        return 2;
    }
    return wave_check(o) < 0 ? 2 : 0;
}

/* wave_profile_line - one "seconds<TAB>open" line (blank and '#' lines
 * give 0 and nothing); 1 with *pt filled, -1 if malformed */
static int wave_profile_line(const char *line, struct wave_point *pt)
{
    const char *p = line + strspn(line, " \t");
    if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
        return 0;
    char *end;
    pt->t = strtod(p, &end);
    if (end == p || (*end != '\t' && *end != ' '))
        return -1;
    p = end;
    pt->open = strtod(p, &end);
    if (end == p || end[strspn(end, " \t\r\n")] != '\0')
        return -1;
    return isfinite(pt->t) && isfinite(pt->open) && pt->t >= 0 && pt->open >= 0 ? 1 : -1;
}

/* wave_profile_add - append a point; -1 with a message if out of order or
 * too many */
static int wave_profile_add(struct wave_profile *p, const struct wave_point *pt,
                            const char *path, unsigned lineno)
{
    if (p->count && pt->t < p->points[p->count - 1].t) {
        fprintf(stderr, "wave: %s:%u: time goes backwards\n", path, lineno);
        return -1;
    }
    if (p->count == WAVE_PROFILE_MAX) {
        fprintf(stderr, "wave: %s: more than %d points\n", path, WAVE_PROFILE_MAX);
        return -1;
    }
    if ((p->count & (p->count - 1)) == 0) {
        size_t cap = p->count ? 2 * p->count : 1;
        struct wave_point *more = realloc(p->points, cap * sizeof *more);
        if (more == NULL) {
            fprintf(stderr, "wave: %s: out of memory\n", path);
            return -1;
        }
        p->points = more;
    }
    p->points[p->count++] = *pt;
    return 0;
}

/* wave_profile_load - read the profile file; 0, or -1 with a message */
static int wave_profile_load(const char *path, struct wave_profile *p)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "wave: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        struct wave_point pt;
        int got = wave_profile_line(line, &pt);
        lineno++;
        if (got < 0) {
            int shown = (int)strcspn(line, "\r\n");
            fprintf(stderr, "wave: %s:%u: expected 'seconds<TAB>open connections': '%.*s'\n",
                    path, lineno, shown < 60 ? shown : 60, line);
            rc = -1;
        } else if (got > 0) {
            rc = wave_profile_add(p, &pt, path, lineno);
        }
    }
    free(line);
    fclose(f);
    if (rc == 0 && p->count == 0) {
        fprintf(stderr, "wave: %s: no points\n", path);
        rc = -1;
    }
    return rc;
}

/* wave_fd_limit - raise the soft open-file limit to the hard one; the
 * limit each process works with */
static size_t wave_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20))
        rl.rlim_max = 1u << 20;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (size_t)rl.rlim_cur;
}

/* wave_warn_fds - say so when the asked connections per process exceed
 * the open-file limit (the run goes on and counts no_fds errors) */
static void wave_warn_fds(const struct wave_options *o, size_t fd_limit)
{
    double peak = (double)o->concurrency;
    for (size_t i = 0; i < o->profile.count; i++)
        if (o->scale * o->profile.points[i].open > peak)
            peak = o->scale * o->profile.points[i].open;
    double per_proc = ceil(peak / o->procs);
    if (per_proc + 16 > (double)fd_limit)
        fprintf(stderr, "wave: warning: %.0f connections per process, open-file limit %zu: "
                "use --procs %.0f\n", per_proc, fd_limit, ceil(peak / ((double)fd_limit - 16)));
}

/* wave_write_all - write a whole buffer */
static int wave_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* wave_child - a worker process: run, send the result, exit */
static void wave_child(const struct wave_options *o, unsigned index, size_t fd_limit, int out,
                       pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    struct wave_result *r = calloc(1, sizeof *r);
    int rc = r ? wave_worker_run(o, index, fd_limit, r) : -1;
    if (rc < 0)
        fprintf(stderr, "wave: worker %u: out of memory\n", index);
    else if (wave_write_all(out, r, sizeof *r) < 0)
        rc = -1;
    _exit(rc < 0 ? 1 : 0);
}

/* wave_spawn - fork the workers, each with a pipe back; the number started */
static unsigned wave_spawn(const struct wave_options *o, size_t fd_limit, pid_t *pids, int *fds)
{
    pid_t parent = getpid();
    fflush(NULL);
    for (unsigned i = 0; i < o->procs; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            fprintf(stderr, "wave: pipe: %s\n", strerror(errno));
            return i;
        }
        pids[i] = fork();
        if (pids[i] == 0) {
            close(p[0]);
            wave_child(o, i, fd_limit, p[1], parent);
        }
        close(p[1]);
        if (pids[i] < 0) {
            fprintf(stderr, "wave: fork: %s\n", strerror(errno));
            close(p[0]);
            return i;
        }
        fds[i] = p[0];
    }
    return o->procs;
}

/* wave_forward - pass an interruption on to the workers (a worker that
 * has stopped already ignores it) */
static void wave_forward(const pid_t *pids, unsigned n)
{
    if (!wave_interrupted)
        return;
    wave_interrupted = 0;
    for (unsigned i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
}

/* wave_read_all - read a whole result from a worker's pipe; -1 if short */
static int wave_read_all(int fd, void *buf, size_t len, const pid_t *pids, unsigned n)
{
    char *p = buf;
    while (len > 0) {
        wave_forward(pids, n);
        ssize_t got = read(fd, p, len);
        if (got < 0 && errno == EINTR) {
            wave_forward(pids, n);
            continue;
        }
        if (got <= 0)
            return -1;
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

/* wave_collect - merge the workers' results, reap them, add up the CPU;
 * the number of workers that failed */
static unsigned wave_collect(const pid_t *pids, const int *fds, unsigned n,
                             struct wave_result *total, struct wave_cpu *cpu)
{
    unsigned failed = 0;
    struct wave_result *one = malloc(sizeof *one);
    for (unsigned i = 0; i < n; i++) {
        if (one == NULL || wave_read_all(fds[i], one, sizeof *one, pids, n) < 0)
            failed++;
        else
            wave_result_merge(total, one);
        close(fds[i]);
    }
    free(one);
    for (unsigned i = 0; i < n; i++) {
        int status = 0;
        pid_t got;
        while ((got = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            wave_forward(pids, n);
        if (got < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "wave: worker %u failed (status 0x%x)\n", i, (unsigned)status);
    }
    struct rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    cpu->user = (double)self.ru_utime.tv_sec + self.ru_utime.tv_usec / 1e6
              + (double)children.ru_utime.tv_sec + children.ru_utime.tv_usec / 1e6;
    cpu->sys = (double)self.ru_stime.tv_sec + self.ru_stime.tv_usec / 1e6
             + (double)children.ru_stime.tv_sec + children.ru_stime.tv_usec / 1e6;
    return failed;
}

/* wave_on_signal - SIGINT/SIGTERM in the parent: note it (read() and
 * waitpid() return EINTR, and the workers are told) */
static void wave_on_signal(int sig)
{
    (void)sig;
    wave_interrupted = 1;
}

/* wave_signals - the parent survives SIGINT/SIGTERM to report */
static void wave_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wave_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* wave_report - the report on stdout, the series file */
static int wave_report(const struct wave_options *o, const struct wave_result *r,
                       const struct wave_cpu *cpu)
{
    if (o->json)
        wave_report_json(stdout, o, r, cpu);
    else
        wave_report_text(stdout, o, r, cpu);
    if (o->series_path && wave_report_series(o->series_path, r) < 0) {
        fprintf(stderr, "wave: %s: %s\n", o->series_path, strerror(errno));
        return -1;
    }
    return fflush(stdout) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct wave_options o;
    int rc = wave_parse(argc, argv, &o);
    if (rc != 0)
        return rc;
    if (o.profile_path && wave_profile_load(o.profile_path, &o.profile) < 0)
        return 2;
    struct wave_result *total = calloc(1, sizeof *total);
    if (total == NULL) {
        fprintf(stderr, "wave: out of memory\n");
        return 1;
    }
    size_t fd_limit = wave_fd_limit();
    wave_warn_fds(&o, fd_limit);
    pid_t pids[WAVE_PROCS_MAX];
    int fds[WAVE_PROCS_MAX];
    struct wave_cpu cpu;
    wave_signals();
    unsigned n = wave_spawn(&o, fd_limit, pids, fds);
    unsigned failed = wave_collect(pids, fds, n, total, &cpu) + (o.procs - n);
    if (failed > 0)
        fprintf(stderr, "wave: %u of %u workers gave no result\n", failed, o.procs);
    else
        rc = wave_report(&o, total, &cpu) < 0 ? 1 : 0;
    free(total);
    free(o.profile.points);
    return failed > 0 ? 1 : rc;
}
