/* Actors through the public API: typed handler rows and size checks,
 * unhandled messages, init and terminate hooks with every exit reason,
 * spawning (arguments, limits, errors), stale refs after slot reuse,
 * tr_self/tr_sender, ask-and-wait and reply. */
#include "itest.h"

enum {
    MSG_POINT = 1,
    MSG_EMPTY,
    MSG_BYTES,
    MSG_OTHER,
    MSG_ASK,
    MSG_NOREPLY,
    MSG_BADREPLY,
    MSG_REPLY_NOSENDER,
    MSG_EXIT_NOREPLY,
    MSG_DATA,
    MSG_STOP_SELF,
    MSG_EXIT0,
    MSG_EXIT7,
    MSG_FAIL,
    MSG_EXIT_LONG,
};

/* ---- The probe: records what its handlers see -------------------------- */

struct point {
    int32_t x;
    int32_t y;
    char tag[8];
};

#define MAX_BYTES 16

static struct {
    _Atomic uint32_t points;
    struct point last_point;
    tr_ref sender;
    tr_ref self;
    uint32_t type;
    size_t size;
    tr_runtime *rt;
    _Atomic uint32_t empties;
    tr_ref empty_sender;
    _Atomic uint32_t nbytes;
    size_t bsize[MAX_BYTES];
    uint32_t bsum[MAX_BYTES];
    _Atomic uint32_t asks;
    _Atomic int reply_st; /* status + 1000; 0: not yet */
} g_probe;

static tr_status
probe_point(tr_cx *cx, void *self, const struct point *p)
{
    (void)self;
    g_probe.last_point = *p;
    g_probe.sender = tr_sender(cx);
    g_probe.self = tr_self(cx);
    g_probe.type = tr_msg_type(cx);
    g_probe.size = tr_msg_size(cx);
    g_probe.rt = tr_cx_runtime(cx);
    IT_INC(g_probe.points);
    return TR_OK;
}

static tr_status
probe_empty(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    g_probe.empty_sender = tr_sender(cx);
    IT_INC(g_probe.empties);
    return TR_OK;
}

static tr_status
probe_bytes(tr_cx *cx, void *self, const void *data)
{
    uint32_t i = atomic_load_explicit(&g_probe.nbytes, memory_order_relaxed);
    size_t n = tr_msg_size(cx);
    uint32_t sum = 0;

    (void)self;
    for (size_t k = 0; k < n; k++) {
        sum = sum * 31u + ((const unsigned char *)data)[k];
    }
    if (i < MAX_BYTES) {
        g_probe.bsize[i] = n;
        g_probe.bsum[i] = sum;
    }
    IT_STORE(g_probe.nbytes, i + 1);
    return TR_OK;
}

static tr_status
probe_ask(tr_cx *cx, void *self, const uint64_t *v)
{
    uint64_t r = *v * 2;

    (void)self;
    IT_STORE(g_probe.reply_st, (int)tr_reply(cx, &r, sizeof r) + 1000);
    IT_INC(g_probe.asks);
    return TR_OK;
}

static tr_status
probe_noreply(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)cx;
    (void)self;
    (void)v;
    IT_INC(g_probe.asks);
    return TR_OK;
}

static tr_status
probe_badreply(tr_cx *cx, void *self, const uint64_t *v)
{
    uint32_t small = (uint32_t)*v;

    (void)self;
    (void)tr_reply(cx, &small, sizeof small);
    return TR_OK;
}

static tr_status
probe_reply_nosender(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    IT_STORE(g_probe.reply_st, (int)tr_reply(cx, NULL, 0) + 1000);
    return TR_OK;
}

static tr_status
probe_exit_noreply(tr_cx *cx, void *self, const uint64_t *v)
{
    (void)self;
    (void)v;
    return tr_exit(cx, 0, NULL);
}

TR_ACTOR(probe_actor, char, TR_ON(MSG_POINT, struct point, probe_point),
         TR_ON(MSG_EMPTY, void, probe_empty),
         TR_ON_BYTES(MSG_BYTES, probe_bytes),
         TR_ON(MSG_ASK, uint64_t, probe_ask),
         TR_ON(MSG_NOREPLY, uint64_t, probe_noreply),
         TR_ON(MSG_BADREPLY, uint64_t, probe_badreply),
         TR_ON(MSG_REPLY_NOSENDER, void, probe_reply_nosender),
         TR_ON(MSG_EXIT_NOREPLY, uint64_t, probe_exit_noreply), IT_ON_CALL,
         IT_ON_CLOSE);

static tr_ref
spawn_probe(tr_runtime *rt)
{
    memset(&g_probe, 0, sizeof g_probe);
    return it_spawn(rt, &probe_actor, 0, 0, TR_BACKPRESSURE);
}

static const struct point g_pt = {3, -4, "pt"};

/* ---- Typed rows and size checks ---------------------------------------- */

static void
test_typed_handler_gets_payload(void **state)
{
    tr_ref p;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_POINT, &g_pt, sizeof g_pt));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.points) == 1);
    assert_int_equal(g_probe.last_point.x, 3);
    assert_int_equal(g_probe.last_point.y, -4);
    assert_string_equal(g_probe.last_point.tag, "pt");
    assert_int_equal(g_probe.type, MSG_POINT);
    assert_int_equal(g_probe.size, sizeof(struct point));
    assert_true(tr_ref_eq(g_probe.self, p));
    assert_true(tr_ref_is_none(g_probe.sender));
    assert_ptr_equal(g_probe.rt, g_rt);
    assert_int_equal(it_dl_total(), 0);
}

static void
test_size_mismatch_is_refused(void **state)
{
    tr_ref p;
    uint32_t small = 1;
    unsigned char big[sizeof(struct point) + 1] = {0};
    uint64_t reply = 0, t0, elapsed, timeout = tr_test_scaled_ms(20000);
    const it_dl *d;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_POINT, &small, sizeof small));
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_POINT, big, sizeof big));
    IT_WAIT_UNTIL(it_dl_total() == 2);
    for (uint32_t i = 0; i < 2; i++) {
        d = it_dl_at(i);
        assert_int_equal(d->type, MSG_POINT);
        assert_int_equal(d->reason, TR_EBADMSG);
        assert_true(tr_ref_eq(d->to, p));
        assert_true(tr_ref_is_none(d->from));
    }
    assert_int_equal(it_dl_at(0)->len, sizeof small);
    assert_int_equal(it_dl_at(0)->seq, 1);
    assert_int_equal(it_dl_at(1)->len, sizeof big);

    /* An asker learns at once, well before its timeout. */
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_POINT, &small, sizeof small,
                                 &reply, sizeof reply, (uint32_t)timeout),
                     TR_EBADMSG);
    elapsed = (tr_test_now_ns() - t0) / 1000000u;
    assert_true(elapsed < timeout / 2);

    /* The handler never ran; the actor is alive and takes good messages. */
    assert_int_equal(IT_LOAD(g_probe.points), 0);
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_POINT, &g_pt, sizeof g_pt));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.points) == 1);
    assert_int_equal(it_dl_count(MSG_POINT, TR_EBADMSG), 3);
}

