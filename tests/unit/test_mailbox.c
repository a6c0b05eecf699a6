/* White-box tests of mailbox/mailbox.c, single-threaded: the word (counts,
 * tokens, MUTE, DEAD, epoch), the user lane's FIFO, the system lane, the
 * waiter stack and the drop-oldest swap. The concurrent protocol is covered
 * by tests/stress/test_stress_mpsc.c. */
#include "tr_test.h"

#include "mailbox/mailbox.h"

#define NITEMS 64

/* A message as the layers above build one: the node first. */
typedef struct item {
    tr__mnode node;
    uint32_t seq;
} item;

typedef struct fixture {
    tr__mailbox mb;
    tr__lane sys;
    item items[NITEMS];
} fixture;

static int
setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    uint32_t i;

    if (f == NULL) {
        return -1;
    }
    for (i = 0; i < NITEMS; i++) {
        f->items[i].seq = i;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    free(*state);
    return 0;
}

static uint64_t
user_count(uint64_t w)
{
    return w & TR__MB_USER_MASK;
}

static uint64_t
sys_count(uint64_t w)
{
    return (w & TR__MB_SYS_MASK) >> TR__MB_SYS_SHIFT;
}

/* The sequence number of a popped or taken node; -1 for NULL. */
static long
seq_of(tr__mnode *n)
{
    return n == NULL ? -1 : (long)((item *)n)->seq;
}

static tr__mnode *
next_of(tr__mnode *n)
{
    return atomic_load_explicit(&n->next, memory_order_relaxed);
}

/* Admits and pushes items[i] as user message; returns the admission. */
static tr__admit
send_user(fixture *f, uint32_t gen, uint32_t i)
{
    uint64_t w;
    tr__admit r = tr__mbox_admit(&f->mb, gen, false, &w);

    if (r == TR__ADMIT_OK || r == TR__ADMIT_SCHEDULE) {
        tr__mbox_push(&f->mb, &f->items[i].node);
    }
    return r;
}

static void
test_open_sets_epoch(void **state)
{
    fixture *f = *state;

    tr__mbox_open(&f->mb, &f->sys, 5, 8, NULL);
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(5));
    assert_null(tr__mbox_pop(&f->mb));
    assert_null(tr__mbox_take_sys(&f->sys));
    assert_null(tr__mbox_grab_waiters(&f->mb));
}

/* Opened with a first system message: the word counts it as one system
 * token (the owner is scheduled), it is the lane's only message, and a later
 * admission finds the owner scheduled already. Reopening with NULL empties
 * the lane again. */
static void
test_open_with_first(void **state)
{
    fixture *f = *state;
    tr__mnode *n;
    uint64_t w;

    f->items[0].node.next = &f->items[1].node; /* stale link, cut by open */
    tr__mbox_open(&f->mb, &f->sys, 6, 8, &f->items[0].node);
    assert_int_equal(tr__mbox_word(&f->mb),
                     tr__mb_epoch_bits(6) | TR__MB_SYS_ONE);
    assert_int_equal(tr__mbox_admit(&f->mb, 6, false, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 6, &w), TR__ADMIT_OK);
    tr__mbox_push_sys(&f->sys, &f->items[2].node);
    n = tr__mbox_take_sys(&f->sys);
    assert_int_equal(seq_of(n), 0);
    assert_int_equal(seq_of(next_of(n)), 2);
    assert_null(next_of(next_of(n)));

    tr__mbox_open(&f->mb, &f->sys, 7, 8, NULL);
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(7));
    assert_null(tr__mbox_take_sys(&f->sys));
}

static void
test_pop_empty(void **state)
{
    fixture *f = *state;

    tr__mbox_open(&f->mb, &f->sys, 1, 8, NULL);
    assert_null(tr__mbox_pop(&f->mb));
    assert_null(tr__mbox_pop(&f->mb));
    /* Emptied again after one message: tail and head are NULL again. */
    assert_int_equal(send_user(f, 1, 0), TR__ADMIT_SCHEDULE);
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 0);
    assert_null(tr__mbox_pop(&f->mb));
    assert_null(tr__mbox_pop(&f->mb));
    /* The consumer has not released: the word still counts it. */
    assert_int_equal(user_count(tr__mbox_word(&f->mb)), 1);
}

