/* White-box tests of runtime/exec.c: scheduling from outside and from run
 * callbacks, the next slot and its streak limit, yield, idleness, parking,
 * waking for outside work, pacing outside spawners, waiting for a busy
 * executor and stopping. Stealing under load is covered by
 * tests/stress/test_stress_steal.c.
 *
 * The executor's contract is that an item is never scheduled while it is
 * queued or running; every test keeps it by scheduling an item again only
 * from its own run (or scheduling other items that are idle). */
#include "tr_test.h"

#include "runtime/exec.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#define LOG_MAX 4096

typedef struct fx fx;
typedef struct titem titem;

/* What an item does after its turn, once it is no longer marked busy. */
typedef enum action {
    ACT_NONE,
    ACT_SCHEDULE, /* tr__exec_schedule(self): the next slot */
    ACT_YIELD,    /* tr__exec_yield(self): the back of the ring */
} action;

struct titem {
    tr__task task; /* first: run() casts the task back to its item */
    _Atomic uint32_t runs;
    _Atomic uint32_t busy; /* 1 while a worker runs it */
    uint32_t id;
    /* Below: touched only by the item's own runs, which never overlap and
     * are ordered by the executor's queues. */
    uint32_t remaining;
    int64_t first_worker;
    uint32_t moved; /* runs on another worker than the first */
    action (*fn)(fx *f, tr__worker *w, titem *it);
    titem *peer[2];
};

struct fx {
    tr__exec *ex;
    uint32_t nworkers;
    _Atomic uint64_t total_runs;
    _Atomic uint32_t errors;
    _Atomic uint32_t gate;    /* test_idle_and_parks: releases the blocker */
    _Atomic uint32_t entered; /* test_idle_and_parks: the blocker runs */
    pthread_mutex_t log_lock;
    uint32_t log[LOG_MAX];
    uint32_t nlog;
    titem *items;
    uint32_t nitems;
};

/* ---- Helpers ----------------------------------------------------------- */

static bool
total_is(fx *f, uint64_t n)
{
    return atomic_load_explicit(&f->total_runs, memory_order_acquire) == n;
}

/* Polls until total_runs reaches n or ms (scaled) pass. */
static bool
wait_total(fx *f, uint64_t n, uint64_t ms)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    while (!total_is(f, n)) {
        if (tr__now_ns() > end) {
            return false;
        }
        tr_test_sleep_ms(1);
    }
    return true;
}

/* Polls until every worker is parked and nothing is queued. */
static bool
wait_idle(fx *f, uint64_t ms)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    while (!tr__exec_idle(f->ex)) {
        if (tr__now_ns() > end) {
            return false;
        }
        tr_test_sleep_ms(1);
    }
    return true;
}

/* Polls until the parks counter exceeds `than`. */
static bool
wait_parks_above(fx *f, uint64_t than, uint64_t ms)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    while (tr__exec_parks(f->ex) <= than) {
        if (tr__now_ns() > end) {
            return false;
        }
        tr_test_sleep_ms(1);
    }
    return true;
}

/* Every worker has gone all the way into its futex sleep. Without work
 * nothing wakes a parked worker, so at start-up each parks exactly once:
 * parks == nworkers with all of them idle means all are asleep, not merely
 * registered as idle and about to re-check the queues. */
static bool
wait_all_asleep(fx *f, uint64_t ms)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    while (!tr__exec_idle(f->ex) || tr__exec_parks(f->ex) < f->nworkers) {
        if (tr__now_ns() > end) {
            return false;
        }
        tr_test_sleep_ms(1);
    }
    return true;
}

/* From a run: stays in the turn until *flag is nonzero, counting an error
 * if that takes more than 10 s (scaled). acquire: pairs with the release
 * that sets the gate; an item's runs count needs no ordering. */
static void
hold_until(fx *f, _Atomic uint32_t *flag)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(10000) * 1000000u;

    while (atomic_load_explicit(flag, memory_order_acquire) == 0) {
        if (tr__now_ns() > end) {
            atomic_fetch_add_explicit(&f->errors, 1, memory_order_relaxed);
            return;
        }
        sched_yield();
    }
}

static void
log_run(fx *f, uint32_t id)
{
    pthread_mutex_lock(&f->log_lock);
    if (f->nlog < LOG_MAX) {
        f->log[f->nlog++] = id;
    }
    pthread_mutex_unlock(&f->log_lock);
}

