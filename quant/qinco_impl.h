/* quant/qinco_impl.h — internals of the QINCo-style quantizer (qinx/qinco.h),
 * shared by quant/qinco*.c and tests/test_qinco.c.
 *
 * Units: the model works on vectors scaled by 1/s, where s = 2^scale_exp is
 * the power of two nearest the RMS coordinate of the training data. A power
 * of two makes the scaling exact in floating point, so a model with f = 0
 * reproduces its RQ bit for bit, while the network and Adam see inputs of
 * order 1 whatever the data's units (SIFT coordinates are ~30).
 *
 * Each step m has its own power-of-two factor rho_m (the RMS coordinate of
 * its RQ codebook relative to s): its codebook is stored divided by rho_m and
 * its network's output multiplied by it, c'_m = rho_m (ĉ_k + z), so every
 * step's parameters are of order 1 and one Adam learning rate suits the
 * first step (residuals ~ the data) and the last (residuals 10× smaller).
 *
 * Parameters live in one flat float array (Adam and serialization treat it
 * as a vector): [cb_0 | cb_1 net_1 | … | cb_{M-1} net_{M-1}] where cb_m is
 * K×d (units of s·rho_m) and net_m is  Wc (d × 2d, row i = [on c | on x̂]),
 * bc (d), then per block l: W1_l (h × d), W2_l (d × h). Row-major.
 */
#ifndef QINX_QINCO_IMPL_H
#define QINX_QINCO_IMPL_H

#include "qinx/qinco.h"
#include "quantizer_impl.h"

#define QX__QK QX_KSUB

/* Figures of the never-worse-than-RQ check and of training throughput
 * (qx_qinco_stats documents each), kept with the model. */
typedef struct qx__qinco_check {
    int checked, fallback;
    size_t nq, nbase;
    double mse_rq, mse_qinco, recall_rq, recall_qinco;
    double sgemm_gflops, train_gflops, cores_used;
} qx__qinco_check;

typedef struct qx__qinco {
    struct qx_quantizer base; /* first: the vtable view */
    qx_qinco_opts opts;
    size_t d, M, L, h;
    int scale_exp;    /* s = 2^scale_exp */
    float scale, inv_scale;
    int step_exp[QX_MAX_STEPS]; /* rho_m = 2^step_exp[m] */
    float rho[QX_MAX_STEPS];
    size_t net_size;  /* floats in one step's network */
    size_t nparams;   /* floats in params */
    float *params;    /* aligned */
    int ctx;          /* trained with contexts (x̂_0 = the IVF centroid): encode/decode need them */
    int have_base;    /* base codebooks set (from an RQ) */
    float *rq_cb;     /* M*K*d RQ codebooks (raw) training restarts from, or NULL */
    float *tables;    /* per-step inference tables (see qx__qinco_tables) */
    float *additive;  /* M*K*d additive codebooks, raw units (for LUTs) */
    qx_quantizer *rq_fb; /* after a fallback: the RQ that encodes, decodes, answers LUTs */
    qx__qinco_check ck;  /* the fallback check and throughput figures (stored in the blob) */
    double *st_gflops;   /* [epochs + 1], index 0 unused */
    /* stats of the last training run */
    double *st_valid, *st_loss, *st_sec;
    size_t st_epochs, st_best, st_ntrain, st_nvalid, st_nmon;
    int st_budget;
    double st_total;
} qx__qinco;

/* --- parameter layout (quant/qinco_net.c) ------------------------------- */
size_t qx__qinco_net_size(size_t d, size_t L, size_t h);
size_t qx__qinco_param_count(size_t d, size_t M, size_t L, size_t h);
size_t qx__qinco_off_cb(const qx__qinco *q, size_t m);
size_t qx__qinco_off_net(const qx__qinco *q, size_t m); /* m >= 1 */

typedef struct qx__qinco_net {
    const float *Wc, *bc;
    const float *W1[QX_QINCO_MAX_L], *W2[QX_QINCO_MAX_L];
} qx__qinco_net;
void qx__qinco_net_view(const qx__qinco *q, const float *params, size_t m, qx__qinco_net *net);

/* --- inference tables and the batched encoder/decoder (qinco_encode.c) --- */
/* Floats per step in the tables: Pc (K×d) = cb·Wccᵀ + bc, Hc (K×h) = Pc·W1_0ᵀ,
 * cbn (K) = ||cb_k||²; so the concat layer and the first W1 cost nothing per
 * candidate at encoding time. */
size_t qx__qinco_table_stride(const qx__qinco *q);
int qx__qinco_tables_compute(const qx__qinco *q, const float *params, float *tables);

/* Encode n raw vectors with the model (params, tables), beam width `beam`,
 * `A` candidates per beam entry, `threads` OpenMP threads. codes: n*M.
 * ctx (n × d raw, or NULL = zeros): the context each vector's
 * reconstruction starts from, x̂_0 = ctx_i (an IVF list's centroid: x is
 * then the residual, and the networks see where in space it lies). */
int qx__qinco_encode_with(const qx__qinco *q, const float *params, const float *tables,
                          const float *x, const float *ctx, size_t n, int beam, int A,
                          int threads, uint8_t *codes);
/* The same with scratch kept in *ws between calls (allocated or resized as
 * needed; start with NULL, free with qx__qinco_encws_free). One *ws per
 * caller thread; encoding and decoding need one each. */
typedef struct qx__qinco_encws qx__qinco_encws;
int qx__qinco_encode_ws(const qx__qinco *q, const float *params, const float *tables,
                        const float *x, const float *ctx, size_t n, int beam, int A, int threads,
                        uint8_t *codes, qx__qinco_encws **ws);
