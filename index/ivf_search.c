/* index/ivf_search.c — IVF search: coarse probe selection, one additive
 * look-up table per query, SIMD list scans into a bounded heap, optional
 * re-ranking by exact decoding.
 *
 * Decisions:
 * 1. Internally every score is "smaller is better": for L2 the score is
 *    ||q−x̂||² − ||q||², for inner product −⟨q,x̂⟩. ||q||² is added back at the
 *    end so reported L2 distances are true (approximate) squared distances.
 * 2. The LUT has M+1 rows for L2: rows 0..M−1 hold −2⟨q,a_mk⟩ and row M the
 *    decoded norm levels, so a single qx_lut_scan over code_size bytes gives
 *    −2⟨q,r̂⟩ + ||x̂||²; the list bias −2⟨q,c_l⟩ is added per list.
 * 3. Queries go in blocks: coarse distances and LUTs of a block come from
 *    one sgemm each (outside any parallel region, so BLAS threads never nest
 *    under OpenMP), then the block's queries are scanned in parallel, each
 *    thread with its own context: steady-state search does not allocate.
 * 4. The heap holds (list, offset) locations, not ids, so re-ranking can
 *    fetch codes; ids are looked up only for the final k.
 * 5. A block of one or two queries (the server's case: one query per HTTP
 *    request; also a batch's last block when nq % 32 is 1 or 2) uses sgemv
 *    instead: OpenBLAS's sgemm packs the whole centroid and codebook
 *    matrices on every call, which for a single query costs more than the
 *    scan (perf: 44 % of the server's time); sgemv streams them once. The
 *    two round differently in the last bits, so a query's scores may differ
 *    in the last ulp with its place in a batch (test_ivf checks both paths).
 * 6. only_ids (a caller's candidate set, e.g. the points a payload filter
 *    passes): no probing; each id's stored code is found through the id map
 *    and scored exactly as a list scan scores it (the same LUT and list
 *    bias), codes gathered QX__AMONG_BATCH at a time for one qx_lut_scan.
 *    Its recall does not depend on where the candidates lie, which is what
 *    a filter correlated with the vectors needs: probing nearest lists first
 *    then finds few of them.
 * 7. Results are the k smallest by (score, id), sorted so: equal scores
 *    (duplicate vectors have equal codes) are ordered by id, and which of
 *    them make the cut does not depend on the order the lists were scanned
 *    or the entries were added. So an index split into shards (qinx/shard.h)
 *    and searched shard by shard, merged by (score, id), answers exactly as
 *    the one index does (before this, SIFT10K's duplicates 9595 and 9713
 *    came back in either order). The id is looked up only when scores tie,
 *    so the scan loop keeps its one comparison.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ivf_impl.h"
#include "topk.h"
#include "qinx/kernels.h"

#define QX__GEMV_MAX 2 /* blocks up to this many queries use sgemv (decision 5) */
#define QX__AMONG_BATCH 64 /* only_ids: codes gathered per LUT scan (decision 6) */


/* ---- the result heap: a max-heap by (score, id) (decision 7) ---- */
static inline int64_t loc_id(const qx_ivf *ivf, uint64_t loc) { return ivf->lists[loc >> 32].ids[(uint32_t)loc]; }

/* (ka, a) after (kb, b) in the result order */
static inline int res_after(const qx_ivf *ivf, float ka, uint64_t a, float kb, uint64_t b) {
    return ka > kb || (ka == kb && loc_id(ivf, a) > loc_id(ivf, b));
}

static inline int res_wants(const qx_ivf *ivf, const qx__topk *h, float key, int64_t id) {
    if (h->n < h->k || key < h->key[0]) return 1;
    return key == h->key[0] && id < loc_id(ivf, h->val[0]);
}

static void res_sift_down(const qx_ivf *ivf, qx__topk *h, size_t i) {
    float k0 = h->key[i];
    uint64_t v0 = h->val[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && res_after(ivf, h->key[c + 1], h->val[c + 1], h->key[c], h->val[c])) c++;
        if (!res_after(ivf, h->key[c], h->val[c], k0, v0)) break;
        h->key[i] = h->key[c];
        h->val[i] = h->val[c];
        i = c;
    }
    h->key[i] = k0;
    h->val[i] = v0;
}

