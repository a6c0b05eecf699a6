/* Actors: declaring them, spawning, sending, stopping, asking, timers.
 *
 * An actor is a state struct plus a table of handlers keyed by message type.
 * It runs only when it has messages, one message at a time, on one of the
 * runtime's workers. A handler runs to completion and must not block.
 *
 * Calls that act on behalf of someone take `from` first: either the
 * `tr_cx *` a handler was given (the actor is then the sender, and a full
 * backpressure mailbox holds the message instead of blocking), or a
 * `tr_runtime *` from a thread outside the runtime (no sender; a full
 * backpressure mailbox blocks the thread up to the send timeout). Both
 * spellings are one call: tr_send(cx, ...) in a handler, tr_send(rt, ...)
 * in main(). A handler that calls the tr_runtime * form with its own
 * runtime acts as its actor all the same (it is the sender, and a full
 * mailbox holds, never blocks); with another runtime it is an outside
 * thread of that runtime. */
#ifndef TROUPE_ACTOR_H
#define TROUPE_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "troupe/mailbox.h"
#include "troupe/message.h"
#include "troupe/runtime.h"
#include "troupe/status.h"

/* The context a handler runs in: the actor, the message, the runtime. Valid
 * only during the handler call that received it. */
typedef struct tr_cx tr_cx;

/* ---- Declaring an actor ------------------------------------------------ */

/* Generic shape of every handler. Declared handlers keep their real types
 * (see TR_ON); the runtime calls them through this type. */
typedef tr_status (*tr_handler_fn)(tr_cx *cx, void *self, const void *msg);

/* Payload size of an entry that takes any size (TR_ON_BYTES, unhandled). */
#define TR_SIZE_ANY UINT32_MAX

/* One row of an actor's table. Built by the TR_ON* macros. */
typedef struct tr_handler {
    uint32_t type; /* user type, or TR_MSG_INIT/TERMINATE/UNHANDLED */
    uint32_t size; /* exact payload size, or TR_SIZE_ANY */
    tr_handler_fn fn;
} tr_handler;

/* An actor declaration. Built by TR_ACTOR; immutable; lives as long as any
 * actor spawned from it. */
typedef struct tr_behavior {
    const char *name;
    size_t state_size;
    const tr_handler *handlers;
    uint32_t nhandlers;
} tr_behavior;

/* TR_ACTOR(name, State, rows...) defines `const tr_behavior name`: an actor
 * whose state is a zeroed `State` and whose rows are TR_ON* entries:
 *
 *   TR_ACTOR(counter_actor, struct counter,
 *            TR_ON(MSG_ADD, struct add, on_add),
 *            TR_ON(MSG_GET, void, on_get));
 *
 * Use `extern const tr_behavior name;` to share it between files. */
