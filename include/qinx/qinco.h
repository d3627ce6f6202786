/* qinx/qinco.h — QINCo-style quantizer: residual quantization with implicit
 * neural codebooks (Huijben et al., ICML 2024, arXiv 2401.14732; encoding
 * with candidate pre-selection and beam search after QINCo2, Vallaeys et al.,
 * arXiv 2501.03078).
 *
 * Step m (m >= 1) picks one of 256 codewords, each adapted to the
 * reconstruction so far:  c'_k = c_k + f_m([c_k ; x̂_{m-1}]),  where f_m is a
 * concat layer (2d -> d, with bias) followed by L residual blocks
 * z += W2 · relu(W1 · z) of hidden size h. Step 0 has no context (x̂ = 0), so
 * it is a plain codebook. The base codebooks c come from a trained qinx RQ and
 * the network starts at f = 0, so an untrained QINCo encodes exactly like its
 * RQ. Codes are M bytes, like RQ's; the first m bytes are a valid lower-rate
 * code.
 *
 * The object is a qx_quantizer: train/encode/decode/lut/serialize go through
 * qinx/quantizer.h. Look-up tables use additive codebooks fitted by least
 * squares to the exact decodings of the training set (approximate distances);
 * qx_quantizer_decode is the exact neural decoder (for re-ranking).
 *
 * Concurrency: as for every quantizer — encode/decode/lut on a const trained
 * object may run concurrently; train/free need exclusive access. Encoding and
 * training use `threads` OpenMP threads (0 = qx__num_threads, i.e. QX_THREADS
 * or all cores) and call OpenBLAS; with more than one thread they set
 * OpenBLAS to one thread for their duration (its setting is process-wide, so
 * other BLAS work of the process runs single-threaded meanwhile) and restore
 * it after: one level of threads, never OpenMP workers calling threaded sgemm.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_QINCO_H
#define QINX_QINCO_H

#include "qinx/defs.h"

#include "qinx/quantizer.h"

QX_BEGIN_DECLS

#define QX_QINCO_MAX_L 16      /* residual blocks per step at most */
#define QX_QINCO_MAX_H 4096    /* hidden size at most */
#define QX_QINCO_MAX_BEAM 64   /* beam width at most */
#define QX_QINCO_MAX_EPOCHS 100000

typedef struct qx_qinco_opts {
    size_t M;             /* steps = bytes per code, 1..QX_MAX_STEPS (default 8) */
    int L;                /* residual blocks per step, 0..16 (default 1; 0 = concat layer only) */
    int h;                /* hidden size of the blocks, 1..4096 (default 128) */
    int A;                /* candidates per beam entry run through the network, 1..256
                             (default 8); pre-selected by distance to the base codewords */
    int beam;             /* beam width for encoding, 1..64 (default 5, the RQ's) */
    int train_beam;       /* beam width used to re-assign codes while training, 0..64
                             (default 0 = the same as beam: the RQ's codebooks are tuned to
                             its wide beam, and a network trained on narrower-beam codes
                             drifts away from them) */
    int reencode;         /* epochs between re-encodings of the whole training set, 1..1000
                             (default 1 = every batch is re-encoded before its step; k > 1:
                             the codes of all training vectors are recomputed every k
                             epochs and the batches in between regress on them, which
                             makes an epoch ~7x cheaper on siftsmall: encoding dominates) */
    int epochs;           /* passes over the training set, 0..100000 (default 30;
                             0 = keep f = 0, i.e. the RQ, and only fit the LUT codebooks) */
    int batch;            /* vectors per Adam step, 16..65536 (default 256) */
    float step_share;     /* total weight of the intermediate steps' errors in the loss,
                             relative to the last step's, 0..100 (default 1.7): each of the
                             M-1 intermediate steps weighs step_share x E_last / sum E_m,
                             the errors E of the starting RQ on the first batch (0.1 each
                             on siftsmall 8 B, 0.02 at 16 B); 0 = last step only */
    float lr;             /* peak Adam learning rate (default 1e-3), cosine decay to lr/100 */
    double train_minutes; /* wall-clock budget for the whole train call, minutes
                             (default 0 = none); when it runs out training stops
                             after the current batch and keeps the best model */
    uint64_t seed;        /* default 1234: split, shuffles, init, re-seeding */
    int threads;          /* 0 = all cores (QX_THREADS) */
    float valid_fraction; /* held-out share of the training vectors for the
                             validation MSE that picks the best epoch, 0..0.5
                             (default 0.1; at most 5000 vectors are held out;
                             0 = no hold-out: the best epoch is picked on an
                             eighth of the training vectors, 1000 to 5000,
                             in-sample). After
                             qx_qinco_from_rq with an RQ trained on these same
                             vectors, use 0: a hold-out the RQ has seen flatters
                             it, and the RQ (epoch 0) then wins by default */
    int rq_beam;          /* beam of the RQ that initialises the codebooks (default 5) */
    int verbose;          /* 1 = one line per epoch on stderr (default 0) */
    int rq_refine_min;    /* refine_min_per_codeword of the initial RQ (qinx/rq.h), -1 = the
                             RQ's default (8); 0 = always refine, as `qinx build` does when
                             the training set is the whole base. Training-only */
    int fallback;         /* 1 (default) = after training, compare the kept model with the
                             starting RQ on the hold-out (MSE, and recall@1 of held-out
                             vectors against the training vectors): unless it is better on
                             both, the quantizer becomes an RQ (retrained on every vector
                             given, with the initial RQ's options) and encodes, decodes and
                             answers look-up tables exactly as that RQ; stats.fallback says
                             so. Needs a hold-out (valid_fraction > 0). 0 = keep the model */
    int context;          /* 1 = when trained with contexts (qx_quantizer_train_ctx: in an
                             IVF, each vector's list centroid), start every reconstruction
                             from its context, x̂_0 = c, so that the networks see where in
                             space the residual lies (QINCo's IVF variant); encoding and
                             decoding then take the same contexts. Default 1; a model
                             trained without contexts (qx_quantizer_train) uses none */
} qx_qinco_opts;

