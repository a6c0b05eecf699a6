/* The load client: one actor per connection, each with one 32-byte
 * message in flight at a time.
 *
 * Actors rather than threads: 10,000 client connections as threads would
 * cost 10,000 stacks and as many context switches per round, and the
 * client would be measured as much as the server. As actors they run on
 * the runtime's few workers, like the server's, and the client costs
 * little next to what it measures. */
#define _GNU_SOURCE /* pthread_cond_timedwait clock, accept4's kin */

#include "echo.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MSG_IO = 1, MSG_GO };

/* How many connections may be opening at once: a wave larger than the
 * listen backlog would see SYNs dropped and retried a second later. */
#define CONNECT_WAVE 512u
/* Latency histogram: 16 sub-buckets per power of two (6% resolution). */
#define HIST_SUB  16u
#define HIST_SIZE (64u * HIST_SUB)

/* What every client actor of a run shares with echo_load(). */
struct run {
    uint32_t msgs;
    _Atomic uint64_t hist[HIST_SIZE];
    _Atomic uint64_t connected, done, errors, messages;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when `connected` or `done` moves */
};

/* One message: who sent it, which one, when. */
struct ping {
    uint64_t conn, seq, t_ns, check;
};

struct client {
    struct run *run;
    uint64_t id;
    int fd;
    tr_watch w;
    bool open;     /* connect finished */
    uint32_t sent; /* messages sent */
    uint32_t got;  /* bytes of the current reply */
    struct ping out, in;
};

struct client_arg {
    struct run *run;
    uint64_t id;
    struct sockaddr_in sa;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t
hist_bucket(uint64_t ns)
{
    int e;

    if (ns < HIST_SUB) {
        return (uint32_t)ns;
    }
    e = 63 - __builtin_clzll(ns); /* >= 4 */
    return (uint32_t)(e - 3) * HIST_SUB +
           (uint32_t)((ns >> (e - 4)) & (HIST_SUB - 1));
}

static uint64_t
hist_value(uint32_t b)
{
    uint32_t e = b / HIST_SUB + 3, sub = b % HIST_SUB;

    if (b < HIST_SUB) {
        return b;
    }
    return ((uint64_t)(HIST_SUB + sub)) << (e - 4);
}

static void
run_signal(struct run *r, _Atomic uint64_t *counter)
{
    pthread_mutex_lock(&r->lock);
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Ends this connection: counts it (as an error if `failed`). */
static tr_status
finish(tr_cx *cx, struct client *self, bool failed)
{
    if (failed) {
        atomic_fetch_add_explicit(&self->run->errors, 1, memory_order_relaxed);
        if (!self->open) {
            run_signal(self->run, &self->run->connected);
        }
    }
    run_signal(self->run, &self->run->done);
    return tr_exit(cx, 0, NULL);
}

static bool
send_ping(struct client *self)
{
    struct ping p = {self->id, self->sent, now_ns(),
                     self->id * 31 + self->sent};

    self->out = p;
    self->sent++;
    self->got = 0;
    /* One message in flight into an empty socket buffer: all or error. */
    return write(self->fd, &p, sizeof p) == (ssize_t)sizeof p;
}

static tr_status
client_init(tr_cx *cx, struct client *self, const struct client_arg *a)
{
    int one = 1;
    tr_status st;

    self->run = a->run;
    self->id = a->id;
    self->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->fd < 0) {
        return finish(cx, self, true);
    }
    (void)setsockopt(self->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(self->fd, (const struct sockaddr *)&a->sa, sizeof a->sa) != 0 &&
        errno != EINPROGRESS) {
        return finish(cx, self, true);
    }
    /* Writable once the connect is done (or failed: ERROR/HUP). */
    st = tr_watch_fd(cx, self->fd, TR_IO_WRITE, MSG_IO, 0, &self->w);
    return st == TR_OK ? TR_OK : finish(cx, self, true);
}

static tr_status
client_go(tr_cx *cx, struct client *self, const void *unused)
{
    (void)unused;
    return send_ping(self) ? TR_OK : finish(cx, self, true);
}

static tr_status
client_io(tr_cx *cx, struct client *self, const tr_io_event *ev)
{
    ssize_t n;

    if (!self->open) {
        if (ev->error != 0 || (ev->events & (TR_IO_ERROR | TR_IO_HUP))) {
            return finish(cx, self, true);
        }
        self->open = true;
        run_signal(self->run, &self->run->connected);
        return tr_watch_modify(cx, self->w, TR_IO_READ);
    }
    n = read(self->fd, (char *)&self->in + self->got,
             sizeof self->in - self->got);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return TR_OK;
    }
    if (n <= 0) {
        return finish(cx, self, true); /* the server closed or reset */
    }
    self->got += (uint32_t)n;
    if (self->got < sizeof self->in) {
        return TR_OK; /* the rest comes in another message */
    }
    if (memcmp(&self->in, &self->out, sizeof self->in) != 0) {
        return finish(cx, self, true);
    }
    atomic_fetch_add_explicit(
        &self->run->hist[hist_bucket(now_ns() - self->out.t_ns)], 1,
        memory_order_relaxed);
    atomic_fetch_add_explicit(&self->run->messages, 1, memory_order_relaxed);
    if (self->sent == self->run->msgs) {
        return finish(cx, self, false);
    }
    return send_ping(self) ? TR_OK : finish(cx, self, true);
}

