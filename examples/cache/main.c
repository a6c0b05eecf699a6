/* cache: a cache actor in front of a slow database whose queries run on
 * the blocking pool, with deadlines end to end.
 *
 *   clients --ask (deadline)--> cache --miss: forward--> db[key % DBS]
 *      ^                          |  ^                     |
 *      +------ reply (hit) -------+  +------- fill --------+
 *      +------------------ reply (miss) ------------------+
 *
 * - Clients ask the cache with TR_AWAIT_ASK and a deadline, and check every
 *   value they get.
 * - The cache never waits: a hit is answered at once; a miss is forwarded
 *   (tr_forward) to a database actor, which answers the client directly and
 *   sends the cache the value to keep. So a slow miss holds up no hit.
 * - A database actor is one connection: it awaits its query on the blocking
 *   pool (TR_AWAIT_JOB), one at a time. The query inherits what is left of
 *   the client's deadline: a query still queued when the client has given up
 *   is not run at all (tr_stats.expired), and a client that gave up gets
 *   TR_ETIMEDOUT, never a stray late value (tr_stats.late_replies).
 *
 * Usage: cache [clients [requests_each [query_ms [keys]]]]
 * Exits non-zero if any value is wrong or a request is unaccounted for. */
#include <troupe/troupe.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MSG_GET = 1, MSG_FILL, MSG_RUN, MSG_RESULT };

#define DBS      4u    /* database connections */
#define SLOTS    4096u /* cache entries (direct-mapped) */
#define DEADLINE 100u  /* ms a client waits for one value */
#define CLIENTS  8u
#define REQUESTS 500u
#define QUERY_MS 4u
#define KEYS     400u

/* The database's truth: what a query for `key` returns. */
static uint64_t
truth(uint32_t key)
{
    return (uint64_t)key * 2654435761u + 7;
}

static uint32_t g_query_ms = QUERY_MS;

/* ---- The database: one actor per connection ---------------------------- */

struct query {
    uint32_t key;
};

struct fill {
    uint32_t key;
    uint64_t value;
};

struct db {
    tr_ref cache;
    struct query q; /* the query in flight: the job's argument */
    uint64_t value; /* its result */
};

/* Runs on a pool thread: a slow lookup. */
static void
slow_query(void *arg, tr_blocking_result *out)
{
    struct query *q = arg;
    static _Thread_local uint64_t result;
    struct timespec ts = {0, (long)(g_query_ms + q->key % 3) * 1000000L};

    nanosleep(&ts, NULL);
    result = truth(q->key);
    out->data = &result;
    out->len = sizeof result;
}

static tr_status
db_init(tr_cx *cx, struct db *self, const tr_ref *cache)
{
    (void)cx;
    self->cache = *cache;
    return TR_OK;
}

static tr_status
db_load(tr_cx *cx, struct db *self, const struct query *q)
{
    TR_ASYNC_BEGIN(cx);
    self->q = *q;
    TR_AWAIT_JOB(cx, slow_query, &self->q, &self->value, sizeof self->value,
                 1000);
    if (tr_await_status(cx) != TR_OK) {
        return tr_reply_error(cx, tr_await_status(cx));
    }
    (void)tr_send(cx, self->cache, MSG_FILL,
                  &(struct fill){self->q.key, self->value},
                  sizeof(struct fill));
    TR_ASYNC_END(cx, tr_reply(cx, &self->value, sizeof self->value));
}

TR_ACTOR(db_actor, struct db, TR_ON_INIT(tr_ref, db_init),
         TR_ON(MSG_GET, struct query, db_load)); /* forwarded misses */

/* ---- The cache --------------------------------------------------------- */

struct entry {
    uint32_t key; /* key + 1; 0: empty */
    uint64_t value;
};

struct cache {
    tr_ref db[DBS];
    uint64_t hits, misses, fills;
    struct entry slots[SLOTS];
};

