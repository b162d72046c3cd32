/*
 * fw_nft - the nftables backend of fw.h, through libnftables: bans are
 * elements of two sets with flags interval,timeout, "FAMILY TABLE PREFIX4"
 * (ipv4_addr) and "FAMILY TABLE PREFIX6" (ipv6_addr), from conf->ban_set.
 * `breakwater rules` (rules.c) prints the script that creates them. A
 * network is one element "ADDR/LEN"; a single address, "ADDR".
 *
 *   fw_nft_open()   a context with buffered output and error; checks that
 *                   both sets exist and take timed elements with a dry
 *                   run of one add each (nft's check mode fetches set
 *                   headers, never the elements, and commits nothing),
 *                   and, when the family's prefix (ipv4_prefix,
 *                   ipv6_prefix) is shorter than an address, that they take
 *                   a network (sets made before network bans have no
 *                   interval flag)
 *   fw_nft_apply()  one command buffer, so one kernel transaction, for
 *                   the whole batch
 *   fw_nft_close()
 *
 * The batch, per family: `add element T P4 { a timeout Ns, ... }` for the
 * bans, then for the removals `add element T P4 { x timeout 1s, ... }`
 * followed by `delete element T P4 { x, ... }`. nft 1.0.6 has no `destroy`
 * and a delete of an absent element fails the whole transaction; adding
 * first makes a removal succeed whether or not the address is still in the
 * set (an expired ban is gone either way). Adding an element that is there
 * with the same timeout changes nothing on this kernel, so every addition
 * says `timeout Ns expires Ns`: a refresh then starts the ban's time
 * again (and a changed length takes effect). Within one batch, removals
 * come after additions: give each address at most once per batch.
 *
 * An interval set refuses an element that overlaps one of another length
 * ("interval overlaps with an existing one"): a /64 while one of its
 * addresses is banned alone, or the reverse. Such bans arise only when the
 * prefixes change or by hand (ctl ban ADDRESS/LEN); the entry fails with
 * nft's message, and the traffic of the part that is in the set stays
 * dropped until that element ends.
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

/* fw_nft_group - the commands for one family's additions (removals false)
 * or removals (true) of the batch: nothing when there are none */
static void fw_nft_group(struct fw_nft *nft, const struct fw_ban *bans, size_t count,
                         int family, bool removals)
{
    char text[CIDR_TEXT_MAX];
    const char *sep;
    size_t i;
    int pass;

    for (pass = 0; pass < (removals ? 2 : 1); pass++) {
        sep = "";
        for (i = 0; i < count; i++) {
            if (bans[i].net.net.family != family || (bans[i].seconds == 0) != removals)
                continue;
            if (sep[0] == '\0')
                fw_nft_text_printf(&nft->text, "%s element %s %s%c { ",
                                   pass == 0 ? "add" : "delete", nft->table,
                                   nft->prefix, fw_nft_set_char(family));
            cidr_format(&bans[i].net, text, sizeof text);
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
    for (f = 0; f < sizeof families / sizeof families[0]; f++) {
        fw_nft_group(nft, bans, count, families[f], false);
        fw_nft_group(nft, bans, count, families[f], true);
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
            snprintf(err, errsize, "nft %s %s%c: %s: %s", nft->table, nft->prefix,
                     fw_nft_set_char(bans[i].net.net.family), text, line);
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

/* fw_nft_check_set - dry-run one add into the set of a family, of a
 * network when networks is set; err names the command that creates the
 * sets when it is missing or cannot take what is banned */
static int fw_nft_check_set(struct fw_nft *nft, int family, bool networks,
                            char *err, size_t errsize)
{
    char cmd[2 * FW_NFT_NAME_MAX + 64], line[FW_ERR_MAX];
    int rc;

    snprintf(cmd, sizeof cmd, "add element %s %s%c { %s%s timeout 1s }\n", nft->table,
             nft->prefix, fw_nft_set_char(family),
             family == AF_INET ? "192.0.2.0" : "2001:db8::",
             networks ? (family == AF_INET ? "/24" : "/64") : "");
    nft_ctx_set_dry_run(nft->ctx, true);
    rc = fw_nft_run(nft, cmd, line, sizeof line);
    nft_ctx_set_dry_run(nft->ctx, false);
    if (rc == 0)
        return 0;
    if (strstr(line, "No such file or directory") != NULL)
        snprintf(err, errsize, "nft set %s %s%c does not exist: create it with "
                 "`breakwater rules | nft -f -`", nft->table, nft->prefix,
                 fw_nft_set_char(family));
    else
        snprintf(err, errsize, "nft set %s %s%c cannot take %s (%s): it needs "
                 "type %s and flags interval,timeout; delete it (nft delete table %s) "
                 "and load `breakwater rules | nft -f -` (stored bans come back at "
                 "start)", nft->table, nft->prefix, fw_nft_set_char(family),
                 networks ? "networks (ipv4_prefix, ipv6_prefix)" : "bans", line,
                 family == AF_INET ? "ipv4_addr" : "ipv6_addr", nft->table);
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
    if (fw_nft_check_set(nft, AF_INET, conf->ipv4_prefix < 32, err, errsize) != 0 ||
        fw_nft_check_set(nft, AF_INET6, conf->ipv6_prefix < 128, err, errsize) != 0)
        return -1;
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
