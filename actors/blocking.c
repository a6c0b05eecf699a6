/* The blocking pool: a few threads, not the workers, that run blocking
 * functions and send each result back as a message.
 *
 * The pool's queue is the bounded mailbox of an internal thread actor
 * ("blocking"), consumed by the pool threads in turn: the one holding
 * `lock` is the actor's consumer (thread.h); it takes one job, releases
 * its count (so the room goes to waiting submitters at once), lets go of
 * the lock and runs the job. So a full queue is a full mailbox, and a
 * submitter meets exactly the backpressure a sender meets: a handler's
 * job is held in its outbox and the actor muted, an outside thread blocks
 * up to the send timeout. Shutdown stops the actor like any other; its end
 * dead-letters the jobs still queued, whose release calls their cancel_fn.
 *
 * A job is a TR_MSG_JOB message whose payload is a moved job record: the
 * record's free function runs when the message is dropped, which is how a
 * job that never ran is detected wherever it is dropped. */
#include "actors/thread.h"

#include <string.h>

#define DEFAULT_THREADS 4u

typedef struct job_rec {
    tr_job job;
    tr_runtime *rt;
    bool ran; /* set by the pool thread that ran it, before it is freed */
    /* An awaited job (TR_AWAIT_JOB): the request it answers, as its
     * correlation id, asker, the pool's ref and deadline; corr 0 for a job
     * whose result is a message. */
    uint64_t corr, deadline;
    tr_ref asker, pool;
} job_rec;

struct tr__pool {
    tr_thread t;          /* the pool's actor; consumed under `lock` */
    pthread_mutex_t lock; /* the consumer role, and t's consumer fields */
    uint32_t nthreads;    /* threads started */
    pthread_t threads[];
};

/* The threads' start latch is t.start (see tr_thread): they wait on it
 * rather than on `lock`, so pool_new, which runs under life_lock, never
 * takes `lock` (an ending pool actor takes life_lock under it). */

/* The record a send in progress on this thread carries (see job_release),
 * and whether that send dropped it. */
static _Thread_local job_rec *tls_submitting;
static _Thread_local bool tls_refused;

/* Answers an awaited job's asker with `st` and the result bytes. */
static void
answer(const job_rec *r, tr_status st, const void *data, size_t len)
{
    tr__msg req = {0};

    req.corr = r->corr;
    req.from = r->asker;
    req.to = r->pool;
    req.flags = TR__MF_AWAITED;
    (void)tr__answer(r->rt, NULL, &req, st, data, len);
}

/* The free function of a job message's payload: the message is gone. */
static void
job_release(void *buf)
{
    job_rec *r = buf;

    if (r == tls_submitting) {
        /* Dropped inside the submitting send (the pool had ended): the job
         * is refused, and the submitter keeps the record. */
        tls_refused = true;
        if (r->corr != 0) {
            answer(r, TR_ESHUTDOWN, NULL, 0); /* its await is under way */
        }
        return;
    }
    if (!r->ran && r->corr != 0) {
        answer(r, TR_ECANCELED, NULL, 0); /* accepted, never run */
    }
    if (!r->ran) {
        if (r->job.cancel_fn != NULL) {
            r->job.cancel_fn(r->job.arg);
        }
        TR__COUNT(r->rt, jobs_canceled, 1);
    }
    tr__free(r);
}

/* Sends a job's result to its reply_to, as the pool's actor. */
static void
send_result(struct tr__pool *p, const job_rec *r, tr_blocking_result *out)
{
    tr_runtime *rt = p->t.rt;
    bool move = out->free_fn != NULL;
    size_t len = out->data != NULL ? out->len : 0;
    tr__msg *m;

    if (r->corr != 0 || tr_ref_is_none(r->job.reply_to)) {
        if (r->corr != 0) {
            answer(r, TR_OK, out->data, len); /* copied */
        }
        if (move) {
            out->free_fn(out->data);
        }
        return;
    }
    m = tr__msg_new(rt, move || len > rt->cfg.max_payload ? 0 : len);
    if (m == NULL) {
        if (move) {
            out->free_fn(out->data);
        }
        tr__log(rt, TR_LOG_ERROR,
                "blocking pool: no memory for a result of type %u",
                r->job.reply_type);
        return;
    }
    m->type = r->job.reply_type;
    m->from = p->t.ref;
    m->to = r->job.reply_to;
    if (move) {
        m->data = out->data;
        m->len = (uint32_t)len;
        m->free_fn = out->free_fn;
    } else if (len > 0 && len <= rt->cfg.max_payload) {
        memcpy(m->data, out->data, len);
    }
    if (len > rt->cfg.max_payload) {
        tr__dead_letter(rt, m, TR_EMSGSIZE);
        return;
    }
    /* Past capacity into a full backpressure mailbox, counted: blocking
     * here could deadlock with a receiver muted on the pool's full queue
     * (its room comes only from a pool thread taking the next job), and
     * the results an actor gets are bounded by the jobs it submitted.
     * Other policies apply as to any message. */
    (void)tr__deliver(rt, NULL, m, TR__OVERCOMMIT);
}

