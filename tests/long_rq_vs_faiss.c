/* tests/long_rq_vs_faiss.c — qinx RQ against FAISS's ResidualQuantizer
 * (faiss_index_factory "RQ{M}x8" through the FAISS C API, beam 5 via
 * qx_faiss_set_beam) on ANN_SIFT10K base vectors (train and encode the 10k
 * base): training MSE, training time and encoding throughput, median of
 * QX_RUNS runs (default 3). Label "long"; prints a table and reports (exit 1)
 * when the MSE target (qinx ≤ FAISS) is missed. Timing targets are printed,
 * not enforced (they depend on the machine's load).
 * QX_RQ_VARIANTS=1 also measures refinement / re-seeding switched off;
 * QX_RQ_ONLY_M=8 (or 16) runs one code size; QX_RQ_SKIP_FAISS=1 measures
 * qinx only (the FAISS lines are then meaningless). OMP_WAIT_POLICY=PASSIVE is
 * advisable on a shared machine (FAISS and qinx alike alternate OpenMP and
 * OpenBLAS threads; spinning OpenMP workers otherwise eat the cores).
 * Run: nice build/tests/long_rq_vs_faiss */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "internal.h"
#include "qinx/faiss_ext.h"
#include "qinx/rq.h"
#include "testutil.h"

