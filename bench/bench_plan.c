/* bench/bench_plan.c — the time plan of a `qinx bench` run: a cost model of
 * every (method, bytes) job, calibrated while the run goes, that decides
 * before each job whether it runs on the whole training set, on an evenly
 * spaced subsample of it, or not at all, so that the run ends within
 * --time-budget.
 *
 * Decisions:
 * 1. Cost model. Every job costs train + fixed seconds. train is
 *    proportional to the training vectors (k-means, OPQ, RQ and LSQ
 *    training are all linear passes over them, repeated a fixed number of
 *    times; FAISS caps PQ/OPQ at 65,536 points), fixed is encoding the base,
 *    the exhaustive evaluation (flat search over the decodings) or the IVF
 *    sweep. The constants are seconds measured on this project's 2-core
 *    EPYC with `nice -n 19` at load ≈ 4 (GloVe subsets: 2,000 training
 *    vectors, 5,000 base, 8/16/32 bytes; GloVe-100 runs of bench-out/ at
 *    10,000 and 50,000 training vectors for the scaling), per 1,000 vectors
 *    and d = 100, scaled linearly in d. They are only used relative to each
 *    other: see 2.
 * 2. Calibration. speed = Σ actual / Σ predicted over the jobs of the same
 *    library (qinx or FAISS) done so far (all jobs before the first of that
 *    library, 1 before any), applied to every prediction. The first jobs
 *    (qinx-rq, faiss-pq) always run in full, so by the time a decision is
 *    needed the model is in this machine's seconds under this load.
 * 3. Which jobs may be cut: the FAISS methods whose training dominates and
 *    can be subsampled without changing what is measured (faiss-opq,
 *    faiss-rq, faiss-lsq, faiss-ivfpq, faiss-ivfrq) — never below 10,000
 *    vectors (39 × 256, FAISS's own k-means minimum; LSQ trained on fewer
 *    overfits: MSE above ‖x‖² on GloVe at 2,000). qinx's own methods, the
 *    subject of the benchmark, always train on the full set. QINCo trains
 *    for a wall-clock budget: its share of QINCO_SHARE of the budget, cut
 *    down to QINCO_MIN_S (or half its share) when needed.
 * 4. Importance (job_level): 0 qinx RQ and qinx IVF-RQ; 1 the baselines
 *    FAISS PQ, FAISS RQ up to 16 bytes, FAISS IVF-PQ; 2 QINCo; 3 FAISS OPQ,
 *    FAISS IVF-RQ, FAISS RQ above 16 bytes; 4 FAISS LSQ. Jobs run in this
 *    order. Before each job the plan keeps the jobs still to run level by
 *    level, most important first: a level joins at its minimum (FAISS cut to
 *    its floor, QINCo at its minimum) next to the more important levels at
 *    their full cost, leaving out its costliest jobs until that fits, then
 *    taking back what still fits; if the current job is left out, it is
 *    skipped. Levels 3 and 4 are one group (LSQ may run with OPQ cut). So a
 *    less important job never costs a more important one time or training
 *    vectors (the first rule, which skipped any job over 35 % of the budget,
 *    made Fashion-MNIST skip qinx RQ 32 B while FAISS RQ 32 B ran; the second
 *    cut FAISS RQ's training to make room for LSQ). For the kept jobs it then
 *    cuts, least important level first, until they fit: LSQ's training, then
 *    LSQ's base encoding (encode_ils_iters from BENCH_LSQ_ENCODE_ILS down to
 *    BENCH_LSQ_ENCODE_ILS_MIN: on GloVe-100 encoding the 331k base is ~85 % of
 *    LSQ 16 B's cost, so a cut training set alone never made it fit), the
 *    other level-3 FAISS training (each to its floor), QINCo's training time,
 *    the baselines' training. Every cut and skip is a note in the report,
 *    which lists each job's planned and actual seconds.
 * 5. A reserve (MARGIN of the budget, at least 30 s) is kept for writing the
 *    outputs and for model error.
 * 6. FAISS LSQ runs with fewer iterations than FAISS's defaults
 *    (BENCH_LSQ_*, stated in its spec): at the defaults one code size on
 *    GloVe-100 would take half of the whole run's budget. The plan may cut
 *    its base-encoding rounds further (point 4; down to
 *    BENCH_LSQ_ENCODE_ILS_MIN), also stated in its spec.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_impl.h"

#define QINCO_SHARE 0.12 /* of the budget, for QINCo training, all its jobs together */
#define MARGIN 0.06
#define N_MIN 10000
#define N_FLOOR 5000 /* last resort for FAISS OPQ, IVF-RQ, RQ > 16 B: 20 vectors per codeword */
/* FAISS LSQ, model seconds at 8 bytes: one local-search round per 1,000
 * vectors at d = 100, and one codebook update. Measured on siftsmall (10,000
 * × 128, niced, load ~4): 10,000 vectors, 8 rounds, M = 8: 10.9 s; training
 * 20 iterations of 2 rounds: 92 s, i.e. ~2.9 s of update per iteration;
 * M = 16: update ~10 s, a round 3.6 × M = 8's. Those are wall seconds, but
 * the other FAISS rates are model units ~2.8 × a run's seconds (GloVe-100,
 * session 3: FAISS calibration 0.36), and LSQ's local search, unlike them, is
 * not BLAS-bound: that run planned LSQ 8 B at 135 s and it took 476 (239 s
 * training on 50,000, 233 s encoding 331k). Hence ×3 on the round, and
 * training rounds cost as much as encoding ones. The update is small: idle
 * siftsmall runs of session 5 (bench-out/siftsmall-s5-long) trained in 59 s
 * (8 B) and 215 s (16 B) against 61 and 221 s for the rounds alone at the
 * run's speed 0.5, i.e. ~0.2 and ~1 s per iteration (0.4 model seconds ×
 * (M/8)^2.3). Session 4's ×3 on the update too (6.6) overestimated those
 * jobs 2.4× (164 s planned, 67 s taken; 546 s, 242 s). */
