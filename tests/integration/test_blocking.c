/* The blocking pool (tr_blocking_run in troupe/thread.h).
 *
 * What is checked: results come back as messages of the caller's type,
 * copied or moved; the pool's threads are not the workers (a one-worker
 * runtime keeps handling messages while every pool thread blocks); a full
 * results never block the pool (a full backpressure mailbox takes them past
 * capacity, counted); a full queue gives backpressure, to an actor (TR_PENDING,
 * muted until room) and to an outside thread (blocks, then TR_ETIMEDOUT), with
 * exact accounting: every accepted job runs exactly once, a refused one never
 * runs; shutdown with jobs queued cancels each one exactly once (cancel_fn, a
 * dead letter, tr_stats.jobs_canceled) and leaks nothing; bad arguments are
 * refused. TR_AWAIT_JOB: results reach many awaiting handlers at once; an
 * await past its deadline resumes with TR_ETIMEDOUT (the result is then a
 * late reply); a job still queued at its deadline never runs; one queued at
 * shutdown never runs either and its answer is dead-lettered. */
#include "itest.h"

#include <pthread.h>
#include <stdlib.h>

enum {
    MSG_RESULT = 1,
    MSG_MOVED,
    MSG_SUBMIT,
    MSG_PING,
    MSG_AWAIT,
};

#define NJOBS 64u

/* Per-job records, indexed by the job's number. */
typedef struct job_arg {
    uint32_t id;
    uint32_t value; /* a copied result: id * 3 */
} job_arg;

static job_arg g_args[NJOBS];
static _Atomic uint32_t g_runs[NJOBS];    /* times each job ran */
static _Atomic uint32_t g_cancels[NJOBS]; /* times each was canceled */
static _Atomic uint32_t g_results;        /* result messages handled */
static _Atomic uint32_t g_result_ok;      /* of those, with the right data */
static _Atomic uint32_t g_started;        /* blocking jobs inside their wait */
static _Atomic int g_gate;                /* opens blocking jobs */
static _Atomic int g_pings;
static pthread_t g_worker_thread;
static _Atomic int g_worker_known;
static _Atomic uint32_t g_on_worker; /* jobs that ran on the worker thread */