/* Push when res_wants said yes. */
static void res_push(const qx_ivf *ivf, qx__topk *h, float key, uint64_t loc) {
    if (h->n < h->k) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!res_after(ivf, key, loc, h->key[p], h->val[p])) break;
            h->key[i] = h->key[p];
            h->val[i] = h->val[p];
            i = p;
        }
        h->key[i] = key;
        h->val[i] = loc;
    } else {
        h->key[0] = key;
        h->val[0] = loc;
        res_sift_down(ivf, h, 0);
    }
}

static void res_sort(const qx_ivf *ivf, qx__topk *h) {
    size_t n = h->n;
    while (h->n > 1) {
        size_t last = h->n - 1;
        float k = h->key[0];
        uint64_t v = h->val[0];
        h->key[0] = h->key[last];
        h->val[0] = h->val[last];
        h->key[last] = k;
        h->val[last] = v;
        h->n--;
        res_sift_down(ivf, h, 0);
    }
    h->n = n;
}

static size_t max_list_size(const qx_ivf *ivf) {
    size_t m = 0;
    for (size_t l = 0; l < ivf->nlist; l++)
        if (ivf->lists[l].size > m) m = ivf->lists[l].size;
    return m;
}

static void ctx_release(qx_ivf_search_ctx *c) {
    qx__aligned_free(c->coarse);
    qx__aligned_free(c->luts);
    qx__aligned_free(c->scan);
    qx__free(c->probes.key);
    qx__free(c->probes.val);
    qx__free(c->heap.key);
    qx__free(c->heap.val);
    qx__free(c->rr_codes);
    qx__aligned_free(c->rr_vecs);
    qx__aligned_free(c->rr_ctx);
    qx__free(c->among);
    qx__aligned_free(c->among_s);
    qx__ivf_fs_ctx_free(c->fs);
}

void qx_ivf_search_ctx_free(qx_ivf_search_ctx *c) {
    if (!c) return;
    for (int t = 0; t < c->nworkers; t++) qx_ivf_search_ctx_free(c->workers[t]);
    qx__free(c->workers);
    ctx_release(c);
    qx__free(c);
}

