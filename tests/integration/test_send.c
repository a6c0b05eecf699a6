/* Sending through the public API: argument errors, per-pair FIFO order
 * (actor senders, an outside thread), tr_send_move ownership for every
 * outcome, and the tr_runtime* spelling used from inside a handler. */
#include "itest.h"

enum {
    MSG_DATA = 1,
    MSG_EMPTY,
    MSG_SEQ,
    MSG_GO,
    MSG_PUMP,
    MSG_BUF,
};

/* ---- A sink: counts messages and records buffers it sees -------------- */

static struct {
    _Atomic uint32_t empties;
    _Atomic uint32_t bufs;
    const void *buf_ptr;
    size_t buf_len;
    uint32_t buf_first;
    tr_ref sender;
} g_sink;

static tr_status
sink_empty(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    g_sink.sender = tr_sender(cx);
    IT_INC(g_sink.empties);
    return TR_OK;
}

static tr_status
sink_buf(tr_cx *cx, void *self, const void *data)
{
    (void)self;
    g_sink.buf_ptr = data;
    g_sink.buf_len = tr_msg_size(cx);
    g_sink.buf_first = 0;
    if (g_sink.buf_len >= sizeof g_sink.buf_first) {
        memcpy(&g_sink.buf_first, data, sizeof g_sink.buf_first);
    }
    IT_INC(g_sink.bufs);
    return TR_OK;
}

TR_ACTOR(sink_actor, char, TR_ON(MSG_EMPTY, void, sink_empty),
         TR_ON_BYTES(MSG_DATA, sink_buf), TR_ON_BYTES(MSG_BUF, sink_buf),
         IT_ON_CALL, IT_ON_CLOSE);

static tr_ref
spawn_sink(tr_runtime *rt, uint32_t capacity, int set, tr_overflow policy)
{
    memset(&g_sink, 0, sizeof g_sink);
    return it_spawn(rt, &sink_actor, capacity, set, policy);
}

/* ---- Argument errors --------------------------------------------------- */

static tr_status g_cx_st[8];

static void
do_bad_sends(tr_cx *cx, void *arg)
{
    tr_ref to = *(tr_ref *)arg;
    unsigned char big[65] = {0};

    g_cx_st[0] = tr_send(cx, to, MSG_DATA, NULL, 4);
    g_cx_st[1] = tr_send(cx, to, TR_MSG_RESERVED, NULL, 0);
    g_cx_st[2] = tr_send(cx, to, MSG_DATA, big, sizeof big);
    g_cx_st[3] = tr_send((tr_cx *)NULL, to, MSG_EMPTY, NULL, 0);
    g_cx_st[4] = tr_send(cx, to, MSG_DATA, big, 64);
}

static void
test_send_argument_errors(void **state)
{
    tr_config cfg = {0};
    unsigned char buf[65] = {0};
    tr_ref s, a;

    (void)state;
    cfg.max_payload = 64;
    g_rt = it_runtime(1, &cfg);
    s = spawn_sink(g_rt, 0, 0, TR_BACKPRESSURE);

    TR_ASSERT_STATUS(tr_send(g_rt, s, MSG_DATA, NULL, 1), TR_EINVAL);
    TR_ASSERT_STATUS(tr_send(g_rt, s, TR_MSG_RESERVED, NULL, 0), TR_EINVAL);
    TR_ASSERT_STATUS(tr_send(g_rt, s, TR_MSG_REPLY, NULL, 0), TR_EINVAL);
    TR_ASSERT_STATUS(tr_send(g_rt, s, TR_MSG_DEAD_LETTER, NULL, 0), TR_EINVAL);
    TR_ASSERT_STATUS(tr_send(g_rt, s, UINT32_MAX, NULL, 0), TR_EINVAL);
    TR_ASSERT_STATUS(tr_send((tr_runtime *)NULL, s, MSG_EMPTY, NULL, 0),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_send(g_rt, s, MSG_DATA, buf, 65), TR_EMSGSIZE);
    /* The largest type and payload that are allowed. */
    TR_ASSERT_OK(tr_send(g_rt, s, MSG_DATA, buf, 64));
    TR_ASSERT_OK(tr_send(g_rt, s, MSG_EMPTY, NULL, 0));
    /* A reserved-range type below the named ones is still reserved. */
    TR_ASSERT_STATUS(tr_send(g_rt, s, TR_MSG_RESERVED + 100u, NULL, 0),
                     TR_EINVAL);

    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_bad_sends, &s);
    TR_ASSERT_STATUS(g_cx_st[0], TR_EINVAL);
    TR_ASSERT_STATUS(g_cx_st[1], TR_EINVAL);
    TR_ASSERT_STATUS(g_cx_st[2], TR_EMSGSIZE);
    TR_ASSERT_STATUS(g_cx_st[3], TR_EINVAL);
    TR_ASSERT_OK(g_cx_st[4]);

    IT_WAIT_UNTIL(IT_LOAD(g_sink.bufs) == 2 && IT_LOAD(g_sink.empties) == 1);
    /* A refused send sends nothing: no dead letter either. */
    assert_int_equal(it_dl_total(), 0);
    assert_int_equal(it_stats(g_rt).dead_letters, 0);
}

