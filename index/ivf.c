/* index/ivf.c — IVF index life cycle: create, train, add (upsert), remove,
 * info and the structural checker. Search is in ivf_search.c, the file
 * format in ivf_io.c.
 *
 * Decisions:
 * 1. Residual encoding: a vector x in list l is stored as the code of
 *    x − c_l, so the quantizer spends its bits on the local structure.
 * 2. For L2 one extra byte holds ||x̂||² (x̂ = c_l + decoded residual) on 256
 *    levels fitted by 1-D k-means to the training set: with it, the distance
 *    ||q − x̂||² = ||q||² − 2⟨q,c_l⟩ − 2Σ_m⟨q,a_m⟩ + ||x̂||² needs only one LUT
 *    per query, shared by every list (FAISS's IVF-RQ "_Nqint8" idea).
 * 3. Deletes swap the list's last entry into the hole and fix its id-map
 *    slot: O(1), lists stay dense, no tombstones or compaction pass.
 * 4. Adds work in chunks so memory stays bounded for any n.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ivf_impl.h"
#include "qinx/derp.h"
#include "qinx/kmeans.h"

#define QX__ADD_CHUNK QX_IVF_ADD_BATCH
#define QX__MIN_POINTS_PER_LIST 39
#define QX__NORM_SAMPLE 65536

void qx_ivf_opts_init(qx_ivf_opts *o) {
    memset(o, 0, sizeof *o);
    o->nlist = 1024;
    o->metric = QX_METRIC_L2;
    o->kmeans_iters = 20;
    o->seed = 1234;
}

void qx_search_params_init(qx_search_params *p) {
    memset(p, 0, sizeof *p);
    p->nprobe = 16;
}

int qx_ivf_new(qx_ivf **out, size_t d, qx_quantizer *quant, const qx_ivf_opts *opts) {
    qx_ivf_opts def;
    if (!opts) qx_ivf_opts_init(&def), opts = &def;
    if (!out || !quant) {
        qx_quantizer_free(quant);
        return qx__fail(QX_EINVAL, "ivf_new: NULL argument");
    }
    *out = NULL;
    if (d == 0 || d > 65536 || qx_quantizer_dim(quant) != d) {
        size_t qd = qx_quantizer_dim(quant);
        qx_quantizer_free(quant);
        return qx__fail(QX_EDIM, "ivf_new: index dimension %zu, quantizer dimension %zu", d, qd);
    }
    if (opts->nlist == 0 || opts->nlist > QX_MAX_NLIST) {
        qx_quantizer_free(quant);
        return qx__fail(QX_EINVAL, "ivf_new: nlist %zu outside 1..%d", opts->nlist, QX_MAX_NLIST);
    }
    if (opts->metric != QX_METRIC_L2 && opts->metric != QX_METRIC_IP) {
        qx_quantizer_free(quant);
        return qx__fail(QX_EINVAL, "ivf_new: unknown metric %d", (int)opts->metric);
    }
    qx_ivf *ivf = qx__calloc(1, sizeof *ivf);
    if (!ivf) {
        qx_quantizer_free(quant);
        return qx__fail(QX_ENOMEM, "ivf_new");
    }
    ivf->d = d;
    ivf->opts = *opts;
    ivf->nlist = opts->nlist;
    ivf->quant = quant;
    ivf->M = qx_quantizer_steps(quant);
    ivf->has_norm = opts->metric == QX_METRIC_L2;
    ivf->code_size = ivf->M + (size_t)ivf->has_norm;
    qx__ivf_fs_setup(ivf); /* fast-scan kind: the split of its codes */
    *out = ivf;
    return 0;
}

static void free_lists(qx_ivf *ivf) {
    if (!ivf->lists) return;
    for (size_t l = 0; l < ivf->nlist; l++) {
        qx__aligned_free(ivf->lists[l].codes);
        qx__aligned_free(ivf->lists[l].fsb);
        qx__free(ivf->lists[l].ids);
    }
    qx__free(ivf->lists);
    ivf->lists = NULL;
}

