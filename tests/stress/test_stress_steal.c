/* Stress test of the executor (runtime/exec.c): local rings, stealing, the
 * global queue, parking and waking. It exercises:
 *
 * - test_spawn_tree: TR_STRESS_ITEMS items (default 100000; 20000 under
 *   any sanitizer). Two outside threads and the workers' run callbacks all
 *   claim item indices from one counter, and whoever claims an index
 *   schedules that item, once: roots go through the global queue, children
 *   into the running worker's next slot, which pushes the previous child
 *   into the worker's ring, where idle workers steal it if it waits there
 *   long (rarely: test_steal_behind_holds makes sure of it). One item in 16
 *   fans out to 2-17 children on its first run (the feeders send roots in
 *   bursts, so other workers are idle then); one item in eight yields once
 *   (tr__exec_yield, to the back of the ring) and so runs twice. Each
 *   run spins a random short while so that rings fill up.
 * - test_park_wake_storm: two outside threads schedule bursts of 1-64
 *   items with random gaps of 0-2 ms, so workers park and wake all the
 *   time; TR_STRESS_ITEMS / 5 items in all.
 *
 * - test_steal_behind_holds: rounds of a fan-out whose turn goes on until
 *   one of its children has started, which only a steal can do; checks
 *   that every round is ended by one.
 *
 * - test_wake_handshake: one item at a time from outside, scheduled at a
 *   random moment while the only worker (then two) goes to sleep; a lost
 *   wake-up leaves it unrun. TR_STRESS_ITEMS / 10 rounds.
 *
 * - test_pairs_under_load: pairs of items from outside, back to back, on
 *   two workers while two threads of busy loops compete for the cores; the
 *   first of a pair stays in its turn until the second has started, so
 *   each pair needs both workers awake. TR_STRESS_ITEMS / 50 pairs.
 *
 * Checks: every item runs exactly as often as planned and never on two
 * workers at once (a busy flag), the total is exact and nothing runs after
 * the executor went idle, the run ends within a generous bound, and every
 * worker parks once the work is gone. The number of steals is printed, not
 * asserted: it may legitimately be 0.
 *
 * Scale: TR_STRESS_THREADS workers (default 4; 2 under TSan) and
 * TR_STRESS_ITEMS. TR_STRESS_SEED replays the random choices (children,
 * yields, bursts, gaps); the seed is printed first. The interleaving is up
 * to the OS scheduler. */
#include "tr_test.h"
#include "tr_stress.h"

#include "runtime/exec.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>

#define FEEDERS 2

typedef struct params {
    uint64_t seed;
    uint32_t workers;
    uint32_t items;
    uint64_t timeout_ms;
} params;

static params P;

typedef struct item {
    tr__task task; /* first: run_item() casts the task back */
    _Atomic uint32_t runs;
    _Atomic uint32_t busy;
    uint8_t expect;    /* runs planned: 1, or 2 when it yields once */
    uint8_t nchildren; /* children it tries to claim on its first run */
    uint16_t work;     /* pause loops per run, so rings fill up */
    bool hold;         /* its first run waits, after its fan-out, for a child */
    _Atomic uint32_t child_ran; /* a child of its has started */
    struct item *parent;        /* set before it is scheduled as a child */
} item;

typedef struct run run;

typedef struct feeder {
    run *r;
    uint32_t index;
    uint64_t rng;
    pthread_t thread;
} feeder;

struct run {
    tr__exec *ex;
    item *items;
    uint32_t nitems;
    uint64_t expected_runs;
    bool storm;
    _Atomic uint32_t next;       /* the next unclaimed index */
    _Atomic uint64_t total_runs; /* runs finished */
    _Atomic uint64_t children;   /* items scheduled from run callbacks */
    _Atomic uint64_t yields;
    _Atomic uint64_t holds_unended; /* holds that no steal ended */
    feeder feeders[FEEDERS];
    bool stopped;               /* tr__exec_stop returned */
    _Atomic uint32_t hogs_stop; /* test_pairs_under_load's busy loops end */

    tr_stress_fail fail; /* the first failure and the deadline */
};

/* Claims the next index, or returns UINT32_MAX when all are claimed. */
static uint32_t
claim(run *r)
{
    uint32_t i = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);

    return i < r->nitems ? i : UINT32_MAX;
}

/* The children of `it` wait behind its turn on this worker (the last in
 * the next slot, the others in the ring), so one that starts while it
 * stays in its turn was stolen: workers leave young queued work to its
 * owner, and take it once the owner has stayed TR__STUCK_NS in one turn. */
