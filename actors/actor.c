/* Actors: messages, spawning, the turn (system lane, held sends, user lane),
 * dispatch to handlers, stopping and ending. */
#include "actors/core.h"

#include <sched.h>
#include <string.h>

/* ---- Messages ---------------------------------------------------------- */

/* A block from l's cache, refilled from its remote list when empty; NULL
 * when both are empty. The caller owns l's cache: l's worker, or an
 * outside thread holding outside_lock. */
static inline tr__msg *
cache_take(tr__local *l)
{
    tr__msg *m;

    if (l->cache == NULL) {
        /* acquire: pairs with the release CAS in tr__msg_free, so each
         * block's link is visible. */
        l->cache =
            (tr__msg *)(uintptr_t)(atomic_exchange_explicit(
                                       &l->remote, 0, memory_order_acquire) &
                                   TR__REMOTE_PTR);
    }
    m = l->cache;
    if (m != NULL) {
        l->cache = (tr__msg *)atomic_load_explicit(&m->node.next,
                                                   memory_order_relaxed);
        __builtin_prefetch(l->cache, 1);
        if (l->ncache > 0) {
            l->ncache--; /* blocks from `remote` were never counted */
        }
    }
    return m;
}

/* A block from the cache outside threads share (see tr__local): the
 * workers refill it with the blocks those threads made (a spawn's init
 * message, a send from main); without it each would be a malloc here and
 * a free on a worker, and the two threads would contend on the
 * allocator's arena lock. Kept out of line: workers never come here. */
static __attribute__((noinline)) tr__msg *
outside_take(tr_runtime *rt)
{
    tr__msg *m;

    pthread_mutex_lock(&rt->outside_lock);
    m = cache_take(&rt->outside);
    pthread_mutex_unlock(&rt->outside_lock);
    return m;
}

/* Sets up block m, taken from cache l (NULL: none was taken), as a message
 * of len bytes: a small one from the allocator if m is NULL, a large one
 * always. NULL without memory. */
static tr__msg *
msg_setup(tr__msg *m, const tr__local *l, size_t len)
{
    bool small = len <= TR__MSG_SMALL;

    if (m == NULL) {
        m = tr__alloc(sizeof *m + (small ? TR__MSG_SMALL : len));
        if (m == NULL) {
            return NULL;
        }
    }
    /* Field by field, not memset: for this fixed size the compiler emits
     * a string store whose start-up cost was half of this function. All
     * of them: the assertion after tr__msg (core.h) flags a new one. */
    atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
    m->type = 0;
    m->status = TR_OK;
    m->from = TR_NOREF;
    m->to = TR_NOREF;
    m->corr = 0;
    m->deadline = 0;
    m->len = (uint32_t)len;
    m->small = small;
    m->flags = 0;
    m->owner = small ? l->index : 0;
    m->data = m->inline_;
    m->free_fn = NULL;
    return m;
}

tr__msg *
tr__msg_new(tr_runtime *rt, size_t len)
{
    tr__local *l = tr__local_here(rt);
    tr__msg *m = NULL;

    if (len <= TR__MSG_SMALL) {
        if (l == NULL) {
            l = &rt->outside;
            m = outside_take(rt);
        } else {
            m = cache_take(l);
        }
    }
    return msg_setup(m, l, len);
}

void
tr__msg_free(tr_runtime *rt, tr__msg *m)
{
    tr__local *l;

    if (m->free_fn != NULL) {
        m->free_fn(m->data);
    }
    if (!m->small) {
        tr__free(m);
        return;
    }
    l = tr__local_here(rt);
    if (m->owner != 0 && (l == NULL || m->owner != l->index) &&
        ((uint64_t)(uintptr_t)m & ~TR__REMOTE_PTR) == 0) {
        /* Another worker's block, or the outside threads': back to it,
         * while its list has room. */
        tr__local *o =
            m->owner > rt->cfg.workers ? &rt->outside : &rt->wc[m->owner - 1];
        uint64_t top = atomic_load_explicit(&o->remote, memory_order_relaxed);

        while ((top >> TR__REMOTE_SHIFT) < TR__REMOTE_MAX) {
            uint64_t next =
                (uint64_t)(uintptr_t)m |
                (((top >> TR__REMOTE_SHIFT) + 1) << TR__REMOTE_SHIFT);

            atomic_store_explicit(
                &m->node.next, (tr__mnode *)(uintptr_t)(top & TR__REMOTE_PTR),
                memory_order_relaxed);
            /* release: publishes the link to the owner's acquire. */
            if (atomic_compare_exchange_weak_explicit(&o->remote, &top, next,
                                                      memory_order_release,
                                                      memory_order_relaxed)) {
                return;
            }
        }
        /* Its home's list is full: below, it joins this worker's cache if
         * there is room (a worker that frees more blocks than it makes,
         * such as skynet's parents, then stops feeding the allocator). */
    }
    if (l != NULL && l->ncache < TR__MSG_CACHE) {
        atomic_store_explicit(&m->node.next, (tr__mnode *)l->cache,
                              memory_order_relaxed);
        m->owner = l->index; /* a homeless block joins */
        l->cache = m;
        l->ncache++;
        return;
    }
    tr__free(m);
}

