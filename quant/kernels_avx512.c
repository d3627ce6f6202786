/* quant/kernels_avx512.c — AVX-512 (F/BW/DQ/VL) kernels, compiled with those
 * flags by CMake because of the _avx512.c suffix and only called after the
 * CPU check.
 *
 * Decisions:
 * 1. Tails use mask registers (masked loads never fault), so every d is one
 *    loop plus one masked step.
 * 2. lut_scan gathers 16 steps of one code at once and reduces per code; for
 *    M < 16 it uses the AVX2 kernel (every AVX-512 CPU has AVX2), because a
 *    16-lane gather would be mostly masked off.
 * 3. The reference machine has no AVX-512, so this file is only compiled
 *    there; the unit test compares it with the scalar reference wherever the
 *    CPU has AVX-512 and skips it (saying so) elsewhere.
 */
#include <immintrin.h>

#include "kernels_impl.h"

static inline __mmask16 tail16(size_t r) { return (__mmask16)((1u << r) - 1u); }

static float l2sqr_avx512(const float *a, const float *b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
    }
    for (; i < d; i += 16) {
        __mmask16 k = d - i >= 16 ? (__mmask16)0xFFFF : tail16(d - i);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static float dot_avx512(const float *a, const float *b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < d; i += 16) {
        __mmask16 k = d - i >= 16 ? (__mmask16)0xFFFF : tail16(d - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void l2sqr_ny_avx512(float *out, const float *x, const float *y, size_t d, size_t ny) {
    for (size_t j = 0; j < ny; j++) out[j] = l2sqr_avx512(x, y + j * d, d);
}

static void dot_ny_avx512(float *out, const float *x, const float *y, size_t d, size_t ny) {
    for (size_t j = 0; j < ny; j++) out[j] = dot_avx512(x, y + j * d, d);
}

static void lut_scan_avx512(float *out, const uint8_t *codes, size_t n, size_t stride, size_t M,
                            const float *lut) {
    if (M < 16) {
        qx__lut_scan_avx2_gather(out, codes, n, stride, M, lut);
        return;
    }
    const __m512i step_off = _mm512_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792, 2048,
                                               2304, 2560, 2816, 3072, 3328, 3584, 3840);
    size_t M16 = M & ~(size_t)15;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = codes + i * stride;
        __m512 acc = _mm512_setzero_ps();
        for (size_t m = 0; m < M16; m += 16) {
            __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(c + m)));
            idx = _mm512_add_epi32(idx, step_off);
            acc = _mm512_add_ps(acc, _mm512_i32gather_ps(idx, lut + m * 256, 4));
        }
        float s = _mm512_reduce_add_ps(acc);
        for (size_t m = M16; m < M; m++) s += lut[m * 256 + c[m]];
        out[i] = s;
    }
}

const qx__kernel_table qx__kernels_avx512 = {
    .name = "avx512",
    .l2sqr = l2sqr_avx512,
    .dot = dot_avx512,
    .l2sqr_ny = l2sqr_ny_avx512,
    .dot_ny = dot_ny_avx512,
    .lut_scan = lut_scan_avx512,
    /* 256-float rows: the AVX2 versions are already load-bound */
    .beam_scores = qx__beam_scores_avx2,
    .find_lt = qx__find_lt_avx2,
};
