/* counting: one producer floods one counter with n increments.
 *
 * The producer sends n increments to the counter, then a get request; the
 * counter replies its total to the producer, which forwards it to main.
 * Timed from main's start message to main receiving the total. Verified:
 * total = n. ops = n increments.
 *
 * The counter's mailbox is bounded (the runtime's default) with the
 * default backpressure policy: the producer stops at the first TR_PENDING
 * and sends itself MSG_CONTINUE, which runs once its held increment has
 * been delivered and it is unmuted. */
#include "bench.h"

#include <inttypes.h>

enum {
    MSG_START = BENCH_MSG_USER,
    MSG_CONTINUE,
    MSG_INC,
    MSG_GET,
    MSG_TOTAL,
};

typedef struct shared {
    uint64_t n;
    bench_latch done;
    uint64_t total; /* written by the producer before it opens the latch */
} shared;

typedef struct producer_arg {
    shared *sh;
    tr_ref counter;
} producer_arg;

typedef struct producer_state {
    shared *sh;
    tr_ref counter;
    uint64_t sent; /* increments the runtime accepted so far */
} producer_state;

typedef struct counter_state {
    uint64_t total;
} counter_state;

static tr_status
producer_init(tr_cx *cx, producer_state *self, const producer_arg *arg)
{
    (void)cx;
    self->sh = arg->sh;
    self->counter = arg->counter;
    return TR_OK;
}

/* Sends increments until all n are out or one is held; then the get. */
static tr_status
producer_flood(tr_cx *cx, producer_state *self, const void *msg)
{
    uint64_t n = self->sh->n;

    (void)msg;
    while (self->sent < n) {
        tr_status st = tr_send(cx, self->counter, MSG_INC, NULL, 0);

        if (st != TR_OK && st != TR_PENDING) {
            return bench_sent(st);
        }
        self->sent++;
        if (st == TR_PENDING) {
            return bench_sent(tr_send(cx, tr_self(cx), MSG_CONTINUE, NULL, 0));
        }
    }
    return bench_sent(tr_send(cx, self->counter, MSG_GET, NULL, 0));
}

static tr_status
producer_total(tr_cx *cx, producer_state *self, const uint64_t *total)
{
    (void)cx;
    self->sh->total = *total;
    bench_latch_arrive(&self->sh->done);
    return TR_OK;
}

static tr_status
counter_inc(tr_cx *cx, counter_state *self, const void *msg)
{
    (void)cx;
    (void)msg;
    self->total++;
    return TR_OK;
}

static tr_status
counter_get(tr_cx *cx, counter_state *self, const void *msg)
{
    (void)msg;
    return bench_sent(tr_send(cx, tr_sender(cx), MSG_TOTAL, &self->total,
                              sizeof self->total));
}

TR_ACTOR(counting_producer, producer_state,
         TR_ON_INIT(producer_arg, producer_init),
         TR_ON(MSG_START, void, producer_flood),
         TR_ON(MSG_CONTINUE, void, producer_flood),
         TR_ON(MSG_TOTAL, uint64_t, producer_total), BENCH_ON_TERMINATE);

TR_ACTOR(counting_counter, counter_state, TR_ON(MSG_INC, void, counter_inc),
         TR_ON(MSG_GET, void, counter_get), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {.n = args->n};
    tr_runtime *rt = NULL;
    producer_arg pa = {&sh, TR_NOREF};
    tr_spawn_opts po = {.arg = &pa, .arg_len = sizeof pa};
    tr_ref producer;
    int rc;

    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &counting_counter, NULL, &pa.counter));
    BENCH_CHECK(tr_spawn(rt, &counting_producer, &po, &producer));

    if (bench_kick(rt, producer, MSG_START, &sh.done, res) != 0) {
        return 1;
    }
    res->ops = args->n;

    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    if (sh.total != args->n) {
        return bench_fail("the counter's total is %" PRIu64
                          ", expected %" PRIu64,
                          sh.total, args->n);
    }
    return 0;
}

const bench_def bench_counting = {
    "counting", 10000000,
    "one producer sends n increments to one counter (M msgs/s)", run};
