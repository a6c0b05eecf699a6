/* The bounded MPSC mailbox. See mailbox.h for the word and the invariants;
 * docs/internals/mailbox.md walks through a send, a turn and an ending. */
#include "mailbox/mailbox.h"

#include <sched.h>

void
tr__mbox_open(tr__mailbox *mb, tr__lane *sys, uint32_t gen, uint32_t capacity,
              tr__mnode *first)
{
    /* `waiters` is left alone: a stale sender may register between the
     * previous owner's last wake-up and this open; its record stays for the
     * new owner to wake (harmlessly: it retries and finds its actor gone)
     * or for the runtime's destroy to free. Clearing it here leaked it. */
    atomic_store_explicit(&mb->tail, NULL, memory_order_relaxed);
    atomic_store_explicit(&mb->head, NULL, memory_order_relaxed);
    if (first != NULL) {
        atomic_store_explicit(&first->next, NULL, memory_order_relaxed);
    }
    atomic_store_explicit(&sys->top, first, memory_order_relaxed);
    atomic_store_explicit(&mb->capacity, capacity, memory_order_relaxed);
    /* release: publishes the reset lanes above (and `first`) to any
     * producer whose admission CAS (acquire) reads this epoch; the owner's
     * turn sees them through the scheduling that follows. */
    atomic_store_explicit(&mb->word,
                          tr__mb_epoch_bits(gen) |
                              (first != NULL ? TR__MB_SYS_ONE : 0),
                          memory_order_release);
}

/* limit 0 means the mailbox's capacity, read once the epoch checks out. */
static tr__admit
admit(tr__mailbox *mb, uint32_t gen, uint64_t one, uint64_t limit_mask,
      uint64_t limit, uint64_t *word_out)
{
    uint64_t want = tr__mb_epoch_bits(gen);
    /* seq_cst: acquire pairs with tr__mbox_open's release (once the epoch
     * matches, the capacity and the owner's header are visible); seq_cst
     * because a FULL decided from this load is the sender's read in the
     * Dekker pair with the consumer (see below): after registering as a
     * waiter, the sender must not read a count older than the consumer's
     * release. Free on x86-64; on weaker CPUs it is what makes the pair
     * hold. */
    uint64_t w = atomic_load_explicit(&mb->word, memory_order_seq_cst);

    for (;;) {
        if ((w & ~(TR__MB_TOKENS | TR__MB_CLOSED)) != want) {
            return TR__ADMIT_DEAD; /* DEAD set, or another epoch */
        }
        if ((w & TR__MB_CLOSED) && one == TR__MB_USER_ONE && limit == 0) {
            return TR__ADMIT_CLOSED; /* forced and system ones still go */
        }
        if (limit == 0) {
            limit = atomic_load_explicit(&mb->capacity, memory_order_relaxed);
        }
        if ((w & limit_mask) >= limit) {
            *word_out = w;
            return TR__ADMIT_FULL;
        }
        /* seq_cst: (1) acquire pairs with the consumer's release in
         * tr__mbox_add, so a producer that reschedules an idle owner hands
         * over the owner's last turn; (2) it is one half of the Dekker pair
         * with tr__mbox_add_waiter: a sender registers as a waiter and then
         * retries this CAS, while the consumer releases counts and then
         * loads `waiters`; with both sides seq_cst, one of them sees the
         * other, so no waiter sleeps through the room it waits for. On
         * x86-64 any RMW is a full barrier, so this costs nothing extra. */
        /* Failure reloads w with seq_cst as well, for the same reason. */
        if (atomic_compare_exchange_weak_explicit(&mb->word, &w, w + one,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            *word_out = w;
            return (w & TR__MB_TOKENS) == 0 ? TR__ADMIT_SCHEDULE : TR__ADMIT_OK;
        }
    }
}

tr__admit
tr__mbox_admit(tr__mailbox *mb, uint32_t gen, bool force, uint64_t *word_out)
{
    return admit(mb, gen, TR__MB_USER_ONE, TR__MB_USER_MASK,
                 force ? TR__MB_USER_MASK : 0, word_out);
}

tr__admit
tr__mbox_admit_sys(tr__mailbox *mb, uint32_t gen, uint64_t *word_out)
{
    return admit(mb, gen, TR__MB_SYS_ONE, TR__MB_SYS_MASK, TR__MB_SYS_MASK,
                 word_out);
}

void
tr__mbox_push(tr__mailbox *mb, tr__mnode *n)
{
    tr__mnode *prev;

    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel: release publishes n's contents (and n->next = NULL) to the
     * producer that links behind n and to the consumer; acquire orders our
     * store below after whoever pushed prev, or, when the lane was empty,
     * after the consumer's store of NULL to head (its CAS of the tail to
     * NULL releases it). */
    prev = atomic_exchange_explicit(&mb->tail, n, memory_order_acq_rel);
    /* release: pairs with the consumer's acquire load of head or of next in
     * pop, so it sees n's payload once it sees the link. Between the
     * exchange and this store the push is "in flight": pop reports empty. */
    if (prev == NULL) {
        atomic_store_explicit(&mb->head, n, memory_order_release);
    } else {
        atomic_store_explicit(&prev->next, n, memory_order_release);
    }
}

