/* Stress tests of actors through the public API.
 *
 * Exercises:
 * - producers_into_one: outside threads and producer actors send sequenced
 *   messages to one collector (default capacity, backpressure). Outside
 *   senders block; producer actors stop at TR_PENDING and continue through a
 *   message to themselves. Per-sender order, the exact total, no dead
 *   letters.
 * - spawn_stop_churn: outside threads and spawner actors spawn actors, send
 *   them a few messages and end them: a stop message to themselves, tr_stop
 *   from the spawner, a handler failure, tr_exit with a code, a failing init
 *   hook. Terminate runs exactly once per successful init with the right
 *   reason, stale refs give TR_EDEAD to sends and stops (also after their
 *   slot is reused), every accepted message is handled or dead-lettered,
 *   stats.spawned is exact and stats.alive returns to its baseline.
 * - pingpong_storm: 100 pairs ping-pong a counter for a fixed number of
 *   round trips, half of them with moved buffers; exact counts, sender
 *   refs, and every moved buffer freed exactly once.
 * - park_wake_storm: outside threads send bursts to random actors with
 *   0-3 ms gaps (workers park in between), plus timers; actors forward
 *   messages to each other. Every message is handled exactly once.
 * - policies_accounting: for each overflow policy, outside threads and
 *   sender actors flood small mailboxes. Every send's status is one the
 *   policy allows, and delivered + dropped + rejected + dead == sent, from
 *   handler counts, dead letters by reason and send statuses; the stats
 *   counters agree; fail-policy receivers end with TR_EXIT_OVERLOAD.
 * - kill_during_send: outside threads and actors send (copies and moved
 *   buffers) to actors that outside threads and an actor keep replacing and
 *   stopping, under every policy. Every status is allowed, moved buffers are
 *   taken exactly on the documented statuses, handled + dead-lettered ==
 *   accepted, and terminate runs once per spawn.
 * - mute_cycles: rings of 1 to 5 actors, each flooding its successor past a
 *   tiny capacity with backpressure (politely or ignoring TR_PENDING up to a
 *   burst). Every ring finishes (muted cycles are broken, not deadlocked),
 *   every message arrives once and in order, nothing is dead-lettered.
 *
 * Scale comes from the environment: TR_STRESS_SECONDS (default 2, 1 under a
 * sanitizer), TR_STRESS_THREADS (default 4, 2 under TSan), TR_STRESS_ACTORS
 * (default 10000, 1000 under TSan). The timed scenarios (churn, park/wake,
 * kill) run for TR_STRESS_SECONDS; the counted ones (producers, ping-pong,
 * policies, mute cycles) repeat on fresh runtimes of 2, 3 and 4 workers (or
 * policy after policy) until TR_STRESS_SECONDS have passed, each at least
 * one full cycle. Message counts scale with TR_STRESS_ACTORS, outside
 * threads and sender actors with TR_STRESS_THREADS. The seed is printed first
 * ("seed: N"); TR_STRESS_SEED=N replays its random choices. TR_STRESS_FILTER (a
 * cmocka test name pattern) runs only matching tests.
 *
 * Every wait has a deadline scaled by TR_TEST_TIMEOUT_MULTIPLIER, so a bug
 * fails the test rather than hanging it; a watchdog aborts the process with
 * the seed if a test overruns its limit anyway (a hang inside the runtime).
 * Failures seen on worker or helper threads are recorded and reported by
 * the test's main thread, which first joins its helpers. */
#include "tr_test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Scale, seed, time ------------------------------------------------- */

static struct {
    uint64_t seconds;
    uint64_t threads;
    uint64_t actors;
    uint64_t seed;
    double mult;
} S;

/* A deadline `ms` milliseconds from now, scaled for sanitizers. */
static uint64_t
deadline_ms(uint64_t ms)
{
    return tr_test_now_ns() + (uint64_t)((double)ms * S.mult) * 1000000u;
}

/* splitmix64: one stream per (seed, stream) pair. */
static uint64_t
rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t
rng_seed(uint64_t test, uint64_t stream)
{
    uint64_t s =
        S.seed ^ (test * 0x632be59bd9b4e019u) ^ (stream * 0xd1b54a32d192ed03u);

    return rng_next(&s);
}

static uint32_t
rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rng_next(s) % n);
}

static uint32_t
clamp_u32(uint64_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : (uint32_t)v;
}

/* ---- Failures recorded from any thread --------------------------------- */

static struct {
    pthread_mutex_t lock;
    _Atomic uint64_t count;
    char first[512];
} E = {PTHREAD_MUTEX_INITIALIZER, 0, ""};

static void
note(int line, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&E.lock);
    /* relaxed: the lock orders the message; the count is read after the
     * helpers are joined, or only as a hint to stop waiting early. */
    if (atomic_fetch_add_explicit(&E.count, 1, memory_order_relaxed) == 0) {
        int n = snprintf(E.first, sizeof E.first, "line %d: ", line);

        va_start(ap, fmt);
        vsnprintf(E.first + n, sizeof E.first - (size_t)n, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&E.lock);
}

#define NOTE(...) note(__LINE__, __VA_ARGS__)
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            NOTE(__VA_ARGS__);                                                 \
        }                                                                      \
    } while (0)

static bool
have_errors(void)
{
    return atomic_load_explicit(&E.count, memory_order_relaxed) != 0;
}

static void
assert_no_errors(void)
{
    char first[sizeof E.first];
    uint64_t n;

    /* Copy under the lock: fail_msg() does not return. */
    pthread_mutex_lock(&E.lock);
    n = atomic_load_explicit(&E.count, memory_order_relaxed);
    memcpy(first, E.first, sizeof first);
    pthread_mutex_unlock(&E.lock);
    if (n != 0) {
        fail_msg("%llu failure(s), first: %s (seed %llu)",
                 (unsigned long long)n, first, (unsigned long long)S.seed);
    }
}

/* Polls `cond` until it holds, the scaled deadline passes or a failure is
 * recorded; `ok` says whether it held. */
#define WAIT_FOR(ok, cond, ms)                                                 \
    do {                                                                       \
        uint64_t wait_dl_ = deadline_ms(ms);                                   \
        for (;;) {                                                             \
            if (cond) {                                                        \
                (ok) = true;                                                   \
                break;                                                         \
            }                                                                  \
            if (tr_test_now_ns() >= wait_dl_ || have_errors()) {               \
                (ok) = (cond);                                                 \
                break;                                                         \
            }                                                                  \
            tr_test_sleep_us(200);                                             \
        }                                                                      \
    } while (0)

/* Counters shared with actors and helpers are updated with relaxed RMWs
 * unless a comment says otherwise: they order nothing, and the main thread
 * reads them only after joining the helpers or while polling for the
 * runtime to settle. Where a counter publishes other data (an actor's
 * plain fields read by the main thread), its release and the matching
 * acquire are commented.
 *
 * The main thread's reads of shared counters, in checks and waits. seq_cst
 * is stronger than needed (the waits poll until the runtime settles); it
 * keeps the reasoning simple off every hot path. */
#define LOAD(x) atomic_load_explicit(&(x), memory_order_seq_cst)
/* Resets a counter while no runtime, helper or actor can touch it. */
#define RESET(x) atomic_store_explicit(&(x), 0, memory_order_relaxed)

/* How long any wait for the runtime to settle may take (scaled). */
#define SETTLE_MS 30000u

/* ---- Watchdog ---------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool armed;
    const char *name;
    uint64_t limit_s;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *
watchdog_main(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)W.limit_s;
    pthread_mutex_lock(&W.lock);
    while (W.armed) {
        if (pthread_cond_timedwait(&W.cond, &W.lock, &ts) == ETIMEDOUT &&
            W.armed) {
            fprintf(stderr,
                    "watchdog: %s still running after %llu s (a hang); "
                    "seed %llu\n",
                    W.name, (unsigned long long)W.limit_s,
                    (unsigned long long)S.seed);
            abort();
        }
    }
    pthread_mutex_unlock(&W.lock);
    return NULL;
}

/* ---- Per-test runtime and dead letters --------------------------------- */

/* The test's runtime: teardown destroys it if the test did not. */
static tr_runtime *g_rt;

/* Heap blocks that actors may still touch until the runtime is gone:
 * teardown frees them after destroying it. */
static void *g_defer[32];
static int g_ndefer;

static void *
defer_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    assert_non_null(p);
    assert_true(g_ndefer < (int)(sizeof g_defer / sizeof g_defer[0]));
    g_defer[g_ndefer++] = p;
    return p;
}

/* Message types of all tests. */
enum {
    T_GO = 1,
    T_CONT,
    T_DATA,
    T_WORK,
    T_END_SELF,
    T_END_FAIL,
    T_END_EXIT,
    T_STALE,
    T_TICK,
    T_PING,
    T_PONG,
    T_HOP,
    T_FLOOD,
    T_SETUP,
    T_KDATA,
    T_NTYPES
};

/* Dead letters counted by type and reason. */
enum { R_EDEAD, R_DROPPED, R_EFULL, R_ECANCELED, R_ESHUTDOWN, R_OTHER, R_N };

static struct {
    _Atomic uint64_t n[T_NTYPES + 1][R_N]; /* last row: other types */
    _Atomic uint64_t total;
} g_dl;

/* A test's own look at each dead letter; set only while no runtime lives. */
static void (*g_dl_hook)(const tr_dead_letter *dl);

static int
reason_index(tr_status r)
{
    switch (r) {
    case TR_EDEAD:
        return R_EDEAD;
    case TR_DROPPED:
        return R_DROPPED;
    case TR_EFULL:
        return R_EFULL;
    case TR_ECANCELED:
        return R_ECANCELED;
    case TR_ESHUTDOWN:
        return R_ESHUTDOWN;
    default:
        return R_OTHER;
    }
}