static void
run(void *ctx, tr__worker *w, tr__task *task)
{
    fx *f = ctx;
    titem *it = (titem *)task;
    action a = ACT_NONE;

    if (atomic_exchange_explicit(&it->busy, 1, memory_order_acq_rel) != 0) {
        atomic_fetch_add_explicit(&f->errors, 1, memory_order_relaxed);
    }
    if (tr__worker_self() != w || tr__worker_exec(w) != f->ex ||
        tr__worker_index(w) >= f->nworkers) {
        atomic_fetch_add_explicit(&f->errors, 1, memory_order_relaxed);
    }
    if (it->first_worker < 0) {
        it->first_worker = tr__worker_index(w);
    } else if (it->first_worker != (int64_t)tr__worker_index(w)) {
        it->moved++;
    }
    atomic_fetch_add_explicit(&it->runs, 1, memory_order_relaxed);
    log_run(f, it->id);
    if (it->fn != NULL) {
        a = it->fn(f, w, it);
    }
    atomic_store_explicit(&it->busy, 0, memory_order_release);
    /* release: main threads that read total_runs (acquire) see the item's
     * fields above. */
    atomic_fetch_add_explicit(&f->total_runs, 1, memory_order_release);
    if (a == ACT_SCHEDULE) {
        tr__exec_schedule(f->ex, &it->task);
    } else if (a == ACT_YIELD) {
        tr__exec_yield(w, &it->task);
    }
}

static void
make_items(fx *f, uint32_t n)
{
    uint32_t i;

    f->items = calloc(n, sizeof *f->items);
    assert_non_null(f->items);
    f->nitems = n;
    for (i = 0; i < n; i++) {
        f->items[i].id = i;
        f->items[i].first_worker = -1;
    }
}

static void
start_exec(fx *f, uint32_t nworkers)
{
    f->nworkers = nworkers;
    TR_ASSERT_OK(tr__exec_new(&f->ex, nworkers, run, f));
    assert_int_equal(tr__exec_workers(f->ex), nworkers);
    TR_ASSERT_OK(tr__exec_start(f->ex));
}

/* tr__exec_stop, bounded: a hang fails the test instead of the suite. */
typedef struct stopper {
    tr__exec *ex;
    _Atomic uint32_t done;
} stopper;

static void *
stopper_main(void *arg)
{
    stopper *s = arg;

    tr__exec_stop(s->ex);
    atomic_store_explicit(&s->done, 1, memory_order_release);
    return NULL;
}

static bool
stop_bounded(tr__exec *ex, uint64_t ms)
{
    stopper s = {ex, 0};
    pthread_t th;
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    if (pthread_create(&th, NULL, stopper_main, &s) != 0) {
        return false;
    }
    while (!atomic_load_explicit(&s.done, memory_order_acquire)) {
        if (tr__now_ns() > end) {
            /* Leave the thread: `s` must outlive it, so do not return. */
            fprintf(stderr, "tr__exec_stop did not return\n");
            abort();
        }
        tr_test_sleep_ms(1);
    }
    pthread_join(th, NULL);
    return true;
}

static int
setup(void **state)
{
    fx *f = calloc(1, sizeof *f);

    if (f == NULL) {
        return -1;
    }
    pthread_mutex_init(&f->log_lock, NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx *f = *state;

    if (f->ex != NULL) {
        stop_bounded(f->ex, 10000);
        tr__exec_free(f->ex);
    }
    pthread_mutex_destroy(&f->log_lock);
    free(f->items);
    free(f);
    return 0;
}

/* ---- Tests ------------------------------------------------------------- */

static void
test_worker_self_outside(void **state)
{
    fx *f = *state;

    assert_null(tr__worker_self());
    make_items(f, 1);
    start_exec(f, 2);
    assert_null(tr__worker_self());
    tr__exec_schedule(f->ex, &f->items[0].task);
    assert_true(wait_total(f, 1, 5000));
    /* run() checked tr__worker_self() == w on the worker. */
    assert_int_equal(atomic_load(&f->errors), 0);
    assert_null(tr__worker_self());
    assert_true(stop_bounded(f->ex, 5000));
    assert_null(tr__worker_self());
}

static void
test_schedule_outside_once(void **state)
{
    fx *f = *state;
    const uint32_t n = 2000;
    uint32_t i;

    make_items(f, n);
    start_exec(f, 3);
    for (i = 0; i < n; i++) {
        tr__exec_schedule(f->ex, &f->items[i].task);
    }
    assert_true(wait_total(f, n, 10000));
    assert_true(wait_idle(f, 5000));
    tr_test_sleep_ms(5);
    assert_int_equal(atomic_load(&f->total_runs), n);
    for (i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&f->items[i].runs), 1);
    }
    assert_int_equal(atomic_load(&f->errors), 0);
}

