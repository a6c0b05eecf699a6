/* Pools (include/troupe/pool.h): a router actor in front of a set of
 * workers, a resizer inside it, and a ticker actor that wakes it when idle.
 * docs/internals/pool.md explains the choices.
 *
 * The router is an ordinary actor: its ref is the pool's, its mailbox is
 * the pool's queue, and it forwards each message (tr__forward: sender,
 * correlation id and deadline kept, the deadline lowered to the age limit)
 * to the worker its route picks. A worker's mailbox is a backpressure one,
 * so a forward to a full worker is held and mutes the router; its queue
 * then fills and producers meet the queue's policy. Round robin and least
 * loaded look at the workers' depths first and route around full ones.
 *
 * Workers sit in seats (see supervision/pool.h); `live` lists the occupied
 * seats in no particular order. Only the router's turns touch its state.
 * Workers are started and stopped through pool_worker_start() and
 * pool_worker_stop() only. They are the router's supervised children:
 * a worker that fails restarts in place by itself (same ref, same seat,
 * same keys; the message it failed on retried as the spec says) and tells
 * the router, which counts it; one that ends for good is replaced. */
#include "supervision/pool.h"

#include <string.h>

#include "actors/core.h"
#include "troupe/pool.h"

/* The ticker's message to the router (a pool type: never routed). */
#define TR_MSG_POOL_TICK (TR_MSG_RESERVED - 2u)
/* The ticker's timer message to itself (its own actor: any type). */
#define TICKER_WAKE 1u

#define MS_NS UINT64_C(1000000)

/* How long the router waits before it looks again when every worker is
 * full: the timer's resolution. Shorter is not possible; longer would
 * leave workers idle that drained meanwhile. */
#define FULL_WAIT_MS 1u

/* What tr_pool_start() hands the router's init hook: this header, the
 * refs of the workers it started, then the workers' init argument. */
typedef struct setup {
    const tr_behavior *actor;
    tr_pool_key_fn key_fn;
    tr_breaker *breaker;
    tr_decider_fn decider;
    void *decider_arg;
    uint32_t retry;
    uint32_t min, max;
    uint32_t route;
    uint32_t worker_capacity;
    uint32_t max_age_ms, check_ms, grow_depth, shrink_idle_ms;
    uint32_t arg_len;
} setup;

typedef struct router {
    const tr_behavior *actor;
    tr_child_spec worker; /* the workers' supervision: restart, decider,
                             retry */
    void *arg; /* the workers' init argument (a copy), for new workers */
    uint32_t arg_len;
    tr_route route;
    tr_pool_key_fn key_fn;
    tr_breaker *breaker;
    uint32_t min, max;
    uint32_t worker_capacity;
    uint64_t max_age_ns, check_ns, shrink_idle_ns;
    uint32_t grow_depth;
    tr_ref *seat;   /* [max]; TR_NOREF: empty */
    uint32_t *live; /* [max]: the occupied seats; n of them */
    uint32_t n;
    uint32_t next;        /* round robin: the next index into live */
    uint32_t pick;        /* the handled message's worker, across a wait */
    uint64_t next_check;  /* coarse ns: the resizer's next look */
    uint64_t light_since; /* coarse ns: the load is light since; 0: not */
    tr_ref ticker;        /* TR_NOREF without resizing */
    tr_pool_info info;
} router;

typedef struct ticker_arg {
    tr_ref router;
    uint32_t period_ms;
} ticker_arg;

typedef struct ticker {
    ticker_arg a;
} ticker;

extern const tr_behavior tr__pool_ticker;

/* ---- Hash routing ------------------------------------------------------ */

/* splitmix64's finalizer: every input bit affects every output bit. */
static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

uint32_t
tr__pool_pick_hash(uint64_t key, const uint32_t *seats, uint32_t n)
{
    uint64_t k = mix64(key), best = 0;
    uint32_t pick = 0;

    for (uint32_t i = 0; i < n; i++) {
        uint64_t score =
            mix64(k ^ ((uint64_t)seats[i] + 1) * UINT64_C(0x9e3779b97f4a7c15));

        /* Ties (2^-64 apart) go to the lower seat, whatever the order. */
        if (i == 0 || score > best ||
            (score == best && seats[i] < seats[pick])) {
            best = score;
            pick = i;
        }
    }
    return pick;
}

/* ---- Workers ----------------------------------------------------------- */

