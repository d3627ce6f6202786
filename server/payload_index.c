/* server/payload_index.c — one field's payload index (payload_index.h).
 *
 * Decisions:
 * 1. Every value is one 64-bit word: strings (keyword, and uuid in canonical
 *    form) are interned to a number, integers are themselves, floats their
 *    bits (-0.0 as 0.0), bools 0/1. So forward and inverted sides are plain
 *    open-addressing tables of words.
 * 2. The inverted side keeps, per distinct value, an append-only array of
 *    keys and a count of the keys that hold the value now ("live"). Removing
 *    a point decrements the count without searching the array; an array is
 *    compacted (stale and repeated keys dropped, checked against the forward
 *    side) once it is over twice its live count. Readers that list keys check
 *    each against the forward side, so stale entries never leak out; a key
 *    may still come twice, which callers tolerate.
 * 3. Counts for the planner come from the live counts: exact for a field
 *    with one value per point, an upper bound for multi-valued fields. A
 *    range counts by visiting the distinct values (cheap next to a search
 *    for the cardinalities the benchmarks use; a sorted side would make it
 *    logarithmic).
 * 5. Numeric fields (integer, float) also keep a sorted side: every live
 *    (value, key) pair sorted by value, so a range is two binary searches:
 *    an exact count in O(log n) and its keys listed in order of value
 *    (walking the value table instead touched every distinct value and
 *    each posting's separate array: 45 ms per query for a 20 % range over
 *    331,479 distinct integers). It is rebuilt from the inverted side by
 *    the first range listing after a write (O(n log n), under a mutex of
 *    its own since readers share the collection's read lock); the planner's
 *    estimate uses it only while it is fresh and samples otherwise.
 * 4. Interned strings are kept for the index's life even when no point holds
 *    them any more (a later write of the same value reuses the number).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qinx/idmap.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "payload_index.h"
#include "pointid_text.h"

typedef struct post {
    uint64_t val;
    int64_t *keys;
    uint32_t n, cap, live;
    uint8_t used;
} post;

typedef struct fwd {
    uint64_t v;      /* first value */
    uint64_t *more;  /* values 2..n */
    uint32_t n;
} fwd;

struct qxs_pindex {
    char *field;
    qxs_pseg *path;
    size_t npath;
    int type;
    /* interned strings */
    char **strs;
    uint32_t *slens;
    size_t nstr, capstr;
    uint32_t *stab; /* id + 1, 0 = empty */
    size_t stabcap;
    /* inverted side */
    post *posts;
    size_t pcap, pcount;
    /* forward side: key -> slot */
    qx_idmap fmap;
    fwd *slots;
    size_t nslots, capslots;
    uint32_t *freel;
    size_t nfree, capfree;
    size_t points;
    size_t multi; /* keys holding more than one value (a range may list them twice) */
    /* the sorted side of numeric fields (decision 5): (value, key) pairs by
     * value, rebuilt by the first range listing after a write */
    pthread_mutex_t smu;
    int sorted_ok;
    struct vk *sorted;
    size_t nsorted;
};

typedef struct vk {
    double v;
    int64_t key;
} vk;

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t str_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return mix(h);
}

int qxs_pindex_type_parse(const char *name) {
    if (!strcmp(name, "keyword")) return QXS_PI_KEYWORD;
    if (!strcmp(name, "integer")) return QXS_PI_INTEGER;
    if (!strcmp(name, "float")) return QXS_PI_FLOAT;
    if (!strcmp(name, "bool")) return QXS_PI_BOOL;
    if (!strcmp(name, "uuid")) return QXS_PI_UUID;
    return 0;
}

const char *qxs_pindex_type_name(int type) {
    static const char *const n[] = {"?", "keyword", "integer", "float", "bool", "uuid"};
    return type >= 1 && type <= 5 ? n[type] : "?";
}

