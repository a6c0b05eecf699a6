/* tr_test.h: the one header every troupe test includes first.
 *
 * It pulls in cmocka and the public API, and adds status assertions that
 * print status names rather than numbers (nng src/testing/nuts.h NUTS_PASS),
 * plus the environment knobs that CTest sets per test (see tr_add_test() in
 * cmake/TroupeHelpers.cmake):
 *
 *   TR_TEST_TIMEOUT_MULTIPLIER  scale for every deadline a test waits on;
 *                               1 normally, 3 under ASan, 5 under TSan.
 *   TR_SANITIZER                none, address, thread or undefined.
 *
 * Everything here is static inline or a macro, so a test needs no extra
 * library to use it. */
#ifndef TR_TEST_H
#define TR_TEST_H

/* cmocka 1.1.x uses these types without including their headers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdio.h>
#include <cmocka.h>

#include <errno.h>
#include <time.h>

#include <troupe/troupe.h>

/* Fails the test unless `expr`, evaluated once, yields `st`. The message
 * names both statuses, e.g. "tr_send(...): got EFULL (-4001), expected OK
 * (0)". `st` is also evaluated once. TR_ASSERT_OK wants exactly TR_OK, so a
 * positive status such as TR_PENDING fails it. */
#define TR_ASSERT_STATUS(expr, st)                                             \
    do {                                                                       \
        tr_status tr_test_got_ = (expr);                                       \
        tr_status tr_test_want_ = (st);                                        \
        if (tr_test_got_ != tr_test_want_) {                                   \
            fail_msg("%s: got %s (%d), expected %s (%d)", #expr,               \
                     tr_status_name(tr_test_got_), (int)tr_test_got_,          \
                     tr_status_name(tr_test_want_), (int)tr_test_want_);       \
        }                                                                      \
    } while (0)

/* Fails the test unless `expr`, evaluated once, yields TR_OK. */
#define TR_ASSERT_OK(expr) TR_ASSERT_STATUS(expr, TR_OK)

/* Returns TR_TEST_TIMEOUT_MULTIPLIER as a positive number, or 1 when it is
 * unset or not a positive number. Multiply every deadline by it. */
static inline double
tr_test_timeout_multiplier(void)
{
    const char *s = getenv("TR_TEST_TIMEOUT_MULTIPLIER");
    char *end;
    double m;

    if (s == NULL || *s == '\0') {
        return 1.0;
    }
    m = strtod(s, &end);
    if (*end != '\0' || !(m > 0.0)) {
        return 1.0;
    }
    return m;
}

/* Returns the environment variable `name` as an unsigned integer (decimal,
 * or hex with 0x), or `dflt` when it is unset, empty or not a number. Used
 * for knobs such as TR_STRESS_SECONDS and TR_STRESS_SEED. */
static inline uint64_t
tr_test_env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;

    /* strtoull() would accept leading blanks and a minus sign; we do not. */
    if (s == NULL || *s < '0' || *s > '9') {
        return dflt;
    }
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0') {
        return dflt;
    }
    return (uint64_t)v;
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t
tr_test_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps at least `us` microseconds (resumed after a signal). */
static inline void
tr_test_sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u),
                          (long)(us % 1000000u) * 1000L};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline void
tr_test_sleep_ms(uint64_t ms)
{
    tr_test_sleep_us(ms * 1000u);
}

/* `ms` multiplied by tr_test_timeout_multiplier(). */
static inline uint64_t
tr_test_scaled_ms(uint64_t ms)
{
    return (uint64_t)((double)ms * tr_test_timeout_multiplier());
}

#endif /* TR_TEST_H */
