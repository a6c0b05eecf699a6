/* download: N pages fetched at once from a local HTTP server, once with a
 * thread per download and once with an actor per download.
 *
 *   download [N [PAGE_BYTES [DELAY_MS]]]
 *
 * Defaults: 1000 pages of 16384 bytes, from a server that answers each
 * request after 1000 ms, like one across a network; the delay is what
 * keeps all N downloads under way at once (each run prints how many were).
 * The server (a listener actor and one actor per connection, server.c)
 * runs in a child process of its own, and each client in another, so each
 * client's memory is its own: VmHWM, the kernel's high-water mark of the
 * process's resident set, and VmPeak, that of its address space. Each
 * client starts all N downloads, then waits for them; every page's length
 * and bytes are checked. Exits 0 when both clients got every page intact,
 * 1 otherwise (with the first failure on stderr), 2 for a bad argument. */
#define _GNU_SOURCE /* strsignal */

#include "download.h"
#include "echo.h" /* echo_raise_nofile(), echo_listen_socket() */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Descriptors a process needs besides the connections'. */
#define FD_SPARE 64

typedef int (*fetch_fn)(const struct sockaddr_in *sa, uint32_t n,
                        uint64_t page_bytes, struct fetch_report *out);

/* A client's report crosses a pipe in one write, which is atomic. */
_Static_assert(sizeof(struct fetch_report) <= PIPE_BUF, "report too big");

void
report_error(struct fetch_report *out, const char *what, int err)
{
    if (out->error[0] == '\0') {
        snprintf(out->error, sizeof out->error, "%s%s%s", what,
                 err != 0 ? ": " : "", err != 0 ? strerror(err) : "");
    }
}

double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Relaxed: the counts are statistics that order no other memory; the
 * peak is read after the threads are joined or the runtime is idle. */
void
flight_begin(struct flight *f)
{
    uint32_t now = atomic_fetch_add_explicit(&f->now, 1, memory_order_relaxed);
    uint32_t peak = atomic_load_explicit(&f->peak, memory_order_relaxed);

    while (now + 1 > peak && !atomic_compare_exchange_weak_explicit(
                                 &f->peak, &peak, now + 1, memory_order_relaxed,
                                 memory_order_relaxed)) {
    }
}

void
flight_end(struct flight *f)
{
    atomic_fetch_sub_explicit(&f->now, 1, memory_order_relaxed);
}

static int
number(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(s, &end, 10);
    return *s >= '0' && *s <= '9' && *end == '\0' && errno == 0 &&
                   *out >= min && *out <= max
               ? 0
               : -1;
}

/* The process's resident size now and its peaks, from /proc/self/status. */
static void
read_peaks(struct fetch_report *r)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];

    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        unsigned long long kb;

        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1 && r->base_kb == 0) {
            r->base_kb = kb; /* the first call's */
        } else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
            r->hwm_kb = kb;
        } else if (sscanf(line, "VmPeak: %llu kB", &kb) == 1) {
            r->vpeak_kb = kb;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
}

/* The server's process: serves until the parent closes `ctl` (or dies). */
static int
serve(int lfd, uint64_t page_bytes, uint32_t delay_ms, int ctl)
{
    tr_runtime *rt = NULL;
    tr_ref listener;
    tr_status st;
    char c;

    st = tr_runtime_new(&rt, NULL);
    if (st == TR_OK) {
        st = http_serve(rt, lfd, page_bytes, delay_ms, &listener);
    }
    if (st != TR_OK) {
        fprintf(stderr, "download: server: %s\n", tr_strerror(st));
        close(lfd); /* the clients' connects are refused: they fail */
        tr_runtime_destroy(&rt);
        return 1;
    }
    while (read(ctl, &c, 1) < 0 && errno == EINTR) {
    }
    tr_runtime_destroy(&rt); /* stops the listener, which closes lfd */
    return 0;
}

/* Runs `fetch` in a child process and prints what it did; 0 when every
 * page came intact. */