static void
dl_count(void *arg, const tr_dead_letter *dl)
{
    uint32_t t = dl->type < T_NTYPES ? dl->type : T_NTYPES;

    (void)arg;
    /* relaxed: counters, read after the runtime settled. */
    atomic_fetch_add_explicit(&g_dl.n[t][reason_index(dl->reason)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&g_dl.total, 1, memory_order_relaxed);
    if (g_dl_hook != NULL) {
        g_dl_hook(dl);
    }
}

static uint64_t
dl_get(uint32_t type, int reason)
{
    return atomic_load_explicit(&g_dl.n[type][reason], memory_order_relaxed);
}

static uint64_t
dl_type(uint32_t type)
{
    uint64_t n = 0;

    for (int r = 0; r < R_N; r++) {
        n += dl_get(type, r);
    }
    return n;
}

static uint64_t
dl_total(void)
{
    return atomic_load_explicit(&g_dl.total, memory_order_relaxed);
}

static void
rt_new(uint32_t workers)
{
    tr_config c = {0};

    assert_null(g_rt);
    c.workers = workers;
    /* Long enough never to expire unless the receiver is stuck. */
    c.send_timeout_ms = (uint32_t)(20000 * S.mult);
    c.dead_letter_fn = dl_count;
    TR_ASSERT_OK(tr_runtime_new(&g_rt, &c));
}

static void
rt_destroy(void)
{
    tr_runtime_destroy(&g_rt);
    assert_null(g_rt);
}

static tr_stats
stats(void)
{
    tr_stats s;

    memset(&s, 0, sizeof s);
    CHECK(tr_runtime_stats(g_rt, &s) == TR_OK, "tr_runtime_stats failed");
    return s;
}

static uint64_t
alive(void)
{
    return stats().alive;
}

static int
setup(void **state)
{
    memset(&g_dl, 0, sizeof g_dl);
    g_dl_hook = NULL;
    pthread_mutex_lock(&E.lock);
    atomic_store_explicit(&E.count, 0, memory_order_relaxed);
    E.first[0] = '\0';
    pthread_mutex_unlock(&E.lock);
    W.name = *state;
    W.limit_s = (uint64_t)((double)(60 + 4 * S.seconds) * S.mult);
    W.armed = true;
    if (pthread_create(&W.thread, NULL, watchdog_main, NULL) != 0) {
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tr_runtime_destroy(&g_rt);
    while (g_ndefer > 0) {
        free(g_defer[--g_ndefer]);
    }
    g_dl_hook = NULL;
    pthread_mutex_lock(&W.lock);
    W.armed = false;
    pthread_cond_signal(&W.cond);
    pthread_mutex_unlock(&W.lock);
    pthread_join(W.thread, NULL);
    return 0;
}

/* Sender-agnostic calls: a handler's cx, or the runtime from a thread. */
typedef struct origin {
    tr_cx *cx;
} origin;

static tr_status
o_send(origin o, tr_ref to, uint32_t type, const void *d, size_t n)
{
    return o.cx ? tr_send(o.cx, to, type, d, n) : tr_send(g_rt, to, type, d, n);
}

static tr_status
o_send_move(origin o, tr_ref to, uint32_t type, void **bufp, size_t n,
            tr_free_fn fn)
{
    return o.cx ? tr_send_move(o.cx, to, type, bufp, n, fn)
                : tr_send_move(g_rt, to, type, bufp, n, fn);
}

static tr_status
o_spawn(origin o, const tr_behavior *b, const tr_spawn_opts *opts, tr_ref *out)
{
    return o.cx ? tr_spawn(o.cx, b, opts, out) : tr_spawn(g_rt, b, opts, out);
}

static tr_status
o_stop(origin o, tr_ref who)
{
    return o.cx ? tr_stop(o.cx, who) : tr_stop(g_rt, who);
}

static const origin OUTSIDE = {NULL};

static void
start_threads(pthread_t *th, uint32_t n, void *(*fn)(void *))
{
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, fn, (void *)(uintptr_t)i),
                         0);
    }
}

/* Helpers bound every wait they make, so a plain join is bounded too. */
static void
join_threads(pthread_t *th, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
}

/* ====================================================================== */
/* producers_into_one                                                      */
/* ====================================================================== */

typedef struct seqmsg {
    uint32_t from;
    uint32_t seq;
} seqmsg;

static struct {
    uint32_t nsenders, k;
    uint32_t *next; /* the collector's turns only */
    tr_ref collector;
    _Atomic uint64_t received;
    _Atomic uint32_t producers_done;
    _Atomic uint64_t pendings;
} P1;

struct p1_collector {
    char unused;
};

static tr_status
p1_on_data(tr_cx *cx, struct p1_collector *self, const seqmsg *m)
{
    (void)cx;
    (void)self;
    if (m->from >= P1.nsenders) {
        NOTE("collector: message from unknown sender %u", m->from);
    } else {
        if (m->seq != P1.next[m->from]) {
            NOTE("collector: sender %u sent seq %u, expected %u", m->from,
                 m->seq, P1.next[m->from]);
        }
        P1.next[m->from] = m->seq + 1;
    }
    /* release: the main thread reads next[] after acquiring the total. */
    atomic_fetch_add_explicit(&P1.received, 1, memory_order_release);
    return TR_OK;
}

TR_ACTOR(p1_collector_actor, struct p1_collector,
         TR_ON(T_DATA, seqmsg, p1_on_data));

struct p1_producer {
    uint32_t id;
    uint32_t next;
};

static tr_status
p1_prod_init(tr_cx *cx, struct p1_producer *self, const uint32_t *id)
{
    (void)cx;
    self->id = *id;
    return TR_OK;
}

/* GO and CONT: send until done or until a send is held. */
static tr_status
p1_prod_run(tr_cx *cx, struct p1_producer *self, const void *none)
{
    (void)none;
    while (self->next < P1.k) {
        seqmsg m = {self->id, self->next};
        tr_status st = tr_send(cx, P1.collector, T_DATA, &m, sizeof m);

        if (st != TR_OK && st != TR_PENDING) {
            NOTE("producer %u: send %u gave %s", self->id, self->next,
                 tr_status_name(st));
            return tr_stop(cx, tr_self(cx));
        }
        self->next++;
        if (st == TR_PENDING) {
            atomic_fetch_add_explicit(&P1.pendings, 1, memory_order_relaxed);
            st = tr_send(cx, tr_self(cx), T_CONT, NULL, 0);
            CHECK(st == TR_OK || st == TR_PENDING,
                  "producer %u: self message gave %s", self->id,
                  tr_status_name(st));
            return TR_OK;
        }
    }
    atomic_fetch_add_explicit(&P1.producers_done, 1, memory_order_relaxed);
    return tr_stop(cx, tr_self(cx));
}

TR_ACTOR(p1_producer_actor, struct p1_producer,
         TR_ON_INIT(uint32_t, p1_prod_init), TR_ON(T_GO, void, p1_prod_run),
         TR_ON(T_CONT, void, p1_prod_run));

static void *
p1_thread(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;

    for (uint32_t seq = 0; seq < P1.k; seq++) {
        seqmsg m = {id, seq};
        tr_status st = tr_send(g_rt, P1.collector, T_DATA, &m, sizeof m);

        if (st != TR_OK) {
            NOTE("thread %u: send %u gave %s", id, seq, tr_status_name(st));
            break;
        }
    }
    return NULL;
}

/* One round on a fresh runtime; returns its held-send count. */
static uint64_t
p1_round(uint32_t workers, uint32_t nthreads, uint32_t nprod)
{
    uint64_t total = (uint64_t)P1.nsenders * P1.k;
    pthread_t th[64];
    tr_ref prod[128];
    tr_stats st;
    bool ok;

    memset(P1.next, 0, P1.nsenders * sizeof *P1.next);
    RESET(P1.received);
    RESET(P1.producers_done);
    rt_new(workers);
    TR_ASSERT_OK(tr_spawn(g_rt, &p1_collector_actor, NULL, &P1.collector));
    for (uint32_t i = 0; i < nprod; i++) {
        uint32_t id = nthreads + i;
        tr_spawn_opts o = {.arg = &id, .arg_len = sizeof id};

        TR_ASSERT_OK(tr_spawn(g_rt, &p1_producer_actor, &o, &prod[i]));
    }
    start_threads(th, nthreads, p1_thread);
    for (uint32_t i = 0; i < nprod; i++) {
        tr_status s = tr_send(g_rt, prod[i], T_GO, NULL, 0);

        CHECK(s == TR_OK, "GO to producer %u gave %s", i, tr_status_name(s));
    }
    join_threads(th, nthreads);

    WAIT_FOR(
        ok,
        atomic_load_explicit(&P1.received, memory_order_acquire) == total &&
            atomic_load_explicit(&P1.producers_done, memory_order_relaxed) ==
                nprod &&
            alive() == 1,
        SETTLE_MS);
    CHECK(ok,
          "%u workers: collector got %llu of %llu, %u of %u producers done, "
          "%llu alive",
          workers, (unsigned long long)LOAD(P1.received),
          (unsigned long long)total, LOAD(P1.producers_done), nprod,
          (unsigned long long)alive());
    if (ok) {
        for (uint32_t i = 0; i < P1.nsenders; i++) {
            CHECK(P1.next[i] == P1.k, "sender %u: %u of %u arrived", i,
                  P1.next[i], P1.k);
        }
    }
    st = stats();
    CHECK(dl_total() == 0 && st.dead_letters == 0,
          "%llu dead letters (stats %llu), expected none",
          (unsigned long long)dl_total(), (unsigned long long)st.dead_letters);
    CHECK(st.spawned == 1 + nprod, "stats.spawned %llu, expected %u",
          (unsigned long long)st.spawned, 1 + nprod);
    rt_destroy();
    return st.held;
}

static void
test_producers_into_one(void **state)
{
    uint32_t nthreads = clamp_u32(S.threads, 1, 64);
    uint32_t nprod = 2 * nthreads;
    uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u, held = 0;
    uint32_t round = 0;

    (void)state;
    memset(&P1, 0, sizeof P1);
    P1.nsenders = nthreads + nprod;
    P1.k = clamp_u32(2 * S.actors, 100, 10000000);
    P1.next = defer_calloc(P1.nsenders, sizeof *P1.next);
    /* Fresh runtimes on 2, 3 and 4 workers until the time is up. */
    do {
        held += p1_round(2 + round % 3, nthreads, nprod);
        round++;
    } while ((round < 3 || tr_test_now_ns() < end) && !have_errors());
    print_message("producers_into_one: %u rounds, %u senders x %u, %llu "
                  "held sends, %llu producer pauses\n",
                  round, P1.nsenders, P1.k, (unsigned long long)held,
                  (unsigned long long)LOAD(P1.pendings));
    assert_no_errors();
}

/* ====================================================================== */
/* spawn_stop_churn                                                        */
/* ====================================================================== */

/* How a churned actor ends. */
enum {
    CH_SELF,     /* a message makes it stop itself */
    CH_OUTSIDE,  /* its spawner stops it */
    CH_FAIL,     /* a handler returns a failure */
    CH_EXIT,     /* a handler calls tr_exit with a code */
    CH_INITFAIL, /* its init hook fails: no terminate */
    CH_NMODES
};

#define CH_EXIT_CODE 7
#define CH_RING      64  /* records per spawner */
#define CH_KEEP      256 /* init-failed refs kept per spawner */

/* One churned actor as its spawner sees it. The actor stores `phase` last
 * (release), after which it no longer touches the record and the spawner
 * may reuse it. */
typedef struct ch_rec {
    _Atomic uint32_t phase; /* 0 live, 1 init failed, 2 terminated */
    tr_ref ref;             /* spawner only */
} ch_rec;

typedef struct ch_spawner {
    ch_rec recs[CH_RING];
    uint32_t next;
    tr_ref initfail[CH_KEEP];
    uint32_t ninitfail;
    uint64_t rng;
    /* Tallies, read by the main thread once the spawner is done. */
    uint64_t spawns, work_ok, work_edead, stale, busy;
    _Atomic uint32_t done;
} ch_spawner;

static struct {
    _Atomic uint32_t stop;
    _Atomic uint64_t init_ok, init_failed, terminated, work_handled;
    _Atomic uint32_t spawners_done;
} CH;

