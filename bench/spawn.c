/* spawn: main spawns n actors one after another.
 *
 * Each actor sends one message to a collector from its init hook and ends;
 * the collector reports to main when it has n. Timed from the first spawn
 * to that report. Verified: the collector's count (asked again after the
 * run, so a duplicate shows) = n, and the runtime counted n + 1 spawns.
 * ops = n spawns; rss_kb is the peak with all of that going on. */
#include "bench.h"

#include <inttypes.h>

enum {
    MSG_HELLO = BENCH_MSG_USER,
    MSG_GET,
};

typedef struct shared {
    uint64_t n;
    bench_latch done;
} shared;

typedef shared *shared_ptr;

typedef struct collector_state {
    shared *sh;
    uint64_t count;
} collector_state;

typedef struct spawnee_state {
    char unused;
} spawnee_state;

static tr_status
spawnee_init(tr_cx *cx, spawnee_state *self, const tr_ref *collector)
{
    (void)self;
    return bench_exit_after(cx, tr_send(cx, *collector, MSG_HELLO, NULL, 0));
}

static tr_status
collector_init(tr_cx *cx, collector_state *self, const shared_ptr *sh)
{
    (void)cx;
    self->sh = *sh;
    return TR_OK;
}

static tr_status
collector_hello(tr_cx *cx, collector_state *self, const void *msg)
{
    (void)cx;
    (void)msg;
    if (++self->count == self->sh->n) {
        bench_latch_arrive(&self->sh->done);
    }
    return TR_OK;
}

static tr_status
collector_get(tr_cx *cx, collector_state *self, const void *msg)
{
    (void)msg;
    return tr_reply(cx, &self->count, sizeof self->count);
}

TR_ACTOR(spawn_spawnee, spawnee_state, TR_ON_INIT(tr_ref, spawnee_init),
         BENCH_ON_EXIT);

TR_ACTOR(spawn_collector, collector_state,
         TR_ON_INIT(shared_ptr, collector_init),
         TR_ON(MSG_HELLO, void, collector_hello),
         TR_ON(MSG_GET, void, collector_get), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {.n = args->n};
    shared_ptr shp = &sh;
    tr_runtime *rt = NULL;
    tr_ref collector, ref;
    tr_spawn_opts co = {.arg = &shp, .arg_len = sizeof shp};
    tr_spawn_opts so = {.arg = &collector, .arg_len = sizeof collector};
    tr_stats stats;
    uint64_t i, count;
    int rc;

    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &spawn_collector, &co, &collector));

    bench_clock_start(res);
    for (i = 0; i < args->n; i++) {
        BENCH_CHECK(tr_spawn(rt, &spawn_spawnee, &so, &ref));
    }
    if (!bench_latch_wait(&sh.done)) {
        return 1;
    }
    bench_clock_stop(res);
    res->ops = args->n;

    BENCH_CHECK(tr_runtime_stats(rt, &stats));
    BENCH_CHECK(tr_ask_wait(rt, collector, MSG_GET, NULL, 0, &count,
                            sizeof count, 10000));
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    if (count != args->n) {
        return bench_fail("the collector counted %" PRIu64
                          " messages, expected %" PRIu64,
                          count, args->n);
    }
    /* The collector and the n actors (read before the ask). */
    if (stats.spawned != args->n + 1) {
        return bench_fail("the runtime counted %" PRIu64
                          " spawns, expected %" PRIu64,
                          stats.spawned, args->n + 1);
    }
    return 0;
}

const bench_def bench_spawn = {
    "spawn", 1000000,
    "main spawns n actors, each sends one message and ends (spawns/s)", run};
