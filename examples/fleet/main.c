/* fleet: a supervised worker fleet processes a stream of keyed jobs while
 * faults are injected, and accounts for every job.
 *
 *   app (supervisor, one_for_one)
 *   |-- services (supervisor)      -- pricing: a flaky dependency
 *   `-- fleet (pool, hash by key)  -- workers, restarted in place
 *
 * - A producer sends N small jobs, each with a key, to the fleet's one ref;
 *   the pool routes a key always to the same worker. Backpressure: the
 *   producer stops at the first held send and goes on when it is delivered.
 * - Workers crash at random (a handler failure): each restarts in place at
 *   once, and the job it failed on is handed to it again (retry 3).
 * - One job is poison: it fails every time, so after its retries it is
 *   quarantined (a dead letter with TR_EPOISON) and its worker goes on.
 * - One job in 100 needs the pricing service, which has outages. Workers
 *   call it through a circuit breaker (TR_AWAIT_ASK with a deadline): when
 *   it keeps failing the breaker opens and calls fail fast; such jobs
 *   complete in a degraded mode.
 * A status line shows progress; at the end the program prints the tree and
 * the account: submitted = completed + quarantined, every job completed
 * exactly once. It exits non-zero if the account does not balance.
 *
 * Usage: fleet [jobs [crash_one_in]] */
#include <troupe/troupe.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* isatty */

enum { MSG_JOB = 1, MSG_PRICE, MSG_PRODUCE };

#define JOBS        1000000u
#define CRASH_ONE   20000u /* a worker crashes on one job in this many */
#define PRICE_EVERY 100u   /* one job in this many needs the service */
#define PRICE_MS    20u    /* the deadline of a pricing call */
#define POISON      123457u
#define RETRY       3u

/* What the workers share with main: counters, and who to call. */
struct fleet {
    tr_breaker *breaker;
    tr_ref pricing_ref; /* set before jobs flow */
    uint32_t crash_one;
    _Atomic uint64_t done, degraded, dups, crashes;
    _Atomic uint64_t quarantined, other_dead;
    _Atomic uint64_t *seen; /* a bit per job: completed */
    uint64_t njobs;
};

typedef struct fleet *fleet_ptr;