/* Starts one worker, from cx (an actor) or else from rt (outside). The one
 * place workers are made: a supervisor's start goes here. */
/* Starts a worker for seat s: a supervised child of the router, which
 * restarts in place by itself when it fails (keeping its ref, so its seat
 * and keys), retrying the message it failed on as the spec says; the
 * router hears of it (TR_MSG_CHILD). */
static tr_status
pool_worker_start(tr_cx *cx, router *r, uint32_t s, tr_ref *out)
{
    tr_mailbox_opts mb = {r->worker_capacity, TR_BACKPRESSURE};
    tr_spawn_opts o = {.arg = r->arg, .arg_len = r->arg_len, .mailbox = &mb};
    tr__child *c =
        tr__child_new(tr_self(cx), s, &r->worker, r->arg, r->arg_len);
    tr_status st;

    if (c == NULL) {
        return TR_ENOMEM;
    }
    c->self_restart = true;
    st = tr__spawn(cx->rt, cx->self, r->actor, &o, 0, NULL, c, out);
    if (st != TR_OK) {
        tr__free(c);
    }
    return st;
}

/* Stops one worker: it takes no new message, handles what it has, and
 * ends. The one place workers are ended. */
static void
pool_worker_stop(tr_cx *cx, tr_ref w)
{
    if (tr__send_sys(cx->rt, w, TR__SYS_DRAIN, NULL, 0) != TR_OK) {
        (void)tr_kill(cx, w); /* no memory for the request: at once */
    }
}

/* Fills empty seat s with a new worker; false when it cannot start. */
static bool
seat_fill(tr_cx *cx, router *r, uint32_t s)
{
    tr_ref w;

    if (pool_worker_start(cx, r, s, &w) != TR_OK) {
        return false;
    }
    r->seat[s] = w;
    r->live[r->n++] = s;
    return true;
}

/* Empties the seat at live[i]. */
static void
seat_clear(router *r, uint32_t i)
{
    r->seat[r->live[i]] = TR_NOREF;
    r->live[i] = r->live[--r->n];
}

/* The worker at live[i] has ended: starts another in its seat (it gets
 * the same keys), or empties the seat when that fails. Returns whether
 * live[i] holds a live worker again. */
static bool
seat_lost(tr_cx *cx, router *r, uint32_t i)
{
    uint32_t s = r->live[i];

    seat_clear(r, i);
    if (!seat_fill(cx, r, s)) {
        return false;
    }
    r->info.replaced++;
    /* seat_fill appended s; put it back at i so callers' loops hold. */
    r->live[r->n - 1] = r->live[i];
    r->live[i] = s;
    return true;
}

/* Messages waiting for the worker at live[i]; a dead one is replaced
 * first (UINT32_MAX if that failed and live[i] changed). */
static uint32_t
live_depth(tr_cx *cx, router *r, uint32_t i)
{
    uint32_t d = tr__depth(cx->rt, r->seat[r->live[i]]);

    if (d == UINT32_MAX && seat_lost(cx, r, i)) {
        d = tr__depth(cx->rt, r->seat[r->live[i]]);
    }
    return d;
}

/* ---- Resizing ---------------------------------------------------------- */

static void
grow(tr_cx *cx, router *r)
{
    for (uint32_t s = 0; s < r->max; s++) {
        if (tr_ref_is_none(r->seat[s])) {
            if (seat_fill(cx, r, s)) {
                r->info.grown++;
            }
            return;
        }
    }
}

/* Stops the idle worker in the highest seat, if one is idle. The router
 * is the only sender to its workers and holds no send now (it is
 * running), so an idle worker gets nothing more: nothing is lost. */
static void
shrink(tr_cx *cx, router *r)
{
    uint32_t pick = UINT32_MAX;

    for (uint32_t i = 0; i < r->n; i++) {
        if (tr__depth(cx->rt, r->seat[r->live[i]]) == 0 &&
            (pick == UINT32_MAX || r->live[i] > r->live[pick])) {
            pick = i;
        }
    }
    if (pick != UINT32_MAX) {
        pool_worker_stop(cx, r->seat[r->live[pick]]);
        seat_clear(r, pick);
        r->info.shrunk++;
    }
}

