/* File descriptor watches through the public API: level and edge
 * readiness, re-arming, merging while a message is out, EAGAIN, peer
 * close, socket errors, thousands of descriptors, a descriptor closed while
 * watched (and its number reused), actors that end while watching or try
 * to watch while ending, signals (EINTR) during I/O, readiness past a full
 * mailbox, shutdown with live watches, failed allocations, and bad
 * arguments. */
#include "itest.h"

#include "fail_alloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum {
    MSG_READY = 1,
    MSG_PING = 2,
};

/* What a watcher does with a readiness message. */
enum {
    M_NONE,  /* nothing (the descriptor stays ready) */
    M_ONE,   /* reads one byte */
    M_DRAIN, /* reads until EAGAIN (or end of file) */
    M_EOF,   /* drains; at end of file or an error, unwatches and closes */
};

static struct {
    _Atomic uint64_t msgs;   /* readiness messages handled */
    _Atomic uint64_t bytes;  /* bytes read */
    _Atomic uint64_t eagain; /* reads that ended in EAGAIN */
    _Atomic uint64_t eof;    /* reads that returned 0 */
    _Atomic uint32_t events; /* every TR_IO_* bit seen */
    _Atomic int error;       /* the last nonzero tr_io_event.error */
    _Atomic uint64_t bad;    /* payloads that did not match their watch */
    _Atomic int gate;        /* nonzero: handlers wait until it is 0 */
    _Atomic int in_handler;  /* a handler is waiting at the gate */
    _Atomic int pings;       /* MSG_PING handled */
    _Atomic int term_st;     /* the terminate hook's tr_watch_fd + 1000 */
    _Atomic int term_unwatch;
    _Atomic int term_fd; /* what the terminate hook tries to watch (-1:
                            nothing) */
} g;

static int
setup(void **state)
{
    memset(&g, 0, sizeof g);
    IT_STORE(g.term_fd, -1);
    return it_setup(state);
}

/* Waits (bounded) until the test opens the gate. */
static void
gate_wait(void)
{
    uint64_t end = tr_test_now_ns() + tr_test_scaled_ms(IT_WAIT_MS) * 1000000u;

    if (IT_LOAD(g.gate) == 0) {
        return;
    }
    IT_STORE(g.in_handler, 1);
    while (IT_LOAD(g.gate) != 0 && tr_test_now_ns() < end) {
        tr_test_sleep_us(100);
    }
    IT_STORE(g.in_handler, 0);
}

static void
read_some(tr_cx *cx, const tr_io_event *ev, int mode)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(ev->fd, buf, mode == M_ONE ? 1 : sizeof buf);

        if (n > 0) {
            atomic_fetch_add(&g.bytes, (uint64_t)n);
            if (mode == M_ONE) {
                return;
            }
        } else if (n == 0) {
            IT_INC(g.eof);
            break;
        } else if (errno == EINTR) {
            continue;
        } else {
            if (errno == EAGAIN) {
                IT_INC(g.eagain);
            }
            break;
        }
    }
    if (mode == M_EOF &&
        (ev->events & (TR_IO_HUP | TR_IO_ERROR | TR_IO_RDHUP))) {
        if (tr_unwatch(cx, ev->watch) != TR_OK) {
            IT_INC(g.bad);
        }
        close(ev->fd);
    }
}

typedef struct wstate {
    int mode;
} wstate;

static tr_status
w_init(tr_cx *cx, wstate *self, const int *mode)
{
    (void)cx;
    self->mode = *mode;
    return TR_OK;
}

static tr_status
w_ready(tr_cx *cx, wstate *self, const tr_io_event *ev)
{
    if (ev->fd < 0 || tr_watch_eq(ev->watch, TR_NOWATCH) || ev->events == 0) {
        IT_INC(g.bad);
    }
    atomic_fetch_or(&g.events, ev->events);
    if (ev->error != 0) {
        IT_STORE(g.error, ev->error);
    }
    if (self->mode == M_EOF && (ev->events & TR_IO_ERROR)) {
        (void)tr_unwatch(cx, ev->watch);
        close(ev->fd);
    } else if (self->mode != M_NONE) {
        read_some(cx, ev, self->mode);
    }
    gate_wait();
    IT_INC(g.msgs);
    return TR_OK;
}

static tr_status
w_ping(tr_cx *cx, wstate *self, const void *unused)
{
    (void)cx;
    (void)self;
    (void)unused;
    gate_wait();
    IT_INC(g.pings);
    return TR_OK;
}

