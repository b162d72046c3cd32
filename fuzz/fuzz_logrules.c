/*
 * fuzz_logrules - libFuzzer target for logrules_match() in src/logrules.c:
 * any bytes as a log line (NULs and invalid UTF-8 included) against the
 * built-in rules.
 *
 * Checks: no crash or overread (ASan), and a match always yields an IPv4 or
 * IPv6 address whose text form parses back to the same address, and a
 * NUL-terminated list name of printable ASCII.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "logrules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct logrules *rules;
    char err[LOGRULES_ERR_MAX], text[ADDR_TEXT_MAX];
    struct logrules_hit hit;
    struct addr again;

    if (rules == NULL)
        rules = logrules_new(false, NULL, NULL, err, sizeof err);
    assert(rules != NULL);
    char *line = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    memcpy(line, data, size);
    if (logrules_match(rules, line, size, &hit)) {
        assert(hit.addr.family == AF_INET || hit.addr.family == AF_INET6);
        addr_format(&hit.addr, text, sizeof text);
        assert(addr_parse(text, &again) == 0 && addr_equal(&again, &hit.addr));
        assert(memchr(hit.list, '\0', sizeof hit.list) != NULL);
        for (const char *c = hit.list; *c != '\0'; c++)
            assert(*c > 0x20 && *c < 0x7f);
    }
    free(line);
    return 0;
}
