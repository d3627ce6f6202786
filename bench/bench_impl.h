/* bench/bench_impl.h — internals shared by the bench/ *.c files (not public).
 *
 * One run = one dataset (base, queries, ground truth, training set) and a list
 * of methods × code sizes. Exhaustive methods go through bench_codec (train,
 * encode, decode), IVF methods through bench_ivfimpl (train, add, search);
 * every method is evaluated by the same code in bench_eval.c / bench_ivf.c, so
 * the comparison is fair by construction. Results accumulate in a bench_run
 * and are written by bench_report.c and bench_plot.c.
 */
#ifndef QINX_BENCH_IMPL_H
#define QINX_BENCH_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qinx/qinx.h"
#include "qinx/eval.h"

#define BENCH_MAX_LIST 32   /* entries of --bytes / --nprobe / --rerank */
#define BENCH_MAX_METHODS 16
#define BENCH_GT_K 100      /* ground-truth depth computed when --gt is absent */
#define BENCH_SLOW_POINT_S 2.0 /* IVF points slower than this are timed once */
/* FAISS LSQ as the bench runs it (FAISS defaults 25/8/16/4/4): see
 * bench_methods.c run_faiss_lsq and the cost model in bench_plan.c */
#define BENCH_LSQ_TRAIN_ITERS 20
#define BENCH_LSQ_TRAIN_ILS 2
#define BENCH_LSQ_ENCODE_ILS 8
/* fewest encode_ils_iters the time plan may give LSQ before skipping it: as
 * many local-search rounds as its training codes get (BENCH_LSQ_TRAIN_ILS) */
#define BENCH_LSQ_ENCODE_ILS_MIN BENCH_LSQ_TRAIN_ILS
#define BENCH_LSQ_ICM 4
#define BENCH_SWEEP_SHARE 0.08 /* of the time budget, at most, per IVF sweep */

/* Plot back end: gnuplot when installed, else SVG written by the program. */
enum { BENCH_PLOT_AUTO = 0, BENCH_PLOT_GNUPLOT, BENCH_PLOT_SVG, BENCH_PLOT_NONE };

typedef struct bench_cfg {
    const char *base_path, *query_path, *gt_path, *train_path, *out_dir, *name;
    const char *write_gt; /* --write-gt FILE: only compute the ground truth */
    size_t max_train;   /* training vectors sampled from the base without --train */
    size_t nq_max;      /* use the first nq_max queries (0 = all) */
    size_t max_base;    /* use the first max_base base vectors (0 = all) */
    size_t bytes[BENCH_MAX_LIST], nbytes;         /* exhaustive code sizes */
    size_t ivf_bytes[BENCH_MAX_LIST], nivf_bytes; /* IVF code sizes */
    size_t nprobe[BENCH_MAX_LIST], nnprobe;
    size_t rerank[BENCH_MAX_LIST], nrerank;
    const char *methods[BENCH_MAX_METHODS];
    size_t nmethods;
    size_t nlist, k_ivf, runs;
    double budget_min;  /* whole run, minutes */
    int threads;        /* train/encode threads; 0 = all cores */
    int quiet, plot, plan_only;
    double plan_speed;  /* --plan-only: simulated measured/model ratio */
    uint64_t seed;
    char cmdline[2048];
} bench_cfg;

typedef struct bench_data {
    qx_matrix base, train, queries;
    int32_t *gt;        /* nq rows of gt_k ids */
    int gt_malloced;    /* gt from malloc (computed) rather than qx_ivecs_read */
    size_t gt_k, d;
    char dataset[64];
    char machine[128];
    int ncores;
    int train_is_base;  /* the training set is the whole base (no --train, max-train >= n) */
} bench_data;

typedef struct bench_result {
    char method[32];
    char spec[128];     /* FAISS factory string or qinx parameters */
    int ivf;
    size_t bytes;       /* bytes stored per vector, ids excluded */
    double mse;         /* NaN = not measured (written as null) */
    double r1, r10, r100, r10at10;
    double qps;
    long nprobe, rerank; /* -1 = not applicable */
    double train_s, encode_s;
    double index_bytes;
    int threads;        /* threads behind the timings of this line */
    int pareto;         /* IVF point on its method's Pareto frontier */
    size_t n_train;     /* training vectors this method saw (the time plan may cut it) */
} bench_result;

