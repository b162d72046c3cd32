/*
 * check - `breakwater check ADDRESS...`: ask every configured list about
 * each address, show the answers, the filter matches, the weights, each
 * list's health, the score and the verdict.
 *
 *   check_run()  returns the exit status: 0 every address clean, 1 some
 *                address listed, 2 an address that does not parse, 3 every
 *                list failed to answer for some address
 */
#ifndef BREAKWATER_CHECK_H
#define BREAKWATER_CHECK_H

#include "conf.h"

int check_run(const struct conf *conf, char *const addresses[], int count);

#endif