static tr_status
w_term(tr_cx *cx, wstate *self, const tr_reason *why)
{
    int fd = IT_LOAD(g.term_fd);
    tr_watch w;

    (void)self;
    (void)why;
    if (fd >= 0) {
        IT_STORE(g.term_st,
                 (int)tr_watch_fd(cx, fd, TR_IO_READ, MSG_READY, 0, &w) + 1000);
    }
    return TR_OK;
}

TR_ACTOR(watcher, wstate, TR_ON_INIT(int, w_init),
         TR_ON(MSG_READY, tr_io_event, w_ready), TR_ON(MSG_PING, void, w_ping),
         TR_ON_TERMINATE(w_term), IT_ON_CALL);

static tr_ref
spawn_watcher(tr_runtime *rt, int mode, const tr_mailbox_opts *mb)
{
    tr_spawn_opts o = {.arg = &mode, .arg_len = sizeof mode, .mailbox = mb};
    tr_ref r = TR_NOREF;

    TR_ASSERT_OK(tr_spawn(rt, &watcher, &o, &r));
    return r;
}

/* ---- Watching through a call ------------------------------------------- */

typedef struct watch_req {
    int fd;
    uint32_t events, flags;
    tr_watch w;
    tr_status st;
} watch_req;

static void
do_watch(tr_cx *cx, void *arg)
{
    watch_req *q = arg;

    q->st = tr_watch_fd(cx, q->fd, q->events, MSG_READY, q->flags, &q->w);
}

static void
do_unwatch(tr_cx *cx, void *arg)
{
    watch_req *q = arg;

    q->st = tr_unwatch(cx, q->w);
}

static void
do_modify(tr_cx *cx, void *arg)
{
    watch_req *q = arg;

    q->st = tr_watch_modify(cx, q->w, q->events);
}

static void
do_close(tr_cx *cx, void *arg)
{
    (void)cx;
    close(*(int *)arg);
}

static tr_watch
watch_in(tr_runtime *rt, tr_ref who, int fd, uint32_t events, uint32_t flags)
{
    watch_req q = {fd, events, flags, TR_NOWATCH, TR_EFAILED};

    it_call_sync(rt, who, do_watch, &q);
    TR_ASSERT_OK(q.st);
    return q.w;
}

static tr_status
unwatch_in(tr_runtime *rt, tr_ref who, tr_watch w)
{
    watch_req q = {-1, 0, 0, w, TR_EFAILED};

    it_call_sync(rt, who, do_unwatch, &q);
    return q.st;
}

static void
make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void
put(int fd, size_t n)
{
    char buf[256] = {0};

    while (n > 0) {
        ssize_t k = write(fd, buf, n < sizeof buf ? n : sizeof buf);

        if (k < 0 && errno == EINTR) {
            continue;
        }
        assert_true(k > 0);
        n -= (size_t)k;
    }
}

static uint64_t
watches(tr_runtime *rt)
{
    return it_stats(rt).watches;
}

/* ---- Tests ------------------------------------------------------------- */

/* Level mode: one byte read per message, ten bytes written at once: the
 * watch re-arms after each handler, so exactly ten messages, and none once
 * the pipe is empty. */
static void
test_level_rearm(void **state)
{
    int p[2];
    tr_ref a;
    tr_watch w;

    (void)state;
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    w = watch_in(g_rt, a, p[0], TR_IO_READ, 0);
    assert_int_equal(watches(g_rt), 1);
    put(p[1], 10);
    IT_WAIT_UNTIL(IT_LOAD(g.bytes) == 10 && IT_LOAD(g.msgs) == 10);
    put(p[1], 1);
    IT_WAIT_UNTIL(IT_LOAD(g.msgs) == 11);
    TR_ASSERT_OK(unwatch_in(g_rt, a, w));
    assert_int_equal(watches(g_rt), 0);
    TR_ASSERT_STATUS(unwatch_in(g_rt, a, w), TR_ENOENT);
    put(p[1], 1); /* unwatched: nothing comes */
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.msgs), 11);
    assert_int_equal(IT_LOAD(g.bad), 0);
    assert_int_equal(it_dl_total(), 0);
    close(p[0]);
    close(p[1]);
}

/* Edge mode: the handler drains until EAGAIN. A write while the handler
 * is still running (held at the gate) is one more edge: it is merged and
 * delivered after the handler returns, never lost, and never as a second
 * queued message. */
