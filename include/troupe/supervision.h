/* Supervision: supervisors that start children, watch them and restart
 * them, in trees.
 *
 * A supervisor is an actor started from a spec: a strategy, a restart
 * intensity, a backoff, and a table of children. It starts its children in
 * order and stops them in reverse order.
 *
 * A supervised child keeps its ref across restarts: a restart happens in
 * place. The failed incarnation's terminate hook runs, its state is zeroed,
 * and its init hook runs again with the same argument. Messages sent to the
 * child meanwhile (while it backs off) wait in its mailbox, up to its
 * capacity; beyond that its overflow policy applies. So a restart loses no
 * message, and nobody needs a new ref. A child that is killed (tr_kill) is
 * gone for good. The supervisor starts a new actor in its place, with a new
 * ref.
 *
 * What happens when a child fails is decided in the child, at once, by
 * its spec:
 * - a decider maps the failure reason to a directive (resume, restart,
 *   stop, escalate);
 * - its restart type says whether ends are restarted at all;
 * - `retry` says how often the message it failed on is retried after a
 *   restart before it is quarantined.
 * The supervisor counts restarts against its intensity, spaces them out
 * with backoff, and applies its strategy to the siblings. */
#ifndef TROUPE_SUPERVISION_H
#define TROUPE_SUPERVISION_H

#include <stddef.h>
#include <stdint.h>

#include "troupe/actor.h"
#include "troupe/mailbox.h"
#include "troupe/message.h"
#include "troupe/runtime.h"
#include "troupe/status.h"

/* When a child is restarted (OTP's meanings). */
typedef enum tr_restart {
    TR_PERMANENT = 0, /* always, whatever the reason, even a normal end */
    TR_TRANSIENT,     /* only after an abnormal end (a failure) */
    TR_TEMPORARY,     /* never: it ends for good */
} tr_restart;

/* What a decider says to do with a failed child. */
typedef enum tr_directive {
    TR_RESUME = 1, /* keep its state and go on with the next message (the
                      one it failed on is dead-lettered, reason TR_EFAILED) */
    TR_RESTART,    /* restart it in place (the supervisor may space it out
                      with backoff, and counts it against its intensity) */
    TR_STOP,       /* end it for good */
    TR_ESCALATE,   /* end it, and fail the supervisor (which escalates to
                      its own supervisor) */
} tr_directive;

/* Maps a failure reason (kind TR_EXIT_FAILED or TR_EXIT_OVERLOAD, code
 * and text) to a directive. Runs in the failing child's turn: it must not
 * block and must not call back into the runtime. */
typedef tr_directive (*tr_decider_fn)(void *arg, const tr_reason *why);

/* How children are restarted, OTP's strategies. */
typedef enum tr_strategy {
    TR_ONE_FOR_ONE = 0,    /* only the child that failed */
    TR_ONE_FOR_ALL,        /* every child */
    TR_REST_FOR_ONE,       /* the child and those started after it */
    TR_SIMPLE_ONE_FOR_ONE, /* dynamic children of one spec, started with
                              tr_sup_start_child(); one_for_one among them */
} tr_strategy;

/* Restart backoff: the k-th restart of a child in a row waits
 * min(max_ms, min_ms * 2^k), plus or minus `jitter` (0..1) of that, at
 * random. A child that ran `reset_ms` since its last restart starts again
 * at min_ms. All zero: restart at once. */
typedef struct tr_backoff {
    uint32_t min_ms;
    uint32_t max_ms;   /* 0: min_ms * 64 */
    double jitter;     /* 0..1 */
    uint32_t reset_ms; /* 0: 10 s */
} tr_backoff;

/* shutdown_ms value: kill the child at once, without draining. */
#define TR_BRUTAL_KILL UINT32_MAX

typedef struct tr_sup_spec tr_sup_spec;

/* One child of a supervisor. */
typedef struct tr_child_spec {
    const char *id; /* shown by which_children and the tree walk */
    /* The child: an actor of `actor`, or a supervisor of `sup`, which
     * makes a tree, ... */
    const tr_behavior *actor;
    const tr_sup_spec *sup;
    /* ... or (actor and sup NULL) a pool of `pool` (troupe/pool.h). */
    const struct tr_pool_spec *pool;
    /* The init argument (copied; kept for restarts). */
    const void *arg;
    size_t arg_len;
    tr_restart restart;
    /* On stop: drain up to this long, then kill. 0: 5,000 ms. */
    uint32_t shutdown_ms;
    /* NULL: TR_RESTART (TR_STOP for a temporary child). */
    tr_decider_fn decider;
    void *decider_arg;
    /* Times the message a child failed on is handed to it again after a
     * restart before it is quarantined: dead-lettered with reason
     * TR_EPOISON (an asker gets TR_EPOISON) while the child goes on. 0: the
     * message is dead-lettered at once (TR_EFAILED). */
    uint32_t retry;
    /* NULL: the runtime's defaults. */
    const tr_mailbox_opts *mailbox;
} tr_child_spec;

/* A supervisor. The spec (and the child specs, names and arguments it
 * points to) must outlive the supervisor: it is not copied. */
