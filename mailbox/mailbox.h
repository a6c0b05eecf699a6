/* The bounded MPSC mailbox: a user lane, a system lane, a waiter list, and
 * the one word that counts them and decides who schedules the owner.
 *
 * Layout of `word` (all producers and the consumer; CAS/RMW only):
 *
 *   bits  0..23  user messages admitted and not yet released by the consumer
 *   bits 24..43  system messages admitted and not yet released
 *   bit  44      MUTE: the owner is muted and holds this token meanwhile
 *   bit  45      DEAD: the owner is ending; no admission succeeds
 *   bit  46      WAIT: the owner holds woken-later waiters (see core.h)
 *   bit  47      CLOSED: the owner takes no new user message (it drains what
 *                it has); forced admissions and system messages still go in
 *   bits 48..63  epoch: low bits of the owner's generation
 *
 * Invariants:
 * - The user count never exceeds the capacity, except by admissions made
 *   with `force` (a cycle of muted actors is broken that way, counted).
 * - The owner is scheduled (queued, running, or parked muted) exactly when
 *   the token bits (user, system, MUTE, WAIT) are nonzero. Whoever moves them
 * from zero to nonzero schedules the owner; the consumer moves them back to
 * zero only at the end of a turn, and then does not run the owner again.
 * - Admission is the linearization point of a send: an admission that saw
 *   the right epoch and no DEAD bit is counted, so the ending owner waits for
 *   its message (the producer pushes it right after) and dead-letters it.
 *   A stale producer's CAS fails on the changed epoch, so a message never
 *   reaches a later owner of the same slot.
 *
 * Concurrency: push/admit/add_waiter from any thread; pop/take/release only
 * from the thread running the owner. The user lane is an intrusive MPSC
 * queue after Vyukov's, without his resting node: an empty lane has a NULL
 * tail, and the producer that finds it so links its node as the head (one
 * exchange per push, wait-free for producers); the consumer that takes the
 * last node CASes the tail back to NULL. A pop can see a push in flight
 * (exchanged, not yet linked) and then reports empty while the word still
 * counts the message, so consumers trust the word, not a NULL pop. The
 * system lane (tr__lane, kept by the owner apart from the mailbox) and the
 * waiter list are Treiber stacks that the consumer takes whole. */
#ifndef TR_MAILBOX_H
#define TR_MAILBOX_H

#include "common/common.h"

/* A node of any lane: embedded first in messages and waiter records. */
typedef struct tr__mnode {
    _Atomic(struct tr__mnode *) next;
} tr__mnode;

#define TR__MB_USER_ONE    UINT64_C(1)
#define TR__MB_USER_MASK   ((UINT64_C(1) << 24) - 1)
#define TR__MB_SYS_SHIFT   24
#define TR__MB_SYS_ONE     (UINT64_C(1) << TR__MB_SYS_SHIFT)
#define TR__MB_SYS_MASK    (((UINT64_C(1) << 20) - 1) << TR__MB_SYS_SHIFT)
#define TR__MB_MUTE        (UINT64_C(1) << 44)
#define TR__MB_DEAD        (UINT64_C(1) << 45)
#define TR__MB_WAIT        (UINT64_C(1) << 46)
#define TR__MB_CLOSED      (UINT64_C(1) << 47)
#define TR__MB_EPOCH_SHIFT 48
#define TR__MB_TOKENS                                                          \
    (TR__MB_USER_MASK | TR__MB_SYS_MASK | TR__MB_MUTE | TR__MB_WAIT)

