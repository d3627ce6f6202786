/* core/idmap.c — id → value hash map (see qinx/idmap.h). Keys are mixed with
 * a 64-bit finalizer so sequential ids spread over the table. */
#include <string.h>

#include "idmap.h"
#include "internal.h"

static inline size_t slot_of(int64_t key, size_t cap) {
    uint64_t z = (uint64_t)key;
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
    z ^= z >> 33;
    return (size_t)z & (cap - 1);
}

static int rehash(qx__idmap *m, size_t cap) {
    qx__idmap n = {0};
    n.cap = cap;
    n.keys = qx__malloc(sizeof(int64_t) * cap);
    n.vals = qx__malloc(sizeof(uint64_t) * cap);
    n.used = qx__calloc(cap, 1);
    if (!n.keys || !n.vals || !n.used) {
        qx__idmap_free(&n);
        return qx__fail(QX_ENOMEM, "id map: %zu slots", cap);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i]) continue;
        size_t s = slot_of(m->keys[i], cap);
        while (n.used[s]) s = (s + 1) & (cap - 1);
        n.used[s] = 1;
        n.keys[s] = m->keys[i];
        n.vals[s] = m->vals[i];
    }
    n.count = m->count;
    qx__idmap_free(m);
    *m = n;
    return 0;
}

int qx__idmap_reserve(qx__idmap *m, size_t n) {
    size_t need = 16;
    while (need < 2 * n + 2) {
        if (need > ((size_t)1 << 60)) return qx__fail(QX_ENOMEM, "id map: %zu ids", n);
        need <<= 1;
    }
    return need > m->cap ? rehash(m, need) : 0;
}

int qx__idmap_put(qx__idmap *m, int64_t key, uint64_t val) {
    if (2 * (m->count + 1) > m->cap) {
        int rc = qx__idmap_reserve(m, m->count + 1 > m->cap ? m->count + 1 : m->cap);
        if (rc) return rc;
    }
    size_t s = slot_of(key, m->cap);
    while (m->used[s] && m->keys[s] != key) s = (s + 1) & (m->cap - 1);
    if (!m->used[s]) {
        m->used[s] = 1;
        m->keys[s] = key;
        m->count++;
    }
    m->vals[s] = val;
    return 0;
}

int qx__idmap_get(const qx__idmap *m, int64_t key, uint64_t *val) {
    if (m->cap == 0) return 0;
    size_t s = slot_of(key, m->cap);
    while (m->used[s]) {
        if (m->keys[s] == key) {
            *val = m->vals[s];
            return 1;
        }
        s = (s + 1) & (m->cap - 1);
    }
    return 0;
}

int qx__idmap_del(qx__idmap *m, int64_t key) {
    if (m->cap == 0) return 0;
    size_t mask = m->cap - 1, s = slot_of(key, m->cap);
    while (m->used[s] && m->keys[s] != key) s = (s + 1) & mask;
    if (!m->used[s]) return 0;
    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = s, j = s;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->used[j]) break;
        size_t home = slot_of(m->keys[j], m->cap);
        /* Move j into hole if home is not cyclically in (hole, j]. */
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->used[hole] = 0;
    m->count--;
    return 1;
}

void qx__idmap_free(qx__idmap *m) {
    qx__free(m->keys);
    qx__free(m->vals);
    qx__free(m->used);
    memset(m, 0, sizeof *m);
}

/* ---- the public forms (qinx/idmap.h) ---- */
int qx_idmap_reserve(qx_idmap *m, size_t n) { return qx__idmap_reserve(m, n); }
int qx_idmap_put(qx_idmap *m, int64_t key, uint64_t val) { return qx__idmap_put(m, key, val); }
int qx_idmap_get(const qx_idmap *m, int64_t key, uint64_t *val) { return qx__idmap_get(m, key, val); }
int qx_idmap_del(qx_idmap *m, int64_t key) { return qx__idmap_del(m, key); }
void qx_idmap_free(qx_idmap *m) { qx__idmap_free(m); }
