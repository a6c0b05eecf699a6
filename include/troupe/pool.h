/* Fleets: pools of identical workers behind one ref, and circuit breakers.
 *
 * A pool is an actor (its ref is the pool's) that starts `min` workers of
 * one behavior and hands each message sent to it to one of them (or to all
 * of them: broadcast), keeping its sender, correlation id and deadline, so
 * a worker's tr_reply() answers the original asker directly. The pool
 * grows up to `max` workers while they are backed up and shrinks back when
 * the load is gone; it replaces a worker that ended. When every worker is
 * full, the pool stops taking messages: its own bounded mailbox (the
 * queue) fills, and producers see the queue's overflow policy. Memory
 * stays bounded under any load.
 *
 * A circuit breaker guards calls to a failing dependency: after `failures`
 * failures in a row it opens, and calls fail fast with TR_EOPEN until
 * `reset_ms` have passed; then a few trial calls go through (half-open),
 * and their outcome closes it again or reopens it. It is a thread-safe
 * object any actor may share, and a pool can consult one before routing. */
#ifndef TROUPE_POOL_H
#define TROUPE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe/actor.h"
#include "troupe/mailbox.h"
#include "troupe/message.h"
#include "troupe/runtime.h"
#include "troupe/status.h"
#include "troupe/supervision.h"

/* ---- Circuit breakers -------------------------------------------------- */

/* A circuit breaker. Opaque; created with tr_breaker_new(). */
typedef struct tr_breaker tr_breaker;

/* A breaker's settings. Zero in any field means its default. */
typedef struct tr_breaker_spec {
    /* Failures in a row (no success between them) that open a closed
     * breaker. Default 5; at most TR_BREAKER_MAX_COUNT. */
    uint32_t failures;
    /* How long an open breaker fails calls fast before it lets trial
     * calls through (half-open); also how long a trial may go without an
     * outcome before it counts as failed. Default 1,000 ms. */
    uint32_t reset_ms;
    /* Trial calls a half-open breaker lets through at once. Default 1; at
     * most TR_BREAKER_MAX_COUNT. */
    uint32_t half_open_max;
} tr_breaker_spec;

/* The largest failure threshold and trial count. */
#define TR_BREAKER_MAX_COUNT 16383u

/* Where a breaker stands. */
typedef enum tr_circuit {
    TR_CIRCUIT_CLOSED = 0, /* calls go through; failures are counted */
    TR_CIRCUIT_OPEN,       /* calls fail fast with TR_EOPEN */
    TR_CIRCUIT_HALF_OPEN,  /* up to half_open_max trial calls go through */
} tr_circuit;

/* Creates a closed breaker from `spec` (NULL: all defaults). On TR_OK the
 * caller owns *out and releases it with tr_breaker_free() once nothing
 * uses it any more (a pool that was given it has ended). On failure *out
 * is unchanged.
 * Errors: TR_EINVAL (out NULL, a count above TR_BREAKER_MAX_COUNT),
 * TR_ENOMEM. Thread-safe: yes. */
TR_EXTERN TR_NODISCARD tr_status tr_breaker_new(tr_breaker **out,
                                                const tr_breaker_spec *spec);

/* Frees *bp and sets it to NULL. Accepts NULL and a pointer to NULL.
 * Thread-safe: no (one caller, after every other user is done). */
TR_EXTERN void tr_breaker_free(tr_breaker **bp);

/* Asks whether a call may go out now. TR_OK: make the call, then report
 * its outcome with tr_breaker_record(). TR_EOPEN: the breaker is open (or
 * half-open with every trial slot taken): fail the call at once, and
 * record nothing. An open breaker whose reset_ms have passed turns
 * half-open here and lets this call through as its first trial; a
 * half-open breaker whose trials went reset_ms without an outcome reopens
 * here (those trials count as failed).
 * Errors: TR_EINVAL (b NULL), TR_EOPEN. Thread-safe: yes. */
TR_EXTERN tr_status tr_breaker_allow(tr_breaker *b);