void qx_ivf_free(qx_ivf *ivf) {
    if (!ivf) return;
    free_lists(ivf);
    qx__aligned_free(ivf->centroids);
    qx__free(ivf->centroid_norms);
    qx__coarse2_free(ivf->coarse2);
    qx__idmap_free(&ivf->ids);
    qx_derp_reservoir_free(ivf->reservoir);
    qx_quantizer_free(ivf->quant);
    qx__free(ivf);
}

void qx_ivf_set_progress(qx_ivf *ivf, qx_progress_fn fn, void *ctx) {
    ivf->progress = fn;
    ivf->progress_ctx = ctx;
    qx_quantizer_set_progress(ivf->quant, fn, ctx);
}

const qx_quantizer *qx_ivf_quantizer(const qx_ivf *ivf) { return ivf->quant; }
const qx_derp_reservoir *qx_ivf_reservoir(const qx_ivf *ivf) { return ivf->reservoir; }
const float *qx_ivf_centroids(const qx_ivf *ivf) { return ivf->centroids; }

/* ---- the norm byte --------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void qx__norm_fit(float *levels, float *norms, size_t n) {
    qsort(norms, n, sizeof(float), cmp_float);
    /* Start from quantiles, then Lloyd iterations over the sorted sample:
     * a level's cell is the run of norms between the midpoints around it. */
    for (int k = 0; k < QX__NORM_LEVELS; k++)
        levels[k] = n ? norms[(size_t)((k + 0.5) * n / QX__NORM_LEVELS)] : 0.f;
    for (int it = 0; it < 20 && n; it++) {
        size_t lo = 0;
        for (int k = 0; k < QX__NORM_LEVELS; k++) {
            float upper = k + 1 < QX__NORM_LEVELS ? 0.5f * (levels[k] + levels[k + 1]) : INFINITY;
            size_t hi = lo;
            double sum = 0;
            while (hi < n && norms[hi] <= upper) sum += norms[hi++];
            if (hi > lo) levels[k] = (float)(sum / (double)(hi - lo));
            lo = hi;
        }
        qsort(levels, QX__NORM_LEVELS, sizeof(float), cmp_float);
    }
}

uint8_t qx__norm_encode(const float *levels, float v) {
    int lo = 0, hi = QX__NORM_LEVELS - 1;
    while (lo < hi) { /* first level >= v */
        int mid = (lo + hi) / 2;
        if (levels[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0 && v - levels[lo - 1] < levels[lo] - v) lo--;
    return (uint8_t)lo;
}

/* ---- training ---------------------------------------------------------------- */

/* The centroid of each vector's list (n × d): the context a quantizer that
 * uses one (QINCo conditioned on the centroid) starts from. */
void qx_ivf_centroid_rows(const qx_ivf *ivf, const uint32_t *lists, size_t n, float *out) {
    size_t d = ivf->d;
    for (size_t i = 0; i < n; i++) memcpy(out + i * d, ivf->centroids + (size_t)lists[i] * d, sizeof(float) * d);
}

static int residuals_of(const qx_ivf *ivf, const float *x, const uint32_t *list, size_t n,
                        float *res) {
    size_t d = ivf->d;
    for (size_t i = 0; i < n; i++) {
        const float *c = ivf->centroids + (size_t)list[i] * d;
        for (size_t j = 0; j < d; j++) res[i * d + j] = x[i * d + j] - c[j];
    }
    return 0;
}

int qx__ivf_encode(const qx_ivf *ivf, const float *x, const uint32_t *list, size_t n,
                   uint8_t *codes) {
    size_t d = ivf->d, M = ivf->M, cs = ivf->code_size;
    int uses_ctx = qx_quantizer_uses_context(ivf->quant);
    float *res = qx__aligned_alloc(sizeof(float) * n * d);
    float *ctx = uses_ctx ? qx__aligned_alloc(sizeof(float) * n * d) : NULL;
    uint8_t *raw = qx__malloc(n * M);
    int rc = 0;
    if (!res || !raw || (uses_ctx && !ctx)) rc = qx__fail(QX_ENOMEM, "ivf encode: %zu vectors", n);
    if (rc == 0) rc = residuals_of(ivf, x, list, n, res);
    if (rc == 0 && ctx) qx_ivf_centroid_rows(ivf, list, n, ctx);
    if (rc == 0) rc = qx_quantizer_encode_ctx(ivf->quant, res, ctx, n, raw);
    /* the fast-scan kind stores the norm of its 4-bit part (ivf_fastscan.c) */
    size_t norm_steps = ivf->fs_pairs ? ivf->fs_half : 0;
    if (rc == 0 && ivf->has_norm) rc = qx_quantizer_decode_ctx(ivf->quant, raw, ctx, n, norm_steps, res);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        memcpy(codes + i * cs, raw + i * M, M);
        if (ivf->has_norm) {
            const float *c = ivf->centroids + (size_t)list[i] * d;
            double nn = 0;
            for (size_t j = 0; j < d; j++) {
                double v = (double)c[j] + res[i * d + j];
                nn += v * v;
            }
            codes[i * cs + M] = ivf->fs_pairs ? qx__ivf_fs_norm_encode(ivf->norm_levels, (float)nn)
                                              : qx__norm_encode(ivf->norm_levels, (float)nn);
        }
    }
    qx__aligned_free(res);
    qx__aligned_free(ctx);
    qx__free(raw);
    return rc;
}

static int check_input(const qx_ivf *ivf, const float *x, size_t n, const char *what) {
    size_t total;
    if (!x && n) return qx__fail(QX_EINVAL, "%s: NULL vectors", what);
    if (!qx__mul(n, ivf->d, &total)) return qx__fail(QX_ENOMEM, "%s: n*d overflows", what);
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "%s: vector %zu has a NaN or Inf at dimension %zu", what,
                        (size_t)bad / ivf->d, (size_t)bad % ivf->d);
    return 0;
}

