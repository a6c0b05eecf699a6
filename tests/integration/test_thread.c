/* Thread actors (troupe/thread.h): an actor that owns an OS thread, takes
 * its messages with tr_thread_receive(), and may block.
 *
 * What is checked: any sender reaches it by its ref, in send order; a
 * receive with a timeout returns TR_ETIMEDOUT; tr_stop() and shutdown end
 * it while it blocks in a receive; its mailbox is bounded with the usual
 * policies (reject, backpressure for an outside thread and for an actor);
 * from its own thread it is the sender of its messages, can ask an actor
 * and be asked; its function returning ends it; misuse returns statuses. */
#include "itest.h"

#include <stdlib.h>

enum {
    MSG_SEQ = 1,
    MSG_PING,
    MSG_PONG,
    MSG_ASK,
    MSG_GO,
    MSG_SEEN,
};

#define RECV_MS 10000u /* a receive that must not time out, unscaled */

/* What a thread function records; read by the test once joined or with
 * IT_LOAD. */
typedef struct rec {
    _Atomic uint32_t got;      /* messages received */
    _Atomic uint32_t in_order; /* of those, seq == index */
    _Atomic int last;          /* status of the last receive, + 1000 */
    _Atomic int ready;         /* set before the first receive */
    _Atomic int gate;          /* the test opens it for functions that wait */
    tr_ref from[64];
    tr_status timed; /* status of a short receive */
    uint64_t timed_ns;
    tr_status extra[4];
} rec;

static rec g;

