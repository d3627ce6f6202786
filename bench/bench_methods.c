/* bench/bench_methods.c — the methods `qinx bench` compares, as adapters
 * from each library to bench_codec (exhaustive) or bench_ivfimpl (IVF).
 *
 * Decisions:
 * 1. Bytes mean bytes stored per vector, ids excluded, for every method:
 *    exhaustive codes at B bytes are M = B steps/sub-quantizers of 8 bits;
 *    IVF at B bytes is qinx's B-1 RQ steps + 1 norm byte, FAISS IVF-RQ the
 *    same layout (RQ{B-1}x8_Nqint8: 8-bit quantized norm, LUT search), and
 *    FAISS IVF-PQ B sub-quantizers (PQ needs no norm). The stored size is read
 *    back from the library (code_size / sa_code_size) and reported as is.
 * 2. PQ needs d divisible by M. When it is not (GloVe: d = 100), plain PQ is
 *    run on the vector zero-padded to the next multiple of M ("Pad104,PQ8x8np"
 *    — no information lost, one sub-space is partly empty), and OPQ reduces
 *    to the largest multiple of M below d ("OPQ16_96,PQ16x8np"), as FAISS's
 *    own benchmarks do; the IVF-PQ baseline likewise uses OPQ{M}_{d'}.
 * 3. FAISS RQ uses beam 5 (qx_faiss_set_beam before training, which FAISS
 *    also uses while training), the same width as qinx RQ's default.
 * 4. Time budget: bench_plan.c decides, before each method, on how many
 *    training vectors it runs (r->train_x, r->train_n) or whether it is
 *    skipped; QINCo training takes the wall-clock budget the plan gives it
 *    (r->qinco_minutes, train_minutes) with no cap on epochs.
 * 5. qinx QINCo at B bytes starts from the qinx RQ trained at B bytes in the
 *    same run when there is one (its training time is then added to QINCo's),
 *    so "QINCo with f = 0" is exactly the RQ row of the table.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "bench_impl.h"
#include "qinx/faiss_ext.h"
#if __has_include("qinx/qinco.h")
#include "qinx/qinco.h"
#define BENCH_HAVE_QINCO 1
#endif

/* ---- FAISS factory strings ------------------------------------------------ */

void bench_spec_pq(char *buf, size_t len, size_t d, size_t M) {
    if (d % M == 0) snprintf(buf, len, "PQ%zux8np", M);
    else snprintf(buf, len, "Pad%zu,PQ%zux8np", (d / M + 1) * M, M);
}

void bench_spec_opq(char *buf, size_t len, size_t d, size_t M) {
    if (d % M == 0) snprintf(buf, len, "OPQ%zu,PQ%zux8np", M, M);
    else snprintf(buf, len, "OPQ%zu_%zu,PQ%zux8np", M, d / M * M, M);
}

void bench_spec_ivfpq(char *buf, size_t len, size_t d, size_t M, size_t nlist) {
    if (d % M == 0) snprintf(buf, len, "IVF%zu,PQ%zux8np", nlist, M);
    else snprintf(buf, len, "OPQ%zu_%zu,IVF%zu,PQ%zux8np", M, d / M * M, nlist, M);
}

/* ---- qinx quantizer as a codec --------------------------------------------- */

static int qx_train(bench_codec *c, const float *x, size_t n) {
    qx_quantizer *q = c->obj;
    int rc = qx_quantizer_is_trained(q) ? 0 : qx_quantizer_train(q, x, n);
    if (rc) return bench_qx_fail("qinx training", rc);
    c->code_size = qx_quantizer_steps(q);
    return 0;
}

static int qx_encode(bench_codec *c, const float *x, size_t n, uint8_t *codes) {
    int rc = qx_quantizer_encode(c->obj, x, n, codes);
    return rc ? bench_qx_fail("qinx encoding", rc) : 0;
}

static int qx_decode(bench_codec *c, const uint8_t *codes, size_t n, float *out) {
    int rc = qx_quantizer_decode(c->obj, codes, n, 0, out);
    return rc ? bench_qx_fail("qinx decoding", rc) : 0;
}

static void qx_destroy(bench_codec *c) { qx_quantizer_free(c->obj); }

static void codec_qinx(bench_codec *c, qx_quantizer *q) {
    memset(c, 0, sizeof *c);
    c->obj = q;
    c->train = qx_train;
    c->encode = qx_encode;
    c->decode = qx_decode;
    c->destroy = qx_destroy;
}

