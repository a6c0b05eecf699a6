/* Watching ZeroMQ sockets: an actor watches a socket's ZMQ_FD in edge mode
 * and, on each readiness (and once after watching), re-checks ZMQ_EVENTS
 * and receives until ZMQ_POLLIN is gone. ZMQ_FD only signals changes, and
 * a send on the socket can consume a signal, so this loop is the whole
 * contract. Exercised with PUSH/PULL over inproc (messages queued before
 * the watch included) and PAIR over TCP loopback (an echo that sends from
 * the handler). Links libzmq (through pkg-config); troupe itself does not. */
#include "itest.h"

#include <zmq.h>

enum {
    MSG_READY = 1,
};

#define N_PUSH 2000u
#define N_ECHO 500u

static struct {
    _Atomic uint64_t got;    /* messages received by the actor */
    _Atomic uint64_t bad;    /* out of order or failed calls */
    _Atomic uint64_t msgs;   /* readiness messages handled */
    _Atomic uint64_t echoed; /* replies sent (PAIR) */
} g;

typedef struct zstate {
    void *sock;
    int echo; /* send each message back */
    uint32_t next;
    tr_watch w;
} zstate;

typedef struct zarg {
    void *sock;
    int echo;
} zarg;

/* Receives until ZMQ_EVENTS has no POLLIN. Every zmq call may consume the
 * descriptor's signal, so the loop re-checks after each one. */
static void
drain(zstate *s)
{
    for (;;) {
        int ev = 0;
        size_t len = sizeof ev;
        uint32_t seq;

        if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &len) != 0) {
            IT_INC(g.bad);
            return;
        }
        if (!(ev & ZMQ_POLLIN)) {
            return;
        }
        if (zmq_recv(s->sock, &seq, sizeof seq, ZMQ_DONTWAIT) !=
            (int)sizeof seq) {
            if (zmq_errno() != EAGAIN) {
                IT_INC(g.bad);
            }
            continue;
        }
        if (seq != s->next++) {
            IT_INC(g.bad);
        }
        IT_INC(g.got);
        if (s->echo) {
            if (zmq_send(s->sock, &seq, sizeof seq, ZMQ_DONTWAIT) ==
                (int)sizeof seq) {
                IT_INC(g.echoed);
            } else {
                IT_INC(g.bad);
            }
        }
    }
}

static tr_status
z_init(tr_cx *cx, zstate *self, const zarg *a)
{
    int fd;
    size_t len = sizeof fd;
    tr_status st;

    self->sock = a->sock;
    self->echo = a->echo;
    if (zmq_getsockopt(self->sock, ZMQ_FD, &fd, &len) != 0) {
        return TR_EFAILED;
    }
    st = tr_watch_fd(cx, fd, TR_IO_READ, MSG_READY, TR_WATCH_EDGE, &self->w);
    if (st != TR_OK) {
        return st;
    }
    /* Messages that came before the watch raised no edge we will see. */
    drain(self);
    return TR_OK;
}

static tr_status
z_ready(tr_cx *cx, zstate *self, const tr_io_event *ev)
{
    (void)cx;
    if (!tr_watch_eq(ev->watch, self->w) || !(ev->events & TR_IO_READ)) {
        IT_INC(g.bad);
    }
    IT_INC(g.msgs);
    drain(self);
    return TR_OK;
}

static tr_status
z_term(tr_cx *cx, zstate *self, const tr_reason *why)
{
    (void)why;
    /* Unwatch before the socket (and its ZMQ_FD) goes. */
    if (tr_unwatch(cx, self->w) != TR_OK) {
        IT_INC(g.bad);
    }
    return TR_OK;
}

TR_ACTOR(zactor, zstate, TR_ON_INIT(zarg, z_init),
         TR_ON(MSG_READY, tr_io_event, z_ready), TR_ON_TERMINATE(z_term));

static int
setup(void **state)
{
    memset(&g, 0, sizeof g);
    return it_setup(state);
}

static void *
zsock(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    int zero = 0;

    assert_non_null(s);
    assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero), 0);
    return s;
}

static tr_ref
spawn_z(tr_runtime *rt, void *sock, int echo)
{
    zarg a = {sock, echo};
    tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};
    tr_ref r = TR_NOREF;

    TR_ASSERT_OK(tr_spawn(rt, &zactor, &o, &r));
    return r;
}

static void
stop_and_wait(tr_runtime *rt, tr_ref a)
{
    TR_ASSERT_OK(tr_stop(rt, a));
    IT_WAIT_UNTIL(it_stats(rt).alive == 0);
    assert_int_equal(it_stats(rt).watches, 0);
}

/* PUSH/PULL over inproc: a tenth of the messages is queued before the
 * actor watches; all arrive, in order, exactly once. */
static void
test_push_pull_inproc(void **state)
{
    void *ctx = zmq_ctx_new();
    void *push = zsock(ctx, ZMQ_PUSH), *pull = zsock(ctx, ZMQ_PULL);
    tr_ref a;
    uint32_t i;

    (void)state;
    assert_int_equal(zmq_bind(pull, "inproc://io-test"), 0);
    assert_int_equal(zmq_connect(push, "inproc://io-test"), 0);
    for (i = 0; i < N_PUSH / 10; i++) {
        assert_int_equal(zmq_send(push, &i, sizeof i, 0), (int)sizeof i);
    }
    g_rt = it_runtime(2, NULL);
    a = spawn_z(g_rt, pull, 0);
    for (; i < N_PUSH; i++) {
        assert_int_equal(zmq_send(push, &i, sizeof i, 0), (int)sizeof i);
        if (i % 100 == 0) {
            IT_WAIT_UNTIL(IT_LOAD(g.got) == i + 1);
        }
    }
    IT_WAIT_UNTIL(IT_LOAD(g.got) == N_PUSH);
    stop_and_wait(g_rt, a);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.bad), 0);
    assert_true(IT_LOAD(g.msgs) >= 1);
    assert_int_equal(it_dl_total(), 0);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}

/* PAIR over TCP loopback: the actor echoes each message from its handler
 * (a send that can eat the descriptor's signal); the test thread waits for
 * each reply with a receive timeout, so a lost edge fails the test. */
static void
test_pair_tcp_echo(void **state)
{
    void *ctx = zmq_ctx_new();
    void *mine = zsock(ctx, ZMQ_PAIR), *theirs = zsock(ctx, ZMQ_PAIR);
    int tmo = (int)tr_test_scaled_ms(IT_WAIT_MS);
    char ep[128];
    size_t len = sizeof ep;
    tr_ref a;

    (void)state;
    assert_int_equal(zmq_setsockopt(mine, ZMQ_RCVTIMEO, &tmo, sizeof tmo), 0);
    assert_int_equal(zmq_bind(theirs, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(theirs, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    assert_int_equal(zmq_connect(mine, ep), 0);
    g_rt = it_runtime(2, NULL);
    a = spawn_z(g_rt, theirs, 1);
    for (uint32_t i = 0; i < N_ECHO; i++) {
        uint32_t back = UINT32_MAX;

        assert_int_equal(zmq_send(mine, &i, sizeof i, 0), (int)sizeof i);
        assert_int_equal(zmq_recv(mine, &back, sizeof back, 0),
                         (int)sizeof back);
        assert_int_equal(back, i);
    }
    assert_int_equal(IT_LOAD(g.got), N_ECHO);
    stop_and_wait(g_rt, a);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.echoed), N_ECHO);
    assert_int_equal(IT_LOAD(g.bad), 0);
    zmq_close(mine);
    zmq_close(theirs);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_pull_inproc, setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_pair_tcp_echo, setup, it_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
