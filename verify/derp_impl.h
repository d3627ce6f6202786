/* verify/derp_impl.h — internals shared by the verify/derp_*.c files (not
 * installed): the portable generator, K–S kernels on sorted doubles, the
 * family summary and a growable string buffer for the JSON report. */
#ifndef QINX_DERP_IMPL_H
#define QINX_DERP_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/derp.h"
#include "internal.h"

/* xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64: the same
 * stream on every platform and compiler, unlike rand(). */
typedef struct qx__derp_rng {
    uint64_t s[4];
} qx__derp_rng;

void qx__derp_rng_seed(qx__derp_rng *r, uint64_t seed);
uint64_t qx__derp_rng_next(qx__derp_rng *r);
double qx__derp_rng_uniform(qx__derp_rng *r);          /* [0, 1), 53 bits */
uint64_t qx__derp_rng_below(qx__derp_rng *r, uint64_t n); /* [0, n), unbiased */

/* Sort n floats (no NaN) ascending into dst as doubles: an LSD radix sort
 * (3 passes of 11/11/10 bits on order-preserving keys), ~10x faster than
 * qsort, which dominated the cost of a family test. tmp: 2n uint32. */
void qx__derp_sort_floats(const float *src, size_t n, double *dst, uint32_t *tmp);

/* Lilliefors D of a sorted sample (n >= 2). */
double qx__derp_lilliefors_sorted(const double *v, size_t n);
/* Two-sample D of two sorted samples. */
double qx__derp_ks2_sorted(const double *a, size_t na, const double *b, size_t nb);
/* 1-D Wasserstein distance of two sorted samples; *w_rel (may be NULL) is
 * it over a's standard deviation (b's if a is constant). */
double qx__derp_w1_sorted(const double *a, size_t na, const double *b, size_t nb,
                          double *w_rel);
/* p-value of the two-sample statistic for sizes na, nb. */
double qx__derp_ks2_pvalue(double D, size_t na, size_t nb);

/* Allocate the per-probe arrays of f (P entries) and zero the rest. */
int qx__derp_family_alloc(qx_derp_family *f, size_t P, double alpha);
/* Fill Holm, counts, combined p and D summary from f->D and f->p. */
int qx__derp_family_finish(qx_derp_family *f);

/* Resolve NULL opts to defaults and validate: returns 0 or QX_EINVAL. */
int qx__derp_opts_check(const qx_derp_opts *in, qx_derp_opts *out);

/* Size of the evenly strided subsample (qx__sample_index) of min(n, cap) of
 * n rows (cap 0 = all). */
static inline size_t qx__derp_sub_size(size_t n, size_t cap) {
    return cap == 0 || n <= cap ? n : cap;
}

/* One-sample family on an already projected matrix proj (P rows of n). */
int qx__derp_normality_proj(const float *proj, size_t P, size_t n, double alpha,
                            qx_derp_family *out);

/* Codeword usage of byte column col of n codes (stride bytes apart). A
 * plain byte is one step of 256 codewords. A byte that holds two 4-bit
 * steps (nibbles != 0: the first bytes of a fast-scan code, qinx/fastscan.h)
 * is judged by its worse nibble out of 16: counting byte values would
 * measure how often pairs of codewords occur together, which says nothing
 * of either step's health. cap: at most this many distinct values can occur
 * (n when n is below the step's K), so a small sample is measured against
 * what it could use. Fills used, ksub, used_fraction and perplexity of st
 * (dead = ksub − used). */
void qx__derp_usage(const uint8_t *codes, size_t n, size_t stride, size_t col, int nibbles,
                    qx_derp_step *st);

/* Bytes of q's code that hold two 4-bit steps (0 unless q is fast-scan). */
size_t qx__derp_nibble_bytes(const qx_quantizer *q);

/* Growable NUL-terminated string; an allocation failure is sticky (err). */
typedef struct qx__derp_sb {
    char *s;
    size_t len, cap;
    int err;
} qx__derp_sb;

void qx__derp_sb_puts(qx__derp_sb *b, const char *s);
void qx__derp_sb_printf(qx__derp_sb *b, const char *fmt, ...) QX__PRINTF(2, 3);
void qx__derp_sb_json_string(qx__derp_sb *b, const char *s); /* quoted, escaped */
void qx__derp_sb_json_number(qx__derp_sb *b, double v);     /* null if not finite */
void qx__derp_sb_free(qx__derp_sb *b);

#endif