#define LSQ_ROUND 0.24
#define LSQ_UPDATE 0.4
#define LSQ_TRAIN_ROUND 1.0 /* a training round relative to an encoding round */
#define QINCO_MIN_S 60.0 /* QINCo training seconds a job gets before it is dropped */

static int is_qinco(const char *m) { return strstr(m, "qinco") != NULL; }

static int cuttable(const char *m) {
    return !strcmp(m, "faiss-opq") || !strcmp(m, "faiss-rq") || !strcmp(m, "faiss-lsq") ||
           !strcmp(m, "faiss-ivfpq") || !strcmp(m, "faiss-ivfrq");
}

/* Seconds (model units) of the IVF sweep: per query a LUT, nprobe list
 * visits and code scans of ~1.5 ns per byte; qinx re-ranking ~4.5 µs per
 * candidate at 15 bytes × d = 100 (bench-out/glove100-ivf*). */
static double sweep_cost(const bench_run *r, const char *m, size_t bytes, size_t nlist) {
    const bench_cfg *c = r->cfg;
    const bench_data *D = r->data;
    double u = D->d / 100.0, per_query = 0; /* seconds of the whole sweep */
    size_t nrr = 1;
    int qinx = !strncmp(m, "qinx", 4);
    /* re-ranking decodes each candidate: RQ ~4.5 µs, QINCo (network, default L = 1,
     * h = 128, vectorised) ~33 µs at 15 bytes, d = 100 (GloVe reports of sessions 3
     * and 4: ~300 QPS with 100 candidates; the 224 µs assumed before made siftsmall's
     * session-4 plan drop IVF-QINCo, estimated 76 s at its minimum) */
    double per_cand = (is_qinco(m) ? 3.3e-5 : 4.5e-6) * u * bytes / 15.0;
    if (qinx) nrr = c->nrerank;
    for (size_t ri = 0; ri < nrr; ri++) {
        double rr = qinx ? (double)c->rerank[ri] : 0;
        for (size_t pi = 0; pi < c->nnprobe; pi++) {
            double np = (double)c->nprobe[pi];
            if (np > nlist) break;
            double scanned = np / nlist * D->base.n;
            /* FAISS IVF-RQ builds an M·256·d table per visited list, PQ 256·d */
            double lut = np * 2.6e-5 * u * (strcmp(m, "faiss-ivfrq") ? 1.0 : bytes - 1.0);
            double pt = 2.0 * (1e-4 * u * bytes / 16.0 + lut + scanned * bytes * 1.5e-9 +
                               rr * per_cand) * D->queries.n;
            per_query += pt * (pt > BENCH_SLOW_POINT_S ? 1 : c->runs);
        }
    }
    double cap = 2.0 * BENCH_SWEEP_SHARE * c->budget_min * 60; /* bench_eval_ivf stops there */
    return per_query < cap ? per_query : cap;
}

/* Model seconds per 1,000 vectors (d = 100) of QINCo encoding at M bytes:
 * network passes per beam entry and candidate. GloVe-100's 331k base took
 * ~245 s at 8 bytes (1,350 vectors/s) and ~470 s at 16 (700/s) on the idle
 * machine, i.e. ×2 in model units (speed ≈ 0.5): 1.5 and 2.9 s; a GloVe
 * subset gave ~10 s at 32 bytes (niced, loaded). */
/* Session 3: the default encoder (L = 1, h = 128, A = 8, beam 5) with
 * vectorised element-wise loops runs 3,700-5,800 vectors/s at 8 bytes on a
 * GloVe subset (idle) against 1,350 for the old default: a third. */
static double qinco_enc(double M) { return 0.04 * pow(M, 1.2); }

/* Model seconds of training a qinx RQ of M steps on the run's training set
 * (qinx-rq, and the RQ inside the IVF jobs and IVF-QINCo). */
static double qinx_rq_train(const bench_data *D, double M) {
    return D->train.n / 1000.0 * 0.38 * M * (D->d / 100.0);
}

