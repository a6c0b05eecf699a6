/* Sending: admission under each overflow policy, held sends and muting,
 * waiters, blocking sends from outside threads, ask-and-wait, replies. */
#include "actors/core.h"

#include <sched.h>
#include <string.h>

/* ---- Waiters ----------------------------------------------------------- */

void
tr__thread_waiter_put(tr__thread_waiter *tw)
{
    /* acq_rel: the last one out frees; acquire sees the other's writes. */
    if (atomic_fetch_sub_explicit(&tw->refs, 1, memory_order_acq_rel) == 1) {
        tr__free(tw);
    }
}

uint32_t
tr__wake_chain(tr_runtime *rt, tr__mnode **chain, uint32_t max)
{
    uint32_t k = 0;

    while (*chain != NULL && k < max) {
        tr__mnode *n = *chain;
        tr__waiter *rec = (tr__waiter *)n;

        *chain = atomic_load_explicit(&n->next, memory_order_relaxed);
        if (rec->thread != NULL) {
            /* release: the waiter's futex load (acquire) then retries. */
            atomic_store_explicit(&rec->thread->futex, 1, memory_order_release);
            tr__futex_wake(&rec->thread->futex, 1);
            tr__thread_waiter_put(rec->thread);
        } else {
            tr__actor *x = tr__lookup(rt, rec->actor);

            if (x != NULL) {
                tr__actor_wake(rt, x);
            }
        }
        tr__free(rec);
        k++;
    }
    return k;
}

/* Owner: a small ext (held sends and waiters only) goes when it holds
 * neither: most actors hold sends or waiters only now and then. */
static void
ext_trim(tr__actor *a)
{
    tr__own *o = tr__own_of(a);
    tr__ext *x = o->ext;

    if (!x->full && x->head == NULL && x->wpriv == NULL) {
        tr__free(x);
        o->ext = NULL;
    }
}

void
tr__owner_wake(tr_runtime *rt, tr__actor *a, uint32_t max)
{
    tr__ext *x = tr__own_of(a)->ext;
    tr__mnode *chain = x != NULL ? x->wpriv : NULL;
    uint32_t k = tr__wake_chain(rt, &chain, max);

    while (k < max && (chain = tr__mbox_grab_waiters(&a->mb)) != NULL) {
        k += tr__wake_chain(rt, &chain, max - k);
    }
    if (chain != NULL && x == NULL && (x = tr__ext_outbox(a)) == NULL) {
        /* No memory to keep them for later turns: all go now (each retries,
         * and registers again if beaten to the room). */
        tr__wake_chain(rt, &chain, TR__WAKE_ALL);
    }
    if (x != NULL) {
        x->wpriv = chain;
        ext_trim(a);
    }
}

static bool
add_waiter(tr__actor *target, tr_ref actor, tr__thread_waiter *tw)
{
    tr__waiter *rec = tr__alloc(sizeof *rec);

    if (rec == NULL) {
        return false;
    }
    rec->actor = actor;
    rec->thread = tw;
    if (tw != NULL) {
        atomic_fetch_add_explicit(&tw->refs, 1, memory_order_relaxed);
    }
    tr__mbox_add_waiter(&target->mb, &rec->node);
    return true;
}

/* ---- Admission --------------------------------------------------------- */

static void
push_admitted(tr_runtime *rt, tr__actor *a, tr__msg *m, tr__admit r)
{
    tr__mbox_push(&a->mb, &m->node);
    if (r == TR__ADMIT_SCHEDULE) {
        tr__exec_schedule(rt->exec, &a->task);
    }
    TR__COUNT(rt, sent, 1);
}

tr_status
tr__push_forced(tr_runtime *rt, tr__actor *a, tr__msg *m)
{
    uint64_t w;
    tr__admit r =
        a ? tr__mbox_admit(&a->mb, m->to.gen_, true, &w) : TR__ADMIT_DEAD;

    if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
        push_admitted(rt, a, m, r);
        return TR_OK;
    }
    tr__dead_letter(rt, m, TR_EDEAD);
    return TR_EDEAD;
}

/* Holds m in self's outbox, behind what is held already; false (nothing
 * held) when the outbox cannot be allocated. */
static bool
outbox_append(tr__actor *self, tr__msg *m)
{
    tr__ext *o = tr__ext_outbox(self);

    if (o == NULL) {
        return false;
    }
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    if (o->tail != NULL) {
        atomic_store_explicit(&o->tail->node.next, &m->node,
                              memory_order_relaxed);
    } else {
        o->head = m;
    }
    o->tail = m;
    o->n++;
    return true;
}

/* Drops the first held send `m` from the outbox (the caller has taken it,
 * with status `st`); `next` is its outbox link, read before it left. If a
 * suspended handler awaits that send, its await is over (`m` is only
 * compared: it may be freed by now). A small ext may go with it (see
 * ext_trim). */
