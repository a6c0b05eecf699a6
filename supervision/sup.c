/* Supervisors: an actor that starts its children from a spec, hears of
 * each restart and end (TR_MSG_CHILD notices from the children's own turns,
 * see actors/child.c), counts restarts against its intensity, spaces them
 * out with backoff, applies its strategy to the siblings, and stops its
 * children in reverse order by draining them.
 *
 * Its state is a table of children in start order. A child's index is its
 * name in the notices; a dynamic child's index is reused once it is gone,
 * and notices carry the child's ref, so a stale one is recognized.
 *
 * Requests from outside threads (tr_sup_*) are messages of types just
 * below the reserved range, which a supervisor takes for itself. */
#include "actors/core.h"
#include "supervision/pool.h"

#include <stdio.h>
#include <string.h>

#define SUP_BASE        (TR_MSG_RESERVED - 0x100u)
#define SUP_PING        (SUP_BASE + 0u) /* request, void: TR_OK once up */
#define SUP_START_CHILD (SUP_BASE + 1u) /* request, bytes (the arg): ref */
#define SUP_STOP_CHILD  (SUP_BASE + 2u) /* request, tr_ref: void */
#define SUP_COUNT       (SUP_BASE + 3u) /* request, void: tr_sup_counts */
#define SUP_WHICH       (SUP_BASE + 4u) /* request, uint32_t: which_page */
#define SUP_STOP        (SUP_BASE + 5u) /* void: stop the whole supervisor */
#define SUP_RESTART_DUE (SUP_BASE + 6u) /* to itself, due: backoff over */
#define SUP_STOP_DUE    (SUP_BASE + 7u) /* to itself, due: grace over */

#define PAGE            32u
#define DEFAULT_SHUT_MS 5000u

typedef struct which_page {
    uint32_t n;
    tr_child_info info[PAGE];
} which_page;

typedef struct due {
    uint32_t index;
    tr_ref ref;
} due;

typedef struct kid {
    const tr_child_spec *spec;
    tr_ref ref;
    tr_child_state state;
    bool live;         /* false: a free entry (gone for good) */
    uint32_t restarts; /* in all */
    uint32_t streak;   /* restarts in a row: the backoff exponent */
    uint64_t up_ns;    /* when it last (re)started */
    void *arg;         /* a dynamic child's own argument, or NULL */
    size_t arg_len;
} kid;

typedef struct sup_state {
    const tr_sup_spec *spec;
    kid *kids;
    uint32_t n, cap; /* entries in use (live or free), room */
    uint32_t live;
    uint64_t restarts;
    uint64_t *hist; /* the last intensity + 1 restart times, a ring */
    uint32_t hist_len, hist_at;
    uint64_t rng;
    bool stopping;
    int64_t cursor; /* the child being stopped, in reverse order */
    tr_reason why;  /* why the supervisor ends once they are gone */
    /* Dynamic children come and go by the thousand: free entries are a
     * stack, and a child is found by its ref through a hash of its slot
     * (open addressing; 0 empty, UINT32_MAX deleted, else index + 1). */
    uint32_t *free_ids;
    uint32_t nfree, capfree;
    uint32_t *map;
    uint32_t mapcap, mapused;
} sup_state;

static uint32_t
intensity(const tr_sup_spec *s)
{
    return s->intensity || s->period_ms ? s->intensity : 3;
}

static uint32_t
period_ms(const tr_sup_spec *s)
{
    return s->intensity || s->period_ms ? s->period_ms : 5000;
}

/* ---- Children ---------------------------------------------------------- */

static const tr_behavior *child_behavior(const tr_child_spec *cs);
static bool map_put(sup_state *self, uint32_t index);
static void sup_cleanup(tr_cx *cx, sup_state *self);
static void gone(sup_state *self, kid *k);

