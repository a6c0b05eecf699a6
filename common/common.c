/* Allocation, futexes and the status table. */
#include "common/common.h"

#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void *
tr__alloc(size_t n)
{
    return malloc(n);
}

void *
tr__calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

void *
tr__realloc(void *p, size_t n)
{
    return realloc(p, n);
}

void *
tr__calloc_aligned(size_t align, size_t n)
{
    size_t rounded = (n + align - 1) & ~(align - 1);
    void *p = aligned_alloc(align, rounded);

    if (p != NULL) {
        memset(p, 0, rounded);
    }
    return p;
}

void
tr__free(void *p)
{
    free(p);
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
tr__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL,
            0);
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
