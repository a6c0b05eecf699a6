/* chameneos: CHAMENEOS_CREATURES creatures meet n times through one broker.
 *
 * Savina's version: each creature sends (meet, its color, itself) to the
 * broker (the mall). The mall keeps one creature waiting; when a second
 * one asks, the meeting counts, and the mall forwards the newcomer's
 * request to the waiting creature. That one takes the complement of the
 * two colors, counts the meeting, sends (change, new color) to the newcomer
 * and asks the mall again; the newcomer takes the color, counts the meeting
 * and asks again. After n meetings the mall answers every request with
 * "exit"; each creature then reports its meeting count and ends. The mall
 * reports to main when all have. Timed from main's start message (the mall
 * spawns the creatures) to that report. Verified: the mall counted n
 * meetings, the creatures' counts sum to 2n, and every creature reported
 * once. ops = n meetings. */
#include "bench.h"

#include <inttypes.h>

#define CHAMENEOS_CREATURES 100u

enum {
    MSG_START = BENCH_MSG_USER,
    MSG_MEET,
    MSG_CHANGE,
    MSG_EXIT,
    MSG_COUNT,
};

enum { BLUE, RED, YELLOW, FADED };

typedef struct shared {
    uint64_t n;
    bench_latch done;
    uint64_t meetings, creature_sum, faded; /* written by the mall */
} shared;

typedef shared *shared_ptr;

typedef struct meet_msg {
    tr_ref who;
    uint32_t color;
} meet_msg;

typedef struct creature_arg {
    tr_ref mall;
    uint32_t color;
} creature_arg;

typedef struct creature_state {
    tr_ref mall;
    uint32_t color;
    uint64_t meetings;
} creature_state;

typedef struct mall_state {
    shared *sh;
    uint64_t left; /* meetings still to arrange */
    uint64_t meetings, creature_sum, faded;
    tr_ref waiting; /* TR_NOREF when nobody waits */
} mall_state;

extern const tr_behavior chameneos_creature;

static uint32_t
complement(uint32_t a, uint32_t b)
{
    return a == b ? a : 3u - a - b;
}

/* ---- Creatures ----------------------------------------------------------- */

static tr_status
ask_mall(tr_cx *cx, creature_state *self)
{
    meet_msg m = {tr_self(cx), self->color};

    return bench_sent(tr_send(cx, self->mall, MSG_MEET, &m, sizeof m));
}

static tr_status
creature_init(tr_cx *cx, creature_state *self, const creature_arg *arg)
{
    self->mall = arg->mall;
    self->color = arg->color;
    return ask_mall(cx, self);
}

/* The mall forwarded another creature's request: this one meets it. */
static tr_status
creature_meet(tr_cx *cx, creature_state *self, const meet_msg *other)
{
    tr_status st;

    self->color = complement(self->color, other->color);
    self->meetings++;
    st = bench_sent(
        tr_send(cx, other->who, MSG_CHANGE, &self->color, sizeof self->color));
    if (st != TR_OK) {
        return st;
    }
    return ask_mall(cx, self);
}

static tr_status
creature_change(tr_cx *cx, creature_state *self, const uint32_t *color)
{
    self->color = *color;
    self->meetings++;
    return ask_mall(cx, self);
}

static tr_status
creature_exit(tr_cx *cx, creature_state *self, const void *msg)
{
    (void)msg;
    self->color = FADED;
    return bench_exit_after(cx,
                            tr_send(cx, self->mall, MSG_COUNT, &self->meetings,
                                    sizeof self->meetings));
}

TR_ACTOR(chameneos_creature, creature_state,
         TR_ON_INIT(creature_arg, creature_init),
         TR_ON(MSG_MEET, meet_msg, creature_meet),
         TR_ON(MSG_CHANGE, uint32_t, creature_change),
         TR_ON(MSG_EXIT, void, creature_exit), BENCH_ON_EXIT,
         BENCH_ON_TERMINATE);

/* ---- The mall ------------------------------------------------------------ */

static tr_status
mall_init(tr_cx *cx, mall_state *self, const shared_ptr *sh)
{
    (void)cx;
    self->sh = *sh;
    self->left = (*sh)->n;
    return TR_OK;
}

static tr_status
mall_start(tr_cx *cx, mall_state *self, const void *msg)
{
    creature_arg ca = {tr_self(cx), 0};
    tr_spawn_opts co = {.arg = &ca, .arg_len = sizeof ca};
    tr_ref ref;
    uint32_t i;
    tr_status st;

    (void)msg;
    (void)self;
    for (i = 0; i < CHAMENEOS_CREATURES; i++) {
        ca.color = i % 3u;
        st = tr_spawn(cx, &chameneos_creature, &co, &ref);
        if (st != TR_OK) {
            return st;
        }
    }
    return TR_OK;
}

static tr_status
mall_meet(tr_cx *cx, mall_state *self, const meet_msg *m)
{
    tr_ref waiting = self->waiting;

    if (self->left == 0) {
        return bench_sent(tr_send(cx, m->who, MSG_EXIT, NULL, 0));
    }
    if (tr_ref_is_none(waiting)) {
        self->waiting = m->who;
        return TR_OK;
    }
    self->left--;
    self->meetings++;
    self->waiting = TR_NOREF;
    return bench_sent(tr_send(cx, waiting, MSG_MEET, m, sizeof *m));
}

static tr_status
mall_count(tr_cx *cx, mall_state *self, const uint64_t *count)
{
    shared *sh = self->sh;

    (void)cx;
    self->creature_sum += *count;
    if (++self->faded == CHAMENEOS_CREATURES) {
        sh->meetings = self->meetings;
        sh->creature_sum = self->creature_sum;
        sh->faded = self->faded;
        bench_latch_arrive(&sh->done);
    }
    return TR_OK;
}

TR_ACTOR(chameneos_mall, mall_state, TR_ON_INIT(shared_ptr, mall_init),
         TR_ON(MSG_START, void, mall_start),
         TR_ON(MSG_MEET, meet_msg, mall_meet),
         TR_ON(MSG_COUNT, uint64_t, mall_count), BENCH_ON_TERMINATE);

static int
run(const bench_args *args, bench_result *res)
{
    shared sh = {.n = args->n};
    shared_ptr shp = &sh;
    tr_runtime *rt = NULL;
    tr_spawn_opts mo = {.arg = &shp, .arg_len = sizeof shp};
    tr_ref mall;
    int rc;

    bench_latch_init(&sh.done, 1);
    BENCH_CHECK(bench_runtime_new(args, &rt, res));
    BENCH_CHECK(tr_spawn(rt, &chameneos_mall, &mo, &mall));

    if (bench_kick(rt, mall, MSG_START, &sh.done, res) != 0) {
        return 1;
    }
    res->ops = args->n;

    rc = bench_runtime_finish(&rt);
    bench_latch_fini(&sh.done);
    if (rc != 0) {
        return rc;
    }
    if (sh.meetings != args->n || sh.creature_sum != 2 * args->n ||
        sh.faded != CHAMENEOS_CREATURES) {
        return bench_fail("the mall arranged %" PRIu64
                          " meetings, the creatures counted %" PRIu64
                          " in %" PRIu64 " reports; expected %" PRIu64
                          ", %" PRIu64 " in %u",
                          sh.meetings, sh.creature_sum, sh.faded, args->n,
                          2 * args->n, CHAMENEOS_CREATURES);
    }
    bench_extra(res, "creatures", CHAMENEOS_CREATURES, true);
    return 0;
}

const bench_def bench_chameneos = {
    "chameneos", 200000,
    "100 creatures meet n times through one broker (ns per meeting)", run};