static int
setup(void **state)
{
    memset(g_args, 0, sizeof g_args);
    for (uint32_t i = 0; i < NJOBS; i++) {
        g_args[i].id = i;
        g_args[i].value = i * 3;
        IT_STORE(g_runs[i], 0);
        IT_STORE(g_cancels[i], 0);
    }
    IT_STORE(g_results, 0);
    IT_STORE(g_result_ok, 0);
    IT_STORE(g_started, 0);
    IT_STORE(g_gate, 0);
    IT_STORE(g_pings, 0);
    IT_STORE(g_worker_known, 0);
    IT_STORE(g_on_worker, 0);
    return it_setup(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, it_teardown)

static void
note_run(const job_arg *a)
{
    IT_INC(g_runs[a->id]);
    if (IT_LOAD(g_worker_known) &&
        pthread_equal(pthread_self(), g_worker_thread)) {
        IT_INC(g_on_worker);
    }
}

/* Copies its arg's value out. */
static void
copy_job(void *arg, tr_blocking_result *out)
{
    job_arg *a = arg;

    note_run(a);
    out->data = &a->value;
    out->len = sizeof a->value;
}

/* Moves a heap buffer out: {id, value}. */
static void
move_job(void *arg, tr_blocking_result *out)
{
    job_arg *a = arg;
    uint32_t *buf = malloc(2 * sizeof *buf);

    note_run(a);
    if (buf == NULL) {
        return; /* an empty result: the test sees a bad one */
    }
    buf[0] = a->id;
    buf[1] = a->value;
    out->data = buf;
    out->len = 2 * sizeof *buf;
    out->free_fn = free;
}

/* Waits (bounded) for the gate, then copies. */
static void
gated_job(void *arg, tr_blocking_result *out)
{
    uint64_t deadline =
        tr_test_now_ns() + tr_test_scaled_ms(IT_WAIT_MS) * 1000000u;

    IT_INC(g_started);
    while (IT_LOAD(g_gate) == 0 && tr_test_now_ns() < deadline) {
        tr_test_sleep_ms(1);
    }
    copy_job(arg, out);
}

static void
cancel_job(void *arg)
{
    IT_INC(g_cancels[((job_arg *)arg)->id]);
}

/* A heap arg each job frees, whichever of fn and cancel_fn runs: leak
 * checkers see one left behind. */
typedef struct heap_arg {
    job_arg *a;
} heap_arg;

static void
heap_gated_job(void *arg, tr_blocking_result *out)
{
    heap_arg *h = arg;

    gated_job(h->a, out);
    free(h);
}

static void
heap_cancel(void *arg)
{
    heap_arg *h = arg;

    cancel_job(h->a);
    free(h);
}

/* ---- The actor that submits and collects ------------------------------- */

typedef struct submit_msg {
    uint32_t first, n;
    int move;
    int gated;
} submit_msg;

static _Atomic int g_submit_st[NJOBS];

static tr_status
on_submit(tr_cx *cx, void *self, const submit_msg *s)
{
    (void)self;
    if (!IT_LOAD(g_worker_known)) {
        g_worker_thread = pthread_self();
        IT_STORE(g_worker_known, 1);
    }
    for (uint32_t i = s->first; i < s->first + s->n; i++) {
        tr_job job = {0};
        tr_status st;

        job.fn = s->gated ? gated_job : s->move ? move_job : copy_job;
        job.cancel_fn = cancel_job;
        job.arg = &g_args[i];
        job.reply_to = tr_self(cx);
        job.reply_type = s->move ? MSG_MOVED : MSG_RESULT;
        st = tr_blocking_run(cx, &job);
        IT_STORE(g_submit_st[i], (int)st + 1000);
        if (st != TR_OK) {
            break; /* TR_PENDING: stop; muted until the pool has room */
        }
    }
    return TR_OK;
}

static tr_status
on_result(tr_cx *cx, void *self, const uint32_t *v)
{
    (void)self;
    /* The pool's actor sends results. */
    if (*v % 3 == 0 && !tr_ref_is_none(tr_sender(cx))) {
        IT_INC(g_result_ok);
    }
    IT_INC(g_results);
    return TR_OK;
}

static tr_status
on_moved(tr_cx *cx, void *self, const void *data)
{
    uint32_t v[2];

    (void)self;
    if (tr_msg_size(cx) == sizeof v) {
        memcpy(v, data, sizeof v);
        if (v[1] == v[0] * 3) {
            IT_INC(g_result_ok);
        }
    }
    IT_INC(g_results);
    return TR_OK;
}

static tr_status
on_ping(tr_cx *cx, void *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    IT_INC(g_pings);
    return TR_OK;
}

TR_ACTOR(client_actor, char, TR_ON(MSG_SUBMIT, submit_msg, on_submit),
         TR_ON(MSG_RESULT, uint32_t, on_result),
         TR_ON_BYTES(MSG_MOVED, on_moved), TR_ON(MSG_PING, void, on_ping),
         IT_ON_CLOSE);

static void
submit_from(tr_ref client, uint32_t first, uint32_t n, int move, int gated)
{
    submit_msg s = {first, n, move, gated};

    TR_ASSERT_OK(tr_send(g_rt, client, MSG_SUBMIT, &s, sizeof s));
}

static tr_job
outside_job(tr_blocking_fn fn, uint32_t i, tr_ref reply_to)
{
    tr_job job = {0};

    job.fn = fn;
    job.cancel_fn = cancel_job;
    job.arg = &g_args[i];
    job.reply_to = reply_to;
    job.reply_type = MSG_RESULT;
    return job;
}

/* ---- Tests ------------------------------------------------------------- */

static void
test_results_as_messages(void **state)
{
    tr_ref client;
    tr_stats s;

    (void)state;
    memset(g_submit_st, 0, sizeof g_submit_st);
    g_rt = it_runtime(2, NULL);
    client = it_spawn(g_rt, &client_actor, 0, 0, TR_BACKPRESSURE);
    submit_from(client, 0, 20, 0, 0);
    submit_from(client, 20, 20, 1, 0);
    IT_WAIT_UNTIL(IT_LOAD(g_results) == 40);
    assert_int_equal(IT_LOAD(g_result_ok), 40);
    for (uint32_t i = 0; i < 40; i++) {
        assert_int_equal(IT_LOAD(g_submit_st[i]) - 1000, TR_OK);
        assert_int_equal(IT_LOAD(g_runs[i]), 1);
        assert_int_equal(IT_LOAD(g_cancels[i]), 0);
    }
    s = it_stats(g_rt);
    assert_int_equal(s.jobs_run, 40);
    assert_int_equal(s.jobs_canceled, 0);
    assert_int_equal(s.dead_letters, 0);
    assert_int_equal(IT_LOAD(g_on_worker), 0);
}

/* A result to nobody, and one whose receiver is gone: a moved buffer is
 * freed either way (leak checkers), the second is a dead letter. */
static void
test_results_to_nobody_and_to_dead(void **state)
{
    tr_ref client;
    tr_job job;

    (void)state;
    g_rt = it_runtime(1, NULL);
    job = outside_job(move_job, 0, TR_NOREF);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    client = it_spawn(g_rt, &client_actor, 0, 0, TR_BACKPRESSURE);
    TR_ASSERT_OK(tr_stop(g_rt, client));
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 1); /* the pool's actor */
    job = outside_job(move_job, 1, client);
    job.reply_type = MSG_MOVED;
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    IT_WAIT_UNTIL(it_stats(g_rt).jobs_run == 2);
    IT_WAIT_UNTIL(it_dl_count(MSG_MOVED, TR_EDEAD) == 1);
    assert_int_equal(IT_LOAD(g_runs[0]), 1);
    assert_int_equal(IT_LOAD(g_runs[1]), 1);
}

