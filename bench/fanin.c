/* fanin: FANIN_PRODUCERS producers flood one aggregator.
 *
 * Each producer sends M = n / FANIN_PRODUCERS integers 0..M-1 to the
 * aggregator, which counts and sums them and reports to main when it has
 * FANIN_PRODUCERS * M. Timed from main's first start message to that
 * report. Verified: count = P*M and sum = P*M(M-1)/2. ops = P*M messages.
 *
 * Producers respect backpressure as in counting.c: stop at the first
 * TR_PENDING, continue from a message to themselves. */
#include "bench.h"

#include <inttypes.h>

#define FANIN_PRODUCERS 100u

enum {
    MSG_START = BENCH_MSG_USER,
    MSG_CONTINUE,
    MSG_VALUE,
    MSG_GET,
};

typedef struct shared {
    uint64_t m;        /* values per producer */
    uint64_t expected; /* FANIN_PRODUCERS * m */
    bench_latch done;
    uint64_t count, sum; /* written by the aggregator before the latch */
} shared;

typedef struct producer_arg {
    shared *sh;
    tr_ref aggregator;
} producer_arg;

typedef struct producer_state {
    shared *sh;
    tr_ref aggregator;
    uint64_t next; /* the next value to send */
} producer_state;

typedef struct aggregator_state {
    shared *sh;
    uint64_t count, sum;
} aggregator_state;

typedef shared *shared_ptr;

static tr_status
producer_init(tr_cx *cx, producer_state *self, const producer_arg *arg)
{
    (void)cx;
    self->sh = arg->sh;
    self->aggregator = arg->aggregator;
    return TR_OK;
}

static tr_status
producer_flood(tr_cx *cx, producer_state *self, const void *msg)
{
    uint64_t m = self->sh->m;

    (void)msg;
    while (self->next < m) {
        tr_status st = tr_send(cx, self->aggregator, MSG_VALUE, &self->next,
                               sizeof self->next);

        if (st != TR_OK && st != TR_PENDING) {
            return bench_sent(st);
        }
        self->next++;
        if (st == TR_PENDING) {
            return bench_sent(tr_send(cx, tr_self(cx), MSG_CONTINUE, NULL, 0));
        }
    }
    return TR_OK;
}

static tr_status
aggregator_init(tr_cx *cx, aggregator_state *self, const shared_ptr *sh)
{
    (void)cx;
    self->sh = *sh;
    return TR_OK;
}

static tr_status
aggregator_value(tr_cx *cx, aggregator_state *self, const uint64_t *v)
{
    (void)cx;
    self->sum += *v;
    if (++self->count == self->sh->expected) {
        self->sh->count = self->count;
        self->sh->sum = self->sum;
        bench_latch_arrive(&self->sh->done);
    }
    return TR_OK;
}

/* After the run: the totals again, so a value delivered twice shows. */
static tr_status
aggregator_get(tr_cx *cx, aggregator_state *self, const void *msg)
{
    uint64_t totals[2] = {self->count, self->sum};

    (void)msg;
    return tr_reply(cx, totals, sizeof totals);
}

TR_ACTOR(fanin_producer, producer_state,
         TR_ON_INIT(producer_arg, producer_init),
         TR_ON(MSG_START, void, producer_flood),
         TR_ON(MSG_CONTINUE, void, producer_flood), BENCH_ON_TERMINATE);

TR_ACTOR(fanin_aggregator, aggregator_state,
         TR_ON_INIT(shared_ptr, aggregator_init),
         TR_ON(MSG_VALUE, uint64_t, aggregator_value),
         TR_ON(MSG_GET, void, aggregator_get), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {0};
    shared_ptr shp = &sh;
    tr_runtime *rt = NULL;
    producer_arg pa = {&sh, TR_NOREF};
    tr_spawn_opts ao = {.arg = &shp, .arg_len = sizeof shp};
    tr_spawn_opts po = {.arg = &pa, .arg_len = sizeof pa};
    tr_ref producers[FANIN_PRODUCERS];
    uint64_t m = args->n / FANIN_PRODUCERS, want_sum, totals[2];
    uint32_t i;
    int rc;

    if (m == 0) {
        return bench_fail("--n must be at least %u", FANIN_PRODUCERS);
    }
    sh.m = m;
    sh.expected = FANIN_PRODUCERS * m;
    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &fanin_aggregator, &ao, &pa.aggregator));
    for (i = 0; i < FANIN_PRODUCERS; i++) {
        BENCH_CHECK(tr_spawn(rt, &fanin_producer, &po, &producers[i]));
    }

    bench_clock_start(res);
    for (i = 0; i < FANIN_PRODUCERS; i++) {
        BENCH_CHECK(tr_send(rt, producers[i], MSG_START, NULL, 0));
    }
    if (!bench_latch_wait(&sh.done)) {
        return 1;
    }
    bench_clock_stop(res);
    res->ops = sh.expected;

    BENCH_CHECK(tr_ask_wait(rt, pa.aggregator, MSG_GET, NULL, 0, totals,
                            sizeof totals, 10000));
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    want_sum = FANIN_PRODUCERS * (m * (m - 1) / 2);
    if (sh.count != sh.expected || sh.sum != want_sum ||
        totals[0] != sh.expected || totals[1] != want_sum) {
        return bench_fail("the aggregator has %" PRIu64
                          " values summing to %" PRIu64 ", expected %" PRIu64
                          " summing to %" PRIu64,
                          totals[0], totals[1], sh.expected, want_sum);
    }
    bench_extra(res, "producers", FANIN_PRODUCERS, true);
    return 0;
}

const bench_def bench_fanin = {
    "fanin", 10000000,
    "100 producers send n values in all to one aggregator (M msgs/s)", run};
