/* Supervised children: what happens in the child when it fails or ends.
 *
 * A child's record (tr__child, in its ext) comes from its supervisor at
 * spawn. When the child is about to end, tr__child_intercept decides in the
 * child's own turn, so nothing is lost in between:
 * - a normal end: a permanent child restarts; others end;
 * - a failure: the decider's directive (default: restart; temporary
 *   children stop);
 * - killed, shut down, drained by its supervisor: it ends.
 * Restart in place: the terminate hook runs, the state is zeroed, and the
 * child is "down": it takes no user message (they wait in its mailbox, up
 * to capacity) until its supervisor sends TR__SYS_RESTART, after its
 * backoff; then its init hook runs again with the kept argument, and the
 * message it failed on (kept when `retry` > 0) is handed to it first. After
 * `retry` failures on the same message, that message is quarantined:
 * dead-lettered with TR_EPOISON (its asker answered so). Every step is
 * reported to the supervisor as a TR_MSG_CHILD notice. */
#include "actors/core.h"

#include <string.h>

tr__child *
tr__child_new(tr_ref sup, uint32_t index, const tr_child_spec *cs,
              const void *arg, size_t len)
{
    tr__child *c = tr__calloc(1, sizeof *c + len);

    if (c == NULL) {
        return NULL;
    }
    c->sup = sup;
    c->index = index;
    c->restart = cs->restart;
    c->decider = cs->decider;
    c->decider_arg = cs->decider_arg;
    c->retry = cs->retry;
    c->arg_len = len;
    if (len > 0) {
        memcpy(c->arg, arg, len);
    }
    return c;
}

/* A TR_MSG_CHILD notice about this child, to `to`. */
static void
note(tr_cx *cx, tr_ref to, uint32_t what, uint32_t directive)
{
    tr__child *c = cx->own->ext->child;
    tr__child_note n = {tr_self(cx), c->index, what, directive, cx->reason};

    tr__notice(cx->rt, to, TR_MSG_CHILD, &n, sizeof n);
}

/* Drops the kept message: dead-lettered with `why` (its asker answered). */
static void
drop_kept(tr_cx *cx, tr_status why)
{
    tr__child *c = cx->own->ext->child;

    if (c->poison != NULL) {
        tr__dead_letter(cx->rt, c->poison, why);
        c->poison = NULL;
        c->attempts = 0;
    }
}

bool
tr__child_finish(tr_cx *cx, tr__msg *m, tr_status st)
{
    tr__child *c = cx->own->ext->child;
    tr_reason why = {TR_EXIT_FAILED, st, ""};

    if (st >= 0) {
        if (m == c->retrying) {
            c->attempts = 0; /* it went through this time */
        }
        return false;
    }
    if (c->draining) {
        return false; /* it ends for good: as any actor */
    }
    snprintf(why.text, sizeof why.text, "handler for type %u returned %s",
             m->type, tr_status_name(st));
    tr__exit_with(cx, &why);
    if (c->retry == 0 || cx->replied) {
        /* Not retried: a dead letter (its asker told TR_EFAILED), unless
         * it was answered before the failure. */
        if (cx->replied) {
            tr__msg_free(cx->rt, m);
        } else {
            tr__dead_letter(cx->rt, m, TR_EFAILED);
        }
        return true;
    }
    /* Kept, unanswered, for the restart to come (or dropped then). */
    c->attempts = m == c->retrying ? c->attempts + 1 : 1;
    c->poison = m;
    return true;
}

/* The directive for the child's end, as its spec says. */
static tr_directive
decide(const tr__child *c, const tr_reason *why)
{
    tr_directive d;

    if (why->kind == TR_EXIT_NORMAL) {
        return c->restart == TR_PERMANENT ? TR_RESTART : TR_STOP;
    }
    d = c->decider ? c->decider(c->decider_arg, why) : TR_RESTART;
    if (d == TR_RESTART && c->restart == TR_TEMPORARY) {
        d = TR_STOP;
    }
    return d;
}

