/* Links, monitors and exit signals.
 *
 * Each side keeps its own records, in its ext (owner only): its links, the
 * actors monitoring it (watchers), and its own monitors. A link or monitor
 * is set up by a system message to the other actor, which adds its side
 * when it handles it; if it ends first, its end answers the request as if
 * it had been gone (TR_EXIT_NOPROC). An ending actor signals its links
 * (TR__SYS_EXIT) and sends each watcher one TR_MSG_DOWN, admitted past
 * capacity: notices are bounded by the links and monitors that exist.
 * Notices to actors that are gone vanish, as signals to dead processes do
 * in Erlang: they are not dead letters. */
#include "actors/core.h"

#include <string.h>

static const tr_reason noproc = {TR_EXIT_NOPROC, TR_EDEAD, "noproc"};

static int
find_link(const tr__ext *x, tr_ref r)
{
    for (uint32_t i = 0; i < x->nlinks; i++) {
        if (tr_ref_eq(x->links[i], r)) {
            return (int)i;
        }
    }
    return -1;
}

static tr_status
add_link(tr__actor *a, tr_ref r)
{
    tr__ext *x = tr__ext_get(a);

    if (x == NULL) {
        return TR_ENOMEM;
    }
    if (find_link(x, r) >= 0) {
        return TR_OK;
    }
    if (!tr__grow((void **)&x->links, x->nlinks, &x->caplinks,
                  sizeof *x->links)) {
        return TR_ENOMEM;
    }
    x->links[x->nlinks++] = r;
    return TR_OK;
}

static bool
drop_link(tr__ext *x, tr_ref r)
{
    int i = x ? find_link(x, r) : -1;

    if (i < 0) {
        return false;
    }
    x->links[i] = x->links[--x->nlinks];
    return true;
}

void
tr__notice(tr_runtime *rt, tr_ref to, uint32_t type, const void *data,
           size_t len)
{
    tr__actor *a = tr__lookup(rt, to);
    tr__msg *m;
    uint64_t w;
    tr__admit r;

    if (a == NULL || (m = tr__msg_new(rt, len)) == NULL) {
        return;
    }
    m->type = type;
    m->to = to;
    memcpy(m->data, data, len);
    r = tr__mbox_admit(&a->mb, to.gen_, true, &w);
    if (r != TR__ADMIT_OK && r != TR__ADMIT_SCHEDULE) {
        tr__msg_free(rt, m);
        return;
    }
    tr__mbox_push(&a->mb, &m->node);
    if (r == TR__ADMIT_SCHEDULE) {
        tr__exec_schedule(rt->exec, &a->task);
    }
    TR__COUNT(rt, sent, 1);
}

static void
down(tr_runtime *rt, tr_ref watcher, uint64_t id, tr_ref who,
     const tr_reason *why)
{
    tr_down d = {{id}, who, *why};

    tr__notice(rt, watcher, TR_MSG_DOWN, &d, sizeof d);
}

/* Sends an exit signal on the system lane; to an actor that is gone it
 * vanishes. */
static tr_status
signal_exit(tr_runtime *rt, tr_ref to, tr_ref from, bool linked,
            const tr_reason *why)
{
    tr__sig s = {from, 0, linked, *why};

    return tr__send_sys(rt, to, TR__SYS_EXIT, &s, sizeof s);
}

/* ---- Public calls ------------------------------------------------------ */

static tr_status
link_to(tr_cx *cx, tr_ref other)
{
    tr__sig s = {tr_self(cx), 0, false, {0}};
    tr_status st = add_link(cx->self, other);

    if (st != TR_OK) {
        return st;
    }
    st = tr__send_sys(cx->rt, other, TR__SYS_LINK, &s, sizeof s);
    if (st != TR_OK) {
        drop_link(tr__more(cx->own), other);
    }
    return st;
}

tr_status
tr_link(tr_cx *cx, tr_ref other)
{
    if (cx == NULL || tr_ref_is_none(other) || tr_ref_eq(other, tr_self(cx))) {
        return TR_EINVAL;
    }
    return link_to(cx, other);
}