/* Model seconds of one FAISS LSQ local-search round (perturb + icm_iters
 * ICM sweeps) per 1,000 vectors at M bytes: LSQ_ROUND × (M/8)^1.85 (unary
 * terms ∝ M·d, pairwise ∝ M²). */
static double lsq_round(const bench_data *D, size_t bytes) {
    return LSQ_ROUND * pow(bytes / 8.0, 1.85) * (D->d / 100.0) * BENCH_LSQ_ICM / 4.0;
}

/* The model seconds of FAISS LSQ's base encoding (its encode_ils_iters
 * rounds): the part of its fixed cost the plan may cut. */
static double lsq_encode(const bench_data *D, size_t bytes) {
    return D->base.n / 1000.0 * BENCH_LSQ_ENCODE_ILS * lsq_round(D, bytes);
}

/* IVF-QINCo starts from the run's qinx IVF-RQ of the same size when there is
 * one (bench_methods.c keeps it; level 0, so it runs first): QINCo then
 * trains only its network on that index's residuals. */
static int reuses_ivfrq(const bench_run *r, size_t bytes) {
    for (size_t k = 0; k < r->njobs; k++)
        if (!strcmp(r->jobs[k].m->name, "qinx-ivfrq") && r->jobs[k].bytes == bytes && !r->jobs[k].skip_reason &&
            !r->jobs[k].failed)
            return 1;
    return 0;
}

void bench_plan_cost(const bench_run *r, const char *m, size_t bytes, double *train, double *fixed) {
    const bench_data *D = r->data;
    double u = D->d / 100.0, M = (double)bytes;
    double nt = D->train.n / 1000.0, nb = D->base.n / 1000.0;
    double ntc = (D->train.n < 65536 ? D->train.n : 65536) / 1000.0; /* FAISS PQ/OPQ cap */
    /* exhaustive evaluation: decode + flat search of nq over the base, ~0.15 ns per flop */
    double eval = 2.0 * D->queries.n * D->base.n * D->d * 0.15e-9 + nb * 0.02 * u;
    size_t nlist = bench_nlist(r);
    /* coarse k-means of IVF: 25 iterations of nlist × d per vector, ~0.3 ns per flop */
    double coarse = 25.0 * D->train.n * nlist * D->d * 2 * 0.3e-9;
    double t = 0, f = 0;
    if (!strcmp(m, "faiss-pq")) {
        t = ntc * (0.5 + 0.03 * M) * u;
        f = nb * 0.04 * u + eval;
    } else if (!strcmp(m, "faiss-opq")) {
        t = ntc * 1.2 * pow(M, 0.8) * u;
        f = nb * 0.05 * u + eval;
    } else if (!strcmp(m, "faiss-rq")) {
        t = nt * 0.95 * M * u;
        f = nb * 0.018 * M * u + eval;
    } else if (!strcmp(m, "qinx-rq") || !strcmp(m, "qinx-rq-noreseed")) {
        t = qinx_rq_train(D, M);
        f = nb * 0.0042 * M * u + eval;
    } else if (!strcmp(m, "faiss-lsq")) {
        /* per 1,000 vectors, one local-search round costs lsq_round;
         * training rounds LSQ_TRAIN_ROUND of that; every training iteration also solves
         * the (M·256)² least-squares system of the codebook update, LSQ_UPDATE
         * × (M/8)^2.3 seconds whatever the training set: at M = 16 the update
         * dominates training, so it counts as fixed (not cut by subsampling) */
        double round = lsq_round(D, bytes);
        t = nt * BENCH_LSQ_TRAIN_ITERS * BENCH_LSQ_TRAIN_ILS * LSQ_TRAIN_ROUND * round;
        f = BENCH_LSQ_TRAIN_ITERS * LSQ_UPDATE * pow(M / 8.0, 2.3) + lsq_encode(D, bytes) + eval;
    } else if (!strcmp(m, "qinx-qinco")) {
        t = 0; /* its own wall-clock budget, see bench_plan_job */
        f = nb * qinco_enc(M) * u + eval;
    } else if (!strcmp(m, "qinx-ivfrq")) {
        t = coarse + qinx_rq_train(D, M - 1);
        f = nb * 0.0042 * M * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "qinx-ivfqinco")) {
        /* the coarse k-means, and the RQ on the residuals that QINCo starts
         * from (inside QINCo's train call) unless IVF-RQ's is reused */
        t = coarse + (reuses_ivfrq(r, bytes) ? 0 : qinx_rq_train(D, M - 1));
        f = nb * qinco_enc(M - 1) * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "faiss-ivfpq")) {
        t = coarse + ntc * 1.2 * pow(M, 0.8) * u * (D->d % bytes ? 1.0 : 0.1); /* OPQ only when M ∤ d */
        f = nb * 0.05 * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "qinx-ivffs")) { /* 4-bit k-means is cheap; the 8-bit RQ part dominates */
        t = coarse + qinx_rq_train(D, M / 2);
        f = nb * 0.0042 * M * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "qinx-ivfpq4")) { /* 16-centroid k-means per sub-vector; beam-4 encoding */
        t = coarse + ntc * 0.15 * u;
        f = nb * 0.0042 * M * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "faiss-ivfpqfs")) { /* 16-centroid k-means per sub-quantizer: cheap */
        t = coarse + ntc * 0.15 * u;
        f = nb * 0.05 * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "faiss-ivfrq")) {
        t = coarse + nt * 0.95 * (M - 1) * u;
        f = nb * 0.018 * (M - 1) * u + sweep_cost(r, m, bytes, nlist);
    } else {
        t = nt * 0.5 * M * u;
        f = nb * 0.02 * M * u + eval;
    }
    /* FAISS's BLAS-bound code gains efficiency with d: its seconds grow ~√d,
     * not linearly (Fashion-MNIST, d = 784: FAISS PQ/RQ/OPQ took 0.33 × the
     * linear model relative to GloVe, d = 100); LSQ's constants were measured
     * at d = 128 and its update does not depend on d */
    if (!strncmp(m, "faiss", 5) && strcmp(m, "faiss-lsq") && u > 1) {
        t /= sqrt(u);
        f /= sqrt(u);
    }
    *train = t;
    *fixed = f;
}

