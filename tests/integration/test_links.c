/* Links, monitors, exit signals: an abnormal end kills linked actors unless
 * they trap exits (then it is a TR_MSG_EXIT message), a normal end signals
 * only trapping ones, unlink stops signals, spawn-linked children are
 * linked before they run, a monitor fires one TR_MSG_DOWN exactly once
 * with the reason (NOPROC for a dead ref, at once), demonitor removes even
 * a queued DOWN, and tr_kill cannot be trapped. */
#include "itest.h"

enum {
    MSG_LINK = 1,  /* tr_ref: link to it */
    MSG_UNLINK,    /* tr_ref */
    MSG_TRAP,      /* void: trap exits */
    MSG_MONITOR,   /* tr_ref: monitor it */
    MSG_DEMON,     /* void: demonitor the last monitor */
    MSG_FAIL,      /* void: the handler fails */
    MSG_QUIT,      /* void: exit normally */
    MSG_SPAWNLINK, /* void: spawn a linked child that fails in init */
    MSG_MONITOR2,  /* tr_ref: monitor twice, then demonitor the first */
};

#define MAXEV 64

/* What each probe saw, by probe number. */
typedef struct seen {
    _Atomic int exits;     /* TR_MSG_EXIT messages */
    _Atomic int downs;     /* TR_MSG_DOWN messages */
    _Atomic int ended;     /* terminate hook ran */
    _Atomic int end_kind;  /* its reason's kind + 100 */
    _Atomic int exit_kind; /* last TR_MSG_EXIT's reason kind + 100 */
    _Atomic int down_kind; /* last TR_MSG_DOWN's reason kind + 100 */
    _Atomic int status;    /* last call's status + 100000 */
    tr_ref down_who;       /* written before downs is bumped */
} seen;

static seen g_seen[8];

struct probe {
    int id;
    tr_monitor mon, mon2;
};

static tr_status
p_init(tr_cx *cx, struct probe *self, const int *id)
{
    (void)cx;
    self->id = *id;
    return TR_OK;
}

static void
result(struct probe *self, tr_status st)
{
    IT_STORE(g_seen[self->id].status, (int)st + 100000);
}

static tr_status
p_link(tr_cx *cx, struct probe *self, const tr_ref *r)
{
    result(self, tr_link(cx, *r));
    return TR_OK;
}

static tr_status
p_unlink(tr_cx *cx, struct probe *self, const tr_ref *r)
{
    result(self, tr_unlink(cx, *r));
    return TR_OK;
}

static tr_status
p_trap(tr_cx *cx, struct probe *self, const void *none)
{
    (void)none;
    result(self, tr_trap_exit(cx, true));
    return TR_OK;
}

static tr_status
p_monitor(tr_cx *cx, struct probe *self, const tr_ref *r)
{
    result(self, tr_monitor_actor(cx, *r, &self->mon));
    return TR_OK;
}

static tr_status
p_monitor2(tr_cx *cx, struct probe *self, const tr_ref *r)
{
    tr_status st = tr_monitor_actor(cx, *r, &self->mon);

    if (st == TR_OK) {
        st = tr_monitor_actor(cx, *r, &self->mon2);
    }
    result(self, st == TR_OK ? tr_demonitor(cx, self->mon) : st);
    return TR_OK;
}

static tr_status
p_demon(tr_cx *cx, struct probe *self, const void *none)
{
    tr_status st = tr_demonitor(cx, self->mon);

    (void)none;
    /* a second time: no such monitor */
    result(self, st == TR_OK ? tr_demonitor(cx, self->mon) : TR_EFAILED);
    return TR_OK;
}

static tr_status
p_fail(tr_cx *cx, struct probe *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    return TR_EFAILED;
}

static tr_status
p_quit(tr_cx *cx, struct probe *self, const void *none)
{
    (void)self;
    (void)none;
    return tr_exit(cx, 0, NULL);
}