static tr_status
client_term(tr_cx *cx, struct client *self, const tr_reason *why)
{
    (void)why;
    if (self->fd >= 0) {
        (void)tr_unwatch(cx, self->w); /* TR_ENOENT if it never watched */
        close(self->fd);
    }
    return TR_OK;
}

TR_ACTOR(echo_client, struct client, TR_ON_INIT(struct client_arg, client_init),
         TR_ON(MSG_IO, tr_io_event, client_io), TR_ON(MSG_GO, void, client_go),
         TR_ON_TERMINATE(client_term));

/* Waits until *counter reaches `target` or the deadline; false on time. */
static bool
run_wait(struct run *r, _Atomic uint64_t *counter, uint64_t target,
         uint64_t deadline_ns)
{
    bool ok = true;

    pthread_mutex_lock(&r->lock);
    while (atomic_load_explicit(counter, memory_order_relaxed) < target) {
        struct timespec ts;
        uint64_t now = now_ns(), wait;

        if (now >= deadline_ns) {
            ok = false;
            break;
        }
        wait = deadline_ns - now < 100000000u ? deadline_ns - now : 100000000u;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)wait;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

static uint64_t
percentile(struct run *r, uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), seen = 0;

    for (uint32_t b = 0; b < HIST_SIZE; b++) {
        seen += atomic_load_explicit(&r->hist[b], memory_order_relaxed);
        if (seen > want) {
            return hist_value(b);
        }
    }
    return 0;
}

int
echo_load(tr_runtime *rt, const struct sockaddr_in *sa, uint32_t conns,
          uint32_t msgs, uint32_t timeout_s, echo_report *out)
{
    struct run *r = calloc(1, sizeof *r);
    tr_ref *refs = calloc(conns ? conns : 1, sizeof *refs);
    pthread_condattr_t ca;
    uint64_t t0, t1, deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
    int rc = -1;

    if (r == NULL || refs == NULL) {
        fprintf(stderr, "echo: out of memory\n");
        goto out;
    }
    r->msgs = msgs;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    t0 = now_ns();
    for (uint32_t i = 0; i < conns; i++) {
        struct client_arg a = {r, i, *sa};
        tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};
        tr_status st;

        /* Waves: at most CONNECT_WAVE connects in progress. */
        if (i >= CONNECT_WAVE &&
            !run_wait(r, &r->connected, i - CONNECT_WAVE + 1, deadline)) {
            fprintf(stderr, "echo: connections stalled at %u\n", i);
            goto fail;
        }
        st = tr_spawn(rt, &echo_client, &o, &refs[i]);
        if (st != TR_OK) {
            fprintf(stderr, "echo: spawn: %s\n", tr_strerror(st));
            goto fail;
        }
    }
    if (!run_wait(r, &r->connected, conns, deadline)) {
        fprintf(stderr, "echo: only %llu of %u connections opened\n",
                (unsigned long long)atomic_load(&r->connected), conns);
        goto fail;
    }
    t1 = now_ns();
    out->connect_ms = (t1 - t0) / 1000000u;
    for (uint32_t i = 0; i < conns; i++) {
        (void)tr_send(rt, refs[i], MSG_GO, NULL, 0); /* TR_EDEAD: failed */
    }
    if (!run_wait(r, &r->done, conns, deadline)) {
        fprintf(stderr, "echo: only %llu of %u connections finished\n",
                (unsigned long long)atomic_load(&r->done), conns);
        goto fail;
    }
    out->seconds = (double)(now_ns() - t1) / 1e9;
    out->messages = atomic_load(&r->messages);
    out->errors = atomic_load(&r->errors);
    out->p50_ns = percentile(r, out->messages, 0.50);
    out->p99_ns = percentile(r, out->messages, 0.99);
    rc = 0;
fail:
    if (rc != 0) {
        for (uint32_t i = 0; i < conns; i++) {
            (void)tr_stop(rt, refs[i]);
        }
        /* Actors may still be running and use `r`: it is left to the
         * process (a failed run ends it). */
        free(refs);
        return rc;
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
out:
    free(refs);
    free(r);
    return rc;
}