int qx_ivf_train(qx_ivf *ivf, const float *x, size_t n) {
    if (!ivf) return qx__fail(QX_EINVAL, "ivf_train: NULL index");
    if (ivf->trained) return qx__fail(QX_ESTATE, "ivf_train: index is already trained");
    int rc = check_input(ivf, x, n, "ivf_train");
    if (rc) return rc;
    size_t need = QX_KSUB > QX__MIN_POINTS_PER_LIST ? QX_KSUB : QX__MIN_POINTS_PER_LIST;
    if (n < need) return qx__fail(QX_EINVAL, "ivf_train: %zu vectors, need at least %zu", n, need);
    if (n < ivf->nlist * QX__MIN_POINTS_PER_LIST) {
        /* Too few points per list give empty or noisy lists (FAISS warns at 39). */
        ivf->nlist = n / QX__MIN_POINTS_PER_LIST ? n / QX__MIN_POINTS_PER_LIST : 1;
        ivf->opts.nlist = ivf->nlist;
    }
    size_t d = ivf->d, nlist = ivf->nlist;
    ivf->centroids = qx__aligned_alloc(sizeof(float) * nlist * d);
    ivf->centroid_norms = qx__malloc(sizeof(float) * nlist);
    ivf->lists = qx__calloc(nlist, sizeof(qx__ivf_list));
    uint32_t *assign = qx__malloc(sizeof(uint32_t) * n);
    float *res = qx__aligned_alloc(sizeof(float) * n * d), *ctx = NULL;
    if (!ivf->centroids || !ivf->centroid_norms || !ivf->lists || !assign || !res) {
        rc = qx__fail(QX_ENOMEM, "ivf_train: %zu lists of dimension %zu", nlist, d);
        goto out;
    }
    /* Keep a sample of what the index was trained on: the reference of
     * DERP's drift checks, saved with the index. */
    qx_derp_reservoir_free(ivf->reservoir);
    ivf->reservoir = NULL;
    if ((rc = qx_derp_reservoir_new(&ivf->reservoir, d, 0, ivf->opts.seed)) ||
        (rc = qx_derp_reservoir_add(ivf->reservoir, x, n)))
        goto out;
    qx__ivf_report(ivf, "coarse k-means", 0.0);
    qx_kmeans_opts ko;
    qx_kmeans_opts_init(&ko);
    ko.niter = ivf->opts.kmeans_iters;
    ko.seed = ivf->opts.seed;
    if ((rc = qx_kmeans(x, n, d, nlist, &ko, ivf->centroids, assign))) goto out;
    for (size_t l = 0; l < nlist; l++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) s += (double)ivf->centroids[l * d + j] * ivf->centroids[l * d + j];
        ivf->centroid_norms[l] = (float)s;
    }
    /* qx_kmeans returns the exact nearest final centroid of every vector
     * (even when it trained on a subsample). */
    residuals_of(ivf, x, assign, n, res);
    qx__ivf_report(ivf, "coarse k-means", 1.0);
    if (!qx_quantizer_is_trained(ivf->quant)) {
        /* each residual's centroid: its context, for a quantizer that uses one */
        if (qx_quantizer_kind(ivf->quant) == QX_QUANT_QINCO) {
            if (!(ctx = qx__aligned_alloc(sizeof(float) * n * d))) {
                rc = qx__fail(QX_ENOMEM, "ivf_train: contexts of %zu vectors", n);
                goto out;
            }
            qx_ivf_centroid_rows(ivf, assign, n, ctx);
        }
        rc = qx_quantizer_train_ctx(ivf->quant, res, ctx, n);
        qx__aligned_free(ctx);
        ctx = NULL;
        if (rc) goto out;
    }
    if (ivf->has_norm) {
        size_t ns = n < QX__NORM_SAMPLE ? n : QX__NORM_SAMPLE, M = ivf->M;
        uint8_t *codes = qx__malloc(ns * M);
        float *norms = qx__malloc(sizeof(float) * ns);
        if (!codes || !norms) rc = qx__fail(QX_ENOMEM, "ivf_train: norm sample");
        /* Evenly spaced sample: deterministic and spread over the file. */
        float *sample = res; /* reuse: compact the sample to the front */
        for (size_t i = 0; rc == 0 && i < ns; i++) {
            size_t src = i * (n / ns);
            memmove(sample + i * d, res + src * d, sizeof(float) * d);
            assign[i] = assign[src];
        }
        if (rc == 0 && qx_quantizer_uses_context(ivf->quant) &&
            !(ctx = qx__aligned_alloc(sizeof(float) * ns * d)))
            rc = qx__fail(QX_ENOMEM, "ivf_train: norm sample contexts");
        if (rc == 0 && ctx) qx_ivf_centroid_rows(ivf, assign, ns, ctx);
        if (rc == 0) rc = qx_quantizer_encode_ctx(ivf->quant, sample, ctx, ns, codes);
        if (rc == 0) rc = qx_quantizer_decode_ctx(ivf->quant, codes, ctx, ns, ivf->fs_pairs ? ivf->fs_half : 0, sample);
        for (size_t i = 0; rc == 0 && i < ns; i++) {
            const float *c = ivf->centroids + (size_t)assign[i] * d;
            double nn = 0;
            for (size_t j = 0; j < d; j++) {
                double v = (double)c[j] + sample[i * d + j];
                nn += v * v;
            }
            norms[i] = (float)nn;
        }
        if (rc == 0 && ivf->fs_pairs) qx__ivf_fs_norm_fit(ivf->norm_levels, norms, ns);
        else if (rc == 0) qx__norm_fit(ivf->norm_levels, norms, ns);
        qx__free(codes);
        qx__free(norms);
    }
