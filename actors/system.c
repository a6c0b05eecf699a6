/* The runtime object: creation, the actor table, counters, dead letters,
 * shutdown and destruction. */
#include "actors/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define DEFAULT_BUDGET      64u
#define DEFAULT_MAX_PAYLOAD (1u << 20)
#define DEFAULT_MAX_ACTORS  (1u << 22)
#define LIMIT_MAX_ACTORS    (1u << 28)
#define DEFAULT_SEND_MS     30000u
#define DEFAULT_OUTBOX      1024u
#define DEFAULT_DRAIN_MS    5000u
#define MAX_WORKERS         256u
#define DEFAULT_BLOCKING    4u
#define MAX_BLOCKING        1024u
#define DEFAULT_BLOCKING_Q  1024u
#define DEFAULT_WATCHDOG_MS 100u

/* ---- Refs and the table ------------------------------------------------ */

uint64_t
tr__ref_pack(tr_ref r)
{
    return ((uint64_t)(r.slot_ + 1) << 32) | r.gen_;
}

tr_ref
tr__ref_unpack(tr_runtime *rt, uint64_t packed)
{
    if (packed == 0) {
        return TR_NOREF;
    }
    return (tr_ref){rt->node, (uint32_t)(packed >> 32) - 1, (uint32_t)packed};
}

tr_ref
tr__ref_of(tr_runtime *rt, const tr__actor *a)
{
    /* relaxed: the owner (or spawner) reads its own generation. */
    return (tr_ref){rt->node, a->slot,
                    atomic_load_explicit(&a->gen, memory_order_relaxed)};
}

tr__actor *
tr__lookup(tr_runtime *rt, tr_ref r)
{
    tr__actor *chunk;
    tr__actor *a;

    if (r.node_ != rt->node || r.gen_ == 0 ||
        (r.slot_ >> TR__CHUNK_SHIFT) >= rt->nchunks_max) {
        return NULL;
    }
    /* acquire: pairs with the release that published the chunk. */
    chunk = atomic_load_explicit(&rt->chunks[r.slot_ >> TR__CHUNK_SHIFT],
                                 memory_order_acquire);
    if (chunk == NULL) {
        return NULL;
    }
    a = &chunk[r.slot_ & (TR__CHUNK - 1)];
    /* acquire: pairs with tr__slot_release's store. The generation is only
     * a fast filter for stale refs; admission's epoch check is what keeps a
     * stale sender out of a reused slot (see mailbox.h). */
    if (atomic_load_explicit(&a->gen, memory_order_acquire) != r.gen_) {
        return NULL;
    }
    return a;
}

static bool
free_ring_push(tr_runtime *rt, uint32_t slot)
{
    static const uint32_t first_cap = 1024;
    uint32_t cap = rt->free_ring ? rt->free_ring[0] : 0;

    /* free_ring[0] holds the capacity; entries live in [1, cap]. */
    if (rt->free_len == cap) {
        uint32_t ncap = cap ? cap * 2 : first_cap, i;
        uint32_t *nr = tr__alloc(((size_t)ncap + 1) * sizeof *nr);

        if (nr == NULL) {
            return false;
        }
        for (i = 0; i < rt->free_len; i++) {
            nr[1 + i] = rt->free_ring[1 + (rt->free_head + i) % cap];
        }
        nr[0] = ncap;
        tr__free(rt->free_ring);
        rt->free_ring = nr;
        rt->free_head = 0;
        cap = ncap;
    }
    rt->free_ring[1 + (rt->free_head + rt->free_len) % cap] = slot;
    rt->free_len++;
    return true;
}

static tr__actor *
slot_at(tr_runtime *rt, uint32_t slot)
{
    tr__actor *chunk = atomic_load_explicit(
        &rt->chunks[slot >> TR__CHUNK_SHIFT], memory_order_acquire);

    return chunk ? &chunk[slot & (TR__CHUNK - 1)] : NULL;
}

/* Takes up to `want` free slots into dst: from the free ring first, then
 * new ones (creating chunks). Called with table_lock held. Returns how many;
 * 0 with *st set (TR_ELIMIT: the table is full, TR_ENOMEM). */
