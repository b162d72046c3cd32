/*
 * cmd - the long-running commands, each started by main.c with its
 * configuration read and checked:
 *
 *   cmd_serve()  the SMTP front end (cmd_serve.c)
 *   cmd_watch()  the log watcher (cmd_watch.c): [--from-start]
 *                [--journal[=DIR]] [LOGFILE]...
 *
 * Both return the process's exit status: 0 after SIGTERM/SIGINT, 1 when
 * they could not start, CMD_EXIT_USAGE for a usage error.
 */
#ifndef BREAKWATER_CMD_H
#define BREAKWATER_CMD_H

#include "conf.h"

#define CMD_EXIT_USAGE 2

int cmd_serve(struct conf *conf);
int cmd_watch(struct conf *conf, char **operands, int count);

#endif