void
tr__msg_cache_drain(tr__local *l)
{
    tr__msg *lists[2] = {
        l->cache, (tr__msg *)(uintptr_t)(atomic_load_explicit(
                                             &l->remote, memory_order_acquire) &
                                         TR__REMOTE_PTR)};

    for (int i = 0; i < 2; i++) {
        while (lists[i] != NULL) {
            tr__msg *m = lists[i];

            lists[i] = (tr__msg *)atomic_load_explicit(&m->node.next,
                                                       memory_order_relaxed);
            tr__free(m);
        }
    }
    l->cache = NULL;
    l->ncache = 0;
    atomic_store_explicit(&l->remote, 0, memory_order_relaxed);
}

/* ---- Behaviors --------------------------------------------------------- */

const tr_handler *
tr__find_row(const tr_behavior *b, uint32_t type)
{
    for (uint32_t i = 0; i < b->nhandlers; i++) {
        if (b->handlers[i].type == type) {
            return &b->handlers[i];
        }
    }
    return NULL;
}

static bool
behavior_ok(const tr_behavior *b)
{
    if (b->nhandlers > 0 && b->handlers == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < b->nhandlers; i++) {
        if (b->handlers[i].fn == NULL) {
            return false;
        }
    }
    return true;
}

/* ---- Spawning ---------------------------------------------------------- */

/* Wakes every waiter in the shared list. Any thread (grabbing is atomic and
 * the records are then ours). */
static void
wake_shared(tr_runtime *rt, tr__actor *a)
{
    tr__mnode *chain = tr__mbox_grab_waiters(&a->mb);

    if (chain != NULL) { /* most turns end with none: no call then */
        tr__wake_chain(rt, &chain, TR__WAKE_ALL);
    }
}

tr_status
tr__spawn(tr_runtime *rt, tr__actor *parent, const tr_behavior *b,
          const tr_spawn_opts *o, uint8_t lflags, void *given, tr__child *child,
          tr_ref *out)
{
    static const tr_spawn_opts none = {0};
    const tr_handler *init;
    uint32_t capacity, policy, gen, state;
    tr__local *l;
    bool outside;
    tr__actor *a;
    tr__own *own;
    tr__msg *m;
    tr__ext *ext = NULL;
    void *self_state = given;
    bool inline_state =
        given == NULL && b != NULL && b->state_size <= TR__STATE_INLINE;
    tr_status st;

    if (b == NULL || out == NULL || !behavior_ok(b)) {
        return TR_EINVAL;
    }
    o = o ? o : &none;
    if (o->mailbox != NULL) {
        capacity = o->mailbox->capacity;
        policy = (uint32_t)o->mailbox->overflow;
        if (capacity == 0) {
            return TR_EINVAL;
        }
    } else {
        capacity = rt->cfg.mailbox_capacity;
        policy = (uint32_t)rt->cfg.overflow;
    }
    if (capacity > TR_MAILBOX_MAX_CAPACITY || policy > TR_FAIL ||
        (o->arg == NULL && o->arg_len > 0) || (o->link && parent == NULL)) {
        return TR_EINVAL;
    }
    init = tr__find_row(b, TR_MSG_INIT);
    if ((init == NULL && o->arg_len > 0) ||
        (init != NULL && init->size != TR_SIZE_ANY &&
         init->size != o->arg_len)) {
        return TR_EINVAL;
    }
    if (o->arg_len > rt->cfg.max_payload) {
        return TR_EMSGSIZE;
    }
    /* Outside threads stop spawning when draining starts; handlers may
     * spawn while draining, not once actors are being stopped. */
    state = atomic_load_explicit(&rt->state, memory_order_acquire);
    if (state >= (parent ? TR__RT_STOPPING : TR__RT_DRAINING)) {
        return TR_ESHUTDOWN;
    }
    l = tr__local_here(rt);
    outside = l == NULL;
    if (parent == NULL && outside) {
        tr__exec_pace(rt->exec);
    }
    if (given == NULL && !inline_state &&
        (self_state = tr__calloc(1, b->state_size)) == NULL) {
        return TR_ENOMEM;
    }
    if (o->link) {
        st = tr__link_prepare(parent, &ext);
        if (st != TR_OK) {
            goto fail;
        }
    }
    if (child != NULL && ext == NULL && (ext = tr__ext_new()) == NULL) {
        st = TR_ENOMEM;
        goto fail;
    }
    /* The slot and the init message's block from the caller's caches: an
     * outside thread takes its shared caches' lock once for both. */
    if (outside) {
        l = &rt->outside;
        pthread_mutex_lock(&rt->outside_lock);
    }
    st = tr__slot_alloc(rt, l, &a);
    m = st == TR_OK && o->arg_len <= TR__MSG_SMALL ? cache_take(l) : NULL;
    if (outside) {
        pthread_mutex_unlock(&rt->outside_lock);
    }
    if (st == TR_OK && (m = msg_setup(m, l, o->arg_len)) == NULL) {
        tr__slot_release(rt, a);
        st = TR_ENOMEM;
    }
    if (st != TR_OK) {
        goto fail;
    }
    if (o->arg_len > 0) {
        memcpy(m->data, o->arg, o->arg_len);
    }
    /* Waiters that registered with the slot's previous actor after its last
     * look: wake them so they find it gone. */
    wake_shared(rt, a);
    own = tr__own_of(a);
    if (inline_state && b->state_size <= TR__STATE_SMALL) {
        memset(own->small_state, 0, TR__STATE_SMALL);
    } else if (inline_state) {
        memset(tr__state_area(own), 0, TR__STATE_INLINE);
    } else {
        memcpy(own->small_state, &self_state, sizeof self_state);
        lflags |= TR__L_STATE_PTR;
    }
    own->beh = b;
    /* release: see tr__own.policy. */
    atomic_store_explicit(&own->policy, (uint8_t)policy, memory_order_release);
    own->lflags =
        (uint8_t)(lflags | (policy == TR_DROP_OLDEST ? TR__L_DROP_OLDEST : 0));
    own->ext = ext;
    if (child != NULL) {
        ext->child = child;
    }
    atomic_store_explicit(&own->wflags, 0, memory_order_relaxed);
    atomic_store_explicit(&a->muted_on, 0, memory_order_relaxed);
    gen = atomic_load_explicit(&a->gen, memory_order_relaxed);
    m->type = TR__SYS_INIT;
    m->from = parent ? tr__ref_of(rt, parent) : TR_NOREF;
    m->to = tr__ref_of(rt, a);
    *out = m->to;
    /* The init message is in the mailbox from the start, so the mailbox
     * counts the actor as scheduled: no sender can schedule it before the
     * call below, which runs it after the link commit. */
    tr__mbox_open(&a->mb, &own->sys, gen, capacity, &m->node);
    /* seq_cst: release lets shutdown's walk see a fully set up actor, and
     * this store with the state load below is one half of a Dekker pair
     * with shutdown (it stores STOPPING, then walks `life`): a spawn that
     * raced past the first state check is either seen by the walk or sees
     * STOPPING itself. */
    atomic_store_explicit(&own->life, TR__LIFE_ALIVE, memory_order_seq_cst);
    if (o->link) {
        /* Both sides before it runs: its end, even in init, signals us. */
        tr__link_commit(parent, ext, m->from, m->to);
    }
    tr__exec_schedule(rt->exec, &a->task);
    TR__COUNT(rt, spawned, 1);
    if (atomic_load_explicit(&rt->state, memory_order_seq_cst) >=
        TR__RT_STOPPING) {
        /* Shutdown's walk may have passed this slot: stop it ourselves (a
         * second stop, if the walk saw it too, changes nothing). */
        static const tr_reason why = {TR_EXIT_SHUTDOWN, 0, "runtime shutdown"};

        (void)tr__send_sys(rt, *out, TR__SYS_STOP, &why, sizeof why);
    }
    return TR_OK;

fail:
    tr__ext_free(ext);
    if (self_state != given) {
        tr__free(self_state);
    }
    return st;
}

