/* quant/quantizer.c — argument checks and dispatch for the quantizer vtable,
 * the common blob header, and the MSE helper shared by every kind. Kinds are
 * found in the table of quantizer_kinds.c.
 * Blob layout: "QXQZ" magic, u32 version, u32 kind, u32 d, u32 M, then the
 * kind's own body (little-endian throughout; qinx targets x86-64/aarch64). */
#include <string.h>

#include "quantizer_impl.h"
#include "qinx/vecfile.h"

#define QX__BLOB_MAGIC "QXQZ"
#define QX__BLOB_VERSION 1u
#define QX__BLOB_HEADER 20u

qx_quant_kind qx_quantizer_kind(const qx_quantizer *q) { return q->kind; }
size_t qx_quantizer_dim(const qx_quantizer *q) { return q->d; }
size_t qx_quantizer_steps(const qx_quantizer *q) { return q->M; }
int qx_quantizer_is_trained(const qx_quantizer *q) { return q->trained; }

const char *qx_quantizer_kind_name(qx_quant_kind kind) {
    const qx__quant_kind_def *k = qx__quant_kind_find((uint32_t)kind);
    return k ? k->name : "unknown";
}

void qx_quantizer_set_progress(qx_quantizer *q, qx_progress_fn fn, void *ctx) {
    q->progress = fn;
    q->progress_ctx = ctx;
}

static int check_vectors(const qx_quantizer *q, const float *x, size_t n, const char *what) {
    size_t total;
    if (x == NULL && n > 0) return qx__fail(QX_EINVAL, "%s: NULL vectors", what);
    if (!qx__mul(n, q->d, &total)) return qx__fail(QX_ENOMEM, "%s: n*d overflows", what);
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "%s: vector %zu has a NaN or Inf at dimension %zu", what,
                        (size_t)bad / q->d, (size_t)bad % q->d);
    return 0;
}

int qx_quantizer_uses_context(const qx_quantizer *q) {
    return q && q->trained && q->ops->uses_context && q->ops->uses_context(q);
}

int qx_quantizer_train_ctx(qx_quantizer *q, const float *x, const float *ctx, size_t n) {
    if (!q) return qx__fail(QX_EINVAL, "train: NULL quantizer");
    if (n < QX_KSUB)
        return qx__fail(QX_EINVAL, "train: %zu training vectors, need at least %d", n, QX_KSUB);
    int rc = check_vectors(q, x, n, "train");
    if (rc == 0 && ctx) rc = check_vectors(q, ctx, n, "train (contexts)");
    if (rc) return rc;
    rc = ctx && q->ops->train_ctx ? q->ops->train_ctx(q, x, ctx, n) : q->ops->train(q, x, n);
    if (rc == 0) q->trained = 1;
    return rc;
}

int qx_quantizer_train(qx_quantizer *q, const float *x, size_t n) {
    return qx_quantizer_train_ctx(q, x, NULL, n);
}

int qx_quantizer_encode_ctx(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                            uint8_t *codes) {
    if (!q || (!codes && n)) return qx__fail(QX_EINVAL, "encode: NULL argument");
    if (!q->trained) return qx__fail(QX_ESTATE, "encode: quantizer is not trained");
    if (n == 0) return 0;
    int rc = check_vectors(q, x, n, "encode");
    if (rc == 0 && ctx) rc = check_vectors(q, ctx, n, "encode (contexts)");
    if (rc) return rc;
    return ctx && q->ops->encode_ctx ? q->ops->encode_ctx(q, x, ctx, n, codes)
                                     : q->ops->encode(q, x, n, codes);
}

int qx_quantizer_encode(const qx_quantizer *q, const float *x, size_t n, uint8_t *codes) {
    return qx_quantizer_encode_ctx(q, x, NULL, n, codes);
}

int qx_quantizer_decode_ctx(const qx_quantizer *q, const uint8_t *codes, const float *ctx,
                            size_t n, size_t m, float *out) {
    if (!q || ((!codes || !out) && n)) return qx__fail(QX_EINVAL, "decode: NULL argument");
    if (!q->trained) return qx__fail(QX_ESTATE, "decode: quantizer is not trained");
    if (m == 0) m = q->M;
    if (m > q->M) return qx__fail(QX_EINVAL, "decode: %zu steps asked, code has %zu", m, q->M);
    if (n == 0) return 0;
    return ctx && q->ops->decode_ctx ? q->ops->decode_ctx(q, codes, ctx, n, m, out)
                                     : q->ops->decode(q, codes, n, m, out);
}

int qx_quantizer_decode(const qx_quantizer *q, const uint8_t *codes, size_t n, size_t m,
                        float *out) {
    return qx_quantizer_decode_ctx(q, codes, NULL, n, m, out);
}