static void
outbox_advance(tr__actor *self, tr__msg *m, tr__msg *next, tr_status st)
{
    tr__ext *o = tr__own_of(self)->ext;

    o->head = next;
    if (next == NULL) {
        o->tail = NULL;
    }
    o->n--;
    if (!o->full) {
        ext_trim(self);
        return;
    }
    if (o->kind == TR__AW_SEND && o->held == m) {
        o->held = NULL;
        o->status = st;
        o->ready = true;
    }
}

/* Takes a held send out of the outbox, wherever it is. */
void
tr__outbox_remove(tr__actor *self, tr__msg *m)
{
    tr__ext *o = tr__own_of(self)->ext;
    tr__msg *prev = NULL, *x = o->head;

    while (x != m) {
        prev = x;
        x = (tr__msg *)atomic_load_explicit(&x->node.next,
                                            memory_order_relaxed);
    }
    x = (tr__msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
    if (prev == NULL) {
        o->head = x;
    } else {
        atomic_store_explicit(&prev->node.next, &x->node, memory_order_relaxed);
    }
    if (o->tail == m) {
        o->tail = prev;
    }
    o->n--;
}

/* Blocks the calling (outside) thread until `a` has room for m, the
 * deadline passes or `a` ends. */
static tr_status
deliver_blocking(tr_runtime *rt, tr__actor *a, tr__msg *m)
{
    uint64_t deadline =
        tr__now_ns() + (uint64_t)rt->cfg.send_timeout_ms * 1000000u;
    tr__thread_waiter *tw;
    tr_status st = TR_ETIMEDOUT;

    /* An ask waits no longer in its send than it would for its reply. */
    if (m->deadline != 0 && m->deadline < deadline) {
        deadline = m->deadline;
    }
    tw = tr__alloc(sizeof *tw);
    if (tw == NULL) {
        return TR_ENOMEM;
    }
    atomic_init(&tw->refs, 1);
    for (;;) {
        uint64_t w, now;
        tr__admit r;

        atomic_store_explicit(&tw->futex, 0, memory_order_relaxed);
        if (!add_waiter(a, TR_NOREF, tw)) {
            st = TR_ENOMEM;
            break;
        }
        /* Retry after registering: room made before we registered would
         * otherwise wake no one (the Dekker pair in mailbox.c). */
        r = tr__mbox_admit(&a->mb, m->to.gen_, false, &w);
        if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
            push_admitted(rt, a, m, r);
            st = TR_OK;
            break;
        }
        if (r == TR__ADMIT_CLOSED) {
            st = TR_ESHUTDOWN; /* not taken */
            break;
        }
        if (r == TR__ADMIT_DEAD) {
            tr__dead_letter(rt, m, TR_EDEAD);
            st = TR_EDEAD;
            break;
        }
        now = tr__now_ns();
        if (now >= deadline) {
            break;
        }
        /* acquire: pairs with the waker's release store of 1. */
        if (atomic_load_explicit(&tw->futex, memory_order_acquire) == 0) {
            tr__futex_wait(&tw->futex, 0, deadline - now);
        }
    }
    tr__thread_waiter_put(tw);
    return st;
}

static tr_status
hold(tr_runtime *rt, tr__actor *self, tr__msg *m)
{
    if (!outbox_append(self, m)) {
        return TR_ENOMEM; /* the caller keeps m */
    }
    TR__COUNT(rt, held, 1);
    return TR_PENDING;
}

/* Admits m past its receiver's capacity (counted in overcommits); a dead
 * receiver (t NULL or ended) dead-letters it. */
static tr_status
overcommit(tr_runtime *rt, tr__actor *t, tr__msg *m)
{
    tr_status st = tr__push_forced(rt, t, m);

    if (st == TR_OK) {
        TR__COUNT(rt, overcommits, 1);
    }
    return st;
}

/* The receiver is closing (its supervisor is stopping it): a sender that
 * can be told keeps its message (TR_ESHUTDOWN); one that cannot (a timer,
 * a held send going out) has it dead-lettered (TR_DROPPED). */
static tr_status
closed(tr_runtime *rt, tr__msg *m, tr__mode mode)
{
    if (mode == TR__FROM_ACTOR || mode == TR__FROM_THREAD) {
        return TR_ESHUTDOWN;
    }
    tr__dead_letter(rt, m, TR_ESHUTDOWN);
    return TR_DROPPED;
}

