/* Fairness through the public API: an actor handles at most `budget`
 * messages per turn, so one flooded actor cannot starve the others; one
 * that senders wait on goes on while they wait, up to 16 budgets.
 *
 * Both tests run on one worker, where turns cannot overlap and the order
 * of events follows from the scheduling rules alone. */
#include "itest.h"

enum {
    MSG_FLOOD = 1,
    MSG_GO,
    MSG_PING,
    MSG_FEED,
};

#define BUDGET 8u

static tr_runtime *
one_worker_runtime(void)
{
    tr_config cfg = {0};

    cfg.budget = BUDGET;
    cfg.mailbox_capacity = 4096;
    return it_runtime(1, &cfg);
}

/* ---- A flood cannot starve a single message ---------------------------- */

#define QUEUE_K 1000u

static struct {
    _Atomic uint64_t handled;
    _Atomic uint64_t sent_ok; /* initial sends and re-sends that worked */
    _Atomic uint64_t errors;
    _Atomic int stop;
    _Atomic uint64_t seen_at_ping;
    _Atomic int pinged;
} g_fl;

/* Keeps QUEUE_K messages queued to itself: each one handled sends the next,
 * until told to stop. */
static tr_status
flooder_go(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    for (uint32_t i = 0; i < QUEUE_K; i++) {
        if (tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0) == TR_OK) {
            IT_INC(g_fl.sent_ok);
        } else {
            IT_INC(g_fl.errors);
        }
    }
    return TR_OK;
}

static tr_status
flooder_flood(tr_cx *cx, void *self, const void *unused)
{
    (void)self;
    (void)unused;
    IT_INC(g_fl.handled);
    if (!IT_LOAD(g_fl.stop)) {
        if (tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0) == TR_OK) {
            IT_INC(g_fl.sent_ok);
        } else {
            IT_INC(g_fl.errors);
        }
    }
    return TR_OK;
}

TR_ACTOR(flood_actor, char, TR_ON(MSG_GO, void, flooder_go),
         TR_ON(MSG_FLOOD, void, flooder_flood));

static tr_status
bystander_ping(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_STORE(g_fl.seen_at_ping, IT_LOAD(g_fl.handled));
    IT_STORE(g_fl.stop, 1);
    IT_STORE(g_fl.pinged, 1);
    return TR_OK;
}

TR_ACTOR(bystander, char, TR_ON(MSG_PING, void, bystander_ping));

static void
test_flood_does_not_starve_others(void **state)
{
    tr_ref f, v;
    uint64_t seen, total;

    (void)state;
    memset(&g_fl, 0, sizeof g_fl);
    g_rt = one_worker_runtime();
    f = it_spawn(g_rt, &flood_actor, 0, 0, TR_BACKPRESSURE);
    v = it_spawn(g_rt, &bystander, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_send(g_rt, f, MSG_GO, NULL, 0));
    /* The flood never ends by itself: it is well under way, and only the
     * bystander's message can stop it. */
    IT_WAIT_UNTIL(IT_LOAD(g_fl.handled) >= 5 * QUEUE_K);
    TR_ASSERT_OK(tr_send(g_rt, v, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g_fl.pinged) == 1);
    /* The flooder then drains what it had queued and goes idle. */
    IT_WAIT_UNTIL(IT_LOAD(g_fl.handled) == IT_LOAD(g_fl.sent_ok));
    seen = IT_LOAD(g_fl.seen_at_ping);
    total = IT_LOAD(g_fl.handled);
    assert_int_equal(IT_LOAD(g_fl.errors), 0);
    assert_true(seen >= 5 * QUEUE_K);
    /* The ping was handled while the flood was still going. */
    assert_true(seen < total);
    assert_true(total - seen >= QUEUE_K - BUDGET);
    tr_test_sleep_ms(10);
    assert_int_equal(IT_LOAD(g_fl.handled), total);
    assert_int_equal(it_dl_total(), 0);
}

/* ---- Turns are at most `budget` messages long -------------------------- */

#define LOG_MAX    4096u
#define LOG_REFILL 2000u
#define START_K    20u

static struct {
    _Atomic uint32_t claimed;
    _Atomic uint32_t done;
    uint8_t id[LOG_MAX];
} g_log;

static tr_status
logger_init(tr_cx *cx, uint8_t *self, const uint8_t *id)
{
    (void)cx;
    *self = *id;
    return TR_OK;
}

static tr_status
logger_go(tr_cx *cx, uint8_t *self, const void *unused)
{
    (void)self;
    (void)unused;
    for (uint32_t i = 0; i < START_K; i++) {
        (void)tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0);
    }
    return TR_OK;
}

/* Appends `id` to the log; returns its place. */
static uint32_t
log_as(uint8_t id)
{
    uint32_t i =
        atomic_fetch_add_explicit(&g_log.claimed, 1, memory_order_relaxed);

    if (i < LOG_MAX) {
        g_log.id[i] = id;
    }
    IT_INC(g_log.done);
    return i;
}

/* Logs who ran; keeps itself flooded while the log is short. */
static tr_status
logger_flood(tr_cx *cx, uint8_t *self, const void *unused)
{
    (void)unused;
    if (log_as(*self) < LOG_REFILL) {
        (void)tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0);
    }
    return TR_OK;
}

TR_ACTOR(logger, uint8_t, TR_ON_INIT(uint8_t, logger_init),
         TR_ON(MSG_GO, void, logger_go), TR_ON(MSG_FLOOD, void, logger_flood));

