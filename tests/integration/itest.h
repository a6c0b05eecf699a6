/* itest.h: helpers shared by the integration tests (public API only).
 *
 * - Clocks and bounded waits: IT_WAIT_UNTIL(cond) polls `cond` every
 *   millisecond and fails the test when it does not hold within
 *   IT_WAIT_MS (scaled by tr_test_timeout_multiplier()), so a bug fails a
 *   test instead of hanging it.
 * - A dead-letter recorder (it_dl_record) that never blocks: records are
 *   claimed with an atomic counter and read by the test in quiet moments.
 * - IT_ON_CALL: a handler row that runs a test's function inside a handler,
 *   so a test can act as an actor (send with a tr_cx, flood a mailbox in one
 *   turn, call what is only valid from a handler). On a runtime with one
 *   worker, nothing else runs while that function runs, which makes the
 *   order of events deterministic.
 * - A jam: an actor whose mailbox stays full by design (as seen from the
 *   other actors of a one-worker runtime), and IT_ON_CLOSE, a row that makes
 *   any actor send to a jam and so become muted. A muted actor runs no user
 *   messages, so its mailbox fills to exactly its capacity and stays that
 *   way until the jam is stopped: a receiver that cannot drain, without
 *   blocking any worker.
 *
 * Never call a cmocka assertion from a handler or a callback: they run on
 * the runtime's threads. Record what happened and assert in the test. */
#ifndef TR_ITEST_H
#define TR_ITEST_H

#include "tr_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

/* ---- Clocks and waits -------------------------------------------------- */

/* Bound, before scaling, for every "does not hang" wait. */
#define IT_WAIT_MS 10000u

