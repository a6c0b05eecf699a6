/* Supervisors, after the meaning of OTP's supervisor tests: each
 * strategy's base case, the restart type x end reason matrix, the
 * intensity boundary (R restarts within T: alive; R+1: gives up, its
 * children stopped), escalation up a tree, backoff spacing, decider
 * directives, poison-message retry and quarantine, messages held while a
 * child backs off, shutdown (reverse order, draining, refusal, kill after
 * the grace), dynamic children, and which/count/walk. Restarts happen in
 * place: the child's ref stays the same, its state starts from zero. */
#include "itest.h"

enum {
    MSG_INC = 1, /* void */
    MSG_GET,     /* request, void: reply int count */
    MSG_FAIL,    /* void: the handler fails */
    MSG_QUIT,    /* void: exits normally */
    MSG_POISON,  /* request, void: always fails */
    MSG_NAP,     /* uint32_t ms: awaits a sleep */
};

#define KIDS 8

static _Atomic int g_inits[KIDS];
static _Atomic int g_terms[KIDS];
static _Atomic int g_incs[KIDS];
static _Atomic int g_order[KIDS]; /* terminate order, index + 1 */
static _Atomic int g_norder;
static _Atomic uint64_t g_init_ns[KIDS];

struct worker {
    int id;
    int count;
};

static tr_status
w_init(tr_cx *cx, struct worker *self, const int *id)
{
    (void)cx;
    self->id = *id;
    IT_STORE(g_init_ns[*id], tr_test_now_ns());
    IT_INC(g_inits[*id]);
    return TR_OK;
}

static tr_status
w_inc(tr_cx *cx, struct worker *self, const void *none)
{
    (void)cx;
    (void)none;
    self->count++;
    IT_INC(g_incs[self->id]);
    return TR_OK;
}

static tr_status
w_get(tr_cx *cx, struct worker *self, const void *none)
{
    (void)none;
    return tr_reply(cx, &self->count, sizeof self->count);
}

static tr_status
w_fail(tr_cx *cx, struct worker *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    return TR_EFAILED;
}

static tr_status
w_quit(tr_cx *cx, struct worker *self, const void *none)
{
    (void)self;
    (void)none;
    return tr_exit(cx, 0, NULL);
}

static tr_status
w_nap(tr_cx *cx, struct worker *self, const uint32_t *ms)
{
    (void)self;
    TR_ASYNC_BEGIN(cx);
    TR_AWAIT_SLEEP(cx, *ms);
    TR_ASYNC_END(cx, TR_OK);
}

static tr_status
w_terminate(tr_cx *cx, struct worker *self, const tr_reason *why)
{
    (void)cx;
    (void)why;
    if (why->kind == TR_EXIT_SHUTDOWN && strcmp(why->text, "drained") == 0) {
        int i = atomic_fetch_add(&g_norder, 1);

        if (i < KIDS) {
            IT_STORE(g_order[i], self->id + 1);
        }
    }
    IT_INC(g_terms[self->id]);
    return TR_OK;
}

TR_ACTOR(worker_actor, struct worker, TR_ON_INIT(int, w_init),
         TR_ON(MSG_INC, void, w_inc), TR_ON(MSG_GET, void, w_get),
         TR_ON(MSG_FAIL, void, w_fail), TR_ON(MSG_QUIT, void, w_quit),
         TR_ON(MSG_POISON, void, w_fail), TR_ON(MSG_NAP, uint32_t, w_nap),
         TR_ON_TERMINATE(w_terminate));

static const int g_ids[KIDS] = {0, 1, 2, 3, 4, 5, 6, 7};

static void
reset(void)
{
    for (int i = 0; i < KIDS; i++) {
        IT_STORE(g_inits[i], 0);
        IT_STORE(g_terms[i], 0);
        IT_STORE(g_incs[i], 0);
        IT_STORE(g_order[i], 0);
    }
    IT_STORE(g_norder, 0);
}

static tr_child_spec
kid(int i, tr_restart restart)
{
    tr_child_spec c = {0};

    c.id = "worker";
    c.actor = &worker_actor;
    c.arg = &g_ids[i];
    c.arg_len = sizeof g_ids[i];
    c.restart = restart;
    c.shutdown_ms = 2000;
    return c;
}