static float *read_fvecs(const char *path, size_t *n, size_t *d) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int32_t dim;
    if (fread(&dim, 4, 1, f) != 1 || dim <= 0) return fclose(f), NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t rec = 4 + (size_t)dim * 4, cnt = (size_t)bytes / rec;
    float *x = malloc(cnt * dim * sizeof(float));
    for (size_t i = 0; i < cnt; i++) {
        if (fread(&dim, 4, 1, f) != 1 || fread(x + i * dim, 4, dim, f) != (size_t)dim) {
            free(x);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    *n = cnt;
    *d = (size_t)dim;
    return x;
}

static double mse_of(const float *x, const float *y, size_t n, size_t d) {
    double s = 0;
    for (size_t i = 0; i < n * d; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return s / (double)n;
}

typedef struct result {
    double mse, train_s, encode_s;
} result;

static int faiss_run(const float *x, size_t n, size_t d, size_t M, result *r) {
    char desc[32];
    snprintf(desc, sizeof desc, "RQ%zux8", M);
    FaissIndex *idx = NULL;
    if (faiss_index_factory(&idx, (int)d, desc, METRIC_L2)) return -1;
    if (qx_faiss_set_beam(idx, 5)) return -1;
    uint8_t *codes = malloc(n * M);
    float *rec = malloc(n * d * sizeof(float));
    double t = qx__now();
    if (faiss_Index_train(idx, (idx_t)n, x)) return -1;
    r->train_s = qx__now() - t;
    t = qx__now();
    if (faiss_Index_sa_encode(idx, (idx_t)n, x, codes)) return -1;
    r->encode_s = qx__now() - t;
    faiss_Index_sa_decode(idx, (idx_t)n, codes, rec);
    r->mse = mse_of(x, rec, n, d);
    faiss_Index_free(idx);
    free(codes);
    free(rec);
    return 0;
}

static int qinx_run(const float *x, size_t n, size_t d, const qx_rq_opts *o, result *r,
                    int print_steps) {
    qx_quantizer *q = NULL;
    if (qx_rq_new(&q, d, o)) return -1;
    uint8_t *codes = malloc(n * o->M);
    float *rec = malloc(n * d * sizeof(float));
    double t = qx__now();
    if (qx_quantizer_train(q, x, n)) {
        fprintf(stderr, "train: %s\n", qx_last_error());
        return -1;
    }
    r->train_s = qx__now() - t;
    t = qx__now();
    if (qx_quantizer_encode(q, x, n, codes)) return -1;
    r->encode_s = qx__now() - t;
    qx_quantizer_decode(q, codes, n, 0, rec);
    r->mse = mse_of(x, rec, n, d);
    if (print_steps) {
        const double *sm = qx_rq_step_mse(q);
        const uint32_t *u = qx_rq_step_used(q);
        printf("  qinx M=%zu per step (mse/used):", o->M);
        for (size_t m = 0; m < o->M; m++) printf(" %.0f/%u", sm[m], u[m]);
        printf("\n");
    }
    qx_quantizer_free(q);
    free(codes);
    free(rec);
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static result median(result *rs, int k) {
    double a[16], b[16], c[16];
    for (int i = 0; i < k; i++) a[i] = rs[i].mse, b[i] = rs[i].train_s, c[i] = rs[i].encode_s;
    qsort(a, k, sizeof(double), cmp_d);
    qsort(b, k, sizeof(double), cmp_d);
    qsort(c, k, sizeof(double), cmp_d);
    return (result){a[k / 2], b[k / 2], c[k / 2]};
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *path = tu_data_path("siftsmall/siftsmall_base.fvecs");
    if (!path) tu_skip_all("siftsmall not found (QX_DATA_DIR)");
    size_t n = 0, d = 0;
    float *x = read_fvecs(path, &n, &d);
    if (!x) tu_skip_all("cannot read siftsmall_base.fvecs");
    int runs = getenv("QX_RUNS") ? atoi(getenv("QX_RUNS")) : 3;
    if (runs < 1 || runs > 15) runs = 3;
    int variants = getenv("QX_RQ_VARIANTS") && atoi(getenv("QX_RQ_VARIANTS"));
    int missed = 0;
    printf("SIFT10K base n=%zu d=%zu, beam 5, median of %d runs, %d threads\n", n, d, runs,
           qx__num_threads());
    printf("%-34s %12s %10s %14s\n", "method", "MSE", "train s", "encode vec/s");
    static const size_t Ms[] = {8, 16};
    for (int mi = 0; mi < 2; mi++) {
        size_t M = Ms[mi];
        if (getenv("QX_RQ_ONLY_M") && (size_t)atoi(getenv("QX_RQ_ONLY_M")) != M) continue;
        result fr[16], qr[16];
        int skip_faiss = getenv("QX_RQ_SKIP_FAISS") && atoi(getenv("QX_RQ_SKIP_FAISS"));
        for (int i = 0; i < runs; i++)
            if (skip_faiss) fr[i] = (result){1, 1, 1};
            else if (faiss_run(x, n, d, M, &fr[i])) {
                fprintf(stderr, "FAISS RQ%zux8 failed: %s %s\n", M, qx_last_error(),
                        faiss_get_last_error());
                return 1;
            }
        qx_rq_opts o;
        qx_rq_opts_init(&o);
        o.M = M;
        for (int i = 0; i < runs; i++)
            if (qinx_run(x, n, d, &o, &qr[i], i == 0)) return 1;
        result f = median(fr, runs), q = median(qr, runs);
        printf("%-34s %12.1f %10.2f %14.0f\n", M == 8 ? "FAISS RQ8x8" : "FAISS RQ16x8", f.mse,
               f.train_s, n / f.encode_s);
        printf("%-34s %12.1f %10.2f %14.0f\n", M == 8 ? "qinx RQ M=8" : "qinx RQ M=16", q.mse,
               q.train_s, n / q.encode_s);
        printf("  targets: MSE %s (%.3fx), encode %s (%.2fx FAISS, want >= 2), train %s "
               "(%.2fx FAISS time, want <= 1)\n",
               q.mse <= f.mse ? "met" : "MISSED", q.mse / f.mse,
               f.encode_s / q.encode_s >= 2 ? "met" : "MISSED", f.encode_s / q.encode_s,
               q.train_s <= f.train_s ? "met" : "MISSED", q.train_s / f.train_s);
        if (q.mse > f.mse) missed = 1;
        if (variants) {
            static const char *names[] = {"  qinx no refinement", "  qinx no re-seeding",
                                          "  qinx no refine, no re-seed", "  qinx greedy train"};
            for (int v = 0; v < 4; v++) {
                qx_rq_opts ov = o;
                if (v == 0 || v == 2) ov.refine_iters = 0;
                if (v == 1 || v == 2) ov.reseed_dead = 0;
                if (v == 3) ov.train_beam = 1;
                result vr[16];
                for (int i = 0; i < runs; i++)
                    if (qinx_run(x, n, d, &ov, &vr[i], 0)) return 1;
                result m = median(vr, runs);
                printf("%-34s %12.1f %10.2f %14.0f\n", names[v], m.mse, m.train_s,
                       n / m.encode_s);
            }
        }
    }
    free(x);
    return missed;
}
