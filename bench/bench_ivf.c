/* bench/bench_ivf.c — QPS versus recall of IVF methods: train, add, then a
 * sweep of nprobe (× rerank for qinx), each point timed single-threaded as
 * the best of --runs runs over the whole query set; Pareto frontiers.
 *
 * Decisions:
 * 1. Single-threaded means every pool: qinx (params.threads = 1 and
 *    QX_THREADS=1), FAISS's OpenMP and OpenBLAS are all set to 1 thread for
 *    the timed searches, and back to --threads for training and adding.
 * 2. The whole query batch goes in one call for both libraries, as in
 *    `qinx search`: per-call overheads are amortised the same way.
 * 3. Best of R runs (default 3): the machine is shared, and the minimum is
 *    the least noisy estimate of what the code costs. A point whose first run
 *    takes more than BENCH_SLOW_POINT_S is timed once (FAISS IVF-RQ at
 *    nprobe 128 on GloVe: ~0.1 s per query), and every sweep stops when the
 *    run's time budget is spent.
 * 4. A series is (method, bytes, re-ranking on or off): qinx with and
 *    without re-ranking are two curves. Its Pareto frontier keeps the points
 *    that no other point of the series beats on both QPS and 10-recall@10. QPS at a target recall interpolates log(QPS) linearly in recall
 *    between the two frontier points around the target.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_impl.h"

size_t bench_nlist(const bench_run *r) {
    size_t cap = r->data->train.n / 39;
    size_t nl = r->cfg->nlist < cap ? r->cfg->nlist : cap;
    return nl ? nl : 1;
}

int bench_eval_ivf(bench_run *r, const char *method, size_t bytes, bench_ivfimpl *v) {
    const bench_cfg *cfg = r->cfg;
    bench_data *D = r->data;
    size_t nq = D->queries.n, k = cfg->k_ivf < D->base.n ? cfg->k_ivf : D->base.n;
    size_t nlist = bench_nlist(r);
    bench_set_threads(cfg->threads);
    bench_log(r, "%s %zuB (%s): training on %zu vectors ...", method, bytes, v->spec, r->train_n);
    double t = bench_now();
    int rc = v->train(v, r->train_x, r->train_n);
    if (rc) return rc;
    double train_s = bench_now() - t + v->extra_train_s;
    bench_log(r, "%s %zuB: trained in %.1fs; adding %zu vectors ...", method, bytes, train_s, D->base.n);
    t = bench_now();
    if ((rc = v->add(v, D->base.data, D->base.n))) return rc;
    double add_s = bench_now() - t;
    if (v->code_size != bytes)
        bench_note(r, "%s at %zu bytes stores %zu bytes per vector (%s)", method, bytes, v->code_size,
                   v->spec);

    float *dist = malloc(sizeof(float) * nq * k);
    int64_t *ids = malloc(sizeof(int64_t) * nq * k);
    if (!dist || !ids) {
        free(dist);
        free(ids);
        return QX_ENOMEM;
    }
    bench_set_threads(1);
    size_t nrr = v->supports_rerank ? cfg->nrerank : 1;
    int stopped = 0;
    /* a sweep may take BENCH_SWEEP_SHARE of the budget (at least a minute): QINCo
     * re-ranking decodes every candidate through the network, ~0.7 ms each */
    double sweep_t0 = bench_now(), cap = BENCH_SWEEP_SHARE * cfg->budget_min * 60;
    if (cap < 60) cap = 60;
    for (size_t ri = 0; ri < nrr && rc == 0 && !stopped; ri++) {
        size_t rerank = v->supports_rerank ? cfg->rerank[ri] : 0;
        if (rerank && rerank < k) continue;
        for (size_t pi = 0; pi < cfg->nnprobe && rc == 0; pi++) {
            size_t nprobe = cfg->nprobe[pi];
            if (nprobe > nlist) break;
            /* the whole budget is spent: stop the sweep rather than overrun */
            if (bench_now() - sweep_t0 > cap) {
                bench_note(r, "%s %zuB: nprobe sweep stopped at nprobe=%zu rerank=%zu after %.0f s "
                              "(a sweep may take %.0f%% of the time budget)",
                           method, bytes, nprobe, rerank, bench_now() - sweep_t0, BENCH_SWEEP_SHARE * 100);
                stopped = 1;
                break;
            }
            if (bench_minutes_left(r) < 0) {
                bench_note(r, "%s %zuB: nprobe sweep stopped at nprobe=%zu rerank=%zu (time budget)",
                           method, bytes, nprobe, rerank);
                stopped = 1;
                break;
            }
            double best = INFINITY, best_cpu = INFINITY;
            for (size_t run = 0; run < cfg->runs && rc == 0; run++) {
                struct timespec c0, c1;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
                t = bench_now();
                rc = v->search(v, D->queries.data, nq, k, nprobe, rerank, dist, ids);
                double dt = bench_now() - t;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
                double dc = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
                if (dt < best) best = dt;
                if (dc < best_cpu) best_cpu = dc;
                /* a point of seconds is not noise-dominated: one run is enough */
                if (dt > BENCH_SLOW_POINT_S) break;
            }
            if (rc) break;
            bench_recall rec;
            bench_recall_compute(ids, k, D->gt, D->gt_k, nq, &rec);
            bench_result res;
            bench_result_init(&res, method, v->code_size);
            snprintf(res.spec, sizeof res.spec, "%s", v->spec);
            res.ivf = 1;
            res.r1 = rec.r1;
            res.r10 = rec.r10;
            res.r100 = rec.r100;
            res.r10at10 = rec.r10at10;
            res.qps = nq / (best > 0 ? best : 1e-9);
            res.nprobe = (long)nprobe;
            res.rerank = (long)rerank;
            res.train_s = train_s;
            res.encode_s = add_s;
            res.index_bytes = (double)D->base.n * (v->code_size + sizeof(int64_t));
            res.threads = 1;
            res.n_train = r->train_n;
            /* CPU-QPS: queries per second of process CPU time, which a
             * shared machine's waiting for a core does not inflate */
            bench_log(r, "%s %zuB nprobe %4zu rerank %4zu: R@1 %.4f  10-R@10 %.4f  QPS %.0f  CPU-QPS %.0f",
                      method, bytes, nprobe, rerank, res.r1, res.r10at10, res.qps,
                      nq / (best_cpu > 0 ? best_cpu : 1e-9));
            rc = bench_add_result(r, &res);
        }
    }
    bench_set_threads(cfg->threads);
    free(dist);
    free(ids);
    return rc;
}

