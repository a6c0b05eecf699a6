/* White-box tests of runtime/timer.c: one-shots and intervals, deadline
 * order, cancel (before and after firing, twice, unknown and reused ids),
 * a fire callback that ends its interval, and stop releasing every payload
 * exactly once.
 *
 * Time is asserted only as lower bounds (a timer never fires early) plus
 * generous, multiplier-scaled upper bounds that only detect hangs. */
#include "tr_test.h"

#include "runtime/timer.h"

#include <pthread.h>

#define MAX_FIRES 64
#define LOG_MAX   1024

/* A timer's payload. */
typedef struct payload {
    uint32_t id;
    /* Returned by fire: false after this many fires (0: never). */
    uint32_t stop_after;
    _Atomic uint32_t fires;
    _Atomic uint32_t releases;
    uint64_t fire_ns[MAX_FIRES]; /* written by fire, under fx.lock */
    uint64_t add_lo, add_hi;     /* now before and after tr__timers_add */
    uint32_t delay_ms;
} payload;

typedef struct fx {
    tr__timers *t;
    pthread_mutex_t lock; /* protects log and fire_ns */
    uint32_t log[LOG_MAX];
    uint32_t nlog;
    _Atomic uint32_t fires;
    _Atomic uint32_t releases;
    _Atomic uint32_t bad; /* callbacks with the wrong ctx, or a payload
                             released twice, or fired after release */
    payload *p;
    uint32_t np;
} fx;

/* ---- Helpers ----------------------------------------------------------- */

static bool
fire(void *ctx, void *ud)
{
    fx *f = ctx;
    payload *p = ud;
    uint32_t n;

    if (p == NULL ||
        atomic_load_explicit(&p->releases, memory_order_relaxed) != 0) {
        atomic_fetch_add_explicit(&f->bad, 1, memory_order_relaxed);
        return false;
    }
    pthread_mutex_lock(&f->lock);
    n = atomic_load_explicit(&p->fires, memory_order_relaxed);
    if (n < MAX_FIRES) {
        p->fire_ns[n] = tr__now_ns();
    }
    if (f->nlog < LOG_MAX) {
        f->log[f->nlog++] = p->id;
    }
    pthread_mutex_unlock(&f->lock);
    /* release: a waiter that sees the count (acquire) sees fire_ns. */
    atomic_store_explicit(&p->fires, n + 1, memory_order_release);
    atomic_fetch_add_explicit(&f->fires, 1, memory_order_release);
    return p->stop_after == 0 || n + 1 < p->stop_after;
}

static void
release(void *ctx, void *ud)
{
    fx *f = ctx;
    payload *p = ud;

    if (p == NULL ||
        atomic_fetch_add_explicit(&p->releases, 1, memory_order_acq_rel) != 0) {
        atomic_fetch_add_explicit(&f->bad, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&f->releases, 1, memory_order_release);
}

static int
setup(void **state)
{
    fx *f = calloc(1, sizeof *f);

    if (f == NULL) {
        return -1;
    }
    pthread_mutex_init(&f->lock, NULL);
    if (tr__timers_new(&f->t, fire, release, f) != TR_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx *f = *state;

    tr__timers_free(f->t);
    pthread_mutex_destroy(&f->lock);
    free(f->p);
    free(f);
    return 0;
}

static void
make_payloads(fx *f, uint32_t n)
{
    uint32_t i;

    f->p = calloc(n, sizeof *f->p);
    assert_non_null(f->p);
    f->np = n;
    for (i = 0; i < n; i++) {
        f->p[i].id = i;
    }
}

static tr_status
add(fx *f, payload *p, uint32_t delay_ms, uint32_t period_ms, uint64_t *id)
{
    tr_status st;

    p->delay_ms = delay_ms;
    p->add_lo = tr__now_ns();
    st = tr__timers_add(f->t, delay_ms, period_ms, p, id);
    p->add_hi = tr__now_ns();
    return st;
}

static bool
wait_u32(_Atomic uint32_t *v, uint32_t want, uint64_t ms)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    while (atomic_load_explicit(v, memory_order_acquire) < want) {
        if (tr__now_ns() > end) {
            return false;
        }
        tr_test_sleep_ms(1);
    }
    return true;
}

/* ---- Tests ------------------------------------------------------------- */

static void
test_one_shot(void **state)
{
    fx *f = *state;
    payload *p;
    uint64_t id;

    make_payloads(f, 1);
    p = &f->p[0];
    TR_ASSERT_OK(add(f, p, 50, 0, &id));
    assert_true(wait_u32(&p->releases, 1, 50 + 5000));
    assert_int_equal(atomic_load(&p->fires), 1);
    /* Never early: at least the delay after the call began. */
    assert_true(p->fire_ns[0] - p->add_lo >= 50u * 1000000u);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id), TR_ENOENT);
    tr_test_sleep_ms(30);
    assert_int_equal(atomic_load(&p->fires), 1);
    assert_int_equal(atomic_load(&p->releases), 1);
    assert_int_equal(tr__timers_fired(f->t), 1);
    assert_int_equal(atomic_load(&f->bad), 0);
}