static tr_status
start_kid(tr_cx *cx, sup_state *self, uint32_t i)
{
    kid *k = &self->kids[i];
    const tr_child_spec *cs = k->spec;
    const void *arg = k->arg ? k->arg : cs->arg;
    size_t len = k->arg ? k->arg_len : cs->arg_len;
    void *blob = NULL;
    tr_spawn_opts o = {.mailbox = cs->mailbox};
    tr__child *c;
    tr_status st = TR_OK;

    if (cs->sup != NULL) {
        arg = &cs->sup; /* a supervisor's argument: its spec */
        len = sizeof cs->sup;
    } else if (cs->pool != NULL) {
        st = tr__pool_blob(cx->rt, cs->pool, &blob, &len);
        arg = blob;
        o.mailbox = cs->pool->queue.capacity ? &cs->pool->queue : NULL;
    }
    c = st == TR_OK ? tr__child_new(tr_self(cx), i, cs, arg, len) : NULL;
    if (c == NULL) {
        tr__free(blob);
        return st != TR_OK ? st : TR_ENOMEM;
    }
    o.arg = arg;
    o.arg_len = len;
    st = tr__spawn(cx->rt, cx->self, child_behavior(cs), &o, 0, NULL, c,
                   &k->ref);
    tr__free(blob); /* the child record keeps a copy */
    if (st != TR_OK) {
        tr__free(c);
        return st;
    }
    k->state = TR_CHILD_RUNNING;
    k->live = true;
    k->up_ns = tr__now_ns();
    self->live++;
    if (!map_put(self, i)) {
        (void)tr_kill(cx, k->ref); /* its end finds no entry: ignored */
        gone(self, k);
        return TR_ENOMEM;
    }
    return TR_OK;
}

static uint32_t
slot_hash(tr_ref r, uint32_t cap)
{
    return (uint32_t)((r.slot_ * UINT64_C(0x9e3779b97f4a7c15)) >> 32) &
           (cap - 1);
}

/* The map's position of `ref`, or of the free cell where it would go. */
static uint32_t
map_find(const sup_state *self, tr_ref ref)
{
    uint32_t i = slot_hash(ref, self->mapcap), tomb = UINT32_MAX;

    for (;; i = (i + 1) & (self->mapcap - 1)) {
        uint32_t v = self->map[i];

        if (v == 0) {
            return tomb != UINT32_MAX ? tomb : i;
        }
        if (v == UINT32_MAX) {
            tomb = tomb == UINT32_MAX ? i : tomb;
        } else if (tr_ref_eq(self->kids[v - 1].ref, ref)) {
            return i;
        }
    }
}

static bool
map_put(sup_state *self, uint32_t index)
{
    if ((self->mapused + 1) * 2 > self->mapcap) {
        uint32_t *old = self->map, oldcap = self->mapcap;

        self->mapcap = oldcap ? oldcap * 2 : 64;
        self->map = tr__calloc(self->mapcap, sizeof *self->map);
        if (self->map == NULL) {
            self->map = old;
            self->mapcap = oldcap;
            return false;
        }
        self->mapused = 0;
        for (uint32_t i = 0; i < oldcap; i++) {
            if (old[i] != 0 && old[i] != UINT32_MAX) {
                self->map[map_find(self, self->kids[old[i] - 1].ref)] = old[i];
                self->mapused++;
            }
        }
        tr__free(old);
    }
    self->map[map_find(self, self->kids[index].ref)] = index + 1;
    self->mapused++; /* deleted cells count as used until a rehash */
    return true;
}

static void
map_del(sup_state *self, tr_ref ref)
{
    uint32_t i;

    if (self->mapcap == 0) {
        return;
    }
    i = map_find(self, ref);
    if (self->map[i] != 0 && self->map[i] != UINT32_MAX) {
        self->map[i] = UINT32_MAX; /* deleted: probes go on past it */
    }
}

/* A free entry (reusing one a gone dynamic child left), or NULL. */
static kid *
new_entry(sup_state *self, uint32_t *index)
{
    if (self->nfree > 0) {
        *index = self->free_ids[--self->nfree];
        return &self->kids[*index];
    }
    if (!tr__grow((void **)&self->kids, self->n, &self->cap,
                  sizeof *self->kids)) {
        return NULL;
    }
    *index = self->n++;
    return &self->kids[*index];
}

static void
gone(sup_state *self, kid *k)
{
    if (k->live) {
        k->live = false;
        self->live--;
        map_del(self, k->ref);
        /* A dynamic child's entry is reused (unless no memory for the
         * stack: then it is just not). */
        if (self->spec->strategy == TR_SIMPLE_ONE_FOR_ONE &&
            tr__grow((void **)&self->free_ids, self->nfree, &self->capfree,
                     sizeof *self->free_ids)) {
            self->free_ids[self->nfree++] = (uint32_t)(k - self->kids);
        }
    }
    tr__free(k->arg);
    k->arg = NULL;
}

