/* Runtime lifecycle through the public API: creation and its configuration,
 * several runtimes in one process, refs that cross runtimes, destroy,
 * shutdown (refusals, draining, terminate hooks, deadlines), stats,
 * version and status strings. */
#include "itest.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum {
    MSG_PING = 1,
    MSG_SEQ,
    MSG_BUSY,
    MSG_OTHER,
};

static tr_runtime *g_rt2; /* a second runtime, for the tests that need one */

static int
setup(void **state)
{
    g_rt2 = NULL;
    return it_setup(state);
}

static int
teardown(void **state)
{
    tr_runtime_destroy(&g_rt2);
    return it_teardown(state);
}

/* ---- A counter actor: counts pings into an atomic the spawner owns ----- */

IT_COUNTER(counter_actor, spawn_counter, MSG_PING)

/* A runtime works: an actor spawned on it handles a ping. */
static void
assert_runtime_works(tr_runtime *rt)
{
    _Atomic uint64_t n = 0;
    tr_ref r = spawn_counter(rt, &n);

    TR_ASSERT_OK(tr_send(rt, r, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(n) == 1);
    TR_ASSERT_OK(tr_stop(rt, r));
}

static uint32_t
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1) {
        return 1;
    }
    return n > 256 ? 256u : (uint32_t)n;
}

/* ---- Creation ---------------------------------------------------------- */

static void
test_new_null_config(void **state)
{
    tr_config zero = {0};

    (void)state;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, NULL));
    assert_non_null(g_rt);
    assert_int_equal(it_stats(g_rt).workers, online_cpus());
    assert_runtime_works(g_rt);

    /* A zeroed config means the same defaults. */
    TR_ASSERT_OK(tr_runtime_new(&g_rt2, &zero));
    assert_int_equal(it_stats(g_rt2).workers, online_cpus());
    assert_runtime_works(g_rt2);
    tr_runtime_destroy(&g_rt2);
    assert_null(g_rt2);
}

/* Handlers recording every send status of one flood. */
typedef struct flood {
    tr_ref to;
    uint32_t n;
    tr_status st[64];
} flood;

static void
do_flood(tr_cx *cx, void *arg)
{
    flood *f = arg;

    for (uint32_t i = 0; i < f->n; i++) {
        f->st[i] = tr_send(cx, f->to, MSG_PING, NULL, 0);
    }
}

/* Sends `n` pings to a fresh counter from a handler on a one-worker
 * runtime: the counter cannot run before the flood ends, so the statuses
 * show its capacity and overflow policy exactly. */
static void
flood_counter(tr_runtime *rt, flood *f, uint32_t n, _Atomic uint64_t *count)
{
    tr_ref p = it_spawn(rt, &it_caller, 0, 0, TR_BACKPRESSURE);

    f->to = spawn_counter(rt, count);
    f->n = n;
    it_call_sync(rt, p, do_flood, f);
}

static void
test_new_workers_and_mailbox_fields(void **state)
{
    tr_config cfg = {0};
    _Atomic uint64_t n = 0;
    flood f;

    (void)state;
    cfg.workers = 3;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    assert_int_equal(it_stats(g_rt).workers, 3);
    assert_runtime_works(g_rt);
    tr_runtime_destroy(&g_rt);

    /* mailbox_capacity and overflow apply to spawns that set neither. */
    cfg = (tr_config){0};
    cfg.workers = 1;
    cfg.mailbox_capacity = 3;
    cfg.overflow = TR_REJECT;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    flood_counter(g_rt, &f, 5, &n);
    for (uint32_t i = 0; i < 3; i++) {
        TR_ASSERT_OK(f.st[i]);
    }
    TR_ASSERT_STATUS(f.st[3], TR_EFULL);
    TR_ASSERT_STATUS(f.st[4], TR_EFULL);
    IT_WAIT_UNTIL(IT_LOAD(n) == 3);
    tr_runtime_destroy(&g_rt);

    cfg.overflow = TR_DROP_NEWEST;
    n = 0;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    flood_counter(g_rt, &f, 5, &n);
    for (uint32_t i = 0; i < 3; i++) {
        TR_ASSERT_OK(f.st[i]);
    }
    TR_ASSERT_STATUS(f.st[3], TR_DROPPED);
    TR_ASSERT_STATUS(f.st[4], TR_DROPPED);
    IT_WAIT_UNTIL(IT_LOAD(n) == 3);
    tr_runtime_destroy(&g_rt);

    /* The default overflow is backpressure: the fourth send is held. */
    cfg.overflow = TR_BACKPRESSURE;
    n = 0;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    flood_counter(g_rt, &f, 5, &n);
    for (uint32_t i = 0; i < 3; i++) {
        TR_ASSERT_OK(f.st[i]);
    }
    TR_ASSERT_STATUS(f.st[3], TR_PENDING);
    TR_ASSERT_STATUS(f.st[4], TR_PENDING);
    IT_WAIT_UNTIL(IT_LOAD(n) == 5);

    /* outbox_limit: held sends beyond it fail with TR_EFULL. */
    tr_runtime_destroy(&g_rt);
    cfg.outbox_limit = 2;
    n = 0;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    flood_counter(g_rt, &f, 7, &n);
    for (uint32_t i = 0; i < 3; i++) {
        TR_ASSERT_OK(f.st[i]);
    }
    TR_ASSERT_STATUS(f.st[3], TR_PENDING);
    TR_ASSERT_STATUS(f.st[4], TR_PENDING);
    TR_ASSERT_STATUS(f.st[5], TR_EFULL);
    TR_ASSERT_STATUS(f.st[6], TR_EFULL);
    IT_WAIT_UNTIL(IT_LOAD(n) == 5);
}

