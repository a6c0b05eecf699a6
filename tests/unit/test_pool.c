/* Tests of supervision/pool.c: the rendezvous hash on its own (stability,
 * spread, exactly which keys move when a seat empties or fills), then
 * pools at work: each route's distribution, hash routing across a worker
 * that ends and is replaced, backpressure with bounded mailboxes (every
 * message delivered exactly once; TR_EFULL with a reject queue), shedding
 * by age, the resizer (grows, shrinks, stays within min..max, no
 * flapping), broadcast, a pool's arguments and the breaker in front of a
 * pool. White-box only where the public API cannot see: mailbox depths. */
#include "../integration/itest.h"

#include "actors/core.h"
#include "supervision/pool.h"

/* ---- The hash alone ---------------------------------------------------- */

#define KEYS  10000u
#define SEATS 8u

static uint32_t
seat_of(uint64_t key, const uint32_t *seats, uint32_t n)
{
    return seats[tr__pool_pick_hash(key, seats, n)];
}

static void
test_hash_stable_and_spread(void **state)
{
    uint32_t seats[SEATS], perm[SEATS], per[SEATS] = {0};

    (void)state;
    for (uint32_t s = 0; s < SEATS; s++) {
        seats[s] = s;
        perm[s] = SEATS - 1 - s;
    }
    for (uint64_t k = 0; k < KEYS; k++) {
        uint32_t s = seat_of(k, seats, SEATS);

        /* The same key, the same seat, whatever the order of the seats. */
        assert_int_equal(seat_of(k, seats, SEATS), s);
        assert_int_equal(seat_of(k, perm, SEATS), s);
        per[s]++;
    }
    for (uint32_t s = 0; s < SEATS; s++) {
        /* 1,250 expected each; a deterministic hash, so a fixed outcome. */
        assert_in_range(per[s], KEYS / SEATS * 8 / 10, KEYS / SEATS * 12 / 10);
    }
}

static void
test_hash_moves_only_lost_keys(void **state)
{
    uint32_t all[SEATS], fewer[SEATS - 1], n = 0;
    const uint32_t lost = 3;
    uint32_t moved = 0, on_lost = 0, to_back = 0;

    (void)state;
    for (uint32_t s = 0; s < SEATS; s++) {
        all[s] = s;
        if (s != lost) {
            fewer[n++] = s;
        }
    }
    for (uint64_t k = 0; k < KEYS; k++) {
        uint32_t before = seat_of(k, all, SEATS);
        uint32_t after = seat_of(k, fewer, SEATS - 1);

        on_lost += before == lost;
        if (before != after) {
            moved++;
            /* Only the lost seat's keys move. */
            assert_int_equal(before, lost);
        }
        /* Filling the seat again takes back exactly its keys. */
        to_back += seat_of(k, all, SEATS) == lost && after != lost;
    }
    assert_int_equal(moved, on_lost);
    assert_int_equal(to_back, on_lost);
    assert_true(on_lost > 0);
}

/* ---- Workers that report ----------------------------------------------- */

enum {
    MSG_WORK = 1, /* payload uint64_t: a key or a sequence number */
    MSG_SLOW,     /* the same, handled after g->sleep_ms */
    MSG_STALL,    /* no payload: the worker awaits 300 ms */
    MSG_CALL,     /* request, payload int: nonzero fails */
    MSG_FAIL,     /* no payload: the handler fails */
};

#define MAXW     16u
#define MAXITEMS 4096u

typedef struct world {
    _Atomic uint32_t claimed; /* worker indexes handed out */
    _Atomic uint32_t started; /* workers that published their ref */
    _Atomic uint32_t ended;
    tr_ref refs[MAXW]; /* each written by its worker before `started` */
    _Atomic uint64_t count[MAXW];
    _Atomic uint32_t seen[MAXITEMS];  /* per item: 1 + the last worker */
    _Atomic uint32_t times[MAXITEMS]; /* per item: how often handled */
    _Atomic uint64_t handled;
    uint32_t sleep_ms;
    tr_breaker *breaker;
} world;

static world g_w;

typedef struct worker {
    world *w;
    uint32_t idx;
    uint64_t item;
} worker;

typedef world *world_ptr;