#define TR_ACTOR(name, State, ...)                                             \
    static const tr_handler tr__rows_##name[] = {__VA_ARGS__};                 \
    const tr_behavior name = {                                                 \
        #name, sizeof(State), tr__rows_##name,                                 \
        (uint32_t)(sizeof tr__rows_##name / sizeof tr__rows_##name[0])}

/* A handler for messages of `type` whose payload is a `Msg` (or `void`: no
 * payload). `fn` is `tr_status fn(tr_cx *, State *, const Msg *)`; the
 * compiler checks the Msg type. A message whose size is not sizeof(Msg)
 * (0 for void) is refused: dead-lettered with TR_EBADMSG, and an asker gets
 * TR_EBADMSG at once. A handler returning a negative status makes the actor
 * fail with reason TR_EXIT_FAILED and that code. */
#define TR_ON(type, Msg, fn)                                                   \
    {                                                                          \
        (type), (uint32_t)(TR__SIZE_OF(Msg) + 0 * sizeof(TR__CHECK(fn, Msg))), \
            (tr_handler_fn)(fn)                                                \
    }

/* A handler for `type` taking any payload size:
 * `tr_status fn(tr_cx *, State *, const void *data)`; tr_msg_size(cx) gives
 * the size. */
#define TR_ON_BYTES(type, fn)                                                  \
    {                                                                          \
        (type), TR_SIZE_ANY + 0 * sizeof(TR__CHECK(fn, void)),                 \
            (tr_handler_fn)(fn)                                                \
    }

/* The init hook: `tr_status fn(tr_cx *, State *, const Arg *arg)`, run once
 * before any message with the spawn's argument (whose size must be
 * sizeof(Arg), or 0 for void). A negative status ends the actor with reason
 * TR_EXIT_FAILED; its terminate hook then does not run. In the hook,
 * tr_msg_type() is TR_MSG_INIT, tr_sender() the spawning actor (TR_NOREF
 * for a spawn from outside), and tr_reply() refuses (TR_EINVAL). */
#define TR_ON_INIT(Arg, fn) TR_ON(TR_MSG_INIT, Arg, fn)

/* The terminate hook: `tr_status fn(tr_cx *, State *, const tr_reason *)`,
 * run exactly once when an actor whose init succeeded ends, for any reason.
 * Its return value is ignored. Sends from it are allowed (one held by a
 * full mailbox is delivered past capacity, as for any ending actor);
 * tr_msg_type() is 0 there and tr_reply() refuses (TR_EINVAL). */
#define TR_ON_TERMINATE(fn) TR_ON(TR_MSG_TERMINATE, tr_reason, fn)

/* The hook for messages no row handles:
 * `tr_status fn(tr_cx *, State *, const void *data)`; tr_msg_type(cx) and
 * tr_msg_size(cx) describe the message. Without it, such messages go to
 * dead letters with TR_EUNHANDLED (an asker gets TR_EUNHANDLED at once). */
#define TR_ON_UNHANDLED(fn) TR_ON_BYTES(TR_MSG_UNHANDLED, fn)

/* ---- Spawning ---------------------------------------------------------- */

typedef struct tr_spawn_opts {
    /* Argument for the init hook, copied; NULL/0 for none. */
    const void *arg;
    size_t arg_len;
    /* The mailbox; NULL: the runtime's defaults (tr_config.mailbox_capacity
     * and .overflow). For example:
     *   &(tr_spawn_opts){.mailbox = &(tr_mailbox_opts){16, TR_REJECT}} */
    const tr_mailbox_opts *mailbox;
    /* Link the new actor to the spawning actor before it runs (see
     * tr_link()); only from a handler (TR_EINVAL from outside). */
    bool link;
} tr_spawn_opts;

/* Spawns an actor of behavior `b` (opts NULL: defaults) and writes its ref
 * to *out. The actor runs its init hook on a worker before any message.
 * From a thread outside the runtime, it first waits while more than 1,024
 * actors per worker scheduled from outside have not started yet, for 10
 * ms at most per call: a thread spawning in a loop goes at the workers'
 * pace instead of piling up actors that have not run.
 * Errors (nothing is spawned, *out unchanged): TR_EINVAL (NULL b or out, a
 * malformed behavior, a mailbox with capacity 0 or above
 * TR_MAILBOX_MAX_CAPACITY or an unknown overflow policy, an argument
 * without an init hook or of the wrong size),
 * TR_EMSGSIZE (argument over max_payload), TR_ENOMEM, TR_ELIMIT (max_actors
 * alive), TR_ESHUTDOWN. Thread-safe: yes. */
#define tr_spawn(from, ...) TR__FROM(from, tr_spawn)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_spawn_cx(tr_cx *cx, const tr_behavior *b,
                                const tr_spawn_opts *opts, tr_ref *out);
TR_EXTERN tr_status tr_spawn_rt(tr_runtime *rt, const tr_behavior *b,
                                const tr_spawn_opts *opts, tr_ref *out);

/* ---- Sending ----------------------------------------------------------- */

/* Sends a copy of `len` bytes at `data` (NULL when len is 0) as a message of
 * `type` to `to`.
 * Returns TR_OK (queued), or what the receiver's overflow policy says:
 * TR_PENDING (held in this actor's outbox; the actor is muted after this
 * handler until the held sends are delivered; stop sending; if the actor
 * ends first, its held sends are still delivered, past the receiver's
 * capacity if need be, counted in tr_stats.overcommits; a held send whose
 * receiver ends first is dead-lettered with TR_EDEAD, one its receiver's
 * reject policy refuses when it goes is dead-lettered with TR_EFULL),
 * TR_DROPPED
 * (dead-lettered by the policy), TR_EFULL (reject policy, or the outbox
 * limit; nothing sent), TR_ETIMEDOUT (outside thread waited the send
 * timeout; nothing sent).
 * Errors: TR_EINVAL (NULL from, data NULL with len > 0, a reserved type),
 * TR_EMSGSIZE (len over max_payload), TR_ENOMEM, TR_EDEAD (the actor is dead,
 * unknown or of another runtime; the message goes to dead letters),
 * TR_ESHUTDOWN (from an outside thread after shutdown began).
 * Thread-safe: yes. */
#define tr_send(from, ...) TR__FROM(from, tr_send)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_send_cx(tr_cx *cx, tr_ref to, uint32_t type,
                               const void *data, size_t len);