typedef struct tr__mailbox {
    /* What senders touch; the owner (tr__actor) keeps it on the line that
     * holds all a sender writes, and the system lane (tr__lane) elsewhere,
     * on a line the consumer polls and producers rarely write. The
     * consumer writes `head` back once a turn (see tr__mbox_pop_at), so
     * producers' RMWs and its pops do not pass the line back and forth on
     * every message. */
    _Atomic uint64_t word;        /* any thread; RMW only, see above */
    _Atomic(tr__mnode *) tail;    /* producers: exchange; consumer: load,
                                     and CAS to NULL when it empties the lane */
    _Atomic(tr__mnode *) waiters; /* senders waiting for room: any thread
                                     pushes (CAS); taken whole */
    /* Set by tr__mbox_open before it publishes the epoch (release); read by
     * producers after their acquire of a word with that epoch. Atomic only
     * because a stale producer may read it while a new owner's open writes
     * it; such a producer's admission then fails on the epoch. */
    _Atomic uint32_t capacity;
    _Atomic uint32_t pop_lock; /* drop-oldest mailboxes only: serializes
                                  the consumer's pops with producers that
                                  drop the oldest message */
    /* The oldest linked node, NULL when the lane is empty. The consumer's,
     * but for one store: the producer whose exchange found the tail NULL
     * stores its node here (release), after the consumer stored NULL and
     * then emptied the tail (so that store is ordered after the
     * consumer's). */
    _Atomic(tr__mnode *) head;
} tr__mailbox;

/* The system lane: a Treiber stack of system messages (any thread pushes;
 * the consumer takes it whole, oldest first). */
typedef struct tr__lane {
    _Atomic(tr__mnode *) top;
} tr__lane;

typedef enum tr__admit {
    TR__ADMIT_OK,       /* counted; the owner was already scheduled */
    TR__ADMIT_SCHEDULE, /* counted; the caller must schedule the owner */
    TR__ADMIT_FULL,     /* not counted: the user lane is at capacity */
    TR__ADMIT_DEAD,     /* not counted: the owner is ending or reborn */
    TR__ADMIT_SWAPPED,  /* tr__mbox_swap_oldest: the oldest waiting message
                           was taken out and the new one put in its place */
    TR__ADMIT_CLOSED,   /* not counted: the owner takes no new user message */
} tr__admit;

static inline uint64_t
tr__mb_epoch_bits(uint32_t gen)
{
    return (uint64_t)gen << TR__MB_EPOCH_SHIFT;
}

/* Sets up an empty mailbox and system lane for an owner of generation
 * `gen`, or reopens drained ones for the next owner of its slot (the memory
 * must start zeroed). Not concurrent with anything but admissions, which it
 * makes fail until it publishes the epoch, and waiter registrations, which
 * it keeps. `first`: NULL, or a system message that is in the lane from the
 * start, admitted and pushed in the same release store (one store where
 * admission and push cost two RMWs): the caller must then schedule the
 * owner, as for TR__ADMIT_SCHEDULE. */
void tr__mbox_open(tr__mailbox *mb, tr__lane *sys, uint32_t gen,
                   uint32_t capacity, tr__mnode *first);

/* Counts one user message in, unless full (force: admit past capacity) or
 * the owner of `gen` is gone. On OK/SCHEDULE the caller must push the
 * message right away. *word_out receives the word seen before. */
tr__admit tr__mbox_admit(tr__mailbox *mb, uint32_t gen, bool force,
                         uint64_t *word_out);

/* Counts one system message in (no capacity). As tr__mbox_admit; FULL only
 * when the 20-bit count is saturated (2^20 - 1 system messages wait). */
tr__admit tr__mbox_admit_sys(tr__mailbox *mb, uint32_t gen, uint64_t *word_out);

/* Pushes an admitted user message / system message. */
void tr__mbox_push(tr__mailbox *mb, tr__mnode *n);
void tr__mbox_push_sys(tr__lane *sys, tr__mnode *n);

/* Consumer: the oldest user message, or NULL when none is linked yet.
 * tr__mbox_pop_at works on a copy of mb->head in *head, which a turn keeps
 * in a local (starting from tr__mbox_head) and stores back with
 * tr__mbox_head_back before the owner can leave its thread (not for
 * drop-oldest mailboxes, whose producers pop too). A NULL copy means the
 * consumer emptied the lane: the next pop reads mb->head again, which a
 * producer may have set meanwhile, and it is not stored back. */
