/* The actor layer's internals: the runtime object, the actor table, actors,
 * messages and the turn context. Shared by the files of actors/.
 *
 * Who touches what:
 * - An actor's mailbox word, lanes and waiters: see mailbox/mailbox.h.
 * - Fields marked "owner" are touched only by the thread running the actor's
 *   turn; turns of one actor never overlap (the token rule in mailbox.h) and
 *   hand over through the mailbox word and the run queues (acquire/release),
 *   so owner fields need no atomics.
 * - Actor headers are type-stable: they live in table chunks that are freed
 *   only with the runtime, so a sender holding a stale ref may read a header
 *   safely; the mailbox epoch then refuses it.
 */
#ifndef TR_ACTORS_CORE_H
#define TR_ACTORS_CORE_H

#include <pthread.h>
#include <string.h>

#include "troupe/troupe.h"

#include "common/common.h"
#include "mailbox/mailbox.h"
#include "runtime/exec.h"
#include "runtime/timer.h"

/* Internal message kinds on the system lane (tr__msg.type there). */
enum {
    TR__SYS_INIT = 1,  /* payload: the spawn argument */
    TR__SYS_STOP,      /* payload: tr_reason */
    TR__SYS_TIMEOUT,   /* the actor's await timer fired; no payload */
    TR__SYS_LINK,      /* payload: tr__sig (from) */
    TR__SYS_UNLINK,    /* payload: tr__sig (from) */
    TR__SYS_EXIT,      /* an exit signal; payload: tr__sig */
    TR__SYS_MONITOR,   /* payload: tr__sig (from, id) */
    TR__SYS_DEMONITOR, /* payload: tr__sig (from, id) */
    TR__SYS_RESTART,   /* supervised child: restart (in place) now */
    TR__SYS_CLOSE,     /* supervised child: take no new user message */
    TR__SYS_DRAIN,     /* supervised child: ... and end once empty */
};

/* The payload of the link, monitor and exit system messages. */
typedef struct tr__sig {
    tr_ref from;
    uint64_t id;      /* a monitor's */
    bool linked;      /* an exit signal from a link (else from tr_kill) */
    tr_reason reason; /* an exit signal's */
} tr__sig;
/* A reply to an awaited ask also travels on the system lane, with its own
 * type TR_MSG_REPLY: a suspended actor takes no user message, so its reply
 * must not queue behind them (nor be held by backpressure). */

/* tr__msg.flags */
#define TR__MF_AWAITED                                                         \
    1u /* a request whose asker awaits the reply: answer                       \
          on the asker's system lane */
#define TR__MF_TRACKED                                                         \
    2u /* a request from tr_ask(): the reply is a user                         \
          message the asker matches to its pending asks */
#define TR__MF_SYNTH                                                           \
    4u /* a reply the asker's runtime made up itself (a                        \
          tr_ask() that timed out) */

/* A message. The payload is inline after the header, or a moved buffer. */
typedef struct tr__msg {
    tr__mnode node; /* first: the lanes link through it */
    uint32_t type;
    tr_status status; /* a reply's status: TR_OK or the asker's error */
    tr_ref from;
    tr_ref to;
    uint64_t corr;      /* nonzero: a request that expects a reply */
    uint64_t deadline;  /* CLOCK_MONOTONIC ns after which nobody waits for
                           it (an ask's); 0: none */
    uint32_t len;       /* at most tr_config.max_payload */
    uint8_t small;      /* 1: a TR__MSG_SMALL block, cacheable */
    uint8_t flags;      /* TR__MF_*; a reply copies its request's */
    uint16_t owner;     /* small blocks: the index (tr__local.index) of
                           the cache it belongs to; 0: none (large) */
    void *data;         /* inline_ or a moved buffer */
    tr_free_fn free_fn; /* NULL for inline payloads */
    alignas(16) unsigned char inline_[];
} tr__msg;

/* tr__msg_new sets each header field by name (not with memset): a field
 * added above must be added there too. */
_Static_assert(offsetof(tr__msg, inline_) == 96,
               "tr__msg's header changed: update tr__msg_new");

/* Payloads up to this size get a fixed-size block that workers recycle
 * through their caches; larger ones come from the allocator each time. */
#define TR__MSG_SMALL 64u
/* Blocks a worker keeps for reuse: enough for a full default mailbox (a
 * turn that holds senders up may drain one whole, see held_up in
 * actor.c), small enough (about 160 KiB) not to hoard memory. */
#define TR__MSG_CACHE 1024u
/* Blocks a worker's remote list may hold: beyond it, a block freed on
 * another thread goes back to the allocator, so an owner that stopped
 * allocating does not keep a growing pile no one else can reuse. */
#define TR__REMOTE_MAX 1024u
/* Free actor slots a worker keeps, and how many it moves at a time to or
 * from the runtime's shared free ring: spawns and ends on a worker take
 * the table lock once per batch, not once each. */
#define TR__SLOT_CACHE   1024u
#define TR__SLOT_BATCH   32u
#define TR__REMOTE_SHIFT 48
#define TR__REMOTE_PTR   ((UINT64_C(1) << TR__REMOTE_SHIFT) - 1)

/* A record of a sender waiting for room in a mailbox (its waiter list). */
typedef struct tr__thread_waiter {
    _Atomic uint32_t futex; /* 0 while waiting; 1 once woken */
    _Atomic uint32_t refs;  /* the waiting thread + each record */
} tr__thread_waiter;

/* Drops one reference to tw; the last one frees it. Any thread. */
void tr__thread_waiter_put(tr__thread_waiter *tw);

typedef struct tr__waiter {
    tr__mnode node;
    tr_ref actor;              /* a muted actor, or TR_NOREF */
    tr__thread_waiter *thread; /* or a blocked outside thread */
} tr__waiter;

/* What an actor has to await: nothing, a reply, a timer, a held send. */
typedef enum tr__await_kind {
    TR__AW_NONE = 0,
    TR__AW_ASK,
    TR__AW_SLEEP,
    TR__AW_SEND,
} tr__await_kind;

/* A tr_ask() whose reply has not been handled yet. */
typedef struct tr__pending {
    uint64_t corr;
    uint64_t deadline;
    tr_ref to;
    bool expired; /* its made-up TR_ETIMEDOUT reply is queued */
} tr__pending;

