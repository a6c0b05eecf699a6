/* The M:N executor. See exec.h for the shape; this file's comments give the
 * memory-ordering argument of each queue and of parking. */
#include "runtime/exec.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

/* A worker's local ring (Go's runq): the owner pushes at tail and pops at
 * head; thieves take a batch from head. head is CAS-only; tail is stored by
 * the owner only. Slots are atomics because a thief may read a slot that the
 * owner is about to reuse; such a thief's CAS on head then fails and its
 * read is discarded. */
typedef struct ring {
    alignas(TR_CACHE_LINE) _Atomic uint32_t head; /* owner + thieves; CAS */
    _Atomic uint32_t tail;                        /* owner stores */
    _Atomic(tr__task *) slots[TR__RING_SIZE];     /* see above */
} ring;

/* What a would-be thief saw of one victim's ring: its tail, and when. */
struct steal_mark {
    uint64_t since; /* 0: nothing seen queued */
    uint32_t turns; /* the victim's turns counter then */
    uint32_t tail;
};

struct tr__worker {
    ring rq;
    tr__exec *ex;
    tr__task *next;  /* owner only: the LIFO slot */
    uint32_t streak; /* owner only: next-slot runs in a row */
    /* owner only: looks past the next slot, for TR__GLOBAL_TICK */
    uint32_t tick;
    /* Turns started; the owner stores, thieves load (relaxed: a hint that
     * orders nothing, see ring_aged). */
    _Atomic uint32_t turns;
    uint32_t index;
    uint64_t rng; /* owner only: victim choice */
    /* owner only: work came soon after its last idle start (see idle()) */
    bool warm;
    void *user; /* owner only: for the layer above */
    pthread_t thread;
    /* 1 while parked (or about to be); the waker stores 0 under idle_lock
     * and futex-wakes. The futex word. */
    alignas(TR_CACHE_LINE) _Atomic uint32_t parked;
    bool in_idle;            /* protected by ex->idle_lock */
    _Atomic uint64_t steals; /* owner stores, anyone loads */
    _Atomic uint64_t parks;  /* owner stores, anyone loads */
};

struct tr__exec {
    tr__run_fn run;
    void *ctx;
    uint32_t nworkers;
    uint32_t started;
    tr__worker *workers;

    /* The global queue: an intrusive FIFO through tr__task.next under a
     * mutex. gcount mirrors its length for lock-free emptiness checks
     * (written under the lock). */
    pthread_mutex_t glock;
    tr__task *ghead, *gtail;
    size_t glen;
    _Atomic size_t gcount;

    /* Parked workers: a stack under idle_lock; nidle mirrors its size for
     * the producers' lock-free check and changes only by seq_cst RMW (see
     * pair_fence()). */
    pthread_mutex_t idle_lock;
    tr__worker **idle;
    uint32_t nidle_list;
    /* Worker i's marks of worker j's ring at [i * nworkers + j]; each row
     * is its worker's own (see ring_aged). */
    struct steal_mark *marks;
    alignas(TR_CACHE_LINE) _Atomic uint32_t nidle;
    /* Workers spinning in idle() for global work: while one spins, a push
     * wakes nobody, since the spinner will take it (see idle()). Changes
     * only by seq_cst RMW, like nidle, and is read after the same fence. */
    _Atomic uint32_t nspinning;
    _Atomic uint32_t stopping; /* set once by tr__exec_stop */
    /* Threads in tr__exec_wait_busy (RMW), and the futex word they sleep
     * on: a generation that unparking workers and tr__exec_kick bump. */
    _Atomic uint32_t sleepers;
    _Atomic uint32_t busy_gen;
};

static _Thread_local tr__worker *tls_worker;

tr__worker *
tr__worker_self(void)
{
    return tls_worker;
}

tr__exec *
tr__worker_exec(const tr__worker *w)
{
    return w->ex;
}

uint32_t
tr__worker_index(const tr__worker *w)
{
    return w->index;
}

