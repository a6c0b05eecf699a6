/* Out-of-memory paths: every allocation of a synchronous call fails in
 * turn (SQLite-style), and the call must report TR_ENOMEM, change nothing
 * and leak nothing (LeakSanitizer checks the last part), until the walk
 * reaches an allocation count at which the call succeeds. */
#include "tr_test.h"

#include "fail_alloc.h"

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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