tr_status
tr_unlink(tr_cx *cx, tr_ref other)
{
    tr__sig s;

    if (cx == NULL) {
        return TR_EINVAL;
    }
    if (drop_link(tr__more(cx->own), other)) {
        s = (tr__sig){tr_self(cx), 0, false, {0}};
        (void)tr__send_sys(cx->rt, other, TR__SYS_UNLINK, &s, sizeof s);
    }
    return TR_OK;
}

tr_status
tr_trap_exit(tr_cx *cx, bool on)
{
    tr__ext *x;

    if (cx == NULL) {
        return TR_EINVAL;
    }
    x = on ? tr__ext_get(cx->self) : tr__more(cx->own);
    if (x == NULL) {
        return on ? TR_ENOMEM : TR_OK;
    }
    x->trap = on;
    return TR_OK;
}

tr_status
tr_monitor_actor(tr_cx *cx, tr_ref who, tr_monitor *out)
{
    tr__ext *x;
    tr__sig s;

    if (cx == NULL || out == NULL) {
        return TR_EINVAL;
    }
    x = tr__ext_get(cx->self);
    if (x == NULL ||
        !tr__grow((void **)&x->mons, x->nmons, &x->capmons, sizeof *x->mons)) {
        return TR_ENOMEM;
    }
    s = (tr__sig){tr_self(cx), tr__new_id(cx), false, {0}};
    x->mons[x->nmons++] = (struct tr__mon){s.id, who};
    out->id_ = s.id;
    if (tr__send_sys(cx->rt, who, TR__SYS_MONITOR, &s, sizeof s) != TR_OK) {
        down(cx->rt, s.from, s.id, who, &noproc); /* gone already */
    }
    return TR_OK;
}

tr_status
tr_demonitor(tr_cx *cx, tr_monitor m)
{
    tr__ext *x;

    if (cx == NULL) {
        return TR_EINVAL;
    }
    x = tr__more(cx->own);
    for (uint32_t i = 0; x != NULL && i < x->nmons; i++) {
        if (x->mons[i].id == m.id_) {
            tr__sig s = {tr_self(cx), m.id_, false, {0}};

            (void)tr__send_sys(cx->rt, x->mons[i].target, TR__SYS_DEMONITOR, &s,
                               sizeof s);
            x->mons[i] = x->mons[--x->nmons];
            return TR_OK;
        }
    }
    return TR_ENOENT;
}

static tr_status
kill(tr_runtime *rt, tr_cx *cx, tr_ref who)
{
    static const tr_reason killed = {TR_EXIT_KILLED, 0, "killed"};

    if (cx != NULL && tr_ref_eq(who, tr_self(cx))) {
        tr__exit_with(cx, &killed);
        return TR_OK;
    }
    return signal_exit(rt, who, cx ? tr_self(cx) : TR_NOREF, false, &killed);
}

tr_status
tr_kill_cx(tr_cx *cx, tr_ref who)
{
    return cx ? kill(cx->rt, cx, who) : TR_EINVAL;
}

tr_status
tr_kill_rt(tr_runtime *rt, tr_ref who)
{
    if (rt == NULL) {
        return TR_EINVAL;
    }
    return kill(rt, tr__current_cx(rt), who);
}

tr_status
tr__link_prepare(tr__actor *parent, tr__ext **child)
{
    tr__ext *px = tr__ext_get(parent);

    *child = tr__ext_new();
    if (px == NULL || *child == NULL ||
        !tr__grow((void **)&px->links, px->nlinks, &px->caplinks,
                  sizeof *px->links) ||
        !tr__grow((void **)&(*child)->links, 0, &(*child)->caplinks,
                  sizeof *(*child)->links)) {
        tr__ext_free(*child);
        *child = NULL;
        return TR_ENOMEM;
    }
    return TR_OK;
}

