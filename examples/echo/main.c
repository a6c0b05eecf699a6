/* echo: a TCP echo server with one actor per connection, and a load client
 * that is actors too.
 *
 *   echo [run [CONNS [MSGS]]]        server and client in one process
 *                                    (default 100 connections x 100)
 *   echo server [PORT]               serve on 127.0.0.1:PORT until SIGINT
 *   echo client PORT CONNS MSGS      load a server on 127.0.0.1:PORT
 *
 * Each client connection sends a 32-byte message, waits for its echo,
 * checks it and sends the next, MSGS times. The client prints round trips
 * per second and the latency's median and 99th percentile; it exits 0 only
 * when every round trip was verified and no connection failed. */
#define _POSIX_C_SOURCE 200809L /* sigwait */

#include "echo.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Descriptors the process needs besides the connections'. */
#define FD_SPARE 64

static int
usage(void)
{
    fprintf(stderr, "usage: echo [run [CONNS [MSGS]]]\n"
                    "       echo server [PORT]\n"
                    "       echo client PORT CONNS MSGS\n");
    return 2;
}

static int
number(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    *out = strtoul(s, &end, 10);
    return *s != '\0' && *end == '\0' && *out <= max ? 0 : -1;
}

static int
report(tr_runtime *rt, const struct sockaddr_in *sa, uint32_t conns,
       uint32_t msgs)
{
    echo_report r;

    if (echo_load(rt, sa, conns, msgs, 600, &r) != 0) {
        return 1;
    }
    printf("connections: %u opened in %llu ms\n", conns,
           (unsigned long long)r.connect_ms);
    printf("round trips: %llu in %.3f s (%.0f/s)\n",
           (unsigned long long)r.messages, r.seconds,
           (double)r.messages / r.seconds);
    printf("latency:     median %.1f us, p99 %.1f us\n", r.p50_ns / 1e3,
           r.p99_ns / 1e3);
    if (r.errors != 0 || r.messages != (uint64_t)conns * msgs) {
        fprintf(stderr,
                "echo: %llu connections failed, %llu of %llu round "
                "trips done\n",
                (unsigned long long)r.errors, (unsigned long long)r.messages,
                (unsigned long long)conns * msgs);
        return 1;
    }
    return 0;
}

static int
serve(uint16_t port, tr_runtime *rt, tr_ref *listener, struct sockaddr_in *sa)
{
    int lfd = echo_listen_socket(port, sa);
    tr_status st;

    if (lfd < 0) {
        perror("echo: listen");
        return -1;
    }
    st = echo_serve(rt, lfd, listener);
    if (st != TR_OK) {
        fprintf(stderr, "echo: %s\n", tr_strerror(st));
        close(lfd);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "run";
    unsigned long port = 0, conns = 100, msgs = 100;
    struct sockaddr_in sa;
    tr_runtime *server = NULL, *client = NULL;
    tr_ref listener;
    int rc = 1;

    if (strcmp(mode, "run") == 0) {
        if ((argc > 2 && number(argv[2], 1000000, &conns) != 0) ||
            (argc > 3 && number(argv[3], 1u << 30, &msgs) != 0) || argc > 4) {
            return usage();
        }
        if (echo_raise_nofile(2 * conns + FD_SPARE) != 0) {
            return 1;
        }
        if (tr_runtime_new(&server, NULL) != TR_OK ||
            tr_runtime_new(&client, NULL) != TR_OK ||
            serve(0, server, &listener, &sa) != 0) {
            goto out;
        }
        rc = report(client, &sa, (uint32_t)conns, (uint32_t)msgs);
    } else if (strcmp(mode, "server") == 0) {
        sigset_t set;
        int sig;

        if ((argc > 2 && number(argv[2], 65535, &port) != 0) || argc > 3) {
            return usage();
        }
        if (echo_raise_nofile(FD_SPARE) != 0) {
            return 1;
        }
        /* Block the signals before the runtime's threads start, so they
         * inherit the mask and only sigwait() below sees them. */
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (tr_runtime_new(&server, NULL) != TR_OK ||
            serve((uint16_t)port, server, &listener, &sa) != 0) {
            goto out;
        }
        printf("listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
        fflush(stdout);
        sigwait(&set, &sig);
        rc = 0;
    } else if (strcmp(mode, "client") == 0) {
        if (argc != 5 || number(argv[2], 65535, &port) != 0 ||
            number(argv[3], 1000000, &conns) != 0 ||
            number(argv[4], 1u << 30, &msgs) != 0) {
            return usage();
        }
        if (echo_raise_nofile(conns + FD_SPARE) != 0) {
            return 1;
        }
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (tr_runtime_new(&client, NULL) != TR_OK) {
            goto out;
        }
        rc = report(client, &sa, (uint32_t)conns, (uint32_t)msgs);
    } else {
        return usage();
    }
out:
    tr_runtime_destroy(&client);
    tr_runtime_destroy(&server); /* stops the listener and every connection */
    return rc;
}