static void
test_send_to_noref_is_dead(void **state)
{
    uint32_t v = 77;

    (void)state;
    g_rt = it_runtime(1, NULL);
    TR_ASSERT_STATUS(tr_send(g_rt, TR_NOREF, MSG_DATA, &v, sizeof v), TR_EDEAD);
    IT_WAIT_UNTIL(it_dl_total() == 1);
    assert_int_equal(it_dl_at(0)->reason, TR_EDEAD);
    assert_int_equal(it_dl_at(0)->seq, 77);
    assert_true(tr_ref_is_none(it_dl_at(0)->to));
}

/* ---- FIFO per pair ----------------------------------------------------- */

#define FIFO_N       10000u
#define FIFO_SENDERS 4u
#define FIFO_OUTSIDE FIFO_SENDERS /* sender id of the outside thread */

struct seq_msg {
    uint32_t sender;
    uint32_t seq;
};

static struct {
    uint32_t expect[FIFO_SENDERS + 1];
    _Atomic uint32_t total;
    _Atomic uint32_t errors;
} g_fifo;

static tr_status
fifo_on(tr_cx *cx, void *self, const struct seq_msg *m)
{
    (void)cx;
    (void)self;
    if (m->sender > FIFO_SENDERS || m->seq != g_fifo.expect[m->sender]) {
        IT_INC(g_fifo.errors);
    } else {
        g_fifo.expect[m->sender]++;
    }
    IT_INC(g_fifo.total);
    return TR_OK;
}

TR_ACTOR(fifo_receiver, char, TR_ON(MSG_SEQ, struct seq_msg, fifo_on));

struct go {
    tr_ref to;
    uint32_t id;
    uint32_t n;
};

struct pump {
    struct go go;
    uint32_t next;
    uint32_t pendings;
};

static _Atomic uint32_t g_pump_errors, g_pump_pendings;

/* Sends until done or until a send is held; then continues later, from a
 * message to itself that runs once the held sends are delivered. */
static void
pump_run(tr_cx *cx, struct pump *p)
{
    while (p->next < p->go.n) {
        struct seq_msg m = {p->go.id, p->next};
        tr_status st = tr_send(cx, p->go.to, MSG_SEQ, &m, sizeof m);

        p->next++;
        if (st == TR_PENDING) {
            IT_INC(g_pump_pendings);
            if (tr_send(cx, tr_self(cx), MSG_PUMP, NULL, 0) < 0) {
                IT_INC(g_pump_errors);
            }
            return;
        }
        if (st != TR_OK) {
            IT_INC(g_pump_errors);
        }
    }
}

static tr_status
pump_go(tr_cx *cx, struct pump *p, const struct go *g)
{
    p->go = *g;
    p->next = 0;
    pump_run(cx, p);
    return TR_OK;
}

static tr_status
pump_more(tr_cx *cx, struct pump *p, const void *unused)
{
    (void)unused;
    pump_run(cx, p);
    return TR_OK;
}

TR_ACTOR(pump_actor, struct pump, TR_ON(MSG_GO, struct go, pump_go),
         TR_ON(MSG_PUMP, void, pump_more));

static void
reset_fifo(void)
{
    memset(&g_fifo, 0, sizeof g_fifo);
    g_pump_errors = g_pump_pendings = 0;
}

