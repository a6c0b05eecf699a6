/* Stress test of the bounded MPSC mailbox (mailbox/mailbox.c) driven by
 * the protocol the actor layer uses. It exercises:
 *
 * - N producer threads sending into ONE mailbox of small capacity C: admit
 *   (retrying, spinning and yielding while FULL), then push; now and then a
 *   producer is preempted between its admission and its push, so the
 *   consumer meets pushes in flight (a NULL pop while the word counts).
 *   About one message in 32 goes to the system lane instead.
 * - One consumer that takes the system lane, pops a random-size batch
 *   through a local copy of the head (tr__mbox_pop_at, stored back at the
 *   end) and releases the batch's counts with one tr__mbox_add, as a turn
 *   does; batches empty the lane (the tail back to NULL) and producers
 *   refill it (setting the head) all the time.
 * - Checks: per-producer FIFO (sequence numbers consecutive per producer)
 *   on both lanes; exact totals; the user count never above C (seen by
 *   producers before each admission and by the consumer after each
 *   release); SCHEDULE returned exactly once per busy->idle transition of
 *   the word; at the end the word is its bare epoch and both lanes are
 *   empty.
 * - The scheduling token (test_activation_handoff): consumer turns run only
 *   when a producer's admission returned SCHEDULE. That producer pushes,
 *   marks the owner scheduled (which must not already be so) and posts a
 *   semaphore on which two consumer threads wait, so successive turns run
 *   on different threads and the mailbox's release/acquire hand-over is
 *   what orders them. A turn that ends with tokens left continues, or
 *   hands itself over through the semaphore (as tr__exec_yield does). It
 *   checks that no two turns ever run at once, that every activation finds
 *   tokens, and at the end that activations == SCHEDULE results + hand-overs
 *   exactly and that no activation is left over.
 *
 * Scale: TR_STRESS_THREADS producers (default 4; 2 under TSan),
 * TR_STRESS_MSGS messages per producer (default 200000; 20000 under any
 * sanitizer), TR_STRESS_CAPACITY (default 64). TR_STRESS_SEED replays a
 * run's random choices (batch sizes, yields, lanes); the seed is printed
 * first. The interleaving itself is up to the OS scheduler. */
#include "tr_test.h"
#include "tr_stress.h"

#include "mailbox/mailbox.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <string.h>

#define GEN         42u
#define MAX_THREADS 64

typedef struct msg {
    tr__mnode node;
    uint32_t producer;
    uint32_t seq; /* per producer and lane, from 0 */
    bool sys;
} msg;

typedef struct params {
    uint64_t seed;
    uint32_t producers;
    uint32_t msgs;
    uint32_t capacity;
    uint64_t timeout_ms;
} params;

static params P;

typedef struct run run;

typedef struct producer {
    run *r;
    uint32_t index;
    msg *msgs;
    uint64_t rng;
    pthread_t thread;
} producer;

struct run {
    tr__mailbox mb;
    tr__lane sys;
    bool activation; /* test_activation_handoff's protocol */
    producer prod[MAX_THREADS];
    uint64_t total_user, total_sys;

    /* Producers, any thread. */
    _Atomic uint64_t schedules; /* SCHEDULE results */
    _Atomic uint64_t fulls;     /* FULL results (for the summary) */

    /* Consumer state: one consumer at a time; in activation mode handed
     * from turn to turn by the mailbox and the semaphore. */
    uint64_t user_got, sys_got;
    /* Releases that left zero tokens. Atomic: counted after the release,
     * when the next turn may already run on another thread. */
    _Atomic uint64_t idle_transitions;
    uint64_t turns;
    uint32_t next_useq[MAX_THREADS], next_sseq[MAX_THREADS];
    uint64_t crng;

    /* Activation mode. */
    sem_t act;
    _Atomic uint32_t scheduled; /* an activation is handed out or running */
    _Atomic uint32_t running;   /* a turn is running */
    _Atomic uint64_t activations, handovers;
    _Atomic uint32_t done; /* main: everything consumed; consumers exit */

    tr_stress_fail fail; /* the first failure and the deadline */
};

/* ---- Producers --------------------------------------------------------- */

