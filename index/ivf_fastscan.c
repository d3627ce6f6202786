/* index/ivf_fastscan.c — storage of a fast-scan IVF index (quantizer kind
 * QX_QUANT_FASTSCAN): lists in 32-vector scan blocks, the two-nibble norm,
 * add/move/read of one entry. Search is in ivf_fastscan_search.c.
 *
 * Decisions:
 * 1. A code is stored once: its scanned bytes (the M4/2 bytes of 4-bit
 *    steps and, for L2, the norm byte) in the list's scan blocks
 *    (quant/kernels_fs.h: per nibble pair, 32 bytes, one per vector),
 *    the 8-bit refinement bytes row-major in `codes`. Memory per vector is
 *    therefore exactly code_size bytes plus the id, as for the other kinds
 *    (plus the unused tail of the last block of each list).
 * 2. The norm byte is two 4-bit steps, so the scan adds the norm with the
 *    same shuffles as the codes: a 1-D residual quantizer of ||c + r̂4||²
 *    (16 levels fitted by Lloyd, then 16 levels on what is left; the pair is
 *    chosen jointly among the 256). The norm is of the 4-bit reconstruction,
 *    so the scanned value is the distance to that reconstruction (up to the
 *    8-bit look-up tables); the second stage recomputes exact distances to
 *    the full reconstruction and needs no norm.
 * 3. The file format is the generic one (full row-major codes per entry):
 *    save unpacks, load repacks, so files carry no layout choice.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ivf_impl.h"
#include "kernels_fs.h"
#include "qinx/fastscan.h"

#define K1D 16

void qx__ivf_fs_setup(qx_ivf *ivf) {
    if (qx_quantizer_kind(ivf->quant) != QX_QUANT_FASTSCAN) {
        ivf->fs_pairs = ivf->fs_rest = ivf->fs_half = 0;
        return;
    }
    ivf->fs_half = qx_fs_steps4(ivf->quant) / 2;
    ivf->fs_rest = qx_fs_steps8(ivf->quant);
    ivf->fs_pairs = ivf->fs_half + (size_t)ivf->has_norm;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Lloyd in 1-D over sorted values, K levels from quantiles. */
static void fit1d(float *levels, const float *v, size_t n) {
    for (int k = 0; k < K1D; k++) levels[k] = n ? v[(size_t)((k + 0.5) * n / K1D)] : 0.f;
    for (int it = 0; it < 25 && n; it++) {
        size_t lo = 0;
        for (int k = 0; k < K1D; k++) {
            float upper = k + 1 < K1D ? 0.5f * (levels[k] + levels[k + 1]) : INFINITY;
            size_t hi = lo;
            double sum = 0;
            while (hi < n && v[hi] <= upper) sum += v[hi++];
            if (hi > lo) levels[k] = (float)(sum / (double)(hi - lo));
            lo = hi;
        }
        qsort(levels, K1D, sizeof(float), cmp_float);
    }
}

static int nearest1d(const float *levels, float v) {
    int best = 0;
    for (int k = 1; k < K1D; k++)
        if (fabsf(levels[k] - v) < fabsf(levels[best] - v)) best = k;
    return best;
}

void qx__ivf_fs_norm_fit(float *levels, float *norms, size_t n) {
    memset(levels, 0, sizeof(float) * QX__NORM_LEVELS);
    qsort(norms, n, sizeof(float), cmp_float);
    fit1d(levels, norms, n);
    for (size_t i = 0; i < n; i++) norms[i] -= levels[nearest1d(levels, norms[i])];
    qsort(norms, n, sizeof(float), cmp_float);
    fit1d(levels + K1D, norms, n);
}

uint8_t qx__ivf_fs_norm_encode(const float *levels, float v) {
    int b1 = 0, b2 = 0;
    float best = INFINITY;
    for (int a = 0; a < K1D; a++)
        for (int b = 0; b < K1D; b++) {
            float e = fabsf(v - levels[a] - levels[K1D + b]);
            if (e < best) best = e, b1 = a, b2 = b;
        }
    return (uint8_t)(b1 | b2 << 4);
}

/* The scanned bytes of a full code: 4-bit bytes, then the norm byte (last). */
static void scanned_bytes(const qx_ivf *ivf, const uint8_t *code, uint8_t *out) {
    memcpy(out, code, ivf->fs_half);
    if (ivf->has_norm) out[ivf->fs_half] = code[ivf->code_size - 1];
}

int qx__ivf_fs_push(qx_ivf *ivf, qx__ivf_list *l, const uint8_t *code, int64_t id) {
    size_t P = ivf->fs_pairs, R = ivf->fs_rest;
    if (l->size == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : QX_FS_BLOCK, fsbytes, rbytes;
        if (!qx__mul(cap, P, &fsbytes) || !qx__mul(cap, R, &rbytes))
            return qx__fail(QX_ENOMEM, "list of %zu entries", cap);
        uint8_t *fsb = qx__aligned_alloc(fsbytes), *codes = qx__aligned_alloc(rbytes);
        int64_t *ids = qx__realloc(l->ids, sizeof(int64_t) * cap);
        if (ids) l->ids = ids;
        if (!fsb || !codes || !ids) {
            qx__aligned_free(fsb);
            qx__aligned_free(codes);
            return qx__fail(QX_ENOMEM, "list of %zu entries", cap);
        }
        /* blocks are whole, so the old blocks are a prefix of the new;
         * the tail is zeroed (the scan reads whole blocks) */
        size_t old = l->cap * P;
        if (old) memcpy(fsb, l->fsb, old);
        memset(fsb + old, 0, fsbytes - old);
        if (l->size && R) memcpy(codes, l->codes, l->size * R);
        qx__aligned_free(l->fsb);
        qx__aligned_free(l->codes);
        l->fsb = fsb;
        l->codes = codes;
        l->cap = cap;
    }
    uint8_t sb[QX_FS_MAX_PAIRS];
    scanned_bytes(ivf, code, sb);
    qx__fs_pack_set(l->fsb, P, l->size, sb);
    if (R) memcpy(l->codes + l->size * R, code + ivf->fs_half, R);
    l->ids[l->size++] = id;
    return 0;
}

void qx__ivf_fs_get(const qx_ivf *ivf, const qx__ivf_list *l, size_t i, uint8_t *code) {
    uint8_t sb[QX_FS_MAX_PAIRS];
    qx__fs_pack_get(l->fsb, ivf->fs_pairs, i, sb);
    memcpy(code, sb, ivf->fs_half);
    if (ivf->fs_rest) memcpy(code + ivf->fs_half, l->codes + i * ivf->fs_rest, ivf->fs_rest);
    if (ivf->has_norm) code[ivf->code_size - 1] = sb[ivf->fs_half];
}

void qx__ivf_fs_move(const qx_ivf *ivf, qx__ivf_list *l, size_t from, size_t to) {
    uint8_t sb[QX_FS_MAX_PAIRS];
    qx__fs_pack_get(l->fsb, ivf->fs_pairs, from, sb);
    qx__fs_pack_set(l->fsb, ivf->fs_pairs, to, sb);
    if (ivf->fs_rest) memcpy(l->codes + to * ivf->fs_rest, l->codes + from * ivf->fs_rest, ivf->fs_rest);
    l->ids[to] = l->ids[from];
}

size_t qx__ivf_fs_list_bytes(const qx_ivf *ivf, const qx__ivf_list *l) {
    return l->cap * (ivf->fs_pairs + ivf->fs_rest + sizeof(int64_t));
}