static void
test_fifo_per_sender_actors(void **state)
{
    tr_ref r, p;
    struct go g;

    (void)state;
    reset_fifo();
    g_rt = it_runtime(2, NULL);
    r = it_spawn(g_rt, &fifo_receiver, 0, 0, TR_BACKPRESSURE);
    for (uint32_t i = 0; i < FIFO_SENDERS; i++) {
        p = it_spawn(g_rt, &pump_actor, 0, 0, TR_BACKPRESSURE);
        g = (struct go){r, i, FIFO_N};
        TR_ASSERT_OK(tr_send(g_rt, p, MSG_GO, &g, sizeof g));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_fifo.total) == FIFO_SENDERS * FIFO_N);
    assert_int_equal(IT_LOAD(g_fifo.errors), 0);
    assert_int_equal(IT_LOAD(g_pump_errors), 0);
    for (uint32_t i = 0; i < FIFO_SENDERS; i++) {
        assert_int_equal(g_fifo.expect[i], FIFO_N);
    }
    assert_int_equal(it_dl_total(), 0);
}

static void
test_fifo_outside_thread_and_actor(void **state)
{
    tr_ref r, p;
    struct go g;

    (void)state;
    reset_fifo();
    g_rt = it_runtime(2, NULL);
    r = it_spawn(g_rt, &fifo_receiver, 64, 0, TR_BACKPRESSURE);
    p = it_spawn(g_rt, &pump_actor, 0, 0, TR_BACKPRESSURE);
    g = (struct go){r, 0, FIFO_N};
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_GO, &g, sizeof g));
    /* Meanwhile this thread sends its own sequence; with capacity 64 it
     * blocks now and then (backpressure) and must still keep its order. */
    for (uint32_t i = 0; i < FIFO_N; i++) {
        struct seq_msg m = {FIFO_OUTSIDE, i};

        TR_ASSERT_OK(tr_send(g_rt, r, MSG_SEQ, &m, sizeof m));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_fifo.total) == 2 * FIFO_N);
    assert_int_equal(IT_LOAD(g_fifo.errors), 0);
    assert_int_equal(IT_LOAD(g_pump_errors), 0);
    assert_int_equal(g_fifo.expect[0], FIFO_N);
    assert_int_equal(g_fifo.expect[FIFO_OUTSIDE], FIFO_N);
}

/* ---- tr_send_move ------------------------------------------------------ */

static _Atomic uint32_t g_frees;
static _Atomic(void *) g_freed;

static void
count_free(void *p)
{
    atomic_store_explicit(&g_freed, p, memory_order_relaxed);
    IT_INC(g_frees);
    free(p);
}

static uint32_t *
new_buf(uint32_t first, size_t len)
{
    uint32_t *b = malloc(len);

    assert_non_null(b);
    memset(b, 0, len);
    *b = first;
    return b;
}

static void
test_move_ok_hands_buffer_over(void **state)
{
    void *buf;
    void *orig;
    tr_ref s;

    (void)state;
    g_frees = 0;
    g_rt = it_runtime(2, NULL);
    s = spawn_sink(g_rt, 0, 0, TR_BACKPRESSURE);
    buf = orig = new_buf(0xABCD, 256);
    TR_ASSERT_OK(tr_send_move(g_rt, s, MSG_BUF, &buf, 256, count_free));
    assert_null(buf);
    IT_WAIT_UNTIL(IT_LOAD(g_frees) == 1);
    /* The handler saw our buffer itself, not a copy. */
    assert_int_equal(IT_LOAD(g_sink.bufs), 1);
    assert_ptr_equal(g_sink.buf_ptr, orig);
    assert_int_equal(g_sink.buf_len, 256);
    assert_int_equal(g_sink.buf_first, 0xABCD);
    assert_ptr_equal(atomic_load(&g_freed), orig);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 1);
}

static void
test_move_dead_takes_buffer(void **state)
{
    void *buf, *orig;
    tr_ref s;

    (void)state;
    g_frees = 0;
    g_rt = it_runtime(1, NULL);
    s = spawn_sink(g_rt, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_stop(g_rt, s));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);

    buf = orig = new_buf(0x5EED, 64);
    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, &buf, 64, count_free),
                     TR_EDEAD);
    assert_null(buf);
    IT_WAIT_UNTIL(IT_LOAD(g_frees) == 1);
    assert_ptr_equal(atomic_load(&g_freed), orig);
    /* The dead letter showed the payload before it was freed. */
    assert_int_equal(it_dl_total(), 1);
    assert_ptr_equal(it_dl_at(0)->data, orig);
    assert_int_equal(it_dl_at(0)->seq, 0x5EED);
    assert_int_equal(it_dl_at(0)->reason, TR_EDEAD);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 1);
}