/* Results to a full backpressure mailbox go in past capacity (counted)
 * rather than block the pool: here the receiver is muted on a jam, and a
 * pool thread that waited on it would hold up every other job. */
static void
test_results_past_capacity(void **state)
{
    tr_config cfg = {.blocking_threads = 1};
    tr_ref client, jam;
    tr_job job;
    tr_stats s;

    (void)state;
    g_rt = it_runtime(1, &cfg);
    client = it_spawn(g_rt, &client_actor, 2, 1, TR_BACKPRESSURE);
    jam = it_jam_start(g_rt);
    it_gate_close(g_rt, client, jam);
    TR_ASSERT_OK(tr_send(g_rt, client, MSG_PING, NULL, 0));
    TR_ASSERT_OK(tr_send(g_rt, client, MSG_PING, NULL, 0));
    for (uint32_t i = 0; i < 3; i++) {
        job = outside_job(copy_job, i, client);
        TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    }
    IT_WAIT_UNTIL(it_stats(g_rt).jobs_run == 3);
    IT_WAIT_UNTIL(it_stats(g_rt).overcommits == 3);
    assert_int_equal(IT_LOAD(g_results), 0); /* still muted */
    TR_ASSERT_OK(tr_stop(g_rt, jam));
    IT_WAIT_UNTIL(IT_LOAD(g_results) == 3 && IT_LOAD(g_pings) == 2);
    assert_int_equal(IT_LOAD(g_result_ok), 3);
    s = it_stats(g_rt);
    assert_int_equal(s.jobs_canceled, 0);
}

