/* Chaos in a supervision tree: a top supervisor over MIDS mid supervisors,
 * each over an equal share of a few thousand workers, under load, while
 * workers fail many times a second for TR_STRESS_SECONDS.
 *
 * The tree: top (one_for_one) -> MIDS mids (child specs with .sup) -> the
 * workers (one_for_one, capacity CAPACITY with backpressure, retry RETRY,
 * backoff 1 ms doubling to 10 ms with 20% jitter, reset after 50 ms up, and
 * a decider that resumes after a "soft" failure and restarts otherwise).
 * Each worker's init hook writes its current ref into a table, so the
 * threads below always find it: a restart in place keeps the ref, a worker
 * replaced after a kill (or after its mid restarted) has a new one.
 *
 * During the run:
 * - PRODUCERS outside threads send work messages, each with its own id, to
 *   random workers (they block while a full worker backs off; a worker
 *   being drained refuses them with TR_ESHUTDOWN).
 * - A chaos thread, every CHAOS_GAP_US, picks a random worker of a sturdy
 *   mid (all mids but the last) and kills it (tr_kill) or sends it a fail
 *   message of one of three kinds: soft (its handler fails with SOFT_CODE:
 *   the decider resumes the worker, the message is dead-lettered with
 *   TR_EFAILED), once (fails the first time; after the restart the worker
 *   is handed it again and handles it) or poison (fails every time: handled
 *   RETRY + 1 times, each failure a restart, then quarantined with
 *   TR_EPOISON).
 * - The main thread makes the fragile mid (the last one: intensity
 *   FRAGILE_INTENSITY within a period longer than any run) escalate, every
 *   BURST_GAP_MS: it kills FRAGILE_INTENSITY of its workers and checks that
 *   the mid replaced them and lives on, then kills one more, which is one
 *   restart too many: the mid stops its workers and fails, and the top
 *   restarts it in place (same ref, every worker new).
 *
 * Why the sturdy mids never give up: a chaos event causes at most RETRY + 1
 * restarts (a poison message's; a kill or a once message causes one, a soft
 * one none), and the chaos thread makes at most E = seconds * 10^6 /
 * CHAOS_GAP_US + 1 events in all (a hard cap; the gap only lowers it). A
 * sturdy mid's intensity is E * (RETRY + 1), so even if every event hit one
 * mid within one period it could not exceed it. The top's intensity is the
 * most bursts the main thread may make, and only bursts restart a mid.
 *
 * Afterwards the producers and the chaos stop, the test waits until quiet
 * (every message has its fate, every worker is up, the live count is back)
 * and checks, exactly:
 * - the live count is the baseline (1 + MIDS + workers); the walk of the
 *   tree finds every worker once, running, under the ref its init hook
 *   recorded; the mids keep their refs (restarts in place);
 * - every work and fail message accepted (or dead-lettered by its send)
 *   has exactly one fate: handled once, or dead-lettered once with a reason
 *   its kind allows (work: TR_EDEAD or TR_ESHUTDOWN; soft: TR_EFAILED after
 *   one attempt; poison: TR_EPOISON after exactly RETRY + 1; once: handled
 *   at its second attempt; any: TR_EDEAD when its worker was killed first,
 *   with fewer attempts than that); refused sends have none;
 * - per mid, the failures the handlers returned == the decider's calls,
 *   but for failures a kill overtook in the same turn (a kill wins: no
 *   decision; at most one per kill), its resumes <= the soft failures, its
 *   restarts == the terminate hooks that ran with TR_EXIT_FAILED: each
 *   decided failure led to exactly one restart in place;
 * - a sturdy mid's restart count == those restarts in place + the workers
 *   it replaced after kills (new actors, counted by their init hooks) ==
 *   the sum of its workers' counts in the walk, and stays within its
 *   intensity;
 * - the top restarted the fragile mid exactly once per burst and no other
 *   mid; the fragile mid lived through FRAGILE_INTENSITY restarts and gave
 *   up at the next one every time, and its workers' hooks add up (inits,
 *   kills, drains);
 * - the runtime's dead-letter count == what the callback saw;
 * - after tr_sup_stop(top) nothing is alive and every worker incarnation's
 *   terminate hook ran exactly once (inits == terminates per worker).
 * And bounded, where races decide:
 * - workers replaced <= kills that returned TR_OK (two kills can meet one
 *   actor; and a kill that arrives while a worker ends after a failure is
 *   moot: the first reason wins, the worker restarts in place);
 * - restarts in place begun - those whose init ran (workers killed while
 *   down) <= kills that returned TR_OK.
 * Nothing leaks: the runtime is destroyed (LeakSanitizer checks).
 *
 * Scale: TR_STRESS_SECONDS (default 2) of chaos; TR_STRESS_ACTORS workers
 * (default 4000, 500 under a sanitizer). The seed is printed first;
 * TR_STRESS_SEED replays the random choices (targets, kinds), not the
 * interleaving. Every wait is bounded (scaled by
 * TR_TEST_TIMEOUT_MULTIPLIER) and the whole run has a deadline. */
#include "tr_stress.h"
#include "tr_test.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    MSG_WORK = 1, /* struct work */
    MSG_FAIL,     /* struct fail */
};

/* What a fail message makes its worker do. */
enum {
    FAIL_SOFT,   /* fail with SOFT_CODE: the decider resumes */
    FAIL_ONCE,   /* fail the first time only */
    FAIL_POISON, /* fail every time */
    FAIL_KINDS,
};