static kid *
kid_of(sup_state *self, uint32_t index, tr_ref ref)
{
    kid *k = index < self->n ? &self->kids[index] : NULL;

    return k != NULL && k->live && tr_ref_eq(k->ref, ref) ? k : NULL;
}

/* The live child of ref, or NULL. */
static kid *
kid_by_ref(sup_state *self, tr_ref ref)
{
    uint32_t v = self->mapcap ? self->map[map_find(self, ref)] : 0;

    return v != 0 && v != UINT32_MAX ? kid_of(self, v - 1, ref) : NULL;
}

/* ---- Stopping ---------------------------------------------------------- */

/* Stops the next live child, in reverse start order; the supervisor ends
 * once none is left. */
static void
stop_next(tr_cx *cx, sup_state *self)
{
    while (self->cursor >= 0 && !self->kids[self->cursor].live) {
        self->cursor--;
    }
    if (self->cursor < 0) {
        tr__exit_with(cx, &self->why);
        return;
    }
    {
        kid *k = &self->kids[self->cursor];
        uint32_t ms =
            k->spec->shutdown_ms ? k->spec->shutdown_ms : DEFAULT_SHUT_MS;
        due d = {(uint32_t)self->cursor, k->ref};

        k->state = TR_CHILD_STOPPING;
        if (ms == TR_BRUTAL_KILL ||
            tr__send_sys(cx->rt, k->ref, TR__SYS_DRAIN, NULL, 0) != TR_OK) {
            (void)tr_kill(cx, k->ref);
            return;
        }
        if (tr_send_after(cx, tr_self(cx), SUP_STOP_DUE, &d, sizeof d, ms,
                          NULL) == TR_ENOMEM) {
            (void)tr_kill(cx, k->ref); /* no timer: no grace either */
        }
        /* TR_ESHUTDOWN: the runtime is shutting down; its drain deadline
         * bounds the grace. */
    }
}

/* Starts the supervisor's stop: no new messages to any child, then each
 * drained in turn. */
static void
begin_stop(tr_cx *cx, sup_state *self, const tr_reason *why)
{
    if (self->stopping) {
        return;
    }
    self->stopping = true;
    self->why = *why;
    for (uint32_t i = 0; i < self->n; i++) {
        if (self->kids[i].live) {
            (void)tr__send_sys(cx->rt, self->kids[i].ref, TR__SYS_CLOSE, NULL,
                               0);
        }
    }
    self->cursor = (int64_t)self->n - 1;
    stop_next(cx, self);
}

/* ---- Restarts ---------------------------------------------------------- */

/* Records a restart; false when it is one too many for the intensity. */
static bool
count_restart(sup_state *self)
{
    uint64_t now = tr__now_ns(),
             window = (uint64_t)period_ms(self->spec) * 1000000u;
    uint32_t within = 0;

    self->hist[self->hist_at] = now;
    self->hist_at = (self->hist_at + 1) % self->hist_len;
    self->restarts++;
    for (uint32_t i = 0; i < self->hist_len; i++) {
        within += self->hist[i] != 0 && now - self->hist[i] <= window;
    }
    return within <= intensity(self->spec);
}

static uint64_t
next_random(sup_state *self)
{
    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    return self->rng;
}

/* The backoff before kid k's next restart, in ms. */
static uint32_t
backoff_ms(sup_state *self, kid *k)
{
    const tr_backoff *b = &self->spec->backoff;
    uint64_t reset = (uint64_t)(b->reset_ms ? b->reset_ms : 10000) * 1000000u;
    uint64_t max = b->max_ms ? b->max_ms : (uint64_t)b->min_ms * 64;
    double d, j;

    if (b->min_ms == 0) {
        return 0;
    }
    if (tr__now_ns() - k->up_ns >= reset) {
        k->streak = 0; /* it ran long enough: start over */
    }
    d = (double)b->min_ms *
        (double)(UINT64_C(1) << (k->streak < 30 ? k->streak : 30));
    if (d > (double)max) {
        d = (double)max;
    }
    k->streak++;
    j = b->jitter > 0 ? b->jitter * d *
                            ((double)(next_random(self) % 2001) / 1000.0 - 1.0)
                      : 0;
    return d + j > 1 ? (uint32_t)(d + j) : 1;
}