/* A turn's copy of the head (tr__mbox_pop_at): popping the last message
 * empties the lane and leaves the copy NULL; a producer then sets mb.head
 * itself, the next pop of the same turn finds its message there, and
 * storing a NULL copy back does not undo the producer's store. */
static void
test_pop_at_copy(void **state)
{
    fixture *f = *state;
    tr__mnode *head;

    tr__mbox_open(&f->mb, &f->sys, 1, 8, NULL);
    assert_int_equal(send_user(f, 1, 0), TR__ADMIT_SCHEDULE);
    assert_int_equal(send_user(f, 1, 1), TR__ADMIT_OK);
    head = tr__mbox_head(&f->mb);
    assert_int_equal(seq_of(tr__mbox_pop_at(&f->mb, &head)), 0);
    assert_int_equal(seq_of(head), 1);
    assert_int_equal(seq_of(tr__mbox_pop_at(&f->mb, &head)), 1);
    assert_null(head);
    assert_null(atomic_load(&f->mb.tail));
    assert_int_equal(send_user(f, 1, 2), TR__ADMIT_OK);
    assert_int_equal(seq_of(tr__mbox_head(&f->mb)), 2);
    tr__mbox_head_back(&f->mb, head);
    assert_int_equal(seq_of(tr__mbox_head(&f->mb)), 2);
    assert_int_equal(seq_of(tr__mbox_pop_at(&f->mb, &head)), 2);
    assert_null(tr__mbox_pop_at(&f->mb, &head));
    /* A copy that moved on is stored back. */
    assert_int_equal(send_user(f, 1, 3), TR__ADMIT_OK);
    assert_int_equal(send_user(f, 1, 4), TR__ADMIT_OK);
    head = tr__mbox_head(&f->mb);
    assert_int_equal(seq_of(tr__mbox_pop_at(&f->mb, &head)), 3);
    tr__mbox_head_back(&f->mb, head);
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 4);
    assert_null(tr__mbox_pop(&f->mb));
}

/* Pushes caught between their exchange and their link, made by hand: the
 * first into an empty lane (its node not yet stored as the head), then one
 * behind the last linked node (not yet linked to it). Pop reports empty
 * for each, hands nothing out early, and finds both once they land. */
static void
test_pop_in_flight(void **state)
{
    fixture *f = *state;
    tr__mnode *n0 = &f->items[0].node, *n1 = &f->items[1].node;

    tr__mbox_open(&f->mb, &f->sys, 1, 8, NULL);
    atomic_store(&n0->next, NULL);
    assert_null(atomic_exchange(&f->mb.tail, n0));
    assert_null(tr__mbox_pop(&f->mb));
    atomic_store(&f->mb.head, n0); /* the first push lands */
    atomic_store(&n1->next, NULL);
    assert_ptr_equal(atomic_exchange(&f->mb.tail, n1), n0);
    /* n0 is the last linked node, but not the tail: it stays. */
    assert_null(tr__mbox_pop(&f->mb));
    assert_ptr_equal(tr__mbox_head(&f->mb), n0);
    atomic_store(&n0->next, n1); /* the second lands */
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 0);
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 1);
    assert_null(tr__mbox_pop(&f->mb));
    assert_null(atomic_load(&f->mb.tail));
    assert_null(tr__mbox_head(&f->mb));
}

static void
test_fifo(void **state)
{
    fixture *f = *state;
    uint32_t i;

    tr__mbox_open(&f->mb, &f->sys, 1, NITEMS, NULL);
    for (i = 0; i < NITEMS; i++) {
        assert_int_equal(send_user(f, 1, i),
                         i == 0 ? TR__ADMIT_SCHEDULE : TR__ADMIT_OK);
    }
    assert_int_equal(user_count(tr__mbox_word(&f->mb)), NITEMS);
    for (i = 0; i < NITEMS; i++) {
        assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), i);
    }
    assert_null(tr__mbox_pop(&f->mb));
    assert_int_equal(tr__mbox_add(&f->mb, (uint64_t)0 - NITEMS),
                     tr__mb_epoch_bits(1));
}

/* Pushes and pops interleaved in every pattern a small model allows: the
 * lane empties and fills again (the tail to NULL and back, the head set by
 * a producer), and order must survive that. */
