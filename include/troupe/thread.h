/* Blocking work: thread actors and the blocking pool.
 *
 * A handler must not block its worker. Code that must block goes to one of
 * two places:
 *
 * - A thread actor owns an OS thread. It is an actor like any other (a ref,
 *   a bounded mailbox with its overflow policy, stop, dead letters), but its
 *   thread takes its messages with tr_thread_receive() instead of handlers
 *   running on a worker, so it may block: wrap a blocking driver in one.
 * - The blocking pool runs short blocking functions (a file read, a DNS
 *   lookup, a call into a blocking library) on a few threads that are not
 *   the workers, and sends each result back as a message. Its queue is
 *   bounded: a submitter sees backpressure exactly as a sender to a full
 *   mailbox does.
 *
 * tr_config.watchdog_ms reports handlers that block their worker anyway. */
#ifndef TROUPE_THREAD_H
#define TROUPE_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include "troupe/actor.h"
#include "troupe/mailbox.h"
#include "troupe/message.h"
#include "troupe/runtime.h"
#include "troupe/status.h"

/* ---- Thread actors ----------------------------------------------------- */

/* A thread actor's handle: its thread, its mailbox consumer. Opaque. */
typedef struct tr_thread tr_thread;

/* The function a thread actor's thread runs: typically a loop around
 * tr_thread_receive() that returns once it reports TR_EDEAD. `self` is
 * valid until tr_thread_join() returns. When it returns before the actor
 * ended, the actor ends then (reason TR_EXIT_NORMAL; messages still queued
 * go to dead letters). */
typedef void (*tr_thread_fn)(tr_thread *self, void *arg);

/* A message taken by tr_thread_receive(). `data` (NULL when len is 0) is
 * valid until the next tr_thread_receive() call or the function's return,
 * like a handler's payload until the handler returns. */
typedef struct tr_thread_msg {
    uint32_t type;
    tr_ref from; /* the sender; TR_NOREF for an outside thread */
    const void *data;
    size_t len;
} tr_thread_msg;

/* tr_thread_receive() timeout: wait with no limit. */
#define TR_THREAD_FOREVER UINT32_MAX

/* Spawns a thread actor named `name` (copied; NULL: "thread"; shown in
 * logs) with mailbox `mailbox` (NULL: the runtime's defaults), writes its
 * ref to *ref and its handle to *out, and starts a thread running
 * fn(*out, arg). The actor takes messages at once (they queue until the
 * function receives them).
 * Any sender reaches it with tr_send() and its ref; tr_stop() and shutdown
 * stop it: its next (or current) tr_thread_receive() returns TR_EDEAD.
 * From its own thread, sends, timers and stops name it as the sender
 * (tr_send(rt, ...) knows the thread); a send that finds a full
 * backpressure mailbox blocks the thread up to the send timeout, as for
 * any thread (while it blocks it receives nothing, so an actor muted on a
 * send to it waits as long). tr_ask_wait() works from it (the request's sender
 * is then the ask's reply actor). tr_stats counts it as an actor and each
 * message it receives as handled. On TR_OK the caller owns *out and must
 * release it with tr_thread_join(). Errors (nothing is spawned, *ref and *out
 * unchanged): TR_EINVAL (NULL rt, fn, ref or out, a malformed mailbox as for
 * tr_spawn()), TR_ENOMEM, TR_ELIMIT, TR_ESHUTDOWN, TR_EFAILED (the thread could
 * not be started). Thread-safe: yes. */
TR_EXTERN TR_NODISCARD tr_status tr_thread_spawn(tr_runtime *rt,
                                                 const char *name,
                                                 const tr_mailbox_opts *mailbox,
                                                 tr_thread_fn fn, void *arg,
                                                 tr_ref *ref, tr_thread **out);

/* Takes the actor's next message into *out, waiting up to `timeout_ms`
 * (0: do not wait; TR_THREAD_FOREVER: no limit). The previous message is
 * released first: if it was a request the thread did not reply to, its
 * asker gets TR_ENOREPLY (counted in tr_stats.unanswered). System messages
 * are handled on the way: a stop ends the actor (its queued messages go to
 * dead letters) and the call returns TR_EDEAD, as does every later call.
 * Errors: TR_EINVAL (NULL t or out), TR_ESTATE (not called on t's own
 * thread), TR_ETIMEDOUT (no message in time), TR_EDEAD (the actor ended:
 * return from the thread function).
 * Thread-safe: no; only t's own thread calls it. */
TR_EXTERN tr_status tr_thread_receive(tr_thread *t, tr_thread_msg *out,
                                      uint32_t timeout_ms);

/* Replies to the message the last tr_thread_receive() took, as tr_reply()
 * does for a handler (a send from the actor, which may block).
 * Errors: TR_EINVAL (NULL t, no message, one without a sender or of a
 * reserved type, data NULL with len > 0), TR_ESTATE (not t's own thread),
 * and those of tr_send().
 * Thread-safe: no; only t's own thread calls it. */
TR_EXTERN tr_status tr_thread_reply(tr_thread *t, const void *data, size_t len);

/* The thread actor's ref; TR_NOREF for NULL. Thread-safe: yes. */
TR_EXTERN tr_ref tr_thread_ref(const tr_thread *t);

/* The runtime the thread actor belongs to; NULL for NULL.
 * Thread-safe: yes. */
TR_EXTERN tr_runtime *tr_thread_runtime(const tr_thread *t);