typedef struct ch_arg {
    ch_rec *rec;
    uint32_t mode;
} ch_arg;

struct ch_child {
    ch_rec *rec;
    uint32_t mode;
};

static tr_status
ch_init(tr_cx *cx, struct ch_child *self, const ch_arg *a)
{
    (void)cx;
    self->rec = a->rec;
    self->mode = a->mode;
    if (a->mode == CH_INITFAIL) {
        atomic_fetch_add_explicit(&CH.init_failed, 1, memory_order_relaxed);
        /* release: our last touch of the record. */
        atomic_store_explicit(&a->rec->phase, 1, memory_order_release);
        return TR_EFAILED;
    }
    atomic_fetch_add_explicit(&CH.init_ok, 1, memory_order_relaxed);
    return TR_OK;
}

static tr_status
ch_terminate(tr_cx *cx, struct ch_child *self, const tr_reason *why)
{
    tr_exit_kind kind = TR_EXIT_NORMAL;
    int32_t code = 0;

    (void)cx;
    if (self->mode == CH_FAIL) {
        kind = TR_EXIT_FAILED;
        code = TR_EFAILED;
    } else if (self->mode == CH_EXIT) {
        kind = TR_EXIT_FAILED;
        code = CH_EXIT_CODE;
    }
    CHECK(self->mode != CH_INITFAIL, "terminate ran after a failed init");
    CHECK(why->kind == kind && why->code == code,
          "mode %u ended with kind %d code %d (%s), expected %d/%d", self->mode,
          (int)why->kind, (int)why->code, why->text, (int)kind, (int)code);
    atomic_fetch_add_explicit(&CH.terminated, 1, memory_order_relaxed);
    /* release: our last touch of the record. */
    atomic_store_explicit(&self->rec->phase, 2, memory_order_release);
    return TR_OK;
}

static tr_status
ch_work(tr_cx *cx, struct ch_child *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    atomic_fetch_add_explicit(&CH.work_handled, 1, memory_order_relaxed);
    return TR_OK;
}

static tr_status
ch_end_self(tr_cx *cx, struct ch_child *self, const void *none)
{
    (void)self;
    (void)none;
    return tr_stop(cx, tr_self(cx));
}

static tr_status
ch_end_fail(tr_cx *cx, struct ch_child *self, const void *none)
{
    (void)cx;
    (void)self;
    (void)none;
    return TR_EFAILED;
}

static tr_status
ch_end_exit(tr_cx *cx, struct ch_child *self, const void *none)
{
    (void)self;
    (void)none;
    return tr_exit(cx, CH_EXIT_CODE, "exit on request");
}

TR_ACTOR(ch_child_actor, struct ch_child, TR_ON_INIT(ch_arg, ch_init),
         TR_ON_TERMINATE(ch_terminate), TR_ON(T_WORK, void, ch_work),
         TR_ON(T_END_SELF, void, ch_end_self),
         TR_ON(T_END_FAIL, void, ch_end_fail),
         TR_ON(T_END_EXIT, void, ch_end_exit));

/* A ref whose actor has ended: sends and stops must say TR_EDEAD. */
static void
ch_stale_check(origin o, ch_spawner *sp, tr_ref ref)
{
    tr_status st = o_send(o, ref, T_STALE, NULL, 0);

    CHECK(st == TR_EDEAD, "send to a stale ref gave %s", tr_status_name(st));
    st = o_stop(o, ref);
    CHECK(st == TR_EDEAD, "stop of a stale ref gave %s", tr_status_name(st));
    sp->stale++;
}

static void
ch_step(origin o, ch_spawner *sp)
{
    ch_rec *rec = &sp->recs[sp->next++ % CH_RING];
    uint32_t mode, nwork;
    tr_spawn_opts opts = {0};
    ch_arg a;
    tr_ref ref;
    tr_status st;

    if (!tr_ref_is_none(rec->ref)) {
        /* acquire: pairs with the actor's last store to the record. */
        uint32_t ph = atomic_load_explicit(&rec->phase, memory_order_acquire);

        if (ph == 0) {
            /* Still ending; look again next round, and let it run. */
            sp->busy++;
            if (o.cx == NULL) {
                sched_yield();
            }
            return;
        }
        if (ph == 2) {
            ch_stale_check(o, sp, rec->ref);
        } else {
            /* Its mailbox may not be closed yet: checked at the end. */
            sp->initfail[sp->ninitfail++ % CH_KEEP] = rec->ref;
        }
    }
    mode = rng_below(&sp->rng, CH_NMODES);
    a.rec = rec;
    a.mode = mode;
    opts.arg = &a;
    opts.arg_len = sizeof a;
    /* Half get a mailbox of 8, half the runtime's default. */
    opts.mailbox =
        rng_below(&sp->rng, 2) ? &(tr_mailbox_opts){8, TR_BACKPRESSURE} : NULL;
    atomic_store_explicit(&rec->phase, 0, memory_order_relaxed);
    rec->ref = TR_NOREF;
    st = o_spawn(o, &ch_child_actor, &opts, &ref);
    if (st != TR_OK) {
        NOTE("spawn gave %s", tr_status_name(st));
        return;
    }
    rec->ref = ref;
    sp->spawns++;
    /* At most 5 messages: never more than the capacity of 8, so sends from
     * a handler are never held. */
    nwork = rng_below(&sp->rng, 4);
    for (uint32_t i = 0; i < nwork; i++) {
        st = o_send(o, ref, T_WORK, NULL, 0);
        if (st == TR_OK) {
            sp->work_ok++;
        } else if (st == TR_EDEAD && mode == CH_INITFAIL) {
            sp->work_edead++;
        } else {
            NOTE("work send (mode %u) gave %s", mode, tr_status_name(st));
        }
    }
    switch (mode) {
    case CH_SELF:
        st = o_send(o, ref, T_END_SELF, NULL, 0);
        break;
    case CH_OUTSIDE:
        st = o_stop(o, ref);
        break;
    case CH_FAIL:
        st = o_send(o, ref, T_END_FAIL, NULL, 0);
        break;
    case CH_EXIT:
        st = o_send(o, ref, T_END_EXIT, NULL, 0);
        break;
    default:
        st = TR_OK;
        break;
    }
    CHECK(st == TR_OK, "ending (mode %u) gave %s", mode, tr_status_name(st));
    if (mode == CH_OUTSIDE && rng_below(&sp->rng, 2)) {
        /* Racing the stop: either outcome is fine, but it is counted. */
        st = o_send(o, ref, T_WORK, NULL, 0);
        if (st == TR_OK) {
            sp->work_ok++;
        } else if (st == TR_EDEAD) {
            sp->work_edead++;
        } else {
            NOTE("work send after stop gave %s", tr_status_name(st));
        }
    }
    if (rng_below(&sp->rng, 8) == 0) {
        ch_rec *r = &sp->recs[rng_below(&sp->rng, CH_RING)];

        if (r != rec && !tr_ref_is_none(r->ref) &&
            atomic_load_explicit(&r->phase, memory_order_acquire) == 2) {
            ch_stale_check(o, sp, r->ref);
        }
    }
}

struct ch_spawner_state {
    ch_spawner *sp;
};

static tr_status
ch_sp_init(tr_cx *cx, struct ch_spawner_state *self, ch_spawner *const *sp)
{
    (void)cx;
    self->sp = *sp;
    return TR_OK;
}

static tr_status
ch_sp_tick(tr_cx *cx, struct ch_spawner_state *self, const void *none)
{
    origin o = {cx};
    tr_status st;

    (void)none;
    if (atomic_load_explicit(&CH.stop, memory_order_relaxed)) {
        /* release: publishes the spawner's tallies and records. */
        atomic_store_explicit(&self->sp->done, 1, memory_order_release);
        atomic_fetch_add_explicit(&CH.spawners_done, 1, memory_order_relaxed);
        return tr_stop(cx, tr_self(cx));
    }
    for (int i = 0; i < 4; i++) {
        ch_step(o, self->sp);
    }
    st = tr_send(cx, tr_self(cx), T_TICK, NULL, 0);
    CHECK(st == TR_OK, "spawner tick gave %s", tr_status_name(st));
    return TR_OK;
}

typedef ch_spawner *ch_spawner_ptr;

TR_ACTOR(ch_spawner_actor, struct ch_spawner_state,
         TR_ON_INIT(ch_spawner_ptr, ch_sp_init),
         TR_ON(T_TICK, void, ch_sp_tick));

static ch_spawner *ch_sps;

static void *
ch_thread(void *arg)
{
    ch_spawner *sp = &ch_sps[(uintptr_t)arg];

    while (!atomic_load_explicit(&CH.stop, memory_order_relaxed)) {
        ch_step(OUTSIDE, sp);
    }
    return NULL;
}