int qx_ivf_search_ctx_new(qx_ivf_search_ctx **out, const qx_ivf *ivf) {
    if (!ivf || !out) return qx__fail(QX_EINVAL, "search_ctx_new: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "search: index is not trained");
    qx_ivf_search_ctx *c = qx__calloc(1, sizeof *c);
    if (!c) return qx__fail(QX_ENOMEM, "search context");
    c->nlist = ivf->nlist;
    c->d = ivf->d;
    c->M = ivf->M;
    c->lut_len = (ivf->M + 1) * QX_KSUB;
    c->coarse = qx__aligned_alloc(sizeof(float) * QX__QBLOCK * ivf->nlist);
    c->luts = qx__aligned_alloc(sizeof(float) * QX__QBLOCK * c->lut_len);
    c->probes.key = qx__malloc(sizeof(float) * ivf->nlist);
    c->probes.val = qx__malloc(sizeof(uint64_t) * ivf->nlist);
    if (!c->coarse || !c->luts || !c->probes.key || !c->probes.val) {
        qx_ivf_search_ctx_free(c);
        return qx__fail(QX_ENOMEM, "search context for %zu lists", ivf->nlist);
    }
    /* zeroed once: some OpenBLAS versions' sgemv with beta = 0 scale y by 0
     * instead of overwriting it, and 0·NaN of uninitialised memory is NaN */
    memset(c->coarse, 0, sizeof(float) * QX__QBLOCK * ivf->nlist);
    memset(c->luts, 0, sizeof(float) * QX__QBLOCK * c->lut_len);
    *out = c;
    return 0;
}

/* Grow the per-query buffers; the index may have grown since the context
 * was made (adds between searches). */
static int ctx_fit(qx_ivf_search_ctx *c, const qx_ivf *ivf, size_t heap_k, size_t rerank) {
    if (c->nlist != ivf->nlist || c->M != ivf->M || c->d != ivf->d)
        return qx__fail(QX_EINVAL, "search context was made for another index");
    size_t scan = max_list_size(ivf);
    if (scan > c->scan_cap) {
        qx__aligned_free(c->scan);
        c->scan_cap = scan + scan / 4 + 64;
        if (!(c->scan = qx__aligned_alloc(sizeof(float) * c->scan_cap)))
            return c->scan_cap = 0, qx__fail(QX_ENOMEM, "search scan buffer");
    }
    if (heap_k > c->heap_cap) {
        qx__free(c->heap.key);
        qx__free(c->heap.val);
        c->heap.key = qx__malloc(sizeof(float) * heap_k);
        c->heap.val = qx__malloc(sizeof(uint64_t) * heap_k);
        c->heap_cap = heap_k;
        if (!c->heap.key || !c->heap.val) return c->heap_cap = 0, qx__fail(QX_ENOMEM, "search heap");
    }
    if (rerank > c->rerank_cap) {
        qx__free(c->rr_codes);
        qx__aligned_free(c->rr_vecs);
        qx__aligned_free(c->rr_ctx);
        c->rr_codes = qx__malloc(rerank * ivf->M);
        c->rr_vecs = qx__aligned_alloc(sizeof(float) * rerank * ivf->d);
        c->rr_ctx = qx__aligned_alloc(sizeof(float) * rerank * ivf->d);
        c->rerank_cap = rerank;
        if (!c->rr_codes || !c->rr_vecs || !c->rr_ctx) return c->rerank_cap = 0, qx__fail(QX_ENOMEM, "rerank buffers");
    }
    if (c->among_cs != ivf->code_size) {
        qx__free(c->among);
        qx__aligned_free(c->among_s);
        c->among = qx__malloc(QX__AMONG_BATCH * ivf->code_size);
        c->among_s = qx__aligned_alloc(sizeof(float) * QX__AMONG_BATCH);
        c->among_cs = ivf->code_size;
        if (!c->among || !c->among_s) return c->among_cs = 0, qx__fail(QX_ENOMEM, "search among ids");
    }
    return 0;
}

/* Coarse scores and LUTs of nb queries (one sgemm each, or sgemv per query). */
static int prepare_block(const qx_ivf *ivf, qx_ivf_search_ctx *c, const float *q, size_t nb) {
    size_t d = ivf->d, nlist = ivf->nlist, M = ivf->M, L = c->lut_len;
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    const float *A = qx_quantizer_additive_codebooks(ivf->quant);
    if (!A) return qx__fail(QX_ESTATE, "search: the quantizer has no additive codebooks");
    float alpha = l2 ? -2.0f : -1.0f;
    if (nb <= QX__GEMV_MAX) {
        for (size_t i = 0; i < nb; i++) {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nlist, (int)d, 1.0f, ivf->centroids,
                        (int)d, q + i * d, 1, 0.0f, c->coarse + i * nlist, 1);
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(M * QX_KSUB), (int)d, alpha, A,
                        (int)d, q + i * d, 1, 0.0f, c->luts + i * L, 1);
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nlist, (int)d, 1.0f, q,
                    (int)d, ivf->centroids, (int)d, 0.0f, c->coarse, (int)nlist);
        /* LUT rows 0..M−1 straight from one sgemm against the additive
         * codebooks, scaled by −2 (L2) or −1 (IP) through alpha and written
         * at stride L (ldc): no copy, no scaling pass. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)(M * QX_KSUB), (int)d,
                    alpha, q, (int)d, A, (int)d, 0.0f, c->luts, (int)L);
    }
    /* c->coarse holds ⟨q,c_l⟩: the probe key (||c||² − 2⟨q,c⟩ for L2) and
     * the scan bias (−2⟨q,c⟩) both derive from it. The norm row of each
     * LUT is appended below. */
    for (size_t i = 0; i < nb; i++) {
        float *row = c->luts + i * L + M * QX_KSUB;
        if (l2) memcpy(row, ivf->norm_levels, sizeof(float) * QX_KSUB);
        else memset(row, 0, sizeof(float) * QX_KSUB);
    }
    return 0;
}