/* Room for the text of an await's error (a cycle, a missing reply). */
#define TR__DETAIL 96

typedef struct tr__child tr__child;

/* What few actors need, allocated on first use: held sends and waiters in
 * hand, and async state, links and monitors, supervision. A small one
 * (held sends and waiters only) goes when it holds neither; a full one
 * stays until the actor ends.
 * Owner only. */
typedef struct tr__ext {
    /* Held sends, in send order, and waiter records grabbed from mb.waiters
     * and not yet woken (newest first; while any are here the owner holds
     * the WAIT token, so it stays scheduled and wakes them as its turns
     * make room). An actor that only holds sends or waiters (a muted
     * producer, a flooded consumer) has just this much allocated
     * (TR__EXT_SMALL): `full` says whether the rest is there (see
     * tr__more). */
    tr__msg *head, *tail;
    tr__mnode *wpriv;
    uint32_t n;
    bool full;
    /* The suspended handler: the message it handles (kept until it
     * finishes), its row, where it resumes, what it awaits. */
    tr__await_kind kind;
    bool ready;   /* the await is over: resume with `status` */
    bool replied; /* the suspended handler answered its request */
    uint32_t point;
    tr_status status;
    tr__msg *msg;
    const tr_handler *row;
    tr_ref target;     /* AW_ASK: the actor asked */
    uint64_t corr;     /* AW_ASK: the reply's correlation id */
    void *buf;         /* AW_ASK: where the reply goes */
    size_t len;        /* ... and its size */
    tr__msg *held;     /* AW_SEND: the held message */
    uint64_t deadline; /* of the await */
    /* The deadline the actor's timer is set for (0: none). One timer per
     * actor, set lazily: a later await whose deadline is not earlier
     * reuses it, and its firing re-arms for what is still awaited. */
    uint64_t armed;
    char detail[TR__DETAIL]; /* the last await error's text */
    /* tr_ask()s in flight. */
    tr__pending *pend;
    uint32_t npend, cap;
    /* Links and monitors (links.c): the actors linked to this one, those
     * monitoring it (ref and monitor id), and its own monitors. */
    bool trap;
    tr_ref *links;
    uint32_t nlinks, caplinks;
    struct tr__watcher *watchers;
    uint32_t nwatchers, capwatchers;
    struct tr__mon *mons;
    uint32_t nmons, capmons;
    tr__child *child; /* supervised: see child.c */
} tr__ext;

/* A supervised child's record (child.c), in its ext. Owner only, but for
 * what its supervisor set before the child ran. */
struct tr__child {
    tr_ref sup;
    uint32_t index; /* the supervisor's name for it */
    tr_restart restart;
    tr_decider_fn decider;
    void *decider_arg;
    uint32_t retry;
    uint32_t attempts;  /* failures on `poison` so far */
    tr__msg *poison;    /* the message it failed on, kept for a retry */
    tr__msg *retrying;  /* `poison` being handled again (compared only) */
    uint32_t directive; /* an end decided by its decider: STOP, ESCALATE */
    bool down;          /* terminated, waiting for TR__SYS_RESTART */
    bool self_restart;  /* a pool's worker: restarts at once by itself,
                           and only tells its router */
    bool draining;      /* end once its mailbox is empty */
    size_t arg_len;     /* the init argument, kept for restarts */
    alignas(16) unsigned char arg[];
};

/* TR_MSG_CHILD's payload: a child's news. */
enum {
    TR__CHILD_DOWN = 1,  /* failed, terminated, waiting for TR__SYS_RESTART */
    TR__CHILD_ENDED,     /* gone for good */
    TR__CHILD_DRAIN,     /* to a supervisor itself: its own supervisor
                            drains it; it stops its children, then ends */
    TR__CHILD_RESTARTED, /* a self-restarting child restarted in place */
};
typedef struct tr__child_note {
    tr_ref child;
    uint32_t index;
    uint32_t what;      /* TR__CHILD_* */
    uint32_t directive; /* ENDED: TR_STOP or TR_ESCALATE from its decider,
                           0 otherwise (killed, drained, shut down, a
                           normal end that is not restarted) */
    tr_reason reason;
} tr__child_note;

/* The size of an ext that holds sends only. */
#define TR__EXT_SMALL offsetof(tr__ext, kind)

struct tr__watcher {
    tr_ref who;
    uint64_t id;
};

struct tr__mon {
    uint64_t id;
    tr_ref target;
};

/* wflags bits (any thread; see tr__actor_wake and mute() in send.c). */
#define TR__W_MUTED 1u /* parked muted; the waker that clears it schedules */
#define TR__W_WAKE  2u /* a wake arrived; a muting owner must retry */

/* lflags bits (owner only). */
#define TR__L_INITED    1u /* init hook succeeded or there was none */
#define TR__L_ENDING    2u /* end after this message */
#define TR__L_MUTE_HELD 4u /* this actor holds its mailbox's MUTE token */
#define TR__L_WAIT_HELD 8u /* ... and its WAIT token (tr__wpriv is set) */
/* ... it watched a descriptor: end() removes its watches (actors/io.c). */
#define TR__L_WATCHING 16u
/* ... a thread actor: its own thread runs its turns (set at spawn, never
 * changed; thread.c). */
#define TR__L_THREAD 32u
/* ... its policy is TR_DROP_OLDEST (set at spawn, never changed): the
 * owner's copy of `policy`, in its own record (see tr__own). */
#define TR__L_DROP_OLDEST 64u
/* ... its state is not in the chunk (a malloc'd one, or given by the
 * spawner): small_state holds its pointer, which its end frees. */
#define TR__L_STATE_PTR 128u

/* life (any thread reads; the spawner and the owner write). */
#define TR__LIFE_FREE  0u
#define TR__LIFE_ALIVE 1u

/* Where an actor's state lives, by its behavior's state_size: up to
 * TR__STATE_SMALL bytes in its owner record itself (a ref, or two
 * counters), on the line the owner reads on every message; up to
 * TR__STATE_INLINE bytes in the slot's own area of its chunk; beyond, in a
 * malloc'd block whose pointer the small state area holds (TR__L_STATE_PTR,
 * as for a state the spawner gave). The first two cost no allocator call
 * at spawn or end, and no cross-thread free when one thread spawns and
 * another ends the actor. Chunk memory is touched page by page as it is
 * used, so slots whose states fit the record never touch the chunk's state
 * areas: an idle actor with a small state costs its 112 bytes and no more
 * (see tr__own_of). */
