/* Async handlers and request/reply: awaiting a reply, a timer and a held
 * send; timeouts, deadlines and their inheritance; the reply obligation
 * (forward, decline, TR_ENOREPLY, TR_EDEAD); late replies; asks whose reply
 * comes as a message; request cycles; stopping a suspended actor. */
#include "itest.h"

#include <stdio.h>

enum {
    MSG_DOUBLE = 1, /* uint64_t: replies 2x */
    MSG_SLOW,       /* uint64_t ms: sleeps (awaiting), then replies ms */
    MSG_SILENT,     /* uint64_t: returns without answering */
    MSG_DIE,        /* uint64_t: exits without answering */
    MSG_DECLINE,    /* uint64_t: declines with TR_ELIMIT */
    MSG_TWICE,      /* uint64_t: replies twice */
    MSG_RELAY,      /* struct relay: awaits an ask to `back`, replies it */
    MSG_FWD,        /* uint64_t: forwarded to `back` as is */
    MSG_NOTE,       /* uint64_t: logged */
    MSG_RING,       /* struct ring: asks the next actor of the ring */
    MSG_PUSH,       /* struct push: awaits a send */
    MSG_START,      /* struct relay: a tr_ask() whose reply is a message */
};

/* ---- What handlers saw (asserted by the tests) ------------------------- */

#define LOG_MAX 64
static struct {
    _Atomic int claimed;
    _Atomic int n; /* events written: ev[0..n) are visible after acquire */
    uint64_t ev[LOG_MAX];
} g_log;

static void
log_event(uint64_t ev)
{
    int i = atomic_fetch_add_explicit(&g_log.claimed, 1, memory_order_relaxed);

    if (i < LOG_MAX) {
        g_log.ev[i] = ev;
    }
    /* release: publishes ev[i] to the test's acquire load of n. */
    atomic_fetch_add_explicit(&g_log.n, 1, memory_order_release);
}

static _Atomic int g_await_st;   /* last await status seen, + 100000 */
static _Atomic int g_second_st;  /* a second reply's status, + 100000 */
static _Atomic int g_resumed;    /* handlers resumed */
static _Atomic int g_terminated; /* terminate hooks run */
static _Atomic int g_suspended;  /* handlers that reached their await */
static char g_detail[TR_REASON_TEXT * 4];
static _Atomic int g_detail_set;

#define ST(v) ((int)(v) + 100000)

static void
reset(void)
{
    memset(&g_log, 0, sizeof g_log);
    IT_STORE(g_await_st, 0);
    IT_STORE(g_second_st, 0);
    IT_STORE(g_resumed, 0);
    IT_STORE(g_terminated, 0);
    IT_STORE(g_suspended, 0);
    IT_STORE(g_detail_set, 0);
    g_detail[0] = '\0';
}

static void
record_await(tr_cx *cx)
{
    if (tr_await_status(cx) == TR_ECYCLE && !IT_LOAD(g_detail_set)) {
        snprintf(g_detail, sizeof g_detail, "%s", tr_await_detail(cx));
        IT_STORE(g_detail_set, 1);
    }
    IT_STORE(g_await_st, ST(tr_await_status(cx)));
}

/* ---- back: answers requests in every way there is ---------------------- */

static tr_status
back_double(tr_cx *cx, void *self, const uint64_t *v)
{
    uint64_t r = *v * 2;

    (void)self;
    return tr_reply(cx, &r, sizeof r);
}

static tr_status
back_slow(tr_cx *cx, void *self, const uint64_t *ms)
{
    (void)self;
    TR_ASYNC_BEGIN(cx);
    IT_INC(g_suspended);
    TR_AWAIT_SLEEP(cx, (uint32_t)*ms);
    IT_INC(g_resumed);
    /* a plain message (no asker) needs no reply */
    TR_ASYNC_END(cx, tr_msg_corr(cx) ? tr_reply(cx, ms, sizeof *ms) : TR_OK);
}

static tr_status
back_silent(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)cx;
    (void)self;
    (void)v;
    return TR_OK;
}

static tr_status
back_die(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)self;
    (void)v;
    return tr_exit(cx, 0, NULL);
}