/* Decision 6: score the ids of p->only_ids held by the index into c->heap. */
static void among(const qx_ivf *ivf, qx_ivf_search_ctx *c, const float *qc, const float *lut,
                  const qx_search_params *p, size_t heap_k) {
    size_t cs = ivf->code_size, ncols = ivf->M + (size_t)ivf->has_norm;
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    uint64_t locs[QX__AMONG_BATCH];
    qx__topk_reset(&c->heap, heap_k);
    for (size_t i = 0; i < p->n_only_ids;) {
        size_t nb = 0;
        for (; i < p->n_only_ids && nb < QX__AMONG_BATCH; i++) {
            uint64_t loc;
            if (!qx__map_get(ivf, p->only_ids[i], &loc)) continue;
            memcpy(c->among + nb * cs, ivf->lists[loc >> 32].codes + (size_t)(uint32_t)loc * cs, cs);
            locs[nb++] = loc;
        }
        if (nb == 0) continue;
        qx_lut_scan(c->among_s, c->among, nb, cs, ncols, lut);
        for (size_t j = 0; j < nb; j++) {
            uint32_t l = (uint32_t)(locs[j] >> 32);
            float s = c->among_s[j] + (l2 ? -2.0f * qc[l] : -qc[l]);
            if (res_wants(ivf, &c->heap, s, loc_id(ivf, locs[j]))) res_push(ivf, &c->heap, s, locs[j]);
        }
    }
}

