/* The thread client: one thread per download, each with blocking calls
 * (connect, send, recv until the server closes).
 *
 * The threads are created with the default attributes (NULL), so each
 * has the stack the system gives a thread (8 MiB of address space where
 * `ulimit -s` is 8192), of which it touches what it uses: its 16 KiB
 * read buffer, the response parser and the calls' frames. */
#define _GNU_SOURCE /* pthread_getattr_default_np */

#include "download.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* One download. Written by its thread; read by fetch_threads() after
 * pthread_join(), which orders the two. */
struct job {
    const struct sockaddr_in *sa;
    struct flight *flight;
    uint32_t page;
    uint64_t page_bytes;
    bool started;
    const char *error; /* NULL: the page came and was verified */
    int err;           /* errno of the failed call, or 0 */
};

/* Sends all of buf, the blocking way. */
static bool
send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t k = send(fd, buf, len, MSG_NOSIGNAL);

        if (k < 0 && errno != EINTR) {
            return false;
        }
        if (k > 0) {
            buf += k;
            len -= (size_t)k;
        }
    }
    return true;
}

static const char *
download(struct job *j, int fd)
{
    /* A bound on every blocking call (connect included), so a server that
     * stops answering fails the download instead of hanging the thread. */
    struct timeval tv = {FETCH_TIMEOUT_S, 0};
    struct http_resp r;
    char buf[IO_CHUNK];
    size_t n = http_request(j->page, buf);
    const char *err;

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)j->sa, sizeof *j->sa) != 0) {
        return "connect";
    }
    if (!send_all(fd, buf, n)) {
        return "send";
    }
    http_resp_init(&r, j->page, j->page_bytes);
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof buf, 0);

        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return "recv";
        }
        errno = 0; /* what follows is the protocol's, not a call's */
        err = k == 0 ? http_resp_end(&r) : http_resp_feed(&r, buf, (size_t)k);
        if (k == 0 || err != NULL) {
            return err;
        }
    }
}

static void *
fetch_one(void *arg)
{
    struct job *j = arg;
    int fd;

    flight_begin(j->flight);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        j->error = "socket";
        j->err = errno;
    } else {
        j->error = download(j, fd);
        j->err = j->error != NULL ? errno : 0;
        close(fd);
    }
    flight_end(j->flight);
    return NULL;
}

int
fetch_threads(const struct sockaddr_in *sa, uint32_t n, uint64_t page_bytes,
              struct fetch_report *out)
{
    struct job *jobs = calloc(n, sizeof *jobs);
    pthread_t *tids = calloc(n, sizeof *tids);
    struct flight flight = {0};
    pthread_attr_t attr;
    size_t stack = 0;
    double t0;

    if (jobs == NULL || tids == NULL) {
        report_error(out, "out of memory", 0);
        free(jobs);
        free(tids);
        return 1;
    }
    /* What NULL attributes give: reported, never changed. */
    if (pthread_getattr_default_np(&attr) == 0) {
        (void)pthread_attr_getstacksize(&attr, &stack);
        pthread_attr_destroy(&attr);
    }
    out->stack_bytes = stack;
    t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        int e;

        jobs[i] = (struct job){
            .sa = sa, .flight = &flight, .page = i, .page_bytes = page_bytes};
        e = pthread_create(&tids[i], NULL, fetch_one, &jobs[i]);
        jobs[i].started = e == 0;
        if (e != 0) {
            out->not_started++;
            out->start_error = e;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!jobs[i].started) {
            continue;
        }
        pthread_join(tids[i], NULL);
        if (jobs[i].error == NULL) {
            out->ok++;
        } else {
            out->failed++;
            report_error(out, jobs[i].error, jobs[i].err);
        }
    }
    out->seconds = now_s() - t0;
    out->in_flight = atomic_load_explicit(&flight.peak, memory_order_relaxed);
    free(jobs);
    free(tids);
    return out->ok == n ? 0 : 1;
}