static action
reschedule_fn(fx *f, tr__worker *w, titem *it)
{
    (void)f;
    (void)w;
    if (it->remaining == 0) {
        return ACT_NONE;
    }
    it->remaining--;
    return ACT_SCHEDULE;
}

/* Rescheduled from its own run, an item lands in the next slot; with every
 * other worker asleep and nothing else queued it never leaves its worker,
 * also across the streak limit (its ring push wakes nobody). */
static void
test_reschedule_self_same_worker(void **state)
{
    fx *f = *state;
    const uint32_t again = 1000;
    titem *it;

    make_items(f, 1);
    it = &f->items[0];
    it->fn = reschedule_fn;
    it->remaining = again;
    start_exec(f, 3);
    assert_true(wait_all_asleep(f, 5000));
    tr__exec_schedule(f->ex, &it->task);
    assert_true(wait_total(f, again + 1, 10000));
    assert_true(wait_idle(f, 5000));
    assert_int_equal(atomic_load(&it->runs), again + 1);
    assert_int_equal(it->moved, 0);
    assert_int_equal(atomic_load(&f->errors), 0);
}

/* Item 0 on its first run wakes items 1 and 2 and yields. Expected on one
 * worker: 2 runs from the next slot, 1 (displaced to the ring) next, then 0
 * from the back of the ring. */
static action
yield_order_fn(fx *f, tr__worker *w, titem *it)
{
    (void)w;
    if (it->id != 0 || atomic_load(&it->runs) != 1) {
        return ACT_NONE;
    }
    tr__exec_schedule(f->ex, &f->items[1].task);
    tr__exec_schedule(f->ex, &f->items[2].task);
    return ACT_YIELD;
}

static void
test_yield_order(void **state)
{
    fx *f = *state;
    const uint32_t want[] = {0, 2, 1, 0};
    uint32_t i;

    make_items(f, 3);
    for (i = 0; i < 3; i++) {
        f->items[i].fn = yield_order_fn;
    }
    start_exec(f, 1);
    tr__exec_schedule(f->ex, &f->items[0].task);
    assert_true(wait_total(f, 4, 5000));
    assert_true(wait_idle(f, 5000));
    pthread_mutex_lock(&f->log_lock);
    assert_int_equal(f->nlog, 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(f->log[i], want[i]);
    }
    pthread_mutex_unlock(&f->log_lock);
    assert_int_equal(atomic_load(&f->errors), 0);
}

static action
yield_fn(fx *f, tr__worker *w, titem *it)
{
    (void)f;
    (void)w;
    if (it->remaining == 0) {
        return ACT_NONE;
    }
    it->remaining--;
    return ACT_YIELD;
}

/* Several items yield many times each on two workers: every yield runs the
 * item exactly once more, never concurrently with itself. */
static void
test_yield_requeues(void **state)
{
    fx *f = *state;
    const uint32_t n = 8, again = 200;
    uint32_t i;

    make_items(f, n);
    for (i = 0; i < n; i++) {
        f->items[i].fn = yield_fn;
        f->items[i].remaining = again;
    }
    start_exec(f, 2);
    for (i = 0; i < n; i++) {
        tr__exec_schedule(f->ex, &f->items[i].task);
    }
    assert_true(wait_total(f, (uint64_t)n * (again + 1), 10000));
    assert_true(wait_idle(f, 5000));
    for (i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&f->items[i].runs), again + 1);
    }
    assert_int_equal(atomic_load(&f->errors), 0);
}

/* Item 0 wakes items 1 and 2 (1 is displaced into the ring, 2 takes the
 * next slot) and then stays in its turn until item 1 has run: only
 * another worker can run it, by stealing work queued behind a long turn.
 * The other worker is asleep when item 0 starts, so the push into the
 * empty ring must wake it. */
static action
long_turn_fn(fx *f, tr__worker *w, titem *it)
{
    (void)w;
    if (it->id != 0) {
        return ACT_NONE;
    }
    tr__exec_schedule(f->ex, &f->items[1].task);
    tr__exec_schedule(f->ex, &f->items[2].task);
    hold_until(f, &f->items[1].runs);
    return ACT_NONE;
}

