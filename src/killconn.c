/*
 * killconn - end the live TCP connections of a banned address to local
 * ports. See killconn.h.
 *
 * Contract: two entry points, each self-contained (no state survives a
 * call, no globals):
 *
 *   killconn_sockets()    open a NETLINK_SOCK_DIAG socket, collect the
 *                         matching sockets (killconn_collect), send one
 *                         SOCK_DESTROY per match in batches of
 *                         KILLCONN_BATCH requests, count the acks that say 0
 *   killconn_processes()  collect the same way, keep the socket inodes,
 *                         walk /proc/PID/fd looking for "socket:[INODE]"
 *                         and SIGTERM each owner once, through a pidfd
 *                         opened before its descriptors are read again
 *                         (killconn_signal_one: never a reused PID)
 *
 * Each call owns its netlink descriptor and its match list and releases
 * both before returning.
 *
 * Decisions made here that the header leaves open:
 *   - "Established" means the TCP states ESTABLISHED and CLOSE_WAIT (a
 *     client that has half-closed still holds the MTA's process).
 *   - For a single address the dump carries a kernel filter
 *     (INET_DIAG_REQ_BYTECODE) on the remote address and local ports, so
 *     that only matching sockets are
 *     formatted and copied: with 20,000 established sockets a dump without
 *     it costs about twice the time. Every dumped socket is matched again
 *     here, which is all the filtering when there are more than
 *     KILLCONN_FILTER_PORTS ports or several addresses (a batch: the
 *     addresses are sorted and looked up with bsearch, so one pair of
 *     dumps serves the whole batch). Each dump also walks the kernel's whole
 *     established hash table (shared by all network namespaces): about
 *     9 ms for 262,144 buckets here, whatever the number of sockets.
 *   - An IPv4 address is looked for in the AF_INET dump and, as
 *     ::ffff:a.b.c.d, in the AF_INET6 dump (clients of a dual-stack [::]
 *     listener); an IPv6 address only in the AF_INET6 dump.
 *   - nports == 0 matches nothing and returns 0.
 *   - A socket that went away between dump and destroy (ENOENT) is not an
 *     error and not counted. EPERM and EOPNOTSUPP stop the work and return
 *     -1 (every further request would fail the same way). Any other error
 *     is reported only if nothing could be ended.
 *   - killconn_processes() never signals PID 1 or itself; it signals every
 *     process that holds a matching socket, which includes a parent that
 *     kept its copy of the accepted socket after fork(), unless it also
 *     holds an established connection of another client to any port
 *     something listens on: postscreen, a proxy or a serve holds many
 *     clients, and SIGTERM would end them all. Those are dumped afresh
 *     once the process is held by its pidfd (killconn_others), so a client
 *     that came during the walk counts. A server whose only client is the
 *     banned one is signalled: nothing tells it from a forked one. A process that has
 *     gone (ESRCH), or no longer holds a matching socket once its pidfd is
 *     open, is not counted. A kernel without pidfds (before 5.3) is an
 *     error: signalling a bare PID could hit a process that reused it.
 *     Reading another user's /proc/PID/fd links takes ptrace access
 *     (CAP_SYS_PTRACE) on top of CAP_DAC_READ_SEARCH for the directory; so
 *     does a process of our own user that changed its uid (not dumpable:
 *     its /proc entry is root's).
 *     The walk reads every descriptor of every process: about 15 us per
 *     descriptor on a busy machine, so 0.15-0.3 s with 20,000 open.
 */
#include "killconn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* pidfd_open(2) and pidfd_send_signal(2) by number: older C libraries
 * have no wrappers (the numbers are the same on every architecture but
 * alpha, which breakwater does not build for) */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* Bytes read from the netlink socket at once; the kernel fills dump parts
 * up to 32 KiB when the reader offers that much. */
#define KILLCONN_RECV_SIZE 32768
/* SOCK_DESTROY requests sent in one write; their acks must fit the default
 * receive buffer (each ack is a small skb of about 1 KiB truesize). */