int qxs_pindex_new(qxs_pindex **out, const char *field, int type, char *err, size_t errcap) {
    *out = NULL;
    if (type < QXS_PI_KEYWORD || type > QXS_PI_UUID) {
        snprintf(err, errcap, "unknown index type");
        return -1;
    }
    qxs_pindex *ix = qx_calloc(1, sizeof *ix);
    if (!ix || !(ix->field = qx_strdup(field))) {
        qx_free(ix);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    if (qxs_path_parse(field, &ix->path, &ix->npath, err, errcap)) {
        qx_free(ix->field);
        qx_free(ix);
        return -1;
    }
    ix->type = type;
    pthread_mutex_init(&ix->smu, NULL);
    *out = ix;
    return 0;
}

void qxs_pindex_free(qxs_pindex *ix) {
    if (!ix) return;
    for (size_t i = 0; i < ix->nstr; i++) qx_free(ix->strs[i]);
    qx_free(ix->strs);
    qx_free(ix->slens);
    qx_free(ix->stab);
    for (size_t i = 0; i < ix->pcap; i++) qx_free(ix->posts[i].keys);
    qx_free(ix->posts);
    for (size_t i = 0; i < ix->nslots; i++) qx_free(ix->slots[i].more);
    qx_free(ix->slots);
    qx_free(ix->freel);
    qx_idmap_free(&ix->fmap);
    qxs_path_free(ix->path, ix->npath);
    qx_free(ix->field);
    qx_free(ix->sorted);
    pthread_mutex_destroy(&ix->smu);
    qx_free(ix);
}

const char *qxs_pindex_field(const qxs_pindex *ix) { return ix->field; }
int qxs_pindex_type(const qxs_pindex *ix) { return ix->type; }
size_t qxs_pindex_points(const qxs_pindex *ix) { return ix->points; }

/* ---- interned strings ------------------------------------------------------ */

static int stab_grow(qxs_pindex *ix) {
    size_t cap = ix->stabcap ? ix->stabcap * 2 : 64;
    uint32_t *t = qx_calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < ix->nstr; i++) {
        size_t h = (size_t)str_hash(ix->strs[i], ix->slens[i]) & (cap - 1);
        while (t[h]) h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)i + 1;
    }
    qx_free(ix->stab);
    ix->stab = t;
    ix->stabcap = cap;
    return 0;
}

/* 1 and *id if s is interned (or was added when create), 0 if absent, -1 OOM */
static int intern(qxs_pindex *ix, const char *s, size_t len, int create, uint64_t *id) {
    if (ix->stabcap) {
        size_t h = (size_t)str_hash(s, len) & (ix->stabcap - 1);
        for (; ix->stab[h]; h = (h + 1) & (ix->stabcap - 1)) {
            uint32_t i = ix->stab[h] - 1;
            if (ix->slens[i] == len && !memcmp(ix->strs[i], s, len)) {
                *id = i;
                return 1;
            }
        }
    }
    if (!create) return 0;
    if (ix->nstr >= UINT32_MAX - 1) return -1;
    if ((ix->nstr + 1) * 2 > ix->stabcap && stab_grow(ix)) return -1;
    if (ix->nstr == ix->capstr) {
        size_t cap = ix->capstr ? ix->capstr * 2 : 16;
        char **a = qx_realloc(ix->strs, cap * sizeof *a);
        if (!a) return -1;
        ix->strs = a;
        uint32_t *l = qx_realloc(ix->slens, cap * sizeof *l);
        if (!l) return -1;
        ix->slens = l;
        ix->capstr = cap;
    }
    char *c = qx_malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = 0;
    ix->strs[ix->nstr] = c;
    ix->slens[ix->nstr] = (uint32_t)len;
    size_t h = (size_t)str_hash(s, len) & (ix->stabcap - 1);
    while (ix->stab[h]) h = (h + 1) & (ix->stabcap - 1);
    ix->stab[h] = (uint32_t)ix->nstr + 1;
    *id = ix->nstr++;
    return 1;
}

/* ---- values ------------------------------------------------------------------ */

/* Does a leaf fit the type? For uuid, canon receives the canonical text. */
static int fits(int type, const qxs_fv *v, char *canon) {
    switch (type) {
    case QXS_PI_KEYWORD: return v->t == QXS_FV_STR;
    case QXS_PI_INTEGER: return v->t == QXS_FV_INT;
    case QXS_PI_FLOAT: return v->t == QXS_FV_INT || v->t == QXS_FV_REAL;
    case QXS_PI_BOOL: return v->t == QXS_FV_BOOL;
    case QXS_PI_UUID: {
        qxs_pid p;
        if (v->t != QXS_FV_STR || !qxs_pid_parse_uuid(v->s, v->len, &p)) return 0;
        qxs_pid_format(&p, canon);
        return 1;
    }
    default: return 0;
    }
}

