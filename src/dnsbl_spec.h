/*
 * dnsbl_spec - DNSBL site specs, reply filters, weighted scoring and TXT
 * text made safe to print, no I/O.
 *
 * A site spec is postscreen's `domain[=filter][*weight]`:
 *   zen.spamhaus.org=127.0.0.[2..11]*3   bl.spamcop.net*2
 *   list.dnswl.org=127.0.[0..255].[1..3]*-5
 * A filter has four dot-separated octet patterns; each is a number, or
 * brackets holding numbers and a..b ranges separated by ';' ([1;3;5..7]).
 * Without a filter, any 127.0.0.0/8 answer counts except 127.255.255.0/24.
 * Answers in 127.255.255.0/24 (a list refusing to serve, as Spamhaus does to
 * public resolvers) never count, whatever the filter says: they are errors.
 *
 * Sites naming the same domain share one DNS query ("zone"): results are
 * kept per zone, scores per site.
 *
 *   dnsbl_sites_parse()   the dnsbl_sites config value -> struct dnsbl_sites
 *   dnsbl_sites_free()
 *   dnsbl_names_check()   a dnsbl_names value: DOMAIN=PUBLIC_NAME pairs
 *   dnsbl_sites_name()    give zones their public names (dnsbl_names)
 *   dnsbl_domain_keyed()  does a list's domain seem to carry a key?
 *   dnsbl_site_matches()  does one A answer count for this site?
 *   dnsbl_answer_is_refusal()
 *   dnsbl_score()         zone results -> score, settled?, sites hit
 *   dnsbl_txt_escape()    a TXT string as printable ASCII, bounded
 *   dnsbl_format_hits()   "bl.test,zen.spamhaus.org" for logs and replies
 */
#ifndef BREAKWATER_DNSBL_SPEC_H
#define BREAKWATER_DNSBL_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNSBL_SITES_MAX 64   /* sites (a hit set is a uint64_t bitmask) */
#define DNSBL_ANSWERS_MAX 8  /* A answers kept per zone */
#define DNSBL_DOMAIN_MAX 253

struct dnsbl_filter {
    uint8_t octet[4][32]; /* bit v of octet[i] set = value v allowed */
};

struct dnsbl_site {
    char *spec;        /* the text as configured, its domain shown by its public name */
    unsigned zone;     /* index into dnsbl_sites.zone */
    bool has_filter;
    struct dnsbl_filter filter;
    int weight;        /* default 1; may be negative */
};

struct dnsbl_sites {
    struct dnsbl_site *site;
    size_t count;
    char **zone;       /* distinct domains, lower case, no trailing dot */
    char **name;       /* per zone: its public name (dnsbl_sites_name), else the domain */
    size_t zone_count;
};

/* Parses a comma and/or space separated list of site specs. Weights are
 * integers in -1000..1000; an empty text gives zero sites. On error returns
 * -1 and writes one line into err naming the bad spec and what is wrong. */
int dnsbl_sites_parse(const char *text, struct dnsbl_sites *out,
                      char *err, size_t errsize);
void dnsbl_sites_free(struct dnsbl_sites *sites);

/* A list's domain may carry the customer's key (Spamhaus DQS:
 * KEY.zen.dq.spamhaus.net). Outside the DNS query itself only its public
 * name may show: in replies, logs, metrics, check, the store and the fleet.
 * dnsbl_names is a list of DOMAIN=PUBLIC_NAME pairs, both domain-shaped. */
int dnsbl_names_check(const char *names, char *err, size_t errsize);
/* Names each zone of sites from names (checked): name[z] and each site's
 * spec then show the public name. A pair whose domain is not one of the
 * zones is an error naming its public name. 0, or -1 with err set. */
int dnsbl_sites_name(struct dnsbl_sites *sites, const char *names, char *err, size_t errsize);
/* If a label of the domain is 20 or more letters and digits only, it looks
 * like a key (a DQS key is 26): what follows the last such label (the
 * list's own name, maybe ""); else NULL. */
const char *dnsbl_domain_keyed(const char *domain);
/* The sites as one line ("zen.spamhaus.org*3,bl.spamcop.net"): the store
 * empties its verdicts when it changes. */
void dnsbl_sites_text(const struct dnsbl_sites *sites, char *buf, size_t size);
/* A 64-bit hash of that line (FNV-1a): the tag of every verdict made under
 * these sites, in the store and in a fleet. */
uint64_t dnsbl_sites_hash(const struct dnsbl_sites *sites);

bool dnsbl_answer_is_refusal(const uint8_t answer[4]);
/* False for refusal answers; else the filter, or 127/8 without one. */
bool dnsbl_site_matches(const struct dnsbl_site *site, const uint8_t answer[4]);

enum dnsbl_zone_status {
    DNSBL_ZONE_PENDING,   /* no answer yet: may still count */
    DNSBL_ZONE_ANSWERED,  /* answered; count may be 0 (NXDOMAIN) */
    DNSBL_ZONE_FAILED,    /* timeout, SERVFAIL, refused...: counts 0 */
    DNSBL_ZONE_SUSPENDED, /* failed its health check: counts 0 */
};

struct dnsbl_zone_result {
    uint8_t status;   /* enum dnsbl_zone_status */
    uint8_t count;    /* A answers kept */
    uint8_t answer[DNSBL_ANSWERS_MAX][4];
};

struct dnsbl_score {
    int score;      /* sum of the weights of the sites hit */
    uint64_t hits;  /* bit i set: site i matched */
    bool settled;   /* no pending zone can move the score across threshold */
    bool listed;    /* score >= threshold (final only when settled) */
};

/* Scores results[0..sites->zone_count). A pending zone may still add any of
 * its sites' weights, so the verdict is settled once the lowest and the
 * highest reachable scores fall on the same side of the threshold. */
void dnsbl_score(const struct dnsbl_sites *sites,
                 const struct dnsbl_zone_result *results, int threshold,
                 struct dnsbl_score *out);

/* A list's TXT text is whatever the list, or whoever spoofs its answers,
 * chose to send: any byte. This makes one string safe for a terminal or a
 * log: printable ASCII (0x20..0x7e) as it is, except '\' and '"', which
 * like every other byte (controls, DEL, 8-bit, NUL) become \xHH (lower
 * case hex); so every '\' in out starts an escape and the text can sit
 * between double quotes. out gets at most size - 1 bytes and a NUL (nothing
 * when size is 0), never half an escape. Returns how many bytes of text
 * went in: len when all did. */
size_t dnsbl_txt_escape(const uint8_t *text, size_t len, char *out, size_t size);

/* Comma-separated public names of the sites in hits, or "-" when none. */
void dnsbl_format_hits(const struct dnsbl_sites *sites, uint64_t hits,
                       char *buf, size_t size);

#endif