static void
test_fifo_interleaved(void **state)
{
    fixture *f = *state;
    uint64_t rng = 12345;
    uint32_t pushed = 0, popped = 0, round;

    tr__mbox_open(&f->mb, &f->sys, 1, NITEMS, NULL);
    for (round = 0; round < 2000; round++) {
        uint32_t npush = (uint32_t)(tr__mix64(&rng) % 4);
        uint32_t npop = (uint32_t)(tr__mix64(&rng) % 4);
        uint32_t k;

        for (k = 0; k < npush && pushed - popped < NITEMS; k++) {
            /* Slots are reused round-robin; a slot is free again once
             * popped, because at most NITEMS are in the queue. */
            f->items[pushed % NITEMS].seq = pushed;
            assert_true(send_user(f, 1, pushed % NITEMS) <= TR__ADMIT_SCHEDULE);
            pushed++;
        }
        for (k = 0; k < npop; k++) {
            tr__mnode *n = tr__mbox_pop(&f->mb);

            if (popped == pushed) {
                assert_null(n);
                continue;
            }
            assert_int_equal(seq_of(n), popped);
            popped++;
            tr__mbox_add(&f->mb, (uint64_t)0 - TR__MB_USER_ONE);
        }
    }
    while (popped < pushed) {
        assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), popped);
        popped++;
        tr__mbox_add(&f->mb, (uint64_t)0 - TR__MB_USER_ONE);
    }
    assert_null(tr__mbox_pop(&f->mb));
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(1));
}

static void
test_capacity(void **state)
{
    fixture *f = *state;
    uint64_t w = 0;
    uint32_t i;

    tr__mbox_open(&f->mb, &f->sys, 3, 4, NULL);
    for (i = 0; i < 4; i++) {
        assert_int_equal(send_user(f, 3, i),
                         i == 0 ? TR__ADMIT_SCHEDULE : TR__ADMIT_OK);
    }
    /* At capacity: FULL, repeatedly, and the count does not move. */
    for (i = 0; i < 10; i++) {
        assert_int_equal(tr__mbox_admit(&f->mb, 3, false, &w), TR__ADMIT_FULL);
        assert_int_equal(w, tr__mb_epoch_bits(3) | 4);
    }
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(3) | 4);

    /* force admits past capacity, and reports the word it replaced. */
    assert_int_equal(tr__mbox_admit(&f->mb, 3, true, &w), TR__ADMIT_OK);
    assert_int_equal(w, tr__mb_epoch_bits(3) | 4);
    tr__mbox_push(&f->mb, &f->items[4].node);
    assert_int_equal(tr__mbox_admit(&f->mb, 3, true, &w), TR__ADMIT_OK);
    tr__mbox_push(&f->mb, &f->items[5].node);
    assert_int_equal(user_count(tr__mbox_word(&f->mb)), 6);
    assert_int_equal(tr__mbox_admit(&f->mb, 3, false, &w), TR__ADMIT_FULL);

    /* Releasing to capacity - 1 admits one more, no earlier. */
    for (i = 0; i < 2; i++) {
        assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), i);
    }
    assert_int_equal(tr__mbox_add(&f->mb, (uint64_t)0 - 2),
                     tr__mb_epoch_bits(3) | 4);
    assert_int_equal(tr__mbox_admit(&f->mb, 3, false, &w), TR__ADMIT_FULL);
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 2);
    tr__mbox_add(&f->mb, (uint64_t)0 - 1);
    assert_int_equal(send_user(f, 3, 6), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit(&f->mb, 3, false, &w), TR__ADMIT_FULL);
    for (i = 3; i < 7; i++) {
        assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), i);
    }
    assert_null(tr__mbox_pop(&f->mb));
    assert_int_equal(tr__mbox_add(&f->mb, (uint64_t)0 - 4),
                     tr__mb_epoch_bits(3));
}

/* A mailbox of capacity 0 (a slot that is never spawned) admits nothing. */
static void
test_capacity_zero(void **state)
{
    fixture *f = *state;
    uint64_t w;

    tr__mbox_open(&f->mb, &f->sys, 1, 0, NULL);
    assert_int_equal(tr__mbox_admit(&f->mb, 1, false, &w), TR__ADMIT_FULL);
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(1));
}

