/*
 * killconn - end the live TCP connections of banned addresses to local
 * ports, so that the MTA's process for it goes away at once instead of
 * waiting out its timeout. Runs in the privileged ban helper.
 *
 *   killconn_sockets()    SOCK_DESTROY through NETLINK_SOCK_DIAG (as
 *                         `ss -K` does; needs CAP_NET_ADMIN and a kernel
 *                         with CONFIG_INET_DIAG_DESTROY): the owner reads
 *                         ECONNABORTED, the peer gets a reset
 *   killconn_processes()  for kernels without it: find the processes that
 *                         own such sockets through /proc (sock_diag dump
 *                         for the inodes, /proc/PID/fd for the owners) and
 *                         SIGTERM them through pidfds, checking again
 *                         once a process is held that it still owns one,
 *                         so a PID reused meanwhile is never signalled
 *                         (Linux 5.3 or later; needs CAP_KILL, and
 *                         CAP_SYS_PTRACE with CAP_DAC_READ_SEARCH to
 *                         read the /proc/PID/fd of other users'
 *                         processes)
 *
 * Both look at established connections whose remote address is one of
 * addrs[0..naddrs) (IPv4 also as ::ffff:a.b.c.d on IPv6 sockets) and whose
 * local port is one of ports: a batch of banned addresses costs one pass
 * over the kernel's connection table, not one per address. They return how many sockets (or processes) they ended, or -1
 * with err set.
 */
#ifndef BREAKWATER_KILLCONN_H
#define BREAKWATER_KILLCONN_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

int killconn_sockets(const struct addr *addrs, size_t naddrs, const uint16_t *ports,
                     size_t nports, char *err, size_t errsize);
int killconn_processes(const struct addr *addrs, size_t naddrs, const uint16_t *ports,
                       size_t nports, char *err, size_t errsize);

#endif