static int
setup(void **state)
{
    memset(&g, 0, sizeof g);
    return it_setup(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, it_teardown)

static tr_thread *
spawn_thread(tr_runtime *rt, const char *name, const tr_mailbox_opts *mb,
             tr_thread_fn fn, tr_ref *ref)
{
    tr_thread *t = NULL;

    TR_ASSERT_OK(tr_thread_spawn(rt, name, mb, fn, &g, ref, &t));
    assert_non_null(t);
    assert_false(tr_ref_is_none(*ref));
    assert_true(tr_ref_eq(tr_thread_ref(t), *ref));
    assert_ptr_equal(tr_thread_runtime(t), rt);
    return t;
}

/* Receives until its actor ends, recording each message; answers a
 * MSG_ASK with twice its payload. */
static void
counting_main(tr_thread *self, void *arg)
{
    rec *r = arg;
    tr_thread_msg m;
    tr_status st;

    IT_STORE(r->ready, 1);
    while ((st = tr_thread_receive(self, &m, TR_THREAD_FOREVER)) == TR_OK) {
        uint32_t i = IT_LOAD(r->got);
        uint32_t seq = 0;

        if (m.len == sizeof seq) {
            memcpy(&seq, m.data, sizeof seq);
        }
        if (i < 64) {
            r->from[i] = m.from;
        }
        if (m.type == MSG_SEQ && seq == i) {
            IT_INC(r->in_order);
        }
        if (m.type == MSG_ASK && m.len == sizeof seq) {
            seq *= 2;
            (void)tr_thread_reply(self, &seq, sizeof seq);
        }
        /* Other requests are not replied to: the asker gets TR_ENOREPLY. */
        IT_INC(r->got);
    }
    IT_STORE(r->last, (int)st + 1000);
}

static void
test_send_to_thread_actor(void **state)
{
    tr_ref ref;
    tr_thread *t;
    tr_stats s;

    (void)state;
    g_rt = it_runtime(2, NULL);
    t = spawn_thread(g_rt, "counter", NULL, counting_main, &ref);
    for (uint32_t i = 0; i < 50; i++) {
        TR_ASSERT_OK(tr_send(g_rt, ref, MSG_SEQ, &i, sizeof i));
    }
    IT_WAIT_UNTIL(IT_LOAD(g.got) == 50);
    assert_int_equal(IT_LOAD(g.in_order), 50);
    assert_true(tr_ref_is_none(g.from[0])); /* sent from outside */
    s = it_stats(g_rt);
    assert_int_equal(s.spawned, 1);
    assert_int_equal(s.alive, 1);
    assert_int_equal(s.sent, 50);
    assert_int_equal(s.handled, 50);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
    assert_null(t);
    assert_int_equal(IT_LOAD(g.last) - 1000, TR_EDEAD);
    assert_int_equal(it_stats(g_rt).alive, 0);
    TR_ASSERT_STATUS(tr_send(g_rt, ref, MSG_SEQ, NULL, 0), TR_EDEAD);
}

/* A short receive on an empty mailbox, then one that does not wait. */
static void
timeout_main(tr_thread *self, void *arg)
{
    rec *r = arg;
    tr_thread_msg m;
    uint64_t t0 = tr_test_now_ns();

    r->timed = tr_thread_receive(self, &m, 50);
    r->timed_ns = tr_test_now_ns() - t0;
    r->extra[0] = tr_thread_receive(self, &m, 0);
    IT_STORE(r->ready, 1);
    counting_main(self, arg);
}

static void
test_receive_timeout(void **state)
{
    tr_ref ref;
    tr_thread *t;

    (void)state;
    g_rt = it_runtime(1, NULL);
    t = spawn_thread(g_rt, NULL, NULL, timeout_main, &ref);
    IT_WAIT_UNTIL(IT_LOAD(g.ready) == 1);
    TR_ASSERT_STATUS(g.timed, TR_ETIMEDOUT);
    assert_true(g.timed_ns >= 50u * 1000000u);
    TR_ASSERT_STATUS(g.extra[0], TR_ETIMEDOUT);
    /* Still an actor after timing out. */
    TR_ASSERT_OK(tr_send(g_rt, ref, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g.got) == 1);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
}

/* A one-worker runtime and a thread actor about to block in a receive. */
static tr_thread *
start_blocked(tr_ref *ref)
{
    tr_thread *t;

    g_rt = it_runtime(1, NULL);
    t = spawn_thread(g_rt, "blocked", NULL, counting_main, ref);
    IT_WAIT_UNTIL(IT_LOAD(g.ready) == 1);
    return t;
}

static void
test_stop_while_blocked_in_receive(void **state)
{
    tr_ref ref;
    tr_thread *t = start_blocked(&ref);

    (void)state;
    tr_test_sleep_ms(20); /* let it block in the receive */
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    IT_WAIT_UNTIL(IT_LOAD(g.last) != 0);
    assert_int_equal(IT_LOAD(g.last) - 1000, TR_EDEAD);
    TR_ASSERT_OK(tr_thread_join(&t));
    assert_int_equal(it_stats(g_rt).alive, 0);
    TR_ASSERT_STATUS(tr_stop(g_rt, ref), TR_EDEAD);
}

/* Shutdown stops a thread actor blocked in a receive, and the handle can
 * be joined after the runtime is gone. */
static void
test_shutdown_stops_thread_actor(void **state)
{
    tr_ref ref;
    tr_thread *t = start_blocked(&ref);

    (void)state;
    TR_ASSERT_OK(it_shutdown_bounded(g_rt, 0, IT_WAIT_MS));
    tr_runtime_destroy(&g_rt);
    TR_ASSERT_OK(tr_thread_join(&t));
    assert_int_equal(IT_LOAD(g.last) - 1000, TR_EDEAD);
}

/* Waits for the gate, then receives. */
static void
gated_main(tr_thread *self, void *arg)
{
    rec *r = arg;

    uint64_t deadline =
        tr_test_now_ns() + tr_test_scaled_ms(IT_WAIT_MS) * 1000000u;

    IT_STORE(r->ready, 1);
    /* Bounded, and no cmocka call off the test's thread: a gate never
     * opened shows as missing messages in the test. */
    while (IT_LOAD(r->gate) == 0 && tr_test_now_ns() < deadline) {
        tr_test_sleep_ms(1);
    }
    counting_main(self, arg);
}

static void
test_mailbox_reject(void **state)
{
    tr_mailbox_opts mb = {4, TR_REJECT};
    tr_ref ref;
    tr_thread *t;

    (void)state;
    g_rt = it_runtime(1, NULL);
    t = spawn_thread(g_rt, "gated", &mb, gated_main, &ref);
    for (uint32_t i = 0; i < 4; i++) {
        TR_ASSERT_OK(tr_send(g_rt, ref, MSG_SEQ, &i, sizeof i));
    }
    TR_ASSERT_STATUS(tr_send(g_rt, ref, MSG_SEQ, NULL, 0), TR_EFULL);
    assert_int_equal(it_stats(g_rt).rejected, 1);
    IT_STORE(g.gate, 1);
    IT_WAIT_UNTIL(IT_LOAD(g.got) == 4);
    assert_int_equal(IT_LOAD(g.in_order), 4);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
}

/* An outside sender blocks up to the send timeout on a full thread actor;
 * messages still queued when it stops are dead letters. */
static void
test_mailbox_backpressure_outside(void **state)
{
    tr_config cfg = {.send_timeout_ms = 50};
    tr_mailbox_opts mb = {2, TR_BACKPRESSURE};
    tr_ref ref;
    tr_thread *t;
    uint64_t t0;

    (void)state;
    g_rt = it_runtime(1, &cfg);
    t = spawn_thread(g_rt, "gated", &mb, gated_main, &ref);
    TR_ASSERT_OK(tr_send(g_rt, ref, MSG_PING, NULL, 0));
    TR_ASSERT_OK(tr_send(g_rt, ref, MSG_PING, NULL, 0));
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_send(g_rt, ref, MSG_PING, NULL, 0), TR_ETIMEDOUT);
    assert_true(tr_test_now_ns() - t0 >= 50u * 1000000u);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    IT_STORE(g.gate, 1);
    TR_ASSERT_OK(tr_thread_join(&t));
    /* The stop comes first (system lane): both queued ones are dead. */
    assert_int_equal(IT_LOAD(g.got), 0);
    assert_int_equal(it_dl_count(MSG_PING, TR_EDEAD), 2);
}