/* Word of a fitting leaf; create interns new strings. 1 ok, 0 unknown string, -1 OOM */
static int word_of(qxs_pindex *ix, const qxs_fv *v, int create, uint64_t *w) {
    char canon[QXS_PID_STRLEN];
    if (!fits(ix->type, v, canon)) return 0;
    switch (ix->type) {
    case QXS_PI_KEYWORD: return intern(ix, v->s, v->len, create, w);
    case QXS_PI_UUID: return intern(ix, canon, 36, create, w);
    case QXS_PI_INTEGER: *w = (uint64_t)v->i; return 1;
    case QXS_PI_BOOL: *w = (uint64_t)v->i; return 1;
    default: {
        double d = v->d == 0 ? 0.0 : v->d;
        memcpy(w, &d, 8);
        return 1;
    }
    }
}

static void fv_of_word(const qxs_pindex *ix, uint64_t w, qxs_fv *v) {
    memset(v, 0, sizeof *v);
    switch (ix->type) {
    case QXS_PI_KEYWORD:
    case QXS_PI_UUID: v->t = QXS_FV_STR, v->s = ix->strs[w], v->len = ix->slens[w]; break;
    case QXS_PI_INTEGER: v->t = QXS_FV_INT, v->i = (int64_t)w, v->d = (double)v->i; break;
    case QXS_PI_BOOL: v->t = QXS_FV_BOOL, v->i = (int64_t)w; break;
    default: v->t = QXS_FV_REAL, memcpy(&v->d, &w, 8); break;
    }
}

typedef struct check_ctx {
    const qxs_pindex *ix;
    char *err;
    size_t cap;
    int bad;
} check_ctx;

static int check_leaf(void *ctx, const qxs_fv *v) {
    check_ctx *c = ctx;
    char canon[QXS_PID_STRLEN];
    if (fits(c->ix->type, v, canon)) return 0;
    char shown[64];
    if (v->t == QXS_FV_STR) snprintf(shown, sizeof shown, "\"%.40s\"", v->s);
    else if (v->t == QXS_FV_INT) snprintf(shown, sizeof shown, "%lld", (long long)v->i);
    else if (v->t == QXS_FV_REAL) snprintf(shown, sizeof shown, "%g", v->d);
    else if (v->t == QXS_FV_BOOL) snprintf(shown, sizeof shown, "%s", v->i ? "true" : "false");
    else snprintf(shown, sizeof shown, "an object or nested array");
    static const char *const what[] = {"?", "a string", "an integer", "a number", "a boolean", "a UUID string"};
    snprintf(c->err, c->cap, "payload field '%.80s': %s is not %s (the field has a %s index)", c->ix->field, shown,
             what[c->ix->type], qxs_pindex_type_name(c->ix->type));
    c->bad = 1;
    return 1;
}

int qxs_pindex_check(const qxs_pindex *ix, const json_t *payload, char *err, size_t errcap) {
    check_ctx c = {ix, err, errcap, 0};
    qxs_path_leaves(payload, ix->path, ix->npath, check_leaf, &c, NULL);
    return c.bad ? -1 : 0;
}

/* ---- inverted side ------------------------------------------------------------ */

static post *post_find(const qxs_pindex *ix, uint64_t val) {
    if (!ix->pcap) return NULL;
    size_t h = (size_t)mix(val) & (ix->pcap - 1);
    for (; ix->posts[h].used; h = (h + 1) & (ix->pcap - 1))
        if (ix->posts[h].val == val) return &ix->posts[h];
    return NULL;
}

static post *post_get(qxs_pindex *ix, uint64_t val) {
    post *p = post_find(ix, val);
    if (p) return p;
    if ((ix->pcount + 1) * 2 > ix->pcap) {
        size_t cap = ix->pcap ? ix->pcap * 2 : 16;
        post *t = qx_calloc(cap, sizeof *t);
        if (!t) return NULL;
        for (size_t i = 0; i < ix->pcap; i++) {
            if (!ix->posts[i].used) continue;
            size_t h = (size_t)mix(ix->posts[i].val) & (cap - 1);
            while (t[h].used) h = (h + 1) & (cap - 1);
            t[h] = ix->posts[i];
        }
        qx_free(ix->posts);
        ix->posts = t;
        ix->pcap = cap;
    }
    size_t h = (size_t)mix(val) & (ix->pcap - 1);
    while (ix->posts[h].used) h = (h + 1) & (ix->pcap - 1);
    ix->posts[h].used = 1;
    ix->posts[h].val = val;
    ix->pcount++;
    return &ix->posts[h];
}

