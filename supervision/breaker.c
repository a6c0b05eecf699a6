/* Circuit breakers (include/troupe/pool.h).
 *
 * A breaker's whole state is one 64-bit word, changed by CAS, so any number
 * of actors and threads may share one without a lock:
 *
 *   bits 0..1   tr_circuit
 *   bits 2..15  closed: failures in a row; half-open: trials in flight
 *   bits 16..63 open: when it opened; half-open: when its first trial
 *               went; in ms since the breaker was made
 *
 * The word publishes no other memory (the spec fields are written before
 * the breaker is handed out and never change), so every access is relaxed:
 * atomicity and the per-location order are all the transitions need. */
#include "troupe/pool.h"

#include "common/common.h"

#define COUNT_SHIFT 2
#define COUNT_MASK  ((uint64_t)TR_BREAKER_MAX_COUNT << COUNT_SHIFT)
#define TIME_SHIFT  16

struct tr_breaker {
    _Atomic uint64_t word; /* any thread; CAS only (see above) */
    uint32_t failures;     /* immutable after tr_breaker_new */
    uint32_t reset_ms;
    uint32_t half_open_max;
    uint64_t base_ms; /* the clock at creation; times are relative to it */
};

static uint64_t
now_ms(const tr_breaker *b)
{
    return tr__now_ns() / 1000000u - b->base_ms;
}

static uint64_t
pack(tr_circuit c, uint64_t count, uint64_t t)
{
    return (uint64_t)c | count << COUNT_SHIFT | t << TIME_SHIFT;
}

static tr_circuit
circuit(uint64_t w)
{
    return (tr_circuit)(w & 3u);
}

static uint64_t
count(uint64_t w)
{
    return (w & COUNT_MASK) >> COUNT_SHIFT;
}

static uint64_t
since(uint64_t w)
{
    return w >> TIME_SHIFT;
}

/* Replaces *w by `to` if the word still is *w; else reloads *w. */
static bool
swap(tr_breaker *b, uint64_t *w, uint64_t to)
{
    /* relaxed: see the file comment; a failed CAS reloads *w. */
    return atomic_compare_exchange_weak_explicit(
        &b->word, w, to, memory_order_relaxed, memory_order_relaxed);
}

tr_status
tr_breaker_new(tr_breaker **out, const tr_breaker_spec *spec)
{
    tr_breaker_spec s = {0};
    tr_breaker *b;

    if (out == NULL) {
        return TR_EINVAL;
    }
    if (spec != NULL) {
        s = *spec;
    }
    if (s.failures > TR_BREAKER_MAX_COUNT ||
        s.half_open_max > TR_BREAKER_MAX_COUNT) {
        return TR_EINVAL;
    }
    b = tr__calloc(1, sizeof *b);
    if (b == NULL) {
        return TR_ENOMEM;
    }
    b->failures = s.failures != 0 ? s.failures : 5u;
    b->reset_ms = s.reset_ms != 0 ? s.reset_ms : 1000u;
    b->half_open_max = s.half_open_max != 0 ? s.half_open_max : 1u;
    b->base_ms = tr__now_ns() / 1000000u;
    atomic_init(&b->word, pack(TR_CIRCUIT_CLOSED, 0, 0));
    *out = b;
    return TR_OK;
}

void
tr_breaker_free(tr_breaker **bp)
{
    if (bp != NULL) {
        tr__free(*bp);
        *bp = NULL;
    }
}

tr_status
tr_breaker_allow(tr_breaker *b)
{
    uint64_t w, t;

    if (b == NULL) {
        return TR_EINVAL;
    }
    /* relaxed: see the file comment. */
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    for (;;) {
        switch (circuit(w)) {
        case TR_CIRCUIT_CLOSED:
            return TR_OK;
        case TR_CIRCUIT_OPEN:
            t = now_ms(b);
            if (t - since(w) < b->reset_ms) {
                return TR_EOPEN;
            }
            if (swap(b, &w, pack(TR_CIRCUIT_HALF_OPEN, 1, t))) {
                return TR_OK; /* the first trial */
            }
            break;
        default: /* half-open */
            if (count(w) < b->half_open_max) {
                if (swap(b, &w, w + ((uint64_t)1 << COUNT_SHIFT))) {
                    return TR_OK;
                }
                break;
            }
            t = now_ms(b);
            if (t - since(w) < b->reset_ms) {
                return TR_EOPEN;
            }
            /* The trials never reported: they failed. */
            if (swap(b, &w, pack(TR_CIRCUIT_OPEN, 0, t))) {
                return TR_EOPEN;
            }
            break;
        }
    }
}

tr_status
tr_breaker_record(tr_breaker *b, bool ok)
{
    uint64_t w, to;

    if (b == NULL) {
        return TR_EINVAL;
    }
    /* relaxed: see the file comment. */
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    do {
        switch (circuit(w)) {
        case TR_CIRCUIT_CLOSED:
            if (ok) {
                to = pack(TR_CIRCUIT_CLOSED, 0, 0);
            } else if (count(w) + 1 >= b->failures) {
                to = pack(TR_CIRCUIT_OPEN, 0, now_ms(b));
            } else {
                to = w + ((uint64_t)1 << COUNT_SHIFT);
            }
            break;
        case TR_CIRCUIT_OPEN:
            return TR_OK;
        default: /* half-open: the trial decides */
            to = ok ? pack(TR_CIRCUIT_CLOSED, 0, 0)
                    : pack(TR_CIRCUIT_OPEN, 0, now_ms(b));
            break;
        }
    } while (w != to && !swap(b, &w, to));
    return TR_OK;
}

tr_circuit
tr_breaker_state(const tr_breaker *b)
{
    if (b == NULL) {
        return TR_CIRCUIT_CLOSED;
    }
    /* relaxed: see the file comment. */
    return circuit(atomic_load_explicit(&b->word, memory_order_relaxed));
}
