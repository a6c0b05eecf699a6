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
} tr_spawn_opts;

/* Spawns an actor of behavior `b` (opts NULL: defaults) and writes its ref
 * to *out. The actor runs its init hook on a worker before any message.
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
 * Returns what tr_send() returns for that message.
 * Errors: TR_EINVAL (no sender to reply to, or the message being handled
 * is a hook's or of a reserved type: a reply, a dead letter), and those of
 * tr_send().
 * Thread-safe: only from a handler, with its own cx. */
TR_EXTERN tr_status tr_reply(tr_cx *cx, const void *data, size_t len);

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