static _Atomic uint64_t g_bytes_n;

static tr_status
bytes_ok(tr_cx *cx, void *self, const void *data)
{
    (void)cx;
    (void)self;
    (void)data;
    IT_INC(g_bytes_n);
    return TR_OK;
}

TR_ACTOR(bytes_actor, char, TR_ON_BYTES(MSG_PING, bytes_ok), IT_ON_CLOSE);

static void
test_new_payload_and_actor_limits(void **state)
{
    tr_config cfg = {0};
    unsigned char buf[101] = {0};
    tr_ref r, extra = TR_NOREF;

    (void)state;
    cfg.workers = 1;
    cfg.max_payload = 100;
    cfg.max_actors = 3;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));

    r = it_spawn(g_rt, &bytes_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, buf, 100));
    TR_ASSERT_STATUS(tr_send(g_rt, r, MSG_PING, buf, 101), TR_EMSGSIZE);

    (void)it_spawn(g_rt, &bytes_actor, 0, 0, TR_BACKPRESSURE);
    (void)it_spawn(g_rt, &bytes_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &bytes_actor, NULL, &extra), TR_ELIMIT);
    assert_true(tr_ref_is_none(extra));
    assert_int_equal(it_stats(g_rt).alive, 3);
}

static void
test_new_send_timeout_field(void **state)
{
    tr_config cfg = {0};
    tr_ref jam, gate;
    uint64_t t0, t1;

    (void)state;
    cfg.send_timeout_ms = 30;
    cfg.drain_ms = 50;
    g_bytes_n = 0;
    g_rt = it_runtime(1, &cfg);
    jam = it_jam_start(g_rt);
    gate = it_spawn(g_rt, &bytes_actor, 1, 1, TR_BACKPRESSURE);
    it_gate_close(g_rt, gate, jam);
    TR_ASSERT_OK(tr_send(g_rt, gate, MSG_PING, NULL, 0)); /* now full */

    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_send(g_rt, gate, MSG_OTHER, NULL, 0), TR_ETIMEDOUT);
    t1 = tr_test_now_ns();
    assert_true(t1 - t0 >= 30u * 1000000u);
    TR_ASSERT_OK(tr_stop(g_rt, jam));
    /* Nothing was sent: once the gate is open it handles the queued ping
     * and then the next one, and never sees the timed-out message (which,
     * having no row, would be dead-lettered if it had been delivered). */
    IT_WAIT_UNTIL(IT_LOAD(g_bytes_n) == 1);
    TR_ASSERT_OK(tr_send(g_rt, gate, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_bytes_n) == 2);
    assert_int_equal(it_dl_count_type(MSG_OTHER), 0);
}

struct busy {
    uint64_t handled;
};

static _Atomic uint64_t g_busy_handled, g_busy_ok, g_busy_other;
static _Atomic uint64_t g_busy_terms, g_busy_kind;

/* Keeps itself busy: every handler sends the next message to itself. */
static tr_status
busy_on(tr_cx *cx, struct busy *self, const void *unused)
{
    tr_status st = tr_send(cx, tr_self(cx), MSG_BUSY, NULL, 0);

    (void)unused;
    self->handled++;
    IT_INC(g_busy_handled);
    if (st == TR_OK) {
        IT_INC(g_busy_ok);
    } else {
        IT_INC(g_busy_other);
    }
    return TR_OK;
}

static tr_status
busy_term(tr_cx *cx, struct busy *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    IT_STORE(g_busy_kind, (uint64_t)why->kind);
    IT_INC(g_busy_terms);
    return TR_OK;
}

TR_ACTOR(busy_actor, struct busy, TR_ON(MSG_BUSY, void, busy_on),
         TR_ON_TERMINATE(busy_term));

