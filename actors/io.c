/* I/O glue: watches of file descriptors by actors, on top of the reactor
 * (runtime/reactor.h). See docs/internals/io.md for the design.
 *
 * A watch is a record in a table of chunks that are freed only with the
 * runtime, so the reactor thread and a readiness message may read a record
 * whose watch has ended: its state word then shows another generation or
 * CLOSED, and they leave it alone. Its state word:
 *
 *   bits  0..31  generation (bumped when the record is recycled; never 0)
 *   bits 32..39  pending: TR_IO_* bits seen while a message was queued
 *   bit  40      QUEUED: a readiness message exists (queued, being handled
 *                or being delivered); its holder alone writes `payload`
 *   bit  41      CLOSED: the watch was removed; no new message starts
 *
 * The record returns to the free list when it is CLOSED and not QUEUED;
 * whoever makes that transition recycles it. A readiness message points at
 * the record's payload and carries `on_release` as its free function, so
 * the runtime calls it when the message is done with (after its handler,
 * or when it is dead-lettered): that is where the watch is re-armed and a
 * merged follow-up is sent, with no hook in the dispatch path.
 *
 * Locks: io->lock guards the table, the free and retry lists, the owner
 * lists and the fd map. Each record's lock serializes the epoll_ctl calls
 * on its descriptor with changes of `fd` and `events`, so a re-arm never
 * touches a descriptor after tr_unwatch() returned (the caller may have
 * closed it and its number may name another file). Order: io->lock, then
 * a record's lock. The reactor's event path takes no lock: one CAS. */
#include "actors/core.h"
#include "runtime/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define W_GEN_MASK    UINT64_C(0xFFFFFFFF)
#define W_PEND_SHIFT  32
#define W_PEND_MASK   (UINT64_C(0xFF) << W_PEND_SHIFT)
#define W_QUEUED      (UINT64_C(1) << 40)
#define W_CLOSED      (UINT64_C(1) << 41)
#define IO_EVENTS_IN  (TR_IO_READ | TR_IO_WRITE | TR_IO_RDHUP)
#define IO_CHUNK_BITS 10
#define IO_CHUNK      (1u << IO_CHUNK_BITS)
/* 4,096 chunks of 1,024 records: the most watches alive at once. */
#define IO_MAX_CHUNKS 4096u
/* How soon the reactor retries a readiness message it had no memory for. */
#define IO_RETRY_MS 10

typedef struct tr__io tr__io;

typedef struct wrec {
    /* Any thread; see the layout above. */
    _Atomic uint64_t state;
    /* Set by tr_watch_fd before the state store (release) that publishes
     * the record's generation; read-only while the watch lives. */
    tr__io *io;
    tr_ref owner;
    uint32_t type;
    uint32_t flags;
    int fd0; /* the descriptor as watched, for payloads */
    uint32_t slot;
    pthread_mutex_t lock; /* see the top of this file */
    int fd;               /* under lock; -1 once another watch reused the
                             descriptor's number (the kernel forgot ours) */
    uint32_t events;      /* under lock: TR_IO_* interest */
    uint32_t onext;       /* io->lock: next watch of the owner, slot + 1 */
    uint32_t lnext;       /* io->lock: next on the free or retry list */
    tr_io_event payload;  /* the QUEUED holder only */
} wrec;

struct tr__io {
    tr_runtime *rt;
    tr__reactor *reactor;
    pthread_mutex_t lock;
    /* Published with release under lock; the reactor and releases load
     * them with acquire (a key or a message names a slot whose chunk was
     * published before the key was registered). */
    _Atomic(wrec *) chunks[IO_MAX_CHUNKS];
    uint32_t high;       /* lock: slots ever handed out */
    uint32_t free_head;  /* lock: slot + 1, through lnext */
    uint32_t retry_head; /* lock: slot + 1, through lnext */
    uint32_t *by_owner;  /* lock: actor slot -> first watch, slot + 1 */
    uint32_t nby_owner;
    uint32_t *by_fd; /* lock: fd -> its live watch, slot + 1 */
    uint32_t nby_fd;
    _Atomic uint64_t alive; /* written under lock; stats read it (relaxed) */
};

