/*
 * fuzz_proxy - libFuzzer target for proxy_header_write() in src/proxy.c.
 *
 * Input layout (missing bytes read as zero):
 *   byte 0     bits 0-1 source family, bits 2-3 destination family
 *              (0, 1: AF_INET; 2: AF_INET6; 3: AF_UNIX, an invalid one),
 *              bits 4-5 version (3 is outside the enum)
 *   byte 1     size of the output buffer (an exact-size heap block)
 *   bytes 2..  16 source bytes, 16 destination bytes, source port, dest port
 *
 * Checks: lengths stay within PROXY_HEADER_MAX (v1 with its NUL); a buffer
 * succeeds exactly when it holds the full header and then gets the same
 * bytes; v1 is one line of printable text ending in CRLF that parses back to
 * the given addresses and ports (or is "PROXY UNKNOWN"); v2 carries the
 * signature, the right family byte and a length matching what was written.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_proxy_input {
    enum proxy_version version;
    struct addr src, dst;
    uint16_t sport, dport;
    size_t bufsize;
};

static const uint8_t fuzz_proxy_signature[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/* fuzz_proxy_family - the family a 2-bit selector stands for */
static uint8_t fuzz_proxy_family(unsigned selector)
{
    return selector < 2 ? AF_INET : selector == 2 ? AF_INET6 : AF_UNIX;
}

/* fuzz_proxy_decode - fill in from the fuzzer's bytes, zero past the end */
static void fuzz_proxy_decode(const uint8_t *data, size_t size, struct fuzz_proxy_input *in)
{
    uint8_t raw[2 + 32 + 4] = {0};

    memcpy(raw, data, size < sizeof raw ? size : sizeof raw);
    memset(in, 0, sizeof *in);
    in->src.family = fuzz_proxy_family(raw[0] & 3);
    in->dst.family = fuzz_proxy_family((raw[0] >> 2) & 3);
    in->version = (enum proxy_version)((raw[0] >> 4) & 3);
    in->bufsize = raw[1];
    memcpy(in->src.bytes, raw + 2, in->src.family == AF_INET ? 4 : 16);
    memcpy(in->dst.bytes, raw + 18, in->dst.family == AF_INET ? 4 : 16);
    in->sport = (uint16_t)(raw[34] << 8 | raw[35]);
    in->dport = (uint16_t)(raw[36] << 8 | raw[37]);
}

/* fuzz_proxy_tcp - the shared TCP family, or 0 if the header must be UNKNOWN */
static int fuzz_proxy_tcp(const struct fuzz_proxy_input *in)
{
    if (in->src.family != in->dst.family || in->src.family == AF_UNIX)
        return 0;
    return in->src.family;
}

/* fuzz_proxy_check_addr - text parses (inet_pton) to the address's bytes */
static void fuzz_proxy_check_addr(const char *text, const struct addr *a)
{
    uint8_t bytes[16];

    assert(inet_pton(a->family, text, bytes) == 1);
    assert(memcmp(bytes, a->bytes, a->family == AF_INET ? 4 : 16) == 0);
}

/* fuzz_proxy_check_v1 - one printable line, six fields that parse back */
static void fuzz_proxy_check_v1(const struct fuzz_proxy_input *in, const uint8_t *buf, size_t n)
{
    char line[PROXY_HEADER_MAX], *field[6], *save = NULL;
    int family = fuzz_proxy_tcp(in), i;
    size_t k;

    assert(n >= 2 && n < PROXY_HEADER_MAX);
    assert(buf[n - 2] == '\r' && buf[n - 1] == '\n');
    for (k = 0; k + 2 < n; k++)
        assert(buf[k] >= 0x20 && buf[k] < 0x7f);
    memcpy(line, buf, n - 2);
    line[n - 2] = '\0';
    if (family == 0) {
        assert(strcmp(line, "PROXY UNKNOWN") == 0);
        return;
    }
    assert(strstr(line, "  ") == NULL && line[0] != ' ' && line[n - 3] != ' ');
    for (i = 0; i < 6; i++) {
        field[i] = strtok_r(i == 0 ? line : NULL, " ", &save);
        assert(field[i] != NULL);
    }
    assert(strtok_r(NULL, " ", &save) == NULL);
    assert(strcmp(field[0], "PROXY") == 0);
    assert(strcmp(field[1], family == AF_INET ? "TCP4" : "TCP6") == 0);
    fuzz_proxy_check_addr(field[2], &in->src);
    fuzz_proxy_check_addr(field[3], &in->dst);
    assert(strtoul(field[4], NULL, 10) == in->sport);
    assert(strtoul(field[5], NULL, 10) == in->dport);
}

/* fuzz_proxy_check_v2 - signature, command, family byte, length, block */
static void fuzz_proxy_check_v2(const struct fuzz_proxy_input *in, const uint8_t *buf, size_t n)
{
    int family = fuzz_proxy_tcp(in);
    size_t alen = family == AF_INET ? 4 : 16;
    const uint8_t *p = buf + 16;

    assert(n >= 16 && n <= 52);
    assert(memcmp(buf, fuzz_proxy_signature, 12) == 0);
    assert(buf[12] == 0x21);
    assert((size_t)(buf[14] << 8 | buf[15]) == n - 16);
    if (family == 0) {
        assert(buf[13] == 0x00 && n == 16);
        return;
    }
    assert(buf[13] == (family == AF_INET ? 0x11 : 0x21));
    assert(n == 16 + 2 * alen + 4);
    assert(memcmp(p, in->src.bytes, alen) == 0);
    assert(memcmp(p + alen, in->dst.bytes, alen) == 0);
    assert((p[2 * alen] << 8 | p[2 * alen + 1]) == in->sport);
    assert((p[2 * alen + 2] << 8 | p[2 * alen + 3]) == in->dport);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_proxy_input in;
    uint8_t full[PROXY_HEADER_MAX], *exact;
    ssize_t n, m;

    fuzz_proxy_decode(data, size, &in);
    n = proxy_header_write(in.version, &in.src, in.sport, &in.dst, in.dport, full, sizeof full);
    if (in.version == PROXY_NONE)
        assert(n == 0);
    else if (in.version == PROXY_V1)
        fuzz_proxy_check_v1(&in, full, (size_t)n);
    else if (in.version == PROXY_V2)
        fuzz_proxy_check_v2(&in, full, (size_t)n);
    else
        assert(n == -1);
    exact = malloc(in.bufsize ? in.bufsize : 1);
    if (exact == NULL)
        return 0;
    m = proxy_header_write(in.version, &in.src, in.sport, &in.dst, in.dport, exact, in.bufsize);
    if (n >= 0 && in.bufsize >= (size_t)n)
        assert(m == n && memcmp(exact, full, (size_t)n) == 0);
    else
        assert(m == -1);
    free(exact);
    return 0;
}