#define KILLCONN_BATCH 64
/* TCP states looked at: TCP_ESTABLISHED (1) and TCP_CLOSE_WAIT (8); and
 * TCP_LISTEN (10), for the ports a process may serve clients on. */
#define KILLCONN_STATES ((1u << 1) | (1u << 8))
#define KILLCONN_LISTEN (1u << 10)
/* Ports compiled into the kernel's filter at most; with more, the dump
 * brings every socket and the matching is done here only. */
#define KILLCONN_FILTER_PORTS 32
/* Size of the filter: the address test (op, hostcond, IPv6 address), then
 * per port a comparison (two ops) and a jump (one op). */
#define KILLCONN_FILTER_MAX (sizeof(struct inet_diag_bc_op) * (1 + 3 * KILLCONN_FILTER_PORTS) + \
                             sizeof(struct inet_diag_hostcond) + 16)

struct killconn_match {
    uint8_t family;              /* AF_INET or AF_INET6, as dumped */
    uint32_t inode;              /* 0 if no process holds the socket */
    struct inet_diag_sockid id;  /* as dumped, cookie included */
};

struct killconn_list {
    struct killconn_match *items;
    size_t count;
    size_t size;
};

struct killconn_filter {
    struct addr *addrs;          /* AF_INET or non-mapped AF_INET6, sorted */
    size_t naddrs;
    bool any4;                   /* some address is IPv4: dump AF_INET too */
    bool others;                 /* match the remote addresses NOT in addrs */
    const uint16_t *ports;       /* NULL: any port */
    size_t nports;
    uint32_t states;             /* KILLCONN_STATES or KILLCONN_LISTEN */
};

struct killconn_request {
    struct nlmsghdr header;
    struct inet_diag_req_v2 body;
};

struct killconn_dump_request {
    struct killconn_request request;
    struct nlattr attr;                          /* INET_DIAG_REQ_BYTECODE */
    uint8_t bytecode[KILLCONN_FILTER_MAX];
};

static const uint8_t killconn_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* killconn_addr_compare - qsort/bsearch order of addresses */
static int killconn_addr_compare(const void *x, const void *y)
{
    const struct addr *a = x, *b = y;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    return memcmp(a->bytes, b->bytes, sizeof a->bytes);
}

/* killconn_filter_init - the filter for addrs, each mapped IPv6 address
 * made plain IPv4 so that both dumps are searched, sorted for bsearch;
 * -1 when out of memory */
static int killconn_filter_init(struct killconn_filter *f, const struct addr *addrs,
                                size_t naddrs, const uint16_t *ports, size_t nports)
{
    *f = (struct killconn_filter){.naddrs = naddrs, .ports = ports, .nports = nports,
                                  .states = KILLCONN_STATES};
    f->addrs = calloc(naddrs ? naddrs : 1, sizeof *f->addrs);
    if (f->addrs == NULL)
        return -1;
    for (size_t i = 0; i < naddrs; i++) {
        struct addr *a = &f->addrs[i];
        *a = addrs[i];
        if (a->family == AF_INET6 &&
            memcmp(a->bytes, killconn_mapped_prefix, sizeof killconn_mapped_prefix) == 0) {
            a->family = AF_INET;
            memmove(a->bytes, a->bytes + 12, 4);
            memset(a->bytes + 4, 0, sizeof a->bytes - 4);
        }
        f->any4 |= a->family == AF_INET;
    }
    qsort(f->addrs, naddrs, sizeof *f->addrs, killconn_addr_compare);
    return 0;
}

/* killconn_has - is a (family, 4 or 16 bytes) one of the filter's? */
static bool killconn_has(const struct killconn_filter *f, uint8_t family, const uint8_t *bytes)
{
    struct addr key = {.family = family};
    memcpy(key.bytes, bytes, family == AF_INET ? 4 : 16);
    return bsearch(&key, f->addrs, f->naddrs, sizeof key, killconn_addr_compare) != NULL;
}

/* killconn_wanted - true if a dumped socket has the remote address (with
 * f->others: any other) and one of the local ports of the filter */