/* After an OK/SCHEDULE admission: pushes `m` and, in activation mode,
 * hands the owner to a consumer when the admission asked for it. */
static void
deliver(run *r, producer *p, msg *m, tr__admit a)
{
    if (tr_stress_rnd(&p->rng, 256) == 0) {
        sched_yield(); /* leave the admission counted but not pushed */
    }
    if (m->sys) {
        tr__mbox_push_sys(&r->sys, &m->node);
    } else {
        tr__mbox_push(&r->mb, &m->node);
    }
    if (a != TR__ADMIT_SCHEDULE) {
        return;
    }
    atomic_fetch_add_explicit(&r->schedules, 1, memory_order_relaxed);
    if (!r->activation) {
        return;
    }
    /* seq_cst: the consumer stores 0 and then releases counts (seq_cst);
     * our admission read the word that release made, so we see the 0. */
    if (atomic_exchange_explicit(&r->scheduled, 1, memory_order_seq_cst) != 0) {
        tr_stress_failf(
            &r->fail, "producer %u got SCHEDULE while the owner was scheduled",
            p->index);
        return;
    }
    sem_post(&r->act);
}

static void *
producer_main(void *arg)
{
    producer *p = arg;
    run *r = p->r;
    uint32_t i, spins;

    for (i = 0; i < P.msgs; i++) {
        msg *m = &p->msgs[i];
        tr__admit a;
        uint64_t w;

        for (spins = 0;; spins++) {
            a = m->sys ? tr__mbox_admit_sys(&r->mb, GEN, &w)
                       : tr__mbox_admit(&r->mb, GEN, false, &w);
            if (a != TR__ADMIT_FULL || m->sys) {
                break;
            }
            atomic_fetch_add_explicit(&r->fulls, 1, memory_order_relaxed);
            if ((spins & 63) == 63 && tr_stress_stop(&r->fail)) {
                return NULL;
            }
            if (spins % 4 == 3 || tr_stress_rnd(&p->rng, 4) == 0) {
                sched_yield();
            } else {
                tr__cpu_relax();
            }
        }
        if (a != TR__ADMIT_OK && a != TR__ADMIT_SCHEDULE) {
            tr_stress_failf(&r->fail, "producer %u message %u: admission %d",
                            p->index, i, (int)a);
            return NULL;
        }
        if (!m->sys && (w & TR__MB_USER_MASK) >= P.capacity) {
            tr_stress_failf(&r->fail,
                            "admitted at user count %" PRIu64 " (capacity %u)",
                            w & TR__MB_USER_MASK, P.capacity);
            return NULL;
        }
        if ((a == TR__ADMIT_SCHEDULE) != ((w & TR__MB_TOKENS) == 0)) {
            tr_stress_failf(&r->fail, "admission %d with word %#" PRIx64,
                            (int)a, w);
            return NULL;
        }
        deliver(r, p, m, a);
        if (tr_stress_rnd(&p->rng, 64) == 0) {
            sched_yield();
        }
        if ((i & 1023) == 0 && tr_stress_stop(&r->fail)) {
            return NULL;
        }
    }
    return NULL;
}

/* ---- The consumer's turn ----------------------------------------------- */

static bool
check_order(run *r, msg *m)
{
    uint32_t *next = m->sys ? r->next_sseq : r->next_useq;

    if (m->producer >= P.producers || m->seq != next[m->producer]) {
        tr_stress_failf(&r->fail,
                        "%s lane: producer %u sent seq %u, expected %u",
                        m->sys ? "system" : "user", m->producer, m->seq,
                        m->producer < P.producers ? next[m->producer] : 0);
        return false;
    }
    next[m->producer]++;
    return true;
}

/* Takes the system lane and pops up to a random budget of user messages,
 * checking order. Returns the counts to release. */
