/* index/ivf_fastscan_search.c — search of a fast-scan IVF index: coarse
 * probe selection, one 4-bit look-up table per query quantized to 8 bits,
 * the SIMD block scan with a uint16 threshold, and the second stage that
 * re-ranks the shortlist with the whole code.
 *
 * Decisions:
 * 1. Fixed cost per query: the coarse scores (nlist × d) and the float LUT
 *    of the 4-bit steps (M4 × 16 × d, 1/16 of an 8-bit RQ's) come from one
 *    sgemm per block of 32 queries, or sgemv for one or two queries (as in
 *    ivf_search.c, decision 5); for L2 with nlist >= 256 the coarse scores
 *    come per query from the two-level quantizer (ivf_coarse2.c) instead,
 *    unless the caller asks for the flat one (coarse_groups) or filters.
 *    A product-shaped 4-bit part (qx_fs_opts.product4) gets its table from
 *    the by-dimension rows instead: d × 16 multiply-adds a query (2,048 at
 *    d = 128, against 32,768 for 16 residual steps), no BLAS call. The 8-bit steps get no table: the second
 *    stage decodes the shortlist instead (shortlist × (M4/2 + M8) × d adds,
 *    fewer than M8 × 256 × d multiply-adds for any shortlist below ~1000).
 * 2. 8-bit tables: per step the minimum is subtracted, and one scale for
 *    all steps (255 / the widest step range) keeps the sum of the quantized
 *    entries proportional to the sum of the floats: estimate = Σ bias +
 *    acc / scale. The error of one step is at most 0.5 / scale, of a sum
 *    2P × 0.5 / scale.
 * 3. Threshold in the integer domain: a list's candidates are compared in
 *    uint16 against ceil((threshold − list bias) × scale), sixteen or
 *    thirty-two at a time (find_lt_u16); only those below it are converted
 *    to float. The shortlist is a reservoir, not a heap: candidates are
 *    appended to a buffer of 2S, and when it fills a quickselect keeps the S
 *    best and the S-th becomes the threshold (the idea of FAISS's
 *    ReservoirHandler): O(1) per candidate instead of a heap's sift. With a
 *    heap, sifting took 26 % of a siftsmall query (perf, nprobe 16, S 40).
 *    The first list of a query (threshold still infinite) is cut at its
 *    S-th sum from a 256-bin histogram (FAISS's fast-scan handlers bin too),
 *    so its entries do not all go through the reservoir: at nprobe 1 that
 *    was most of the scan phase.
 * 4. The second stage computes ||q − (c + Σ codewords)||² with the fused
 *    decode_l2 kernel (no temporary vector): exact distances to the full
 *    reconstruction, so the reported distances are those of the whole code.
 *    Inner product decodes and takes the dot product. It reads the M4
 *    4-bit codebooks (16 rows a step, cache-resident) rather than the
 *    byte-level additive table (256 rows per byte, 16x larger): measured on
 *    siftsmall, the large table made the second stage miss cache on most
 *    rows (3.4k QPS at shortlist 100). The 8-bit rows of the next candidate
 *    are prefetched while one is computed (they are M8 random rows of a
 *    table of M8 × 256 × d floats, beyond L2 for GloVe's 7 × 256 × 100).
 *    With a product-shaped 4-bit part, the 4-bit codewords of a candidate
 *    are concatenated (from a packed 16 × d table, L1-resident) into the
 *    base the centroid and the 8-bit rows are added to, instead of summing
 *    M4 rows of d: at 16 steps + 7 bytes, 8 rows of d a candidate, not 23.
 * 5. One query's lists can be split across threads (params->threads > 1 and
 *    a single query): each thread scans its share of the probes into its own
 *    shortlist, the shortlists are merged, then re-ranked. A batch is split
 *    into 32-query blocks, each thread computing its blocks' tables and
 *    searching them, in ONE parallel region per call: a region per block
 *    (as ivf_search.c does) made 2 threads slower than one on the shared
 *    machine (every block's barrier waited for a descheduled thread).
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "ivf_impl.h"
#include "kernels_fs.h"
#include "qinx/fastscan.h"
#include "qinx/kernels.h"

static _Thread_local qx_search_profile *g_prof;

static double tsc_seconds_per_tick(void);

void qx_ivf_profile_thread(qx_search_profile *prof) {
    if (prof) (void)tsc_seconds_per_tick(); /* calibrate outside the timed phases */
    g_prof = prof;
}