/* ---- FAISS index (sa_encode / sa_decode) as a codec -------------------------- */

static int fx_train(bench_codec *c, const float *x, size_t n) {
    int frc = faiss_Index_train(c->obj, (idx_t)n, x);
    if (frc) return bench_faiss_fail(c->spec, frc);
    if ((frc = faiss_Index_sa_code_size(c->obj, &c->code_size))) return bench_faiss_fail(c->spec, frc);
    return 0;
}

static int fx_encode(bench_codec *c, const float *x, size_t n, uint8_t *codes) {
    int frc = faiss_Index_sa_encode(c->obj, (idx_t)n, x, codes);
    return frc ? bench_faiss_fail("sa_encode", frc) : 0;
}

static int fx_decode(bench_codec *c, const uint8_t *codes, size_t n, float *out) {
    int frc = faiss_Index_sa_decode(c->obj, (idx_t)n, codes, out);
    return frc ? bench_faiss_fail("sa_decode", frc) : 0;
}

static void fx_destroy(bench_codec *c) { faiss_Index_free(c->obj); }

static int codec_faiss(bench_codec *c, size_t d, const char *spec, int beam) {
    memset(c, 0, sizeof *c);
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    FaissIndex *idx = NULL;
    int frc = faiss_index_factory(&idx, (int)d, spec, METRIC_L2);
    if (frc) return bench_faiss_fail(spec, frc);
    if (beam > 0 && qx_faiss_set_beam(idx, beam)) {
        faiss_Index_free(idx);
        return bench_qx_fail(spec, QX_EINVAL);
    }
    c->obj = idx;
    c->train = fx_train;
    c->encode = fx_encode;
    c->decode = fx_decode;
    c->destroy = fx_destroy;
    return 0;
}

static int run_codec(bench_run *r, const bench_method *m, size_t bytes, bench_codec *c) {
    int rc = bench_eval_codec(r, m->name, bytes, c);
    c->destroy(c);
    return rc;
}

/* ---- exhaustive methods --------------------------------------------------------- */

/* The qinx RQ of each code size, kept for QINCo's initialisation. */
static struct {
    size_t bytes;
    uint8_t *blob;
    size_t len;
    double train_s;
} kept_rq[BENCH_MAX_LIST];
static size_t nkept_rq;

/* The job trains on the whole base (no --train, nothing cut): the codes will
 * hold only vectors it fitted, so RQ refinement runs whatever the training
 * set's size (rq.h, refine_min_per_codeword). */
static int trains_on_base(const bench_run *r) {
    return r->data->train_is_base && r->train_n == r->data->base.n;
}

/* A trained RQ whose refinement was skipped for a small training set. */
static void note_refinement(bench_run *r, const char *method, size_t bytes, const qx_quantizer *q) {
    int skipped = 0;
    if (q && qx_rq_refine_rounds(q, NULL, &skipped) == 0 && skipped)
        bench_note(r, "%s %zuB: codebook refinement skipped: %zu training vectors are fewer than %d per "
                   "codeword (%zu codewords); it would fit them and lose on the unseen base (rq.h)",
                   method, bytes, r->train_n, QX_RQ_REFINE_MIN_DEFAULT, qx_quantizer_steps(q) * 256);
}

/* Codeword utilization of a trained RQ, for the report: the least-used
 * step and the mean over steps (codewords chosen on the training set). */
static void note_utilization(bench_run *r, const char *method, size_t bytes, const qx_quantizer *q) {
    const uint32_t *used = qx_rq_step_used(q);
    size_t M = qx_quantizer_steps(q), min = 256, sum = 0;
    for (size_t i = 0; used && i < M; i++) {
        if (used[i] < min) min = used[i];
        sum += used[i];
    }
    if (used)
        bench_note(r, "%s %zuB: codewords used on the training set: min %zu/256, mean %.1f/256 over %zu steps",
                   method, bytes, min, (double)sum / (double)M, M);
    note_refinement(r, method, bytes, q);
}

static int run_qinx_rq_variant(bench_run *r, const bench_method *m, size_t bytes, int reseed);

/* DERP enforcement off: dead codewords are not re-seeded (compare with qinx-rq). */
static int run_qinx_rq_noreseed(bench_run *r, const bench_method *m, size_t bytes) {
    return run_qinx_rq_variant(r, m, bytes, 0);
}