static void
test_spawn_stop_churn(void **state)
{
    uint32_t nthreads = clamp_u32(S.threads, 1, 64);
    uint32_t nactors = clamp_u32(S.threads, 1, 64);
    uint32_t nsp = nthreads + nactors;
    uint64_t spawns = 0, work_ok = 0, work_edead = 0, stale = 0, busy = 0;
    uint64_t base_alive, base_spawned, finals = 0;
    pthread_t th[64];
    tr_stats st;
    bool ok;

    (void)state;
    memset(&CH, 0, sizeof CH);
    ch_sps = defer_calloc(nsp, sizeof *ch_sps);
    for (uint32_t i = 0; i < nsp; i++) {
        ch_sps[i].rng = rng_seed(2, i);
    }
    rt_new(clamp_u32(S.threads, 2, 4));
    st = stats();
    base_alive = st.alive;
    base_spawned = st.spawned;

    for (uint32_t i = 0; i < nactors; i++) {
        ch_spawner *sp = &ch_sps[nthreads + i];
        tr_spawn_opts o = {.arg = &sp, .arg_len = sizeof sp};
        tr_ref r;

        TR_ASSERT_OK(tr_spawn(g_rt, &ch_spawner_actor, &o, &r));
        TR_ASSERT_OK(tr_send(g_rt, r, T_TICK, NULL, 0));
    }
    start_threads(th, nthreads, ch_thread);
    {
        uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u;

        while (tr_test_now_ns() < end && !have_errors()) {
            tr_test_sleep_us(10000);
        }
    }
    atomic_store_explicit(&CH.stop, 1, memory_order_relaxed);
    join_threads(th, nthreads);
    WAIT_FOR(ok,
             atomic_load_explicit(&CH.spawners_done, memory_order_relaxed) ==
                 nactors,
             SETTLE_MS);
    CHECK(ok, "%u of %u spawner actors finished", LOAD(CH.spawners_done),
          nactors);
    WAIT_FOR(ok, alive() == base_alive, SETTLE_MS);
    CHECK(ok, "stats.alive is %llu, expected %llu after the churn",
          (unsigned long long)alive(), (unsigned long long)base_alive);

    for (uint32_t i = 0; i < nsp; i++) {
        ch_spawner *sp = &ch_sps[i];

        if (i >= nthreads &&
            !atomic_load_explicit(&sp->done, memory_order_acquire)) {
            continue; /* reported above; its fields are not ours */
        }
        spawns += sp->spawns;
        work_ok += sp->work_ok;
        work_edead += sp->work_edead;
        stale += sp->stale;
        busy += sp->busy;
    }
    st = stats();
    CHECK(st.spawned - base_spawned == spawns + nactors,
          "stats.spawned grew by %llu, expected %llu",
          (unsigned long long)(st.spawned - base_spawned),
          (unsigned long long)(spawns + nactors));
    CHECK(LOAD(CH.init_ok) + LOAD(CH.init_failed) == spawns,
          "%llu inits ran (%llu ok, %llu failed) for %llu spawns",
          (unsigned long long)(LOAD(CH.init_ok) + LOAD(CH.init_failed)),
          (unsigned long long)LOAD(CH.init_ok),
          (unsigned long long)LOAD(CH.init_failed), (unsigned long long)spawns);
    CHECK(LOAD(CH.terminated) == LOAD(CH.init_ok),
          "terminate ran %llu times for %llu successful inits",
          (unsigned long long)LOAD(CH.terminated),
          (unsigned long long)LOAD(CH.init_ok));
    CHECK(LOAD(CH.work_handled) + dl_type(T_WORK) == work_ok + work_edead,
          "work: %llu handled + %llu dead letters != %llu accepted + %llu "
          "refused dead",
          (unsigned long long)LOAD(CH.work_handled),
          (unsigned long long)dl_type(T_WORK), (unsigned long long)work_ok,
          (unsigned long long)work_edead);
    CHECK(dl_get(T_WORK, R_EDEAD) == dl_type(T_WORK),
          "work dead letters with a reason other than EDEAD");
    CHECK(dl_type(T_STALE) == stale && dl_get(T_STALE, R_EDEAD) == stale,
          "%llu stale sends, %llu dead letters (%llu EDEAD)",
          (unsigned long long)stale, (unsigned long long)dl_type(T_STALE),
          (unsigned long long)dl_get(T_STALE, R_EDEAD));
    CHECK(dl_type(T_END_SELF) + dl_type(T_END_FAIL) + dl_type(T_END_EXIT) +
                  dl_type(T_TICK) ==
              0,
          "an ending or tick message was dead-lettered");

    /* Now every churned actor has ended: every ref is stale. */
    for (uint32_t i = 0; i < nsp; i++) {
        ch_spawner *sp = &ch_sps[i];
        uint32_t nkeep = sp->ninitfail < CH_KEEP ? sp->ninitfail : CH_KEEP;

        if (i >= nthreads &&
            !atomic_load_explicit(&sp->done, memory_order_acquire)) {
            continue;
        }
        for (uint32_t j = 0; j < CH_RING; j++) {
            if (!tr_ref_is_none(sp->recs[j].ref)) {
                ch_stale_check(OUTSIDE, sp, sp->recs[j].ref);
                finals++;
            }
        }
        for (uint32_t j = 0; j < nkeep; j++) {
            ch_stale_check(OUTSIDE, sp, sp->initfail[j]);
            finals++;
        }
    }
    CHECK(dl_get(T_STALE, R_EDEAD) == stale + finals,
          "final stale sends: %llu dead letters, expected %llu",
          (unsigned long long)dl_get(T_STALE, R_EDEAD),
          (unsigned long long)(stale + finals));
    print_message(
        "spawn_stop_churn: %llu spawns (%llu init failures), "
        "%llu stale checks, %llu busy records\n",
        (unsigned long long)spawns, (unsigned long long)LOAD(CH.init_failed),
        (unsigned long long)(stale + finals), (unsigned long long)busy);
    rt_destroy();
    assert_no_errors();
}

/* ====================================================================== */
/* pingpong_storm                                                          */
/* ====================================================================== */

typedef struct ppmsg {
    uint32_t pair;
    uint32_t n;
} ppmsg;

static struct {
    uint32_t rounds;
    uint32_t *pings; /* written by each pair's ponger */
    uint32_t *pongs; /* written by each pair's pinger before `done` */
    _Atomic uint32_t done;
    _Atomic uint64_t allocs, frees;
} PP;

static void
pp_free(void *p)
{
    atomic_fetch_add_explicit(&PP.frees, 1, memory_order_relaxed);
    free(p);
}

static tr_status
pp_send(tr_cx *cx, tr_ref to, uint32_t type, uint32_t pair, uint32_t n,
        bool move)
{
    ppmsg m = {pair, n};
    ppmsg *b;
    void *p;
    tr_status st;

    if (!move) {
        return tr_send(cx, to, type, &m, sizeof m);
    }
    b = malloc(sizeof *b);
    if (b == NULL) {
        return TR_ENOMEM;
    }
    *b = m;
    atomic_fetch_add_explicit(&PP.allocs, 1, memory_order_relaxed);
    p = b;
    st = tr_send_move(cx, to, type, &p, sizeof *b, pp_free);
    if (st == TR_OK || st == TR_PENDING || st == TR_DROPPED || st == TR_EDEAD) {
        CHECK(p == NULL, "moved buffer not taken on %s", tr_status_name(st));
    } else {
        CHECK(p == b, "moved buffer taken on %s", tr_status_name(st));
        pp_free(p);
    }
    return st;
}

typedef struct pp_arg {
    uint32_t pair;
    bool move;
    tr_ref peer;
} pp_arg;

struct pp_actor {
    uint32_t pair;
    uint32_t n;
    bool move;
    tr_ref peer;
};

static tr_status
pp_init(tr_cx *cx, struct pp_actor *self, const pp_arg *a)
{
    (void)cx;
    self->pair = a->pair;
    self->move = a->move;
    self->peer = a->peer;
    return TR_OK;
}

static tr_status
pp_on_ping(tr_cx *cx, struct pp_actor *self, const ppmsg *m)
{
    tr_status st;

    CHECK(m->pair == self->pair && m->n == self->n,
          "ponger %u: got ping %u of pair %u, expected %u", self->pair, m->n,
          m->pair, self->n);
    self->n = m->n + 1;
    PP.pings[self->pair] = self->n;
    st = pp_send(cx, tr_sender(cx), T_PONG, self->pair, m->n, self->move);
    CHECK(st == TR_OK, "ponger %u: pong gave %s", self->pair,
          tr_status_name(st));
    return TR_OK;
}

static tr_status
pp_go(tr_cx *cx, struct pp_actor *self, const void *none)
{
    tr_status st = pp_send(cx, self->peer, T_PING, self->pair, 0, self->move);

    (void)none;
    CHECK(st == TR_OK, "pinger %u: first ping gave %s", self->pair,
          tr_status_name(st));
    return TR_OK;
}

static tr_status
pp_on_pong(tr_cx *cx, struct pp_actor *self, const ppmsg *m)
{
    tr_status st;

    CHECK(tr_ref_eq(tr_sender(cx), self->peer),
          "pinger %u: pong from another actor", self->pair);
    CHECK(m->pair == self->pair && m->n == self->n,
          "pinger %u: got pong %u of pair %u, expected %u", self->pair, m->n,
          m->pair, self->n);
    self->n = m->n + 1;
    if (self->n < PP.rounds) {
        st = pp_send(cx, self->peer, T_PING, self->pair, self->n, self->move);
        CHECK(st == TR_OK, "pinger %u: ping gave %s", self->pair,
              tr_status_name(st));
    } else {
        PP.pongs[self->pair] = self->n;
        /* release: publishes pongs[] and the ponger's last pings[] write,
         * which happened before its pong reached us. */
        atomic_fetch_add_explicit(&PP.done, 1, memory_order_release);
    }
    return TR_OK;
}

TR_ACTOR(pp_ponger_actor, struct pp_actor, TR_ON_INIT(pp_arg, pp_init),
         TR_ON(T_PING, ppmsg, pp_on_ping));
TR_ACTOR(pp_pinger_actor, struct pp_actor, TR_ON_INIT(pp_arg, pp_init),
         TR_ON(T_GO, void, pp_go), TR_ON(T_PONG, ppmsg, pp_on_pong));

static void
test_pingpong_storm(void **state)
{
    uint32_t npairs = clamp_u32(S.actors / 10, 10, 100), round;
    uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u, steals = 0,
             parks = 0;
    tr_ref *pingers;
    bool ok;

    (void)state;
    memset(&PP, 0, sizeof PP);
    PP.rounds = clamp_u32(S.actors / 5, 10, 1000000);
    PP.pings = defer_calloc(npairs, sizeof *PP.pings);
    PP.pongs = defer_calloc(npairs, sizeof *PP.pongs);
    pingers = defer_calloc(npairs, sizeof *pingers);

    /* Fresh runtimes on 2, 3 and 4 workers until the time is up. */
    for (round = 0; round < 3 || tr_test_now_ns() < end; round++) {
        uint32_t workers = 2 + round % 3;
        tr_stats st;

        rt_new(workers);
        RESET(PP.done);
        memset(PP.pings, 0, npairs * sizeof *PP.pings);
        memset(PP.pongs, 0, npairs * sizeof *PP.pongs);
        for (uint32_t i = 0; i < npairs; i++) {
            pp_arg a = {i, (i & 1) != 0, TR_NOREF};
            tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};

            TR_ASSERT_OK(tr_spawn(g_rt, &pp_ponger_actor, &o, &a.peer));
            TR_ASSERT_OK(tr_spawn(g_rt, &pp_pinger_actor, &o, &pingers[i]));
        }
        for (uint32_t i = 0; i < npairs; i++) {
            TR_ASSERT_OK(tr_send(g_rt, pingers[i], T_GO, NULL, 0));
        }
        WAIT_FOR(ok,
                 atomic_load_explicit(&PP.done, memory_order_acquire) == npairs,
                 SETTLE_MS);
        CHECK(ok, "%u workers: %u of %u pairs finished", workers, LOAD(PP.done),
              npairs);
        for (uint32_t i = 0; ok && i < npairs; i++) {
            CHECK(PP.pings[i] == PP.rounds && PP.pongs[i] == PP.rounds,
                  "%u workers: pair %u counted %u pings, %u pongs of %u",
                  workers, i, PP.pings[i], PP.pongs[i], PP.rounds);
        }
        st = stats();
        CHECK(dl_total() == 0, "%llu dead letters",
              (unsigned long long)dl_total());
        steals += st.steals;
        parks += st.parks;
        rt_destroy();
        if (have_errors()) {
            break;
        }
    }
    print_message("pingpong_storm: %u runtimes, %u pairs x %u round trips, "
                  "%llu steals, %llu parks\n",
                  round, npairs, PP.rounds, (unsigned long long)steals,
                  (unsigned long long)parks);
    CHECK(LOAD(PP.allocs) == LOAD(PP.frees),
          "%llu moved buffers allocated, %llu freed",
          (unsigned long long)LOAD(PP.allocs),
          (unsigned long long)LOAD(PP.frees));
    assert_no_errors();
}

/* ====================================================================== */
/* park_wake_storm                                                         */
/* ====================================================================== */

