/* troupe-bench: runs one benchmark and prints one JSON line.
 *
 *   troupe-bench <bench> [--n N] [--workers W]
 *   troupe-bench --list
 *
 * The line holds runtime, bench, n, ops, seconds (the timed region, measured
 * here with CLOCK_MONOTONIC), per_op_ns, ops_per_s, rss_kb (VmHWM at the
 * end), workers, and whatever the scenario adds. Exit status 0 on success;
 * 1 with a `FAIL:` line on stderr when the run's own verification fails;
 * 2 for a usage error. */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const bench_def *const benches[] = {
    &bench_pingpong,  &bench_ring,        &bench_counting, &bench_fanin,
    &bench_spawn,     &bench_idle_memory, &bench_big,      &bench_skynet,
    &bench_chameneos, &bench_wake,        &bench_ask,      &bench_echo,
    &bench_children,
};
#define NBENCHES (sizeof benches / sizeof benches[0])

/* The scenario being run: one per process. */
static const char *current_name = "troupe-bench";

/* ---- Time, failures, extras -------------------------------------------- */

uint64_t
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bench_clock_start(bench_result *res)
{
    res->t0_ns = bench_now_ns();
}

void
bench_clock_stop(bench_result *res)
{
    res->t1_ns = bench_now_ns();
}

void
bench_extra(bench_result *res, const char *key, double value, bool integer)
{
    if (res->nextra < BENCH_MAX_EXTRA) {
        res->extra[res->nextra].key = key;
        res->extra[res->nextra].value = value;
        res->extra[res->nextra].integer = integer;
        res->nextra++;
    }
}

int
bench_fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "FAIL: %s: ", current_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- /proc/self/status ------------------------------------------------- */