tr_status
tr_spawn_cx(tr_cx *cx, const tr_behavior *b, const tr_spawn_opts *opts,
            tr_ref *out)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return tr__spawn(cx->rt, cx->self, b, opts, 0, NULL, NULL, out);
}

tr_status
tr_spawn_rt(tr_runtime *rt, const tr_behavior *b, const tr_spawn_opts *opts,
            tr_ref *out)
{
    tr__worker *w;

    if (rt == NULL) {
        return TR_EINVAL;
    }
    /* Called from a handler with the runtime pointer: act as the handler. */
    w = tr__worker_self();
    if (w != NULL && tr__worker_exec(w) == rt->exec &&
        *tr__worker_user(w) != NULL) {
        return tr_spawn_cx(*tr__worker_user(w), b, opts, out);
    }
    return tr__spawn(rt, NULL, b, opts, 0, NULL, NULL, out);
}

/* ---- System messages --------------------------------------------------- */

tr_status
tr__deliver_sys(tr_runtime *rt, tr__msg *m)
{
    return tr__deliver_sys_to(rt, tr__lookup(rt, m->to), m);
}

tr_status
tr__deliver_sys_to(tr_runtime *rt, tr__actor *a, tr__msg *m)
{
    uint64_t w;

    if (a == NULL) {
        return TR_EDEAD;
    }
    switch (tr__mbox_admit_sys(&a->mb, m->to.gen_, &w)) {
    case TR__ADMIT_SCHEDULE:
        tr__mbox_push_sys(&tr__own_of(a)->sys, &m->node);
        tr__exec_schedule(rt->exec, &a->task);
        return TR_OK;
    case TR__ADMIT_OK:
        tr__mbox_push_sys(&tr__own_of(a)->sys, &m->node);
        if (w & TR__MB_MUTE) {
            /* parked muted or suspended: system messages run */
            tr__actor_wake(rt, a);
        }
        return TR_OK;
    case TR__ADMIT_FULL:
        return TR_EFULL;
    default:
        return TR_EDEAD;
    }
}

