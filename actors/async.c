/* Async handlers: awaiting a reply, a timer or a held send; asks whose
 * reply comes later as a message; deadlines and the actor's one timer;
 * request cycles.
 *
 * A handler suspends by registering what it awaits in the actor's ext
 * record and returning TR_PENDING (the TR_AWAIT_* macros do both). The
 * runtime keeps the message it was handling, parks the actor (its user
 * messages wait; system messages still run it), and calls the same
 * handler again with the same message once the await is over; the
 * TR_ASYNC_BEGIN switch jumps to where it left off. Everything here is
 * owner only: it runs in the actor's own turns. */
#include "actors/core.h"

#include <stdio.h>
#include <string.h>

/* tr_ask()s an actor may have in flight at once. */
#define PENDING_MAX 4096u

tr__ext *
tr__ext_new(void)
{
    tr__ext *x = tr__calloc(1, sizeof *x);

    if (x != NULL) {
        x->full = true;
    }
    return x;
}

tr__ext *
tr__ext_get(tr__actor *a)
{
    tr__own *o = tr__own_of(a);
    tr__ext *x = o->ext;

    if (x == NULL) {
        o->ext = tr__ext_new();
    } else if (!x->full) {
        /* Held sends only so far: grow it (nothing points into it). */
        x = tr__realloc(x, sizeof *x);
        if (x == NULL) {
            return NULL;
        }
        memset((char *)x + TR__EXT_SMALL, 0, sizeof *x - TR__EXT_SMALL);
        x->full = true;
        o->ext = x;
    }
    return o->ext;
}

tr__ext *
tr__ext_outbox(tr__actor *a)
{
    tr__own *o = tr__own_of(a);

    if (o->ext == NULL) {
        /* Most actors that hold sends never need more: a muted producer
         * costs a few words, not the whole record. */
        o->ext = tr__calloc(1, TR__EXT_SMALL);
    }
    return o->ext;
}

uint64_t
tr__new_id(tr_cx *cx)
{
    /* Outside threads ask through tr_ask_wait, whose reply port takes one
     * request only: they need no id. */
    return ((uint64_t)cx->l->index << 48) | ++cx->l->corr_seq;
}

/* The absolute deadline `ms` from now: never early, and late by at most
 * about 0.1 ms (see tr__now_bound_ns), for a fraction of a precise clock
 * read most of the time, since asks are a hot path. Not from the coarse
 * clock: that one can lag by more than its tick on a tickless kernel or a
 * busy host, which would make a deadline early. */
static uint64_t
deadline_in(tr_cx *cx, uint32_t ms)
{
    return tr__now_bound_ns(&cx->l->clock) + (uint64_t)ms * 1000000u;
}

/* An ask's absolute deadline: timeout_ms from now, but no later than that
 * of the request being handled, if it is one (what is left of its time). */
static uint64_t
ask_deadline(tr_cx *cx, uint32_t timeout_ms)
{
    uint64_t d = deadline_in(cx, timeout_ms);
    const tr__msg *m = cx->msg;

    if (m != NULL && tr__is_request(m) && m->deadline != 0 && m->deadline < d) {
        d = m->deadline;
    }
    return d;
}

/* Makes sure the actor's timer fires no later than `deadline`. */
static tr_status
arm(tr_cx *cx, tr__ext *x, uint64_t deadline)
{
    uint64_t now, delay;
    tr__msg *proto;
    tr_status st;
    uint64_t id;

    if (x->armed != 0 && x->armed <= deadline) {
        return TR_OK; /* it fires in time; then re-arms for what is left */
    }
    proto = tr__msg_new(cx->rt, 0);
    if (proto == NULL) {
        return TR_ENOMEM;
    }
    proto->type = TR__SYS_TIMEOUT;
    proto->to = cx->ref;
    now = tr__now_ns();
    /* Rounded up: a timer never fires before the deadline it is set for
     * (one that fires early anyway just re-arms). */
    delay = deadline > now ? (deadline - now + 999999u) / 1000000u : 0;
    st = tr__timers_add(cx->rt->timers,
                        delay > UINT32_MAX ? UINT32_MAX : (uint32_t)delay, 0,
                        proto, &id);
    if (st != TR_OK) {
        tr__msg_free(cx->rt, proto);
        return st;
    }
    x->armed = deadline;
    return TR_OK;
}

/* Checks that an await may start now and gets the ext record. */
static tr_status
await_begin(tr_cx *cx, tr__ext **out)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    if (!cx->can_await) {
        return TR_ESTATE; /* a hook, or not from a handler */
    }
    *out = tr__ext_get(cx->self);
    if (*out == NULL) {
        return TR_ENOMEM;
    }
    (*out)->detail[0] = '\0';
    return TR_OK;
}