static void
test_zero_delay(void **state)
{
    fx *f = *state;
    uint64_t id;

    make_payloads(f, 1);
    TR_ASSERT_OK(add(f, &f->p[0], 0, 0, &id));
    assert_true(wait_u32(&f->p[0].releases, 1, 5000));
    assert_int_equal(atomic_load(&f->p[0].fires), 1);
    assert_int_equal(tr__timers_fired(f->t), 1);
}

/* Checks that the fire log is consistent with the deadlines: a timer that
 * fired before another cannot have had a deadline surely later than the
 * other's. Each deadline is only known to lie in [add_lo, add_hi] + delay. */
static void
check_deadline_order(fx *f)
{
    uint32_t i, j;

    pthread_mutex_lock(&f->lock);
    for (i = 0; i < f->nlog; i++) {
        payload *a = &f->p[f->log[i]];
        uint64_t a_lo = a->add_lo + (uint64_t)a->delay_ms * 1000000u;

        for (j = i + 1; j < f->nlog; j++) {
            payload *b = &f->p[f->log[j]];
            uint64_t b_hi = b->add_hi + (uint64_t)b->delay_ms * 1000000u;

            if (b_hi < a_lo) {
                pthread_mutex_unlock(&f->lock);
                fail_msg("timer %u (deadline >= %llu) fired before timer %u "
                         "(deadline <= %llu)",
                         a->id, (unsigned long long)a_lo, b->id,
                         (unsigned long long)b_hi);
            }
        }
    }
    pthread_mutex_unlock(&f->lock);
}

static void
test_deadline_order(void **state)
{
    fx *f = *state;
    const uint32_t n = 200;
    uint64_t rng = 0x5eed, id;
    uint32_t i;

    make_payloads(f, n);
    /* Delays 0..99 ms in a shuffled order, several timers per deadline. */
    for (i = 0; i < n; i++) {
        TR_ASSERT_OK(
            add(f, &f->p[i], (uint32_t)(tr__mix64(&rng) % 100), 0, &id));
        assert_true(id != 0);
    }
    assert_true(wait_u32(&f->releases, n, 100 + 5000));
    assert_int_equal(atomic_load(&f->fires), n);
    for (i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&f->p[i].fires), 1);
        assert_true(f->p[i].fire_ns[0] - f->p[i].add_lo >=
                    (uint64_t)f->p[i].delay_ms * 1000000u);
    }
    check_deadline_order(f);
    assert_int_equal(tr__timers_fired(f->t), n);
    assert_int_equal(atomic_load(&f->bad), 0);
}

/* Half of the timers are canceled; the heap must still hand out the rest in
 * order. */
static void
test_deadline_order_with_cancels(void **state)
{
    fx *f = *state;
    const uint32_t n = 200;
    /* Far enough out that the cancels below all come first. */
    const uint32_t base = (uint32_t)tr_test_scaled_ms(200);
    uint64_t rng = 0xc0ffee, ids[200];
    uint32_t i, canceled = 0;

    make_payloads(f, n);
    for (i = 0; i < n; i++) {
        TR_ASSERT_OK(add(f, &f->p[i], base + (uint32_t)(tr__mix64(&rng) % 100),
                         0, &ids[i]));
    }
    for (i = 0; i < n; i++) {
        if (tr__mix64(&rng) % 2) {
            TR_ASSERT_OK(tr__timers_cancel(f->t, ids[i]));
            assert_int_equal(atomic_load(&f->p[i].releases), 1);
            canceled++;
        }
    }
    assert_true(wait_u32(&f->releases, n, base + 100 + 5000));
    assert_int_equal(atomic_load(&f->fires), n - canceled);
    for (i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&f->p[i].releases), 1);
    }
    check_deadline_order(f);
    assert_int_equal(atomic_load(&f->bad), 0);
}

/* The thread sleeps toward the earliest deadline; an earlier timer added
 * later must wake it. */
static void
test_earlier_timer_rearms(void **state)
{
    fx *f = *state;
    uint64_t far, near;

    make_payloads(f, 2);
    TR_ASSERT_OK(add(f, &f->p[0], 60000, 0, &far));
    tr_test_sleep_ms(5); /* let the thread go to sleep on the far deadline */
    TR_ASSERT_OK(add(f, &f->p[1], 10, 0, &near));
    assert_true(wait_u32(&f->p[1].releases, 1, 10 + 5000));
    assert_int_equal(atomic_load(&f->p[0].fires), 0);
    TR_ASSERT_OK(tr__timers_cancel(f->t, far));
    assert_int_equal(atomic_load(&f->p[0].releases), 1);
    assert_int_equal(atomic_load(&f->p[0].fires), 0);
}

