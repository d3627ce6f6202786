/* verify/derp_drift.c — drift between a reference sample and new vectors, and
 * the reservoir that keeps the reference sample.
 *
 * Decisions:
 * 1. Drift is the two-sample K–S test on every probe (derp_probes.c); the
 *    score is the largest D over probes (a distance in [0, 1] that does not
 *    grow with n, unlike the p-value), and the probes with the largest D are
 *    named so a user can see which directions moved. Each probe also has an
 *    effect W (Wasserstein distance in reference sds, derp_stats.c); a probe
 *    counts as rejected only when significant and W >= opts.min_effect, so
 *    a large n no longer turns negligible shifts into drift.
 * 2. The reservoir is Vitter's Algorithm R with the seeded xoshiro256**
 *    generator and an unbiased bounded draw, so a reservoir is reproducible
 *    from (seed, the vectors offered in order); its generator state is part
 *    of the blob, so a reservoir loaded from an index file keeps sampling
 *    exactly as if it had never been saved.
 * 3. Storage grows by doubling up to the capacity, so a reservoir of
 *    capacity 10,000 over 50 vectors holds 50 vectors' worth of memory.
 */
#include <math.h>
#include <string.h>

#include "derp_impl.h"
#include "qinx/vecfile.h"

void qx_derp_drift_clear(qx_derp_drift *dr) {
    if (!dr) return;
    qx_derp_family_clear(&dr->test);
    memset(dr, 0, sizeof *dr);
}

int qx_derp_drift_compute(const float *ref, size_t nref, const float *x, size_t n, size_t d,
                          const qx_derp_opts *opts, qx_derp_drift *out) {
    qx_derp_opts o;
    if (!out) return qx__fail(QX_EINVAL, "drift: NULL result");
    memset(out, 0, sizeof *out);
    int rc = qx__derp_opts_check(opts, &o);
    if (rc) return rc;
    rc = qx_derp_two_sample(ref, nref, x, n, d, &o, &out->test);
    if (rc) return qx__wrap(rc, "drift");
    out->score = out->test.D_max;
    out->score_mean = out->test.D_mean;
    out->effect = out->test.W_max;
    out->effect_mean = out->test.W_mean;
    /* Partial selection of the top_moved largest D (P is small). */
    size_t P = out->test.P;
    for (size_t t = 0; t < o.top_moved && t < P; t++) {
        size_t best = P;
        for (size_t p = 0; p < P; p++) {
            int taken = 0;
            for (size_t u = 0; u < t; u++) taken |= out->top[u] == p;
            if (taken) continue;
            if (best == P || out->test.D[p] > out->test.D[best]) best = p;
        }
        out->top[t] = best;
        out->ntop = t + 1;
    }
    return 0;
}

/* ---- reservoir -------------------------------------------------------------------- */

struct qx_derp_reservoir {
    size_t d, cap, size, alloc; /* alloc: vectors the buffer can hold */
    uint64_t seen;
    qx__derp_rng rng;
    float *data;
};

int qx_derp_reservoir_new(qx_derp_reservoir **out, size_t d, size_t capacity, uint64_t seed) {
    if (!out) return qx__fail(QX_EINVAL, "reservoir: NULL output");
    *out = NULL;
    if (d < 1 || d > QX_MAX_DIM) return qx__fail(QX_EDIM, "reservoir: d=%zu, must be 1..%d", d,
                                                 QX_MAX_DIM);
    if (capacity == 0) capacity = QX_DERP_DEFAULT_RESERVOIR;
    if (capacity > QX_DERP_MAX_RESERVOIR)
        return qx__fail(QX_ELIMIT, "reservoir: capacity %zu above %u", capacity,
                        QX_DERP_MAX_RESERVOIR);
    size_t bytes;
    if (!qx__mul3(capacity, d, sizeof(float), &bytes))
        return qx__fail(QX_ENOMEM, "reservoir: %zu x %zu overflows", capacity, d);
    qx_derp_reservoir *r = qx__calloc(1, sizeof *r);
    if (!r) return qx__fail(QX_ENOMEM, "reservoir");
    r->d = d;
    r->cap = capacity;
    qx__derp_rng_seed(&r->rng, seed);
    *out = r;
    return 0;
}

void qx_derp_reservoir_free(qx_derp_reservoir *r) {
    if (!r) return;
    qx__aligned_free(r->data);
    qx__free(r);
}

static int reserve(qx_derp_reservoir *r, size_t want) {
    if (want <= r->alloc) return 0;
    size_t a = r->alloc ? r->alloc : 64;
    while (a < want) a *= 2;
    if (a > r->cap) a = r->cap;
    float *p = qx__aligned_alloc(a * r->d * sizeof(float)); /* <= cap*d*4, checked at new */
    if (!p) return qx__fail(QX_ENOMEM, "reservoir: %zu vectors", a);
    if (r->size) memcpy(p, r->data, r->size * r->d * sizeof(float));
    qx__aligned_free(r->data);
    r->data = p;
    r->alloc = a;
    return 0;
}

