/* quant/kernels_avx2.c — AVX2 + FMA kernels (compiled with -mavx2 -mfma by
 * CMake because of the _avx2.c suffix; only called after the CPU check).
 *
 * Decisions:
 * 1. Tails (d % 8) use masked loads (vmaskmovps never faults on masked-off
 *    lanes), so there is no scalar epilogue and no read past the vectors.
 * 2. Two accumulators per kernel hide the FMA latency for d >= 16.
 * 3. lut_scan: two candidates were measured (see docs/rq.md, "kernels"):
 *    a gather per code over 8 steps at a time (8 codes per round, the 8
 *    per-code vectors reduced by a horizontal-add tree), and the unrolled
 *    scalar loop (4 codes at a time). On the reference AMD EPYC (Zen) the
 *    gather is ~1.7x slower (vgatherdps is microcoded there), so the table
 *    holds the unrolled scalar loop; the gather stays exported, tested, and is
 *    the building block of the AVX-512 kernel for M < 16.
 */
#include <immintrin.h>

#include "kernels_impl.h"

static const int32_t mask_tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __m256i tail_mask(size_t r) { /* r in 1..7 lanes on */
    return _mm256_loadu_si256((const __m256i *)(mask_tbl + 8 - r));
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float l2sqr_avx2(const float *a, const float *b, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    if (i + 8 <= d) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
        i += 8;
    }
    if (i < d) {
        __m256i m = tail_mask(d - i);
        __m256 t = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
        s1 = _mm256_fmadd_ps(t, t, s1);
    }
    return hsum256(_mm256_add_ps(s0, s1));
}

static float dot_avx2(const float *a, const float *b, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= d) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    if (i < d) {
        __m256i m = tail_mask(d - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum256(_mm256_add_ps(s0, s1));
}

static void l2sqr_ny_avx2(float *out, const float *x, const float *y, size_t d, size_t ny) {
    for (size_t j = 0; j < ny; j++) out[j] = l2sqr_avx2(x, y + j * d, d);
}

static void dot_ny_avx2(float *out, const float *x, const float *y, size_t d, size_t ny) {
    for (size_t j = 0; j < ny; j++) out[j] = dot_avx2(x, y + j * d, d);
}

/* Sum of lut[m*256 + c[m]] over the first M8 = M & ~7 steps, as 8 lanes. */
static inline __m256 gather_code(const uint8_t *c, size_t M8, const float *lut) {
    const __m256i step_off = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
    __m256 acc = _mm256_setzero_ps();
    for (size_t m = 0; m < M8; m += 8) {
        __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + m)));
        idx = _mm256_add_epi32(idx, step_off);
        acc = _mm256_add_ps(acc, _mm256_i32gather_ps(lut + m * 256, idx, 4));
    }
    return acc;
}

void qx__lut_scan_avx2_gather(float *out, const uint8_t *codes, size_t n, size_t stride,
                              size_t M, const float *lut) {
    size_t M8 = M & ~(size_t)7;
    if (M8 == 0) {
        qx__lut_scan_scalar_unrolled(out, codes, n, stride, M, lut);
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint8_t *c = codes + i * stride;
        __m256 a0 = gather_code(c, M8, lut), a1 = gather_code(c + stride, M8, lut);
        __m256 a2 = gather_code(c + 2 * stride, M8, lut);
        __m256 a3 = gather_code(c + 3 * stride, M8, lut);
        __m256 a4 = gather_code(c + 4 * stride, M8, lut);
        __m256 a5 = gather_code(c + 5 * stride, M8, lut);
        __m256 a6 = gather_code(c + 6 * stride, M8, lut);
        __m256 a7 = gather_code(c + 7 * stride, M8, lut);
        /* hadd tree: lane j of the result is the sum of a_j's 8 lanes. */
        __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
        __m256 h45 = _mm256_hadd_ps(a4, a5), h67 = _mm256_hadd_ps(a6, a7);
        __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
        __m256 lo = _mm256_permute2f128_ps(h0123, h4567, 0x20);
        __m256 hi = _mm256_permute2f128_ps(h0123, h4567, 0x31);
        __m256 sum = _mm256_add_ps(lo, hi);
        if (M8 < M) {
            float tail[8];
            for (int k = 0; k < 8; k++) {
                const uint8_t *ck = c + (size_t)k * stride;
                float s = 0;
                for (size_t m = M8; m < M; m++) s += lut[m * 256 + ck[m]];
                tail[k] = s;
            }
            sum = _mm256_add_ps(sum, _mm256_loadu_ps(tail));
        }
        _mm256_storeu_ps(out + i, sum);
    }
    for (; i < n; i++) {
        const uint8_t *c = codes + i * stride;
        float s = hsum256(gather_code(c, M8, lut));
        for (size_t m = M8; m < M; m++) s += lut[m * 256 + c[m]];
        out[i] = s;
    }
}