tr_status
tr__send_sys(tr_runtime *rt, tr_ref to, uint32_t kind, const void *data,
             size_t len)
{
    tr__msg *m;
    tr_status st;

    if (tr__lookup(rt, to) == NULL) {
        return TR_EDEAD;
    }
    m = tr__msg_new(rt, len);
    if (m == NULL) {
        return TR_ENOMEM;
    }
    m->type = kind;
    m->to = to;
    if (len > 0) {
        memcpy(m->data, data, len);
    }
    st = tr__deliver_sys(rt, m);
    if (st != TR_OK) {
        tr__msg_free(rt, m);
    }
    return st;
}

void
tr__actor_wake(tr_runtime *rt, tr__actor *a)
{
    /* acq_rel: acquire pairs with the muting owner's release CAS (its turn
     * is over before we schedule it again); release publishes WAKE to an
     * owner still deciding whether to mute (see tr__mute). */
    _Atomic uint32_t *wflags = &tr__own_of(a)->wflags;
    uint32_t old =
        atomic_fetch_or_explicit(wflags, TR__W_WAKE, memory_order_acq_rel);

    /* The first waker of a parked muted actor schedules it; later ones see
     * WAKE already set and leave it. */
    if (old == TR__W_MUTED) {
        atomic_store_explicit(wflags, 0, memory_order_relaxed);
        tr__exec_schedule(rt->exec, &a->task);
    }
}

static void
set_ending(tr_cx *cx, tr_exit_kind kind, int32_t code, const char *text)
{
    size_t n;

    if ((cx->own->lflags & TR__L_ENDING) && kind != TR_EXIT_KILLED) {
        return; /* the first reason wins, but a kill wins over all */
    }
    cx->own->lflags |= TR__L_ENDING;
    cx->reason.kind = kind;
    cx->reason.code = code;
    /* A bounded copy: no formatting on the path every ending takes. */
    n = text ? strnlen(text, sizeof cx->reason.text - 1) : 0;
    memcpy(cx->reason.text, text ? text : "", n);
    cx->reason.text[n] = '\0';
}

void
tr__run_init(tr_cx *cx, tr__msg *m)
{
    const tr_handler *init = tr__find_row(cx->own->beh, TR_MSG_INIT);
    uint32_t type = m->type;
    tr_status st = TR_OK;

    if (init != NULL) {
        m->type = TR_MSG_INIT; /* what tr_msg_type() shows the hook */
        cx->msg = m;
        st = init->fn(cx, cx->state, m->len ? m->data : NULL);
        cx->msg = NULL;
        m->type = type;
    }
    if (st < 0) {
        set_ending(cx, TR_EXIT_FAILED, st, "init failed");
    } else {
        cx->own->lflags |= TR__L_INITED;
    }
}

void
tr__run_terminate(tr_cx *cx)
{
    const tr_handler *term;

    if (cx->own->lflags & TR__L_INITED) {
        term = tr__find_row(cx->own->beh, TR_MSG_TERMINATE);
        if (term != NULL) {
            cx->msg = NULL;
            (void)term->fn(cx, cx->state, &cx->reason);
        }
        cx->own->lflags &= (uint8_t)~TR__L_INITED;
    }
}

void
tr__exit_with(tr_cx *cx, const tr_reason *why)
{
    set_ending(cx, why->kind, why->code, why->text);
}

static void
handle_sys(tr_cx *cx, tr__msg *m)
{
    switch (m->type) {
    case TR__SYS_INIT:
        tr__run_init(cx, m);
        break;
    case TR__SYS_STOP: {
        tr_reason why;

        memcpy(&why, m->data, sizeof why);
        set_ending(cx, why.kind, why.code, why.text);
        break;
    }
    case TR__SYS_TIMEOUT:
        tr__await_timeout(cx);
        break;
    case TR__SYS_RESTART:
    case TR__SYS_CLOSE:
    case TR__SYS_DRAIN:
        tr__child_sys(cx, m);
        break;
    case TR__SYS_LINK:
    case TR__SYS_UNLINK:
    case TR__SYS_EXIT:
    case TR__SYS_MONITOR:
    case TR__SYS_DEMONITOR:
        tr__bond_sys(cx, m);
        break;
    case TR_MSG_REPLY:
        tr__await_reply(cx, m); /* takes m */
        return;
    default: /* no other kind is sent */
        break;
    }
    tr__msg_free(cx->rt, m);
}

void
tr__turn_sys(tr_cx *cx, uint64_t *consumed)
{
    tr__mnode *s = tr__mbox_take_sys(&cx->own->sys);

    while (s != NULL) {
        tr__mnode *next = atomic_load_explicit(&s->next, memory_order_relaxed);

        *consumed += TR__MB_SYS_ONE;
        handle_sys(cx, (tr__msg *)s);
        s = next;
    }
}

/* ---- Dispatch ---------------------------------------------------------- */