/* Phase clock of the profile: the TSC, in seconds. CLOCK_THREAD_CPUTIME_ID
 * is a system call in this VM (~1 µs a read: it doubled a 6 µs query);
 * the TSC read is ~10 ns. Its rate is measured once against
 * CLOCK_MONOTONIC over 20 ms. Between two reads it counts wall time, so a
 * phase the thread was descheduled in is inflated: use the fastest of
 * several profiled runs (qinx search --profile does). */
static double tsc_seconds_per_tick(void) {
    static double spt;
    if (spt == 0) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        uint64_t t0 = __rdtsc();
        do clock_gettime(CLOCK_MONOTONIC, &b);
        while ((double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec) < 0.02);
        uint64_t t1 = __rdtsc();
        double dt = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        spt = dt / (double)(t1 - t0);
    }
    return spt;
}

static inline double cpu_now(void) { return (double)__rdtsc() * tsc_seconds_per_tick(); }

typedef struct fs_ctx {
    size_t M4, P, nlist, d, R;
    float *lutf;          /* QX__QBLOCK * M4 * 16 */
    float *T;             /* 2P * 16 float table of one query */
    uint8_t *lut8;        /* 2P * 16 */
    uint16_t *acc;        /* acc_cap */
    size_t acc_cap, heap_cap;
    qx__topk probes;
    float *rkey;          /* reservoir: 2 * heap_cap candidates */
    uint64_t *rval;
    size_t rn, rS;
    float rthr;
    const float **rows;   /* M4 + M8 rows of one candidate, then of the next (2 × (M4 + M8)) */
    float *xbuf;          /* d */
    float *prow;          /* product shape: d (+ 16 padding), a candidate's 4-bit codewords */
    uint32_t *sub;        /* product shape: M4 + 1 step boundaries (qx_fs_subspace) */
    float *c2s;           /* two-level coarse scratch (2 × groups rounded to 16) */
} fs_ctx;

void qx__ivf_fs_ctx_free(void *p) {
    fs_ctx *f = p;
    if (!f) return;
    qx__aligned_free(f->lutf);
    qx__aligned_free(f->T);
    qx__aligned_free(f->lut8);
    qx__aligned_free(f->acc);
    qx__free(f->probes.key);
    qx__free(f->probes.val);
    qx__free(f->rkey);
    qx__free(f->rval);
    qx__free(f->rows);
    qx__aligned_free(f->xbuf);
    qx__aligned_free(f->prow);
    qx__free(f->sub);
    qx__free(f->c2s);
    qx__free(f);
}