static tr_status
p_exit(tr_cx *cx, struct probe *self, const tr_exit_msg *e)
{
    (void)cx;
    IT_STORE(g_seen[self->id].exit_kind, (int)e->reason.kind + 100);
    IT_INC(g_seen[self->id].exits);
    return TR_OK;
}

static tr_status
p_down(tr_cx *cx, struct probe *self, const tr_down *d)
{
    (void)cx;
    IT_STORE(g_seen[self->id].down_kind, (int)d->reason.kind + 100);
    g_seen[self->id].down_who = d->who;
    IT_INC(g_seen[self->id].downs);
    return TR_OK;
}

static tr_status
p_terminate(tr_cx *cx, struct probe *self, const tr_reason *why)
{
    (void)cx;
    IT_STORE(g_seen[self->id].end_kind, (int)why->kind + 100);
    IT_INC(g_seen[self->id].ended);
    return TR_OK;
}

static tr_status
child_init(tr_cx *cx, void *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    return TR_EFAILED; /* fails before any message */
}

TR_ACTOR(child_actor, char, TR_ON_INIT(void, child_init));

static tr_status
p_spawnlink(tr_cx *cx, struct probe *self, const void *none)
{
    tr_spawn_opts o = {.link = true};
    tr_ref r;

    (void)none;
    result(self, tr_spawn(cx, &child_actor, &o, &r));
    return TR_OK;
}

TR_ACTOR(probe_actor, struct probe, TR_ON_INIT(int, p_init),
         TR_ON(MSG_LINK, tr_ref, p_link), TR_ON(MSG_UNLINK, tr_ref, p_unlink),
         TR_ON(MSG_TRAP, void, p_trap), TR_ON(MSG_MONITOR, tr_ref, p_monitor),
         TR_ON(MSG_MONITOR2, tr_ref, p_monitor2),
         TR_ON(MSG_DEMON, void, p_demon), TR_ON(MSG_FAIL, void, p_fail),
         TR_ON(MSG_QUIT, void, p_quit), TR_ON(MSG_SPAWNLINK, void, p_spawnlink),
         TR_ON(TR_MSG_EXIT, tr_exit_msg, p_exit),
         TR_ON(TR_MSG_DOWN, tr_down, p_down), TR_ON_TERMINATE(p_terminate));

static tr_ref
probe(int id)
{
    tr_spawn_opts o = {.arg = &id, .arg_len = sizeof id};
    tr_ref r;

    memset(&g_seen[id], 0, sizeof g_seen[id]);
    TR_ASSERT_OK(tr_spawn(g_rt, &probe_actor, &o, &r));
    return r;
}

/* Sends and waits until the probe ran the call. */
static tr_status
call(tr_ref p, int id, uint32_t type, const void *data, size_t len)
{
    IT_STORE(g_seen[id].status, 0);
    TR_ASSERT_OK(tr_send(g_rt, p, type, data, len));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[id].status) != 0);
    return (tr_status)(IT_LOAD(g_seen[id].status) - 100000);
}

static void
test_abnormal_end_kills_linked(void **state)
{
    tr_ref a, b, c;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    b = probe(1);
    c = probe(2);
    TR_ASSERT_OK(call(a, 0, MSG_LINK, &b, sizeof b));
    TR_ASSERT_OK(call(b, 1, MSG_LINK, &c, sizeof c)); /* a - b - c */
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[2].ended) == 1);
    /* the failure travelled the chain, with its kind */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(IT_LOAD(g_seen[i].ended), 1);
        assert_int_equal(IT_LOAD(g_seen[i].end_kind), TR_EXIT_FAILED + 100);
    }
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
}

static void
test_normal_end_spares_linked(void **state)
{
    tr_ref a, b;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    b = probe(1);
    TR_ASSERT_OK(call(a, 0, MSG_LINK, &b, sizeof b));
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_QUIT, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].ended) == 1);
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(g_seen[1].ended), 0);
    assert_int_equal(it_stats(g_rt).alive, 1);
}

