/* See fail_alloc.h. */
#include "fail_alloc.h"

#include <stdbool.h>
#include <stdlib.h>

#include <troupe/troupe.h>

static _Thread_local bool armed;
static _Thread_local size_t fail_at, seen;

static bool
should_fail(void)
{
    if (!armed) {
        return false;
    }
    return ++seen >= fail_at;
}

static void *
t_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *
t_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

static const tr_allocator failing = {t_malloc, t_realloc, free};

void
fail_alloc_install(void)
{
    if (tr_set_allocator(&failing) != TR_OK) {
        abort(); /* a runtime is alive: the test is wrong */
    }
}

void
fail_alloc_uninstall(void)
{
    if (tr_set_allocator(NULL) != TR_OK) {
        abort();
    }
}

void
fail_alloc_arm(size_t n)
{
    armed = true;
    fail_at = n;
    seen = 0;
}

void
fail_alloc_disarm(void)
{
    armed = false;
}

size_t
fail_alloc_count(void)
{
    return seen;
}