struct job {
    uint64_t id;
    uint64_t key;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The flaky dependency ---------------------------------------------- */

/* Out for 300 ms of every second: it declines every call. */
static tr_status
pricing_price(tr_cx *cx, void *self, const uint64_t *key)
{
    uint64_t price = *key % 997;

    (void)self;
    if ((now_ns() / 1000000u) % 1000 < 300) {
        return tr_reply_error(cx, TR_EFAILED);
    }
    return tr_reply(cx, &price, sizeof price);
}

TR_ACTOR(pricing_actor, char, TR_ON(MSG_PRICE, uint64_t, pricing_price));

/* ---- Workers ----------------------------------------------------------- */

struct worker {
    struct fleet *f;
    uint64_t rng;
    struct job job; /* the job in hand, across an await */
    uint64_t price;
};

static tr_status
worker_init(tr_cx *cx, struct worker *self, const fleet_ptr *f)
{
    self->f = *f;
    self->rng = now_ns() ^ ((uint64_t)tr_self(cx).slot_ << 32) ^ 1;
    return TR_OK;
}

static uint64_t
next_random(struct worker *self)
{
    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    return self->rng;
}

/* Marks a job completed, exactly once. */
static void
complete(struct fleet *f, uint64_t id, bool degraded)
{
    uint64_t bit = UINT64_C(1) << (id % 64);

    if (atomic_fetch_or(&f->seen[id / 64], bit) & bit) {
        atomic_fetch_add(&f->dups, 1);
        return;
    }
    atomic_fetch_add(&f->done, 1);
    if (degraded) {
        atomic_fetch_add(&f->degraded, 1);
    }
}

static tr_status
worker_job(tr_cx *cx, struct worker *self, const struct job *j)
{
    struct fleet *f = self->f;

    TR_ASYNC_BEGIN(cx);
    self->job = *j;
    if (j->id == POISON) {
        return TR_EFAILED; /* every time */
    }
    if (next_random(self) % f->crash_one == 0) {
        atomic_fetch_add(&f->crashes, 1);
        return TR_EFAILED; /* a crash: restarted, this job retried */
    }
    if (j->id % PRICE_EVERY != 0) {
        complete(f, j->id, false);
        return TR_OK;
    }
    if (tr_breaker_allow(f->breaker) != TR_OK) {
        complete(f, self->job.id, true); /* open: fail fast, degrade */
        return TR_OK;
    }
    TR_AWAIT_ASK(cx, f->pricing_ref, MSG_PRICE, &self->job.key,
                 sizeof self->job.key, &self->price, sizeof self->price,
                 PRICE_MS);
    (void)tr_breaker_record(self->f->breaker, tr_await_status(cx) == TR_OK);
    complete(self->f, self->job.id, tr_await_status(cx) != TR_OK);
    TR_ASYNC_END(cx, TR_OK);
}

TR_ACTOR(worker_actor, struct worker, TR_ON_INIT(fleet_ptr, worker_init),
         TR_ON(MSG_JOB, struct job, worker_job));

static uint64_t
job_key(uint32_t type, const void *data, size_t len)
{
    struct job j;

    (void)type;
    if (len != sizeof j) {
        return 0;
    }
    memcpy(&j, data, sizeof j);
    return j.key;
}

/* ---- The producer ------------------------------------------------------ */

struct producer {
    tr_ref fleet;
    uint64_t next, n;
    _Atomic uint64_t *submitted;
};

struct producer_arg {
    tr_ref fleet;
    uint64_t n;
    _Atomic uint64_t *submitted;
};

static tr_status
producer_init(tr_cx *cx, struct producer *self, const struct producer_arg *a)
{
    self->fleet = a->fleet;
    self->n = a->n;
    self->submitted = a->submitted;
    return tr_send(cx, tr_self(cx), MSG_PRODUCE, NULL, 0);
}

/* Sends jobs until a send is held (the fleet is full), then goes on from
 * a message to itself, which runs once the held send is delivered. */
static tr_status
producer_produce(tr_cx *cx, struct producer *self, const void *none)
{
    (void)none;
    while (self->next < self->n) {
        struct job j = {self->next, (self->next * 2654435761u) % 4096};
        tr_status st = tr_send(cx, self->fleet, MSG_JOB, &j, sizeof j);

        if (st < 0) {
            fprintf(stderr, "fleet: job %" PRIu64 ": %s\n", j.id,
                    tr_strerror(st));
            return st;
        }
        self->next++;
        atomic_store(self->submitted, self->next);
        if (st == TR_PENDING) {
            return tr_send(cx, tr_self(cx), MSG_PRODUCE, NULL, 0);
        }
    }
    return TR_OK;
}

TR_ACTOR(producer_actor, struct producer,
         TR_ON_INIT(struct producer_arg, producer_init),
         TR_ON(MSG_PRODUCE, void, producer_produce));

/* ---- main -------------------------------------------------------------- */

static void
on_dead_letter(void *arg, const tr_dead_letter *dl)
{
    struct fleet *f = arg;

    if (dl->type == MSG_JOB && dl->reason == TR_EPOISON) {
        atomic_fetch_add(&f->quarantined, 1);
    } else if (dl->type == MSG_JOB) {
        atomic_fetch_add(&f->other_dead, 1);
    }
}

static void
print_child(void *arg, uint32_t depth, const tr_child_info *info)
{
    static const char *const states[] = {"running", "restarting", "stopping"};

    (void)arg;
    printf("  %*s%s%s (%s, %u restarts)\n", (int)depth * 2, "", info->id,
           info->supervisor ? "/" : "", states[info->state], info->restarts);
}

static const char *const circuits[] = {"closed", "open", "half-open"};

int
main(int argc, char **argv)
{
    static struct fleet f;
    tr_config cfg = {.dead_letter_fn = on_dead_letter, .dead_letter_arg = &f};
    tr_pool_spec fleet_spec = {
        .actor = &worker_actor,
        .min = 4,
        .max = 12,
        .route = TR_ROUTE_HASH,
        .key_fn = job_key,
        .worker_capacity = 256,
        .queue = {4096, TR_BACKPRESSURE},
        .retry = RETRY,
    };
    tr_child_spec service_kids[] = {
        {.id = "pricing", .actor = &pricing_actor, .restart = TR_PERMANENT},
    };
    tr_sup_spec services = {
        .strategy = TR_ONE_FOR_ONE, .children = service_kids, .nchildren = 1};
    tr_child_spec app_kids[] = {
        {.id = "services", .sup = &services, .restart = TR_PERMANENT},
        {.id = "fleet", .pool = &fleet_spec, .restart = TR_PERMANENT},
    };
    tr_sup_spec app = {.strategy = TR_ONE_FOR_ONE,
                       .intensity = 10,
                       .period_ms = 10000,
                       .backoff = {.min_ms = 10, .max_ms = 1000, .jitter = 0.2},
                       .children = app_kids,
                       .nchildren = 2};
    struct fleet *fp = &f;
    tr_runtime *rt = NULL;
    tr_ref sup, fleet_ref, svc;
    tr_child_info kids[2];
    _Atomic uint64_t submitted = 0;
    struct producer_arg pa;
    tr_spawn_opts po = {.arg = &pa, .arg_len = sizeof pa};
    tr_pool_info pi = {0};
    tr_stats st;
    uint64_t t0, last_done = 0, last_t, jobs = JOBS;
    uint32_t n = 0;
    bool tty = isatty(STDOUT_FILENO), ok;

    if (argc > 1) {
        jobs = strtoull(argv[1], NULL, 10);
    }
    f.crash_one = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : CRASH_ONE;
    f.njobs = jobs;
    f.seen = calloc(jobs / 64 + 1, sizeof *f.seen);
    if (jobs <= POISON || f.crash_one == 0 || f.seen == NULL) {
        fprintf(stderr, "usage: fleet [jobs (> %u) [crash_one_in]]\n", POISON);
        return 2;
    }
    fleet_spec.arg = &fp;
    fleet_spec.arg_len = sizeof fp;
    if (tr_breaker_new(&f.breaker,
                       &(tr_breaker_spec){.failures = 5, .reset_ms = 200}) !=
            TR_OK ||
        tr_runtime_new(&rt, &cfg) != TR_OK ||
        tr_sup_start(rt, &app, &sup) != TR_OK ||
        tr_sup_which_children(rt, sup, 0, kids, 2, &n, 5000) != TR_OK ||
        n != 2 ||
        tr_sup_which_children(rt, kids[0].ref, 0, &kids[0], 1, &n, 5000) !=
            TR_OK) {
        fprintf(stderr, "fleet: cannot start\n");
        return 1;
    }
    svc = kids[0].ref; /* the pricing service (its ref survives restarts) */
    fleet_ref = kids[1].ref;
    f.pricing_ref = svc;
    printf("fleet: %" PRIu64 " jobs; a crash per ~%u jobs, job %u is poison, "
           "pricing is out 300 ms a second\n",
           jobs, f.crash_one, POISON);

    pa = (struct producer_arg){fleet_ref, jobs, &submitted};
    t0 = last_t = now_ns();
    if (tr_spawn(rt, &producer_actor, &po, &svc) != TR_OK) {
        return 1;
    }
    for (;;) {
        uint64_t done, now, quarantined;

        nanosleep(&(struct timespec){0, 250000000}, NULL);
        now = now_ns();
        done = atomic_load(&f.done);
        quarantined = atomic_load(&f.quarantined);
        (void)tr_pool_stats(rt, fleet_ref, &pi, 5000);
        printf("%s%6.2f s  %8" PRIu64 " done  %8.0f jobs/s  workers %2u  "
               "restarts %4" PRIu64 "  backlog %6" PRIu64 "  pricing %s%s",
               tty ? "\r" : "", (double)(now - t0) / 1e9, done,
               (double)(done - last_done) * 1e9 / (double)(now - last_t),
               pi.workers, pi.restarts,
               atomic_load(&submitted) - done - quarantined,
               circuits[tr_breaker_state(f.breaker)], tty ? "   " : "\n");
        fflush(stdout);
        last_done = done;
        last_t = now;
        if (done + quarantined + atomic_load(&f.other_dead) == jobs ||
            now - t0 > 60 * UINT64_C(1000000000)) {
            break;
        }
    }
    printf("%s\nsupervision tree:\n  app/\n", tty ? "" : "");
    (void)tr_sup_walk(rt, sup, print_child, NULL, 5000);
    (void)tr_pool_stats(rt, fleet_ref, &pi, 5000);
    printf("fleet: %u workers (grown %" PRIu64 ", shrunk %" PRIu64 "), %" PRIu64
           " restarts in place, %" PRIu64 " routed\n",
           pi.workers, pi.grown, pi.shrunk, pi.restarts, pi.routed);
    (void)tr_sup_stop(rt, sup, 10000);
    tr_runtime_stats(rt, &st);
    ok = atomic_load(&submitted) == jobs &&
         atomic_load(&f.done) + atomic_load(&f.quarantined) == jobs &&
         atomic_load(&f.dups) == 0 && atomic_load(&f.other_dead) == 0 &&
         atomic_load(&f.quarantined) == 1;
    printf("account: submitted %" PRIu64 " = completed %" PRIu64 " (%" PRIu64
           " degraded) + quarantined %" PRIu64 "   [%s]\n"
           "         crashes %" PRIu64 ", completed twice %" PRIu64
           ", other dead letters %" PRIu64 ", %.2f s, %" PRIu64
           " messages handled\n",
           atomic_load(&submitted), atomic_load(&f.done),
           atomic_load(&f.degraded), atomic_load(&f.quarantined),
           ok ? "balanced" : "DOES NOT BALANCE", atomic_load(&f.crashes),
           atomic_load(&f.dups), atomic_load(&f.other_dead),
           (double)(now_ns() - t0) / 1e9, st.handled);
    tr_runtime_destroy(&rt);
    tr_breaker_free(&f.breaker);
    free(f.seen);
    return ok ? 0 : 1;
}