static bool killconn_wanted(const struct killconn_filter *f, const struct inet_diag_msg *m)
{
    const uint8_t *dst = (const uint8_t *)m->id.idiag_dst;
    uint16_t port = ntohs(m->id.idiag_sport);
    size_t i;
    bool has;

    if (m->idiag_family == AF_INET) {
        has = killconn_has(f, AF_INET, dst);
    } else if (m->idiag_family == AF_INET6) {
        bool mapped = memcmp(dst, killconn_mapped_prefix, 12) == 0;
        has = mapped ? killconn_has(f, AF_INET, dst + 12) : killconn_has(f, AF_INET6, dst);
    } else {
        return false;
    }
    if (has == f->others)
        return false;
    if (f->ports == NULL)
        return true;
    for (i = 0; i < f->nports; i++)
        if (f->ports[i] == port)
            return true;
    return false;
}

/* killconn_list_add - append one dumped socket; 0 or -1 (out of memory) */
static int killconn_list_add(struct killconn_list *list, const struct inet_diag_msg *m)
{
    struct killconn_match *items;
    size_t size;

    if (list->count == list->size) {
        size = list->size ? list->size * 2 : 16;
        items = realloc(list->items, size * sizeof *items);
        if (items == NULL)
            return -1;
        list->items = items;
        list->size = size;
    }
    list->items[list->count].family = m->idiag_family;
    list->items[list->count].inode = m->idiag_inode;
    list->items[list->count].id = m->id;
    list->count++;
    return 0;
}

/* killconn_open - a NETLINK_SOCK_DIAG socket; -1 with err set */
static int killconn_open(char *err, size_t errsize)
{
    int one = 1;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

    if (fd < 0) {
        snprintf(err, errsize, "netlink sock_diag socket: %s", strerror(errno));
        return -1;
    }
    /* Acks carry only the header of the request, not its body. */
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    return fd;
}

/* killconn_request_init - a request for TCP sockets of family with seq */
static void killconn_request_init(struct killconn_request *r, uint16_t type, uint16_t flags,
                                  uint8_t family, uint32_t seq)
{
    memset(r, 0, sizeof *r);
    r->header.nlmsg_len = sizeof *r;
    r->header.nlmsg_type = type;
    r->header.nlmsg_flags = flags;
    r->header.nlmsg_seq = seq;
    r->body.sdiag_family = family;
    r->body.sdiag_protocol = IPPROTO_TCP;
}

/* killconn_op - one filter instruction at *off: on true go yes bytes on, on
 * false no bytes (past the end + 4 rejects, the very end accepts) */
static void killconn_op(uint8_t *code, size_t *off, uint8_t op, size_t yes, size_t no)
{
    struct inet_diag_bc_op bc = {.code = op, .yes = (uint8_t)yes, .no = (uint16_t)no};

    memcpy(code + *off, &bc, sizeof bc);
    *off += sizeof bc;
}

/* killconn_filter_code - the kernel filter "remote address is the one
 * address of f (or ::ffff: it) and the local port is one of f->ports" written to code,
 * laid out as iproute2's `ss` does so that the kernel's checker accepts it:
 * every instruction's "yes" leads to the next one, an OR is "test; jump to
 * the end" with the test's "no" going past the jump. Returns its length,
 * or 0 when there are too many ports to compile. */
static size_t killconn_filter_code(const struct killconn_filter *f, uint8_t *code)
{
    if (f->naddrs != 1 || f->others || f->ports == NULL) /* killconn_wanted() picks */
        return 0;
    const struct addr *a = &f->addrs[0];
    struct inet_diag_hostcond cond = {.family = a->family, .port = -1};
    size_t alen = a->family == AF_INET ? 4 : 16;
    size_t test = sizeof(struct inet_diag_bc_op) + sizeof cond + alen;
    size_t op = sizeof(struct inet_diag_bc_op);
    size_t total = test + f->nports * 3 * op - op, off = 0, i;

    if (f->nports == 0 || f->nports > KILLCONN_FILTER_PORTS)
        return 0;
    cond.prefix_len = (uint8_t)(alen * 8);
    killconn_op(code, &off, INET_DIAG_BC_D_COND, test, total + 4);
    memcpy(code + off, &cond, sizeof cond);
    memcpy(code + off + sizeof cond, a->bytes, alen);
    off += sizeof cond + alen;
    for (i = 0; i < f->nports; i++) {
        killconn_op(code, &off, INET_DIAG_BC_S_EQ, 2 * op, 3 * op);
        killconn_op(code, &off, INET_DIAG_BC_NOP, 0, f->ports[i]);
        if (i + 1 < f->nports)
            killconn_op(code, &off, INET_DIAG_BC_JMP, op, total - off);
    }
    return off;
}

