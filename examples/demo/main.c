/* demo: troupe's actors at work, in three parts.
 *
 * (a) A dispatcher spawns 5,000 worker actors and sends each of them 20
 *     jobs; every worker computes a result and reports it to one collector,
 *     whose bounded mailbox makes the workers wait their turn
 *     (backpressure). The totals are checked against a plain loop.
 * (b) A full mailbox under each of the five overflow policies: what the
 *     sender saw, what the receiver handled, what went to dead letters.
 * (c) The runtimes' counters.
 *
 * Every check the demo makes is exact; it exits 1 if any fails. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <troupe/troupe.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static int failures;

/* Prints a line; with `ok` >= 0, ends it with "ok" or "FAILED" in the
 * last column and counts a failure. */
static void
line(int ok, const char *fmt, ...)
{
    char buf[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (ok < 0) {
        printf("%s\n", buf);
        return;
    }
    printf("%-72s %s\n", buf, ok ? "ok" : "FAILED");
    failures += !ok;
}

/* 1234567 -> "1,234,567"; a few buffers in rotation, for one printf. */
static const char *
num(uint64_t v)
{
    static char bufs[8][32];
    static unsigned k;
    char tmp[32], *out = bufs[k++ % 8];
    int len = snprintf(tmp, sizeof tmp, "%" PRIu64, v), j = 0;

    for (int i = 0; i < len; i++) {
        out[j++] = tmp[i];
        if ((len - i - 1) % 3 == 0 && i != len - 1) {
            out[j++] = ',';
        }
    }
    out[j] = '\0';
    return out;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ======================================================================
 * (a) 5,000 workers, one dispatcher, one collector
 * ====================================================================== */

#define NWORKERS 5000
#define ROUNDS   20
#define NJOBS    ((uint64_t)NWORKERS * ROUNDS)

enum { MSG_ROUND = 1, MSG_JOB, MSG_RESULT };

struct job {
    uint32_t round;
    uint64_t x;
};

struct result {
    uint32_t worker, round;
    uint32_t in_order; /* the worker got its jobs in round order */
    uint64_t steps;
};

/* What the collector found, handed to main() by its terminate hook. */
struct summary {
    uint64_t results, steps;
    uint64_t out_of_order; /* results or jobs not in send order */
    uint64_t complete;     /* workers that reported all ROUNDS results */
};

/* The work: steps of the Collatz sequence from x down to 1. */
static uint64_t
collatz_steps(uint64_t x)
{
    uint64_t n = 0;

    for (; x != 1; n++) {
        x = (x & 1) ? 3 * x + 1 : x / 2;
    }
    return n;
}

/* ---- Worker: one job in, one result out -------------------------------- */

struct worker_arg {
    tr_ref collector;
    uint32_t index;
};

struct worker {
    struct worker_arg a;
    uint32_t next_round;
};

static tr_status
worker_init(tr_cx *cx, struct worker *self, const struct worker_arg *arg)
{
    (void)cx;
    self->a = *arg;
    return TR_OK;
}

static tr_status
on_job(tr_cx *cx, struct worker *self, const struct job *j)
{
    struct result r = {self->a.index, j->round, j->round == self->next_round,
                       collatz_steps(j->x)};

    self->next_round = j->round + 1;
    /* When the collector is full this returns TR_PENDING: the result is
     * held, delivered in order once there is room, and this worker handles
     * no further job until then. Nothing else to do here. */
    return tr_send(cx, self->a.collector, MSG_RESULT, &r, sizeof r);
}

TR_ACTOR(worker_actor, struct worker,
         TR_ON_INIT(struct worker_arg, worker_init),
         TR_ON(MSG_JOB, struct job, on_job));

/* ---- Collector: checks and sums the results ---------------------------- */

struct collector_arg {
    struct summary *out; /* main()'s; written once, by the terminate hook */
};

struct collector {
    struct summary *out;
    struct summary s;
    uint32_t next_round[NWORKERS];
};

static tr_status
collector_init(tr_cx *cx, struct collector *self,
               const struct collector_arg *arg)
{
    (void)cx;
    self->out = arg->out;
    return TR_OK;
}

static tr_status
on_result(tr_cx *cx, struct collector *self, const struct result *r)
{
    (void)cx;
    if (r->worker >= NWORKERS) {
        return TR_EINVAL; /* cannot happen; fails the collector if it does */
    }
    if (!r->in_order || r->round != self->next_round[r->worker]) {
        self->s.out_of_order++;
    }
    self->next_round[r->worker] = r->round + 1;
    self->s.results++;
    self->s.steps += r->steps;
    return TR_OK;
}

static tr_status
collector_end(tr_cx *cx, struct collector *self, const tr_reason *why)
{
    (void)cx;
    (void)why;
    for (uint32_t i = 0; i < NWORKERS; i++) {
        self->s.complete += self->next_round[i] == ROUNDS;
    }
    *self->out = self->s;
    return TR_OK;
}

TR_ACTOR(collector_actor, struct collector,
         TR_ON_INIT(struct collector_arg, collector_init),
         TR_ON(MSG_RESULT, struct result, on_result),
         TR_ON_TERMINATE(collector_end));

/* ---- Dispatcher: spawns the workers, sends one round per turn ---------- */

struct dispatcher {
    tr_ref workers[NWORKERS];
    uint32_t round;
};

static tr_status
dispatcher_init(tr_cx *cx, struct dispatcher *self, const tr_ref *collector)
{
    for (uint32_t i = 0; i < NWORKERS; i++) {
        struct worker_arg wa = {*collector, i};
        tr_spawn_opts o = {.arg = &wa, .arg_len = sizeof wa};
        tr_status st = tr_spawn(cx, &worker_actor, &o, &self->workers[i]);

        if (st != TR_OK) {
            return st;
        }
    }
    return TR_OK;
}

static tr_status
on_round(tr_cx *cx, struct dispatcher *self, const void *none)
{
    (void)none;
    for (uint32_t i = 0; i < NWORKERS; i++) {
        struct job j = {self->round, (uint64_t)self->round * NWORKERS + i + 1};
        /* A worker gets ROUNDS jobs in all, far below its mailbox's
         * capacity, so these sends are queued at once (TR_OK). */
        tr_status st = tr_send(cx, self->workers[i], MSG_JOB, &j, sizeof j);

        if (st != TR_OK) {
            return st < 0 ? st : TR_EFAILED;
        }
    }
    /* One round per turn: other actors run between rounds. */
    if (++self->round < ROUNDS) {
        return tr_send(cx, tr_self(cx), MSG_ROUND, NULL, 0);
    }
    return TR_OK;
}

TR_ACTOR(dispatcher_actor, struct dispatcher,
         TR_ON_INIT(tr_ref, dispatcher_init), TR_ON(MSG_ROUND, void, on_round));

static int
part_a(tr_stats *stats)
{
    struct summary sum = {0};
    struct collector_arg ca = {&sum};
    tr_spawn_opts co = {.arg = &ca, .arg_len = sizeof ca};
    tr_runtime *rt;
    tr_ref collector, dispatcher;
    tr_status st;
    uint64_t expected = 0, t0;

    for (uint64_t x = 1; x <= NJOBS; x++) {
        expected += collatz_steps(x);
    }
    st = tr_runtime_new(&rt, NULL); /* a worker thread per core */
    if (st != TR_OK) {
        printf("tr_runtime_new: %s\n", tr_strerror(st));
        return -1;
    }
    t0 = now_ns();
    st = tr_spawn(rt, &collector_actor, &co, &collector);
    if (st == TR_OK) {
        tr_spawn_opts dopts = {.arg = &collector, .arg_len = sizeof collector};

        st = tr_spawn(rt, &dispatcher_actor, &dopts, &dispatcher);
    }
    if (st == TR_OK) {
        st = tr_send(rt, dispatcher, MSG_ROUND, NULL, 0);
    }
    /* Shutdown lets the actors finish all queued work first; then the
     * collector's terminate hook hands its summary over. */
    tr_runtime_shutdown(rt, 60000);
    t0 = now_ns() - t0;
    tr_runtime_stats(rt, stats);
    tr_runtime_destroy(&rt);
    if (st != TR_OK) {
        printf("starting (a): %s\n", tr_strerror(st));
        failures++;
    }

    line(-1, "(a) %s workers, a dispatcher and a collector, on %u threads",
         num(NWORKERS), stats->workers);
    line(-1, "    jobs: x = 1..%s, %d per worker; a result: x's Collatz steps",
         num(NJOBS), ROUNDS);
    line(sum.results == NJOBS && sum.complete == NWORKERS,
         "    the collector got %s results, all %d from %s workers",
         num(sum.results), ROUNDS, num(sum.complete));
    line(sum.out_of_order == 0, "    jobs or results out of send order: %s",
         num(sum.out_of_order));
    line(sum.steps == expected,
         "    sum of the results: %s; a plain loop says %s", num(sum.steps),
         num(expected));
    line(-1, "    results held while the collector's mailbox (%s) was full: %s",
         num(TR_MAILBOX_DEFAULT_CAPACITY), num(stats->held));
    line(-1, "    %s actors and %s messages in %.0f ms", num(stats->spawned),
         num(stats->handled), (double)t0 / 1e6);
    return 0;
}

/* ======================================================================
 * (b) A full mailbox under each overflow policy
 * ====================================================================== */

#define CAPACITY 8
#define FLOOD    20
#define ALL      ((1u << FLOOD) - 1)
#define FIRST    ((1u << CAPACITY) - 1)                    /* #0..#7 */
#define LAST     (ALL & ~((1u << (FLOOD - CAPACITY)) - 1)) /* #12..#19 */

enum { MSG_ITEM = 100, MSG_FLOOD };

/* What one policy did; items as bit masks (bit i: item #i). The actors fill
 * it in; main() reads it after tr_runtime_shutdown(), when none runs. */
struct trial {
    unsigned ok, pending, efull, dropped; /* the sender's tr_send results */
    uint32_t efull_items;                 /* items refused with TR_EFULL */
    uint32_t handled;                     /* items the receiver handled */
    bool in_order;                        /* ... in send order */
    tr_reason exit;                       /* why the receiver ended */
    _Atomic uint32_t dl_dropped, dl_dead; /* dead letters by reason */
    _Atomic uint32_t dl_other;
};

/* Any thread may call it; it must not block: atomics only. */
static void
on_dead_letter(void *arg, const tr_dead_letter *dl)
{
    struct trial *t = arg;
    unsigned item;

    if (dl->type != MSG_ITEM || dl->len != sizeof item) {
        atomic_fetch_add_explicit(&t->dl_other, 1, memory_order_relaxed);
        return;
    }
    item = *(const unsigned *)dl->data % FLOOD;
    if (dl->reason == TR_DROPPED) {
        atomic_fetch_or_explicit(&t->dl_dropped, 1u << item,
                                 memory_order_relaxed);
    } else if (dl->reason == TR_EDEAD) {
        atomic_fetch_or_explicit(&t->dl_dead, 1u << item, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&t->dl_other, 1, memory_order_relaxed);
    }
}

/* ---- Receiver: notes what it handled and how it ended ------------------ */

struct receiver {
    struct trial *t;
    unsigned next;
};

struct receiver_arg {
    struct trial *t;
};

static tr_status
receiver_init(tr_cx *cx, struct receiver *self, const struct receiver_arg *a)
{
    (void)cx;
    self->t = a->t;
    self->t->in_order = true;
    return TR_OK;
}

static tr_status
on_item(tr_cx *cx, struct receiver *self, const unsigned *item)
{
    (void)cx;
    if (*item < self->next) {
        self->t->in_order = false;
    }
    self->next = *item + 1;
    self->t->handled |= 1u << *item;
    return TR_OK;
}

static tr_status
receiver_end(tr_cx *cx, struct receiver *self, const tr_reason *why)
{
    (void)cx;
    self->t->exit = *why;
    return TR_OK;
}

TR_ACTOR(receiver_actor, struct receiver,
         TR_ON_INIT(struct receiver_arg, receiver_init),
         TR_ON(MSG_ITEM, unsigned, on_item), TR_ON_TERMINATE(receiver_end));

/* ---- Sender: floods in one handler, pausing only on TR_PENDING --------- */

struct sender_arg {
    tr_ref to;
    struct trial *t;
};

struct sender {
    struct sender_arg a;
    unsigned next;
};

static tr_status
sender_init(tr_cx *cx, struct sender *self, const struct sender_arg *arg)
{
    (void)cx;
    self->a = *arg;
    return TR_OK;
}

static tr_status
on_flood(tr_cx *cx, struct sender *self, const void *none)
{
    struct trial *t = self->a.t;

    (void)none;
    while (self->next < FLOOD) {
        unsigned item = self->next++;
        tr_status st = tr_send(cx, self->a.to, MSG_ITEM, &item, sizeof item);

        if (st == TR_OK) {
            t->ok++;
        } else if (st == TR_PENDING) {
            /* Held in our outbox; we are muted after this handler. Resume
             * with a message to ourselves, which runs once we are not. */
            t->pending++;
            return tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0);
        } else if (st == TR_EFULL) {
            t->efull++; /* not sent: ours to retry or give up on */
            t->efull_items |= 1u << item;
        } else if (st == TR_DROPPED) {
            t->dropped++; /* taken, then dropped into dead letters */
        } else {
            return st;
        }
    }
    return TR_OK;
}

TR_ACTOR(sender_actor, struct sender,
         TR_ON_INIT(struct sender_arg, sender_init),
         TR_ON(MSG_FLOOD, void, on_flood));

/* ---- Running and printing one trial ------------------------------------ */

/* "#0-#7, #12" for the items in `mask`; "none" for none. */
static const char *
items(uint32_t mask)
{
    static char bufs[4][96];
    static unsigned k;
    char *out = bufs[k++ % 4];
    size_t len = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < FLOOD; i++) {
        unsigned j = i;

        if (!(mask & (1u << i))) {
            continue;
        }
        while (j + 1 < FLOOD && (mask & (1u << (j + 1)))) {
            j++;
        }
        len +=
            (size_t)snprintf(out + len, 96 - len, j > i ? "%s#%u-#%u" : "%s#%u",
                             len ? ", " : "", i, j);
        i = j;
    }
    return len ? out : "none";
}