static void deliver(tr__io *io, wrec *w, uint32_t ev);

/* ---- Records ----------------------------------------------------------- */

static wrec *
rec_at(tr__io *io, uint32_t slot)
{
    /* acquire: pairs with the release that published the chunk. */
    wrec *c = atomic_load_explicit(&io->chunks[slot >> IO_CHUNK_BITS],
                                   memory_order_acquire);

    return &c[slot & (IO_CHUNK - 1)];
}

static uint64_t
key_of(const wrec *w, uint64_t state)
{
    return ((uint64_t)(w->slot + 1) << 32) | (state & W_GEN_MASK);
}

static tr_watch
handle_of(const wrec *w, uint64_t state)
{
    return (tr_watch){key_of(w, state)};
}

static uint32_t
to_epoll(uint32_t events, uint32_t flags)
{
    return ((events & TR_IO_READ) ? EPOLLIN : 0) |
           ((events & TR_IO_WRITE) ? EPOLLOUT : 0) |
           ((events & TR_IO_RDHUP) ? EPOLLRDHUP : 0) |
           ((flags & TR_WATCH_EDGE) ? EPOLLET : EPOLLONESHOT);
}

static uint32_t
from_epoll(uint32_t ev)
{
    return ((ev & (EPOLLIN | EPOLLPRI)) ? TR_IO_READ : 0) |
           ((ev & EPOLLOUT) ? TR_IO_WRITE : 0) |
           ((ev & EPOLLRDHUP) ? TR_IO_RDHUP : 0) |
           ((ev & EPOLLHUP) ? TR_IO_HUP : 0) |
           ((ev & EPOLLERR) ? TR_IO_ERROR : 0);
}

/* io->lock held. A free record, or NULL (*st says why). */
static wrec *
rec_alloc(tr__io *io, tr_status *st)
{
    uint32_t slot;

    if (io->free_head != 0) {
        wrec *w = rec_at(io, io->free_head - 1);

        io->free_head = w->lnext;
        return w;
    }
    if (io->high == IO_MAX_CHUNKS * IO_CHUNK) {
        *st = TR_ELIMIT;
        return NULL;
    }
    slot = io->high;
    if ((slot & (IO_CHUNK - 1)) == 0) {
        wrec *c = tr__calloc(IO_CHUNK, sizeof *c);

        if (c == NULL) {
            *st = TR_ENOMEM;
            return NULL;
        }
        for (uint32_t i = 0; i < IO_CHUNK; i++) {
            c[i].slot = slot + i;
            c[i].io = io;
            atomic_init(&c[i].state, 1); /* generation 1, free */
            pthread_mutex_init(&c[i].lock, NULL);
        }
        /* release: see tr__io.chunks. */
        atomic_store_explicit(&io->chunks[slot >> IO_CHUNK_BITS], c,
                              memory_order_release);
    }
    io->high++;
    return rec_at(io, slot);
}

/* io->lock held. Back to the free list under a new generation, so stale
 * keys and handles no longer match. */
static void
rec_free_locked(tr__io *io, wrec *w)
{
    /* relaxed: the generation only changes under io->lock, held here. */
    uint64_t gen =
        atomic_load_explicit(&w->state, memory_order_relaxed) & W_GEN_MASK;

    gen = (gen + 1) & W_GEN_MASK;
    /* release: a reader that sees the new generation sees the record
     * quiet; nobody holds it (CLOSED and not QUEUED). */
    atomic_store_explicit(&w->state, gen ? gen : 1, memory_order_release);
    w->lnext = io->free_head;
    io->free_head = w->slot + 1;
}

static void
rec_free(tr__io *io, wrec *w)
{
    pthread_mutex_lock(&io->lock);
    rec_free_locked(io, w);
    pthread_mutex_unlock(&io->lock);
}

