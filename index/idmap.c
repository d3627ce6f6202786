/* index/idmap.c — id → location hash map (see idmap.h). Keys are mixed with
 * a 64-bit finalizer so sequential ids spread over the table. Slots in use
 * are one bit each and the table fills to 4/5 before it doubles: 16.1 bytes
 * a slot, 20-40 bytes an id (it was 17 bytes a slot at a load of 1/2: 34-68
 * bytes an id, more than the codes of a large server collection). */
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

static inline int used(const uint64_t *u, size_t s) { return (int)((u[s >> 6] >> (s & 63)) & 1u); }
static inline void set_used(uint64_t *u, size_t s) { u[s >> 6] |= (uint64_t)1 << (s & 63); }
static inline void clear_used(uint64_t *u, size_t s) { u[s >> 6] &= ~((uint64_t)1 << (s & 63)); }
/* room for n ids in cap slots (load at most 4/5) */
static inline int fits(size_t n, size_t cap) { return n <= cap - cap / 5; }

static int rehash(qx__idmap *m, size_t cap) {
    qx__idmap n = {0};
    n.cap = cap;
    n.keys = qx__malloc(sizeof(int64_t) * cap);
    n.vals = qx__malloc(sizeof(uint64_t) * cap);
    n.used = qx__calloc((cap + 63) / 64, sizeof(uint64_t));
    if (!n.keys || !n.vals || !n.used) {
        qx__idmap_free(&n);
        return qx__fail(QX_ENOMEM, "id map: %zu slots", cap);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!used(m->used, i)) continue;
        size_t s = slot_of(m->keys[i], cap);
        while (used(n.used, s)) s = (s + 1) & (cap - 1);
        set_used(n.used, s);
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
    while (!fits(n + 1, need)) {
        if (need > ((size_t)1 << 60)) return qx__fail(QX_ENOMEM, "id map: %zu ids", n);
        need <<= 1;
    }
    return need > m->cap ? rehash(m, need) : 0;
}

int qx__idmap_put(qx__idmap *m, int64_t key, uint64_t val) {
    if (m->cap == 0 || !fits(m->count + 1, m->cap)) {
        int rc = qx__idmap_reserve(m, m->count + 1 > m->cap ? m->count + 1 : m->cap);
        if (rc) return rc;
    }
    size_t s = slot_of(key, m->cap);
    while (used(m->used, s) && m->keys[s] != key) s = (s + 1) & (m->cap - 1);
    if (!used(m->used, s)) {
        set_used(m->used, s);
        m->keys[s] = key;
        m->count++;
    }
    m->vals[s] = val;
    return 0;
}

int qx__idmap_get(const qx__idmap *m, int64_t key, uint64_t *val) {
    if (m->cap == 0) return 0;
    size_t s = slot_of(key, m->cap);
    while (used(m->used, s)) {
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
    while (used(m->used, s) && m->keys[s] != key) s = (s + 1) & mask;
    if (!used(m->used, s)) return 0;
    /* Backward-shift: pull later members of the probe run into the hole. */
    size_t hole = s, j = s;
    for (;;) {
        j = (j + 1) & mask;
        if (!used(m->used, j)) break;
        size_t home = slot_of(m->keys[j], m->cap);
        /* Move j into hole if home is not cyclically in (hole, j]. */
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    clear_used(m->used, hole);
    m->count--;
    return 1;
}

void qx__idmap_free(qx__idmap *m) {
    qx__free(m->keys);
    qx__free(m->vals);
    qx__free(m->used);
    memset(m, 0, sizeof *m);
}
