/* Stress for async handlers: many actors awaiting asks to each other at
 * once, with nested asks (inherited deadlines), forwards, declines, missing
 * replies, sleeps, short timeouts (late replies), asks that close cycles,
 * and actors stopped while they await or are awaited.
 *
 * - ask_storm: every peer makes K awaited asks to random peers (itself
 *   included: a cycle of one) and tallies each outcome. Every ask ends in
 *   exactly one of the statuses its operation allows, every TR_OK reply
 *   carries the right value, the runtime's counters agree with the tallies
 *   (unanswered counts every TR_ENOREPLY outcome, and beyond them only
 *   asks that had timed out), and every peer finishes.
 * - stop_storm: the same while a thread stops random peers. The peers that
 *   were not stopped finish all K asks with allowed statuses (TR_EDEAD
 *   now among them), every stopped peer's terminate hook runs once, and
 *   destroying the runtime leaves nothing behind (the sanitizers check).
 *
 * Scale: TR_STRESS_SECONDS bounds stop_storm's stopping phase; rounds of
 * ask_storm repeat on 1 to 4 workers until TR_STRESS_SECONDS pass. */
#include "tr_stress.h"
#include "tr_test.h"

#include <stdatomic.h>
#include <string.h>

#define PEERS     200u
#define ASKS_EACH 50u

enum {
    MSG_GO = 1,
    MSG_WORK,
};

enum op {
    OP_FAST,    /* reply at once */
    OP_SLEEP,   /* await a sleep, then reply */
    OP_FWD,     /* forward to the peer `hop` names, which answers */
    OP_DECLINE, /* tr_reply_error(TR_ELIMIT) */
    OP_SILENT,  /* return without answering: TR_ENOREPLY */
    OP_NESTED,  /* await an ask to another peer, then reply */
    OP_COUNT,
};

struct work {
    uint64_t arg;
    uint32_t op;
    uint32_t hop; /* a forward's or nested ask's target index */
};

/* Outcome slots of the tally. */
enum {
    OUT_OK,
    OUT_TIMEDOUT,
    OUT_CYCLE,
    OUT_DECLINED,
    OUT_NOREPLY,
    OUT_DEAD,
    OUT_N,
};

static struct {
    tr_runtime *rt;
    tr_ref refs[PEERS];
    bool stopping; /* stop_storm: TR_EDEAD is allowed */
    _Atomic uint64_t out[OUT_N];
    _Atomic uint32_t finished;
    _Atomic uint32_t terminated;
    _Atomic uint32_t bad; /* an outcome not allowed, or a wrong value */
    tr_stress_fail fail;
} G;

struct peer {
    uint32_t id;
    uint64_t rng;
    uint32_t left;
    uint32_t op;
    uint64_t arg, value, nested;
    struct work w;
};

static uint64_t
rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static tr_status
peer_init(tr_cx *cx, struct peer *self, const uint32_t *id)
{
    (void)cx;
    self->id = *id;
    self->rng = tr_test_env_u64("TR_STRESS_SEED", 1) * 1000003u + *id;
    return TR_OK;
}

/* Whether status `st` may end an ask of operation `op`. */
static bool
allowed(uint32_t op, tr_status st)
{
    switch (st) {
    case TR_OK:
        return op == OP_FAST || op == OP_SLEEP || op == OP_FWD ||
               op == OP_NESTED;
    case TR_ETIMEDOUT:
    case TR_ECYCLE:
        return true; /* any ask may time out or close a cycle */
    case TR_ELIMIT:
        return op == OP_DECLINE;
    case TR_ENOREPLY:
        return op == OP_SILENT;
    case TR_EDEAD:
        return G.stopping;
    default:
        return false;
    }
}

