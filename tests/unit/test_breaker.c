/* Tests of supervision/breaker.c: the state machine of a circuit breaker
 * (closed -> open after the threshold, fail fast while open, half-open
 * after the reset timeout with a bounded number of trials, success closes,
 * failure reopens, a trial without an outcome reopens), its arguments, and
 * several threads sharing one (for TSan). Waits are lower bounds on the
 * monotonic clock, never upper bounds, so the tests do not depend on speed. */
#include "tr_test.h"

#include <pthread.h>

/* Long enough that no test step outlasts it, even under TSan. */
#define LONG_RESET_MS  60000u
#define SHORT_RESET_MS 100u

static void
test_breaker_args(void **state)
{
    tr_breaker *b = NULL;

    (void)state;
    TR_ASSERT_STATUS(tr_breaker_new(NULL, NULL), TR_EINVAL);
    TR_ASSERT_STATUS(
        tr_breaker_new(&b, &(tr_breaker_spec){TR_BREAKER_MAX_COUNT + 1, 1, 1}),
        TR_EINVAL);
    TR_ASSERT_STATUS(
        tr_breaker_new(&b, &(tr_breaker_spec){1, 1, TR_BREAKER_MAX_COUNT + 1}),
        TR_EINVAL);
    assert_null(b);
    TR_ASSERT_STATUS(tr_breaker_allow(NULL), TR_EINVAL);
    TR_ASSERT_STATUS(tr_breaker_record(NULL, true), TR_EINVAL);
    assert_int_equal(tr_breaker_state(NULL), TR_CIRCUIT_CLOSED);
    tr_breaker_free(NULL);
    tr_breaker_free(&b);

    /* NULL spec: the defaults (5 failures). */
    TR_ASSERT_OK(tr_breaker_new(&b, NULL));
    for (int i = 0; i < 4; i++) {
        TR_ASSERT_OK(tr_breaker_record(b, false));
    }
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_CLOSED);
    TR_ASSERT_OK(tr_breaker_record(b, false));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    tr_breaker_free(&b);
    assert_null(b);
}

static void
test_breaker_opens_after_threshold(void **state)
{
    tr_breaker *b;

    (void)state;
    TR_ASSERT_OK(tr_breaker_new(&b, &(tr_breaker_spec){3, LONG_RESET_MS, 1}));
    /* Failures count only in a row: a success clears them. */
    TR_ASSERT_OK(tr_breaker_record(b, false));
    TR_ASSERT_OK(tr_breaker_record(b, false));
    TR_ASSERT_OK(tr_breaker_record(b, true));
    TR_ASSERT_OK(tr_breaker_record(b, false));
    TR_ASSERT_OK(tr_breaker_record(b, false));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_CLOSED);
    TR_ASSERT_OK(tr_breaker_allow(b));
    TR_ASSERT_OK(tr_breaker_record(b, false)); /* the third in a row */
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    /* Open: every call fails fast; outcomes of older calls are ignored. */
    for (int i = 0; i < 100; i++) {
        TR_ASSERT_STATUS(tr_breaker_allow(b), TR_EOPEN);
    }
    TR_ASSERT_OK(tr_breaker_record(b, true));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    TR_ASSERT_STATUS(tr_breaker_allow(b), TR_EOPEN);
    tr_breaker_free(&b);
}

/* Opens b (threshold 1) and waits out its reset timeout. */
static void
open_and_wait(tr_breaker *b)
{
    TR_ASSERT_OK(tr_breaker_record(b, false));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    tr_test_sleep_ms(SHORT_RESET_MS + 5);
}

static void
test_breaker_half_open(void **state)
{
    tr_breaker *b;

    (void)state;
    TR_ASSERT_OK(tr_breaker_new(&b, &(tr_breaker_spec){1, SHORT_RESET_MS, 2}));

    /* After the reset timeout: two trials, then fail fast again. */
    open_and_wait(b);
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    TR_ASSERT_OK(tr_breaker_allow(b));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_HALF_OPEN);
    TR_ASSERT_OK(tr_breaker_allow(b));
    TR_ASSERT_STATUS(tr_breaker_allow(b), TR_EOPEN);
    /* A trial's success closes it. */
    TR_ASSERT_OK(tr_breaker_record(b, true));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_CLOSED);
    TR_ASSERT_OK(tr_breaker_allow(b));

    /* A trial's failure reopens it, with a fresh timeout. */
    open_and_wait(b);
    TR_ASSERT_OK(tr_breaker_allow(b));
    TR_ASSERT_OK(tr_breaker_record(b, false));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    TR_ASSERT_STATUS(tr_breaker_allow(b), TR_EOPEN);

    /* Trials that never report count as failed once reset_ms pass. */
    tr_test_sleep_ms(SHORT_RESET_MS + 5);
    TR_ASSERT_OK(tr_breaker_allow(b));
    TR_ASSERT_OK(tr_breaker_allow(b));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_HALF_OPEN);
    tr_test_sleep_ms(SHORT_RESET_MS + 5);
    TR_ASSERT_STATUS(tr_breaker_allow(b), TR_EOPEN);
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_OPEN);
    tr_test_sleep_ms(SHORT_RESET_MS + 5);
    TR_ASSERT_OK(tr_breaker_allow(b));
    TR_ASSERT_OK(tr_breaker_record(b, true));
    assert_int_equal(tr_breaker_state(b), TR_CIRCUIT_CLOSED);
    tr_breaker_free(&b);
}

#define SHARERS 4
#define ROUNDS  20000

typedef struct sharer {
    tr_breaker *b;
    uint32_t seed;
    uint64_t allowed, refused;
} sharer;

static void *
sharer_main(void *arg)
{
    sharer *s = arg;

    for (int i = 0; i < ROUNDS; i++) {
        s->seed = s->seed * 1103515245u + 12345u;
        if (tr_breaker_allow(s->b) == TR_OK) {
            s->allowed++;
            (void)tr_breaker_record(s->b, (s->seed >> 16) % 4 != 0);
        } else {
            s->refused++;
        }
    }
    return NULL;
}

/* Several threads share one breaker: every call gets an answer, the state
 * stays one of the three, and TSan sees no race. */
static void
test_breaker_shared(void **state)
{
    tr_breaker *b;
    sharer s[SHARERS];
    pthread_t th[SHARERS];
    tr_circuit c;
    uint64_t allowed = 0;

    (void)state;
    TR_ASSERT_OK(tr_breaker_new(&b, &(tr_breaker_spec){3, 1, 2}));
    for (int i = 0; i < SHARERS; i++) {
        s[i] = (sharer){b, (uint32_t)i + 1, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, sharer_main, &s[i]), 0);
    }
    for (int i = 0; i < SHARERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(s[i].allowed + s[i].refused, ROUNDS);
        allowed += s[i].allowed;
    }
    assert_true(allowed > 0);
    c = tr_breaker_state(b);
    assert_true(c == TR_CIRCUIT_CLOSED || c == TR_CIRCUIT_OPEN ||
                c == TR_CIRCUIT_HALF_OPEN);
    tr_breaker_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_args),
        cmocka_unit_test(test_breaker_opens_after_threshold),
        cmocka_unit_test(test_breaker_half_open),
        cmocka_unit_test(test_breaker_shared),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