/* The QUEUED holder gives the record up without re-arming (its owner is
 * gone); recycles it if it was closed meanwhile. */
static void
rec_drop(tr__io *io, wrec *w)
{
    /* acq_rel: release orders our payload reads before the next holder's
     * writes; acquire sees a CLOSED set by the remover. */
    uint64_t old = atomic_fetch_and_explicit(
        &w->state, ~(W_QUEUED | W_PEND_MASK), memory_order_acq_rel);

    if (old & W_CLOSED) {
        rec_free(io, w);
    }
}

/* ---- Readiness messages ------------------------------------------------ */

/* The free function of a readiness message: runs when the message is done
 * with, normally on the owner's worker right after its handler. */
static void
on_release(void *data)
{
    wrec *w = (wrec *)(void *)((char *)data - offsetof(wrec, payload));
    tr__io *io = w->io;
    tr_cx *cx = tr__current_cx(io->rt);
    uint64_t old, next;
    uint32_t again;

    if (cx != NULL && (cx->own->lflags & TR__L_ENDING)) {
        /* Its owner is ending (it exited in the handler): no re-arm, no
         * follow-up; its end removes the watch. */
        rec_drop(io, w);
        return;
    }
    pthread_mutex_lock(&w->lock);
    /* acquire: pairs with the reactor's CAS, so pending bits are current. */
    old = atomic_load_explicit(&w->state, memory_order_acquire);
    if (!(old & W_CLOSED) && !(w->flags & TR_WATCH_EDGE) && w->fd >= 0 &&
        !(old & W_PEND_MASK)) {
        /* Level mode: re-arm while we still hold QUEUED. If the descriptor
         * is ready now, the reactor sees QUEUED and leaves its bits in
         * pending, which the CAS below takes as a follow-up. */
        (void)tr__reactor_mod(io->reactor, w->fd, to_epoll(w->events, w->flags),
                              key_of(w, old));
    }
    do {
        again = (old & W_CLOSED) ? 0 : (uint32_t)((old & W_PEND_MASK) >> 32);
        next = again ? old & ~W_PEND_MASK : old & ~(W_QUEUED | W_PEND_MASK);
        /* acq_rel: release orders the handler's payload reads before the
         * next holder's writes; acquire as above. */
    } while (!atomic_compare_exchange_weak_explicit(
        &w->state, &old, next, memory_order_acq_rel, memory_order_acquire));
    pthread_mutex_unlock(&w->lock);
    if (again != 0) {
        deliver(io, w, again); /* still QUEUED: ours */
    } else if (old & W_CLOSED) {
        rec_free(io, w);
    }
}

/* Puts w (QUEUED, ours) on the retry list with `ev` and wakes the reactor,
 * which tries again soon. */
static void
retry_later(tr__io *io, wrec *w, uint32_t ev)
{
    w->payload.events = ev;
    pthread_mutex_lock(&io->lock);
    w->lnext = io->retry_head;
    io->retry_head = w->slot + 1;
    pthread_mutex_unlock(&io->lock);
    tr__reactor_wake(io->reactor);
}

/* The QUEUED holder sends w's readiness `ev` to its owner, past the
 * capacity of its user lane if need be (one message per watch at most). */