static void
test_cancel_before_fire(void **state)
{
    fx *f = *state;
    uint32_t delay = (uint32_t)tr_test_scaled_ms(100);
    uint64_t id;

    make_payloads(f, 1);
    TR_ASSERT_OK(add(f, &f->p[0], delay, 0, &id));
    TR_ASSERT_OK(tr__timers_cancel(f->t, id));
    /* The release runs inside cancel, before it returns. */
    assert_int_equal(atomic_load(&f->p[0].releases), 1);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id), TR_ENOENT);
    tr_test_sleep_ms(delay + 50);
    assert_int_equal(atomic_load(&f->p[0].fires), 0);
    assert_int_equal(atomic_load(&f->p[0].releases), 1);
    assert_int_equal(tr__timers_fired(f->t), 0);
    assert_int_equal(atomic_load(&f->bad), 0);
}

static void
test_cancel_unknown(void **state)
{
    fx *f = *state;
    uint64_t id;

    make_payloads(f, 1);
    /* Nothing was ever added. */
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, 0), TR_ENOENT);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, UINT64_MAX), TR_ENOENT);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, ((uint64_t)1 << 32) | 0),
                     TR_ENOENT);
    /* A live timer: ids that differ in generation or slot are unknown. */
    TR_ASSERT_OK(add(f, &f->p[0], 60000, 0, &id));
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id + ((uint64_t)1 << 32)),
                     TR_ENOENT);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id ^ 1), TR_ENOENT);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, (uint32_t)id), TR_ENOENT);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id + 100000), TR_ENOENT);
    assert_int_equal(atomic_load(&f->p[0].releases), 0);
    TR_ASSERT_OK(tr__timers_cancel(f->t, id));
    assert_int_equal(atomic_load(&f->p[0].releases), 1);
}

/* A slot freed by a cancel is reused; the old id must not reach the new
 * timer. */
static void
test_stale_id_after_reuse(void **state)
{
    fx *f = *state;
    uint64_t old_id, new_id;
    uint32_t i;

    make_payloads(f, 65);
    TR_ASSERT_OK(add(f, &f->p[0], 60000, 0, &old_id));
    TR_ASSERT_OK(tr__timers_cancel(f->t, old_id));
    /* Enough adds to reuse every free slot, the old one included. */
    for (i = 1; i < 65; i++) {
        TR_ASSERT_OK(add(f, &f->p[i], 60000, 0, &new_id));
        assert_true(new_id != old_id);
        TR_ASSERT_STATUS(tr__timers_cancel(f->t, old_id), TR_ENOENT);
    }
    for (i = 1; i < 65; i++) {
        assert_int_equal(atomic_load(&f->p[i].releases), 0);
    }
    assert_int_equal(atomic_load(&f->p[0].releases), 1);
    tr__timers_stop(f->t);
    for (i = 0; i < 65; i++) {
        assert_int_equal(atomic_load(&f->p[i].releases), 1);
    }
    assert_int_equal(atomic_load(&f->bad), 0);
}

static void
test_interval(void **state)
{
    fx *f = *state;
    const uint32_t delay = 5, period = 10;
    payload *p;
    uint64_t id;
    uint32_t k, fires;

    make_payloads(f, 1);
    p = &f->p[0];
    TR_ASSERT_OK(add(f, p, delay, period, &id));
    assert_true(wait_u32(&p->fires, 5, delay + 5 * period + 5000));
    assert_int_equal(atomic_load(&p->releases), 0);
    TR_ASSERT_OK(tr__timers_cancel(f->t, id));
    assert_int_equal(atomic_load(&p->releases), 1);
    /* fire runs under the module's lock, so none is in progress now. */
    fires = atomic_load(&p->fires);
    tr_test_sleep_ms(3 * period);
    assert_int_equal(atomic_load(&p->fires), fires);
    assert_int_equal(tr__timers_fired(f->t), fires);
    /* Fire k comes no earlier than delay + k periods after the add. */
    for (k = 0; k < fires && k < MAX_FIRES; k++) {
        assert_true(p->fire_ns[k] - p->add_lo >=
                    (uint64_t)(delay + k * period) * 1000000u);
    }
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id), TR_ENOENT);
    assert_int_equal(atomic_load(&p->releases), 1);
    assert_int_equal(atomic_load(&f->bad), 0);
}

