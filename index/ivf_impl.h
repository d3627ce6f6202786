/* index/ivf_impl.h — the inside of a qx_ivf (internal to index/). */
#ifndef QINX_IVF_IMPL_H
#define QINX_IVF_IMPL_H

#include "qinx/ivf.h"
#include "internal.h"
#include "idmap.h"
#include "topk.h"

#define QX__NORM_LEVELS 256
#define QX__QBLOCK 32 /* queries whose coarse scores and LUTs are computed together */

typedef struct qx__ivf_list {
    uint8_t *codes; /* size * code_size bytes (fast-scan kind: size * fs_rest) */
    int64_t *ids;   /* size ids */
    size_t size, cap;
    uint8_t *fsb;   /* fast-scan kind: the scanned bytes in 32-vector blocks
                     * (cap / 32 blocks of 32 * fs_pairs bytes; see ivf_fastscan.c) */
} qx__ivf_list;

/* Two-level coarse quantizer of the fast-scan kind (ivf_coarse2.c). */
#define QX__COARSE2_MIN_NLIST 256
#define QX__COARSE2_MAX_GROUPS 1024 /* √QX_MAX_NLIST and more */
typedef struct qx__coarse2 {
    size_t G;            /* groups */
    float *gblk;         /* group means, d × 16 transposed blocks (G padded to 16) */
    float *gnorm;        /* ||mean||² per padded group (+inf: empty or pad) */
    size_t *bstart;      /* G + 1: group g owns blocks bstart[g] .. bstart[g+1] - 1 */
    uint32_t *slot_list; /* 16 per block: the list of each column (UINT32_MAX: pad) */
    float *blk;          /* centroids in d × 16 transposed blocks, group by group */
    size_t nslots;
} qx__coarse2;

struct qx_ivf {
    size_t d, nlist, M;
    size_t code_size;       /* M + has_norm */
    int has_norm;           /* L2 stores the quantized ||x̂||² */
    size_t fs_pairs;        /* fast-scan kind: bytes per vector kept in scan blocks
                             * (the 4-bit bytes, then the norm byte); 0 otherwise */
    size_t fs_rest;         /* fast-scan kind: bytes per vector kept row-major (8-bit steps) */
    size_t fs_half;         /* fast-scan kind: 4-bit bytes per code (M4 / 2) */
    qx_ivf_opts opts;
    qx_quantizer *quant;
    float *centroids;       /* nlist * d, aligned */
    float *centroid_norms;  /* nlist: ||c||² */
    float norm_levels[QX__NORM_LEVELS]; /* decoded ||x̂||² per norm byte, ascending */
    qx__ivf_list *lists;
    qx__coarse2 *coarse2;   /* fast-scan L2 with nlist >= 256, else NULL (derived) */
    qx__idmap ids;          /* id -> (list, offset), unless loc.get is set */
    qx_ivf_locator loc;     /* the caller's id map (qx_ivf_set_locator), or all NULL */
    struct qx_derp_reservoir *reservoir; /* sample of the training vectors (may be NULL) */
    size_t ntotal;
    int trained;
    qx_progress_fn progress;
    void *progress_ctx;
};

/* Per-thread search scratch (ivf_search.c; the fast-scan kind keeps its own
 * in `fs`). */
struct qx_ivf_search_ctx {
    size_t nlist, lut_len, heap_cap, scan_cap, rerank_cap, d, M;
    float *coarse;      /* QBLOCK * nlist */
    float *luts;        /* QBLOCK * (M+1) * 256 */
    float *scan;        /* scores of one list */
    qx__topk probes;    /* nprobe best lists */
    qx__topk heap;      /* shortlist */
    uint8_t *rr_codes;  /* rerank: codes of the shortlist */
    float *rr_vecs;     /* rerank: decoded residuals */
    float *rr_ctx;      /* rerank: their centroids, for a quantizer that uses contexts */
    uint8_t *among;     /* only_ids: QX__AMONG_BATCH gathered codes */
    float *among_s;     /* and their scores */
    size_t among_cs;    /* code size they were sized for */
    qx_ivf_search_ctx **workers; /* per-thread contexts for batches */
    int nworkers;
    void *fs;           /* fast-scan kind: its scratch (ivf_fastscan_search.c) */
};