static void
push_stack(_Atomic(tr__mnode *) *top, tr__mnode *n)
{
    tr__mnode *old = atomic_load_explicit(top, memory_order_relaxed);

    do {
        atomic_store_explicit(&n->next, old, memory_order_relaxed);
        /* seq_cst on success: release publishes n to the taker's acquire
         * exchange; seq_cst (not just release) because tr__mbox_add_waiter
         * is the other half of the Dekker pair described in admit(). */
    } while (!atomic_compare_exchange_weak_explicit(
        top, &old, n, memory_order_seq_cst, memory_order_relaxed));
}

static tr__mnode *
take_stack(_Atomic(tr__mnode *) *top)
{
    tr__mnode *n, *prev = NULL, *next;

    /* A relaxed peek first: most turns find nothing, and a load does not
     * pull the line away from producers the way an exchange does. */
    if (atomic_load_explicit(top, memory_order_relaxed) == NULL) {
        return NULL;
    }
    /* acquire: pairs with push_stack's release, so every node in the list
     * and its next link is visible. */
    n = atomic_exchange_explicit(top, NULL, memory_order_acquire);
    /* Reverse: the stack is newest first; lanes hand out oldest first. */
    while (n != NULL) {
        next = atomic_load_explicit(&n->next, memory_order_relaxed);
        atomic_store_explicit(&n->next, prev, memory_order_relaxed);
        prev = n;
        n = next;
    }
    return prev;
}

void
tr__mbox_push_sys(tr__lane *sys, tr__mnode *n)
{
    push_stack(&sys->top, n);
}

tr__mnode *
tr__mbox_take_sys(tr__lane *sys)
{
    return take_stack(&sys->top);
}

void
tr__mbox_add_waiter(tr__mailbox *mb, tr__mnode *n)
{
    push_stack(&mb->waiters, n);
}

tr__mnode *
tr__mbox_grab_waiters(tr__mailbox *mb)
{
    if (!tr__mbox_has_waiters(mb)) {
        return NULL;
    }
    /* acquire: pairs with push_stack's release, so each record is visible. */
    return atomic_exchange_explicit(&mb->waiters, NULL, memory_order_acquire);
}

tr__mnode *
tr__mbox_pop_at(tr__mailbox *mb, tr__mnode **headp)
{
    tr__mnode *head = *headp, *next, *last;

    if (head == NULL) {
        head = tr__mbox_head(mb);
        if (head == NULL) {
            return NULL; /* empty, or its first push is in flight */
        }
        *headp = head;
    }
    /* acquire: pairs with the release store of prev->next in push. */
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next != NULL) {
        *headp = next;
        return head;
    }
    /* head is the last linked node. If a push is in flight behind it, wait
     * for its link rather than hand head out with a producer about to write
     * into it. */
    if (head != atomic_load_explicit(&mb->tail, memory_order_relaxed)) {
        return NULL;
    }
    /* Empty the lane: head first, so the next producer's store of its node
     * to head comes after ours (it reads the NULL tail that our CAS
     * releases). */
    atomic_store_explicit(&mb->head, NULL, memory_order_relaxed);
    last = head;
    /* release: see above; relaxed on failure: the link is read below. */
    if (atomic_compare_exchange_strong_explicit(&mb->tail, &last, NULL,
                                                memory_order_release,
                                                memory_order_relaxed)) {
        *headp = NULL;
        return head;
    }
    /* A producer exchanged the tail behind head since: hand head out once
     * its link is there. Meanwhile *headp still holds head, which the
     * caller stores back. */
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next != NULL) {
        *headp = next;
        return head;
    }
    return NULL;
}