void qx_qinco_opts_init(qx_qinco_opts *opts);

/* A new untrained QINCo-style quantizer for dimension d (1..QX_MAX_DIM).
 * Errors: QX_EINVAL naming the bad option (M, L, h, A, beam, …). */
int qx_qinco_new(qx_quantizer **out, size_t d, const qx_qinco_opts *opts);

/* A QINCo-style quantizer whose base codebooks are those of the trained RQ
 * `rq` (same d and M as opts->M, else QX_EDIM / QX_EINVAL) and whose network
 * is f = 0: it is trained (encodes exactly like the RQ with the same beam).
 * Training it later (qx_quantizer_train) starts from these codebooks instead
 * of training a new RQ. */
int qx_qinco_from_rq(qx_quantizer **out, const qx_quantizer *rq, const qx_qinco_opts *opts);

/* Statistics of the last training run, valid while q lives (arrays owned by q). */
typedef struct qx_qinco_stats {
    size_t epochs;             /* epochs completed (the last may be partial under a budget) */
    const double *valid_mse;   /* [epochs + 1]: validation MSE before training (RQ init) and
                                  after each epoch (raw units, summed over dimensions), of
                                  the n_monitor vectors: the hold-out, or with n_valid = 0
                                  training vectors */
    const double *train_loss;  /* [epochs]: mean training loss (sum of per-step MSEs) */
    const double *seconds;     /* [epochs]: wall-clock seconds at the end of each epoch */
    size_t best_epoch;         /* 0 = the RQ initialisation was never beaten */
    size_t n_train, n_valid;   /* vectors used for the network / held out */
    size_t n_monitor;          /* vectors whose MSE is valid_mse (n_valid, or training ones);
                                  0 after loading (not stored in the blob) */
    int budget_hit;            /* 1 if train_minutes stopped training */
    double total_seconds;      /* whole train call (RQ, network, LUT fit) */
    /* The never-worse-than-RQ check (opts.fallback), on the hold-out: */
    int checked;               /* 1 if the check ran (a hold-out existed) */
    int fallback;              /* 1 if the model is the RQ because the network did not beat it */
    size_t check_nq, check_nbase; /* held-out queries; training vectors searched */
    double check_mse_rq, check_mse_qinco;       /* held-out MSE, raw units */
    double check_recall_rq, check_recall_qinco; /* held-out recall@1 against the training
                                                   vectors (decoded), true neighbour by
                                                   exact distance */
    /* Throughput of the network training (epochs only, not the RQ or LUT fit): */
    double sgemm_gflops;       /* this machine's sgemm rate, measured at the start of the run
                                  (1024^3 sgemm, best of 3, the training's thread count) */
    double train_gflops;       /* achieved over all epochs: counted matrix FLOPs (encode,
                                  forward, backward, monitoring) / wall seconds */
    double cores_used;         /* process CPU seconds / wall seconds over the epochs */
    const double *epoch_gflops; /* [epochs]: the same per epoch (NULL after loading) */
} qx_qinco_stats;

/* Fills *st. QX_EINVAL if q is not a QINCo quantizer. Before any training all
 * counts are 0 and arrays NULL. */
int qx_qinco_get_stats(const qx_quantizer *q, qx_qinco_stats *st);

/* Options the quantizer was built (or loaded) with. */
int qx_qinco_get_opts(const qx_quantizer *q, qx_qinco_opts *opts);

/* Change the encoding-time search (beam width, candidates per beam entry)
 * of an existing quantizer; codes of other settings stay decodable. */
int qx_qinco_set_search(qx_quantizer *q, int beam, int A);

QX_END_DECLS
#endif