/* killconn_send - write len bytes to the kernel; 0 or an errno value */
static int killconn_send(int fd, const void *buf, size_t len)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n;

    do
        n = sendto(fd, buf, len, 0, (const struct sockaddr *)&kernel, sizeof kernel);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno;
    return (size_t)n == len ? 0 : EIO;
}

/* killconn_recv - one datagram from the kernel into buf; its length, or
 * -1 with errno set (EMSGSIZE for a truncated one) */
static ssize_t killconn_recv(int fd, void *buf, size_t size)
{
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = buf, .iov_len = size};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from,
                         .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    for (;;) {
        n = recvmsg(fd, &msg, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (msg.msg_flags & MSG_TRUNC) {
            errno = EMSGSIZE;
            return -1;
        }
        if (from.nl_pid == 0)
            return n;
        msg.msg_namelen = sizeof from; /* not from the kernel: ignore */
    }
}

/* killconn_nlerror - the errno value of an NLMSG_ERROR or NLMSG_DONE
 * message (0 for an ack or a clean end) */
static int killconn_nlerror(const struct nlmsghdr *h)
{
    int e;

    if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
            return EBADMSG;
        return -((const struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof e))
        return 0;
    memcpy(&e, NLMSG_DATA(h), sizeof e);
    return -e;
}

/* killconn_dump_part - the messages of one datagram of a dump: matches
 * appended to list; 1 while the dump goes on, 0 at its end, -1 with err */
static int killconn_dump_part(const struct killconn_filter *f, uint32_t seq,
                              const void *buf, size_t len, struct killconn_list *list,
                              char *err, size_t errsize)
{
    const struct nlmsghdr *h;
    int e;

    for (h = buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq)
            continue;
        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
            e = killconn_nlerror(h);
            if (e == 0)
                return 0;
            snprintf(err, errsize, "sock_diag dump: %s", strerror(e));
            return -1;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            continue;
        if (!killconn_wanted(f, NLMSG_DATA(h)))
            continue;
        if (killconn_list_add(list, NLMSG_DATA(h)) < 0) {
            snprintf(err, errsize, "out of memory");
            return -1;
        }
    }
    return 1;
}

/* killconn_dump - the matching sockets of one family appended to list;
 * 0 or -1 with err set */