/* What a producer or the chaos thread saw when sending message `id`. */
enum {
    SENT_NONE = 0, /* never sent */
    SENT_OK,       /* accepted */
    SENT_DEAD,     /* TR_EDEAD: dead-lettered by the send */
    SENT_CLOSED,   /* TR_ESHUTDOWN: its worker was being drained */
    SENT_TIMEDOUT, /* TR_ETIMEDOUT: blocked the send timeout */
    SENT_KINDS,
};

#define MIDS              4u /* the last one is the fragile one */
#define FRAGILE           (MIDS - 1)
#define FRAGILE_INTENSITY 5u
#define FRAGILE_PERIOD_MS 3600000u /* longer than any run */
#define RETRY             2u
#define SOFT_CODE         TR_ECANCELED
#define CAPACITY          64u /* = the default turn budget */
#define PRODUCERS         2u
#define CHAOS_GAP_US      2000u /* at most 500 chaos events a second */
#define BURST_GAP_MS      300u
#define WORK_PER_SECOND   2000000u /* ids per producer and second */
#define WORK_SECONDS_MAX  10u      /* ... for at most this many seconds */
#define FATE_HANDLED      1u       /* added to a message's fate */
#define FATE_DEAD         16u      /* ... when it is dead-lettered */
#define SHUTDOWN_MS       5000u    /* a worker's drain never needs the kill */
#define MID_SHUTDOWN_MS   60000u   /* nor a mid's, of all its workers */
#define WAIT_MS           20000u   /* any wait for the runtime, unscaled */
#define NLOCKS            64u

struct work {
    uint32_t id;
};

struct fail {
    uint32_t id;
    uint32_t kind;
};

/* Counters are updated with relaxed RMWs: they order nothing. The main
 * thread reads them (seq_cst loads, LOAD) only after joining the threads
 * that write them outside the runtime, or while polling for the runtime to
 * settle, where a stale value only means one more poll. */
#define LOAD(x)    atomic_load_explicit(&(x), memory_order_seq_cst)
#define BUMP(x, n) atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)

/* Per mid, what its workers' hooks, its decider and the chaos saw. */
typedef struct mid_stats {
    _Atomic uint64_t fresh_inits;   /* init hooks of new actors */
    _Atomic uint64_t inplace_inits; /* init hooks of restarts in place */
    _Atomic uint64_t terms_failed;  /* terminate hooks, TR_EXIT_FAILED */
    _Atomic uint64_t terms_killed;  /* ... TR_EXIT_KILLED */
    _Atomic uint64_t terms_drained; /* ... TR_EXIT_SHUTDOWN */
    _Atomic uint64_t failures;      /* handler calls that failed */
    _Atomic uint64_t decided[TR_ESCALATE + 1]; /* decider calls */
    _Atomic uint64_t kills_ok;                 /* tr_kill gave TR_OK */
} mid_stats;

static struct {
    uint64_t seed, seconds;
    uint32_t nworkers, per_mid;
    uint32_t events_max; /* E: the chaos thread's hard cap */
    uint32_t bursts_max;
    uint32_t work_cap; /* ids per producer */

    /* The tree's specs (they must outlive it). */
    tr_mailbox_opts mbox;
    tr_child_spec *wspecs;
    uint32_t *widx;
    char (*wnames)[16];
    char mnames[MIDS][8];
    tr_sup_spec msup[MIDS];
    tr_child_spec mspecs[MIDS];
    tr_sup_spec top;

    tr_runtime *rt;
    tr_ref top_ref, mid_ref[MIDS];

    /* The workers' current refs: written by their init hooks. */
    pthread_mutex_t locks[NLOCKS];
    tr_ref *refs;
    _Atomic uint32_t *inits, *terms; /* per worker */
    _Atomic uint64_t inits_n, terms_n;
    mid_stats mids[MIDS];

    /* Work messages: id = producer * work_cap + sequence. */
    uint8_t *work_sent;         /* SENT_*; written by its producer */
    _Atomic uint8_t *work_fate; /* FATE_HANDLED and FATE_DEAD added */
    _Atomic uint64_t work_handled_n, work_dead_n;
    _Atomic uint64_t work_dead_why[3]; /* EDEAD, ESHUTDOWN, other */
    uint64_t sent[PRODUCERS][SENT_KINDS];

    /* Fail messages: id = the chaos event's number. */
    uint8_t *fail_sent, *fail_kind; /* written by the chaos thread */
    _Atomic uint8_t *fail_attempts, *fail_fate;
    _Atomic int32_t *fail_why;
    _Atomic uint64_t fail_final_n; /* handled + dead-lettered */
    _Atomic uint64_t fail_dead_n;
    uint64_t fails_sent[SENT_KINDS];
    uint32_t events;
    uint64_t kills_sent, kills_dead;

    _Atomic uint64_t other_dead; /* dead letters of other types */
    _Atomic uint32_t stop;       /* producers and chaos: stop now */
    uint32_t bursts;
    tr_stress_fail fail;
} G;

/* Records a failure unless `ok`; from any thread. */
static void __attribute__((format(printf, 4, 5)))
checkf(bool ok, int line, const char *cond, const char *fmt, ...)
{
    char text[192];
    va_list ap;

    if (ok) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tr_stress_failf(&G.fail, "line %d: %s: %s", line, cond, text);
}

#define CHECK(cond, ...) checkf((cond), __LINE__, #cond, __VA_ARGS__)

static bool
failed(void)
{
    return atomic_load_explicit(&G.fail.failed, memory_order_acquire) != 0;
}

static bool
stopping(void)
{
    /* relaxed: a flag polled between sends; join orders the rest. */
    return atomic_load_explicit(&G.stop, memory_order_relaxed) != 0 || failed();
}

static uint64_t
rng_seed(uint64_t stream)
{
    return G.seed ^ (stream * 0xd1b54a32d192ed03u);
}

