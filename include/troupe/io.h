/* I/O: an actor watches a file descriptor (a socket, a pipe, an eventfd,
 * a ZeroMQ socket's ZMQ_FD) and gets its readiness as messages.
 *
 * No thread per descriptor: one reactor thread per runtime, started by the
 * first tr_watch(), waits on every watched descriptor with epoll and turns
 * readiness into a message of the type the actor chose, whose payload is a
 * tr_io_event. The message wakes the actor like any other (and a parked
 * worker with it).
 *
 * At most one readiness message per watch is in the actor's mailbox at a
 * time, so a busy descriptor cannot flood it; readiness that arrives
 * meanwhile is merged, never lost. That message is admitted even when the
 * mailbox's user lane is full (it is bounded by the number of watches).
 *
 * Two modes:
 * - Level (the default): a message says the descriptor is ready now. Once
 *   the handler returns, the watch is re-armed by itself: if the
 *   descriptor is still ready (the handler read only part of the data),
 *   another message follows. The handler may read as much or as little as
 *   it likes.
 * - Edge (TR_WATCH_EDGE): a message says the descriptor became ready since
 *   the last one. No more come until it becomes ready again, so the actor
 *   must consume until EAGAIN (or, for ZeroMQ, until ZMQ_EVENTS no longer
 *   shows ZMQ_POLLIN) each time, and once right after watching. Readiness
 *   that arrives while a message is queued or being handled is delivered in
 *   one more message after the handler returns. Cheaper (no system call to
 *   re-arm), and the only correct mode for a ZeroMQ socket's ZMQ_FD, which
 *   signals only changes.
 *
 * The descriptor stays the caller's: troupe never reads, writes or closes
 * it. Unwatch it before closing it. An actor's watches end with it. */
#ifndef TROUPE_IO_H
#define TROUPE_IO_H

#include <stdint.h>

#include "troupe/actor.h"
#include "troupe/status.h"

/* A watch's name, passed by value. Fields are private. */
typedef struct tr_watch {
    uint64_t id_;
} tr_watch;

/* No watch: a value no watch ever has. */
#define TR_NOWATCH ((tr_watch){0})

/* True when a and b name the same watch. Thread-safe: yes. */
static inline int
tr_watch_eq(tr_watch a, tr_watch b)
{
    return a.id_ == b.id_;
}

/* Readiness bits: what a watch asks for (READ, WRITE, RDHUP) and what a
 * tr_io_event reports (any of them). HUP and ERROR are always reported. */
#define TR_IO_READ  0x01u /* data to read, or a connection to accept */
#define TR_IO_WRITE 0x02u /* room to write, or a connect finished */
#define TR_IO_RDHUP 0x04u /* the peer shut its writing half down */
#define TR_IO_HUP   0x08u /* hang-up: both directions are closed */
#define TR_IO_ERROR 0x10u /* an error is pending on the descriptor */

/* Watch flags. */
#define TR_WATCH_EDGE 0x01u /* edge mode; see the top of this header */

/* The payload of a readiness message. */
typedef struct tr_io_event {
    tr_watch watch;  /* the watch that fired */
    int fd;          /* its descriptor */
    uint32_t events; /* TR_IO_* bits that are (or became) ready */
    int error;       /* with TR_IO_ERROR on a socket: its SO_ERROR (an
                        errno value, now cleared on the socket); else 0 */
} tr_io_event;

/* Makes the calling actor watch `fd` for `events` (TR_IO_READ, TR_IO_WRITE
 * and/or TR_IO_RDHUP; HUP and ERROR come anyway) and writes the watch's
 * name to *out. From then on readiness arrives as messages of `type` with a
 * tr_io_event payload (declare the row as TR_ON(type, tr_io_event, fn)).
 * `flags` is 0 or TR_WATCH_EDGE. The first call in a runtime starts its
 * reactor thread.
 * Ownership: fd stays the caller's; it must stay open until tr_unwatch()
 * (or the actor's end). A descriptor closed while watched: the kernel
 * forgets it if no other descriptor shares its open file (no dup(), no
 * fork), so no message comes; a new descriptor that reuses its number may
 * be watched again, and the stale watch then goes quiet. With a duplicate
 * alive, the kernel keeps reporting the open file and nothing can remove
 * that (an epoll limitation); troupe ignores it, at a small cost per event.
 * Errors (nothing watched, *out unchanged): TR_EINVAL (cx or out NULL, fd
 * negative, closed or of a kind epoll cannot watch (a regular file), no or
 * unknown event bits, unknown flags, a reserved type, an actor whose
 * mailbox drops the oldest message: it could drop a readiness message),
 * TR_ESTATE (the actor is ending, or this runtime already watches the
 * descriptor), TR_ENOMEM (also: the kernel's limit of watches per user),
 * TR_ELIMIT (4,194,304 watches alive in the runtime), TR_EFAILED (the
 * reactor could not be started).
 * Thread-safe: only from a handler, with its own cx. */
TR_EXTERN tr_status tr_watch_fd(tr_cx *cx, int fd, uint32_t events,
                                uint32_t type, uint32_t flags, tr_watch *out);

/* Changes what watch `w` of the calling actor waits for (as tr_watch_fd's
 * `events`). A message already queued keeps the bits it has.
 * Errors: TR_EINVAL (cx NULL, bad events, a watch of another actor),
 * TR_ENOENT (no such watch: removed, ended with its actor, or never made).
 * Thread-safe: only from a handler, with its own cx. */
TR_EXTERN tr_status tr_watch_modify(tr_cx *cx, tr_watch w, uint32_t events);

/* Removes watch `w` of the calling actor. When it returns, the reactor no
 * longer looks at the descriptor, and the caller may close it. A readiness
 * message already queued is still delivered (messages are not taken back):
 * compare its `watch` with the watches you hold.
 * Errors: TR_EINVAL (cx NULL, a watch of another actor), TR_ENOENT (no such
 * watch: removed already, ended with its actor, or never made).
 * Thread-safe: only from a handler, with its own cx (the terminate hook
 * included). */
TR_EXTERN tr_status tr_unwatch(tr_cx *cx, tr_watch w);

#endif