#define TR__STATE_SMALL 16u

/* An actor is two records in its table chunk: the line that senders write
 * (tr__actor, one cache line each) and the record its owner reads on every
 * message (tr__own, 48 bytes), in two arrays, so that senders' RMWs never
 * pull the owner's line away from the core running the actor, and the
 * actor costs 112 bytes, not two lines. Code passes tr__actor pointers
 * and reaches the owner record through tr__own_of. */
typedef struct tr__actor {
    /* What senders read first (the generation, in lookups), what they
     * write (the mailbox) and what the executor links. */
    _Atomic uint32_t gen; /* spawner writes before publishing; any reads */
    uint32_t slot;        /* set once with the chunk */
    tr__task task;        /* the executor's; see exec.h */
    tr__mailbox mb;
    _Atomic uint64_t muted_on; /* slot+1 << 32 | gen of the actor this one
                                  waits on (TR__EDGE_AWAIT set: for a
                                  reply), 0 when none; the owner stores,
                                  answerers CAS an await edge away, cycle
                                  walkers load */
} tr__actor;

_Static_assert(sizeof(tr__actor) == TR_CACHE_LINE,
               "an actor's sender line is one cache line");

typedef struct tr__own {
    /* The system lane, which the consumer polls after every message:
     * producers write this line only for system messages, so it stays
     * read-mostly (see docs/internals/mailbox.md). */
    tr__lane sys;
    const tr_behavior *beh; /* owner (set by the spawner before) */
    /* Owner: held sends and the rest of what few actors need (see
     * tr__ext); most actors never have one. */
    tr__ext *ext;
    _Atomic uint32_t wflags; /* TR__W_*; any thread */
    _Atomic uint8_t life;    /* TR__LIFE_*; shutdown walks it */
    /* tr_overflow; the spawner stores it (release) before publishing the
     * mailbox epoch; a sender whose admission found the lane full loads it
     * (acquire) and then re-checks the generation: the actor may have ended
     * and its slot been re-spawned since, and a policy read from the new
     * actor then shows with its newer generation (see tr__deliver). The
     * owner reads its copy in lflags. */
    _Atomic uint8_t policy;
    uint8_t lflags; /* TR__L_*; owner */
    /* The state of a behavior whose state_size is at most TR__STATE_SMALL,
     * or the pointer to one elsewhere (TR__L_STATE_PTR); owner. */
    alignas(16) unsigned char small_state[TR__STATE_SMALL];
} tr__own;

_Static_assert(sizeof(tr__own) == 48, "an owner record is 48 bytes");

/* What the actor layer keeps per worker: counters (the worker's thread
 * stores, anyone loads) and its small message blocks. A block goes back to
 * the cache of the worker that made it: freed on that worker, onto `cache`
 * (owner only); freed anywhere else, onto `remote` (any thread pushes, one
 * CAS), which the owner takes whole when `cache` runs dry. So a producer on
 * one worker and a consumer on another pass blocks back and forth without
 * the allocator (whose cross-thread frees contend on its arena lock). One
 * more block, `outside`, counts for threads outside the pool (RMW); its
 * caches (blocks and slots) are theirs, shared under the runtime's
 * outside_lock, and its remote list takes their blocks back from the
 * workers. */
typedef struct tr__local {
    alignas(TR_CACHE_LINE) _Atomic uint64_t sent;
    _Atomic uint64_t handled;
    _Atomic uint64_t dead_letters;
    _Atomic uint64_t dropped;
    _Atomic uint64_t rejected;
    _Atomic uint64_t held;
    _Atomic uint64_t overcommits;
    _Atomic uint64_t expired;
    _Atomic uint64_t late_replies;
    _Atomic uint64_t unanswered;
    _Atomic uint64_t shed;
    /* Handlers suspended in an await, as +1 at the await and -1 when it
     * ends (on any worker: only the sum over workers means anything);
     * shutdown's drain waits for them. */
    _Atomic uint64_t awaiting;
    _Atomic uint64_t spawned;
    _Atomic uint64_t jobs_run;      /* blocking.c */
    _Atomic uint64_t jobs_canceled; /* blocking.c */
    _Atomic uint64_t slow_handlers; /* watchdog.c */
    /* The handler this worker runs, for the watchdog: the owner stores
     * (tr__watch_begin/end), the watchdog loads. wd_word is the message
     * type << 32 | (calls mod 2^31) << 1 | running; wd_actor and wd_beh
     * name the actor while it runs. */
    _Atomic uint64_t wd_word;
    _Atomic(tr__actor *) wd_actor;
    _Atomic(const tr_behavior *) wd_beh;
    uint64_t corr_seq;      /* owner only: correlation ids (see new_corr) */
    tr__clock_anchor clock; /* owner only: deadlines (tr__now_bound_ns) */
    tr__msg *cache;         /* owner only: free blocks */
    uint32_t ncache;
    uint16_t index; /* 1 + this worker's index, or workers + 1 for the
                       outside block (tr__msg.owner) */
    tr_runtime *rt; /* the runtime whose block this is (set at creation) */
    /* Owner only: free actor slots, a FIFO so a slot is reused as late as
     * practical (see the epoch note in mailbox.h); refilled from, and
     * spilled to, the runtime's free ring in batches under table_lock. */
    uint32_t slot_head, slot_len;
    uint32_t slots[TR__SLOT_CACHE];
    /* Actor-limit reservations this worker (or, in `outside`, the outside
     * threads) holds beyond its actors: counted in rt->alive already, so
     * most spawns and ends need not touch that shared line (see count_in
     * in system.c). The owner RMWs it (outside: under outside_lock); a
     * spawn that finds the limit reached may take one from any block, and
     * tr__alive takes them all back. */
    _Atomic uint32_t credit;
    /* Other threads' pushes, on their own line: a tr__msg pointer in the
     * low 48 bits and, above them, how many blocks the list holds (see
     * TR__REMOTE_MAX), so one CAS both pushes and counts. */
    alignas(TR_CACHE_LINE) _Atomic uint64_t remote;
} tr__local;