tr_status
tr__deliver(tr_runtime *rt, tr__actor *self, tr__msg *m, tr__mode mode)
{
    tr__actor *a;
    tr__mnode *oldest = NULL;
    tr_ref to = m->to;
    uint64_t w;
    uint32_t policy;
    tr__admit r;

    a = tr__lookup(rt, to);
    if (a == NULL) {
        tr__dead_letter(rt, m, TR_EDEAD);
        return TR_EDEAD;
    }
    r = tr__mbox_admit(&a->mb, to.gen_, false, &w);
    if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
        push_admitted(rt, a, m, r);
        return TR_OK;
    }
    if (r == TR__ADMIT_CLOSED) {
        return closed(rt, m, mode);
    }
    if (r == TR__ADMIT_DEAD) {
        tr__dead_letter(rt, m, TR_EDEAD);
        return TR_EDEAD;
    }
    /* Full: the receiver's policy decides. acquire, then the generation:
     * a policy stored by a later spawn of this slot carries that spawn's
     * generation with it (see tr__actor.policy), so the receiver we were
     * refused by has ended and the send is to a dead actor. */
    policy = atomic_load_explicit(&tr__own_of(a)->policy, memory_order_acquire);
    if (atomic_load_explicit(&a->gen, memory_order_acquire) != to.gen_) {
        tr__dead_letter(rt, m, TR_EDEAD);
        return TR_EDEAD;
    }
    switch (policy) {
    case TR_REJECT:
        if (mode == TR__TRY || mode == TR__FLUSH || mode == TR__OVERCOMMIT) {
            break; /* nobody to hand TR_EFULL to: dead-letter below */
        }
        TR__COUNT(rt, rejected, 1);
        return TR_EFULL;
    case TR_DROP_NEWEST:
        tr__dead_letter(rt, m, TR_DROPPED);
        return TR_DROPPED;
    case TR_FAIL: {
        static const tr_reason overload = {TR_EXIT_OVERLOAD, TR_EFULL,
                                           "mailbox overflow"};

        tr__dead_letter(rt, m, TR_DROPPED);
        (void)tr__send_sys(rt, to, TR__SYS_STOP, &overload, sizeof overload);
        return TR_DROPPED;
    }
    case TR_DROP_OLDEST:
        r = tr__mbox_swap_oldest(&a->mb, to.gen_, &m->node, &oldest);
        if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
            if (r == TR__ADMIT_SCHEDULE) {
                tr__exec_schedule(rt->exec, &a->task);
            }
            TR__COUNT(rt, sent, 1);
            return TR_OK;
        }
        if (r == TR__ADMIT_SWAPPED) {
            TR__COUNT(rt, sent, 1);
            tr__dead_letter(rt, (tr__msg *)oldest, TR_DROPPED);
            return TR_OK;
        }
        if (r == TR__ADMIT_CLOSED) {
            return closed(rt, m, mode);
        }
        if (r == TR__ADMIT_DEAD) {
            tr__dead_letter(rt, m, TR_EDEAD);
            return TR_EDEAD;
        }
        tr__dead_letter(rt, m, TR_DROPPED);
        return TR_DROPPED;
    default: /* TR_BACKPRESSURE */
        switch (mode) {
        case TR__FROM_ACTOR:
            return hold(rt, self, m);
        case TR__FROM_THREAD:
            return deliver_blocking(rt, a, m);
        case TR__FLUSH:
            return TR_EFULL; /* stays held */
        case TR__OVERCOMMIT:
            return overcommit(rt, a, m);
        case TR__TRY:
            break;
        }
        break;
    }
    TR__COUNT(rt, rejected, mode == TR__TRY ? 0 : 1);
    tr__dead_letter(rt, m, TR_EFULL);
    return TR_DROPPED;
}

/* ---- Held sends and muting --------------------------------------------- */

static void force_first(tr_runtime *rt, tr__actor *a);

bool
tr__outbox_flush(tr_runtime *rt, tr__actor *a)
{
    tr__msg *m;

    while ((m = tr__held(tr__own_of(a))) != NULL) {
        /* Read the outbox link first: once delivered, the node's link
         * belongs to the receiver's queue (and the message may already be
         * handled and freed). */
        tr__msg *next = (tr__msg *)atomic_load_explicit(&m->node.next,
                                                        memory_order_relaxed);
        tr_status st = tr__deliver(rt, a, m, TR__FLUSH);

        if (st == TR_EFULL) {
            return false; /* not taken: m and its link are untouched */
        }
        outbox_advance(a, m, next, st);
    }
    return true;
}

void
tr__outbox_force(tr_runtime *rt, tr__actor *a)
{
    while (tr__held(tr__own_of(a)) != NULL) {
        force_first(rt, a);
    }
}

/* The actor `packed` waits on, 0 when it waits on none or is gone. */
static uint64_t
waits_on(tr_runtime *rt, uint64_t packed)
{
    tr__actor *x = tr__lookup(rt, tr__ref_unpack(rt, packed));

    return x ? atomic_load_explicit(&x->muted_on, memory_order_seq_cst) &
                   ~TR__EDGE_AWAIT
             : 0;
}