/* An actor sender to a full thread actor is held and muted, like any
 * receiver's; the held send goes in once the thread makes room. */
typedef struct flood {
    tr_ref to;
    uint32_t n;
} flood;

static _Atomic int g_flood_st[8];
static _Atomic int g_seen;

static tr_status
flood_go(tr_cx *cx, void *self, const flood *f)
{
    (void)self;
    for (uint32_t i = 0; i < f->n; i++) {
        tr_status st = tr_send(cx, f->to, MSG_SEQ, &i, sizeof i);

        IT_STORE(g_flood_st[i], (int)st + 1000);
        if (st != TR_OK) {
            break;
        }
    }
    return TR_OK;
}

static tr_status
flood_seen(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_STORE(g_seen, 1);
    return TR_OK;
}

TR_ACTOR(flood_actor, char, TR_ON(MSG_GO, flood, flood_go),
         TR_ON(MSG_SEEN, void, flood_seen));

static void
test_mailbox_backpressure_actor(void **state)
{
    tr_mailbox_opts mb = {2, TR_BACKPRESSURE};
    tr_ref ref, sender;
    tr_thread *t;
    flood f;

    (void)state;
    memset(g_flood_st, 0, sizeof g_flood_st);
    IT_STORE(g_seen, 0);
    g_rt = it_runtime(1, NULL);
    t = spawn_thread(g_rt, "gated", &mb, gated_main, &ref);
    sender = it_spawn(g_rt, &flood_actor, 0, 0, TR_BACKPRESSURE);
    f.to = ref;
    f.n = 4;
    TR_ASSERT_OK(tr_send(g_rt, sender, MSG_GO, &f, sizeof f));
    IT_WAIT_UNTIL(IT_LOAD(g_flood_st[2]) != 0);
    assert_int_equal(IT_LOAD(g_flood_st[0]) - 1000, TR_OK);
    assert_int_equal(IT_LOAD(g_flood_st[1]) - 1000, TR_OK);
    assert_int_equal(IT_LOAD(g_flood_st[2]) - 1000, TR_PENDING);
    assert_int_equal(IT_LOAD(g_flood_st[3]), 0); /* it stopped flooding */
    /* Muted: its next message waits. */
    TR_ASSERT_OK(tr_send(g_rt, sender, MSG_SEEN, NULL, 0));
    tr_test_sleep_ms(30);
    assert_int_equal(IT_LOAD(g_seen), 0);
    IT_STORE(g.gate, 1);
    IT_WAIT_UNTIL(IT_LOAD(g.got) == 3);
    IT_WAIT_UNTIL(IT_LOAD(g_seen) == 1);
    assert_int_equal(IT_LOAD(g.in_order), 3);
    assert_true(tr_ref_eq(g.from[2], sender));
    assert_int_equal(it_stats(g_rt).held, 1);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
}

