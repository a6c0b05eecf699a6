/* The watchdog: finds handlers that block their worker.
 *
 * Each worker publishes the handler call it runs (tr__watch_begin/end in
 * core.h: a word naming the call, and the actor), with no clock read. The
 * watchdog thread samples every worker's word every threshold/8: a call
 * that shows in consecutive samples for threshold - period or more has run
 * at least that long (it started before the first sample that saw it, and
 * at most a period before, so the estimate logged, first sight + period/2,
 * is within half a period of the truth). It is reported once: a TR_LOG_WARN
 * line and tr_stats.slow_handlers.
 *
 * When every worker is parked no handler can run, so the watchdog sleeps
 * in tr__exec_wait_busy until one unparks: an idle runtime does not wake
 * it. */
#include "actors/core.h"

#include <string.h>

/* Samples per threshold: finer reports a call closer to the threshold and
 * costs more wake-ups while workers are busy (8 per 100 ms by default). */
#define SAMPLES 8u

typedef struct seen {
    uint64_t word;  /* the word last sampled */
    uint64_t since; /* when it was first seen, ns */
    bool reported;
} seen;

struct tr__watchdog {
    tr_runtime *rt;
    pthread_t thread;
    _Atomic uint32_t stop; /* set once by tr__watchdog_stop; futex word */
    uint64_t threshold_ns, period_ns;
    uint32_t nworkers;
    seen seen[]; /* one per worker; the watchdog thread only */
};

static void
report(struct tr__watchdog *wd, uint32_t i, uint64_t word, uint64_t ran_ns)
{
    tr__local *l = &wd->rt->wc[i];
    /* acquire: a seqlock's read side (see tr__watch_begin): if these read
     * a later call's values, the re-read of the word below sees it. */
    tr__actor *a = atomic_load_explicit(&l->wd_actor, memory_order_acquire);
    const tr_behavior *b =
        atomic_load_explicit(&l->wd_beh, memory_order_acquire);
    /* acquire: as above (a later actor in the slot changed it first). */
    uint32_t gen = atomic_load_explicit(&a->gen, memory_order_acquire);

    /* relaxed: the acquires above keep it after them. Still the same call:
     * the loads above describe it. */
    if (atomic_load_explicit(&l->wd_word, memory_order_relaxed) != word) {
        return; /* it just returned: the next call gets its own look */
    }
    wd->seen[i].reported = true;
    TR__COUNT(wd->rt, slow_handlers, 1);
    tr__log(wd->rt, TR_LOG_WARN,
            "handler of actor %s (slot %u, gen %u) for message type %u "
            "has run %llu ms on worker %u: it blocks the worker (use "
            "tr_blocking_run or a thread actor)",
            b->name ? b->name : "?", a->slot, gen, (unsigned)(word >> 32),
            (unsigned long long)(ran_ns / 1000000u), i);
}

static void
sample(struct tr__watchdog *wd)
{
    uint64_t now = tr__now_ns();

    for (uint32_t i = 0; i < wd->nworkers; i++) {
        seen *s = &wd->seen[i];
        /* acquire: pairs with tr__watch_begin's release of the word. */
        uint64_t word =
            atomic_load_explicit(&wd->rt->wc[i].wd_word, memory_order_acquire);

        if (word != s->word) {
            s->word = word;
            s->since = now;
            s->reported = false;
        } else if ((word & 1u) && !s->reported &&
                   now - s->since + wd->period_ns >= wd->threshold_ns) {
            report(wd, i, word, now - s->since + wd->period_ns / 2);
        }
    }
}

static void *
watchdog_main(void *arg)
{
    struct tr__watchdog *wd = arg;
    tr__exec *ex = wd->rt->exec;

    /* acquire: pairs with tr__watchdog_stop's release. */
    while (!atomic_load_explicit(&wd->stop, memory_order_acquire)) {
        if (tr__exec_idle(ex)) {
            /* Nothing runs: forget what was seen (a call seen before the
             * sleep has returned) and sleep until a worker unparks. */
            memset(wd->seen, 0, wd->nworkers * sizeof wd->seen[0]);
            tr__exec_wait_busy(ex, &wd->stop);
            continue;
        }
        tr__futex_wait(&wd->stop, 0, wd->period_ns);
        sample(wd);
    }
    return NULL;
}

tr_status
tr__watchdog_start(tr_runtime *rt)
{
    uint32_t n = rt->cfg.workers;
    struct tr__watchdog *wd;

    if (rt->cfg.watchdog_ms == TR_WATCHDOG_OFF) {
        return TR_OK;
    }
    wd = tr__calloc(1, sizeof *wd + n * sizeof wd->seen[0]);
    if (wd == NULL) {
        return TR_ENOMEM;
    }
    wd->rt = rt;
    wd->nworkers = n;
    wd->threshold_ns = (uint64_t)rt->cfg.watchdog_ms * 1000000u;
    wd->period_ns = wd->threshold_ns / SAMPLES;
    if (wd->period_ns < 1000000u) {
        wd->period_ns = 1000000u; /* a floor: 1 ms */
    }
    if (pthread_create(&wd->thread, NULL, watchdog_main, wd) != 0) {
        tr__free(wd);
        return TR_EFAILED;
    }
    rt->watchdog = wd;
    return TR_OK;
}

void
tr__watchdog_stop(tr_runtime *rt)
{
    struct tr__watchdog *wd = rt->watchdog;

    if (wd == NULL) {
        return;
    }
    /* release: the watchdog's acquire loads then see it (the kick's own
     * release covers a sleeper in tr__exec_wait_busy). */
    atomic_store_explicit(&wd->stop, 1, memory_order_release);
    tr__futex_wake(&wd->stop, 1);
    tr__exec_kick(rt->exec);
    pthread_join(wd->thread, NULL);
    tr__free(wd);
    rt->watchdog = NULL;
}
