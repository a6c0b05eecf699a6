/* children: n dynamic children started and stopped under one supervisor.
 *
 * A TR_SIMPLE_ONE_FOR_ONE supervisor; main starts n children one after
 * another (tr_sup_start_child, each a request to the supervisor), then
 * stops them one after another (tr_sup_stop_child), and waits until the
 * runtime counts only the supervisor alive. Timed: all of it. ops = 2n
 * (starts and stops); per_op_ns stays flat as n grows when both are
 * O(1) in the number of children. Verified: the supervisor counted n
 * children after the starts, none after the stops, and every child's init
 * and terminate hook ran once. */
#include "bench.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static _Atomic uint64_t g_inits, g_terms;

static tr_status
child_init(tr_cx *cx, void *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    atomic_fetch_add_explicit(&g_inits, 1, memory_order_relaxed);
    return TR_OK;
}

static tr_status
child_terminate(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    (void)why;
    atomic_fetch_add_explicit(&g_terms, 1, memory_order_relaxed);
    return TR_OK;
}

TR_ACTOR(children_child, char, TR_ON_INIT(void, child_init),
         TR_ON_TERMINATE(child_terminate));

static const tr_child_spec child_spec = {
    .id = "child", .actor = &children_child, .restart = TR_TEMPORARY};
static const tr_sup_spec sup_spec = {
    .strategy = TR_SIMPLE_ONE_FOR_ONE, .children = &child_spec, .nchildren = 1};

static int
run(const bench_args *args, bench_result *res)
{
    tr_runtime *rt = NULL;
    tr_ref sup, *refs = calloc(args->n, sizeof *refs);
    tr_sup_counts c;
    tr_stats st;
    uint64_t deadline;
    int rc;

    if (refs == NULL) {
        return bench_fail("no memory for %" PRIu64 " refs", args->n);
    }
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_sup_start(rt, &sup_spec, &sup));
    bench_clock_start(res);
    for (uint64_t i = 0; i < args->n; i++) {
        BENCH_CHECK(tr_sup_start_child(rt, sup, NULL, 0, &refs[i], 10000));
    }
    BENCH_CHECK(tr_sup_count_children(rt, sup, &c, 10000));
    if (c.specs != args->n) {
        return bench_fail("%u children after the starts, expected %" PRIu64,
                          c.specs, args->n);
    }
    for (uint64_t i = 0; i < args->n; i++) {
        BENCH_CHECK(tr_sup_stop_child(rt, sup, refs[i], 10000));
    }
    deadline = bench_now_ns() + 60 * UINT64_C(1000000000);
    do {
        BENCH_CHECK(tr_runtime_stats(rt, &st));
        nanosleep(&(struct timespec){0, 100000}, NULL);
    } while (st.alive > 1 && bench_now_ns() < deadline);
    bench_clock_stop(res);
    res->ops = 2 * args->n;
    BENCH_CHECK(tr_sup_count_children(rt, sup, &c, 10000));
    rc = bench_runtime_finish(&rt);
    free(refs);
    if (rc != 0) {
        return rc;
    }
    if (st.alive != 1 || c.specs != 0 || atomic_load(&g_inits) != args->n ||
        atomic_load(&g_terms) != args->n) {
        return bench_fail(
            "alive %" PRIu64 ", %u children left, %" PRIu64 " inits, %" PRIu64
            " terminates (expected 1, 0, %" PRIu64 ", %" PRIu64 ")",
            st.alive, c.specs, atomic_load(&g_inits), atomic_load(&g_terms),
            args->n, args->n);
    }
    return 0;
}

const bench_def bench_children = {
    "children", 100000,
    "n dynamic children started and stopped under one supervisor (ns per "
    "start or stop)",
    run};