#define IT_WAIT_UNTIL_MS(cond, ms)                                             \
    do {                                                                       \
        uint64_t it_deadline_ =                                                \
            tr_test_now_ns() + tr_test_scaled_ms(ms) * 1000000u;               \
        while (!(cond)) {                                                      \
            if (tr_test_now_ns() > it_deadline_) {                             \
                fail_msg("timed out after %u ms (unscaled) waiting for: %s",   \
                         (unsigned)(ms), #cond);                               \
            }                                                                  \
            tr_test_sleep_ms(1);                                               \
        }                                                                      \
    } while (0)

#define IT_WAIT_UNTIL(cond) IT_WAIT_UNTIL_MS(cond, IT_WAIT_MS)

#define IT_LOAD(x)     atomic_load_explicit(&(x), memory_order_acquire)
#define IT_STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_release)
#define IT_INC(x)      atomic_fetch_add_explicit(&(x), 1, memory_order_acq_rel)

static inline tr_stats
it_stats(tr_runtime *rt)
{
    tr_stats s;

    TR_ASSERT_OK(tr_runtime_stats(rt, &s));
    return s;
}

/* A runtime with `workers` workers and the dead-letter recorder installed;
 * other fields from `base` (may be NULL). */
static inline tr_runtime *it_runtime(uint32_t workers, const tr_config *base);

/* Runs tr_runtime_shutdown(rt, drain_ms) on a helper thread and fails the
 * test if it has not returned within `bound_ms` (scaled). */
typedef struct it_shutdown_job {
    tr_runtime *rt;
    uint32_t drain_ms;
    tr_status st;
    _Atomic int done;
} it_shutdown_job;

static inline void *
it_shutdown_main(void *arg)
{
    it_shutdown_job *j = arg;

    j->st = tr_runtime_shutdown(j->rt, j->drain_ms);
    IT_STORE(j->done, 1);
    return NULL;
}

static inline tr_status
it_shutdown_bounded(tr_runtime *rt, uint32_t drain_ms, uint32_t bound_ms)
{
    it_shutdown_job j = {rt, drain_ms, TR_OK, 0};
    pthread_t th;

    assert_int_equal(pthread_create(&th, NULL, it_shutdown_main, &j), 0);
    IT_WAIT_UNTIL_MS(IT_LOAD(j.done) == 1, bound_ms);
    assert_int_equal(pthread_join(th, NULL), 0);
    return j.st;
}

/* ---- Dead-letter recorder ---------------------------------------------- */

#define IT_DL_MAX 16384u

typedef struct it_dl {
    tr_ref from;
    tr_ref to;
    uint32_t type;
    tr_status reason;
    size_t len;
    const void *data; /* the pointer seen; not valid after the callback */
    uint32_t seq;     /* the first 4 payload bytes when len >= 4 */
} it_dl;

typedef struct it_dl_log {
    _Atomic uint32_t claimed;
    _Atomic uint32_t done;
    _Atomic uint32_t bad_arg; /* callbacks whose arg was not &it_dls */
    it_dl recs[IT_DL_MAX];
} it_dl_log;

static it_dl_log it_dls;

/* Only while no runtime is alive. */
static inline void
it_dl_reset(void)
{
    memset(&it_dls, 0, sizeof it_dls);
}

/* ---- The runtime of a test --------------------------------------------- */

/* The runtime a test makes; it_teardown destroys it however the test
 * ended, so a failed assertion leaks nothing. */
static tr_runtime *g_rt;

static inline int
it_setup(void **state)
{
    (void)state;
    it_dl_reset();
    g_rt = NULL;
    return 0;
}

static inline int
it_teardown(void **state)
{
    (void)state;
    tr_runtime_destroy(&g_rt);
    return 0;
}

/* Registers a test with it_setup and it_teardown. */
#define IT_TEST(f) cmocka_unit_test_setup_teardown(f, it_setup, it_teardown)

/* A tr_dead_letter_fn; install with arg &it_dls. */
static inline void
it_dl_record(void *arg, const tr_dead_letter *dl)
{
    uint32_t i =
        atomic_fetch_add_explicit(&it_dls.claimed, 1, memory_order_relaxed);

    if (arg != &it_dls) {
        IT_INC(it_dls.bad_arg);
    }
    if (i < IT_DL_MAX) {
        it_dl *r = &it_dls.recs[i];

        r->from = dl->from;
        r->to = dl->to;
        r->type = dl->type;
        r->reason = dl->reason;
        r->len = dl->len;
        r->data = dl->data;
        r->seq = 0;
        if (dl->len >= sizeof r->seq && dl->data != NULL) {
            memcpy(&r->seq, dl->data, sizeof r->seq);
        }
    }
    /* release: publishes the record to it_dl_total()'s acquire. */
    atomic_fetch_add_explicit(&it_dls.done, 1, memory_order_release);
}

/* Dead letters recorded so far (all of them visible once this returns). */
static inline uint32_t
it_dl_total(void)
{
    return IT_LOAD(it_dls.done);
}

static inline const it_dl *
it_dl_at(uint32_t i)
{
    assert_true(i < it_dl_total() && i < IT_DL_MAX);
    return &it_dls.recs[i];
}

static inline uint32_t
it_dl_count(uint32_t type, tr_status reason)
{
    uint32_t n = 0, total = it_dl_total();

    for (uint32_t i = 0; i < total && i < IT_DL_MAX; i++) {
        n += it_dls.recs[i].type == type && it_dls.recs[i].reason == reason;
    }
    return n;
}

static inline uint32_t
it_dl_count_type(uint32_t type)
{
    uint32_t n = 0, total = it_dl_total();

    for (uint32_t i = 0; i < total && i < IT_DL_MAX; i++) {
        n += it_dls.recs[i].type == type;
    }
    return n;
}

static inline tr_runtime *
it_runtime(uint32_t workers, const tr_config *base)
{
    tr_config cfg = {0};
    tr_runtime *rt = NULL;

    if (base != NULL) {
        cfg = *base;
    }
    cfg.workers = workers;
    cfg.dead_letter_fn = it_dl_record;
    cfg.dead_letter_arg = &it_dls;
    TR_ASSERT_OK(tr_runtime_new(&rt, &cfg));
    assert_non_null(rt);
    return rt;
}

/* ---- Running a function inside a handler ------------------------------- */

/* Message types the helpers use; tests use small numbers. */
#define IT_MSG_CALL  0xFFF0u
#define IT_MSG_SPIN  0xFFF1u
#define IT_MSG_HOLD  0xFFF2u
#define IT_MSG_CLOSE 0xFFF3u

typedef void (*it_fn)(tr_cx *cx, void *arg);

typedef struct it_call {
    it_fn fn;
    void *arg;
    _Atomic int *done; /* set to 1 (release) after fn returns; may be NULL */
} it_call;

static inline tr_status
it_on_call(tr_cx *cx, void *self, const it_call *c)
{
    (void)self;
    c->fn(cx, c->arg);
    if (c->done != NULL) {
        IT_STORE(*c->done, 1);
    }
    return TR_OK;
}

/* A row for any actor declaration. */
#define IT_ON_CALL TR_ON(IT_MSG_CALL, it_call, it_on_call)

/* An actor that only runs calls. */
TR_ACTOR(it_caller, char, IT_ON_CALL);

static _Atomic int it_call_done;

/* Sends a call to `who` without waiting for it. */
static inline void
it_call_async(tr_runtime *rt, tr_ref who, it_fn fn, void *arg)
{
    it_call c = {fn, arg, NULL};

    TR_ASSERT_OK(tr_send(rt, who, IT_MSG_CALL, &c, sizeof c));
}

/* Sends a call to `who` and waits until fn has returned. */
static inline void
it_call_sync(tr_runtime *rt, tr_ref who, it_fn fn, void *arg)
{
    it_call c = {fn, arg, &it_call_done};

    IT_STORE(it_call_done, 0);
    TR_ASSERT_OK(tr_send(rt, who, IT_MSG_CALL, &c, sizeof c));
    IT_WAIT_UNTIL(IT_LOAD(it_call_done) == 1);
}

static inline tr_ref
it_spawn(tr_runtime *rt, const tr_behavior *b, uint32_t capacity,
         int set_overflow, tr_overflow overflow)
{
    tr_mailbox_opts mb = {capacity, set_overflow ? overflow : TR_BACKPRESSURE};
    tr_spawn_opts o = {0};
    tr_ref r = TR_NOREF;

    /* Neither set: the runtime's defaults. */
    o.mailbox = capacity != 0 || set_overflow ? &mb : NULL;
    TR_ASSERT_OK(tr_spawn(rt, b, &o, &r));
    assert_false(tr_ref_is_none(r));
    return r;
}

/* ---- A counter actor --------------------------------------------------- */

/* Counts each empty message it gets into an atomic its spawner owns. */
typedef struct it_counter_state {
    _Atomic uint64_t *count;
} it_counter_state;

typedef _Atomic uint64_t *it_counter_arg;

static inline tr_status
it_counter_init(tr_cx *cx, it_counter_state *self, const it_counter_arg *c)
{
    (void)cx;
    self->count = *c;
    return TR_OK;
}

static inline tr_status
it_counter_on(tr_cx *cx, it_counter_state *self, const void *unused)
{
    (void)cx;
    (void)unused;
    IT_INC(*self->count);
    return TR_OK;
}

/* IT_COUNTER(actor, spawn_fn, type) defines a counter actor that counts
 * messages of `type`, and `tr_ref spawn_fn(tr_runtime *, _Atomic uint64_t
 * *count)` that spawns one. */
#define IT_COUNTER(actor, spawn_fn, type)                                      \
    TR_ACTOR(actor, it_counter_state,                                          \
             TR_ON_INIT(it_counter_arg, it_counter_init),                      \
             TR_ON(type, void, it_counter_on));                                \
    static tr_ref spawn_fn(tr_runtime *rt, _Atomic uint64_t *count)            \
    {                                                                          \
        tr_spawn_opts o = {.arg = &count, .arg_len = sizeof count};            \
        tr_ref r = TR_NOREF;                                                   \
        TR_ASSERT_OK(tr_spawn(rt, &actor, &o, &r));                            \
        return r;                                                              \
    }

/* ---- The jam and closing a gate ---------------------------------------- */

/* The jam has capacity 1 and one SPIN message; each SPIN handler sends a
 * SPIN back to itself. That send finds the mailbox full (the message being
 * handled still counts) and is held; the jam then releases what it handled
 * and its held send goes in at once. So the jam's mailbox has room only in
 * the middle of the jam's own turn: on a runtime with ONE worker, every
 * other actor (which runs between the jam's turns) always finds it full.
 * Threads outside the runtime can catch it with room, so they must never
 * send to a jam. It keeps the worker busy while it runs (other actors still
 * get their turns); stop it with tr_stop(). */
static _Atomic uint64_t it_jam_holds; /* HOLD messages that got in (never) */

static inline tr_status
it_jam_spin(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    (void)tr_send(cx, tr_self(cx), IT_MSG_SPIN, NULL, 0);
    return TR_OK;
}

static inline tr_status
it_jam_hold(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_INC(it_jam_holds);
    return TR_OK;
}

TR_ACTOR(it_jam, char, TR_ON(IT_MSG_SPIN, void, it_jam_spin),
         TR_ON(IT_MSG_HOLD, void, it_jam_hold));

static inline tr_ref
it_jam_start(tr_runtime *rt)
{
    tr_ref jam = it_spawn(rt, &it_jam, 1, 1, TR_BACKPRESSURE);

    TR_ASSERT_OK(tr_send(rt, jam, IT_MSG_SPIN, NULL, 0));
    return jam;
}

typedef struct it_close {
    tr_ref jam;
} it_close;

/* 0: no close yet; otherwise the status of the gate's send to the jam,
 * plus 1000 so that TR_OK is not 0. */
static _Atomic int it_gate_status;

static inline tr_status
it_on_close(tr_cx *cx, void *self, const it_close *c)
{
    tr_status st = tr_send(cx, c->jam, IT_MSG_HOLD, NULL, 0);

    (void)self;
    IT_STORE(it_gate_status, (int)st + 1000);
    return TR_OK;
}

/* A row that lets an actor be used as a gate. */
#define IT_ON_CLOSE TR_ON(IT_MSG_CLOSE, it_close, it_on_close)

/* Makes `gate` (an actor with IT_ON_CLOSE and an empty mailbox, on the same
 * one-worker runtime as the running jam) send to the jam: the send is held
 * (TR_PENDING) and the gate is muted until the jam is stopped, since each
 * time it retries it finds the jam full. When this returns the gate handles
 * no more user messages: the next `capacity` sends to it are admitted and
 * stay queued, and further sends find it full, from threads outside the
 * runtime too. Stopping the jam opens the gate (its held send is then
 * dead-lettered with TR_EDEAD, as is the jam's own queued SPIN). */
static inline void
it_gate_close(tr_runtime *rt, tr_ref gate, tr_ref jam)
{
    it_close c = {jam};

    IT_STORE(it_gate_status, 0);
    TR_ASSERT_OK(tr_send(rt, gate, IT_MSG_CLOSE, &c, sizeof c));
    IT_WAIT_UNTIL(IT_LOAD(it_gate_status) != 0);
    TR_ASSERT_STATUS((tr_status)(IT_LOAD(it_gate_status) - 1000), TR_PENDING);
}

#endif /* TR_ITEST_H */
