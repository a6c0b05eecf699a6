/* Mailbox options: capacity and what happens when the user lane is full.
 *
 * Every actor has a bounded mailbox. Its user lane never holds more than
 * `capacity` messages. Its system lane (stop, exit signals, wake-ups) is
 * separate and never blocks (it is bounded only by a 2^20 - 1 count, beyond
 * which tr_stop reports TR_EFULL). */
#ifndef TROUPE_MAILBOX_H
#define TROUPE_MAILBOX_H

#include <stdint.h>

/* What a sender sees when the receiver's user lane is full. */
typedef enum tr_overflow {
    /* Default. From a handler: the message is held in the sender's outbox
     * (send order kept), the send returns TR_PENDING, and the sender is muted
     * (runs no further user messages) until its held sends are delivered.
     * From a thread outside the runtime: the call blocks until there is room
     * or the runtime's send timeout passes (TR_ETIMEDOUT, nothing sent). */
    TR_BACKPRESSURE = 0,
    /* The send fails with TR_EFULL; nothing is sent, the sender decides. */
    TR_REJECT,
    /* The new message is dropped, counted and dead-lettered (TR_DROPPED). */
    TR_DROP_NEWEST,
    /* The oldest waiting message is dropped, counted and dead-lettered, and
     * the new one is queued (TR_OK). When every counted message is already
     * being handled, the new one is dropped instead (TR_DROPPED). */
    TR_DROP_OLDEST,
    /* The message is dead-lettered (TR_DROPPED) and the receiver fails with
     * reason TR_EXIT_OVERLOAD. */
    TR_FAIL,
} tr_overflow;

/* A mailbox's settings, given to a spawn (tr_spawn_opts.mailbox). Both
 * fields are used as given: capacity 0 is invalid, and overflow 0 is
 * TR_BACKPRESSURE. The runtime copies the struct during the call. */
typedef struct tr_mailbox_opts {
    uint32_t capacity;    /* 1..TR_MAILBOX_MAX_CAPACITY */
    tr_overflow overflow; /* what a sender sees when the user lane is full */
} tr_mailbox_opts;

/* The largest mailbox capacity. */
#define TR_MAILBOX_MAX_CAPACITY ((1u << 24) - 1)

/* The default capacity when neither the spawn nor the runtime sets one. */
#define TR_MAILBOX_DEFAULT_CAPACITY 1024u

#endif
