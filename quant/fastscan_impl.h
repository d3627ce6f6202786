/* quant/fastscan_impl.h — the fast-scan quantizer object shared by
 * fastscan.c (object, decode, tables, blob) and fastscan_train.c (training,
 * beam encoding). Internal. */
#ifndef QINX_FASTSCAN_IMPL_H
#define QINX_FASTSCAN_IMPL_H

#include "qinx/fastscan.h"
#include "qinx/kernels.h"
#include "quantizer_impl.h"

#define QX__FS_K4 16

typedef struct qx__fs {
    struct qx_quantizer base; /* first: the vtable's view; base.M = M4/2 + M8 */
    qx_fs_opts opts;
    size_t M4, M8;
    float *cb4;        /* M4 * 16 * d */
    float *norms4;     /* M4 * 16: ||a||² */
    qx_quantizer *rq;  /* the 8-bit part (M8 steps), NULL when M8 = 0 */
    float *additive;   /* M * 256 * d byte-level additive codebooks */
    float *rows4;      /* product shape: d * 16, qx_fs_product_rows; else NULL */
    float *pack4;      /* product shape: 16 * d, qx_fs_product_codewords; else NULL */
} qx__fs;

/* Rebuild norms4 and the additive table from cb4 and the RQ. */
int qx__fs_tables(qx__fs *fs);

int qx__fs_train(qx_quantizer *q, const float *x, size_t n);
int qx__fs_encode(const qx_quantizer *q, const float *x, size_t n, uint8_t *codes);

/* Beam-encode the 4-bit part of n vectors: nib (n * M4 nibbles, one per
 * byte) and, if res is not NULL, the residuals x − Σ a (n * d). */
int qx__fs_encode4(const qx__fs *fs, const float *x, size_t n, int beam, uint8_t *nib, float *res);

int qx__fs_threads(const qx__fs *fs);

#endif