typedef struct pwmsg {
    uint32_t hops;
    uint32_t rnd;
} pwmsg;

static struct {
    uint32_t n;
    tr_ref *actors;
    _Atomic uint32_t stop;
    _Atomic uint64_t handled, expected, lost, timers;
} PW;

struct pw_actor {
    char unused;
};

static tr_status
pw_on_hop(tr_cx *cx, struct pw_actor *self, const pwmsg *m)
{
    (void)self;
    atomic_fetch_add_explicit(&PW.handled, 1, memory_order_relaxed);
    if (m->hops > 0) {
        uint64_t s = m->rnd;
        pwmsg f = {m->hops - 1, (uint32_t)rng_next(&s)};
        tr_status st =
            tr_send(cx, PW.actors[f.rnd % PW.n], T_HOP, &f, sizeof f);

        CHECK(st == TR_OK || st == TR_PENDING, "forward gave %s",
              tr_status_name(st));
    }
    return TR_OK;
}

TR_ACTOR(pw_actor_b, struct pw_actor, TR_ON(T_HOP, pwmsg, pw_on_hop));

/* Timer messages that find a full mailbox are dead-lettered with TR_EFULL:
 * they and the hops they would have made are accounted as lost. */
static void
pw_dl_hook(const tr_dead_letter *dl)
{
    pwmsg m;

    if (dl->type != T_HOP || dl->len != sizeof m) {
        NOTE("unexpected dead letter of type %u", dl->type);
        return;
    }
    if (dl->reason != TR_EFULL || !tr_ref_is_none(dl->from)) {
        NOTE("hop dead-lettered with %s", tr_status_name(dl->reason));
        return;
    }
    memcpy(&m, dl->data, sizeof m);
    atomic_fetch_add_explicit(&PW.lost, m.hops + 1, memory_order_relaxed);
}

static void *
pw_thread(void *arg)
{
    uint64_t rng = rng_seed(4, (uintptr_t)arg);

    while (!atomic_load_explicit(&PW.stop, memory_order_relaxed)) {
        uint32_t burst = 1 + rng_below(&rng, 48);

        for (uint32_t i = 0; i < burst; i++) {
            pwmsg m = {rng_below(&rng, 4), (uint32_t)rng_next(&rng)};
            tr_ref to = PW.actors[rng_below(&rng, PW.n)];
            tr_status st;

            atomic_fetch_add_explicit(&PW.expected, m.hops + 1,
                                      memory_order_relaxed);
            st = tr_send(g_rt, to, T_HOP, &m, sizeof m);
            if (st != TR_OK) {
                NOTE("burst send gave %s", tr_status_name(st));
                atomic_fetch_sub_explicit(&PW.expected, m.hops + 1,
                                          memory_order_relaxed);
                return NULL;
            }
        }
        if (rng_below(&rng, 4) == 0) {
            pwmsg m = {rng_below(&rng, 4), (uint32_t)rng_next(&rng)};
            tr_ref to = PW.actors[rng_below(&rng, PW.n)];
            tr_status st;

            atomic_fetch_add_explicit(&PW.expected, m.hops + 1,
                                      memory_order_relaxed);
            st = tr_send_after(g_rt, to, T_HOP, &m, sizeof m,
                               rng_below(&rng, 4), NULL);
            if (st != TR_OK) {
                NOTE("send_after gave %s", tr_status_name(st));
                atomic_fetch_sub_explicit(&PW.expected, m.hops + 1,
                                          memory_order_relaxed);
                return NULL;
            }
            atomic_fetch_add_explicit(&PW.timers, 1, memory_order_relaxed);
        }
        tr_test_sleep_us(rng_below(&rng, 3001));
    }
    return NULL;
}

static void
test_park_wake_storm(void **state)
{
    uint32_t nthreads = clamp_u32(S.threads / 2, 1, 64);
    uint64_t parks0;
    pthread_t th[64];
    tr_stats st;
    bool ok;

    (void)state;
    memset(&PW, 0, sizeof PW);
    PW.n = clamp_u32(S.actors / 100, 8, 128);
    PW.actors = defer_calloc(PW.n, sizeof *PW.actors);
    g_dl_hook = pw_dl_hook;
    rt_new(clamp_u32(S.threads, 2, 4));
    for (uint32_t i = 0; i < PW.n; i++) {
        TR_ASSERT_OK(tr_spawn(g_rt, &pw_actor_b, NULL, &PW.actors[i]));
    }
    parks0 = stats().parks;
    start_threads(th, nthreads, pw_thread);
    {
        uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u;

        while (tr_test_now_ns() < end && !have_errors()) {
            tr_test_sleep_us(10000);
        }
    }
    atomic_store_explicit(&PW.stop, 1, memory_order_relaxed);
    join_threads(th, nthreads);
    WAIT_FOR(ok, LOAD(PW.handled) + LOAD(PW.lost) == LOAD(PW.expected),
             SETTLE_MS);
    CHECK(ok, "%llu handled + %llu lost, expected %llu",
          (unsigned long long)LOAD(PW.handled),
          (unsigned long long)LOAD(PW.lost),
          (unsigned long long)LOAD(PW.expected));
    /* Nothing more may trickle in. */
    tr_test_sleep_us(20000);
    CHECK(LOAD(PW.handled) + LOAD(PW.lost) == LOAD(PW.expected),
          "more messages handled than sent: %llu + %llu > %llu",
          (unsigned long long)LOAD(PW.handled),
          (unsigned long long)LOAD(PW.lost),
          (unsigned long long)LOAD(PW.expected));
    st = stats();
    print_message("park_wake_storm: %llu handled, %llu lost to full "
                  "mailboxes, %llu timers, %llu parks\n",
                  (unsigned long long)LOAD(PW.handled),
                  (unsigned long long)LOAD(PW.lost),
                  (unsigned long long)LOAD(PW.timers),
                  (unsigned long long)(st.parks - parks0));
    rt_destroy();
    assert_no_errors();
}

/* ====================================================================== */
/* policies_accounting                                                     */
/* ====================================================================== */

enum {
    S_OK,
    S_PENDING,
    S_DROPPED,
    S_EFULL,
    S_EDEAD,
    S_ETIMEDOUT,
    S_OTHER,
    S_N
};

static int
status_index(tr_status st)
{
    switch (st) {
    case TR_OK:
        return S_OK;
    case TR_PENDING:
        return S_PENDING;
    case TR_DROPPED:
        return S_DROPPED;
    case TR_EFULL:
        return S_EFULL;
    case TR_EDEAD:
        return S_EDEAD;
    case TR_ETIMEDOUT:
        return S_ETIMEDOUT;
    default:
        return S_OTHER;
    }
}

#define PO_MAXRECV 16

static struct {
    tr_overflow policy;
    uint32_t nrecv, k;
    tr_ref recv[PO_MAXRECV];
    _Atomic uint64_t delivered;
    _Atomic uint64_t res[S_N];
    _Atomic uint32_t senders_done;
    _Atomic uint32_t overflowed[PO_MAXRECV];
    _Atomic uint32_t ended[PO_MAXRECV];
    _Atomic int32_t end_kind[PO_MAXRECV];
} PO;

static void
po_tally(tr_status st)
{
    int i = status_index(st);

    if (i == S_OTHER) {
        NOTE("flood send gave %s", tr_status_name(st));
    }
    atomic_fetch_add_explicit(&PO.res[i], 1, memory_order_relaxed);
}

static void
po_dl_hook(const tr_dead_letter *dl)
{
    if (dl->type != T_FLOOD || dl->reason != TR_DROPPED) {
        return;
    }
    for (uint32_t i = 0; i < PO.nrecv; i++) {
        if (tr_ref_eq(dl->to, PO.recv[i])) {
            atomic_store_explicit(&PO.overflowed[i], 1, memory_order_relaxed);
        }
    }
}

struct po_receiver {
    uint32_t idx;
};

static tr_status
po_recv_init(tr_cx *cx, struct po_receiver *self, const uint32_t *idx)
{
    (void)cx;
    self->idx = *idx;
    return TR_OK;
}

static tr_status
po_recv_flood(tr_cx *cx, struct po_receiver *self, const seqmsg *m)
{
    volatile uint32_t spin = 0;

    (void)cx;
    (void)self;
    (void)m;
    atomic_fetch_add_explicit(&PO.delivered, 1, memory_order_relaxed);
    /* A little work, so that senders outrun receivers. */
    for (int i = 0; i < 200; i++) {
        spin++;
    }
    return TR_OK;
}

static tr_status
po_recv_term(tr_cx *cx, struct po_receiver *self, const tr_reason *why)
{
    (void)cx;
    atomic_store_explicit(&PO.end_kind[self->idx], (int32_t)why->kind,
                          memory_order_relaxed);
    /* release: publishes end_kind. */
    atomic_store_explicit(&PO.ended[self->idx], 1, memory_order_release);
    return TR_OK;
}

TR_ACTOR(po_receiver_actor, struct po_receiver,
         TR_ON_INIT(uint32_t, po_recv_init),
         TR_ON(T_FLOOD, seqmsg, po_recv_flood), TR_ON_TERMINATE(po_recv_term));

struct po_sender {
    uint32_t id, sent;
    uint64_t rng;
};

static tr_status
po_send_init(tr_cx *cx, struct po_sender *self, const uint32_t *id)
{
    (void)cx;
    self->id = *id;
    self->rng = rng_seed(5, 1000 + *id);
    return TR_OK;
}

static tr_status
po_send_run(tr_cx *cx, struct po_sender *self, const void *none)
{
    (void)none;
    while (self->sent < PO.k) {
        seqmsg m = {self->id, self->sent};
        tr_status st = tr_send(cx, PO.recv[rng_below(&self->rng, PO.nrecv)],
                               T_FLOOD, &m, sizeof m);

        self->sent++;
        po_tally(st);
        if (st == TR_PENDING) {
            st = tr_send(cx, tr_self(cx), T_CONT, NULL, 0);
            CHECK(st == TR_OK || st == TR_PENDING,
                  "sender self message gave %s", tr_status_name(st));
            return TR_OK;
        }
    }
    atomic_fetch_add_explicit(&PO.senders_done, 1, memory_order_relaxed);
    return tr_stop(cx, tr_self(cx));
}

TR_ACTOR(po_sender_actor, struct po_sender, TR_ON_INIT(uint32_t, po_send_init),
         TR_ON(T_GO, void, po_send_run), TR_ON(T_CONT, void, po_send_run));

static void *
po_thread(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint64_t rng = rng_seed(5, id);

    for (uint32_t i = 0; i < PO.k; i++) {
        seqmsg m = {id, i};

        po_tally(tr_send(g_rt, PO.recv[rng_below(&rng, PO.nrecv)], T_FLOOD, &m,
                         sizeof m));
    }
    return NULL;
}

static const char *const po_names[] = {"backpressure", "reject", "drop newest",
                                       "drop oldest", "fail"};

typedef struct po_sum {
    uint64_t rounds, sent, delivered, dropped, rejected, dead, held;
} po_sum;