static int
run_client(const char *name, fetch_fn fetch, const struct sockaddr_in *sa,
           uint32_t n, uint64_t page_bytes, struct fetch_report *r)
{
    int p[2], status = 0;
    ssize_t got;
    pid_t pid;

    memset(r, 0, sizeof *r);
    if (pipe(p) != 0) {
        perror("download: pipe");
        return 1;
    }
    fflush(NULL); /* or the child's exit() prints it again */
    pid = fork();
    if (pid == 0) {
        int rc;

        read_peaks(r);
        rc = fetch(sa, n, page_bytes, r);
        read_peaks(r);
        close(p[0]);
        exit(write(p[1], r, sizeof *r) == (ssize_t)sizeof *r ? rc : 1);
    }
    close(p[1]);
    if (pid < 0) {
        perror("download: fork");
        close(p[0]);
        return 1;
    }
    got = read(p[0], r, sizeof *r);
    close(p[0]);
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof *r) {
        fprintf(stderr, "download: the %s client ended without a report (%s)\n",
                name,
                WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit");
        return 1;
    }
    printf("%-8s %u of %u pages OK in %.3f s, %u at once at most\n", name,
           r->ok, n, r->seconds, r->in_flight);
    printf("         peak RSS %.1f MiB (%.1f KiB per download over the "
           "%.1f MiB before)\n",
           (double)r->hwm_kb / 1024, (double)(r->hwm_kb - r->base_kb) / n,
           (double)r->base_kb / 1024);
    printf("         peak virtual %.1f GiB; ", (double)r->vpeak_kb / 1048576);
    if (fetch == fetch_threads) {
        printf("%u threads, default stack %zu KiB\n", n - r->not_started,
               (size_t)(r->stack_bytes / 1024));
    } else {
        printf("%u workers\n", r->workers);
    }
    fflush(stdout); /* before stderr, in order when both go to one file */
    if (r->not_started != 0) {
        fprintf(stderr, "download: %s: %u threads could not be started (%s)\n",
                name, r->not_started, strerror(r->start_error));
    }
    if (r->error[0] != '\0') {
        fprintf(stderr,
                "download: %s: %u of %u downloads failed; the first: %s\n",
                name, r->failed, n, r->error);
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    unsigned long n = 1000, page_bytes = 16384, delay_ms = 1000;
    struct fetch_report threads, actors;
    struct sockaddr_in sa;
    struct rusage ru;
    int lfd, ctl[2], status, rc = 0;
    pid_t server;

    if ((argc > 1 && number(argv[1], 1, 1000000, &n) != 0) ||
        (argc > 2 && number(argv[2], 0, 1ul << 30, &page_bytes) != 0) ||
        (argc > 3 && number(argv[3], 0, 60000, &delay_ms) != 0) || argc > 4) {
        fprintf(stderr, "usage: download [N [PAGE_BYTES [DELAY_MS]]]\n"
                        "       (N from 1 to 1000000, PAGE_BYTES up to "
                        "2^30, DELAY_MS up to 60000)\n");
        return 2;
    }
    /* The server and each client are processes of their own: each needs a
     * descriptor per download. */
    if (echo_raise_nofile(n + FD_SPARE) != 0) {
        fprintf(stderr,
                "download: %lu downloads at once need %lu "
                "descriptors in the server and in each client\n",
                n, n + FD_SPARE);
        return 1;
    }
    lfd = echo_listen_socket(0, &sa);
    if (lfd < 0 || pipe(ctl) != 0) {
        perror("download: listen");
        return 1;
    }
    fflush(NULL);
    server = fork();
    if (server == 0) {
        close(ctl[1]);
        exit(serve(lfd, page_bytes, (uint32_t)delay_ms, ctl[0]));
    }
    close(lfd);
    close(ctl[0]);
    if (server < 0) {
        perror("download: fork");
        return 1;
    }
    printf("%lu pages of %lu bytes, all at once, from 127.0.0.1:%u "
           "answering each after %lu ms\n",
           n, page_bytes, ntohs(sa.sin_port), delay_ms);
    rc |= run_client("threads", fetch_threads, &sa, (uint32_t)n, page_bytes,
                     &threads);
    rc |= run_client("actors", fetch_actors, &sa, (uint32_t)n, page_bytes,
                     &actors);
    close(ctl[1]); /* the server's cue to stop */
    if (wait4(server, &status, 0, &ru) == server) {
        printf("server   peak RSS %.1f MiB (one actor per connection)\n",
               (double)ru.ru_maxrss / 1024);
        rc |= WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    if (rc == 0) {
        printf("threads/actors: %.1fx the memory, %.2fx the time\n",
               (double)threads.hwm_kb / (double)actors.hwm_kb,
               threads.seconds / actors.seconds);
    } else {
        printf("threads/actors: no comparison, a run failed\n");
    }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("(a sanitizer build: its shadow memory is in every figure)\n");
#endif
    return rc;
}