static void
deliver(tr__io *io, wrec *w, uint32_t ev)
{
    tr_runtime *rt = io->rt;
    tr__msg *m = tr__msg_new(rt, 0);
    tr__actor *a;
    tr__admit r = TR__ADMIT_DEAD;
    uint64_t word;
    int err = 0;

    if (m == NULL) {
        retry_later(io, w, ev);
        return;
    }
    if (ev & TR_IO_ERROR) {
        socklen_t len = sizeof err;

        pthread_mutex_lock(&w->lock);
        if (w->fd < 0 ||
            getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = 0; /* not a socket, or no longer ours */
        }
        pthread_mutex_unlock(&w->lock);
    }
    /* relaxed: we hold QUEUED, so the generation cannot change. */
    w->payload.watch =
        handle_of(w, atomic_load_explicit(&w->state, memory_order_relaxed));
    w->payload.fd = w->fd0;
    w->payload.events = ev;
    w->payload.error = err;
    m->type = w->type;
    m->to = w->owner;
    m->data = &w->payload;
    m->len = sizeof w->payload;
    m->free_fn = on_release;
    a = tr__lookup(rt, w->owner);
    if (a != NULL) {
        r = tr__mbox_admit(&a->mb, w->owner.gen_, true, &word);
    }
    if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
        /* The push publishes the payload (release) to the owner. */
        tr__mbox_push(&a->mb, &m->node);
        if (r == TR__ADMIT_SCHEDULE) {
            tr__exec_schedule(rt->exec, &a->task);
        }
        TR__COUNT(rt, sent, 1);
        return;
    }
    /* The owner has ended (its end removes the watch): a dead letter like
     * any message to a dead actor, and no re-arm. */
    m->free_fn = NULL;
    tr__dead_letter(rt, m, TR_EDEAD);
    rec_drop(io, w);
}

/* Reactor thread: one ready registration. */
static void
on_event(void *ctx, uint64_t key, uint32_t events)
{
    tr__io *io = ctx;
    wrec *w = rec_at(io, (uint32_t)(key >> 32) - 1);
    uint32_t ev = from_epoll(events);
    /* acquire: pairs with tr_watch_fd's release store, so the record's
     * fields are those of the generation we match. */
    uint64_t old = atomic_load_explicit(&w->state, memory_order_acquire);
    uint64_t next;

    do {
        if ((old & W_GEN_MASK) != (key & W_GEN_MASK) || (old & W_CLOSED)) {
            return; /* a removed watch, or a stale registration */
        }
        next = (old & W_QUEUED) ? old | ((uint64_t)ev << W_PEND_SHIFT)
                                : old | W_QUEUED;
        /* acq_rel: acquire pairs with the release that cleared QUEUED (the
         * last handler is done with the payload); release publishes the
         * pending bits to the releaser. */
    } while (!atomic_compare_exchange_weak_explicit(
        &w->state, &old, next, memory_order_acq_rel, memory_order_acquire));
    if (!(old & W_QUEUED)) {
        deliver(io, w, ev);
    }
}

/* Reactor thread, after each batch: retries messages that had no memory. */
static int
on_idle(void *ctx)
{
    tr__io *io = ctx;
    uint32_t head;

    pthread_mutex_lock(&io->lock);
    head = io->retry_head;
    io->retry_head = 0;
    pthread_mutex_unlock(&io->lock);
    while (head != 0) {
        wrec *w = rec_at(io, head - 1);

        head = w->lnext;
        /* acquire: pairs with close_locked's release of CLOSED. */
        if (atomic_load_explicit(&w->state, memory_order_acquire) & W_CLOSED) {
            rec_drop(io, w);
        } else {
            deliver(io, w, w->payload.events);
        }
    }
    pthread_mutex_lock(&io->lock);
    head = io->retry_head;
    pthread_mutex_unlock(&io->lock);
    return head != 0 ? IO_RETRY_MS : -1;
}

/* ---- The runtime's I/O state ------------------------------------------- */

/* rt's I/O state, created (with the reactor thread) on first use. */
static tr_status
io_get(tr_runtime *rt, tr__io **out)
{
    /* acquire: pairs with the release below; the state is set up. */
    tr__io *io = atomic_load_explicit(&rt->io, memory_order_acquire);
    tr_status st = TR_OK;

    if (io != NULL) {
        *out = io;
        return TR_OK;
    }
    pthread_mutex_lock(&rt->life_lock);
    /* relaxed: it is only stored under life_lock, held here. */
    io = atomic_load_explicit(&rt->io, memory_order_relaxed);
    if (io == NULL) {
        io = tr__calloc(1, sizeof *io);
        if (io == NULL) {
            st = TR_ENOMEM;
            goto out;
        }
        io->rt = rt;
        pthread_mutex_init(&io->lock, NULL);
        st = tr__reactor_new(&io->reactor, on_event, on_idle, io);
        if (st != TR_OK) {
            pthread_mutex_destroy(&io->lock);
            tr__free(io);
            io = NULL;
            goto out;
        }
        /* release: see above. */
        atomic_store_explicit(&rt->io, io, memory_order_release);
    }
out:
    pthread_mutex_unlock(&rt->life_lock);
    *out = io;
    return st;
}

