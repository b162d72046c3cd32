/*
 * fw_nft - the nftables backend of fw.h, through libnftables. Per family
 * (F = 4 or 6), from conf->ban_set "FAMILY TABLE PREFIX", the sets that
 * `breakwater rules` (rules.c) creates:
 *
 *   PREFIXF       hash set (flags timeout) of single addresses, matched
 *                 as they are
 *   PREFIXFnetP   hash set of the networks of the prefix P the rules were
 *                 printed for (ipv4_prefix, ipv6_prefix shorter than an
 *                 address), each by its first address: its rule cuts the
 *                 client's address to /P before the lookup
 *   PREFIXFnet    interval set (flags interval,timeout) of networks of any
 *                 other length ("ADDR/LEN")
 *
 * Each element thus stands for exactly the network it was banned for, also
 * after the prefixes change: an address is never read through a mask, and
 * a set of /P is read through /P alone.
 *
 * Why not the interval sets for all: libnftables reads every element of an
 * interval set before it changes one (to check for overlaps), so a change
 * costs time in proportion to the set's size (85 ms a transaction at
 * 30,000 elements, against 0.08 ms for a hash set, measured here). The
 * bans of a wave go to hash sets; the interval sets only get the rare
 * other lengths (ctl ban ADDRESS/LEN, bans made under other prefixes).
 *
 *   fw_nft_open()   a context with buffered output and error; checks that
 *                   the sets exist and take timed elements with a dry run
 *                   of one add each (nft's check mode fetches set headers,
 *                   never the elements, and commits nothing), and that
 *                   chain bans has the rule of PREFIXFnetP for the
 *                   configured prefixes (rules printed for other ones
 *                   would leave the wave's network bans unmatched)
 *   fw_nft_apply()  one command buffer, so one kernel transaction, for
 *                   the whole batch
 *   fw_nft_close()
 *
 * The batch, per set: `add element T S { a timeout Ns, ... }` for the
 * bans, then for the removals `add element T S { x timeout 1s, ... }`
 * followed by `delete element T S { x, ... }`. nft 1.0.6 has no `destroy`
 * and a delete of an absent element fails the whole transaction; adding
 * first makes a removal succeed whether or not the address is still in the
 * set (an expired ban is gone either way). Adding an element that is there
 * with the same timeout changes nothing on this kernel, so every addition
 * says `timeout Ns expires Ns`: a refresh then starts the ban's time
 * again (and a changed length takes effect). Within one batch, removals
 * come after additions: give each address at most once per batch.
 *
 * A network's removal goes to both sets that may hold it (PREFIXFnetP, when
 * its length is P, and PREFIXFnet): a ban made under other rules may sit in
 * the other one.
 *
 * An interval set refuses an element that overlaps one of another length
 * ("interval overlaps with an existing one"): such a ban fails with nft's
 * message, and the part already banned stays banned until that element
 * ends.
 *
 * A buffer is all or nothing. When the batch fails, every entry is tried
 * again alone, so only the bad ones fail; they are counted and err gets
 * the first one's address and the first line of nft's error text.
 *
 * Addresses are formatted here with addr_format(), never passed as text
 * nft could take for a host name (it would resolve it, blocking). Never
 * ask nft for the elements (`list set`): that loads all of them.
 *
 * The state owns the nft context and a command buffer that grows to the
 * largest batch seen and is reused.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nftables/libnftables.h>

#include "fw.h"

#define FW_NFT_NAME_MAX 256
#define FW_NFT_REMOVE_TIMEOUT 1 /* seconds an address to remove is added for */

/* A growing command buffer. */
struct fw_nft_text {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory: the text is incomplete */
};

struct fw_nft {
    struct nft_ctx *ctx;
    unsigned mask[2];             /* P of PREFIXFnetP: [0] IPv4, [1] IPv6 (the
                                     whole address: no such set) */
    char table[FW_NFT_NAME_MAX];  /* "inet breakwater" */
    char prefix[FW_NFT_NAME_MAX]; /* "banned" */
    struct fw_nft_text text;
};

