/* troupe-bench: what every scenario shares.
 *
 * A scenario is one file with one `const bench_def`. Its run function
 * creates a runtime (bench_runtime_new), sets its actors up, brackets the
 * measured work with bench_clock_start()/bench_clock_stop(), verifies the
 * result exactly and tears the runtime down. It returns 0, or calls
 * bench_fail() (which prints one `FAIL:` line on stderr) and returns its
 * nonzero value. main.c turns the result into one JSON line.
 *
 * Actors use the public API only, with the runtime's default mailboxes
 * (bounded, TR_BACKPRESSURE). Two rules follow from backpressure:
 * - A producer that floods stops at the first TR_PENDING and sends itself a
 *   "continue" message; that message queues behind the held sends and runs
 *   once they are delivered and the producer is unmuted (DESIGN.md).
 * - An actor must not end in the handler whose send came back TR_PENDING:
 *   an ending actor's held sends are dead-lettered, not delivered. It sends
 *   itself BENCH_MSG_EXIT instead (bench_exit_after), which arrives after the
 *   held sends have gone out.
 *
 * How results reach main: main is a thread outside the runtime. It can ask
 * (tr_ask_wait), but a handler can only reply to the message it is handling,
 * and the answer main waits for comes much later, from another message. So
 * the actor that finishes a run opens a latch (a mutex, a condition variable
 * and a count): main blocks on it with a generous timeout, which costs no CPU
 * while the benchmark runs and one wake-up at its end. Results are written
 * into the scenario's shared struct before the latch is opened; the mutex
 * publishes them to main. Where many actors report ("each tells main
 * ready"), a sink actor counts the reports and opens the latch once. */
#ifndef TROUPE_BENCH_H
#define TROUPE_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

/* How long main waits for a run to finish before it declares a hang. */
#define BENCH_TIMEOUT_S 600

/* Message types shared by the scenarios; each scenario numbers its own from
 * BENCH_MSG_USER. */
enum {
    BENCH_MSG_EXIT = 1, /* void: end now (see bench_exit_after) */
    BENCH_MSG_USER = 16,
};

/* The options of one run. */
typedef struct bench_args {
    uint64_t n;       /* --n, or the scenario's default */
    uint32_t workers; /* --workers; 0: the runtime's default (online CPUs) */
} bench_args;

#define BENCH_MAX_EXTRA 6

/* What a run measured. `ops` is what the rates refer to. */
typedef struct bench_result {
    uint64_t ops;
    uint64_t t0_ns, t1_ns; /* the timed region, CLOCK_MONOTONIC */
    uint32_t workers;      /* as the runtime reports them */
    struct {
        const char *key;
        double value;
        bool integer;
    } extra[BENCH_MAX_EXTRA];
    int nextra;
} bench_result;

typedef int (*bench_fn)(const bench_args *args, bench_result *res);

typedef struct bench_def {
    const char *name;
    uint64_t default_n;
    const char *about; /* one line for --list */
    bench_fn run;
} bench_def;

extern const bench_def bench_pingpong, bench_ring, bench_counting, bench_fanin,
    bench_spawn, bench_idle_memory, bench_big, bench_skynet, bench_chameneos,
    bench_wake, bench_ask, bench_echo, bench_children;

/* ---- Helpers (main.c) ---------------------------------------------------- */

uint64_t bench_now_ns(void);
void bench_clock_start(bench_result *res);
void bench_clock_stop(bench_result *res);
void bench_extra(bench_result *res, const char *key, double value,
                 bool integer);

/* Prints "FAIL: <bench>: <message>" on stderr; returns 1 for `return`. */
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A status check for setup calls: fails the run with the call's text. */
#define BENCH_CHECK(call)                                                      \
    do {                                                                       \
        tr_status bench_st_ = (call);                                          \
        if (bench_st_ < 0) {                                                   \
            return bench_fail("%s: %s", #call, tr_status_name(bench_st_));     \
        }                                                                      \
    } while (0)

/* A runtime with the run's worker count and every other setting default. */
tr_status bench_runtime_new(const bench_args *args, tr_runtime **out,
                            bench_result *res);

/* Checks that nothing went to dead letters during the run (a lost or
 * refused message means the run did less than it claims), then destroys
 * the runtime. Returns 0 or bench_fail()'s value. */
int bench_runtime_finish(tr_runtime **rtp);

/* VmRSS / VmHWM of this process in KiB, from /proc/self/status; 0 when
 * unreadable. */
uint64_t bench_rss_kb(void);
uint64_t bench_hwm_kb(void);

/* ---- Latch: how actors tell main that a run is over ---------------------- */

typedef struct bench_latch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t count; /* arrivals still expected; under lock */
} bench_latch;

void bench_latch_init(bench_latch *l, uint64_t count);
void bench_latch_fini(bench_latch *l);
/* From a handler: one arrival. Never blocks for long (a mutex held only by
 * another arrival or by main between its checks). */
void bench_latch_arrive(bench_latch *l);
/* From main: waits until every arrival happened. False when the run was
 * aborted (bench_abort) or after BENCH_TIMEOUT_S; bench_fail() has then
 * been called. */
bool bench_latch_wait(bench_latch *l);

/* The timed region of a run started by one message: starts the clock,
 * sends `who` an empty message of `type`, waits for `done`, stops the
 * clock. Returns 0, or non-zero (with a FAIL line) on a failed send or a
 * hang. */
int bench_kick(tr_runtime *rt, tr_ref who, uint32_t type, bench_latch *done,
               bench_result *res);

/* Any thread: the run cannot finish (an actor failed, a message was
 * dead-lettered). Records the first reason and releases main's wait on the
 * latch initialized last, so a broken run fails at once instead of at the
 * timeout. Never blocks for long. */
void bench_abort(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Actor helpers ------------------------------------------------------- */

/* Ends the calling actor once the send that returned `st` has left: at once
 * when it was delivered (TR_OK), else after the held sends (TR_PENDING), by
 * a BENCH_MSG_EXIT to itself that BENCH_ON_EXIT handles. Returns a negative
 * status unchanged, so the handler fails with it. */
tr_status bench_exit_after(tr_cx *cx, tr_status st);
tr_status bench_on_exit(tr_cx *cx, void *self, const void *msg);
#define BENCH_ON_EXIT TR_ON(BENCH_MSG_EXIT, void, bench_on_exit)

/* A terminate hook for every scenario actor: an actor that ends for any
 * reason but a normal exit or the final shutdown aborts the run. */
tr_status bench_on_terminate(tr_cx *cx, void *self, const tr_reason *why);
#define BENCH_ON_TERMINATE TR_ON_TERMINATE(bench_on_terminate)

/* A handler's verdict on a send: TR_OK and TR_PENDING go on (the held send
 * will be delivered), anything else fails the actor. */
static inline tr_status
bench_sent(tr_status st)
{
    return st == TR_OK || st == TR_PENDING ? TR_OK : st < 0 ? st : TR_EFAILED;
}

#endif