struct tr_sup_spec {
    tr_strategy strategy;
    /* More than `intensity` restarts within `period_ms` make the
     * supervisor give up: it stops its children and fails, which its own
     * supervisor sees. Both 0: 3 within 5,000 ms. */
    uint32_t intensity;
    uint32_t period_ms;
    tr_backoff backoff;
    /* Started in this order, stopped in reverse. For TR_SIMPLE_ONE_FOR_ONE
     * exactly one: the template of the dynamic children. */
    const tr_child_spec *children;
    uint32_t nchildren;
};

/* Starts a supervisor of `spec` and its children (in order; if one cannot
 * start, those started are stopped and the call fails). From a handler the
 * supervisor is the caller's child (linked: if the caller ends abnormally,
 * the tree goes with it); from an outside thread it has no parent.
 * Errors: TR_EINVAL (a malformed spec: no children, a child without
 * exactly one of actor, sup and pool, TR_SIMPLE_ONE_FOR_ONE without exactly
 * one child spec), TR_ENOMEM, TR_ESHUTDOWN, the errors of spawning the
 * supervisor itself; from an outside thread, which waits for its children
 * to start, also TR_EFAILED (a child could not start: nothing is left
 * running; from a handler that failure ends the new supervisor, and the
 * link tells the caller) and those of tr_ask_wait(). Thread-safe: yes. */
#define tr_sup_start(from, ...) TR__FROM(from, tr_sup_start)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_sup_start_cx(tr_cx *cx, const tr_sup_spec *spec,
                                    tr_ref *out);
TR_EXTERN tr_status tr_sup_start_rt(tr_runtime *rt, const tr_sup_spec *spec,
                                    tr_ref *out);

/* The calls below ask the supervisor and wait for its answer: from a
 * thread outside the runtime only (from a handler they return TR_ESTATE:
 * they would block a worker). `timeout_ms` bounds the wait. Their errors
 * include those of tr_ask_wait() (TR_EDEAD: not a live supervisor). */

/* TR_SIMPLE_ONE_FOR_ONE: starts a child of the template with `arg` (its
 * init argument, copied and kept for restarts; NULL/0: the template's).
 * Errors: TR_ESTATE (another strategy, or the supervisor is stopping). */
TR_EXTERN tr_status tr_sup_start_child(tr_runtime *rt, tr_ref sup,
                                       const void *arg, size_t arg_len,
                                       tr_ref *out, uint32_t timeout_ms);

/* Stops child `child` of the supervisor (drain, then kill after its
 * shutdown_ms) and forgets it: it is not restarted.
 * Errors: TR_ENOENT (not its child). */
TR_EXTERN tr_status tr_sup_stop_child(tr_runtime *rt, tr_ref sup, tr_ref child,
                                      uint32_t timeout_ms);

/* Counts of a supervisor's children. */
typedef struct tr_sup_counts {
    uint32_t specs;       /* child specs (dynamic: children started) */
    uint32_t active;      /* running */
    uint32_t restarting;  /* failed, waiting for their restart */
    uint32_t supervisors; /* of them, supervisors */
    uint64_t restarts;    /* restarts so far */
} tr_sup_counts;

TR_EXTERN tr_status tr_sup_count_children(tr_runtime *rt, tr_ref sup,
                                          tr_sup_counts *out,
                                          uint32_t timeout_ms);

/* A child's state as which_children shows it. */
typedef enum tr_child_state {
    TR_CHILD_RUNNING = 0,
    TR_CHILD_RESTARTING, /* failed; backing off or restarting */
    TR_CHILD_STOPPING,
} tr_child_state;

typedef struct tr_child_info {
    char id[32];
    tr_ref ref;
    tr_child_state state;
    uint32_t restarts;
    bool supervisor;
} tr_child_info;

/* Fills out[0..max) with the supervisor's children from index `first`, in
 * start order, and *n with how many it wrote (0 past the end). */
TR_EXTERN tr_status tr_sup_which_children(tr_runtime *rt, tr_ref sup,
                                          uint32_t first, tr_child_info *out,
                                          uint32_t max, uint32_t *n,
                                          uint32_t timeout_ms);

/* Walks the tree under `sup`, depth first, in start order: fn(arg, depth,
 * info) for every child, depth 1 for the supervisor's own children; a
 * child that is a supervisor is followed by its own children. Returns the
 * first error of a supervisor asked. */
typedef void (*tr_sup_walk_fn)(void *arg, uint32_t depth,
                               const tr_child_info *info);
TR_EXTERN tr_status tr_sup_walk(tr_runtime *rt, tr_ref sup, tr_sup_walk_fn fn,
                                void *arg, uint32_t timeout_ms);

/* Stops the supervisor: new messages to its children are refused
 * (TR_ESHUTDOWN to senders), each child drains its mailbox and ends, in
 * reverse start order, each within its shutdown_ms or killed (its
 * remaining messages dead-lettered; askers answered at once), then the
 * supervisor ends. Returns when it has (up to timeout_ms: TR_ETIMEDOUT).
 * Errors: TR_EDEAD. */
TR_EXTERN tr_status tr_sup_stop(tr_runtime *rt, tr_ref sup,
                                uint32_t timeout_ms);

#endif