static uint64_t
turn(run *r)
{
    uint32_t budget = 1 + tr_stress_rnd(&r->crng, 2 * P.capacity);
    uint64_t consumed = 0;
    tr__mnode *s = tr__mbox_take_sys(&r->sys);
    tr__mnode *head;
    uint32_t k;

    r->turns++;
    while (s != NULL) {
        tr__mnode *next = atomic_load_explicit(&s->next, memory_order_relaxed);
        msg *m = (msg *)s;

        if (!m->sys || !check_order(r, m)) {
            tr_stress_failf(&r->fail, "bad system message");
            return consumed;
        }
        r->sys_got++;
        consumed += TR__MB_SYS_ONE;
        s = next;
    }
    /* As an actor's turn: the head in a local, stored back at the end
     * (before the release that may hand the owner to another consumer). */
    head = tr__mbox_head(&r->mb);
    for (k = 0; k < budget; k++) {
        msg *m = (msg *)tr__mbox_pop_at(&r->mb, &head);

        if (m == NULL) {
            break;
        }
        if (m->sys || !check_order(r, m)) {
            tr_stress_failf(&r->fail, "bad user message");
            break;
        }
        r->user_got++;
        consumed += TR__MB_USER_ONE;
    }
    tr__mbox_head_back(&r->mb, head);
    return consumed;
}

static bool
all_consumed(run *r)
{
    return r->user_got == r->total_user && r->sys_got == r->total_sys;
}

static void
check_release(run *r, uint64_t w)
{
    if ((w & TR__MB_USER_MASK) > P.capacity) {
        tr_stress_failf(&r->fail, "user count %" PRIu64 " above capacity %u",
                        w & TR__MB_USER_MASK, P.capacity);
    }
    if ((w & TR__MB_TOKENS) == 0) {
        atomic_fetch_add_explicit(&r->idle_transitions, 1,
                                  memory_order_relaxed);
    }
}

/* Free-running consumer (test_mpsc_order). */
static void *
consumer_main(void *arg)
{
    run *r = arg;

    while (!all_consumed(r) && !tr_stress_stop(&r->fail)) {
        uint64_t consumed = turn(r);

        if (consumed == 0) {
            sched_yield(); /* empty, or a push in flight */
            continue;
        }
        check_release(r, tr__mbox_add(&r->mb, (uint64_t)0 - consumed));
        if (tr_stress_rnd(&r->crng, 16) == 0) {
            sched_yield();
        }
    }
    return NULL;
}

/* Activation-driven consumer (test_activation_handoff): two of these wait
 * on the semaphore; each activation runs turns until the word goes idle
 * or the turn hands itself over. */
static void *
activated_main(void *arg)
{
    run *r = arg;

    while (!tr_stress_stop(&r->fail)) {
        struct timespec ts;

        /* sem_timedwait takes CLOCK_REALTIME; fine for a 10 ms poll. */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (sem_timedwait(&r->act, &ts) != 0) {
            if (atomic_load_explicit(&r->done, memory_order_acquire)) {
                return NULL;
            }
            continue;
        }
        atomic_fetch_add_explicit(&r->activations, 1, memory_order_relaxed);
        if (atomic_exchange_explicit(&r->running, 1, memory_order_acq_rel) !=
            0) {
            tr_stress_failf(&r->fail, "two turns at once");
            return NULL;
        }
        if (!atomic_load_explicit(&r->scheduled, memory_order_relaxed)) {
            tr_stress_failf(&r->fail, "activated while not scheduled");
            return NULL;
        }
        if ((tr__mbox_word(&r->mb) & TR__MB_TOKENS) == 0) {
            tr_stress_failf(&r->fail, "activated with no tokens");
            return NULL;
        }
        for (;;) {
            uint64_t consumed = turn(r), w;

            if (tr_stress_stop(&r->fail)) {
                return NULL;
            }
            atomic_store_explicit(&r->running, 0, memory_order_release);
            /* seq_cst: before the release below; a producer that sees the
             * released word sees this store (see deliver()). */
            atomic_store_explicit(&r->scheduled, 0, memory_order_seq_cst);
            w = tr__mbox_add(&r->mb, (uint64_t)0 - consumed);
            /* If w has no tokens, the next turn may already be running:
             * from here on only atomics until we know we still own it. */
            check_release(r, w);
            if ((w & TR__MB_TOKENS) == 0) {
                break; /* idle: the next SCHEDULE activates a turn */
            }
            /* Tokens left: nobody can have been told to schedule us. */
            if (atomic_exchange_explicit(&r->scheduled, 1,
                                         memory_order_seq_cst) != 0) {
                tr_stress_failf(
                    &r->fail, "scheduled by a producer while tokens were left");
                return NULL;
            }
            if (consumed == 0) {
                sched_yield(); /* a push in flight */
            }
            if (tr_stress_rnd(&r->crng, 8) == 0) {
                /* Hand the turn over, as a yield to the ring does. */
                atomic_fetch_add_explicit(&r->handovers, 1,
                                          memory_order_relaxed);
                sem_post(&r->act);
                break;
            }
            if (atomic_exchange_explicit(&r->running, 1,
                                         memory_order_acq_rel) != 0) {
                tr_stress_failf(&r->fail, "two turns at once");
                return NULL;
            }
        }
    }
    return NULL;
}