tr__mnode *
tr__mbox_pop(tr__mailbox *mb)
{
    tr__mnode *head = tr__mbox_head(mb);
    tr__mnode *n = tr__mbox_pop_at(mb, &head);

    tr__mbox_head_back(mb, head);
    return n;
}

static void
pop_lock(tr__mailbox *mb)
{
    /* acquire: pairs with pop_unlock's release, so the previous holder's
     * update of mb->head is visible. */
    while (atomic_exchange_explicit(&mb->pop_lock, 1, memory_order_acquire)) {
        sched_yield();
    }
}

static void
pop_unlock(tr__mailbox *mb)
{
    atomic_store_explicit(&mb->pop_lock, 0, memory_order_release);
}

void
tr__mbox_quiesce(tr__mailbox *mb)
{
    pop_lock(mb);
    pop_unlock(mb);
}

tr__mnode *
tr__mbox_pop_locked(tr__mailbox *mb)
{
    tr__mnode *n;

    pop_lock(mb);
    n = tr__mbox_pop(mb);
    pop_unlock(mb);
    return n;
}

tr__admit
tr__mbox_swap_oldest(tr__mailbox *mb, uint32_t gen, tr__mnode *n,
                     tr__mnode **oldest)
{
    uint64_t w;
    tr__admit r;

    pop_lock(mb);
    r = tr__mbox_admit(mb, gen, false, &w);
    if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
        tr__mbox_push(mb, n);
    } else if (r == TR__ADMIT_FULL) {
        /* The epoch checked out just now, and the owner cannot be replaced
         * while we hold the lock: an ending owner takes the lock once after
         * closing the mailbox (tr__mbox_quiesce), so the swap stays within
         * this owner's lifetime. */
        *oldest = tr__mbox_pop(mb);
        if (*oldest != NULL) {
            tr__mbox_push(mb, n);
            r = TR__ADMIT_SWAPPED;
        }
    }
    pop_unlock(mb);
    return r;
}

uint64_t
tr__mbox_add(tr__mailbox *mb, uint64_t delta)
{
    /* seq_cst: release hands this turn's writes to the producer that next
     * moves the tokens from zero (it schedules the owner elsewhere), and
     * this is the consumer's store in the Dekker pair with waiters (see
     * admit()). */
    return atomic_fetch_add_explicit(&mb->word, delta, memory_order_seq_cst) +
           delta;
}

bool
tr__mbox_release_idle(tr__mailbox *mb, uint64_t consumed)
{
    uint64_t w = atomic_load_explicit(&mb->word, memory_order_relaxed);

    while (((w - consumed) & TR__MB_TOKENS) == 0) {
        /* seq_cst: as tr__mbox_add, whose release this is. */
        if (atomic_compare_exchange_weak_explicit(&mb->word, &w, w - consumed,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

void
tr__mbox_close_user(tr__mailbox *mb)
{
    /* seq_cst: like every change of the word (see admit()); from here on
     * every unforced user admission sees CLOSED. */
    atomic_fetch_or_explicit(&mb->word, TR__MB_CLOSED, memory_order_seq_cst);
}

uint64_t
tr__mbox_close(tr__mailbox *mb)
{
    /* seq_cst: after this, every admission fails (they CAS the word), and
     * admissions that won before are counted in the returned word. */
    return atomic_fetch_or_explicit(&mb->word, TR__MB_DEAD,
                                    memory_order_seq_cst) |
           TR__MB_DEAD;
}

uint64_t
tr__mbox_word(tr__mailbox *mb)
{
    return atomic_load_explicit(&mb->word, memory_order_acquire);
}
