/* The runtime: an M:N executor (a few worker threads run many actors),
 * timers, dead letters and stats.
 *
 * Thread-safety: troupe calls are not thread-safe unless their comment says
 * so. Most say so: any thread may send, spawn or stop. A runtime installs no
 * signal handlers and keeps no global state, so several runtimes can live in
 * one process. */
#ifndef TROUPE_RUNTIME_H
#define TROUPE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "troupe/mailbox.h"
#include "troupe/message.h"
#include "troupe/status.h"

typedef struct tr_runtime tr_runtime;

/* Called for every dead letter, on the thread that dropped the message
 * (a worker, a timer thread or a sender's thread). Must be thread-safe,
 * must not block and must not call back into the runtime. */
typedef void (*tr_dead_letter_fn)(void *arg, const tr_dead_letter *dl);

/* How much a log line matters. */
typedef enum tr_log_level {
    TR_LOG_ERROR = 0, /* something failed and was handled (a frame
                         rejected, a request left unanswered) */
    TR_LOG_WARN,      /* something is wrong with how the runtime is used (a
                         handler that blocks its worker) */
    TR_LOG_INFO,
} tr_log_level;

/* Receives the runtime's log lines (`text` has no newline and is valid only
 * during the call). Called on whichever thread noticed the event; must be
 * thread-safe, must not block and must not call back into the runtime. */
typedef void (*tr_log_fn)(void *arg, tr_log_level level, const char *text);

/* Runtime configuration. Zero in any field means its default, so
 * `tr_config cfg = {0}` (or a NULL config) gives a sensible runtime. */
typedef struct tr_config {
    /* Worker threads. Default: the online CPUs. At most 256. */
    uint32_t workers;
    /* Messages an actor may handle in one turn before it yields its worker,
     * so a flooded actor cannot starve the others. Default 64. While
     * senders wait for room in its mailbox (it holds them up), a turn may
     * go on to 16 times this. */
    uint32_t budget;
    /* Mailbox capacity for spawns that do not set one.
     * Default TR_MAILBOX_DEFAULT_CAPACITY; at most TR_MAILBOX_MAX_CAPACITY. */
    uint32_t mailbox_capacity;
    /* Overflow policy for spawns that do not set one. Default
     * TR_BACKPRESSURE (the zero value). */
    tr_overflow overflow;
    /* Largest payload a message may carry, in bytes. Default 1 MiB. */
    uint32_t max_payload;
    /* Most actors alive at once. Default 4,194,304; at most 2^28. */
    uint32_t max_actors;
    /* How long a thread outside the runtime blocks in a send to a full
     * backpressure mailbox before TR_ETIMEDOUT. Default 30,000 ms. */
    uint32_t send_timeout_ms;
    /* Held sends a muted actor may have before further sends fail with
     * TR_EFULL (a guard against a handler that ignores TR_PENDING and keeps
     * flooding). Default 1024. */
    uint32_t outbox_limit;
    /* How long tr_runtime_destroy() lets actors drain. Default 5,000 ms. */
    uint32_t drain_ms;
    /* Dead-letter callback installed at creation; may be NULL. */
    tr_dead_letter_fn dead_letter_fn;
    void *dead_letter_arg;
    /* Log lines; NULL: one line each on stderr ("troupe: warn: ..."). */
    tr_log_fn log_fn;
    void *log_arg;
    /* Threads of the blocking pool (tr_blocking_run), started on its first
     * use. Default 4; at most 1024. */
    uint32_t blocking_threads;
    /* Jobs the blocking pool queues before submitters see backpressure.
     * Default 1024; at most TR_MAILBOX_MAX_CAPACITY. */
    uint32_t blocking_queue;
    /* A handler that runs longer than this on a worker is reported (a
     * TR_LOG_WARN line and tr_stats.slow_handlers), once per call: it
     * blocks its worker. Default 100 ms; TR_WATCHDOG_OFF turns it off. */
    uint32_t watchdog_ms;
} tr_config;

/* tr_config.watchdog_ms: no watchdog (and no watchdog thread). */
#define TR_WATCHDOG_OFF UINT32_MAX

/* Counters of a runtime. Every field counts since tr_runtime_new(). */
typedef struct tr_stats {
    uint64_t spawned;       /* actors spawned */
    uint64_t alive;         /* actors alive now */
    uint64_t sent;          /* user messages accepted by a mailbox */
    uint64_t handled;       /* user messages handed to a handler */
    uint64_t dead_letters;  /* messages dead-lettered, for any reason */
    uint64_t dropped;       /* of those, dropped by an overflow policy */
    uint64_t rejected;      /* sends refused by a reject policy: TR_EFULL
                               returned, or a held send refused when it went */
    uint64_t held;          /* sends held in a muted sender's outbox */
    uint64_t overcommits;   /* held sends admitted past capacity: to break a
                               cycle of muted actors, or because their
                               sender ended */
    uint64_t timers_fired;  /* timer firings: each sent a message, or
                               dead-lettered it when it could not */
    uint64_t watches;       /* file descriptor watches alive now */
    uint64_t expired;       /* requests whose deadline passed before their
                               handler could run: not handled, the asker got
                               TR_ETIMEDOUT */
    uint64_t late_replies;  /* replies that came after their ask timed out
                               or was canceled: dropped (dead-lettered) */
    uint64_t unanswered;    /* requests a handler finished without replying
                               to, forwarding or declining: the runtime
                               answered TR_ENOREPLY */
    uint64_t shed;          /* messages older than their pool's age limit when
                               their turn came: dropped (dead-lettered with
                               TR_ETIMEDOUT), not handled */
    uint64_t jobs_run;      /* blocking-pool jobs run */
    uint64_t jobs_canceled; /* jobs accepted and never run (the runtime shut
                               down first): their cancel_fn was called */
    uint64_t slow_handlers; /* handler calls the watchdog reported */
    uint64_t steals;        /* run-queue steals between workers */
    uint64_t parks;         /* times a worker went to sleep */
    uint32_t workers;       /* worker threads */
} tr_stats;