static void
restart_now(tr_cx *cx, kid *k)
{
    k->state = TR_CHILD_RUNNING;
    k->up_ns = tr__now_ns();
    (void)tr__send_sys(cx->rt, k->ref, TR__SYS_RESTART, NULL, 0);
}

/* The strategy: restarts in place the siblings of kid i that it names
 * (one_for_all: every other; rest_for_one: those started after it). */
static void
restart_siblings(tr_cx *cx, sup_state *self, uint32_t i)
{
    uint32_t from = self->spec->strategy == TR_ONE_FOR_ALL    ? 0
                    : self->spec->strategy == TR_REST_FOR_ONE ? i + 1
                                                              : self->n;

    for (uint32_t s = from; s < self->n; s++) {
        if (s != i && self->kids[s].live &&
            self->kids[s].state == TR_CHILD_RUNNING) {
            restart_now(cx, &self->kids[s]);
        }
    }
}

/* Kid i went down (terminated in place): schedule its restart, and apply
 * the strategy to its siblings. */
static void
child_down(tr_cx *cx, sup_state *self, uint32_t i, const tr_reason *why)
{
    kid *k = &self->kids[i];
    uint32_t ms;

    if (self->stopping) {
        return; /* it is drained (and so ended) in its turn */
    }
    k->restarts++;
    k->state = TR_CHILD_RESTARTING;
    if (!count_restart(self)) {
        tr_reason r = {TR_EXIT_FAILED, TR_ELIMIT, ""};

        snprintf(r.text, sizeof r.text, "intensity: %.14s: %.20s",
                 k->spec->id ? k->spec->id : "?", why->text);
        begin_stop(cx, self, &r);
        return;
    }
    restart_siblings(cx, self, i);
    ms = backoff_ms(self, k);
    if (ms == 0) {
        restart_now(cx, k);
    } else {
        due d = {i, k->ref};

        if (tr_send_after(cx, tr_self(cx), SUP_RESTART_DUE, &d, sizeof d, ms,
                          NULL) != TR_OK) {
            restart_now(cx, k); /* no timer: no backoff */
        }
    }
}

/* Kid i ended for good. */
static void
child_ended(tr_cx *cx, sup_state *self, uint32_t i, const tr__child_note *n)
{
    kid *k = &self->kids[i];
    bool again = !self->stopping && k->state != TR_CHILD_STOPPING &&
                 n->directive == 0 && n->reason.kind == TR_EXIT_KILLED &&
                 k->spec->restart != TR_TEMPORARY;

    if (n->directive == TR_ESCALATE && !self->stopping) {
        tr_reason r = {TR_EXIT_FAILED, TR_EFAILED, ""};

        gone(self, k);
        snprintf(r.text, sizeof r.text, "escalated: %.14s: %.20s",
                 k->spec->id ? k->spec->id : "?", n->reason.text);
        begin_stop(cx, self, &r);
        return;
    }
    if (again) {
        /* Killed from outside: a new actor in its place (a new ref). */
        self->live--;
        k->live = false;
        map_del(self, k->ref);
        k->restarts++;
        if (!count_restart(self)) {
            tr_reason r = {TR_EXIT_FAILED, TR_ELIMIT,
                           "restart intensity exceeded"};

            begin_stop(cx, self, &r);
            return;
        }
        if (start_kid(cx, self, i) == TR_OK) {
            restart_siblings(cx, self, i);
            return;
        }
    }
    gone(self, k);
    if (self->stopping && (int64_t)i == self->cursor) {
        self->cursor--;
        stop_next(cx, self);
    }
}

/* ---- Handlers ---------------------------------------------------------- */

