/* bench/bench_qinco_speed.c — `qinx bench qinco-speed`: the QINCo trainer's
 * throughput and the encoder's speed, on one file, in one run.
 *
 * Trains a qinx RQ on the first --n vectors (timed apart, not part of the
 * figures), then QINCo from that RQ for --epochs epochs with --verbose
 * lines, and reports per epoch: seconds, achieved GFLOP/s (the trainer's own
 * count of matrix FLOPs over wall time) and its ratio to the 1024³ sgemm
 * rate the trainer measured at the start of the same run, cores used. Then
 * it encodes --nenc vectors that follow the training ones in the file (never
 * trained on) with the default encoder (or --beam/--A), --runs times, and
 * prints the median vectors/s, and their MSE under QINCo and under its RQ.
 *
 * Decisions:
 * 1. Ratios within one run only: the machine is shared, so an absolute
 *    GFLOP/s means little; the sgemm rate is taken by the trainer with the
 *    same thread count just before the epochs.
 * 2. The RQ is trained first and handed over with qx_qinco_from_rq, so the
 *    figures are those of the network's epochs (the RQ is another module).
 * 3. valid_fraction 0 and fallback 0: nothing in this command depends on
 *    the check, and a hold-out would only shrink the training set.
 */
#include <cblas.h>
#include <getopt.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_impl.h"
#include "qinx/qinco.h"
#include "qinx/rq.h"
#include "qinx/vecfile.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qinx bench qinco-speed --base FILE [options]\n"
            "QINCo training throughput (GFLOP/s of each epoch against this run's sgemm rate)\n"
            "and encoding speed (vectors/s) on the vectors after the training ones.\n\n"
            "  --base FILE     vectors (.fvecs/.bvecs)\n"
            "  --n N           training vectors, the first N (default 10000)\n"
            "  --nenc N        vectors encoded after training, the next N (default 5000;\n"
            "                  fewer if the file ends)\n"
            "  --bytes M       code bytes (default 8)\n"
            "  --epochs E      epochs (default 2; with --train-minutes: until the budget)\n"
            "  --reencode K    qinco reencode option (default: the library's)\n"
            "  --train-beam B  beam while training (default: the library's)\n"
            "  --beam B --A A  encoder of the timed encoding (default: the library's)\n"
            "  --qinco-L N --qinco-h N  network (default: the library's)\n"
            "  --batch N       Adam batch (default: the library's)\n"
            "  --runs R        timed encodings, median reported (default 3)\n"
            "  --train-minutes M  qinco budget (default none: --epochs epochs)\n"
            "  --threads T     threads (default all cores)\n"
            "  --rq-cache FILE read the RQ from FILE if it exists, else train it and write\n"
            "                  it there (a blob; same --base, --n, --bytes expected)\n");
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A 1024^3 sgemm, best of 5: GFLOP per wall second and per CPU second of
 * this process (on a shared machine the second says what the cores we got
 * deliver, the first what we got of them). */
static void sgemm_probe(double *wall, double *cpu) {
    const int n = 1024;
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
    *wall = *cpu = 0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) a[i] = (float)(i % 1000) * 1e-3f, b[i] = (float)(i % 997) * 1e-3f;
        for (int r = 0; r < 5; r++) {
            double t0 = bench_now(), c0 = cpu_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double dt = bench_now() - t0, dc = cpu_now() - c0, f = 2.0 * n * n * (double)n * 1e-9;
            if (dt > 0 && f / dt > *wall) *wall = f / dt;
            if (dc > 0 && f / dc > *cpu) *cpu = f / dc;
        }
    }
    free(a);
    free(b);
    free(c);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The RQ blob in path, or *out = NULL if there is no such file. */
static int read_rq(const char *path, qx_quantizer **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t *buf = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    int rc = len > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len)) &&
                     fread(buf, 1, (size_t)len, f) == (size_t)len
                 ? qx_quantizer_deserialize(buf, (size_t)len, out)
                 : QX_EIO;
    free(buf);
    fclose(f);
    return rc;
}

static int write_rq(const char *path, const qx_quantizer *rq) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = qx_quantizer_serialize(rq, &buf, &len);
    if (rc) return rc;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) rc = QX_EIO;
    if (f && fclose(f) != 0) rc = QX_EIO;
    qx_free(buf);
    return rc;
}