static void
test_void_row_takes_only_empty(void **state)
{
    tr_ref p;
    unsigned char one = 1;

    (void)state;
    g_rt = it_runtime(1, NULL);
    p = spawn_probe(g_rt);
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_EMPTY, &one, 1));
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.empties) == 1 && it_dl_total() == 1);
    assert_int_equal(it_dl_at(0)->type, MSG_EMPTY);
    assert_int_equal(it_dl_at(0)->reason, TR_EBADMSG);
    assert_int_equal(it_dl_at(0)->len, 1);
    /* Empty again, to be sure the 1-byte one never reaches the row. */
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.empties) == 2);
    assert_int_equal(it_dl_total(), 1);
}

static void
test_bytes_row_takes_any_size(void **state)
{
    static const size_t sizes[] = {0, 1, 3, 1000};
    unsigned char buf[1000];
    tr_ref p;

    (void)state;
    for (size_t k = 0; k < sizeof buf; k++) {
        buf[k] = (unsigned char)(k * 7 + 1);
    }
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    for (size_t i = 0; i < 4; i++) {
        TR_ASSERT_OK(
            tr_send(g_rt, p, MSG_BYTES, sizes[i] ? buf : NULL, sizes[i]));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_probe.nbytes) == 4);
    for (size_t i = 0; i < 4; i++) {
        uint32_t sum = 0;

        for (size_t k = 0; k < sizes[i]; k++) {
            sum = sum * 31u + buf[k];
        }
        assert_int_equal(g_probe.bsize[i], sizes[i]);
        assert_int_equal(g_probe.bsum[i], sum);
    }
    assert_int_equal(it_dl_total(), 0);
}

static void
test_unhandled_goes_to_dead_letters(void **state)
{
    tr_ref p;
    uint32_t v = 42;
    uint64_t t0, elapsed, timeout = tr_test_scaled_ms(20000);

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_OTHER, &v, sizeof v));
    IT_WAIT_UNTIL(it_dl_total() == 1);
    assert_int_equal(it_dl_at(0)->type, MSG_OTHER);
    assert_int_equal(it_dl_at(0)->reason, TR_EUNHANDLED);
    assert_int_equal(it_dl_at(0)->len, sizeof v);
    assert_int_equal(it_dl_at(0)->seq, 42);
    assert_true(tr_ref_eq(it_dl_at(0)->to, p));

    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_OTHER, &v, sizeof v, NULL, 0,
                                 (uint32_t)timeout),
                     TR_EUNHANDLED);
    elapsed = (tr_test_now_ns() - t0) / 1000000u;
    assert_true(elapsed < timeout / 2);

    /* Still alive. */
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.empties) == 1);
}

static _Atomic uint32_t g_hook_n;
static uint32_t g_hook_type[8];
static size_t g_hook_size[8];

static tr_status
hook_unhandled(tr_cx *cx, void *self, const void *data)
{
    uint32_t i = atomic_load_explicit(&g_hook_n, memory_order_relaxed);

    (void)self;
    (void)data;
    if (i < 8) {
        g_hook_type[i] = tr_msg_type(cx);
        g_hook_size[i] = tr_msg_size(cx);
    }
    IT_STORE(g_hook_n, i + 1);
    return TR_OK;
}

TR_ACTOR(hook_actor, char, TR_ON(MSG_POINT, struct point, probe_point),
         TR_ON_UNHANDLED(hook_unhandled));

static void
test_unhandled_hook_sees_type_and_size(void **state)
{
    unsigned char five[5] = {1, 2, 3, 4, 5};
    tr_ref h;

    (void)state;
    g_hook_n = 0;
    memset(&g_probe, 0, sizeof g_probe);
    g_rt = it_runtime(1, NULL);
    h = it_spawn(g_rt, &hook_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, h, MSG_OTHER, five, sizeof five));
    TR_ASSERT_OK(tr_send(g_rt, h, MSG_POINT, &g_pt, sizeof g_pt));
    TR_ASSERT_OK(tr_send(g_rt, h, MSG_BYTES, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_hook_n) == 2 && IT_LOAD(g_probe.points) == 1);
    assert_int_equal(g_hook_type[0], MSG_OTHER);
    assert_int_equal(g_hook_size[0], 5);
    assert_int_equal(g_hook_type[1], MSG_BYTES);
    assert_int_equal(g_hook_size[1], 0);
    assert_int_equal(it_dl_total(), 0);
}

/* ---- Init -------------------------------------------------------------- */

struct init_arg {
    uint32_t magic;
    uint64_t value;
};

struct init_state {
    uint64_t value;
    int inited;
};

static struct {
    _Atomic uint32_t inits;
    tr_ref self;
    uint64_t value;
    _Atomic uint32_t seen;
    int seen_inited;
    uint64_t seen_value;
} g_init;

static tr_status
init_hook(tr_cx *cx, struct init_state *self, const struct init_arg *a)
{
    self->value = a->magic == 0xC0FFEEu ? a->value : 0;
    self->inited = 1;
    g_init.self = tr_self(cx);
    g_init.value = a->value;
    IT_INC(g_init.inits);
    return TR_OK;
}

static tr_status
init_first(tr_cx *cx, struct init_state *self, const void *unused)
{
    (void)cx;
    (void)unused;
    g_init.seen_inited = self->inited;
    g_init.seen_value = self->value;
    IT_INC(g_init.seen);
    return TR_OK;
}

TR_ACTOR(init_actor, struct init_state, TR_ON_INIT(struct init_arg, init_hook),
         TR_ON(MSG_EMPTY, void, init_first));

static tr_status
void_init(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_INC(g_init.inits);
    return TR_OK;
}

TR_ACTOR(void_init_actor, char, TR_ON_INIT(void, void_init));

static void
test_init_receives_argument(void **state)
{
    struct init_arg a = {0xC0FFEEu, 0x1122334455667788u};
    tr_spawn_opts o = {0};
    tr_ref r = TR_NOREF;

    (void)state;
    memset(&g_init, 0, sizeof g_init);
    g_rt = it_runtime(2, NULL);
    o.arg = &a;
    o.arg_len = sizeof a;
    TR_ASSERT_OK(tr_spawn(g_rt, &init_actor, &o, &r));
    /* The argument was copied: changing ours now changes nothing. */
    a.value = 0;
    TR_ASSERT_OK(tr_send(g_rt, r, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_init.seen) == 1);
    assert_int_equal(IT_LOAD(g_init.inits), 1);
    assert_true(tr_ref_eq(g_init.self, r));
    assert_int_equal(g_init.value, 0x1122334455667788u);
    /* Init ran before the first message. */
    assert_int_equal(g_init.seen_inited, 1);
    assert_int_equal(g_init.seen_value, 0x1122334455667788u);

    /* A void init hook takes no argument. */
    TR_ASSERT_OK(tr_spawn(g_rt, &void_init_actor, NULL, &r));
    IT_WAIT_UNTIL(IT_LOAD(g_init.inits) == 2);
}

