/* bench/bench_gauss.c — the Gaussian reference line of a bench report: for
 * each code size, the smallest MSE a code of that many bits reaches on a
 * Gaussian source with the base's covariance (qx_gauss_rd, qinx/eval.h), and
 * every method's MSE relative to it.
 *
 * Why: "0.85x the RQ's MSE" means different things on different data. On
 * siftsmall qinx RQ 8 B is at half the bound (SIFT's clusters are what the
 * codebooks learn, and a nonlinear code finds more of them); on GloVe-100 it
 * is already at the bound, so everything left to gain is non-Gaussian
 * structure, which that data has little of. The reference is computed on the
 * base (what the MSE column measures), in seconds: one covariance pass and
 * one d x d eigenproblem.
 */
#include <math.h>
#include <stdio.h>

#include "bench_impl.h"

void bench_gauss_reference(bench_run *r) {
    const bench_cfg *c = r->cfg;
    const bench_data *D = r->data;
    double bits[BENCH_MAX_LIST];
    for (size_t i = 0; i < BENCH_MAX_LIST; i++) r->gauss_rd[i] = NAN;
    r->variance = NAN;
    for (size_t i = 0; i < c->nbytes; i++) bits[i] = 8.0 * (double)c->bytes[i];
    double t = bench_now();
    int rc = qx_gauss_rd(D->base.data, D->base.n, D->d, bits, c->nbytes, r->gauss_rd, &r->variance);
    if (rc) { /* qx_gauss_rd writes nothing on failure: the NaNs above stay */
        bench_note(r, "no Gaussian reference: %s", qx_last_error());
        return;
    }
    bench_log(r, "Gaussian distortion-rate bound of the base computed in %.1f s", bench_now() - t);
}

void bench_print_gauss(const bench_run *r, FILE *f, int md) {
    const bench_cfg *c = r->cfg;
    if (c->nbytes == 0 || isnan(r->gauss_rd[0])) return;
    if (md)
        fprintf(f, "**Gaussian reference.** A Gaussian source with this base's covariance (total "
                   "variance %.5g) cannot be coded with an MSE below the bound in this table "
                   "(distortion-rate function, reverse water-filling); real data can, by the "
                   "structure beyond its covariance (clusters) that a quantizer finds. Each "
                   "method's MSE / bound:\n\n| bytes | bound | of the variance | MSE / bound |\n"
                   "|--:|--:|--:|---|\n",
                r->variance);
    else
        fprintf(f, "Gaussian distortion-rate bound of the base (total variance %.5g):\n", r->variance);
    for (size_t b = 0; b < c->nbytes; b++) {
        fprintf(f, md ? "| %zu | %.5g | %.1f %% |" : "  %2zu B: %.5g (%.1f %% of the variance)",
                c->bytes[b], r->gauss_rd[b], 100 * r->gauss_rd[b] / r->variance);
        int n = 0;
        for (size_t i = 0; i < r->nres; i++) {
            const bench_result *p = &r->res[i];
            if (p->ivf || p->bytes != c->bytes[b] || isnan(p->mse)) continue;
            fprintf(f, "%s%s %.3f", n ? ", " : md ? " " : "; MSE / bound: ", p->method,
                    p->mse / r->gauss_rd[b]);
            n++;
        }
        fprintf(f, md ? " |\n" : "\n");
    }
    if (md) fprintf(f, "\n");
}