int qx__qinco_decode_ws(const qx__qinco *q, const float *params, const float *tables,
                        const uint8_t *codes, const float *ctx, size_t n, size_t m, int threads,
                        float *out, qx__qinco_encws **ws);
void qx__qinco_encws_free(qx__qinco_encws *ws);
/* The A smallest of n scores (n a multiple of 16, at most 256; A <= n) in
 * ascending order, ties in index order, into out; cs, ci: n of scratch. */
void qx__qinco_select_smallest(const float *v, size_t n, size_t A, int *out, float *cs, int *ci);
/* Exact decode of the first m steps of n codes (stride M) into raw vectors
 * (x̂_m − ctx: what the code adds to its context; ctx as for encoding). */
int qx__qinco_decode_with(const qx__qinco *q, const float *params, const float *tables,
                          const uint8_t *codes, const float *ctx, size_t n, size_t m, int threads,
                          float *out);

/* --- training pass (qinco_net.c) --------------------------------------- */
/* Scratch for one forward/backward over nb rows. */
typedef struct qx__qinco_work {
    size_t cap;                    /* rows */
    float *U, *Z, *H, *G, *dH, *dU, *xh, *r, *cp;
} qx__qinco_work;
int qx__qinco_work_alloc(const qx__qinco *q, size_t rows, qx__qinco_work *w);
void qx__qinco_work_free(qx__qinco_work *w);

/* Loss and gradient for a batch with fixed codes. xs: nb scaled vectors;
 * x0: their scaled contexts x̂_0 (NULL = zeros; xs then holds x + x0).
 * loss = (1/nb) Σ_m w_m ||x_i − x̂_{i,m}||² in scaled units, w_m =
 * step_weight for the intermediate steps and 1 for the last, differentiated
 * through the whole recursion (x̂_{m-1} is an input of f_m). grad (nparams
 * floats) is overwritten. step_loss (M) may be NULL; it gets the unweighted
 * per-step errors. If resid is not NULL it receives the residuals
 * r_im = x_i − x̂_{i,m-1} (nb × M × d) for dead-codeword re-seeding. */
int qx__qinco_loss_grad(const qx__qinco *q, const float *params, const float *xs,
                        const float *x0, const uint8_t *codes, size_t nb, float step_weight, qx__qinco_work *w,
                        float *grad, double *loss, double *step_loss, float *resid);

/* The same pass over T row shards in parallel (per-shard work and gradient,
 * summed in shard order): deterministic for a given T. rows: the largest
 * batch. T is capped at QX_QINCO_MAX_SHARDS. */
#define QX_QINCO_MAX_SHARDS 64
typedef struct qx__qinco_par {
    int T;
    qx__qinco_work *w;
    float **g;
} qx__qinco_par;
int qx__qinco_par_alloc(const qx__qinco *q, size_t rows, int T, qx__qinco_par *p);
void qx__qinco_par_free(qx__qinco_par *p);
int qx__qinco_loss_grad_par(const qx__qinco *q, const float *params, const float *xs,
                            const float *x0, const uint8_t *codes, size_t nb, float step_weight, qx__qinco_par *p,
                            float *grad, double *loss, double *step_loss, float *resid);

/* --- training loop (qinco_train.c), additive fit (qinco_lsq.c) ---------- */
int qx__qinco_train(qx_quantizer *base, const float *x, const float *ctx, size_t n);
/* Fit M*K*d additive codebooks (in/out: start from the given values) so that
 * Σ_m a[m, code_m] ≈ target (n × d) in least squares, ridge lambda. */
int qx__qinco_fit_additive(const uint8_t *codes, size_t n, size_t M, const float *target,
                           size_t d, int threads, float *a);

/* --- held-out check and throughput (qinco_check.c) --------------------- */
/* Recall@1 of nq raw query vectors against nb raw base vectors whose
 * reconstructions are rec (nb × d): the fraction of queries whose nearest
 * reconstruction is the reconstruction of their exact nearest base vector. */
int qx__qinco_recall1(const float *queries, size_t nq, const float *base, const float *rec,
                      size_t nb, size_t d, double *recall);
/* This machine's sgemm rate (GFLOP/s): a 1024^3 product, best of 5, with
 * OpenBLAS's threads as set. */
double qx__qinco_sgemm_rate(void);
/* Matrix FLOPs of encoding one vector (beam B, A candidates), of decoding
 * one, and of one training row's forward + backward. */
double qx__qinco_flops_encode(const qx__qinco *q, int B, int A);
double qx__qinco_flops_decode(const qx__qinco *q);
double qx__qinco_flops_train_row(const qx__qinco *q);
/* Process CPU seconds (all threads). */
double qx__cpu_seconds(void);

/* --- one level of threads (qinco_blas.c) ------------------------------ */
/* With threads > 1, OpenBLAS runs single-threaded until the matching end
 * (nestable, thread-safe; process-wide). Returns the token for _end. */
int qx__qinco_blas_single_begin(int threads);
void qx__qinco_blas_single_end(int token);

/* --- object plumbing (qinco.c, qinco_io.c) ----------------------------- */
int qx__qinco_alloc(qx__qinco **out, size_t d, const qx_qinco_opts *opts);
int qx__qinco_finish(qx__qinco *q); /* (re)compute tables once params are final */
/* Base codebooks (raw units, M*K*d) → scale, params with f = 0, additive
 * codebooks = the base ones; keeps a copy for later re-training. */
int qx__qinco_set_base(qx__qinco *q, const float *cb_raw);
int qx__qinco_serialize(const qx_quantizer *base, uint8_t **buf, size_t *len);
int qx__qinco_check_opts(const qx_qinco_opts *o, size_t d);
int qx__qinco_threads(const qx__qinco *q);

#endif