/* Grows *arr (of *n entries) to hold index i; false when out of memory. */
static bool
grow(uint32_t **arr, uint32_t *n, uint32_t i)
{
    uint32_t nn = *n ? *n : 64;
    uint32_t *p;

    if (i < *n) {
        return true;
    }
    while (nn <= i) {
        nn *= 2;
    }
    p = tr__realloc(*arr, (size_t)nn * sizeof *p);
    if (p == NULL) {
        return false;
    }
    memset(p + *n, 0, (size_t)(nn - *n) * sizeof *p);
    *arr = p;
    *n = nn;
    return true;
}

/* io->lock held: the live watch `h` names, or NULL. */
static wrec *
lookup(tr__io *io, tr_watch h)
{
    uint32_t slot = (uint32_t)(h.id_ >> 32);
    wrec *w;
    uint64_t st;

    if (slot == 0 || slot > io->high) {
        return NULL;
    }
    w = rec_at(io, slot - 1);
    /* relaxed: generation and CLOSED change only under io->lock, held. */
    st = atomic_load_explicit(&w->state, memory_order_relaxed);
    if ((st & W_GEN_MASK) != (h.id_ & W_GEN_MASK) || (st & W_CLOSED)) {
        return NULL;
    }
    return w;
}

/* io->lock held: removes live watch w. After this no re-arm touches its
 * descriptor and the reactor starts no message for it. */
static void
close_locked(tr__io *io, wrec *w)
{
    uint32_t *link = &io->by_owner[w->owner.slot_];
    uint64_t old;

    pthread_mutex_lock(&w->lock);
    if (w->fd >= 0) {
        /* EBADF or ENOENT when the caller closed it first: nothing to do. */
        (void)tr__reactor_del(io->reactor, w->fd);
        if (io->by_fd[w->fd] == w->slot + 1) {
            io->by_fd[w->fd] = 0;
        }
        w->fd = -1;
    }
    /* acq_rel: release publishes CLOSED to the reactor and the releaser;
     * acquire sees whether a message holds the record. */
    old = atomic_fetch_or_explicit(&w->state, W_CLOSED, memory_order_acq_rel);
    pthread_mutex_unlock(&w->lock);
    while (*link != w->slot + 1) {
        link = &rec_at(io, *link - 1)->onext;
    }
    *link = w->onext;
    /* relaxed: one writer at a time (io->lock); stats read a count. */
    atomic_store_explicit(
        &io->alive, atomic_load_explicit(&io->alive, memory_order_relaxed) - 1,
        memory_order_relaxed);
    if (!(old & W_QUEUED)) {
        rec_free_locked(io, w);
    }
}

/* ---- Public calls ------------------------------------------------------ */

static tr_status
from_errno(int e)
{
    switch (e) {
    case ENOMEM:
    case ENOSPC: /* /proc/sys/fs/epoll/max_user_watches */
        return TR_ENOMEM;
    case EEXIST:
        return TR_ESTATE;
    default: /* EBADF, EPERM (a regular file), EINVAL, ELOOP */
        return TR_EINVAL;
    }
}

/* io->lock held: registers fd for w. Another live watch on the same number
 * means either the same open file (EEXIST: refused) or a file closed
 * without tr_unwatch() whose number was reused; that stale watch then
 * loses its descriptor, under its lock, so it never touches ours. */