static int fs_ctx_fit(const qx_ivf *ivf, qx_ivf_search_ctx *c, size_t heap_k) {
    fs_ctx *f = c->fs;
    size_t M4 = 2 * ivf->fs_half, P = ivf->fs_pairs;
    if (!f) {
        if (!(f = c->fs = qx__calloc(1, sizeof *f))) return qx__fail(QX_ENOMEM, "fast-scan search context");
        f->M4 = M4;
        f->P = P;
        f->nlist = ivf->nlist;
        f->d = ivf->d;
        f->R = 2 * ivf->fs_half + ivf->fs_rest; /* rows decoded per candidate */
        f->lutf = qx__aligned_alloc(sizeof(float) * QX__QBLOCK * M4 * 16);
        f->T = qx__aligned_alloc(sizeof(float) * 2 * P * 16);
        f->lut8 = qx__aligned_alloc(2 * P * 16);
        f->probes.key = qx__malloc(sizeof(float) * ivf->nlist);
        f->probes.val = qx__malloc(sizeof(uint64_t) * ivf->nlist);
        f->rows = qx__malloc(sizeof(float *) * 2 * (f->R ? f->R : 1));
        f->xbuf = qx__aligned_alloc(sizeof(float) * ivf->d);
        f->prow = qx__aligned_alloc(sizeof(float) * (ivf->d + 16)); /* padded: kernels_fs.h */
        f->sub = qx__malloc(sizeof(uint32_t) * (M4 + 1));
        for (size_t m = 0; f->sub && m <= M4; m++) {
            size_t lo, hi;
            qx_fs_subspace(ivf->d, M4, m < M4 ? m : M4 - 1, &lo, &hi);
            f->sub[m] = (uint32_t)(m < M4 ? lo : hi);
        }
        f->c2s = qx__malloc(sizeof(float) * 2 * (ivf->coarse2 ? (ivf->coarse2->G + 15) / 16 * 16 : 16));
        if (!f->lutf || !f->T || !f->lut8 || !f->probes.key || !f->probes.val || !f->rows || !f->xbuf ||
            !f->c2s || !f->prow || !f->sub)
            return qx__fail(QX_ENOMEM, "fast-scan search context");
        /* see ivf_search.c: sgemv with beta = 0 may read y */
        memset(f->lutf, 0, sizeof(float) * QX__QBLOCK * M4 * 16);
    }
    if (f->M4 != M4 || f->P != P || f->nlist != ivf->nlist || f->d != ivf->d)
        return qx__fail(QX_EINVAL, "search context was made for another index");
    size_t maxl = 0;
    for (size_t l = 0; l < ivf->nlist; l++)
        if (ivf->lists[l].size > maxl) maxl = ivf->lists[l].size;
    size_t need = qx__fs_nblocks(maxl) * QX_FS_BLOCK;
    if (need > f->acc_cap) {
        qx__aligned_free(f->acc);
        f->acc_cap = need + need / 4 + QX_FS_BLOCK;
        f->acc_cap -= f->acc_cap % QX_FS_BLOCK;
        if (!(f->acc = qx__aligned_alloc(sizeof(uint16_t) * f->acc_cap)))
            return f->acc_cap = 0, qx__fail(QX_ENOMEM, "fast-scan scan buffer");
    }
    if (heap_k > f->heap_cap) {
        qx__free(f->rkey);
        qx__free(f->rval);
        f->rkey = qx__malloc(sizeof(float) * 2 * heap_k);
        f->rval = qx__malloc(sizeof(uint64_t) * 2 * heap_k);
        f->heap_cap = heap_k;
        if (!f->rkey || !f->rval) return f->heap_cap = 0, qx__fail(QX_ENOMEM, "fast-scan shortlist");
    }
    return 0;
}

/* Float table of one query (rows of the 4-bit steps, then the two norm
 * steps) → 8-bit table; returns the scale, *bias_sum receives Σ minima. */
static float quantize_lut(const qx_ivf *ivf, fs_ctx *f, const float *lutf, float *bias_sum) {
    size_t M4 = f->M4;
    memcpy(f->T, lutf, sizeof(float) * M4 * 16);
    if (ivf->has_norm) memcpy(f->T + M4 * 16, ivf->norm_levels, sizeof(float) * 32);
    return qx__fs_kernels_active()->quantize_lut(f->T, 2 * f->P, f->lut8, bias_sum);
}

/* ---- the reservoir (decision 3) ---- */

static void resv_reset(fs_ctx *f, size_t S) {
    f->rn = 0;
    f->rS = S;
    f->rthr = INFINITY;
}

/* Keep the S smallest of the rn entries (quickselect), threshold = the
 * largest kept. */