/* Fills `to` (capacity 1) with one copied message, then moves a buffer in:
 * from a handler on a one-worker runtime, so `to` cannot drain between. */
typedef struct move_job {
    tr_ref to;
    int use_rt_form;
    tr_status fill_st;
    tr_status st;
    void *buf;
    void *orig;
    int buf_after_is_null;
} move_job;

static void
do_fill_then_move(tr_cx *cx, void *arg)
{
    move_job *j = arg;

    j->fill_st = tr_send(cx, j->to, MSG_EMPTY, NULL, 0);
    if (j->use_rt_form) {
        j->st = tr_send_move(tr_cx_runtime(cx), j->to, MSG_BUF, &j->buf, 32,
                             count_free);
    } else {
        j->st = tr_send_move(cx, j->to, MSG_BUF, &j->buf, 32, count_free);
    }
    j->buf_after_is_null = j->buf == NULL;
    if (j->buf != NULL) {
        free(j->buf); /* still ours: we release it ourselves */
        j->buf = NULL;
    }
}

static void
run_move_job(move_job *j, tr_overflow policy)
{
    tr_ref p;

    g_frees = 0;
    g_rt = it_runtime(1, NULL);
    p = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    j->to = spawn_sink(g_rt, 1, 1, policy);
    j->buf = j->orig = new_buf(0xF00D, 32);
    it_call_sync(g_rt, p, do_fill_then_move, j);
    TR_ASSERT_OK(j->fill_st);
}

static void
test_move_dropped_takes_buffer(void **state)
{
    move_job j = {0};

    (void)state;
    run_move_job(&j, TR_DROP_NEWEST);
    TR_ASSERT_STATUS(j.st, TR_DROPPED);
    assert_true(j.buf_after_is_null);
    IT_WAIT_UNTIL(IT_LOAD(g_frees) == 1);
    assert_ptr_equal(atomic_load(&g_freed), j.orig);
    assert_int_equal(it_dl_count(MSG_BUF, TR_DROPPED), 1);
    IT_WAIT_UNTIL(IT_LOAD(g_sink.empties) == 1);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 1);
    assert_int_equal(IT_LOAD(g_sink.bufs), 0);
}

static void
test_move_efull_leaves_buffer(void **state)
{
    move_job j = {0};

    (void)state;
    run_move_job(&j, TR_REJECT);
    TR_ASSERT_STATUS(j.st, TR_EFULL);
    /* Untouched and still ours (the handler freed it with free(); a second
     * release by the runtime would show up in count_free or in ASan). */
    assert_false(j.buf_after_is_null);
    IT_WAIT_UNTIL(IT_LOAD(g_sink.empties) == 1);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 0);
    assert_int_equal(IT_LOAD(g_sink.bufs), 0);
    assert_int_equal(it_dl_count_type(MSG_BUF), 0);
}

static void
test_move_pending_takes_buffer(void **state)
{
    move_job j = {0};

    (void)state;
    run_move_job(&j, TR_BACKPRESSURE);
    TR_ASSERT_STATUS(j.st, TR_PENDING);
    assert_true(j.buf_after_is_null);
    /* Delivered once the sink has room: the same buffer, freed once. */
    IT_WAIT_UNTIL(IT_LOAD(g_sink.bufs) == 1 && IT_LOAD(g_frees) == 1);
    assert_ptr_equal(g_sink.buf_ptr, j.orig);
    assert_int_equal(g_sink.buf_first, 0xF00D);
    assert_ptr_equal(atomic_load(&g_freed), j.orig);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 1);
}

static void
test_move_invalid_leaves_buffer(void **state)
{
    tr_config cfg = {0};
    void *buf, *none = NULL;
    tr_ref s;

    (void)state;
    g_frees = 0;
    cfg.max_payload = 64;
    g_rt = it_runtime(1, &cfg);
    s = spawn_sink(g_rt, 0, 0, TR_BACKPRESSURE);
    buf = new_buf(1, 128);

    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, NULL, 8, count_free),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, &none, 8, count_free),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, &buf, 8, NULL), TR_EINVAL);
    assert_non_null(buf);
    TR_ASSERT_STATUS(
        tr_send_move(g_rt, s, TR_MSG_RESERVED, &buf, 8, count_free), TR_EINVAL);
    assert_non_null(buf);
    TR_ASSERT_STATUS(
        tr_send_move((tr_runtime *)NULL, s, MSG_BUF, &buf, 8, count_free),
        TR_EINVAL);
    assert_non_null(buf);
    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, &buf, 65, count_free),
                     TR_EMSGSIZE);
    assert_non_null(buf);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 0);
    assert_int_equal(IT_LOAD(g_sink.bufs), 0);
    free(buf);
}