static void
hold_for_steal(run *r, item *it)
{
    uint64_t end =
        tr__now_ns() + (uint64_t)(1e9 * tr_test_timeout_multiplier());

    while (atomic_load_explicit(&it->child_ran, memory_order_relaxed) == 0) {
        if (tr__now_ns() > end) {
            atomic_fetch_add_explicit(&r->holds_unended, 1,
                                      memory_order_relaxed);
            return;
        }
        tr__cpu_relax();
    }
}

static void
run_item(void *ctx, tr__worker *w, tr__task *task)
{
    run *r = ctx;
    item *it = (item *)task;
    uint32_t n, k;

    if (atomic_exchange_explicit(&it->busy, 1, memory_order_acq_rel) != 0) {
        tr_stress_failf(&r->fail, "item %zu runs on two workers at once",
                        (size_t)(it - r->items));
    }
    n = atomic_fetch_add_explicit(&it->runs, 1, memory_order_relaxed) + 1;
    if (n > it->expect) {
        tr_stress_failf(&r->fail, "item %zu ran %u times, planned %u",
                        (size_t)(it - r->items), n, it->expect);
    }
    for (k = 0; k < it->work; k++) {
        tr__cpu_relax();
    }
    if (n == 1 && it->parent != NULL) {
        /* relaxed: a flag the parent polls; it publishes nothing. */
        atomic_store_explicit(&it->parent->child_ran, 1, memory_order_relaxed);
    }
    if (n == 1) {
        for (k = 0; k < it->nchildren; k++) {
            uint32_t c = claim(r);

            if (c == UINT32_MAX) {
                break;
            }
            /* Published to the child's run by the schedule below. */
            r->items[c].parent = it;
            atomic_fetch_add_explicit(&r->children, 1, memory_order_relaxed);
            tr__exec_schedule(r->ex, &r->items[c].task);
        }
        if (it->hold) {
            hold_for_steal(r, it);
        }
    }
    atomic_store_explicit(&it->busy, 0, memory_order_release);
    atomic_fetch_add_explicit(&r->total_runs, 1, memory_order_release);
    if (n < it->expect) {
        atomic_fetch_add_explicit(&r->yields, 1, memory_order_relaxed);
        tr__exec_yield(w, &it->task);
    }
}

/* Tree feeder: claims roots in bursts until every index is claimed. */
static void *
tree_feeder_main(void *arg)
{
    feeder *f = arg;
    run *r = f->r;
    uint32_t i, burst = 0;

    while ((i = claim(r)) != UINT32_MAX) {
        tr__exec_schedule(r->ex, &r->items[i].task);
        if (burst-- > 0) {
            continue;
        }
        /* Between bursts of roots the workers run dry, so a fan-out sits
         * in one worker's ring while the others are idle: they steal. */
        burst = tr_stress_rnd(&f->rng, 32);
        if (tr_stress_rnd(&f->rng, 2) == 0) {
            tr_test_sleep_us(tr_stress_rnd(&f->rng, 300));
        } else {
            sched_yield();
        }
        if (tr_stress_stop(&r->fail)) {
            break;
        }
    }
    return NULL;
}

/* Storm feeder: bursts of 1-64 claimed items, then a gap of 0-2 ms. */
static void *
storm_feeder_main(void *arg)
{
    feeder *f = arg;
    run *r = f->r;

    for (;;) {
        uint32_t burst = 1 + tr_stress_rnd(&f->rng, 64), k, gap;

        for (k = 0; k < burst; k++) {
            uint32_t i = claim(r);

            if (i == UINT32_MAX) {
                return NULL;
            }
            tr__exec_schedule(r->ex, &r->items[i].task);
        }
        gap = tr_stress_rnd(&f->rng, 2001);
        if (gap >= 100) { /* else back to back */
            tr_test_sleep_us(gap);
        }
        if (tr_stress_stop(&r->fail)) {
            return NULL;
        }
    }
}

/* tr__exec_stop in a helper thread, so a hang fails instead of blocking. */
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

static void
stop_bounded(tr__exec *ex)
{
    stopper s = {ex, 0};
    pthread_t th;
    uint64_t end = tr__now_ns() + P.timeout_ms * 1000000u;

    assert_int_equal(pthread_create(&th, NULL, stopper_main, &s), 0);
    while (!atomic_load_explicit(&s.done, memory_order_acquire)) {
        if (tr__now_ns() > end) {
            /* `s` is on this stack and the thread still uses it. */
            fprintf(stderr, "tr__exec_stop did not return\n");
            abort();
        }
        tr_test_sleep_us(1000);
    }
    pthread_join(th, NULL);
}