/* The counts saturate at their field widths instead of carrying into the
 * next field: forced user admissions stop at TR__MB_USER_MASK and system
 * admissions at the top of their 20 bits. */
static void
test_count_fields_saturate(void **state)
{
    fixture *f = *state;
    uint64_t w;

    tr__mbox_open(&f->mb, &f->sys, 2, 4, NULL);
    tr__mbox_add(&f->mb, TR__MB_USER_MASK - 1);
    assert_int_equal(tr__mbox_admit(&f->mb, 2, true, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit(&f->mb, 2, true, &w), TR__ADMIT_FULL);
    assert_int_equal(tr__mbox_word(&f->mb),
                     tr__mb_epoch_bits(2) | TR__MB_USER_MASK);
    tr__mbox_add(&f->mb, (uint64_t)0 - TR__MB_USER_MASK);

    tr__mbox_add(&f->mb, TR__MB_SYS_MASK - TR__MB_SYS_ONE);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 2, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 2, &w), TR__ADMIT_FULL);
    assert_int_equal(tr__mbox_word(&f->mb),
                     tr__mb_epoch_bits(2) | TR__MB_SYS_MASK);
    assert_int_equal(tr__mbox_add(&f->mb, (uint64_t)0 - TR__MB_SYS_MASK),
                     tr__mb_epoch_bits(2));
}

static void
test_epoch(void **state)
{
    fixture *f = *state;
    uint64_t w = 0xdeadbeef;

    tr__mbox_open(&f->mb, &f->sys, 7, 4, NULL);
    assert_int_equal(tr__mbox_admit(&f->mb, 8, false, &w), TR__ADMIT_DEAD);
    assert_int_equal(tr__mbox_admit(&f->mb, 6, true, &w), TR__ADMIT_DEAD);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 8, &w), TR__ADMIT_DEAD);
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(7));

    assert_int_equal(send_user(f, 7, 0), TR__ADMIT_SCHEDULE);
    assert_int_equal(tr__mbox_close(&f->mb),
                     tr__mb_epoch_bits(7) | TR__MB_DEAD | 1);
    /* After close, the right generation is refused too, on every path. */
    assert_int_equal(tr__mbox_admit(&f->mb, 7, false, &w), TR__ADMIT_DEAD);
    assert_int_equal(tr__mbox_admit(&f->mb, 7, true, &w), TR__ADMIT_DEAD);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 7, &w), TR__ADMIT_DEAD);
    assert_int_equal(tr__mbox_word(&f->mb),
                     tr__mb_epoch_bits(7) | TR__MB_DEAD | 1);
    /* The message admitted before the close is still there to drain. */
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 0);
    assert_int_equal(tr__mbox_add(&f->mb, (uint64_t)0 - 1),
                     tr__mb_epoch_bits(7) | TR__MB_DEAD);

    /* The slot's next owner: the old generation stays dead. */
    tr__mbox_open(&f->mb, &f->sys, 8, 4, NULL);
    assert_int_equal(tr__mbox_admit(&f->mb, 7, false, &w), TR__ADMIT_DEAD);
    assert_int_equal(send_user(f, 8, 1), TR__ADMIT_SCHEDULE);
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 1);
    assert_null(tr__mbox_pop(&f->mb));
}

static void
test_schedule_exactly_when_tokens_zero(void **state)
{
    fixture *f = *state;
    uint64_t w;

    tr__mbox_open(&f->mb, &f->sys, 1, 8, NULL);
    assert_int_equal(tr__mbox_admit(&f->mb, 1, false, &w), TR__ADMIT_SCHEDULE);
    assert_int_equal(w, tr__mb_epoch_bits(1));
    assert_int_equal(tr__mbox_admit(&f->mb, 1, false, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 1, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit(&f->mb, 1, true, &w), TR__ADMIT_OK);

    /* Releasing the user counts leaves the system token: still OK. */
    w = tr__mbox_add(&f->mb, (uint64_t)0 - 3);
    assert_int_equal(w, tr__mb_epoch_bits(1) | TR__MB_SYS_ONE);
    assert_int_equal(tr__mbox_admit(&f->mb, 1, false, &w), TR__ADMIT_OK);
    w = tr__mbox_add(&f->mb, (uint64_t)0 - TR__MB_SYS_ONE);
    assert_int_equal(w, tr__mb_epoch_bits(1) | 1);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 1, &w), TR__ADMIT_OK);

    /* Back to zero tokens: the next admission, of either lane, schedules,
     * and only that one. */
    w = tr__mbox_add(&f->mb, (uint64_t)0 - (1 + TR__MB_SYS_ONE));
    assert_int_equal(w, tr__mb_epoch_bits(1));
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 1, &w), TR__ADMIT_SCHEDULE);
    assert_int_equal(tr__mbox_admit(&f->mb, 1, false, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 1, &w), TR__ADMIT_OK);
    w = tr__mbox_add(&f->mb, (uint64_t)0 - (1 + 2 * TR__MB_SYS_ONE));
    assert_int_equal(w, tr__mb_epoch_bits(1));
    assert_int_equal(tr__mbox_admit(&f->mb, 1, true, &w), TR__ADMIT_SCHEDULE);
}