static int killconn_dump(int fd, const struct killconn_filter *f, uint8_t family,
                         uint32_t seq, struct killconn_list *list, char *err, size_t errsize)
{
    struct killconn_dump_request req;
    size_t codelen;
    char *buf;
    ssize_t n;
    int e, more = 1;

    memset(&req, 0, sizeof req);
    killconn_request_init(&req.request, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                          family, seq);
    req.request.body.idiag_states = f->states;
    codelen = killconn_filter_code(f, req.bytecode);
    if (codelen > 0) {
        req.attr.nla_type = INET_DIAG_REQ_BYTECODE;
        req.attr.nla_len = (uint16_t)(NLA_HDRLEN + codelen);
        req.request.header.nlmsg_len = (uint32_t)(sizeof req.request + NLA_HDRLEN + codelen);
    }
    e = killconn_send(fd, &req, req.request.header.nlmsg_len);
    if (e != 0) {
        snprintf(err, errsize, "sock_diag dump request: %s", strerror(e));
        return -1;
    }
    buf = malloc(KILLCONN_RECV_SIZE);
    if (buf == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    while (more > 0) {
        n = killconn_recv(fd, buf, KILLCONN_RECV_SIZE);
        if (n < 0) {
            snprintf(err, errsize, "sock_diag dump: %s", strerror(errno));
            more = -1;
            break;
        }
        more = killconn_dump_part(f, seq, buf, (size_t)n, list, err, errsize);
    }
    free(buf);
    return more < 0 ? -1 : 0;
}

/* killconn_collect - the sockets of the filter, from the AF_INET dump (IPv4
 * only) and the AF_INET6 dump; 0 or -1 with err set */
static int killconn_collect(int fd, const struct killconn_filter *f,
                            struct killconn_list *list, char *err, size_t errsize)
{
    for (size_t i = 0; i < f->naddrs; i++)
        if (f->addrs[i].family != AF_INET && f->addrs[i].family != AF_INET6) {
            snprintf(err, errsize, "not an IPv4 or IPv6 address");
            return -1;
        }
    uint32_t seq = f->others ? 3 : 1;
    if ((f->any4 || f->others) && killconn_dump(fd, f, AF_INET, seq, list, err, errsize) < 0)
        return -1;
    return killconn_dump(fd, f, AF_INET6, seq + 1, list, err, errsize);
}

/* killconn_destroy_error - err for an errno value from SOCK_DESTROY */
static void killconn_destroy_error(int e, char *err, size_t errsize)
{
    if (e == EPERM)
        snprintf(err, errsize, "no permission (CAP_NET_ADMIN needed)");
    else if (e == EOPNOTSUPP)
        snprintf(err, errsize, "kernel without CONFIG_INET_DIAG_DESTROY: "
                 "use watch_kill = process");
    else
        snprintf(err, errsize, "sock_diag destroy: %s", strerror(e));
}

/* killconn_read_acks - wait for the acks of requests first .. first+count-1:
 * *destroyed counts the zeros, *failure keeps the first error other than
 * ENOENT; 0, or an errno value if the acks could not be read */
static int killconn_read_acks(int fd, uint32_t first, size_t count, size_t *destroyed,
                              int *failure)
{
    char buf[8192];
    const struct nlmsghdr *h;
    size_t len, acked = 0;
    ssize_t n;
    int e;

    while (acked < count) {
        n = killconn_recv(fd, buf, sizeof buf);
        if (n < 0)
            return errno;
        len = (size_t)n;
        for (h = (const void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq - first >= count)
                continue;
            acked++;
            e = killconn_nlerror(h);
            if (e == 0)
                (*destroyed)++;
            else if (e != ENOENT && *failure == 0)
                *failure = e;
        }
    }
    return 0;
}

/* killconn_destroy - SOCK_DESTROY for every socket of list, KILLCONN_BATCH
 * per write; the number destroyed, or -1 with err set */
static int killconn_destroy(int fd, const struct killconn_list *list, char *err,
                            size_t errsize)
{
    struct killconn_request batch[KILLCONN_BATCH];
    size_t done = 0, destroyed = 0, n, i;
    uint32_t seq = 100;
    int e, failure = 0;

    while (done < list->count) {
        n = list->count - done < KILLCONN_BATCH ? list->count - done : KILLCONN_BATCH;
        for (i = 0; i < n; i++) {
            killconn_request_init(&batch[i], SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK,
                                  list->items[done + i].family, seq + (uint32_t)i);
            batch[i].body.idiag_states = ~0u;
            batch[i].body.id = list->items[done + i].id;
        }
        e = killconn_send(fd, batch, n * sizeof batch[0]);
        if (e == 0)
            e = killconn_read_acks(fd, seq, n, &destroyed, &failure);
        if (e != 0) {
            snprintf(err, errsize, "sock_diag destroy: %s", strerror(e));
            return -1;
        }
        if (failure == EPERM || failure == EOPNOTSUPP)
            break;
        done += n;
        seq += (uint32_t)n;
    }
    if (failure != 0 && (destroyed == 0 || failure == EPERM || failure == EOPNOTSUPP)) {
        killconn_destroy_error(failure, err, errsize);
        return -1;
    }
    return (int)destroyed;
}

/* killconn_find - the matching sockets of addrs into list; returns the
 * open netlink descriptor (the caller closes it), or -1 with err set */
static int killconn_find(const struct addr *addrs, size_t naddrs, const uint16_t *ports,
                         size_t nports, struct killconn_list *list, char *err, size_t errsize)
{
    struct killconn_filter f;
    if (killconn_filter_init(&f, addrs, naddrs, ports, nports) < 0) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    int fd = killconn_open(err, errsize);
    if (fd >= 0 && killconn_collect(fd, &f, list, err, errsize) < 0) {
        close(fd);
        fd = -1;
    }
    free(f.addrs);
    return fd;
}

/* killconn_sockets - see killconn.h */
int killconn_sockets(const struct addr *addrs, size_t naddrs, const uint16_t *ports,
                     size_t nports, char *err, size_t errsize)
{
    struct killconn_list list = {NULL, 0, 0};
    if (nports == 0 || naddrs == 0)
        return 0;
    int fd = killconn_find(addrs, naddrs, ports, nports, &list, err, errsize);
    int result = fd < 0 ? -1 : killconn_destroy(fd, &list, err, errsize);
    if (fd >= 0)
        close(fd);
    free(list.items);
    return result;
}

/* killconn_inode_compare - qsort/bsearch order of socket inodes */
static int killconn_inode_compare(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

    return a < b ? -1 : a > b;
}

/* killconn_inodes - a sorted set of socket inodes */
struct killconn_inodes {
    uint32_t *v;
    size_t n;
};

/* killconn_inodes_of - the sorted non-zero inodes of list in *out (the
 * caller frees out->v); 0, or -1 (out of memory) */
static int killconn_inodes_of(const struct killconn_list *list, struct killconn_inodes *out)
{
    out->n = 0;
    out->v = malloc((list->count ? list->count : 1) * sizeof *out->v);
    if (out->v == NULL)
        return -1;
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].inode != 0)
            out->v[out->n++] = list->items[i].inode;
    qsort(out->v, out->n, sizeof *out->v, killconn_inode_compare);
    return 0;
}

