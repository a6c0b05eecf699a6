/* Primitives below every module: allocation, assertions, the monotonic
 * clock, futexes and cache-line layout. No policy lives here.
 *
 * Every allocation goes through tr__alloc/tr__free so there is one path to
 * instrument. */
#ifndef TR_COMMON_H
#define TR_COMMON_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "troupe/status.h"

#ifndef TR_DEBUG
#define TR_DEBUG 0
#endif

/* Assertion tiers: TR_ASSERT (API misuse, TR_DEBUG >= 1), TR_ASSERT_INTERNAL
 * (invariants, >= 2). TR_ALWAYS/TR_NEVER assert in debug builds and stay as
 * checks in release ones. */
#define TR__ABORT(what)                                                        \
    (fprintf(stderr, "troupe: %s:%d: assertion failed: %s\n", __FILE__,        \
             __LINE__, what),                                                  \
     abort())
#if TR_DEBUG >= 1
#define TR_ASSERT(x) ((x) ? (void)0 : TR__ABORT(#x))
#define TR_ALWAYS(x) ((x) ? 1 : (TR__ABORT(#x), 0))
#define TR_NEVER(x)  ((x) ? (TR__ABORT(#x), 1) : 0)
#else
#define TR_ASSERT(x) ((void)0)
#define TR_ALWAYS(x) (x)
#define TR_NEVER(x)  (x)
#endif
#if TR_DEBUG >= 2
#define TR_ASSERT_INTERNAL(x) ((x) ? (void)0 : TR__ABORT(#x))
#else
#define TR_ASSERT_INTERNAL(x) ((void)0)
#endif

#define TR_CACHE_LINE  64
#define TR_LIKELY(x)   __builtin_expect(!!(x), 1)
#define TR_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* The one allocation path: every block comes from the allocator installed
 * with tr_set_allocator() (libc's by default). */
void *tr__alloc(size_t n);
void *tr__calloc(size_t n, size_t size);
/* Makes room for one more element in a growing array *arr of n elements
 * of `elem` bytes and capacity *cap (doubling, from 4); false without
 * memory (then nothing changed). */
bool tr__grow(void **arr, uint32_t n, uint32_t *cap, size_t elem);
void *tr__realloc(void *p, size_t n);
void tr__free(void *p);
/* Memory aligned to `align` (a power of two), for structs with
 * cache-line-aligned fields: tr__alloc_aligned leaves it as the allocator
 * gives it (a large block is then not resident until touched),
 * tr__calloc_aligned zeroes it. Release either with tr__free_aligned. */
void *tr__alloc_aligned(size_t align, size_t n);
void *tr__calloc_aligned(size_t align, size_t n);
void tr__free_aligned(void *p);

/* Counts runtimes alive, so tr_set_allocator can refuse while any is. */
void tr__runtimes_add(int delta);

/* Monotonic time. */
static inline uint64_t
tr__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic time at the kernel tick's resolution (a few ms behind, never
 * ahead), for a deadline check that must be cheap. */
static inline uint64_t
tr__coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A cheap upper bound on tr__now_ns(), for deadlines, which must never be
 * early. Each thread keeps its own anchor: a precise reading and the time
 * stamp counter (TSC) read just before it. Until the counter has moved
 * TR__ANCHOR_CYCLES past the anchor, the bound is the anchor's time plus
 * two nanoseconds per cycle since (a TSC runs at 500 MHz at least, so this
 * over-counts) plus TR__ANCHOR_SLACK_NS for the reads' skew; then it reads
 * the precise clock again. So a bound is never below the precise clock and
 * at most about 0.1 ms above it, for a counter read instead of the precise
 * clock's few tens of nanoseconds on most calls. Where the TSC is not
 * invariant (its rate changes or it stops when idle), or off x86-64, every
 * call reads the precise clock. An anchor starts zeroed and is owned by one
 * thread. */
typedef struct tr__clock_anchor {
    uint64_t tsc, ns;
} tr__clock_anchor;

#define TR__ANCHOR_CYCLES   50000u
#define TR__ANCHOR_SLACK_NS 1000u

uint64_t tr__now_bound_slow(tr__clock_anchor *a);

static inline uint64_t
tr__now_bound_ns(tr__clock_anchor *a)
{
#if defined(__x86_64__)
    /* A counter that went back (another core's TSC, slightly behind) wraps
     * to a huge difference: the slow path re-anchors. */
    uint64_t d = __builtin_ia32_rdtsc() - a->tsc;

    if (TR_LIKELY(a->ns != 0 && d <= TR__ANCHOR_CYCLES)) {
        return a->ns + 2 * d + TR__ANCHOR_SLACK_NS;
    }
#endif
    return tr__now_bound_slow(a);
}

/* Futex wait while *addr == expect, up to timeout_ns (0: no limit). Returns
 * false on timeout. Spurious returns happen: callers loop on their own
 * condition. */
bool tr__futex_wait(_Atomic uint32_t *addr, uint32_t expect,
                    uint64_t timeout_ns);
void tr__futex_wake(_Atomic uint32_t *addr, int n);

/* Sleeps about ns nanoseconds (at least, unless a signal cuts it short). */
void tr__sleep_ns(uint64_t ns);

/* A pause for spin loops. */
static inline void
tr__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* A 64-bit splitmix step: seeds and cheap per-worker randomness. */
static inline uint64_t
tr__mix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

#endif