static int run_qinx_rq(bench_run *r, const bench_method *m, size_t bytes) {
    return run_qinx_rq_variant(r, m, bytes, 1);
}

static int run_qinx_rq_variant(bench_run *r, const bench_method *m, size_t bytes, int reseed) {
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    o.M = bytes;
    o.reseed_dead = reseed;
    o.beam = 5;
    o.seed = r->cfg->seed;
    o.threads = r->cfg->threads;
    if (trains_on_base(r)) o.refine_min_per_codeword = 0;
    qx_quantizer *q = NULL;
    int rc = qx_rq_new(&q, r->data->d, &o);
    if (rc) return bench_qx_fail("qx_rq_new", rc);
    bench_codec c;
    codec_qinx(&c, q);
    snprintf(c.spec, sizeof c.spec, "RQ M=%zu K=256 beam=%d%s", o.M, o.beam, reseed ? "" : " no-reseed");
    rc = bench_eval_codec(r, m->name, bytes, &c);
    if (rc == 0) note_utilization(r, m->name, bytes, q);
    if (rc == 0 && reseed && nkept_rq < BENCH_MAX_LIST && r->nres) {
        uint8_t *blob = NULL;
        size_t len = 0;
        if (qx_quantizer_serialize(q, &blob, &len) == 0) {
            kept_rq[nkept_rq].bytes = bytes;
            kept_rq[nkept_rq].blob = blob;
            kept_rq[nkept_rq].len = len;
            kept_rq[nkept_rq].train_s = r->res[r->nres - 1].train_s;
            nkept_rq++;
        }
    }
    c.destroy(&c);
    return rc;
}

/* A FAISS exhaustive codec from a factory string built by spec_fn. */
static int run_faiss_spec(bench_run *r, const bench_method *m, size_t bytes,
                          void (*spec_fn)(char *, size_t, size_t, size_t)) {
    char spec[128];
    spec_fn(spec, sizeof spec, r->data->d, bytes);
    bench_codec c;
    int rc = codec_faiss(&c, r->data->d, spec, 0);
    return rc ? rc : run_codec(r, m, bytes, &c);
}

static int run_faiss_pq(bench_run *r, const bench_method *m, size_t bytes) {
    return run_faiss_spec(r, m, bytes, bench_spec_pq);
}

static int run_faiss_opq(bench_run *r, const bench_method *m, size_t bytes) {
    return run_faiss_spec(r, m, bytes, bench_spec_opq);
}

static int run_faiss_rq(bench_run *r, const bench_method *m, size_t bytes) {
    char spec[96];
    snprintf(spec, sizeof spec, "RQ%zux8", bytes);
    bench_codec c;
    int rc = codec_faiss(&c, r->data->d, spec, 5);
    if (rc == 0) snprintf(c.spec, sizeof c.spec, "%s beam=5", spec);
    return rc ? rc : run_codec(r, m, bytes, &c);
}

/* FAISS LSQ with fewer local-search iterations than FAISS's defaults
 * (train_iters 25, train_ils_iters 8, encode_ils_iters 16, icm_iters 4):
 * the defaults take 20-40 min per code size on GloVe-100 at 10,000 training
 * vectors; the reduced setting (bench_impl.h BENCH_LSQ_*, and the time
 * plan's encode_ils_iters, r->lsq_encode_ils) is in the spec. */
static int run_faiss_lsq(bench_run *r, const bench_method *m, size_t bytes) {
    char spec[128];
    snprintf(spec, sizeof spec, "LSQ%zux8", bytes);
    bench_codec c;
    int rc = codec_faiss(&c, r->data->d, spec, 0);
    if (rc) return rc;
    int ils = r->lsq_encode_ils > 0 ? r->lsq_encode_ils : BENCH_LSQ_ENCODE_ILS;
    qx_faiss_lsq_iters it = {BENCH_LSQ_TRAIN_ITERS, BENCH_LSQ_TRAIN_ILS, ils, BENCH_LSQ_ICM, 0};
    if (qx_faiss_set_lsq_iters(c.obj, &it)) {
        c.destroy(&c);
        return bench_qx_fail(spec, QX_EINVAL);
    }
    snprintf(c.spec, sizeof c.spec, "LSQ%zux8 train_iters=%d train_ils=%d encode_ils=%d icm=%d", bytes, it.train_iters,
             it.train_ils_iters, it.encode_ils_iters, it.icm_iters);
    return run_codec(r, m, bytes, &c);
}