/* killconn_inodes_has - is inode in the set? */
static bool killconn_inodes_has(const struct killconn_inodes *set, uint32_t inode)
{
    return set->n > 0 &&
           bsearch(&inode, set->v, set->n, sizeof *set->v, killconn_inode_compare) != NULL;
}

/* killconn_fd_inode - the inode of a "socket:[N]" link text, or 0 */
static uint32_t killconn_fd_inode(const char *link)
{
    unsigned long long v;
    char *end;

    if (strncmp(link, "socket:[", 8) != 0 || link[8] < '0' || link[8] > '9')
        return 0;
    errno = 0;
    v = strtoull(link + 8, &end, 10);
    if (errno != 0 || *end != ']' || end[1] != '\0' || v > UINT32_MAX)
        return 0;
    return (uint32_t)v;
}

/* killconn_port_compare - qsort order of ports */
static int killconn_port_compare(const void *x, const void *y)
{
    return (int)*(const uint16_t *)x - (int)*(const uint16_t *)y;
}

/* killconn_others - the inodes of every other client's connections (the
 * remote address not one of banned's) to any port something listens on,
 * as the kernel has them now. An outbound connection, such as smtpd's to
 * a milter, comes from a port nothing listens on and is not counted.
 * 0, or -1 with err set. */
static int killconn_others(int fd, const struct killconn_filter *banned,
                           struct killconn_inodes *out, char *err, size_t errsize)
{
    struct killconn_list listeners = {NULL, 0, 0}, others = {NULL, 0, 0};
    struct killconn_filter f = *banned;
    uint16_t *ports = NULL;
    size_t nports = 0;
    f.others = true;
    f.ports = NULL;
    f.states = KILLCONN_LISTEN;
    int rc = killconn_collect(fd, &f, &listeners, err, errsize);
    if (rc == 0) {
        ports = malloc((listeners.count ? listeners.count : 1) * sizeof *ports);
        for (size_t i = 0; ports != NULL && i < listeners.count; i++)
            ports[nports++] = ntohs(listeners.items[i].id.idiag_sport);
    }
    if (rc == 0 && ports != NULL) {
        qsort(ports, nports, sizeof *ports, killconn_port_compare);
        f.ports = ports;
        f.nports = nports;
        f.states = KILLCONN_STATES;
        rc = nports == 0 ? 0 : killconn_collect(fd, &f, &others, err, errsize);
    }
    if (rc == 0 && (ports == NULL || killconn_inodes_of(&others, out) < 0)) {
        snprintf(err, errsize, "out of memory");
        rc = -1;
    }
    free(ports);
    free(listeners.items);
    free(others.items);
    return rc;
}