struct bench_method;
/* One (method, bytes) of the run and what the time plan (bench_plan.c) made of it. */
typedef struct bench_job {
    const struct bench_method *m;
    size_t bytes;
    double train, fixed;   /* model seconds: training on the whole set; encoding + evaluation */
    double enc;            /* the part of fixed in FAISS LSQ's encode_ils_iters rounds (else 0) */
    int qinco, cuttable, failed;
    double f_min;          /* smallest share of the training set a cut may leave */
    double planned, actual; /* calibrated estimate and measured seconds (NaN = not run) */
    size_t ntrain;         /* training vectors used */
    double qinco_minutes;  /* QINCo training budget given */
    int encode_ils;        /* FAISS LSQ: encode_ils_iters given (0 = not planned) */
    double qinco_used_s;   /* QINCo training seconds it took (NaN = unknown) */
    const char *skip_reason;
    char why[160];
    int level;             /* importance, 0 = most: the plan drops the highest level first */
    int drop;              /* bench_plan_job scratch: left out of the current plan */
} bench_job;

typedef struct bench_run {
    const bench_cfg *cfg;
    bench_data *data;
    bench_result *res;
    size_t nres, capres;
    char **notes;
    size_t nnotes;
    double t0, deadline;
    int train_threads;  /* resolved --threads */
    bench_job *jobs;    /* the plan, in run order */
    size_t njobs, qinco_jobs;
    double plan_pred, plan_act; /* model and measured seconds of the jobs done: calibration */
    double plan_pred_lib[2], plan_act_lib[2]; /* the same for qinx [0] and FAISS [1] jobs */
    float *sub;         /* strided subsample of the training set (cut jobs) */
    size_t sub_n;
    /* the current job's training set and QINCo budget, set by the main loop */
    const float *train_x;
    size_t train_n;
    double qinco_minutes;
    int lsq_encode_ils; /* FAISS LSQ's encode_ils_iters for the current job */
    double sim_elapsed; /* --plan-only: simulated seconds spent (0 in a real run) */
    double qinco_used_s; /* QINCo training seconds of the last QINCo job (NaN = unknown) */
    /* Gaussian distortion-rate bound of the base at each --bytes (qx_gauss_rd;
     * NaN = not computed) and the base's total variance */
    double gauss_rd[BENCH_MAX_LIST], variance;
} bench_run;

