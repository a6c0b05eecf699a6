/* An allocator for tests that fails on demand.
 *
 * fail_alloc_install() puts it in place with tr_set_allocator(). Failures
 * are armed per thread: fail_alloc_arm(n) makes the n-th allocation made by
 * the calling thread from then on fail (and every later one, until
 * disarmed), so a test can walk every allocation of one synchronous call
 * regardless of what the runtime's own threads allocate meanwhile. */
#ifndef TR_TEST_FAIL_ALLOC_H
#define TR_TEST_FAIL_ALLOC_H

#include <stddef.h>

void fail_alloc_install(void);
void fail_alloc_uninstall(void);
/* Fails this thread's n-th allocation from now (n >= 1) and all later. */
void fail_alloc_arm(size_t n);
void fail_alloc_disarm(void);
/* Allocations this thread made (or attempted) since the last arm. */
size_t fail_alloc_count(void);

#endif