static tr_status
back_decline(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)self;
    (void)v;
    return tr_reply_error(cx, TR_ELIMIT);
}

static tr_status
back_twice(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)self;
    TR_ASSERT_OK(tr_reply(cx, v, sizeof *v));
    IT_STORE(g_second_st, ST(tr_reply(cx, v, sizeof *v)));
    return TR_OK;
}

static tr_status
back_note(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)cx;
    (void)self;
    log_event(*v);
    return TR_OK;
}

static tr_status
back_terminate(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    (void)why;
    IT_INC(g_terminated);
    return TR_OK;
}

TR_ACTOR(back_actor, char, TR_ON(MSG_DOUBLE, uint64_t, back_double),
         TR_ON(MSG_FWD, uint64_t, back_double),
         TR_ON(MSG_SLOW, uint64_t, back_slow),
         TR_ON(MSG_SILENT, uint64_t, back_silent),
         TR_ON(MSG_DIE, uint64_t, back_die),
         TR_ON(MSG_DECLINE, uint64_t, back_decline),
         TR_ON(MSG_TWICE, uint64_t, back_twice),
         TR_ON(MSG_NOTE, uint64_t, back_note), TR_ON_TERMINATE(back_terminate));

/* ---- front: awaits asks to back, forwards, asks without waiting -------- */

struct relay {
    uint32_t type;
    uint32_t timeout_ms;
    uint64_t arg;
};

struct front {
    tr_ref back;
    uint64_t value;
    uint64_t corr;
    _Atomic int replies;
};

static tr_status
front_init(tr_cx *cx, struct front *self, const tr_ref *back)
{
    (void)cx;
    self->back = *back;
    return TR_OK;
}

static tr_status
front_relay(tr_cx *cx, struct front *self, const struct relay *r)
{
    TR_ASYNC_BEGIN(cx);
    self->value = 0;
    IT_INC(g_suspended);
    TR_AWAIT_ASK(cx, self->back, r->type, &r->arg, sizeof r->arg, &self->value,
                 sizeof self->value, r->timeout_ms);
    IT_INC(g_resumed);
    record_await(cx);
    log_event(1000 + self->value);
    if (tr_await_status(cx) != TR_OK) {
        return tr_reply_error(cx, tr_await_status(cx));
    }
    TR_ASYNC_END(cx, tr_msg_corr(cx)
                         ? tr_reply(cx, &self->value, sizeof self->value)
                         : TR_OK);
}

static tr_status
front_fwd(tr_cx *cx, struct front *self, const uint64_t *v)
{
    (void)v;
    return tr_forward(cx, self->back);
}

static tr_status
front_start(tr_cx *cx, struct front *self, const struct relay *r)
{
    return tr_ask(cx, self->back, r->type, &r->arg, sizeof r->arg,
                  r->timeout_ms, &self->corr);
}

static tr_status
front_reply(tr_cx *cx, struct front *self, const void *data)
{
    uint64_t v = 0;

    if (tr_msg_corr(cx) != self->corr) {
        log_event(999999); /* a reply to an ask it never made */
    }
    if (tr_msg_status(cx) == TR_OK && tr_msg_size(cx) == sizeof v) {
        memcpy(&v, data, sizeof v);
    }
    IT_STORE(g_await_st, ST(tr_msg_status(cx)));
    log_event(2000 + v);
    atomic_fetch_add(&self->replies, 1);
    return TR_OK;
}

TR_ACTOR(front_actor, struct front, TR_ON_INIT(tr_ref, front_init),
         TR_ON(MSG_RELAY, struct relay, front_relay),
         TR_ON(MSG_FWD, uint64_t, front_fwd),
         TR_ON(MSG_NOTE, uint64_t, back_note),
         TR_ON(MSG_START, struct relay, front_start), TR_ON_REPLY(front_reply),
         TR_ON_TERMINATE(back_terminate));

static tr_ref
spawn_back(void)
{
    return it_spawn(g_rt, &back_actor, 0, 0, TR_BACKPRESSURE);
}

static tr_ref
spawn_front(tr_ref back)
{
    tr_spawn_opts o = {.arg = &back, .arg_len = sizeof back};
    tr_ref r = TR_NOREF;

    TR_ASSERT_OK(tr_spawn(g_rt, &front_actor, &o, &r));
    return r;
}