#ifdef BENCH_HAVE_QINCO
static void qinco_note(bench_run *r, const char *method, size_t bytes, const qx_quantizer *q) {
    qx_qinco_stats st;
    if (qx_qinco_get_stats(q, &st)) return;
    r->qinco_used_s = st.total_seconds; /* for the report's budget check */
    if (!st.epochs) return;
    /* without a hold-out the best epoch is picked on training vectors (qinco.h) */
    bench_note(r, "%s %zuB: %zu epochs in %.0f s, best epoch %zu, %s of %zu%s vectors %.5g -> %.5g%s%s", method,
               bytes, st.epochs, st.total_seconds, st.best_epoch, st.n_valid ? "validation MSE" : "MSE",
               st.n_monitor, st.n_valid ? " held-out" : " training", st.valid_mse[0],
               st.valid_mse[st.best_epoch],
               st.n_valid ? "" : " (no hold-out: the RQ it starts from saw every training vector)",
               st.budget_hit ? " (stopped by the time budget)" : "");
}

/* QINCo options of a bench job of M steps: the run's seed and threads, the
 * plan's wall-clock budget, and no cap on epochs (the budget decides; 30
 * epochs took 2 of siftsmall's 17 minutes). */
static void qinco_opts(const bench_run *r, size_t M, qx_qinco_opts *o) {
    qx_qinco_opts_init(o);
    o->M = M;
    o->seed = r->cfg->seed;
    o->threads = r->cfg->threads;
    o->train_minutes = r->qinco_minutes;
    o->epochs = QX_QINCO_MAX_EPOCHS;
}

static int run_qinx_qinco(bench_run *r, const bench_method *m, size_t bytes) {
    qx_qinco_opts o;
    qinco_opts(r, bytes, &o);
    qx_quantizer *q = NULL, *rq = NULL;
    double extra = 0;
    int rc = 0;
    for (size_t i = 0; i < nkept_rq; i++)
        if (kept_rq[i].bytes == bytes &&
            qx_quantizer_deserialize(kept_rq[i].blob, kept_rq[i].len, &rq) == 0) {
            extra = kept_rq[i].train_s;
            break;
        }
    if (rq) {
        o.valid_fraction = 0; /* the kept RQ saw every training vector: see qinco.h */
        rc = qx_qinco_from_rq(&q, rq, &o);
        qx_quantizer_free(rq);
        /* from_rq marks it trained with f = 0; train the network on top */
        if (rc == 0) {
            bench_log(r, "%s %zuB: starting from the qinx RQ of this run (train %.1fs)", m->name, bytes,
                      extra);
            double t = bench_now();
            bench_set_threads(r->cfg->threads);
            rc = qx_quantizer_train(q, r->train_x, r->train_n);
            extra += bench_now() - t;
            if (rc) bench_qx_fail("QINCo training", rc);
        }
    } else {
        rc = qx_qinco_new(&q, r->data->d, &o);
    }
    if (rc) {
        qx_quantizer_free(q);
        return bench_qx_fail("QINCo", rc);
    }
    bench_log(r, "%s %zuB: training budget %.1f min", m->name, bytes, o.train_minutes);
    bench_codec c;
    codec_qinx(&c, q);
    c.extra_train_s = extra;
    snprintf(c.spec, sizeof c.spec, "QINCo M=%zu L=%d h=%d A=%d beam=%d", o.M, o.L, o.h, o.A, o.beam);
    rc = bench_eval_codec(r, m->name, bytes, &c);
    qinco_note(r, m->name, bytes, q);
    c.destroy(&c);
    return rc;
}
#endif

/* ---- IVF methods ------------------------------------------------------------------ */

typedef struct qxivf {
    qx_ivf *ivf;
    qx_ivf_search_ctx *ctx;
} qxivf;

static int qv_train(bench_ivfimpl *v, const float *x, size_t n) {
    qxivf *s = v->obj;
    int rc = qx_ivf_train(s->ivf, x, n);
    return rc ? bench_qx_fail("qinx IVF training", rc) : 0;
}