void
tr__finish(tr_cx *cx, tr__msg *m, tr_status st)
{
    tr__actor *a = cx->self;

    if (tr__more(cx->own) != NULL && cx->own->ext->child != NULL &&
        tr__child_finish(cx, m, st)) {
        return; /* kept for a retry after the restart */
    }
    if (tr__is_request(m) && !cx->replied) {
        if (st < 0 || (cx->own->lflags & TR__L_ENDING)) {
            /* Ending while its asker waits: the answer is that it is dead. */
            tr__reply_error(cx->rt, m, TR_EDEAD);
        } else {
            char text[TR__DETAIL];
            int n = snprintf(text, sizeof text,
                             "%s#%u handled type %u without replying",
                             cx->own->beh->name, a->slot, m->type);

            TR__COUNT(cx->rt, unanswered, 1);
            tr__log(cx->rt, TR_LOG_ERROR, "%s", text);
            (void)tr__answer(cx->rt, NULL, m, TR_ENOREPLY, text,
                             (size_t)n + 1 < sizeof text ? (size_t)n + 1
                                                         : sizeof text);
        }
    }
    if (st < 0) {
        char text[TR_REASON_TEXT];

        snprintf(text, sizeof text, "handler for type %u returned %s", m->type,
                 tr_status_name(st));
        set_ending(cx, TR_EXIT_FAILED, st, text);
    }
    tr__msg_free(cx->rt, m);
}

/* Runs row's handler on m, from the start or (cx->point set) from where it
 * suspended. A handler that awaits returns TR_PENDING with its await
 * registered: m is kept for its resumption. */
static inline __attribute__((always_inline)) void
call(tr_cx *cx, const tr_handler *row, tr__msg *m)
{
    tr__actor *a = cx->self;
    tr__ext *x;
    tr_status st;

    cx->msg = m;
    cx->can_await = true;
    tr__watch_begin(cx->l, m->type); /* the watchdog's view: watchdog.c */
    st = row->fn(cx, cx->state, m->len ? m->data : NULL);
    tr__watch_end(cx->l);
    cx->can_await = false;
    cx->msg = NULL;
    cx->point = 0;
    x = tr__more(cx->own);
    if (TR_LIKELY(x == NULL) && st >= 0 && m->corr == 0) {
        /* The common case: a plain message, handled. */
        tr__msg_free(cx->rt, m);
        return;
    }
    if (x != NULL && x->kind != TR__AW_NONE) {
        if (st == TR_PENDING && !(cx->own->lflags & TR__L_ENDING)) {
            x->msg = m;
            x->row = row;
            x->replied = cx->replied;
            return;
        }
        /* It awaited, then returned anyway, or is ending: drop the await
         * (its reply, if one comes, counts as late). */
        if (x->kind == TR__AW_SEND) {
            x->held = NULL; /* stays an ordinary held send */
        }
        x->kind = TR__AW_NONE;
        x->ready = false;
        TR__COUNT(cx->rt, awaiting, (uint64_t)-1);
        tr__waits_reset(a);
    }
    tr__finish(cx, m, st);
}

bool
tr__accept(tr_cx *cx, tr__msg *m)
{
    if (m->type == TR_MSG_DOWN && !tr__down_take(cx, m)) {
        tr__msg_free(cx->rt, m); /* demonitored: it is not wanted */
        return false;
    }
    if (m->type == TR_MSG_REPLY && (m->flags & TR__MF_TRACKED) &&
        !tr__pending_take(cx, m)) {
        /* Its tr_ask() timed out (and was told so) before it came. */
        TR__COUNT(cx->rt, late_replies, 1);
        tr__dead_letter(cx->rt, m, TR_ETIMEDOUT);
        return false;
    }
    if (m->deadline != 0 && tr__coarse_ns() > m->deadline) {
        if (tr__is_request(m)) {
            /* Nobody waits for the answer any more. */
            TR__COUNT(cx->rt, expired, 1);
            tr__reply_error(cx->rt, m, TR_ETIMEDOUT);
            tr__msg_free(cx->rt, m);
        } else {
            /* A plain message past the age its router allowed: shed. */
            TR__COUNT(cx->rt, shed, 1);
            tr__dead_letter(cx->rt, m, TR_ETIMEDOUT);
        }
        return false;
    }
    return true;
}

/* Hands m to its handler; false when it was refused (dead-lettered). */
static inline __attribute__((always_inline)) bool
dispatch(tr_cx *cx, tr__msg *m)
{
    const tr_handler *row;

    /* Only reserved types (replies, DOWN) and messages with a deadline
     * need a look before their handler. */
    if (TR_UNLIKELY(m->deadline != 0 || m->type >= TR_MSG_RESERVED) &&
        !tr__accept(cx, m)) {
        return false;
    }
    row = tr__find_row(cx->own->beh, m->type);
    if (row == NULL) {
        row = tr__find_row(cx->own->beh, TR_MSG_UNHANDLED);
        if (row == NULL) {
            tr__dead_letter(cx->rt, m, TR_EUNHANDLED);
            return false;
        }
    }
    if (row->size != TR_SIZE_ANY && row->size != m->len) {
        tr__dead_letter(cx->rt, m, TR_EBADMSG);
        return false;
    }
    cx->replied = false;
    call(cx, row, m);
    return true;
}

/* Resumes the suspended handler if its await is over. */
static void
resume(tr_cx *cx)
{
    const tr_handler *row;
    tr__msg *m;

    if (tr__await_take(cx, &m, &row)) {
        call(cx, row, m);
    }
}

/* True while the actor takes no user message: a handler of it is
 * suspended, or (supervised) it is terminated, waiting for its restart. */
