/* Timers: a binary min-heap of entry indices ordered by deadline, and an
 * entry table whose slots carry generations for safe cancel. */
#include "runtime/timer.h"

#include <pthread.h>

typedef struct entry {
    uint64_t deadline_ns;
    uint64_t period_ns; /* 0: one-shot */
    void *ud;
    uint32_t gen;     /* bumped when the entry is released */
    uint32_t heap_at; /* index in heap; UINT32_MAX when free */
} entry;

struct tr__timers {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when the earliest deadline changes */
    pthread_t thread;
    bool running, stopping;
    tr__timer_fire_fn fire;
    tr__timer_free_fn release;
    void *ctx;
    entry *entries;
    uint32_t nentries, cap;
    uint32_t *free_list; /* indices of free entries */
    uint32_t nfree;
    uint32_t *heap;
    uint32_t nheap;
    _Atomic uint64_t fired; /* written under lock, read by anyone */
};

static bool
before(tr__timers *t, uint32_t a, uint32_t b)
{
    return t->entries[a].deadline_ns < t->entries[b].deadline_ns;
}

static void
heap_set(tr__timers *t, uint32_t at, uint32_t e)
{
    t->heap[at] = e;
    t->entries[e].heap_at = at;
}

static void
sift_up(tr__timers *t, uint32_t at)
{
    uint32_t e = t->heap[at];

    while (at > 0 && before(t, e, t->heap[(at - 1) / 2])) {
        heap_set(t, at, t->heap[(at - 1) / 2]);
        at = (at - 1) / 2;
    }
    heap_set(t, at, e);
}

static void
sift_down(tr__timers *t, uint32_t at)
{
    uint32_t e = t->heap[at];

    for (;;) {
        uint32_t c = 2 * at + 1;

        if (c >= t->nheap) {
            break;
        }
        if (c + 1 < t->nheap && before(t, t->heap[c + 1], t->heap[c])) {
            c++;
        }
        if (!before(t, t->heap[c], e)) {
            break;
        }
        heap_set(t, at, t->heap[c]);
        at = c;
    }
    heap_set(t, at, e);
}

static void
heap_remove(tr__timers *t, uint32_t at)
{
    uint32_t last = t->heap[--t->nheap];

    t->entries[t->heap[at]].heap_at = UINT32_MAX;
    if (at == t->nheap) {
        return;
    }
    heap_set(t, at, last);
    sift_up(t, at);
    sift_down(t, t->entries[last].heap_at);
}

/* Releases entry e (already out of the heap). Called with the lock held. */
static void
release_entry(tr__timers *t, uint32_t e)
{
    void *ud = t->entries[e].ud;

    t->entries[e].ud = NULL;
    t->entries[e].gen++;
    t->free_list[t->nfree++] = e;
    t->release(t->ctx, ud);
}