static void
test_edge_eagain_merge(void **state)
{
    int p[2];
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_DRAIN, NULL);
    (void)watch_in(g_rt, a, p[0], TR_IO_READ, TR_WATCH_EDGE);
    IT_STORE(g.gate, 1);
    put(p[1], 3);
    IT_WAIT_UNTIL(IT_LOAD(g.in_handler) == 1);
    assert_int_equal(IT_LOAD(g.bytes), 3);
    assert_int_equal(IT_LOAD(g.eagain), 1);
    put(p[1], 5); /* three writes while the message is out */
    put(p[1], 5);
    put(p[1], 5);
    tr_test_sleep_ms(20); /* lets the reactor see them: not needed for the
                             counts below, which hold either way */
    IT_STORE(g.gate, 0);
    IT_WAIT_UNTIL(IT_LOAD(g.bytes) == 18);
    IT_WAIT_UNTIL(IT_LOAD(g.eagain) == IT_LOAD(g.msgs));
    /* Every message drained to EAGAIN; edges seen while the first one was
     * out merged into at most three follow-ups. */
    assert_true(IT_LOAD(g.msgs) >= 2 && IT_LOAD(g.msgs) <= 4);
    /* A fresh edge after the pipe went quiet: one more message at least,
     * drained like the others. */
    {
        uint64_t m = IT_LOAD(g.msgs);

        put(p[1], 7);
        IT_WAIT_UNTIL(IT_LOAD(g.bytes) == 25 && IT_LOAD(g.msgs) > m &&
                      IT_LOAD(g.eagain) == IT_LOAD(g.msgs));
    }
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.bad), 0);
    assert_int_equal(it_dl_total(), 0);
    close(p[0]);
    close(p[1]);
}

/* A readiness message gets in past a full user lane (it is bounded by the
 * watches), and there is never more than one per watch: a descriptor that
 * stays ready while its actor is busy yields one message, not a stream. */
static void
test_full_mailbox_bounded(void **state)
{
    tr_mailbox_opts mb = {1, TR_REJECT};
    int p[2];
    tr_ref a;
    tr_stats s0, s1;

    (void)state;
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_NONE, &mb);
    (void)watch_in(g_rt, a, p[0], TR_IO_READ, TR_WATCH_EDGE);
    IT_STORE(g.gate, 1);
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g.in_handler) == 1);
    /* The ping still counts: the lane is full. */
    TR_ASSERT_STATUS(tr_send(g_rt, a, MSG_PING, NULL, 0), TR_EFULL);
    s0 = it_stats(g_rt);
    for (int i = 0; i < 50; i++) {
        put(p[1], 1);
        tr_test_sleep_us(200);
    }
    tr_test_sleep_ms(20);
    s1 = it_stats(g_rt);
    /* One readiness message admitted (past capacity), the rest merged. */
    assert_int_equal(s1.sent - s0.sent, 1);
    IT_STORE(g.gate, 0);
    IT_WAIT_UNTIL(IT_LOAD(g.pings) == 1 && IT_LOAD(g.msgs) >= 1);
    tr_runtime_destroy(&g_rt);
    /* The first message plus at most one merged follow-up. */
    assert_true(IT_LOAD(g.msgs) <= 2);
    assert_int_equal(it_dl_total(), 0);
    close(p[0]);
    close(p[1]);
}

/* Peer close: the watcher sees READ and RDHUP, reads end of file,
 * unwatches and closes its end. */
static void
test_peer_close(void **state)
{
    int sv[2];
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    a = spawn_watcher(g_rt, M_EOF, NULL);
    (void)watch_in(g_rt, a, sv[0], TR_IO_READ | TR_IO_RDHUP, 0);
    put(sv[1], 100);
    IT_WAIT_UNTIL(IT_LOAD(g.bytes) == 100);
    close(sv[1]);
    IT_WAIT_UNTIL(IT_LOAD(g.eof) == 1 && watches(g_rt) == 0);
    assert_true(IT_LOAD(g.events) & TR_IO_RDHUP);
    assert_true(IT_LOAD(g.events) & TR_IO_READ);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.bad), 0);
}

/* An error on the descriptor: a connect refused on loopback reports
 * TR_IO_ERROR with SO_ERROR's ECONNREFUSED. */
