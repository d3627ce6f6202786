/* qinx/quantizer.h — the common interface of every qinx quantizer.
 *
 * A quantizer turns a d-dimensional float vector into M bytes, one codeword
 * index (K = 256) per step, and back. Steps are ordered: the first m bytes of
 * a code are a valid lower-rate code (multi-rate decoding).
 * Search uses additive look-up tables: for a query q, lut[m*256 + k] = <q, a_mk>
 * where a_mk are additive codebooks (for RQ the codebooks themselves; for a
 * QINCo-style quantizer, codebooks fitted to its codes by least squares), so
 * <q, x̂> ≈ Σ_m lut[m*256 + code_m].
 *
 * Concurrency: calls taking a const qx_quantizer* may run concurrently with
 * each other; train/free need exclusive access.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_QUANTIZER_H
#define QINX_QUANTIZER_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

QX_BEGIN_DECLS

#define QX_KSUB 256     /* codewords per step (8-bit codes) */
#define QX_MAX_STEPS 64 /* M at most */

/* Kinds are stored by number in index files: numbers are never reused. The
 * table of kinds is quant/quantizer_kinds.c (the fast-scan codes come next). */
typedef enum qx_quant_kind {
    QX_QUANT_RQ = 1,
    QX_QUANT_QINCO = 2,
    QX_QUANT_FASTSCAN = 3 /* 4-bit fast-scan steps + 8-bit refinement (qinx/fastscan.h) */
} qx_quant_kind;

typedef struct qx_quantizer qx_quantizer;

/* Progress report for long steps: stage name, fraction done in [0,1].
 * Called from the thread that called train/encode. */
typedef void (*qx_progress_fn)(void *ctx, const char *stage, double fraction);

qx_quant_kind qx_quantizer_kind(const qx_quantizer *q);
const char *qx_quantizer_kind_name(qx_quant_kind kind); /* "rq", "qinco" */
size_t qx_quantizer_dim(const qx_quantizer *q);
size_t qx_quantizer_steps(const qx_quantizer *q); /* M: code bytes per vector */
int qx_quantizer_is_trained(const qx_quantizer *q);

/* Train on n vectors x (n*d floats). */
int qx_quantizer_train(qx_quantizer *q, const float *x, size_t n);

/* Encode n vectors into codes (n*M bytes, caller-allocated). */
int qx_quantizer_encode(const qx_quantizer *q, const float *x, size_t n, uint8_t *codes);

/* Decode n codes (row stride M bytes) using their first m steps
 * (0 < m <= M; m = 0 means all M) into out (n*d floats). */
int qx_quantizer_decode(const qx_quantizer *q, const uint8_t *codes, size_t n,
                        size_t m, float *out);

/* Additive look-up tables for nq queries: lut is nq * M * 256 floats,
 * lut[(i*M + m)*256 + k] = <q_i, a_mk>. */
int qx_quantizer_lut(const qx_quantizer *q, const float *queries, size_t nq, float *lut);

/* Additive codebooks a (M * 256 * d floats) behind qx_quantizer_lut. */
const float *qx_quantizer_additive_codebooks(const qx_quantizer *q);

/* Serialize to a byte blob (*buf freed with qx_free) and back. The blob
 * carries its own kind tag and version; deserialize validates every field. */
int qx_quantizer_serialize(const qx_quantizer *q, uint8_t **buf, size_t *len);
int qx_quantizer_deserialize(const uint8_t *buf, size_t len, qx_quantizer **out);

/* Install a progress callback (NULL to remove). */
void qx_quantizer_set_progress(qx_quantizer *q, qx_progress_fn fn, void *ctx);

void qx_quantizer_free(qx_quantizer *q); /* NULL-safe */

/* Contexts. A quantizer may start each vector's reconstruction from a
 * context instead of zero and condition its codebooks on it: in an IVF the
 * context is the centroid of the vector's list and x its residual (QINCo
 * with qx_qinco_opts.context). ctx: n*d floats, one row per vector, or NULL
 * (zeros). Decoding returns what the code adds to the context, like the
 * plain calls. Kinds that use no context (rq, fastscan, and a QINCo trained
 * without one) ignore ctx; qx_quantizer_uses_context says which it is. */
int qx_quantizer_uses_context(const qx_quantizer *q);
int qx_quantizer_train_ctx(qx_quantizer *q, const float *x, const float *ctx, size_t n);
int qx_quantizer_encode_ctx(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                            uint8_t *codes);
int qx_quantizer_decode_ctx(const qx_quantizer *q, const uint8_t *codes, const float *ctx,
                            size_t n, size_t m, float *out);
int qx_quantizer_mse_ctx(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                         size_t m, double *mse);

/* Mean squared reconstruction error ||x - decode(encode(x))||^2 averaged
 * over n vectors (summed over dimensions), using the first m steps (0 = M). */
int qx_quantizer_mse(const qx_quantizer *q, const float *x, size_t n, size_t m, double *mse);

QX_END_DECLS
#endif