/* A dead-letter subscription: immutable once published. */
typedef struct tr__dl_sub {
    tr_dead_letter_fn fn;
    void *arg;
    struct tr__dl_sub *older; /* kept until destroy: a reader may hold it */
} tr__dl_sub;

/* How many budgets a turn may run while senders wait on the actor (see
 * held_up in actor.c). */
#define TR__HELD_UP_BUDGETS 16u

#define TR__CHUNK_SHIFT 12
#define TR__CHUNK       (1u << TR__CHUNK_SHIFT)

/* States of up to this many bytes (and more than TR__STATE_SMALL) live in
 * their slot's own area of the chunk. 48 holds a ref, a pointer and two
 * counters (skynet's nodes: 15% faster than at 32, which sent them to
 * malloc). */
#define TR__STATE_INLINE 48u
/* A chunk: TR__CHUNK sender lines, then as many owner records, then as
 * many state areas. */
#define TR__CHUNK_OWN   ((size_t)TR__CHUNK * sizeof(tr__actor))
#define TR__CHUNK_AREAS (TR__CHUNK_OWN + (size_t)TR__CHUNK * sizeof(tr__own))
#define TR__CHUNK_BYTES (TR__CHUNK_AREAS + (size_t)TR__CHUNK * TR__STATE_INLINE)

/* Where slot index i of a chunk keeps its owner record and state area.
 * Neighbouring records and areas share cache lines, so they are laid out
 * with slot i's neighbours at i +- TR__CHUNK/2, not i +- 1: actors spawned
 * one after the other (a producer and its consumer, say) do not write one
 * line from two cores. */
static inline size_t
tr__chunk_place(const tr__actor *a)
{
    uint32_t i = a->slot & (TR__CHUNK - 1);

    return ((i << 1) | (i >> (TR__CHUNK_SHIFT - 1))) & (TR__CHUNK - 1);
}

/* The start of a's chunk. */
static inline char *
tr__chunk_of(const tr__actor *a)
{
    return (char *)(uintptr_t)(a - (a->slot & (TR__CHUNK - 1)));
}

/* a's owner record. */
static inline tr__own *
tr__own_of(const tr__actor *a)
{
    return (tr__own *)(void *)(tr__chunk_of(a) + TR__CHUNK_OWN) +
           tr__chunk_place(a);
}

/* a's owner record, or NULL for NULL (an outside thread). */
static inline tr__own *
tr__own_or_null(const tr__actor *a)
{
    return a != NULL ? tr__own_of(a) : NULL;
}

/* The inline state area (TR__STATE_INLINE bytes, 16-byte aligned, like
 * malloc's) of the actor whose owner record is o: at the same place in the
 * areas array as o in the records array, which is as large. */
static inline void *
tr__state_area(const tr__own *o)
{
    _Static_assert(sizeof(tr__own) == TR__STATE_INLINE,
                   "records and state areas are placed alike");
    return (char *)(uintptr_t)o + (TR__CHUNK_BYTES - TR__CHUNK_AREAS);
}

/* Owner: the state of the actor whose owner record is o (see
 * TR__STATE_SMALL). */
static inline void *
tr__state_of(tr__own *o)
{
    void *p;

    if (o->lflags & TR__L_STATE_PTR) {
        memcpy(&p, o->small_state, sizeof p);
        return p;
    }
    return o->beh->state_size <= TR__STATE_SMALL ? (void *)o->small_state
                                                 : tr__state_area(o);
}

/* Runtime states (any thread loads; lifecycle calls store). */
enum {
    TR__RT_RUNNING = 0,
    TR__RT_DRAINING, /* outside sends and spawns refused */
    TR__RT_STOPPING, /* every spawn refused; actors being stopped */
    TR__RT_STOPPED,
};

struct tr_runtime {
    tr_config cfg;
    uint64_t node;
    tr__exec *exec;
    tr__timers *timers;
    _Atomic uint32_t state;

    /* Actor table: a directory of chunks, each TR__CHUNK headers. Chunks
     * are created under table_lock and published with release; readers
     * acquire. Free slots form a FIFO ring under table_lock, so a slot is
     * reused as late as possible (see the epoch note in mailbox.h). */
    _Atomic(tr__actor *) *chunks;
    uint32_t nchunks_max;
    pthread_mutex_t table_lock;
    /* Serializes outside threads' use of the caches in `outside` (its
     * blocks and its slots; its remote list is lock-free, like a
     * worker's). */
    pthread_mutex_t outside_lock;
    uint32_t high;       /* slots ever created; under table_lock */
    uint32_t *free_ring; /* under table_lock */
    uint32_t free_head, free_len;
    /* Actors alive plus the reservations workers hold (tr__local.credit):
     * RMW by spawns and ends; see tr__alive for the count itself. */
    _Atomic uint64_t alive;
    _Atomic uint32_t high_seen; /* mirror of high for lock-free walkers */
    /* Thread actors opened and not yet through their end (thread.c). Their
     * threads are not the runtime's to join, and an end still uses the
     * runtime after it counts the actor out of `alive`, so shutdown also
     * waits for this to reach 0 (acquire, against the decrement's release,
     * the end's last touch of the runtime). */
    _Atomic uint32_t thread_ends;

    tr__local *wc;     /* one per worker */
    tr__local outside; /* outside threads */

    _Atomic(tr__dl_sub *) dl_sub;
    _Atomic uint64_t dl_forward; /* packed ref (slot+1, gen); 0: none */
    pthread_mutex_t dl_lock;     /* serializes subscribe calls */

    /* File descriptor watches (actors/io.c): created with the reactor
     * thread by the first tr_watch_fd() under life_lock and published with
     * release; NULL in runtimes that never watch. */
    _Atomic(struct tr__io *) io;

    pthread_mutex_t life_lock; /* serializes shutdown */
    pthread_cond_t life_cond;  /* signalled as actors end */
    /* Actors that stop in an orderly way when the runtime shuts down (top
     * supervisors started from outside), with the message type that asks
     * them to. Under life_lock. */
    struct tr__root {
        tr_ref ref;
        uint32_t stop_type;
    } * roots;
    uint32_t nroots, caproots;

