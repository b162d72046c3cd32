/*
 * fuzz_conf - libFuzzer target for src/conf.c.
 *
 * The input is a config file: it is loaded through conf_load_file() (from a
 * memfd, so nothing touches the disk), then each of its lines is applied
 * again as a -o option through conf_set_option(), then conf_finish() and
 * conf_free() run. Checked: every error is one non-empty line; a failed
 * option leaves the struct byte for byte as it was; after every step the
 * struct keeps its invariants (counts within their arrays, owned strings
 * present, limits held); nothing leaks (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

/* fuzz_check_error - an error is one non-empty line. */
static void fuzz_check_error(const char *err)
{
    if (err[0] == '\0' || strchr(err, '\n') != NULL || strlen(err) >= CONF_ERR_MAX)
        abort();
}

/* fuzz_check_conf - invariants that every accepted value keeps. */
static void fuzz_check_conf(const struct conf *c)
{
    if (c->listen_count < 1 || c->listen_count > CONF_LISTEN_MAX)
        abort();
    if (c->resolver_count > CONF_RESOLVERS_MAX || c->resolver_system != (c->resolver_count == 0))
        abort();
    if (c->hostname == NULL || c->hostname[0] == '\0' || strlen(c->hostname) > 253)
        abort();
    if (c->reject_message == NULL || strlen(c->reject_message) > 400)
        abort();
    if (c->state_dir == NULL || c->state_dir[0] != '/')
        abort();
    if (c->dnsbl_threshold < 1 || c->max_connections < 1 || c->backend_max_connections < 1)
        abort();
    if (!(c->dnsbl_timeout > 0 && c->dnsbl_timeout <= 60) || c->dnsbl_health_interval < 0)
        abort();
    if (c->backend.port == 0)
        abort();
}

/* fuzz_load - loads data as a config file through a memfd. */
static void fuzz_load(struct conf *c, const uint8_t *data, size_t size)
{
    char path[64], err[CONF_ERR_MAX];
    int fd = memfd_create("fuzz_conf", MFD_CLOEXEC);

    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (conf_load_file(c, path, true, err) != 0)
        fuzz_check_error(err);
    close(fd);
    fuzz_check_conf(c);
}

/* fuzz_option - applies one line as -o; a failure must change nothing. */
static void fuzz_option(struct conf *c, const uint8_t *line, size_t len)
{
    char *option = malloc(len + 1), err[CONF_ERR_MAX];
    struct conf before;

    if (option == NULL)
        return;
    memcpy(option, line, len);
    option[len] = '\0';
    memcpy(&before, c, sizeof before);
    if (conf_set_option(c, option, err) != 0) {
        fuzz_check_error(err);
        if (memcmp(&before, c, sizeof before) != 0)
            abort();
    }
    free(option);
    fuzz_check_conf(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *line = data, *end = data + size, *newline;
    char err[CONF_ERR_MAX];
    struct conf c;

    conf_init(&c);
    fuzz_check_conf(&c);
    fuzz_load(&c, data, size);
    while (line < end) {
        newline = memchr(line, '\n', (size_t)(end - line));
        if (newline == NULL)
            newline = end;
        fuzz_option(&c, line, (size_t)(newline - line));
        line = newline + 1;
    }
    if (conf_finish(&c, err) != 0)
        fuzz_check_error(err);
    conf_free(&c);
    return 0;
}
