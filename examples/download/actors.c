/* The actor client: one actor per download, on the runtime's few workers.
 *
 * Each actor connects without blocking and watches its socket for writing
 * (the connect is done when it is writable), sends the request, switches
 * the watch to reading and feeds what comes to the response parser until
 * the server closes. Between messages an actor is its state below (about
 * 330 bytes) and a watch; it has no stack of its own, and reads into a
 * buffer on the stack of whichever worker runs it.
 *
 * It is a small state machine on readiness messages: the async handlers'
 * awaits (troupe/actor.h) wait for replies, timers and held sends, not
 * for a descriptor, so they would not make it shorter. */
#define _GNU_SOURCE /* pthread_condattr_setclock */

#include "download.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum { MSG_IO = 1 };

/* Reads one message does at most before the other actors get their turn
 * (the level watch fires again if more is there). */
#define READS_PER_TURN 4

/* What the actors of a run share with fetch_actors(). */
struct run {
    uint32_t n;
    uint64_t page_bytes;
    pthread_mutex_t lock; /* protects done and *out */
    pthread_cond_t cond;  /* signalled when done reaches n */
    uint32_t done;
    struct fetch_report *out;
    struct flight flight;
};

struct dl_arg {
    struct run *run;
    uint32_t page;
    struct sockaddr_in sa;
};

struct dl {
    struct sock s; /* first: sock_term() ends it */
    struct run *run;
    bool receiving; /* the request is out; watching for reading */
    uint32_t sent;  /* request bytes sent */
    struct http_resp resp;
};

/* Counts this download as done (failed with `what` unless it is NULL)
 * and ends the actor. */
static tr_status
finish(tr_cx *cx, struct dl *self, const char *what, int err)
{
    struct run *r = self->run;

    flight_end(&r->flight);
    pthread_mutex_lock(&r->lock);
    if (what == NULL) {
        r->out->ok++;
    } else {
        r->out->failed++;
        report_error(r->out, what, err);
    }
    if (++r->done == r->n) {
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    return sock_exit(cx, &self->s);
}

static tr_status
dl_init(tr_cx *cx, struct dl *self, const struct dl_arg *a)
{
    tr_status st;

    self->run = a->run;
    flight_begin(&self->run->flight);
    http_resp_init(&self->resp, a->page, a->run->page_bytes);
    self->s.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->s.fd < 0) {
        return finish(cx, self, "socket", errno);
    }
    if (connect(self->s.fd, (const struct sockaddr *)&a->sa, sizeof a->sa) !=
            0 &&
        errno != EINPROGRESS) {
        return finish(cx, self, "connect", errno);
    }
    /* Writable once the connect is done (or failed: ERROR or HUP). */
    st = tr_watch_fd(cx, self->s.fd, TR_IO_WRITE, MSG_IO, 0, &self->s.w);
    return st == TR_OK ? TR_OK : finish(cx, self, tr_strerror(st), 0);
}

static tr_status
dl_send(tr_cx *cx, struct dl *self, const tr_io_event *ev)
{
    char req[HTTP_HEAD_MAX];
    size_t n = http_request(self->resp.page, req);
    ssize_t k;
    tr_status st;

    if (ev->error != 0 || (ev->events & (TR_IO_ERROR | TR_IO_HUP))) {
        return finish(cx, self, "connect", ev->error);
    }
    k = send(self->s.fd, req + self->sent, n - self->sent, MSG_NOSIGNAL);
    if (k < 0) {
        return errno == EAGAIN || errno == EINTR
                   ? TR_OK
                   : finish(cx, self, "send", errno);
    }
    self->sent += (uint32_t)k;
    if (self->sent < n) {
        return TR_OK; /* the rest when there is room */
    }
    self->receiving = true;
    st = tr_watch_modify(cx, self->s.w, TR_IO_READ);
    return st == TR_OK ? TR_OK : finish(cx, self, tr_strerror(st), 0);
}

static tr_status
dl_io(tr_cx *cx, struct dl *self, const tr_io_event *ev)
{
    char buf[IO_CHUNK];

    if (!self->receiving) {
        return dl_send(cx, self, ev);
    }
    for (int i = 0; i < READS_PER_TURN; i++) {
        ssize_t k = recv(self->s.fd, buf, sizeof buf, 0);
        const char *err;

        if (k < 0) {
            return errno == EAGAIN || errno == EINTR
                       ? TR_OK
                       : finish(cx, self, "recv", errno);
        }
        err = k == 0 ? http_resp_end(&self->resp)
                     : http_resp_feed(&self->resp, buf, (size_t)k);
        if (k == 0 || err != NULL) {
            return finish(cx, self, err, 0);
        }
    }
    return TR_OK;
}

TR_ACTOR(download_actor, struct dl, TR_ON_INIT(struct dl_arg, dl_init),
         TR_ON(MSG_IO, tr_io_event, dl_io), TR_ON_TERMINATE(sock_term));

/* Waits until every download is done or FETCH_TIMEOUT_S passed; returns
 * how many are done. */
static uint32_t
wait_done(struct run *r)
{
    struct timespec ts;
    uint32_t done;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += FETCH_TIMEOUT_S;
    pthread_mutex_lock(&r->lock);
    while (r->done < r->n &&
           pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT) {
    }
    done = r->done;
    pthread_mutex_unlock(&r->lock);
    return done;
}

int
fetch_actors(const struct sockaddr_in *sa, uint32_t n, uint64_t page_bytes,
             struct fetch_report *out)
{
    struct run r = {.n = n, .page_bytes = page_bytes, .out = out};
    pthread_condattr_t ca;
    tr_runtime *rt = NULL;
    tr_stats stats;
    tr_status st;
    uint32_t done;
    double t0;

    st = tr_runtime_new(&rt, NULL);
    if (st != TR_OK) {
        report_error(out, tr_strerror(st), 0);
        return 1;
    }
    pthread_mutex_init(&r.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r.cond, &ca);
    pthread_condattr_destroy(&ca);
    t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        struct dl_arg a = {&r, i, *sa};
        tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};
        tr_ref ref;

        st = tr_spawn(rt, &download_actor, &o, &ref);
        if (st != TR_OK) {
            pthread_mutex_lock(&r.lock);
            out->failed++;
            report_error(out, tr_strerror(st), 0);
            r.done++;
            pthread_mutex_unlock(&r.lock);
        }
    }
    done = wait_done(&r);
    out->seconds = now_s() - t0;
    out->in_flight = atomic_load_explicit(&r.flight.peak, memory_order_relaxed);
    if (done < n) {
        char what[64];

        snprintf(what, sizeof what, "%u downloads still running after %d s",
                 n - done, FETCH_TIMEOUT_S);
        pthread_mutex_lock(&r.lock);
        report_error(out, what, 0);
        pthread_mutex_unlock(&r.lock);
    }
    if (tr_runtime_stats(rt, &stats) == TR_OK) {
        out->workers = stats.workers;
    }
    tr_runtime_destroy(&rt); /* ends what still runs: then r is unused */
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
    return out->ok == n ? 0 : 1;
}