static void
run_job(struct tr__pool *p, tr__msg *m)
{
    job_rec *r = m->data;
    tr_blocking_result out = {0};

    if (r->corr != 0 && tr__coarse_ns() > r->deadline) {
        /* Its asker gave up waiting: do not run it. */
        r->ran = true; /* not canceled either: answered */
        TR__COUNT(p->t.rt, expired, 1);
        answer(r, TR_ETIMEDOUT, NULL, 0);
        tr__msg_free(p->t.rt, m);
        return;
    }
    r->job.fn(r->job.arg, &out);
    r->ran = true;
    TR__COUNT(p->t.rt, jobs_run, 1);
    send_result(p, r, &out);
    tr__msg_free(p->t.rt, m);
}

static void *
pool_main(void *arg)
{
    struct tr__pool *p = arg;

    if (tr__thread_latch(&p->t) != 1) {
        return NULL; /* the pool could not be set up */
    }
    for (;;) {
        tr__msg *m;
        tr_status st;

        pthread_mutex_lock(&p->lock);
        st = tr__thread_next(&p->t, UINT64_MAX, &m);
        pthread_mutex_unlock(&p->lock);
        if (st != TR_OK) {
            return NULL; /* the actor ended: shutdown */
        }
        run_job(p, m);
    }
}

