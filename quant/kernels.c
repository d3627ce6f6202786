/* quant/kernels.c — kernel dispatch (qinx/kernels.h) and the many-against-many
 * distance matrix on OpenBLAS.
 *
 * Decisions:
 * 1. The level is chosen once per process under pthread_once, from
 *    __builtin_cpu_supports (which also checks that the OS saves the wider
 *    registers) and the QX_SIMD override; an override above what the CPU has
 *    is clamped, never honoured, and an unknown value is ignored.
 * 2. AVX-512 needs F, BW, DQ and VL (the flags kernels_avx512.c is built
 *    with); AVX2 needs FMA as well.
 * 3. qx_l2sqr_matrix writes -2·X·Yᵀ with one sgemm straight into the caller's
 *    buffer, then adds the norms and clamps at 0 (cancellation can make a
 *    tiny distance negative).
 */
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels_impl.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static const qx__kernel_table *g_table = &qx__kernels_scalar;
static qx_simd_level g_level = QX_SIMD_SCALAR;

qx_simd_level qx__simd_cpu_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("fma"))
        return QX_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return QX_SIMD_AVX2;
    return QX_SIMD_SCALAR;
}

const qx__kernel_table *qx__kernels_for(qx_simd_level level) {
    if ((int)level > (int)qx__simd_cpu_level()) return NULL;
    switch (level) {
    case QX_SIMD_SCALAR: return &qx__kernels_scalar;
    case QX_SIMD_AVX2: return &qx__kernels_avx2;
    case QX_SIMD_AVX512: return &qx__kernels_avx512;
    }
    return NULL;
}

static void choose_level(void) {
    qx_simd_level level = qx__simd_cpu_level();
    const char *env = getenv("QX_SIMD");
    if (env && *env) {
        qx_simd_level want = level;
        if (strcmp(env, "scalar") == 0) want = QX_SIMD_SCALAR;
        else if (strcmp(env, "avx2") == 0) want = QX_SIMD_AVX2;
        else if (strcmp(env, "avx512") == 0) want = QX_SIMD_AVX512;
        if ((int)want < (int)level) level = want;
    }
    g_level = level;
    g_table = qx__kernels_for(level);
}

const qx__kernel_table *qx__kernels(void) {
    pthread_once(&g_once, choose_level);
    return g_table;
}

qx_simd_level qx_simd_active(void) {
    pthread_once(&g_once, choose_level);
    return g_level;
}

const char *qx_simd_name(qx_simd_level level) {
    switch (level) {
    case QX_SIMD_SCALAR: return "scalar";
    case QX_SIMD_AVX2: return "avx2";
    case QX_SIMD_AVX512: return "avx512";
    }
    return "unknown";
}

float qx_l2sqr(const float *a, const float *b, size_t d) { return qx__kernels()->l2sqr(a, b, d); }

float qx_dot(const float *a, const float *b, size_t d) { return qx__kernels()->dot(a, b, d); }

void qx_l2sqr_ny(float *out, const float *x, const float *y, size_t d, size_t ny) {
    qx__kernels()->l2sqr_ny(out, x, y, d, ny);
}

void qx_dot_ny(float *out, const float *x, const float *y, size_t d, size_t ny) {
    qx__kernels()->dot_ny(out, x, y, d, ny);
}

void qx_lut_scan(float *out, const uint8_t *codes, size_t n, size_t stride, size_t M,
                 const float *lut) {
    qx__kernels()->lut_scan(out, codes, n, stride, M, lut);
}

static float *norms_of(const float *v, size_t n, size_t d) {
    size_t bytes;
    if (!qx__mul(n, sizeof(float), &bytes)) return NULL;
    float *out = qx__aligned_alloc(bytes);
    if (!out) return NULL;
    const qx__kernel_table *k = qx__kernels();
    for (size_t i = 0; i < n; i++) out[i] = k->dot(v + i * d, v + i * d, d);
    return out;
}

int qx_l2sqr_matrix(float *dist, const float *x, size_t nx, const float *y, size_t ny, size_t d,
                    const float *x_norms, const float *y_norms) {
    if (nx == 0 || ny == 0) return 0;
    if (!dist || !x || !y) return qx__fail(QX_EINVAL, "l2sqr_matrix: NULL argument");
    if (d == 0) return qx__fail(QX_EINVAL, "l2sqr_matrix: d = 0");
    if (nx > INT_MAX || ny > INT_MAX || d > INT_MAX)
        return qx__fail(QX_ELIMIT, "l2sqr_matrix: nx=%zu ny=%zu d=%zu exceed BLAS int", nx, ny,
                        d);
    float *xn_own = NULL, *yn_own = NULL;
    if (!x_norms && !(x_norms = xn_own = norms_of(x, nx, d)))
        return qx__fail(QX_ENOMEM, "l2sqr_matrix: %zu norms", nx);
    if (!y_norms && !(y_norms = yn_own = norms_of(y, ny, d))) {
        qx__aligned_free(xn_own);
        return qx__fail(QX_ENOMEM, "l2sqr_matrix: %zu norms", ny);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nx, (int)ny, (int)d, -2.0f, x,
                (int)d, y, (int)d, 0.0f, dist, (int)ny);
    for (size_t i = 0; i < nx; i++) {
        float *row = dist + i * ny;
        float xn = x_norms[i];
        for (size_t j = 0; j < ny; j++) {
            float v = row[j] + xn + y_norms[j];
            row[j] = v > 0 ? v : 0;
        }
    }
    qx__aligned_free(xn_own);
    qx__aligned_free(yn_own);
    return 0;
}