static const fwd *fwd_of(const qxs_pindex *ix, int64_t key) {
    uint64_t slot;
    if (!qx_idmap_get(&ix->fmap, key, &slot)) return NULL;
    return &ix->slots[slot];
}

static int fwd_has(const qxs_pindex *ix, int64_t key, uint64_t val) {
    const fwd *f = fwd_of(ix, key);
    if (!f) return 0;
    if (f->v == val) return 1;
    for (uint32_t i = 1; i < f->n; i++)
        if (f->more[i - 1] == val) return 1;
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void post_compact(qxs_pindex *ix, post *p) {
    uint32_t o = 0;
    for (uint32_t i = 0; i < p->n; i++)
        if (fwd_has(ix, p->keys[i], p->val)) p->keys[o++] = p->keys[i];
    qsort(p->keys, o, sizeof *p->keys, cmp_i64);
    uint32_t u = 0;
    for (uint32_t i = 0; i < o; i++)
        if (u == 0 || p->keys[u - 1] != p->keys[i]) p->keys[u++] = p->keys[i];
    p->n = u;
    p->live = u;
    if (u == 0) {
        qx_free(p->keys);
        p->keys = NULL;
        p->cap = 0;
    }
}

static int post_add(qxs_pindex *ix, uint64_t val, int64_t key) {
    post *p = post_get(ix, val);
    if (!p) return -1;
    if (p->n == p->cap) {
        if (p->n > 2 * (size_t)p->live + 8) post_compact(ix, p);
        if (p->n == p->cap) {
            if (p->cap >= UINT32_MAX / 2) return -1;
            uint32_t cap = p->cap ? p->cap * 2 : 4;
            int64_t *k = qx_realloc(p->keys, cap * sizeof *k);
            if (!k) return -1;
            p->keys = k;
            p->cap = cap;
        }
    }
    p->keys[p->n++] = key;
    p->live++;
    return 0;
}

/* ---- forward side -------------------------------------------------------------- */

void qxs_pindex_remove(qxs_pindex *ix, int64_t key) {
    uint64_t slot;
    if (!qx_idmap_get(&ix->fmap, key, &slot)) return;
    ix->sorted_ok = 0; /* writers are exclusive: no reader holds the sorted side */
    fwd f = ix->slots[slot];
    memset(&ix->slots[slot], 0, sizeof f);
    qx_idmap_del(&ix->fmap, key);
    ix->freel[ix->nfree++] = (uint32_t)slot; /* capfree >= nslots always */
    ix->points--;
    if (f.n > 1) ix->multi--;
    for (uint32_t i = 0; i < f.n; i++) {
        post *p = post_find(ix, i ? f.more[i - 1] : f.v);
        if (!p) continue;
        p->live--;
        if (p->n > 2 * (size_t)p->live + 8) post_compact(ix, p);
    }
    qx_free(f.more);
}

typedef struct collect_ctx {
    qxs_pindex *ix;
    uint64_t *w;
    size_t n, cap;
    int oom;
} collect_ctx;

static int collect_leaf(void *ctx, const qxs_fv *v) {
    collect_ctx *c = ctx;
    uint64_t w;
    int r = word_of(c->ix, v, 1, &w);
    if (r < 0) return c->oom = 1;
    if (r == 0) return 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->w[i] == w) return 0; /* one entry per distinct value */
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        uint64_t *t = qx_realloc(c->w, cap * sizeof *t);
        if (!t) return c->oom = 1;
        c->w = t;
        c->cap = cap;
    }
    c->w[c->n++] = w;
    return 0;
}

