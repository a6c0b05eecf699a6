/* pingpong: two actors bounce a message back and forth N times (argv[1],
 * default 1,000,000) and report the time per round trip.
 *
 * The pinger sends PING to the ponger, which answers PONG to whoever sent
 * it; each PONG makes the pinger send the next PING. main() only starts the
 * game and asks the pinger, now and then, whether it is over. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */

#include <troupe/troupe.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { MSG_START = 1, MSG_PING, MSG_PONG, MSG_RESULT };

struct ball {
    uint64_t n; /* which round trip this is, from 1 */
};

struct result {
    uint64_t done;       /* round trips completed */
    uint64_t elapsed_ns; /* first PING to last PONG, once over */
};

struct pinger {
    tr_ref ponger;
    uint64_t rounds;
    uint64_t start_ns;
    struct result r;
};

struct pinger_arg {
    tr_ref ponger;
    uint64_t rounds;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The ponger: answers every PING with a PONG ------------------------- */

struct ponger {
    uint64_t served;
};

static tr_status
on_ping(tr_cx *cx, struct ponger *self, const struct ball *b)
{
    self->served++;
    return tr_send(cx, tr_sender(cx), MSG_PONG, b, sizeof *b);
}

TR_ACTOR(ponger_actor, struct ponger, TR_ON(MSG_PING, struct ball, on_ping));

/* ---- The pinger: serves N times, then records the time ----------------- */

static tr_status
pinger_init(tr_cx *cx, struct pinger *self, const struct pinger_arg *arg)
{
    (void)cx;
    self->ponger = arg->ponger;
    self->rounds = arg->rounds;
    return TR_OK;
}

static tr_status
on_start(tr_cx *cx, struct pinger *self, const void *none)
{
    (void)none;
    self->start_ns = now_ns();
    return tr_send(cx, self->ponger, MSG_PING, &(struct ball){1},
                   sizeof(struct ball));
}

static tr_status
on_pong(tr_cx *cx, struct pinger *self, const struct ball *b)
{
    self->r.done = b->n;
    if (b->n == self->rounds) {
        self->r.elapsed_ns = now_ns() - self->start_ns;
        return TR_OK;
    }
    return tr_send(cx, self->ponger, MSG_PING, &(struct ball){b->n + 1},
                   sizeof(struct ball));
}

static tr_status
on_result(tr_cx *cx, struct pinger *self, const void *none)
{
    (void)none;
    return tr_reply(cx, &self->r, sizeof self->r);
}

TR_ACTOR(pinger_actor, struct pinger,
         TR_ON_INIT(struct pinger_arg, pinger_init),
         TR_ON(MSG_START, void, on_start),
         TR_ON(MSG_PONG, struct ball, on_pong),
         TR_ON(MSG_RESULT, void, on_result));

int
main(int argc, char **argv)
{
    uint64_t rounds = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    struct pinger_arg arg = {TR_NOREF, rounds};
    tr_spawn_opts opts = {.arg = &arg, .arg_len = sizeof arg};
    struct result r = {0};
    tr_runtime *rt;
    tr_ref pinger;
    tr_status st;

    if (rounds == 0) {
        fprintf(stderr, "usage: %s [round trips > 0]\n", argv[0]);
        return 2;
    }
    if (tr_runtime_new(&rt, NULL) != TR_OK) {
        return 1;
    }
    st = tr_spawn(rt, &ponger_actor, NULL, &arg.ponger);
    if (st == TR_OK) {
        st = tr_spawn(rt, &pinger_actor, &opts, &pinger);
    }
    if (st == TR_OK) {
        st = tr_send(rt, pinger, MSG_START, NULL, 0);
    }
    /* Ask for the score every 10 ms until the game is over (or stuck for
     * five seconds, which would be a bug). */
    for (int idle = 0; st == TR_OK && r.done < rounds; idle++) {
        uint64_t before = r.done;

        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        st = tr_ask_wait(rt, pinger, MSG_RESULT, NULL, 0, &r, sizeof r, 5000);
        if (r.done != before) {
            idle = 0;
        } else if (idle == 500) {
            st = TR_ETIMEDOUT;
        }
    }
    tr_runtime_destroy(&rt);
    if (st != TR_OK) {
        fprintf(stderr, "pingpong: %s\n", tr_strerror(st));
        return 1;
    }
    printf("round trips: %" PRIu64 "\n", r.done);
    printf("elapsed:     %.1f ms\n", (double)r.elapsed_ns / 1e6);
    printf("round trip:  %.0f ns (%.0f messages/s)\n",
           (double)r.elapsed_ns / (double)r.done,
           2e9 * (double)r.done / (double)r.elapsed_ns);
    return 0;
}