TR_EXTERN tr_status tr_send_rt(tr_runtime *rt, tr_ref to, uint32_t type,
                               const void *data, size_t len);

/* Like tr_send(), but moves the heap buffer *bufp (len bytes, released with
 * free_fn) into the message instead of copying it. When the runtime took the
 * buffer (TR_OK, TR_PENDING, TR_DROPPED, TR_EDEAD) *bufp is set to NULL and
 * the runtime calls free_fn once it is done with it; on any other status
 * *bufp is untouched and the caller still owns it. A handler sees the
 * buffer as its payload; it stays valid until the handler returns.
 * Errors: as tr_send(), and TR_EINVAL for NULL bufp, *bufp or free_fn.
 * Thread-safe: yes. */
#define tr_send_move(from, ...) TR__FROM(from, tr_send_move)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_send_move_cx(tr_cx *cx, tr_ref to, uint32_t type,
                                    void **bufp, size_t len,
                                    tr_free_fn free_fn);
TR_EXTERN tr_status tr_send_move_rt(tr_runtime *rt, tr_ref to, uint32_t type,
                                    void **bufp, size_t len,
                                    tr_free_fn free_fn);

/* From a thread outside the runtime: sends a copy of the request to `to`
 * and waits up to `timeout_ms` in all (the send included, if the mailbox
 * is full) for its tr_reply(), whose payload must be
 * exactly `reply_len` bytes and is copied to `reply` (NULL when 0).
 * Errors: the send errors of tr_send(); TR_ETIMEDOUT (no reply in time; a
 * late reply is dead-lettered: TR_EDEAD once the internal reply actor is
 * gone, TR_ETIMEDOUT if it gets there first); TR_EBADMSG (reply of another
 * size, or the request's size did not match the handler's type);
 * TR_EUNHANDLED (no handler); TR_EDEAD (the actor ended before replying);
 * TR_EFULL (the receiver's overflow policy refused or dropped the request);
 * TR_ELIMIT (max_actors alive: see below); TR_ESTATE (called from a
 * handler, where it would block a worker).
 * Each call receives its reply through a short-lived internal actor: it
 * is the request's sender (what the handler's tr_sender() returns), it
 * takes an actor slot while the call lasts, and tr_stats counts it (one
 * spawn; the reply as one message sent and handled). Thread-safe: yes. */
TR_EXTERN tr_status tr_ask_wait(tr_runtime *rt, tr_ref to, uint32_t type,
                                const void *data, size_t len, void *reply,
                                size_t reply_len, uint32_t timeout_ms);

/* Replies to the message being handled: a TR_MSG_REPLY to its sender with
 * its correlation id, so an asker's wait ends with this payload.
 * A request (a message sent by an ask) must be answered exactly once:
 * with tr_reply(), tr_forward() or tr_reply_error(). A handler that
 * finishes without doing one of them makes the runtime answer
 * TR_ENOREPLY, naming the actor and the message type (counted in
 * tr_stats.unanswered, logged); one that fails or ends first makes it
 * answer TR_EDEAD. The reply to an awaiting asker travels on its system
 * lane, so it is never held by backpressure; other replies are sent like
 * any message (a full backpressure mailbox holds them).
 * Returns what tr_send() returns for that message, except that an asker
 * that is gone gives TR_DROPPED (the reply was dead-lettered), not
 * TR_EDEAD: `return tr_reply(...)` does not fail the actor for it.
 * Errors: TR_EINVAL (no sender to reply to, or the message being handled
 * is a hook's or of a reserved type: a reply, a dead letter), TR_ESTATE
 * (this request was already answered, forwarded or declined), and those
 * of tr_send().
 * Thread-safe: only from a handler, with its own cx. */
TR_EXTERN tr_status tr_reply(tr_cx *cx, const void *data, size_t len);