static tr_status
null_fn_never_called(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    return TR_OK;
}

static const tr_handler bad_rows[] = {{MSG_EMPTY, 0, NULL}};
static const tr_behavior bad_null_fn = {"bad_null_fn", 1, bad_rows, 1};
static const tr_behavior bad_no_rows = {"bad_no_rows", 1, NULL, 1};

struct big_arg {
    unsigned char b[32];
};

static tr_status
big_init(tr_cx *cx, void *self, const struct big_arg *a)
{
    (void)cx;
    (void)self;
    (void)a;
    return TR_OK;
}

TR_ACTOR(big_init_actor, char, TR_ON_INIT(struct big_arg, big_init),
         TR_ON(MSG_EMPTY, void, null_fn_never_called));

static void
test_spawn_errors(void **state)
{
    const tr_ref sentinel = {1, 2, 3};
    tr_ref r = sentinel;
    struct init_arg a = {0xC0FFEEu, 1};
    struct big_arg big = {{0}};
    tr_spawn_opts o = {0};
    tr_config cfg = {0};

    (void)state;
    cfg.max_payload = 16;
    g_rt = it_runtime(1, &cfg);

#define EXPECT_SPAWN(b, opts, st)                                              \
    do {                                                                       \
        TR_ASSERT_STATUS(tr_spawn(g_rt, (b), (opts), &r), (st));               \
        assert_true(tr_ref_eq(r, sentinel));                                   \
    } while (0)

    EXPECT_SPAWN(NULL, NULL, TR_EINVAL);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, NULL), TR_EINVAL);
    EXPECT_SPAWN(&bad_null_fn, NULL, TR_EINVAL);
    EXPECT_SPAWN(&bad_no_rows, NULL, TR_EINVAL);

    /* An argument without an init hook. */
    o.arg = &a;
    o.arg_len = sizeof a;
    EXPECT_SPAWN(&probe_actor, &o, TR_EINVAL);
    /* An argument of the wrong size, or none for a typed init hook. */
    o.arg_len = sizeof a - 1;
    EXPECT_SPAWN(&init_actor, &o, TR_EINVAL);
    o.arg = NULL;
    o.arg_len = 0;
    EXPECT_SPAWN(&init_actor, &o, TR_EINVAL);
    /* A NULL argument with a length. */
    o.arg_len = sizeof a;
    EXPECT_SPAWN(&init_actor, &o, TR_EINVAL);
    /* Capacity 0, capacity and policy out of range. */
    o = (tr_spawn_opts){0};
    o.mailbox = &(tr_mailbox_opts){0, TR_BACKPRESSURE};
    EXPECT_SPAWN(&probe_actor, &o, TR_EINVAL);
    o.mailbox = &(tr_mailbox_opts){TR_MAILBOX_MAX_CAPACITY + 1, TR_REJECT};
    EXPECT_SPAWN(&probe_actor, &o, TR_EINVAL);
    o.mailbox = &(tr_mailbox_opts){1, (tr_overflow)(TR_FAIL + 1)};
    EXPECT_SPAWN(&probe_actor, &o, TR_EINVAL);
    /* An argument over max_payload (16 here). */
    o = (tr_spawn_opts){0};
    o.arg = &big;
    o.arg_len = sizeof big;
    EXPECT_SPAWN(&big_init_actor, &o, TR_EMSGSIZE);
#undef EXPECT_SPAWN

    assert_int_equal(it_stats(g_rt).spawned, 0);
    assert_int_equal(it_stats(g_rt).alive, 0);

    /* The limits themselves are fine. */
    o = (tr_spawn_opts){0};
    o.mailbox = &(tr_mailbox_opts){TR_MAILBOX_MAX_CAPACITY, TR_FAIL};
    TR_ASSERT_OK(tr_spawn(g_rt, &probe_actor, &o, &r));
    o.mailbox = &(tr_mailbox_opts){1, TR_BACKPRESSURE};
    TR_ASSERT_OK(tr_spawn(g_rt, &probe_actor, &o, &r));
    assert_int_equal(it_stats(g_rt).spawned, 2);
}

static _Atomic uint32_t g_fail_terms, g_fail_handled;

static tr_status
failing_init(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    return TR_EFAILED;
}

static tr_status
failing_on(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_INC(g_fail_handled);
    return TR_OK;
}

static tr_status
failing_term(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    (void)why;
    IT_INC(g_fail_terms);
    return TR_OK;
}

TR_ACTOR(failing_actor, char, TR_ON_INIT(void, failing_init),
         TR_ON(MSG_EMPTY, void, failing_on), TR_ON_TERMINATE(failing_term));

static void
test_init_failure_ends_actor(void **state)
{
    tr_ref r = TR_NOREF;
    tr_status st;

    (void)state;
    g_fail_terms = g_fail_handled = 0;
    g_rt = it_runtime(2, NULL);
    TR_ASSERT_OK(tr_spawn(g_rt, &failing_actor, NULL, &r));
    /* Sent before or after the init ran: either way never handled, and
     * exactly one dead letter for it. */
    st = tr_send(g_rt, r, MSG_EMPTY, NULL, 0);
    assert_true(st == TR_OK || st == TR_EDEAD);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    IT_WAIT_UNTIL(it_dl_total() == 1);
    assert_int_equal(it_dl_count(MSG_EMPTY, TR_EDEAD), 1);

    TR_ASSERT_STATUS(tr_send(g_rt, r, MSG_EMPTY, NULL, 0), TR_EDEAD);
    TR_ASSERT_STATUS(tr_stop(g_rt, r), TR_EDEAD);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g_fail_handled), 0);
    assert_int_equal(IT_LOAD(g_fail_terms), 0);
}

/* ---- Terminate and exit reasons ---------------------------------------- */

#define NSCEN 6

static struct {
    _Atomic uint32_t count;
    tr_exit_kind kind;
    int32_t code;
    char text[TR_REASON_TEXT];
} g_term[NSCEN];

static _Atomic int g_stop_self_st, g_after_stop_st;

struct ender {
    uint32_t idx;
};

static tr_status
ender_init(tr_cx *cx, struct ender *self, const uint32_t *idx)
{
    (void)cx;
    self->idx = *idx;
    return TR_OK;
}