static void
test_new_drain_ms_field(void **state)
{
    tr_config cfg = {0};
    tr_ref b;
    uint64_t t0, elapsed_ms;

    (void)state;
    cfg.workers = 1;
    cfg.drain_ms = 30;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    b = it_spawn(g_rt, &busy_actor, 0, 0, TR_BACKPRESSURE);
    g_busy_terms = 0;
    TR_ASSERT_OK(tr_send(g_rt, b, MSG_BUSY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_busy_handled) > 100);

    /* Destroy drains for the configured 30 ms, not the default 5 s, then
     * stops the busy actor. The bound is not scaled on purpose: it only has
     * to tell 30 ms from 5,000 ms. */
    t0 = tr_test_now_ns();
    tr_runtime_destroy(&g_rt);
    elapsed_ms = (tr_test_now_ns() - t0) / 1000000u;
    assert_null(g_rt);
    assert_true(elapsed_ms < 4000);
    assert_int_equal(IT_LOAD(g_busy_terms), 1);
    assert_int_equal(IT_LOAD(g_busy_kind), TR_EXIT_SHUTDOWN);
}

static _Atomic uint64_t g_tag_calls;
static int g_tag;

static void
tag_dl(void *arg, const tr_dead_letter *dl)
{
    (void)dl;
    if (arg == &g_tag) {
        IT_INC(g_tag_calls);
    }
}

static void
test_new_dead_letter_fn_field(void **state)
{
    tr_config cfg = {0};
    _Atomic uint64_t n = 0;
    tr_ref r;

    (void)state;
    g_tag_calls = 0;
    cfg.dead_letter_fn = tag_dl;
    cfg.dead_letter_arg = &g_tag;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    r = spawn_counter(g_rt, &n);
    TR_ASSERT_OK(tr_stop(g_rt, r));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    TR_ASSERT_STATUS(tr_send(g_rt, r, MSG_PING, NULL, 0), TR_EDEAD);
    IT_WAIT_UNTIL(IT_LOAD(g_tag_calls) == 1);
    assert_int_equal(it_stats(g_rt).dead_letters, 1);
}

static void
test_new_einval(void **state)
{
    tr_runtime *const sentinel = (tr_runtime *)&g_tag;
    tr_runtime *rt = sentinel;
    tr_config cfg = {0};

    (void)state;
    TR_ASSERT_STATUS(tr_runtime_new(NULL, NULL), TR_EINVAL);

    cfg.workers = 257;
    TR_ASSERT_STATUS(tr_runtime_new(&rt, &cfg), TR_EINVAL);
    assert_ptr_equal(rt, sentinel);

    cfg = (tr_config){0};
    cfg.mailbox_capacity = TR_MAILBOX_MAX_CAPACITY + 1;
    TR_ASSERT_STATUS(tr_runtime_new(&rt, &cfg), TR_EINVAL);
    assert_ptr_equal(rt, sentinel);

    cfg = (tr_config){0};
    cfg.overflow = (tr_overflow)(TR_FAIL + 1);
    TR_ASSERT_STATUS(tr_runtime_new(&rt, &cfg), TR_EINVAL);
    assert_ptr_equal(rt, sentinel);

    cfg = (tr_config){0};
    cfg.max_actors = (1u << 28) + 1;
    TR_ASSERT_STATUS(tr_runtime_new(&rt, &cfg), TR_EINVAL);
    assert_ptr_equal(rt, sentinel);

    /* The limits themselves are accepted. */
    cfg = (tr_config){0};
    cfg.workers = 1;
    cfg.mailbox_capacity = TR_MAILBOX_MAX_CAPACITY;
    cfg.max_actors = 1u << 28;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
    assert_runtime_works(g_rt);
}

/* ---- Several runtimes -------------------------------------------------- */

static _Atomic uint64_t g_dl_a, g_dl_b;

static void
count_dl(void *arg, const tr_dead_letter *dl)
{
    (void)dl;
    IT_INC(*(_Atomic uint64_t *)arg);
}

static void
new_pair(void)
{
    tr_config a = {0}, b = {0};

    g_dl_a = g_dl_b = 0;
    a.workers = 2;
    a.dead_letter_fn = count_dl;
    a.dead_letter_arg = &g_dl_a;
    b.workers = 1;
    b.dead_letter_fn = count_dl;
    b.dead_letter_arg = &g_dl_b;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &a));
    TR_ASSERT_OK(tr_runtime_new(&g_rt2, &b));
}

static void
test_two_runtimes_independent(void **state)
{
    _Atomic uint64_t na = 0, nb = 0;
    tr_ref ra, rb;
    tr_stats sa, sb;

    (void)state;
    new_pair();
    ra = spawn_counter(g_rt, &na);
    rb = spawn_counter(g_rt2, &nb);
    for (int i = 0; i < 30; i++) {
        TR_ASSERT_OK(tr_send(g_rt, ra, MSG_PING, NULL, 0));
    }
    for (int i = 0; i < 7; i++) {
        TR_ASSERT_OK(tr_send(g_rt2, rb, MSG_PING, NULL, 0));
    }
    IT_WAIT_UNTIL(IT_LOAD(na) == 30 && IT_LOAD(nb) == 7);
    IT_WAIT_UNTIL(it_stats(g_rt).handled == 30 && it_stats(g_rt2).handled == 7);
    sa = it_stats(g_rt);
    sb = it_stats(g_rt2);
    assert_int_equal(sa.workers, 2);
    assert_int_equal(sb.workers, 1);
    assert_int_equal(sa.spawned, 1);
    assert_int_equal(sb.spawned, 1);
    assert_int_equal(sa.sent, 30);
    assert_int_equal(sb.sent, 7);

    /* Shutting one down leaves the other running. */
    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 1000));
    TR_ASSERT_STATUS(tr_send(g_rt, ra, MSG_PING, NULL, 0), TR_ESHUTDOWN);
    TR_ASSERT_OK(tr_send(g_rt2, rb, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(nb) == 8);
    assert_int_equal(IT_LOAD(na), 30);
}

