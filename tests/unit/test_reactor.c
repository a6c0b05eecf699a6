/* White-box tests of runtime/reactor.c: readiness reaches the callback with
 * its key and epoll bits, one-shot registrations stay quiet until re-armed,
 * a removed registration reports nothing, the idle callback runs after each
 * batch and after a wake-up and its timeout is honoured, epoll_ctl errors
 * come back as errno values, and free joins the thread. */
#include "tr_test.h"

#include "runtime/reactor.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct fx {
    _Atomic uint64_t last_key;
    _Atomic uint32_t last_events;
    _Atomic uint32_t events; /* callbacks */
    _Atomic uint32_t idles;  /* idle callbacks */
    _Atomic int timeout;     /* what idle returns */
} fx;

static void
on_ready(void *ctx, uint64_t key, uint32_t events)
{
    fx *f = ctx;

    atomic_store(&f->last_key, key);
    atomic_store(&f->last_events, events);
    atomic_fetch_add(&f->events, 1);
}

static int
on_idle(void *ctx)
{
    fx *f = ctx;

    atomic_fetch_add(&f->idles, 1);
    return atomic_load(&f->timeout);
}

#define WAIT_UNTIL(cond)                                                       \
    do {                                                                       \
        uint64_t end_ = tr_test_now_ns() + tr_test_scaled_ms(5000) * 1000000u; \
        while (!(cond)) {                                                      \
            assert_true(tr_test_now_ns() < end_);                              \
            tr_test_sleep_ms(1);                                               \
        }                                                                      \
    } while (0)

static void
test_readiness_and_rearm(void **state)
{
    fx f = {0};
    tr__reactor *r;
    int p[2];
    char c = 'x';

    (void)state;
    atomic_store(&f.timeout, -1);
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    TR_ASSERT_OK(tr__reactor_new(&r, on_ready, on_idle, &f));
    assert_int_equal(tr__reactor_add(r, p[0], EPOLLIN | EPOLLONESHOT, 42), 0);
    assert_int_equal(write(p[1], &c, 1), 1);
    WAIT_UNTIL(atomic_load(&f.events) == 1);
    assert_int_equal(atomic_load(&f.last_key), 42);
    assert_true(atomic_load(&f.last_events) & EPOLLIN);
    assert_true(atomic_load(&f.idles) >= 1);
    /* One-shot: still readable, but disarmed until re-armed. */
    tr_test_sleep_ms(20);
    assert_int_equal(atomic_load(&f.events), 1);
    assert_int_equal(tr__reactor_mod(r, p[0], EPOLLIN | EPOLLONESHOT, 43), 0);
    WAIT_UNTIL(atomic_load(&f.events) == 2);
    assert_int_equal(atomic_load(&f.last_key), 43);
    /* Removed: nothing more, even when re-armed state would fire. */
    assert_int_equal(tr__reactor_del(r, p[0]), 0);
    assert_int_equal(write(p[1], &c, 1), 1);
    tr_test_sleep_ms(20);
    assert_int_equal(atomic_load(&f.events), 2);
    tr__reactor_free(r);
    close(p[0]);
    close(p[1]);
}

static void
test_wake_and_idle_timeout(void **state)
{
    fx f = {0};
    tr__reactor *r;
    uint32_t n;

    (void)state;
    atomic_store(&f.timeout, -1);
    TR_ASSERT_OK(tr__reactor_new(&r, on_ready, on_idle, &f));
    n = atomic_load(&f.idles);
    tr__reactor_wake(r);
    WAIT_UNTIL(atomic_load(&f.idles) > n);
    assert_int_equal(atomic_load(&f.events), 0); /* the eventfd is internal */
    /* A timeout: idle runs again without any event. */
    atomic_store(&f.timeout, 1);
    tr__reactor_wake(r);
    n = atomic_load(&f.idles);
    WAIT_UNTIL(atomic_load(&f.idles) > n + 5);
    atomic_store(&f.timeout, -1);
    tr__reactor_free(r);
    tr__reactor_free(NULL);
}

static void
test_errors(void **state)
{
    fx f = {0};
    tr__reactor *r;
    char path[] = "/tmp/troupe-reactor-XXXXXX";
    int file = mkstemp(path);
    int p[2];

    (void)state;
    assert_true(file >= 0);
    unlink(path);
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    atomic_store(&f.timeout, -1);
    TR_ASSERT_OK(tr__reactor_new(&r, on_ready, on_idle, &f));
    assert_int_equal(tr__reactor_add(r, file, EPOLLIN, 1), EPERM);
    assert_int_equal(tr__reactor_add(r, -1, EPOLLIN, 1), EBADF);
    assert_int_equal(tr__reactor_mod(r, p[0], EPOLLIN, 1), ENOENT);
    assert_int_equal(tr__reactor_del(r, p[0]), ENOENT);
    assert_int_equal(tr__reactor_add(r, p[0], EPOLLIN, 1), 0);
    assert_int_equal(tr__reactor_add(r, p[0], EPOLLIN, 1), EEXIST);
    tr__reactor_free(r); /* with a registration left: freed with the set */
    close(file);
    close(p[0]);
    close(p[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readiness_and_rearm),
        cmocka_unit_test(test_wake_and_idle_timeout),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