static tr_status
ender_stop_self(tr_cx *cx, struct ender *self, const void *unused)
{
    (void)self;
    (void)unused;
    IT_STORE(g_stop_self_st, (int)tr_stop(cx, tr_self(cx)) + 1000);
    /* The stop takes effect when the handler returns: this send works, and
     * the message then goes to dead letters as the actor ends. */
    IT_STORE(g_after_stop_st,
             (int)tr_send(cx, tr_self(cx), MSG_EXIT0, NULL, 0) + 1000);
    return TR_OK;
}

static tr_status
ender_exit0(tr_cx *cx, struct ender *self, const void *unused)
{
    (void)self;
    (void)unused;
    return tr_exit(cx, 0, NULL);
}

static tr_status
ender_exit7(tr_cx *cx, struct ender *self, const void *unused)
{
    (void)self;
    (void)unused;
    return tr_exit(cx, 7, "boom");
}

static tr_status
ender_fail(tr_cx *cx, struct ender *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    return TR_EFAILED;
}

static const char long_text[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-long";

static tr_status
ender_exit_long(tr_cx *cx, struct ender *self, const void *unused)
{
    (void)self;
    (void)unused;
    return tr_exit(cx, 9, long_text);
}

static tr_status
ender_term(tr_cx *cx, struct ender *self, const tr_reason *why)
{
    uint32_t i = self->idx;

    (void)cx;
    if (i < NSCEN) {
        g_term[i].kind = why->kind;
        g_term[i].code = why->code;
        memcpy(g_term[i].text, why->text, sizeof g_term[i].text);
        IT_INC(g_term[i].count);
    }
    return TR_OK;
}

TR_ACTOR(ender_actor, struct ender, TR_ON_INIT(uint32_t, ender_init),
         TR_ON(MSG_STOP_SELF, void, ender_stop_self),
         TR_ON(MSG_EXIT0, void, ender_exit0),
         TR_ON(MSG_EXIT7, void, ender_exit7), TR_ON(MSG_FAIL, void, ender_fail),
         TR_ON(MSG_EXIT_LONG, void, ender_exit_long),
         TR_ON_TERMINATE(ender_term));

static tr_ref
spawn_ender(uint32_t idx)
{
    tr_spawn_opts o = {0};
    tr_ref r = TR_NOREF;

    o.arg = &idx;
    o.arg_len = sizeof idx;
    TR_ASSERT_OK(tr_spawn(g_rt, &ender_actor, &o, &r));
    return r;
}

static void
test_terminate_reasons(void **state)
{
    static const uint32_t trigger[NSCEN] = {
        0, MSG_STOP_SELF, MSG_EXIT0, MSG_EXIT7, MSG_FAIL, MSG_EXIT_LONG,
    };
    tr_ref r[NSCEN];

    (void)state;
    memset(g_term, 0, sizeof g_term);
    g_stop_self_st = g_after_stop_st = 0;
    g_rt = it_runtime(2, NULL);
    for (uint32_t i = 0; i < NSCEN; i++) {
        r[i] = spawn_ender(i);
        if (trigger[i] == 0) {
            TR_ASSERT_OK(tr_stop(g_rt, r[i]));
        } else {
            TR_ASSERT_OK(tr_send(g_rt, r[i], trigger[i], NULL, 0));
        }
        IT_WAIT_UNTIL(IT_LOAD(g_term[i].count) == 1);
    }
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);

    /* tr_stop from outside. */
    assert_int_equal(g_term[0].kind, TR_EXIT_NORMAL);
    assert_int_equal(g_term[0].code, 0);
    /* tr_stop(cx, tr_self(cx)): OK, and the handler went on. */
    assert_int_equal(g_term[1].kind, TR_EXIT_NORMAL);
    assert_int_equal(g_term[1].code, 0);
    TR_ASSERT_OK((tr_status)(IT_LOAD(g_stop_self_st) - 1000));
    TR_ASSERT_OK((tr_status)(IT_LOAD(g_after_stop_st) - 1000));
    IT_WAIT_UNTIL(it_dl_count(MSG_EXIT0, TR_EDEAD) == 1);
    /* tr_exit(cx, 0, NULL). */
    assert_int_equal(g_term[2].kind, TR_EXIT_NORMAL);
    assert_int_equal(g_term[2].code, 0);
    /* tr_exit(cx, 7, "boom"). */
    assert_int_equal(g_term[3].kind, TR_EXIT_FAILED);
    assert_int_equal(g_term[3].code, 7);
    assert_string_equal(g_term[3].text, "boom");
    /* A handler returning a negative status. */
    assert_int_equal(g_term[4].kind, TR_EXIT_FAILED);
    assert_int_equal(g_term[4].code, TR_EFAILED);
    /* A long text is truncated to TR_REASON_TEXT - 1 bytes. */
    assert_int_equal(g_term[5].kind, TR_EXIT_FAILED);
    assert_int_equal(g_term[5].code, 9);
    assert_int_equal(strlen(g_term[5].text), TR_REASON_TEXT - 1);
    assert_memory_equal(g_term[5].text, long_text, TR_REASON_TEXT - 1);

    /* Each is dead now, and its hook ran exactly once, even after the
     * runtime is gone. */
    for (uint32_t i = 0; i < NSCEN; i++) {
        TR_ASSERT_STATUS(tr_send(g_rt, r[i], MSG_EXIT0, NULL, 0), TR_EDEAD);
    }
    tr_runtime_destroy(&g_rt);
    for (uint32_t i = 0; i < NSCEN; i++) {
        assert_int_equal(IT_LOAD(g_term[i].count), 1);
    }
    TR_ASSERT_STATUS(tr_exit(NULL, 1, "x"), TR_EINVAL);
    TR_ASSERT_STATUS(tr_stop((tr_cx *)NULL, r[0]), TR_EINVAL);
}

/* The terminate hook may send. */
static tr_ref g_witness;
static _Atomic int g_term_send_st;
static tr_ref g_term_self;

static tr_status
sending_term(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)self;
    (void)why;
    g_term_self = tr_self(cx);
    IT_STORE(g_term_send_st,
             (int)tr_send(cx, g_witness, MSG_EMPTY, NULL, 0) + 1000);
    return TR_OK;
}

TR_ACTOR(term_sender, char, TR_ON_TERMINATE(sending_term));

static void
test_terminate_hook_can_send(void **state)
{
    tr_ref r;

    (void)state;
    g_term_send_st = 0;
    g_rt = it_runtime(2, NULL);
    g_witness = spawn_probe(g_rt);
    r = it_spawn(g_rt, &term_sender, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_stop(g_rt, r));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.empties) == 1);
    TR_ASSERT_OK((tr_status)(IT_LOAD(g_term_send_st) - 1000));
    assert_true(tr_ref_eq(g_term_self, r));
    assert_true(tr_ref_eq(g_probe.empty_sender, r));
    assert_int_equal(it_dl_total(), 0);
}

/* ---- Messages queued when an actor ends -------------------------------- */