static bool
suspended(const tr__own *o)
{
    const tr__ext *x = tr__more(o);

    return x != NULL &&
           (x->kind != TR__AW_NONE || (x->child != NULL && x->child->down));
}

/* Whether the actor ends now: it is ending, and not a supervised child
 * that lives on (resumed, or restarting in place). */
static bool
ends(tr_cx *cx)
{
    return (cx->own->lflags & TR__L_ENDING) &&
           (tr__more(cx->own) == NULL || cx->own->ext->child == NULL ||
            !tr__child_intercept(cx));
}

/* ---- Ending ------------------------------------------------------------ */

/* Runs the terminate hook, dead-letters everything the actor still has, and
 * frees its slot. `consumed` is the turn's unreleased mailbox count. */
void
tr__actor_end(tr_cx *cx, uint64_t consumed)
{
    tr_runtime *rt = cx->rt;
    tr__actor *a = cx->self;
    tr_status why =
        cx->reason.kind == TR_EXIT_SHUTDOWN ? TR_ESHUTDOWN : TR_EDEAD;
    uint64_t word;

    tr__mbox_close(&a->mb);
    if (cx->own->lflags & TR__L_DROP_OLDEST) {
        /* A swapper that saw this owner alive finishes before it ends. */
        tr__mbox_quiesce(&a->mb);
    }
    tr__run_terminate(cx);
    if (cx->own->lflags & TR__L_WATCHING) {
        tr__io_actor_end(rt, a); /* before the drain: see actors/io.c */
    }
    tr__bonds_end(cx);
    if (tr__more(cx->own) != NULL && cx->own->ext->child != NULL) {
        tr__child_end(cx);
    }
    tr__outbox_force(rt, a);
    if (cx->own->ext != NULL) {
        /* Waiters in hand: they retry, find the actor dead, and learn. */
        tr__wake_chain(rt, &cx->own->ext->wpriv, TR__WAKE_ALL);
    }
    tr__ext_end(cx);
    if (cx->own->lflags & TR__L_MUTE_HELD) {
        consumed += TR__MB_MUTE;
    }
    if (cx->own->lflags & TR__L_WAIT_HELD) {
        consumed += TR__MB_WAIT;
    }
    word = tr__mbox_add(&a->mb, (uint64_t)0 - consumed);
    /* Admissions that won before the close are counted: wait for each to
     * be pushed, then dead-letter it. */
    while (word & (TR__MB_USER_MASK | TR__MB_SYS_MASK)) {
        tr__mnode *n = tr__actor_pop(a);
        tr__mnode *s = tr__mbox_take_sys(&cx->own->sys);
        uint64_t k = 0;

        if (n != NULL) {
            tr__dead_letter(rt, (tr__msg *)n, why);
            k += TR__MB_USER_ONE;
        }
        while (s != NULL) {
            tr__mnode *next =
                atomic_load_explicit(&s->next, memory_order_relaxed);

            tr__bond_orphan(rt, (tr__msg *)s);
            tr__msg_free(rt, (tr__msg *)s);
            k += TR__MB_SYS_ONE;
            s = next;
        }
        if (k == 0) {
            sched_yield(); /* a producer is between admission and push */
            word = tr__mbox_word(&a->mb);
        } else {
            word = tr__mbox_add(&a->mb, (uint64_t)0 - k);
        }
    }
    wake_shared(rt, a);
    atomic_store_explicit(&a->muted_on, 0, memory_order_relaxed);
    atomic_store_explicit(&cx->own->wflags, 0, memory_order_relaxed);
    if (cx->own->lflags & TR__L_STATE_PTR) {
        tr__free(cx->state);
    }
    cx->state = NULL;
    tr__slot_release(rt, a);
}

/* ---- The turn ---------------------------------------------------------- */

/* Ends a turn: releases its counts and gives the room it made to waiters.
 * Returns true when tokens remain: the actor is still the caller's and has
 * more to do (tr__run requeues it; a thread actor's thread goes on).
 *
 * Waiters get one wake-up per freed slot (n), from those in hand first;
 * those not woken stay in hand (tr__wpriv), and the WAIT token keeps the owner
 * scheduled while any do. A waiter that registered after the release is seen by
 * the has-waiters load that follows it (the Dekker pair in mailbox.c). Two
 * cases wake everyone instead: the owner goes idle (no turn would wake them
 * later), or only WAIT is left (the lane is empty: the room is there, and
 * a waiter woken earlier may never have used its slot). */
