/* quant/kernels_fs_avx512.c — AVX-512BW fast-scan kernels (built with the
 * AVX-512 flags by file-name suffix; called only after the CPU check).
 *
 * Decisions:
 * 1. A 64-byte load covers two nibble pairs of one 32-vector block (the
 *    pairs of a block are contiguous), so each vpshufb on zmm looks up four
 *    16-entry tables at once: lanes 0–1 the table of pair p, lanes 2–3 that
 *    of pair p+1. The 256-bit halves hold the same 32 vectors, so they are
 *    added together once per block; an odd last pair runs on ymm.
 * 2. The per-call tables are assembled into zmm form once per call (not
 *    per block): a list scan reuses them for every block.
 * 3. Accumulation and output order as in kernels_fs_avx2.c (uint16 lanes,
 *    acc − 256·acc_hi), so the result equals the scalar reference exactly.
 */
#include <immintrin.h>

#include "kernels_fs.h"

static inline __m256i bcast16(const uint8_t *t) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

static void scan_avx512(uint16_t *out, const uint8_t *blocks, size_t nblocks, size_t npairs,
                        const uint8_t *lut) {
    __m512i T0[QX_FS_MAX_PAIRS / 2], T1[QX_FS_MAX_PAIRS / 2];
    size_t np2 = npairs / 2;
    for (size_t k = 0; k < np2; k++) {
        const uint8_t *a = lut + 64 * k; /* steps 4k .. 4k+3 */
        T0[k] = _mm512_inserti64x4(_mm512_castsi256_si512(bcast16(a)), bcast16(a + 32), 1);
        T1[k] = _mm512_inserti64x4(_mm512_castsi256_si512(bcast16(a + 16)), bcast16(a + 48), 1);
    }
    const int odd = (int)(npairs & 1);
    const __m256i t0o = odd ? bcast16(lut + 32 * (npairs - 1)) : _mm256_setzero_si256();
    const __m256i t1o = odd ? bcast16(lut + 32 * (npairs - 1) + 16) : _mm256_setzero_si256();
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + b * QX_FS_BLOCK * npairs;
        __m512i acc = _mm512_setzero_si512(), acchi = _mm512_setzero_si512();
        for (size_t k = 0; k < np2; k++) {
            __m512i c = _mm512_loadu_si512((const void *)(blk + 64 * k));
            __m512i lo = _mm512_and_si512(c, low4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
            __m512i r0 = _mm512_shuffle_epi8(T0[k], lo), r1 = _mm512_shuffle_epi8(T1[k], hi);
            acc = _mm512_add_epi16(acc, _mm512_add_epi16(r0, r1));
            acchi = _mm512_add_epi16(acchi, _mm512_add_epi16(_mm512_srli_epi16(r0, 8),
                                                             _mm512_srli_epi16(r1, 8)));
        }
        __m256i a = _mm256_add_epi16(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
        __m256i ah = _mm256_add_epi16(_mm512_castsi512_si256(acchi),
                                      _mm512_extracti64x4_epi64(acchi, 1));
        if (odd) {
            const __m256i l4 = _mm256_set1_epi8(0x0F);
            __m256i c = _mm256_loadu_si256((const __m256i *)(blk + 64 * np2));
            __m256i r0 = _mm256_shuffle_epi8(t0o, _mm256_and_si256(c, l4));
            __m256i r1 = _mm256_shuffle_epi8(t1o, _mm256_and_si256(_mm256_srli_epi16(c, 4), l4));
            a = _mm256_add_epi16(a, _mm256_add_epi16(r0, r1));
            ah = _mm256_add_epi16(ah, _mm256_add_epi16(_mm256_srli_epi16(r0, 8), _mm256_srli_epi16(r1, 8)));
        }
        __m256i even = _mm256_sub_epi16(a, _mm256_slli_epi16(ah, 8));
        __m256i lo = _mm256_unpacklo_epi16(even, ah), hi = _mm256_unpackhi_epi16(even, ah);
        uint16_t *o = out + b * QX_FS_BLOCK;
        _mm256_storeu_si256((__m256i *)o, _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(o + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
}

static size_t find_lt_u16_avx512(const uint16_t *v, size_t n, uint16_t thr) {
    const __m512i t = _mm512_set1_epi16((short)thr);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __mmask32 m = _mm512_cmplt_epu16_mask(_mm512_loadu_si512((const void *)(v + i)), t);
        if (m) return i + (size_t)__builtin_ctz(m);
    }
    if (i < n) {
        __mmask32 k = (__mmask32)((1ull << (n - i)) - 1);
        __mmask32 m = _mm512_mask_cmplt_epu16_mask(k, _mm512_maskz_loadu_epi16(k, v + i), t);
        if (m) return i + (size_t)__builtin_ctz(m);
    }
    return n;
}

static float decode_l2_avx512(const float *q, const float *base, const float *const *rows,
                              size_t nrows, size_t d) {
    __m512 s = _mm512_setzero_ps();
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 k = d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(k, base + j);
        for (size_t r = 0; r < nrows; r++) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(k, rows[r] + j));
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, q + j), x);
        s = _mm512_fmadd_ps(t, t, s);
    }
    return _mm512_reduce_add_ps(s);
}

/* four accumulators: the FMA latency (4 cycles), not the ports, bounds one
 * chain of d dependent FMAs */
