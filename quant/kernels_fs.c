/* quant/kernels_fs.c — fast-scan kernels: the scalar reference and the
 * dispatch (kernels_fs.h describes the block layout).
 *
 * Decisions:
 * 1. The level is the one qx_simd_active() chose (CPU features and the
 *    QX_SIMD override, once per process), so the distance kernels and the
 *    fast-scan kernels always run at the same level.
 * 2. The scalar scan is the plain definition (per vector, per step); it is
 *    the reference every SIMD variant is compared with, bit for bit.
 */
#include "kernels_fs.h"
#include "kernels_impl.h"

void qx__fs_scan_scalar(uint16_t *out, const uint8_t *blocks, size_t nblocks, size_t npairs,
                        const uint8_t *lut) {
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = blocks + b * QX_FS_BLOCK * npairs;
        for (size_t i = 0; i < QX_FS_BLOCK; i++) {
            unsigned s = 0;
            for (size_t p = 0; p < npairs; p++) {
                uint8_t c = blk[p * QX_FS_BLOCK + i];
                s += lut[(2 * p) * 16 + (c & 15)] + lut[(2 * p + 1) * 16 + (c >> 4)];
            }
            out[b * QX_FS_BLOCK + i] = (uint16_t)s;
        }
    }
}

size_t qx__fs_find_lt_u16_scalar(const uint16_t *v, size_t n, uint16_t thr) {
    for (size_t i = 0; i < n; i++)
        if (v[i] < thr) return i;
    return n;
}

float qx__fs_decode_l2_scalar(const float *q, const float *base, const float *const *rows,
                              size_t nrows, size_t d) {
    float s = 0;
    for (size_t j = 0; j < d; j++) {
        float x = base[j];
        for (size_t r = 0; r < nrows; r++) x += rows[r][j];
        float t = q[j] - x;
        s += t * t;
    }
    return s;
}

void qx__fs_dot16t_scalar(float *out, const float *q, const float *blk, size_t d) {
    for (size_t j = 0; j < 16; j++) out[j] = 0;
    for (size_t t = 0; t < d; t++)
        for (size_t j = 0; j < 16; j++) out[j] += q[t] * blk[t * 16 + j];
}

float qx__fs_quantize_lut(const float *T, size_t nsteps, uint8_t *lut8, float *bias_sum) {
    float span = 0, bsum = 0, mins[2 * QX_FS_MAX_PAIRS];
    for (size_t s = 0; s < nsteps; s++) {
        float lo = T[s * 16], hi = lo;
        for (int k = 1; k < 16; k++) {
            float v = T[s * 16 + k];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        mins[s] = lo;
        bsum += lo;
        if (hi - lo > span) span = hi - lo;
    }
    float scale = span > 0 ? 255.0f / span : 1.0f;
    for (size_t s = 0; s < nsteps; s++)
        for (int k = 0; k < 16; k++) {
            float v = (T[s * 16 + k] - mins[s]) * scale + 0.5f;
            lut8[s * 16 + k] = (uint8_t)(v >= 255.0f ? 255 : v <= 0.0f ? 0 : (int)v);
        }
    *bias_sum = bsum;
    return scale;
}

void qx__fs_product_base_scalar(float *x, const float *pack, const uint8_t *nib, const uint32_t *sub,
                                size_t M4) {
    for (size_t m = 0; m < M4; m++) {
        size_t lo = sub[m], ds = sub[m + 1] - lo, c = m % 2 ? nib[m / 2] >> 4 : nib[m / 2] & 15;
        const float *a = pack + 16 * lo + c * ds;
        for (size_t t = 0; t < ds; t++) x[lo + t] = a[t];
    }
}

float qx__fs_product_l2_scalar(const float *q, const float *base, const float *const *rows, size_t nrows,
                               size_t d, const float *pack, const uint8_t *nib, const uint32_t *sub,
                               size_t M4, float *ybuf) {
    for (size_t t = 0; t < d; t++) {
        float x = base[t];
        for (size_t r = 0; r < nrows; r++) x += rows[r][t];
        ybuf[t] = q[t] - x;
    }
    float s = 0;
    for (size_t m = 0; m < M4; m++) {
        size_t lo = sub[m], ds = sub[m + 1] - lo, c = m % 2 ? nib[m / 2] >> 4 : nib[m / 2] & 15;
        const float *a = pack + 16 * lo + c * ds;
        for (size_t t = 0; t < ds; t++) {
            float e = ybuf[lo + t] - a[t];
            s += e * e;
        }
    }
    return s;
}

const qx__fs_kernels qx__fs_kernels_scalar = {
    .name = "scalar",
    .scan = qx__fs_scan_scalar,
    .find_lt_u16 = qx__fs_find_lt_u16_scalar,
    .decode_l2 = qx__fs_decode_l2_scalar,
    .dot16t = qx__fs_dot16t_scalar,
    .quantize_lut = qx__fs_quantize_lut,
    .product_base = qx__fs_product_base_scalar,
    .product_l2 = qx__fs_product_l2_scalar,
};

const qx__fs_kernels *qx__fs_kernels_for(qx_simd_level level) {
    /* same availability rule as the distance kernels */
    if (!qx__kernels_for(level)) return NULL;
    switch (level) {
    case QX_SIMD_SCALAR: return &qx__fs_kernels_scalar;
    case QX_SIMD_AVX2: return &qx__fs_kernels_avx2;
    case QX_SIMD_AVX512: return &qx__fs_kernels_avx512;
    }
    return NULL;
}

const qx__fs_kernels *qx__fs_kernels_active(void) {
    static const qx__fs_kernels *table; /* benign race: every thread computes the same */
    const qx__fs_kernels *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    if (!t) {
        t = qx__fs_kernels_for(qx_simd_active());
        if (!t) t = &qx__fs_kernels_scalar;
        __atomic_store_n(&table, t, __ATOMIC_RELEASE);
    }
    return t;
}