static void
test_steal_behind_long_turn(void **state)
{
    fx *f = *state;
    uint32_t i;

    make_items(f, 3);
    for (i = 0; i < 3; i++) {
        f->items[i].fn = long_turn_fn;
    }
    start_exec(f, 2);
    assert_true(wait_all_asleep(f, 5000));
    tr__exec_schedule(f->ex, &f->items[0].task);
    assert_true(wait_total(f, 3, 20000));
    assert_true(wait_idle(f, 5000));
    assert_int_equal(atomic_load(&f->errors), 0);
    assert_int_not_equal(f->items[1].first_worker, f->items[0].first_worker);
    assert_int_equal(f->items[2].first_worker, f->items[0].first_worker);
    assert_true(tr__exec_steals(f->ex) >= 1);
}

/* Items 1 and 2 wake each other through the next slot; item 3 sits in the
 * ring. The streak limit must let item 3 run long before the ping-pong
 * ends. */
static action
pingpong_fn(fx *f, tr__worker *w, titem *it)
{
    (void)w;
    if (it->id == 0) {
        tr__exec_schedule(f->ex, &f->items[3].task);
        tr__exec_schedule(f->ex, &f->items[1].task);
        return ACT_NONE;
    }
    if (it->id == 3 || it->remaining == 0) {
        return ACT_NONE;
    }
    it->remaining--;
    tr__exec_schedule(f->ex, &it->peer[0]->task);
    return ACT_NONE;
}

static void
test_lifo_streak_bounded(void **state)
{
    fx *f = *state;
    const uint32_t rounds = 200;
    uint32_t i, at = UINT32_MAX;

    make_items(f, 4);
    for (i = 0; i < 4; i++) {
        f->items[i].fn = pingpong_fn;
    }
    f->items[1].remaining = rounds;
    f->items[2].remaining = rounds;
    f->items[1].peer[0] = &f->items[2];
    f->items[2].peer[0] = &f->items[1];
    start_exec(f, 1);
    tr__exec_schedule(f->ex, &f->items[0].task);
    /* 0, 3, then 1 and 2 alternate until 2 has used its last round. */
    assert_true(wait_total(f, 2 + 2 * rounds + 1, 5000));
    assert_true(wait_idle(f, 5000));
    pthread_mutex_lock(&f->log_lock);
    for (i = 0; i < f->nlog; i++) {
        if (f->log[i] == 3) {
            at = i;
            break;
        }
    }
    pthread_mutex_unlock(&f->log_lock);
    /* Item 0, then at most TR__LIFO_STREAK next-slot runs, then item 3. */
    assert_true(at <= 1 + TR__LIFO_STREAK);
    assert_int_equal(atomic_load(&f->items[3].runs), 1);
    assert_int_equal(atomic_load(&f->errors), 0);
}

/* Polls until block_fn has entered its turn (5 s, scaled). */
static void
wait_entered(fx *f)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(5000) * 1000000u;

    while (!atomic_load_explicit(&f->entered, memory_order_acquire)) {
        assert_true(tr__now_ns() < end);
        tr_test_sleep_ms(1);
    }
}

static action
block_fn(fx *f, tr__worker *w, titem *it)
{
    (void)w;
    (void)it;
    atomic_store_explicit(&f->entered, 1, memory_order_release);
    hold_until(f, &f->gate);
    return ACT_NONE;
}

static void
test_idle_and_parks(void **state)
{
    fx *f = *state;
    uint64_t parks;
    uint32_t i;

    make_items(f, 11);
    f->items[0].fn = block_fn;
    start_exec(f, 2);
    assert_true(wait_all_asleep(f, 5000));
    assert_true(tr__exec_idle(f->ex));
    parks = tr__exec_parks(f->ex);
    assert_int_equal(parks, 2);

    tr__exec_schedule(f->ex, &f->items[0].task);
    wait_entered(f);
    /* A worker is running an item: never idle, however long we look. */
    for (i = 0; i < 20; i++) {
        assert_false(tr__exec_idle(f->ex));
        tr_test_sleep_ms(1);
    }
    for (i = 1; i < 11; i++) {
        tr__exec_schedule(f->ex, &f->items[i].task);
    }
    /* The other worker runs those ten while the blocker holds one. */
    assert_true(wait_total(f, 10, 5000));
    assert_false(tr__exec_idle(f->ex));
    atomic_store_explicit(&f->gate, 1, memory_order_release);
    assert_true(wait_total(f, 11, 5000));
    assert_true(wait_idle(f, 5000));
    assert_true(wait_parks_above(f, parks, 5000));
    for (i = 0; i < 11; i++) {
        assert_int_equal(atomic_load(&f->items[i].runs), 1);
    }
    assert_int_equal(atomic_load(&f->errors), 0);

    /* Each round of work and rest parks again. */
    for (i = 0; i < 3; i++) {
        parks = tr__exec_parks(f->ex);
        tr__exec_schedule(f->ex, &f->items[1 + i].task);
        assert_true(wait_total(f, 12 + i, 5000));
        assert_true(wait_parks_above(f, parks, 5000));
        assert_true(wait_idle(f, 5000));
    }
}