static int qv_add(bench_ivfimpl *v, const float *x, size_t n) {
    qxivf *s = v->obj;
    int64_t *ids = malloc(sizeof(int64_t) * (n ? n : 1));
    if (!ids) return QX_ENOMEM;
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i;
    int rc = qx_ivf_add(s->ivf, x, ids, n);
    free(ids);
    if (rc) return bench_qx_fail("qinx IVF add", rc);
    qx_ivf_info info;
    if ((rc = qx_ivf_get_info(s->ivf, &info))) return bench_qx_fail("qinx IVF info", rc);
    v->code_size = info.code_size;
    if ((rc = qx_ivf_search_ctx_new(&s->ctx, s->ivf))) return bench_qx_fail("qinx IVF search ctx", rc);
    return 0;
}

static int qv_search(bench_ivfimpl *v, const float *q, size_t nq, size_t k, size_t nprobe,
                     size_t rerank, float *dist, int64_t *ids) {
    qxivf *s = v->obj;
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = nprobe;
    p.rerank = rerank;
    p.threads = 1;
    int rc = qx_ivf_search(s->ivf, s->ctx, q, nq, k, &p, dist, ids);
    return rc ? bench_qx_fail("qinx IVF search", rc) : 0;
}

/* Fast-scan indexes: the sweep's "rerank" value is the shortlist of the
 * 4-bit scan that the whole code re-ranks (0 = the library's 4 × k). */
static int qfs_search(bench_ivfimpl *v, const float *q, size_t nq, size_t k, size_t nprobe,
                      size_t shortlist, float *dist, int64_t *ids) {
    qxivf *s = v->obj;
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = nprobe;
    p.shortlist = shortlist;
    p.threads = 1;
    int rc = qx_ivf_search(s->ivf, s->ctx, q, nq, k, &p, dist, ids);
    return rc ? bench_qx_fail("qinx IVF fast-scan search", rc) : 0;
}

static void qv_destroy(bench_ivfimpl *v) {
    qxivf *s = v->obj;
    if (!s) return;
    qx_ivf_search_ctx_free(s->ctx);
    qx_ivf_free(s->ivf);
    free(s);
}

static int ivf_qinx(bench_run *r, bench_ivfimpl *v, qx_quantizer *q) {
    memset(v, 0, sizeof *v);
    qxivf *s = calloc(1, sizeof *s);
    if (!s) {
        qx_quantizer_free(q);
        return QX_ENOMEM;
    }
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = bench_nlist(r);
    io.seed = r->cfg->seed;
    int rc = qx_ivf_new(&s->ivf, r->data->d, q, &io); /* frees q on failure */
    if (rc) {
        free(s);
        return bench_qx_fail("qx_ivf_new", rc);
    }
    v->obj = s;
    v->supports_rerank = 1;
    v->train = qv_train;
    v->add = qv_add;
    v->search = qv_search;
    v->destroy = qv_destroy;
    return 0;
}

/* The trained qinx IVF-RQ of each code size, kept for IVF-QINCo: its coarse
 * centroids and residual RQ are where IVF-QINCo starts. */
static struct {
    size_t bytes;
    qx_ivf *ivf;
    double train_s;
} kept_ivf[BENCH_MAX_LIST];
static size_t nkept_ivf;

static int run_qinx_ivfrq(bench_run *r, const bench_method *m, size_t bytes) {
    qx_rq_opts o;
    qx_rq_opts_init(&o);
    o.M = bytes - 1; /* + 1 norm byte */
    o.beam = 5;
    o.seed = r->cfg->seed;
    o.threads = r->cfg->threads;
    if (trains_on_base(r)) o.refine_min_per_codeword = 0;
    qx_quantizer *q = NULL;
    int rc = qx_rq_new(&q, r->data->d, &o);
    if (rc) return bench_qx_fail("qx_rq_new", rc);
    bench_ivfimpl v;
    if ((rc = ivf_qinx(r, &v, q))) return rc;
    snprintf(v.spec, sizeof v.spec, "IVF%zu, RQ M=%zu beam=5 + 1 norm byte", bench_nlist(r), o.M);
    rc = bench_eval_ivf(r, m->name, bytes, &v);
    qxivf *s = v.obj;
    if (rc == 0) note_refinement(r, m->name, bytes, qx_ivf_quantizer(s->ivf));
    if (rc == 0 && nkept_ivf < BENCH_MAX_LIST && r->nres) {
        kept_ivf[nkept_ivf].bytes = bytes;
        kept_ivf[nkept_ivf].ivf = s->ivf;
        kept_ivf[nkept_ivf++].train_s = r->res[r->nres - 1].train_s;
        s->ivf = NULL; /* kept: not freed with v */
    }
    v.destroy(&v);
    return rc;
}