/* True when following muted_on links from `a` leads back to `a`, whatever
 * the cycle's length. Each actor waits on at most one other, so the links
 * form chains that end (at an actor not muted) or run into a cycle. Brent's
 * method walks one in O(length): it stops at `a` (a cycle through us), at
 * the end, or on meeting a cycle that does not contain `a` (its own members
 * find it). The step bound is a guard against links changing under the
 * walk; a real cycle is never longer than the actors alive.
 *
 * The loads are seq_cst, as is the owner's store of its own link before
 * the walk: two actors closing a cycle at once each store, then load the
 * other's link, so at least one of them sees the cycle (Dekker). */
bool
tr__in_cycle(tr_runtime *rt, uint64_t self, uint64_t first)
{
    uint64_t tortoise = self, hare = first;
    uint64_t power = 1, lam = 1, steps;

    /* The common case first: the actor we wait on waits on no one. */
    if (hare == 0 || hare == self) {
        return hare == self;
    }
    if (waits_on(rt, hare) == 0) {
        return false;
    }
    steps = atomic_load_explicit(&rt->alive, memory_order_relaxed) + 2;
    while (hare != 0 && steps-- > 0) {
        if (hare == self) {
            return true;
        }
        if (hare == tortoise) {
            return false; /* a cycle ahead of us, not through us */
        }
        if (power == lam) {
            tortoise = hare;
            power *= 2;
            lam = 0;
        }
        hare = waits_on(rt, hare);
        lam++;
    }
    return false;
}

/* Delivers the first held send past its receiver's capacity (counted in
 * overcommits): to break a cycle of muted actors, and for the held sends of
 * an actor that ends (they were accepted; the sender's end does not take
 * that back). A dead receiver dead-letters it. */
static void
force_first(tr_runtime *rt, tr__actor *a)
{
    tr__msg *m = tr__held(tr__own_of(a));
    tr__msg *next =
        (tr__msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);

    /* m is only compared once it went: it may be freed by then. */
    outbox_advance(a, m, next, overcommit(rt, tr__lookup(rt, m->to), m));
}

/* Owner: releases the turn's counts keeping the MUTE token (the tokens
 * never read zero, so no sender schedules us meanwhile, and an actor whose
 * held sends go to itself finds the room it just made), and gives the room
 * this turn made (`freed` slots) to waiters now: after a park only a waker
 * runs us again. (After the release: the Dekker pair in mailbox.c.) Those
 * not woken stay in hand, and then we hold WAIT like any owner with
 * waiters in hand, so the turn that finally lets us go idle wakes them
 * (turn_end relies on WAIT meaning tr__wpriv is set). */
static void
park_prepare(tr_runtime *rt, tr__actor *a, uint64_t *consumed, uint32_t freed)
{
    tr__own *o = tr__own_of(a);

    if (!(o->lflags & TR__L_MUTE_HELD)) {
        *consumed -= TR__MB_MUTE;
        o->lflags |= TR__L_MUTE_HELD;
    }
    tr__mbox_add(&a->mb, (uint64_t)0 - *consumed);
    *consumed = 0;
    if (freed > 0) {
        tr__owner_wake(rt, a, freed);
        if (tr__wpriv(o) != NULL && !(o->lflags & TR__L_WAIT_HELD)) {
            tr__mbox_add(&a->mb, TR__MB_WAIT);
            o->lflags |= TR__L_WAIT_HELD;
        }
    }
}

typedef enum park_result {
    PARKED,     /* no longer ours: a waker schedules us */
    PARK_SYS,   /* a system message waits: handle it first */
    PARK_RETRY, /* a wake came in while we were deciding */
} park_result;

/* Owner, holding MUTE: parks the actor unless a system message waits or a
 * wake came in. The word's system count, not the lane, tells whether one
 * waits: a sender counts its message in the word (RMW) before it pushes
 * it, and our MUTE was added to the word before this load, so either its
 * admission came first and we see the count here, or it saw MUTE and wakes
 * us (tr__send_sys) after we park. */
static park_result
park_try(tr__actor *a)
{
    _Atomic uint32_t *wflags = &tr__own_of(a)->wflags;
    uint32_t old;

    if (tr__mbox_word(&a->mb) & TR__MB_SYS_MASK) {
        return PARK_SYS;
    }
    old = atomic_load_explicit(wflags, memory_order_acquire);
    /* release: our turn's writes go to the waker that schedules us. */
    if (!(old & TR__W_WAKE) &&
        atomic_compare_exchange_strong_explicit(wflags, &old, TR__W_MUTED,
                                                memory_order_acq_rel,
                                                memory_order_acquire)) {
        return PARKED;
    }
    /* A wake came in while we were deciding: take it. */
    atomic_fetch_and_explicit(wflags, ~TR__W_WAKE, memory_order_acq_rel);
    return PARK_RETRY;
}