static _Atomic uint32_t g_data_handled, g_data_terms;
static uint32_t g_data_exit_at;
static tr_exit_kind g_data_kind;

static tr_status
data_on(tr_cx *cx, void *self, const uint32_t *seq)
{
    (void)self;
    IT_INC(g_data_handled);
    if (*seq == g_data_exit_at) {
        return tr_exit(cx, 0, NULL);
    }
    return TR_OK;
}

static tr_status
data_term(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    g_data_kind = why->kind;
    IT_INC(g_data_terms);
    return TR_OK;
}

TR_ACTOR(data_actor, char, TR_ON(MSG_DATA, uint32_t, data_on),
         TR_ON_TERMINATE(data_term));

typedef struct flood_then_stop {
    tr_ref to;
    uint32_t n;
    int stop;
    tr_status st[16];
} flood_then_stop;

static void
do_flood_then_stop(tr_cx *cx, void *arg)
{
    flood_then_stop *f = arg;

    for (uint32_t i = 0; i < f->n; i++) {
        f->st[i] = tr_send(cx, f->to, MSG_DATA, &i, sizeof i);
    }
    if (f->stop) {
        f->st[f->n] = tr_stop(cx, f->to);
    }
}

/* One worker: while the caller's handler queues 10 messages (and maybe a
 * stop), the receiver cannot run. */
static void
run_queued_then_end(uint32_t exit_at, int stop, uint32_t handled,
                    uint32_t first_dead)
{
    flood_then_stop f = {0};
    tr_ref p;

    g_data_handled = g_data_terms = 0;
    g_data_exit_at = exit_at;
    g_data_kind = (tr_exit_kind)99;
    it_dl_reset();
    g_rt = it_runtime(1, NULL);
    p = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    f.to = it_spawn(g_rt, &data_actor, 64, 0, TR_BACKPRESSURE);
    f.n = 10;
    f.stop = stop;
    it_call_sync(g_rt, p, do_flood_then_stop, &f);
    for (uint32_t i = 0; i < 10 + (stop ? 1u : 0u); i++) {
        TR_ASSERT_OK(f.st[i]);
    }
    IT_WAIT_UNTIL(IT_LOAD(g_data_terms) == 1);
    IT_WAIT_UNTIL(it_dl_total() == 10 - first_dead);
    assert_int_equal(IT_LOAD(g_data_handled), handled);
    assert_int_equal(g_data_kind, TR_EXIT_NORMAL);
    for (uint32_t i = 0; i < 10 - first_dead; i++) {
        const it_dl *d = it_dl_at(i);

        assert_int_equal(d->type, MSG_DATA);
        assert_int_equal(d->reason, TR_EDEAD);
        assert_int_equal(d->seq, first_dead + i);
        assert_true(tr_ref_eq(d->to, f.to));
        assert_true(tr_ref_eq(d->from, p));
    }
    tr_runtime_destroy(&g_rt);
}

static void
test_queued_messages_dead_lettered_on_end(void **state)
{
    (void)state;
    /* Stopped with 10 queued: the stop travels on the system lane and
     * comes first; none is handled. */
    run_queued_then_end(UINT32_MAX, 1, 0, 0);
    /* The first handler exits: the other 9 go to dead letters. */
    run_queued_then_end(0, 0, 1, 1);
}

/* ---- tr_self, tr_sender, spawning from a handler, limits --------------- */

static struct {
    tr_ref self;
    tr_ref child;
    tr_status spawn_st;
    tr_status send_st;
} g_hs;

static void
do_send_point(tr_cx *cx, void *arg)
{
    tr_ref to = *(tr_ref *)arg;

    g_hs.self = tr_self(cx);
    g_hs.send_st = tr_send(cx, to, MSG_POINT, &g_pt, sizeof g_pt);
}

static void
do_spawn_child(tr_cx *cx, void *arg)
{
    (void)arg;
    g_hs.self = tr_self(cx);
    g_hs.child = TR_NOREF;
    g_hs.spawn_st = tr_spawn(cx, &probe_actor, NULL, &g_hs.child);
    if (g_hs.spawn_st == TR_OK) {
        g_hs.send_st = tr_send(cx, g_hs.child, MSG_POINT, &g_pt, sizeof g_pt);
    }
}

static void
test_self_and_sender(void **state)
{
    tr_ref p, a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);

    TR_ASSERT_OK(tr_send(g_rt, p, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.empties) == 1);
    assert_true(tr_ref_is_none(g_probe.empty_sender));

    it_call_sync(g_rt, a, do_send_point, &p);
    TR_ASSERT_OK(g_hs.send_st);
    IT_WAIT_UNTIL(IT_LOAD(g_probe.points) == 1);
    assert_true(tr_ref_eq(g_hs.self, a));
    assert_true(tr_ref_eq(g_probe.sender, a));
    assert_true(tr_ref_eq(g_probe.self, p));
    assert_false(tr_ref_eq(a, p));
}

static void
test_spawn_from_handler(void **state)
{
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    memset(&g_probe, 0, sizeof g_probe);
    it_call_sync(g_rt, a, do_spawn_child, NULL);
    TR_ASSERT_OK(g_hs.spawn_st);
    TR_ASSERT_OK(g_hs.send_st);
    assert_false(tr_ref_is_none(g_hs.child));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.points) == 1);
    assert_true(tr_ref_eq(g_probe.sender, a));
    assert_true(tr_ref_eq(g_probe.self, g_hs.child));
    /* The child is an ordinary actor. */
    TR_ASSERT_OK(tr_send(g_rt, g_hs.child, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.empties) == 1);
    assert_int_equal(it_stats(g_rt).spawned, 2);
    assert_int_equal(it_stats(g_rt).alive, 2);
}

static void
test_actor_limit(void **state)
{
    tr_config cfg = {0};
    tr_ref a, p1, p2, extra = TR_NOREF;

    (void)state;
    cfg.max_actors = 3;
    g_rt = it_runtime(2, &cfg);
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    p1 = spawn_probe(g_rt);
    p2 = spawn_probe(g_rt);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);
    assert_true(tr_ref_is_none(extra));
    it_call_sync(g_rt, a, do_spawn_child, NULL);
    TR_ASSERT_STATUS(g_hs.spawn_st, TR_ELIMIT);
    assert_true(tr_ref_is_none(g_hs.child));

    /* One ends: room for one more, and only one. */
    TR_ASSERT_OK(tr_stop(g_rt, p1));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 2);
    TR_ASSERT_OK(tr_spawn(g_rt, &probe_actor, NULL, &extra));
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);
    assert_int_equal(it_stats(g_rt).spawned, 4);
    (void)p2;
}

/* Workers hold actor-limit reservations in batches while the limit is far,
 * and keep those of actors that end on them: the limit must still bind on
 * actors, exactly, whoever spawns (a handler or main) and wherever the
 * reservations sit. */