static void
test_socket_error(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int l, c;
    tr_ref a;

    (void)state;
    /* A port nobody listens on: bound, then closed. */
    l = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    close(l);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(c, (struct sockaddr *)&sa, sizeof sa) == 0 ||
        errno != EINPROGRESS) {
        close(c);
        skip(); /* refused at once: nothing to watch */
    }
    g_rt = it_runtime(2, NULL);
    a = spawn_watcher(g_rt, M_EOF, NULL);
    (void)watch_in(g_rt, a, c, TR_IO_WRITE, 0);
    IT_WAIT_UNTIL(watches(g_rt) == 0);
    assert_true(IT_LOAD(g.events) & TR_IO_ERROR);
    assert_int_equal(IT_LOAD(g.error), ECONNREFUSED);
    tr_runtime_destroy(&g_rt);
}

/* Writing: fill a socket until EAGAIN, ask for WRITE with
 * tr_watch_modify, drain the peer: the room is reported. */
static void
test_write_modify(void **state)
{
    int sv[2];
    char buf[4096] = {0};
    tr_ref a;
    watch_req q;
    size_t total = 0;

    (void)state;
    g_rt = it_runtime(2, NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
                     0);
    while (write(sv[0], buf, sizeof buf) > 0) {
    }
    assert_int_equal(errno, EAGAIN);
    a = spawn_watcher(g_rt, M_NONE, NULL);
    q = (watch_req){-1, TR_IO_WRITE, 0, TR_NOWATCH, TR_EFAILED};
    q.w = watch_in(g_rt, a, sv[0], TR_IO_READ, 0);
    it_call_sync(g_rt, a, do_modify, &q);
    TR_ASSERT_OK(q.st);
    tr_test_sleep_ms(10);
    assert_int_equal(IT_LOAD(g.msgs), 0); /* full: not writable */
    for (;;) {
        ssize_t n = read(sv[1], buf, sizeof buf);

        if (n <= 0) {
            break;
        }
        total += (size_t)n;
    }
    assert_true(total > 0);
    IT_WAIT_UNTIL(IT_LOAD(g.msgs) >= 1);
    assert_true(IT_LOAD(g.events) & TR_IO_WRITE);
    TR_ASSERT_OK(unwatch_in(g_rt, a, q.w));
    q.events = TR_IO_READ;
    it_call_sync(g_rt, a, do_modify, &q);
    TR_ASSERT_STATUS(q.st, TR_ENOENT);
    tr_runtime_destroy(&g_rt);
    close(sv[0]);
    close(sv[1]);
}

/* Raises the soft descriptor limit toward the hard one; returns it. */
static rlim_t
raise_nofile(void)
{
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    return rl.rlim_cur;
}

#define MANY_ACTORS 64

/* Thousands of descriptors over a few actors: exact message counts over
 * two rounds, then the actors end while watching and every watch goes. */
static void
test_many_fds(void **state)
{
    rlim_t lim = raise_nofile();
    uint32_t n = 2000;
    int(*p)[2];
    tr_ref a[MANY_ACTORS];

    (void)state;
    if (lim < 2 * n + 64) {
        n = (uint32_t)((lim - 64) / 2);
    }
    print_message("many_fds: %u pipes (RLIMIT_NOFILE %llu)\n", n,
                  (unsigned long long)lim);
    p = calloc(n, sizeof *p);
    assert_non_null(p);
    g_rt = it_runtime(2, NULL);
    for (int i = 0; i < MANY_ACTORS; i++) {
        a[i] = spawn_watcher(g_rt, M_ONE, NULL);
    }
    for (uint32_t i = 0; i < n; i++) {
        make_pipe(p[i]);
        (void)watch_in(g_rt, a[i % MANY_ACTORS], p[i][0], TR_IO_READ,
                       i % 2 ? TR_WATCH_EDGE : 0);
    }
    assert_int_equal(watches(g_rt), n);
    for (int round = 1; round <= 2; round++) {
        for (uint32_t i = 0; i < n; i++) {
            put(p[i][1], 1);
        }
        IT_WAIT_UNTIL(IT_LOAD(g.msgs) == (uint64_t)round * n &&
                      IT_LOAD(g.bytes) == (uint64_t)round * n);
    }
    for (int i = 0; i < MANY_ACTORS; i++) {
        TR_ASSERT_OK(tr_stop(g_rt, a[i]));
    }
    IT_WAIT_UNTIL(watches(g_rt) == 0 && it_stats(g_rt).alive == 0);
    for (uint32_t i = 0; i < n; i++) {
        put(p[i][1], 1); /* nobody watches: nothing happens */
    }
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.msgs), 2 * n);
    assert_int_equal(it_dl_total(), 0);
    for (uint32_t i = 0; i < n; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
    free(p);
}

