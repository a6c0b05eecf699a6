/* Timers through the public API: one-shot and interval sends from outside
 * and from handlers, cancellation, argument errors, timers whose receiver
 * is dead or full, and timers after shutdown. */
#include "itest.h"

enum {
    MSG_TICK = 1,
};

#define MAXT 256u

struct tick {
    uint32_t seq;    /* first: the dead-letter recorder shows it */
    uint64_t set_ns; /* when the timer was set, by the test's clock */
};

static struct {
    _Atomic uint32_t n;
    uint64_t at_ns[MAXT];
    uint64_t set_ns[MAXT];
    uint32_t seq[MAXT];
    tr_ref sender[MAXT];
    _Atomic uint32_t exit_at; /* end after this many ticks; 0: never */
} g_ticks;

static int
setup(void **state)
{
    memset(&g_ticks, 0, sizeof g_ticks);
    return it_setup(state);
}

static tr_status
on_tick(tr_cx *cx, void *self, const struct tick *t)
{
    uint32_t i = atomic_load_explicit(&g_ticks.n, memory_order_relaxed);
    uint32_t exit_at = IT_LOAD(g_ticks.exit_at);

    (void)self;
    if (i < MAXT) {
        g_ticks.at_ns[i] = tr_test_now_ns();
        g_ticks.set_ns[i] = t->set_ns;
        g_ticks.seq[i] = t->seq;
        g_ticks.sender[i] = tr_sender(cx);
    }
    IT_STORE(g_ticks.n, i + 1);
    if (exit_at != 0 && i + 1 >= exit_at) {
        return tr_exit(cx, 0, NULL);
    }
    return TR_OK;
}

TR_ACTOR(ticker, char, TR_ON(MSG_TICK, struct tick, on_tick), IT_ON_CALL,
         IT_ON_CLOSE);

static tr_ref
spawn_ticker(tr_runtime *rt, uint32_t cap, int set, tr_overflow policy)
{
    return it_spawn(rt, &ticker, cap, set, policy);
}

/* ---- One-shot ---------------------------------------------------------- */

static void
test_send_after_from_outside(void **state)
{
    tr_ref r;
    tr_timer t;
    struct tick tk;

    (void)state;
    g_rt = it_runtime(2, NULL);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    tk.set_ns = tr_test_now_ns();
    tk.seq = 1;
    TR_ASSERT_OK(tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, 30, &t));
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) == 1);
    /* Not before the delay (both clocks are monotonic; we read ours before
     * the timer read its own). */
    assert_true(g_ticks.at_ns[0] - g_ticks.set_ns[0] >= 30u * 1000000u);
    assert_true(tr_ref_is_none(g_ticks.sender[0]));
    assert_int_equal(g_ticks.seq[0], 1);

    /* Once. */
    tr_test_sleep_ms(100);
    assert_int_equal(IT_LOAD(g_ticks.n), 1);
    assert_int_equal(it_stats(g_rt).timers_fired, 1);
    /* A fired timer cannot be canceled. */
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, t), TR_ENOENT);

    /* `out` may be NULL, and a zero delay works. */
    tk.seq = 2;
    TR_ASSERT_OK(tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, 0, NULL));
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) == 2);
    assert_int_equal(g_ticks.seq[1], 2);
}

typedef struct timer_job {
    tr_ref to;
    uint32_t delay_ms;
    int every;
    tr_ref self;
    tr_timer t;
    tr_status st;
} timer_job;

static void
do_set_timer(tr_cx *cx, void *arg)
{
    timer_job *j = arg;
    struct tick tk = {.set_ns = tr_test_now_ns(), .seq = 7};

    j->self = tr_self(cx);
    if (j->every) {
        j->st = tr_send_every(cx, j->to, MSG_TICK, &tk, sizeof tk, j->delay_ms,
                              &j->t);
    } else {
        j->st = tr_send_after(cx, j->to, MSG_TICK, &tk, sizeof tk, j->delay_ms,
                              &j->t);
    }
}