static void
tally(uint32_t op, tr_status st, uint64_t arg, uint64_t value)
{
    int slot = st == TR_OK          ? OUT_OK
               : st == TR_ETIMEDOUT ? OUT_TIMEDOUT
               : st == TR_ECYCLE    ? OUT_CYCLE
               : st == TR_ELIMIT    ? OUT_DECLINED
               : st == TR_ENOREPLY  ? OUT_NOREPLY
                                    : OUT_DEAD;

    if (!allowed(op, st) || (st == TR_OK && value != arg * 3 + 1)) {
        if (atomic_fetch_add(&G.bad, 1) == 0) {
            tr_stress_failf(&G.fail, "op %u ended with %s, value %llu for %llu",
                            op, tr_status_name(st), (unsigned long long)value,
                            (unsigned long long)arg);
        }
    }
    atomic_fetch_add_explicit(&G.out[slot], 1, memory_order_relaxed);
}

/* The asking side: K awaited asks to random peers. */
static tr_status
peer_go(tr_cx *cx, struct peer *self, const void *unused)
{
    (void)unused;
    TR_ASYNC_BEGIN(cx);
    for (self->left = ASKS_EACH; self->left > 0; self->left--) {
        uint64_t r = rng(&self->rng);

        self->w.op = (uint32_t)(r % OP_COUNT);
        self->w.arg = r >> 20;
        self->w.hop = (uint32_t)((r >> 8) % PEERS);
        self->value = 0;
        TR_AWAIT_ASK(cx, G.refs[(r >> 40) % PEERS], MSG_WORK, &self->w,
                     sizeof self->w, &self->value, sizeof self->value,
                     (uint32_t)(1 + (r >> 50) % 20));
        tally(self->w.op, tr_await_status(cx), self->w.arg, self->value);
    }
    atomic_fetch_add_explicit(&G.finished, 1, memory_order_release);
    TR_ASYNC_END(cx, TR_OK);
}

/* The answering side. */
static tr_status
peer_work(tr_cx *cx, struct peer *self, const struct work *w)
{
    TR_ASYNC_BEGIN(cx);
    self->value = w->arg * 3 + 1;
    switch (w->op) {
    case OP_FAST:
        return tr_reply(cx, &self->value, sizeof self->value);
    case OP_FWD:
        /* One hop: the peer it names answers (an error here leaves the
         * request unanswered, which the asker's tally catches). */
        if (w->hop != self->id) {
            (void)tr_forward(cx, G.refs[w->hop]);
            return TR_OK;
        }
        return tr_reply(cx, &self->value, sizeof self->value);
    case OP_DECLINE:
        return tr_reply_error(cx, TR_ELIMIT);
    case OP_SILENT:
        return TR_OK;
    default:
        break;
    }
    if (w->op == OP_SLEEP) {
        TR_AWAIT_SLEEP(cx, (uint32_t)(w->arg % 3));
    } else {
        self->w = *w;
        self->w.op = OP_FAST;
        TR_AWAIT_ASK(cx, G.refs[w->hop], MSG_WORK, &self->w, sizeof self->w,
                     &self->nested, sizeof self->nested, 50);
        if (tr_await_status(cx) != TR_OK) {
            return tr_reply_error(cx, tr_await_status(cx));
        }
    }
    TR_ASYNC_END(cx, tr_reply(cx, &self->value, sizeof self->value));
}

static tr_status
peer_terminate(tr_cx *cx, struct peer *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    (void)why;
    atomic_fetch_add_explicit(&G.terminated, 1, memory_order_relaxed);
    return TR_OK;
}

TR_ACTOR(peer_actor, struct peer, TR_ON_INIT(uint32_t, peer_init),
         TR_ON(MSG_GO, void, peer_go), TR_ON(MSG_WORK, struct work, peer_work),
         TR_ON_TERMINATE(peer_terminate));

static void
quiet(void *arg, tr_log_level level, const char *text)
{
    (void)arg;
    (void)level;
    (void)text;
}

static void
start(uint32_t workers, bool stopping)
{
    tr_config cfg = {.workers = workers, .log_fn = quiet};

    memset(G.out, 0, sizeof G.out);
    atomic_store(&G.finished, 0);
    atomic_store(&G.terminated, 0);
    atomic_store(&G.bad, 0);
    G.stopping = stopping;
    tr_stress_fail_init(&G.fail);
    tr_stress_arm(&G.fail, tr_test_now_ns(),
                  (uint64_t)(60000 * tr_test_timeout_multiplier()));
    TR_ASSERT_OK(tr_runtime_new(&G.rt, &cfg));
    for (uint32_t i = 0; i < PEERS; i++) {
        tr_spawn_opts o = {.arg = &i, .arg_len = sizeof i};

        TR_ASSERT_OK(tr_spawn(G.rt, &peer_actor, &o, &G.refs[i]));
    }
    for (uint32_t i = 0; i < PEERS; i++) {
        TR_ASSERT_OK(tr_send(G.rt, G.refs[i], MSG_GO, NULL, 0));
    }
}