/* A descriptor closed while watched, its number reused by a new pipe that
 * is watched again: the new watch works, the stale one goes quiet, and
 * removing the stale one later does not disturb the new one. */
static void
test_closed_while_watched(void **state)
{
    int p1[2], p2[2];
    tr_ref a;
    tr_watch w1, w2;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    make_pipe(p1);
    w1 = watch_in(g_rt, a, p1[0], TR_IO_READ, 0);
    put(p1[1], 1);
    IT_WAIT_UNTIL(IT_LOAD(g.msgs) == 1);
    /* The actor closes it without tr_unwatch (from a handler: a close by
     * another thread could race with the re-arm after the last message,
     * which is the caller's bug, not this test's point). */
    it_call_sync(g_rt, a, do_close, &p1[0]);
    close(p1[1]);
    make_pipe(p2);
    if (p2[0] != p1[0]) {
        print_message("closed_while_watched: number not reused (%d, %d)\n",
                      p1[0], p2[0]);
    }
    w2 = watch_in(g_rt, a, p2[0], TR_IO_READ, 0);
    assert_false(tr_watch_eq(w1, w2));
    assert_int_equal(watches(g_rt), 2);
    put(p2[1], 1);
    IT_WAIT_UNTIL(IT_LOAD(g.msgs) == 2);
    TR_ASSERT_OK(unwatch_in(g_rt, a, w1));
    put(p2[1], 1);
    IT_WAIT_UNTIL(IT_LOAD(g.msgs) == 3);
    TR_ASSERT_OK(unwatch_in(g_rt, a, w2));
    assert_int_equal(watches(g_rt), 0);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(IT_LOAD(g.bytes), 3);
    assert_int_equal(IT_LOAD(g.bad), 0);
    close(p2[0]);
    close(p2[1]);
}

/* An actor that ends while watching, with a readiness message queued: the
 * watch goes with it and the queued message is a dead letter (TR_EDEAD). */
static void
test_actor_ends_while_watching(void **state)
{
    int p[2];
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    (void)watch_in(g_rt, a, p[0], TR_IO_READ, 0);
    IT_STORE(g.gate, 1);
    TR_ASSERT_OK(tr_send(g_rt, a, MSG_PING, NULL, 0));
    IT_WAIT_UNTIL(IT_LOAD(g.in_handler) == 1);
    put(p[1], 1);
    IT_WAIT_UNTIL(it_stats(g_rt).sent == 3); /* call, ping, readiness */
    TR_ASSERT_OK(tr_stop(g_rt, a));
    IT_STORE(g.gate, 0);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    assert_int_equal(watches(g_rt), 0);
    assert_int_equal(IT_LOAD(g.msgs), 0);
    assert_int_equal(it_dl_count(MSG_READY, TR_EDEAD), 1);
    put(p[1], 1); /* nobody watches any more */
    tr_runtime_destroy(&g_rt);
    assert_int_equal(it_dl_total(), 1);
    close(p[0]);
    close(p[1]);
}

static void
do_exit_then_watch(tr_cx *cx, void *arg)
{
    watch_req *q = arg;

    (void)tr_exit(cx, 0, NULL);
    q->st = tr_watch_fd(cx, q->fd, TR_IO_READ, MSG_READY, 0, &q->w);
}

/* An ending actor cannot watch: neither after tr_exit() in a handler nor
 * from its terminate hook. */
static void
test_watch_while_ending(void **state)
{
    int p[2];
    tr_ref a;
    watch_req q;

    (void)state;
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    q = (watch_req){p[0], TR_IO_READ, 0, TR_NOWATCH, TR_EFAILED};
    it_call_sync(g_rt, a, do_exit_then_watch, &q);
    TR_ASSERT_STATUS(q.st, TR_ESTATE);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    IT_STORE(g.term_fd, p[0]);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    TR_ASSERT_OK(tr_stop(g_rt, a));
    IT_WAIT_UNTIL(IT_LOAD(g.term_st) != 0);
    TR_ASSERT_STATUS((tr_status)(IT_LOAD(g.term_st) - 1000), TR_ESTATE);
    IT_WAIT_UNTIL(it_stats(g_rt).alive == 0);
    assert_int_equal(watches(g_rt), 0);
    tr_runtime_destroy(&g_rt);
    close(p[0]);
    close(p[1]);
}