static void
po_round(tr_overflow policy, uint64_t *rng, po_sum *sum)
{
    uint32_t nthreads = clamp_u32(S.threads, 1, 32);
    uint32_t nact = clamp_u32(S.threads, 1, 32);
    uint32_t cap = 2 + rng_below(rng, 7);
    uint64_t attempts, r[S_N], delivered, dl_drop, dl_dead, dl_flood;
    pthread_t th[32];
    tr_stats st;
    bool ok;

    memset(&PO, 0, sizeof PO);
    memset(&g_dl, 0, sizeof g_dl);
    PO.policy = policy;
    PO.nrecv = policy == TR_FAIL ? PO_MAXRECV : 4;
    PO.k = clamp_u32(S.actors / 2, 50, 10000000);
    attempts = (uint64_t)PO.k * (nthreads + nact);
    g_dl_hook = po_dl_hook;
    rt_new(clamp_u32(S.threads, 2, 4));

    for (uint32_t i = 0; i < PO.nrecv; i++) {
        tr_mailbox_opts mb = {cap, policy};
        tr_spawn_opts o = {.arg = &i, .arg_len = sizeof i, .mailbox = &mb};

        TR_ASSERT_OK(tr_spawn(g_rt, &po_receiver_actor, &o, &PO.recv[i]));
    }
    start_threads(th, nthreads, po_thread);
    for (uint32_t i = 0; i < nact; i++) {
        uint32_t id = nthreads + i;
        tr_spawn_opts o = {.arg = &id, .arg_len = sizeof id};
        tr_ref s;
        tr_status rs = tr_spawn(g_rt, &po_sender_actor, &o, &s);

        CHECK(rs == TR_OK, "spawn sender gave %s", tr_status_name(rs));
        if (rs == TR_OK) {
            rs = tr_send(g_rt, s, T_GO, NULL, 0);
            CHECK(rs == TR_OK, "GO gave %s", tr_status_name(rs));
        }
    }
    join_threads(th, nthreads);
    WAIT_FOR(ok,
             atomic_load_explicit(&PO.senders_done, memory_order_relaxed) ==
                 nact,
             SETTLE_MS);
    CHECK(ok, "%s: %u of %u sender actors finished", po_names[policy],
          LOAD(PO.senders_done), nact);
    /* Every attempt ends up in exactly one bucket. */
#define PO_SETTLED                                                             \
    (LOAD(PO.delivered) + dl_type(T_FLOOD) + LOAD(PO.res[S_EFULL]) +           \
         LOAD(PO.res[S_ETIMEDOUT]) ==                                          \
     attempts)
    WAIT_FOR(ok, PO_SETTLED, SETTLE_MS);
#undef PO_SETTLED
    for (int i = 0; i < S_N; i++) {
        r[i] = LOAD(PO.res[i]);
    }
    delivered = LOAD(PO.delivered);
    dl_drop = dl_get(T_FLOOD, R_DROPPED);
    dl_dead = dl_get(T_FLOOD, R_EDEAD);
    dl_flood = dl_type(T_FLOOD);
    CHECK(ok,
          "%s: delivered %llu + dropped %llu + rejected %llu + dead %llu + "
          "other dead letters %llu + timed out %llu != sent %llu",
          po_names[policy], (unsigned long long)delivered,
          (unsigned long long)dl_drop, (unsigned long long)r[S_EFULL],
          (unsigned long long)dl_dead,
          (unsigned long long)(dl_flood - dl_drop - dl_dead),
          (unsigned long long)r[S_ETIMEDOUT], (unsigned long long)attempts);
    CHECK(r[S_OK] + r[S_PENDING] + r[S_DROPPED] + r[S_EFULL] + r[S_EDEAD] +
                  r[S_ETIMEDOUT] + r[S_OTHER] ==
              attempts,
          "%s: statuses counted for %llu of %llu sends", po_names[policy],
          (unsigned long long)(r[S_OK] + r[S_PENDING] + r[S_DROPPED] +
                               r[S_EFULL] + r[S_EDEAD] + r[S_ETIMEDOUT]),
          (unsigned long long)attempts);
    CHECK(r[S_ETIMEDOUT] == 0 && r[S_OTHER] == 0,
          "%s: %llu sends timed out, %llu gave other errors", po_names[policy],
          (unsigned long long)r[S_ETIMEDOUT], (unsigned long long)r[S_OTHER]);
    CHECK(dl_flood == dl_drop + dl_dead,
          "%s: flood dead letters with other reasons: %llu", po_names[policy],
          (unsigned long long)(dl_flood - dl_drop - dl_dead));
    CHECK(dl_total() == dl_flood, "%s: %llu dead letters of other types",
          po_names[policy], (unsigned long long)(dl_total() - dl_flood));
    switch (policy) {
    case TR_BACKPRESSURE:
        CHECK(r[S_DROPPED] + r[S_EFULL] + r[S_EDEAD] == 0 && dl_flood == 0 &&
                  delivered == attempts,
              "backpressure lost messages: %llu delivered of %llu",
              (unsigned long long)delivered, (unsigned long long)attempts);
        break;
    case TR_REJECT:
        CHECK(r[S_PENDING] + r[S_DROPPED] + r[S_EDEAD] == 0 && dl_flood == 0 &&
                  delivered == r[S_OK],
              "reject: %llu delivered, %llu ok, %llu pending, %llu dropped, "
              "%llu dead letters",
              (unsigned long long)delivered, (unsigned long long)r[S_OK],
              (unsigned long long)r[S_PENDING],
              (unsigned long long)r[S_DROPPED], (unsigned long long)dl_flood);
        break;
    case TR_DROP_NEWEST:
        CHECK(r[S_PENDING] + r[S_EFULL] + r[S_EDEAD] == 0 && dl_dead == 0 &&
                  dl_drop == r[S_DROPPED] && delivered == r[S_OK],
              "drop newest: %llu delivered, %llu ok, %llu dropped results, "
              "%llu dropped dead letters",
              (unsigned long long)delivered, (unsigned long long)r[S_OK],
              (unsigned long long)r[S_DROPPED], (unsigned long long)dl_drop);
        break;
    case TR_DROP_OLDEST:
        CHECK(r[S_PENDING] + r[S_EFULL] + r[S_EDEAD] == 0 && dl_dead == 0 &&
                  dl_drop >= r[S_DROPPED] &&
                  delivered + dl_drop == r[S_OK] + r[S_DROPPED],
              "drop oldest: %llu delivered, %llu ok, %llu dropped results, "
              "%llu dropped dead letters",
              (unsigned long long)delivered, (unsigned long long)r[S_OK],
              (unsigned long long)r[S_DROPPED], (unsigned long long)dl_drop);
        break;
    case TR_FAIL:
        CHECK(r[S_PENDING] + r[S_EFULL] == 0 && dl_drop == r[S_DROPPED] &&
                  dl_dead >= r[S_EDEAD],
              "fail: %llu pending, %llu rejected, %llu/%llu dropped, "
              "%llu/%llu dead",
              (unsigned long long)r[S_PENDING], (unsigned long long)r[S_EFULL],
              (unsigned long long)r[S_DROPPED], (unsigned long long)dl_drop,
              (unsigned long long)r[S_EDEAD], (unsigned long long)dl_dead);
        for (uint32_t i = 0; i < PO.nrecv; i++) {
            if (!LOAD(PO.overflowed[i])) {
                continue;
            }
            WAIT_FOR(ok,
                     atomic_load_explicit(&PO.ended[i], memory_order_acquire) !=
                         0,
                     SETTLE_MS);
            CHECK(ok, "fail: receiver %u overflowed and did not end", i);
            CHECK(!ok || LOAD(PO.end_kind[i]) == TR_EXIT_OVERLOAD,
                  "fail: receiver %u ended with kind %d, expected OVERLOAD", i,
                  (int)LOAD(PO.end_kind[i]));
        }
        break;
    }
    if (policy != TR_FAIL) {
        for (uint32_t i = 0; i < PO.nrecv; i++) {
            CHECK(!LOAD(PO.ended[i]),
                  "%s: receiver %u ended early with kind %d", po_names[policy],
                  i, (int)LOAD(PO.end_kind[i]));
        }
    }
    st = stats();
    CHECK(st.dropped == dl_drop && st.dead_letters == dl_total(),
          "%s: stats dropped %llu / dead letters %llu, seen %llu / %llu",
          po_names[policy], (unsigned long long)st.dropped,
          (unsigned long long)st.dead_letters, (unsigned long long)dl_drop,
          (unsigned long long)dl_total());
    CHECK(st.rejected == r[S_EFULL], "%s: stats.rejected %llu, saw %llu",
          po_names[policy], (unsigned long long)st.rejected,
          (unsigned long long)r[S_EFULL]);
    sum->rounds++;
    sum->sent += attempts;
    sum->delivered += delivered;
    sum->dropped += dl_drop;
    sum->rejected += r[S_EFULL];
    sum->dead += dl_dead;
    sum->held += st.held;
    rt_destroy();
    g_dl_hook = NULL;
}

static void
test_policies_accounting(void **state)
{
    static const tr_overflow policies[] = {
        TR_BACKPRESSURE, TR_REJECT, TR_DROP_NEWEST, TR_DROP_OLDEST, TR_FAIL};
    uint64_t rng = rng_seed(5, 999);
    uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u;
    po_sum sum[5];
    uint32_t round = 0;

    (void)state;
    memset(sum, 0, sizeof sum);
    /* Every policy at least once, then again until the time is up. */
    do {
        po_round(policies[round % 5], &rng, &sum[round % 5]);
        assert_no_errors();
        round++;
    } while (round < 5 || tr_test_now_ns() < end);
    for (int i = 0; i < 5; i++) {
        print_message("policies_accounting: %-12s %llu rounds: %llu sent, "
                      "%llu delivered, %llu dropped, %llu rejected, %llu "
                      "dead, %llu held\n",
                      po_names[policies[i]], (unsigned long long)sum[i].rounds,
                      (unsigned long long)sum[i].sent,
                      (unsigned long long)sum[i].delivered,
                      (unsigned long long)sum[i].dropped,
                      (unsigned long long)sum[i].rejected,
                      (unsigned long long)sum[i].dead,
                      (unsigned long long)sum[i].held);
    }
}

/* ====================================================================== */
/* kill_during_send                                                        */
/* ====================================================================== */

#define KS_SLOTS 16

static struct {
    pthread_mutex_t lock[KS_SLOTS];
    tr_ref ref[KS_SLOTS]; /* under lock[i] */
    _Atomic uint32_t stop;
    _Atomic uint64_t res[S_N];
    _Atomic uint64_t handled, spawned, terminated, allocs, frees, stops;
    _Atomic uint32_t actors_done;
} KS;

static void
ks_free(void *p)
{
    atomic_fetch_add_explicit(&KS.frees, 1, memory_order_relaxed);
    free(p);
}

struct ks_target {
    uint32_t count, limit;
};

static tr_status
ks_target_init(tr_cx *cx, struct ks_target *self, const uint32_t *limit)
{
    (void)cx;
    self->limit = *limit;
    return TR_OK;
}