int qx_derp_reservoir_add(qx_derp_reservoir *r, const float *x, size_t n) {
    if (!r || (!x && n)) return qx__fail(QX_EINVAL, "reservoir add: NULL argument");
    size_t total;
    if (!qx__mul(n, r->d, &total)) return qx__fail(QX_ENOMEM, "reservoir add: n*d overflows");
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "reservoir add: vector %zu has a NaN or Inf at dimension %zu",
                        (size_t)bad / r->d, (size_t)bad % r->d);
    size_t fill = r->cap - r->size < n ? r->cap - r->size : n;
    int rc = reserve(r, r->size + fill);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++, r->seen++) {
        const float *v = x + i * r->d;
        if (r->size < r->cap) {
            memcpy(r->data + r->size * r->d, v, r->d * sizeof(float));
            r->size++;
            continue;
        }
        uint64_t j = qx__derp_rng_below(&r->rng, r->seen + 1);
        if (j < r->cap) memcpy(r->data + j * r->d, v, r->d * sizeof(float));
    }
    return 0;
}

size_t qx_derp_reservoir_size(const qx_derp_reservoir *r) { return r ? r->size : 0; }
size_t qx_derp_reservoir_dim(const qx_derp_reservoir *r) { return r ? r->d : 0; }
uint64_t qx_derp_reservoir_seen(const qx_derp_reservoir *r) { return r ? r->seen : 0; }
const float *qx_derp_reservoir_data(const qx_derp_reservoir *r) { return r ? r->data : NULL; }

#define QX__RV_MAGIC "QXRV"
#define QX__RV_VERSION 1u
#define QX__RV_HEADER (4 + 4 + 4 + 4 + 8 + 8 + 8 + 32)

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int qx_derp_reservoir_serialize(const qx_derp_reservoir *r, uint8_t **buf, size_t *len) {
    if (!r || !buf || !len) return qx__fail(QX_EINVAL, "reservoir serialize: NULL argument");
    size_t body, total;
    if (!qx__mul3(r->size, r->d, sizeof(float), &body) || !qx__add(body, QX__RV_HEADER, &total))
        return qx__fail(QX_ENOMEM, "reservoir serialize: size overflows");
    uint8_t *b = qx__malloc(total);
    if (!b) return qx__fail(QX_ENOMEM, "reservoir serialize: %zu bytes", total);
    memcpy(b, QX__RV_MAGIC, 4);
    put_u32(b + 4, QX__RV_VERSION);
    put_u32(b + 8, (uint32_t)r->d);
    put_u32(b + 12, 0); /* reserved */
    put_u64(b + 16, r->cap);
    put_u64(b + 24, r->size);
    put_u64(b + 32, r->seen);
    for (int i = 0; i < 4; i++) put_u64(b + 40 + 8 * i, r->rng.s[i]);
    /* Floats are stored in host order; qinx targets little-endian hosts
     * (the same convention as the quantizer blob). */
    if (body) memcpy(b + QX__RV_HEADER, r->data, body);
    *buf = b;
    *len = total;
    return 0;
}

int qx_derp_reservoir_deserialize(const uint8_t *buf, size_t len, qx_derp_reservoir **out) {
    if (!buf || !out) return qx__fail(QX_EINVAL, "reservoir deserialize: NULL argument");
    *out = NULL;
    if (len < QX__RV_HEADER || memcmp(buf, QX__RV_MAGIC, 4) != 0)
        return qx__fail(QX_EFORMAT, "reservoir blob: bad magic or too short (%zu bytes)", len);
    uint32_t version = get_u32(buf + 4), d = get_u32(buf + 8);
    uint64_t cap = get_u64(buf + 16), size = get_u64(buf + 24), seen = get_u64(buf + 32);
    if (version != QX__RV_VERSION)
        return qx__fail(QX_EFORMAT, "reservoir blob: version %u, this build reads %u", version,
                        QX__RV_VERSION);
    if (d < 1 || d > QX_MAX_DIM || cap < 1 || cap > QX_DERP_MAX_RESERVOIR)
        return qx__fail(QX_EFORMAT, "reservoir blob: d=%u capacity=%llu out of range", d,
                        (unsigned long long)cap);
    if (size != (seen < cap ? seen : cap))
        return qx__fail(QX_EFORMAT, "reservoir blob: size %llu inconsistent with seen %llu",
                        (unsigned long long)size, (unsigned long long)seen);
    size_t body = (size_t)size * d * sizeof(float); /* <= 2^24 * 2^16 * 4: no overflow */
    if (len != QX__RV_HEADER + body)
        return qx__fail(QX_EFORMAT, "reservoir blob: %zu bytes, expected %zu", len,
                        (size_t)QX__RV_HEADER + body);
    qx__derp_rng rng;
    for (int i = 0; i < 4; i++) rng.s[i] = get_u64(buf + 40 + 8 * i);
    if (!(rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]))
        return qx__fail(QX_EFORMAT, "reservoir blob: generator state is all zero");
    qx_derp_reservoir *r;
    int rc = qx_derp_reservoir_new(&r, d, (size_t)cap, 0);
    if (rc) return qx__wrap(QX_EFORMAT, "reservoir blob");
    r->rng = rng;
    if ((rc = reserve(r, (size_t)size))) {
        qx_derp_reservoir_free(r);
        return rc;
    }
    if (body) memcpy(r->data, buf + QX__RV_HEADER, body);
    long bad = qx__first_nonfinite(r->data, (size_t)size * d);
    if (bad >= 0) {
        qx_derp_reservoir_free(r);
        return qx__fail(QX_EFORMAT, "reservoir blob: vector %zu has a NaN or Inf",
                        (size_t)bad / d);
    }
    r->size = (size_t)size;
    r->seen = seen;
    *out = r;
    return 0;
}