/* Train and evaluate an IVF fast-scan index with options o (the two
 * fast-scan methods below differ only in them); shape names the 4-bit part
 * in the spec line. */
static int eval_ivffs(bench_run *r, const bench_method *m, size_t bytes, const qx_fs_opts *o,
                      const char *shape) {
    qx_quantizer *q = NULL;
    int rc = qx_fs_new(&q, r->data->d, o);
    if (rc) return bench_qx_fail("qx_fs_new", rc);
    bench_ivfimpl v;
    if ((rc = ivf_qinx(r, &v, q))) return rc;
    v.search = qfs_search;
    snprintf(v.spec, sizeof v.spec,
             "IVF%zu, fast-scan%s %zu x 4-bit + %zu x 8-bit + 2 x 4-bit norm; rerank N = shortlist N",
             bench_nlist(r), shape, o->M4, o->M8);
    rc = bench_eval_ivf(r, m->name, bytes, &v);
    v.destroy(&v);
    return rc;
}

/* IVF fast-scan at `bytes`: bytes/2 bytes of 4-bit steps (rounded down to
 * whole bytes), the rest but the norm byte in 8-bit steps. */
static int run_qinx_ivffs(bench_run *r, const bench_method *m, size_t bytes) {
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    o.M4 = bytes / 2 * 2;
    if (o.M4 / 2 > bytes - 1) o.M4 = (bytes - 1) * 2;
    o.M8 = bytes - 1 - o.M4 / 2;
    o.seed = r->cfg->seed;
    o.threads = r->cfg->threads;
    return eval_ivffs(r, m, bytes, &o, "");
}

/* IVF fast-scan with a product-shaped 4-bit part at `bytes`: every byte but
 * the norm byte in 4-bit product steps (the shape FAISS's fast-scan uses,
 * re-ranked by exact distances to the same code), capped at d steps; any
 * byte left over goes to 8-bit steps. */
static int run_qinx_ivfpq4(bench_run *r, const bench_method *m, size_t bytes) {
    size_t d = r->data->d;
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    o.product4 = 1;
    o.M4 = 2 * (bytes - 1) < (d & ~(size_t)1) ? 2 * (bytes - 1) : (d & ~(size_t)1);
    o.M8 = bytes - 1 - o.M4 / 2;
    o.seed = r->cfg->seed;
    o.threads = r->cfg->threads;
    return eval_ivffs(r, m, bytes, &o, " product");
}

#ifdef BENCH_HAVE_QINCO
/* A QINCo quantizer that starts from the residual RQ of the trained index
 * base and trains its network on base's residuals of the training set;
 * *train_s grows by the seconds it took. */
static int qinco_on_ivf(bench_run *r, const qx_ivf *base, const qx_qinco_opts *o, qx_quantizer **out,
                        double *train_s) {
    size_t n = r->train_n, d = r->data->d;
    uint8_t *blob = NULL;
    size_t len = 0;
    qx_quantizer *rq = NULL;
    float *res = malloc(sizeof(float) * n * d);
    uint32_t *list = malloc(sizeof(uint32_t) * n);
    double t = bench_now();
    int rc = res && list ? 0 : QX_ENOMEM;
    if (rc == 0) rc = qx_ivf_residuals(base, r->train_x, n, list, res);
    if (rc == 0) rc = qx_quantizer_serialize(qx_ivf_quantizer(base), &blob, &len);
    if (rc == 0) rc = qx_quantizer_deserialize(blob, len, &rq); /* a copy: base keeps its own */
    if (rc == 0) rc = qx_qinco_from_rq(out, rq, o);
    if (rc == 0) {
        bench_set_threads(r->cfg->threads);
        rc = qx_quantizer_train(*out, res, n); /* from_rq: f = 0; this trains the network */
    }
    if (rc) {
        qx_quantizer_free(*out);
        *out = NULL;
    }
    *train_s += bench_now() - t;
    qx_quantizer_free(rq);
    qx_free(blob);
    free(res);
    free(list);
    return rc;
}