static int search_one(const qx_ivf *ivf, qx_ivf_search_ctx *c, const float *q, const float *qc,
                      const float *lut, size_t k, const qx_search_params *p, float *dist,
                      int64_t *ids) {
    size_t d = ivf->d, M = ivf->M, cs = ivf->code_size, nlist = ivf->nlist;
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    size_t nprobe = p->nprobe < nlist ? p->nprobe : nlist;
    size_t heap_k = p->rerank > k ? p->rerank : k;
    /* filtered: rank up to max_nprobe lists, scan nprobe, then more until k pass */
    size_t nrank = nprobe;
    if (p->filter) {
        nrank = p->max_nprobe && p->max_nprobe < nlist ? p->max_nprobe : nlist;
        if (nrank < nprobe) nrank = nprobe;
    }
    float qn = l2 ? qx_dot(q, q, d) : 0.f;
    if (p->only_ids) {
        among(ivf, c, qc, lut, p, heap_k);
        if (p->lists_visited) *p->lists_visited = 0;
        goto shortlist;
    }

    /* Probe selection: L2 by ||c||² − 2⟨q,c⟩, IP by −⟨q,c⟩. */
    qx__topk_reset(&c->probes, nrank);
    for (size_t l = 0; l < nlist; l++) {
        float key = l2 ? ivf->centroid_norms[l] - 2.0f * qc[l] : -qc[l];
        if (qx__topk_wants(&c->probes, key)) qx__topk_push(&c->probes, key, l);
    }
    if (p->filter) qx__topk_sort(&c->probes); /* nearest list first */
    qx__topk_reset(&c->heap, heap_k);
    /* Filtered: after nprobe lists, go on until the shortlist is full of
     * passing ids AND about as many passing ids were scanned as the
     * unfiltered search scans ids in its nprobe lists (scanned x the pass
     * rate of the tested candidates >= that count): the filtered top-k is
     * the top-(k / pass rate) of the whole set, which needs that much more
     * of the space to be seen for the same recall. */
    size_t pi = 0, passed = 0, tested = 0, scanned = 0, scanned_nprobe = 0, tested_near = 0, passed_near = 0;
    for (; pi < c->probes.n; pi++) {
        if (p->filter && pi >= nprobe) {
            if (pi == nprobe) {
                scanned_nprobe = scanned, tested_near = tested, passed_near = passed;
                if (tested >= QX_FILTER_STOP_MIN_TESTED && (double)passed < p->filter_stop_below * (double)tested)
                    break; /* correlated: the caller searches the passing points another way */
            }
            if (passed >= heap_k && (double)scanned * (double)passed >= (double)scanned_nprobe * (double)tested) break;
        }
        uint32_t l = (uint32_t)c->probes.val[pi];
        const qx__ivf_list *L = &ivf->lists[l];
        if (L->size == 0) continue;
        scanned += L->size;
        float bias = l2 ? -2.0f * qc[l] : -qc[l];
        qx_lut_scan(c->scan, L->codes, L->size, cs, M + (size_t)ivf->has_norm, lut);
        for (size_t i = 0; i < L->size; i++) {
            float s = c->scan[i] + bias;
            if (!res_wants(ivf, &c->heap, s, L->ids[i])) continue;
            if (p->filter) {
                tested++;
                if (!p->filter(p->filter_ctx, L->ids[i])) continue;
                passed++;
            }
            res_push(ivf, &c->heap, s, qx__loc(l, (uint32_t)i));
        }
    }
    if (p->lists_visited) *p->lists_visited = pi;
    if (pi <= nprobe) tested_near = tested, passed_near = passed;
    if (p->filter_tested) *p->filter_tested = tested_near;
    if (p->filter_passed) *p->filter_passed = passed_near;
shortlist:
    if (p->rerank > 0 && c->heap.n > 0) {
        /* Exact distances to the decoded reconstructions c_l + r̂. */
        size_t n = c->heap.n;
        int ctx = qx_quantizer_uses_context(ivf->quant); /* QINCo conditioned on the centroid */
        for (size_t i = 0; i < n; i++) {
            uint64_t loc = c->heap.val[i];
            memcpy(c->rr_codes + i * M, ivf->lists[loc >> 32].codes + (size_t)(uint32_t)loc * cs, M);
            if (ctx) memcpy(c->rr_ctx + i * d, ivf->centroids + (size_t)(loc >> 32) * d, sizeof(float) * d);
        }
        int rc = qx_quantizer_decode_ctx(ivf->quant, c->rr_codes, ctx ? c->rr_ctx : NULL, n, 0, c->rr_vecs);
        if (rc) return rc;
        qx__topk cand = c->heap;
        qx__topk_reset(&c->heap, heap_k); /* reuse storage: rebuild with exact keys */
        for (size_t i = 0; i < n; i++) {
            uint64_t loc = cand.val[i];
            const float *cen = ivf->centroids + (size_t)(loc >> 32) * d;
            float *x = c->rr_vecs + i * d;
            for (size_t j = 0; j < d; j++) x[j] += cen[j];
            float s = l2 ? qx_l2sqr(q, x, d) - qn : -qx_dot(q, x, d);
            c->heap.key[i] = s; /* fill in place: the same n entries */
            c->heap.val[i] = loc;
        }
        c->heap.n = n;
        /* Re-heapify (max-heap) after in-place rewrite, then keep k. */
        for (size_t i = n / 2; i-- > 0;) res_sift_down(ivf, &c->heap, i);
        while (c->heap.n > k) {
            c->heap.n--;
            c->heap.key[0] = c->heap.key[c->heap.n];
            c->heap.val[0] = c->heap.val[c->heap.n];
            res_sift_down(ivf, &c->heap, 0);
        }
    } else {
        while (c->heap.n > k) { /* heap_k == k here; defensive */
            c->heap.n--;
            c->heap.key[0] = c->heap.key[c->heap.n];
            c->heap.val[0] = c->heap.val[c->heap.n];
            res_sift_down(ivf, &c->heap, 0);
        }
    }
    res_sort(ivf, &c->heap);
    size_t i = 0;
    for (; i < c->heap.n; i++) {
        uint64_t loc = c->heap.val[i];
        ids[i] = ivf->lists[loc >> 32].ids[(uint32_t)loc];
        dist[i] = l2 ? fmaxf(c->heap.key[i] + qn, 0.0f) : -c->heap.key[i];
    }
    for (; i < k; i++) {
        ids[i] = -1;
        dist[i] = l2 ? INFINITY : -INFINITY;
    }
    return 0;
}