out:
    qx__free(assign);
    qx__aligned_free(res);
    qx__aligned_free(ctx);
    if (rc == 0) rc = qx__coarse2_build(ivf);
    if (rc == 0) {
        ivf->trained = 1;
    } else {
        free_lists(ivf);
        qx__aligned_free(ivf->centroids);
        qx__free(ivf->centroid_norms);
        ivf->centroids = NULL;
        ivf->centroid_norms = NULL;
    }
    return rc;
}

int qx_ivf_residuals(const qx_ivf *ivf, const float *x, size_t n, uint32_t *list, float *res) {
    if (!ivf || (n && (!x || !list))) return qx__fail(QX_EINVAL, "ivf_residuals: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_residuals: index is not trained");
    int rc = check_input(ivf, x, n, "ivf_residuals");
    if (rc == 0 && n) rc = qx_assign_nearest(x, n, ivf->centroids, ivf->nlist, ivf->d, list, NULL);
    if (rc == 0 && res) residuals_of(ivf, x, list, n, res);
    return rc;
}

/* ---- add / remove ------------------------------------------------------------ */

int qx__ivf_list_push(qx__ivf_list *l, size_t cs, const uint8_t *code, int64_t id) {
    if (l->size == l->cap) {
        /* 1.25x growth: lists trimmed after a bulk load (qx_ivf_trim) grow
         * by a quarter, not double, when writes trickle in */
        size_t cap = l->cap + l->cap / 4 + 16, bytes;
        if (!qx__mul(cap, cs, &bytes)) return qx__fail(QX_ENOMEM, "list of %zu entries", cap);
        uint8_t *codes = qx__aligned_alloc(bytes);
        int64_t *ids = qx__realloc(l->ids, sizeof(int64_t) * cap);
        if (!codes || !ids) {
            qx__aligned_free(codes);
            if (ids) l->ids = ids;
            return qx__fail(QX_ENOMEM, "list of %zu entries", cap);
        }
        if (l->size) memcpy(codes, l->codes, l->size * cs);
        qx__aligned_free(l->codes);
        l->codes = codes;
        l->ids = ids;
        l->cap = cap;
    }
    memcpy(l->codes + l->size * cs, code, cs);
    l->ids[l->size++] = id;
    return 0;
}

