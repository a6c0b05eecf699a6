/* The watchdog (tr_config.watchdog_ms): a handler that runs past the
 * threshold on a worker is reported once, with its actor and message type,
 * as a TR_LOG_WARN line and in tr_stats.slow_handlers.
 *
 * What is checked: a handler that sleeps 150 ms (default threshold 100 ms)
 * is reported exactly once, naming the behavior and the type; fast
 * handlers are not; TR_WATCHDOG_OFF reports nothing; a lower threshold
 * applies; blocking where it belongs (a blocking-pool job, a thread actor)
 * is not reported. */
#include "itest.h"

#include <pthread.h>
#include <stdio.h>

enum {
    MSG_SLOW = 7,
    MSG_FAST,
    MSG_NAP,
};

/* The log callback's record. */
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t g_warns;
static char g_last[256];
static _Atomic uint32_t g_done;

static int
setup(void **state)
{
    pthread_mutex_lock(&g_log_lock);
    g_warns = 0;
    g_last[0] = '\0';
    pthread_mutex_unlock(&g_log_lock);
    IT_STORE(g_done, 0);
    return it_setup(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, it_teardown)

static void
log_record(void *arg, tr_log_level level, const char *text)
{
    (void)arg;
    pthread_mutex_lock(&g_log_lock);
    if (level == TR_LOG_WARN) {
        g_warns++;
        snprintf(g_last, sizeof g_last, "%s", text);
    }
    pthread_mutex_unlock(&g_log_lock);
}

static uint32_t
warns(void)
{
    uint32_t n;

    pthread_mutex_lock(&g_log_lock);
    n = g_warns;
    pthread_mutex_unlock(&g_log_lock);
    return n;
}

static tr_status
on_slow(tr_cx *cx, void *self, const uint32_t *ms)
{
    (void)cx;
    (void)self;
    tr_test_sleep_ms(*ms); /* what a handler must not do */
    IT_INC(g_done);
    return TR_OK;
}

static tr_status
on_fast(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_INC(g_done);
    return TR_OK;
}

TR_ACTOR(slow_actor, char, TR_ON(MSG_SLOW, uint32_t, on_slow),
         TR_ON(MSG_FAST, void, on_fast));

static tr_runtime *
runtime(uint32_t watchdog_ms)
{
    tr_config cfg = {.log_fn = log_record, .watchdog_ms = watchdog_ms};

    return it_runtime(2, &cfg);
}

static void
test_slow_handler_reported_once(void **state)
{
    uint32_t ms = 150;
    tr_ref a;
    char want[64];

    (void)state;
    g_rt = runtime(0);
    a = it_spawn(g_rt, &slow_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_SLOW, &ms, sizeof ms));
    IT_WAIT_UNTIL(IT_LOAD(g_done) == 1);
    /* Reported while it ran; give a late report time to show. */
    tr_test_sleep_ms(100);
    assert_int_equal(warns(), 1);
    assert_int_equal(it_stats(g_rt).slow_handlers, 1);
    pthread_mutex_lock(&g_log_lock);
    snprintf(want, sizeof want, "slow_actor (slot %u", a.slot_);
    assert_non_null(strstr(g_last, want));
    assert_non_null(strstr(g_last, "message type 7 "));
    pthread_mutex_unlock(&g_log_lock);
}

static void
test_fast_handlers_not_reported(void **state)
{
    tr_ref a;

    (void)state;
    g_rt = runtime(0);
    a = it_spawn(g_rt, &slow_actor, 0, 0, TR_BACKPRESSURE);
    for (int i = 0; i < 200; i++) {
        TR_ASSERT_OK(tr_send(g_rt, a, MSG_FAST, NULL, 0));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_done) == 200);
    tr_test_sleep_ms(150);
    assert_int_equal(warns(), 0);
    assert_int_equal(it_stats(g_rt).slow_handlers, 0);
}

static void
test_off_reports_nothing(void **state)
{
    uint32_t ms = 150;
    tr_ref a;

    (void)state;
    g_rt = runtime(TR_WATCHDOG_OFF);
    a = it_spawn(g_rt, &slow_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_SLOW, &ms, sizeof ms));
    IT_WAIT_UNTIL(IT_LOAD(g_done) == 1);
    tr_test_sleep_ms(50);
    assert_int_equal(warns(), 0);
    assert_int_equal(it_stats(g_rt).slow_handlers, 0);
}

/* A lower threshold; each slow call is its own report. */
static void
test_threshold_configurable(void **state)
{
    uint32_t ms = 90;
    tr_ref a;

    (void)state;
    g_rt = runtime(30);
    a = it_spawn(g_rt, &slow_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_SLOW, &ms, sizeof ms));
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_SLOW, &ms, sizeof ms));
    IT_WAIT_UNTIL(IT_LOAD(g_done) == 2);
    tr_test_sleep_ms(50);
    assert_int_equal(warns(), 2);
    assert_int_equal(it_stats(g_rt).slow_handlers, 2);
}

/* Blocking where it belongs is not reported. */
static void
nap_job(void *arg, tr_blocking_result *out)
{
    (void)arg;
    (void)out;
    tr_test_sleep_ms(150);
    IT_INC(g_done);
}

static void
napping_thread(tr_thread *self, void *arg)
{
    tr_thread_msg m;

    (void)arg;
    while (tr_thread_receive(self, &m, TR_THREAD_FOREVER) == TR_OK) {
        tr_test_sleep_ms(150);
        IT_INC(g_done);
    }
}

static void
test_pool_and_thread_actors_not_reported(void **state)
{
    tr_job job = {0};
    tr_thread *t = NULL;
    tr_ref ref;

    (void)state;
    g_rt = runtime(0);
    job.fn = nap_job;
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    TR_ASSERT_OK(
        tr_thread_spawn(g_rt, "napper", NULL, napping_thread, NULL, &ref, &t));
    TR_ASSERT_OK(tr_send(g_rt, ref, MSG_NAP, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_done) == 2);
    assert_int_equal(warns(), 0);
    assert_int_equal(it_stats(g_rt).slow_handlers, 0);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_slow_handler_reported_once),
        T(test_fast_handlers_not_reported),
        T(test_off_reports_nothing),
        T(test_threshold_configurable),
        T(test_pool_and_thread_actors_not_reported),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
