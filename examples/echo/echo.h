/* echo: a TCP echo server and a load client, one actor per connection
 * each, on troupe's fd watches (troupe/io.h). Shared by main.c and by
 * troupe-bench's `echo` scenario. */
#ifndef ECHO_H
#define ECHO_H

#include <netinet/in.h>
#include <stdint.h>

#include <troupe/troupe.h>

/* Raises the soft RLIMIT_NOFILE to the hard limit. Returns 0 when at least
 * `need` descriptors are allowed; otherwise prints why on stderr (with the
 * limits) and returns -1. */
int echo_raise_nofile(uint64_t need);

/* A nonblocking TCP socket listening on 127.0.0.1:port (0: any port);
 * writes where it is to *sa. Returns the descriptor or -1 (errno set). */
int echo_listen_socket(uint16_t port, struct sockaddr_in *sa);

/* Spawns the listener actor on `lfd` (from echo_listen_socket): it
 * accepts connections and spawns one echo actor for each. Stopping it
 * (or the runtime) closes lfd. */
tr_status echo_serve(tr_runtime *rt, int lfd, tr_ref *out);

/* What a load run measured. */
typedef struct echo_report {
    uint64_t messages; /* round trips completed, all verified */
    uint64_t errors;   /* connections that failed (refused, reset, a
                          reply that did not match) */
    double seconds;    /* from the first send to the last reply */
    uint64_t p50_ns;   /* round-trip latency percentiles */
    uint64_t p99_ns;
    uint64_t connect_ms; /* time to open every connection */
} echo_report;

/* Opens `conns` connections to `sa` (from actors on rt), waits until all
 * are open, then each does `msgs` round trips of a 32-byte message (one in
 * flight per connection) and closes. Returns 0 with *out filled, or -1
 * when the run did not finish within `timeout_s` (printed on stderr). */
int echo_load(tr_runtime *rt, const struct sockaddr_in *sa, uint32_t conns,
              uint32_t msgs, uint32_t timeout_s, echo_report *out);

#endif
