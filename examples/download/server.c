/* The HTTP server: a listener actor and one actor per connection.
 *
 * A connection's actor watches its socket for reading until the request's
 * blank line is in, waits the server's delay, switches the watch to
 * writing and writes the response as the socket takes it: the header,
 * then the body, generated a chunk at a time from where the last write
 * stopped, so nothing is kept between messages but a count. When it is
 * all out the actor exits and its terminate hook unwatches and closes
 * (Connection: close). */
#define _GNU_SOURCE /* accept4, memmem */

#include "download.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MSG_IO = 1 };

static void
sock_close(tr_cx *cx, struct sock *s)
{
    if (s->fd >= 0) {
        (void)tr_unwatch(cx, s->w); /* first: see troupe/io.h */
        close(s->fd);
        s->fd = -1;
    }
}

tr_status
sock_exit(tr_cx *cx, struct sock *s)
{
    sock_close(cx, s);
    return tr_exit(cx, 0, NULL);
}

tr_status
sock_term(tr_cx *cx, struct sock *self, const tr_reason *why)
{
    (void)why;
    sock_close(cx, self);
    return TR_OK;
}

/* Connections one listener message accepts at most before the connection
 * actors get their turn (if more wait, the level watch fires again). */
#define ACCEPT_BATCH 128

/* What the listener hands each connection, and keeps itself. */
struct conn_arg {
    int fd;
    uint32_t delay_ms;
    uint64_t page_bytes;
};

struct conn {
    struct sock s; /* first: sock_term() ends it */
    uint32_t delay_ms;
    uint64_t page_bytes;
    bool responding; /* the request is in */
    uint32_t page;
    uint32_t nhead; /* reading: request bytes in buf; then: header bytes */
    uint64_t sent;  /* response bytes written */
    uint64_t total; /* header + body */
    char buf[HTTP_HEAD_MAX];
};

static tr_status
conn_init(tr_cx *cx, struct conn *self, const struct conn_arg *a)
{
    tr_status st;

    self->s.fd = a->fd;
    self->delay_ms = a->delay_ms;
    self->page_bytes = a->page_bytes;
    st = tr_watch_fd(cx, self->s.fd, TR_IO_READ, MSG_IO, 0, &self->s.w);
    if (st != TR_OK) {
        close(self->s.fd); /* no terminate hook after a failed init */
    }
    return st;
}

/* Reads what the socket has of the request. Returns 1 once it is all in
 * (the response's header is then in buf), 0 while more is to come, -1
 * when the client closed or reset first. */
static int
conn_read(struct conn *self)
{
    char head[HTTP_HEAD_MAX];
    uint64_t body;
    ssize_t n = read(self->s.fd, self->buf + self->nhead,
                     sizeof self->buf - self->nhead);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return -1;
    }
    if (n < 0) {
        return 0;
    }
    self->nhead += (uint32_t)n;
    if (memmem(self->buf, self->nhead, "\r\n\r\n", 4) == NULL) {
        if (self->nhead < sizeof self->buf) {
            return 0; /* the rest comes in another message */
        }
        self->nhead = 0; /* too long: 400 */
    }
    self->nhead = (uint32_t)http_respond(
        self->buf, self->nhead, self->page_bytes, head, &self->page, &body);
    memcpy(self->buf, head, self->nhead);
    self->total = self->nhead + body;
    return 1;
}

/* Writes what the socket takes; exits once the response is out. */
static tr_status
conn_write(tr_cx *cx, struct conn *self)
{
    char chunk[IO_CHUNK];

    while (self->sent < self->total) {
        size_t n = 0, body;
        ssize_t k;

        if (self->sent < self->nhead) {
            n = self->nhead - (size_t)self->sent;
            memcpy(chunk, self->buf + self->sent, n);
        }
        body = self->total - self->sent - n < sizeof chunk - n
                   ? (size_t)(self->total - self->sent - n)
                   : sizeof chunk - n;
        page_fill(self->page, self->sent + n - self->nhead, chunk + n, body);
        k = send(self->s.fd, chunk, n + body, MSG_NOSIGNAL);
        if (k < 0) {
            return errno == EAGAIN || errno == EINTR ? TR_OK /* wait */
                                                     : sock_exit(cx, &self->s);
        }
        self->sent += (uint64_t)k;
    }
    return sock_exit(cx, &self->s);
}

/* An async handler: it awaits the delay in the middle. Across the await
 * only the state lives (see troupe/actor.h). */
static tr_status
conn_io(tr_cx *cx, struct conn *self, const tr_io_event *ev)
{
    int got;
    tr_status st;

    (void)ev;
    TR_ASYNC_BEGIN(cx);
    if (!self->responding) {
        got = conn_read(self);
        if (got <= 0) {
            return got < 0 ? sock_exit(cx, &self->s) : TR_OK;
        }
        self->responding = true;
        /* The server's latency. The actor waits as a timer, with no
         * thread or stack of its own; other messages wait in its mailbox
         * (a readiness message meanwhile is handled after, by
         * conn_write()). */
        TR_AWAIT_SLEEP(cx, self->delay_ms);
        st = tr_watch_modify(cx, self->s.w, TR_IO_WRITE);
        if (st != TR_OK) {
            return st;
        }
    }
    TR_ASYNC_END(cx, conn_write(cx, self));
}

TR_ACTOR(http_conn, struct conn, TR_ON_INIT(struct conn_arg, conn_init),
         TR_ON(MSG_IO, tr_io_event, conn_io), TR_ON_TERMINATE(sock_term));

struct listener {
    struct sock s;        /* first: sock_term() ends it */
    struct conn_arg conn; /* for each connection, but the fd */
    bool out_of_fds;      /* said so once */
};

static tr_status
listener_init(tr_cx *cx, struct listener *self, const struct conn_arg *a)
{
    self->s.fd = a->fd;
    self->conn = *a;
    return tr_watch_fd(cx, self->s.fd, TR_IO_READ, MSG_IO, 0, &self->s.w);
}

static tr_status
listener_io(tr_cx *cx, struct listener *self, const tr_io_event *ev)
{
    (void)ev;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct conn_arg a = self->conn;
        tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};
        tr_ref r;

        a.fd = accept4(self->s.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (a.fd < 0) {
            /* EAGAIN: all taken. Out of descriptors: the connection stays
             * queued and the level watch fires again. */
            if ((errno == EMFILE || errno == ENFILE) && !self->out_of_fds) {
                self->out_of_fds = true;
                fprintf(stderr, "download: server: accept: %s\n",
                        strerror(errno));
            }
            break;
        }
        if (tr_spawn(cx, &http_conn, &o, &r) != TR_OK) {
            close(a.fd); /* refused: the client sees the connection close */
        }
    }
    return TR_OK;
}

TR_ACTOR(http_listener, struct listener,
         TR_ON_INIT(struct conn_arg, listener_init),
         TR_ON(MSG_IO, tr_io_event, listener_io), TR_ON_TERMINATE(sock_term));

tr_status
http_serve(tr_runtime *rt, int lfd, uint64_t page_bytes, uint32_t delay_ms,
           tr_ref *out)
{
    struct conn_arg a = {lfd, delay_ms, page_bytes};
    tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};

    return tr_spawn(rt, &http_listener, &o, out);
}