/* Calibration of the model for a method: measured / predicted seconds over
 * the jobs of the same library done so far (qinx and FAISS code do not slow
 * down alike under load), else over all jobs, else 1. */
static double speed(const bench_run *r, const char *method) {
    int lib = !strncmp(method, "faiss", 5);
    if (r->plan_pred_lib[lib] > 1) return r->plan_act_lib[lib] / r->plan_pred_lib[lib];
    return r->plan_pred > 1 ? r->plan_act / r->plan_pred : 1.0;
}

/* What the cuttable jobs and QINCo get: the fraction of the training set of
 * the FAISS jobs of each level (clamped to the job's floor; for LSQ a value
 * below the floor cuts its encoding rounds instead, job_encode_ils), and
 * QINCo's training seconds. */
typedef struct cut {
    double f[5], qs;
} cut;

/* Fraction of the training set job j trains on under cut c. */
static double job_fraction(const bench_job *j, const cut *c) {
    if (!j->cuttable) return 1;
    double fr = c->f[j->level];
    return fr > j->f_min ? (fr < 1 ? fr : 1) : j->f_min;
}

/* FAISS LSQ's encode_ils_iters under cut c: its level's cut, once below the
 * training floor, goes on as a share of BENCH_LSQ_ENCODE_ILS's rounds (down
 * to BENCH_LSQ_ENCODE_ILS_MIN); other jobs 0. */
static int job_encode_ils(const bench_job *j, const cut *c) {
    if (!j->enc) return 0;
    double fr = c->f[j->level], e = fr >= j->f_min ? 1 : fr / j->f_min;
    int ils = (int)floor(e * BENCH_LSQ_ENCODE_ILS + 1e-9);
    return ils > BENCH_LSQ_ENCODE_ILS_MIN ? ils : BENCH_LSQ_ENCODE_ILS_MIN;
}

/* Model seconds of job j on a share fr of the training set with ils LSQ
 * encoding rounds (ignored by jobs other than LSQ; a planned LSQ job's
 * j->encode_ils is always set, job_encode_ils). */
static double job_model(const bench_job *j, double fr, int ils) {
    double enc = j->enc ? j->enc * (1.0 - (double)ils / BENCH_LSQ_ENCODE_ILS) : 0;
    return j->train * fr + j->fixed - enc;
}

/* Seconds job i needs (calibrated) under cut c. */
static double job_cost(const bench_run *r, size_t i, const cut *c) {
    const bench_job *j = &r->jobs[i];
    if (j->skip_reason) return 0;
    return speed(r, j->m->name) * job_model(j, job_fraction(j, c), job_encode_ils(j, c)) +
           (j->qinco ? c->qs : 0);
}

/* Seconds the jobs i.. kept in the plan (not dropped) need. */
static double plan_need(const bench_run *r, size_t i, const cut *c) {
    double s = 0;
    for (size_t k = i; k < r->njobs; k++)
        if (!r->jobs[k].drop) s += job_cost(r, k, c);
    return s;
}

/* Levels 3 and 4 (the FAISS methods beyond the baselines) form one group:
 * LSQ may run with OPQ / IVF-RQ cut, rather than not at all. */
static int level_group(int level) { return level < 3 ? level : 3; }

/* Seconds the kept jobs i.. need when those of more important groups than
 * level lv's cost `full` and the others (lv's group: the less important are
 * not kept yet) `least`. */
static double level_need(const bench_run *r, size_t i, int lv, const cut *least, const cut *full) {
    double s = 0;
    for (size_t k = i; k < r->njobs; k++)
        if (!r->jobs[k].drop)
            s += job_cost(r, k, level_group(r->jobs[k].level) < level_group(lv) ? full : least);
    return s;
}

