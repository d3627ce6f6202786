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
 *    subject of the benchmark, always train on the full set; QINCo takes a
 *    fixed share of the budget (QINCO_SHARE, split among its jobs) as its
 *    wall-clock training budget. When the full plan does not fit, one common
 *    fraction f of the training set is found (bisection) for all cuttable
 *    jobs still to run; a job whose minimum does not fit what is left is
 *    skipped. Every cut and skip is a note in the report, and the report
 *    lists each job's planned and actual seconds.
 * 4. A reserve (MARGIN of the budget, at least 30 s) is kept for writing the
 *    outputs and for model error.
 * 5. Jobs run in order of priority (bench_method_priority): qinx RQ and the
 *    FAISS PQ and RQ baselines; the IVF pair qinx-ivfrq / faiss-ivfpq;
 *    QINCo; FAISS OPQ, FAISS IVF-RQ; FAISS LSQ. A job reserves time for the
 *    later ones, except FAISS LSQ and jobs needing over HOPELESS of the
 *    budget even when cut: those run only on what is left.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_impl.h"

#define QINCO_SHARE 0.2 /* of the budget, for QINCo training, all its jobs together */
#define MARGIN 0.06
#define N_MIN 10000
#define HOPELESS 0.35

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
    /* re-ranking decodes each candidate: RQ ~4.5 µs, QINCo (network) ~0.7 ms at 15 bytes */
    double per_cand = (is_qinco(m) ? 7e-4 : 4.5e-6) * u * bytes / 15.0;
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
        t = nt * 0.38 * M * u;
        f = nb * 0.0042 * M * u + eval;
    } else if (!strcmp(m, "faiss-lsq")) {
        /* ICM: unary terms ∝ M·d, pairwise ∝ M²; training runs ~12 encodings of each vector */
        double per = 1.9 * pow(M / 8.0, 1.5) * u;
        t = nt * 12 * per;
        f = nb * per + eval;
    } else if (!strcmp(m, "qinx-qinco")) {
        t = 0; /* its own wall-clock budget, see bench_plan_job */
        /* encoding: network passes per beam entry and candidate, ~M^1.7 (GloVe subset:
         * 0.97 s per 1,000 vectors at 8 bytes, 10 s at 32) */
        f = nb * 0.028 * pow(M, 1.7) * u + eval;
    } else if (!strcmp(m, "qinx-ivfrq")) {
        t = coarse + nt * 0.38 * (M - 1) * u;
        f = nb * 0.0042 * M * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "qinx-ivfqinco")) {
        t = coarse;
        f = nb * 0.028 * pow(M - 1, 1.7) * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "faiss-ivfpq")) {
        t = coarse + ntc * 1.2 * pow(M, 0.8) * u * (D->d % bytes ? 1.0 : 0.1); /* OPQ only when M ∤ d */
        f = nb * 0.05 * u + sweep_cost(r, m, bytes, nlist);
    } else if (!strcmp(m, "faiss-ivfrq")) {
        t = coarse + nt * 0.95 * (M - 1) * u;
        f = nb * 0.018 * (M - 1) * u + sweep_cost(r, m, bytes, nlist);
    } else {
        t = nt * 0.5 * M * u;
        f = nb * 0.02 * M * u + eval;
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

/* Seconds job i needs (calibrated) when cuttable jobs train on fraction f. */
static double job_cost(const bench_run *r, size_t i, double f, double qinco_s) {
    const bench_job *j = &r->jobs[i];
    if (j->skip_reason) return 0;
    double fr = 1;
    if (j->cuttable) fr = f > j->f_min ? (f < 1 ? f : 1) : j->f_min;
    return speed(r, j->m->name) * (j->train * fr + j->fixed) + (j->qinco ? qinco_s : 0);
}

/* What job cur must leave for a later job k: its cost at fraction f, unless
 * even its minimum exceeds HOPELESS of the budget, or it is FAISS LSQ (the
 * slowest FAISS method, an extra next to FAISS RQ): such a job only runs if
 * time is left when its turn comes, and does not take time from the jobs
 * before it. */
static double reserve(const bench_run *r, size_t k, double f, double qinco_s) {
    if (!strcmp(r->jobs[k].m->name, "faiss-lsq")) return 0; /* the extra: only what is left */
    double min = job_cost(r, k, 0, qinco_s);
    if (min > HOPELESS * r->cfg->budget_min * 60) return 0;
    return job_cost(r, k, f, qinco_s);
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
    for (size_t i = 0; i < no; i++) {
        const size_t *bl = order[i]->ivf ? c->ivf_bytes : c->bytes;
        size_t nb = order[i]->ivf ? c->nivf_bytes : c->nbytes;
        for (size_t b = 0; b < nb; b++) {
            bench_job *j = &r->jobs[r->njobs++];
            j->m = order[i];
            j->bytes = bl[b];
            bench_plan_cost(r, order[i]->name, bl[b], &j->train, &j->fixed);
            j->qinco = is_qinco(order[i]->name);
            j->cuttable = cuttable(order[i]->name) && r->data->train.n > N_MIN;
            j->f_min = j->cuttable ? (double)N_MIN / r->data->train.n : 1;
            j->planned = j->actual = j->qinco_used_s = NAN;
            if (j->bytes > r->data->d * 4 && !order[i]->ivf)
                j->skip_reason = "more bytes than the raw vector";
            nq += j->qinco && !j->skip_reason;
        }
    }
    r->qinco_jobs = nq;
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

/* Wall-clock seconds QINCo job i may train: its share of the budget, less
 * what the later jobs need — but jobs run in order of priority, so when
 * the later QINCo jobs cannot all fit, this one takes what there is and
 * they are skipped when their turn comes. */
static double qinco_seconds(const bench_run *r, size_t i, double left) {
    double share = QINCO_SHARE * r->cfg->budget_min * 60 / (r->qinco_jobs ? r->qinco_jobs : 1);
    double own = job_cost(r, i, 0, 0), later = 0, later_q = 0;
    for (size_t k = i + 1; k < r->njobs; k++) {
        if (r->jobs[k].qinco) later_q += reserve(r, k, 0, share);
        else later += reserve(r, k, 0, 0);
    }
    double avail = left - own - later;
    double qs = avail - later_q;
    if (qs < 15) qs = avail;
    return qs < share ? qs : share;
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
    double qs = 0;
    if (j->qinco) {
        qs = qinco_seconds(r, i, left);
        if (qs < 15) {
            snprintf(j->why, sizeof j->why,
                     "%.0f s would be left to train QINCo once its encoding and the later methods "
                     "are paid for (at least 15 s needed)",
                     qs > 0 ? qs : 0);
            j->skip_reason = j->why;
            return 0;
        }
        *qinco_minutes = qs / 60;
    }
    /* the fraction f of the training set the cuttable jobs can afford */
    double share = QINCO_SHARE * budget / (r->qinco_jobs ? r->qinco_jobs : 1);
    double f = 1;
    double need = 0;
    for (size_t k = i; k < r->njobs; k++) need += k == i ? job_cost(r, k, 1, qs) : reserve(r, k, 1, share);
    if (need > left) {
        double lo = 0, hi = 1;
        for (int it = 0; it < 40; it++) {
            double mid = (lo + hi) / 2, s = 0;
            for (size_t k = i; k < r->njobs; k++)
                s += k == i ? job_cost(r, k, mid, qs) : reserve(r, k, mid, share);
            if (s > left) hi = mid;
            else lo = mid;
        }
        f = lo;
    }
    double own;
    if (j->cuttable && f < 1) {
        double fr = f > j->f_min ? f : j->f_min;
        *ntrain = (size_t)(fr * D->train.n);
        if (*ntrain < N_MIN) *ntrain = N_MIN;
        own = job_cost(r, i, fr, qs);
    } else {
        own = job_cost(r, i, 1, qs);
    }
    if (own > left + margin) {
        snprintf(j->why, sizeof j->why, "estimated %.0f s > %.0f s left of the time budget", own,
                 left + margin > 0 ? left + margin : 0);
        j->skip_reason = j->why;
        return 0;
    }
    /* a big job (over HOPELESS of the budget) may not starve the later ones */
    double later = 0;
    for (size_t k = i + 1; k < r->njobs; k++) later += reserve(r, k, f, share);
    if (own > HOPELESS * budget && own > left - later) {
        snprintf(j->why, sizeof j->why,
                 "estimated %.0f s (over %.0f%% of the budget) would take the time of the %.0f s "
                 "the later methods need",
                 own, HOPELESS * 100, later);
        j->skip_reason = j->why;
        return 0;
    }
    j->planned = own;
    j->ntrain = *ntrain;
    j->qinco_minutes = *qinco_minutes;
    if (*ntrain < D->train.n)
        bench_note(r, "%s at %zu bytes trained on %zu of the %zu training vectors (evenly spaced): the "
                      "whole set would not fit the time budget (estimated %.0f s, %.0f s left for %zu jobs)",
                   j->m->name, j->bytes, *ntrain, D->train.n, job_cost(r, i, 1, qs),
                   left + margin, r->njobs - i);
    return 0;
}

void bench_plan_done(bench_run *r, size_t i, double seconds) {
    bench_job *j = &r->jobs[i];
    j->actual = seconds;
    if (j->qinco) return; /* its training time is set by its budget, not by the model */
    double fr = j->ntrain && r->data->train.n ? (double)j->ntrain / r->data->train.n : 1;
    int lib = !strncmp(j->m->name, "faiss", 5);
    r->plan_pred += j->train * fr + j->fixed;
    r->plan_act += seconds;
    r->plan_pred_lib[lib] += j->train * fr + j->fixed;
    r->plan_act_lib[lib] += seconds;
}

const float *bench_train_subset(bench_run *r, size_t n) {
    const bench_data *D = r->data;
    if (n >= D->train.n) return D->train.data;
    if (r->sub_n != n) {
        float *p = realloc(r->sub, sizeof(float) * n * D->d);
        if (!p) return NULL;
        r->sub = p;
        for (size_t i = 0; i < n; i++)
            memcpy(p + i * D->d, D->train.data + (size_t)((double)i * D->train.n / n) * D->d,
                   sizeof(float) * D->d);
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
        double t = s * (j->train * fr + j->fixed) + qm * 60;
        r->sim_elapsed += t;
        bench_plan_done(r, i, j->qinco ? t : t);
        fprintf(f, "%-14s %4zu  train %6zu  %5.0f s  (at %5.1f min)%s\n", j->m->name, j->bytes, nt, t,
                r->sim_elapsed / 60, j->qinco ? "  incl. QINCo training budget" : "");
    }
    fprintf(f, "simulated total %.1f min of a %g-minute budget\n", r->sim_elapsed / 60, r->cfg->budget_min);
}