/* Clears `r` for a scenario of `nitems` zeroed items. */
static void
run_reset(run *r, uint32_t nitems)
{
    memset(r, 0, sizeof *r);
    tr_stress_fail_init(&r->fail);
    r->nitems = nitems;
    r->items = calloc(nitems, sizeof *r->items);
    assert_non_null(r->items);
}

static void
run_scenario(run *r, bool storm, uint32_t nitems)
{
    uint64_t rng = P.seed ^ (storm ? 0x5707u : 0x7ee);
    uint64_t t0 = tr__now_ns(), end, runs;
    uint32_t i;

    run_reset(r, nitems);
    r->storm = storm;
    for (i = 0; i < nitems; i++) {
        item *it = &r->items[i];

        it->expect = storm || tr_stress_rnd(&rng, 8) != 0 ? 1 : 2;
        /* One in 16 fans out to 2-17 children: 0.59 children per item on
         * average, so each root grows a small tree, and the feeders,
         * which claim indices too, decide the pace. */
        it->nchildren = storm || tr_stress_rnd(&rng, 16) != 0
                            ? 0
                            : (uint8_t)(2 + tr_stress_rnd(&rng, 16));
        it->work = (uint16_t)tr_stress_rnd(&rng, 256);
        r->expected_runs += it->expect;
    }
    tr_stress_arm(&r->fail, t0, P.timeout_ms);

    TR_ASSERT_OK(tr__exec_new(&r->ex, P.workers, run_item, r));
    TR_ASSERT_OK(tr__exec_start(r->ex));
    for (i = 0; i < FEEDERS; i++) {
        feeder *f = &r->feeders[i];

        f->r = r;
        f->index = i;
        f->rng = tr__mix64(&rng);
        assert_int_equal(
            pthread_create(&f->thread, NULL,
                           storm ? storm_feeder_main : tree_feeder_main, f),
            0);
    }
    for (i = 0; i < FEEDERS; i++) {
        pthread_join(r->feeders[i].thread, NULL);
    }

    /* Everything planned runs, then the executor goes idle and parks. */
    while (atomic_load_explicit(&r->total_runs, memory_order_acquire) <
               r->expected_runs &&
           !tr_stress_stop(&r->fail)) {
        tr_test_sleep_us(1000);
    }
    while (!tr__exec_idle(r->ex) && !tr_stress_stop(&r->fail)) {
        tr_test_sleep_us(1000);
    }
    while (tr__exec_parks(r->ex) < P.workers && !tr_stress_stop(&r->fail)) {
        tr_test_sleep_us(1000);
    }
    end = tr__now_ns();
    runs = atomic_load_explicit(&r->total_runs, memory_order_acquire);
    tr_test_sleep_us(5000);
    stop_bounded(r->ex);
    r->stopped = true;
    if (atomic_load(&r->fail.failed)) {
        fail_msg("%s", r->fail.why);
    }
    assert_int_equal(runs, r->expected_runs);
    /* Idle means idle: nothing ran after that. */
    assert_int_equal(atomic_load(&r->total_runs), runs);
    assert_true(atomic_load(&r->next) >= nitems);
    for (i = 0; i < nitems; i++) {
        if (atomic_load(&r->items[i].runs) != r->items[i].expect) {
            fail_msg("item %u ran %u times, planned %u", i,
                     atomic_load(&r->items[i].runs), r->items[i].expect);
        }
        assert_int_equal(atomic_load(&r->items[i].busy), 0);
    }
    printf("  %u items, %" PRIu64 " runs (%" PRIu64 " yields), %" PRIu64
           " scheduled from workers, %" PRIu64 " steals, %" PRIu64
           " parks, %.0f ms\n",
           nitems, runs, atomic_load(&r->yields), atomic_load(&r->children),
           tr__exec_steals(r->ex), tr__exec_parks(r->ex),
           (double)(end - t0) / 1e6);
}

static void
test_spawn_tree(void **state)
{
    run_scenario(*state, false, P.items);
}

static void
test_park_wake_storm(void **state)
{
    run_scenario(*state, true, P.items / 5 > 0 ? P.items / 5 : 1);
}