static void resv_shrink(fs_ctx *f) {
    float *key = f->rkey;
    uint64_t *val = f->rval;
    size_t lo = 0, hi = f->rn - 1, want = f->rS - 1;
    while (lo < hi) {
        float pivot = key[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (key[i] < pivot) i++;
            while (key[j] > pivot) j--;
            if (i <= j) {
                float tk = key[i]; key[i] = key[j]; key[j] = tk;
                uint64_t tv = val[i]; val[i] = val[j]; val[j] = tv;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    f->rn = f->rS;
    float m = key[0];
    for (size_t i = 1; i < f->rn; i++) m = key[i] > m ? key[i] : m;
    f->rthr = m;
}

static inline void resv_add(fs_ctx *f, float key, uint64_t val) {
    f->rkey[f->rn] = key;
    f->rval[f->rn++] = val;
    if (f->rn == 2 * f->rS) resv_shrink(f);
}

static inline void resv_finish(fs_ctx *f) {
    if (f->rn > f->rS) resv_shrink(f);
}

static inline uint16_t threshold(float thr, float base, float scale) {
    float t = (thr - base) * scale;
    if (!(t > 0)) return 0;
    if (t >= 65535.0f) return UINT16_MAX; /* includes +inf: every sum is below */
    return (uint16_t)ceilf(t);
}

/* Filtered search (qinx/ivf.h): counts of the candidates tested and passed
 * and of the ids scanned, for the stopping rule of ivf_search.c. */
typedef struct fs_filter {
    int (*fn)(void *, int64_t);
    void *ctx;
    size_t tested, passed, scanned;
} fs_filter;

/* A uint16 t with at least S of the n sums below it, from a histogram of
 * at most 256 bins (sums are at most maxsum): the smallest bin boundary
 * that S sums fall under. Entries at or above t cannot be among the S best
 * of this list, so cutting there changes no result. */
static uint16_t hist_threshold(const uint16_t *acc, size_t n, size_t S, unsigned maxsum) {
    unsigned sh = 0;
    while ((maxsum >> sh) >= 256) sh++;
    uint32_t hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[acc[i] >> sh]++;
    size_t cum = 0;
    for (unsigned b = 0; b < 256; b++) {
        cum += hist[b];
        if (cum >= S) {
            unsigned t = (b + 1) << sh;
            return t > UINT16_MAX ? UINT16_MAX : (uint16_t)t;
        }
    }
    return UINT16_MAX;
}

/* Scan probes [p0, p1) of `probes` into f's reservoir (with flt: only ids
 * that pass enter it). */
static void scan_probes(const qx_ivf *ivf, const qx__fs_kernels *kern, fs_ctx *f,
                        const qx__topk *probes, size_t p0, size_t p1, const float *qc, float scale,
                        float bsum, fs_filter *flt) {
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    float inv = 1.0f / scale;
    for (size_t pi = p0; pi < p1; pi++) {
        uint32_t l = (uint32_t)probes->val[pi];
        const qx__ivf_list *L = &ivf->lists[l];
        size_t n = L->size;
        if (!n) continue;
        if (flt) flt->scanned += n;
        float base = bsum + (l2 ? -2.0f * qc[l] : -qc[l]);
        uint16_t thr = threshold(f->rthr, base, scale);
        if (thr == 0) continue;
        kern->scan(f->acc, L->fsb, qx__fs_nblocks(n), f->P, f->lut8);
        const uint16_t *acc = f->acc;
        /* the first list of an empty shortlist: cut at its S-th sum
         * (decision 3) instead of taking every entry */
        int first = !flt && f->rn == 0 && f->rthr == INFINITY && n > 2 * f->rS;
        if (first) thr = hist_threshold(acc, n, f->rS, 2 * f->P * 255);
        size_t i = 0;
        for (;;) {
            i += kern->find_lt_u16(acc + i, n - i, thr);
            if (i >= n) break;
            float est = base + (float)acc[i] * inv;
            if (est < f->rthr) {
                if (flt) {
                    flt->tested++;
                    if (!flt->fn(flt->ctx, L->ids[i])) {
                        i++;
                        continue;
                    }
                    flt->passed++;
                }
                float before = f->rthr;
                resv_add(f, est, qx__loc(l, (uint32_t)i));
                if (f->rthr != before) thr = threshold(f->rthr, base, scale);
            }
            i++;
        }
        if (first && f->rn >= f->rS) resv_shrink(f); /* a finite threshold for the next lists */
    }
}

/* The codebook rows of the candidate at loc (4-bit rows, then 8-bit rows);
 * with prefetch, their cache lines are requested (decision 4). */
static size_t cand_rows(const qx_ivf *ivf, const float *A4, const float *A8, uint64_t loc,
                        const float **rows, uint8_t *nib, int prefetch) {
    size_t d = ivf->d, H = ivf->fs_half, R8 = ivf->fs_rest, P = ivf->fs_pairs, r0 = 0;
    const qx__ivf_list *L = &ivf->lists[loc >> 32];
    size_t off = (uint32_t)loc;
    uint8_t sb[QX_FS_MAX_PAIRS];
    qx__fs_pack_get(L->fsb, P, off, nib ? nib : sb);
    if (!nib) { /* residual shape: the 4-bit rows are summed like the 8-bit ones */
        for (size_t j = 0; j < H; j++) {
            rows[2 * j] = A4 + ((2 * j) * 16 + (sb[j] & 15)) * d;
            rows[2 * j + 1] = A4 + ((2 * j + 1) * 16 + (sb[j] >> 4)) * d;
        }
        r0 = 2 * H;
    } else {
        r0 = 1; /* product shape: rows[0] is the centroid, set by refine */
    }
    const uint8_t *r = L->codes + off * R8;
    for (size_t m = 0; m < R8; m++) rows[r0 + m] = A8 + (m * 256 + r[m]) * d;
    if (prefetch)
        /* the 8-bit rows miss cache (M8 × 256 rows of d floats); the 4-bit
         * rows (16 per step) mostly hit */
        for (size_t m = 0; m < R8; m++)
            for (size_t b = 0; b < d * sizeof(float); b += 64)
                _mm_prefetch((const char *)rows[r0 + m] + b, _MM_HINT_T0);
    return r0 + R8;
}

/* Second stage: exact distances of the shortlist to their full
 * reconstructions, best k sorted into dist/ids. The rows of candidate i+1
 * are prefetched while candidate i is computed. */
static void refine(const qx_ivf *ivf, const qx__fs_kernels *kern, fs_ctx *f, const float *q,
                   size_t k, float *dist, int64_t *ids) {
    resv_finish(f);
    qx__topk view = {f->rkey, f->rval, f->rS, f->rn}, *h = &view;
    size_t d = ivf->d;
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    const float *A4 = qx_fs_codebooks4(ivf->quant), *A8 = qx_fs_codebooks8(ivf->quant);
    const float *pack = qx_fs_product_codewords(ivf->quant);
    size_t M4 = 2 * ivf->fs_half;
    uint8_t nb_cur[QX_FS_MAX_PAIRS], nb_next[QX_FS_MAX_PAIRS];
    uint8_t *ncur = pack ? nb_cur : NULL, *nnext = pack ? nb_next : NULL;
    size_t n = h->n, nr = 0;
    const float **cur = f->rows, **next = f->rows + f->R;
    if (n) nr = cand_rows(ivf, A4, A8, h->val[0], cur, ncur, 0);
    for (size_t i = 0; i < n; i++) {
        size_t nr_next = 0;
        if (i + 1 < n) nr_next = cand_rows(ivf, A4, A8, h->val[i + 1], next, nnext, 1);
        const float *cen = ivf->centroids + (size_t)(h->val[i] >> 32) * d;
        float s;
        if (pack && l2) {
            /* cur[0] is the slot cand_rows left for the centroid: unused here */
            s = kern->product_l2(q, cen, cur + 1, nr - 1, d, pack, ncur, f->sub, M4, f->prow);
        } else if (l2) {
            s = kern->decode_l2(q, cen, cur, nr, d);
        } else {
            if (pack) { /* inner product: the concatenated codewords as the base */
                kern->product_base(f->prow, pack, ncur, f->sub, M4);
                cur[0] = cen;
                cen = f->prow;
            }
            for (size_t t = 0; t < d; t++) {
                float x = cen[t];
                for (size_t m = 0; m < nr; m++) x += cur[m][t];
                f->xbuf[t] = x;
            }
            s = -qx_dot(q, f->xbuf, d);
        }
        h->key[i] = s;
        const float **t = cur;
        cur = next;
        next = t;
        uint8_t *nt = ncur;
        ncur = nnext;
        nnext = nt;
        nr = nr_next;
    }
    for (size_t i = n / 2; i-- > 0;) qx__topk_sift_down(h, i);
    while (h->n > k) {
        h->n--;
        h->key[0] = h->key[h->n];
        h->val[0] = h->val[h->n];
        qx__topk_sift_down(h, 0);
    }
    qx__topk_sort(h);
    size_t i = 0;
    for (; i < h->n; i++) {
        uint64_t loc = h->val[i];
        ids[i] = ivf->lists[loc >> 32].ids[(uint32_t)loc];
        dist[i] = l2 ? fmaxf(h->key[i], 0.0f) : -h->key[i];
    }
    for (; i < k; i++) {
        ids[i] = -1;
        dist[i] = l2 ? INFINITY : -INFINITY;
    }
}

/* The two-level coarse quantizer applies (ivf_coarse2.c)? */
static int use_coarse2(const qx_ivf *ivf, const qx_search_params *p) {
    return ivf->coarse2 && !p->filter && p->coarse_groups != QX_COARSE_FLAT;
}

/* The nprobe lists of one query: flat (qc holds every ⟨q, centroid⟩) or
 * two-level (qc is filled here for the lists it scores). */
static void select_probes(const qx_ivf *ivf, fs_ctx *f, const qx_search_params *p, const float *q,
                          float *qc, size_t nprobe) {
    qx__topk *probes = &f->probes;
    if (use_coarse2(ivf, p)) {
        size_t ng = p->coarse_groups ? p->coarse_groups : qx__coarse2_auto_groups(ivf->coarse2, nprobe);
        qx__coarse2_probes(ivf, ivf->coarse2, q, nprobe, ng, probes, qc, f->c2s);
        return;
    }
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    qx__topk_reset(probes, nprobe);
    for (size_t l = 0; l < ivf->nlist; l++) {
        float key = l2 ? ivf->centroid_norms[l] - 2.0f * qc[l] : -qc[l];
        if (qx__topk_wants(probes, key)) qx__topk_push(probes, key, l);
    }
}

static void search_one(const qx_ivf *ivf, fs_ctx *f, const qx_search_params *p, const float *q,
                       float *qc, const float *lutf, size_t k, size_t S, size_t nprobe, float *dist,
                       int64_t *ids) {
    const qx__fs_kernels *kern = qx__fs_kernels_active();
    qx_search_profile *prof = g_prof;
    double t0 = prof ? cpu_now() : 0, t1 = 0, t2 = 0, t3 = 0;
    float bsum;
    /* filtered: rank up to max_nprobe lists, scan nprobe, then more until
     * enough pass (the rule of ivf_search.c) */
    size_t nrank = nprobe;
    if (p->filter) {
        nrank = p->max_nprobe && p->max_nprobe < ivf->nlist ? p->max_nprobe : ivf->nlist;
        if (nrank < nprobe) nrank = nprobe;
    }
    select_probes(ivf, f, p, q, qc, nrank);
    if (prof) t1 = cpu_now();
    float scale = quantize_lut(ivf, f, lutf, &bsum);
    if (prof) t2 = cpu_now();
    resv_reset(f, S);
    if (!p->filter) {
        scan_probes(ivf, kern, f, &f->probes, 0, f->probes.n, qc, scale, bsum, NULL);
        if (p->lists_visited) *p->lists_visited = f->probes.n;
    } else {
        qx__topk_sort(&f->probes); /* nearest list first */
        fs_filter flt = {p->filter, p->filter_ctx, 0, 0, 0};
        size_t pi = 0, scanned_nprobe = 0, tested_near = 0, passed_near = 0;
        for (; pi < f->probes.n; pi++) {
            if (pi >= nprobe) {
                if (pi == nprobe) {
                    scanned_nprobe = flt.scanned, tested_near = flt.tested, passed_near = flt.passed;
                    if (flt.tested >= QX_FILTER_STOP_MIN_TESTED &&
                        (double)flt.passed < p->filter_stop_below * (double)flt.tested)
                        break; /* correlated: the caller searches the passing points another way */
                }
                if (flt.passed >= S &&
                    (double)flt.scanned * (double)flt.passed >= (double)scanned_nprobe * (double)flt.tested)
                    break;
            }
            scan_probes(ivf, kern, f, &f->probes, pi, pi + 1, qc, scale, bsum, &flt);
        }
        if (p->lists_visited) *p->lists_visited = pi;
        if (pi <= nprobe) tested_near = flt.tested, passed_near = flt.passed;
        if (p->filter_tested) *p->filter_tested = tested_near;
        if (p->filter_passed) *p->filter_passed = passed_near;
    }
    if (prof) t3 = cpu_now();
    refine(ivf, kern, f, q, k, dist, ids);
    if (prof) {
        prof->coarse += t1 - t0;
        prof->lut += t2 - t1;
        prof->scan += t3 - t2;
        prof->refine += cpu_now() - t3;
        prof->queries++;
    }
}

/* One query, its probes split over `threads` workers (decision 5). */
static void search_one_split(const qx_ivf *ivf, qx_ivf_search_ctx *ctx, int threads,
                             const qx_search_params *p, const float *q, float *qc, const float *lutf,
                             size_t k, size_t S, size_t nprobe, float *dist, int64_t *ids) {
    const qx__fs_kernels *kern = qx__fs_kernels_active();
    fs_ctx *f0 = ctx->workers[0]->fs;
    float bsum;
    select_probes(ivf, f0, p, q, qc, nprobe);
    if (p->lists_visited) *p->lists_visited = f0->probes.n;
    float scale = quantize_lut(ivf, f0, lutf, &bsum);
    size_t np = f0->probes.n;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        fs_ctx *f = ctx->workers[t]->fs;
        if (t) memcpy(f->lut8, f0->lut8, 2 * f0->P * 16);
        resv_reset(f, S);
        /* interleaved shares: the nearest lists (most improvements) spread evenly */
        for (size_t pi = (size_t)t; pi < np; pi += (size_t)threads)
            scan_probes(ivf, kern, f, &f0->probes, pi, pi + 1, qc, scale, bsum, NULL);
        resv_finish(f);
    }
    for (int t = 1; t < threads; t++) {
        fs_ctx *w = ctx->workers[t]->fs;
        for (size_t i = 0; i < w->rn; i++)
            if (w->rkey[i] < f0->rthr) resv_add(f0, w->rkey[i], w->rval[i]);
    }
    refine(ivf, kern, f0, q, k, dist, ids);
}

/* The 4-bit float table of one query for a product-shaped part (decision
 * 1): lut[m × 16 + k] = alpha × Σ over step m's dimensions t of
 * q[t] × rows[t × 16 + k], one dot16t a step on alpha × q (qa: d floats). */
static void product_table(const qx__fs_kernels *kern, const float *rows, const uint32_t *sub, size_t M4,
                          size_t d, float alpha, const float *q, float *qa, float *lut) {
    for (size_t t = 0; t < d; t++) qa[t] = alpha * q[t];
    for (size_t m = 0; m < M4; m++)
        kern->dot16t(lut + m * 16, qa + sub[m], rows + (size_t)sub[m] * 16, sub[m + 1] - sub[m]);
}

/* Coarse scores and 4-bit float tables of nb queries into c (decision 1). */
static void block_tables(const qx_ivf *ivf, qx_ivf_search_ctx *c, const qx_search_params *p,
                         const float *qb, size_t nb) {
    int flat = !use_coarse2(ivf, p); /* two-level: the coarse scores come per query */
    size_t d = ivf->d, nlist = ivf->nlist, M4 = 2 * ivf->fs_half;
    int l2 = ivf->opts.metric == QX_METRIC_L2;
    const float *cb4 = qx_fs_codebooks4(ivf->quant);
    fs_ctx *f = c->fs;
    float alpha = l2 ? -2.0f : -1.0f;
    qx_search_profile *prof = g_prof;
    double t0 = prof ? cpu_now() : 0, t1 = 0;
    /* coarse scores (flat quantizer), then the 4-bit tables */
    if (flat && nb <= 2)
        for (size_t i = 0; i < nb; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nlist, (int)d, 1.0f, ivf->centroids, (int)d,
                        qb + i * d, 1, 0.0f, c->coarse + i * nlist, 1);
    else if (flat)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nlist, (int)d, 1.0f, qb,
                    (int)d, ivf->centroids, (int)d, 0.0f, c->coarse, (int)nlist);
    if (prof) t1 = cpu_now();
    const float *prow = qx_fs_product_rows(ivf->quant);
    if (prow) {
        const qx__fs_kernels *kern = qx__fs_kernels_active();
        for (size_t i = 0; i < nb; i++)
            product_table(kern, prow, f->sub, M4, d, alpha, qb + i * d, f->xbuf, f->lutf + i * M4 * 16);
    } else if (nb <= 2) {
        for (size_t i = 0; i < nb; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(M4 * 16), (int)d, alpha, cb4, (int)d, qb + i * d,
                        1, 0.0f, f->lutf + i * M4 * 16, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)(M4 * 16), (int)d, alpha, qb,
                    (int)d, cb4, (int)d, 0.0f, f->lutf, (int)(M4 * 16));
    }
    if (prof) {
        prof->coarse += t1 - t0;
        prof->lut += cpu_now() - t1;
    }
}