/* Lower *x within [lo, *x] until the plan fits `left` (bisection); 1 if it does. */
static int cut_down(const bench_run *r, size_t i, cut *c, double *x, double lo, double left) {
    if (plan_need(r, i, c) <= left) return 1;
    double hi = *x;
    *x = lo;
    if (plan_need(r, i, c) > left) return 0;
    for (int it = 0; it < 40; it++) {
        double keep = *x, mid = (lo + hi) / 2;
        *x = mid;
        if (plan_need(r, i, c) > left) hi = mid;
        else lo = mid;
        *x = keep;
    }
    *x = lo;
    return 1;
}

/* Importance of a job (0 = most). The subject of the benchmark first (qinx
 * RQ, qinx IVF-RQ), then the baselines that every table compares with
 * (FAISS PQ, FAISS RQ up to 16 bytes, FAISS IVF-PQ), QINCo, the other FAISS
 * methods (OPQ, IVF-RQ, RQ above 16 bytes: by far the slowest FAISS RQ) and
 * FAISS LSQ last. */
static int job_level(const char *m, size_t bytes) {
    if (!strcmp(m, "qinx-rq") || !strcmp(m, "qinx-ivfrq")) return 0;
    if (!strcmp(m, "faiss-pq") || !strcmp(m, "faiss-ivfpq")) return 1;
    if (!strcmp(m, "faiss-rq")) return bytes <= 16 ? 1 : 3;
    if (is_qinco(m)) return 2;
    if (!strcmp(m, "faiss-lsq")) return 4;
    return 3; /* faiss-opq, faiss-ivfrq, qinx-rq-noreseed */
}

int bench_method_priority(const char *m) {
    if (!strcmp(m, "qinx-rq") || !strcmp(m, "faiss-pq") || !strcmp(m, "faiss-rq")) return 0;
    if (!strcmp(m, "qinx-ivfrq") || !strcmp(m, "faiss-ivfpq")) return 1;
    if (is_qinco(m)) return 2;
    if (!strcmp(m, "faiss-lsq")) return 4;
    return 3; /* faiss-opq, faiss-ivfrq, qinx-rq-noreseed */
}

int bench_plan_init(bench_run *r, const bench_method *const *order, size_t no) {
    const bench_cfg *c = r->cfg;
    size_t nj = 0, nq = 0;
    for (size_t i = 0; i < no; i++) nj += order[i]->ivf ? c->nivf_bytes : c->nbytes;
    r->jobs = calloc(nj ? nj : 1, sizeof *r->jobs);
    if (!r->jobs) return QX_ENOMEM;
    /* run order: by level (job_level), then in the order given; so a job
     * never runs before a more important one (FAISS RQ 32 B after qinx RQ
     * 32 B and QINCo) */
    for (int lv = 0; lv <= 4; lv++)
        for (size_t i = 0; i < no; i++) {
            const size_t *bl = order[i]->ivf ? c->ivf_bytes : c->bytes;
            size_t nb = order[i]->ivf ? c->nivf_bytes : c->nbytes;
            for (size_t b = 0; b < nb; b++) {
                if (job_level(order[i]->name, bl[b]) != lv) continue;
                bench_job *j = &r->jobs[r->njobs++];
                j->m = order[i];
                j->bytes = bl[b];
                j->level = lv;
                bench_plan_cost(r, order[i]->name, bl[b], &j->train, &j->fixed);
                j->qinco = is_qinco(order[i]->name);
                /* floor: 10,000 for the baselines and LSQ (trained on fewer, LSQ
                 * overfits), N_FLOOR (~20 per codeword) for the others; an IVF
                 * method never below 39 × nlist, FAISS's coarse k-means minimum
                 * (the GloVe report of session 4 cut FAISS IVF-RQ to 12,373 for
                 * 1,024 lists, and FAISS warned) */
                int lsq = !strcmp(order[i]->name, "faiss-lsq");
                size_t fl = lv >= 3 && !lsq ? N_FLOOR : N_MIN;
                if (order[i]->ivf && fl < 39 * bench_nlist(r)) fl = 39 * bench_nlist(r);
                /* LSQ's cut goes on below its floor as fewer encoding rounds */
                j->enc = lsq ? lsq_encode(r->data, bl[b]) : 0;
                j->cuttable = cuttable(order[i]->name) && (r->data->train.n > fl || lsq);
                j->f_min = r->data->train.n > fl ? (double)fl / r->data->train.n : 1;
                j->planned = j->actual = j->qinco_used_s = NAN;
                if (j->bytes > r->data->d * 4 && !order[i]->ivf)
                    j->skip_reason = "more bytes than the raw vector";
                nq += j->qinco && !j->skip_reason;
            }
        }
    r->qinco_jobs = nq;
    for (size_t i = 0; i < no; i++)
        if (!strcmp(order[i]->name, "faiss-lsq"))
            bench_note(r, "faiss-lsq runs with train_iters=%d train_ils_iters=%d encode_ils_iters=%d icm_iters=%d "
                          "(FAISS defaults 25/8/16/4; ~3.7x cheaper, siftsmall 8 B MSE 19,122 vs 14,655 at the "
                          "defaults): at the defaults one code size takes 10-40 min on GloVe-100",
                       BENCH_LSQ_TRAIN_ITERS, BENCH_LSQ_TRAIN_ILS, BENCH_LSQ_ENCODE_ILS, BENCH_LSQ_ICM);
    double tr = 0, fx = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        tr += r->jobs[i].train;
        fx += r->jobs[i].fixed;
    }
    bench_log(r, "plan: %zu jobs, model estimate %.0f s of training + %.0f s of encoding/evaluation "
                 "(uncalibrated units)%s",
              r->njobs, tr, fx, nq ? " + QINCo's share of the budget" : "");
    return 0;
}