static uint32_t
take_slots(tr_runtime *rt, uint32_t *dst, uint32_t want, tr_status *st)
{
    uint32_t n = 0;

    while (n < want && rt->free_len > 0) {
        dst[n++] = rt->free_ring[1 + rt->free_head];
        rt->free_head = (rt->free_head + 1) % rt->free_ring[0];
        rt->free_len--;
    }
    while (n < want && rt->high < rt->nchunks_max * TR__CHUNK) {
        uint32_t c = rt->high >> TR__CHUNK_SHIFT;
        tr__actor *chunk =
            atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);

        if (chunk == NULL) {
            /* Only the sender lines and owner records are zeroed: the
             * state areas after them are set by each spawn that uses one,
             * so their pages stay untouched (not resident) until then. */
            chunk = tr__alloc_aligned(TR_CACHE_LINE, TR__CHUNK_BYTES);
            if (chunk == NULL) {
                break;
            }
            memset(chunk, 0, TR__CHUNK_AREAS);
            for (uint32_t i = 0; i < TR__CHUNK; i++) {
                chunk[i].slot = (c << TR__CHUNK_SHIFT) | i;
                /* Generations start at 1: 0 is TR_NOREF's. */
                atomic_store_explicit(&chunk[i].gen, 1, memory_order_relaxed);
                tr__mbox_open(&chunk[i].mb, &tr__own_of(&chunk[i])->sys, 1, 0,
                              NULL);
                tr__mbox_close(&chunk[i].mb);
            }
            /* release: publishes the initialized headers to lookups. */
            atomic_store_explicit(&rt->chunks[c], chunk, memory_order_release);
        }
        dst[n++] = rt->high++;
    }
    /* seq_cst: shutdown's walk loads it after storing STOPPING; with
     * spawn's life/state pair (see spawn()), a slot in use is either seen
     * by the walk or its spawner sees STOPPING. */
    atomic_store_explicit(&rt->high_seen, rt->high, memory_order_seq_cst);
    if (n == 0) {
        *st = rt->high < rt->nchunks_max * TR__CHUNK ? TR_ENOMEM : TR_ELIMIT;
    }
    return n;
}

/* Reservations a worker takes from rt->alive at a time, and the most it
 * keeps from its actors' ends. */
#define CREDIT_BATCH 32u
#define CREDIT_MAX   (2 * CREDIT_BATCH)

/* Takes one reservation from *credit if it holds any. relaxed, here and on
 * every count below: counts with an exact limit; they order nothing. */
