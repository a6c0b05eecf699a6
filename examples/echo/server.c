/* The echo server: a listener actor and one actor per connection.
 *
 * Both watch in level mode (the default): a readiness message means "ready
 * now", and the watch re-arms by itself after the handler, so a handler
 * does one accept batch or one read and returns; if more is there another
 * message follows, and other actors get their turn in between. */
#define _GNU_SOURCE /* accept4 */

#include "echo.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MSG_IO = 1 };

/* Connections one listener message accepts at most before it lets the
 * connection actors run (more follow in the next message). */
#define ACCEPT_BATCH 64
#define READ_BUF     16384

int
echo_raise_nofile(uint64_t need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("getrlimit");
        return -1;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("setrlimit");
        }
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr,
                "echo: %llu file descriptors needed but RLIMIT_NOFILE allows "
                "%llu (hard limit %llu); raise it (ulimit -Hn, "
                "/etc/security/limits.conf) or use fewer connections\n",
                (unsigned long long)need, (unsigned long long)rl.rlim_cur,
                (unsigned long long)rl.rlim_max);
        return -1;
    }
    return 0;
}

int
echo_listen_socket(uint16_t port, struct sockaddr_in *sa)
{
    socklen_t len = sizeof *sa;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)sa, sizeof *sa) != 0 ||
        listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)sa, &len) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- One connection ---------------------------------------------------- */

struct conn {
    int fd;
    tr_watch w;
    char *pend; /* echo bytes the socket had no room for */
    size_t npend, off;
};

static tr_status
conn_init(tr_cx *cx, struct conn *self, const int *fd)
{
    tr_status st;

    self->fd = *fd;
    st = tr_watch_fd(cx, self->fd, TR_IO_READ, MSG_IO, 0, &self->w);
    if (st != TR_OK) {
        close(self->fd); /* no terminate hook after a failed init */
    }
    return st;
}

/* Writes what is pending; true when all of it went. */
static bool
flush(struct conn *self)
{
    while (self->off < self->npend) {
        ssize_t k =
            write(self->fd, self->pend + self->off, self->npend - self->off);

        if (k < 0) {
            return false; /* EAGAIN: wait for room; an error: read sees it */
        }
        self->off += (size_t)k;
    }
    free(self->pend);
    self->pend = NULL;
    self->npend = self->off = 0;
    return true;
}

static tr_status
conn_io(tr_cx *cx, struct conn *self, const tr_io_event *ev)
{
    char buf[READ_BUF];
    ssize_t n, k;

    if (self->pend != NULL) {
        /* Waiting for room (watching WRITE only): read nothing more until
         * the echo is out, so a client that does not read cannot make us
         * buffer without bound. */
        if (flush(self)) {
            return tr_watch_modify(cx, self->w, TR_IO_READ);
        }
        return (ev->events & (TR_IO_ERROR | TR_IO_HUP)) ? tr_exit(cx, 0, NULL)
                                                        : TR_OK;
    }
    n = read(self->fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return tr_exit(cx, 0, NULL); /* closed or reset: terminate cleans */
    }
    if (n < 0) {
        return TR_OK; /* nothing after all; the watch re-arms */
    }
    k = write(self->fd, buf, (size_t)n);
    if (k < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            return tr_exit(cx, 0, NULL);
        }
        k = 0;
    }
    if (k < n) {
        self->pend = malloc((size_t)(n - k));
        if (self->pend == NULL) {
            return tr_exit(cx, 0, NULL);
        }
        memcpy(self->pend, buf + k, (size_t)(n - k));
        self->npend = (size_t)(n - k);
        return tr_watch_modify(cx, self->w, TR_IO_WRITE);
    }
    return TR_OK;
}

static tr_status
conn_term(tr_cx *cx, struct conn *self, const tr_reason *why)
{
    (void)why;
    (void)tr_unwatch(cx, self->w); /* before close: see troupe/io.h */
    close(self->fd);
    free(self->pend);
    return TR_OK;
}

TR_ACTOR(echo_conn, struct conn, TR_ON_INIT(int, conn_init),
         TR_ON(MSG_IO, tr_io_event, conn_io), TR_ON_TERMINATE(conn_term));

/* ---- The listener ------------------------------------------------------ */

struct listener {
    int fd;
    tr_watch w;
    uint64_t refused; /* connections closed for want of resources */
};

static tr_status
listener_init(tr_cx *cx, struct listener *self, const int *fd)
{
    self->fd = *fd;
    return tr_watch_fd(cx, self->fd, TR_IO_READ, MSG_IO, 0, &self->w);
}

static tr_status
listener_io(tr_cx *cx, struct listener *self, const tr_io_event *ev)
{
    int one = 1;

    (void)ev;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int c = accept4(self->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        tr_spawn_opts o = {.arg = &c, .arg_len = sizeof c};
        tr_ref r;

        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: the pending connection stays queued
                 * and the level watch fires again; say so once. */
                if (self->refused++ == 0) {
                    fprintf(stderr, "echo: accept: %s\n", strerror(errno));
                }
            }
            break; /* EAGAIN: all taken; others: try again later */
        }
        (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (tr_spawn(cx, &echo_conn, &o, &r) != TR_OK) {
            close(c); /* the actor limit or no memory: refuse */
            self->refused++;
        }
    }
    return TR_OK;
}

static tr_status
listener_term(tr_cx *cx, struct listener *self, const tr_reason *why)
{
    (void)why;
    (void)tr_unwatch(cx, self->w);
    close(self->fd);
    return TR_OK;
}

TR_ACTOR(echo_listener, struct listener, TR_ON_INIT(int, listener_init),
         TR_ON(MSG_IO, tr_io_event, listener_io),
         TR_ON_TERMINATE(listener_term));

tr_status
echo_serve(tr_runtime *rt, int lfd, tr_ref *out)
{
    tr_spawn_opts o = {.arg = &lfd, .arg_len = sizeof lfd};

    return tr_spawn(rt, &echo_listener, &o, out);
}