static void
test_foreign_ref_is_dead(void **state)
{
    _Atomic uint64_t na = 0;
    tr_ref ra;

    (void)state;
    new_pair();
    ra = spawn_counter(g_rt, &na);

    TR_ASSERT_STATUS(tr_send(g_rt2, ra, MSG_PING, NULL, 0), TR_EDEAD);
    IT_WAIT_UNTIL(IT_LOAD(g_dl_b) == 1);
    TR_ASSERT_STATUS(tr_stop(g_rt2, ra), TR_EDEAD);
    assert_int_equal(it_stats(g_rt2).dead_letters, 1);
    assert_int_equal(IT_LOAD(g_dl_b), 1);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt2, ra, MSG_PING, NULL, 0, NULL, 0,
                                 (uint32_t)tr_test_scaled_ms(5000)),
                     TR_EDEAD);
    assert_true(IT_LOAD(g_dl_b) >= 2);
    assert_int_equal(IT_LOAD(g_dl_a), 0);

    /* The actor in A never saw any of it and still works. */
    TR_ASSERT_OK(tr_send(g_rt, ra, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(na) == 1);
    assert_int_equal(IT_LOAD(g_dl_a), 0);
}

static void
test_destroyed_runtime_ref_is_dead(void **state)
{
    _Atomic uint64_t na = 0;
    tr_ref ra;

    (void)state;
    new_pair();
    ra = spawn_counter(g_rt, &na);
    tr_runtime_destroy(&g_rt);
    assert_null(g_rt);

    TR_ASSERT_STATUS(tr_send(g_rt2, ra, MSG_PING, NULL, 0), TR_EDEAD);
    IT_WAIT_UNTIL(IT_LOAD(g_dl_b) == 1);
    TR_ASSERT_STATUS(tr_stop(g_rt2, ra), TR_EDEAD);
    assert_int_equal(IT_LOAD(na), 0);
}

static void
test_destroy_null_and_sets_null(void **state)
{
    tr_runtime *rt = NULL;

    (void)state;
    tr_runtime_destroy(NULL);
    tr_runtime_destroy(&rt);
    assert_null(rt);

    TR_ASSERT_OK(tr_runtime_new(&rt, NULL));
    assert_non_null(rt);
    tr_runtime_destroy(&rt);
    assert_null(rt);
    /* Again on the now-NULL pointer. */
    tr_runtime_destroy(&rt);
    assert_null(rt);
}

/* ---- Shutdown ---------------------------------------------------------- */

static void
test_shutdown_refuses_outside_calls(void **state)
{
    _Atomic uint64_t n = 0;
    tr_ref r, extra = TR_NOREF;
    tr_stats s;

    (void)state;
    g_rt = it_runtime(2, NULL);
    r = spawn_counter(g_rt, &n);
    TR_ASSERT_STATUS(tr_runtime_shutdown(NULL, 0), TR_EINVAL);
    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 1000));

    TR_ASSERT_STATUS(tr_send(g_rt, r, MSG_PING, NULL, 0), TR_ESHUTDOWN);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &bytes_actor, NULL, &extra), TR_ESHUTDOWN);
    assert_true(tr_ref_is_none(extra));
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, r, MSG_PING, NULL, 0, NULL, 0, 1000),
                     TR_ESHUTDOWN);
    /* A refused send is not a dead letter: nothing was accepted. */
    s = it_stats(g_rt);
    assert_int_equal(s.alive, 0);
    assert_int_equal(s.dead_letters, 0);
    assert_int_equal(it_dl_total(), 0);

    /* Again: a no-op. */
    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 1000));
    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 0));
    assert_int_equal(IT_LOAD(n), 0);
}

/* A receiver that reports, when it ends, how many messages it handled. */
struct drainer {
    uint64_t handled;
};

static _Atomic uint64_t g_drain_at_term, g_drain_terms, g_drain_kind;

static tr_status
drainer_on(tr_cx *cx, struct drainer *self, const uint32_t *seq)
{
    (void)cx;
    (void)seq;
    self->handled++;
    return TR_OK;
}