static tr_status
worker_init(tr_cx *cx, worker *self, const world_ptr *w)
{
    self->w = *w;
    self->idx =
        atomic_fetch_add_explicit(&self->w->claimed, 1, memory_order_relaxed);
    if (self->idx >= MAXW) {
        return TR_ELIMIT;
    }
    self->w->refs[self->idx] = tr_self(cx);
    IT_INC(self->w->started); /* publishes refs[idx] */
    return TR_OK;
}

static tr_status
worker_end(tr_cx *cx, worker *self, const tr_reason *why)
{
    (void)cx;
    (void)why;
    IT_INC(self->w->ended);
    return TR_OK;
}

static void
worker_count(worker *self, uint64_t item)
{
    IT_INC(self->w->count[self->idx]);
    if (item < MAXITEMS) {
        IT_STORE(self->w->seen[item], self->idx + 1);
        IT_INC(self->w->times[item]);
    }
    IT_INC(self->w->handled);
}

static tr_status
worker_work(tr_cx *cx, worker *self, const uint64_t *item)
{
    (void)cx;
    worker_count(self, *item);
    return TR_OK;
}

static tr_status
worker_slow(tr_cx *cx, worker *self, const uint64_t *item)
{
    TR_ASYNC_BEGIN(cx);
    self->item = *item;
    TR_AWAIT_SLEEP(cx, self->w->sleep_ms);
    worker_count(self, self->item);
    TR_ASYNC_END(cx, TR_OK);
}

static tr_status
worker_stall(tr_cx *cx, worker *self, const void *none)
{
    (void)none;
    TR_ASYNC_BEGIN(cx);
    TR_AWAIT_SLEEP(cx, 300);
    (void)self;
    TR_ASYNC_END(cx, TR_OK);
}

static tr_status
worker_call(tr_cx *cx, worker *self, const int *fail)
{
    (void)tr_breaker_record(self->w->breaker, *fail == 0);
    IT_INC(self->w->handled);
    return *fail ? tr_reply_error(cx, TR_EFAILED) : tr_reply(cx, NULL, 0);
}

static tr_status
worker_fail(tr_cx *cx, worker *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    return TR_EFAILED;
}

TR_ACTOR(pool_worker, worker, TR_ON_INIT(world_ptr, worker_init),
         TR_ON_TERMINATE(worker_end), TR_ON(MSG_WORK, uint64_t, worker_work),
         TR_ON(MSG_FAIL, void, worker_fail),
         TR_ON(MSG_SLOW, uint64_t, worker_slow),
         TR_ON(MSG_STALL, void, worker_stall),
         TR_ON(MSG_CALL, int, worker_call), IT_ON_CLOSE);

static uint64_t
key_of(uint32_t type, const void *data, size_t len)
{
    uint64_t k = 0;

    (void)type;
    if (len >= sizeof k) {
        memcpy(&k, data, sizeof k);
    }
    return k;
}

/* A spec for pool_worker reporting to g_w (reset here). */
static tr_pool_spec
spec_for(uint32_t min, uint32_t max, tr_route route)
{
    static world_ptr wp = &g_w;
    tr_pool_spec s = {0};

    memset(&g_w, 0, sizeof g_w);
    s.actor = &pool_worker;
    s.arg = &wp;
    s.arg_len = sizeof wp;
    s.min = min;
    s.max = max;
    s.route = route;
    s.key_fn = key_of;
    return s;
}

static tr_ref
start_pool(const tr_pool_spec *s)
{
    tr_ref pool = TR_NOREF;

    TR_ASSERT_OK(tr_pool_start(g_rt, s, &pool));
    IT_WAIT_UNTIL(IT_LOAD(g_w.started) == s->min);
    return pool;
}

static void
send_items(tr_ref pool, uint32_t type, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++) {
        TR_ASSERT_OK(tr_send(g_rt, pool, type, &i, sizeof i));
    }
}

static tr_pool_info
info_of(tr_ref pool)
{
    tr_pool_info info;

    TR_ASSERT_OK(tr_pool_stats(g_rt, pool, &info, 10000));
    return info;
}

/* ---- Routes ------------------------------------------------------------ */

#define N_ITEMS 400u

