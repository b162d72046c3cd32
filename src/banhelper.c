/*
 * banhelper - the privileged firewall helper. See banhelper.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "banhelper.h"
#include "banproto.h"
#include "fw.h"
#include "log.h"

#define BANHELPER_SOCKETS_MAX 64
#define BANHELPER_SOCKBUF (1 << 20)

/* banhelper_batch - read what waits on fd, apply it, answer; returns -1
 * when the other end is gone */
static int banhelper_batch(struct fw *fw, int fd, uint32_t max_seconds,
                           struct fw_ban *bans, struct log_limit *refused)
{
    struct banproto_request req;
    size_t count = 0, malformed = 0;
    uint32_t seq = 0;
    const char *why = NULL;
    bool any = false;

    while (count + malformed < BANHELPER_BATCH) {
        ssize_t n = recv(fd, &req, sizeof req, MSG_DONTWAIT | MSG_TRUNC);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return any ? 0 : -1;
        if (n < 0)
            break;
        any = true;
        uint32_t s;
        if (banproto_request_parse(&req, (size_t)n, max_seconds, &bans[count], &s, &why) == 0) {
            seq = s;
            count++;
        } else {
            malformed++;
            log_limited(refused, (double)time(NULL), LOG_LEVEL_ERROR,
                        "ban helper: refused a malformed request: %s", why);
        }
    }
    if (!any)
        return 0;
    char err[FW_ERR_MAX] = "";
    size_t failed = count > 0 ? fw_apply(fw, bans, count, err, sizeof err) : 0;
    if (malformed > 0 && err[0] == '\0')
        snprintf(err, sizeof err, "malformed request: %s", why);
    struct banproto_reply reply;
    banproto_reply_make(&reply, seq, (uint32_t)(count - failed), (uint32_t)(failed + malformed),
                        err);
    (void)send(fd, &reply, sizeof reply, MSG_DONTWAIT | MSG_NOSIGNAL);
    return 0;
}

/* banhelper_serve - the helper's loop: until every socket has closed */
static int banhelper_serve(struct fw *fw, const struct conf *conf, int *fds, size_t count)
{
    struct pollfd pfd[BANHELPER_SOCKETS_MAX];
    struct fw_ban *bans = malloc(BANHELPER_BATCH * sizeof *bans);
    struct log_limit refused = {0};
    size_t open = count;

    if (bans == NULL)
        return 1;
    for (size_t i = 0; i < count; i++)
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    while (open > 0) {
        if (poll(pfd, count, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("ban helper: poll: %s", strerror(errno));
            break;
        }
        for (size_t i = 0; i < count; i++) {
            if (pfd[i].fd < 0 || pfd[i].revents == 0)
                continue;
            if (banhelper_batch(fw, pfd[i].fd, (uint32_t)conf->ban_time_max, bans,
                                &refused) < 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open--;
            }
        }
    }
    free(bans);
    return 0;
}

/* banhelper_child - runs in the forked helper; never returns */
static void banhelper_child(const struct conf *conf, const struct privsep_user *user,
                            int *fds, size_t count, int status_fd)
{
    char err[512] = "";
    struct fw *fw = fw_open(conf, err, sizeof err);
    if (fw != NULL && user != NULL && privsep_drop(user, true, err, sizeof err) < 0) {
        fw_close(fw);
        fw = NULL;
    }
    if (fw != NULL)
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0); /* after the drop, which clears it */
    (void)!write(status_fd, err, strlen(err)); /* nothing written = ready */
    close(status_fd);
    if (fw == NULL)
        _exit(1);
    signal(SIGINT, SIG_IGN); /* the daemon decides when we stop: our sockets close */
    int status = banhelper_serve(fw, conf, fds, count);
    fw_close(fw);
    _exit(status);
}

/* banhelper_pairs - count socket pairs: [i][0] the daemon's, [i][1] ours */
static int banhelper_pairs(int (*pair)[2], size_t count, char *err, size_t errsize)
{
    int size = BANHELPER_SOCKBUF;
    for (size_t i = 0; i < count; i++) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair[i]) < 0) {
            snprintf(err, errsize, "ban helper: socketpair: %s", strerror(errno));
            while (i-- > 0) {
                close(pair[i][0]);
                close(pair[i][1]);
            }
            return -1;
        }
        for (int end = 0; end < 2; end++) {
            (void)setsockopt(pair[i][end], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
            (void)setsockopt(pair[i][end], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        }
        fcntl(pair[i][0], F_SETFL, O_NONBLOCK);
    }
    return 0;
}

pid_t banhelper_start(const struct conf *conf, const struct privsep_user *user,
                      int *fds, size_t count, char *err, size_t errsize)
{
    int pair[BANHELPER_SOCKETS_MAX][2], status[2];
    if (count > BANHELPER_SOCKETS_MAX || banhelper_pairs(pair, count, err, errsize) < 0)
        return -1;
    pid_t pid = pipe2(status, O_CLOEXEC) < 0 ? -1 : fork();
    if (pid == 0) {
        close(status[0]);
        int theirs[BANHELPER_SOCKETS_MAX];
        for (size_t i = 0; i < count; i++) {
            close(pair[i][0]);
            theirs[i] = pair[i][1];
        }
        banhelper_child(conf, user, theirs, count, status[1]);
    }
    for (size_t i = 0; i < count; i++) {
        close(pair[i][1]);
        fds[i] = pair[i][0];
    }
    if (pid < 0) {
        snprintf(err, errsize, "ban helper: cannot start: %s", strerror(errno));
        for (size_t i = 0; i < count; i++)
            close(fds[i]);
        return -1;
    }
    close(status[1]);
    char why[512];
    ssize_t n;
    while ((n = read(status[0], why, sizeof why - 1)) < 0 && errno == EINTR)
        ;
    close(status[0]);
    if (n != 0) {
        snprintf(err, errsize, "%s", n > 0 ? (why[n] = '\0', why) : "ban helper: no answer");
        for (size_t i = 0; i < count; i++)
            close(fds[i]);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}
