/* verify/derp_health.c — per-step codebook health of any qx_quantizer.
 *
 * For each step m of a trained quantizer, on n vectors x: codeword usage
 * (fraction used, perplexity exp(H)/K of the usage histogram, dead count),
 * the MSE with steps 0..m and the drop step m gives, the normality of the
 * residuals x - decode(code, m+1 steps) on random probes ("multi-scale":
 * every level is tested, since a collapse or misfit at one level shows in
 * that level's residual) and the normality of the step's 256 additive
 * codewords (a weak test with n = 256: reported, not meant for gating).
 *
 * Decisions:
 * 1. Only the public quantizer API is used (encode, multi-rate decode,
 *    additive codebooks), so RQ and the QINCo-style quantizer are covered
 *    alike. Decoding with m+1 steps for every m costs O(n d M^2 / 2) —
 *    less than one beam-search encode for M <= 16.
 * 2. Step-outer loop over blocks of vectors: memory is one block of
 *    reconstructions plus the P x m_test projections, whatever n and M.
 *    Residual rows of the strided test subsample are projected block by
 *    block straight into their columns of the projection matrix.
 * 3. Usage and MSE use every vector; only the K–S tests are capped at
 *    opts.max_test_n (see qinx/derp.h for why).
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "derp_impl.h"
#include "qinx/fastscan.h"

#define QX__DERP_BLOCK 4096

void qx_derp_health_free(qx_derp_health *h) {
    if (!h) return;
    if (h->steps)
        for (size_t m = 0; m < h->M; m++) {
            qx_derp_family_clear(&h->steps[m].residual);
            qx_derp_family_clear(&h->steps[m].codebook);
        }
    qx__free(h->steps);
    qx__free(h);
}

/* Used count and exp(H) of one histogram of K bins over n draws. */
static void hist_stats(const uint32_t *count, int K, size_t n, size_t *used, double *expH) {
    double H = 0;
    size_t u = 0;
    for (int k = 0; k < K; k++) {
        if (!count[k]) continue;
        u++;
        double f = (double)count[k] / (double)n;
        H -= f * log(f);
    }
    *used = u;
    *expH = exp(H);
}

void qx__derp_usage(const uint8_t *codes, size_t n, size_t stride, size_t col, int nibbles,
                    qx_derp_step *st) {
    uint32_t count[3][QX_KSUB] = {{0}};
    for (size_t i = 0; i < n; i++) {
        uint8_t v = codes[i * stride + col];
        count[0][v]++;
        count[1][v & 15]++;
        count[2][v >> 4]++;
    }
    size_t used;
    double expH;
    if (!nibbles) {
        hist_stats(count[0], QX_KSUB, n, &used, &expH);
        double cap = n < QX_KSUB ? (double)n : QX_KSUB;
        st->ksub = QX_KSUB;
        st->used = used;
        st->used_fraction = n ? (double)used / cap : 0;
        st->perplexity = n ? expH / cap : 0;
    } else {
        double cap = n < 16 ? (double)n : 16;
        st->ksub = 16;
        st->used_fraction = st->perplexity = INFINITY;
        for (int h = 1; h <= 2; h++) {
            hist_stats(count[h], 16, n, &used, &expH);
            if (n && (double)used / cap < st->used_fraction) {
                st->used = used;
                st->used_fraction = (double)used / cap;
            }
            if (n && expH / cap < st->perplexity) st->perplexity = expH / cap;
        }
        if (!n) st->used = 0, st->used_fraction = st->perplexity = 0;
    }
    st->dead = st->ksub - st->used;
}

size_t qx__derp_nibble_bytes(const qx_quantizer *q) {
    return qx_quantizer_kind(q) == QX_QUANT_FASTSCAN ? qx_fs_steps4(q) / 2 : 0;
}

typedef struct health_ctx {
    const qx_quantizer *q;
    const float *x, *ctx; /* ctx: contexts (qx_quantizer_uses_context), or NULL */
    const uint8_t *codes;
    size_t n, d, M, mt; /* mt: vectors in the K–S test subsample */
    const float *probes;
    size_t P;
    float *rec, *blk, *proj;
} health_ctx;

/* MSE with steps 0..m over all n and the P x mt projections of the
 * subsample's residuals. */