static void
test_round_robin_even(void **state)
{
    tr_pool_spec s = spec_for(4, 4, TR_ROUTE_ROUND_ROBIN);
    tr_ref pool;
    tr_pool_info info;

    (void)state;
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    send_items(pool, MSG_WORK, 0, N_ITEMS);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == N_ITEMS);
    /* No worker was ever full (1,024 slots): strictly in turn. */
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(IT_LOAD(g_w.count[i]), N_ITEMS / 4);
    }
    info = info_of(pool);
    assert_int_equal(info.workers, 4);
    assert_int_equal(info.routed, N_ITEMS);
    assert_int_equal(info.replaced + info.grown + info.shrunk, 0);
    TR_ASSERT_OK(tr_stop(g_rt, pool));
    IT_WAIT_UNTIL(IT_LOAD(g_w.ended) == 4);
}

/* One worker of three is a closed gate (it handles nothing until the jam
 * stops, on a one-worker runtime): round robin and least loaded both fill
 * it to its capacity and no further, and the others take the rest. */
#define GATE_CAP 4u

static void
route_around_full(tr_route route)
{
    tr_pool_spec s = spec_for(3, 3, route);
    tr_ref pool, jam, gate;
    uint64_t others = 0, gated;

    s.worker_capacity = GATE_CAP;
    g_rt = it_runtime(1, NULL);
    pool = start_pool(&s);
    jam = it_jam_start(g_rt);
    gate = g_w.refs[0];
    it_gate_close(g_rt, gate, jam);
    send_items(pool, MSG_WORK, 0, N_ITEMS);
    IT_WAIT_UNTIL(IT_LOAD(g_w.count[1]) + IT_LOAD(g_w.count[2]) ==
                  N_ITEMS - GATE_CAP);
    tr_test_sleep_ms(20); /* nothing more arrives */
    others = IT_LOAD(g_w.count[1]) + IT_LOAD(g_w.count[2]);
    assert_int_equal(others, N_ITEMS - GATE_CAP);
    assert_int_equal(tr__depth(g_rt, gate), GATE_CAP);
    if (route == TR_ROUTE_LEAST_LOADED) {
        /* The two free workers share the load. */
        assert_true(IT_LOAD(g_w.count[1]) > N_ITEMS / 4);
        assert_true(IT_LOAD(g_w.count[2]) > N_ITEMS / 4);
    }
    TR_ASSERT_OK(tr_stop(g_rt, jam));
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == N_ITEMS);
    gated = IT_LOAD(g_w.count[0]);
    assert_int_equal(gated, GATE_CAP);
    for (uint64_t i = 0; i < N_ITEMS; i++) {
        assert_int_equal(IT_LOAD(g_w.times[i]), 1);
    }
}

static void
test_round_robin_skips_full(void **state)
{
    (void)state;
    route_around_full(TR_ROUTE_ROUND_ROBIN);
}

static void
test_least_loaded_skips_full(void **state)
{
    (void)state;
    route_around_full(TR_ROUTE_LEAST_LOADED);
}

#define HASH_KEYS 1000u

static void
test_hash_routing(void **state)
{
    tr_pool_spec s = spec_for(4, 4, TR_ROUTE_HASH);
    uint32_t first[HASH_KEYS], lost_idx, moved = 0, on_lost = 0, to = 0;
    tr_ref pool;

    (void)state;
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    send_items(pool, MSG_WORK, 0, HASH_KEYS);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == HASH_KEYS);
    for (uint32_t k = 0; k < HASH_KEYS; k++) {
        first[k] = IT_LOAD(g_w.seen[k]);
    }
    for (uint32_t i = 0; i < 4; i++) {
        assert_true(IT_LOAD(g_w.count[i]) > HASH_KEYS / 8);
    }
    /* Again: every key reaches the same worker. */
    send_items(pool, MSG_WORK, 0, HASH_KEYS);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == 2 * HASH_KEYS);
    for (uint32_t k = 0; k < HASH_KEYS; k++) {
        assert_int_equal(IT_LOAD(g_w.seen[k]), first[k]);
    }
    /* A worker killed ends for good: the pool replaces it in its seat;
     * exactly its keys move, all to its replacement; no other key moves. */
    lost_idx = 2;
    TR_ASSERT_OK(tr_kill(g_rt, g_w.refs[lost_idx]));
    IT_WAIT_UNTIL(IT_LOAD(g_w.ended) == 1);
    send_items(pool, MSG_WORK, 0, HASH_KEYS);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == 3 * HASH_KEYS);
    assert_int_equal(IT_LOAD(g_w.started), 5);
    for (uint32_t k = 0; k < HASH_KEYS; k++) {
        uint32_t now = IT_LOAD(g_w.seen[k]);

        on_lost += first[k] == lost_idx + 1;
        if (now != first[k]) {
            moved++;
            assert_int_equal(first[k], lost_idx + 1);
            assert_int_equal(now, 4 + 1); /* the fifth worker started */
            to++;
        }
    }
    assert_int_equal(moved, on_lost);
    assert_int_equal(to, on_lost);
    assert_int_equal(info_of(pool).replaced, 1);
    assert_int_equal(info_of(pool).workers, 4);
}