/* Reports the outcome of a call tr_breaker_allow() let through: `ok`
 * true for a success, false for a failure (an error, a timeout: what
 * failure means is the caller's to decide). Closed: a failure counts, a
 * success clears the count; the `failures`-th failure in a row opens the
 * breaker. Half-open: a success closes it, a failure reopens it. Open:
 * ignored (the outcome of a call made before it opened).
 * Errors: TR_EINVAL (b NULL). Thread-safe: yes. */
TR_EXTERN tr_status tr_breaker_record(tr_breaker *b, bool ok);

/* Where `b` stands now (TR_CIRCUIT_CLOSED for NULL). An open breaker whose
 * reset_ms have passed still reads TR_CIRCUIT_OPEN until the next
 * tr_breaker_allow() turns it half-open. Thread-safe: yes. */
TR_EXTERN tr_circuit tr_breaker_state(const tr_breaker *b);

/* ---- Pools ------------------------------------------------------------- */

/* How a pool picks the worker for a message. */
typedef enum tr_route {
    /* Each worker in turn, skipping workers whose mailbox is full. When
     * all are full the pool waits until one has room (it looks again
     * every millisecond), taking no message meanwhile. */
    TR_ROUTE_ROUND_ROBIN = 0,
    /* The worker with the fewest messages waiting (ties: in turn); when
     * all are full, as round robin. */
    TR_ROUTE_LEAST_LOADED,
    /* The worker that key_fn's key maps to: a key always reaches the same
     * worker while that worker lives, and a worker that ends, is replaced
     * or is added moves only the keys that map to it (rendezvous hashing
     * over the pool's seats). A full worker is waited for, not skipped:
     * the pool takes no message until it has room. */
    TR_ROUTE_HASH,
    /* A copy to every worker. Requests are declined (TR_EINVAL): there
     * would be one reply per worker. */
    TR_ROUTE_BROADCAST,
} tr_route;

/* Maps a message to its routing key (TR_ROUTE_HASH). Called by the pool's
 * actor for each message it routes; must not block and must not call back
 * into the runtime. */
typedef uint64_t (*tr_pool_key_fn)(uint32_t type, const void *data, size_t len);

/* The most workers a pool may have. */
#define TR_POOL_MAX_WORKERS 1024u

/* A pool's settings, copied by tr_pool_start(). Zero in any field but
 * `actor` means its default. */
typedef struct tr_pool_spec {
    /* The workers' behavior and init argument (copied; NULL/0 for none),
     * as for tr_spawn(). */
    const tr_behavior *actor;
    const void *arg;
    size_t arg_len;
    /* Workers: the pool starts `min` (default 1) and stays between `min`
     * and `max` (default: min; at most TR_POOL_MAX_WORKERS). */
    uint32_t min, max;
    tr_route route;
    /* The key of a message, for TR_ROUTE_HASH (required there). */
    tr_pool_key_fn key_fn;
    /* Each worker's mailbox capacity (default: the runtime's). A worker's
     * policy is always TR_BACKPRESSURE: the pool waits for a full worker,
     * and producers meet the queue's policy instead. */
    uint32_t worker_capacity;
    /* The pool's own mailbox, where messages wait when every worker is
     * full: its capacity (default: the runtime's) and the overflow policy
     * producers see then (TR_BACKPRESSURE: they are muted or blocked;
     * TR_REJECT: TR_EFULL; the drop policies: shed, dead-lettered). */
    tr_mailbox_opts queue;
    /* A message that waited longer than this (from the moment the pool
     * handed it to a worker) when its worker gets to it is not handled: a
     * plain message is shed (dead-lettered with TR_ETIMEDOUT, counted in
     * tr_stats.shed), a request's asker gets TR_ETIMEDOUT (counted in
     * tr_stats.expired). Default 0: no age limit. */
    uint32_t max_age_ms;
    /* Resizing (when max > min). Every check_ms (default 100) the pool
     * looks at its load: the messages waiting in its workers' mailboxes
     * and its own. It grows by one worker when they average grow_depth
     * (default 8) or more per worker. It shrinks by one idle worker once
     * the load stayed light for shrink_idle_ms (default 1,000): at least
     * one worker idle, nothing waiting in the queue, and fewer messages
     * waiting than half of what would grow a pool one worker smaller.
     * Each resize restarts that window, so the pool never flaps. */
    uint32_t check_ms;
    uint32_t grow_depth;
    uint32_t shrink_idle_ms;
    /* A breaker to consult before routing each message (NULL: none). Not
     * owned: it must outlive the pool. While it refuses, requests are
     * declined with TR_EOPEN and other messages dead-lettered with
     * TR_EOPEN, counted in tr_pool_info.refused. The pool only asks; the
     * workers, which know what failure means, report each outcome with
     * tr_breaker_record() (pass them the breaker in `arg`). */
    tr_breaker *breaker;
    /* The workers are the pool's supervised children. A worker that fails
     * restarts in place at once (same ref, same seat, same keys), as the
     * decider says (NULL: always), and the message it failed on is handed
     * to it again up to `retry` times before it is quarantined
     * (dead-lettered with TR_EPOISON): see tr_child_spec. Restarts are
     * counted in tr_pool_info.restarts; a worker that ends for good is
     * replaced. */
    tr_decider_fn decider;
    void *decider_arg;
    uint32_t retry;
} tr_pool_spec;