/* ---- Driver ------------------------------------------------------------ */

static void
run_init(run *r, bool activation)
{
    uint64_t rng = P.seed ^ (activation ? 0xac7u : 0);
    uint32_t i, j;

    memset(r, 0, sizeof *r);
    r->activation = activation;
    tr_stress_fail_init(&r->fail);
    sem_init(&r->act, 0, 0);
    tr__mbox_open(&r->mb, &r->sys, GEN, P.capacity, NULL);
    r->crng = tr__mix64(&rng);
    for (i = 0; i < P.producers; i++) {
        producer *p = &r->prod[i];
        uint32_t useq = 0, sseq = 0;

        p->r = r;
        p->index = i;
        p->rng = tr__mix64(&rng);
        p->msgs = calloc(P.msgs, sizeof *p->msgs);
        assert_non_null(p->msgs);
        for (j = 0; j < P.msgs; j++) {
            msg *m = &p->msgs[j];

            m->producer = i;
            m->sys = tr_stress_rnd(&rng, 32) == 0;
            m->seq = m->sys ? sseq++ : useq++;
        }
        r->total_user += useq;
        r->total_sys += sseq;
    }
    tr_stress_arm(&r->fail, tr__now_ns(), P.timeout_ms);
}

static void
run_fini(run *r)
{
    uint32_t i;

    for (i = 0; i < P.producers; i++) {
        free(r->prod[i].msgs);
    }
    sem_destroy(&r->act);
    tr_stress_fail_fini(&r->fail);
}

static void
check_end(run *r)
{
    uint64_t w = tr__mbox_word(&r->mb);
    uint32_t i;

    assert_int_equal(r->user_got, r->total_user);
    assert_int_equal(r->sys_got, r->total_sys);
    for (i = 0; i < P.producers; i++) {
        assert_int_equal((uint64_t)r->next_useq[i] + r->next_sseq[i], P.msgs);
    }
    assert_int_equal(w, tr__mb_epoch_bits(GEN));
    assert_null(tr__mbox_pop(&r->mb));
    assert_null(tr__mbox_take_sys(&r->sys));
    /* Each SCHEDULE was one idle->busy move of the tokens; the consumer
     * made every busy->idle move, and the run starts and ends idle. */
    assert_int_equal(atomic_load(&r->schedules),
                     atomic_load(&r->idle_transitions));
}

static void
start_producers(run *r)
{
    uint32_t i;

    for (i = 0; i < P.producers; i++) {
        assert_int_equal(pthread_create(&r->prod[i].thread, NULL, producer_main,
                                        &r->prod[i]),
                         0);
    }
}

static void
join_producers(run *r)
{
    uint32_t i;

    for (i = 0; i < P.producers; i++) {
        pthread_join(r->prod[i].thread, NULL);
    }
}

static void
test_mpsc_order(void **state)
{
    run *r = *state;
    pthread_t consumer;
    uint64_t t0 = tr__now_ns();

    run_init(r, false);
    assert_int_equal(pthread_create(&consumer, NULL, consumer_main, r), 0);
    start_producers(r);
    join_producers(r);
    pthread_join(consumer, NULL);
    if (atomic_load(&r->fail.failed)) {
        fail_msg("%s", r->fail.why);
    }
    check_end(r);
    printf("  %" PRIu64 " user + %" PRIu64 " system messages, %" PRIu64
           " turns, %" PRIu64 " FULL, %" PRIu64 " SCHEDULE, %.0f ms\n",
           r->total_user, r->total_sys, r->turns, atomic_load(&r->fulls),
           atomic_load(&r->schedules), (double)(tr__now_ns() - t0) / 1e6);
}