/* Creates a runtime from `cfg` (NULL: all defaults) and starts its workers.
 * On TR_OK the caller owns *out and must release it with
 * tr_runtime_destroy(). On failure *out is unchanged.
 * Errors: TR_EINVAL (out NULL, a field out of range), TR_ENOMEM, TR_EFAILED
 * (a thread could not be started). Thread-safe: yes. */
TR_EXTERN TR_NODISCARD tr_status tr_runtime_new(tr_runtime **out,
                                                const tr_config *cfg);

/* Shuts the runtime down: from now on sends and spawns from outside threads
 * fail with TR_ESHUTDOWN and the timers of tr_send_after/tr_send_every are
 * canceled; supervisors started from outside stop their trees in order
 * (tr_sup_stop: each child drained, in reverse start order); actors go on
 * handling what is queued, and awaiting handlers go on awaiting, until
 * every actor is idle with nothing awaited, or `drain_ms` passes; then every
 * actor is stopped with reason TR_EXIT_SHUTDOWN (its terminate hook runs
 * exactly once; messages still queued go to dead letters, and one log line
 * at TR_LOG_INFO counts them). drain_ms 0 stops them at once. Returns when the
 * last actor is gone and the workers have exited. Calling it again returns
 * TR_OK once the first call is done (a call made while another runs waits for
 * it). Errors: TR_EINVAL (rt NULL), TR_ESTATE (called from a handler).
 * Thread-safe: yes, but not from one of the runtime's own handlers. */
TR_EXTERN tr_status tr_runtime_shutdown(tr_runtime *rt, uint32_t drain_ms);

/* Shuts the runtime down if that has not happened (with the configured
 * drain_ms), frees it and sets *rtp to NULL. Accepts NULL and a pointer to
 * NULL. Refs of the runtime stay safe to hold: sends through another
 * runtime report them dead. Must not be called from a handler.
 * Thread-safe: no (one caller, after every other thread is done with rt). */
TR_EXTERN void tr_runtime_destroy(tr_runtime **rtp);

/* Fills *out with the runtime's counters. The fields are read one by one
 * while the runtime runs, so they are each exact but not one snapshot.
 * Errors: TR_EINVAL. Thread-safe: yes. */
TR_EXTERN tr_status tr_runtime_stats(tr_runtime *rt, tr_stats *out);

/* Sets the dead-letter callback (fn NULL removes it). It may still be called
 * with the old one by a thread already inside it.
 * Errors: TR_EINVAL (rt NULL), TR_ENOMEM. Thread-safe: yes. */
TR_EXTERN tr_status tr_dead_letters_subscribe(tr_runtime *rt,
                                              tr_dead_letter_fn fn, void *arg);

/* Forwards dead letters to actor `to` as TR_MSG_DEAD_LETTER messages
 * (payload: a tr_dead_letter with data NULL). TR_NOREF stops forwarding.
 * A forwarded dead letter that the subscriber cannot take (it is full or
 * dead) is a dead letter itself (counted, passed to the callback), but is
 * never forwarded again; nor is a dead letter whose forward cannot be
 * allocated, or that of a timer message that could not be.
 * Errors: TR_EINVAL (rt NULL, a ref of another runtime). Thread-safe: yes. */
TR_EXTERN tr_status tr_dead_letters_forward(tr_runtime *rt, tr_ref to);

/* Where troupe gets its memory. The default is libc's malloc, realloc and
 * free. Every block the library allocates goes through these three. */
typedef struct tr_allocator {
    void *(*malloc_fn)(size_t n);
    void *(*realloc_fn)(void *p, size_t n);
    void (*free_fn)(void *p);
} tr_allocator;

/* Installs `a` (NULL: libc's) for the whole process: the one process-wide
 * setting, meant for embedding and for tests that fail allocations. The
 * functions must be thread-safe.
 * Errors: TR_EINVAL (a member NULL), TR_ESTATE (a runtime exists: blocks
 * from one allocator must not reach another's free).
 * Thread-safe: no; call it before creating runtimes. */
TR_EXTERN tr_status tr_set_allocator(const tr_allocator *a);

/* The library's version as TR_VERSION_HEX and as "major.minor.patch[-sfx]",
 * to compare with the header's. Thread-safe: yes. */
TR_EXTERN unsigned int tr_version(void);
TR_EXTERN const char *tr_version_string(void);

#endif