static uint64_t
outcomes(void)
{
    uint64_t n = 0;

    for (int i = 0; i < OUT_N; i++) {
        n += atomic_load(&G.out[i]);
    }
    return n;
}

static void
check_failed(void)
{
    if (atomic_load_explicit(&G.fail.failed, memory_order_acquire)) {
        fail_msg("%s", G.fail.why);
    }
}

static void
test_ask_storm(void **state)
{
    uint64_t t_end = tr_test_now_ns() +
                     tr_test_env_u64("TR_STRESS_SECONDS", 2) * 1000000000u;
    uint32_t round = 0;

    (void)state;
    do {
        tr_stats st;

        start(1 + round % 4, false);
        while (atomic_load_explicit(&G.finished, memory_order_acquire) <
                   PEERS &&
               !tr_stress_stop(&G.fail)) {
            tr_test_sleep_ms(2);
        }
        check_failed();
        assert_int_equal(outcomes(), (uint64_t)PEERS * ASKS_EACH);
        TR_ASSERT_OK(tr_runtime_stats(G.rt, &st));
        /* Each TR_ENOREPLY outcome was counted as unanswered; so was a
         * request left unanswered after its asker had timed out. */
        assert_true(st.unanswered >= atomic_load(&G.out[OUT_NOREPLY]));
        assert_true(st.unanswered <= atomic_load(&G.out[OUT_NOREPLY]) +
                                         atomic_load(&G.out[OUT_TIMEDOUT]));
        assert_int_equal(atomic_load(&G.out[OUT_DEAD]), 0);
        /* Every other outcome happens in a round of this size. */
        for (int o = OUT_OK; o < OUT_DEAD; o++) {
            assert_true(atomic_load(&G.out[o]) > 0);
        }
        tr_runtime_destroy(&G.rt);
        assert_int_equal(atomic_load(&G.terminated), PEERS);
        tr_stress_fail_fini(&G.fail);
        round++;
    } while (tr_test_now_ns() < t_end);
}

static void
test_stop_storm(void **state)
{
    uint64_t seed = tr_test_env_u64("TR_STRESS_SEED", 1), stopped = 0;
    uint64_t t_end = tr_test_now_ns() +
                     tr_test_env_u64("TR_STRESS_SECONDS", 2) * 1000000000u;
    bool gone[PEERS] = {false};

    (void)state;
    start(2, true);
    /* Stop a quarter of the peers at random moments of the run. */
    while (stopped < PEERS / 4 && tr_test_now_ns() < t_end &&
           !tr_stress_stop(&G.fail)) {
        uint32_t i = (uint32_t)(rng(&seed) % PEERS);

        if (!gone[i]) {
            tr_status st = tr_stop(G.rt, G.refs[i]);

            assert_true(st == TR_OK || st == TR_EDEAD);
            gone[i] = true;
            stopped++;
        }
        tr_test_sleep_us(500);
    }
    while (atomic_load_explicit(&G.finished, memory_order_acquire) + stopped <
               PEERS &&
           !tr_stress_stop(&G.fail)) {
        tr_test_sleep_ms(2);
    }
    check_failed();
    /* Stopped peers may have finished first; survivors all finished. */
    assert_true(atomic_load(&G.finished) >= PEERS - stopped);
    while (atomic_load(&G.terminated) < stopped && !tr_stress_stop(&G.fail)) {
        tr_test_sleep_ms(2);
    }
    check_failed();
    assert_int_equal(atomic_load(&G.terminated), stopped);
    tr_runtime_destroy(&G.rt);
    assert_int_equal(atomic_load(&G.terminated), PEERS);
    tr_stress_fail_fini(&G.fail);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ask_storm),
        cmocka_unit_test(test_stop_storm),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