/* One worker, every pool thread blocked: the worker still runs actors. */
static void
test_pool_threads_are_not_workers(void **state)
{
    tr_config cfg = {.blocking_threads = 2};
    tr_ref client;

    (void)state;
    g_rt = it_runtime(1, &cfg);
    client = it_spawn(g_rt, &client_actor, 0, 0, TR_BACKPRESSURE);
    submit_from(client, 0, 2, 0, 1);
    IT_WAIT_UNTIL(IT_LOAD(g_started) == 2);
    for (int i = 0; i < 10; i++) {
        TR_ASSERT_OK(tr_send(g_rt, client, MSG_PING, NULL, 0));
    }
    IT_WAIT_UNTIL(IT_LOAD(g_pings) == 10);
    assert_int_equal(IT_LOAD(g_results), 0); /* both jobs still block */
    IT_STORE(g_gate, 1);
    IT_WAIT_UNTIL(IT_LOAD(g_results) == 2);
    assert_int_equal(IT_LOAD(g_on_worker), 0);
}

/* One pool thread blocked, a queue of 2 filled: an actor's next job is
 * held (TR_PENDING) and the actor muted until the pool has room. */
static void
test_saturation_actor(void **state)
{
    tr_config cfg = {.blocking_threads = 1, .blocking_queue = 2};
    tr_ref client;
    tr_job job;
    tr_stats s;

    (void)state;
    memset(g_submit_st, 0, sizeof g_submit_st);
    g_rt = it_runtime(1, &cfg);
    client = it_spawn(g_rt, &client_actor, 0, 0, TR_BACKPRESSURE);
    job = outside_job(gated_job, 0, client);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    IT_WAIT_UNTIL(IT_LOAD(g_started) == 1);
    submit_from(client, 1, 10, 0, 0);
    IT_WAIT_UNTIL(IT_LOAD(g_submit_st[3]) != 0);
    assert_int_equal(IT_LOAD(g_submit_st[1]) - 1000, TR_OK);
    assert_int_equal(IT_LOAD(g_submit_st[2]) - 1000, TR_OK);
    assert_int_equal(IT_LOAD(g_submit_st[3]) - 1000, TR_PENDING);
    assert_int_equal(IT_LOAD(g_submit_st[4]), 0);
    /* Muted: the ping waits behind the held job. */
    TR_ASSERT_OK(tr_send(g_rt, client, MSG_PING, NULL, 0));
    tr_test_sleep_ms(30);
    assert_int_equal(IT_LOAD(g_pings), 0);
    IT_STORE(g_gate, 1);
    IT_WAIT_UNTIL(IT_LOAD(g_pings) == 1);
    IT_WAIT_UNTIL(IT_LOAD(g_results) == 4);
    assert_int_equal(IT_LOAD(g_result_ok), 4);
    for (uint32_t i = 0; i < NJOBS; i++) {
        assert_int_equal(IT_LOAD(g_runs[i]), i <= 3 ? 1 : 0);
        assert_int_equal(IT_LOAD(g_cancels[i]), 0);
    }
    s = it_stats(g_rt);
    assert_int_equal(s.jobs_run, 4);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.jobs_canceled, 0);
}

/* Submitters on outside threads, racing for a small queue with a short
 * send timeout: each job is accepted (and runs exactly once) or refused
 * with TR_ETIMEDOUT (and never runs). */
typedef struct racer {
    uint32_t first, n;
    tr_status st[16];
} racer;

static void *
racer_main(void *arg)
{
    racer *r = arg;

    for (uint32_t i = 0; i < r->n; i++) {
        tr_job job = outside_job(copy_job, r->first + i, TR_NOREF);

        r->st[i] = tr_blocking_run(g_rt, &job);
    }
    return NULL;
}