int qx_ivf_search(const qx_ivf *ivf, qx_ivf_search_ctx *ctx, const float *queries, size_t nq,
                  size_t k, const qx_search_params *params, float *dist, int64_t *ids) {
    qx_search_params def;
    if (!params) qx_search_params_init(&def), params = &def;
    if (!ivf || (nq && (!queries || !dist || !ids))) return qx__fail(QX_EINVAL, "search: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "search: index is not trained");
    if (k == 0 || k > QX_MAX_K) return qx__fail(QX_EINVAL, "search: k=%zu outside 1..%d", k, QX_MAX_K);
    if (params->nprobe == 0) return qx__fail(QX_EINVAL, "search: nprobe must be at least 1");
    if (params->rerank > QX_MAX_K * 10)
        return qx__fail(QX_EINVAL, "search: rerank=%zu above %d", params->rerank, QX_MAX_K * 10);
    if (params->shortlist > QX_MAX_SHORTLIST)
        return qx__fail(QX_EINVAL, "search: shortlist=%zu above %d", params->shortlist, QX_MAX_SHORTLIST);
    if (params->n_only_ids && !params->only_ids) return qx__fail(QX_EINVAL, "search: n_only_ids without only_ids");
    if (params->only_ids && ivf->fs_pairs)
        return qx__fail(QX_EINVAL, "search: only_ids is not supported by fast-scan indexes");
    size_t total;
    if (!qx__mul(nq, ivf->d, &total)) return qx__fail(QX_ENOMEM, "search: nq*d overflows");
    long bad = qx__first_nonfinite(queries, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "search: query %zu has a NaN or Inf at dimension %zu",
                        (size_t)bad / ivf->d, (size_t)bad % ivf->d);
    qx_ivf_search_ctx *own = NULL;
    int rc = 0;
    if (!ctx) {
        if ((rc = qx_ivf_search_ctx_new(&own, ivf))) return rc;
        ctx = own;
    }
    size_t heap_k = params->rerank > k ? params->rerank : k;
    int threads = params->threads > 0 ? params->threads : qx__num_threads();
    if ((size_t)threads > nq) threads = (int)(nq ? nq : 1);
    if (threads > 1 && ctx->nworkers < threads) {
        qx_ivf_search_ctx **w = qx__realloc(ctx->workers, sizeof *w * (size_t)threads);
        if (!w) rc = qx__fail(QX_ENOMEM, "search workers");
        else ctx->workers = w;
        for (int t = ctx->nworkers; rc == 0 && t < threads; t++) {
            rc = qx_ivf_search_ctx_new(&ctx->workers[t], ivf);
            if (rc == 0) ctx->nworkers = t + 1;
        }
    }
    if (rc == 0 && ivf->fs_pairs) { /* fast-scan kind: its own pipeline */
        rc = qx__ivf_fs_search(ivf, ctx, queries, nq, k, params, threads, dist, ids);
        qx_ivf_search_ctx_free(own);
        return rc;
    }
    /* the re-rank decodes the whole shortlist, heap_k = max(k, rerank) entries:
     * its buffers were sized by rerank, and rerank < k wrote past them */
    size_t rr_cap = params->rerank ? heap_k : 0;
    if (rc == 0) rc = ctx_fit(ctx, ivf, heap_k, rr_cap);
    for (int t = 0; rc == 0 && threads > 1 && t < threads; t++)
        rc = ctx_fit(ctx->workers[t], ivf, heap_k, rr_cap);
    for (size_t i0 = 0; rc == 0 && i0 < nq; i0 += QX__QBLOCK) {
        size_t nb = nq - i0 < QX__QBLOCK ? nq - i0 : QX__QBLOCK;
        const float *qb = queries + i0 * ivf->d;
        if ((rc = prepare_block(ivf, ctx, qb, nb))) break;
        int err = 0;
        if (threads > 1 && nb > 1) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(min : err)
            for (size_t i = 0; i < nb; i++) {
                qx_ivf_search_ctx *w = ctx->workers[omp_get_thread_num()];
                int e = search_one(ivf, w, qb + i * ivf->d, ctx->coarse + i * ivf->nlist,
                                   ctx->luts + i * ctx->lut_len, k, params, dist + (i0 + i) * k,
                                   ids + (i0 + i) * k);
                if (e < err) err = e;
            }
        } else {
            for (size_t i = 0; i < nb && err == 0; i++)
                err = search_one(ivf, ctx, qb + i * ivf->d, ctx->coarse + i * ivf->nlist,
                                 ctx->luts + i * ctx->lut_len, k, params, dist + (i0 + i) * k,
                                 ids + (i0 + i) * k);
        }
        rc = err;
    }
    qx_ivf_search_ctx_free(own);
    return rc;
}