/* What a process holds, as far as the kill is concerned. */
enum killconn_holder {
    KILLCONN_UNREADABLE = -1, /* its fd directory: no permission */
    KILLCONN_NONE = 0,        /* no banned connection */
    KILLCONN_BANNED = 1,      /* banned connections only */
    KILLCONN_SHARED = 2,      /* banned and other clients' (postscreen, serve) */
};

/* killconn_pid_holds - what process pid holds of the banned inodes and
 * of the other clients' */
static enum killconn_holder killconn_pid_holds(int procfd, pid_t pid,
                                               const struct killconn_inodes *banned,
                                               const struct killconn_inodes *others)
{
    char path[64], link[64];
    struct dirent *de;
    DIR *dir;
    ssize_t n;
    uint32_t inode;
    bool holds = false, shared = false, unreadable = false;

    snprintf(path, sizeof path, "%ld/fd", (long)pid);
    int fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == EACCES || errno == EPERM ? KILLCONN_UNREADABLE : KILLCONN_NONE;
    dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return KILLCONN_NONE;
    }
    while (!shared && (de = readdir(dir)) != NULL) {
        n = readlinkat(dirfd(dir), de->d_name, link, sizeof link - 1);
        if (n < 0) {
            unreadable |= errno == EACCES || errno == EPERM;
            continue;
        }
        link[n] = '\0';
        inode = killconn_fd_inode(link);
        if (inode == 0)
            continue;
        holds |= killconn_inodes_has(banned, inode);
        shared |= killconn_inodes_has(others, inode);
    }
    closedir(dir);
    if (shared)
        return holds ? KILLCONN_SHARED : KILLCONN_NONE;
    return holds ? KILLCONN_BANNED : unreadable ? KILLCONN_UNREADABLE : KILLCONN_NONE;
}

/* killconn_pid_of - the PID named by a /proc entry, or 0 for other entries */
static pid_t killconn_pid_of(const char *name)
{
    long v = 0;

    for (; *name != '\0'; name++) {
        if (*name < '0' || *name > '9' || v > 99999999)
            return 0;
        v = v * 10 + (*name - '0');
    }
    return (pid_t)v;
}

/* killconn_signal_one - SIGTERM to pid if it holds banned connections and
 * no other client's, through a pidfd: the pidfd names one process, whose
 * descriptors are read again once it is held, against the other clients'
 * connections as the kernel has them then (killconn_others: a client that
 * came since the walk counts), and the signal goes to that process or
 * nowhere. Had the process ended and its PID gone to another between the
 * reading and the signal, pidfd_send_signal() finds it gone (ESRCH): a
 * reused PID is never hit. Returns 1 (signalled), 0 (gone, or no longer
 * holding one), 2 (it serves other clients too), -1 (refused, errno set)
 * or -2 (the dump failed, err set) */
static int killconn_signal_one(int procfd, pid_t pid, int nlfd, const struct killconn_filter *f,
                               const struct killconn_inodes *banned, char *err, size_t errsize)
{
    struct killconn_inodes others = {NULL, 0};
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? 0 : -1;
    int rc = killconn_others(nlfd, f, &others, err, errsize) < 0 ? -2 : 0;
    enum killconn_holder holds = rc < 0 ? KILLCONN_NONE
                                 : killconn_pid_holds(procfd, pid, banned, &others);
    if (holds == KILLCONN_SHARED)
        rc = 2;
    else if (holds == KILLCONN_BANNED)
        rc = syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) == 0 ? 1
             : errno == ESRCH ? 0 : -1;
    int saved = errno;
    close(pidfd);
    free(others.v);
    errno = saved;
    return rc;
}