int qxs_pindex_set(qxs_pindex *ix, int64_t key, const json_t *payload) {
    collect_ctx c = {ix, NULL, 0, 0, 0};
    qxs_path_leaves(payload, ix->path, ix->npath, collect_leaf, &c, NULL);
    qxs_pindex_remove(ix, key);
    int rc = 0;
    if (c.oom) rc = qx_error_set(QX_ENOMEM, "payload index of '%s'", ix->field);
    if (rc || c.n == 0) goto out;
    if (ix->nfree == 0) {
        if (ix->nslots == ix->capslots) {
            size_t cap = ix->capslots ? ix->capslots * 2 : 64;
            fwd *s = qx_realloc(ix->slots, cap * sizeof *s);
            if (!s) goto oom;
            ix->slots = s;
            uint32_t *fl = qx_realloc(ix->freel, cap * sizeof *fl);
            if (!fl) goto oom;
            ix->freel = fl;
            ix->capslots = ix->capfree = cap;
        }
        ix->freel[ix->nfree++] = (uint32_t)ix->nslots++;
    }
    if (qx_idmap_reserve(&ix->fmap, ix->points + 1)) goto oom;
    uint32_t slot = ix->freel[--ix->nfree];
    fwd *f = &ix->slots[slot];
    f->v = c.w[0];
    f->n = (uint32_t)c.n;
    f->more = NULL;
    if (c.n > 1) {
        f->more = qx_malloc((c.n - 1) * sizeof *f->more);
        if (!f->more) {
            ix->freel[ix->nfree++] = slot;
            goto oom;
        }
        memcpy(f->more, c.w + 1, (c.n - 1) * sizeof *f->more);
    }
    qx_idmap_put(&ix->fmap, key, slot);
    ix->sorted_ok = 0;
    ix->points++;
    if (c.n > 1) ix->multi++;
    for (size_t i = 0; i < c.n; i++)
        if (post_add(ix, c.w[i], key)) {
            /* keep the sides consistent: the key leaves the index */
            qxs_pindex_remove(ix, key);
            goto oom;
        }
    goto out;
oom:
    rc = qx_error_set(QX_ENOMEM, "payload index of '%s'", ix->field);
out:
    qx_free(c.w);
    return rc;
}

size_t qxs_pindex_each(const qxs_pindex *ix, int64_t key, qxs_leaf_fn fn, void *ctx) {
    const fwd *f = fwd_of(ix, key);
    if (!f) return 0;
    for (uint32_t i = 0; i < f->n; i++) {
        qxs_fv v;
        fv_of_word(ix, i ? f->more[i - 1] : f->v, &v);
        if (fn(ctx, &v)) return i + 1;
    }
    return f->n;
}

/* ---- planning ------------------------------------------------------------------- */

static int canonical_uuid(const qxs_fv *v) {
    qxs_pid p;
    char canon[QXS_PID_STRLEN];
    if (v->t != QXS_FV_STR || !qxs_pid_parse_uuid(v->s, v->len, &p)) return 0;
    qxs_pid_format(&p, canon);
    return v->len == 36 && !memcmp(canon, v->s, 36);
}

int qxs_pindex_answers(const qxs_pindex *ix, const qxs_cond *c) {
    if (!c->key || strcmp(c->key, ix->field)) return 0;
    int k = c->kind, match = k == QXS_C_MATCH_VALUE || k == QXS_C_MATCH_ANY || k == QXS_C_MATCH_EXCEPT;
    if (k == QXS_C_IS_EMPTY) return 1;
    switch (ix->type) {
    case QXS_PI_KEYWORD: return match || k == QXS_C_MATCH_TEXT;
    case QXS_PI_INTEGER: return match || k == QXS_C_RANGE;
    case QXS_PI_FLOAT: return k == QXS_C_RANGE;
    case QXS_PI_BOOL: return match;
    case QXS_PI_UUID:
        if (!match) return 0;
        for (size_t i = 0; i < c->nvals; i++)
            if (c->vals[i].t == QXS_FV_STR && !canonical_uuid(&c->vals[i])) return 0;
        return 1;
    default: return 0;
    }
}

static int range_ok(const qxs_cond *c, double d) {
    return (!c->has_gt || d > c->gt) && (!c->has_gte || d >= c->gte) && (!c->has_lt || d < c->lt) &&
           (!c->has_lte || d <= c->lte);
}

/* ---- the sorted side (decision 5) ------------------------------------------- */

static int numeric(const qxs_pindex *ix) { return ix->type == QXS_PI_INTEGER || ix->type == QXS_PI_FLOAT; }