static int run_qinx_ivfqinco(bench_run *r, const bench_method *m, size_t bytes) {
    qx_qinco_opts o;
    qinco_opts(r, bytes - 1, &o);
    qx_quantizer *q = NULL;
    const qx_ivf *base = NULL;
    double rq_s = 0;
    for (size_t i = 0; i < nkept_ivf && !base; i++)
        if (kept_ivf[i].bytes == bytes) {
            base = kept_ivf[i].ivf;
            rq_s = kept_ivf[i].train_s;
        }
    double extra = rq_s;
    if (base) o.valid_fraction = 0; /* IVF-RQ's RQ saw every training residual: see qinco.h */
    bench_log(r, "%s %zuB: training budget %.1f min", m->name, bytes, o.train_minutes);
    int rc = base ? qinco_on_ivf(r, base, &o, &q, &extra) : qx_qinco_new(&q, r->data->d, &o);
    if (rc) return bench_qx_fail("IVF-QINCo", rc);
    bench_ivfimpl v;
    if ((rc = ivf_qinx(r, &v, q))) return rc;
    snprintf(v.spec, sizeof v.spec, "IVF%zu, QINCo M=%zu L=%d h=%d + 1 norm byte", bench_nlist(r), o.M,
             o.L, o.h);
    v.budget_cuts = 1;
    v.extra_train_s = extra;
    rc = bench_eval_ivf(r, m->name, bytes, &v);
    const qx_ivf *ivf = ((qxivf *)v.obj)->ivf;
    if (rc == 0) qinco_note(r, m->name, bytes, qx_ivf_quantizer(ivf));
    /* the index re-ran the coarse k-means (same data and seed): it must have
     * found the centroids whose residuals the network was trained on */
    qx_ivf_info a, b;
    if (rc == 0 && base && qx_ivf_get_info(base, &a) == 0 && qx_ivf_get_info(ivf, &b) == 0) {
        int same = a.nlist == b.nlist &&
                   !memcmp(qx_ivf_centroids(base), qx_ivf_centroids(ivf), sizeof(float) * a.nlist * a.d);
        bench_note(r, "%s %zuB: started from qinx-ivfrq's trained index (coarse centroids and RQ; train s "
                      "includes its %.0f s)%s", m->name, bytes, rq_s,
                   same ? "" : "; WARNING: its coarse k-means found other centroids than IVF-RQ's");
    }
    v.destroy(&v);
    return rc;
}
#endif

typedef struct fxivf {
    FaissIndex *idx;
    FaissParameterSpace *ps;
    size_t nlist;
} fxivf;

static int fv_train(bench_ivfimpl *v, const float *x, size_t n) {
    fxivf *s = v->obj;
    int frc = faiss_Index_train(s->idx, (idx_t)n, x);
    return frc ? bench_faiss_fail(v->spec, frc) : 0;
}

static int fv_add(bench_ivfimpl *v, const float *x, size_t n) {
    fxivf *s = v->obj;
    int frc = faiss_Index_add(s->idx, (idx_t)n, x);
    if (frc) return bench_faiss_fail(v->spec, frc);
    /* sa_code_size of an IVF index also counts the list number, which the
     * inverted lists do not store per vector; take it off (FAISS's
     * IndexIVF::coarse_code_size: bytes of nlist - 1). */
    size_t cs = 0, coarse = 0;
    if ((frc = faiss_Index_sa_code_size(s->idx, &cs))) return bench_faiss_fail(v->spec, frc);
    for (size_t nl = s->nlist - 1; nl; nl >>= 8) coarse++;
    v->code_size = cs - coarse;
    return 0;
}

static int fv_search(bench_ivfimpl *v, const float *q, size_t nq, size_t k, size_t nprobe,
                     size_t rerank, float *dist, int64_t *ids) {
    fxivf *s = v->obj;
    (void)rerank;
    int frc = faiss_ParameterSpace_set_index_parameter(s->ps, s->idx, "nprobe", (double)nprobe);
    if (frc) return bench_faiss_fail("set nprobe", frc);
    frc = faiss_Index_search(s->idx, (idx_t)nq, q, (idx_t)k, dist, ids);
    return frc ? bench_faiss_fail(v->spec, frc) : 0;
}

static void fv_destroy(bench_ivfimpl *v) {
    fxivf *s = v->obj;
    if (!s) return;
    faiss_ParameterSpace_free(s->ps);
    faiss_Index_free(s->idx);
    free(s);
}