/* What a muted or suspended actor waits on: the receiver of its first held
 * send while it holds one, else the actor whose reply it awaits. */
static uint64_t
waits_for(tr__actor *a)
{
    tr__msg *h = tr__held(tr__own_of(a));

    if (h != NULL) {
        return tr__ref_pack(h->to);
    }
    tr__ext *x = tr__more(tr__own_of(a));

    if (x != NULL && x->kind == TR__AW_ASK && !x->ready) {
        return tr__ref_pack(x->target) | TR__EDGE_AWAIT;
    }
    return 0;
}

void
tr__waits_reset(tr__actor *a)
{
    uint64_t want = waits_for(a);

    /* relaxed: an answerer's CAS may have cleared it already (the common
     * case: then there is nothing to store). seq_cst store: as the stores
     * before a cycle walk (in_cycle). */
    if (atomic_load_explicit(&a->muted_on, memory_order_relaxed) != want) {
        atomic_store_explicit(&a->muted_on, want, memory_order_seq_cst);
    }
}

void
tr__edge_move(tr__actor *asker, const tr__msg *req, tr_ref to)
{
    uint64_t edge = tr__ref_pack(req->to) | TR__EDGE_AWAIT;

    /* seq_cst: the edge is what cycle walks load (seq_cst). Only an edge
     * that still names this request's receiver changes: the asker may
     * have timed out and moved on, or be muted (an edge without the
     * await bit, which only its owner sets and clears). */
    if (asker != NULL) {
        atomic_compare_exchange_strong_explicit(
            &asker->muted_on, &edge,
            tr_ref_is_none(to) ? 0 : tr__ref_pack(to) | TR__EDGE_AWAIT,
            memory_order_seq_cst, memory_order_relaxed);
    }
}

bool
tr__mute(tr_runtime *rt, tr__actor *a, uint64_t *consumed, uint32_t freed)
{
    const tr__own *o = tr__own_of(a);

    park_prepare(rt, a, consumed, freed);
    for (;;) {
        tr__actor *t;
        park_result r;
        uint64_t first;

        if (tr__outbox_flush(rt, a)) {
            break;
        }
        t = tr__lookup(rt, tr__held(o)->to);
        if (t == NULL) {
            continue; /* it just ended; the next flush dead-letters */
        }
        first = tr__ref_pack(tr__held(o)->to);
        /* seq_cst: our half of in_cycle's Dekker pair. */
        atomic_store_explicit(&a->muted_on, first, memory_order_seq_cst);
        if (!add_waiter(t, tr__ref_of(rt, a), NULL)) {
            sched_yield(); /* no memory for a record: poll instead */
            continue;
        }
        if (tr__outbox_flush(rt, a)) {
            break;
        }
        if (tr__in_cycle(rt, tr__ref_pack(tr__ref_of(rt, a)), first)) {
            force_first(rt, a);
            continue;
        }
        r = park_try(a);
        if (r == PARKED) {
            return true;
        }
        if (r == PARK_SYS) {
            /* A system message (a stop) waits: do not park over it. Still
             * holding, the caller ends the turn, and the next one handles
             * it; its wake may already have been taken as a retry. */
            break;
        }
    }
    tr__waits_reset(a);
    return false;
}

bool
tr__park(tr_runtime *rt, tr__actor *a, uint64_t *consumed, uint32_t freed)
{
    park_result r;

    /* Nothing else queued: go idle like any actor; the answer it awaits
     * schedules it (cheaper than parking with MUTE and being woken). */
    if (!(tr__own_of(a)->lflags & (TR__L_MUTE_HELD | TR__L_WAIT_HELD)) &&
        tr__mbox_release_idle(&a->mb, *consumed)) {
        tr__mnode *chain = tr__mbox_grab_waiters(&a->mb);

        *consumed = 0;
        tr__wake_chain(rt, &chain, TR__WAKE_ALL); /* as turn_end, idle */
        return true;
    }
    park_prepare(rt, a, consumed, freed);
    while ((r = park_try(a)) == PARK_RETRY) {
    }
    return r == PARKED;
}

/* ---- Public sends ------------------------------------------------------ */

