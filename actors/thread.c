/* Thread actors: an actor whose messages its own OS thread consumes. See
 * thread.h for how a turn is handed from a worker to the thread. */
#include "actors/thread.h"

#include <sched.h>
#include <string.h>

/* The thread actor the calling thread runs, if any (set for the thread's
 * life by thread_main). */
static _Thread_local tr_thread *tls_thread;

/* ---- The consumer ------------------------------------------------------ */

void
tr__thread_handoff(tr__actor *a)
{
    /* acq_rel: release hands this turn's ownership (acquired through the
     * run queue from the scheduling admission) to the consumer's acquire
     * load in take_turn; acquire orders our read of the old value. */
    _Atomic uint32_t *word = &tr__own_of(a)->wflags;

    if (atomic_fetch_or_explicit(word, TR__T_HANDED, memory_order_acq_rel) &
        TR__T_SLEEP) {
        tr__futex_wake(word, 1);
    }
}

/* Waits for a turn handed by tr__thread_handoff, up to `deadline`. */
static bool
take_turn(tr__actor *a, uint64_t deadline)
{
    _Atomic uint32_t *word = &tr__own_of(a)->wflags;

    for (;;) {
        /* acquire: pairs with the handoff's release. */
        uint32_t v = atomic_load_explicit(word, memory_order_acquire);
        uint64_t now;

        if (v & TR__T_HANDED) {
            /* relaxed: no handoff comes until we release the tokens we now
             * hold (a stray WAKE bit may be lost, which is harmless). */
            atomic_store_explicit(word, 0, memory_order_relaxed);
            return true;
        }
        now = tr__now_ns();
        if (now >= deadline) {
            return false;
        }
        /* relaxed: announces the sleep; the handoff's RMW reads it (its
         * release/acquire is on the HANDED bit, above). */
        if (!(v & TR__T_SLEEP) &&
            !atomic_compare_exchange_strong_explicit(word, &v, v | TR__T_SLEEP,
                                                     memory_order_relaxed,
                                                     memory_order_relaxed)) {
            continue; /* handed (or a stray wake) meanwhile */
        }
        tr__futex_wait(word, v | TR__T_SLEEP,
                       deadline == UINT64_MAX ? 0 : deadline - now);
    }
}

tr_status
tr__thread_next(tr_thread *t, uint64_t deadline, tr__msg **out)
{
    tr__actor *a = t->a;

    for (;;) {
        uint64_t consumed = 0;
        tr__mnode *n;

        if (t->ended) {
            return TR_EDEAD;
        }
        if (!t->owned) {
            if (!take_turn(a, deadline)) {
                return TR_ETIMEDOUT;
            }
            t->owned = true;
        }
        tr__turn_sys(&t->cx, &consumed);
        if (t->cx.own->lflags & TR__L_ENDING) {
            tr_runtime *rt = t->rt;

            tr__actor_end(&t->cx, consumed);
            t->owned = false;
            t->ended = true;
            /* release: the end's uses of rt happen before shutdown's
             * acquire load sees the count drop (see thread_ends). */
            atomic_fetch_sub_explicit(&rt->thread_ends, 1,
                                      memory_order_release);
            return TR_EDEAD;
        }
        n = tr__actor_pop(a);
        if (n != NULL) {
            consumed += TR__MB_USER_ONE;
        }
        t->owned = tr__turn_release(t->rt, a, consumed, n != NULL);
        if (n != NULL) {
            *out = (tr__msg *)n;
            return TR_OK;
        }
        if (t->owned) {
            /* Tokens left and nothing linked: a message between admission
             * and push (see mailbox.h). */
            if (tr__now_ns() >= deadline) {
                return TR_ETIMEDOUT;
            }
            sched_yield();
        }
    }
}

tr_status
tr__thread_open(tr_thread *t, tr_runtime *rt, tr__actor *parent,
                const char *name, const tr_mailbox_opts *mailbox)
{
    tr_spawn_opts o = {.mailbox = mailbox};
    tr_thread **box = tr__alloc(sizeof *box);
    tr_status st;

    if (box == NULL) {
        return TR_ENOMEM;
    }
    *box = t;
    t->rt = rt;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "thread");
    t->beh.name = t->name;
    t->beh.state_size = sizeof *box;
    t->cx.rt = rt;
    /* relaxed: the spawn publishes the actor with release stores (its
     * epoch, its life) after this, and shutdown acquires one of those
     * before it waits on the count (see thread_ends). */
    atomic_fetch_add_explicit(&rt->thread_ends, 1, memory_order_relaxed);
    /* The box is the actor's state (its end frees it): how the trampoline
     * finds nothing but the actor, and the consumer finds its handle. */
    st = tr__spawn(rt, parent, &t->beh, &o, TR__L_THREAD, box, NULL, &t->ref);
    if (st != TR_OK) {
        atomic_fetch_sub_explicit(&rt->thread_ends, 1, memory_order_release);
        tr__free(box);
        return st;
    }
    /* Alive until this handle's consumer ends it, so the lookup holds. */
    t->a = tr__lookup(rt, t->ref);
    t->cx.self = t->a;
    t->cx.own = tr__own_of(t->a);
    t->cx.state = tr__state_of(t->cx.own);
    t->cx.ref = t->ref;
    return TR_OK;
}

