/* server/filter_plan.c — filters evaluated against a collection, and the
 * filtered-search planner (filter_plan.h).
 *
 * Decisions:
 * 1. The estimate is the smallest count of a must condition a payload index
 *    answers (exact for single-valued fields); anything else is unknown.
 * 2. Few pass (estimate <= max(QXS_FILTER_EXACT_MIN, n / QXS_FILTER_EXACT_DIV)):
 *    the index lists the candidates, each is tested against the whole
 *    filter, and the survivors are scored exactly — recall 1 by
 *    construction. Otherwise the IVF scan tests each candidate that would
 *    enter its heap and keeps probing lists, nearest first, until `limit`
 *    pass; the bound is every list (max_nprobe 0), so a reply is short only
 *    when fewer points pass in the whole collection.
 * 3. Point ids and payloads come through the store's contract calls; a
 *    payload is parsed only when an unindexed condition needs it.
 * 4. Filters correlated with the vectors (their passing points lie away
 *    from the query): when the estimate is known and the payload index can
 *    list the points, the scan is told to stop after its first nprobe lists
 *    if fewer than 1/QXS_FILTER_CORR_RATIO of the estimated pass rate passed
 *    there; qxs_filter_replan then searches the listed points, exactly (up
 *    to QXS_FILTER_AMONG_FRAC of the collection) or from their codes. The
 *    codes rank far points poorly (GloVe's 20 % integer range: 0.496 even
 *    with every passing point scored from its code), so probing further,
 *    the old answer, does not help.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "filter_plan.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "payload_index.h"

typedef struct lctx {
    qxs_coll *c;
    const uint8_t *payload;
    uint32_t plen;
    int load;
} lctx;

static json_t *load(void *ctx, int64_t key) {
    lctx *l = ctx;
    if (l->payload && l->plen) return json_loadb((const char *)l->payload, l->plen, 0, NULL);
    if (!l->load) return NULL;
    uint8_t *b = NULL;
    uint32_t len = 0;
    json_t *j = NULL;
    if (!qxs_coll_get_key_locked(l->c, key, NULL, NULL, &b, &len) && b) j = json_loadb((const char *)b, len, 0, NULL);
    qx_free(b);
    return j;
}

int qxs_filter_test(qxs_coll *c, const qxs_filter *f, const qxs_pid *id, int64_t rowkey, const uint8_t *payload,
                    uint32_t plen, int doload) {
    if (!f) return 1;
    lctx l = {c, payload, plen, doload};
    qxs_fpoint p = {.id = id, .key = rowkey, .load = load, .load_ctx = &l};
    int r = qxs_filter_match(f, &p);
    qxs_fpoint_done(&p);
    return r;
}

static int filter_cb(void *ctx, int64_t key) {
    const qxs_fsearch *s = ctx;
    qxs_pid pid;
    if (qxs_coll_get_key_locked(s->c, key, &pid, NULL, NULL, NULL)) return 0;
    return qxs_filter_test(s->c, s->f, &pid, key, NULL, 0, 1);
}

static long long estimate(const qxs_filter *f, const qxs_cond **best) {
    long long est = -1;
    *best = NULL;
    for (size_t i = 0; i < f->nmust; i++) {
        const qxs_cond *c = &f->must[i];
        if (!c->pidx) continue;
        long long n = qxs_pindex_estimate(c->pidx, c);
        if (n >= 0 && (est < 0 || n < est)) est = n, *best = c;
    }
    return est;
}

typedef struct klist {
    int64_t *k;
    size_t n, cap;
    int oom;
} klist;

static void add_key(void *ctx, int64_t key) {
    klist *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int64_t *k = qx_realloc(l->k, cap * sizeof *k);
        if (!k) {
            l->oom = 1;
            return;
        }
        l->k = k, l->cap = cap;
    }
    l->k[l->n++] = key;
}

static int cmp_key(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The planner's constants (filter_plan.h) can be overridden for measurement:
 * QX_FILTER_EXACT_FRAC, QX_FILTER_AMONG_FRAC, QX_FILTER_CORR_RATIO. */
static double among_v, exact_v, corr_v;
static pthread_once_t tun_once = PTHREAD_ONCE_INIT;
static double env_frac(const char *name, double def) {
    const char *e = getenv(name);
    double x = e ? strtod(e, NULL) : def;
    return x >= 0 && x <= 1 ? x : def;
}
static void tun_init(void) {
    among_v = env_frac("QX_FILTER_AMONG_FRAC", QXS_FILTER_AMONG_FRAC);
    exact_v = env_frac("QX_FILTER_EXACT_FRAC", 1.0 / QXS_FILTER_EXACT_DIV);
    const char *e = getenv("QX_FILTER_CORR_RATIO"); /* 0: never search again */
    corr_v = e ? strtod(e, NULL) : QXS_FILTER_CORR_RATIO;
    if (!(corr_v >= 0 && corr_v <= 1000)) corr_v = QXS_FILTER_CORR_RATIO;
}
static double among_frac(void) {
    pthread_once(&tun_once, tun_init);
    return among_v;
}
static double corr_ratio(void) {
    pthread_once(&tun_once, tun_init);
    return corr_v;
}
static double exact_frac(void) {
    pthread_once(&tun_once, tun_init);
    return exact_v;
}

