/* ring: a token makes n hops around a ring of RING_ACTORS actors.
 *
 * Each actor knows its successor. main gives actor 0 a token carrying n; an
 * actor receiving k > 0 counts the hop and forwards k-1; the one receiving
 * 0 tells main. Timed from main's send of the token to that report.
 * Verified: a stop message then travels once around the ring summing every
 * actor's hop count, which must equal n; each actor ends after passing it
 * on. ops = n hops. */
#include "bench.h"

#include <inttypes.h>
#include <stdlib.h>

#define RING_ACTORS 1000u

enum {
    MSG_NEXT = BENCH_MSG_USER,
    MSG_SYNC,
    MSG_TOKEN,
    MSG_STOP,
};

typedef struct shared {
    bench_latch token_done;
    bench_latch stop_done;
    uint64_t hops_sum; /* written by the last stop holder */
} shared;

typedef struct node_arg {
    shared *sh;
    tr_ref next;
} node_arg;

typedef struct node_state {
    shared *sh;
    tr_ref next;
    uint64_t hops;
} node_state;

typedef struct stop_msg {
    uint64_t sum;
    uint64_t left; /* actors still to visit, this one included */
} stop_msg;

static tr_status
node_init(tr_cx *cx, node_state *self, const node_arg *arg)
{
    (void)cx;
    self->sh = arg->sh;
    self->next = arg->next;
    return TR_OK;
}

static tr_status
node_next(tr_cx *cx, node_state *self, const tr_ref *next)
{
    (void)cx;
    self->next = *next;
    return TR_OK;
}

static tr_status
node_sync(tr_cx *cx, node_state *self, const void *msg)
{
    (void)self;
    (void)msg;
    return tr_reply(cx, NULL, 0);
}

static tr_status
node_token(tr_cx *cx, node_state *self, const uint64_t *k)
{
    uint64_t left;

    if (*k == 0) {
        bench_latch_arrive(&self->sh->token_done);
        return TR_OK;
    }
    self->hops++;
    left = *k - 1;
    return bench_sent(tr_send(cx, self->next, MSG_TOKEN, &left, sizeof left));
}

static tr_status
node_stop(tr_cx *cx, node_state *self, const stop_msg *in)
{
    stop_msg out = {in->sum + self->hops, in->left - 1};

    if (out.left == 0) {
        self->sh->hops_sum = out.sum;
        bench_latch_arrive(&self->sh->stop_done);
        return tr_exit(cx, 0, NULL);
    }
    return bench_exit_after(
        cx, tr_send(cx, self->next, MSG_STOP, &out, sizeof out));
}

TR_ACTOR(ring_node, node_state, TR_ON_INIT(node_arg, node_init),
         TR_ON(MSG_NEXT, tr_ref, node_next), TR_ON(MSG_SYNC, void, node_sync),
         TR_ON(MSG_TOKEN, uint64_t, node_token),
         TR_ON(MSG_STOP, stop_msg, node_stop), BENCH_ON_EXIT,
         BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {0};
    tr_runtime *rt = NULL;
    tr_ref *ring = calloc(RING_ACTORS, sizeof *ring);
    node_arg na = {&sh, TR_NOREF};
    tr_spawn_opts po = {.arg = &na, .arg_len = sizeof na};
    stop_msg stop = {0, RING_ACTORS};
    uint64_t n = args->n;
    uint32_t i;
    int rc;

    if (ring == NULL) {
        return bench_fail("out of memory");
    }
    bench_latch_init(&sh.token_done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    /* Spawned last to first, so each one's successor exists; the last one
     * learns actor 0 afterwards. */
    for (i = RING_ACTORS; i-- > 0;) {
        na.next = i + 1 < RING_ACTORS ? ring[i + 1] : TR_NOREF;
        BENCH_CHECK(tr_spawn(rt, &ring_node, &po, &ring[i]));
    }
    BENCH_CHECK(
        tr_send(rt, ring[RING_ACTORS - 1], MSG_NEXT, &ring[0], sizeof ring[0]));
    BENCH_CHECK(tr_ask_wait(rt, ring[RING_ACTORS - 1], MSG_SYNC, NULL, 0, NULL,
                            0, 10000));

    bench_clock_start(res);
    BENCH_CHECK(tr_send(rt, ring[0], MSG_TOKEN, &n, sizeof n));
    if (!bench_latch_wait(&sh.token_done)) {
        return 1;
    }
    bench_clock_stop(res);
    res->ops = n;

    bench_latch_init(&sh.stop_done, 1);
    BENCH_CHECK(tr_send(rt, ring[0], MSG_STOP, &stop, sizeof stop));
    if (!bench_latch_wait(&sh.stop_done)) {
        return 1;
    }
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.stop_done);
    bench_latch_fini(&sh.token_done);
    free(ring);
    if (rc != 0) {
        return rc;
    }
    if (sh.hops_sum != n) {
        return bench_fail("the ring counted %" PRIu64
                          " hops, expected %" PRIu64,
                          sh.hops_sum, n);
    }
    bench_extra(res, "actors", RING_ACTORS, true);
    return 0;
}

const bench_def bench_ring = {
    "ring", 5000000,
    "a token makes n hops around a ring of 1,000 actors (ns per hop)", run};
