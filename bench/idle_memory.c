/* idle_memory: what an idle actor costs in resident memory.
 *
 * main reads VmRSS, spawns n actors that each tell main "ready" (through a
 * sink actor, main's stand-in) and then wait for a message, waits for all n
 * readies, sleeps IDLE_SETTLE_MS and reads VmRSS again: bytes_per_actor =
 * (after - before) / n. Then main sends each actor a stop message; each
 * confirms to the sink and ends. Timed: the spawn-and-ready phase (ops = n
 * spawns). Verified: n readies and n confirmations, each counted once. */
#include "bench.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_SETTLE_MS 50

enum {
    MSG_READY = BENCH_MSG_USER,
    MSG_STOP,
    MSG_CONFIRM,
    MSG_GET,
};

typedef struct shared {
    uint64_t n;
    bench_latch ready_done;
    bench_latch stop_done;
} shared;

typedef shared *shared_ptr;

typedef struct sink_state {
    shared *sh;
    uint64_t ready, confirmed;
} sink_state;

typedef struct idle_state {
    tr_ref sink;
} idle_state;

static tr_status
idle_init(tr_cx *cx, idle_state *self, const tr_ref *sink)
{
    self->sink = *sink;
    return bench_sent(tr_send(cx, self->sink, MSG_READY, NULL, 0));
}

static tr_status
idle_stop(tr_cx *cx, idle_state *self, const void *msg)
{
    (void)msg;
    return bench_exit_after(cx, tr_send(cx, self->sink, MSG_CONFIRM, NULL, 0));
}

static tr_status
sink_init(tr_cx *cx, sink_state *self, const shared_ptr *sh)
{
    (void)cx;
    self->sh = *sh;
    return TR_OK;
}

static tr_status
sink_ready(tr_cx *cx, sink_state *self, const void *msg)
{
    (void)cx;
    (void)msg;
    if (++self->ready == self->sh->n) {
        bench_latch_arrive(&self->sh->ready_done);
    }
    return TR_OK;
}

static tr_status
sink_confirm(tr_cx *cx, sink_state *self, const void *msg)
{
    (void)cx;
    (void)msg;
    if (++self->confirmed == self->sh->n) {
        bench_latch_arrive(&self->sh->stop_done);
    }
    return TR_OK;
}

static tr_status
sink_get(tr_cx *cx, sink_state *self, const void *msg)
{
    uint64_t counts[2] = {self->ready, self->confirmed};

    (void)msg;
    return tr_reply(cx, counts, sizeof counts);
}

TR_ACTOR(idle_memory_idle, idle_state, TR_ON_INIT(tr_ref, idle_init),
         TR_ON(MSG_STOP, void, idle_stop), BENCH_ON_EXIT);

TR_ACTOR(idle_memory_sink, sink_state, TR_ON_INIT(shared_ptr, sink_init),
         TR_ON(MSG_READY, void, sink_ready),
         TR_ON(MSG_CONFIRM, void, sink_confirm), TR_ON(MSG_GET, void, sink_get),
         BENCH_ON_TERMINATE);

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {.n = args->n};
    shared_ptr shp = &sh;
    tr_runtime *rt = NULL;
    tr_ref sink;
    tr_spawn_opts ko = {.arg = &shp, .arg_len = sizeof shp};
    tr_spawn_opts io = {.arg = &sink, .arg_len = sizeof sink};
    tr_ref *refs = malloc(args->n * sizeof *refs);
    uint64_t i, before, idle, counts[2];
    double per_actor;
    int rc;

    if (refs == NULL) {
        return bench_fail("out of memory for %" PRIu64 " refs", args->n);
    }
    /* Touch the array now, so its pages count in `before`, not per actor.
     * Not with zeros: the compiler turns malloc plus a zeroing memset into
     * calloc, which leaves fresh pages untouched (they then counted 16
     * bytes per actor). tr_spawn overwrites every ref. */
    memset(refs, 0xff, args->n * sizeof *refs);
    bench_latch_init(&sh.ready_done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &idle_memory_sink, &ko, &sink));
    BENCH_CHECK(
        tr_ask_wait(rt, sink, MSG_GET, NULL, 0, counts, sizeof counts, 10000));
    before = bench_rss_kb();

    bench_clock_start(res);
    for (i = 0; i < args->n; i++) {
        BENCH_CHECK(tr_spawn(rt, &idle_memory_idle, &io, &refs[i]));
    }
    if (!bench_latch_wait(&sh.ready_done)) {
        return 1;
    }
    bench_clock_stop(res);
    res->ops = args->n;

    sleep_ms(IDLE_SETTLE_MS);
    idle = bench_rss_kb();
    per_actor = ((double)idle - (double)before) * 1024.0 / (double)args->n;

    bench_latch_init(&sh.stop_done, 1);
    for (i = 0; i < args->n; i++) {
        BENCH_CHECK(tr_send(rt, refs[i], MSG_STOP, NULL, 0));
    }
    if (!bench_latch_wait(&sh.stop_done)) {
        return 1;
    }
    BENCH_CHECK(
        tr_ask_wait(rt, sink, MSG_GET, NULL, 0, counts, sizeof counts, 10000));
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.stop_done);
    bench_latch_fini(&sh.ready_done);
    free(refs);
    if (rc != 0) {
        return rc;
    }
    if (counts[0] != args->n || counts[1] != args->n) {
        return bench_fail("the sink counted %" PRIu64 " readies and %" PRIu64
                          " confirmations, expected %" PRIu64 " of each",
                          counts[0], counts[1], args->n);
    }
    bench_extra(res, "bytes_per_actor", per_actor, false);
    bench_extra(res, "rss_before_kb", (double)before, true);
    bench_extra(res, "rss_idle_kb", (double)idle, true);
    return 0;
}

const bench_def bench_idle_memory = {
    "idle_memory", 100000,
    "resident bytes per idle actor, n actors waiting for a message", run};