typedef struct bad_req {
    int pipe_r, file_fd, closed_fd;
    tr_watch other; /* a live watch of another actor */
    tr_status st[17];
} bad_req;

static void
do_bad(tr_cx *cx, void *arg)
{
    bad_req *b = arg;
    tr_watch w, mine;
    int i = 0;

    b->st[i++] = tr_watch_fd(NULL, b->pipe_r, TR_IO_READ, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, -1, TR_IO_READ, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, 0, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, TR_IO_HUP, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, TR_IO_READ, MSG_READY, 0x80, &w);
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, TR_IO_READ, TR_MSG_REPLY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, TR_IO_READ, MSG_READY, 0, NULL);
    b->st[i++] = tr_watch_fd(cx, b->file_fd, TR_IO_READ, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, b->closed_fd, TR_IO_READ, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, 1 << 30, TR_IO_READ, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, TR_IO_READ, MSG_READY, 0, &mine);
    /* The same descriptor twice in one runtime. */
    b->st[i++] = tr_watch_fd(cx, b->pipe_r, TR_IO_READ, MSG_READY, 0, &w);
    b->st[i++] = tr_watch_modify(cx, mine, 0x40);
    b->st[i++] = tr_unwatch(cx, TR_NOWATCH);
    b->st[i++] = tr_unwatch(cx, b->other);
    b->st[i++] = tr_unwatch(NULL, mine);
    b->st[i++] = tr_unwatch(cx, mine);
}

TR_ACTOR(dropper, char, IT_ON_CALL);

static void
do_watch_dropper(tr_cx *cx, void *arg)
{
    watch_req *q = arg;

    q->st = tr_watch_fd(cx, q->fd, TR_IO_READ, MSG_READY, 0, &q->w);
}

static void
test_bad_arguments(void **state)
{
    static const tr_status want[17] = {
        TR_EINVAL, TR_EINVAL, TR_EINVAL, TR_EINVAL, TR_EINVAL, TR_EINVAL,
        TR_EINVAL, TR_EINVAL, TR_EINVAL, TR_EINVAL, TR_OK,     TR_ESTATE,
        TR_EINVAL, TR_ENOENT, TR_EINVAL, TR_EINVAL, TR_OK};
    char path[] = "/tmp/troupe-io-XXXXXX";
    int p[2], q2[2];
    bad_req b;
    tr_ref a, other;
    watch_req q;

    (void)state;
    g_rt = it_runtime(2, NULL);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    /* No watch yet in this runtime. */
    q = (watch_req){-1, 0, 0, TR_NOWATCH, TR_EFAILED};
    it_call_sync(g_rt, a, do_unwatch, &q);
    TR_ASSERT_STATUS(q.st, TR_ENOENT);
    make_pipe(p);
    make_pipe(q2);
    other = spawn_watcher(g_rt, M_ONE, NULL);
    b.other = watch_in(g_rt, other, q2[0], TR_IO_READ, 0);
    b.pipe_r = p[0];
    b.file_fd = mkstemp(path);
    assert_true(b.file_fd >= 0);
    unlink(path);
    b.closed_fd = dup(p[0]);
    close(b.closed_fd);
    it_call_sync(g_rt, a, do_bad, &b);
    for (int i = 0; i < 17; i++) {
        if (b.st[i] != want[i]) {
            fail_msg("call %d: got %s, expected %s", i, tr_status_name(b.st[i]),
                     tr_status_name(want[i]));
        }
    }
    /* A drop-oldest mailbox could drop a readiness message. */
    {
        tr_mailbox_opts mb = {8, TR_DROP_OLDEST};
        tr_spawn_opts o = {.mailbox = &mb};
        tr_ref d;

        TR_ASSERT_OK(tr_spawn(g_rt, &dropper, &o, &d));
        q = (watch_req){p[0], 0, 0, TR_NOWATCH, TR_EFAILED};
        it_call_sync(g_rt, d, do_watch_dropper, &q);
        TR_ASSERT_STATUS(q.st, TR_EINVAL);
    }
    assert_int_equal(watches(g_rt), 1);
    tr_runtime_destroy(&g_rt); /* with a live watch */
    close(b.file_fd);
    close(p[0]);
    close(p[1]);
    close(q2[0]);
    close(q2[1]);
}