static tr_status
ks_target_data(tr_cx *cx, struct ks_target *self, const seqmsg *m)
{
    (void)m;
    atomic_fetch_add_explicit(&KS.handled, 1, memory_order_relaxed);
    if (++self->count == self->limit) {
        return tr_stop(cx, tr_self(cx));
    }
    return TR_OK;
}

static tr_status
ks_target_term(tr_cx *cx, struct ks_target *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    CHECK(why->kind == TR_EXIT_NORMAL || why->kind == TR_EXIT_OVERLOAD,
          "target ended with kind %d (%s)", (int)why->kind, why->text);
    atomic_fetch_add_explicit(&KS.terminated, 1, memory_order_relaxed);
    return TR_OK;
}

TR_ACTOR(ks_target_actor, struct ks_target,
         TR_ON_INIT(uint32_t, ks_target_init),
         TR_ON(T_KDATA, seqmsg, ks_target_data),
         TR_ON_TERMINATE(ks_target_term));

static tr_status
ks_spawn_target(origin o, uint64_t *rng, tr_ref *out)
{
    static const tr_overflow pol[] = {
        TR_BACKPRESSURE, TR_BACKPRESSURE, TR_BACKPRESSURE, TR_REJECT,
        TR_DROP_NEWEST,  TR_DROP_OLDEST,  TR_FAIL};
    /* Some stop themselves after a while. */
    uint32_t limit = rng_below(rng, 4) == 0 ? 1 + rng_below(rng, 64) : 0;
    tr_mailbox_opts mb = {2 + rng_below(rng, 15), pol[rng_below(rng, 7)]};
    tr_spawn_opts opts = {
        .arg = &limit, .arg_len = sizeof limit, .mailbox = &mb};
    tr_status st = o_spawn(o, &ks_target_actor, &opts, out);

    if (st == TR_OK) {
        atomic_fetch_add_explicit(&KS.spawned, 1, memory_order_relaxed);
    } else {
        NOTE("spawn target gave %s", tr_status_name(st));
    }
    return st;
}

/* Replaces a random slot's target and stops the old one. */
static void
ks_replace(origin o, uint64_t *rng)
{
    uint32_t i = rng_below(rng, KS_SLOTS);
    tr_ref fresh, old;
    tr_status st;

    if (ks_spawn_target(o, rng, &fresh) != TR_OK) {
        return;
    }
    pthread_mutex_lock(&KS.lock[i]);
    old = KS.ref[i];
    KS.ref[i] = fresh;
    pthread_mutex_unlock(&KS.lock[i]);
    st = o_stop(o, old);
    CHECK(st == TR_OK || st == TR_EDEAD, "stop gave %s", tr_status_name(st));
    atomic_fetch_add_explicit(&KS.stops, 1, memory_order_relaxed);
}

static tr_status
ks_send_one(origin o, uint64_t *rng, uint32_t id, uint32_t seq)
{
    uint32_t i = rng_below(rng, KS_SLOTS);
    seqmsg m = {id, seq};
    tr_ref to;
    tr_status st;

    pthread_mutex_lock(&KS.lock[i]);
    to = KS.ref[i];
    pthread_mutex_unlock(&KS.lock[i]);
    if (rng_below(rng, 4) == 0) {
        seqmsg *b = malloc(sizeof *b);
        void *p = b;

        if (b == NULL) {
            NOTE("out of memory");
            return TR_ENOMEM;
        }
        *b = m;
        atomic_fetch_add_explicit(&KS.allocs, 1, memory_order_relaxed);
        st = o_send_move(o, to, T_KDATA, &p, sizeof *b, ks_free);
        if (st == TR_OK || st == TR_PENDING || st == TR_DROPPED ||
            st == TR_EDEAD) {
            CHECK(p == NULL, "moved buffer not taken on %s",
                  tr_status_name(st));
        } else {
            CHECK(p == b, "moved buffer taken on %s", tr_status_name(st));
            ks_free(p);
        }
    } else {
        st = o_send(o, to, T_KDATA, &m, sizeof m);
    }
    if (status_index(st) == S_OTHER || st == TR_ETIMEDOUT) {
        NOTE("send to a target gave %s", tr_status_name(st));
    }
    atomic_fetch_add_explicit(&KS.res[status_index(st)], 1,
                              memory_order_relaxed);
    return st;
}

struct ks_actor {
    uint32_t id, seq;
    uint64_t rng;
    bool killer;
};

typedef struct ks_arg {
    uint32_t id;
    bool killer;
} ks_arg;

static tr_status
ks_actor_init(tr_cx *cx, struct ks_actor *self, const ks_arg *a)
{
    (void)cx;
    self->id = a->id;
    self->killer = a->killer;
    self->rng = rng_seed(6, 100 + a->id);
    return TR_OK;
}

/* GO and CONT: a sender sends a batch (stopping at a held send); a killer
 * replaces a target. Both continue through a message to themselves. */
static tr_status
ks_actor_run(tr_cx *cx, struct ks_actor *self, const void *none)
{
    origin o = {cx};
    tr_status st;

    (void)none;
    if (atomic_load_explicit(&KS.stop, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&KS.actors_done, 1, memory_order_relaxed);
        return tr_stop(cx, tr_self(cx));
    }
    if (self->killer) {
        ks_replace(o, &self->rng);
    } else {
        for (int i = 0; i < 32; i++) {
            if (ks_send_one(o, &self->rng, self->id, self->seq++) ==
                TR_PENDING) {
                break;
            }
        }
    }
    st = tr_send(cx, tr_self(cx), T_CONT, NULL, 0);
    CHECK(st == TR_OK || st == TR_PENDING, "self message gave %s",
          tr_status_name(st));
    return TR_OK;
}

TR_ACTOR(ks_actor_b, struct ks_actor, TR_ON_INIT(ks_arg, ks_actor_init),
         TR_ON(T_GO, void, ks_actor_run), TR_ON(T_CONT, void, ks_actor_run));

static void *
ks_sender_thread(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint64_t rng = rng_seed(6, id);
    uint32_t seq = 0;

    while (!atomic_load_explicit(&KS.stop, memory_order_relaxed)) {
        ks_send_one(OUTSIDE, &rng, id, seq++);
    }
    return NULL;
}

static void *
ks_killer_thread(void *arg)
{
    uint64_t rng = rng_seed(6, 50 + (uintptr_t)arg);

    while (!atomic_load_explicit(&KS.stop, memory_order_relaxed)) {
        ks_replace(OUTSIDE, &rng);
        tr_test_sleep_us(rng_below(&rng, 50));
    }
    return NULL;
}

static void
test_kill_during_send(void **state)
{
    uint32_t nsend = clamp_u32(S.threads, 1, 32);
    uint32_t nkill = clamp_u32(S.threads / 2, 1, 32);
    uint32_t nact = clamp_u32(S.threads, 1, 32);
    uint64_t rng = rng_seed(6, 999), r[S_N], taken, handled, dl;
    pthread_t sth[32], kth[32];
    bool ok;

    (void)state;
    memset(&KS, 0, sizeof KS);
    for (int i = 0; i < KS_SLOTS; i++) {
        pthread_mutex_init(&KS.lock[i], NULL);
    }
    rt_new(clamp_u32(S.threads, 2, 4));
    for (int i = 0; i < KS_SLOTS; i++) {
        TR_ASSERT_OK(ks_spawn_target(OUTSIDE, &rng, &KS.ref[i]));
    }
    /* Actors: nact senders and one killer. */
    for (uint32_t i = 0; i <= nact; i++) {
        ks_arg a = {1000 + i, i == nact};
        tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};
        tr_ref ref;

        TR_ASSERT_OK(tr_spawn(g_rt, &ks_actor_b, &o, &ref));
        TR_ASSERT_OK(tr_send(g_rt, ref, T_GO, NULL, 0));
    }
    start_threads(sth, nsend, ks_sender_thread);
    start_threads(kth, nkill, ks_killer_thread);
    {
        uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u;

        while (tr_test_now_ns() < end && !have_errors()) {
            tr_test_sleep_us(10000);
        }
    }
    atomic_store_explicit(&KS.stop, 1, memory_order_relaxed);
    join_threads(sth, nsend);
    join_threads(kth, nkill);
    WAIT_FOR(ok, LOAD(KS.actors_done) == nact + 1, SETTLE_MS);
    CHECK(ok, "%u of %u sender and killer actors finished",
          LOAD(KS.actors_done), nact + 1);
    for (int i = 0; i < KS_SLOTS; i++) {
        tr_status st = tr_stop(g_rt, KS.ref[i]);

        CHECK(st == TR_OK || st == TR_EDEAD, "final stop gave %s",
              tr_status_name(st));
    }
    WAIT_FOR(ok, alive() == 0, SETTLE_MS);
    CHECK(ok, "%llu actors still alive", (unsigned long long)alive());

    for (int i = 0; i < S_N; i++) {
        r[i] = LOAD(KS.res[i]);
    }
    taken = r[S_OK] + r[S_PENDING] + r[S_DROPPED] + r[S_EDEAD];
    handled = LOAD(KS.handled);
    dl = dl_type(T_KDATA);
    CHECK(handled + dl == taken,
          "%llu handled + %llu dead-lettered != %llu accepted (ok %llu, "
          "pending %llu, dropped %llu, dead %llu)",
          (unsigned long long)handled, (unsigned long long)dl,
          (unsigned long long)taken, (unsigned long long)r[S_OK],
          (unsigned long long)r[S_PENDING], (unsigned long long)r[S_DROPPED],
          (unsigned long long)r[S_EDEAD]);
    CHECK(dl_get(T_KDATA, R_EDEAD) >= r[S_EDEAD] &&
              dl_get(T_KDATA, R_DROPPED) >= r[S_DROPPED],
          "fewer dead letters than dead/dropped statuses");
    CHECK(dl == dl_get(T_KDATA, R_EDEAD) + dl_get(T_KDATA, R_DROPPED),
          "dead letters with reasons other than EDEAD or DROPPED: %llu "
          "EFULL, %llu ECANCELED, %llu ESHUTDOWN, %llu other",
          (unsigned long long)dl_get(T_KDATA, R_EFULL),
          (unsigned long long)dl_get(T_KDATA, R_ECANCELED),
          (unsigned long long)dl_get(T_KDATA, R_ESHUTDOWN),
          (unsigned long long)dl_get(T_KDATA, R_OTHER));
    CHECK(dl_total() == dl, "%llu dead letters of other types",
          (unsigned long long)(dl_total() - dl));
    CHECK(LOAD(KS.terminated) == LOAD(KS.spawned),
          "terminate ran %llu times for %llu targets",
          (unsigned long long)LOAD(KS.terminated),
          (unsigned long long)LOAD(KS.spawned));
    print_message(
        "kill_during_send: %llu sends (ok %llu, pending %llu, "
        "dropped %llu, rejected %llu, dead %llu), %llu targets, "
        "%llu handled, %llu dead letters\n",
        (unsigned long long)(taken + r[S_EFULL]), (unsigned long long)r[S_OK],
        (unsigned long long)r[S_PENDING], (unsigned long long)r[S_DROPPED],
        (unsigned long long)r[S_EFULL], (unsigned long long)r[S_EDEAD],
        (unsigned long long)LOAD(KS.spawned), (unsigned long long)handled,
        (unsigned long long)dl);
    rt_destroy();
    CHECK(LOAD(KS.allocs) == LOAD(KS.frees),
          "%llu moved buffers allocated, %llu freed",
          (unsigned long long)LOAD(KS.allocs),
          (unsigned long long)LOAD(KS.frees));
    for (int i = 0; i < KS_SLOTS; i++) {
        pthread_mutex_destroy(&KS.lock[i]);
    }
    assert_no_errors();
}