/* The cache opens its database connections: each knows the cache (to fill
 * it) by its init argument. */
static tr_status
cache_init(tr_cx *cx, struct cache *self, const void *none)
{
    tr_ref me = tr_self(cx);
    tr_spawn_opts o = {.arg = &me, .arg_len = sizeof me};

    (void)none;
    for (uint32_t i = 0; i < DBS; i++) {
        tr_status st = tr_spawn(cx, &db_actor, &o, &self->db[i]);

        if (st != TR_OK) {
            return st; /* the cache fails to start */
        }
    }
    return TR_OK;
}

static tr_status
cache_get(tr_cx *cx, struct cache *self, const struct query *q)
{
    struct entry *e = &self->slots[q->key % SLOTS];

    if (e->key == q->key + 1) {
        self->hits++;
        return tr_reply(cx, &e->value, sizeof e->value);
    }
    /* A miss: the database answers the client itself. */
    self->misses++;
    return tr_forward(cx, self->db[q->key % DBS]);
}

static tr_status
cache_fill(tr_cx *cx, struct cache *self, const struct fill *f)
{
    struct entry *e = &self->slots[f->key % SLOTS];

    (void)cx;
    e->key = f->key + 1;
    e->value = f->value;
    self->fills++;
    return TR_OK;
}

static tr_status
cache_result(tr_cx *cx, struct cache *self, const void *none)
{
    uint64_t r[3] = {self->hits, self->misses, self->fills};

    (void)none;
    return tr_reply(cx, r, sizeof r);
}

TR_ACTOR(cache_actor, struct cache, TR_ON_INIT(void, cache_init),
         TR_ON(MSG_GET, struct query, cache_get),
         TR_ON(MSG_FILL, struct fill, cache_fill),
         TR_ON(MSG_RESULT, void, cache_result));

/* ---- Clients ----------------------------------------------------------- */

struct tally {
    uint64_t ok, wrong, timed_out, other;
};

struct client {
    tr_ref cache;
    uint32_t left, keys;
    uint64_t rng;
    struct query q;
    uint64_t value;
    struct tally t;
};

struct client_arg {
    tr_ref cache;
    uint32_t seed, requests, keys;
};

static tr_status
client_init(tr_cx *cx, struct client *self, const struct client_arg *a)
{
    (void)cx;
    self->cache = a->cache;
    self->rng = a->seed * 0x9e3779b97f4a7c15u + 1;
    self->left = a->requests;
    self->keys = a->keys;
    return TR_OK;
}

/* Keys are skewed: most requests go to a few hot keys. */
static uint32_t
next_key(struct client *self)
{
    uint64_t r;

    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    r = self->rng;
    return (uint32_t)((r % self->keys) * (r % self->keys) / self->keys);
}

static tr_status
client_run(tr_cx *cx, struct client *self, const void *none)
{
    (void)none;
    TR_ASYNC_BEGIN(cx);
    for (; self->left > 0; self->left--) {
        self->q.key = next_key(self);
        TR_AWAIT_ASK(cx, self->cache, MSG_GET, &self->q, sizeof self->q,
                     &self->value, sizeof self->value, DEADLINE);
        if (tr_await_status(cx) == TR_OK) {
            self->t.ok++;
            self->t.wrong += self->value != truth(self->q.key);
        } else if (tr_await_status(cx) == TR_ETIMEDOUT) {
            self->t.timed_out++;
        } else {
            self->t.other++;
        }
    }
    TR_ASYNC_END(cx, TR_OK);
}

/* Queued behind MSG_RUN, whose handler is suspended at each ask: it runs
 * once the client is done. */
static tr_status
client_result(tr_cx *cx, struct client *self, const void *none)
{
    (void)none;
    return tr_reply(cx, &self->t, sizeof self->t);
}

TR_ACTOR(client_actor, struct client,
         TR_ON_INIT(struct client_arg, client_init),
         TR_ON(MSG_RUN, void, client_run),
         TR_ON(MSG_RESULT, void, client_result));

