/* The reactor: one thread that waits on an epoll set and hands readiness to
 * a callback. It knows nothing of actors: the layer above registers file
 * descriptors under 64-bit keys of its choosing and turns each readiness
 * into whatever it likes (the actor layer: a message, see actors/io.c).
 *
 * Concurrency: add/mod/del/wake from any thread (epoll_ctl is thread-safe,
 * and the kernel orders a registration change against a concurrent
 * epoll_wait). The callbacks run on the reactor thread only, one at a time,
 * with no lock held here; they may call add/mod/del/wake but must not call
 * tr__reactor_free. A registration removed with del can still have one
 * event in the batch the reactor thread is handling: the layer above must
 * make its keys safe to look up after removal (io.c keys carry a
 * generation and point into memory that is never freed before the
 * reactor).
 *
 * Key 0 is the reactor's own (its eventfd); callers use nonzero keys. */
#ifndef TR_REACTOR_H
#define TR_REACTOR_H

#include "common/common.h"

typedef struct tr__reactor tr__reactor;

/* Called on the reactor thread for each ready registration: `key` as
 * registered, `events` the epoll bits (EPOLLIN, EPOLLOUT, EPOLLHUP, ...). */
typedef void (*tr__reactor_fn)(void *ctx, uint64_t key, uint32_t events);
/* Called on the reactor thread after each batch of events and after each
 * wake-up; returns how long the next wait may block, in milliseconds (-1:
 * until an event or a wake-up). The layer above retries work it could not
 * finish here (a message it had no memory for). */
typedef int (*tr__reactor_idle_fn)(void *ctx);

/* Events handled per epoll_wait call: enough to amortize the system call
 * under load; more ready fds simply wait for the next call. */
#define TR__REACTOR_BATCH 256

/* Creates the epoll set and its eventfd and starts the thread.
 * Errors: TR_ENOMEM, TR_EFAILED (no epoll, eventfd or thread). */
tr_status tr__reactor_new(tr__reactor **out, tr__reactor_fn fn,
                          tr__reactor_idle_fn idle, void *ctx);

/* epoll_ctl ADD / MOD / DEL of `fd`. Return 0 or the errno epoll_ctl set
 * (EBADF, EPERM for fds epoll cannot watch, EEXIST, ENOENT, ENOSPC). */
int tr__reactor_add(tr__reactor *r, int fd, uint32_t events, uint64_t key);
int tr__reactor_mod(tr__reactor *r, int fd, uint32_t events, uint64_t key);
int tr__reactor_del(tr__reactor *r, int fd);

/* Makes the reactor thread return from its wait and call `idle` soon. */
void tr__reactor_wake(tr__reactor *r);

/* Stops and joins the thread, closes the epoll set and the eventfd, frees.
 * Accepts NULL. Not from the reactor thread. */
void tr__reactor_free(tr__reactor *r);

#endif
