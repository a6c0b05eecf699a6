/* Refs, message types, exit reasons and dead letters.
 *
 * A message has a type id, the sender's ref, a correlation id (for replies)
 * and a payload. Sending copies the payload; tr_send_move() hands a heap
 * buffer over instead. Between one sender and one receiver, messages arrive
 * in send order. */
#ifndef TROUPE_MESSAGE_H
#define TROUPE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "troupe/status.h"

/* The name of an actor: its node, its slot in that node's actor table and
 * the slot's generation. Passed by value; the fields are private. A ref to
 * a dead actor stays dead: a reused slot has a new generation, so a stale
 * ref never reaches the slot's next actor. The all-zero ref (TR_NOREF) names
 * no actor. */
typedef struct tr_ref {
    uint64_t node_; /* private */
    uint32_t slot_; /* private */
    uint32_t gen_;  /* private; never 0 for a real actor */
} tr_ref;

#define TR_NOREF ((tr_ref){0, 0, 0})

/* True when `a` and `b` name the same actor. Thread-safe: yes. */
static inline bool
tr_ref_eq(tr_ref a, tr_ref b)
{
    return a.node_ == b.node_ && a.slot_ == b.slot_ && a.gen_ == b.gen_;
}

/* True for TR_NOREF. Thread-safe: yes. */
static inline bool
tr_ref_is_none(tr_ref r)
{
    return r.gen_ == 0;
}

/* Releases a buffer moved into a message with tr_send_move(). Called once,
 * on whichever thread drops the message's last use; must not block. */
typedef void (*tr_free_fn)(void *buf);

/* Message types are uint32_t. User types are any value below
 * TR_MSG_RESERVED; the range from it up belongs to the runtime. */
#define TR_MSG_RESERVED 0xFFFF0000u
/* A reply to an ask (tr_reply()). */
#define TR_MSG_REPLY (TR_MSG_RESERVED + 0u)
/* A dead letter forwarded to a subscribed actor; payload: tr_dead_letter with
 * `data` NULL (the original payload is not forwarded). */
#define TR_MSG_DEAD_LETTER (TR_MSG_RESERVED + 1u)
/* Pseudo-types for the hooks of an actor declaration (see actor.h). */
#define TR_MSG_INIT      (TR_MSG_RESERVED + 2u)
#define TR_MSG_TERMINATE (TR_MSG_RESERVED + 3u)
#define TR_MSG_UNHANDLED (TR_MSG_RESERVED + 4u)
/* A job queued for the blocking pool (thread.h). Seen only in dead letters:
 * a job the pool could not take, or one canceled by shutdown. */
#define TR_MSG_JOB (TR_MSG_RESERVED + 5u)
/* An exit signal turned into a message, for an actor that traps exits
 * (tr_trap_exit()); payload: tr_exit_msg. */
#define TR_MSG_EXIT (TR_MSG_RESERVED + 6u)
/* An actor this one monitors has ended (tr_monitor_actor()); payload:
 * tr_down. Exactly one per monitor, none after tr_demonitor(). */
#define TR_MSG_DOWN (TR_MSG_RESERVED + 7u)
/* A supervised child's news to its supervisor (the supervision module's;
 * user actors never see it). */
#define TR_MSG_CHILD (TR_MSG_RESERVED + 8u)

/* Why an actor ended. */
typedef enum tr_exit_kind {
    TR_EXIT_NORMAL = 0, /* it stopped itself or was stopped */
    TR_EXIT_SHUTDOWN,   /* its runtime shut down */
    TR_EXIT_KILLED,     /* killed (tr_kill()): no trapping, no draining */
    TR_EXIT_FAILED,     /* a handler failed, or it exited with a user code */
    TR_EXIT_OVERLOAD,   /* its mailbox overflowed under the fail policy */
    TR_EXIT_NOPROC,     /* (links and monitors) it did not exist, or was
                           already gone, when linked or monitored */
} tr_exit_kind;

#define TR_REASON_TEXT 48

/* An exit reason: a kind, a code (the failing tr_status for a handler that
 * returned one, or the user's code) and a short text (NUL-terminated). */
typedef struct tr_reason {
    tr_exit_kind kind;
    int32_t code;
    char text[TR_REASON_TEXT];
} tr_reason;

/* A monitor's name, passed by value. Fields are private. */
typedef struct tr_monitor {
    uint64_t id_;
} tr_monitor;

/* TR_MSG_EXIT's payload: the actor whose exit signal this is, and why. */
typedef struct tr_exit_msg {
    tr_ref from;
    tr_reason reason;
} tr_exit_msg;

/* TR_MSG_DOWN's payload: which monitor fired, for which actor, and why it
 * ended (TR_EXIT_NOPROC: it was gone when the monitor was set). */
typedef struct tr_down {
    tr_monitor monitor;
    tr_ref who;
    tr_reason reason;
} tr_down;

/* A message the runtime accepted and could not deliver, or dropped by a
 * policy. `reason` says why: TR_EDEAD (receiver dead or unreachable),
 * TR_DROPPED (drop-newest, drop-oldest or fail policy), TR_EUNHANDLED (no
 * handler), TR_EBADMSG (size mismatch), TR_ESHUTDOWN (runtime stopping),
 * TR_EFULL (a message with no one to refuse it to, such as a timer's, found
 * a full mailbox), TR_ETIMEDOUT (a reply that came after its asker gave
 * up), TR_ENOMEM (a timer's message could not be allocated), TR_EOPEN (a
 * pool's circuit breaker refused it: pool.h). `data` and `len`
 * are the payload, valid only during the callback. */
typedef struct tr_dead_letter {
    tr_ref from;
    tr_ref to;
    uint32_t type;
    tr_status reason;
    const void *data;
    size_t len;
} tr_dead_letter;

#endif