static void
test_saturation_outside(void **state)
{
    tr_config cfg = {
        .blocking_threads = 1, .blocking_queue = 2, .send_timeout_ms = 50};
    pthread_t th[3];
    racer r[3];
    tr_job job;
    uint32_t accepted = 1, refused = 0;
    uint64_t t0;

    (void)state;
    g_rt = it_runtime(1, &cfg);
    job = outside_job(gated_job, 0, TR_NOREF);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    IT_WAIT_UNTIL(IT_LOAD(g_started) == 1);
    /* The queue fills, then an outside submitter blocks and times out. */
    job = outside_job(copy_job, 1, TR_NOREF);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    job = outside_job(copy_job, 2, TR_NOREF);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    job = outside_job(copy_job, 3, TR_NOREF);
    t0 = tr_test_now_ns();
    TR_ASSERT_STATUS(tr_blocking_run(g_rt, &job), TR_ETIMEDOUT);
    assert_true(tr_test_now_ns() - t0 >= 50u * 1000000u);
    /* Racers while the gate opens. */
    for (int i = 0; i < 3; i++) {
        r[i].first = 4 + (uint32_t)i * 16;
        r[i].n = 16;
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    IT_STORE(g_gate, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        for (uint32_t k = 0; k < r[i].n; k++) {
            if (r[i].st[k] == TR_OK) {
                accepted++;
            } else {
                TR_ASSERT_STATUS(r[i].st[k], TR_ETIMEDOUT);
                refused++;
            }
        }
    }
    accepted += 2; /* jobs 1 and 2 */
    IT_WAIT_UNTIL(it_stats(g_rt).jobs_run == accepted);
    assert_int_equal(accepted + refused + 1, 52);
    assert_int_equal(IT_LOAD(g_runs[3]), 0);
    for (uint32_t i = 0; i < 52; i++) {
        assert_true(IT_LOAD(g_runs[i]) <= 1);
        assert_int_equal(IT_LOAD(g_cancels[i]), 0);
    }
    TR_ASSERT_OK(tr_runtime_shutdown(g_rt, 0));
    assert_int_equal(it_stats(g_rt).jobs_run, accepted);
    assert_int_equal(it_stats(g_rt).jobs_canceled, 0);
}

/* Shutdown while jobs are queued behind a blocked one: the blocked one
 * finishes, each queued one is canceled exactly once, nothing leaks. */
static void
test_shutdown_with_jobs_queued(void **state)
{
    tr_config cfg = {.blocking_threads = 1, .blocking_queue = 8};
    it_shutdown_job sj;
    pthread_t th;
    tr_job job = {0};
    tr_stats s;

    (void)state;
    g_rt = it_runtime(1, &cfg);
    for (uint32_t i = 0; i < 6; i++) {
        heap_arg *h = malloc(sizeof *h);

        assert_non_null(h);
        h->a = &g_args[i];
        job.fn = heap_gated_job;
        job.cancel_fn = heap_cancel;
        job.arg = h;
        TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
        if (i == 0) {
            IT_WAIT_UNTIL(IT_LOAD(g_started) == 1);
        }
    }
    sj.rt = g_rt;
    sj.drain_ms = 0;
    sj.st = TR_EINVAL;
    atomic_init(&sj.done, 0);
    assert_int_equal(pthread_create(&th, NULL, it_shutdown_main, &sj), 0);
    /* Outside submits stop once shutdown began. */
    IT_WAIT_UNTIL(tr_send(g_rt, TR_NOREF, MSG_PING, NULL, 0) == TR_ESHUTDOWN);
    job.fn = copy_job;
    job.cancel_fn = cancel_job;
    job.arg = &g_args[10];
    TR_ASSERT_STATUS(tr_blocking_run(g_rt, &job), TR_ESHUTDOWN);
    tr_test_sleep_ms(20);
    assert_int_equal(IT_LOAD(sj.done), 0); /* waits for the running job */
    IT_STORE(g_gate, 1);
    IT_WAIT_UNTIL(IT_LOAD(sj.done) == 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    TR_ASSERT_OK(sj.st);
    assert_int_equal(IT_LOAD(g_runs[0]), 1);
    for (uint32_t i = 1; i < 6; i++) {
        assert_int_equal(IT_LOAD(g_runs[i]), 0);
        assert_int_equal(IT_LOAD(g_cancels[i]), 1);
    }
    assert_int_equal(IT_LOAD(g_runs[10]) + IT_LOAD(g_cancels[10]), 0);
    s = it_stats(g_rt);
    assert_int_equal(s.jobs_run, 1);
    assert_int_equal(s.jobs_canceled, 5);
    assert_int_equal(it_dl_count(TR_MSG_JOB, TR_ESHUTDOWN), 5);
}

/* ---- TR_AWAIT_JOB ------------------------------------------------------ */

struct await_req {
    uint32_t id;
    uint32_t timeout_ms;
    int gated;
};

struct awaiter {
    uint32_t value;
};

static _Atomic int g_await_done;
static _Atomic int g_await_ok;
static _Atomic int g_await_last; /* last status + 100000 */

static tr_status
awaiter_on(tr_cx *cx, struct awaiter *self, const struct await_req *r)
{
    TR_ASYNC_BEGIN(cx);
    self->value = UINT32_MAX;
    TR_AWAIT_JOB(cx, r->gated ? gated_job : copy_job, &g_args[r->id],
                 &self->value, sizeof self->value, r->timeout_ms);
    IT_STORE(g_await_last, (int)tr_await_status(cx) + 100000);
    if (tr_await_status(cx) == TR_OK && self->value == r->id * 3) {
        IT_INC(g_await_ok);
    }
    IT_INC(g_await_done);
    TR_ASYNC_END(cx, TR_OK);
}

TR_ACTOR(awaiter_actor, struct awaiter,
         TR_ON(MSG_AWAIT, struct await_req, awaiter_on));

static void
await_reset(void)
{
    IT_STORE(g_await_done, 0);
    IT_STORE(g_await_ok, 0);
    IT_STORE(g_await_last, 0);
}

static tr_ref
await_job(uint32_t id, uint32_t timeout_ms, int gated)
{
    struct await_req r = {id, timeout_ms, gated};
    tr_ref a = it_spawn(g_rt, &awaiter_actor, 0, 0, TR_BACKPRESSURE);

    TR_ASSERT_OK(tr_send(g_rt, a, MSG_AWAIT, &r, sizeof r));
    return a;
}

static void
test_await_job_results(void **state)
{
    tr_config cfg = {.blocking_threads = 3};

    (void)state;
    await_reset();
    g_rt = it_runtime(2, &cfg);
    for (uint32_t i = 0; i < 40; i++) {
        (void)await_job(i, 10000, 0);
    }
    IT_WAIT_UNTIL(IT_LOAD(g_await_done) == 40);
    assert_int_equal(IT_LOAD(g_await_ok), 40);
    for (uint32_t i = 0; i < 40; i++) {
        assert_int_equal(IT_LOAD(g_runs[i]), 1);
    }
    assert_int_equal(it_stats(g_rt).jobs_run, 40);
}

static void
test_await_job_timeout(void **state)
{
    tr_config cfg = {.blocking_threads = 1};

    (void)state;
    await_reset();
    g_rt = it_runtime(1, &cfg);
    (void)await_job(1, 30, 1); /* blocks until the gate opens */
    IT_WAIT_UNTIL(IT_LOAD(g_await_done) == 1);
    assert_int_equal(IT_LOAD(g_await_last), TR_ETIMEDOUT + 100000);
    IT_STORE(g_gate, 1);
    IT_WAIT_UNTIL(it_stats(g_rt).late_replies == 1);
    assert_int_equal(IT_LOAD(g_runs[1]), 1);
    assert_int_equal(IT_LOAD(g_await_ok), 0);
}

static void
test_await_job_expires_in_queue(void **state)
{
    tr_config cfg = {.blocking_threads = 1};
    tr_job job = {.fn = gated_job, .arg = &g_args[0]};

    (void)state;
    await_reset();
    g_rt = it_runtime(1, &cfg);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job)); /* holds the one thread */
    IT_WAIT_UNTIL(IT_LOAD(g_started) == 1);
    (void)await_job(2, 20, 0);
    IT_WAIT_UNTIL(IT_LOAD(g_await_done) == 1);
    assert_int_equal(IT_LOAD(g_await_last), TR_ETIMEDOUT + 100000);
    tr_test_sleep_ms(20); /* past the deadline even by a coarse clock */
    IT_STORE(g_gate, 1);
    IT_WAIT_UNTIL(it_stats(g_rt).expired == 1);
    IT_WAIT_UNTIL(it_stats(g_rt).late_replies == 1); /* its TR_ETIMEDOUT */
    assert_int_equal(IT_LOAD(g_runs[0]), 1);
    assert_int_equal(IT_LOAD(g_runs[2]), 0); /* never ran */
    assert_int_equal(it_stats(g_rt).jobs_run, 1);
}

