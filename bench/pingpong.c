/* pingpong: n round trips between two actors.
 *
 * ping sends (ping, i) to pong, which answers (pong, i) to its sender; ping
 * checks the echoed i and sends i+1, n times, then reports to main. Timed
 * from main's start message to ping's report. Verified: every echo, and
 * pong's own count (asked after the run) = n. ops = n round trips. */
#include "bench.h"

#include <inttypes.h>

enum {
    MSG_START = BENCH_MSG_USER,
    MSG_PING,
    MSG_PONG,
    MSG_COUNT,
};

typedef struct shared {
    uint64_t n;
    bench_latch done;
    uint64_t echoes;     /* written by ping before it opens the latch */
    uint64_t mismatches; /* likewise */
} shared;

typedef struct ping_arg {
    shared *sh;
    tr_ref pong;
} ping_arg;

typedef struct ping_state {
    shared *sh;
    tr_ref pong;
    uint64_t next; /* the i of the ping in flight */
    uint64_t echoes, mismatches;
} ping_state;

typedef struct pong_state {
    uint64_t count;
} pong_state;

static tr_status
ping_init(tr_cx *cx, ping_state *self, const ping_arg *arg)
{
    (void)cx;
    self->sh = arg->sh;
    self->pong = arg->pong;
    return TR_OK;
}

static tr_status
ping_start(tr_cx *cx, ping_state *self, const void *msg)
{
    (void)msg;
    self->next = 0;
    return bench_sent(
        tr_send(cx, self->pong, MSG_PING, &self->next, sizeof self->next));
}

static tr_status
ping_pong(tr_cx *cx, ping_state *self, const uint64_t *i)
{
    shared *sh = self->sh;

    self->echoes++;
    if (*i != self->next) {
        self->mismatches++;
    }
    if (++self->next < sh->n) {
        return bench_sent(
            tr_send(cx, self->pong, MSG_PING, &self->next, sizeof self->next));
    }
    sh->echoes = self->echoes;
    sh->mismatches = self->mismatches;
    bench_latch_arrive(&sh->done);
    return TR_OK;
}

static tr_status
pong_ping(tr_cx *cx, pong_state *self, const uint64_t *i)
{
    self->count++;
    return bench_sent(tr_send(cx, tr_sender(cx), MSG_PONG, i, sizeof *i));
}

static tr_status
pong_count(tr_cx *cx, pong_state *self, const void *msg)
{
    (void)msg;
    return tr_reply(cx, &self->count, sizeof self->count);
}

TR_ACTOR(pingpong_ping, ping_state, TR_ON_INIT(ping_arg, ping_init),
         TR_ON(MSG_START, void, ping_start),
         TR_ON(MSG_PONG, uint64_t, ping_pong), BENCH_ON_TERMINATE);

TR_ACTOR(pingpong_pong, pong_state, TR_ON(MSG_PING, uint64_t, pong_ping),
         TR_ON(MSG_COUNT, void, pong_count), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {.n = args->n};
    tr_runtime *rt = NULL;
    ping_arg pa = {&sh, TR_NOREF};
    tr_spawn_opts po = {.arg = &pa, .arg_len = sizeof pa};
    tr_ref ping;
    uint64_t pong_count;
    int rc;

    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &pingpong_pong, NULL, &pa.pong));
    BENCH_CHECK(tr_spawn(rt, &pingpong_ping, &po, &ping));

    if (bench_kick(rt, ping, MSG_START, &sh.done, res) != 0) {
        return 1;
    }
    res->ops = args->n;

    BENCH_CHECK(tr_ask_wait(rt, pa.pong, MSG_COUNT, NULL, 0, &pong_count,
                            sizeof pong_count, 10000));
    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    if (sh.echoes != args->n || sh.mismatches != 0) {
        return bench_fail("ping saw %" PRIu64 " echoes, %" PRIu64
                          " wrong (expected %" PRIu64 ", 0)",
                          sh.echoes, sh.mismatches, args->n);
    }
    if (pong_count != args->n) {
        return bench_fail("pong counted %" PRIu64 " pings, expected %" PRIu64,
                          pong_count, args->n);
    }
    return 0;
}

const bench_def bench_pingpong = {
    "pingpong", 1000000, "n round trips between two actors (ns per round trip)",
    run};
