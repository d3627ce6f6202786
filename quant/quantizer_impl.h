/* quant/quantizer_impl.h — the vtable behind qinx/quantizer.h (internal).
 * A concrete quantizer embeds struct qx_quantizer as its first member and
 * fills `ops`; quantizer.c validates arguments once at the boundary, so the
 * ops may assume sane inputs (non-NULL buffers, n > 0, trained when needed). */
#ifndef QINX_QUANTIZER_IMPL_H
#define QINX_QUANTIZER_IMPL_H

#include "qinx/quantizer.h"
#include "internal.h"

typedef struct qx__quantizer_ops {
    int (*train)(qx_quantizer *q, const float *x, size_t n);
    int (*encode)(const qx_quantizer *q, const float *x, size_t n, uint8_t *codes);
    int (*decode)(const qx_quantizer *q, const uint8_t *codes, size_t n, size_t m, float *out);
    int (*lut)(const qx_quantizer *q, const float *queries, size_t nq, float *lut);
    const float *(*additive_codebooks)(const qx_quantizer *q);
    /* Body of the blob after the common header written by quantizer.c. */
    int (*serialize)(const qx_quantizer *q, uint8_t **buf, size_t *len);
    void (*destroy)(qx_quantizer *q);
    /* Optional: the same with contexts (qinx/quantizer.h), for kinds that
     * can use them; uses_context says whether this object does. */
    int (*train_ctx)(qx_quantizer *q, const float *x, const float *ctx, size_t n);
    int (*encode_ctx)(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                      uint8_t *codes);
    int (*decode_ctx)(const qx_quantizer *q, const uint8_t *codes, const float *ctx, size_t n,
                      size_t m, float *out);
    int (*uses_context)(const qx_quantizer *q);
} qx__quantizer_ops;

struct qx_quantizer {
    const qx__quantizer_ops *ops;
    qx_quant_kind kind;
    size_t d;
    size_t M;
    int trained;
    qx_progress_fn progress;
    void *progress_ctx;
};

/* Per-kind deserializers (blob body, after the common header). */
int qx__rq_deserialize(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out);
int qx__fs_deserialize(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out);
int qx__qinco_deserialize(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out);

/* One row of the table of kinds (quantizer_kinds.c). */
typedef struct qx__quant_kind_def {
    qx_quant_kind kind;
    const char *name; /* as qx_quantizer_kind_name prints it */
    int (*deserialize)(const uint8_t *buf, size_t len, size_t d, size_t M, qx_quantizer **out);
} qx__quant_kind_def;

/* The row of a stored kind number, or NULL for a kind this build lacks. */
const qx__quant_kind_def *qx__quant_kind_find(uint32_t kind);

static inline void qx__progress(const qx_quantizer *q, const char *stage, double f) {
    if (q->progress) q->progress(q->progress_ctx, stage, f);
}

#endif