/* A fresh runtime with a back actor and a front actor that asks it. */
static void
start_pair(tr_ref *back, tr_ref *front)
{
    reset();
    g_rt = it_runtime(2, NULL);
    *back = spawn_back();
    *front = spawn_front(*back);
}

static tr_status
relay(tr_ref front, uint32_t type, uint64_t arg, uint32_t timeout_ms,
      uint64_t *out, uint32_t outer_ms)
{
    struct relay r = {type, timeout_ms, arg};

    return tr_ask_wait(g_rt, front, MSG_RELAY, &r, sizeof r, out, sizeof *out,
                       outer_ms);
}

/* ---- Awaiting a reply -------------------------------------------------- */

static void
test_await_ask_reply(void **state)
{
    tr_ref back, front;
    uint64_t out = 0;

    (void)state;
    start_pair(&back, &front);
    for (uint64_t i = 1; i <= 100; i++) {
        TR_ASSERT_OK(relay(front, MSG_DOUBLE, i, 5000, &out, 10000));
        assert_int_equal(out, 2 * i);
    }
    assert_int_equal(IT_LOAD(g_resumed), 100);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_OK));
    assert_int_equal(it_stats(g_rt).unanswered, 0);
    assert_int_equal(it_stats(g_rt).late_replies, 0);
}

static void
quiet(void *arg, tr_log_level level, const char *text)
{
    (void)arg;
    (void)level;
    (void)text;
}

/* Each way a request can go unanswered reaches the awaiting handler as a
 * status, at once. */
static void
test_await_ask_errors(void **state)
{
    static const struct {
        uint32_t type;
        tr_status want;
    } cases[] = {
        {MSG_SILENT, TR_ENOREPLY}, {MSG_DECLINE, TR_ELIMIT},
        {MSG_DIE, TR_EDEAD},       {MSG_NOTE + 100, TR_EUNHANDLED},
        {MSG_DOUBLE, TR_OK},
    };
    tr_config cfg = {.log_fn = quiet};
    uint64_t out;

    (void)state;
    reset();
    g_rt = it_runtime(2, &cfg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t t0 = tr_test_now_ns();
        /* a fresh pair each time: MSG_DIE ends its back */
        tr_ref front = spawn_front(spawn_back());
        tr_status st = relay(front, cases[i].type, 7, 10000, &out, 20000);

        assert_int_equal(IT_LOAD(g_await_st), ST(cases[i].want));
        TR_ASSERT_STATUS(st, cases[i].want);
        /* At once, not at the 10 s deadline. */
        assert_true(tr_test_now_ns() - t0 < 5000u * 1000000u);
    }
    assert_int_equal(it_stats(g_rt).unanswered, 1);
}

/* A request whose handler awaits longer than the asker's timeout: the
 * asker resumes with TR_ETIMEDOUT; the reply that comes later is dropped
 * and counted, never delivered. */
static void
test_await_ask_timeout_and_late_reply(void **state)
{
    tr_ref back, front;
    uint64_t out = 0, t0;

    (void)state;
    start_pair(&back, &front);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(relay(front, MSG_SLOW, 300, 30, &out, 10000),
                     TR_ETIMEDOUT);
    assert_true(tr_test_now_ns() - t0 >= 30u * 1000000u);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_ETIMEDOUT));
    IT_WAIT_UNTIL(it_stats(g_rt).late_replies == 1);
    IT_WAIT_UNTIL(it_dl_count(TR_MSG_REPLY, TR_ETIMEDOUT) == 1);
    /* front goes on working */
    TR_ASSERT_OK(relay(front, MSG_DOUBLE, 4, 5000, &out, 10000));
    assert_int_equal(out, 8);
    assert_int_equal(it_stats(g_rt).late_replies, 1);
}

/* While a handler is suspended its other user messages wait, in order,
 * and run after it finishes. */