#define LIMIT_N 400u
static tr_ref g_many[LIMIT_N];
static uint32_t g_nmany;

static void
do_spawn_many(tr_cx *cx, void *arg)
{
    uint32_t *made = arg;
    tr_ref r;

    *made = 0;
    while (g_nmany < LIMIT_N && tr_spawn(cx, &probe_actor, NULL, &r) == TR_OK) {
        g_many[g_nmany++] = r;
        (*made)++;
    }
    g_hs.spawn_st = tr_spawn(cx, &probe_actor, NULL, &r);
}

static void
test_actor_limit_with_reservations(void **state)
{
    tr_config cfg = {0};
    tr_ref a, extra;
    uint32_t made;

    (void)state;
    g_nmany = 0;
    cfg.max_actors = LIMIT_N;
    g_rt = it_runtime(2, &cfg);
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_spawn_many, &made);
    assert_int_equal(made, LIMIT_N - 1); /* and `a` makes LIMIT_N */
    TR_ASSERT_STATUS(g_hs.spawn_st, TR_ELIMIT);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);
    assert_int_equal(it_stats(g_rt).alive, LIMIT_N);

    /* Ten end (on either worker, which keeps their reservations): room for
     * ten more, five from main and five from a handler, and no more. Their
     * ends are awaited by sends, not by the stats, which would take the
     * reservations back and leave nothing for the spawns to find. */
    for (uint32_t i = 0; i < 10; i++) {
        TR_ASSERT_OK(tr_stop(g_rt, g_many[i]));
    }
    for (uint32_t i = 0; i < 10; i++) {
        IT_WAIT_UNTIL(tr_send(g_rt, g_many[i], MSG_EMPTY, NULL, 0) == TR_EDEAD);
    }
    for (uint32_t i = 0; i < 5; i++) {
        TR_ASSERT_OK(tr_spawn(g_rt, &probe_actor, NULL, &extra));
    }
    g_nmany = LIMIT_N - 5;
    it_call_sync(g_rt, a, do_spawn_many, &made);
    assert_int_equal(made, 5);
    TR_ASSERT_STATUS(g_hs.spawn_st, TR_ELIMIT);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);
    assert_int_equal(it_stats(g_rt).alive, LIMIT_N);
    assert_int_equal(it_stats(g_rt).spawned, 1 + (LIMIT_N - 1) + 10);
    /* The stats took every reservation back: still exactly at the limit. */
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);
}

/* Main spawns to the limit (reservations taken in batches by the outside
 * threads' block), then many end on the workers (whose kept reservations
 * overflow and go back a batch at a time): the limit still binds exactly,
 * and every reservation is found again. */
static void
test_actor_limit_outside_batches(void **state)
{
    tr_config cfg = {0};
    tr_ref extra;
    uint32_t made = 0;

    (void)state;
    cfg.max_actors = LIMIT_N;
    g_rt = it_runtime(2, &cfg);
    while (made < LIMIT_N &&
           tr_spawn(g_rt, &probe_actor, NULL, &g_many[made]) == TR_OK) {
        made++;
    }
    assert_int_equal(made, LIMIT_N);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);

    for (uint32_t i = 0; i < LIMIT_N / 2; i++) {
        TR_ASSERT_OK(tr_stop(g_rt, g_many[i]));
    }
    for (uint32_t i = 0; i < LIMIT_N / 2; i++) {
        IT_WAIT_UNTIL(tr_send(g_rt, g_many[i], MSG_EMPTY, NULL, 0) == TR_EDEAD);
    }
    made = 0;
    while (made < LIMIT_N &&
           tr_spawn(g_rt, &probe_actor, NULL, &g_many[made]) == TR_OK) {
        made++;
    }
    assert_int_equal(made, LIMIT_N / 2);
    assert_int_equal(it_stats(g_rt).alive, LIMIT_N);
    assert_int_equal(it_stats(g_rt).spawned, LIMIT_N + LIMIT_N / 2);
    TR_ASSERT_STATUS(tr_spawn(g_rt, &probe_actor, NULL, &extra), TR_ELIMIT);
}

/* ---- States start zeroed ----------------------------------------------- */

/* One state small enough to live in its actor's header, one in its slot's
 * area of the table, one from the allocator. */
typedef struct tiny_state {
    unsigned char b[16];
} tiny_state;

typedef struct small_state {
    unsigned char b[48];
} small_state;

typedef struct large_state {
    unsigned char b[64];
} large_state;

#define ZERO_ROUNDS 3u
#define ZERO_N      2000u

static struct {
    _Atomic uint32_t inits;
    _Atomic uint32_t dirty; /* states that did not start zeroed */
} g_zs;

/* Checks the state is all zero, then dirties it for the slot's next actor,
 * and ends. */
static tr_status
zs_check(tr_cx *cx, unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            IT_INC(g_zs.dirty);
            break;
        }
    }
    memset(b, 0xa5, n);
    IT_INC(g_zs.inits);
    return tr_exit(cx, 0, NULL);
}

static tr_status
tiny_init(tr_cx *cx, tiny_state *self, const void *unused)
{
    (void)unused;
    return zs_check(cx, self->b, sizeof self->b);
}

static tr_status
small_init(tr_cx *cx, small_state *self, const void *unused)
{
    (void)unused;
    return zs_check(cx, self->b, sizeof self->b);
}

static tr_status
large_init(tr_cx *cx, large_state *self, const void *unused)
{
    (void)unused;
    return zs_check(cx, self->b, sizeof self->b);
}

TR_ACTOR(tiny_state_actor, tiny_state, TR_ON_INIT(void, tiny_init));
TR_ACTOR(small_state_actor, small_state, TR_ON_INIT(void, small_init));
TR_ACTOR(large_state_actor, large_state, TR_ON_INIT(void, large_init));

static void
test_states_start_zeroed(void **state)
{
    static const tr_behavior *const kinds[] = {
        &tiny_state_actor, &small_state_actor, &large_state_actor};
    uint32_t max_slot = 0;
    tr_ref r;

    (void)state;
    memset(&g_zs, 0, sizeof g_zs);
    g_rt = it_runtime(2, NULL);
    for (uint32_t round = 0; round < ZERO_ROUNDS; round++) {
        for (uint32_t i = 0; i < ZERO_N; i++) {
            TR_ASSERT_OK(tr_spawn(g_rt, kinds[(i + round) % 3], NULL, &r));
            max_slot = r.slot_ > max_slot ? r.slot_ : max_slot;
        }
        IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    }
    assert_int_equal(IT_LOAD(g_zs.inits), ZERO_ROUNDS * ZERO_N);
    assert_int_equal(IT_LOAD(g_zs.dirty), 0);
    /* Slots were reused, so states were written before. */
    assert_true(max_slot < ZERO_ROUNDS * ZERO_N);
}

/* ---- Stale refs -------------------------------------------------------- */

