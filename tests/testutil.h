/* tests/testutil.h — helpers shared by the cmocka tests: seeded synthetic
 * data, brute-force ground truth, and the shared-dataset lookup that skips
 * (exit 77, with a message) when ../shared/data is absent. */
#ifndef QX_TESTUTIL_H
#define QX_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

/* splitmix64-based generator: deterministic across platforms. */
typedef struct { uint64_t s; } tu_rng;
void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
double tu_rng_uniform(tu_rng *r);  /* [0,1) */
double tu_rng_normal(tu_rng *r);   /* N(0,1) */

/* n*d floats (malloc'd): a mixture of `clusters` Gaussian blobs whose centres
 * are N(0, 4) and spread N(0,1) — clustered like real embeddings. */
float *tu_clustered(size_t n, size_t d, size_t clusters, uint64_t seed);

/* Exact k nearest (squared L2) of nq queries among nb base vectors:
 * ids nq*k (malloc'd). */
int64_t *tu_brute_knn(const float *base, size_t nb, const float *q, size_t nq, size_t d, size_t k);

/* Path of a shared dataset file ("siftsmall/siftsmall_base.fvecs"), or NULL if
 * QX_DATA_DIR / ../shared/data does not hold it. */
const char *tu_data_path(const char *rel);

/* Skip the whole test program (exit 77) with a reason on stderr. */
void tu_skip_all(const char *why);

/* Fraction of queries whose true nearest neighbour is in the first k results. */
double tu_recall_at(const int64_t *result, size_t k_result, const int64_t *gt, size_t k_gt,
                    size_t nq, size_t k);

/* k-recall@k: the fraction of the true k nearest (gt, k_gt per query,
 * int64 or int32 ids: pass one, the other NULL) found among the first k of
 * the results (k_res per query), over nq queries. */
double tu_k_recall(const int64_t *res, size_t k_res, const int64_t *gt64, const int32_t *gt32,
                   size_t k_gt, size_t nq, size_t k);

/* siftsmall (base, queries, top-100 ground truth) from the shared data:
 * 1 when loaded, 0 when absent (the caller skips). */
struct qx_matrix;
int tu_siftsmall(struct qx_matrix *base, struct qx_matrix *queries, int32_t **gt, size_t *gt_k);

/* A fresh temporary directory (mkdtemp) and a path inside it (static buffer). */
const char *tu_tmpdir(void);
const char *tu_tmpfile(const char *name);

/* A whole file's bytes (malloc'd, *len set; the test fails if unreadable),
 * and writing bytes to a file (the test fails on error). */
unsigned char *tu_file_read(const char *path, size_t *len);
void tu_file_write(const char *path, const void *data, size_t len);

#endif