static void
test_suspended_actor_queues_user_messages(void **state)
{
    tr_ref back, front;
    struct relay r = {MSG_SLOW, 5000, 100};
    uint64_t note;

    (void)state;
    start_pair(&back, &front);
    TR_ASSERT_OK(tr_send(g_rt, front, MSG_RELAY, &r, sizeof r));
    IT_WAIT_UNTIL(IT_LOAD(g_suspended) == 2); /* front, then back */
    for (note = 1; note <= 3; note++) {
        TR_ASSERT_OK(tr_send(g_rt, front, MSG_NOTE, &note, sizeof note));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_log.n) == 4);
    assert_int_equal(g_log.ev[0], 1000 + 100); /* the relay finished first */
    assert_int_equal(g_log.ev[1], 1);
    assert_int_equal(g_log.ev[2], 2);
    assert_int_equal(g_log.ev[3], 3);
}

/* Stopping a suspended actor ends it at once: its terminate hook runs, its
 * own asker gets TR_EDEAD, the reply it awaited arrives late. */
static void *
stopper(void *arg)
{
    tr_ref front = *(tr_ref *)arg;

    IT_WAIT_UNTIL(IT_LOAD(g_suspended) == 2);
    TR_ASSERT_OK(tr_stop(g_rt, front));
    return NULL;
}

static void
test_stop_while_awaiting(void **state)
{
    tr_ref back, front;
    uint64_t out = 0, t0;
    pthread_t th;

    (void)state;
    start_pair(&back, &front);
    assert_int_equal(pthread_create(&th, NULL, stopper, &front), 0);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(relay(front, MSG_SLOW, 400, 10000, &out, 20000), TR_EDEAD);
    assert_int_equal(pthread_join(th, NULL), 0);
    /* well before back's 400 ms sleep is over */
    assert_true(tr_test_now_ns() - t0 < 5000u * 1000000u);
    IT_WAIT_UNTIL(IT_LOAD(g_terminated) == 1);
    assert_int_equal(IT_LOAD(g_resumed), 0);
    /* back replies after its sleep, to a dead asker */
    IT_WAIT_UNTIL(IT_LOAD(g_resumed) == 1);
    IT_WAIT_UNTIL(it_dl_count(TR_MSG_REPLY, TR_EDEAD) == 1);
    assert_int_equal(IT_LOAD(g_terminated), 1);
}

/* ---- Deadlines --------------------------------------------------------- */

/* An ask made while handling a request inherits what is left of its
 * deadline: front asks back with 10 s, but its own asker gave 60 ms. */
static void
test_deadline_is_inherited(void **state)
{
    tr_ref back, front;
    uint64_t out = 0, t0;

    (void)state;
    start_pair(&back, &front);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(relay(front, MSG_SLOW, 1000, 10000, &out, 60),
                     TR_ETIMEDOUT);
    IT_WAIT_UNTIL(IT_LOAD(g_await_st) != 0);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_ETIMEDOUT));
    /* front's await ended near 60 ms, not 10 s */
    assert_true(tr_test_now_ns() - t0 < 900u * 1000000u);
}

/* A request still queued when its deadline passes is not handed to its
 * handler: counted as expired, the asker told TR_ETIMEDOUT. */
static void
test_expired_request_is_not_handled(void **state)
{
    tr_ref back;
    uint64_t ms = 300, v = 1, out;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    back = spawn_back();
    /* back suspends for 300 ms; its user lane waits meanwhile */
    TR_ASSERT_OK(tr_send(g_rt, back, MSG_SLOW, &ms, sizeof ms));
    IT_WAIT_UNTIL(IT_LOAD(g_suspended) == 1);
    TR_ASSERT_STATUS(
        tr_ask_wait(g_rt, back, MSG_NOTE, &v, sizeof v, &out, sizeof out, 30),
        TR_ETIMEDOUT);
    IT_WAIT_UNTIL(it_stats(g_rt).expired == 1);
    IT_WAIT_UNTIL(IT_LOAD(g_resumed) == 1);
    assert_int_equal(IT_LOAD(g_log.n), 0); /* MSG_NOTE never ran */
}

/* ---- The reply obligation ---------------------------------------------- */

static void
test_forward_answers_the_original_asker(void **state)
{
    tr_ref back, front;
    uint64_t v = 21, out = 0;

    (void)state;
    start_pair(&back, &front);
    TR_ASSERT_OK(tr_ask_wait(g_rt, front, MSG_FWD, &v, sizeof v, &out,
                             sizeof out, 5000));
    assert_int_equal(out, 42);
    assert_int_equal(it_stats(g_rt).unanswered, 0);
}