static inline __attribute__((always_inline)) bool
turn_release(tr_runtime *rt, tr__actor *a, tr__own *o, uint64_t consumed,
             uint32_t n)
{
    uint64_t word;

    if (o->lflags & TR__L_MUTE_HELD) {
        consumed += TR__MB_MUTE;
        o->lflags &= (uint8_t)~TR__L_MUTE_HELD;
    }
    word = tr__mbox_add(&a->mb, (uint64_t)0 - consumed);
    if (!(word & TR__MB_TOKENS)) {
        /* Idle, and no longer ours: WAIT was not held, so none are in hand. */
        wake_shared(rt, a);
        return false;
    }
    if ((word & TR__MB_TOKENS) == TR__MB_WAIT) {
        tr__owner_wake(rt, a, TR__WAKE_ALL);
        o->lflags &= (uint8_t)~TR__L_WAIT_HELD;
        word = tr__mbox_add(&a->mb, (uint64_t)0 - TR__MB_WAIT);
        if (!(word & TR__MB_TOKENS)) {
            wake_shared(rt, a); /* registered since: see the idle case */
            return false;
        }
    } else if (n > 0) {
        tr__owner_wake(rt, a, n);
    }
    /* Still ours (tokens nonzero): settle WAIT with the waiters in hand. */
    if (tr__wpriv(o) != NULL && !(o->lflags & TR__L_WAIT_HELD)) {
        tr__mbox_add(&a->mb, TR__MB_WAIT);
        o->lflags |= TR__L_WAIT_HELD;
    } else if (tr__wpriv(o) == NULL && (o->lflags & TR__L_WAIT_HELD)) {
        o->lflags &= (uint8_t)~TR__L_WAIT_HELD;
        word = tr__mbox_add(&a->mb, (uint64_t)0 - TR__MB_WAIT);
        if (!(word & TR__MB_TOKENS)) {
            wake_shared(rt, a);
            return false;
        }
    }
    return true;
}

bool
tr__turn_release(tr_runtime *rt, tr__actor *a, uint64_t consumed, uint32_t n)
{
    return turn_release(rt, a, tr__own_of(a), consumed, n);
}

/* Whether a turn that has used its budget goes on: while senders wait for
 * room in the actor's mailbox, up to TR__HELD_UP_BUDGETS budgets. Those
 * senders are muted (or blocked) on it; yielding now would let them wake
 * for one slot each and mute again around it, which costs far more than
 * the messages, and they cannot run anyway until it makes room. */
static inline bool
held_up(tr__actor *a, const tr__own *o, uint32_t n, uint32_t budget)
{
    return n < TR__HELD_UP_BUDGETS * budget &&
           (tr__wpriv(o) != NULL || tr__mbox_has_waiters(&a->mb));
}

/* What a turn does next, after async_step. */
typedef enum step {
    STEP_GO,     /* handle user messages */
    STEP_AGAIN,  /* look at the system lane and step again */
    STEP_STOP,   /* end the turn (or the actor, when ending) */
    STEP_PARKED, /* parked muted or suspended: no longer ours */
} step;

/* Stores a turn's copy of the mailbox head back (see tr__run); `head` is
 * NULL for drop-oldest mailboxes, which pop through mb.head itself. */
static inline void
head_back(tr__actor *a, tr__mnode *const *head)
{
    if (head != NULL) {
        tr__mbox_head_back(&a->mb, *head);
    }
}

/* The turn's part for actors with an ext: resuming a handler whose await
 * is over, muting while sends are held, parking while suspended. Muting
 * and parking may hand the actor to another thread, so the turn's head
 * goes back first. */
static step
async_step(tr_cx *cx, tr__mnode *const *head, uint64_t *consumed,
           uint32_t *freed)
{
    tr__actor *a = cx->self;

    tr__ext *x = tr__more(cx->own);

    if (x != NULL && x->ready) {
        resume(cx);
        if (cx->own->lflags & TR__L_ENDING) {
            return STEP_AGAIN; /* the loop's top decides */
        }
    }
    if (tr__held(cx->own) != NULL) {
        head_back(a, head);
        if (tr__mute(cx->rt, a, consumed, *freed)) {
            return STEP_PARKED;
        }
        *freed = 0;
        if (tr__held(cx->own) != NULL) {
            /* A system message kept it from muting: no user message runs;
             * the turn ends and the next one takes that message. */
            return STEP_STOP;
        }
    }
    x = tr__more(cx->own); /* (resume may have made it full) */
    if (x != NULL && x->ready) {
        return STEP_AGAIN; /* an awaited send just went */
    }
    if (suspended(cx->own)) {
        head_back(a, head);
        if (tr__park(cx->rt, a, consumed, *freed)) {
            return STEP_PARKED;
        }
        *freed = 0;
        return STEP_AGAIN; /* a system message waits */
    }
    if (x != NULL && x->child != NULL && x->child->poison != NULL) {
        /* Restarted: the message it failed on first, again. */
        (void)dispatch(cx, tr__child_retry(cx));
        cx->own->ext->child->retrying = NULL;
        return STEP_AGAIN;
    }
    return STEP_GO;
}