static void
test_send_after_from_handler(void **state)
{
    timer_job j = {0};
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    j.to = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    j.delay_ms = 20;
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_set_timer, &j);
    TR_ASSERT_OK(j.st);
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) == 1);
    assert_true(g_ticks.at_ns[0] - g_ticks.set_ns[0] >= 20u * 1000000u);
    /* The sender is the actor that set the timer. */
    assert_true(tr_ref_eq(g_ticks.sender[0], a));
    assert_true(tr_ref_eq(j.self, a));
    tr_test_sleep_ms(60);
    assert_int_equal(IT_LOAD(g_ticks.n), 1);
}

static void
test_cancel_before_fire(void **state)
{
    tr_ref r;
    tr_timer t;
    struct tick tk = {.set_ns = 0, .seq = 3};
    /* Long enough that this thread cannot miss it between the two calls. */
    uint32_t delay = (uint32_t)tr_test_scaled_ms(200);

    (void)state;
    g_rt = it_runtime(1, NULL);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, delay, &t));
    TR_ASSERT_OK(tr_timer_cancel(g_rt, t));
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, t), TR_ENOENT);
    /* Past the original deadline: it never sent. */
    tr_test_sleep_ms(delay + 100);
    assert_int_equal(IT_LOAD(g_ticks.n), 0);
    assert_int_equal(it_stats(g_rt).timers_fired, 0);
    assert_int_equal(it_dl_total(), 0);
}

static void
test_cancel_unknown(void **state)
{
    tr_timer none = {0}, junk = {0x123456789ull}, max = {UINT64_MAX};

    (void)state;
    g_rt = it_runtime(1, NULL);
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, none), TR_ENOENT);
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, junk), TR_ENOENT);
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, max), TR_ENOENT);
    TR_ASSERT_STATUS(tr_timer_cancel(NULL, none), TR_EINVAL);
}

/* ---- Intervals --------------------------------------------------------- */

static void
test_send_every_and_cancel(void **state)
{
    tr_ref r;
    tr_timer t;
    struct tick tk = {.set_ns = 0, .seq = 5};
    uint64_t fired;

    (void)state;
    g_rt = it_runtime(2, NULL);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send_every(g_rt, r, MSG_TICK, &tk, sizeof tk, 10, &t));
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) >= 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(g_ticks.seq[i], 5);
        assert_true(tr_ref_is_none(g_ticks.sender[i]));
    }
    TR_ASSERT_OK(tr_timer_cancel(g_rt, t));
    /* After cancel returns the timer fires no more: what it sent is what
     * arrives (the last one may still be in flight), and then nothing. */
    fired = it_stats(g_rt).timers_fired;
    assert_true(fired >= 3);
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) == fired);
    tr_test_sleep_ms(60);
    assert_int_equal(IT_LOAD(g_ticks.n), fired);
    assert_int_equal(it_stats(g_rt).timers_fired, fired);
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, t), TR_ENOENT);
    assert_int_equal(it_dl_total(), 0);
}

static void
test_send_every_from_handler(void **state)
{
    timer_job j = {0};
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    j.to = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    j.delay_ms = 5;
    j.every = 1;
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_set_timer, &j);
    TR_ASSERT_OK(j.st);
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) >= 2);
    assert_true(tr_ref_eq(g_ticks.sender[0], a));
    assert_true(tr_ref_eq(g_ticks.sender[1], a));
    TR_ASSERT_OK(tr_timer_cancel(g_rt, j.t));
}

static tr_status g_bad_cx[4];

static void
do_bad_timers(tr_cx *cx, void *arg)
{
    tr_ref to = *(tr_ref *)arg;

    g_bad_cx[0] = tr_send_every(cx, to, MSG_TICK, NULL, 0, 0, NULL);
    g_bad_cx[1] = tr_send_after(cx, to, TR_MSG_RESERVED, NULL, 0, 1, NULL);
    g_bad_cx[2] = tr_send_after(cx, to, MSG_TICK, NULL, 4, 1, NULL);
    g_bad_cx[3] = tr_send_after((tr_cx *)NULL, to, MSG_TICK, NULL, 0, 1, NULL);
}