static int cmp_vk(const void *a, const void *b) {
    const vk *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Build the sorted side if a write made it stale; 0, or -1 out of memory.
 * Callers hold the collection's read lock (no writer runs), so the inverted
 * side is stable; smu orders concurrent readers. */
static int sorted_fresh(const qxs_pindex *cix) {
    qxs_pindex *ix = (qxs_pindex *)cix; /* the cache, not the contents */
    pthread_mutex_lock(&ix->smu);
    int rc = 0;
    if (!ix->sorted_ok) {
        size_t n = 0;
        for (size_t i = 0; i < ix->pcap; i++)
            if (ix->posts[i].used && ix->posts[i].live) n += ix->posts[i].n; /* entries >= live keys */
        vk *a = qx_malloc((n ? n : 1) * sizeof *a);
        if (!a) {
            rc = -1;
        } else {
            size_t m = 0;
            for (size_t i = 0; i < ix->pcap; i++) {
                const post *p = &ix->posts[i];
                if (!p->used || !p->live) continue;
                qxs_fv v;
                fv_of_word(ix, p->val, &v);
                for (uint32_t j = 0; j < p->n; j++)
                    if (p->n == p->live || fwd_has(ix, p->keys[j], p->val)) a[m++] = (vk){v.d, p->keys[j]};
            }
            qsort(a, m, sizeof *a, cmp_vk);
            size_t u = 0; /* a stale posting may hold a key twice */
            for (size_t j = 0; j < m; j++)
                if (u == 0 || a[u - 1].v != a[j].v || a[u - 1].key != a[j].key) a[u++] = a[j];
            qx_free(ix->sorted);
            ix->sorted = a;
            ix->nsorted = u;
            ix->sorted_ok = 1;
        }
    }
    pthread_mutex_unlock(&ix->smu);
    return rc;
}

/* [*lo, *hi) of the sorted side passing the range c. */
static void sorted_span(const qxs_pindex *ix, const qxs_cond *c, size_t *lo, size_t *hi) {
    size_t a = 0, b = ix->nsorted;
    while (a < b) { /* first pair above the lower bound */
        size_t m = a + (b - a) / 2;
        double v = ix->sorted[m].v;
        int below = (c->has_gt && v <= c->gt) || (c->has_gte && v < c->gte);
        if (below) a = m + 1;
        else b = m;
    }
    *lo = a;
    b = ix->nsorted;
    while (a < b) { /* first pair above the upper bound */
        size_t m = a + (b - a) / 2;
        double v = ix->sorted[m].v;
        int above = (c->has_lt && v >= c->lt) || (c->has_lte && v > c->lte);
        if (above) b = m;
        else a = m + 1;
    }
    *hi = a;
}

/* calls fn on each posting whose value passes c; -1 if c is not listable */
static int each_post(const qxs_pindex *ix, const qxs_cond *c, void (*fn)(void *, const post *), void *ctx) {
    if (!qxs_pindex_answers(ix, c)) return -1;
    if (c->kind == QXS_C_MATCH_VALUE || c->kind == QXS_C_MATCH_ANY) {
        for (size_t i = 0; i < c->nvals; i++) {
            uint64_t w;
            /* const: lookups never intern (create = 0) */
            if (word_of((qxs_pindex *)ix, &c->vals[i], 0, &w) != 1) continue;
            if (ix->type == QXS_PI_FLOAT) continue;
            int dup = 0; /* the same value given twice counts once */
            for (size_t j = 0; j < i; j++) {
                uint64_t w2;
                if (word_of((qxs_pindex *)ix, &c->vals[j], 0, &w2) == 1 && w2 == w) dup = 1;
            }
            const post *p = dup ? NULL : post_find(ix, w);
            if (p) fn(ctx, p);
        }
        return 0;
    }
    if (c->kind == QXS_C_RANGE) {
        for (size_t i = 0; i < ix->pcap; i++) {
            const post *p = &ix->posts[i];
            if (!p->used || !p->live) continue;
            qxs_fv v;
            fv_of_word(ix, p->val, &v);
            if (range_ok(c, v.d)) fn(ctx, p);
        }
        return 0;
    }
    if (c->kind == QXS_C_MATCH_TEXT && ix->type == QXS_PI_KEYWORD) {
        const qxs_fv *t = &c->vals[0];
        for (size_t i = 0; i < ix->pcap; i++) {
            const post *p = &ix->posts[i];
            if (!p->used || !p->live) continue;
            const char *s = ix->strs[p->val];
            size_t n = ix->slens[p->val];
            int hit = t->len == 0;
            for (size_t j = 0; !hit && j + t->len <= n; j++) hit = !memcmp(s + j, t->s, t->len);
            if (hit) fn(ctx, p);
        }
        return 0;
    }
    return -1;
}

static void sum_live(void *ctx, const post *p) { *(long long *)ctx += p->live; }

long long qxs_pindex_count(const qxs_pindex *ix, const qxs_cond *c) {
    if (c->kind == QXS_C_RANGE && numeric(ix) && qxs_pindex_answers(ix, c) && !sorted_fresh(ix)) {
        size_t lo, hi;
        sorted_span(ix, c, &lo, &hi);
        return (long long)(hi - lo);
    }
    long long n = 0;
    if (each_post(ix, c, sum_live, &n)) return -1;
    return n;
}

/* The planner's estimate. A range over a field with many distinct values
 * would visit every one of them per query (331,479 on the GloVe benchmark's
 * integer field: tens of ms); instead it sums the matching live counts in
 * the first QXS_PI_SAMPLE_SLOTS slots of the value table and scales up.
 * Values sit in the table in hash order, so those slots are a uniform
 * sample; the estimate only picks between exact scoring and the IVF scan,
 * both of which test every result against the filter. */
#define QXS_PI_SAMPLE_SLOTS 16384
long long qxs_pindex_estimate(const qxs_pindex *ix, const qxs_cond *c) {
    if (c->kind != QXS_C_RANGE || !qxs_pindex_answers(ix, c)) return qxs_pindex_count(ix, c);
    pthread_mutex_lock((pthread_mutex_t *)&ix->smu);
    int fresh = ix->sorted_ok;
    pthread_mutex_unlock((pthread_mutex_t *)&ix->smu);
    if (fresh || ix->pcap <= 4 * QXS_PI_SAMPLE_SLOTS) return qxs_pindex_count(ix, c);
    long long n = 0;
    for (size_t i = 0; i < QXS_PI_SAMPLE_SLOTS; i++) {
        const post *p = &ix->posts[i];
        if (!p->used || !p->live) continue;
        qxs_fv v;
        fv_of_word(ix, p->val, &v);
        if (range_ok(c, v.d)) n += p->live;
    }
    return (long long)((double)n * (double)ix->pcap / QXS_PI_SAMPLE_SLOTS);
}

typedef struct keys_ctx {
    const qxs_pindex *ix;
    void (*fn)(void *, int64_t);
    void *ctx;
    int stale; /* a posting with stale entries was listed */
} keys_ctx;

/* A posting with as many entries as live keys has no stale ones (a key that
 * leaves a value leaves its entry behind, and set() always removes first):
 * its keys are listed without looking each up (the forward map's hash
 * lookups were most of a listing's time). */
static void post_keys(void *ctx, const post *p) {
    keys_ctx *k = ctx;
    if (p->n == p->live) {
        for (uint32_t i = 0; i < p->n; i++) k->fn(k->ctx, p->keys[i]);
        return;
    }
    k->stale = 1;
    for (uint32_t i = 0; i < p->n; i++)
        if (fwd_has(k->ix, p->keys[i], p->val)) k->fn(k->ctx, p->keys[i]);
}

int qxs_pindex_keys(const qxs_pindex *ix, const qxs_cond *c, void (*fn)(void *ctx, int64_t key), void *ctx,
                    int *may_repeat) {
    if (c->kind == QXS_C_RANGE && numeric(ix) && qxs_pindex_answers(ix, c)) {
        if (sorted_fresh(ix)) return -1;
        size_t lo, hi;
        sorted_span(ix, c, &lo, &hi);
        for (size_t i = lo; i < hi; i++) fn(ctx, ix->sorted[i].key);
        if (may_repeat) *may_repeat = ix->multi > 0;
        return 0;
    }
    keys_ctx k = {ix, fn, ctx, 0};
    int rc = each_post(ix, c, post_keys, &k);
    if (may_repeat) *may_repeat = k.stale || ix->multi > 0;
    return rc;
}

size_t qxs_pindex_bytes(const qxs_pindex *ix) {
    size_t b = sizeof *ix + ix->capstr * (sizeof(char *) + sizeof(uint32_t)) + ix->stabcap * sizeof(uint32_t);
    for (size_t i = 0; i < ix->nstr; i++) b += ix->slens[i] + 1;
    b += ix->pcap * sizeof(post) + ix->nsorted * sizeof(vk);
    for (size_t i = 0; i < ix->pcap; i++) b += (size_t)ix->posts[i].cap * sizeof(int64_t);
    b += ix->fmap.cap * (sizeof(int64_t) + sizeof(uint64_t) + 1);
    b += ix->capslots * (sizeof(fwd) + sizeof(uint32_t));
    for (size_t i = 0; i < ix->nslots; i++)
        if (ix->slots[i].n > 1) b += (ix->slots[i].n - 1) * sizeof(uint64_t);
    return b;
}