static tr_status
run_trial(tr_overflow policy, struct trial *t, tr_stats *stats)
{
    /* One worker: the sender's handler runs to completion before the
     * receiver can run, so every run fills the mailbox the same way. */
    tr_config cfg = {
        .workers = 1, .dead_letter_fn = on_dead_letter, .dead_letter_arg = t};
    struct receiver_arg ra = {t};
    tr_mailbox_opts mailbox = {CAPACITY, policy};
    tr_spawn_opts ro = {.arg = &ra, .arg_len = sizeof ra, .mailbox = &mailbox};
    struct sender_arg sa = {.t = t};
    tr_spawn_opts so = {.arg = &sa, .arg_len = sizeof sa};
    tr_runtime *rt;
    tr_ref sender;
    tr_status st = tr_runtime_new(&rt, &cfg);

    if (st != TR_OK) {
        return st;
    }
    st = tr_spawn(rt, &receiver_actor, &ro, &sa.to);
    if (st == TR_OK) {
        st = tr_spawn(rt, &sender_actor, &so, &sender);
    }
    if (st == TR_OK) {
        st = tr_send(rt, sender, MSG_FLOOD, NULL, 0);
    }
    tr_runtime_shutdown(rt, 10000); /* finishes the work, then stops */
    tr_runtime_stats(rt, stats);
    tr_runtime_destroy(&rt);
    return st;
}