/* fire returning false ends an interval: no more fires, one release. */
static void
test_interval_fire_false_ends(void **state)
{
    fx *f = *state;
    payload *p;
    uint64_t id;

    make_payloads(f, 2);
    p = &f->p[0];
    p->stop_after = 3;
    TR_ASSERT_OK(add(f, p, 1, 5, &id));
    assert_true(wait_u32(&p->releases, 1, 1 + 3 * 5 + 5000));
    assert_int_equal(atomic_load(&p->fires), 3);
    tr_test_sleep_ms(30);
    assert_int_equal(atomic_load(&p->fires), 3);
    assert_int_equal(atomic_load(&p->releases), 1);
    TR_ASSERT_STATUS(tr__timers_cancel(f->t, id), TR_ENOENT);

    /* A one-shot whose fire returns false is released once, as usual. */
    f->p[1].stop_after = 1;
    TR_ASSERT_OK(add(f, &f->p[1], 1, 0, &id));
    assert_true(wait_u32(&f->p[1].releases, 1, 5000));
    assert_int_equal(atomic_load(&f->p[1].fires), 1);
    assert_int_equal(atomic_load(&f->bad), 0);
}

/* Stop releases every pending payload once; what already finished is not
 * released again; add after stop fails without taking the payload. */
static void
test_stop_releases_pending(void **state)
{
    fx *f = *state;
    const uint32_t n = 40;
    uint64_t ids[40], id, fired;
    uint32_t i;

    make_payloads(f, n + 1);
    for (i = 0; i < n; i++) {
        if (i < 5) {
            /* Already done before stop: fired and released. */
            TR_ASSERT_OK(add(f, &f->p[i], 0, 0, &ids[i]));
        } else if (i < 10) {
            /* Intervals, some of which fire before stop. */
            TR_ASSERT_OK(add(f, &f->p[i], 1, 2, &ids[i]));
        } else {
            TR_ASSERT_OK(add(f, &f->p[i], 60000 + i, 0, &ids[i]));
        }
    }
    for (i = 10; i < 15; i++) {
        TR_ASSERT_OK(tr__timers_cancel(f->t, ids[i]));
    }
    for (i = 0; i < 5; i++) {
        assert_true(wait_u32(&f->p[i].releases, 1, 5000));
    }
    assert_true(wait_u32(&f->p[5].fires, 2, 5000));
    assert_int_equal(atomic_load(&f->releases), 10);

    tr__timers_stop(f->t);
    fired = tr__timers_fired(f->t);
    assert_int_equal(atomic_load(&f->releases), n);
    for (i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&f->p[i].releases), 1);
    }
    /* Idempotent: nothing released twice, nothing fires after. */
    tr__timers_stop(f->t);
    tr_test_sleep_ms(10);
    assert_int_equal(atomic_load(&f->releases), n);
    assert_int_equal(tr__timers_fired(f->t), fired);
    assert_int_equal(atomic_load(&f->fires), fired);

    TR_ASSERT_STATUS(tr__timers_add(f->t, 0, 0, &f->p[n], &id), TR_ESHUTDOWN);
    TR_ASSERT_STATUS(tr__timers_add(f->t, 10, 10, &f->p[n], &id), TR_ESHUTDOWN);
    for (i = 0; i < n; i++) {
        TR_ASSERT_STATUS(tr__timers_cancel(f->t, ids[i]), TR_ENOENT);
    }
    tr_test_sleep_ms(5);
    assert_int_equal(atomic_load(&f->p[n].releases), 0);
    assert_int_equal(atomic_load(&f->p[n].fires), 0);
    assert_int_equal(atomic_load(&f->bad), 0);
}

/* Create and free with nothing armed, and with timers armed (free stops,
 * releasing them). */
static void
test_free_releases(void **state)
{
    fx *f = *state;
    tr__timers *t;
    uint64_t id;
    uint32_t i;

    make_payloads(f, 8);
    TR_ASSERT_OK(tr__timers_new(&t, fire, release, f));
    tr__timers_free(t);
    TR_ASSERT_OK(tr__timers_new(&t, fire, release, f));
    for (i = 0; i < 8; i++) {
        TR_ASSERT_OK(tr__timers_add(t, 60000, i % 2 ? 1000 : 0, &f->p[i], &id));
    }
    tr__timers_free(t);
    for (i = 0; i < 8; i++) {
        assert_int_equal(atomic_load(&f->p[i].releases), 1);
        assert_int_equal(atomic_load(&f->p[i].fires), 0);
    }
    tr__timers_free(NULL);
    assert_int_equal(atomic_load(&f->bad), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_shot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_order_with_cancels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_earlier_timer_rearms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_fire, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_id_after_reuse, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_fire_false_ends, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_releases_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_free_releases, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
