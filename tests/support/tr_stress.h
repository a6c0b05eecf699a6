/* What the raw stress tests (threads driving internal structures) share:
 * recording the first failure from any thread, a deadline that turns a
 * hang into a failure, and a seeded random number.
 *
 * Embed a tr_stress_fail in the test's state; tr_stress_fail_init it,
 * tr_stress_arm it with the run's time limit, have threads check
 * tr_stress_stop() in their loops, and report `why` when `failed`. */
#ifndef TR_STRESS_H
#define TR_STRESS_H

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "tr_test.h"

typedef struct tr_stress_fail {
    /* Set once, by the first failure; threads stop soon after. release on
     * the store publishes `why`. */
    _Atomic uint32_t failed;
    pthread_mutex_t lock; /* orders the writers of `why` */
    char why[256];
    uint64_t deadline_ns; /* CLOCK_MONOTONIC; set by tr_stress_arm */
    uint64_t timeout_ms;
} tr_stress_fail;

static inline void
tr_stress_fail_init(tr_stress_fail *f)
{
    atomic_init(&f->failed, 0);
    pthread_mutex_init(&f->lock, NULL);
    f->why[0] = '\0';
    f->deadline_ns = UINT64_MAX;
    f->timeout_ms = 0;
}

static inline void
tr_stress_fail_fini(tr_stress_fail *f)
{
    pthread_mutex_destroy(&f->lock);
}

/* The run must be done within timeout_ms of `from_ns`. */
static inline void
tr_stress_arm(tr_stress_fail *f, uint64_t from_ns, uint64_t timeout_ms)
{
    f->timeout_ms = timeout_ms;
    f->deadline_ns = from_ns + timeout_ms * 1000000u;
}

/* Records a failure; the first one's text is kept. Any thread. */
static inline void __attribute__((format(printf, 2, 3)))
tr_stress_failf(tr_stress_fail *f, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&f->lock);
    if (!atomic_load_explicit(&f->failed, memory_order_relaxed)) {
        va_start(ap, fmt);
        vsnprintf(f->why, sizeof f->why, fmt, ap);
        va_end(ap);
    }
    atomic_store_explicit(&f->failed, 1, memory_order_release);
    pthread_mutex_unlock(&f->lock);
}

/* True once something failed or the deadline passed (which it records as
 * the failure). Any thread. */
static inline bool
tr_stress_stop(tr_stress_fail *f)
{
    if (atomic_load_explicit(&f->failed, memory_order_acquire)) {
        return true;
    }
    if (tr_test_now_ns() > f->deadline_ns) {
        tr_stress_failf(f, "not done before the deadline (%" PRIu64 " ms)",
                        f->timeout_ms);
        return true;
    }
    return false;
}

/* A number in [0, n) from a splitmix64 state. */
static inline uint32_t
tr_stress_rnd(uint64_t *state, uint32_t n)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

#endif