    /* The blocking pool, created on first use under life_lock (release
     * store; submitters acquire). NULL until then. */
    _Atomic(struct tr__pool *) pool;
    struct tr__watchdog *watchdog; /* NULL when off; lifecycle calls only */
};

/* The context of one turn. */
struct tr_cx {
    tr_runtime *rt;
    tr__actor *self;
    tr__own *own; /* self's owner record (tr__own_of) */
    void *state;  /* self's state (tr__state_of), fixed for its life */
    /* self's ref, read once per turn: its slot and generation share a line
     * with the mailbox word that every sender to it writes. */
    tr_ref ref;
    tr__worker *w;
    tr__local *l;    /* w's block (ids, the clock); NULL on a thread actor's */
    tr__msg *msg;    /* the message being handled; NULL in hooks without one */
    bool replied;    /* tr_reply answered msg (or forwarded or declined it) */
    bool can_await;  /* a user message's handler: it may suspend */
    uint32_t point;  /* where the handler resumes (0: from the start) */
    tr_status await; /* the last await's result */
    /* Why the actor ends, once TR__L_ENDING is set. An actor's end is
     * decided and carried out within one turn, so the reason lives here,
     * on the worker's stack, not in every actor. */
    tr_reason reason;
};

/* ---- system.c ---------------------------------------------------------- */

/* The actor a ref names if it is alive now and local, else NULL. The header
 * stays readable forever; the answer can be stale by the time it is used,
 * which admission (the mailbox epoch) catches. */
tr__actor *tr__lookup(tr_runtime *rt, tr_ref r);
tr_ref tr__ref_of(tr_runtime *rt, const tr__actor *a);
uint64_t tr__ref_pack(tr_ref r);
tr_ref tr__ref_unpack(tr_runtime *rt, uint64_t packed);

/* Takes a free slot from cache c (its worker's block, or rt->outside with
 * outside_lock held) and counts the actor in against the limit. */
tr_status tr__slot_alloc(tr_runtime *rt, tr__local *c, tr__actor **out);
/* Actors alive now: returns the reservations workers and outside threads
 * hold to rt->alive and reads it (high for a moment while spawns run, never
 * low). Any thread. */
uint64_t tr__alive(tr_runtime *rt);
void tr__slot_release(tr_runtime *rt, tr__actor *a);

/* The calling worker's block, or NULL on a thread outside rt's pool. A
 * thread-local pointer set by the worker's first turn (a worker serves one
 * runtime for life, and ends before its block is freed), so this is one
 * thread-local load and a compare. */
extern _Thread_local tr__local *tr__tls_local;

static inline tr__local *
tr__local_here(tr_runtime *rt)
{
    tr__local *l = tr__tls_local;

    return l != NULL && l->rt == rt ? l : NULL;
}

void tr__count_outside(tr_runtime *rt, size_t field_offset, uint64_t n);

/* Adds n to a counter: a plain load and store on the worker's own block,
 * a relaxed RMW on the shared block from outside threads. */
#define TR__COUNT(rt, field, n)                                                \
    do {                                                                       \
        tr__local *l_ = tr__local_here(rt);                                    \
        if (l_ != NULL) {                                                      \
            atomic_store_explicit(                                             \
                &l_->field,                                                    \
                atomic_load_explicit(&l_->field, memory_order_relaxed) + (n),  \
                memory_order_relaxed);                                         \
        } else {                                                               \
            tr__count_outside((rt), offsetof(tr__local, field), (n));          \
        }                                                                      \
    } while (0)

/* Registers / forgets an actor that shutdown asks to stop itself (a
 * message of `stop_type`, from the runtime) before its drain deadline, so
 * it can stop what it runs in order. Any thread. */
tr_status tr__root_add(tr_runtime *rt, tr_ref ref, uint32_t stop_type);
void tr__root_del(tr_runtime *rt, tr_ref ref);

/* Formats a log line and passes it to tr_config.log_fn (or stderr). Any
 * thread. */