static void
test_second_reply_is_refused(void **state)
{
    tr_ref back;
    uint64_t v = 5, out = 0;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    back = spawn_back();
    TR_ASSERT_OK(tr_ask_wait(g_rt, back, MSG_TWICE, &v, sizeof v, &out,
                             sizeof out, 5000));
    assert_int_equal(out, 5);
    IT_WAIT_UNTIL(IT_LOAD(g_second_st) != 0);
    assert_int_equal(IT_LOAD(g_second_st), ST(TR_ESTATE));
}

/* ---- Asks whose reply is a message ------------------------------------- */

static void
test_ask_reply_as_message(void **state)
{
    tr_ref back, front;
    struct relay r = {MSG_DOUBLE, 5000, 8};

    (void)state;
    start_pair(&back, &front);
    TR_ASSERT_OK(tr_send(g_rt, front, MSG_START, &r, sizeof r));
    IT_WAIT_UNTIL(IT_LOAD(g_log.n) == 1);
    assert_int_equal(g_log.ev[0], 2000 + 16);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_OK));
    /* an error reply comes the same way */
    r.type = MSG_DECLINE;
    TR_ASSERT_OK(tr_send(g_rt, front, MSG_START, &r, sizeof r));
    IT_WAIT_UNTIL(IT_LOAD(g_log.n) == 2);
    assert_int_equal(g_log.ev[1], 2000);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_ELIMIT));
}

/* A tr_ask() past its deadline gets a TR_ETIMEDOUT reply; the real one,
 * when it comes, is dropped and counted: the handler runs once. */
static void
test_ask_reply_as_message_timeout(void **state)
{
    tr_ref back, front;
    struct relay r = {MSG_SLOW, 30, 200};

    (void)state;
    start_pair(&back, &front);
    TR_ASSERT_OK(tr_send(g_rt, front, MSG_START, &r, sizeof r));
    IT_WAIT_UNTIL(IT_LOAD(g_log.n) == 1);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_ETIMEDOUT));
    IT_WAIT_UNTIL(it_stats(g_rt).late_replies == 1);
    IT_WAIT_UNTIL(it_dl_count(TR_MSG_REPLY, TR_ETIMEDOUT) == 1);
    assert_int_equal(IT_LOAD(g_log.n), 1);
    assert_int_equal(g_log.ev[0], 2000);
}

/* ---- Request cycles ---------------------------------------------------- */

#define RING_MAX 4
struct ring {
    tr_ref refs[RING_MAX];
    uint32_t n, i;
};

struct ringer {
    uint64_t value;
    struct ring next;
};

static tr_status
ring_ask(tr_cx *cx, struct ringer *self, const struct ring *m)
{
    TR_ASYNC_BEGIN(cx);
    self->next = *m;
    self->next.i = m->i + 1;
    TR_AWAIT_ASK(cx, m->refs[(m->i + 1) % m->n], MSG_RING, &self->next,
                 sizeof self->next, &self->value, sizeof self->value, 5000);
    record_await(cx);
    if (tr_await_status(cx) != TR_OK) {
        return tr_reply_error(cx, tr_await_status(cx));
    }
    TR_ASYNC_END(cx, tr_reply(cx, &self->value, sizeof self->value));
}

TR_ACTOR(ring_actor, struct ringer, TR_ON(MSG_RING, struct ring, ring_ask));

static void
check_cycle(uint32_t n)
{
    struct ring r = {.n = n, .i = 0};
    uint64_t out, t0;
    int arrows = 0;

    reset();
    g_rt = it_runtime(2, NULL);
    for (uint32_t i = 0; i < n; i++) {
        r.refs[i] = it_spawn(g_rt, &ring_actor, 0, 0, TR_BACKPRESSURE);
    }
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, r.refs[0], MSG_RING, &r, sizeof r, &out,
                                 sizeof out, 10000),
                     TR_ECYCLE);
    assert_true(tr_test_now_ns() - t0 < 4000u * 1000000u); /* at once */
    IT_WAIT_UNTIL(IT_LOAD(g_detail_set) == 1);
    assert_non_null(strstr(g_detail, "ring_actor#"));
    for (const char *p = g_detail; (p = strstr(p, "->")) != NULL; p++) {
        arrows++;
    }
    assert_int_equal(arrows, (int)n);
}

