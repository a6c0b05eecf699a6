/* White-box tests of tr__now_bound_ns (common/common.h): the cheap upper
 * bound on the monotonic clock that deadlines are taken from. It must never
 * be below the precise clock, on a fresh anchor, a stale one, one whose
 * counter is ahead of this core's, and on several threads at once; and
 * where the TSC stands in for the clock, most calls must not read the
 * clock (else the bound would be no cheaper than it).
 *
 * Upper bounds are generous and scaled: they only catch a bound that runs
 * away from the clock. */
#include "tr_test.h"

#include "common/common.h"

#include <pthread.h>
#include <sched.h>

/* How far above the clock a bound may be: the documented 0.1 ms, plus
 * room for a preempted test thread. */
static uint64_t
late_limit_ns(void)
{
    return 2u * TR__ANCHOR_CYCLES + TR__ANCHOR_SLACK_NS +
           (uint64_t)(20e6 * tr_test_timeout_multiplier());
}

/* Calls the bound n times between two precise reads; returns the number of
 * distinct anchors it used (re-reads of the clock). */
static uint32_t
check_bounds(tr__clock_anchor *a, uint32_t n, uint32_t yield_every)
{
    uint64_t last_anchor = a->tsc;
    uint32_t anchors = 0;

    for (uint32_t i = 0; i < n; i++) {
        uint64_t before = tr__now_ns();
        uint64_t b = tr__now_bound_ns(a);
        uint64_t after = tr__now_ns();

        assert_true(b >= before);
        assert_true(b <= after + late_limit_ns());
        if (a->tsc != last_anchor) {
            anchors++;
            last_anchor = a->tsc;
        }
        if (yield_every != 0 && i % yield_every == 0) {
            sched_yield();
        }
    }
    return anchors;
}

static void
test_never_early(void **state)
{
    tr__clock_anchor a = {0, 0};
    uint32_t n = 1000000, anchors;

    (void)state;
    anchors = check_bounds(&a, n, 0);
    if (a.ns != 0) {
        /* The TSC stands in: the clock is read once per anchor, and an
         * anchor serves many calls. */
        assert_true(anchors < n / 4);
    } else {
        assert_int_equal(anchors, 0); /* every call read the clock */
    }
}

static void
test_after_pauses(void **state)
{
    tr__clock_anchor a = {0, 0};
    static const uint64_t pauses_us[] = {0, 10, 50, 200, 1000, 3000, 20000};

    (void)state;
    for (int r = 0; r < 5; r++) {
        for (size_t i = 0; i < sizeof pauses_us / sizeof pauses_us[0]; i++) {
            uint64_t before;

            (void)tr__now_bound_ns(&a); /* a fresh anchor, then a pause */
            tr_test_sleep_us(pauses_us[i]);
            before = tr__now_ns();
            assert_true(tr__now_bound_ns(&a) >= before);
        }
    }
}

/* An anchor whose counter reads ahead of the one now (another core's TSC,
 * slightly out of step, or a corrupted value) must re-anchor, not give a
 * bound from a huge unsigned difference. */
static void
test_counter_ahead(void **state)
{
    (void)state;
#if defined(__x86_64__)
    tr__clock_anchor a = {0, 0};
    uint64_t before;

    (void)tr__now_bound_ns(&a);
    if (a.ns == 0) {
        skip(); /* the TSC does not stand in here */
    }
    a.tsc = __builtin_ia32_rdtsc() + 1000000u;
    a.ns -= 1000000000u; /* a bound from this anchor would be a second early */
    before = tr__now_ns();
    assert_true(tr__now_bound_ns(&a) >= before);
#else
    skip();
#endif
}

#define THREADS 4

static void *
thread_main(void *arg)
{
    tr__clock_anchor a = {0, 0};

    (void)arg;
    (void)check_bounds(&a, 200000, 1000);
    return NULL;
}

/* Threads that move between cores, each with its own anchor. */
static void
test_threads(void **state)
{
    pthread_t t[THREADS];

    (void)state;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, NULL), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_early),
        cmocka_unit_test(test_after_pauses),
        cmocka_unit_test(test_counter_ahead),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