/* Declines the request being handled: its asker gets `error` (a negative
 * status of the handler's choosing) instead of a reply.
 * Errors: as tr_reply(), and TR_EINVAL for error >= 0.
 * Thread-safe: only from a handler, with its own cx. */
TR_EXTERN tr_status tr_reply_error(tr_cx *cx, tr_status error);

/* Forwards a copy of the message being handled to `to`, keeping its sender,
 * correlation id and deadline: `to`'s tr_reply() then answers the original
 * asker directly, and this actor's obligation to answer is over. Sent
 * from this actor like tr_send() (a full backpressure mailbox holds it).
 * Returns and errors: as tr_send(), and those of tr_reply().
 * Thread-safe: only from a handler, with its own cx. */
TR_EXTERN tr_status tr_forward(tr_cx *cx, tr_ref to);

/* ---- Async handlers ---------------------------------------------------- */

/* A handler may await a reply, a timer or a held send, and goes on where it
 * left off when that is over. Await points are stackless: the actor has no
 * stack of its own, so the handler returns at each await and is called
 * again, with the same message, when the await is over. The macros hide
 * that; a handler reads as sequential code:
 *
 *   static tr_status on_lookup(tr_cx *cx, struct front *self,
 *                              const struct key *k)
 *   {
 *       TR_ASYNC_BEGIN(cx);
 *       TR_AWAIT_ASK(cx, self->db, MSG_LOAD, k, sizeof *k,
 *                    &self->value, sizeof self->value, 50);
 *       if (tr_await_status(cx) != TR_OK)
 *           return tr_reply_error(cx, tr_await_status(cx));
 *       TR_ASYNC_END(cx, tr_reply(cx, &self->value, sizeof self->value));
 *   }
 *
 * The rule for locals: a local variable does not survive an await (the
 * handler returned in between). Keep what must live across an await in
 * the actor's state, and re-read the message (it stays the same) rather
 * than pointers derived before the await. Other rules: one TR_AWAIT_* per
 * source line, not inside a `switch` of the handler's own, and only
 * between TR_ASYNC_BEGIN and TR_ASYNC_END.
 *
 * While a handler is suspended, the actor handles no other user message:
 * they wait in its bounded mailbox (its senders see its overflow policy).
 * System messages still run: a stop ends the actor at once, its terminate
 * hook runs, the await is dropped (a late reply is counted in
 * tr_stats.late_replies and dead-lettered) and the suspended request's
 * asker gets TR_EDEAD. Every await has a deadline; at expiry the handler
 * resumes with TR_ETIMEDOUT (a sleep, with TR_OK). Awaits are for user
 * messages' handlers: in the init and terminate hooks they fail with
 * TR_ESTATE. */
#define TR_ASYNC_BEGIN(cx)                                                     \
    switch (tr_async_point(cx)) {                                              \
    case 0:

#define TR_ASYNC_END(cx, ret)                                                  \
    }                                                                          \
    return (ret)

/* Sends a request (a copy of len bytes at data, of `type`) to `to` and
 * awaits its reply, whose payload must be exactly reply_len bytes and is
 * copied to `reply` (which must live in the actor's state). The deadline
 * is timeout_ms from now, or that of the request being handled if it is
 * sooner (an ask made while handling a request inherits what is left of
 * its time). Then tr_await_status(cx) is TR_OK, the replier's
 * tr_reply_error() code, TR_ETIMEDOUT, TR_EBADMSG (a reply of another
 * size, or the request's size did not match the handler's type),
 * TR_EUNHANDLED, TR_ENOREPLY (the handler finished without answering),
 * TR_EDEAD (the actor is dead or ended before answering), TR_EFULL (its
 * overflow policy dropped the request), TR_ECYCLE (the actor asked,
 * directly or through others, awaits this one: nothing was sent;
 * tr_await_detail() names the cycle), or a send error of tr_send() (then
 * nothing was sent and the handler did not suspend). A request held by a
 * full backpressure mailbox is sent when there is room, within the same
 * deadline. */
#define TR_AWAIT_ASK(cx, to, type, data, len, reply, reply_len, timeout_ms)    \
    TR__AWAIT(cx, tr_await_ask(cx, __LINE__, to, type, data, len, reply,       \
                               reply_len, timeout_ms))