static tr_status
drainer_term(tr_cx *cx, struct drainer *self, const tr_reason *why)
{
    (void)cx;
    IT_STORE(g_drain_at_term, self->handled);
    IT_STORE(g_drain_kind, (uint64_t)why->kind);
    IT_INC(g_drain_terms);
    return TR_OK;
}

TR_ACTOR(drainer_actor, struct drainer, TR_ON(MSG_SEQ, uint32_t, drainer_on),
         TR_ON_TERMINATE(drainer_term));

#define DRAIN_K 3000u

typedef struct seq_flood {
    tr_ref to;
    uint32_t n;
    _Atomic uint32_t errors;
} seq_flood;

static void
do_seq_flood(tr_cx *cx, void *arg)
{
    seq_flood *f = arg;

    for (uint32_t i = 0; i < f->n; i++) {
        if (tr_send(cx, f->to, MSG_SEQ, &i, sizeof i) != TR_OK) {
            IT_INC(f->errors);
        }
    }
}

static void
test_shutdown_drains_queued_messages(void **state)
{
    seq_flood f = {0};
    tr_ref p;

    (void)state;
    g_drain_terms = g_drain_at_term = 0;
    g_rt = it_runtime(1, NULL);
    f.to = it_spawn(g_rt, &drainer_actor, DRAIN_K, 0, TR_BACKPRESSURE);
    f.n = DRAIN_K;
    p = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);

    /* Queue DRAIN_K messages and shut down without waiting for them: the
     * flood and its handling happen while the runtime drains. */
    it_call_async(g_rt, p, do_seq_flood, &f);
    TR_ASSERT_OK(it_shutdown_bounded(g_rt, (uint32_t)tr_test_scaled_ms(20000),
                                     IT_WAIT_MS * 3));

    /* shutdown returned: every actor is gone, nothing more to wait for. */
    assert_int_equal(IT_LOAD(f.errors), 0);
    assert_int_equal(IT_LOAD(g_drain_terms), 1);
    assert_int_equal(IT_LOAD(g_drain_kind), TR_EXIT_SHUTDOWN);
    assert_int_equal(IT_LOAD(g_drain_at_term), DRAIN_K);
    assert_int_equal(it_dl_total(), 0);
    assert_int_equal(it_stats(g_rt).alive, 0);
}

static _Atomic uint64_t g_terms, g_terms_not_shutdown;

static tr_status
term_count(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    if (why->kind != TR_EXIT_SHUTDOWN) {
        IT_INC(g_terms_not_shutdown);
    }
    IT_INC(g_terms);
    return TR_OK;
}

TR_ACTOR(term_actor, char, TR_ON(MSG_PING, void, bytes_ok),
         TR_ON_TERMINATE(term_count));

#define TERM_N 1000u

static void
test_shutdown_terminates_every_actor_once(void **state)
{
    tr_ref r;

    (void)state;
    g_terms = g_terms_not_shutdown = 0;
    g_rt = it_runtime(2, NULL);
    for (uint32_t i = 0; i < TERM_N; i++) {
        r = it_spawn(g_rt, &term_actor, 0, 0, TR_BACKPRESSURE);
        if (i % 10 == 0) {
            TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, NULL, 0));
        }
    }
    assert_int_equal(it_stats(g_rt).spawned, TERM_N);

    TR_ASSERT_OK(it_shutdown_bounded(g_rt, 5000, IT_WAIT_MS * 3));
    /* It returns only when the last actor is gone. */
    assert_int_equal(IT_LOAD(g_terms), TERM_N);
    assert_int_equal(IT_LOAD(g_terms_not_shutdown), 0);
    assert_int_equal(it_stats(g_rt).alive, 0);

    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 5000));
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_terms), TERM_N);
}

static tr_status g_shutdown_in_handler = TR_OK;

static void
do_shutdown(tr_cx *cx, void *arg)
{
    (void)arg;
    g_shutdown_in_handler = tr_runtime_shutdown(tr_cx_runtime(cx), 0);
}

static void
test_shutdown_from_handler_is_estate(void **state)
{
    tr_ref p;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, p, do_shutdown, NULL);
    TR_ASSERT_STATUS(g_shutdown_in_handler, TR_ESTATE);
    /* Nothing changed: the runtime still takes outside work. */
    assert_runtime_works(g_rt);
}

static void
test_shutdown_short_drain_busy_actor(void **state)
{
    tr_ref b;
    uint32_t dl_shutdown;

    (void)state;
    g_busy_handled = g_busy_ok = g_busy_other = g_busy_terms = 0;
    g_busy_kind = 99;
    g_rt = it_runtime(1, NULL);
    b = it_spawn(g_rt, &busy_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, b, MSG_BUSY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_busy_handled) > 100);

    TR_ASSERT_OK(it_shutdown_bounded(g_rt, 20, IT_WAIT_MS));

    assert_int_equal(IT_LOAD(g_busy_terms), 1);
    assert_int_equal(IT_LOAD(g_busy_kind), TR_EXIT_SHUTDOWN);
    assert_int_equal(IT_LOAD(g_busy_other), 0);
    /* The message it had queued to itself went to dead letters. */
    dl_shutdown = it_dl_count(MSG_BUSY, TR_ESHUTDOWN);
    assert_true(dl_shutdown >= 1);
    assert_int_equal(it_dl_count_type(MSG_BUSY), dl_shutdown);
    /* Nothing lost: the first send plus every accepted self-send was
     * either handled or dead-lettered. */
    assert_int_equal(1 + IT_LOAD(g_busy_ok),
                     IT_LOAD(g_busy_handled) + dl_shutdown);
    assert_int_equal(it_stats(g_rt).dead_letters, it_dl_total());
}