/* Terminates the running incarnation: hook, zeroed state. */
static void
terminate(tr_cx *cx)
{
    tr__run_terminate(cx);
    memset(cx->state, 0, cx->own->beh->state_size);
}

/* Runs the init hook again with the kept argument; false when it failed
 * (the child is then ending). */
static bool
init_again(tr_cx *cx, tr__child *c)
{
    tr__msg init = {0};

    init.to = tr_self(cx);
    init.from = c->sup;
    init.data = c->arg;
    init.len = (uint32_t)c->arg_len;
    tr__run_init(cx, &init);
    return !(cx->own->lflags & TR__L_ENDING);
}

bool
tr__child_intercept(tr_cx *cx)
{
    tr__child *c = cx->own->ext->child;
    tr_exit_kind k = cx->reason.kind;
    tr_directive d;

    if (c->draining || k == TR_EXIT_KILLED || k == TR_EXIT_SHUTDOWN) {
        return false; /* ended by its supervisor or the runtime */
    }
    d = decide(c, &cx->reason);
    switch (d) {
    case TR_RESUME:
        drop_kept(cx, TR_EFAILED);
        cx->own->lflags &= (uint8_t)~TR__L_ENDING;
        return true;
    case TR_RESTART:
        if (c->poison != NULL && c->attempts > c->retry) {
            drop_kept(cx, TR_EPOISON); /* quarantined; the child goes on */
        }
        terminate(cx);
        cx->own->lflags &= (uint8_t)~TR__L_ENDING;
        if (c->self_restart) {
            note(cx, c->sup, TR__CHILD_RESTARTED, TR_RESTART);
            if (!init_again(cx, c)) {
                c->directive = TR_STOP; /* its init fails: it ends */
                return false;
            }
            return true;
        }
        c->down = true;
        note(cx, c->sup, TR__CHILD_DOWN, TR_RESTART);
        return true;
    default: /* TR_STOP, TR_ESCALATE */
        drop_kept(cx, TR_EFAILED);
        c->directive = d;
        return false;
    }
}

void
tr__child_sys(tr_cx *cx, const tr__msg *m)
{
    static const tr_reason drained = {TR_EXIT_SHUTDOWN, 0, "drained"};
    tr__actor *a = cx->self;
    tr__child *c = tr__more(cx->own) ? cx->own->ext->child : NULL;

    if (c == NULL || (cx->own->lflags & TR__L_ENDING)) {
        return; /* not supervised (never sent), or ending anyway */
    }
    switch (m->type) {
    case TR__SYS_RESTART:
        if (c->draining) {
            break;
        }
        if (!c->down) {
            /* A sibling's restart (one_for_all, rest_for_one). */
            cx->reason = (tr_reason){TR_EXIT_SHUTDOWN, 0, "restart"};
            terminate(cx);
        }
        c->down = false;
        (void)init_again(cx, c);
        break;
    case TR__SYS_CLOSE:
        tr__mbox_close_user(&a->mb);
        break;
    default: /* TR__SYS_DRAIN */
        tr__mbox_close_user(&a->mb);
        if (tr__find_row(cx->own->beh, TR_MSG_CHILD) != NULL && !c->down) {
            /* A supervisor: it stops its own children first, and ends
             * (TR_EXIT_SHUTDOWN) when they are gone. */
            note(cx, tr_self(cx), TR__CHILD_DRAIN, 0);
            break;
        }
        c->draining = true;
        if (c->down) {
            tr__exit_with(cx, &drained); /* nothing runs to drain */
        }
        break;
    }
}

void
tr__child_drain(tr_cx *cx)
{
    tr__child *c = cx->own->ext->child;

    c->draining = true;
}

tr__msg *
tr__child_retry(tr_cx *cx)
{
    tr__child *c = cx->own->ext->child;
    tr__msg *m = c->poison;

    c->poison = NULL;
    c->retrying = m; /* compared in tr__child_finish while it runs */
    return m;
}

void
tr__child_end(tr_cx *cx)
{
    tr__child *c = cx->own->ext->child;

    drop_kept(cx, TR_EDEAD);
    note(cx, c->sup, TR__CHILD_ENDED, c->directive);
}