/* Tables, then each query of the block, on the calling thread with c. */
static void search_block(const qx_ivf *ivf, qx_ivf_search_ctx *c, const qx_search_params *p,
                         const float *qb, size_t nb, size_t k, size_t S, size_t nprobe, float *dist,
                         int64_t *ids) {
    size_t d = ivf->d, nlist = ivf->nlist, M4 = 2 * ivf->fs_half;
    fs_ctx *f = c->fs;
    block_tables(ivf, c, p, qb, nb);
    for (size_t i = 0; i < nb; i++)
        search_one(ivf, f, p, qb + i * d, c->coarse + i * nlist, f->lutf + i * M4 * 16, k, S, nprobe,
                   dist + i * k, ids + i * k);
}

int qx__ivf_fs_search(const qx_ivf *ivf, qx_ivf_search_ctx *ctx, const float *queries,
                      size_t nq, size_t k, const qx_search_params *p, int threads, float *dist,
                      int64_t *ids) {
    size_t d = ivf->d, nlist = ivf->nlist;
    size_t S = p->shortlist ? p->shortlist : QX_FS_SHORTLIST_PER_K * k;
    if (S < k) S = k;
    size_t nprobe = p->nprobe < nlist ? p->nprobe : nlist;
    const float *cb4 = qx_fs_codebooks4(ivf->quant);
    if (!cb4) return qx__fail(QX_ESTATE, "search: fast-scan index without 4-bit codebooks");
    /* a single query may split its lists over the threads */
    int split = nq == 1 && p->threads > 1 && !p->filter ? p->threads : 0;
    if (split && ctx->nworkers < split) {
        qx_ivf_search_ctx **w = qx__realloc(ctx->workers, sizeof *w * (size_t)split);
        if (!w) return qx__fail(QX_ENOMEM, "search workers");
        ctx->workers = w;
        for (int t = ctx->nworkers; t < split; t++) {
            int rc = qx_ivf_search_ctx_new(&ctx->workers[t], ivf);
            if (rc) return rc;
            ctx->nworkers = t + 1;
        }
    }
    int rc = fs_ctx_fit(ivf, ctx, S);
    int nw = split > threads ? split : threads;
    for (int t = 0; rc == 0 && nw > 1 && t < nw; t++) rc = fs_ctx_fit(ivf, ctx->workers[t], S);
    if (rc) return rc;
    fs_ctx *f = ctx->fs;
    if (threads > 1 && !split && nq > QX__QBLOCK) {
        /* batch: whole 32-query blocks per thread, each with its own
         * tables, in one parallel region (decision 5) */
        size_t nblk = (nq + QX__QBLOCK - 1) / QX__QBLOCK;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
        for (size_t bi = 0; bi < nblk; bi++) {
            qx_ivf_search_ctx *w = ctx->workers[omp_get_thread_num()];
            size_t i0 = bi * QX__QBLOCK, nb = nq - i0 < QX__QBLOCK ? nq - i0 : QX__QBLOCK;
            search_block(ivf, w, p, queries + i0 * d, nb, k, S, nprobe, dist + i0 * k, ids + i0 * k);
        }
        return 0;
    }
    for (size_t i0 = 0; i0 < nq; i0 += QX__QBLOCK) {
        size_t nb = nq - i0 < QX__QBLOCK ? nq - i0 : QX__QBLOCK;
        if (split) {
            block_tables(ivf, ctx, p, queries + i0 * d, nb);
            search_one_split(ivf, ctx, split, p, queries + i0 * d, ctx->coarse, f->lutf, k, S, nprobe,
                             dist + i0 * k, ids + i0 * k);
        } else {
            search_block(ivf, ctx, p, queries + i0 * d, nb, k, S, nprobe, dist + i0 * k, ids + i0 * k);
        }
    }
    return 0;
}
