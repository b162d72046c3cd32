/*
 * rules - the firewall setup that the configured ban backend needs, as the
 * text `breakwater rules` prints. Pure: no I/O, no globals.
 *
 *   rules_format()  the whole setup for conf->ban_backend:
 *       nft     a script for `nft -f -`: table, the two timed sets, a
 *               chain on the input hook dropping banned sources on the
 *               ban ports, and a commented-out per-source rate limit
 *       ipset   shell lines for `sh`: the two hash:ip sets, and the
 *               iptables/ip6tables rules that match them
 *       recent  shell lines for `sh`: iptables/ip6tables rules that test
 *               the xt_recent list (which creates it), with its limits
 *       none    a comment: nothing to install
 *
 * Every form can be loaded again: it adds what is missing and keeps the
 * banned addresses.
 */
#ifndef BREAKWATER_RULES_H
#define BREAKWATER_RULES_H

#include <stddef.h>

#include "conf.h"

/* Like snprintf: writes at most size bytes including the NUL (nothing when
 * size is 0, buf may then be NULL) and returns the length of the whole
 * text, so a return >= size means it was cut. conf has been through
 * conf_finish(). */
size_t rules_format(const struct conf *conf, char *buf, size_t size);

#endif