/* ---- The workers' ref table -------------------------------------------- */

static tr_ref
ref_of(uint32_t w)
{
    pthread_mutex_t *l = &G.locks[w % NLOCKS];
    tr_ref r;

    pthread_mutex_lock(l);
    r = G.refs[w];
    pthread_mutex_unlock(l);
    return r;
}

/* Records `self` as worker w's ref; true when it already was (a restart
 * in place). */
static bool
ref_set(uint32_t w, tr_ref self)
{
    pthread_mutex_t *l = &G.locks[w % NLOCKS];
    bool same;

    pthread_mutex_lock(l);
    same = tr_ref_eq(G.refs[w], self);
    G.refs[w] = self;
    pthread_mutex_unlock(l);
    return same;
}

/* ---- The worker -------------------------------------------------------- */

struct worker {
    uint32_t idx;
    mid_stats *mid;
};

static tr_status
w_init(tr_cx *cx, struct worker *self, const uint32_t *idx)
{
    self->idx = *idx;
    self->mid = &G.mids[*idx / G.per_mid];
    if (ref_set(*idx, tr_self(cx))) {
        BUMP(self->mid->inplace_inits, 1);
    } else {
        BUMP(self->mid->fresh_inits, 1);
    }
    BUMP(G.inits[*idx], 1);
    BUMP(G.inits_n, 1);
    return TR_OK;
}

static tr_status
w_terminate(tr_cx *cx, struct worker *self, const tr_reason *why)
{
    (void)cx;
    switch (why->kind) {
    case TR_EXIT_FAILED:
        BUMP(self->mid->terms_failed, 1);
        break;
    case TR_EXIT_KILLED:
        BUMP(self->mid->terms_killed, 1);
        break;
    case TR_EXIT_SHUTDOWN:
        BUMP(self->mid->terms_drained, 1);
        break;
    default:
        tr_stress_failf(&G.fail, "worker %u ended with kind %d (%s)", self->idx,
                        (int)why->kind, why->text);
        break;
    }
    BUMP(G.terms[self->idx], 1);
    BUMP(G.terms_n, 1);
    return TR_OK;
}

static tr_status
w_work(tr_cx *cx, struct worker *self, const struct work *m)
{
    (void)cx;
    (void)self;
    BUMP(G.work_fate[m->id], FATE_HANDLED);
    BUMP(G.work_handled_n, 1);
    return TR_OK;
}

static tr_status
w_fail(tr_cx *cx, struct worker *self, const struct fail *m)
{
    uint8_t attempt = (uint8_t)(BUMP(G.fail_attempts[m->id], 1) + 1);

    (void)cx;
    if (m->kind == FAIL_ONCE && attempt > 1) {
        BUMP(G.fail_fate[m->id], FATE_HANDLED);
        BUMP(G.fail_final_n, 1);
        return TR_OK;
    }
    BUMP(self->mid->failures, 1);
    return m->kind == FAIL_SOFT ? SOFT_CODE : TR_EFAILED;
}

TR_ACTOR(chaos_worker, struct worker, TR_ON_INIT(uint32_t, w_init),
         TR_ON(MSG_WORK, struct work, w_work),
         TR_ON(MSG_FAIL, struct fail, w_fail), TR_ON_TERMINATE(w_terminate));

/* The workers' decider: runs in the failing worker's turn. */
static tr_directive
decide(void *arg, const tr_reason *why)
{
    mid_stats *m = arg;
    tr_directive d = why->code == SOFT_CODE ? TR_RESUME : TR_RESTART;

    BUMP(m->decided[d], 1);
    return d;
}

/* ---- Dead letters ------------------------------------------------------ */

static void
on_dead_letter(void *arg, const tr_dead_letter *dl)
{
    (void)arg;
    if (dl->type == MSG_WORK && dl->len == sizeof(struct work)) {
        struct work w;

        memcpy(&w, dl->data, sizeof w);
        BUMP(G.work_fate[w.id], FATE_DEAD);
        BUMP(G.work_dead_why[dl->reason == TR_EDEAD       ? 0
                             : dl->reason == TR_ESHUTDOWN ? 1
                                                          : 2],
             1);
        BUMP(G.work_dead_n, 1);
    } else if (dl->type == MSG_FAIL && dl->len == sizeof(struct fail)) {
        struct fail f;

        memcpy(&f, dl->data, sizeof f);
        /* relaxed: read once quiet, like the counters. */
        atomic_store_explicit(&G.fail_why[f.id], (int32_t)dl->reason,
                              memory_order_relaxed);
        BUMP(G.fail_fate[f.id], FATE_DEAD);
        BUMP(G.fail_dead_n, 1);
        BUMP(G.fail_final_n, 1);
    } else {
        BUMP(G.other_dead, 1);
    }
}

/* ---- Sends ------------------------------------------------------------- */

/* SENT_* for a send's status; anything else is a failure. */
static uint8_t
sent_as(tr_status st, const char *what)
{
    switch (st) {
    case TR_OK:
        return SENT_OK;
    case TR_EDEAD:
        return SENT_DEAD;
    case TR_ESHUTDOWN:
        return SENT_CLOSED;
    case TR_ETIMEDOUT:
        return SENT_TIMEDOUT;
    default:
        tr_stress_failf(&G.fail, "%s: unexpected %s", what, tr_status_name(st));
        return SENT_NONE;
    }
}