struct expect {
    tr_overflow policy;
    const char *name;
    uint32_t handled, efull, dropped, dead;
    tr_exit_kind exit;
};

static const struct expect expects[] = {
    {TR_BACKPRESSURE, "backpressure", ALL, 0, 0, 0, TR_EXIT_SHUTDOWN},
    {TR_REJECT, "reject", FIRST, ALL & ~FIRST, 0, 0, TR_EXIT_SHUTDOWN},
    {TR_DROP_NEWEST, "drop newest", FIRST, 0, ALL & ~FIRST, 0,
     TR_EXIT_SHUTDOWN},
    {TR_DROP_OLDEST, "drop oldest", LAST, 0, ALL & ~LAST, 0, TR_EXIT_SHUTDOWN},
    {TR_FAIL, "fail", 0, 0, ALL & ~FIRST, FIRST, TR_EXIT_OVERLOAD},
};

static const char *
exit_name(tr_exit_kind k)
{
    static const char *const names[] = {"normal", "shutdown", "killed",
                                        "failed", "overload"};

    return (unsigned)k < 5 ? names[k] : "?";
}

static void
part_b(tr_stats *sum)
{
    line(-1, "(b) a full mailbox under each overflow policy");
    line(-1,
         "    a receiver with room for %d; an actor sends it #0-#%d in one "
         "handler;",
         CAPACITY, FLOOD - 1);
    line(-1, "    one worker thread, so the receiver runs after that handler");
    for (size_t i = 0; i < sizeof expects / sizeof expects[0]; i++) {
        const struct expect *e = &expects[i];
        struct trial t = {0};
        tr_stats s = {0};
        tr_status st = run_trial(e->policy, &t, &s);
        uint32_t dropped = atomic_load(&t.dl_dropped);
        uint32_t dead = atomic_load(&t.dl_dead);
        char saw[96], dl[96];
        int n;

        sum->spawned += s.spawned;
        sum->alive += s.alive;
        sum->sent += s.sent;
        sum->handled += s.handled;
        sum->held += s.held;
        sum->rejected += s.rejected;
        sum->dead_letters += s.dead_letters;
        sum->dropped += s.dropped;
        sum->steals += s.steals;
        sum->parks += s.parks;

        n = snprintf(saw, sizeof saw, "OK %u", t.ok);
        if (t.pending) {
            n += snprintf(saw + n, sizeof saw - (size_t)n,
                          ", PENDING %u (held, then delivered)", t.pending);
        }
        if (t.efull) {
            n += snprintf(saw + n, sizeof saw - (size_t)n,
                          ", EFULL %u (%s not sent)", t.efull,
                          items(t.efull_items));
        }
        if (t.dropped) {
            snprintf(saw + n, sizeof saw - (size_t)n, ", DROPPED %u",
                     t.dropped);
        }
        n = snprintf(dl, sizeof dl, "%s", dropped || dead ? "" : "none");
        if (dropped) {
            n += snprintf(dl + n, sizeof dl - (size_t)n, "DROPPED %s",
                          items(dropped));
        }
        if (dead) {
            snprintf(dl + n, sizeof dl - (size_t)n, "%sEDEAD %s (were queued)",
                     dropped ? ", " : "", items(dead));
        }
        line(st == TR_OK && t.ok + t.pending + t.efull + t.dropped == FLOOD &&
                 t.handled == e->handled && t.in_order &&
                 t.efull_items == e->efull && dropped == e->dropped &&
                 dead == e->dead && atomic_load(&t.dl_other) == 0 &&
                 t.exit.kind == e->exit,
             "    %-13s sender saw    %s", e->name, saw);
        if (t.exit.kind == TR_EXIT_SHUTDOWN) {
            line(-1, "    %-13s handled       %s", "", items(t.handled));
        } else {
            line(-1, "    %-13s handled       %s; it ended: %s (%s, \"%s\")",
                 "", items(t.handled), exit_name(t.exit.kind),
                 tr_status_name((tr_status)t.exit.code), t.exit.text);
        }
        line(-1, "    %-13s dead letters  %s", "", dl);
    }
}