/* QINCo's training seconds per job: at most its share of QINCO_SHARE of the
 * budget, at least QINCO_MIN_S (or half the share when that is smaller). */
static double qinco_share(const bench_run *r) {
    return QINCO_SHARE * r->cfg->budget_min * 60 / (r->qinco_jobs ? r->qinco_jobs : 1);
}
static double qinco_min(const bench_run *r) {
    double s = qinco_share(r);
    return QINCO_MIN_S < s / 2 ? QINCO_MIN_S : s / 2;
}

/* Jobs after i still kept in the plan. */
static size_t kept_after(const bench_run *r, size_t i) {
    size_t n = 0;
    for (size_t k = i + 1; k < r->njobs; k++) n += !r->jobs[k].drop;
    return n;
}

int bench_plan_job(bench_run *r, size_t i, size_t *ntrain, double *qinco_minutes) {
    bench_job *j = &r->jobs[i];
    const bench_data *D = r->data;
    double budget = r->cfg->budget_min * 60;
    double margin = MARGIN * budget > 30 ? MARGIN * budget : 30;
    double left = bench_minutes_left(r) * 60 - margin;
    *ntrain = D->train.n;
    *qinco_minutes = 0;
    if (j->skip_reason) return 0;
    if (bench_minutes_left(r) <= 0) {
        j->skip_reason = "the time budget is used up";
        return 0;
    }
    double share = qinco_share(r), qmin = qinco_min(r);
    double f10 = D->train.n > N_MIN ? (double)N_MIN / D->train.n : 1; /* FAISS at 10,000 */
    /* 1. which of the jobs still to run are kept, most important level
     *    first: a level's jobs join at their minimum (FAISS training cut to
     *    its floor — 10,000 for the baselines and LSQ, N_FLOOR for the others
     *    —, QINCo trained qmin) next to the kept jobs of the more important
     *    levels at their full cost (levels 3 and 4 count as one: level_group);
     *    while that does not fit, the level's costliest job is left out, then
     *    whatever of the level still fits is taken back. So a less important
     *    job never costs a baseline or QINCo time or training vectors. */
    const cut least = {{1, f10, 1, 0, 0}, qmin}, full = {{1, 1, 1, 1, 1}, share};
    for (size_t k = i; k < r->njobs; k++) r->jobs[k].drop = 1;
    for (int lv = j->level; lv <= 4; lv++) {
        for (size_t k = i; k < r->njobs; k++)
            if (r->jobs[k].level == lv && !r->jobs[k].skip_reason) r->jobs[k].drop = 0;
        while (level_need(r, i, lv, &least, &full) > left + 1) {
            size_t v = r->njobs, kept = 0; /* the costliest kept job of the level at its minimum */
            for (size_t k = i; k < r->njobs; k++) {
                if (r->jobs[k].drop) continue;
                kept++;
                if (r->jobs[k].level == lv && (v == r->njobs || job_cost(r, k, &least) >= job_cost(r, v, &least)))
                    v = k;
            }
            if (v == r->njobs) break;
            if (v == i && kept == 1) break; /* alone: it may use the margin (the check below) */
            r->jobs[v].drop = 1;
        }
        for (size_t k = i; k < r->njobs; k++) {
            bench_job *b = &r->jobs[k];
            if (!b->drop || b->skip_reason || b->level != lv) continue;
            b->drop = 0;
            if (level_need(r, i, lv, &least, &full) > left + 1) b->drop = 1;
        }
        if (j->drop) {
            double own = job_cost(r, i, &least), more = level_need(r, i, lv, &least, &full);
            snprintf(j->why, sizeof j->why,
                     "estimated %.0f s at its minimum; %.0f s are left once the %.0f s of the %zu "
                     "jobs as or more important still to run are paid for",
                     own, left - more > 0 ? left - more : 0, more, kept_after(r, i));
            j->skip_reason = j->why;
            return 0;
        }
    }
    /* 2. what the kept jobs can afford, cutting the least important level
     *    first until they fit: LSQ's training, then its base-encoding rounds
     *    (job_encode_ils), then OPQ's, IVF-RQ's and
     *    FAISS RQ > 16 B's (each down to its floor), QINCo's training time
     *    down to qmin, the FAISS baselines' training down to 10,000 */
    cut c = full;
    for (int lv = 4; lv >= 1; lv--)
        if (lv == 2 ? cut_down(r, i, &c, &c.qs, qmin, left + 1) : cut_down(r, i, &c, &c.f[lv], 0, left + 1))
            break; /* + 1: the keep phase's slack, so that a plan it kept never cuts a baseline */
    double qs = c.qs;
    /* QINCo's train call also trains the RQ it starts from when there is no
     * kept one: its budget is the network's time plus that RQ's */
    double rq_s = 0;
    if (!strcmp(j->m->name, "qinx-ivfqinco") && !reuses_ivfrq(r, j->bytes))
        rq_s = speed(r, j->m->name) * qinx_rq_train(D, (double)j->bytes - 1);
    if (j->qinco) *qinco_minutes = (qs + rq_s) / 60;
    double own = job_cost(r, i, &c);
    double fr = job_fraction(j, &c);
    if (fr < 1) *ntrain = (size_t)(fr * D->train.n + 0.5);
    /* the margin is for the outputs and model error; the important jobs
     * (levels 0-2) may eat into it, the others only as the last job to run
     * (the session-4 GloVe report cut FAISS IVF-RQ's training so that LSQ
     * 8 B would fit, then skipped LSQ, 390 s > 357 s, and ended 9 minutes
     * early) */
    double allow = (j->level >= 3 && kept_after(r, i) ? left : left + margin) + 1; /* + 1: the bisection's rounding */
    if (own > allow) {
        snprintf(j->why, sizeof j->why, "estimated %.0f s > %.0f s left of the time budget", own,
                 allow > 0 ? allow : 0);
        j->skip_reason = j->why;
        *qinco_minutes = 0;
        *ntrain = D->train.n;
        return 0;
    }
    j->planned = own;
    j->ntrain = *ntrain;
    j->encode_ils = job_encode_ils(j, &c);
    const cut whole = {{1, 1, 1, 1, 1}, qs};
    j->qinco_minutes = *qinco_minutes;
    if (*ntrain < D->train.n)
        bench_note(r, "%s at %zu bytes trained on %zu of the %zu training vectors (evenly spaced): the "
                      "whole set would not fit the time budget (estimated %.0f s, %.0f s left for %zu jobs)",
                   j->m->name, j->bytes, *ntrain, D->train.n, job_cost(r, i, &whole),
                   left + margin, r->njobs - i);
    if (j->encode_ils && j->encode_ils < BENCH_LSQ_ENCODE_ILS)
        bench_note(r, "%s at %zu bytes encodes the base with encode_ils_iters=%d instead of %d (training on %zu "
                      "vectors, its floor): the jobs still to run would not fit the time budget otherwise "
                      "(estimated %.0f s, %.0f s left for %zu jobs)",
                   j->m->name, j->bytes, j->encode_ils, BENCH_LSQ_ENCODE_ILS, *ntrain, job_cost(r, i, &whole),
                   left + margin, r->njobs - i);
    if (j->qinco && qs < share - 1)
        bench_note(r, "%s at %zu bytes: QINCo training budget cut to %.0f s of its %.0f s share so the "
                      "jobs still to run fit",
                   j->m->name, j->bytes, qs, share);
    return 0;
}