tr__actor *
tr__thread_self(tr_runtime *rt)
{
    tr_thread *t = tls_thread;

    return t != NULL && t->rt == rt && !t->ended ? t->a : NULL;
}

/* ---- User thread actors ------------------------------------------------ */

/* Ends the message received last: a request not replied to is answered
 * TR_ENOREPLY, as a handler's would be. */
static void
release_current(tr_thread *t)
{
    tr__msg *m = t->cx.msg;

    if (m != NULL) {
        t->cx.msg = NULL;
        tr__finish(&t->cx, m, TR_OK);
    }
}

/* The function returned: end the actor if it has not ended, the way a stop
 * would (its queued messages go to dead letters). */
static void
finish(tr_thread *t)
{
    static const tr_reason normal = {TR_EXIT_NORMAL, 0, "thread returned"};
    tr__msg *m;

    release_current(t);
    while (!t->ended && tr__send_sys(t->rt, t->ref, TR__SYS_STOP, &normal,
                                     sizeof normal) != TR_OK) {
        sched_yield(); /* no memory for the stop yet */
    }
    /* The stop is on the system lane, which every turn takes first; a user
     * message can only come out if it was linked before, and then it is
     * one nobody will receive. */
    while (tr__thread_next(t, UINT64_MAX, &m) == TR_OK) {
        tr__dead_letter(t->rt, m, TR_EDEAD);
    }
}

uint32_t
tr__thread_latch(tr_thread *t)
{
    uint32_t go;

    /* acquire: pairs with tr__thread_unlatch's release, so the fields set
     * by tr__thread_open are visible. */
    while ((go = atomic_load_explicit(&t->start, memory_order_acquire)) == 0) {
        tr__futex_wait(&t->start, 0, 0);
    }
    return go;
}

void
tr__thread_unlatch(tr_thread *t, uint32_t how)
{
    /* release: publishes the handle's setup to tr__thread_latch. */
    atomic_store_explicit(&t->start, how, memory_order_release);
    tr__futex_wake(&t->start, INT32_MAX);
}

static void *
thread_main(void *arg)
{
    tr_thread *t = arg;

    if (tr__thread_latch(t) == 1) {
        tls_thread = t;
        t->fn(t, t->arg);
        finish(t);
        tls_thread = NULL;
    }
    return NULL;
}

tr_status
tr_thread_spawn(tr_runtime *rt, const char *name,
                const tr_mailbox_opts *mailbox, tr_thread_fn fn, void *arg,
                tr_ref *ref, tr_thread **out)
{
    tr_thread *t;
    tr_status st;

    if (rt == NULL || fn == NULL || ref == NULL || out == NULL) {
        return TR_EINVAL;
    }
    t = tr__calloc(1, sizeof *t);
    if (t == NULL) {
        return TR_ENOMEM;
    }
    t->fn = fn;
    t->arg = arg;
    /* The thread first, latched: once the actor exists it must have a
     * consumer, or nothing could ever end it. */
    if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
        tr__free(t);
        return TR_EFAILED;
    }
    st = tr__thread_open(t, rt, tr__current_actor(rt), name, mailbox);
    if (st != TR_OK) {
        tr__thread_unlatch(t, 2);
        pthread_join(t->thread, NULL);
        tr__free(t);
        return st;
    }
    *ref = t->ref;
    *out = t;
    tr__thread_unlatch(t, 1);
    return TR_OK;
}

tr_status
tr_thread_receive(tr_thread *t, tr_thread_msg *out, uint32_t timeout_ms)
{
    uint64_t deadline;
    tr__msg *m;
    tr_status st;

    if (t == NULL || out == NULL) {
        return TR_EINVAL;
    }
    if (tls_thread != t) {
        return TR_ESTATE;
    }
    release_current(t);
    deadline = timeout_ms == TR_THREAD_FOREVER
                   ? UINT64_MAX
                   : tr__now_ns() + (uint64_t)timeout_ms * 1000000u;
    do {
        st = tr__thread_next(t, deadline, &m);
        if (st != TR_OK) {
            return st;
        }
    } while (!tr__accept(&t->cx, m)); /* expired requests, late replies */
    t->cx.msg = m;
    t->cx.replied = false;
    TR__COUNT(t->rt, handled, 1);
    out->type = m->type;
    out->from = m->from;
    out->data = m->len ? m->data : NULL;
    out->len = m->len;
    return TR_OK;
}

tr_status
tr_thread_reply(tr_thread *t, const void *data, size_t len)
{
    if (t == NULL) {
        return TR_EINVAL;
    }
    if (tls_thread != t) {
        return TR_ESTATE;
    }
    /* As a handler's reply, sent by the actor: tr__send_msg blocks it
     * rather than muting it (TR__L_THREAD). */
    return tr_reply(&t->cx, data, len);
}

tr_ref
tr_thread_ref(const tr_thread *t)
{
    return t ? t->ref : TR_NOREF;
}

tr_runtime *
tr_thread_runtime(const tr_thread *t)
{
    return t ? t->rt : NULL;
}

tr_status
tr_thread_join(tr_thread **tp)
{
    if (tp == NULL || *tp == NULL) {
        return TR_OK;
    }
    if (tls_thread == *tp) {
        return TR_ESTATE;
    }
    pthread_join((*tp)->thread, NULL);
    tr__free(*tp);
    *tp = NULL;
    return TR_OK;
}