/* Remove the entry at (list, off): move the last entry into its place. */
static void remove_at(qx_ivf *ivf, uint32_t list, uint32_t off) {
    qx__ivf_list *l = &ivf->lists[list];
    size_t cs = ivf->code_size, last = l->size - 1;
    if (off != last) {
        if (ivf->fs_pairs) qx__ivf_fs_move(ivf, l, last, off);
        else memcpy(l->codes + (size_t)off * cs, l->codes + last * cs, cs);
        l->ids[off] = l->ids[last];
        qx__map_put(ivf, l->ids[off], qx__loc(list, off)); /* key exists: no alloc */
    }
    l->size--;
    ivf->ntotal--;
}

/* One add batch (at most QX__ADD_CHUNK vectors): coarse lists, then codes.
 * qx_ivf_add and qx_ivf_encode share it, so their bytes are the same. */
static int encode_batch(const qx_ivf *ivf, const float *x, size_t b, uint32_t *lists, uint8_t *codes) {
    int rc = qx_assign_nearest(x, b, ivf->centroids, ivf->nlist, ivf->d, lists, NULL);
    return rc ? rc : qx__ivf_encode(ivf, x, lists, b, codes);
}

int qx_ivf_add(qx_ivf *ivf, const float *x, const int64_t *ids, size_t n) {
    if (!ivf || (!ids && n)) return qx__fail(QX_EINVAL, "ivf_add: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_add: index is not trained");
    int rc = check_input(ivf, x, n, "ivf_add");
    if (rc || n == 0) return rc;
    if (n > UINT32_MAX || ivf->ntotal + n > ((size_t)1 << 40))
        return qx__fail(QX_ELIMIT, "ivf_add: %zu vectors in one call is too many", n);
    if ((rc = qx__map_reserve(ivf, ivf->ntotal + n))) return rc;
    size_t d = ivf->d, cs = ivf->code_size, chunk = n < QX__ADD_CHUNK ? n : QX__ADD_CHUNK;
    uint32_t *assign = qx__malloc(sizeof(uint32_t) * chunk);
    uint8_t *codes = qx__malloc(chunk * cs);
    if (!assign || !codes) rc = qx__fail(QX_ENOMEM, "ivf_add: scratch");
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += chunk) {
        size_t b = n - i0 < chunk ? n - i0 : chunk;
        rc = encode_batch(ivf, x + i0 * d, b, assign, codes);
        for (size_t i = 0; rc == 0 && i < b; i++) {
            int64_t id = ids[i0 + i];
            uint64_t loc;
            if (qx__map_get(ivf, id, &loc)) {
                /* as in qx_ivf_remove: the key goes first, so that a failed
                 * push below leaves no id pointing at a slot that now holds
                 * another vector */
                qx__map_del(ivf, id);
                remove_at(ivf, (uint32_t)(loc >> 32), (uint32_t)loc);
            }
            qx__ivf_list *l = &ivf->lists[assign[i]];
            if (l->size >= UINT32_MAX) { rc = qx__fail(QX_ELIMIT, "ivf_add: list %u is full", assign[i]); break; }
            rc = ivf->fs_pairs ? qx__ivf_fs_push(ivf, l, codes + i * cs, id)
                               : qx__ivf_list_push(l, cs, codes + i * cs, id);
            if (rc == 0) rc = qx__map_put(ivf, id, qx__loc(assign[i], (uint32_t)(l->size - 1)));
            if (rc == 0) ivf->ntotal++;
        }
        qx__ivf_report(ivf, "add", (double)(i0 + b) / (double)n);
    }
    qx__free(assign);
    qx__free(codes);
    return rc;
}

