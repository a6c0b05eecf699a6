/* mailbox: what happens when a mailbox is full, under each of the five
 * overflow policies.
 *
 * For each policy a fresh one-worker runtime runs two actors: a receiver
 * with a mailbox of CAPACITY and that policy, and a sender that sends it
 * FLOOD numbered messages. One worker makes it deterministic: the sender's
 * handler runs to completion before the receiver can run, so the receiver's
 * mailbox is full after CAPACITY sends.
 *
 * The sender follows the backpressure rule: when a send returns TR_PENDING
 * (accepted, held in its outbox; it is muted after this handler), it stops
 * and sends itself MSG_FLOOD to continue once the receiver has made room. */
#include <troupe/troupe.h>
#include <stdatomic.h>
#include <stdio.h>

#define CAPACITY 4
#define FLOOD    10

enum { MSG_ITEM = 1, MSG_FLOOD };

/* What one policy did. The actors fill it in (the receiver from its
 * terminate hook); main() reads it once tr_runtime_destroy() has returned,
 * when no actor runs any more. */
struct report {
    unsigned ok, pending, efull, dropped; /* what the sender's sends returned */
    unsigned handled;                     /* items the receiver handled */
    unsigned first, last;                 /* lowest and highest of those */
    tr_reason exit;                       /* why the receiver ended */
    atomic_uint dl_dropped, dl_dead;      /* dead letters, by reason */
};

/* Dead-letter callback: any thread, must not block, so atomics only. */
static void
on_dead_letter(void *arg, const tr_dead_letter *dl)
{
    struct report *rep = arg;

    if (dl->type != MSG_ITEM) {
        return;
    }
    if (dl->reason == TR_DROPPED) {
        atomic_fetch_add_explicit(&rep->dl_dropped, 1, memory_order_relaxed);
    } else if (dl->reason == TR_EDEAD) {
        atomic_fetch_add_explicit(&rep->dl_dead, 1, memory_order_relaxed);
    }
}

/* ---- The receiver ------------------------------------------------------ */

struct receiver {
    struct report *rep;
    unsigned handled, first, last;
};

struct receiver_arg {
    struct report *rep;
};

static tr_status
receiver_init(tr_cx *cx, struct receiver *self, const struct receiver_arg *a)
{
    (void)cx;
    self->rep = a->rep;
    return TR_OK;
}

static tr_status
on_item(tr_cx *cx, struct receiver *self, const unsigned *seq)
{
    (void)cx;
    if (self->handled++ == 0) {
        self->first = *seq;
    }
    self->last = *seq;
    return TR_OK;
}

static tr_status
receiver_end(tr_cx *cx, struct receiver *self, const tr_reason *why)
{
    (void)cx;
    self->rep->handled = self->handled;
    self->rep->first = self->first;
    self->rep->last = self->last;
    self->rep->exit = *why;
    return TR_OK;
}

TR_ACTOR(receiver_actor, struct receiver,
         TR_ON_INIT(struct receiver_arg, receiver_init),
         TR_ON(MSG_ITEM, unsigned, on_item), TR_ON_TERMINATE(receiver_end));

/* ---- The sender -------------------------------------------------------- */

struct sender_arg {
    tr_ref to;
    struct report *rep;
};

struct sender {
    struct sender_arg a;
    unsigned next; /* the next item to send */
};

static tr_status
sender_init(tr_cx *cx, struct sender *self, const struct sender_arg *arg)
{
    (void)cx;
    self->a = *arg;
    return TR_OK;
}