/* One item at a time from outside, each scheduled just as the workers
 * (one, then two) are going to sleep: after a random pause of 0-4000
 * spins, which sweeps the window between a worker's last look at the
 * queues and its futex wait. A lost wake-up leaves the item unrun, since
 * nothing else would wake a worker. */
static void
test_wake_handshake(void **state)
{
    run *r = *state;
    uint64_t rng = P.seed ^ 0x4a4du;
    uint32_t nw, i, k;

    run_reset(r, P.items / 10 > 0 ? P.items / 10 : 1);
    for (i = 0; i < r->nitems; i++) {
        r->items[i].expect = 1;
    }
    for (nw = 1; nw <= 2; nw++) {
        uint32_t lo = nw == 1 ? 0 : r->nitems / 2;
        uint32_t hi = nw == 1 ? r->nitems / 2 : r->nitems;

        TR_ASSERT_OK(tr__exec_new(&r->ex, nw, run_item, r));
        r->stopped = false;
        TR_ASSERT_OK(tr__exec_start(r->ex));
        for (i = lo; i < hi; i++) {
            uint64_t end =
                tr__now_ns() + (uint64_t)(5e9 * tr_test_timeout_multiplier());
            uint32_t pause = tr_stress_rnd(&rng, 4001);

            for (k = 0; k < pause; k++) {
                tr__cpu_relax();
            }
            tr__exec_schedule(r->ex, &r->items[i].task);
            while (atomic_load_explicit(&r->total_runs, memory_order_acquire) <
                   (uint64_t)i + 1) {
                if (tr__now_ns() > end) {
                    fail_msg("item %u (%u workers) not run: lost wake-up", i,
                             nw);
                }
                sched_yield();
            }
        }
        stop_bounded(r->ex);
        r->stopped = true;
        tr__exec_free(r->ex);
        r->ex = NULL;
    }
    if (atomic_load(&r->fail.failed)) {
        fail_msg("%s", r->fail.why);
    }
    for (i = 0; i < r->nitems; i++) {
        assert_int_equal(atomic_load(&r->items[i].runs), 1);
    }
}

static void *
hog_main(void *arg)
{
    run *r = arg;

    /* relaxed: a stop flag; it publishes nothing. */
    while (!atomic_load_explicit(&r->hogs_stop, memory_order_relaxed)) {
        tr__cpu_relax();
    }
    return NULL;
}

/* Two items from outside, back to back, must both run at once: the first
 * holds its turn until the second has started (child_ran), which only the
 * other worker can do. Pushes often land on a worker that is ending its
 * spin, and the busy loops stretch those moments: the spinner must wake
 * the parked worker for the item it does not take (a version that left it
 * queued stalled about one run in 30 to 250 of test_exec's pairs beside
 * busy loops). */
static void
test_pairs_under_load(void **state)
{
    run *r = *state;
    pthread_t hogs[2];
    uint32_t pairs = P.items / 50 > 0 ? P.items / 50 : 1, i;

    run_reset(r, 2 * pairs);
    TR_ASSERT_OK(tr__exec_new(&r->ex, 2, run_item, r));
    TR_ASSERT_OK(tr__exec_start(r->ex));
    for (i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&hogs[i], NULL, hog_main, r), 0);
    }
    for (i = 0; i < pairs; i++) {
        item *a = &r->items[2 * i], *b = &r->items[2 * i + 1];
        uint64_t end =
            tr__now_ns() + (uint64_t)(5e9 * tr_test_timeout_multiplier());

        a->expect = b->expect = 1;
        a->hold = true;
        b->parent = a; /* published to b's run by its schedule */
        tr__exec_schedule(r->ex, &a->task);
        tr__exec_schedule(r->ex, &b->task);
        while (atomic_load_explicit(&r->total_runs, memory_order_acquire) <
               2 * (uint64_t)i + 2) {
            if (tr__now_ns() > end) {
                atomic_store(&r->hogs_stop, 1);
                fail_msg("pair %u: %" PRIu64 " of %u runs: lost wake-up", i,
                         atomic_load(&r->total_runs), 2 * i + 2);
            }
            sched_yield();
        }
    }
    atomic_store(&r->hogs_stop, 1);
    for (i = 0; i < 2; i++) {
        pthread_join(hogs[i], NULL);
    }
    stop_bounded(r->ex);
    r->stopped = true;
    if (atomic_load(&r->fail.failed)) {
        fail_msg("%s", r->fail.why);
    }
    assert_int_equal(atomic_load(&r->holds_unended), 0);
}