/* Registers the await; the handler returns TR_PENDING next. */
static tr_status
suspend(tr_cx *cx, tr__ext *x, tr__await_kind kind, uint32_t point,
        uint64_t deadline)
{
    x->kind = kind;
    x->ready = false;
    x->point = point;
    x->deadline = deadline;
    cx->await = TR_PENDING;
    TR__COUNT(cx->rt, awaiting, 1);
    return TR_PENDING;
}

uint32_t
tr_async_point(const tr_cx *cx)
{
    return cx->point;
}

tr_status
tr_await_status(const tr_cx *cx)
{
    return cx->await;
}

const char *
tr_await_detail(const tr_cx *cx)
{
    return tr__more(cx->own) != NULL ? cx->own->ext->detail : "";
}

/* Writes the chain of waiting actors from `a` back to it into x->detail:
 * "name#slot -> #slot -> ... -> name#slot". Other actors are named by
 * slot only: their behaviour is theirs to read. */
static void
name_cycle(tr_cx *cx, tr__ext *x)
{
    tr__actor *a = cx->self;
    uint64_t self = tr__ref_pack(cx->ref);
    uint64_t at = atomic_load_explicit(&a->muted_on, memory_order_seq_cst) &
                  ~TR__EDGE_AWAIT;
    size_t n;
    int hops = 0;

    n = (size_t)snprintf(x->detail, sizeof x->detail, "%s#%u",
                         cx->own->beh->name, a->slot);
    while (at != 0 && at != self && n < sizeof x->detail) {
        tr_ref r = tr__ref_unpack(cx->rt, at);
        tr__actor *t = tr__lookup(cx->rt, r);

        if (++hops > 6) {
            n += (size_t)snprintf(x->detail + n, sizeof x->detail - n,
                                  " -> ...");
            break;
        }
        n += (size_t)snprintf(x->detail + n, sizeof x->detail - n, " -> #%u",
                              r.slot_);
        at = t ? atomic_load_explicit(&t->muted_on, memory_order_seq_cst) &
                     ~TR__EDGE_AWAIT
               : 0;
    }
    if (n < sizeof x->detail) {
        snprintf(x->detail + n, sizeof x->detail - n, " -> %s#%u",
                 cx->own->beh->name, a->slot);
    }
}

/* Builds a request from the handler's actor. */
static tr__msg *
request_new(tr_cx *cx, tr_ref to, uint32_t type, const void *data, size_t len,
            uint64_t corr, uint64_t deadline, uint8_t flags)
{
    tr__msg *m = tr__msg_new(cx->rt, len);

    if (m == NULL) {
        return NULL;
    }
    m->type = type;
    m->from = cx->ref;
    m->to = to;
    m->corr = corr;
    m->deadline = deadline;
    m->flags = flags;
    if (len > 0) {
        memcpy(m->data, data, len);
    }
    return m;
}

tr_status
tr__await_prepare(tr_cx *cx, tr_ref to, void *reply, size_t reply_len,
                  uint32_t timeout_ms, uint64_t *corr, uint64_t *deadline)
{
    tr__ext *x;
    tr_status st = await_begin(cx, &x);

    if (st != TR_OK) {
        return cx ? (cx->await = st) : st;
    }
    if (reply == NULL && reply_len > 0) {
        return cx->await = TR_EINVAL;
    }
    /* Before the edge's store: the clock read overlaps its wait. */
    *deadline = ask_deadline(cx, timeout_ms);
    /* seq_cst: our half of the cycle walk's Dekker pair (see in_cycle in
     * send.c): of two actors closing a cycle at once, one sees it. */
    atomic_store_explicit(&cx->self->muted_on,
                          tr__ref_pack(to) | TR__EDGE_AWAIT,
                          memory_order_seq_cst);
    if (tr__in_cycle(cx->rt, tr__ref_pack(cx->ref), tr__ref_pack(to))) {
        name_cycle(cx, x);
        tr__waits_reset(cx->self);
        tr__log(cx->rt, TR_LOG_ERROR, "ask would close a cycle: %s", x->detail);
        return cx->await = TR_ECYCLE;
    }
    *corr = tr__new_id(cx);
    st = arm(cx, x, *deadline);
    if (st != TR_OK) {
        tr__waits_reset(cx->self);
        return cx->await = st;
    }
    return TR_OK;
}