/* ---- bench_util.c ---- */
double bench_now(void);
void bench_log(const bench_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_note(bench_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bench_add_result(bench_run *r, const bench_result *res);
void bench_result_init(bench_result *res, const char *method, size_t bytes);
/* Thread counts for train/encode (n = 0: all cores) and for measured search (1). */
void bench_set_threads(int n);
double bench_minutes_left(const bench_run *r);
void bench_machine(char *buf, size_t len, int *ncores);
/* FAISS failure -> QX_EFAISS with FAISS's message, and a log line. */
int bench_faiss_fail(const char *what, int frc);
/* qinx failure: prints qx_last_error() and returns rc. */
int bench_qx_fail(const char *what, int rc);

/* The Gaussian reference of every --bytes (bench_run.gauss_rd); a failure is a
 * note, not an error. */
void bench_gauss_reference(bench_run *r);
/* Its lines for report.md (md = 1) or the terminal. */
void bench_print_gauss(const bench_run *r, FILE *f, int md);

/* ---- bench_eval.c ---- */
/* Recall figures: qx_recall_compute (include/qinx/eval.h), the same
 * definitions as `qinx search`. */
typedef qx_recall bench_recall;
#define bench_recall_compute qx_recall_compute
/* Exact ground truth with a FAISS flat index; cached under the output dir. */
int bench_ground_truth(bench_run *r);

/* An exhaustive method: a trained code of code_size bytes per vector. */
typedef struct bench_codec bench_codec;
struct bench_codec {
    void *obj;
    char spec[128];
    size_t code_size; /* valid after train */
    int (*train)(bench_codec *c, const float *x, size_t n);
    int (*encode)(bench_codec *c, const float *x, size_t n, uint8_t *codes);
    int (*decode)(bench_codec *c, const uint8_t *codes, size_t n, float *out);
    void (*destroy)(bench_codec *c);
    double extra_train_s; /* time spent before train() that belongs to it */
};
/* Train, encode the base, decode, MSE, exhaustive recall on the decodings. */
int bench_eval_codec(bench_run *r, const char *method, size_t bytes, bench_codec *c);

/* ---- bench_methods.c ---- */
typedef struct bench_method {
    const char *name;
    int ivf;  /* an IVF method: QPS sweep */
    int slow; /* may be skipped or cut by the time budget; run last */
    int (*run)(bench_run *r, const struct bench_method *m, size_t bytes);
} bench_method;
const bench_method *bench_method_find(const char *name);
const bench_method *bench_methods_all(size_t *n);
/* Frees what the methods kept between runs (the trained qinx RQs). */
void bench_methods_cleanup(void);
/* FAISS factory strings (exported for tests and the report). */
void bench_spec_pq(char *buf, size_t len, size_t d, size_t M);
void bench_spec_opq(char *buf, size_t len, size_t d, size_t M);
void bench_spec_ivfpq(char *buf, size_t len, size_t d, size_t M, size_t nlist);

/* ---- bench_ivf.c ---- */
typedef struct bench_ivfimpl bench_ivfimpl;
struct bench_ivfimpl {
    void *obj;
    char spec[128];
    size_t code_size; /* bytes per vector stored, ids excluded; valid after add */
    int supports_rerank;
    int budget_cuts;  /* the time budget may stop the sweep (slow methods only:
                         a fast method's sweep costs little next to its training) */
    double extra_train_s; /* training done before train() (IVF-QINCo on IVF-RQ's index) */
    int (*train)(bench_ivfimpl *v, const float *x, size_t n);
    int (*add)(bench_ivfimpl *v, const float *x, size_t n);
    int (*search)(bench_ivfimpl *v, const float *q, size_t nq, size_t k, size_t nprobe,
                  size_t rerank, float *dist, int64_t *ids);
    void (*destroy)(bench_ivfimpl *v);
};
int bench_eval_ivf(bench_run *r, const char *method, size_t bytes, bench_ivfimpl *v);
size_t bench_nlist(const bench_run *r);
/* IVF series: (method, bytes, re-ranking on/off); its name, e.g. "qinx-ivfrq+rerank100". */
int bench_same_series(const bench_result *a, const bench_result *b);
void bench_series_name(const bench_result *p, char *buf, size_t len);
/* Mark the Pareto frontier of every IVF series. */
void bench_mark_pareto(bench_run *r);
/* QPS at 10-recall@10 = target on the frontier of the series of `series`
 * (log-linear interpolation between frontier points); NaN when never reached. */
double bench_qps_at(const bench_run *r, const bench_result *series, double target);

/* ---- bench_plan.c ---- */
/* Model seconds of (method, bytes) on this run's data: training on the
 * whole training set, and the rest (encoding, evaluation or IVF sweep). */
void bench_plan_cost(const bench_run *r, const char *method, size_t bytes, double *train, double *fixed);
int bench_plan_init(bench_run *r, const struct bench_method *const *order, size_t no);
/* Run order 0..4: baselines first, FAISS LSQ last (see bench_plan.c). */
int bench_method_priority(const char *method);
/* Decide job i: skip (jobs[i].skip_reason set), or run on *ntrain training
 * vectors with *qinco_minutes of QINCo training (QINCo jobs). */
int bench_plan_job(bench_run *r, size_t i, size_t *ntrain, double *qinco_minutes);
void bench_plan_done(bench_run *r, size_t i, double seconds);
/* The first n rows of an evenly spaced subsample of the training set. */
const float *bench_train_subset(bench_run *r, size_t n);
/* --plan-only: the model's seconds of every job, uncalibrated. */
void bench_plan_print(const bench_run *r, FILE *f);
void bench_plan_simulate(bench_run *r, FILE *f);
/* Total wall time, budget honoured or not, and the plan of every job. */
void bench_plan_report(const bench_run *r, FILE *f, int md);

/* ---- bench_report.c ---- */
int bench_write_jsonl(const bench_run *r);
int bench_write_report(const bench_run *r, const char *plot_note);
void bench_print_tables(const bench_run *r, FILE *f);

/* ---- bench_plot.c / bench_svg.c ---- */
/* Writes recall_vs_bytes.svg and qps_vs_recall.svg; *note receives which
 * back end drew them. */
int bench_plots(const bench_run *r, char *note, size_t note_len);
typedef struct bench_series {
    char name[96];
    const double *x, *y;
    size_t n;
    int lines;   /* join the points */
    int color;   /* palette index */
    int dashed;
    int point;   /* point shape index (gnuplot) */
} bench_series;
int bench_svg_chart(const char *path, const char *title, const char *xlabel, const char *ylabel,
                    const bench_series *s, size_t ns, int logx, int logy);

/* ---- bench_check.c ---- */
/* Validate a results.jsonl: every line one flat JSON object with the
 * documented keys, recalls in [0,1]. Prints a summary; 0 if valid. */
int bench_check_jsonl(const char *path, FILE *out);

#endif
