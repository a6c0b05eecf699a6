/* wake: how long a message to a parked runtime takes to be handled.
 *
 * n times: main waits until every worker has parked (the runtime is idle),
 * (2 ms of quiet), then sends one message stamped with CLOCK_MONOTONIC; the
 * actor handling it records now - stamp. So each sample is the full path of a
 * send from a thread outside the runtime to a sleeping pool: the global queue,
 * the futex wake-up of a parked worker, the turn. ops = n samples; seconds is
 * the sum of the latencies, so per_op_ns is their mean; median_ns and
 * p99_ns are added. Verified: every message handled, once, in order, and
 * the runtime idle before each sample (the parks counter grew by at least
 * one per sample: the woken worker parks again). */
#include "bench.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

enum {
    MSG_STAMP = BENCH_MSG_USER,
};

#define WAKE_MAX_N 100000u

typedef struct shared {
    uint64_t *lat;           /* written by the actor, read by main after */
    _Atomic uint64_t count;  /* samples handled; release publishes lat[] */
    _Atomic uint64_t misses; /* stamps out of order */
} shared;

typedef shared *shared_ptr;

typedef struct waker_state {
    shared *sh;
} waker_state;

typedef struct stamp {
    uint64_t seq, t_ns;
} stamp;

static tr_status
waker_init(tr_cx *cx, waker_state *self, const shared_ptr *sh)
{
    (void)cx;
    self->sh = *sh;
    return TR_OK;
}

static tr_status
waker_stamp(tr_cx *cx, waker_state *self, const stamp *s)
{
    uint64_t now = bench_now_ns();
    uint64_t i = atomic_load_explicit(&self->sh->count, memory_order_relaxed);

    (void)cx;
    if (s->seq != i) {
        atomic_fetch_add_explicit(&self->sh->misses, 1, memory_order_relaxed);
        return TR_OK;
    }
    self->sh->lat[i] = now - s->t_ns;
    /* release: main reads lat[i] after an acquire load of count. */
    atomic_store_explicit(&self->sh->count, i + 1, memory_order_release);
    return TR_OK;
}

TR_ACTOR(wake_actor, waker_state, TR_ON_INIT(shared_ptr, waker_init),
         TR_ON(MSG_STAMP, stamp, waker_stamp), BENCH_ON_TERMINATE);

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

static void
sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {0};
    shared_ptr shp = &sh;
    tr_spawn_opts o = {.arg = &shp, .arg_len = sizeof shp};
    tr_runtime *rt = NULL;
    tr_ref w;
    tr_stats st;
    uint64_t i, sum = 0, parks0;
    int rc;

    if (args->n == 0 || args->n > WAKE_MAX_N) {
        return bench_fail("--n must be 1..%u", WAKE_MAX_N);
    }
    sh.lat = calloc(args->n, sizeof *sh.lat);
    if (sh.lat == NULL) {
        return bench_fail("out of memory");
    }
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &wake_actor, &o, &w));
    BENCH_CHECK(tr_runtime_stats(rt, &st));
    parks0 = st.parks;
    for (i = 0; i < args->n; i++) {
        stamp s = {i, 0};

        /* Far longer than a worker spins before it parks (microseconds). */
        sleep_us(2000);
        s.t_ns = bench_now_ns();
        BENCH_CHECK(tr_send(rt, w, MSG_STAMP, &s, sizeof s));
        for (int k = 0; k < 100000 && atomic_load_explicit(
                                          &sh.count, memory_order_acquire) <= i;
             k++) {
            sleep_us(10);
        }
        if (atomic_load_explicit(&sh.count, memory_order_acquire) != i + 1) {
            return bench_fail("sample %" PRIu64 " was not handled", i);
        }
    }
    BENCH_CHECK(tr_runtime_stats(rt, &st));
    if (st.parks - parks0 < args->n) {
        /* Each sample wakes a parked worker, which parks again. */
        return bench_fail("%" PRIu64 " parks for %" PRIu64
                          " samples: the runtime was not idle",
                          st.parks - parks0, args->n);
    }
    rc = bench_runtime_finish(&rt);
    if (rc == 0 && atomic_load(&sh.misses) != 0) {
        rc = bench_fail("%" PRIu64 " samples out of order",
                        (uint64_t)atomic_load(&sh.misses));
    }
    if (rc == 0) {
        for (i = 0; i < args->n; i++) {
            sum += sh.lat[i];
        }
        qsort(sh.lat, args->n, sizeof *sh.lat, cmp_u64);
        res->ops = args->n;
        res->t0_ns = 0;
        res->t1_ns = sum;
        bench_extra(res, "median_ns", (double)sh.lat[args->n / 2], true);
        bench_extra(res, "p99_ns", (double)sh.lat[args->n * 99 / 100], true);
    }
    free(sh.lat);
    return rc;
}

const bench_def bench_wake = {
    "wake", 200,
    "a message from outside to a parked runtime, n times (latency)", run};