/* Handlers that keep spawning while the runtime shuts down. A handler may
 * spawn until actors are being stopped; whatever it spawned must then be
 * stopped too, or shutdown waits forever for it. The children take a large
 * init argument, so a spawner spends most of its time inside tr_spawn()
 * (copying it) and is very likely to be there when shutdown begins. */
struct big_arg {
    unsigned char b[512 * 1024];
};

static struct big_arg g_big_arg;

static tr_status
idle_child_init(tr_cx *cx, void *self, const struct big_arg *arg)
{
    (void)cx;
    (void)self;
    (void)arg;
    return TR_OK;
}

TR_ACTOR(idle_child, char, TR_ON_INIT(struct big_arg, idle_child_init));

static tr_status
spawner_go(tr_cx *cx, void *self, const void *unused)
{
    tr_spawn_opts o = {0};
    tr_ref child;

    (void)self;
    (void)unused;
    o.arg = &g_big_arg;
    o.arg_len = sizeof g_big_arg;
    (void)tr_spawn(cx, &idle_child, &o, &child);
    (void)tr_send(cx, tr_self(cx), MSG_PING, NULL, 0);
    return TR_OK;
}

TR_ACTOR(spawner_actor, char, TR_ON(MSG_PING, void, spawner_go));

/* Rounds, and how long (ms, scaled) one shutdown may take: far more than a
 * healthy one needs. */
#define SPAWN_RACE_ROUNDS 10
#define SPAWN_RACE_BOUND  3000u

static void
test_shutdown_while_handlers_spawn(void **state)
{
    (void)state;
    for (int round = 0; round < SPAWN_RACE_ROUNDS; round++) {
        /* Heap, not stack: a shutdown that never returns keeps using it. */
        it_shutdown_job *j = calloc(1, sizeof *j);
        pthread_t th;
        uint64_t deadline;
        tr_ref s;

        tr_config cfg = {0};

        assert_non_null(j);
        /* No dead-letter recorder: if this runtime hangs it is left behind
         * running, and must not touch what later tests use. */
        cfg.workers = 2;
        TR_ASSERT_OK(tr_runtime_new(&g_rt, &cfg));
        for (int k = 0; k < 2; k++) {
            s = it_spawn(g_rt, &spawner_actor, 0, 0, TR_BACKPRESSURE);
            TR_ASSERT_OK(tr_send(g_rt, s, MSG_PING, NULL, 0));
        }
        tr_test_sleep_ms(1);
        j->rt = g_rt;
        j->drain_ms = 0;
        assert_int_equal(pthread_create(&th, NULL, it_shutdown_main, j), 0);
        deadline =
            tr_test_now_ns() + tr_test_scaled_ms(SPAWN_RACE_BOUND) * 1000000u;
        while (!IT_LOAD(j->done) && tr_test_now_ns() < deadline) {
            tr_test_sleep_ms(1);
        }
        if (!IT_LOAD(j->done)) {
            tr_stats st = it_stats(g_rt);

            /* Leave the stuck runtime alone: destroying it would hang. */
            g_rt = NULL;
            fail_msg("round %d: shutdown still waiting after %u ms; "
                     "alive=%llu of spawned=%llu",
                     round, SPAWN_RACE_BOUND, (unsigned long long)st.alive,
                     (unsigned long long)st.spawned);
        }
        assert_int_equal(pthread_join(th, NULL), 0);
        TR_ASSERT_OK(j->st);
        assert_int_equal(it_stats(g_rt).alive, 0);
        free(j);
        tr_runtime_destroy(&g_rt);
    }
}

/* ---- Stats ------------------------------------------------------------- */

typedef struct relay_req {
    tr_ref to;
    uint32_t n;
} relay_req;

static tr_status
relay_on(tr_cx *cx, void *self, const relay_req *r)
{
    (void)self;
    for (uint32_t i = 0; i < r->n; i++) {
        (void)tr_send(cx, r->to, MSG_PING, NULL, 0);
    }
    return TR_OK;
}

TR_ACTOR(relay_actor, char, TR_ON(MSG_SEQ, relay_req, relay_on));