static tr_status
sup_init(tr_cx *cx, sup_state *self, const tr_sup_spec *const *spec)
{
    const tr_sup_spec *s = *spec;

    self->spec = s;
    self->rng = tr__now_ns() | 1;
    self->hist_len = intensity(s) + 1;
    self->hist = tr__calloc(self->hist_len, sizeof *self->hist);
    if (self->hist == NULL) {
        return TR_ENOMEM;
    }
    if (s->strategy == TR_SIMPLE_ONE_FOR_ONE) {
        return TR_OK; /* children come with tr_sup_start_child() */
    }
    for (uint32_t i = 0; i < s->nchildren; i++) {
        uint32_t at;
        kid *k = new_entry(self, &at);
        tr_status st;

        if (k == NULL) {
            sup_cleanup(cx, self);
            return TR_ENOMEM;
        }
        memset(k, 0, sizeof *k);
        k->spec = &s->children[i];
        st = start_kid(cx, self, at);
        if (st != TR_OK) {
            self->n--;             /* this entry never started */
            sup_cleanup(cx, self); /* no terminate hook after a failed init */
            return st;
        }
    }
    return TR_OK;
}

static tr_status
sup_child(tr_cx *cx, sup_state *self, const tr__child_note *n)
{
    kid *k;

    if (n->what == TR__CHILD_DRAIN) {
        static const tr_reason why = {TR_EXIT_SHUTDOWN, 0, "drained"};

        begin_stop(cx, self, &why); /* our own supervisor stops us */
        return TR_OK;
    }
    k = kid_of(self, n->index, n->child);
    if (k == NULL) {
        return TR_OK; /* about a child already replaced */
    }
    if (n->what == TR__CHILD_DOWN) {
        child_down(cx, self, n->index, &n->reason);
    } else {
        child_ended(cx, self, n->index, n);
    }
    return TR_OK;
}

static tr_status
sup_restart_due(tr_cx *cx, sup_state *self, const due *d)
{
    kid *k = kid_of(self, d->index, d->ref);

    if (k != NULL && k->state == TR_CHILD_RESTARTING && !self->stopping) {
        restart_now(cx, k);
    }
    return TR_OK;
}

static tr_status
sup_stop_due(tr_cx *cx, sup_state *self, const due *d)
{
    kid *k = kid_of(self, d->index, d->ref);

    if (k != NULL && k->state == TR_CHILD_STOPPING) {
        (void)tr_kill(cx, k->ref); /* did not drain in time */
    }
    return TR_OK;
}

static tr_status
sup_stop(tr_cx *cx, sup_state *self, const void *none)
{
    static const tr_reason why = {TR_EXIT_SHUTDOWN, 0, "stopped"};

    (void)none;
    begin_stop(cx, self, &why);
    return TR_OK;
}

static tr_status
sup_ping(tr_cx *cx, sup_state *self, const void *none)
{
    (void)self;
    (void)none;
    return tr_reply(cx, NULL, 0);
}

static tr_status
sup_start_child(tr_cx *cx, sup_state *self, const void *arg)
{
    size_t len = tr_msg_size(cx);
    const tr_child_spec *cs = &self->spec->children[0];
    uint32_t at;
    kid *k;
    tr_status st;

    if (self->spec->strategy != TR_SIMPLE_ONE_FOR_ONE || self->stopping) {
        return tr_reply_error(cx, TR_ESTATE);
    }
    k = new_entry(self, &at);
    if (k == NULL) {
        return tr_reply_error(cx, TR_ENOMEM);
    }
    memset(k, 0, sizeof *k);
    k->spec = cs;
    if (len > 0) {
        k->arg = tr__alloc(len);
        if (k->arg == NULL) {
            return tr_reply_error(cx, TR_ENOMEM);
        }
        memcpy(k->arg, arg, len);
        k->arg_len = len;
    }
    st = start_kid(cx, self, at);
    if (st != TR_OK) {
        gone(self, k);
        return tr_reply_error(cx, st);
    }
    return tr_reply(cx, &k->ref, sizeof k->ref);
}

static tr_status
sup_stop_child(tr_cx *cx, sup_state *self, const tr_ref *ref)
{
    kid *k = kid_by_ref(self, *ref);
    uint32_t ms;
    due d;

    if (k == NULL) {
        return tr_reply_error(cx, TR_ENOENT);
    }
    ms = k->spec->shutdown_ms ? k->spec->shutdown_ms : DEFAULT_SHUT_MS;
    d = (due){(uint32_t)(k - self->kids), k->ref};
    k->state = TR_CHILD_STOPPING;
    if (ms == TR_BRUTAL_KILL ||
        tr__send_sys(cx->rt, k->ref, TR__SYS_DRAIN, NULL, 0) != TR_OK ||
        tr_send_after(cx, tr_self(cx), SUP_STOP_DUE, &d, sizeof d, ms, NULL) !=
            TR_OK) {
        (void)tr_kill(cx, k->ref);
    }
    return tr_reply(cx, NULL, 0);
}