/* Awaits `ms` milliseconds; then tr_await_status(cx) is TR_OK. */
#define TR_AWAIT_SLEEP(cx, ms) TR__AWAIT(cx, tr_await_sleep(cx, __LINE__, ms))

/* Sends like tr_send(); if the receiver's full backpressure mailbox holds
 * the message, awaits its delivery, up to timeout_ms. Then
 * tr_await_status(cx) is TR_OK (delivered), TR_DROPPED or TR_EDEAD (it
 * went, and was dead-lettered), TR_ETIMEDOUT (not sent: it was taken back
 * out of the outbox), or what tr_send() returned when it did not hold. */
#define TR_AWAIT_SEND(cx, to, type, data, len, timeout_ms)                     \
    TR__AWAIT(cx, tr_await_send(cx, __LINE__, to, type, data, len, timeout_ms))

/* The result of the handler's last await. */
TR_EXTERN tr_status tr_await_status(const tr_cx *cx);

/* A text explaining the last await's error, when there is one: the cycle
 * for TR_ECYCLE ("front#3 -> #7 -> front#3": behaviour name and slot of
 * this actor, slots of the others), the replier's text for TR_ENOREPLY,
 * the sizes for a reply's TR_EBADMSG; "" otherwise. Valid until the next
 * await. */
TR_EXTERN const char *tr_await_detail(const tr_cx *cx);

/* Asks without suspending: sends the request and returns at once; the
 * reply comes later as a message of type TR_MSG_REPLY (handled by a
 * TR_ON_REPLY row), whose tr_msg_corr() is the *corr this call wrote and
 * whose tr_msg_status() is TR_OK with the reply's payload, or the error
 * (TR_ETIMEDOUT once the deadline passes: then a reply that still comes is
 * dropped and counted as late, never delivered). The deadline is as for
 * TR_AWAIT_ASK. At most 4096 may be in flight per actor.
 * Returns what tr_send() returns (TR_OK, TR_PENDING, ...; TR_EDEAD and
 * TR_DROPPED also come back as an error reply).
 * Errors: those of tr_send(), TR_ELIMIT. Thread-safe: only from a handler
 * (or hook), with its own cx. */
TR_EXTERN tr_status tr_ask(tr_cx *cx, tr_ref to, uint32_t type,
                           const void *data, size_t len, uint32_t timeout_ms,
                           uint64_t *corr);

/* A row for replies to tr_ask(): `tr_status fn(tr_cx *, State *, const void
 * *data)`, any size (an error reply's payload is its text). */
#define TR_ON_REPLY(fn) TR_ON_BYTES(TR_MSG_REPLY, fn)

/* The status a TR_MSG_REPLY carries (TR_OK for any other message). */
TR_EXTERN tr_status tr_msg_status(const tr_cx *cx);
/* The correlation id of the message being handled: a request's, or the
 * ask's that a reply answers; 0 for plain messages. */
TR_EXTERN uint64_t tr_msg_corr(const tr_cx *cx);

/* ---- Stopping ---------------------------------------------------------- */

/* Asks actor `who` to stop with reason TR_EXIT_NORMAL. It finishes the
 * message it is handling, runs its terminate hook, and its queued messages
 * go to dead letters. Stopping oneself (tr_stop(cx, tr_self(cx))) takes
 * effect when the handler returns. The stop travels on the system lane, so
 * a full mailbox does not delay it.
 * Errors: TR_EINVAL (NULL from), TR_EDEAD (already dead or unknown),
 * TR_ENOMEM, TR_EFULL (2^20 - 1 system messages already wait for it).
 * Thread-safe: yes. */
#define tr_stop(from, ...) TR__FROM(from, tr_stop)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_stop_cx(tr_cx *cx, tr_ref who);
TR_EXTERN tr_status tr_stop_rt(tr_runtime *rt, tr_ref who);

/* Ends the calling actor when the handler returns: with TR_EXIT_NORMAL when
 * code is 0, otherwise TR_EXIT_FAILED with `code` and `text` (may be NULL;
 * truncated to TR_REASON_TEXT - 1 bytes). Returns TR_OK.
 * Errors: TR_EINVAL (cx NULL). Thread-safe: only from a handler. */
TR_EXTERN tr_status tr_exit(tr_cx *cx, int32_t code, const char *text);

/* ---- Links, monitors, exit signals ------------------------------------ */