void bench_plan_done(bench_run *r, size_t i, double seconds) {
    bench_job *j = &r->jobs[i];
    j->actual = seconds;
    if (j->qinco) return; /* its training time is set by its budget, not by the model */
    double fr = j->ntrain && r->data->train.n ? (double)j->ntrain / r->data->train.n : 1;
    int lib = !strncmp(j->m->name, "faiss", 5);
    double pred = job_model(j, fr, j->encode_ils);
    r->plan_pred += pred;
    r->plan_act += seconds;
    r->plan_pred_lib[lib] += pred;
    r->plan_act_lib[lib] += seconds;
}

const float *bench_train_subset(bench_run *r, size_t n) {
    const bench_data *D = r->data;
    if (n >= D->train.n) return D->train.data;
    if (r->sub_n != n) {
        float *p = realloc(r->sub, sizeof(float) * n * D->d);
        if (!p) return NULL;
        r->sub = p;
        qx_sample_rows(D->train.data, D->train.n, D->d, n, p);
        r->sub_n = n;
    }
    return r->sub;
}

void bench_plan_report(const bench_run *r, FILE *f, int md) {
    double wall = bench_now() - r->t0, budget = r->cfg->budget_min * 60;
    if (md) {
        fprintf(f, "## Time budget\n\n");
        fprintf(f, "Total wall time **%.1f minutes** for a budget of %g minutes: **%s**.\n\n", wall / 60,
                r->cfg->budget_min, wall <= budget ? "honoured" : "EXCEEDED");
        fprintf(f, "| method | bytes | training vectors | planned s | actual s | |\n"
                   "|---|--:|--:|--:|--:|---|\n");
    } else {
        fprintf(f, "\n== time: %.1f of %g minutes (%s) ==\n", wall / 60, r->cfg->budget_min,
                wall <= budget ? "budget honoured" : "budget EXCEEDED");
    }
    for (size_t i = 0; i < r->njobs; i++) {
        const bench_job *j = &r->jobs[i];
        char pl[32], ac[32], st[200];
        snprintf(pl, sizeof pl, isnan(j->planned) ? "—" : "%.0f", j->planned);
        snprintf(ac, sizeof ac, isnan(j->actual) ? "—" : "%.0f", j->actual);
        if (j->skip_reason) snprintf(st, sizeof st, "skipped: %s", j->skip_reason);
        else if (j->failed) snprintf(st, sizeof st, "FAILED");
        else if (j->qinco && !isnan(j->actual) && !isnan(j->qinco_used_s))
            /* QINCo stops after the batch that crosses its deadline: 10 % + 10 s of slack */
            snprintf(st, sizeof st, "QINCo training budget %.1f min, used %.1f min: %s", j->qinco_minutes,
                     j->qinco_used_s / 60,
                     j->qinco_used_s <= 1.1 * j->qinco_minutes * 60 + 10 ? "honoured" : "EXCEEDED");
        else if (j->qinco && !isnan(j->actual))
            snprintf(st, sizeof st, "QINCo training budget %.1f min", j->qinco_minutes);
        else if (!isnan(j->actual) && !isnan(j->planned) && j->actual > 1.5 * j->planned + 10)
            snprintf(st, sizeof st, "over plan");
        else snprintf(st, sizeof st, "%s", isnan(j->actual) ? "" : "ok");
        if (md)
            fprintf(f, "| %s | %zu | %zu | %s | %s | %s |\n", j->m->name, j->bytes, j->ntrain, pl, ac, st);
        else
            fprintf(f, "%-14s %4zu  train %7zu  planned %6s s  actual %6s s  %s\n", j->m->name, j->bytes,
                    j->ntrain, pl, ac, st);
    }
    if (md) fprintf(f, "\n");
}