static void
test_activation_handoff(void **state)
{
    run *r = *state;
    pthread_t consumers[2];
    uint64_t t0 = tr__now_ns();
    int leftover = -1;
    uint32_t i;

    run_init(r, true);
    for (i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&consumers[i], NULL, activated_main, r),
                         0);
    }
    start_producers(r);
    join_producers(r);
    /* Wait for the last turn to go idle, then let the consumers go. The
     * consumer state is read only after the joins below. */
    while (!tr_stress_stop(&r->fail) &&
           (atomic_load(&r->scheduled) ||
            tr__mbox_word(&r->mb) != tr__mb_epoch_bits(GEN))) {
        struct timespec ts = {0, 1000000L};

        nanosleep(&ts, NULL);
    }
    atomic_store_explicit(&r->done, 1, memory_order_release);
    for (i = 0; i < 2; i++) {
        pthread_join(consumers[i], NULL);
    }
    if (atomic_load(&r->fail.failed)) {
        fail_msg("%s", r->fail.why);
    }
    check_end(r);
    assert_int_equal(sem_getvalue(&r->act, &leftover), 0);
    assert_int_equal(leftover, 0);
    assert_int_equal(atomic_load(&r->activations),
                     atomic_load(&r->schedules) + atomic_load(&r->handovers));
    assert_true(atomic_load(&r->schedules) >= 1);
    assert_int_equal(atomic_load(&r->running), 0);
    assert_int_equal(atomic_load(&r->scheduled), 0);
    printf("  %" PRIu64 " user + %" PRIu64 " system messages, %" PRIu64
           " turns, %" PRIu64 " SCHEDULE, %" PRIu64 " hand-overs, %.0f ms\n",
           r->total_user, r->total_sys, r->turns, atomic_load(&r->schedules),
           atomic_load(&r->handovers), (double)(tr__now_ns() - t0) / 1e6);
}

static int
setup(void **state)
{
    run *r = calloc(1, sizeof *r);

    if (r == NULL) {
        return -1;
    }
    *state = r;
    return 0;
}

static int
teardown(void **state)
{
    run_fini(*state);
    free(*state);
    return 0;
}

int
main(void)
{
    const char *san = getenv("TR_SANITIZER");
    bool sanitized = san != NULL && *san != '\0' && strcmp(san, "none") != 0;
    bool tsan = san != NULL && strcmp(san, "thread") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mpsc_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_handoff, setup,
                                        teardown),
    };

    P.seed = tr_test_env_u64("TR_STRESS_SEED", tr__now_ns());
    P.producers = (uint32_t)tr_test_env_u64("TR_STRESS_THREADS", tsan ? 2 : 4);
    P.msgs =
        (uint32_t)tr_test_env_u64("TR_STRESS_MSGS", sanitized ? 20000 : 200000);
    P.capacity = (uint32_t)tr_test_env_u64("TR_STRESS_CAPACITY", 64);
    P.timeout_ms = (uint64_t)(120000.0 * tr_test_timeout_multiplier());
    printf("test_stress_mpsc: seed %" PRIu64 " (TR_STRESS_SEED=%" PRIu64
           " replays), %u producers x %u messages, capacity %u\n",
           P.seed, P.seed, P.producers, P.msgs, P.capacity);
    fflush(stdout);
    if (P.producers < 1 || P.producers > MAX_THREADS || P.msgs < 1 ||
        P.capacity < 1 || P.capacity > TR_MAILBOX_MAX_CAPACITY) {
        fprintf(stderr,
                "test_stress_mpsc: TR_STRESS_THREADS must be 1..%d, "
                "TR_STRESS_MSGS and TR_STRESS_CAPACITY positive\n",
                MAX_THREADS);
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
