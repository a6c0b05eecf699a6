/* counter: the smallest troupe program. An actor keeps a running total;
 * main() sends it 1..100 and asks for the result. */
#include <troupe/troupe.h>
#include <stdio.h>

enum { MSG_ADD = 1, MSG_GET };
struct add {
    long n;
};
struct counter {
    long total;
};

static tr_status
on_add(tr_cx *cx, struct counter *self, const struct add *m)
{
    (void)cx;
    self->total += m->n;
    return TR_OK;
}

static tr_status
on_get(tr_cx *cx, struct counter *self, const void *none)
{
    (void)none;
    return tr_reply(cx, &self->total, sizeof self->total);
}

TR_ACTOR(counter_actor, struct counter, TR_ON(MSG_ADD, struct add, on_add),
         TR_ON(MSG_GET, void, on_get));

int
main(void)
{
    tr_runtime *rt;
    tr_ref c;
    long total;
    tr_status st;

    if (tr_runtime_new(&rt, NULL) != TR_OK) { /* NULL: a worker per core */
        return 1;
    }
    tr_spawn(rt, &counter_actor, NULL, &c); /* default bounded mailbox */
    for (long i = 1; i <= 100; i++) {
        tr_send(rt, c, MSG_ADD, &(struct add){i}, sizeof(struct add));
    }
    st = tr_ask_wait(rt, c, MSG_GET, NULL, 0, &total, sizeof total,
                     1000 /* ms */);
    if (st != TR_OK) {
        fprintf(stderr, "ask: %s\n", tr_strerror(st));
        tr_runtime_destroy(&rt);
        return 1;
    }
    printf("%ld\n", total);  /* 5050 */
    tr_runtime_destroy(&rt); /* drains, stops, frees */
    return 0;
}