/* The children's refs, in start order. */
static uint32_t
children(tr_ref sup, tr_ref *refs, uint32_t max)
{
    tr_child_info info[KIDS];
    uint32_t n = 0;

    TR_ASSERT_OK(tr_sup_which_children(g_rt, sup, 0, info, max, &n, 5000));
    for (uint32_t i = 0; i < n; i++) {
        refs[i] = info[i].ref;
    }
    return n;
}

static int
count(tr_ref w)
{
    int c = -1;

    TR_ASSERT_OK(tr_ask_wait(g_rt, w, MSG_GET, NULL, 0, &c, sizeof c, 5000));
    return c;
}

static void
bump(tr_ref w, int times)
{
    for (int i = 0; i < times; i++) {
        TR_ASSERT_OK(tr_send(g_rt, w, MSG_INC, NULL, 0));
    }
}

/* Starts a supervisor of three workers under `strategy`, bumps their
 * counters to 1, 2, 3, fails the middle one, and returns which children
 * restarted (bit i: child i's state was reset). */
static int
strategy_case(tr_strategy strategy)
{
    tr_child_spec cs[3] = {kid(0, TR_PERMANENT), kid(1, TR_PERMANENT),
                           kid(2, TR_PERMANENT)};
    tr_sup_spec spec = {.strategy = strategy, .children = cs, .nchildren = 3};
    tr_ref sup, r[3], after[3];
    int mask = 0;

    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, r, 3), 3);
    for (int i = 0; i < 3; i++) {
        bump(r[i], i + 1);
        assert_int_equal(count(r[i]), i + 1);
    }
    TR_ASSERT_OK(tr_send(g_rt, r[1], MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_inits[1]) == 2);
    tr_test_sleep_ms(20);
    assert_int_equal(children(sup, after, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(tr_ref_eq(r[i], after[i])); /* in place: same refs */
        if (count(r[i]) == 0) {
            mask |= 1 << i;
            assert_int_equal(IT_LOAD(g_inits[i]), 2);
        } else {
            assert_int_equal(count(r[i]), i + 1);
            assert_int_equal(IT_LOAD(g_inits[i]), 1);
        }
    }
    tr_runtime_destroy(&g_rt); /* before its specs go */
    return mask;
}