static void *
timer_main(void *arg)
{
    tr__timers *t = arg;

    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        uint64_t now = tr__now_ns();
        uint32_t e;

        if (t->nheap == 0) {
            pthread_cond_wait(&t->cond, &t->lock);
            continue;
        }
        e = t->heap[0];
        if (t->entries[e].deadline_ns > now) {
            uint64_t d = t->entries[e].deadline_ns;
            struct timespec ts = {(time_t)(d / 1000000000u),
                                  (long)(d % 1000000000u)};

            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
            continue;
        }
        atomic_store_explicit(
            &t->fired,
            atomic_load_explicit(&t->fired, memory_order_relaxed) + 1,
            memory_order_relaxed);
        if (t->fire(t->ctx, t->entries[e].ud) && t->entries[e].period_ns != 0) {
            entry *en = &t->entries[e];

            /* Next deadline on the original grid; if we fell behind by more
             * than a period, skip the missed ticks instead of bursting. */
            en->deadline_ns += en->period_ns;
            if (en->deadline_ns <= now) {
                en->deadline_ns = now + en->period_ns;
            }
            sift_down(t, 0);
        } else {
            heap_remove(t, 0);
            release_entry(t, e);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

tr_status
tr__timers_new(tr__timers **out, tr__timer_fire_fn fire,
               tr__timer_free_fn release, void *ctx)
{
    tr__timers *t = tr__calloc(1, sizeof *t);
    pthread_condattr_t ca;

    if (t == NULL) {
        return TR_ENOMEM;
    }
    t->fire = fire;
    t->release = release;
    t->ctx = ctx;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        tr__free(t);
        return TR_EFAILED;
    }
    t->running = true;
    *out = t;
    return TR_OK;
}

static bool
grow(tr__timers *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 64;
    entry *ne = tr__realloc(t->entries, ncap * sizeof *ne);
    uint32_t *nf, *nh;

    if (ne == NULL) {
        return false;
    }
    t->entries = ne;
    nf = tr__realloc(t->free_list, ncap * sizeof *nf);
    if (nf == NULL) {
        return false;
    }
    t->free_list = nf;
    nh = tr__realloc(t->heap, ncap * sizeof *nh);
    if (nh == NULL) {
        return false;
    }
    t->heap = nh;
    for (uint32_t i = t->cap; i < ncap; i++) {
        t->entries[i].gen = 1;
        t->entries[i].heap_at = UINT32_MAX;
        t->entries[i].ud = NULL;
        t->free_list[t->nfree++] = ncap - 1 - (i - t->cap);
    }
    t->cap = ncap;
    return true;
}

tr_status
tr__timers_add(tr__timers *t, uint32_t delay_ms, uint32_t period_ms, void *ud,
               uint64_t *id)
{
    uint32_t e;

    pthread_mutex_lock(&t->lock);
    if (t->stopping) {
        pthread_mutex_unlock(&t->lock);
        return TR_ESHUTDOWN;
    }
    if (t->nfree == 0 && !grow(t)) {
        pthread_mutex_unlock(&t->lock);
        return TR_ENOMEM;
    }
    e = t->free_list[--t->nfree];
    t->entries[e].deadline_ns = tr__now_ns() + (uint64_t)delay_ms * 1000000u;
    t->entries[e].period_ns = (uint64_t)period_ms * 1000000u;
    t->entries[e].ud = ud;
    t->heap[t->nheap] = e;
    t->nheap++;
    sift_up(t, t->nheap - 1);
    if (t->entries[e].heap_at == 0) {
        pthread_cond_signal(&t->cond);
    }
    *id = ((uint64_t)t->entries[e].gen << 32) | e;
    pthread_mutex_unlock(&t->lock);
    return TR_OK;
}

tr_status
tr__timers_cancel(tr__timers *t, uint64_t id)
{
    uint32_t e = (uint32_t)id, gen = (uint32_t)(id >> 32);
    tr_status st = TR_ENOENT;

    pthread_mutex_lock(&t->lock);
    if (e < t->cap && t->entries[e].gen == gen &&
        t->entries[e].heap_at != UINT32_MAX) {
        heap_remove(t, t->entries[e].heap_at);
        release_entry(t, e);
        st = TR_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return st;
}

void
tr__timers_stop(tr__timers *t)
{
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    while (t->nheap > 0) {
        uint32_t e = t->heap[0];

        heap_remove(t, 0);
        release_entry(t, e);
    }
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (t->running) {
        pthread_join(t->thread, NULL);
        t->running = false;
    }
}

void
tr__timers_cancel_if(tr__timers *t, bool (*pred)(void *ud))
{
    pthread_mutex_lock(&t->lock);
    /* By entry, not by heap position: removals reorder the heap, and an
     * entry's heap_at stays right through them. */
    for (uint32_t e = 0; e < t->nentries; e++) {
        if (t->entries[e].heap_at != UINT32_MAX && pred(t->entries[e].ud)) {
            heap_remove(t, t->entries[e].heap_at);
            release_entry(t, e);
        }
    }
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

void
tr__timers_free(tr__timers *t)
{
    if (t == NULL) {
        return;
    }
    tr__timers_stop(t);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    tr__free(t->entries);
    tr__free(t->free_list);
    tr__free(t->heap);
    tr__free(t);
}

uint64_t
tr__timers_fired(tr__timers *t)
{
    return atomic_load_explicit(&t->fired, memory_order_relaxed);
}
