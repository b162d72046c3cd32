/*
 * fw - the firewall front: picks the backend that conf->ban_backend names
 * and passes every call on to it. See fw.h for the contract.
 *
 *   fw_open()   fw_nft_ops, fw_ipset_ops or fw_recent_ops by
 *               conf->ban_backend; BAN_BACKEND_NONE is an error (the
 *               caller never opens a firewall then)
 *   fw_apply()  the backend's apply; an empty batch never reaches it
 *   fw_close()  the backend's close, then the struct fw itself
 *
 * The struct fw owns the backend's state from a successful open to
 * fw_close(); conf is borrowed and must outlive it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fw.h"

struct fw {
    const struct fw_backend_ops *ops;
    void *state;
};

/* fw_backend - the ops of the configured backend, or NULL for none */
static const struct fw_backend_ops *fw_backend(enum ban_backend backend)
{
    switch (backend) {
    case BAN_BACKEND_NFT:
        return &fw_nft_ops;
    case BAN_BACKEND_IPSET:
        return &fw_ipset_ops;
    case BAN_BACKEND_RECENT:
        return &fw_recent_ops;
    case BAN_BACKEND_NONE:
        break;
    }
    return NULL;
}

/* fw_open - open the configured backend; NULL with err set on failure */
struct fw *fw_open(const struct conf *conf, char *err, size_t errsize)
{
    const struct fw_backend_ops *ops = fw_backend(conf->ban_backend);
    struct fw *fw;

    if (ops == NULL) {
        snprintf(err, errsize, "ban_backend is none");
        return NULL;
    }
    fw = calloc(1, sizeof *fw);
    if (fw == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    fw->ops = ops;
    fw->state = ops->open(conf, err, errsize);
    if (fw->state == NULL) {
        free(fw);
        return NULL;
    }
    return fw;
}

/* fw_apply - add or remove a batch; returns how many entries failed */
size_t fw_apply(struct fw *fw, const struct fw_ban *bans, size_t count,
                char *err, size_t errsize)
{
    if (errsize > 0)
        err[0] = '\0';
    if (count == 0)
        return 0;
    return fw->ops->apply(fw->state, bans, count, err, errsize);
}

/* fw_close - release the backend and the struct; NULL is allowed */
void fw_close(struct fw *fw)
{
    if (fw == NULL)
        return;
    fw->ops->close(fw->state);
    free(fw);
}
