/* echo: a TCP echo server on loopback, troupe (one actor per connection,
 * examples/echo) against a thread-per-connection server, in the same run.
 *
 * n connections (default 1,000) each do ECHO_MSGS round trips of a 32-byte
 * message, one in flight per connection, from troupe client actors in this
 * process. Each server runs in a child process forked before any runtime
 * exists, so its memory is its own: the child reads its VmRSS once it
 * listens and, when the load is over, reports VmHWM minus that baseline
 * (the peak with every connection open). ops = round trips to the troupe
 * server; seconds = its timed region (all connections open, first send to
 * last reply). Extras: p99_ns (troupe server), server_kb, and for the
 * thread server thread_ops_per_s, thread_p99_ns, thread_server_kb.
 * Verified: every reply matches what was sent, no connection failed, no
 * dead letter, for both servers. */
#define _GNU_SOURCE /* pipe2 */

#include "bench.h"

#include "echo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ECHO_MSGS      100u
#define ECHO_TIMEOUT_S 300u

/* ---- The thread-per-connection server ---------------------------------- */

static void *
thread_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t k = write(fd, buf + off, (size_t)(n - off));

            if (k <= 0) {
                goto out;
            }
            off += k;
        }
    }
out:
    close(fd);
    return NULL;
}

static void *
thread_accept(void *arg)
{
    int lfd = (int)(intptr_t)arg, one = 1;
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        pthread_t th;

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            break;
        }
        (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (pthread_create(&th, &attr, thread_conn, (void *)(intptr_t)c) != 0) {
            close(c);
        }
    }
    return NULL;
}

/* ---- Server children --------------------------------------------------- */

typedef struct child {
    pid_t pid;
    int ctl; /* parent's end of the control socket */
    struct sockaddr_in sa;
} child;

/* The child: serves (troupe or threads) on a fresh port, says where, waits
 * for the parent's word, answers with its memory delta, exits. */
static void
child_main(int ctl, bool threads, uint32_t workers)
{
    struct sockaddr_in sa;
    int lfd = echo_listen_socket(0, &sa);
    tr_runtime *rt = NULL;
    tr_config cfg = {0};
    pthread_t th;
    uint64_t base, delta;
    char go;

    if (lfd < 0) {
        _exit(1);
    }
    if (threads) {
        /* Blocking accept on its own thread. */
        (void)fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) & ~O_NONBLOCK);
        if (pthread_create(&th, NULL, thread_accept, (void *)(intptr_t)lfd) !=
            0) {
            _exit(1);
        }
    } else {
        tr_ref listener;

        cfg.workers = workers;
        if (tr_runtime_new(&rt, &cfg) != TR_OK ||
            echo_serve(rt, lfd, &listener) != TR_OK) {
            _exit(1);
        }
    }
    base = bench_rss_kb();
    if (write(ctl, &sa, sizeof sa) != (ssize_t)sizeof sa ||
        read(ctl, &go, 1) != 1) {
        _exit(1);
    }
    delta = bench_hwm_kb() - base;
    if (write(ctl, &delta, sizeof delta) != (ssize_t)sizeof delta) {
        _exit(1);
    }
    _exit(0); /* the runtime and the threads go with the process */
}

static int
child_start(child *c, bool threads, uint32_t workers)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return bench_fail("socketpair: %s", strerror(errno));
    }
    c->pid = fork();
    if (c->pid < 0) {
        return bench_fail("fork: %s", strerror(errno));
    }
    if (c->pid == 0) {
        close(sv[0]);
        child_main(sv[1], threads, workers);
    }
    close(sv[1]);
    c->ctl = sv[0];
    if (read(c->ctl, &c->sa, sizeof c->sa) != (ssize_t)sizeof c->sa) {
        return bench_fail("a server child did not start");
    }
    return 0;
}

/* Ends the child; its memory delta in *kb. */
static int
child_finish(child *c, uint64_t *kb)
{
    int status = 0;
    bool ok = write(c->ctl, "", 1) == 1 &&
              read(c->ctl, kb, sizeof *kb) == (ssize_t)sizeof *kb;

    close(c->ctl);
    waitpid(c->pid, &status, 0);
    if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return bench_fail("a server child failed (status %d)", status);
    }
    return 0;
}

/* ---- The run ----------------------------------------------------------- */

static int
load(tr_runtime *rt, const child *c, uint32_t conns, echo_report *r)
{
    if (echo_load(rt, &c->sa, conns, ECHO_MSGS, ECHO_TIMEOUT_S, r) != 0) {
        return bench_fail("the load did not finish");
    }
    if (r->errors != 0 || r->messages != (uint64_t)conns * ECHO_MSGS) {
        return bench_fail("%" PRIu64 " connections failed, %" PRIu64
                          " of %" PRIu64 " round trips",
                          r->errors, r->messages, (uint64_t)conns * ECHO_MSGS);
    }
    return 0;
}

static int
run(const bench_args *args, bench_result *res)
{
    child tr = {0}, th = {0};
    echo_report rt_r, th_r;
    uint64_t tr_kb = 0, th_kb = 0;
    tr_runtime *rt = NULL;
    uint32_t conns = (uint32_t)args->n;
    int rc;

    if (args->n == 0 || args->n > 100000) {
        return bench_fail("--n must be 1..100000");
    }
    /* Client and server ends of every connection, in three processes. */
    if (echo_raise_nofile(args->n + 64) != 0) {
        return bench_fail("not enough file descriptors");
    }
    /* Both children before any thread exists here. */
    rc = child_start(&tr, false, args->workers);
    if (rc == 0) {
        rc = child_start(&th, true, 0);
    }
    if (rc == 0 && bench_runtime_new(args, &rt, res) != TR_OK) {
        rc = bench_fail("no runtime");
    }
    if (rc == 0) {
        rc = load(rt, &tr, conns, &rt_r);
    }
    if (rc == 0) {
        rc = load(rt, &th, conns, &th_r);
    }
    if (rt != NULL) {
        int frc = bench_runtime_finish(&rt);

        rc = rc ? rc : frc;
    }
    /* Children that started are ended whatever happened. */
    if (tr.pid > 0 && child_finish(&tr, &tr_kb) != 0 && rc == 0) {
        rc = 1;
    }
    if (th.pid > 0 && child_finish(&th, &th_kb) != 0 && rc == 0) {
        rc = 1;
    }
    if (rc != 0) {
        return rc;
    }
    res->ops = rt_r.messages;
    res->t0_ns = 0;
    res->t1_ns = (uint64_t)(rt_r.seconds * 1e9);
    bench_extra(res, "p99_ns", (double)rt_r.p99_ns, true);
    bench_extra(res, "server_kb", (double)tr_kb, true);
    bench_extra(res, "thread_ops_per_s", (double)th_r.messages / th_r.seconds,
                false);
    bench_extra(res, "thread_p99_ns", (double)th_r.p99_ns, true);
    bench_extra(res, "thread_server_kb", (double)th_kb, true);
    return 0;
}

const bench_def bench_echo = {
    "echo", 1000,
    "TCP echo on loopback: n connections x 100 round trips, troupe server "
    "vs thread per connection",
    run};
