/* Timers: one thread per runtime serves every timer from a min-heap, so a
 * million timers cost a million heap entries, not threads.
 *
 * A timer is named by an id (slot index and generation), so cancelling one
 * that fired, was canceled or never existed is detected, not a crash.
 * Everything here happens under one mutex; `fire` runs with it held, so it
 * must not call back into this module. */
#ifndef TR_TIMER_H
#define TR_TIMER_H

#include "common/common.h"

typedef struct tr__timers tr__timers;

/* Fires a timer's payload. Returning false cancels an interval. */
typedef bool (*tr__timer_fire_fn)(void *ctx, void *ud);
/* Releases a timer's payload when it is done (fired once, canceled, or the
 * timers are stopped). */
typedef void (*tr__timer_free_fn)(void *ctx, void *ud);

tr_status tr__timers_new(tr__timers **out, tr__timer_fire_fn fire,
                         tr__timer_free_fn release, void *ctx);

/* Arms a timer firing after delay_ms, then every period_ms if nonzero. On
 * TR_OK the timers own `ud`. Errors: TR_ENOMEM, TR_ESHUTDOWN (stopped). */
tr_status tr__timers_add(tr__timers *t, uint32_t delay_ms, uint32_t period_ms,
                         void *ud, uint64_t *id);

/* Errors: TR_ENOENT (fired, canceled or unknown). */
tr_status tr__timers_cancel(tr__timers *t, uint64_t id);

/* Cancels the timers whose payload `pred` accepts (releasing them); the
 * others go on. pred runs under the timers' lock: it must not call back. */
void tr__timers_cancel_if(tr__timers *t, bool (*pred)(void *ud));

/* Cancels every timer (releasing payloads) and joins the thread. Idempotent. */
void tr__timers_stop(tr__timers *t);
void tr__timers_free(tr__timers *t);

/* Timers fired so far. */
uint64_t tr__timers_fired(tr__timers *t);

#endif