static int
register_fd(tr__io *io, wrec *w, int fd, uint64_t key)
{
    wrec *old = io->by_fd[fd] ? rec_at(io, io->by_fd[fd] - 1) : NULL;
    int e;

    if (old != NULL) {
        pthread_mutex_lock(&old->lock);
    }
    e = tr__reactor_add(io->reactor, fd, to_epoll(w->events, w->flags), key);
    if (e == 0 && old != NULL) {
        old->fd = -1;
    }
    if (old != NULL) {
        pthread_mutex_unlock(&old->lock);
    }
    if (e == 0) {
        io->by_fd[fd] = w->slot + 1;
    }
    return e;
}

tr_status
tr_watch_fd(tr_cx *cx, int fd, uint32_t events, uint32_t type, uint32_t flags,
            tr_watch *out)
{
    tr__actor *a;
    tr__io *io;
    wrec *w;
    uint64_t state;
    tr_status st = TR_ENOMEM;
    int e;

    if (cx == NULL || out == NULL || fd < 0 || (events & IO_EVENTS_IN) == 0 ||
        (events & ~IO_EVENTS_IN) != 0 || (flags & ~TR_WATCH_EDGE) != 0 ||
        type >= TR_MSG_RESERVED) {
        return TR_EINVAL;
    }
    a = cx->self;
    /* Not open: refused before the fd map grows to a bogus number. */
    if ((cx->own->lflags & TR__L_DROP_OLDEST) || fcntl(fd, F_GETFD) < 0) {
        return TR_EINVAL;
    }
    if (cx->own->lflags & TR__L_ENDING) {
        return TR_ESTATE;
    }
    st = io_get(cx->rt, &io);
    if (st != TR_OK) {
        return st;
    }
    pthread_mutex_lock(&io->lock);
    if (!grow(&io->by_owner, &io->nby_owner, a->slot) ||
        !grow(&io->by_fd, &io->nby_fd, (uint32_t)fd)) {
        st = TR_ENOMEM;
        goto out;
    }
    w = rec_alloc(io, &st);
    if (w == NULL) {
        goto out;
    }
    w->owner = cx->ref;
    w->type = type;
    w->flags = flags;
    w->fd0 = fd;
    w->fd = fd;
    w->events = events;
    /* relaxed: a free record; nobody else holds it (io->lock). */
    state = atomic_load_explicit(&w->state, memory_order_relaxed);
    /* release: the reactor's acquire of this generation sees the fields
     * above (epoll_ctl is no synchronization the memory model knows). */
    atomic_store_explicit(&w->state, state, memory_order_release);
    e = register_fd(io, w, fd, key_of(w, state));
    if (e != 0) {
        w->fd = -1;
        w->lnext = io->free_head; /* never seen by anyone: same generation */
        io->free_head = w->slot + 1;
        st = from_errno(e);
        goto out;
    }
    w->onext = io->by_owner[a->slot];
    io->by_owner[a->slot] = w->slot + 1;
    /* relaxed: as in close_locked. */
    atomic_store_explicit(
        &io->alive, atomic_load_explicit(&io->alive, memory_order_relaxed) + 1,
        memory_order_relaxed);
    cx->own->lflags |= TR__L_WATCHING;
    *out = handle_of(w, state);
    st = TR_OK;
out:
    pthread_mutex_unlock(&io->lock);
    return st;
}

/* io->lock held on TR_OK: the caller's live watch h in *out. */
static tr_status
own_watch(tr_cx *cx, tr_watch h, tr__io **iop, wrec **out)
{
    tr__io *io;
    wrec *w;

    if (cx == NULL) {
        return TR_EINVAL;
    }
    /* acquire: as in io_get. */
    io = atomic_load_explicit(&cx->rt->io, memory_order_acquire);
    if (io == NULL) {
        return TR_ENOENT;
    }
    pthread_mutex_lock(&io->lock);
    w = lookup(io, h);
    if (w == NULL || !tr_ref_eq(w->owner, cx->ref)) {
        pthread_mutex_unlock(&io->lock);
        return w == NULL ? TR_ENOENT : TR_EINVAL;
    }
    *iop = io;
    *out = w;
    return TR_OK;
}