static void
test_timer_argument_errors(void **state)
{
    tr_config cfg = {0};
    unsigned char big[65] = {0};
    struct tick tk = {.set_ns = 0, .seq = 0};
    tr_timer t = {0};
    tr_ref r, a;

    (void)state;
    cfg.max_payload = 64;
    g_rt = it_runtime(1, &cfg);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_STATUS(tr_send_every(g_rt, r, MSG_TICK, &tk, sizeof tk, 0, &t),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_send_after(g_rt, r, MSG_TICK, NULL, 8, 1, &t),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_send_after(g_rt, r, TR_MSG_RESERVED, NULL, 0, 1, &t),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_send_every(g_rt, r, UINT32_MAX, NULL, 0, 1, &t),
                     TR_EINVAL);
    TR_ASSERT_STATUS(
        tr_send_after((tr_runtime *)NULL, r, MSG_TICK, NULL, 0, 1, &t),
        TR_EINVAL);
    TR_ASSERT_STATUS(
        tr_send_every((tr_runtime *)NULL, r, MSG_TICK, NULL, 0, 1, &t),
        TR_EINVAL);
    TR_ASSERT_STATUS(tr_send_after(g_rt, r, MSG_TICK, big, sizeof big, 1, &t),
                     TR_EMSGSIZE);
    TR_ASSERT_STATUS(tr_send_every(g_rt, r, MSG_TICK, big, sizeof big, 1, &t),
                     TR_EMSGSIZE);

    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_bad_timers, &r);
    for (int i = 0; i < 4; i++) {
        TR_ASSERT_STATUS(g_bad_cx[i], TR_EINVAL);
    }
    /* Nothing was armed. */
    tr_test_sleep_ms(20);
    assert_int_equal(it_stats(g_rt).timers_fired, 0);
    assert_int_equal(IT_LOAD(g_ticks.n), 0);
}

/* ---- Dead and full receivers ------------------------------------------- */

static void
test_timer_to_dead_actor(void **state)
{
    tr_ref r;
    struct tick tk = {.set_ns = 0, .seq = 9};

    (void)state;
    g_rt = it_runtime(1, NULL);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_stop(g_rt, r));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    TR_ASSERT_OK(tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, 5, NULL));
    IT_WAIT_UNTIL(it_dl_total() == 1);
    assert_int_equal(it_dl_at(0)->type, MSG_TICK);
    assert_int_equal(it_dl_at(0)->reason, TR_EDEAD);
    assert_true(tr_ref_eq(it_dl_at(0)->to, r));
    assert_true(tr_ref_is_none(it_dl_at(0)->from));
    assert_int_equal(it_dl_at(0)->len, sizeof tk);
}

static void
test_interval_to_dead_actor_stops(void **state)
{
    tr_ref r;
    tr_timer t;
    struct tick tk = {.set_ns = 0, .seq = 4};
    uint64_t f0, f1, window = tr_test_scaled_ms(100);
    uint64_t deadline;

    (void)state;
    g_ticks.exit_at = 3; /* the ticker ends itself on its third tick */
    g_rt = it_runtime(1, NULL);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send_every(g_rt, r, MSG_TICK, &tk, sizeof tk, 5, &t));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    assert_int_equal(IT_LOAD(g_ticks.n), 3);
    /* The next tick finds it dead and is dead-lettered ... */
    IT_WAIT_UNTIL(it_dl_count(MSG_TICK, TR_EDEAD) >= 1);
    /* ... and the interval cancels itself: no more fires, and it is gone. */
    deadline = tr_test_now_ns() + tr_test_scaled_ms(IT_WAIT_MS) * 1000000u;
    for (;;) {
        f0 = it_stats(g_rt).timers_fired;
        tr_test_sleep_ms((uint32_t)window);
        f1 = it_stats(g_rt).timers_fired;
        if (f0 == f1) {
            break;
        }
        if (tr_test_now_ns() > deadline) {
            fail_msg("the interval kept firing at a dead actor");
        }
    }
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, t), TR_ENOENT);
    /* Every tick it fired was either handled or dead-lettered (those queued
     * when the ticker ended, and the one that found it dead). */
    assert_int_equal(it_dl_count(MSG_TICK, TR_EDEAD), it_dl_total());
    assert_int_equal(it_stats(g_rt).timers_fired, 3 + it_dl_total());
}