static void *
producer_main(void *arg)
{
    uint32_t p = (uint32_t)(uintptr_t)arg;
    uint64_t rng = rng_seed(100 + p);

    for (uint32_t seq = 0; seq < G.work_cap && !stopping(); seq++) {
        struct work w = {p * G.work_cap + seq};
        uint32_t to = tr_stress_rnd(&rng, G.nworkers);
        uint8_t s =
            sent_as(tr_send(G.rt, ref_of(to), MSG_WORK, &w, sizeof w), "work");

        G.work_sent[w.id] = s;
        G.sent[p][s]++;
    }
    return NULL;
}

static void *
chaos_main(void *arg)
{
    uint64_t rng = rng_seed(1);
    uint32_t sturdy = G.per_mid * (MIDS - 1);

    (void)arg;
    while (!stopping() && G.events < G.events_max) {
        uint32_t w = tr_stress_rnd(&rng, sturdy), what = tr_stress_rnd(&rng, 5);
        mid_stats *m = &G.mids[w / G.per_mid];
        tr_ref r = ref_of(w);
        uint32_t id = G.events++;

        if (what < 2) { /* kills: 2 in 5 */
            tr_status st = tr_kill(G.rt, r);

            CHECK(st == TR_OK || st == TR_EDEAD, "%s", tr_status_name(st));
            if (st == TR_OK) {
                BUMP(m->kills_ok, 1);
                G.kills_sent++;
            } else {
                G.kills_dead++;
            }
        } else {
            struct fail f = {id, what - 2};

            G.fail_kind[id] = (uint8_t)f.kind;
            G.fail_sent[id] =
                sent_as(tr_send(G.rt, r, MSG_FAIL, &f, sizeof f), "fail");
            G.fails_sent[G.fail_sent[id]]++;
        }
        tr_test_sleep_us(CHAOS_GAP_US);
    }
    return NULL;
}

/* ---- Asking the tree --------------------------------------------------- */

static uint32_t
wait_ms(void)
{
    return (uint32_t)tr_test_scaled_ms(WAIT_MS);
}

static bool
counts(tr_ref sup, tr_sup_counts *c)
{
    tr_status st = tr_sup_count_children(G.rt, sup, c, wait_ms());

    CHECK(st == TR_OK, "count_children: %s", tr_status_name(st));
    return st == TR_OK;
}

/* Polls `cond` every millisecond until it holds; false (recorded as a
 * failure naming `what`) when the scaled WAIT_MS pass first. */
static bool
wait_until(bool (*cond)(void), const char *what)
{
    uint64_t deadline = tr_test_now_ns() + wait_ms() * 1000000ull;

    while (!tr_stress_stop(&G.fail)) {
        if (cond()) {
            return true;
        }
        if (tr_test_now_ns() > deadline) {
            tr_stress_failf(&G.fail, "timed out waiting for %s", what);
            break;
        }
        tr_test_sleep_ms(1);
    }
    return false;
}

static uint64_t
alive(void)
{
    tr_stats s;

    return tr_runtime_stats(G.rt, &s) == TR_OK ? s.alive : UINT64_MAX;
}

static uint64_t
baseline(void)
{
    return 1 + MIDS + G.nworkers;
}

static bool
all_inited(void)
{
    return LOAD(G.inits_n) - LOAD(G.terms_n) == G.nworkers;
}

static bool
at_baseline(void)
{
    return alive() == baseline();
}

/* ---- Escalation of the fragile mid ------------------------------------- */

static tr_child_info *g_info; /* per_mid entries */

static bool
top_restarted_bursts(void)
{
    tr_sup_counts c;

    return counts(G.top_ref, &c) && c.restarts == G.bursts + 1;
}

/* The restarts fragile_up() expects of the fragile mid. */
static uint64_t g_want_restarts;

/* The fragile mid is in its incarnation after G.bursts bursts, with every
 * worker running, after g_want_restarts restarts. */
static bool
fragile_up(void)
{
    tr_sup_counts t, c;

    return counts(G.top_ref, &t) && t.restarts == G.bursts &&
           t.active == MIDS && counts(G.mid_ref[FRAGILE], &c) &&
           c.active == G.per_mid && c.restarting == 0 &&
           c.restarts == g_want_restarts;
}

/* Kills `n` distinct running workers of the fragile mid, at random. */
static void
kill_fragile(uint64_t *rng, uint32_t n)
{
    uint32_t got = 0;
    tr_status st = tr_sup_which_children(G.rt, G.mid_ref[FRAGILE], 0, g_info,
                                         G.per_mid, &got, wait_ms());

    CHECK(st == TR_OK && got == G.per_mid, "which: %s, %u", tr_status_name(st),
          got);
    for (uint32_t i = 0; i < n && i < got && !failed(); i++) {
        uint32_t j = i + tr_stress_rnd(rng, got - i);
        tr_child_info t = g_info[j];

        g_info[j] = g_info[i];
        g_info[i] = t;
        st = tr_kill(G.rt, g_info[i].ref);
        CHECK(st == TR_OK, "kill fragile worker: %s", tr_status_name(st));
    }
}

/* One burst: FRAGILE_INTENSITY kills are restarts the mid takes; one more
 * makes it give up, and the top restarts it. */
static void
burst(uint64_t *rng)
{
    g_want_restarts = 0;
    if (!wait_until(fragile_up, "the fragile mid up")) {
        return;
    }
    kill_fragile(rng, FRAGILE_INTENSITY);
    g_want_restarts = FRAGILE_INTENSITY;
    if (!wait_until(fragile_up, "the fragile mid to replace its workers")) {
        return;
    }
    kill_fragile(rng, 1);
    if (wait_until(top_restarted_bursts,
                   "the top to restart the fragile mid")) {
        G.bursts++;
    }
}

/* ---- Quiet ------------------------------------------------------------- */

static uint64_t g_work_expected, g_fail_expected;

