/* Thread actors' internals, shared by thread.c and blocking.c.
 *
 * A thread actor is an ordinary actor slot flagged TR__L_THREAD. Senders,
 * stops and shutdown treat it like any actor: admission counts a message
 * and, when the tokens go from zero to nonzero, schedules the actor on the
 * executor. Its turn on a worker is only a trampoline (tr__thread_handoff):
 * it hands the turn, with the tokens, to the actor's consumer and returns.
 * The consumer then owns the mailbox exactly as a turn would (the token
 * rule in mailbox.h) until tr__turn_release lets the tokens reach zero;
 * only then can a sender schedule the actor again. So the scheduling path
 * is unchanged and a thread actor's mailbox has every property of an
 * actor's: capacity, policies, system lane, waiters, dead letters.
 *
 * The consumer is one thread at a time: a thread actor's own thread, or
 * for the blocking pool whichever pool thread holds the pool's lock.
 *
 * The handoff word is the actor's `wflags`, which a thread actor does not
 * otherwise use (it never mutes: its sends block instead). It lives in the
 * type-stable actor table, so the worker's wake after the handoff never
 * touches freed memory even if the consumer has ended the actor and its
 * handle is gone. */
#ifndef TR_ACTORS_THREAD_H
#define TR_ACTORS_THREAD_H

#include "actors/core.h"

/* wflags bits of a thread actor. Disjoint from TR__W_MUTED/TR__W_WAKE:
 * a stale tr__actor_wake (a waiter record of the slot's previous actor,
 * racing with its reuse) ORs in TR__W_WAKE and acts only on a word that
 * was exactly TR__W_MUTED, so it never takes a thread actor for a parked
 * muted one and never schedules it; a stray WAKE bit is ignored here. */
#define TR__T_HANDED 4u /* a worker handed a turn; the consumer takes it */
#define TR__T_SLEEP  8u /* the consumer sleeps on the word (futex) */

struct tr_thread {
    tr_runtime *rt;
    tr__actor *a; /* valid until the consumer ends the actor */
    tr_ref ref;
    /* Consumer only: */
    bool owned; /* it holds the mailbox's tokens (a turn in progress) */
    bool ended; /* the actor has ended (tr__thread_next gives TR_EDEAD) */
    tr_cx cx;   /* the turn context: rt, self, the message received last */
    /* Latches the consumer thread(s) until the actor exists: 0 wait, 1 go,
     * 2 give up (tr__thread_unlatch / tr__thread_latch). */
    _Atomic uint32_t start;
    /* A user thread actor's thread (not used by the pool). */
    pthread_t thread;
    tr_thread_fn fn;
    void *arg;
    /* The actor's behavior: a name and no handlers. It outlives the actor
     * (the handle is freed by tr_thread_join or with the pool). */
    tr_behavior beh;
    char name[32];
};

/* Sets t up (t zeroed) and spawns its actor with `mailbox` (NULL: the
 * runtime's defaults). `parent` as for tr__spawn. Errors as tr_spawn. */
tr_status tr__thread_open(tr_thread *t, tr_runtime *rt, tr__actor *parent,
                          const char *name, const tr_mailbox_opts *mailbox);

/* The start latch: consumer threads wait in tr__thread_latch, which
 * returns 1 (go: the actor exists) or 2 (give up), whichever the spawner
 * passed to tr__thread_unlatch. */
uint32_t tr__thread_latch(tr_thread *t);
void tr__thread_unlatch(tr_thread *t, uint32_t how);

/* The consumer: waits until `deadline` (CLOCK_MONOTONIC ns; UINT64_MAX: no
 * limit) for a turn, handles the system lane, and takes one user message
 * into *out (the caller frees it), releasing its count at once so the
 * room goes to waiters. TR_EDEAD once a stop ended the actor; TR_ETIMEDOUT.
 * One consumer at a time. */
tr_status tr__thread_next(tr_thread *t, uint64_t deadline, tr__msg **out);

#endif
