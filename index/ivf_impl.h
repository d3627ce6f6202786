/* index/ivf_impl.h — the inside of a qx_ivf (internal to index/). */
#ifndef QINX_IVF_IMPL_H
#define QINX_IVF_IMPL_H

#include "qinx/ivf.h"
#include "internal.h"
#include "idmap.h"

#define QX__NORM_LEVELS 256

typedef struct qx__ivf_list {
    uint8_t *codes; /* size * code_size bytes */
    int64_t *ids;   /* size ids */
    size_t size, cap;
} qx__ivf_list;

struct qx_ivf {
    size_t d, nlist, M;
    size_t code_size;       /* M + has_norm */
    int has_norm;           /* L2 stores the quantized ||x̂||² */
    qx_ivf_opts opts;
    qx_quantizer *quant;
    float *centroids;       /* nlist * d, aligned */
    float *centroid_norms;  /* nlist: ||c||² */
    float norm_levels[QX__NORM_LEVELS]; /* decoded ||x̂||² per norm byte, ascending */
    qx__ivf_list *lists;
    qx__idmap ids;          /* id -> (list, offset) */
    struct qx_derp_reservoir *reservoir; /* sample of the training vectors (may be NULL) */
    size_t ntotal;
    int trained;
    qx_progress_fn progress;
    void *progress_ctx;
};

/* Quantize ||x̂||² to the nearest of the 256 levels. */
uint8_t qx__norm_encode(const float *levels, float v);
/* Fit the levels to a sample of norms (1-D k-means, sorted output). */
void qx__norm_fit(float *levels, float *norms, size_t n);

/* Encode n vectors already assigned to lists: codes (n * code_size). */
int qx__ivf_encode(const qx_ivf *ivf, const float *x, const uint32_t *list, size_t n,
                   uint8_t *codes);

/* Append one entry to a list (grows geometrically). */
int qx__ivf_list_push(qx__ivf_list *l, size_t code_size, const uint8_t *code, int64_t id);

static inline void qx__ivf_report(const qx_ivf *ivf, const char *stage, double f) {
    if (ivf->progress) ivf->progress(ivf->progress_ctx, stage, f);
}

#endif