/* ---- main -------------------------------------------------------------- */

static uint32_t
arg_or(int argc, char **argv, int i, uint32_t def)
{
    return argc > i ? (uint32_t)strtoul(argv[i], NULL, 10) : def;
}

int
main(int argc, char **argv)
{
    uint32_t nclients = arg_or(argc, argv, 1, CLIENTS);
    uint32_t requests = arg_or(argc, argv, 2, REQUESTS);
    uint32_t keys = arg_or(argc, argv, 4, KEYS);
    tr_runtime *rt = NULL;
    tr_ref cache, *clients;
    struct tally sum = {0};
    uint64_t cs[3] = {0};
    uint64_t t0, t1;
    struct timespec ts;
    tr_stats st;
    int failed = 0;

    g_query_ms = arg_or(argc, argv, 3, QUERY_MS);
    clients =
        nclients > 0 && keys > 0 ? calloc(nclients, sizeof *clients) : NULL;
    if (clients == NULL || tr_runtime_new(&rt, NULL) != TR_OK ||
        tr_spawn(rt, &cache_actor, NULL, &cache) != TR_OK) {
        fprintf(stderr,
                "usage: cache [clients [requests [query_ms [keys]]]]\n");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    for (uint32_t i = 0; i < nclients; i++) {
        struct client_arg a = {cache, i + 1, requests, keys};
        tr_spawn_opts o = {.arg = &a, .arg_len = sizeof a};

        if (tr_spawn(rt, &client_actor, &o, &clients[i]) != TR_OK ||
            tr_send(rt, clients[i], MSG_RUN, NULL, 0) != TR_OK) {
            fprintf(stderr, "cannot start client %u\n", i);
            return 1;
        }
    }
    /* Each answer comes once that client has made all its requests. */
    for (uint32_t i = 0; i < nclients; i++) {
        struct tally t;
        tr_status s = tr_ask_wait(rt, clients[i], MSG_RESULT, NULL, 0, &t,
                                  sizeof t, 120000);

        if (s != TR_OK) {
            fprintf(stderr, "client %u: %s\n", i, tr_strerror(s));
            failed = 1;
            continue;
        }
        sum.ok += t.ok;
        sum.wrong += t.wrong;
        sum.timed_out += t.timed_out;
        sum.other += t.other;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t1 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (tr_ask_wait(rt, cache, MSG_RESULT, NULL, 0, cs, sizeof cs, 10000) !=
        TR_OK) {
        failed = 1;
    }
    tr_runtime_stats(rt, &st);

    printf("%u clients x %u requests over %u keys, %u ms queries on %u "
           "connections, %u ms deadline: %.2f s\n",
           nclients, requests, keys, g_query_ms, DBS, DEADLINE,
           (double)(t1 - t0) / 1e9);
    printf("answers    ok %" PRIu64 " (wrong %" PRIu64 "), timed out %" PRIu64
           ", other errors %" PRIu64 "\n",
           sum.ok, sum.wrong, sum.timed_out, sum.other);
    printf("cache      hits %" PRIu64 ", misses %" PRIu64 ", fills %" PRIu64
           "\n",
           cs[0], cs[1], cs[2]);
    printf("database   queries run %" PRIu64 ", expired unrun %" PRIu64
           ", late results dropped %" PRIu64 "\n",
           st.jobs_run, st.expired, st.late_replies);

    /* The account: every request answered once, every value right. */
    if (sum.wrong != 0 || sum.other != 0 ||
        sum.ok + sum.timed_out != (uint64_t)nclients * requests ||
        cs[0] + cs[1] != (uint64_t)nclients * requests) {
        fprintf(stderr, "FAIL: the account does not balance\n");
        failed = 1;
    }
    tr_runtime_destroy(&rt);
    free(clients);
    return failed;
}