static void
do_start_both(tr_cx *cx, void *arg)
{
    tr_ref *r = arg;

    (void)tr_send(cx, r[0], MSG_GO, NULL, 0);
    (void)tr_send(cx, r[1], MSG_GO, NULL, 0);
}

static void
test_turn_is_at_most_budget(void **state)
{
    tr_spawn_opts o = {0};
    tr_ref r[2], starter;
    uint32_t run = 0, max_run = 0, switches = 0, seen[2] = {0, 0};

    (void)state;
    memset(&g_log, 0, sizeof g_log);
    g_rt = one_worker_runtime();
    for (uint8_t id = 0; id < 2; id++) {
        o.arg = &id;
        o.arg_len = sizeof id;
        TR_ASSERT_OK(tr_spawn(g_rt, &logger, &o, &r[id]));
    }
    starter = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    /* Both get their start in one handler, so from then on both always
     * have messages queued until the log reaches LOG_REFILL. */
    it_call_sync(g_rt, starter, do_start_both, r);
    IT_WAIT_UNTIL(IT_LOAD(g_log.done) >= LOG_REFILL);

    for (uint32_t i = 0; i < LOG_REFILL; i++) {
        seen[g_log.id[i]]++;
        if (i > 0 && g_log.id[i] == g_log.id[i - 1]) {
            run++;
        } else {
            switches += i > 0;
            run = 1;
        }
        if (run > max_run) {
            max_run = run;
        }
    }
    assert_true(max_run <= BUDGET);
    assert_true(switches >= LOG_REFILL / BUDGET - 2);
    assert_true(seen[0] > 0 && seen[1] > 0);
}

/* The longest run of `id` in the first `len` entries of the log. */
static uint32_t
log_max_run(uint32_t len, uint8_t id)
{
    uint32_t run = 0, max = 0;

    for (uint32_t i = 0; i < len; i++) {
        run = g_log.id[i] != id                ? 0
              : i > 0 && g_log.id[i - 1] == id ? run + 1
                                               : 1;
        max = run > max ? run : max;
    }
    return max;
}

/* ---- A turn that holds senders up goes on ------------------------------ */

#define SINK_CAPACITY 256u

/* Logs as id 1; sends nothing. */
static tr_status
sink_flood(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    log_as(1);
    return TR_OK;
}

TR_ACTOR(sink_actor, char, TR_ON(MSG_FLOOD, void, sink_flood));

/* Fills the sink until a send is held (the feeder is then muted on it, a
 * waiter in its mailbox), and goes on from a message to itself, until the
 * log is long enough. Logs as id 2 each time it runs, so the log shows
 * where one of the sink's turns ends and the next begins. */
static tr_status
feeder_feed(tr_cx *cx, tr_ref *sink, const void *unused)
{
    tr_status st = TR_OK;

    (void)unused;
    log_as(2);
    while (st == TR_OK &&
           atomic_load_explicit(&g_log.claimed, memory_order_relaxed) <
               LOG_REFILL) {
        st = tr_send(cx, *sink, MSG_FLOOD, NULL, 0);
    }
    if (st == TR_PENDING) {
        st = tr_send(cx, tr_self(cx), MSG_FEED, NULL, 0);
    }
    return st == TR_PENDING ? TR_OK : st;
}

static tr_status
feeder_init(tr_cx *cx, tr_ref *self, const tr_ref *sink)
{
    (void)cx;
    *self = *sink;
    return TR_OK;
}

TR_ACTOR(feeder, tr_ref, TR_ON_INIT(tr_ref, feeder_init),
         TR_ON(MSG_GO, void, feeder_feed), TR_ON(MSG_FEED, void, feeder_feed));

static void
test_held_up_turn_goes_on(void **state)
{
    uint8_t id = 0;
    tr_spawn_opts o = {.arg = &id, .arg_len = sizeof id};
    tr_spawn_opts fo = {0};
    tr_ref r[2], sink_ref, starter;
    uint32_t max_sink, max_logger;

    (void)state;
    memset(&g_log, 0, sizeof g_log);
    g_rt = one_worker_runtime();
    TR_ASSERT_OK(tr_spawn(g_rt, &logger, &o, &r[0]));
    sink_ref = it_spawn(g_rt, &sink_actor, SINK_CAPACITY, 0, TR_BACKPRESSURE);
    fo.arg = &sink_ref;
    fo.arg_len = sizeof sink_ref;
    TR_ASSERT_OK(tr_spawn(g_rt, &feeder, &fo, &r[1]));
    starter = it_spawn(g_rt, &it_caller, 0, 0, TR_BACKPRESSURE);
    it_call_sync(g_rt, starter, do_start_both, r);
    IT_WAIT_UNTIL(IT_LOAD(g_log.done) >= LOG_REFILL);

    max_sink = log_max_run(LOG_REFILL, 1);
    max_logger = log_max_run(LOG_REFILL, 0);
    /* The feeder fills the sink's mailbox and mutes on it, so the sink's
     * turns find a waiter: they run past the budget, but never past 16
     * budgets (its mailbox holds more than that). The logger, which nobody
     * waits on, keeps to its budget. */
    assert_true(max_sink > BUDGET);
    assert_true(max_sink <= 16 * BUDGET);
    assert_true(max_logger <= BUDGET);
    assert_true(max_logger > 0);
}

#define T(f) IT_TEST(f)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_flood_does_not_starve_others),
        T(test_turn_is_at_most_budget),
        T(test_held_up_turn_goes_on),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