/* Links the calling actor and `other`, both ways. When either ends with
 * an abnormal reason (anything but TR_EXIT_NORMAL), the other gets an exit
 * signal with that reason: it ends with the same reason, unless it traps
 * exits (then the signal is a TR_MSG_EXIT message). A normal end signals
 * only actors that trap exits. Linking twice is one link. If `other` ends
 * before it sees the link, the caller gets a TR_EXIT_NOPROC signal.
 * Errors: TR_EINVAL (cx NULL, other is the caller or TR_NOREF), TR_EDEAD
 * (other is dead or unknown: no link), TR_ENOMEM. Thread-safe: only from a
 * handler, with its own cx. */
TR_EXTERN tr_status tr_link(tr_cx *cx, tr_ref other);

/* Removes the link with `other`, both ways (no signal passes it after).
 * Unlinking what is not linked is TR_OK.
 * Errors: TR_EINVAL. Thread-safe: only from a handler. */
TR_EXTERN tr_status tr_unlink(tr_cx *cx, tr_ref other);

/* Whether exit signals from links become TR_MSG_EXIT messages (true)
 * instead of ending the actor (false, the default). tr_kill() is never
 * trapped. Errors: TR_EINVAL. Thread-safe: only from a handler. */
TR_EXTERN tr_status tr_trap_exit(tr_cx *cx, bool on);

/* Monitors `who`: when it ends, the caller gets one TR_MSG_DOWN message
 * (payload tr_down) with the reason; if `who` is already gone, at once,
 * with TR_EXIT_NOPROC. The DOWN message is admitted past the caller's
 * mailbox capacity (there is one per monitor). *out names the monitor.
 * Errors: TR_EINVAL (NULL cx or out), TR_ENOMEM. Thread-safe: only from a
 * handler. */
TR_EXTERN tr_status tr_monitor_actor(tr_cx *cx, tr_ref who, tr_monitor *out);

/* Ends monitor `m`: no TR_MSG_DOWN for it is handled after this call,
 * even one already queued. Errors: TR_EINVAL (cx NULL), TR_ENOENT (no such
 * monitor: it fired, was removed, or is another actor's). Thread-safe: only
 * from a handler. */
TR_EXTERN tr_status tr_demonitor(tr_cx *cx, tr_monitor m);

/* Ends actor `who` with reason TR_EXIT_KILLED as soon as it gets the
 * signal: after the handler it is in, without trapping, without draining
 * (its queued messages go to dead letters). Its links get an exit signal
 * with reason TR_EXIT_KILLED (which they may trap).
 * Errors: TR_EINVAL (NULL from), TR_EDEAD, TR_ENOMEM. Thread-safe: yes. */
#define tr_kill(from, ...) TR__FROM(from, tr_kill)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_kill_cx(tr_cx *cx, tr_ref who);
TR_EXTERN tr_status tr_kill_rt(tr_runtime *rt, tr_ref who);

/* ---- Inside a handler -------------------------------------------------- */

/* The running actor's own ref. */
TR_EXTERN tr_ref tr_self(const tr_cx *cx);
/* The sender of the message being handled; TR_NOREF for a message from a
 * thread outside the runtime (or from a timer set outside it). */
TR_EXTERN tr_ref tr_sender(const tr_cx *cx);
/* The type and payload size of the message being handled. */
TR_EXTERN uint32_t tr_msg_type(const tr_cx *cx);
TR_EXTERN size_t tr_msg_size(const tr_cx *cx);
/* The runtime the actor runs in. */
TR_EXTERN tr_runtime *tr_cx_runtime(const tr_cx *cx);

/* ---- Timers ------------------------------------------------------------ */

/* A timer's name, passed by value. Fields are private. */
typedef struct tr_timer {
    uint64_t id_;
} tr_timer;

/* tr_send_after(from, to, type, data, len, delay_ms, out) sends a copy of
 * the payload to `to` after `delay_ms` milliseconds;
 * tr_send_every(from, to, type, data, len, period_ms, out) sends one every
 * `period_ms` milliseconds (> 0) until canceled. The sender is the calling
 * actor (TR_NOREF from an outside thread). A timer message never blocks
 * the timer: one that finds a full mailbox follows its policy, except that
 * backpressure and reject, having no sender to hold or refuse, dead-letter
 * it with TR_EFULL; one that cannot be allocated is a dead letter with
 * TR_ENOMEM. An interval to a dead actor cancels itself. `out` may be NULL.
 * Errors: TR_EINVAL, TR_EMSGSIZE, TR_ENOMEM, TR_ESHUTDOWN. Thread-safe: yes. No
 * thread per timer: one timer thread serves them all. */