static uint64_t
status_kb(const char *field)
{
    char line[256];
    size_t flen = strlen(field);
    uint64_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtoull(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

uint64_t
bench_rss_kb(void)
{
    return status_kb("VmRSS");
}

uint64_t
bench_hwm_kb(void)
{
    return status_kb("VmHWM");
}

/* ---- Latch and abort --------------------------------------------------- */

/* The latch main waits on now, and the first abort reason. Set by main
 * before the actors that may abort exist; read by any thread. */
static _Atomic(bench_latch *) current_latch;
static pthread_mutex_t abort_lock = PTHREAD_MUTEX_INITIALIZER;
static char abort_text[256]; /* under abort_lock */
static bool aborted;         /* under abort_lock */

void
bench_latch_init(bench_latch *l, uint64_t count)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    l->count = count;
    /* release: an aborting thread that loads it sees it initialized. */
    atomic_store_explicit(&current_latch, l, memory_order_release);
}

void
bench_latch_fini(bench_latch *l)
{
    bench_latch *expect = l;

    /* relaxed: only main stores it, and no actor of this latch runs now. */
    atomic_compare_exchange_strong_explicit(&current_latch, &expect, NULL,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
}

void
bench_latch_arrive(bench_latch *l)
{
    pthread_mutex_lock(&l->lock);
    if (l->count > 0 && --l->count == 0) {
        pthread_cond_signal(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
}

static bool
is_aborted(char *text, size_t len)
{
    bool a;

    pthread_mutex_lock(&abort_lock);
    a = aborted;
    if (a && text != NULL) {
        snprintf(text, len, "%s", abort_text);
    }
    pthread_mutex_unlock(&abort_lock);
    return a;
}

bool
bench_latch_wait(bench_latch *l)
{
    struct timespec ts;
    uint64_t deadline =
        bench_now_ns() + (uint64_t)BENCH_TIMEOUT_S * 1000000000u;
    char why[256];
    bool done;

    ts.tv_sec = (time_t)(deadline / 1000000000u);
    ts.tv_nsec = (long)(deadline % 1000000000u);
    pthread_mutex_lock(&l->lock);
    while (l->count > 0 && !is_aborted(NULL, 0)) {
        if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    done = l->count == 0;
    pthread_mutex_unlock(&l->lock);
    if (is_aborted(why, sizeof why)) {
        bench_fail("aborted: %s", why);
        return false;
    }
    if (!done) {
        bench_fail("no result after %d s (a hang, or lost messages)",
                   BENCH_TIMEOUT_S);
        return false;
    }
    return true;
}

void
bench_abort(const char *fmt, ...)
{
    bench_latch *l;
    va_list ap;

    pthread_mutex_lock(&abort_lock);
    if (!aborted) {
        aborted = true;
        va_start(ap, fmt);
        vsnprintf(abort_text, sizeof abort_text, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&abort_lock);
    /* acquire: pairs with bench_latch_init's release. */
    l = atomic_load_explicit(&current_latch, memory_order_acquire);
    if (l != NULL) {
        /* Taking the lock orders the wake after main's check of `aborted`
         * (which main makes under the same lock), so it is not lost. */
        pthread_mutex_lock(&l->lock);
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
}

/* ---- Runtime ----------------------------------------------------------- */

static void
on_dead_letter(void *arg, const tr_dead_letter *dl)
{
    (void)arg;
    bench_abort("a message of type %u was dead-lettered (%s)", dl->type,
                tr_status_name(dl->reason));
}

tr_status
bench_runtime_new(const bench_args *args, tr_runtime **out, bench_result *res)
{
    tr_config cfg = {0};
    tr_stats stats;
    tr_status st;

    cfg.workers = args->workers;
    cfg.dead_letter_fn = on_dead_letter;
    st = tr_runtime_new(out, &cfg);
    if (st != TR_OK) {
        return st;
    }
    st = tr_runtime_stats(*out, &stats);
    if (st == TR_OK) {
        res->workers = stats.workers;
    }
    return st;
}

int
bench_runtime_finish(tr_runtime **rtp)
{
    tr_stats stats;
    tr_status st = tr_runtime_stats(*rtp, &stats);
    int rc = 0;

    if (st != TR_OK) {
        rc = bench_fail("tr_runtime_stats: %s", tr_status_name(st));
    } else if (stats.dead_letters != 0) {
        rc = bench_fail("%" PRIu64 " dead letters during the run",
                        stats.dead_letters);
    }
    tr_runtime_destroy(rtp);
    return rc;
}

int
bench_kick(tr_runtime *rt, tr_ref who, uint32_t type, bench_latch *done,
           bench_result *res)
{
    bench_clock_start(res);
    BENCH_CHECK(tr_send(rt, who, type, NULL, 0));
    if (!bench_latch_wait(done)) {
        return 1;
    }
    bench_clock_stop(res);
    return 0;
}

/* ---- Actor helpers ----------------------------------------------------- */

tr_status
bench_exit_after(tr_cx *cx, tr_status st)
{
    if (st == TR_OK) {
        return tr_exit(cx, 0, NULL);
    }
    if (st == TR_PENDING) {
        return bench_sent(tr_send(cx, tr_self(cx), BENCH_MSG_EXIT, NULL, 0));
    }
    return bench_sent(st);
}

tr_status
bench_on_exit(tr_cx *cx, void *self, const void *msg)
{
    (void)self;
    (void)msg;
    return tr_exit(cx, 0, NULL);
}

tr_status
bench_on_terminate(tr_cx *cx, void *self, const tr_reason *why)
{
    (void)cx;
    (void)self;
    if (why->kind != TR_EXIT_NORMAL && why->kind != TR_EXIT_SHUTDOWN) {
        bench_abort("an actor ended: kind %d, code %s, %s", (int)why->kind,
                    tr_status_name((tr_status)why->code), why->text);
    }
    return TR_OK;
}

/* ---- Command line ------------------------------------------------------ */

static void
usage(FILE *f)
{
    fprintf(f, "usage: troupe-bench <bench> [--n N] [--workers W]\n"
               "       troupe-bench --list\n");
}

static bool
parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0' || *s == '-') {
        return false;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static void
print_json(const bench_def *b, const bench_args *args, const bench_result *r)
{
    double secs = (double)(r->t1_ns - r->t0_ns) / 1e9;
    double ops = (double)r->ops;
    int i;

    printf("{\"runtime\":\"troupe\",\"bench\":\"%s\",\"n\":%" PRIu64
           ",\"ops\":%" PRIu64 ",\"seconds\":%.6f,\"per_op_ns\":%.2f"
           ",\"ops_per_s\":%.1f,\"rss_kb\":%" PRIu64 ",\"workers\":%u",
           b->name, args->n, r->ops, secs, r->ops ? secs * 1e9 / ops : 0.0,
           secs > 0 ? ops / secs : 0.0, bench_hwm_kb(), r->workers);
    for (i = 0; i < r->nextra; i++) {
        if (r->extra[i].integer) {
            printf(",\"%s\":%.0f", r->extra[i].key, r->extra[i].value);
        } else {
            printf(",\"%s\":%.2f", r->extra[i].key, r->extra[i].value);
        }
    }
    printf("}\n");
}

int
main(int argc, char **argv)
{
    const bench_def *b = NULL;
    bench_args args = {0};
    bench_result res = {0};
    bool have_n = false;
    uint64_t v;
    size_t k;
    int i;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--list") == 0) {
        for (k = 0; k < NBENCHES; k++) {
            printf("%s\n", benches[k]->name);
        }
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        printf("\nbenchmarks (default n):\n");
        for (k = 0; k < NBENCHES; k++) {
            printf("  %-12s %10" PRIu64 "  %s\n", benches[k]->name,
                   benches[k]->default_n, benches[k]->about);
        }
        return 0;
    }
    for (k = 0; k < NBENCHES; k++) {
        if (strcmp(argv[1], benches[k]->name) == 0) {
            b = benches[k];
        }
    }
    if (b == NULL) {
        fprintf(stderr, "troupe-bench: unknown benchmark '%s' (see --list)\n",
                argv[1]);
        return 2;
    }
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc &&
            parse_u64(argv[i + 1], &v) && v > 0) {
            args.n = v;
            have_n = true;
            i++;
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) && v <= 256) {
            args.workers = (uint32_t)v;
            i++;
        } else {
            fprintf(stderr, "troupe-bench: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!have_n) {
        args.n = b->default_n;
    }
    current_name = b->name;
    if (b->run(&args, &res) != 0) {
        return 1;
    }
    if (res.t1_ns < res.t0_ns || res.ops == 0) {
        return bench_fail("the scenario did not time its work");
    }
    print_json(b, &args, &res);
    return fflush(stdout) == 0 ? 0 : 1;
}