static int step_pass(health_ctx *c, size_t m, double *mse) {
    size_t d = c->d, M = c->M, k = 0; /* k: next subsample row */
    double sum = 0;
    for (size_t i0 = 0; i0 < c->n; i0 += QX__DERP_BLOCK) {
        size_t b = c->n - i0 < QX__DERP_BLOCK ? c->n - i0 : QX__DERP_BLOCK;
        int rc = qx_quantizer_decode_ctx(c->q, c->codes + i0 * M, c->ctx ? c->ctx + i0 * d : NULL, b,
                                         m + 1, c->rec);
        if (rc) return qx__wrap(rc, "health: decoding step %zu", m);
        const float *xb = c->x + i0 * d;
        for (size_t j = 0; j < b * d; j++) {
            double e = (double)xb[j] - c->rec[j];
            sum += e * e;
        }
        /* Residuals of the subsample rows falling in this block. */
        size_t k0 = k, nb = 0;
        for (; k < c->mt; k++) {
            size_t idx = qx_sample_index(k, c->n, c->mt);
            if (idx >= i0 + b) break;
            const float *xr = c->x + idx * d, *rr = c->rec + (idx - i0) * d;
            float *dst = c->blk + nb * d;
            for (size_t j = 0; j < d; j++) dst[j] = xr[j] - rr[j];
            nb++;
        }
        if (nb)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->P, (int)nb, (int)d, 1.0f,
                        c->probes, (int)d, c->blk, (int)d, 0.0f, c->proj + k0, (int)c->mt);
    }
    *mse = sum / (double)c->n;
    return 0;
}

static int encode_all(const qx_quantizer *q, const float *x, const float *ctx, size_t n, size_t d,
                      size_t M, uint8_t *codes) {
    for (size_t i0 = 0; i0 < n; i0 += QX__DERP_BLOCK) {
        size_t b = n - i0 < QX__DERP_BLOCK ? n - i0 : QX__DERP_BLOCK;
        int rc = qx_quantizer_encode_ctx(q, x + i0 * d, ctx ? ctx + i0 * d : NULL, b, codes + i0 * M);
        if (rc) return qx__wrap(rc, "health: encoding vectors %zu..%zu", i0, i0 + b - 1);
    }
    return 0;
}

int qx_derp_health_compute(const qx_quantizer *q, const float *x, size_t n,
                           const uint8_t *codes, const qx_derp_opts *opts,
                           qx_derp_health **out) {
    return qx_derp_health_compute_ctx(q, x, NULL, n, codes, opts, out);
}