static void dot16t_avx512(float *out, const float *q, const float *blk, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
           a3 = _mm512_setzero_ps();
    size_t t = 0;
    for (; t + 4 <= d; t += 4) {
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[t]), _mm512_loadu_ps(blk + t * 16), a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[t + 1]), _mm512_loadu_ps(blk + t * 16 + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_set1_ps(q[t + 2]), _mm512_loadu_ps(blk + t * 16 + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_set1_ps(q[t + 3]), _mm512_loadu_ps(blk + t * 16 + 48), a3);
    }
    for (; t < d; t++) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[t]), _mm512_loadu_ps(blk + t * 16), a0);
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* One step's 16 entries are one zmm: its minimum and maximum by reduction,
 * then (T − min) × scale + 0.5, clamped to [0, 255], truncated and narrowed
 * to bytes, as the scalar reference does entry by entry. */
static float quantize_lut_avx512(const float *T, size_t nsteps, uint8_t *lut8, float *bias_sum) {
    float span = 0, bsum = 0, mins[2 * QX_FS_MAX_PAIRS];
    for (size_t s = 0; s < nsteps; s++) {
        __m512 v = _mm512_loadu_ps(T + s * 16);
        float lo = _mm512_reduce_min_ps(v), hi = _mm512_reduce_max_ps(v);
        mins[s] = lo;
        bsum += lo;
        if (hi - lo > span) span = hi - lo;
    }
    float scale = span > 0 ? 255.0f / span : 1.0f;
    const __m512 sc = _mm512_set1_ps(scale), half = _mm512_set1_ps(0.5f), zero = _mm512_setzero_ps(),
                 top = _mm512_set1_ps(255.0f);
    for (size_t s = 0; s < nsteps; s++) {
        __m512 v = _mm512_sub_ps(_mm512_loadu_ps(T + s * 16), _mm512_set1_ps(mins[s]));
        v = _mm512_add_ps(_mm512_mul_ps(v, sc), half);
        v = _mm512_min_ps(_mm512_max_ps(v, zero), top);
        _mm_storeu_si128((__m128i *)(lut8 + s * 16), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
    }
    *bias_sum = bsum;
    return scale;
}

/* Whole-register copies, steps in increasing order: a step's 16-float store
 * runs past its dimensions into the next step's, which then overwrites
 * them (kernels_fs.h: x and pack are padded). */
static void product_base_avx512(float *x, const float *pack, const uint8_t *nib, const uint32_t *sub,
                                size_t M4) {
    for (size_t m = 0; m < M4; m++) {
        size_t lo = sub[m], ds = sub[m + 1] - lo, c = m % 2 ? nib[m / 2] >> 4 : nib[m / 2] & 15;
        const float *a = pack + 16 * lo + c * ds;
        for (size_t t = 0; t < ds; t += 16) _mm512_storeu_ps(x + lo + t, _mm512_loadu_ps(a + t));
    }
}

/* y = q − base − Σ rows with aligned whole-register stores (ybuf is padded),
 * then per step a masked difference with its codeword: loads only. */
static float product_l2_avx512(const float *q, const float *base, const float *const *rows, size_t nrows,
                               size_t d, const float *pack, const uint8_t *nib, const uint32_t *sub,
                               size_t M4, float *ybuf) {
    for (size_t j = 0; j < d; j += 16) {
        __mmask16 k = d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(k, base + j);
        for (size_t r = 0; r < nrows; r++) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(k, rows[r] + j));
        _mm512_store_ps(ybuf + j, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, q + j), x));
    }
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    if ((d + M4 - 1) / M4 <= 16) {
        /* every step fits one register: a pair of steps per code byte,
         * no inner loop */
        for (size_t j = 0; j < M4 / 2; j++) {
            unsigned b = nib[j];
            size_t lo0 = sub[2 * j], lo1 = sub[2 * j + 1], ds0 = lo1 - lo0, ds1 = sub[2 * j + 2] - lo1;
            __m512 e0 = _mm512_maskz_sub_ps((__mmask16)((1u << ds0) - 1u), _mm512_loadu_ps(ybuf + lo0),
                                            _mm512_loadu_ps(pack + 16 * lo0 + (b & 15) * ds0));
            __m512 e1 = _mm512_maskz_sub_ps((__mmask16)((1u << ds1) - 1u), _mm512_loadu_ps(ybuf + lo1),
                                            _mm512_loadu_ps(pack + 16 * lo1 + (b >> 4) * ds1));
            s0 = _mm512_fmadd_ps(e0, e0, s0);
            s1 = _mm512_fmadd_ps(e1, e1, s1);
        }
        return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
    for (size_t m = 0; m < M4; m++) {
        size_t lo = sub[m], ds = sub[m + 1] - lo, c = m % 2 ? nib[m / 2] >> 4 : nib[m / 2] & 15;
        const float *a = pack + 16 * lo + c * ds;
        for (size_t t = 0; t < ds; t += 16) {
            __mmask16 k = ds - t >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ds - t)) - 1u);
            __m512 e = _mm512_maskz_sub_ps(k, _mm512_loadu_ps(ybuf + lo + t), _mm512_loadu_ps(a + t));
            if (m & 1) s1 = _mm512_fmadd_ps(e, e, s1);
            else s0 = _mm512_fmadd_ps(e, e, s0);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

const qx__fs_kernels qx__fs_kernels_avx512 = {
    .name = "avx512",
    .scan = scan_avx512,
    .find_lt_u16 = find_lt_u16_avx512,
    .decode_l2 = decode_l2_avx512,
    .dot16t = dot16t_avx512,
    .quantize_lut = quantize_lut_avx512,
    .product_base = product_base_avx512,
    .product_l2 = product_l2_avx512,
};