/* The resizer's look at the load (see tr_pool_spec for the rules). */
static void
check(tr_cx *cx, router *r, uint64_t now)
{
    uint64_t waiting = 0, queued;
    uint32_t busy = 0;

    r->next_check = now + r->check_ns;
    for (uint32_t i = 0; i < r->n;) {
        uint32_t d = live_depth(cx, r, i);

        if (d == UINT32_MAX) {
            continue; /* live[i] is another seat now */
        }
        waiting += d;
        busy += d > 0;
        i++;
    }
    for (uint32_t s = 0; s < r->max && r->n < r->min; s++) {
        if (tr_ref_is_none(r->seat[s]) && seat_fill(cx, r, s)) {
            r->info.replaced++;
        }
    }
    if (r->max == r->min) {
        return;
    }
    /* The router's own count includes the messages this turn handled. */
    queued = tr__depth(cx->rt, tr_self(cx));
    queued = queued > 1 ? queued - 1 : 0;
    if (r->n < r->max &&
        waiting + queued >= (uint64_t)r->grow_depth * (r->n ? r->n : 1)) {
        grow(cx, r);
        r->light_since = 0;
        return;
    }
    if (r->n <= r->min || busy == r->n || queued > 0 ||
        2 * waiting >= (uint64_t)r->grow_depth * (r->n - 1)) {
        r->light_since = 0;
        return;
    }
    if (r->light_since == 0) {
        r->light_since = now;
    } else if (now - r->light_since >= r->shrink_idle_ns) {
        shrink(cx, r);
        r->light_since = now; /* one step per window */
    }
}

/* ---- The router -------------------------------------------------------- */

static void
router_free(router *r)
{
    tr__free(r->arg);
    tr__free(r->live);
    tr__free(r->seat);
}

static tr_status
router_init(tr_cx *cx, router *r, const void *data)
{
    setup s;
    const unsigned char *p = data;
    tr_status st = TR_ENOMEM;

    memcpy(&s, p, sizeof s);
    p += sizeof s;
    r->actor = s.actor;
    r->worker.restart = TR_PERMANENT;
    r->worker.decider = s.decider;
    r->worker.decider_arg = s.decider_arg;
    r->worker.retry = s.retry;
    r->key_fn = s.key_fn;
    r->breaker = s.breaker;
    r->min = s.min;
    r->max = s.max;
    r->route = (tr_route)s.route;
    r->worker_capacity = s.worker_capacity;
    r->max_age_ns = s.max_age_ms * MS_NS;
    r->check_ns = s.check_ms * MS_NS;
    r->grow_depth = s.grow_depth;
    r->shrink_idle_ns = s.shrink_idle_ms * MS_NS;
    r->info.min = s.min;
    r->info.max = s.max;
    r->seat = tr__calloc(s.max, sizeof *r->seat);
    r->live = tr__calloc(s.max, sizeof *r->live);
    r->arg_len = s.arg_len;
    r->arg = s.arg_len > 0 ? tr__alloc(s.arg_len) : NULL;
    if (r->seat == NULL || r->live == NULL || (s.arg_len > 0 && !r->arg)) {
        goto fail;
    }
    if (s.arg_len > 0) {
        memcpy(r->arg, p, s.arg_len);
    }
    for (uint32_t i = 0; i < s.min; i++) {
        if (!seat_fill(cx, r, i)) {
            goto fail;
        }
    }
    r->next_check = tr__coarse_ns() + r->check_ns;
    if (r->max > r->min) {
        ticker_arg ta = {tr_self(cx), s.check_ms};
        tr_spawn_opts o = {.arg = &ta,
                           .arg_len = sizeof ta,
                           .mailbox = &(tr_mailbox_opts){2, TR_BACKPRESSURE}};

        st = tr_spawn_cx(cx, &tr__pool_ticker, &o, &r->ticker);
        if (st != TR_OK) {
            goto fail;
        }
    }
    return TR_OK;

fail:
    /* No terminate hook after a failed init: undo everything here. */
    for (uint32_t i = 0; i < r->n; i++) {
        (void)tr_kill(cx, r->seat[r->live[i]]);
    }
    router_free(r);
    return st;
}

/* A worker's news: it restarted in place (counted), or ended for good
 * (replaced, unless the pool let it go); or our own supervisor drains us. */