void bench_plan_print(const bench_run *r, FILE *f) {
    double tt = 0, tf = 0, budget = r->cfg->budget_min * 60;
    fprintf(f, "cost model of %s (%zu base x %zu, %zu training, %zu queries), uncalibrated model seconds\n"
               "(the run calibrates them on the jobs it has done; see bench/bench_plan.c):\n",
            r->data->dataset, r->data->base.n, r->data->d, r->data->train.n, r->data->queries.n);
    for (size_t i = 0; i < r->njobs; i++) {
        const bench_job *j = &r->jobs[i];
        fprintf(f, "%-14s %4zu  train %8.0f  encode+eval %7.0f%s%s\n", j->m->name, j->bytes, j->train,
                j->fixed, j->cuttable ? "  (training may be cut)" : "",
                j->skip_reason ? "  skipped: " : j->qinco ? "  + QINCo share" : "");
        if (j->skip_reason) fprintf(f, "    %s\n", j->skip_reason);
        tt += j->train;
        tf += j->fixed;
    }
    fprintf(f, "total %.0f s training + %.0f s encoding/evaluation", tt, tf);
    if (r->qinco_jobs) fprintf(f, " + QINCo %.0f s (%.0f%% of the budget)", QINCO_SHARE * budget, QINCO_SHARE * 100);
    fprintf(f, "; budget %.0f s\n", budget);
}

void bench_plan_simulate(bench_run *r, FILE *f) {
    double s = r->cfg->plan_speed;
    r->sim_elapsed = bench_now() - r->t0; /* loading so far counts */
    r->t0 = bench_now();
    r->deadline = r->t0 + r->cfg->budget_min * 60;
    r->sim_elapsed = 0;
    fprintf(f, "\nsimulated run, measured = %.2f x model seconds:\n", s);
    for (size_t i = 0; i < r->njobs; i++) {
        bench_job *j = &r->jobs[i];
        size_t nt = 0;
        double qm = 0;
        bench_plan_job(r, i, &nt, &qm);
        if (j->skip_reason) {
            fprintf(f, "%-14s %4zu  skipped: %s\n", j->m->name, j->bytes, j->skip_reason);
            continue;
        }
        double fr = (double)nt / r->data->train.n;
        double t = s * job_model(j, fr, j->encode_ils) + qm * 60;
        r->sim_elapsed += t;
        bench_plan_done(r, i, t);
        char ils[32] = "";
        if (j->encode_ils) snprintf(ils, sizeof ils, "  encode_ils %d", j->encode_ils);
        fprintf(f, "%-14s %4zu  train %6zu  %5.0f s  (at %5.1f min)%s%s\n", j->m->name, j->bytes, nt, t,
                r->sim_elapsed / 60, j->qinco ? "  incl. QINCo training budget" : "", ils);
    }
    fprintf(f, "simulated total %.1f min of a %g-minute budget\n", r->sim_elapsed / 60, r->cfg->budget_min);
}
