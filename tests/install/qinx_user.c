/* tests/install/qinx_user.c — a program written as a new user would, against
 * the installed library only (<qinx/qinx.h>, built by tests/test_install.sh
 * with `pkg-config --cflags --libs qinx`): for an RQ index and a QINCo index
 * it creates, trains, fills, saves, loads and searches, and checks the loaded
 * index answers as the saved one did and finds most true neighbours
 * (brute force). Usage: qinx_user DIR. Exit 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qinx/qinx.h>

enum { D = 16, N = 3000, NQ = 50, K = 10 };

static int fail(const char *what, int rc) {
    fprintf(stderr, "qinx_user: %s: %s (%s)\n", what, qx_last_error(), qx_strerror(rc));
    return 1;
}

/* clustered data: 40 centres, unit spread */
static void make_data(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    float centres[40 * D];
    for (int i = 0; i < 40 * D; i++) centres[i] = (float)(4.0 * qx_rng_normal(&s));
    for (size_t i = 0; i < n; i++) {
        size_t c = qx_rng_next(&s) % 40;
        for (int j = 0; j < D; j++) x[i * D + j] = centres[c * D + j] + (float)qx_rng_normal(&s);
    }
}

static int run(const char *dir, const char *kind, const float *x, const float *q) {
    qx_quantizer *quant = NULL;
    int rc;
    if (!strcmp(kind, "rq")) {
        qx_rq_opts o;
        qx_rq_opts_init(&o);
        o.M = 4;
        o.threads = 1;
        rc = qx_rq_new(&quant, D, &o);
    } else {
        qx_qinco_opts o;
        qx_qinco_opts_init(&o);
        o.M = 4;
        o.h = 16;
        o.epochs = 1;
        o.threads = 1;
        rc = qx_qinco_new(&quant, D, &o);
    }
    if (rc) return fail("new quantizer", rc);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 16;
    qx_ivf *ivf = NULL;
    if ((rc = qx_ivf_new(&ivf, D, quant, &io))) return fail("qx_ivf_new", rc);
    int64_t *ids = malloc(sizeof(int64_t) * N);
    for (size_t i = 0; i < N; i++) ids[i] = (int64_t)i;
    if ((rc = qx_ivf_train(ivf, x, N)) || (rc = qx_ivf_add(ivf, x, ids, N))) return fail("train/add", rc);
    free(ids);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.qinx", dir, kind);
    if ((rc = qx_ivf_save(ivf, path))) return fail("qx_ivf_save", rc);
    qx_ivf *loaded = NULL;
    if ((rc = qx_ivf_load(path, &loaded))) return fail("qx_ivf_load", rc);
    qx_ivf_info info;
    if ((rc = qx_ivf_get_info(loaded, &info))) return fail("qx_ivf_get_info", rc);
    if (strcmp(qx_quantizer_kind_name(info.quant_kind), kind) != 0 || info.ntotal != N) {
        fprintf(stderr, "qinx_user: loaded %s index has kind %s, %zu vectors\n", kind,
                qx_quantizer_kind_name(info.quant_kind), info.ntotal);
        return 1;
    }
    qx_search_params sp;
    qx_search_params_init(&sp);
    sp.nprobe = 16;
    sp.rerank = 50;
    sp.threads = 1;
    float d1[NQ * K], d2[NQ * K];
    int64_t i1[NQ * K], i2[NQ * K];
    if ((rc = qx_ivf_search(ivf, NULL, q, NQ, K, &sp, d1, i1))) return fail("search (saved)", rc);
    if ((rc = qx_ivf_search(loaded, NULL, q, NQ, K, &sp, d2, i2))) return fail("search (loaded)", rc);
    if (memcmp(i1, i2, sizeof i1) != 0) {
        fprintf(stderr, "qinx_user: %s: the loaded index answers differently\n", kind);
        return 1;
    }
    /* recall@10 of the true nearest neighbour (brute force) */
    size_t hits = 0;
    for (size_t a = 0; a < NQ; a++) {
        size_t best = 0;
        float bd = INFINITY;
        for (size_t b = 0; b < N; b++) {
            float s = qx_l2sqr(q + a * D, x + b * D, D);
            if (s < bd) bd = s, best = b;
        }
        for (size_t j = 0; j < K; j++) hits += i2[a * K + j] == (int64_t)best;
    }
    double r10 = (double)hits / NQ;
    printf("qinx_user: %s index: saved, loaded (%s), recall@10 %.2f\n", kind,
           qx_quantizer_kind_name(info.quant_kind), r10);
    qx_ivf_free(ivf);
    qx_ivf_free(loaded);
    return r10 >= 0.8 ? 0 : (fprintf(stderr, "qinx_user: %s recall@10 %.2f < 0.8\n", kind, r10), 1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: qinx_user DIR\n");
        return 2;
    }
    float *x = malloc(sizeof(float) * N * D), *q = malloc(sizeof(float) * NQ * D);
    make_data(x, N, 1);
    make_data(q, NQ, 2);
    int bad = run(argv[1], "rq", x, q) || run(argv[1], "qinco", x, q);
    free(x);
    free(q);
    return bad;
}
