/* The reactor: epoll_wait in a loop on its own thread, an eventfd to wake
 * it, and a stop flag. */
#include "runtime/reactor.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct tr__reactor {
    int epfd;
    int evfd;
    pthread_t thread;
    tr__reactor_fn fn;
    tr__reactor_idle_fn idle;
    void *ctx;
    /* Set by tr__reactor_free (release) before it wakes the thread; the
     * thread loads it (acquire) after each wake-up. */
    _Atomic bool stopping;
};

static void
drain_eventfd(tr__reactor *r)
{
    uint64_t v;

    /* Nonblocking: one read resets the counter; EAGAIN when another wake
     * was already consumed. EINTR: try again. */
    while (read(r->evfd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

static void *
reactor_main(void *arg)
{
    tr__reactor *r = arg;
    struct epoll_event ev[TR__REACTOR_BATCH];
    int timeout = -1;

    for (;;) {
        int n = epoll_wait(r->epfd, ev, TR__REACTOR_BATCH, timeout);

        if (n < 0) {
            /* EINTR: a signal for this thread; anything else cannot happen
             * with a valid epoll fd and buffer. Either way, wait again. */
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == 0) {
                drain_eventfd(r);
            } else {
                r->fn(r->ctx, ev[i].data.u64, ev[i].events);
            }
        }
        /* acquire: pairs with the release store in tr__reactor_free. */
        if (atomic_load_explicit(&r->stopping, memory_order_acquire)) {
            return NULL;
        }
        timeout = r->idle(r->ctx);
    }
}

tr_status
tr__reactor_new(tr__reactor **out, tr__reactor_fn fn, tr__reactor_idle_fn idle,
                void *ctx)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    tr__reactor *r = tr__calloc(1, sizeof *r);
    tr_status st = TR_EFAILED;

    if (r == NULL) {
        return TR_ENOMEM;
    }
    r->fn = fn;
    r->idle = idle;
    r->ctx = ctx;
    atomic_init(&r->stopping, false);
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        st = errno == ENOMEM ? TR_ENOMEM : TR_EFAILED;
        goto fail_epoll;
    }
    r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->evfd < 0) {
        st = errno == ENOMEM ? TR_ENOMEM : TR_EFAILED;
        goto fail_eventfd;
    }
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) != 0) {
        st = errno == ENOMEM ? TR_ENOMEM : TR_EFAILED;
        goto fail_add;
    }
    if (pthread_create(&r->thread, NULL, reactor_main, r) != 0) {
        goto fail_add;
    }
    *out = r;
    return TR_OK;

fail_add:
    close(r->evfd);
fail_eventfd:
    close(r->epfd);
fail_epoll:
    tr__free(r);
    return st;
}

static int
ctl(tr__reactor *r, int op, int fd, uint32_t events, uint64_t key)
{
    struct epoll_event ev = {.events = events, .data.u64 = key};

    return epoll_ctl(r->epfd, op, fd, &ev) == 0 ? 0 : errno;
}

int
tr__reactor_add(tr__reactor *r, int fd, uint32_t events, uint64_t key)
{
    return ctl(r, EPOLL_CTL_ADD, fd, events, key);
}

int
tr__reactor_mod(tr__reactor *r, int fd, uint32_t events, uint64_t key)
{
    return ctl(r, EPOLL_CTL_MOD, fd, events, key);
}

int
tr__reactor_del(tr__reactor *r, int fd)
{
    return ctl(r, EPOLL_CTL_DEL, fd, 0, 0);
}

void
tr__reactor_wake(tr__reactor *r)
{
    uint64_t one = 1;

    /* EAGAIN only when the counter is saturated: a wake is pending anyway.
     * EINTR: try again. */
    while (write(r->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void
tr__reactor_free(tr__reactor *r)
{
    if (r == NULL) {
        return;
    }
    /* release: the thread's acquire load sees it after the wake-up. */
    atomic_store_explicit(&r->stopping, true, memory_order_release);
    tr__reactor_wake(r);
    pthread_join(r->thread, NULL);
    close(r->evfd);
    close(r->epfd);
    tr__free(r);
}