static tr_status
sup_count(tr_cx *cx, sup_state *self, const void *none)
{
    tr_sup_counts c = {0};

    (void)none;
    for (uint32_t i = 0; i < self->n; i++) {
        const kid *k = &self->kids[i];

        if (!k->live) {
            continue;
        }
        c.specs++;
        c.active += k->state == TR_CHILD_RUNNING;
        c.restarting += k->state == TR_CHILD_RESTARTING;
        c.supervisors += k->spec->sup != NULL;
    }
    if (self->spec->strategy != TR_SIMPLE_ONE_FOR_ONE) {
        c.specs = self->spec->nchildren;
    }
    c.restarts = self->restarts;
    return tr_reply(cx, &c, sizeof c);
}

static tr_status
sup_which(tr_cx *cx, sup_state *self, const uint32_t *first)
{
    which_page *p = tr__calloc(1, sizeof *p);
    uint32_t seen = 0;
    tr_status st;

    if (p == NULL) {
        return tr_reply_error(cx, TR_ENOMEM);
    }
    for (uint32_t i = 0; i < self->n && p->n < PAGE; i++) {
        const kid *k = &self->kids[i];
        tr_child_info *in = &p->info[p->n];

        if (!k->live || seen++ < *first) {
            continue;
        }
        snprintf(in->id, sizeof in->id, "%.31s",
                 k->spec->id ? k->spec->id : "");
        in->ref = k->ref;
        in->state = k->state;
        in->restarts = k->restarts;
        in->supervisor = k->spec->sup != NULL;
        p->n++;
    }
    st = tr_reply(cx, p, sizeof *p);
    tr__free(p);
    return st;
}

/* Kills the children still alive and frees the state: from the terminate
 * hook (the supervisor failed, or was killed: none outlives it), and from
 * an init that failed half way (no terminate hook follows it). */
static void
sup_cleanup(tr_cx *cx, sup_state *self)
{
    tr__root_del(cx->rt, tr_self(cx));
    for (uint32_t i = 0; i < self->n; i++) {
        if (self->kids[i].live) {
            (void)tr_kill(cx, self->kids[i].ref);
        }
        tr__free(self->kids[i].arg);
    }
    tr__free(self->kids);
    tr__free(self->hist);
    tr__free(self->free_ids);
    tr__free(self->map);
    memset(self, 0, sizeof *self); /* a restart in place starts afresh */
}

static tr_status
sup_terminate(tr_cx *cx, sup_state *self, const tr_reason *why)
{
    (void)why;
    sup_cleanup(cx, self);
    return TR_OK;
}

TR_ACTOR(tr__sup_actor, sup_state, TR_ON_INIT(const tr_sup_spec *, sup_init),
         TR_ON(TR_MSG_CHILD, tr__child_note, sup_child),
         TR_ON(SUP_RESTART_DUE, due, sup_restart_due),
         TR_ON(SUP_STOP_DUE, due, sup_stop_due),
         TR_ON(SUP_STOP, void, sup_stop), TR_ON(SUP_PING, void, sup_ping),
         TR_ON_BYTES(SUP_START_CHILD, sup_start_child),
         TR_ON(SUP_STOP_CHILD, tr_ref, sup_stop_child),
         TR_ON(SUP_COUNT, void, sup_count),
         TR_ON(SUP_WHICH, uint32_t, sup_which), TR_ON_TERMINATE(sup_terminate));

static const tr_behavior *
child_behavior(const tr_child_spec *cs)
{
    return cs->sup    ? &tr__sup_actor
           : cs->pool ? tr__pool_behavior()
                      : cs->actor;
}

/* ---- The public calls -------------------------------------------------- */