#define tr_send_after(from, ...)                                               \
    TR__FROM(from, tr_send_after)(from, __VA_ARGS__)
#define tr_send_every(from, ...)                                               \
    TR__FROM(from, tr_send_every)(from, __VA_ARGS__)
TR_EXTERN tr_status tr_send_after_cx(tr_cx *cx, tr_ref to, uint32_t type,
                                     const void *data, size_t len,
                                     uint32_t delay_ms, tr_timer *out);
TR_EXTERN tr_status tr_send_after_rt(tr_runtime *rt, tr_ref to, uint32_t type,
                                     const void *data, size_t len,
                                     uint32_t delay_ms, tr_timer *out);
TR_EXTERN tr_status tr_send_every_cx(tr_cx *cx, tr_ref to, uint32_t type,
                                     const void *data, size_t len,
                                     uint32_t period_ms, tr_timer *out);
TR_EXTERN tr_status tr_send_every_rt(tr_runtime *rt, tr_ref to, uint32_t type,
                                     const void *data, size_t len,
                                     uint32_t period_ms, tr_timer *out);

/* Cancels a timer. Safe for a timer that fired, was canceled or never
 * existed: those give TR_ENOENT and change nothing. A send_after canceled
 * before it fires never sends.
 * Errors: TR_EINVAL (rt NULL), TR_ENOENT. Thread-safe: yes. */
TR_EXTERN tr_status tr_timer_cancel(tr_runtime *rt, tr_timer t);

/* ---- Internals of the macros above ------------------------------------- */

/* The await macros' calls: each returns TR_PENDING when the handler must
 * return to suspend (the macro does), else the await's result at once. */
#define TR__AWAIT(cx, call)                                                    \
    do {                                                                       \
        if ((call) == TR_PENDING) {                                            \
            return TR_PENDING;                                                 \
        }                                                                      \
        TR__FALLTHROUGH;                                                       \
    case __LINE__:;                                                            \
    } while (0)
#if defined(__GNUC__) && __GNUC__ >= 7 || defined(__clang__)
#define TR__FALLTHROUGH __attribute__((fallthrough))
#else
#define TR__FALLTHROUGH ((void)0)
#endif
TR_EXTERN uint32_t tr_async_point(const tr_cx *cx);
TR_EXTERN tr_status tr_await_ask(tr_cx *cx, uint32_t point, tr_ref to,
                                 uint32_t type, const void *data, size_t len,
                                 void *reply, size_t reply_len,
                                 uint32_t timeout_ms);
TR_EXTERN tr_status tr_await_sleep(tr_cx *cx, uint32_t point, uint32_t ms);
TR_EXTERN tr_status tr_await_send(tr_cx *cx, uint32_t point, tr_ref to,
                                  uint32_t type, const void *data, size_t len,
                                  uint32_t timeout_ms);

/* Picks the _cx or _rt function by the type of `from`. */
#define TR__FROM(from, fn)                                                     \
    _Generic((from), tr_cx * : fn##_cx, tr_runtime * : fn##_rt)

/* sizeof(Msg), with 0 for void, without applying sizeof to void. */
#define TR__SIZE_OF(Msg)       TR__IF(TR__IS_VOID(Msg))(0, sizeof(Msg))
#define TR__IS_VOID(Msg)       TR__SECOND(TR__CAT(TR__PROBE_, Msg), 0, ~)
#define TR__PROBE_void         ~, 1
#define TR__SECOND(...)        TR__SECOND_(__VA_ARGS__)
#define TR__SECOND_(a, b, ...) b
#define TR__CAT(a, b)          TR__CAT_(a, b)
#define TR__CAT_(a, b)         a##b
#define TR__IF(c)              TR__CAT(TR__IF_, c)
#define TR__IF_1(t, f)         t
#define TR__IF_0(t, f)         f

/* A call expression in sizeof: never evaluated, but the compiler checks that
 * `fn` accepts (tr_cx *, <any state pointer>, const Msg *). */
#define TR__CHECK(fn, Msg) (fn)((tr_cx *)0, 0, (const Msg *)0)

#endif
