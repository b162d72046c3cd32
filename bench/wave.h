/*
 * wave - the spam-wave generator's shared types. See bench/README.md.
 *
 * Three modules make bench/wave:
 *
 *   wave.c         command line, profile file, the worker processes (fork,
 *                  one pipe each, results merged), CPU use, exit status
 *   wave_worker.c  one worker: a libev loop holding SMTP client sessions
 *                  from loopback source addresses, shaped by concurrency,
 *                  rate or profile, bounded by duration and session count
 *   wave_report.c  latency histograms, reply parsing, merging results,
 *                  the text and JSON reports and the series file (pure
 *                  except for the output stream it is given)
 *
 * Lifetime: main() parses struct wave_options once (read-only afterwards),
 * forks the workers; each fills one struct wave_result (plain data, no
 * pointers) and writes it whole into its pipe; the parent merges them with
 * wave_result_merge() and reports.
 */
#ifndef BREAKWATER_WAVE_H
#define BREAKWATER_WAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define WAVE_DURATION_MAX 3600.0
#define WAVE_SERIES_MAX ((size_t)WAVE_DURATION_MAX + 2)  /* one per second, from 0 */
#define WAVE_PROCS_MAX 64

/* Latency histogram: microseconds, 32 buckets per power of two (about 3%
 * precision), exact below 32 us, everything at or above 2^32 us in the last
 * bucket. */
#define WAVE_HIST_SUB 32
#define WAVE_HIST_BUCKETS (WAVE_HIST_SUB + 27 * WAVE_HIST_SUB)

enum wave_kind {
    WAVE_KIND_LISTED,    /* listed address; EHLO, MAIL, RCPT expects 5xx */
    WAVE_KIND_PREGREET,  /* clean address; EHLO before the greeting, 5xx */
    WAVE_KIND_POLITE,    /* clean address; a whole message, expects 250 */
    WAVE_KIND_IDLE,      /* connects, reads the greeting and sits */
    WAVE_KIND_SINK,      /* the listed bot's dialogue expecting 2xx at RCPT */
    WAVE_KIND_COUNT
};

enum wave_error {
    WAVE_ERR_REFUSED,     /* ECONNREFUSED */
    WAVE_ERR_RESET,       /* ECONNRESET, EPIPE */
    WAVE_ERR_TIMEOUT,     /* the session timeout, or ETIMEDOUT at connect */
    WAVE_ERR_UNEXPECTED,  /* a reply of the wrong class, or malformed */
    WAVE_ERR_CLOSED,      /* the server closed in the middle */
    WAVE_ERR_ADDR,        /* EADDRNOTAVAIL: no source port left */
    WAVE_ERR_NOFILE,      /* EMFILE, ENFILE */
    WAVE_ERR_OTHER,
    WAVE_ERR_COUNT
};

enum wave_latency { WAVE_LAT_GREETING, WAVE_LAT_RCPT, WAVE_LAT_DATA, WAVE_LAT_COUNT };

/* Reply classes counted at RCPT and at the end of DATA. */
enum wave_class { WAVE_CLASS_2XX, WAVE_CLASS_4XX, WAVE_CLASS_5XX, WAVE_CLASS_OTHER,
                  WAVE_CLASS_COUNT };
enum wave_tally { WAVE_TALLY_RCPT, WAVE_TALLY_DATA, WAVE_TALLY_COUNT };

/* Source address ranges: the test DNSBL lists the first, not the second. */
enum wave_net { WAVE_NET_LISTED, WAVE_NET_CLEAN, WAVE_NET_COUNT };

struct wave_cidr {
    uint32_t base;     /* host byte order, masked */
    unsigned prefix;   /* 8..32 */
};

struct wave_point {
    double t;          /* seconds */
    double open;       /* connections */
};

struct wave_profile {
    struct wave_point *points;
    size_t count;
};

struct wave_options {
    struct sockaddr_storage target;
    socklen_t target_len;
    char target_text[64];
    double duration;                 /* -d, the hard end */
    uint64_t count;                  /* -n, sessions (attempts) in all */
    uint64_t concurrency;            /* -c, 0 = not set */
    double rate;                     /* -r, new sessions per second, 0 = not set */
    struct wave_profile profile;     /* --profile, count 0 = not set */
    const char *profile_path;
    double scale, time_scale;
    unsigned shares[WAVE_KIND_COUNT];
    unsigned bot_quit_share;         /* percent of bots that QUIT */
    bool fresh;                      /* a new source address per session */
    uint32_t pool;                   /* else addresses reused per net */
    struct wave_cidr nets[WAVE_NET_COUNT];
    enum wave_net idle_net;
    unsigned procs;
    double hold;                     /* idle holders, 0 = to the end */
    double session_timeout;
    double think;                    /* client pause before each command */
    double bot_linger;               /* a bot's pause after its RCPT reply */
    size_t message_size;
    bool json;
    const char *series_path;
};

struct wave_hist {
    uint64_t count;
    uint64_t max_us;
    uint64_t buckets[WAVE_HIST_BUCKETS];
};

struct wave_kind_stats {
    uint64_t started;          /* attempts, failed ones included */
    uint64_t completed;        /* dialogue as expected; idle: held */
    uint64_t closed_by_server; /* idle holders the server closed */
    uint64_t unfinished;       /* still running when the run ended */
    uint64_t late;             /* pregreet bots that spoke after the greeting */
    uint64_t errors[WAVE_ERR_COUNT];
    uint64_t tally[WAVE_TALLY_COUNT][WAVE_CLASS_COUNT];
    struct wave_hist latency[WAVE_LAT_COUNT];
};

/* One worker's result, or the merged one. */
struct wave_result {
    double elapsed;            /* seconds from start to the last close */
    uint64_t max_open;         /* merged: the sum of the workers' peaks */
    uint32_t series_len;
    uint32_t series[WAVE_SERIES_MAX];  /* open connections at second i */
    struct wave_kind_stats kind[WAVE_KIND_COUNT];
};

/* CPU seconds of the generator, all processes. */
struct wave_cpu {
    double user, sys;
};

/* SMTP reply framing: a reply ends at a line whose 4th character is a space
 * (or that has only 3). Only the first 4 characters of each line are kept,
 * so a line of any length costs nothing. */
struct wave_reply_parser {
    char head[4];
    uint32_t len;      /* characters of the current line so far */
};

/* wave_worker.c */
int wave_worker_run(const struct wave_options *o, unsigned index, size_t fd_limit,
                    struct wave_result *out);
double wave_profile_at(const struct wave_profile *p, double t);

/* wave_report.c */
const char *wave_kind_name(enum wave_kind kind);
int wave_kind_by_name(const char *name, size_t len);
int wave_reply_feed(struct wave_reply_parser *p, const char *buf, size_t len, size_t *used);
void wave_hist_add(struct wave_hist *h, uint64_t us);
double wave_hist_percentile_ms(const struct wave_hist *h, double fraction);
void wave_result_merge(struct wave_result *into, const struct wave_result *from);
void wave_report_text(FILE *f, const struct wave_options *o, const struct wave_result *r,
                      const struct wave_cpu *cpu);
void wave_report_json(FILE *f, const struct wave_options *o, const struct wave_result *r,
                      const struct wave_cpu *cpu);
int wave_report_series(const char *path, const struct wave_result *r);

#endif