int qx_ivf_encode(const qx_ivf *ivf, const float *x, size_t n, uint32_t *lists, uint8_t *codes) {
    if (!ivf || (n && (!lists || !codes))) return qx__fail(QX_EINVAL, "ivf_encode: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_encode: index is not trained");
    int rc = check_input(ivf, x, n, "ivf_encode");
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += QX__ADD_CHUNK) {
        size_t b = n - i0 < QX__ADD_CHUNK ? n - i0 : QX__ADD_CHUNK;
        rc = encode_batch(ivf, x + i0 * ivf->d, b, lists + i0, codes + i0 * ivf->code_size);
    }
    return rc;
}

int qx_ivf_remove(qx_ivf *ivf, const int64_t *ids, size_t n, size_t *removed) {
    if (!ivf || (!ids && n)) return qx__fail(QX_EINVAL, "ivf_remove: NULL argument");
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t loc;
        if (!qx__map_get(ivf, ids[i], &loc)) continue;
        qx__map_del(ivf, ids[i]);
        /* remove_at re-points the moved entry; our own key is gone already. */
        remove_at(ivf, (uint32_t)(loc >> 32), (uint32_t)loc);
        count++;
    }
    if (removed) *removed = count;
    return 0;
}

int qx_ivf_rename_ids(qx_ivf *ivf, const int64_t *old_ids, const int64_t *new_ids, size_t n) {
    if (!ivf || (n && (!old_ids || !new_ids))) return qx__fail(QX_EINVAL, "ivf_rename_ids: NULL argument");
    int rc = qx__map_reserve(ivf, ivf->ntotal + 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t loc;
        if (new_ids[i] < 0) return qx__fail(QX_EINVAL, "ivf_rename_ids: negative id");
        if (!qx__map_get(ivf, old_ids[i], &loc)) continue;
        qx__map_del(ivf, old_ids[i]);
        ivf->lists[loc >> 32].ids[(uint32_t)loc] = new_ids[i];
        rc = qx__map_put(ivf, new_ids[i], loc); /* one out, one in: no growth */
    }
    return rc;
}

int qx_ivf_remap_ids(qx_ivf *ivf, int64_t (*fn)(void *ctx, int64_t id), void *ctx) {
    if (!ivf || !fn) return qx__fail(QX_EINVAL, "ivf_remap_ids: NULL argument");
    size_t cs = ivf->code_size;
    /* the map is emptied first, then new ids are given (entries mapped to -1
     * leave their list), then the map is rebuilt from the lists, so a failure
     * leaves every list consistent */
    for (size_t li = 0; ivf->loc.del && ivf->lists && li < ivf->nlist; li++)
        for (size_t i = 0; i < ivf->lists[li].size; i++) ivf->loc.del(ivf->loc.ctx, ivf->lists[li].ids[i]);
    qx__idmap_free(&ivf->ids);
    for (size_t li = 0; ivf->lists && li < ivf->nlist; li++) {
        qx__ivf_list *l = &ivf->lists[li];
        for (size_t i = 0; i < l->size;) {
            int64_t nid = fn(ctx, l->ids[i]);
            if (nid >= 0) {
                l->ids[i++] = nid;
                continue;
            }
            size_t last = l->size - 1;
            if (i != last) {
                if (ivf->fs_pairs) qx__ivf_fs_move(ivf, l, last, i);
                else memcpy(l->codes + i * cs, l->codes + last * cs, cs);
                l->ids[i] = l->ids[last];
            }
            l->size--;
            ivf->ntotal--;
        }
    }
    int rc = qx__map_reserve(ivf, ivf->ntotal);
    for (size_t li = 0; rc == 0 && ivf->lists && li < ivf->nlist; li++) {
        qx__ivf_list *l = &ivf->lists[li];
        for (size_t i = 0; rc == 0 && i < l->size; i++) {
            uint64_t loc;
            if (qx__map_get(ivf, l->ids[i], &loc))
                rc = qx__fail(QX_EINVAL, "ivf_remap_ids: two entries mapped to id %lld", (long long)l->ids[i]);
            else
                rc = qx__map_put(ivf, l->ids[i], qx__loc((uint32_t)li, (uint32_t)i));
        }
    }
    return rc;
}