static bool
quiet(void)
{
    tr_sup_counts c;

    if (LOAD(G.work_handled_n) + LOAD(G.work_dead_n) != g_work_expected ||
        LOAD(G.fail_final_n) != g_fail_expected || !all_inited()) {
        return false;
    }
    if (!counts(G.top_ref, &c) || c.active != MIDS || c.restarting != 0) {
        return false;
    }
    for (uint32_t m = 0; m < MIDS; m++) {
        if (!counts(G.mid_ref[m], &c) || c.active != G.per_mid ||
            c.restarting != 0) {
            return false;
        }
    }
    return true;
}

/* ---- Checks once quiet ------------------------------------------------- */

static void
check_work(void)
{
    uint64_t total = (uint64_t)PRODUCERS * G.work_cap;

    for (uint64_t id = 0; id < total && !failed(); id++) {
        uint8_t s = G.work_sent[id];
        uint32_t f = LOAD(G.work_fate[id]), h = f % FATE_DEAD,
                 d = f / FATE_DEAD;

        if (s == SENT_OK) {
            CHECK(h + d == 1, "work %" PRIu64 ": handled %u, dead %u", id, h,
                  d);
        } else if (s == SENT_DEAD) {
            CHECK(h == 0 && d == 1, "work %" PRIu64 ": handled %u, dead %u", id,
                  h, d);
        } else {
            CHECK(h + d == 0, "work %" PRIu64 " (not sent): %u, %u", id, h, d);
        }
    }
    CHECK(LOAD(G.work_dead_why[2]) == 0, "work dead-lettered for another "
                                         "reason than EDEAD or ESHUTDOWN");
}

/* One fail message's fate; adds its failed attempts to *fails[kind]. */
static void
check_fail(uint32_t id, uint64_t *fails)
{
    uint8_t s = G.fail_sent[id], k = G.fail_kind[id];
    uint32_t a = LOAD(G.fail_attempts[id]), f = LOAD(G.fail_fate[id]),
             h = f % FATE_DEAD, d = f / FATE_DEAD;
    tr_status why = (tr_status)LOAD(G.fail_why[id]);

    if (s != SENT_OK && s != SENT_DEAD) {
        CHECK(a + h + d == 0, "fail %u not sent: %u, %u, %u", id, a, h, d);
        return;
    }
    CHECK(h + d == 1, "fail %u (kind %u): handled %u, dead %u", id, k, h, d);
    if (d == 1 && why == TR_EDEAD) {
        /* Its worker was killed first (or it was sent to a dead ref), at
         * the latest in the turn of a failing attempt (a kill wins). */
        CHECK(a <= (k == FAIL_SOFT   ? 1u
                    : k == FAIL_ONCE ? 1u
                                     : RETRY + 1),
              "fail %u (kind %u): %u attempts, then EDEAD", id, k, a);
    } else if (k == FAIL_SOFT) {
        CHECK(d == 1 && why == TR_EFAILED && a == 1,
              "soft %u: dead %u (%s), %u attempts", id, d, tr_status_name(why),
              a);
    } else if (k == FAIL_ONCE) {
        CHECK(h == 1 && a == 2, "once %u: handled %u, %u attempts", id, h, a);
    } else {
        CHECK(d == 1 && why == TR_EPOISON && a == RETRY + 1,
              "poison %u: dead %u (%s), %u attempts", id, d,
              tr_status_name(why), a);
    }
    fails[k] += k == FAIL_ONCE && h == 1 ? a - 1 : a;
}

static void
check_fails(void)
{
    uint64_t fails[FAIL_KINDS] = {0}, failures = 0, resumes = 0;

    for (uint32_t id = 0; id < G.events && !failed(); id++) {
        check_fail(id, fails);
    }
    for (uint32_t m = 0; m < MIDS; m++) {
        failures += LOAD(G.mids[m].failures);
        resumes += LOAD(G.mids[m].decided[TR_RESUME]);
    }
    CHECK(failures == fails[FAIL_SOFT] + fails[FAIL_ONCE] + fails[FAIL_POISON],
          "%" PRIu64 " handler failures", failures);
    /* A soft failure that a kill overtook was not resumed. */
    CHECK(resumes <= fails[FAIL_SOFT], "%" PRIu64 " resumes, %" PRIu64, resumes,
          fails[FAIL_SOFT]);
}