void **
tr__worker_user(tr__worker *w)
{
    return &w->user;
}

uint32_t
tr__exec_workers(const tr__exec *ex)
{
    return ex->nworkers;
}

/* ---- Local ring -------------------------------------------------------- */

/* Returns false when the ring is full; else sets *was_empty. */
static bool
ring_push(ring *r, tr__task *item, bool *was_empty)
{
    /* acquire: pairs with the consumers' CAS on head, so the slot we are
     * about to overwrite has been read by whoever took it. */
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    if (t - h >= TR__RING_SIZE) {
        return false;
    }
    *was_empty = t == h;
    atomic_store_explicit(&r->slots[t % TR__RING_SIZE], item,
                          memory_order_relaxed);
    /* release: publishes the slot to consumers that acquire tail. */
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}

static tr__task *
ring_pop(ring *r)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);

    for (;;) {
        uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        tr__task *item;

        if (t == h) {
            return NULL;
        }
        item = atomic_load_explicit(&r->slots[h % TR__RING_SIZE],
                                    memory_order_relaxed);
        /* acq_rel: release tells the owner's next push the slot is free;
         * acquire on failure reloads head for the retry. */
        if (atomic_compare_exchange_weak_explicit(&r->head, &h, h + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            return item;
        }
    }
}

static uint32_t
ring_len(ring *r)
{
    uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    return t - h;
}

/* Takes half of victim's ring (rounded up) into thief's ring and returns one
 * of the items to run now, or NULL. Only the thief's owner calls this, and
 * its own ring is empty (it steals only when out of work). */
static tr__task *
ring_steal(ring *thief, ring *victim)
{
    tr__task *batch[TR__RING_SIZE / 2 + 1];
    uint32_t h, t, n, i, tt;

    for (;;) {
        /* acquire both: the tail's release publishes the slots we read. */
        h = atomic_load_explicit(&victim->head, memory_order_acquire);
        t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        n = t - h;
        n = n - n / 2;
        if (n == 0) {
            return NULL;
        }
        if (n > TR__RING_SIZE / 2 + 1) {
            continue; /* h and t read at different times; retry */
        }
        for (i = 0; i < n; i++) {
            batch[i] = atomic_load_explicit(
                &victim->slots[(h + i) % TR__RING_SIZE], memory_order_relaxed);
        }
        /* acq_rel: commits the batch; release frees the slots for the
         * victim's owner. Failure means someone else took some: retry. */
        if (atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            break;
        }
    }
    tt = atomic_load_explicit(&thief->tail, memory_order_relaxed);
    for (i = 1; i < n; i++) {
        atomic_store_explicit(&thief->slots[(tt + i - 1) % TR__RING_SIZE],
                              batch[i], memory_order_relaxed);
    }
    /* release: publishes the copied slots. */
    atomic_store_explicit(&thief->tail, tt + n - 1, memory_order_release);
    return batch[0];
}

/* ---- Global queue ------------------------------------------------------ */

static void
global_push(tr__exec *ex, tr__task *item)
{
    pthread_mutex_lock(&ex->glock);
    item->next = NULL;
    if (ex->gtail != NULL) {
        ex->gtail->next = item;
    } else {
        ex->ghead = item;
    }
    ex->gtail = item;
    ex->glen++;
    /* relaxed: the lock orders the data; gcount is only a hint to skip the
     * lock, and wake_one()/park() pair on nidle after it. */
    atomic_store_explicit(&ex->gcount, ex->glen, memory_order_relaxed);
    pthread_mutex_unlock(&ex->glock);
}