/* Rounds of one parent from outside that fans out to 2-17 children and
 * stays in its turn until one of them has started elsewhere: the idle
 * workers must steal from behind a long turn, every round, while the
 * owner then pops and the children yield (one in eight) into the rings
 * stolen from. TR_STRESS_ITEMS / 20 items. */
static void
test_steal_behind_holds(void **state)
{
    run *r = *state;
    uint64_t rng = P.seed ^ 0x686fu, expected = 0, rounds = 0;
    uint32_t i, k, c;

    run_reset(r, P.items / 20 > 3 ? P.items / 20 : 3);
    TR_ASSERT_OK(
        tr__exec_new(&r->ex, P.workers > 1 ? P.workers : 2, run_item, r));
    TR_ASSERT_OK(tr__exec_start(r->ex));
    for (i = 0; i + 2 < r->nitems; i += c + 1) {
        uint64_t end =
            tr__now_ns() + (uint64_t)(5e9 * tr_test_timeout_multiplier());

        c = 2 + tr_stress_rnd(&rng, 16);
        if (c > r->nitems - i - 1) {
            c = r->nitems - i - 1;
        }
        r->items[i].expect = 1;
        r->items[i].nchildren = (uint8_t)c;
        r->items[i].hold = true;
        for (k = i + 1; k <= i + c; k++) {
            r->items[k].expect = tr_stress_rnd(&rng, 8) == 0 ? 2 : 1;
            r->items[k].work = (uint16_t)tr_stress_rnd(&rng, 256);
            expected += r->items[k].expect;
        }
        expected++;
        rounds++;
        /* relaxed: the schedule below publishes it to the parent. */
        atomic_store_explicit(&r->next, i + 1, memory_order_relaxed);
        tr__exec_schedule(r->ex, &r->items[i].task);
        while (atomic_load_explicit(&r->total_runs, memory_order_acquire) <
               expected) {
            if (tr__now_ns() > end) {
                fail_msg("round at item %u: %" PRIu64 " of %" PRIu64 " runs", i,
                         atomic_load(&r->total_runs), expected);
            }
            sched_yield();
        }
    }
    printf("  %" PRIu64 " rounds, %" PRIu64 " steals, %" PRIu64 " yields\n",
           rounds, tr__exec_steals(r->ex), atomic_load(&r->yields));
    stop_bounded(r->ex);
    r->stopped = true;
    if (atomic_load(&r->fail.failed)) {
        fail_msg("%s", r->fail.why);
    }
    assert_int_equal(atomic_load(&r->holds_unended), 0);
    assert_true(tr__exec_steals(r->ex) >= rounds);
    for (i = 0; i < r->nitems; i++) {
        assert_true(atomic_load(&r->items[i].runs) == r->items[i].expect);
    }
}

static int
setup(void **state)
{
    run *r = calloc(1, sizeof *r);

    if (r == NULL) {
        return -1;
    }
    *state = r;
    return 0;
}

static int
teardown(void **state)
{
    run *r = *state;

    /* A test that failed early leaves the workers running. */
    if (r->ex != NULL && !r->stopped) {
        stop_bounded(r->ex);
    }
    tr__exec_free(r->ex);
    tr_stress_fail_fini(&r->fail);
    free(r->items);
    free(r);
    return 0;
}

int
main(void)
{
    const char *san = getenv("TR_SANITIZER");
    bool sanitized = san != NULL && *san != '\0' && strcmp(san, "none") != 0;
    bool tsan = san != NULL && strcmp(san, "thread") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spawn_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_wake_storm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wake_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steal_behind_holds, setup,
                                        teardown),
    };

    P.seed = tr_test_env_u64("TR_STRESS_SEED", tr__now_ns());
    P.workers = (uint32_t)tr_test_env_u64("TR_STRESS_THREADS", tsan ? 2 : 4);
    P.items = (uint32_t)tr_test_env_u64("TR_STRESS_ITEMS",
                                        sanitized ? 20000 : 100000);
    P.timeout_ms = (uint64_t)(120000.0 * tr_test_timeout_multiplier());
    printf("test_stress_steal: seed %" PRIu64 " (TR_STRESS_SEED=%" PRIu64
           " replays), %u workers, %u items\n",
           P.seed, P.seed, P.workers, P.items);
    fflush(stdout);
    if (P.workers < 1 || P.workers > 1024 || P.items < 1) {
        fprintf(stderr, "test_stress_steal: TR_STRESS_THREADS must be "
                        "1..1024 and TR_STRESS_ITEMS positive\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