static void
check_mids(void)
{
    tr_sup_counts top, c;
    uint32_t intensity = G.msup[0].intensity;

    if (!counts(G.top_ref, &top)) {
        return;
    }
    CHECK(top.restarts == G.bursts && G.bursts > 0,
          "top: %" PRIu64 " restarts, %u bursts", top.restarts, G.bursts);
    for (uint32_t m = 0; m < MIDS && counts(G.mid_ref[m], &c); m++) {
        mid_stats *s = &G.mids[m];
        uint64_t fresh = LOAD(s->fresh_inits), inplace = LOAD(s->inplace_inits),
                 down = LOAD(s->terms_failed), kills = LOAD(s->kills_ok),
                 replaced = fresh - G.per_mid;

        /* Each handled failure went to the decider once, unless a kill
         * reached the worker in the same turn (a kill wins over a failure
         * in flight: it ends the worker without a decision); each restart
         * it decided was one restart in place. */
        CHECK(LOAD(s->failures) >= LOAD(s->decided[TR_RESUME]) +
                                       LOAD(s->decided[TR_RESTART]) &&
                  LOAD(s->failures) - LOAD(s->decided[TR_RESUME]) -
                          LOAD(s->decided[TR_RESTART]) <=
                      kills,
              "mid %u: %" PRIu64 " failures, %" PRIu64 " decided, %" PRIu64
              " kills",
              m, LOAD(s->failures),
              LOAD(s->decided[TR_RESUME]) + LOAD(s->decided[TR_RESTART]),
              kills);
        CHECK(LOAD(s->decided[TR_RESTART]) == down,
              "mid %u: %" PRIu64 " restarts decided, %" PRIu64 " down", m,
              LOAD(s->decided[TR_RESTART]), down);
        if (m == FRAGILE) {
            uint64_t b = G.bursts;

            CHECK(c.restarts == 0 && down == 0 && inplace == 0,
                  "fragile: %" PRIu64 " restarts", c.restarts);
            CHECK(fresh == G.per_mid * (1 + b) + b * FRAGILE_INTENSITY,
                  "fragile: %" PRIu64 " fresh inits", fresh);
            CHECK(LOAD(s->terms_killed) == b * (FRAGILE_INTENSITY + 1),
                  "fragile: %" PRIu64 " killed, %" PRIu64
                  " expected (more: a drain ran past its shutdown_ms)",
                  LOAD(s->terms_killed), b * (FRAGILE_INTENSITY + 1));
            CHECK(LOAD(s->terms_drained) == b * (G.per_mid - 1),
                  "fragile: %" PRIu64 " drained", LOAD(s->terms_drained));
            continue;
        }
        /* Every restart the mid counted is a failure restarted in place or
         * a killed worker replaced. */
        CHECK(c.restarts == down + replaced,
              "mid %u: %" PRIu64 " restarts, %" PRIu64 " down + %" PRIu64
              " replaced",
              m, c.restarts, down, replaced);
        CHECK(c.restarts <= intensity, "mid %u: %" PRIu64 " restarts", m,
              c.restarts);
        CHECK(replaced <= kills,
              "mid %u: %" PRIu64 " replaced, %" PRIu64 " kills", m, replaced,
              kills);
        CHECK(inplace <= down && down - inplace <= kills,
              "mid %u: %" PRIu64 " in place of %" PRIu64, m, inplace, down);
        CHECK(LOAD(s->terms_killed) <= replaced && LOAD(s->terms_drained) == 0,
              "mid %u: terminate hooks", m);
    }
}

/* The walk: every mid and worker once, running, where the table says. */
typedef struct walk_seen {
    uint32_t mids, workers, bad;
    uint64_t restarts[MIDS]; /* the workers' counts, per mid */
    uint8_t *worker;         /* times each worker was seen */
} walk_seen;

static void
walk_fn(void *arg, uint32_t depth, const tr_child_info *info)
{
    walk_seen *w = arg;
    unsigned idx;

    if (depth == 1) {
        unsigned m;

        w->mids++;
        if (sscanf(info->id, "mid%u", &m) != 1 || m >= MIDS ||
            !info->supervisor || info->state != TR_CHILD_RUNNING ||
            !tr_ref_eq(info->ref, G.mid_ref[m]) ||
            info->restarts != (m == FRAGILE ? G.bursts : 0)) {
            w->bad++;
        }
        return;
    }
    w->workers++;
    if (depth != 2 || sscanf(info->id, "w%u", &idx) != 1 || idx >= G.nworkers ||
        info->supervisor || info->state != TR_CHILD_RUNNING ||
        !tr_ref_eq(info->ref, ref_of(idx))) {
        w->bad++;
        return;
    }
    w->worker[idx]++;
    w->restarts[idx / G.per_mid] += info->restarts;
}

static void
check_walk(void)
{
    walk_seen w = {0};
    tr_sup_counts c;
    tr_status st;

    w.worker = calloc(G.nworkers, 1);
    assert_non_null(w.worker);
    st = tr_sup_walk(G.rt, G.top_ref, walk_fn, &w, wait_ms());
    CHECK(st == TR_OK, "walk: %s", tr_status_name(st));
    CHECK(w.mids == MIDS && w.workers == G.nworkers && w.bad == 0,
          "walk: %u mids, %u workers, %u bad", w.mids, w.workers, w.bad);
    for (uint32_t i = 0; i < G.nworkers; i++) {
        CHECK(w.worker[i] == 1, "worker %u seen %u times", i, w.worker[i]);
    }
    for (uint32_t m = 0; m < MIDS && counts(G.mid_ref[m], &c); m++) {
        CHECK(w.restarts[m] == c.restarts,
              "mid %u: workers' restarts %" PRIu64 ", its count %" PRIu64, m,
              w.restarts[m], c.restarts);
    }
    free(w.worker);
}

static void
check_quiet(void)
{
    tr_stats st;

    CHECK(at_baseline(), "%" PRIu64 " alive, baseline %" PRIu64, alive(),
          baseline());
    for (uint32_t i = 0; i < G.nworkers; i++) {
        CHECK(LOAD(G.inits[i]) == LOAD(G.terms[i]) + 1, "worker %u: %u, %u", i,
              LOAD(G.inits[i]), LOAD(G.terms[i]));
    }
    check_mids();
    check_walk();
    check_work();
    check_fails();
    TR_ASSERT_OK(tr_runtime_stats(G.rt, &st));
    CHECK(st.dead_letters ==
              LOAD(G.work_dead_n) + LOAD(G.fail_dead_n) + LOAD(G.other_dead),
          "%" PRIu64 " dead letters", st.dead_letters);
}

/* ---- Setup ------------------------------------------------------------- */