static tr__task *
global_pop(tr__exec *ex)
{
    tr__task *item = NULL;

    if (atomic_load_explicit(&ex->gcount, memory_order_relaxed) == 0) {
        return NULL;
    }
    pthread_mutex_lock(&ex->glock);
    item = ex->ghead;
    if (item != NULL) {
        ex->ghead = item->next;
        if (ex->ghead == NULL) {
            ex->gtail = NULL;
        }
        ex->glen--;
        atomic_store_explicit(&ex->gcount, ex->glen, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ex->glock);
    return item;
}

/* ---- Parking ----------------------------------------------------------- */

/* A worker is leaving the parked set: wakes threads waiting in
 * tr__exec_wait_busy. seq_cst load: the waker's half of the Dekker pair
 * with the sleeper (it RMWs `sleepers`, then loads `nidle`); the caller's
 * seq_cst RMW of nidle comes before this load. Costs a load on the wake
 * path only (a worker is being woken there anyway). */
static void
busy_signal(tr__exec *ex)
{
    if (atomic_load_explicit(&ex->sleepers, memory_order_seq_cst) != 0) {
        tr__exec_kick(ex);
    }
}

#if defined(__SANITIZE_THREAD__)
#define TR__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TR__TSAN 1
#endif
#endif

/* The two halves of the Dekker pair between a producer of work and a
 * worker about to sleep: the producer publishes work, then loads a count
 * of sleepers-to-be; the worker changes that count, then looks for work;
 * at least one of them sees the other's write. The counts are nidle (a
 * parker raises it before its last look, see park()) and nspinning (a
 * spinner lowers it before its last look, see idle()). Each side is a
 * seq_cst fence between its write and its load (C11's fence rule:
 * whichever fence comes first in the single order of seq_cst operations,
 * the other side's load after its fence sees the write before it). The
 * producer's side runs on every wake-worthy push, so it must not write a
 * shared line: a fence and loads of the counts, in shared state, instead
 * of RMWs of them, which would bounce the line between workers (it was 7%
 * of skynet).
 *
 * ThreadSanitizer does not model fences, so under it the producer's loads
 * are seq_cst RMWs (adding 0), and the worker's changes are RMWs anyway:
 * one comes first in the count's modification order; if the worker's, the
 * producer reads the changed count; if the producer's, the worker's RMW
 * reads from it (release/acquire), so the work happens-before the
 * worker's look. */
static inline void
pair_fence(void)
{
#if !defined(TR__TSAN)
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* The producer's load of a count, after its pair_fence(). */
static inline uint32_t
pair_load(_Atomic uint32_t *count)
{
#if defined(TR__TSAN)
    return atomic_fetch_add_explicit(count, 0, memory_order_seq_cst);
#else
    /* relaxed: the fences order it (see above). */
    return atomic_load_explicit(count, memory_order_relaxed);
#endif
}

/* Wakes one parked worker if there is one. Called after making work
 * visible (see pair_fence for the pairing with park() and idle()). */
static void
wake_one(tr__exec *ex)
{
    tr__worker *w = NULL;

    /* A spinner will find the work, or stop spinning after the push and
     * then see it (the pair above): waking a parked worker too would have
     * it find nothing and park again, a futex round trip per push. */
    pair_fence();
    if (pair_load(&ex->nspinning) != 0 || pair_load(&ex->nidle) == 0) {
        return;
    }
    pthread_mutex_lock(&ex->idle_lock);
    if (ex->nidle_list > 0) {
        w = ex->idle[--ex->nidle_list];
        w->in_idle = false;
        /* seq_cst RMW: keeps nidle's modification order a sequence of RMWs
         * (see above). */
        atomic_fetch_sub_explicit(&ex->nidle, 1, memory_order_seq_cst);
        /* relaxed: the lock and the futex syscall order this store before
         * the parker's reload of it. */
        atomic_store_explicit(&w->parked, 0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ex->idle_lock);
    if (w != NULL) {
        tr__futex_wake(&w->parked, 1);
        busy_signal(ex);
    }
}

/* True when some worker's ring holds an item. */
static bool
rings_queued(tr__exec *ex)
{
    uint32_t i;

    for (i = 0; i < ex->nworkers; i++) {
        if (ring_len(&ex->workers[i].rq) != 0) {
            return true;
        }
    }
    return false;
}

static bool
work_visible(tr__exec *ex)
{
    return atomic_load_explicit(&ex->gcount, memory_order_relaxed) != 0 ||
           rings_queued(ex);
}

/* Sleeps until woken, unless work shows up on the way. */
static void
park(tr__worker *w)
{
    tr__exec *ex = w->ex;
    uint32_t i;

    pthread_mutex_lock(&ex->idle_lock);
    atomic_store_explicit(&w->parked, 1, memory_order_relaxed);
    w->in_idle = true;
    ex->idle[ex->nidle_list++] = w;
    /* seq_cst RMW, then the fence: the parker's half of the pair with
     * wake_one() (see pair_fence); the re-check below comes after
     * them. */
    atomic_fetch_add_explicit(&ex->nidle, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&ex->idle_lock);
    pair_fence();
    if (work_visible(ex) ||
        atomic_load_explicit(&ex->stopping, memory_order_relaxed)) {
        pthread_mutex_lock(&ex->idle_lock);
        if (w->in_idle) {
            for (i = 0; i < ex->nidle_list; i++) {
                if (ex->idle[i] == w) {
                    ex->idle[i] = ex->idle[--ex->nidle_list];
                    break;
                }
            }
            w->in_idle = false;
            atomic_fetch_sub_explicit(&ex->nidle, 1, memory_order_seq_cst);
            atomic_store_explicit(&w->parked, 0, memory_order_relaxed);
        }
        pthread_mutex_unlock(&ex->idle_lock);
        busy_signal(ex);
    }
    atomic_store_explicit(
        &w->parks, atomic_load_explicit(&w->parks, memory_order_relaxed) + 1,
        memory_order_relaxed);
    /* acquire: pairs with the lock release in wake_one after its store. */
    while (atomic_load_explicit(&w->parked, memory_order_acquire) != 0) {
        tr__futex_wait(&w->parked, 1, 0);
    }
}

/* What a spinner looks for: global work, or the executor stopping. */
static bool
global_seen(tr__exec *ex)
{
    return atomic_load_explicit(&ex->gcount, memory_order_relaxed) != 0 ||
           atomic_load_explicit(&ex->stopping, memory_order_relaxed);
}

/* Out of work: spins on the global queue for a moment; then, while some
 * ring holds work that may grow old enough to steal (ring_aged), sleeps
 * TR__WATCH_NS and returns to look again; with every queue empty, parks. */
static void
idle(tr__worker *w)
{
    tr__exec *ex = w->ex;
    bool found = false;
    uint32_t i, left, polls;
    uint64_t start;

    /* The yields only while work keeps coming (the last spin found some,
     * or the last park was short): a spinner that yields and then parks
     * for long is slower to wake afterwards (on a KVM guest, 30 us against
     * 10 for a message to an idle runtime). */
    polls = TR__SPIN + (w->warm ? TR__SPIN_YIELDS : 0);
    /* seq_cst RMW: the count pushers load in wake_one (see pair_fence). */
    atomic_fetch_add_explicit(&ex->nspinning, 1, memory_order_seq_cst);
    for (i = 0; i < polls; i++) {
        found = global_seen(ex);
        if (found) {
            break;
        }
        if (i < TR__SPIN) {
            tr__cpu_relax();
        } else {
            sched_yield();
        }
    }
    /* seq_cst RMW: the spinner's write in the pair with wake_one (see
     * pair_fence); the looks below come after it. */
    left =
        atomic_fetch_sub_explicit(&ex->nspinning, 1, memory_order_seq_cst) - 1;
    pair_fence();
    /* One more look, now that this worker no longer counts as spinning: a
     * push that saw it spinning woke nobody, and is seen here (the pair
     * with wake_one) even when it came after the last poll. Without this
     * look such a push went to park()'s re-check, which takes the work but
     * wakes nobody for the rest: two items pushed there left one queued
     * with a worker parked. */
    found = found || global_seen(ex);
    if (found) {
        w->warm = true;
        /* Pushes made while this worker spun woke nobody. If it was the
         * last spinner and there is more than the item it goes to take, a
         * parked worker is woken for the rest. */
        if (left == 0 &&
            (atomic_load_explicit(&ex->gcount, memory_order_relaxed) > 1 ||
             rings_queued(ex))) {
            wake_one(ex);
        }
        return;
    }
    if (rings_queued(ex)) {
        tr__sleep_ns(TR__WATCH_NS);
        return;
    }
    start = tr__now_ns();
    park(w);
    w->warm = tr__now_ns() - start < TR__WARM_NS;
}

/* ---- Workers ----------------------------------------------------------- */

/* Queues `item` on the back of w's ring, or on the global queue when the
 * ring is full. Work on the global queue is anyone's at once, so it wakes a
 * parked worker. Work on a ring waits for its owner unless it grows old
 * (see ring_aged), so only a push into an empty ring wakes one: that is the
 * push a worker parked with every ring empty may have missed (the Dekker
 * pair in park()); a push behind queued work needs no wake, since a worker
 * that saw the queued work did not park but watches (see idle()). */
static void
queue_local(tr__worker *w, tr__task *item)
{
    bool was_empty;

    if (!ring_push(&w->rq, item, &was_empty)) {
        global_push(w->ex, item);
        wake_one(w->ex);
    } else if (was_empty) {
        wake_one(w->ex);
    }
}

/* True when victim `vi`'s ring holds work that is worth moving: the items
 * that were queued when the thief last marked it are not all gone, and
 * since then TR__STEAL_AGE_NS have passed, or TR__STUCK_NS with the victim
 * inside the same turn all along. Moving an actor to another core costs
 * its cache lines, and every message it then exchanges with actors left
 * behind crosses between the cores: on two cores a message-bound workload
 * ran up to five times slower spread than on one. So work the owner is
 * about to reach stays; work behind a long turn or a deep backlog moves.
 * The loads are hints (ring_steal reloads and CASes); a wrong guess costs
 * one early or late steal, never an item. Owner (the thief) only. */
static bool
ring_aged(tr__worker *w, uint32_t vi)
{
    tr__worker *v = &w->ex->workers[vi];
    struct steal_mark *m =
        &w->ex->marks[(size_t)w->index * w->ex->nworkers + vi];
    /* acquire: as in ring_len. */
    uint32_t h = atomic_load_explicit(&v->rq.head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&v->rq.tail, memory_order_acquire);
    /* relaxed: see tr__worker.turns. */
    uint32_t turns = atomic_load_explicit(&v->turns, memory_order_relaxed);
    uint64_t now;

    if (h == t) {
        m->since = 0;
        return false;
    }
    /* The last item queued at the mark is still there. */
    now = tr__now_ns();
    if (m->since != 0 && (int32_t)(m->tail - h) > 0) {
        uint64_t age = now - m->since;

        return age >= TR__STEAL_AGE_NS ||
               (age >= TR__STUCK_NS && turns == m->turns);
    }
    m->since = now;
    m->turns = turns;
    m->tail = t;
    return false;
}

static tr__task *
find_work(tr__worker *w)
{
    tr__exec *ex = w->ex;
    tr__task *item;
    uint32_t i, start;

    if (w->next != NULL) {
        /* The streak limit is for fairness to queued work: with none
         * queued, nobody is passed over, so the next slot goes on. */
        if (w->streak < TR__LIFO_STREAK ||
            (ring_len(&w->rq) == 0 &&
             atomic_load_explicit(&ex->gcount, memory_order_relaxed) == 0)) {
            item = w->next;
            w->next = NULL;
            w->streak++;
            return item;
        }
        /* The streak is over: the next item waits its turn in the ring. */
        queue_local(w, w->next);
        w->next = NULL;
    }
    w->streak = 0;
    if (++w->tick % TR__GLOBAL_TICK == 0 && (item = global_pop(ex)) != NULL) {
        return item;
    }
    if ((item = ring_pop(&w->rq)) != NULL) {
        return item;
    }
    if ((item = global_pop(ex)) != NULL) {
        return item;
    }
    if (ex->nworkers > 1) {
        start = (uint32_t)(tr__mix64(&w->rng) % ex->nworkers);
        for (i = 0; i < ex->nworkers; i++) {
            uint32_t vi = (start + i) % ex->nworkers;
            tr__worker *v = &ex->workers[vi];

            if (v != w && ring_aged(w, vi) &&
                (item = ring_steal(&w->rq, &v->rq)) != NULL) {
                atomic_store_explicit(
                    &w->steals,
                    atomic_load_explicit(&w->steals, memory_order_relaxed) + 1,
                    memory_order_relaxed);
                return item;
            }
        }
    }
    return NULL;
}

static void *
worker_main(void *arg)
{
    tr__worker *w = arg;
    tr__exec *ex = w->ex;
    tr__task *item;

    tls_worker = w;
    for (;;) {
        item = find_work(w);
        if (item != NULL) {
            /* relaxed: see tr__worker.turns; a plain store, as the
             * owner is the only writer. */
            atomic_store_explicit(
                &w->turns,
                atomic_load_explicit(&w->turns, memory_order_relaxed) + 1,
                memory_order_relaxed);
            ex->run(ex->ctx, w, item);
            continue;
        }
        if (atomic_load_explicit(&ex->stopping, memory_order_acquire)) {
            break;
        }
        idle(w);
    }
    tls_worker = NULL;
    return NULL;
}

tr_status
tr__exec_new(tr__exec **out, uint32_t nworkers, tr__run_fn run, void *ctx)
{
    pthread_mutexattr_t ma;
    tr__exec *ex;
    uint32_t i;

    ex = tr__calloc(1, sizeof *ex);
    if (ex == NULL) {
        goto fail_ex;
    }
    ex->workers =
        tr__calloc_aligned(TR_CACHE_LINE, nworkers * sizeof *ex->workers);
    if (ex->workers == NULL) {
        goto fail_workers;
    }
    ex->idle = tr__calloc(nworkers, sizeof *ex->idle);
    if (ex->idle == NULL) {
        goto fail_idle;
    }
    ex->marks = tr__calloc((size_t)nworkers * nworkers, sizeof *ex->marks);
    if (ex->marks == NULL) {
        goto fail_marks;
    }
    ex->run = run;
    ex->ctx = ctx;
    ex->nworkers = nworkers;
    /* Adaptive: a contended lock spins a little before it sleeps. The
     * lock is held for a few stores, so a waiter almost always gets it
     * while spinning; a plain mutex put the waiter to sleep and had the
     * holder's unlock wake it with a system call (spawn from main against
     * two workers made 300,000 of those per million spawns). */
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&ex->glock, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_mutex_init(&ex->idle_lock, NULL);
    for (i = 0; i < nworkers; i++) {
        ex->workers[i].ex = ex;
        ex->workers[i].index = i;
        ex->workers[i].rng =
            0x853c49e6748fea9bu ^ ((uint64_t)i << 32) ^ (uint64_t)(uintptr_t)ex;
    }
    *out = ex;
    return TR_OK;

fail_marks:
    tr__free(ex->idle);
fail_idle:
    tr__free_aligned(ex->workers);
fail_workers:
    tr__free(ex);
fail_ex:
    return TR_ENOMEM;
}

tr_status
tr__exec_start(tr__exec *ex)
{
    uint32_t i;

    for (i = 0; i < ex->nworkers; i++) {
        if (pthread_create(&ex->workers[i].thread, NULL, worker_main,
                           &ex->workers[i]) != 0) {
            tr__exec_stop(ex);
            return TR_EFAILED;
        }
        ex->started = i + 1;
    }
    return TR_OK;
}

void
tr__exec_schedule(tr__exec *ex, tr__task *item)
{
    tr__worker *w = tls_worker;

    if (w != NULL && w->ex == ex) {
        tr__task *prev = w->next;

        w->next = item;
        if (prev == NULL) {
            return;
        }
        /* The displaced item becomes queued work. */
        queue_local(w, prev);
        return;
    }
    global_push(ex, item);
    wake_one(ex);
}

void
tr__exec_pace(tr__exec *ex)
{
    size_t most = (size_t)TR__BACKLOG * ex->nworkers;
    uint64_t start = 0, now;

    /* relaxed: a hint, as in global_pop. */
    while (atomic_load_explicit(&ex->gcount, memory_order_relaxed) >= most) {
        now = tr__now_ns();
        if (start == 0) {
            start = now;
        } else if (now - start >= TR__PACE_MAX_NS) {
            return;
        }
        tr__sleep_ns(TR__WATCH_NS);
    }
}

void
tr__exec_yield(tr__worker *w, tr__task *item)
{
    queue_local(w, item);
}

bool
tr__exec_idle(tr__exec *ex)
{
    if (atomic_load_explicit(&ex->nidle, memory_order_seq_cst) !=
        ex->nworkers) {
        return false;
    }
    return !work_visible(ex);
}

void
tr__exec_wait_busy(tr__exec *ex, _Atomic uint32_t *cancel)
{
    /* acquire: pairs with tr__exec_kick's release RMW, so a kick that
     * came before this load shows its `cancel` store below. */
    uint32_t gen = atomic_load_explicit(&ex->busy_gen, memory_order_acquire);

    /* seq_cst RMW: the sleeper's half of the Dekker pair in busy_signal:
     * either the idle check below sees the worker leave, or its waker
     * sees us here and bumps the generation we sleep on. */
    atomic_fetch_add_explicit(&ex->sleepers, 1, memory_order_seq_cst);
    if (tr__exec_idle(ex) &&
        !atomic_load_explicit(cancel, memory_order_acquire)) {
        tr__futex_wait(&ex->busy_gen, gen, 0);
    }
    /* relaxed: a count; at worst one more wake-up syscall. */
    atomic_fetch_sub_explicit(&ex->sleepers, 1, memory_order_relaxed);
}

void
tr__exec_kick(tr__exec *ex)
{
    /* release: publishes the kicker's earlier stores (a cancel flag) to a
     * sleeper that acquires the new generation. */
    atomic_fetch_add_explicit(&ex->busy_gen, 1, memory_order_release);
    tr__futex_wake(&ex->busy_gen, INT32_MAX);
}

void
tr__exec_stop(tr__exec *ex)
{
    uint32_t i;

    /* release: workers that see it (acquire) exit once out of work. */
    atomic_store_explicit(&ex->stopping, 1, memory_order_release);
    for (i = 0; i < ex->nworkers; i++) {
        wake_one(ex);
    }
    for (i = 0; i < ex->started; i++) {
        /* A worker may park again between our wakes; keep waking until it
         * has exited. */
        while (pthread_tryjoin_np(ex->workers[i].thread, NULL) != 0) {
            wake_one(ex);
            sched_yield();
        }
    }
    ex->started = 0;
}

void
tr__exec_free(tr__exec *ex)
{
    if (ex == NULL) {
        return;
    }
    pthread_mutex_destroy(&ex->glock);
    pthread_mutex_destroy(&ex->idle_lock);
    tr__free(ex->marks);
    tr__free(ex->idle);
    tr__free_aligned(ex->workers);
    tr__free(ex);
}

static uint64_t
sum(tr__exec *ex, size_t offset)
{
    uint64_t n = 0;
    uint32_t i;

    for (i = 0; i < ex->nworkers; i++) {
        n += atomic_load_explicit(
            (_Atomic uint64_t *)((char *)&ex->workers[i] + offset),
            memory_order_relaxed);
    }
    return n;
}

uint64_t
tr__exec_steals(tr__exec *ex)
{
    return sum(ex, offsetof(tr__worker, steals));
}

uint64_t
tr__exec_parks(tr__exec *ex)
{
    return sum(ex, offsetof(tr__worker, parks));
}