static void
test_one_for_one(void **state)
{
    (void)state;
    assert_int_equal(strategy_case(TR_ONE_FOR_ONE), 0x2);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

static void
test_one_for_all(void **state)
{
    (void)state;
    assert_int_equal(strategy_case(TR_ONE_FOR_ALL), 0x7);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

static void
test_rest_for_one(void **state)
{
    (void)state;
    assert_int_equal(strategy_case(TR_REST_FOR_ONE), 0x6);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* restart type x end reason: restarted iff permanent, or transient and
 * failed. */
static void
test_restart_matrix(void **state)
{
    static const tr_restart types[3] = {TR_PERMANENT, TR_TRANSIENT,
                                        TR_TEMPORARY};
    static const uint32_t how[2] = {MSG_QUIT, MSG_FAIL};

    (void)state;
    for (int t = 0; t < 3; t++) {
        for (int h = 0; h < 2; h++) {
            tr_child_spec cs = kid(0, types[t]);
            tr_sup_spec spec = {.children = &cs, .nchildren = 1};
            tr_sup_counts c;
            tr_ref sup, r;
            bool restarts = types[t] == TR_PERMANENT ||
                            (types[t] == TR_TRANSIENT && how[h] == MSG_FAIL);

            reset();
            g_rt = it_runtime(2, NULL);
            TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
            assert_int_equal(children(sup, &r, 1), 1);
            TR_ASSERT_OK(tr_send(g_rt, r, how[h], NULL, 0));
            IT_WAIT_UNTIL(IT_LOAD(g_terms[0]) == 1);
            if (restarts) {
                IT_WAIT_UNTIL(IT_LOAD(g_inits[0]) == 2);
            } else {
                IT_WAIT_UNTIL(it_stats(g_rt).alive == 1); /* the sup */
            }
            tr_test_sleep_ms(10);
            TR_ASSERT_OK(tr_sup_count_children(g_rt, sup, &c, 5000));
            assert_int_equal(c.active, restarts ? 1 : 0);
            assert_int_equal(c.restarts, restarts ? 1 : 0);
            assert_int_equal(IT_LOAD(g_inits[0]), restarts ? 2 : 1);
            tr_runtime_destroy(&g_rt);
        }
    }
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* Intensity 2 within 10 s: two restarts are fine, the third makes the
 * supervisor stop its children and end. */
static void
test_intensity_boundary(void **state)
{
    tr_child_spec cs[2] = {kid(0, TR_PERMANENT), kid(1, TR_PERMANENT)};
    tr_sup_spec spec = {
        .intensity = 2, .period_ms = 10000, .children = cs, .nchildren = 2};
    tr_ref sup, r[2];

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, r, 2), 2);
    for (int i = 1; i <= 2; i++) {
        TR_ASSERT_OK(tr_send(g_rt, r[0], MSG_FAIL, NULL, 0));
        IT_WAIT_UNTIL(IT_LOAD(g_inits[0]) == i + 1);
    }
    tr_test_sleep_ms(10);
    assert_int_equal(it_stats(g_rt).alive, 3);
    TR_ASSERT_OK(tr_send(g_rt, r[0], MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    assert_int_equal(IT_LOAD(g_inits[0]), 3); /* not a fourth time */
    assert_int_equal(IT_LOAD(g_terms[1]), 1);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* A sub-supervisor that gives up fails; its supervisor restarts it in
 * place, which starts its children again. */
static void
test_escalation_in_a_tree(void **state)
{
    tr_child_spec leaf = kid(0, TR_PERMANENT);
    tr_sup_spec sub = {
        .intensity = 1, .period_ms = 10000, .children = &leaf, .nchildren = 1};
    tr_child_spec mid = {.id = "sub", .sup = &sub, .restart = TR_PERMANENT};
    tr_sup_spec top = {
        .intensity = 5, .period_ms = 10000, .children = &mid, .nchildren = 1};
    tr_ref sup, s, w;
    tr_sup_counts c;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &top, &sup));
    assert_int_equal(children(sup, &s, 1), 1);
    assert_int_equal(children(s, &w, 1), 1);
    TR_ASSERT_OK(tr_send(g_rt, w, MSG_FAIL, NULL, 0)); /* restart 1: ok */
    IT_WAIT_UNTIL(IT_LOAD(g_inits[0]) == 2);
    TR_ASSERT_OK(tr_send(g_rt, w, MSG_FAIL, NULL, 0)); /* 2: sub gives up */
    IT_WAIT_UNTIL(IT_LOAD(g_inits[0]) == 3);           /* a new leaf */
    TR_ASSERT_OK(tr_sup_count_children(g_rt, sup, &c, 5000));
    assert_int_equal(c.restarts, 1);
    assert_int_equal(c.supervisors, 1);
    IT_WAIT_UNTIL(children(s, &w, 1) == 1 && count(w) == 0);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* Backoff 40 ms doubling: the first restart waits >= 40 ms, the next in a
 * row >= 80 ms. Messages sent meanwhile wait and are all handled. */
static void
test_backoff_holds_messages(void **state)
{
    tr_child_spec cs = kid(0, TR_PERMANENT);
    tr_sup_spec spec = {.intensity = 10,
                        .period_ms = 10000,
                        .backoff = {.min_ms = 40, .max_ms = 1000},
                        .children = &cs,
                        .nchildren = 1};
    tr_ref sup, w;
    uint64_t t0;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    for (int round = 1; round <= 2; round++) {
        t0 = tr_test_now_ns();
        TR_ASSERT_OK(tr_send(g_rt, w, MSG_FAIL, NULL, 0));
        bump(w, 5); /* held while it is down */
        IT_WAIT_UNTIL(IT_LOAD(g_inits[0]) == round + 1);
        assert_true(IT_LOAD(g_init_ns[0]) - t0 >=
                    (uint64_t)(40 << (round - 1)) * 1000000u);
        IT_WAIT_UNTIL(IT_LOAD(g_incs[0]) == 5 * round);
    }
    assert_int_equal(count(w), 5); /* the restart zeroed it once more */
    /* nothing lost but the two failing messages, dead-lettered */
    assert_int_equal(it_stats(g_rt).dead_letters, 2);
    assert_int_equal(it_dl_count(MSG_FAIL, TR_EFAILED), 2);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

static tr_directive
decide_resume(void *arg, const tr_reason *why)
{
    (void)arg;
    (void)why;
    return TR_RESUME;
}

static tr_directive
decide_stop(void *arg, const tr_reason *why)
{
    (void)arg;
    (void)why;
    return TR_STOP;
}

static tr_directive
decide_escalate(void *arg, const tr_reason *why)
{
    (void)arg;
    return why->code == TR_EFAILED ? TR_ESCALATE : TR_RESTART;
}

static void
test_deciders(void **state)
{
    tr_child_spec cs = kid(0, TR_PERMANENT);
    tr_sup_spec spec = {.children = &cs, .nchildren = 1};
    tr_ref sup, w;

    (void)state;
    /* resume: state kept, the failing message dead-lettered */
    reset();
    g_rt = it_runtime(2, NULL);
    cs.decider = decide_resume;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    bump(w, 3);
    TR_ASSERT_OK(tr_send(g_rt, w, MSG_FAIL, NULL, 0));
    bump(w, 1);
    assert_int_equal(count(w), 4);
    assert_int_equal(IT_LOAD(g_inits[0]), 1);
    assert_int_equal(it_dl_count(MSG_FAIL, TR_EFAILED), 1);
    tr_runtime_destroy(&g_rt);

    /* stop: it ends for good */
    reset();
    it_dl_reset();
    g_rt = it_runtime(2, NULL);
    cs.decider = decide_stop;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    TR_ASSERT_OK(tr_send(g_rt, w, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 1);
    assert_int_equal(IT_LOAD(g_inits[0]), 1);
    tr_runtime_destroy(&g_rt);

    /* escalate: the supervisor fails */
    reset();
    g_rt = it_runtime(2, NULL);
    cs.decider = decide_escalate;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    TR_ASSERT_OK(tr_send(g_rt, w, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* retry 2: a message that always fails is handled three times, then
 * quarantined (TR_EPOISON, its asker told so), and the child goes on. */
static void
test_poison_quarantine(void **state)
{
    tr_child_spec cs = kid(0, TR_PERMANENT);
    tr_sup_spec spec = {
        .intensity = 10, .period_ms = 10000, .children = &cs, .nchildren = 1};
    tr_ref sup, w;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    cs.retry = 2;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, w, MSG_POISON, NULL, 0, NULL, 0, 5000),
                     TR_EPOISON);
    /* failed 3 times: restarted after each, the last time with the message
     * quarantined */
    IT_WAIT_UNTIL(IT_LOAD(g_inits[0]) == 4);
    assert_int_equal(it_dl_count(MSG_POISON, TR_EPOISON), 1);
    bump(w, 2);
    assert_int_equal(count(w), 2); /* it goes on */
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* Stopping a tree, by tr_sup_stop or by the runtime's shutdown (which
 * asks top supervisors to stop): children end in reverse order, each after
 * draining its queue (nothing dropped), then a send finds them gone. */
static void
drain_case(bool by_runtime)
{
    tr_child_spec cs[3] = {kid(0, TR_PERMANENT), kid(1, TR_PERMANENT),
                           kid(2, TR_PERMANENT)};
    tr_sup_spec spec = {.children = cs, .nchildren = 3};
    tr_ref sup, r[3];
    uint32_t nap = 30;

    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, r, 3), 3);
    for (int i = 0; i < 3; i++) {
        TR_ASSERT_OK(tr_send(g_rt, r[i], MSG_NAP, &nap, sizeof nap));
        bump(r[i], 10);
    }
    if (by_runtime) {
        TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 10000));
    } else {
        TR_ASSERT_OK(tr_sup_stop(g_rt, sup, 10000));
        IT_WAIT_UNTIL(it_stats(g_rt).alive == 0); /* tr_sup_stop's watcher */
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(IT_LOAD(g_incs[i]), 10);     /* drained, not dropped */
        assert_int_equal(IT_LOAD(g_order[i]), 3 - i); /* 2, 1, 0 */
    }
    assert_int_equal(it_stats(g_rt).dead_letters, 0);
    if (!by_runtime) {
        /* gone: refused (this send is itself a dead letter) */
        TR_ASSERT_STATUS(tr_send(g_rt, r[0], MSG_INC, NULL, 0), TR_EDEAD);
    }
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

static void
test_stop_drains_in_reverse(void **state)
{
    (void)state;
    drain_case(false);
}

static void
test_runtime_shutdown_drains_tree(void **state)
{
    (void)state;
    drain_case(true);
}

static void
test_stop_refuses_and_kills_after_grace(void **state)
{
    tr_child_spec cs = kid(0, TR_PERMANENT);
    tr_sup_spec spec = {.children = &cs, .nchildren = 1};
    tr_ref sup, w;
    uint32_t nap = 5000;
    uint64_t t0;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    cs.shutdown_ms = 50;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    TR_ASSERT_OK(tr_send(g_rt, w, MSG_NAP, &nap, sizeof nap)); /* stuck */
    bump(w, 3);
    t0 = tr_test_now_ns();
    TR_ASSERT_OK(tr_sup_stop(g_rt, sup, 10000));
    assert_true(tr_test_now_ns() - t0 < 4000u * 1000000u);
    assert_int_equal(IT_LOAD(g_terms[0]), 1);
    assert_int_equal(IT_LOAD(g_incs[0]), 0);
    /* the three waiting increments were dead-lettered when it was killed */
    assert_int_equal(it_dl_count(MSG_INC, TR_EDEAD), 3);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

/* Regressions. A draining child whose last turn ends exactly on the
 * budget still ends (drained, not killed after its grace). */
static void
hog(tr_cx *cx, void *arg)
{
    (void)cx;
    (void)arg;
    tr_test_sleep_ms(300); /* holds the only worker */
}

static void *
stopper(void *arg)
{
    tr_ref *sup = arg;

    (void)tr_sup_stop(g_rt, *sup, 10000);
    return NULL;
}

static void
test_drain_ending_on_the_budget(void **state)
{
    tr_config cfg = {.budget = 64, .watchdog_ms = TR_WATCHDOG_OFF};
    tr_child_spec cs = kid(0, TR_PERMANENT);
    tr_sup_spec spec = {.children = &cs, .nchildren = 1};
    tr_mailbox_opts mb = {64, TR_BACKPRESSURE};
    tr_ref sup, w, h;
    pthread_t th;
    uint64_t t0;

    (void)state;
    reset();
    g_rt = it_runtime(1, &cfg);
    cs.mailbox = &mb;
    cs.shutdown_ms = 2000;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    h = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_async(g_rt, h, hog, NULL);
    bump(w, 64); /* exactly a budget's worth, while the worker is held */
    t0 = tr_test_now_ns();
    assert_int_equal(pthread_create(&th, NULL, stopper, &sup), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(tr_test_now_ns() - t0 < 1500u * 1000000u); /* not 2 s */
    assert_int_equal(IT_LOAD(g_incs[0]), 64);
    assert_int_equal(IT_LOAD(g_order[0]), 1); /* it ended drained */
    tr_runtime_destroy(&g_rt);
}

/* A child stopped with tr_sup_stop_child and killed (brutal kill) is
 * forgotten, not restarted. */
static void
test_stop_child_brutal_is_not_restarted(void **state)
{
    tr_child_spec cs = kid(0, TR_PERMANENT);
    tr_sup_spec spec = {.children = &cs, .nchildren = 1};
    tr_sup_counts c;
    tr_ref sup, w;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    cs.shutdown_ms = TR_BRUTAL_KILL;
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    assert_int_equal(children(sup, &w, 1), 1);
    TR_ASSERT_OK(tr_sup_stop_child(g_rt, sup, w, 5000));
    IT_WAIT_UNTIL(IT_LOAD(g_terms[0]) == 1);
    tr_test_sleep_ms(50);
    TR_ASSERT_OK(tr_sup_count_children(g_rt, sup, &c, 5000));
    assert_int_equal(c.active, 0);
    assert_int_equal(c.restarts, 0);
    assert_int_equal(IT_LOAD(g_inits[0]), 1);
    tr_runtime_destroy(&g_rt);
}

/* A supervisor whose init cannot start every child leaves nothing behind
 * (LeakSanitizer checks the memory). */
static void
test_init_failure_cleans_up(void **state)
{
    tr_child_spec cs[2] = {kid(0, TR_PERMANENT), kid(1, TR_PERMANENT)};
    tr_sup_spec spec = {.children = cs, .nchildren = 2};
    tr_ref sup;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    cs[1].arg_len = 3; /* the init hook takes an int: its spawn fails */
    TR_ASSERT_STATUS(tr_sup_start(g_rt, &spec, &sup), TR_EFAILED);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    assert_int_equal(IT_LOAD(g_inits[0]), 1);
    assert_int_equal(IT_LOAD(g_terms[0]), 1);
    tr_runtime_destroy(&g_rt);
}

static void
test_dynamic_children(void **state)
{
    tr_child_spec cs = kid(0, TR_TRANSIENT);
    tr_sup_spec spec = {
        .strategy = TR_SIMPLE_ONE_FOR_ONE, .children = &cs, .nchildren = 1};
    uint32_t n = (uint32_t)tr_test_env_u64("TR_SUP_CHILDREN", 5000);
    tr_ref sup, *refs = calloc(n, sizeof *refs);
    tr_sup_counts c;

    (void)state;
    assert_non_null(refs);
    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &spec, &sup));
    for (uint32_t i = 0; i < n; i++) {
        TR_ASSERT_OK(tr_sup_start_child(g_rt, sup, NULL, 0, &refs[i], 5000));
    }
    TR_ASSERT_OK(tr_sup_count_children(g_rt, sup, &c, 5000));
    assert_int_equal(c.specs, n);
    assert_int_equal(c.active, n);
    for (uint32_t i = 0; i < n; i++) {
        TR_ASSERT_OK(tr_sup_stop_child(g_rt, sup, refs[i], 5000));
    }
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 1);
    TR_ASSERT_OK(tr_sup_count_children(g_rt, sup, &c, 5000));
    assert_int_equal(c.specs, 0);
    TR_ASSERT_STATUS(tr_sup_stop_child(g_rt, sup, refs[0], 5000), TR_ENOENT);
    free(refs);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

static void
walk_count(void *arg, uint32_t depth, const tr_child_info *info)
{
    uint32_t *seen = arg;

    (void)info;
    seen[depth < 4 ? depth : 3]++;
}

static void
test_walk_and_bad_specs(void **state)
{
    tr_child_spec leaves[2] = {kid(0, TR_PERMANENT), kid(1, TR_PERMANENT)};
    tr_sup_spec sub = {.children = leaves, .nchildren = 2};
    tr_child_spec top_kids[2] = {{.id = "sub", .sup = &sub},
                                 kid(2, TR_PERMANENT)};
    tr_sup_spec top = {.children = top_kids, .nchildren = 2};
    tr_sup_spec bad = {.children = top_kids, .nchildren = 0};
    uint32_t seen[4] = {0};
    tr_ref sup;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_sup_start(g_rt, &top, &sup));
    TR_ASSERT_OK(tr_sup_walk(g_rt, sup, walk_count, seen, 5000));
    assert_int_equal(seen[1], 2); /* sub, worker 2 */
    assert_int_equal(seen[2], 2); /* workers 0 and 1 */
    TR_ASSERT_STATUS(tr_sup_start(g_rt, &bad, &sup), TR_EINVAL);
    TR_ASSERT_STATUS(tr_sup_start(g_rt, NULL, &sup), TR_EINVAL);
    /* the specs live on this stack: the runtime goes first */
    tr_runtime_destroy(&g_rt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_one_for_one),
        IT_TEST(test_one_for_all),
        IT_TEST(test_rest_for_one),
        IT_TEST(test_restart_matrix),
        IT_TEST(test_intensity_boundary),
        IT_TEST(test_escalation_in_a_tree),
        IT_TEST(test_backoff_holds_messages),
        IT_TEST(test_deciders),
        IT_TEST(test_poison_quarantine),
        IT_TEST(test_stop_drains_in_reverse),
        IT_TEST(test_stop_refuses_and_kills_after_grace),
        IT_TEST(test_runtime_shutdown_drains_tree),
        IT_TEST(test_drain_ending_on_the_budget),
        IT_TEST(test_stop_child_brutal_is_not_restarted),
        IT_TEST(test_init_failure_cleans_up),
        IT_TEST(test_dynamic_children),
        IT_TEST(test_walk_and_bad_specs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