int qx_bench_qinco_speed(int argc, char **argv) {
    const char *base = NULL, *rq_cache = NULL;
    long n = 10000, nenc = 5000, M = 8, epochs = -1, reencode = -1, tbeam = -1, beam = -1, A = -1;
    long L = -1, h = -1, batch = -1, runs = 3, threads = 0;
    double minutes = 0;
    static const struct option opts[] = {
        {"base", 1, 0, 'b'}, {"n", 1, 0, 'n'},       {"nenc", 1, 0, 'e'},   {"bytes", 1, 0, 'M'},
        {"epochs", 1, 0, 'E'}, {"reencode", 1, 0, 'r'}, {"train-beam", 1, 0, 't'}, {"beam", 1, 0, 'B'},
        {"A", 1, 0, 'A'},    {"qinco-L", 1, 0, 'L'}, {"qinco-h", 1, 0, 'H'}, {"batch", 1, 0, 'c'},
        {"runs", 1, 0, 'R'}, {"threads", 1, 0, 'j'}, {"help", 0, 0, 'h'},   {"rq-cache", 1, 0, 'C'},
        {"train-minutes", 1, 0, 'T'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long *dst = NULL;
        switch (c) {
        case 'b': base = optarg; continue;
        case 'C': rq_cache = optarg; continue;
        case 'T': {
            char *end;
            minutes = strtod(optarg, &end);
            if (*end || !(minutes >= 0 && minutes <= 1e4)) {
                fprintf(stderr, "qinx bench qinco-speed: bad --train-minutes '%s'\n", optarg);
                return 2;
            }
            continue;
        }
        case 'n': dst = &n; break;
        case 'e': dst = &nenc; break;
        case 'M': dst = &M; break;
        case 'E': dst = &epochs; break;
        case 'r': dst = &reencode; break;
        case 't': dst = &tbeam; break;
        case 'B': dst = &beam; break;
        case 'A': dst = &A; break;
        case 'L': dst = &L; break;
        case 'H': dst = &h; break;
        case 'c': dst = &batch; break;
        case 'R': dst = &runs; break;
        case 'j': dst = &threads; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        char *end;
        *dst = strtol(optarg, &end, 10);
        if (*end || *dst < 0 || *dst > (1L << 40)) {
            fprintf(stderr, "qinx bench qinco-speed: bad number '%s'\n", optarg);
            return 2;
        }
    }
    if (!base || n < 256 || runs < 1 || M < 1) {
        usage(stderr);
        return 2;
    }
    bench_set_threads((int)threads);
    qx_matrix x;
    int rc = qx_vecs_read(base, (size_t)(n + nenc), &x);
    if (rc) return bench_qx_fail("reading the base", rc);
    if (x.n < (size_t)n + 1) {
        fprintf(stderr, "qinx bench qinco-speed: %s has %zu vectors, need more than --n %ld\n", base,
                x.n, n);
        qx_matrix_free(&x);
        return 2;
    }
    size_t ne = x.n - (size_t)n, d = x.d;
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = (size_t)M;
    ro.threads = (int)threads;
    qx_quantizer *rq = NULL, *q = NULL;
    uint8_t *codes = NULL;
    double t0 = bench_now();
    if (rq_cache && (rc = read_rq(rq_cache, &rq)) != 0) goto fail;
    if (rq && (qx_quantizer_dim(rq) != d || qx_quantizer_steps(rq) != (size_t)M)) {
        fprintf(stderr, "qinx bench qinco-speed: %s: RQ of another d or M\n", rq_cache);
        rc = QX_EINVAL;
        goto fail;
    }
    if (rq) {
        printf("rq: read from %s\n", rq_cache);
    } else {
        rc = qx_rq_new(&rq, d, &ro);
        if (rc == 0) rc = qx_quantizer_train(rq, x.data, (size_t)n);
        if (rc == 0 && rq_cache) rc = write_rq(rq_cache, rq);
        if (rc) goto fail;
        printf("rq: %ld vectors, M %ld, trained in %.1f s\n", n, M, bench_now() - t0);
    }
    qx_qinco_opts qo;
    qx_qinco_opts_init(&qo);
    qo.M = (size_t)M;
    /* a budget without --epochs trains until the budget (the library's cap) */
    qo.epochs = epochs >= 0 ? (int)epochs : minutes > 0 ? 100000 : 2;
    qo.threads = (int)threads;
    qo.valid_fraction = 0;
    qo.fallback = 0;
    qo.verbose = 1;
    qo.train_minutes = minutes;
    if (reencode >= 0) qo.reencode = (int)reencode;
    if (tbeam >= 0) qo.train_beam = (int)tbeam;
    if (beam >= 0) qo.beam = (int)beam;
    if (A >= 0) qo.A = (int)A;
    if (L >= 0) qo.L = (int)L;
    if (h >= 0) qo.h = (int)h;
    if (batch >= 0) qo.batch = (int)batch;
    if ((rc = qx_qinco_from_rq(&q, rq, &qo)) != 0) goto fail;
    t0 = bench_now();
    if ((rc = qx_quantizer_train(q, x.data, (size_t)n)) != 0) goto fail;
    double ttrain = bench_now() - t0;
    qx_qinco_stats st;
    qx_qinco_get_stats(q, &st);
    printf("qinco: M %ld L %d h %d A %d beam %d train_beam %d reencode %d batch %d, %zu epochs "
           "in %.1f s (whole train call)\n", M, qo.L, qo.h, qo.A, qo.beam, qo.train_beam,
           qo.reencode, qo.batch, st.epochs, ttrain);
    printf("sgemm 1024^3 (this run, %ld threads; 0 = all): %.1f GFLOP/s\n", threads, st.sgemm_gflops);
    for (size_t e = 0; e < st.epochs; e++) { /* seconds[] counts from the train call's start */
        double sec = st.seconds[e] - (e ? st.seconds[e - 1] : 0);
        double g = st.epoch_gflops ? st.epoch_gflops[e] : 0;
        printf("epoch %zu: %.2f s%s  %.2f GFLOP/s  %.1f%% of sgemm\n", e + 1, sec,
               e ? "" : " (with the start of the call)", g,
               st.sgemm_gflops > 0 ? 100 * g / st.sgemm_gflops : 0);
    }
    printf("epochs overall: %.2f GFLOP/s = %.1f%% of sgemm, %.2f cores\n", st.train_gflops,
           st.sgemm_gflops > 0 ? 100 * st.train_gflops / st.sgemm_gflops : 0, st.cores_used);
    double sw, sc;
    sgemm_probe(&sw, &sc);
    double ec = st.cores_used > 0 ? st.train_gflops / st.cores_used : 0;
    printf("per CPU-second (load-independent view): epochs %.2f GFLOP/CPU-s, sgemm %.2f "
           "GFLOP/CPU-s (after training: %.1f GFLOP/s wall): %.1f%%\n", ec, sc, sw,
           sc > 0 ? 100 * ec / sc : 0);
    if (ne > 0) {
        codes = malloc(ne * (size_t)M);
        double *sec = calloc((size_t)runs, sizeof(double));
        if (!codes || !sec) {
            free(sec);
            rc = QX_ENOMEM;
            goto fail;
        }
        for (long r = 0; r < runs && rc == 0; r++) {
            double t1 = bench_now();
            rc = qx_quantizer_encode(q, x.data + (size_t)n * d, ne, codes);
            sec[r] = bench_now() - t1;
        }
        if (rc == 0) {
            qsort(sec, (size_t)runs, sizeof(double), cmp_double);
            double med = sec[runs / 2];
            qx_qinco_opts cur;
            qx_qinco_get_opts(q, &cur);
            printf("encode: %zu held-out vectors, beam %d A %d: median %.3f s = %.0f vectors/s "
                   "(runs %ld, min %.3f s max %.3f s)\n", ne, cur.beam, cur.A, med,
                   (double)ne / med, runs, sec[0], sec[runs - 1]);
            double mq, mr;
            rc = qx_quantizer_mse(q, x.data + (size_t)n * d, ne, 0, &mq);
            if (rc == 0) rc = qx_quantizer_mse(rq, x.data + (size_t)n * d, ne, 0, &mr);
            if (rc == 0)
                printf("held-out MSE (the %zu encoded vectors): qinco %.6g, its RQ %.6g: %.4fx\n",
                       ne, mq, mr, mr > 0 ? mq / mr : 0);
        }
        free(sec);
        if (rc) goto fail;
    }
    free(codes);
    qx_quantizer_free(q);
    qx_quantizer_free(rq);
    qx_matrix_free(&x);
    return 0;
fail:
    free(codes);
    qx_quantizer_free(q);
    qx_quantizer_free(rq);
    qx_matrix_free(&x);
    return bench_qx_fail("qinco-speed", rc);
}
