/* skynet: a tree of actors, ten children each, down to n leaves.
 *
 * The root covers leaves 0..n-1; every inner actor spawns ten children,
 * each covering a tenth of its range; leaf i sends i to its parent; every
 * inner actor sums its ten children's replies, sends the sum to its parent
 * and ends. Timed from main's spawn of the root to the root's sum reaching
 * main. Verified: the sum = n(n-1)/2 (499,999,500,000 for a million) and
 * the runtime counted one spawn per actor of the tree. n must be a power
 * of ten. ops = actors in the tree (1,111,111 for a million leaves). */
#include "bench.h"

#include <inttypes.h>

#define SKYNET_FANOUT 10u

enum {
    MSG_RESULT = BENCH_MSG_USER,
};

typedef struct shared {
    bench_latch done;
    uint64_t sum; /* written by the root before it opens the latch */
} shared;

typedef struct node_arg {
    tr_ref parent; /* TR_NOREF for the root */
    uint64_t first, size;
    shared *sh;
} node_arg;

typedef struct node_state {
    tr_ref parent;
    shared *sh;
    uint64_t sum;
    uint32_t got;
} node_state;

/* The root hands its sum to main; the others to their parent. */
static tr_status
report(tr_cx *cx, node_state *self, uint64_t sum)
{
    if (tr_ref_is_none(self->parent)) {
        self->sh->sum = sum;
        bench_latch_arrive(&self->sh->done);
        return tr_exit(cx, 0, NULL);
    }
    return bench_exit_after(
        cx, tr_send(cx, self->parent, MSG_RESULT, &sum, sizeof sum));
}

extern const tr_behavior skynet_node;

static tr_status
node_init(tr_cx *cx, node_state *self, const node_arg *arg)
{
    node_arg child;
    tr_spawn_opts co = {.arg = &child, .arg_len = sizeof child};
    tr_ref ref;
    uint32_t i;
    tr_status st;

    self->parent = arg->parent;
    self->sh = arg->sh;
    if (arg->size == 1) {
        return report(cx, self, arg->first);
    }
    child.parent = tr_self(cx);
    child.size = arg->size / SKYNET_FANOUT;
    child.sh = arg->sh;
    for (i = 0; i < SKYNET_FANOUT; i++) {
        child.first = arg->first + i * child.size;
        st = tr_spawn(cx, &skynet_node, &co, &ref);
        if (st != TR_OK) {
            return st;
        }
    }
    return TR_OK;
}

static tr_status
node_result(tr_cx *cx, node_state *self, const uint64_t *v)
{
    self->sum += *v;
    if (++self->got < SKYNET_FANOUT) {
        return TR_OK;
    }
    return report(cx, self, self->sum);
}

TR_ACTOR(skynet_node, node_state, TR_ON_INIT(node_arg, node_init),
         TR_ON(MSG_RESULT, uint64_t, node_result), BENCH_ON_EXIT);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {0};
    tr_runtime *rt = NULL;
    node_arg root = {TR_NOREF, 0, args->n, &sh};
    tr_spawn_opts ro = {.arg = &root, .arg_len = sizeof root};
    tr_ref ref;
    tr_stats stats;
    uint64_t actors = 0, level, want;
    int rc;

    for (level = 1; level < args->n; level *= SKYNET_FANOUT) {
        actors += level;
    }
    if (level != args->n) {
        return bench_fail("--n must be a power of %u", SKYNET_FANOUT);
    }
    actors += level;
    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));

    bench_clock_start(res);
    BENCH_CHECK(tr_spawn(rt, &skynet_node, &ro, &ref));
    if (!bench_latch_wait(&sh.done)) {
        return 1;
    }
    bench_clock_stop(res);
    res->ops = actors;

    BENCH_CHECK(tr_runtime_stats(rt, &stats));
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    want = args->n * (args->n - 1) / 2;
    if (sh.sum != want) {
        return bench_fail("the root's sum is %" PRIu64 ", expected %" PRIu64,
                          sh.sum, want);
    }
    if (stats.spawned != actors) {
        return bench_fail("the runtime counted %" PRIu64
                          " spawns, expected %" PRIu64,
                          stats.spawned, actors);
    }
    bench_extra(res, "actors", (double)actors, true);
    return 0;
}

const bench_def bench_skynet = {
    "skynet", 1000000,
    "a tree of actors, ten children each, sums n leaves (ms for the tree)",
    run};