static tr_status
router_child(tr_cx *cx, router *r, const tr__child_note *n)
{
    if (n->what == TR__CHILD_RESTARTED) {
        r->info.restarts++;
    } else if (n->what == TR__CHILD_DRAIN) {
        /* Our supervisor stops us: route what is queued, then end; the
         * workers then drain theirs (router_terminate). */
        tr__child_drain(cx);
    } else if (n->what == TR__CHILD_ENDED) {
        for (uint32_t i = 0; i < r->n; i++) {
            if (tr_ref_eq(r->seat[r->live[i]], n->child)) {
                (void)seat_lost(cx, r, i);
                break;
            }
        }
    }
    return TR_OK;
}

static tr_status
router_terminate(tr_cx *cx, router *r, const tr_reason *why)
{
    (void)why;
    if (!tr_ref_is_none(r->ticker)) {
        (void)tr_stop_cx(cx, r->ticker);
    }
    for (uint32_t i = 0; i < r->n; i++) {
        pool_worker_stop(cx, r->seat[r->live[i]]);
    }
    router_free(r);
    return TR_OK;
}

static tr_status
router_stats(tr_cx *cx, router *r, const void *none)
{
    (void)none;
    r->info.workers = r->n;
    if (tr__is_request(cx->msg)) {
        (void)tr_reply(cx, &r->info, sizeof r->info);
    }
    return TR_OK;
}

static tr_status
router_tick(tr_cx *cx, router *r, const void *none)
{
    (void)none;
    check(cx, r, tr__coarse_ns());
    return TR_OK;
}

/* Dead-letters a copy of the message being handled with `reason` (the
 * runtime frees the original after the handler). */
static void
dead_letter_copy(tr_cx *cx, tr_status reason)
{
    const tr__msg *src = cx->msg;
    tr__msg *m = tr__msg_new(cx->rt, src->len);

    if (m == NULL) {
        return; /* the runtime frees the original: lost with ENOMEM */
    }
    m->type = src->type;
    m->from = src->from;
    m->to = src->to;
    if (src->len > 0) {
        memcpy(m->data, src->data, src->len);
    }
    tr__dead_letter(cx->rt, m, reason);
}

/* Refuses the message being handled with `st`: a request's asker gets it,
 * another message is dead-lettered with it. */
static void
refuse(tr_cx *cx, tr_status st)
{
    if (tr__is_request(cx->msg)) {
        (void)tr_reply_error(cx, st);
    } else {
        dead_letter_copy(cx, st);
    }
}

/* Hands the message being handled to the worker at live[i], its age
 * limit counted from now. */
static void
route_to(tr_cx *cx, router *r, uint32_t i)
{
    uint64_t deadline = r->max_age_ns ? tr__coarse_ns() + r->max_age_ns : 0;
    tr_status st = tr__forward(cx, r->seat[r->live[i]], deadline);

    if (st == TR_EDEAD) {
        /* It ended since we looked: the message went to dead letters
         * (an asker was told); replace it for the next ones. */
        (void)seat_lost(cx, r, i);
        return;
    }
    r->info.routed += st >= 0;
}

/* Round robin: the next worker with room; UINT32_MAX when all are full. */
static uint32_t
pick_round_robin(tr_cx *cx, router *r)
{
    uint32_t start = r->next;

    for (uint32_t k = 0; k < r->n; k++) {
        uint32_t i = (start + k) % r->n;

        if (live_depth(cx, r, i) < r->worker_capacity) {
            r->next = i + 1;
            return i;
        }
    }
    return UINT32_MAX;
}

/* Least loaded: the fewest waiting, ties broken in turn; UINT32_MAX when
 * all are full. */
static uint32_t
pick_least_loaded(tr_cx *cx, router *r)
{
    uint32_t start = r->next, pick = UINT32_MAX, best = r->worker_capacity;

    for (uint32_t k = 0; k < r->n; k++) {
        uint32_t i = (start + k) % r->n;
        uint32_t d = live_depth(cx, r, i);

        if (d < best) {
            best = d;
            pick = i;
        }
    }
    r->next = start + 1;
    return pick;
}

/* Hash: the key's seat, full or not (the key must go there). A dead
 * worker is replaced in its seat; if that fails, its seat empties and the
 * key goes to its next seat. */
static uint32_t
pick_hash(tr_cx *cx, router *r, const void *data)
{
    uint64_t key = r->key_fn(tr_msg_type(cx), data, tr_msg_size(cx));
    uint32_t i;

    do {
        i = tr__pool_pick_hash(key, r->live, r->n);
    } while (live_depth(cx, r, i) == UINT32_MAX && r->n > 0);
    return i;
}