/* ======================================================================
 * (c) Counters
 * ====================================================================== */

static void
part_c(const tr_stats *a, const tr_stats *b)
{
    /* (a): 20 rounds (one from main, the rest from the dispatcher itself),
     * and a job and a result per job. */
    uint64_t msgs = ROUNDS + 2 * NJOBS;
    /* (b): reject refuses the overflow; drop newest, drop oldest and fail
     * drop it; fail also dead-letters what was queued when it failed. */
    uint64_t over = FLOOD - CAPACITY;

    line(-1, "%-42s %12s %12s", "(c) tr_runtime_stats(), after shutdown", "(a)",
         "(b) summed");
#define ROW(label, f)                                                          \
    line(-1, "    %-38s %12s %12s", label, num(a->f), num(b->f))
    ROW("actors spawned", spawned);
    ROW("actors alive", alive);
    ROW("messages sent (accepted by a mailbox)", sent);
    ROW("messages handled", handled);
    ROW("sends held by backpressure", held);
    ROW("sends refused with EFULL", rejected);
    ROW("dead letters", dead_letters);
    ROW("  of which dropped by a policy", dropped);
    ROW("run-queue steals", steals);
    ROW("worker parks", parks);
#undef ROW
    line(a->spawned == NWORKERS + 2 && a->alive == 0 && a->sent == msgs &&
             a->handled == msgs && a->dead_letters == 0,
         "    (a) %s spawned, %s sent and handled, no dead letters",
         num(NWORKERS + 2), num(msgs));
    line(b->alive == 0 && b->rejected == over && b->dropped == 3 * over &&
             b->dead_letters == 3 * over + CAPACITY,
         "    (b) %s refused, %s dropped, %s dead letters in all", num(over),
         num(3 * over), num(3 * over + CAPACITY));
}

int
main(void)
{
    tr_stats a = {0}, b = {0};

    printf("troupe %s demo\n\n", tr_version_string());
    if (part_a(&a) != 0) {
        return 1;
    }
    printf("\n");
    part_b(&b);
    printf("\n");
    part_c(&a, &b);
    printf("\n%s\n", failures ? "some checks FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