void tr__log(tr_runtime *rt, tr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Hands a message the runtime cannot deliver to dead letters (callback,
 * forward, counters), tells a waiting asker, and frees it. Any thread. */
void tr__dead_letter(tr_runtime *rt, tr__msg *m, tr_status reason);

/* If `m` is a request (an ask waits for it), answers its asker with the
 * error `st` now rather than at its deadline. Any thread. */
void tr__reply_error(tr_runtime *rt, const tr__msg *m, tr_status st);

/* The handler context of the calling thread if it is running a turn of
 * rt's, else NULL. */
tr_cx *tr__current_cx(tr_runtime *rt);
/* The actor whose handler the calling thread is running for rt, or NULL: a
 * handler that calls an _rt form acts as itself. */
tr__actor *tr__current_actor(tr_runtime *rt);

/* ---- watchdog.c -------------------------------------------------------- */

/* Publishes what a worker runs, for the watchdog to sample, with no clock
 * read: the actor once per turn (tr__watch_turn, two stores), then each
 * handler call (tr__watch_begin, one store; tr__watch_end, one). Worker
 * only.
 *
 * Release stores, read as a seqlock without fences (which TSan does not
 * model): the word's release publishes wd_actor and wd_beh to the
 * watchdog's acquire of it; and a watchdog whose acquire load of wd_actor
 * or wd_beh reads a later turn's value synchronizes with that store, made
 * after this turn's last tr__watch_end, so its re-read of the word sees
 * that the call changed (see report() in watchdog.c). */
static inline void
tr__watch_turn(tr__local *l, tr__actor *a, const tr_behavior *beh)
{
    atomic_store_explicit(&l->wd_actor, a, memory_order_release);
    atomic_store_explicit(&l->wd_beh, beh, memory_order_release);
}

static inline void
tr__watch_begin(tr__local *l, uint32_t type)
{
    /* relaxed: the worker reads back its own store. */
    uint64_t calls =
        atomic_load_explicit(&l->wd_word, memory_order_relaxed) + 2u;

    atomic_store_explicit(
        &l->wd_word, (uint64_t)type << 32 | (calls & UINT64_C(0xfffffffe)) | 1u,
        memory_order_release);
}

/* The call published by tr__watch_begin returned. Worker only. */
static inline void
tr__watch_end(tr__local *l)
{
    /* release: ordered before the next call's stores (see above). */
    atomic_store_explicit(
        &l->wd_word,
        atomic_load_explicit(&l->wd_word, memory_order_relaxed) & ~UINT64_C(1),
        memory_order_release);
}

/* Starts the watchdog thread unless tr_config.watchdog_ms turns it off;
 * stops and frees it (idempotent; accepts a runtime without one). Lifecycle
 * calls only. */
tr_status tr__watchdog_start(tr_runtime *rt);
void tr__watchdog_stop(tr_runtime *rt);

/* ---- thread.c and blocking.c ------------------------------------------- */

/* tr__run's trampoline for a TR__L_THREAD actor: hands the turn (and with
 * it the mailbox's tokens, see mailbox.h) to the thread that owns the
 * actor, which consumes the mailbox as a turn would. Worker. */
void tr__thread_handoff(tr__actor *a);

/* The thread actor the calling thread is (its own OS thread), if it is one
 * of rt's and has not ended; else NULL. Any thread. */
tr__actor *tr__thread_self(tr_runtime *rt);

/* Joins the blocking pool's threads once its actor has ended (shutdown),
 * and frees the pool (destroy). Lifecycle calls only. */
void tr__pool_join(tr_runtime *rt);
void tr__pool_free(tr_runtime *rt);

/* ---- message (actor.c) ------------------------------------------------- */

/* A request: a message whose sender waits for an answer (tr_reply,
 * tr_forward, tr_reply_error, or the runtime's error for it). */
static inline bool
tr__is_request(const tr__msg *m)
{
    return m->corr != 0 && m->type < TR_MSG_RESERVED &&
           !tr_ref_is_none(m->from);
}

tr__msg *tr__msg_new(tr_runtime *rt, size_t len);
void tr__msg_free(tr_runtime *rt, tr__msg *m);
/* Frees the blocks a worker's cache holds (at destroy). */
void tr__msg_cache_drain(tr__local *l);

/* ---- actor.c ----------------------------------------------------------- */

/* Owner: the actor ends after this handler (or this system message) with
 * `why`, unless it is ending already (the first reason wins). */
void tr__exit_with(tr_cx *cx, const tr_reason *why);
/* A user message is about to be handled: false when it is dropped instead
 * (a reply to a tr_ask() that already timed out: late; a request past its
 * deadline: expired, its asker answered TR_ETIMEDOUT; another message past
 * the deadline a router stamped: shed, dead-lettered). Owner. */
bool tr__accept(tr_cx *cx, tr__msg *m);
/* A handler (or a thread actor) finished with m, returning st: answers a
 * request left unanswered (TR_ENOREPLY, or TR_EDEAD when failing or
 * ending), fails the actor on st < 0, frees m. Owner. */
void tr__finish(tr_cx *cx, tr__msg *m, tr_status st);

void tr__run(void *ctx, tr__worker *w, tr__task *item);

/* The behavior's row for `type`, or NULL. */
const tr_handler *tr__find_row(const tr_behavior *b, uint32_t type);

/* Spawns as tr_spawn does, with the actor's lflags set to `lflags` from the
 * start and `given` (NULL: a zeroed block of the behavior's size) as its
 * state, which its end frees with tr__free. On failure `given` is
 * still the caller's. `parent`: the spawning actor or NULL (outside). */
tr_status tr__spawn(tr_runtime *rt, tr__actor *parent, const tr_behavior *b,
                    const tr_spawn_opts *o, uint8_t lflags, void *given,
                    tr__child *child, tr_ref *out);
/* Runs the init hook (if any) with the argument; a negative status makes
 * the actor end (TR__L_ENDING) with TR_EXIT_FAILED. Owner. */
void tr__run_init(tr_cx *cx, tr__msg *m);
/* Runs the terminate hook (once init succeeded) with cx->reason. Owner. */
void tr__run_terminate(tr_cx *cx);

/* The pieces of a turn, for a thread actor's own thread (thread.c) as for
 * tr__run. Owner only.
 * tr__turn_sys: takes and handles the system lane (init, stop), adding
 * what it took to *consumed.
 * tr__turn_release: releases `consumed` and gives `n` freed user slots to
 * waiters; true when tokens remain (the caller still owns the mailbox).
 * tr__actor_end: ends an actor whose TR__L_ENDING is set, `consumed` being
 * the turn's unreleased count. */
void tr__turn_sys(tr_cx *cx, uint64_t *consumed);
bool tr__turn_release(tr_runtime *rt, tr__actor *a, uint64_t consumed,
                      uint32_t n);
void tr__actor_end(tr_cx *cx, uint64_t consumed);

/* Owner: the oldest user message linked in a's mailbox, or NULL. */
static inline tr__mnode *
tr__actor_pop(tr__actor *a)
{
    return (tr__own_of(a)->lflags & TR__L_DROP_OLDEST)
               ? tr__mbox_pop_locked(&a->mb)
               : tr__mbox_pop(&a->mb);
}

static inline tr__actor *
tr__actor_of_task(tr__task *t)
{
    return (tr__actor *)(void *)((char *)t - offsetof(tr__actor, task));
}
/* Wakes a muted actor (schedules it if it was parked muted). Any thread. */
void tr__actor_wake(tr_runtime *rt, tr__actor *a);
/* Delivers built message m on its receiver's system lane (waking it if it
 * is parked). TR_OK, or TR_EDEAD / TR_EFULL with m still the caller's.
 * _to: the receiver already looked up (NULL: gone). */
tr_status tr__deliver_sys(tr_runtime *rt, tr__msg *m);
tr_status tr__deliver_sys_to(tr_runtime *rt, tr__actor *a, tr__msg *m);
/* Sends a system message of kind `kind` with payload to `to`. */
tr_status tr__send_sys(tr_runtime *rt, tr_ref to, uint32_t kind,
                       const void *data, size_t len);

/* ---- async.c ----------------------------------------------------------- */

/* An awaited request in two halves, for requests built elsewhere (an ask,
 * a blocking job). Prepare: the checks, the waits-on edge and cycle walk,
 * the deadline (written to *deadline) and correlation id (*corr), the
 * timer; on failure returns the status (also in cx->await) and nothing
 * is left behind. Then the caller builds m (to, type, payload, and the
 * corr, deadline and TR__MF_AWAITED given) and calls send_request, which
 * sends it and suspends (TR_PENDING), or returns the send's status. */
tr_status tr__await_prepare(tr_cx *cx, tr_ref to, void *reply, size_t reply_len,
                            uint32_t timeout_ms, uint64_t *corr,
                            uint64_t *deadline);
tr_status tr__await_send_request(tr_cx *cx, uint32_t point, tr__msg *m,
                                 void *reply, size_t reply_len);

/* Owner, from the system lane: the reply to an awaited ask (takes m; a
 * reply nobody awaits any more is a late one: counted, dead-lettered). */
void tr__await_reply(tr_cx *cx, tr__msg *m);
/* Owner: the actor's timer fired: ends awaits and tr_ask()s past their
 * deadline, re-arms for the rest. */
void tr__await_timeout(tr_cx *cx);
/* Owner: if the suspended handler's await is over, hands back its message
 * and row and sets cx up to resume it. */
bool tr__await_take(tr_cx *cx, tr__msg **m, const tr_handler **row);
/* Owner: whether reply m answers a tr_ask() still in flight (and takes it
 * off the list). */
bool tr__pending_take(tr_cx *cx, const tr__msg *m);
/* Owner, ending: answers a suspended handler's asker, frees the ext. */
void tr__ext_end(tr_cx *cx);
/* Frees an ext record and what it owns (NULL is fine). */
void tr__ext_free(tr__ext *x);

/* ---- io.c -------------------------------------------------------------- */

/* The owner, in end() after the terminate hook: removes every watch the
 * actor still has. */
void tr__io_actor_end(tr_runtime *rt, tr__actor *a);
/* Watches alive now. Any thread. */
uint64_t tr__io_watches(tr_runtime *rt);
/* Shutdown, once no actor is alive: stops the reactor thread. */
void tr__io_stop(tr_runtime *rt);
/* Destroy: stops the reactor if need be and frees every watch record. */
void tr__io_free(tr_runtime *rt);

/* ---- links.c ----------------------------------------------------------- */

/* Sends a notice user message (TR_MSG_EXIT, TR_MSG_DOWN, TR_MSG_CHILD) to
 * `to` past its capacity (notices are bounded by the links, monitors and
 * children that exist); one to an actor that is gone vanishes. Any
 * thread. */
void tr__notice(tr_runtime *rt, tr_ref to, uint32_t type, const void *data,
                size_t len);

/* Owner: a link, monitor or exit system message (takes nothing: the caller
 * frees m). */
void tr__bond_sys(tr_cx *cx, const tr__msg *m);
/* An ending actor's system message that will never be handled: a link or
 * monitor request is answered as if the actor were gone (NOPROC). */
void tr__bond_orphan(tr_runtime *rt, const tr__msg *m);
/* Owner, ending (after the terminate hook): signals links, tells
 * watchers. */
void tr__bonds_end(tr_cx *cx);
/* Owner: whether a TR_MSG_DOWN may be handled (its monitor still stands;
 * it is then removed). */
bool tr__down_take(tr_cx *cx, const tr__msg *m);
/* A spawn with the `link` option: prepare allocates what both sides need
 * (the parent's room, the child's ext) so that commit, once the child has
 * a ref and before it can run, cannot fail. */
tr_status tr__link_prepare(tr__actor *parent, tr__ext **child);
void tr__link_commit(tr__actor *parent, tr__ext *child, tr_ref pref,
                     tr_ref cref);
/* A runtime-wide unique id (monitors, correlation ids): the worker's index
 * above a per-worker count. Owner of a turn. */
uint64_t tr__new_id(tr_cx *cx);

/* ---- child.c ----------------------------------------------------------- */

/* A child record for `sup`'s child number `index` of spec `cs`, with init
 * argument arg/len. NULL without memory. Free it with tr__free if the
 * spawn fails; once spawned, the child owns it. */
tr__child *tr__child_new(tr_ref sup, uint32_t index, const tr_child_spec *cs,
                         const void *arg, size_t len);
/* Owner, from tr__finish: a supervised child's handler returned st on m;
 * true when m is kept (to be retried after a restart): the caller must
 * not answer or free it. */
bool tr__child_finish(tr_cx *cx, tr__msg *m, tr_status st);
/* Owner: the child is ending (TR__L_ENDING): true when it lives on
 * instead (resumed, or terminated and waiting for its restart). */
bool tr__child_intercept(tr_cx *cx);
/* Owner: TR__SYS_RESTART, TR__SYS_CLOSE, TR__SYS_DRAIN. */
void tr__child_sys(tr_cx *cx, const tr__msg *m);
/* Owner: a child that got TR__CHILD_DRAIN (it handles TR_MSG_CHILD) and
 * wants the ordinary drain: it ends once its mailbox is empty. */
void tr__child_drain(tr_cx *cx);
/* Owner, from the turn, child up and nothing awaited: the message to
 * handle again (its retry), or NULL. */
tr__msg *tr__child_retry(tr_cx *cx);
/* Owner, ending: tells the supervisor, drops a kept message. */
void tr__child_end(tr_cx *cx);

/* ---- send.c ------------------------------------------------------------ */

/* Checks a user send's type and payload. */
tr_status tr__check_send(tr_runtime *rt, uint32_t type, const void *data,
                         size_t len);
/* Sends built message m from actor self, whose owner record is `so` (both
 * NULL: an outside thread; a thread actor blocks like one): held, blocking
 * or refused as the receiver's
 * policy says; outside threads get TR_ESHUTDOWN once shutdown began. Frees
 * m on the statuses where nothing was taken (TR_EFULL, TR_ETIMEDOUT,
 * TR_ESHUTDOWN, TR_ENOMEM) without calling its free_fn (a moved payload
 * stays the caller's). */
tr_status tr__send_msg(tr_runtime *rt, tr__actor *self, const tr__own *so,
                       tr__msg *m);
/* Whether a send's status means the runtime took the message (queued,
 * held, or dead-lettered): the sender no longer owns it, and a request's
 * asker will be answered. */
static inline bool
tr__taken(tr_status st)
{
    return st == TR_OK || st == TR_PENDING || st == TR_DROPPED ||
           st == TR_EDEAD;
}
/* Puts m in actor a's user lane past its capacity, uncounted (a made-up
 * reply to itself, bounded by its asks); a NULL or ended `a`
 * dead-letters it (TR_EDEAD). */
tr_status tr__push_forced(tr_runtime *rt, tr__actor *a, tr__msg *m);
/* Answers request `req` with status st and payload (an error's payload is
 * its text), from actor self (NULL: the runtime, which never holds). */
tr_status tr__answer(tr_runtime *rt, tr__actor *self, const tr__msg *req,
                     tr_status st, const void *data, size_t len);
/* tr_forward, with the copy's deadline lowered to `deadline` (0: kept): a
 * router that sheds messages older than a limit stamps it. */
tr_status tr__forward(tr_cx *cx, tr_ref to, uint64_t deadline);
/* User messages in r's mailbox now (a snapshot), or UINT32_MAX when r is
 * not alive. Any thread. */
uint32_t tr__depth(tr_runtime *rt, tr_ref r);
/* True when the chain of actors that `first` waits on (muted on, or
 * awaiting a reply from) leads back to `self` (packed refs), where `self`
 * has just stored its edge to `first` (seq_cst). */
bool tr__in_cycle(tr_runtime *rt, uint64_t self, uint64_t first);
/* A waits-on edge (tr__actor.muted_on) for an awaited reply rather than a
 * full mailbox: whoever answers the request, or forwards it, moves it. */
#define TR__EDGE_AWAIT (UINT64_C(1) << 63)
/* The answer to request `req` goes out now, from req->to, or moves on to
 * `to` (a forward): the await edge of `asker` (req->from looked up; NULL
 * when gone) follows, if it still names req->to. Any thread. */
void tr__edge_move(tr__actor *asker, const tr__msg *req, tr_ref to);
/* Owner: stores in muted_on what the actor waits on now (its first held
 * send's receiver, else the actor whose reply it awaits, else none). */
void tr__waits_reset(tr__actor *a);

/* How a delivery treats a full backpressure mailbox. */
typedef enum tr__mode {
    TR__FROM_ACTOR,  /* hold in the sender's outbox */
    TR__FROM_THREAD, /* block the calling thread */
    TR__TRY,         /* never wait: full means dead-letter with TR_EFULL */
    TR__FLUSH,       /* outbox flush: full means stay held */
    TR__OVERCOMMIT,  /* a result the receiver asked for (blocking pool):
                        full means admit past capacity, counted */
} tr__mode;

/* Delivers `m` (to m->to) from actor `self` (NULL outside). Takes `m` on
 * every status but those where the caller keeps ownership: TR_EFULL (reject
 * and flush-full), TR_ETIMEDOUT, TR_ESHUTDOWN (a receiver closing, from an
 * actor or a thread; other modes dead-letter it: TR_DROPPED). */
tr_status tr__deliver(tr_runtime *rt, tr__actor *self, tr__msg *m,
                      tr__mode mode);

/* The actor's full ext (async state, links and monitors, supervision), or
 * NULL when it has none or only held sends. Owner. */
static inline tr__ext *
tr__more(const tr__own *o)
{
    tr__ext *x = o->ext;

    return x != NULL && x->full ? x : NULL;
}

/* Owner: the waiter records in hand (tr__ext.wpriv), or NULL. */
static inline tr__mnode *
tr__wpriv(const tr__own *o)
{
    tr__ext *x = o->ext;

    return x != NULL ? x->wpriv : NULL;
}

/* Owner: the first held send, or NULL. */
static inline tr__msg *
tr__held(const tr__own *o)
{
    tr__ext *x = o->ext;

    return x != NULL ? x->head : NULL;
}
/* Owner: the actor's full ext, allocated (or grown from a small one) on
 * first use; NULL without memory. */
tr__ext *tr__ext_get(tr__actor *a);
/* Owner: the actor's ext for held sends (small if new); NULL without
 * memory. */
tr__ext *tr__ext_outbox(tr__actor *a);
/* A new full ext, zeroed; NULL without memory. */
tr__ext *tr__ext_new(void);
/* Owner: takes held send m out of the outbox (it is there). */
void tr__outbox_remove(tr__actor *self, tr__msg *m);
/* Owner: parks a suspended actor (holding MUTE) after releasing the turn's
 * counts and giving `freed` slots to waiters, as tr__mute does; returns
 * false without parking when a system message waits (the caller takes it:
 * the actor is still ours). */
bool tr__park(tr_runtime *rt, tr__actor *a, uint64_t *consumed, uint32_t freed);
/* Owner: tries to deliver held sends, in order; true when none is left. */
bool tr__outbox_flush(tr_runtime *rt, tr__actor *a);
/* Owner: the actor has held sends after a handler; mutes it unless they
 * can go now or a system message waits (then it returns false with sends
 * still held, and the caller ends the turn). Returns true when the actor is
 * parked muted (the caller must not touch it again); `consumed` is the mailbox
 * delta of this turn, which muting releases, and `freed` the user slots this
 * turn freed, which go to waiters. */
bool tr__mute(tr_runtime *rt, tr__actor *a, uint64_t *consumed, uint32_t freed);
/* Owner: wakes up to `max` waiters, from those in hand first, then grabbing
 * the shared list (one waiter per slot a turn freed: a woken sender retries
 * and registers again if beaten to the room). Those grabbed and not woken
 * stay in hand (tr__wpriv); with no memory to keep them, all are woken. */
void tr__owner_wake(tr_runtime *rt, tr__actor *a, uint32_t max);
/* Wakes waiter records (senders waiting for room) from *chain until it is
 * empty or `max` are woken; frees them; returns how many. Any thread. */
#define TR__WAKE_ALL UINT32_MAX
uint32_t tr__wake_chain(tr_runtime *rt, tr__mnode **chain, uint32_t max);
/* Delivers every held send of an ending actor, past capacity if need be
 * (counted in overcommits): TR_PENDING meant accepted. */
void tr__outbox_force(tr_runtime *rt, tr__actor *a);

#endif