static void
test_trap_exit_turns_signals_into_messages(void **state)
{
    tr_ref a, b;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    b = probe(1);
    TR_ASSERT_OK(call(b, 1, MSG_TRAP, NULL, 0));
    TR_ASSERT_OK(call(a, 0, MSG_LINK, &b, sizeof b));
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[1].exits) == 1);
    assert_int_equal(IT_LOAD(g_seen[1].exit_kind), TR_EXIT_FAILED + 100);
    assert_int_equal(IT_LOAD(g_seen[1].ended), 0);
    /* a trapping actor hears of a normal end too */
    a = probe(2);
    TR_ASSERT_OK(call(a, 2, MSG_LINK, &b, sizeof b));
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_QUIT, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[1].exits) == 2);
    assert_int_equal(IT_LOAD(g_seen[1].exit_kind), TR_EXIT_NORMAL + 100);
}

static void
test_unlink_stops_signals(void **state)
{
    tr_ref a, b;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    b = probe(1);
    TR_ASSERT_OK(call(a, 0, MSG_LINK, &b, sizeof b));
    TR_ASSERT_OK(call(b, 1, MSG_UNLINK, &a, sizeof a)); /* from the other */
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].ended) == 1);
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(g_seen[1].ended), 0);
}

static void
test_link_errors(void **state)
{
    tr_ref a, dead;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    dead = probe(1);
    TR_ASSERT_OK(tr_send(g_rt, dead, MSG_QUIT, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[1].ended) == 1);
    TR_ASSERT_STATUS(call(a, 0, MSG_LINK, &dead, sizeof dead), TR_EDEAD);
    TR_ASSERT_STATUS(call(a, 0, MSG_LINK, &a, sizeof a), TR_EINVAL);
    TR_ASSERT_STATUS(tr_link(NULL, a), TR_EINVAL);
    TR_ASSERT_STATUS(tr_trap_exit(NULL, true), TR_EINVAL);
    TR_ASSERT_STATUS(tr_kill(g_rt, dead), TR_EDEAD);
    {
        tr_spawn_opts o = {.link = true};
        tr_ref r;

        /* from outside there is no one to link to */
        TR_ASSERT_STATUS(tr_spawn(g_rt, &child_actor, &o, &r), TR_EINVAL);
    }
}

/* A spawn-linked child that fails in its init hook takes its parent down:
 * the link existed before it ran. */
static void
test_spawn_link(void **state)
{
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    TR_ASSERT_OK(call(a, 0, MSG_SPAWNLINK, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].ended) == 1);
    assert_int_equal(IT_LOAD(g_seen[0].end_kind), TR_EXIT_FAILED + 100);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
}

static void
test_monitor_fires_once(void **state)
{
    tr_ref w, t;

    (void)state;
    g_rt = it_runtime(2, NULL);
    w = probe(0);
    t = probe(1);
    TR_ASSERT_OK(call(w, 0, MSG_MONITOR, &t, sizeof t));
    TR_ASSERT_OK(tr_send(g_rt, t, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].downs) == 1);
    assert_int_equal(IT_LOAD(g_seen[0].down_kind), TR_EXIT_FAILED + 100);
    assert_true(tr_ref_eq(g_seen[0].down_who, t));
    assert_int_equal(IT_LOAD(g_seen[0].ended), 0); /* monitors don't kill */
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(g_seen[0].downs), 1);
    /* the monitor is spent */
    TR_ASSERT_STATUS(call(w, 0, MSG_DEMON, NULL, 0), TR_EFAILED);
}