/* A one-worker runtime with a jam and a ticker of capacity 1 and `policy`
 * that is muted and holds one tick (seq 0): a timer's tick cannot get in. */
static void
run_timer_to_full(tr_overflow policy)
{
    tr_config cfg = {0};
    struct tick tk = {.set_ns = 0, .seq = 0};
    tr_ref r, jam;

    cfg.drain_ms = 100;
    g_rt = it_runtime(1, &cfg);
    r = spawn_ticker(g_rt, 1, 1, policy);
    jam = it_jam_start(g_rt);
    it_gate_close(g_rt, r, jam);
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_TICK, &tk, sizeof tk));
    tk.seq = 1;
    TR_ASSERT_OK(tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, 1, NULL));
    IT_WAIT_UNTIL(it_dl_count_type(MSG_TICK) == 1);
    assert_int_equal(it_dl_count(MSG_TICK, TR_EFULL), 1);
    for (uint32_t i = 0; i < it_dl_total(); i++) {
        if (it_dl_at(i)->type == MSG_TICK) {
            assert_int_equal(it_dl_at(i)->seq, 1);
            assert_true(tr_ref_eq(it_dl_at(i)->to, r));
        }
    }
    /* Open the gate: the ticker handles only the tick that was queued. */
    TR_ASSERT_OK(tr_stop(g_rt, jam));
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) == 1);
    assert_int_equal(g_ticks.seq[0], 0);
    tk.seq = 2;
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_TICK, &tk, sizeof tk));
    IT_WAIT_UNTIL(IT_LOAD(g_ticks.n) == 2);
    assert_int_equal(g_ticks.seq[1], 2);
    tr_runtime_destroy(&g_rt);
}

static void
test_timer_to_full_mailbox(void **state)
{
    (void)state;
    run_timer_to_full(TR_REJECT);
    it_dl_reset();
    memset(&g_ticks, 0, sizeof g_ticks);
    run_timer_to_full(TR_BACKPRESSURE);
}

/* ---- Shutdown ---------------------------------------------------------- */

static void
test_timers_after_shutdown(void **state)
{
    tr_ref r;
    tr_timer pending, t;
    struct tick tk = {.set_ns = 0, .seq = 0};

    (void)state;
    g_rt = it_runtime(1, NULL);
    r = spawn_ticker(g_rt, 0, 0, TR_BACKPRESSURE);
    /* A timer far in the future neither delays the shutdown nor survives
     * it: shutdown cancels timers. */
    TR_ASSERT_OK(
        tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, 600000, &pending));
    TR_ASSERT_OK(it_shutdown_bounded(g_rt, 1000, IT_WAIT_MS));
    TR_ASSERT_STATUS(tr_timer_cancel(g_rt, pending), TR_ENOENT);
    TR_ASSERT_STATUS(tr_send_after(g_rt, r, MSG_TICK, &tk, sizeof tk, 1, &t),
                     TR_ESHUTDOWN);
    TR_ASSERT_STATUS(tr_send_every(g_rt, r, MSG_TICK, &tk, sizeof tk, 1, &t),
                     TR_ESHUTDOWN);
    assert_int_equal(it_stats(g_rt).timers_fired, 0);
    assert_int_equal(IT_LOAD(g_ticks.n), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, it_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_after_from_outside),      T(test_send_after_from_handler),
        T(test_cancel_before_fire),           T(test_cancel_unknown),
        T(test_send_every_and_cancel),        T(test_send_every_from_handler),
        T(test_timer_argument_errors),        T(test_timer_to_dead_actor),
        T(test_interval_to_dead_actor_stops), T(test_timer_to_full_mailbox),
        T(test_timers_after_shutdown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