IT_COUNTER(counter_actor, spawn_counter, MSG_EMPTY)

#define STALE_N 200u

static void
test_stale_ref_never_reaches_new_actor(void **state)
{
    static tr_ref stale[STALE_N];
    static _Atomic uint64_t old_n, live_n;
    tr_config cfg = {0};
    tr_ref live;

    (void)state;
    old_n = live_n = 0;
    /* At most two actors alive at once and 200 spawns: the table's slots
     * are reused over and over. */
    cfg.max_actors = 2;
    g_rt = it_runtime(1, &cfg);
    for (uint32_t i = 0; i < STALE_N; i++) {
        stale[i] = spawn_counter(g_rt, &old_n);
        TR_ASSERT_OK(tr_send(g_rt, stale[i], MSG_EMPTY, NULL, 0));
        IT_WAIT_UNTIL(IT_LOAD(old_n) == i + 1);
        TR_ASSERT_OK(tr_stop(g_rt, stale[i]));
        IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    }
    assert_int_equal(IT_LOAD(old_n), STALE_N);
    live = spawn_counter(g_rt, &live_n);

    for (uint32_t i = 0; i < STALE_N; i++) {
        assert_false(tr_ref_eq(stale[i], live));
        TR_ASSERT_STATUS(tr_send(g_rt, stale[i], MSG_EMPTY, NULL, 0), TR_EDEAD);
        TR_ASSERT_STATUS(tr_stop(g_rt, stale[i]), TR_EDEAD);
    }
    assert_int_equal(it_dl_count(MSG_EMPTY, TR_EDEAD), STALE_N);
    /* The live actor got none of it, and was not stopped. */
    TR_ASSERT_OK(tr_send(g_rt, live, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(live_n) == 1);
    TR_ASSERT_OK(tr_send(g_rt, live, MSG_EMPTY, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(live_n) == 2);
    assert_int_equal(IT_LOAD(old_n), STALE_N);
    assert_int_equal(it_stats(g_rt).alive, 1);
}

static void
test_stop_dead_or_unknown(void **state)
{
    _Atomic uint64_t n = 0;
    tr_ref r;

    (void)state;
    g_rt = it_runtime(1, NULL);
    r = spawn_counter(g_rt, &n);
    TR_ASSERT_OK(tr_stop(g_rt, r));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    TR_ASSERT_STATUS(tr_stop(g_rt, r), TR_EDEAD);
    TR_ASSERT_STATUS(tr_stop(g_rt, TR_NOREF), TR_EDEAD);
    TR_ASSERT_STATUS(tr_stop((tr_runtime *)NULL, r), TR_EINVAL);
    /* A stop is not a user message: nothing is dead-lettered. */
    assert_int_equal(it_dl_total(), 0);
}

/* ---- Ask and reply ----------------------------------------------------- */

static void
test_ask_happy_path(void **state)
{
    tr_ref p;
    uint64_t v, reply;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    for (v = 1; v <= 20; v++) {
        reply = 0;
        TR_ASSERT_OK(tr_ask_wait(g_rt, p, MSG_ASK, &v, sizeof v, &reply,
                                 sizeof reply,
                                 (uint32_t)tr_test_scaled_ms(5000)));
        assert_int_equal(reply, v * 2);
    }
    assert_int_equal(IT_LOAD(g_probe.asks), 20);
    TR_ASSERT_OK((tr_status)(IT_LOAD(g_probe.reply_st) - 1000));
    assert_int_equal(it_dl_total(), 0);
}

static void
test_ask_errors(void **state)
{
    tr_config cfg = {0};
    tr_ref p;
    uint64_t v = 1, reply = 0;
    unsigned char big[65] = {0};

    (void)state;
    cfg.max_payload = 64;
    g_rt = it_runtime(1, &cfg);
    p = spawn_probe(g_rt);
    TR_ASSERT_STATUS(
        tr_ask_wait(NULL, p, MSG_ASK, &v, sizeof v, &reply, sizeof reply, 1000),
        TR_EINVAL);
    TR_ASSERT_STATUS(
        tr_ask_wait(g_rt, p, MSG_ASK, &v, sizeof v, NULL, sizeof reply, 1000),
        TR_EINVAL);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_ASK, NULL, sizeof v, &reply,
                                 sizeof reply, 1000),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, TR_MSG_RESERVED, &v, sizeof v, &reply,
                                 sizeof reply, 1000),
                     TR_EINVAL);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_BYTES, big, sizeof big, &reply,
                                 sizeof reply, 1000),
                     TR_EMSGSIZE);
    assert_int_equal(IT_LOAD(g_probe.asks), 0);
}

/* A handler that returns without answering: the asker hears TR_ENOREPLY
 * at once (not at its timeout), counted and logged. */
static _Atomic int g_logged;

static void
count_log(void *arg, tr_log_level level, const char *text)
{
    (void)arg;
    if (level == TR_LOG_ERROR && strstr(text, "probe_actor#") != NULL &&
        strstr(text, "without replying") != NULL) {
        IT_INC(g_logged);
    }
}

static void
test_ask_no_reply_is_answered(void **state)
{
    tr_config cfg = {.log_fn = count_log};
    tr_ref p;
    uint64_t v = 5, reply = 0, t0, elapsed;

    (void)state;
    IT_STORE(g_logged, 0);
    g_rt = it_runtime(2, &cfg);
    p = spawn_probe(g_rt);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_NOREPLY, &v, sizeof v, &reply,
                                 sizeof reply, 10000),
                     TR_ENOREPLY);
    elapsed = tr_test_now_ns() - t0;
    assert_true(elapsed < 5000u * 1000000u);
    assert_int_equal(IT_LOAD(g_probe.asks), 1);
    assert_int_equal(reply, 0);
    assert_int_equal(it_stats(g_rt).unanswered, 1);
    assert_int_equal(IT_LOAD(g_logged), 1);
}

/* A request still queued when its asker gave up is not handled: it counts
 * as expired, and its TR_ETIMEDOUT answer finds the asker gone. */
static void
test_ask_expired_request_is_not_handled(void **state)
{
    tr_config cfg = {0};
    tr_ref p, jam;
    uint64_t v = 21, reply = 0, t0;

    (void)state;
    cfg.drain_ms = 100;
    g_rt = it_runtime(1, &cfg);
    p = spawn_probe(g_rt);
    jam = it_jam_start(g_rt);
    /* The probe is muted: the request waits in its mailbox past the ask's
     * deadline. */
    it_gate_close(g_rt, p, jam);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(
        tr_ask_wait(g_rt, p, MSG_ASK, &v, sizeof v, &reply, sizeof reply, 50),
        TR_ETIMEDOUT);
    assert_true(tr_test_now_ns() - t0 >= 50u * 1000000u);
    /* Well past the deadline, even by a coarse clock. */
    tr_test_sleep_ms(30);

    /* Open the gate: the probe drops the request unhandled. */
    TR_ASSERT_OK(tr_stop(g_rt, jam));
    IT_WAIT_UNTIL(it_stats(g_rt).expired == 1);
    IT_WAIT_UNTIL(it_dl_count(TR_MSG_REPLY, TR_EDEAD) == 1);
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(g_probe.asks), 0);
    assert_int_equal(reply, 0);
    assert_int_equal(it_dl_count_type(TR_MSG_REPLY), 1);
    assert_int_equal(it_stats(g_rt).dead_letters, it_dl_total());
}