/* ---- info and invariants --------------------------------------------------------- */

int qx_ivf_get_info(const qx_ivf *ivf, qx_ivf_info *info) {
    if (!ivf || !info) return qx__fail(QX_EINVAL, "ivf_info: NULL argument");
    memset(info, 0, sizeof *info);
    info->d = ivf->d;
    info->nlist = ivf->nlist;
    info->ntotal = ivf->ntotal;
    info->M = ivf->M;
    info->code_size = ivf->code_size;
    info->metric = ivf->opts.metric;
    info->quant_kind = qx_quantizer_kind(ivf->quant);
    info->list_min = ivf->lists ? SIZE_MAX : 0;
    size_t bytes = sizeof(float) * ivf->nlist * (ivf->d + 1);
    for (size_t l = 0; ivf->lists && l < ivf->nlist; l++) {
        size_t s = ivf->lists[l].size;
        if (s < info->list_min) info->list_min = s;
        if (s > info->list_max) info->list_max = s;
        bytes += ivf->fs_pairs ? qx__ivf_fs_list_bytes(ivf, &ivf->lists[l])
                               : ivf->lists[l].cap * (ivf->code_size + sizeof(int64_t));
    }
    bytes += ivf->ids.cap * (sizeof(int64_t) + sizeof(uint64_t) + 1);
    const float *cb = qx_quantizer_additive_codebooks(ivf->quant);
    if (cb) bytes += sizeof(float) * ivf->M * QX_KSUB * ivf->d;
    info->bytes = bytes;
    return 0;
}

int qx_ivf_check(const qx_ivf *ivf) {
    if (!ivf) return qx__fail(QX_EINVAL, "ivf_check: NULL index");
    if (!ivf->trained) return ivf->ntotal == 0 ? 0 : qx__fail(QX_EINTERNAL, "untrained index holds vectors");
    size_t total = 0;
    for (size_t l = 0; l < ivf->nlist; l++) {
        const qx__ivf_list *L = &ivf->lists[l];
        if (L->size > L->cap) return qx__fail(QX_EINTERNAL, "list %zu: size %zu > cap %zu", l, L->size, L->cap);
        for (size_t i = 0; i < L->size; i++) {
            uint64_t loc;
            if (!qx__map_get(ivf, L->ids[i], &loc))
                return qx__fail(QX_EINTERNAL, "list %zu entry %zu: id %lld not in the id map", l, i,
                                (long long)L->ids[i]);
            if (loc != qx__loc((uint32_t)l, (uint32_t)i))
                return qx__fail(QX_EINTERNAL, "id %lld: map points to list %u entry %u, found in list %zu entry %zu",
                                (long long)L->ids[i], (unsigned)(loc >> 32), (unsigned)loc, l, i);
        }
        total += L->size;
    }
    if (total != ivf->ntotal) return qx__fail(QX_EINTERNAL, "lists hold %zu entries, ntotal says %zu", total, ivf->ntotal);
    if (!ivf->loc.get && ivf->ids.count != total) return qx__fail(QX_EINTERNAL, "id map holds %zu ids, lists %zu", ivf->ids.count, total);
    return 0;
}