static void
test_cycle_of_two(void **state)
{
    (void)state;
    check_cycle(2);
}

static void
test_cycle_of_three(void **state)
{
    (void)state;
    check_cycle(3);
}

/* B answers A's awaited ask, then at once asks A: A still has to resume,
 * but it waits on no one any more, so that is no cycle. */
enum { MSG_PAIR_GO = 40, MSG_PAIR_ASK };

struct pairer {
    uint64_t value;
    tr_ref me;
};

static _Atomic int g_back_st;

static tr_status
pair_go(tr_cx *cx, struct pairer *self, const tr_ref *other)
{
    TR_ASYNC_BEGIN(cx);
    self->me = tr_self(cx);
    TR_AWAIT_ASK(cx, *other, MSG_PAIR_ASK, &self->me, sizeof self->me,
                 &self->value, sizeof self->value, 5000);
    record_await(cx);
    TR_ASYNC_END(cx, TR_OK);
}

static tr_status
pair_ask(tr_cx *cx, struct pairer *self, const tr_ref *asker)
{
    static const uint64_t v = 5;

    TR_ASYNC_BEGIN(cx);
    if (tr_reply(cx, &v, sizeof v) != TR_OK) {
        IT_STORE(g_back_st, ST(TR_EFAILED)); /* fails the test */
        return TR_OK;
    }
    TR_AWAIT_ASK(cx, *asker, MSG_DOUBLE, &v, sizeof v, &self->value,
                 sizeof self->value, 5000);
    IT_STORE(g_back_st, ST(tr_await_status(cx)));
    TR_ASYNC_END(cx, TR_OK);
}

TR_ACTOR(pair_actor, struct pairer, TR_ON(MSG_PAIR_GO, tr_ref, pair_go),
         TR_ON(MSG_PAIR_ASK, tr_ref, pair_ask),
         TR_ON(MSG_DOUBLE, uint64_t, back_double));

static void
test_answered_ask_is_no_cycle(void **state)
{
    (void)state;
    for (int round = 0; round < 50; round++) {
        tr_ref a, b;

        reset();
        IT_STORE(g_back_st, 0);
        g_rt = it_runtime(round % 2 + 1, NULL);
        a = it_spawn(g_rt, &pair_actor, 0, 0, TR_BACKPRESSURE);
        b = it_spawn(g_rt, &pair_actor, 0, 0, TR_BACKPRESSURE);
        TR_ASSERT_OK(tr_send(g_rt, a, MSG_PAIR_GO, &b, sizeof b));
        IT_WAIT_UNTIL(IT_LOAD(g_back_st) != 0);
        assert_int_equal(IT_LOAD(g_back_st), ST(TR_OK));
        IT_WAIT_UNTIL(IT_LOAD(g_await_st) != 0);
        assert_int_equal(IT_LOAD(g_await_st), ST(TR_OK));
        tr_runtime_destroy(&g_rt);
    }
}

/* ---- Awaiting a held send and a timer ---------------------------------- */

struct push {
    tr_ref to;
    uint32_t timeout_ms;
};

static tr_status
pusher_push(tr_cx *cx, void *self, const struct push *p)
{
    static const uint64_t v = 77;

    (void)self;
    TR_ASYNC_BEGIN(cx);
    TR_AWAIT_SEND(cx, p->to, MSG_NOTE, &v, sizeof v, p->timeout_ms);
    record_await(cx);
    TR_ASYNC_END(cx, TR_OK);
}

TR_ACTOR(pusher_actor, char, TR_ON(MSG_PUSH, struct push, pusher_push));

/* A receiver of capacity 1 suspended in a sleep with one message queued is
 * full for as long as it sleeps. */
