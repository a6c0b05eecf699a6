/* blocking: where blocking code goes. N requests (argv[1], default 200)
 * each need a blocking computation and a blocking write.
 *
 * The client actor hands each computation to the blocking pool and gets
 * the result back as a MSG_SUM message; it forwards each sum to "disk", a
 * thread actor standing for a blocking driver, which writes (sleeps) and
 * keeps a total. main() asks the disk for its total and checks it; the
 * watchdog, which reports handlers that block their worker, reports none. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <troupe/troupe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MSG_GO = 1, MSG_SUM, MSG_WRITE, MSG_TOTAL };

static void
sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};

    nanosleep(&ts, NULL);
}

/* ---- A job for the blocking pool --------------------------------------- */

/* Sums 1..n the slow way: stands for a call that blocks. */
static void
slow_sum(void *arg, tr_blocking_result *out)
{
    long *n = arg; /* the job owns it: freed here or by the cancel */
    long *sum = malloc(sizeof *sum);

    sleep_us(500);
    if (sum != NULL) {
        *sum = *n * (*n + 1) / 2;
        out->data = sum; /* moved into the MSG_SUM message */
        out->len = sizeof *sum;
        out->free_fn = free;
    }
    free(n);
}

/* ---- The client actor -------------------------------------------------- */

struct client {
    tr_ref disk;
};

static tr_status
client_init(tr_cx *cx, struct client *self, const tr_ref *disk)
{
    (void)cx;
    self->disk = *disk;
    return TR_OK;
}

static tr_status
on_go(tr_cx *cx, struct client *self, const long *n)
{
    long *arg = malloc(sizeof *arg);
    tr_job job = {.fn = slow_sum,
                  .cancel_fn = free,
                  .arg = arg,
                  .reply_to = tr_self(cx),
                  .reply_type = MSG_SUM};
    tr_status st;

    (void)self;
    if (arg == NULL) {
        return TR_ENOMEM;
    }
    *arg = *n;
    /* TR_PENDING means the pool's queue was full: the job is accepted and
     * this actor waits (muted) until there is room. */
    st = tr_blocking_run(cx, &job);
    if (st < 0) {
        free(arg); /* refused: still ours */
    }
    return st < 0 ? st : TR_OK;
}

static tr_status
on_sum(tr_cx *cx, struct client *self, const long *sum)
{
    return tr_send(cx, self->disk, MSG_WRITE, sum, sizeof *sum) < 0 ? TR_EFAILED
                                                                    : TR_OK;
}

TR_ACTOR(client_actor, struct client, TR_ON_INIT(tr_ref, client_init),
         TR_ON(MSG_GO, long, on_go), TR_ON(MSG_SUM, long, on_sum));

/* ---- The disk: a thread actor ------------------------------------------ */

static void
disk_main(tr_thread *self, void *arg)
{
    long total = 0, v;
    tr_thread_msg m;

    (void)arg;
    while (tr_thread_receive(self, &m, TR_THREAD_FOREVER) == TR_OK) {
        if (m.type == MSG_WRITE && m.len == sizeof v) {
            memcpy(&v, m.data, sizeof v);
            sleep_us(100); /* a blocking write: fine on its own thread */
            total += v;
        } else if (m.type == MSG_TOTAL) {
            (void)tr_thread_reply(self, &total, sizeof total);
        }
    }
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200, want = 0, total = 0;
    tr_config cfg = {.blocking_queue = 16}; /* small: backpressure shows */
    tr_spawn_opts o = {0};
    tr_runtime *rt;
    tr_thread *disk;
    tr_ref disk_ref, client;
    tr_stats s;
    int ok;

    if (tr_runtime_new(&rt, &cfg) != TR_OK) {
        return 1;
    }
    if (tr_thread_spawn(rt, "disk", NULL, disk_main, NULL, &disk_ref, &disk) !=
        TR_OK) {
        tr_runtime_destroy(&rt);
        return 1;
    }
    o.arg = &disk_ref;
    o.arg_len = sizeof disk_ref;
    if (tr_spawn(rt, &client_actor, &o, &client) != TR_OK) {
        tr_runtime_destroy(&rt);
        tr_thread_join(&disk);
        return 1;
    }
    for (long i = 1; i <= n; i++) {
        tr_send(rt, client, MSG_GO, &i, sizeof i); /* blocks when full */
        want += i * (i + 1) / 2;
    }
    /* Ask until every write is in (the disk answers between writes). */
    for (int tries = 0; tries < 1000 && total != want; tries++) {
        sleep_us(10000);
        tr_ask_wait(rt, disk_ref, MSG_TOTAL, NULL, 0, &total, sizeof total,
                    1000);
    }
    tr_runtime_stats(rt, &s);
    ok = total == want && s.jobs_run == (uint64_t)n && s.slow_handlers == 0;
    printf("%ld jobs, total %ld (%s), %llu held by backpressure, "
           "%llu slow handlers\n",
           n, total, total == want ? "ok" : "WRONG", (unsigned long long)s.held,
           (unsigned long long)s.slow_handlers);
    tr_runtime_destroy(&rt); /* stops the disk: its receive says TR_EDEAD */
    tr_thread_join(&disk);
    return ok ? 0 : 1;
}
