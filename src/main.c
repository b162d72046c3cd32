/*
 * main - the command line: serve, check, rules, ctl, stats, watch, help,
 * --version.
 *
 * Configuration comes from the file (-c, or the default path when it
 * exists), then every -o key=value in order; anything wrong is one line on
 * stderr and exit status 2, before anything starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cmd.h"
#include "conf.h"
#include "control.h"
#include "log.h"
#include "rules.h"
#include "stats.h"

#define MAIN_DEFAULT_CONF "/etc/breakwater/breakwater.conf"
#define MAIN_EXIT_USAGE CMD_EXIT_USAGE
#define MAIN_OPTIONS_MAX 64

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: breakwater serve [-c FILE] [-o key=value]...\n"
            "       breakwater check [-c FILE] [-o key=value]... ADDRESS...\n"
            "       breakwater rules [-c FILE] [-o key=value]...\n"
            "       breakwater ctl [-c FILE] [-o key=value]... COMMAND [ARGUMENT]...\n"
            "       breakwater stats [-c FILE] [-o key=value]... [-i SECONDS] [-n COUNT]\n"
            "       breakwater watch [-c FILE] [-o key=value]... [--from-start]\n"
            "                        [--journal[=DIR]] [LOGFILE]...\n"
            "       breakwater help | --version\n"
            "\n"
            "serve  run the SMTP front end in the foreground (logs to stderr)\n"
            "check  look addresses up in the configured DNSBLs and show the verdict\n"
            "rules  print the firewall rules that ban_backend needs (nft: pipe to nft -f -)\n"
            "ctl    talk to the running daemon: ban ADDRESS[/LEN] [DURATION],\n"
            "       unban ADDRESS[/LEN], bans, flush (the verdict cache), stats\n"
            "stats  a line every SECONDS (default 5): open connections, new connections,\n"
            "       rejects, relays and bans per second (from the running daemon)\n"
            "watch  follow an exposed MTA's log: ban the clients it refused for a DNSBL\n"
            "       and end their connections (default: watch_logs)\n"
            "\n"
            "-c FILE       configuration file (default " MAIN_DEFAULT_CONF ")\n"
            "-o key=value  override one configuration key\n");
}

/* main_configure - file and -o options into conf (kept in source for a
 * reload); leaves the operands' index in *first_operand. Returns 0, or the
 * exit status on error. */
static int main_configure(struct conf *conf, struct conf_source *source, int argc, char **argv,
                          int *first_operand)
{
    static char *options[MAIN_OPTIONS_MAX];
    char err[CONF_ERR_MAX];
    *source = (struct conf_source){.default_path = MAIN_DEFAULT_CONF, .options = options};
    int i = 2;
    for (; i < argc; i++) {
        bool c = strcmp(argv[i], "-c") == 0, o = strcmp(argv[i], "-o") == 0;
        if (!c && !o)
            break;
        if (i + 1 >= argc) {
            fprintf(stderr, "breakwater: %s needs an argument\n", argv[i]);
            return MAIN_EXIT_USAGE;
        }
        if (o && source->option_count == MAIN_OPTIONS_MAX) {
            fprintf(stderr, "breakwater: more than %d -o options\n", MAIN_OPTIONS_MAX);
            return MAIN_EXIT_USAGE;
        }
        if (c)
            source->path = argv[++i];
        else
            options[source->option_count++] = argv[++i]; /* applied after the file */
    }
    *first_operand = i;
    if (conf_read(conf, source, err) < 0) {
        fprintf(stderr, "breakwater: %s\n", err);
        return MAIN_EXIT_USAGE;
    }
    log_set_level(conf->log_level);
    return 0;
}

/* main_rules - print the firewall rules for the configured backend */
static int main_rules(struct conf *conf, char **operands, int count)
{
    (void)operands, (void)count;
    size_t need = rules_format(conf, NULL, 0) + 1;
    char *text = malloc(need);
    if (text == NULL)
        return 1;
    rules_format(conf, text, need);
    int written = fputs(text, stdout);
    free(text);
    return written != EOF && fflush(stdout) == 0 ? 0 : 1;
}