static int ivf_faiss(bench_run *r, bench_ivfimpl *v, const char *spec, int beam) {
    memset(v, 0, sizeof *v);
    snprintf(v->spec, sizeof v->spec, "%s", spec);
    fxivf *s = calloc(1, sizeof *s);
    if (!s) return QX_ENOMEM;
    s->nlist = bench_nlist(r);
    int frc = faiss_index_factory(&s->idx, (int)r->data->d, spec, METRIC_L2);
    if (!frc) frc = faiss_ParameterSpace_new(&s->ps);
    if (frc) {
        v->obj = s;
        fv_destroy(v);
        return bench_faiss_fail(spec, frc);
    }
    v->obj = s;
    v->train = fv_train;
    v->add = fv_add;
    v->search = fv_search;
    v->destroy = fv_destroy;
    if (beam > 0 && qx_faiss_set_beam(s->idx, beam)) {
        fv_destroy(v);
        return bench_qx_fail(spec, QX_EINVAL);
    }
    return 0;
}

static int run_faiss_ivfpq(bench_run *r, const bench_method *m, size_t bytes) {
    char spec[128];
    bench_spec_ivfpq(spec, sizeof spec, r->data->d, bytes, bench_nlist(r));
    bench_ivfimpl v;
    int rc = ivf_faiss(r, &v, spec, 0);
    if (rc) return rc;
    rc = bench_eval_ivf(r, m->name, bytes, &v);
    v.destroy(&v);
    return rc;
}

/* FAISS's IVF-PQ fast-scan at `bytes`: 2·bytes sub-quantizers of 4 bits,
 * residual (fsr), with OPQ when 2·bytes does not divide d. */
static int run_faiss_ivfpqfs(bench_run *r, const bench_method *m, size_t bytes) {
    char spec[128];
    size_t d = r->data->d, M = 2 * bytes;
    if (d % M == 0) snprintf(spec, sizeof spec, "IVF%zu,PQ%zux4fsr", bench_nlist(r), M);
    else snprintf(spec, sizeof spec, "OPQ%zu_%zu,IVF%zu,PQ%zux4fsr", M, d / M * M, bench_nlist(r), M);
    bench_ivfimpl v;
    int rc = ivf_faiss(r, &v, spec, 0);
    if (rc) return rc;
    rc = bench_eval_ivf(r, m->name, bytes, &v);
    v.destroy(&v);
    return rc;
}

static int run_faiss_ivfrq(bench_run *r, const bench_method *m, size_t bytes) {
    char spec[96];
    snprintf(spec, sizeof spec, "IVF%zu,RQ%zux8_Nqint8", bench_nlist(r), bytes - 1);
    bench_ivfimpl v;
    int rc = ivf_faiss(r, &v, spec, 5);
    if (rc) return rc;
    snprintf(v.spec, sizeof v.spec, "%s beam=5", spec);
    rc = bench_eval_ivf(r, m->name, bytes, &v);
    v.destroy(&v);
    return rc;
}

void bench_methods_cleanup(void) {
    for (size_t i = 0; i < nkept_rq; i++) qx_free(kept_rq[i].blob);
    nkept_rq = 0;
    for (size_t i = 0; i < nkept_ivf; i++) qx_ivf_free(kept_ivf[i].ivf);
    nkept_ivf = 0;
}

/* ---- the table ----------------------------------------------------------------------- */

static const bench_method methods[] = {
    {"qinx-rq", 0, 0, run_qinx_rq},
    {"qinx-rq-noreseed", 0, 0, run_qinx_rq_noreseed},
    {"faiss-pq", 0, 0, run_faiss_pq},
    {"faiss-opq", 0, 0, run_faiss_opq},
    {"faiss-rq", 0, 0, run_faiss_rq},
    {"faiss-lsq", 0, 1, run_faiss_lsq},
#ifdef BENCH_HAVE_QINCO
    {"qinx-qinco", 0, 1, run_qinx_qinco},
#endif
    {"qinx-ivfrq", 1, 0, run_qinx_ivfrq},
    {"faiss-ivfpq", 1, 0, run_faiss_ivfpq},
    {"faiss-ivfrq", 1, 0, run_faiss_ivfrq},
    {"qinx-ivffs", 1, 0, run_qinx_ivffs},
    {"qinx-ivfpq4", 1, 0, run_qinx_ivfpq4},
    {"faiss-ivfpqfs", 1, 0, run_faiss_ivfpqfs},
#ifdef BENCH_HAVE_QINCO
    {"qinx-ivfqinco", 1, 1, run_qinx_ivfqinco},
#endif
};

const bench_method *bench_methods_all(size_t *n) {
    *n = sizeof methods / sizeof methods[0];
    return methods;
}

const bench_method *bench_method_find(const char *name) {
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i].name, name)) return &methods[i];
    return NULL;
}