/* Items 2r and 2r+1 each stay in their turn until the other has started:
 * a round ends only with both on a worker at once. */
static action
pair_fn(fx *f, tr__worker *w, titem *it)
{
    (void)w;
    hold_until(f, &it->peer[0]->runs);
    return ACT_NONE;
}

/* Two items pushed from outside back to back must run at once on two
 * workers, whatever the workers are doing when the pushes land: parked,
 * or spinning for work (a push then wakes nobody, and the spinner that
 * finds more than it takes must wake a worker for the rest). Rounds
 * follow each other without a pause, so most pushes find a spinner, and
 * every fourth waits for both workers to park first. */
static void
test_outside_pairs_spread(void **state)
{
    fx *f = *state;
    const uint32_t rounds = 300;
    uint32_t i, r;

    make_items(f, 2 * rounds);
    for (i = 0; i < 2 * rounds; i++) {
        f->items[i].fn = pair_fn;
        f->items[i].peer[0] = &f->items[i ^ 1u];
    }
    start_exec(f, 2);
    for (r = 0; r < rounds; r++) {
        uint64_t end = tr__now_ns() + tr_test_scaled_ms(20000) * 1000000u;

        tr__exec_schedule(f->ex, &f->items[2 * r].task);
        tr__exec_schedule(f->ex, &f->items[2 * r + 1].task);
        while (!total_is(f, 2 * (uint64_t)r + 2)) {
            assert_true(tr__now_ns() < end);
            sched_yield();
        }
        if (r % 4 == 3) {
            assert_true(wait_idle(f, 5000));
        }
    }
    assert_int_equal(atomic_load(&f->errors), 0);
}

/* tr__exec_pace holds an outside thread while the global queue holds a
 * full backlog, and only up to its bound: with the only worker stuck in a
 * turn it returns after TR__PACE_MAX_NS, and once the worker has drained
 * the queue it returns at once. */
static void
test_pace_bounded(void **state)
{
    fx *f = *state;
    uint64_t t0, took;
    uint32_t i;

    make_items(f, TR__BACKLOG + 1);
    f->items[0].fn = block_fn;
    start_exec(f, 1);
    tr__exec_schedule(f->ex, &f->items[0].task);
    wait_entered(f);
    for (i = 1; i <= TR__BACKLOG; i++) {
        tr__exec_schedule(f->ex, &f->items[i].task);
    }
    t0 = tr__now_ns();
    tr__exec_pace(f->ex);
    took = tr__now_ns() - t0;
    assert_true(took >= TR__PACE_MAX_NS);
    assert_int_equal(atomic_load(&f->total_runs), 0);

    atomic_store_explicit(&f->gate, 1, memory_order_release);
    assert_true(wait_total(f, TR__BACKLOG + 1, 10000));
    t0 = tr__now_ns();
    tr__exec_pace(f->ex);
    took = tr__now_ns() - t0;
    assert_true(took < TR__PACE_MAX_NS);
    assert_true(wait_idle(f, 5000));
    assert_int_equal(atomic_load(&f->errors), 0);
}

/* A sampler in tr__exec_wait_busy. */
typedef struct sampler {
    tr__exec *ex;
    _Atomic uint32_t cancel;
    _Atomic uint32_t calls;   /* times it is about to call wait_busy */
    _Atomic uint32_t returns; /* times wait_busy returned */
    _Atomic uint32_t stop;    /* ends the loop once set */
} sampler;