/* Is the whole filter the one condition the index answers (so every key the
 * index lists passes, and testing them again is wasted)? */
static int index_is_filter(const qxs_filter *f, const qxs_cond *best) {
    return f->nmust == 1 && &f->must[0] == best && !f->nshould && !f->nmust_not && !f->has_min_should &&
           qxs_pindex_answers(best->pidx, best);
}

/* The keys that pass, without duplicates, into (keys, n): sorted when sort
 * is set (the exact path reads raw vectors in row order) or when the index
 * may list a key twice; the among path needs neither. */
static int list_passing(qxs_filter *f, const qxs_cond *best, qxs_fsearch *ctx, int sort, int64_t **keys,
                        size_t *n) {
    klist l = {0};
    int rep = 1;
    if (qxs_pindex_keys(best->pidx, best, add_key, &l, &rep) || l.oom) {
        qx_free(l.k);
        return qx_error_set(QX_ENOMEM, "filter candidates");
    }
    if (sort || rep) qsort(l.k, l.n, sizeof *l.k, cmp_key);
    int all = index_is_filter(f, best);
    size_t m = 0;
    for (size_t i = 0; i < l.n; i++)
        if ((!(sort || rep) || m == 0 || l.k[m - 1] != l.k[i]) && (all || filter_cb(ctx, l.k[i]))) l.k[m++] = l.k[i];
    *keys = l.k;
    *n = m;
    return 0;
}

int qxs_filter_plan(qxs_coll *c, qxs_filter *f, qxs_fsearch *ctx, qxs_search_opts *o, int64_t **keys,
                    long long *est_out) {
    *keys = NULL;
    ctx->c = c;
    ctx->f = f;
    const qxs_cond *best = NULL;
    pthread_rwlock_rdlock(&c->rw); /* index contents and the stored points, read */
    long long est = estimate(f, &best);
    size_t live = c->store.n_live, lim = (size_t)((double)live * exact_frac());
    if (lim < QXS_FILTER_EXACT_MIN) lim = QXS_FILTER_EXACT_MIN;
    int rc = 0;
    o->filter = filter_cb; /* the probing scan, unless few pass */
    o->filter_ctx = ctx;
    if (best && est <= (long long)lim) {
        size_t m = 0;
        if (!(rc = list_passing(f, best, ctx, 1, keys, &m))) {
            o->only_keys = *keys ? *keys : (int64_t *)&o->k; /* an empty list is not NULL */
            o->n_only_keys = m;
        }
    } else if (best && est > 0 && live && corr_ratio() > 0 && c->ivf &&
               ((double)est <= (double)live * among_frac() ||
                qx_quantizer_kind(qx_ivf_quantizer(c->ivf)) != QX_QUANT_FASTSCAN)) {
        /* decision 4: the scan stops after nprobe lists if the filter proves
         * correlated there, and qxs_filter_replan takes over */
        o->filter_stop_below = (double)est / (double)live / corr_ratio();
    }
    pthread_rwlock_unlock(&c->rw);
    if (est_out) *est_out = est;
    return rc;
}

int qxs_filter_replan(qxs_coll *c, qxs_filter *f, qxs_fsearch *ctx, qxs_search_opts *o, int64_t **keys,
                      size_t tested, size_t passed) {
    /* the scan's own stop rule (ivf.h filter_stop_below): it stopped early */
    if (o->only_keys || o->among_keys || !(o->filter_stop_below > 0) || tested < QX_FILTER_STOP_MIN_TESTED ||
        !((double)passed < o->filter_stop_below * (double)tested))
        return 0;
    const qxs_cond *best = NULL;
    pthread_rwlock_rdlock(&c->rw);
    long long est = estimate(f, &best);
    size_t live = c->store.n_live;
    int exact = (double)est <= (double)live * among_frac();
    int among = !exact && c->ivf && qx_quantizer_kind(qx_ivf_quantizer(c->ivf)) != QX_QUANT_FASTSCAN;
    size_t m = 0;
    int rc;
    if (!best) rc = qx_error_set(QX_ESTATE, "filtered search: the payload index went away");
    else if (!exact && !among) exact = 1; /* the index changed kind meanwhile: score exactly */
    if (best && !(rc = list_passing(f, best, ctx, exact, keys, &m))) {
        const int64_t *k = *keys ? *keys : (int64_t *)&o->k;
        if (exact) o->only_keys = k, o->n_only_keys = m;
        else o->among_keys = k, o->n_among_keys = m;
        rc = 1;
    }
    pthread_rwlock_unlock(&c->rw);
    return rc;
}