int qx_derp_health_compute_ctx(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                               const uint8_t *codes, const qx_derp_opts *opts,
                               qx_derp_health **out) {
    qx_derp_opts o;
    if (!out) return qx__fail(QX_EINVAL, "health: NULL result");
    *out = NULL;
    int rc = qx__derp_opts_check(opts, &o);
    if (rc) return rc;
    if (!q || !x) return qx__fail(QX_EINVAL, "health: NULL quantizer or vectors");
    if (!qx_quantizer_is_trained(q)) return qx__fail(QX_ESTATE, "health: quantizer not trained");
    if (n < QX_DERP_MIN_SAMPLE)
        return qx__fail(QX_EINVAL, "health: n=%zu, need at least %d", n, QX_DERP_MIN_SAMPLE);
    size_t d = qx_quantizer_dim(q), M = qx_quantizer_steps(q), total, bytes;
    if (!qx__mul(n, d, &total)) return qx__fail(QX_ENOMEM, "health: n*d overflows");
    if (n > (size_t)INT32_MAX) return qx__fail(QX_ELIMIT, "health: n=%zu too large", n);
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "health: vector %zu has a NaN or Inf at dimension %zu",
                        (size_t)bad / d, (size_t)bad % d);

    health_ctx c = {.q = q, .x = x, .ctx = ctx, .n = n, .d = d, .M = M, .P = o.probes};
    c.mt = qx__derp_sub_size(n, o.max_test_n);
    qx_derp_health *h = qx__calloc(1, sizeof *h);
    uint8_t *own_codes = NULL;
    float *probes = NULL, *cbproj = NULL;
    if (!h || !(h->steps = qx__calloc(M, sizeof *h->steps))) {
        qx__free(h);
        return qx__fail(QX_ENOMEM, "health: results for %zu steps", M);
    }
    h->n = n;
    h->d = d;
    h->M = M;
    h->kind = qx_quantizer_kind(q);
    size_t nib = qx__derp_nibble_bytes(q);

    if (!codes) {
        if (!qx__mul(n, M, &bytes) || !(own_codes = qx__malloc(bytes)))
            rc = qx__fail(QX_ENOMEM, "health: codes for %zu vectors", n);
        else rc = encode_all(q, x, ctx, n, d, M, own_codes);
        codes = own_codes;
    }
    c.codes = codes;
    if (rc == 0 && (!qx__mul3(QX__DERP_BLOCK, d, sizeof(float), &bytes) ||
                    !(c.rec = qx__aligned_alloc(bytes)) || !(c.blk = qx__aligned_alloc(bytes))))
        rc = qx__fail(QX_ENOMEM, "health: decode blocks");
    if (rc == 0 && (!qx__mul3(o.probes, c.mt, sizeof(float), &bytes) ||
                    !(c.proj = qx__aligned_alloc(bytes))))
        rc = qx__fail(QX_ENOMEM, "health: projections %zu x %zu", o.probes, c.mt);
    if (rc == 0 && (!qx__mul3(o.probes, d, sizeof(float), &bytes) ||
                    !(probes = qx__aligned_alloc(bytes))))
        rc = qx__fail(QX_ENOMEM, "health: probes");
    if (rc == 0) rc = qx_derp_probes_make(o.probes, d, o.seed, probes);
    c.probes = probes;

    if (rc == 0) {
        double s = 0;
        for (size_t j = 0; j < total; j++) s += (double)x[j] * x[j];
        h->mse0 = s / (double)n;
    }

    const float *acb = rc == 0 && o.test_codebooks ? qx_quantizer_additive_codebooks(q) : NULL;
    if (acb && !(cbproj = qx__aligned_alloc(o.probes * QX_KSUB * sizeof(float))))
        rc = qx__fail(QX_ENOMEM, "health: codebook projections");

    double prev = h->mse0;
    for (size_t m = 0; rc == 0 && m < M; m++) {
        qx_derp_step *st = &h->steps[m];
        st->step = m;
        qx__derp_usage(codes, n, M, m, m < nib, st);
        rc = step_pass(&c, m, &st->mse);
        if (rc) break;
        st->mse_drop = prev - st->mse;
        prev = st->mse;
        rc = qx__derp_normality_proj(c.proj, o.probes, c.mt, o.alpha, &st->residual);
        if (rc) {
            qx__wrap(rc, "health: residuals of step %zu", m);
            break;
        }
        if (acb) {
            rc = qx_derp_project(acb + m * QX_KSUB * d, QX_KSUB, d, probes, o.probes, cbproj);
            if (rc == 0)
                rc = qx__derp_normality_proj(cbproj, o.probes, QX_KSUB, o.alpha, &st->codebook);
            if (rc) qx__wrap(rc, "health: codebook of step %zu", m);
        }
    }

    qx__free(own_codes);
    qx__aligned_free(c.rec);
    qx__aligned_free(c.blk);
    qx__aligned_free(c.proj);
    qx__aligned_free(probes);
    qx__aligned_free(cbproj);
    if (rc) {
        qx_derp_health_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

int qx_derp_health_summarize(const qx_derp_health *h, qx_derp_health_summary *s) {
    if (!h || !s || !h->steps || h->M == 0)
        return qx__fail(QX_EINVAL, "health summary: NULL or empty health");
    memset(s, 0, sizeof *s);
    s->min_used_fraction = s->min_perplexity = s->min_mse_drop_ratio = INFINITY;
    double before = h->mse0;
    for (size_t m = 0; m < h->M; m++) {
        const qx_derp_step *st = &h->steps[m];
        if (st->used_fraction < s->min_used_fraction) {
            s->min_used_fraction = st->used_fraction;
            s->min_used_step = m;
        }
        if (st->perplexity < s->min_perplexity) {
            s->min_perplexity = st->perplexity;
            s->min_perplexity_step = m;
        }
        if (st->dead > s->max_dead) s->max_dead = st->dead;
        /* A step that starts from zero error cannot gain: count it as 0. */
        double ratio = before > 0 ? st->mse_drop / before : 0;
        if (ratio < s->min_mse_drop_ratio) {
            s->min_mse_drop_ratio = ratio;
            s->min_mse_drop_step = m;
        }
        before = st->mse;
        if (st->residual.P) {
            if (st->residual.rejected_fraction > s->max_residual_rejected_fraction)
                s->max_residual_rejected_fraction = st->residual.rejected_fraction;
            if (st->residual.D_mean > s->max_residual_D_mean)
                s->max_residual_D_mean = st->residual.D_mean;
        }
    }
    s->mse = h->steps[h->M - 1].mse;
    s->relative_mse = h->mse0 > 0 ? s->mse / h->mse0 : 0;
    return 0;
}
