/* quant/kernels_scalar.c — scalar kernels: the reference every SIMD variant is
 * tested against, and the fallback on CPUs without AVX2.
 *
 * Decisions:
 * 1. l2sqr/dot use four partial sums so the compiler (no -ffast-math) still
 *    gets some instruction-level parallelism; the order of additions differs
 *    from a naive loop only by rounding.
 * 2. lut_scan has two versions: the plain reference (one code at a time, steps
 *    in order) and an unrolled one that scores four codes at once with
 *    independent accumulators, hiding the latency of the dependent float adds
 *    (each code's sum is a chain of M adds). The unrolled one is in the table;
 *    it sums each code's steps in the same order, so results are bit-identical
 *    to the reference.
 */
#include "kernels_impl.h"

static float l2sqr_scalar(const float *a, const float *b, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        float t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1];
        float t2 = a[i + 2] - b[i + 2], t3 = a[i + 3] - b[i + 3];
        s0 += t0 * t0;
        s1 += t1 * t1;
        s2 += t2 * t2;
        s3 += t3 * t3;
    }
    for (; i < d; i++) {
        float t = a[i] - b[i];
        s0 += t * t;
    }
    return (s0 + s1) + (s2 + s3);
}

static float dot_scalar(const float *a, const float *b, size_t d) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < d; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void l2sqr_ny_scalar(float *out, const float *x, const float *y, size_t d, size_t ny) {
    for (size_t j = 0; j < ny; j++) out[j] = l2sqr_scalar(x, y + j * d, d);
}

static void dot_ny_scalar(float *out, const float *x, const float *y, size_t d, size_t ny) {
    for (size_t j = 0; j < ny; j++) out[j] = dot_scalar(x, y + j * d, d);
}

void qx__lut_scan_scalar_ref(float *out, const uint8_t *codes, size_t n, size_t stride,
                             size_t M, const float *lut) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = codes + i * stride;
        float s = 0;
        for (size_t m = 0; m < M; m++) s += lut[m * 256 + c[m]];
        out[i] = s;
    }
}

void qx__lut_scan_scalar_unrolled(float *out, const uint8_t *codes, size_t n, size_t stride,
                                  size_t M, const float *lut) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint8_t *c0 = codes + i * stride, *c1 = c0 + stride;
        const uint8_t *c2 = c1 + stride, *c3 = c2 + stride;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const float *t = lut;
        for (size_t m = 0; m < M; m++, t += 256) {
            s0 += t[c0[m]];
            s1 += t[c1[m]];
            s2 += t[c2[m]];
            s3 += t[c3[m]];
        }
        out[i] = s0;
        out[i + 1] = s1;
        out[i + 2] = s2;
        out[i + 3] = s3;
    }
    qx__lut_scan_scalar_ref(out + i, codes + i * stride, n - i, stride, M, lut);
}

void qx__beam_scores_scalar(float *out, const float *norms, const float *xc, float a,
                            const float *rows, const uint8_t *codes, size_t m) {
    float acc[256] = {0};
    for (size_t i = 0; i < m; i++) {
        const float *row = rows + (i * 256 + codes[i]) * 256;
        for (size_t k = 0; k < 256; k++) acc[k] += row[k];
    }
    for (size_t k = 0; k < 256; k++) {
        float base = norms[k] - 2.0f * xc[k];
        out[k] = (a + base) + 2.0f * acc[k];
    }
}

size_t qx__find_lt_scalar(const float *v, size_t n, float thr) {
    for (size_t i = 0; i < n; i++)
        if (v[i] < thr) return i;
    return n;
}

const qx__kernel_table qx__kernels_scalar = {
    .name = "scalar",
    .l2sqr = l2sqr_scalar,
    .dot = dot_scalar,
    .l2sqr_ny = l2sqr_ny_scalar,
    .dot_ny = dot_ny_scalar,
    .lut_scan = qx__lut_scan_scalar_unrolled,
    .beam_scores = qx__beam_scores_scalar,
    .find_lt = qx__find_lt_scalar,
};