static void
test_move_timeout_and_shutdown_leave_buffer(void **state)
{
    tr_config cfg = {0};
    void *buf;
    tr_ref s, jam;

    (void)state;
    g_frees = 0;
    cfg.send_timeout_ms = 20;
    cfg.drain_ms = 100;
    g_rt = it_runtime(1, &cfg);
    s = spawn_sink(g_rt, 1, 1, TR_BACKPRESSURE);
    jam = it_jam_start(g_rt);
    it_gate_close(g_rt, s, jam);
    TR_ASSERT_OK(tr_send(g_rt, s, MSG_EMPTY, NULL, 0)); /* now full */

    buf = new_buf(2, 16);
    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, &buf, 16, count_free),
                     TR_ETIMEDOUT);
    assert_non_null(buf);
    TR_ASSERT_OK(tr_stop(g_rt, jam));
    IT_WAIT_UNTIL(IT_LOAD(g_sink.empties) == 1);

    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 100));
    TR_ASSERT_STATUS(tr_send_move(g_rt, s, MSG_BUF, &buf, 16, count_free),
                     TR_ESHUTDOWN);
    assert_non_null(buf);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_frees), 0);
    assert_int_equal(IT_LOAD(g_sink.bufs), 0);
    free(buf);
}

/* ---- The tr_runtime* spelling from a handler --------------------------- */

static tr_status g_rt_form_st[2];

static void
do_rt_form_sends(tr_cx *cx, void *arg)
{
    tr_ref to = *(tr_ref *)arg;

    g_rt_form_st[0] = tr_send(tr_cx_runtime(cx), to, MSG_EMPTY, NULL, 0);
    /* The sink has capacity 1 and cannot run meanwhile (one worker): as
     * the actor, this send is held; as an outside thread it would block
     * for the send timeout instead. */
    g_rt_form_st[1] = tr_send(tr_cx_runtime(cx), to, MSG_EMPTY, NULL, 0);
}

static void
test_rt_form_in_handler_acts_as_actor(void **state)
{
    tr_config cfg = {0};
    tr_ref s, a;
    move_job j = {0};

    (void)state;
    cfg.send_timeout_ms = 60000;
    g_rt = it_runtime(1, &cfg);
    s = spawn_sink(g_rt, 1, 1, TR_BACKPRESSURE);
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_rt_form_sends, &s);
    TR_ASSERT_OK(g_rt_form_st[0]);
    TR_ASSERT_STATUS(g_rt_form_st[1], TR_PENDING);
    IT_WAIT_UNTIL(IT_LOAD(g_sink.empties) == 2);
    assert_true(tr_ref_eq(g_sink.sender, a));
    assert_int_equal(it_stats(g_rt).held, 1);
    tr_runtime_destroy(&g_rt);

    /* tr_send_move's runtime spelling too. */
    j.use_rt_form = 1;
    run_move_job(&j, TR_BACKPRESSURE);
    TR_ASSERT_STATUS(j.st, TR_PENDING);
    assert_true(j.buf_after_is_null);
    IT_WAIT_UNTIL(IT_LOAD(g_sink.bufs) == 1 && IT_LOAD(g_frees) == 1);
    assert_ptr_equal(g_sink.buf_ptr, j.orig);
}

#define T(f) IT_TEST(f)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_send_argument_errors),
        T(test_send_to_noref_is_dead),
        T(test_fifo_per_sender_actors),
        T(test_fifo_outside_thread_and_actor),
        T(test_move_ok_hands_buffer_over),
        T(test_move_dead_takes_buffer),
        T(test_move_dropped_takes_buffer),
        T(test_move_efull_leaves_buffer),
        T(test_move_pending_takes_buffer),
        T(test_move_invalid_leaves_buffer),
        T(test_move_timeout_and_shutdown_leave_buffer),
        T(test_rt_form_in_handler_acts_as_actor),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