/* Creates the pool. Called with life_lock held. */
static tr_status
pool_new(tr_runtime *rt, tr__actor *parent, struct tr__pool **out)
{
    uint32_t n = rt->cfg.blocking_threads;
    tr_mailbox_opts mb = {rt->cfg.blocking_queue, TR_BACKPRESSURE};
    struct tr__pool *p = tr__calloc(1, sizeof *p + n * sizeof(pthread_t));
    tr_status st;

    if (p == NULL) {
        return TR_ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    /* The threads first, latched until the actor exists: it must have a
     * consumer once it does, or nothing could end it. */
    while (p->nthreads < n &&
           pthread_create(&p->threads[p->nthreads], NULL, pool_main, p) == 0) {
        p->nthreads++;
    }
    st = p->nthreads > 0 ? tr__thread_open(&p->t, rt, parent, "blocking", &mb)
                         : TR_EFAILED;
    tr__thread_unlatch(&p->t, st == TR_OK ? 1 : 2);
    if (st != TR_OK) {
        for (uint32_t i = 0; i < p->nthreads; i++) {
            pthread_join(p->threads[i], NULL);
        }
        pthread_mutex_destroy(&p->lock);
        tr__free(p);
        return st;
    }
    *out = p;
    return TR_OK;
}

/* The pool, created on first use. */
static tr_status
pool_get(tr_runtime *rt, tr__actor *self, struct tr__pool **out)
{
    /* acquire: pairs with the release below, so the pool's fields are
     * visible. */
    struct tr__pool *p = atomic_load_explicit(&rt->pool, memory_order_acquire);
    tr_status st = TR_OK;

    if (p != NULL) {
        *out = p;
        return TR_OK;
    }
    pthread_mutex_lock(&rt->life_lock);
    p = atomic_load_explicit(&rt->pool, memory_order_relaxed);
    if (p == NULL) {
        st = pool_new(rt, self, &p);
        if (st == TR_OK) {
            /* release: publishes the pool to pool_get's acquire. */
            atomic_store_explicit(&rt->pool, p, memory_order_release);
        }
    }
    pthread_mutex_unlock(&rt->life_lock);
    *out = p;
    return st;
}

/* A job message for pool p: a moved job record, refused or taken as a
 * message is (see job_release). NULL without memory. */
static tr__msg *
job_msg_new(tr_runtime *rt, tr__actor *self, struct tr__pool *p,
            const tr_job *job)
{
    job_rec *r = tr__calloc(1, sizeof *r);
    tr__msg *m = r ? tr__msg_new(rt, 0) : NULL;

    if (m == NULL) {
        tr__free(r);
        return NULL;
    }
    r->job = *job;
    r->rt = rt;
    m->type = TR_MSG_JOB;
    m->from = self ? tr__ref_of(rt, self) : TR_NOREF;
    m->to = p->t.ref;
    m->data = r;
    m->len = sizeof *r;
    m->free_fn = job_release;
    return m;
}

static tr_status
submit(tr_runtime *rt, tr__actor *self, const tr_job *job)
{
    struct tr__pool *p;
    job_rec *r;
    tr__msg *m;
    tr_status st;

    if (job == NULL || job->fn == NULL ||
        (!tr_ref_is_none(job->reply_to) &&
         job->reply_type >= TR_MSG_RESERVED)) {
        return TR_EINVAL;
    }
    if (self == NULL &&
        atomic_load_explicit(&rt->state, memory_order_acquire) !=
            TR__RT_RUNNING) {
        return TR_ESHUTDOWN; /* and no pool is started for it */
    }
    st = pool_get(rt, self, &p);
    if (st != TR_OK) {
        return st;
    }
    m = job_msg_new(rt, self, p, job);
    if (m == NULL) {
        return TR_ENOMEM;
    }
    r = m->data;
    tls_submitting = r;
    tls_refused = false;
    st = tr__send_msg(rt, self, tr__own_or_null(self), m);
    tls_submitting = NULL;
    if (st == TR_OK || st == TR_PENDING) {
        return st;
    }
    /* Refused. The message is gone but the record is ours: on TR_EDEAD the
     * pool's actor had ended (shutdown) and job_release left it to us. */
    TR_ASSERT_INTERNAL(st != TR_EDEAD || tls_refused);
    tr__free(r);
    return st == TR_EDEAD ? TR_ESHUTDOWN : st;
}

tr_status
tr_await_job(tr_cx *cx, uint32_t point, tr_blocking_fn fn, void *arg,
             void *result, size_t result_len, uint32_t timeout_ms)
{
    struct tr__pool *p;
    uint64_t corr, deadline;
    job_rec *r;
    tr__msg *m;
    tr_status st;

    if (cx == NULL) {
        return TR_EINVAL;
    }
    if (fn == NULL) {
        return cx->await = TR_EINVAL;
    }
    st = pool_get(cx->rt, cx->self, &p);
    if (st == TR_OK) {
        st = tr__await_prepare(cx, p->t.ref, result, result_len, timeout_ms,
                               &corr, &deadline);
    }
    if (st != TR_OK) {
        return cx->await = st;
    }
    m = job_msg_new(cx->rt, cx->self, p, &(tr_job){.fn = fn, .arg = arg});
    if (m == NULL) {
        tr__waits_reset(cx->self);
        return cx->await = TR_ENOMEM;
    }
    r = m->data;
    r->corr = m->corr = corr;
    r->deadline = m->deadline = deadline;
    r->asker = m->from;
    r->pool = m->to;
    m->flags = TR__MF_AWAITED;
    tls_submitting = r;
    tls_refused = false;
    st = tr__await_send_request(cx, point, m, result, result_len);
    tls_submitting = NULL;
    if (tls_refused) {
        tr__free(r); /* the pool had ended: answered TR_ESHUTDOWN */
    }
    return st;
}

tr_status
tr_blocking_run_cx(tr_cx *cx, const tr_job *job)
{
    if (cx == NULL) {
        return TR_EINVAL;
    }
    return submit(cx->rt, cx->self, job);
}

tr_status
tr_blocking_run_rt(tr_runtime *rt, const tr_job *job)
{
    if (rt == NULL) {
        return TR_EINVAL;
    }
    return submit(rt, tr__current_actor(rt), job);
}

void
tr__pool_join(tr_runtime *rt)
{
    struct tr__pool *p = atomic_load_explicit(&rt->pool, memory_order_acquire);

    for (uint32_t i = 0; p != NULL && i < p->nthreads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    if (p != NULL) {
        p->nthreads = 0;
    }
}

void
tr__pool_free(tr_runtime *rt)
{
    struct tr__pool *p = atomic_load_explicit(&rt->pool, memory_order_acquire);

    if (p != NULL) {
        pthread_mutex_destroy(&p->lock);
        tr__free(p);
        atomic_store_explicit(&rt->pool, NULL, memory_order_relaxed);
    }
}
