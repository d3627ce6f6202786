/* quant/kernels_fs.h — fast-scan kernels over 4-bit codes packed in
 * blocks of 32 vectors. Library-internal (qx__ names, not installed): quant/
 * exports it to index/ (ivf_fastscan*.c, ivf_coarse2.c), the one internal
 * header that crosses a module boundary, so it is not an _impl.h.
 *
 * Block layout (QX_FS_BLOCK = 32 vectors, P nibble pairs per vector):
 *   for each pair p in 0..P-1, 32 bytes; byte i holds vector i's nibble of
 *   step 2p in its low half and of step 2p+1 in its high half.
 * A block is therefore 32*P bytes, and the P bytes of one vector are exactly
 * its row-major code bytes (a fast-scan code byte packs steps 2p, 2p+1 the
 * same way), so packing is a byte transpose.
 *
 * Scan: out[b*32 + i] = Σ_{s<2P} lut[s*16 + nibble_s(b, i)] in uint16, with
 * lut an 8-bit table of 16 entries per step. The SIMD versions look the
 * nibbles up with vpshufb (16-entry tables per 128-bit lane) and sum in
 * uint16 lanes; results equal the scalar reference exactly (integer sums,
 * 2P*255 < 65536 for P <= QX_FS_MAX_PAIRS).
 *
 * Levels follow qinx/kernels.h (QX_SIMD honoured), chosen once per process.
 */
#ifndef QINX_KERNELS_FS_H
#define QINX_KERNELS_FS_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/kernels.h"

#define QX_FS_BLOCK 32
#define QX_FS_MAX_PAIRS 64 /* 128 nibble steps: 128*255 < 65536 */

typedef struct qx__fs_kernels {
    const char *name;
    /* out: nblocks*32 sums (see above); lut: 2*npairs*16 bytes. */
    void (*scan)(uint16_t *out, const uint8_t *blocks, size_t nblocks, size_t npairs,
                 const uint8_t *lut);
    /* First i < n with v[i] < thr, or n. */
    size_t (*find_lt_u16)(const uint16_t *v, size_t n, uint16_t thr);
    /* ||q − (base + Σ_r rows[r])||² over d floats (a decode fused with the
     * distance: the cascade's refinement step). */
    float (*decode_l2)(const float *q, const float *base, const float *const *rows,
                       size_t nrows, size_t d);
    /* out[j] = ⟨q, column j⟩ of a d × 16 block stored row-major (t*16 + j):
     * 16 centroids at once, transposed (the two-level coarse quantizer,
     * index/ivf_coarse2.c). */
    void (*dot16t)(float *out, const float *q, const float *blk, size_t d);
    /* qx__fs_quantize_lut below (SIMD variants may differ from the scalar
     * reference by one unit in an entry that sits on a rounding boundary:
     * the compiler may fuse the multiply and the add). */
    float (*quantize_lut)(const float *T, size_t nsteps, uint8_t *lut8, float *bias_sum);
    /* Product-shaped 4-bit part (qinx/fastscan.h): x[t] = coordinate t of
     * the codeword that nib picks for the step owning t, from the packed
     * table (qx_fs_product_codewords, which has 16 floats of padding); sub:
     * the M4 + 1 step boundaries. x must hold d + 16 floats: SIMD variants
     * store whole registers, later steps overwriting the tail of earlier
     * ones (masked stores are slow on this AMD core). A copy: equal to the
     * scalar reference on x[0..d). */
    void (*product_base)(float *x, const float *pack, const uint8_t *nib, const uint32_t *sub, size_t M4);
    /* ||q − (base + Σ_r rows[r] + p)||² where p is the product-shaped 4-bit
     * part nib picks (as product_base): y = q − base − Σ rows is written to
     * ybuf (d + 16 floats, 64-byte aligned), then each step's sub-vector of
     * y is compared with its codeword with masked arithmetic, no stores (the
     * L2 re-ranking of a product-shaped cascade). */
    float (*product_l2)(const float *q, const float *base, const float *const *rows, size_t nrows,
                        size_t d, const float *pack, const uint8_t *nib, const uint32_t *sub, size_t M4,
                        float *ybuf);
} qx__fs_kernels;

extern const qx__fs_kernels qx__fs_kernels_scalar;
extern const qx__fs_kernels qx__fs_kernels_avx2;
extern const qx__fs_kernels qx__fs_kernels_avx512;

/* The table in use (level of qx_simd_active()), and the table of a level
 * (NULL if the CPU lacks it). */
const qx__fs_kernels *qx__fs_kernels_active(void);
const qx__fs_kernels *qx__fs_kernels_for(qx_simd_level level);

/* Blocks needed for n vectors. */
static inline size_t qx__fs_nblocks(size_t n) { return (n + QX_FS_BLOCK - 1) / QX_FS_BLOCK; }

/* Write / read the P code bytes of vector i into / from packed blocks. */
static inline void qx__fs_pack_set(uint8_t *blocks, size_t npairs, size_t i, const uint8_t *bytes) {
    uint8_t *b = blocks + (i / QX_FS_BLOCK) * QX_FS_BLOCK * npairs + i % QX_FS_BLOCK;
    for (size_t p = 0; p < npairs; p++) b[p * QX_FS_BLOCK] = bytes[p];
}
static inline void qx__fs_pack_get(const uint8_t *blocks, size_t npairs, size_t i, uint8_t *bytes) {
    const uint8_t *b = blocks + (i / QX_FS_BLOCK) * QX_FS_BLOCK * npairs + i % QX_FS_BLOCK;
    for (size_t p = 0; p < npairs; p++) bytes[p] = b[p * QX_FS_BLOCK];
}

/* Quantize a float table of nsteps × 16 entries to 8 bits (decision 2 of
 * index/ivf_fastscan_search.c): per step the minimum is subtracted, one
 * scale (255 / widest step range) for all. Returns the scale; *bias_sum
 * receives the sum of the minima, so Σ T ≈ *bias_sum + Σ lut8 / scale with
 * an error of at most nsteps × 0.5 / scale (rounding to nearest). */
float qx__fs_quantize_lut(const float *T, size_t nsteps, uint8_t *lut8, float *bias_sum);

/* Scalar references, exported for the SIMD files' tails and for tests. */
void qx__fs_scan_scalar(uint16_t *out, const uint8_t *blocks, size_t nblocks, size_t npairs,
                        const uint8_t *lut);
size_t qx__fs_find_lt_u16_scalar(const uint16_t *v, size_t n, uint16_t thr);
float qx__fs_decode_l2_scalar(const float *q, const float *base, const float *const *rows,
                              size_t nrows, size_t d);
void qx__fs_dot16t_scalar(float *out, const float *q, const float *blk, size_t d);
void qx__fs_product_base_scalar(float *x, const float *pack, const uint8_t *nib, const uint32_t *sub,
                                size_t M4);
float qx__fs_product_l2_scalar(const float *q, const float *base, const float *const *rows, size_t nrows,
                               size_t d, const float *pack, const uint8_t *nib, const uint32_t *sub,
                               size_t M4, float *ybuf);

#endif
