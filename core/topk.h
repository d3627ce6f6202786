/* core/topk.h — the one bounded max-heap keeping the k smallest (key, value)
 * pairs: IVF search results, re-ranking, and the RQ beam (quant/rq_impl.h).
 * Keys are "smaller is better" scores; values are opaque 64-bit payloads.
 * Header-only so the scan loop inlines the comparison. Two finishes: a heap
 * sort for result lists of any k, and a stable insertion sort for the small
 * beams, where the order of equal keys decides the codes. */
#ifndef QINX_TOPK_H
#define QINX_TOPK_H

#include <stddef.h>
#include <stdint.h>

typedef struct qx__topk {
    float *key;
    uint64_t *val;
    size_t k, n;
} qx__topk;

static inline void qx__topk_reset(qx__topk *h, size_t k) {
    h->k = k;
    h->n = 0;
}

/* Worst kept key, +inf semantics when not full. */
static inline int qx__topk_wants(const qx__topk *h, float key) {
    return h->n < h->k || key < h->key[0];
}

static inline void qx__topk_sift_down(qx__topk *h, size_t i) {
    float k0 = h->key[i];
    uint64_t v0 = h->val[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->key[c + 1] > h->key[c]) c++;
        if (h->key[c] <= k0) break;
        h->key[i] = h->key[c];
        h->val[i] = h->val[c];
        i = c;
    }
    h->key[i] = k0;
    h->val[i] = v0;
}

static inline void qx__topk_push(qx__topk *h, float key, uint64_t val) {
    if (h->n < h->k) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (h->key[p] >= key) break;
            h->key[i] = h->key[p];
            h->val[i] = h->val[p];
            i = p;
        }
        h->key[i] = key;
        h->val[i] = val;
    } else if (key < h->key[0]) {
        h->key[0] = key;
        h->val[0] = val;
        qx__topk_sift_down(h, 0);
    }
}

/* Sort in place, ascending by key (destroys the heap order). */
static inline void qx__topk_sort(qx__topk *h) {
    size_t n = h->n;
    while (h->n > 1) {
        size_t last = h->n - 1;
        float k = h->key[0];
        uint64_t v = h->val[0];
        h->key[0] = h->key[last];
        h->val[0] = h->val[last];
        h->key[last] = k;
        h->val[last] = v;
        h->n--;
        qx__topk_sift_down(h, 0);
    }
    h->n = n;
}

/* Sort in place, ascending by key, keeping the heap order of equal keys
 * (insertion sort: for small k, such as a beam of <= 64). */
static inline void qx__topk_sort_small(qx__topk *h) {
    for (size_t i = 1; i < h->n; i++) {
        float k = h->key[i];
        uint64_t v = h->val[i];
        size_t j = i;
        while (j > 0 && h->key[j - 1] > k) {
            h->key[j] = h->key[j - 1];
            h->val[j] = h->val[j - 1];
            j--;
        }
        h->key[j] = k;
        h->val[j] = v;
    }
}

#endif