/* ====================================================================== */
/* mute_cycles                                                             */
/* ====================================================================== */

#define MC_MAXK  5
#define MC_BURST 64 /* sends per handler for greedy members; < outbox_limit */

typedef struct mcmsg {
    uint32_t ring, from, seq;
} mcmsg;

#define MC_RINGS_PER_K 4
#define MC_MEMBERS     (MC_RINGS_PER_K * (MC_MAXK * (MC_MAXK + 1) / 2))

typedef struct mc_arg {
    uint32_t ring, idx, k, member;
    bool greedy;
} mc_arg;

/* Each member's progress, mirrored for the failure message. */
typedef struct mc_progress {
    _Atomic uint32_t sent, received;
} mc_progress;

static struct {
    uint32_t f;
    _Atomic uint32_t send_done, recv_done;
    mc_progress progress[MC_MEMBERS];
    mc_arg who[MC_MEMBERS]; /* main thread only */
} MC;

struct mc_member {
    mc_arg a;
    uint32_t sent, recv_next;
    tr_ref succ;
    bool has_succ;
};

static tr_status
mc_init(tr_cx *cx, struct mc_member *self, const mc_arg *a)
{
    (void)cx;
    self->a = *a;
    return TR_OK;
}

static tr_status
mc_setup(tr_cx *cx, struct mc_member *self, const tr_ref *succ)
{
    (void)cx;
    self->succ = *succ;
    self->has_succ = true;
    return TR_OK;
}

/* GO and CONT: flood the successor. A polite member stops at the first held
 * send; a greedy one goes on for a burst (each further send is held too). */
static tr_status
mc_flood(tr_cx *cx, struct mc_member *self, const void *none)
{
    uint32_t n = 0;
    tr_status st;

    (void)none;
    if (!self->has_succ) {
        NOTE("ring %u member %u: flood before setup", self->a.ring,
             self->a.idx);
        return TR_OK;
    }
    if (self->sent == MC.f) {
        return TR_OK;
    }
    while (self->sent < MC.f) {
        mcmsg m = {self->a.ring, self->a.idx, self->sent};

        st = tr_send(cx, self->succ, T_DATA, &m, sizeof m);
        if (st != TR_OK && st != TR_PENDING) {
            NOTE("ring %u member %u: send %u gave %s", self->a.ring,
                 self->a.idx, self->sent, tr_status_name(st));
            return tr_stop(cx, tr_self(cx));
        }
        self->sent++;
        atomic_store_explicit(&MC.progress[self->a.member].sent, self->sent,
                              memory_order_relaxed);
        if (st == TR_PENDING && !self->a.greedy) {
            break;
        }
        if (self->a.greedy && ++n >= MC_BURST) {
            break;
        }
    }
    if (self->sent == MC.f) {
        atomic_fetch_add_explicit(&MC.send_done, 1, memory_order_relaxed);
        return TR_OK;
    }
    st = tr_send(cx, tr_self(cx), T_CONT, NULL, 0);
    CHECK(st == TR_OK || st == TR_PENDING, "self message gave %s",
          tr_status_name(st));
    return TR_OK;
}

static tr_status
mc_data(tr_cx *cx, struct mc_member *self, const mcmsg *m)
{
    uint32_t pred = (self->a.idx + self->a.k - 1) % self->a.k;

    (void)cx;
    CHECK(m->ring == self->a.ring && m->from == pred &&
              m->seq == self->recv_next,
          "ring %u member %u: got seq %u from %u/%u, expected %u from %u",
          self->a.ring, self->a.idx, m->seq, m->ring, m->from, self->recv_next,
          pred);
    self->recv_next = m->seq + 1;
    atomic_store_explicit(&MC.progress[self->a.member].received,
                          self->recv_next, memory_order_relaxed);
    if (self->recv_next == MC.f) {
        atomic_fetch_add_explicit(&MC.recv_done, 1, memory_order_relaxed);
    }
    return TR_OK;
}

TR_ACTOR(mc_member_actor, struct mc_member, TR_ON_INIT(mc_arg, mc_init),
         TR_ON(T_SETUP, tr_ref, mc_setup), TR_ON(T_GO, void, mc_flood),
         TR_ON(T_CONT, void, mc_flood), TR_ON(T_DATA, mcmsg, mc_data));

/* One round on a fresh runtime: rings of 1 to MC_MAXK members. */
static void
mc_round(uint32_t workers, uint64_t *rng, tr_ref *refs, tr_stats *out)
{
    uint32_t nmembers = 0, nrings = 0;
    bool ok;

    RESET(MC.send_done);
    RESET(MC.recv_done);
    for (uint32_t i = 0; i < MC_MEMBERS; i++) {
        RESET(MC.progress[i].sent);
        RESET(MC.progress[i].received);
    }
    rt_new(workers);
    for (uint32_t k = 1; k <= MC_MAXK; k++) {
        for (uint32_t r = 0; r < MC_RINGS_PER_K; r++, nrings++) {
            for (uint32_t i = 0; i < k; i++) {
                mc_arg a = {nrings, i, k, nmembers + i, (r & 1) != 0};
                tr_mailbox_opts mb = {1 + rng_below(rng, 4), TR_BACKPRESSURE};
                tr_spawn_opts o = {
                    .arg = &a, .arg_len = sizeof a, .mailbox = &mb};

                MC.who[nmembers + i] = a;

                TR_ASSERT_OK(
                    tr_spawn(g_rt, &mc_member_actor, &o, &refs[nmembers + i]));
            }
            for (uint32_t i = 0; i < k; i++) {
                tr_ref succ = refs[nmembers + (i + 1) % k];

                TR_ASSERT_OK(tr_send(g_rt, refs[nmembers + i], T_SETUP, &succ,
                                     sizeof succ));
            }
            nmembers += k;
        }
    }
    /* Every SETUP is queued before any flooding starts. Sends from here
     * block while a mailbox is full; rings that flood drain them. */
    for (uint32_t i = 0; i < nmembers; i++) {
        tr_status s = tr_send(g_rt, refs[i], T_GO, NULL, 0);

        CHECK(s == TR_OK, "GO %u gave %s", i, tr_status_name(s));
    }
    WAIT_FOR(ok,
             LOAD(MC.send_done) == nmembers && LOAD(MC.recv_done) == nmembers,
             SETTLE_MS);
    if (!ok) {
        char stuck[256] = "";
        size_t len = 0;

        for (uint32_t i = 0; i < nmembers && len < sizeof stuck - 64; i++) {
            uint32_t sent = LOAD(MC.progress[i].sent);
            uint32_t got = LOAD(MC.progress[i].received);

            if (sent < MC.f || got < MC.f) {
                len += (size_t)snprintf(
                    stuck + len, sizeof stuck - len,
                    " [ring of %u, member %u, %s: sent %u, got %u]",
                    MC.who[i].k, MC.who[i].idx,
                    MC.who[i].greedy ? "greedy" : "polite", sent, got);
            }
        }
        NOTE("%u workers: %u of %u members sent all, %u received all (%u "
             "each); unfinished:%s",
             workers, LOAD(MC.send_done), nmembers, LOAD(MC.recv_done), MC.f,
             stuck);
    }
    *out = stats();
    CHECK(dl_total() == 0 && out->dead_letters == 0, "%llu dead letters",
          (unsigned long long)dl_total());
    rt_destroy();
}

static void
test_mute_cycles(void **state)
{
    uint64_t rng = rng_seed(7, 0), held = 0, over = 0;
    uint64_t end = tr_test_now_ns() + S.seconds * 1000000000u;
    uint32_t round = 0;
    tr_ref *refs;
    tr_stats st;

    (void)state;
    memset(&MC, 0, sizeof MC);
    MC.f = clamp_u32(S.actors / 10, 20, 1000000);
    refs = defer_calloc(MC_MEMBERS, sizeof *refs);
    /* Fresh runtimes on 2, 3 and 4 workers until the time is up. */
    do {
        mc_round(2 + round % 3, &rng, refs, &st);
        held += st.held;
        over += st.overcommits;
        round++;
    } while ((round < 3 || tr_test_now_ns() < end) && !have_errors());
    print_message("mute_cycles: %u runtimes, %u rings (%u members) x %u "
                  "messages, %llu held, %llu overcommits\n",
                  round, MC_RINGS_PER_K * MC_MAXK, MC_MEMBERS, MC.f,
                  (unsigned long long)held, (unsigned long long)over);
    assert_no_errors();
}

/* ---- Main -------------------------------------------------------------- */

static void
read_scale(void)
{
    const char *san = getenv("TR_SANITIZER");
    bool sanitized = san != NULL && *san != '\0' && strcmp(san, "none") != 0;
    bool tsan = san != NULL && strcmp(san, "thread") == 0;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    S.seconds = tr_test_env_u64("TR_STRESS_SECONDS", sanitized ? 1 : 2);
    S.threads = tr_test_env_u64("TR_STRESS_THREADS", tsan ? 2 : 4);
    S.actors = tr_test_env_u64("TR_STRESS_ACTORS", tsan ? 1000 : 10000);
    S.seed =
        tr_test_env_u64("TR_STRESS_SEED", ((uint64_t)ts.tv_sec * 1000000007u) ^
                                              (uint64_t)ts.tv_nsec ^
                                              ((uint64_t)getpid() << 40));
    S.mult = tr_test_timeout_multiplier();
    if (S.threads == 0) {
        S.threads = 1;
    }
}

#define STRESS_TEST(f)                                                         \
    cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, #f)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        STRESS_TEST(test_producers_into_one),
        STRESS_TEST(test_spawn_stop_churn),
        STRESS_TEST(test_pingpong_storm),
        STRESS_TEST(test_park_wake_storm),
        STRESS_TEST(test_policies_accounting),
        STRESS_TEST(test_kill_during_send),
        STRESS_TEST(test_mute_cycles),
    };
    const char *filter = getenv("TR_STRESS_FILTER");

    read_scale();
    printf("seed: %llu\n", (unsigned long long)S.seed);
    printf("scale: %llu s, %llu threads, %llu actors, timeouts x%g\n",
           (unsigned long long)S.seconds, (unsigned long long)S.threads,
           (unsigned long long)S.actors, S.mult);
    fflush(stdout);
    if (filter != NULL && *filter != '\0') {
        cmocka_set_test_filter(filter);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