void
tr__link_commit(tr__actor *parent, tr__ext *child, tr_ref pref, tr_ref cref)
{
    tr__ext *x = tr__own_of(parent)->ext;

    x->links[x->nlinks++] = cref;
    child->links[child->nlinks++] = pref;
}

/* ---- The runtime's side ------------------------------------------------ */

void
tr__bond_sys(tr_cx *cx, const tr__msg *m)
{
    tr__sig s;
    tr__ext *x;

    memcpy(&s, m->data, sizeof s);
    switch (m->type) {
    case TR__SYS_LINK:
        if (add_link(cx->self, s.from) != TR_OK) {
            /* No memory for our side: as if we were gone. */
            (void)signal_exit(cx->rt, s.from, tr_self(cx), true, &noproc);
        }
        break;
    case TR__SYS_UNLINK:
        drop_link(tr__more(cx->own), s.from);
        break;
    case TR__SYS_MONITOR:
        x = tr__ext_get(cx->self);
        if (x == NULL || !tr__grow((void **)&x->watchers, x->nwatchers,
                                   &x->capwatchers, sizeof *x->watchers)) {
            down(cx->rt, s.from, s.id, tr_self(cx), &noproc);
            break;
        }
        x->watchers[x->nwatchers++] = (struct tr__watcher){s.from, s.id};
        break;
    case TR__SYS_DEMONITOR:
        x = tr__more(cx->own);
        for (uint32_t i = 0; x != NULL && i < x->nwatchers; i++) {
            if (x->watchers[i].id == s.id &&
                tr_ref_eq(x->watchers[i].who, s.from)) {
                x->watchers[i] = x->watchers[--x->nwatchers];
                break;
            }
        }
        break;
    default: /* TR__SYS_EXIT */
        x = tr__more(cx->own);
        if (s.linked && !drop_link(x, s.from)) {
            break; /* unlinked meanwhile: the link no longer carries it */
        }
        if (s.reason.kind == TR_EXIT_KILLED && !s.linked) {
            tr__exit_with(cx, &s.reason); /* never trapped */
        } else if (x != NULL && x->trap) {
            tr_exit_msg e = {s.from, s.reason};

            tr__notice(cx->rt, tr_self(cx), TR_MSG_EXIT, &e, sizeof e);
        } else if (s.reason.kind != TR_EXIT_NORMAL) {
            tr__exit_with(cx, &s.reason);
        }
        break;
    }
}

void
tr__bond_orphan(tr_runtime *rt, const tr__msg *m)
{
    tr__sig s;

    if (m->type == TR__SYS_LINK) {
        memcpy(&s, m->data, sizeof s);
        (void)signal_exit(rt, s.from, m->to, true, &noproc);
    } else if (m->type == TR__SYS_MONITOR) {
        memcpy(&s, m->data, sizeof s);
        down(rt, s.from, s.id, m->to, &noproc);
    }
}

void
tr__bonds_end(tr_cx *cx)
{
    tr__ext *x = tr__more(cx->own);
    tr_ref me = tr_self(cx);

    if (x == NULL) {
        return;
    }
    for (uint32_t i = 0; i < x->nlinks; i++) {
        (void)signal_exit(cx->rt, x->links[i], me, true, &cx->reason);
    }
    for (uint32_t i = 0; i < x->nwatchers; i++) {
        down(cx->rt, x->watchers[i].who, x->watchers[i].id, me, &cx->reason);
    }
    /* Our monitors of others: their DOWNs would find us gone. */
    x->nlinks = x->nwatchers = 0;
}

bool
tr__down_take(tr_cx *cx, const tr__msg *m)
{
    tr__ext *x = tr__more(cx->own);
    tr_down d;

    memcpy(&d, m->data, sizeof d);
    for (uint32_t i = 0; x != NULL && i < x->nmons; i++) {
        if (x->mons[i].id == d.monitor.id_) {
            x->mons[i] = x->mons[--x->nmons];
            return true;
        }
    }
    return false;
}