static bool
spec_ok(const tr_sup_spec *s)
{
    if (s == NULL || s->children == NULL || s->nchildren == 0 ||
        (unsigned)s->strategy > TR_SIMPLE_ONE_FOR_ONE ||
        (s->strategy == TR_SIMPLE_ONE_FOR_ONE && s->nchildren != 1) ||
        s->backoff.jitter < 0 || s->backoff.jitter > 1) {
        return false;
    }
    for (uint32_t i = 0; i < s->nchildren; i++) {
        const tr_child_spec *c = &s->children[i];

        if ((c->actor != NULL) + (c->sup != NULL) + (c->pool != NULL) != 1 ||
            (unsigned)c->restart > TR_TEMPORARY ||
            (c->sup != NULL && !spec_ok(c->sup))) {
            return false;
        }
    }
    return true;
}

tr_status
tr_sup_start_cx(tr_cx *cx, const tr_sup_spec *spec, tr_ref *out)
{
    tr_spawn_opts o = {.arg = &spec, .arg_len = sizeof spec, .link = true};

    if (cx == NULL || out == NULL || !spec_ok(spec)) {
        return TR_EINVAL;
    }
    return tr_spawn(cx, &tr__sup_actor, &o, out);
}

tr_status
tr_sup_start_rt(tr_runtime *rt, const tr_sup_spec *spec, tr_ref *out)
{
    tr_spawn_opts o = {.arg = &spec, .arg_len = sizeof spec};
    tr_ref r;
    tr_status st;

    if (rt == NULL || out == NULL || !spec_ok(spec)) {
        return TR_EINVAL;
    }
    if (tr__current_cx(rt) != NULL) {
        return tr_sup_start_cx(tr__current_cx(rt), spec, out);
    }
    st = tr_spawn(rt, &tr__sup_actor, &o, &r);
    if (st != TR_OK) {
        return st;
    }
    /* Its init started the children, or failed (then it is gone). */
    st = tr_ask_wait(rt, r, SUP_PING, NULL, 0, NULL, 0, 30000);
    if (st == TR_EDEAD) {
        return TR_EFAILED;
    }
    if (st != TR_OK) {
        (void)tr_kill(rt, r); /* not answering: nobody would own it */
        return st;
    }
    if (st == TR_OK) {
        /* A top supervisor: shutdown stops its tree in order. */
        st = tr__root_add(rt, r, SUP_STOP);
        if (st != TR_OK) {
            (void)tr_kill(rt, r);
            return st;
        }
        *out = r;
    }
    return st;
}

tr_status
tr_sup_start_child(tr_runtime *rt, tr_ref sup, const void *arg, size_t arg_len,
                   tr_ref *out, uint32_t timeout_ms)
{
    if (out == NULL) {
        return TR_EINVAL;
    }
    return tr_ask_wait(rt, sup, SUP_START_CHILD, arg, arg_len, out, sizeof *out,
                       timeout_ms);
}

tr_status
tr_sup_stop_child(tr_runtime *rt, tr_ref sup, tr_ref child, uint32_t timeout_ms)
{
    return tr_ask_wait(rt, sup, SUP_STOP_CHILD, &child, sizeof child, NULL, 0,
                       timeout_ms);
}

tr_status
tr_sup_count_children(tr_runtime *rt, tr_ref sup, tr_sup_counts *out,
                      uint32_t timeout_ms)
{
    if (out == NULL) {
        return TR_EINVAL;
    }
    return tr_ask_wait(rt, sup, SUP_COUNT, NULL, 0, out, sizeof *out,
                       timeout_ms);
}

tr_status
tr_sup_which_children(tr_runtime *rt, tr_ref sup, uint32_t first,
                      tr_child_info *out, uint32_t max, uint32_t *n,
                      uint32_t timeout_ms)
{
    which_page *p;
    tr_status st;

    if (n == NULL || (out == NULL && max > 0)) {
        return TR_EINVAL;
    }
    p = tr__alloc(sizeof *p);
    if (p == NULL) {
        return TR_ENOMEM;
    }
    *n = 0;
    while (*n < max) {
        uint32_t at = first + *n;

        st = tr_ask_wait(rt, sup, SUP_WHICH, &at, sizeof at, p, sizeof *p,
                         timeout_ms);
        if (st != TR_OK || p->n == 0) {
            break;
        }
        for (uint32_t i = 0; i < p->n && *n < max; i++) {
            out[(*n)++] = p->info[i];
        }
        if (p->n < PAGE) {
            break;
        }
    }
    tr__free(p);
    return *n > 0 || max == 0 ? TR_OK : st;
}