tr_status
tr__await_send_request(tr_cx *cx, uint32_t point, tr__msg *m, void *reply,
                       size_t reply_len)
{
    tr__ext *x = tr__more(cx->own);
    uint64_t deadline = m->deadline; /* m is the receiver's once sent */
    tr_status st;

    x->target = m->to;
    x->corr = m->corr;
    x->buf = reply;
    x->len = reply_len;
    x->kind = TR__AW_ASK; /* before the send: a held request mutes us */
    st = tr__send_msg(cx->rt, cx->self, cx->own, m);
    if (!tr__taken(st)) {
        x->kind = TR__AW_NONE;
        tr__waits_reset(cx->self);
        return cx->await = st;
    }
    return suspend(cx, x, TR__AW_ASK, point, deadline);
}

tr_status
tr_await_ask(tr_cx *cx, uint32_t point, tr_ref to, uint32_t type,
             const void *data, size_t len, void *reply, size_t reply_len,
             uint32_t timeout_ms)
{
    tr__msg *m;
    uint64_t deadline, corr;
    tr_status st;

    if (cx == NULL) {
        return TR_EINVAL;
    }
    st = tr__check_send(cx->rt, type, data, len);
    if (st != TR_OK) {
        return cx->await = st;
    }
    st = tr__await_prepare(cx, to, reply, reply_len, timeout_ms, &corr,
                           &deadline);
    if (st != TR_OK) {
        return st;
    }
    m = request_new(cx, to, type, data, len, corr, deadline, TR__MF_AWAITED);
    if (m == NULL) {
        tr__waits_reset(cx->self);
        return cx->await = TR_ENOMEM;
    }
    return tr__await_send_request(cx, point, m, reply, reply_len);
}

tr_status
tr_await_sleep(tr_cx *cx, uint32_t point, uint32_t ms)
{
    tr__ext *x;
    uint64_t deadline;
    tr_status st = await_begin(cx, &x);

    if (st != TR_OK) {
        return cx ? (cx->await = st) : st;
    }
    deadline = deadline_in(cx, ms);
    st = arm(cx, x, deadline);
    if (st != TR_OK) {
        return cx->await = st;
    }
    return suspend(cx, x, TR__AW_SLEEP, point, deadline);
}

tr_status
tr_await_send(tr_cx *cx, uint32_t point, tr_ref to, uint32_t type,
              const void *data, size_t len, uint32_t timeout_ms)
{
    tr__ext *x;
    uint64_t deadline;
    tr_status st = await_begin(cx, &x);

    if (st != TR_OK) {
        return cx ? (cx->await = st) : st;
    }
    deadline = deadline_in(cx, timeout_ms);
    /* Armed first: once the message is held, a failure to arm could not
     * take it back. */
    st = arm(cx, x, deadline);
    if (st == TR_OK) {
        st = tr_send_cx(cx, to, type, data, len);
    }
    if (st != TR_PENDING) {
        return cx->await = st;
    }
    x->held = x->tail;
    return suspend(cx, x, TR__AW_SEND, point, deadline);
}

tr_status
tr_ask(tr_cx *cx, tr_ref to, uint32_t type, const void *data, size_t len,
       uint32_t timeout_ms, uint64_t *corr_out)
{
    tr__ext *x;
    tr__msg *m;
    uint64_t deadline, corr;
    tr_status st;

    if (cx == NULL || corr_out == NULL) {
        return TR_EINVAL;
    }
    st = tr__check_send(cx->rt, type, data, len);
    if (st != TR_OK) {
        return st;
    }
    x = tr__ext_get(cx->self);
    if (x == NULL) {
        return TR_ENOMEM;
    }
    if (x->npend >= PENDING_MAX) {
        return TR_ELIMIT;
    }
    if (!tr__grow((void **)&x->pend, x->npend, &x->cap, sizeof *x->pend)) {
        return TR_ENOMEM;
    }
    deadline = ask_deadline(cx, timeout_ms);
    corr = tr__new_id(cx);
    st = arm(cx, x, deadline);
    if (st != TR_OK) {
        return st;
    }
    m = request_new(cx, to, type, data, len, corr, deadline, TR__MF_TRACKED);
    if (m == NULL) {
        return TR_ENOMEM;
    }
    st = tr__send_msg(cx->rt, cx->self, cx->own, m);
    if (!tr__taken(st)) {
        return st;
    }
    x->pend[x->npend++] = (tr__pending){corr, deadline, to, false};
    *corr_out = corr;
    return st;
}

/* ---- The runtime's side ------------------------------------------------ */

