/* Status codes shared by every troupe call.
 *
 * Zero is success. Negative values are failures: -errno where POSIX has the
 * meaning, troupe's own from -4000 down. Positive values are successes that
 * carry news: the runtime took the message but did something other than
 * deliver it at once. So `if (st < 0)` tests for failure. */
#ifndef TROUPE_STATUS_H
#define TROUPE_STATUS_H

#include <errno.h>

#if defined(TR_BUILDING) && defined(__GNUC__)
#define TR_EXTERN __attribute__((visibility("default")))
#else
#define TR_EXTERN /* nothing */
#endif

#if defined(__GNUC__)
#define TR_NODISCARD __attribute__((warn_unused_result))
#else
#define TR_NODISCARD
#endif

/* XX(name, value, message) */
#define TR_STATUS_MAP(XX)                                                      \
    XX(OK, 0, "success")                                                       \
    XX(PENDING, 1,                                                             \
       "accepted and held by the sender until the receiver has "               \
       "room (backpressure)")                                                  \
    XX(DROPPED, 2,                                                             \
       "accepted, then dropped by the receiver's overflow "                    \
       "policy and sent to dead letters")                                      \
    XX(EINVAL, -EINVAL, "invalid argument")                                    \
    XX(ENOMEM, -ENOMEM, "out of memory")                                       \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                     \
    XX(ECANCELED, -ECANCELED, "canceled")                                      \
    XX(EMSGSIZE, -EMSGSIZE, "payload larger than the runtime's limit")         \
    XX(ENOENT, -ENOENT,                                                        \
       "no such timer or watch (already fired, canceled, removed or "          \
       "unknown)")                                                             \
    XX(EDEAD, -4000, "the actor is dead or unreachable")                       \
    XX(EFULL, -4001, "the receiver's mailbox is full")                         \
    XX(ESHUTDOWN, -4002, "the runtime is shutting down")                       \
    XX(EBADMSG, -4003, "payload size does not match the handler's type")       \
    XX(EUNHANDLED, -4004, "the actor has no handler for this message type")    \
    XX(ELIMIT, -4005, "the runtime's actor limit is reached")                  \
    XX(ESTATE, -4006, "the call is not valid in this state")                   \
    XX(EFAILED, -4007, "the actor failed")                                     \
    XX(ENOREPLY, -4008,                                                        \
       "the actor finished handling the request without replying")             \
    XX(ECYCLE, -4009,                                                          \
       "the ask would close a cycle of actors awaiting each "                  \
       "other")                                                                \
    XX(EOPEN, -4010, "the circuit breaker is open")                            \
    XX(EPOISON, -4011,                                                         \
       "the message was quarantined: its handler failed on it every time")

typedef enum tr_status {
#define TR__STATUS_ENUM(name, value, msg) TR_##name = (value),
    TR_STATUS_MAP(TR__STATUS_ENUM)
#undef TR__STATUS_ENUM
} tr_status;

/* A short English sentence for `st`; "unknown status" for values outside
 * the table. The string is static. Thread-safe: yes. */
TR_EXTERN const char *tr_strerror(tr_status st);

/* The code's name without its prefix ("EDEAD", "OK"); "UNKNOWN" for values
 * outside the table. The string is static. Thread-safe: yes. */
TR_EXTERN const char *tr_status_name(tr_status st);

#endif