static tr_ref
full_receiver(uint64_t sleep_ms)
{
    tr_ref rx = it_spawn(g_rt, &back_actor, 1, 1, TR_BACKPRESSURE);
    uint64_t note = 1;

    TR_ASSERT_OK(tr_send(g_rt, rx, MSG_SLOW, &sleep_ms, sizeof sleep_ms));
    IT_WAIT_UNTIL(IT_LOAD(g_suspended) == 1);
    TR_ASSERT_OK(tr_send(g_rt, rx, MSG_NOTE, &note, sizeof note));
    return rx;
}

static void
test_await_send_delivers(void **state)
{
    struct push p;
    tr_ref pusher;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    p.to = full_receiver(150);
    p.timeout_ms = 10000;
    pusher = it_spawn(g_rt, &pusher_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, pusher, MSG_PUSH, &p, sizeof p));
    IT_WAIT_UNTIL(IT_LOAD(g_await_st) != 0);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_OK));
    IT_WAIT_UNTIL(IT_LOAD(g_log.n) == 2);
    assert_int_equal(g_log.ev[0], 1);
    assert_int_equal(g_log.ev[1], 77);
    assert_true(it_stats(g_rt).held >= 1);
}

static void
test_await_send_timeout_takes_it_back(void **state)
{
    struct push p;
    tr_ref pusher;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    p.to = full_receiver(300);
    p.timeout_ms = 20;
    pusher = it_spawn(g_rt, &pusher_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, pusher, MSG_PUSH, &p, sizeof p));
    IT_WAIT_UNTIL(IT_LOAD(g_await_st) != 0);
    assert_int_equal(IT_LOAD(g_await_st), ST(TR_ETIMEDOUT));
    /* the receiver wakes, handles its note, and never gets the 77 */
    IT_WAIT_UNTIL(IT_LOAD(g_resumed) == 1);
    IT_WAIT_UNTIL(IT_LOAD(g_log.n) == 1);
    tr_test_sleep_ms(50);
    assert_int_equal(IT_LOAD(g_log.n), 1);
    assert_int_equal(g_log.ev[0], 1);
}

static void
test_await_sleep(void **state)
{
    tr_ref back;
    uint64_t ms = 40, out = 0, t0;

    (void)state;
    reset();
    g_rt = it_runtime(2, NULL);
    back = spawn_back();
    t0 = tr_test_now_ns();
    TR_ASSERT_OK(tr_ask_wait(g_rt, back, MSG_SLOW, &ms, sizeof ms, &out,
                             sizeof out, 5000));
    assert_true(tr_test_now_ns() - t0 >= 40u * 1000000u);
    assert_int_equal(out, 40);
}

/* Awaits are for user messages' handlers: the init hook gets TR_ESTATE. */
static _Atomic int g_init_st;

static tr_status
hook_init(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    IT_STORE(g_init_st, ST(tr_await_sleep(cx, 1, 1)));
    return TR_OK;
}

TR_ACTOR(hook_actor, char, TR_ON_INIT(void, hook_init));

static void
test_await_in_hook_is_estate(void **state)
{
    (void)state;
    g_rt = it_runtime(1, NULL);
    IT_STORE(g_init_st, 0);
    (void)it_spawn(g_rt, &hook_actor, 0, 0, TR_BACKPRESSURE);
    IT_WAIT_UNTIL(IT_LOAD(g_init_st) != 0);
    assert_int_equal(IT_LOAD(g_init_st), ST(TR_ESTATE));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_await_ask_reply),
        IT_TEST(test_await_ask_errors),
        IT_TEST(test_await_ask_timeout_and_late_reply),
        IT_TEST(test_suspended_actor_queues_user_messages),
        IT_TEST(test_stop_while_awaiting),
        IT_TEST(test_deadline_is_inherited),
        IT_TEST(test_expired_request_is_not_handled),
        IT_TEST(test_forward_answers_the_original_asker),
        IT_TEST(test_second_reply_is_refused),
        IT_TEST(test_ask_reply_as_message),
        IT_TEST(test_ask_reply_as_message_timeout),
        IT_TEST(test_cycle_of_two),
        IT_TEST(test_cycle_of_three),
        IT_TEST(test_answered_ask_is_no_cycle),
        IT_TEST(test_await_send_delivers),
        IT_TEST(test_await_send_timeout_takes_it_back),
        IT_TEST(test_await_sleep),
        IT_TEST(test_await_in_hook_is_estate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