/* A worker that fails restarts in place (same ref, its init again), the
 * message it failed on retried `retry` times, then quarantined; nothing
 * is replaced and the pool keeps its size. */
static void
test_worker_restarts_in_place(void **state)
{
    tr_pool_spec s = spec_for(2, 2, TR_ROUTE_ROUND_ROBIN);
    tr_pool_info in;
    tr_ref pool;

    (void)state;
    g_rt = it_runtime(2, NULL);
    s.retry = 1;
    pool = start_pool(&s);
    TR_ASSERT_OK(tr_send(g_rt, pool, MSG_FAIL, NULL, 0));
    IT_WAIT_UNTIL(info_of(pool).restarts == 2); /* failed, retried, failed */
    IT_WAIT_UNTIL(it_dl_count(MSG_FAIL, TR_EPOISON) == 1);
    send_items(pool, MSG_WORK, 0, 10);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == 10);
    in = info_of(pool);
    assert_int_equal(in.workers, 2);
    assert_int_equal(in.replaced, 0);
    assert_int_equal(IT_LOAD(g_w.started), 4); /* two inits again */
    assert_int_equal(IT_LOAD(g_w.ended), 2);   /* two terminates */
}

static void
test_broadcast(void **state)
{
    tr_pool_spec s = spec_for(3, 3, TR_ROUTE_BROADCAST);
    tr_ref pool;
    int fail = 0;

    (void)state;
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    send_items(pool, MSG_WORK, 0, 10);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == 30);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(IT_LOAD(g_w.count[i]), 10);
    }
    TR_ASSERT_STATUS(
        tr_ask_wait(g_rt, pool, MSG_CALL, &fail, sizeof fail, NULL, 0, 10000),
        TR_EINVAL);
    assert_int_equal(info_of(pool).routed, 30);
    assert_int_equal(info_of(pool).declined, 1);
}

static void
test_pool_args(void **state)
{
    tr_pool_spec s = spec_for(2, 1, TR_ROUTE_ROUND_ROBIN);
    tr_ref pool = TR_NOREF;

    (void)state;
    g_rt = it_runtime(1, NULL);
    TR_ASSERT_STATUS(tr_pool_start(g_rt, &s, &pool), TR_EINVAL); /* max<min */
    s.max = TR_POOL_MAX_WORKERS + 1;
    TR_ASSERT_STATUS(tr_pool_start(g_rt, &s, &pool), TR_EINVAL);
    s.max = 2;
    s.route = TR_ROUTE_HASH;
    s.key_fn = NULL;
    TR_ASSERT_STATUS(tr_pool_start(g_rt, &s, &pool), TR_EINVAL);
    s.route = (tr_route)99;
    TR_ASSERT_STATUS(tr_pool_start(g_rt, &s, &pool), TR_EINVAL);
    s.route = TR_ROUTE_ROUND_ROBIN;
    s.arg_len = 3; /* the init hook takes a pointer */
    TR_ASSERT_STATUS(tr_pool_start(g_rt, &s, &pool), TR_EINVAL);
    s.arg_len = sizeof(world_ptr);
    s.actor = NULL;
    TR_ASSERT_STATUS(tr_pool_start(g_rt, &s, &pool), TR_EINVAL);
    TR_ASSERT_STATUS(tr_pool_start(g_rt, NULL, &pool), TR_EINVAL);
    TR_ASSERT_STATUS(tr_pool_start((tr_runtime *)NULL, &s, &pool), TR_EINVAL);
    assert_true(tr_ref_is_none(pool));
    /* Nothing was left running. */
    assert_int_equal(it_stats(g_rt).alive, 0);
    TR_ASSERT_STATUS(tr_pool_stats(g_rt, pool, NULL, 10), TR_EINVAL);
}