tr_status
tr__check_send(tr_runtime *rt, uint32_t type, const void *data, size_t len)
{
    if ((data == NULL && len > 0) || type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    if (len > rt->cfg.max_payload) {
        return TR_EMSGSIZE;
    }
    return TR_OK;
}

tr_cx *
tr__current_cx(tr_runtime *rt)
{
    tr__worker *w = tr__worker_self();

    if (w != NULL && tr__worker_exec(w) == rt->exec) {
        return *tr__worker_user(w);
    }
    return NULL;
}

tr__actor *
tr__current_actor(tr_runtime *rt)
{
    tr_cx *cx = tr__current_cx(rt);

    /* A handler first: the thread-actor check costs workers nothing. */
    return cx ? cx->self : tr__thread_self(rt);
}

tr_status
tr__send_msg(tr_runtime *rt, tr__actor *self, const tr__own *so, tr__msg *m)
{
    tr_status st;

    if (self == NULL) {
        st = atomic_load_explicit(&rt->state, memory_order_acquire) !=
                     TR__RT_RUNNING
                 ? TR_ESHUTDOWN
                 : tr__deliver(rt, NULL, m, TR__FROM_THREAD);
    } else if (so->lflags & TR__L_THREAD) {
        /* A thread actor is a thread: it blocks rather than mutes. */
        st = tr__deliver(rt, self, m, TR__FROM_THREAD);
    } else if (tr__held(so) != NULL) {
        /* Something is held: keep send order by queueing behind it. */
        st = so->ext->n >= rt->cfg.outbox_limit ? TR_EFULL : hold(rt, self, m);
    } else {
        st = tr__deliver(rt, self, m, TR__FROM_ACTOR);
    }
    if (st == TR_EFULL || st == TR_ETIMEDOUT || st == TR_ESHUTDOWN ||
        st == TR_ENOMEM) {
        m->free_fn = NULL; /* a moved buffer stays the caller's */
        tr__msg_free(rt, m);
    }
    return st;
}

static tr_status
send_copy(tr_runtime *rt, tr__actor *self, const tr__own *so, tr_ref from,
          tr_ref to, uint32_t type, const void *data, size_t len)
{
    tr_status st = tr__check_send(rt, type, data, len);
    tr__msg *m;

    if (st != TR_OK) {
        return st;
    }
    m = tr__msg_new(rt, len);
    if (m == NULL) {
        return TR_ENOMEM;
    }
    m->type = type;
    m->from = from;
    m->to = to;
    if (len > 0) {
        memcpy(m->data, data, len);
    }
    return tr__send_msg(rt, self, so, m);
}

tr_status
tr_send_cx(tr_cx *cx, tr_ref to, uint32_t type, const void *data, size_t len)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return send_copy(cx->rt, cx->self, cx->own, cx->ref, to, type, data, len);
}

tr_status
tr_send_rt(tr_runtime *rt, tr_ref to, uint32_t type, const void *data,
           size_t len)
{
    tr__actor *self;

    if (rt == NULL) {
        return TR_EINVAL;
    }
    self = tr__current_actor(rt);
    return send_copy(rt, self, tr__own_or_null(self),
                     self ? tr__ref_of(rt, self) : TR_NOREF, to, type, data,
                     len);
}

static tr_status
send_move(tr_runtime *rt, tr__actor *self, const tr__own *so, tr_ref from,
          tr_ref to, uint32_t type, void **bufp, size_t len, tr_free_fn free_fn)
{
    tr_status st;
    tr__msg *m;

    if (bufp == NULL || *bufp == NULL || free_fn == NULL) {
        return TR_EINVAL;
    }
    st = tr__check_send(rt, type, *bufp, len);
    if (st != TR_OK) {
        return st;
    }
    m = tr__msg_new(rt, 0);
    if (m == NULL) {
        return TR_ENOMEM;
    }
    m->type = type;
    m->from = from;
    m->to = to;
    m->data = *bufp;
    m->len = len;
    m->free_fn = free_fn;
    st = tr__send_msg(rt, self, so, m);
    if (tr__taken(st)) {
        *bufp = NULL;
    }
    return st;
}

tr_status
tr_send_move_cx(tr_cx *cx, tr_ref to, uint32_t type, void **bufp, size_t len,
                tr_free_fn free_fn)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return send_move(cx->rt, cx->self, cx->own, cx->ref, to, type, bufp, len,
                     free_fn);
}

tr_status
tr_send_move_rt(tr_runtime *rt, tr_ref to, uint32_t type, void **bufp,
                size_t len, tr_free_fn free_fn)
{
    tr__actor *self;

    if (rt == NULL) {
        return TR_EINVAL;
    }
    self = tr__current_actor(rt);
    return send_move(rt, self, tr__own_or_null(self),
                     self ? tr__ref_of(rt, self) : TR_NOREF, to, type, bufp,
                     len, free_fn);
}