/* fw_nft_text_printf - append formatted text, growing the buffer */
static void fw_nft_text_printf(struct fw_nft_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fw_nft_text_printf(struct fw_nft_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    if ((size_t)n >= t->cap - t->len) {
        size_t cap = t->cap * 2 > t->len + n + 1 ? t->cap * 2 : t->len + n + 4096;
        char *data = realloc(t->data, cap);
        if (data == NULL) {
            t->failed = true;
            return;
        }
        t->data = data;
        t->cap = cap;
        va_start(ap, fmt);
        vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

/* fw_nft_text_reset - empty the buffer, keeping its memory */
static void fw_nft_text_reset(struct fw_nft_text *t)
{
    if (t->data == NULL) {
        t->data = malloc(4096);
        t->cap = t->data != NULL ? 4096 : 0;
    }
    t->len = 0;
    t->failed = t->data == NULL;
    if (t->data != NULL)
        t->data[0] = '\0';
}

/* fw_nft_first_line - copy the first line of text into out */
static void fw_nft_first_line(const char *text, char *out, size_t size)
{
    size_t n = text != NULL ? strcspn(text, "\n") : 0;

    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    if (n > 0)
        memcpy(out, text, n);
    out[n] = '\0';
}

/* fw_nft_run - run a command buffer; on failure, the first error line goes
 * into line (if given). Both of nft's buffers are emptied. */
static int fw_nft_run(struct fw_nft *nft, const char *cmds, char *line, size_t size)
{
    int rc = nft_run_cmd_from_buffer(nft->ctx, cmds);
    const char *error = nft_ctx_get_error_buffer(nft->ctx);

    (void)nft_ctx_get_output_buffer(nft->ctx);
    if (rc != 0 && line != NULL) {
        fw_nft_first_line(error, line, size);
        if (line[0] == '\0')
            snprintf(line, size, "nft failed without a message");
    }
    return rc != 0 ? -1 : 0;
}

/* fw_nft_set_char - the set name's suffix for an address family */
static char fw_nft_set_char(int family)
{
    return family == AF_INET ? '4' : '6';
}

/* The kinds of set of a family (the top of this file). */
enum fw_nft_kind { FW_NFT_HOSTS, FW_NFT_MASKED, FW_NFT_NETS, FW_NFT_KINDS };

/* fw_nft_full - the prefix of a whole address of the family */
static unsigned fw_nft_full(int family)
{
    return family == AF_INET ? 32 : 128;
}

/* fw_nft_kinds - the sets an entry goes to, as bits of 1 << kind: an
 * address to the hosts' set, a network of P to PREFIXFnetP, any other
 * network to the interval set; a network's removal to both that may hold
 * it */
static unsigned fw_nft_kinds(const struct fw_nft *nft, const struct fw_ban *ban)
{
    int family = ban->net.net.family;
    if (ban->net.prefix == fw_nft_full(family))
        return 1u << FW_NFT_HOSTS;
    if (ban->net.prefix != nft->mask[family == AF_INET6])
        return 1u << FW_NFT_NETS;
    return ban->seconds > 0 ? 1u << FW_NFT_MASKED
                            : (1u << FW_NFT_MASKED) | (1u << FW_NFT_NETS);
}

/* fw_nft_set_name - "PREFIX6", "PREFIX6net64" or "PREFIX6net" */
static void fw_nft_set_name(const struct fw_nft *nft, int family, enum fw_nft_kind kind,
                            char *buf, size_t size)
{
    if (kind == FW_NFT_MASKED)
        snprintf(buf, size, "%s%cnet%u", nft->prefix, fw_nft_set_char(family),
                 nft->mask[family == AF_INET6]);
    else
        snprintf(buf, size, "%s%c%s", nft->prefix, fw_nft_set_char(family),
                 kind == FW_NFT_NETS ? "net" : "");
}

/* fw_nft_group - the commands for one set's additions (removals false) or
 * removals (true) of the batch: nothing when there are none */
static void fw_nft_group(struct fw_nft *nft, const struct fw_ban *bans, size_t count,
                         int family, enum fw_nft_kind kind, bool removals)
{
    char text[CIDR_TEXT_MAX], set[FW_NFT_NAME_MAX + 16];
    const char *sep;
    size_t i;
    int pass;

    fw_nft_set_name(nft, family, kind, set, sizeof set);
    for (pass = 0; pass < (removals ? 2 : 1); pass++) {
        sep = "";
        for (i = 0; i < count; i++) {
            if (bans[i].net.net.family != family || (bans[i].seconds == 0) != removals ||
                !(fw_nft_kinds(nft, &bans[i]) & (1u << kind)))
                continue;
            if (sep[0] == '\0')
                fw_nft_text_printf(&nft->text, "%s element %s %s { ",
                                   pass == 0 ? "add" : "delete", nft->table, set);
            if (kind == FW_NFT_NETS)
                cidr_format(&bans[i].net, text, sizeof text);
            else
                addr_format(&bans[i].net.net, text, sizeof text);
            unsigned long seconds = removals ? (unsigned long)FW_NFT_REMOVE_TIMEOUT
                                             : (unsigned long)bans[i].seconds;
            if (pass == 1)
                fw_nft_text_printf(&nft->text, "%s%s", sep, text);
            else
                fw_nft_text_printf(&nft->text, "%s%s timeout %lus expires %lus", sep, text,
                                   seconds, seconds);
            sep = ", ";
        }
        if (sep[0] != '\0')
            fw_nft_text_printf(&nft->text, " }\n");
    }
}

/* fw_nft_batch - the whole batch as one command buffer in nft->text */
static void fw_nft_batch(struct fw_nft *nft, const struct fw_ban *bans, size_t count)
{
    static const int families[] = {AF_INET, AF_INET6};
    size_t f;

    fw_nft_text_reset(&nft->text);
    for (f = 0; f < sizeof families / sizeof families[0]; f++)
        for (int kind = 0; kind < FW_NFT_KINDS; kind++) {
            fw_nft_group(nft, bans, count, families[f], (enum fw_nft_kind)kind, false);
            fw_nft_group(nft, bans, count, families[f], (enum fw_nft_kind)kind, true);
        }
}

/* fw_nft_is_address - whether the entry holds an address this backend can
 * take (anything else is counted as failed) */
static bool fw_nft_is_address(const struct fw_ban *ban)
{
    return ban->net.net.family == AF_INET || ban->net.net.family == AF_INET6;
}

/* fw_nft_apply_each - every entry alone; returns how many failed */
static size_t fw_nft_apply_each(struct fw_nft *nft, const struct fw_ban *bans,
                                size_t count, char *err, size_t errsize)
{
    char line[FW_ERR_MAX], text[CIDR_TEXT_MAX];
    size_t i, failed = 0;

    for (i = 0; i < count; i++) {
        if (!fw_nft_is_address(&bans[i])) {
            if (failed++ == 0)
                snprintf(err, errsize, "entry %zu: not an IPv4 or IPv6 address", i);
            continue;
        }
        fw_nft_batch(nft, &bans[i], 1);
        if (nft->text.failed) {
            snprintf(line, sizeof line, "out of memory");
        } else if (fw_nft_run(nft, nft->text.data, line, sizeof line) == 0) {
            continue;
        }
        if (failed++ == 0) {
            cidr_format(&bans[i].net, text, sizeof text);
            snprintf(err, errsize, "nft %s: %s: %s", nft->table, text, line);
        }
    }
    return failed;
}

/* fw_nft_apply - the batch in one transaction; entry by entry if that fails */
static size_t fw_nft_apply(void *state, const struct fw_ban *bans, size_t count,
                           char *err, size_t errsize)
{
    struct fw_nft *nft = state;
    size_t i;

    for (i = 0; i < count && fw_nft_is_address(&bans[i]); i++)
        ;
    if (i == count) {
        fw_nft_batch(nft, bans, count);
        if (!nft->text.failed && nft->text.len == 0)
            return 0;
        if (!nft->text.failed && fw_nft_run(nft, nft->text.data, NULL, 0) == 0)
            return 0;
    }
    return fw_nft_apply_each(nft, bans, count, err, errsize);
}

/* fw_nft_check_set - dry-run one add into a set of a family; err names
 * the command that creates the sets when it is missing or cannot take what
 * is banned */
static int fw_nft_check_set(struct fw_nft *nft, int family, enum fw_nft_kind kind,
                            char *err, size_t errsize)
{
    char cmd[2 * FW_NFT_NAME_MAX + 64], line[FW_ERR_MAX], set[FW_NFT_NAME_MAX + 16];
    int rc;

    fw_nft_set_name(nft, family, kind, set, sizeof set);
    snprintf(cmd, sizeof cmd, "add element %s %s { %s%s timeout 1s }\n", nft->table, set,
             family == AF_INET ? "192.0.2.0" : "2001:db8::",
             kind != FW_NFT_NETS ? "" : family == AF_INET ? "/24" : "/48");
    nft_ctx_set_dry_run(nft->ctx, true);
    rc = fw_nft_run(nft, cmd, line, sizeof line);
    nft_ctx_set_dry_run(nft->ctx, false);
    if (rc == 0)
        return 0;
    if (strstr(line, "No such file or directory") != NULL)
        snprintf(err, errsize, "nft set %s %s does not exist: create it with "
                 "`breakwater rules | nft -f -` (safe to load again; printed for the "
                 "prefixes in force)", nft->table, set);
    else
        snprintf(err, errsize, "nft set %s %s cannot take bans (%s): it needs type %s and "
                 "flags %s, as `breakwater rules | nft -f -` creates it", nft->table, set,
                 line, family == AF_INET ? "ipv4_addr" : "ipv6_addr",
                 kind == FW_NFT_NETS ? "interval,timeout" : "timeout");
    return -1;
}

/* fw_nft_check_mask - chain bans must cut a family's addresses to the
 * configured prefix before the lookup in PREFIXFnetP: its listing (the
 * rules, not the elements) has "saddr & MASK == @PREFIXFnetP" */
static int fw_nft_check_mask(struct fw_nft *nft, int family, char *err, size_t errsize)
{
    unsigned prefix = nft->mask[family == AF_INET6];
    struct addr ones = {.family = (uint8_t)family};
    char cmd[FW_NFT_NAME_MAX + 32], mask[ADDR_TEXT_MAX], want[ADDR_TEXT_MAX + 16];
    char set[FW_NFT_NAME_MAX + 16], ref[FW_NFT_NAME_MAX + 24], line[FW_ERR_MAX];

    memset(ones.bytes, 0xff, family == AF_INET ? 4 : 16);
    struct cidr c = cidr_of(&ones, prefix, prefix);
    addr_format(&c.net, mask, sizeof mask);
    snprintf(want, sizeof want, "saddr & %s ", mask);
    fw_nft_set_name(nft, family, FW_NFT_MASKED, set, sizeof set);
    snprintf(ref, sizeof ref, "@%s ", set);
    snprintf(cmd, sizeof cmd, "list chain %s bans\n", nft->table);
    int rc = nft_run_cmd_from_buffer(nft->ctx, cmd);
    const char *out = nft_ctx_get_output_buffer(nft->ctx);
    fw_nft_first_line(nft_ctx_get_error_buffer(nft->ctx), line, sizeof line);
    bool found = false;
    for (const char *p = out; rc == 0 && p != NULL && *p != '\0' && !found;) {
        size_t n = strcspn(p, "\n");
        const char *m = memmem(p, n, want, strlen(want));
        found = m != NULL && memmem(m, n - (size_t)(m - p), ref, strlen(ref)) != NULL;
        p += n + (p[n] == '\n');
    }
    if (found)
        return 0;
    snprintf(err, errsize, "nft chain %s bans has no rule for %s networks of /%u "
             "(%s & %s @%s): load `breakwater rules | nft -f -` again, printed for the "
             "prefixes in force%s%s", nft->table, family == AF_INET ? "IPv4" : "IPv6",
             prefix, family == AF_INET ? "ip saddr" : "ip6 saddr", mask, set,
             line[0] != '\0' ? ": " : "", line);
    return -1;
}

/* fw_nft_names - split "inet TABLE PREFIX" into the table and the prefix */
static int fw_nft_names(struct fw_nft *nft, const char *ban_set, char *err, size_t errsize)
{
    const char *space = strrchr(ban_set, ' ');

    if (space == NULL || space == ban_set || space[1] == '\0' ||
        strchr(ban_set, ' ') == space ||
        (size_t)(space - ban_set) >= sizeof nft->table ||
        strlen(space + 1) + 2 > sizeof nft->prefix) {
        snprintf(err, errsize, "ban_set '%s' is not \"inet TABLE SET-PREFIX\"", ban_set);
        return -1;
    }
    memcpy(nft->table, ban_set, (size_t)(space - ban_set));
    nft->table[space - ban_set] = '\0';
    /* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): length checked above */
    strcpy(nft->prefix, space + 1);
    return 0;
}

/* fw_nft_close - free the context and the buffer */
static void fw_nft_close(void *state)
{
    struct fw_nft *nft = state;

    if (nft == NULL)
        return;
    if (nft->ctx != NULL)
        nft_ctx_free(nft->ctx);
    free(nft->text.data);
    free(nft);
}

/* fw_nft_setup - the context with buffered output, and both sets checked */
static int fw_nft_setup(struct fw_nft *nft, const struct conf *conf,
                        char *err, size_t errsize)
{
    if (fw_nft_names(nft, conf->ban_set, err, errsize) != 0)
        return -1;
    nft->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (nft->ctx == NULL) {
        snprintf(err, errsize, "nft: cannot create a libnftables context");
        return -1;
    }
    if (nft_ctx_buffer_output(nft->ctx) != 0 || nft_ctx_buffer_error(nft->ctx) != 0) {
        snprintf(err, errsize, "nft: cannot buffer libnftables output");
        return -1;
    }
    nft->mask[0] = conf->ipv4_prefix;
    nft->mask[1] = conf->ipv6_prefix;
    static const int families[] = {AF_INET, AF_INET6};
    for (size_t f = 0; f < 2; f++) {
        bool masked = nft->mask[f] < fw_nft_full(families[f]);
        if (fw_nft_check_set(nft, families[f], FW_NFT_HOSTS, err, errsize) != 0 ||
            fw_nft_check_set(nft, families[f], FW_NFT_NETS, err, errsize) != 0 ||
            (masked && (fw_nft_check_set(nft, families[f], FW_NFT_MASKED, err, errsize) != 0 ||
                        fw_nft_check_mask(nft, families[f], err, errsize) != 0)))
            return -1;
    }
    return 0;
}

/* fw_nft_open - the backend's state; NULL with err set */
static void *fw_nft_open(const struct conf *conf, char *err, size_t errsize)
{
    struct fw_nft *nft = calloc(1, sizeof *nft);

    if (nft == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (fw_nft_setup(nft, conf, err, errsize) != 0) {
        fw_nft_close(nft);
        return NULL;
    }
    return nft;
}

const struct fw_backend_ops fw_nft_ops = {
    .open = fw_nft_open,
    .apply = fw_nft_apply,
    .close = fw_nft_close,
};