/* ---- Backpressure, shedding -------------------------------------------- */

#define PRODUCERS 3u
#define PER_PROD  200u
#define W_CAP     4u
#define Q_CAP     8u

typedef struct producer {
    tr_ref pool;
    uint64_t i, item;
    tr_status last;
} producer;

static _Atomic uint32_t g_prod_done;
static _Atomic uint32_t g_prod_bad;

static tr_status
producer_init(tr_cx *cx, producer *self, const tr_ref *pool)
{
    (void)cx;
    self->pool = *pool;
    return TR_OK;
}

/* Sends PER_PROD items numbered from *base, awaiting each held send. */
static tr_status
producer_go(tr_cx *cx, producer *self, const uint64_t *base)
{
    TR_ASYNC_BEGIN(cx);
    for (self->i = 0; self->i < PER_PROD; self->i++) {
        self->item = *base + self->i;
        TR_AWAIT_SEND(cx, self->pool, MSG_SLOW, &self->item, sizeof self->item,
                      60000);
        if (tr_await_status(cx) != TR_OK) {
            IT_INC(g_prod_bad);
        }
    }
    IT_INC(g_prod_done);
    TR_ASYNC_END(cx, TR_OK);
}

TR_ACTOR(producer_actor, producer, TR_ON_INIT(tr_ref, producer_init),
         TR_ON(MSG_WORK, uint64_t, producer_go));

typedef struct sampler {
    tr_runtime *rt;
    tr_ref pool;
    _Atomic int stop;
    uint32_t max_pool, max_worker;
} sampler;

/* Samples the depths of the pool and of its workers until told to stop. */
static void *
sampler_main(void *arg)
{
    sampler *s = arg;

    while (!IT_LOAD(s->stop)) {
        uint32_t d = tr__depth(s->rt, s->pool);

        if (d != UINT32_MAX && d > s->max_pool) {
            s->max_pool = d;
        }
        for (uint32_t i = 0; i < IT_LOAD(g_w.started); i++) {
            d = tr__depth(s->rt, g_w.refs[i]);
            if (d != UINT32_MAX && d > s->max_worker) {
                s->max_worker = d;
            }
        }
        tr_test_sleep_us(50);
    }
    return NULL;
}

static void
test_backpressure_bounded(void **state)
{
    tr_pool_spec s = spec_for(2, 2, TR_ROUTE_ROUND_ROBIN);
    sampler smp = {0};
    pthread_t th;
    tr_ref pool, prod[PRODUCERS];
    tr_stats st;

    (void)state;
    IT_STORE(g_prod_done, 0);
    IT_STORE(g_prod_bad, 0);
    s.worker_capacity = W_CAP;
    s.queue = (tr_mailbox_opts){Q_CAP, TR_BACKPRESSURE};
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    g_w.sleep_ms = 1;
    smp.rt = g_rt;
    smp.pool = pool;
    assert_int_equal(pthread_create(&th, NULL, sampler_main, &smp), 0);
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        uint64_t base = p * PER_PROD;

        TR_ASSERT_OK(tr_spawn(
            g_rt, &producer_actor,
            &(tr_spawn_opts){.arg = &pool, .arg_len = sizeof pool}, &prod[p]));
        TR_ASSERT_OK(tr_send(g_rt, prod[p], MSG_WORK, &base, sizeof base));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_prod_done) == PRODUCERS);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == PRODUCERS * PER_PROD);
    IT_STORE(smp.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(IT_LOAD(g_prod_bad), 0);
    /* Exactly once each, and no mailbox beyond its capacity. */
    for (uint32_t i = 0; i < PRODUCERS * PER_PROD; i++) {
        assert_int_equal(IT_LOAD(g_w.times[i]), 1);
    }
    assert_true(smp.max_pool <= Q_CAP);
    assert_true(smp.max_worker <= W_CAP);
    st = it_stats(g_rt);
    assert_true(st.held > 0); /* producers were muted */
    assert_int_equal(st.dead_letters, 0);
    assert_int_equal(st.overcommits, 0);
}

