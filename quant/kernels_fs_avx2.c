/* quant/kernels_fs_avx2.c — AVX2 fast-scan kernels (built with -mavx2 -mfma
 * by file-name suffix; called only after the CPU check).
 *
 * Decisions:
 * 1. One 32-byte load holds one nibble pair of a whole 32-vector block; the
 *    low and high nibbles index two 16-entry tables with vpshufb (the table
 *    is broadcast to both 128-bit lanes, vpshufb works per lane).
 * 2. Sums in uint16 without widening: the 32 looked-up bytes are added as
 *    16 uint16 lanes (even vector + 256 × odd vector, wrapping), and a second
 *    accumulator adds the bytes shifted down by 8 (the odd vectors exactly);
 *    at the end even = acc − 256·acc_hi. Five integer ops per 32 bytes
 *    besides the shuffles, and no carry errors: the wrap cancels modulo 2^16.
 * 3. The even/odd lanes are interleaved back to vector order with two
 *    unpacks and two lane permutes per block, so the output is a plain
 *    array (the caller's threshold test is then one compare per 16 sums).
 */
#include <immintrin.h>

#include "kernels_fs.h"

static inline void store_block(uint16_t *out, __m256i acc, __m256i acchi) {
    __m256i even = _mm256_sub_epi16(acc, _mm256_slli_epi16(acchi, 8));
    __m256i lo = _mm256_unpacklo_epi16(even, acchi); /* lanes: v0..7 | v16..23 */
    __m256i hi = _mm256_unpackhi_epi16(even, acchi); /* lanes: v8..15 | v24..31 */
    _mm256_storeu_si256((__m256i *)out, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
}

static void scan_avx2(uint16_t *out, const uint8_t *blocks, size_t nblocks, size_t npairs,
                      const uint8_t *lut) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + b * QX_FS_BLOCK * npairs;
        __m256i acc = _mm256_setzero_si256(), acchi = _mm256_setzero_si256();
        for (size_t p = 0; p < npairs; p++) {
            __m256i c = _mm256_loadu_si256((const __m256i *)(blk + QX_FS_BLOCK * p));
            __m256i lo = _mm256_and_si256(c, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
            __m256i t0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(lut + 32 * p)));
            __m256i t1 =
                _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(lut + 32 * p + 16)));
            __m256i r0 = _mm256_shuffle_epi8(t0, lo), r1 = _mm256_shuffle_epi8(t1, hi);
            acc = _mm256_add_epi16(acc, _mm256_add_epi16(r0, r1));
            acchi = _mm256_add_epi16(acchi, _mm256_add_epi16(_mm256_srli_epi16(r0, 8),
                                                             _mm256_srli_epi16(r1, 8)));
        }
        store_block(out + b * QX_FS_BLOCK, acc, acchi);
    }
}

static size_t find_lt_u16_avx2(const uint16_t *v, size_t n, uint16_t thr) {
    if (thr == 0) return n;
    const __m256i t = _mm256_set1_epi16((short)(thr - 1));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(v + i));
        unsigned m = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_min_epu16(x, t), x));
        if (m) return i + (size_t)__builtin_ctz(m) / 2;
    }
    for (; i < n; i++)
        if (v[i] < thr) return i;
    return n;
}

static const int32_t mask_tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static float decode_l2_avx2(const float *q, const float *base, const float *const *rows,
                            size_t nrows, size_t d) {
    __m256 s = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m256 x = _mm256_loadu_ps(base + j);
        for (size_t r = 0; r < nrows; r++) x = _mm256_add_ps(x, _mm256_loadu_ps(rows[r] + j));
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(q + j), x);
        s = _mm256_fmadd_ps(t, t, s);
    }
    if (j < d) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(mask_tbl + 8 - (d - j)));
        __m256 x = _mm256_maskload_ps(base + j, m);
        for (size_t r = 0; r < nrows; r++) x = _mm256_add_ps(x, _mm256_maskload_ps(rows[r] + j, m));
        __m256 t = _mm256_sub_ps(_mm256_maskload_ps(q + j, m), x);
        s = _mm256_fmadd_ps(t, t, s);
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* two chains per half: FMA latency bounds a chain of d dependent FMAs */
static void dot16t_avx2(float *out, const float *q, const float *blk, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(),
           b1 = _mm256_setzero_ps();
    size_t t = 0;
    for (; t + 2 <= d; t += 2) {
        __m256 x = _mm256_broadcast_ss(q + t), y = _mm256_broadcast_ss(q + t + 1);
        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(blk + t * 16), a0);
        a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(blk + t * 16 + 8), a1);
        b0 = _mm256_fmadd_ps(y, _mm256_loadu_ps(blk + t * 16 + 16), b0);
        b1 = _mm256_fmadd_ps(y, _mm256_loadu_ps(blk + t * 16 + 24), b1);
    }
    if (t < d) {
        __m256 x = _mm256_broadcast_ss(q + t);
        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(blk + t * 16), a0);
        a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(blk + t * 16 + 8), a1);
    }
    _mm256_storeu_ps(out, _mm256_add_ps(a0, b0));
    _mm256_storeu_ps(out + 8, _mm256_add_ps(a1, b1));
}

const qx__fs_kernels qx__fs_kernels_avx2 = {
    .name = "avx2",
    .scan = scan_avx2,
    .find_lt_u16 = find_lt_u16_avx2,
    .decode_l2 = decode_l2_avx2,
    .dot16t = dot16t_avx2,
    .quantize_lut = qx__fs_quantize_lut,       /* the scalar reference (AVX-512 has its own) */
    .product_base = qx__fs_product_base_scalar,
    .product_l2 = qx__fs_product_l2_scalar,
};
