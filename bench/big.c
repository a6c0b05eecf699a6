/* big: BIG_WORKERS actors ping random others, n pings each.
 *
 * Worker i draws its targets from a MINSTD generator seeded with i + 1
 * (next = state * 48271 mod 2^31-1, target = next mod BIG_WORKERS, drawn
 * again when it names the worker itself). It sends a ping to the target,
 * which answers pong; on each pong the worker sends its next ping until it
 * has n pongs, then tells main "done" and goes on answering pings. Timed
 * from main's first start message until all workers are done. Verified
 * (asked after the run): the pong counts and the answered-ping counts each
 * sum to BIG_WORKERS * n. ops = 2 * BIG_WORKERS * n messages. */
#include "bench.h"

#include <inttypes.h>

#define BIG_WORKERS 120u

enum {
    MSG_START = BENCH_MSG_USER,
    MSG_PING,
    MSG_PONG,
    MSG_GET,
};

typedef struct shared {
    uint64_t n;
    tr_ref workers[BIG_WORKERS]; /* written by main before any start */
    bench_latch done;
} shared;

typedef struct worker_arg {
    shared *sh;
    uint32_t index;
} worker_arg;

typedef struct worker_state {
    shared *sh;
    uint32_t index;
    uint32_t rng; /* MINSTD state */
    uint64_t pongs, answered;
} worker_state;

static tr_status
worker_init(tr_cx *cx, worker_state *self, const worker_arg *arg)
{
    (void)cx;
    self->sh = arg->sh;
    self->index = arg->index;
    self->rng = arg->index + 1;
    return TR_OK;
}

static uint32_t
next_target(worker_state *self)
{
    uint32_t t;

    do {
        self->rng = (uint32_t)((uint64_t)self->rng * 48271u % 2147483647u);
        t = self->rng % BIG_WORKERS;
    } while (t == self->index);
    return t;
}

static tr_status
send_ping(tr_cx *cx, worker_state *self)
{
    return bench_sent(
        tr_send(cx, self->sh->workers[next_target(self)], MSG_PING, NULL, 0));
}

static tr_status
worker_start(tr_cx *cx, worker_state *self, const void *msg)
{
    (void)msg;
    return send_ping(cx, self);
}

static tr_status
worker_ping(tr_cx *cx, worker_state *self, const void *msg)
{
    (void)msg;
    self->answered++;
    return bench_sent(tr_send(cx, tr_sender(cx), MSG_PONG, NULL, 0));
}

static tr_status
worker_pong(tr_cx *cx, worker_state *self, const void *msg)
{
    (void)msg;
    if (++self->pongs < self->sh->n) {
        return send_ping(cx, self);
    }
    if (self->pongs == self->sh->n) {
        bench_latch_arrive(&self->sh->done);
    }
    return TR_OK;
}

static tr_status
worker_get(tr_cx *cx, worker_state *self, const void *msg)
{
    uint64_t counts[2] = {self->pongs, self->answered};

    (void)msg;
    return tr_reply(cx, counts, sizeof counts);
}

TR_ACTOR(big_worker, worker_state, TR_ON_INIT(worker_arg, worker_init),
         TR_ON(MSG_START, void, worker_start),
         TR_ON(MSG_PING, void, worker_ping), TR_ON(MSG_PONG, void, worker_pong),
         TR_ON(MSG_GET, void, worker_get), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    static shared sh; /* 2 KB of refs: keep it off the stack */
    tr_runtime *rt = NULL;
    worker_arg wa = {&sh, 0};
    tr_spawn_opts wo = {.arg = &wa, .arg_len = sizeof wa};
    uint64_t pongs = 0, answered = 0, counts[2];
    uint32_t i;
    int rc;

    sh.n = args->n;
    bench_latch_init(&sh.done, BIG_WORKERS);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    for (i = 0; i < BIG_WORKERS; i++) {
        wa.index = i;
        BENCH_CHECK(tr_spawn(rt, &big_worker, &wo, &sh.workers[i]));
    }

    bench_clock_start(res);
    for (i = 0; i < BIG_WORKERS; i++) {
        BENCH_CHECK(tr_send(rt, sh.workers[i], MSG_START, NULL, 0));
    }
    if (!bench_latch_wait(&sh.done)) {
        return 1;
    }
    bench_clock_stop(res);
    res->ops = 2u * BIG_WORKERS * args->n;

    for (i = 0; i < BIG_WORKERS; i++) {
        BENCH_CHECK(tr_ask_wait(rt, sh.workers[i], MSG_GET, NULL, 0, counts,
                                sizeof counts, 10000));
        pongs += counts[0];
        answered += counts[1];
    }
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    if (pongs != BIG_WORKERS * args->n || answered != BIG_WORKERS * args->n) {
        return bench_fail("%" PRIu64 " pongs and %" PRIu64
                          " answered pings, expected %" PRIu64 " of each",
                          pongs, answered, BIG_WORKERS * args->n);
    }
    bench_extra(res, "actors", BIG_WORKERS, true);
    return 0;
}

const bench_def bench_big = {
    "big", 20000, "120 actors ping random others, n pings each (M msgs/s)",
    run};