/* TR_EFAILED: a worker (or the timer) thread cannot be started. Capping
 * the address space a little above what the process maps now leaves room
 * for the runtime's small allocations but not for a thread's stack (it
 * runs first: glibc reuses the stacks of exited threads). The sanitizers
 * reserve huge address ranges, so the test skips under them. */
static size_t
mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;

    if (f != NULL) {
        if (fscanf(f, "%lu", &pages) != 1) {
            pages = 0;
        }
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void
test_new_fails_when_threads_cannot_start(void **state)
{
    const char *san = getenv("TR_SANITIZER");
    struct rlimit old, capped;
    tr_runtime *rt = NULL;
    tr_config cfg = {0};
    tr_status st;

    (void)state;
    if (san != NULL && strcmp(san, "none") != 0 && *san != '\0') {
        skip();
    }
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    capped = old;
    capped.rlim_cur = mapped_bytes() + (2u << 20); /* a stack is 8 MiB */
    assert_int_equal(setrlimit(RLIMIT_AS, &capped), 0);
    cfg.workers = 2;
    st = tr_runtime_new(&rt, &cfg);
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    TR_ASSERT_STATUS(st, TR_EFAILED);
    assert_null(rt); /* nothing changed, nothing left running */
    /* With the address space back, the same call works. */
    TR_ASSERT_OK(tr_runtime_new(&rt, &cfg));
    tr_runtime_destroy(&rt);
}

/* An idle runtime uses no CPU: once the work is done, workers park on a
 * futex instead of spinning. A busy-waiting worker would burn about the
 * whole window; the bound is a small fraction of it. */
static uint64_t
cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u +
           (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u +
           (uint64_t)ru.ru_stime.tv_usec;
}

static void
test_idle_runtime_uses_no_cpu(void **state)
{
    _Atomic uint64_t n = 0;
    uint64_t before, used;
    tr_ref r;

    (void)state;
    g_rt = it_runtime(2, NULL);
    r = spawn_counter(g_rt, &n);
    for (int i = 0; i < 1000; i++) {
        TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, NULL, 0));
    }
    IT_WAIT_UNTIL(IT_LOAD(n) == 1000);
    tr_test_sleep_ms(50); /* let the workers finish spinning and park */
    before = cpu_us();
    tr_test_sleep_ms(500);
    used = cpu_us() - before;
    /* Two spinning workers would use ~1,000 ms here. */
    if (used > 50000) {
        fail_msg("idle runtime used %llu us of CPU in 500 ms",
                 (unsigned long long)used);
    }
    /* And it still answers at once. */
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(n) == 1001);
}

static void
test_stats_exact_when_quiet(void **state)
{
    _Atomic uint64_t n[3] = {0, 0, 0}, gone_n = 0;
    tr_ref r[3], gone, relay;
    relay_req req;
    tr_stats s;

    (void)state;
    g_rt = it_runtime(2, NULL);
    s = it_stats(g_rt);
    assert_int_equal(s.spawned, 0);
    assert_int_equal(s.alive, 0);
    assert_int_equal(s.sent, 0);
    assert_int_equal(s.handled, 0);
    assert_int_equal(s.dead_letters, 0);

    for (int i = 0; i < 3; i++) {
        r[i] = spawn_counter(g_rt, &n[i]);
    }
    gone = spawn_counter(g_rt, &gone_n);
    relay = it_spawn(g_rt, &relay_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_stop(g_rt, gone));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 4);

    for (int i = 0; i < 3; i++) {
        for (int k = 0; k <= i; k++) {
            TR_ASSERT_OK(tr_send(g_rt, r[i], MSG_PING, NULL, 0));
        }
    }
    TR_ASSERT_STATUS(tr_send(g_rt, gone, MSG_PING, NULL, 0), TR_EDEAD);
    TR_ASSERT_STATUS(tr_send(g_rt, gone, MSG_PING, NULL, 0), TR_EDEAD);
    /* From a handler too: the relay sends 5 pings to r[0]. */
    req.to = r[0];
    req.n = 5;
    TR_ASSERT_OK(tr_send(g_rt, relay, MSG_SEQ, &req, sizeof req));

    IT_WAIT_UNTIL(IT_LOAD(n[0]) == 6 && IT_LOAD(n[1]) == 2 &&
                  IT_LOAD(n[2]) == 3);
    IT_WAIT_UNTIL(it_stats(g_rt).handled >= 12);
    s = it_stats(g_rt);
    assert_int_equal(s.spawned, 5);
    assert_int_equal(s.alive, 4);
    assert_int_equal(s.sent, 6 + 1 + 5);
    assert_int_equal(s.handled, 6 + 1 + 5);
    assert_int_equal(s.dead_letters, 2);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(s.held, 0);
    assert_int_equal(s.overcommits, 0);
    assert_int_equal(s.timers_fired, 0);
    assert_int_equal(s.workers, 2);
    assert_int_equal(it_dl_total(), 2);
    assert_int_equal(IT_LOAD(gone_n), 0);
    /* Quiet now: idle workers park rather than spin. */
    IT_WAIT_UNTIL(it_stats(g_rt).parks > 0);

    TR_ASSERT_STATUS(tr_runtime_stats(NULL, &s), TR_EINVAL);
    TR_ASSERT_STATUS(tr_runtime_stats(g_rt, NULL), TR_EINVAL);
}