tr_status
tr__answer(tr_runtime *rt, tr__actor *self, const tr__msg *req, tr_status st,
           const void *data, size_t len)
{
    tr__msg *r = tr__msg_new(rt, len);

    if (r == NULL) {
        return TR_ENOMEM;
    }
    r->type = TR_MSG_REPLY;
    r->status = st;
    r->corr = req->corr;
    r->from = req->to; /* self: its ref as the asker named it */
    r->to = req->from;
    r->flags = req->flags & (TR__MF_AWAITED | TR__MF_TRACKED);
    if (len > 0) {
        memcpy(r->data, data, len);
    }
    if (r->flags & TR__MF_AWAITED) {
        /* The asker is suspended: its system lane, never held. It waits on
         * no one once this is sent. */
        tr__actor *asker = tr__lookup(rt, r->to);

        tr__edge_move(asker, req, TR_NOREF);
        st = tr__deliver_sys_to(rt, asker, r);
        if (st != TR_OK) {
            tr__dead_letter(rt, r, st);
        }
        return st;
    }
    return self ? tr__send_msg(rt, self, tr__own_of(self), r)
                : tr__deliver(rt, NULL, r, TR__TRY);
}

/* Checks that the handler may answer the message it handles, once. */
static tr_status
answer_check(const tr_cx *cx)
{
    if (cx == NULL || cx->msg == NULL || tr_ref_is_none(cx->msg->from) ||
        cx->msg->type >= TR_MSG_RESERVED) {
        return TR_EINVAL; /* nothing to reply to, or a hook's message */
    }
    return cx->replied && tr__is_request(cx->msg) ? TR_ESTATE : TR_OK;
}

/* The status of an answer sent: an asker that is gone (its answer
 * dead-lettered) is news, not the replier's failure, so `return
 * tr_reply(...)` does not fail the actor for it. */
static tr_status
answered(tr_cx *cx, tr_status st)
{
    cx->replied = st != TR_ENOMEM && st != TR_EFULL;
    return st == TR_EDEAD ? TR_DROPPED : st;
}

tr_status
tr_reply(tr_cx *cx, const void *data, size_t len)
{
    tr_status st = answer_check(cx);

    if (st != TR_OK) {
        return st;
    }
    if (data == NULL && len > 0) {
        return TR_EINVAL;
    }
    if (len > cx->rt->cfg.max_payload) {
        return TR_EMSGSIZE;
    }
    return answered(cx,
                    tr__answer(cx->rt, cx->self, cx->msg, TR_OK, data, len));
}

tr_status
tr_reply_error(tr_cx *cx, tr_status error)
{
    tr_status st = answer_check(cx);

    if (st != TR_OK) {
        return st;
    }
    if (error >= 0) {
        return TR_EINVAL;
    }
    return answered(cx, tr__answer(cx->rt, cx->self, cx->msg, error, NULL, 0));
}

tr_status
tr__forward(tr_cx *cx, tr_ref to, uint64_t deadline)
{
    const tr__msg *req;
    tr__msg *m;
    tr_status st;

    if (cx == NULL || cx->msg == NULL || cx->msg->type >= TR_MSG_RESERVED) {
        return TR_EINVAL; /* nothing to forward, or a hook's message */
    }
    req = cx->msg;
    if (cx->replied && tr__is_request(req)) {
        return TR_ESTATE;
    }
    m = tr__msg_new(cx->rt, req->len);
    if (m == NULL) {
        return TR_ENOMEM;
    }
    m->type = req->type;
    m->from = req->from; /* the reply goes straight to the asker */
    m->to = to;
    m->corr = req->corr;
    m->deadline = req->deadline;
    if (deadline != 0 && (m->deadline == 0 || deadline < m->deadline)) {
        m->deadline = deadline;
    }
    m->flags = req->flags;
    if (req->len > 0) {
        memcpy(m->data, req->data, req->len);
    }
    if (m->flags & TR__MF_AWAITED) {
        /* the asker now waits on `to` */
        tr__edge_move(tr__lookup(cx->rt, req->from), req, to);
    }
    st = tr__send_msg(cx->rt, cx->self, cx->own, m);
    /* Taken (even if then dead-lettered, which answers the asker): the
     * obligation moved on with it. */
    cx->replied = tr__taken(st);
    return st;
}

tr_status
tr_forward(tr_cx *cx, tr_ref to)
{
    return tr__forward(cx, to, 0);
}

tr_status
tr_msg_status(const tr_cx *cx)
{
    return cx->msg != NULL && cx->msg->type == TR_MSG_REPLY ? cx->msg->status
                                                            : TR_OK;
}

uint64_t
tr_msg_corr(const tr_cx *cx)
{
    return cx->msg != NULL ? cx->msg->corr : 0;
}

/* ---- Ask and wait ------------------------------------------------------ */

/* What a waiting thread and its reply port share. Two references: the
 * thread's and the port's (dropped in its terminate hook). */
typedef struct ask_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    tr_status status;
    void *buf;
    size_t len;
    _Atomic uint32_t refs;
} ask_wait;

typedef ask_wait *ask_ptr;

typedef struct port {
    ask_wait *w;
} port;