typedef struct flood {
    tr_ref pool;
    uint32_t base;
    uint32_t ok, full;
} flood;

static void *
flood_main(void *arg)
{
    flood *f = arg;

    for (uint64_t i = f->base; i < f->base + PER_PROD; i++) {
        tr_status st = tr_send(g_rt, f->pool, MSG_SLOW, &i, sizeof i);

        if (st == TR_OK) {
            f->ok++;
        } else if (st == TR_EFULL) {
            f->full++;
        }
    }
    return NULL;
}

static void
test_reject_queue(void **state)
{
    tr_pool_spec s = spec_for(2, 2, TR_ROUTE_ROUND_ROBIN);
    flood f[PRODUCERS];
    pthread_t th[PRODUCERS];
    uint32_t ok = 0, full = 0;
    tr_ref pool;

    (void)state;
    s.worker_capacity = W_CAP;
    s.queue = (tr_mailbox_opts){Q_CAP, TR_REJECT};
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    g_w.sleep_ms = 2;
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        f[p] = (flood){pool, p * PER_PROD, 0, 0};
        assert_int_equal(pthread_create(&th[p], NULL, flood_main, &f[p]), 0);
    }
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        assert_int_equal(pthread_join(th[p], NULL), 0);
        ok += f[p].ok;
        full += f[p].full;
    }
    assert_int_equal(ok + full, PRODUCERS * PER_PROD);
    assert_true(full > 0); /* 600 sends into 2 x 4 + 8 slots */
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == ok);
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(g_w.handled), ok);
    assert_int_equal(it_stats(g_rt).rejected, full);
    assert_int_equal(it_stats(g_rt).dead_letters, 0);
}

static void
test_shed_by_age(void **state)
{
    tr_pool_spec s = spec_for(1, 1, TR_ROUTE_ROUND_ROBIN);
    tr_ref pool;

    (void)state;
    s.max_age_ms = 20;
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    /* The worker awaits 300 ms; the ten behind it wait longer than 20. */
    TR_ASSERT_OK(tr_send(g_rt, pool, MSG_STALL, NULL, 0));
    send_items(pool, MSG_WORK, 0, 10);
    IT_WAIT_UNTIL(it_stats(g_rt).shed == 10);
    assert_int_equal(it_dl_count(MSG_WORK, TR_ETIMEDOUT), 10);
    /* A fresh one after the stall is handled. */
    send_items(pool, MSG_WORK, 10, 11);
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == 1);
    assert_int_equal(IT_LOAD(g_w.times[10]), 1);
    assert_int_equal(it_stats(g_rt).shed, 10);
}

/* ---- The resizer ------------------------------------------------------- */

typedef struct loader {
    tr_ref pool;
    uint32_t n;
    _Atomic int done;
    _Atomic uint32_t bad; /* sends that did not return TR_OK */
} loader;

static void *
loader_main(void *arg)
{
    loader *l = arg;

    for (uint64_t i = 0; i < l->n; i++) {
        if (tr_send(g_rt, l->pool, MSG_SLOW, &i, sizeof i) != TR_OK) {
            IT_INC(l->bad); /* asserted by the test's thread */
        }
    }
    IT_STORE(l->done, 1);
    return NULL;
}