static void
test_mute_token(void **state)
{
    fixture *f = *state;
    uint64_t w;

    tr__mbox_open(&f->mb, &f->sys, 4, 8, NULL);
    assert_int_equal(tr__mbox_admit(&f->mb, 4, false, &w), TR__ADMIT_SCHEDULE);
    /* A muting turn releases its count and takes MUTE in one RMW. */
    w = tr__mbox_add(&f->mb, TR__MB_MUTE - 1);
    assert_int_equal(w, tr__mb_epoch_bits(4) | TR__MB_MUTE);
    assert_true((w & TR__MB_TOKENS) != 0);
    /* Muted with nothing waiting: no sender schedules it. */
    assert_int_equal(tr__mbox_admit(&f->mb, 4, false, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit_sys(&f->mb, 4, &w), TR__ADMIT_OK);
    assert_int_equal(w, tr__mb_epoch_bits(4) | TR__MB_MUTE | 1);
    /* Unmuted turn: releases counts and MUTE; the word drops to zero. */
    w = tr__mbox_add(&f->mb, (uint64_t)0 - (TR__MB_MUTE + 1 + TR__MB_SYS_ONE));
    assert_int_equal(w, tr__mb_epoch_bits(4));
    assert_int_equal(tr__mbox_admit(&f->mb, 4, false, &w), TR__ADMIT_SCHEDULE);
    /* MUTE does not count against capacity. */
    tr__mbox_open(&f->mb, &f->sys, 4, 1, NULL);
    tr__mbox_add(&f->mb, TR__MB_MUTE);
    assert_int_equal(tr__mbox_admit(&f->mb, 4, false, &w), TR__ADMIT_OK);
    assert_int_equal(tr__mbox_admit(&f->mb, 4, false, &w), TR__ADMIT_FULL);
}

static void
test_sys_lane(void **state)
{
    fixture *f = *state;
    tr__mnode *n;
    uint64_t w;
    uint32_t i;

    tr__mbox_open(&f->mb, &f->sys, 9, 2, NULL);
    /* Fill the user lane first: system admission ignores its capacity. */
    assert_int_equal(send_user(f, 9, 0), TR__ADMIT_SCHEDULE);
    assert_int_equal(send_user(f, 9, 1), TR__ADMIT_OK);
    assert_int_equal(send_user(f, 9, 2), TR__ADMIT_FULL);
    for (i = 10; i < 20; i++) {
        assert_int_equal(tr__mbox_admit_sys(&f->mb, 9, &w), TR__ADMIT_OK);
        tr__mbox_push_sys(&f->sys, &f->items[i].node);
    }
    w = tr__mbox_word(&f->mb);
    assert_int_equal(user_count(w), 2);
    assert_int_equal(sys_count(w), 10);

    n = tr__mbox_take_sys(&f->sys);
    for (i = 10; i < 20; i++) {
        assert_int_equal(seq_of(n), i);
        n = next_of(n);
    }
    assert_null(n);
    assert_null(tr__mbox_take_sys(&f->sys));

    /* A second batch after a take starts a fresh list. */
    for (i = 20; i < 23; i++) {
        assert_int_equal(tr__mbox_admit_sys(&f->mb, 9, &w), TR__ADMIT_OK);
        tr__mbox_push_sys(&f->sys, &f->items[i].node);
    }
    n = tr__mbox_take_sys(&f->sys);
    for (i = 20; i < 23; i++) {
        assert_int_equal(seq_of(n), i);
        n = next_of(n);
    }
    assert_null(n);
    /* The user lane is untouched by all that. */
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 0);
    assert_int_equal(seq_of(tr__mbox_pop(&f->mb)), 1);
    assert_null(tr__mbox_pop(&f->mb));
    assert_int_equal(
        tr__mbox_add(&f->mb, (uint64_t)0 - (2 + 13 * TR__MB_SYS_ONE)),
        tr__mb_epoch_bits(9));
}