static void
test_await_job_queued_at_shutdown(void **state)
{
    tr_config cfg = {.blocking_threads = 1, .drain_ms = 50};
    tr_job job = {.fn = gated_job, .arg = &g_args[0]};
    it_shutdown_job sj = {.rt = NULL};
    pthread_t th;

    (void)state;
    await_reset();
    g_rt = it_runtime(1, &cfg);
    TR_ASSERT_OK(tr_blocking_run(g_rt, &job));
    IT_WAIT_UNTIL(IT_LOAD(g_started) == 1);
    (void)await_job(3, 60000, 0);
    /* the first job, the await message and the awaited job */
    IT_WAIT_UNTIL(it_stats(g_rt).sent == 3);
    sj.rt = g_rt;
    sj.drain_ms = 0;
    atomic_init(&sj.done, 0);
    assert_int_equal(pthread_create(&th, NULL, it_shutdown_main, &sj), 0);
    tr_test_sleep_ms(20);
    IT_STORE(g_gate, 1);
    IT_WAIT_UNTIL(IT_LOAD(sj.done) == 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(IT_LOAD(g_runs[3]), 0);
    assert_int_equal(IT_LOAD(g_await_done), 0); /* stopped while awaiting */
    /* its TR_ECANCELED answer found it gone */
    assert_int_equal(it_dl_count(TR_MSG_REPLY, TR_EDEAD), 1);
}

static void
test_bad_arguments(void **state)
{
    tr_job job = {0};

    (void)state;
    g_rt = it_runtime(1, NULL);
    TR_ASSERT_STATUS(tr_blocking_run(g_rt, (const tr_job *)NULL), TR_EINVAL);
    TR_ASSERT_STATUS(tr_blocking_run((tr_runtime *)NULL, &job), TR_EINVAL);
    TR_ASSERT_STATUS(tr_blocking_run((tr_cx *)NULL, &job), TR_EINVAL);
    TR_ASSERT_STATUS(tr_blocking_run(g_rt, &job), TR_EINVAL); /* no fn */
    job = outside_job(copy_job, 0,
                      it_spawn(g_rt, &client_actor, 0, 0, TR_BACKPRESSURE));
    job.reply_type = TR_MSG_REPLY;
    TR_ASSERT_STATUS(tr_blocking_run(g_rt, &job), TR_EINVAL);
    /* A runtime that never blocks has no pool: one actor alive. */
    assert_int_equal(it_stats(g_rt).alive, 1);
    assert_int_equal(IT_LOAD(g_runs[0]), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_results_as_messages),
        T(test_results_to_nobody_and_to_dead),
        T(test_results_past_capacity),
        T(test_pool_threads_are_not_workers),
        T(test_saturation_actor),
        T(test_saturation_outside),
        T(test_shutdown_with_jobs_queued),
        T(test_bad_arguments),
        T(test_await_job_results),
        T(test_await_job_timeout),
        T(test_await_job_expires_in_queue),
        T(test_await_job_queued_at_shutdown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