static void
test_resizer(void **state)
{
    tr_pool_spec s = spec_for(1, 3, TR_ROUTE_LEAST_LOADED);
    loader l = {0};
    pthread_t th;
    tr_pool_info info;
    tr_ref pool;
    uint32_t most = 0;

    (void)state;
    s.worker_capacity = 4;
    s.queue = (tr_mailbox_opts){32, TR_BACKPRESSURE};
    s.check_ms = 10;
    s.grow_depth = 2;
    s.shrink_idle_ms = 100;
    g_rt = it_runtime(2, NULL);
    pool = start_pool(&s);
    g_w.sleep_ms = 2;
    l.pool = pool;
    l.n = 600;
    assert_int_equal(pthread_create(&th, NULL, loader_main, &l), 0);
    /* Sustained depth: it grows to max, never beyond, never shrinks. */
    while (!IT_LOAD(l.done)) {
        info = info_of(pool);
        assert_true(info.workers >= 1 && info.workers <= 3);
        most = info.workers > most ? info.workers : most;
        assert_int_equal(info.shrunk, 0);
        tr_test_sleep_ms(5);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(IT_LOAD(l.bad), 0);
    info = info_of(pool);
    assert_int_equal(info.grown, 2);
    assert_int_equal(info.shrunk, 0);
    assert_int_equal(most, 3);
    /* The load stops: one step per window down to min, then nothing. */
    IT_WAIT_UNTIL(IT_LOAD(g_w.handled) == 600);
    IT_WAIT_UNTIL(info_of(pool).workers == 1);
    IT_WAIT_UNTIL(IT_LOAD(g_w.ended) == 2);
    tr_test_sleep_ms(400); /* several more windows */
    info = info_of(pool);
    assert_int_equal(info.workers, 1);
    assert_int_equal(info.grown, 2);
    assert_int_equal(info.shrunk, 2);
    assert_int_equal(info.replaced, 0);
    assert_int_equal(it_stats(g_rt).dead_letters, 0);
}

/* ---- A breaker in front of a pool -------------------------------------- */

static void
test_breaker_in_front(void **state)
{
    tr_pool_spec s = spec_for(2, 2, TR_ROUTE_ROUND_ROBIN);
    tr_breaker *b = NULL;
    tr_ref pool;
    int fail = 1, ok = 0;
    uint64_t item = 7;

    (void)state;
    TR_ASSERT_OK(tr_breaker_new(&b, &(tr_breaker_spec){3, 50, 1}));
    g_rt = it_runtime(2, NULL);
    s.breaker = b;
    pool = start_pool(&s);
    g_w.breaker = b;
    for (int i = 0; i < 3; i++) {
        TR_ASSERT_STATUS(tr_ask_wait(g_rt, pool, MSG_CALL, &fail, sizeof fail,
                                     NULL, 0, 10000),
                         TR_EFAILED);
    }
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    /* Open: requests fail fast without reaching a worker; a plain message
     * is dead-lettered with TR_EOPEN. */
    TR_ASSERT_STATUS(
        tr_ask_wait(g_rt, pool, MSG_CALL, &ok, sizeof ok, NULL, 0, 10000),
        TR_EOPEN);
    TR_ASSERT_OK(tr_send(g_rt, pool, MSG_WORK, &item, sizeof item));
    IT_WAIT_UNTIL(it_dl_count(MSG_WORK, TR_EOPEN) == 1);
    assert_int_equal(IT_LOAD(g_w.handled), 3);
    assert_int_equal(info_of(pool).refused, 2);
    /* After the reset timeout a trial goes through; its success closes. */
    tr_test_sleep_ms(60);
    TR_ASSERT_OK(
        tr_ask_wait(g_rt, pool, MSG_CALL, &ok, sizeof ok, NULL, 0, 10000));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_CLOSED);
    assert_int_equal(IT_LOAD(g_w.handled), 4);
    TR_ASSERT_OK(
        tr_ask_wait(g_rt, pool, MSG_CALL, &ok, sizeof ok, NULL, 0, 10000));
    /* The pool must end before the breaker goes. */
    tr_runtime_destroy(&g_rt);
    tr_breaker_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_stable_and_spread),
        cmocka_unit_test(test_hash_moves_only_lost_keys),
        IT_TEST(test_round_robin_even),
        IT_TEST(test_round_robin_skips_full),
        IT_TEST(test_least_loaded_skips_full),
        IT_TEST(test_hash_routing),
        IT_TEST(test_worker_restarts_in_place),
        IT_TEST(test_broadcast),
        IT_TEST(test_pool_args),
        IT_TEST(test_backpressure_bounded),
        IT_TEST(test_reject_queue),
        IT_TEST(test_shed_by_age),
        IT_TEST(test_resizer),
        IT_TEST(test_breaker_in_front),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