void
tr__await_reply(tr_cx *cx, tr__msg *m)
{
    tr__ext *x = tr__more(cx->own);

    if (x == NULL || x->kind != TR__AW_ASK || x->ready || x->corr != m->corr) {
        /* Its ask timed out, or the actor stopped awaiting it. */
        TR__COUNT(cx->rt, late_replies, 1);
        tr__dead_letter(cx->rt, m, TR_ETIMEDOUT);
        return;
    }
    x->status = m->status;
    if (m->status < 0) {
        /* An error reply's payload is its text. */
        size_t n = m->len < sizeof x->detail ? m->len : sizeof x->detail - 1;

        memcpy(x->detail, m->data, n);
        x->detail[n] = '\0';
    } else if (m->len != x->len) {
        x->status = TR_EBADMSG;
        snprintf(x->detail, sizeof x->detail, "reply of %u bytes, %zu expected",
                 m->len, x->len);
    } else if (m->len > 0) {
        memcpy(x->buf, m->data, m->len);
    }
    x->ready = true;
    tr__msg_free(cx->rt, m);
}

bool
tr__pending_take(tr_cx *cx, const tr__msg *m)
{
    tr__ext *x = tr__more(cx->own);

    for (uint32_t i = 0; x != NULL && i < x->npend; i++) {
        if (x->pend[i].corr != m->corr) {
            continue;
        }
        if (x->pend[i].expired && !(m->flags & TR__MF_SYNTH)) {
            return false; /* the real reply, after its made-up one */
        }
        x->pend[i] = x->pend[--x->npend];
        return true;
    }
    return false;
}

/* Queues a made-up TR_ETIMEDOUT reply for an expired tr_ask(). */
static void
expire_pending(tr_cx *cx, tr__pending *p)
{
    tr__msg *r = tr__msg_new(cx->rt, 0);

    if (r == NULL) {
        return; /* stays pending: the next firing tries again */
    }
    r->type = TR_MSG_REPLY;
    r->status = TR_ETIMEDOUT;
    r->corr = p->corr;
    r->from = p->to;
    r->to = cx->ref;
    r->flags = TR__MF_TRACKED | TR__MF_SYNTH;
    p->expired = true;
    (void)tr__push_forced(cx->rt, cx->self, r);
}

void
tr__await_timeout(tr_cx *cx)
{
    tr__ext *x = tr__more(cx->own);
    uint64_t now = tr__now_ns(), next = UINT64_MAX;

    if (x == NULL) {
        return;
    }
    x->armed = 0;
    if (x->kind != TR__AW_NONE && !x->ready) {
        if (now >= x->deadline) {
            x->status = x->kind == TR__AW_SLEEP ? TR_OK : TR_ETIMEDOUT;
            if (x->kind == TR__AW_SEND) {
                /* Not sent after all: out of the outbox, as if it never
                 * went (the caller was told TR_PENDING, now this). */
                tr__outbox_remove(cx->self, x->held);
                tr__msg_free(cx->rt, x->held);
                x->held = NULL;
            }
            x->ready = true;
        } else {
            next = x->deadline;
        }
    }
    for (uint32_t i = 0; i < x->npend; i++) {
        tr__pending *p = &x->pend[i];

        if (p->expired) {
            continue;
        }
        if (now >= p->deadline) {
            expire_pending(cx, p);
        }
        if (!p->expired && p->deadline < next) {
            next = p->deadline;
        }
    }
    if (next != UINT64_MAX && arm(cx, x, next) != TR_OK) {
        /* No timer: try again soon rather than never time out. */
        (void)arm(cx, x, now + 10000000u);
    }
}

bool
tr__await_take(tr_cx *cx, tr__msg **m, const tr_handler **row)
{
    tr__ext *x = tr__more(cx->own);

    if (x == NULL || !x->ready) {
        return false;
    }
    x->ready = false;
    x->kind = TR__AW_NONE;
    TR__COUNT(cx->rt, awaiting, (uint64_t)-1);
    tr__waits_reset(cx->self);
    cx->point = x->point;
    cx->await = x->status;
    cx->replied = x->replied;
    *m = x->msg;
    *row = x->row;
    x->msg = NULL;
    return true;
}

void
tr__ext_free(tr__ext *x)
{
    if (x != NULL && x->full) {
        tr__free(x->pend);
        tr__free(x->links);
        tr__free(x->watchers);
        tr__free(x->mons);
        tr__free(x->child);
    }
    tr__free(x);
}

void
tr__ext_end(tr_cx *cx)
{
    tr__ext *x = tr__more(cx->own);

    if (x != NULL && x->kind != TR__AW_NONE) {
        TR__COUNT(cx->rt, awaiting, (uint64_t)-1);
    }
    if (x != NULL && x->msg != NULL) {
        /* Ended while suspended: its asker learns now. */
        if (!x->replied) {
            tr__reply_error(cx->rt, x->msg, TR_EDEAD);
        }
        tr__msg_free(cx->rt, x->msg);
    }
    tr__ext_free(cx->own->ext); /* full or small */
    cx->own->ext = NULL;
}
