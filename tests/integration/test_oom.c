/* Out-of-memory paths: every allocation of a synchronous call fails in
 * turn (SQLite-style), and the call must report TR_ENOMEM, change nothing
 * and leak nothing (LeakSanitizer checks the last part), until the walk
 * reaches an allocation count at which the call succeeds. */
#include "tr_test.h"

#include "fail_alloc.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* More failure points than any call here has: the walk must end before. */
#define MAX_POINTS 200

enum { MSG_ADD = 1, MSG_GET };

struct counter {
    long total;
};

static tr_status
on_add(tr_cx *cx, struct counter *self, const long *n)
{
    (void)cx;
    self->total += *n;
    return TR_OK;
}

static tr_status
on_get(tr_cx *cx, struct counter *self, const void *none)
{
    (void)none;
    return tr_reply(cx, &self->total, sizeof self->total);
}

TR_ACTOR(counter_actor, struct counter, TR_ON(MSG_ADD, long, on_add),
         TR_ON(MSG_GET, void, on_get));

static long
total_of(tr_runtime *rt, tr_ref c)
{
    long total = -1;

    TR_ASSERT_OK(tr_ask_wait(rt, c, MSG_GET, NULL, 0, &total, sizeof total,
                             (uint32_t)(5000 * tr_test_timeout_multiplier())));
    return total;
}

static int
setup(void **state)
{
    (void)state;
    fail_alloc_install();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    fail_alloc_uninstall();
    return 0;
}

static tr_runtime *
new_runtime(void)
{
    tr_config cfg = {0};
    tr_runtime *rt = NULL;

    cfg.workers = 2;
    TR_ASSERT_OK(tr_runtime_new(&rt, &cfg));
    return rt;
}

