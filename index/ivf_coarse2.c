/* index/ivf_coarse2.c — a two-level coarse quantizer for the fast-scan
 * search: the nlist centroids are grouped by a small k-means over the
 * centroids themselves (G ≈ √nlist groups); a query scores the G group
 * means, keeps the best few groups and scores only the centroids in them.
 *
 * Why: at nprobe 1–4 the flat coarse quantizer (nlist × d multiply-adds,
 * 102k for GloVe's 1024 × 100) was the largest part of a fast-scan query
 * (8.3 µs of ~15 µs; docs/fastscan.md). Scoring 32 group means plus the
 * ~32 centroids of each of a few groups costs a fraction of that; the
 * price is that a list whose group was not kept cannot be probed (its
 * "coarse recall" is measured in docs/fastscan.md and tested against the
 * flat selection in tests/test_fastscan.c).
 *
 * Decisions:
 * 1. Derived, never stored: built after training and after loading from
 *    the centroids alone, with a deterministic Lloyd (evenly spaced seeds,
 *    fixed iterations, one thread), so a loaded index probes exactly as
 *    the saved one did and files carry no new section (old files load).
 * 2. Centroids are copied group by group into d × 16 transposed blocks
 *    (a group padded to a multiple of 16 with empty slots), scored with
 *    the dot16t kernel: 16 centroids per d broadcast-FMAs, no horizontal
 *    sums. The group means are stored the same way.
 * 3. Only for L2 indexes of the fast-scan kind with nlist >= 256: below
 *    that the flat scores are already cheap, and for inner product the
 *    mean of a group says little about its best member.
 * 4. Groups kept per query: qx_search_params.coarse_groups, or by default
 *    a rule measured on GloVe-100 (qx__coarse2_auto_groups).
 */
#include <math.h>
#include <string.h>

#include "ivf_impl.h"
#include "kernels_fs.h"

#define QX__C2_ITERS 20
#define QX__C2_PAD UINT32_MAX

