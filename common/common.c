/* Allocation, futexes and the status table. */
#include "common/common.h"

#include "troupe/runtime.h"

#include <linux/futex.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The installed allocator. Read on every allocation, written only by
 * tr_set_allocator() while no runtime exists (it refuses otherwise), so the
 * relaxed atomics below order nothing and only keep the accesses tear-free. */
static _Atomic(void *(*)(size_t)) alloc_fn = malloc;
static _Atomic(void *(*)(void *, size_t)) realloc_fn = realloc;
static _Atomic(void (*)(void *)) free_fn = free;
static _Atomic uint32_t runtimes; /* runtimes alive; see tr__runtimes_add */

void
tr__runtimes_add(int delta)
{
    /* relaxed: a count compared with zero by tr_set_allocator. */
    atomic_fetch_add_explicit(&runtimes, (uint32_t)delta, memory_order_relaxed);
}

tr_status
tr_set_allocator(const tr_allocator *a)
{
    if (a != NULL &&
        (a->malloc_fn == NULL || a->realloc_fn == NULL || a->free_fn == NULL)) {
        return TR_EINVAL;
    }
    if (atomic_load_explicit(&runtimes, memory_order_relaxed) != 0) {
        return TR_ESTATE;
    }
    atomic_store_explicit(&alloc_fn, a ? a->malloc_fn : malloc,
                          memory_order_relaxed);
    atomic_store_explicit(&realloc_fn, a ? a->realloc_fn : realloc,
                          memory_order_relaxed);
    atomic_store_explicit(&free_fn, a ? a->free_fn : free,
                          memory_order_relaxed);
    return TR_OK;
}

void *
tr__alloc(size_t n)
{
    return atomic_load_explicit(&alloc_fn, memory_order_relaxed)(n ? n : 1);
}

void *
tr__calloc(size_t n, size_t size)
{
    void *p;

    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    p = tr__alloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

void *
tr__realloc(void *p, size_t n)
{
    return atomic_load_explicit(&realloc_fn, memory_order_relaxed)(p,
                                                                   n ? n : 1);
}

void
tr__free(void *p)
{
    if (p != NULL) {
        atomic_load_explicit(&free_fn, memory_order_relaxed)(p);
    }
}

/* The block from the allocator sits below the aligned one; its address is
 * kept in the word just before the aligned block. */
void *
tr__alloc_aligned(size_t align, size_t n)
{
    char *raw, *p;

    if (n > SIZE_MAX - align - sizeof(void *)) {
        return NULL;
    }
    raw = tr__alloc(n + align + sizeof(void *));
    if (raw == NULL) {
        return NULL;
    }
    p = (char *)(((uintptr_t)raw + sizeof(void *) + align - 1) &
                 ~(uintptr_t)(align - 1));
    memcpy(p - sizeof(void *), &raw, sizeof raw);
    return p;
}

void *
tr__calloc_aligned(size_t align, size_t n)
{
    void *p = tr__alloc_aligned(align, n);

    return p != NULL ? memset(p, 0, n) : NULL;
}

void
tr__free_aligned(void *p)
{
    void *raw;

    if (p == NULL) {
        return;
    }
    memcpy(&raw, (char *)p - sizeof(void *), sizeof raw);
    tr__free(raw);
}

#if defined(__x86_64__)
/* True when the TSC can stand in for the clock between anchors: invariant
 * (CPUID 0x80000007, EDX bit 8: constant rate, runs when idle) and the
 * kernel's own clock source, so the kernel found it in step across CPUs. */
static bool
tsc_usable(void)
{
    /* relaxed: every thread computes the same answer; a race only repeats
     * the check. 0 unknown, 1 no, 2 yes. */
    static _Atomic int usable;
    int u = atomic_load_explicit(&usable, memory_order_relaxed);

    if (u == 0) {
        unsigned a, b, c, d;
        char src[16] = "";
        FILE *f = fopen(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            "r");

        if (f != NULL) {
            if (fgets(src, sizeof src, f) == NULL) {
                src[0] = '\0';
            }
            fclose(f);
        }
        u = __get_cpuid(0x80000007u, &a, &b, &c, &d) && (d & (1u << 8)) &&
                    strcmp(src, "tsc\n") == 0
                ? 2
                : 1;
        atomic_store_explicit(&usable, u, memory_order_relaxed);
    }
    return u == 2;
}
#endif

uint64_t
tr__now_bound_slow(tr__clock_anchor *a)
{
#if defined(__x86_64__)
    if (tsc_usable()) {
        uint64_t tsc, ns;
        int tries = 0;

        /* The counter first: the precise time read after it is not below
         * the time the counter was read at (the clock's own TSC read is
         * ordered after ours). A pause between the two (preemption) would
         * make the anchor late, and with it every bound until the next:
         * such a pair is read again, a few times at most. */
        do {
            tsc = __builtin_ia32_rdtsc();
            ns = tr__now_ns();
        } while (__builtin_ia32_rdtsc() - tsc > TR__ANCHOR_CYCLES / 8 &&
                 ++tries < 4);
        a->tsc = tsc;
        a->ns = ns;
        return ns + TR__ANCHOR_SLACK_NS;
    }
#endif
    (void)a;
    return tr__now_ns();
}

bool
tr__futex_wait(_Atomic uint32_t *addr, uint32_t expect, uint64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;

    if (timeout_ns != 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    /* The kernel compares *addr with expect atomically with going to sleep,
     * so a wake that changed *addr before this call is never lost. */
    if (syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expect, tsp,
                NULL, 0) == -1 &&
        errno == ETIMEDOUT) {
        return false;
    }
    return true;
}

void
tr__sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};

    nanosleep(&ts, NULL);
}

void
tr__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

const char *
tr_strerror(tr_status st)
{
    switch (st) {
#define TR__STRERROR(name, value, msg)                                         \
    case TR_##name:                                                            \
        return msg;
        TR_STATUS_MAP(TR__STRERROR)
#undef TR__STRERROR
    }
    return "unknown status";
}

const char *
tr_status_name(tr_status st)
{
    switch (st) {
#define TR__NAME(name, value, msg)                                             \
    case TR_##name:                                                            \
        return #name;
        TR_STATUS_MAP(TR__NAME)
#undef TR__NAME
    }
    return "UNKNOWN";
}

bool
tr__grow(void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
    uint32_t c;
    void *p;

    if (n < *cap) {
        return true;
    }
    c = *cap ? *cap * 2 : 4;
    p = tr__realloc(*arr, (size_t)c * elem);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = c;
    return true;
}