/* An echo actor: answers PING with PONG to its sender, and a request
 * with its payload + 1. */
static tr_status
echo_ping(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    return tr_send(cx, tr_sender(cx), MSG_PONG, NULL, 0);
}

static tr_status
echo_ask(tr_cx *cx, void *self, const uint32_t *v)
{
    uint32_t r = *v + 1;

    (void)self;
    return tr_reply(cx, &r, sizeof r);
}

TR_ACTOR(echo_actor, char, TR_ON(MSG_PING, void, echo_ping),
         TR_ON(MSG_ASK, uint32_t, echo_ask));

static tr_ref g_echo;

/* Sends as itself and asks, then receives as counting_main does. */
static void
talker_main(tr_thread *self, void *arg)
{
    rec *r = arg;
    tr_runtime *rt = tr_thread_runtime(self);
    tr_thread_msg m;
    uint32_t v = 41, answer = 0;

    r->extra[0] = tr_send(rt, g_echo, MSG_PING, NULL, 0);
    r->extra[1] = tr_thread_receive(self, &m, RECV_MS);
    if (r->extra[1] == TR_OK) {
        r->from[0] = m.from;
        r->extra[2] = m.type == MSG_PONG ? TR_OK : TR_EBADMSG;
    }
    r->extra[3] = tr_ask_wait(rt, g_echo, MSG_ASK, &v, sizeof v, &answer,
                              sizeof answer, RECV_MS);
    if (answer != 42) {
        r->extra[3] = TR_EBADMSG;
    }
    IT_STORE(r->ready, 1);
    counting_main(self, arg);
}

static void
test_thread_sends_and_asks(void **state)
{
    tr_ref ref;
    tr_thread *t;
    uint32_t v = 21, answer = 0;

    (void)state;
    g_rt = it_runtime(2, NULL);
    g_echo = it_spawn(g_rt, &echo_actor, 0, 0, TR_BACKPRESSURE);
    t = spawn_thread(g_rt, "talker", NULL, talker_main, &ref);
    IT_WAIT_UNTIL(IT_LOAD(g.ready) == 1);
    TR_ASSERT_OK(g.extra[0]);
    TR_ASSERT_OK(g.extra[1]);
    TR_ASSERT_OK(g.extra[2]);
    TR_ASSERT_OK(g.extra[3]);
    assert_true(tr_ref_eq(g.from[0], g_echo));
    /* Asked from outside: tr_thread_reply answers. */
    TR_ASSERT_OK(tr_ask_wait(g_rt, ref, MSG_ASK, &v, sizeof v, &answer,
                             sizeof answer, RECV_MS));
    assert_int_equal(answer, 42);
    TR_ASSERT_STATUS(
        tr_ask_wait(g_rt, ref, MSG_PING, NULL, 0, NULL, 0, RECV_MS),
        TR_ENOREPLY);
    IT_WAIT_UNTIL(IT_LOAD(g.got) == 2);
    assert_int_equal(it_stats(g_rt).unanswered, 1);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
}