tr__mnode *tr__mbox_pop_at(tr__mailbox *mb, tr__mnode **head);
tr__mnode *tr__mbox_pop(tr__mailbox *mb);

static inline tr__mnode *
tr__mbox_head(tr__mailbox *mb)
{
    /* acquire: pairs with the release store of a producer that found the
     * lane empty, so its node is visible. */
    return atomic_load_explicit(&mb->head, memory_order_acquire);
}

static inline void
tr__mbox_head_back(tr__mailbox *mb, tr__mnode *head)
{
    if (head != NULL) {
        /* relaxed: the consumer's own field while its copy is not NULL;
         * the turn's hand-over (the word's release) publishes it. */
        atomic_store_explicit(&mb->head, head, memory_order_relaxed);
    }
}

/* Drop-oldest mailboxes: tr__mbox_pop under the pop lock. Consumer. */
tr__mnode *tr__mbox_pop_locked(tr__mailbox *mb);

/* Drop-oldest mailboxes, the ending owner, after tr__mbox_close: waits
 * out a producer inside tr__mbox_swap_oldest, so none swaps into the
 * slot's next owner. */
void tr__mbox_quiesce(tr__mailbox *mb);

/* Drop-oldest mailboxes, any producer: under the pop lock, admits `n` if
 * there is room now (OK/SCHEDULE, pushed); otherwise takes the oldest
 * linked message out into *oldest and puts `n` in its place, leaving the
 * count unchanged (SWAPPED); FULL when no message is linked (every counted
 * one is being handled or in flight); DEAD as admission. */
tr__admit tr__mbox_swap_oldest(tr__mailbox *mb, uint32_t gen, tr__mnode *n,
                               tr__mnode **oldest);

/* Consumer: every system message pushed so far, oldest first (linked
 * through `next`, plain loads are fine after this returns). */
tr__mnode *tr__mbox_take_sys(tr__lane *sys);

/* Consumer: whether a system message may wait (relaxed: a hint; the word
 * counts what is really there). */
static inline bool
tr__mbox_sys_waits(tr__lane *sys)
{
    return atomic_load_explicit(&sys->top, memory_order_relaxed) != NULL;
}

/* Consumer: adds `delta` (two's complement: releases counts, sets or
 * clears MUTE) and returns the new word. */
uint64_t tr__mbox_add(tr__mailbox *mb, uint64_t delta);

/* Consumer (or the owner's supervisor, any thread): refuses new user
 * messages from now on (TR__ADMIT_CLOSED), except forced ones. */
void tr__mbox_close_user(tr__mailbox *mb);

/* Consumer: marks the owner dead; returns the new word. */
uint64_t tr__mbox_close(tr__mailbox *mb);

/* Waiters: records of senders that found the lane full. */
void tr__mbox_add_waiter(tr__mailbox *mb, tr__mnode *n);

/* Takes every waiter registered so far, newest first, without reordering
 * (O(1)). Any thread. */
tr__mnode *tr__mbox_grab_waiters(tr__mailbox *mb);

/* Consumer, after releasing counts: whether anyone waits for room. seq_cst:
 * the consumer's load in the Dekker pair described in mailbox.c (admit),
 * ordered after the release RMW. Inline: it runs at the end of every turn
 * and almost always finds no one. */
static inline bool
tr__mbox_has_waiters(tr__mailbox *mb)
{
    return atomic_load_explicit(&mb->waiters, memory_order_seq_cst) != NULL;
}

/* Consumer: the word, for tests and the ending owner's drain. */
uint64_t tr__mbox_word(tr__mailbox *mb);

/* Consumer: releases `consumed` if that leaves no token (the owner goes
 * idle: the next admission schedules it) and returns true; otherwise
 * changes nothing and returns false. */
bool tr__mbox_release_idle(tr__mailbox *mb, uint64_t consumed);

#endif