int bench_same_series(const bench_result *a, const bench_result *b) {
    return a->ivf && b->ivf && a->bytes == b->bytes && (a->rerank > 0) == (b->rerank > 0) &&
           !strcmp(a->method, b->method);
}

void bench_series_name(const bench_result *p, char *buf, size_t len) {
    if (p->rerank > 0) snprintf(buf, len, "%s+rerank%ld", p->method, p->rerank);
    else snprintf(buf, len, "%s", p->method);
}

void bench_mark_pareto(bench_run *r) {
    for (size_t i = 0; i < r->nres; i++) {
        bench_result *p = &r->res[i];
        if (!p->ivf) continue;
        p->pareto = 1;
        for (size_t j = 0; j < r->nres && p->pareto; j++) {
            const bench_result *q = &r->res[j];
            if (j == i || !bench_same_series(p, q)) continue;
            if (q->r10at10 >= p->r10at10 && q->qps >= p->qps &&
                (q->r10at10 > p->r10at10 || q->qps > p->qps))
                p->pareto = 0;
        }
    }
}

double bench_qps_at(const bench_run *r, const bench_result *series, double target) {
    /* below: frontier point with the highest recall < target;
     * above: frontier point with the lowest recall >= target */
    const bench_result *below = NULL, *above = NULL;
    for (size_t i = 0; i < r->nres; i++) {
        const bench_result *p = &r->res[i];
        if (!p->pareto || !bench_same_series(p, series)) continue;
        if (p->r10at10 < target) {
            if (!below || p->r10at10 > below->r10at10) below = p;
        } else if (!above || p->r10at10 < above->r10at10) {
            above = p;
        }
    }
    if (!above) return NAN;
    if (!below || above->r10at10 == below->r10at10) return above->qps;
    double f = (target - below->r10at10) / (above->r10at10 - below->r10at10);
    return exp(log(below->qps) + f * (log(above->qps) - log(below->qps)));
}