/* The worker (index into live) for the message being handled; UINT32_MAX
 * while every worker that could take it is full. */
static uint32_t
pick(tr_cx *cx, router *r, const void *data)
{
    if (r->n == 0) {
        return UINT32_MAX;
    }
    r->next %= r->n;
    switch (r->route) {
    case TR_ROUTE_HASH:
        return pick_hash(cx, r, data);
    case TR_ROUTE_LEAST_LOADED:
        return pick_least_loaded(cx, r);
    default:
        return pick_round_robin(cx, r);
    }
}

/* Checks what comes before routing: the resizer's clock, the breaker, the
 * routes that need no pick. False when the message is dealt with. */
static bool
admit(tr_cx *cx, router *r)
{
    uint64_t now = tr__coarse_ns();

    if (now >= r->next_check) {
        check(cx, r, now);
    }
    if (r->breaker != NULL && tr_breaker_allow(r->breaker) != TR_OK) {
        r->info.refused++;
        refuse(cx, TR_EOPEN);
        return false;
    }
    if (r->route != TR_ROUTE_BROADCAST) {
        return true;
    }
    if (tr__is_request(cx->msg)) {
        r->info.declined++;
        (void)tr_reply_error(cx, TR_EINVAL);
        return false;
    }
    for (uint32_t i = 0; i < r->n; i++) {
        route_to(cx, r, i);
    }
    return false;
}

/* Routes one message. While every worker it could go to is full, it
 * waits (a 1 ms sleep, then a new look) rather than queue behind one of
 * them: a slow or stuck worker must not hold up the others. Meanwhile the
 * pool takes no message, so its queue fills and producers meet its
 * policy. A hash route waits on its key's worker instead (forwarded and
 * held: the router is muted until it has room). */
static tr_status
router_route(tr_cx *cx, router *r, const void *data)
{
    TR_ASYNC_BEGIN(cx);
    if (!admit(cx, r)) {
        return TR_OK;
    }
    while ((r->pick = pick(cx, r, data)) == UINT32_MAX && r->n > 0) {
        r->info.waits++;
        TR_AWAIT_SLEEP(cx, FULL_WAIT_MS);
    }
    if (r->pick == UINT32_MAX) {
        refuse(cx, TR_EDEAD); /* no worker could be started */
        return TR_OK;
    }
    route_to(cx, r, r->pick);
    TR_ASYNC_END(cx, TR_OK);
}

TR_ACTOR(tr__pool_router, router, TR_ON_BYTES(TR_MSG_INIT, router_init),
         TR_ON_TERMINATE(router_terminate),
         TR_ON(TR_MSG_CHILD, tr__child_note, router_child),
         TR_ON(TR_MSG_POOL_STATS, void, router_stats),
         TR_ON(TR_MSG_POOL_TICK, void, router_tick),
         TR_ON_UNHANDLED(router_route));

/* ---- The ticker -------------------------------------------------------- */

/* Wakes an idle router every period so that it resizes without traffic.
 * A busy router checks as it routes; the ticker then sends nothing, so a
 * tick never meets a full queue (nor is dropped or dead-lettered). */
static tr_status
ticker_init(tr_cx *cx, ticker *t, const ticker_arg *a)
{
    t->a = *a;
    return tr_send_after(cx, tr_self(cx), TICKER_WAKE, NULL, 0, a->period_ms,
                         NULL);
}

static tr_status
ticker_wake(tr_cx *cx, ticker *t, const void *none)
{
    (void)none;
    if (tr__depth(cx->rt, t->a.router) == 0 &&
        tr_send(cx, t->a.router, TR_MSG_POOL_TICK, NULL, 0) == TR_EDEAD) {
        return tr_exit(cx, 0, NULL);
    }
    return tr_send_after(cx, tr_self(cx), TICKER_WAKE, NULL, 0, t->a.period_ms,
                         NULL);
}

TR_ACTOR(tr__pool_ticker, ticker, TR_ON_INIT(ticker_arg, ticker_init),
         TR_ON(TICKER_WAKE, void, ticker_wake));

/* ---- Starting ---------------------------------------------------------- */