int qx_quantizer_lut(const qx_quantizer *q, const float *queries, size_t nq, float *lut) {
    if (!q || ((!queries || !lut) && nq)) return qx__fail(QX_EINVAL, "lut: NULL argument");
    if (!q->trained) return qx__fail(QX_ESTATE, "lut: quantizer is not trained");
    return nq ? q->ops->lut(q, queries, nq, lut) : 0;
}

const float *qx_quantizer_additive_codebooks(const qx_quantizer *q) {
    return q && q->trained ? q->ops->additive_codebooks(q) : NULL;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

int qx_quantizer_serialize(const qx_quantizer *q, uint8_t **buf, size_t *len) {
    if (!q || !buf || !len) return qx__fail(QX_EINVAL, "serialize: NULL argument");
    if (!q->trained) return qx__fail(QX_ESTATE, "serialize: quantizer is not trained");
    uint8_t *body = NULL;
    size_t body_len = 0, total;
    int rc = q->ops->serialize(q, &body, &body_len);
    if (rc) return rc;
    if (!qx__add(body_len, QX__BLOB_HEADER, &total) || !(*buf = qx__malloc(total))) {
        qx__free(body);
        return qx__fail(QX_ENOMEM, "serialize: %zu bytes", body_len);
    }
    memcpy(*buf, QX__BLOB_MAGIC, 4);
    put_u32(*buf + 4, QX__BLOB_VERSION);
    put_u32(*buf + 8, (uint32_t)q->kind);
    put_u32(*buf + 12, (uint32_t)q->d);
    put_u32(*buf + 16, (uint32_t)q->M);
    memcpy(*buf + QX__BLOB_HEADER, body, body_len);
    qx__free(body);
    *len = total;
    return 0;
}

int qx_quantizer_deserialize(const uint8_t *buf, size_t len, qx_quantizer **out) {
    if (!buf || !out) return qx__fail(QX_EINVAL, "deserialize: NULL argument");
    if (len < QX__BLOB_HEADER || memcmp(buf, QX__BLOB_MAGIC, 4) != 0)
        return qx__fail(QX_EFORMAT, "quantizer blob: bad magic or too short (%zu bytes)", len);
    uint32_t version = get_u32(buf + 4), kind = get_u32(buf + 8);
    uint32_t d = get_u32(buf + 12), M = get_u32(buf + 16);
    if (version != QX__BLOB_VERSION)
        return qx__fail(QX_EFORMAT, "quantizer blob: version %u, this build reads %u", version,
                        QX__BLOB_VERSION);
    if (d == 0 || d > QX_MAX_DIM || M == 0 || M > QX_MAX_STEPS)
        return qx__fail(QX_EFORMAT, "quantizer blob: d=%u M=%u out of range", d, M);
    const uint8_t *body = buf + QX__BLOB_HEADER;
    size_t body_len = len - QX__BLOB_HEADER;
    const qx__quant_kind_def *k = qx__quant_kind_find(kind);
    if (!k) return qx__fail(QX_EFORMAT, "quantizer blob: unknown kind %u", kind);
    int rc = k->deserialize(body, body_len, d, M, out);
    if (rc == 0) (*out)->trained = 1;
    return rc;
}

void qx_quantizer_free(qx_quantizer *q) {
    if (q) q->ops->destroy(q);
}

int qx_quantizer_mse(const qx_quantizer *q, const float *x, size_t n, size_t m, double *mse) {
    return qx_quantizer_mse_ctx(q, x, NULL, n, m, mse);
}

int qx_quantizer_mse_ctx(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                         size_t m, double *mse) {
    enum { CHUNK = 4096 };
    if (!q || !mse || (!x && n)) return qx__fail(QX_EINVAL, "mse: NULL argument");
    if (n == 0) return qx__fail(QX_EINVAL, "mse: no vectors");
    size_t d = q->d, M = q->M;
    uint8_t *codes = qx__malloc(CHUNK * M);
    float *rec = qx__aligned_alloc(sizeof(float) * CHUNK * d);
    int rc = 0;
    double sum = 0;
    if (!codes || !rec) rc = qx__fail(QX_ENOMEM, "mse: scratch");
    for (size_t i = 0; rc == 0 && i < n; i += CHUNK) {
        size_t b = n - i < CHUNK ? n - i : CHUNK;
        const float *c = ctx ? ctx + i * d : NULL;
        rc = qx_quantizer_encode_ctx(q, x + i * d, c, b, codes);
        if (rc == 0) rc = qx_quantizer_decode_ctx(q, codes, c, b, m, rec);
        for (size_t j = 0; rc == 0 && j < b * d; j++) {
            double e = (double)x[i * d + j] - rec[j];
            sum += e * e;
        }
    }
    qx__free(codes);
    qx__aligned_free(rec);
    if (rc == 0) *mse = sum / (double)n;
    return rc;
}