static tr_status
on_flood(tr_cx *cx, struct sender *self, const void *none)
{
    struct report *rep = self->a.rep;

    (void)none;
    while (self->next < FLOOD) {
        tr_status st =
            tr_send(cx, self->a.to, MSG_ITEM, &self->next, sizeof self->next);

        self->next++;
        switch (st) {
        case TR_OK: /* queued */
            rep->ok++;
            break;
        case TR_PENDING: /* held; stop now, go on once delivered */
            rep->pending++;
            return tr_send(cx, tr_self(cx), MSG_FLOOD, NULL, 0);
        case TR_EFULL: /* reject: not sent, ours to retry or give up */
            rep->efull++;
            break;
        case TR_DROPPED: /* drop or fail: it went to dead letters */
            rep->dropped++;
            break;
        default:
            return st; /* a failure: the sender fails with it */
        }
    }
    return TR_OK;
}

TR_ACTOR(sender_actor, struct sender,
         TR_ON_INIT(struct sender_arg, sender_init),
         TR_ON(MSG_FLOOD, void, on_flood));

/* ---- One policy, then all of them -------------------------------------- */

static tr_status
run(tr_overflow policy, struct report *rep)
{
    tr_config cfg = {
        .workers = 1, .dead_letter_fn = on_dead_letter, .dead_letter_arg = rep};
    struct receiver_arg ra = {rep};
    tr_mailbox_opts mailbox = {CAPACITY, policy};
    tr_spawn_opts ropts = {
        .arg = &ra, .arg_len = sizeof ra, .mailbox = &mailbox};
    struct sender_arg sa = {.rep = rep};
    tr_spawn_opts sopts = {.arg = &sa, .arg_len = sizeof sa};
    tr_runtime *rt;
    tr_ref sender;
    tr_status st;

    st = tr_runtime_new(&rt, &cfg);
    if (st != TR_OK) {
        return st;
    }
    st = tr_spawn(rt, &receiver_actor, &ropts, &sa.to);
    if (st == TR_OK) {
        st = tr_spawn(rt, &sender_actor, &sopts, &sender);
    }
    if (st == TR_OK) {
        st = tr_send(rt, sender, MSG_FLOOD, NULL, 0);
    }
    /* Lets the actors finish what is queued, then stops them; the
     * receiver's terminate hook fills in the rest of the report. */
    tr_runtime_destroy(&rt);
    return st;
}

int
main(void)
{
    static const struct {
        tr_overflow policy;
        const char *name;
    } policies[] = {
        {TR_BACKPRESSURE, "backpressure"},
        {TR_REJECT, "reject"},
        {TR_DROP_NEWEST, "drop newest"},
        {TR_DROP_OLDEST, "drop oldest"},
        {TR_FAIL, "fail"},
    };

    printf("A receiver with room for %d; an actor sends it items #0-#%d at "
           "once.\n\n",
           CAPACITY, FLOOD - 1);
    printf("%-13s %s\n", "", "what tr_send() returned");
    printf("%-13s %3s %7s %5s %7s   %-9s %-21s %s\n", "policy", "OK", "PENDING",
           "EFULL", "DROPPED", "handled", "dead letters", "receiver ended");
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        struct report rep = {0};
        char handled[40] = "0", dead[48] = "none";
        unsigned dropped, gone;
        tr_status st = run(policies[i].policy, &rep);

        if (st != TR_OK) {
            fprintf(stderr, "%s: %s\n", policies[i].name, tr_strerror(st));
            return 1;
        }
        if (rep.handled > 0) {
            snprintf(handled, sizeof handled, "%u #%u-#%u", rep.handled,
                     rep.first, rep.last);
        }
        dropped = atomic_load(&rep.dl_dropped);
        gone = atomic_load(&rep.dl_dead);
        if (dropped > 0 && gone > 0) {
            snprintf(dead, sizeof dead, "%u DROPPED, %u EDEAD", dropped, gone);
        } else if (dropped > 0) {
            snprintf(dead, sizeof dead, "%u DROPPED", dropped);
        }
        printf("%-13s %3u %7u %5u %7u   %-9s %-21s %s\n", policies[i].name,
               rep.ok, rep.pending, rep.efull, rep.dropped, handled, dead,
               rep.exit.kind == TR_EXIT_OVERLOAD ? "overload" : "shutdown");
    }
    return 0;
}