/* Waits for the thread's function to return (stop the actor first, or let
 * shutdown stop it, if the function loops until TR_EDEAD), joins the
 * thread, frees the handle and sets *tp to NULL. Accepts NULL and a pointer
 * to NULL. May be called after the runtime was destroyed.
 * Errors: TR_ESTATE (called on the thread itself; nothing changes).
 * Thread-safe: no; one call per handle. */
TR_EXTERN tr_status tr_thread_join(tr_thread **tp);

/* ---- The blocking pool ------------------------------------------------- */

/* What a job produces: the payload of its result message. `free_fn` NULL:
 * `len` bytes at `data` are copied into the message (data stays the
 * job's). `free_fn` set: the buffer is moved into the message and released
 * with free_fn once the runtime is done with it, on every outcome (as for
 * tr_send_move()). All zero: a result message without payload. */
typedef struct tr_blocking_result {
    void *data;
    size_t len;
    tr_free_fn free_fn;
} tr_blocking_result;

/* Runs on a pool thread; may block. Fills *out (zeroed before the call).
 * It runs as a thread outside the runtime: its sends have no sender and
 * block on full mailboxes. */
typedef void (*tr_blocking_fn)(void *arg, tr_blocking_result *out);

/* Called instead of fn for an accepted job that never runs (the runtime
 * shut down first), so `arg` can be released. Runs on whichever thread
 * drops the job; must not block or call back into the runtime. */
typedef void (*tr_blocking_cancel_fn)(void *arg);

/* A job for tr_blocking_run(). The runtime copies the struct. */
typedef struct tr_job {
    tr_blocking_fn fn;               /* required */
    tr_blocking_cancel_fn cancel_fn; /* may be NULL */
    void *arg;
    /* Who gets the result, as a message of `reply_type` (a user type) sent
     * by the pool's actor; TR_NOREF: nobody (a moved result is freed). A
     * full backpressure mailbox admits it past capacity (counted in
     * tr_stats.overcommits): the pool never waits on the actor that waits
     * on the pool, and results are bounded by the jobs submitted. Other
     * policies apply as to any message (a refused or dropped result is a
     * dead letter), as does a dead receiver. */
    tr_ref reply_to;
    uint32_t reply_type;
} tr_job;

/* Queues `job` for the blocking pool (started on first use with
 * tr_config.blocking_threads threads; its queue holds
 * tr_config.blocking_queue jobs). Jobs start in submission order.
 * Returns TR_OK (queued), or when the queue is full: from a handler,
 * TR_PENDING (accepted and held in the actor's outbox; the actor is muted
 * until the pool has room, as for a send to a full backpressure mailbox);
 * from a thread outside the runtime (or a thread actor), the call blocks
 * until there is room or the send timeout passes (TR_ETIMEDOUT).
 * Ownership: an accepted job (TR_OK, TR_PENDING) runs exactly once, or, if
 * the runtime shuts down before it runs, cancel_fn(arg) is called exactly
 * once instead (counted in tr_stats.jobs_canceled; the job is also a dead
 * letter of type TR_MSG_JOB). A refused job (any negative status) never
 * runs, cancel_fn is not called, and arg stays the caller's.
 * Errors: TR_EINVAL (NULL from or job, job->fn NULL, a reserved
 * reply_type with a reply_to), TR_ENOMEM, TR_EFULL (the actor's outbox
 * limit), TR_ETIMEDOUT, TR_ESHUTDOWN (shutdown began: the pool stops
 * taking jobs), TR_EFAILED (no pool thread could be started).
 * Thread-safe: yes. */
#define tr_blocking_run(from, ...)                                             \
    TR__FROM(from, tr_blocking_run)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_blocking_run_cx(tr_cx *cx, const tr_job *job);
TR_EXTERN tr_status tr_blocking_run_rt(tr_runtime *rt, const tr_job *job);

/* From an async handler (between TR_ASYNC_BEGIN and TR_ASYNC_END): runs
 * fn(arg, &out) on the blocking pool and awaits it, as TR_AWAIT_ASK awaits
 * a reply. The result's bytes (out.data, out.len; out.free_fn, if set, is
 * called once they are copied) must be exactly result_len bytes and are
 * copied to `result`, which must live in the actor's state; `arg` must
 * stay valid until the await ends. The deadline is as for TR_AWAIT_ASK
 * (timeout_ms, or less when handling a request with less time left); a
 * job still queued at its deadline is not run (counted in
 * tr_stats.expired). Then tr_await_status(cx) is TR_OK, TR_ETIMEDOUT (the
 * job may still run later; its result is then dropped as a late reply),
 * TR_EBADMSG (a result of another size), TR_ECANCELED (the runtime shut
 * down before the job ran), TR_ESHUTDOWN, or, without suspending,
 * TR_EINVAL (fn NULL), TR_ENOMEM, TR_EFAILED (no pool thread could
 * start). A full queue holds the job like a full mailbox holds a send: the
 * actor is muted until there is room, within the same deadline. */
#define TR_AWAIT_JOB(cx, fn, arg, result, result_len, timeout_ms)              \
    TR__AWAIT(cx, tr_await_job(cx, __LINE__, fn, arg, result, result_len,      \
                               timeout_ms))
TR_EXTERN tr_status tr_await_job(tr_cx *cx, uint32_t point, tr_blocking_fn fn,
                                 void *arg, void *result, size_t result_len,
                                 uint32_t timeout_ms);

#endif