/* Returns at once: the actor ends and later sends find it dead. */
static void
quick_main(tr_thread *self, void *arg)
{
    (void)self;
    IT_STORE(((rec *)arg)->ready, 1);
}

static void
test_function_return_ends_actor(void **state)
{
    tr_ref ref;
    tr_thread *t;

    (void)state;
    g_rt = it_runtime(1, NULL);
    t = spawn_thread(g_rt, "quick", NULL, quick_main, &ref);
    TR_ASSERT_OK(tr_thread_join(&t));
    assert_int_equal(IT_LOAD(g.ready), 1);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    TR_ASSERT_STATUS(tr_send(g_rt, ref, MSG_PING, NULL, 0), TR_EDEAD);
}

/* Calls that only the thread itself may make, from elsewhere. */
static void
misuse_main(tr_thread *self, void *arg)
{
    rec *r = arg;
    tr_thread *me = self;

    r->extra[0] = tr_thread_join(&me);            /* on itself */
    r->extra[1] = tr_thread_reply(self, NULL, 0); /* nothing received */
    counting_main(self, arg);
}

static void
test_misuse(void **state)
{
    tr_mailbox_opts bad = {0, TR_REJECT};
    tr_thread_msg m;
    tr_ref ref;
    tr_thread *t = NULL;

    (void)state;
    g_rt = it_runtime(1, NULL);
    TR_ASSERT_STATUS(
        tr_thread_spawn(NULL, "x", NULL, counting_main, &g, &ref, &t),
        TR_EINVAL);
    TR_ASSERT_STATUS(tr_thread_spawn(g_rt, "x", NULL, NULL, &g, &ref, &t),
                     TR_EINVAL);
    TR_ASSERT_STATUS(
        tr_thread_spawn(g_rt, "x", &bad, counting_main, &g, &ref, &t),
        TR_EINVAL);
    assert_null(t);
    assert_int_equal(it_stats(g_rt).alive, 0);
    TR_ASSERT_STATUS(tr_thread_receive(NULL, &m, 0), TR_EINVAL);
    TR_ASSERT_STATUS(tr_thread_reply(NULL, NULL, 0), TR_EINVAL);
    assert_true(tr_ref_is_none(tr_thread_ref(NULL)));
    assert_null(tr_thread_runtime(NULL));
    TR_ASSERT_OK(tr_thread_join(NULL));
    TR_ASSERT_OK(tr_thread_join(&t));
    t = spawn_thread(g_rt, "misuse", NULL, misuse_main, &ref);
    IT_WAIT_UNTIL(IT_LOAD(g.ready) == 1);
    TR_ASSERT_STATUS(g.extra[0], TR_ESTATE);
    TR_ASSERT_STATUS(g.extra[1], TR_EINVAL);
    /* Not the thread's own thread. */
    TR_ASSERT_STATUS(tr_thread_receive(t, &m, 0), TR_ESTATE);
    TR_ASSERT_STATUS(tr_thread_reply(t, NULL, 0), TR_ESTATE);
    TR_ASSERT_OK(tr_stop(g_rt, ref));
    TR_ASSERT_OK(tr_thread_join(&t));
    /* Spawning after shutdown began. */
    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 0));
    TR_ASSERT_STATUS(
        tr_thread_spawn(g_rt, "late", NULL, counting_main, &g, &ref, &t),
        TR_ESHUTDOWN);
    assert_null(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_to_thread_actor),
        T(test_receive_timeout),
        T(test_stop_while_blocked_in_receive),
        T(test_shutdown_stops_thread_actor),
        T(test_mailbox_reject),
        T(test_mailbox_backpressure_outside),
        T(test_mailbox_backpressure_actor),
        T(test_thread_sends_and_asks),
        T(test_function_return_ends_actor),
        T(test_misuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
