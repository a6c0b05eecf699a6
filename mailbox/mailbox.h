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
 * from the thread running the owner. The user lane is Vyukov's intrusive
 * MPSC queue: one exchange per push, wait-free for producers; a pop can see
 * a push in flight (exchanged, not yet linked) and then reports empty while
 * the word still counts the message, so consumers trust the word, not a
 * NULL pop. The system lane and the waiter list are Treiber stacks that the
 * consumer takes whole. */
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
    /* What senders touch (the first 48 bytes), then the system lane's top,
     * which the consumer polls after every message. The owner (tr__actor)
     * starts a cache line at `sys`, so that poll reads a line producers
     * rarely write, and keeps the rest of that line read-mostly. The
     * consumer writes `head` back once a turn (see tr__mbox_pop_at), so
     * producers' RMWs and its pops do not pass the line back and forth
     * on every message. */
    _Atomic uint64_t word;        /* any thread; RMW only, see above */
    _Atomic(tr__mnode *) tail;    /* producers: exchange; consumer: load */
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
    tr__mnode *head;           /* consumer only */
    tr__mnode stub;            /* the queue's resting node: producers link
                                  behind it when the lane was empty */
    _Atomic(tr__mnode *) sys;  /* any thread pushes (CAS); consumer takes */
} tr__mailbox;

/* Where the part the consumer polls starts (see tr__mailbox). */
#define TR__MB_POLLED_OFFSET offsetof(tr__mailbox, sys)

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

/* Sets up an empty mailbox for an owner of generation `gen`, or reopens a
 * drained one for the next owner of its slot (the memory must start
 * zeroed). Not concurrent with anything but admissions, which it makes fail
 * until it publishes the epoch, and waiter registrations, which it keeps.
 * `first`: NULL, or a system message that is in the mailbox from the start,
 * admitted and pushed in the same release store (one store where admission
 * and push cost two RMWs): the caller must then schedule the owner, as for
 * TR__ADMIT_SCHEDULE. */
void tr__mbox_open(tr__mailbox *mb, uint32_t gen, uint32_t capacity,
                   tr__mnode *first);

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
void tr__mbox_push_sys(tr__mailbox *mb, tr__mnode *n);

/* Consumer: the oldest user message, or NULL when none is linked yet.
 * tr__mbox_pop_at works on a copy of mb->head in *head, which a turn keeps
 * in a local and stores back to mb->head before the owner can leave its
 * thread (not for drop-oldest mailboxes, whose producers pop too). */
tr__mnode *tr__mbox_pop_at(tr__mailbox *mb, tr__mnode **head);
tr__mnode *tr__mbox_pop(tr__mailbox *mb);

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
tr__mnode *tr__mbox_take_sys(tr__mailbox *mb);

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