static void
test_ask_reply_of_other_size(void **state)
{
    tr_ref p;
    uint64_t v = 5, reply = 0;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_BADREPLY, &v, sizeof v, &reply,
                                 sizeof reply,
                                 (uint32_t)tr_test_scaled_ms(5000)),
                     TR_EBADMSG);
    assert_int_equal(reply, 0);
}

static tr_status g_ask_in_handler = TR_OK;

static void
do_ask_in_handler(tr_cx *cx, void *arg)
{
    tr_ref to = *(tr_ref *)arg;
    uint64_t v = 1, reply = 0;

    g_ask_in_handler = tr_ask_wait(tr_cx_runtime(cx), to, MSG_ASK, &v, sizeof v,
                                   &reply, sizeof reply, 1000);
}

static void
test_ask_from_handler_is_estate(void **state)
{
    tr_ref p, a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    a = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, a, do_ask_in_handler, &p);
    TR_ASSERT_STATUS(g_ask_in_handler, TR_ESTATE);
    assert_int_equal(IT_LOAD(g_probe.asks), 0);
}

typedef struct ask_job {
    tr_runtime *rt;
    tr_ref to;
    uint32_t type;
    uint32_t timeout_ms;
    tr_status st;
    uint64_t elapsed_ns;
    _Atomic int done;
} ask_job;

static void *
ask_main(void *arg)
{
    ask_job *j = arg;
    uint64_t v = 3, reply = 0, t0 = tr_test_now_ns();

    j->st = tr_ask_wait(j->rt, j->to, j->type, &v, sizeof v, &reply,
                        sizeof reply, j->timeout_ms);
    j->elapsed_ns = tr_test_now_ns() - t0;
    IT_STORE(j->done, 1);
    return NULL;
}

static void
test_ask_dead_actor(void **state)
{
    tr_config cfg = {0};
    tr_ref p, jam;
    uint64_t v = 1, reply = 0, base;
    ask_job j = {0};
    pthread_t th;

    (void)state;
    cfg.drain_ms = 100;
    g_rt = it_runtime(1, &cfg);

    /* An actor already dead. */
    p = spawn_probe(g_rt);
    TR_ASSERT_OK(tr_stop(g_rt, p));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_ASK, &v, sizeof v, &reply,
                                 sizeof reply,
                                 (uint32_t)tr_test_scaled_ms(5000)),
                     TR_EDEAD);

    /* An actor that ends while the request waits in its mailbox: the asker
     * learns at once, long before its timeout. */
    p = spawn_probe(g_rt);
    jam = it_jam_start(g_rt);
    it_gate_close(g_rt, p, jam);
    base = it_stats(g_rt).alive;
    j.rt = g_rt;
    j.to = p;
    j.type = MSG_ASK;
    j.timeout_ms = (uint32_t)tr_test_scaled_ms(20000);
    assert_int_equal(pthread_create(&th, NULL, ask_main, &j), 0);
    IT_WAIT_UNTIL(it_stats(g_rt).alive > base); /* the asker's reply port */
    tr_test_sleep_ms(20);
    TR_ASSERT_OK(tr_stop(g_rt, p));
    IT_WAIT_UNTIL(IT_LOAD(j.done) == 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    TR_ASSERT_STATUS(j.st, TR_EDEAD);
    assert_true(j.elapsed_ns / 1000000u < j.timeout_ms / 2);
    assert_int_equal(IT_LOAD(g_probe.asks), 0);
    TR_ASSERT_OK(tr_stop(g_rt, jam));
}

/* The actor ends in the handler of the request without replying. The
 * header promises TR_EDEAD for "the actor ended before replying"; waiting
 * for the deadline and reporting TR_ETIMEDOUT breaks that promise. */
static void
test_ask_actor_ends_without_reply(void **state)
{
    tr_ref p;
    uint64_t v = 1, reply = 0, t0, elapsed_ms;
    uint32_t timeout = (uint32_t)tr_test_scaled_ms(1000);

    (void)state;
    g_rt = it_runtime(2, NULL);
    p = spawn_probe(g_rt);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_ask_wait(g_rt, p, MSG_EXIT_NOREPLY, &v, sizeof v,
                                 &reply, sizeof reply, timeout),
                     TR_EDEAD);
    elapsed_ms = (tr_test_now_ns() - t0) / 1000000u;
    assert_true(elapsed_ms < timeout);
}

static void
test_reply_without_sender(void **state)
{
    tr_ref p;

    (void)state;
    g_rt = it_runtime(1, NULL);
    p = spawn_probe(g_rt);
    TR_ASSERT_OK(tr_send(g_rt, p, MSG_REPLY_NOSENDER, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_probe.reply_st) != 0);
    TR_ASSERT_STATUS((tr_status)(IT_LOAD(g_probe.reply_st) - 1000), TR_EINVAL);
    TR_ASSERT_STATUS(tr_reply(NULL, NULL, 0), TR_EINVAL);
    assert_int_equal(it_dl_total(), 0);
}

#define T(f) IT_TEST(f)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_typed_handler_gets_payload),
        T(test_size_mismatch_is_refused),
        T(test_void_row_takes_only_empty),
        T(test_bytes_row_takes_any_size),
        T(test_unhandled_goes_to_dead_letters),
        T(test_unhandled_hook_sees_type_and_size),
        T(test_init_receives_argument),
        T(test_spawn_errors),
        T(test_init_failure_ends_actor),
        T(test_terminate_reasons),
        T(test_terminate_hook_can_send),
        T(test_queued_messages_dead_lettered_on_end),
        T(test_self_and_sender),
        T(test_spawn_from_handler),
        T(test_actor_limit),
        T(test_actor_limit_with_reservations),
        T(test_actor_limit_outside_batches),
        T(test_states_start_zeroed),
        T(test_stale_ref_never_reaches_new_actor),
        T(test_stop_dead_or_unknown),
        T(test_ask_happy_path),
        T(test_ask_errors),
        T(test_ask_no_reply_is_answered),
        T(test_ask_expired_request_is_not_handled),
        T(test_ask_reply_of_other_size),
        T(test_ask_from_handler_is_estate),
        T(test_ask_dead_actor),
        T(test_ask_actor_ends_without_reply),
        T(test_reply_without_sender),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