static int main_ctl_json(struct conf *conf);

/* main_ctl - one control command to the running daemon */
static int main_ctl(struct conf *conf, char **operands, int count)
{
    if (count == 2 && strcmp(operands[0], "stats") == 0 && strcmp(operands[1], "--json") == 0)
        return main_ctl_json(conf);
    char line[CONTROL_LINE_MAX] = "";
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        int n = snprintf(line + used, sizeof line - used, "%s%s", i ? " " : "", operands[i]);
        if (n < 0 || (size_t)n >= sizeof line - used || strpbrk(operands[i], "\r\n")) {
            fprintf(stderr, "breakwater: ctl: command too long or with a line break\n");
            return MAIN_EXIT_USAGE;
        }
        used += (size_t)n;
    }
    return control_request(conf, line, CONTROL_OUT_MAX, stdout, stderr);
}

/* main_ctl_json - `ctl stats --json`: the snapshot as one JSON object */
static int main_ctl_json(struct conf *conf)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (out == NULL)
        return 1;
    int status = control_request(conf, "stats", CONTROL_STATS_MAX, out, stderr);
    if (fclose(out) != 0 && status == 0) { /* out of memory: text is not all there */
        fprintf(stderr, "breakwater: ctl: out of memory\n");
        status = 1;
    }
    if (status == 0 && stats_json(text, stdout) < 0) {
        fprintf(stderr, "breakwater: ctl: the daemon's stats are not key value lines\n");
        status = 1;
    }
    free(text);
    return status;
}

static int main_check(struct conf *conf, char **operands, int count)
{
    return check_run(conf, operands, count);
}

static int main_serve(struct conf *conf, char **operands, int count)
{
    (void)operands, (void)count;
    return cmd_serve(conf);
}

static const struct {
    const char *name;
    int (*run)(struct conf *conf, char **operands, int count);
    int min, max;          /* operands after the options */
    const char *need;      /* said when there are too few or too many */
    bool daemon;           /* runs on: logs go to log_target */
} main_commands[] = {
    {"serve", main_serve, 0, 0, "takes no operands", true},
    {"check", main_check, 1, 1 << 20, "needs at least one ADDRESS", false},
    {"rules", main_rules, 0, 0, "takes no operands", false},
    {"ctl", main_ctl, 1, 3, "needs a COMMAND and at most 2 arguments", false},
    {"stats", stats_run, 0, 5, "takes [-i SECONDS] [-n COUNT] [--json]", false},
    {"watch", cmd_watch, 0, CONF_WATCH_LOGS_MAX + 2, "takes at most 16 log files", true},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return MAIN_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "-h") == 0) {
        main_usage(stdout);
        return 0;
    }
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("breakwater %s\n", BREAKWATER_VERSION);
        return 0;
    }
    size_t c = 0, count = sizeof main_commands / sizeof main_commands[0];
    while (c < count && strcmp(command, main_commands[c].name) != 0)
        c++;
    if (c == count) {
        fprintf(stderr, "breakwater: unknown command '%s'\n", command);
        main_usage(stderr);
        return MAIN_EXIT_USAGE;
    }
    struct conf conf = {0}; /* freed below also when never read */
    struct conf_source source;
    int operand = argc; /* main_configure() sets it only when it succeeds */
    int status = main_configure(&conf, &source, argc, argv, &operand);
    int operands = argc - operand;
    if (status == 0 && (operands < main_commands[c].min || operands > main_commands[c].max)) {
        fprintf(stderr, "breakwater: %s %s\n", command, main_commands[c].need);
        status = MAIN_EXIT_USAGE;
    } else if (status == 0) {
        if (main_commands[c].daemon)
            log_set_target(conf.log_target);
        status = main_commands[c].run(&conf, argv + operand, operands);
    }
    conf_free(&conf);
    return status;
}