tr_status
tr__pool_blob(tr_runtime *rt, const tr_pool_spec *spec, void **blob,
              size_t *len)
{
    setup s = {0};
    unsigned char *b;

    if (spec == NULL || spec->actor == NULL ||
        (spec->arg == NULL && spec->arg_len > 0) ||
        (uint32_t)spec->route > TR_ROUTE_BROADCAST ||
        (spec->route == TR_ROUTE_HASH && spec->key_fn == NULL) ||
        spec->arg_len > UINT32_MAX) {
        return TR_EINVAL;
    }
    {
        /* The workers' init argument, checked now as a spawn would. */
        const tr_handler *init = tr__find_row(spec->actor, TR_MSG_INIT);

        if ((init == NULL && spec->arg_len > 0) ||
            (init != NULL && init->size != TR_SIZE_ANY &&
             init->size != spec->arg_len)) {
            return TR_EINVAL;
        }
    }
    s.actor = spec->actor;
    s.key_fn = spec->key_fn;
    s.breaker = spec->breaker;
    s.decider = spec->decider;
    s.decider_arg = spec->decider_arg;
    s.retry = spec->retry;
    s.min = spec->min ? spec->min : 1;
    s.max = spec->max ? spec->max : s.min;
    if (s.max < s.min || s.max > TR_POOL_MAX_WORKERS) {
        return TR_EINVAL;
    }
    s.route = (uint32_t)spec->route;
    s.worker_capacity = spec->worker_capacity ? spec->worker_capacity
                                              : rt->cfg.mailbox_capacity;
    s.max_age_ms = spec->max_age_ms;
    s.check_ms = spec->check_ms ? spec->check_ms : 100;
    s.grow_depth = spec->grow_depth ? spec->grow_depth : 8;
    s.shrink_idle_ms = spec->shrink_idle_ms ? spec->shrink_idle_ms : 1000;
    s.arg_len = (uint32_t)spec->arg_len;
    *len = sizeof s + spec->arg_len;
    if (*len > rt->cfg.max_payload) {
        return TR_EMSGSIZE;
    }
    b = tr__alloc(*len);
    if (b == NULL) {
        return TR_ENOMEM;
    }
    memcpy(b, &s, sizeof s);
    if (spec->arg_len > 0) {
        memcpy(b + sizeof s, spec->arg, spec->arg_len);
    }
    *blob = b;
    return TR_OK;
}

const tr_behavior *
tr__pool_behavior(void)
{
    return &tr__pool_router;
}

static tr_status
pool_start(tr_cx *cx, tr_runtime *rt, const tr_pool_spec *spec, tr_ref *out)
{
    tr_spawn_opts o = {0};
    tr_ref r;
    void *blob;
    size_t len;
    tr_status st;

    if (out == NULL) {
        return TR_EINVAL;
    }
    st = tr__pool_blob(rt, spec, &blob, &len);
    if (st != TR_OK) {
        return st;
    }
    o.arg = blob;
    o.arg_len = len;
    o.mailbox = spec->queue.capacity != 0
                    ? &spec->queue
                    : &(tr_mailbox_opts){rt->cfg.mailbox_capacity,
                                         spec->queue.overflow};
    st = cx != NULL ? tr_spawn_cx(cx, &tr__pool_router, &o, &r)
                    : tr_spawn_rt(rt, &tr__pool_router, &o, &r);
    tr__free(blob);
    if (st == TR_OK && cx == NULL) {
        /* Its init started the workers, or failed (then it is gone). */
        st = tr_pool_stats(rt, r, &(tr_pool_info){0}, 30000);
        st = st == TR_EDEAD ? TR_EFAILED : st;
    }
    if (st == TR_OK) {
        *out = r;
    }
    return st;
}

tr_status
tr_pool_start_cx(tr_cx *cx, const tr_pool_spec *spec, tr_ref *out)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return pool_start(cx, cx->rt, spec, out);
}

tr_status
tr_pool_start_rt(tr_runtime *rt, const tr_pool_spec *spec, tr_ref *out)
{
    if (rt == NULL) {
        return TR_EINVAL;
    }
    return pool_start(NULL, rt, spec, out);
}

tr_status
tr_pool_stats(tr_runtime *rt, tr_ref pool, tr_pool_info *out,
              uint32_t timeout_ms)
{
    if (rt == NULL || out == NULL) {
        return TR_EINVAL;
    }
    return tr_ask_wait(rt, pool, TR_MSG_POOL_STATS, NULL, 0, out, sizeof *out,
                       timeout_ms);
}