static void
ask_put(ask_wait *w)
{
    /* acq_rel: the last holder frees after seeing the other's writes. */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        tr__free(w);
    }
}

/* Ends the wait with `st` and the reply, unless it already ended (timed
 * out, or answered); returns whether this call ended it. */
static bool
ask_finish(ask_wait *w, tr_status st, const void *data, size_t len)
{
    bool first;

    pthread_mutex_lock(&w->lock);
    first = !w->done;
    if (first) {
        w->done = true;
        if (st == TR_OK && len != w->len) {
            st = TR_EBADMSG;
        }
        if (st == TR_OK && len > 0) {
            memcpy(w->buf, data, len);
        }
        w->status = st;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return first;
}

static tr_status
port_init(tr_cx *cx, port *self, const ask_ptr *w)
{
    (void)cx;
    self->w = *w;
    return TR_OK;
}

static tr_status
port_reply(tr_cx *cx, port *self, const void *data)
{
    if (!ask_finish(self->w, cx->msg->status, data, cx->msg->len)) {
        /* Late: the caller gave up. Dead-letter a copy (the handled message
         * itself is freed when this returns). */
        tr__msg *late = tr__msg_new(cx->rt, cx->msg->len);

        if (late != NULL) {
            late->type = cx->msg->type;
            late->from = cx->msg->from;
            late->to = cx->msg->to;
            if (cx->msg->len > 0) {
                memcpy(late->data, data, cx->msg->len);
            }
            tr__dead_letter(cx->rt, late, TR_ETIMEDOUT);
        }
    }
    return tr_exit(cx, 0, NULL);
}

static tr_status
port_terminate(tr_cx *cx, port *self, const tr_reason *why)
{
    (void)cx;
    /* Ended before a reply: stopped by the timed-out waiter (which already
     * decided) or by a shutdown. */
    ask_finish(self->w, why->kind == TR_EXIT_SHUTDOWN ? TR_ESHUTDOWN : TR_EDEAD,
               NULL, 0);
    ask_put(self->w);
    return TR_OK;
}

/* Room for the reply; a second one is dropped and counted. */
static const tr_mailbox_opts port_mailbox = {4, TR_DROP_NEWEST};

TR_ACTOR(tr__port, port, TR_ON_INIT(ask_ptr, port_init),
         TR_ON_BYTES(TR_MSG_REPLY, port_reply),
         TR_ON_TERMINATE(port_terminate));

tr_status
tr_ask_wait(tr_runtime *rt, tr_ref to, uint32_t type, const void *data,
            size_t len, void *reply, size_t reply_len, uint32_t timeout_ms)
{
    ask_wait *w;
    tr_spawn_opts po = {0};
    tr_ref pref;
    tr__msg *m;
    tr_status st;
    pthread_condattr_t ca;
    struct timespec ts;
    uint64_t deadline;

    if (rt == NULL || (reply == NULL && reply_len > 0)) {
        return TR_EINVAL;
    }
    if (tr__current_cx(rt) != NULL) {
        return TR_ESTATE;
    }
    st = tr__check_send(rt, type, data, len);
    if (st != TR_OK) {
        return st;
    }
    w = tr__calloc(1, sizeof *w);
    if (w == NULL) {
        return TR_ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->buf = reply;
    w->len = reply_len;
    atomic_init(&w->refs, 2);
    po.arg = &w;
    po.arg_len = sizeof w;
    po.mailbox = &port_mailbox;
    st = tr_spawn_rt(rt, &tr__port, &po, &pref);
    if (st != TR_OK) {
        atomic_store_explicit(&w->refs, 1, memory_order_relaxed);
        ask_put(w);
        return st;
    }
    m = tr__msg_new(rt, len);
    if (m == NULL) {
        st = TR_ENOMEM;
        goto out_stop;
    }
    m->type = type;
    m->from = pref;
    m->to = to;
    m->corr = 1; /* one request per port: any nonzero id marks a request */
    deadline = tr__now_ns() + (uint64_t)timeout_ms * 1000000u;
    m->deadline = deadline; /* the whole call, send included */
    if (len > 0) {
        memcpy(m->data, data, len);
    }
    st = tr__send_msg(rt, NULL, NULL, m);
    if (st < 0) {
        goto out_stop;
    }
    ts.tv_sec = (time_t)(deadline / 1000000000u);
    ts.tv_nsec = (long)(deadline % 1000000000u);
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (w->done) {
        st = w->status;
    } else {
        w->done = true; /* a late reply is dead-lettered by the port's end */
        st = TR_ETIMEDOUT;
    }
    pthread_mutex_unlock(&w->lock);
    if (st != TR_ETIMEDOUT) {
        ask_put(w);
        return st;
    }
out_stop:
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_mutex_unlock(&w->lock);
    (void)tr_stop_rt(rt, pref);
    ask_put(w);
    return st;
}