/* killconn_signal_error - why no owner could be signalled */
static void killconn_signal_error(int e, char *err, size_t errsize)
{
    if (e == ENOSYS)
        snprintf(err, errsize, "cannot signal the owner: no pidfd_open() or "
                 "pidfd_send_signal() (Linux 5.3 or later needed)");
    else if (e == EPERM)
        snprintf(err, errsize, "cannot signal the owner (CAP_KILL needed)");
    else
        snprintf(err, errsize, "cannot signal the owner: %s", strerror(e));
}

/* killconn_signal_owners - SIGTERM every process (but 1 and ourselves)
 * holding banned connections and no other client's: a process that serves
 * many clients at once (postscreen, breakwater serve) is left alone, its
 * other clients are not the ban's. The number signalled, or -1 with err
 * set if none could be and something was in the way */
static int killconn_signal_owners(int nlfd, const struct killconn_filter *f,
                                  const struct killconn_inodes *banned, char *err,
                                  size_t errsize)
{
    static const struct killconn_inodes none = {NULL, 0};
    pid_t self = getpid(), pid, shared_pid = 0;
    struct dirent *de;
    DIR *proc = opendir("/proc");
    int signalled = 0, unreadable = 0, refused = 0, refused_errno = 0, failed = 0;

    if (proc == NULL) {
        snprintf(err, errsize, "/proc: %s", strerror(errno));
        return -1;
    }
    while (failed == 0 && (de = readdir(proc)) != NULL) {
        pid = killconn_pid_of(de->d_name);
        if (pid <= 1 || pid == self)
            continue;
        enum killconn_holder holds = killconn_pid_holds(dirfd(proc), pid, banned, &none);
        if (holds == KILLCONN_UNREADABLE)
            unreadable++;
        if (holds != KILLCONN_BANNED)
            continue;
        int sent = killconn_signal_one(dirfd(proc), pid, nlfd, f, banned, err, errsize);
        if (sent == 1)
            signalled++;
        else if (sent == 2)
            shared_pid = pid;
        else if (sent == -1)
            refused++, refused_errno = errno;
        else if (sent == -2)
            failed = 1; /* err says why */
    }
    closedir(proc);
    if (failed)
        return -1;
    if (signalled == 0 && refused > 0) {
        killconn_signal_error(refused_errno, err, errsize);
        return -1;
    }
    if (signalled == 0 && shared_pid != 0) {
        snprintf(err, errsize, "not signalled: process %ld also serves other clients "
                 "(watch_kill = socket ends only the banned connections)", (long)shared_pid);
        return -1;
    }
    if (signalled == 0 && unreadable > 0) {
        snprintf(err, errsize, "cannot read /proc/PID/fd of %d processes "
                 "(CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE needed)", unreadable);
        return -1;
    }
    return signalled;
}

/* killconn_processes - see killconn.h */
int killconn_processes(const struct addr *addrs, size_t naddrs, const uint16_t *ports,
                       size_t nports, char *err, size_t errsize)
{
    struct killconn_list list = {NULL, 0, 0};
    struct killconn_inodes banned = {NULL, 0};
    struct killconn_filter f;
    if (nports == 0 || naddrs == 0)
        return 0;
    if (killconn_filter_init(&f, addrs, naddrs, ports, nports) < 0) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    int fd = killconn_open(err, errsize);
    int result = fd < 0 ? -1 : killconn_collect(fd, &f, &list, err, errsize);
    if (result == 0 && killconn_inodes_of(&list, &banned) < 0) {
        snprintf(err, errsize, "out of memory");
        result = -1;
    }
    if (result == 0 && banned.n > 0)
        result = killconn_signal_owners(fd, &f, &banned, err, errsize);
    if (fd >= 0)
        close(fd);
    free(banned.v);
    free(list.items);
    free(f.addrs);
    return result;
}