static void
test_waiters(void **state)
{
    fixture *f = *state;
    tr__mnode *n;
    uint32_t i;

    tr__mbox_open(&f->mb, &f->sys, 1, 1, NULL);
    assert_false(tr__mbox_has_waiters(&f->mb));
    assert_null(tr__mbox_grab_waiters(&f->mb));
    for (i = 0; i < 5; i++) {
        tr__mbox_add_waiter(&f->mb, &f->items[i].node);
        assert_true(tr__mbox_has_waiters(&f->mb));
    }
    /* One exchange takes them all, newest first (no reordering pass). */
    n = tr__mbox_grab_waiters(&f->mb);
    assert_false(tr__mbox_has_waiters(&f->mb));
    for (i = 0; i < 5; i++) {
        assert_int_equal(seq_of(n), 4 - i);
        n = next_of(n);
    }
    assert_null(n);
    assert_null(tr__mbox_grab_waiters(&f->mb));
    /* Waiters are not messages: the word never moved. */
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(1));

    tr__mbox_add_waiter(&f->mb, &f->items[7].node);
    n = tr__mbox_grab_waiters(&f->mb);
    assert_int_equal(seq_of(n), 7);
    assert_null(next_of(n));
    assert_null(tr__mbox_grab_waiters(&f->mb));
}

static void
test_swap_oldest(void **state)
{
    fixture *f = *state;
    tr__mnode *oldest;

    tr__mbox_open(&f->mb, &f->sys, 2, 2, NULL);
    /* Room: admitted and pushed like a plain send. */
    oldest = NULL;
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[0].node, &oldest),
        TR__ADMIT_SCHEDULE);
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[1].node, &oldest),
        TR__ADMIT_OK);
    assert_null(oldest);
    /* Full: the oldest comes out, the new one goes in at the back. */
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[2].node, &oldest),
        TR__ADMIT_SWAPPED);
    assert_int_equal(seq_of(oldest), 0);
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[3].node, &oldest),
        TR__ADMIT_SWAPPED);
    assert_int_equal(seq_of(oldest), 1);
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(2) | 2);

    assert_int_equal(seq_of(tr__mbox_pop_locked(&f->mb)), 2);
    assert_int_equal(seq_of(tr__mbox_pop_locked(&f->mb)), 3);
    assert_null(tr__mbox_pop_locked(&f->mb));

    /* Full with nothing linked (both are being handled): FULL, and the
     * new message is not taken. */
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[4].node, &oldest),
        TR__ADMIT_FULL);
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(2) | 2);
    assert_null(tr__mbox_pop_locked(&f->mb));

    /* One released: room again, and the tokens are still nonzero. */
    tr__mbox_add(&f->mb, (uint64_t)0 - 1);
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[4].node, &oldest),
        TR__ADMIT_OK);
    assert_int_equal(seq_of(tr__mbox_pop_locked(&f->mb)), 4);
    assert_int_equal(tr__mbox_add(&f->mb, (uint64_t)0 - 2),
                     tr__mb_epoch_bits(2));
    /* Wrong generation, then after close: DEAD, nothing changes. */
    oldest = NULL;
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 3, &f->items[5].node, &oldest),
        TR__ADMIT_DEAD);
    tr__mbox_close(&f->mb);
    assert_int_equal(
        tr__mbox_swap_oldest(&f->mb, 2, &f->items[5].node, &oldest),
        TR__ADMIT_DEAD);
    assert_null(oldest);
    assert_null(tr__mbox_pop_locked(&f->mb));
    assert_int_equal(tr__mbox_word(&f->mb), tr__mb_epoch_bits(2) | TR__MB_DEAD);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_sets_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_with_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pop_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pop_at_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pop_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_fields_saturate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedule_exactly_when_tokens_zero,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_mute_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sys_lane, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_oldest, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