static void
read_scale(void)
{
    const char *san = getenv("TR_SANITIZER");
    bool sanitized = san != NULL && *san != '\0' && strcmp(san, "none") != 0;
    uint64_t n = tr_test_env_u64("TR_STRESS_ACTORS", sanitized ? 500 : 4000);
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    G.seed =
        tr_test_env_u64("TR_STRESS_SEED", ((uint64_t)ts.tv_sec * 1000000007u) ^
                                              (uint64_t)ts.tv_nsec ^
                                              ((uint64_t)getpid() << 40));
    G.seconds = tr_test_env_u64("TR_STRESS_SECONDS", 2);
    if (G.seconds == 0) {
        G.seconds = 1;
    }
    /* Each mid needs room for a burst's kills and one more. */
    G.per_mid = (uint32_t)(n / MIDS);
    if (G.per_mid < FRAGILE_INTENSITY + 2) {
        G.per_mid = FRAGILE_INTENSITY + 2;
    }
    G.nworkers = G.per_mid * MIDS;
    G.events_max = (uint32_t)(G.seconds * 1000000u / CHAOS_GAP_US + 1);
    G.bursts_max = (uint32_t)(G.seconds * 1000u / BURST_GAP_MS + 1);
    G.work_cap = (uint32_t)(G.seconds < WORK_SECONDS_MAX ? G.seconds
                                                         : WORK_SECONDS_MAX) *
                 WORK_PER_SECOND;
}

static void
build_tree(void)
{
    const tr_backoff backoff = {
        .min_ms = 1, .max_ms = 10, .jitter = 0.2, .reset_ms = 50};

    G.mbox = (tr_mailbox_opts){CAPACITY, TR_BACKPRESSURE};
    for (uint32_t i = 0; i < G.nworkers; i++) {
        G.widx[i] = i;
        snprintf(G.wnames[i], sizeof G.wnames[i], "w%u", i);
        G.wspecs[i] = (tr_child_spec){.id = G.wnames[i],
                                      .actor = &chaos_worker,
                                      .arg = &G.widx[i],
                                      .arg_len = sizeof G.widx[i],
                                      .restart = TR_PERMANENT,
                                      .shutdown_ms = SHUTDOWN_MS,
                                      .decider = decide,
                                      .decider_arg = &G.mids[i / G.per_mid],
                                      .retry = RETRY,
                                      .mailbox = &G.mbox};
    }
    for (uint32_t m = 0; m < MIDS; m++) {
        bool fragile = m == FRAGILE;

        G.msup[m] =
            (tr_sup_spec){.strategy = TR_ONE_FOR_ONE,
                          .intensity = fragile ? FRAGILE_INTENSITY
                                               : G.events_max * (RETRY + 1),
                          .period_ms = fragile ? FRAGILE_PERIOD_MS : 1000,
                          .backoff = backoff,
                          .children = &G.wspecs[m * G.per_mid],
                          .nchildren = G.per_mid};
        snprintf(G.mnames[m], sizeof G.mnames[m], "mid%u", m);
        G.mspecs[m] = (tr_child_spec){.id = G.mnames[m],
                                      .sup = &G.msup[m],
                                      .restart = TR_PERMANENT,
                                      .shutdown_ms = MID_SHUTDOWN_MS};
    }
    G.top = (tr_sup_spec){.strategy = TR_ONE_FOR_ONE,
                          .intensity = G.bursts_max,
                          .period_ms = 1000,
                          .backoff = backoff,
                          .children = G.mspecs,
                          .nchildren = MIDS};
}

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    assert_non_null(p);
    return p;
}

static void
alloc_all(void)
{
    size_t works = (size_t)PRODUCERS * G.work_cap;

    G.wspecs = xcalloc(G.nworkers, sizeof *G.wspecs);
    G.widx = xcalloc(G.nworkers, sizeof *G.widx);
    G.wnames = xcalloc(G.nworkers, sizeof *G.wnames);
    G.refs = xcalloc(G.nworkers, sizeof *G.refs);
    G.inits = xcalloc(G.nworkers, sizeof *G.inits);
    G.terms = xcalloc(G.nworkers, sizeof *G.terms);
    G.work_sent = xcalloc(works, 1);
    G.work_fate = xcalloc(works, 1);
    G.fail_sent = xcalloc(G.events_max, 1);
    G.fail_kind = xcalloc(G.events_max, 1);
    G.fail_attempts = xcalloc(G.events_max, 1);
    G.fail_fate = xcalloc(G.events_max, 1);
    G.fail_why = xcalloc(G.events_max, sizeof *G.fail_why);
    g_info = xcalloc(G.per_mid, sizeof *g_info);
    for (uint32_t i = 0; i < NLOCKS; i++) {
        pthread_mutex_init(&G.locks[i], NULL);
    }
}

static void
free_all(void)
{
    for (uint32_t i = 0; i < NLOCKS; i++) {
        pthread_mutex_destroy(&G.locks[i]);
    }
    free(G.wspecs);
    free(G.widx);
    free(G.wnames);
    free(G.refs);
    free((void *)G.inits);
    free((void *)G.terms);
    free(G.work_sent);
    free((void *)G.work_fate);
    free(G.fail_sent);
    free(G.fail_kind);
    free((void *)G.fail_attempts);
    free((void *)G.fail_fate);
    free((void *)G.fail_why);
    free(g_info);
}

/* ---- The run ----------------------------------------------------------- */

static bool
nothing_alive(void)
{
    return alive() == 0;
}

/* Starts the tree and finds the mids; true when all is up. */
static bool
start_tree(void)
{
    tr_child_info info[MIDS];
    uint32_t n = 0;
    tr_status st = tr_sup_start(G.rt, &G.top, &G.top_ref);

    CHECK(st == TR_OK, "sup_start: %s", tr_status_name(st));
    if (st != TR_OK) {
        return false;
    }
    st = tr_sup_which_children(G.rt, G.top_ref, 0, info, MIDS, &n, wait_ms());
    CHECK(st == TR_OK && n == MIDS, "which: %s, %u", tr_status_name(st), n);
    for (uint32_t m = 0; m < n; m++) {
        G.mid_ref[m] = info[m].ref;
    }
    return !failed() && wait_until(all_inited, "every worker's init") &&
           wait_until(at_baseline, "the baseline");
}