static bool
credit_take(_Atomic uint32_t *credit)
{
    uint32_t c = atomic_load_explicit(credit, memory_order_relaxed);

    while (c > 0) {
        if (atomic_compare_exchange_weak_explicit(credit, &c, c - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

/* The blocks that hold reservations: the workers' (i < workers) and the
 * outside threads' (i == workers). */
static tr__local *
holder(tr_runtime *rt, uint32_t i)
{
    return i < rt->cfg.workers ? &rt->wc[i] : &rt->outside;
}

/* Counts a new actor in against the limit (cfg.max_actors): from l's
 * reservations, else a batch of them while the limit is far (so that all
 * holders' reservations together cannot reach it), else one exactly. A
 * spawn that finds the limit reached takes a reservation from any block
 * that holds one: the limit binds on actors, not reservations. l: the
 * caller's cache block (its worker's, or the outside one under
 * outside_lock). */
static tr_status
count_in(tr_runtime *rt, tr__local *l)
{
    uint64_t a;

    if (credit_take(&l->credit)) {
        return TR_OK;
    }
    a = atomic_load_explicit(&rt->alive, memory_order_relaxed);
    while (a + CREDIT_BATCH + (uint64_t)CREDIT_MAX * (rt->cfg.workers + 1) <=
           rt->cfg.max_actors) {
        if (atomic_compare_exchange_weak_explicit(
                &rt->alive, &a, a + CREDIT_BATCH, memory_order_relaxed,
                memory_order_relaxed)) {
            atomic_fetch_add_explicit(&l->credit, CREDIT_BATCH - 1,
                                      memory_order_relaxed);
            return TR_OK;
        }
    }
    if (atomic_fetch_add_explicit(&rt->alive, 1, memory_order_relaxed) <
        rt->cfg.max_actors) {
        return TR_OK;
    }
    atomic_fetch_sub_explicit(&rt->alive, 1, memory_order_relaxed);
    for (uint32_t i = 0; i <= rt->cfg.workers; i++) {
        if (credit_take(&holder(rt, i)->credit)) {
            return TR_OK;
        }
    }
    return TR_ELIMIT;
}

/* Counts an actor out: kept as one of the worker's reservations while it
 * holds fewer than CREDIT_MAX; at CREDIT_MAX, that one and a batch of the
 * held ones go off rt->alive together, so a worker that ends actors spawned
 * elsewhere (a spawn loop from main) writes that shared line once per
 * batch, not once per end. */
static void
count_out(tr_runtime *rt, tr__local *l)
{
    if (l != NULL) {
        uint32_t c = atomic_load_explicit(&l->credit, memory_order_relaxed);

        if (c < CREDIT_MAX) {
            atomic_fetch_add_explicit(&l->credit, 1, memory_order_relaxed);
            return;
        }
        /* A CAS, not a subtraction: another spawn may take some meanwhile
         * (credit_take, tr__alive), and credit must not go below zero. */
        if (atomic_compare_exchange_strong_explicit(
                &l->credit, &c, c - CREDIT_BATCH, memory_order_relaxed,
                memory_order_relaxed)) {
            atomic_fetch_sub_explicit(&rt->alive, CREDIT_BATCH + 1,
                                      memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_sub_explicit(&rt->alive, 1, memory_order_relaxed);
}

uint64_t
tr__alive(tr_runtime *rt)
{
    /* Every worker's reservations go back to rt->alive first (each taken
     * whole by one exchange, so none is lost or counted twice); then
     * rt->alive alone counts the actors, plus whatever reservations a
     * worker takes or keeps meanwhile. Reading the two apart instead could
     * miss a batch being taken between the loads and count low, so that a
     * shutdown waiting for 0 would go on with actors alive. This can only
     * count high, for a moment: a 0 is real. Workers take new batches on
     * their next spawns. */
    for (uint32_t i = 0; i <= rt->cfg.workers; i++) {
        uint32_t c = atomic_exchange_explicit(&holder(rt, i)->credit, 0,
                                              memory_order_relaxed);

        if (c != 0) {
            atomic_fetch_sub_explicit(&rt->alive, c, memory_order_relaxed);
        }
    }
    return atomic_load_explicit(&rt->alive, memory_order_relaxed);
}

/* Takes the oldest slot of c's cache, first refilling the cache with a
 * batch from the table if it is empty; UINT32_MAX (with *st set) when the
 * table has none. The caller owns c's cache: c's worker, or an outside
 * thread holding outside_lock. */
static uint32_t
cache_slot(tr_runtime *rt, tr__local *c, tr_status *st)
{
    uint32_t slot;

    if (c->slot_len == 0) {
        uint32_t batch[TR__SLOT_BATCH], n;

        pthread_mutex_lock(&rt->table_lock);
        n = take_slots(rt, batch, TR__SLOT_BATCH, st);
        pthread_mutex_unlock(&rt->table_lock);
        for (uint32_t i = 0; i < n; i++) {
            c->slots[(c->slot_head + c->slot_len++) % TR__SLOT_CACHE] =
                batch[i];
        }
        if (n == 0) {
            return UINT32_MAX;
        }
    }
    slot = c->slots[c->slot_head];
    c->slot_head = (c->slot_head + 1) % TR__SLOT_CACHE;
    c->slot_len--;
    if (c->slot_len > 0) {
        /* The next spawn's header (with its small state area) was last
         * written by the worker that ended its actor: start fetching it
         * now. */
        tr__actor *next = slot_at(rt, c->slots[c->slot_head]);

        __builtin_prefetch(next, 1);
        __builtin_prefetch((char *)next + TR_CACHE_LINE, 1);
    }
    return slot;
}

tr_status
tr__slot_alloc(tr_runtime *rt, tr__local *c, tr__actor **out)
{
    tr_status st = count_in(rt, c);
    uint32_t slot;

    if (st != TR_OK) {
        return st;
    }
    slot = cache_slot(rt, c, &st);
    if (slot == UINT32_MAX) {
        count_out(rt, c);
        return st;
    }
    *out = slot_at(rt, slot);
    return TR_OK;
}

void
tr__slot_release(tr_runtime *rt, tr__actor *a)
{
    uint32_t gen = atomic_load_explicit(&a->gen, memory_order_relaxed) + 1;
    tr__local *l = tr__local_here(rt);

    if (gen == 0) {
        gen = 1; /* 0 is reserved for TR_NOREF */
    }
    /* Counted out first: whoever sees the actor gone (a send that returns
     * TR_EDEAD) may spawn in its place under the actor limit. */
    count_out(rt, l);
    /* release: lookups that acquire the new generation see a dead header
     * (and the count above). */
    atomic_store_explicit(&a->gen, gen, memory_order_release);
    atomic_store_explicit(&tr__own_of(a)->life, TR__LIFE_FREE,
                          memory_order_release);
    if (l != NULL && l->slot_len == TR__SLOT_CACHE) {
        /* Full: the oldest batch goes to the shared ring. */
        pthread_mutex_lock(&rt->table_lock);
        for (uint32_t i = 0; i < TR__SLOT_BATCH; i++) {
            if (!free_ring_push(rt, l->slots[l->slot_head])) {
                break; /* no memory: the slot stays cached */
            }
            l->slot_head = (l->slot_head + 1) % TR__SLOT_CACHE;
            l->slot_len--;
        }
        pthread_mutex_unlock(&rt->table_lock);
    }
    if (l != NULL && l->slot_len < TR__SLOT_CACHE) {
        l->slots[(l->slot_head + l->slot_len++) % TR__SLOT_CACHE] = a->slot;
    } else {
        pthread_mutex_lock(&rt->table_lock);
        if (!free_ring_push(rt, a->slot)) {
            /* No memory to remember the slot: it is leaked until destroy,
             * which frees chunks whole. Correctness is unaffected. */
        }
        pthread_mutex_unlock(&rt->table_lock);
    }
    /* Only a shutdown waits for actors to end (wait_none_alive polls too,
     * so a wake-up missed between the load and its wait costs a tick). */
    if (atomic_load_explicit(&rt->state, memory_order_relaxed) >=
        TR__RT_STOPPING) {
        pthread_mutex_lock(&rt->life_lock);
        pthread_cond_broadcast(&rt->life_cond);
        pthread_mutex_unlock(&rt->life_lock);
    }
}

/* ---- Counters ---------------------------------------------------------- */

_Thread_local tr__local *tr__tls_local;

void
tr__count_outside(tr_runtime *rt, size_t field_offset, uint64_t n)
{
    /* relaxed: a counter orders nothing. */
    atomic_fetch_add_explicit(
        (_Atomic uint64_t *)((char *)&rt->outside + field_offset), n,
        memory_order_relaxed);
}

static uint64_t
counter_sum(tr_runtime *rt, size_t field_offset)
{
    uint64_t n;
    uint32_t i, nw = tr__exec_workers(rt->exec);

    n = atomic_load_explicit(
        (_Atomic uint64_t *)((char *)&rt->outside + field_offset),
        memory_order_relaxed);
    for (i = 0; i < nw; i++) {
        n += atomic_load_explicit(
            (_Atomic uint64_t *)((char *)&rt->wc[i] + field_offset),
            memory_order_relaxed);
    }
    return n;
}

tr_status
tr_runtime_stats(tr_runtime *rt, tr_stats *out)
{
    if (rt == NULL || out == NULL) {
        return TR_EINVAL;
    }
    memset(out, 0, sizeof *out);
#define SUM(f) counter_sum(rt, offsetof(tr__local, f))
    out->spawned = SUM(spawned);
    out->sent = SUM(sent);
    out->handled = SUM(handled);
    out->dead_letters = SUM(dead_letters);
    out->dropped = SUM(dropped);
    out->rejected = SUM(rejected);
    out->held = SUM(held);
    out->overcommits = SUM(overcommits);
    out->expired = SUM(expired);
    out->late_replies = SUM(late_replies);
    out->unanswered = SUM(unanswered);
    out->shed = SUM(shed);
    out->jobs_run = SUM(jobs_run);
    out->jobs_canceled = SUM(jobs_canceled);
    out->slow_handlers = SUM(slow_handlers);
#undef SUM
    out->alive = tr__alive(rt);
    out->timers_fired = tr__timers_fired(rt->timers);
    out->watches = tr__io_watches(rt);
    out->steals = tr__exec_steals(rt->exec);
    out->parks = tr__exec_parks(rt->exec);
    out->workers = tr__exec_workers(rt->exec);
    return TR_OK;
}

tr_status
tr__root_add(tr_runtime *rt, tr_ref ref, uint32_t stop_type)
{
    tr_status st = TR_OK;

    pthread_mutex_lock(&rt->life_lock);
    if (tr__grow((void **)&rt->roots, rt->nroots, &rt->caproots,
                 sizeof *rt->roots)) {
        rt->roots[rt->nroots++] = (struct tr__root){ref, stop_type};
    } else {
        st = TR_ENOMEM;
    }
    pthread_mutex_unlock(&rt->life_lock);
    return st;
}

void
tr__root_del(tr_runtime *rt, tr_ref ref)
{
    pthread_mutex_lock(&rt->life_lock);
    for (uint32_t i = 0; i < rt->nroots; i++) {
        if (tr_ref_eq(rt->roots[i].ref, ref)) {
            rt->roots[i] = rt->roots[--rt->nroots];
            break;
        }
    }
    pthread_mutex_unlock(&rt->life_lock);
}

uint32_t
tr__depth(tr_runtime *rt, tr_ref r)
{
    tr__actor *a = tr__lookup(rt, r);
    uint64_t w;

    if (a == NULL) {
        return UINT32_MAX;
    }
    w = tr__mbox_word(&a->mb);
    return (w >> TR__MB_EPOCH_SHIFT) ==
                       tr__mb_epoch_bits(r.gen_) >> TR__MB_EPOCH_SHIFT &&
                   !(w & TR__MB_DEAD)
               ? (uint32_t)(w & TR__MB_USER_MASK)
               : UINT32_MAX;
}

/* ---- Log --------------------------------------------------------------- */

void
tr__log(tr_runtime *rt, tr_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info"};
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (rt->cfg.log_fn != NULL) {
        rt->cfg.log_fn(rt->cfg.log_arg, level, text);
    } else {
        fprintf(stderr, "troupe: %s: %s\n",
                names[(unsigned)level < 3 ? level : TR_LOG_INFO], text);
    }
}

/* ---- Dead letters ------------------------------------------------------ */

/* Counts a dead letter and shows it to the callback. */
static void
dl_notify(tr_runtime *rt, const tr__msg *m, tr_status reason)
{
    /* acquire: pairs with the release in subscribe, so the record's fields
     * are visible. */
    tr__dl_sub *sub = atomic_load_explicit(&rt->dl_sub, memory_order_acquire);
    tr_dead_letter dl = {m->from, m->to, m->type, reason, m->data, m->len};

    TR__COUNT(rt, dead_letters, 1);
    if (reason == TR_DROPPED) {
        TR__COUNT(rt, dropped, 1);
    }
    if (sub != NULL && sub->fn != NULL) {
        sub->fn(sub->arg, &dl);
    }
}

void
tr__dead_letter(tr_runtime *rt, tr__msg *m, tr_status reason)
{
    uint64_t fwd = atomic_load_explicit(&rt->dl_forward, memory_order_relaxed);
    tr_dead_letter dl = {m->from, m->to, m->type, reason, NULL, m->len};

    dl_notify(rt, m, reason);
    if (fwd != 0 && m->type != TR_MSG_DEAD_LETTER) {
        tr__msg *f = tr__msg_new(rt, sizeof dl);

        if (f != NULL) {
            memcpy(f->data, &dl, sizeof dl);
            f->type = TR_MSG_DEAD_LETTER;
            f->to = tr__ref_unpack(rt, fwd);
            (void)tr__deliver(rt, NULL, f, TR__TRY);
        }
    }
    /* A request the receiver will never answer. */
    tr__reply_error(rt, m, reason < 0 ? reason : TR_EFULL);
    tr__msg_free(rt, m);
}

void
tr__reply_error(tr_runtime *rt, const tr__msg *m, tr_status st)
{
    if (tr__is_request(m)) {
        (void)tr__answer(rt, NULL, m, st, NULL, 0);
    }
}

tr_status
tr_dead_letters_subscribe(tr_runtime *rt, tr_dead_letter_fn fn, void *arg)
{
    tr__dl_sub *sub;

    if (rt == NULL) {
        return TR_EINVAL;
    }
    sub = tr__alloc(sizeof *sub);
    if (sub == NULL) {
        return TR_ENOMEM;
    }
    sub->fn = fn;
    sub->arg = arg;
    pthread_mutex_lock(&rt->dl_lock);
    sub->older = atomic_load_explicit(&rt->dl_sub, memory_order_relaxed);
    /* release: publishes sub's fields to tr__dead_letter's acquire. */
    atomic_store_explicit(&rt->dl_sub, sub, memory_order_release);
    pthread_mutex_unlock(&rt->dl_lock);
    return TR_OK;
}

tr_status
tr_dead_letters_forward(tr_runtime *rt, tr_ref to)
{
    if (rt == NULL || (!tr_ref_is_none(to) && to.node_ != rt->node)) {
        return TR_EINVAL; /* only an actor of this runtime can subscribe */
    }
    /* relaxed: the ref is a plain value. */
    atomic_store_explicit(&rt->dl_forward,
                          tr_ref_is_none(to) ? 0 : tr__ref_pack(to),
                          memory_order_relaxed);
    return TR_OK;
}

/* ---- Lifecycle --------------------------------------------------------- */

static tr_status
config_resolve(tr_config *c, const tr_config *in)
{
    long ncpu;

    if (in != NULL) {
        *c = *in;
    } else {
        memset(c, 0, sizeof *c);
    }
    if (c->workers == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = ncpu > 0 ? (uint32_t)ncpu : 1;
        if (c->workers > MAX_WORKERS) {
            c->workers = MAX_WORKERS;
        }
    }
    if (c->workers > MAX_WORKERS) {
        return TR_EINVAL;
    }
    c->budget = c->budget ? c->budget : DEFAULT_BUDGET;
    c->mailbox_capacity =
        c->mailbox_capacity ? c->mailbox_capacity : TR_MAILBOX_DEFAULT_CAPACITY;
    if (c->mailbox_capacity > TR_MAILBOX_MAX_CAPACITY ||
        (unsigned)c->overflow > TR_FAIL) {
        return TR_EINVAL;
    }
    c->max_payload = c->max_payload ? c->max_payload : DEFAULT_MAX_PAYLOAD;
    c->max_actors = c->max_actors ? c->max_actors : DEFAULT_MAX_ACTORS;
    if (c->max_actors > LIMIT_MAX_ACTORS) {
        return TR_EINVAL;
    }
    c->send_timeout_ms =
        c->send_timeout_ms ? c->send_timeout_ms : DEFAULT_SEND_MS;
    c->outbox_limit = c->outbox_limit ? c->outbox_limit : DEFAULT_OUTBOX;
    c->drain_ms = c->drain_ms ? c->drain_ms : DEFAULT_DRAIN_MS;
    c->blocking_threads =
        c->blocking_threads ? c->blocking_threads : DEFAULT_BLOCKING;
    c->blocking_queue =
        c->blocking_queue ? c->blocking_queue : DEFAULT_BLOCKING_Q;
    if (c->blocking_threads > MAX_BLOCKING ||
        c->blocking_queue > TR_MAILBOX_MAX_CAPACITY) {
        return TR_EINVAL;
    }
    c->watchdog_ms = c->watchdog_ms ? c->watchdog_ms : DEFAULT_WATCHDOG_MS;
    return TR_OK;
}

static bool timer_fire(void *ctx, void *ud);
static void timer_release(void *ctx, void *ud);

tr_status
tr_runtime_new(tr_runtime **out, const tr_config *cfg)
{
    tr_runtime *rt;
    tr_status st;
    tr_config c;

    if (out == NULL) {
        return TR_EINVAL;
    }
    st = config_resolve(&c, cfg);
    if (st != TR_OK) {
        return st;
    }
    tr__runtimes_add(1);
    rt = tr__calloc_aligned(TR_CACHE_LINE, sizeof *rt);
    if (rt == NULL) {
        st = TR_ENOMEM;
        goto fail_rt;
    }
    rt->cfg = c;
    /* A random node id: refs of another runtime (in this process or a
     * destroyed one) never match it. */
    while (rt->node == 0) {
        if (getrandom(&rt->node, sizeof rt->node, 0) != sizeof rt->node) {
            rt->node = tr__now_ns() ^ (uint64_t)(uintptr_t)rt;
        }
    }
    rt->nchunks_max = (c.max_actors + TR__CHUNK - 1) / TR__CHUNK;
    rt->chunks = tr__calloc(rt->nchunks_max, sizeof *rt->chunks);
    if (rt->chunks == NULL) {
        st = TR_ENOMEM;
        goto fail_chunks;
    }
    rt->wc = tr__calloc_aligned(TR_CACHE_LINE, c.workers * sizeof *rt->wc);
    if (rt->wc == NULL) {
        st = TR_ENOMEM;
        goto fail_wc;
    }
    for (uint32_t i = 0; i < c.workers; i++) {
        rt->wc[i].index = (uint16_t)(i + 1);
        rt->wc[i].rt = rt;
    }
    rt->outside.index = (uint16_t)(c.workers + 1);
    rt->outside.rt = rt;
    pthread_mutex_init(&rt->table_lock, NULL);
    pthread_mutex_init(&rt->outside_lock, NULL);
    pthread_mutex_init(&rt->dl_lock, NULL);
    pthread_mutex_init(&rt->life_lock, NULL);
    pthread_cond_init(&rt->life_cond, NULL);
    if (c.dead_letter_fn != NULL) {
        st = tr_dead_letters_subscribe(rt, c.dead_letter_fn, c.dead_letter_arg);
        if (st != TR_OK) {
            goto fail_sub;
        }
    }
    st = tr__exec_new(&rt->exec, c.workers, tr__run, rt);
    if (st != TR_OK) {
        goto fail_exec;
    }
    st = tr__timers_new(&rt->timers, timer_fire, timer_release, rt);
    if (st != TR_OK) {
        goto fail_timers;
    }
    st = tr__exec_start(rt->exec);
    if (st != TR_OK) {
        goto fail_start;
    }
    st = tr__watchdog_start(rt);
    if (st != TR_OK) {
        goto fail_watchdog;
    }
    *out = rt;
    return TR_OK;

fail_watchdog:
    tr__exec_stop(rt->exec);
fail_start:
    tr__timers_free(rt->timers);
fail_timers:
    tr__exec_free(rt->exec);
fail_exec:
fail_sub:
    tr__free(atomic_load_explicit(&rt->dl_sub, memory_order_relaxed));
    pthread_cond_destroy(&rt->life_cond);
    pthread_mutex_destroy(&rt->life_lock);
    pthread_mutex_destroy(&rt->dl_lock);
    pthread_mutex_destroy(&rt->table_lock);
    pthread_mutex_destroy(&rt->outside_lock);
    tr__free_aligned(rt->wc);
fail_wc:
    tr__free(rt->chunks);
fail_chunks:
    tr__free_aligned(rt);
fail_rt:
    tr__runtimes_add(-1);
    return st;
}

/* Waits until no actor is alive, and no thread actor's end still runs. */
static void
wait_none_alive(tr_runtime *rt)
{
    pthread_mutex_lock(&rt->life_lock);
    /* acquire: pairs with the release that ends a thread actor's end. */
    while (tr__alive(rt) != 0 ||
           atomic_load_explicit(&rt->thread_ends, memory_order_acquire) != 0) {
        struct timespec ts;

        /* Wake every millisecond as well: life_cond is a hint (see
         * tr__slot_release). */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&rt->life_cond, &rt->life_lock, &ts);
    }
    pthread_mutex_unlock(&rt->life_lock);
}

/* A timer set by tr_send_after/tr_send_every (not an actor's own). */
static bool
user_timer(void *ud)
{
    return ((tr__msg *)ud)->type != TR__SYS_TIMEOUT;
}

tr_status
tr_runtime_shutdown(tr_runtime *rt, uint32_t drain_ms)
{
    uint64_t deadline, dropped;
    uint32_t i, high;
    tr__worker *w = tr__worker_self();
    tr_reason why = {TR_EXIT_SHUTDOWN, 0, "runtime shutdown"};

    if (rt == NULL) {
        return TR_EINVAL;
    }
    if (w != NULL && tr__worker_exec(w) == rt->exec) {
        return TR_ESTATE;
    }
    pthread_mutex_lock(&rt->life_lock);
    if (atomic_load_explicit(&rt->state, memory_order_relaxed) !=
        TR__RT_RUNNING) {
        while (atomic_load_explicit(&rt->state, memory_order_relaxed) !=
               TR__RT_STOPPED) {
            pthread_cond_wait(&rt->life_cond, &rt->life_lock);
        }
        pthread_mutex_unlock(&rt->life_lock);
        return TR_OK;
    }
    /* seq_cst: outside senders load the state after counting themselves
     * in; see tr_send_rt. */
    atomic_store_explicit(&rt->state, TR__RT_DRAINING, memory_order_seq_cst);
    pthread_mutex_unlock(&rt->life_lock);

    /* Users' timers are canceled; actors' await timers go on, so that
     * awaiting handlers finish while the runtime drains. */
    tr__timers_cancel_if(rt->timers, user_timer);
    deadline = tr__now_ns() + (uint64_t)drain_ms * 1000000u;
    dropped = counter_sum(rt, offsetof(tr__local, dead_letters));
    /* Supervisors stop their trees in order: drained, reverse start order
     * (within the same deadline). */
    pthread_mutex_lock(&rt->life_lock);
    for (i = 0; drain_ms > 0 && i < rt->nroots; i++) {
        tr__msg *m = tr__lookup(rt, rt->roots[i].ref) != NULL
                         ? tr__msg_new(rt, 0)
                         : NULL;

        if (m != NULL) {
            m->type = rt->roots[i].stop_type;
            m->to = rt->roots[i].ref;
            (void)tr__deliver(rt, NULL, m, TR__TRY);
        }
    }
    pthread_mutex_unlock(&rt->life_lock);
    /* Drain: until every worker is parked with nothing queued and no
     * handler awaits anything, twice in a row a millisecond apart (a
     * message in flight between two actors shows up as a queued actor in
     * between), or the deadline. */
    for (int quiet = 0; quiet < 2 && tr__now_ns() < deadline;) {
        quiet = tr__exec_idle(rt->exec) &&
                        counter_sum(rt, offsetof(tr__local, awaiting)) == 0
                    ? quiet + 1
                    : 0;
        usleep(1000);
    }
    atomic_store_explicit(&rt->state, TR__RT_STOPPING, memory_order_seq_cst);
    /* Stop every live actor. A handler's spawn racing with this pass either
     * shows up in it or sees STOPPING and stops its child itself (the
     * Dekker pair in spawn()); actors that end meanwhile refuse the stop. */
    high = atomic_load_explicit(&rt->high_seen, memory_order_seq_cst);
    for (i = 0; i < high; i++) {
        tr__actor *a = slot_at(rt, i);

        /* seq_cst: the walk's half of the Dekker pair with spawn(). */
        if (a != NULL &&
            atomic_load_explicit(&tr__own_of(a)->life, memory_order_seq_cst) ==
                TR__LIFE_ALIVE) {
            (void)tr__send_sys(rt, tr__ref_of(rt, a), TR__SYS_STOP, &why,
                               sizeof why);
        }
    }
    wait_none_alive(rt);
    dropped = counter_sum(rt, offsetof(tr__local, dead_letters)) - dropped;
    if (dropped > 0) {
        tr__log(rt, TR_LOG_INFO,
                "shutdown: %llu message(s) could not be delivered or handled "
                "(see dead letters)",
                (unsigned long long)dropped);
    }
    tr__timers_stop(rt->timers);
    tr__io_stop(rt);
    tr__pool_join(rt);
    tr__watchdog_stop(rt);
    tr__exec_stop(rt->exec);
    pthread_mutex_lock(&rt->life_lock);
    atomic_store_explicit(&rt->state, TR__RT_STOPPED, memory_order_release);
    pthread_cond_broadcast(&rt->life_cond);
    pthread_mutex_unlock(&rt->life_lock);
    return TR_OK;
}

void
tr_runtime_destroy(tr_runtime **rtp)
{
    tr_runtime *rt;
    tr__dl_sub *sub;
    uint32_t c;

    if (rtp == NULL || *rtp == NULL) {
        return;
    }
    rt = *rtp;
    (void)tr_runtime_shutdown(rt, rt->cfg.drain_ms);
    tr__timers_free(rt->timers);
    tr__io_free(rt);
    tr__exec_free(rt->exec);
    tr__pool_free(rt);
    /* Every actor has ended; only waiter records that arrived after an
     * actor's last look can remain. Wake (free) them all first: a record's
     * lookup reads other chunks, so no chunk is freed until this is done. */
    for (c = 0; c < rt->nchunks_max; c++) {
        tr__actor *chunk =
            atomic_load_explicit(&rt->chunks[c], memory_order_relaxed);

        for (uint32_t i = 0; chunk != NULL && i < TR__CHUNK; i++) {
            tr__mnode *left = tr__mbox_grab_waiters(&chunk[i].mb);

            tr__wake_chain(rt, &left, TR__WAKE_ALL);
        }
    }
    for (c = 0; c < rt->nchunks_max; c++) {
        tr__free_aligned(
            atomic_load_explicit(&rt->chunks[c], memory_order_relaxed));
    }
    for (c = 0; c < rt->cfg.workers; c++) {
        tr__msg_cache_drain(&rt->wc[c]);
    }
    tr__msg_cache_drain(&rt->outside);
    sub = atomic_load_explicit(&rt->dl_sub, memory_order_relaxed);
    while (sub != NULL) {
        tr__dl_sub *older = sub->older;

        tr__free(sub);
        sub = older;
    }
    pthread_cond_destroy(&rt->life_cond);
    pthread_mutex_destroy(&rt->life_lock);
    pthread_mutex_destroy(&rt->dl_lock);
    pthread_mutex_destroy(&rt->table_lock);
    pthread_mutex_destroy(&rt->outside_lock);
    tr__free(rt->free_ring);
    tr__free(rt->roots);
    tr__free_aligned(rt->wc);
    tr__free(rt->chunks);
    tr__free_aligned(rt);
    *rtp = NULL;
    tr__runtimes_add(-1);
}

/* ---- Timers glue ------------------------------------------------------- */

static bool
timer_fire(void *ctx, void *ud)
{
    tr_runtime *rt = ctx;
    tr__msg *proto = ud, *m;
    tr_status st;

    if (proto->type == TR__SYS_TIMEOUT) {
        /* An actor's await timer: one shot; a dead actor ignores it. */
        (void)tr__send_sys(rt, proto->to, TR__SYS_TIMEOUT, NULL, 0);
        return false;
    }
    m = tr__msg_new(rt, proto->len);
    if (m == NULL) {
        /* This firing's message is lost: a dead letter like any other
         * (an interval tries again next period). */
        dl_notify(rt, proto, TR_ENOMEM);
        return true;
    }
    m->type = proto->type;
    m->from = proto->from;
    m->to = proto->to;
    memcpy(m->data, proto->data, proto->len);
    st = tr__deliver(rt, NULL, m, TR__TRY);
    return st != TR_EDEAD;
}

static void
timer_release(void *ctx, void *ud)
{
    tr__msg_free(ctx, ud);
}

static tr_status
send_after(tr_runtime *rt, tr__actor *self, tr_ref to, uint32_t type,
           const void *data, size_t len, uint32_t delay_ms, uint32_t period_ms,
           tr_timer *out)
{
    tr__msg *proto;
    uint64_t id;
    tr_status st;

    if ((data == NULL && len > 0) || type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    if (len > rt->cfg.max_payload) {
        return TR_EMSGSIZE;
    }
    if (atomic_load_explicit(&rt->state, memory_order_acquire) !=
        TR__RT_RUNNING) {
        return TR_ESHUTDOWN;
    }
    proto = tr__msg_new(rt, len);
    if (proto == NULL) {
        return TR_ENOMEM;
    }
    proto->type = type;
    proto->from = self ? tr__ref_of(rt, self) : TR_NOREF;
    proto->to = to;
    if (len > 0) {
        memcpy(proto->data, data, len);
    }
    st = tr__timers_add(rt->timers, delay_ms, period_ms, proto, &id);
    if (st != TR_OK) {
        tr__msg_free(rt, proto);
        return st;
    }
    if (out != NULL) {
        out->id_ = id;
    }
    return TR_OK;
}

tr_status
tr_send_after_cx(tr_cx *cx, tr_ref to, uint32_t type, const void *data,
                 size_t len, uint32_t delay_ms, tr_timer *out)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return send_after(cx->rt, cx->self, to, type, data, len, delay_ms, 0, out);
}

tr_status
tr_send_after_rt(tr_runtime *rt, tr_ref to, uint32_t type, const void *data,
                 size_t len, uint32_t delay_ms, tr_timer *out)
{
    if (rt == NULL) {
        return TR_EINVAL;
    }
    return send_after(rt, tr__current_actor(rt), to, type, data, len, delay_ms,
                      0, out);
}

tr_status
tr_send_every_cx(tr_cx *cx, tr_ref to, uint32_t type, const void *data,
                 size_t len, uint32_t period_ms, tr_timer *out)
{
    if (cx == NULL || period_ms == 0) {
        return TR_EINVAL;
    }
    return send_after(cx->rt, cx->self, to, type, data, len, period_ms,
                      period_ms, out);
}

tr_status
tr_send_every_rt(tr_runtime *rt, tr_ref to, uint32_t type, const void *data,
                 size_t len, uint32_t period_ms, tr_timer *out)
{
    if (rt == NULL || period_ms == 0) {
        return TR_EINVAL;
    }
    return send_after(rt, tr__current_actor(rt), to, type, data, len, period_ms,
                      period_ms, out);
}

tr_status
tr_timer_cancel(tr_runtime *rt, tr_timer t)
{
    if (rt == NULL) {
        return TR_EINVAL;
    }
    return tr__timers_cancel(rt->timers, t.id_);
}

/* ---- Version ----------------------------------------------------------- */

unsigned int
tr_version(void)
{
    return TR_VERSION_HEX;
}

#define TR__STR_(x) #x
#define TR__STR(x)  TR__STR_(x)

#define TR__VERSION_BASE                                                       \
    TR__STR(TR_VERSION_MAJOR)                                                  \
    "." TR__STR(TR_VERSION_MINOR) "." TR__STR(TR_VERSION_PATCH)

const char *
tr_version_string(void)
{
    /* "major.minor.patch", with "-suffix" only when there is one. */
    return sizeof(TR_VERSION_SUFFIX) > 1 ? TR__VERSION_BASE
               "-" TR_VERSION_SUFFIX
                                         : TR__VERSION_BASE;
}