/* Waits for a busy executor, over and over, like the watchdog. */
static void *
sampler_main(void *arg)
{
    sampler *sm = arg;

    while (!atomic_load_explicit(&sm->stop, memory_order_acquire)) {
        atomic_fetch_add_explicit(&sm->calls, 1, memory_order_release);
        tr__exec_wait_busy(sm->ex, &sm->cancel);
        atomic_fetch_add_explicit(&sm->returns, 1, memory_order_release);
        /* A busy executor: wait until it is idle again before the next
         * wait (as the watchdog samples until then). */
        while (!tr__exec_idle(sm->ex) &&
               !atomic_load_explicit(&sm->stop, memory_order_acquire)) {
            tr_test_sleep_ms(1);
        }
    }
    return NULL;
}

/* Polls until the counter exceeds `than` or ms (scaled) pass. */
static bool
count_above(_Atomic uint32_t *c, uint32_t than, uint64_t ms)
{
    uint64_t end = tr__now_ns() + tr_test_scaled_ms(ms) * 1000000u;

    while (atomic_load_explicit(c, memory_order_acquire) <= than) {
        if (tr__now_ns() > end) {
            return false;
        }
        tr_test_sleep_ms(1);
    }
    return true;
}

/* tr__exec_wait_busy sleeps while every worker is parked, returns when one
 * is woken for work, and tr__exec_kick with the cancel flag ends it. */
static void
test_wait_busy(void **state)
{
    fx *f = *state;
    sampler sm = {0};
    pthread_t th;
    uint32_t before;

    make_items(f, 3);
    for (uint32_t i = 0; i < 3; i++) {
        f->items[i].fn = block_fn; /* busy until the gate opens */
    }
    start_exec(f, 2);
    assert_true(wait_all_asleep(f, 5000));
    sm.ex = f->ex;
    assert_int_equal(pthread_create(&th, NULL, sampler_main, &sm), 0);
    /* Idle: it sleeps (spurious returns are allowed, but not a stream). */
    tr_test_sleep_ms(50);
    before = atomic_load_explicit(&sm.returns, memory_order_acquire);
    tr_test_sleep_ms(50);
    assert_int_equal(atomic_load_explicit(&sm.returns, memory_order_acquire),
                     before);
    for (uint32_t i = 0; i < 3; i++) {
        /* Once it is back to waiting, work makes it return: whether the
         * work comes before its idle check or wakes it from the sleep. */
        assert_true(count_above(&sm.calls, before + i, 5000));
        atomic_store_explicit(&f->gate, 0, memory_order_release);
        tr__exec_schedule(f->ex, &f->items[i].task);
        assert_true(count_above(&sm.returns, before + i, 5000));
        atomic_store_explicit(&f->gate, 1, memory_order_release);
        assert_true(wait_total(f, i + 1, 5000));
        assert_true(wait_idle(f, 5000));
    }
    atomic_store_explicit(&sm.stop, 1, memory_order_release);
    atomic_store_explicit(&sm.cancel, 1, memory_order_release);
    tr__exec_kick(f->ex);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&f->errors), 0);
}

/* tr__exec_stop joins workers that are busy, parked, or not yet parked,
 * and after it returns no item runs. */
static void
test_stop_joins(void **state)
{
    fx *f = *state;
    uint64_t runs;
    uint32_t round;

    make_items(f, 1);
    f->items[0].fn = reschedule_fn;
    f->items[0].remaining = 100000;
    start_exec(f, 2);
    tr__exec_schedule(f->ex, &f->items[0].task);
    assert_true(stop_bounded(f->ex, 10000));
    runs = atomic_load(&f->items[0].runs);
    tr_test_sleep_ms(20);
    assert_int_equal(atomic_load(&f->items[0].runs), runs);
    assert_int_equal(atomic_load(&f->items[0].busy), 0);
    assert_int_equal(atomic_load(&f->errors), 0);
    tr__exec_free(f->ex);
    f->ex = NULL;

    /* Stop right after start, before the workers have settled. */
    for (round = 0; round < 20; round++) {
        start_exec(f, 1 + round % 3);
        assert_true(stop_bounded(f->ex, 10000));
        tr__exec_free(f->ex);
        f->ex = NULL;
    }
    /* Never started: stop and free are fine. */
    f->nworkers = 2;
    TR_ASSERT_OK(tr__exec_new(&f->ex, 2, run, f));
    assert_true(stop_bounded(f->ex, 10000));
    tr__exec_free(f->ex);
    f->ex = NULL;
    tr__exec_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_self_outside, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_schedule_outside_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reschedule_self_same_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_yield_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yield_requeues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifo_streak_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_steal_behind_long_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_and_parks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_pairs_spread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pace_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_joins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_busy, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