void qx__coarse2_free(qx__coarse2 *c) {
    if (!c) return;
    qx__aligned_free(c->gblk);
    qx__free(c->gnorm);
    qx__free(c->bstart);
    qx__free(c->slot_list);
    qx__aligned_free(c->blk);
    qx__free(c);
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* Transposed blocks of 16 rows: row r of `rows` goes to column r % 16 of
 * block r / 16 (pad columns are zero). */
static void transpose16(float *blk, const float *const *rows, size_t n, size_t d) {
    size_t nb = round16(n) / 16;
    memset(blk, 0, sizeof(float) * nb * 16 * d);
    for (size_t r = 0; r < n; r++) {
        float *b = blk + (r / 16) * 16 * d;
        for (size_t t = 0; t < d; t++) b[t * 16 + r % 16] = rows[r][t];
    }
}

int qx__coarse2_build(qx_ivf *ivf) {
    qx__coarse2_free(ivf->coarse2);
    ivf->coarse2 = NULL;
    size_t nlist = ivf->nlist, d = ivf->d;
    if (!ivf->fs_pairs || ivf->opts.metric != QX_METRIC_L2 || nlist < QX__COARSE2_MIN_NLIST) return 0;
    size_t G = (size_t)lround(sqrt((double)nlist));
    qx__coarse2 *c = qx__calloc(1, sizeof *c);
    float *mean = qx__malloc(sizeof(float) * G * d);
    uint32_t *assign = qx__malloc(sizeof(uint32_t) * nlist);
    size_t *cnt = qx__calloc(G, sizeof(size_t));
    const float **rows = qx__malloc(sizeof(float *) * (nlist > G ? nlist : G));
    int rc = 0;
    if (!c || !mean || !assign || !cnt || !rows) {
        rc = qx__fail(QX_ENOMEM, "two-level coarse quantizer of %zu lists", nlist);
        goto out;
    }
    c->G = G;
    for (size_t g = 0; g < G; g++) memcpy(mean + g * d, ivf->centroids + (g * nlist / G) * d, sizeof(float) * d);
    for (int it = 0; it <= QX__C2_ITERS; it++) {
        for (size_t l = 0; l < nlist; l++) {
            const float *x = ivf->centroids + l * d;
            float best = INFINITY;
            uint32_t bg = 0;
            for (size_t g = 0; g < G; g++) {
                float s = qx_l2sqr(x, mean + g * d, d);
                if (s < best) best = s, bg = (uint32_t)g;
            }
            assign[l] = bg;
        }
        if (it == QX__C2_ITERS) break;
        memset(cnt, 0, sizeof(size_t) * G);
        for (size_t l = 0; l < nlist; l++) cnt[assign[l]]++;
        for (size_t g = 0; g < G; g++)
            if (cnt[g]) memset(mean + g * d, 0, sizeof(float) * d);
        for (size_t l = 0; l < nlist; l++) {
            if (!cnt[assign[l]]) continue;
            float *m = mean + (size_t)assign[l] * d;
            const float *x = ivf->centroids + l * d;
            for (size_t t = 0; t < d; t++) m[t] += x[t] / (float)cnt[assign[l]];
        }
        /* an empty group keeps its old mean (it then stays empty or wins points back) */
    }
    memset(cnt, 0, sizeof(size_t) * G);
    for (size_t l = 0; l < nlist; l++) cnt[assign[l]]++;
    /* slots: group by group, each padded to a multiple of 16 */
    size_t nslots = 0;
    c->bstart = qx__malloc(sizeof(size_t) * (G + 1));
    if (!c->bstart) {
        rc = qx__fail(QX_ENOMEM, "two-level coarse quantizer");
        goto out;
    }
    for (size_t g = 0; g < G; g++) {
        c->bstart[g] = nslots / 16;
        nslots += round16(cnt[g]);
    }
    c->bstart[G] = nslots / 16;
    c->nslots = nslots;
    c->slot_list = qx__malloc(sizeof(uint32_t) * nslots);
    c->blk = qx__aligned_alloc(sizeof(float) * nslots * d);
    c->gblk = qx__aligned_alloc(sizeof(float) * round16(G) * d);
    c->gnorm = qx__malloc(sizeof(float) * round16(G));
    if (!c->slot_list || !c->blk || !c->gblk || !c->gnorm) {
        rc = qx__fail(QX_ENOMEM, "two-level coarse quantizer of %zu lists", nlist);
        goto out;
    }
    for (size_t s = 0; s < nslots; s++) c->slot_list[s] = QX__C2_PAD;
    for (size_t g = 0; g < G; g++) {
        size_t s0 = c->bstart[g] * 16, n = 0;
        for (size_t l = 0; l < nlist; l++)
            if (assign[l] == g) {
                c->slot_list[s0 + n] = (uint32_t)l;
                rows[n++] = ivf->centroids + l * d;
            }
        transpose16(c->blk + s0 * d, rows, n, d);
    }
    for (size_t g = 0; g < G; g++) {
        rows[g] = mean + g * d;
        /* an empty group is never chosen */
        c->gnorm[g] = cnt[g] ? qx_dot(rows[g], rows[g], d) : INFINITY;
    }
    for (size_t g = G; g < round16(G); g++) c->gnorm[g] = INFINITY;
    transpose16(c->gblk, rows, G, d);
    ivf->coarse2 = c;
    c = NULL;
out:
    qx__coarse2_free(c);
    qx__free(mean);
    qx__free(assign);
    qx__free(cnt);
    qx__free(rows);
    return rc;
}

size_t qx__coarse2_auto_groups(const qx__coarse2 *c, size_t nprobe) {
    /* measured on GloVe-100 (nlist 1024, G = 32; docs/fastscan.md): G/4 +
     * nprobe/2 groups lose 1-2 % of the 10-recall@10 of the flat
     * selection at nprobe 1-16, and less above */
    size_t ng = c->G / 4 + nprobe / 2;
    if (ng < 1) ng = 1;
    return ng < c->G ? ng : c->G;
}

void qx__coarse2_probes(const qx_ivf *ivf, const qx__coarse2 *c, const float *q, size_t nprobe,
                        size_t ngroups, qx__topk *probes, float *qc, float *scratch) {
    const qx__fs_kernels *kern = qx__fs_kernels_active();
    size_t d = ivf->d, G = c->G, Gp = round16(G);
    float *gs = scratch;              /* Gp group keys */
    uint32_t *gsel = (uint32_t *)(scratch + Gp); /* ngroups chosen groups */
    float tmp[16];
    for (size_t b = 0; b < Gp / 16; b++) {
        kern->dot16t(tmp, q, c->gblk + b * 16 * d, d);
        for (size_t j = 0; j < 16; j++) gs[b * 16 + j] = c->gnorm[b * 16 + j] - 2.0f * tmp[j];
    }
    if (ngroups > G) ngroups = G;
    if (ngroups < 1) ngroups = 1;
    /* the ngroups smallest keys, by insertion (G is ~32) */
    size_t ns = 0;
    float skey[QX__COARSE2_MAX_GROUPS];
    for (size_t g = 0; g < G; g++) {
        float v = gs[g];
        if (ns == ngroups && !(v < skey[ns - 1])) continue;
        size_t j = ns < ngroups ? ns++ : ns - 1;
        while (j > 0 && skey[j - 1] > v) {
            skey[j] = skey[j - 1];
            gsel[j] = gsel[j - 1];
            j--;
        }
        skey[j] = v;
        gsel[j] = (uint32_t)g;
    }
    qx__topk_reset(probes, nprobe);
    for (size_t i = 0; i < ns; i++) {
        size_t g = gsel[i];
        if (isinf(skey[i])) break; /* empty groups */
        for (size_t b = c->bstart[g]; b < c->bstart[g + 1]; b++) {
            kern->dot16t(tmp, q, c->blk + b * 16 * d, d);
            const uint32_t *sl = c->slot_list + b * 16;
            for (size_t j = 0; j < 16; j++) {
                uint32_t l = sl[j];
                if (l == QX__C2_PAD) break; /* pads only at a group's end */
                qc[l] = tmp[j];
                float key = ivf->centroid_norms[l] - 2.0f * tmp[j];
                if (qx__topk_wants(probes, key)) qx__topk_push(probes, key, l);
            }
        }
    }
}
