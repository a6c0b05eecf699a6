/* download: N pages fetched at once from a local HTTP server, once with a
 * thread per download and once with an actor per download. What main.c,
 * http.c, server.c, threads.c and actors.c share. */
#ifndef DOWNLOAD_H
#define DOWNLOAD_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <troupe/troupe.h>

/* Bytes one read or write moves at most. Both clients read into a buffer
 * of this size: each thread on its own stack, each actor on the stack of
 * the worker that runs it. */
#define IO_CHUNK 16384

/* Longest request or response header either side accepts (this server's
 * response header is about 90 bytes, the clients' request about 70). */
#define HTTP_HEAD_MAX 256

/* ---- Pages and HTTP (http.c) ------------------------------------------- */

/* Writes bytes [off, off + len) of page `page`'s body to buf. Every page is
 * hex text that depends on its number and on the position, so a byte from
 * another page or another offset does not pass page_check(). */
void page_fill(uint32_t page, uint64_t off, char *buf, size_t len);

/* True when buf holds bytes [off, off + len) of page `page`'s body. */
bool page_check(uint32_t page, uint64_t off, const char *buf, size_t len);

/* Writes the request for page `page` ("GET /page/<page> HTTP/1.1", with
 * Connection: close) to buf, which has room for HTTP_HEAD_MAX bytes;
 * returns its length. */
size_t http_request(uint32_t page, char *buf);

/* Parses a request header (n bytes through its blank line; n = 0 for one
 * too long to read) and writes the header of the response to out
 * (HTTP_HEAD_MAX bytes): 200 for GET /page/<i> (with *page = i and a body
 * of page_bytes), else 404 or 400 with no body. Returns the header's
 * length; *body is the body's. */
size_t http_respond(const char *req, size_t n, uint64_t page_bytes, char *out,
                    uint32_t *page, uint64_t *body);

/* A response being received and checked, byte by byte as it comes. */
struct http_resp {
    uint32_t page;   /* the page asked for */
    uint64_t want;   /* its size */
    uint64_t length; /* the Content-Length, once the header is in */
    uint64_t got;    /* body bytes received, all checked */
    uint16_t nhead;  /* header bytes in head[] */
    bool in_body;    /* the header is complete */
    char head[HTTP_HEAD_MAX + 1];
};

void http_resp_init(struct http_resp *r, uint32_t page, uint64_t want);

/* Takes the next n bytes of the response. Returns NULL, or what is wrong
 * with it (a constant string). */
const char *http_resp_feed(struct http_resp *r, const char *buf, size_t n);

/* At the end of the stream: NULL when the response was a complete 200
 * whose body is the page asked for, else what is wrong. */
const char *http_resp_end(const struct http_resp *r);

/* ---- The server (server.c) --------------------------------------------- */

/* A socket an actor watches. It comes first in the state of each actor
 * here, so that one terminate hook serves them all. */
struct sock {
    int fd; /* -1: none */
    tr_watch w;
};

/* Unwatches and closes the socket, then ends the actor (tr_exit). Closing
 * before the handler returns matters: a level watch re-arms after the
 * handler, and a descriptor still ready (at end of file, or with room to
 * write) would send the ending actor a readiness message, a dead letter. */
tr_status sock_exit(tr_cx *cx, struct sock *s);

/* The terminate hook of those actors: unwatches and closes the socket. */
tr_status sock_term(tr_cx *cx, struct sock *self, const tr_reason *why);

/* Spawns on rt the listener actor for `lfd` (a nonblocking listening
 * socket): it accepts connections and spawns one actor for each, which
 * reads a request, waits delay_ms (the latency of a server across a
 * network), writes the response and closes. Stopping it (or the runtime)
 * closes lfd. */
tr_status http_serve(tr_runtime *rt, int lfd, uint64_t page_bytes,
                     uint32_t delay_ms, tr_ref *out);

/* ---- The clients (threads.c, actors.c) --------------------------------- */

/* What one client run did. Plain data: a child process writes it to a
 * pipe for its parent. */
struct fetch_report {
    uint32_t ok;          /* pages received complete and verified */
    uint32_t failed;      /* downloads that started and failed */
    uint32_t not_started; /* threads that could not be created */
    int start_error;      /* pthread_create's error for those */
    double seconds;       /* from the first start to the last finish */
    uint64_t stack_bytes; /* threads: the default stack size used */
    uint32_t workers;     /* actors: the runtime's worker threads */
    uint32_t in_flight;   /* most downloads under way at once */
    uint64_t base_kb;     /* resident set before the run (VmRSS) */
    uint64_t hwm_kb;      /* peak resident set (VmHWM) */
    uint64_t vpeak_kb;    /* peak virtual size (VmPeak) */
    char error[128];      /* the first failure, "" when none */
};

/* Seconds a client waits for any one download before giving up. */
#define FETCH_TIMEOUT_S 120

/* Fetches pages 0..n-1 (page_bytes each) from sa, all at once: a thread
 * per page with the default thread attributes (threads.c), or an actor
 * per page on a runtime of its own (actors.c). Fills *out; returns 0 when
 * every page came and was verified, else 1. */
int fetch_threads(const struct sockaddr_in *sa, uint32_t n, uint64_t page_bytes,
                  struct fetch_report *out);
int fetch_actors(const struct sockaddr_in *sa, uint32_t n, uint64_t page_bytes,
                 struct fetch_report *out);

/* ---- main.c ------------------------------------------------------------ */

/* Records a failure in out->error unless one is there already: `what`,
 * and strerror(err) when err is not 0. Not thread-safe. */
void report_error(struct fetch_report *out, const char *what, int err);

/* Seconds on the monotonic clock. */
double now_s(void);

/* Counts the downloads under way and their peak; any thread may call. */
struct flight {
    _Atomic uint32_t now, peak;
};
void flight_begin(struct flight *f);
void flight_end(struct flight *f);

#endif
