/*
 * fw - the kernel firewall sets that hold banned addresses, one backend per
 * file: fw_nft.c (libnftables), fw_ipset.c (libipset), fw_recent.c
 * (/proc/net/xt_recent). Only the privileged ban helper (banhelper.c) calls
 * these; the network-facing process never touches the firewall.
 *
 *   fw_open()   check that the configured sets exist and can be written;
 *               the error names the command that creates them
 *   fw_apply()  add (with a timeout, refreshing an entry that is there) or
 *               remove a batch of networks (one address being the network
 *               of its whole length) in as few kernel transactions as the
 *               backend allows
 *   fw_close()
 *
 * Set names (conf.h, ban_set): nft "inet TABLE PREFIX" -> hash sets
 * PREFIX4 (ipv4_addr) and PREFIX6 (ipv6_addr) for addresses and networks
 * of ipv4_prefix / ipv6_prefix, interval sets PREFIX4net and PREFIX6net
 * for networks of other lengths (fw_nft.c says why); ipset PREFIX -> hash:net
 * sets PREFIX4 (family inet) and PREFIX6 (family inet6) with timeout
 * (hash:ip: single addresses only); recent NAME -> /proc/net/xt_recent/NAME,
 * whose entries have no timeout of their own (the iptables rule's --seconds
 * decides) and hold one address each (the rule's --mask makes an entry
 * stand for its network).
 */
#ifndef BREAKWATER_FW_H
#define BREAKWATER_FW_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"

#define FW_ERR_MAX 256

struct fw_ban {
    struct cidr net;  /* host bits zero */
    uint32_t seconds; /* 0 = remove the network */
};

struct fw;

/* Returns NULL with err set when the backend cannot be used. conf must
 * outlive the fw. */
struct fw *fw_open(const struct conf *conf, char *err, size_t errsize);
/* Returns the number of entries that could not be applied (0 = all went
 * in); err describes the first failure. */
size_t fw_apply(struct fw *fw, const struct fw_ban *bans, size_t count,
                char *err, size_t errsize);
void fw_close(struct fw *fw);

/* One backend, as fw.c dispatches to it (conf->ban_backend picks it);
 * state is the backend's own. */
struct fw_backend_ops {
    void *(*open)(const struct conf *conf, char *err, size_t errsize);
    size_t (*apply)(void *state, const struct fw_ban *bans, size_t count,
                    char *err, size_t errsize);
    void (*close)(void *state);
};

extern const struct fw_backend_ops fw_nft_ops, fw_ipset_ops, fw_recent_ops;

#endif