void
tr__run(void *ctx, tr__worker *w, tr__task *item)
{
    tr_runtime *rt = ctx;
    tr__actor *a = tr__actor_of_task(item);
    tr_cx cx; /* cx.reason is written by set_ending before any read */
    void **user = tr__worker_user(w);
    uint64_t consumed = 0;
    uint32_t n = 0, freed = 0, handled = 0, budget = rt->cfg.budget;
    bool look = true;
    /* The consumer's head, kept here through the turn (see
     * tr__mbox_pop_at) and stored back before anything that may hand the
     * actor to another thread: muting or parking in async_step, and the
     * turn's end. Drop-oldest mailboxes pop under their lock instead. */
    tr__mnode *head, *const *own_head;
    tr__own *own = tr__own_of(a);

    if (own->lflags & TR__L_THREAD) {
        tr__thread_handoff(a); /* its own thread runs the turn */
        return;
    }
    own_head = (own->lflags & TR__L_DROP_OLDEST) ? NULL : &head;
    head = own_head ? tr__mbox_head(&a->mb) : NULL;
    cx.rt = rt;
    cx.self = a;
    cx.own = own;
    cx.state = tr__state_of(own);
    cx.ref = tr__ref_of(rt, a);
    cx.w = w;
    cx.msg = NULL;
    cx.replied = false;
    cx.can_await = false;
    cx.point = 0;
    cx.await = TR_OK;
    *user = &cx;
    if (tr__tls_local == NULL) {
        /* First turn on this thread: a worker serves one runtime for life. */
        tr__tls_local = &rt->wc[tr__worker_index(w)];
    }
    cx.l = tr__tls_local;
    tr__watch_turn(cx.l, a, own->beh);
    for (;;) {
        tr__mnode *m;

        /* The system lane first, and again whenever something arrived on
         * it (relaxed: a hint; the word counts what is really there), so a
         * stop is handled after the message being handled, not after the
         * budget. */
        if (look || tr__mbox_sys_waits(&own->sys)) {
            tr__turn_sys(&cx, &consumed);
            look = false;
        }
        if ((own->lflags & TR__L_ENDING) && !ends(&cx)) {
            look = true; /* a supervised child lives on */
            continue;
        }
        if (own->ext != NULL && !(own->lflags & TR__L_ENDING)) {
            step st = async_step(&cx, own_head, &consumed, &freed);

            if (st == STEP_PARKED) {
                TR__COUNT(rt, handled, handled);
                goto out;
            }
            if (st == STEP_STOP) {
                break;
            }
            if (st == STEP_AGAIN) {
                look = true;
                continue;
            }
        }
        if (own->lflags & TR__L_ENDING) {
            break;
        }
        if (n >= budget && !held_up(a, own, n, budget)) {
            break;
        }
        m = own_head ? tr__mbox_pop_at(&a->mb, &head)
                     : tr__mbox_pop_locked(&a->mb);
        if (m == NULL) {
            break;
        }
        n++;
        freed++;
        consumed += TR__MB_USER_ONE;
        handled += dispatch(&cx, (tr__msg *)m);
    }
    head_back(a, own_head);
    TR__COUNT(rt, handled, handled);
    if (!(own->lflags & TR__L_ENDING) && tr__more(own) != NULL &&
        own->ext->child != NULL && own->ext->child->draining &&
        !suspended(own) &&
        (tr__mbox_word(&a->mb) & TR__MB_USER_MASK) ==
            (consumed & TR__MB_USER_MASK)) {
        /* Drained (whether the lane ran dry or the budget ended with it
         * empty): it ends; its mailbox is closed to new messages. */
        static const tr_reason drained = {TR_EXIT_SHUTDOWN, 0, "drained"};

        tr__exit_with(&cx, &drained);
    }
    if (own->lflags & TR__L_ENDING) {
        tr__actor_end(&cx, consumed);
        goto out;
    }
    if (turn_release(rt, a, own, consumed, freed)) {
        tr__exec_yield(w, &a->task); /* more to do: after the others */
    }
out:
    *user = NULL;
}

/* ---- Stopping ---------------------------------------------------------- */

/* cx: the caller's turn, or NULL from outside. */
static tr_status
stop(tr_runtime *rt, tr_cx *cx, tr_ref who)
{
    static const tr_reason normal = {TR_EXIT_NORMAL, 0, "stopped"};

    if (cx != NULL && tr_ref_eq(who, cx->ref)) {
        set_ending(cx, normal.kind, normal.code, normal.text);
        return TR_OK;
    }
    return tr__send_sys(rt, who, TR__SYS_STOP, &normal, sizeof normal);
}

tr_status
tr_stop_cx(tr_cx *cx, tr_ref who)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return stop(cx->rt, cx, who);
}

tr_status
tr_stop_rt(tr_runtime *rt, tr_ref who)
{
    tr__worker *w;

    if (rt == NULL) {
        return TR_EINVAL;
    }
    w = tr__worker_self();
    if (w != NULL && tr__worker_exec(w) == rt->exec &&
        *tr__worker_user(w) != NULL) {
        return tr_stop_cx(*tr__worker_user(w), who);
    }
    return stop(rt, NULL, who);
}

tr_status
tr_exit(tr_cx *cx, int32_t code, const char *text)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    set_ending(cx, code == 0 ? TR_EXIT_NORMAL : TR_EXIT_FAILED, code, text);
    return TR_OK;
}

/* ---- Inside a handler -------------------------------------------------- */

tr_ref
tr_self(const tr_cx *cx)
{
    return cx->ref;
}

tr_ref
tr_sender(const tr_cx *cx)
{
    return cx->msg ? cx->msg->from : TR_NOREF;
}

uint32_t
tr_msg_type(const tr_cx *cx)
{
    return cx->msg ? cx->msg->type : 0;
}

size_t
tr_msg_size(const tr_cx *cx)
{
    return cx->msg ? cx->msg->len : 0;
}

tr_runtime *
tr_cx_runtime(const tr_cx *cx)
{
    return cx->rt;
}
