/* The M:N executor: worker threads that run opaque items (actors, to the
 * layer above) handed to tr__exec_schedule().
 *
 * Each worker has a LIFO "next" slot (owner only: the item a handler just
 * woke runs next on the same worker, for message-passing locality), a local
 * ring of TR__RING_SIZE items (the owner pushes and pops; idle workers steal
 * half of it once its work has waited long enough to be worth moving), and
 * the runtime has one global queue for items scheduled from threads outside
 * the pool. Idle workers spin briefly; then, while some ring holds work,
 * they sleep and look again, and with every queue empty they park on a
 * futex. Queuing work on the global queue or on an empty ring wakes one
 * parked worker. Parking and waking form a Dekker pair (see park() in
 * exec.c) so no wakeup is lost.
 *
 * The executor never runs an item twice at once: the layer above schedules
 * an item only when it owns the right to (see mailbox.h's token rule). */
#ifndef TR_EXEC_H
#define TR_EXEC_H

#include "common/common.h"

typedef struct tr__exec tr__exec;
typedef struct tr__worker tr__worker;

/* What the executor runs: embedded in the layer above's items (actors). The
 * link threads the global queue, so scheduling never allocates and cannot
 * fail. Touched only by the executor, under the global queue's lock. */
typedef struct tr__task {
    struct tr__task *next;
} tr__task;

/* Runs one item for one turn on worker `w`. */
typedef void (*tr__run_fn)(void *ctx, tr__worker *w, tr__task *item);

/* Tuning. TR__RING_SIZE: a power of two; larger rings hold more local work
 * before it spills to the global queue. TR__LIFO_STREAK: how many times in a
 * row the next slot may preempt the ring, so two actors passing messages
 * back and forth cannot starve the rest of the ring. TR__GLOBAL_TICK: how
 * often a busy worker looks at the global queue first (61, as Go does, so
 * outside work is never starved by local work). TR__SPIN: polls of the
 * global queue before watching or parking: long enough to catch work sent
 * from outside in a burst, short enough that an idle runtime stops burning
 * CPU within microseconds. TR__SPIN_YIELDS more polls follow, each after a
 * sched_yield(): a spinner that shares its core with the thread feeding it
 * (main spawning on a machine with as many workers as cores) hands that
 * thread the core instead of spinning through its time slice, and a push
 * that comes meanwhile still finds it awake, with no futex wake-up to pay
 * (spawn on two workers: 391 -> 221 ns, median of 7 alternating runs).
 * Only while work keeps coming, though: the last spin found some, or the
 * last park ended within TR__WARM_NS. A worker that yielded and then
 * parked for long took 30 us to wake, against 10 (KVM guest).
 *
 * Stealing waits for work to grow old (see ring_aged in exec.c): an idle
 * worker takes from another's ring only items that have waited there
 * TR__STEAL_AGE_NS (the cost Linux's scheduler assumes for moving a task
 * off a cache-hot CPU, by default), or TR__STUCK_NS while the owner has
 * stayed inside one turn. TR__WATCH_NS: how often a worker with nothing
 * to run looks again while some ring holds work (it sleeps in between). */
#define TR__RING_SIZE    256u
#define TR__LIFO_STREAK  16u
#define TR__GLOBAL_TICK  61u
#define TR__SPIN         64u
#define TR__SPIN_YIELDS  8u
#define TR__WARM_NS      200000u
#define TR__STEAL_AGE_NS 500000u
#define TR__STUCK_NS     50000u
#define TR__WATCH_NS     50000u
/* tr__exec_pace: the backlog per worker at which an outside spawner waits
 * (at 250 ns a start, more than a sleep's worth of work for each worker),
 * and the longest it waits. */
#define TR__BACKLOG     1024u
#define TR__PACE_MAX_NS 10000000u

/* Creates `nworkers` workers (not yet started). */
tr_status tr__exec_new(tr__exec **out, uint32_t nworkers, tr__run_fn run,
                       void *ctx);

/* Starts the worker threads. On failure no thread is left running. */
tr_status tr__exec_start(tr__exec *ex);

/* Makes `item` runnable. On a worker of `ex` it goes to that worker's next
 * slot (what was there moves to its ring); elsewhere to the global queue.
 * Never allocates, never fails. Any thread. */
void tr__exec_schedule(tr__exec *ex, tr__task *item);

/* From a thread outside the executor, before it schedules new work (a
 * spawn): waits while the global queue holds TR__BACKLOG items per worker
 * or more, sleeping TR__WATCH_NS at a time and TR__PACE_MAX_NS at most in
 * all, so a thread that spawns faster than the workers start actors is
 * held to their pace instead of piling up actors that have not run. The
 * bound keeps it a pace, never a hang: with every worker stuck in long
 * turns, it returns anyway. */
void tr__exec_pace(tr__exec *ex);

/* From the worker running `item`: queues it at the back of the worker's
 * ring (its turn used its budget and others should run first). */
void tr__exec_yield(tr__worker *w, tr__task *item);

/* True when every worker is parked and no queue holds an item: nothing can
 * run until something outside the executor schedules work. Any thread; a
 * snapshot. */
bool tr__exec_idle(tr__exec *ex);

/* For a sampler of the workers (the watchdog): returns once some worker is
 * not parked, or at once if one is not; also when `*cancel` is set and then
 * tr__exec_kick() called. Spurious returns happen: callers loop. Any thread
 * but a worker. */
void tr__exec_wait_busy(tr__exec *ex, _Atomic uint32_t *cancel);

/* Wakes every thread in tr__exec_wait_busy. Any thread. */
void tr__exec_kick(tr__exec *ex);

/* Tells the workers to exit once they run out of work, wakes them and
 * joins them. Workers look for work before they look at the stop flag, so
 * items queued when this is called still run; the caller makes sure no
 * item schedules new work meanwhile (the actor layer stops every actor
 * first). Any thread but a worker. */
void tr__exec_stop(tr__exec *ex);

/* Frees a stopped (or never started) executor. Accepts NULL. */
void tr__exec_free(tr__exec *ex);

/* The worker the calling thread is, or NULL. */
tr__worker *tr__worker_self(void);
tr__exec *tr__worker_exec(const tr__worker *w);
uint32_t tr__worker_index(const tr__worker *w);
/* A per-worker pointer for the layer above (its turn context). Owner. */
void **tr__worker_user(tr__worker *w);

/* Counters summed over the workers. Any thread. */
uint64_t tr__exec_steals(tr__exec *ex);
uint64_t tr__exec_parks(tr__exec *ex);
uint32_t tr__exec_workers(const tr__exec *ex);

#endif