/* A thread waiting for an actor's end: a small actor monitors it and
 * wakes the thread on its DOWN (or its own end). Two references on the
 * record: the thread's and the watcher's. */
typedef struct end_watch {
    tr__thread_waiter *tw;
    tr_ref target;
} end_watch;

static void
end_watch_done(tr__thread_waiter *tw)
{
    /* release: the thread's acquire load then sees the end. */
    atomic_store_explicit(&tw->futex, 1, memory_order_release);
    tr__futex_wake(&tw->futex, 1);
}

static tr_status
watch_init(tr_cx *cx, end_watch *self, const end_watch *arg)
{
    tr_monitor m;

    *self = *arg;
    return tr_monitor_actor(cx, self->target, &m);
}

static tr_status
watch_down(tr_cx *cx, end_watch *self, const tr_down *d)
{
    (void)self;
    (void)d;
    return tr_exit(cx, 0, NULL); /* the terminate hook tells the thread */
}

static tr_status
watch_terminate(tr_cx *cx, end_watch *self, const tr_reason *why)
{
    (void)cx;
    (void)why;
    end_watch_done(self->tw);
    tr__thread_waiter_put(self->tw);
    return TR_OK;
}

TR_ACTOR(tr__end_watch, end_watch, TR_ON_INIT(end_watch, watch_init),
         TR_ON(TR_MSG_DOWN, tr_down, watch_down),
         TR_ON_TERMINATE(watch_terminate));

tr_status
tr_sup_stop(tr_runtime *rt, tr_ref sup, uint32_t timeout_ms)
{
    end_watch ew = {NULL, sup};
    tr_spawn_opts o = {.arg = &ew, .arg_len = sizeof ew};
    uint64_t deadline = tr__now_ns() + (uint64_t)timeout_ms * 1000000u;
    tr_ref watcher;
    tr_status st;

    if (rt == NULL) {
        return TR_EINVAL;
    }
    if (tr__current_cx(rt) != NULL) {
        return TR_ESTATE;
    }
    ew.tw = tr__calloc(1, sizeof *ew.tw);
    if (ew.tw == NULL) {
        return TR_ENOMEM;
    }
    atomic_init(&ew.tw->refs, 2);
    st = tr_spawn(rt, &tr__end_watch, &o, &watcher);
    if (st != TR_OK) {
        tr__free(ew.tw);
        return st;
    }
    st = tr_send(rt, sup, SUP_STOP, NULL, 0);
    if (st == TR_OK) {
        for (;;) {
            uint64_t now = tr__now_ns();

            /* acquire: pairs with end_watch_done's release. */
            if (atomic_load_explicit(&ew.tw->futex, memory_order_acquire)) {
                break;
            }
            if (now >= deadline) {
                st = TR_ETIMEDOUT;
                break;
            }
            tr__futex_wait(&ew.tw->futex, 0, deadline - now);
        }
    }
    (void)tr_stop(rt, watcher); /* gone already, unless we gave up */
    tr__thread_waiter_put(ew.tw);
    return st;
}

static tr_status
walk(tr_runtime *rt, tr_ref s, uint32_t depth, tr_sup_walk_fn fn, void *arg,
     uint32_t timeout_ms)
{
    tr_child_info info[PAGE];
    uint32_t first = 0, n;
    tr_status st;

    do {
        st = tr_sup_which_children(rt, s, first, info, PAGE, &n, timeout_ms);
        if (st != TR_OK) {
            return st;
        }
        for (uint32_t i = 0; i < n; i++) {
            fn(arg, depth, &info[i]);
            if (info[i].supervisor) {
                st = walk(rt, info[i].ref, depth + 1, fn, arg, timeout_ms);
                if (st != TR_OK && st != TR_EDEAD) {
                    return st; /* one that just ended is skipped */
                }
            }
        }
        first += n;
    } while (n == PAGE);
    return TR_OK;
}

tr_status
tr_sup_walk(tr_runtime *rt, tr_ref sup, tr_sup_walk_fn fn, void *arg,
            uint32_t timeout_ms)
{
    if (fn == NULL) {
        return TR_EINVAL;
    }
    return walk(rt, sup, 1, fn, arg, timeout_ms);
}