/* The chaos phase: producers, chaos thread, bursts; then stop them all. */
static void
chaos(void)
{
    pthread_t prod[PRODUCERS], ch;
    uint64_t rng = rng_seed(2),
             t_end = tr_test_now_ns() + G.seconds * 1000000000u;

    for (uint32_t p = 0; p < PRODUCERS; p++) {
        assert_int_equal(
            pthread_create(&prod[p], NULL, producer_main, (void *)(uintptr_t)p),
            0);
    }
    assert_int_equal(pthread_create(&ch, NULL, chaos_main, NULL), 0);
    while (!failed() && tr_test_now_ns() < t_end) {
        tr_test_sleep_ms(BURST_GAP_MS);
        if (G.bursts < G.bursts_max && tr_test_now_ns() < t_end) {
            burst(&rng);
        }
    }
    /* relaxed: the joins below order everything the threads did. */
    atomic_store_explicit(&G.stop, 1, memory_order_relaxed);
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        assert_int_equal(pthread_join(prod[p], NULL), 0);
    }
    assert_int_equal(pthread_join(ch, NULL), 0);
}

static void
report(uint64_t ms)
{
    uint64_t n[SENT_KINDS] = {0};

    for (uint32_t p = 0; p < PRODUCERS; p++) {
        for (int k = 0; k < SENT_KINDS; k++) {
            n[k] += G.sent[p][k];
        }
    }
    printf("workers %u (%u mids of %u), %" PRIu64 " s of chaos, %" PRIu64
           " ms in all\n",
           G.nworkers, MIDS, G.per_mid, G.seconds, ms);
    printf("work: %" PRIu64 " accepted, %" PRIu64 " dead at send, %" PRIu64
           " refused (closing), %" PRIu64 " timed out; %" PRIu64
           " handled, %" PRIu64 " dead-lettered (%" PRIu64 " EDEAD, %" PRIu64
           " ESHUTDOWN); %" PRIu64 " other dead letters\n",
           n[SENT_OK], n[SENT_DEAD], n[SENT_CLOSED], n[SENT_TIMEDOUT],
           LOAD(G.work_handled_n), LOAD(G.work_dead_n),
           LOAD(G.work_dead_why[0]), LOAD(G.work_dead_why[1]),
           LOAD(G.other_dead));
    printf("chaos: %u events: %" PRIu64 " kills (+%" PRIu64
           " to dead refs), %" PRIu64 " fail messages; %u bursts\n",
           G.events, G.kills_sent, G.kills_dead, G.fails_sent[SENT_OK],
           G.bursts);
    for (uint32_t m = 0; m < MIDS; m++) {
        mid_stats *s = &G.mids[m];

        printf("mid %u: %" PRIu64 " failures (%" PRIu64 " resumed), %" PRIu64
               " restarted in place, %" PRIu64 " replaced, %" PRIu64
               " killed\n",
               m, LOAD(s->failures), LOAD(s->decided[TR_RESUME]),
               LOAD(s->terms_failed), LOAD(s->fresh_inits) - G.per_mid,
               LOAD(s->terms_killed));
    }
}

static void
test_chaos_tree(void **state)
{
    tr_config cfg = {0};
    uint64_t t0 = tr_test_now_ns();
    tr_status st;

    (void)state;
    tr_stress_fail_init(&G.fail);
    tr_stress_arm(&G.fail, t0, tr_test_scaled_ms((G.seconds + 60) * 1000));
    alloc_all();
    build_tree();
    cfg.dead_letter_fn = on_dead_letter;
    cfg.send_timeout_ms = 5000;
    TR_ASSERT_OK(tr_runtime_new(&G.rt, &cfg));
    if (start_tree()) {
        chaos();
    }
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        g_work_expected += G.sent[p][SENT_OK] + G.sent[p][SENT_DEAD];
    }
    g_fail_expected = G.fails_sent[SENT_OK] + G.fails_sent[SENT_DEAD];
    if (!failed() && wait_until(quiet, "quiet") &&
        wait_until(at_baseline, "the baseline after the chaos")) {
        check_quiet();
    }
    if (!failed()) {
        st = tr_sup_stop(G.rt, G.top_ref, wait_ms());
        CHECK(st == TR_OK, "sup_stop: %s", tr_status_name(st));
    }
    if (!failed() && wait_until(nothing_alive, "the tree's end")) {
        for (uint32_t i = 0; i < G.nworkers; i++) {
            CHECK(LOAD(G.inits[i]) == LOAD(G.terms[i]), "worker %u: %u, %u", i,
                  LOAD(G.inits[i]), LOAD(G.terms[i]));
        }
        CHECK(LOAD(G.work_handled_n) + LOAD(G.work_dead_n) == g_work_expected &&
                  LOAD(G.fail_final_n) == g_fail_expected,
              "messages after the stop");
    }
    tr_runtime_destroy(&G.rt);
    report((tr_test_now_ns() - t0) / 1000000u);
    free_all();
    if (failed()) {
        fail_msg("%s (seed %" PRIu64 ")", G.fail.why, G.seed);
    }
    tr_stress_fail_fini(&G.fail);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos_tree),
    };

    read_scale();
    printf("seed: %" PRIu64 "\n", G.seed);
    printf("scale: %" PRIu64 " s, %u workers, timeouts x%g\n", G.seconds,
           G.nworkers, tr_test_timeout_multiplier());
    fflush(stdout);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
