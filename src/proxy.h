/*
 * proxy - the PROXY protocol header (HAProxy's spec, versions 1 and 2) that
 * tells the backend MTA the real client address of a relayed connection.
 *
 * Pure: writes bytes into a caller's buffer.
 *   proxy_header_write()  version, client and local endpoint -> header bytes
 */
#ifndef BREAKWATER_PROXY_H
#define BREAKWATER_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"

enum proxy_version { PROXY_NONE, PROXY_V1, PROXY_V2 };

/* Longest header either version can produce (v1: 107 bytes + NUL). */
#define PROXY_HEADER_MAX 108

/* Writes the header for a TCP connection from src:sport (the client) to
 * dst:dport (the address the client connected to). v1: "PROXY TCP4 ...\r\n";
 * v2: the binary form with command PROXY and TCP over IPv4/IPv6. When the two
 * families differ, v1 writes "PROXY UNKNOWN\r\n" and v2 uses AF_UNSPEC with no
 * address block. Returns the number of bytes written (no NUL), 0 for
 * PROXY_NONE, or -1 if size is too small. */
ssize_t proxy_header_write(enum proxy_version version,
                           const struct addr *src, uint16_t sport,
                           const struct addr *dst, uint16_t dport,
                           uint8_t *buf, size_t size);

#endif