/* Starts a pool: its `min` workers, then the pool's actor, whose ref is
 * written to *out. A send to that ref reaches one worker (see tr_route).
 * tr_stop() on it stops the pool and its workers (their queued messages
 * go to dead letters). The pool's actor handles TR_MSG_POOL_STATS itself
 * and routes every other message.
 * Errors (nothing is left running, *out unchanged): TR_EINVAL (NULL from,
 * spec or out, no actor, max below min or above TR_POOL_MAX_WORKERS, an
 * unknown route, TR_ROUTE_HASH without key_fn, a bad queue or worker
 * capacity or argument: see tr_spawn()), TR_EMSGSIZE (arg over
 * max_payload), TR_ENOMEM, TR_ELIMIT, TR_ESHUTDOWN.
 * Thread-safe: yes. */
#define tr_pool_start(from, ...)                                               \
    TR__FROM(from, tr_pool_start)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_pool_start_cx(tr_cx *cx, const tr_pool_spec *spec,
                                     tr_ref *out);
TR_EXTERN tr_status tr_pool_start_rt(tr_runtime *rt, const tr_pool_spec *spec,
                                     tr_ref *out);

/* A pool's counters, the reply to TR_MSG_POOL_STATS. */
typedef struct tr_pool_info {
    uint32_t workers;  /* alive now */
    uint32_t min, max; /* as configured */
    uint64_t routed;   /* messages handed to a worker (a broadcast counts
                          one per copy) */
    uint64_t refused;  /* messages the breaker refused (TR_EOPEN) */
    uint64_t declined; /* requests declined otherwise (a broadcast's) */
    uint64_t waits;    /* times the pool found every worker full and
                          waited before routing (1 ms each) */
    uint64_t grown;    /* workers added by the resizer */
    uint64_t shrunk;   /* workers removed by the resizer */
    uint64_t replaced; /* workers started in place of one that ended */
    uint64_t restarts; /* worker failures restarted in place */
} tr_pool_info;

/* The top user message types belong to pools: a pool handles these
 * itself and never routes them. A request of type TR_MSG_POOL_STATS is
 * answered with a tr_pool_info; from a handler:
 *   TR_AWAIT_ASK(cx, pool, TR_MSG_POOL_STATS, NULL, 0, &self->info,
 *                sizeof self->info, 100);
 * Do not use these types for other messages to a pool. */
#define TR_MSG_POOL_FIRST (TR_MSG_RESERVED - 16u)
#define TR_MSG_POOL_STATS (TR_MSG_RESERVED - 1u)

/* From a thread outside the runtime: asks pool `pool` for its counters
 * (a TR_MSG_POOL_STATS request; it waits in the pool's queue like any
 * message) and writes them to *out within timeout_ms.
 * Errors: TR_EINVAL (NULL rt or out), and those of tr_ask_wait().
 * Thread-safe: yes (not from a handler: TR_ESTATE). */
TR_EXTERN tr_status tr_pool_stats(tr_runtime *rt, tr_ref pool,
                                  tr_pool_info *out, uint32_t timeout_ms);

#endif