/* `handled` counts messages handed to a handler. A message no row takes,
 * or whose size a row refuses, is dead-lettered instead, and must not be
 * counted as handled as well. */
static void
test_stats_refused_messages_not_handled(void **state)
{
    _Atomic uint64_t n = 0;
    tr_ref r;
    uint32_t junk = 7;
    tr_stats s;

    (void)state;
    g_rt = it_runtime(1, NULL);
    r = spawn_counter(g_rt, &n);
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_OTHER, NULL, 0));           /* no row */
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, &junk, sizeof junk)); /* size */
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(n) == 1 && it_dl_total() == 2);
    /* One worker, one counter: once the turn of the next ping is counted,
     * every earlier turn is too. */
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(n) == 2);
    IT_WAIT_UNTIL(it_stats(g_rt).handled >= 2);
    s = it_stats(g_rt);
    assert_int_equal(it_dl_count(MSG_OTHER, TR_EUNHANDLED), 1);
    assert_int_equal(it_dl_count(MSG_PING, TR_EBADMSG), 1);
    assert_int_equal(s.sent, 4);
    assert_int_equal(s.dead_letters, 2);
    assert_int_equal(s.handled, 2);
}

/* ---- Version and status strings ---------------------------------------- */

static void
test_version(void **state)
{
    char want[64];

    (void)state;
    assert_int_equal(tr_version(), TR_VERSION_HEX);
    assert_int_equal(TR_VERSION_HEX, (TR_VERSION_MAJOR << 16) |
                                         (TR_VERSION_MINOR << 8) |
                                         TR_VERSION_PATCH);
    if (TR_VERSION_SUFFIX[0] != '\0') {
        snprintf(want, sizeof want, "%d.%d.%d-%s", TR_VERSION_MAJOR,
                 TR_VERSION_MINOR, TR_VERSION_PATCH, TR_VERSION_SUFFIX);
    } else {
        snprintf(want, sizeof want, "%d.%d.%d", TR_VERSION_MAJOR,
                 TR_VERSION_MINOR, TR_VERSION_PATCH);
    }
    assert_non_null(tr_version_string());
    assert_string_equal(tr_version_string(), want);
}

typedef struct status_row {
    tr_status st;
    const char *name;
    const char *msg;
} status_row;

#define STATUS_ROW(name, value, msg) {TR_##name, #name, msg},
static const status_row status_rows[] = {TR_STATUS_MAP(STATUS_ROW)};
#undef STATUS_ROW

static void
test_status_strings(void **state)
{
    size_t n = sizeof status_rows / sizeof status_rows[0];

    (void)state;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(tr_status_name(status_rows[i].st),
                            status_rows[i].name);
        assert_string_equal(tr_strerror(status_rows[i].st), status_rows[i].msg);
        for (size_t k = 0; k < i; k++) {
            assert_int_not_equal(status_rows[i].st, status_rows[k].st);
        }
    }
    assert_int_equal(TR_OK, 0);
    assert_true(TR_PENDING > 0 && TR_DROPPED > 0);
    assert_true(TR_EDEAD < 0 && TR_EFAILED < 0 && TR_EINVAL == -EINVAL);

    assert_string_equal(tr_status_name((tr_status)12345), "UNKNOWN");
    assert_string_equal(tr_strerror((tr_status)12345), "unknown status");
    assert_string_equal(tr_status_name((tr_status)-3999), "UNKNOWN");
    assert_string_equal(tr_strerror((tr_status)-3999), "unknown status");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        /* First: before any thread exists, glibc has no cached stacks
         * to hand a new thread without mapping one. */
        T(test_new_fails_when_threads_cannot_start),
        T(test_new_null_config),
        T(test_new_workers_and_mailbox_fields),
        T(test_new_payload_and_actor_limits),
        T(test_new_send_timeout_field),
        T(test_new_drain_ms_field),
        T(test_new_dead_letter_fn_field),
        T(test_new_einval),
        T(test_two_runtimes_independent),
        T(test_foreign_ref_is_dead),
        T(test_destroyed_runtime_ref_is_dead),
        T(test_destroy_null_and_sets_null),
        T(test_shutdown_refuses_outside_calls),
        T(test_shutdown_drains_queued_messages),
        T(test_shutdown_terminates_every_actor_once),
        T(test_shutdown_from_handler_is_estate),
        T(test_shutdown_short_drain_busy_actor),
        T(test_shutdown_while_handlers_spawn),
        T(test_idle_runtime_uses_no_cpu),
        T(test_stats_exact_when_quiet),
        T(test_stats_refused_messages_not_handled),
        T(test_version),
        T(test_status_strings),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
