/* ask: n request/reply round trips between two actors, the asker awaiting
 * each reply in an async handler.
 *
 * On start, the asker runs one handler that loops n times: it awaits an
 * ask of (req, i) to the server, which replies i + 1; the asker checks each
 * reply and the await's status. Timed from main's start message to the
 * asker's report. Verified: every reply, and the server's own count (asked
 * after the run) = n. ops = n round trips; compare per_op_ns with
 * pingpong's. */
#include "bench.h"

#include <inttypes.h>

enum {
    MSG_START = BENCH_MSG_USER,
    MSG_REQ,
    MSG_COUNT,
};

/* The deadline of each ask: far beyond any round trip. */
#define ASK_TIMEOUT_MS 10000u

typedef struct shared {
    uint64_t n;
    bench_latch done;
    uint64_t replies; /* written by the asker before it opens the latch */
    uint64_t wrong;   /* likewise: replies or statuses not as expected */
} shared;

typedef struct asker_arg {
    shared *sh;
    tr_ref server;
} asker_arg;

typedef struct asker_state {
    shared *sh;
    tr_ref server;
    uint64_t i, reply; /* live across awaits: in the state */
    uint64_t replies, wrong;
} asker_state;

typedef struct server_state {
    uint64_t count;
} server_state;

static tr_status
asker_init(tr_cx *cx, asker_state *self, const asker_arg *arg)
{
    (void)cx;
    self->sh = arg->sh;
    self->server = arg->server;
    return TR_OK;
}

static tr_status
asker_start(tr_cx *cx, asker_state *self, const void *msg)
{
    (void)msg;
    TR_ASYNC_BEGIN(cx);
    for (self->i = 0; self->i < self->sh->n; self->i++) {
        TR_AWAIT_ASK(cx, self->server, MSG_REQ, &self->i, sizeof self->i,
                     &self->reply, sizeof self->reply, ASK_TIMEOUT_MS);
        self->replies++;
        if (tr_await_status(cx) != TR_OK || self->reply != self->i + 1) {
            self->wrong++;
        }
    }
    self->sh->replies = self->replies;
    self->sh->wrong = self->wrong;
    bench_latch_arrive(&self->sh->done);
    TR_ASYNC_END(cx, TR_OK);
}

static tr_status
server_req(tr_cx *cx, server_state *self, const uint64_t *i)
{
    uint64_t r = *i + 1;

    self->count++;
    return tr_reply(cx, &r, sizeof r);
}

static tr_status
server_count(tr_cx *cx, server_state *self, const void *msg)
{
    (void)msg;
    return tr_reply(cx, &self->count, sizeof self->count);
}

TR_ACTOR(ask_asker, asker_state, TR_ON_INIT(asker_arg, asker_init),
         TR_ON(MSG_START, void, asker_start), BENCH_ON_TERMINATE);

TR_ACTOR(ask_server, server_state, TR_ON(MSG_REQ, uint64_t, server_req),
         TR_ON(MSG_COUNT, void, server_count), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {.n = args->n};
    tr_runtime *rt = NULL;
    asker_arg aa = {&sh, TR_NOREF};
    tr_spawn_opts ao = {.arg = &aa, .arg_len = sizeof aa};
    tr_ref asker;
    uint64_t served;
    int rc;

    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &ask_server, NULL, &aa.server));
    BENCH_CHECK(tr_spawn(rt, &ask_asker, &ao, &asker));

    if (bench_kick(rt, asker, MSG_START, &sh.done, res) != 0) {
        return 1;
    }
    res->ops = args->n;

    BENCH_CHECK(tr_ask_wait(rt, aa.server, MSG_COUNT, NULL, 0, &served,
                            sizeof served, 10000));
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    if (sh.replies != args->n || sh.wrong != 0) {
        return bench_fail("asker saw %" PRIu64 " replies, %" PRIu64
                          " wrong (expected %" PRIu64 ", 0)",
                          sh.replies, sh.wrong, args->n);
    }
    if (served != args->n) {
        return bench_fail("server counted %" PRIu64
                          " requests, expected %" PRIu64,
                          served, args->n);
    }
    return 0;
}

const bench_def bench_ask = {
    "ask", 1000000,
    "n awaited request/reply round trips between two actors (ns per round "
    "trip)",
    run};