/* 256 scores in four passes of 64 (8 accumulators), rows summed in order so
 * the result matches the scalar reference up to the FMA-free rounding. */
void qx__beam_scores_avx2(float *out, const float *norms, const float *xc, float a,
                          const float *rows, const uint8_t *codes, size_t m) {
    const __m256 va = _mm256_set1_ps(a), two = _mm256_set1_ps(2.0f);
    for (size_t kb = 0; kb < 256; kb += 64) {
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
               c7 = c0;
        for (size_t i = 0; i < m; i++) {
            const float *r = rows + (i * 256 + codes[i]) * 256 + kb;
            c0 = _mm256_add_ps(c0, _mm256_loadu_ps(r));
            c1 = _mm256_add_ps(c1, _mm256_loadu_ps(r + 8));
            c2 = _mm256_add_ps(c2, _mm256_loadu_ps(r + 16));
            c3 = _mm256_add_ps(c3, _mm256_loadu_ps(r + 24));
            c4 = _mm256_add_ps(c4, _mm256_loadu_ps(r + 32));
            c5 = _mm256_add_ps(c5, _mm256_loadu_ps(r + 40));
            c6 = _mm256_add_ps(c6, _mm256_loadu_ps(r + 48));
            c7 = _mm256_add_ps(c7, _mm256_loadu_ps(r + 56));
        }
        __m256 acc[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
        for (int j = 0; j < 8; j++) {
            __m256 base = _mm256_sub_ps(_mm256_loadu_ps(norms + kb + 8 * j),
                                        _mm256_mul_ps(two, _mm256_loadu_ps(xc + kb + 8 * j)));
            __m256 b = _mm256_add_ps(va, base);
            _mm256_storeu_ps(out + kb + 8 * j, _mm256_add_ps(b, _mm256_mul_ps(two, acc[j])));
        }
    }
}

size_t qx__find_lt_avx2(const float *v, size_t n, float thr) {
    const __m256 t = _mm256_set1_ps(thr);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int m0 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + i), t, _CMP_LT_OQ));
        int m1 = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + i + 8), t, _CMP_LT_OQ));
        if (m0 | m1) return i + (size_t)__builtin_ctz((unsigned)(m0 | (m1 << 8)));
    }
    for (; i < n; i++)
        if (v[i] < thr) return i;
    return n;
}

const qx__kernel_table qx__kernels_avx2 = {
    .name = "avx2",
    .l2sqr = l2sqr_avx2,
    .dot = dot_avx2,
    .l2sqr_ny = l2sqr_ny_avx2,
    .dot_ny = dot_ny_avx2,
    /* measured on the reference AMD EPYC (100k codes): unrolled scalar 2.5 /
     * 4.8 / 10.2 ns per code at M = 8 / 16 / 32, gather 4.2 / 8.0 / 16.3 */
    .lut_scan = qx__lut_scan_scalar_unrolled,
    .beam_scores = qx__beam_scores_avx2,
    .find_lt = qx__find_lt_avx2,
};