tr_status
tr_watch_modify(tr_cx *cx, tr_watch h, uint32_t events)
{
    tr__io *io;
    wrec *w;
    tr_status st;

    if ((events & IO_EVENTS_IN) == 0 || (events & ~IO_EVENTS_IN) != 0) {
        return TR_EINVAL;
    }
    st = own_watch(cx, h, &io, &w);
    if (st != TR_OK) {
        return st;
    }
    pthread_mutex_lock(&w->lock);
    w->events = events;
    /* Level mode with a message out: the re-arm after it takes the new
     * interest. Otherwise change the registration now (edge mode reports
     * what is ready under the new interest at once). */
    /* acquire: pairs with the reactor's CAS that set QUEUED; the
     * generation (relaxed below) is stable under io->lock. */
    if (w->fd >= 0 &&
        ((w->flags & TR_WATCH_EDGE) ||
         !(atomic_load_explicit(&w->state, memory_order_acquire) & W_QUEUED))) {
        (void)tr__reactor_mod(
            io->reactor, w->fd, to_epoll(events, w->flags),
            key_of(w, atomic_load_explicit(&w->state, memory_order_relaxed)));
    }
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_unlock(&io->lock);
    return TR_OK;
}

tr_status
tr_unwatch(tr_cx *cx, tr_watch h)
{
    tr__io *io;
    wrec *w;
    tr_status st = own_watch(cx, h, &io, &w);

    if (st != TR_OK) {
        return st;
    }
    close_locked(io, w);
    pthread_mutex_unlock(&io->lock);
    return TR_OK;
}

/* ---- Hooks for the runtime --------------------------------------------- */

void
tr__io_actor_end(tr_runtime *rt, tr__actor *a)
{
    tr__io *io = atomic_load_explicit(&rt->io, memory_order_acquire);

    if (io == NULL) {
        return;
    }
    pthread_mutex_lock(&io->lock);
    while (io->by_owner[a->slot] != 0) {
        close_locked(io, rec_at(io, io->by_owner[a->slot] - 1));
    }
    pthread_mutex_unlock(&io->lock);
}

uint64_t
tr__io_watches(tr_runtime *rt)
{
    tr__io *io = atomic_load_explicit(&rt->io, memory_order_acquire);

    /* relaxed: a count for stats, exact but not a snapshot. */
    return io ? atomic_load_explicit(&io->alive, memory_order_relaxed) : 0;
}

void
tr__io_stop(tr_runtime *rt)
{
    tr__io *io = atomic_load_explicit(&rt->io, memory_order_acquire);

    if (io != NULL) {
        /* Every actor ended, each after a close_locked() under io->lock
         * (its last epoll_ctl). Taking the lock once orders those calls
         * before the epoll set is closed; shutdown's wait for the actors
         * (a relaxed count) does not. Not held across the join: the
         * reactor thread takes it in on_idle. */
        pthread_mutex_lock(&io->lock);
        pthread_mutex_unlock(&io->lock);
        tr__reactor_free(io->reactor);
        io->reactor = NULL;
    }
}

void
tr__io_free(tr_runtime *rt)
{
    /* relaxed: destroy runs alone, after every thread that used io. */
    tr__io *io = atomic_load_explicit(&rt->io, memory_order_relaxed);

    if (io == NULL) {
        return;
    }
    tr__io_stop(rt);
    for (uint32_t c = 0; c < IO_MAX_CHUNKS; c++) {
        wrec *chunk =
            atomic_load_explicit(&io->chunks[c], memory_order_relaxed);

        if (chunk == NULL) {
            break;
        }
        for (uint32_t i = 0; i < IO_CHUNK; i++) {
            pthread_mutex_destroy(&chunk[i].lock);
        }
        tr__free(chunk);
    }
    pthread_mutex_destroy(&io->lock);
    tr__free(io->by_owner);
    tr__free(io->by_fd);
    tr__free(io);
    atomic_store_explicit(&rt->io, NULL, memory_order_relaxed);
}