static void
runtime_new_walks_every_allocation(void **state)
{
    size_t n;

    (void)state;
    for (n = 1; n < MAX_POINTS; n++) {
        tr_config cfg = {0};
        tr_runtime *rt = NULL;
        tr_status st;

        cfg.workers = 2;
        fail_alloc_arm(n);
        st = tr_runtime_new(&rt, &cfg);
        fail_alloc_disarm();
        if (st == TR_OK) {
            assert_non_null(rt);
            tr_runtime_destroy(&rt);
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
        assert_null(rt); /* a failed call changes nothing */
    }
    assert_true(n > 1); /* the call does allocate, so the walk tested it */
    assert_true(n < MAX_POINTS);
}

static void
spawn_walks_every_allocation(void **state)
{
    tr_runtime *rt = new_runtime();
    tr_stats before, after;
    size_t n;

    (void)state;
    TR_ASSERT_OK(tr_runtime_stats(rt, &before));
    for (n = 1; n < MAX_POINTS; n++) {
        tr_ref c = TR_NOREF;
        tr_status st;

        fail_alloc_arm(n);
        st = tr_spawn(rt, &counter_actor, NULL, &c);
        fail_alloc_disarm();
        if (st == TR_OK) {
            TR_ASSERT_OK(tr_send(rt, c, MSG_ADD, &(long){5}, sizeof(long)));
            assert_int_equal(total_of(rt, c), 5);
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
        assert_true(tr_ref_is_none(c));
        TR_ASSERT_OK(tr_runtime_stats(rt, &after));
        assert_int_equal(after.spawned, before.spawned);
    }
    assert_true(n > 1 && n < MAX_POINTS);
    tr_runtime_destroy(&rt);
}

static void
send_walks_every_allocation(void **state)
{
    tr_runtime *rt = new_runtime();
    tr_ref c;
    long sent = 0;
    size_t n;

    (void)state;
    TR_ASSERT_OK(tr_spawn(rt, &counter_actor, NULL, &c));
    for (n = 1; n < MAX_POINTS; n++) {
        tr_status st;

        fail_alloc_arm(n);
        st = tr_send(rt, c, MSG_ADD, &(long){1}, sizeof(long));
        fail_alloc_disarm();
        if (st == TR_OK) {
            sent++;
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
    }
    assert_true(n < MAX_POINTS);
    /* Only the successful send arrived: a failed one delivered nothing. */
    assert_int_equal(total_of(rt, c), sent);
    tr_runtime_destroy(&rt);
}

static void
free_buf(void *p)
{
    free(p);
}

static void
send_move_keeps_the_buffer_on_enomem(void **state)
{
    tr_runtime *rt = new_runtime();
    tr_ref c;
    size_t n;

    (void)state;
    TR_ASSERT_OK(tr_spawn(rt, &counter_actor, NULL, &c));
    for (n = 1; n < MAX_POINTS; n++) {
        long *buf = malloc(sizeof *buf);
        void *p = buf;
        tr_status st;

        assert_non_null(buf);
        *buf = 3;
        fail_alloc_arm(n);
        st = tr_send_move(rt, c, MSG_ADD, &p, sizeof *buf, free_buf);
        fail_alloc_disarm();
        if (st == TR_OK) {
            assert_null(p); /* the runtime took it and frees it */
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
        assert_ptr_equal(p, buf); /* still ours */
        free(buf);
    }
    assert_true(n < MAX_POINTS);
    assert_int_equal(total_of(rt, c), 3);
    tr_runtime_destroy(&rt);
}

static void
ask_and_timers_walk_every_allocation(void **state)
{
    tr_runtime *rt = new_runtime();
    tr_ref c;
    size_t n;

    (void)state;
    TR_ASSERT_OK(tr_spawn(rt, &counter_actor, NULL, &c));
    for (n = 1; n < MAX_POINTS; n++) {
        long total = -1;
        tr_status st;

        fail_alloc_arm(n);
        st = tr_ask_wait(rt, c, MSG_GET, NULL, 0, &total, sizeof total,
                         (uint32_t)(5000 * tr_test_timeout_multiplier()));
        fail_alloc_disarm();
        if (st == TR_OK) {
            assert_int_equal(total, 0);
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
    }
    assert_true(n > 1 && n < MAX_POINTS);
    for (n = 1; n < MAX_POINTS; n++) {
        tr_timer t;
        tr_status st;

        fail_alloc_arm(n);
        st = tr_send_after(rt, c, MSG_ADD, &(long){7}, sizeof(long), 1, &t);
        fail_alloc_disarm();
        if (st == TR_OK) {
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
    }
    assert_true(n > 1 && n < MAX_POINTS);
    /* The one armed timer fires once: poll until it has. */
    for (int i = 0; i < 5000 && total_of(rt, c) != 7; i++) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
    }
    assert_int_equal(total_of(rt, c), 7);
    tr_runtime_destroy(&rt);
}

static void
allocator_cannot_change_under_a_runtime(void **state)
{
    tr_runtime *rt = new_runtime();
    tr_allocator bad = {malloc, realloc, NULL};

    (void)state;
    TR_ASSERT_STATUS(tr_set_allocator(NULL), TR_ESTATE);
    tr_runtime_destroy(&rt);
    TR_ASSERT_STATUS(tr_set_allocator(&bad), TR_EINVAL);
}

/* A thread actor that receives until stopped. */
static void
idle_thread(tr_thread *self, void *arg)
{
    tr_thread_msg m;

    (void)arg;
    while (tr_thread_receive(self, &m, TR_THREAD_FOREVER) != TR_EDEAD) {
    }
}

static void
thread_spawn_walks_every_allocation(void **state)
{
    tr_runtime *rt = new_runtime();
    size_t n;

    (void)state;
    for (n = 1; n < MAX_POINTS; n++) {
        tr_thread *t = NULL;
        tr_ref r = TR_NOREF;
        tr_status st;
        tr_stats s;

        fail_alloc_arm(n);
        st = tr_thread_spawn(rt, "oom", NULL, idle_thread, NULL, &r, &t);
        fail_alloc_disarm();
        if (st == TR_OK) {
            TR_ASSERT_OK(tr_stop(rt, r));
            TR_ASSERT_OK(tr_thread_join(&t));
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
        assert_null(t);
        assert_true(tr_ref_is_none(r));
        TR_ASSERT_OK(tr_runtime_stats(rt, &s));
        assert_int_equal(s.alive, 0);
    }
    assert_true(n > 1 && n < MAX_POINTS);
    tr_runtime_destroy(&rt);
}

static _Atomic int g_job_runs, g_job_cancels;

static void
count_job(void *arg, tr_blocking_result *out)
{
    (void)arg;
    (void)out;
    atomic_fetch_add_explicit(&g_job_runs, 1, memory_order_release);
}

static void
count_cancel(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&g_job_cancels, 1, memory_order_relaxed);
}

/* The first job starts the pool: its every allocation fails in turn too. */
static void
blocking_run_walks_every_allocation(void **state)
{
    tr_runtime *rt = new_runtime();
    tr_job job = {.fn = count_job, .cancel_fn = count_cancel};
    uint64_t end;
    size_t n;

    (void)state;
    for (n = 1; n < MAX_POINTS; n++) {
        tr_status st;

        fail_alloc_arm(n);
        st = tr_blocking_run(rt, &job);
        fail_alloc_disarm();
        if (st == TR_OK) {
            break;
        }
        TR_ASSERT_STATUS(st, TR_ENOMEM);
    }
    assert_true(n > 1 && n < MAX_POINTS);
    end = tr_test_now_ns() + tr_test_scaled_ms(5000) * 1000000u;
    while (atomic_load_explicit(&g_job_runs, memory_order_acquire) == 0) {
        assert_true(tr_test_now_ns() < end);
        tr_test_sleep_ms(1);
    }
    tr_runtime_destroy(&rt);
    assert_int_equal(atomic_load(&g_job_runs), 1); /* refused ones never */
    assert_int_equal(atomic_load(&g_job_cancels), 0);
}

/* A consumer that frees one slot wakes one waiter and keeps the rest in
 * hand, in its ext record; with no memory for that record, it wakes them
 * all at once instead. The consumer is a thread actor, so its thread's
 * allocations can fail on their own: only inside its receives. One worker
 * runs the producers one after the other, so once main sees every send but
 * the first FLOOD_CAP held, at least three producers are muted on the
 * consumer, and the first receive grabs them and frees one slot while
 * another message waits (with none left, the consumer would go idle and
 * wake them all anyway). */
#define FLOOD_CAP       2u
#define FLOOD_PRODUCERS 4u
#define FLOOD_EACH      10u
#define FLOOD_TOTAL     (FLOOD_PRODUCERS * FLOOD_EACH)

static struct {
    _Atomic int go;          /* main lets the consumer start receiving */
    _Atomic uint32_t got;    /* messages it received */
    _Atomic uint32_t failed; /* receives in which an allocation failed */
} g_flood;

static tr_status
flood_init(tr_cx *cx, void *self, const tr_ref *to)
{
    long one = 1;

    (void)self;
    for (uint32_t i = 0; i < FLOOD_EACH; i++) {
        tr_status st = tr_send(cx, *to, MSG_ADD, &one, sizeof one);

        if (st != TR_OK && st != TR_PENDING) {
            return st;
        }
    }
    return TR_OK;
}

TR_ACTOR(flood_actor, char, TR_ON_INIT(tr_ref, flood_init));

static void
flooded_thread(tr_thread *self, void *arg)
{
    tr_thread_msg m;

    (void)arg;
    while (!atomic_load_explicit(&g_flood.go, memory_order_acquire)) {
        tr_test_sleep_ms(1);
    }
    for (;;) {
        bool arm = atomic_load_explicit(&g_flood.got, memory_order_relaxed) <
                   FLOOD_TOTAL;
        tr_status st;

        if (arm) {
            fail_alloc_arm(1); /* this thread's next allocation fails */
        }
        st = tr_thread_receive(self, &m, TR_THREAD_FOREVER);
        if (arm && fail_alloc_count() > 0) {
            atomic_fetch_add_explicit(&g_flood.failed, 1, memory_order_relaxed);
        }
        fail_alloc_disarm();
        if (st != TR_OK) {
            return;
        }
        atomic_fetch_add_explicit(&g_flood.got, 1, memory_order_release);
    }
}

static void
waiters_in_hand_without_memory_are_all_woken(void **state)
{
    tr_config cfg = {0};
    tr_mailbox_opts mo = {.capacity = FLOOD_CAP, .overflow = TR_BACKPRESSURE};
    tr_spawn_opts po = {0};
    tr_runtime *rt = NULL;
    tr_thread *t = NULL;
    tr_ref c, p;
    tr_stats s;
    uint64_t end;

    (void)state;
    memset(&g_flood, 0, sizeof g_flood);
    cfg.workers = 1;
    TR_ASSERT_OK(tr_runtime_new(&rt, &cfg));
    TR_ASSERT_OK(
        tr_thread_spawn(rt, "flooded", &mo, flooded_thread, NULL, &c, &t));
    po.arg = &c;
    po.arg_len = sizeof c;
    for (uint32_t i = 0; i < FLOOD_PRODUCERS; i++) {
        TR_ASSERT_OK(tr_spawn(rt, &flood_actor, &po, &p));
    }
    end = tr_test_now_ns() + tr_test_scaled_ms(5000) * 1000000u;
    do {
        assert_true(tr_test_now_ns() < end);
        tr_test_sleep_ms(1);
        TR_ASSERT_OK(tr_runtime_stats(rt, &s));
    } while (s.held < FLOOD_TOTAL - FLOOD_CAP);
    atomic_store_explicit(&g_flood.go, 1, memory_order_release);
    while (atomic_load_explicit(&g_flood.got, memory_order_acquire) <
           FLOOD_TOTAL) {
        assert_true(tr_test_now_ns() < end);
        tr_test_sleep_ms(1);
    }
    /* The first receive could not keep its waiters (later ones may not
     * have needed to), and every held send arrived all the same. */
    assert_true(atomic_load(&g_flood.failed) >= 1);
    TR_ASSERT_OK(tr_runtime_stats(rt, &s));
    assert_int_equal(s.held, FLOOD_TOTAL - FLOOD_CAP);
    assert_int_equal(s.dead_letters, 0);
    TR_ASSERT_OK(tr_stop(rt, c));
    TR_ASSERT_OK(tr_thread_join(&t));
    tr_runtime_destroy(&rt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(runtime_new_walks_every_allocation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(spawn_walks_every_allocation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(send_walks_every_allocation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(send_move_keeps_the_buffer_on_enomem,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(ask_and_timers_walk_every_allocation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(allocator_cannot_change_under_a_runtime,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(thread_spawn_walks_every_allocation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(blocking_run_walks_every_allocation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            waiters_in_hand_without_memory_are_all_woken, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