/* ---- fast-scan kind (ivf_fastscan.c, ivf_fastscan_search.c) ----
 * The norm byte holds two 4-bit steps of a 1-D residual quantizer of
 * ||c + r̂4||² (r̂4: the 4-bit part only): levels 0..15 of norm_levels are
 * the first step, 16..31 the second. */
void qx__ivf_fs_setup(qx_ivf *ivf);
void qx__ivf_fs_norm_fit(float *levels, float *norms, size_t n);
uint8_t qx__ivf_fs_norm_encode(const float *levels, float v);
int qx__ivf_fs_push(qx_ivf *ivf, qx__ivf_list *l, const uint8_t *code, int64_t id);
void qx__ivf_fs_get(const qx_ivf *ivf, const qx__ivf_list *l, size_t i, uint8_t *code);
void qx__ivf_fs_move(const qx_ivf *ivf, qx__ivf_list *l, size_t from, size_t to);
size_t qx__ivf_fs_list_bytes(const qx_ivf *ivf, const qx__ivf_list *l);
/* The whole search of a fast-scan index (called by qx_ivf_search after its
 * argument checks, with ctx fitted). */
struct qx_ivf_search_ctx;
int qx__ivf_fs_search(const qx_ivf *ivf, struct qx_ivf_search_ctx *ctx, const float *queries,
                      size_t nq, size_t k, const qx_search_params *p, int threads, float *dist,
                      int64_t *ids);
void qx__ivf_fs_ctx_free(void *fs);

/* (Re)build ivf->coarse2 from the centroids (a no-op, coarse2 = NULL, where
 * it does not apply); call after the centroids are set. */
int qx__coarse2_build(qx_ivf *ivf);
void qx__coarse2_free(qx__coarse2 *c);
size_t qx__coarse2_auto_groups(const qx__coarse2 *c, size_t nprobe);
/* The nprobe best lists of q among the ngroups best groups into probes;
 * qc[l] = ⟨q, centroid l⟩ for every list scored (others untouched);
 * scratch: room for 2 * (G rounded up to 16) floats. */
void qx__coarse2_probes(const qx_ivf *ivf, const qx__coarse2 *c, const float *q, size_t nprobe,
                        size_t ngroups, qx__topk *probes, float *qc, float *scratch);

/* Quantize ||x̂||² to the nearest of the 256 levels. */
uint8_t qx__norm_encode(const float *levels, float v);
/* Fit the levels to a sample of norms (1-D k-means, sorted output). */
void qx__norm_fit(float *levels, float *norms, size_t n);

/* Encode n vectors already assigned to lists: codes (n * code_size). */
int qx__ivf_encode(const qx_ivf *ivf, const float *x, const uint32_t *list, size_t n,
                   uint8_t *codes);

/* The id -> location map: the caller's when a locator is set, else ours. */
static inline int qx__map_get(const qx_ivf *ivf, int64_t id, uint64_t *loc) {
    return ivf->loc.get ? ivf->loc.get(ivf->loc.ctx, id, loc) : qx__idmap_get(&ivf->ids, id, loc);
}
static inline int qx__map_put(qx_ivf *ivf, int64_t id, uint64_t loc) {
    return ivf->loc.put ? ivf->loc.put(ivf->loc.ctx, id, loc) : qx__idmap_put(&ivf->ids, id, loc);
}
static inline void qx__map_del(qx_ivf *ivf, int64_t id) {
    if (ivf->loc.del) ivf->loc.del(ivf->loc.ctx, id);
    else qx__idmap_del(&ivf->ids, id);
}
/* Room for n ids in our own map (a caller's locator grows by itself). */
static inline int qx__map_reserve(qx_ivf *ivf, size_t n) {
    return ivf->loc.get ? 0 : qx__idmap_reserve(&ivf->ids, n);
}

/* Append one entry to a list (grows geometrically). */
int qx__ivf_list_push(qx__ivf_list *l, size_t code_size, const uint8_t *code, int64_t id);

static inline void qx__ivf_report(const qx_ivf *ivf, const char *stage, double f) {
    if (ivf->progress) ivf->progress(ivf->progress_ctx, stage, f);
}

#endif