static void
test_monitor_dead_ref_is_noproc(void **state)
{
    tr_ref w, t;

    (void)state;
    g_rt = it_runtime(2, NULL);
    w = probe(0);
    t = probe(1);
    TR_ASSERT_OK(tr_stop(g_rt, t));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[1].ended) == 1);
    TR_ASSERT_OK(call(w, 0, MSG_MONITOR, &t, sizeof t));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].downs) == 1);
    assert_int_equal(IT_LOAD(g_seen[0].down_kind), TR_EXIT_NOPROC + 100);
    /* and TR_NOREF is never alive */
    t = TR_NOREF;
    TR_ASSERT_OK(call(w, 0, MSG_MONITOR, &t, sizeof t));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].downs) == 2);
}

static void
test_demonitor(void **state)
{
    tr_ref w, t;

    (void)state;
    g_rt = it_runtime(2, NULL);
    w = probe(0);
    t = probe(1);
    TR_ASSERT_OK(call(w, 0, MSG_MONITOR2, &t, sizeof t));
    TR_ASSERT_OK(tr_stop(g_rt, t));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].downs) == 1); /* the second monitor */
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(g_seen[0].downs), 1);
    assert_int_equal(IT_LOAD(g_seen[0].down_kind), TR_EXIT_NORMAL + 100);
}

static void
test_kill_is_not_trapped(void **state)
{
    tr_ref a, b;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = probe(0);
    b = probe(1);
    TR_ASSERT_OK(call(a, 0, MSG_TRAP, NULL, 0));
    TR_ASSERT_OK(call(b, 1, MSG_TRAP, NULL, 0));
    TR_ASSERT_OK(call(a, 0, MSG_LINK, &b, sizeof b));
    TR_ASSERT_OK(tr_kill(g_rt, a));
    IT_WAIT_UNTIL(IT_LOAD(g_seen[0].ended) == 1);
    assert_int_equal(IT_LOAD(g_seen[0].end_kind), TR_EXIT_KILLED + 100);
    /* b traps the killed signal that came over the link */
    IT_WAIT_UNTIL(IT_LOAD(g_seen[1].exits) == 1);
    assert_int_equal(IT_LOAD(g_seen[1].exit_kind), TR_EXIT_KILLED + 100);
    assert_int_equal(IT_LOAD(g_seen[1].ended), 0);
}

/* Many watchers and links on one actor that ends: each hears exactly once,
 * even past its mailbox capacity. */
static void
test_many_watchers(void **state)
{
    enum { N = 6 };
    tr_ref t, w[N];

    (void)state;
    g_rt = it_runtime(2, NULL);
    t = probe(7);
    for (int i = 0; i < N; i++) {
        w[i] = probe(i);
        TR_ASSERT_OK(call(w[i], i, MSG_TRAP, NULL, 0));
        TR_ASSERT_OK(call(w[i], i, MSG_MONITOR, &t, sizeof t));
        TR_ASSERT_OK(call(w[i], i, MSG_LINK, &t, sizeof t));
    }
    TR_ASSERT_OK(tr_send(g_rt, t, MSG_FAIL, NULL, 0));
    for (int i = 0; i < N; i++) {
        IT_WAIT_UNTIL(IT_LOAD(g_seen[i].downs) == 1 &&
                      IT_LOAD(g_seen[i].exits) == 1);
    }
    tr_test_sleep_ms(20);
    for (int i = 0; i < N; i++) {
        assert_int_equal(IT_LOAD(g_seen[i].downs), 1);
        assert_int_equal(IT_LOAD(g_seen[i].exits), 1);
        assert_int_equal(IT_LOAD(g_seen[i].ended), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_abnormal_end_kills_linked),
        IT_TEST(test_normal_end_spares_linked),
        IT_TEST(test_trap_exit_turns_signals_into_messages),
        IT_TEST(test_unlink_stops_signals),
        IT_TEST(test_link_errors),
        IT_TEST(test_spawn_link),
        IT_TEST(test_monitor_fires_once),
        IT_TEST(test_monitor_dead_ref_is_noproc),
        IT_TEST(test_demonitor),
        IT_TEST(test_kill_is_not_trapped),
        IT_TEST(test_many_watchers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