typedef struct oom_req {
    int fd;
    size_t fail_at;
    tr_status st;
} oom_req;

static void
do_watch_oom(tr_cx *cx, void *arg)
{
    oom_req *q = arg;
    tr_watch w;

    fail_alloc_arm(q->fail_at);
    q->st = tr_watch_fd(cx, q->fd, TR_IO_READ, MSG_READY, 0, &w);
    fail_alloc_disarm();
    if (q->st == TR_OK) {
        (void)tr_unwatch(cx, w);
    }
}

/* Every allocation of a first watch fails in turn (the I/O state, the
 * reactor, the tables, a chunk of records): TR_ENOMEM each time, nothing
 * watched, nothing leaked; then it succeeds. */
static void
test_watch_oom(void **state)
{
    oom_req q = {0};
    int p[2];
    tr_ref a;

    (void)state;
    fail_alloc_install();
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_ONE, NULL);
    q.fd = p[0];
    for (q.fail_at = 1; q.fail_at < 64; q.fail_at++) {
        it_call_sync(g_rt, a, do_watch_oom, &q);
        if (q.st == TR_OK) {
            break;
        }
        TR_ASSERT_STATUS(q.st, TR_ENOMEM);
        assert_int_equal(watches(g_rt), 0);
    }
    TR_ASSERT_OK(q.st);
    assert_true(q.fail_at > 3); /* state, reactor, tables, chunk */
    assert_int_equal(watches(g_rt), 0);
    tr_runtime_destroy(&g_rt);
    fail_alloc_uninstall();
    close(p[0]);
    close(p[1]);
}

/* ---- Signals: EINTR everywhere ----------------------------------------- */

static void
on_usr1(int sig)
{
    (void)sig;
}

/* Sends SIGUSR1 to every thread of the process but the caller. */
static void
signal_all_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    pid_t self = (pid_t)syscall(SYS_gettid);

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        pid_t tid = (pid_t)atoi(e->d_name);

        if (tid > 0 && tid != self) {
            (void)syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
        }
    }
    closedir(d);
}

/* Signals without SA_RESTART interrupt the reactor's epoll_wait, parked
 * workers and the test's own calls while bytes flow: every byte still
 * arrives, exactly once. */
static void
test_eintr(void **state)
{
    struct sigaction sa = {0}, old;
    int p[2];
    tr_ref a;
    const uint64_t n = 400;

    (void)state;
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls fail with EINTR */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_DRAIN, NULL);
    (void)watch_in(g_rt, a, p[0], TR_IO_READ, TR_WATCH_EDGE);
    for (uint64_t i = 0; i < n; i++) {
        put(p[1], 1);
        if (i % 4 == 0) {
            signal_all_threads();
        }
        if (i % 16 == 0) {
            IT_WAIT_UNTIL(IT_LOAD(g.bytes) == i + 1);
        }
    }
    IT_WAIT_UNTIL(IT_LOAD(g.bytes) == n);
    tr_runtime_destroy(&g_rt);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    assert_int_equal(IT_LOAD(g.bytes), n);
    assert_int_equal(it_dl_total(), 0);
    close(p[0]);
    close(p[1]);
}

/* A runtime that never watches starts no reactor; shutdown with live
 * watches removes them (LeakSanitizer checks the rest). */
static void
test_shutdown_with_watches(void **state)
{
    int p[2];
    tr_ref a;

    (void)state;
    g_rt = it_runtime(2, NULL);
    make_pipe(p);
    a = spawn_watcher(g_rt, M_NONE, NULL);
    (void)watch_in(g_rt, a, p[0], TR_IO_READ, 0);
    put(p[1], 1); /* stays ready: the watcher never reads */
    IT_WAIT_UNTIL(IT_LOAD(g.msgs) >= 3);
    TR_ASSERT_OK(it_shutdown_bounded(g_rt, 0, IT_WAIT_MS));
    assert_int_equal(watches(g_rt), 0);
    tr_runtime_destroy(&g_rt);
    close(p[0]);
    close(p[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_level_rearm, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_edge_eagain_merge, setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_full_mailbox_bounded, setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_peer_close, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_socket_error, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_write_modify, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_many_fds, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_closed_while_watched, setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_actor_ends_while_watching, setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_watch_while_ending, setup,
                                        it_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_watch_oom, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_eintr, setup, it_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_with_watches, setup,
                                        it_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
